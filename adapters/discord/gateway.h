/*
 * The Discord gateway client (v10, JSON, libwebsockets): connects, says
 * IDENTIFY or RESUME, heartbeats, and survives whatever the gateway does —
 * each close code and opcode handled by a policy table, reconnects with
 * backoff and jitter, a dead connection noticed by its missing heartbeat ACK.
 * Dispatch events (READY, INTERACTION_CREATE, ...) go to a callback.
 *
 * Threading: gw_run() (or gw_run_all() for several shards) owns the calling
 * thread (the libwebsockets loop) and every callback runs on it. gw_stop() and gw_call() may be called from any
 * thread. No HTTP call is made on this thread: GET /gateway/bot goes through
 * the http client, so nothing delays a heartbeat.
 */
#ifndef COHORT_GATEWAY_H
#define COHORT_GATEWAY_H

#include "lib/mailbox.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_client;
struct gw;
struct gw_starts;

/* The largest gateway message accepted; a longer one is dropped and logged. */
#define GW_MAX_MESSAGE (8 * 1024 * 1024)
/* The largest message cohort sends (Discord closes on more than 4096 bytes). */
#define GW_MAX_SEND 4096
/* Messages cohort may send per minute (Discord allows 120). */
#define GW_SEND_PER_MINUTE 110

/* Intents. Slash commands need none; prefix text commands need the last two. */
#define GW_INTENT_GUILD_MESSAGES (1 << 9)
#define GW_INTENT_MESSAGE_CONTENT (1 << 15)

/* What can be resumed: kept in the store so that a quick restart resumes. */
struct gw_session {
	char *session_id; /* NULL: none */
	char *resume_url;
	int64_t seq;
};

struct gw_opts {
	const char *token;   /* borrowed; must outlive the gateway */
	const char *api_url; /* "https://discord.com/api/v10" */
	int intents;
	struct http_client *http; /* borrowed: for GET /gateway/bot */
	/* A dispatch event (op 0): t and d are borrowed for the call. */
	void (*on_event)(void *ud, const char *type, const cJSON *d);
	/* The session changed (READY, or a new sequence at a heartbeat): persist it. */
	void (*on_session)(void *ud, const struct gw_session *s);
	/* The gateway refused to go on (a bad token, disallowed intents): msg says how to fix it.
	 */
	void (*on_fatal)(void *ud, int code, const char *msg);
	/* Called about every 100 ms on the loop (the adapter's timers). */
	void (*on_tick)(void *ud);
	void *ud;
	/* Sharding: IDENTIFY says shard [shard_id, shard_count]; none when shard_count is 0. */
	int shard_id, shard_count;
	/* IDENTIFY pacing shared with the other shards (borrowed), or NULL for its own. */
	struct gw_starts *starts;
	/* The gateway URL when already known (copied), else NULL: GET /gateway/bot. */
	const char *gateway_url;
};

/*
 * IDENTIFY pacing shared by the gateways (shards) of a process: shard i is in
 * bucket i % max_concurrency, each bucket identifies at most once per 5 s
 * (RESUMEs do not count), and the session start limit's remaining count is
 * shared. Thread-safe; outlives every gw that uses it.
 */
struct gw_starts *gw_starts_new(void);
/*
 * IDENTIFY pacing across processes (several processes of one bot on one
 * database): before each IDENTIFY (never a RESUME) the gateway asks
 * ask(ud, bucket, period_ms, answer, ctx) for the bucket's slot, without
 * waiting; ask must not block. answer(ctx, got, retry_ms) comes later from
 * any thread, exactly once: got, or not with the ms until the slot is free
 * (retry_ms < 0: never, the asker is going away). Heartbeats go on meanwhile.
 */
struct gw_identify_gate {
	void (*ask)(void *ud, int bucket, int64_t period_ms,
		    void (*answer)(void *ctx, bool got, int64_t retry_ms), void *ctx);
	void *ud;
};
/* Sets the gate (copied) of every gateway sharing st; without one, pacing is per process. */
void gw_starts_set_gate(struct gw_starts *st, const struct gw_identify_gate *gate);
void gw_starts_free(struct gw_starts *st);
/* What GET /gateway/bot said: max_concurrency < 1 and remaining < 0 keep the old values. */
void gw_starts_update(struct gw_starts *st, int max_concurrency, long remaining,
		      int64_t reset_after_ms);

/* A gateway (not yet connected). session (copied) is one to resume, or NULL. */
struct gw *gw_new(const struct gw_opts *opts, const struct gw_session *session);
void gw_free(struct gw *g);

/*
 * Runs the connection until gw_stop() or a fatal close. Returns COHORT_OK,
 * COHORT_ERR_AUTH (4004) or COHORT_ERR_CONFIG (another fatal close code),
 * or COHORT_ERR_IO when libwebsockets cannot start.
 */
int gw_run(struct gw *g);
/*
 * Runs the gateways gws[0..n) (borrowed; the shards of a process) on the calling
 * thread, all on one libwebsockets context: one OpenSSL client state and one poll
 * loop whatever the shard count. Returns once each has stopped or failed: the first
 * failure's code (in gws order, as gw_run() names them), COHORT_OK, or COHORT_ERR_IO.
 * A callback of any of them (on_event, on_tick ...) delays the others' heartbeats
 * as much as its own: they must stay quick (hand work to another thread).
 */
int gw_run_all(struct gw **gws, size_t n);
/* Asks gw_run() to close the connection (resumable) and return. Any thread. */
void gw_stop(struct gw *g);
/*
 * Runs fn(g, arg) on the loop thread soon (arg handed over). Any thread. When the
 * loop has ended, drop(arg) runs instead, at gw_free().
 */
void gw_call(struct gw *g, mail_fn *fn, mail_drop_fn *drop, void *arg);

/* The session now (copied into *out; gw_session_release() it). Loop thread only. */
void gw_session_copy(const struct gw *g, struct gw_session *out);
void gw_session_release(struct gw_session *s);

/* The connection's state ("starting", "connected", "reconnecting", "stopped", "failed"). Any
 * thread. */
void gw_status(struct gw *g, const char **status, int64_t *since, unsigned long *reconnects);

/*
 * Handles one gateway message as if it had arrived (tests and fuzzing): the
 * callbacks run on the calling thread, and what it would send is dropped.
 * Only before gw_run() or after it returned.
 */
void gw_feed(struct gw *g, const char *text, size_t len);

/* What happens after a close code (exposed for tests). */
enum gw_after { GW_RESUME, GW_IDENTIFY, GW_FATAL };
enum gw_after gw_close_policy(int code, const char **why);

#endif
