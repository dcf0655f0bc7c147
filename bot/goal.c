#include "goal.h"

#include "bot_internal.h"
#include "event.h"
#include "reply.h"
#include "roadmap.h"

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GOAL_DIGEST_LINES 10 /* members' goals a digest shows the pace of */

/* ---- dates ---- */

/* How many bytes of s, at most max, end on a character's boundary (for "%.*s"). */
static int clip(const char *s, int max)
{
	int n = (int)strnlen(s, (size_t)max + 1);
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* "2027-03-31", exactly, a day that exists. */
static bool parse_iso_date(const char *s, int *y, int *m, int *d)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return false;
	*y = atoi(s);
	*m = atoi(s + 5);
	*d = atoi(s + 8);
	return *y >= 1970 && *m >= 1 && *m <= 12 && *d >= 1 && *d <= month_days(*y, *m);
}

bool goal_date_valid(const char *s)
{
	int y, m, d;
	return parse_iso_date(s, &y, &m, &d);
}

/* The local day number of a date (as tz_day_number() counts days). */
static long day_number(const char *tz, int y, int m, int d)
{
	return tz_day_number(tz, tz_local_ms(tz, y, m, d, 12, 0));
}

bool goal_pace(const char *tz, int64_t set_at, const char *due_date, int64_t now,
	       const int64_t *finished_at, size_t n, struct goal_pace *out)
{
	int y, m, d;
	memset(out, 0, sizeof(*out));
	out->next = -1;
	if (!parse_iso_date(due_date, &y, &m, &d))
		return false;
	long due_day = day_number(tz, y, m, d);
	int64_t due_end = tz_local_ms(tz, y, m, d + 1, 0, 0); /* the next local midnight */
	long set_day = tz_day_number(tz, set_at);
	long today = tz_day_number(tz, now);
	if (set_day > due_day)
		set_day = due_day;
	int base = 0; /* finished when the goal was set */
	out->total = (int)n;
	for (size_t i = 0; i < n; i++) {
		if (!finished_at[i]) {
			out->left++;
			if (out->next < 0)
				out->next = (long)i;
			continue;
		}
		base += finished_at[i] <= set_at;
		if (finished_at[i] > out->reached_at)
			out->reached_at = finished_at[i];
	}
	out->left_at_set = (int)n - base;
	out->days_total = due_day - set_day + 1;
	out->days_left = today <= due_day ? due_day - today + 1 : 0;
	if (now >= due_end)
		for (size_t i = 0; i < n; i++)
			out->missed_by += !finished_at[i] || finished_at[i] >= due_end;
	if (out->left == 0) {
		out->state = GOAL_REACHED;
		return true;
	}
	out->reached_at = 0;
	if (today > due_day) {
		out->state = GOAL_MISSED;
		return true;
	}
	/* The plan: the topics left at the set day, spread evenly over its days. */
	long e = today - set_day;
	if (e < 0)
		e = 0;
	int64_t l0 = out->left_at_set;
	int morning = (int)(l0 - l0 * e / out->days_total);
	int tonight = (int)(l0 - l0 * (e + 1) / out->days_total);
	out->today = out->left > tonight ? out->left - tonight : 0;
	if (today == due_day) {
		out->state = GOAL_DUE_TODAY;
		out->today = out->left;
	} else if (out->left > morning) {
		out->state = GOAL_BEHIND;
		out->behind = out->left - morning;
	} else if (out->left < tonight) {
		out->state = GOAL_AHEAD;
		out->ahead = tonight - out->left;
	} else {
		out->state = GOAL_ON_TRACK;
	}
	return true;
}

static const char *const months[] = {"january",   "february", "march",    "april",
				     "may",       "june",     "july",     "august",
				     "september", "october",  "november", "december"};

/* 1-12 for a month's English name, its first three letters, or "sept"; else 0. */
static int month_of(const char *w)
{
	size_t n = strlen(w);
	for (int i = 0; i < 12; i++) {
		if (n == 3 && strncasecmp(w, months[i], 3) == 0)
			return i + 1;
		if (strcasecmp(w, months[i]) == 0)
			return i + 1;
	}
	return strcasecmp(w, "sept") == 0 ? 9 : 0;
}

/* 1-31 from "31", "31st", "2nd", "3rd", "4th"; else 0. */
static int day_of(const char *w)
{
	char *end;
	if (!isdigit((unsigned char)*w))
		return 0;
	long v = strtol(w, &end, 10);
	if (end - w > 2 || v < 1 || v > 31)
		return 0;
	if (*end && strcasecmp(end, "st") != 0 && strcasecmp(end, "nd") != 0 &&
	    strcasecmp(end, "rd") != 0 && strcasecmp(end, "th") != 0)
		return 0;
	return (int)v;
}

