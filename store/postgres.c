/*
 * The PostgreSQL backend (libpq): its connection, SQL dialect, schema and
 * migrations (under an advisory lock). See backend.h.
 *
 * Concurrency: several processes write one database. Transactions run at
 * READ COMMITTED with row locks: every change first upserts its member's
 * row (INSERT ... ON CONFLICT DO UPDATE locks the row even when nothing in
 * it changes), so changes by one member, whichever process makes them, run
 * one after another and each reads the other's committed progress. Shared
 * counters (a topic's counts, a member's week and month) change only by
 * single-statement upserts of "x = x + d", which PostgreSQL applies to the
 * newest row version under that row's lock: nothing is lost or counted
 * twice, and nothing needs a retry. A source event id is unique in the
 * events table: the database, not a process, decides it was applied.
 */
#include "backend.h"

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* pg_advisory_lock() key for schema migrations: "cohort" in ASCII. */
#define MIGRATE_LOCK "99111104111114116"
#define MAX_PARAMS 12

/*
 * The schema, as the SQLite one at version PG_BASE, in PostgreSQL's types.
 * Later versions add steps to pg_migrations.
 */
#define PG_BASE 4
static const char pg_schema[] =
	"CREATE TABLE members ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  first_seen BIGINT NOT NULL,"
	"  done_count INTEGER NOT NULL DEFAULT 0,"
	"  score_at BIGINT NOT NULL DEFAULT 0,"
	"  skipped_count INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (group_id, member_id));"
	"CREATE INDEX members_rank ON members (group_id, done_count DESC, score_at);"
	"CREATE INDEX members_name ON members (group_id, lower(name));"
	"CREATE TABLE events ("
	"  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  old_status TEXT NOT NULL CHECK (old_status IN ('none','in_progress','done','skipped')),"
	"  new_status TEXT NOT NULL CHECK (new_status IN ('none','in_progress','done','skipped')),"
	"  note TEXT,"
	"  at BIGINT NOT NULL,"
	"  source_id TEXT,"
	"  reverts BIGINT REFERENCES events (id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id));"
	"CREATE UNIQUE INDEX events_source ON events (source_id) WHERE source_id IS NOT NULL;"
	"CREATE UNIQUE INDEX events_reverts ON events (reverts) WHERE reverts IS NOT NULL;"
	"CREATE INDEX events_member ON events (group_id, member_id, id, new_status, at, reverts);"
	"CREATE INDEX events_time ON events (group_id, at);"
	"CREATE TABLE progress ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('in_progress','done','skipped')),"
	"  note TEXT,"
	"  updated_at BIGINT NOT NULL,"
	"  PRIMARY KEY (group_id, member_id, topic_id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id));"
	"CREATE INDEX progress_topic ON progress (group_id, topic_id, status, updated_at);"
	"CREATE TABLE group_settings ("
	"  group_id TEXT PRIMARY KEY,"
	"  digest_channel TEXT,"
	"  digest_time TEXT,"
	"  timezone TEXT);"
	"CREATE TABLE adapter_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE period_scores ("
	"  group_id TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  period INTEGER NOT NULL CHECK (period IN (1, 2)),"
	"  start BIGINT NOT NULL,"
	"  points INTEGER NOT NULL,"
	"  reached_at BIGINT NOT NULL,"
	"  PRIMARY KEY (group_id, period, start, member_id),"
	"  FOREIGN KEY (group_id, member_id) REFERENCES members (group_id, member_id));"
	"CREATE INDEX period_rank ON period_scores (group_id, period, start, points DESC, "
	"reached_at);"
	"CREATE TABLE topic_counts ("
	"  group_id TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  done INTEGER NOT NULL DEFAULT 0,"
	"  in_progress INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (group_id, topic_id));"
	"CREATE TABLE digests ("
	"  group_id TEXT NOT NULL,"
	"  local_date TEXT NOT NULL,"
	"  idem_key TEXT NOT NULL,"
	"  recorded_at BIGINT NOT NULL,"
	"  sent_at BIGINT,"
	"  group_percent INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, local_date));"
	"CREATE TABLE digest_ranks ("
	"  group_id TEXT NOT NULL,"
	"  local_date TEXT NOT NULL,"
	"  member_id TEXT NOT NULL,"
	"  rank INTEGER NOT NULL,"
	"  points INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, local_date, member_id),"
	"  FOREIGN KEY (group_id, local_date) REFERENCES digests (group_id, local_date));"
	"CREATE TABLE roadmap_topics (topic_id TEXT PRIMARY KEY);"
	"CREATE TABLE roadmap_fingerprint (one INTEGER PRIMARY KEY CHECK (one = 1), "
	"value TEXT NOT NULL);";

/*
 * The group's page's activity (store_group_activity()), derived from the log: per
 * 15-minute bucket of Unix time, finishes (an undo of a finish takes one back) and
 * the net change of done topics on the roadmap.
 */
#define ACTIVITY_FILL_V8                                                                              \
	"INSERT INTO group_activity (group_id, bucket, finished, net) "                            \
	"SELECT group_id, at / 900000, "                                                           \
	"SUM(CASE WHEN new_status = 'done' AND reverts IS NULL THEN 1 ELSE 0 END) - "              \
	"SUM(CASE WHEN old_status = 'done' AND reverts IS NOT NULL THEN 1 ELSE 0 END), "           \
	"SUM(CASE WHEN new_status = 'done' THEN 1 ELSE 0 END) - "                                  \
	"SUM(CASE WHEN old_status = 'done' THEN 1 ELSE 0 END) "                                    \
	"FROM events WHERE (new_status = 'done' OR old_status = 'done') AND "                      \
	"(topic_id IN (SELECT topic_id FROM roadmap_topics) OR "                                   \
	"NOT EXISTS (SELECT 1 FROM roadmap_topics)) "                                              \
	"GROUP BY group_id, at / 900000"

/*
 * pg_migrations[i] takes the schema from version PG_BASE + i to PG_BASE + i + 1,
 * the same steps as SQLite's migrations of those numbers, in one transaction.
 */
