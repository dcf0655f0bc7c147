#include "metrics.h"

#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum kind { COUNTER, HISTOGRAM };

struct family {
	const char *name;
	enum kind kind;
	const char *help;
	const char *zero; /* a label list shown at 0 before anything is counted, or NULL */
};

static const struct family families[] = {
	{METRIC_COMMANDS, COUNTER, "Commands handled, by command and platform.", NULL},
	{METRIC_REPLY_SECONDS, HISTOGRAM,
	 "Time from a command reaching the bot to its reply being ready (store commit included).",
	 NULL},
	{METRIC_DIGESTS, COUNTER, "Daily digests posted, by result (sent, failed).", NULL},
	{METRIC_STORE_COMMIT, HISTOGRAM, "Time a store transaction's commit took.", NULL},
	{METRIC_HTTP_REQUESTS, COUNTER, "HTTP requests answered, by status code.", NULL},
	{"cohort_metrics_dropped_total", COUNTER,
	 "Counts dropped because the table of series was full.", ""},
};

/* Bucket upper bounds in seconds (the +Inf bucket is the count). */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct series {
	const struct family *family;
	char labels[METRICS_MAX_LABELS];
	_Atomic uint64_t value;            /* a counter; a histogram's count */
	_Atomic uint64_t sum_ns;           /* a histogram's sum */
	_Atomic uint64_t buckets[NBOUNDS]; /* a histogram's per-bucket (not cumulative) counts */
};

static struct series table[METRICS_MAX_SERIES];
static _Atomic size_t published; /* table[0..published) is complete and never changes */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t dropped;

static const struct family *family_of(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(families); i++)
		if (strcmp(families[i].name, name) == 0)
			return &families[i];
	return NULL;
}

static struct series *scan(const struct family *f, const char *labels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].family == f && strcmp(table[i].labels, labels) == 0)
			return &table[i];
	return NULL;
}

/* The series of (family, labels), made on first use; NULL when it cannot be. */
static struct series *find(const char *name, const char *labels)
{
	size_t n = atomic_load_explicit(&published, memory_order_acquire);
	const struct family *f = family_of(name);
	if (!f || strlen(labels) >= METRICS_MAX_LABELS) {
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		return NULL;
	}
	struct series *s = scan(f, labels, n);
	if (s)
		return s;
	pthread_mutex_lock(&insert_lock);
	n = atomic_load_explicit(&published, memory_order_relaxed);
	s = scan(f, labels, n);
	if (!s && n < METRICS_MAX_SERIES) {
		s = &table[n];
		s->family = f;
		snprintf(s->labels, sizeof(s->labels), "%s", labels);
		atomic_store_explicit(&published, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&insert_lock);
	if (!s)
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
	return s;
}

void metrics_add(const char *family, const char *labels, uint64_t n)
{
	struct series *s = find(family, labels);
	if (s)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

double metrics_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_observe(const char *family, const char *labels, double seconds)
{
	struct series *s = find(family, labels);
	if (!s)
		return;
	if (seconds < 0)
		seconds = 0;
	size_t b = 0;
	while (b < NBOUNDS && seconds > bounds[b])
		b++;
	if (b < NBOUNDS)
		atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
	/* Release: a scrape that sees this count sees the bucket and sum added above it. */
	atomic_fetch_add_explicit(&s->value, 1, memory_order_release);
}

static void series_name(struct strbuf *out, const char *name, const char *suffix,
			const char *labels, const char *extra)
{
	sb_addf(out, "%s%s", name, suffix);
	if (*labels || extra) {
		sb_addf(out, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
	}
}

static void render_histogram(struct strbuf *out, const struct series *s)
{
	const char *name = s->family->name;
	/* Read the count first, with acquire (paired with metrics_observe()'s release on it, and
	 * its fetch-adds continue each other's release sequences): every observation counted
	 * has its bucket visible, so the buckets may run ahead of the count, never behind, on
	 * weakly ordered CPUs (ARM) too. */
	uint64_t count = atomic_load_explicit(&s->value, memory_order_acquire);
	uint64_t cum = 0;
	for (size_t b = 0; b < NBOUNDS; b++) {
		cum += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
		char le[40];
		snprintf(le, sizeof(le), "le=\"%g\"", bounds[b]);
		series_name(out, name, "_bucket", s->labels, le);
		sb_addf(out, " %llu\n", (unsigned long long)(cum < count ? cum : count));
	}
	series_name(out, name, "_bucket", s->labels, "le=\"+Inf\"");
	sb_addf(out, " %llu\n", (unsigned long long)count);
	series_name(out, name, "_sum", s->labels, NULL);
	sb_addf(out, " %.9f\n",
		(double)atomic_load_explicit(&s->sum_ns, memory_order_relaxed) / 1e9);
	series_name(out, name, "_count", s->labels, NULL);
	sb_addf(out, " %llu\n", (unsigned long long)count);
}

void metrics_render(struct strbuf *out)
{
	size_t n = atomic_load_explicit(&published, memory_order_acquire);
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		const struct family *f = &families[i];
		bool dropped_family = strcmp(f->name, "cohort_metrics_dropped_total") == 0;
		bool any = f->zero != NULL;
		for (size_t k = 0; k < n && !any; k++)
			any = table[k].family == f;
		if (!any)
			continue;
		sb_addf(out, "# HELP %s %s\n", f->name, f->help);
		sb_addf(out, "# TYPE %s %s\n", f->name,
			f->kind == COUNTER ? "counter" : "histogram");
		if (dropped_family) {
			sb_addf(out, "%s %llu\n", f->name,
				(unsigned long long)atomic_load_explicit(&dropped,
									 memory_order_relaxed));
			continue;
		}
		for (size_t k = 0; k < n; k++) {
			const struct series *s = &table[k];
			if (s->family != f)
				continue;
			if (f->kind == HISTOGRAM) {
				render_histogram(out, s);
				continue;
			}
			series_name(out, f->name, "", s->labels, NULL);
			sb_addf(out, " %llu\n",
				(unsigned long long)atomic_load_explicit(&s->value,
									 memory_order_relaxed));
		}
	}
}

void metrics_reset(void)
{
	pthread_mutex_lock(&insert_lock);
	size_t n = atomic_load_explicit(&published, memory_order_relaxed);
	memset(table, 0, n * sizeof(table[0]));
	atomic_store_explicit(&published, 0, memory_order_release);
	atomic_store_explicit(&dropped, 0, memory_order_relaxed);
	pthread_mutex_unlock(&insert_lock);
}
