/*
 * A platform-neutral command event, built by an adapter from a slash command,
 * a Matrix message or a console line. Everything is borrowed for the call to
 * bot_handle(); the adapter keeps its own handle for answering.
 */
#ifndef COHORT_EVENT_H
#define COHORT_EVENT_H

#include <stdbool.h>

struct event {
	const char *platform;    /* "console", "discord", "matrix" */
	const char *group_id;    /* platform-qualified: "discord:123", "console:local" */
	const char *channel_id;  /* where the command was typed */
	const char *member_id;   /* platform-qualified: "matrix:@ana:example.org" */
	const char *member_name; /* display name */
	bool is_admin;           /* MANAGE_GUILD, power level >= 50, the console's owner */
	const char *command;     /* "done": lowercase, no prefix */
	const char *args;        /* the text after the command; "" when none */
	const char *topic;       /* a separate topic option (Discord), or NULL to split args */
	const char *note;        /* a separate note option, or NULL */
	const char *source_id;   /* the platform's event id, for at-most-once; or NULL */
};

#endif
