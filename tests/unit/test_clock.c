/* tm_gmtoff and tm_zone: the C library is this test's reference. */
#define _DEFAULT_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * The C library as the reference: it reads the same zoneinfo files through
 * the process's TZ, which only this single-threaded test switches.
 */
static void use_libc_zone(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static int64_t days_since_epoch(int y, int m, int d)
{
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	return (int64_t)timegm(&tm) / 86400;
}

/* Compares zone's reading of second s with localtime_r's (TZ already set to the same zone). */
static void check_local(const char *zone, int64_t s)
{
	time_t ts = (time_t)s;
	struct tm want;
	localtime_r(&ts, &want);
	struct tz_local got;
	tz_local_time(zone, s * 1000 + 999, &got);
	if (got.year != want.tm_year + 1900 || got.month != want.tm_mon + 1 ||
	    got.day != want.tm_mday || got.hour != want.tm_hour || got.minute != want.tm_min ||
	    got.second != want.tm_sec || got.weekday != want.tm_wday || got.yday != want.tm_yday ||
	    got.utoff != want.tm_gmtoff || got.isdst != (want.tm_isdst > 0) ||
	    strcmp(got.abbr, want.tm_zone) != 0)
		fail_msg("%s at %lld: got %04d-%02d-%02d %02d:%02d:%02d wday %d yday %d %+d %s%s, "
			 "libc %04d-%02d-%02d %02d:%02d:%02d wday %d yday %d %+ld %s%s",
			 zone, (long long)s, got.year, got.month, got.day, got.hour, got.minute,
			 got.second, got.weekday, got.yday, got.utoff, got.abbr,
			 got.isdst ? " dst" : "", want.tm_year + 1900, want.tm_mon + 1,
			 want.tm_mday, want.tm_hour, want.tm_min, want.tm_sec, want.tm_wday,
			 want.tm_yday, want.tm_gmtoff, want.tm_zone,
			 want.tm_isdst > 0 ? " dst" : "");
	long day = tz_day_number(zone, s * 1000);
	if (day != days_since_epoch(want.tm_year + 1900, want.tm_mon + 1, want.tm_mday))
		fail_msg("%s at %lld: day number %ld", zone, (long long)s, day);
}

static long libc_utoff(int64_t s)
{
	time_t ts = (time_t)s;
	struct tm tm;
	localtime_r(&ts, &tm);
	return tm.tm_gmtoff;
}

/* Local seconds as a plain count (the zone's wall clock read as if it were UTC). */
static int64_t libc_local_seconds(int64_t s)
{
	return s + libc_utoff(s);
}

/*
 * The reference for local time -> UTC, from localtime alone: the earliest
 * instant whose local time is L; in a gap, L read with the offset before the
 * gap (the time moves forward by the gap). mktime is no reference: in an
 * overlap it picks one of the two instants depending on its previous calls,
 * and it maps the first second of a gap sometimes back, sometimes forward.
 */
static int64_t libc_from_local(int64_t L)
{
	int64_t best = INT64_MAX;
	for (int64_t probe = L - 27 * 3600; probe <= L + 27 * 3600; probe += 3 * 3600) {
		int64_t t = L - libc_utoff(probe);
		if (libc_local_seconds(t) == L && t < best)
			best = t;
	}
	if (best != INT64_MAX)
		return best;
	/* A gap: the first instant whose local time is past L is the change. */
	int64_t lo = L - 27 * 3600, hi = L + 27 * 3600;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (libc_local_seconds(mid) > L)
			hi = mid;
		else
			lo = mid;
	}
	return L - libc_utoff(hi - 1);
}

/* Checks tz_local_ms and the calendar functions for the local day of second s. */
static void check_day(const char *zone, int64_t s)
{
	int64_t L = libc_local_seconds(s);
	int64_t day = L >= 0 ? L / 86400 : (L - 86399) / 86400;
	time_t ts = (time_t)(day * 86400);
	struct tm civil;
	gmtime_r(&ts, &civil);
	int64_t want = libc_from_local(day * 86400) * 1000;
	if (tz_day_start(zone, s * 1000, 0) != want)
		fail_msg("%s at %lld: day starts at %lld, libc %lld", zone, (long long)s,
			 (long long)tz_day_start(zone, s * 1000, 0), (long long)want);
	want = libc_from_local((day + 1) * 86400) * 1000;
	if (tz_day_start(zone, s * 1000, 1) != want)
		fail_msg("%s at %lld: next day starts at %lld, libc %lld", zone, (long long)s,
			 (long long)tz_day_start(zone, s * 1000, 1), (long long)want);
	int since_monday = (civil.tm_wday + 6) % 7;
	want = libc_from_local((day - since_monday) * 86400) * 1000;
	if (tz_week_start(zone, s * 1000) != want)
		fail_msg("%s at %lld: week starts at %lld, libc %lld", zone, (long long)s,
			 (long long)tz_week_start(zone, s * 1000), (long long)want);
	want = libc_from_local((day - civil.tm_mday + 1) * 86400) * 1000;
	if (tz_month_start(zone, s * 1000) != want)
		fail_msg("%s at %lld: month starts at %lld, libc %lld", zone, (long long)s,
			 (long long)tz_month_start(zone, s * 1000), (long long)want);
}

