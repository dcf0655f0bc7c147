#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "lib/text.h"

/* The platforms' renderers, to check that notes (user text) stay text there. */
#include "adapters/discord/render.h"
#include "adapters/matrix/matrix.h"

#include <sqlite3.h>

/* Wednesday 2026-11-25 12:00 UTC. */
#define T0 1795608000000LL
#define DAY 86400000LL

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

static void done_confirms_with_the_total_and_groupmates(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say_as(f, "bob", false, "done", "Kafka");
	assert_contains(t, "bob finished Kafka (Message Brokers)");
	assert_contains(t, "1/84 \u00b7 1%");
	assert_contains(t, "First in the group to finish it!");
	assert_false(f->reply.ephemeral);
	t = say(f, "done", "kafka built a consumer");
	assert_contains(t, "ana finished Kafka");
	assert_contains(t, "Also finished it: bob");
	/* Again: nothing is counted twice. */
	t = say(f, "done", "Kafka");
	assert_contains(t, "You already finished Kafka");
	assert_contains(t, "Marked done on 2026-11-25");
	assert_true(f->reply.ephemeral);
	t = say(f, "progress", "");
	assert_contains(t, "1/84 \u00b7 1%");
}

static void twenty_three_topics_show_27_percent(void **state)
{
	struct bot_fixture *f = *state;
	for (size_t i = 0; i < 23; i++)
		say(f, "done", roadmap_topic(f->rm, i)->name);
	const char *t = say(f, "progress", "");
	assert_contains(t, "23/84 \u00b7 27%");
	say(f, "skip", roadmap_topic(f->rm, 30)->name);
	t = say(f, "progress", "");
	assert_contains(t, "23/84 (+1 skipped) \u00b7 28%");
}

static void redis_is_one_topic(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "Redis");
	const char *t = say(f, "topics", "Caching");
	assert_contains(t, "[x] Redis  (1 finished)");
	t = say(f, "topics", "NoSQL");
	assert_contains(t, "[x] Redis");
	t = say(f, "progress", "");
	assert_contains(t, "1/84");
}

static void unknown_and_ambiguous_topics_change_nothing(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "xyzzy");
	assert_contains(t, "\u201cxyzzy\u201d is not on the roadmap");
	assert_lacks(t, "Nearest:"); /* nothing is near it */
	assert_contains(t, "Nothing was changed");
	assert_int_equal(f->reply.kind, REPLY_ERROR);
	t = say(f, "done", "re");
	assert_contains(t, "Did you mean");
	assert_contains(t, "Redis");
	assert_contains(t, "REST");
	assert_int_equal(f->reply.kind, REPLY_QUESTION);
	t = say(f, "done", "");
	assert_contains(t, "Which topic?");
	t = say(f, "progress", "");
	assert_contains(t, "0/84");
}

static void a_typo_is_read_and_said_so(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "kubernets");
	assert_contains(t, "ana finished Kubernetes");
	assert_contains(t, "(read \u201ckubernets\u201d as Kubernetes)");
	t = say(f, "done", "circut breaker | read the chapter");
	assert_contains(t, "finished Circuit Breaker");
}

static void start_skip_reset_and_undo(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say_as(f, "bob", false, "start", "docker");
	assert_contains(t, "bob started Docker");
	t = say(f, "start", "docker");
	assert_contains(t, "Also on it: bob");
	t = say(f, "start", "docker");
	assert_contains(t, "You are already on Docker");
	t = say(f, "skip", "soap");
	assert_contains(t, "ana skipped SOAP");
	assert_contains(t, "earn no points");
	t = say(f, "reset", "soap");
	assert_contains(t, "Cleared SOAP");
	assert_contains(t, "It was skipped");
	t = say(f, "reset", "soap");
	assert_contains(t, "SOAP has no status to clear");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: SOAP is skipped again");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: SOAP is unmarked again");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: Docker is unmarked again");
	t = say(f, "undo", "");
	assert_contains(t, "Nothing to undo");
	t = say_as(f, "bob", false, "progress", "");
	assert_contains(t, "In progress: Docker"); /* bob's start was not ana's to undo */
}

static void progress_of_a_groupmate(void **state)
{
	struct bot_fixture *f = *state;
	say_as(f, "bob", false, "done", "postgres");
	const char *t = say(f, "progress", "bob");
	assert_contains(t, "bob's progress");
	assert_contains(t, "1/84");
	t = say(f, "progress", "@BOB");
	assert_contains(t, "bob's progress");
	t = say(f, "progress", "nobody");
	assert_contains(t, "No member called \u201cnobody\u201d here");
}

