/*
 * Levelled log lines on stderr or a file: "2026-11-25T13:50:47Z warn  [store] message",
 * or JSON. Any thread may log; each line is written whole.
 *
 * Every registered secret is replaced by "[redacted]" before a line is
 * written, so a token that reaches a format argument never reaches the log.
 */
#ifndef COHORT_LOG_H
#define COHORT_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
/* LOG_JSON: one object per line, {"time","level","module","msg"}, for log shippers. */
enum log_format { LOG_TEXT, LOG_JSON };

void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug". Returns false for anything else. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_format(enum log_format f);

/*
 * Appends to the file at path from now on ("" or NULL: stderr). Returns 0, or
 * -1 with the reason in err (512 bytes) and the output unchanged.
 */
int log_open(const char *path, char *err);
/* Opens the same file again (after logrotate moved it; SIGHUP). */
void log_reopen(void);
/* Back to stderr. */
void log_close(void);

/* Registers a secret to redact from every later line; s is copied. Empty s is ignored. */
void log_add_secret(const char *s);
/* Forgets every registered secret. */
void log_clear_secrets(void);

void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(tag, ...) log_msg(LOG_ERROR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...) log_msg(LOG_INFO, tag, __VA_ARGS__)
#define log_debug(tag, ...) log_msg(LOG_DEBUG, tag, __VA_ARGS__)

#endif
