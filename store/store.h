/*
 * The progress store: SQLite or PostgreSQL behind an interface in product terms.
 *
 * Every change is an event in an append-only log; current progress, each
 * member's all-time, week and month scores, and per-topic counts are
 * maintained from it in the same transaction, so reads never scan a group's
 * records. A change that carries a source event id is applied at most once. Every SQL statement
 * of cohort lives in store/ (the backend-neutral logic in store.c, each backend's dialect
 * in its own file, see backend.h). A store handle belongs to one thread at a time.
 *
 * Runtime failures return COHORT_ERR_STORE and log the database's message; nothing
 * is half-applied (each change is one transaction).
 */
#ifndef COHORT_STORE_H
#define COHORT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_status { STATUS_NONE, STATUS_IN_PROGRESS, STATUS_DONE, STATUS_SKIPPED };

/* "none", "in_progress", "done", "skipped": the words stored (export says "in progress"). */
const char *store_status_name(enum store_status s);

/* The newest schema version this build knows. */
int store_schema_latest(void);

struct store;

/*
 * Opens (creating if needed) and migrates the store at target: a SQLite file
 * path, or a PostgreSQL connection URI (postgresql:// or postgres://). sync_full
 * selects synchronous=FULL (survives power loss) over NORMAL. A new store
 * file is created mode 0600 (its -wal and -shm follow). Any number of
 * processes may open (create, upgrade) one store at the same moment.
 * Returns COHORT_OK, or COHORT_ERR_STORE with the reason in err.
 */
int store_open(const char *target, bool sync_full, struct store **out, char *err);
/*
 * The same for a store that must exist already: COHORT_ERR_NOT_FOUND (and
 * nothing created) when there is no file at path.
 */
int store_open_existing(const char *target, bool sync_full, struct store **out, char *err);
void store_free(struct store *st);

/*
 * For tests of upgrades: creates a database at path migrated only up to
 * version (0 = empty). Returns COHORT_OK or COHORT_ERR_STORE.
 */
int store_create_at_version(const char *path, int version, char *err);
/* The schema version of an open store. */
int store_schema_version(struct store *st);

struct store_change {
	const char *group_id;    /* "discord:123", "console:local" */
	const char *member_id;   /* platform-qualified */
	const char *member_name; /* display name, kept up to date */
	const char *topic_id;
	enum store_status status;
	const char *note;      /* NULL or "" for none */
	const char *source_id; /* the platform event id, or NULL */
	int64_t at;            /* Unix ms */
};

/* What a topic's status was before a change. */
struct store_prior {
	enum store_status status;
	int64_t updated_at; /* 0 when it had no status */
};

/*
 * Sets one member's status for one topic. prior (may be NULL) receives the
 * status before. Returns COHORT_OK (committed), COHORT_ERR_UNCHANGED (it
 * already had that status: nothing logged), COHORT_ERR_DUPLICATE (source_id
 * was applied before: nothing changed) or COHORT_ERR_STORE.
 */
int store_set_status(struct store *st, const struct store_change *c, struct store_prior *prior);

/*
 * An admin's correction (/fix): store_set_status() of another member's
 * record, logged as made by actor_id (named actor_name then). The member's
 * own undo never reverts it; the admin's does (store_undo()). Same returns.
 */
int store_fix_status(struct store *st, const struct store_change *c, const char *actor_id,
		     const char *actor_name, struct store_prior *prior);
/*
 * An admin's removal of a member's records: every progress record of
 * member_id in group_id set to none (points, counts and ranks follow), each
 * change logged as actor_id's at time at, in one transaction (one
 * correction: the admin's undo restores them all). *count receives the
 * records cleared. Returns COHORT_OK, COHORT_ERR_NOT_FOUND (no records),
 * COHORT_ERR_DUPLICATE (source_id seen) or COHORT_ERR_STORE.
 */
int store_fix_remove(struct store *st, const char *group_id, const char *member_id,
		     const char *actor_id, const char *actor_name, const char *source_id,
		     int64_t at, int *count);

/*
 * A batch: the changes made until store_batch_end() commit together (each is
 * a savepoint, so one that fails or changes nothing is undone alone). keep =
 * false rolls the whole batch back. Both return COHORT_OK or COHORT_ERR_STORE.
 */
int store_batch_begin(struct store *st);
int store_batch_end(struct store *st, bool keep);

/* How many events the log holds (0: nothing was ever recorded). */
/* WAL checkpoints since store_open(): see CKPT_SOFT in sqlite.c (zeros on other backends). */
struct store_checkpoints {
	long background; /* on the checkpoint thread */
	long on_commit;  /* on the committing thread: the WAL reached its cap */
	long failed;     /* of either kind (a busy one is not a failure) */
	long left;       /* WAL pages not copied back yet */
};
void store_checkpoint_stats(struct store *st, struct store_checkpoints *out);
int store_event_count(struct store *st, int64_t *n);

/*
 * Copies the store to path with SQLite's online backup (safe while cohort
 * runs). The copy is one self-contained file (no -wal, -shm), mode 0600,
 * written under a new unique name beside path (created exclusively) and
 * checked (quick_check) before it takes path's name. An existing path is
 * replaced only with force; the live store itself never.
 * Returns COHORT_OK, COHORT_ERR_USAGE (path is the live store, or exists and
 * not force), COHORT_ERR_STORE (the store is damaged: nothing written) or
 * COHORT_ERR_IO, with the reason in err.
 */
int store_backup(struct store *st, const char *path, bool force, char *err);

/*
 * Every group the store knows (with a member or settings), in id order. fn
 * returns non-zero to stop (that value is returned); else COHORT_OK or
 * COHORT_ERR_STORE.
 */