static void streaks_count_consecutive_days(void **state)
{
	struct bot_fixture *f = *state;
	f->now = T0 - 2 * DAY;
	say(f, "done", "kafka");
	f->now = T0 - DAY;
	say(f, "done", "redis");
	say(f, "done", "docker"); /* two on one day count once */
	f->now = T0;
	const char *t = say(f, "progress", "");
	assert_contains(t, "Streak: 2 days"); /* ends yesterday: still current */
	say(f, "done", "nginx");
	t = say(f, "progress", "");
	assert_contains(t, "Streak: 3 days");
	assert_contains(t, "(longest 3)");
	f->now = T0 + 2 * DAY;
	t = say(f, "progress", "");
	assert_contains(t, "Streak: none right now (longest 3)");
}

static void leaderboard_ranks_with_shared_places(void **state)
{
	struct bot_fixture *f = *state;
	say_as(f, "bob", false, "done", "kafka");
	f->now += 1000;
	say_as(f, "cy", false, "done", "kafka");
	f->now += 1000;
	say_as(f, "cy", false, "done", "redis");
	f->now += 1000;
	say_as(f, "bob", false, "done", "redis");
	f->now += 1000;
	say_as(f, "dee", false, "done", "docker");
	const char *t = say(f, "leaderboard", "");
	assert_contains(t, "Leaderboard \u2014 all time");
	/* cy reached 2 before bob: both #1, cy listed first; dee #3. */
	const char *cy = strstr(t, "#1   cy"), *bob = strstr(t, "#1   bob"),
		   *dee = strstr(t, "#3   dee");
	if (!cy || !bob || !dee || cy > bob || bob > dee)
		fail_msg("bad order:\n%s", t);
	t = say(f, "leaderboard", "week");
	assert_contains(t, "this week");
	assert_contains(t, "#1   cy");
	t = say(f, "leaderboard", "fortnight");
	assert_contains(t, "Unknown period");
	/* Monday next week: the week board is empty, all time is not. */
	f->now = T0 + 5 * DAY;
	t = say(f, "leaderboard", "week");
	assert_contains(t, "Nobody has finished a topic this week yet");
	t = say(f, "leaderboard", "month");
	assert_contains(t, "#1   cy"); /* still November */
}

/* The display column where `needle` starts on the line of t that holds `name`. */
static size_t column_of(const char *t, const char *name, const char *needle)
{
	const char *line = strstr(t, name);
	if (!line)
		fail_msg("no \"%s\" in:\n%s", name, t);
	while (line > t && line[-1] != '\n')
		line--;
	const char *hit = strstr(line, needle);
	const char *eol = strchr(line, '\n');
	if (!hit || (eol && hit > eol))
		fail_msg("no \"%s\" on the line of %s:\n%s", needle, name, t);
	char *head = xstrndup(line, (size_t)(hit - line));
	size_t col = text_display_width(head);
	free(head);
	return col;
}

static void leaderboard_columns_line_up_for_any_name(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "leaderboard", "");
	assert_contains(t, "Nobody has finished a topic yet. Be the first");
	say_as(f, "\u00e9milie_\u00e7\u00e0", false, "done", "kafka");
	say_as(f, "\u65e5\u672c", false, "done", "kafka");
	say_as(f, "e\u0301va", false, "done", "redis");
	say_as(f, "bo", false, "done", "docker");
	t = say(f, "leaderboard", "");
	size_t col = column_of(t, "bo ", " pt");
	assert_int_equal(column_of(t, "\u00e9milie_\u00e7\u00e0", " pt"), col);
	assert_int_equal(column_of(t, "\u65e5\u672c", " pt"), col);
	assert_int_equal(column_of(t, "e\u0301va", " pt"), col);
}

static void progress_columns_line_up_for_any_section_name(void **state)
{
	struct bot_fixture *f = *state;
	static const char md[] = "- [ ] \u65e5\u672c\u8a9e\n  - [ ] Kanji\n"
				 "- [ ] Cafe\u0301 cre\u0300me\n  - [ ] Espresso\n"
				 "- [ ] Go\n  - [ ] Basics\n";
	char err[COHORT_ERR_LEN];
	bot_free(f->bot);
	roadmap_free(f->rm);
	if (roadmap_parse(md, strlen(md), "wide.md", &f->rm, err))
		fail_msg("%s", err);
	struct bot_opts o = {f->st, f->rm, "18:00", "UTC", fixture_now, f, NULL};
	assert_int_equal(bot_new(&o, &f->bot), COHORT_OK);
	say(f, "done", "kanji");
	const char *t = say(f, "progress", "");
	size_t col = column_of(t, "Go ", "\u2591"); /* where the bars start */
	assert_int_equal(column_of(t, "\u65e5\u672c\u8a9e", "\u2588"), col);
	assert_int_equal(column_of(t, "Cafe\u0301", "\u2591"), col);
}