/* Every quarter hour of s's local day, as tz_at_time gives it. */
static void check_times_of_day(const char *zone, int64_t s)
{
	int64_t L = libc_local_seconds(s);
	int64_t day = L >= 0 ? L / 86400 : (L - 86399) / 86400;
	for (int q = 0; q < 96; q++) {
		int64_t want = libc_from_local(day * 86400 + q * 900) * 1000;
		int64_t got = tz_at_time(zone, s * 1000, q / 4, q % 4 * 15);
		if (got != want)
			fail_msg("%s at %lld: %02d:%02d is %lld, libc %lld", zone, (long long)s,
				 q / 4, q % 4 * 15, (long long)got, (long long)want);
	}
}

/* Hourly from..to (Unix seconds); each change of offset found to the second and checked around. */
static int check_range(const char *zone, int64_t from, int64_t to, int64_t step)
{
	int changes = 0;
	for (int64_t s = from; s < to; s += step) {
		check_local(zone, s);
		if (s % (step < 86400 ? 86400 : 30 * 86400) < step)
			check_day(zone, s);
		long a = libc_utoff(s), b = libc_utoff(s + step);
		if (a == b)
			continue;
		int64_t lo = s, hi = s + step; /* utoff(lo) == a, utoff(hi) != a */
		while (hi - lo > 1) {
			int64_t mid = lo + (hi - lo) / 2;
			if (libc_utoff(mid) == a)
				lo = mid;
			else
				hi = mid;
		}
		changes++;
		for (int64_t d = -61; d <= 61; d++)
			check_local(zone, hi + d);
		check_day(zone, hi - 60);
		check_day(zone, hi + 60);
		if (step <= 3600) {
			check_times_of_day(zone, hi - 60);
			check_times_of_day(zone, hi + 60);
		}
	}
	return changes;
}

static const char *const zones[] = {
	"Europe/Berlin",    "America/New_York",    "Australia/Lord_Howe", "Asia/Kolkata",
	"Pacific/Chatham",  "America/Sao_Paulo",   "Africa/Casablanca",   "UTC",
	"Etc/GMT+5",        "America/Havana",      "America/Santiago",    "Europe/Dublin",
	"Antarctica/Troll", "America/St_Johns",    "Asia/Tehran",         "Pacific/Apia",
	"Europe/London",    "America/Los_Angeles", "Asia/Gaza",           "Australia/Sydney",
};

static void conversions_match_the_c_library(void **state)
{
	(void)state;
	int64_t y1900 = days_since_epoch(1900, 1, 1) * 86400;
	int64_t y2018 = days_since_epoch(2018, 1, 1) * 86400;
	int64_t y2028 = days_since_epoch(2028, 1, 1) * 86400;
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		assert_true(tz_valid(zones[i]));
		use_libc_zone(zones[i]);
		/* Every 4 days 7 hours (all hours of the day in turn) until 2018, then hourly. */
		check_range(zones[i], y1900, y2018, 4 * 86400 + 7 * 3600);
		int changes = check_range(zones[i], y2018, y2028, 3600);
		bool fixed = strncmp(zones[i], "Etc/", 4) == 0 || strcmp(zones[i], "UTC") == 0 ||
			     strcmp(zones[i], "Asia/Kolkata") == 0;
		if (!fixed && strcmp(zones[i], "Asia/Tehran") != 0 &&
		    strcmp(zones[i], "Pacific/Apia") != 0 &&
		    strcmp(zones[i], "America/Sao_Paulo") != 0)
			assert_true(changes >= 18);
		if (fixed)
			assert_int_equal(changes, 0);
	}
	unsetenv("TZ");
}

