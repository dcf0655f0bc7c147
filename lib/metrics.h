/*
 * Process-wide counters and histograms for GET /metrics (Prometheus text
 * format). Counting is cheap and thread-safe: a series is found by a scan of
 * a fixed table and bumped with an atomic add; only a series' first use takes
 * a lock. Every family is declared in metrics.c (name, type, help), so the
 * exposition always says what a number means.
 *
 * labels is a ready Prometheus label list without braces,
 * 'command="done",platform="discord"' (or "" for none). Callers pass values
 * from small fixed sets only (never user text): at most METRICS_MAX_SERIES
 * series exist, and counts beyond that are dropped (and counted in
 * cohort_metrics_dropped_total).
 *
 * Threading: every function from any thread.
 */
#ifndef COHORT_METRICS_H
#define COHORT_METRICS_H

#include <stdint.h>

struct strbuf;

#define METRICS_MAX_SERIES 512
#define METRICS_MAX_LABELS 96 /* bytes of a label list */

/* Families (the names metrics.c declares). */
#define METRIC_COMMANDS "cohort_commands_total"           /* command, platform */
#define METRIC_REPLY_SECONDS "cohort_reply_seconds"       /* platform */
#define METRIC_DIGESTS "cohort_digests_total"             /* result: sent | failed */
#define METRIC_STORE_COMMIT "cohort_store_commit_seconds" /* (none) */
#define METRIC_HTTP_REQUESTS "cohort_http_requests_total" /* code */

/* Adds n to a counter. */
void metrics_add(const char *family, const char *labels, uint64_t n);
static inline void metrics_count(const char *family, const char *labels)
{
	metrics_add(family, labels, 1);
}

/* A monotonic clock in seconds, for timing what metrics_observe() records. */
double metrics_clock(void);

/* Records one observation (seconds) in a histogram. */
void metrics_observe(const char *family, const char *labels, double seconds);

/*
 * Appends every declared family that has a series (and the counters that
 * start at zero: commands, digests) in the text exposition format 0.0.4.
 */
void metrics_render(struct strbuf *out);

/* Forgets every series (tests). Not while other threads count. */
void metrics_reset(void);

#endif
