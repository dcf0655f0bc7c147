/* Writes every progress record as CSV or JSON (`cohort export`). */
#ifndef COHORT_EXPORT_H
#define COHORT_EXPORT_H

#include <stdio.h>

struct store;
struct rmset;

enum export_format { EXPORT_CSV, EXPORT_JSON };

/*
 * The version of the complete JSON dump written ("version" in it). 3: goals;
 * 4: reminders; 5: the digest's frequency; 6: links; 7: groups' roadmaps.
 * Versions 2 to 6 are read too.
 */
#define EXPORT_VERSION 7

/*
 * Writes the records of group_id (NULL: every group) to out, one per
 * (group, member, topic): group, member, member_name, topic_id, topic, status,
 * updated_at (ISO 8601 UTC) and note. Returns COHORT_OK, COHORT_ERR_STORE or
 * COHORT_ERR_IO (out failed).
 */
int export_write(struct store *st, const struct rmset *set, const char *group_id,
		 enum export_format fmt, FILE *out);

/* The longest file export_read() takes, and the longest note it accepts. */
#define EXPORT_MAX_INPUT (256 * 1024 * 1024)
#define EXPORT_MAX_NOTE 500

/*
 * Restores records written by export_write() (fmt) from in, named fname in
 * messages, into a store that holds no events yet: it restores, it does not
 * merge. Every record is checked before any is written, and all are written
 * in one transaction. *count receives how many. Returns COHORT_OK,
 * COHORT_ERR_USAGE (the store is not empty), COHORT_ERR_PARSE (err names the
 * record and what is wrong with it), COHORT_ERR_IO or COHORT_ERR_STORE.
 */
int export_read(struct store *st, const struct rmset *set, enum export_format fmt, FILE *in,
		const char *fname, size_t *count, char *err);

#endif
