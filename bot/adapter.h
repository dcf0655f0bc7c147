/*
 * The one interface through which the CLI runs a chat platform. An adapter
 * runs on its own threads: it turns its platform's traffic into jobs for the
 * dispatcher (which calls bot_handle() and hands the reply back to it) and
 * sends the replies. The CLI only starts, stops, and asks it to post.
 *
 * Lifecycle, all from the CLI's thread: start(); later stop() and join();
 * then dispatch_drain() so that replies in flight are handed over; then
 * free(), which finishes sending them (with a grace period) and frees.
 */
#ifndef COHORT_ADAPTER_H
#define COHORT_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reply;

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
};

struct adapter {
	const struct adapter_ops *ops;
	void *self;
};

#endif
