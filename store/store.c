/*
 * The store's backend-neutral logic: what a change means for the event log,
 * progress, the maintained scores and counts; batches, undo, dump and
 * restore. The SQL and the database are a backend's (backend.h).
 */
#include "store.h"

#include "backend.h"

#include "lib/err.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct store {
	const struct backend *be;
	struct bk *db;
	struct store_calendar cal; /* cal.periods NULL: period scores are not kept */
	bool batch;                /* inside store_batch_begin(): changes are savepoints */
	bool outer;                /* inside store_outbox_begin(): batches are savepoints too */
};

static const char *const status_names[] = {"none", "in_progress", "done", "skipped"};

const char *store_status_name(enum store_status s)
{
	return (size_t)s < ARRAY_SIZE(status_names) ? status_names[s] : "none";
}

static enum store_status status_parse(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(status_names); i++)
		if (strcmp((const char *)s, status_names[i]) == 0)
			return (enum store_status)i;
	return STATUS_NONE;
}

int store_schema_latest(void)
{
	return store_sqlite.schema_latest;
}

/* Logs the database's reason for a failure and returns COHORT_ERR_STORE. */
static int db_fail(struct store *st, const char *what)
{
	log_error("store", "%s: %s", what, st->be->errmsg(st->db));
	return COHORT_ERR_STORE;
}

static struct bk_stmt *prep(struct store *st, enum stmt_id id)
{
	return st->be->prep(st->db, id);
}

#define bind_text bk_bind_text

/* Runs a statement that returns no rows. */
static int run(struct store *st, struct bk_stmt *s, const char *what)
{
	int rc = bk_step(s);
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, what);
}

/* A change is a transaction of its own, or a savepoint inside a batch. */
static int begin(struct store *st)
{
	if (st->batch)
		return run(st, prep(st, S_SAVEPOINT), "savepoint");
	return run(st, prep(st, S_BEGIN), "begin transaction");
}

static int commit(struct store *st)
{
	if (st->batch)
		return run(st, prep(st, S_RELEASE), "release savepoint");
	double t0 = metrics_clock();
	int rc = run(st, prep(st, S_COMMIT), "commit");
	metrics_observe(METRIC_STORE_COMMIT, "", metrics_clock() - t0);
	return rc;
}

static void rollback(struct store *st)
{
	if (st->batch) {
		/* Undo this change only; the batch goes on. */
		run(st, prep(st, S_ROLLBACK_TO), "rollback to savepoint");
		run(st, prep(st, S_RELEASE), "release savepoint");
		return;
	}
	if (st->be->in_transaction(st->db))
		run(st, prep(st, S_ROLLBACK), "rollback");
}

int store_batch_begin(struct store *st)
{
	if (st->outer)
		return run(st, prep(st, S_SAVEPOINT), "begin a batch (savepoint)");
	int rc = run(st, prep(st, S_BEGIN), "begin a batch");
	if (!rc)
		st->batch = true;
	return rc;
}

int store_batch_end(struct store *st, bool keep)
{
	if (st->outer) {
		/* A batch inside a command's transaction: its own savepoint. */
		if (keep)
			return run(st, prep(st, S_RELEASE), "end a batch (release savepoint)");
		run(st, prep(st, S_ROLLBACK_TO), "roll back a batch (savepoint)");
		run(st, prep(st, S_RELEASE), "release savepoint");
		return COHORT_OK;
	}
	st->batch = false;
	if (keep)
		return run(st, prep(st, S_COMMIT), "commit a batch");
	if (st->be->in_transaction(st->db))
		run(st, prep(st, S_ROLLBACK), "roll back a batch");
	return COHORT_OK;
}

int store_event_count(struct store *st, int64_t *n)
{
	struct bk_stmt *s = prep(st, S_EVENT_COUNT);
	int rc = bk_step(s);
	*n = rc == BK_ROW ? bk_col_int(s, 0) : 0;
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "counting events");
}

int store_groups(struct store *st, int (*fn)(const char *group_id, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_GROUPS);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW)
		stop = fn(bk_col_text(s, 0), ud);
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "listing the groups");
}

int store_schema_version(struct store *st)
{
	return st->be->schema_version(st->db);
}

int store_set_statement_timeout(struct store *st, int ms)
{
	if (!st->be->statement_timeout || st->be->statement_timeout(st->db, ms) == COHORT_OK)
		return COHORT_OK;
	log_error("store", "setting a statement timeout: %s", st->be->errmsg(st->db));
	return COHORT_ERR_STORE;
}

/* postgresql:// and postgres:// name a PostgreSQL database; anything else is a SQLite file. */
static const struct backend *backend_for(const char *target)
{
	if (strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0)
		return &store_postgres;
	return &store_sqlite;
}

static int open_store(const char *target, bool sync_full, bool create, struct store **out,
		      char *err)
{
	*out = NULL;
	const struct backend *be = backend_for(target);
	struct bk *db;
	int rc = be->open(target, sync_full, create, &db, err);
	if (rc)
		return rc;
	struct store *st = xcalloc(1, sizeof(*st));
	st->be = be;
	st->db = db;
	*out = st;
	return COHORT_OK;
}

int store_open(const char *target, bool sync_full, struct store **out, char *err)
{
	return open_store(target, sync_full, true, out, err);
}

int store_open_existing(const char *target, bool sync_full, struct store **out, char *err)
{
	return open_store(target, sync_full, false, out, err);
}

void store_free(struct store *st)
{
	if (!st)
		return;
	st->be->close(st->db);
	free(st);
}

int store_create_at_version(const char *path, int version, char *err)
{
	return backend_for(path)->create_at_version(path, version, err);
}

int store_backup(struct store *st, const char *path, bool force, char *err)
{
	return st->be->backup(st->db, path, force, err);
}

void store_checkpoint_stats(struct store *st, struct store_checkpoints *out)
{
	memset(out, 0, sizeof(*out));
	if (st->be->checkpoint_stats)
		st->be->checkpoint_stats(st->db, out);
}

static const char *col_text(struct bk_stmt *s, int i);
static const char *col_or_null(struct bk_stmt *s, int i);

/* COHORT_ERR_DUPLICATE when source_id was applied before. */
static int check_source(struct store *st, const char *source_id)
{
	if (!source_id)
		return COHORT_OK;
	struct bk_stmt *s = prep(st, S_SOURCE_SEEN);
	bind_text(s, 1, source_id);
	int rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_ERR_DUPLICATE;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "checking the source event");
}

static int upsert_member(struct store *st, const char *group, const char *member, const char *name,
			 int64_t at)
{
	struct bk_stmt *s = prep(st, S_UPSERT_MEMBER);
	bind_text(s, 1, group);
	bind_text(s, 2, member);
	bind_text(s, 3, name && *name ? name : member);
	bk_bind_int(s, 4, at);
	return run(st, s, "recording the member");
}

static int get_status(struct store *st, const char *group, const char *member, const char *topic,
		      struct store_prior *out)
{
	struct bk_stmt *s = prep(st, S_GET_STATUS);
	bind_text(s, 1, group);
	bind_text(s, 2, member);
	bind_text(s, 3, topic);
	out->status = STATUS_NONE;
	out->updated_at = 0;
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		out->status = status_parse(bk_col_text(s, 0));
		out->updated_at = bk_col_int(s, 1);
	}
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading progress");
}

static int insert_event(struct store *st, const struct store_change *c, enum store_status old,
			int64_t reverts, const char *actor_id, const char *actor_name, bool removal)
{
	struct bk_stmt *s = prep(st, S_INSERT_EVENT);
	bind_text(s, 1, c->group_id);
	bind_text(s, 2, c->member_id);
	bind_text(s, 3, c->topic_id);
	bind_text(s, 4, store_status_name(old));
	bind_text(s, 5, store_status_name(c->status));
	bind_text(s, 6, c->note && *c->note ? c->note : NULL);
	bk_bind_int(s, 7, c->at);
	bind_text(s, 8, c->source_id);
	if (reverts)
		bk_bind_int(s, 9, reverts);
	bind_text(s, 10, actor_id);
	bind_text(s, 11, actor_id ? actor_name : NULL);
	if (removal)
		bk_bind_int(s, 12, 1);
	else
		bind_text(s, 12, NULL); /* bound all the same: PostgreSQL counts the parameters */
	int rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_DUPLICATE) /* another process applied this source event meanwhile */
		return COHORT_ERR_DUPLICATE;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "logging the change");
}

/* *zone: the group's own time zone as stored (a new string), NULL when it has none. */
static int group_zone(struct store *st, const char *group, char **zone)
{
	*zone = NULL;
	struct bk_stmt *s = prep(st, S_GROUP_ZONE);
	bind_text(s, 1, group);
	int rc = bk_step(s);
	if (rc == BK_ROW && bk_col_text(s, 0))
		*zone = xstrdup(bk_col_text(s, 0));
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading the time zone");
}

/*
 * Adds d points to the member's week and month of time t (when a calendar is
 * set); t is also when a gained point was earned.
 */
static int add_period_points(struct store *st, const char *group, const char *zone,
			     const char *member, int64_t t, int d)
{
	if (!st->cal.periods)
		return COHORT_OK;
	int64_t start[2], end[2];
	st->cal.periods(st->cal.ud, zone, t, start, end);
	for (int p = 0; p < 2; p++) {
		struct bk_stmt *s = prep(st, S_PERIOD_ADD);
		bind_text(s, 1, group);
		bind_text(s, 2, member);
		bk_bind_int(s, 3, p == 0 ? PERIOD_WEEK : PERIOD_MONTH);
		bk_bind_int(s, 4, start[p]);
		bk_bind_int(s, 5, d);
		bk_bind_int(s, 6, t);
		bk_bind_int(s, 7, end[p]);
		int rc = run(st, s, "updating period scores");
		if (rc)
			return rc;
	}
	return COHORT_OK;
}

/* *yes: whether topic_id counts toward the group's scores (is on the group's roadmap). */
static int on_roadmap(struct store *st, const char *group_id, const char *topic_id, bool *yes)
{
	struct bk_stmt *s = prep(st, S_ON_ROADMAP);
	bind_text(s, 1, topic_id);
	bind_text(s, 2, group_id);
	int rc = bk_step(s);
	*yes = rc != BK_ROW || (int)bk_col_int(s, 0);
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "checking the roadmap");
}

/*
 * Makes progress say c->status with this note and time, and keeps the scores
 * in step: the all-time count, and the week and month a done belongs to (by
 * the time it was done: old_at for the status being replaced).
 */
static int write_progress(struct store *st, const struct store_change *c,
			  const struct store_prior *old, int64_t updated_at, bool undo)
{
	struct bk_stmt *s;
	int rc;
	if (c->status == STATUS_NONE) {
		s = prep(st, S_DELETE_PROGRESS);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->member_id);
		bind_text(s, 3, c->topic_id);
	} else {
		s = prep(st, S_UPSERT_PROGRESS);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->member_id);
		bind_text(s, 3, c->topic_id);
		bind_text(s, 4, store_status_name(c->status));
		bind_text(s, 5, c->note && *c->note ? c->note : NULL);
		bk_bind_int(s, 6, updated_at);
	}
	rc = run(st, s, "updating progress");
	int done_d = (c->status == STATUS_DONE) - (old->status == STATUS_DONE);
	int doing_d = (c->status == STATUS_IN_PROGRESS) - (old->status == STATUS_IN_PROGRESS);
	if (!rc && (done_d || doing_d)) {
		s = prep(st, S_ADD_TOPIC_COUNTS);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->topic_id);
		bk_bind_int(s, 3, done_d);
		bk_bind_int(s, 4, doing_d);
		rc = run(st, s, "updating topic counts");
	}
	int skipped = (c->status == STATUS_SKIPPED) - (old->status == STATUS_SKIPPED);
	int delta = (c->status == STATUS_DONE) - (old->status == STATUS_DONE);
	/* A topic that is not on the roadmap keeps its record but earns nothing. */
	bool counts = true;
	if (!rc && (skipped || delta))
		rc = on_roadmap(st, c->group_id, c->topic_id, &counts);
	if (!counts)
		skipped = delta = 0;
	if (!rc && delta) {
		/* The group's activity, by the time of the change (an undo takes a finish back). */
		int finished = (!undo && c->status == STATUS_DONE) -
			       (undo && old->status == STATUS_DONE);
		s = prep(st, S_ACTIVITY_ADD);
		bind_text(s, 1, c->group_id);
		bk_bind_int(s, 2, c->at / STORE_BUCKET_MS);
		bk_bind_int(s, 3, finished);
		bk_bind_int(s, 4, delta);
		rc = run(st, s, "updating the group's activity");
	}
	if (!rc && skipped) {
		s = prep(st, S_ADD_SKIPPED);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->member_id);
		bk_bind_int(s, 3, skipped);
		rc = run(st, s, "updating the skipped count");
	}
	if (rc || !delta)
		return rc;
	s = prep(st, S_ADD_DONE);
	bind_text(s, 1, c->group_id);
	bind_text(s, 2, c->member_id);
	bk_bind_int(s, 3, delta);
	bk_bind_int(s, 4, updated_at);
	rc = run(st, s, "updating the score");
	/* The calendar is given the zone: it never reads the store inside this transaction. */
	char *zone = NULL;
	if (!rc && st->cal.periods)
		rc = group_zone(st, c->group_id, &zone);
	if (!rc && old->status == STATUS_DONE)
		rc = add_period_points(st, c->group_id, zone, c->member_id, old->updated_at, -1);
	if (!rc && c->status == STATUS_DONE)
		rc = add_period_points(st, c->group_id, zone, c->member_id, updated_at, 1);
	free(zone);
	return rc;
}

