/*
 * The store's backends (internal to store/; bot/ sees only store.h).
 *
 * store.c holds the backend-neutral logic once: what a change means for the
 * event log, progress, the maintained score tables, batches, undo, dump and
 * restore. It speaks to a database through statement ids: each backend has
 * its own SQL text for every id (its dialect) and a small prepare, bind,
 * step and column API. A backend also owns its connection, schema and
 * migrations, and its maintenance (SQLite: the checkpointer and backup).
 *
 * Binds are numbered from 1, columns from 0, as in SQLite. Statement texts
 * are written so that both backends return the same columns in the same
 * order for one id.
 */
#ifndef COHORT_STORE_BACKEND_H
#define COHORT_STORE_BACKEND_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

enum stmt_id {
	S_BEGIN, /* a write transaction */
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_READ_BEGIN, /* a read transaction that sees one snapshot (dump) */
	S_READ_END,
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
	S_GROUP_ZONE,
	S_SET_CHANNEL,
	S_SET_TIME,
	S_STATE_GET,
	S_STATE_SET,
	S_STATE_DELETE,
	S_STATE_LIST,
	S_DEFAULT_CHANNEL,
	S_DIGEST_GROUPS,
	S_SET_EVERY,
	S_DIGEST_GET,
	S_DIGEST_PREVIOUS,
	S_DIGEST_INSERT,
	S_DIGEST_RANK_INSERT,
	S_DIGEST_SENT,
	S_DIGEST_RANKS,
	S_ON_ROADMAP,
	S_GROUPS,
	S_TOPIC_TOTALS,
	S_RENAME_PROGRESS,
	S_RENAME_EVENTS,
	S_FINGERPRINT_GET,
	S_FINGERPRINT_SET,
	S_LOCK_DERIVED, /* held to the end of the transaction: no change runs beside a rederive */
	S_ROADMAP_CLEAR,
	S_ROADMAP_ADD,
	S_RECOUNT_MEMBERS,
	S_TOPIC_COUNTS_CLEAR,
	S_TOPIC_COUNTS_FILL,
	S_DUMP_SETTINGS,
	S_DUMP_MEMBERS,
	S_DUMP_PROGRESS,
	S_DUMP_EVENTS,
	S_DUMP_DIGESTS,
	S_DUMP_DIGEST_RANKS,
	S_RESTORE_SETTINGS,
	S_RESTORE_MEMBER,
	S_RESTORE_PROGRESS,
	S_RESTORE_EVENT, /* returns one row: the new event's id */
	S_RESTORE_DIGEST,
	S_RESTORE_DIGEST_RANK,
	S_LEASE_TAKE,    /* one row (holder, ms left) when taken; none when another holds it */
	S_LEASE_GET,     /* (holder, ms left) of a lease */
	S_LEASE_RELEASE,
	S_LEASE_TAKE_OVER, /* from a holder that is gone: changes one row or none */
	S_LEASE_PRUNE,     /* deletes the leases lapsed more than ?1 ms ago */
	S_GOAL_SET, /* goals (bot/goal.c) */
	S_GOAL_UNMARK,
	S_GOAL_DELETE,
	S_GOALS,
	S_GOAL_MARK,
	S_GOAL_MARKS,
	S_DUMP_GOALS,
	S_DUMP_GOAL_MARKS,
	S_RESTORE_GOAL,
	S_RESTORE_GOAL_MARK,
	S_DASHBOARD_GET,   /* a group's page: token, enabled */
	S_DASHBOARD_SET,
	S_DASHBOARD_GROUP, /* the group whose page is on under a token */
	S_RECENT_DONE,     /* a group's latest finishes with their notes */
	S_ACTIVITY_ADD,    /* a change's finish and net done count into its 15-minute bucket */
	S_ACTIVITY_CLEAR,
	S_ACTIVITY_FILL, /* every bucket derived again from the event log */
	S_ACTIVITY_READ,
	S_ACTIVITY_BEFORE,
	/* The outbox (store_outbox_*). */
	S_OUTBOX_ANSWERED,
	S_OUTBOX_PUT, /* returns one row: the new answer's id */
	S_OUTBOX_CLAIM, /* returns the claimed rows: id, platform, source, address, body, created */
	S_OUTBOX_RENEW,
	S_OUTBOX_DONE,
	S_OUTBOX_RELEASE,
	S_OUTBOX_OWED,
	S_RATE_TAKE,       /* one row (ms left of the second) when taken; none when used up */
	S_RATE_WAIT,       /* the ms until the database's next second */
	S_LAST_FIX,   /* an admin's latest live correction (/fix) */
	S_FIX_EVENTS, /* the live events of one correction, newest first */
	S_NAME_COUNT, /* members of a group with one name (case-insensitive) */
	S_CORRECTED,  /* records whose latest live change is an admin's correction */
	S_REMIND_SET, /* reminders (bot/remind.c) */
	S_REMIND_GET,
	S_REMIND_DELETE,
	S_REMINDERS,
	S_REMIND_RECORD, /* changes one row the first time a (group, member, date) is recorded */
	S_LINK_CODE_PUT, /* links (/link, bot/link.c) */
	S_LINK_CODE_GET,
	S_LINK_CODE_USE, /* changes one row when the code was unused and not expired */
	S_LINK_ATTEMPT_ADD,
	S_LINK_ATTEMPTS,
	S_MEMBER_CANONICAL,
	S_MEMBER_LINK_GET,
	S_MEMBER_LINK_ADD,
	S_MEMBER_LINK_DELETE,
	S_MEMBER_LINKED, /* one row when either id is in a link */
	S_MEMBER_GROUPS,   /* the groups a member has a row, goal, mark or reminder in */
	S_MERGE_DROP_OLDER, /* (group, from, to): to's records that from changed later */
	S_MERGE_DROP_FROM,  /* from's records that to has too (now the later ones) */
	S_MERGE_PROGRESS,   /* the rest of from's records become to's */
	S_MERGE_EVENTS,
	S_MERGE_FIRST_SEEN, /* to's first_seen: the earlier of the two */
	S_MERGE_MEMBER_ADD,  /* to's row (a copy of from's) unless it has one */
	S_MERGE_PERIODS_DROP, /* from's period scores (derived again) */
	S_MERGE_MEMBER_DROP, /* from's row, last (what referred to it moved) */
	S_MEMBER_RENAME_ALL,
	S_RECOUNT_GROUP,
	S_TOPIC_COUNTS_CLEAR_GROUP,
	S_TOPIC_COUNTS_FILL_GROUP,
	S_GROUP_DONE, /* the group's done records on the roadmap */
	S_LINK_LOG,
	S_GROUP_CANONICAL, /* group links (schema 16) */
	S_GROUP_LINK_GET,
	S_GROUP_LINK_ADD,
	S_GROUP_LINK_DELETE,
	S_GROUP_LINKED,  /* one row when either group is in a link */
	S_GROUP_SHARED,  /* one row when a group is the canonical of a link */
	S_GMERGE_MEMBERS, /* (from, to): from's members into to (those to lacks) */
	S_GMERGE_DROP_OLDER,
	S_GMERGE_DROP_FROM,
	S_GMERGE_PROGRESS,
	S_GMERGE_EVENTS,
	S_GMERGE_ACTIVITY,
	S_GMERGE_CLEAR_ACTIVITY,
	S_GMERGE_CLEAR_PERIODS,
	S_GMERGE_CLEAR_COUNTS,
	S_GMERGE_CLEAR_MEMBERS,
	S_GCOPY_PROGRESS, /* (from, to): a copy of from's records in to */
	S_GCOPY_EVENTS,   /* from's live changes, copied */
	S_ACTIVITY_FILL_GROUP,
	S_DUMP_LINKS, /* member and group links: kind, alias, canonical, linked_at */
	S_MERGE_UNDO_FROM, /* (group, from, to): from's latest change of a topic it wins undoes to to's status */
	S_MERGE_UNDO_TO, /* to's latest change of a topic it wins undoes to from's status */
	S_GMERGE_UNDO_FROM, /* (from, to): the same for a group link, per member */
	S_GMERGE_UNDO_TO,
	S_ROADMAPS_CLEAR, /* the roadmaps (names) the store was told of */
	S_ROADMAPS_ADD,   /* (name, is_default) */
	S_GROUP_ROADMAP_GET, /* a group's chosen roadmap */
	S_GROUP_ROADMAP_SET, /* (group, name, at) */
	S_GROUP_ROADMAP_DELETE,
	S_DUMP_GROUP_ROADMAPS,
	S_RESTORE_GROUP_ROADMAP,
	S_GROUP_TOPIC_TOTALS, /* progress records per (group, topic) */
	S_MERGE_GOAL_MARKS_OLDER, /* to's goal's marks when from set a goal later */
	S_MERGE_GOALS_OLDER, /* to's goal when from set one later */
	S_MERGE_GOAL_MARKS_FROM, /* from's goal's marks when to's goal is the later */
	S_MERGE_GOALS_FROM, /* from's goal when to's is the later */
	S_MERGE_GOALS_COPY, /* from's goal (the later) as to's */
	S_MERGE_GOAL_MARKS, /* its marks with it */
	S_MERGE_GOALS_DROP, /* from's goal row (copied) */
	S_MERGE_MARKS_DROP, /* from's marks of a goal to reached too */
	S_MERGE_MARKS, /* from's other marks (the group's goal) become to's */
	S_MERGE_REMIND_OLDER, /* to's reminder when from set one later */
	S_MERGE_REMIND_FROM, /* from's reminder when to's is the later */
	S_MERGE_REMIND, /* from's reminder (the later) becomes to's */
	S_MERGE_REMIND_SENT_DROP, /* from's sent reminders of a day to has one of */
	S_MERGE_REMIND_SENT, /* the rest become to's */
	S_GMERGE_GOAL_MARKS_OLDER, /* (from, to): marks of to's goals that from set later */
	S_GMERGE_GOALS_OLDER, /* to's goals that from set later */
	S_GMERGE_GOAL_MARKS_FROM, /* marks of from's goals that to has (the later) */
	S_GMERGE_GOALS_FROM, /* from's goals that to has (the later) */
	S_GCOPY_GOALS, /* (from, to): from's goals copied to to */
	S_GCOPY_GOAL_MARKS, /* from's marks of the goals to has from it */
	S_GMERGE_CLEAR_GOAL_MARKS, /* from's marks (copied) */
	S_GMERGE_CLEAR_GOALS, /* from's goals (copied) */
	S_GMERGE_REMIND_OLDER, /* to's reminders that from set later */
	S_GMERGE_REMIND_FROM, /* from's reminders that to has (the later) */
	S_GCOPY_REMIND, /* from's reminders copied to to */
	S_GCOPY_REMIND_SENT, /* from's sent reminders copied to to */
	S_GMERGE_CLEAR_REMIND, /* from's reminders (copied) */
	S_GMERGE_CLEAR_REMIND_SENT, /* from's sent reminders (copied) */
	S_LINK_CODES_PRUNE, /* codes that expired before ?1 (used or not) */
	S_LINK_ATTEMPTS_PRUNE, /* wrong codes counted before ?1 */
	S_COUNT
};

