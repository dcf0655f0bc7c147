#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/digest.h"
#include "bot/goal.h"

/* Wednesday 2026-11-25 12:00 UTC. */
#define T0 1795608000000LL
#define DAY 86400000LL
#define HOUR 3600000LL

static int64_t utc(int y, int m, int d, int hh, int mm)
{
	return local_time("UTC", y, m, d, hh, mm);
}

/* ---- the pace arithmetic ---- */

/* Ten topics over ten days (2026-11-25 to 2026-12-04): one a day. */
static void day_one_is_on_track_with_a_share_for_today(void **state)
{
	(void)state;
	int64_t fin[10] = {0};
	struct goal_pace p;
	assert_true(goal_pace("UTC", T0, "2026-12-04", T0, fin, 10, &p));
	assert_int_equal(p.state, GOAL_ON_TRACK);
	assert_int_equal(p.total, 10);
	assert_int_equal(p.left, 10);
	assert_int_equal(p.days_total, 10);
	assert_int_equal(p.days_left, 10);
	assert_int_equal(p.today, 1);
	assert_int_equal(p.next, 0);
}

static void days_without_progress_fall_behind_and_progress_catches_up(void **state)
{
	(void)state;
	int64_t fin[10] = {0};
	struct goal_pace p;
	int64_t now = T0 + 3 * DAY; /* 2026-11-28: three days of the plan are over */
	assert_true(goal_pace("UTC", T0, "2026-12-04", now, fin, 10, &p));
	assert_int_equal(p.state, GOAL_BEHIND);
	assert_int_equal(p.behind, 3);
	assert_int_equal(p.days_left, 7);
	/* Three today: this morning's plan, and one more keeps tonight's. */
	fin[0] = fin[1] = fin[2] = now;
	assert_true(goal_pace("UTC", T0, "2026-12-04", now, fin, 10, &p));
	assert_int_equal(p.state, GOAL_ON_TRACK);
	assert_int_equal(p.today, 1);
	assert_int_equal(p.next, 3);
	/* Five: beyond tonight's plan (six left) by one. */
	fin[3] = fin[4] = now;
	assert_true(goal_pace("UTC", T0, "2026-12-04", now, fin, 10, &p));
	assert_int_equal(p.state, GOAL_AHEAD);
	assert_int_equal(p.ahead, 1);
	/* Topics finished before the goal was set are not part of its plan. */
	int64_t early[10] = {T0 - DAY, T0 - DAY, T0 - DAY, T0 - DAY, T0 - DAY};
	assert_true(goal_pace("UTC", T0, "2026-12-04", now, early, 10, &p));
	assert_int_equal(p.left_at_set, 5);
	assert_int_equal(p.state, GOAL_BEHIND);
	assert_int_equal(p.behind, 1); /* 5 spread over 10 days: 5 - 5*3/10 = 4 left by now */
}

static void a_goal_due_today_says_what_is_left(void **state)
{
	(void)state;
	int64_t fin[4] = {T0, T0, 0, 0};
	struct goal_pace p;
	assert_true(goal_pace("UTC", T0, "2026-11-28", utc(2026, 11, 28, 23, 59), fin, 4, &p));
	assert_int_equal(p.state, GOAL_DUE_TODAY);
	assert_int_equal(p.left, 2);
	assert_int_equal(p.today, 2);
	assert_int_equal(p.days_left, 1);
	assert_int_equal(p.next, 2);
	/* Set and due the same day. */
	assert_true(goal_pace("UTC", T0, "2026-11-25", T0, fin, 4, &p));
	assert_int_equal(p.state, GOAL_DUE_TODAY);
	assert_int_equal(p.days_total, 1);
}

