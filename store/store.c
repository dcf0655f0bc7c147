#include "store.h"

#include "bot/err.h"
#include "bot/log.h"
#include "bot/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Each migration takes the schema from version i to i + 1, in one transaction. */
static const char *const migrations[] = {
	/* 1: members, the event log, current progress, settings, adapter state. */
	"CREATE TABLE members ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  first_seen INTEGER NOT NULL,"
	"  done_count INTEGER NOT NULL DEFAULT 0,"
	"  score_at INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (group_id, member_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX members_rank ON members (group_id, done_count DESC, score_at);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  old_status TEXT NOT NULL CHECK (old_status IN ('none','in_progress','done','skipped')),"
	"  new_status TEXT NOT NULL CHECK (new_status IN ('none','in_progress','done','skipped')),"
	"  note TEXT,"
	"  at INTEGER NOT NULL,"
	"  source_id TEXT,"
	"  reverts INTEGER REFERENCES events (id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id)"
	");"
	"CREATE UNIQUE INDEX events_source ON events (source_id) WHERE source_id IS NOT NULL;"
	"CREATE UNIQUE INDEX events_reverts ON events (reverts) WHERE reverts IS NOT NULL;"
	"CREATE INDEX events_member ON events (group_id, member_id, id);"
	"CREATE INDEX events_time ON events (group_id, at);"
	"CREATE TABLE progress ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('in_progress','done','skipped')),"
	"  note TEXT,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, member_id, topic_id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX progress_topic ON progress (group_id, topic_id, status);"
	"CREATE INDEX progress_period ON progress (group_id, status, updated_at);"
	"CREATE TABLE group_settings ("
	"  group_id TEXT PRIMARY KEY,"
	"  digest_channel TEXT,"
	"  digest_time TEXT,"
	"  timezone TEXT"
	") WITHOUT ROWID;"
	"CREATE TABLE adapter_state ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	") WITHOUT ROWID;",
	/* 2: maintained week and month scores; the digest log with rank snapshots. */
	"CREATE TABLE period_scores ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  period INTEGER NOT NULL CHECK (period IN (1, 2)),"
	"  start INTEGER NOT NULL,"
	"  points INTEGER NOT NULL,"
	"  reached_at INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, period, start, member_id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX period_rank ON period_scores (group_id, period, start, points DESC, "
	"reached_at);"
	/*
	 * Every index is written by each /done, so there are few: a member's events
	 * (undo, streaks) come from one covering index. Without it SQLite walks
	 * events_time over the whole group for a streak (5 s at 1M events).
	 */
	"DROP INDEX events_member;"
	"CREATE INDEX events_member ON events (group_id, member_id, id, new_status, at, reverts);"
	"DROP INDEX progress_period;"
	/* Who finished a topic, oldest first, without reading the whole group. */
	"DROP INDEX progress_topic;"
	"CREATE INDEX progress_topic ON progress (group_id, topic_id, status, updated_at);"
	"CREATE INDEX members_name ON members (group_id, name COLLATE NOCASE);"
	/* Per-topic counts, maintained, so /topics and the digest never GROUP BY. */
	"CREATE TABLE topic_counts ("
	"  group_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  done INTEGER NOT NULL DEFAULT 0,"
	"  in_progress INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (group_id, topic_id)"
	") WITHOUT ROWID;"
	"INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
	"  SELECT group_id, topic_id, SUM(status = 'done'), SUM(status = 'in_progress') "
	"  FROM progress GROUP BY group_id, topic_id;"
	"CREATE TABLE digests ("
	"  group_id TEXT NOT NULL,"
	"  local_date TEXT NOT NULL,"
	"  idem_key TEXT NOT NULL,"
	"  recorded_at INTEGER NOT NULL,"
	"  sent_at INTEGER,"
	"  group_percent INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, local_date)"
	") WITHOUT ROWID;"
	"CREATE TABLE digest_ranks ("
	"  group_id TEXT NOT NULL,"
	"  local_date TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  rank INTEGER NOT NULL,"
	"  points INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, local_date, member_id),"
	"  FOREIGN KEY (group_id, local_date) REFERENCES digests (group_id, local_date)"
	") WITHOUT ROWID;"
	"ALTER TABLE members ADD COLUMN skipped_count INTEGER NOT NULL DEFAULT 0;"
	"UPDATE members SET skipped_count = (SELECT COUNT(*) FROM progress p WHERE "
	"  p.group_id = members.group_id AND p.member_id = members.member_id AND "
	"  p.status = 'skipped');"
	/* Period scores need the bot's calendar: rebuilt when it is set. */
	"INSERT INTO adapter_state (key, value) VALUES ('store.rebuild_periods', 'all');",
	/*
	 * 4: the status CHECKs as comparisons. SQLite 3.40 checks "x IN (a, b, c)"
	 * by building a temporary b-tree on every INSERT, which made each /done
	 * about 30% slower (measured). The constraints are equivalent, so the
	 * table text is rewritten in place, the way SQLite's documentation gives
	 * for changing a CHECK; the table bumped afterwards changes the schema
	 * cookie, so other connections reread the schema.
	 */
	"PRAGMA writable_schema = ON;"
	"UPDATE sqlite_schema SET sql = replace(replace(sql, "
	"  'old_status IN (''none'',''in_progress'',''done'',''skipped'')', "
	"  'old_status = ''none'' OR old_status = ''in_progress'' OR old_status = ''done'' "
	"OR old_status = ''skipped'''), "
	"  'new_status IN (''none'',''in_progress'',''done'',''skipped'')', "
	"  'new_status = ''none'' OR new_status = ''in_progress'' OR new_status = ''done'' "
	"OR new_status = ''skipped''') "
	"  WHERE type = 'table' AND name = 'events';"
	"UPDATE sqlite_schema SET sql = replace(sql, "
	"  'status IN (''in_progress'',''done'',''skipped'')', "
	"  'status = ''in_progress'' OR status = ''done'' OR status = ''skipped''') "
	"  WHERE type = 'table' AND name = 'progress';"
	"PRAGMA writable_schema = RESET;"
	"CREATE TABLE schema_bump (x);"
	"DROP TABLE schema_bump;",
	/*
	 * Next: the topic ids of the roadmap the scores were derived for (empty: every
	 * topic counts, as before). Progress on other topics is kept but earns
	 * nothing; store_set_roadmap() fills it and rederives the scores.
	 */
	"CREATE TABLE roadmap_topics (topic_id TEXT PRIMARY KEY) WITHOUT ROWID;"
	/* A fingerprint of those ids and the renames applied: unchanged, a start does nothing. */
	"CREATE TABLE roadmap_fingerprint (one INTEGER PRIMARY KEY CHECK (one = 1), "
	"value TEXT NOT NULL);",
};

/* Whether topic id expression t counts toward scores (a correlated test). */
#define ON_ROADMAP(t)                                                                              \
	"(" t " IN (SELECT topic_id FROM roadmap_topics) OR "                                      \
	"NOT EXISTS (SELECT 1 FROM roadmap_topics))"

/* An un-reverted event that is not itself an undo (a correlated test on e). */
#define LIVE_EVENT                                                                                 \
	"e.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.reverts = e.id)"

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_EVENT_COUNT,
	S_SOURCE_SEEN,
	S_UPSERT_MEMBER,
	S_GET_STATUS,
	S_INSERT_EVENT,
	S_DELETE_PROGRESS,
	S_UPSERT_PROGRESS,
	S_ADD_DONE,
	S_LAST_EVENT,
	S_PRIOR_EVENT,
	S_MEMBER_PROGRESS,
	S_TOPIC_PROGRESS,
	S_EXPORT,
	S_TOPIC_COUNTS,
	S_ADD_TOPIC_COUNTS,
	S_TOPIC_COUNT,
	S_GROUP_TOTALS,
	S_ADD_SKIPPED,
	S_RANK_ALL,
	S_RANK_PERIOD,
	S_PERIOD_ADD,
	S_PERIOD_CLEAR,
	S_DONE_ROWS,
	S_DONE_TIMES,
	S_ACTIVITY,
	S_FIND_MEMBER,
	S_GET_SETTINGS,
	S_SET_CHANNEL,
	S_SET_TIME,
	S_STATE_GET,
	S_STATE_SET,
	S_DEFAULT_CHANNEL,
	S_DIGEST_GROUPS,
	S_DIGEST_GET,
	S_DIGEST_PREVIOUS,
	S_DIGEST_INSERT,
	S_DIGEST_RANK_INSERT,
	S_DIGEST_SENT,
	S_DIGEST_RANKS,
	S_ON_ROADMAP,
	S_COUNT
};

