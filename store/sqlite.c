/*
 * The SQLite backend: its connection, SQL dialect, schema and migrations,
 * the background checkpointer and the online backup. See backend.h.
 */
#include "backend.h"

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

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
	/* 5: leases (store_lease_take): who holds a named claim, until when (Unix ms). */
	"CREATE TABLE leases ("
	"  name TEXT PRIMARY KEY,"
	"  holder TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL"
	") WITHOUT ROWID;",
	/*
	 * 6: goals (/goal): one per member and one for the whole group (member_id ''),
	 * a topic or a section by a local date; goal_reached marks who reached which,
	 * so a goal is celebrated once.
	 */
	GOALS_SCHEMA(" WITHOUT ROWID", "INTEGER"),
	/*
	 * 7: the group's page (DESIGN §11): its capability token, and whether it is
	 * served. Turning it off keeps the token (on gives the same link back);
	 * a reset replaces it. Never dumped: the token is a secret.
	 */
	"CREATE TABLE dashboards ("
	"  group_id TEXT PRIMARY KEY,"
	"  token TEXT NOT NULL UNIQUE,"
	"  enabled INTEGER NOT NULL CHECK (enabled = 0 OR enabled = 1),"
	"  changed_at INTEGER NOT NULL"
	") WITHOUT ROWID;",
	/*
	 * 8: the group's activity over time, maintained with every change (so the
	 * page never scans the log): per 15-minute bucket (any zone's local days are
	 * whole buckets), finishes and the net change of done topics.
	 */
	"CREATE TABLE group_activity ("
	"  group_id TEXT NOT NULL,"
	"  bucket INTEGER NOT NULL,"
	"  finished INTEGER NOT NULL,"
	"  net INTEGER NOT NULL,"
	"  PRIMARY KEY (group_id, bucket)"
	") WITHOUT ROWID;" ACTIVITY_FILL_V8 ";",
	/* 9: the outbox (store_outbox_*): answers owed, delivered once. */
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  platform TEXT NOT NULL,"
	"  source_id TEXT,"
	"  address TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  holder TEXT,"
	"  lease_until INTEGER NOT NULL DEFAULT 0,"
	"  done_at INTEGER,"
	"  outcome TEXT);"
	"CREATE UNIQUE INDEX outbox_source ON outbox (source_id) WHERE source_id IS NOT NULL;"
	"CREATE INDEX outbox_owed ON outbox (platform, lease_until, id) WHERE done_at IS NULL;",
	/* 10: shared rates (store_rate_take): the units of one second used so far. */
	"CREATE TABLE rate_windows ("
	"  name TEXT PRIMARY KEY,"
	"  second INTEGER NOT NULL,"
	"  used INTEGER NOT NULL"
	") WITHOUT ROWID;",
	/* 11: who made a change when it was not the member (an admin's /fix). */
	EVENTS_ACTOR_SCHEMA,
	/* 12: reminders (/remind): a member's time, and which local dates were sent. */
	REMIND_SCHEMA(" WITHOUT ROWID", "INTEGER"),
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
	LINK_SCHEMA(" WITHOUT ROWID", "INTEGER", "INTEGER PRIMARY KEY"),
	/* 16: group links (/link group): a group recorded as another. */
	GROUP_LINK_SCHEMA(" WITHOUT ROWID", "INTEGER"),
	/*
	 * 17: a roadmap per group (roadmap.dir): the topic ids of every roadmap the
	 * store was told of, by name; which one is the default; and each group's
	 * choice. The one roadmap kept before becomes the default, named "" until
	 * the next start names them all.
	 */
	"CREATE TABLE roadmaps ("
	"  name TEXT PRIMARY KEY,"
	"  is_default INTEGER NOT NULL CHECK (is_default = 0 OR is_default = 1)"
	") WITHOUT ROWID;"
	"INSERT INTO roadmaps (name, is_default) SELECT '', 1 "
	"  WHERE EXISTS (SELECT 1 FROM roadmap_topics);"
	"ALTER TABLE roadmap_topics RENAME TO roadmap_topics_13;"
	"CREATE TABLE roadmap_topics ("
	"  roadmap TEXT NOT NULL,"
	"  topic_id TEXT NOT NULL,"
	"  PRIMARY KEY (roadmap, topic_id)"
	") WITHOUT ROWID;"
	"INSERT INTO roadmap_topics (roadmap, topic_id) SELECT '', topic_id FROM roadmap_topics_13;"
	"DROP TABLE roadmap_topics_13;"
	"CREATE TABLE group_roadmap ("
	"  group_id TEXT PRIMARY KEY,"
	"  roadmap TEXT NOT NULL,"
	"  changed_at INTEGER NOT NULL"
	") WITHOUT ROWID;",
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

