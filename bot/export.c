#include "export.h"
#include "goal.h"

#include "bot.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"
#include "rmset.h"
#include "roadmap.h"
#include "scheduler.h"
#include "store/store.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Topic id's topic on any roadmap of the set, the default's first; NULL when none has it. */
static const struct rm_topic *set_topic(const struct rmset *set, const char *id)
{
	size_t d = rmset_default(set);
	for (size_t k = 0; k <= rmset_count(set); k++) {
		if (k == d + 1)
			continue; /* the default was looked at first */
		const struct roadmap *rm = rmset_at(set, k == 0 ? d : k - 1);
		long t = roadmap_find_id(rm, id);
		if (t >= 0)
			return roadmap_topic(rm, (size_t)t);
	}
	return NULL;
}

struct export_ctx {
	const struct rmset *set;
	enum export_format fmt;
	FILE *out;
	size_t n;
};

static void iso8601(int64_t ms, char *buf, size_t n)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A spreadsheet runs a cell that starts with one of these as a formula. */
static bool formula_start(const char *s)
{
	return *s && strchr("=+-@\t\r", *s);
}

/*
 * Fields that export defuses with a leading apostrophe: formulas, and text that
 * already looks defused ("'=x"), so that import, taking one apostrophe off such
 * a field, gives back exactly what was stored.
 */
static bool needs_apostrophe(const char *s)
{
	while (*s == '\'')
		s++;
	return formula_start(s);
}

/*
 * s with C0 controls other than tab and line feed, DEL and C1 controls (U+0080..U+009F)
 * replaced by U+FFFD: an ESC or BEL in a name or note would otherwise reach the
 * terminal of whoever runs `cat` on the export. A new string.
 */
static char *csv_clean(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f) {
			sb_adds(&sb, "\xef\xbf\xbd");
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0) {
			sb_adds(&sb, "\xef\xbf\xbd");
			p++;
		} else {
			sb_addc(&sb, (char)*p);
		}
	}
	return sb_detach(&sb);
}

/*
 * RFC 4180: fields with a comma, quote or line break are quoted, quotes
 * doubled. A field that a spreadsheet would run as a formula ("=HYPERLINK(...)"
 * in a note) gets a leading apostrophe; import takes it off again.
 */
static void csv_field(FILE *out, const char *raw, bool last)
{
	/* Control characters would act on the terminal that shows the file: replaced. */
	char *clean = csv_clean(raw);
	const char *s = clean;
	bool defuse = needs_apostrophe(s);
	if (defuse || strpbrk(s, ",\"\r\n")) {
		fputc('"', out);
		if (defuse)
			fputc('\'', out);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', out);
			fputc(*s, out);
		}
		fputc('"', out);
	} else {
		fputs(s, out);
	}
	fputs(last ? "\r\n" : ",", out);
	free(clean);
}

static const char *status_word(enum store_status s)
{
	return s == STATUS_IN_PROGRESS ? "in progress" : store_status_name(s);
}

static int write_row(const struct store_row *row, void *ud)
{
	struct export_ctx *c = ud;
	char when[32];
	iso8601(row->updated_at, when, sizeof(when));
	const struct rm_topic *t = set_topic(c->set, row->topic_id);
	const char *topic = t ? t->name : "";
	if (c->fmt == EXPORT_CSV) {
		const char *fields[] = {row->group_id, row->member_id, row->member_name,
					row->topic_id, topic,          status_word(row->status),
					when,          row->note};
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			csv_field(c->out, fields[i], i + 1 == ARRAY_SIZE(fields));
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "group", row->group_id);
		cJSON_AddStringToObject(o, "member", row->member_id);
		cJSON_AddStringToObject(o, "member_name", row->member_name);
		cJSON_AddStringToObject(o, "topic_id", row->topic_id);
		cJSON_AddStringToObject(o, "topic", topic);
		cJSON_AddStringToObject(o, "status", status_word(row->status));
		cJSON_AddStringToObject(o, "updated_at", when);
		cJSON_AddStringToObject(o, "note", row->note);
		char *text = cJSON_PrintUnformatted(o);
		if (!text) {
			cJSON_Delete(o);
			return COHORT_ERR_IO;
		}
		fprintf(c->out, "%s\n  %s", c->n ? "," : "", text);
		free(text);
		cJSON_Delete(o);
	}
	c->n++;
	return ferror(c->out) ? COHORT_ERR_IO : 0;
}

/* ISO 8601 UTC with milliseconds, as the complete dump keeps times. */
static void iso8601_ms(int64_t ms, char *buf, size_t n)
{
	char s[32];
	iso8601(ms - ((ms % 1000) + 1000) % 1000, s, sizeof(s));
	s[19] = '\0';
	snprintf(buf, n, "%s.%03dZ", s, (int)(((ms % 1000) + 1000) % 1000));
}

