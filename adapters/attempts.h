/*
 * When a digest was first handed to a platform, kept in the store (adapter
 * state), so that a re-send after a long outage or a restart knows how old
 * the first attempt is. A platform's own duplicate guard (Discord's nonce,
 * a Matrix transaction id) lasts minutes; past that, an adapter looks for
 * the earlier post before sending again.
 */
#ifndef COHORT_ATTEMPTS_H
#define COHORT_ATTEMPTS_H

#include <stdint.h>

struct door;

/* Attempts older than this are forgotten (a digest is re-sent the same local day only). */
#define ATTEMPTS_KEEP_MS (3LL * 24 * 3600 * 1000)

/*
 * When the digest with idem_key was first attempted, from the JSON object
 * kept under state_key ("discord.digest_attempts"); records now when this
 * is the first attempt (and then returns now). A store that cannot be read
 * or written counts as a first attempt (logged). Dispatcher thread (the
 * state is read and written through door, synchronously).
 */
int64_t attempts_first(struct door *door, const char *state_key, const char *idem_key, int64_t now);

#endif
