/*
 * A mailbox: messages that any thread may post and one thread, the owner, runs
 * in the order they were posted. Posting to an empty mailbox calls its wake-up,
 * so the owner's loop (poll, libwebsockets, curl) looks at it soon. The one way
 * work crosses threads in cohort: the dispatcher's jobs, the gateway's calls
 * onto its loop, and the HTTP worker's requests.
 *
 * Threading: mailbox_post() from any thread; the rest from the owner.
 */
#ifndef COHORT_MAILBOX_H
#define COHORT_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

struct mailbox;

/* Runs a message on the owner's thread with the owner's ctx; owns and frees arg. */
typedef void mail_fn(void *ctx, void *arg);
/* Frees the arg of a message that will never run (NULL: plain free()). */
typedef void mail_drop_fn(void *arg);

/*
 * A mailbox whose posts wake the owner with wake(ud) (called without any lock
 * held, from the posting thread; it must be thread-safe). wake may be NULL.
 */
struct mailbox *mailbox_new(void (*wake)(void *ud), void *ud);
/* Frees mb; messages never run are dropped with their drop functions. */
void mailbox_free(struct mailbox *mb);

/* Posts fn(ctx, arg) with its drop function (arg handed over). */
void mailbox_post(struct mailbox *mb, mail_fn *fn, mail_drop_fn *drop, void *arg);

/*
 * Runs, oldest first, the messages posted before the call (not those they post);
 * returns how many ran.
 */
size_t mailbox_run(struct mailbox *mb, void *ctx);

/* Drops every message waiting, with its drop function; returns how many. */
size_t mailbox_drop_all(struct mailbox *mb);

/* True when nothing waits (a snapshot: another thread may post right after). */
bool mailbox_empty(struct mailbox *mb);

#endif
