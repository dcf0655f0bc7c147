/*
 * `make bench`: the store and leaderboard budgets of DESIGN §9, measured.
 * Seeds a group of 10,000 members x 100 topics through the real store API,
 * then times /done into the store, leaderboards and digests. Every number
 * printed is measured in this run.
 */
#include "bot/bot.h"
#include "bot/digest.h"
#include "bot/leaderboard.h"
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
#define TOPICS 100
#define DAY 86400000LL
#define T0 1795608000000LL /* 2026-11-25 12:00 UTC */

static int64_t clock_ms;

static int64_t fake_now(void *ud)
{
	(void)ud;
	return clock_ms;
}

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, int n, const char *budget)
{
	qsort(ms, (size_t)n, sizeof(double), cmp_double);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += ms[i];
	printf("%-44s p50 %7.3f ms  p99 %7.3f ms  p99.9 %7.3f ms  max %7.3f ms  mean %7.3f ms  "
	       "(budget %s)\n",
	       what, ms[n / 2], ms[n * 99 / 100], ms[n * 999 / 1000], ms[n - 1], sum / n, budget);
}

static struct roadmap *hundred_topics(void)
{
	struct strbuf md = STRBUF_INIT;
	for (int s = 0; s < 10; s++) {
		sb_addf(&md, "- [ ] Section %d\n", s);
		for (int t = 0; t < 10; t++)
			sb_addf(&md, "\t- [ ] Topic %d\n", s * 10 + t);
	}
	char err[COHORT_ERR_LEN];
	struct roadmap *rm;
	if (roadmap_parse(sb_str(&md), md.len, "bench.md", &rm, err)) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	sb_release(&md);
	return rm;
}