static int set_status(struct store *st, const struct store_change *c, const char *actor_id,
		      const char *actor_name, struct store_prior *prior)
{
	struct store_prior old;
	int rc = begin(st);
	if (rc)
		return rc;
	/*
	 * The member's row first: on a shared database it is the lock that makes
	 * one member's changes, from any process, take turns (postgres.c).
	 */
	rc = upsert_member(st, c->group_id, c->member_id, c->member_name, c->at);
	if (!rc)
		rc = check_source(st, c->source_id);
	if (!rc)
		rc = get_status(st, c->group_id, c->member_id, c->topic_id, &old);
	if (rc)
		goto fail;
	if (prior)
		*prior = old;
	if (old.status == c->status) {
		/* Keep the refreshed display name; there is nothing else to record. */
		rc = commit(st);
		if (rc)
			goto fail;
		return COHORT_ERR_UNCHANGED;
	}
	rc = insert_event(st, c, old.status, 0, actor_id, actor_name, false);
	if (!rc)
		rc = write_progress(st, c, &old, c->at, false);
	if (!rc)
		rc = commit(st);
	if (rc)
		goto fail;
	return COHORT_OK;
fail:
	rollback(st);
	return rc;
}

int store_set_status(struct store *st, const struct store_change *c, struct store_prior *prior)
{
	return set_status(st, c, NULL, NULL, prior);
}

int store_fix_status(struct store *st, const struct store_change *c, const char *actor_id,
		     const char *actor_name, struct store_prior *prior)
{
	return set_status(st, c, actor_id, actor_name, prior);
}

struct topic_list {
	char **ids;
	enum store_status *was;
	size_t n, cap, capw;
};

static int collect_topic(const struct store_row *row, void *ud)
{
	struct topic_list *l = ud;
	grow_array((void **)&l->ids, &l->cap, l->n + 1, sizeof(*l->ids));
	grow_array((void **)&l->was, &l->capw, l->n + 1, sizeof(*l->was));
	l->was[l->n] = row->status;
	l->ids[l->n++] = xstrdup(row->topic_id);
	return 0;
}

static int each_row(struct store *st, struct bk_stmt *s, store_row_fn fn, void *ud);

int store_fix_remove(struct store *st, const char *group_id, const char *member_id,
		     const char *actor_id, const char *actor_name, const char *source_id,
		     int64_t at, int *count)
{
	*count = 0;
	struct topic_list l = {0};
	int rc = begin(st);
	if (rc)
		return rc;
	rc = check_source(st, source_id);
	if (!rc) {
		struct bk_stmt *s = prep(st, S_MEMBER_PROGRESS);
		bind_text(s, 1, group_id);
		bind_text(s, 2, member_id);
		rc = each_row(st, s, collect_topic, &l);
	}
	if (!rc && !l.n)
		rc = COHORT_ERR_NOT_FOUND;
	for (size_t i = 0; !rc && i < l.n; i++) {
		char *src = !source_id ? NULL
			    : i == 0   ? xstrdup(source_id)
				       : xasprintf("%s#%zu", source_id, i + 1);
		struct store_change c = {group_id, member_id, NULL, l.ids[i], STATUS_NONE,
					 NULL,	   src,	      at};
		struct store_prior old;
		rc = get_status(st, group_id, member_id, l.ids[i], &old);
		if (!rc)
			rc = insert_event(st, &c, old.status, 0, actor_id, actor_name, true);
		if (!rc)
			rc = write_progress(st, &c, &old, at, false);
		free(src);
	}
	if (!rc)
		rc = commit(st);
	if (!rc)
		*count = (int)l.n;
	else
		rollback(st);
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	free(l.was);
	return rc;
}

/*
 * Reverts event event_id (member's change of topic from `restore` to `undone`):
 * the topic gets back `restore` with the note and time of the change that
 * made it. The revert is logged with source_id and, for a correction, its actor.
 */
static int revert_one(struct store *st, const char *group_id, const char *member_id,
		      int64_t event_id, const char *topic_id, enum store_status restore,
		      enum store_status undone, const char *source_id, int64_t at,
		      const char *actor_id, const char *actor_name)
{
	char *note = NULL;
	int64_t restored_at = at;
	int rc = COHORT_OK;
	if (restore != STATUS_NONE) {
		struct bk_stmt *s = prep(st, S_PRIOR_EVENT);
		bind_text(s, 1, group_id);
		bind_text(s, 2, member_id);
		bind_text(s, 3, topic_id);
		bk_bind_int(s, 4, event_id);
		bind_text(s, 5, store_status_name(restore));
		int step = bk_step(s);
		if (step == BK_ROW) {
			const char *n = bk_col_text(s, 0);
			note = n ? xstrdup((const char *)n) : NULL;
			restored_at = bk_col_int(s, 1);
		}
		bk_reset(s);
		if (step != BK_ROW && step != BK_DONE)
			return db_fail(st, "finding the earlier state");
	}
	struct store_change c = {group_id, member_id, NULL, topic_id, restore,
				 note,	   source_id, at};
	struct store_prior current;
	rc = get_status(st, group_id, member_id, topic_id, &current);
	if (!rc)
		rc = insert_event(st, &c, undone, event_id, actor_id, actor_name, false);
	if (!rc)
		rc = write_progress(st, &c, &current, restored_at, true);
	free(note);
	return rc;
}

/* Says whose records a reverted correction changed: out->fixed_member_id and _name. */
static int fixed_name(struct store *st, const char *group_id, const char *member_id,
		      struct store_undone *out)
{
	struct bk_stmt *s = prep(st, S_FIND_MEMBER);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int step = bk_step(s);
	out->fixed_member_id = xstrdup(member_id);
	out->fixed_member_name = xstrdup(step == BK_ROW ? col_text(s, 1) : member_id);
	bk_reset(s);
	return step == BK_ROW || step == BK_DONE ? COHORT_OK : db_fail(st, "finding the member");
}

struct fix_event {
	int64_t id;
	char *topic_id;
	enum store_status old, new;
};

/*
 * Reverts every live change of member's records that actor made at time at
 * (one correction), newest first; out says what.
 */
static int revert_fix(struct store *st, const char *group_id, const char *member_id,
		      int64_t fix_at, const char *actor_id, const char *actor_name,
		      const char *source_id, int64_t at, struct store_undone *out)
{
	struct fix_event *ev = NULL;
	size_t n = 0, cap = 0;
	struct bk_stmt *s = prep(st, S_FIX_EVENTS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	bind_text(s, 3, actor_id);
	bk_bind_int(s, 4, fix_at);
	int step;
	while ((step = bk_step(s)) == BK_ROW) {
		grow_array((void **)&ev, &cap, n + 1, sizeof(*ev));
		ev[n++] = (struct fix_event){bk_col_int(s, 0), xstrdup(col_text(s, 1)),
					     status_parse(bk_col_text(s, 2)),
					     status_parse(bk_col_text(s, 3))};
	}
	bk_reset(s);
	int rc = step == BK_DONE ? COHORT_OK : db_fail(st, "reading the correction");
	for (size_t i = 0; !rc && i < n; i++) {
		char *src = !source_id ? NULL
			    : i == 0   ? xstrdup(source_id)
				       : xasprintf("%s#%zu", source_id, i + 1);
		rc = revert_one(st, group_id, member_id, ev[i].id, ev[i].topic_id, ev[i].old,
				ev[i].new, src, at, actor_id, actor_name);
		free(src);
	}
	if (!rc && n) {
		out->topic_id = xstrdup(ev[n - 1].topic_id);
		out->to = ev[n - 1].old;
		out->from = ev[n - 1].new;
		out->count = (int)n;
		rc = fixed_name(st, group_id, member_id, out);
	} else if (!rc) {
		rc = COHORT_ERR_NOT_FOUND;
	}
	for (size_t i = 0; i < n; i++)
		free(ev[i].topic_id);
	free(ev);
	return rc;
}

int store_undo(struct store *st, const char *group_id, const char *member_id,
	       const char *member_name, const char *source_id, int64_t at, struct store_undone *out)
{
	memset(out, 0, sizeof(*out));
	int rc = begin(st);
	if (rc)
		return rc;
	rc = upsert_member(st, group_id, member_id, member_name, at); /* the member's lock first */
	if (!rc)
		rc = check_source(st, source_id);
	if (rc)
		goto fail;

	struct bk_stmt *s = prep(st, S_LAST_EVENT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int step = bk_step(s);
	int64_t event_id = 0;
	enum store_status restore = STATUS_NONE, undone = STATUS_NONE;
	char *topic = NULL;
	if (step == BK_ROW) {
		event_id = bk_col_int(s, 0);
		topic = xstrdup((const char *)bk_col_text(s, 1));
		restore = status_parse(bk_col_text(s, 2));
		undone = status_parse(bk_col_text(s, 3));
	}
	bk_reset(s);
	if (step != BK_ROW && step != BK_DONE) {
		rc = db_fail(st, "finding the last change");
		goto fail;
	}
	/* The member's latest correction of someone else, if newer than their own change. */
	s = prep(st, S_LAST_FIX);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	step = bk_step(s);
	int64_t fix_id = 0, fix_at = 0;
	char *fixed = NULL, *fix_topic = NULL;
	bool removal = false;
	enum store_status fix_old = STATUS_NONE, fix_new = STATUS_NONE;
	if (step == BK_ROW) {
		fix_id = bk_col_int(s, 0);
		fixed = xstrdup(col_text(s, 1));
		fix_at = bk_col_int(s, 2);
		removal = bk_col_int(s, 3) != 0;
		fix_topic = xstrdup(col_text(s, 4));
		fix_old = status_parse(bk_col_text(s, 5));
		fix_new = status_parse(bk_col_text(s, 6));
	}
	bk_reset(s);
	if (step != BK_ROW && step != BK_DONE) {
		free(topic);
		free(fixed);
		free(fix_topic);
		rc = db_fail(st, "finding the last correction");
		goto fail;
	}
	if (fix_id > event_id && removal) {
		rc = revert_fix(st, group_id, fixed, fix_at, member_id, member_name, source_id, at,
				out);
	} else if (fix_id > event_id) {
		out->topic_id = fix_topic;
		fix_topic = NULL;
		out->to = fix_old;
		out->from = fix_new;
		out->count = 1;
		rc = revert_one(st, group_id, fixed, fix_id, out->topic_id, fix_old, fix_new,
				source_id, at, member_id, member_name);
		if (!rc)
			rc = fixed_name(st, group_id, fixed, out);
	} else if (event_id) {
		out->topic_id = topic;
		topic = NULL;
		out->to = restore;
		out->from = undone;
		out->count = 1;
		rc = revert_one(st, group_id, member_id, event_id, out->topic_id, restore, undone,
				source_id, at, NULL, NULL);
	} else {
		rc = COHORT_ERR_NOT_FOUND;
	}
	free(topic);
	free(fixed);
	free(fix_topic);
	if (!rc)
		rc = commit(st);
	if (rc)
		goto fail;
	return COHORT_OK;
fail:
	rollback(st);
	free(out->topic_id);
	free(out->fixed_member_id);
	free(out->fixed_member_name);
	memset(out, 0, sizeof(*out));
	return rc;
}

static const char *col_text(struct bk_stmt *s, int i)
{
	const char *t = bk_col_text(s, i);
	return t ? (const char *)t : "";
}

/* Steps a statement yielding store_row columns, calling fn for each row. */
static int each_row(struct store *st, struct bk_stmt *s, store_row_fn fn, void *ud)
{
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_row row = {
			col_text(s, 0),
			col_text(s, 1),
			col_text(s, 2),
			col_text(s, 3),
			status_parse(bk_col_text(s, 4)),
			col_text(s, 5),
			bk_col_int(s, 6),
		};
		stop = fn(&row, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading progress");
}

int store_member_progress(struct store *st, const char *group_id, const char *member_id,
			  store_row_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_MEMBER_PROGRESS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	return each_row(st, s, fn, ud);
}

int store_topic_progress(struct store *st, const char *group_id, const char *topic_id,
			 enum store_status status, int limit, store_row_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_TOPIC_PROGRESS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, topic_id);
	bind_text(s, 3, store_status_name(status));
	bk_bind_int(s, 4, limit);
	return each_row(st, s, fn, ud);
}

int store_export(struct store *st, const char *group_id, store_row_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_EXPORT);
	bind_text(s, 1, group_id);
	return each_row(st, s, fn, ud);
}

static int each_count(struct store *st, struct bk_stmt *s, store_count_fn fn, void *ud)
{
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_count c = {col_text(s, 0), (int)bk_col_int(s, 1),
					(int)bk_col_int(s, 2)};
		stop = fn(&c, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "counting topics");
}

int store_topic_counts(struct store *st, const char *group_id, store_count_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_TOPIC_COUNTS);
	bind_text(s, 1, group_id);
	return each_count(st, s, fn, ud);
}