/* Parses iso8601_ms()'s form, or whole seconds ("...:00Z"). */
static bool parse_iso_ms(const char *s, int64_t *ms)
{
	size_t n = strlen(s);
	if (n == 20)
		return clock_parse_iso(s, ms);
	if (n != 24 || s[19] != '.' || s[23] != 'Z' || strspn(s + 20, "0123456789") != 3)
		return false;
	char whole[21];
	memcpy(whole, s, 19);
	memcpy(whole + 19, "Z", 2);
	if (!clock_parse_iso(whole, ms))
		return false;
	*ms += (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
	return true;
}

/* The complete dump: one section per table, in this order, one object per line. */
static const char *const dump_sections[] = {"groups",  "members",      "progress", "events",
					    "digests", "digest_ranks", "goals",    "goals_reached",
					    "reminders", "links",    "group_roadmaps"};
enum {
	SEC_GROUPS,
	SEC_MEMBERS,
	SEC_PROGRESS,
	SEC_EVENTS,
	SEC_DIGESTS,
	SEC_RANKS,
	SEC_GOALS,
	SEC_GOAL_MARKS,
	SEC_REMINDERS,
	SEC_LINKS,
	SEC_ROADMAPS,
	SEC_COUNT
};
/* Sections versions 4 and 5 did not have yet (links came with version 6). */
#define SEC_V5_COUNT SEC_LINKS
/* Sections version 6 did not have yet (groups' roadmaps came with version 7). */
#define SEC_V6_COUNT SEC_ROADMAPS
/* Sections version 3 did not have yet (reminders came with version 4). */
#define SEC_V3_COUNT SEC_REMINDERS
/* Sections version 2 of the dump did not have yet (they came with version 3). */
#define SEC_V2_COUNT SEC_GOALS

struct dump_ctx {
	const struct rmset *set;
	FILE *out;
	int sec;      /* the section being written; -1 before the first */
	size_t n;     /* objects written in it */
	int64_t *ids; /* event ids written, in order: what "undoes" counts */
	size_t nids, ids_cap;
};

/* Closes the sections before sec and opens it (empty ones are written too). */
static void dump_open(struct dump_ctx *c, int sec)
{
	while (c->sec < sec) {
		if (c->sec >= 0)
			fputs(c->n ? "\n  ],\n" : "],\n", c->out);
		c->sec++;
		fprintf(c->out, "  \"%s\": [", dump_sections[c->sec]);
		c->n = 0;
	}
}

static int dump_object(struct dump_ctx *c, int sec, cJSON *o)
{
	dump_open(c, sec);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return COHORT_ERR_IO;
	fprintf(c->out, "%s\n    %s", c->n ? "," : "", text);
	free(text);
	c->n++;
	return ferror(c->out) ? COHORT_ERR_IO : 0;
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
	char when[40];
	iso8601_ms(ms, when, sizeof(when));
	cJSON_AddStringToObject(o, key, when);
}

static int dump_settings(const struct store_group_settings *g, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", g->group_id);
	add_str_or_null(o, "digest_channel", g->digest_channel);
	add_str_or_null(o, "digest_time", g->digest_time);
	add_str_or_null(o, "timezone", g->timezone);
	add_str_or_null(o, "digest_every", g->digest_every);
	return dump_object(ud, SEC_GROUPS, o);
}

static int dump_member(const struct store_member *m, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", m->group_id);
	cJSON_AddStringToObject(o, "member", m->member_id);
	cJSON_AddStringToObject(o, "member_name", m->name);
	add_time(o, "first_seen", m->first_seen);
	return dump_object(ud, SEC_MEMBERS, o);
}

static int dump_progress(const struct store_row *row, void *ud)
{
	struct dump_ctx *c = ud;
	const struct rm_topic *t = set_topic(c->set, row->topic_id);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", row->group_id);
	cJSON_AddStringToObject(o, "member", row->member_id);
	cJSON_AddStringToObject(o, "member_name", row->member_name);
	cJSON_AddStringToObject(o, "topic_id", row->topic_id);
	cJSON_AddStringToObject(o, "topic", t ? t->name : "");
	cJSON_AddStringToObject(o, "status", status_word(row->status));
	add_time(o, "updated_at", row->updated_at);
	cJSON_AddStringToObject(o, "note", row->note);
	return dump_object(ud, SEC_PROGRESS, o);
}

static int dump_event(const struct store_event *e, void *ud)
{
	struct dump_ctx *c = ud;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", e->group_id);
	cJSON_AddStringToObject(o, "member", e->member_id);
	cJSON_AddStringToObject(o, "topic_id", e->topic_id);
	cJSON_AddStringToObject(o, "from", status_word(e->from));
	cJSON_AddStringToObject(o, "to", status_word(e->to));
	add_str_or_null(o, "note", e->note);
	add_time(o, "at", e->at);
	add_str_or_null(o, "source_id", e->source_id);
	/* An admin's correction (/fix): who made it; absent for the member's own change. */
	if (e->actor_id) {
		cJSON_AddStringToObject(o, "by", e->actor_id);
		add_str_or_null(o, "by_name", e->actor_name);
		if (e->removal)
			cJSON_AddTrueToObject(o, "removal");
	}
	/* What it undid, as its 1-based place in this list (ids are the store's own). */
	size_t undoes = 0;
	for (size_t i = c->nids; e->reverts && i > 0 && !undoes; i--)
		if (c->ids[i - 1] == e->reverts)
			undoes = i;
	if (undoes)
		cJSON_AddNumberToObject(o, "undoes", (double)undoes);
	else
		cJSON_AddNullToObject(o, "undoes");
	grow_array((void **)&c->ids, &c->ids_cap, c->nids + 1, sizeof(*c->ids));
	c->ids[c->nids++] = e->id;
	return dump_object(ud, SEC_EVENTS, o);
}

static int dump_digest(const struct store_digest_row *d, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", d->group_id);
	cJSON_AddStringToObject(o, "date", d->local_date);
	cJSON_AddStringToObject(o, "idem_key", d->idem_key);
	add_time(o, "recorded_at", d->recorded_at);
	if (d->sent_at)
		add_time(o, "sent_at", d->sent_at);
	else
		cJSON_AddNullToObject(o, "sent_at");
	cJSON_AddNumberToObject(o, "group_percent", d->group_percent);
	return dump_object(ud, SEC_DIGESTS, o);
}

static int dump_digest_rank(const struct store_digest_rank_row *r, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", r->group_id);
	cJSON_AddStringToObject(o, "date", r->local_date);
	cJSON_AddStringToObject(o, "member", r->member_id);
	cJSON_AddNumberToObject(o, "rank", r->rank);
	cJSON_AddNumberToObject(o, "points", r->points);
	return dump_object(ud, SEC_RANKS, o);
}

static int dump_goal(const struct store_goal *g, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", g->group_id);
	cJSON_AddStringToObject(o, "member", g->member_id);
	cJSON_AddStringToObject(o, "target_kind", g->target_kind);
	cJSON_AddStringToObject(o, "target_id", g->target_id);
	cJSON_AddStringToObject(o, "due_date", g->due_date);
	add_time(o, "set_at", g->set_at);
	cJSON_AddStringToObject(o, "set_by", g->set_by);
	cJSON_AddStringToObject(o, "set_by_name", g->set_by_name);
	return dump_object(ud, SEC_GOALS, o);
}

static int dump_goal_mark(const struct store_goal_mark *m, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", m->group_id);
	cJSON_AddStringToObject(o, "goal_member", m->goal_member);
	cJSON_AddStringToObject(o, "member", m->member_id);
	add_time(o, "reached_at", m->reached_at);
	return dump_object(ud, SEC_GOAL_MARKS, o);
}

static int dump_reminder(const struct store_reminder *r, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", r->group_id);
	cJSON_AddStringToObject(o, "member", r->member_id);
	cJSON_AddStringToObject(o, "at", r->at);
	add_time(o, "set_at", r->set_at);
	return dump_object(ud, SEC_REMINDERS, o);
}

static int dump_link(const struct store_link *l, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", l->kind);
	cJSON_AddStringToObject(o, "alias", l->alias_id);
	cJSON_AddStringToObject(o, "canonical", l->canonical_id);
	add_time(o, "linked_at", l->linked_at);
	return dump_object(ud, SEC_LINKS, o);
}

static int dump_group_roadmap(const struct store_group_roadmap *g, void *ud)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "group", g->group_id);
	cJSON_AddStringToObject(o, "roadmap", g->roadmap);
	add_time(o, "changed_at", g->changed_at);
	return dump_object(ud, SEC_ROADMAPS, o);
}

