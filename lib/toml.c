#include "toml.h"

#include "err.h"
#include "text.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *p;
	const char *end;
	const char *fname;
	int line;
	char *err;
};

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
	int n = snprintf(ps->err, COHORT_ERR_LEN, "%s:%d: ", ps->fname, ps->line);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && n < COHORT_ERR_LEN)
		vsnprintf(ps->err + n, COHORT_ERR_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	return COHORT_ERR_PARSE;
}

static void value_release(struct toml_value *v)
{
	free(v->str);
	for (size_t i = 0; i < v->nitems; i++)
		value_release(&v->items[i]);
	free(v->items);
}

void toml_free(struct toml_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->ntables; i++) {
		struct toml_table *t = &doc->tables[i];
		for (size_t j = 0; j < t->npairs; j++) {
			free(t->pairs[j].key);
			value_release(&t->pairs[j].value);
		}
		free(t->pairs);
		free(t->name);
	}
	free(doc->tables);
	free(doc);
}

const char *toml_type_name(enum toml_type type)
{
	switch (type) {
	case TOML_STRING: return "a string";
	case TOML_INTEGER: return "an integer";
	case TOML_BOOLEAN: return "a boolean";
	case TOML_ARRAY: return "an array";
	}
	return "a value";
}

static bool at_end(const struct parser *ps)
{
	return ps->p >= ps->end;
}

