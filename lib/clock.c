/* tm_gmtoff and tm_zone, so strftime's %z and %Z need no process-wide TZ. */
#define _DEFAULT_SOURCE

#include "clock.h"

#include "text.h"
#include "util.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

int64_t clock_real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm), zone-free. */
static long days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

struct fake_clock {
	bool checked;
	bool on;
	int64_t start;     /* process-clock time at the first reading */
	int64_t real_base; /* monotonic ms at the first reading */
	double rate;
};

static struct fake_clock fake;

static int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fake_clock_init(void)
{
	fake.checked = true;
	const char *now = getenv("COHORT_FAKE_NOW");
	if (!now || !*now)
		return;
	char *end = NULL;
	long long ms = strtoll(now, &end, 10);
	if (end && *end == '-') {
		int y, mo, d, h, mi, sec;
		if (sscanf(now, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6)
			return;
		ms = ((long long)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) *
		     1000;
	} else if (!end || *end) {
		return;
	}
	const char *rate = getenv("COHORT_FAKE_RATE");
	fake.rate = rate && *rate ? strtod(rate, NULL) : 1.0;
	if (!(fake.rate > 0))
		fake.rate = 1.0;
	fake.on = true;
	fake.start = ms;
	fake.real_base = monotonic_ms();
}

bool clock_parse_iso(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 20 || s[n])
		return false;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    h < 0 || mi < 0 || sec < 0)
		return false;
	*ms = ((int64_t)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000;
	return true;
}

int64_t clock_now_ms(void)
{
	if (!fake.checked)
		fake_clock_init();
	if (!fake.on)
		return clock_real_ms();
	return fake.start + (int64_t)((double)(monotonic_ms() - fake.real_base) * fake.rate);
}

int64_t clock_real_wait_ms(int64_t ms)
{
	if (!fake.checked)
		fake_clock_init();
	if (ms <= 0)
		return 0;
	if (!fake.on)
		return ms;
	int64_t real = (int64_t)((double)ms / fake.rate);
	return real > 0 ? real : 1;
}

/*
 * Time zones. The zone's TZif file (RFC 8536) is read here rather than through
 * the C library's localtime/mktime, which work on the one process-wide TZ:
 * switching it with setenv races with every thread that reads the environment
 * or the local time, and leaks the zone into every other time call.
 */

#define TZ_MAX_FILE (1024 * 1024) /* the largest zoneinfo file is under 4 KB */
#define TZ_MAX_FOOTER 128
#define TZ_CACHE 32
#define TZ_DAY 86400

struct tz_type {
	int32_t utoff; /* seconds east of UTC */
	bool isdst;
	char abbr[TZ_ABBR_LEN];
};

/* When a POSIX TZ rule changes the clocks in a year. */
struct tz_rule {
	char kind;       /* 'J': day 1-365, Feb 29 never counted; 'D': day 0-365; 'M' */
	int day;         /* J, D: the day; M: the weekday, 0 = Sunday */
	int week, month; /* M: week 1-5 (5: the last) of month 1-12 */
	int32_t secs;    /* local time of day of the change, -167h to 167h */
};

/* The footer's POSIX TZ string: the rule for times after the last transition. */
struct tz_footer {
	bool present;
	bool dst;
	struct tz_type std, summer;
	struct tz_rule start, end; /* start: std -> summer; end: summer -> std */
};

struct tz_zone {
	char name[65];
	bool ok;      /* false: no such zone, or its file is unreadable or malformed */
	size_t n;     /* transitions */
	int64_t *at;  /* their times, Unix seconds, strictly ascending */
	uint8_t *idx; /* the type each starts, < ntypes */
	size_t ntypes;
	struct tz_type *types;
	struct tz_footer footer;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The civil date of a day number (days since 1970-01-01), Hinnant's inverse. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool leap_year(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int month_days(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return days[m - 1] + (m == 2 && leap_year(y));
}