/* Group links (schema 16): a group (alias) that is recorded as another (canonical). */
#define GROUP_LINK_SCHEMA(without_rowid, int64)                                                    \
	"CREATE TABLE group_links ("                                                               \
	"  group_id TEXT PRIMARY KEY,"                                                             \
	"  canonical_id TEXT NOT NULL UNIQUE,"                                                     \
	"  linked_at " int64 " NOT NULL)" without_rowid ";"

/*
 * The link tables (schema 15, both backends, as GOALS_SCHEMA): one-time codes
 * (a hash only), wrong codes typed (brute force), member links (alias ->
 * canonical), and the log of links made and ended.
 */
#define LINK_SCHEMA(without_rowid, int64, serial)                                                  \
	"CREATE TABLE link_codes ("                                                                \
	"  code_hash TEXT PRIMARY KEY,"                                                            \
	"  kind TEXT NOT NULL CHECK (kind = 'member' OR kind = 'group'),"                          \
	"  owner_id TEXT NOT NULL,"                                                                \
	"  created_at " int64 " NOT NULL,"                                                         \
	"  expires_at " int64 " NOT NULL,"                                                         \
	"  used_at " int64 ")" without_rowid ";"                                                   \
	"CREATE TABLE link_attempts ("                                                             \
	"  member_id TEXT NOT NULL,"                                                               \
	"  at " int64 " NOT NULL);"                                                                \
	"CREATE INDEX link_attempts_member ON link_attempts (member_id, at);"                      \
	"CREATE TABLE member_links ("                                                              \
	"  member_id TEXT PRIMARY KEY,"                                                            \
	"  canonical_id TEXT NOT NULL UNIQUE,"                                                     \
	"  linked_at " int64 " NOT NULL)" without_rowid ";"                                        \
	"CREATE TABLE link_log ("                                                                  \
	"  id " serial ","                                                                         \
	"  kind TEXT NOT NULL,"                                                                    \
	"  action TEXT NOT NULL,"                                                                  \
	"  alias_id TEXT NOT NULL,"                                                                \
	"  canonical_id TEXT NOT NULL,"                                                            \
	"  at " int64 " NOT NULL);"