static int year_of(const char *w)
{
	if (strlen(w) != 4)
		return 0;
	for (int i = 0; i < 4; i++)
		if (!isdigit((unsigned char)w[i]))
			return 0;
	return atoi(w);
}

bool goal_parse_date(const char *text, const char *tz, int64_t now, char out[11], char *why,
		     size_t why_len)
{
	char buf[64];
	char *w[4];
	int nw = 0;
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *p = buf; *p; p++)
		if (*p == ',' || *p == '.')
			*p = ' '; /* "March 31, 2027", "31. March" */
	char *save = NULL;
	for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (nw == 4)
			break;
		w[nw++] = t;
	}
	int y = 0, m = 0, d = 0;
	if (strlen(text) >= sizeof(buf) - 1 || nw == 0 || nw == 4) {
		snprintf(why, why_len, "that is not a date");
		return false;
	}
	if (nw == 1) {
		if (parse_iso_date(w[0], &y, &m, &d)) {
			snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
			return true;
		}
		if (strchr(w[0], '/'))
			snprintf(why, why_len,
				 "\u201c%.*s\u201d could be day/month or month/day: write "
				 "2027-03-31 or 31 March",
				 clip(w[0], 20), w[0]);
		else if (strlen(w[0]) == 10 && w[0][4] == '-')
			snprintf(why, why_len, "%.*s is not a day of the calendar", clip(w[0], 10),
				 w[0]);
		else
			snprintf(why, why_len, "\u201c%.*s\u201d is not a date", clip(w[0], 20),
				 w[0]);
		return false;
	}
	if ((d = day_of(w[0])) && (m = month_of(w[1]))) {
		/* "31 March" */
	} else if ((m = month_of(w[0])) && (d = day_of(w[1]))) {
		/* "March 31" */
	} else {
		const char *guess = NULL;
		for (int i = 0; i < 2 && !guess; i++) {
			for (char *c = w[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			for (int k = 0; k < 12 && !guess && strlen(w[i]) >= 4; k++)
				if (text_distance(w[i], months[k], 2) <= 2)
					guess = months[k];
		}
		if (guess)
			snprintf(why, why_len,
				 "\u201c%.*s\u201d is not a day and a month (did you mean %c%s?)",
				 clip(text, 40), text, toupper((unsigned char)guess[0]), guess + 1);
		else
			snprintf(why, why_len, "\u201c%.*s\u201d is not a day and a month",
				 clip(text, 40), text);
		return false;
	}
	if (nw == 3 && !(y = year_of(w[2]))) {
		snprintf(why, why_len, "\u201c%.*s\u201d is not a year", clip(w[2], 10), w[2]);
		return false;
	}
	struct tz_local lt;
	tz_local_time(tz, now, &lt);
	if (y) {
		if (d > month_days(y, m)) {
			snprintf(why, why_len, "%s %d has %d days", months[m - 1], y,
				 month_days(y, m));
			why[0] = (char)toupper((unsigned char)why[0]);
			return false;
		}
	} else {
		/* The next such day, today included (29 February: the next leap year's). */
		y = lt.year;
		while (d > month_days(y, m) || m < lt.month || (m == lt.month && d < lt.day)) {
			if (d > month_days(2000, m)) {
				snprintf(why, why_len, "%s has %d days", months[m - 1],
					 month_days(2000, m));
				why[0] = (char)toupper((unsigned char)why[0]);
				return false;
			}
			y++;
			lt.month = 0; /* any day of a later year is ahead */
		}
	}
	snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
	return true;
}

/* ---- goals as the bot sees them ---- */

/* A goal read from the store, its strings owned. */
struct goal {
	char *member_id; /* "" for the group's */
	char *kind, *target, *due, *set_by, *set_by_name;
	int64_t set_at, reached_at;
};

struct goals {
	struct goal *g;
	size_t n, cap;
};

static int collect_goal(const struct store_goal *g, void *ud)
{
	struct goals *gs = ud;
	grow_array((void **)&gs->g, &gs->cap, gs->n + 1, sizeof(*gs->g));
	gs->g[gs->n++] = (struct goal){xstrdup(g->member_id),
				       xstrdup(g->target_kind),
				       xstrdup(g->target_id),
				       xstrdup(g->due_date),
				       xstrdup(g->set_by),
				       xstrdup(g->set_by_name),
				       g->set_at,
				       g->reached_at};
	return 0;
}

static void goals_release(struct goals *gs)
{
	for (size_t i = 0; i < gs->n; i++) {
		struct goal *g = &gs->g[i];
		free(g->member_id);
		free(g->kind);
		free(g->target);
		free(g->due);
		free(g->set_by);
		free(g->set_by_name);
	}
	free(gs->g);
	memset(gs, 0, sizeof(*gs));
}

/* The section node with this id, or -1. */
static long section_node(const struct roadmap *rm, const char *id)
{
	for (size_t i = 0; i < roadmap_node_count(rm); i++) {
		const struct rm_node *nd = roadmap_node(rm, i);
		if (nd->topic < 0 && strcmp(nd->id, id) == 0)
			return (long)i;
	}
	return -1;
}

/*
 * Flags the goal's topics in in[] (roadmap_topic_count() flags) and returns
 * how many, with its name in *name; -1 when it is no longer on the roadmap.
 */
static long goal_scope(const struct roadmap *rm, const char *kind, const char *id, bool *in,
		       const char **name)
{
	*name = id;
	if (strcmp(kind, "section") == 0) {
		long node = section_node(rm, id);
		if (node < 0)
			return -1;
		*name = roadmap_node(rm, (size_t)node)->name;
		return (long)roadmap_subtree_topics(rm, (size_t)node, in);
	}
	long t = roadmap_find_id(rm, id);
	if (t < 0)
		return -1;
	memset(in, 0, roadmap_topic_count(rm) * sizeof(*in));
	in[t] = true;
	*name = roadmap_topic(rm, (size_t)t)->name;
	return 1;
}

struct finished_ctx {
	const struct roadmap *rm;
	int64_t *fin;
};

static int collect_finished(const struct store_row *row, void *ud)
{
	struct finished_ctx *c = ud;
	long t = roadmap_find_id(c->rm, row->topic_id);
	if (t >= 0 && (row->status == STATUS_DONE || row->status == STATUS_SKIPPED))
		c->fin[t] = row->updated_at ? row->updated_at : 1;
	return 0;
}

/* When the member finished each roadmap topic (0: not finished). */
static int member_finished(struct bot *b, const char *group, const char *member, int64_t *fin)
{
	memset(fin, 0, roadmap_topic_count(b->rm) * sizeof(*fin));
	struct finished_ctx c = {b->rm, fin};
	return store_member_progress(b->store, group, member, collect_finished, &c);
}

/* A goal evaluated for one member. */
struct evaluated {
	const char *name; /* the target's name */
	long ntopics;     /* -1: not on the roadmap any more */
	struct goal_pace pace;
	long next_topic; /* roadmap index of pace.next, or -1 */
};

static void evaluate(struct bot *b, const char *tz, const struct goal *g, const int64_t *fin,
		     bool *in, int64_t now, struct evaluated *out)
{
	size_t n = roadmap_topic_count(b->rm);
	memset(out, 0, sizeof(*out));
	out->next_topic = -1;
	out->ntopics = goal_scope(b->rm, g->kind, g->target, in, &out->name);
	if (out->ntopics < 0)
		return;
	int64_t *scoped = xcalloc(n + 1, sizeof(*scoped));
	long *index = xcalloc(n + 1, sizeof(*index));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!in[i])
			continue;
		index[k] = (long)i;
		scoped[k++] = fin[i];
	}
	goal_pace(tz, g->set_at, g->due, now, scoped, k, &out->pace);
	if (out->pace.next >= 0)
		out->next_topic = index[out->pace.next];
	free(scoped);
	free(index);
}

