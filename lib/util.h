/*
 * Memory helpers, a growable string buffer, and the two POSIX helpers the
 * modules that own a thread or a poll loop share.
 *
 * Out of memory is decided here, once: the x* allocators print a message and
 * abort instead of returning NULL, so callers never check.
 */
#ifndef COHORT_UTIL_H
#define COHORT_UTIL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Makes cJSON allocate through xmalloc, so its out-of-memory is decided here
 * too (a message and abort, not a NULL nobody checks); what it returns is
 * still freed with free() or cJSON_free(). Call once at start, before any
 * thread. Inline so that programs without cJSON (the parsers' fuzzers) link.
 */
static inline void json_use_xmalloc(void)
{
	cJSON_Hooks hooks = {xmalloc, free};
	cJSON_InitHooks(&hooks);
}

/*
 * A uniformly distributed number in [0, 1) for jitter: a per-process generator
 * seeded on first use from getrandom(2) (else /dev/urandom, else the clock and
 * the pid), so no two processes back off in step. Any thread; lock-free.
 */
double random_unit(void);
/* Restarts the generator from seed: the same sequence every time (tests). */
void random_seed(uint64_t seed);

/* Grows the array *p of *cap elements of size sz so that it holds at least need. */
void grow_array(void **p, size_t *cap, size_t need, size_t sz);

/*
 * A pipe for waking a poll() loop: both ends non-blocking and close-on-exec,
 * so a writer (a signal handler too) never blocks on a full pipe. 0 or -1.
 */
int wake_pipe(int fds[2]);

/*
 * Starts a thread with every signal blocked: signals are the main thread's,
 * which owns the shutdown. pthread_create's result (0 or an errno value).
 */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* A NUL-terminated growable string. Zero-initialise or use STRBUF_INIT. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};
#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void sb_add(struct strbuf *sb, const char *s, size_t n);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addc(struct strbuf *sb, char c);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* The contents; "" for an empty buffer. Borrowed until the next change. */
const char *sb_str(const struct strbuf *sb);
void sb_truncate(struct strbuf *sb, size_t len);
/* Hands the string over to the caller (never NULL) and empties the buffer. */
char *sb_detach(struct strbuf *sb);
void sb_release(struct strbuf *sb);

#endif