/* The reminder tables (schema 12), for both backends, as GOALS_SCHEMA. */
#define REMIND_SCHEMA(without_rowid, int64)                                                        \
	"CREATE TABLE reminders ("                                                                 \
	"  group_id TEXT NOT NULL,"                                                                \
	"  member_id TEXT NOT NULL,"                                                               \
	"  at TEXT NOT NULL,"                                                                      \
	"  set_at " int64 " NOT NULL,"                                                             \
	"  PRIMARY KEY (group_id, member_id))" without_rowid ";"                                   \
	"CREATE TABLE reminders_sent ("                                                            \
	"  group_id TEXT NOT NULL,"                                                                \
	"  member_id TEXT NOT NULL,"                                                               \
	"  local_date TEXT NOT NULL,"                                                              \
	"  idem_key TEXT NOT NULL,"                                                                \
	"  recorded_at " int64 " NOT NULL,"                                                        \
	"  PRIMARY KEY (group_id, member_id, local_date))" without_rowid ";"

/* The goal tables (schema 6), for both backends: each gives its own WITHOUT ROWID and int64 type. */
#define GOALS_SCHEMA(without_rowid, int64)                                                         \
	"CREATE TABLE goals ("                                                                     \
	"  group_id TEXT NOT NULL,"                                                                \
	"  member_id TEXT NOT NULL,"                                                               \
	"  target_kind TEXT NOT NULL CHECK (target_kind = 'topic' OR target_kind = 'section'),"    \
	"  target_id TEXT NOT NULL,"                                                               \
	"  due_date TEXT NOT NULL,"                                                                \
	"  set_at " int64 " NOT NULL,"                                                             \
	"  set_by TEXT NOT NULL,"                                                                  \
	"  set_by_name TEXT NOT NULL,"                                                             \
	"  PRIMARY KEY (group_id, member_id))" without_rowid ";"                                   \
	"CREATE TABLE goal_reached ("                                                              \
	"  group_id TEXT NOT NULL,"                                                                \
	"  goal_member TEXT NOT NULL,"                                                             \
	"  member_id TEXT NOT NULL,"                                                               \
	"  reached_at " int64 " NOT NULL,"                                                         \
	"  PRIMARY KEY (group_id, goal_member, member_id),"                                        \
	"  FOREIGN KEY (group_id, goal_member) REFERENCES goals (group_id, member_id))"            \
	without_rowid ";"