int store_topic_count(struct store *st, const char *group_id, const char *topic_id,
		      struct store_count *out)
{
	struct bk_stmt *s = prep(st, S_TOPIC_COUNT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, topic_id);
	int rc = bk_step(s);
	out->topic_id = topic_id;
	out->done = rc == BK_ROW ? (int)bk_col_int(s, 1) : 0;
	out->in_progress = rc == BK_ROW ? (int)bk_col_int(s, 2) : 0;
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "counting a topic");
}

int store_group_totals(struct store *st, const char *group_id, int *members, int *finished)
{
	struct bk_stmt *s = prep(st, S_GROUP_TOTALS);
	bind_text(s, 1, group_id);
	int rc = bk_step(s);
	*members = rc == BK_ROW ? (int)bk_col_int(s, 0) : 0;
	*finished = rc == BK_ROW ? (int)bk_col_int(s, 1) : 0;
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "summing the group");
}

int store_ranking(struct store *st, const char *group_id, enum store_period period, int64_t start,
		  int limit, const char *member_id, store_rank_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, period == PERIOD_ALL ? S_RANK_ALL : S_RANK_PERIOD);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, limit);
	bind_text(s, 3, member_id);
	if (period != PERIOD_ALL) {
		bk_bind_int(s, 4, period);
		bk_bind_int(s, 5, start);
	}
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_rank r = {col_text(s, 0), col_text(s, 1), (int)bk_col_int(s, 2),
				       (int)bk_col_int(s, 4), bk_col_int(s, 3)};
		stop = fn(&r, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "ranking members");
}

/* Takes the lock for rederiving scores, held to the end of the transaction. */
static int lock_derived(struct store *st)
{
	struct bk_stmt *s = prep(st, S_LOCK_DERIVED);
	int rc = bk_step(s);
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK
					     : db_fail(st, "waiting to rederive the scores");
}

/* One member's points in one week and month, not yet written (rebuild_periods). */
struct period_run {
	char *group, *member, *zone;
	int64_t start[2], end[2], last; /* last: the latest done in the run */
	int points[2];
};

/* Writes a run's points that are pending (points[p] > 0) and clears them. */
static int flush_period_run(struct store *st, struct period_run *r, int only)
{
	for (int p = 0; p < 2; p++) {
		if (!r->points[p] || (only >= 0 && p != only))
			continue;
		struct bk_stmt *s = prep(st, S_PERIOD_ADD);
		bind_text(s, 1, r->group);
		bind_text(s, 2, r->member);
		bk_bind_int(s, 3, p == 0 ? PERIOD_WEEK : PERIOD_MONTH);
		bk_bind_int(s, 4, r->start[p]);
		bk_bind_int(s, 5, r->points[p]);
		bk_bind_int(s, 6, r->last);
		bk_bind_int(s, 7, r->end[p]);
		r->points[p] = 0;
		int rc = run(st, s, "updating period scores");
		if (rc)
			return rc;
	}
	return COHORT_OK;
}

/*
 * Clears and derives again the period scores of a group (NULL: all), inside
 * a transaction. The done records come sorted by (group, member, time), so a
 * member's dones in one week (or month) are adjacent: each such run is one
 * write of its count and its latest time, the same rows a replay of every
 * done one by one leaves (points add up; reached_at is the latest), in a
 * statement per member and period instead of two per record (on PostgreSQL
 * each is a round trip).
 */
static int rebuild_periods(struct store *st, const char *group_id)
{
	int rc = lock_derived(st);
	struct bk_stmt *s = prep(st, S_PERIOD_CLEAR);
	bind_text(s, 1, group_id);
	if (!rc)
		rc = run(st, s, "clearing period scores");
	struct bk_stmt *rows = prep(st, S_DONE_ROWS);
	bind_text(rows, 1, group_id);
	struct period_run r = {0};
	int step = BK_DONE;
	while (!rc && (step = bk_step(rows)) == BK_ROW) {
		const char *g = col_text(rows, 0), *m = col_text(rows, 1), *z = bk_col_text(rows, 3);
		int64_t at = bk_col_int(rows, 2), start[2], end[2];
		bool same = r.group && strcmp(r.group, g) == 0 && strcmp(r.member, m) == 0;
		if (!same) {
			rc = flush_period_run(st, &r, -1);
			free(r.group);
			free(r.member);
			free(r.zone);
			r.group = xstrdup(g);
			r.member = xstrdup(m);
			r.zone = z ? xstrdup(z) : NULL;
		}
		st->cal.periods(st->cal.ud, r.zone, at, start, end);
		for (int p = 0; !rc && p < 2; p++) {
			if (r.points[p] && r.start[p] != start[p])
				rc = flush_period_run(st, &r, p);
			r.start[p] = start[p];
			r.end[p] = end[p];
			r.points[p]++;
		}
		r.last = at;
	}
	bk_reset(rows);
	if (!rc && step != BK_DONE)
		rc = db_fail(st, "reading done topics");
	if (!rc)
		rc = flush_period_run(st, &r, -1);
	free(r.group);
	free(r.member);
	free(r.zone);
	return rc;
}

int store_rebuild_periods(struct store *st, const char *group_id)
{
	if (!st->cal.periods)
		return COHORT_OK;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = rebuild_periods(st, group_id);
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

/* Runs statement id with at most one text bind; *changes (may be NULL) receives its row count. */
static int exec_id(struct store *st, enum stmt_id id, const char *arg, const char *what,
		   int64_t *changes)
{
	struct bk_stmt *s = prep(st, id);
	if (arg)
		bind_text(s, 1, arg);
	int rc = bk_step(s);
	if (rc == BK_DONE && changes)
		*changes = bk_changes(s);
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, what);
}

/*
 * Moves records kept under rename->from to rename->to, in the groups that count
 * roadmap (only group_id's when not NULL); *moved counts the progress records.
 */
static int apply_rename(struct store *st, const struct store_rename *r, const char *roadmap,
			const char *group_id, long *moved)
{
	static const enum stmt_id moves[] = {S_RENAME_PROGRESS, S_RENAME_EVENTS};
	for (size_t i = 0; i < ARRAY_SIZE(moves); i++) {
		struct bk_stmt *s = prep(st, moves[i]);
		bind_text(s, 1, r->from);
		bind_text(s, 2, r->to);
		bind_text(s, 3, roadmap);
		bind_text(s, 4, group_id);
		int rc = bk_step(s);
		int64_t n = rc == BK_DONE ? bk_changes(s) : 0;
		bk_reset(s);
		if (rc != BK_DONE)
			return db_fail(st, "moving records to a renamed topic");
		if (i == 0)
			*moved += (long)n;
	}
	return COHORT_OK;
}

/* FNV-1a over one string and its end, into *h. */
static void fnv_add(uint64_t *h, const char *v)
{
	for (const char *c = v;; c++) {
		*h = (*h ^ (unsigned char)*c) * 1099511628211ULL;
		if (!*c)
			break;
	}
}

/* A fingerprint of every roadmap (names, ids, renames) and the default, to tell a change. */
static void roadmap_fingerprint(const struct store_roadmap *rms, size_t n, size_t dflt,
				char out[17])
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t r = 0; r < n; r++) {
		const struct store_roadmap *rm = &rms[r];
		/* One unnamed roadmap hashes as it did before names (store_set_roadmap()). */
		if (n > 1 || *rm->name)
			fnv_add(&h, rm->name);
		for (size_t i = 0; i < rm->n; i++)
			fnv_add(&h, rm->ids[i]);
		if (rm->n)
			h = (h ^ 0xff) * 1099511628211ULL; /* ids end here: renames are not ids */
		for (size_t i = 0; i < rm->nrenames; i++) {
			fnv_add(&h, rm->renames[i].from);
			fnv_add(&h, rm->renames[i].to);
		}
		if (n > 1 && r == dflt)
			h = (h ^ 0xfe) * 1099511628211ULL;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int store_set_roadmap(struct store *st, const char *const *ids, size_t n,
		      const struct store_rename *renames, size_t nrenames, bool force,
		      struct store_roadmap_result *out)
{
	struct store_roadmap rm = {"", ids, n, renames, nrenames};
	return store_set_roadmaps(st, &rm, 1, 0, force, out);
}

/* Runs statement id with binds text a, text b (may be NULL) and integer c. */
static int exec3(struct store *st, enum stmt_id id, const char *a, const char *b, int64_t c,
		 const char *what)
{
	struct bk_stmt *s = prep(st, id);
	bind_text(s, 1, a);
	bind_text(s, 2, b);
	bk_bind_int(s, 3, c);
	int rc = bk_step(s);
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, what);
}

/* Runs statement id with two text binds. */
static int exec2(struct store *st, enum stmt_id id, const char *a, const char *b, const char *what)
{
	struct bk_stmt *s = prep(st, id);
	bind_text(s, 1, a);
	bind_text(s, 2, b);
	int rc = bk_step(s);
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, what);
}

/* Everything derived from progress for a roadmap, derived again: of group_id, or all (NULL). */
static int rederive(struct store *st, const char *group_id)
{
	int rc = exec_id(st, S_RECOUNT_MEMBERS, group_id, "recounting scores", NULL);
	/* Renames moved the progress rows: the topic counts follow them. */
	if (!rc)
		rc = exec_id(st, group_id ? S_TOPIC_COUNTS_CLEAR_GROUP : S_TOPIC_COUNTS_CLEAR,
			     group_id, "recounting topics", NULL);
	if (!rc)
		rc = exec_id(st, group_id ? S_TOPIC_COUNTS_FILL_GROUP : S_TOPIC_COUNTS_FILL,
			     group_id, "recounting topics", NULL);
	if (!rc)
		rc = exec_id(st, S_ACTIVITY_CLEAR, group_id, "recounting the groups' activity", NULL);
	if (!rc)
		rc = exec_id(st, S_ACTIVITY_FILL, group_id, "recounting the groups' activity", NULL);
	if (!rc && st->cal.periods)
		rc = rebuild_periods(st, group_id);
	return rc;
}

int store_set_roadmaps(struct store *st, const struct store_roadmap *rms, size_t n, size_t dflt,
		       bool force, struct store_roadmap_result *out)
{
	memset(out, 0, sizeof(*out));
	char print[17], *stored = NULL;
	roadmap_fingerprint(rms, n, dflt, print);
	struct bk_stmt *q = prep(st, S_FINGERPRINT_GET);
	int step = bk_step(q);
	if (step == BK_ROW)
		stored = xstrdup(col_text(q, 0));
	bk_reset(q);
	if (step != BK_ROW && step != BK_DONE)
		return db_fail(st, "reading the roadmap fingerprint");
	bool same = stored && strcmp(stored, print) == 0;
	free(stored);
	if (same && !force)
		return COHORT_OK;
	int rc;
	rc = begin(st);
	if (rc)
		return rc;
	rc = lock_derived(st);
	/* The topic sets first: renames move the records of the groups counting each. */
	if (!rc)
		rc = exec_id(st, S_ROADMAP_CLEAR, NULL, "replacing the roadmap", NULL);
	if (!rc)
		rc = exec_id(st, S_ROADMAPS_CLEAR, NULL, "replacing the roadmap", NULL);
	for (size_t r = 0; !rc && r < n; r++) {
		struct bk_stmt *a = prep(st, S_ROADMAPS_ADD);
		bind_text(a, 1, rms[r].name);
		bk_bind_int(a, 2, r == dflt);
		rc = bk_step(a) == BK_DONE ? COHORT_OK : db_fail(st, "recording the roadmap");
		bk_reset(a);
		for (size_t i = 0; !rc && i < rms[r].n; i++)
			rc = exec2(st, S_ROADMAP_ADD, rms[r].name, rms[r].ids[i],
				   "recording the roadmap");
	}
	for (size_t r = 0; !rc && r < n; r++)
		for (size_t i = 0; !rc && i < rms[r].nrenames; i++)
			rc = apply_rename(st, &rms[r].renames[i], rms[r].name, NULL, &out->moved);
	if (!rc)
		rc = rederive(st, NULL);
	if (!rc)
		rc = exec_id(st, S_FINGERPRINT_SET, print, "recording the roadmap", NULL);
	if (!rc)
		rc = commit(st);
	if (rc) {
		rollback(st);
		out->moved = 0;
		return rc;
	}
	out->rederived = true;
	return COHORT_OK;
}