/* 0 = Sunday. */
static int weekday_of(int64_t day)
{
	return (int)(((day % 7) + 7 + 4) % 7);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_header {
	char version;
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

/* Reads a TZif header at p (len bytes left) and the size of the data block after it. */
static bool tzif_header(const uint8_t *p, size_t len, size_t tsize, struct tzif_header *h,
			size_t *block)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return false;
	h->version = (char)p[4];
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	/* Counts are checked against each other and the bytes there are before use. */
	if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 ||
	    (h->isstdcnt != 0 && h->isstdcnt != h->typecnt) ||
	    (h->isutcnt != 0 && h->isutcnt != h->typecnt))
		return false;
	uint64_t size = (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
			(uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
	if (size > len - 44)
		return false;
	*block = (size_t)size;
	return true;
}

/*
 * Reads the data block at p into z: transitions and local time types. Leap
 * second records are skipped (zoneinfo's right/ zones are not offered).
 */
static bool tzif_block(struct tz_zone *z, const uint8_t *p, const struct tzif_header *h,
		       size_t tsize)
{
	z->n = h->timecnt;
	z->at = xmalloc(z->n ? z->n * sizeof(*z->at) : 1);
	z->idx = xmalloc(z->n ? z->n : 1);
	for (size_t i = 0; i < z->n; i++) {
		z->at[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
		if (i > 0 && z->at[i] <= z->at[i - 1])
			return false;
	}
	p += z->n * tsize;
	for (size_t i = 0; i < z->n; i++) {
		z->idx[i] = p[i];
		if (p[i] >= h->typecnt)
			return false;
	}
	p += z->n;
	const uint8_t *chars = p + (size_t)h->typecnt * 6;
	z->ntypes = h->typecnt;
	z->types = xcalloc(z->ntypes, sizeof(*z->types));
	for (size_t i = 0; i < z->ntypes; i++, p += 6) {
		struct tz_type *ty = &z->types[i];
		ty->utoff = (int32_t)be32(p);
		if (ty->utoff < -89999 || ty->utoff > 93599 || p[4] > 1 || p[5] >= h->charcnt)
			return false;
		ty->isdst = p[4];
		const uint8_t *a = chars + p[5], *nul = memchr(a, '\0', h->charcnt - p[5]);
		if (!nul)
			return false;
		snprintf(ty->abbr, sizeof(ty->abbr), "%.*s", (int)(nul - a), (const char *)a);
	}
	return true;
}

/* A POSIX TZ abbreviation: three or more letters, or <+0530> quoted. */
static bool posix_abbr(const char **sp, char *out)
{
	const char *s = *sp;
	size_t n = 0;
	bool quoted = *s == '<';
	if (quoted)
		s++;
	for (;; s++, n++) {
		char c = *s;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool other = (c >= '0' && c <= '9') || c == '+' || c == '-';
		if (!(alpha || (quoted && other)))
			break;
		if (n < TZ_ABBR_LEN - 1)
			out[n] = c;
	}
	out[n < TZ_ABBR_LEN - 1 ? n : TZ_ABBR_LEN - 1] = '\0';
	if (n < 3 || (quoted && *s++ != '>'))
		return false;
	*sp = s;
	return true;
}

/* [+-]hh[:mm[:ss]] in seconds, with hh at most max_h. */
static bool posix_hms(const char **sp, int max_h, int32_t *out)
{
	const char *s = *sp;
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	int32_t part[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		if (i > 0 && *s != ':')
			break;
		if (i > 0)
			s++;
		int digits = 0;
		for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
			part[i] = part[i] * 10 + (*s - '0');
		if (digits == 0 || (i > 0 && (digits > 2 || part[i] > 59)))
			return false;
	}
	if (part[0] > max_h)
		return false;
	*out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
	*sp = s;
	return true;
}

static bool posix_number(const char **sp, int lo, int hi, int *out)
{
	const char *s = *sp;
	int v = 0, digits = 0;
	for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
		v = v * 10 + (*s - '0');
	if (digits == 0 || v < lo || v > hi)
		return false;
	*out = v;
	*sp = s;
	return true;
}

/* Jn, n or Mm.w.d, then an optional /time (RFC 8536 allows -167 to 167 hours). */
static bool posix_rule(const char **sp, struct tz_rule *r)
{
	const char *s = *sp;
	memset(r, 0, sizeof(*r));
	if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (!posix_number(&s, 1, 365, &r->day))
			return false;
	} else if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (!posix_number(&s, 1, 12, &r->month) || *s++ != '.' ||
		    !posix_number(&s, 1, 5, &r->week) || *s++ != '.' ||
		    !posix_number(&s, 0, 6, &r->day))
			return false;
	} else {
		r->kind = 'D';
		if (!posix_number(&s, 0, 365, &r->day))
			return false;
	}
	r->secs = 7200;
	if (*s == '/') {
		s++;
		if (!posix_hms(&s, 167, &r->secs))
			return false;
	}
	*sp = s;
	return true;
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3" or "<+0530>-5:30". */
static bool posix_tz(const char *s, struct tz_footer *f)
{
	memset(f, 0, sizeof(*f));
	int32_t off;
	if (!posix_abbr(&s, f->std.abbr) || !posix_hms(&s, 24, &off))
		return false;
	f->std.utoff = -off; /* POSIX counts hours west of Greenwich */
	f->present = true;
	if (!*s)
		return true;
	f->dst = true;
	f->summer.isdst = true;
	if (!posix_abbr(&s, f->summer.abbr))
		return false;
	f->summer.utoff = f->std.utoff + 3600;
	if (*s && *s != ',') {
		if (!posix_hms(&s, 24, &off))
			return false;
		f->summer.utoff = -off;
	}
	if (!*s) {
		/* No rules: the C library's default, the US rules since 2007. */
		const char *us = "M3.2.0,M11.1.0";
		return posix_rule(&us, &f->start) && *us++ == ',' && posix_rule(&us, &f->end);
	}
	return *s++ == ',' && posix_rule(&s, &f->start) && *s++ == ',' && posix_rule(&s, &f->end) &&
	       !*s;
}

/* Parses a TZif file's bytes into z; false when they are not a well-formed one. */
static bool tzif_parse(struct tz_zone *z, const uint8_t *p, size_t len)
{
	struct tzif_header h;
	size_t block;
	if (!tzif_header(p, len, 4, &h, &block))
		return false;
	if (h.version == '\0')
		return tzif_block(z, p + 44, &h, 4);
	/* Version 2 and later: skip the 32-bit block for the 64-bit one and the footer. */
	p += 44 + block;
	len -= 44 + block;
	if (!tzif_header(p, len, 8, &h, &block) || !tzif_block(z, p + 44, &h, 8))
		return false;
	p += 44 + block;
	len -= 44 + block;
	const uint8_t *nl = len > 0 && p[0] == '\n' ? memchr(p + 1, '\n', len - 1) : NULL;
	if (!nl || nl - p - 1 >= TZ_MAX_FOOTER)
		return false;
	char footer[TZ_MAX_FOOTER];
	memcpy(footer, p + 1, (size_t)(nl - p - 1));
	footer[nl - p - 1] = '\0';
	if (strlen(footer) != (size_t)(nl - p - 1))
		return false;
	return !footer[0] || posix_tz(footer, &z->footer);
}

/* Reads the zone's file from the zoneinfo directory ($TZDIR honoured). */
static bool zone_load(struct tz_zone *z, const char *zone)
{
	for (const char *p = zone; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '/' || c == '_' || c == '-' || c == '+'))
			return false;
	}
	const char *dir = getenv("TZDIR");
	char path[512];
	int len = snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
			   zone);
	if (len < 0 || (size_t)len >= sizeof(path))
		return false;
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	uint8_t *buf = xmalloc(TZ_MAX_FILE + 1);
	size_t n = fread(buf, 1, TZ_MAX_FILE + 1, f);
	bool ok = !ferror(f) && n <= TZ_MAX_FILE && tzif_parse(z, buf, n);
	fclose(f);
	free(buf);
	return ok;
}

