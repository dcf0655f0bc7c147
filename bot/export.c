#include "export.h"

#include "err.h"
#include "roadmap.h"
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

/* RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled. */
static void csv_field(FILE *out, const char *s, bool last)
{
	if (strpbrk(s, ",\"\r\n")) {
		fputc('"', out);
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