static void a_passed_goal_is_missed_by_what_was_left_when_its_day_ended(void **state)
{
	(void)state;
	int64_t late = utc(2026, 11, 29, 10, 0);
	int64_t fin[5] = {T0, utc(2026, 11, 28, 23, 59), late, late, 0};
	struct goal_pace p;
	assert_true(goal_pace("UTC", T0, "2026-11-28", utc(2026, 11, 30, 9, 0), fin, 5, &p));
	assert_int_equal(p.state, GOAL_MISSED);
	assert_int_equal(p.missed_by, 3); /* two finished the day after, one never */
	assert_int_equal(p.left, 1);
	assert_int_equal(p.days_left, 0);
	/* Finished later still: reached, and it says the due date had passed. */
	fin[4] = late;
	assert_true(goal_pace("UTC", T0, "2026-11-28", utc(2026, 11, 30, 9, 0), fin, 5, &p));
	assert_int_equal(p.state, GOAL_REACHED);
	assert_int_equal(p.reached_at, late);
	assert_int_equal(p.missed_by, 3);
}

static void a_reached_goal_is_reached(void **state)
{
	(void)state;
	int64_t fin[2] = {T0 + HOUR, T0 + 2 * HOUR};
	struct goal_pace p;
	assert_true(goal_pace("UTC", T0, "2026-12-24", T0 + DAY, fin, 2, &p));
	assert_int_equal(p.state, GOAL_REACHED);
	assert_int_equal(p.reached_at, T0 + 2 * HOUR);
	assert_int_equal(p.missed_by, 0);
	assert_int_equal(p.next, -1);
	assert_false(goal_pace("UTC", T0, "2026-02-30", T0, fin, 2, &p));
}

/*
 * Days are dates of the group's zone. Berlin springs forward on 2027-03-28
 * (a 23-hour day): set at 23:30 on the 27th, asked at 00:30 on the 29th,
 * which is only 24 hours later but two days of the plan.
 */
static void days_are_local_dates_across_a_spring_forward(void **state)
{
	(void)state;
	const char *tz = "Europe/Berlin";
	int64_t set = local_time(tz, 2027, 3, 27, 23, 30);
	int64_t now = local_time(tz, 2027, 3, 29, 0, 30);
	assert_int_equal(now - set, DAY);
	int64_t fin[4] = {0};
	struct goal_pace p;
	assert_true(goal_pace(tz, set, "2027-03-30", now, fin, 4, &p));
	assert_int_equal(p.days_total, 4);
	assert_int_equal(p.days_left, 2);
	assert_int_equal(p.state, GOAL_BEHIND);
	assert_int_equal(p.behind, 2);
}

/*
 * New York falls back on 2027-11-07 (a 25-hour day): a topic finished at
 * 23:30 that evening was on time; its day ends at local midnight, 05:00 UTC.
 */
static void the_due_day_ends_at_local_midnight_across_a_fall_back(void **state)
{
	(void)state;
	const char *tz = "America/New_York";
	int64_t set = local_time(tz, 2027, 11, 1, 9, 0);
	int64_t fin[3] = {local_time(tz, 2027, 11, 7, 23, 30), local_time(tz, 2027, 11, 8, 0, 30),
			  0};
	struct goal_pace p;
	assert_true(
		goal_pace(tz, set, "2027-11-07", local_time(tz, 2027, 11, 9, 12, 0), fin, 3, &p));
	assert_int_equal(p.state, GOAL_MISSED);
	assert_int_equal(p.missed_by, 2);
	assert_int_equal(p.days_total, 7);
	/* At 23:59 on the 7th it was still due today. */
	assert_true(
		goal_pace(tz, set, "2027-11-07", local_time(tz, 2027, 11, 7, 23, 59), fin, 3, &p));
	assert_int_equal(p.state, GOAL_DUE_TODAY);
}

/* ---- dates as typed ---- */

static const char *date_of(const char *typed, int64_t now)
{
	static char out[11], why[160];
	if (!goal_parse_date(typed, "UTC", now, out, why, sizeof(why)))
		return why;
	return out;
}