static void zone_free(struct tz_zone *z)
{
	if (!z)
		return;
	free(z->at);
	free(z->idx);
	free(z->types);
	free(z);
}

static struct tz_zone *zone_new(const char *zone)
{
	struct tz_zone *z = xcalloc(1, sizeof(*z));
	snprintf(z->name, sizeof(z->name), "%s", zone);
	bool sane = *zone && strlen(zone) <= 64 && zone[0] != '/' && !strstr(zone, "..");
	z->ok = sane && zone_load(z, zone);
	if (!z->ok) {
		free(z->at);
		free(z->idx);
		free(z->types);
		z->at = NULL;
		z->idx = NULL;
		z->n = 0;
		/* An unknown zone reads as UTC, as the C library's did; "UTC" is always known. */
		z->ntypes = 1;
		z->types = xcalloc(1, sizeof(*z->types));
		snprintf(z->types[0].abbr, sizeof(z->types[0].abbr), "UTC");
		memset(&z->footer, 0, sizeof(z->footer));
		z->ok = strcmp(zone, "UTC") == 0;
	}
	return z;
}

/*
 * Parsed zones, answers for unknown names included. Conversions run with the
 * lock held (they take microseconds), so a zone is never freed under a reader.
 */
static pthread_mutex_t zones_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone *zones[TZ_CACHE];
static size_t zones_next;

