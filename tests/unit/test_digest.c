#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/digest.h"
#include "bot/scheduler.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)
#define TZ "Europe/Berlin"

/* A sink that records what the scheduler posts and can refuse on demand. */
struct sink_log {
	int posts;
	int fail_next;          /* refuse this many posts */
	const char *fail_group; /* refuse every post to this group */
	bool pending;           /* queue the posts: their outcome comes later */
	char group[64], channel[64], key[32];
	char text[4096];
};

static bool serves(void *ud, const char *group_id)
{
	(void)ud;
	return strncmp(group_id, "test:", 5) == 0;
}

static int post(void *ud, const char *group_id, const char *channel_id, const struct reply *r,
		const char *idem_key)
{
	struct sink_log *log = ud;
	if (log->fail_next > 0 || (log->fail_group && strcmp(group_id, log->fail_group) == 0)) {
		log->fail_next -= log->fail_next > 0;
		return COHORT_ERR_IO;
	}
	log->posts++;
	if (log->pending) {
		snprintf(log->key, sizeof(log->key), "%s", idem_key);
		return COHORT_ERR_PENDING;
	}
	snprintf(log->group, sizeof(log->group), "%s", group_id);
	snprintf(log->channel, sizeof(log->channel), "%s", channel_id);
	snprintf(log->key, sizeof(log->key), "%s", idem_key);
	char *text = reply_render_text(r);
	snprintf(log->text, sizeof(log->text), "%s", text);
	free(text);
	return COHORT_OK;
}

static int64_t tick(struct bot_fixture *f, struct sink_log *log)
{
	struct digest_sink sink = {serves, post, log, NULL};
	int64_t next;
	assert_int_equal(scheduler_run(f->bot, &sink, &next), COHORT_OK);
	return next;
}

static const char *preview(struct bot_fixture *f)
{
	struct digest d;
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	free(f->text);
	f->text = reply_render_text(&d.reply);
	digest_release(&d);
	return f->text;
}

static void act(struct bot_fixture *f, int64_t t, const char *member, const char *cmd,
		const char *topic)
{
	f->now = t;
	say_as(f, member, false, cmd, topic);
	if (!strstr(f->text, "\u2713"))
		fail_msg("/%s %s as %s: %s", cmd, topic, member, f->text);
}

/* Someone ("zed") logged progress in group long before the tests' days. */
static void seed(struct bot_fixture *f, const char *group)
{
	struct store_change c = {group,       "test:zed", "zed", "soap",
				 STATUS_DONE, NULL,       NULL,  local_time(TZ, 2026, 1, 5, 12, 0)};
	assert_int_equal(store_set_status(f->st, &c, NULL), COHORT_OK);
}

static int setup(void **state)
{
	struct bot_fixture *f = bot_fixture_new(TZ);
	if (!f)
		return -1;
	/* The group posts its digest in "chan" at 18:00 Berlin time. */
	f->now = local_time(TZ, 2026, 11, 23, 8, 0);
	say_as(f, "admin", true, "digest", "channel here");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	return bot_fixture_free(*state);
}

static void an_empty_day_gets_a_short_nudge(void **state)
{
	struct bot_fixture *f = *state;
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	assert_string_equal(preview(f),
			    "Daily digest \u2014 Wednesday 25 November\n"
			    "  A quiet day: nobody logged progress since the last digest.\n"
			    "  One topic keeps a streak alive \u2014 /next shows yours.\n");
}

static void a_new_member_is_welcomed(void **state)
{
	struct bot_fixture *f = *state;
	act(f, local_time(TZ, 2026, 11, 20, 10, 0), "ana", "done", "kafka");
	act(f, local_time(TZ, 2026, 11, 25, 10, 0), "ana", "done", "redis");
	act(f, local_time(TZ, 2026, 11, 25, 11, 0), "dee", "start", "docker");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	const char *t = preview(f);
	assert_contains(t, "\n  ana finished Redis\n");
	assert_contains(t, "\n  dee joined the group and started Docker\n");
	assert_contains(t, "Someone is on Docker \u2014 join them: /start Docker");
}