static void dates_are_read_as_people_type_them(void **state)
{
	(void)state;
	assert_string_equal(date_of("2027-03-31", T0), "2027-03-31");
	assert_string_equal(date_of("31 March", T0), "2027-03-31");
	assert_string_equal(date_of("march 31", T0), "2027-03-31");
	assert_string_equal(date_of("31 Mar 2028", T0), "2028-03-31");
	assert_string_equal(date_of("March 31, 2027", T0), "2027-03-31");
	assert_string_equal(date_of("1st Dec", T0), "2026-12-01");
	assert_string_equal(date_of("Sept 3rd", T0), "2027-09-03");
	/* Without a year: the next such day, today included. */
	assert_string_equal(date_of("25 November", T0), "2026-11-25");
	assert_string_equal(date_of("24 November", T0), "2027-11-24");
	assert_string_equal(date_of("29 February", T0), "2028-02-29");
	/* The rest is a clear no. */
	assert_non_null(strstr(date_of("31/03", T0), "day/month or month/day"));
	assert_non_null(strstr(date_of("31 April", T0), "April has 30 days"));
	assert_non_null(strstr(date_of("29 Feb 2027", T0), "February 2027 has 28 days"));
	assert_non_null(strstr(date_of("2027-02-30", T0), "not a day of the calendar"));
	assert_non_null(strstr(date_of("31 Decembr", T0), "did you mean December?"));
	assert_non_null(strstr(date_of("31 March 27", T0), "is not a year"));
	assert_non_null(strstr(date_of("next week", T0), "is not a day and a month"));
	assert_non_null(strstr(date_of("soon", T0), "is not a date"));
}

/* ---- the command ---- */

static int setup(void **state)
{
	struct bot_fixture *f = bot_fixture_new("UTC");
	if (!f)
		return -1;
	f->now = T0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	return bot_fixture_free(*state);
}

static const char *say(struct bot_fixture *f, const char *command, const char *args)
{
	return say_as(f, "ana", false, command, args);
}

static void a_goal_is_set_shown_and_removed(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "goal", "");
	assert_contains(t, "No goal yet");
	t = say(f, "goal", "Message Brokers by 2026-12-04");
	assert_contains(t, "Goal set: Message Brokers by 2026-12-04");
	assert_contains(t, "2 of 2 topics left, 10 days to go: on track");
	assert_contains(t, "Next: RabbitMQ");
	assert_true(f->reply.ephemeral);
	t = say(f, "goal", "");
	assert_contains(t, "Goal: Message Brokers by 2026-12-04");
	f->now = T0 + 6 * DAY; /* 2026-12-01: the plan had one done by now */
	t = say(f, "progress", "");
	assert_contains(t, "Goal: Message Brokers by 2026-12-04 \u2014 2 of 2 topics left, 4 days "
			   "to go: 1 topic behind. Next, to catch up: RabbitMQ");
	t = say(f, "goal", "Kafka by 31 December");
	assert_contains(t, "Goal set: Kafka by 2026-12-31");
	assert_contains(t, "It replaces your goal Message Brokers by 2026-12-04.");
	t = say(f, "goal", "off");
	assert_contains(t, "Removed your goal: Kafka by 2026-12-31");
	t = say(f, "goal", "clear");
	assert_contains(t, "You have no goal");
	t = say(f, "goal", "");
	assert_contains(t, "No goal yet");
}