/* Beyond the zoneinfo tables (they end in 2037) the footer's POSIX rule decides. */
static void far_future_follows_the_footer_rule(void **state)
{
	(void)state;
	int64_t y2036 = days_since_epoch(2036, 1, 1) * 86400;
	int64_t y2040 = days_since_epoch(2040, 1, 1) * 86400;
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		use_libc_zone(zones[i]);
		check_range(zones[i], y2036, y2040, 3600);
		for (int y = 2100; y <= 2500; y += 100) {
			int64_t from = days_since_epoch(y, 1, 1) * 86400;
			check_range(zones[i], from, from + 366 * 86400LL, 3600 * 7);
		}
	}
	unsetenv("TZ");
	/* New York's clocks go forward at 2:00 on the second Sunday of March, 2100 too. */
	struct tz_local lt;
	tz_local_time("America/New_York", 4108690800000LL, &lt); /* 2100-03-14T07:00:00Z */
	assert_int_equal(lt.hour, 3);
	assert_string_equal(lt.abbr, "EDT");
	tz_local_time("America/New_York", 4108690799000LL, &lt);
	assert_int_equal(lt.hour, 1);
	assert_string_equal(lt.abbr, "EST");
}

/* Footers in the forms zoneinfo rarely uses (Jn, n, times past 24 h, seconds in offsets). */
static void every_posix_rule_form(void **state)
{
	(void)state;
	struct {
		const char *zone, *tz;
	} cases[] = {
		{"Fixture/Julian", "<-03>3<-02>,J60/2,J300/3"},
		{"Fixture/DayOfYear", "AAA-10BBB-11,59/2,300/-1"},
		{"Fixture/Southern", "<+0545>-5:45:30<+0645>-6:45:30,M10.1.0/2:30,M4.1.0/27"},
		{"Fixture/Fixed", "<-0930>9:30"},
	};
	setenv("TZDIR", "tests/fixtures/tz", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!tz_valid(cases[i].zone))
			fail_msg("%s is not read", cases[i].zone);
	unsetenv("TZDIR");
	int64_t from = days_since_epoch(2023, 1, 1) * 86400;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		use_libc_zone(cases[i].tz);
		check_range(cases[i].zone, from, from + 3 * 366 * 86400LL, 3600);
	}
	unsetenv("TZ");
	/*
	 * Summer time all year (RFC 8536 3.3.1): it ends at 25:00 on December 31st,
	 * when it starts again. The C library takes the new year's start from the
	 * UTC year and so has EST for the five hours before it; this is the RFC.
	 */
	setenv("TZDIR", "tests/fixtures/tz", 1);
	assert_true(tz_valid("Fixture/AllYearSummer"));
	unsetenv("TZDIR");
	for (int64_t s = from; s < from + 3 * 366 * 86400LL; s += 1800) {
		struct tz_local lt;
		tz_local_time("Fixture/AllYearSummer", s * 1000, &lt);
		if (lt.utoff != -4 * 3600 || !lt.isdst || strcmp(lt.abbr, "EDT") != 0)
			fail_msg("all-year summer time at %lld: %d %s", (long long)s, lt.utoff,
				 lt.abbr);
	}
}

static void version_1_files_are_read(void **state)
{
	(void)state;
	setenv("TZDIR", "tests/fixtures/tz", 1);
	assert_true(tz_valid("Fixture/Version1"));
	assert_true(tz_valid("Fixture/Good"));
	unsetenv("TZDIR");
	struct tz_local lt;
	tz_local_time("Fixture/Version1", 959817600000LL - 1000, &lt); /* 2000-05-31T23:59:59Z */
	assert_int_equal(lt.utoff, 3600);
	assert_string_equal(lt.abbr, "CET");
	tz_local_time("Fixture/Version1", 959817600000LL, &lt);
	assert_int_equal(lt.utoff, 7200);
	assert_string_equal(lt.abbr, "CEST");
	/* No footer: the last type goes on. */
	tz_local_time("Fixture/Version1", 4108690800000LL, &lt);
	assert_int_equal(lt.utoff, 7200);
}

