#include "digest.h"

#include "bot_internal.h"
#include "clock.h"
#include "err.h"
#include "leaderboard.h"
#include "roadmap.h"
#include "text.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define DIGEST_TOP 5
#define DIGEST_MAX_MEMBERS 15 /* news lines; the rest are summed up */

/* What one member did in the window. */
struct member_news {
	int64_t first_event; /* members are listed in the order they first did something */
	char *member_id;
	char *name;
	bool is_new;
	struct strbuf finished;
	struct strbuf started;
	int nfinished, nstarted;
};

struct news_ctx {
	struct bot *b;
	int64_t since;
	struct member_news *m;
	size_t n, cap;
};

static void add_topic(struct strbuf *sb, int *count, const char *name)
{
	/* A topic started, undone and started again is news once. */
	const char *p = sb_str(sb);
	size_t len = strlen(name);
	for (const char *hit = strstr(p, name); hit; hit = strstr(hit + 1, name))
		if ((hit == p || hit[-1] == ' ') && (hit[len] == '\0' || hit[len] == ','))
			return;
	sb_addf(sb, "%s%s", *count ? ", " : "", name);
	++*count;
}

static int collect_news(const struct store_activity *a, void *ud)
{
	struct news_ctx *c = ud;
	if (a->to != STATUS_DONE && a->to != STATUS_IN_PROGRESS)
		return 0;
	long t = roadmap_find_id(c->b->rm, a->topic_id);
	if (t < 0)
		return 0;
	/* Activity arrives member by member: only the last entry can be this member's. */
	struct member_news *m = c->n ? &c->m[c->n - 1] : NULL;
	if (!m || strcmp(m->member_id, a->member_id) != 0) {
		grow_array((void **)&c->m, &c->cap, c->n + 1, sizeof(*c->m));
		m = &c->m[c->n++];
		memset(m, 0, sizeof(*m));
		m->first_event = a->event_id;
		m->member_id = xstrdup(a->member_id);
		m->name = xstrdup(a->member_name);
		m->is_new = a->member_since >= c->since;
	}
	const char *name = roadmap_topic(c->b->rm, (size_t)t)->name;
	if (a->to == STATUS_DONE)
		add_topic(&m->finished, &m->nfinished, name);
	else
		add_topic(&m->started, &m->nstarted, name);
	return 0;
}

static int by_first_event(const void *x, const void *y)
{
	const struct member_news *a = x, *b = y;
	return (a->first_event > b->first_event) - (a->first_event < b->first_event);
}

static void news_release(struct news_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->m[i].member_id);
		free(c->m[i].name);
		sb_release(&c->m[i].finished);
		sb_release(&c->m[i].started);
	}
	free(c->m);
}

struct busiest {
	struct bot *b;
	long topic;
	int count;
};

static int find_busiest(const struct store_count *c, void *ud)
{
	struct busiest *x = ud;
	long t = roadmap_find_id(x->b->rm, c->topic_id);
	/* Ties go to the topic earlier in the roadmap, so the text is deterministic. */
	if (t >= 0 && c->in_progress > 0 &&
	    (c->in_progress > x->count || (c->in_progress == x->count && t < x->topic))) {
		x->topic = t;
		x->count = c->in_progress;
	}
	return 0;
}

struct snapshot {
	struct store_rank_entry *ranks;
	size_t n, cap;
};

static int snapshot_row(const struct store_rank *r, void *ud)
{
	struct snapshot *s = ud;
	grow_array((void **)&s->ranks, &s->cap, s->n + 1, sizeof(*s->ranks));
	s->ranks[s->n++] = (struct store_rank_entry){xstrdup(r->member_id), r->rank, r->points};
	return 0;
}

static void movement_mark(const struct leaderboard *lb, const struct lb_row *r, struct strbuf *sb)
{
	if (!lb->has_previous)
		return;
	if (!r->ranked_before)
		sb_adds(sb, "  new");
	else if (r->movement > 0)
		sb_addf(sb, "  \u25b2%d", r->movement);
	else if (r->movement < 0)
		sb_addf(sb, "  \u25bc%d", -r->movement);
}

static void add_news(struct reply *r, const struct news_ctx *news)
{
	for (size_t i = 0; i < news->n && i < DIGEST_MAX_MEMBERS; i++) {
		const struct member_news *m = &news->m[i];
		struct strbuf sb = STRBUF_INIT;
		sb_addf(&sb, "%s%s", m->name, m->is_new ? " joined the group and" : "");
		if (m->nfinished)
			sb_addf(&sb, " finished %s", sb_str(&m->finished));
		if (m->nstarted)
			sb_addf(&sb, "%s started %s", m->nfinished ? ";" : "", sb_str(&m->started));
		reply_line(r, "%s", sb_str(&sb));
		sb_release(&sb);
	}
	if (news->n > DIGEST_MAX_MEMBERS)
		reply_line(r, "... and %zu more members made progress.",
			   news->n - DIGEST_MAX_MEMBERS);
}

