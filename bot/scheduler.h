/*
 * The daily digest scheduler. Each group with a digest channel gets one digest
 * per local day at its time (DST-correct), or — when cohort was down then —
 * as soon as it runs again that same day. The digest is recorded, with an
 * idempotency key derived from (group, local date), before it is sent; a
 * record not yet marked sent is re-sent with the same key, so a crash between
 * sending and recording cannot post twice on platforms that honour the key.
 */
#ifndef COHORT_SCHEDULER_H
#define COHORT_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot;
struct reply;

/*
 * How often a group's digest is posted: every day, Monday to Friday, or on
 * one day of the week, all in the group's time zone.
 */
enum digest_every_kind { EVERY_DAY, EVERY_WEEKDAY, EVERY_WEEK };
struct digest_every {
	enum digest_every_kind kind;
	int weekday; /* EVERY_WEEK: 0 = Sunday ... 6 = Saturday */
};

/* The longest stored spelling, "weekly wednesday", with its NUL. */
#define DIGEST_EVERY_LEN 20

/*
 * Parses "daily", "weekdays" or "weekly DAY" (DAY a full or 3-letter English
 * day name; words case-insensitive, separated by spaces). NULL or "" is
 * daily. On failure returns false and, when err is not NULL, writes into err
 * (n bytes) why and how to fix it, naming the word at fault.
 */
bool scheduler_every_parse(const char *text, struct digest_every *out, char *err, size_t n);
/* The stored spelling: "daily", "weekdays", "weekly monday". */
void scheduler_every_format(const struct digest_every *e, char out[DIGEST_EVERY_LEN]);
/* For people: "every day", "Monday to Friday", "every Monday". */
const char *scheduler_every_describe(const struct digest_every *e, char *buf, size_t n);
/* True when the local day (in zone) containing t is one the digest is posted on. */
bool scheduler_is_digest_day(const struct digest_every *e, const char *zone, int64_t t);
/*
 * The first digest time (local hh:mm on a digest day, DST-correct as
 * tz_at_time) at or after t. Within a week of t for every frequency.
 */
int64_t scheduler_next_slot(const struct digest_every *e, const char *zone, int hh, int mm,
			    int64_t t);

/* Where digests go: the adapters, through the CLI. */
struct digest_sink {
	/* True when a running adapter serves this group's platform. */
	bool (*serves)(void *ud, const char *group_id);
	/*
	 * Posts r (borrowed) to the channel: COHORT_OK once the platform accepted
	 * it, or COHORT_ERR_PENDING when it was queued — the adapter then calls
	 * scheduler_sent() with idem_key on the dispatcher thread.
	 */
	int (*post)(void *ud, const char *group_id, const char *channel_id, const struct reply *r,
		    const char *idem_key);
	void *ud;
	/*
	 * Sends a member's reminder (bot/remind.c) privately: COHORT_OK,
	 * COHORT_ERR_PENDING (queued) or an error (logged; not retried that day).
	 * NULL: this sink sends no reminders.
	 */
	int (*remind)(void *ud, const char *group_id, const char *member_id, const struct reply *r,
		      const char *idem_key);
};

/*
 * Posts every digest due at the bot's clock. *next receives the clock time
 * when the next one falls due (INT64_MAX when none). A group whose digest
 * failed is logged and retried a minute later; the others go on. Returns
 * COHORT_OK, or the first group's error.
 */
int scheduler_run(struct bot *b, const struct digest_sink *sink, int64_t *next);

/*
 * Posts the group's digest for today now, before its time if need be (the
 * scheduler then will not post it again today). COHORT_ERR_DUPLICATE when
 * today's digest was sent already.
 */
int scheduler_post_now(struct bot *b, const struct digest_sink *sink, const char *group_id,
		       const char *channel_id);

/*
 * Reports the outcome of a post that returned COHORT_ERR_PENDING: COHORT_OK
 * marks the digest sent; anything else leaves it to be re-sent (same key)
 * a minute later.
 */
void scheduler_sent(struct bot *b, const char *idem_key, int result);

/*
 * Records that an admin changed the group's digest channel, time or zone at
 * the bot's clock. A digest time that had already passed today when it was
 * set is not due today: the first digest at the new time is tomorrow's. (A
 * digest missed while cohort was down is still posted when it comes back
 * the same day, because its time was set before it passed.) Returns
 * COHORT_OK or COHORT_ERR_STORE.
 */
int scheduler_settings_changed(struct bot *b, const char *group_id);

/* True when a command changed a digest channel or time since the last scheduler_run(). */
bool scheduler_changed(const struct bot *b);

/* How many digests wait for scheduler_sent(). */
size_t scheduler_inflight(const struct bot *b);
/* The result the last scheduler_sent() reported (COHORT_OK before any). */
int scheduler_last_result(const struct bot *b);

/* The idempotency key of a group's digest for a local date: 19 characters (fits a Discord nonce).
 */
void scheduler_idem_key(const char *group_id, const char *local_date, char key[20]);

#endif
