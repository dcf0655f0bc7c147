#include "reply.h"

#include "lib/text.h"
#include "lib/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void reply_init(struct reply *r)
{
	memset(r, 0, sizeof(*r));
}

void reply_clear(struct reply *r)
{
	free(r->title);
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i].text);
	free(r->lines);
	reply_init(r);
}

void reply_release(struct reply *r)
{
	reply_clear(r);
}

void reply_title(struct reply *r, enum reply_kind kind, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	free(r->title);
	r->title = sb_detach(&sb);
	r->kind = kind;
}

static void add_line(struct reply *r, enum line_style style, const char *fmt, va_list ap)
{
	struct strbuf sb = STRBUF_INIT;
	sb_vaddf(&sb, fmt, ap);
	grow_array((void **)&r->lines, &r->cap, r->nlines + 1, sizeof(*r->lines));
	r->lines[r->nlines].style = style;
	r->lines[r->nlines].text = sb_detach(&sb);
	r->nlines++;
}

void reply_line(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_line(r, LINE_TEXT, fmt, ap);
	va_end(ap);
}

void reply_mono(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_line(r, LINE_MONO, fmt, ap);
	va_end(ap);
}

char *reply_render_text(const struct reply *r)
{
	static const char *const marks[] = {[REPLY_INFO] = "",
					    [REPLY_SUCCESS] = "\u2713 ",
					    [REPLY_ERROR] = "\u2717 ",
					    [REPLY_QUESTION] = "? "};
	struct strbuf sb = STRBUF_INIT;
	if (r->title) {
		sb_adds(&sb, marks[r->kind]);
		text_add_printable(&sb, r->title, false);
		sb_addc(&sb, '\n');
	}
	for (size_t i = 0; i < r->nlines; i++) {
		sb_adds(&sb, "  ");
		text_add_printable(&sb, r->lines[i].text, false);
		sb_addc(&sb, '\n');
	}
	return sb_detach(&sb);
}