/* An un-reverted event that is not itself an undo (a correlated test on e). */
#define LIVE_EVENT                                                                                 \
	"e.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.reverts = e.id)"



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
			   "new_status, note, at, source_id, reverts, actor_id, actor_name, removal) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
		"p.status = 'done' AND " ON_ROADMAP("p.group_id", "p.topic_id") ") END "
		"WHERE group_id = ?1 AND member_id = ?2",
	[S_LAST_EVENT] = "SELECT id, topic_id, old_status, new_status FROM events e "
			 "WHERE group_id = ?1 AND member_id = ?2 AND actor_id IS NULL AND "
			 LIVE_EVENT " AND NOT EXISTS (SELECT 1 FROM events f "
			 "WHERE f.group_id = e.group_id AND f.member_id = e.member_id AND "
			 "f.id > e.id AND f.topic_id = e.topic_id AND f.actor_id IS NOT NULL AND "
			 "f.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events v "
			 "WHERE v.reverts = f.id)) ORDER BY id DESC LIMIT 1",
	[S_LAST_FIX] = "SELECT id, member_id, at, COALESCE(removal, 0), topic_id, old_status, "
		       "new_status FROM events e "
		       "WHERE group_id = ?1 AND actor_id = ?2 AND " LIVE_EVENT " AND "
		       NOT_SUPERSEDED " ORDER BY id DESC LIMIT 1",
	[S_NAME_COUNT] = "SELECT count(*) FROM members WHERE group_id = ?1 "
			 "AND name = ?2 COLLATE NOCASE",
	[S_CORRECTED] = "SELECT e.member_id, e.topic_id, e.actor_name FROM events e "
			"WHERE e.group_id = ?1 AND e.actor_id IS NOT NULL AND "
			"(?2 IS NULL OR e.member_id = ?2) AND (?3 IS NULL OR e.topic_id = ?3) "
			"AND e.new_status <> 'none' AND " LIVE_EVENT " AND NOT EXISTS (SELECT 1 "
			"FROM events l WHERE l.group_id = e.group_id AND l.member_id = e.member_id "
			"AND l.topic_id = e.topic_id AND l.id > e.id AND l.reverts IS NULL AND "
			"NOT EXISTS (SELECT 1 FROM events v WHERE v.reverts = l.id)) "
			"ORDER BY e.member_id, e.id",
	[S_FIX_EVENTS] = "SELECT id, topic_id, old_status, new_status FROM events e "
			 "WHERE group_id = ?1 AND member_id = ?2 AND actor_id = ?3 AND removal = 1 AND at = ?4 "
			 "AND " LIVE_EVENT " AND " NOT_SUPERSEDED " ORDER BY id DESC",
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
			 ON_ROADMAP("p.group_id", "p.topic_id") ") END",
	[S_PERIOD_CLEAR] = "DELETE FROM period_scores WHERE ?1 IS NULL OR group_id = ?1",
	/* With the group's zone, for the calendar. */
	[S_DONE_ROWS] =
		"SELECT p.group_id, p.member_id, p.updated_at, s.timezone FROM progress p "
		"LEFT JOIN group_settings s ON s.group_id = p.group_id "
		"WHERE p.status = 'done' AND (?1 IS NULL OR p.group_id = ?1) AND "
		ON_ROADMAP("p.group_id", "p.topic_id") " ORDER BY p.group_id, p.member_id, p.updated_at",
	/* Newest first by id: events are logged as they happen. */
	[S_DONE_TIMES] = "SELECT at FROM events e INDEXED BY events_member "
			 "WHERE group_id = ?1 AND member_id = ?2 "
			 "AND new_status = 'done' AND " LIVE_EVENT " AND "
			 ON_ROADMAP("e.group_id", "e.topic_id") " ORDER BY id DESC",
	[S_ACTIVITY] = "SELECT e.member_id, m.name, e.topic_id, e.old_status, e.new_status, e.at, "
		       "m.first_seen, e.id, e.actor_name "
		       "FROM events e JOIN members m USING (group_id, member_id) "
		       "WHERE e.group_id = ?1 AND e.at >= ?2 AND e.at < ?3 AND " LIVE_EVENT " "
		       "ORDER BY e.member_id, e.id",
	[S_FIND_MEMBER] = "SELECT member_id, name FROM members WHERE group_id = ?1 "
			  "AND (member_id = ?2 OR member_id = (SELECT canonical_id FROM member_links "
			  "WHERE member_id = ?2) OR name = ?2 COLLATE NOCASE) "
			  "ORDER BY member_id = ?2 DESC, name LIMIT 1",
	[S_GET_SETTINGS] = "SELECT digest_channel, digest_time, timezone, digest_every "
			   "FROM group_settings "
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
	[S_DIGEST_GROUPS] = "SELECT group_id, digest_channel, digest_time, timezone, digest_every "
			    "FROM group_settings WHERE digest_channel IS NOT NULL ORDER BY group_id",
	[S_SET_EVERY] = "INSERT INTO group_settings (group_id, digest_every) VALUES (?1, ?2) "
			"ON CONFLICT (group_id) DO UPDATE SET digest_every = excluded.digest_every",
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
	[S_ON_ROADMAP] = "SELECT " ON_ROADMAP("?2", "?1"),
	[S_READ_BEGIN] = "BEGIN",
	[S_READ_END] = "COMMIT",
	[S_GROUP_ZONE] = "SELECT timezone FROM group_settings WHERE group_id = ?1",
	[S_STATE_DELETE] = "DELETE FROM adapter_state WHERE key = ?1",
	[S_STATE_LIST] = "SELECT key, value FROM adapter_state "
			 "WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
	/* 'now' is read once per statement: every use below sees the same instant. */
	[S_LEASE_TAKE] = "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, " NOW_MS
			 " + ?3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
			 "expires_at = excluded.expires_at WHERE leases.expires_at <= " NOW_MS
			 " OR (?4 AND leases.holder = excluded.holder) "
			 "RETURNING holder, expires_at - " NOW_MS,
	[S_LEASE_GET] = "SELECT holder, expires_at - " NOW_MS " FROM leases WHERE name = ?1",
	[S_LEASE_RELEASE] = "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
	[S_LEASE_TAKE_OVER] = "UPDATE leases SET holder = ?3, expires_at = " NOW_MS " + ?4 "
			      "WHERE name = ?1 AND holder = ?2",
	[S_LEASE_PRUNE] = "DELETE FROM leases WHERE expires_at < " NOW_MS " - ?1",
	[S_RATE_TAKE] = "INSERT INTO rate_windows (name, second, used) VALUES (?1, " NOW_MS
			" / 1000, ?2) ON CONFLICT (name) DO UPDATE SET second = excluded.second, "
			"used = CASE WHEN rate_windows.second = excluded.second THEN "
			"rate_windows.used + ?2 ELSE ?2 END WHERE rate_windows.second <> "
			"excluded.second OR rate_windows.used + ?2 <= ?3 RETURNING 1000 - " NOW_MS
			" % 1000",
	[S_RATE_WAIT] = "SELECT 1000 - " NOW_MS " % 1000",
