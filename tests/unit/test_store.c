#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/util.h"
#include "store/store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * The contract suite: every test in backend_tests runs on SQLite and, when
 * COHORT_TEST_PG_URL names a PostgreSQL database (make test starts one:
 * scripts/pg-test.sh), on PostgreSQL too, each in a fresh schema. Tests that
 * only make sense on SQLite (files, migrations from SQLite versions, backup,
 * checkpoints) are in sqlite_tests; postgres_tests only on PostgreSQL.
 */
struct fixture {
	char dir[64];
	char path[128];
	char target[1024]; /* what store_open() is given: path, or a URL */
	char schema[64];   /* PostgreSQL: the test's own schema */
	struct store *st;
};

/*
 * A test calendar: "weeks" of 1000 ms and "months" of 10000 ms; in the zone
 * "Half/Shifted" weeks start 500 ms later. It counts the calls given each zone.
 */
static int zone_calls[2]; /* [0]: no zone, [1]: "Half/Shifted" */
static void test_periods(void *ud, const char *timezone, int64_t t, int64_t start[2],
			 int64_t end[2])
{
	(void)ud;
	if (timezone && strcmp(timezone, "Half/Shifted") == 0) {
		zone_calls[1]++;
		start[0] = t - (t + 500) % 1000;
		end[0] = start[0] + 1000;
		start[1] = t - t % 10000;
		end[1] = start[1] + 10000;
		return;
	}
	zone_calls[0] += !timezone;
	start[0] = t - t % 1000;
	end[0] = start[0] + 1000;
	start[1] = t - t % 10000;
	end[1] = start[1] + 10000;
}

static const char *pg_url(void)
{
	const char *u = getenv("COHORT_TEST_PG_URL");
	return u && *u ? u : NULL;
}

static void quiet(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
}

/* Runs SQL on the test server's database; 0 on success. */
static int pg_exec(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url());
	int rc = PQstatus(c) == CONNECTION_OK ? 0 : -1;
	if (!rc) {
		PQsetNoticeProcessor(c, quiet, NULL); /* "drop cascades to ..." */
		PGresult *r = PQexec(c, sql);
		rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
		if (rc)
			fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
	} else {
		fprintf(stderr, "%s", PQerrorMessage(c));
	}
	PQfinish(c);
	return rc;
}

/* Takes a schema back to before versions 15 and 16 (links), for the upgrade tests below. */
static int drop_link_tables(const char *schema)
{
	char sql[400];
	snprintf(sql, sizeof(sql),
		 "SET search_path = %s; DROP TABLE IF EXISTS link_codes, link_attempts, "
		 "member_links, link_log, group_links",
		 schema);
	return pg_exec(sql);
}

static int open_fixture(struct fixture *f)
{
	char err[COHORT_ERR_LEN];
	if (store_open(f->target, false, &f->st, err)) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	struct store_calendar cal = {test_periods, NULL};
	if (store_set_calendar(f->st, &cal))
		return -1;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cohort-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	snprintf(f->target, sizeof(f->target), "%s", f->path);
	*state = f;
	return open_fixture(f);
}

/* The same on PostgreSQL: a new schema of its own, named in the URL's search_path. */
static int setup_pg(void **state)
{
	static int n;
	struct fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cohort-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/unused.db", f->dir);
	snprintf(f->schema, sizeof(f->schema), "cohort_test_%ld_%d", (long)getpid(), n++);
	char sql[256];
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", f->schema,
		 f->schema);
	*state = f;
	if (pg_exec(sql))
		return -1;
	const char *u = pg_url();
	snprintf(f->target, sizeof(f->target), "%s%soptions=-csearch_path%%3D%s", u,
		 strchr(u, '?') ? "&" : "?", f->schema);
	return open_fixture(f);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_free(f->st);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	if (f->schema[0]) {
		char sql[160];
		snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->schema);
		if (pg_exec(sql))
			return -1;
	}
	free(f);
	return 0;
}

static int set(struct store *st, const char *member, const char *topic, enum store_status s,
	       const char *source, int64_t at)
{
	struct store_change c = {"g", member, member, topic, s, NULL, source, at};
	return store_set_status(st, &c, NULL);
}

struct find {
	const char *topic;
	enum store_status status;
	int64_t at;
	char note[64];
	int rows;
};

static int find_row(const struct store_row *row, void *ud)
{
	struct find *f = ud;
	f->rows++;
	if (strcmp(row->topic_id, f->topic) == 0) {
		f->status = row->status;
		f->at = row->updated_at;
		snprintf(f->note, sizeof(f->note), "%s", row->note);
	}
	return 0;
}

static enum store_status status_of(struct store *st, const char *member, const char *topic)
{
	struct find f = {topic, STATUS_NONE, 0, "", 0};
	assert_int_equal(store_member_progress(st, "g", member, find_row, &f), COHORT_OK);
	return f.status;
}

static int points_fn(const struct store_rank *row, void *ud)
{
	struct {
		const char *member;
		int points;
	} *r = ud;
	if (strcmp(row->member_id, r->member) == 0)
		r->points = row->points;
	return 0;
}

static int points(struct store *st, const char *member, int64_t since)
{
	struct {
		const char *member;
		int points;
	} r = {member, 0};
	assert_int_equal(store_ranking(st, "g", since ? PERIOD_WEEK : PERIOD_ALL, since, 100, NULL,
				       points_fn, &r),
			 COHORT_OK);
	return r.points;
}

static void a_new_store_is_at_the_latest_schema(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
}

static void changes_are_recorded_once(void **state)
{
	struct fixture *f = *state;
	struct store_prior prior;
	struct store_change c = {"g",     "ana", "Ana", "kafka", STATUS_DONE, "built a consumer",
				 "evt-1", 1000};
	assert_int_equal(store_set_status(f->st, &c, &prior), COHORT_OK);
	assert_int_equal(prior.status, STATUS_NONE);
	/* The same source event again changes nothing, even with another status. */
	c.status = STATUS_SKIPPED;
	assert_int_equal(store_set_status(f->st, &c, &prior), COHORT_ERR_DUPLICATE);
	/* The same status again, from a new event, is "unchanged" and not logged. */
	c.status = STATUS_DONE;
	c.source_id = "evt-2";
	c.at = 2000;
	assert_int_equal(store_set_status(f->st, &c, &prior), COHORT_ERR_UNCHANGED);
	assert_int_equal(prior.status, STATUS_DONE);
	assert_int_equal(prior.updated_at, 1000);
	assert_int_equal(points(f->st, "ana", 0), 1);
	struct find fr = {"kafka", STATUS_NONE, 0, "", 0};
	store_member_progress(f->st, "g", "ana", find_row, &fr);
	assert_int_equal(fr.rows, 1);
	assert_string_equal(fr.note, "built a consumer");
	assert_int_equal(fr.at, 1000);
	/* evt-2 was not logged, so it can still be applied as a different change. */
	c.status = STATUS_IN_PROGRESS;
	assert_int_equal(store_set_status(f->st, &c, &prior), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 0), 0);
}

static void undo_walks_back_and_restores_time_and_note(void **state)
{
	struct fixture *f = *state;
	struct store_change c = {"g",         "ana", "Ana", "redis", STATUS_IN_PROGRESS,
				 "chapter 1", NULL,  100};
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	c.status = STATUS_DONE;
	c.note = "finished";
	c.at = 200;
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, NULL, 300), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 0), 2);

	struct store_undone u;
	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", NULL, 400, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "kafka");
	assert_int_equal(u.from, STATUS_DONE);
	assert_int_equal(u.to, STATUS_NONE);
	free(u.topic_id);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_NONE);

	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", NULL, 500, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "redis");
	assert_int_equal(u.to, STATUS_IN_PROGRESS);
	free(u.topic_id);
	struct find fr = {"redis", STATUS_NONE, 0, "", 0};
	store_member_progress(f->st, "g", "ana", find_row, &fr);
	assert_int_equal(fr.status, STATUS_IN_PROGRESS);
	assert_int_equal(fr.at, 100); /* the time it was started, not the time of the undo */
	assert_string_equal(fr.note, "chapter 1");
	assert_int_equal(points(f->st, "ana", 0), 0);

	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", NULL, 600, &u), COHORT_OK);
	free(u.topic_id);
	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", NULL, 700, &u), COHORT_ERR_NOT_FOUND);
	assert_null(u.topic_id);
	/* Undo is per member: bob has nothing to undo. */
	assert_int_equal(store_undo(f->st, "g", "bob", "Bob", NULL, 700, &u), COHORT_ERR_NOT_FOUND);
}

/* /fix: an admin's correction is logged as theirs; undo is the admin's, never the member's. */
static void a_correction_is_the_admins_to_undo(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, NULL, 100), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "redis", STATUS_IN_PROGRESS, NULL, 200), COHORT_OK);
	assert_int_equal(set(f->st, "boss", "docker", STATUS_DONE, NULL, 250), COHORT_OK);
	struct store_change c = {"g", "ana", "ana", "redis", STATUS_DONE, NULL, NULL, 300};
	assert_int_equal(store_fix_status(f->st, &c, "boss", "Boss", NULL), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 0), 2);

	/* Her undo skips the corrected topic and reverts her own Kafka. */
	struct store_undone u;
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", NULL, 400, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "kafka");
	assert_null(u.fixed_member_id);
	free(u.topic_id);
	assert_int_equal(status_of(f->st, "ana", "redis"), STATUS_DONE);
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", NULL, 450, &u),
			 COHORT_ERR_NOT_FOUND);

	/* The admin's undo reverts the correction (newer than the admin's own change). */
	assert_int_equal(store_undo(f->st, "g", "boss", "Boss", NULL, 500, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "redis");
	assert_string_equal(u.fixed_member_id, "ana");
	assert_int_equal(u.count, 1);
	assert_int_equal(u.from, STATUS_DONE);
	assert_int_equal(u.to, STATUS_IN_PROGRESS);
	free(u.topic_id);
	free(u.fixed_member_id);
	free(u.fixed_member_name);
	assert_int_equal(status_of(f->st, "ana", "redis"), STATUS_IN_PROGRESS);
	assert_int_equal(status_of(f->st, "boss", "docker"), STATUS_DONE);

	/* A removal clears every record in one correction; one undo brings them all back. */
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, NULL, 600), COHORT_OK);
	int n = 0;
	assert_int_equal(store_fix_remove(f->st, "g", "ana", "boss", "Boss", NULL, 700, &n),
			 COHORT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(points(f->st, "ana", 0), 0);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_NONE);
	assert_int_equal(store_fix_remove(f->st, "g", "ana", "boss", "Boss", NULL, 710, &n),
			 COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_undo(f->st, "g", "boss", "Boss", NULL, 800, &u), COHORT_OK);
	assert_int_equal(u.count, 2);
	free(u.topic_id);
	free(u.fixed_member_id);
	free(u.fixed_member_name);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
	assert_int_equal(status_of(f->st, "ana", "redis"), STATUS_IN_PROGRESS);
	assert_int_equal(points(f->st, "ana", 0), 1);
}

static void undo_with_a_replayed_source_is_applied_once(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, NULL, 100), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "redis", STATUS_DONE, NULL, 200), COHORT_OK);
	struct store_undone u;
	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", "undo-1", 300, &u), COHORT_OK);
	free(u.topic_id);
	assert_int_equal(store_undo(f->st, "g", "ana", "Ana", "undo-1", 300, &u),
			 COHORT_ERR_DUPLICATE);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
}

struct ranking {
	char names[8][16];
	int points[8];
	int ranks[8];
	size_t n;
};

static int collect_ranking(const struct store_rank *row, void *ud)
{
	struct ranking *r = ud;
	if (r->n < 8) {
		snprintf(r->names[r->n], sizeof(r->names[0]), "%s", row->member_id);
		r->ranks[r->n] = row->rank;
		r->points[r->n++] = row->points;
	}
	return 0;
}

static void ranking_breaks_ties_by_who_got_there_first(void **state)
{
	struct fixture *f = *state;
	set(f->st, "bob", "kafka", STATUS_DONE, NULL, 100);
	set(f->st, "ana", "kafka", STATUS_DONE, NULL, 200);
	set(f->st, "ana", "redis", STATUS_DONE, NULL, 1300); /* ana reaches 2 first */
	set(f->st, "bob", "redis", STATUS_DONE, NULL, 1400);
	set(f->st, "cy", "docker", STATUS_DONE, NULL, 1500);
	set(f->st, "dee", "docker", STATUS_SKIPPED, NULL, 1500); /* skipped earns nothing */
	struct ranking r = {{{0}}, {0}, {0}, 0};
	assert_int_equal(store_ranking(f->st, "g", PERIOD_ALL, 0, 10, NULL, collect_ranking, &r),
			 COHORT_OK);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.names[0], "ana");
	assert_string_equal(r.names[1], "bob");
	assert_string_equal(r.names[2], "cy");
	assert_int_equal(r.points[0], 2);
	assert_int_equal(r.points[1], 2);
	assert_int_equal(r.ranks[0], 1);
	assert_int_equal(r.ranks[1], 1); /* a shared rank */
	assert_int_equal(r.ranks[2], 3);
	/* The "week" from 1000: one point each, in the order they got it. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(
		store_ranking(f->st, "g", PERIOD_WEEK, 1000, 10, NULL, collect_ranking, &r),
		COHORT_OK);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.names[0], "ana");
	assert_string_equal(r.names[2], "cy");
	assert_int_equal(r.ranks[2], 1);
	/* The week from 0 holds bob then ana; the month holds everything. */
	memset(&r, 0, sizeof(r));
	store_ranking(f->st, "g", PERIOD_WEEK, 0, 10, NULL, collect_ranking, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.names[0], "bob");
	memset(&r, 0, sizeof(r));
	store_ranking(f->st, "g", PERIOD_MONTH, 0, 10, NULL, collect_ranking, &r);
	assert_int_equal(r.points[0], 2);
	/* The limit holds, and the asker's own row comes after the top. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_ranking(f->st, "g", PERIOD_ALL, 0, 1, "cy", collect_ranking, &r),
			 COHORT_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.names[0], "ana");
	assert_string_equal(r.names[1], "cy");
	assert_int_equal(r.ranks[1], 3);
	/* Undoing bob's redis takes the point out of its week, not the current one. */
	struct store_undone u;
	assert_int_equal(store_undo(f->st, "g", "bob", "bob", NULL, 25000, &u), COHORT_OK);
	free(u.topic_id);
	memset(&r, 0, sizeof(r));
	store_ranking(f->st, "g", PERIOD_WEEK, 1000, 10, NULL, collect_ranking, &r);
	assert_int_equal(r.n, 2); /* ana, cy */
	assert_string_equal(r.names[1], "cy");
	/* Groups are separate. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(
		store_ranking(f->st, "other", PERIOD_ALL, 0, 10, NULL, collect_ranking, &r),
		COHORT_OK);
	assert_int_equal(r.n, 0);
}

/*
 * The store hands the calendar the group's own stored zone (it does not
 * call back into the bot for it mid-transaction): a group with a zone gets
 * its weeks, one without gets NULL (the default), on a change and on a rebuild.
 */
