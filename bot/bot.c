/* The bot's shared core: construction, the clock, group settings, tallies. */
#include "bot_internal.h"

#include "digest.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"
#include "outbox.h"
#include "rmcmd.h"
#include "rmset.h"
#include "roadmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t process_now(void *ud)
{
	(void)ud;
	return clock_now_ms();
}

/*
 * The store keeps week and month scores by the group's own calendar. It
 * passes the group's stored zone, so this never reads the store (it runs
 * inside the store's transaction): the zone as bot_group_prefs() picks it.
 */
static void group_periods(void *ud, const char *timezone, int64_t t, int64_t start[2],
			  int64_t end[2])
{
	struct bot *b = ud;
	const char *tz = timezone && tz_valid(timezone) ? timezone : b->timezone;
	start[0] = tz_week_start(tz, t);
	end[0] = tz_day_start(tz, start[0], 7);
	start[1] = tz_month_start(tz, t);
	/* Day 32 after the 1st always lies in the next month. */
	end[1] = tz_month_start(tz, tz_day_start(tz, start[1], 32));
}

int bot_new(const struct bot_opts *o, struct bot **out)
{
	struct bot *b = xcalloc(1, sizeof(*b));
	b->store = o->store;
	if (o->roadmaps) {
		b->set = o->roadmaps;
	} else {
		b->own_set = rmset_of(o->roadmap, "backend");
		b->set = b->own_set;
	}
	b->rm_index = rmset_default(b->set);
	b->rm = rmset_at(b->set, b->rm_index);
	b->digest_time = xstrdup(o->digest_time ? o->digest_time : "18:00");
	b->timezone = xstrdup(o->timezone ? o->timezone : "UTC");
	b->now = o->now ? o->now : process_now;
	b->now_ud = o->now_ud;
	b->outbox = outbox_new(b, b->store);
	struct store_calendar cal = {group_periods, b};
	int rc = store_set_calendar(b->store, &cal);
	/*
	 * Not fatal: a command such as backup must still reach a damaged store, and
	 * the scores keep counting the roadmap they were derived for.
	 */
	struct store_roadmap_result res;
	if (!rc && bot_store_roadmaps(b->store, b->set, false, &res))
		log_error("bot", "the scores still count the roadmap they were derived for (see "
				 "above)");
	if (rc) {
		bot_free(b);
		b = NULL;
	}
	*out = b;
	return rc;
}

void bot_free(struct bot *b)
{
	if (!b)
		return;
	outbox_free(b->outbox);
	rmset_free(b->own_set);
	free(b->digest_time);
	free(b->timezone);
	free(b->public_url);
	for (size_t i = 0; i < b->ninflight; i++)
		free(b->inflight[i].group_id);
	free(b->inflight);
	free(b);
}

void bot_set_public_url(struct bot *b, const char *url)
{
	free(b->public_url);
	b->public_url = NULL;
	if (url && *url) {
		/* Links are made as url + "/g/TOKEN": no slash doubled. */
		size_t n = strlen(url);
		while (n > 0 && url[n - 1] == '/')
			n--;
		b->public_url = xstrndup(url, n);
	}
}

struct outbox *bot_outbox(struct bot *b)
{
	return b->outbox;
}

int64_t bot_now(struct bot *b)
{
	return b->now(b->now_ud);
}

int bot_group_prefs(struct bot *b, const char *group_id, struct group_prefs *out)
{
	struct store_settings s;
	memset(out, 0, sizeof(*out));
	int rc = store_get_settings(b->store, group_id, &s);
	if (rc)
		return rc;
	snprintf(out->timezone, sizeof(out->timezone), "%s",
		 s.timezone && tz_valid(s.timezone) ? s.timezone : b->timezone);
	snprintf(out->digest_time, sizeof(out->digest_time), "%s",
		 s.digest_time ? s.digest_time : b->digest_time);
	out->digest_channel = s.digest_channel;
	s.digest_channel = NULL;
	scheduler_every_parse(s.digest_every, &out->every, NULL, 0); /* else daily */
	store_settings_release(&s);
	return COHORT_OK;
}

void group_prefs_release(struct group_prefs *p)
{
	free(p->digest_channel);
	p->digest_channel = NULL;
}

struct statuses_ctx {
	const struct roadmap *rm;
	enum store_status *out;
};

static int collect_status(const struct store_row *row, void *ud)
{
	struct statuses_ctx *c = ud;
	long t = roadmap_find_id(c->rm, row->topic_id);
	if (t >= 0)
		c->out[t] = row->status;
	return 0;
}

