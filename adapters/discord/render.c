#include "render.h"

#include "bot/bot.h"
#include "bot/reply.h"
#include "lib/text.h"
#include "lib/util.h"

#include <string.h>

#define EPHEMERAL 64
#define MANAGE_GUILD "32"

static const int colour[] = {
	[REPLY_INFO] = 0x5865F2,
	[REPLY_SUCCESS] = 0x57F287,
	[REPLY_ERROR] = 0xED4245,
	[REPLY_QUESTION] = 0xFEE75C,
};

void dc_escape(struct strbuf *sb, const char *s)
{
	bool line_start = true;
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		unsigned char c = (unsigned char)*s;
		if (c == '\n') {
			sb_addc(sb, '\n');
		} else if (unsafe) {
			sb_adds(sb, "\xef\xbf\xbd");
		} else {
			/* Markdown, masked links, headings, quotes, <@mention> syntax; a list at a
			 * line start. */
			if ((k == 1 && strchr("\\*_~`|>[]()#<@", c)) || (c == '-' && line_start))
				sb_addc(sb, '\\');
			sb_add(sb, s, k);
		}
		line_start = c == '\n';
		s += k;
		n -= k;
	}
}

/* Inside a code block only ``` can break out: a zero-width space defuses it. */
static void add_mono(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		if (unsafe)
			sb_adds(sb, "\xef\xbf\xbd");
		else if (*s == '`')
			sb_adds(sb, "`\u200b");
		else
			sb_add(sb, s, k);
		s += k;
		n -= k;
	}
}

/* Cuts sb to at most max bytes at a character boundary, ending with an ellipsis line. */
static void clip(struct strbuf *sb, size_t max, bool in_code)
{
	if (sb->len <= max)
		return;
	const char *more = in_code ? "\n…\n```" : "\n…";
	size_t cut = max - strlen(more);
	while (cut > 0 && ((unsigned char)sb->buf[cut] & 0xC0) == 0x80)
		cut--;
	/* Prefer a whole line. */
	for (size_t i = cut; i > cut / 2; i--)
		if (sb->buf[i] == '\n') {
			cut = i;
			break;
		}
	sb_truncate(sb, cut);
	if (in_code) {
		/* Close the code block only if the cut left one open. */
		size_t fences = 0;
		for (const char *p = sb->buf; (p = strstr(p, "```")); p += 3)
			fences++;
		more = fences % 2 ? "\n…\n```" : "\n…";
	}
	sb_adds(sb, more);
}

cJSON *dc_render_message(const struct reply *r, bool ephemeral_allowed)
{
	cJSON *msg = cJSON_CreateObject();
	cJSON *embeds = cJSON_AddArrayToObject(msg, "embeds");
	cJSON *e = cJSON_CreateObject();
	cJSON_AddItemToArray(embeds, e);
	if (r->title && *r->title) {
		struct strbuf t = STRBUF_INIT;
		dc_escape(&t, r->title);
		clip(&t, DC_MAX_TITLE, false);
		cJSON_AddStringToObject(e, "title", sb_str(&t));
		sb_release(&t);
	}
	struct strbuf d = STRBUF_INIT;
	bool in_code = false, any_code = false;
	for (size_t i = 0; i < r->nlines; i++) {
		const struct reply_line *l = &r->lines[i];
		bool mono = l->style == LINE_MONO;
		if (mono && !in_code) {
			sb_adds(&d, d.len ? "\n```\n" : "```\n");
			in_code = any_code = true;
		} else if (!mono && in_code) {
			sb_adds(&d, "\n```");
			in_code = false;
		}
		if (d.len && !(mono && d.len >= 4 && strcmp(d.buf + d.len - 4, "```\n") == 0))
			sb_addc(&d, '\n');
		if (mono)
			add_mono(&d, l->text);
		else
			dc_escape(&d, l->text);
	}
	if (in_code)
		sb_adds(&d, "\n```");
	clip(&d, DC_MAX_DESCRIPTION, any_code);
	if (d.len)
		cJSON_AddStringToObject(e, "description", sb_str(&d));
	sb_release(&d);
	cJSON_AddNumberToObject(e, "color", colour[r->kind]);
	cJSON *am = cJSON_AddObjectToObject(msg, "allowed_mentions");
	cJSON_AddArrayToObject(am, "parse");
	if (r->ephemeral && ephemeral_allowed)
		cJSON_AddNumberToObject(msg, "flags", EPHEMERAL);
	return msg;
}

