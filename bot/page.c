#include "page.h"

#include "bot_internal.h"
#include "leaderboard.h"
#include "roadmap.h"

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int page_token_new(char *out)
{
	unsigned char raw[PAGE_TOKEN_LEN * 3 / 4];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			out[0] = '\0';
			return COHORT_ERR_IO;
		}
		got += (size_t)n;
	}
	char *o = out;
	for (size_t i = 0; i < sizeof(raw); i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
		*o++ = b64url[v & 63];
	}
	*o = '\0';
	return COHORT_OK;
}

bool page_token_shape(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= PAGE_TOKEN_LEN || !strchr(b64url, s[n]))
			return false;
	return n == PAGE_TOKEN_LEN;
}

void page_data_release(struct page_data *d)
{
	free(d->group_id);
	free(d->timezone);
	free(d->roadmap);
	for (size_t i = 0; i < d->nsections; i++)
		free(d->sections[i]);
	free(d->sections);
	for (size_t i = 0; i < d->nm; i++) {
		free(d->m[i].id);
		free(d->m[i].name);
		free(d->m[i].coverage);
	}
	free(d->m);
	for (int p = 0; p < 3; p++)
		free(d->board[p]);
	free(d->heat);
	for (size_t i = 0; i < d->nfin; i++) {
		free(d->fin[i].member);
		free(d->fin[i].topic);
		free(d->fin[i].section);
		free(d->fin[i].note);
	}
	free(d->fin);
	memset(d, 0, sizeof(*d));
}

/* ---- collecting ---------------------------------------------------------------------- */

struct activity_ctx {
	const char *tz;
	long first_day;
	int net[PAGE_DAYS];
	int *done;
};

static int on_bucket(const struct store_bucket *bk, void *ud)
{
	struct activity_ctx *c = ud;
	long day = tz_day_number(c->tz, bk->start) - c->first_day;
	if (day >= 0 && day < PAGE_DAYS) {
		c->net[day] += bk->net;
		c->done[day] += bk->finished;
	}
	return 0;
}

struct trend_ctx {
	int64_t start[PAGE_WEEKS]; /* week starts, oldest first */
	int *trend;
};

static int on_done_time(int64_t at, void *ud)
{
	struct trend_ctx *c = ud;
	if (at < c->start[0])
		return 1; /* newest first: the rest is older still */
	for (int w = PAGE_WEEKS - 1; w >= 0; w--) {
		if (at >= c->start[w]) {
			c->trend[w]++;
			break;
		}
	}
	return 0;
}

struct finish_ctx {
	const struct roadmap *rm;
	const char *tz;
	struct page_data *d;
};

static int on_finish(const struct store_row *row, void *ud)
{
	struct finish_ctx *c = ud;
	long t = roadmap_find_id(c->rm, row->topic_id);
	const struct rm_topic *topic = t >= 0 ? roadmap_topic(c->rm, (size_t)t) : NULL;
	struct page_finish *f = &c->d->fin[c->d->nfin++];
	f->member = xstrdup(row->member_name);
	f->topic = xstrdup(topic ? topic->name : row->topic_id);
	f->section = xstrdup(topic ? topic->path : "");
	f->note = xstrdup(row->note ? row->note : "");
	tz_format(c->tz, row->updated_at, "%Y-%m-%d", f->date, sizeof(f->date));
	return 0;
}

/* The index of member id in d->m, added (with name) when new. */
static size_t member_slot(struct page_data *d, size_t *cap, const char *id, const char *name)
{
	for (size_t i = 0; i < d->nm; i++)
		if (strcmp(d->m[i].id, id) == 0)
			return i;
	grow_array((void **)&d->m, cap, d->nm + 1, sizeof(*d->m));
	struct page_member *m = &d->m[d->nm];
	memset(m, 0, sizeof(*m));
	m->id = xstrdup(id);
	m->name = xstrdup(name);
	return d->nm++;
}

