#include "digest.h"

#include "bot_internal.h"
#include "goal.h"
#include "leaderboard.h"
#include "page.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"
#include "roadmap.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST_TOP 5
#define DIGEST_TOP_MAX 8      /* rows shown when members tie at the fifth place */
#define DIGEST_MAX_MEMBERS 15 /* news lines; the rest are summed up */
#define DIGEST_NOTE 80        /* bytes of a note shown in a news line */

/* Topics of one kind (finished or started) a member has news about, with their notes. */
struct topic_list {
	long *topic; /* roadmap topic indices, in the order they happened */
	char **note; /* the topic's note now, or NULL */
	char **by;   /* the admin whose correction (/fix) made it news, or NULL */
	size_t n, cap, capnote, capby;
};

/* What one member did in the window. */
struct member_news {
	int64_t first_event; /* members are listed in the order they first did something */
	char *member_id;
	char *name;
	bool is_new;
	struct topic_list finished, started;
};

struct news_ctx {
	struct bot *b;
	int64_t since;
	struct member_news *m;
	size_t n, cap;
};

static void add_topic(struct topic_list *l, long topic, const char *by)
{
	/* A topic started, undone and started again is news once (the latest says who). */
	for (size_t i = 0; i < l->n; i++)
		if (l->topic[i] == topic) {
			free(l->by[i]);
			l->by[i] = by ? xstrdup(by) : NULL;
			return;
		}
	grow_array((void **)&l->topic, &l->cap, l->n + 1, sizeof(*l->topic));
	grow_array((void **)&l->note, &l->capnote, l->n + 1, sizeof(*l->note));
	grow_array((void **)&l->by, &l->capby, l->n + 1, sizeof(*l->by));
	l->topic[l->n] = topic;
	l->by[l->n] = by ? xstrdup(by) : NULL;
	l->note[l->n++] = NULL;
}

static void topic_list_release(struct topic_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->note[i]);
		free(l->by[i]);
	}
	free(l->topic);
	free(l->note);
	free(l->by);
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
	add_topic(a->to == STATUS_DONE ? &m->finished : &m->started, t, a->actor_name);
	return 0;
}

struct note_ctx {
	struct bot *b;
	struct member_news *m;
};

/* Keeps the note of a news topic whose record still has the status the news reports. */
static int collect_note(const struct store_row *row, void *ud)
{
	struct note_ctx *c = ud;
	if (!row->note || !*row->note)
		return 0;
	long t = roadmap_find_id(c->b->rm, row->topic_id);
	struct topic_list *l = row->status == STATUS_DONE          ? &c->m->finished
			       : row->status == STATUS_IN_PROGRESS ? &c->m->started
								   : NULL;
	for (size_t i = 0; l && t >= 0 && i < l->n; i++)
		if (l->topic[i] == t && !l->note[i])
			l->note[i] = xstrdup(row->note);
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
		topic_list_release(&c->m[i].finished);
		topic_list_release(&c->m[i].started);
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

/* Appends "Kafka (“built a consumer”), Redis": notes clipped to DIGEST_NOTE bytes. */
struct tie_count {
	int rank;
	size_t n;
};

static int count_tied(const struct store_rank *r, void *ud)
{
	struct tie_count *t = ud;
	if (r->rank > t->rank)
		return -1; /* ranked past the tie: stop */
	t->n += r->rank == t->rank;
	return 0;
}

/*
 * How many rows of lb the digest shows, and how many members tied with the
 * last shown row are left out (*more). The top five, plus everyone tied with
 * the fifth when that makes at most DIGEST_TOP_MAX rows; otherwise the first
 * five, and the rest of that tie is counted ("and N more with X pts").
 */
static int top_rows(struct bot *b, const char *group_id, const struct leaderboard *lb,
		    size_t *shown, size_t *more)
{
	*more = 0;
	*shown = lb->n < DIGEST_TOP ? lb->n : DIGEST_TOP;
	if (lb->n <= DIGEST_TOP || lb->rows[DIGEST_TOP].rank != lb->rows[DIGEST_TOP - 1].rank)
		return COHORT_OK;
	int cut = lb->rows[DIGEST_TOP - 1].rank;
	size_t end = DIGEST_TOP;
	while (end < lb->n && lb->rows[end].rank == cut)
		end++;
	if (end <= DIGEST_TOP_MAX) {
		*shown = end;
		return COHORT_OK;
	}
	struct tie_count t = {cut, 0};
	int rc = store_ranking(b->store, group_id, PERIOD_ALL, 0, INT_MAX, NULL, count_tied, &t);
	if (rc && rc != -1)
		return rc;
	size_t before = 0; /* tied members among the first five */
	for (size_t i = 0; i < DIGEST_TOP; i++)
		before += lb->rows[i].rank == cut;
	*more = t.n > before ? t.n - before : 0;
	return COHORT_OK;
}

static void add_topic_list(struct strbuf *sb, const struct bot *b, const struct topic_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		sb_addf(sb, "%s%s", i ? ", " : "", roadmap_topic(b->rm, (size_t)l->topic[i])->name);
		if (l->by[i])
			sb_addf(sb, " (set by %s)", l->by[i]);
		const char *note = l->note[i];
		if (!note)
			continue;
		size_t len = strlen(note);
		if (len > DIGEST_NOTE) {
			len = DIGEST_NOTE;
			while (len && ((unsigned char)note[len] & 0xc0) == 0x80)
				len--;     /* not inside a character */
			size_t word = len; /* and not inside a word, when one ends late enough */
			while (word > DIGEST_NOTE / 2 && note[word] != ' ')
				word--;
			if (note[word] == ' ') {
				while (word > 0 && note[word - 1] == ' ')
					word--;
				len = word > 0 ? word : len;
			}
		}
		sb_addf(sb, " (\u201c%.*s%s\u201d)", (int)len, note,
			len < strlen(note) ? "\u2026" : "");
	}
}