static void skip_ws(struct parser *ps)
{
	while (!at_end(ps) && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

static void skip_comment(struct parser *ps)
{
	if (!at_end(ps) && *ps->p == '#')
		while (!at_end(ps) && *ps->p != '\n')
			ps->p++;
}

/* After a header or value: only white space and a comment may remain on the line. */
static int expect_eol(struct parser *ps, const char *after)
{
	skip_ws(ps);
	skip_comment(ps);
	if (at_end(ps))
		return COHORT_OK;
	if (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
		ps->p++;
	if (*ps->p != '\n')
		return fail(ps,
			    "unexpected text after %s (put one key = value on each line; "
			    "start comments with #)",
			    after);
	ps->p++;
	ps->line++;
	return COHORT_OK;
}

static bool is_bare(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int parse_key(struct parser *ps, char **out, const char *what)
{
	const char *start = ps->p;
	while (!at_end(ps) && is_bare(*ps->p))
		ps->p++;
	if (ps->p == start) {
		if (!at_end(ps) && (*ps->p == '"' || *ps->p == '\''))
			return fail(
				ps,
				"quoted %s names are not supported (use letters, digits, _ and -)",
				what);
		return fail(ps, "expected a %s name (letters, digits, _ and -)", what);
	}
	if (!at_end(ps) && *ps->p == '.')
		return fail(ps, "dotted %s names are not supported (use a [table] header instead)",
			    what);
	*out = xstrndup(start, (size_t)(ps->p - start));
	return COHORT_OK;
}

static void put_utf8(struct strbuf *sb, unsigned long cp)
{
	char b[4];
	if (cp < 0x80) {
		b[0] = (char)cp;
		sb_add(sb, b, 1);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 3);
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 4);
	}
}

static int parse_escape(struct parser *ps, struct strbuf *sb)
{
	if (at_end(ps))
		return fail(ps, "unterminated string (add the closing \")");
	char c = *ps->p++;
	switch (c) {
	case 'b': sb_addc(sb, '\b'); return COHORT_OK;
	case 't': sb_addc(sb, '\t'); return COHORT_OK;
	case 'n': sb_addc(sb, '\n'); return COHORT_OK;
	case 'f': sb_addc(sb, '\f'); return COHORT_OK;
	case 'r': sb_addc(sb, '\r'); return COHORT_OK;
	case '"': sb_addc(sb, '"'); return COHORT_OK;
	case '\\': sb_addc(sb, '\\'); return COHORT_OK;
	case 'u':
	case 'U': {
		int digits = c == 'u' ? 4 : 8;
		unsigned long cp = 0;
		for (int i = 0; i < digits; i++) {
			if (at_end(ps))
				return fail(ps, "\\%c needs %d hex digits", c, digits);
			char h = *ps->p++;
			int v;
			if (h >= '0' && h <= '9')
				v = h - '0';
			else if (h >= 'a' && h <= 'f')
				v = h - 'a' + 10;
			else if (h >= 'A' && h <= 'F')
				v = h - 'A' + 10;
			else
				return fail(ps, "\\%c needs %d hex digits", c, digits);
			cp = cp * 16 + (unsigned long)v;
		}
		if (cp == 0)
			return fail(ps, "\\u0000 is not allowed in a string");
		if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return fail(ps, "\\%c escape is not a Unicode scalar value", c);
		put_utf8(sb, cp);
		return COHORT_OK;
	}
	default: return fail(ps, "unknown escape \\%c in a string (write \\\\ for a backslash)", c);
	}
}

static int parse_string(struct parser *ps, struct toml_value *v)
{
	char quote = *ps->p++;
	if (ps->end - ps->p >= 2 && ps->p[0] == quote && ps->p[1] == quote)
		return fail(ps, "multi-line strings are not supported");
	struct strbuf sb = STRBUF_INIT;
	int rc;
	for (;;) {
		if (at_end(ps) || *ps->p == '\n') {
			rc = fail(ps, "unterminated string (add the closing %c on the same line)",
				  quote);
			goto out;
		}
		char c = *ps->p++;
		if (c == quote)
			break;
		if (c == '\\' && quote == '"') {
			rc = parse_escape(ps, &sb);
			if (rc)
				goto out;
			continue;
		}
		if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
			rc = fail(ps, "control character in a string (use an escape such as \\n)");
			goto out;
		}
		sb_addc(&sb, c);
	}
	if (!text_utf8_valid(sb_str(&sb), sb.len)) {
		rc = fail(ps, "string is not valid UTF-8");
		goto out;
	}
	v->type = TOML_STRING;
	v->str = sb_detach(&sb);
	return COHORT_OK;
out:
	sb_release(&sb);
	return rc;
}

static int parse_integer(struct parser *ps, struct toml_value *v)
{
	const char *start = ps->p;
	while (!at_end(ps) && (is_bare(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':'))
		ps->p++;
	size_t n = (size_t)(ps->p - start);
	char buf[64];
	size_t j = 0;
	size_t i = 0;
	if (n && (start[0] == '+' || start[0] == '-'))
		buf[j++] = start[i++];
	if (i == n)
		return fail(ps,
			    "expected a value (a \"string\", a number, true, false or [ ... ])");
	bool prev_digit = false;
	for (; i < n; i++) {
		char c = start[i];
		if (c >= '0' && c <= '9' && j < sizeof(buf) - 1) {
			buf[j++] = c;
			prev_digit = true;
		} else if (c == '_' && prev_digit && i + 1 < n && start[i + 1] >= '0' &&
			   start[i + 1] <= '9') {
			prev_digit = false;
		} else {
			const char *d = start + (start[0] == '+' || start[0] == '-');
			bool numeric = *d >= '0' && *d <= '9';
			if (numeric && (memchr(start, ':', n) || (n >= 5 && start[4] == '-')))
				return fail(ps, "dates and times are not supported (write them as "
						"a \"string\")");
			if ((numeric && (memchr(start, '.', n) || memchr(start, 'e', n) ||
					 memchr(start, 'E', n))) ||
			    (n - (size_t)(d - start) >= 3 &&
			     (memcmp(d, "inf", 3) == 0 || memcmp(d, "nan", 3) == 0)))
				return fail(
					ps,
					"floating-point values are not supported (use an integer)");
			return fail(ps, "invalid value '%.*s' (strings need quotes: \"%.*s\")",
				    (int)(n > 40 ? 40 : n), start, (int)(n > 40 ? 40 : n), start);
		}
	}
	buf[j] = '\0';
	const char *digits = buf + (buf[0] == '+' || buf[0] == '-');
	if (digits[0] == '0' && digits[1] != '\0')
		return fail(ps, "integers may not have leading zeros");
	errno = 0;
	long long x = strtoll(buf, NULL, 10);
	if (errno == ERANGE)
		return fail(ps, "integer out of range");
	v->type = TOML_INTEGER;
	v->integer = x;
	return COHORT_OK;
}

static int parse_value(struct parser *ps, struct toml_value *v, int depth);

static int parse_array(struct parser *ps, struct toml_value *v, int depth)
{
	ps->p++; /* [ */
	v->type = TOML_ARRAY;
	size_t cap = 0;
	for (;;) {
		/* White space, newlines and comments may stand between elements. */
		for (;;) {
			skip_ws(ps);
			skip_comment(ps);
			if (!at_end(ps) && (*ps->p == '\n' || *ps->p == '\r')) {
				if (*ps->p == '\n')
					ps->line++;
				ps->p++;
				continue;
			}
			break;
		}
		if (at_end(ps))
			return fail(ps, "unterminated array (add the closing ])");
		if (*ps->p == ']') {
			ps->p++;
			return COHORT_OK;
		}
		grow_array((void **)&v->items, &cap, v->nitems + 1, sizeof(*v->items));
		struct toml_value *item = &v->items[v->nitems];
		memset(item, 0, sizeof(*item));
		v->nitems++;
		int rc = parse_value(ps, item, depth + 1);
		if (rc)
			return rc;
		if (item->type != v->items[0].type)
			return fail(ps, "array elements must all have the same type");
		for (;;) {
			skip_ws(ps);
			skip_comment(ps);
			if (!at_end(ps) && (*ps->p == '\n' || *ps->p == '\r')) {
				if (*ps->p == '\n')
					ps->line++;
				ps->p++;
				continue;
			}
			break;
		}
		if (!at_end(ps) && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (!at_end(ps) && *ps->p == ']')
			continue;
		if (at_end(ps))
			return fail(ps, "unterminated array (add the closing ])");
		return fail(ps, "expected , or ] in an array");
	}
}

static int parse_value(struct parser *ps, struct toml_value *v, int depth)
{
	v->line = ps->line;
	if (at_end(ps) || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '#')
		return fail(ps, "missing value after = (for an empty string write \"\")");
	char c = *ps->p;
	if (c == '"' || c == '\'')
		return parse_string(ps, v);
	if (c == '[') {
		if (depth > 0)
			return fail(ps, "nested arrays are not supported");
		return parse_array(ps, v, depth);
	}
	if (c == '{')
		return fail(ps, "inline tables are not supported (use a [table] header)");
	static const char t[] = "true", f[] = "false";
	size_t left = (size_t)(ps->end - ps->p);
	if (left >= 4 && memcmp(ps->p, t, 4) == 0 && (left == 4 || !is_bare(ps->p[4]))) {
		ps->p += 4;
		v->type = TOML_BOOLEAN;
		v->boolean = true;
		return COHORT_OK;
	}
	if (left >= 5 && memcmp(ps->p, f, 5) == 0 && (left == 5 || !is_bare(ps->p[5]))) {
		ps->p += 5;
		v->type = TOML_BOOLEAN;
		v->boolean = false;
		return COHORT_OK;
	}
	return parse_integer(ps, v);
}

static struct toml_table *add_table(struct toml_doc *doc, char *name, int line)
{
	grow_array((void **)&doc->tables, &doc->cap, doc->ntables + 1, sizeof(*doc->tables));
	struct toml_table *t = &doc->tables[doc->ntables++];
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->line = line;
	return t;
}

static int parse_header(struct parser *ps, struct toml_doc *doc, struct toml_table **cur)
{
	ps->p++; /* [ */
	if (!at_end(ps) && *ps->p == '[')
		return fail(ps, "arrays of tables ([[...]]) are not supported");
	skip_ws(ps);
	char *name = NULL;
	int rc = parse_key(ps, &name, "table");
	if (rc)
		return rc;
	skip_ws(ps);
	if (at_end(ps) || *ps->p != ']') {
		free(name);
		return fail(ps, "expected ] to close the table header");
	}
	ps->p++;
	for (size_t i = 0; i < doc->ntables; i++) {
		if (strcmp(doc->tables[i].name, name) == 0 && doc->tables[i].line > 0) {
			rc = fail(ps, "table [%s] is defined twice (first on line %d); merge them",
				  name, doc->tables[i].line);
			free(name);
			return rc;
		}
	}
	*cur = add_table(doc, name, ps->line);
	return expect_eol(ps, "the table header");
}

static int parse_pair(struct parser *ps, struct toml_table *cur)
{
	char *key = NULL;
	int line = ps->line;
	int rc = parse_key(ps, &key, "key");
	if (rc)
		return rc;
	for (size_t i = 0; i < cur->npairs; i++) {
		if (strcmp(cur->pairs[i].key, key) == 0) {
			rc = fail(ps, "key \"%s\" is set twice (first on line %d); keep one", key,
				  cur->pairs[i].line);
			free(key);
			return rc;
		}
	}
	skip_ws(ps);
	if (at_end(ps) || *ps->p != '=') {
		free(key);
		return fail(ps, "expected = after the key name");
	}
	ps->p++;
	skip_ws(ps);
	grow_array((void **)&cur->pairs, &cur->cap, cur->npairs + 1, sizeof(*cur->pairs));
	struct toml_pair *pair = &cur->pairs[cur->npairs++];
	memset(pair, 0, sizeof(*pair));
	pair->key = key;
	pair->line = line;
	rc = parse_value(ps, &pair->value, 0);
	if (rc)
		return rc;
	return expect_eol(ps, "the value");
}

int toml_parse(const char *text, size_t len, const char *fname, struct toml_doc **out, char *err)
{
	struct parser ps = {text, text + len, fname, 1, err};
	*out = NULL;
	if (len > TOML_MAX_INPUT)
		return fail(&ps, "file is larger than %d bytes", TOML_MAX_INPUT);
	if (memchr(text, '\0', len))
		return fail(&ps, "file contains a NUL byte (is it a text file?)");
	struct toml_doc *doc = xcalloc(1, sizeof(*doc));
	struct toml_table *cur = add_table(doc, xstrdup(""), 0);
	int rc = COHORT_OK;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		ps.p += 3; /* a UTF-8 byte order mark */
	while (!at_end(&ps)) {
		skip_ws(&ps);
		if (at_end(&ps))
			break;
		char c = *ps.p;
		if (c == '#' || c == '\n' || c == '\r') {
			rc = expect_eol(&ps, "the comment");
		} else if (c == '[') {
			rc = parse_header(&ps, doc, &cur);
		} else {
			rc = parse_pair(&ps, cur);
		}
		if (rc)
			break;
	}
	if (rc) {
		toml_free(doc);
		return rc;
	}
	*out = doc;
	return COHORT_OK;
}
