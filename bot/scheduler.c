#include "scheduler.h"

#include "bot_internal.h"
#include "digest.h"
#include "remind.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/text.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_MS 60000
/*
 * A group's digest is claimed for this long (the process clock's time) while
 * it is built and sent, renewed every third of it while the platform has not
 * answered; a process that died mid-send is replaced by another once the
 * claim lapses, and the idempotency key stops a second post.
 */
#define CLAIM_MS 60000

/* The lease of a group's digest of one local date. A new string. */
static char *claim_name(const char *group_id, const char *date)
{
	return xasprintf("digest:%s:%s", group_id, date);
}

/*
 * Claims (or renews) the digest of group_id for date for this process:
 * COHORT_OK, COHORT_ERR_DENIED (another process sends it; logged) or
 * COHORT_ERR_STORE.
 */
static int claim(struct bot *b, const char *group_id, const char *date)
{
	char *name = claim_name(group_id, date);
	struct store_lease l;
	int rc = store_lease_take(b->store, name, store_lease_holder(),
				  clock_real_wait_ms(CLAIM_MS), true, &l);
	if (rc == COHORT_ERR_DENIED)
		log_debug("digest", "the %s digest of %s is being sent by %s", date, group_id,
			 l.holder);
	free(name);
	return rc;
}

static void unclaim(struct bot *b, const char *group_id, const char *date)
{
	char *name = claim_name(group_id, date);
	store_lease_release(b->store, name, store_lease_holder());
	free(name);
}

static const char *const day_names[7] = {"sunday",   "monday", "tuesday", "wednesday",
					 "thursday", "friday", "saturday"};

/* The weekday (0 = Sunday) a full or 3-letter English day name means, or -1. */
static int weekday_named(const char *w)
{
	for (int d = 0; d < 7; d++)
		if (text_ieq(w, day_names[d]) ||
		    (strlen(w) == 3 && strncasecmp(w, day_names[d], 3) == 0))
			return d;
	return -1;
}

bool scheduler_every_parse(const char *text, struct digest_every *out, char *err, size_t n)
{
	char buf[64], *words[3] = {0}, *save = NULL, why[160] = "";
	int nw = 0;
	*out = (struct digest_every){EVERY_DAY, 0};
	snprintf(buf, sizeof(buf), "%s", text ? text : "");
	for (char *w = strtok_r(buf, " \t", &save); w && nw < 3; w = strtok_r(NULL, " \t", &save))
		words[nw++] = w;
	if (nw == 0)
		return true;
	if (text_ieq(words[0], "daily") || text_ieq(words[0], "weekdays")) {
		out->kind = text_ieq(words[0], "daily") ? EVERY_DAY : EVERY_WEEKDAY;
		if (nw > 1)
			snprintf(why, sizeof(why),
				 "\u201c%.20s\u201d takes no day: for one day a week write "
				 "\u201cweekly %.20s\u201d",
				 words[0], words[1]);
	} else if (text_ieq(words[0], "weekly")) {
		out->kind = EVERY_WEEK;
		if (nw == 1)
			snprintf(why, sizeof(why),
				 "\u201cweekly\u201d needs a day: write \u201cweekly monday\u201d "
				 "(any day, full or 3 letters)");
		else if ((out->weekday = weekday_named(words[1])) < 0)
			snprintf(why, sizeof(why),
				 "\u201c%.20s\u201d is not a day of the week: write monday to "
				 "sunday, or mon to sun",
				 words[1]);
		else if (nw > 2)
			snprintf(why, sizeof(why),
				 "one day only: \u201cweekly %s\u201d is once a week (Monday to "
				 "Friday is \u201cweekdays\u201d)",
				 day_names[out->weekday]);
	} else {
		snprintf(why, sizeof(why),
			 "\u201c%.20s\u201d is not how often a digest can be posted: choose "
			 "daily, weekdays or weekly DAY",
			 words[0]);
	}
	if (!*why)
		return true;
	if (err)
		snprintf(err, n, "%s", why);
	*out = (struct digest_every){EVERY_DAY, 0};
	return false;
}

void scheduler_every_format(const struct digest_every *e, char out[DIGEST_EVERY_LEN])
{
	if (e->kind == EVERY_WEEK)
		snprintf(out, DIGEST_EVERY_LEN, "weekly %s", day_names[e->weekday % 7]);
	else
		snprintf(out, DIGEST_EVERY_LEN, "%s", e->kind == EVERY_DAY ? "daily" : "weekdays");
}

