#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot/clock.h"

#include <string.h>

/* 2026-03-29 is the day Europe/Berlin moves from CET (+1) to CEST (+2). */
#define BERLIN_DST_DAY_NOON_UTC 1774785600000LL /* 2026-03-29T12:00:00Z */
#define MS_PER_HOUR 3600000LL

static void zones_are_validated(void **state)
{
	(void)state;
	assert_true(tz_valid("UTC"));
	assert_true(tz_valid("Europe/Berlin"));
	assert_true(tz_valid("America/New_York"));
	assert_false(tz_valid("Mars/Olympus"));
	assert_false(tz_valid("../../etc/passwd"));
	assert_false(tz_valid("/etc/localtime"));
	assert_false(tz_valid(""));
	assert_false(tz_valid("Europe/Berlin; rm"));
}

static void day_start_is_local_midnight(void **state)
{
	(void)state;
	int64_t t = BERLIN_DST_DAY_NOON_UTC;
	/* Midnight before the switch is still CET: 2026-03-28T23:00Z. */
	assert_int_equal(tz_day_start("Europe/Berlin", t, 0), 1774738800000LL);
	/* The next local day starts 23 hours later (the DST day is short). */
	assert_int_equal(tz_day_start("Europe/Berlin", t, 1) - tz_day_start("Europe/Berlin", t, 0),
			 23 * MS_PER_HOUR);
	assert_int_equal(tz_day_start("UTC", t, 0), 1774742400000LL);
}

static void week_starts_monday(void **state)
{
	(void)state;
	/* Sunday 2026-03-29 belongs to the week of Monday 2026-03-23. */
	char buf[32];
	int64_t ws = tz_week_start("Europe/Berlin", BERLIN_DST_DAY_NOON_UTC);
	tz_format("Europe/Berlin", ws, "%Y-%m-%d %H:%M %a", buf, sizeof(buf));
	assert_string_equal(buf, "2026-03-23 00:00 Mon");
	int64_t ms = tz_month_start("America/New_York", BERLIN_DST_DAY_NOON_UTC);
	tz_format("America/New_York", ms, "%Y-%m-%d %H:%M", buf, sizeof(buf));
	assert_string_equal(buf, "2026-03-01 00:00");
}

static void day_numbers_follow_the_local_calendar(void **state)
{
	(void)state;
	/* 23:30 UTC on 2026-03-28 is already the 29th in Berlin. */
	int64_t t = 1774740600000LL;
	assert_int_equal(tz_day_number("Europe/Berlin", t) - tz_day_number("UTC", t), 1);
	assert_int_equal(tz_day_number("UTC", 0), 0);
	assert_int_equal(tz_day_number("UTC", 86400000LL * 20000), 20000);
}

static void hhmm_parsing(void **state)
{
	(void)state;
	int h, m;
	assert_true(parse_hhmm("18:00", &h, &m));
	assert_int_equal(h, 18);
	assert_int_equal(m, 0);
	assert_true(parse_hhmm("00:59", &h, &m));
	assert_false(parse_hhmm("24:00", &h, &m));
	assert_false(parse_hhmm("7:00", &h, &m));
	assert_false(parse_hhmm("07:60", &h, &m));
	assert_false(parse_hhmm("ab:cd", &h, &m));
}

static void times_of_day_as_people_type_them(void **state)
{
	(void)state;
	int h, m;
	assert_true(parse_time_of_day("7:30", &h, &m));
	assert_int_equal(h, 7);
	assert_int_equal(m, 30);
	assert_true(parse_time_of_day("19:05", &h, &m));
	assert_int_equal(h, 19);
	assert_int_equal(m, 5);
	assert_false(parse_time_of_day("7:3", &h, &m));
	assert_false(parse_time_of_day("7pm", &h, &m));
	assert_false(parse_time_of_day(":730", &h, &m));
	assert_false(parse_time_of_day("24:00", &h, &m));
	assert_false(parse_time_of_day("", &h, &m));
}

static void zone_names_in_any_case(void **state)
{
	(void)state;
	char z[80];
	struct {
		const char *typed, *canonical;
	} cases[] = {{"europe/berlin", "Europe/Berlin"},
		     {"EUROPE/BERLIN", "Europe/Berlin"},
		     {"america/new_york", "America/New_York"},
		     {"america/argentina/buenos_aires", "America/Argentina/Buenos_Aires"},
		     {"utc", "UTC"},
		     {"Europe/Berlin", "Europe/Berlin"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		z[0] = '\0';
		if (!tz_canonical(cases[i].typed, z, sizeof(z)) ||
		    strcmp(z, cases[i].canonical) != 0)
			fail_msg("%s: got \"%s\"", cases[i].typed, z);
	}
	assert_false(tz_canonical("mars/olympus", z, sizeof(z)));
	assert_false(tz_canonical("../../etc/passwd", z, sizeof(z)));
	assert_false(tz_canonical("europe", z, sizeof(z))); /* a folder, not a zone */
	assert_false(tz_canonical("posix/europe/berlin", z, sizeof(z)));
}

static void unknown_zones_get_a_suggestion(void **state)
{
	(void)state;
	char z[80];
	struct {
		const char *typed, *suggested;
	} cases[] = {{"Berlin", "Europe/Berlin"},
		     {"new york", "America/New_York"},
		     {"Europe/Berln", "Europe/Berlin"},
		     {"Amerika/New_York", "America/New_York"},
		     {"tokio", "Asia/Tokyo"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		z[0] = '\0';
		if (!tz_suggest(cases[i].typed, z, sizeof(z)) || strcmp(z, cases[i].suggested) != 0)
			fail_msg("%s: got \"%s\"", cases[i].typed, z);
	}
	assert_false(tz_suggest("Mars/Olympus", z, sizeof(z)));
	assert_false(tz_suggest("xq", z, sizeof(z)));
}

static void time_of_day_in_a_zone(void **state)
{
	(void)state;
	/* 18:00 in New York on 2026-03-29 (EDT, -4) is 22:00Z. */
	assert_int_equal(tz_at_time("America/New_York", BERLIN_DST_DAY_NOON_UTC, 18, 0),
			 1774821600000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zones_are_validated),
		cmocka_unit_test(day_start_is_local_midnight),
		cmocka_unit_test(week_starts_monday),
		cmocka_unit_test(day_numbers_follow_the_local_calendar),
		cmocka_unit_test(hhmm_parsing),
		cmocka_unit_test(time_of_day_in_a_zone),
		cmocka_unit_test(times_of_day_as_people_type_them),
		cmocka_unit_test(zone_names_in_any_case),
		cmocka_unit_test(unknown_zones_get_a_suggestion),
	};
	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