static void undo_says_what_the_topic_was(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "kafka");
	say(f, "reset", "kafka");
	const char *t = say(f, "undo", ""); /* undoes the reset: from no status back to done */
	assert_contains(t, "Undone: Kafka is done again");
	assert_contains(t, "It had no status.");
	assert_lacks(t, "It was no status");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: Kafka is unmarked again");
	assert_contains(t, "It was done.");
}

static void topics_next_and_who(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "topics", "");
	assert_contains(t, "The roadmap");
	assert_contains(t, "[ ] Kafka");
	t = say(f, "next", "");
	assert_contains(t, "Next for you: Node.js");
	say(f, "done", "node");
	say_as(f, "bob", false, "start", "How OSs work in General");
	t = say(f, "next", "");
	assert_contains(t, "Next for you: How OSs work in General");
	assert_contains(t, "On it now: bob");
	t = say(f, "who", "kafka");
	assert_contains(t, "Nobody in the group has finished Kafka yet");
	say_as(f, "bob", false, "done", "kafka");
	t = say(f, "who", "kafka");
	assert_contains(t, "Finished: bob (2026-11-25)");
	t = say(f, "topics", "Nonexistent section");
	assert_contains(t, "No section called");
}

static void digest_preview_and_admin_settings(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "digest", "");
	assert_contains(t, "Daily digest \u2014 Wednesday 25 November");
	assert_contains(t, "Nothing to report yet"); /* nobody has logged anything */
	assert_contains(t, "The daily digest is off: an admin turns it on with /digest channel "
			   "here.");
	say_as(f, "bob", false, "done", "kafka");
	say_as(f, "bob", false, "start", "docker");
	say(f, "start", "docker");
	t = say(f, "digest", "");
	assert_contains(t, "bob joined the group and finished Kafka; started Docker");
	assert_contains(t, "#1 bob \u2014 1 pt");
	assert_contains(t, "2 of you are on Docker");

	t = say(f, "digest", "channel here");
	assert_contains(t, "Only admins can change the digest");
	t = say_as(f, "ana", true, "digest", "channel here");
	assert_contains(t, "The daily digest will be posted here");
	assert_contains(t, "18:00 (UTC)");
	t = say(f, "digest", "");
	assert_contains(t, "Posted every day at 18:00 (UTC) in this channel.");
	t = say_as(f, "ana", true, "digest", "time 07:30 Mars/Olympus");
	assert_contains(t, "\u201cMars/Olympus\u201d is not a time zone");
	assert_contains(t, "Use an IANA name such as UTC");
	t = say_as(f, "ana", true, "digest", "time 7pm");
	assert_contains(t, "is not a time");
	t = say_as(f, "ana", true, "digest", "time 07:30 Europe/Berlin");
	assert_contains(t, "The digest time is now 07:30 (Europe/Berlin)");
	struct store_settings s;
	assert_int_equal(store_get_settings(f->st, "test:group", &s), COHORT_OK);
	assert_string_equal(s.digest_channel, "chan");
	assert_string_equal(s.timezone, "Europe/Berlin");
	store_settings_release(&s);
	/* The zone alone keeps the time; names in any case; one-digit hours. */
	t = say_as(f, "ana", true, "digest", "time america/new_york");
	assert_contains(t, "The digest time is now 07:30 (America/New_York)");
	t = say_as(f, "ana", true, "digest", "time 7:05");
	assert_contains(t, "The digest time is now 07:05 (America/New_York)");
	t = say_as(f, "ana", true, "digest", "time 9:15 EUROPE/BERLIN");
	assert_contains(t, "The digest time is now 09:15 (Europe/Berlin)");
	t = say_as(f, "ana", true, "digest", "time Berlin");
	assert_contains(t, "\u201cBerlin\u201d is not a time zone");
	assert_contains(t, "Did you mean Europe/Berlin? Nothing was changed.");
	t = say_as(f, "ana", true, "digest", "time 9:15 Europe/Berln");
	assert_contains(t, "Did you mean Europe/Berlin?");
	t = say_as(f, "ana", true, "digest", "time noon");
	assert_contains(t, "\u201cnoon\u201d is not a time zone or a time");
	assert_contains(t, "Write a time as HH:MM (/digest time 18:00) or a zone as an IANA name");
	t = say_as(f, "ana", true, "digest", "time 25:00");
	assert_contains(t, "\u201c25:00\u201d is not a time");
	t = say_as(f, "bob", false, "digest", "time Europe/Paris");
	assert_contains(t, "Only admins can change the digest");
	assert_int_equal(store_get_settings(f->st, "test:group", &s), COHORT_OK);
	assert_string_equal(s.digest_time, "09:15");
	assert_string_equal(s.timezone, "Europe/Berlin");
	store_settings_release(&s);
	f->now += 1000;
	say_as(f, "bob", false, "done", "redis"); /* the week board follows the new zone */
	t = say(f, "digest", "");
	assert_contains(t, "Posted every day at 09:15 (Europe/Berlin) in this channel.");
	/* The zone alone, with no time ever set, leaves the time at the default. */
	assert_int_equal(store_set_digest_time(f->st, "test:group", NULL, NULL), COHORT_OK);
	t = say_as(f, "ana", true, "digest", "time utc");
	assert_contains(t, "The digest time is now 18:00 (UTC)");
	assert_int_equal(store_get_settings(f->st, "test:group", &s), COHORT_OK);
	assert_null(s.digest_time);
	store_settings_release(&s);
	assert_int_equal(store_set_digest_channel(f->st, "test:group", "c2"), COHORT_OK);
	t = say(f, "digest", "");
	assert_contains(t, "Posted every day at 18:00 (UTC) in another channel (c2).");
	t = say_as(f, "ana", true, "digest", "channel off");
	assert_contains(t, "The daily digest is off");
	t = say(f, "digest", "");
	assert_contains(t, "The daily digest is off: an admin turns it on");
}

