/*
 * Wall-clock time and calendar arithmetic in IANA time zones.
 *
 * Times are Unix milliseconds (UTC). Zone conversions switch the process's TZ
 * and are therefore for the dispatcher thread only.
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

/* True when zone names a time zone in the system's zoneinfo database ("UTC" included). */
bool tz_valid(const char *zone);

/* Local midnight (as Unix ms) of the day that is `days` days after the local day of t. */
int64_t tz_day_start(const char *zone, int64_t t, int days);
/* Local midnight of the Monday starting t's local week. */
int64_t tz_week_start(const char *zone, int64_t t);
/* Local midnight of the first day of t's local month. */
int64_t tz_month_start(const char *zone, int64_t t);
/* The local calendar day of t as a day number (days since 1970-01-01 in that zone). */
long tz_day_number(const char *zone, int64_t t);
/* Unix ms of local time hh:mm on t's local day (DST gaps move forward). */
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