static void the_calendar_is_given_the_groups_zone(void **state)
{
	struct fixture *f = *state;
	memset(zone_calls, 0, sizeof(zone_calls));
	assert_int_equal(store_set_digest_time(f->st, "g", "09:00", "Half/Shifted"), COHORT_OK);
	assert_int_equal(set(f->st, "ann", "t1", STATUS_DONE, NULL, 1700), COHORT_OK);
	assert_true(zone_calls[1] > 0);
	assert_int_equal(zone_calls[0], 0);
	/* Shifted weeks: 1700 lies in the week from 1500, not the one from 1000. */
	assert_int_equal(points(f->st, "ann", 1500), 1);
	assert_int_equal(points(f->st, "ann", 1000), 0);
	struct store_change c = {"h", "bob", "bob", "t1", STATUS_DONE, NULL, NULL, 1700};
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	assert_true(zone_calls[0] > 0);
	memset(zone_calls, 0, sizeof(zone_calls));
	assert_int_equal(store_rebuild_periods(f->st, NULL), COHORT_OK);
	assert_true(zone_calls[0] > 0 && zone_calls[1] > 0);
	assert_int_equal(points(f->st, "ann", 1500), 1);
}

static void period_scores_can_be_rebuilt(void **state)
{
	struct fixture *f = *state;
	set(f->st, "ana", "kafka", STATUS_DONE, NULL, 1200);
	set(f->st, "ana", "redis", STATUS_DONE, NULL, 2500);
	assert_int_equal(points(f->st, "ana", 2000), 1);
	assert_int_equal(store_rebuild_periods(f->st, "g"), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 1000), 1);
	assert_int_equal(points(f->st, "ana", 2000), 1);
	assert_int_equal(store_rebuild_periods(f->st, NULL), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 2000), 1);
}

/* Appends "member:points@reached_at#rank " for each row of a ranking. */
static int describe_rank(const struct store_rank *row, void *ud)
{
	char one[96];
	snprintf(one, sizeof(one), "%s:%d@%lld#%d ", row->member_id, row->points,
		 (long long)row->reached_at, row->rank);
	strncat((char *)ud, one, 511 - strlen((char *)ud));
	return 0;
}

static void describe_periods(struct store *st, char out[512])
{
	out[0] = '\0';
	const int64_t weeks[] = {1000, 2000, 12000}, months[] = {0, 10000};
	for (size_t i = 0; i < ARRAY_SIZE(weeks); i++)
		assert_int_equal(store_ranking(st, "g", PERIOD_WEEK, weeks[i], 10, NULL,
					       describe_rank, out),
				 COHORT_OK);
	strncat(out, "| ", 511 - strlen(out));
	for (size_t i = 0; i < ARRAY_SIZE(months); i++)
		assert_int_equal(store_ranking(st, "g", PERIOD_MONTH, months[i], 10, NULL,
					       describe_rank, out),
				 COHORT_OK);
}

/*
 * Deriving the period scores again (a member's dones of one week or month
 * are written together) leaves exactly what the changes kept up one by
 * one: points per week and month, when each was reached, the order and ranks.
 */
static void rebuilt_period_scores_equal_the_live_ones(void **state)
{
	struct fixture *f = *state;
	set(f->st, "ana", "t1", STATUS_DONE, NULL, 1100);
	set(f->st, "bob", "t1", STATUS_DONE, NULL, 1500);
	set(f->st, "ana", "t2", STATUS_DONE, NULL, 1900);
	set(f->st, "bob", "t2", STATUS_DONE, NULL, 2050);
	set(f->st, "ana", "t3", STATUS_DONE, NULL, 2100);
	set(f->st, "cy", "t1", STATUS_DONE, NULL, 2100);
	set(f->st, "ana", "t4", STATUS_DONE, NULL, 12500);
	set(f->st, "cy", "t2", STATUS_SKIPPED, NULL, 12600);
	char live[512], rebuilt[512];
	describe_periods(f->st, live);
	assert_string_equal(live, "ana:2@1900#1 bob:1@1500#2 bob:1@2050#1 ana:1@2100#1 "
				  "cy:1@2100#1 ana:1@12500#1 | ana:3@2100#1 bob:2@2050#2 "
				  "cy:1@2100#3 ana:1@12500#1 ");
	assert_int_equal(store_rebuild_periods(f->st, NULL), COHORT_OK);
	describe_periods(f->st, rebuilt);
	assert_string_equal(rebuilt, live);
	assert_int_equal(store_rebuild_periods(f->st, "g"), COHORT_OK);
	describe_periods(f->st, rebuilt);
	assert_string_equal(rebuilt, live);
}

static void the_digest_log_records_once(void **state)
{
	struct fixture *f = *state;
	struct store_rank_entry ranks[] = {{"ana", 1, 5}, {"bob", 2, 3}};
	struct store_digest d;
	assert_int_equal(store_digest_get(f->st, "g", "2026-11-25", &d), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_digest_record(f->st, "g", "2026-11-24", "k1", 100, 10, ranks, 2),
			 COHORT_OK);
	assert_int_equal(store_digest_record(f->st, "g", "2026-11-25", "k2", 200, 12, ranks, 1),
			 COHORT_OK);
	assert_int_equal(store_digest_record(f->st, "g", "2026-11-25", "k3", 300, 12, ranks, 1),
			 COHORT_ERR_DUPLICATE);
	assert_int_equal(store_digest_get(f->st, "g", "2026-11-25", &d), COHORT_OK);
	assert_string_equal(d.idem_key, "k2");
	assert_int_equal(d.sent_at, 0);
	store_digest_release(&d);
	assert_int_equal(store_digest_mark_sent(f->st, "g", "2026-11-25", 250), COHORT_OK);
	assert_int_equal(store_digest_get(f->st, "g", "2026-11-25", &d), COHORT_OK);
	assert_int_equal(d.sent_at, 250);
	store_digest_release(&d);
	assert_int_equal(store_digest_previous(f->st, "g", "2026-11-25", &d), COHORT_OK);
	assert_string_equal(d.local_date, "2026-11-24");
	assert_int_equal(d.group_percent, 10);
	store_digest_release(&d);
	assert_int_equal(store_digest_previous(f->st, "g", "2026-11-24", &d), COHORT_ERR_NOT_FOUND);
}

static void hostile_text_is_stored_verbatim(void **state)
{
	struct fixture *f = *state;
	const char *evil = "'); DROP TABLE progress; -- \"@everyone\" \xe2\x80\xae";
	struct store_change c = {"g", evil, evil, "kafka", STATUS_DONE, evil, evil, 1};
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	char *id, *name;
	assert_int_equal(store_find_member(f->st, "g", evil, &id, &name), COHORT_OK);
	assert_string_equal(id, evil);
	assert_string_equal(name, evil);
	free(id);
	free(name);
	assert_int_equal(status_of(f->st, evil, "kafka"), STATUS_DONE);
}

static void members_are_found_by_name_or_id(void **state)
{
	struct fixture *f = *state;
	struct store_change c = {"g", "console:bob", "Bob", "kafka", STATUS_DONE, NULL, NULL, 1};
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	char *id, *name;
	assert_int_equal(store_find_member(f->st, "g", "BOB", &id, &name), COHORT_OK);
	assert_string_equal(id, "console:bob");
	free(id);
	free(name);
	assert_int_equal(store_find_member(f->st, "g", "console:bob", &id, &name), COHORT_OK);
	free(id);
	free(name);
	assert_int_equal(store_find_member(f->st, "g", "carol", &id, &name), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_find_member(f->st, "h", "Bob", &id, &name), COHORT_ERR_NOT_FOUND);
	int n, finished;
	assert_int_equal(store_group_totals(f->st, "g", &n, &finished), COHORT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(finished, 1);
}

static void settings_and_adapter_state(void **state)
{
	struct fixture *f = *state;
	struct store_settings s;
	assert_int_equal(store_get_settings(f->st, "g", &s), COHORT_OK);
	assert_null(s.digest_channel);
	assert_null(s.timezone);
	assert_int_equal(store_set_digest_channel(f->st, "g", "chan-1"), COHORT_OK);
	assert_int_equal(store_set_digest_time(f->st, "g", "07:30", "Europe/Berlin"), COHORT_OK);
	assert_int_equal(store_set_digest_time(f->st, "g", "08:00", NULL), COHORT_OK);
	assert_int_equal(store_get_settings(f->st, "g", &s), COHORT_OK);
	assert_string_equal(s.digest_channel, "chan-1");
	assert_string_equal(s.digest_time, "08:00");
	assert_string_equal(s.timezone, "Europe/Berlin"); /* kept when only the time changes */
	store_settings_release(&s);
	assert_int_equal(store_set_digest_channel(f->st, "g", NULL), COHORT_OK);
	assert_int_equal(store_get_settings(f->st, "g", &s), COHORT_OK);
	assert_null(s.digest_channel);
	store_settings_release(&s);

	char *v;
	assert_int_equal(store_state_get(f->st, "matrix.next_batch", &v), COHORT_OK);
	assert_null(v);
	assert_int_equal(store_state_set(f->st, "matrix.next_batch", "s1"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "matrix.next_batch", "s2"), COHORT_OK);
	assert_int_equal(store_state_get(f->st, "matrix.next_batch", &v), COHORT_OK);
	assert_string_equal(v, "s2");
	free(v);
}

static int collect_state(const char *key, const char *value, void *ud)
{
	char *out = ud;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s=%s;", key, value);
	return 0;
}

static int stop_at_first(const char *key, const char *value, void *ud)
{
	(void)key;
	(void)value;
	++*(int *)ud;
	return 7;
}

static void state_keys_are_listed_by_prefix_and_deleted(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_state_set(f->st, "cohort.status.b 2", "{2}"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "cohort.status.a 1", "{1}"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "cohort.status", "old"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "cohort.statusx", "x"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "COHORT.STATUS.c", "upper"), COHORT_OK);
	assert_int_equal(store_state_set(f->st, "cohort_status_d", "like"), COHORT_OK);
	char out[256] = "";
	assert_int_equal(store_state_list(f->st, "cohort.status.", collect_state, out), COHORT_OK);
	assert_string_equal(out, "cohort.status.a 1={1};cohort.status.b 2={2};");
	int calls = 0;
	assert_int_equal(store_state_list(f->st, "cohort.status.", stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);
	assert_int_equal(store_state_delete(f->st, "cohort.status.a 1"), COHORT_OK);
	assert_int_equal(store_state_delete(f->st, "cohort.status.none"), COHORT_OK);
	out[0] = 0;
	assert_int_equal(store_state_list(f->st, "cohort.status.", collect_state, out), COHORT_OK);
	assert_string_equal(out, "cohort.status.b 2={2};");
	out[0] = 0;
	assert_int_equal(store_state_list(f->st, "nothing.", collect_state, out), COHORT_OK);
	assert_string_equal(out, "");
}

static void a_groups_page_token_is_kept_turned_off_and_replaced(void **state)
{
	struct fixture *f = *state;
	struct store_dashboard d;
	char *group;
	assert_int_equal(store_dashboard_get(f->st, "g", &d), COHORT_ERR_NOT_FOUND);
	assert_null(d.token);
	assert_int_equal(store_dashboard_group(f->st, "tok-1", &group), COHORT_ERR_NOT_FOUND);
	assert_null(group);

	assert_int_equal(store_dashboard_set(f->st, "g", "tok-1", true, 10), COHORT_OK);
	assert_int_equal(store_dashboard_get(f->st, "g", &d), COHORT_OK);
	assert_string_equal(d.token, "tok-1");
	assert_true(d.enabled);
	store_dashboard_release(&d);
	assert_int_equal(store_dashboard_group(f->st, "tok-1", &group), COHORT_OK);
	assert_string_equal(group, "g");
	free(group);
	/* Another group cannot take the same token. */
	assert_int_equal(store_dashboard_set(f->st, "h", "tok-1", true, 11), COHORT_ERR_DUPLICATE);

	/* Off: the token is kept, but finds nothing. */
	assert_int_equal(store_dashboard_set(f->st, "g", "tok-1", false, 12), COHORT_OK);
	assert_int_equal(store_dashboard_group(f->st, "tok-1", &group), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_dashboard_get(f->st, "g", &d), COHORT_OK);
	assert_false(d.enabled);
	store_dashboard_release(&d);

	/* A new token: the old one finds nothing any more. */
	assert_int_equal(store_dashboard_set(f->st, "g", "tok-2", true, 13), COHORT_OK);
	assert_int_equal(store_dashboard_group(f->st, "tok-1", &group), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_dashboard_group(f->st, "tok-2", &group), COHORT_OK);
	assert_string_equal(group, "g");
	free(group);
}

static int collect_recent(const struct store_row *row, void *ud)
{
	struct strbuf *sb = ud;
	sb_addf(sb, "%s:%s:%s;", row->member_name, row->topic_id, row->note);
	return 0;
}

static void recent_finishes_come_newest_first_with_their_notes(void **state)
{
	struct fixture *f = *state;
	struct store_change a = {"g", "ana", "Ana", "kafka", STATUS_DONE, "built a consumer",
				 "r1", 100};
	struct store_change b = {"g", "bo", "Bo", "redis", STATUS_DONE, NULL, "r2", 300};
	struct store_change c = {"g", "bo", "Bo", "docker", STATUS_IN_PROGRESS, "x", "r3", 400};
	struct store_change d = {"other", "cy", "Cy", "git", STATUS_DONE, NULL, "r4", 500};
	struct store_change e = {"g", "ana", "Ana", "git", STATUS_DONE, "<b>", "r5", 200};
	assert_int_equal(store_set_status(f->st, &a, NULL), COHORT_OK);
	assert_int_equal(store_set_status(f->st, &b, NULL), COHORT_OK);
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
	assert_int_equal(store_set_status(f->st, &d, NULL), COHORT_OK);
	assert_int_equal(store_set_status(f->st, &e, NULL), COHORT_OK);
	struct strbuf sb = STRBUF_INIT;
	assert_int_equal(store_recent_done(f->st, "g", 10, collect_recent, &sb), COHORT_OK);
	assert_string_equal(sb_str(&sb), "Bo:redis:;Ana:git:<b>;Ana:kafka:built a consumer;");
	sb_truncate(&sb, 0);
	assert_int_equal(store_recent_done(f->st, "g", 1, collect_recent, &sb), COHORT_OK);
	assert_string_equal(sb_str(&sb), "Bo:redis:;");
	sb_release(&sb);
}

static int collect_bucket(const struct store_bucket *b, void *ud)
{
	sb_addf(ud, "%lld:%d:%d;", (long long)(b->start / STORE_BUCKET_MS), b->finished, b->net);
	return 0;
}

static const char *activity(struct store *st, int64_t since, int *before, struct strbuf *sb)
{
	sb_truncate(sb, 0);
	assert_int_equal(store_group_activity(st, "g", since, before, collect_bucket, sb), COHORT_OK);
	return sb_str(sb);
}

static void the_groups_activity_is_kept_by_quarter_hour_and_derived_again(void **state)
{
	struct fixture *f = *state;
	const int64_t q = STORE_BUCKET_MS;
	struct store_undone u;
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "a1", 1000), COHORT_OK);
	assert_int_equal(set(f->st, "bo", "redis", STATUS_DONE, "a2", 2 * q + 5), COHORT_OK);
	assert_int_equal(set(f->st, "bo", "redis", STATUS_SKIPPED, "a3", 2 * q + 6), COHORT_OK);
	/* Undoing the skip makes it done again: no new finish, one more done. */
	assert_int_equal(store_undo(f->st, "g", "bo", "bo", "a4", 3 * q, &u), COHORT_OK);
	free(u.topic_id);
	/* A finish undone takes itself back. */
	assert_int_equal(set(f->st, "ana", "docker", STATUS_DONE, "a5", 3 * q + 1), COHORT_OK);
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", "a6", 3 * q + 2, &u), COHORT_OK);
	free(u.topic_id);
	struct strbuf sb = STRBUF_INIT;
	int before = -1;
	assert_string_equal(activity(f->st, 0, &before, &sb), "0:1:1;2:1:0;3:0:1;");
	assert_int_equal(before, 0);
	assert_string_equal(activity(f->st, 2 * q, &before, &sb), "2:1:0;3:0:1;");
	assert_int_equal(before, 1);
	assert_string_equal(activity(f->st, 2 * q + 1, &before, &sb), "3:0:1;");
	assert_int_equal(before, 1);

	/* Derived again from the log, the same; without kafka on the roadmap, without it. */
	const char *ids[] = {"kafka", "redis", "docker"};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmap(f->st, ids, 3, NULL, 0, true, &res), COHORT_OK);
	assert_string_equal(activity(f->st, 0, &before, &sb), "0:1:1;2:1:0;3:0:1;");
	assert_int_equal(store_set_roadmap(f->st, ids + 1, 2, NULL, 0, false, &res), COHORT_OK);
	assert_string_equal(activity(f->st, 0, &before, &sb), "2:1:0;3:0:1;");
	/* A change to a topic off the roadmap counts nowhere. */
	assert_int_equal(set(f->st, "cy", "kafka", STATUS_DONE, "a7", 5 * q), COHORT_OK);
	assert_string_equal(activity(f->st, 0, &before, &sb), "2:1:0;3:0:1;");
	sb_release(&sb);
}