static void help_and_unknown_commands(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "help", "");
	for (const char *const *n = bot_command_names(); *n; n++) {
		char want[32];
		snprintf(want, sizeof(want), "/%s", *n);
		assert_contains(t, want);
	}
	t = say(f, "help", "leaderboard");
	assert_contains(t, "/leaderboard [week|month|all]");
	assert_contains(t, "Ties share a rank");
	t = say(f, "dnoe", "kafka");
	assert_contains(t, "Unknown command /dnoe");
	assert_contains(t, "Did you mean /done?");
	t = say(f, "progress", "");
	assert_contains(t, "0/84"); /* the typo'd command changed nothing */
}

static void hostile_input_is_refused_or_kept_as_text(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "kafka \xff\xfe");
	assert_contains(t, "not valid UTF-8");
	char big[1200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t = say(f, "done", big);
	assert_contains(t, "That is too long");
	char note[700] = "kafka | ";
	memset(note + 8, 'n', 600);
	note[608] = '\0';
	t = say(f, "done", note);
	assert_contains(t, "That note is too long");
	t = say(f, "progress", "");
	assert_contains(t, "0/84");
	t = say_as(f, "@everyone", false, "done", "kafka '); DROP TABLE progress; --");
	assert_contains(t, "@everyone finished Kafka");
	t = say(f, "who", "kafka");
	assert_contains(t, "Finished: @everyone");
}

static void long_name_lists_are_capped_with_a_count(void **state)
{
	struct bot_fixture *f = *state;
	for (int i = 0; i < 13; i++) {
		char name[16];
		snprintf(name, sizeof(name), "m%02d", i);
		say_as(f, name, false, "done", "kafka");
		f->now += 1000;
	}
	const char *t = say(f, "done", "kafka");
	assert_contains(t, "Also finished it: m00, m01, m02, m03, m04, m05, m06, m07, m08, m09 "
			   "and 3 more");
	t = say(f, "who", "kafka");
	assert_contains(t, "Finished: m00 (2026-11-25), m01 (2026-11-25)");
	assert_contains(t, "m12 (2026-11-25), ana (2026-11-25)");
	assert_lacks(t, "more");
	say_as(f, "zed", false, "start", "kafka");
	t = say(f, "who", "kafka");
	assert_contains(t, "On it now: zed");
}

static void a_failed_write_says_so_and_changes_nothing(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "redis");
	/* Make the database refuse every new event, as a full disk would. */
	char path[128];
	snprintf(path, sizeof(path), "%s/c.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TRIGGER refuse BEFORE INSERT ON events "
				      "BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	const char *t = say(f, "done", "kafka");
	assert_contains(t, "Something went wrong saving that");
	assert_contains(t, "Nothing was changed");
	assert_int_equal(f->rc, COHORT_ERR_STORE);
	t = say(f, "undo", "");
	assert_contains(t, "Something went wrong saving that");
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	t = say(f, "progress", "");
	assert_contains(t, "1/84"); /* redis only: the refused /done and /undo left no trace */
	t = say(f, "who", "kafka");
	assert_contains(t, "Nobody in the group has finished Kafka yet");
	t = say(f, "done", "kafka"); /* and the store works again */
	assert_contains(t, "ana finished Kafka");
}

