/*
 * The daily digest scheduler. Each group with a digest channel gets one digest
 * per local day at its time (DST-correct), or — when cohort was down then —
 * as soon as it runs again that same day. The digest is recorded, with an
 * idempotency key derived from (group, local date), before it is sent; a
 * record not yet marked sent is re-sent with the same key, so a crash between
 * sending and recording cannot post twice on platforms that honour the key.
 */
#ifndef COHORT_SCHEDULER_H
#define COHORT_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot;
struct reply;

/* Where digests go: the adapters, through the CLI. */
struct digest_sink {
	/* True when a running adapter serves this group's platform. */
	bool (*serves)(void *ud, const char *group_id);
	/* Posts r (borrowed) to the channel; COHORT_OK once the platform accepted it. */
	int (*post)(void *ud, const char *group_id, const char *channel_id, const struct reply *r,
		    const char *idem_key);
	void *ud;
};

/*
 * Posts every digest due at the bot's clock. *next receives the clock time
 * when the next one falls due (INT64_MAX when none). A group whose digest
 * failed is logged and retried a minute later; the others go on. Returns
 * COHORT_OK, or the first group's error.
 */
int scheduler_run(struct bot *b, const struct digest_sink *sink, int64_t *next);

/*
 * Posts the group's digest for today now, before its time if need be (the
 * scheduler then will not post it again today). COHORT_ERR_DUPLICATE when
 * today's digest was sent already.
 */
int scheduler_post_now(struct bot *b, const struct digest_sink *sink, const char *group_id,
		       const char *channel_id);

/* The idempotency key of a group's digest for a local date: 19 characters (fits a Discord nonce).
 */
void scheduler_idem_key(const char *group_id, const char *local_date, char key[20]);

#endif