int store_groups(struct store *st, int (*fn)(const char *group_id, void *ud), void *ud);

struct store_undone {
	char *topic_id; /* owned by the caller: free() it */
	enum store_status from, to;
	/* A correction reverted: whose records (new strings, free() them), else NULL. */
	char *fixed_member_id, *fixed_member_name;
	int count; /* the changes reverted (a removal reverts several; topic_id is the last) */
};

/*
 * Reverts the member's most recent change that is not itself an undo and
 * has not been reverted; repeated undos walk further back. The topic gets
 * back its earlier status, note and time. A change an admin made to the
 * member's records (actor_id) is not the member's to undo; an admin's own
 * corrections are: when member_id's latest live correction of someone
 * (every change of it: same member, same time) is newer than their own
 * latest change, that correction is reverted instead (logged as theirs,
 * fixed_member_id says whose). Returns COHORT_OK,
 * COHORT_ERR_NOT_FOUND (nothing to undo), COHORT_ERR_DUPLICATE or
 * COHORT_ERR_STORE.
 */
int store_undo(struct store *st, const char *group_id, const char *member_id,
	       const char *member_name, const char *source_id, int64_t at,
	       struct store_undone *out);

/* One progress record. Strings are borrowed for the callback only. */
struct store_row {
	const char *group_id;
	const char *member_id;
	const char *member_name;
	const char *topic_id;
	enum store_status status;
	const char *note; /* "" when none */
	int64_t updated_at;
};
/* Row callbacks return 0 to go on, non-zero to stop (that value is returned). */
typedef int (*store_row_fn)(const struct store_row *row, void *ud);

/* A member's records in one group. */
int store_member_progress(struct store *st, const char *group_id, const char *member_id,
			  store_row_fn fn, void *ud);
/* Up to `limit` members' records of one status for one topic, oldest change first. */
int store_topic_progress(struct store *st, const char *group_id, const char *topic_id,
			 enum store_status status, int limit, store_row_fn fn, void *ud);
/* Every record, of one group or (group_id NULL) all, ordered by group, member, topic. */
int store_export(struct store *st, const char *group_id, store_row_fn fn, void *ud);

struct store_count {
	const char *topic_id;
	int done;
	int in_progress;
};
typedef int (*store_count_fn)(const struct store_count *c, void *ud);
/* One topic's counts (zeros when nobody has it); out->topic_id is topic_id. */
int store_topic_count(struct store *st, const char *group_id, const char *topic_id,
		      struct store_count *out);
/* Per topic with anyone on it or done: how many members finished it and how many are on it. */
int store_topic_counts(struct store *st, const char *group_id, store_count_fn fn, void *ud);
/* The group's member count and its done-or-skipped records, summed over members. */
int store_group_totals(struct store *st, const char *group_id, int *members, int *finished);

/* The ranking periods. Week and month scores are maintained per local period. */
enum store_period { PERIOD_ALL, PERIOD_WEEK, PERIOD_MONTH };

/*
 * The calendar the store keeps period scores by: for time t, start[0]..end[0]
 * receive the local week containing t in time zone `timezone` (end
 * exclusive), start[1]..end[1] the local month. timezone is the group's own
 * zone as stored (store_set_digest_time), NULL when it has none (the
 * calendar's default applies). It is called inside the store's transactions,
 * so it is arithmetic only: it must not call the store. The bot supplies it;
 * the store only stores.
 */
struct store_calendar {
	void (*periods)(void *ud, const char *timezone, int64_t t, int64_t start[2],
			int64_t end[2]);
	void *ud;
};

/*
 * Sets the calendar (copied) and rebuilds the period scores a schema upgrade
 * left to rebuild. Without a calendar, period scores are not maintained.
 * Returns COHORT_OK or COHORT_ERR_STORE.
 */
int store_set_calendar(struct store *st, const struct store_calendar *cal);
/* A topic's former id (the roadmap file's "was:"): records kept under from move to to. */
struct store_rename {
	const char *from;
	const char *to;
};

struct store_roadmap_result {
	long moved;     /* progress records moved from a former id to the new one */
	bool rederived; /* the topic set changed: every score was derived again */
};

/*
 * Tells the store the roadmap's topic ids (called at start and after a
 * reload). Progress on topics not among them is kept but counts nowhere:
 * not in points, ranks (all, week, month), done or skipped totals, streaks. When the
 * ids or renames differ from the last call's (a fingerprint is kept in the
 * store), or force is set, one transaction first moves each rename's records
 * (a member who has both keeps the new one; the old one stays, uncounted),
 * then derives every score again (2.7-2.9 s for 500,000 records, 10,000
 * members, measured with the week and month scores).
 * Otherwise nothing is read but the fingerprint. Until it is first called,
 * every topic counts. Needs the calendar set first for week and month scores.
 * Returns COHORT_OK or COHORT_ERR_STORE (nothing changed).
 */
int store_set_roadmap(struct store *st, const char *const *ids, size_t n,
		      const struct store_rename *renames, size_t nrenames, bool force,
		      struct store_roadmap_result *out);

/* One roadmap a group may count (roadmap.dir): its name, topic ids and former ids. */
struct store_roadmap {
	const char *name; /* "backend", a file's stem */
	const char *const *ids;
	size_t n;
	const struct store_rename *renames;
	size_t nrenames;
};
/*
 * store_set_roadmap() for several roadmaps: rms[dflt] is the default one,
 * counted for every group that chose none (or chose one no longer among
 * rms); a group that chose another (store_set_group_roadmap()) counts only
 * its topics. Each roadmap's renames move the records of the groups that
 * count it. The fingerprint covers every name, id and rename, and which is
 * the default. Same returns.
 */