static void a_replayed_source_event_is_answered_not_counted(void **state)
{
	struct bot_fixture *f = *state;
	struct event ev = {.platform = "test",
			   .group_id = "test:group",
			   .channel_id = "chan",
			   .member_id = "test:ana",
			   .member_name = "ana",
			   .command = "done",
			   .args = "",
			   .topic = "Kafka",
			   .source_id = "interaction-1"};
	struct reply r;
	reply_init(&r);
	assert_int_equal(bot_handle(f->bot, &ev, &r), COHORT_OK);
	reply_release(&r);
	reply_init(&r);
	assert_int_equal(bot_handle(f->bot, &ev, &r), COHORT_ERR_DUPLICATE);
	char *text = reply_render_text(&r);
	assert_contains(text, "Already recorded");
	free(text);
	reply_release(&r);
	const char *t = say(f, "progress", "");
	assert_contains(t, "1/84");
}

static void names_are_kept_on_one_line_and_clipped(void **state)
{
	struct bot_fixture *f = *state;
	const char *cases[][2] = {
		{"ana\nbob", "ana bob"},
		{"  \x1b[31mred\x07  ", "[31mred"},
		{"a\r\n\t\x7f\xc2\x85"
		 "b",
		 "a b"},
		{"line\xe2\x80\xa8sep", "line sep"},
		{"bad \xff byte", "bad \xef\xbf\xbd byte"},
		{"\xe2\x80\xae"
		 "evil",
		 "\xe2\x80\xae"
		 "evil"},        /* kept: renderers defuse it */
		{"\n\x1b", "x"}, /* nothing left: the id */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = bot_member_name(cases[i][0], "test:x");
		assert_string_equal(got, cases[i][1]);
		free(got);
	}
	/* 30,000 characters: 64 are kept, whole. */
	size_t n = 30000;
	char *huge = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(huge + 2 * i, "\xc3\xa9", 2);
	huge[2 * n] = '\0';
	char *got = bot_member_name(huge, "test:x");
	assert_int_equal(strlen(got), 2 * BOT_MAX_NAME);
	free(got);
	huge[2 * BOT_MAX_NAME + 1] = '\0'; /* cut inside a character: */
	const char *t = say_as(f, huge + 1, false, "done", "kafka");
	assert_contains(t, "\xef\xbf\xbd\xc3\xa9\xc3\xa9");
	sqlite3 *db;
	char path[128];
	snprintf(path, sizeof(path), "%s/c.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM members", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *stored = (const char *)sqlite3_column_text(st, 0);
	assert_int_equal(strlen(stored), 3 + 2 * (BOT_MAX_NAME - 1));
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(huge);
}

/* Issue 12 §1: what used to be recorded as a guess is asked about, and nothing changes. */
static void guesses_are_questions(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "auth");
	assert_contains(t, "Did you mean Cookie Based, Basic Auth or Token Auth?");
	assert_contains(t, "also begins the section Authentication");
	assert_int_equal(f->reply.kind, REPLY_QUESTION);
	t = say(f, "done", "go");
	assert_contains(t, "Did you mean GOF Design Patterns?");
	t = say(f, "done", "database");
	assert_contains(t, "Did you mean Database Indexes?");
	assert_contains(t, "Relational Databases, NoSQL databases, More about Databases and "
			   "Scaling Databases");
	t = say(f, "done", "Caching");
	assert_contains(t, "Caching is a section with 3 topics: Client Side, Redis and CDN. "
			   "Which one?");
	t = say(f, "done", "java");
	assert_contains(t, "\u201cjava\u201d is not on the roadmap");
	assert_lacks(t, "Nearest");
	t = say(f, "done", "mo");
	/* A name holding commas stays readable in a list. */
	assert_contains(t, "Did you mean MongoDB, Monolithic Apps, \u201cInstrumentation, "
			   "Monitoring, and Telemetry\u201d or Failure Modes?");
	t = say(f, "progress", "");
	assert_contains(t, "0/84");
}