static void a_busy_day_shows_news_movement_progress_and_streaks(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	/* Day 1: bob leads. */
	act(f, local_time(TZ, 2026, 11, 24, 9, 0), "bob", "done", "kafka");
	act(f, local_time(TZ, 2026, 11, 24, 9, 5), "bob", "done", "redis");
	act(f, local_time(TZ, 2026, 11, 24, 9, 10), "ana", "done", "kafka");
	act(f, local_time(TZ, 2026, 11, 24, 9, 15), "cy", "done", "nginx");
	f->now = local_time(TZ, 2026, 11, 24, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "#1 bob \u2014 2 pts\n");
	assert_lacks(log.text, "\u25b2"); /* no earlier digest: no movement */
	/* Day 2: ana overtakes bob, dee arrives, two of them start Docker. */
	act(f, local_time(TZ, 2026, 11, 25, 8, 0), "ana", "done", "redis");
	act(f, local_time(TZ, 2026, 11, 25, 8, 30), "ana", "done", "docker");
	act(f, local_time(TZ, 2026, 11, 25, 9, 0), "ana", "start", "nginx");
	act(f, local_time(TZ, 2026, 11, 25, 9, 30), "dee", "done", "kubernetes");
	act(f, local_time(TZ, 2026, 11, 25, 10, 0), "bob", "start", "nginx");
	act(f, local_time(TZ, 2026, 11, 25, 10, 5), "cy", "skip", "soap");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 2);
	assert_string_equal(log.text,
			    "Daily digest \u2014 Wednesday 25 November\n"
			    "  ana finished Redis, Docker; started Nginx\n"
			    "  dee joined the group and finished Kubernetes\n"
			    "  bob started Nginx\n"
			    "  Leaderboard:\n"
			    "  #1 ana \u2014 3 pts  \u25b21\n"
			    "  #2 bob \u2014 2 pts  \u25bc1\n"
			    "  #3 cy \u2014 1 pt  \u25bc1\n" /* was #2 (shared) */
			    "  #3 dee \u2014 1 pt  new\n"
			    "  Group progress: 2% of the roadmap (+1 since the last digest).\n"
			    "  Streaks: ana 2 days.\n"
			    "  2 of you are on Nginx \u2014 compare notes: /who Nginx\n");
}

static void a_board_without_points_gets_no_heading(void **state)
{
	struct bot_fixture *f = *state;
	act(f, local_time(TZ, 2026, 11, 25, 9, 0), "ana", "start", "kafka");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	assert_string_equal(preview(f), "Daily digest \u2014 Wednesday 25 November\n"
					"  ana joined the group and started Kafka\n"
					"  Group progress: 0% of the roadmap.\n"
					"  Someone is on Kafka \u2014 join them: /start Kafka\n");
}

static void members_tied_at_the_cut_are_all_shown(void **state)
{
	struct bot_fixture *f = *state;
	/* a, b, c have 2 points; d..h (five) have 1: #4 is shared by five members. */
	const char *two[] = {"ann", "ben", "cat"};
	const char *one[] = {"dan", "eve", "fay", "gus", "hal"};
	int64_t t = local_time(TZ, 2026, 11, 25, 8, 0);
	for (size_t i = 0; i < 3; i++) {
		act(f, t += 60000, two[i], "done", "kafka");
		act(f, t += 60000, two[i], "done", "redis");
	}
	for (size_t i = 0; i < 5; i++)
		act(f, t += 60000, one[i], "done", "docker");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	const char *text = preview(f);
	assert_lacks(text, "Top ");
	assert_contains(text, "  Leaderboard:\n  #1 ann \u2014 2 pts\n  #1 ben \u2014 2 pts\n"
			      "  #1 cat \u2014 2 pts\n  #4 dan \u2014 1 pt\n  #4 eve \u2014 1 pt\n"
			      "  #4 fay \u2014 1 pt\n  #4 gus \u2014 1 pt\n  #4 hal \u2014 1 pt\n"
			      "  Group progress");
	/* Two more at 1 point: ten rows would be a wall, so the rest of the tie is counted. */
	act(f, t += 60000, "ivy", "done", "docker");
	act(f, t += 60000, "joe", "done", "docker");
	text = preview(f);
	assert_contains(text, "  #4 eve \u2014 1 pt\n  ... and 5 more with 1 pt (also #4)\n"
			      "  Group progress");
	assert_lacks(text, "#4 fay");
}

