#include "rmset.h"

#include "lib/err.h"
#include "lib/util.h"
#include "roadmap.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct rmset_entry {
	char *name;
	struct roadmap *rm; /* NULL when borrowed */
	const struct roadmap *view;
};

struct rmset {
	struct rmset_entry *v;
	size_t n;
	size_t dflt;
};

/* A file's stem as a roadmap name: a new string. */
static char *stem_of(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > 3 && strcmp(base + n - 3, ".md") == 0)
		n -= 3;
	return xstrndup(base, n);
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > RMSET_MAX_NAME)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return false;
	return true;
}

long rmset_find(const struct rmset *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void add(struct rmset *s, char *name, struct roadmap *rm)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->v[s->n++] = (struct rmset_entry){name, rm, rm};
}

/* Loads path as roadmap name (checked) into s; replace: it may take an entry's place. */
static int add_file(struct rmset *s, const char *path, bool replace, size_t *at, char *err)
{
	char *name = stem_of(path);
	int rc = COHORT_OK;
	if (!name_ok(name)) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: \"%s\" cannot name a roadmap: rename the file to letters, digits, "
			 "'-', '_' or '.' (at most %d) followed by .md, such as frontend.md",
			 path, name, RMSET_MAX_NAME);
		free(name);
		return COHORT_ERR_CONFIG;
	}
	long same = rmset_find(s, name);
	if (same >= 0 && !replace) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: a roadmap named \"%s\" is loaded already (%s): two roadmaps cannot "
			 "share a name; rename one of the files",
			 path, s->v[same].name,
			 s->v[same].rm ? roadmap_source(s->v[same].rm) : "built in");
		free(name);
		return COHORT_ERR_CONFIG;
	}
	if (s->n >= RMSET_MAX && same < 0) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: more than %d roadmaps: keep at most %d *.md files in roadmap.dir", path,
			 RMSET_MAX, RMSET_MAX);
		free(name);
		return COHORT_ERR_CONFIG;
	}
	struct roadmap *rm;
	rc = roadmap_load_file(path, &rm, err);
	if (rc) {
		free(name);
		return rc;
	}
	if (same >= 0) {
		roadmap_free(s->v[same].rm);
		free(s->v[same].name);
		s->v[same] = (struct rmset_entry){name, rm, rm};
		*at = (size_t)same;
	} else {
		add(s, name, rm);
		*at = s->n - 1;
	}
	return COHORT_OK;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.md files of dir, sorted; *n receives how many. */
static int list_dir(const char *dir, char ***out, size_t *n, char *err)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: cannot read roadmap.dir: %s (make it a folder of *.md roadmaps, or "
			 "set roadmap.dir = \"\")",
			 dir, strerror(errno));
		return COHORT_ERR_IO;
	}
	struct dirent *e;
	char **v = NULL;
	size_t k = 0;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len <= 3 || strcmp(e->d_name + len - 3, ".md") != 0)
			continue;
		v = xrealloc(v, (k + 1) * sizeof(*v));
		v[k++] = xasprintf("%s/%s", dir, e->d_name);
	}
	closedir(d);
	if (k)
		qsort(v, k, sizeof(*v), by_name);
	*out = v;
	*n = k;
	return COHORT_OK;
}

/* Whether paths a and b name one file. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int rmset_load(const char *file, const char *dir, struct rmset **out, char *err)
{
	*out = NULL;
	struct rmset *s = xcalloc(1, sizeof(*s));
	struct roadmap *builtin;
	char **files = NULL;
	size_t nfiles = 0;
	int rc = roadmap_load_default(&builtin, err);
	if (rc)
		goto out;
	add(s, xstrdup("backend"), builtin);
	if (file && *file) {
		/* A file named backend.md takes the built-in one's place (what it always did). */
		rc = add_file(s, file, true, &s->dflt, err);
	}
	if (!rc && dir && *dir)
		rc = list_dir(dir, &files, &nfiles, err);
	for (size_t i = 0; !rc && i < nfiles; i++) {
		if (file && *file && same_file(files[i], file))
			continue;
		size_t at;
		rc = add_file(s, files[i], false, &at, err);
	}
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	if (rc) {
		rmset_free(s);
		return rc;
	}
	*out = s;
	return COHORT_OK;
}

struct rmset *rmset_of(const struct roadmap *rm, const char *name)
{
	struct rmset *s = xcalloc(1, sizeof(*s));
	s->v = xcalloc(1, sizeof(*s->v));
	s->v[0] = (struct rmset_entry){xstrdup(name), NULL, rm};
	s->n = 1;
	return s;
}

void rmset_free(struct rmset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		roadmap_free(s->v[i].rm);
	}
	free(s->v);
	free(s);
}

size_t rmset_count(const struct rmset *s)
{
	return s->n;
}

const char *rmset_name(const struct rmset *s, size_t i)
{
	return s->v[i].name;
}

const struct roadmap *rmset_at(const struct rmset *s, size_t i)
{
	return s->v[i].view;
}

size_t rmset_default(const struct rmset *s)
{
	return s->dflt;
}