int page_collect(struct bot *b, const char *group_id, struct page_data *d)
{
	memset(d, 0, sizeof(*d));
	struct group_prefs prefs;
	int rc = bot_use_group(b, group_id); /* the page shows the group's own roadmap */
	if (!rc)
		rc = bot_group_prefs(b, group_id, &prefs);
	if (rc)
		return rc;
	const struct roadmap *rm = b->rm;
	const char *tz = prefs.timezone;
	int64_t now = bot_now(b);
	d->group_id = xstrdup(group_id);
	d->timezone = xstrdup(tz);
	d->roadmap = xstrdup(roadmap_source(rm));
	tz_format(tz, now, "%Y-%m-%d", d->today, sizeof(d->today));
	d->topics = (int)roadmap_topic_count(rm);

	/* The top-level sections, and which topics each holds. */
	size_t nnodes = roadmap_node_count(rm), ntopics = roadmap_topic_count(rm);
	size_t cap = 0;
	bool **in = NULL;
	int *size = NULL;
	for (size_t i = 0; i < nnodes; i++) {
		const struct rm_node *n = roadmap_node(rm, i);
		if (n->depth != 0 || n->topic >= 0)
			continue;
		grow_array((void **)&d->sections, &cap, d->nsections + 1, sizeof(*d->sections));
		d->sections[d->nsections] = xstrdup(n->name);
		in = xrealloc(in, (d->nsections + 1) * sizeof(*in));
		size = xrealloc(size, (d->nsections + 1) * sizeof(*size));
		in[d->nsections] = xcalloc(ntopics ? ntopics : 1, sizeof(bool));
		size[d->nsections] = (int)roadmap_subtree_topics(rm, i, in[d->nsections]);
		d->nsections++;
	}

	int members = 0, finished = 0;
	rc = store_group_totals(b->store, group_id, &members, &finished);
	if (rc)
		goto out;
	d->members = members;
	d->percent = members && d->topics ? text_percent(finished, members * d->topics) : 0;

	/* Days: the last PAGE_DAYS local days, today last. */
	struct activity_ctx ac = {tz, tz_day_number(tz, now) - (PAGE_DAYS - 1), {0}, d->done};
	int64_t since = 0;
	for (int i = 0; i < PAGE_DAYS; i++) {
		int64_t t = tz_day_start(tz, now, i - (PAGE_DAYS - 1));
		tz_format(tz, t, "%Y-%m-%d", d->day[i], sizeof(d->day[i]));
		if (i == 0) {
			struct tz_local l;
			tz_local_time(tz, t, &l);
			d->weekday0 = (l.weekday + 6) % 7;
			since = t;
		}
	}
	int running = 0;
	rc = store_group_activity(b->store, group_id, since, &running, on_bucket, &ac);
	if (rc)
		goto out;
	for (int i = 0; i < PAGE_DAYS; i++) {
		running += ac.net[i];
		d->total[i] = running;
	}

	/* The boards: all time (its top rows are the heat map's), this week, this month. */
	size_t mcap = 0;
	static const enum lb_period lbp[3] = {LB_ALL, LB_WEEK, LB_MONTH};
	for (int p = 0; p < 3; p++) {
		struct leaderboard lb;
		int limit = p == PAGE_ALL ? (PAGE_HEAT > PAGE_BOARD ? PAGE_HEAT : PAGE_BOARD)
					  : PAGE_BOARD;
		rc = leaderboard_build(b, group_id, lbp[p], limit, NULL, NULL, &lb);
		if (rc)
			goto out;
		d->board[p] = xcalloc(lb.n ? lb.n : 1, sizeof(size_t));
		d->heat = p == PAGE_ALL ? xcalloc(lb.n ? lb.n : 1, sizeof(size_t)) : d->heat;
		for (size_t i = 0; i < lb.n; i++) {
			const struct lb_row *row = &lb.rows[i];
			size_t k = member_slot(d, &mcap, row->member_id, row->member_name);
			d->m[k].points[p] = row->points;
			d->m[k].rank[p] = row->rank;
			d->m[k].streak = row->streak;
			if (p == PAGE_ALL && i < PAGE_HEAT)
				d->heat[d->nheat++] = k;
			if (i < PAGE_BOARD)
				d->board[p][d->nboard[p]++] = k;
		}
		leaderboard_release(&lb);
	}

	/* Each member's trend; the heat map's rows' coverage. */
	struct trend_ctx tc;
	tc.start[PAGE_WEEKS - 1] = tz_week_start(tz, now);
	for (int w = PAGE_WEEKS - 2; w >= 0; w--)
		tc.start[w] = tz_week_start(tz, tz_day_start(tz, tc.start[w + 1], -1));
	enum store_status *st = xcalloc(ntopics ? ntopics : 1, sizeof(*st));
	for (size_t i = 0; i < d->nm && !rc; i++) {
		tc.trend = d->m[i].trend;
		rc = store_done_times(b->store, group_id, d->m[i].id, on_done_time, &tc);
	}
	for (size_t h = 0; h < d->nheat && !rc; h++) {
		struct page_member *m = &d->m[d->heat[h]];
		rc = bot_member_statuses(b, group_id, m->id, st);
		m->coverage = xcalloc(d->nsections ? d->nsections : 1, sizeof(int));
		for (size_t s = 0; s < d->nsections && !rc; s++) {
			int got = 0;
			for (size_t t = 0; t < ntopics; t++)
				got += in[s][t] && (st[t] == STATUS_DONE || st[t] == STATUS_SKIPPED);
			m->coverage[s] = text_percent(got, size[s]);
		}
	}
	free(st);
	if (rc)
		goto out;

	d->fin = xcalloc(PAGE_FINISHES, sizeof(*d->fin));
	struct finish_ctx fc = {rm, tz, d};
	rc = store_recent_done(b->store, group_id, PAGE_FINISHES, on_finish, &fc);
out:
	for (size_t s = 0; s < d->nsections; s++)
		free(in[s]);
	free(in);
	free(size);
	group_prefs_release(&prefs);
	if (rc)
		page_data_release(d);
	return rc;
}