static const char *const sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT change",
	[S_RELEASE] = "RELEASE change",
	[S_ROLLBACK_TO] = "ROLLBACK TO change",
	[S_EVENT_COUNT] = "SELECT count(*) FROM events",
	[S_SOURCE_SEEN] = "SELECT 1 FROM events WHERE source_id = ?1",
	[S_UPSERT_MEMBER] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			    "VALUES (?1, ?2, ?3, ?4) "
			    "ON CONFLICT (group_id, member_id) DO UPDATE SET name = excluded.name "
			    "WHERE name IS NOT excluded.name",
	[S_GET_STATUS] = "SELECT status, updated_at FROM progress "
			 "WHERE group_id = ?1 AND member_id = ?2 AND topic_id = ?3",
	[S_INSERT_EVENT] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			   "new_status, note, at, source_id, reverts) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_DELETE_PROGRESS] = "DELETE FROM progress "
			      "WHERE group_id = ?1 AND member_id = ?2 AND topic_id = ?3",
	[S_UPSERT_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, note, "
			      "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			      "ON CONFLICT (group_id, member_id, topic_id) DO UPDATE SET "
			      "status = excluded.status, note = excluded.note, "
			      "updated_at = excluded.updated_at",
	/* A score was reached when its latest counted done was: on a loss, look it up. */
	[S_ADD_DONE] =
		"UPDATE members SET done_count = done_count + ?3, score_at = CASE "
		"WHEN ?3 > 0 THEN MAX(score_at, ?4) ELSE (SELECT COALESCE(MAX(updated_at), 0) "
		"FROM progress p WHERE p.group_id = ?1 AND p.member_id = ?2 AND "
		"p.status = 'done' AND " ON_ROADMAP("p.topic_id") ") END "
		"WHERE group_id = ?1 AND member_id = ?2",
	[S_LAST_EVENT] = "SELECT id, topic_id, old_status, new_status FROM events e "
			 "WHERE group_id = ?1 AND member_id = ?2 AND " LIVE_EVENT " "
			 "ORDER BY id DESC LIMIT 1",
	[S_PRIOR_EVENT] = "SELECT note, at FROM events e "
			  "WHERE group_id = ?1 AND member_id = ?2 AND topic_id = ?3 AND id < ?4 "
			  "AND new_status = ?5 AND " LIVE_EVENT " ORDER BY id DESC LIMIT 1",
	[S_MEMBER_PROGRESS] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
			      "p.note, p.updated_at FROM progress p JOIN members m "
			      "USING (group_id, member_id) "
			      "WHERE p.group_id = ?1 AND p.member_id = ?2",
	[S_TOPIC_PROGRESS] =
		"SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
		"p.note, p.updated_at FROM progress p INDEXED BY progress_topic "
		"JOIN members m ON m.group_id = p.group_id AND m.member_id = p.member_id "
		"WHERE p.group_id = ?1 AND p.topic_id = ?2 AND p.status = ?3 "
		"ORDER BY p.updated_at LIMIT ?4",
	[S_EXPORT] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, p.note, "
		     "p.updated_at FROM progress p JOIN members m USING (group_id, member_id) "
		     "WHERE ?1 IS NULL OR p.group_id = ?1 "
		     "ORDER BY p.group_id, p.member_id, p.topic_id",
	[S_TOPIC_COUNTS] =
		"SELECT topic_id, done, in_progress FROM topic_counts WHERE group_id = ?1 "
		"AND (done > 0 OR in_progress > 0)",
	[S_GROUP_TOTALS] = "SELECT COUNT(*), COALESCE(SUM(done_count + skipped_count), 0) "
			   "FROM members WHERE group_id = ?1",
	[S_ADD_SKIPPED] = "UPDATE members SET skipped_count = skipped_count + ?3 "
			  "WHERE group_id = ?1 AND member_id = ?2",
	[S_TOPIC_COUNT] = "SELECT topic_id, done, in_progress FROM topic_counts "
			  "WHERE group_id = ?1 AND topic_id = ?2",
	[S_ADD_TOPIC_COUNTS] =
		"INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
		"VALUES (?1, ?2, ?3, ?4) ON CONFLICT (group_id, topic_id) DO UPDATE SET "
		"done = done + excluded.done, in_progress = in_progress + "
		"excluded.in_progress",
	/*
	 * The top ?2 from the ranking index, plus the asker's row (UNION drops it when it is
	 * in the top already). A row's rank is one plus the members with more points: a
	 * short index range for the top rows. The outer order puts the asker last, since
	 * anyone ahead of the tenth would be in the top.
	 */
	[S_RANK_ALL] = "SELECT r.member_id, r.name, r.points, r.reached_at, "
		       "(SELECT COUNT(*) FROM members x WHERE x.group_id = ?1 "
		       "AND x.done_count > r.points) + 1 "
		       "FROM (SELECT * FROM (SELECT member_id, name, done_count AS points, "
		       "score_at AS reached_at FROM members WHERE group_id = ?1 AND done_count > 0 "
		       "ORDER BY done_count DESC, score_at, member_id LIMIT ?2) "
		       "UNION SELECT member_id, name, done_count, score_at FROM members "
		       "WHERE group_id = ?1 AND member_id = ?3 AND done_count > 0) r "
		       "ORDER BY r.points DESC, r.reached_at, r.member_id",
	[S_RANK_PERIOD] =
		"SELECT r.member_id, r.name, r.points, r.reached_at, "
		"(SELECT COUNT(*) FROM period_scores x WHERE x.group_id = ?1 "
		"AND x.period = ?4 AND x.start = ?5 AND x.points > r.points) + 1 "
		"FROM (SELECT * FROM (SELECT s.member_id, m.name, s.points, s.reached_at "
		"FROM period_scores s JOIN members m "
		"ON m.group_id = s.group_id AND m.member_id = s.member_id "
		"WHERE s.group_id = ?1 AND s.period = ?4 AND s.start = ?5 AND s.points > 0 "
		"ORDER BY s.points DESC, s.reached_at, s.member_id LIMIT ?2) "
		"UNION SELECT s.member_id, m.name, s.points, s.reached_at "
		"FROM period_scores s JOIN members m "
		"ON m.group_id = s.group_id AND m.member_id = s.member_id "
		"WHERE s.group_id = ?1 AND s.period = ?4 AND s.start = ?5 "
		"AND s.member_id = ?3 AND s.points > 0) r "
		"ORDER BY r.points DESC, r.reached_at, r.member_id",
	[S_PERIOD_ADD] = "INSERT INTO period_scores (group_id, member_id, period, start, points, "
			 "reached_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			 "ON CONFLICT (group_id, period, start, member_id) DO UPDATE SET "
			 "points = points + excluded.points, reached_at = CASE "
			 "WHEN excluded.points > 0 THEN MAX(reached_at, excluded.reached_at) "
			 "ELSE (SELECT COALESCE(MAX(p.updated_at), 0) FROM progress p "
			 "WHERE p.group_id = ?1 AND p.member_id = ?2 AND p.status = 'done' "
			 "AND p.updated_at >= ?4 AND p.updated_at < ?7 AND "
			 ON_ROADMAP("p.topic_id") ") END",
	[S_PERIOD_CLEAR] = "DELETE FROM period_scores WHERE ?1 IS NULL OR group_id = ?1",
	[S_DONE_ROWS] =
		"SELECT group_id, member_id, updated_at FROM progress "
		"WHERE status = 'done' AND (?1 IS NULL OR group_id = ?1) AND "
		ON_ROADMAP("topic_id") " ORDER BY updated_at",
	/* Newest first by id: events are logged as they happen. */
	[S_DONE_TIMES] = "SELECT at FROM events e INDEXED BY events_member "
			 "WHERE group_id = ?1 AND member_id = ?2 "
			 "AND new_status = 'done' AND " LIVE_EVENT " AND "
			 ON_ROADMAP("e.topic_id") " ORDER BY id DESC",
	[S_ACTIVITY] = "SELECT e.member_id, m.name, e.topic_id, e.old_status, e.new_status, e.at, "
		       "m.first_seen, e.id "
		       "FROM events e JOIN members m USING (group_id, member_id) "
		       "WHERE e.group_id = ?1 AND e.at >= ?2 AND e.at < ?3 AND " LIVE_EVENT " "
		       "ORDER BY e.member_id, e.id",
	[S_FIND_MEMBER] = "SELECT member_id, name FROM members WHERE group_id = ?1 "
			  "AND (member_id = ?2 OR name = ?2 COLLATE NOCASE) "
			  "ORDER BY member_id = ?2 DESC, name LIMIT 1",
	[S_GET_SETTINGS] = "SELECT digest_channel, digest_time, timezone FROM group_settings "
			   "WHERE group_id = ?1",
	[S_SET_CHANNEL] =
		"INSERT INTO group_settings (group_id, digest_channel) VALUES (?1, ?2) "
		"ON CONFLICT (group_id) DO UPDATE SET digest_channel = excluded.digest_channel",
	[S_SET_TIME] = "INSERT INTO group_settings (group_id, digest_time, timezone) "
		       "VALUES (?1, ?2, ?3) ON CONFLICT (group_id) DO UPDATE SET "
		       "digest_time = excluded.digest_time, "
		       "timezone = COALESCE(excluded.timezone, group_settings.timezone)",
	[S_STATE_GET] = "SELECT value FROM adapter_state WHERE key = ?1",
	[S_STATE_SET] = "INSERT INTO adapter_state (key, value) VALUES (?1, ?2) "
			"ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[S_DEFAULT_CHANNEL] =
		"INSERT INTO group_settings (group_id, digest_channel) VALUES (?1, ?2) "
		"ON CONFLICT (group_id) DO NOTHING",
	[S_DIGEST_GROUPS] = "SELECT group_id, digest_channel, digest_time, timezone FROM "
			    "group_settings WHERE digest_channel IS NOT NULL ORDER BY group_id",
	[S_DIGEST_GET] = "SELECT local_date, idem_key, recorded_at, sent_at, group_percent "
			 "FROM digests WHERE group_id = ?1 AND local_date = ?2",
	[S_DIGEST_PREVIOUS] = "SELECT local_date, idem_key, recorded_at, sent_at, group_percent "
			      "FROM digests WHERE group_id = ?1 AND local_date < ?2 "
			      "ORDER BY local_date DESC LIMIT 1",
	[S_DIGEST_INSERT] = "INSERT INTO digests (group_id, local_date, idem_key, recorded_at, "
			    "group_percent) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_DIGEST_RANK_INSERT] = "INSERT INTO digest_ranks (group_id, local_date, member_id, rank, "
				 "points) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_DIGEST_SENT] = "UPDATE digests SET sent_at = ?3 WHERE group_id = ?1 AND local_date = ?2",
	[S_DIGEST_RANKS] = "SELECT member_id, rank, points FROM digest_ranks "
			   "WHERE group_id = ?1 AND local_date = ?2 ORDER BY rank",
	[S_ON_ROADMAP] = "SELECT " ON_ROADMAP("?1"),
};

/*
 * WAL checkpoints. SQLite's own run on the committing thread every 1,000
 * pages, and their two fsyncs stalled that commit for 5-20 ms (the p99 of
 * replies at 1,000/s). Here a thread of its own, on its own connection,
 * copies the WAL back every CKPT_SOFT new pages, so a commit does not wait.
 *
 * SQLite restarts the WAL only when a write begins after everything was
 * copied back, which a copy running beside writes that never pause does not
 * achieve. So past CKPT_HARD pages the committing thread checkpoints itself,
 * right after a background copy, when at most CKPT_LEFT pages are left (a
 * stall of about two fsyncs); at twice CKPT_HARD it does so whatever is
 * left, and the WAL stays bounded. When the writes pause for CKPT_IDLE_MS,
 * the rest is copied too: readers then skip the WAL, and the next write
 * starts it over.
 */
#define CKPT_SOFT 1000
#define CKPT_HARD 10000
#define CKPT_LEFT 256
#define CKPT_IDLE_MS 250
/* How long a statement waits for another process's write lock before failing. */
#define BUSY_MS 5000

struct checkpointer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a copy is due, or stop */
	pthread_cond_t idle; /* a copy ended */
	sqlite3 *db;
	int last, asked_at;      /* under lock: WAL pages at the last commit, at the last request */
	int copied;              /* under lock: WAL pages the last copy reached */
	bool due, running, stop; /* under lock */
	long background, on_commit, errors; /* checkpoints run, under lock */
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	struct store_calendar cal; /* cal.periods NULL: period scores are not kept */
	bool batch;                /* inside store_batch_begin(): changes are savepoints */
	struct checkpointer *ckpt; /* NULL: SQLite checkpoints on commit, as by default */
};

