/*
 * Replays every file in a folder through fn, each in a heap buffer of exactly
 * its size (no NUL after it), so a read past the end shows under ASan. Used
 * for the inputs the fuzzers once crashed on (tests/fuzz/regressions/NAME).
 */
#ifndef COHORT_TEST_REPLAY_H
#define COHORT_TEST_REPLAY_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns how many files were replayed, or -1 when the folder cannot be read. */
static inline int replay_dir(const char *dir, void (*fn)(const char *data, size_t len))
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		rewind(f);
		char *buf = malloc(size > 0 ? (size_t)size : 1);
		size_t got = fread(buf, 1, (size_t)size, f);
		fclose(f);
		fn(buf, got);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

#endif
