/*
 * A platform-neutral event, built by an adapter from a slash command, an
 * autocomplete request, a Matrix message or a console line, and handed to
 * the bot with door_submit() (bot/adapter.h). Every string is borrowed for
 * the call that takes the event: door_submit() copies what it keeps.
 */
#ifndef COHORT_EVENT_H
#define COHORT_EVENT_H

#include <stdbool.h>
#include <stddef.h>

enum event_kind {
	EVENT_COMMAND,  /* run the command: the answer is a reply */
	EVENT_COMPLETE, /* suggest topics for the text being typed (args): the answer is choices */
};

/* A named option of a slash command, as the platform gave it. */
struct event_option {
	const char *name;  /* "channel" */
	const char *value; /* as typed or picked; never NULL */
};

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
	enum event_kind kind;    /* door_submit(): what the answer is; bot_handle() runs commands */
	/*
	 * A slash command's options by name (slash is true even when there are
	 * none): commands that exist only as slash commands ("digest-setup") read
	 * them instead of args. NULL/0 for text commands.
	 */
	bool slash;
	const struct event_option *options;
	size_t n_options;
	/* A line the platform adds to an answer that is not an error (what the
	 * bot lacks in the channel, say), or NULL. */
	const char *success_note;
	/* EVENT_COMPLETE: the most choices the platform shows (0: BOT_MAX_CHOICES). */
	size_t max_choices;
	/*
	 * EVENT_COMMAND: where the outbox delivers the answer if it is not sent
	 * now (after a crash): the platform's own text, handed back to its sender
	 * (door_add_sender()). NULL: the answer is not kept (the console).
	 */
	const char *answer_address;
	/*
	 * Set by bot_handle(), never by an adapter: the group as the platform gave
	 * it when a group link made group_id another group (bot/link.h); else NULL.
	 */
	const char *home_group_id;
};

#endif
