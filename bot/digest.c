#include "bot_internal.h"

#include "clock.h"
#include "err.h"
#include "roadmap.h"
#include "text.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define DIGEST_TOP 5

/* What one member did in the window, gathered from the activity log. */
struct member_news {
	char *member_id;
	char *name;
	struct strbuf finished;
	struct strbuf started;
	int nfinished, nstarted;
};

struct news_ctx {
	struct bot *b;
	struct member_news *m;
	size_t n, cap;
};

static int collect_news(const struct store_activity *a, void *ud)
{
	struct news_ctx *c = ud;
	if (a->to != STATUS_DONE && a->to != STATUS_IN_PROGRESS)
		return 0;
	long t = roadmap_find_id(c->b->rm, a->topic_id);
	if (t < 0)
		return 0;
	struct member_news *m = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->m[i].member_id, a->member_id) == 0)
			m = &c->m[i];
	if (!m) {
		grow_array((void **)&c->m, &c->cap, c->n + 1, sizeof(*c->m));
		m = &c->m[c->n++];
		memset(m, 0, sizeof(*m));
		m->member_id = xstrdup(a->member_id);
		m->name = xstrdup(a->member_name);
	}
	const char *name = roadmap_topic(c->b->rm, (size_t)t)->name;
	struct strbuf *sb = a->to == STATUS_DONE ? &m->finished : &m->started;
	int *count = a->to == STATUS_DONE ? &m->nfinished : &m->nstarted;
	if (strstr(sb_str(sb), name) == NULL) {
		sb_addf(sb, "%s%s", *count ? ", " : "", name);
		++*count;
	}
	return 0;
}

struct group_ctx {
	struct bot *b;
	int *doing; /* members in progress per topic */
};

static int count_doing(const struct store_count *c, void *ud)
{
	struct group_ctx *g = ud;
	long t = roadmap_find_id(g->b->rm, c->topic_id);
	if (t >= 0)
		g->doing[t] = c->in_progress;
	return 0;
}

/* The group's average completion in whole percent over members with any record. */
struct avg_ctx {
	struct bot *b;
	char *member;
	long sum_pct;
	int members;
	enum store_status *st;
};

static int add_member_pct(const struct store_row *row, void *ud)
{
	struct avg_ctx *c = ud;
	if (!c->member || strcmp(c->member, row->member_id) != 0) {
		if (c->member) {
			struct tally t = bot_tally(c->b, c->st, NULL);
			c->sum_pct += text_percent(t.done + t.skipped, t.total);
			c->members++;
		}
		free(c->member);
		c->member = xstrdup(row->member_id);
		memset(c->st, 0, roadmap_topic_count(c->b->rm) * sizeof(*c->st));
	}
	long t = roadmap_find_id(c->b->rm, row->topic_id);
	if (t >= 0)
		c->st[t] = row->status;
	return 0;
}

static int group_percent(struct bot *b, const char *group_id, int *pct, int *members)
{
	struct avg_ctx c = {b, NULL, 0, 0, xcalloc(roadmap_topic_count(b->rm), sizeof(*c.st))};
	int rc = store_export(b->store, group_id, add_member_pct, &c);
	if (c.member) {
		struct tally t = bot_tally(b, c.st, NULL);
		c.sum_pct += text_percent(t.done + t.skipped, t.total);
		c.members++;
	}
	*pct = c.members ? (int)(c.sum_pct / c.members) : 0;
	*members = c.members;
	free(c.member);
	free(c.st);
	return rc;
}

int digest_build(struct bot *b, const char *group_id, struct reply *out)
{
	struct group_prefs p;
	int rc = bot_group_prefs(b, group_id, &p);
	if (rc)
		return rc;
	int64_t now = bot_now(b);
	int hh = 18, mm = 0;
	parse_hhmm(p.digest_time, &hh, &mm);
	/* The window: since the most recent digest time before now. */
	int64_t slot = tz_at_time(p.timezone, now, hh, mm);
	if (slot > now)
		slot = tz_at_time(p.timezone, tz_day_start(p.timezone, now, -1), hh, mm);
	if (slot == now)
		slot = tz_at_time(p.timezone, tz_day_start(p.timezone, now, -1), hh, mm);

	struct news_ctx news = {b, NULL, 0, 0};
	struct rank_row *rows = NULL;
	size_t nrows = 0;
	int *doing = xcalloc(roadmap_topic_count(b->rm), sizeof(int));
	struct group_ctx g = {b, doing};
	int pct = 0, members = 0;
	char day[64];
	rc = store_activity(b->store, group_id, slot, now + 1, collect_news, &news);
	if (!rc)
		rc = bot_ranking(b, group_id, 0, DIGEST_TOP, &rows, &nrows);
	if (!rc)
		rc = store_topic_counts(b->store, group_id, count_doing, &g);
	if (!rc)
		rc = group_percent(b, group_id, &pct, &members);
	if (rc)
		goto out;

	tz_format(p.timezone, now, "%A %d %B", day, sizeof(day));
	reply_title(out, REPLY_INFO, "Daily digest \u2014 %s", day);
	if (news.n == 0) {
		reply_line(out, "A quiet day: nobody logged progress since the last digest.");
		reply_line(out, "One topic keeps a streak alive \u2014 /next shows yours.");
	} else {
		for (size_t i = 0; i < news.n; i++) {
			struct member_news *m = &news.m[i];
			struct strbuf sb = STRBUF_INIT;
			sb_addf(&sb, "%s", m->name);
			if (m->nfinished)
				sb_addf(&sb, " finished %s", sb_str(&m->finished));
			if (m->nstarted)
				sb_addf(&sb, "%s started %s", m->nfinished ? ";" : "", sb_str(&m->started));
			reply_line(out, "%s", sb_str(&sb));
			sb_release(&sb);
		}
	}
	if (nrows) {
		reply_line(out, "Top %zu:", nrows);
		for (size_t i = 0; i < nrows; i++) {
			int streak = 0;
			bot_streak(b, group_id, rows[i].member_id, p.timezone, now, &streak);
			if (streak > 1)
				reply_mono(out, "#%d %s \u2014 %d pts, %d-day streak", rows[i].rank,
					   rows[i].member_name, rows[i].points, streak);
			else
				reply_mono(out, "#%d %s \u2014 %d pts", rows[i].rank,
					   rows[i].member_name, rows[i].points);
		}
	}
	if (members)
		reply_line(out, "Group progress: %d%% of the roadmap on average (%d member%s).", pct,
			   members, members == 1 ? "" : "s");
	long best = -1;
	for (size_t t = 0; t < roadmap_topic_count(b->rm); t++)
		if (doing[t] > 0 && (best < 0 || doing[t] > doing[best]))
			best = (long)t;
	if (best >= 0 && news.n > 0)
		reply_line(out, "Most of you are on %s \u2014 compare notes with /who %s.",
			   roadmap_topic(b->rm, (size_t)best)->name,
			   roadmap_topic(b->rm, (size_t)best)->name);
out:
	for (size_t i = 0; i < news.n; i++) {
		free(news.m[i].member_id);
		free(news.m[i].name);
		sb_release(&news.m[i].finished);
		sb_release(&news.m[i].started);
	}
	free(news.m);
	rank_rows_free(rows, nrows);
	free(doing);
	group_prefs_release(&p);
	return rc;
}