const char *scheduler_every_describe(const struct digest_every *e, char *buf, size_t n)
{
	if (e->kind == EVERY_WEEK)
		snprintf(buf, n, "every %c%s", day_names[e->weekday % 7][0] - 'a' + 'A',
			 day_names[e->weekday % 7] + 1);
	else
		snprintf(buf, n, "%s", e->kind == EVERY_DAY ? "every day" : "Monday to Friday");
	return buf;
}

/* The weekday (0 = Sunday) of the local day containing t. */
static int local_weekday(const char *zone, int64_t t)
{
	long day = tz_day_number(zone, t); /* 1970-01-01, day 0, was a Thursday */
	return (int)(((day + 4) % 7 + 7) % 7);
}

bool scheduler_is_digest_day(const struct digest_every *e, const char *zone, int64_t t)
{
	int wd = local_weekday(zone, t);
	switch (e->kind) {
	case EVERY_WEEKDAY:
		return wd >= 1 && wd <= 5;
	case EVERY_WEEK:
		return wd == e->weekday;
	default:
		return true;
	}
}

int64_t scheduler_next_slot(const struct digest_every *e, const char *zone, int hh, int mm,
			    int64_t t)
{
	/* Today's slot may have passed: then the next digest day within a week. */
	for (int d = 0; d <= 7; d++) {
		int64_t day = d ? tz_day_start(zone, t, d) : t;
		int64_t slot = tz_at_time(zone, day, hh, mm);
		if (slot >= t && scheduler_is_digest_day(e, zone, day))
			return slot;
	}
	return tz_at_time(zone, tz_day_start(zone, t, 8), hh, mm); /* not reached */
}

void scheduler_idem_key(const char *group_id, const char *local_date, char key[20])
{
	/* FNV-1a over "group|date": stable across restarts and machines. */
	uint64_t h = 14695981039346656037ULL;
	for (const char *parts[] = {group_id, "|", local_date}, **p = parts; p < parts + 3; p++)
		for (const unsigned char *c = (const unsigned char *)*p; *c; c++)
			h = (h ^ *c) * 1099511628211ULL;
	snprintf(key, 20, "cd-%016llx", (unsigned long long)h);
}

static long inflight_find(const struct bot *b, const char *group_id, const char *date)
{
	for (size_t i = 0; i < b->ninflight; i++)
		if (strcmp(b->inflight[i].group_id, group_id) == 0 &&
		    strcmp(b->inflight[i].date, date) == 0)
			return (long)i;
	return -1;
}

void scheduler_sent(struct bot *b, const char *idem_key, int result)
{
	size_t i = 0;
	while (i < b->ninflight && strcmp(b->inflight[i].key, idem_key) != 0)
		i++;
	if (i == b->ninflight)
		return;
	struct digest_inflight f = b->inflight[i];
	b->inflight[i] = b->inflight[--b->ninflight];
	b->last_sent = result;
	metrics_count(METRIC_DIGESTS, result == COHORT_OK ? "result=\"sent\"" : "result=\"failed\"");
	if (result == COHORT_OK) {
		if (store_digest_mark_sent(b->store, f.group_id, f.date, bot_now(b)) == COHORT_OK)
			log_info("digest", "posted the %s digest of %s", f.date, f.group_id);
	} else {
		log_warn("digest",
			 "posting the digest of %s failed (%s); retrying at the next scheduler "
			 "check",
			 f.group_id, cohort_strerror(result));
	}
	unclaim(b, f.group_id, f.date);
	free(f.group_id);
}

/* The adapter-state key under which a group's last digest settings change is kept. */
static char *settings_key(const char *group_id)
{
	return xasprintf("digest.settings_changed_at:%s", group_id);
}

int scheduler_settings_changed(struct bot *b, const char *group_id)
{
	char *key = settings_key(group_id), value[24];
	snprintf(value, sizeof(value), "%lld", (long long)bot_now(b));
	int rc = store_state_set(b->store, key, value);
	free(key);
	b->schedule_changed = true;
	return rc;
}