/* ---- HTML ------------------------------------------------------------------------------ */

/*
 * Appends s as HTML text (also safe inside a quoted attribute): markup
 * characters as entities; control characters, bytes that are not UTF-8 and
 * bidirectional overrides as U+FFFD, so a name cannot reorder the page.
 */
static void html_text(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		bool unsafe = false;
		size_t len = text_unsafe(s, n, &unsafe);
		if (len == 0)
			len = 1;
		if (unsafe)
			sb_adds(sb, "\xef\xbf\xbd");
		else if (*s == '&')
			sb_adds(sb, "&amp;");
		else if (*s == '<')
			sb_adds(sb, "&lt;");
		else if (*s == '>')
			sb_adds(sb, "&gt;");
		else if (*s == '"')
			sb_adds(sb, "&quot;");
		else if (*s == '\'')
			sb_adds(sb, "&#39;");
		else
			sb_add(sb, s, len);
		s += len;
		n -= len;
	}
}

/* html_text() of at most max characters, with an ellipsis when cut. */
static void html_clipped(struct strbuf *sb, const char *s, size_t max)
{
	size_t i = 0, chars = 0;
	while (s[i] && chars < max) {
		i++;
		while ((s[i] & 0xC0) == 0x80)
			i++;
		chars++;
	}
	if (!s[i]) {
		html_text(sb, s);
		return;
	}
	char *head = xstrndup(s, i);
	html_text(sb, head);
	free(head);
	sb_adds(sb, "\xe2\x80\xa6");
}

static const char css[] =
	":root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;"
	"--card:#f6f8fa;--acc:#0969da;--acc2:#1a7f37;--c0:#e3e8ee}"
	"@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;"
	"--line:#3d444d;--card:#151b23;--acc:#4493f8;--acc2:#3fb950;--c0:#212830}}"
	"*{box-sizing:border-box}"
	"body{margin:0;background:var(--bg);color:var(--fg);"
	"font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",sans-serif}"
	"main{max-width:1240px;margin:0 auto;padding:1rem}"
	"header h1{font-size:1.6rem;margin:.25rem 0}"
	".sub{color:var(--mute);margin:0 0 1rem}"
	".stats{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;margin:0 0 1rem;padding:0;"
	"list-style:none}"
	".stats b{display:block;font-size:1.4rem}"
	".grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(min(100%,34rem),1fr))}"
	"section{background:var(--card);border:1px solid var(--line);border-radius:10px;"
	"padding:1rem;min-width:0}"
	"section.wide{grid-column:1/-1}"
	"h2{font-size:1.15rem;margin:0 0 .6rem}"
	"h3{font-size:1rem;margin:.6rem 0 .3rem}"
	"figure{margin:0}"
	"figcaption{color:var(--mute);font-size:.9rem;margin-top:.4rem}"
	"svg{display:block;max-width:100%;height:auto}"
	"svg.fill{width:100%}"
	"svg text{fill:var(--mute);font:11px system-ui,sans-serif}"
	".scroll{overflow-x:auto}"
	".scroll svg{max-width:none}"
	".scroll svg.fill{min-width:36rem}"
	/* A narrow screen scrolls the chart, starting at its newest end. */
	".scroll.newest{direction:rtl}.scroll.newest svg{direction:ltr}"
	".bar{fill:var(--acc)}"
	".line{fill:none;stroke:var(--acc2);stroke-width:2}"
	".axis{stroke:var(--line)}"
	".spark{width:6rem;height:1.5rem;display:inline-block;vertical-align:middle}"
	".spark polyline{fill:none;stroke:var(--acc);stroke-width:2}"
	".c0{fill:var(--c0)}.c1{fill:var(--acc);fill-opacity:.3}.c2{fill:var(--acc);fill-opacity:.5}"
	".c3{fill:var(--acc);fill-opacity:.75}.c4{fill:var(--acc)}"
	".boards{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(min(100%,24rem),1fr))}"
	"table.board{border-collapse:collapse;width:100%;font-size:.95rem}"
	".board th,.board td{text-align:left;padding:.2rem .35rem;border-bottom:1px solid var(--line)}"
	".board .n{text-align:right;font-variant-numeric:tabular-nums}"
	".board td.name{overflow-wrap:anywhere}"
	"ol.fin{list-style:none;margin:0;padding:0}"
	".fin li{padding:.4rem 0;border-bottom:1px solid var(--line);overflow-wrap:anywhere}"
	".fin time,.fin .sec{color:var(--mute);font-size:.9rem}"
	".fin q{display:block;color:var(--mute);font-style:italic}"
	".empty{color:var(--mute)}"
	".sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;"
	"clip:rect(0,0,0,0);white-space:nowrap;border:0}"
	"footer{color:var(--mute);font-size:.85rem;margin:1.5rem 0 .5rem}";