static void add_topics(struct strbuf *sb, int n)
{
	sb_addf(sb, "%d %s", n, text_plural(n, "topic", "topics"));
}

/* "Databases by 2027-03-31 — 5 of 12 topics left, 40 days to go: on track. Next: X" */
static void pace_text(struct bot *b, const char *tz, const struct goal *g,
		      const struct evaluated *e, bool named, struct strbuf *sb)
{
	const struct goal_pace *p = &e->pace;
	if (named)
		sb_addf(sb, "%s by %s \u2014 ", e->name, g->due);
	if (e->ntopics < 0) {
		sb_adds(sb, "no longer on the roadmap: set a new one with /goal TOPIC by DATE");
		return;
	}
	char day[16];
	switch (p->state) {
	case GOAL_REACHED: {
		int64_t at = g->reached_at ? g->reached_at : p->reached_at;
		tz_format(tz, at, "%Y-%m-%d", day, sizeof(day));
		sb_addf(sb, "reached on %s", day);
		if (p->missed_by)
			sb_adds(sb, ", after the due date");
		sb_adds(sb, " \U0001F389");
		return;
	}
	case GOAL_MISSED:
		sb_adds(sb, "missed by ");
		add_topics(sb, p->missed_by);
		sb_addf(sb, " on %s", g->due);
		return;
	default: break;
	}
	sb_addf(sb, "%d of ", p->left);
	add_topics(sb, p->total);
	sb_adds(sb, " left, ");
	if (p->state == GOAL_DUE_TODAY)
		sb_adds(sb, "due today");
	else
		sb_addf(sb, "%ld %s to go", p->days_left, text_plural(p->days_left, "day", "days"));
	sb_adds(sb, ": ");
	switch (p->state) {
	case GOAL_BEHIND:
		add_topics(sb, p->behind);
		sb_adds(sb, " behind");
		break;
	case GOAL_AHEAD:
		add_topics(sb, p->ahead);
		sb_adds(sb, " ahead");
		break;
	case GOAL_ON_TRACK:
		sb_adds(sb, "on track");
		if (p->today)
			sb_addf(sb, " (%d more today keeps it so)", p->today);
		break;
	default: sb_adds(sb, "finish them today"); break;
	}
	if (e->next_topic >= 0)
		sb_addf(sb, ". %s: %s", p->state == GOAL_BEHIND ? "Next, to catch up" : "Next",
			roadmap_topic(b->rm, (size_t)e->next_topic)->name);
}