int bot_member_statuses(struct bot *b, const char *group_id, const char *member_id,
			enum store_status *statuses)
{
	memset(statuses, 0, roadmap_topic_count(b->rm) * sizeof(*statuses));
	struct statuses_ctx c = {b->rm, statuses};
	return store_member_progress(b->store, group_id, member_id, collect_status, &c);
}

struct tally bot_tally(const struct bot *b, const enum store_status *statuses, const bool *only)
{
	struct tally t = {0, 0, 0, 0};
	size_t n = roadmap_topic_count(b->rm);
	for (size_t i = 0; i < n; i++) {
		if (only && !only[i])
			continue;
		t.total++;
		t.done += statuses[i] == STATUS_DONE;
		t.skipped += statuses[i] == STATUS_SKIPPED;
		t.in_progress += statuses[i] == STATUS_IN_PROGRESS;
	}
	return t;
}

void bot_format_tally(struct strbuf *sb, const struct tally *t)
{
	sb_addf(sb, "%d/%d", t->done, t->total);
	if (t->skipped)
		sb_addf(sb, " (+%d skipped)", t->skipped);
	sb_addf(sb, " \u00b7 %d%%", text_percent(t->done + t->skipped, t->total));
}

void bot_topic_label(const struct bot *b, size_t topic, struct strbuf *sb)
{
	const struct rm_topic *t = roadmap_topic(b->rm, topic);
	sb_adds(sb, t->name);
	if (*t->path)
		sb_addf(sb, " (%s)", t->path);
}

int bot_digest(struct bot *b, const char *group_id, struct reply *out)
{
	struct digest d;
	int rc = digest_build(b, group_id, bot_now(b), &d);
	if (!rc) {
		*out = d.reply;
		reply_init(&d.reply);
	}
	digest_release(&d);
	return rc;
}

int bot_state_get(struct bot *b, const char *key, char **value)
{
	return store_state_get(b->store, key, value);
}

int bot_state_set(struct bot *b, const char *key, const char *value)
{
	return store_state_set(b->store, key, value);
}

char *bot_member_name(const char *name, const char *fallback)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = name ? strlen(name) : 0, chars = 0;
	bool space = false;
	while (n && chars < BOT_MAX_NAME) {
		bool unsafe;
		size_t k = text_unsafe(name, n, &unsafe);
		const unsigned char *p = (const unsigned char *)name;
		bool blank =
			*p == ' ' || (unsafe && (k == 1 ? *p < 0x80 : k == 2)) ||
			(k == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
		if (blank) {
			space = sb.len > 0;
		} else {
			if (space && chars + 1 < BOT_MAX_NAME) {
				sb_addc(&sb, ' ');
				chars++;
			}
			space = false;
			if (unsafe && k == 1)
				sb_adds(&sb, "\xef\xbf\xbd"); /* a byte that is not UTF-8 */
			else
				sb_add(&sb, name, k);
			chars++;
		}
		name += k;
		n -= k;
	}
	if (!sb.len) {
		const char *colon = fallback ? strchr(fallback, ':') : NULL;
		sb_adds(&sb, colon ? colon + 1 : fallback ? fallback : "?");
	}
	return sb_detach(&sb);
}