static const char *const status_names[] = {"none", "in_progress", "done", "skipped"};

const char *store_status_name(enum store_status s)
{
	return (size_t)s < ARRAY_SIZE(status_names) ? status_names[s] : "none";
}

static enum store_status status_parse(const unsigned char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(status_names); i++)
		if (strcmp((const char *)s, status_names[i]) == 0)
			return (enum store_status)i;
	return STATUS_NONE;
}

int store_schema_latest(void)
{
	return (int)ARRAY_SIZE(migrations);
}

/* Logs a failure of statement id and returns COHORT_ERR_STORE. */
static int db_fail(struct store *st, const char *what)
{
	log_error("store", "%s: %s", what, sqlite3_errmsg(st->db));
	return COHORT_ERR_STORE;
}

static sqlite3_stmt *prep(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* Runs a statement that returns no rows. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, what);
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
	return run(st, prep(st, S_COMMIT), "commit");
}

static void rollback(struct store *st)
{
	if (st->batch) {
		/* Undo this change only; the batch goes on. */
		run(st, prep(st, S_ROLLBACK_TO), "rollback to savepoint");
		run(st, prep(st, S_RELEASE), "release savepoint");
		return;
	}
	if (!sqlite3_get_autocommit(st->db))
		run(st, prep(st, S_ROLLBACK), "rollback");
}

int store_batch_begin(struct store *st)
{
	int rc = run(st, prep(st, S_BEGIN), "begin a batch");
	if (!rc)
		st->batch = true;
	return rc;
}

int store_batch_end(struct store *st, bool keep)
{
	st->batch = false;
	if (keep)
		return run(st, prep(st, S_COMMIT), "commit a batch");
	if (!sqlite3_get_autocommit(st->db))
		run(st, prep(st, S_ROLLBACK), "roll back a batch");
	return COHORT_OK;
}

int store_event_count(struct store *st, int64_t *n)
{
	sqlite3_stmt *s = prep(st, S_EVENT_COUNT);
	int rc = sqlite3_step(s);
	*n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? COHORT_OK : db_fail(st, "counting events");
}

/* The first row of a one-value statement on db, as a new string (NULL on failure). */
static char *db_value(sqlite3 *db, const char *query)
{
	sqlite3_stmt *s = NULL;
	char *v = NULL;
	if (sqlite3_prepare_v2(db, query, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = xstrdup(sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0) : "");
	sqlite3_finalize(s);
	return v;
}

/* Copies st into the open, empty database dst and checks the copy. */
static int backup_into(struct store *st, sqlite3 *dst, const char *path, char *err)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", st->db, "main");
	int rc = SQLITE_NOMEM;
	if (b) {
		/* In steps, so that a running cohort is held up for moments, not the whole copy. */
		do {
			rc = sqlite3_backup_step(b, 256);
			if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
				sqlite3_sleep(20);
		} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
		sqlite3_backup_finish(b);
	}
	const char *live = sqlite3_db_filename(st->db, "main");
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the store is damaged, no backup was written (keep the file for "
			 "inspection and restore an earlier backup): %s",
			 live, sqlite3_errstr(rc));
		return COHORT_ERR_STORE;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the backup failed: %s (check the folder exists and is writable)", path,
			 sqlite3_errmsg(dst));
		return COHORT_ERR_IO;
	}
	/* One self-contained file: a rollback journal (gone after the commit), not a WAL. */
	char *mode = db_value(dst, "PRAGMA journal_mode = DELETE");
	bool standalone = mode && strcmp(mode, "delete") == 0;
	free(mode);
	if (!standalone) {
		snprintf(err, COHORT_ERR_LEN, "%s: the backup failed: %s", path,
			 sqlite3_errmsg(dst));
		return COHORT_ERR_IO;
	}
	char *check = db_value(dst, "PRAGMA quick_check(1)"); /* "ok", or the first fault */
	bool ok = check && strcmp(check, "ok") == 0;
	if (!ok)
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the store is damaged, no backup was written (keep the file for "
			 "inspection and restore an earlier backup); quick_check: %.200s",
			 live, check ? check : sqlite3_errmsg(dst));
	free(check);
	return ok ? COHORT_OK : COHORT_ERR_STORE;
}

int store_backup(struct store *st, const char *path, bool force, char *err)
{
	struct stat target, live;
	const char *live_path = sqlite3_db_filename(st->db, "main");
	if (stat(path, &target) == 0) {
		if (live_path && stat(live_path, &live) == 0 && target.st_dev == live.st_dev &&
		    target.st_ino == live.st_ino) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s: that is the live store itself: back it up to another file "
				 "(and restore by pointing store.path at the copy)",
				 path);
			return COHORT_ERR_USAGE;
		}
		if (S_ISDIR(target.st_mode)) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s: that is a folder: give the backup a file name in it (for "
				 "example %s/cohort-backup.db)",
				 path, path);
			return COHORT_ERR_USAGE;
		}
		if (!force) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s: the file exists already: choose a new name, or add --force "
				 "to replace it",
				 path);
			return COHORT_ERR_USAGE;
		}
	}
	/* A name of our own beside the target, made exclusively: nothing else is touched. */
	char *tmp = xasprintf("%s.partial-XXXXXX", path);
	int fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: cannot write the backup: %s (check the folder exists and is "
			 "writable)",
			 path, strerror(errno));
		free(tmp);
		return COHORT_ERR_IO;
	}
	close(fd);
	sqlite3 *dst = NULL;
	int result;
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot write the backup: %s", path,
			 dst ? sqlite3_errmsg(dst) : "out of memory");
		result = COHORT_ERR_IO;
	} else {
		result = backup_into(st, dst, path, err);
	}
	if (sqlite3_close(dst) != SQLITE_OK && !result) {
		snprintf(err, COHORT_ERR_LEN, "%s: the backup failed: %s", path,
			 sqlite3_errmsg(dst));
		result = COHORT_ERR_IO;
	}
	if (!result && force && rename(tmp, path) != 0) {
		snprintf(err, COHORT_ERR_LEN, "%s: %s", path, strerror(errno));
		result = COHORT_ERR_IO;
	} else if (!result && !force) {
		/* link() never replaces: a file made meanwhile is not overwritten either. */
		if (link(tmp, path) != 0) {
			int e = errno;
			if (e == EEXIST)
				snprintf(err, COHORT_ERR_LEN,
					 "%s: the file exists already: choose a new name, or add "
					 "--force to replace it",
					 path);
			else
				snprintf(err, COHORT_ERR_LEN, "%s: %s", path, strerror(e));
			result = e == EEXIST ? COHORT_ERR_USAGE : COHORT_ERR_IO;
		}
	}
	if (result || !force)
		unlink(tmp); /* after a link (the copy stays at path), or after a failure */
	free(tmp);
	return result;
}