int store_set_roadmaps(struct store *st, const struct store_roadmap *rms, size_t n, size_t dflt,
		       bool force, struct store_roadmap_result *out);
/*
 * The roadmap group_id chose: *name a new string, or NULL when it chose none
 * (it counts the default). COHORT_OK or COHORT_ERR_STORE.
 */
int store_group_roadmap(struct store *st, const char *group_id, char **name);
/*
 * Switches group_id to rm (one of those last given to store_set_roadmaps();
 * dflt: rm is the default one, and the group's choice is cleared) in one
 * transaction: records the choice, moves
 * the group's records kept under rm's former ids, and derives the group's
 * scores again for rm's topics (points, skipped counts, week and month
 * scores, its activity). Progress is kept by topic id, so topics both
 * roadmaps share carry over. *moved (may be NULL) receives the records
 * moved. Returns COHORT_OK or COHORT_ERR_STORE (nothing changed).
 */
int store_set_group_roadmap(struct store *st, const char *group_id, const struct store_roadmap *rm,
			    bool dflt, int64_t at, long *moved);

struct store_topic_total {
	const char *topic_id;
	long records; /* progress records under it, over every group */
	long done;
	const char *group_id; /* store_group_topic_totals(): whose; else NULL */
};
/* Per topic id with any progress record, over every group, in id order. */
int store_topic_totals(struct store *st, int (*fn)(const struct store_topic_total *t, void *ud),
		       void *ud);
/* The same per (group, topic id), in group then id order (groups count their own roadmaps). */
int store_group_topic_totals(struct store *st,
			     int (*fn)(const struct store_topic_total *t, void *ud), void *ud);

/* Recomputes a group's period scores (all groups for NULL), e.g. after its zone changed. */
int store_rebuild_periods(struct store *st, const char *group_id);

struct store_rank {
	const char *member_id;
	const char *member_name;
	int points;         /* topics done (in the period) */
	int rank;           /* 1-based; shared by equal points */
	int64_t reached_at; /* when the latest of those points was earned */
};
typedef int (*store_rank_fn)(const struct store_rank *r, void *ud);
/*
 * One query: the group's members with points in the period (start: its
 * local start from the calendar; ignored for PERIOD_ALL), best first, ties
 * sharing a rank with the earlier achiever first; the top `limit`, plus the
 * row of member_id (may be NULL) when it is further down.
 */
int store_ranking(struct store *st, const char *group_id, enum store_period period, int64_t start,
		  int limit, const char *member_id, store_rank_fn fn, void *ud);

/*
 * Times of the member's un-reverted "done" changes on topics of the roadmap
 * (store_set_roadmap()), newest first. fn returns non-zero to stop.
 */
int store_done_times(struct store *st, const char *group_id, const char *member_id,
		     int (*fn)(int64_t at, void *ud), void *ud);

struct store_activity {
	int64_t event_id; /* increases with every change logged */
	const char *member_id;
	const char *member_name;
	int64_t member_since; /* when the member first appeared in the group */
	const char *topic_id;
	enum store_status from, to;
	int64_t at;
	const char *actor_name; /* an admin's correction: who made it; NULL: the member */
};
typedef int (*store_activity_fn)(const struct store_activity *a, void *ud);
/* The group's un-reverted changes in [since, until), member by member, oldest first within each. */
int store_activity(struct store *st, const char *group_id, int64_t since, int64_t until,
		   store_activity_fn fn, void *ud);

/*
 * Finds a member of the group by display name (case-insensitive) or member
 * id. *member_id and *member_name are new strings. COHORT_ERR_NOT_FOUND when
 * nobody matches.
 */
int store_find_member(struct store *st, const char *group_id, const char *who, char **member_id,
		      char **member_name);

/*
 * The group's records that an admin's correction set (/fix) and nobody
 * changed since: of member_id (NULL: everyone), of topic_id (NULL: every
 * topic), by member then time. actor_name: who set it. Strings are borrowed
 * for the callback; fn returns non-zero to stop (returned). COHORT_OK or
 * COHORT_ERR_STORE.
 */
int store_corrected(struct store *st, const char *group_id, const char *member_id,
		    const char *topic_id,
		    int (*fn)(const char *member_id, const char *topic_id, const char *actor_name,
			      void *ud),
		    void *ud);

/* How many members of the group go by name (case-insensitive): more than one is ambiguous. */
int store_member_name_count(struct store *st, const char *group_id, const char *name, int *n);

/* A group's own settings; NULL fields are unset (use the configured defaults). */
struct store_settings {
	char *digest_channel;
	char *digest_time;
	char *timezone;
	char *digest_every; /* "weekdays", "weekly monday" (bot/scheduler.h); NULL: daily */
	bool stored; /* the group has settings: a NULL channel was turned off, not never set */
};
int store_get_settings(struct store *st, const char *group_id, struct store_settings *out);
void store_settings_release(struct store_settings *s);
/* Sets the digest channel (NULL turns the digest off). */
int store_set_digest_channel(struct store *st, const char *group_id, const char *channel);
/* Sets the digest time and, when timezone is not NULL, the time zone. */
int store_set_digest_time(struct store *st, const char *group_id, const char *hhmm,
			  const char *timezone);
/*
 * Sets how often the digest is posted: the bot's spelling ("weekdays",
 * "weekly monday"), stored as given; NULL is daily. COHORT_OK or COHORT_ERR_STORE.
 */
int store_set_digest_every(struct store *st, const char *group_id, const char *every);