int store_group_roadmap(struct store *st, const char *group_id, char **name)
{
	*name = NULL;
	struct bk_stmt *s = prep(st, S_GROUP_ROADMAP_GET);
	bind_text(s, 1, group_id);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*name = xstrdup(col_text(s, 0));
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading the group's roadmap");
}

int store_set_group_roadmap(struct store *st, const char *group_id, const struct store_roadmap *rm,
			    bool dflt, int64_t at, long *moved)
{
	long n = 0;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = lock_derived(st);
	if (!rc && !dflt)
		rc = exec3(st, S_GROUP_ROADMAP_SET, group_id, rm->name, at, "recording the roadmap");
	else if (!rc)
		rc = exec_id(st, S_GROUP_ROADMAP_DELETE, group_id, "recording the roadmap", NULL);
	/* The default's renames too: records kept under its former ids while away move. */
	for (size_t i = 0; !rc && i < rm->nrenames; i++)
		rc = apply_rename(st, &rm->renames[i], rm->name, group_id, &n);
	if (!rc)
		rc = rederive(st, group_id);
	if (!rc)
		rc = commit(st);
	if (rc) {
		rollback(st);
		return rc;
	}
	if (moved)
		*moved = n;
	return COHORT_OK;
}

int store_set_calendar(struct store *st, const struct store_calendar *cal)
{
	st->cal = *cal;
	char *pending = NULL;
	int rc = store_state_get(st, "store.rebuild_periods", &pending);
	if (!rc && pending) {
		rc = store_rebuild_periods(st, NULL);
		if (!rc)
			rc = exec_id(st, S_STATE_DELETE, "store.rebuild_periods",
				     "clearing the rebuild mark", NULL);
		if (!rc)
			log_debug("store", "rebuilt week and month scores");
	}
	free(pending);
	return rc;
}
int store_done_times(struct store *st, const char *group_id, const char *member_id,
		     int (*fn)(int64_t at, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_DONE_TIMES);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW)
		stop = fn(bk_col_int(s, 0), ud);
	bk_reset(s);
	if (stop)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading done times");
}

int store_activity(struct store *st, const char *group_id, int64_t since, int64_t until,
		   store_activity_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_ACTIVITY);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, since);
	bk_bind_int(s, 3, until);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_activity a = {bk_col_int(s, 7),
					   col_text(s, 0),
					   col_text(s, 1),
					   bk_col_int(s, 6),
					   col_text(s, 2),
					   status_parse(bk_col_text(s, 3)),
					   status_parse(bk_col_text(s, 4)),
					   bk_col_int(s, 5),
					   col_or_null(s, 8)};
		stop = fn(&a, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading activity");
}

int store_find_member(struct store *st, const char *group_id, const char *who, char **member_id,
		      char **member_name)
{
	*member_id = *member_name = NULL;
	struct bk_stmt *s = prep(st, S_FIND_MEMBER);
	bind_text(s, 1, group_id);
	bind_text(s, 2, who);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		*member_id = xstrdup(col_text(s, 0));
		*member_name = xstrdup(col_text(s, 1));
	}
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "finding a member");
}

int store_corrected(struct store *st, const char *group_id, const char *member_id,
		    const char *topic_id,
		    int (*fn)(const char *member_id, const char *topic_id, const char *actor_name,
			      void *ud),
		    void *ud)
{
	struct bk_stmt *s = prep(st, S_CORRECTED);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	bind_text(s, 3, topic_id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW)
		stop = fn(col_text(s, 0), col_text(s, 1), col_text(s, 2), ud);
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading corrections");
}

int store_member_name_count(struct store *st, const char *group_id, const char *name, int *n)
{
	*n = 0;
	struct bk_stmt *s = prep(st, S_NAME_COUNT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, name);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*n = (int)bk_col_int(s, 0);
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "counting members by name");
}

static char *col_dup_or_null(struct bk_stmt *s, int i)
{
	const char *t = bk_col_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

int store_get_settings(struct store *st, const char *group_id, struct store_settings *out)
{
	memset(out, 0, sizeof(*out));
	struct bk_stmt *s = prep(st, S_GET_SETTINGS);
	bind_text(s, 1, group_id);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		out->stored = true;
		out->digest_channel = col_dup_or_null(s, 0);
		out->digest_time = col_dup_or_null(s, 1);
		out->timezone = col_dup_or_null(s, 2);
		out->digest_every = col_dup_or_null(s, 3);
	}
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading settings");
}

void store_settings_release(struct store_settings *s)
{
	free(s->digest_channel);
	free(s->digest_time);
	free(s->timezone);
	free(s->digest_every);
	memset(s, 0, sizeof(*s));
}

int store_set_digest_channel(struct store *st, const char *group_id, const char *channel)
{
	struct bk_stmt *s = prep(st, S_SET_CHANNEL);
	bind_text(s, 1, group_id);
	bind_text(s, 2, channel);
	return run(st, s, "saving the digest channel");
}

int store_set_digest_time(struct store *st, const char *group_id, const char *hhmm,
			  const char *timezone)
{
	struct bk_stmt *s = prep(st, S_SET_TIME);
	bind_text(s, 1, group_id);
	bind_text(s, 2, hhmm);
	bind_text(s, 3, timezone);
	return run(st, s, "saving the digest time");
}

int store_set_digest_every(struct store *st, const char *group_id, const char *every)
{
	struct bk_stmt *s = prep(st, S_SET_EVERY);
	bind_text(s, 1, group_id);
	bind_text(s, 2, every);
	return run(st, s, "saving how often the digest is posted");
}

int store_state_get(struct store *st, const char *key, char **value)
{
	*value = NULL;
	struct bk_stmt *s = prep(st, S_STATE_GET);
	bind_text(s, 1, key);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*value = xstrdup(col_text(s, 0));
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading state");
}

int store_state_set(struct store *st, const char *key, const char *value)
{
	struct bk_stmt *s = prep(st, S_STATE_SET);
	bind_text(s, 1, key);
	bind_text(s, 2, value);
	return run(st, s, "saving state");
}

int store_state_delete(struct store *st, const char *key)
{
	return exec_id(st, S_STATE_DELETE, key, "removing state", NULL);
}

int store_state_list(struct store *st, const char *prefix,
		     int (*fn)(const char *key, const char *value, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_STATE_LIST);
	bind_text(s, 1, prefix);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW)
		stop = fn(bk_col_text(s, 0), bk_col_text(s, 1), ud);
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "listing state");
}

int store_dashboard_get(struct store *st, const char *group_id, struct store_dashboard *out)
{
	memset(out, 0, sizeof(*out));
	struct bk_stmt *s = prep(st, S_DASHBOARD_GET);
	bind_text(s, 1, group_id);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		out->token = xstrdup(col_text(s, 0));
		out->enabled = bk_col_int(s, 1) != 0;
	}
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "reading the group's page");
}

void store_dashboard_release(struct store_dashboard *d)
{
	free(d->token);
	memset(d, 0, sizeof(*d));
}

int store_dashboard_set(struct store *st, const char *group_id, const char *token, bool enabled,
			int64_t at)
{
	struct bk_stmt *s = prep(st, S_DASHBOARD_SET);
	bind_text(s, 1, group_id);
	bind_text(s, 2, token);
	bk_bind_int(s, 3, enabled ? 1 : 0);
	bk_bind_int(s, 4, at);
	int rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_DONE)
		return COHORT_OK;
	if (rc == BK_DUPLICATE)
		return COHORT_ERR_DUPLICATE;
	return db_fail(st, "saving the group's page");
}

int store_dashboard_group(struct store *st, const char *token, char **group_id)
{
	*group_id = NULL;
	struct bk_stmt *s = prep(st, S_DASHBOARD_GROUP);
	bind_text(s, 1, token);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*group_id = xstrdup(col_text(s, 0));
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "finding a group's page");
}

int store_recent_done(struct store *st, const char *group_id, int limit, store_row_fn fn, void *ud)
{
	struct bk_stmt *s = prep(st, S_RECENT_DONE);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, limit);
	return each_row(st, s, fn, ud);
}

int store_group_activity(struct store *st, const char *group_id, int64_t since, int *before,
			 int (*fn)(const struct store_bucket *b, void *ud), void *ud)
{
	*before = 0;
	int64_t first = since / STORE_BUCKET_MS + (since % STORE_BUCKET_MS != 0);
	struct bk_stmt *s = prep(st, S_ACTIVITY_BEFORE);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, first);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*before = (int)bk_col_int(s, 0);
	bk_reset(s);
	if (rc != BK_ROW)
		return db_fail(st, "reading the group's activity");
	s = prep(st, S_ACTIVITY_READ);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, first);
	int stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_bucket b = {bk_col_int(s, 0) * STORE_BUCKET_MS, (int)bk_col_int(s, 1),
					 (int)bk_col_int(s, 2)};
		stop = fn(&b, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading the group's activity");
}

int store_default_digest_channel(struct store *st, const char *group_id, const char *channel)
{
	struct bk_stmt *s = prep(st, S_DEFAULT_CHANNEL);
	bind_text(s, 1, group_id);
	bind_text(s, 2, channel);
	return run(st, s, "saving the default digest channel");
}

int store_digest_groups(struct store *st, int (*fn)(const struct store_digest_group *g, void *ud),
			void *ud)
{
	struct bk_stmt *s = prep(st, S_DIGEST_GROUPS);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_digest_group g = {col_text(s, 0), col_text(s, 1),
					       (const char *)bk_col_text(s, 2),
					       (const char *)bk_col_text(s, 3),
					       (const char *)bk_col_text(s, 4)};
		stop = fn(&g, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "listing digest groups");
}

void store_digest_release(struct store_digest *d)
{
	free(d->local_date);
	free(d->idem_key);
	memset(d, 0, sizeof(*d));
}

static int read_digest(struct store *st, struct bk_stmt *s, struct store_digest *out)
{
	memset(out, 0, sizeof(*out));
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		out->local_date = xstrdup(col_text(s, 0));
		out->idem_key = xstrdup(col_text(s, 1));
		out->recorded_at = bk_col_int(s, 2);
		out->sent_at = bk_col_int(s, 3);
		out->group_percent = (int)bk_col_int(s, 4);
	}
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "reading the digest log");
}

int store_digest_get(struct store *st, const char *group_id, const char *local_date,
		     struct store_digest *out)
{
	struct bk_stmt *s = prep(st, S_DIGEST_GET);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	return read_digest(st, s, out);
}

