/* Writes every progress record as CSV or JSON (`cohort export`). */
#ifndef COHORT_EXPORT_H
#define COHORT_EXPORT_H

#include <stdio.h>

struct store;
struct roadmap;

enum export_format { EXPORT_CSV, EXPORT_JSON };

/*
 * Writes the records of group_id (NULL: every group) to out, one per
 * (group, member, topic): group, member, member_name, topic_id, topic, status,
 * updated_at (ISO 8601 UTC) and note. Returns COHORT_OK, COHORT_ERR_STORE or
 * COHORT_ERR_IO (out failed).
 */
int export_write(struct store *st, const struct roadmap *rm, const char *group_id,
		 enum export_format fmt, FILE *out);

#endif
