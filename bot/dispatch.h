/*
 * The dispatcher: the one thread that owns the bot and the store. Adapters
 * run on their own threads and hand it events through its door
 * (dispatch_door(), bot/adapter.h); the bot's own code queues jobs with
 * dispatch_submit(). It runs each job in submission order, and the digest
 * scheduler between jobs. Adapters never include this header.
 *
 * Threading: dispatch_submit(), dispatch_stop() and dispatch_fail() may be
 * called from any thread; dispatch_wake() from a signal handler too. The rest
 * belongs to the thread that calls dispatch_run().
 */
#ifndef COHORT_DISPATCH_H
#define COHORT_DISPATCH_H

#include <signal.h>
#include <stdint.h>

struct bot;
struct digest_sink;
struct dispatch;
struct door;

/* A job: runs on the dispatcher thread with the bot; owns and frees arg. */
typedef void dispatch_fn(struct bot *b, void *arg);
/* Frees the arg of a job that never runs (dispatch_free() with jobs queued). */
typedef void dispatch_drop_fn(void *arg);

/* A dispatcher over b (borrowed). Returns NULL when the wake-up pipe cannot be made. */
struct dispatch *dispatch_new(struct bot *b);
/* Frees d; jobs still queued are dropped (call dispatch_drain() first). */
void dispatch_free(struct dispatch *d);

/*
 * The door adapters are given (bot/adapter.h): events and state go through
 * it to d's queue. Lives as long as d.
 */
struct door *dispatch_door(struct dispatch *d);

/*
 * Queues fn(b, arg) to run soon on the dispatcher thread (arg handed over); a job
 * that never runs is freed with drop(arg), or free(arg) when drop is NULL. Never
 * blocks on the bot.
 */
void dispatch_submit(struct dispatch *d, dispatch_fn *fn, dispatch_drop_fn *drop, void *arg);

/*
 * Runs jobs, and the digest scheduler over sink (borrowed; may be NULL), until
 * dispatch_stop(), dispatch_fail(), or *stop_flag (set by a signal handler
 * that also calls dispatch_wake()) becomes non-zero. Returns COHORT_OK, or the
 * error code given to dispatch_fail().
 */
int dispatch_run(struct dispatch *d, const struct digest_sink *sink,
		 volatile sig_atomic_t *stop_flag);

/*
 * Sets a hook that dispatch_run() calls on its thread after every wake-up
 * (a signal, a job) and at least every period_ms: housekeeping such as
 * writing the status or acting on SIGHUP.
 */
void dispatch_set_hook(struct dispatch *d, void (*fn)(void *ud), void *ud, int64_t period_ms);

/*
 * Reports a digest post's outcome (see scheduler_sent()) from any thread: a
 * job on the dispatcher hands it to the scheduler.
 */
void dispatch_digest_sent(struct dispatch *d, const char *idem_key, int result);

/*
 * Reports an answer's delivery (outbox_sent(): outcome is an enum
 * answer_outcome) from any thread: a job on the dispatcher records it.
 */
void dispatch_answer_sent(struct dispatch *d, int64_t id, int outcome);

/* Runs every queued job (after the adapters stopped taking new work). */
void dispatch_drain(struct dispatch *d);

/* Asks dispatch_run() to return. */
void dispatch_stop(struct dispatch *d);
/* Asks dispatch_run() to return code: an adapter hit a fatal error (logged by it). */
void dispatch_fail(struct dispatch *d, int code);
/* Wakes dispatch_run() to look at its stop flag. Async-signal-safe. */
void dispatch_wake(struct dispatch *d);

#endif