int store_digest_previous(struct store *st, const char *group_id, const char *local_date,
			  struct store_digest *out)
{
	struct bk_stmt *s = prep(st, S_DIGEST_PREVIOUS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	return read_digest(st, s, out);
}

int store_digest_record(struct store *st, const char *group_id, const char *local_date,
			const char *idem_key, int64_t at, int group_percent,
			const struct store_rank_entry *ranks, size_t nranks)
{
	int rc = begin(st);
	if (rc)
		return rc;
	struct bk_stmt *s = prep(st, S_DIGEST_INSERT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	bind_text(s, 3, idem_key);
	bk_bind_int(s, 4, at);
	bk_bind_int(s, 5, group_percent);
	int step = bk_step(s);
	bk_reset(s);
	if (step == BK_DUPLICATE || step == BK_CONSTRAINT) {
		rollback(st);
		return COHORT_ERR_DUPLICATE;
	}
	if (step != BK_DONE)
		rc = db_fail(st, "recording the digest");
	for (size_t i = 0; !rc && i < nranks; i++) {
		s = prep(st, S_DIGEST_RANK_INSERT);
		bind_text(s, 1, group_id);
		bind_text(s, 2, local_date);
		bind_text(s, 3, ranks[i].member_id);
		bk_bind_int(s, 4, ranks[i].rank);
		bk_bind_int(s, 5, ranks[i].points);
		rc = run(st, s, "recording the digest ranking");
	}
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

int store_digest_mark_sent(struct store *st, const char *group_id, const char *local_date,
			   int64_t at)
{
	struct bk_stmt *s = prep(st, S_DIGEST_SENT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	bk_bind_int(s, 3, at);
	return run(st, s, "marking the digest sent");
}

int store_digest_ranks(struct store *st, const char *group_id, const char *local_date,
		       int (*fn)(const struct store_rank_entry *e, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_DIGEST_RANKS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_rank_entry e = {col_text(s, 0), (int)bk_col_int(s, 1),
					     (int)bk_col_int(s, 2)};
		stop = fn(&e, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading the digest ranking");
}

static int topic_totals(struct store *st, enum stmt_id id,
			int (*fn)(const struct store_topic_total *t, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_topic_total t = {col_text(s, 0), bk_col_int(s, 1), bk_col_int(s, 2),
					      id == S_GROUP_TOPIC_TOTALS ? col_text(s, 3) : NULL};
		stop = fn(&t, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "counting records by topic");
}

int store_topic_totals(struct store *st, int (*fn)(const struct store_topic_total *t, void *ud),
		       void *ud)
{
	return topic_totals(st, S_TOPIC_TOTALS, fn, ud);
}

int store_group_topic_totals(struct store *st,
			     int (*fn)(const struct store_topic_total *t, void *ud), void *ud)
{
	return topic_totals(st, S_GROUP_TOPIC_TOTALS, fn, ud);
}

/* ---- dump and restore ---- */

static const char *col_or_null(struct bk_stmt *s, int i)
{
	return (const char *)bk_col_text(s, i);
}

/* Steps an ad-hoc query, calling row() per row; a non-zero return stops and is returned. */
static int each(struct store *st, enum stmt_id id, const char *group_id,
		int (*row)(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud),
		const struct store_dump_fns *fns, void *ud)
{
	struct bk_stmt *s = prep(st, id);
	bind_text(s, 1, group_id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW)
		stop = row(s, fns, ud);
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "dumping the store");
}

static int settings_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_group_settings g = {col_text(s, 0), col_or_null(s, 1), col_or_null(s, 2),
					 col_or_null(s, 3), col_or_null(s, 4)};
	return fns->settings(&g, ud);
}

static int member_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_member m = {col_text(s, 0), col_text(s, 1), col_text(s, 2),
				 bk_col_int(s, 3)};
	return fns->member(&m, ud);
}

static int progress_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_row r = {col_text(s, 0),
			      col_text(s, 1),
			      col_text(s, 2),
			      col_text(s, 3),
			      status_parse(bk_col_text(s, 4)),
			      col_text(s, 5),
			      bk_col_int(s, 6)};
	return fns->progress(&r, ud);
}

static int event_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_event e = {bk_col_int(s, 0),
				col_text(s, 1),
				col_text(s, 2),
				col_text(s, 3),
				status_parse(bk_col_text(s, 4)),
				status_parse(bk_col_text(s, 5)),
				col_or_null(s, 6),
				bk_col_int(s, 7),
				col_or_null(s, 8),
				bk_col_int(s, 9),
				col_or_null(s, 10),
				col_or_null(s, 11),
				bk_col_int(s, 12) != 0};
	return fns->event(&e, ud);
}

static int digest_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_digest_row d = {col_text(s, 0),		 col_text(s, 1),
				     col_text(s, 2),		 bk_col_int(s, 3),
				     bk_col_int(s, 4), (int)bk_col_int(s, 5)};
	return fns->digest(&d, ud);
}

static int digest_rank_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_digest_rank_row r = {col_text(s, 0), col_text(s, 1), col_text(s, 2),
					  (int)bk_col_int(s, 3), (int)bk_col_int(s, 4)};
	return fns->digest_rank(&r, ud);
}

static void read_goal(struct bk_stmt *s, struct store_goal *g)
{
	*g = (struct store_goal){col_text(s, 0), col_text(s, 1), col_text(s, 2), col_text(s, 3),
				 col_text(s, 4), bk_col_int(s, 5), col_text(s, 6), col_text(s, 7),
				 0};
}

static int goal_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_goal g;
	read_goal(s, &g);
	return fns->goal(&g, ud);
}

static int goal_mark_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_goal_mark m = {col_text(s, 0), col_text(s, 1), col_text(s, 2), NULL,
				    bk_col_int(s, 3), NULL, NULL, NULL};
	return fns->goal_mark(&m, ud);
}

static int reminder_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_reminder r = {col_text(s, 0), col_text(s, 1), col_text(s, 2), bk_col_int(s, 3)};
	return fns->reminder(&r, ud);
}

static int link_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_link l = {col_text(s, 0), col_text(s, 1), col_text(s, 2), bk_col_int(s, 3)};
	return fns->link(&l, ud);
}

static int group_roadmap_row(struct bk_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_group_roadmap g = {col_text(s, 0), col_text(s, 1), bk_col_int(s, 2)};
	return fns->group_roadmap(&g, ud);
}

int store_dump(struct store *st, const char *group_id, const struct store_dump_fns *fns, void *ud)
{
	/* One read transaction: the tables agree with each other even while cohort runs. */
	int rc = exec_id(st, S_READ_BEGIN, NULL, "dumping the store", NULL);
	if (rc)
		return rc;
	rc = each(st, S_DUMP_SETTINGS, group_id, settings_row, fns, ud);
	if (!rc)
		rc = each(st, S_DUMP_MEMBERS, group_id, member_row, fns, ud);
	if (!rc)
		rc = each(st, S_DUMP_PROGRESS, group_id, progress_row, fns, ud);
	if (!rc)
		rc = each(st, S_DUMP_EVENTS, group_id, event_row, fns, ud);
	if (!rc)
		rc = each(st, S_DUMP_DIGESTS, group_id, digest_row, fns, ud);
	if (!rc)
		rc = each(st, S_DUMP_DIGEST_RANKS, group_id, digest_rank_row, fns, ud);
	if (!rc && fns->goal)
		rc = each(st, S_DUMP_GOALS, group_id, goal_row, fns, ud);
	if (!rc && fns->goal_mark)
		rc = each(st, S_DUMP_GOAL_MARKS, group_id, goal_mark_row, fns, ud);
	if (!rc && fns->reminder)
		rc = each(st, S_REMINDERS, group_id, reminder_row, fns, ud);
	if (!rc && fns->link)
		rc = each(st, S_DUMP_LINKS, group_id, link_row, fns, ud);
	if (!rc && fns->group_roadmap)
		rc = each(st, S_DUMP_GROUP_ROADMAPS, group_id, group_roadmap_row, fns, ud);
	exec_id(st, S_READ_END, NULL, "dumping the store", NULL);
	return rc;
}

int store_restore_begin(struct store *st)
{
	return store_batch_begin(st); /* changes made meanwhile (scores) are savepoints in it */
}

int store_restore_end(struct store *st, bool keep)
{
	st->batch = false;
	if (keep)
		return run(st, prep(st, S_COMMIT), "commit a restore");
	if (st->be->in_transaction(st->db))
		run(st, prep(st, S_ROLLBACK), "roll back a restore");
	return COHORT_OK;
}

/* Runs an ad-hoc insert whose binds fill() sets; a constraint is COHORT_ERR_DUPLICATE. */
static int insert_row(struct store *st, enum stmt_id id,
		      void (*fill)(struct bk_stmt *s, const void *v), const void *v, const char *what,
		      int64_t *row_id)
{
	struct bk_stmt *s = prep(st, id);
	fill(s, v);
	int rc = bk_step(s);
	if (rc == BK_ROW && row_id) /* the statement returns the new row's id */
		*row_id = bk_col_int(s, 0);
	if (rc == BK_ROW)
		rc = bk_step(s);
	if (rc != BK_DONE && rc != BK_DUPLICATE)
		rc = db_fail(st, what); /* before the reset: the reason is the statement's */
	bk_reset(s);
	if (rc == BK_DONE)
		return COHORT_OK;
	return rc == BK_DUPLICATE ? COHORT_ERR_DUPLICATE : COHORT_ERR_STORE;
}

static void fill_settings(struct bk_stmt *s, const void *v)
{
	const struct store_group_settings *g = v;
	bind_text(s, 1, g->group_id);
	bind_text(s, 2, g->digest_channel);
	bind_text(s, 3, g->digest_time);
	bind_text(s, 4, g->timezone);
	bind_text(s, 5, g->digest_every);
}

int store_restore_settings(struct store *st, const struct store_group_settings *g)
{
	return insert_row(st, S_RESTORE_SETTINGS, fill_settings, g, "restoring group settings", NULL);
}

static void fill_group_roadmap(struct bk_stmt *s, const void *v)
{
	const struct store_group_roadmap *g = v;
	bind_text(s, 1, g->group_id);
	bind_text(s, 2, g->roadmap);
	bk_bind_int(s, 3, g->changed_at);
}

int store_restore_group_roadmap(struct store *st, const struct store_group_roadmap *g)
{
	return insert_row(st, S_RESTORE_GROUP_ROADMAP, fill_group_roadmap, g,
			  "restoring a group's roadmap", NULL);
}

static void fill_member(struct bk_stmt *s, const void *v)
{
	const struct store_member *m = v;
	bind_text(s, 1, m->group_id);
	bind_text(s, 2, m->member_id);
	bind_text(s, 3, m->name);
	bk_bind_int(s, 4, m->first_seen);
}

int store_restore_member(struct store *st, const struct store_member *m)
{
	return insert_row(st, S_RESTORE_MEMBER, fill_member, m, "restoring a member", NULL);
}

static void fill_progress(struct bk_stmt *s, const void *v)
{
	const struct store_row *r = v;
	bind_text(s, 1, r->group_id);
	bind_text(s, 2, r->member_id);
	bind_text(s, 3, r->topic_id);
	bind_text(s, 4, store_status_name(r->status));
	bind_text(s, 5, r->note && *r->note ? r->note : NULL);
	bk_bind_int(s, 6, r->updated_at);
}

int store_restore_progress(struct store *st, const struct store_row *r)
{
	return insert_row(st, S_RESTORE_PROGRESS, fill_progress, r, "restoring progress", NULL);
}

static void fill_event(struct bk_stmt *s, const void *v)
{
	const struct store_event *e = v;
	bind_text(s, 1, e->group_id);
	bind_text(s, 2, e->member_id);
	bind_text(s, 3, e->topic_id);
	bind_text(s, 4, store_status_name(e->from));
	bind_text(s, 5, store_status_name(e->to));
	bind_text(s, 6, e->note && *e->note ? e->note : NULL);
	bk_bind_int(s, 7, e->at);
	bind_text(s, 8, e->source_id);
	if (e->reverts)
		bk_bind_int(s, 9, e->reverts);
	bind_text(s, 10, e->actor_id);
	bind_text(s, 11, e->actor_id ? e->actor_name : NULL);
	if (e->removal)
		bk_bind_int(s, 12, 1);
	else
		bind_text(s, 12, NULL);
}

int store_restore_event(struct store *st, const struct store_event *e, int64_t *id)
{
	int rc = insert_row(st, S_RESTORE_EVENT, fill_event, e, "restoring an event", id);
	if (rc)
		*id = 0;
	return rc;
}

static void fill_digest(struct bk_stmt *s, const void *v)
{
	const struct store_digest_row *d = v;
	bind_text(s, 1, d->group_id);
	bind_text(s, 2, d->local_date);
	bind_text(s, 3, d->idem_key);
	bk_bind_int(s, 4, d->recorded_at);
	if (d->sent_at)
		bk_bind_int(s, 5, d->sent_at);
	bk_bind_int(s, 6, d->group_percent);
}

int store_restore_digest(struct store *st, const struct store_digest_row *d)
{
	return insert_row(st, S_RESTORE_DIGEST, fill_digest, d, "restoring a digest record", NULL);
}

static void fill_digest_rank(struct bk_stmt *s, const void *v)
{
	const struct store_digest_rank_row *r = v;
	bind_text(s, 1, r->group_id);
	bind_text(s, 2, r->local_date);
	bind_text(s, 3, r->member_id);
	bk_bind_int(s, 4, r->rank);
	bk_bind_int(s, 5, r->points);
}

int store_restore_digest_rank(struct store *st, const struct store_digest_rank_row *r)
{
	return insert_row(st, S_RESTORE_DIGEST_RANK, fill_digest_rank, r, "restoring a digest ranking", NULL);
}

static char holder_id[STORE_HOLDER_LEN];
static pthread_once_t holder_once = PTHREAD_ONCE_INIT;

/* This host's name, spaces replaced (a holder id is split at spaces). */
static void host_name(char *out, size_t n)
{
	if (gethostname(out, n - 1) != 0 || !out[0])
		snprintf(out, n, "unknown-host");
	out[n - 1] = '\0';
	for (char *c = out; *c; c++)
		if (*c == ' ')
			*c = '_';
}

/* The pid namespace's inode ("pid:[4026531836]"), 0 when unknown. */
static unsigned long pid_namespace(void)
{
	char link[64];
	ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = '\0';
	const char *b = strchr(link, '[');
	return b ? strtoul(b + 1, NULL, 10) : 0;
}