/* When the group's digest settings last changed (0: never, or before this was recorded). */
static int settings_changed_at(struct bot *b, const char *group_id, int64_t *at)
{
	char *key = settings_key(group_id), *value = NULL;
	int rc = store_state_get(b->store, key, &value);
	*at = value ? strtoll(value, NULL, 10) : 0;
	free(value);
	free(key);
	return rc;
}

struct newcomers {
	int64_t since;
	char *last_copy; /* the member of the previous row (rows come member by member) */
	int n;
};

static int count_newcomer(const struct store_activity *a, void *ud)
{
	struct newcomers *c = ud;
	if (c->last_copy && strcmp(c->last_copy, a->member_id) == 0)
		return 0;
	free(c->last_copy);
	c->last_copy = xstrdup(a->member_id);
	c->n += a->member_since >= c->since;
	return 0;
}

/*
 * Whether anyone in the group had logged progress before t (at the bot's
 * clock, which is past t). Cheap for any group: the member count, and the
 * activity since t for members who first appeared after it.
 */
static int active_before(struct bot *b, const char *group_id, int64_t t, bool *active)
{
	int members = 0, finished = 0;
	*active = false;
	int rc = store_group_totals(b->store, group_id, &members, &finished);
	if (rc || members == 0)
		return rc;
	struct newcomers c = {t, NULL, 0};
	rc = store_activity(b->store, group_id, t, bot_now(b) + 1, count_newcomer, &c);
	free(c.last_copy);
	*active = c.n < members;
	return rc;
}

bool scheduler_changed(const struct bot *b)
{
	return b->schedule_changed;
}

size_t scheduler_inflight(const struct bot *b)
{
	return b->ninflight;
}

int scheduler_last_result(const struct bot *b)
{
	return b->last_sent;
}

struct group {
	char *id, *channel, *time, *tz, *every;
	/* A linked group's digest is its canonical group's (bot/link.h): that group, else NULL. */
	char *source;
};

struct groups {
	struct group *v;
	size_t n, cap;
};

static int collect_group(const struct store_digest_group *g, void *ud)
{
	struct groups *gs = ud;
	grow_array((void **)&gs->v, &gs->cap, gs->n + 1, sizeof(*gs->v));
	struct group *x = &gs->v[gs->n++];
	x->id = xstrdup(g->group_id);
	x->channel = xstrdup(g->channel);
	x->time = g->digest_time ? xstrdup(g->digest_time) : NULL;
	x->tz = g->timezone ? xstrdup(g->timezone) : NULL;
	x->every = g->digest_every ? xstrdup(g->digest_every) : NULL;
	x->source = NULL;
	return 0;
}

static void earliest(int64_t *next, int64_t t)
{
	if (t < *next)
		*next = t;
}

/*
 * run_group() once this process holds the group's claim: builds, records (a
 * first send) and posts the digest; rec is the record of an earlier attempt
 * (re-sent with its key) or NULL.
 */