static void everything_survives_a_reopen(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN];
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "e1", 1), COHORT_OK);
	store_free(f->st);
	assert_int_equal(store_open(f->target, true, &f->st, err), COHORT_OK);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_SKIPPED, "e1", 2), COHORT_ERR_DUPLICATE);
}

/* The first column of the first row of sql, as text (kept until the next call). */
static const char *sql_text(sqlite3 *db, const char *sql)
{
	static char buf[256];
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return buf;
}

/* Every earlier schema version upgrades to the latest, keeping what it held. */
static void upgrades_from_every_earlier_version(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN];
	for (int v = 0; v < store_schema_latest(); v++) {
		char path[160];
		snprintf(path, sizeof(path), "%s/v%d.db", f->dir, v);
		assert_int_equal(store_create_at_version(path, v, err), COHORT_OK);
		/* Data written at that version: a table of the user's own must survive too. */
		sqlite3 *db;
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
					      "CREATE TABLE keep_me (x); INSERT INTO keep_me "
					      "VALUES (42);",
					      NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
		struct store *st;
		if (store_open(path, false, &st, err))
			fail_msg("upgrade from v%d: %s", v, err);
		assert_int_equal(store_schema_version(st), store_schema_latest());
		assert_int_equal(set(st, "ana", "kafka", STATUS_DONE, NULL, 1), COHORT_OK);
		store_free(st);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_string_equal(sql_text(db, "SELECT x FROM keep_me"), "42");
		/* The status CHECKs are comparisons now (no IN list), and still refuse. */
		assert_string_equal(sql_text(db,
					     "SELECT count(*) FROM sqlite_schema WHERE sql LIKE "
					     "'%status = ''done''%'"),
				    "2"); /* events and progress */
		assert_string_equal(sql_text(db,
					     "SELECT count(*) FROM sqlite_schema WHERE sql LIKE "
					     "'%status IN (%'"),
				    "0");
		assert_int_equal(
			sqlite3_exec(db,
				     "INSERT INTO progress (group_id, member_id, topic_id, "
				     "status, updated_at) VALUES ('g', 'ana', 'x', 'bogus', 1)",
				     NULL, NULL, NULL),
			SQLITE_CONSTRAINT);
		assert_int_equal(
			sqlite3_exec(db,
				     "INSERT INTO events (group_id, member_id, topic_id, "
				     "old_status, new_status, at) VALUES ('g', 'ana', 'x', "
				     "'none', 'bogus', 1)",
				     NULL, NULL, NULL),
			SQLITE_CONSTRAINT);
		assert_string_equal(sql_text(db, "PRAGMA integrity_check"), "ok");
		sqlite3_close(db);
	}
}

/* Version 1 stored progress without the maintained tables of version 2. */
static void an_upgrade_from_v1_derives_the_new_tables(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN], path[160];
	snprintf(path, sizeof(path), "%s/v1.db", f->dir);
	assert_int_equal(store_create_at_version(path, 1, err), COHORT_OK);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(
			db,
			"INSERT INTO members VALUES ('g', 'ana', 'Ana', 1, 1, 1500);"
			"INSERT INTO progress VALUES ('g', 'ana', 'kafka', 'done', NULL, 1500);"
			"INSERT INTO progress VALUES ('g', 'ana', 'soap', 'skipped', NULL, 1600);"
			"INSERT INTO progress VALUES ('g', 'ana', 'redis', 'in_progress', NULL, "
			"1700);",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	struct store *st;
	assert_int_equal(store_open(path, false, &st, err), COHORT_OK);
	struct store_calendar cal = {test_periods, NULL};
	assert_int_equal(store_set_calendar(st, &cal), COHORT_OK); /* rebuilds period scores */
	struct store_count c;
	assert_int_equal(store_topic_count(st, "g", "kafka", &c), COHORT_OK);
	assert_int_equal(c.done, 1);
	assert_int_equal(store_topic_count(st, "g", "redis", &c), COHORT_OK);
	assert_int_equal(c.in_progress, 1);
	int members, finished;
	assert_int_equal(store_group_totals(st, "g", &members, &finished), COHORT_OK);
	assert_int_equal(finished, 2);                /* the done and the skipped */
	assert_int_equal(points(st, "ana", 1000), 1); /* kafka's "week" */
	store_free(st);
}

static void a_newer_schema_is_refused(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN], path[160];
	snprintf(path, sizeof(path), "%s/future.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", store_schema_latest() + 1);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct store *st = NULL;
	assert_int_equal(store_open(path, false, &st, err), COHORT_ERR_STORE);
	assert_null(st);
	assert_non_null(strstr(err, "run a newer cohort"));
}

static void a_failed_migration_changes_nothing(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN], path[160];
	snprintf(path, sizeof(path), "%s/clash.db", f->dir);
	/* A table in the way makes migration 1 fail half-way: it must roll back whole. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE progress (x)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	struct store *st = NULL;
	assert_int_equal(store_open(path, false, &st, err), COHORT_ERR_STORE);
	assert_non_null(strstr(err, "nothing was changed"));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	/* members (created before the clash) was rolled back; user_version is still 0. */
	assert_int_not_equal(sqlite3_prepare_v2(db, "SELECT 1 FROM members", -1, &s, NULL),
			     SQLITE_OK);
	assert_string_equal(sql_text(db, "PRAGMA user_version"), "0");
	sqlite3_close(db);
}

static void an_unwritable_path_is_a_clear_error(void **state)
{
	(void)state;
	char err[COHORT_ERR_LEN];
	struct store *st = NULL;
	assert_int_equal(store_open("/nonexistent-dir/x.db", false, &st, err), COHORT_ERR_STORE);
	assert_non_null(strstr(err, "/nonexistent-dir/x.db: cannot open the database"));
}

static void a_batch_commits_together_and_a_failed_change_alone_is_undone(void **state)
{
	struct fixture *f = *state;
	int64_t n;
	assert_int_equal(store_batch_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "b-1", 1000), COHORT_OK);
	/* Unchanged and duplicate changes roll back their own savepoint only. */
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "b-2", 1001),
			 COHORT_ERR_UNCHANGED);
	assert_int_equal(set(f->st, "bob", "kafka", STATUS_DONE, "b-1", 1002),
			 COHORT_ERR_DUPLICATE);
	assert_int_equal(set(f->st, "bob", "redis", STATUS_DONE, "b-3", 1003), COHORT_OK);
	assert_int_equal(store_batch_end(f->st, true), COHORT_OK);
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(points(f->st, "bob", 0), 1);
	/* A batch given up leaves nothing behind. */
	assert_int_equal(store_batch_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "carol", "kafka", STATUS_DONE, "b-4", 1004), COHORT_OK);
	assert_int_equal(store_batch_end(f->st, false), COHORT_OK);
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(status_of(f->st, "carol", "kafka"), STATUS_NONE);
	/* And single changes work as before afterwards. */
	assert_int_equal(set(f->st, "carol", "kafka", STATUS_DONE, "b-5", 1005), COHORT_OK);
}

static void a_backup_is_a_complete_store(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "k-1", 1000), COHORT_OK);
	char path[160], err[COHORT_ERR_LEN];
	snprintf(path, sizeof(path), "%s/backup.db", f->dir);
	assert_int_equal(store_backup(f->st, path, false, err), COHORT_OK);
	/* One file, for its owner only: no -wal or -shm beside it. */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char side[200];
	snprintf(side, sizeof(side), "%s-wal", path);
	assert_int_equal(access(side, F_OK), -1);
	snprintf(side, sizeof(side), "%s-shm", path);
	assert_int_equal(access(side, F_OK), -1);
	struct store *copy;
	assert_int_equal(store_open(path, false, &copy, err), COHORT_OK);
	assert_int_equal(status_of(copy, "ana", "kafka"), STATUS_DONE);
	store_free(copy);
	/* Never over the live store, never over a file without force. */
	assert_int_equal(store_backup(f->st, f->path, true, err), COHORT_ERR_USAGE);
	assert_non_null(strstr(err, "the live store itself"));
	assert_int_equal(store_backup(f->st, path, false, err), COHORT_ERR_USAGE);
	assert_non_null(strstr(err, "--force"));
	assert_int_equal(store_backup(f->st, path, true, err), COHORT_OK);
	assert_int_equal(store_backup(f->st, "/nonexistent-dir/x.db", false, err), COHORT_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent-dir/x.db"));
}

/*
 * Starts n processes that each open path at the same moment (they wait on a
 * pipe the parent closes) and check the schema; returns how many failed.
 */
static int open_together(struct fixture *f, const char *path, int n)
{
	/*
	 * fork() copies only this thread: a lock another thread held at that moment (the
	 * fixture store's checkpoint thread, malloc's, ASan's) stays locked in the child
	 * for ever. So the fixture's store is closed, its thread joined, before forking.
	 */
	store_free(f->st);
	f->st = NULL;
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pids[16];
	assert_true(n <= 16);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			char c;
			ssize_t r = read(go[0], &c, 1); /* EOF: everyone goes */
			(void)r;
			char err[COHORT_ERR_LEN];
			struct store *st;
			int rc = store_open(path, false, &st, err);
			if (rc)
				fprintf(stderr, "process %d: %s\n", i, err);
			else if (store_schema_version(st) != store_schema_latest())
				rc = 1;
			store_free(st);
			_exit(rc ? 1 : 0);
		}
	}
	close(go[0]);
	nanosleep(&(struct timespec){0, 50000000}, NULL); /* let them all reach the read */
	close(go[1]);
	int failed = 0;
	for (int i = 0; i < n; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	return failed;
}

static void check_opened_store(const char *path)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char want[16];
	snprintf(want, sizeof(want), "%d", store_schema_latest());
	assert_string_equal(sql_text(db, "PRAGMA user_version"), want);
	assert_string_equal(sql_text(db, "PRAGMA integrity_check"), "ok");
	assert_string_equal(sql_text(db, "PRAGMA journal_mode"), "wal");
	sqlite3_close(db);
	/* Only its owner may read it, whatever the umask. */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

/* Eight processes creating one new store at the same moment all succeed. */
static void processes_starting_together_on_a_new_store_all_succeed(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(022);
	for (int round = 0; round < 5; round++) {
		char path[160];
		snprintf(path, sizeof(path), "%s/new%d.db", f->dir, round);
		assert_int_equal(open_together(f, path, 8), 0);
		check_opened_store(path);
	}
	umask(old);
}