static int add_news(struct bot *b, const char *group_id, struct reply *r, struct news_ctx *news)
{
	for (size_t i = 0; i < news->n && i < DIGEST_MAX_MEMBERS; i++) {
		struct member_news *m = &news->m[i];
		struct note_ctx nc = {b, m};
		int rc = store_member_progress(b->store, group_id, m->member_id, collect_note, &nc);
		if (rc)
			return rc;
		struct strbuf sb = STRBUF_INIT;
		sb_addf(&sb, "%s%s", m->name, m->is_new ? " joined the group and" : "");
		if (m->finished.n) {
			sb_adds(&sb, " finished ");
			add_topic_list(&sb, b, &m->finished);
		}
		if (m->started.n) {
			sb_adds(&sb, m->finished.n ? "; started " : " started ");
			add_topic_list(&sb, b, &m->started);
		}
		reply_line(r, "%s", sb_str(&sb));
		sb_release(&sb);
	}
	if (news->n > DIGEST_MAX_MEMBERS) {
		size_t more = news->n - DIGEST_MAX_MEMBERS;
		reply_line(r, "... and %zu more %s progress.", more,
			   more == 1 ? "member made" : "members made");
	}
	return COHORT_OK;
}

int digest_build(struct bot *b, const char *group_id, int64_t now, struct digest *out)
{
	memset(out, 0, sizeof(*out));
	reply_init(&out->reply);
	struct group_prefs p;
	/* The group's own roadmap: its percentages, topics and nudge. */
	int rc = bot_use_group(b, group_id);
	if (!rc)
		rc = bot_group_prefs(b, group_id, &p);
	if (rc)
		return rc;
	tz_format(p.timezone, now, "%Y-%m-%d", out->local_date, sizeof(out->local_date));

	/*
	 * The window: since the previous digest or, when there was none, since
	 * the digest day before today (yesterday for a daily digest, Friday for a
	 * weekday digest on a Monday, a week for a weekly one).
	 */
	struct store_digest prev;
	int have_prev = store_digest_previous(b->store, group_id, out->local_date, &prev);
	int back = 1;
	while (back < 7 && !scheduler_is_digest_day(&p.every, p.timezone,
						    tz_day_start(p.timezone, now, -back)))
		back++;
	int64_t since = now - back * 86400000LL;
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
		rc = leaderboard_build(b, group_id, LB_ALL, DIGEST_TOP_MAX + 1, NULL,
				       out->local_date, &lb);
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
	char day[64], since_day[64];
	tz_format(p.timezone, now, "%A %d %B", day, sizeof(day));
	tz_format(p.timezone, since, "%A %d %B", since_day, sizeof(since_day));
	/* Local days the window spans: 1 for a daily digest, 3 on a weekday digest's Monday. */
	long span = tz_day_number(p.timezone, now) - tz_day_number(p.timezone, since);
	reply_title(r, REPLY_INFO, "%s digest \u2014 %s",
		    p.every.kind == EVERY_WEEK	    ? "Weekly"
		    : p.every.kind == EVERY_WEEKDAY ? "Weekday"
						    : "Daily",
		    day);
	if (members == 0) {
		/* Nobody has spoken yet: no "quiet day" for a group that never started. */
		reply_line(r, "Nothing to report yet: nobody in the group has logged progress.");
		reply_line(r,
			   "The first /done starts the digest \u2014 /next shows where to begin.");
		goto out;
	}
	if (news.n == 0) {
		if (span <= 1)
			reply_line(r, "A quiet day: nobody logged progress since the last digest.");
		else if (span == 7)
			reply_line(r, "A quiet week: nobody logged progress since the last digest "
				      "(%s).", since_day);
		else
			reply_line(r, "Quiet since %s: nobody logged progress since the last "
				      "digest.", since_day);
		reply_line(r, "One topic keeps a streak alive \u2014 /next shows yours.");
		goto out;
	}
	if (span > 1) /* the news covers more than a day: say from when */
		reply_line(r, "Since the last digest (%s):", since_day);
	rc = add_news(b, group_id, r, &news);
	if (rc)
		goto out;
	size_t shown, more;
	rc = top_rows(b, group_id, &lb, &shown, &more);
	if (rc)
		goto out;
	if (shown)
		reply_line(r, "Leaderboard:"); /* nobody has a point yet: no empty heading */
	struct strbuf streaks = STRBUF_INIT;
	for (size_t i = 0; i < shown; i++) {
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
	if (more)
		reply_mono(r, "... and %zu more with %d %s (also #%d)", more,
			   lb.rows[shown - 1].points,
			   text_plural(lb.rows[shown - 1].points, "pt", "pts"),
			   lb.rows[shown - 1].rank);
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
	if (!rc && members > 0) /* goals reached, missed and on their way (goal.c) */
		rc = goal_digest_lines(b, group_id, since, now, &out->reply);
	if (!rc) {
		char *link = bot_page_link(b, group_id);
		if (link)
			reply_line(&out->reply, "The group's page: %s", link);
		free(link);
	}
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