/*
 * Makes channel the group's digest channel unless the group has settings
 * already (so "digest channel off" stays off across restarts).
 */
int store_default_digest_channel(struct store *st, const char *group_id, const char *channel);

struct store_digest_group {
	const char *group_id;
	const char *channel;
	const char *digest_time; /* NULL: the configured default */
	const char *timezone;    /* NULL: the configured default */
	const char *digest_every; /* NULL: daily */
};
/* Every group with a digest channel. */
int store_digest_groups(struct store *st, int (*fn)(const struct store_digest_group *g, void *ud),
			void *ud);

/* The record of one group's digest for one local date. */
struct store_digest {
	char *local_date; /* "2026-11-25" */
	char *idem_key;   /* the send's idempotency key (nonce, transaction id) */
	int64_t recorded_at;
	int64_t sent_at; /* 0 until the platform confirmed it */
	int group_percent;
};
void store_digest_release(struct store_digest *d);
/* The digest for local_date: COHORT_OK, COHORT_ERR_NOT_FOUND or COHORT_ERR_STORE. */
int store_digest_get(struct store *st, const char *group_id, const char *local_date,
		     struct store_digest *out);
/* The most recent digest dated before local_date, or COHORT_ERR_NOT_FOUND. */
int store_digest_previous(struct store *st, const char *group_id, const char *local_date,
			  struct store_digest *out);

struct store_rank_entry {
	const char *member_id;
	int rank;
	int points;
};
/*
 * Records, in one transaction, that the digest of local_date is being sent
 * with this idempotency key, the group's percentage and the ranking shown
 * (for the next digest's movement). COHORT_ERR_DUPLICATE when that date has
 * a digest already.
 */
int store_digest_record(struct store *st, const char *group_id, const char *local_date,
			const char *idem_key, int64_t at, int group_percent,
			const struct store_rank_entry *ranks, size_t nranks);
/* Marks the digest of local_date as sent. */
int store_digest_mark_sent(struct store *st, const char *group_id, const char *local_date,
			   int64_t at);
/* The ranking recorded with the digest of local_date, one call per member. */
int store_digest_ranks(struct store *st, const char *group_id, const char *local_date,
		       int (*fn)(const struct store_rank_entry *e, void *ud), void *ud);

/*
 * A complete dump and its restore (cohort export/import --format json): every
 * table that is not derived and holds no secret. Derived tables (scores,
 * counts) are derived again by store_set_roadmap(force) after a restore;
 * adapter state (tokens, sync positions, sessions) is never dumped.
 * Strings are borrowed for the callback (dump) or the call (restore).
 */
struct store_member {
	const char *group_id;
	const char *member_id;
	const char *name;
	int64_t first_seen;
};
struct store_event {
	int64_t id; /* increases in the order changes were logged */
	const char *group_id;
	const char *member_id;
	const char *topic_id;
	enum store_status from, to;
	const char *note;      /* NULL for none */
	int64_t at;
	const char *source_id; /* NULL for none */
	int64_t reverts;       /* the id of the change this undid, 0 for none */
	const char *actor_id;   /* an admin's correction: who (NULL: the member) */
	const char *actor_name; /* and their name then (NULL with actor_id) */
	bool removal;           /* one of the changes of a "/fix MEMBER remove" */
};
struct store_group_settings {
	const char *group_id;
	const char *digest_channel; /* NULL: unset */
	const char *digest_time;
	const char *timezone;
	const char *digest_every; /* NULL: daily */
};
/* A group's roadmap choice, as dumped and restored. */
struct store_group_roadmap {
	const char *group_id;
	const char *roadmap;
	int64_t changed_at;
};
struct store_digest_row {
	const char *group_id;
	const char *local_date;
	const char *idem_key;
	int64_t recorded_at;
	int64_t sent_at; /* 0: not confirmed sent */
	int group_percent;
};
struct store_digest_rank_row {
	const char *group_id;
	const char *local_date;
	const char *member_id;
	int rank;
	int points;
};
struct store_goal;
struct store_goal_mark;
struct store_reminder;
/* A member link or a group link (/link): never a live code. */
struct store_link {
	const char *kind;         /* "member" or "group" */
	const char *alias_id;     /* recorded as canonical_id */
	const char *canonical_id;
	int64_t linked_at;
};
struct store_dump_fns {
	int (*settings)(const struct store_group_settings *g, void *ud);
	int (*member)(const struct store_member *m, void *ud);
	store_row_fn progress;
	int (*event)(const struct store_event *e, void *ud);
	int (*digest)(const struct store_digest_row *d, void *ud);
	int (*digest_rank)(const struct store_digest_rank_row *r, void *ud);
	/* Goals, then their marks (NULL: not dumped). */
	int (*goal)(const struct store_goal *g, void *ud);
	int (*goal_mark)(const struct store_goal_mark *m, void *ud);
	/* Reminder settings (NULL: not dumped); restored with store_remind_set(). */
	int (*reminder)(const struct store_reminder *r, void *ud);
	/*
	 * Links (NULL: not dumped): every one, or of a group's dump the group's
	 * own and those of its members. Restored with store_restore_link().
	 */
	int (*link)(const struct store_link *l, void *ud);
	/* Groups' roadmap choices (NULL: not dumped). */
	int (*group_roadmap)(const struct store_group_roadmap *g, void *ud);
};
/*
 * Calls fns for every row of group_id (NULL: all groups), table by table in
 * the order above, each in key order (events in log order), all read in one
 * transaction. A callback's non-zero return stops and is returned.
 */
int store_dump(struct store *st, const char *group_id, const struct store_dump_fns *fns, void *ud);