/* ---- /progress and /goal ---- */

int goal_progress_lines(struct bot *b, const char *group_id, const char *member_id, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	struct goals gs = {0};
	struct group_prefs prefs;
	int64_t *fin = xcalloc(n + 1, sizeof(*fin));
	bool *in = xcalloc(n + 1, sizeof(*in));
	int rc = bot_group_prefs(b, group_id, &prefs);
	if (rc)
		goto out;
	rc = store_goals(b->store, group_id, member_id, collect_goal, &gs);
	if (!rc && gs.n)
		rc = member_finished(b, group_id, member_id, fin);
	for (size_t i = 0; !rc && i < gs.n; i++) {
		struct evaluated e;
		struct strbuf sb = STRBUF_INIT;
		evaluate(b, prefs.timezone, &gs.g[i], fin, in, bot_now(b), &e);
		pace_text(b, prefs.timezone, &gs.g[i], &e, true, &sb);
		reply_line(r, "%s: %s", *gs.g[i].member_id ? "Goal" : "Group goal", sb_str(&sb));
		sb_release(&sb);
	}
	group_prefs_release(&prefs);
out:
	goals_release(&gs);
	free(fin);
	free(in);
	return rc;
}

static void goal_failed(struct reply *r)
{
	reply_clear(r);
	r->ephemeral = true;
	reply_title(r, REPLY_ERROR, "Something went wrong saving that");
	reply_line(r, "Nothing was changed. Please try again in a moment.");
}

static void usage(struct reply *r, bool group)
{
	if (group)
		reply_line(r, "Usage: /goal group TOPIC|SECTION by DATE, or /goal group off. "
			      "DATE: 2027-03-31, 31 March or March 31.");
	else
		reply_line(r, "Usage: /goal TOPIC|SECTION by DATE (2027-03-31, 31 March or "
			      "March 31), /goal to see it, /goal off to remove it.");
}

/* The words "off", "clear", "none", "remove": remove the goal. */
static bool is_off(const char *s)
{
	return text_ieq(s, "off") || text_ieq(s, "clear") || text_ieq(s, "none") ||
	       text_ieq(s, "remove");
}

/* Finds the last word "by" (case-insensitive) in s: its start, or NULL. */
static char *last_by(char *s)
{
	char *found = NULL;
	for (char *p = s; *p; p++)
		if ((p == s || p[-1] == ' ' || p[-1] == '\t') && (p[0] == 'b' || p[0] == 'B') &&
		    (p[1] == 'y' || p[1] == 'Y') && (p[2] == ' ' || p[2] == '\t' || !p[2]))
			found = p;
	return found;
}

/* A resolved target: its kind, id and name, or an answer in r. */
struct target {
	const char *kind;
	const char *id;
	const char *name;
};

static void add_candidates(struct bot *b, const struct rm_resolution *res, struct strbuf *sb)
{
	size_t k = 0;
	for (size_t i = 0; i < res->nsections; i++)
		sb_addf(sb, "%s%s", k++ ? ", " : "",
			roadmap_node(b->rm, (size_t)res->sections[i])->name);
	for (size_t i = 0; i < res->ncandidates; i++)
		sb_addf(sb, "%s%s", k++ ? ", " : "",
			roadmap_topic(b->rm, (size_t)res->candidates[i])->name);
}