/* Issue 12 §2: several topics in one message are several changes. */
static void several_topics_in_one_message(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "kafka, redis");
	assert_contains(t, "ana finished Kafka and Redis");
	assert_contains(t, "2/84");
	assert_contains(t, "First in the group to finish Kafka!");
	t = say(f, "done", "kafka & redis");
	assert_contains(t, "Kafka and Redis were done already");
	assert_contains(t, "Nothing was counted twice.");
	assert_null(strstr(t, "Redis was done already")); /* the title said it */
	t = say(f, "done", "redis and docker");
	assert_contains(t, "ana finished Docker");
	assert_contains(t, "Redis was done already; nothing was counted twice.");
	t = say(f, "done", "docker k8s");
	assert_contains(t, "ana finished Kubernetes");
	t = say_as(f, "bob", false, "done", "Kafka and Redis were fun");
	assert_contains(t, "bob finished Kafka and Redis");
	assert_contains(t, "Also finished Kafka: ana");
	t = say(f, "progress", "");
	assert_contains(t, "4/84");
	/* One part asked about, the others marked; the reply says both. */
	t = say(f, "done", "nginx, java, re");
	assert_contains(t, "ana finished Nginx");
	assert_contains(t, "\u201cjava\u201d is not on the roadmap");
	assert_contains(t, "\u201cre\u201d: did you mean Redis");
	assert_contains(t, "The rest was not changed.");
	t = say(f, "progress", "");
	assert_contains(t, "5/84");
	/* A name holding commas and "and" is one topic. */
	t = say(f, "done", "Instrumentation, Monitoring, and Telemetry");
	assert_contains(t, "ana finished Instrumentation, Monitoring, and Telemetry");
	t = say(f, "progress", "");
	assert_contains(t, "6/84");
	/* Too many at once changes nothing. */
	t = say(f, "done", "a, b, c, d, e, f, g, h, i, j, k");
	assert_contains(t, "That names more than 10 topics");
	t = say(f, "progress", "");
	assert_contains(t, "6/84");
}

/* /undo after a message with several topics reverts the last of them, then the one before. */
static void undo_after_several_topics_goes_one_at_a_time(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say(f, "done", "kafka, redis");
	assert_contains(t, "/undo reverts one of these at a time, the last first.");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: Redis is unmarked again");
	assert_contains(t, "1/84");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: Kafka is unmarked again");
	assert_contains(t, "0/84");
}

/* A replayed message naming several topics changes nothing the second time. */
static void a_replay_of_several_topics_is_answered_not_counted(void **state)
{
	struct bot_fixture *f = *state;
	struct event ev = {.platform = "test",
			   .group_id = "test:group",
			   .channel_id = "chan",
			   .member_id = "test:ana",
			   .member_name = "ana",
			   .command = "done",
			   .args = "kafka, redis a pipeline",
			   .source_id = "event-7"};
	struct reply r;
	reply_init(&r);
	assert_int_equal(bot_handle(f->bot, &ev, &r), COHORT_OK);
	char *text = reply_render_text(&r);
	assert_contains(text, "ana finished Kafka and Redis");
	free(text);
	reply_release(&r);
	reply_init(&r);
	assert_int_equal(bot_handle(f->bot, &ev, &r), COHORT_ERR_DUPLICATE);
	text = reply_render_text(&r);
	assert_contains(text, "Already recorded");
	free(text);
	reply_release(&r);
	const char *t = say(f, "progress", "");
	assert_contains(t, "2/84");
	assert_contains(t, "Redis: \u201ca pipeline\u201d");
	assert_lacks(t, "Kafka: \u201c");
}

/* A write that fails part-way through several topics changes none of them. */
static void a_failed_write_of_several_topics_changes_none(void **state)
{
	struct bot_fixture *f = *state;
	char path[128];
	snprintf(path, sizeof(path), "%s/c.db", f->dir);
	say(f, "done", "nginx");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TRIGGER refuse BEFORE INSERT ON events "
				      "WHEN NEW.topic_id = 'redis' "
				      "BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	const char *t = say(f, "done", "kafka, redis");
	assert_contains(t, "Something went wrong saving that");
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	t = say(f, "progress", "");
	assert_contains(t, "1/84"); /* Kafka went back with Redis */
}