int store_groups(struct store *st, int (*fn)(const char *group_id, void *ud), void *ud)
{
	static const char q[] = "SELECT group_id FROM members UNION "
				"SELECT group_id FROM group_settings ORDER BY 1";
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, q, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, "listing the groups");
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
		stop = fn((const char *)sqlite3_column_text(s, 0), ud);
	sqlite3_finalize(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "listing the groups");
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *s;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	return v;
}

/*
 * Applies migrations until the schema is at version `to`. Safe when several
 * processes open one store at once: each step takes the write lock first
 * (BEGIN IMMEDIATE, waiting up to the busy timeout) and reads the version
 * again inside the transaction, so a step another process made is skipped.
 */
static int migrate(sqlite3 *db, const char *path, int to, char *err)
{
	int v = user_version(db);
	int from = v;
	while (v >= 0 && v < to) {
		char *msg = NULL;
		char pragma[64];
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s: cannot lock the database to upgrade its schema: %s (another "
				 "process holds it; try again)",
				 path, msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			return COHORT_ERR_STORE;
		}
		v = user_version(db); /* another process may have upgraded it meanwhile */
		if (v < 0 || v >= to || v > store_schema_latest()) {
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			break;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(db, migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s: upgrading the schema to version %d failed: %s (nothing was "
				 "changed)",
				 path, v + 1, msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			if (!sqlite3_get_autocommit(db))
				sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return COHORT_ERR_STORE;
		}
		if (from > 0)
			log_info("store", "upgraded %s from schema version %d to %d", path, v,
				 v + 1);
		v++;
	}
	if (v < 0) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot read the schema version: %s", path,
			 sqlite3_errmsg(db));
		return COHORT_ERR_STORE;
	}
	if (v > store_schema_latest()) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the database has schema version %d but this cohort knows only up to "
			 "%d (run a newer cohort, or restore a backup)",
			 path, v, store_schema_latest());
		return COHORT_ERR_STORE;
	}
	return COHORT_OK;
}

/*
 * Puts the database in WAL mode. Switching needs a moment alone with the
 * file, which another process opening it at the same time may hold: retried
 * (SQLite does not call the busy handler for it) for up to busy_ms.
 */
static int set_wal(sqlite3 *db, int busy_ms, char **msg)
{
	int waited = 0;
	for (;;) {
		sqlite3_stmt *s = NULL;
		int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
			if (rc == SQLITE_ROW) {
				const char *mode = (const char *)sqlite3_column_text(s, 0);
				rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_BUSY;
			}
		}
		sqlite3_finalize(s);
		if (rc == SQLITE_OK)
			return SQLITE_OK;
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited >= busy_ms) {
			*msg = sqlite3_mprintf("cannot switch to WAL mode: %s",
					       rc == SQLITE_BUSY ? "the database is busy"
								 : sqlite3_errmsg(db));
			return rc;
		}
		/* Apart, so that the processes do not collide again. */
		int pause = 5 + (int)(((unsigned)getpid() * 7u + (unsigned)waited) % 20u);
		sqlite3_sleep(pause);
		waited += pause;
	}
}

/*
 * Opens path. With create, a missing file is made first, readable by its
 * owner only (SQLite gives its -wal and -shm files the same mode); without,
 * a missing file is COHORT_ERR_NOT_FOUND and nothing is created.
 */
static int open_db(const char *path, bool sync_full, bool create, sqlite3 **out, char *err)
{
	sqlite3 *db = NULL;
	*out = NULL;
	if (create) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd); /* an empty file is an empty database */
	}
	int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		bool missing = !create && access(path, F_OK) != 0 && errno == ENOENT;
		if (missing)
			snprintf(err, COHORT_ERR_LEN, "%s: no store there", path);
		else
			snprintf(err, COHORT_ERR_LEN,
				 "%s: cannot open the database: %s (check store.path and that its "
				 "folder exists and is writable)",
				 path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return missing ? COHORT_ERR_NOT_FOUND : COHORT_ERR_STORE;
	}
	sqlite3_busy_timeout(db, BUSY_MS);
	char *msg = NULL;
	/*
	 * journal_size_limit: a WAL file grown past its cap is cut back when it
	 * restarts. Not lower: cutting 40 MB of file stalled that commit 20 ms.
	 */
	char pragmas[200];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;"
		 "PRAGMA journal_size_limit = %d;",
		 sync_full ? "FULL" : "NORMAL", (CKPT_HARD + CKPT_SOFT) * 4120);
	if (set_wal(db, BUSY_MS, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot set up the database: %s", path,
			 msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		sqlite3_close(db);
		return COHORT_ERR_STORE;
	}
	*out = db;
	return COHORT_OK;
}

int store_create_at_version(const char *path, int version, char *err)
{
	sqlite3 *db;
	int rc = open_db(path, false, true, &db, err);
	if (!rc)
		rc = migrate(db, path, version, err);
	sqlite3_close(db);
	return rc;
}

static void *checkpoint_thread(void *arg)
{
	struct checkpointer *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->due && !c->stop) {
			if (c->last <= c->copied) {
				pthread_cond_wait(&c->wake, &c->lock);
				continue;
			}
			/* Pages left uncopied: copy them once the writes pause. */
			int last = c->last;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += CKPT_IDLE_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L)
				until.tv_sec++, until.tv_nsec -= 1000000000L;
			if (pthread_cond_timedwait(&c->wake, &c->lock, &until) == ETIMEDOUT &&
			    c->last == last)
				c->due = true;
		}
		if (c->stop)
			break;
		c->due = false;
		c->running = true;
		pthread_mutex_unlock(&c->lock);
		/* PASSIVE: copies what it can, without waiting for or blocking anyone. */
		int log = 0, copied = 0;
		int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
						   &copied);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("store", "checkpoint failed: %s", sqlite3_errmsg(c->db));
		pthread_mutex_lock(&c->lock);
		c->running = false;
		pthread_cond_broadcast(&c->idle);
		/* More than the writer has seen: the copy read a WAL restarted since. */
		if (rc == SQLITE_OK && copied <= c->last)
			c->copied = copied;
		c->background++;
		c->errors += rc != SQLITE_OK && rc != SQLITE_BUSY;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* SQLite's WAL hook: runs on the committing thread after each commit. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int pages)
{
	struct checkpointer *c = ud;
	pthread_mutex_lock(&c->lock);
	if (pages < c->last) { /* the WAL restarted */
		c->asked_at = 0;
		c->copied = 0;
	}
	c->last = pages;
	int left = pages - c->copied;
	bool now = pages >= 2 * CKPT_HARD || (pages >= CKPT_HARD && left <= CKPT_LEFT);
	bool ask = pages - c->asked_at >= CKPT_SOFT || (pages >= CKPT_HARD && !c->due);
	if (ask && !now) {
		c->asked_at = pages;
		c->due = true;
		pthread_cond_signal(&c->wake);
	}
	if (now) {
		/* One checkpoint runs at a time: at the hard limit, wait for a copy running. */
		while (c->running && pages >= 2 * CKPT_HARD)
			pthread_cond_wait(&c->idle, &c->lock);
		c->due = false; /* this one does it */
	}
	pthread_mutex_unlock(&c->lock);
	if (!now)
		return SQLITE_OK;
	int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		log_warn("store", "checkpoint failed: %s", sqlite3_errmsg(db));
	pthread_mutex_lock(&c->lock);
	c->on_commit++;
	c->errors += rc != SQLITE_OK && rc != SQLITE_BUSY;
	pthread_mutex_unlock(&c->lock);
	return SQLITE_OK;
}

/* Moves checkpoints off db's thread; when that cannot be set up SQLite keeps doing them. */
static struct checkpointer *checkpointer_start(sqlite3 *db, const char *path, bool sync_full)
{
	struct checkpointer *c = xcalloc(1, sizeof(*c));
	char err[COHORT_ERR_LEN];
	if (open_db(path, sync_full, false, &c->db, err)) {
		log_warn("store", "checkpoints stay on the committing thread: %s", err);
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->idle, NULL);
	int rc = thread_start(&c->thread, checkpoint_thread, c);
	if (rc) {
		log_warn("store", "checkpoints stay on the committing thread: %s", strerror(rc));
		sqlite3_close(c->db);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->wake);
		pthread_cond_destroy(&c->idle);
		free(c);
		return NULL;
	}
	sqlite3_wal_hook(db, on_wal_commit, c); /* replaces SQLite's autocheckpoint */
	return c;
}

static void checkpointer_stop(sqlite3 *db, struct checkpointer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	sqlite3_wal_autocheckpoint(db, 1000); /* SQLite's own again, for what is left */
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->idle);
	free(c);
}

void store_checkpoint_stats(struct store *st, struct store_checkpoints *out)
{
	memset(out, 0, sizeof(*out));
	struct checkpointer *c = st->ckpt;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	out->background = c->background;
	out->on_commit = c->on_commit;
	out->failed = c->errors;
	out->left = c->last > c->copied ? c->last - c->copied : 0;
	pthread_mutex_unlock(&c->lock);
}

