/*
 * The interface between the bot and a chat platform (a "door"), both ways.
 *
 * Adapter -> bot: the door (struct door, below). An adapter runs on its own
 * threads and turns its platform's traffic into events (bot/event.h) that it
 * submits with an answer sink; the bot runs them one at a time, in submission
 * order, on its dispatcher thread and calls the sink back with the answer.
 * Adapter state (a gateway session, a sync token) goes through the door too.
 * An adapter never calls bot_handle(), the dispatcher or the store itself.
 *
 * Bot -> adapter: struct adapter_ops. The CLI starts and stops it, and the
 * digest scheduler asks it to post.
 *
 * Lifecycle, all from the CLI's thread: start(); later stop() and join();
 * then dispatch_drain() so that the events in flight are answered (their
 * sinks called); then free(), which finishes sending the answers (with a
 * grace period) and frees. The door outlives every adapter given it.
 */
#ifndef COHORT_ADAPTER_H
#define COHORT_ADAPTER_H

#include "outbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot_choice;
struct event;
struct reply;

/* ---- adapter -> bot: the door ---- */

/* The bot as an adapter sees it. Made by the CLI (dispatch_door()); borrowed by adapters. */
struct door;

/* What the bot answers to one event. Everything is borrowed for the sink's call. */
struct door_answer {
	/*
	 * EVENT_COMMAND: bot_handle()'s result: COHORT_OK, COHORT_ERR_DUPLICATE (a
	 * replayed source event: answered when it first came, nothing changed) or
	 * COHORT_ERR_STORE (the reply says nothing was saved). COHORT_OK for a
	 * completion.
	 */
	int rc;
	/* EVENT_COMMAND's answer (always one, but for a door_submit_once() replay); NULL otherwise */
	const struct reply *reply;
	const struct bot_choice *choices; /* EVENT_COMPLETE's, best first */
	size_t n_choices;
	/*
	 * With an answer_address (bot/outbox.h): the answer was kept in the outbox
	 * with the change it reports. answer_id > 0: send the reply now and report
	 * how that went with door_answer_sent(). rc COHORT_ERR_PENDING: the event
	 * is a replay whose answer is owed already (the outbox sends it): send
	 * nothing. rc COHORT_ERR_DUPLICATE with an empty reply: a replay whose
	 * answer was delivered before.
	 */
	int64_t answer_id;
};

/*
 * Where an event's answer goes. answer() runs on the dispatcher thread, at
 * most once, after the event ran; it must not block on the network (queue the
 * send) and may call the door's dispatcher-thread functions. drop() runs
 * exactly once, last, whether or not answer() came: it frees ctx. An event
 * that never runs (dispatch_free() with events queued: not in a normal stop,
 * which drains the queue first) gets drop() alone, on the freeing thread.
 * Either function may be NULL.
 */
struct answer_sink {
	void (*answer)(void *ctx, const struct door_answer *a);
	void (*drop)(void *ctx);
	void *ctx;
};

/*
 * Queues ev for the bot; the answer goes to sink (ctx handed over). ev is
 * copied: borrowed for the call only. Any thread; never blocks on the bot.
 * Events run in submission order, interleaved with door_state_update() jobs
 * in the same order.
 */
void door_submit(struct door *d, const struct event *ev, const struct answer_sink *sink);

/*
 * As door_submit(), but the event runs only if the store has not seen once (a
 * name such as "ix:<interaction id>") within the last ttl_ms real ms, in any
 * process on the store: the claim is a lease nobody renews. A replay within
 * that time does not run: its answer() gets rc COHORT_ERR_DUPLICATE and no
 * reply (nor choices). When the store cannot record the claim, the event runs
 * (its own store writes fail the same way and say so).
 */
void door_submit_once(struct door *d, const char *once, int64_t ttl_ms, const struct event *ev,
		      const struct answer_sink *sink);

/*
 * A read that changes nothing, for the HTTP server's pages: what the bot
 * answers to a request that is not a chat event.
 *   DOOR_READ_PAGE_HTML, DOOR_READ_PAGE_JSON: the group page of token arg
 *     (bot/page.h): rc COHORT_OK with the body, COHORT_ERR_NOT_FOUND for an
 *     unknown, turned-off or replaced token, or a store error.
 *   DOOR_READ_HEALTH: whether the store answers (arg NULL): rc COHORT_OK or
 *     COHORT_ERR_STORE, no body.
 */
enum door_read { DOOR_READ_PAGE_HTML, DOOR_READ_PAGE_JSON, DOOR_READ_HEALTH };

/* What the bot answers to a read. Borrowed for the sink's call. */
struct door_read_answer {
	int rc;
	const char *body; /* NUL-terminated; "" when there is none */
	size_t len;
};