/* Copies s into dst (cap bytes with the NUL) without splitting a UTF-8 character. */
static void copy_utf8(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

size_t bot_complete_topics(struct bot *b, const char *command, const char *group_id,
			   const char *typed, struct bot_choice *out, size_t max)
{
	if (command && strcmp(command, "roadmap-use") == 0)
		return rmcmd_complete(b, typed, out, max);
	/* A linked group completes from the canonical group's roadmap, as bot_handle() answers. */
	char *canonical = NULL;
	if (group_id && store_group_canonical(b->store, group_id, &canonical) == COHORT_OK)
		group_id = canonical;
	if (bot_use_group(b, group_id))
		log_warn("bot", "reading %s's roadmap failed; completing from the default",
			 group_id);
	free(canonical);
	long idx[32];
	if (max > ARRAY_SIZE(idx))
		max = ARRAY_SIZE(idx);
	size_t n = roadmap_complete(b->rm, typed, idx, max);
	for (size_t i = 0; i < n; i++) {
		const struct rm_topic *t = roadmap_topic(b->rm, (size_t)idx[i]);
		char *label = *t->path ? xasprintf("%s — %s", t->name, t->path) : xstrdup(t->name);
		copy_utf8(out[i].label, sizeof(out[i].label), label);
		copy_utf8(out[i].value, sizeof(out[i].value), t->name);
		free(label);
	}
	return n;
}

int bot_use_group(struct bot *b, const char *group_id)
{
	char *name = NULL;
	int rc = group_id ? store_group_roadmap(b->store, group_id, &name) : COHORT_OK;
	long i = name ? rmset_find(b->set, name) : -1;
	b->rm_index = i >= 0 ? (size_t)i : rmset_default(b->set);
	b->rm = rmset_at(b->set, b->rm_index);
	free(name);
	return rc;
}

void bot_set_roadmap(struct bot *b, const struct roadmap *rm)
{
	rmset_free(b->own_set);
	b->own_set = rmset_of(rm, "backend");
	bot_set_roadmaps(b, b->own_set);
}

void bot_set_roadmaps(struct bot *b, const struct rmset *set)
{
	if (set != b->own_set) {
		rmset_free(b->own_set);
		b->own_set = NULL;
	}
	b->set = set;
	b->rm_index = rmset_default(set);
	b->rm = rmset_at(set, b->rm_index);
	struct store_roadmap_result res;
	if (bot_store_roadmaps(b->store, set, false, &res))
		log_error("bot", "the scores still count the roadmaps loaded before (see above)");
}

/* The store's view of roadmap rm (named name): ids and former ids, in new arrays. */
static void store_view(const struct roadmap *rm, const char *name, struct store_roadmap *out)
{
	size_t n = roadmap_topic_count(rm), nrenames = 0;
	const char **ids = xcalloc(n ? n : 1, sizeof(char *));
	struct store_rename *renames = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct rm_topic *t = roadmap_topic(rm, i);
		ids[i] = t->id;
		renames = xrealloc(renames, (nrenames + t->nformer + 1) * sizeof(*renames));
		for (size_t k = 0; k < t->nformer; k++)
			renames[nrenames++] = (struct store_rename){t->former[k], t->id};
	}
	*out = (struct store_roadmap){name, ids, n, renames, nrenames};
}

static void store_view_release(struct store_roadmap *v)
{
	free((void *)v->ids);
	free((void *)v->renames);
}

int bot_store_roadmaps(struct store *st, const struct rmset *set, bool force,
		       struct store_roadmap_result *out)
{
	size_t n = rmset_count(set);
	struct store_roadmap *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		store_view(rmset_at(set, i), rmset_name(set, i), &v[i]);
	int rc = store_set_roadmaps(st, v, n, rmset_default(set), force, out);
	if (!rc && out->rederived)
		log_msg(out->moved ? LOG_INFO : LOG_DEBUG, "bot",
			"scores derived for %zu %s (default %s); %ld records moved from former ids",
			n, n == 1 ? "roadmap" : "roadmaps", rmset_name(set, rmset_default(set)),
			out->moved);
	for (size_t i = 0; i < n; i++)
		store_view_release(&v[i]);
	free(v);
	return rc;
}

int bot_switch_roadmap(struct bot *b, const char *group_id, size_t index, int64_t at, long *moved)
{
	struct store_roadmap v;
	store_view(rmset_at(b->set, index), rmset_name(b->set, index), &v);
	int rc = store_set_group_roadmap(b->store, group_id, &v, index == rmset_default(b->set), at,
					 moved);
	store_view_release(&v);
	return rc;
}

int bot_store_roadmap(struct store *st, const struct roadmap *rm, bool force,
		      struct store_roadmap_result *out)
{
	size_t n = roadmap_topic_count(rm), nrenames = 0;
	const char **ids = xcalloc(n ? n : 1, sizeof(char *));
	struct store_rename *renames = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct rm_topic *t = roadmap_topic(rm, i);
		ids[i] = t->id;
		renames = xrealloc(renames, (nrenames + t->nformer + 1) * sizeof(*renames));
		for (size_t k = 0; k < t->nformer; k++)
			renames[nrenames++] = (struct store_rename){t->former[k], t->id};
	}
	int rc = store_set_roadmap(st, ids, n, renames, nrenames, force, out);
	if (!rc && out->rederived)
		log_msg(out->moved ? LOG_INFO : LOG_DEBUG, "bot", "scores derived for %zu topics from %s; %ld records moved from "
				"former ids",
			 n, roadmap_source(rm), out->moved);
	free(ids);
	free(renames);
	return rc;
}