/* ...and likewise when they find an old-version store to upgrade. */
static void processes_starting_together_on_an_old_store_all_succeed(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN];
	for (int v = 0; v < store_schema_latest(); v++) {
		for (int round = 0; round < 2; round++) {
			char path[160];
			snprintf(path, sizeof(path), "%s/old%d-%d.db", f->dir, v, round);
			assert_int_equal(store_create_at_version(path, v, err), COHORT_OK);
			assert_int_equal(open_together(f, path, 8), 0);
			check_opened_store(path);
		}
	}
}

/* The offline commands' open: a missing store is reported, and not created. */
static void opening_an_existing_store_creates_nothing(void **state)
{
	struct fixture *f = *state;
	char path[160], err[COHORT_ERR_LEN];
	snprintf(path, sizeof(path), "%s/missing.db", f->dir);
	struct store *st = NULL;
	assert_int_equal(store_open_existing(path, false, &st, err), COHORT_ERR_NOT_FOUND);
	assert_null(st);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(store_open_existing(f->path, false, &st, err), COHORT_OK);
	store_free(st);
}

static int many_changes(struct store *st, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char member[32], topic[32], source[32];
		snprintf(member, sizeof(member), "m%d", i / 20);
		snprintf(topic, sizeof(topic), "t%d", i % 20);
		snprintf(source, sizeof(source), "w-%d", i);
		int rc = set(st, member, topic, STATUS_DONE, source, 1000 + i);
		if (rc)
			return rc;
	}
	return COHORT_OK;
}

static void checkpoints_run_beside_the_commits_and_the_wal_stays_bounded(void **state)
{
	struct fixture *f = *state;
	struct store_checkpoints ck;
	/* A few thousand pages: copied back by the checkpoint thread, no commit waits. */
	assert_int_equal(many_changes(f->st, 0, 300), COHORT_OK);
	for (int i = 0; i < 200; i++) {
		store_checkpoint_stats(f->st, &ck);
		if (ck.background)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	assert_true(ck.background >= 1);
	assert_int_equal(ck.on_commit, 0);
	/* Writes without a pause: the WAL never grows past twice its cap of 10,000 pages. */
	assert_int_equal(many_changes(f->st, 300, 8000), COHORT_OK);
	char wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	struct stat sb;
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size <= (20000 + 100) * (4096 + 24) + 32);
	/* When the writes pause, the rest is copied back. */
	for (int i = 0; i < 300; i++) {
		store_checkpoint_stats(f->st, &ck);
		if (!ck.left)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	assert_int_equal(ck.left, 0);
	assert_int_equal(ck.failed, 0);
	int64_t n;
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, 8300);
}

/* Waits up to about 3 s for the checkpointer to have copied everything; returns what is left. */
static long checkpoint_left(struct store *st)
{
	struct store_checkpoints ck;
	for (int i = 0; i < 300; i++) {
		store_checkpoint_stats(st, &ck);
		if (!ck.left)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	return (long)ck.left;
}

/*
 * A few pages written after a copy caught up with the WAL (the checkpoint thread asleep,
 * no copy asked for: under CKPT_SOFT pages) are copied once the writes pause. They were
 * left over for good: checkpoints_run_beside_the_commits_and_the_wal_stays_bounded saw
 * ck.left != 0 when a copy ended up level with the writes under load.
 */
static void pages_written_after_a_full_copy_are_copied_when_the_writes_pause(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(many_changes(f->st, 0, 300), COHORT_OK);
	assert_int_equal(checkpoint_left(f->st), 0);
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* the thread waits again */
	assert_int_equal(many_changes(f->st, 300, 1), COHORT_OK);
	assert_int_equal(checkpoint_left(f->st), 0);
	struct store_checkpoints ck;
	store_checkpoint_stats(f->st, &ck);
	assert_int_equal(ck.failed, 0);
}

static int totals_done(struct store *st)
{
	int members, finished;
	assert_int_equal(store_group_totals(st, "g", &members, &finished), COHORT_OK);
	return finished;
}

static int collect_time(int64_t at, void *ud)
{
	struct {
		int64_t *v;
		int n;
	} *got = ud;
	if (got->n < 4)
		got->v[got->n++] = at;
	return 0;
}

static int set_in(struct store *st, const char *group, const char *member, const char *topic,
		  int64_t at)
{
	struct store_change c = {group, member, member, topic, STATUS_DONE, NULL, NULL, at};
	return store_set_status(st, &c, NULL);
}

static int points_in(struct store *st, const char *group, const char *member, int64_t since)
{
	struct {
		const char *member;
		int points;
	} r = {member, 0};
	assert_int_equal(store_ranking(st, group, since ? PERIOD_WEEK : PERIOD_ALL, since, 100,
				       NULL, points_fn, &r),
			 COHORT_OK);
	return r.points;
}

/* Issue 15 §1: each group counts the topics of its own roadmap; switching re-derives it alone. */
static void each_group_counts_its_own_roadmap(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN];
	const char *backend[] = {"kafka", "redis", "docker"};
	const char *frontend[] = {"redis", "react", "grid"};
	struct store_rename rn = {"css", "grid"};
	struct store_roadmap rms[] = {{"backend", backend, 3, NULL, 0},
				      {"frontend", frontend, 3, &rn, 1}};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_true(res.rederived);
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_false(res.rederived);
	/* Another default is another set: derived again. */
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 1, false, &res), COHORT_OK);
	assert_true(res.rederived);
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_true(res.rederived);
	for (int i = 0; i < 2; i++) {
		const char *g = i ? "h" : "g", *m = i ? "bob" : "ana";
		assert_int_equal(set_in(f->st, g, m, "kafka", 1100), COHORT_OK);
		assert_int_equal(set_in(f->st, g, m, "redis", 1200), COHORT_OK);
		assert_int_equal(set_in(f->st, g, m, "react", 1300), COHORT_OK);
		assert_int_equal(set_in(f->st, g, m, "css", 1400), COHORT_OK);
	}
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2);
	assert_int_equal(points_in(f->st, "g", "ana", 1000), 2);
	char *name;
	assert_int_equal(store_group_roadmap(f->st, "g", &name), COHORT_OK);
	assert_null(name);

	long moved = -1;
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[1], false, 1500, &moved), COHORT_OK);
	assert_int_equal(moved, 1); /* ana's css, kept as grid; bob's group is not on frontend */
	assert_int_equal(store_group_roadmap(f->st, "g", &name), COHORT_OK);
	assert_string_equal(name, "frontend");
	free(name);
	/* Redis carried over; React and Grid count; Kafka is kept but counts no more. */
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3);
	assert_int_equal(points_in(f->st, "g", "ana", 1000), 3);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
	assert_int_equal(status_of(f->st, "ana", "grid"), STATUS_DONE);
	assert_int_equal(totals_done(f->st), 3);
	/* The other group is untouched. */
	assert_int_equal(points_in(f->st, "h", "bob", 0), 2);
	assert_int_equal(points_in(f->st, "h", "bob", 1000), 2);
	/* A change follows the group's roadmap: Docker is not on frontend. */
	assert_int_equal(set_in(f->st, "g", "ana", "docker", 1600), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3);
	assert_int_equal(set_in(f->st, "h", "bob", "docker", 1600), COHORT_OK);
	assert_int_equal(points_in(f->st, "h", "bob", 0), 3);
	/* Its choice survives a restart told the same roadmaps (nothing derived again). */
	store_free(f->st);
	assert_int_equal(store_open(f->target, false, &f->st, err), COHORT_OK);
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_false(res.rederived);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3);
	/* A roadmap that is gone: the group counts the default until it comes back. */
	assert_int_equal(store_set_roadmaps(f->st, rms, 1, 0, false, &res), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3); /* kafka, redis, docker */
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3); /* redis, react, grid */
	assert_int_equal(set_in(f->st, "g", "ana", "kafka", 1700), COHORT_ERR_UNCHANGED);
	/* Back to the default: Kafka and Docker count again. */
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[0], true, 1800, NULL), COHORT_OK);
	assert_int_equal(store_group_roadmap(f->st, "g", &name), COHORT_OK);
	assert_null(name);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 3);
	assert_int_equal(totals_done(f->st), 3);
}

static int count_of_fn(const struct store_count *c, void *ud)
{
	struct {
		const char *topic;
		int done;
	} *want = ud;
	if (strcmp(c->topic_id, want->topic) == 0)
		want->done = c->done;
	return 0;
}

/* Members who finished topic in group, from the per-topic counts (store_topic_counts()). */
static int counted_done(struct store *st, const char *group, const char *topic)
{
	struct {
		const char *topic;
		int done;
	} want = {topic, 0};
	assert_int_equal(store_topic_counts(st, group, count_of_fn, &want), COHORT_OK);
	return want.done;
}

/*
 * Review of issue 15 §1: the per-topic counts follow every move of a switch.
 */
static void a_switch_recounts_the_groups_topics(void **state)
{
	struct fixture *f = *state;
	const char *backend[] = {"kafka", "redis", "docker"};
	const char *frontend[] = {"redis", "react", "grid"};
	struct store_rename rn = {"css", "grid"};
	struct store_roadmap rms[] = {{"backend", backend, 3, NULL, 0},
				      {"frontend", frontend, 3, &rn, 1}};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "redis", 1100), COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "css", 1200), COHORT_OK);
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[1], false, 1300, NULL),
			 COHORT_OK);
	/* The switch moved css to grid: the topic counts say so. */
	assert_int_equal(counted_done(f->st, "g", "grid"), 1);
	assert_int_equal(counted_done(f->st, "g", "css"), 0);
}

/*
 * Review of issue 15 §1: back on the default, the group's records under the
 * default's former ids move (renames learnt while it was away), and the
 * per-topic counts follow every move of a switch.
 */
static void switching_back_applies_the_defaults_renames(void **state)
{
	struct fixture *f = *state;
	const char *backend[] = {"kafka", "redis", "docker"};
	const char *frontend[] = {"redis", "react", "grid"};
	struct store_rename rn = {"css", "grid"}, pg = {"pg", "kafka"};
	struct store_roadmap rms[] = {{"backend", backend, 3, NULL, 0},
				      {"frontend", frontend, 3, &rn, 1}};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "redis", 1100), COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "css", 1200), COHORT_OK);
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[1], false, 1300, NULL),
			 COHORT_OK);
	/* The switch moved css to grid: the topic counts say so. */
	assert_int_equal(counted_done(f->st, "g", "grid"), 1);
	assert_int_equal(counted_done(f->st, "g", "css"), 0);
	assert_int_equal(set_in(f->st, "g", "ana", "pg", 1400), COHORT_OK);
	/* While g is away, backend learns that pg is now kafka. */
	rms[0].renames = &pg;
	rms[0].nrenames = 1;
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2); /* redis, grid */
	long moved = -1;
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[0], true, 1500, &moved),
			 COHORT_OK);
	assert_int_equal(moved, 1);
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2); /* redis, kafka */
	assert_int_equal(counted_done(f->st, "g", "kafka"), 1);
	assert_int_equal(counted_done(f->st, "g", "pg"), 0);
}

/*
 * Review of issue 15 §1: a group's choice names its roadmap ignoring case, as
 * the bot does: chosen as DevOps, it still counts devops after the file's
 * rename (or after an import that spelt it so).
 */
static void a_groups_roadmap_matches_ignoring_case(void **state)
{
	struct fixture *f = *state;
	const char *backend[] = {"kafka", "redis"};
	const char *devops[] = {"docker", "k8s"};
	struct store_roadmap rms[] = {{"backend", backend, 2, NULL, 0},
				      {"DevOps", devops, 2, NULL, 0}};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_int_equal(store_set_group_roadmap(f->st, "g", &rms[1], false, 1000, NULL),
			 COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "docker", 1100), COHORT_OK);
	assert_int_equal(set_in(f->st, "g", "ana", "k8s", 1200), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2);
	rms[1].name = "devops";
	assert_int_equal(store_set_roadmaps(f->st, rms, 2, 0, false, &res), COHORT_OK);
	assert_true(res.rederived);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2);
	assert_int_equal(totals_done(f->st), 2);
	assert_int_equal(set_in(f->st, "g", "ana", "kafka", 1300), COHORT_OK);
	assert_int_equal(points_in(f->st, "g", "ana", 0), 2);
}