static void notes_are_shown_with_the_news(void **state)
{
	struct bot_fixture *f = *state;
	act(f, local_time(TZ, 2026, 11, 25, 9, 0), "ana", "done", "Kafka built a consumer");
	act(f, local_time(TZ, 2026, 11, 25, 9, 5), "ana", "done", "redis");
	act(f, local_time(TZ, 2026, 11, 25, 9, 10), "ana", "start",
	    "docker | chapter 2 of the book");
	char longnote[200];
	snprintf(longnote, sizeof(longnote), "nginx | %s",
		 "caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 "
		 "caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 "
		 "caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9");
	act(f, local_time(TZ, 2026, 11, 25, 9, 15), "bob", "done", longnote);
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	const char *t = preview(f);
	assert_contains(
		t, "\n  ana joined the group and finished Kafka (\u201cbuilt a consumer\u201d), "
		   "Redis; started Docker (\u201cchapter 2 of the book\u201d)\n");
	/* A long note is clipped to 80 bytes, at the end of a word... */
	assert_contains(t, "\n  bob joined the group and finished Nginx (\u201ccaf\u00e9 caf\u00e9 "
			   "caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9 "
			   "caf\u00e9 caf\u00e9 caf\u00e9 caf\u00e9\u2026\u201d)\n");
	/* ...or, in a note without spaces, never inside a character. */
	char nospace[200] = "soap | ";
	for (int i = 0; i < 45; i++)
		strcat(nospace, "\u00e9");
	act(f, local_time(TZ, 2026, 11, 25, 9, 20), "cy", "done", nospace);
	t = preview(f);
	char want[200] = "cy joined the group and finished SOAP (\u201c";
	for (int i = 0; i < 40; i++)
		strcat(want, "\u00e9");
	strcat(want, "\u2026\u201d)\n");
	assert_contains(t, want);
	/* Redis started again after it was finished: Kafka's note stays with Kafka. */
	act(f, local_time(TZ, 2026, 11, 25, 10, 0), "ana", "start", "redis");
	t = preview(f);
	assert_contains(t, "finished Kafka (\u201cbuilt a consumer\u201d), Redis; started Docker");
}

static void the_digest_posts_once_per_local_day(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	int64_t slot = local_time(TZ, 2026, 11, 25, 18, 0);
	f->now = slot - 60000;
	assert_int_equal(tick(f, &log), slot); /* the next due time is the slot */
	assert_int_equal(log.posts, 0);
	f->now = slot;
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 26, 18, 0));
	assert_int_equal(log.posts, 1);
	assert_string_equal(log.channel, "chan");
	assert_int_equal(strlen(log.key), 19); /* fits a Discord nonce (25) */
	char first_key[32];
	snprintf(first_key, sizeof(first_key), "%s", log.key);
	for (int i = 1; i <= 5; i++) {
		f->now = slot + i * HOUR; /* later ticks the same day post nothing */
		tick(f, &log);
	}
	assert_int_equal(log.posts, 1);
	f->now = local_time(TZ, 2026, 11, 26, 17, 59);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	f->now = local_time(TZ, 2026, 11, 26, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 2);
	assert_string_not_equal(log.key, first_key);
	char key[20];
	scheduler_idem_key("test:group", "2026-11-26", key);
	assert_string_equal(log.key, key);
}

