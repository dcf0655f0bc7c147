/*
 * Wall-clock time and calendar arithmetic in IANA time zones.
 *
 * Times are Unix milliseconds (UTC). Zones are read from the zoneinfo
 * database's TZif files by this module (never through the process's TZ), and
 * every function here may be called from any thread.
 */
#ifndef COHORT_CLOCK_H
#define COHORT_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The real time now, in Unix milliseconds. */
int64_t clock_real_ms(void);

/*
 * The process clock, in Unix milliseconds: the real time, or for tests a
 * clock that starts at COHORT_FAKE_NOW (Unix ms, or "YYYY-MM-DDTHH:MM:SSZ")
 * and runs COHORT_FAKE_RATE times faster than real time (default 1).
 */
int64_t clock_now_ms(void);
/* Parses "2026-11-25T18:00:00Z" (exactly that form, UTC) into Unix ms. */
bool clock_parse_iso(const char *s, int64_t *ms);

/* How many real milliseconds pass while the process clock advances ms. */
int64_t clock_real_wait_ms(int64_t ms);

/*
 * True when zone names a well-formed TZif file in the system's zoneinfo
 * database ($TZDIR, else /usr/share/zoneinfo; "UTC" always). In the tz_*
 * functions below a zone for which this is false reads as UTC.
 */
bool tz_valid(const char *zone);

#define TZ_ABBR_LEN 16

/* A moment as the clocks of a zone show it. */
struct tz_local {
	int year, month, day;     /* 2026, 1-12, 1-31 */
	int hour, minute, second; /* 0-23, 0-59, 0-59 */
	int weekday;              /* 0 = Sunday */
	int yday;                 /* days since January 1st, 0-365 */
	int utoff;                /* seconds east of UTC: 3600 for CET */
	bool isdst;
	char abbr[TZ_ABBR_LEN]; /* "CEST", "+0530" */
};

/* Fills *out with t (Unix ms) as the clocks of zone show it. */
void tz_local_time(const char *zone, int64_t t, struct tz_local *out);
/*
 * Unix ms of local time hh:mm on year-month-day in zone. Month and day may be
 * out of range and carry over (day 0 is the last day of the month before).
 * In a DST gap the time moves forward by the gap (02:30 on a spring-forward
 * night is 03:30); in an overlap it is the earlier of the two instants.
 */
int64_t tz_local_ms(const char *zone, int year, int month, int day, int hh, int mm);

/* Local midnight (as Unix ms) of the day that is `days` days after the local day of t. */
int64_t tz_day_start(const char *zone, int64_t t, int days);
/* Local midnight of the Monday starting t's local week. */
int64_t tz_week_start(const char *zone, int64_t t);
/* Local midnight of the first day of t's local month. */
int64_t tz_month_start(const char *zone, int64_t t);
/* The local calendar day of t as a day number (days since 1970-01-01 in that zone). */
long tz_day_number(const char *zone, int64_t t);
/* Unix ms of local time hh:mm on t's local day (as tz_local_ms: gaps move forward). */
int64_t tz_at_time(const char *zone, int64_t t, int hh, int mm);
/* Formats t in zone with strftime format fmt into buf (size n). */
void tz_format(const char *zone, int64_t t, const char *fmt, char *buf, int n);

/*
 * The zoneinfo spelling of a zone name typed in any case ("europe/berlin" ->
 * "Europe/Berlin", "utc" -> "UTC") into out (n bytes). False when no zone
 * has that name.
 */
bool tz_canonical(const char *name, char *out, size_t n);

/*
 * The zone a user most likely meant by name, which is not a zone: the one
 * whose city is name ("Berlin", "new_york"), else the nearest by spelling
 * ("Europe/Berln"). False when none is near.
 */
bool tz_suggest(const char *name, char *out, size_t n);

/* Parses "HH:MM" (00:00 to 23:59). */
bool parse_hhmm(const char *s, int *hh, int *mm);
/* Parses a time of day as people type it: "HH:MM" or "H:MM" ("7:30"), 24-hour. */
bool parse_time_of_day(const char *s, int *hh, int *mm);

#endif