static const char *const pg_migrations[] = {
	/* 5: leases (store_lease_take): who holds a named claim, until when (Unix ms). */
	"CREATE TABLE leases ("
	"  name TEXT PRIMARY KEY,"
	"  holder TEXT NOT NULL,"
	"  expires_at BIGINT NOT NULL);",
	/* 6: goals (/goal, bot/goal.c) and who reached them. */
	GOALS_SCHEMA("", "BIGINT"),
	/* 7: the group's page: its capability token, and whether it is served. */
	"CREATE TABLE dashboards ("
	"  group_id TEXT PRIMARY KEY,"
	"  token TEXT NOT NULL UNIQUE,"
	"  enabled INTEGER NOT NULL CHECK (enabled = 0 OR enabled = 1),"
	"  changed_at BIGINT NOT NULL);",
	/* 8: the group's activity over time (see sqlite.c). */
	"CREATE TABLE group_activity ("
	"  group_id TEXT NOT NULL,"
	"  bucket BIGINT NOT NULL,"
	"  finished INTEGER NOT NULL,"
	"  net INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, bucket));" ACTIVITY_FILL_V8 ";",
	/* 9: the outbox (store_outbox_*): answers owed, delivered once. */
	"CREATE TABLE outbox ("
	"  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  platform TEXT NOT NULL,"
	"  source_id TEXT,"
	"  address TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  created_at BIGINT NOT NULL,"
	"  holder TEXT,"
	"  lease_until BIGINT NOT NULL DEFAULT 0,"
	"  done_at BIGINT,"
	"  outcome TEXT);"
	"CREATE UNIQUE INDEX outbox_source ON outbox (source_id) WHERE source_id IS NOT NULL;"
	"CREATE INDEX outbox_owed ON outbox (platform, lease_until, id) WHERE done_at IS NULL;",
	/* 10: shared rates (store_rate_take): the units of one second used so far. */
	"CREATE TABLE rate_windows ("
	"  name TEXT PRIMARY KEY,"
	"  second BIGINT NOT NULL,"
	"  used INTEGER NOT NULL);",
	/* 11: who made a change when it was not the member (an admin's /fix). */
	EVENTS_ACTOR_SCHEMA,
	/* 12: reminders (/remind, bot/remind.c) and the local dates sent. */
	REMIND_SCHEMA("", "BIGINT"),
	/*
	 * 13: the period ranking's index ends with member_id, the last key of its
	 * ORDER BY, so the top of a week or month is read off the index (and the
	 * rank counted in it) instead of sorting every member of the period.
	 */
	"DROP INDEX period_rank;"
	"CREATE INDEX period_rank ON period_scores (group_id, period, start, points DESC, "
	"reached_at, member_id);",
	/* 14: how often the group's digest is posted: "weekdays", "weekly monday"; NULL: daily. */
	"ALTER TABLE group_settings ADD COLUMN digest_every TEXT;",
	/* 15: links (/link): one-time codes, wrong codes typed, member links, their log. */
	LINK_SCHEMA("", "BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
	/* 16: group links (/link group): a group recorded as another. */
	GROUP_LINK_SCHEMA("", "BIGINT"),
	/* 17: a roadmap per group (see sqlite.c). */
	"CREATE TABLE roadmaps ("
	"  name TEXT PRIMARY KEY,"
	"  is_default INTEGER NOT NULL CHECK (is_default = 0 OR is_default = 1));"
	"INSERT INTO roadmaps (name, is_default) SELECT '', 1 "
	"  WHERE EXISTS (SELECT 1 FROM roadmap_topics);"
	"ALTER TABLE roadmap_topics ADD COLUMN roadmap TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE roadmap_topics DROP CONSTRAINT roadmap_topics_pkey;"
	"ALTER TABLE roadmap_topics ADD PRIMARY KEY (roadmap, topic_id);"
	"ALTER TABLE roadmap_topics ALTER COLUMN roadmap DROP DEFAULT;"
	"CREATE TABLE group_roadmap ("
	"  group_id TEXT PRIMARY KEY,"
	"  roadmap TEXT NOT NULL,"
	"  changed_at BIGINT NOT NULL);",
};

/* Every member's score derived again from progress (S_RECOUNT_GROUP: of one group). */
#define RECOUNT_MEMBERS \
	"UPDATE members SET " \
	"done_count = (SELECT COUNT(*) FROM progress p WHERE " \
	"p.group_id = members.group_id AND p.member_id = members.member_id " \
	"AND p.status = 'done' AND " ON_ROADMAP("p.group_id", "p.topic_id") "), " \
	"skipped_count = (SELECT COUNT(*) FROM progress p WHERE " \
	"p.group_id = members.group_id AND p.member_id = members.member_id " \
	"AND p.status = 'skipped' AND " ON_ROADMAP("p.group_id", "p.topic_id") "), " \
	"score_at = (SELECT COALESCE(MAX(p.updated_at), 0) FROM progress p " \
	"WHERE p.group_id = members.group_id AND " \
	"p.member_id = members.member_id AND p.status = 'done' AND " \
	ON_ROADMAP("p.group_id", "p.topic_id") ")"

#define LIVE_EVENT                                                                                 \
	"e.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.reverts = e.id)"

/* Parameters are typed where PostgreSQL could not tell a type from the context. */

static const char *const sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT change",
	[S_RELEASE] = "RELEASE change",
	[S_ROLLBACK_TO] = "ROLLBACK TO change",
	[S_READ_BEGIN] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	[S_READ_END] = "COMMIT",
	[S_EVENT_COUNT] = "SELECT count(*) FROM events",
	[S_SOURCE_SEEN] = "SELECT 1 FROM events WHERE source_id = $1",
	[S_UPSERT_MEMBER] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			    "VALUES ($1, $2, $3, $4) "
			    "ON CONFLICT (group_id, member_id) DO UPDATE SET name = excluded.name "
			    "WHERE members.name IS DISTINCT FROM excluded.name",
	[S_GET_STATUS] = "SELECT status, updated_at FROM progress "
			 "WHERE group_id = $1 AND member_id = $2 AND topic_id = $3",
	[S_INSERT_EVENT] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			   "new_status, note, at, source_id, reverts, actor_id, actor_name, removal) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
	[S_DELETE_PROGRESS] = "DELETE FROM progress "
			      "WHERE group_id = $1 AND member_id = $2 AND topic_id = $3",
	[S_UPSERT_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, note, "
			      "updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
			      "ON CONFLICT (group_id, member_id, topic_id) DO UPDATE SET "
			      "status = excluded.status, note = excluded.note, "
			      "updated_at = excluded.updated_at",
	[S_ADD_DONE] =
		"UPDATE members SET done_count = done_count + $3::integer, score_at = CASE "
		"WHEN $3::integer > 0 THEN GREATEST(score_at, $4::bigint) ELSE (SELECT "
		"COALESCE(MAX(updated_at), 0) FROM progress p WHERE p.group_id = $1 AND "
		"p.member_id = $2 AND p.status = 'done' AND " ON_ROADMAP("p.group_id", "p.topic_id") ") END "
		"WHERE group_id = $1 AND member_id = $2",
	[S_LAST_EVENT] = "SELECT id, topic_id, old_status, new_status FROM events e "
			 "WHERE group_id = $1 AND member_id = $2 AND actor_id IS NULL AND "
			 LIVE_EVENT " AND NOT EXISTS (SELECT 1 FROM events f "
			 "WHERE f.group_id = e.group_id AND f.member_id = e.member_id AND "
			 "f.id > e.id AND f.topic_id = e.topic_id AND f.actor_id IS NOT NULL AND "
			 "f.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events v "
			 "WHERE v.reverts = f.id)) ORDER BY id DESC LIMIT 1",
	[S_LAST_FIX] = "SELECT id, member_id, at, COALESCE(removal, 0), topic_id, old_status, "
		       "new_status FROM events e "
		       "WHERE group_id = $1 AND actor_id = $2 AND " LIVE_EVENT " AND "
		       NOT_SUPERSEDED " ORDER BY id DESC LIMIT 1",
	[S_NAME_COUNT] = "SELECT count(*) FROM members WHERE group_id = $1 "
			 "AND lower(name) = lower($2)",
	[S_CORRECTED] = "SELECT e.member_id, e.topic_id, e.actor_name FROM events e "
			"WHERE e.group_id = $1 AND e.actor_id IS NOT NULL AND "
			"($2::text IS NULL OR e.member_id = $2::text) AND ($3::text IS NULL OR e.topic_id = $3::text) "
			"AND e.new_status <> 'none' AND " LIVE_EVENT " AND NOT EXISTS (SELECT 1 "
			"FROM events l WHERE l.group_id = e.group_id AND l.member_id = e.member_id "
			"AND l.topic_id = e.topic_id AND l.id > e.id AND l.reverts IS NULL AND "
			"NOT EXISTS (SELECT 1 FROM events v WHERE v.reverts = l.id)) "
			"ORDER BY e.member_id, e.id",
	[S_FIX_EVENTS] = "SELECT id, topic_id, old_status, new_status FROM events e "
			 "WHERE group_id = $1 AND member_id = $2 AND actor_id = $3 AND removal = 1 AND "
			 "at = $4::bigint AND " LIVE_EVENT " AND " NOT_SUPERSEDED " ORDER BY id DESC",
	[S_PRIOR_EVENT] = "SELECT note, at FROM events e "
			  "WHERE group_id = $1 AND member_id = $2 AND topic_id = $3 AND id < $4 "
			  "AND new_status = $5 AND " LIVE_EVENT " ORDER BY id DESC LIMIT 1",
	[S_MEMBER_PROGRESS] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
			      "p.note, p.updated_at FROM progress p JOIN members m "
			      "USING (group_id, member_id) "
			      "WHERE p.group_id = $1 AND p.member_id = $2",
	[S_TOPIC_PROGRESS] =
		"SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
		"p.note, p.updated_at FROM progress p "
		"JOIN members m ON m.group_id = p.group_id AND m.member_id = p.member_id "
		"WHERE p.group_id = $1 AND p.topic_id = $2 AND p.status = $3 "
		"ORDER BY p.updated_at LIMIT $4",
	[S_EXPORT] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, p.note, "
		     "p.updated_at FROM progress p JOIN members m USING (group_id, member_id) "
		     "WHERE $1::text IS NULL OR p.group_id = $1 "
		     "ORDER BY p.group_id, p.member_id, p.topic_id",
	[S_TOPIC_COUNTS] =
		"SELECT topic_id, done, in_progress FROM topic_counts WHERE group_id = $1 "
		"AND (done > 0 OR in_progress > 0)",
	[S_GROUP_TOTALS] = "SELECT COUNT(*), COALESCE(SUM(done_count + skipped_count), 0) "
			   "FROM members WHERE group_id = $1",
	[S_ADD_SKIPPED] = "UPDATE members SET skipped_count = skipped_count + $3::integer "
			  "WHERE group_id = $1 AND member_id = $2",
	[S_TOPIC_COUNT] = "SELECT topic_id, done, in_progress FROM topic_counts "
			  "WHERE group_id = $1 AND topic_id = $2",
	[S_ADD_TOPIC_COUNTS] =
		"INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
		"VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic_id) DO UPDATE SET "
		"done = topic_counts.done + excluded.done, in_progress = topic_counts.in_progress + "
		"excluded.in_progress",
	[S_RANK_ALL] = "SELECT r.member_id, r.name, r.points, r.reached_at, "
		       "(SELECT COUNT(*) FROM members x WHERE x.group_id = $1 "
		       "AND x.done_count > r.points) + 1 "
		       "FROM (SELECT * FROM (SELECT member_id, name, done_count AS points, "
		       "score_at AS reached_at FROM members WHERE group_id = $1 AND done_count > 0 "
		       "ORDER BY done_count DESC, score_at, member_id LIMIT $2) top "
		       "UNION SELECT member_id, name, done_count, score_at FROM members "
		       "WHERE group_id = $1 AND member_id = $3 AND done_count > 0) r "
		       "ORDER BY r.points DESC, r.reached_at, r.member_id",
	[S_RANK_PERIOD] =
		"SELECT r.member_id, r.name, r.points, r.reached_at, "
		"(SELECT COUNT(*) FROM period_scores x WHERE x.group_id = $1 "
		"AND x.period = $4 AND x.start = $5 AND x.points > r.points) + 1 "
		"FROM (SELECT * FROM (SELECT s.member_id, m.name, s.points, s.reached_at "
		"FROM period_scores s JOIN members m "
		"ON m.group_id = s.group_id AND m.member_id = s.member_id "
		"WHERE s.group_id = $1 AND s.period = $4 AND s.start = $5 AND s.points > 0 "
		"ORDER BY s.points DESC, s.reached_at, s.member_id LIMIT $2) top "
		"UNION SELECT s.member_id, m.name, s.points, s.reached_at "
		"FROM period_scores s JOIN members m "
		"ON m.group_id = s.group_id AND m.member_id = s.member_id "
		"WHERE s.group_id = $1 AND s.period = $4 AND s.start = $5 "
		"AND s.member_id = $3 AND s.points > 0) r "
		"ORDER BY r.points DESC, r.reached_at, r.member_id",
	[S_PERIOD_ADD] = "INSERT INTO period_scores (group_id, member_id, period, start, points, "
			 "reached_at) VALUES ($1, $2, $3, $4, $5, $6) "
			 "ON CONFLICT (group_id, period, start, member_id) DO UPDATE SET "
			 "points = period_scores.points + excluded.points, reached_at = CASE "
			 "WHEN excluded.points > 0 THEN GREATEST(period_scores.reached_at, "
			 "excluded.reached_at) "
			 "ELSE (SELECT COALESCE(MAX(p.updated_at), 0) FROM progress p "
			 "WHERE p.group_id = $1 AND p.member_id = $2 AND p.status = 'done' "
			 "AND p.updated_at >= $4 AND p.updated_at < $7::bigint AND "
			 ON_ROADMAP("p.group_id", "p.topic_id") ") END",
	[S_PERIOD_CLEAR] = "DELETE FROM period_scores WHERE $1::text IS NULL OR group_id = $1",
	[S_DONE_ROWS] =
		"SELECT p.group_id, p.member_id, p.updated_at, s.timezone FROM progress p "
		"LEFT JOIN group_settings s ON s.group_id = p.group_id "
		"WHERE p.status = 'done' AND ($1::text IS NULL OR p.group_id = $1) AND "
		ON_ROADMAP("p.group_id", "p.topic_id") " ORDER BY p.group_id, p.member_id, p.updated_at",
	[S_DONE_TIMES] = "SELECT at FROM events e "
			 "WHERE group_id = $1 AND member_id = $2 "
			 "AND new_status = 'done' AND " LIVE_EVENT " AND "
			 ON_ROADMAP("e.group_id", "e.topic_id") " ORDER BY id DESC",
	[S_ACTIVITY] = "SELECT e.member_id, m.name, e.topic_id, e.old_status, e.new_status, e.at, "
		       "m.first_seen, e.id, e.actor_name "
		       "FROM events e JOIN members m USING (group_id, member_id) "
		       "WHERE e.group_id = $1 AND e.at >= $2 AND e.at < $3 AND " LIVE_EVENT " "
		       "ORDER BY e.member_id, e.id",
	[S_FIND_MEMBER] = "SELECT member_id, name FROM members WHERE group_id = $1 "
			  "AND (member_id = $2 OR member_id = (SELECT canonical_id FROM member_links "
			  "WHERE member_id = $2) OR lower(name) = lower($2)) "
			  "ORDER BY member_id = $2 DESC, name LIMIT 1",
	[S_GET_SETTINGS] = "SELECT digest_channel, digest_time, timezone, digest_every "
			   "FROM group_settings "
			   "WHERE group_id = $1",
	[S_GROUP_ZONE] = "SELECT timezone FROM group_settings WHERE group_id = $1",
	[S_SET_CHANNEL] =
		"INSERT INTO group_settings (group_id, digest_channel) VALUES ($1, $2) "
		"ON CONFLICT (group_id) DO UPDATE SET digest_channel = excluded.digest_channel",
	[S_SET_TIME] = "INSERT INTO group_settings (group_id, digest_time, timezone) "
		       "VALUES ($1, $2, $3) ON CONFLICT (group_id) DO UPDATE SET "
		       "digest_time = excluded.digest_time, "
		       "timezone = COALESCE(excluded.timezone, group_settings.timezone)",
	[S_STATE_GET] = "SELECT value FROM adapter_state WHERE key = $1",
	[S_STATE_SET] = "INSERT INTO adapter_state (key, value) VALUES ($1, $2) "
			"ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[S_STATE_DELETE] = "DELETE FROM adapter_state WHERE key = $1",
	[S_STATE_LIST] = "SELECT key, value FROM adapter_state "
			 "WHERE substr(key, 1, length($1::text)) = $1::text ORDER BY key",
	[S_DEFAULT_CHANNEL] =
		"INSERT INTO group_settings (group_id, digest_channel) VALUES ($1, $2) "
		"ON CONFLICT (group_id) DO NOTHING",
	[S_DIGEST_GROUPS] = "SELECT group_id, digest_channel, digest_time, timezone, digest_every "
			    "FROM group_settings WHERE digest_channel IS NOT NULL ORDER BY group_id",
	[S_SET_EVERY] = "INSERT INTO group_settings (group_id, digest_every) VALUES ($1, $2) "
			"ON CONFLICT (group_id) DO UPDATE SET digest_every = excluded.digest_every",
	[S_DIGEST_GET] = "SELECT local_date, idem_key, recorded_at, sent_at, group_percent "
			 "FROM digests WHERE group_id = $1 AND local_date = $2",
	[S_DIGEST_PREVIOUS] = "SELECT local_date, idem_key, recorded_at, sent_at, group_percent "
			      "FROM digests WHERE group_id = $1 AND local_date < $2 "
			      "ORDER BY local_date DESC LIMIT 1",
	[S_DIGEST_INSERT] = "INSERT INTO digests (group_id, local_date, idem_key, recorded_at, "
			    "group_percent) VALUES ($1, $2, $3, $4, $5)",
	[S_DIGEST_RANK_INSERT] = "INSERT INTO digest_ranks (group_id, local_date, member_id, rank, "
				 "points) VALUES ($1, $2, $3, $4, $5)",
	[S_DIGEST_SENT] = "UPDATE digests SET sent_at = $3 WHERE group_id = $1 AND local_date = $2",
	[S_DIGEST_RANKS] = "SELECT member_id, rank, points FROM digest_ranks "
			   "WHERE group_id = $1 AND local_date = $2 ORDER BY rank",
	[S_ON_ROADMAP] = "SELECT (" ON_ROADMAP("$2::text", "$1::text") ")::integer",
	[S_GROUPS] = "SELECT group_id FROM members UNION "
		     "SELECT group_id FROM group_settings ORDER BY 1",
	[S_TOPIC_TOTALS] = "SELECT topic_id, COUNT(*), COUNT(*) FILTER (WHERE status = 'done') "
			   "FROM progress GROUP BY topic_id ORDER BY topic_id",
	[S_RENAME_PROGRESS] =
		"UPDATE progress SET topic_id = $2 WHERE topic_id = $1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = progress.group_id AND "
		"q.member_id = progress.member_id AND q.topic_id = $2) AND "
		"($4::text IS NULL OR group_id = $4) AND " GROUP_ROADMAP("progress.group_id")
		" = $3::text",
	[S_RENAME_EVENTS] =
		"UPDATE events SET topic_id = $2 WHERE topic_id = $1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = events.group_id AND "
		"q.member_id = events.member_id AND q.topic_id = $1) AND "
		"($4::text IS NULL OR group_id = $4) AND " GROUP_ROADMAP("events.group_id")
		" = $3::text",
	[S_FINGERPRINT_GET] = "SELECT value FROM roadmap_fingerprint",
	[S_FINGERPRINT_SET] = "INSERT INTO roadmap_fingerprint (one, value) VALUES (1, $1) "
			      "ON CONFLICT (one) DO UPDATE SET value = excluded.value",
	/*
	 * Rederiving every score first waits for the changes in flight and holds
	 * off new ones (each change writes members): a recount at READ COMMITTED
	 * beside them would miss a change committed while it ran. It also makes
	 * processes starting together rederive in turn.
	 */
	[S_LOCK_DERIVED] = "LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE",
	[S_ROADMAP_CLEAR] = "DELETE FROM roadmap_topics",
	[S_ROADMAP_ADD] = "INSERT INTO roadmap_topics (roadmap, topic_id) VALUES ($1, $2) "
			  "ON CONFLICT (roadmap, topic_id) DO NOTHING",
	[S_ROADMAPS_CLEAR] = "DELETE FROM roadmaps",
	[S_ROADMAPS_ADD] = "INSERT INTO roadmaps (name, is_default) VALUES ($1, $2)",
	[S_GROUP_ROADMAP_GET] = "SELECT roadmap FROM group_roadmap WHERE group_id = $1",
	[S_GROUP_ROADMAP_SET] = "INSERT INTO group_roadmap (group_id, roadmap, changed_at) "
				"VALUES ($1, $2, $3) ON CONFLICT (group_id) DO UPDATE SET "
				"roadmap = excluded.roadmap, changed_at = excluded.changed_at",
	[S_GROUP_ROADMAP_DELETE] = "DELETE FROM group_roadmap WHERE group_id = $1",
	[S_DUMP_GROUP_ROADMAPS] = "SELECT group_id, roadmap, changed_at FROM group_roadmap "
				  "WHERE $1::text IS NULL OR group_id = $1 ORDER BY group_id",
	[S_GROUP_TOPIC_TOTALS] = "SELECT topic_id, COUNT(*), COUNT(*) FILTER (WHERE status = "
				 "'done'), group_id FROM progress GROUP BY group_id, topic_id "
				 "ORDER BY group_id, topic_id",
	[S_RESTORE_GROUP_ROADMAP] = "INSERT INTO group_roadmap (group_id, roadmap, changed_at) "
				    "VALUES ($1, $2, $3)",
	[S_RECOUNT_MEMBERS] = RECOUNT_MEMBERS " WHERE $1::text IS NULL OR group_id = $1",
	[S_TOPIC_COUNTS_CLEAR] = "DELETE FROM topic_counts",
	[S_TOPIC_COUNTS_FILL] = "INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
				"SELECT group_id, topic_id, COUNT(*) FILTER (WHERE status = "
				"'done'), COUNT(*) FILTER (WHERE status = 'in_progress') "
				"FROM progress GROUP BY group_id, topic_id",
#define GROUP_IS " WHERE ($1::text IS NULL OR group_id = $1) "
	[S_DUMP_SETTINGS] = "SELECT group_id, digest_channel, digest_time, timezone, "
			    "digest_every FROM group_settings" GROUP_IS "ORDER BY group_id",
	[S_DUMP_MEMBERS] = "SELECT group_id, member_id, name, first_seen FROM members" GROUP_IS
			   "ORDER BY group_id, member_id",
	[S_DUMP_PROGRESS] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
			    "p.note, p.updated_at FROM progress p JOIN members m "
			    "USING (group_id, member_id) WHERE $1::text IS NULL OR p.group_id = $1 "
			    "ORDER BY p.group_id, p.member_id, p.topic_id",
	[S_DUMP_EVENTS] = "SELECT id, group_id, member_id, topic_id, old_status, new_status, "
			  "note, at, source_id, COALESCE(reverts, 0), actor_id, actor_name, "
			  "COALESCE(removal, 0) "
			  "FROM events" GROUP_IS
			  "ORDER BY id",
	[S_DUMP_DIGESTS] = "SELECT group_id, local_date, idem_key, recorded_at, "
			   "COALESCE(sent_at, 0), group_percent FROM digests" GROUP_IS
			   "ORDER BY group_id, local_date",
	[S_DUMP_DIGEST_RANKS] = "SELECT group_id, local_date, member_id, rank, points "
				"FROM digest_ranks" GROUP_IS
				"ORDER BY group_id, local_date, rank, member_id",
#undef GROUP_IS
	[S_RESTORE_SETTINGS] = "INSERT INTO group_settings (group_id, digest_channel, "
			       "digest_time, timezone, digest_every) "
			       "VALUES ($1, $2, $3, $4, $5)",
	[S_RESTORE_MEMBER] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			     "VALUES ($1, $2, $3, $4)",
	[S_RESTORE_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, "
			       "note, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
	[S_RESTORE_EVENT] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			    "new_status, note, at, source_id, reverts, actor_id, actor_name, removal) "
			    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
			    "RETURNING id",
	[S_RESTORE_DIGEST] = "INSERT INTO digests (group_id, local_date, idem_key, recorded_at, "
			     "sent_at, group_percent) VALUES ($1, $2, $3, $4, $5, $6)",
	[S_RESTORE_DIGEST_RANK] = "INSERT INTO digest_ranks (group_id, local_date, member_id, "
				  "rank, points) VALUES ($1, $2, $3, $4, $5)",
/*
 * The server's clock (the statement's start, the same everywhere in it) decides
 * expiry. INSERT ... ON CONFLICT DO UPDATE locks the lease's row and checks
 * WHERE against its newest committed version, so at READ COMMITTED two
 * processes taking one lease at once are served one after the other: one
 * gets a row back, the other none.
 */
#define NOW_MS "(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
	[S_LEASE_TAKE] = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, " NOW_MS
			 " + $3::bigint) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
			 "expires_at = excluded.expires_at WHERE leases.expires_at <= " NOW_MS
			 " OR ($4::integer = 1 AND leases.holder = excluded.holder) "
			 "RETURNING holder, expires_at - " NOW_MS,
	[S_LEASE_GET] = "SELECT holder, expires_at - " NOW_MS " FROM leases WHERE name = $1",
	[S_LEASE_RELEASE] = "DELETE FROM leases WHERE name = $1 AND holder = $2",
	[S_LEASE_TAKE_OVER] = "UPDATE leases SET holder = $3, expires_at = " NOW_MS " + $4::bigint "
			      "WHERE name = $1 AND holder = $2",
	[S_LEASE_PRUNE] = "DELETE FROM leases WHERE expires_at < " NOW_MS " - $1::bigint",
	/* As a lease: the upsert locks the row, and its WHERE sees the newest count. */
	[S_RATE_TAKE] = "INSERT INTO rate_windows (name, second, used) VALUES ($1, " NOW_MS
			" / 1000, $2::integer) ON CONFLICT (name) DO UPDATE SET second = "
			"excluded.second, used = CASE WHEN rate_windows.second = excluded.second "
			"THEN rate_windows.used + $2::integer ELSE $2::integer END "
			"WHERE rate_windows.second <> excluded.second OR "
			"rate_windows.used + $2::integer <= $3::integer RETURNING 1000 - " NOW_MS
			" % 1000",
	[S_RATE_WAIT] = "SELECT 1000 - " NOW_MS " % 1000",
#undef NOW_MS
	[S_GOAL_SET] = "INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		       "set_at, set_by, set_by_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
		       "ON CONFLICT (group_id, member_id) DO UPDATE SET "
		       "target_kind = excluded.target_kind, target_id = excluded.target_id, "
		       "due_date = excluded.due_date, set_at = excluded.set_at, "
		       "set_by = excluded.set_by, set_by_name = excluded.set_by_name",
	[S_GOAL_UNMARK] = "DELETE FROM goal_reached WHERE group_id = $1 AND goal_member = $2",
	[S_GOAL_DELETE] = "DELETE FROM goals WHERE group_id = $1 AND member_id = $2",
	[S_GOALS] = "SELECT g.group_id, g.member_id, g.target_kind, g.target_id, g.due_date, "
		    "g.set_at, g.set_by, g.set_by_name, COALESCE(r.reached_at, 0) FROM goals g "
		    "LEFT JOIN goal_reached r ON r.group_id = g.group_id AND "
		    "r.goal_member = g.member_id AND r.member_id = COALESCE($2::text, g.member_id) "
		    "WHERE g.group_id = $1 AND ($2::text IS NULL OR g.member_id = $2::text OR "
		    "g.member_id = '') ORDER BY g.member_id = '', g.member_id",
	[S_GOAL_MARK] = "INSERT INTO goal_reached (group_id, goal_member, member_id, reached_at) "
			"SELECT $1::text, $2::text, $3::text, $4::bigint WHERE EXISTS (SELECT 1 "
			"FROM goals WHERE group_id = $1::text AND member_id = $2::text AND "
			"set_at = $5::bigint) ON CONFLICT (group_id, goal_member, member_id) "
			"DO NOTHING",
	[S_GOAL_MARKS] = "SELECT r.goal_member, r.member_id, COALESCE(m.name, g.set_by_name), "
			 "r.reached_at, g.target_kind, g.target_id, g.due_date "
			 "FROM goal_reached r JOIN goals g ON g.group_id = r.group_id AND "
			 "g.member_id = r.goal_member LEFT JOIN members m ON "
			 "m.group_id = r.group_id AND m.member_id = r.member_id "
			 "WHERE r.group_id = $1 AND r.reached_at >= $2 AND r.reached_at < $3 "
			 "ORDER BY r.reached_at, r.member_id",
	[S_DUMP_GOALS] = "SELECT group_id, member_id, target_kind, target_id, due_date, set_at, "
			 "set_by, set_by_name FROM goals WHERE $1::text IS NULL OR group_id = $1 "
			 "ORDER BY group_id, member_id",
	[S_DUMP_GOAL_MARKS] = "SELECT group_id, goal_member, member_id, reached_at "
			      "FROM goal_reached WHERE $1::text IS NULL OR group_id = $1 "
			      "ORDER BY group_id, goal_member, member_id",
	[S_RESTORE_GOAL] = "INSERT INTO goals (group_id, member_id, target_kind, target_id, "
			   "due_date, set_at, set_by, set_by_name) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	[S_RESTORE_GOAL_MARK] = "INSERT INTO goal_reached (group_id, goal_member, member_id, "
				"reached_at) VALUES ($1, $2, $3, $4)",
	[S_DASHBOARD_GET] = "SELECT token, enabled FROM dashboards WHERE group_id = $1",
	[S_DASHBOARD_SET] = "INSERT INTO dashboards (group_id, token, enabled, changed_at) "
			    "VALUES ($1, $2, $3, $4) ON CONFLICT (group_id) DO UPDATE SET "
			    "token = excluded.token, enabled = excluded.enabled, "
			    "changed_at = excluded.changed_at",
	[S_DASHBOARD_GROUP] = "SELECT group_id FROM dashboards WHERE token = $1 AND enabled = 1",
	/* From the newest change back (events_time), the finishes whose record is still that one. */
	[S_RECENT_DONE] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, p.note, "
			  "p.updated_at FROM events e JOIN progress p ON p.group_id = e.group_id AND "
			  "p.member_id = e.member_id AND p.topic_id = e.topic_id "
			  "JOIN members m ON m.group_id = p.group_id AND m.member_id = p.member_id "
			  "WHERE e.group_id = $1 AND e.new_status = 'done' AND p.status = 'done' AND "
			  "p.updated_at = e.at AND " ON_ROADMAP("p.group_id", "p.topic_id")
			  " ORDER BY e.at DESC LIMIT $2",
	[S_ACTIVITY_ADD] = "INSERT INTO group_activity (group_id, bucket, finished, net) "
			   "VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, bucket) DO UPDATE SET "
			   "finished = group_activity.finished + excluded.finished, "
			   "net = group_activity.net + excluded.net",
	[S_ACTIVITY_CLEAR] = "DELETE FROM group_activity WHERE $1::text IS NULL OR group_id = $1",
	[S_ACTIVITY_FILL] = ACTIVITY_REFILL("$1::text"),
	[S_ACTIVITY_READ] = "SELECT bucket, finished, net FROM group_activity "
			    "WHERE group_id = $1 AND bucket >= $2 ORDER BY bucket",
	[S_ACTIVITY_BEFORE] = "SELECT COALESCE(SUM(net), 0) FROM group_activity "
			      "WHERE group_id = $1 AND bucket < $2",
	[S_OUTBOX_ANSWERED] = "SELECT done_at IS NOT NULL FROM outbox WHERE source_id = $1",
	[S_OUTBOX_PUT] = "INSERT INTO outbox (platform, source_id, address, body, created_at, "
			 "holder, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
	/* SKIP LOCKED: a row another process is claiming this moment is left to it. */
	[S_OUTBOX_CLAIM] = "UPDATE outbox SET holder = $2, lease_until = $3 WHERE id IN ("
			   "SELECT id FROM outbox WHERE done_at IS NULL AND platform = $1 AND "
			   "lease_until <= $4 ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) "
			   "RETURNING id, platform, source_id, address, body, created_at",
	[S_OUTBOX_RENEW] = "UPDATE outbox SET lease_until = $2 WHERE holder = $1 AND "
			   "done_at IS NULL",
	[S_OUTBOX_DONE] = "UPDATE outbox SET done_at = $2, outcome = $3, body = '' "
			  "WHERE id = $1 AND done_at IS NULL",
	[S_OUTBOX_RELEASE] = "UPDATE outbox SET holder = NULL, lease_until = 0 WHERE id = $1 "
			     "AND done_at IS NULL",
	[S_OUTBOX_OWED] = "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
	[S_REMIND_SET] = "INSERT INTO reminders (group_id, member_id, at, set_at) VALUES "
			 "($1, $2, $3, $4) ON CONFLICT (group_id, member_id) DO UPDATE SET "
			 "at = excluded.at, set_at = excluded.set_at",
	[S_REMIND_GET] = "SELECT at FROM reminders WHERE group_id = $1 AND member_id = $2",
	[S_REMIND_DELETE] = "DELETE FROM reminders WHERE group_id = $1 AND member_id = $2",
	[S_REMINDERS] = "SELECT group_id, member_id, at, set_at FROM reminders "
			"WHERE $1::text IS NULL OR group_id = $1 ORDER BY group_id, member_id",
	[S_REMIND_RECORD] = "INSERT INTO reminders_sent (group_id, member_id, local_date, idem_key, "
			    "recorded_at) VALUES ($1, $2, $3, $4, $5) "
			    "ON CONFLICT (group_id, member_id, local_date) DO NOTHING",
	[S_LINK_CODE_PUT] = "INSERT INTO link_codes (code_hash, kind, owner_id, created_at, "
			    "expires_at) VALUES ($1, $2, $3, $4, $5)",
	[S_LINK_CODE_GET] = "SELECT kind, owner_id, expires_at, used_at FROM link_codes "
			    "WHERE code_hash = $1",
	[S_LINK_CODE_USE] = "UPDATE link_codes SET used_at = $2 WHERE code_hash = $1 "
			    "AND kind = $3 AND used_at IS NULL AND expires_at > $2",
	[S_LINK_ATTEMPT_ADD] = "INSERT INTO link_attempts (member_id, at) VALUES ($1, $2)",
	[S_LINK_ATTEMPTS] = "SELECT COUNT(*), COALESCE(MIN(at), 0) FROM link_attempts "
			    "WHERE member_id = $1 AND at > $2",
	[S_MEMBER_CANONICAL] = "SELECT canonical_id FROM member_links WHERE member_id = $1",
	[S_MEMBER_LINK_GET] = "SELECT member_id, canonical_id, linked_at FROM member_links "
			      "WHERE member_id = $1 OR canonical_id = $1",
	[S_MEMBER_LINK_ADD] = "INSERT INTO member_links (member_id, canonical_id, linked_at) "
			      "VALUES ($1, $2, $3)",
	[S_MEMBER_LINK_DELETE] = "DELETE FROM member_links WHERE member_id = $1",
	[S_MEMBER_LINKED] = "SELECT 1 FROM member_links WHERE member_id = $1 OR member_id = $2 "
			    "OR canonical_id = $1 OR canonical_id = $2",
	/* Also where it has only a goal, a mark or a reminder (they move in a merge too). */
	[S_MEMBER_GROUPS] = "SELECT group_id FROM members WHERE member_id = $1 UNION "
			    "SELECT group_id FROM goals WHERE member_id = $1 UNION "
			    "SELECT group_id FROM goal_reached WHERE member_id = $1 UNION "
			    "SELECT group_id FROM reminders WHERE member_id = $1 UNION "
			    "SELECT group_id FROM reminders_sent WHERE member_id = $1 ORDER BY 1",
	[S_MERGE_DROP_OLDER] = "DELETE FROM progress WHERE group_id = $1 AND member_id = $3 AND "
			       "EXISTS (SELECT 1 FROM progress q WHERE q.group_id = $1 AND "
			       "q.member_id = $2 AND q.topic_id = progress.topic_id AND "
			       "q.updated_at > progress.updated_at)",
	[S_MERGE_DROP_FROM] = "DELETE FROM progress WHERE group_id = $1 AND member_id = $2 AND "
			      "EXISTS (SELECT 1 FROM progress q WHERE q.group_id = $1 AND "
			      "q.member_id = $3 AND q.topic_id = progress.topic_id)",
	[S_MERGE_PROGRESS] = "UPDATE progress SET member_id = $3 WHERE group_id = $1 AND "
			     "member_id = $2",
	[S_MERGE_EVENTS] = "UPDATE events SET member_id = $3 WHERE group_id = $1 AND member_id = $2",
	[S_MERGE_FIRST_SEEN] = "UPDATE members SET first_seen = (SELECT MIN(m.first_seen) FROM "
			       "members m WHERE m.group_id = $1 AND (m.member_id = $2 OR "
			       "m.member_id = $3)) WHERE group_id = $1 AND member_id = $3",
	[S_MERGE_MEMBER_DROP] = "DELETE FROM members WHERE group_id = $1 AND member_id = $2 AND "
				"$3::text IS NOT NULL",
	[S_MERGE_MEMBER_ADD] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			       "SELECT group_id, $3::text, name, first_seen FROM members WHERE "
			       "group_id = $1 AND member_id = $2 "
			       "ON CONFLICT (group_id, member_id) DO NOTHING",
	[S_MERGE_PERIODS_DROP] = "DELETE FROM period_scores WHERE group_id = $1 AND member_id = $2 "
				 "AND $3::text IS NOT NULL",
	[S_MEMBER_RENAME_ALL] = "UPDATE members SET name = $2 WHERE member_id = $1",
	[S_RECOUNT_GROUP] = RECOUNT_MEMBERS " WHERE group_id = $1",
	[S_TOPIC_COUNTS_CLEAR_GROUP] = "DELETE FROM topic_counts WHERE group_id = $1",
	[S_TOPIC_COUNTS_FILL_GROUP] = "INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
		"SELECT group_id, topic_id, COUNT(*) FILTER (WHERE status = 'done'), "
		"COUNT(*) FILTER (WHERE status = 'in_progress') FROM progress "
		"WHERE group_id = $1 GROUP BY group_id, topic_id",
	[S_GROUP_DONE] = "SELECT COUNT(*) FROM progress p WHERE p.group_id = $1 AND "
			 "p.status = 'done' AND " ON_ROADMAP("p.group_id", "p.topic_id"),
	[S_LINK_LOG] = "INSERT INTO link_log (kind, action, alias_id, canonical_id, at) "
		       "VALUES ($1, $2, $3, $4, $5)",
	[S_GROUP_CANONICAL] = "SELECT canonical_id FROM group_links WHERE group_id = $1",
	[S_GROUP_LINK_GET] = "SELECT group_id, canonical_id, linked_at FROM group_links "
			     "WHERE group_id = $1 OR canonical_id = $1",
	[S_GROUP_LINK_ADD] = "INSERT INTO group_links (group_id, canonical_id, linked_at) "
			     "VALUES ($1, $2, $3)",
	[S_GROUP_LINK_DELETE] = "DELETE FROM group_links WHERE group_id = $1",
	[S_GROUP_LINKED] = "SELECT 1 FROM group_links WHERE group_id = $1 OR group_id = $2 "
			   "OR canonical_id = $1 OR canonical_id = $2",
	[S_GROUP_SHARED] = "SELECT 1 FROM group_links WHERE canonical_id = $1",
	[S_GMERGE_MEMBERS] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			     "SELECT $2::text, member_id, name, first_seen FROM members WHERE group_id = $1 "
			     "ON CONFLICT (group_id, member_id) DO NOTHING",
	[S_GMERGE_DROP_OLDER] = "DELETE FROM progress WHERE group_id = $2 AND EXISTS (SELECT 1 "
				"FROM progress q WHERE q.group_id = $1 AND q.member_id = "
				"progress.member_id AND q.topic_id = progress.topic_id AND "
				"q.updated_at > progress.updated_at)",
	[S_GMERGE_DROP_FROM] = "DELETE FROM progress WHERE group_id = $1 AND EXISTS (SELECT 1 "
			       "FROM progress q WHERE q.group_id = $2 AND q.member_id = "
			       "progress.member_id AND q.topic_id = progress.topic_id)",
	[S_GMERGE_PROGRESS] = "UPDATE progress SET group_id = $2 WHERE group_id = $1",
	[S_GMERGE_EVENTS] = "UPDATE events SET group_id = $2 WHERE group_id = $1",
	[S_GMERGE_ACTIVITY] = "INSERT INTO group_activity (group_id, bucket, finished, net) "
			      "SELECT $2::text, bucket, finished, net FROM group_activity WHERE "
			      "group_id = $1 ON CONFLICT (group_id, bucket) DO UPDATE SET "
			      "finished = group_activity.finished + excluded.finished, "
			      "net = group_activity.net + excluded.net",
	[S_GMERGE_CLEAR_ACTIVITY] = "DELETE FROM group_activity WHERE group_id = $1 AND "
				    "$2::text IS NOT NULL",
	[S_GMERGE_CLEAR_PERIODS] = "DELETE FROM period_scores WHERE group_id = $1 AND "
				   "$2::text IS NOT NULL",
	[S_GMERGE_CLEAR_COUNTS] = "DELETE FROM topic_counts WHERE group_id = $1 AND $2::text IS NOT NULL",
	[S_GMERGE_CLEAR_MEMBERS] = "DELETE FROM members WHERE group_id = $1 AND $2::text IS NOT NULL",
	[S_GCOPY_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, note, "
			     "updated_at) SELECT $2::text, member_id, topic_id, status, note, updated_at "
			     "FROM progress WHERE group_id = $1",
	[S_GCOPY_EVENTS] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			   "new_status, note, at, actor_id, actor_name, removal) "
			   "SELECT $2::text, member_id, topic_id, old_status, new_status, note, at, "
			   "actor_id, actor_name, removal FROM events e WHERE e.group_id = $1 AND "
			   LIVE_EVENT " ORDER BY e.id",
	[S_ACTIVITY_FILL_GROUP] = ACTIVITY_REFILL("$1::text"),
	[S_MERGE_GOAL_MARKS_OLDER] =
		"DELETE FROM goal_reached WHERE group_id = $1::text AND goal_member = $3::text "
		"AND EXISTS (SELECT 1 FROM goals f JOIN goals t ON t.group_id = f.group_id "
		"WHERE f.group_id = $1::text AND f.member_id = $2::text AND t.member_id = "
		"$3::text AND f.set_at > t.set_at)",
	[S_MERGE_GOALS_OLDER] =
		"DELETE FROM goals WHERE group_id = $1::text AND member_id = $3::text AND "
		"EXISTS (SELECT 1 FROM goals f WHERE f.group_id = $1::text AND f.member_id = "
		"$2::text AND f.set_at > goals.set_at)",
	[S_MERGE_GOAL_MARKS_FROM] =
		"DELETE FROM goal_reached WHERE group_id = $1::text AND goal_member = $2::text "
		"AND EXISTS (SELECT 1 FROM goals t WHERE t.group_id = $1::text AND t.member_id "
		"= $3::text)",
	[S_MERGE_GOALS_FROM] =
		"DELETE FROM goals WHERE group_id = $1::text AND member_id = $2::text AND "
		"EXISTS (SELECT 1 FROM goals t WHERE t.group_id = $1::text AND t.member_id = "
		"$3::text)",
	[S_MERGE_GOALS_COPY] =
		"INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		"set_at, set_by, set_by_name) SELECT group_id, $3::text, target_kind, "
		"target_id, due_date, set_at, CASE WHEN set_by = $2::text THEN $3::text ELSE "
		"set_by END, set_by_name FROM goals WHERE group_id = $1::text AND member_id = "
		"$2::text",
	[S_MERGE_GOAL_MARKS] =
		"UPDATE goal_reached SET goal_member = $3::text WHERE group_id = $1::text AND "
		"goal_member = $2::text",
	[S_MERGE_GOALS_DROP] =
		"DELETE FROM goals WHERE group_id = $1::text AND member_id = $2::text AND "
		"$3::text IS NOT NULL",
	[S_MERGE_MARKS_DROP] =
		"DELETE FROM goal_reached WHERE group_id = $1::text AND member_id = $2::text "
		"AND EXISTS (SELECT 1 FROM goal_reached q WHERE q.group_id = $1::text AND "
		"q.goal_member = goal_reached.goal_member AND q.member_id = $3::text)",
	[S_MERGE_MARKS] =
		"UPDATE goal_reached SET member_id = $3::text WHERE group_id = $1::text AND "
		"member_id = $2::text",
	[S_MERGE_REMIND_OLDER] =
		"DELETE FROM reminders WHERE group_id = $1::text AND member_id = $3::text AND "
		"EXISTS (SELECT 1 FROM reminders f WHERE f.group_id = $1::text AND f.member_id "
		"= $2::text AND f.set_at > reminders.set_at)",
	[S_MERGE_REMIND_FROM] =
		"DELETE FROM reminders WHERE group_id = $1::text AND member_id = $2::text AND "
		"EXISTS (SELECT 1 FROM reminders t WHERE t.group_id = $1::text AND t.member_id "
		"= $3::text)",
	[S_MERGE_REMIND] =
		"UPDATE reminders SET member_id = $3::text WHERE group_id = $1::text AND "
		"member_id = $2::text",
	[S_MERGE_REMIND_SENT_DROP] =
		"DELETE FROM reminders_sent WHERE group_id = $1::text AND member_id = $2::text "
		"AND EXISTS (SELECT 1 FROM reminders_sent t WHERE t.group_id = $1::text AND "
		"t.member_id = $3::text AND t.local_date = reminders_sent.local_date)",
	[S_MERGE_REMIND_SENT] =
		"UPDATE reminders_sent SET member_id = $3::text WHERE group_id = $1::text AND "
		"member_id = $2::text",
	[S_GMERGE_GOAL_MARKS_OLDER] =
		"DELETE FROM goal_reached WHERE group_id = $2::text AND EXISTS (SELECT 1 FROM "
		"goals f JOIN goals t ON t.member_id = f.member_id WHERE f.group_id = $1::text "
		"AND t.group_id = $2::text AND f.member_id = goal_reached.goal_member AND "
		"f.set_at > t.set_at)",
	[S_GMERGE_GOALS_OLDER] =
		"DELETE FROM goals WHERE group_id = $2::text AND EXISTS (SELECT 1 FROM goals f "
		"WHERE f.group_id = $1::text AND f.member_id = goals.member_id AND f.set_at > "
		"goals.set_at)",
	[S_GMERGE_GOAL_MARKS_FROM] =
		"DELETE FROM goal_reached WHERE group_id = $1::text AND EXISTS (SELECT 1 FROM "
		"goals t WHERE t.group_id = $2::text AND t.member_id = "
		"goal_reached.goal_member)",
	[S_GMERGE_GOALS_FROM] =
		"DELETE FROM goals WHERE group_id = $1::text AND EXISTS (SELECT 1 FROM goals t "
		"WHERE t.group_id = $2::text AND t.member_id = goals.member_id)",
	[S_GCOPY_GOALS] =
		"INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		"set_at, set_by, set_by_name) SELECT $2::text, member_id, target_kind, "
		"target_id, due_date, set_at, set_by, set_by_name FROM goals WHERE group_id = "
		"$1::text ON CONFLICT (group_id, member_id) DO NOTHING",
	[S_GCOPY_GOAL_MARKS] =
		"INSERT INTO goal_reached (group_id, goal_member, member_id, reached_at) SELECT "
		"$2::text, r.goal_member, r.member_id, r.reached_at FROM goal_reached r JOIN "
		"goals f ON f.group_id = r.group_id AND f.member_id = r.goal_member JOIN goals "
		"t ON t.group_id = $2::text AND t.member_id = f.member_id AND t.set_at = "
		"f.set_at WHERE r.group_id = $1::text ON CONFLICT (group_id, goal_member, "
		"member_id) DO NOTHING",
	[S_GMERGE_CLEAR_GOAL_MARKS] =
		"DELETE FROM goal_reached WHERE group_id = $1::text AND $2::text IS NOT NULL",
	[S_GMERGE_CLEAR_GOALS] =
		"DELETE FROM goals WHERE group_id = $1::text AND $2::text IS NOT NULL",
	[S_GMERGE_REMIND_OLDER] =
		"DELETE FROM reminders WHERE group_id = $2::text AND EXISTS (SELECT 1 FROM "
		"reminders f WHERE f.group_id = $1::text AND f.member_id = reminders.member_id "
		"AND f.set_at > reminders.set_at)",
	[S_GMERGE_REMIND_FROM] =
		"DELETE FROM reminders WHERE group_id = $1::text AND EXISTS (SELECT 1 FROM "
		"reminders t WHERE t.group_id = $2::text AND t.member_id = reminders.member_id)",
	[S_GCOPY_REMIND] =
		"INSERT INTO reminders (group_id, member_id, at, set_at) SELECT $2::text, "
		"member_id, at, set_at FROM reminders WHERE group_id = $1::text ON CONFLICT "
		"(group_id, member_id) DO NOTHING",
	[S_GCOPY_REMIND_SENT] =
		"INSERT INTO reminders_sent (group_id, member_id, local_date, idem_key, "
		"recorded_at) SELECT $2::text, member_id, local_date, idem_key, recorded_at "
		"FROM reminders_sent WHERE group_id = $1::text ON CONFLICT (group_id, "
		"member_id, local_date) DO NOTHING",
	[S_GMERGE_CLEAR_REMIND] =
		"DELETE FROM reminders WHERE group_id = $1::text AND $2::text IS NOT NULL",
	[S_GMERGE_CLEAR_REMIND_SENT] =
		"DELETE FROM reminders_sent WHERE group_id = $1::text AND $2::text IS NOT NULL",
	[S_MERGE_UNDO_FROM] =
		"UPDATE events SET old_status = (SELECT t.status FROM progress t WHERE "
		"t.group_id = $1::text AND t.member_id = $3::text AND t.topic_id = "
		"events.topic_id) WHERE group_id = $1::text AND member_id = $2::text AND id = "
		"(SELECT MAX(e.id) FROM events e WHERE e.group_id = $1::text AND e.member_id "
		"= $2::text AND e.topic_id = events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 "
		"FROM progress f JOIN progress t ON t.group_id = f.group_id AND t.topic_id = "
		"f.topic_id WHERE f.group_id = $1::text AND f.member_id = $2::text AND "
		"t.member_id = $3::text AND f.topic_id = events.topic_id AND f.updated_at > "
		"t.updated_at)",
	[S_MERGE_UNDO_TO] =
		"UPDATE events SET old_status = (SELECT f.status FROM progress f WHERE "
		"f.group_id = $1::text AND f.member_id = $2::text AND f.topic_id = "
		"events.topic_id) WHERE group_id = $1::text AND member_id = $3::text AND id = "
		"(SELECT MAX(e.id) FROM events e WHERE e.group_id = $1::text AND e.member_id "
		"= $3::text AND e.topic_id = events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 "
		"FROM progress f JOIN progress t ON t.group_id = f.group_id AND t.topic_id = "
		"f.topic_id WHERE f.group_id = $1::text AND f.member_id = $2::text AND "
		"t.member_id = $3::text AND f.topic_id = events.topic_id)",
	[S_GMERGE_UNDO_FROM] =
		"UPDATE events SET old_status = (SELECT t.status FROM progress t WHERE "
		"t.group_id = $2::text AND t.member_id = events.member_id AND t.topic_id = "
		"events.topic_id) WHERE group_id = $1::text AND id = (SELECT MAX(e.id) FROM "
		"events e WHERE e.group_id = $1::text AND e.member_id = events.member_id AND "
		"e.topic_id = events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress "
		"f JOIN progress t ON t.member_id = f.member_id AND t.topic_id = f.topic_id "
		"WHERE f.group_id = $1::text AND t.group_id = $2::text AND f.member_id = "
		"events.member_id AND f.topic_id = events.topic_id AND f.updated_at > "
		"t.updated_at)",
	[S_GMERGE_UNDO_TO] =
		"UPDATE events SET old_status = (SELECT f.status FROM progress f WHERE "
		"f.group_id = $1::text AND f.member_id = events.member_id AND f.topic_id = "
		"events.topic_id) WHERE group_id = $2::text AND id = (SELECT MAX(e.id) FROM "
		"events e WHERE e.group_id = $2::text AND e.member_id = events.member_id AND "
		"e.topic_id = events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress "
		"f JOIN progress t ON t.member_id = f.member_id AND t.topic_id = f.topic_id "
		"WHERE f.group_id = $1::text AND t.group_id = $2::text AND f.member_id = "
		"events.member_id AND f.topic_id = events.topic_id)",
	[S_LINK_CODES_PRUNE] = "DELETE FROM link_codes WHERE expires_at < $1::bigint",
	[S_LINK_ATTEMPTS_PRUNE] = "DELETE FROM link_attempts WHERE at < $1::bigint",
	[S_DUMP_LINKS] = "SELECT 'member', member_id, canonical_id, linked_at FROM member_links "
			 "WHERE $1::text IS NULL OR canonical_id IN (SELECT m.member_id FROM members m "
			 "WHERE m.group_id = $1) UNION ALL "
			 "SELECT 'group', group_id, canonical_id, linked_at FROM group_links "
			 "WHERE $1::text IS NULL OR group_id = $1 OR canonical_id = $1 ORDER BY 1, 2",
};

struct pg_stmt {
	struct bk_stmt base;
	struct bk *db;
	int id;
	int nparams;
	const char *values[MAX_PARAMS];
	char ints[MAX_PARAMS][24]; /* an integer bind's text */
	PGresult *res;             /* the last run's, until the next reset */
	int row;                   /* the next row to return */
	bool ran;
};

struct bk {
	PGconn *conn;
	bool sync_full;
	bool open_tx; /* a BEGIN ran and no COMMIT or ROLLBACK since (see reconnect()) */
	int64_t retry_at; /* monotonic ms: no reconnect attempt before */
	int statement_timeout_ms; /* 0: the server's default (store_set_statement_timeout) */
	char *conninfo; /* as given, to connect again */
	char *url; /* for messages: its password hidden */
	char *err; /* the last failure's message */
	struct pg_stmt stmt[S_COUNT];
};

extern const struct backend store_postgres;

/* The URL with any password replaced by "***", for messages and logs. A new string. */
static char *redact(const char *url)
{
	const char *q = strstr(url, "password=");
	if (q && q > url && (q[-1] == '?' || q[-1] == '&')) {
		q += 9;
		return xasprintf("%.*s***%s", (int)(q - url), url, q + strcspn(q, "&#"));
	}
	const char *scheme = strstr(url, "://");
	const char *start = scheme ? scheme + 3 : url;
	const char *at = strchr(start, '@');
	const char *slash = strchr(start, '/');
	if (!at || (slash && slash < at))
		return xstrdup(url);
	const char *colon = memchr(start, ':', (size_t)(at - start));
	if (!colon)
		return xstrdup(url);
	return xasprintf("%.*s:***%s", (int)(colon - url), url, at);
}

static void set_err(struct bk *db, const char *msg)
{
	free(db->err);
	db->err = xstrdup(msg ? msg : "unknown error");
	size_t n = strlen(db->err);
	while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
		db->err[--n] = '\0';
}

/* Runs SQL text with no parameters; COHORT_OK or COHORT_ERR_STORE with the reason in db->err. */
static int exec_text(struct bk *db, const char *text)
{
	PGresult *r = PQexec(db->conn, text);
	ExecStatusType s = PQresultStatus(r);
	int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? COHORT_OK : COHORT_ERR_STORE;
	if (rc)
		set_err(db, PQresultErrorMessage(r));
	PQclear(r);
	return rc;
}

/* The first value of a one-row query, or -1. */
static long query_long(struct bk *db, const char *text)
{
	PGresult *r = PQexec(db->conn, text);
	long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		set_err(db, PQresultErrorMessage(r));
	PQclear(r);
	return v;
}

/*
 * Brings the schema to the latest version under a session advisory lock:
 * processes starting together wait for each other and migrate once.
 */
static int migrate(struct bk *db, char *err)
{
	int latest = store_sqlite.schema_latest;
	if (PG_BASE + (int)ARRAY_SIZE(pg_migrations) != latest) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: this cohort was built with PostgreSQL migrations up to %d but SQLite "
			 "ones up to %d (a build defect: report it)",
			 db->url, PG_BASE + (int)ARRAY_SIZE(pg_migrations), latest);
		return COHORT_ERR_STORE;
	}
	int rc = exec_text(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")");
	if (rc) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot lock the schema to upgrade it: %s",
			 db->url, db->err);
		return rc;
	}
	rc = exec_text(db, "CREATE TABLE IF NOT EXISTS cohort_schema (version INTEGER NOT NULL)");
	long v = rc ? -1 : query_long(db, "SELECT COALESCE(MAX(version), 0) FROM cohort_schema");
	if (v < 0) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot read the schema version: %s", db->url,
			 db->err);
		rc = COHORT_ERR_STORE;
	} else if (v > latest) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the database has schema version %ld but this cohort knows only up to "
			 "%d (run a newer cohort, or restore a backup)",
			 db->url, v, latest);
		rc = COHORT_ERR_STORE;
	} else if (v > 0 && v < PG_BASE) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the database has schema version %ld, older than any PostgreSQL store "
			 "cohort made (restore a backup)",
			 db->url, v);
		rc = COHORT_ERR_STORE;
	}
	/* A new database gets the base schema and every step after it in one transaction. */
	for (long to = v == 0 ? PG_BASE : v + 1; !rc && to <= latest; to++) {
		bool last = to == latest;
		if (v != 0 || to == PG_BASE)
			rc = exec_text(db, "BEGIN");
		if (!rc)
			rc = exec_text(db, to == PG_BASE ? pg_schema : pg_migrations[to - PG_BASE - 1]);
		if (!rc && (v != 0 || last)) {
			char set[96];
			snprintf(set, sizeof(set), "INSERT INTO cohort_schema (version) VALUES (%ld)",
				 to);
			rc = exec_text(db, set);
			if (!rc)
				rc = exec_text(db, "COMMIT");
		}
		if (rc) {
			char *why = xstrdup(db->err);
			exec_text(db, "ROLLBACK");
			snprintf(err, COHORT_ERR_LEN,
				 "%s: upgrading the schema to version %ld failed: %s (nothing of that "
				 "step was changed)",
				 db->url, to, why);
			free(why);
		}
	}
	exec_text(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
	return rc;
}