/* What a name that no zone has reads as: UTC. */
static struct tz_type unknown_type = {0, false, "UTC"};
static struct tz_zone unknown_zone = {.ntypes = 1, .types = &unknown_type};

/* The zone called name, read on first use. Call with zones_lock held. */
static struct tz_zone *zone_get(const char *name)
{
	/* Longer names than the cache keeps are no zone's (and never confused with one). */
	if (!name || strlen(name) >= sizeof(unknown_zone.name))
		return &unknown_zone;
	for (size_t i = 0; i < TZ_CACHE && zones[i]; i++)
		if (strcmp(zones[i]->name, name) == 0)
			return zones[i];
	struct tz_zone *z = zone_new(name);
	size_t slot = zones_next++ % TZ_CACHE;
	zone_free(zones[slot]);
	zones[slot] = z;
	return z;
}

/* The local type of the first non-DST type (the C library's choice before the first transition). */
static const struct tz_type *zone_first_type(const struct tz_zone *z)
{
	for (size_t i = 0; i < z->ntypes; i++)
		if (!z->types[i].isdst)
			return &z->types[i];
	return &z->types[0];
}

/* Local seconds at which rule r changes the clocks in year y. */
static int64_t rule_local(const struct tz_rule *r, int64_t y)
{
	int64_t day = days_from_civil((long)y, 1, 1);
	if (r->kind == 'J') {
		day += r->day - 1 + (leap_year(y) && r->day >= 60);
	} else if (r->kind == 'D') {
		day += r->day;
	} else {
		day = days_from_civil((long)y, r->month, 1);
		int d = (r->day - weekday_of(day) + 7) % 7 + (r->week - 1) * 7;
		while (d >= month_days(y, r->month))
			d -= 7;
		day += d;
	}
	return day * TZ_DAY + r->secs;
}

/*
 * The footer rule's changes around Unix second s: the last one at or before s
 * (*last, and whether it starts summer time) and the first one after (*next).
 */
static void footer_changes(const struct tz_footer *f, int64_t s, bool *summer, int64_t *next)
{
	int64_t civil_y;
	int m, d;
	civil_from_days(floor_div(s + f->std.utoff, TZ_DAY), &civil_y, &m, &d);
	int64_t last = INT64_MIN;
	*summer = false;
	*next = INT64_MAX;
	for (int64_t y = civil_y - 1; y <= civil_y + 1; y++) {
		int64_t start = rule_local(&f->start, y) - f->std.utoff;
		int64_t end = rule_local(&f->end, y) - f->summer.utoff;
		/* Where an end and a start meet, summer time goes on (all-year DST). */
		if (end <= s && end > last) {
			last = end;
			*summer = false;
		}
		if (start <= s && start >= last) {
			last = start;
			*summer = true;
		}
		if (start > s && start < *next)
			*next = start;
		if (end > s && end < *next)
			*next = end;
	}
}

