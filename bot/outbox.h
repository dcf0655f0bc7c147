/*
 * Answers owed (issue 18): a command's answer is written to the store's
 * outbox in the same transaction as the change it reports, and a sender
 * delivers it and marks it done. After a crash, a restart (or, on
 * PostgreSQL, any other process) delivers every answer still owed, once.
 *
 * Who delivers: an answer belongs to the process that wrote or claimed it
 * for OUTBOX_LEASE_MS (real time, not the bot's clock: processes with
 * different test clocks share one database), renewed every
 * OUTBOX_RENEW_MS while it is being sent. A lease that runs out lets any
 * process claim the answer (store_outbox_claim(): one statement, and FOR
 * UPDATE SKIP LOCKED on PostgreSQL). On SQLite (one process) a start
 * claims every answer owed at once: none can be in flight elsewhere.
 *
 * Platforms deliver through a sender each (outbox_add_sender()); how old
 * an answer may be before it is dropped instead of sent late is the
 * sender's decision (it gets the age by the bot's clock).
 *
 * Threading: everything here runs on the dispatcher thread (the one that
 * owns the bot and the store), except where a function says otherwise.
 */
#ifndef COHORT_OUTBOX_H
#define COHORT_OUTBOX_H

#include "event.h"
#include "reply.h"

#include <stdbool.h>
#include <stdint.h>

#define OUTBOX_LEASE_MS 10000
#define OUTBOX_RENEW_MS 3000
/* How often answers owed are looked for (claims of other processes' lapsed leases). */
#define OUTBOX_SWEEP_MS 1000
/*
 * Delivered answers are marked done in batches, one commit for many: when
 * OUTBOX_MARK_BATCH are waiting, or OUTBOX_MARK_DELAY_MS after the first.
 * Until then an answer stays under this process's lease (renewed), so no
 * sweep delivers it again; a crash in between redelivers it, which each
 * platform's idempotency key turns into nothing new (as for a crash
 * between sending and marking).
 */
#define OUTBOX_MARK_BATCH 64
#define OUTBOX_MARK_DELAY_MS 100

struct bot;
struct store;
struct outbox;

/* What became of a delivery (outbox_sent()). */
enum answer_outcome {
	ANSWER_SENT,    /* the platform has it: done */
	ANSWER_RETRY,   /* not delivered (network, 5xx, not connected yet): try again later */
	ANSWER_DROPPED, /* can never be delivered (too old, refused): done, not sent */
};

/*
 * Delivers a claimed answer: r (borrowed) to address (what the platform
 * wrote with it), age_ms after it was written (the bot's clock). Returns
 * COHORT_ERR_PENDING once queued (the outcome comes back through
 * outbox_sent() with id), COHORT_ERR_NETWORK when it cannot be sent now
 * (it is tried again later), or COHORT_ERR_USAGE when it is dropped (too
 * old for the platform, or an address it cannot read: the sender logs why).
 */
typedef int outbox_deliver_fn(void *ud, int64_t id, const char *address, const struct reply *r,
			      int64_t age_ms);

/* An outbox over st (borrowed), the bot's clock from b. */
struct outbox *outbox_new(struct bot *b, struct store *st);
void outbox_free(struct outbox *o);

/* The process's holder name ("host:pid:random"), for logs. */
const char *outbox_holder(const struct outbox *o);

/* Registers the sender for platform (both borrowed: they must outlive the outbox). */
void outbox_add_sender(struct outbox *o, const char *platform, outbox_deliver_fn *fn, void *ud);

/*
 * Handles ev (bot_handle()) and puts its answer into *out (initialised by
 * the caller) and the outbox, in one transaction with the change. address
 * is the platform's text for delivering it later (copied). Returns:
 * - COHORT_OK: *id is the answer's id (> 0): send *out now and report the
 *   outcome with outbox_sent(); or *id is 0 (nothing to keep: the store
 *   failed and *out says so): send *out, nothing to report.
 * - COHORT_ERR_PENDING: ev's answer is owed already (a replay): the outbox
 *   sends it; send nothing, *out is empty.
 * - COHORT_ERR_DUPLICATE: ev was applied and answered before (by the
 *   outbox, or by bot_handle() before the outbox knew it): *out says so
 *   ("Already recorded"), *id is 0. Where a replay needs no answer (it was
 *   delivered), send nothing.
 */
int outbox_handle(struct outbox *o, const struct event *ev, const char *address,
		  struct reply *out, int64_t *id);

/*
 * outbox_handle() in two steps, for a caller that handles more than one
 * event for one answer: outbox_begin() opens the transaction (COHORT_OK),
 * or returns COHORT_ERR_PENDING (ev's answer is owed: nothing open),
 * COHORT_ERR_DUPLICATE (ev's answer was delivered: nothing open) or
 * COHORT_ERR_STORE (nothing open: handle ev without the outbox).
 * outbox_commit() closes it: handled is what bot_handle() returned (non-zero:
 * rolled back and returned), the rest as outbox_handle().
 */
int outbox_begin(struct outbox *o, const struct event *ev);
int outbox_commit(struct outbox *o, const struct event *ev, int handled, const char *address,
		  struct reply *out, int64_t *id);

/*
 * Reports a delivery's outcome (from outbox_handle() or a sender). A done
 * mark waits for its batch (OUTBOX_MARK_BATCH); outbox_tick() and
 * outbox_free() write what waits.
 */
void outbox_sent(struct outbox *o, int64_t id, enum answer_outcome outcome);

/*
 * Claims and delivers answers owed, renews the leases of those in flight.
 * Call it often (the dispatcher does, every loop); it does its work at most
 * every OUTBOX_SWEEP_MS. Returns how long (ms) until it wants to run again.
 */
int64_t outbox_tick(struct outbox *o);

/* How many answers this process is delivering now (sent, outcome not yet known). */
size_t outbox_in_flight(const struct outbox *o);

/* A reply as text for the outbox (a new string), and back (COHORT_ERR_PARSE when it is not one). */
char *outbox_reply_to_text(const struct reply *r);
int outbox_reply_from_text(const char *text, struct reply *out);

#endif