static int send_claimed(struct bot *b, const struct digest_sink *sink, const struct group *g,
			bool now_anyway, const struct store_digest *rec, const char *date,
			int64_t now, int64_t slot, int64_t tomorrow, int64_t *next)
{
	bool resend = rec != NULL;
	char key[20];
	int rc;
	if (!resend && !now_anyway) {
		/* Not due today when the time was set after it passed, or nobody had
		 * logged anything by then (a later first /done does not post it late). */
		int64_t set_at;
		bool active = false;
		const char *src = g->source ? g->source : g->id;
		rc = settings_changed_at(b, g->id, &set_at);
		if (!rc && g->source) {
			int64_t src_set_at;
			rc = settings_changed_at(b, src, &src_set_at);
			if (src_set_at > set_at)
				set_at = src_set_at;
		}
		if (!rc && set_at <= slot)
			rc = active_before(b, src, slot, &active);
		if (rc)
			return rc;
		if (!active) {
			earliest(next, tomorrow);
			return COHORT_OK;
		}
	}
	if (resend) {
		snprintf(key, sizeof(key), "%s", rec->idem_key);
	} else {
		scheduler_idem_key(g->id, date, key);
	}
	struct digest d;
	/* The digest of the group it is (the canonical one), recorded and keyed per destination. */
	rc = digest_build(b, g->source ? g->source : g->id, now, &d);
	if (rc)
		return rc;
	if (!resend) {
		rc = store_digest_record(b->store, g->id, date, key, now, d.group_percent, d.ranks,
					 d.nranks);
		if (rc) {
			digest_release(&d);
			return rc == COHORT_ERR_DUPLICATE ? COHORT_OK : rc;
		}
	}
	int sent = sink->post(sink->ud, g->id, g->channel, &d.reply, key);
	digest_release(&d);
	if (sent == COHORT_ERR_PENDING) {
		grow_array((void **)&b->inflight, &b->capinflight, b->ninflight + 1,
			   sizeof(*b->inflight));
		struct digest_inflight *f = &b->inflight[b->ninflight++];
		snprintf(f->key, sizeof(f->key), "%s", key);
		snprintf(f->date, sizeof(f->date), "%s", date);
		f->group_id = xstrdup(g->id);
		log_debug("digest", "sending the %s digest of %s", date, g->id);
		earliest(next, now + CLAIM_MS / 3); /* to renew the claim */
		return COHORT_OK;
	}
	metrics_count(METRIC_DIGESTS, sent ? "result=\"failed\"" : "result=\"sent\"");
	if (sent) {
		log_warn("digest", "posting the digest of %s failed (%s); retrying in a minute",
			 g->id, cohort_strerror(sent));
		earliest(next, now + RETRY_MS);
		return now_anyway ? sent : COHORT_OK;
	}
	log_info("digest", "posted the %s digest of %s%s", date, g->id, resend ? " (again)" : "");
	earliest(next, tomorrow);
	return store_digest_mark_sent(b->store, g->id, date, bot_now(b));
}

/*
 * Sends (or re-sends) today's digest of one group if it is due, or at once
 * when `now_anyway`; updates *next. COHORT_ERR_DUPLICATE when it was sent.
 */
static int run_group(struct bot *b, const struct digest_sink *sink, const struct group *g,
		     bool now_anyway, int64_t *next)
{
	const char *tz = g->tz && tz_valid(g->tz) ? g->tz : b->timezone;
	int hh, mm;
	if (!parse_hhmm(g->time ? g->time : b->digest_time, &hh, &mm) &&
	    !parse_hhmm(b->digest_time, &hh, &mm))
		hh = 18, mm = 0;
	struct digest_every every;
	if (!scheduler_every_parse(g->every, &every, NULL, 0))
		log_warn("digest", "the stored frequency \"%.40s\" of %s is not one cohort reads; "
			 "posting daily", g->every, g->id);
	int64_t now = bot_now(b);
	int64_t slot = tz_at_time(tz, now, hh, mm);
	/* "tomorrow": the next digest day's slot (a week ahead for a weekly digest). */
	int64_t tomorrow = scheduler_next_slot(&every, tz, hh, mm, tz_day_start(tz, now, 1));
	if (!now_anyway && !scheduler_is_digest_day(&every, tz, now)) {
		/* Not a digest day: nothing today, not even a missed digest caught up. */
		earliest(next, tomorrow);
		return COHORT_OK;
	}
	if (now < slot && !now_anyway) {
		earliest(next, slot);
		return COHORT_OK;
	}
	char date[16];
	tz_format(tz, now, "%Y-%m-%d", date, sizeof(date));
	long fi = inflight_find(b, g->id, date);
	if (fi >= 0) {
		/* Handed to an adapter already: keep the claim while waiting for its answer. */
		int crc = claim(b, g->id, date);
		earliest(next, now + CLAIM_MS / 3);
		if (crc == COHORT_OK)
			return COHORT_OK;
		/* Lost (another process took it after it lapsed) or not renewable: stop
		 * waiting for the post without marking it sent; whoever claims it next
		 * re-sends with the same idempotency key, which stops a second post. */
		log_warn("digest",
			 "the claim on the %s digest of %s could not be renewed (%s); no longer "
			 "waiting for its post, the next scheduler check decides",
			 date, g->id, cohort_strerror(crc));
		free(b->inflight[fi].group_id);
		b->inflight[fi] = b->inflight[--b->ninflight];
		if (crc != COHORT_ERR_DENIED)
			unclaim(b, g->id, date);
		return COHORT_OK;
	}
	struct store_digest rec;
	int rc = store_digest_get(b->store, g->id, date, &rec);
	if (rc == COHORT_OK && rec.sent_at) {
		store_digest_release(&rec);
		earliest(next, tomorrow);
		return now_anyway ? COHORT_ERR_DUPLICATE : COHORT_OK;
	}
	if (rc && rc != COHORT_ERR_NOT_FOUND)
		return rc;
	if (rc == COHORT_OK)
		store_digest_release(&rec);
	/*
	 * Another process may be sending it (several processes on one database):
	 * only the one that holds the claim goes on. The record is read again
	 * under the claim, so a digest sent meanwhile is not sent twice.
	 */
	int crc = claim(b, g->id, date);
	if (crc == COHORT_ERR_DENIED) {
		earliest(next, now + CLAIM_MS / 6);
		return now_anyway ? COHORT_ERR_DENIED : COHORT_OK;
	}
	if (crc)
		return crc;
	rc = store_digest_get(b->store, g->id, date, &rec);
	if (rc == COHORT_OK && rec.sent_at) {
		store_digest_release(&rec);
		unclaim(b, g->id, date);
		earliest(next, tomorrow);
		return now_anyway ? COHORT_ERR_DUPLICATE : COHORT_OK;
	}
	if (rc && rc != COHORT_ERR_NOT_FOUND) {
		unclaim(b, g->id, date);
		return rc;
	}
	bool resend = rc == COHORT_OK;
	rc = send_claimed(b, sink, g, now_anyway, resend ? &rec : NULL, date, now, slot, tomorrow,
			  next);
	if (resend)
		store_digest_release(&rec);
	/* Kept while the platform has not answered (scheduler_sent() ends it); else done. */
	if (inflight_find(b, g->id, date) < 0)
		unclaim(b, g->id, date);
	return rc;
}