static int write_dump(struct store *st, const struct rmset *set, const char *group_id, FILE *out)
{
	struct dump_ctx c = {set, out, -1, 0, NULL, 0, 0};
	fprintf(out, "{\n  \"format\": \"cohort export\",\n  \"version\": %d,\n", EXPORT_VERSION);
	struct store_dump_fns fns = {dump_settings, dump_member,      dump_progress,
				     dump_event,    dump_digest,      dump_digest_rank,
				     dump_goal,	    dump_goal_mark,   dump_reminder,
				     dump_link,   dump_group_roadmap};
	int rc = store_dump(st, group_id, &fns, &c);
	dump_open(&c, SEC_COUNT - 1);
	fputs(c.n ? "\n  ]\n}\n" : "]\n}\n", out);
	free(c.ids);
	return rc;
}

/* The end line of a CSV export: a file without it was cut short. */
#define CSV_END "# end of cohort export"

int export_write(struct store *st, const struct rmset *set, const char *group_id,
		 enum export_format fmt, FILE *out)
{
	int rc;
	if (fmt == EXPORT_JSON) {
		rc = write_dump(st, set, group_id, out);
	} else {
		struct export_ctx c = {set, fmt, out, 0};
		fputs("group,member,member_name,topic_id,topic,status,updated_at,note\r\n", out);
		rc = store_export(st, group_id, write_row, &c);
		if (!rc)
			fprintf(out, CSV_END ",%zu %s\r\n", c.n, c.n == 1 ? "record" : "records");
	}
	if (!rc && (fflush(out) != 0 || ferror(out)))
		rc = COHORT_ERR_IO;
	return rc;
}

/* ---- import ---- */

struct record {
	char *group, *member, *name, *topic, *note;
	enum store_status status;
	int64_t at;
	size_t line; /* where it starts in the file, for messages */
};

struct records {
	struct record *v;
	size_t n, cap;
};

static void records_release(struct records *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].group);
		free(rs->v[i].member);
		free(rs->v[i].name);
		free(rs->v[i].topic);
		free(rs->v[i].note);
	}
	free(rs->v);
}

enum field { F_GROUP, F_MEMBER, F_NAME, F_TOPIC_ID, F_TOPIC, F_STATUS, F_UPDATED, F_NOTE, F_COUNT };
static const char *const field_names[F_COUNT] = {"group", "member", "member_name", "topic_id",
						 "topic", "status", "updated_at",  "note"};

/*
 * "FILE:LINE: why" in err (COHORT_ERR_LEN bytes); a path too long to leave room
 * for the reason is shown by its last 200 bytes.
 */
static void bad_record(char *err, const char *fname, size_t line, const char *why)
{
	size_t n = strlen(fname);
	const char *shown = fname, *dots = "";
	if (n > 200) {
		shown = fname + n - 200;
		while (((unsigned char)*shown & 0xC0) == 0x80)
			shown++;
		dots = "\u2026";
	}
	snprintf(err, COHORT_ERR_LEN, "%s%s:%zu: %s", dots, shown, line, why);
}

/* Whether id is a former id of a topic on a roadmap of the set ("was:"). */
static bool former_id(const struct rmset *set, const char *id)
{
	for (size_t r = 0; r < rmset_count(set); r++) {
		const struct roadmap *rm = rmset_at(set, r);
		for (size_t i = 0; i < roadmap_topic_count(rm); i++) {
			const struct rm_topic *t = roadmap_topic(rm, i);
			for (size_t k = 0; k < t->nformer; k++)
				if (strcmp(t->former[k], id) == 0)
					return true;
		}
	}
	return false;
}