#undef NOW_MS
	[S_GROUPS] = "SELECT group_id FROM members UNION "
		     "SELECT group_id FROM group_settings ORDER BY 1",
	[S_TOPIC_TOTALS] = "SELECT topic_id, COUNT(*), SUM(status = 'done') FROM progress "
			   "GROUP BY topic_id ORDER BY topic_id",
	/* A member who has both keeps the new one: counted once, the old one kept. */
	[S_RENAME_PROGRESS] =
		"UPDATE progress SET topic_id = ?2 WHERE topic_id = ?1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = progress.group_id AND "
		"q.member_id = progress.member_id AND q.topic_id = ?2) AND "
		"(?4 IS NULL OR group_id = ?4) AND " GROUP_ROADMAP("progress.group_id") " = ?3",
	/* The history goes with the record, so /undo and the digest name the new topic. */
	[S_RENAME_EVENTS] =
		"UPDATE events SET topic_id = ?2 WHERE topic_id = ?1 AND NOT EXISTS ("
		"SELECT 1 FROM progress q WHERE q.group_id = events.group_id AND "
		"q.member_id = events.member_id AND q.topic_id = ?1) AND "
		"(?4 IS NULL OR group_id = ?4) AND " GROUP_ROADMAP("events.group_id") " = ?3",
	[S_FINGERPRINT_GET] = "SELECT value FROM roadmap_fingerprint",
	[S_FINGERPRINT_SET] = "INSERT OR REPLACE INTO roadmap_fingerprint (one, value) "
			      "VALUES (1, ?1)",
	[S_LOCK_DERIVED] = "SELECT 1", /* BEGIN IMMEDIATE holds the only write lock already */
	[S_ROADMAP_CLEAR] = "DELETE FROM roadmap_topics",
	[S_ROADMAP_ADD] = "INSERT OR IGNORE INTO roadmap_topics (roadmap, topic_id) VALUES (?1, ?2)",
	[S_ROADMAPS_CLEAR] = "DELETE FROM roadmaps",
	[S_ROADMAPS_ADD] = "INSERT INTO roadmaps (name, is_default) VALUES (?1, ?2)",
	[S_GROUP_ROADMAP_GET] = "SELECT roadmap FROM group_roadmap WHERE group_id = ?1",
	[S_GROUP_ROADMAP_SET] = "INSERT INTO group_roadmap (group_id, roadmap, changed_at) "
				"VALUES (?1, ?2, ?3) ON CONFLICT (group_id) DO UPDATE SET "
				"roadmap = excluded.roadmap, changed_at = excluded.changed_at",
	[S_GROUP_ROADMAP_DELETE] = "DELETE FROM group_roadmap WHERE group_id = ?1",
	[S_DUMP_GROUP_ROADMAPS] = "SELECT group_id, roadmap, changed_at FROM group_roadmap "
				  "WHERE ?1 IS NULL OR group_id = ?1 ORDER BY group_id",
	[S_GROUP_TOPIC_TOTALS] = "SELECT topic_id, COUNT(*), SUM(status = 'done'), group_id "
				 "FROM progress GROUP BY group_id, topic_id "
				 "ORDER BY group_id, topic_id",
	[S_RESTORE_GROUP_ROADMAP] = "INSERT INTO group_roadmap (group_id, roadmap, changed_at) "
				    "VALUES (?1, ?2, ?3)",
	[S_RECOUNT_MEMBERS] = RECOUNT_MEMBERS " WHERE ?1 IS NULL OR group_id = ?1",
	[S_TOPIC_COUNTS_CLEAR] = "DELETE FROM topic_counts",
	[S_TOPIC_COUNTS_FILL] = "INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
				"SELECT group_id, topic_id, SUM(status = 'done'), "
				"SUM(status = 'in_progress') FROM progress "
				"GROUP BY group_id, topic_id",