/* A change that loses a point says so, and /undo gives it back. */
static void losing_a_point_is_said_with_the_way_back(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "docker");
	const char *t = say(f, "start", "docker");
	assert_contains(t, "ana started Docker");
	assert_contains(t, "Docker was done (since 2026-11-25): its point is gone. /undo "
			   "restores it.");
	t = say(f, "progress", "");
	assert_contains(t, "0/84");
	t = say(f, "undo", "");
	assert_contains(t, "Undone: Docker is done again");
	assert_contains(t, "1/84");
	t = say(f, "skip", "docker");
	assert_contains(t, "ana skipped Docker");
	assert_contains(t, "its point is gone. /undo restores it.");
	t = say(f, "leaderboard", "");
	assert_contains(t, "Nobody has finished a topic");
	/* Starting a topic that was not done loses nothing and says nothing of it. */
	t = say(f, "start", "kafka");
	assert_lacks(t, "point");
}

/* Notes are shown where they help: /who and /progress. */
static void notes_are_shown_in_who_and_progress(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "kafka built a consumer");
	say_as(f, "bob", false, "start", "kafka reading *the* book @everyone");
	say(f, "done", "redis");
	const char *t = say(f, "who", "kafka");
	assert_contains(t, "Finished: ana (2026-11-25: \u201cbuilt a consumer\u201d)");
	assert_contains(t, "On it now: bob (\u201creading *the* book @everyone\u201d)");
	t = say(f, "progress", "");
	assert_contains(t, "Notes:");
	assert_contains(t, "Kafka: \u201cbuilt a consumer\u201d");
	assert_lacks(t, "Redis: ");
	/* A long note is clipped in lists, kept whole in the store. */
	char note[400] = "docker ";
	for (int i = 0; i < 30; i++)
		strcat(note, "\u00e9t\u00e9 ");
	say(f, "done", note);
	t = say(f, "who", "docker");
	assert_contains(t, "\u2026\u201d)");
}

/* A note is user text: on Discord and Matrix it never becomes markup or a mention. */
static void notes_render_as_text_on_every_platform(void **state)
{
	struct bot_fixture *f = *state;
	say(f, "done", "kafka **bold** @everyone <@123> <b>x</b>");
	const char *t = say(f, "who", "kafka");
	assert_contains(t, "\u201c**bold** @everyone <@123> <b>x</b>\u201d");
	cJSON *msg = dc_render_message(&f->reply, true);
	char *json = cJSON_PrintUnformatted(msg);
	assert_contains(json, "\\\\*\\\\*bold\\\\*\\\\* \\\\@everyone \\\\<\\\\@123\\\\>");
	assert_contains(json, "\"allowed_mentions\":{\"parse\":[]}");
	free(json);
	cJSON_Delete(msg);
	struct strbuf html = STRBUF_INIT;
	mx_render_html(&f->reply, &html);
	assert_contains(sb_str(&html), "&lt;b&gt;x&lt;/b&gt;");
	assert_lacks(sb_str(&html), "<b>x</b>");
	sb_release(&html);
}

/* Runs /digest-setup as the admin ana with the given slash options (name, value pairs). */
static const char *digest_setup(struct bot_fixture *f, bool slash, const char *note,
				const struct event_option *opts, size_t n)
{
	struct event ev = {.platform = "test",
			   .group_id = "test:group",
			   .channel_id = "chan",
			   .member_id = "test:ana",
			   .member_name = "ana",
			   .is_admin = true,
			   .command = "digest-setup",
			   .args = "",
			   .slash = slash,
			   .options = opts,
			   .n_options = n,
			   .success_note = note};
	reply_release(&f->reply);
	reply_init(&f->reply);
	free(f->text);
	f->rc = bot_handle(f->bot, &ev, &f->reply);
	f->text = reply_render_text(&f->reply);
	return f->text;
}

static void digest_setup_takes_its_options_in_one_answer(void **state)
{
	struct bot_fixture *f = *state;
	/* Both settings: one answer, the time's title a line of it. */
	struct event_option both[] = {
		{"channel", "here"}, {"time", "07:30"}, {"timezone", "Europe/Berlin"}};
	const char *t = digest_setup(f, true, "NOTE: a permission is missing", both, 3);
	assert_int_equal(f->rc, COHORT_OK);
	assert_int_equal(f->reply.kind, REPLY_SUCCESS);
	assert_contains(t, "The daily digest will be posted here");
	assert_contains(t, "The digest time is now 07:30 (Europe/Berlin)");
	assert_contains(t, "NOTE: a permission is missing");
	struct store_settings s;
	assert_int_equal(store_get_settings(f->st, "test:group", &s), COHORT_OK);
	assert_string_equal(s.digest_channel, "chan");
	assert_string_equal(s.digest_time, "07:30");
	assert_string_equal(s.timezone, "Europe/Berlin");
	store_settings_release(&s);
	/* A zone alone keeps the time. */
	struct event_option zone[] = {{"timezone", "America/New_York"}};
	t = digest_setup(f, true, NULL, zone, 1);
	assert_contains(t, "The digest time is now 07:30 (America/New_York)");
	/* A bad second setting makes the whole answer an error, without the note. */
	struct event_option bad[] = {{"channel", "here"}, {"time", "7pm"}};
	t = digest_setup(f, true, "NOTE: a permission is missing", bad, 2);
	assert_int_equal(f->reply.kind, REPLY_ERROR);
	assert_contains(t, "is not a time");
	assert_lacks(t, "NOTE");
	/* No options: the preview, as /digest alone. */
	t = digest_setup(f, true, NULL, NULL, 0);
	assert_contains(t, "Daily digest \u2014 Wednesday 25 November");
	/* Typed as text (the console, a prefix command) it is no command of ours. */
	t = digest_setup(f, false, NULL, both, 3);
	assert_contains(t, "Unknown command /digest-setup");
}

