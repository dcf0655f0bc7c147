#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/text.h"

#include <stdlib.h>
#include <string.h>

static void key_ignores_case_and_punctuation(void **state)
{
	(void)state;
	const char *same[] = {"RabbitMQ", "rabbit mq", "Rabbit-MQ!", " rabbitmq "};
	for (size_t i = 0; i < 4; i++) {
		char *k = text_key(same[i]);
		assert_string_equal(k, "rabbitmq");
		free(k);
	}
	char *k = text_key("Caf\xc3\xa9 I/O");
	assert_string_equal(k, "caf\xc3\xa9io");
	free(k);
	/* Invisible characters (zero-width space, joiners, BOM, bidi overrides) do not count. */
	k = text_key("Ka\xe2\x80\x8b"
		     "f\xe2\x80\x8dk\xef\xbb\xbf"
		     "a\xe2\x80\xae");
	assert_string_equal(k, "kafka");
	free(k);
	k = text_key("\xe2\x80"); /* a truncated sequence is kept, not overread */
	assert_string_equal(k, "\xe2\x80");
	free(k);
}

static void slug_joins_words_with_dashes(void **state)
{
	(void)state;
	struct {
		const char *in, *out;
	} cases[] = {{"PostgreSQL", "postgresql"},
		     {"CI / CD", "ci-cd"},
		     {"Node.js", "node-js"},
		     {"How OSs work in General", "how-oss-work-in-general"},
		     {"  Instrumentation, Monitoring, and Telemetry ",
		      "instrumentation-monitoring-and-telemetry"},
		     {"!!!", ""}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = text_slug(cases[i].in);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
}

static void distance_counts_edits(void **state)
{
	(void)state;
	assert_int_equal(text_distance("kafka", "kafka", 3), 0);
	assert_int_equal(text_distance("kubernets", "kubernetes", 3), 1);
	assert_int_equal(text_distance("rdeis", "redis", 3), 1); /* transposition */
	assert_int_equal(text_distance("", "abc", 5), 3);
	assert_int_equal(text_distance("abcdef", "uvwxyz", 2), 3); /* capped at max + 1 */
	assert_int_equal(text_distance("a", "abcdefgh", 3), 4);
}

static void utf8_validation(void **state)
{
	(void)state;
	const char *ok = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x8e\x89";
	assert_true(text_utf8_valid(ok, strlen(ok)));
	assert_false(text_utf8_valid("\xc3", 1));             /* truncated */
	assert_false(text_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(text_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(text_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(text_utf8_valid("\xff", 1));
}

static void printable_replaces_controls(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	text_add_printable(&sb, "a\x1b[2Jb\nc\xff\xc2\x9b", false);
	assert_string_equal(sb_str(&sb), "a\xef\xbf\xbd[2Jb\xef\xbf\xbd"
					 "c\xef\xbf\xbd\xef\xbf\xbd");
	sb_release(&sb);
	text_add_printable(&sb, "x\ny", true);
	assert_string_equal(sb_str(&sb), "x\ny");
	sb_release(&sb);
	/* A right-to-left override would make the rest of the line read backwards. */
	text_add_printable(&sb,
			   "ana\xe2\x80\xae"
			   "evil\xe2\x81\xa6",
			   false);
	assert_string_equal(sb_str(&sb), "ana\xef\xbf\xbd"
					 "evil\xef\xbf\xbd");
	sb_release(&sb);
}

static void bars_and_percent(void **state)
{
	(void)state;
	assert_int_equal(text_percent(23, 84), 27);
	assert_int_equal(text_percent(0, 0), 0);
	assert_int_equal(text_percent(84, 84), 100);
	struct strbuf sb = STRBUF_INIT;
	text_bar(&sb, 1, 84, 4); /* any progress shows one cell */
	assert_string_equal(sb_str(&sb), "\u2588\u2591\u2591\u2591");
	sb_release(&sb);
	text_bar(&sb, 2, 4, 4);
	assert_string_equal(sb_str(&sb), "\u2588\u2588\u2591\u2591");
	sb_release(&sb);
	assert_int_equal(text_width("\u2588ab"), 3);
}

static void display_width_counts_columns(void **state)
{
	(void)state;
	struct {
		const char *s;
		size_t w;
	} cases[] = {
		{"", 0},
		{"ana", 3},
		{"\u00e9milie_\u00e7\u00e0", 9},    /* precomposed: one column each */
		{"e\u0301milie_c\u0327a\u0300", 9}, /* combining marks: none */
		{"\u65e5\u672c", 4},                /* East Asian wide: two each */
		{"\u65e5\u672c\u8a9e x", 8},
		{"\uac00\ud7a3", 4},         /* Hangul syllables */
		{"\uff21\uff22", 4},         /* fullwidth Latin */
		{"\U0001f389!", 3},          /* emoji */
		{"\U00020000", 2},           /* CJK extension B */
		{"a\u200bb\u200d\ufeff", 2}, /* zero-width characters */
		{"\u2588\u2591", 2},         /* block elements are narrow */
		{"a\x01"
		 "b",
		 2},             /* a control shows nothing */
		{"\xff\xc3", 2}, /* a byte that is not UTF-8: one */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (text_display_width(cases[i].s) != cases[i].w)
			fail_msg("\"%s\": %zu columns, not %zu", cases[i].s,
				 text_display_width(cases[i].s), cases[i].w);
}

static void padding_lines_up_by_columns(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	const char *names[] = {"ana", "\u00e9milie_\u00e7\u00e0", "\u65e5\u672c", "e\u0301"};
	size_t bytes_before_bar[4];
	for (size_t i = 0; i < 4; i++) {
		sb_truncate(&sb, 0);
		text_add_padded(&sb, names[i], 10);
		assert_int_equal(text_display_width(sb_str(&sb)), 10);
		bytes_before_bar[i] = sb.len;
	}
	assert_int_equal(bytes_before_bar[0], 10);
	assert_int_equal(bytes_before_bar[2], 6 + 6); /* 4 columns of text, 6 spaces */
	sb_truncate(&sb, 0);
	text_add_padded(&sb, "longer than four", 4); /* never cut */
	assert_string_equal(sb_str(&sb), "longer than four");
	sb_release(&sb);
	assert_string_equal(text_plural(1, "topic", "topics"), "topic");
	assert_string_equal(text_plural(0, "topic", "topics"), "topics");
	assert_string_equal(text_plural(2, "topic", "topics"), "topics");
}

static void trim_and_compare(void **state)
{
	(void)state;
	char s[] = " \t hello world \r\n";
	assert_string_equal(text_trim(s), "hello world");
	assert_true(text_ieq("Week", "wEEK"));
	assert_false(text_ieq("week", "weeks"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_ignores_case_and_punctuation),
		cmocka_unit_test(slug_joins_words_with_dashes),
		cmocka_unit_test(distance_counts_edits),
		cmocka_unit_test(utf8_validation),
		cmocka_unit_test(printable_replaces_controls),
		cmocka_unit_test(bars_and_percent),
		cmocka_unit_test(display_width_counts_columns),
		cmocka_unit_test(padding_lines_up_by_columns),
		cmocka_unit_test(trim_and_compare),
	};
	return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