static int done(struct store *st, const char *group, int member, int topic, int64_t at)
{
	char mid[32], name[32], tid[32];
	snprintf(mid, sizeof(mid), "bench:%d", member);
	snprintf(name, sizeof(name), "member%d", member);
	snprintf(tid, sizeof(tid), "topic-%d", topic);
	struct store_change c = {group, mid, name, tid, STATUS_DONE, NULL, NULL, at};
	return store_set_status(st, &c, NULL);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "build/bench";
	setvbuf(stdout, NULL, _IOLBF, 0); /* each result as soon as it is measured */
	char path[256], err[COHORT_ERR_LEN];
	snprintf(path, sizeof(path), "%s/bench.db", dir);
	unlink(path);
	struct store *st;
	if (store_open(path, false, &st, err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct roadmap *rm = hundred_topics();
	struct bot_opts o = {st, rm, "18:00", "Europe/Berlin", fake_now, NULL, NULL};
	struct bot *b;
	if (bot_new(&o, &b))
		return 1;
	clock_ms = T0;

	/* 1. /done through the dispatcher, one committed transaction each: as fast as it
	 * goes, then paced at 1,000 a second (the gateway benchmark's rate), timing each. */
	int n = 20000, paced = 10000;
	double *ms = xcalloc((size_t)paced, sizeof(double));
	double t = seconds(), dispatch = 0;
	for (int i = 0; i < n + paced; i++) {
		char mid[32], name[32], topic[32];
		snprintf(mid, sizeof(mid), "bench:%d", i / TOPICS);
		snprintf(name, sizeof(name), "member%d", i / TOPICS);
		snprintf(topic, sizeof(topic), "Topic %d", i % TOPICS);
		struct event ev = {.platform = "bench",
				   .group_id = "bench:big",
				   .channel_id = "c",
				   .member_id = mid,
				   .member_name = name,
				   .command = "done",
				   .args = topic};
		struct reply r;
		reply_init(&r);
		if (i == n)
			dispatch = seconds() - t;
		if (i >= n)
			while (seconds() < t + dispatch + (i - n) / 1000.0)
				nanosleep(&(struct timespec){0, 100000}, NULL);
		double t0 = seconds();
		if (bot_handle(b, &ev, &r)) {
			fprintf(stderr, "/done failed\n");
			return 1;
		}
		if (i >= n)
			ms[i - n] = (seconds() - t0) * 1000;
		reply_release(&r);
		clock_ms += 10;
	}
	printf("machine: %ld cores, SQLite %s, WAL, synchronous=NORMAL\n",
	       sysconf(_SC_NPROCESSORS_ONLN), "3.40");
	printf("%-44s %8.0f /s  (%d commands, reply built after each commit; budget >= 20000/s)\n",
	       "/done through the dispatcher", n / dispatch, n);
	report("/done paced at 1,000/s", ms, paced, "-");
	free(ms);

	/* 2. Seed the rest of 10,000 x 100 (less one topic, for step 3) through the store,
	 * done times spread over 60 days. */
	t = seconds();
	long seeded = 0;
	for (int m = (n + paced) / TOPICS; m < MEMBERS; m++)
		for (int k = 0; k < TOPICS - 1; k++, seeded++)
			if (done(st, "bench:big", m, k,
				 T0 - (int64_t)((m * 7919L + k * 104729L) % (60 * DAY / 1000)) *
						 1000)) {
				fprintf(stderr, "seeding failed\n");
				return 1;
			}
	double seed = seconds() - t;
	printf("%-44s %8.0f /s  (%ld more, to %d members x %d topics)\n",
	       "store_set_status (seeding)", seeded / seed, seeded, MEMBERS, TOPICS);

	/* 3. /done in the big group: the reply names who else finished it among 10,000. */
	clock_ms = T0 + DAY;
	int reps = 1000;
	ms = xcalloc((size_t)reps, sizeof(double));
	for (int i = 0; i < reps; i++) {
		char mid[32], name[32];
		snprintf(mid, sizeof(mid), "bench:%d", MEMBERS - 1 - i);
		snprintf(name, sizeof(name), "member%d", MEMBERS - 1 - i);
		struct event ev = {.platform = "bench",
				   .group_id = "bench:big",
				   .channel_id = "c",
				   .member_id = mid,
				   .member_name = name,
				   .command = "done",
				   .args = "Topic 99"};
		struct reply r;
		reply_init(&r);
		t = seconds();
		if (bot_handle(b, &ev, &r))
			return 1;
		ms[i] = (seconds() - t) * 1000;
		reply_release(&r);
	}
	report("/done in the 10,000-member group", ms, reps, "-");

	/* 4. Leaderboards at 10,000 members x 100 topics. */
	const enum lb_period periods[] = {LB_ALL, LB_WEEK, LB_MONTH};
	const char *names[] = {"leaderboard all time (top 10 + own row)",
			       "leaderboard this week (top 10 + own row)",
			       "leaderboard this month (top 10 + own row)"};
	reps = 200;
	for (int p = 0; p < 3; p++) {
		for (int i = 0; i < reps; i++) {
			char me[32];
			snprintf(me, sizeof(me), "bench:%d", (i * 37) % MEMBERS);
			struct leaderboard lb;
			t = seconds();
			if (leaderboard_build(b, "bench:big", periods[p], 10, me, NULL, &lb))
				return 1;
			ms[i] = (seconds() - t) * 1000;
			leaderboard_release(&lb);
		}
		report(names[p], ms, reps, "< 5 ms");
	}

	/* 5. The digest of the big group. */
	reps = 20;
	for (int i = 0; i < reps; i++) {
		struct digest d;
		t = seconds();
		if (digest_build(b, "bench:big", clock_ms, &d))
			return 1;
		ms[i] = (seconds() - t) * 1000;
		digest_release(&d);
	}
	report("digest of the 10,000-member group", ms, reps, "-");

	/* 6. Digests for 1,000 groups of 10 members with a day of activity each. */
	for (int g = 0; g < 1000; g++) {
		char group[32];
		snprintf(group, sizeof(group), "bench:g%d", g);
		for (int m = 0; m < 10; m++)
			for (int k = 0; k < 5; k++)
				done(st, group, m, (g + m + k) % TOPICS,
				     T0 + DAY - (m * 5 + k) * 60000LL);
	}
	clock_ms = T0 + DAY + 3600000;
	t = seconds();
	for (int g = 0; g < 1000; g++) {
		char group[32];
		snprintf(group, sizeof(group), "bench:g%d", g);
		struct digest d;
		if (digest_build(b, group, clock_ms, &d))
			return 1;
		digest_release(&d);
	}
	printf("%-44s %8.3f s   (budget < 1 s)\n", "digests for 1,000 groups of 10", seconds() - t);
	free(ms);
	bot_free(b);
	roadmap_free(rm);
	store_free(st);
	return 0;
}
