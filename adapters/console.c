#include "console.h"

#include "bot/adapter.h"
#include "bot/bot.h"
#include "bot/cmdline.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SPEAKER 32

struct console {
	struct door *door;
	struct console_opts o;
	char *group_id;
	bool tty;
	struct strbuf in; /* bytes read and not yet taken as lines */
	bool eof;
	bool discarding; /* inside a line that was too long */
	bool need_prompt;
	bool answered; /* the line submitted last was answered */
};

static bool stopping(const struct console *c)
{
	return c->o.stop && *c->o.stop;
}

/*
 * Takes the next complete line (without its newline) out of the input buffer.
 * Returns 1 for a line, 0 when no complete line is buffered, -1 when a line
 * went over CONSOLE_MAX_LINE (it is skipped up to its newline).
 */
static int take_line(struct console *c, struct strbuf *line)
{
	char *nl = c->in.len ? memchr(c->in.buf, '\n', c->in.len) : NULL;
	if (!nl) {
		if (c->in.len > CONSOLE_MAX_LINE && !c->discarding) {
			c->discarding = true;
			sb_truncate(&c->in, 0);
			return -1;
		}
		if (c->discarding)
			sb_truncate(&c->in, 0);
		return 0;
	}
	size_t n = (size_t)(nl - c->in.buf);
	bool skip = c->discarding || n > CONSOLE_MAX_LINE;
	sb_truncate(line, 0);
	if (!skip)
		sb_add(line, c->in.buf, n);
	memmove(c->in.buf, nl + 1, c->in.len - n - 1);
	sb_truncate(&c->in, c->in.len - n - 1);
	if (c->discarding) {
		c->discarding = false;
		return take_line(c, line);
	}
	return skip ? -1 : 1;
}

/* Waits for input (running the tick meanwhile) and appends what arrives. */
static void fill(struct console *c)
{
	int64_t wait = c->o.tick ? c->o.tick(c->o.tick_ud) : -1;
	if (c->tty && c->need_prompt) {
		fprintf(c->o.out, "%s> ", c->o.member);
		fflush(c->o.out);
		c->need_prompt = false;
	}
	struct pollfd pfd[2] = {{c->o.in, POLLIN, 0}, {c->o.wake, POLLIN, 0}};
	int n = poll(pfd, c->o.wake >= 0 ? 2 : 1, wait < 0 || wait > 60000 ? 60000 : (int)wait);
	if (n > 0 && c->o.wake >= 0 && pfd[1].revents) {
		char drain[64];
		ssize_t got = read(c->o.wake, drain, sizeof(drain));
		(void)got;
		return; /* look at the stop flag again */
	}
	if (n <= 0 || !pfd[0].revents)
		return; /* time to tick again, or a signal */
	char buf[4096];
	ssize_t got = read(c->o.in, buf, sizeof(buf));
	if (got > 0)
		sb_add(&c->in, buf, (size_t)got);
	else if (got == 0 || errno != EINTR)
		c->eof = true;
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

/* The answer sink of a line: prints the reply (the console's thread, in pump()). */
static void console_answered(void *arg, const struct door_answer *a)
{
	struct console *c = arg;
	print_reply(c, a->reply);
	c->answered = true;
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
		/* "@\e[2J /done" must not clear a screen. */
		text_add_printable(&echo, speaker, false);
		sb_adds(&echo, "> ");
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
	c->answered = false;
	door_submit(c->door, &ev, &(struct answer_sink){console_answered, NULL, c});
	if (c->o.pump)
		c->o.pump(c->o.tick_ud);
	if (!c->answered)
		log_error("console", "no answer yet to /%s (the console runs without a pump)",
			  command);
	free(member_id);
	free(command);
	free(args);
}

int console_run(struct console *c)
{
	struct strbuf line = STRBUF_INIT;
	if (c->tty)
		fprintf(c->o.out,
			"cohort console \u2014 you are %s in group %s. /help lists the "
			"commands; Ctrl-D quits.\n",
			c->o.member, c->o.group);
	c->need_prompt = true;
	while (!stopping(c)) {
		int rc = take_line(c, &line);
		if (rc > 0) {
			handle_line(c, line.buf);
			c->need_prompt = true;
		} else if (rc < 0) {
			notice(c, "That line is too long", "Lines may be up to 16384 bytes.");
		} else if (c->eof) {
			/* A last line without a newline still counts. */
			if (c->in.len && !c->discarding) {
				sb_truncate(&line, 0);
				sb_add(&line, c->in.buf, c->in.len);
				sb_truncate(&c->in, 0);
				handle_line(c, line.buf);
			}
			break;
		} else {
			fill(c);
		}
	}
	sb_release(&line);
	return COHORT_OK;
}

int console_post(struct console *c, const struct reply *r)
{
	if (c->tty)
		fputc('\n', c->o.out); /* below the waiting prompt */
	print_reply(c, r);
	c->need_prompt = true;
	return ferror(c->o.out) ? COHORT_ERR_IO : COHORT_OK;
}

void console_free(struct console *c)
{
	if (!c)
		return;
	free(c->group_id);
	sb_release(&c->in);
	free(c);
}

struct console *console_new(struct door *door, const struct console_opts *opts)
{
	struct console *c = xcalloc(1, sizeof(*c));
	c->door = door;
	c->o = *opts;
	c->group_id = xasprintf("console:%s", opts->group);
	c->tty = isatty(opts->in);
	return c;
}
