/*
 * A bot over a fresh store in a temporary folder, on a clock the test sets,
 * for tests of the modules above the store (commands, leaderboard, digest).
 */
#ifndef COHORT_TEST_BOT_FIXTURE_H
#define COHORT_TEST_BOT_FIXTURE_H

#include "bot/bot.h"
#include "bot/roadmap.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/util.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bot_fixture {
	char dir[64];
	struct store *st;
	struct roadmap *rm;
	struct bot *bot;
	int64_t now;
	char *text; /* the last reply, rendered */
	struct reply reply;
	int rc;
};

static inline int64_t fixture_now(void *ud)
{
	return ((struct bot_fixture *)ud)->now;
}

/* A fixture whose groups default to zone tz. Returns NULL on failure. */
static inline struct bot_fixture *bot_fixture_new(const char *tz)
{
	struct bot_fixture *f = xcalloc(1, sizeof(*f));
	char err[COHORT_ERR_LEN], path[128];
	snprintf(f->dir, sizeof(f->dir), "/tmp/cohort-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return NULL;
	snprintf(path, sizeof(path), "%s/c.db", f->dir);
	if (store_open(path, false, &f->st, err) || roadmap_load_default(&f->rm, err)) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	struct bot_opts o = {f->st, f->rm, "18:00", tz, fixture_now, f, NULL};
	if (bot_new(&o, &f->bot))
		return NULL;
	reply_init(&f->reply);
	return f;
}

static inline int bot_fixture_free(struct bot_fixture *f)
{
	bot_free(f->bot);
	store_free(f->st);
	roadmap_free(f->rm);
	reply_release(&f->reply);
	free(f->text);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* Runs "/command args" as member in group "test:group"; the rendered reply is returned. */
static inline const char *say_as(struct bot_fixture *f, const char *member, bool admin,
				 const char *command, const char *args)
{
	char id[64];
	snprintf(id, sizeof(id), "test:%s", member);
	struct event ev = {
		.platform = "test",
		.group_id = "test:group",
		.channel_id = "chan",
		.member_id = id,
		.member_name = member,
		.is_admin = admin,
		.command = command,
		.args = args,
	};
	reply_release(&f->reply);
	reply_init(&f->reply);
	free(f->text);
	f->rc = bot_handle(f->bot, &ev, &f->reply);
	f->text = reply_render_text(&f->reply);
	return f->text;
}

/* Unix ms of local time hh:mm on civil date y-m-d in zone. */
static inline int64_t local_time(const char *zone, int y, int m, int d, int hh, int mm)
{
	/* Noon UTC of that date lies on that local date in every zone within ±11 h. */
	long yy = y - (m <= 2);
	long era = (yy >= 0 ? yy : yy - 399) / 400;
	long yoe = yy - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	return tz_at_time(zone, (int64_t)days * 86400000LL + 12 * 3600000LL, hh, mm);
}

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("text lacks \"%s\":\n%s", (needle), (hay));                       \
	} while (0)
#define assert_lacks(hay, needle)                                                                  \
	do {                                                                                       \
		if (strstr((hay), (needle)))                                                       \
			fail_msg("text has \"%s\":\n%s", (needle), (hay));                         \
	} while (0)

#endif
