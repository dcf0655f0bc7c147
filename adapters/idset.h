/*
 * The ids an adapter saw lately (interaction, message and event ids), to
 * answer a replayed one at most once: two generations of a hash set, so a
 * lookup is O(1) and memory is bounded; an id is remembered for at least
 * IDSET_GENERATION insertions after it was added.
 */
#ifndef COHORT_IDSET_H
#define COHORT_IDSET_H

#include <stdbool.h>
#include <stddef.h>

#define IDSET_GENERATION 4096

struct idset;

struct idset *idset_new(void);
void idset_free(struct idset *s);
/* Adds id; returns true when it was there already. */
bool idset_seen(struct idset *s, const char *id);

#endif
