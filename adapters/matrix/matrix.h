/*
 * The Matrix adapter (client-server API v3, libcurl + cJSON, no SDK): a
 * long-poll /sync loop on its own thread turns m.room.message commands
 * ("!done Kafka", "/done Kafka") into events for the bot's door; replies and digests go
 * out as m.notice through the HTTP worker, in order per room, each with a
 * transaction id that a retry reuses.
 *
 * What a restart needs is in the store: the sync token (saved after the
 * events it covers were handled), a token from a password login, and which
 * encrypted rooms were told that encryption is not supported.
 */
#ifndef COHORT_MATRIX_H
#define COHORT_MATRIX_H

#include "bot/adapter.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct reply;
struct strbuf;

/* The long poll's server-side wait, and the longest backoff after errors. */
#define MX_SYNC_TIMEOUT_MS 30000
#define MX_BACKOFF_MAX_MS 60000
/*
 * Timeline events per room in a /sync answer; after an answer over
 * HTTP_MAX_BODY, the position is asked for again with MX_SYNC_CUT_LIMIT.
 */
#define MX_SYNC_LIMIT 50
#define MX_SYNC_CUT_LIMIT 5
/* Power level that makes a member a cohort admin. */
#define MX_ADMIN_LEVEL 50

/*
 * A Matrix adapter for cfg (borrowed; must outlive it) that hands its events
 * to door (borrowed; must outlive it). Reads its saved state through the
 * door, so call it before the dispatcher runs.
 */
int matrix_new(const struct config *cfg, struct door *door, struct adapter *out);

/*
 * One process syncs an account at a time (several processes on one
 * database). Before each /sync the sync thread asks may_sync (it may wait for
 * the database); resume is true when this process did not sync before. On
 * true, *since (when resume) receives the sync position saved in the store
 * now, a new string or NULL, to go on from where the last syncer stopped. On
 * false, another process syncs: who names it (n bytes) and the adapter waits
 * *retry_ms before asking again, its status "standby".
 */
struct mx_sync_lease {
	bool (*may_sync)(void *ud, const char *user_id, bool resume, char **since, char *who,
			 size_t n, int64_t *retry_ms);
	void *ud;
};
/* Sets a's sync lease (copied) before it starts; without one it always syncs. */
void matrix_set_sync_lease(struct adapter *a, const struct mx_sync_lease *l);

/*
 * Handles one /sync answer as if it had arrived (tests and fuzzing), on the
 * calling thread of an adapter that is not running. False when it is not a
 * /sync answer.
 */
bool matrix_feed_sync(struct adapter *a, const char *body);

/*
 * Matrix refuses events over 65,536 bytes, and the server adds the sender,
 * room, hashes and signatures (about 1 kB) to the content cohort sends: a
 * message's content stays under MX_MAX_CONTENT bytes, each line (and the
 * title) under MX_MAX_LINE bytes before escaping.
 */
#define MX_MAX_CONTENT 60000
#define MX_MAX_LINE 2000

/*
 * The m.notice content of r as JSON (a new string): body, the HTML
 * formatted_body, no mentions, a reply relation to in_reply_to (or none).
 * A line longer than MX_MAX_LINE ends in "…"; when the whole is over max
 * bytes, the last lines give way to "…(N more)".
 */
char *mx_render_content(const struct reply *r, const char *in_reply_to, size_t max);

/* The HTML formatted_body of a reply: the title in bold, monospace lines in <pre>. */
void mx_render_html(const struct reply *r, struct strbuf *out);

/*
 * The command text of a message body: the body without a reply fallback
 * (leading "> " lines and the blank line after them). Points into body.
 */
const char *mx_strip_fallback(const char *body);

/* A power level from m.room.power_levels: an integer, a float, or a numeric string. */
bool mx_parse_level(const void *json_value, long *out);

#endif