enum opt_type { OPT_SUB = 1, OPT_STRING = 3, OPT_USER = 6 };

static cJSON *option(cJSON *opts, enum opt_type type, const char *name, const char *desc,
		     bool required, bool autocomplete)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "type", type);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "description", desc);
	if (required)
		cJSON_AddTrueToObject(o, "required");
	if (autocomplete)
		cJSON_AddTrueToObject(o, "autocomplete");
	if (type == OPT_STRING && strcmp(name, "note") == 0)
		cJSON_AddNumberToObject(o, "max_length", 500);
	cJSON_AddItemToArray(opts, o);
	return o;
}

static void choices(cJSON *o, const char *const *values)
{
	cJSON *c = cJSON_AddArrayToObject(o, "choices");
	for (; *values; values++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "name", *values);
		cJSON_AddStringToObject(x, "value", *values);
		cJSON_AddItemToArray(c, x);
	}
}

static cJSON *command(cJSON *all, const char *name, const char *desc)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "name", name);
	cJSON_AddNumberToObject(c, "type", 1);
	cJSON_AddStringToObject(c, "description", desc);
	cJSON_AddFalseToObject(c, "dm_permission");
	cJSON_AddItemToArray(all, c);
	return c;
}

cJSON *dc_command_definitions(void)
{
	cJSON *all = cJSON_CreateArray();
	for (const char *const *n = bot_command_names(); *n; n++) {
		const char *name = *n;
		cJSON *c = command(all, name, bot_command_summary(name));
		cJSON *opts = cJSON_AddArrayToObject(c, "options");
		if (!strcmp(name, "done") || !strcmp(name, "start")) {
			option(opts, OPT_STRING, "topic", "the roadmap topic", true, true);
			option(opts, OPT_STRING, "note", "a note for the group (optional)", false,
			       false);
		} else if (!strcmp(name, "skip") || !strcmp(name, "reset") ||
			   !strcmp(name, "who")) {
			option(opts, OPT_STRING, "topic", "the roadmap topic", true, true);
		} else if (!strcmp(name, "progress")) {
			option(opts, OPT_USER, "member", "a groupmate (default: you)", false,
			       false);
		} else if (!strcmp(name, "leaderboard")) {
			cJSON *o = option(opts, OPT_STRING, "period",
					  "week, month or all (default)", false, false);
			choices(o, (const char *const[]){"week", "month", "all", NULL});
		} else if (!strcmp(name, "topics")) {
			option(opts, OPT_STRING, "section", "one section only (optional)", false,
			       false);
		} else if (!strcmp(name, "help")) {
			cJSON *o = option(opts, OPT_STRING, "command", "explain one command", false,
					  false);
			choices(o, bot_command_names());
		}
	}
	/* Setting up the digest is for admins: Discord hides it from the others. */
	cJSON *c = command(all, "digest-setup", "admins: where and when the daily digest goes");
	cJSON_AddStringToObject(c, "default_member_permissions", MANAGE_GUILD);
	cJSON *opts = cJSON_AddArrayToObject(c, "options");
	cJSON *o = option(opts, OPT_STRING, "channel", "here: post it in this channel; off: stop",
			  false, false);
	choices(o, (const char *const[]){"here", "off", NULL});
	option(opts, OPT_STRING, "time", "local time HH:MM, e.g. 18:00", false, false);
	option(opts, OPT_STRING, "timezone", "IANA zone, e.g. Europe/Berlin", false, false);
	return all;
}