/*
 * A restore: store_restore_begin() opens one transaction, the restore_*
 * calls insert rows as given (members before their progress and events, a
 * digest before its ranks), store_restore_end() commits (keep) or rolls
 * everything back. Each returns COHORT_OK, COHORT_ERR_DUPLICATE (a row with
 * that key, or an event with that source id, exists already: the caller
 * names it) or COHORT_ERR_STORE.
 */
int store_restore_begin(struct store *st);
int store_restore_settings(struct store *st, const struct store_group_settings *g);
int store_restore_member(struct store *st, const struct store_member *m);
int store_restore_progress(struct store *st, const struct store_row *r);
/* *id receives the new event's id (what a later event's reverts names). */
int store_restore_event(struct store *st, const struct store_event *e, int64_t *id);
int store_restore_digest(struct store *st, const struct store_digest_row *d);
int store_restore_digest_rank(struct store *st, const struct store_digest_rank_row *r);
/* A link as dumped: COHORT_OK, COHORT_ERR_DUPLICATE (either side linked already) or STORE. */
int store_restore_link(struct store *st, const struct store_link *l);
int store_restore_group_roadmap(struct store *st, const struct store_group_roadmap *g);
int store_restore_end(struct store *st, bool keep);

/*
 * Goals (/goal, bot/goal.c): one per (group, member), and one for the whole
 * group under member_id "" (an admin's "/goal group"). A goal names a topic
 * or a section by its id and a due date, the group's local date; the store
 * keeps them, bot/goal.c gives them meaning. Who reached which goal is marked
 * once (goal_reached), so a goal is celebrated once.
 */
struct store_goal {
	const char *group_id;
	const char *member_id;   /* "" for the group's goal */
	const char *target_kind; /* "topic" or "section" */
	const char *target_id;
	const char *due_date;    /* "2027-03-31", local in the group's zone */
	int64_t set_at;
	const char *set_by;      /* who set it (member id) */
	const char *set_by_name; /* and their name then */
	int64_t reached_at;      /* store_goals(): when the member asked about reached it; 0: not */
};
/*
 * Sets (replaces) a goal; the marks of the goal it replaces go with it, in
 * the same transaction. Returns COHORT_OK or COHORT_ERR_STORE.
 */
int store_goal_set(struct store *st, const struct store_goal *g);
/* Removes a goal and its marks: COHORT_OK, COHORT_ERR_NOT_FOUND (none) or COHORT_ERR_STORE. */
int store_goal_clear(struct store *st, const char *group_id, const char *member_id);
/*
 * The group's goals: with member_id, that member's own and the group's, each
 * with reached_at for that member; with member_id NULL, every goal (the
 * group's with reached_at 0). In member id order, the group's last.
 * Strings are borrowed for the callback; fn returns non-zero to stop.
 */
int store_goals(struct store *st, const char *group_id, const char *member_id,
		int (*fn)(const struct store_goal *g, void *ud), void *ud);
/*
 * Marks that member_id reached the goal of goal_member ("" the group's) that
 * was set at set_at. *first is true only for the call that made the mark
 * (across processes too: the database decides), false when it was marked
 * already or the goal was replaced meanwhile. COHORT_OK or COHORT_ERR_STORE.
 */
int store_goal_mark(struct store *st, const char *group_id, const char *goal_member,
		    const char *member_id, int64_t set_at, int64_t at, bool *first);
struct store_goal_mark {
	const char *group_id;
	const char *goal_member; /* "" for the group's goal */
	const char *member_id;
	const char *member_name; /* store_goal_marks() only; NULL in a dump */
	int64_t reached_at;
	const char *target_kind, *target_id, *due_date; /* store_goal_marks() only */
};
/* The group's marks made in [since, until), oldest first. */
int store_goal_marks(struct store *st, const char *group_id, int64_t since, int64_t until,
		     int (*fn)(const struct store_goal_mark *m, void *ud), void *ud);
/* Restores a goal (reached_at ignored) and a mark, as the other restore_* calls. */
int store_restore_goal(struct store *st, const struct store_goal *g);
int store_restore_goal_mark(struct store *st, const struct store_goal_mark *m);

/*
 * A group's page (DESIGN §11): its capability token and whether it is served.
 * The token is a secret: never logged, never dumped.
 */
struct store_dashboard {
	char *token; /* owned: store_dashboard_release() */
	bool enabled;
};
/* COHORT_OK, COHORT_ERR_NOT_FOUND (never turned on: *out is zeroed) or COHORT_ERR_STORE. */
int store_dashboard_get(struct store *st, const char *group_id, struct store_dashboard *out);
void store_dashboard_release(struct store_dashboard *d);
/*
 * Sets the group's token (a new one replaces the old, which then finds
 * nothing) and whether the page is on. Returns COHORT_OK, COHORT_ERR_DUPLICATE
 * (another group has that token: make a new one) or COHORT_ERR_STORE.
 */
int store_dashboard_set(struct store *st, const char *group_id, const char *token, bool enabled,
			int64_t at);
/*
 * The group whose page is on under token: *group_id is a new string.
 * COHORT_ERR_NOT_FOUND for an unknown, replaced or turned-off token.
 */
int store_dashboard_group(struct store *st, const char *token, char **group_id);

/*
 * The group's latest `limit` finishes of roadmap topics (current "done"
 * records, with their notes), newest first.
 */
int store_recent_done(struct store *st, const char *group_id, int limit, store_row_fn fn,
		      void *ud);

/*
 * The group's activity over time, kept with every change in buckets of
 * STORE_BUCKET_MS of Unix time (every zone's local midnight is a bucket's
 * start): finishes of roadmap topics (an undo of a finish takes it back, in the
 * undo's bucket) and the net change of the group's done topics.
 */