/* Checks one record's fields and adds it; COHORT_ERR_PARSE with the reason in err. */
static int add_record(struct records *rs, const struct rmset *set, const char *const *f,
		      const char *fname, size_t line, char *err)
{
/* The reason first, so a long path cannot push it (or the write) past err's end. */
#define BAD(...)                                                                                   \
	do {                                                                                       \
		char why_[COHORT_ERR_LEN];                                                         \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                         \
		bad_record(err, fname, line, why_);                                                \
		return COHORT_ERR_PARSE;                                                           \
	} while (0)
	for (int i = 0; i < F_COUNT; i++) {
		if (!f[i])
			BAD("the record has no \"%s\"", field_names[i]);
		if (!text_utf8_valid(f[i], strlen(f[i])) || strlen(f[i]) > 1000 + EXPORT_MAX_NOTE)
			BAD("\"%s\" is not valid UTF-8 of a sensible length", field_names[i]);
	}
	const char *colon = strchr(f[F_GROUP], ':');
	if (!colon || colon == f[F_GROUP] || !colon[1])
		BAD("group \"%.80s\" is not a platform-qualified id like \"discord:123\"",
		    f[F_GROUP]);
	if (!*f[F_MEMBER] || !strchr(f[F_MEMBER], ':'))
		BAD("member \"%.80s\" is not a platform-qualified id", f[F_MEMBER]);
	/*
	 * A record the store kept off its roadmap (export names no topic for it) is
	 * restored too, uncounted, and so is one under a former id (it moves).
	 * Any other id means the export was made with another roadmap.
	 */
	if (!*f[F_TOPIC_ID] || strlen(f[F_TOPIC_ID]) > ROADMAP_MAX_NAME * 6 ||
	    strpbrk(f[F_TOPIC_ID], " \t\r\n\",;|"))
		BAD("topic_id \"%.80s\" is not a topic id (ids are like \"postgresql\"; "
		    "'cohort roadmap' lists them)",
		    f[F_TOPIC_ID]);
	if (!set_topic(set, f[F_TOPIC_ID]) && *f[F_TOPIC] && !former_id(set, f[F_TOPIC_ID]))
		BAD("topic_id \"%.80s\" (\"%.80s\") is not on the roadmap (%s); load the roadmap "
		    "the export was made with, or name the topic's old id with \"was:\" in it",
		    f[F_TOPIC_ID], f[F_TOPIC],
		    roadmap_source(rmset_at(set, rmset_default(set))));
	enum store_status st;
	if (!strcmp(f[F_STATUS], "done"))
		st = STATUS_DONE;
	else if (!strcmp(f[F_STATUS], "in progress") || !strcmp(f[F_STATUS], "in_progress"))
		st = STATUS_IN_PROGRESS;
	else if (!strcmp(f[F_STATUS], "skipped"))
		st = STATUS_SKIPPED;
	else
		BAD("status \"%.40s\" is not done, in progress or skipped", f[F_STATUS]);
	int64_t at;
	if (!parse_iso_ms(f[F_UPDATED], &at))
		BAD("updated_at \"%.40s\" is not a time like 2026-11-25T18:00:00Z", f[F_UPDATED]);
	if (strlen(f[F_NOTE]) > EXPORT_MAX_NOTE)
		BAD("the note is longer than %d bytes", EXPORT_MAX_NOTE);
#undef BAD
	grow_array((void **)&rs->v, &rs->cap, rs->n + 1, sizeof(*rs->v));
	rs->v[rs->n++] = (struct record){xstrdup(f[F_GROUP]),
					 xstrdup(f[F_MEMBER]),
					 xstrdup(f[F_NAME]),
					 xstrdup(f[F_TOPIC_ID]),
					 xstrdup(f[F_NOTE]),
					 st,
					 at,
					 line};
	return COHORT_OK;
}

static int read_json(const char *text, size_t len, const struct rmset *set, const char *fname,
		     struct records *rs, char *err)
{
	cJSON *j = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsArray(j)) {
		cJSON_Delete(j);
		snprintf(err, COHORT_ERR_LEN,
			 "%s: not a JSON array of records (made by 'cohort "
			 "export --format json'?)",
			 fname);
		return COHORT_ERR_PARSE;
	}
	const cJSON *o;
	size_t i = 0;
	int rc = COHORT_OK;
	cJSON_ArrayForEach(o, j)
	{
		const char *f[F_COUNT];
		for (int k = 0; k < F_COUNT; k++)
			f[k] = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(o, field_names[k]));
		/* JSON has no lines worth naming: the record's position stands in. */
		rc = add_record(rs, set, f, fname, ++i, err);
		if (rc)
			break;
	}
	cJSON_Delete(j);
	return rc;
}

/* Splits the next CSV record (RFC 4180) at *p into fields; false at the end of input. */
static bool csv_record(const char **p, const char *end, struct strbuf *fields, int *nfields,
		       size_t *line, bool *bad)
{
	*nfields = 0;
	*bad = false;
	if (*p >= end)
		return false;
	const char *s = *p;
	for (;;) {
		struct strbuf *f = &fields[*nfields < F_COUNT ? *nfields : F_COUNT];
		sb_truncate(f, 0);
		if (s < end && *s == '"') {
			s++;
			for (;;) {
				if (s >= end) {
					*bad = true; /* an unterminated quote */
					*p = end;
					return true;
				}
				if (*s == '"') {
					if (s + 1 < end && s[1] == '"') {
						sb_addc(f, '"');
						s += 2;
						continue;
					}
					s++;
					break;
				}
				if (*s == '\n')
					(*line)++;
				sb_addc(f, *s++);
			}
		} else {
			while (s < end && *s != ',' && *s != '\r' && *s != '\n')
				sb_addc(f, *s++);
		}
		(*nfields)++;
		if (s < end && *s == ',') {
			s++;
			continue;
		}
		if (s < end && *s == '\r')
			s++;
		if (s < end && *s == '\n')
			s++;
		else if (s < end)
			*bad = true; /* text after a closing quote */
		(*line)++;
		*p = s;
		return true;
	}
}

