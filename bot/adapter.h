/*
 * The one interface through which the CLI runs a chat platform. An adapter
 * turns its platform's traffic into events for bot_handle() and renders the
 * replies; the CLI only starts, stops, and asks it to post.
 */
#ifndef COHORT_ADAPTER_H
#define COHORT_ADAPTER_H

struct reply;

struct adapter_ops {
	const char *name;
	/* Runs until stop() or a fatal error. Returns COHORT_OK or an error code. */
	int (*run)(void *self);
	/* Asks run() to return soon. Async-signal-safe. */
	void (*stop)(void *self);
	/* Posts r (borrowed) to a channel of the platform, unprompted (the digest). */
	int (*post)(void *self, const char *channel_id, const struct reply *r);
	void (*free)(void *self);
};

struct adapter {
	const struct adapter_ops *ops;
	void *self;
};

#endif