/* The shade class of count against the most in one cell (0: none, 1..4: a quarter each). */
static int shade(int count, int max)
{
	if (count <= 0 || max <= 0)
		return 0;
	int q = (count * 4 + max - 1) / max;
	return q < 1 ? 1 : q > 4 ? 4 : q;
}

/* n for an axis label: "950", "12.3k", "419k". */
static void compact(int n, char *out, size_t size)
{
	if (n < 10000)
		snprintf(out, size, "%d", n);
	else if (n < 100000)
		snprintf(out, size, "%.1fk", n / 1000.0);
	else
		snprintf(out, size, "%dk", n / 1000);
}

static void progress_chart(const struct page_data *d, struct strbuf *sb)
{
	const int W = 720, H = 220, L = 34, R = 40, T = 10, B = 24;
	int maxd = 1, maxt = 1, sum = 0;
	for (int i = 0; i < PAGE_DAYS; i++) {
		maxd = d->done[i] > maxd ? d->done[i] : maxd;
		maxt = d->total[i] > maxt ? d->total[i] : maxt;
		sum += d->done[i];
	}
	double cw = (double)(W - L - R) / PAGE_DAYS, ph = H - T - B;
	sb_adds(sb, "<section class=\"wide\" aria-labelledby=\"h-progress\">"
		    "<h2 id=\"h-progress\">Progress over time</h2><figure id=\"progress\">");
	sb_addf(sb,
		"<div class=\"scroll newest\"><svg class=\"fill\" viewBox=\"0 0 %d %d\" role=\"img\" "
		"aria-labelledby=\"progress-cap\" focusable=\"false\">",
		W, H);
	sb_addf(sb, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", L, H - B,
		W - R, H - B);
	sb_addf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>", L - 4, T + 8, maxd);
	sb_addf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>", L - 4, H - B);
	char top[16];
	compact(maxt, top, sizeof(top));
	sb_addf(sb, "<text x=\"%d\" y=\"%d\">%s</text>", W - R + 4, T + 8, top);
	for (int i = 0; i < PAGE_DAYS; i++) {
		if (!d->done[i])
			continue;
		double h = ph * d->done[i] / maxd;
		sb_addf(sb,
			"<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
			"<title>%s: %d</title></rect>",
			L + i * cw + 0.5, H - B - h, cw > 2 ? cw - 1 : cw, h, d->day[i], d->done[i]);
	}
	sb_adds(sb, "<polyline class=\"line\" points=\"");
	for (int i = 0; i < PAGE_DAYS; i++)
		sb_addf(sb, "%s%.1f,%.1f", i ? " " : "", L + (i + 0.5) * cw,
			H - B - ph * d->total[i] / maxt);
	sb_adds(sb, "\"/>");
	for (int i = 0; i < PAGE_DAYS; i += 28)
		sb_addf(sb, "<text x=\"%.1f\" y=\"%d\">%s</text>", L + i * cw, H - 6, d->day[i]);
	sb_adds(sb, "</svg></div>");
	sb_addf(sb,
		"<figcaption id=\"progress-cap\">Bars: topics finished per day; line: topics done "
		"in the group (right axis), over the last %d days: %d finished, %d done now."
		"</figcaption>",
		PAGE_DAYS, sum, d->total[PAGE_DAYS - 1]);
	sb_adds(sb, "<table class=\"sr-only\"><caption>Topics finished per day</caption>"
		    "<thead><tr><th scope=\"col\">Day</th><th scope=\"col\">Finished</th>"
		    "<th scope=\"col\">Done in the group</th></tr></thead><tbody>");
	for (int i = 0; i < PAGE_DAYS; i++)
		if (d->done[i] || i == PAGE_DAYS - 1)
			sb_addf(sb, "<tr><th scope=\"row\">%s</th><td>%d</td><td>%d</td></tr>",
				d->day[i], d->done[i], d->total[i]);
	sb_adds(sb, "</tbody></table></figure></section>");
}

