#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/leaderboard.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)

static void done_at(struct bot_fixture *f, const char *member, const char *topic, int64_t t)
{
	f->now = t;
	const char *reply = say_as(f, member, false, "done", topic);
	if (!strstr(reply, "finished"))
		fail_msg("/done %s as %s: %s", topic, member, reply);
}

/* The board as "name:points@rank name:points@rank ...". */
static const char *board(struct bot_fixture *f, enum lb_period p, int limit, const char *me)
{
	static char out[256];
	struct leaderboard lb;
	assert_int_equal(leaderboard_build(f->bot, "test:group", p, limit, me, NULL, &lb),
			 COHORT_OK);
	out[0] = '\0';
	for (size_t i = 0; i < lb.n; i++) {
		size_t n = strlen(out);
		snprintf(out + n, sizeof(out) - n, "%s%s:%d@%d", i ? " " : "",
			 lb.rows[i].member_name, lb.rows[i].points, lb.rows[i].rank);
	}
	leaderboard_release(&lb);
	return out;
}

static int setup_berlin(void **state)
{
	*state = bot_fixture_new("Europe/Berlin");
	return *state ? 0 : -1;
}

static int setup_new_york(void **state)
{
	*state = bot_fixture_new("America/New_York");
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	return bot_fixture_free(*state);
}

static void ties_share_a_rank_earlier_achiever_first(void **state)
{
	struct bot_fixture *f = *state;
	int64_t t = local_time("Europe/Berlin", 2026, 11, 24, 10, 0);
	done_at(f, "bob", "kafka", t);
	done_at(f, "cy", "kafka", t + 1000);
	done_at(f, "cy", "redis", t + 2000); /* cy reaches 2 first */
	done_at(f, "bob", "redis", t + 3000);
	done_at(f, "dee", "docker", t + 4000);
	done_at(f, "eve", "docker", t + 5000);
	assert_string_equal(board(f, LB_ALL, 10, NULL), "cy:2@1 bob:2@1 dee:1@3 eve:1@3");
	/* The top two, plus eve's own row further down. */
	assert_string_equal(board(f, LB_ALL, 2, "test:eve"), "cy:2@1 bob:2@1 eve:1@3");
	/* Undo drops a point; cy reached one point (kafka) before dee and eve did. */
	f->now = t + 6000;
	say_as(f, "cy", false, "undo", "");
	assert_string_equal(board(f, LB_ALL, 10, NULL), "bob:2@1 cy:1@2 dee:1@2 eve:1@2");
	assert_string_equal(board(f, LB_WEEK, 10, NULL), "bob:2@1 cy:1@2 dee:1@2 eve:1@2");
}

static void weeks_start_on_monday_in_the_group_zone(void **state)
{
	struct bot_fixture *f = *state;
	/* Sunday 2026-11-29 23:30 in Berlin is still last week; Monday 00:30 is this week,
	 * though both are Sunday in UTC. */
	done_at(f, "ana", "kafka", local_time("Europe/Berlin", 2026, 11, 29, 23, 30));
	done_at(f, "bob", "kafka", local_time("Europe/Berlin", 2026, 11, 30, 0, 30));
	f->now = local_time("Europe/Berlin", 2026, 11, 30, 12, 0);
	assert_string_equal(board(f, LB_WEEK, 10, NULL), "bob:1@1");
	assert_string_equal(board(f, LB_MONTH, 10, NULL), "ana:1@1 bob:1@1");
	/* On Tuesday 1 December both November dones left the month board, not the week's. */
	f->now = local_time("Europe/Berlin", 2026, 12, 1, 0, 10);
	assert_string_equal(board(f, LB_MONTH, 10, NULL), "");
	assert_string_equal(board(f, LB_WEEK, 10, NULL), "bob:1@1");
	assert_string_equal(board(f, LB_ALL, 10, NULL), "ana:1@1 bob:1@1");
}

