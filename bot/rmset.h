/*
 * The roadmaps groups may choose from (DESIGN §3 roadmap.dir, §5 /roadmap):
 * the built-in backend roadmap (named "backend", always there), roadmap.file
 * when set (the default: what a group that chose none counts), and every
 * *.md in roadmap.dir, each named by its file's stem.
 */
#ifndef COHORT_RMSET_H
#define COHORT_RMSET_H

#include <stdbool.h>
#include <stddef.h>

struct roadmap;
struct rmset;

/* The most roadmaps one set holds, and the longest name (a file's stem). */
#define RMSET_MAX 100
#define RMSET_MAX_NAME 40

/*
 * Loads the set: "backend" (built in) first, then file ("" or NULL: none)
 * and the *.md files of dir ("" or NULL: none) in name order. file's roadmap
 * is the default, named by its stem ("backend.md" takes the built-in one's
 * place); else "backend" is. A file in dir that is file itself is loaded
 * once. Names are compared ignoring case; a name may hold letters, digits,
 * '-', '_' and '.', at most RMSET_MAX_NAME bytes. Every file must parse: one
 * that does not fails the whole set (a bad roadmap is refused like a bad
 * config). Returns COHORT_OK with a new set in *out, or COHORT_ERR_IO (a
 * file or dir that cannot be read), COHORT_ERR_PARSE ("file:line: what") or
 * COHORT_ERR_CONFIG (a bad name, two files with one name, more than
 * RMSET_MAX), with the file at fault and the fix in err.
 */
int rmset_load(const char *file, const char *dir, struct rmset **out, char *err);
/* A set of one roadmap (borrowed: it must outlive the set), named name, the default. */
struct rmset *rmset_of(const struct roadmap *rm, const char *name);
void rmset_free(struct rmset *s);

size_t rmset_count(const struct rmset *s);
const char *rmset_name(const struct rmset *s, size_t i);
const struct roadmap *rmset_at(const struct rmset *s, size_t i);
/* The index of the default roadmap. */
size_t rmset_default(const struct rmset *s);
/* The index of the roadmap called name (ignoring case), or -1. */
long rmset_find(const struct rmset *s, const char *name);

#endif