/* The group's streak: consecutive days ending today or yesterday with a finish. */
static void group_streaks(const struct page_data *d, int *current, int *longest)
{
	int run = 0;
	*longest = 0;
	for (int i = 0; i < PAGE_DAYS; i++) {
		run = d->done[i] ? run + 1 : 0;
		*longest = run > *longest ? run : *longest;
	}
	int i = PAGE_DAYS - 1;
	if (!d->done[i])
		i--;
	*current = 0;
	for (; i >= 0 && d->done[i]; i--)
		(*current)++;
}

static void calendar_chart(const struct page_data *d, struct strbuf *sb)
{
	static const char *const wd[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
	const int C = 18, L = 30, T = 16;
	int weeks = (d->weekday0 + PAGE_DAYS + 6) / 7, max = 0, active = 0, cur, longest;
	for (int i = 0; i < PAGE_DAYS; i++) {
		max = d->done[i] > max ? d->done[i] : max;
		active += d->done[i] > 0;
	}
	group_streaks(d, &cur, &longest);
	sb_adds(sb, "<section aria-labelledby=\"h-calendar\"><h2 id=\"h-calendar\">Streak "
		    "calendar</h2><figure id=\"calendar\">");
	int w = L + weeks * C + 2, h = T + 7 * C + 2;
	sb_addf(sb,
		"<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
		"aria-labelledby=\"calendar-cap\" focusable=\"false\">",
		w, h, w, h);
	for (int r = 0; r < 7; r += 2)
		sb_addf(sb, "<text x=\"0\" y=\"%d\">%s</text>", T + r * C + 10, wd[r]);
	for (int i = 0; i < PAGE_DAYS; i++) {
		int cell = d->weekday0 + i, col = cell / 7, row = cell % 7;
		if (row == 0 && (col % 4 == 0))
			sb_addf(sb, "<text x=\"%d\" y=\"10\">%.5s</text>", L + col * C,
				d->day[i] + 5);
		sb_addf(sb,
			"<rect class=\"c%d\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"2\">"
			"<title>%s: %d</title></rect>",
			shade(d->done[i], max), L + col * C, T + row * C, C - 2, C - 2, d->day[i],
			d->done[i]);
	}
	sb_adds(sb, "</svg>");
	sb_addf(sb,
		"<figcaption id=\"calendar-cap\">Days on which someone in the group finished a "
		"topic, the last %d days (darker: more): %d active days; the group's streak is "
		"%d %s (longest %d).</figcaption>",
		PAGE_DAYS, active, cur, text_plural(cur, "day", "days"), longest);
	sb_adds(sb, "<table class=\"sr-only\"><caption>Active days</caption><thead><tr>"
		    "<th scope=\"col\">Day</th><th scope=\"col\">Topics finished</th></tr></thead>"
		    "<tbody>");
	for (int i = 0; i < PAGE_DAYS; i++)
		if (d->done[i])
			sb_addf(sb, "<tr><th scope=\"row\">%s</th><td>%d</td></tr>", d->day[i],
				d->done[i]);
	sb_adds(sb, "</tbody></table></figure></section>");
}

static void heat_chart(const struct page_data *d, struct strbuf *sb)
{
	const int C = 20, L = 140, T = 120;
	sb_adds(sb, "<section class=\"wide\" aria-labelledby=\"h-coverage\"><h2 "
		    "id=\"h-coverage\">Members \xc3\x97 sections</h2><figure id=\"coverage\">");
	if (!d->nheat || !d->nsections) {
		sb_adds(sb, "<p class=\"empty\">Nobody has finished a topic yet.</p>");
		sb_adds(sb, "<figcaption id=\"coverage-cap\">No coverage to show yet."
			    "</figcaption></figure></section>");
		return;
	}
	/* Room on the right for the last section's slanted name. */
	int w = L + (int)d->nsections * C + 90, h = T + (int)d->nheat * C + 4;
	sb_addf(sb,
		"<div class=\"scroll\"><svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"role=\"img\" aria-labelledby=\"coverage-cap\" focusable=\"false\">",
		w, h, w, h);
	for (size_t s = 0; s < d->nsections; s++) {
		sb_addf(sb, "<text transform=\"translate(%d %d) rotate(-60)\">",
			L + (int)s * C + C / 2, T - 4);
		html_clipped(sb, d->sections[s], 20);
		sb_adds(sb, "</text>");
	}
	for (size_t r = 0; r < d->nheat; r++) {
		const struct page_member *m = &d->m[d->heat[r]];
		sb_addf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", L - 4,
			T + (int)r * C + 11);
		html_clipped(sb, m->name, 18);
		sb_adds(sb, "</text>");
		for (size_t s = 0; s < d->nsections; s++)
			sb_addf(sb,
				"<rect class=\"c%d\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>",
				shade(m->coverage[s], 100), L + (int)s * C, T + (int)r * C, C - 2,
				C - 2);
	}
	sb_adds(sb, "</svg></div>");
	sb_addf(sb,
		"<figcaption id=\"coverage-cap\">How much of each top-level section each member "
		"has finished (done or skipped; darker: more), for the %zu %s at the top of the "
		"all-time board%s.</figcaption>",
		d->nheat, text_plural((long)d->nheat, "member", "members"),
		d->members > (int)d->nheat ? "" : " (everyone)");
	sb_adds(sb, "<table class=\"sr-only\"><caption>Percent of each section finished, by "
		    "member</caption><thead><tr><th scope=\"col\">Member</th>");
	for (size_t s = 0; s < d->nsections; s++) {
		sb_adds(sb, "<th scope=\"col\">");
		html_text(sb, d->sections[s]);
		sb_adds(sb, "</th>");
	}
	sb_adds(sb, "</tr></thead><tbody>");
	for (size_t r = 0; r < d->nheat; r++) {
		const struct page_member *m = &d->m[d->heat[r]];
		sb_adds(sb, "<tr><th scope=\"row\">");
		html_text(sb, m->name);
		sb_adds(sb, "</th>");
		for (size_t s = 0; s < d->nsections; s++)
			sb_addf(sb, "<td>%d%%</td>", m->coverage[s]);
		sb_adds(sb, "</tr>");
	}
	sb_adds(sb, "</tbody></table></figure></section>");
}

