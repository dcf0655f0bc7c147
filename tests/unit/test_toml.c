#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/toml.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct toml_doc *parse_ok(const char *text)
{
	char err[COHORT_ERR_LEN] = "";
	struct toml_doc *doc = NULL;
	int rc = toml_parse(text, strlen(text), "t.toml", &doc, err);
	if (rc)
		fail_msg("unexpected parse error: %s", err);
	return doc;
}

static const struct toml_pair *pair(const struct toml_doc *doc, const char *table, const char *key)
{
	for (size_t i = 0; i < doc->ntables; i++)
		if (strcmp(doc->tables[i].name, table) == 0)
			for (size_t j = 0; j < doc->tables[i].npairs; j++)
				if (strcmp(doc->tables[i].pairs[j].key, key) == 0)
					return &doc->tables[i].pairs[j];
	fail_msg("no %s.%s", table, key);
	return NULL;
}

static void reads_every_supported_form(void **state)
{
	(void)state;
	struct toml_doc *doc = parse_ok("# comment\n"
					"[store]\n"
					"path = \"a \\\"b\\\" \\u00e9\\n\" # trailing\n"
					"lit = 'C:\\no\\escapes'\n"
					"n = -1_000\n"
					"zero = 0\n"
					"on = true\n"
					"off = false\r\n"
					"\n"
					"[discord]\n"
					"ids = [\n  \"1\", # one\n  \"2\",\n]\n"
					"empty = []\n");
	assert_string_equal(pair(doc, "store", "path")->value.str, "a \"b\" \xc3\xa9\n");
	assert_string_equal(pair(doc, "store", "lit")->value.str, "C:\\no\\escapes");
	assert_int_equal(pair(doc, "store", "n")->value.integer, -1000);
	assert_int_equal(pair(doc, "store", "zero")->value.integer, 0);
	assert_true(pair(doc, "store", "on")->value.boolean);
	assert_false(pair(doc, "store", "off")->value.boolean);
	assert_int_equal(pair(doc, "store", "off")->line, 8);
	const struct toml_value *ids = &pair(doc, "discord", "ids")->value;
	assert_int_equal(ids->type, TOML_ARRAY);
	assert_int_equal(ids->nitems, 2);
	assert_string_equal(ids->items[1].str, "2");
	assert_int_equal(pair(doc, "discord", "empty")->value.nitems, 0);
	assert_int_equal(pair(doc, "discord", "empty")->line, 15);
	toml_free(doc);
}

/* Each broken input must fail at the given line with a message containing `want`. */
static void refuses_what_it_does_not_support(void **state)
{
	(void)state;
	struct {
		const char *text;
		int line;
		const char *want;
	} cases[] = {
		{"[a]\nk = \"open\n", 2, "unterminated string"},
		{"[a]\nk = \"bad \\q\"\n", 2, "unknown escape"},
		{"[a]\nk = \"x\"\nk = \"y\"\n", 3, "set twice (first on line 2)"},
		{"[a]\n[b]\n[a]\n", 3, "defined twice"},
		{"[a]\nk = 1.5\n", 2, "floating-point"},
		{"[a]\nk = 2026-01-01\n", 2, "dates and times"},
		{"[a]\nk = {x = 1}\n", 2, "inline tables"},
		{"[a]\nk =\n", 2, "missing value"},
		{"[a]\nk = \"v\" extra\n", 2, "unexpected text"},
		{"[a]\nk = [[\"x\"]]\n", 2, "nested arrays"},
		{"[a]\nk = [\"x\", 1]\n", 2, "same type"},
		{"[a]\nk = 007\n", 2, "leading zeros"},
		{"[a]\nk = \"\\u0000\"\n", 2, "not allowed"},
		{"[a]\nk = \"\\ud800\"\n", 2, "not a Unicode scalar"},
		{"[a]\nk = \"a\x01\"\n", 2, "control character"},
		{"[a]\nk = \"\xff\"\n", 2, "not valid UTF-8"},
		{"[a]\nk = bare\n", 2, "strings need quotes"},
		{"[a]\na.b = 1\n", 2, "dotted key"},
		{"[a]\n\"k\" = 1\n", 2, "quoted key"},
		{"[[a]]\n", 1, "arrays of tables"},
		{"[a\n", 1, "expected ]"},
		{"[a]\nk = [\"x\"\n", 3, "unterminated array"},
		{"[a]\nk \"v\"\n", 2, "expected ="},
		{"[a]\nk = \"\"\"x\"\"\"\n", 2, "multi-line strings"},
		{"[a]\nk = 99999999999999999999\n", 2, "out of range"},
		{"[a]\nk = '''x'''\n", 2, "multi-line strings"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[COHORT_ERR_LEN] = "";
		struct toml_doc *doc = NULL;
		int rc = toml_parse(cases[i].text, strlen(cases[i].text), "t.toml", &doc, err);
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "t.toml:%d: ", cases[i].line);
		if (rc != COHORT_ERR_PARSE || doc || strncmp(err, prefix, strlen(prefix)) != 0 ||
		    !strstr(err, cases[i].want))
			fail_msg("case %zu: rc=%d err=\"%s\", wanted \"%s...%s\"", i, rc, err,
				 prefix, cases[i].want);
	}
}

static void refuses_binary_and_huge_input(void **state)
{
	(void)state;
	char err[COHORT_ERR_LEN];
	struct toml_doc *doc;
	assert_int_equal(toml_parse("a = 1\0b", 7, "t.toml", &doc, err), COHORT_ERR_PARSE);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(toml_parse("", (size_t)TOML_MAX_INPUT + 1, "t.toml", &doc, err),
			 COHORT_ERR_PARSE);
	assert_non_null(strstr(err, "larger than"));
}

static void accepts_empty_input_and_bom(void **state)
{
	(void)state;
	struct toml_doc *doc = parse_ok("");
	assert_int_equal(doc->ntables, 1);
	assert_int_equal(doc->tables[0].npairs, 0);
	toml_free(doc);
	doc = parse_ok("\xef\xbb\xbf[log]\nlevel = \"debug\"\n");
	assert_string_equal(pair(doc, "log", "level")->value.str, "debug");
	toml_free(doc);
}

static void parse_one(const char *data, size_t len)
{
	char err[COHORT_ERR_LEN];
	struct toml_doc *doc = NULL;
	if (toml_parse(data, len, "regression.toml", &doc, err) == COHORT_OK)
		toml_free(doc);
	else
		assert_null(doc);
}

static void inputs_that_once_crashed_the_fuzzer(void **state)
{
	(void)state;
	assert_true(replay_dir("tests/fuzz/regressions/toml", parse_one) >= 1);
	/* The first one: "ogl=i" read past the end checking for "inf". */
	char *exact = malloc(5);
	memcpy(exact, "ogl=i", 5);
	char err[COHORT_ERR_LEN];
	struct toml_doc *doc = NULL;
	assert_int_equal(toml_parse(exact, 5, "t.toml", &doc, err), COHORT_ERR_PARSE);
	assert_non_null(strstr(err, "strings need quotes"));
	free(exact);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_every_supported_form),
		cmocka_unit_test(refuses_what_it_does_not_support),
		cmocka_unit_test(refuses_binary_and_huge_input),
		cmocka_unit_test(accepts_empty_input_and_bom),
		cmocka_unit_test(inputs_that_once_crashed_the_fuzzer),
	};
	return cmocka_run_group_tests_name("toml", tests, NULL, NULL);
}