static int read_csv(const char *text, size_t len, const struct rmset *set, const char *fname,
		    struct records *rs, char *err)
{
	struct strbuf fields[F_COUNT + 1];
	memset(fields, 0, sizeof(fields));
	const char *p = text, *end = text + len;
	size_t line = 1;
	int n, rc = COHORT_OK;
	bool bad, header = true;
	size_t end_line = 0; /* where the end line was */
	while (!rc) {
		size_t at = line;
		if (!csv_record(&p, end, fields, &n, &line, &bad))
			break;
		if (n == 1 && !fields[0].len && !bad)
			continue; /* a blank line */
		if (end_line) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s:%zu: a record after the end line (line %zu); was another file "
				 "appended?",
				 fname, at, end_line);
			rc = COHORT_ERR_PARSE;
			break;
		}
		if (!bad && !header && n == 2 && !strcmp(sb_str(&fields[0]), CSV_END)) {
			/* "# end of cohort export,5 records": the count must match. */
			char *rest = NULL;
			const char *c = sb_str(&fields[1]);
			unsigned long long want = strtoull(c, &rest, 10);
			if (rest == c || (strcmp(rest, " records") && strcmp(rest, " record")) ||
			    want != rs->n) {
				snprintf(err, COHORT_ERR_LEN,
					 "%s:%zu: the end line says \"%.40s\" but the file holds %zu "
					 "(a record was lost or added); nothing was imported",
					 fname, at, c, rs->n);
				rc = COHORT_ERR_PARSE;
			}
			end_line = at;
			continue;
		}
		if (bad || n != F_COUNT) {
			snprintf(err, COHORT_ERR_LEN, "%s:%zu: %s", fname, at,
				 bad ? "a quoted field is not closed properly"
				     : "expected 8 fields (group,member,member_name,topic_id,topic,"
				       "status,updated_at,note)");
			rc = COHORT_ERR_PARSE;
			break;
		}
		if (header) {
			header = false;
			for (int k = 0; k < F_COUNT; k++) {
				if (strcmp(sb_str(&fields[k]), field_names[k]) != 0) {
					snprintf(err, COHORT_ERR_LEN,
						 "%s:1: not the header of 'cohort export --format "
						 "csv'",
						 fname);
					rc = COHORT_ERR_PARSE;
					break;
				}
			}
			continue;
		}
		const char *f[F_COUNT];
		for (int k = 0; k < F_COUNT; k++) {
			f[k] = sb_str(&fields[k]);
			if (f[k][0] == '\'' && needs_apostrophe(f[k]))
				f[k]++; /* the apostrophe export put before a formula */
		}
		rc = add_record(rs, set, f, fname, at, err);
	}
	if (!rc && header) {
		snprintf(err, COHORT_ERR_LEN, "%s: empty (no CSV header)", fname);
		rc = COHORT_ERR_PARSE;
	}
	if (!rc && !end_line) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s:%zu: the file ends without its end line (\"" CSV_END ",N records\"): "
			 "it was cut short, so nothing was imported. Export it again; a file "
			 "from an older cohort has none: check it is whole, then add that line "
			 "with N its records (%zu here)",
			 fname, line, rs->n);
		rc = COHORT_ERR_PARSE;
	}
	for (int k = 0; k <= F_COUNT; k++)
		sb_release(&fields[k]);
	return rc;
}

/* ---- restoring a complete dump ---- */

struct restore {
	struct store *st;
	const char *fname;
	char *err;
	const char *sec; /* for messages: "events" */
	size_t index;    /* 1-based, in sec */
	int64_t *ids;    /* new event ids, by place in "events" */
	size_t nids;
	size_t count;    /* progress records restored */
};

