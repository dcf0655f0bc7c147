/*
 * `make bench`, the PostgreSQL rows of DESIGN §9: /done from 1, 2 and 4
 * processes at once (one committed transaction each; rate, latency, and a
 * count proving none lost and none doubled), then the leaderboard of a
 * 10,000 x 100 group. Usage: bench_pg URL (a database it may fill; the
 * Makefile starts a private cluster with fsync on). Every number printed is
 * measured in this run.
 */
#include "bot/bot.h"
#include "bot/leaderboard.h"
#include "bot/reply.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/util.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RATE 500.0       /* paced /done per second, all processes together */
#define PACED 3000       /* paced /done per run, all processes together */
#define FLAT_OUT 2000    /* unpaced /done per process */
#define SHARED_EVERY 5   /* every 5th paced /done names a (member, topic) all processes mark */
#define MEMBERS 10000
#define TOPICS 100
#define DAY 86400000LL

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double left;
	while ((left = t - seconds()) > 0)
		nanosleep(&(struct timespec){0, (long)(left > 0.001 ? 500000 : left * 1e9)}, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
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

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_pg: %s%s%s\n", what, err ? ": " : "", err ? err : "");
	exit(1);
}

/* What one process measured, sent to the parent through a pipe. */
struct result {
	int failed;
	double flat_start, flat_end;
	double ms[PACED];
	int n;
};

static int done_as(struct bot *b, const char *group, const char *member, int topic)
{
	char tname[32];
	snprintf(tname, sizeof(tname), "Topic %d", topic);
	struct event ev = {.platform = "bench",
			   .group_id = group,
			   .channel_id = "c",
			   .member_id = member,
			   .member_name = member,
			   .command = "done",
			   .args = tname};
	struct reply r;
	reply_init(&r);
	int rc = bot_handle(b, &ev, &r);
	reply_release(&r);
	return rc;
}

/* Process k of procs: its share of the paced run, then FLAT_OUT as fast as it goes. */
static void child(const char *url, int k, int procs, double start, double flat_start, int fd)
{
	char err[COHORT_ERR_LEN], group[32], member[48];
	struct store *st;
	if (store_open(url, false, &st, err))
		die("store_open", err);
	struct roadmap *rm = hundred_topics();
	struct bot_opts o = {st, rm, "18:00", "UTC", NULL, NULL, NULL};
	struct bot *b;
	if (bot_new(&o, &b))
		die("bot_new", NULL);
	snprintf(group, sizeof(group), "bench:pg%d", procs);
	struct result *res = xcalloc(1, sizeof(*res));
	for (int i = k; i < PACED; i += procs) {
		sleep_until(start + i / RATE);
		int j = i / procs; /* this process's j-th: the others send theirs at about once */
		if (j % SHARED_EVERY == 0)
			snprintf(member, sizeof(member), "bench:shared%d", (j / SHARED_EVERY) % 50);
		else
			snprintf(member, sizeof(member), "bench:p%dm%d", k, j / TOPICS);
		int topic = j % SHARED_EVERY == 0 ? (j / SHARED_EVERY / 50) % TOPICS : j % TOPICS;
		double t = seconds();
		res->failed += done_as(b, group, member, topic) != COHORT_OK;
		res->ms[res->n++] = (seconds() - t) * 1000;
	}
	sleep_until(flat_start);
	res->flat_start = seconds();
	for (int i = 0; i < FLAT_OUT; i++) {
		snprintf(member, sizeof(member), "bench:flat%dm%d", k, i / TOPICS);
		res->failed += done_as(b, group, member, i % TOPICS) != COHORT_OK;
	}
	res->flat_end = seconds();
	const char *p = (const char *)res;
	size_t left = sizeof(*res);
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w <= 0)
			_exit(1);
		p += w, left -= (size_t)w;
	}
	bot_free(b);
	roadmap_free(rm);
	store_free(st);
	free(res);
	_exit(0);
}

static int count_done(const struct store_row *row, void *ud)
{
	*(long *)ud += row->status == STATUS_DONE;
	return 0;
}

static void run_processes(const char *url, int procs)
{
	char err[COHORT_ERR_LEN], group[32];
	snprintf(group, sizeof(group), "bench:pg%d", procs);
	struct store *st;
	int64_t events0, events1;
	if (store_open(url, false, &st, err) || store_event_count(st, &events0))
		die("store_open", err);
	store_free(st); /* never fork with a connection open */
	double start = seconds() + 1.0, flat_start = start + PACED / RATE + 1.0;
	int fds[4];
	pid_t pids[4];
	for (int k = 0; k < procs; k++) {
		int p[2];
		if (pipe(p))
			die("pipe", NULL);
		pids[k] = fork();
		if (pids[k] < 0)
			die("fork", NULL);
		if (pids[k] == 0) {
			close(p[0]);
			child(url, k, procs, start, flat_start, p[1]);
		}
		close(p[1]);
		fds[k] = p[0];
	}
	double *ms = xcalloc(PACED, sizeof(double));
	int n = 0, failed = 0;
	double fs = 1e300, fe = 0;
	struct result *res = xcalloc(1, sizeof(*res));
	for (int k = 0; k < procs; k++) {
		char *q = (char *)res;
		size_t got = 0;
		ssize_t r;
		while (got < sizeof(*res) && (r = read(fds[k], q + got, sizeof(*res) - got)) > 0)
			got += (size_t)r;
		close(fds[k]);
		int status;
		waitpid(pids[k], &status, 0);
		if (got < sizeof(*res) || !WIFEXITED(status) || WEXITSTATUS(status))
			die("a benchmark process failed", NULL);
		memcpy(ms + n, res->ms, (size_t)res->n * sizeof(double));
		n += res->n;
		failed += res->failed;
		fs = res->flat_start < fs ? res->flat_start : fs;
		fe = res->flat_end > fe ? res->flat_end : fe;
	}
	free(res);
	qsort(ms, (size_t)n, sizeof(double), cmp_double);
	printf("/done from %d process%s at %.0f/s in all   p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
	       "(budget p99 < 10 ms)\n",
	       procs, procs == 1 ? "  " : "es", RATE, ms[n / 2], ms[n * 99 / 100], ms[n - 1]);
	printf("/done from %d process%s, flat out             %6.0f /s in all (%d each, one "
	       "transaction each)\n",
	       procs, procs == 1 ? "  " : "es", procs * FLAT_OUT / (fe - fs), FLAT_OUT);
	free(ms);
	/* Every process marked the shared (member, topic) pairs: each must count once. */
	long want = (long)procs * FLAT_OUT;
	for (int k = 0; k < procs; k++)
		for (int i = k, j = 0; i < PACED; i += procs, j++)
			want += j % SHARED_EVERY != 0;
	want += (PACED / procs + SHARED_EVERY - 1) / SHARED_EVERY; /* shared pairs, once each */
	long records = 0;
	if (store_open(url, false, &st, err) || store_export(st, group, count_done, &records) ||
	    store_event_count(st, &events1))
		die("counting", err);
	store_free(st);
	printf("  %ld done records and %lld events for %ld distinct (member, topic): %s; %d "
	       "commands failed\n",
	       records, (long long)(events1 - events0), want,
	       records == want && events1 - events0 == want ? "none lost, none doubled"
							    : "MISMATCH",
	       failed);
}