static int open_store(const char *path, bool sync_full, bool create, struct store **out,
		      char *err)
{
	sqlite3 *db;
	*out = NULL;
	int rc = open_db(path, sync_full, create, &db, err);
	if (rc)
		return rc;
	/* A store made before cohort created them 0600 (or copied carelessly) is pointed out. */
	struct stat sb;
	if (stat(path, &sb) == 0 && (sb.st_mode & 077))
		log_warn("store",
			 "%s is readable by other users (mode %03o) and holds members' records "
			 "and adapter secrets: run chmod 600 on it (and its -wal and -shm files)",
			 path, (unsigned)(sb.st_mode & 0777));
	rc = migrate(db, path, store_schema_latest(), err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	struct store *st = xcalloc(1, sizeof(*st));
	st->db = db;
	st->ckpt = checkpointer_start(db, path, sync_full);
	for (int i = 0; i < S_COUNT; i++) {
		if (!sql[i] || sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
						  &st->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, COHORT_ERR_LEN, "%s: preparing statement %d failed: %s", path,
				 i, sql[i] ? sqlite3_errmsg(db) : "no SQL for it");
			store_free(st);
			return COHORT_ERR_STORE;
		}
	}
	*out = st;
	return COHORT_OK;
}

int store_open(const char *path, bool sync_full, struct store **out, char *err)
{
	return open_store(path, sync_full, true, out, err);
}

int store_open_existing(const char *path, bool sync_full, struct store **out, char *err)
{
	return open_store(path, sync_full, false, out, err);
}

void store_free(struct store *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	checkpointer_stop(st->db, st->ckpt);
	sqlite3_close(st->db); /* the last connection checkpoints and removes the WAL */
	free(st);
}

int store_schema_version(struct store *st)
{
	return user_version(st->db);
}

/* COHORT_ERR_DUPLICATE when source_id was applied before. */
static int check_source(struct store *st, const char *source_id)
{
	if (!source_id)
		return COHORT_OK;
	sqlite3_stmt *s = prep(st, S_SOURCE_SEEN);
	bind_text(s, 1, source_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return COHORT_ERR_DUPLICATE;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "checking the source event");
}

static int upsert_member(struct store *st, const char *group, const char *member, const char *name,
			 int64_t at)
{
	sqlite3_stmt *s = prep(st, S_UPSERT_MEMBER);
	bind_text(s, 1, group);
	bind_text(s, 2, member);
	bind_text(s, 3, name && *name ? name : member);
	sqlite3_bind_int64(s, 4, at);
	return run(st, s, "recording the member");
}

static int get_status(struct store *st, const char *group, const char *member, const char *topic,
		      struct store_prior *out)
{
	sqlite3_stmt *s = prep(st, S_GET_STATUS);
	bind_text(s, 1, group);
	bind_text(s, 2, member);
	bind_text(s, 3, topic);
	out->status = STATUS_NONE;
	out->updated_at = 0;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->status = status_parse(sqlite3_column_text(s, 0));
		out->updated_at = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading progress");
}

static int insert_event(struct store *st, const struct store_change *c, enum store_status old,
			int64_t reverts)
{
	sqlite3_stmt *s = prep(st, S_INSERT_EVENT);
	bind_text(s, 1, c->group_id);
	bind_text(s, 2, c->member_id);
	bind_text(s, 3, c->topic_id);
	bind_text(s, 4, store_status_name(old));
	bind_text(s, 5, store_status_name(c->status));
	bind_text(s, 6, c->note && *c->note ? c->note : NULL);
	sqlite3_bind_int64(s, 7, c->at);
	bind_text(s, 8, c->source_id);
	if (reverts)
		sqlite3_bind_int64(s, 9, reverts);
	return run(st, s, "logging the change");
}

/*
 * Adds d points to the member's week and month of time t (when a calendar is
 * set); t is also when a gained point was earned.
 */
static int add_period_points(struct store *st, const char *group, const char *member, int64_t t,
			     int d)
{
	if (!st->cal.periods)
		return COHORT_OK;
	int64_t start[2], end[2];
	st->cal.periods(st->cal.ud, group, t, start, end);
	for (int p = 0; p < 2; p++) {
		sqlite3_stmt *s = prep(st, S_PERIOD_ADD);
		bind_text(s, 1, group);
		bind_text(s, 2, member);
		sqlite3_bind_int(s, 3, p == 0 ? PERIOD_WEEK : PERIOD_MONTH);
		sqlite3_bind_int64(s, 4, start[p]);
		sqlite3_bind_int(s, 5, d);
		sqlite3_bind_int64(s, 6, t);
		sqlite3_bind_int64(s, 7, end[p]);
		int rc = run(st, s, "updating period scores");
		if (rc)
			return rc;
	}
	return COHORT_OK;
}

/* *yes: whether topic_id counts toward scores (is on the roadmap the store was given). */
static int on_roadmap(struct store *st, const char *topic_id, bool *yes)
{
	sqlite3_stmt *s = prep(st, S_ON_ROADMAP);
	bind_text(s, 1, topic_id);
	int rc = sqlite3_step(s);
	*yes = rc != SQLITE_ROW || sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? COHORT_OK : db_fail(st, "checking the roadmap");
}

/*
 * Makes progress say c->status with this note and time, and keeps the scores
 * in step: the all-time count, and the week and month a done belongs to (by
 * the time it was done: old_at for the status being replaced).
 */
static int write_progress(struct store *st, const struct store_change *c,
			  const struct store_prior *old, int64_t updated_at)
{
	sqlite3_stmt *s;
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
		sqlite3_bind_int64(s, 6, updated_at);
	}
	rc = run(st, s, "updating progress");
	int done_d = (c->status == STATUS_DONE) - (old->status == STATUS_DONE);
	int doing_d = (c->status == STATUS_IN_PROGRESS) - (old->status == STATUS_IN_PROGRESS);
	if (!rc && (done_d || doing_d)) {
		s = prep(st, S_ADD_TOPIC_COUNTS);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->topic_id);
		sqlite3_bind_int(s, 3, done_d);
		sqlite3_bind_int(s, 4, doing_d);
		rc = run(st, s, "updating topic counts");
	}
	int skipped = (c->status == STATUS_SKIPPED) - (old->status == STATUS_SKIPPED);
	int delta = (c->status == STATUS_DONE) - (old->status == STATUS_DONE);
	/* A topic that is not on the roadmap keeps its record but earns nothing. */
	bool counts = true;
	if (!rc && (skipped || delta))
		rc = on_roadmap(st, c->topic_id, &counts);
	if (!counts)
		skipped = delta = 0;
	if (!rc && skipped) {
		s = prep(st, S_ADD_SKIPPED);
		bind_text(s, 1, c->group_id);
		bind_text(s, 2, c->member_id);
		sqlite3_bind_int(s, 3, skipped);
		rc = run(st, s, "updating the skipped count");
	}
	if (rc || !delta)
		return rc;
	s = prep(st, S_ADD_DONE);
	bind_text(s, 1, c->group_id);
	bind_text(s, 2, c->member_id);
	sqlite3_bind_int(s, 3, delta);
	sqlite3_bind_int64(s, 4, updated_at);
	rc = run(st, s, "updating the score");
	if (!rc && old->status == STATUS_DONE)
		rc = add_period_points(st, c->group_id, c->member_id, old->updated_at, -1);
	if (!rc && c->status == STATUS_DONE)
		rc = add_period_points(st, c->group_id, c->member_id, updated_at, 1);
	return rc;
}

int store_set_status(struct store *st, const struct store_change *c, struct store_prior *prior)
{
	struct store_prior old;
	int rc = begin(st);
	if (rc)
		return rc;
	rc = check_source(st, c->source_id);
	if (!rc)
		rc = upsert_member(st, c->group_id, c->member_id, c->member_name, c->at);
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
	rc = insert_event(st, c, old.status, 0);
	if (!rc)
		rc = write_progress(st, c, &old, c->at);
	if (!rc)
		rc = commit(st);
	if (rc)
		goto fail;
	return COHORT_OK;
fail:
	rollback(st);
	return rc;
}