/*
 * This boot's id (/proc/sys/kernel/random/boot_id, a UUID drawn by the kernel
 * at each boot) into out; "unknown" when it cannot be read. Host names and the
 * root pid namespace's inode repeat across machines; the boot id does not.
 */
static void boot_id(char *out, size_t n)
{
	snprintf(out, n, "unknown");
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!f)
		return;
	char line[64];
	if (fgets(line, sizeof(line), f)) {
		line[strcspn(line, " \t\r\n")] = '\0';
		if (line[0])
			snprintf(out, n, "%s", line);
	}
	fclose(f);
}

static void holder_init(void)
{
	char host[64] = "", boot[64];
	host_name(host, sizeof(host));
	boot_id(boot, sizeof(boot));
	uint32_t id = (uint32_t)(random_unit() * 4294967296.0);
	snprintf(holder_id, sizeof(holder_id), "%s pid %ld ns %lu boot %s id %08x", host,
		 (long)getpid(), pid_namespace(), boot, (unsigned)id);
}

bool store_lease_holder_gone(const char *holder)
{
	char host[64] = "", theirs[64], boot[64], their_boot[64];
	long pid;
	unsigned long ns;
	unsigned id;
	/* A holder without a boot id (or ours unknown) may run elsewhere: wait it out. */
	if (sscanf(holder, "%63s pid %ld ns %lu boot %63s id %x", theirs, &pid, &ns, their_boot,
		   &id) != 5 || pid <= 0)
		return false;
	host_name(host, sizeof(host));
	boot_id(boot, sizeof(boot));
	if (strcmp(boot, "unknown") == 0 || strcmp(boot, their_boot) != 0)
		return false;
	if (strcmp(host, theirs) != 0 || ns == 0 || ns != pid_namespace())
		return false;
	if (pid == (long)getpid())
		return strcmp(holder, store_lease_holder()) != 0; /* an earlier process with our pid */
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

const char *store_lease_holder(void)
{
	pthread_once(&holder_once, holder_init);
	return holder_id;
}

static void lease_row(struct bk_stmt *s, struct store_lease *out)
{
	if (!out)
		return;
	snprintf(out->holder, sizeof(out->holder), "%s", col_text(s, 0));
	out->ms_left = bk_col_int(s, 1);
}

int store_lease_get(struct store *st, const char *name, struct store_lease *out)
{
	struct bk_stmt *s = prep(st, S_LEASE_GET);
	bind_text(s, 1, name);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		lease_row(s, out);
	bk_reset(s);
	if (rc == BK_DONE)
		return COHORT_ERR_NOT_FOUND;
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "reading a lease");
}

int store_lease_take(struct store *st, const char *name, const char *holder, int64_t ttl_ms,
		     bool renew, struct store_lease *out)
{
	/* A refusal then a release before we read who had it: try again (a few times). */
	for (int attempt = 0; attempt < 3; attempt++) {
		struct bk_stmt *s = prep(st, S_LEASE_TAKE);
		bind_text(s, 1, name);
		bind_text(s, 2, holder);
		bk_bind_int(s, 3, ttl_ms);
		bk_bind_int(s, 4, renew ? 1 : 0);
		int rc = bk_step(s);
		if (rc == BK_ROW)
			lease_row(s, out);
		bk_reset(s);
		if (rc == BK_ROW)
			return COHORT_OK;
		if (rc != BK_DONE)
			return db_fail(st, "taking a lease");
		rc = store_lease_get(st, name, out);
		if (rc != COHORT_ERR_NOT_FOUND)
			return rc ? rc : COHORT_ERR_DENIED;
	}
	return COHORT_ERR_DENIED;
}

int store_lease_take_over(struct store *st, const char *name, const char *gone,
			  const char *holder, int64_t ttl_ms)
{
	struct bk_stmt *s = prep(st, S_LEASE_TAKE_OVER);
	bind_text(s, 1, name);
	bind_text(s, 2, gone);
	bind_text(s, 3, holder);
	bk_bind_int(s, 4, ttl_ms);
	int rc = bk_step(s);
	int64_t n = rc == BK_DONE ? bk_changes(s) : 0;
	bk_reset(s);
	if (rc != BK_DONE)
		return db_fail(st, "taking over a lease");
	return n == 1 ? COHORT_OK : COHORT_ERR_DENIED;
}

int store_lease_prune(struct store *st, int64_t lapsed_ms, int64_t *deleted)
{
	struct bk_stmt *s = prep(st, S_LEASE_PRUNE);
	bk_bind_int(s, 1, lapsed_ms);
	int rc = bk_step(s);
	int64_t n = rc == BK_DONE ? bk_changes(s) : 0;
	bk_reset(s);
	if (deleted)
		*deleted = n;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "deleting lapsed leases");
}

int store_rate_take(struct store *st, const char *name, int limit, int want, int64_t *ms_left)
{
	struct bk_stmt *s = prep(st, S_RATE_TAKE);
	bind_text(s, 1, name);
	bk_bind_int(s, 2, want);
	bk_bind_int(s, 3, limit);
	int rc = bk_step(s);
	*ms_left = rc == BK_ROW ? bk_col_int(s, 0) : 0;
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	if (rc != BK_DONE)
		return db_fail(st, "taking from a shared rate");
	s = prep(st, S_RATE_WAIT);
	rc = bk_step(s);
	*ms_left = rc == BK_ROW ? bk_col_int(s, 0) : 1000;
	bk_reset(s);
	return rc == BK_ROW ? COHORT_ERR_DENIED : db_fail(st, "reading the database's clock");
}

int store_lease_release(struct store *st, const char *name, const char *holder)
{
	struct bk_stmt *s = prep(st, S_LEASE_RELEASE);
	bind_text(s, 1, name);
	bind_text(s, 2, holder);
	return run(st, s, "releasing a lease");
}

static void fill_goal(struct bk_stmt *s, const void *v)
{
	const struct store_goal *g = v;
	bind_text(s, 1, g->group_id);
	bind_text(s, 2, g->member_id);
	bind_text(s, 3, g->target_kind);
	bind_text(s, 4, g->target_id);
	bind_text(s, 5, g->due_date);
	bk_bind_int(s, 6, g->set_at);
	bind_text(s, 7, g->set_by);
	bind_text(s, 8, g->set_by_name);
}

int store_restore_goal(struct store *st, const struct store_goal *g)
{
	return insert_row(st, S_RESTORE_GOAL, fill_goal, g, "restoring a goal", NULL);
}

static void fill_goal_mark(struct bk_stmt *s, const void *v)
{
	const struct store_goal_mark *m = v;
	bind_text(s, 1, m->group_id);
	bind_text(s, 2, m->goal_member);
	bind_text(s, 3, m->member_id);
	bk_bind_int(s, 4, m->reached_at);
}

int store_restore_goal_mark(struct store *st, const struct store_goal_mark *m)
{
	return insert_row(st, S_RESTORE_GOAL_MARK, fill_goal_mark, m, "restoring a reached goal",
			  NULL);
}

/* ---- goals ---- */

int store_goal_set(struct store *st, const struct store_goal *g)
{
	int rc = begin(st);
	if (rc)
		return rc;
	struct bk_stmt *s = prep(st, S_GOAL_UNMARK);
	bind_text(s, 1, g->group_id);
	bind_text(s, 2, g->member_id);
	rc = run(st, s, "clearing a goal's marks");
	if (!rc) {
		s = prep(st, S_GOAL_SET);
		fill_goal(s, g);
		rc = run(st, s, "saving a goal");
	}
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

int store_goal_clear(struct store *st, const char *group_id, const char *member_id)
{
	int rc = begin(st);
	if (rc)
		return rc;
	struct bk_stmt *s = prep(st, S_GOAL_UNMARK);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	rc = run(st, s, "clearing a goal's marks");
	int64_t gone = 0;
	if (!rc) {
		s = prep(st, S_GOAL_DELETE);
		bind_text(s, 1, group_id);
		bind_text(s, 2, member_id);
		rc = bk_step(s) == BK_DONE ? COHORT_OK : db_fail(st, "removing a goal");
		gone = bk_changes(s);
		bk_reset(s);
	}
	if (!rc && !gone)
		rc = COHORT_ERR_NOT_FOUND;
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

int store_goals(struct store *st, const char *group_id, const char *member_id,
		int (*fn)(const struct store_goal *g, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_GOALS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_goal g;
		read_goal(s, &g);
		g.reached_at = bk_col_int(s, 8);
		stop = fn(&g, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading goals");
}

int store_goal_mark(struct store *st, const char *group_id, const char *goal_member,
		    const char *member_id, int64_t set_at, int64_t at, bool *first)
{
	*first = false;
	struct bk_stmt *s = prep(st, S_GOAL_MARK);
	bind_text(s, 1, group_id);
	bind_text(s, 2, goal_member);
	bind_text(s, 3, member_id);
	bk_bind_int(s, 4, at);
	bk_bind_int(s, 5, set_at);
	int rc = bk_step(s) == BK_DONE ? COHORT_OK : db_fail(st, "marking a goal reached");
	*first = !rc && bk_changes(s) == 1;
	bk_reset(s);
	return rc;
}

int store_goal_marks(struct store *st, const char *group_id, int64_t since, int64_t until,
		     int (*fn)(const struct store_goal_mark *m, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_GOAL_MARKS);
	bind_text(s, 1, group_id);
	bk_bind_int(s, 2, since);
	bk_bind_int(s, 3, until);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_goal_mark m = {group_id,	      col_text(s, 0),	col_text(s, 1),
					    col_text(s, 2),   bk_col_int(s, 3), col_text(s, 4),
					    col_text(s, 5), col_text(s, 6)};
		stop = fn(&m, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading reached goals");
}

/* ---- the outbox ---- */

bool store_shared(struct store *st)
{
	return st->be->shared;
}

int store_outbox_begin(struct store *st)
{
	int rc = run(st, prep(st, S_BEGIN), "begin a command's transaction");
	if (!rc)
		st->batch = st->outer = true;
	return rc;
}

int store_outbox_end(struct store *st, bool keep)
{
	st->batch = st->outer = false;
	if (keep) {
		double t0 = metrics_clock();
		int rc = run(st, prep(st, S_COMMIT), "commit a command and its answer");
		metrics_observe(METRIC_STORE_COMMIT, "", metrics_clock() - t0);
		return rc;
	}
	if (st->be->in_transaction(st->db))
		run(st, prep(st, S_ROLLBACK), "roll back a command");
	return COHORT_OK;
}

int store_outbox_answered(struct store *st, const char *source_id)
{
	struct bk_stmt *s = prep(st, S_OUTBOX_ANSWERED);
	bind_text(s, 1, source_id);
	int rc = bk_step(s);
	bool done = rc == BK_ROW && bk_col_int(s, 0);
	bk_reset(s);
	if (rc == BK_ROW)
		return done ? COHORT_OK : COHORT_ERR_PENDING;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "looking up an answer");
}

int store_outbox_put(struct store *st, const struct store_answer *a, const char *holder,
		     int64_t lease_until, int64_t *id)
{
	*id = 0;
	struct bk_stmt *s = prep(st, S_OUTBOX_PUT);
	bind_text(s, 1, a->platform);
	bind_text(s, 2, a->source_id);
	bind_text(s, 3, a->address);
	bind_text(s, 4, a->body);
	bk_bind_int(s, 5, a->created_at);
	bind_text(s, 6, holder);
	bk_bind_int(s, 7, lease_until);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*id = bk_col_int(s, 0);
	bk_reset(s);
	if (rc == BK_DUPLICATE)
		return COHORT_ERR_DUPLICATE;
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "putting an answer in the outbox");
}

int store_outbox_claim(struct store *st, const char *platform, const char *holder, int64_t now,
		       int64_t lease_until, int limit,
		       int (*fn)(const struct store_answer *a, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_OUTBOX_CLAIM);
	bind_text(s, 1, platform);
	bind_text(s, 2, holder);
	bk_bind_int(s, 3, lease_until);
	bk_bind_int(s, 4, now);
	bk_bind_int(s, 5, limit);
	/*
	 * The rows are read to the end before fn runs: fn may use the store, and
	 * SQLite's RETURNING applies the update only as its rows are stepped.
	 */
	struct claimed {
		struct store_answer a;
		char *strs[4];
	} *rows = NULL;
	size_t n = 0;
	int rc;
	while ((rc = bk_step(s)) == BK_ROW) {
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		struct claimed *c = &rows[n++];
		const char *src = bk_col_text(s, 2);
		c->strs[0] = xstrdup(bk_col_text(s, 1));
		c->strs[1] = src ? xstrdup(src) : NULL;
		c->strs[2] = xstrdup(bk_col_text(s, 3));
		c->strs[3] = xstrdup(bk_col_text(s, 4));
		c->a = (struct store_answer){bk_col_int(s, 0), c->strs[0], c->strs[1],
					     c->strs[2], c->strs[3], bk_col_int(s, 5)};
	}
	bk_reset(s);
	int out = rc == BK_DONE ? COHORT_OK : db_fail(st, "claiming answers to deliver");
	for (size_t i = 0; i < n; i++) {
		if (!out)
			fn(&rows[i].a, ud);
		for (size_t k = 0; k < 4; k++)
			free(rows[i].strs[k]);
	}
	free(rows);
	return out;
}

int store_outbox_renew(struct store *st, const char *holder, int64_t lease_until)
{
	struct bk_stmt *s = prep(st, S_OUTBOX_RENEW);
	bind_text(s, 1, holder);
	bk_bind_int(s, 2, lease_until);
	return run(st, s, "renewing the outbox leases");
}

int store_outbox_done(struct store *st, const struct store_answer_done *done, size_t n)
{
	int rc = begin(st);
	for (size_t i = 0; !rc && i < n; i++) {
		struct bk_stmt *s = prep(st, S_OUTBOX_DONE);
		bk_bind_int(s, 1, done[i].id);
		bk_bind_int(s, 2, done[i].at);
		bind_text(s, 3, done[i].sent ? "sent" : "dropped");
		rc = run(st, s, "marking an answer done");
	}
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

int store_outbox_release(struct store *st, int64_t id)
{
	struct bk_stmt *s = prep(st, S_OUTBOX_RELEASE);
	bk_bind_int(s, 1, id);
	return run(st, s, "releasing an answer");
}

int store_outbox_owed(struct store *st, int64_t *n)
{
	struct bk_stmt *s = prep(st, S_OUTBOX_OWED);
	int rc = bk_step(s);
	*n = rc == BK_ROW ? bk_col_int(s, 0) : 0;
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "counting the answers owed");
}
int store_remind_set(struct store *st, const char *group_id, const char *member_id,
		     const char *at, int64_t set_at)
{
	struct bk_stmt *s = prep(st, S_REMIND_SET);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	bind_text(s, 3, at);
	bk_bind_int(s, 4, set_at);
	return run(st, s, "saving a reminder");
}

int store_remind_get(struct store *st, const char *group_id, const char *member_id, char **at)
{
	*at = NULL;
	struct bk_stmt *s = prep(st, S_REMIND_GET);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int rc = bk_step(s);
	if (rc == BK_ROW)
		*at = xstrdup(col_text(s, 0));
	bk_reset(s);
	return rc == BK_ROW || rc == BK_DONE ? COHORT_OK : db_fail(st, "reading a reminder");
}

int store_remind_clear(struct store *st, const char *group_id, const char *member_id)
{
	struct bk_stmt *s = prep(st, S_REMIND_DELETE);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int rc = bk_step(s) == BK_DONE ? COHORT_OK : db_fail(st, "removing a reminder");
	int64_t gone = rc ? 0 : bk_changes(s);
	bk_reset(s);
	return rc ? rc : gone ? COHORT_OK : COHORT_ERR_NOT_FOUND;
}

int store_reminders(struct store *st, const char *group_id,
		    int (*fn)(const struct store_reminder *r, void *ud), void *ud)
{
	struct bk_stmt *s = prep(st, S_REMINDERS);
	bind_text(s, 1, group_id);
	int rc, stop = 0;
	while (!stop && (rc = bk_step(s)) == BK_ROW) {
		struct store_reminder r = {col_text(s, 0), col_text(s, 1), col_text(s, 2),
					   bk_col_int(s, 3)};
		stop = fn(&r, ud);
	}
	bk_reset(s);
	if (stop)
		return stop;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "reading reminders");
}

int store_remind_record(struct store *st, const char *group_id, const char *member_id,
			const char *local_date, const char *idem_key, int64_t at, bool *first)
{
	*first = false;
	struct bk_stmt *s = prep(st, S_REMIND_RECORD);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	bind_text(s, 3, local_date);
	bind_text(s, 4, idem_key);
	bk_bind_int(s, 5, at);
	int rc = bk_step(s) == BK_DONE ? COHORT_OK : db_fail(st, "recording a reminder");
	*first = !rc && bk_changes(s) == 1;
	bk_reset(s);
	return rc;
}

/* ---- links (/link) ---- */

int store_link_code_put(struct store *st, const char *code_hash, const char *kind,
			const char *owner_id, int64_t at, int64_t expires_at)
{
	struct bk_stmt *s = prep(st, S_LINK_CODE_PUT);
	bind_text(s, 1, code_hash);
	bind_text(s, 2, kind);
	bind_text(s, 3, owner_id);
	bk_bind_int(s, 4, at);
	bk_bind_int(s, 5, expires_at);
	int rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_DUPLICATE)
		return COHORT_ERR_DUPLICATE;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "keeping a link code");
}

