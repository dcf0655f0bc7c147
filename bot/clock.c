#include "clock.h"

#include "text.h"
#include "util.h"

#include <dirent.h>
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

/* Whether zone names a TZif file in the zoneinfo database. */
static bool zone_file_ok(const char *zone)
{
	if (strcmp(zone, "UTC") == 0)
		return true;
	for (const char *p = zone; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '/' || c == '_' || c == '-' || c == '+'))
			return false;
	}
	const char *dir = getenv("TZDIR");
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", zone);
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	char magic[4] = {0};
	size_t n = fread(magic, 1, 4, f);
	fclose(f);
	return n == 4 && memcmp(magic, "TZif", 4) == 0;
}

bool tz_valid(const char *zone)
{
	if (!zone || !*zone || strlen(zone) > 64 || zone[0] == '/' || strstr(zone, ".."))
		return false;
	/* Groups' zones are checked on every command: remember the answers. */
	static struct {
		char name[65];
		bool ok;
	} seen[32];
	static size_t nseen, next_slot;
	for (size_t i = 0; i < nseen; i++)
		if (strcmp(seen[i].name, zone) == 0)
			return seen[i].ok;
	bool ok = zone_file_ok(zone);
	size_t slot = nseen < 32 ? nseen++ : next_slot++ % 32;
	snprintf(seen[slot].name, sizeof(seen[slot].name), "%s", zone);
	seen[slot].ok = ok;
	return ok;
}

/* Switches the C library's local time to zone; cheap when it is already in force. */
static void use_zone(const char *zone)
{
	static char current[80];
	if (strcmp(current, zone) == 0)
		return;
	snprintf(current, sizeof(current), "%s", zone);
	setenv("TZ", zone, 1);
	tzset();
}

static struct tm local_tm(const char *zone, int64_t t)
{
	use_zone(zone);
	time_t s = (time_t)(t >= 0 ? t / 1000 : (t - 999) / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	return tm;
}

/* Unix ms of local y-m-d hh:mm (fields may be out of range; mktime normalises). */
static int64_t local_to_ms(int year, int mon, int mday, int hh, int mm)
{
	struct tm tm = {0};
	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_isdst = -1;
	time_t s = mktime(&tm);
	return (int64_t)s * 1000;
}

int64_t tz_day_start(const char *zone, int64_t t, int days)
{
	struct tm tm = local_tm(zone, t);
	return local_to_ms(tm.tm_year, tm.tm_mon, tm.tm_mday + days, 0, 0);
}

int64_t tz_week_start(const char *zone, int64_t t)
{
	struct tm tm = local_tm(zone, t);
	int since_monday = (tm.tm_wday + 6) % 7;
	return local_to_ms(tm.tm_year, tm.tm_mon, tm.tm_mday - since_monday, 0, 0);
}

int64_t tz_month_start(const char *zone, int64_t t)
{
	struct tm tm = local_tm(zone, t);
	return local_to_ms(tm.tm_year, tm.tm_mon, 1, 0, 0);
}

long tz_day_number(const char *zone, int64_t t)
{
	struct tm tm = local_tm(zone, t);
	return days_from_civil(tm.tm_year + 1900L, tm.tm_mon + 1L, tm.tm_mday);
}

int64_t tz_at_time(const char *zone, int64_t t, int hh, int mm)
{
	struct tm tm = local_tm(zone, t);
	return local_to_ms(tm.tm_year, tm.tm_mon, tm.tm_mday, hh, mm);
}

void tz_format(const char *zone, int64_t t, const char *fmt, char *buf, int n)
{
	struct tm tm = local_tm(zone, t);
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