/* Every bad input: a clear answer, and the goal as it was. */
static void bad_input_is_answered_and_changes_nothing(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "goal", "Kafka by 31 March");
	say(f, "done", "Redis");
	struct {
		const char *args, *says;
	} bad[] = {
		{"Kafka", "By when?"},
		{"by 31 March", "Which topic or section?"},
		{"Kafka by", "By when?"},
		{"Kafka by 2026-11-24", "2026-11-24 has passed"},
		{"Kafka by 24/12", "day/month or month/day"},
		{"Kafka by 31 April", "April has 30 days"},
		{"Kafka by 2040-01-01", "more than ten years away"},
		{"Quantum Knitting by 31 March",
		 "\u201cQuantum Knitting\u201d is not on the roadmap"},
		{"Databases by 31 March", "Which one: Relational Databases, NoSQL databases"},
		{"Redis by 31 March", "You have finished Redis already"},
		{"group Caching by 31 March", "Only admins can set the group's goal"},
		{"group off", "Only admins can set the group's goal"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *t = say(f, "goal", bad[i].args);
		if (!strstr(t, bad[i].says))
			fail_msg("/goal %s: lacks \"%s\":\n%s", bad[i].args, bad[i].says, t);
		assert_true(f->reply.ephemeral);
		if (i != 8 && !strstr(t, "Nothing was changed"))
			fail_msg("/goal %s: does not say nothing changed:\n%s", bad[i].args, t);
		t = say(f, "goal", "");
		assert_contains(t, "Goal: Kafka by 2027-03-31");
		assert_lacks(t, "Group goal");
	}
}

static void a_reached_goal_is_celebrated_once(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "goal", "Message Brokers by 2026-12-04");
	f->now = T0 + HOUR;
	const char *t = say(f, "done", "Kafka");
	assert_lacks(t, "reached");
	f->now = T0 + 2 * DAY;
	t = say(f, "done", "RabbitMQ");
	assert_contains(t, "\U0001F389 ana reached their goal: Message Brokers, 7 days before the "
			   "due date!");
	t = say(f, "progress", "");
	assert_contains(t, "Goal: Message Brokers by 2026-12-04 \u2014 reached on 2026-11-27");
	/* Undone and done again: still reached, not celebrated twice. */
	say(f, "undo", "");
	t = say(f, "done", "RabbitMQ");
	assert_lacks(t, "reached");
	/* An unrelated topic celebrates nothing either. */
	t = say(f, "done", "Redis");
	assert_lacks(t, "reached");
}

static void an_admin_sets_the_groups_goal_for_everyone(void **state)
{
	struct bot_fixture *f = *state;
	say_as(f, "bob", false, "done", "Kafka");
	const char *t = say_as(f, "root", true, "goal", "group Message Brokers by 31 December");
	assert_contains(t, "Group goal: Message Brokers by 2026-12-31");
	assert_contains(t, "Set by root for everyone: 2 topics, 37 days.");
	assert_false(f->reply.ephemeral);
	t = say(f, "progress", "");
	assert_contains(t, "Group goal: Message Brokers by 2026-12-31 \u2014 2 of 2 topics left");
	t = say_as(f, "bob", false, "progress", "");
	assert_contains(t, "Group goal: Message Brokers by 2026-12-31 \u2014 1 of 2 topics left");
	t = say_as(f, "bob", false, "done", "RabbitMQ");
	assert_contains(t, "bob reached the group's goal: Message Brokers");
	/* The digest celebrates it and counts the group. */
	struct digest d;
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	char *text = reply_render_text(&d.reply);
	digest_release(&d);
	if (!strstr(text, "bob reached the group's goal: Message Brokers (due 2026-12-31).") ||
	    !strstr(text, "Group goal: Message Brokers by 2026-12-31, 37 days left: 1 reached, "
			  "0 on track or ahead, 0 behind."))
		fail_msg("digest:\n%s", text);
	free(text);
	t = say_as(f, "root", true, "goal", "group off");
	assert_contains(t, "Removed the group's goal: Message Brokers by 2026-12-31");
	t = say(f, "goal", "");
	assert_lacks(t, "Group goal");
}