static void a_missed_digest_is_caught_up_the_same_day_only(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	/* cohort was down at 18:00 and comes back at 21:30: it posts at once. */
	f->now = local_time(TZ, 2026, 11, 25, 21, 30);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Wednesday 25 November");
	/* Down all of the 26th; back on the 27th in the morning: the 26th is not posted. */
	f->now = local_time(TZ, 2026, 11, 27, 9, 0);
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 27, 18, 0));
	assert_int_equal(log.posts, 1);
	/* Just after midnight the late digest of the day before is not posted either. */
	f->now = local_time(TZ, 2026, 11, 28, 0, 5);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
}

static void an_unconfirmed_digest_is_resent_with_the_same_key(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	log.fail_next = 1;                               /* the platform is down */
	assert_int_equal(tick(f, &log), f->now + 60000); /* retry in a minute */
	assert_int_equal(log.posts, 0);
	struct store_digest rec;
	assert_int_equal(store_digest_get(f->st, "test:group", "2026-11-25", &rec), COHORT_OK);
	assert_int_equal(rec.sent_at, 0); /* recorded before sending, not yet confirmed */
	f->now += 60000;
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_string_equal(log.key, rec.idem_key);
	store_digest_release(&rec);
	f->now += 60000;
	tick(f, &log);
	assert_int_equal(log.posts, 1);
}

static void a_lost_claim_stops_the_wait_without_marking_the_digest_sent(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {.pending = true};
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_int_equal(scheduler_inflight(f->bot), 1);
	/* The claim lapsed meanwhile and another process took it. */
	const char *name = "digest:test:group:2026-11-25";
	assert_int_equal(store_lease_release(f->st, name, store_lease_holder()), COHORT_OK);
	struct store_lease l;
	assert_int_equal(store_lease_take(f->st, name, "other-process", 60000, false, &l),
			 COHORT_OK);
	f->now += 20000;
	tick(f, &log); /* the renewal is denied: the wait for the post ends */
	assert_int_equal(scheduler_inflight(f->bot), 0);
	/* Its late answer marks nothing: the holder's re-send (same key) decides. */
	char key[32];
	snprintf(key, sizeof(key), "%s", log.key);
	scheduler_sent(f->bot, key, COHORT_OK);
	struct store_digest rec;
	assert_int_equal(store_digest_get(f->st, "test:group", "2026-11-25", &rec), COHORT_OK);
	assert_int_equal(rec.sent_at, 0);
	assert_string_equal(rec.idem_key, key);
	store_digest_release(&rec);
	assert_int_equal(store_lease_get(f->st, name, &l), COHORT_OK);
	assert_string_equal(l.holder, "other-process"); /* not released by this process */
	/* Once the other process is gone and its claim released, this one re-sends it. */
	assert_int_equal(store_lease_release(f->st, name, "other-process"), COHORT_OK);
	log.pending = false;
	f->now += 20000;
	tick(f, &log);
	assert_int_equal(log.posts, 2);
	assert_string_equal(log.key, key);
}

static void one_failing_group_does_not_hold_back_another(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	assert_int_equal(store_set_digest_channel(f->st, "test:other", "chan2"), COHORT_OK);
	seed(f, "test:group");
	seed(f, "test:other");
	log.fail_group = "test:group";
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	assert_int_equal(tick(f, &log), f->now + 60000);
	assert_int_equal(log.posts, 1);
	assert_string_equal(log.group, "test:other");
	log.fail_group = NULL;
	f->now += 60000;
	tick(f, &log);
	assert_int_equal(log.posts, 2);
	assert_string_equal(log.group, "test:group");
}

