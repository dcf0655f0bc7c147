#include "remind.h"

#include "bot_internal.h"
#include "event.h"
#include "leaderboard.h"
#include "reply.h"
#include "roadmap.h"
#include "scheduler.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void remind_idem_key(const char *group_id, const char *member_id, const char *date, char key[20])
{
	/* FNV-1a over "group|member|date", as the digest's key (scheduler.c). */
	uint64_t h = 14695981039346656037ULL;
	const char *parts[] = {group_id, "|", member_id, "|", date};
	for (size_t i = 0; i < 5; i++)
		for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++)
			h = (h ^ *c) * 1099511628211ULL;
	snprintf(key, 20, "cr-%016llx", (unsigned long long)h);
}

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

static bool is_off(const char *s)
{
	return strcasecmp(s, "off") == 0 || strcasecmp(s, "stop") == 0 ||
	       strcasecmp(s, "clear") == 0 || strcasecmp(s, "none") == 0;
}

/* "H:MM" is taken as "0H:MM". */
static bool parse_time(const char *s, char out[6])
{
	int hh, mm;
	char buf[8];
	if (strlen(s) == 4 && s[1] == ':') {
		snprintf(buf, sizeof(buf), "0%s", s);
		s = buf;
	}
	if (!parse_hhmm(s, &hh, &mm))
		return false;
	snprintf(out, 6, "%02d:%02d", hh, mm);
	return true;
}

static void store_failed(struct reply *r)
{
	reply_title(r, REPLY_ERROR, "The store failed; nothing was changed");
	reply_line(r, "Try again in a moment.");
}

int remind_command(struct bot *b, const struct event *ev, struct reply *r)
{
	char *args = text_trim(xstrdup(ev->args ? ev->args : ""));
	struct group_prefs p;
	char *at = NULL, when[6];
	r->ephemeral = true;
	int rc = bot_group_prefs(b, ev->group_id, &p);
	if (rc) {
		store_failed(r);
		goto out;
	}
	if (!*args) {
		rc = store_remind_get(b->store, ev->group_id, ev->member_id, &at);
		if (rc) {
			store_failed(r);
		} else if (at) {
			reply_title(r, REPLY_INFO, "Your reminder: %s (%s)", at, p.timezone);
			reply_line(r, "On a day your streak would break tonight, you get a message "
				      "at %s. /remind off stops it.",
				   at);
		} else {
			reply_title(r, REPLY_INFO, "You have no reminder");
			reply_line(r, "/remind 20:00 sends you a message at 20:00 (%s) on days your "
				      "streak would break tonight.",
				   p.timezone);
		}
	} else if (is_off(args)) {
		rc = store_remind_clear(b->store, ev->group_id, ev->member_id);
		if (rc == COHORT_ERR_NOT_FOUND) {
			rc = COHORT_OK;
			reply_title(r, REPLY_INFO, "You had no reminder; nothing was changed");
		} else if (rc) {
			store_failed(r);
		} else {
			reply_title(r, REPLY_SUCCESS, "Reminder off");
			reply_line(r, "You will get no more reminders. /remind HH:MM turns it on again.");
		}
	} else if (!parse_time(args, when)) {
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a time of day", clip(args, 40),
			    args);
		reply_line(r, "Say /remind HH:MM on the 24-hour clock (/remind 20:00), or /remind "
			      "off. Nothing was changed.");
	} else {
		rc = store_remind_set(b->store, ev->group_id, ev->member_id, when, bot_now(b));
		if (rc) {
			store_failed(r);
		} else {
			reply_title(r, REPLY_SUCCESS, "Reminder set: %s (%s)", when, p.timezone);
			reply_line(r, "On a day your streak would break tonight (nothing done yet "
				      "today), you get a message at %s; at most one a day. /remind off "
				      "stops it.",
				   when);
		}
	}
out:
	group_prefs_release(&p);
	free(at);
	free(args);
	return rc;
}