#define GROUP_IS " WHERE (?1 IS NULL OR group_id = ?1) "
	[S_DUMP_SETTINGS] = "SELECT group_id, digest_channel, digest_time, timezone, "
			    "digest_every FROM group_settings" GROUP_IS "ORDER BY group_id",
	[S_DUMP_MEMBERS] = "SELECT group_id, member_id, name, first_seen FROM members" GROUP_IS
			   "ORDER BY group_id, member_id",
	[S_DUMP_PROGRESS] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, "
			    "p.note, p.updated_at FROM progress p JOIN members m "
			    "USING (group_id, member_id) WHERE ?1 IS NULL OR p.group_id = ?1 "
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
			       "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_RESTORE_MEMBER] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			     "VALUES (?1, ?2, ?3, ?4)",
	[S_RESTORE_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, "
			       "note, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_RESTORE_EVENT] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			    "new_status, note, at, source_id, reverts, actor_id, actor_name, removal) "
			    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
			    "RETURNING id",
	[S_RESTORE_DIGEST] = "INSERT INTO digests (group_id, local_date, idem_key, recorded_at, "
			     "sent_at, group_percent) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_RESTORE_DIGEST_RANK] = "INSERT INTO digest_ranks (group_id, local_date, member_id, "
				  "rank, points) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_GOAL_SET] = "INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		       "set_at, set_by, set_by_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
		       "ON CONFLICT (group_id, member_id) DO UPDATE SET "
		       "target_kind = excluded.target_kind, target_id = excluded.target_id, "
		       "due_date = excluded.due_date, set_at = excluded.set_at, "
		       "set_by = excluded.set_by, set_by_name = excluded.set_by_name",
	[S_GOAL_UNMARK] = "DELETE FROM goal_reached WHERE group_id = ?1 AND goal_member = ?2",
	[S_GOAL_DELETE] = "DELETE FROM goals WHERE group_id = ?1 AND member_id = ?2",
	/* ?2: the member whose goals (own and the group's) and marks; NULL: every goal. */
	[S_GOALS] = "SELECT g.group_id, g.member_id, g.target_kind, g.target_id, g.due_date, "
		    "g.set_at, g.set_by, g.set_by_name, COALESCE(r.reached_at, 0) FROM goals g "
		    "LEFT JOIN goal_reached r ON r.group_id = g.group_id AND "
		    "r.goal_member = g.member_id AND r.member_id = COALESCE(?2, g.member_id) "
		    "WHERE g.group_id = ?1 AND (?2 IS NULL OR g.member_id = ?2 OR g.member_id = '') "
		    "ORDER BY g.member_id = '', g.member_id",
	/* Only for the goal as it was evaluated (set at ?5): a goal replaced meanwhile is not. */
	[S_GOAL_MARK] = "INSERT INTO goal_reached (group_id, goal_member, member_id, reached_at) "
			"SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM goals WHERE "
			"group_id = ?1 AND member_id = ?2 AND set_at = ?5) "
			"ON CONFLICT (group_id, goal_member, member_id) DO NOTHING",
	[S_GOAL_MARKS] = "SELECT r.goal_member, r.member_id, COALESCE(m.name, g.set_by_name), "
			 "r.reached_at, g.target_kind, g.target_id, g.due_date "
			 "FROM goal_reached r JOIN goals g ON g.group_id = r.group_id AND "
			 "g.member_id = r.goal_member LEFT JOIN members m ON "
			 "m.group_id = r.group_id AND m.member_id = r.member_id "
			 "WHERE r.group_id = ?1 AND r.reached_at >= ?2 AND r.reached_at < ?3 "
			 "ORDER BY r.reached_at, r.member_id",
	[S_DUMP_GOALS] = "SELECT group_id, member_id, target_kind, target_id, due_date, set_at, "
			 "set_by, set_by_name FROM goals WHERE ?1 IS NULL OR group_id = ?1 "
			 "ORDER BY group_id, member_id",
	[S_DUMP_GOAL_MARKS] = "SELECT group_id, goal_member, member_id, reached_at "
			      "FROM goal_reached WHERE ?1 IS NULL OR group_id = ?1 "
			      "ORDER BY group_id, goal_member, member_id",
	[S_RESTORE_GOAL] = "INSERT INTO goals (group_id, member_id, target_kind, target_id, "
			   "due_date, set_at, set_by, set_by_name) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_RESTORE_GOAL_MARK] = "INSERT INTO goal_reached (group_id, goal_member, member_id, "
				"reached_at) VALUES (?1, ?2, ?3, ?4)",
	[S_DASHBOARD_GET] = "SELECT token, enabled FROM dashboards WHERE group_id = ?1",
	[S_DASHBOARD_SET] = "INSERT INTO dashboards (group_id, token, enabled, changed_at) "
			    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (group_id) DO UPDATE SET "
			    "token = excluded.token, enabled = excluded.enabled, "
			    "changed_at = excluded.changed_at",
	[S_DASHBOARD_GROUP] = "SELECT group_id FROM dashboards WHERE token = ?1 AND enabled = 1",
	/* From the newest change back (events_time), the finishes whose record is still that one. */
	[S_RECENT_DONE] = "SELECT p.group_id, p.member_id, m.name, p.topic_id, p.status, p.note, "
			  "p.updated_at FROM events e JOIN progress p ON p.group_id = e.group_id AND "
			  "p.member_id = e.member_id AND p.topic_id = e.topic_id "
			  "JOIN members m ON m.group_id = p.group_id AND m.member_id = p.member_id "
			  "WHERE e.group_id = ?1 AND e.new_status = 'done' AND p.status = 'done' AND "
			  "p.updated_at = e.at AND " ON_ROADMAP("p.group_id", "p.topic_id")
			  " ORDER BY e.at DESC LIMIT ?2",
	[S_ACTIVITY_ADD] = "INSERT INTO group_activity (group_id, bucket, finished, net) "
			   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (group_id, bucket) DO UPDATE SET "
			   "finished = group_activity.finished + excluded.finished, "
			   "net = group_activity.net + excluded.net",
	[S_ACTIVITY_CLEAR] = "DELETE FROM group_activity WHERE ?1 IS NULL OR group_id = ?1",
	[S_ACTIVITY_FILL] = ACTIVITY_REFILL("?1"),
	[S_ACTIVITY_READ] = "SELECT bucket, finished, net FROM group_activity "
			    "WHERE group_id = ?1 AND bucket >= ?2 ORDER BY bucket",
	[S_ACTIVITY_BEFORE] = "SELECT COALESCE(SUM(net), 0) FROM group_activity "
			      "WHERE group_id = ?1 AND bucket < ?2",
	[S_OUTBOX_ANSWERED] = "SELECT done_at IS NOT NULL FROM outbox WHERE source_id = ?1",
	[S_OUTBOX_PUT] = "INSERT INTO outbox (platform, source_id, address, body, created_at, "
			 "holder, lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
	/* One writer at a time: the statement alone keeps two claims apart. */
	[S_OUTBOX_CLAIM] = "UPDATE outbox SET holder = ?2, lease_until = ?3 WHERE id IN ("
			   "SELECT id FROM outbox WHERE done_at IS NULL AND platform = ?1 AND "
			   "lease_until <= ?4 ORDER BY id LIMIT ?5) "
			   "RETURNING id, platform, source_id, address, body, created_at",
	[S_OUTBOX_RENEW] = "UPDATE outbox SET lease_until = ?2 WHERE holder = ?1 AND "
			   "done_at IS NULL",
	[S_OUTBOX_DONE] = "UPDATE outbox SET done_at = ?2, outcome = ?3, body = '' "
			  "WHERE id = ?1 AND done_at IS NULL",
	[S_OUTBOX_RELEASE] = "UPDATE outbox SET holder = NULL, lease_until = 0 WHERE id = ?1 "
			     "AND done_at IS NULL",
	[S_OUTBOX_OWED] = "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
	[S_REMIND_SET] = "INSERT INTO reminders (group_id, member_id, at, set_at) VALUES "
			 "(?1, ?2, ?3, ?4) ON CONFLICT (group_id, member_id) DO UPDATE SET "
			 "at = excluded.at, set_at = excluded.set_at",
	[S_REMIND_GET] = "SELECT at FROM reminders WHERE group_id = ?1 AND member_id = ?2",
	[S_REMIND_DELETE] = "DELETE FROM reminders WHERE group_id = ?1 AND member_id = ?2",
	[S_REMINDERS] = "SELECT group_id, member_id, at, set_at FROM reminders "
			"WHERE ?1 IS NULL OR group_id = ?1 ORDER BY group_id, member_id",
	[S_REMIND_RECORD] = "INSERT INTO reminders_sent (group_id, member_id, local_date, idem_key, "
			    "recorded_at) VALUES (?1, ?2, ?3, ?4, ?5) "
			    "ON CONFLICT (group_id, member_id, local_date) DO NOTHING",
	[S_LINK_CODE_PUT] = "INSERT INTO link_codes (code_hash, kind, owner_id, created_at, "
			    "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_LINK_CODE_GET] = "SELECT kind, owner_id, expires_at, used_at FROM link_codes "
			    "WHERE code_hash = ?1",
	[S_LINK_CODE_USE] = "UPDATE link_codes SET used_at = ?2 WHERE code_hash = ?1 "
			    "AND kind = ?3 AND used_at IS NULL AND expires_at > ?2",
	[S_LINK_ATTEMPT_ADD] = "INSERT INTO link_attempts (member_id, at) VALUES (?1, ?2)",
	[S_LINK_ATTEMPTS] = "SELECT COUNT(*), COALESCE(MIN(at), 0) FROM link_attempts "
			    "WHERE member_id = ?1 AND at > ?2",
	[S_MEMBER_CANONICAL] = "SELECT canonical_id FROM member_links WHERE member_id = ?1",
	[S_MEMBER_LINK_GET] = "SELECT member_id, canonical_id, linked_at FROM member_links "
			      "WHERE member_id = ?1 OR canonical_id = ?1",
	[S_MEMBER_LINK_ADD] = "INSERT INTO member_links (member_id, canonical_id, linked_at) "
			      "VALUES (?1, ?2, ?3)",
	[S_MEMBER_LINK_DELETE] = "DELETE FROM member_links WHERE member_id = ?1",
	[S_MEMBER_LINKED] = "SELECT 1 FROM member_links WHERE member_id = ?1 OR member_id = ?2 "
			    "OR canonical_id = ?1 OR canonical_id = ?2",
	/* Also where it has only a goal, a mark or a reminder (they move in a merge too). */
	[S_MEMBER_GROUPS] = "SELECT group_id FROM members WHERE member_id = ?1 UNION "
			    "SELECT group_id FROM goals WHERE member_id = ?1 UNION "
			    "SELECT group_id FROM goal_reached WHERE member_id = ?1 UNION "
			    "SELECT group_id FROM reminders WHERE member_id = ?1 UNION "
			    "SELECT group_id FROM reminders_sent WHERE member_id = ?1 ORDER BY 1",
	[S_MERGE_DROP_OLDER] = "DELETE FROM progress WHERE group_id = ?1 AND member_id = ?3 AND "
			       "EXISTS (SELECT 1 FROM progress q WHERE q.group_id = ?1 AND "
			       "q.member_id = ?2 AND q.topic_id = progress.topic_id AND "
			       "q.updated_at > progress.updated_at)",
	[S_MERGE_DROP_FROM] = "DELETE FROM progress WHERE group_id = ?1 AND member_id = ?2 AND "
			      "EXISTS (SELECT 1 FROM progress q WHERE q.group_id = ?1 AND "
			      "q.member_id = ?3 AND q.topic_id = progress.topic_id)",
	[S_MERGE_PROGRESS] = "UPDATE progress SET member_id = ?3 WHERE group_id = ?1 AND "
			     "member_id = ?2",
	[S_MERGE_EVENTS] = "UPDATE events SET member_id = ?3 WHERE group_id = ?1 AND member_id = ?2",
	[S_MERGE_FIRST_SEEN] = "UPDATE members SET first_seen = (SELECT MIN(m.first_seen) FROM "
			       "members m WHERE m.group_id = ?1 AND (m.member_id = ?2 OR "
			       "m.member_id = ?3)) WHERE group_id = ?1 AND member_id = ?3",
	[S_MERGE_MEMBER_DROP] = "DELETE FROM members WHERE group_id = ?1 AND member_id = ?2 AND "
				"?3 IS NOT NULL",
	[S_MERGE_MEMBER_ADD] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			       "SELECT group_id, ?3, name, first_seen FROM members WHERE "
			       "group_id = ?1 AND member_id = ?2 "
			       "ON CONFLICT (group_id, member_id) DO NOTHING",
	[S_MERGE_PERIODS_DROP] = "DELETE FROM period_scores WHERE group_id = ?1 AND member_id = ?2 "
				 "AND ?3 IS NOT NULL",
	[S_MEMBER_RENAME_ALL] = "UPDATE members SET name = ?2 WHERE member_id = ?1",
	[S_RECOUNT_GROUP] = RECOUNT_MEMBERS " WHERE group_id = ?1",
	[S_TOPIC_COUNTS_CLEAR_GROUP] = "DELETE FROM topic_counts WHERE group_id = ?1",
	[S_TOPIC_COUNTS_FILL_GROUP] = "INSERT INTO topic_counts (group_id, topic_id, done, in_progress) "
		"SELECT group_id, topic_id, SUM(status = 'done'), SUM(status = 'in_progress') "
		"FROM progress WHERE group_id = ?1 GROUP BY group_id, topic_id",
	[S_GROUP_DONE] = "SELECT COUNT(*) FROM progress p WHERE p.group_id = ?1 AND "
			 "p.status = 'done' AND " ON_ROADMAP("p.group_id", "p.topic_id"),
	[S_LINK_LOG] = "INSERT INTO link_log (kind, action, alias_id, canonical_id, at) "
		       "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_GROUP_CANONICAL] = "SELECT canonical_id FROM group_links WHERE group_id = ?1",
	[S_GROUP_LINK_GET] = "SELECT group_id, canonical_id, linked_at FROM group_links "
			     "WHERE group_id = ?1 OR canonical_id = ?1",
	[S_GROUP_LINK_ADD] = "INSERT INTO group_links (group_id, canonical_id, linked_at) "
			     "VALUES (?1, ?2, ?3)",
	[S_GROUP_LINK_DELETE] = "DELETE FROM group_links WHERE group_id = ?1",
	[S_GROUP_LINKED] = "SELECT 1 FROM group_links WHERE group_id = ?1 OR group_id = ?2 "
			   "OR canonical_id = ?1 OR canonical_id = ?2",
	[S_GROUP_SHARED] = "SELECT 1 FROM group_links WHERE canonical_id = ?1",
	[S_GMERGE_MEMBERS] = "INSERT INTO members (group_id, member_id, name, first_seen) "
			     "SELECT ?2, member_id, name, first_seen FROM members WHERE group_id = ?1 "
			     "ON CONFLICT (group_id, member_id) DO NOTHING",
	[S_GMERGE_DROP_OLDER] = "DELETE FROM progress WHERE group_id = ?2 AND EXISTS (SELECT 1 "
				"FROM progress q WHERE q.group_id = ?1 AND q.member_id = "
				"progress.member_id AND q.topic_id = progress.topic_id AND "
				"q.updated_at > progress.updated_at)",
	[S_GMERGE_DROP_FROM] = "DELETE FROM progress WHERE group_id = ?1 AND EXISTS (SELECT 1 "
			       "FROM progress q WHERE q.group_id = ?2 AND q.member_id = "
			       "progress.member_id AND q.topic_id = progress.topic_id)",
	[S_GMERGE_PROGRESS] = "UPDATE progress SET group_id = ?2 WHERE group_id = ?1",
	[S_GMERGE_EVENTS] = "UPDATE events SET group_id = ?2 WHERE group_id = ?1",
	[S_GMERGE_ACTIVITY] = "INSERT INTO group_activity (group_id, bucket, finished, net) "
			      "SELECT ?2, bucket, finished, net FROM group_activity WHERE "
			      "group_id = ?1 ON CONFLICT (group_id, bucket) DO UPDATE SET "
			      "finished = group_activity.finished + excluded.finished, "
			      "net = group_activity.net + excluded.net",
	[S_GMERGE_CLEAR_ACTIVITY] = "DELETE FROM group_activity WHERE group_id = ?1 AND "
				    "?2 IS NOT NULL",
	[S_GMERGE_CLEAR_PERIODS] = "DELETE FROM period_scores WHERE group_id = ?1 AND "
				   "?2 IS NOT NULL",
	[S_GMERGE_CLEAR_COUNTS] = "DELETE FROM topic_counts WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_GMERGE_CLEAR_MEMBERS] = "DELETE FROM members WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_GCOPY_PROGRESS] = "INSERT INTO progress (group_id, member_id, topic_id, status, note, "
			     "updated_at) SELECT ?2, member_id, topic_id, status, note, updated_at "
			     "FROM progress WHERE group_id = ?1",
	[S_GCOPY_EVENTS] = "INSERT INTO events (group_id, member_id, topic_id, old_status, "
			   "new_status, note, at, actor_id, actor_name, removal) "
			   "SELECT ?2, member_id, topic_id, old_status, new_status, note, at, "
			   "actor_id, actor_name, removal FROM events e WHERE e.group_id = ?1 AND "
			   LIVE_EVENT " ORDER BY e.id",
	[S_ACTIVITY_FILL_GROUP] = ACTIVITY_REFILL("?1"),
	[S_MERGE_GOAL_MARKS_OLDER] =
		"DELETE FROM goal_reached WHERE group_id = ?1 AND goal_member = ?3 AND EXISTS "
		"(SELECT 1 FROM goals f JOIN goals t ON t.group_id = f.group_id WHERE "
		"f.group_id = ?1 AND f.member_id = ?2 AND t.member_id = ?3 AND f.set_at > "
		"t.set_at)",
	[S_MERGE_GOALS_OLDER] =
		"DELETE FROM goals WHERE group_id = ?1 AND member_id = ?3 AND EXISTS (SELECT 1 "
		"FROM goals f WHERE f.group_id = ?1 AND f.member_id = ?2 AND f.set_at > "
		"goals.set_at)",
	[S_MERGE_GOAL_MARKS_FROM] =
		"DELETE FROM goal_reached WHERE group_id = ?1 AND goal_member = ?2 AND EXISTS "
		"(SELECT 1 FROM goals t WHERE t.group_id = ?1 AND t.member_id = ?3)",
	[S_MERGE_GOALS_FROM] =
		"DELETE FROM goals WHERE group_id = ?1 AND member_id = ?2 AND EXISTS (SELECT 1 "
		"FROM goals t WHERE t.group_id = ?1 AND t.member_id = ?3)",
	[S_MERGE_GOALS_COPY] =
		"INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		"set_at, set_by, set_by_name) SELECT group_id, ?3, target_kind, target_id, "
		"due_date, set_at, CASE WHEN set_by = ?2 THEN ?3 ELSE set_by END, set_by_name "
		"FROM goals WHERE group_id = ?1 AND member_id = ?2",
	[S_MERGE_GOAL_MARKS] =
		"UPDATE goal_reached SET goal_member = ?3 WHERE group_id = ?1 AND goal_member = "
		"?2",
	[S_MERGE_GOALS_DROP] =
		"DELETE FROM goals WHERE group_id = ?1 AND member_id = ?2 AND ?3 IS NOT NULL",
	[S_MERGE_MARKS_DROP] =
		"DELETE FROM goal_reached WHERE group_id = ?1 AND member_id = ?2 AND EXISTS "
		"(SELECT 1 FROM goal_reached q WHERE q.group_id = ?1 AND q.goal_member = "
		"goal_reached.goal_member AND q.member_id = ?3)",
	[S_MERGE_MARKS] =
		"UPDATE goal_reached SET member_id = ?3 WHERE group_id = ?1 AND member_id = ?2",
	[S_MERGE_REMIND_OLDER] =
		"DELETE FROM reminders WHERE group_id = ?1 AND member_id = ?3 AND EXISTS "
		"(SELECT 1 FROM reminders f WHERE f.group_id = ?1 AND f.member_id = ?2 AND "
		"f.set_at > reminders.set_at)",
	[S_MERGE_REMIND_FROM] =
		"DELETE FROM reminders WHERE group_id = ?1 AND member_id = ?2 AND EXISTS "
		"(SELECT 1 FROM reminders t WHERE t.group_id = ?1 AND t.member_id = ?3)",
	[S_MERGE_REMIND] =
		"UPDATE reminders SET member_id = ?3 WHERE group_id = ?1 AND member_id = ?2",
	[S_MERGE_REMIND_SENT_DROP] =
		"DELETE FROM reminders_sent WHERE group_id = ?1 AND member_id = ?2 AND EXISTS "
		"(SELECT 1 FROM reminders_sent t WHERE t.group_id = ?1 AND t.member_id = ?3 AND "
		"t.local_date = reminders_sent.local_date)",
	[S_MERGE_REMIND_SENT] =
		"UPDATE reminders_sent SET member_id = ?3 WHERE group_id = ?1 AND member_id = "
		"?2",
	[S_GMERGE_GOAL_MARKS_OLDER] =
		"DELETE FROM goal_reached WHERE group_id = ?2 AND EXISTS (SELECT 1 FROM goals f "
		"JOIN goals t ON t.member_id = f.member_id WHERE f.group_id = ?1 AND t.group_id "
		"= ?2 AND f.member_id = goal_reached.goal_member AND f.set_at > t.set_at)",
	[S_GMERGE_GOALS_OLDER] =
		"DELETE FROM goals WHERE group_id = ?2 AND EXISTS (SELECT 1 FROM goals f WHERE "
		"f.group_id = ?1 AND f.member_id = goals.member_id AND f.set_at > goals.set_at)",
	[S_GMERGE_GOAL_MARKS_FROM] =
		"DELETE FROM goal_reached WHERE group_id = ?1 AND EXISTS (SELECT 1 FROM goals t "
		"WHERE t.group_id = ?2 AND t.member_id = goal_reached.goal_member)",
	[S_GMERGE_GOALS_FROM] =
		"DELETE FROM goals WHERE group_id = ?1 AND EXISTS (SELECT 1 FROM goals t WHERE "
		"t.group_id = ?2 AND t.member_id = goals.member_id)",
	[S_GCOPY_GOALS] =
		"INSERT INTO goals (group_id, member_id, target_kind, target_id, due_date, "
		"set_at, set_by, set_by_name) SELECT ?2, member_id, target_kind, target_id, "
		"due_date, set_at, set_by, set_by_name FROM goals WHERE group_id = ?1 ON "
		"CONFLICT (group_id, member_id) DO NOTHING",
	[S_GCOPY_GOAL_MARKS] =
		"INSERT INTO goal_reached (group_id, goal_member, member_id, reached_at) SELECT "
		"?2, r.goal_member, r.member_id, r.reached_at FROM goal_reached r JOIN goals f "
		"ON f.group_id = r.group_id AND f.member_id = r.goal_member JOIN goals t ON "
		"t.group_id = ?2 AND t.member_id = f.member_id AND t.set_at = f.set_at WHERE "
		"r.group_id = ?1 ON CONFLICT (group_id, goal_member, member_id) DO NOTHING",
	[S_GMERGE_CLEAR_GOAL_MARKS] =
		"DELETE FROM goal_reached WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_GMERGE_CLEAR_GOALS] =
		"DELETE FROM goals WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_GMERGE_REMIND_OLDER] =
		"DELETE FROM reminders WHERE group_id = ?2 AND EXISTS (SELECT 1 FROM reminders "
		"f WHERE f.group_id = ?1 AND f.member_id = reminders.member_id AND f.set_at > "
		"reminders.set_at)",
	[S_GMERGE_REMIND_FROM] =
		"DELETE FROM reminders WHERE group_id = ?1 AND EXISTS (SELECT 1 FROM reminders "
		"t WHERE t.group_id = ?2 AND t.member_id = reminders.member_id)",
	[S_GCOPY_REMIND] =
		"INSERT INTO reminders (group_id, member_id, at, set_at) SELECT ?2, member_id, "
		"at, set_at FROM reminders WHERE group_id = ?1 ON CONFLICT (group_id, "
		"member_id) DO NOTHING",
	[S_GCOPY_REMIND_SENT] =
		"INSERT INTO reminders_sent (group_id, member_id, local_date, idem_key, "
		"recorded_at) SELECT ?2, member_id, local_date, idem_key, recorded_at FROM "
		"reminders_sent WHERE group_id = ?1 ON CONFLICT (group_id, member_id, "
		"local_date) DO NOTHING",
	[S_GMERGE_CLEAR_REMIND] =
		"DELETE FROM reminders WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_GMERGE_CLEAR_REMIND_SENT] =
		"DELETE FROM reminders_sent WHERE group_id = ?1 AND ?2 IS NOT NULL",
	[S_MERGE_UNDO_FROM] =
		"UPDATE events SET old_status = (SELECT t.status FROM progress t WHERE "
		"t.group_id = ?1 AND t.member_id = ?3 AND t.topic_id = events.topic_id) WHERE "
		"group_id = ?1 AND member_id = ?2 AND id = (SELECT MAX(e.id) FROM events e "
		"WHERE e.group_id = ?1 AND e.member_id = ?2 AND e.topic_id = events.topic_id "
		"AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress f JOIN progress t ON "
		"t.group_id = f.group_id AND t.topic_id = f.topic_id WHERE f.group_id = ?1 "
		"AND f.member_id = ?2 AND t.member_id = ?3 AND f.topic_id = events.topic_id "
		"AND f.updated_at > t.updated_at)",
	[S_MERGE_UNDO_TO] =
		"UPDATE events SET old_status = (SELECT f.status FROM progress f WHERE "
		"f.group_id = ?1 AND f.member_id = ?2 AND f.topic_id = events.topic_id) WHERE "
		"group_id = ?1 AND member_id = ?3 AND id = (SELECT MAX(e.id) FROM events e "
		"WHERE e.group_id = ?1 AND e.member_id = ?3 AND e.topic_id = events.topic_id "
		"AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress f JOIN progress t ON "
		"t.group_id = f.group_id AND t.topic_id = f.topic_id WHERE f.group_id = ?1 "
		"AND f.member_id = ?2 AND t.member_id = ?3 AND f.topic_id = events.topic_id)",
	[S_GMERGE_UNDO_FROM] =
		"UPDATE events SET old_status = (SELECT t.status FROM progress t WHERE "
		"t.group_id = ?2 AND t.member_id = events.member_id AND t.topic_id = "
		"events.topic_id) WHERE group_id = ?1 AND id = (SELECT MAX(e.id) FROM events "
		"e WHERE e.group_id = ?1 AND e.member_id = events.member_id AND e.topic_id = "
		"events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress f JOIN "
		"progress t ON t.member_id = f.member_id AND t.topic_id = f.topic_id WHERE "
		"f.group_id = ?1 AND t.group_id = ?2 AND f.member_id = events.member_id AND "
		"f.topic_id = events.topic_id AND f.updated_at > t.updated_at)",
	[S_GMERGE_UNDO_TO] =
		"UPDATE events SET old_status = (SELECT f.status FROM progress f WHERE "
		"f.group_id = ?1 AND f.member_id = events.member_id AND f.topic_id = "
		"events.topic_id) WHERE group_id = ?2 AND id = (SELECT MAX(e.id) FROM events "
		"e WHERE e.group_id = ?2 AND e.member_id = events.member_id AND e.topic_id = "
		"events.topic_id AND " LIVE_EVENT ") AND EXISTS (SELECT 1 FROM progress f JOIN "
		"progress t ON t.member_id = f.member_id AND t.topic_id = f.topic_id WHERE "
		"f.group_id = ?1 AND t.group_id = ?2 AND f.member_id = events.member_id AND "
		"f.topic_id = events.topic_id)",
	[S_LINK_CODES_PRUNE] = "DELETE FROM link_codes WHERE expires_at < ?1",
	[S_LINK_ATTEMPTS_PRUNE] = "DELETE FROM link_attempts WHERE at < ?1",
	[S_DUMP_LINKS] = "SELECT 'member', member_id, canonical_id, linked_at FROM member_links "
			 "WHERE ?1 IS NULL OR canonical_id IN (SELECT m.member_id FROM members m "
			 "WHERE m.group_id = ?1) UNION ALL "
			 "SELECT 'group', group_id, canonical_id, linked_at FROM group_links "
			 "WHERE ?1 IS NULL OR group_id = ?1 OR canonical_id = ?1 ORDER BY 1, 2",
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
#define SCHEMA_LATEST ((int)ARRAY_SIZE(migrations))

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