int scheduler_run(struct bot *b, const struct digest_sink *sink, int64_t *next)
{
	struct groups gs = {NULL, 0, 0};
	*next = INT64_MAX;
	b->schedule_changed = false;
	int rc = store_digest_groups(b->store, collect_group, &gs);
	for (size_t i = 0; i < gs.n; i++) {
		if (!sink->serves(sink->ud, gs.v[i].id))
			continue;
		/*
		 * A group linked into another posts that group's digest in its own
		 * channel, at that group's time and days: the same digest to both destinations,
		 * each with its own record and key (group, date), so each is sent once.
		 */
		char *canonical = NULL;
		if (store_group_canonical(b->store, gs.v[i].id, &canonical) == COHORT_OK &&
		    strcmp(canonical, gs.v[i].id) != 0) {
			struct store_settings cs;
			if (store_get_settings(b->store, canonical, &cs) == COHORT_OK) {
				free(gs.v[i].time);
				free(gs.v[i].tz);
				free(gs.v[i].every);
				gs.v[i].time = cs.digest_time;
				gs.v[i].tz = cs.timezone;
				gs.v[i].every = cs.digest_every;
				cs.digest_time = cs.timezone = cs.digest_every = NULL;
				store_settings_release(&cs);
				gs.v[i].source = canonical;
				canonical = NULL;
			}
		}
		free(canonical);
		/* One group's failure does not hold back the others' digests. */
		int grc = run_group(b, sink, &gs.v[i], false, next);
		if (grc) {
			log_warn("digest", "the digest of %s failed: %s; retrying in a minute",
				 gs.v[i].id, cohort_strerror(grc));
			earliest(next, bot_now(b) + RETRY_MS);
			rc = rc ? rc : grc;
		}
	}
	for (size_t i = 0; i < gs.n; i++) {
		free(gs.v[i].id);
		free(gs.v[i].channel);
		free(gs.v[i].time);
		free(gs.v[i].tz);
		free(gs.v[i].every);
		free(gs.v[i].source);
	}
	free(gs.v);
	int rrc = remind_run(b, sink, next); /* the reminders people asked for */
	return rc ? rc : rrc;
}

int scheduler_post_now(struct bot *b, const struct digest_sink *sink, const char *group_id,
		       const char *channel_id)
{
	struct store_settings s;
	int rc = store_get_settings(b->store, group_id, &s);
	if (rc)
		return rc;
	struct group g = {(char *)group_id, (char *)channel_id, s.digest_time, s.timezone,
			  s.digest_every, NULL};
	int64_t next = INT64_MAX;
	rc = run_group(b, sink, &g, true, &next);
	store_settings_release(&s);
	return rc;
}