static void sparkline(const struct page_member *m, struct strbuf *sb)
{
	int max = 1;
	for (int w = 0; w < PAGE_WEEKS; w++)
		max = m->trend[w] > max ? m->trend[w] : max;
	sb_adds(sb, "<svg class=\"spark\" viewBox=\"0 0 96 24\" aria-hidden=\"true\" "
		    "focusable=\"false\"><polyline points=\"");
	for (int w = 0; w < PAGE_WEEKS; w++)
		sb_addf(sb, "%s%d,%d", w ? " " : "", 2 + w * 92 / (PAGE_WEEKS - 1),
			22 - 20 * m->trend[w] / max);
	sb_adds(sb, "\"/></svg><span class=\"sr-only\">");
	for (int w = 0; w < PAGE_WEEKS; w++)
		sb_addf(sb, "%s%d", w ? ", " : "", m->trend[w]);
	sb_adds(sb, "</span>");
}

static void boards(const struct page_data *d, struct strbuf *sb)
{
	static const char *const title[3] = {"All time", "This week", "This month"};
	static const char *const id[3] = {"all", "week", "month"};
	static const int order[3] = {PAGE_WEEK, PAGE_MONTH, PAGE_ALL};
	sb_adds(sb, "<section class=\"wide\" aria-labelledby=\"h-board\"><h2 id=\"h-board\">"
		    "Leaderboard</h2><div class=\"boards\">");
	for (int k = 0; k < 3; k++) {
		int p = order[k];
		sb_addf(sb, "<div id=\"board-%s\"><h3>%s</h3>", id[p], title[p]);
		if (!d->nboard[p]) {
			sb_adds(sb, "<p class=\"empty\">No points yet.</p></div>");
			continue;
		}
		sb_addf(sb,
			"<table class=\"board\"><caption class=\"sr-only\">%s: rank, member, points, "
			"streak, and finishes per week over the last %d weeks</caption><thead><tr>"
			"<th class=\"n\" scope=\"col\">#</th><th scope=\"col\">Member</th>"
			"<th class=\"n\" scope=\"col\">Points</th><th class=\"n\" scope=\"col\">"
			"Streak</th><th scope=\"col\">Trend</th></tr></thead><tbody>",
			title[p], PAGE_WEEKS);
		for (size_t i = 0; i < d->nboard[p]; i++) {
			const struct page_member *m = &d->m[d->board[p][i]];
			sb_addf(sb, "<tr><td class=\"n\">%d</td><td class=\"name\">", m->rank[p]);
			html_clipped(sb, m->name, 20);
			sb_addf(sb, "</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td>",
				m->points[p], m->streak);
			sparkline(m, sb);
			sb_adds(sb, "</td></tr>");
		}
		sb_adds(sb, "</tbody></table></div>");
	}
	sb_adds(sb, "</div></section>");
}