/* The local time type in force at Unix second s, and when the next change is (*next). */
static const struct tz_type *zone_type_at(const struct tz_zone *z, int64_t s, int64_t *next)
{
	*next = INT64_MAX;
	if (z->n == 0 || s >= z->at[z->n - 1]) {
		if (z->footer.present) {
			if (!z->footer.dst)
				return &z->footer.std;
			bool summer;
			footer_changes(&z->footer, s, &summer, next);
			return summer ? &z->footer.summer : &z->footer.std;
		}
		return z->n ? &z->types[z->idx[z->n - 1]] : zone_first_type(z);
	}
	if (s < z->at[0]) {
		*next = z->at[0];
		return zone_first_type(z);
	}
	size_t lo = 0, hi = z->n - 1; /* at[lo] <= s < at[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->at[mid] <= s)
			lo = mid;
		else
			hi = mid;
	}
	*next = z->at[hi];
	return &z->types[z->idx[lo]];
}

static void zone_local(const struct tz_zone *z, int64_t t, struct tz_local *out)
{
	int64_t s = floor_div(t, 1000), next;
	const struct tz_type *ty = zone_type_at(z, s, &next);
	int64_t local = s + ty->utoff;
	int64_t day = floor_div(local, TZ_DAY), sod = local - day * TZ_DAY;
	int64_t y;
	civil_from_days(day, &y, &out->month, &out->day);
	out->year = (int)y;
	out->hour = (int)(sod / 3600);
	out->minute = (int)(sod / 60 % 60);
	out->second = (int)(sod % 60);
	out->weekday = weekday_of(day);
	out->yday = (int)(day - days_from_civil((long)y, 1, 1));
	out->utoff = ty->utoff;
	out->isdst = ty->isdst;
	snprintf(out->abbr, sizeof(out->abbr), "%s", ty->abbr);
}

/*
 * Unix seconds of local seconds L: the earliest instant whose local time is L,
 * or in a gap L read with the offset before it (so the time moves forward).
 */
static int64_t zone_from_local(const struct tz_zone *z, int64_t L)
{
	/* Offsets lie within -25 h .. +26 h: walk the stretches of one offset there. */
	int64_t s = L - 26 * 3600, gap = INT64_MIN, prev_t = INT64_MIN, prev_end = INT64_MIN;
	while (s <= L + 25 * 3600) {
		int64_t next;
		const struct tz_type *ty = zone_type_at(z, s, &next);
		int64_t t = L - ty->utoff;
		if (t >= s && t < next)
			return t;
		/* The stretch before ends below its candidate and this one starts above its own. */
		if (gap == INT64_MIN && prev_t >= prev_end && prev_end == s && t < s)
			gap = prev_t;
		prev_t = t;
		prev_end = next;
		if (next == INT64_MAX)
			break;
		s = next;
	}
	if (gap != INT64_MIN)
		return gap;
	int64_t next;
	return L - zone_type_at(z, L, &next)->utoff;
}

/* Unix ms of local year-month-day hh:mm; month and day may be out of range. */
static int64_t zone_local_ms(const struct tz_zone *z, int year, int month, int day, int hh, int mm)
{
	/* Years beyond a million would overflow the milliseconds: no calendar needs them. */
	year = year < -1000000 ? -1000000 : year > 1000000 ? 1000000 : year;
	int64_t y = year + floor_div(month - 1, 12);
	int m = (int)(month - 1 - floor_div(month - 1, 12) * 12) + 1;
	int64_t L = (int64_t)days_from_civil((long)y, m, 1) * TZ_DAY + (int64_t)(day - 1) * TZ_DAY +
		    (int64_t)hh * 3600 + (int64_t)mm * 60;
	return zone_from_local(z, L) * 1000;
}

bool tz_valid(const char *zone)
{
	if (!zone || !*zone || strlen(zone) > 64 || zone[0] == '/' || strstr(zone, ".."))
		return false;
	pthread_mutex_lock(&zones_lock);
	bool ok = zone_get(zone)->ok;
	pthread_mutex_unlock(&zones_lock);
	return ok;
}

void tz_local_time(const char *zone, int64_t t, struct tz_local *out)
{
	pthread_mutex_lock(&zones_lock);
	zone_local(zone_get(zone), t, out);
	pthread_mutex_unlock(&zones_lock);
}

int64_t tz_local_ms(const char *zone, int year, int month, int day, int hh, int mm)
{
	pthread_mutex_lock(&zones_lock);
	int64_t ms = zone_local_ms(zone_get(zone), year, month, day, hh, mm);
	pthread_mutex_unlock(&zones_lock);
	return ms;
}

/* Ways to pick a local time on t's local day, for the calendar functions below. */
enum day_pick { PICK_DAY, PICK_WEEK, PICK_MONTH };

static int64_t zone_pick(const char *zone, int64_t t, enum day_pick pick, int days, int hh, int mm)
{
	pthread_mutex_lock(&zones_lock);
	const struct tz_zone *z = zone_get(zone);
	struct tz_local lt;
	zone_local(z, t, &lt);
	int day = pick == PICK_MONTH  ? 1
		  : pick == PICK_WEEK ? lt.day - (lt.weekday + 6) % 7
				      : lt.day + days;
	int64_t ms = zone_local_ms(z, lt.year, lt.month, day, hh, mm);
	pthread_mutex_unlock(&zones_lock);
	return ms;
}

int64_t tz_day_start(const char *zone, int64_t t, int days)
{
	return zone_pick(zone, t, PICK_DAY, days, 0, 0);
}

int64_t tz_week_start(const char *zone, int64_t t)
{
	return zone_pick(zone, t, PICK_WEEK, 0, 0, 0);
}

int64_t tz_month_start(const char *zone, int64_t t)
{
	return zone_pick(zone, t, PICK_MONTH, 0, 0, 0);
}

long tz_day_number(const char *zone, int64_t t)
{
	struct tz_local lt;
	tz_local_time(zone, t, &lt);
	return days_from_civil(lt.year, lt.month, lt.day);
}

int64_t tz_at_time(const char *zone, int64_t t, int hh, int mm)
{
	return zone_pick(zone, t, PICK_DAY, 0, hh, mm);
}

void tz_format(const char *zone, int64_t t, const char *fmt, char *buf, int n)
{
	struct tz_local lt;
	tz_local_time(zone, t, &lt);
	struct tm tm = {0};
	tm.tm_year = lt.year - 1900;
	tm.tm_mon = lt.month - 1;
	tm.tm_mday = lt.day;
	tm.tm_hour = lt.hour;
	tm.tm_min = lt.minute;
	tm.tm_sec = lt.second;
	tm.tm_wday = lt.weekday;
	tm.tm_yday = lt.yday;
	tm.tm_isdst = lt.isdst;
	tm.tm_gmtoff = lt.utoff; /* %z and %Z read these, not the process's TZ */
	tm.tm_zone = lt.abbr;
	if (strftime(buf, (size_t)n, fmt, &tm) == 0 && n > 0)
		buf[0] = '\0';
}

bool parse_hhmm(const char *s, int *hh, int *mm)
{
	if (strlen(s) != 5 || s[2] != ':')
		return false;
	for (int i = 0; i < 5; i++)
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return false;
	int h = (s[0] - '0') * 10 + (s[1] - '0');
	int m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59)
		return false;
	*hh = h;
	*mm = m;
	return true;
}

