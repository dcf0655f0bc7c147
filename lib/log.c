#include "log.h"

#include "text.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static enum log_format format = LOG_TEXT;

/* Threads log at once and a login adds a secret at any time: both under this lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t nsecrets, capsecrets;
static FILE *file; /* NULL: stderr */
static char *path; /* what log_open() opened, for log_reopen() */

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

void log_set_format(enum log_format f)
{
	format = f;
}

void log_add_secret(const char *s)
{
	if (!s || !*s)
		return;
	pthread_mutex_lock(&lock);
	grow_array((void **)&secrets, &capsecrets, nsecrets + 1, sizeof(*secrets));
	secrets[nsecrets++] = xstrdup(s);
	pthread_mutex_unlock(&lock);
}

void log_clear_secrets(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i]);
	free(secrets);
	secrets = NULL;
	nsecrets = capsecrets = 0;
	pthread_mutex_unlock(&lock);
}

static FILE *open_append(const char *p, char *err)
{
	/* Readable by cohort's own user only, whatever the umask (the log names members). */
	int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (!f && fd >= 0)
		close(fd);
	if (!f)
		snprintf(err, 512, "%s: cannot open the log file: %s (check log.file)", p,
			 strerror(errno));
	else
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

int log_open(const char *p, char *err)
{
	FILE *f = NULL;
	if (p && *p && !(f = open_append(p, err)))
		return -1;
	pthread_mutex_lock(&lock);
	if (file)
		fclose(file);
	file = f;
	free(path);
	path = f ? xstrdup(p) : NULL;
	pthread_mutex_unlock(&lock);
	return 0;
}

void log_reopen(void)
{
	char err[512];
	pthread_mutex_lock(&lock);
	char *p = path ? xstrdup(path) : NULL;
	pthread_mutex_unlock(&lock);
	if (!p)
		return;
	if (log_open(p, err))
		fprintf(stderr, "%s\n", err); /* keeps writing to the old file */
	free(p);
}

void log_close(void)
{
	pthread_mutex_lock(&lock);
	if (file)
		fclose(file);
	file = NULL;
	free(path);
	path = NULL;
	pthread_mutex_unlock(&lock);
}

/*
 * The code point of a character that must not reach a terminal or a log reader raw
 * (text_unsafe(): a control, a bidirectional override), or -1 for a byte that is not
 * UTF-8. k is its length.
 */
static long unsafe_point(const unsigned char *p, size_t k)
{
	if (k == 1)
		return *p < 0x80 ? *p : -1;
	if (k == 2)
		return ((long)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
	return ((long)(p[0] & 0x0f) << 12) | ((long)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
}

static void json_string(struct strbuf *out, const char *s)
{
	sb_addc(out, '"');
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		unsigned char c = (unsigned char)*s;
		long cp = unsafe ? unsafe_point((const unsigned char *)s, k) : 0;
		if (c == '"' || c == '\\')
			sb_addf(out, "\\%c", c);
		else if (c == '\n')
			sb_adds(out, "\\n");
		else if (unsafe)
			sb_addf(out, "\\u%04lx", cp < 0 ? 0xfffdL : cp);
		else
			sb_add(out, s, k);
		s += k;
		n -= k;
	}
	sb_addc(out, '"');
}

/*
 * s for a text log line: line breaks become spaces (one line per event), other
 * control characters, DEL, C1 controls and bidirectional overrides are shown as
 * \xNN or \uNNNN, as are bytes that are not UTF-8, so a room id or a name
 * carrying ESC or BEL cannot drive the terminal of whoever reads the log.
 */
static void add_visible(struct strbuf *out, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		unsigned char c = (unsigned char)*s;
		long cp = unsafe ? unsafe_point((const unsigned char *)s, k) : 0;
		if (c == '\n' || c == '\r')
			sb_addc(out, ' ');
		else if (!unsafe || c == '\t')
			sb_add(out, s, k);
		else if (cp < 0x100)
			sb_addf(out, "\\x%02x", cp < 0 ? c : (unsigned)cp);
		else
			sb_addf(out, "\\u%04lx", cp);
		s += k;
		n -= k;
	}
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

	struct strbuf msg = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&msg, fmt, ap);
	va_end(ap);
	struct strbuf line = STRBUF_INIT;
	pthread_mutex_lock(&lock);
	redact(&msg);
	if (format == LOG_JSON) {
		sb_adds(&line, "{\"time\":");
		json_string(&line, stamp);
		sb_adds(&line, ",\"level\":");
		json_string(&line, log_level_name(level));
		sb_adds(&line, ",\"module\":");
		json_string(&line, tag);
		sb_adds(&line, ",\"msg\":");
		json_string(&line, sb_str(&msg));
		sb_addc(&line, '}');
	} else {
		sb_addf(&line, "%s %-5s [", stamp, log_level_name(level));
		add_visible(&line, tag);
		sb_adds(&line, "] ");
		add_visible(&line, sb_str(&msg));
	}
	sb_addc(&line, '\n');
	fputs(line.buf, file ? file : stderr);
	pthread_mutex_unlock(&lock);
	sb_release(&line);
	sb_release(&msg);
}