struct sq_stmt {
	struct bk_stmt base;
	sqlite3_stmt *s;
	struct bk *db;
};

struct bk {
	sqlite3 *db;
	struct sq_stmt stmt[S_COUNT];
	struct checkpointer *ckpt; /* NULL: SQLite checkpoints on commit, as by default */
};

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
static int backup_into(struct bk *st, sqlite3 *dst, const char *path, char *err)
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

static int sq_backup(struct bk *st, const char *path, bool force, char *err)
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
		if (v < 0 || v >= to || v > SCHEMA_LATEST) {
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
	if (v > SCHEMA_LATEST) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: the database has schema version %d but this cohort knows only up to "
			 "%d (run a newer cohort, or restore a backup)",
			 path, v, SCHEMA_LATEST);
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
	 * temp_store: SQLite's ephemeral tables (transient indexes, GROUP BY and
	 * ORDER BY sorters, an "IN (SELECT ...)" such as the member merge's) are
	 * kept in memory. Measured when the period-score upsert still read the
	 * roadmap's topics through "IN (SELECT topic_id FROM roadmap_topics)" (it
	 * now tests ON_ROADMAP(), correlated EXISTS subqueries): in a file, that
	 * table cost an open, an access and an unlink of /var/tmp/etilqs_* for
	 * about every third /done (2,992 of each in the 10,500 of bench-gateway).
	 */
	char pragmas[200];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;"
		 "PRAGMA journal_size_limit = %d; PRAGMA temp_store = MEMORY;",
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