static int dump_bad(struct restore *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int dump_bad(struct restore *r, const char *fmt, ...)
{
	int n = snprintf(r->err, COHORT_ERR_LEN, "%.300s: %s[%zu]: ", r->fname, r->sec, r->index);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && n < COHORT_ERR_LEN)
		vsnprintf(r->err + n, COHORT_ERR_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	return COHORT_ERR_PARSE;
}

/* A string member of o: *out borrowed; NULL allowed (JSON null or absent) when nullable. */
static int get_str(struct restore *r, const cJSON *o, const char *key, bool nullable,
		   size_t max, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = NULL;
	if ((!v || cJSON_IsNull(v)) && nullable)
		return COHORT_OK;
	if (!cJSON_IsString(v))
		return dump_bad(r, "\"%s\" is missing or not a string", key);
	const char *s = v->valuestring;
	if (!text_utf8_valid(s, strlen(s)) || strlen(s) > max)
		return dump_bad(r, "\"%s\" is not valid UTF-8 of at most %zu bytes", key, max);
	*out = s;
	return COHORT_OK;
}

/*
 * A group's "digest_every": null or absent (daily) leaves *every NULL; a
 * frequency the bot reads is written into buf in its stored spelling.
 */
static int get_every(struct restore *r, const cJSON *o, char buf[DIGEST_EVERY_LEN],
		     const char **every)
{
	char why[COHORT_ERR_LEN];
	struct digest_every e;
	const char *text;
	*every = NULL;
	int rc = get_str(r, o, "digest_every", true, 40, &text);
	if (rc || !text)
		return rc;
	if (!scheduler_every_parse(text, &e, why, sizeof(why)))
		return dump_bad(r, "\"digest_every\": %s", why);
	scheduler_every_format(&e, buf);
	*every = buf;
	return COHORT_OK;
}

static int get_time(struct restore *r, const cJSON *o, const char *key, bool nullable,
		    int64_t *ms)
{
	const char *s;
	int rc = get_str(r, o, key, nullable, 40, &s);
	*ms = 0;
	if (rc || !s)
		return rc;
	if (!parse_iso_ms(s, ms))
		return dump_bad(r, "\"%s\" \"%.40s\" is not a time like 2026-11-25T18:00:00.000Z",
				key, s);
	return COHORT_OK;
}

static int get_int(struct restore *r, const cJSON *o, const char *key, int lo, int hi, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return dump_bad(r, "\"%s\" is not a whole number from %d to %d", key, lo, hi);
	*out = (int)v->valuedouble;
	return COHORT_OK;
}

static int get_status(struct restore *r, const cJSON *o, const char *key, bool none_ok,
		      enum store_status *out)
{
	const char *s;
	int rc = get_str(r, o, key, false, 20, &s);
	if (rc)
		return rc;
	if (!strcmp(s, "done"))
		*out = STATUS_DONE;
	else if (!strcmp(s, "in progress") || !strcmp(s, "in_progress"))
		*out = STATUS_IN_PROGRESS;
	else if (!strcmp(s, "skipped"))
		*out = STATUS_SKIPPED;
	else if (none_ok && !strcmp(s, "none"))
		*out = STATUS_NONE;
	else
		return dump_bad(r, "\"%s\" \"%.20s\" is not done, in progress, skipped%s", key, s,
				none_ok ? " or none" : "");
	return COHORT_OK;
}

/* Ids: platform-qualified ("discord:123"). */
static int check_qualified(struct restore *r, const char *what, const char *id)
{
	const char *colon = strchr(id, ':');
	if (!colon || colon == id || !colon[1])
		return dump_bad(r, "%s \"%.80s\" is not a platform-qualified id like "
				   "\"discord:123\"",
				what, id);
	return COHORT_OK;
}

static int check_topic_id(struct restore *r, const char *id)
{
	if (!*id || strpbrk(id, " \t\r\n\",;|"))
		return dump_bad(r, "topic_id \"%.80s\" is not a topic id", id);
	return COHORT_OK;
}

/* What a restore call said, as a message naming the row. */
static int restored(struct restore *r, int rc, const char *what)
{
	if (rc == COHORT_ERR_DUPLICATE)
		return dump_bad(r, "a second %s (in the file, or in the store already: import "
				   "into a new store)",
				what);
	if (rc)
		return dump_bad(r, "writing it failed (see the log above)");
	return COHORT_OK;
}

/* A goal's row: a topic or section id, a real date, who set it. */
static int restore_goal(struct restore *r, const cJSON *o, const char *g, const char *m)
{
	const char *kind, *target, *due, *by, *by_name;
	int64_t at;
	int rc;
	if ((rc = get_str(r, o, "target_kind", false, 10, &kind)) ||
	    (rc = get_str(r, o, "target_id", false, 6 * ROADMAP_MAX_NAME, &target)) ||
	    (rc = check_topic_id(r, target)) || (rc = get_str(r, o, "due_date", false, 10, &due)) ||
	    (rc = get_time(r, o, "set_at", false, &at)) ||
	    (rc = get_str(r, o, "set_by", false, 300, &by)) ||
	    (rc = check_qualified(r, "set_by", by)) ||
	    (rc = get_str(r, o, "set_by_name", false, 1000, &by_name)))
		return rc;
	if (strcmp(kind, "topic") != 0 && strcmp(kind, "section") != 0)
		return dump_bad(r, "\"target_kind\" \"%.10s\" is not topic or section", kind);
	if (!goal_date_valid(due))
		return dump_bad(r, "\"due_date\" \"%.10s\" is not a date like 2027-03-31", due);
	struct store_goal goal = {g, m, kind, target, due, at, by, by_name, 0};
	return restored(r, store_restore_goal(r->st, &goal), "goal for this group and member");
}

/* A link (version 6): {"kind", "alias", "canonical", "linked_at"}. */
static int restore_link(struct restore *r, const cJSON *o)
{
	const char *kind, *alias, *canonical;
	int64_t at;
	int rc;
	if ((rc = get_str(r, o, "kind", false, 10, &kind)) ||
	    (rc = get_str(r, o, "alias", false, 300, &alias)) ||
	    (rc = check_qualified(r, "alias", alias)) ||
	    (rc = get_str(r, o, "canonical", false, 300, &canonical)) ||
	    (rc = check_qualified(r, "canonical", canonical)) ||
	    (rc = get_time(r, o, "linked_at", false, &at)))
		return rc;
	if (strcmp(kind, "member") != 0 && strcmp(kind, "group") != 0)
		return dump_bad(r, "\"kind\" is \"%.20s\", not \"member\" or \"group\"", kind);
	return restored(r, store_restore_link(r->st, &(struct store_link){kind, alias, canonical, at}),
			"link of either side");
}

static int restore_row(struct restore *r, int sec, const cJSON *o)
{
	const char *g = NULL, *m = NULL, *name, *topic, *note, *src, *ch, *tm, *tz, *date, *key;
	const char *every;
	char every_buf[DIGEST_EVERY_LEN];
	int64_t t1, t2;
	enum store_status s1, s2;
	int n1, n2;
	if (sec == SEC_LINKS)
		return restore_link(r, o);
	int rc = get_str(r, o, "group", false, 300, &g);
	if (!rc)
		rc = check_qualified(r, "group", g);
	if (!rc && sec != SEC_GROUPS && sec != SEC_DIGESTS && sec != SEC_ROADMAPS) {
		rc = get_str(r, o, "member", false, 300, &m);
		if (!rc && (sec != SEC_GOALS || *m)) /* a group's goal has the member "" */
			rc = check_qualified(r, "member", m);
	}
	if (rc)
		return rc;
	switch (sec) {
	case SEC_GROUPS:
		if ((rc = get_str(r, o, "digest_channel", true, 300, &ch)) ||
		    (rc = get_str(r, o, "digest_time", true, 10, &tm)) ||
		    (rc = get_str(r, o, "timezone", true, 100, &tz)) ||
		    (rc = get_every(r, o, every_buf, &every))) /* versions before 5: absent, daily */
			return rc;
		return restored(
			r,
			store_restore_settings(r->st,
					       &(struct store_group_settings){g, ch, tm, tz, every}),
			"group");
	case SEC_MEMBERS:
		if ((rc = get_str(r, o, "member_name", false, 1000, &name)) ||
		    (rc = get_time(r, o, "first_seen", false, &t1)))
			return rc;
		return restored(r, store_restore_member(r->st, &(struct store_member){g, m, name, t1}),
				"member");
	case SEC_PROGRESS:
		if ((rc = get_str(r, o, "topic_id", false, 6 * ROADMAP_MAX_NAME, &topic)) ||
		    (rc = check_topic_id(r, topic)) ||
		    (rc = get_status(r, o, "status", false, &s1)) ||
		    (rc = get_time(r, o, "updated_at", false, &t1)) ||
		    (rc = get_str(r, o, "note", false, EXPORT_MAX_NOTE, &note)))
			return rc;
		rc = store_restore_progress(r->st,
					    &(struct store_row){g, m, "", topic, s1, note, t1});
		if (rc == COHORT_ERR_STORE)
			return dump_bad(r, "the record's member is not in \"members\", or writing it "
					   "failed (see the log above)");
		r->count += !rc;
		return restored(r, rc, "record for this member and topic");
	case SEC_EVENTS: {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "undoes");
		int64_t reverts = 0;
		const char *by, *by_name;
		if ((rc = get_str(r, o, "topic_id", false, 6 * ROADMAP_MAX_NAME, &topic)) ||
		    (rc = check_topic_id(r, topic)) ||
		    (rc = get_status(r, o, "from", true, &s1)) ||
		    (rc = get_status(r, o, "to", true, &s2)) ||
		    (rc = get_str(r, o, "note", true, EXPORT_MAX_NOTE, &note)) ||
		    (rc = get_time(r, o, "at", false, &t1)) ||
		    (rc = get_str(r, o, "source_id", true, 300, &src)) ||
		    (rc = get_str(r, o, "by", true, 300, &by)) ||
		    (rc = get_str(r, o, "by_name", true, 1000, &by_name)))
			return rc;
		if (u && !cJSON_IsNull(u)) {
			if (!cJSON_IsNumber(u) || u->valuedouble < 1 ||
			    u->valuedouble >= (double)r->index ||
			    u->valuedouble != (double)(size_t)u->valuedouble)
				return dump_bad(r, "\"undoes\" is not the place of an earlier event");
			reverts = r->ids[(size_t)u->valuedouble - 1];
		}
		const cJSON *rm = cJSON_GetObjectItemCaseSensitive(o, "removal");
		if (rm && !cJSON_IsBool(rm))
			return dump_bad(r, "\"removal\" is not true or false");
		struct store_event e = {0,   g,	      m, topic,	    s1, s2, note, t1,
					src, reverts, by,	     by_name, by && cJSON_IsTrue(rm)};
		rc = store_restore_event(r->st, &e, &r->ids[r->index - 1]);
		if (rc == COHORT_ERR_STORE)
			return dump_bad(r, "the event's member is not in \"members\", it undoes an "
					   "event undone already, or writing it failed (see the log "
					   "above)");
		return restored(r, rc, "event with this source_id");
	}
	case SEC_DIGESTS:
		if ((rc = get_str(r, o, "date", false, 10, &date)) ||
		    (rc = get_str(r, o, "idem_key", false, 300, &key)) ||
		    (rc = get_time(r, o, "recorded_at", false, &t1)) ||
		    (rc = get_time(r, o, "sent_at", true, &t2)) ||
		    (rc = get_int(r, o, "group_percent", 0, 100, &n1)))
			return rc;
		return restored(r,
				store_restore_digest(
					r->st, &(struct store_digest_row){g, date, key, t1, t2, n1}),
				"digest for this group and date");
	case SEC_GOALS:
		return restore_goal(r, o, g, m);
	case SEC_REMINDERS: {
		int hh, mm;
		if ((rc = get_str(r, o, "at", false, 10, &tm)) ||
		    (rc = get_time(r, o, "set_at", false, &t1)))
			return rc;
		if (!parse_hhmm(tm, &hh, &mm))
			return dump_bad(r, "\"at\" is not a time of day (HH:MM)");
		return restored(r, store_remind_set(r->st, g, m, tm, t1), "reminder for this member");
	}
	case SEC_ROADMAPS:
		/* A name this install lacks is kept: the group counts the default until it exists. */
		if ((rc = get_str(r, o, "roadmap", false, RMSET_MAX_NAME, &key)) ||
		    (rc = get_time(r, o, "changed_at", false, &t1)))
			return rc;
		if (!*key)
			return dump_bad(r, "\"roadmap\" is empty: name a roadmap, such as \"backend\"");
		return restored(
			r, store_restore_group_roadmap(r->st, &(struct store_group_roadmap){g, key, t1}),
			"roadmap choice for this group");
	case SEC_GOAL_MARKS:
		if ((rc = get_str(r, o, "goal_member", false, 300, &key)) ||
		    (*key && (rc = check_qualified(r, "goal_member", key))) ||
		    (rc = get_time(r, o, "reached_at", false, &t1)))
			return rc;
		rc = store_restore_goal_mark(
			r->st, &(struct store_goal_mark){g, key, m, NULL, t1, NULL, NULL, NULL});
		if (rc == COHORT_ERR_STORE)
			return dump_bad(r, "no goal in \"goals\" for this group and goal_member, or "
					   "writing it failed (see the log above)");
		return restored(r, rc, "mark for this goal and member");
	default:
		if ((rc = get_str(r, o, "date", false, 10, &date)) ||
		    (rc = get_int(r, o, "rank", 1, 1000000, &n1)) ||
		    (rc = get_int(r, o, "points", 0, 1000000, &n2)))
			return rc;
		rc = store_restore_digest_rank(
			r->st, &(struct store_digest_rank_row){g, date, m, n1, n2});
		if (rc == COHORT_ERR_STORE)
			return dump_bad(r, "no digest in \"digests\" for this group and date, or "
					   "writing it failed (see the log above)");
		return restored(r, rc, "rank for this digest and member");
	}
}