#define STORE_BUCKET_MS 900000
struct store_bucket {
	int64_t start; /* Unix ms */
	int finished;
	int net;
};
/*
 * *before receives the topics done in the group at since (the net of every
 * earlier bucket); fn gets each bucket from since on that has any change,
 * oldest first, and returns non-zero to stop (that value is returned).
 * Returns COHORT_OK or COHORT_ERR_STORE.
 */
int store_group_activity(struct store *st, const char *group_id, int64_t since, int *before,
			 int (*fn)(const struct store_bucket *b, void *ud), void *ud);

/* Adapter state (Matrix next_batch, Discord session): *value is a new string or NULL. */
/*
 * Reminders (/remind, bot/remind.c): one time of day ("HH:MM", local to the
 * group) per (group, member) who asked; none for anyone who did not.
 */
struct store_reminder {
	const char *group_id, *member_id, *at;
	int64_t set_at;
};
/* Sets (replaces) a member's reminder time. COHORT_OK or COHORT_ERR_STORE. */
int store_remind_set(struct store *st, const char *group_id, const char *member_id,
		     const char *at, int64_t set_at);
/* A member's reminder time in *at (a new string), or NULL when none. */
int store_remind_get(struct store *st, const char *group_id, const char *member_id, char **at);
/* Removes it: COHORT_OK, COHORT_ERR_NOT_FOUND (none) or COHORT_ERR_STORE. */
int store_remind_clear(struct store *st, const char *group_id, const char *member_id);
/* Every reminder (of one group, or of all when group_id is NULL); fn returns non-zero to stop. */
int store_reminders(struct store *st, const char *group_id,
		    int (*fn)(const struct store_reminder *r, void *ud), void *ud);
/*
 * Records, before it is sent, that the member's reminder of local_date goes
 * out with idem_key: *first is true only for the one call (of any process on
 * the database) that recorded it, so a reminder is sent at most once a day.
 */
int store_remind_record(struct store *st, const char *group_id, const char *member_id,
			const char *local_date, const char *idem_key, int64_t at, bool *first);

int store_state_get(struct store *st, const char *key, char **value);
int store_state_set(struct store *st, const char *key, const char *value);
/* Removes key (nothing when unset). COHORT_OK or COHORT_ERR_STORE. */
int store_state_delete(struct store *st, const char *key);
/*
 * Calls fn(key, value, ud) for each key that starts with prefix (exactly, case
 * and all), in key order, until fn returns non-zero, which is returned; else
 * COHORT_OK or COHORT_ERR_STORE. fn must not use the store.
 */
int store_state_list(struct store *st, const char *prefix,
		     int (*fn)(const char *key, const char *value, void *ud), void *ud);

/*
 * Leases: a named claim that one holder has until it lapses (a group's digest
 * being sent, the Matrix sync, a Discord shard, an IDENTIFY slot). Several
 * processes on one database agree on who has each: the database decides in
 * one statement (PostgreSQL: an upsert that locks the lease's row, correct at
 * READ COMMITTED), never a process's memory.
 *
 * Which clock decides expiry: the database's (PostgreSQL: the server's
 * statement_timestamp(); SQLite: the machine's real clock, read by SQLite in
 * the statement). Never a process's clock: processes on several machines
 * read clocks that differ, and the test clock (COHORT_FAKE_NOW, see
 * lib/clock.h) is each process's own, starting when it starts, so two test
 * processes disagree on purpose. A lease is about how long a dead holder can
 * keep others waiting, which is real time: ttl_ms is real milliseconds
 * (callers that think in the process clock's time convert with
 * clock_real_wait_ms()).
 */
#define STORE_HOLDER_LEN 160

/*
 * This process's holder identity:
 * "host pid 1234 ns 4026531836 boot 0f1e...-uuid id 0123abcd" (the host name,
 * the pid, the pid namespace, the kernel's boot id and a random instance id
 * drawn once per process, so a pid reused after a restart, or on another
 * machine, is another holder). Any thread.
 */
const char *store_lease_holder(void);
/*
 * True when holder names a process of this boot (same boot id), host and pid
 * namespace that no longer runs (killed, crashed): its leases need not be
 * waited out. False when it runs, or may: another boot id (another machine,
 * even one with our host name and the root namespace's inode, which every
 * Linux host shares), another namespace, no boot id, or not a holder id.
 */
bool store_lease_holder_gone(const char *holder);

/* Who holds a lease and for how much longer. */
struct store_lease {
	char holder[STORE_HOLDER_LEN];
	int64_t ms_left; /* real ms until it lapses unless renewed (0 or less: lapsed) */
};

/*
 * Takes lease name for holder for ttl_ms from now, when nobody holds it or
 * its holder let it lapse. With renew, a holder that has it already extends
 * it; without, a lease that has not lapsed is refused to everyone, holder
 * included (a slot that may be used once per period). out (may be NULL)
 * receives the holder after the call. Returns COHORT_OK (holder has it),
 * COHORT_ERR_DENIED (another holds it, or without renew: it has not lapsed;
 * out names who and for how long) or COHORT_ERR_STORE.
 */
int store_lease_take(struct store *st, const char *name, const char *holder, int64_t ttl_ms,
		     bool renew, struct store_lease *out);
/*
 * Who holds lease name (lapsed or not): COHORT_OK, COHORT_ERR_NOT_FOUND (nobody
 * took it, or it was released) or COHORT_ERR_STORE.
 */
