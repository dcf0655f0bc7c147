/*
 * A strict reader for the part of TOML that cohort's configuration uses:
 * [table] headers, bare keys, basic and literal strings (with escapes),
 * decimal integers, booleans, arrays of those, and comments. Anything else
 * (floats, dates, inline tables, dotted keys, multi-line strings) is refused
 * with a file:line message instead of being misread.
 */
#ifndef COHORT_TOML_H
#define COHORT_TOML_H

#include <stdbool.h>
#include <stddef.h>

/* Inputs larger than this are refused (a config file is a few hundred bytes). */
#define TOML_MAX_INPUT (1024 * 1024)

enum toml_type { TOML_STRING, TOML_INTEGER, TOML_BOOLEAN, TOML_ARRAY };

struct toml_value {
	enum toml_type type;
	int line;
	char *str; /* TOML_STRING: valid UTF-8, no NUL */
	long long integer;
	bool boolean;
	struct toml_value *items; /* TOML_ARRAY */
	size_t nitems;
};

struct toml_pair {
	char *key;
	int line;
	struct toml_value value;
};

struct toml_table {
	char *name; /* "" for the keys before the first header */
	int line;
	struct toml_pair *pairs;
	size_t npairs;
	size_t cap;
};

struct toml_doc {
	struct toml_table *tables;
	size_t ntables;
	size_t cap;
};

/*
 * Parses text[0..len). fname names the input in error messages. On success
 * *out is a new document the caller frees with toml_free().
 * Returns COHORT_OK, or COHORT_ERR_PARSE with "fname:line: what (how to fix)"
 * in err (COHORT_ERR_LEN bytes).
 */
int toml_parse(const char *text, size_t len, const char *fname, struct toml_doc **out, char *err);

void toml_free(struct toml_doc *doc);

/* A name for the value's type in messages: "a string", "an integer", ... */
const char *toml_type_name(enum toml_type type);

#endif
