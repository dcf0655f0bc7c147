/*
 * The Discord adapter: the gateway for interactions (slash commands and
 * autocomplete; optionally prefix text commands), REST for the answers and
 * the digests. Answers go out within Discord's 3 s: a reply the dispatcher
 * has not produced after DC_DEFER_MS is deferred (callback type 5) and then
 * edited in when ready.
 *
 * Threads: the gateway loop (libwebsockets), the REST worker (libcurl), and
 * the bot's dispatcher, which runs the commands and calls the answer sinks
 * (bot/adapter.h). See README "Architecture".
 */
#ifndef COHORT_DISCORD_H
#define COHORT_DISCORD_H

#include "bot/adapter.h"
#include "bot/event.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* How long an interaction may wait for its answer before it is deferred. */
#define DC_DEFER_MS 1500
/* A saved session older than this is not worth resuming. */
#define DC_RESUME_MAX_AGE_MS (5 * 60 * 1000)

/*
 * A Discord adapter for cfg (borrowed; must outlive it) that hands its events
 * to door (borrowed; must outlive it). Reads the saved gateway session
 * through the door, so call it before the dispatcher runs. Returns COHORT_OK,
 * or COHORT_ERR_IO when a thread or client cannot be made.
 */
int discord_new(const struct config *cfg, struct door *door, struct adapter *out);

/* How long an interaction id that came over HTTP is remembered in the store, so that
 * a replay to any process is refused (well over the 5 minutes a timestamp may be off). */
#define DC_IX_CLAIM_MS (15 * 60 * 1000)

/*
 * Where the answer to an interaction that came over HTTP (POST /interactions)
 * goes: the interaction response itself (status 200, type 4 or 8), or a type
 * 5 deferral when the answer takes DC_DEFER_MS (the answer then edits
 * @original through REST, as for the gateway), or status 400 with an error
 * (a replay of an interaction the store has seen). Exactly one of send and
 * drop is called, once, from any thread (the dispatcher, the adapter's
 * timer); send's json is borrowed for the call; drop (the adapter is freed
 * first) releases ctx. When written is not NULL, send must call
 * written(ud, ok) exactly once, later (never from inside send), from any
 * thread, before the adapter is freed: ok once the response is written to
 * Discord's connection, false when it never will be. The edit after a type
 * 5 waits for it.
 */
struct dc_responder {
	void (*send)(void *ctx, int status, const char *json, void (*written)(void *ud, bool ok),
		     void *ud);
	void (*drop)(void *ctx);
	void *ctx;
};

/*
 * Handles an interaction (a verified POST /interactions body: id, token,
 * type 2 or 4, ...) exactly as one from the gateway, answering through
 * *resp. Any thread. ix is borrowed for the call. A command runs once per
 * interaction id across the processes on the store (DC_IX_CLAIM_MS); a
 * replay is answered 400. Returns COHORT_OK (resp handed over),
 * COHORT_ERR_DUPLICATE (delivered to this process before: answered already) or
 * COHORT_ERR_USAGE (not a command or an autocomplete cohort can take); resp is
 * not used then.
 */
int discord_interaction(struct adapter *a, const cJSON *ix, const struct dc_responder *resp);

/*
 * A slash command or autocomplete interaction as an event for the bot's door,
 * read the same way wherever it came from (the gateway's INTERACTION_CREATE,
 * or discord_interaction() for a body Discord POSTs to an interactions
 * endpoint). ev's strings point
 * into the interaction (keep it until door_submit(), which copies them) or
 * into the struct's own fields, freed by dc_ix_event_release().
 */
struct dc_ix_event {
	struct event ev;
	char *group, *member, *source, *note;
	struct event_option *options;
};

/*
 * Fills *out from ix (borrowed): a command (type 2) as EVENT_COMMAND with the
 * options the bot's command table names, or an autocomplete (type 4) as
 * EVENT_COMPLETE with the focused option's text. Returns COHORT_OK,
 * COHORT_ERR_PARSE (no valid id, another type, a command without a name:
 * ignore it) or COHORT_ERR_DENIED (a command outside a server's channel:
 * answer DC_NOT_IN_A_SERVER_TITLE and _LINE, as an ephemeral error). Any
 * thread. Release *out in every case.
 */
int dc_ix_event(const cJSON *ix, struct dc_ix_event *out);
void dc_ix_event_release(struct dc_ix_event *e);

#define DC_NOT_IN_A_SERVER_TITLE "cohort works in a server's channels"
#define DC_NOT_IN_A_SERVER_LINE                                                                 \
	"Progress belongs to a study group: use the commands in your server."

/*
 * Handles one gateway message as if it had arrived (tests and fuzzing), on
 * the calling thread of an adapter that is not running; the events it makes
 * go through the door.
 */
void discord_feed(struct adapter *a, const char *payload, size_t len);

struct gw_identify_gate;
/* IDENTIFY pacing across processes for a's shards (see gateway.h); call before it starts. */
void discord_set_identify_gate(struct adapter *a, const struct gw_identify_gate *gate);

/* Discord's global REST limit: requests per second per bot, whichever process sends them. */
#define DISCORD_GLOBAL_PER_S 50
/* The REST requests a shared rate counts: all but interaction callbacks and webhooks. */
bool discord_rest_counts(const char *url);
/*
 * Shares the global limit with other processes (call before a starts): a's
 * REST requests that discord_rest_counts() take tokens from rate(ud, name,
 * DISCORD_GLOBAL_PER_S, want, answer, ctx), which must not block and
 * answers as keeper_rate() does (cli/keeper.h).
 */
typedef void discord_rate_fn(void *ud, const char *name, int limit, int want,
			     void (*answer)(void *ctx, int granted, int64_t valid_ms), void *ctx);
void discord_share_rest_limit(struct adapter *a, discord_rate_fn *rate, void *ud);

/*
 * The register-commands command, on the calling thread; prints what it did.
 * guild_id NULL: registers the slash commands (a bulk overwrite) in every
 * discord.guild_ids, or globally when there are none, and removes them from
 * the scope not in use (globally when guild_ids is set; every other server
 * the bot is in), so no command shows twice. guild_id: registers them in
 * that server only. clear: removes them instead, from guild_id or from
 * everywhere. Returns COHORT_OK, COHORT_ERR_AUTH or COHORT_ERR_NETWORK (logged).
 */
int discord_register_commands(const struct config *cfg, const char *guild_id, bool clear);

#endif