int store_undo(struct store *st, const char *group_id, const char *member_id,
	       const char *member_name, const char *source_id, int64_t at, struct store_undone *out)
{
	memset(out, 0, sizeof(*out));
	int rc = begin(st);
	if (rc)
		return rc;
	rc = check_source(st, source_id);
	if (!rc)
		rc = upsert_member(st, group_id, member_id, member_name, at);
	if (rc)
		goto fail;

	sqlite3_stmt *s = prep(st, S_LAST_EVENT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int step = sqlite3_step(s);
	if (step != SQLITE_ROW) {
		sqlite3_reset(s);
		rc = step == SQLITE_DONE ? COHORT_ERR_NOT_FOUND
					 : db_fail(st, "finding the last change");
		goto fail;
	}
	int64_t event_id = sqlite3_column_int64(s, 0);
	out->topic_id = xstrdup((const char *)sqlite3_column_text(s, 1));
	out->to = status_parse(sqlite3_column_text(s, 2));
	out->from = status_parse(sqlite3_column_text(s, 3));
	sqlite3_reset(s);

	/* The state being restored: its note and time come from the change that made it. */
	char *note = NULL;
	int64_t restored_at = at;
	if (out->to != STATUS_NONE) {
		s = prep(st, S_PRIOR_EVENT);
		bind_text(s, 1, group_id);
		bind_text(s, 2, member_id);
		bind_text(s, 3, out->topic_id);
		sqlite3_bind_int64(s, 4, event_id);
		bind_text(s, 5, store_status_name(out->to));
		step = sqlite3_step(s);
		if (step == SQLITE_ROW) {
			const unsigned char *n = sqlite3_column_text(s, 0);
			note = n ? xstrdup((const char *)n) : NULL;
			restored_at = sqlite3_column_int64(s, 1);
		}
		sqlite3_reset(s);
		if (step != SQLITE_ROW && step != SQLITE_DONE) {
			rc = db_fail(st, "finding the earlier state");
			goto fail;
		}
	}
	struct store_change c = {group_id, member_id, member_name, out->topic_id,
				 out->to,  note,      source_id,   at};
	struct store_prior current;
	rc = get_status(st, group_id, member_id, out->topic_id, &current);
	if (!rc)
		rc = insert_event(st, &c, out->from, event_id);
	if (!rc)
		rc = write_progress(st, &c, &current, restored_at);
	free(note);
	if (!rc)
		rc = commit(st);
	if (rc)
		goto fail;
	return COHORT_OK;
fail:
	rollback(st);
	free(out->topic_id);
	out->topic_id = NULL;
	return rc;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? (const char *)t : "";
}

/* Steps a statement yielding store_row columns, calling fn for each row. */
static int each_row(struct store *st, sqlite3_stmt *s, store_row_fn fn, void *ud)
{
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_row row = {
			col_text(s, 0),
			col_text(s, 1),
			col_text(s, 2),
			col_text(s, 3),
			status_parse(sqlite3_column_text(s, 4)),
			col_text(s, 5),
			sqlite3_column_int64(s, 6),
		};
		stop = fn(&row, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading progress");
}

int store_member_progress(struct store *st, const char *group_id, const char *member_id,
			  store_row_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, S_MEMBER_PROGRESS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	return each_row(st, s, fn, ud);
}

int store_topic_progress(struct store *st, const char *group_id, const char *topic_id,
			 enum store_status status, int limit, store_row_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, S_TOPIC_PROGRESS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, topic_id);
	bind_text(s, 3, store_status_name(status));
	sqlite3_bind_int(s, 4, limit);
	return each_row(st, s, fn, ud);
}

int store_export(struct store *st, const char *group_id, store_row_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, S_EXPORT);
	bind_text(s, 1, group_id);
	return each_row(st, s, fn, ud);
}

static int each_count(struct store *st, sqlite3_stmt *s, store_count_fn fn, void *ud)
{
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_count c = {col_text(s, 0), sqlite3_column_int(s, 1),
					sqlite3_column_int(s, 2)};
		stop = fn(&c, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "counting topics");
}

int store_topic_counts(struct store *st, const char *group_id, store_count_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, S_TOPIC_COUNTS);
	bind_text(s, 1, group_id);
	return each_count(st, s, fn, ud);
}

int store_topic_count(struct store *st, const char *group_id, const char *topic_id,
		      struct store_count *out)
{
	sqlite3_stmt *s = prep(st, S_TOPIC_COUNT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, topic_id);
	int rc = sqlite3_step(s);
	out->topic_id = topic_id;
	out->done = rc == SQLITE_ROW ? sqlite3_column_int(s, 1) : 0;
	out->in_progress = rc == SQLITE_ROW ? sqlite3_column_int(s, 2) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "counting a topic");
}

int store_group_totals(struct store *st, const char *group_id, int *members, int *finished)
{
	sqlite3_stmt *s = prep(st, S_GROUP_TOTALS);
	bind_text(s, 1, group_id);
	int rc = sqlite3_step(s);
	*members = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	*finished = rc == SQLITE_ROW ? sqlite3_column_int(s, 1) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? COHORT_OK : db_fail(st, "summing the group");
}

int store_ranking(struct store *st, const char *group_id, enum store_period period, int64_t start,
		  int limit, const char *member_id, store_rank_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, period == PERIOD_ALL ? S_RANK_ALL : S_RANK_PERIOD);
	bind_text(s, 1, group_id);
	sqlite3_bind_int(s, 2, limit);
	bind_text(s, 3, member_id);
	if (period != PERIOD_ALL) {
		sqlite3_bind_int(s, 4, period);
		sqlite3_bind_int64(s, 5, start);
	}
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_rank r = {col_text(s, 0), col_text(s, 1), sqlite3_column_int(s, 2),
				       sqlite3_column_int(s, 4), sqlite3_column_int64(s, 3)};
		stop = fn(&r, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "ranking members");
}

/* Clears and replays the period scores of a group (NULL: all), inside a transaction. */
static int rebuild_periods(struct store *st, const char *group_id)
{
	sqlite3_stmt *s = prep(st, S_PERIOD_CLEAR);
	bind_text(s, 1, group_id);
	int rc = run(st, s, "clearing period scores");
	/* Replay every done in time order: the last one sets reached_at. */
	sqlite3_stmt *rows = prep(st, S_DONE_ROWS);
	bind_text(rows, 1, group_id);
	int step = SQLITE_DONE;
	while (!rc && (step = sqlite3_step(rows)) == SQLITE_ROW) {
		char *g = xstrdup(col_text(rows, 0)), *m = xstrdup(col_text(rows, 1));
		int64_t at = sqlite3_column_int64(rows, 2);
		rc = add_period_points(st, g, m, at, 1);
		free(g);
		free(m);
	}
	sqlite3_reset(rows);
	if (!rc && step != SQLITE_DONE)
		rc = db_fail(st, "reading done topics");
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

/* Runs one statement of SQL text (not a prepared one: these run rarely). */
static int exec_once(struct store *st, const char *text, const char *what, int *changes)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, what);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, what);
	if (changes)
		*changes = sqlite3_changes(st->db);
	return COHORT_OK;
}

/* Moves records kept under rename->from to rename->to; *moved counts the progress records. */
static int apply_rename(struct store *st, const struct store_rename *r, long *moved)
{
	static const char *const moves[] = {
		/* A member who has both keeps the new one: counted once, the old one kept. */
		"UPDATE progress SET topic_id = ?2 WHERE topic_id = ?1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = progress.group_id AND "
		"q.member_id = progress.member_id AND q.topic_id = ?2)",
		/* The history goes with the record, so /undo and the digest name the new topic. */
		"UPDATE events SET topic_id = ?2 WHERE topic_id = ?1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = events.group_id AND "
		"q.member_id = events.member_id AND q.topic_id = ?1)",
	};
	for (size_t i = 0; i < ARRAY_SIZE(moves); i++) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(st->db, moves[i], -1, &s, NULL) != SQLITE_OK)
			return db_fail(st, "moving records to a renamed topic");
		bind_text(s, 1, r->from);
		bind_text(s, 2, r->to);
		int rc = sqlite3_step(s);
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE)
			return db_fail(st, "moving records to a renamed topic");
		if (i == 0)
			*moved += sqlite3_changes(st->db);
	}
	return COHORT_OK;
}

/* FNV-1a over the ids and renames, to tell at start whether the roadmap changed. */
static void roadmap_fingerprint(const char *const *ids, size_t n, const struct store_rename *rn,
				size_t nrn, char out[17])
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n + 2 * nrn; i++) {
		const char *v = i < n ? ids[i] : (i - n) % 2 ? rn[(i - n) / 2].to : rn[(i - n) / 2].from;
		for (const char *c = v; ; c++) {
			h = (h ^ (unsigned char)*c) * 1099511628211ULL;
			if (!*c)
				break;
		}
		if (i + 1 == n)
			h = (h ^ 0xff) * 1099511628211ULL; /* ids end here: renames are not ids */
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int store_set_roadmap(struct store *st, const char *const *ids, size_t n,
		      const struct store_rename *renames, size_t nrenames, bool force,
		      struct store_roadmap_result *out)
{
	memset(out, 0, sizeof(*out));
	char print[17], *stored = NULL;
	roadmap_fingerprint(ids, n, renames, nrenames, print);
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM roadmap_fingerprint", -1, &q, NULL) !=
	    SQLITE_OK)
		return db_fail(st, "reading the roadmap fingerprint");
	int step = sqlite3_step(q);
	if (step == SQLITE_ROW)
		stored = xstrdup(col_text(q, 0));
	sqlite3_finalize(q);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return db_fail(st, "reading the roadmap fingerprint");
	bool same = stored && strcmp(stored, print) == 0;
	free(stored);
	if (same && !force)
		return COHORT_OK;
	int rc;
	rc = begin(st);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < nrenames; i++)
		rc = apply_rename(st, &renames[i], &out->moved);
	if (!rc)
		rc = exec_once(st, "DELETE FROM roadmap_topics", "replacing the roadmap", NULL);
	sqlite3_stmt *ins = NULL;
	if (!rc && sqlite3_prepare_v2(st->db,
				      "INSERT OR IGNORE INTO roadmap_topics (topic_id) VALUES (?1)",
				      -1, &ins, NULL) != SQLITE_OK)
		rc = db_fail(st, "recording the roadmap");
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_reset(ins);
		bind_text(ins, 1, ids[i]);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = db_fail(st, "recording the roadmap");
	}
	sqlite3_finalize(ins);
	/* Everything derived from progress, derived again for this topic set. */
	if (!rc)
		rc = exec_once(st,
			       "UPDATE members SET "
			       "done_count = (SELECT COUNT(*) FROM progress p WHERE "
			       "p.group_id = members.group_id AND p.member_id = members.member_id "
			       "AND p.status = 'done' AND " ON_ROADMAP("p.topic_id") "), "
			       "skipped_count = (SELECT COUNT(*) FROM progress p WHERE "
			       "p.group_id = members.group_id AND p.member_id = members.member_id "
			       "AND p.status = 'skipped' AND " ON_ROADMAP("p.topic_id") "), "
			       "score_at = (SELECT COALESCE(MAX(p.updated_at), 0) FROM progress p "
			       "WHERE p.group_id = members.group_id AND "
			       "p.member_id = members.member_id AND p.status = 'done' AND "
			       ON_ROADMAP("p.topic_id") ")",
			       "recounting scores", NULL);
	if (!rc)
		rc = exec_once(st, "DELETE FROM topic_counts", "recounting topics", NULL);
	if (!rc)
		rc = exec_once(st,
			       "INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
			       "SELECT group_id, topic_id, SUM(status = 'done'), "
			       "SUM(status = 'in_progress') FROM progress "
			       "GROUP BY group_id, topic_id",
			       "recounting topics", NULL);
	if (!rc && st->cal.periods)
		rc = rebuild_periods(st, NULL);
	if (!rc) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(st->db,
				       "INSERT OR REPLACE INTO roadmap_fingerprint (one, value) "
				       "VALUES (1, ?1)",
				       -1, &s, NULL) != SQLITE_OK) {
			rc = db_fail(st, "recording the roadmap");
		} else {
			bind_text(s, 1, print);
			int done = sqlite3_step(s);
			sqlite3_finalize(s);
			if (done != SQLITE_DONE)
				rc = db_fail(st, "recording the roadmap");
		}
	}
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