static bool resolve_target(struct bot *b, const char *typed, struct target *t, struct reply *r)
{
	struct rm_resolution res;
	roadmap_resolve(b->rm, typed, &res);
	if (res.match <= RM_FUZZY) {
		const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)res.index);
		*t = (struct target){"topic", topic->id, topic->name};
		if (res.match == RM_FUZZY)
			reply_line(r, "(read \u201c%.*s\u201d as %s)", clip(typed, 60), typed,
				   topic->name);
		return true;
	}
	if (res.match == RM_SECTION) {
		const struct rm_node *nd = roadmap_node(b->rm, (size_t)res.index);
		*t = (struct target){"section", nd->id, nd->name};
		return true;
	}
	if (res.match == RM_UNKNOWN) {
		struct rm_resolution sec;
		roadmap_resolve_section(b->rm, typed, &sec);
		if (sec.index >= 0 && sec.match != RM_AMBIGUOUS) {
			const struct rm_node *nd = roadmap_node(b->rm, (size_t)sec.index);
			*t = (struct target){"section", nd->id, nd->name};
			if (sec.match == RM_FUZZY)
				reply_line(r, "(read \u201c%.*s\u201d as %s)", clip(typed, 60),
					   typed, nd->name);
			return true;
		}
	}
	struct strbuf sb = STRBUF_INIT;
	add_candidates(b, &res, &sb);
	r->ephemeral = true;
	if (res.match == RM_AMBIGUOUS) {
		reply_title(r, REPLY_QUESTION, "Which one: %s?", sb_str(&sb));
		reply_line(r, "Say it with the full name of a topic or a section. Nothing was "
			      "changed.");
	} else {
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not on the roadmap",
			    clip(typed, 60), typed);
		if (sb.len)
			reply_line(r, "Nearest: %s.", sb_str(&sb));
		reply_line(r, "A goal is a topic or a section: /topics lists them. Nothing was "
			      "changed.");
	}
	sb_release(&sb);
	return false;
}

struct group_eval {
	struct bot *b;
	const char *tz;
	const struct goal *g;
	int64_t now;
	int64_t *fin;
	bool *in;
	char *member; /* the member whose rows fin holds */
	int members, reached, on_track, behind, missed;
};

static void group_eval_flush(struct group_eval *c)
{
	if (!c->member)
		return;
	struct evaluated e;
	evaluate(c->b, c->tz, c->g, c->fin, c->in, c->now, &e);
	c->members++;
	if (e.pace.state == GOAL_REACHED)
		c->reached++;
	else if (e.pace.state == GOAL_BEHIND)
		c->behind++;
	else if (e.pace.state == GOAL_MISSED)
		c->missed++;
	else
		c->on_track++;
	free(c->member);
	c->member = NULL;
	memset(c->fin, 0, roadmap_topic_count(c->b->rm) * sizeof(*c->fin));
}

static int group_eval_row(const struct store_row *row, void *ud)
{
	struct group_eval *c = ud;
	if (c->member && strcmp(c->member, row->member_id) != 0)
		group_eval_flush(c);
	if (!c->member)
		c->member = xstrdup(row->member_id);
	struct finished_ctx f = {c->b->rm, c->fin};
	return collect_finished(row, &f);
}

/* Every member with a record, evaluated against the group's goal g. */
static int evaluate_group(struct bot *b, const char *group_id, const char *tz, const struct goal *g,
			  int64_t now, struct group_eval *out)
{
	size_t n = roadmap_topic_count(b->rm);
	*out = (struct group_eval){b,
				   tz,
				   g,
				   now,
				   xcalloc(n + 1, sizeof(int64_t)),
				   xcalloc(n + 1, sizeof(bool)),
				   NULL,
				   0,
				   0,
				   0,
				   0,
				   0};
	int rc = store_export(b->store, group_id, group_eval_row, out);
	group_eval_flush(out);
	free(out->fin);
	free(out->in);
	out->fin = NULL;
	out->in = NULL;
	return rc;
}

static int show_goals(struct bot *b, const struct event *ev, struct reply *r)
{
	size_t before = r->nlines;
	reply_title(r, REPLY_INFO, "Goals");
	int rc = goal_progress_lines(b, ev->group_id, ev->member_id, r);
	if (rc) {
		goal_failed(r);
		return rc;
	}
	if (r->nlines == before)
		reply_line(r, "No goal yet: /goal Databases by 31 March sets one (a topic or a "
			      "section, and a date).");
	else
		reply_line(r, "/goal TOPIC by DATE changes yours, /goal off removes it.");
	return COHORT_OK;
}