struct reminder {
	char *group_id, *member_id, *at;
	int64_t set_at;
};

struct reminders {
	struct reminder *v;
	size_t n, cap;
};

static int collect(const struct store_reminder *x, void *ud)
{
	struct reminders *rs = ud;
	grow_array((void **)&rs->v, &rs->cap, rs->n + 1, sizeof(*rs->v));
	rs->v[rs->n++] = (struct reminder){xstrdup(x->group_id), xstrdup(x->member_id),
					   xstrdup(x->at), x->set_at};
	return 0;
}

static int latest_done(int64_t at, void *ud)
{
	*(int64_t *)ud = at;
	return 1; /* newest first: the first is the latest */
}

/*
 * Whether the member's streak would break tonight: *streak days ending
 * yesterday, nothing done today.
 */
static int at_risk(struct bot *b, const char *group_id, const char *member_id, const char *tz,
		   int64_t now, int *streak, bool *risk)
{
	int64_t last = 0;
	struct streaks s;
	*risk = false;
	int rc = store_done_times(b->store, group_id, member_id, latest_done, &last);
	if (rc == 1)
		rc = COHORT_OK;
	if (rc || !last)
		return rc;
	if (tz_day_number(tz, last) != tz_day_number(tz, now) - 1)
		return COHORT_OK;
	rc = leaderboard_streaks(b, group_id, member_id, tz, now, &s);
	*streak = s.current;
	*risk = !rc && s.current >= 1;
	return rc;
}

/* The reminder's text: the streak and the member's next topic. */
static int build(struct bot *b, const struct reminder *m, const char *tz, int streak,
		 struct reply *r)
{
	char *id = NULL, *name = NULL;
	if (store_find_member(b->store, m->group_id, m->member_id, &id, &name))
		name = NULL;
	size_t n = roadmap_topic_count(b->rm);
	enum store_status *st = xcalloc(n, sizeof(*st));
	int rc = bot_member_statuses(b, m->group_id, m->member_id, st);
	if (!rc) {
		size_t i = 0;
		while (i < n && (st[i] == STATUS_DONE || st[i] == STATUS_SKIPPED))
			i++;
		reply_title(r, REPLY_INFO, "\u23f0 %s%syour %d-day streak ends tonight",
			    name ? name : "", name ? ", " : "Reminder: ", streak);
		reply_line(r, "Nothing done yet today (%s): finish one topic before midnight to "
			      "keep it.",
			   tz);
		if (i < n) {
			struct strbuf sb = STRBUF_INIT;
			bot_topic_label(b, i, &sb);
			reply_line(r, "Next for you: %s \u2014 /done %s when you finish.", sb_str(&sb),
				   roadmap_topic(b->rm, i)->name);
			sb_release(&sb);
		}
		reply_line(r, "(You asked for this with /remind %s; /remind off stops it.)", m->at);
	}
	free(st);
	free(id);
	free(name);
	return rc;
}

static void earliest(int64_t *next, int64_t t)
{
	if (t < *next)
		*next = t;
}

/* One member's reminder, if due now. */
static bool same_platform(const char *a, const char *b)
{
	size_t n = strcspn(a, ":");
	return strncmp(a, b, n + 1) == 0;
}

/*
 * Where a reminder goes: a group and an identity of one platform. Linked
 * identities and groups (bot/link.h) record a member under the identity and
 * group whose code was used, which may be the other platform's: then the
 * member's other identity, or the group's other group, is the one to send to.
 * *group and *member are new strings.
 */