/* The digest after the due day: a missed goal is reported once, honestly. */
static void the_digest_reports_pace_and_a_missed_goal(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "goal", "Caching by 2026-11-28");
	say_as(f, "bob", false, "goal", "Message Brokers by 2026-12-24");
	say(f, "done", "Redis");
	f->now = utc(2026, 11, 27, 12, 0);
	struct digest d;
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	char *text = reply_render_text(&d.reply);
	digest_release(&d);
	if (!strstr(text, "Goals:") ||
	    !strstr(text, "ana: Caching by 2026-11-28 \u2014 2 of 3 topics left, 2 days to go: "
			  "1 topic behind. Next, to catch up: Client Side") ||
	    !strstr(text, "bob: Message Brokers by 2026-12-24 \u2014 2 of 2 topics left"))
		fail_msg("digest:\n%s", text);
	free(text);
	/* The next day's digest (window: the last day) after the due day ended. */
	f->now = utc(2026, 11, 29, 12, 0);
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	text = reply_render_text(&d.reply);
	digest_release(&d);
	if (!strstr(text, "ana missed their goal Caching by 2 topics on 2026-11-28."))
		fail_msg("digest:\n%s", text);
	free(text);
	/* A day later it is not repeated, but /progress still says it. */
	f->now = utc(2026, 11, 30, 12, 0);
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	text = reply_render_text(&d.reply);
	digest_release(&d);
	assert_lacks(text, "ana missed");
	assert_lacks(text, "ana:");
	free(text);
	const char *t = say(f, "progress", "");
	assert_contains(t, "Goal: Caching by 2026-11-28 \u2014 missed by 2 topics on 2026-11-28");
}

/* A goal whose topic left the roadmap (another roadmap, a renamed section) says so. */
static void a_goal_off_the_roadmap_asks_for_a_new_one(void **state)
{
	struct bot_fixture *f = *state;
	struct store_goal g = {"test:group",       "test:ana",   "section",
			       "quantum-knitting", "2026-12-31", T0,
			       "test:ana",         "ana",        0};
	assert_int_equal(store_goal_set(f->st, &g), COHORT_OK);
	const char *t = say(f, "goal", "");
	assert_contains(t, "Goal: quantum-knitting by 2026-12-31 \u2014 no longer on the roadmap: "
			   "set a new one with /goal TOPIC by DATE");
	t = say(f, "done", "Kafka");
	assert_lacks(t, "reached");
	struct digest d;
	assert_int_equal(digest_build(f->bot, "test:group", f->now, &d), COHORT_OK);
	char *text = reply_render_text(&d.reply);
	digest_release(&d);
	assert_lacks(text, "quantum");
	free(text);
	t = say(f, "goal", "off");
	assert_contains(t, "Removed your goal: quantum-knitting by 2026-12-31");
}

/* What members typed is echoed clipped between characters, never inside one. */
static void echoed_text_is_clipped_between_characters(void **state)
{
	struct bot_fixture *f = *state;
	char typed[200] = "a";
	for (int i = 0; i < 40; i++)
		strcat(typed, "\u00e9");
	strcat(typed, " by 31 March");
	const char *t = say(f, "goal", typed);
	assert_contains(t, "is not on the roadmap");
	assert_lacks(t, "\ufffd");
	t = say(f, "goal",
		"Kafka by a\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc");
	assert_contains(t, "is not a date");
	assert_lacks(t, "\ufffd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(day_one_is_on_track_with_a_share_for_today),
		cmocka_unit_test(days_without_progress_fall_behind_and_progress_catches_up),
		cmocka_unit_test(a_goal_due_today_says_what_is_left),
		cmocka_unit_test(a_passed_goal_is_missed_by_what_was_left_when_its_day_ended),
		cmocka_unit_test(a_reached_goal_is_reached),
		cmocka_unit_test(days_are_local_dates_across_a_spring_forward),
		cmocka_unit_test(the_due_day_ends_at_local_midnight_across_a_fall_back),
		cmocka_unit_test(dates_are_read_as_people_type_them),
		cmocka_unit_test_setup_teardown(a_goal_is_set_shown_and_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_input_is_answered_and_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_reached_goal_is_celebrated_once, setup, teardown),
		cmocka_unit_test_setup_teardown(an_admin_sets_the_groups_goal_for_everyone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(the_digest_reports_pace_and_a_missed_goal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(echoed_text_is_clipped_between_characters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_goal_off_the_roadmap_asks_for_a_new_one, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("goal", tests, NULL, NULL);
}