static void finishes(const struct page_data *d, struct strbuf *sb)
{
	sb_adds(sb, "<section aria-labelledby=\"h-fin\"><h2 id=\"h-fin\">Recent finishes</h2>");
	if (!d->nfin) {
		sb_adds(sb, "<p class=\"empty\">Nobody has finished a topic yet: /done TOPIC "
			    "records one.</p></section>");
		return;
	}
	sb_adds(sb, "<ol class=\"fin\">");
	for (size_t i = 0; i < d->nfin; i++) {
		const struct page_finish *f = &d->fin[i];
		sb_addf(sb, "<li><time datetime=\"%s\">%s</time> <b>", f->date, f->date);
		html_text(sb, f->member);
		sb_adds(sb, "</b> finished <b>");
		html_text(sb, f->topic);
		sb_adds(sb, "</b>");
		if (f->section[0]) {
			sb_adds(sb, " <span class=\"sec\">(");
			html_text(sb, f->section);
			sb_adds(sb, ")</span>");
		}
		if (f->note[0]) {
			sb_adds(sb, "<q>");
			html_text(sb, f->note);
			sb_adds(sb, "</q>");
		}
		sb_adds(sb, "</li>");
	}
	sb_adds(sb, "</ol></section>");
}

void page_render_html(const struct page_data *d, struct strbuf *sb)
{
	sb_adds(sb, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		    "<meta name=\"color-scheme\" content=\"light dark\">"
		    "<meta name=\"robots\" content=\"noindex, nofollow\">"
		    "<meta name=\"referrer\" content=\"no-referrer\">"
		    "<title>The group's progress \xc2\xb7 cohort</title><style>");
	sb_adds(sb, css);
	sb_adds(sb, "</style></head><body><main><header><h1>The group's progress</h1>"
		    "<p class=\"sub\">");
	html_text(sb, d->group_id);
	sb_adds(sb, " \xc2\xb7 ");
	html_text(sb, d->roadmap);
	sb_addf(sb, " \xc2\xb7 as of %s (", d->today);
	html_text(sb, d->timezone);
	sb_adds(sb, ")</p><ul class=\"stats\">");
	int cur, longest;
	group_streaks(d, &cur, &longest);
	sb_addf(sb,
		"<li><b>%d</b>%s</li><li><b>%d</b>topics on the roadmap</li>"
		"<li><b>%d%%</b>group progress</li><li><b>%d</b>topics done</li>"
		"<li><b>%d</b>%s in a row with a finish</li>",
		d->members, text_plural(d->members, "member", "members"), d->topics, d->percent,
		d->total[PAGE_DAYS - 1], cur, cur == 1 ? "day" : "days");
	sb_adds(sb, "</ul></header><div class=\"grid\">");
	progress_chart(d, sb);
	boards(d, sb);
	heat_chart(d, sb);
	calendar_chart(d, sb);
	finishes(d, sb);
	sb_adds(sb, "</div><footer>Made by cohort. This link is the group's own: an admin can "
		    "replace it with /dashboard reset or turn the page off with /dashboard off."
		    "</footer></main></body></html>\n");
}

