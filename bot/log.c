#include "log.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level current = LOG_INFO;
static char **secrets;
static size_t nsecrets, capsecrets;

static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	current = level;
}

bool log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(enum log_level level)
{
	return (size_t)level < ARRAY_SIZE(names) ? names[level] : "?";
}

void log_add_secret(const char *s)
{
	if (!s || !*s)
		return;
	grow_array((void **)&secrets, &capsecrets, nsecrets + 1, sizeof(*secrets));
	secrets[nsecrets++] = xstrdup(s);
}

void log_clear_secrets(void)
{
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i]);
	free(secrets);
	secrets = NULL;
	nsecrets = capsecrets = 0;
}

static void redact(struct strbuf *sb)
{
	for (size_t i = 0; i < nsecrets; i++) {
		size_t n = strlen(secrets[i]);
		char *hit;
		size_t from = 0;
		while ((hit = strstr(sb->buf + from, secrets[i]))) {
			struct strbuf out = STRBUF_INIT;
			size_t at = (size_t)(hit - sb->buf);
			sb_add(&out, sb->buf, at);
			sb_adds(&out, "[redacted]");
			from = out.len;
			sb_adds(&out, hit + n);
			sb_release(sb);
			*sb = out;
		}
	}
}

void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
{
	if (level > current)
		return;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

	struct strbuf sb = STRBUF_INIT;
	sb_addf(&sb, "%s %-5s [%s] ", stamp, log_level_name(level), tag);
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	redact(&sb);
	/* One line per event: a newline inside a message would forge a second line. */
	for (size_t i = 0; i < sb.len; i++)
		if (sb.buf[i] == '\n' || sb.buf[i] == '\r')
			sb.buf[i] = ' ';
	sb_addc(&sb, '\n');
	fputs(sb.buf, stderr);
	sb_release(&sb);
}