static void months_follow_new_york_midnight(void **state)
{
	struct bot_fixture *f = *state;
	/* 23:00 on 30 November in New York is already December in UTC. */
	done_at(f, "ana", "kafka", local_time("America/New_York", 2026, 11, 30, 23, 0));
	f->now = local_time("America/New_York", 2026, 11, 30, 23, 30);
	assert_string_equal(board(f, LB_MONTH, 10, NULL), "ana:1@1");
	f->now = local_time("America/New_York", 2026, 12, 1, 0, 30);
	assert_string_equal(board(f, LB_MONTH, 10, NULL), "");
}

static void a_new_zone_recounts_the_weeks(void **state)
{
	struct bot_fixture *f = *state;
	/* Monday 00:30 in Berlin is Sunday 23:30 in London: another week there. */
	done_at(f, "ana", "kafka", local_time("Europe/Berlin", 2026, 11, 30, 0, 30));
	f->now = local_time("Europe/Berlin", 2026, 11, 30, 12, 0);
	assert_string_equal(board(f, LB_WEEK, 10, NULL), "ana:1@1");
	say_as(f, "ana", true, "digest", "time 18:00 Europe/London");
	assert_contains(f->text, "Europe/London");
	assert_string_equal(board(f, LB_WEEK, 10, NULL), "");
}

static void movement_is_on_the_all_time_board_only(void **state)
{
	struct bot_fixture *f = *state;
	done_at(f, "ana", "kafka", local_time("Europe/Berlin", 2026, 11, 24, 9, 0));
	/* Yesterday's digest recorded ana #1, bob #2. */
	struct store_rank_entry was[] = {{"test:ana", 1, 1}, {"test:bob", 2, 0}};
	assert_int_equal(
		store_digest_record(f->st, "test:group", "2026-11-24", "k", f->now, 1, was, 2),
		COHORT_OK);
	done_at(f, "bob", "kafka", local_time("Europe/Berlin", 2026, 11, 25, 9, 0));
	done_at(f, "bob", "redis", local_time("Europe/Berlin", 2026, 11, 25, 9, 5));
	struct leaderboard lb;
	assert_int_equal(leaderboard_build(f->bot, "test:group", LB_ALL, 10, NULL, NULL, &lb),
			 COHORT_OK);
	assert_true(lb.has_previous);
	assert_string_equal(lb.rows[0].member_name, "bob");
	assert_int_equal(lb.rows[0].movement, 1);
	assert_int_equal(lb.rows[1].movement, -1);
	leaderboard_release(&lb);
	/* Week and month boards restart each period: no movement is claimed there. */
	for (enum lb_period p = LB_WEEK; p <= LB_MONTH; p++) {
		assert_int_equal(leaderboard_build(f->bot, "test:group", p, 10, NULL, NULL, &lb),
				 COHORT_OK);
		assert_false(lb.has_previous);
		assert_int_equal(lb.rows[0].movement, 0);
		assert_int_equal(lb.rows[1].movement, 0);
		leaderboard_release(&lb);
	}
	const char *t = say_as(f, "ana", false, "leaderboard", "week");
	assert_lacks(t, "\u25b2");
	assert_lacks(t, "places moved");
	t = say_as(f, "ana", false, "leaderboard", "all");
	assert_contains(t, "\u25b21");
	assert_contains(t, "places moved since the last digest");
}

static struct streaks streaks_of(struct bot_fixture *f, const char *member, const char *tz)
{
	struct streaks s;
	char id[64];
	snprintf(id, sizeof(id), "test:%s", member);
	assert_int_equal(leaderboard_streaks(f->bot, "test:group", id, tz, f->now, &s), COHORT_OK);
	return s;
}

static void streaks_cross_midnight_in_local_time(void **state)
{
	struct bot_fixture *f = *state;
	const char *tz = "Europe/Berlin";
	/* 23:50 and 00:10 local are two days (though the same UTC day: 22:50, 23:10). */
	done_at(f, "ana", "kafka", local_time(tz, 2026, 11, 20, 23, 50));
	done_at(f, "ana", "redis", local_time(tz, 2026, 11, 21, 0, 10));
	f->now = local_time(tz, 2026, 11, 21, 12, 0);
	struct streaks s = streaks_of(f, "ana", tz);
	assert_int_equal(s.current, 2);
	/* Yesterday's streak still counts today; the day after tomorrow it has ended. */
	f->now = local_time(tz, 2026, 11, 22, 23, 59);
	assert_int_equal(streaks_of(f, "ana", tz).current, 2);
	f->now = local_time(tz, 2026, 11, 23, 0, 1);
	s = streaks_of(f, "ana", tz);
	assert_int_equal(s.current, 0);
	assert_int_equal(s.longest, 2);
	/* A new one-day streak; the longest stays 2. */
	done_at(f, "ana", "docker", local_time(tz, 2026, 11, 23, 9, 0));
	s = streaks_of(f, "ana", tz);
	assert_int_equal(s.current, 1);
	assert_int_equal(s.longest, 2);
}