bool parse_time_of_day(const char *s, int *hh, int *mm)
{
	char two[6];
	if (strlen(s) == 4 && s[0] >= '0' && s[0] <= '9') {
		snprintf(two, sizeof(two), "0%s", s);
		return parse_hhmm(two, hh, mm);
	}
	return parse_hhmm(s, hh, mm);
}

static const char *zoneinfo_dir(void)
{
	const char *dir = getenv("TZDIR");
	return dir && *dir ? dir : "/usr/share/zoneinfo";
}

/* Entries of the zoneinfo tree that are not zones: lowercase files (zone.tab,
 * posixrules, tzdata.zi, localtime) and the posix/ and right/ copies. */
static bool zone_entry(const char *name)
{
	return name[0] >= 'A' && name[0] <= 'Z' && strcmp(name, "posix") != 0 &&
	       strcmp(name, "right") != 0;
}

bool tz_canonical(const char *name, char *out, size_t n)
{
	if (!name || !*name || strlen(name) > 64 || name[0] == '/' || strstr(name, ".."))
		return false;
	if (tz_valid(name)) {
		snprintf(out, n, "%s", name);
		return true;
	}
	/* Component by component, the directory entry that matches ignoring case. */
	char path[512], found[80] = "";
	char *copy = xstrdup(name), *save = NULL;
	snprintf(path, sizeof(path), "%s", zoneinfo_dir());
	bool ok = true;
	for (char *part = strtok_r(copy, "/", &save); part && ok;
	     part = strtok_r(NULL, "/", &save)) {
		DIR *d = opendir(path);
		ok = false;
		for (struct dirent *e; d && (e = readdir(d));) {
			if (zone_entry(e->d_name) && strcasecmp(e->d_name, part) == 0) {
				size_t len = strlen(found);
				snprintf(found + len, sizeof(found) - len, "%s%.64s",
					 len ? "/" : "", e->d_name);
				len = strlen(path);
				snprintf(path + len, sizeof(path) - len, "/%.64s", e->d_name);
				ok = true;
				break;
			}
		}
		if (d)
			closedir(d);
	}
	free(copy);
	if (!ok || !tz_valid(found))
		return false;
	snprintf(out, n, "%s", found);
	return true;
}

