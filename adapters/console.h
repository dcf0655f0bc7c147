/*
 * The console adapter: a local chat on stdin/stdout with the full command
 * set. Each line is a message; "@bob /done Redis" speaks as bob. The owner
 * (--as) is an admin; the other speakers are ordinary members.
 */
#ifndef COHORT_CONSOLE_H
#define COHORT_CONSOLE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

struct door;

/* Longest line read; the rest of a longer line is discarded with a message. */
#define CONSOLE_MAX_LINE 16384

struct console_opts {
	const char *member; /* the owner's name */
	const char *group;  /* group name: the group id is "console:NAME" */
	int in;             /* file descriptor to read lines from */
	FILE *out;
	volatile sig_atomic_t *stop; /* set by a signal handler: stop reading */
	/*
	 * Readable when *stop may have changed (-1: none): the signal handler
	 * writes a byte to it, so a signal that lands just before the console
	 * starts waiting still wakes it. Its bytes are drained.
	 */
	int wake;
	/*
	 * Called whenever the console waits for input (may be NULL): runs what is
	 * due (the digest) and returns how many milliseconds to wait at most
	 * before calling it again (-1: no limit).
	 */
	int64_t (*tick)(void *ud);
	void *tick_ud;
	/*
	 * Runs the events queued at the bot's door (the console has no dispatcher
	 * thread of its own: the CLI lends it its thread). Called with tick_ud
	 * after each line is submitted, so its answer is printed before the next
	 * line is read. NULL only for a console that is given no commands (tests).
	 */
	void (*pump)(void *ud);
};

struct console;
struct reply;

/*
 * A console that hands its lines to door (borrowed; must outlive it). opts
 * are copied; the strings must outlive it.
 */
struct console *console_new(struct door *door, const struct console_opts *opts);
void console_free(struct console *c);
/* Reads and answers lines until end of input or *opts->stop. COHORT_OK or COHORT_ERR_IO. */
int console_run(struct console *c);
/* Shows r (borrowed), unprompted (the digest). */
int console_post(struct console *c, const struct reply *r);

#endif