static void dst_days_get_exactly_one_digest(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	/* 02:30 does not exist on 2026-03-29 in Berlin and happens twice on 2026-10-25. */
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 3, 1, 12, 0); /* set before the days it is tested on */
	say_as(f, "admin", true, "digest", "channel here");
	say_as(f, "admin", true, "digest", "time 02:30");
	f->now = local_time(TZ, 2026, 3, 29, 1, 59);
	tick(f, &log);
	assert_int_equal(log.posts, 0);
	for (int64_t t = local_time(TZ, 2026, 3, 29, 3, 0); t < local_time(TZ, 2026, 3, 30, 0, 0);
	     t += 30 * 60000) {
		f->now = t;
		tick(f, &log);
	}
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Sunday 29 March");
	for (int64_t t = local_time(TZ, 2026, 10, 25, 0, 0); t < local_time(TZ, 2026, 10, 26, 0, 0);
	     t += 15 * 60000) {
		f->now = t;
		tick(f, &log);
	}
	assert_int_equal(log.posts, 2);
	assert_contains(log.text, "Sunday 25 October");
}

static void a_group_nobody_has_spoken_in_gets_no_digest(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	f->now = local_time(TZ, 2026, 11, 25, 18, 0);
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 26, 18, 0));
	assert_int_equal(log.posts, 0);
	const char *t = preview(f);
	assert_contains(t, "Nothing to report yet: nobody in the group has logged progress.");
	assert_lacks(t, "quiet day");
	/* The first /done after digest time does not bring today's digest late. */
	act(f, local_time(TZ, 2026, 11, 25, 19, 0), "ana", "done", "kafka");
	f->now = local_time(TZ, 2026, 11, 25, 19, 1);
	tick(f, &log);
	assert_int_equal(log.posts, 0);
	f->now = local_time(TZ, 2026, 11, 26, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "ana joined the group and finished Kafka");
}

static void a_time_set_after_it_passed_waits_for_tomorrow(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	/* At 19:00 the admin moves the digest to 18:30: today's 18:30 has passed. */
	f->now = local_time(TZ, 2026, 11, 25, 19, 0);
	const char *t = say_as(f, "admin", true, "digest", "time 18:30");
	assert_contains(t, "The digest time is now 18:30 (Europe/Berlin)");
	assert_contains(t, "Today's 18:30 has passed: the first digest at the new time comes "
			   "tomorrow.");
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 26, 18, 30));
	f->now = local_time(TZ, 2026, 11, 25, 23, 0); /* a restart later that day: still not */
	tick(f, &log);
	assert_int_equal(log.posts, 0);
	f->now = local_time(TZ, 2026, 11, 26, 18, 30);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Thursday 26 November");
	/* Turning the channel on after the time passed does not post at once either. */
	say_as(f, "admin", true, "digest", "channel off");
	f->now = local_time(TZ, 2026, 11, 27, 20, 0);
	t = say_as(f, "admin", true, "digest", "channel here");
	assert_contains(t, "Today's 18:30 has passed: the first digest comes tomorrow.");
	tick(f, &log);
	assert_int_equal(log.posts, 1);
}