int store_set_calendar(struct store *st, const struct store_calendar *cal)
{
	st->cal = *cal;
	char *pending = NULL;
	int rc = store_state_get(st, "store.rebuild_periods", &pending);
	if (!rc && pending) {
		rc = store_rebuild_periods(st, NULL);
		if (!rc) {
			sqlite3_stmt *s;
			if (sqlite3_prepare_v2(st->db,
					       "DELETE FROM adapter_state WHERE key = "
					       "'store.rebuild_periods'",
					       -1, &s, NULL) == SQLITE_OK) {
				rc = run(st, s, "clearing the rebuild mark");
				sqlite3_finalize(s);
			} else {
				rc = db_fail(st, "clearing the rebuild mark");
			}
		}
		if (!rc)
			log_debug("store", "rebuilt week and month scores");
	}
	free(pending);
	return rc;
}

int store_done_times(struct store *st, const char *group_id, const char *member_id,
		     int (*fn)(int64_t at, void *ud), void *ud)
{
	sqlite3_stmt *s = prep(st, S_DONE_TIMES);
	bind_text(s, 1, group_id);
	bind_text(s, 2, member_id);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
		stop = fn(sqlite3_column_int64(s, 0), ud);
	sqlite3_reset(s);
	if (stop)
		return COHORT_OK;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading done times");
}

int store_activity(struct store *st, const char *group_id, int64_t since, int64_t until,
		   store_activity_fn fn, void *ud)
{
	sqlite3_stmt *s = prep(st, S_ACTIVITY);
	bind_text(s, 1, group_id);
	sqlite3_bind_int64(s, 2, since);
	sqlite3_bind_int64(s, 3, until);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_activity a = {sqlite3_column_int64(s, 7),
					   col_text(s, 0),
					   col_text(s, 1),
					   sqlite3_column_int64(s, 6),
					   col_text(s, 2),
					   status_parse(sqlite3_column_text(s, 3)),
					   status_parse(sqlite3_column_text(s, 4)),
					   sqlite3_column_int64(s, 5)};
		stop = fn(&a, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading activity");
}

int store_find_member(struct store *st, const char *group_id, const char *who, char **member_id,
		      char **member_name)
{
	*member_id = *member_name = NULL;
	sqlite3_stmt *s = prep(st, S_FIND_MEMBER);
	bind_text(s, 1, group_id);
	bind_text(s, 2, who);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*member_id = xstrdup(col_text(s, 0));
		*member_name = xstrdup(col_text(s, 1));
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return COHORT_OK;
	return rc == SQLITE_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "finding a member");
}

static char *col_dup_or_null(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

int store_get_settings(struct store *st, const char *group_id, struct store_settings *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = prep(st, S_GET_SETTINGS);
	bind_text(s, 1, group_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->stored = true;
		out->digest_channel = col_dup_or_null(s, 0);
		out->digest_time = col_dup_or_null(s, 1);
		out->timezone = col_dup_or_null(s, 2);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading settings");
}

void store_settings_release(struct store_settings *s)
{
	free(s->digest_channel);
	free(s->digest_time);
	free(s->timezone);
	memset(s, 0, sizeof(*s));
}

int store_set_digest_channel(struct store *st, const char *group_id, const char *channel)
{
	sqlite3_stmt *s = prep(st, S_SET_CHANNEL);
	bind_text(s, 1, group_id);
	bind_text(s, 2, channel);
	return run(st, s, "saving the digest channel");
}

int store_set_digest_time(struct store *st, const char *group_id, const char *hhmm,
			  const char *timezone)
{
	sqlite3_stmt *s = prep(st, S_SET_TIME);
	bind_text(s, 1, group_id);
	bind_text(s, 2, hhmm);
	bind_text(s, 3, timezone);
	return run(st, s, "saving the digest time");
}

int store_state_get(struct store *st, const char *key, char **value)
{
	*value = NULL;
	sqlite3_stmt *s = prep(st, S_STATE_GET);
	bind_text(s, 1, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value = xstrdup(col_text(s, 0));
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading state");
}

int store_state_set(struct store *st, const char *key, const char *value)
{
	sqlite3_stmt *s = prep(st, S_STATE_SET);
	bind_text(s, 1, key);
	bind_text(s, 2, value);
	return run(st, s, "saving state");
}

int store_default_digest_channel(struct store *st, const char *group_id, const char *channel)
{
	sqlite3_stmt *s = prep(st, S_DEFAULT_CHANNEL);
	bind_text(s, 1, group_id);
	bind_text(s, 2, channel);
	return run(st, s, "saving the default digest channel");
}

int store_digest_groups(struct store *st, int (*fn)(const struct store_digest_group *g, void *ud),
			void *ud)
{
	sqlite3_stmt *s = prep(st, S_DIGEST_GROUPS);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_digest_group g = {col_text(s, 0), col_text(s, 1),
					       (const char *)sqlite3_column_text(s, 2),
					       (const char *)sqlite3_column_text(s, 3)};
		stop = fn(&g, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "listing digest groups");
}

void store_digest_release(struct store_digest *d)
{
	free(d->local_date);
	free(d->idem_key);
	memset(d, 0, sizeof(*d));
}

static int read_digest(struct store *st, sqlite3_stmt *s, struct store_digest *out)
{
	memset(out, 0, sizeof(*out));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->local_date = xstrdup(col_text(s, 0));
		out->idem_key = xstrdup(col_text(s, 1));
		out->recorded_at = sqlite3_column_int64(s, 2);
		out->sent_at = sqlite3_column_int64(s, 3);
		out->group_percent = sqlite3_column_int(s, 4);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return COHORT_OK;
	return rc == SQLITE_DONE ? COHORT_ERR_NOT_FOUND : db_fail(st, "reading the digest log");
}

int store_digest_get(struct store *st, const char *group_id, const char *local_date,
		     struct store_digest *out)
{
	sqlite3_stmt *s = prep(st, S_DIGEST_GET);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	return read_digest(st, s, out);
}

int store_digest_previous(struct store *st, const char *group_id, const char *local_date,
			  struct store_digest *out)
{
	sqlite3_stmt *s = prep(st, S_DIGEST_PREVIOUS);
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
	sqlite3_stmt *s = prep(st, S_DIGEST_INSERT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	bind_text(s, 3, idem_key);
	sqlite3_bind_int64(s, 4, at);
	sqlite3_bind_int(s, 5, group_percent);
	int step = sqlite3_step(s);
	sqlite3_reset(s);
	if (step == SQLITE_CONSTRAINT) {
		rollback(st);
		return COHORT_ERR_DUPLICATE;
	}
	if (step != SQLITE_DONE)
		rc = db_fail(st, "recording the digest");
	for (size_t i = 0; !rc && i < nranks; i++) {
		s = prep(st, S_DIGEST_RANK_INSERT);
		bind_text(s, 1, group_id);
		bind_text(s, 2, local_date);
		bind_text(s, 3, ranks[i].member_id);
		sqlite3_bind_int(s, 4, ranks[i].rank);
		sqlite3_bind_int(s, 5, ranks[i].points);
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
	sqlite3_stmt *s = prep(st, S_DIGEST_SENT);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	sqlite3_bind_int64(s, 3, at);
	return run(st, s, "marking the digest sent");
}

int store_digest_ranks(struct store *st, const char *group_id, const char *local_date,
		       int (*fn)(const struct store_rank_entry *e, void *ud), void *ud)
{
	sqlite3_stmt *s = prep(st, S_DIGEST_RANKS);
	bind_text(s, 1, group_id);
	bind_text(s, 2, local_date);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_rank_entry e = {col_text(s, 0), sqlite3_column_int(s, 1),
					     sqlite3_column_int(s, 2)};
		stop = fn(&e, ud);
	}
	sqlite3_reset(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "reading the digest ranking");
}

int store_topic_totals(struct store *st, int (*fn)(const struct store_topic_total *t, void *ud),
		       void *ud)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT topic_id, COUNT(*), SUM(status = 'done') FROM progress "
			       "GROUP BY topic_id ORDER BY topic_id",
			       -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, "counting records by topic");
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_topic_total t = {col_text(s, 0), sqlite3_column_int64(s, 1),
					      sqlite3_column_int64(s, 2)};
		stop = fn(&t, ud);
	}
	sqlite3_finalize(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "counting records by topic");
}

/* ---- dump and restore ---- */

static const char *col_or_null(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Steps an ad-hoc query, calling row() per row; a non-zero return stops and is returned. */
static int each(struct store *st, const char *text, const char *group_id,
		int (*row)(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud),
		const struct store_dump_fns *fns, void *ud)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, "dumping the store");
	bind_text(s, 1, group_id);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
		stop = row(s, fns, ud);
	sqlite3_finalize(s);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? COHORT_OK : db_fail(st, "dumping the store");
}

