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

struct reply;

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
	void (*free)(void *self);
};

struct adapter {
	const struct adapter_ops *ops;
	void *self;
};

#endif