int store_link_code_get(struct store *st, const char *code_hash, struct store_link_code *out)
{
	memset(out, 0, sizeof(*out));
	struct bk_stmt *s = prep(st, S_LINK_CODE_GET);
	bind_text(s, 1, code_hash);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		snprintf(out->kind, sizeof(out->kind), "%s", col_text(s, 0));
		out->owner_id = xstrdup(col_text(s, 1));
		out->expires_at = bk_col_int(s, 2);
		out->used_at = bk_col_int(s, 3);
	}
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "reading a link code");
}

int store_link_code_spend(struct store *st, const char *code_hash, const char *kind, int64_t at)
{
	struct bk_stmt *s = prep(st, S_LINK_CODE_USE);
	bind_text(s, 1, code_hash);
	bk_bind_int(s, 2, at);
	bind_text(s, 3, kind);
	return run(st, s, "spending a link code");
}

int store_link_attempt_add(struct store *st, const char *member_id, int64_t at)
{
	struct bk_stmt *s = prep(st, S_LINK_ATTEMPT_ADD);
	bind_text(s, 1, member_id);
	bk_bind_int(s, 2, at);
	return run(st, s, "recording a wrong link code");
}

int store_link_attempts(struct store *st, const char *member_id, int64_t since, int *n,
			int64_t *first)
{
	*n = 0;
	*first = 0;
	struct bk_stmt *s = prep(st, S_LINK_ATTEMPTS);
	bind_text(s, 1, member_id);
	bk_bind_int(s, 2, since);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		*n = (int)bk_col_int(s, 0);
		*first = bk_col_int(s, 1);
	}
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "counting wrong link codes");
}

int store_link_prune(struct store *st, int64_t before, int64_t *deleted)
{
	static const enum stmt_id steps[] = {S_LINK_CODES_PRUNE, S_LINK_ATTEMPTS_PRUNE};
	int64_t n = 0;
	int rc = COHORT_OK;
	for (size_t i = 0; !rc && i < ARRAY_SIZE(steps); i++) {
		struct bk_stmt *s = prep(st, steps[i]);
		bk_bind_int(s, 1, before);
		int step = bk_step(s);
		if (step == BK_DONE)
			n += bk_changes(s);
		bk_reset(s);
		if (step != BK_DONE)
			rc = db_fail(st, "deleting old link codes");
	}
	if (deleted)
		*deleted = n;
	return rc;
}

/* The canonical id of id by a link statement (id itself when unlinked), a new string in *out. */
static int canonical_of(struct store *st, enum stmt_id stmt, const char *id, char **out,
			const char *what)
{
	struct bk_stmt *s = prep(st, stmt);
	bind_text(s, 1, id);
	int rc = bk_step(s);
	*out = xstrdup(rc == BK_ROW ? col_text(s, 0) : id);
	bk_reset(s);
	if (rc == BK_ROW || rc == BK_DONE)
		return COHORT_OK;
	free(*out);
	*out = NULL;
	return db_fail(st, what);
}

/* A link's row by a link statement: (alias, canonical[, linked_at]); NOT_FOUND when none. */
static int read_link(struct store *st, enum stmt_id stmt, const char *id, char **alias,
		     char **canonical, int64_t *linked_at, const char *what)
{
	*alias = *canonical = NULL;
	if (linked_at)
		*linked_at = 0;
	struct bk_stmt *s = prep(st, stmt);
	bind_text(s, 1, id);
	int rc = bk_step(s);
	if (rc == BK_ROW) {
		*alias = xstrdup(col_text(s, 0));
		*canonical = xstrdup(col_text(s, 1));
		if (linked_at)
			*linked_at = bk_col_int(s, 2);
	}
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_OK;
	return rc == BK_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, what);
}

int store_member_canonical(struct store *st, const char *member_id, char **canonical)
{
	return canonical_of(st, S_MEMBER_CANONICAL, member_id, canonical,
			    "resolving a linked member");
}

int store_member_link_get(struct store *st, const char *member_id, char **alias, char **canonical,
			  int64_t *linked_at)
{
	return read_link(st, S_MEMBER_LINK_GET, member_id, alias, canonical, linked_at,
			 "reading a member link");
}

/* Runs statement id with (group, from, to) bound; *changes (may be NULL) its row count. */
static int exec_merge(struct store *st, enum stmt_id id, const char *group, const char *from,
		      const char *to, int64_t *changes)
{
	struct bk_stmt *s = prep(st, id);
	bind_text(s, 1, group);
	bind_text(s, 2, from);
	bind_text(s, 3, to);
	int rc = bk_step(s);
	if (rc == BK_DONE && changes)
		*changes = bk_changes(s);
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "merging linked members' records");
}

/* The group's done records on the roadmap (for its activity's net change). */
static int group_done(struct store *st, const char *group, int64_t *n)
{
	struct bk_stmt *s = prep(st, S_GROUP_DONE);
	bind_text(s, 1, group);
	int rc = bk_step(s);
	*n = rc == BK_ROW ? bk_col_int(s, 0) : 0;
	bk_reset(s);
	return rc == BK_ROW ? COHORT_OK : db_fail(st, "counting a group's done topics");
}

/*
 * Inside a transaction: from's records in group become to's (the later
 * change wins a topic both have), the history and the member row with them;
 * then the group's derived scores and counts are derived again, and its
 * activity loses the finishes that no longer count (a topic both had done).
 */
static int merge_member(struct store *st, const char *group, const char *from, const char *to,
			int64_t at)
{
	static const enum stmt_id steps[] = {
		/* to's member row first: progress and events refer to it */
		S_MERGE_MEMBER_ADD, S_MERGE_FIRST_SEEN,
		/* the winner's latest change of a topic both have undoes to the loser's status */
		S_MERGE_UNDO_FROM, S_MERGE_DROP_OLDER, S_MERGE_UNDO_TO, S_MERGE_DROP_FROM,
		S_MERGE_PROGRESS,   S_MERGE_EVENTS,
		/* goals and reminders: where both have one, the later set wins */
		S_MERGE_GOAL_MARKS_OLDER, S_MERGE_GOALS_OLDER, S_MERGE_GOAL_MARKS_FROM,
		S_MERGE_GOALS_FROM, S_MERGE_GOALS_COPY, S_MERGE_GOAL_MARKS, S_MERGE_GOALS_DROP,
		S_MERGE_MARKS_DROP, S_MERGE_MARKS, S_MERGE_REMIND_OLDER, S_MERGE_REMIND_FROM,
		S_MERGE_REMIND, S_MERGE_REMIND_SENT_DROP, S_MERGE_REMIND_SENT,
		S_MERGE_PERIODS_DROP, S_MERGE_MEMBER_DROP,
	};
	int64_t before = 0, after = 0;
	int rc = group_done(st, group, &before);
	for (size_t i = 0; !rc && i < ARRAY_SIZE(steps); i++)
		rc = exec_merge(st, steps[i], group, from, to, NULL);
	if (!rc)
		rc = exec_id(st, S_RECOUNT_GROUP, group, "recounting scores", NULL);
	if (!rc)
		rc = exec_id(st, S_TOPIC_COUNTS_CLEAR_GROUP, group, "recounting topics", NULL);
	if (!rc)
		rc = exec_id(st, S_TOPIC_COUNTS_FILL_GROUP, group, "recounting topics", NULL);
	if (!rc && st->cal.periods)
		rc = rebuild_periods(st, group);
	if (!rc)
		rc = group_done(st, group, &after);
	if (!rc && after != before) {
		struct bk_stmt *s = prep(st, S_ACTIVITY_ADD);
		bind_text(s, 1, group);
		bk_bind_int(s, 2, at / STORE_BUCKET_MS);
		bk_bind_int(s, 3, 0);
		bk_bind_int(s, 4, after - before);
		rc = run(st, s, "updating the group's activity");
	}
	return rc;
}

