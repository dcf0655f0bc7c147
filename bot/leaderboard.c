#include "leaderboard.h"

#include "bot_internal.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

bool lb_period_parse(const char *s, enum lb_period *out)
{
	if (!*s || text_ieq(s, "all") || text_ieq(s, "all-time") || text_ieq(s, "alltime"))
		*out = LB_ALL;
	else if (text_ieq(s, "week"))
		*out = LB_WEEK;
	else if (text_ieq(s, "month"))
		*out = LB_MONTH;
	else
		return false;
	return true;
}

const char *lb_period_name(enum lb_period p)
{
	return p == LB_WEEK ? "this week" : p == LB_MONTH ? "this month" : "all time";
}

struct streak_ctx {
	const char *tz;
	long today;
	long run_end;  /* newest day of the run being counted */
	long last_day; /* the previous distinct day seen */
	int run;
	bool first_run;
	struct streaks *out;
};

static void close_run(struct streak_ctx *c)
{
	if (c->run > c->out->longest)
		c->out->longest = c->run;
	if (c->first_run && c->run_end >= c->today - 1)
		c->out->current = c->run;
	c->first_run = false;
}

/* Done times arrive newest first: distinct local days, counted in runs. */
static int streak_step(int64_t at, void *ud)
{
	struct streak_ctx *c = ud;
	long day = tz_day_number(c->tz, at);
	if (c->run == 0) {
		c->run = 1;
		c->run_end = c->last_day = day;
	} else if (day == c->last_day) {
		return 0;
	} else if (day == c->last_day - 1) {
		c->run++;
		c->last_day = day;
	} else {
		close_run(c);
		c->run = 1;
		c->run_end = c->last_day = day;
	}
	return 0;
}

int leaderboard_streaks(struct bot *b, const char *group_id, const char *member_id, const char *tz,
			int64_t now, struct streaks *out)
{
	memset(out, 0, sizeof(*out));
	struct streak_ctx c = {tz, tz_day_number(tz, now), 0, 0, 0, true, out};
	int rc = store_done_times(b->store, group_id, member_id, streak_step, &c);
	if (c.run)
		close_run(&c);
	return rc;
}

struct collect_ctx {
	struct leaderboard *lb;
	size_t cap;
};

static int collect_row(const struct store_rank *r, void *ud)
{
	struct collect_ctx *c = ud;
	grow_array((void **)&c->lb->rows, &c->cap, c->lb->n + 1, sizeof(*c->lb->rows));
	struct lb_row *row = &c->lb->rows[c->lb->n++];
	memset(row, 0, sizeof(*row));
	row->member_id = xstrdup(r->member_id);
	row->member_name = xstrdup(r->member_name);
	row->rank = r->rank;
	row->points = r->points;
	row->reached_at = r->reached_at;
	return 0;
}

static int apply_previous(const struct store_rank_entry *e, void *ud)
{
	struct leaderboard *lb = ud;
	for (size_t i = 0; i < lb->n; i++) {
		if (strcmp(lb->rows[i].member_id, e->member_id) == 0) {
			lb->rows[i].ranked_before = true;
			lb->rows[i].movement = e->rank - lb->rows[i].rank;
		}
	}
	return 0;
}

int leaderboard_build(struct bot *b, const char *group_id, enum lb_period period, int limit,
		      const char *member_id, const char *before_date, struct leaderboard *out)
{
	memset(out, 0, sizeof(*out));
	out->period = period;
	struct group_prefs p;
	int rc = bot_group_prefs(b, group_id, &p);
	if (rc)
		return rc;
	int64_t now = bot_now(b);
	int64_t start = period == LB_WEEK    ? tz_week_start(p.timezone, now)
			: period == LB_MONTH ? tz_month_start(p.timezone, now)
					     : 0;
	enum store_period sp = period == LB_WEEK    ? PERIOD_WEEK
			       : period == LB_MONTH ? PERIOD_MONTH
						    : PERIOD_ALL;
	struct collect_ctx c = {out, 0};
	rc = store_ranking(b->store, group_id, sp, start, limit, member_id, collect_row, &c);
	for (size_t i = 0; !rc && i < out->n; i++) {
		struct streaks s;
		rc = leaderboard_streaks(b, group_id, out->rows[i].member_id, p.timezone, now, &s);
		out->rows[i].streak = s.current;
		out->rows[i].longest = s.longest;
	}
	if (!rc && period == LB_ALL) {
		struct store_digest prev;
		int found = store_digest_previous(b->store, group_id,
						  before_date ? before_date : "9999-12-31", &prev);
		if (found == COHORT_OK) {
			out->has_previous = true;
			rc = store_digest_ranks(b->store, group_id, prev.local_date, apply_previous,
						out);
			store_digest_release(&prev);
		} else if (found != COHORT_ERR_NOT_FOUND) {
			rc = found;
		}
	}
	group_prefs_release(&p);
	if (rc)
		leaderboard_release(out);
	return rc;
}

void leaderboard_release(struct leaderboard *lb)
{
	for (size_t i = 0; i < lb->n; i++) {
		free(lb->rows[i].member_id);
		free(lb->rows[i].member_name);
	}
	free(lb->rows);
	lb->rows = NULL;
	lb->n = 0;
}
