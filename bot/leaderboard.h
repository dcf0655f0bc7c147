/*
 * Leaderboards and streaks: one point per finished topic, periods in the
 * group's time zone (weeks start on Monday), shared ranks on ties with the
 * earlier achiever first, and movement since the previous digest.
 */
#ifndef COHORT_LEADERBOARD_H
#define COHORT_LEADERBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot;

enum lb_period { LB_ALL, LB_WEEK, LB_MONTH };

/* Parses "", "all", "week", "month" (any case). */
bool lb_period_parse(const char *s, enum lb_period *out);
/* "all time", "this week", "this month". */
const char *lb_period_name(enum lb_period p);

struct lb_row {
	char *member_id;
	char *member_name;
	int rank; /* shared by equal points */
	int points;
	int64_t reached_at;
	int streak;         /* current streak, in days */
	int longest;        /* longest streak ever */
	bool ranked_before; /* in the previous digest's ranking */
	int movement;       /* previous rank - rank: > 0 moved up */
};

/* Owned by the caller: leaderboard_release() frees the rows. */
struct leaderboard {
	enum lb_period period;
	struct lb_row *rows;
	size_t n;
	bool has_previous; /* a previous digest exists to compare with */
};

/*
 * Builds the group's board for period at the bot's clock: the top `limit`
 * rows plus member_id's own row (may be NULL) when further down. Movement
 * compares with the latest digest dated before `before_date` ("YYYY-MM-DD";
 * NULL: the latest digest). Returns COHORT_OK or COHORT_ERR_STORE.
 */
int leaderboard_build(struct bot *b, const char *group_id, enum lb_period period, int limit,
		      const char *member_id, const char *before_date, struct leaderboard *out);
void leaderboard_release(struct leaderboard *lb);

struct streaks {
	int current; /* consecutive local days, ending today or yesterday, with a done */
	int longest;
};
/* The member's streaks in zone tz at time now. */
int leaderboard_streaks(struct bot *b, const char *group_id, const char *member_id, const char *tz,
			int64_t now, struct streaks *out);

#endif