/* Runs a slash command as ana with named options (slash false: typed text with the options). */
static const char *slash(struct bot_fixture *f, bool is_slash, const char *command,
			 const struct event_option *opts, size_t n)
{
	struct event ev = {.platform = "test",
			   .group_id = "test:group",
			   .channel_id = "chan",
			   .member_id = "test:ana",
			   .member_name = "ana",
			   .command = command,
			   .args = "",
			   .slash = is_slash,
			   .options = opts,
			   .n_options = n};
	reply_release(&f->reply);
	reply_init(&f->reply);
	free(f->text);
	f->rc = bot_handle(f->bot, &ev, &f->reply);
	f->text = reply_render_text(&f->reply);
	return f->text;
}

static void slash_options_are_read_by_the_command_table(void **state)
{
	struct bot_fixture *f = *state;
	/* The note option stays whole: typed, the comma would start a second topic. */
	struct event_option done[] = {{"note", "built a consumer, then a producer"},
				      {"topic", "kafka"}};
	const char *t = slash(f, true, "done", done, 2);
	assert_int_equal(f->reply.kind, REPLY_SUCCESS);
	t = say(f, "who", "kafka");
	assert_contains(t, "\u201cbuilt a consumer, then a producer\u201d");
	/* An option in the text's place answers as the text would. */
	char *typed = xstrdup(say(f, "leaderboard", "week"));
	struct event_option week[] = {{"period", "week"}};
	assert_string_equal(slash(f, true, "leaderboard", week, 1), typed);
	free(typed);
	struct event_option cmd[] = {{"command", "leaderboard"}};
	t = slash(f, true, "help", cmd, 1);
	assert_contains(t, "/leaderboard [week|month|all]");
	/* A typed command has no options: they are ignored. */
	t = slash(f, false, "help", cmd, 1);
	assert_lacks(t, "Ties share a rank");
	assert_contains(t, "/done");
	/* The slash-only command is not one that can be typed, nor listed in help. */
	assert_lacks(t, "digest-setup");
	assert_true(bot_command("digest-setup")->slash_only);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(done_confirms_with_the_total_and_groupmates),
		T(twenty_three_topics_show_27_percent),
		T(redis_is_one_topic),
		T(unknown_and_ambiguous_topics_change_nothing),
		T(a_typo_is_read_and_said_so),
		T(start_skip_reset_and_undo),
		T(progress_of_a_groupmate),
		T(streaks_count_consecutive_days),
		T(leaderboard_ranks_with_shared_places),
		T(leaderboard_columns_line_up_for_any_name),
		T(undo_says_what_the_topic_was),
		T(progress_columns_line_up_for_any_section_name),
		T(topics_next_and_who),
		T(digest_preview_and_admin_settings),
		T(digest_setup_takes_its_options_in_one_answer),
		T(slash_options_are_read_by_the_command_table),
		T(help_and_unknown_commands),
		T(hostile_input_is_refused_or_kept_as_text),
		T(long_name_lists_are_capped_with_a_count),
		T(a_failed_write_says_so_and_changes_nothing),
		T(a_replayed_source_event_is_answered_not_counted),
		T(names_are_kept_on_one_line_and_clipped),
		T(guesses_are_questions),
		T(several_topics_in_one_message),
		T(undo_after_several_topics_goes_one_at_a_time),
		T(a_replay_of_several_topics_is_answered_not_counted),
		T(a_failed_write_of_several_topics_changes_none),
		T(losing_a_point_is_said_with_the_way_back),
		T(notes_are_shown_in_who_and_progress),
		T(notes_render_as_text_on_every_platform),
	};
	return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