static void streaks_cross_dst_in_berlin(void **state)
{
	struct bot_fixture *f = *state;
	const char *tz = "Europe/Berlin";
	/* Clocks spring forward on 2026-03-29 (a 23-hour day) and fall back on 2026-10-25. */
	done_at(f, "ana", "kafka", local_time(tz, 2026, 3, 28, 23, 30));
	done_at(f, "ana", "redis", local_time(tz, 2026, 3, 29, 23, 30));
	done_at(f, "ana", "docker", local_time(tz, 2026, 3, 30, 0, 30));
	f->now = local_time(tz, 2026, 3, 30, 22, 0);
	assert_int_equal(streaks_of(f, "ana", tz).current, 3);
	done_at(f, "bob", "kafka", local_time(tz, 2026, 10, 24, 23, 30));
	done_at(f, "bob", "redis", local_time(tz, 2026, 10, 25, 23, 30)); /* a 25-hour day */
	f->now = local_time(tz, 2026, 10, 26, 23, 59);
	assert_int_equal(streaks_of(f, "bob", tz).current, 2);
}

static void streaks_cross_dst_in_new_york(void **state)
{
	struct bot_fixture *f = *state;
	const char *tz = "America/New_York";
	/* Clocks fall back on 2026-11-01 and spring forward on 2026-03-08. */
	done_at(f, "ana", "kafka", local_time(tz, 2026, 10, 31, 23, 45));
	done_at(f, "ana", "redis", local_time(tz, 2026, 11, 1, 1, 30)); /* the repeated hour */
	done_at(f, "ana", "docker", local_time(tz, 2026, 11, 2, 0, 15));
	f->now = local_time(tz, 2026, 11, 2, 20, 0);
	struct streaks s = streaks_of(f, "ana", tz);
	assert_int_equal(s.current, 3);
	assert_int_equal(s.longest, 3);
	done_at(f, "bob", "kafka", local_time(tz, 2026, 3, 7, 22, 0));
	done_at(f, "bob", "redis", local_time(tz, 2026, 3, 8, 3, 30)); /* after the skipped hour */
	f->now = local_time(tz, 2026, 3, 9, 8, 0);
	assert_int_equal(streaks_of(f, "bob", tz).current, 2);
	/* The same instants counted in UTC fall on two days only: zones matter. */
	f->now = local_time(tz, 2026, 11, 2, 20, 0);
	assert_int_equal(streaks_of(f, "ana", "UTC").current, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ties_share_a_rank_earlier_achiever_first,
						setup_berlin, teardown),
		cmocka_unit_test_setup_teardown(weeks_start_on_monday_in_the_group_zone,
						setup_berlin, teardown),
		cmocka_unit_test_setup_teardown(months_follow_new_york_midnight, setup_new_york,
						teardown),
		cmocka_unit_test_setup_teardown(a_new_zone_recounts_the_weeks, setup_berlin,
						teardown),
		cmocka_unit_test_setup_teardown(movement_is_on_the_all_time_board_only,
						setup_berlin, teardown),
		cmocka_unit_test_setup_teardown(streaks_cross_midnight_in_local_time, setup_berlin,
						teardown),
		cmocka_unit_test_setup_teardown(streaks_cross_dst_in_berlin, setup_berlin,
						teardown),
		cmocka_unit_test_setup_teardown(streaks_cross_dst_in_new_york, setup_new_york,
						teardown),
	};
	return cmocka_run_group_tests_name("leaderboard", tests, NULL, NULL);
}