/* Issue 12 §3: React removed, Grid renamed to CSS Grid; the numbers must still agree. */
static void progress_off_the_roadmap_is_kept_but_never_counted(void **state)
{
	struct fixture *f = *state;
	const char *before[] = {"react", "grid", "html"};
	struct store_roadmap_result res;
	assert_int_equal(store_set_roadmap(f->st, before, 3, NULL, 0, false, &res), COHORT_OK);
	assert_true(res.rederived);
	/* Unchanged: only the fingerprint is read. */
	assert_int_equal(store_set_roadmap(f->st, before, 3, NULL, 0, false, &res), COHORT_OK);
	assert_false(res.rederived);
	assert_int_equal(set(f->st, "ana", "react", STATUS_DONE, NULL, 1100), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "grid", STATUS_DONE, NULL, 1200), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "html", STATUS_SKIPPED, NULL, 1300), COHORT_OK);
	assert_int_equal(set(f->st, "bob", "grid", STATUS_DONE, NULL, 1400), COHORT_OK);
	assert_int_equal(set(f->st, "bob", "css-grid", STATUS_IN_PROGRESS, NULL, 1500), COHORT_OK);
	assert_int_equal(points(f->st, "ana", 0), 2);
	assert_int_equal(points(f->st, "ana", 1000), 2);
	assert_int_equal(totals_done(f->st), 4);

	const char *after[] = {"css-grid", "html"};
	struct store_rename rn = {"grid", "css-grid"};
	assert_int_equal(store_set_roadmap(f->st, after, 2, &rn, 1, false, &res), COHORT_OK);
	assert_true(res.rederived);
	assert_int_equal(res.moved, 1); /* ana's; bob has a css-grid record already */
	/* React is kept but earns nothing; Grid counts once, as CSS Grid. */
	assert_int_equal(status_of(f->st, "ana", "react"), STATUS_DONE);
	assert_int_equal(status_of(f->st, "ana", "css-grid"), STATUS_DONE);
	assert_int_equal(status_of(f->st, "ana", "grid"), STATUS_NONE);
	assert_int_equal(status_of(f->st, "bob", "grid"), STATUS_DONE);
	assert_int_equal(status_of(f->st, "bob", "css-grid"), STATUS_IN_PROGRESS);
	assert_int_equal(points(f->st, "ana", 0), 1);
	assert_int_equal(points(f->st, "ana", 1000), 1);
	assert_int_equal(points(f->st, "bob", 0), 0);
	assert_int_equal(points(f->st, "bob", 1000), 0);
	assert_int_equal(totals_done(f->st), 2); /* ana: css-grid done, html skipped */
	struct store_count c;
	assert_int_equal(store_topic_count(f->st, "g", "css-grid", &c), COHORT_OK);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.in_progress, 1);
	/* /undo of ana's Grid now reverts CSS Grid: the history moved with the record. */
	struct store_undone u;
	assert_int_equal(set(f->st, "ana", "react", STATUS_NONE, NULL, 1600), COHORT_OK);
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", NULL, 1700, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "react");
	free(u.topic_id);
	assert_int_equal(points(f->st, "ana", 0), 1); /* react back, still uncounted */
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", NULL, 1800, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "html");
	free(u.topic_id);
	assert_int_equal(store_undo(f->st, "g", "ana", "ana", NULL, 1900, &u), COHORT_OK);
	assert_string_equal(u.topic_id, "css-grid");
	free(u.topic_id);
	assert_int_equal(points(f->st, "ana", 0), 0);
	/* A new change off the roadmap earns nothing either. */
	assert_int_equal(set(f->st, "bob", "react", STATUS_DONE, NULL, 2000), COHORT_OK);
	assert_int_equal(points(f->st, "bob", 0), 0);
	assert_int_equal(points(f->st, "bob", 2000), 0);
	/* Streaks count only topics on the roadmap: bob's React day is not one. */
	int64_t times[4];
	struct {
		int64_t *v;
		int n;
	} got = {times, 0};
	assert_int_equal(store_done_times(f->st, "g", "bob", collect_time, &got), COHORT_OK);
	assert_int_equal(got.n, 0);
	/* Putting React back counts it again. */
	const char *back[] = {"css-grid", "html", "react"};
	assert_int_equal(store_set_roadmap(f->st, back, 3, &rn, 1, false, &res), COHORT_OK);
	assert_int_equal(points(f->st, "bob", 0), 1);
	assert_int_equal(points(f->st, "bob", 2000), 1);
	assert_int_equal(points(f->st, "ana", 0), 1);
	got.n = 0;
	assert_int_equal(store_done_times(f->st, "g", "bob", collect_time, &got), COHORT_OK);
	assert_int_equal(got.n, 1);
	assert_int_equal(times[0], 2000);
}

static int off_topic(const struct store_topic_total *t, void *ud)
{
	char *out = ud;
	char line[80];
	snprintf(line, sizeof(line), "%s:%ld/%ld ", t->topic_id, t->records, t->done);
	strcat(out, line);
	return 0;
}

static void topic_totals_name_every_stored_id(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(set(f->st, "ana", "react", STATUS_DONE, NULL, 1100), COHORT_OK);
	assert_int_equal(set(f->st, "bob", "react", STATUS_IN_PROGRESS, NULL, 1100), COHORT_OK);
	assert_int_equal(set(f->st, "bob", "grid", STATUS_DONE, NULL, 1100), COHORT_OK);
	char out[256] = "";
	assert_int_equal(store_topic_totals(f->st, off_topic, out), COHORT_OK);
	assert_string_equal(out, "grid:1/1 react:2/1 ");
}

/* PostgreSQL: cohort backup says what to use instead, and writes nothing. */
static void a_postgres_backup_names_pg_dump(void **state)
{
	struct fixture *f = *state;
	char path[160], err[COHORT_ERR_LEN];
	snprintf(path, sizeof(path), "%s/copy.db", f->dir);
	assert_int_equal(store_backup(f->st, path, false, err), COHORT_ERR_USAGE);
	assert_non_null(strstr(err, "pg_dump"));
	assert_int_equal(access(path, F_OK), -1);
}

/* PostgreSQL: processes starting together on a new database migrate it once. */
static void pg_processes_starting_together_migrate_once(void **state)
{
	struct fixture *f = *state;
	char sql[200];
	/* A second, empty schema: the fixture's own is created already. */
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s_b", f->schema);
	assert_int_equal(pg_exec(sql), 0);
	char url[1100];
	snprintf(url, sizeof(url), "%s_b", f->target);
	assert_int_equal(open_together(f, url, 8), 0);
	PGconn *c = PQconnectdb(pg_url());
	snprintf(sql, sizeof(sql), "SELECT count(*), max(version) FROM %s_b.cohort_schema",
		 f->schema);
	PGresult *r = PQexec(c, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "1"); /* migrated once */
	assert_int_equal(atoi(PQgetvalue(r, 0, 1)), store_schema_latest());
	PQclear(r);
	PQfinish(c);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s_b CASCADE", f->schema);
	assert_int_equal(pg_exec(sql), 0);
}

/* Goals: one per member and one for the group, marked reached once, dumped, restored. */
struct goal_seen {
	char text[512];
};

static int goal_line(const struct store_goal *g, void *ud)
{
	struct goal_seen *s = ud;
	size_t n = strlen(s->text);
	snprintf(s->text + n, sizeof(s->text) - n, "[%s|%s:%s|%s|%lld|%s|%s|%lld]", g->member_id,
		 g->target_kind, g->target_id, g->due_date, (long long)g->set_at, g->set_by,
		 g->set_by_name, (long long)g->reached_at);
	return 0;
}

static int mark_line(const struct store_goal_mark *m, void *ud)
{
	struct goal_seen *s = ud;
	size_t n = strlen(s->text);
	snprintf(s->text + n, sizeof(s->text) - n, "[%s>%s %s %lld %s %s]", m->goal_member,
		 m->member_id, m->member_name ? m->member_name : "-", (long long)m->reached_at,
		 m->target_id ? m->target_id : "-", m->due_date ? m->due_date : "-");
	return 0;
}

static const char *goals_of(struct store *st, const char *member)
{
	static struct goal_seen s;
	s.text[0] = '\0';
	assert_int_equal(store_goals(st, "g", member, goal_line, &s), COHORT_OK);
	return s.text;
}

static void goals_are_kept_and_reached_once(void **state)
{
	struct fixture *f = *state;
	struct store_goal mine = {"g",	 "ana", "section", "message-brokers", "2027-03-31",
				  1000, "ana", "Ana",	  0};
	struct store_goal all = {"g", "", "topic", "kafka", "2027-01-31", 2000, "root", "Root", 0};
	struct store_goal other = {"h", "ana", "topic", "redis", "2027-02-01", 3000, "ana", "Ana", 0};
	assert_string_equal(goals_of(f->st, "ana"), "");
	assert_int_equal(store_goal_set(f->st, &mine), COHORT_OK);
	assert_int_equal(store_goal_set(f->st, &all), COHORT_OK);
	assert_int_equal(store_goal_set(f->st, &other), COHORT_OK);
	assert_string_equal(goals_of(f->st, "ana"),
			    "[ana|section:message-brokers|2027-03-31|1000|ana|Ana|0]"
			    "[|topic:kafka|2027-01-31|2000|root|Root|0]");
	assert_string_equal(goals_of(f->st, "bob"), "[|topic:kafka|2027-01-31|2000|root|Root|0]");
	/* Marked once: the second call, and a call for a goal set at another time, do nothing. */
	bool first;
	assert_int_equal(store_goal_mark(f->st, "g", "ana", "ana", 1000, 5000, &first), COHORT_OK);
	assert_true(first);
	assert_int_equal(store_goal_mark(f->st, "g", "ana", "ana", 1000, 6000, &first), COHORT_OK);
	assert_false(first);
	assert_int_equal(store_goal_mark(f->st, "g", "", "bob", 1999, 6000, &first), COHORT_OK);
	assert_false(first);
	assert_int_equal(store_goal_mark(f->st, "g", "", "bob", 2000, 7000, &first), COHORT_OK);
	assert_true(first);
	assert_string_equal(goals_of(f->st, "ana"),
			    "[ana|section:message-brokers|2027-03-31|1000|ana|Ana|5000]"
			    "[|topic:kafka|2027-01-31|2000|root|Root|0]");
	assert_string_equal(goals_of(f->st, "bob"),
			    "[|topic:kafka|2027-01-31|2000|root|Root|7000]");
	assert_string_equal(goals_of(f->st, NULL),
			    "[ana|section:message-brokers|2027-03-31|1000|ana|Ana|5000]"
			    "[|topic:kafka|2027-01-31|2000|root|Root|0]");
	struct goal_seen s = {""};
	assert_int_equal(store_goal_marks(f->st, "g", 5000, 7001, mark_line, &s), COHORT_OK);
	assert_string_equal(s.text, "[ana>ana Ana 5000 message-brokers 2027-03-31]"
				    "[>bob Root 7000 kafka 2027-01-31]");
	s.text[0] = '\0';
	assert_int_equal(store_goal_marks(f->st, "g", 5001, 7000, mark_line, &s), COHORT_OK);
	assert_string_equal(s.text, "");
	/* A new goal replaces the old one and its marks; cleared, it is gone. */
	mine.target_id = "caching";
	mine.set_at = 8000;
	assert_int_equal(store_goal_set(f->st, &mine), COHORT_OK);
	assert_string_equal(goals_of(f->st, "ana"),
			    "[ana|section:caching|2027-03-31|8000|ana|Ana|0]"
			    "[|topic:kafka|2027-01-31|2000|root|Root|0]");
	assert_int_equal(store_goal_clear(f->st, "g", ""), COHORT_OK);
	assert_int_equal(store_goal_clear(f->st, "g", ""), COHORT_ERR_NOT_FOUND);
	assert_string_equal(goals_of(f->st, "bob"), "");
	assert_int_equal(store_goal_mark(f->st, "g", "", "bob", 2000, 9000, &first), COHORT_OK);
	assert_false(first); /* no such goal now */
}

static int dump_nothing(const void *row, void *ud)
{
	(void)row;
	(void)ud;
	return 0;
}

static void goals_are_dumped_and_restored(void **state)
{
	struct fixture *f = *state;
	struct store_goal mine = {"g",	 "ana", "section", "message-brokers", "2027-03-31",
				  1000, "ana", "Ana",	  0};
	struct store_goal all = {"g", "", "topic", "kafka", "2027-01-31", 2000, "root", "Root", 0};
	bool first;
	assert_int_equal(store_goal_set(f->st, &mine), COHORT_OK);
	assert_int_equal(store_goal_set(f->st, &all), COHORT_OK);
	assert_int_equal(store_goal_mark(f->st, "g", "", "bob", 2000, 7000, &first), COHORT_OK);
	struct goal_seen s = {""};
	struct store_dump_fns fns = {(void *)dump_nothing, (void *)dump_nothing,
				     (void *)dump_nothing, (void *)dump_nothing,
				     (void *)dump_nothing, (void *)dump_nothing,
				     goal_line,		   mark_line,
				     NULL,		   NULL,
				     NULL};
	assert_int_equal(store_dump(f->st, NULL, &fns, &s), COHORT_OK);
	assert_string_equal(s.text, "[|topic:kafka|2027-01-31|2000|root|Root|0]"
				    "[ana|section:message-brokers|2027-03-31|1000|ana|Ana|0]"
				    "[>bob - 7000 - -]");
	/* Into a store of its own: the same rows; a mark without its goal is refused. */
	assert_int_equal(store_goal_clear(f->st, "g", ""), COHORT_OK);
	assert_int_equal(store_goal_clear(f->st, "g", "ana"), COHORT_OK);
	assert_int_equal(store_restore_begin(f->st), COHORT_OK);
	assert_int_equal(store_restore_goal(f->st, &all), COHORT_OK);
	assert_int_equal(store_restore_goal(f->st, &mine), COHORT_OK);
	assert_int_equal(store_restore_goal(f->st, &mine), COHORT_ERR_DUPLICATE);
	assert_int_equal(store_restore_end(f->st, false), COHORT_OK);
	assert_int_equal(store_restore_begin(f->st), COHORT_OK);
	assert_int_equal(store_restore_goal(f->st, &all), COHORT_OK);
	assert_int_equal(store_restore_goal(f->st, &mine), COHORT_OK);
	struct store_goal_mark m = {"g", "", "bob", NULL, 7000, NULL, NULL, NULL};
	assert_int_equal(store_restore_goal_mark(f->st, &m), COHORT_OK);
	assert_int_equal(store_restore_end(f->st, true), COHORT_OK);
	s.text[0] = '\0';
	assert_int_equal(store_dump(f->st, NULL, &fns, &s), COHORT_OK);
	assert_string_equal(s.text, "[|topic:kafka|2027-01-31|2000|root|Root|0]"
				    "[ana|section:message-brokers|2027-03-31|1000|ana|Ana|0]"
				    "[>bob - 7000 - -]");
	assert_int_equal(store_restore_begin(f->st), COHORT_OK);
	m.goal_member = "zed";
	assert_int_equal(store_restore_goal_mark(f->st, &m), COHORT_ERR_STORE);
	assert_int_equal(store_restore_end(f->st, false), COHORT_OK);
}

/* Takes a PostgreSQL store's schema back from version 15 (a roadmap per group) to 14. */
static int pg_undo_15(const struct fixture *f)
{
	char sql[600];
	snprintf(sql, sizeof(sql),
		 "SET search_path = %s; DROP TABLE roadmaps; DROP TABLE group_roadmap; "
		 "DROP TABLE roadmap_topics; CREATE TABLE roadmap_topics (topic_id TEXT PRIMARY KEY); "
		 "INSERT INTO roadmap_topics VALUES ('kafka')",
		 f->schema);
	return pg_exec(sql);
}

