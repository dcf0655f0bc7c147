#include "console.h"

#include "bot/bot.h"
#include "bot/cmdline.h"
#include "bot/err.h"
#include "bot/text.h"
#include "bot/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SPEAKER 32

struct console {
	struct bot *bot;
	struct console_opts o;
	char *group_id;
	volatile sig_atomic_t own_stop;
	bool tty;
};

static bool stopping(const struct console *c)
{
	return c->own_stop || (c->o.stop && *c->o.stop);
}

/*
 * Reads one line (without its newline) into sb, keeping at most
 * CONSOLE_MAX_LINE bytes. Returns 1 for a line, 0 at end of input or on stop,
 * -1 when the line was too long (and has been skipped).
 */
static int read_line(struct console *c, struct strbuf *sb)
{
	bool too_long = false;
	sb_truncate(sb, 0);
	for (;;) {
		int ch = getc(c->o.in);
		if (ch == EOF) {
			if (ferror(c->o.in) && errno == EINTR && !stopping(c)) {
				clearerr(c->o.in);
				continue;
			}
			if (sb->len == 0 && !too_long)
				return 0;
			break;
		}
		if (ch == '\n')
			break;
		if (sb->len < CONSOLE_MAX_LINE)
			sb_addc(sb, (char)ch);
		else
			too_long = true;
	}
	return too_long ? -1 : 1;
}

static void print_reply(struct console *c, const struct reply *r)
{
	char *text = reply_render_text(r);
	fputs(text, c->o.out);
	fputc('\n', c->o.out);
	fflush(c->o.out);
	free(text);
}

static void notice(struct console *c, const char *title, const char *line)
{
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_ERROR, "%s", title);
	if (line)
		reply_line(&r, "%s", line);
	print_reply(c, &r);
	reply_release(&r);
}

static void handle_line(struct console *c, char *line)
{
	char speaker[MAX_SPEAKER + 1];
	snprintf(speaker, sizeof(speaker), "%s", c->o.member);
	bool owner = true;
	text_trim(line);
	if (!*line || line[0] == '#')
		return;
	if (line[0] == '@') {
		size_t n = strcspn(line + 1, " \t");
		if (n == 0 || n > MAX_SPEAKER) {
			notice(c, "Say who speaks as @name (1 to 32 characters), then the command",
			       "For example: @bob /done Redis");
			return;
		}
		memcpy(speaker, line + 1, n);
		speaker[n] = '\0';
		owner = strcmp(speaker, c->o.member) == 0;
		line = text_trim(line + 1 + n);
	}
	if (!c->tty) {
		/* A piped session reads as a transcript: who said what, then the answer. */
		struct strbuf echo = STRBUF_INIT;
		sb_addf(&echo, "%s> ", speaker);
		text_add_printable(&echo, line, false);
		fprintf(c->o.out, "%s\n", sb_str(&echo));
		sb_release(&echo);
	}
	static const char *const prefixes[] = {"/", "!", NULL};
	char *command, *args;
	if (!cmdline_parse(line, prefixes, &command, &args)) {
		notice(c, "Commands start with /", "Try /help, or /done TOPIC.");
		return;
	}
	char *member_id = xasprintf("console:%s", speaker);
	struct event ev = {
		.platform = "console",
		.group_id = c->group_id,
		.channel_id = "console",
		.member_id = member_id,
		.member_name = speaker,
		.is_admin = owner,
		.command = command,
		.args = args,
	};
	struct reply r;
	reply_init(&r);
	bot_handle(c->bot, &ev, &r);
	print_reply(c, &r);
	reply_release(&r);
	free(member_id);
	free(command);
	free(args);
}

static int console_run(void *self)
{
	struct console *c = self;
	struct strbuf line = STRBUF_INIT;
	if (c->tty)
		fprintf(c->o.out, "cohort console \u2014 you are %s in group %s. /help lists the "
				  "commands; Ctrl-D quits.\n",
			c->o.member, c->o.group);
	while (!stopping(c)) {
		if (c->tty) {
			fprintf(c->o.out, "%s> ", c->o.member);
			fflush(c->o.out);
		}
		int rc = read_line(c, &line);
		if (rc == 0)
			break;
		if (rc < 0) {
			notice(c, "That line is too long", "Lines may be up to 16384 bytes.");
			continue;
		}
		handle_line(c, line.buf);
	}
	sb_release(&line);
	return COHORT_OK;
}

static void console_stop(void *self)
{
	((struct console *)self)->own_stop = 1;
}

static int console_post(void *self, const char *channel_id, const struct reply *r)
{
	(void)channel_id;
	print_reply(self, r);
	return COHORT_OK;
}

static void console_free(void *self)
{
	struct console *c = self;
	if (!c)
		return;
	free(c->group_id);
	free(c);
}

static const struct adapter_ops console_ops = {
	"console", console_run, console_stop, console_post, console_free,
};

struct adapter console_new(struct bot *b, const struct console_opts *opts)
{
	struct console *c = xcalloc(1, sizeof(*c));
	c->bot = b;
	c->o = *opts;
	c->group_id = xasprintf("console:%s", opts->group);
	c->tty = isatty(fileno(opts->in));
	return (struct adapter){&console_ops, c};
}