static int clear_goal(struct bot *b, const struct event *ev, bool group, struct reply *r)
{
	struct goals gs = {0};
	int rc = store_goals(b->store, ev->group_id, group ? "" : ev->member_id, collect_goal, &gs);
	struct goal *old = NULL;
	for (size_t i = 0; !rc && i < gs.n; i++)
		if (strcmp(gs.g[i].member_id, group ? "" : ev->member_id) == 0)
			old = &gs.g[i];
	if (!rc && old)
		rc = store_goal_clear(b->store, ev->group_id, group ? "" : ev->member_id);
	if (rc) {
		goal_failed(r);
		goto out;
	}
	if (!old) {
		reply_title(r, REPLY_INFO, "%s",
			    group ? "The group has no goal" : "You have no goal");
		reply_line(r, "Nothing was changed.");
		usage(r, group);
		goto out;
	}
	const char *name = old->target;
	bool *in = xcalloc(roadmap_topic_count(b->rm) + 1, sizeof(*in));
	goal_scope(b->rm, old->kind, old->target, in, &name);
	reply_title(r, REPLY_SUCCESS, "Removed %s goal: %s by %s", group ? "the group's" : "your",
		    name, old->due);
	free(in);
	if (group)
		r->ephemeral = false;
out:
	goals_release(&gs);
	return rc;
}

static int set_goal(struct bot *b, const struct event *ev, bool group, char *text, struct reply *r)
{
	char *by = last_by(text);
	size_t n = roadmap_topic_count(b->rm);
	struct group_prefs prefs;
	struct goals gs = {0};
	int64_t *fin = xcalloc(n + 1, sizeof(*fin));
	bool *in = xcalloc(n + 1, sizeof(*in));
	int rc = COHORT_OK;
	char due[11], why[160];
	bool have_prefs = false;
	if (!by || by == text) {
		reply_title(r, REPLY_ERROR, "%s", by ? "Which topic or section?" : "By when?");
		reply_line(r, "Nothing was changed.");
		usage(r, group);
		goto out;
	}
	by[-1] = '\0';
	char *typed = text_trim(text), *date = text_trim(by + 2);
	if (!*date) {
		reply_title(r, REPLY_ERROR, "By when?");
		reply_line(r, "Nothing was changed.");
		usage(r, group);
		goto out;
	}
	rc = bot_group_prefs(b, ev->group_id, &prefs);
	if (rc) {
		goal_failed(r);
		goto out;
	}
	have_prefs = true;
	int64_t now = bot_now(b);
	if (!goal_parse_date(date, prefs.timezone, now, due, why, sizeof(why))) {
		reply_title(r, REPLY_ERROR, "%s", why);
		reply_line(r, "Nothing was changed.");
		usage(r, group);
		goto out;
	}
	char today[16];
	tz_format(prefs.timezone, now, "%Y-%m-%d", today, sizeof(today));
	if (strcmp(due, today) < 0) {
		reply_title(r, REPLY_ERROR, "%s has passed", due);
		reply_line(r,
			   "Today is %s (%s). A goal needs a date from today on. Nothing was "
			   "changed.",
			   today, prefs.timezone);
		goto out;
	}
	int y = atoi(due), m = atoi(due + 5), d = atoi(due + 8);
	if (day_number(prefs.timezone, y, m, d) - tz_day_number(prefs.timezone, now) >
	    GOAL_MAX_DAYS) {
		reply_title(r, REPLY_ERROR, "%s is more than ten years away", due);
		reply_line(r, "Pick a nearer date. Nothing was changed.");
		goto out;
	}
	struct target t;
	if (!resolve_target(b, typed, &t, r))
		goto out;
	struct goal probe = {"", (char *)t.kind, (char *)t.id, due, NULL, NULL, now, 0};
	struct evaluated e;
	if (group) {
		struct group_eval ge;
		rc = evaluate_group(b, ev->group_id, prefs.timezone, &probe, now, &ge);
		if (rc) {
			goal_failed(r);
			goto out;
		}
		if (ge.members && ge.reached == ge.members) {
			r->ephemeral = true;
			reply_title(r, REPLY_INFO, "Everyone here has finished %s already", t.name);
			reply_line(r, "Pick something ahead of the group. Nothing was changed.");
			goto out;
		}
	} else {
		rc = member_finished(b, ev->group_id, ev->member_id, fin);
		if (rc) {
			goal_failed(r);
			goto out;
		}
		evaluate(b, prefs.timezone, &probe, fin, in, now, &e);
		if (e.pace.state == GOAL_REACHED) {
			r->ephemeral = true;
			reply_title(r, REPLY_INFO, "You have finished %s already", t.name);
			reply_line(r,
				   "A goal is something ahead: /next shows where you are. Nothing "
				   "was changed.");
			goto out;
		}
	}
	const char *owner = group ? "" : ev->member_id;
	rc = store_goals(b->store, ev->group_id, owner, collect_goal, &gs);
	struct goal *old = NULL;
	for (size_t i = 0; !rc && i < gs.n; i++)
		if (strcmp(gs.g[i].member_id, owner) == 0)
			old = &gs.g[i];
	struct store_goal sg = {ev->group_id, owner,         t.kind,          t.id, due,
				now,          ev->member_id, ev->member_name, 0};
	if (!rc)
		rc = store_goal_set(b->store, &sg);
	if (rc) {
		goal_failed(r);
		goto out;
	}
	struct strbuf sb = STRBUF_INIT;
	struct goal set = {(char *)owner, (char *)t.kind, (char *)t.id, due, NULL, NULL, now, 0};
	evaluate(b, prefs.timezone, &set, fin, in, now, &e);
	if (group) {
		r->ephemeral = false;
		reply_title(r, REPLY_SUCCESS, "Group goal: %s by %s", t.name, due);
		reply_line(r,
			   "Set by %s for everyone: %ld %s, %ld %s. /progress shows each "
			   "member's pace.",
			   ev->member_name, e.ntopics, text_plural(e.ntopics, "topic", "topics"),
			   e.pace.days_left, text_plural(e.pace.days_left, "day", "days"));
	} else {
		reply_title(r, REPLY_SUCCESS, "Goal set: %s by %s", t.name, due);
		pace_text(b, prefs.timezone, &set, &e, false, &sb);
		reply_line(r, "%s", sb_str(&sb));
		reply_line(r, "/progress shows your pace; /goal off removes the goal.");
	}
	if (old) {
		const char *old_name = old->target;
		goal_scope(b->rm, old->kind, old->target, in, &old_name);
		reply_line(r, "It replaces %s goal %s by %s.", group ? "the group's" : "your",
			   old_name, old->due);
	}
	sb_release(&sb);
out:
	if (have_prefs)
		group_prefs_release(&prefs);
	goals_release(&gs);
	free(fin);
	free(in);
	return rc;
}

