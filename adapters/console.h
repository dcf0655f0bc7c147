/*
 * The console adapter: a local chat on stdin/stdout with the full command
 * set. Each line is a message; "@bob /done Redis" speaks as bob. The owner
 * (--as) is an admin; the other speakers are ordinary members.
 */
#ifndef COHORT_CONSOLE_H
#define COHORT_CONSOLE_H

#include "bot/adapter.h"

#include <signal.h>
#include <stdio.h>

struct bot;

/* Longest line read; the rest of a longer line is discarded with a message. */
#define CONSOLE_MAX_LINE 16384

struct console_opts {
	const char *member; /* the owner's name */
	const char *group;  /* group name: the group id is "console:NAME" */
	FILE *in, *out;
	volatile sig_atomic_t *stop; /* set by a signal handler: stop reading */
};

/* A console adapter over bot (borrowed). opts are copied; the strings must outlive it. */
struct adapter console_new(struct bot *b, const struct console_opts *opts);

#endif