/*
 * Who made a change (schema 7, both backends): NULL for the member themself,
 * else the admin who corrected the record (/fix) and their name then;
 * removal is 1 on the changes of one "/fix MEMBER remove" (one correction:
 * the same actor, member and time), else NULL. The partial index finds an
 * admin's last correction for /undo.
 */
#define EVENTS_ACTOR_SCHEMA                                                                        \
	"ALTER TABLE events ADD COLUMN actor_id TEXT;"                                             \
	"ALTER TABLE events ADD COLUMN actor_name TEXT;"                                           \
	"ALTER TABLE events ADD COLUMN removal INTEGER;"                                           \
	"CREATE INDEX events_actor ON events (group_id, actor_id, id) WHERE actor_id IS NOT NULL;"

/*
 * An admin's correction e that nobody changed since (a correlated test): no
 * later live change of that member's topic. Only such a correction is the
 * admin's to undo, so an undo never overwrites a newer change.
 */
#define NOT_SUPERSEDED                                                                             \
	"NOT EXISTS (SELECT 1 FROM events l WHERE l.group_id = e.group_id AND "                    \
	"l.member_id = e.member_id AND l.topic_id = e.topic_id AND l.id > e.id AND "               \
	"l.reverts IS NULL AND NOT EXISTS (SELECT 1 FROM events v WHERE v.reverts = l.id))"

/*
 * The roadmap a group counts (schema 14, both backends; g a group id
 * expression): its choice (group_roadmap) while that roadmap is one the store
 * was last told of, else the default one. Names match ignoring case, as the
 * bot's rmset_find() does (a choice of "DevOps" is devops.md), and the result
 * is the spelling the store was told (the one roadmap_topics keeps).
 */
#define GROUP_ROADMAP(g)                                                                           \
	"COALESCE((SELECT rn.name FROM group_roadmap rg JOIN roadmaps rn ON "                      \
	"lower(rn.name) = lower(rg.roadmap) WHERE rg.group_id = " g "), "                          \
	"(SELECT rd.name FROM roadmaps rd WHERE rd.is_default = 1))"

/*
 * Whether topic id expression t counts toward group g's scores (a correlated
 * test): it is on the group's roadmap, or no roadmap was ever given (every
 * topic counts).
 */
#define ON_ROADMAP(g, t)                                                                           \
	"(EXISTS (SELECT 1 FROM roadmap_topics rt WHERE rt.roadmap = " GROUP_ROADMAP(g) " AND "    \
	"rt.topic_id = " t ") OR NOT EXISTS (SELECT 1 FROM roadmap_topics))"

