/*
 * The lease keeper: the leases this process holds in the store (see
 * store_lease_take() in store/store.h), taken and renewed on a thread of its
 * own with a store connection of its own, so a renewal never waits behind the
 * dispatcher's work and no adapter thread touches the store.
 *
 * A kept lease is renewed every third of its period until it is released;
 * keeper_free() releases what is still kept. Periods are real milliseconds
 * (the database's clock decides expiry).
 *
 * Threading: every function may be called from any thread, but the blocking
 * ones (keeper_claim, keeper_release) not from a thread that must never wait
 * for the database (a gateway's): those use keeper_slot().
 */
#ifndef COHORT_KEEPER_H
#define COHORT_KEEPER_H

#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

struct keeper;

/*
 * Called on the keeper's thread when a kept lease was lost: its renewal found
 * another holder (named in l), or it could not be renewed (the database did
 * not answer) for its period less a fifth, so it may have lapsed (l->holder
 * is "" then). The lease is no longer kept.
 */
typedef void keeper_lost_fn(void *ud, const char *name, const struct store_lease *l);

/*
 * Opens a connection to the store at target and starts the keeper's thread.
 * lost (may be NULL) is told of a lease lost. Returns COHORT_OK, or
 * COHORT_ERR_STORE / COHORT_ERR_IO with the reason in err.
 */
int keeper_new(const char *target, bool sync_full, keeper_lost_fn *lost, void *ud,
	       struct keeper **out, char *err);
/*
 * Releases every lease still kept and stops the thread; what waits for an
 * answer gets "never" (or COHORT_ERR_STORE) now, and so does every later
 * call, at once. Call it while those who asked still exist (before the
 * adapters are freed); keeper_free() after them.
 */
void keeper_close(struct keeper *k);
/* keeper_close() if not done, then frees k and closes the connection. */
void keeper_free(struct keeper *k);

/* This process's holder identity (store_lease_holder()). */
const char *keeper_holder(const struct keeper *k);

/*
 * Takes lease name for period_ms (or renews it, when this process has it)
 * and, on success, keeps renewing it; a lease whose holder was a process of
 * this host that no longer runs is taken over at once
 * (store_lease_holder_gone()). Blocks until the database answered.
 * out (may be NULL) receives who holds it. Returns COHORT_OK, COHORT_ERR_DENIED
 * (another holder has it: out says who and for how long) or COHORT_ERR_STORE.
 */
int keeper_claim(struct keeper *k, const char *name, int64_t period_ms, struct store_lease *out);
/* Stops renewing name and releases it in the database (blocking). */
void keeper_release(struct keeper *k, const char *name);
/* Reads adapter state (store_state_get()) on the keeper's connection (blocking). */
int keeper_state_get(struct keeper *k, const char *key, char **value);
/* True while name is kept: claimed, and no renewal found another holder since. */
bool keeper_holds(struct keeper *k, const char *name);

/*
 * Without blocking: asks for a slot that may be used once per period_ms by
 * any process (store_lease_take without renew). done(ud, got, retry_ms) is
 * called later on the keeper's thread: got true, or false with the ms after
 * which the slot is free again (-1: never, the keeper is being freed). The
 * slot is not kept (it lapses by itself).
 */
void keeper_slot(struct keeper *k, const char *name, int64_t period_ms,
		 void (*done)(void *ud, bool got, int64_t retry_ms), void *ud);

/*
 * Without blocking: asks for want of the limit requests of the database's
 * current second that name allows (store_rate_take()). done(ud, granted,
 * valid_ms) comes later on the keeper's thread, or at once when it is
 * closed: want tokens usable for valid_ms, or 0 with the ms until the next
 * second (valid_ms < 0: never, the keeper is closed).
 */
void keeper_rate(struct keeper *k, const char *name, int limit, int want,
		 void (*done)(void *ud, int granted, int64_t valid_ms), void *ud);

#endif