static void pg_close(struct bk *db)
{
	if (!db)
		return;
	for (int i = 0; i < S_COUNT; i++)
		PQclear(db->stmt[i].res);
	PQfinish(db->conn);
	free(db->conninfo);
	free(db->url);
	free(db->err);
	free(db);
}

/* libpq's notices (e.g. "there is no transaction in progress") go to our debug log. */
static void on_notice(void *ud, const char *msg)
{
	(void)ud;
	log_debug("store", "postgresql: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* The highest $N in a statement's text. */
static int count_params(const char *text)
{
	int n = 0;
	for (const char *c = text; c && *c; c++) {
		if (*c == '$' && c[1] >= '1' && c[1] <= '9') {
			int v = (int)strtol(c + 1, NULL, 10);
			n = v > n ? v : n;
		}
	}
	return n > MAX_PARAMS ? MAX_PARAMS : n;
}

/* The session's settings. Commits wait for the WAL flush either way; "full" also waits for
 * a synchronous standby. */
static int set_up_session(struct bk *db, char *err)
{
	int rc = exec_text(db, db->sync_full ? "SET synchronous_commit = on"
					     : "SET synchronous_commit = local");
	if (!rc && db->statement_timeout_ms > 0) {
		char set[48];
		snprintf(set, sizeof(set), "SET statement_timeout = %d", db->statement_timeout_ms);
		rc = exec_text(db, set);
	}
	if (rc)
		snprintf(err, COHORT_ERR_LEN, "%s: cannot set up the session: %s", db->url, db->err);
	return rc;
}

/* Prepares every statement on the connection (again, after a reconnect). */
static int prepare_all(struct bk *db, char *err)
{
	int rc = COHORT_OK;
	for (int i = 0; !rc && i < S_COUNT; i++) {
		struct pg_stmt *s = &db->stmt[i];
		s->base.be = &store_postgres;
		s->db = db;
		s->id = i;
		s->nparams = count_params(sql[i]);
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		PGresult *r = sql[i] ? PQprepare(db->conn, name, sql[i], 0, NULL) : NULL;
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, COHORT_ERR_LEN, "%s: preparing statement %d failed: %s", db->url,
				 i, r ? PQresultErrorMessage(r) : "no SQL for it");
			rc = COHORT_ERR_STORE;
		}
		PQclear(r);
	}
	return rc;
}