static int sq_create_at_version(const char *path, int version, char *err)
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
	/* Everything was copied: the thread sleeps until woken, even with pages left. */
	bool asleep = c->last <= c->copied;
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
	} else if (asleep && pages > c->copied) {
		pthread_cond_signal(&c->wake); /* to copy them once the writes pause */
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

static void sq_checkpoint_stats(struct bk *st, struct store_checkpoints *out)
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


static int sq_open(const char *path, bool sync_full, bool create, struct bk **out, char *err)
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
	rc = migrate(db, path, SCHEMA_LATEST, err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	struct bk *st = xcalloc(1, sizeof(*st));
	st->db = db;
	st->ckpt = checkpointer_start(db, path, sync_full);
	for (int i = 0; i < S_COUNT; i++) {
		st->stmt[i].base.be = &store_sqlite;
		st->stmt[i].db = st;
		if (!sql[i] || sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
						  &st->stmt[i].s, NULL) != SQLITE_OK) {
			snprintf(err, COHORT_ERR_LEN, "%s: preparing statement %d failed: %s", path,
				 i, sql[i] ? sqlite3_errmsg(db) : "no SQL for it");
			store_sqlite.close(st);
			return COHORT_ERR_STORE;
		}
	}
	*out = st;
	return COHORT_OK;
}

