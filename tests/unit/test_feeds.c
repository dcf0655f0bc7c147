/*
 * The adapters' payload handling without a network: gateway messages and
 * /sync answers fed in directly, as the fuzzers do, including every input a
 * fuzzer once crashed on (tests/fuzz/regressions/gateway and sync).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../fuzz/fuzz_host.h"
#include "replay.h"

#include "adapters/discord/discord.h"
#include "adapters/matrix/matrix.h"

#include <string.h>

static struct adapter discord, matrix;

static int64_t events(struct fuzz_host *h)
{
	int64_t n;
	assert_int_equal(store_event_count(h->st, &n), COHORT_OK);
	return n;
}

static void feed_gateway(const char *data, size_t len)
{
	discord_feed(&discord, data, len);
	dispatch_drain(fuzz_host_get()->d);
}

static void feed_sync(const char *data, size_t len)
{
	char *body = xstrndup(data, len);
	matrix_feed_sync(&matrix, body);
	free(body);
	dispatch_drain(fuzz_host_get()->d);
}

static void an_interaction_becomes_a_recorded_command(void **state)
{
	(void)state;
	struct fuzz_host *h = fuzz_host_get();
	int64_t before = events(h);
	const char *ix =
		"{\"op\":0,\"s\":1,\"t\":\"INTERACTION_CREATE\",\"d\":{\"id\":\"77\",\"type\":2,"
		"\"token\":\"tok\",\"guild_id\":\"1\",\"channel_id\":\"2\",\"member\":{\"user\":{"
		"\"id\":\"3\",\"username\":\"ana\"},\"permissions\":\"0\"},\"data\":{\"name\":"
		"\"done\",\"options\":[{\"name\":\"topic\",\"value\":\"Kafka\"}]}}}";
	feed_gateway(ix, strlen(ix));
	assert_int_equal(events(h), before + 1);
	/* The same interaction again (a replay): answered at most once, counted once. */
	feed_gateway(ix, strlen(ix));
	assert_int_equal(events(h), before + 1);
	/* Opcodes and junk change nothing. */
	const char *junk[] = {"{\"op\":10,\"d\":{\"heartbeat_interval\":1e300}}",
			      "{\"op\":-1}",
			      "{\"op\":0,\"t\":\"INTERACTION_CREATE\",\"d\":{\"id\":\"x\"}}",
			      "[]",
			      "",
			      "{\"op\":9,\"d\":false}",
			      "{\"op\":7}"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		feed_gateway(junk[i], strlen(junk[i]));
	assert_int_equal(events(h), before + 1);
}

static void a_sync_command_is_recorded_and_history_is_not(void **state)
{
	(void)state;
	struct fuzz_host *h = fuzz_host_get();
	int64_t before = events(h);
	const char *sync =
		"{\"next_batch\":\"s9\",\"rooms\":{\"join\":{\"!r:x\":{\"timeline\":{\"events\":["
		"{\"type\":\"m.room.message\",\"event_id\":\"$old\",\"sender\":\"@a:x\","
		"\"content\":{\"msgtype\":\"m.text\",\"body\":\"!done Docker\"}},"
		"{\"type\":\"m.room.member\",\"state_key\":\"@cohort:example.org\",\"sender\":"
		"\"@cohort:example.org\",\"content\":{\"membership\":\"join\"}},"
		"{\"type\":\"m.room.message\",\"event_id\":\"$new\",\"sender\":\"@a:x\","
		"\"content\":{\"msgtype\":\"m.text\",\"body\":\"!done Kafka\"}}]}}}}}";
	feed_sync(sync, strlen(sync));
	assert_int_equal(events(h), before + 1); /* $old came before the join */
	char *value = NULL;
	assert_int_equal(bot_state_get(h->bot, "matrix.next_batch", &value), COHORT_OK);
	assert_string_equal(value, "s9");
	free(value);
	assert_false(matrix_feed_sync(&matrix, "{\"rooms\":{}}")); /* no next_batch */
	/* The bot changing its display name is not a join: what came before is answered. */
	const char *rename =
		"{\"next_batch\":\"s10\",\"rooms\":{\"join\":{\"!r:x\":{\"timeline\":{\"events\":["
		"{\"type\":\"m.room.message\",\"event_id\":\"$a\",\"sender\":\"@a:x\","
		"\"content\":{\"msgtype\":\"m.text\",\"body\":\"!done Docker\"}},"
		"{\"type\":\"m.room.member\",\"state_key\":\"@cohort:example.org\",\"sender\":"
		"\"@cohort:example.org\",\"content\":{\"membership\":\"join\",\"displayname\":"
		"\"Cohort\"},\"unsigned\":{\"prev_content\":{\"membership\":\"join\"}}}]}}}}}";
	feed_sync(rename, strlen(rename));
	assert_int_equal(events(h), before + 2);
}

static void fuzz_regressions_replay(void **state)
{
	(void)state;
	assert_true(replay_dir("tests/fuzz/regressions/gateway", feed_gateway) >= 1);
	assert_true(replay_dir("tests/fuzz/regressions/sync", feed_sync) >= 0);
}

static int setup(void **state)
{
	(void)state;
	struct fuzz_host *h = fuzz_host_get();
	log_close(); /* the fuzz host silences the log; the tests may speak */
	if (discord_new(&h->cfg, dispatch_door(h->d), &discord) ||
	    matrix_new(&h->cfg, dispatch_door(h->d), &matrix))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct fuzz_host *h = fuzz_host_get();
	discord.ops->free(discord.self);
	matrix.ops->free(matrix.self);
	dispatch_drain(h->d);
	dispatch_free(h->d);
	bot_free(h->bot);
	store_free(h->st);
	roadmap_free(h->rm);
	config_release(&h->cfg);
	log_clear_secrets();
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", h->dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_interaction_becomes_a_recorded_command),
		cmocka_unit_test(a_sync_command_is_recorded_and_history_is_not),
		cmocka_unit_test(fuzz_regressions_replay),
	};
	return cmocka_run_group_tests_name("feeds", tests, setup, teardown);
}