/* PostgreSQL: a database at version 5 gets the goals', the group's page's and reminders' tables. */
static void pg_an_older_schema_is_upgraded(void **state)
{
	struct fixture *f = *state;
	char err[COHORT_ERR_LEN];
	char sql[1400];
	store_free(f->st);
	f->st = NULL;
	snprintf(sql, sizeof(sql),
		 "DROP TABLE %s.goal_reached; DROP TABLE %s.goals; DROP TABLE %s.dashboards; "
		 "DROP TABLE %s.group_activity; DROP TABLE %s.outbox; DROP TABLE %s.rate_windows; "
		 "ALTER TABLE %s.events DROP COLUMN actor_id, DROP COLUMN actor_name, "
		 "DROP COLUMN removal; DROP TABLE %s.reminders; DROP TABLE %s.reminders_sent; "
		 "ALTER TABLE %s.group_settings DROP COLUMN digest_every; "
		 "DELETE FROM %s.cohort_schema; INSERT INTO %s.cohort_schema (version) VALUES (5)",
		 f->schema, f->schema, f->schema, f->schema, f->schema, f->schema, f->schema,
		 f->schema, f->schema, f->schema, f->schema, f->schema);
	assert_int_equal(pg_undo_15(f), 0);
	assert_int_equal(pg_exec(sql), 0);
	assert_int_equal(drop_link_tables(f->schema), 0);
	if (store_open(f->target, false, &f->st, err))
		fail_msg("%s", err);
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	assert_int_equal(store_dashboard_set(f->st, "g", "tok", true, 1), COHORT_OK);
	char *group;
	assert_int_equal(store_dashboard_group(f->st, "tok", &group), COHORT_OK);
	assert_string_equal(group, "g");
	free(group);
	assert_int_equal(store_remind_set(f->st, "g", "ana", "20:00", 1), COHORT_OK);
	assert_int_equal(store_set_digest_every(f->st, "g", "weekdays"), COHORT_OK);
}

#define RACERS 4
#define SHARED 40 /* changes every racer makes, each with the same source id */
#define SAME 10   /* topics every racer marks done for one member, no source id */
#define SOLO 10   /* dones each racer makes for a member of its own, on 5 topics */

/* One racer: its own connection; writes what came of its changes to fd. */
static void race(const char *target, int k, int go, int fd)
{
	char c;
	ssize_t r = read(go, &c, 1); /* EOF: everyone goes */
	(void)r;
	char err[COHORT_ERR_LEN];
	struct store *st;
	int counts[3] = {0, 0, 0}; /* ok, unchanged, duplicate */
	if (store_open(target, false, &st, err)) {
		fprintf(stderr, "racer %d: %s\n", k, err);
		_exit(1);
	}
	struct store_calendar cal = {test_periods, NULL};
	if (store_set_calendar(st, &cal))
		_exit(1);
	for (int i = 0; i < SHARED + SAME + SOLO; i++) {
		char member[16], topic[16], source[16];
		const char *src = NULL;
		if (i < SHARED) { /* the same event delivered to every process */
			snprintf(member, sizeof(member), "m%d", i % 8);
			snprintf(topic, sizeof(topic), "t%d", i / 8);
			snprintf(source, sizeof(source), "src-%d", i);
			src = source;
		} else if (i < SHARED + SAME) { /* one member, one topic, from everyone at once */
			snprintf(member, sizeof(member), "same");
			snprintf(topic, sizeof(topic), "s%d", i - SHARED);
		} else { /* different members at once */
			snprintf(member, sizeof(member), "solo%d", k);
			snprintf(topic, sizeof(topic), "t%d", (i - SHARED - SAME) % 5);
		}
		struct store_change ch = {"g", member, member, topic, STATUS_DONE, NULL, src,
					  1000 + i};
		int rc = store_set_status(st, &ch, NULL);
		if (rc == COHORT_OK)
			counts[0]++;
		else if (rc == COHORT_ERR_UNCHANGED)
			counts[1]++;
		else if (rc == COHORT_ERR_DUPLICATE)
			counts[2]++;
		else
			_exit(2);
	}
	store_free(st);
	if (write(fd, counts, sizeof(counts)) != (ssize_t)sizeof(counts))
		_exit(3);
	_exit(0);
}

static int count_topic(const struct store_count *c, void *ud)
{
	int *done = ud;
	if (c->topic_id[0] == 't') /* "t0".."t4" */
		done[c->topic_id[1] - '0'] = c->done;
	return 0;
}

/*
 * PostgreSQL: four processes making /dones at once (the same source events,
 * the same member and topic, different members of one group) lose nothing
 * and count nothing twice.
 */
static void pg_concurrent_dones_are_counted_exactly_once(void **state)
{
	struct fixture *f = *state;
	int go[2], out[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pids[RACERS];
	store_free(f->st); /* no connection is shared with the children; reopened below */
	f->st = NULL;
	for (int k = 0; k < RACERS; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			close(go[1]);
			close(out[0]);
			race(f->target, k, go[0], out[1]);
		}
	}
	close(go[0]);
	close(out[1]);
	nanosleep(&(struct timespec){0, 200000000}, NULL); /* let them connect and wait */
	close(go[1]);
	int total[3] = {0, 0, 0};
	for (int k = 0; k < RACERS; k++) {
		int status, counts[3];
		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(read(out[0], counts, sizeof(counts)), (ssize_t)sizeof(counts));
		for (int j = 0; j < 3; j++)
			total[j] += counts[j];
	}
	close(out[0]);
	assert_int_equal(open_fixture(f), 0);
	/* Each shared event applied once; each same-member topic done once; every solo one. */
	assert_int_equal(total[0], SHARED + SAME + RACERS * 5);
	assert_int_equal(total[0] + total[1] + total[2], RACERS * (SHARED + SAME + SOLO));
	int64_t n;
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, SHARED + SAME + RACERS * 5);
	assert_int_equal(points(f->st, "same", 0), SAME);
	assert_int_equal(points(f->st, "m0", 0), SHARED / 8);
	assert_int_equal(points(f->st, "solo0", 0), 5); /* SOLO dones on 5 topics, twice each */
	int members, finished;
	assert_int_equal(store_group_totals(f->st, "g", &members, &finished), COHORT_OK);
	assert_int_equal(members, 8 + 1 + RACERS);
	assert_int_equal(finished, SHARED + SAME + RACERS * 5);
	/* Topic t0: the 8 shared members and every solo member. */
	int done[10] = {0};
	assert_int_equal(store_topic_counts(f->st, "g", count_topic, done), COHORT_OK);
	assert_int_equal(done[0], 8 + RACERS);
	/* The week scores agree with the all-time ones. */
	assert_int_equal(points(f->st, "same", 1000), SAME);
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* A lease is its holder's until it lapses; then anyone may take it; a refusal names the holder. */
static void a_lease_is_held_until_it_lapses(void **state)
{
	struct fixture *f = *state;
	struct store_lease l;
	assert_int_equal(store_lease_get(f->st, "digest:g", &l), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-a pid 1 id aa", 600, true, &l),
			 COHORT_OK);
	assert_string_equal(l.holder, "host-a pid 1 id aa");
	assert_true(l.ms_left > 300 && l.ms_left <= 600);
	/* Another holder is refused and told who has it and for how long. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-b pid 2 id bb", 600, true, &l),
			 COHORT_ERR_DENIED);
	assert_string_equal(l.holder, "host-a pid 1 id aa");
	assert_true(l.ms_left > 0 && l.ms_left <= 600);
	/* Another name is another lease. */
	assert_int_equal(store_lease_take(f->st, "digest:h", "host-b pid 2 id bb", 600, true, NULL),
			 COHORT_OK);
	/* The holder renews it: still its own after the first period would have ended. */
	sleep_ms(350);
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-a pid 1 id aa", 600, true, &l),
			 COHORT_OK);
	assert_true(l.ms_left > 450);
	sleep_ms(350);
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-b pid 2 id bb", 600, true, &l),
			 COHORT_ERR_DENIED);
	assert_string_equal(l.holder, "host-a pid 1 id aa");
	/* Not renewed, it lapses, and the next one takes it; the old holder is refused then. */
	sleep_ms(700);
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-b pid 2 id bb", 600, true, &l),
			 COHORT_OK);
	assert_string_equal(l.holder, "host-b pid 2 id bb");
	assert_int_equal(store_lease_take(f->st, "digest:g", "host-a pid 1 id aa", 600, true, &l),
			 COHORT_ERR_DENIED);
	assert_string_equal(l.holder, "host-b pid 2 id bb");
}

/* A release frees a lease at once, but only the holder's own release does. */
static void a_released_lease_is_free_at_once(void **state)
{
	struct fixture *f = *state;
	struct store_lease l;
	assert_int_equal(store_lease_take(f->st, "shard:0", "a", 60000, true, NULL), COHORT_OK);
	assert_int_equal(store_lease_release(f->st, "shard:0", "b"), COHORT_OK); /* not b's */
	assert_int_equal(store_lease_take(f->st, "shard:0", "b", 60000, true, &l), COHORT_ERR_DENIED);
	assert_string_equal(l.holder, "a");
	assert_int_equal(store_lease_release(f->st, "shard:0", "a"), COHORT_OK);
	assert_int_equal(store_lease_get(f->st, "shard:0", &l), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_lease_take(f->st, "shard:0", "b", 60000, true, &l), COHORT_OK);
	assert_string_equal(l.holder, "b");
}

/* Leases lapsed for longer than asked are deleted, whoever held them; the others stay. */
static void leases_lapsed_long_ago_are_pruned(void **state)
{
	struct fixture *f = *state;
	const int64_t day = 24 * 3600 * 1000LL;
	struct store_lease l;
	assert_int_equal(store_lease_take(f->st, "ix:old", "a", -2 * day, false, NULL), COHORT_OK);
	assert_int_equal(store_lease_take(f->st, "ix:recent", "b", -3600000, false, NULL),
			 COHORT_OK);
	assert_int_equal(store_lease_take(f->st, "shard:0", "c", 60000, true, NULL), COHORT_OK);
	int64_t n = -1;
	assert_int_equal(store_lease_prune(f->st, day, &n), COHORT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_lease_get(f->st, "ix:old", &l), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_lease_get(f->st, "ix:recent", &l), COHORT_OK);
	assert_string_equal(l.holder, "b");
	assert_int_equal(store_lease_get(f->st, "shard:0", &l), COHORT_OK);
	assert_string_equal(l.holder, "c");
	/* Nothing more to do: none deleted. */
	assert_int_equal(store_lease_prune(f->st, day, &n), COHORT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_lease_prune(f->st, 0, NULL), COHORT_OK);
	assert_int_equal(store_lease_get(f->st, "ix:recent", &l), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_lease_get(f->st, "shard:0", &l), COHORT_OK);
}

/* Link codes expired (used or not) and wrong codes counted before the cut are deleted. */
static void old_link_codes_and_wrong_codes_are_pruned(void **state)
{
	struct fixture *f = *state;
	struct store_link_code c;
	int wrong = 0;
	int64_t n = -1, first = 0;
	assert_int_equal(store_link_code_put(f->st, "old", "member", "discord:1", 1000, 2000),
			 COHORT_OK);
	assert_int_equal(store_link_code_put(f->st, "used", "group", "discord:2", 1000, 5000),
			 COHORT_OK);
	assert_int_equal(store_link_code_spend(f->st, "used", "group", 1500), COHORT_OK);
	assert_int_equal(store_link_code_put(f->st, "live", "member", "discord:3", 9000, 20000),
			 COHORT_OK);
	assert_int_equal(store_link_attempt_add(f->st, "matrix:@a:x", 1000), COHORT_OK);
	assert_int_equal(store_link_attempt_add(f->st, "matrix:@a:x", 12000), COHORT_OK);
	assert_int_equal(store_link_prune(f->st, 10000, &n), COHORT_OK);
	assert_int_equal(n, 3);
	assert_int_equal(store_link_code_get(f->st, "old", &c), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_link_code_get(f->st, "used", &c), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_link_code_get(f->st, "live", &c), COHORT_OK);
	assert_string_equal(c.owner_id, "discord:3");
	assert_int_equal(c.used_at, 0);
	free(c.owner_id);
	assert_int_equal(store_link_attempts(f->st, "matrix:@a:x", 0, &wrong, &first), COHORT_OK);
	assert_int_equal(wrong, 1);
	assert_int_equal(first, 12000);
	/* Nothing more to do: none deleted. */
	assert_int_equal(store_link_prune(f->st, 10000, &n), COHORT_OK);
	assert_int_equal(n, 0);
}

/* Without renew a lease is a slot used once per period: its own holder is refused too. */
static void a_slot_is_used_once_per_period(void **state)
{
	struct fixture *f = *state;
	struct store_lease l;
	assert_int_equal(store_lease_take(f->st, "identify:0", "a", 400, false, NULL), COHORT_OK);
	assert_int_equal(store_lease_take(f->st, "identify:0", "a", 400, false, &l),
			 COHORT_ERR_DENIED);
	assert_string_equal(l.holder, "a");
	assert_int_equal(store_lease_take(f->st, "identify:0", "b", 400, false, NULL),
			 COHORT_ERR_DENIED);
	sleep_ms(500);
	assert_int_equal(store_lease_take(f->st, "identify:0", "b", 400, false, &l), COHORT_OK);
	assert_string_equal(l.holder, "b");
}

/* The holder identity names this host and process and stays the same within it. */
static void the_holder_names_the_process(void **state)
{
	(void)state;
	char host[64] = "", want[96];
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	snprintf(want, sizeof(want), "%s pid %ld ns ", host, (long)getpid());
	const char *h = store_lease_holder();
	assert_int_equal(strncmp(h, want, strlen(want)), 0);
	assert_non_null(strstr(h, " id "));
	char boot[64] = "";
	FILE *bf = fopen("/proc/sys/kernel/random/boot_id", "r");
	assert_non_null(bf);
	assert_non_null(fgets(boot, sizeof(boot), bf));
	fclose(bf);
	boot[strcspn(boot, "\n")] = '\0';
	char want_boot[96];
	snprintf(want_boot, sizeof(want_boot), " boot %s id ", boot);
	assert_non_null(strstr(h, want_boot));
	assert_ptr_equal(store_lease_holder(), h);
	assert_false(store_lease_holder_gone(h));
}

/*
 * A holder that was a process of this host and no longer runs is known to be
 * gone, and its lease can be taken over at once; one that runs, or of another
 * host, is not.
 */