static void a_time_set_before_it_passed_is_posted_after_a_restart(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	/* Set at 10:00 for 12:00; cohort is down from 11:00 to 15:00: it posts at 15:00. */
	f->now = local_time(TZ, 2026, 11, 25, 10, 0);
	const char *t = say_as(f, "admin", true, "digest", "time 12:00");
	assert_lacks(t, "has passed");
	f->now = local_time(TZ, 2026, 11, 25, 15, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Wednesday 25 November");
}

static void groups_without_a_channel_or_adapter_get_nothing(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	say_as(f, "admin", true, "digest", "channel off");
	assert_int_equal(store_set_digest_channel(f->st, "elsewhere:1", "c"), COHORT_OK);
	f->now = local_time(TZ, 2026, 11, 25, 19, 0);
	assert_int_equal(tick(f, &log), INT64_MAX);
	assert_int_equal(log.posts, 0);
}

static void every_parses_and_says_what_is_wrong(void **state)
{
	(void)state;
	struct digest_every e;
	char err[256], out[DIGEST_EVERY_LEN];
	assert_true(scheduler_every_parse(NULL, &e, err, sizeof(err)));
	assert_int_equal(e.kind, EVERY_DAY);
	assert_true(scheduler_every_parse("Weekdays", &e, err, sizeof(err)));
	assert_int_equal(e.kind, EVERY_WEEKDAY);
	assert_true(scheduler_every_parse(" WEEKLY  Mon ", &e, err, sizeof(err)));
	assert_int_equal(e.kind, EVERY_WEEK);
	assert_int_equal(e.weekday, 1);
	scheduler_every_format(&e, out);
	assert_string_equal(out, "weekly monday");
	assert_true(scheduler_every_parse("weekly sunday", &e, err, sizeof(err)));
	assert_int_equal(e.weekday, 0);
	assert_true(scheduler_every_parse("weekly sat", &e, err, sizeof(err)));
	assert_int_equal(e.weekday, 6);
	assert_false(scheduler_every_parse("weekly", &e, err, sizeof(err)));
	assert_contains(err, "\u201cweekly\u201d needs a day");
	assert_false(scheduler_every_parse("weekly funday", &e, err, sizeof(err)));
	assert_contains(err, "\u201cfunday\u201d is not a day of the week");
	assert_false(scheduler_every_parse("weekly mo", &e, err, sizeof(err)));
	assert_false(scheduler_every_parse("hourly", &e, err, sizeof(err)));
	assert_contains(err, "\u201chourly\u201d is not how often a digest can be posted");
	assert_false(scheduler_every_parse("daily monday", &e, err, sizeof(err)));
	assert_contains(err, "\u201cdaily\u201d takes no day");
	assert_false(scheduler_every_parse("weekly monday friday", &e, err, sizeof(err)));
	assert_contains(err, "one day only");
}

static void digest_days_are_the_group_zone_days(void **state)
{
	(void)state;
	struct digest_every daily = {EVERY_DAY, 0}, weekdays = {EVERY_WEEKDAY, 0};
	struct digest_every monday = {EVERY_WEEK, 1};
	/* Friday 27 November 23:30 in Berlin is a weekday; 00:30 on the 28th is Saturday,
	 * though it is still Friday in UTC. */
	assert_true(scheduler_is_digest_day(&weekdays, TZ, local_time(TZ, 2026, 11, 27, 23, 30)));
	assert_false(scheduler_is_digest_day(&weekdays, TZ, local_time(TZ, 2026, 11, 28, 0, 30)));
	assert_false(scheduler_is_digest_day(&weekdays, "UTC", local_time("UTC", 2026, 11, 29, 12, 0)));
	assert_true(scheduler_is_digest_day(&weekdays, "UTC", local_time("UTC", 2026, 11, 30, 0, 0)));
	assert_true(scheduler_is_digest_day(&daily, TZ, local_time(TZ, 2026, 11, 28, 12, 0)));
	/* Monday 30 November 00:10 in Berlin is Sunday 23:10 UTC. */
	assert_true(scheduler_is_digest_day(&monday, TZ, local_time(TZ, 2026, 11, 30, 0, 10)));
	assert_false(scheduler_is_digest_day(&monday, "UTC", local_time(TZ, 2026, 11, 30, 0, 10)));
	assert_false(scheduler_is_digest_day(&monday, TZ, local_time(TZ, 2026, 12, 1, 0, 10)));
	/* Before 1970 too (negative day numbers). */
	assert_true(scheduler_is_digest_day(&monday, "UTC", local_time("UTC", 1969, 12, 29, 9, 0)));
}

static void the_next_digest_time_crosses_weeks_and_dst(void **state)
{
	(void)state;
	struct digest_every daily = {EVERY_DAY, 0}, weekdays = {EVERY_WEEKDAY, 0};
	struct digest_every monday = {EVERY_WEEK, 1}, sunday = {EVERY_WEEK, 0};
	/* Friday evening after the digest: weekdays' next is Monday, daily's Saturday. */
	int64_t fri = local_time(TZ, 2026, 11, 27, 19, 0);
	assert_int_equal(scheduler_next_slot(&weekdays, TZ, 18, 0, fri),
			 local_time(TZ, 2026, 11, 30, 18, 0));
	assert_int_equal(scheduler_next_slot(&daily, TZ, 18, 0, fri),
			 local_time(TZ, 2026, 11, 28, 18, 0));
	/* A weekly digest's time itself counts; a minute later it is a week away. */
	int64_t mon = local_time(TZ, 2026, 11, 30, 18, 0);
	assert_int_equal(scheduler_next_slot(&monday, TZ, 18, 0, mon), mon);
	assert_int_equal(scheduler_next_slot(&monday, TZ, 18, 0, mon + 60000), mon + 7 * DAY);
	/* Across the year. */
	assert_int_equal(scheduler_next_slot(&monday, TZ, 18, 0, local_time(TZ, 2026, 12, 30, 9, 0)),
			 local_time(TZ, 2027, 1, 4, 18, 0));
	/* Autumn: Sunday 25 October 2026 has 25 hours in Berlin; 18:00 is 17:00 UTC that
	 * day, 16:00 UTC the Sunday before. */
	int64_t oct18 = scheduler_next_slot(&sunday, TZ, 18, 0, local_time(TZ, 2026, 10, 13, 9, 0));
	int64_t oct25 = scheduler_next_slot(&sunday, TZ, 18, 0, oct18 + 1);
	assert_int_equal(oct18, local_time("UTC", 2026, 10, 18, 16, 0));
	assert_int_equal(oct25, local_time("UTC", 2026, 10, 25, 17, 0));
	assert_int_equal(oct25 - oct18, 7 * DAY + HOUR);
	/* Spring: 02:30 on Sunday 29 March 2026 does not exist in Berlin: it is 03:30 CEST
	 * (01:30 UTC); the week after, 02:30 CEST (00:30 UTC). */
	int64_t mar29 = scheduler_next_slot(&sunday, TZ, 2, 30, local_time(TZ, 2026, 3, 27, 9, 0));
	assert_int_equal(mar29, local_time("UTC", 2026, 3, 29, 1, 30));
	assert_int_equal(scheduler_next_slot(&sunday, TZ, 2, 30, mar29 + 1),
			 local_time("UTC", 2026, 4, 5, 0, 30));
	/* Weekdays over the spring change: Friday 27 March 18:00 CET to Monday 30 March
	 * 18:00 CEST is 3 days less an hour. */
	assert_int_equal(scheduler_next_slot(&weekdays, TZ, 18, 0,
					     local_time(TZ, 2026, 3, 27, 18, 1)) -
				 local_time(TZ, 2026, 3, 27, 18, 0),
			 3 * DAY - HOUR);
}

static void weekday_digests_skip_the_weekend_and_never_catch_it_up(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 11, 23, 8, 5);
	assert_contains(say_as(f, "admin", true, "digest", "every weekdays"),
			"The digest is now posted Monday to Friday");
	f->now = local_time(TZ, 2026, 11, 27, 18, 0); /* Friday */
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Weekday digest \u2014 Friday 27 November");
	/* Saturday at digest time and later: nothing, and the next check is Monday's. */
	act(f, local_time(TZ, 2026, 11, 28, 10, 0), "ana", "done", "kafka");
	f->now = local_time(TZ, 2026, 11, 28, 18, 0);
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 30, 18, 0));
	f->now = local_time(TZ, 2026, 11, 29, 21, 0); /* Sunday evening */
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 30, 18, 0));
	assert_int_equal(log.posts, 0 + 1);
	/* Monday: the weekend's news, said to be since Friday's digest. */
	f->now = local_time(TZ, 2026, 11, 30, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 2);
	assert_contains(log.text, "Weekday digest \u2014 Monday 30 November\n"
				  "  Since the last digest (Friday 27 November):\n"
				  "  ana joined the group and finished Kafka\n");
}

