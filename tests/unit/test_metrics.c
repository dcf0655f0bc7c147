/* The metrics table: counters, histograms, the exposition text, and counting from threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/metrics.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int reset(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

static char *render(void)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_render(&sb);
	return sb_detach(&sb);
}

static void counters_count_per_label_set(void **state)
{
	(void)state;
	metrics_count(METRIC_COMMANDS, "command=\"done\",platform=\"discord\"");
	metrics_count(METRIC_COMMANDS, "command=\"done\",platform=\"discord\"");
	metrics_add(METRIC_COMMANDS, "command=\"help\",platform=\"matrix\"", 5);
	char *text = render();
	assert_non_null(strstr(text, "# TYPE cohort_commands_total counter\n"));
	assert_non_null(strstr(text, "# HELP cohort_commands_total "));
	assert_non_null(
		strstr(text, "cohort_commands_total{command=\"done\",platform=\"discord\"} 2\n"));
	assert_non_null(
		strstr(text, "cohort_commands_total{command=\"help\",platform=\"matrix\"} 5\n"));
	/* One HELP per family, whatever the number of series. */
	const char *help = strstr(text, "# HELP cohort_commands_total");
	assert_null(strstr(help + 1, "# HELP cohort_commands_total"));
	free(text);
}

static void histograms_are_cumulative(void **state)
{
	(void)state;
	metrics_observe(METRIC_STORE_COMMIT, "", 0.0002); /* the first bucket */
	metrics_observe(METRIC_STORE_COMMIT, "", 0.003);  /* le 0.005 */
	metrics_observe(METRIC_STORE_COMMIT, "", 99);     /* +Inf only */
	char *text = render();
	assert_non_null(strstr(text, "# TYPE cohort_store_commit_seconds histogram\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_bucket{le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_bucket{le=\"0.0025\"} 1\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_bucket{le=\"0.005\"} 2\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_bucket{le=\"10\"} 2\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_count 3\n"));
	assert_non_null(strstr(text, "cohort_store_commit_seconds_sum 99.0032"));
	free(text);
}

static void labels_go_beside_le(void **state)
{
	(void)state;
	metrics_observe(METRIC_REPLY_SECONDS, "platform=\"console\"", 0.02);
	char *text = render();
	assert_non_null(
		strstr(text, "cohort_reply_seconds_bucket{platform=\"console\",le=\"0.025\"} 1\n"));
	assert_non_null(strstr(text, "cohort_reply_seconds_count{platform=\"console\"} 1\n"));
	free(text);
}

static void unknown_families_and_a_full_table_are_dropped_and_counted(void **state)
{
	(void)state;
	metrics_count("no_such_family_total", "");
	char labels[64];
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(labels, sizeof(labels), "code=\"%d\"", i);
		metrics_count(METRIC_HTTP_REQUESTS, labels);
	}
	char *text = render();
	assert_null(strstr(text, "no_such_family"));
	assert_non_null(strstr(text, "cohort_metrics_dropped_total 11\n"));
	free(text);
}

#define THREADS 4
#define PER_THREAD 100000

static void *bump(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_count(METRIC_DIGESTS, "result=\"sent\"");
		metrics_observe(METRIC_STORE_COMMIT, "", 0.001);
	}
	return NULL;
}

static void threads_lose_no_count(void **state)
{
	(void)state;
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, bump, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *text = render();
	char want[128];
	snprintf(want, sizeof(want), "cohort_digests_total{result=\"sent\"} %d\n",
		 THREADS * PER_THREAD);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "cohort_store_commit_seconds_count %d\n",
		 THREADS * PER_THREAD);
	assert_non_null(strstr(text, want));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(counters_count_per_label_set, reset),
		cmocka_unit_test_setup(histograms_are_cumulative, reset),
		cmocka_unit_test_setup(labels_go_beside_le, reset),
		cmocka_unit_test_setup(unknown_families_and_a_full_table_are_dropped_and_counted,
				       reset),
		cmocka_unit_test_setup(threads_lose_no_count, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