static void a_gone_holders_lease_is_taken_over(void **state)
{
	struct fixture *f = *state;
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	/* Our own identity with the dead child's pid: this host, this namespace. */
	const char *me = store_lease_holder();
	const char *ns = strstr(me, " ns ");
	char host[64], gone[STORE_HOLDER_LEN], other[STORE_HOLDER_LEN];
	snprintf(host, sizeof(host), "%.*s", (int)(strstr(me, " pid ") - me), me);
	snprintf(gone, sizeof(gone), "%s pid %ld%.*s id 00000001", host, (long)child,
		 (int)(strstr(ns, " id ") - ns), ns);
	assert_true(store_lease_holder_gone(gone));
	snprintf(other, sizeof(other), "elsewhere pid %ld%.*s id 00000001", (long)child,
		 (int)(strstr(ns, " id ") - ns), ns);
	assert_false(store_lease_holder_gone(other));
	snprintf(other, sizeof(other), "%s pid %ld%.*s id 00000001", host, (long)getppid(),
		 (int)(strstr(ns, " id ") - ns), ns);
	assert_false(store_lease_holder_gone(other)); /* runs */
	assert_false(store_lease_holder_gone("not a holder"));
	/*
	 * Same host name, pid and namespace inode (the root namespace's is alike on
	 * every Linux host), another boot id: another machine, whose process may
	 * well run. Without a boot id nobody can tell: both are waited out.
	 */
	const char *boot = strstr(me, " boot ");
	assert_non_null(boot);
	snprintf(other, sizeof(other), "%s pid %ld%.*s boot 00000000-0000-4000-8000-000000000000 id 00000001",
		 host, (long)child, (int)(boot - ns), ns);
	assert_false(store_lease_holder_gone(other));
	snprintf(other, sizeof(other), "%s pid %ld%.*s id 00000001", host, (long)child,
		 (int)(boot - ns), ns);
	assert_false(store_lease_holder_gone(other));

	assert_int_equal(store_lease_take(f->st, "shard:1", gone, 60000, true, NULL), COHORT_OK);
	assert_int_equal(store_lease_take(f->st, "shard:1", me, 60000, true, NULL),
			 COHORT_ERR_DENIED);
	assert_int_equal(store_lease_take_over(f->st, "shard:1", other, me, 60000),
			 COHORT_ERR_DENIED); /* not the one that has it */
	assert_int_equal(store_lease_take_over(f->st, "shard:1", gone, me, 60000), COHORT_OK);
	struct store_lease l;
	assert_int_equal(store_lease_get(f->st, "shard:1", &l), COHORT_OK);
	assert_string_equal(l.holder, me);
	assert_true(l.ms_left > 50000);
}

/*
 * A database an earlier cohort made (version 4: no leases, no shared rates) is
 * upgraded in place on open.
 */
static void pg_an_earlier_database_is_upgraded(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, NULL, 1000), COHORT_OK);
	store_free(f->st);
	f->st = NULL;
	char sql[1400];
	snprintf(sql, sizeof(sql),
		 "DROP TABLE %s.leases; DROP TABLE %s.goal_reached; DROP TABLE %s.goals; "
		 "DROP TABLE %s.dashboards; DROP TABLE %s.group_activity; DROP TABLE %s.outbox; "
		 "DROP TABLE %s.rate_windows; DROP TABLE %s.reminders; DROP TABLE %s.reminders_sent; "
		 "ALTER TABLE %s.events DROP COLUMN actor_id, DROP COLUMN actor_name, "
		 "DROP COLUMN removal; ALTER TABLE %s.group_settings DROP COLUMN digest_every; "
		 "DELETE FROM %s.cohort_schema; "
		 "INSERT INTO %s.cohort_schema (version) VALUES (4)",
		 f->schema, f->schema, f->schema, f->schema, f->schema, f->schema, f->schema,
		 f->schema, f->schema, f->schema, f->schema, f->schema, f->schema);
	assert_int_equal(pg_undo_15(f), 0);
	assert_int_equal(pg_exec(sql), 0);
	assert_int_equal(drop_link_tables(f->schema), 0);
	assert_int_equal(open_fixture(f), 0);
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	assert_int_equal(status_of(f->st, "ana", "kafka"), STATUS_DONE);
	assert_int_equal(store_lease_take(f->st, "x", "a", 1000, true, NULL), COHORT_OK);
	struct store_goal g = {"g", "", "topic", "kafka", "2027-01-31", 2000, "root", "Root", 0};
	assert_int_equal(store_goal_set(f->st, &g), COHORT_OK);
	int64_t ms;
	assert_int_equal(store_rate_take(f->st, "r", 50, 1, &ms), COHORT_OK);
	assert_int_equal(store_remind_set(f->st, "g", "ana", "20:00", 3000), COHORT_OK);
}

/* A shared rate gives out at most its limit per second of the database's clock. */
static void a_shared_rate_gives_its_limit_per_second(void **state)
{
	struct fixture *f = *state;
	int64_t ms;
	/* Start early in a second, so that ten takes fit in it. */
	do {
		assert_int_equal(store_rate_take(f->st, "warm-up", 1000000, 1, &ms), COHORT_OK);
		if (ms < 600)
			sleep_ms(ms + 5);
	} while (ms < 600);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(store_rate_take(f->st, "rest", 50, 5, &ms), COHORT_OK);
		assert_true(ms > 0 && ms <= 1000);
	}
	assert_int_equal(store_rate_take(f->st, "rest", 50, 5, &ms), COHORT_ERR_DENIED);
	assert_true(ms > 0 && ms <= 1000);
	assert_int_equal(store_rate_take(f->st, "other", 50, 5, &ms), COHORT_OK);
	assert_int_equal(store_rate_take(f->st, "rest", 50, 1, &ms), COHORT_ERR_DENIED);
	/* The next second starts afresh. */
	sleep_ms(ms + 5);
	assert_int_equal(store_rate_take(f->st, "rest", 50, 5, &ms), COHORT_OK);
	assert_int_equal(store_rate_take(f->st, "rest", 50, 45, &ms), COHORT_OK);
	assert_int_equal(store_rate_take(f->st, "rest", 50, 1, &ms), COHORT_ERR_DENIED);
}

static int collect_reminder(const struct store_reminder *r, void *ud)
{
	char *buf = ud;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "[%s|%s|%s|%lld]", r->group_id, r->member_id, r->at,
		 (long long)r->set_at);
	return 0;
}

/* Reminders: one time per member who asked, replaced, removed; a day recorded once. */
static void reminders_are_kept_and_a_day_recorded_once(void **state)
{
	struct fixture *f = *state;
	char *at = (char *)"x", all[256] = "";
	assert_int_equal(store_remind_get(f->st, "g", "ana", &at), COHORT_OK);
	assert_null(at);
	assert_int_equal(store_remind_clear(f->st, "g", "ana"), COHORT_ERR_NOT_FOUND);
	assert_int_equal(store_remind_set(f->st, "g", "ana", "20:00", 1000), COHORT_OK);
	assert_int_equal(store_remind_set(f->st, "g", "ana", "07:30", 2000), COHORT_OK);
	assert_int_equal(store_remind_set(f->st, "h", "bob", "21:00", 3000), COHORT_OK);
	assert_int_equal(store_remind_get(f->st, "g", "ana", &at), COHORT_OK);
	assert_string_equal(at, "07:30");
	free(at);
	assert_int_equal(store_reminders(f->st, NULL, collect_reminder, all), COHORT_OK);
	assert_string_equal(all, "[g|ana|07:30|2000][h|bob|21:00|3000]");
	all[0] = '\0';
	assert_int_equal(store_reminders(f->st, "h", collect_reminder, all), COHORT_OK);
	assert_string_equal(all, "[h|bob|21:00|3000]");
	bool first;
	assert_int_equal(store_remind_record(f->st, "g", "ana", "2026-11-25", "k1", 5, &first),
			 COHORT_OK);
	assert_true(first);
	assert_int_equal(store_remind_record(f->st, "g", "ana", "2026-11-25", "k1", 6, &first),
			 COHORT_OK);
	assert_false(first);
	assert_int_equal(store_remind_record(f->st, "g", "ana", "2026-11-26", "k2", 7, &first),
			 COHORT_OK);
	assert_true(first);
	assert_int_equal(store_remind_clear(f->st, "g", "ana"), COHORT_OK);
	assert_int_equal(store_remind_get(f->st, "g", "ana", &at), COHORT_OK);
	assert_null(at);
}

#define LEASE_RACERS 6

/*
 * Processes taking one free lease at the same moment, each on its own
 * connection, several times over: exactly one gets it each time.
 */
static void racing_holders_get_a_lease_once(void **state)
{
	struct fixture *f = *state;
	store_free(f->st); /* no connection is shared with the children; reopened below */
	f->st = NULL;
	for (int round = 0; round < 3; round++) {
		int go[2], out[2];
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(out), 0);
		pid_t pids[LEASE_RACERS];
		for (int k = 0; k < LEASE_RACERS; k++) {
			pids[k] = fork();
			assert_true(pids[k] >= 0);
			if (pids[k] == 0) {
				close(go[1]);
				close(out[0]);
				char err[COHORT_ERR_LEN], name[16], holder[16];
				struct store *st;
				if (store_open(f->target, false, &st, err))
					_exit(1);
				char c;
				ssize_t n = read(go[0], &c, 1); /* EOF: everyone goes */
				(void)n;
				snprintf(name, sizeof(name), "race:%d", round);
				snprintf(holder, sizeof(holder), "racer %d", k);
				struct store_lease l;
				int rc = store_lease_take(st, name, holder, 60000, true, &l);
				int won = rc == COHORT_OK;
				if ((rc != COHORT_OK && rc != COHORT_ERR_DENIED) ||
				    strncmp(l.holder, "racer ", 6) != 0)
					_exit(2);
				store_free(st);
				if (write(out[1], &won, sizeof(won)) != (ssize_t)sizeof(won))
					_exit(3);
				_exit(0);
			}
		}
		close(go[0]);
		close(out[1]);
		sleep_ms(300); /* let them connect and wait */
		close(go[1]);
		int winners = 0;
		for (int k = 0; k < LEASE_RACERS; k++) {
			int status, won;
			assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			assert_int_equal(read(out[0], &won, sizeof(won)), (ssize_t)sizeof(won));
			winners += won;
		}
		close(out[0]);
		assert_int_equal(winners, 1);
	}
	assert_int_equal(open_fixture(f), 0);
}

/* ---- the outbox ---- */

struct claimed {
	int n;
	int64_t ids[16];
	char bodies[16][32];
	char sources[16][32];
};

static int collect_claim(const struct store_answer *a, void *ud)
{
	struct claimed *c = ud;
	if (c->n < 16) {
		c->ids[c->n] = a->id;
		snprintf(c->bodies[c->n], sizeof(c->bodies[0]), "%s", a->body);
		snprintf(c->sources[c->n], sizeof(c->sources[0]), "%s",
			 a->source_id ? a->source_id : "(null)");
		assert_string_equal(a->platform, "matrix");
		assert_string_equal(a->address, "!room:x");
	}
	c->n++;
	return 0;
}

static int put(struct store *st, const char *source, const char *body, const char *holder,
	       int64_t lease_until, int64_t *id)
{
	struct store_answer a = {0, "matrix", source, "!room:x", body, 100};
	return store_outbox_put(st, &a, holder, lease_until, id);
}

static void an_answer_is_kept_with_its_change_or_lost_with_it(void **state)
{
	struct fixture *f = *state;
	int64_t id, n;
	/* Rolled back: neither the change nor its answer. */
	assert_int_equal(store_outbox_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "ev-1", 1000), COHORT_OK);
	assert_int_equal(put(f->st, "ev-1", "A1", "p1", 5000, &id), COHORT_OK);
	assert_int_equal(store_outbox_end(f->st, false), COHORT_OK);
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_outbox_answered(f->st, "ev-1"), COHORT_ERR_NOT_FOUND);
	/* Committed: both, a batch inside included, and one answer per source. */
	assert_int_equal(store_outbox_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "kafka", STATUS_DONE, "ev-1", 1000), COHORT_OK);
	assert_int_equal(store_batch_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "redis", STATUS_DONE, NULL, 1001), COHORT_OK);
	assert_int_equal(store_batch_end(f->st, true), COHORT_OK);
	assert_int_equal(store_batch_begin(f->st), COHORT_OK);
	assert_int_equal(set(f->st, "ana", "docker", STATUS_DONE, NULL, 1002), COHORT_OK);
	assert_int_equal(store_batch_end(f->st, false), COHORT_OK); /* this one alone undone */
	assert_int_equal(put(f->st, "ev-1", "A1", "p1", 5000, &id), COHORT_OK);
	assert_true(id > 0);
	assert_int_equal(store_outbox_end(f->st, true), COHORT_OK);
	assert_int_equal(store_event_count(f->st, &n), COHORT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(status_of(f->st, "ana", "docker"), STATUS_NONE);
	assert_int_equal(store_outbox_answered(f->st, "ev-1"), COHORT_ERR_PENDING);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 1);
	int64_t id2;
	assert_int_equal(put(f->st, "ev-1", "again", "p1", 5000, &id2), COHORT_ERR_DUPLICATE);
	/* Answers without a source are never duplicates. */
	assert_int_equal(put(f->st, NULL, "B", "p1", 5000, &id2), COHORT_OK);
	assert_int_equal(put(f->st, NULL, "C", "p1", 5000, &id2), COHORT_OK);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 3);
	/* Done: no longer owed, and still answered. */
	assert_int_equal(store_outbox_done(f->st, &(struct store_answer_done){id, 2000, true}, 1),
			 COHORT_OK);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(store_outbox_answered(f->st, "ev-1"), COHORT_OK);
	/* Single changes work as before afterwards. */
	assert_int_equal(set(f->st, "bob", "kafka", STATUS_DONE, "ev-2", 1005), COHORT_OK);
}