/* The groups member has a row, goal or reminder in (a new array of new strings, *n of them). */
static int member_groups(struct store *st, const char *member, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct bk_stmt *s = prep(st, S_MEMBER_GROUPS);
	bind_text(s, 1, member);
	int rc;
	while ((rc = bk_step(s)) == BK_ROW) {
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = xstrdup(col_text(s, 0));
	}
	bk_reset(s);
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "listing a member's groups");
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int link_log(struct store *st, const char *kind, const char *action, const char *alias,
		    const char *canonical, int64_t at)
{
	struct bk_stmt *s = prep(st, S_LINK_LOG);
	bind_text(s, 1, kind);
	bind_text(s, 2, action);
	bind_text(s, 3, alias);
	bind_text(s, 4, canonical);
	bk_bind_int(s, 5, at);
	return run(st, s, "logging a link");
}

/*
 * Inside a link's transaction: takes the derived-data lock, uses the code
 * (COHORT_ERR_DUPLICATE when it was used meanwhile), refuses with
 * COHORT_ERR_DENIED when either side is linked already (linked: the check
 * statement, add: the insert), and records the link.
 */
static int use_code_and_link(struct store *st, const char *code_hash, const char *kind,
			     enum stmt_id linked, enum stmt_id add, const char *alias,
			     const char *canonical, int64_t at)
{
	/* The lock first (as a rederive): no change of these records runs beside the merge. */
	int rc = lock_derived(st);
	struct bk_stmt *s = prep(st, S_LINK_CODE_USE);
	bind_text(s, 1, code_hash);
	bk_bind_int(s, 2, at);
	bind_text(s, 3, kind);
	int step = rc ? BK_ERROR : bk_step(s);
	int64_t used = step == BK_DONE ? bk_changes(s) : 0;
	bk_reset(s);
	if (!rc && step != BK_DONE)
		rc = db_fail(st, "using a link code");
	if (!rc && used != 1)
		rc = COHORT_ERR_DUPLICATE;
	if (!rc) {
		s = prep(st, linked);
		bind_text(s, 1, alias);
		bind_text(s, 2, canonical);
		step = bk_step(s);
		bk_reset(s);
		if (step == BK_ROW)
			rc = COHORT_ERR_DENIED;
		else if (step != BK_DONE)
			rc = db_fail(st, "checking links");
	}
	if (!rc) {
		s = prep(st, add);
		bind_text(s, 1, alias);
		bind_text(s, 2, canonical);
		bk_bind_int(s, 3, at);
		step = bk_step(s);
		bk_reset(s);
		rc = step == BK_DONE	  ? COHORT_OK
		     : step == BK_DUPLICATE ? COHORT_ERR_DENIED
					    : db_fail(st, "linking");
	}
	return rc;
}

int store_member_link(struct store *st, const char *code_hash, const char *alias,
		      const char *canonical, const char *name, int64_t at, int *groups)
{
	if (groups)
		*groups = 0;
	char **list = NULL;
	size_t n = 0;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = use_code_and_link(st, code_hash, "member", S_MEMBER_LINKED, S_MEMBER_LINK_ADD, alias,
			       canonical, at);
	if (!rc)
		rc = member_groups(st, alias, &list, &n);
	for (size_t i = 0; !rc && i < n; i++)
		rc = merge_member(st, list[i], alias, canonical, at);
	if (!rc && name && *name) {
		struct bk_stmt *s = prep(st, S_MEMBER_RENAME_ALL);
		bind_text(s, 1, canonical);
		bind_text(s, 2, name);
		rc = run(st, s, "naming a linked member");
	}
	if (!rc)
		rc = link_log(st, "member", "link", alias, canonical, at);
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	else if (groups)
		*groups = (int)n;
	free_list(list, n);
	return rc;
}

/* "discord" of "discord:123" (at most cap - 1 bytes). */
static void platform_of(const char *id, char *out, size_t cap)
{
	size_t n = strcspn(id, ":");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, id, n);
	out[n] = '\0';
}

int store_member_unlink(struct store *st, const char *member_id, int64_t at, char **alias_out,
			char **canonical_out)
{
	char *alias = NULL, *canonical = NULL, **list = NULL;
	size_t n = 0;
	if (alias_out)
		*alias_out = NULL;
	if (canonical_out)
		*canonical_out = NULL;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = lock_derived(st);
	if (!rc)
		rc = store_member_link_get(st, member_id, &alias, &canonical, NULL);
	if (!rc) {
		struct bk_stmt *s = prep(st, S_MEMBER_LINK_DELETE);
		bind_text(s, 1, alias);
		rc = run(st, s, "unlinking members");
	}
	if (!rc)
		rc = member_groups(st, canonical, &list, &n);
	char ap[16], cp[16], gp[16];
	if (!rc) {
		platform_of(alias, ap, sizeof(ap));
		platform_of(canonical, cp, sizeof(cp));
	}
	for (size_t i = 0; !rc && i < n; i++) {
		/*
		 * A group of the alias's platform alone gets its records back to the
		 * alias; a group two platforms share (a group link) keeps them.
		 */
		platform_of(list[i], gp, sizeof(gp));
		if (strcmp(gp, ap) != 0 || strcmp(gp, cp) == 0)
			continue;
		struct bk_stmt *s = prep(st, S_GROUP_SHARED);
		bind_text(s, 1, list[i]);
		int step = bk_step(s);
		bk_reset(s);
		if (step == BK_DONE)
			rc = merge_member(st, list[i], canonical, alias, at);
		else if (step != BK_ROW)
			rc = db_fail(st, "checking group links");
	}
	if (!rc)
		rc = link_log(st, "member", "unlink", alias, canonical, at);
	if (!rc)
		rc = commit(st);
	if (rc) {
		rollback(st);
		free(alias);
		free(canonical);
	} else {
		if (alias_out)
			*alias_out = alias;
		else
			free(alias);
		if (canonical_out)
			*canonical_out = canonical;
		else
			free(canonical);
	}
	free_list(list, n);
	return rc;
}

/* ---- group links (/link group) ---- */

int store_group_canonical(struct store *st, const char *group_id, char **canonical)
{
	return canonical_of(st, S_GROUP_CANONICAL, group_id, canonical, "resolving a linked group");
}

int store_group_link_get(struct store *st, const char *group_id, char **alias, char **canonical)
{
	return read_link(st, S_GROUP_LINK_GET, group_id, alias, canonical, NULL,
			 "reading a group link");
}

/* Runs statement id with (from, to) bound. */
static int exec_pair(struct store *st, enum stmt_id id, const char *from, const char *to)
{
	struct bk_stmt *s = prep(st, id);
	bind_text(s, 1, from);
	bind_text(s, 2, to);
	return run(st, s, "merging linked groups' records");
}

/* Everything derived from a group's progress, derived again (inside a transaction). */
static int rederive_group(struct store *st, const char *group)
{
	int rc = exec_id(st, S_RECOUNT_GROUP, group, "recounting scores", NULL);
	if (!rc)
		rc = exec_id(st, S_TOPIC_COUNTS_CLEAR_GROUP, group, "recounting topics", NULL);
	if (!rc)
		rc = exec_id(st, S_TOPIC_COUNTS_FILL_GROUP, group, "recounting topics", NULL);
	if (!rc && st->cal.periods)
		rc = rebuild_periods(st, group);
	return rc;
}

int store_group_link(struct store *st, const char *code_hash, const char *alias,
		     const char *canonical, int64_t at)
{
	int rc = begin(st);
	if (rc)
		return rc;
	rc = use_code_and_link(st, code_hash, "group", S_GROUP_LINKED, S_GROUP_LINK_ADD, alias,
			       canonical, at);
	/*
	 * The alias group's records become the canonical group's: members first
	 * (the records refer to them), a topic both have keeps the later change
	 * (a member the two share is a linked identity), the history moves, the
	 * activity adds up, and what is derived is derived again.
	 */
	int64_t before_a = 0, before_c = 0, after = 0;
	if (!rc)
		rc = group_done(st, alias, &before_a);
	if (!rc)
		rc = group_done(st, canonical, &before_c);
	static const enum stmt_id steps[] = {
		S_GMERGE_MEMBERS,	 S_GMERGE_UNDO_FROM,	  S_GMERGE_DROP_OLDER,
		S_GMERGE_UNDO_TO,	 S_GMERGE_DROP_FROM,
		S_GMERGE_PROGRESS,	 S_GMERGE_EVENTS,	  S_GMERGE_ACTIVITY,
		S_GMERGE_CLEAR_ACTIVITY, S_GMERGE_CLEAR_PERIODS,  S_GMERGE_CLEAR_COUNTS,
		S_GMERGE_CLEAR_MEMBERS,
		/* goals and reminders: a member's (or the group's) in both, the later set wins */
		S_GMERGE_GOAL_MARKS_OLDER, S_GMERGE_GOALS_OLDER, S_GMERGE_GOAL_MARKS_FROM,
		S_GMERGE_GOALS_FROM,	   S_GCOPY_GOALS,	 S_GCOPY_GOAL_MARKS,
		S_GMERGE_CLEAR_GOAL_MARKS, S_GMERGE_CLEAR_GOALS,	 S_GMERGE_REMIND_OLDER,
		S_GMERGE_REMIND_FROM,	   S_GCOPY_REMIND,	 S_GCOPY_REMIND_SENT,
		S_GMERGE_CLEAR_REMIND,	   S_GMERGE_CLEAR_REMIND_SENT,
	};
	for (size_t i = 0; !rc && i < ARRAY_SIZE(steps); i++)
		rc = exec_pair(st, steps[i], alias, canonical);
	if (!rc)
		rc = rederive_group(st, canonical);
	if (!rc)
		rc = group_done(st, canonical, &after);
	if (!rc && after != before_a + before_c) {
		struct bk_stmt *s = prep(st, S_ACTIVITY_ADD);
		bind_text(s, 1, canonical);
		bk_bind_int(s, 2, at / STORE_BUCKET_MS);
		bk_bind_int(s, 3, 0);
		bk_bind_int(s, 4, after - before_a - before_c);
		rc = run(st, s, "updating the group's activity");
	}
	if (!rc)
		rc = link_log(st, "group", "link", alias, canonical, at);
	if (!rc)
		rc = commit(st);
	if (rc)
		rollback(st);
	return rc;
}

int store_group_unlink(struct store *st, const char *group_id, int64_t at, char **alias_out,
		       char **canonical_out)
{
	char *alias = NULL, *canonical = NULL;
	*alias_out = *canonical_out = NULL;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = lock_derived(st);
	if (!rc)
		rc = store_group_link_get(st, group_id, &alias, &canonical);
	if (!rc) {
		struct bk_stmt *s = prep(st, S_GROUP_LINK_DELETE);
		bind_text(s, 1, alias);
		rc = run(st, s, "unlinking groups");
	}
	/* The alias group gets a copy of the records as of now; the canonical keeps them. */
	static const enum stmt_id steps[] = {S_GMERGE_MEMBERS, S_GCOPY_PROGRESS,   S_GCOPY_EVENTS,
					     S_GCOPY_GOALS,    S_GCOPY_GOAL_MARKS, S_GCOPY_REMIND,
					     S_GCOPY_REMIND_SENT};
	for (size_t i = 0; !rc && i < ARRAY_SIZE(steps); i++)
		rc = exec_pair(st, steps[i], canonical, alias);
	if (!rc)
		rc = rederive_group(st, alias);
	if (!rc)
		rc = exec_id(st, S_ACTIVITY_FILL_GROUP, alias, "deriving the group's activity",
			     NULL);
	if (!rc)
		rc = link_log(st, "group", "unlink", alias, canonical, at);
	if (!rc)
		rc = commit(st);
	if (rc) {
		rollback(st);
		free(alias);
		free(canonical);
		return rc;
	}
	*alias_out = alias;
	*canonical_out = canonical;
	return COHORT_OK;
}

int store_restore_link(struct store *st, const struct store_link *l)
{
	bool group = strcmp(l->kind, "group") == 0;
	struct bk_stmt *s = prep(st, group ? S_GROUP_LINKED : S_MEMBER_LINKED);
	bind_text(s, 1, l->alias_id);
	bind_text(s, 2, l->canonical_id);
	int rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_ROW)
		return COHORT_ERR_DUPLICATE;
	if (rc != BK_DONE)
		return db_fail(st, "restoring a link");
	s = prep(st, group ? S_GROUP_LINK_ADD : S_MEMBER_LINK_ADD);
	bind_text(s, 1, l->alias_id);
	bind_text(s, 2, l->canonical_id);
	bk_bind_int(s, 3, l->linked_at);
	rc = bk_step(s);
	bk_reset(s);
	if (rc == BK_DUPLICATE)
		return COHORT_ERR_DUPLICATE;
	return rc == BK_DONE ? COHORT_OK : db_fail(st, "restoring a link");
}