static void delivery(struct bot *b, const char *group_id, const char *member_id, char **group,
		     char **member)
{
	char *alias = NULL, *canonical = NULL;
	*group = xstrdup(group_id);
	*member = xstrdup(member_id);
	if (same_platform(group_id, member_id))
		return;
	if (store_member_link_get(b->store, member_id, &alias, &canonical, NULL) == COHORT_OK) {
		const char *other = strcmp(alias, member_id) == 0 ? canonical : alias;
		if (same_platform(group_id, other)) {
			free(*member);
			*member = xstrdup(other);
		}
	}
	free(alias);
	free(canonical);
	alias = canonical = NULL;
	if (!same_platform(*group, *member) &&
	    store_group_link_get(b->store, group_id, &alias, &canonical) == COHORT_OK) {
		const char *other = strcmp(alias, group_id) == 0 ? canonical : alias;
		if (same_platform(other, *member)) {
			free(*group);
			*group = xstrdup(other);
		}
	}
	free(alias);
	free(canonical);
}

static int run_one(struct bot *b, const struct digest_sink *sink, const struct reminder *m,
		   int64_t *next)
{
	struct group_prefs p;
	int hh, mm;
	if (!parse_hhmm(m->at, &hh, &mm))
		return COHORT_OK; /* only the command writes it, always valid */
	int rc = bot_use_group(b, m->group_id); /* its next topic is on the group's roadmap */
	if (!rc)
		rc = bot_group_prefs(b, m->group_id, &p);
	if (rc)
		return rc;
	const char *tz = p.timezone;
	int64_t now = bot_now(b);
	int64_t slot = tz_at_time(tz, now, hh, mm);
	int64_t tomorrow = tz_at_time(tz, tz_day_start(tz, now, 1), hh, mm);
	if (now < slot) {
		earliest(next, slot);
		goto out;
	}
	earliest(next, tomorrow);
	if (m->set_at > slot)
		goto out; /* set after today's time passed: from tomorrow on */
	int streak = 0;
	bool risk;
	rc = at_risk(b, m->group_id, m->member_id, tz, now, &streak, &risk);
	if (rc || !risk)
		goto out;
	char date[16], key[20];
	tz_format(tz, now, "%Y-%m-%d", date, sizeof(date));
	remind_idem_key(m->group_id, m->member_id, date, key);
	struct reply r;
	reply_init(&r);
	rc = build(b, m, tz, streak, &r);
	bool first = false;
	if (!rc)
		rc = store_remind_record(b->store, m->group_id, m->member_id, date, key, now, &first);
	if (!rc && first) {
		char *to_group, *to_member;
		delivery(b, m->group_id, m->member_id, &to_group, &to_member);
		int sent = sink->serves(sink->ud, to_group)
				   ? sink->remind(sink->ud, to_group, to_member, &r, key)
				   : COHORT_ERR_USAGE;
		free(to_group);
		free(to_member);
		if (sent && sent != COHORT_ERR_PENDING)
			log_warn("remind", "the %s reminder of %s in %s was not delivered (%s); not "
					   "retried today",
				 date, m->member_id, m->group_id, cohort_strerror(sent));
		else
			log_info("remind", "sent the %s reminder of %s in %s", date, m->member_id,
				 m->group_id);
	}
	reply_release(&r);
out:
	group_prefs_release(&p);
	return rc;
}

int remind_run(struct bot *b, const struct digest_sink *sink, int64_t *next)
{
	if (!sink->remind)
		return COHORT_OK;
	struct reminders rs = {NULL, 0, 0};
	int rc = store_reminders(b->store, NULL, collect, &rs);
	for (size_t i = 0; i < rs.n; i++) {
		struct reminder *m = &rs.v[i];
		int mrc = sink->serves(sink->ud, m->group_id) ? run_one(b, sink, m, next) : COHORT_OK;
		if (mrc) {
			log_warn("remind", "the reminder of %s in %s failed: %s; retrying in a minute",
				 m->member_id, m->group_id, cohort_strerror(mrc));
			earliest(next, bot_now(b) + 60000);
			rc = rc ? rc : mrc;
		}
		free(m->group_id);
		free(m->member_id);
		free(m->at);
	}
	free(rs.v);
	return rc;
}