/*
 * Restores a complete dump (root is its object) in one transaction, scores
 * derived for rm before it commits. *count: the progress records.
 */
static int restore_dump(struct store *st, const struct rmset *set, const cJSON *root,
			const char *fname, size_t *count, char *err)
{
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "cohort export") != 0 ||
	    !cJSON_IsNumber(ver)) {
		snprintf(err, COHORT_ERR_LEN,
			 "%.300s: not an export of cohort (made by 'cohort export --format json'?)",
			 fname);
		return COHORT_ERR_PARSE;
	}
	if (ver->valuedouble != EXPORT_VERSION && ver->valuedouble != 2 && ver->valuedouble != 3 &&
	    ver->valuedouble != 4 && ver->valuedouble != 5 && ver->valuedouble != 6) {
		snprintf(err, COHORT_ERR_LEN,
			 "%.300s: an export of version %g, but this cohort reads version %d (and "
			 "the arrays of records before it): use a newer cohort",
			 fname, ver->valuedouble, EXPORT_VERSION);
		return COHORT_ERR_PARSE;
	}
	struct restore r = {st, fname, err, NULL, 0, NULL, 0, 0};
	int rc = COHORT_OK;
	int nsec = ver->valuedouble == 2   ? SEC_V2_COUNT /* 2 had no goals */
		   : ver->valuedouble == 3 ? SEC_V3_COUNT /* 3 had no reminders */
		   : ver->valuedouble < 6  ? SEC_V5_COUNT /* 4 and 5 had no links */
		   : ver->valuedouble < 7  ? SEC_V6_COUNT /* 6 had no groups' roadmaps */
					   : SEC_COUNT;
	for (int sec = 0; sec < nsec && !rc; sec++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, dump_sections[sec]);
		if (!cJSON_IsArray(a)) {
			snprintf(err, COHORT_ERR_LEN,
				 "%.300s: \"%s\" is missing or not an array (the file is not a "
				 "whole export)",
				 fname, dump_sections[sec]);
			rc = COHORT_ERR_PARSE;
		}
	}
	if (rc)
		return rc;
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
	r.nids = (size_t)cJSON_GetArraySize(events);
	r.ids = xcalloc(r.nids + 1, sizeof(*r.ids));
	rc = store_restore_begin(st);
	for (int sec = 0; sec < nsec && !rc; sec++) {
		const cJSON *o;
		r.sec = dump_sections[sec];
		r.index = 0;
		cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(root, dump_sections[sec]))
		{
			r.index++;
			if (!cJSON_IsObject(o))
				rc = dump_bad(&r, "not an object");
			else
				rc = restore_row(&r, sec, o);
			if (rc)
				break;
		}
	}
	/* Scores, counts and former ids, derived in the same transaction. */
	struct store_roadmap_result res;
	if (!rc && bot_store_roadmaps(st, set, true, &res)) {
		snprintf(err, COHORT_ERR_LEN, "deriving the scores failed (see the log above)");
		rc = COHORT_ERR_STORE;
	}
	int end = store_restore_end(st, rc == COHORT_OK);
	if (!rc && end) {
		snprintf(err, COHORT_ERR_LEN, "committing the restore failed (see the log above)");
		rc = end;
	}
	if (rc && rc != COHORT_ERR_STORE && rc != COHORT_ERR_PARSE)
		rc = COHORT_ERR_STORE;
	free(r.ids);
	if (!rc)
		*count = r.count;
	return rc;
}