/*
 * The group's page's activity (store_group_activity()), derived from the log
 * for every group (p NULL) or group p: per 15-minute bucket of Unix time,
 * finishes (an undo of a finish takes one back) and the net change of done
 * topics on the group's roadmap.
 */
#define ACTIVITY_REFILL(p)                                                                         \
	"INSERT INTO group_activity (group_id, bucket, finished, net) "                            \
	"SELECT ev.group_id, ev.at / 900000, "                                                     \
	"SUM(CASE WHEN ev.new_status = 'done' AND ev.reverts IS NULL THEN 1 ELSE 0 END) - "        \
	"SUM(CASE WHEN ev.old_status = 'done' AND ev.reverts IS NOT NULL THEN 1 ELSE 0 END), "     \
	"SUM(CASE WHEN ev.new_status = 'done' THEN 1 ELSE 0 END) - "                               \
	"SUM(CASE WHEN ev.old_status = 'done' THEN 1 ELSE 0 END) "                                 \
	"FROM events ev WHERE (" p " IS NULL OR ev.group_id = " p ") AND "                         \
	"(ev.new_status = 'done' OR ev.old_status = 'done') AND "                                  \
	ON_ROADMAP("ev.group_id", "ev.topic_id") " GROUP BY ev.group_id, ev.at / 900000"

/* What bk_step() says. */
enum bk_result {
	BK_ROW,       /* a row is ready for the column calls */
	BK_DONE,      /* no (more) rows: the statement ran */
	BK_DUPLICATE, /* a primary key or unique constraint refused the row */
	BK_CONSTRAINT, /* another constraint refused it */
	BK_ERROR      /* anything else: bk_errmsg() says what */
};

struct backend;
struct bk; /* a connection */

/* Every backend's statement starts with this header. */
struct bk_stmt {
	const struct backend *be;
};

struct backend {
	const char *name;
	bool shared; /* several processes may use one store at once */
	int schema_latest; /* the newest schema version it knows */
	/*
	 * Opens (with create: creating when missing) and migrates the store at
	 * target. Returns COHORT_OK, COHORT_ERR_NOT_FOUND (no store and not
	 * create) or COHORT_ERR_STORE, with the reason in err.
	 */
	int (*open)(const char *target, bool sync_full, bool create, struct bk **out, char *err);
	void (*close)(struct bk *db);
	int (*create_at_version)(const char *target, int version, char *err);
	int (*schema_version)(struct bk *db);
	/* Statement id, reset, its binds cleared. Owned by the connection. */
	struct bk_stmt *(*prep)(struct bk *db, enum stmt_id id);
	void (*bind_text)(struct bk_stmt *s, int i, const char *v); /* NULL binds NULL */
	void (*bind_int)(struct bk_stmt *s, int i, int64_t v);
	int (*step)(struct bk_stmt *s); /* an enum bk_result */
	/* The column of the current row: NULL for SQL NULL; valid until the next step or reset. */
	const char *(*col_text)(struct bk_stmt *s, int i);
	int64_t (*col_int)(struct bk_stmt *s, int i); /* 0 for NULL */
	void (*reset)(struct bk_stmt *s);
	/* Rows the statement's last run changed. */
	int64_t (*changes)(struct bk_stmt *s);
	const char *(*errmsg)(struct bk *db);
	bool (*in_transaction)(struct bk *db);
	int (*backup)(struct bk *db, const char *path, bool force, char *err);
	void (*checkpoint_stats)(struct bk *db, struct store_checkpoints *out);
	/* store_set_statement_timeout(); NULL: the backend has nothing to set. */
	int (*statement_timeout)(struct bk *db, int ms);
};

extern const struct backend store_sqlite;
extern const struct backend store_postgres;

static inline void bk_bind_text(struct bk_stmt *s, int i, const char *v)
{
	s->be->bind_text(s, i, v);
}
static inline void bk_bind_int(struct bk_stmt *s, int i, int64_t v)
{
	s->be->bind_int(s, i, v);
}
static inline int bk_step(struct bk_stmt *s)
{
	return s->be->step(s);
}
static inline const char *bk_col_text(struct bk_stmt *s, int i)
{
	return s->be->col_text(s, i);
}
static inline int64_t bk_col_int(struct bk_stmt *s, int i)
{
	return s->be->col_int(s, i);
}
static inline void bk_reset(struct bk_stmt *s)
{
	s->be->reset(s);
}
static inline int64_t bk_changes(struct bk_stmt *s)
{
	return s->be->changes(s);
}

#endif