/*
 * Connects with a 10 s connect_timeout unless the URL sets its own (keywords later in the
 * list win, and the URL is expanded in place of "dbname"), so an unreachable server cannot
 * hold a thread for minutes.
 */
static PGconn *connect_to(const char *conninfo)
{
	const char *const keys[] = {"connect_timeout", "dbname", NULL};
	const char *const values[] = {"10", conninfo, NULL};
	return PQconnectdbParams(keys, values, 1);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A connection the server dropped (a restart, a failover, a network cut) is made again,
 * but only where nothing is lost by it: before a statement that opens a transaction or
 * runs outside one. A statement inside a transaction that was open when the connection
 * broke fails, as the transaction did, and its caller rolls back. false: still no server.
 */
static bool reconnect(struct bk *db)
{
	int64_t now = mono_ms();
	if (now < db->retry_at)
		return false; /* db->err still says why */
	db->retry_at = now + 250;
	PQfinish(db->conn);
	db->conn = connect_to(db->conninfo);
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	char err[COHORT_ERR_LEN];
	if (PQstatus(db->conn) != CONNECTION_OK) {
		set_err(db, PQerrorMessage(db->conn));
		return false;
	}
	if (set_up_session(db, err) || prepare_all(db, err)) {
		set_err(db, err);
		return false;
	}
	log_warn("store", "%s: connected to PostgreSQL again", db->url);
	return true;
}

static int pg_open(const char *url, bool sync_full, bool create, struct bk **out, char *err)
{
	(void)create; /* the database must exist; its tables are made on first use */
	*out = NULL;
	struct bk *db = xcalloc(1, sizeof(*db));
	db->url = redact(url);
	db->conninfo = xstrdup(url);
	db->conn = connect_to(url);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		set_err(db, PQerrorMessage(db->conn));
		snprintf(err, COHORT_ERR_LEN,
			 "%s: cannot connect to PostgreSQL: %s (check store.url, and that the server "
			 "runs and the database exists)",
			 db->url, db->err);
		pg_close(db);
		return COHORT_ERR_STORE;
	}
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	db->sync_full = sync_full;
	int rc = set_up_session(db, err);
	if (!rc)
		rc = migrate(db, err);
	if (!rc)
		rc = prepare_all(db, err);
	if (rc) {
		pg_close(db);
		return rc;
	}
	*out = db;
	return COHORT_OK;
}

