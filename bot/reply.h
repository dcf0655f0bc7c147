/*
 * A platform-neutral reply: a title, lines of plain text (some monospace, for
 * bars and tables), and flags. Text is plain: renderers escape it for their
 * platform, so user text can never become markup or a mention.
 * A reply is owned by whoever renders it: reply_init() ... reply_release().
 */
#ifndef COHORT_REPLY_H
#define COHORT_REPLY_H

#include <stdbool.h>
#include <stddef.h>

enum reply_kind { REPLY_INFO, REPLY_SUCCESS, REPLY_ERROR, REPLY_QUESTION };
enum line_style { LINE_TEXT, LINE_MONO };

struct reply_line {
	enum line_style style;
	char *text;
};

struct reply {
	enum reply_kind kind;
	bool ephemeral; /* personal: only the asking member should see it */
	char *title;
	struct reply_line *lines;
	size_t nlines;
	size_t cap;
};

void reply_init(struct reply *r);
void reply_release(struct reply *r);
/* Sets the kind and title (replacing any earlier one). */
void reply_title(struct reply *r, enum reply_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void reply_line(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_mono(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops everything (for replacing a half-built reply with an error). */
void reply_clear(struct reply *r);

/*
 * Renders r as plain text for a terminal: the title (with a mark for its
 * kind), then each line indented by two spaces. Control characters in the
 * text are replaced. Returns a new string.
 */
char *reply_render_text(const struct reply *r);

#endif