static void an_answer_is_claimed_only_when_its_lease_ran_out(void **state)
{
	struct fixture *f = *state;
	int64_t a, b, c, n;
	assert_int_equal(put(f->st, "s-a", "A", "p1", 1000, &a), COHORT_OK);
	assert_int_equal(put(f->st, "s-b", "B", "p1", 1000, &b), COHORT_OK);
	assert_int_equal(put(f->st, NULL, "C", "p1", 3000, &c), COHORT_OK);
	struct claimed got = {0};
	/* Held by p1 until 1000: nobody else gets them before. */
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p2", 999, 2000, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 0);
	/* Another platform's claim never sees them. */
	assert_int_equal(store_outbox_claim(f->st, "discord", "p2", 5000, 6000, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 0);
	/* At 1000 p2 gets the two that ran out, in order, bodies and sources as put. */
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p2", 1000, 2000, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 2);
	assert_true((got.ids[0] == a && got.ids[1] == b) || (got.ids[0] == b && got.ids[1] == a));
	assert_string_equal(got.ids[0] == a ? got.bodies[0] : got.bodies[1], "A");
	assert_string_equal(got.ids[0] == a ? got.sources[0] : got.sources[1], "s-a");
	/* Now p2 holds them: p3 gets nothing until 2000. */
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p3", 1999, 4000, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 0);
	/* p2 renews; C is p1's until 3000: nothing for p3 at 2500. */
	assert_int_equal(store_outbox_renew(f->st, "p2", 9000), COHORT_OK);
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p3", 2500, 4000, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 0);
	/* p2 delivers A; at 9000 p3 finds B and C; a limit of 1 takes one at a time. */
	assert_int_equal(store_outbox_done(f->st, &(struct store_answer_done){a, 3000, true}, 1),
			 COHORT_OK);
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p3", 9000, 12000, 1, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 1);
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p3", 9000, 12000, 1, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 2);
	assert_true(got.ids[0] != a && got.ids[1] != a && got.ids[0] != got.ids[1]);
	/* Released, C is anybody's at once, even before its lease would end. */
	assert_int_equal(store_outbox_renew(f->st, "p3", 20000), COHORT_OK);
	assert_int_equal(store_outbox_release(f->st, c), COHORT_OK);
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p5", 9100, 9200, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 1);
	assert_int_equal(got.ids[0], c);
	/* A dropped answer is done too: never claimed again. */
	/* Marked together, in one transaction; marking one twice changes nothing. */
	struct store_answer_done marks[] = {{b, 9500, false}, {c, 9500, true}, {c, 9600, false}};
	assert_int_equal(store_outbox_done(f->st, marks, 3), COHORT_OK);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_outbox_claim(f->st, "matrix", "p4", INT64_MAX, 0, 10, collect_claim,
					    &got),
			 COHORT_OK);
	assert_int_equal(got.n, 0);
	assert_false(store_shared(f->st) != (strncmp(f->target, "postgres", 8) == 0));
}

#define CLAIMERS 4
#define OWED 200

/* A child: claims in small steps until nothing is left; writes the ids it got to out. */
static void claim_race(const char *target, int k, int go, int out)
{
	char err[COHORT_ERR_LEN], holder[16];
	struct store *st;
	char b;
	if (store_open(target, false, &st, err))
		_exit(2);
	snprintf(holder, sizeof(holder), "p%d", k);
	if (read(go, &b, 1) < 0)
		_exit(3);
	struct claimed got;
	int64_t msg[OWED + 1]; /* [count, ids...]: one write, under PIPE_BUF, so never interleaved */
	int n = 0;
	do {
		memset(&got, 0, sizeof(got));
		if (store_outbox_claim(st, "matrix", holder, 5000, 60000, 3, collect_claim, &got))
			_exit(4);
		for (int i = 0; i < got.n && n < OWED; i++)
			msg[1 + n++] = got.ids[i];
	} while (got.n);
	store_free(st);
	msg[0] = n;
	size_t len = (size_t)(n + 1) * sizeof(msg[0]);
	if (write(out, msg, len) != (ssize_t)len)
		_exit(5);
	_exit(0);
}

static void pg_processes_claiming_at_once_never_share_an_answer(void **state)
{
	struct fixture *f = *state;
	int64_t id;
	for (int i = 0; i < OWED; i++)
		assert_int_equal(put(f->st, NULL, "x", "dead", 1000, &id), COHORT_OK);
	int go[2], out[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pids[CLAIMERS];
	store_free(f->st);
	f->st = NULL;
	for (int k = 0; k < CLAIMERS; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			close(go[1]);
			close(out[0]);
			claim_race(f->target, k, go[0], out[1]);
		}
	}
	close(go[0]);
	close(out[1]);
	nanosleep(&(struct timespec){0, 200000000}, NULL);
	close(go[1]);
	static char seen[OWED * 4];
	int total = 0, busy = 0;
	for (int k = 0; k < CLAIMERS; k++) {
		int status;
		int64_t msg[OWED + 1];
		/* A message is contiguous in the pipe: its count, then exactly its ids. */
		assert_int_equal(read(out[0], msg, sizeof(msg[0])), (ssize_t)sizeof(msg[0]));
		int n = (int)msg[0];
		assert_true(n >= 0 && n <= OWED);
		assert_int_equal(read(out[0], msg + 1, (size_t)n * sizeof(msg[0])),
				 (ssize_t)((size_t)n * sizeof(msg[0])));
		int64_t *ids = msg + 1;
		for (int i = 0; i < n; i++) {
			assert_true(ids[i] > 0 && ids[i] < (int64_t)sizeof(seen));
			assert_int_equal(seen[ids[i]], 0); /* nobody claimed it before */
			seen[ids[i]] = 1;
		}
		total += n;
		busy += n > 0;
		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(out[0]);
	assert_int_equal(total, OWED); /* every one claimed, once */
	(void)busy;
	assert_int_equal(open_fixture(f), 0);
}

/* Ends the transaction holding a lock after 3 s (as a long transaction elsewhere would). */
static void *unlock_later(void *conn)
{
	sleep_ms(3000);
	PQclear(PQexec(conn, "COMMIT"));
	return NULL;
}

static int64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * With a statement timeout (the lease keeper's connection), a lease statement stuck behind
 * another session's lock fails within the timeout instead of waiting for the lock; the
 * connection works again afterwards. Without it, the take would wait the 3 s and succeed.
 */
static void pg_a_statement_stuck_behind_a_lock_times_out(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_set_statement_timeout(f->st, 300), COHORT_OK);
	PGconn *other = PQconnectdb(f->target);
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	PGresult *r = PQexec(other, "BEGIN; LOCK TABLE leases IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, unlock_later, other), 0);
	int64_t t0 = mono_now_ms();
	int rc = store_lease_take(f->st, "shard:0", "a", 30000, true, NULL);
	int64_t took = mono_now_ms() - t0;
	pthread_join(t, NULL);
	PQfinish(other);
	assert_int_equal(rc, COHORT_ERR_STORE);
	assert_true(took < 2500);
	assert_int_equal(store_lease_take(f->st, "shard:0", "a", 30000, true, NULL), COHORT_OK);
	/* SQLite has no such setting to make: asking is not an error. */
	struct store *lite;
	char err[COHORT_ERR_LEN];
	assert_int_equal(store_open(f->path, false, &lite, err), COHORT_OK);
	assert_int_equal(store_set_statement_timeout(lite, 300), COHORT_OK);
	store_free(lite);
}

static void pg_a_store_at_version_8_gets_the_outbox(void **state)
{
	struct fixture *f = *state;
	store_free(f->st);
	f->st = NULL;
	char sql[400];
	snprintf(sql, sizeof(sql),
		 "SET search_path = %s; DROP TABLE outbox; DROP TABLE rate_windows; "
		 "ALTER TABLE events DROP COLUMN actor_id, DROP COLUMN actor_name, "
		 "DROP COLUMN removal; DROP TABLE reminders; DROP TABLE reminders_sent; "
		 "ALTER TABLE group_settings DROP COLUMN digest_every; "
		 "DELETE FROM cohort_schema; INSERT INTO cohort_schema (version) VALUES (8)",
		 f->schema);
	assert_int_equal(pg_undo_15(f), 0);
	assert_int_equal(pg_exec(sql), 0);
	assert_int_equal(drop_link_tables(f->schema), 0);
	assert_int_equal(open_fixture(f), 0);
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	int64_t id, n;
	assert_int_equal(put(f->st, "s", "A", "p", 0, &id), COHORT_OK);
	assert_int_equal(store_outbox_owed(f->st, &n), COHORT_OK);
	assert_int_equal(n, 1);
}

int main(void)
{
	/* Each runs on every backend. */
	const struct CMUnitTest backend_tests[] = {
		cmocka_unit_test(progress_off_the_roadmap_is_kept_but_never_counted),
		cmocka_unit_test(each_group_counts_its_own_roadmap),
		cmocka_unit_test(a_switch_recounts_the_groups_topics),
		cmocka_unit_test(switching_back_applies_the_defaults_renames),
		cmocka_unit_test(a_groups_roadmap_matches_ignoring_case),
		cmocka_unit_test(topic_totals_name_every_stored_id),
		cmocka_unit_test(a_new_store_is_at_the_latest_schema),
		cmocka_unit_test(changes_are_recorded_once),
		cmocka_unit_test(undo_walks_back_and_restores_time_and_note),
		cmocka_unit_test(undo_with_a_replayed_source_is_applied_once),
		cmocka_unit_test(a_correction_is_the_admins_to_undo),
		cmocka_unit_test(ranking_breaks_ties_by_who_got_there_first),
		cmocka_unit_test(period_scores_can_be_rebuilt),
		cmocka_unit_test(rebuilt_period_scores_equal_the_live_ones),
		cmocka_unit_test(the_calendar_is_given_the_groups_zone),
		cmocka_unit_test(the_digest_log_records_once),
		cmocka_unit_test(hostile_text_is_stored_verbatim),
		cmocka_unit_test(members_are_found_by_name_or_id),
		cmocka_unit_test(settings_and_adapter_state),
		cmocka_unit_test(state_keys_are_listed_by_prefix_and_deleted),
		cmocka_unit_test(everything_survives_a_reopen),
		cmocka_unit_test(a_groups_page_token_is_kept_turned_off_and_replaced),
		cmocka_unit_test(recent_finishes_come_newest_first_with_their_notes),
		cmocka_unit_test(the_groups_activity_is_kept_by_quarter_hour_and_derived_again),
		cmocka_unit_test(a_batch_commits_together_and_a_failed_change_alone_is_undone),
		cmocka_unit_test(a_lease_is_held_until_it_lapses),
		cmocka_unit_test(a_released_lease_is_free_at_once),
		cmocka_unit_test(leases_lapsed_long_ago_are_pruned),
		cmocka_unit_test(old_link_codes_and_wrong_codes_are_pruned),
		cmocka_unit_test(a_slot_is_used_once_per_period),
		cmocka_unit_test(the_holder_names_the_process),
		cmocka_unit_test(a_gone_holders_lease_is_taken_over),
		cmocka_unit_test(a_shared_rate_gives_its_limit_per_second),
		cmocka_unit_test(racing_holders_get_a_lease_once),
		cmocka_unit_test(goals_are_kept_and_reached_once),
		cmocka_unit_test(goals_are_dumped_and_restored),
		cmocka_unit_test(an_answer_is_kept_with_its_change_or_lost_with_it),
		cmocka_unit_test(an_answer_is_claimed_only_when_its_lease_ran_out),
		cmocka_unit_test(reminders_are_kept_and_a_day_recorded_once),
	};
	/* Files, SQLite's schema history, its backup and checkpoints. */
	const struct CMUnitTest sqlite_tests[] = {
		cmocka_unit_test(upgrades_from_every_earlier_version),
		cmocka_unit_test(an_upgrade_from_v1_derives_the_new_tables),
		cmocka_unit_test(a_newer_schema_is_refused),
		cmocka_unit_test(a_failed_migration_changes_nothing),
		cmocka_unit_test(a_backup_is_a_complete_store),
		cmocka_unit_test(processes_starting_together_on_a_new_store_all_succeed),
		cmocka_unit_test(processes_starting_together_on_an_old_store_all_succeed),
		cmocka_unit_test(opening_an_existing_store_creates_nothing),
		cmocka_unit_test(checkpoints_run_beside_the_commits_and_the_wal_stays_bounded),
		cmocka_unit_test(pages_written_after_a_full_copy_are_copied_when_the_writes_pause),
		cmocka_unit_test(an_unwritable_path_is_a_clear_error),
	};
	/* Several processes on one database. */
	const struct CMUnitTest postgres_tests[] = {
		cmocka_unit_test(pg_processes_starting_together_migrate_once),
		cmocka_unit_test(pg_an_older_schema_is_upgraded),
		cmocka_unit_test(pg_concurrent_dones_are_counted_exactly_once),
		cmocka_unit_test(a_postgres_backup_names_pg_dump),
		cmocka_unit_test(pg_an_earlier_database_is_upgraded),
		cmocka_unit_test(pg_processes_claiming_at_once_never_share_an_answer),
		cmocka_unit_test(pg_a_store_at_version_8_gets_the_outbox),
		cmocka_unit_test(pg_a_statement_stuck_behind_a_lock_times_out),
	};
	enum { NB = sizeof(backend_tests) / sizeof(backend_tests[0]) };
	enum { NS = sizeof(sqlite_tests) / sizeof(sqlite_tests[0]) };
	enum { NP = sizeof(postgres_tests) / sizeof(postgres_tests[0]) };
	struct CMUnitTest lite[NB + NS], pg[NB + NP];
	for (int i = 0; i < NB + NS; i++) {
		lite[i] = i < NB ? backend_tests[i] : sqlite_tests[i - NB];
		lite[i].setup_func = setup;
		lite[i].teardown_func = teardown;
	}
	for (int i = 0; i < NB + NP; i++) {
		pg[i] = i < NB ? backend_tests[i] : postgres_tests[i - NB];
		pg[i].setup_func = setup_pg;
		pg[i].teardown_func = teardown;
	}
	int failed = _cmocka_run_group_tests("store (sqlite)", lite, NB + NS, NULL, NULL);
	if (!pg_url()) {
		fprintf(stderr, "store (postgresql): skipped, COHORT_TEST_PG_URL is not set (make "
				"test starts a server: scripts/pg-test.sh)\n");
		return failed;
	}
	return failed + _cmocka_run_group_tests("store (postgresql)", pg, NB + NP, NULL, NULL);
}