static int pg_create_at_version(const char *url, int version, char *err)
{
	(void)url;
	(void)version;
	snprintf(err, COHORT_ERR_LEN, "a PostgreSQL store starts at the latest schema version");
	return COHORT_ERR_USAGE;
}

static int pg_schema_version(struct bk *db)
{
	return (int)query_long(db, "SELECT MAX(version) FROM cohort_schema");
}

static void pg_reset(struct bk_stmt *bs)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	PQclear(s->res);
	s->res = NULL;
	s->ran = false;
	s->row = 0;
}

static struct bk_stmt *pg_prep(struct bk *db, enum stmt_id id)
{
	struct pg_stmt *s = &db->stmt[id];
	pg_reset(&s->base);
	memset(s->values, 0, sizeof(s->values));
	return &s->base;
}

static void pg_bind_text(struct bk_stmt *bs, int i, const char *v)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	if (i >= 1 && i <= MAX_PARAMS)
		s->values[i - 1] = v;
}

static void pg_bind_int(struct bk_stmt *bs, int i, int64_t v)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	if (i < 1 || i > MAX_PARAMS)
		return;
	snprintf(s->ints[i - 1], sizeof(s->ints[i - 1]), "%lld", (long long)v);
	s->values[i - 1] = s->ints[i - 1];
}

