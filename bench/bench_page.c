/*
 * `make bench-page` (part of `make bench`): the group's page budget of DESIGN
 * §9, measured. Seeds one group of 10,000 members on the built-in roadmap
 * through the real store API (long names with markup characters, notes on a
 * third of the finishes, spread over 200 days), then times reading the page's
 * data from the store plus rendering it, and rendering alone, and weighs the
 * HTML and the JSON. Every number printed is measured in this run.
 */
#include "bot/bot.h"
#include "bot/page.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/util.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEMBERS 10000
#define RUNS 20
#define DAY 86400000LL
#define T0 1795608000000LL /* 2026-11-25 12:00 UTC */
#define GROUP "bench:page"

static int64_t fake_now(void *ud)
{
	(void)ud;
	return T0;
}

static double ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, int n, const char *budget)
{
	qsort(ms, (size_t)n, sizeof(double), cmp_double);
	printf("%-48s p50 %8.2f ms  max %8.2f ms  (%d runs; budget %s)\n", what, ms[n / 2],
	       ms[n - 1], n, budget);
}

/* A small deterministic generator: the same group every run. */
static uint64_t rng = 42;
static unsigned next(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(rng >> 33);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "build/bench";
	setvbuf(stdout, NULL, _IOLBF, 0);
	char path[256], err[COHORT_ERR_LEN];
	snprintf(path, sizeof(path), "%s/bench_page.db", dir);
	struct store *st;
	struct roadmap *rm;
	if (store_open(path, false, &st, err) || roadmap_load_default(&rm, err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct bot_opts o = {st, rm, "18:00", "Europe/Berlin", fake_now, NULL, NULL};
	struct bot *b;
	if (bot_new(&o, &b))
		return 1;
	bot_set_public_url(b, "https://cohort.example.org");

	/* The group: each member finishes a random share of the roadmap, in roadmap order. The
	 * same every time, so a store seeded by an earlier run (of this schema) is used again. */
	double t = ms_now();
	size_t ntopics = roadmap_topic_count(rm);
	long records = 0;
	int have = 0, finished = 0;
	if (store_group_totals(st, GROUP, &have, &finished) == COHORT_OK && have > 0) {
		printf("using the group seeded before in %s: %d members, %d finishes\n", path, have,
		       finished);
		goto seeded;
	}
	store_batch_begin(st);
	for (int m = 0; m < MEMBERS; m++) {
		char id[32], name[80], note[128];
		snprintf(id, sizeof(id), "bench:%d", m);
		/* 64 characters, with markup to escape: the longest name kept. */
		snprintf(name, sizeof(name), "<Member & \"friend\" #%05d> with a rather long name ok",
			 m);
		size_t done = 1 + next() % ntopics; /* everyone has a record: a member */
		for (size_t i = 0; i < done; i++) {
			const struct rm_topic *topic = roadmap_topic(rm, i);
			snprintf(note, sizeof(note), "read the chapter on %s & built <a> demo",
				 topic->name);
			struct store_change c = {GROUP,
						 id,
						 name,
						 topic->id,
						 STATUS_DONE,
						 next() % 3 == 0 ? note : NULL,
						 NULL,
						 T0 - (int64_t)(next() % 200) * DAY - (next() % 1000)};
			if (store_set_status(st, &c, NULL) == COHORT_OK)
				records++;
		}
		if (m % 500 == 499) {
			store_batch_end(st, true);
			store_batch_begin(st);
		}
	}
	store_batch_end(st, true);
	printf("seeded %d members, %ld finishes, in %.1f s\n", MEMBERS, records,
	       (ms_now() - t) / 1e3);
seeded:;

	struct page_data d;
	double full[RUNS], render[RUNS], collect[RUNS];
	size_t html_bytes = 0, json_bytes = 0;
	for (int r = 0; r < RUNS; r++) {
		struct strbuf html = STRBUF_INIT, json = STRBUF_INIT;
		double t0 = ms_now();
		if (page_collect(b, GROUP, &d)) {
			fprintf(stderr, "page_collect failed\n");
			return 1;
		}
		double t1 = ms_now();
		page_render_html(&d, &html);
		double t2 = ms_now();
		page_render_json(&d, &json);
		collect[r] = t1 - t0;
		render[r] = t2 - t1;
		full[r] = t2 - t0;
		html_bytes = html.len;
		json_bytes = json.len;
		page_data_release(&d);
		if (r == 0 && argc > 2) {
			FILE *f = fopen(argv[2], "w");
			if (f) {
				fputs(sb_str(&html), f);
				fclose(f);
			}
		}
		sb_release(&html);
		sb_release(&json);
	}
	report("group page, 10,000 members: read + render HTML", full, RUNS, "< 50 ms");
	report("  of which reading the store", collect, RUNS, "-");
	report("  of which rendering the HTML", render, RUNS, "-");
	printf("%-48s %zu bytes (%.1f kB; budget < 300 kB)\n", "group page HTML size", html_bytes,
	       html_bytes / 1024.0);
	printf("%-48s %zu bytes (%.1f kB)\n", "group page JSON size", json_bytes,
	       json_bytes / 1024.0);
	bot_free(b);
	store_free(st);
	roadmap_free(rm);
	return 0;
}