int goal_command(struct bot *b, const struct event *ev, struct reply *r)
{
	char *args = text_trim(xstrdup(ev->args));
	char *rest = args;
	bool group = false;
	int rc = COHORT_OK;
	r->ephemeral = true;
	if (strncasecmp(args, "group", 5) == 0 && (!args[5] || args[5] == ' ' || args[5] == '\t')) {
		group = true;
		rest = text_trim(args + 5);
	}
	if (!*rest) {
		rc = show_goals(b, ev, r);
		if (group && !rc)
			usage(r, true);
		goto out;
	}
	if (group && !ev->is_admin) {
		reply_title(r, REPLY_ERROR, "Only admins can set the group's goal");
		reply_line(r, "Ask someone who can manage this server or room; /goal TOPIC by "
			      "DATE sets your own. Nothing was changed.");
		goto out;
	}
	if (is_off(rest))
		rc = clear_goal(b, ev, group, r);
	else
		rc = set_goal(b, ev, group, rest, r);
out:
	free(args);
	return rc;
}

int goal_group_command(struct bot *b, const struct event *ev, struct reply *r)
{
	struct event group = *ev;
	char *args = xasprintf("group %s", ev->args ? ev->args : "");
	group.args = args;
	int rc = goal_command(b, &group, r);
	free(args);
	return rc;
}

/* ---- celebrating, and the digest ---- */

int goal_after_change(struct bot *b, const struct event *ev, int64_t since, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	struct goals gs = {0};
	struct group_prefs prefs;
	int rc = store_goals(b->store, ev->group_id, ev->member_id, collect_goal, &gs);
	if (rc || !gs.n) {
		goals_release(&gs);
		return rc;
	}
	int64_t *fin = xcalloc(n + 1, sizeof(*fin));
	bool *in = xcalloc(n + 1, sizeof(*in));
	rc = bot_group_prefs(b, ev->group_id, &prefs);
	if (rc)
		goto out;
	rc = member_finished(b, ev->group_id, ev->member_id, fin);
	int64_t now = bot_now(b);
	for (size_t i = 0; !rc && i < gs.n; i++) {
		struct goal *g = &gs.g[i];
		struct evaluated e;
		evaluate(b, prefs.timezone, g, fin, in, now, &e);
		if (e.ntopics < 0 || e.pace.state != GOAL_REACHED || g->reached_at ||
		    e.pace.reached_at < since)
			continue; /* not reached, or not by this change */
		bool first;
		rc = store_goal_mark(b->store, ev->group_id, g->member_id, ev->member_id, g->set_at,
				     now, &first);
		if (rc || !first)
			continue;
		long early = e.pace.days_left - 1;
		struct strbuf sb = STRBUF_INIT;
		if (e.pace.missed_by)
			sb_addf(&sb, "after the due date (%s)", g->due);
		else if (early > 0)
			sb_addf(&sb, "%ld %s before the due date", early,
				text_plural(early, "day", "days"));
		else
			sb_adds(&sb, "on the due date");
		reply_line(r, "\U0001F389 %s reached %s: %s, %s!", ev->member_name,
			   *g->member_id ? "their goal" : "the group's goal", e.name, sb_str(&sb));
		sb_release(&sb);
	}
	group_prefs_release(&prefs);
out:
	goals_release(&gs);
	free(fin);
	free(in);
	return rc;
}