int digest_build(struct bot *b, const char *group_id, int64_t now, struct digest *out)
{
	memset(out, 0, sizeof(*out));
	reply_init(&out->reply);
	struct group_prefs p;
	int rc = bot_group_prefs(b, group_id, &p);
	if (rc)
		return rc;
	tz_format(p.timezone, now, "%Y-%m-%d", out->local_date, sizeof(out->local_date));

	/* The window: since the previous digest, or the last day when there was none. */
	struct store_digest prev;
	int have_prev = store_digest_previous(b->store, group_id, out->local_date, &prev);
	int64_t since = now - 86400000LL;
	int prev_percent = -1;
	if (have_prev == COHORT_OK) {
		since = prev.recorded_at;
		prev_percent = prev.group_percent;
		store_digest_release(&prev);
	} else if (have_prev != COHORT_ERR_NOT_FOUND) {
		group_prefs_release(&p);
		return have_prev;
	}

	struct news_ctx news = {b, since, NULL, 0, 0};
	struct leaderboard lb = {0};
	struct busiest busy = {b, -1, 0};
	int members = 0, finished = 0;
	rc = store_activity(b->store, group_id, since, now + 1, collect_news, &news);
	if (!rc && news.n)
		qsort(news.m, news.n, sizeof(*news.m), by_first_event);
	if (!rc)
		rc = leaderboard_build(b, group_id, LB_ALL, DIGEST_TOP, NULL, out->local_date, &lb);
	/* The ranking to record is longer than the one shown, and needs no streaks. */
	struct snapshot snap = {NULL, 0, 0};
	if (!rc)
		rc = store_ranking(b->store, group_id, PERIOD_ALL, 0, DIGEST_SNAPSHOT, NULL,
				   snapshot_row, &snap);
	out->ranks = snap.ranks;
	out->nranks = snap.n;
	if (!rc)
		rc = store_topic_counts(b->store, group_id, find_busiest, &busy);
	if (!rc)
		rc = store_group_totals(b->store, group_id, &members, &finished);
	if (rc)
		goto out;
	int total = (int)roadmap_topic_count(b->rm);
	out->group_percent = members ? text_percent(finished, members * total) : 0;

	struct reply *r = &out->reply;
	char day[64];
	tz_format(p.timezone, now, "%A %d %B", day, sizeof(day));
	reply_title(r, REPLY_INFO, "Daily digest \u2014 %s", day);
	if (members == 0) {
		/* Nobody has spoken yet: no "quiet day" for a group that never started. */
		reply_line(r, "Nothing to report yet: nobody in the group has logged progress.");
		reply_line(r, "The first /done starts the digest \u2014 /next shows where to begin.");
		goto out;
	}
	if (news.n == 0) {
		reply_line(r, "A quiet day: nobody logged progress since the last digest.");
		reply_line(r, "One topic keeps a streak alive \u2014 /next shows yours.");
		goto out;
	}
	add_news(r, &news);
	reply_line(r, "Top %zu:", lb.n);
	struct strbuf streaks = STRBUF_INIT;
	for (size_t i = 0; i < lb.n; i++) {
		struct strbuf sb = STRBUF_INIT;
		sb_addf(&sb, "#%d %s \u2014 %d pt%s", lb.rows[i].rank, lb.rows[i].member_name,
			lb.rows[i].points, lb.rows[i].points == 1 ? "" : "s");
		movement_mark(&lb, &lb.rows[i], &sb);
		reply_mono(r, "%s", sb_str(&sb));
		sb_release(&sb);
		if (lb.rows[i].streak >= 2)
			sb_addf(&streaks, "%s%s %d days", streaks.len ? ", " : "",
				lb.rows[i].member_name, lb.rows[i].streak);
	}
	if (prev_percent >= 0 && out->group_percent != prev_percent)
		reply_line(r, "Group progress: %d%% of the roadmap (%+d since the last digest).",
			   out->group_percent, out->group_percent - prev_percent);
	else
		reply_line(r, "Group progress: %d%% of the roadmap.", out->group_percent);
	if (streaks.len)
		reply_line(r, "Streaks: %s.", sb_str(&streaks));
	sb_release(&streaks);
	if (busy.topic >= 0) {
		const char *name = roadmap_topic(b->rm, (size_t)busy.topic)->name;
		if (busy.count > 1)
			reply_line(r, "%d of you are on %s \u2014 compare notes: /who %s",
				   busy.count, name, name);
		else
			reply_line(r, "Someone is on %s \u2014 join them: /start %s", name, name);
	}
out:
	news_release(&news);
	leaderboard_release(&lb);
	group_prefs_release(&p);
	if (rc)
		digest_release(out);
	return rc;
}

void digest_release(struct digest *d)
{
	reply_release(&d->reply);
	for (size_t i = 0; i < d->nranks; i++)
		free((char *)d->ranks[i].member_id);
	free(d->ranks);
	d->ranks = NULL;
	d->nranks = 0;
}
