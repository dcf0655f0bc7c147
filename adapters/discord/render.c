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

cJSON *dc_render_choices(const struct bot_choice *choices, size_t n)
{
	cJSON *data = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(data, "choices");
	for (size_t i = 0; i < n; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "name", choices[i].label);
		cJSON_AddStringToObject(c, "value", choices[i].value);
		cJSON_AddItemToArray(a, c);
	}
	return data;
}

/* Discord's application command option types. */
enum opt_type { OPT_STRING = 3, OPT_USER = 6 };

static void add_choices(cJSON *o, const char *const *values)
{
	cJSON *c = cJSON_AddArrayToObject(o, "choices");
	for (; *values; values++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "name", *values);
		cJSON_AddStringToObject(x, "value", *values);
		cJSON_AddItemToArray(c, x);
	}
}

static void add_option(cJSON *opts, const struct bot_option *d)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "type", d->type == BOT_OPTION_MEMBER ? OPT_USER : OPT_STRING);
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "description", d->description);
	if (d->required)
		cJSON_AddTrueToObject(o, "required");
	if (d->autocomplete)
		cJSON_AddTrueToObject(o, "autocomplete");
	if (d->min_length)
		cJSON_AddNumberToObject(o, "min_length", d->min_length);
	if (d->max_length)
		cJSON_AddNumberToObject(o, "max_length", d->max_length);
	if (d->command_choices)
		add_choices(o, bot_command_names());
	else if (d->choices)
		add_choices(o, d->choices);
	cJSON_AddItemToArray(opts, o);
}

cJSON *dc_command_definitions(void)
{
	cJSON *all = cJSON_CreateArray();
	for (size_t i = 0; i < bot_command_count(); i++) {
		const struct bot_command *d = bot_command_at(i);
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "name", d->name);
		cJSON_AddNumberToObject(c, "type", 1); /* CHAT_INPUT: a slash command */
		cJSON_AddStringToObject(c, "description", d->summary);
		cJSON_AddFalseToObject(c, "dm_permission");
		if (d->admin_only) /* Discord hides it from members without the permission */
			cJSON_AddStringToObject(c, "default_member_permissions", MANAGE_GUILD);
		cJSON *opts = cJSON_AddArrayToObject(c, "options");
		for (size_t k = 0; k < d->n_options; k++)
			add_option(opts, &d->options[k]);
		cJSON_AddItemToArray(all, c);
	}
	return all;
}