struct marks_ctx {
	struct bot *b;
	struct reply *r;
	bool *in;
	bool *heading;
};

static void heading(struct reply *r, bool *done)
{
	if (!*done)
		reply_line(r, "Goals:");
	*done = true;
}

static int digest_mark(const struct store_goal_mark *m, void *ud)
{
	struct marks_ctx *c = ud;
	const char *name = m->target_id;
	goal_scope(c->b->rm, m->target_kind, m->target_id, c->in, &name);
	heading(c->r, c->heading);
	reply_line(c->r, "\U0001F389 %s reached %s: %s (due %s).", m->member_name,
		   *m->goal_member ? "their goal" : "the group's goal", name, m->due_date);
	return 0;
}

/* The end of the goal's due day, as Unix ms in tz. */
static int64_t due_end(const char *tz, const char *due)
{
	int y, m, d;
	return parse_iso_date(due, &y, &m, &d) ? tz_local_ms(tz, y, m, d + 1, 0, 0) : 0;
}

int goal_digest_lines(struct bot *b, const char *group_id, int64_t since, int64_t now,
		      struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	struct goals gs = {0};
	struct group_prefs prefs;
	bool headed = false;
	int64_t *fin = xcalloc(n + 1, sizeof(*fin));
	bool *in = xcalloc(n + 1, sizeof(*in));
	int rc = bot_group_prefs(b, group_id, &prefs);
	if (rc)
		goto out;
	const char *tz = prefs.timezone;
	struct marks_ctx mc = {b, r, in, &headed};
	rc = store_goal_marks(b->store, group_id, since, now + 1, digest_mark, &mc);
	if (!rc)
		rc = store_goals(b->store, group_id, NULL, collect_goal, &gs);
	size_t shown = 0, more = 0;
	for (size_t i = 0; !rc && i < gs.n; i++) {
		struct goal *g = &gs.g[i];
		int64_t end = due_end(tz, g->due);
		bool ended_now = end > since && end <= now; /* its due day ended in this window */
		struct evaluated e;
		struct strbuf sb = STRBUF_INIT;
		if (!*g->member_id) {
			struct group_eval ge;
			rc = evaluate_group(b, group_id, tz, g, now, &ge);
			if (rc)
				break;
			const char *name = g->target;
			goal_scope(b->rm, g->kind, g->target, in, &name);
			if (ended_now) {
				heading(r, &headed);
				reply_line(r,
					   "The group's goal %s (due %s) has passed: %d of %d "
					   "reached it.",
					   name, g->due, ge.reached, ge.members);
			} else if (now < end && ge.members) {
				heading(r, &headed);
				long days = tz_day_number(tz, end - 1) - tz_day_number(tz, now) + 1;
				reply_line(r,
					   "Group goal: %s by %s, %ld %s left: %d reached, %d on "
					   "track or ahead, %d behind.",
					   name, g->due, days, text_plural(days, "day", "days"),
					   ge.reached, ge.on_track, ge.behind);
			}
			continue;
		}
		rc = member_finished(b, group_id, g->member_id, fin);
		if (rc)
			break;
		evaluate(b, tz, g, fin, in, now, &e);
		if (e.ntopics < 0)
			continue;
		if (ended_now && e.pace.missed_by) {
			heading(r, &headed);
			reply_line(r, "%s missed their goal %s by %d %s on %s.", g->set_by_name,
				   e.name, e.pace.missed_by,
				   text_plural(e.pace.missed_by, "topic", "topics"), g->due);
			continue;
		}
		if (e.pace.state == GOAL_REACHED || e.pace.state == GOAL_MISSED)
			continue; /* said once: when it was reached, or when it passed */
		if (shown == GOAL_DIGEST_LINES) {
			more++;
			continue;
		}
		heading(r, &headed);
		pace_text(b, tz, g, &e, true, &sb);
		reply_line(r, "%s: %s", g->set_by_name, sb_str(&sb));
		sb_release(&sb);
		shown++;
	}
	if (!rc && more)
		reply_line(r, "... and %zu more %s (/progress shows yours).", more,
			   text_plural((long)more, "goal", "goals"));
	group_prefs_release(&prefs);
out:
	goals_release(&gs);
	free(fin);
	free(in);
	return rc;
}