/* As struct answer_sink: answer() at most once on the dispatcher thread, drop() always, last. */
struct read_sink {
	void (*answer)(void *ctx, const struct door_read_answer *a);
	void (*drop)(void *ctx);
	void *ctx;
};

/* Queues a read (arg copied; may be NULL); the answer goes to sink. Any thread. */
void door_read(struct door *d, enum door_read what, const char *arg, const struct read_sink *sink);

/*
 * Adapter state kept in the store under a key the adapter names
 * ("discord.sessions", "matrix.next_batch"), so a restart resumes.
 *
 * door_state_get() and door_state_set() are synchronous: call them before
 * the dispatcher runs (the adapter's _new()) or on the dispatcher thread (in
 * an answer sink, an update function, adapter_ops.post). get gives a new
 * string, or NULL when the key is unset. Both return COHORT_OK or
 * COHORT_ERR_STORE.
 */
int door_state_get(struct door *d, const char *key, char **value);
int door_state_set(struct door *d, const char *key, const char *value);

/*
 * A read-modify-write of one key, from any thread: fn runs on the dispatcher
 * thread after every event submitted before it, with old (borrowed; NULL when
 * unset, or when the store could not be read: then ok is false) and returns
 * the new value (a string it hands over, stored and freed) or NULL to leave
 * the key as it is. drop(ctx) follows, always (may be NULL); a job that never
 * runs gets drop() alone.
 */
typedef char *door_update_fn(void *ctx, const char *old, bool ok);
void door_state_update(struct door *d, const char *key, door_update_fn *fn, void (*drop)(void *),
		       void *ctx);
/* Stores value (copied) under key, after every event submitted before it. Any thread. */
void door_state_save(struct door *d, const char *key, const char *value);

/* The bot's clock (Unix ms). Dispatcher thread. */
int64_t door_now(struct door *d);

/*
 * Reports a digest post's outcome (see scheduler_sent()): COHORT_OK, or the
 * send's error code. Any thread.
 */
void door_digest_sent(struct door *d, const char *idem_key, int result);

/* Reports the delivery of answer id (door_answer.answer_id, or a sender's): an enum answer_outcome. Any thread. */
void door_answer_sent(struct door *d, int64_t id, int outcome);

/*
 * Registers the sender of platform's late answers (outbox_deliver_fn, bot/outbox.h),
 * called on the dispatcher thread. Before the dispatcher runs (the adapter's _new());
 * ud must outlive the door.
 */
void door_add_sender(struct door *d, const char *platform, outbox_deliver_fn *fn, void *ud);

/* An adapter hit a fatal error (logged by it): the bot stops with code. Any thread. */
void door_fail(struct door *d, int code);

/* ---- bot -> adapter ---- */

/* One connection of an adapter that has several (a Discord shard). */
struct adapter_shard {
	int id, count;
	const char *state; /* as adapter_status.state */
	int64_t since;
	unsigned long reconnects;
};

/* How an adapter is doing, for `cohort status`. Times are Unix ms (0: never). */
struct adapter_status {
	const char *state; /* "starting", "connected", "reconnecting", "stopped", "failed" */
	int64_t since;     /* when it entered that state */
	int64_t last_event;
	unsigned long commands, reconnects;
	/* From its REST client. */
	unsigned long requests, rate_limited, unauthorized, forbidden, server_errors, given_up;
	int64_t rate_limit_wait_ms;
	/* Its connections when it has several (Discord shards): an array the caller
	 * frees with free(), or NULL. state is "connected" only when all of them are. */
	struct adapter_shard *shards;
	size_t n_shards;
};

struct adapter_ops {
	const char *name; /* "discord", "matrix": also the prefix of its group ids */
	/* Starts the adapter's threads. Returns COHORT_OK or an error code (logged). */
	int (*start)(void *self);
	/* Asks the adapter to stop taking commands. Returns at once. */
	void (*stop)(void *self);
	/* Waits until it has stopped taking commands; returns COHORT_OK or its fatal error. */
	int (*join)(void *self);
	/*
	 * Posts r (borrowed) to a channel unprompted (the digest), with an
	 * idempotency key. Dispatcher thread. Returns COHORT_ERR_PENDING once
	 * queued: the outcome comes back through scheduler_sent().
	 */
	int (*post)(void *self, const char *group_id, const char *channel_id, const struct reply *r,
		    const char *idem_key);
	/* Fills *out. Any thread. */
	void (*status)(void *self, struct adapter_status *out);
	void (*free)(void *self);
	/*
	 * Sends a member's reminder (bot/remind.c) privately: a Discord DM.
	 * Dispatcher thread. COHORT_ERR_PENDING once queued (the outcome is only
	 * logged: a reminder is not retried), or an error. NULL: none sent.
	 */
	int (*remind)(void *self, const char *group_id, const char *member_id, const struct reply *r,
		      const char *idem_key);
};

struct adapter {
	const struct adapter_ops *ops;
	void *self;
};

#endif
