#include "export.h"

#include "bot.h"
#include "clock.h"
#include "err.h"
#include "roadmap.h"
#include "text.h"
#include "store/store.h"
#include "util.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct export_ctx {
	const struct roadmap *rm;
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
	long t = roadmap_find_id(c->rm, row->topic_id);
	const char *topic = t >= 0 ? roadmap_topic(c->rm, (size_t)t)->name : "";
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

int export_write(struct store *st, const struct roadmap *rm, const char *group_id,
		 enum export_format fmt, FILE *out)
{
	struct export_ctx c = {rm, fmt, out, 0};
	if (fmt == EXPORT_CSV)
		fputs("group,member,member_name,topic_id,topic,status,updated_at,note\r\n", out);
	else
		fputs("[", out);
	int rc = store_export(st, group_id, write_row, &c);
	if (fmt == EXPORT_JSON)
		fputs(c.n ? "\n]\n" : "]\n", out);
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

/* Whether id is a former id of a topic on rm ("was:"). */
static bool former_id(const struct roadmap *rm, const char *id)
{
	for (size_t i = 0; i < roadmap_topic_count(rm); i++) {
		const struct rm_topic *t = roadmap_topic(rm, i);
		for (size_t k = 0; k < t->nformer; k++)
			if (strcmp(t->former[k], id) == 0)
				return true;
	}
	return false;
}

/* Checks one record's fields and adds it; COHORT_ERR_PARSE with the reason in err. */
static int add_record(struct records *rs, const struct roadmap *rm, const char *const *f,
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
	if (roadmap_find_id(rm, f[F_TOPIC_ID]) < 0 && *f[F_TOPIC] && !former_id(rm, f[F_TOPIC_ID]))
		BAD("topic_id \"%.80s\" (\"%.80s\") is not on the roadmap (%s); load the roadmap "
		    "the export was made with, or name the topic's old id with \"was:\" in it",
		    f[F_TOPIC_ID], f[F_TOPIC], roadmap_source(rm));
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
	if (!clock_parse_iso(f[F_UPDATED], &at))
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

static int read_json(const char *text, size_t len, const struct roadmap *rm, const char *fname,
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
		rc = add_record(rs, rm, f, fname, ++i, err);
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

static int read_csv(const char *text, size_t len, const struct roadmap *rm, const char *fname,
		    struct records *rs, char *err)
{
	struct strbuf fields[F_COUNT + 1];
	memset(fields, 0, sizeof(fields));
	const char *p = text, *end = text + len;
	size_t line = 1;
	int n, rc = COHORT_OK;
	bool bad, header = true;
	while (!rc) {
		size_t at = line;
		if (!csv_record(&p, end, fields, &n, &line, &bad))
			break;
		if (n == 1 && !fields[0].len && !bad)
			continue; /* a blank line */
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
		rc = add_record(rs, rm, f, fname, at, err);
	}
	if (!rc && header) {
		snprintf(err, COHORT_ERR_LEN, "%s: empty (no CSV header)", fname);
		rc = COHORT_ERR_PARSE;
	}
	for (int k = 0; k <= F_COUNT; k++)
		sb_release(&fields[k]);
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

int export_read(struct store *st, const struct roadmap *rm, enum export_format fmt, FILE *in,
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
	struct records rs = {NULL, 0, 0};
	rc = fmt == EXPORT_JSON ? read_json(sb_str(&text), text.len, rm, fname, &rs, err)
				: read_csv(sb_str(&text), text.len, rm, fname, &rs, err);
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
		int end = store_batch_end(st, rc == COHORT_OK);
		rc = rc ? rc : end;
		/* Records under a former id move to their topic, as at a start. */
		struct store_roadmap_result res;
		if (!rc)
			rc = bot_store_roadmap(st, rm, true, &res);
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