static int pg_step(struct bk_stmt *bs)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	if (!s->ran) {
		bool opens = s->id == S_BEGIN || s->id == S_READ_BEGIN;
		if (PQstatus(s->db->conn) == CONNECTION_BAD && (opens || !s->db->open_tx) &&
		    !reconnect(s->db))
			return BK_ERROR;
		if (opens)
			s->db->open_tx = true;
		else if (s->id == S_COMMIT || s->id == S_ROLLBACK || s->id == S_READ_END)
			s->db->open_tx = false;
		char name[16];
		snprintf(name, sizeof(name), "s%d", s->id);
		/* Every parameter the statement has (unbound ones are NULL), as text. */
		s->res = PQexecPrepared(s->db->conn, name, s->nparams, s->values, NULL, NULL, 0);
		s->ran = true;
		s->row = 0;
		ExecStatusType st = PQresultStatus(s->res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			const char *state = PQresultErrorField(s->res, PG_DIAG_SQLSTATE);
			set_err(s->db, PQresultErrorMessage(s->res));
			if (state && strcmp(state, "23505") == 0)
				return BK_DUPLICATE;
			if (state && strncmp(state, "23", 2) == 0)
				return BK_CONSTRAINT;
			return BK_ERROR;
		}
	}
	if (PQresultStatus(s->res) != PGRES_TUPLES_OK || s->row >= PQntuples(s->res))
		return BK_DONE;
	s->row++;
	return BK_ROW;
}