static void leaderboard_10k(const char *url, int members)
{
	char err[COHORT_ERR_LEN], member[32], topic[32];
	struct store *st;
	if (store_open(url, false, &st, err))
		die("store_open", err);
	int64_t now = (int64_t)time(NULL) * 1000; /* the bot's clock is the real one */
	double t = seconds();
	if (store_restore_begin(st))
		die("restore", NULL);
	for (int m = 0; m < members; m++) {
		snprintf(member, sizeof(member), "bench:big%d", m);
		struct store_member sm = {"bench:pgbig", member, member, now - 60 * DAY};
		if (store_restore_member(st, &sm))
			die("restore member", NULL);
		for (int k = 0; k < TOPICS; k++) {
			snprintf(topic, sizeof(topic), "topic-%d", k);
			int64_t at = now - ((m * 7919L + k * 104729L) % (60 * DAY / 1000)) * 1000;
			struct store_row r = {"bench:pgbig", member, member, topic,
					      STATUS_DONE,   "",     at};
			struct store_event e = {0,  "bench:pgbig", member, topic, STATUS_NONE,
						STATUS_DONE, NULL, at, NULL, 0, NULL, NULL, false};
			int64_t id;
			if (store_restore_progress(st, &r) || store_restore_event(st, &e, &id))
				die("restore row", NULL);
		}
	}
	if (store_restore_end(st, true))
		die("restore end", NULL);
	printf("seeded %d members x %d topics in one restore transaction   %.1f s\n", members,
	       TOPICS, seconds() - t);
	struct roadmap *rm = hundred_topics();
	struct bot_opts o = {st, rm, "18:00", "UTC", NULL, NULL, NULL};
	struct bot *b;
	if (bot_new(&o, &b)) /* sets the calendar the week and month scores need */
		die("bot_new", NULL);
	struct store_roadmap_result rr;
	t = seconds();
	if (bot_store_roadmap(st, rm, true, &rr)) /* the scores, as after an import */
		die("deriving the scores", NULL);
	printf("scores derived for the whole store (%d records)           %.2f s\n",
	       members * TOPICS, seconds() - t);
	const enum lb_period periods[] = {LB_ALL, LB_WEEK, LB_MONTH};
	const char *names[] = {"all time", "this week", "this month"};
	int reps = 200;
	double *ms = xcalloc((size_t)reps, sizeof(double));
	for (int p = 0; p < 3; p++) {
		size_t rows = 0;
		for (int i = 0; i < reps; i++) {
			snprintf(member, sizeof(member), "bench:big%d", (i * 37) % members);
			struct leaderboard lb;
			t = seconds();
			if (leaderboard_build(b, "bench:pgbig", periods[p], 10, member, NULL, &lb))
				die("leaderboard", NULL);
			ms[i] = (seconds() - t) * 1000;
			rows = lb.n;
			leaderboard_release(&lb);
		}
		qsort(ms, (size_t)reps, sizeof(double), cmp_double);
		printf("leaderboard %-10s %d x %d on PostgreSQL   p50 %6.2f ms  p99 %6.2f ms  "
		       "(%zu rows; budget < 5 ms)\n",
		       names[p], members, TOPICS, ms[reps / 2], ms[reps * 99 / 100], rows);
	}
	free(ms);
	bot_free(b);
	roadmap_free(rm);
	store_free(st);
}

int main(int argc, char **argv)
{
	/* --scores N: only the leaderboard and the derivation, on N members x 100 topics */
	int members = argc == 4 && strcmp(argv[2], "--scores") == 0 ? atoi(argv[3]) : 0;
	if (argc != 2 && members <= 0) {
		fprintf(stderr, "usage: bench_pg URL [--scores MEMBERS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("PostgreSQL: %ld cores; each process a bot with its own connection, as cohort "
	       "run has\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	if (members) {
		leaderboard_10k(argv[1], members);
		return 0;
	}
	run_processes(argv[1], 1);
	run_processes(argv[1], 2);
	run_processes(argv[1], 4);
	leaderboard_10k(argv[1], MEMBERS);
	return 0;
}