static void sq_close(struct bk *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i].s);
	checkpointer_stop(st->db, st->ckpt);
	sqlite3_close(st->db); /* the last connection checkpoints and removes the WAL */
	free(st);
}

static int sq_schema_version(struct bk *st)
{
	return user_version(st->db);
}

static struct bk_stmt *sq_prep(struct bk *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id].s;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return &st->stmt[id].base;
}

static sqlite3_stmt *sq(struct bk_stmt *s)
{
	return ((struct sq_stmt *)s)->s;
}

static void sq_bind_text(struct bk_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(sq(s), i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(sq(s), i);
}

static void sq_bind_int(struct bk_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(sq(s), i, v);
}

static int sq_step(struct bk_stmt *s)
{
	int rc = sqlite3_step(sq(s));
	if (rc == SQLITE_ROW)
		return BK_ROW;
	if (rc == SQLITE_DONE)
		return BK_DONE;
	sqlite3 *db = ((struct sq_stmt *)s)->db->db;
	int ext = sqlite3_extended_errcode(db);
	if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
		return BK_DUPLICATE;
	return rc == SQLITE_CONSTRAINT ? BK_CONSTRAINT : BK_ERROR;
}

static const char *sq_col_text(struct bk_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(sq(s), i);
}

static int64_t sq_col_int(struct bk_stmt *s, int i)
{
	return sqlite3_column_int64(sq(s), i);
}

static void sq_reset(struct bk_stmt *s)
{
	sqlite3_reset(sq(s));
}

static int64_t sq_changes(struct bk_stmt *s)
{
	return sqlite3_changes(((struct sq_stmt *)s)->db->db);
}

static const char *sq_errmsg(struct bk *st)
{
	return sqlite3_errmsg(st->db);
}

static bool sq_in_transaction(struct bk *st)
{
	return !sqlite3_get_autocommit(st->db);
}

const struct backend store_sqlite = {
	.name = "sqlite",
	.schema_latest = SCHEMA_LATEST,
	.open = sq_open,
	.close = sq_close,
	.create_at_version = sq_create_at_version,
	.schema_version = sq_schema_version,
	.prep = sq_prep,
	.bind_text = sq_bind_text,
	.bind_int = sq_bind_int,
	.step = sq_step,
	.col_text = sq_col_text,
	.col_int = sq_col_int,
	.reset = sq_reset,
	.changes = sq_changes,
	.errmsg = sq_errmsg,
	.in_transaction = sq_in_transaction,
	.backup = sq_backup,
	.checkpoint_stats = sq_checkpoint_stats,
};
