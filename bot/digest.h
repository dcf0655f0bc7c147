/*
 * The daily digest of a group: what each member finished or started since the
 * last digest, the top five with movement, group progress and its change,
 * streaks, and a nudge. Deterministic for a given store and clock.
 */
#ifndef COHORT_DIGEST_H
#define COHORT_DIGEST_H

#include "reply.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct bot;

/* How many members' ranks a digest records for the next one's movement. */
#define DIGEST_SNAPSHOT 100

/* A built digest and its bookkeeping. Owned by the caller: digest_release(). */
struct digest {
	struct reply reply;
	char local_date[16]; /* the group's local date at `now` */
	int group_percent;
	struct store_rank_entry *ranks; /* the all-time ranking to record (member ids owned) */
	size_t nranks;
};

/* Builds group_id's digest at time now. Returns COHORT_OK or COHORT_ERR_STORE. */
int digest_build(struct bot *b, const char *group_id, int64_t now, struct digest *out);
void digest_release(struct digest *d);

#endif