static void malformed_zone_files_are_not_zones(void **state)
{
	(void)state;
	const char *broken[] = {"Broken/Truncated",
				"Broken/Empty",
				"Broken/NotTzif",
				"Broken/NoFooter",
				"Broken/BadFooter",
				"Broken/FooterJunk",
				"Broken/TypeIndex",
				"Broken/AbbrIndex",
				"Broken/Descending",
				"Broken/HugeCounts",
				"Broken/NoTypes",
				"Broken/Offset",
				"Broken",
				"Broken/Missing"};
	setenv("TZDIR", "tests/fixtures/tz", 1);
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
		if (tz_valid(broken[i]))
			fail_msg("%s was taken for a zone", broken[i]);
	unsetenv("TZDIR");
	/* Read anyway, such a zone is UTC, as the C library makes of an unknown TZ. */
	assert_int_equal(tz_day_start("Broken/Truncated", BERLIN_DST_DAY_NOON_UTC, 0),
			 1774742400000LL);
	char buf[32];
	tz_format("Broken/Truncated", 0, "%Y-%m-%d %H:%M %Z", buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01 00:00 UTC");
}

/* A local time that does not exist moves forward; one that happens twice is the first. */
static void gaps_and_overlaps(void **state)
{
	(void)state;
	/* 2026-03-29 02:30 in Berlin does not exist: 03:30 CEST, 01:30Z. */
	assert_int_equal(tz_local_ms("Europe/Berlin", 2026, 3, 29, 2, 30), 1774747800000LL);
	/* 2026-10-25 02:30 happens twice: the first is CEST, 00:30Z. */
	assert_int_equal(tz_local_ms("Europe/Berlin", 2026, 10, 25, 2, 30), 1792888200000LL);
	/* Havana's day of 2025-11-02 starts twice (01:00 CDT goes back to 00:00 CST). */
	assert_int_equal(tz_local_ms("America/Havana", 2025, 11, 2, 0, 0), 1762056000000LL);
	/* Out-of-range days and months carry over, as mktime's do. */
	assert_int_equal(tz_local_ms("UTC", 2026, 1, 32, 0, 0),
			 tz_local_ms("UTC", 2026, 2, 1, 0, 0));
	assert_int_equal(tz_local_ms("UTC", 2026, 13, 1, 0, 0),
			 tz_local_ms("UTC", 2027, 1, 1, 0, 0));
	assert_int_equal(tz_local_ms("UTC", 2026, 3, 0, 0, 0),
			 tz_local_ms("UTC", 2026, 2, 28, 0, 0));
}

static void formats_name_the_zone_without_tz(void **state)
{
	(void)state;
	char buf[64];
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	tz_format("Europe/Berlin", BERLIN_DST_DAY_NOON_UTC, "%Y-%m-%d %H:%M %Z %z %A", buf,
		  sizeof(buf));
	assert_string_equal(buf, "2026-03-29 14:00 CEST +0200 Sunday");
	tz_format("Asia/Kolkata", BERLIN_DST_DAY_NOON_UTC, "%H:%M %Z %z", buf, sizeof(buf));
	assert_string_equal(buf, "17:30 IST +0530");
	unsetenv("TZ");
}

struct zone_worker {
	const char *zone;
	int64_t expect_start; /* tz_day_start of BERLIN_DST_DAY_NOON_UTC */
	int hour;             /* the local hour at BERLIN_DST_DAY_NOON_UTC */
	int wrong;
};

static void *convert_repeatedly(void *arg)
{
	struct zone_worker *w = arg;
	for (int i = 0; i < 20000; i++) {
		struct tz_local lt;
		tz_local_time(w->zone, BERLIN_DST_DAY_NOON_UTC, &lt);
		if (tz_day_start(w->zone, BERLIN_DST_DAY_NOON_UTC, 0) != w->expect_start ||
		    lt.hour != w->hour)
			w->wrong++;
		char buf[8];
		tz_format(w->zone, BERLIN_DST_DAY_NOON_UTC, "%H", buf, sizeof(buf));
		if (atoi(buf) != w->hour)
			w->wrong++;
	}
	return NULL;
}

/* Two threads converting in different zones at once each get their own zone's answers. */
static void threads_convert_in_their_own_zones(void **state)
{
	(void)state;
	struct zone_worker w[] = {
		{"Europe/Berlin", 1774738800000LL, 14, 0},       /* 2026-03-28T23:00Z */
		{"America/New_York", 1774756800000LL, 8, 0},     /* 2026-03-29T04:00Z */
		{"Asia/Kolkata", 1774722600000LL, 17, 0},        /* 2026-03-28T18:30Z */
		{"Australia/Lord_Howe", 1774702800000LL, 23, 0}, /* 2026-03-28T13:00Z */
	};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, convert_repeatedly, &w[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		if (w[i].wrong)
			fail_msg("%s: %d wrong answers", w[i].zone, w[i].wrong);
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
		cmocka_unit_test(conversions_match_the_c_library),
		cmocka_unit_test(far_future_follows_the_footer_rule),
		cmocka_unit_test(every_posix_rule_form),
		cmocka_unit_test(version_1_files_are_read),
		cmocka_unit_test(malformed_zone_files_are_not_zones),
		cmocka_unit_test(gaps_and_overlaps),
		cmocka_unit_test(formats_name_the_zone_without_tz),
		cmocka_unit_test(threads_convert_in_their_own_zones),
	};
	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