static const char *pg_col_text(struct bk_stmt *bs, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	int r = s->row - 1;
	if (!s->res || r < 0 || r >= PQntuples(s->res) || i >= PQnfields(s->res) ||
	    PQgetisnull(s->res, r, i))
		return NULL;
	return PQgetvalue(s->res, r, i);
}

static int64_t pg_col_int(struct bk_stmt *bs, int i)
{
	const char *v = pg_col_text(bs, i);
	if (!v)
		return 0;
	if (strcmp(v, "t") == 0) /* a boolean */
		return 1;
	return strtoll(v, NULL, 10);
}

static int64_t pg_changes(struct bk_stmt *bs)
{
	struct pg_stmt *s = (struct pg_stmt *)bs;
	return s->res ? strtoll(PQcmdTuples(s->res), NULL, 10) : 0;
}

static const char *pg_errmsg(struct bk *db)
{
	return db->err ? db->err : PQerrorMessage(db->conn);
}

static bool pg_in_transaction(struct bk *db)
{
	return PQtransactionStatus(db->conn) != PQTRANS_IDLE;
}

static int pg_backup(struct bk *db, const char *path, bool force, char *err)
{
	(void)path;
	(void)force;
	snprintf(err, COHORT_ERR_LEN,
		 "%s: cohort backup copies a SQLite store; back up a PostgreSQL store with "
		 "pg_dump (for example: pg_dump -Fc -f cohort.dump 'URL'), restore with pg_restore",
		 db->url);
	return COHORT_ERR_USAGE;
}

static int pg_statement_timeout(struct bk *db, int ms)
{
	char set[48];
	db->statement_timeout_ms = ms > 0 ? ms : 0;
	snprintf(set, sizeof(set), "SET statement_timeout = %d", db->statement_timeout_ms);
	return exec_text(db, set);
}

const struct backend store_postgres = {
	.name = "postgresql",
	.shared = true,
	.schema_latest = 0, /* store_sqlite's: the two share version numbers */
	.open = pg_open,
	.close = pg_close,
	.create_at_version = pg_create_at_version,
	.schema_version = pg_schema_version,
	.prep = pg_prep,
	.bind_text = pg_bind_text,
	.bind_int = pg_bind_int,
	.step = pg_step,
	.col_text = pg_col_text,
	.col_int = pg_col_int,
	.reset = pg_reset,
	.changes = pg_changes,
	.errmsg = pg_errmsg,
	.in_transaction = pg_in_transaction,
	.backup = pg_backup,
	.checkpoint_stats = NULL,
	.statement_timeout = pg_statement_timeout,
};