static int cmp_key(const void *pa, const void *pb)
{
	const struct record *a = pa, *b = pb;
	int c = strcmp(a->group, b->group);
	if (!c)
		c = strcmp(a->member, b->member);
	if (!c)
		c = strcmp(a->topic, b->topic);
	return c;
}

static int cmp_time(const void *pa, const void *pb)
{
	const struct record *a = pa, *b = pb;
	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	return a->line < b->line ? -1 : a->line > b->line;
}

int export_read(struct store *st, const struct rmset *set, enum export_format fmt, FILE *in,
		const char *fname, size_t *count, char *err)
{
	*count = 0;
	int64_t events;
	int rc = store_event_count(st, &events);
	if (rc)
		return rc;
	if (events) {
		snprintf(err, COHORT_ERR_LEN,
			 "the store already holds %lld %s: import restores into an empty "
			 "store (point store.path at a new file)",
			 (long long)events, text_plural((long)events, "event", "events"));
		return COHORT_ERR_USAGE;
	}
	struct strbuf text = STRBUF_INIT;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (text.len + n > EXPORT_MAX_INPUT) {
			sb_release(&text);
			snprintf(err, COHORT_ERR_LEN, "%s: larger than %d MiB", fname,
				 EXPORT_MAX_INPUT >> 20);
			return COHORT_ERR_PARSE;
		}
		sb_add(&text, buf, n);
	}
	if (ferror(in)) {
		sb_release(&text);
		snprintf(err, COHORT_ERR_LEN, "%s: cannot be read", fname);
		return COHORT_ERR_IO;
	}
	if (fmt == EXPORT_JSON) {
		/* A complete dump is an object; the arrays of records before it still import. */
		cJSON *j = cJSON_ParseWithLength(sb_str(&text), text.len);
		if (cJSON_IsObject(j)) {
			sb_release(&text);
			rc = restore_dump(st, set, j, fname, count, err);
			cJSON_Delete(j);
			return rc;
		}
		cJSON_Delete(j);
	}
	struct records rs = {NULL, 0, 0};
	rc = fmt == EXPORT_JSON ? read_json(sb_str(&text), text.len, set, fname, &rs, err)
				: read_csv(sb_str(&text), text.len, set, fname, &rs, err);
	sb_release(&text);
	if (!rc && rs.n) {
		qsort(rs.v, rs.n, sizeof(*rs.v), cmp_key);
		for (size_t i = 1; i < rs.n && !rc; i++) {
			if (!cmp_key(&rs.v[i - 1], &rs.v[i])) {
				snprintf(err, COHORT_ERR_LEN,
					 "%s:%zu: a second record for %s, %s, %s (the first is at "
					 "%zu)",
					 fname, rs.v[i].line, rs.v[i].group, rs.v[i].member,
					 rs.v[i].topic, rs.v[i - 1].line);
				rc = COHORT_ERR_PARSE;
			}
		}
	}
	if (!rc && rs.n) {
		/* Oldest first: each member's first record is when they joined. */
		qsort(rs.v, rs.n, sizeof(*rs.v), cmp_time);
		rc = store_batch_begin(st);
		for (size_t i = 0; !rc && i < rs.n; i++) {
			const struct record *r = &rs.v[i];
			struct store_change c = {r->group,  r->member, r->name, r->topic,
						 r->status, r->note,   NULL,    r->at};
			rc = store_set_status(st, &c, NULL);
		}
		/* Records under a former id move to their topic, in the same transaction. */
		struct store_roadmap_result res;
		if (!rc)
			rc = bot_store_roadmaps(st, set, true, &res);
		int end = store_batch_end(st, rc == COHORT_OK);
		rc = rc ? rc : end;
		if (rc)
			snprintf(err, COHORT_ERR_LEN,
				 "writing the records failed; nothing was "
				 "imported (see the log above)");
	}
	if (!rc)
		*count = rs.n;
	records_release(&rs);
	return rc;
}
