/*
 * The product: a dispatcher from command events to replies, over the store
 * and the roadmap. It never touches a socket. One thread at a time.
 */
#ifndef COHORT_BOT_H
#define COHORT_BOT_H

#include "event.h"
#include "reply.h"

#include <stddef.h>
#include <stdint.h>

struct store;
struct roadmap;
struct rmset;

struct bot_opts {
	struct store *store;           /* borrowed; must outlive the bot */
	const struct roadmap *roadmap; /* borrowed; must outlive the bot; used when roadmaps is NULL */
	const char *digest_time;       /* default "HH:MM" for groups without their own */
	const char *timezone;          /* default IANA zone */
	int64_t (*now)(void *ud);      /* the clock (Unix ms); NULL for the real one */
	void *now_ud;
	const struct rmset *roadmaps; /* the roadmaps groups may choose (borrowed), or NULL */
};

struct bot;

/*
 * Makes a bot over opts' store and roadmap, and gives the store the group
 * calendar for week and month scores. Returns COHORT_OK or COHORT_ERR_STORE.
 */
int bot_new(const struct bot_opts *opts, struct bot **out);
void bot_free(struct bot *b);

/*
 * The base URL members reach cohort's HTTP server at (http.public_url, copied),
 * for the links to the group's page (PUBLIC_URL/g/TOKEN); NULL or "" when no
 * server is configured (the default): /dashboard then says what to set.
 */
void bot_set_public_url(struct bot *b, const char *url);

/*
 * Handles one command and fills *out (initialised by the caller) with the
 * answer — always, errors included. Returns COHORT_OK, COHORT_ERR_DUPLICATE
 * (a replayed source event: the reply says so and nothing changed) or
 * COHORT_ERR_STORE (the reply says nothing was saved).
 */
int bot_handle(struct bot *b, const struct event *ev, struct reply *out);

/* The longest member name kept, in characters (DESIGN §4). */
#define BOT_MAX_NAME 64

/*
 * The name a member is stored and shown under, made once where an event comes
 * in (bot_handle): control characters (C0, DEL, C1), line and paragraph
 * separators and runs of white space become one space, the ends are trimmed,
 * bytes that are not UTF-8 become U+FFFD, and the rest is clipped to
 * BOT_MAX_NAME characters on a character boundary. fallback (the member id,
 * its platform prefix dropped) when nothing is left. A new string.
 */
char *bot_member_name(const char *name, const char *fallback);

/*
 * Replaces the roadmap (borrowed from now on; the caller frees the old one
 * after) and tells the store its topics (see bot_store_roadmap()).
 */
void bot_set_roadmap(struct bot *b, const struct roadmap *rm);

/*
 * Replaces the roadmaps groups may choose (borrowed from now on; the caller
 * frees the old set after) and tells the store (bot_store_roadmaps()).
 */
void bot_set_roadmaps(struct bot *b, const struct rmset *set);

struct store;
struct store_roadmap_result;
/*
 * bot_store_roadmap() for a set: the store counts each group's own roadmap
 * (store_set_roadmaps()). Returns COHORT_OK or COHORT_ERR_STORE.
 */
int bot_store_roadmaps(struct store *st, const struct rmset *set, bool force,
		       struct store_roadmap_result *out);
/*
 * Tells the store rm's topic ids and former ids (store_set_roadmap()): scores
 * count only topics on rm, and progress kept under a former id moves to its
 * topic. bot_new() and bot_set_roadmap() call it; force after an import.
 * Returns COHORT_OK or COHORT_ERR_STORE.
 */
int bot_store_roadmap(struct store *st, const struct roadmap *rm, bool force,
		      struct store_roadmap_result *out);

/* Builds the group's digest at the bot's clock into *out (a preview: nothing is recorded). */
int bot_digest(struct bot *b, const char *group_id, struct reply *out);

/* A suggestion for a topic being typed: what to show and what to fill in. */
struct bot_choice {
	char label[101]; /* "Kafka — Message Brokers" (at most 100 bytes, whole characters) */
	char value[101]; /* the topic's name */
};

/* The most choices a completion gives (Discord shows 25). */
#define BOT_MAX_CHOICES 25

/*
 * Completes what is being typed in an option of command: a roadmap's name for
 * roadmap-use, else a topic of group_id's roadmap (NULL: the default one).
 * Fills up to max choices, best first; returns how many.
 */
size_t bot_complete_topics(struct bot *b, const char *command, const char *group_id,
			   const char *typed, struct bot_choice *out, size_t max);

/*
 * Adapter state kept in the store (a Discord session, a Matrix sync token),
 * under a key the adapter names ("discord.session"). bot_state_get gives a new
 * string, or NULL when the key is unset. Both return COHORT_OK or COHORT_ERR_STORE.
 * Adapters reach these through their door (door_state_get(), bot/adapter.h).
 */
int bot_state_get(struct bot *b, const char *key, char **value);
int bot_state_set(struct bot *b, const char *key, const char *value);

/* The bot's outbox: answers owed (outbox.h). Owned by the bot. */
struct outbox *bot_outbox(struct bot *b);

/* The clock the bot runs on (Unix ms). */
int64_t bot_now(struct bot *b);

/*
 * The commands as data, defined once: help, the text grammar and each
 * platform's slash-command registration (Discord's JSON) all read this table.
 */
enum bot_option_type { BOT_OPTION_STRING, BOT_OPTION_MEMBER /* a platform user */ };

/* What a slash command's option becomes in the command (bot_handle()). */
enum bot_option_role {
	BOT_ROLE_ARGS,  /* the command's text, as if typed after it */
	BOT_ROLE_TOPIC, /* the text too, and kept whole as the one topic (no list splitting) */
	BOT_ROLE_NOTE,  /* the note, apart from the topic */
	BOT_ROLE_NAMED, /* read by name by a slash-only command */
};

struct bot_option {
	const char *name;        /* "topic": lowercase, at most 32 bytes */
	const char *description; /* at most 100 bytes */
	enum bot_option_type type;
	bool required;
	bool autocomplete;          /* values are completed with topic names (EVENT_COMPLETE) */
	const char *const *choices; /* the only values offered (NULL-terminated), or NULL */
	bool command_choices;       /* the choices are bot_command_names() */
	int min_length, max_length; /* of a string value; 0: no limit */
	enum bot_option_role role;
};

struct bot_command {
	const char *name;    /* "done" */
	const char *usage;   /* "done TOPIC [note]" */
	const char *summary; /* one line: help, and the slash command's description */
	const char *details; /* /help NAME */
	bool personal;       /* the answer is for the asker only (progress, topics, next, help) */
	bool admin_only;     /* platforms hide it from members who cannot manage the group */
	bool slash_only;     /* no text form: not in help or bot_command_names() */
	const struct bot_option *options; /* a slash command's, in order */
	size_t n_options;
};

/* How many commands there are; the i-th (help order, slash-only ones last), or NULL. */
size_t bot_command_count(void);
const struct bot_command *bot_command_at(size_t i);
/* The command called exactly name, or NULL. */
const struct bot_command *bot_command(const char *name);

/* A command's one-line summary ("mark a topic finished"), or NULL for an unknown name. */
const char *bot_command_summary(const char *name);
/* True when a command answers the asker only (progress, topics, next, help). */
bool bot_command_personal(const char *name);

/* The names of the commands that can be typed, in help order, NULL-terminated. */
const char *const *bot_command_names(void);

#endif