int store_lease_get(struct store *st, const char *name, struct store_lease *out);
/*
 * Takes lease name from gone (a holder store_lease_holder_gone() says is
 * gone) for holder: COHORT_OK, COHORT_ERR_DENIED when gone no longer has it
 * (someone else was quicker), or COHORT_ERR_STORE.
 */
int store_lease_take_over(struct store *st, const char *name, const char *gone,
			  const char *holder, int64_t ttl_ms);
/*
 * A rate shared by processes (Discord's global REST limit): takes want of
 * the limit units of the database's current second (its clock, as leases)
 * under name. COHORT_OK: taken, *ms_left is what is left of that second;
 * COHORT_ERR_DENIED: fewer than want are left, *ms_left is the ms until the
 * next second; COHORT_ERR_STORE. One statement, correct with several processes.
 */
int store_rate_take(struct store *st, const char *name, int limit, int want, int64_t *ms_left);
/* Ends holder's lease name at once (nothing when another has it): COHORT_OK or COHORT_ERR_STORE. */
int store_lease_release(struct store *st, const char *name, const char *holder);
/*
 * Deletes the leases that lapsed more than lapsed_ms ago (the database's clock,
 * as leases), whoever held them: they are only kept so the table does not grow
 * by one row per Discord interaction forever. A lapsed lease is free to take,
 * so deleting it changes no one's claim. *deleted (may be NULL): how many.
 * COHORT_OK or COHORT_ERR_STORE.
 */
int store_lease_prune(struct store *st, int64_t lapsed_ms, int64_t *deleted);
/*
 * PostgreSQL: the server cancels any statement of this connection that runs
 * longer than ms (statement_timeout, set again after a reconnect), so a
 * statement stuck behind a lock fails with COHORT_ERR_STORE instead of
 * holding its thread. It does not bound a wait on an unreachable server
 * (that is the network's). SQLite: nothing to do (its waits for a lock end
 * with its busy timeout already). COHORT_OK or COHORT_ERR_STORE.
 */
int store_set_statement_timeout(struct store *st, int ms);

/*
 * The outbox: answers owed to the members who asked (DESIGN §7, issue 18).
 * A command's answer is put in the SAME transaction as the change it
 * reports (store_outbox_begin() ... store_outbox_end()), so a crash loses
 * neither or both; a sender delivers it and marks it done. Every undelivered
 * answer is delivered once by one process: a row is held by a holder (a
 * string naming a process) until lease_until; a process renews the leases of
 * the answers it is sending, and any process may claim a row whose lease ran
 * out (on PostgreSQL the claim also skips rows another claim has locked:
 * FOR UPDATE SKIP LOCKED). Times are Unix ms of the caller's clock; the
 * caller passes them, so the store decides nothing by its own clock.
 * Done rows keep their source id (a replayed command is not answered twice)
 * and lose their body.
 */
struct store_answer {
	int64_t id;            /* given by store_outbox_put() */
	const char *platform;  /* "matrix", "discord" */
	const char *source_id; /* the command's source event id (unique), or NULL */
	const char *address;   /* where and how to deliver it: the platform's own text */
	const char *body;      /* the answer, serialized by its writer */
	int64_t created_at;
};
/*
 * A transaction around one command and its answer: changes made until
 * store_outbox_end() (batches included) are savepoints in it. keep = false
 * rolls everything back. Both return COHORT_OK or COHORT_ERR_STORE.
 */
int store_outbox_begin(struct store *st);
int store_outbox_end(struct store *st, bool keep);
/*
 * Whether source_id has an answer: COHORT_OK (done: delivered or dropped),
 * COHORT_ERR_PENDING (still owed), COHORT_ERR_NOT_FOUND (none) or COHORT_ERR_STORE.
 */
int store_outbox_answered(struct store *st, const char *source_id);
/*
 * Puts an answer held by holder until lease_until; *id receives its id.
 * COHORT_ERR_DUPLICATE when source_id has an answer already (nothing put).
 */
int store_outbox_put(struct store *st, const struct store_answer *a, const char *holder,
		     int64_t lease_until, int64_t *id);
/*
 * Claims up to limit undelivered answers of platform whose lease ended at
 * or before now, for holder until lease_until, and calls fn for each (strings
 * borrowed for the call; fn's non-zero return is ignored). One statement:
 * two processes claiming at once never get the same row.
 * Returns COHORT_OK or COHORT_ERR_STORE.
 */
int store_outbox_claim(struct store *st, const char *platform, const char *holder, int64_t now,
		       int64_t lease_until, int limit,
		       int (*fn)(const struct store_answer *a, void *ud), void *ud);
/* Extends the lease of every undelivered answer holder holds. */
int store_outbox_renew(struct store *st, const char *holder, int64_t lease_until);
/* Lets an undelivered answer go: the next claim (any holder) takes it. */
int store_outbox_release(struct store *st, int64_t id);
/* An answer done at `at`: delivered (sent) or given up (dropped, too old). */
struct store_answer_done {
	int64_t id;
	int64_t at;
	bool sent;
};
/* Marks n answers done in one transaction (one commit for all of them). */
int store_outbox_done(struct store *st, const struct store_answer_done *done, size_t n);
/* How many answers are not done (of every platform). */
int store_outbox_owed(struct store *st, int64_t *n);
/*
 * Links (/link, bot/link.c): one person on two platforms. A one-time code is
 * kept only as a hash (code_hash, hex), with its kind ("member" or "group"),
 * the identity (member or group id) that made it, and when it expires; it is
 * used at most once, by whichever process on the database redeems it first.
 */