static void a_weekly_digest_comes_on_its_day_and_covers_the_week(void **state)
{
	struct bot_fixture *f = *state;
	struct sink_log log = {0};
	seed(f, "test:group");
	f->now = local_time(TZ, 2026, 11, 23, 8, 5);
	say_as(f, "admin", true, "digest", "every weekly monday");
	f->now = local_time(TZ, 2026, 11, 23, 18, 0); /* Monday */
	tick(f, &log);
	assert_int_equal(log.posts, 1);
	assert_contains(log.text, "Weekly digest \u2014 Monday 23 November\n");
	assert_contains(log.text, "A quiet week: nobody logged progress since the last digest "
				  "(Monday 16 November).");
	/* Tuesday to Sunday: news every day, no digest. */
	act(f, local_time(TZ, 2026, 11, 24, 9, 0), "ana", "done", "kafka");
	act(f, local_time(TZ, 2026, 11, 27, 9, 0), "bob", "done", "redis");
	act(f, local_time(TZ, 2026, 11, 29, 9, 0), "ana", "done", "docker");
	for (int d = 24; d <= 29; d++) {
		f->now = local_time(TZ, 2026, 11, d, 18, 30);
		assert_int_equal(tick(f, &log), local_time(TZ, 2026, 11, 30, 18, 0));
	}
	assert_int_equal(log.posts, 1);
	/* A week after the last one, one digest with the whole week in it. */
	f->now = local_time(TZ, 2026, 11, 30, 18, 0);
	assert_int_equal(tick(f, &log), local_time(TZ, 2026, 12, 7, 18, 0));
	assert_int_equal(log.posts, 2);
	assert_contains(log.text, "Weekly digest \u2014 Monday 30 November\n"
				  "  Since the last digest (Monday 23 November):\n"
				  "  ana joined the group and finished Kafka, Docker\n"
				  "  bob joined the group and finished Redis\n");
	/* Switching to daily: Tuesday's digest comes, covering a day. */
	f->now = local_time(TZ, 2026, 12, 1, 9, 0);
	say_as(f, "admin", true, "digest", "every daily");
	act(f, local_time(TZ, 2026, 12, 1, 10, 0), "bob", "done", "kafka");
	f->now = local_time(TZ, 2026, 12, 1, 18, 0);
	tick(f, &log);
	assert_int_equal(log.posts, 3);
	assert_contains(log.text, "Daily digest \u2014 Tuesday 01 December\n"
				  "  bob finished Kafka\n");
	assert_lacks(log.text, "Since the last digest");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(an_empty_day_gets_a_short_nudge),
		T(a_new_member_is_welcomed),
		T(a_busy_day_shows_news_movement_progress_and_streaks),
		T(a_board_without_points_gets_no_heading),
		T(members_tied_at_the_cut_are_all_shown),
		T(notes_are_shown_with_the_news),
		T(the_digest_posts_once_per_local_day),
		T(a_missed_digest_is_caught_up_the_same_day_only),
		T(an_unconfirmed_digest_is_resent_with_the_same_key),
		T(a_lost_claim_stops_the_wait_without_marking_the_digest_sent),
		T(one_failing_group_does_not_hold_back_another),
		T(dst_days_get_exactly_one_digest),
		T(a_group_nobody_has_spoken_in_gets_no_digest),
		T(a_time_set_after_it_passed_waits_for_tomorrow),
		T(a_time_set_before_it_passed_is_posted_after_a_restart),
		T(groups_without_a_channel_or_adapter_get_nothing),
		cmocka_unit_test(every_parses_and_says_what_is_wrong),
		cmocka_unit_test(digest_days_are_the_group_zone_days),
		cmocka_unit_test(the_next_digest_time_crosses_weeks_and_dst),
		T(weekday_digests_skip_the_weekend_and_never_catch_it_up),
		T(a_weekly_digest_comes_on_its_day_and_covers_the_week),
	};
	return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