/* ---- JSON ------------------------------------------------------------------------------ */

static cJSON *int_array(const int *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
	return a;
}

void page_render_json(const struct page_data *d, struct strbuf *sb)
{
	static const char *const pname[3] = {"all", "week", "month"};
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", d->group_id);
	cJSON_AddStringToObject(o, "roadmap", d->roadmap);
	cJSON_AddStringToObject(o, "timezone", d->timezone);
	cJSON_AddStringToObject(o, "today", d->today);
	cJSON_AddNumberToObject(o, "members", d->members);
	cJSON_AddNumberToObject(o, "topics", d->topics);
	cJSON_AddNumberToObject(o, "percent", d->percent);
	int cur, longest;
	group_streaks(d, &cur, &longest);
	cJSON *streak = cJSON_AddObjectToObject(o, "streak");
	cJSON_AddNumberToObject(streak, "current", cur);
	cJSON_AddNumberToObject(streak, "longest", longest);
	cJSON *days = cJSON_AddArrayToObject(o, "days");
	for (int i = 0; i < PAGE_DAYS; i++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "date", d->day[i]);
		cJSON_AddNumberToObject(x, "finished", d->done[i]);
		cJSON_AddNumberToObject(x, "done", d->total[i]);
		cJSON_AddItemToArray(days, x);
	}
	cJSON *lb = cJSON_AddObjectToObject(o, "leaderboard");
	for (int p = 0; p < 3; p++) {
		cJSON *a = cJSON_AddArrayToObject(lb, pname[p]);
		for (size_t i = 0; i < d->nboard[p]; i++) {
			const struct page_member *m = &d->m[d->board[p][i]];
			cJSON *x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "rank", m->rank[p]);
			cJSON_AddStringToObject(x, "member", m->name);
			cJSON_AddNumberToObject(x, "points", m->points[p]);
			cJSON_AddNumberToObject(x, "streak", m->streak);
			cJSON_AddItemToObject(x, "trend", int_array(m->trend, PAGE_WEEKS));
			cJSON_AddItemToArray(a, x);
		}
	}
	cJSON *cov = cJSON_AddObjectToObject(o, "coverage");
	cJSON *secs = cJSON_AddArrayToObject(cov, "sections");
	for (size_t s = 0; s < d->nsections; s++)
		cJSON_AddItemToArray(secs, cJSON_CreateString(d->sections[s]));
	cJSON *rows = cJSON_AddArrayToObject(cov, "members");
	for (size_t r = 0; r < d->nheat; r++) {
		const struct page_member *m = &d->m[d->heat[r]];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "member", m->name);
		cJSON_AddItemToObject(x, "percent", int_array(m->coverage, d->nsections));
		cJSON_AddItemToArray(rows, x);
	}
	cJSON *fin = cJSON_AddArrayToObject(o, "finishes");
	for (size_t i = 0; i < d->nfin; i++) {
		const struct page_finish *f = &d->fin[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "date", f->date);
		cJSON_AddStringToObject(x, "member", f->member);
		cJSON_AddStringToObject(x, "topic", f->topic);
		cJSON_AddStringToObject(x, "section", f->section);
		cJSON_AddStringToObject(x, "note", f->note);
		cJSON_AddItemToArray(fin, x);
	}
	char *text = cJSON_PrintUnformatted(o);
	sb_adds(sb, text);
	sb_addc(sb, '\n');
	free(text);
	cJSON_Delete(o);
}

/* ---- the bot's side -------------------------------------------------------------------- */

int bot_page(struct bot *b, const char *token, enum page_format fmt, struct strbuf *out)
{
	if (!page_token_shape(token))
		return COHORT_ERR_NOT_FOUND;
	char *group = NULL;
	int rc = store_dashboard_group(b->store, token, &group);
	if (rc)
		return rc;
	struct page_data d;
	rc = page_collect(b, group, &d);
	if (!rc) {
		if (fmt == PAGE_JSON)
			page_render_json(&d, out);
		else
			page_render_html(&d, out);
		page_data_release(&d);
	}
	free(group);
	return rc;
}

char *bot_page_link(struct bot *b, const char *group_id)
{
	if (!b->public_url)
		return NULL;
	struct store_dashboard dash;
	if (store_dashboard_get(b->store, group_id, &dash))
		return NULL;
	char *link = dash.enabled ? xasprintf("%s/g/%s", b->public_url, dash.token) : NULL;
	store_dashboard_release(&dash);
	return link;
}