struct store_link_code {
	char kind[8];      /* "member" or "group" */
	char *owner_id;    /* owned: free() it */
	int64_t expires_at;
	int64_t used_at; /* 0: not used */
};
/* Keeps a new code. COHORT_OK, COHORT_ERR_DUPLICATE (that hash exists: make another) or STORE. */
int store_link_code_put(struct store *st, const char *code_hash, const char *kind,
			const char *owner_id, int64_t at, int64_t expires_at);
/* The code under code_hash: COHORT_OK, COHORT_ERR_NOT_FOUND or COHORT_ERR_STORE. */
int store_link_code_get(struct store *st, const char *code_hash, struct store_link_code *out);
/*
 * Spends the code under code_hash (of kind) without linking: it was shown
 * where it does not belong (typed on its own platform), so it works no more.
 * COHORT_OK (spent, or used or expired already) or COHORT_ERR_STORE.
 */
int store_link_code_spend(struct store *st, const char *code_hash, const char *kind, int64_t at);
/*
 * Wrong codes typed by member_id (brute force): store_link_attempt_add()
 * records one at `at`; store_link_attempts() counts those after `since`, and
 * *first receives the oldest of them (0 when none).
 */
int store_link_attempt_add(struct store *st, const char *member_id, int64_t at);
int store_link_attempts(struct store *st, const char *member_id, int64_t since, int *n,
			int64_t *first);
/*
 * Deletes the codes that expired before `before` (used or not: neither links
 * any more) and the wrong codes counted before it (past every window that
 * counts them), so the tables do not grow forever. *deleted (may be NULL):
 * how many rows. COHORT_OK or COHORT_ERR_STORE.
 */
int store_link_prune(struct store *st, int64_t before, int64_t *deleted);

/* The member that member_id is recorded as: *canonical a new string (member_id when unlinked). */
int store_member_canonical(struct store *st, const char *member_id, char **canonical);
/*
 * The link member_id is part of (as either side): *alias and *canonical new
 * strings. COHORT_OK, COHORT_ERR_NOT_FOUND (not linked) or COHORT_ERR_STORE.
 */
int store_member_link_get(struct store *st, const char *member_id, char **alias, char **canonical,
			  int64_t *linked_at);
/*
 * Redeems the member code code_hash (unused, not expired at `at`) and links
 * alias to canonical (the code's maker), in ONE transaction: from then on
 * alias's changes are recorded as canonical's. In every group where alias
 * has records they become canonical's; where both have a record of a topic
 * the later change wins, and the winner's latest change is made to undo to
 * the loser's status (an undo never loses either side's done); the history
 * (events) goes with them, and so do the goal (its marks), the reminder and
 * the reminders sent (where both have one, the later set wins); the scores,
 * counts and period scores of those groups are derived again, so nothing
 * counts twice. name (the name just seen) becomes the name shown. *groups
 * (may be NULL) receives how many groups were merged. Returns COHORT_OK,
 * COHORT_ERR_DUPLICATE (the code was used meanwhile, or expired),
 * COHORT_ERR_DENIED (either identity is linked already: nothing changed) or
 * COHORT_ERR_STORE.
 */
int store_member_link(struct store *st, const char *code_hash, const char *alias,
		      const char *canonical, const char *name, int64_t at, int *groups);
/*
 * Ends member_id's link (either side), in one transaction. In each group
 * where the linked member has records: a group of the alias's platform only
 * gives them back to the alias; any other group (the canonical's platform,
 * or a group both platforms share) keeps them with the canonical, so nothing
 * is lost and nothing counts twice in a group. *alias and *canonical (may be
 * NULL) receive who they were (new strings). COHORT_OK, COHORT_ERR_NOT_FOUND
 * (not linked) or COHORT_ERR_STORE.
 */
int store_member_unlink(struct store *st, const char *member_id, int64_t at, char **alias,
			char **canonical);

/*
 * Group links (/link group): a group (alias) recorded as another (canonical,
 * the group whose admin made the code): one leaderboard, one progress record
 * per member, the canonical's roadmap and settings; each keeps its own
 * digest channel and digest records (one post per destination).
 */
/* The group group_id is recorded as: *canonical a new string (group_id when unlinked). */
int store_group_canonical(struct store *st, const char *group_id, char **canonical);
/* The link group_id is in (either side): COHORT_OK, COHORT_ERR_NOT_FOUND or COHORT_ERR_STORE. */
int store_group_link_get(struct store *st, const char *group_id, char **alias, char **canonical);
/*
 * Redeems the group code code_hash and links alias to canonical in ONE
 * transaction: alias's members, records (a topic both have for one member:
 * the later change wins), history and activity become canonical's, and so
 * do goals (the group's and each member's) and reminders (where both groups
 * have one, the later set wins; as for members, the winner's latest change
 * undoes to the loser's status); what is derived is derived again.
 * COHORT_OK, COHORT_ERR_DUPLICATE (the code was used or expired),
 * COHORT_ERR_DENIED (either group is linked already) or
 * COHORT_ERR_STORE.
 */
int store_group_link(struct store *st, const char *code_hash, const char *alias,
		     const char *canonical, int64_t at);
/*
 * Ends the link group_id is in (either side), in one transaction: the
 * canonical group keeps every record; the alias group gets a copy of them
 * as of now (members, progress, the live history, goals, reminders), so each
 * side keeps what
 * it was told is saved and neither counts anything twice. *alias and
 * *canonical receive who they were. COHORT_OK, COHORT_ERR_NOT_FOUND or
 * COHORT_ERR_STORE.
 */
int store_group_unlink(struct store *st, const char *group_id, int64_t at, char **alias,
		       char **canonical);

/* True when several processes may share the store (PostgreSQL), false for SQLite. */
bool store_shared(struct store *st);

#endif