struct zone_guess {
	char *want;     /* the typed name, lowercased */
	char best[160]; /* the best zone so far */
	int distance;   /* its edit distance; -1: a city matched exactly */
};

/* Lowercase, with spaces and dashes as underscores: "New-York" and "new york" are "new_york". */
static void fold_zone(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
		else if (*s == ' ' || *s == '-')
			*s = '_';
}

static void consider_zone(struct zone_guess *g, const char *zone)
{
	if (g->distance < 0)
		return;
	char *low = xstrdup(zone);
	fold_zone(low);
	const char *city = strrchr(low, '/');
	city = city ? city + 1 : low;
	if (strcmp(city, g->want) == 0) {
		g->distance = -1;
		snprintf(g->best, sizeof(g->best), "%s", zone);
	} else {
		/* Spelling slips: a third of the name, at most 3 edits. */
		int max = (int)strlen(g->want) / 3;
		max = max > 3 ? 3 : max;
		int d = text_distance(g->want, strchr(g->want, '/') ? low : city, max);
		if (d <= max && (!g->best[0] || d < g->distance)) {
			g->distance = d;
			snprintf(g->best, sizeof(g->best), "%s", zone);
		}
	}
	free(low);
}

static void walk_zones(struct zone_guess *g, const char *dir, const char *prefix, int depth)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		if (!zone_entry(e->d_name))
			continue;
		char path[512], zone[160];
		if (strlen(prefix) + strlen(e->d_name) > 70)
			continue;
		snprintf(path, sizeof(path), "%.400s/%.64s", dir, e->d_name);
		snprintf(zone, sizeof(zone), "%.80s%s%.64s", prefix, *prefix ? "/" : "", e->d_name);
		struct stat st;
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth < 3)
				walk_zones(g, path, zone, depth + 1);
		} else {
			consider_zone(g, zone);
		}
	}
	closedir(d);
}

bool tz_suggest(const char *name, char *out, size_t n)
{
	if (!name || !*name || strlen(name) > 64)
		return false;
	struct zone_guess g = {xstrdup(name), "", 0};
	fold_zone(g.want);
	walk_zones(&g, zoneinfo_dir(), "", 1);
	free(g.want);
	if (!g.best[0] || !tz_valid(g.best))
		return false;
	snprintf(out, n, "%s", g.best);
	return true;
}
