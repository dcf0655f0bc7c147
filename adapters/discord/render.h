/*
 * Discord's side of the reply model: a reply becomes a message with one embed
 * (title, description with monospace blocks, a colour per kind), inside
 * Discord's limits, with user text escaped so it can never become markup, and
 * allowed_mentions empty so nothing it says pings anyone. Also the slash
 * command definitions cohort registers.
 */
#ifndef COHORT_DC_RENDER_H
#define COHORT_DC_RENDER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct reply;

/* Discord's limits (characters are counted as UTF-16 units by Discord; we count bytes, stricter).
 */
#define DC_MAX_TITLE 256
#define DC_MAX_DESCRIPTION 4096
#define DC_MAX_CHOICES 25

/* The message object for r (borrowed):
 * {"embeds":[...],"allowed_mentions":{"parse":[]}[,"flags":64]}. */
cJSON *dc_render_message(const struct reply *r, bool ephemeral_allowed);

/* Appends s to sb with Discord Markdown and mention syntax escaped. */
struct strbuf;
void dc_escape(struct strbuf *sb, const char *s);

/* An autocomplete answer's data: {"choices":[{"name": label, "value": value}, ...]}. */
struct bot_choice;
cJSON *dc_render_choices(const struct bot_choice *choices, size_t n);

/* The application commands to register (bulk overwrite), built from the bot's command table. */
cJSON *dc_command_definitions(void);

#endif
