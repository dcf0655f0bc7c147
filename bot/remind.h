/*
 * Reminders people ask for (/remind, DESIGN §5): opt-in, a personal message at
 * the member's chosen local time (the group's digest zone) on a day their
 * streak would break tonight — a streak of at least one day that ends
 * yesterday, and nothing done today. At most one per member per local day,
 * also across restarts and processes: the day is recorded in the store
 * (store_remind_record(), which only one caller wins) before it is sent.
 *
 *   /remind          your setting
 *   /remind HH:MM    a reminder at that local time (24-hour clock)
 *   /remind off      no more reminders
 *
 * A time set after it passed today first applies tomorrow.
 */
#ifndef COHORT_REMIND_H
#define COHORT_REMIND_H

#include <stdint.h>

struct bot;
struct event;
struct reply;
struct digest_sink;

/* The /remind command: shows, sets or removes the member's reminder. */
int remind_command(struct bot *b, const struct event *ev, struct reply *r);

/*
 * Sends every reminder due at the bot's clock through sink->remind (groups
 * sink->serves only; nothing when sink->remind is NULL) and lowers *next to
 * when the next one may fall due. A failed send is logged and not retried
 * that day (it was recorded first). Returns COHORT_OK or the first store error.
 */
int remind_run(struct bot *b, const struct digest_sink *sink, int64_t *next);

/* The idempotency key of a member's reminder of a local date: 19 characters. */
void remind_idem_key(const char *group_id, const char *member_id, const char *date, char key[20]);

#endif