static int settings_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_group_settings g = {col_text(s, 0), col_or_null(s, 1), col_or_null(s, 2),
					 col_or_null(s, 3)};
	return fns->settings(&g, ud);
}

static int member_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_member m = {col_text(s, 0), col_text(s, 1), col_text(s, 2),
				 sqlite3_column_int64(s, 3)};
	return fns->member(&m, ud);
}

static int progress_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_row r = {col_text(s, 0),
			      col_text(s, 1),
			      col_text(s, 2),
			      col_text(s, 3),
			      status_parse(sqlite3_column_text(s, 4)),
			      col_text(s, 5),
			      sqlite3_column_int64(s, 6)};
	return fns->progress(&r, ud);
}

static int event_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_event e = {sqlite3_column_int64(s, 0),
				col_text(s, 1),
				col_text(s, 2),
				col_text(s, 3),
				status_parse(sqlite3_column_text(s, 4)),
				status_parse(sqlite3_column_text(s, 5)),
				col_or_null(s, 6),
				sqlite3_column_int64(s, 7),
				col_or_null(s, 8),
				sqlite3_column_int64(s, 9)};
	return fns->event(&e, ud);
}

static int digest_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_digest_row d = {col_text(s, 0),		 col_text(s, 1),
				     col_text(s, 2),		 sqlite3_column_int64(s, 3),
				     sqlite3_column_int64(s, 4), sqlite3_column_int(s, 5)};
	return fns->digest(&d, ud);
}

static int digest_rank_row(sqlite3_stmt *s, const struct store_dump_fns *fns, void *ud)
{
	struct store_digest_rank_row r = {col_text(s, 0), col_text(s, 1), col_text(s, 2),
					  sqlite3_column_int(s, 3), sqlite3_column_int(s, 4)};
	return fns->digest_rank(&r, ud);
}

int store_dump(struct store *st, const char *group_id, const struct store_dump_fns *fns, void *ud)
{
	/* One read transaction: the tables agree with each other even while cohort runs. */
	int rc = exec_once(st, "BEGIN", "dumping the store", NULL);
	if (rc)
		return rc;
#define GROUP_IS " WHERE (?1 IS NULL OR group_id = ?1) "
	rc = each(st,
		  "SELECT group_id, digest_channel, digest_time, timezone FROM group_settings" GROUP_IS
		  "ORDER BY group_id",
		  group_id, settings_row, fns, ud);
	if (!rc)
		rc = each(st,
			  "SELECT group_id, member_id, name, first_seen FROM members" GROUP_IS
			  "ORDER BY group_id, member_id",
			  group_id, member_row, fns, ud);
	if (!rc)
		rc = each(st,
			  "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, p.note, "
			  "p.updated_at FROM progress p JOIN members m USING (group_id, member_id) "
			  "WHERE ?1 IS NULL OR p.group_id = ?1 "
			  "ORDER BY p.group_id, p.member_id, p.topic_id",
			  group_id, progress_row, fns, ud);
	if (!rc)
		rc = each(st,
			  "SELECT id, group_id, member_id, topic_id, old_status, new_status, note, at, "
			  "source_id, COALESCE(reverts, 0) FROM events" GROUP_IS "ORDER BY id",
			  group_id, event_row, fns, ud);
	if (!rc)
		rc = each(st,
			  "SELECT group_id, local_date, idem_key, recorded_at, COALESCE(sent_at, 0), "
			  "group_percent FROM digests" GROUP_IS "ORDER BY group_id, local_date",
			  group_id, digest_row, fns, ud);
	if (!rc)
		rc = each(st,
			  "SELECT group_id, local_date, member_id, rank, points FROM digest_ranks" GROUP_IS
			  "ORDER BY group_id, local_date, rank, member_id",
			  group_id, digest_rank_row, fns, ud);
#undef GROUP_IS
	exec_once(st, "COMMIT", "dumping the store", NULL);
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
	if (!sqlite3_get_autocommit(st->db))
		run(st, prep(st, S_ROLLBACK), "roll back a restore");
	return COHORT_OK;
}

/* Runs an ad-hoc insert whose binds fill() sets; a constraint is COHORT_ERR_DUPLICATE. */
static int insert_row(struct store *st, const char *text, void (*fill)(sqlite3_stmt *s, const void *v),
		      const void *v, const char *what)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, what);
	fill(s, v);
	int rc = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return COHORT_OK;
	if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
		return COHORT_ERR_DUPLICATE;
	return db_fail(st, what);
}

static void fill_settings(sqlite3_stmt *s, const void *v)
{
	const struct store_group_settings *g = v;
	bind_text(s, 1, g->group_id);
	bind_text(s, 2, g->digest_channel);
	bind_text(s, 3, g->digest_time);
	bind_text(s, 4, g->timezone);
}

int store_restore_settings(struct store *st, const struct store_group_settings *g)
{
	return insert_row(st,
			  "INSERT INTO group_settings (group_id, digest_channel, digest_time, "
			  "timezone) VALUES (?1, ?2, ?3, ?4)",
			  fill_settings, g, "restoring group settings");
}

static void fill_member(sqlite3_stmt *s, const void *v)
{
	const struct store_member *m = v;
	bind_text(s, 1, m->group_id);
	bind_text(s, 2, m->member_id);
	bind_text(s, 3, m->name);
	sqlite3_bind_int64(s, 4, m->first_seen);
}

int store_restore_member(struct store *st, const struct store_member *m)
{
	return insert_row(st,
			  "INSERT INTO members (group_id, member_id, name, first_seen) "
			  "VALUES (?1, ?2, ?3, ?4)",
			  fill_member, m, "restoring a member");
}

static void fill_progress(sqlite3_stmt *s, const void *v)
{
	const struct store_row *r = v;
	bind_text(s, 1, r->group_id);
	bind_text(s, 2, r->member_id);
	bind_text(s, 3, r->topic_id);
	bind_text(s, 4, store_status_name(r->status));
	bind_text(s, 5, r->note && *r->note ? r->note : NULL);
	sqlite3_bind_int64(s, 6, r->updated_at);
}

int store_restore_progress(struct store *st, const struct store_row *r)
{
	return insert_row(st,
			  "INSERT INTO progress (group_id, member_id, topic_id, status, note, "
			  "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			  fill_progress, r, "restoring progress");
}

static void fill_event(sqlite3_stmt *s, const void *v)
{
	const struct store_event *e = v;
	bind_text(s, 1, e->group_id);
	bind_text(s, 2, e->member_id);
	bind_text(s, 3, e->topic_id);
	bind_text(s, 4, store_status_name(e->from));
	bind_text(s, 5, store_status_name(e->to));
	bind_text(s, 6, e->note && *e->note ? e->note : NULL);
	sqlite3_bind_int64(s, 7, e->at);
	bind_text(s, 8, e->source_id);
	if (e->reverts)
		sqlite3_bind_int64(s, 9, e->reverts);
}

int store_restore_event(struct store *st, const struct store_event *e, int64_t *id)
{
	int rc = insert_row(st,
			    "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			    "new_status, note, at, source_id, reverts) "
			    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			    fill_event, e, "restoring an event");
	*id = rc ? 0 : sqlite3_last_insert_rowid(st->db);
	return rc;
}

static void fill_digest(sqlite3_stmt *s, const void *v)
{
	const struct store_digest_row *d = v;
	bind_text(s, 1, d->group_id);
	bind_text(s, 2, d->local_date);
	bind_text(s, 3, d->idem_key);
	sqlite3_bind_int64(s, 4, d->recorded_at);
	if (d->sent_at)
		sqlite3_bind_int64(s, 5, d->sent_at);
	sqlite3_bind_int(s, 6, d->group_percent);
}

int store_restore_digest(struct store *st, const struct store_digest_row *d)
{
	return insert_row(st,
			  "INSERT INTO digests (group_id, local_date, idem_key, recorded_at, sent_at, "
			  "group_percent) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			  fill_digest, d, "restoring a digest record");
}

static void fill_digest_rank(sqlite3_stmt *s, const void *v)
{
	const struct store_digest_rank_row *r = v;
	bind_text(s, 1, r->group_id);
	bind_text(s, 2, r->local_date);
	bind_text(s, 3, r->member_id);
	sqlite3_bind_int(s, 4, r->rank);
	sqlite3_bind_int(s, 5, r->points);
}

int store_restore_digest_rank(struct store *st, const struct store_digest_rank_row *r)
{
	return insert_row(st,
			  "INSERT INTO digest_ranks (group_id, local_date, member_id, rank, points) "
			  "VALUES (?1, ?2, ?3, ?4, ?5)",
			  fill_digest_rank, r, "restoring a digest ranking");
}
