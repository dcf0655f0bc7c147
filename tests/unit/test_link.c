/* bot/link.c: codes (made, typed, hashed, expiring) and the store's member link and unlink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/link.h"

static void codes_are_eight_characters_of_the_alphabet_and_differ(void **state)
{
	(void)state;
	char first[LINK_CODE_LEN + 1], code[LINK_CODE_LEN + 1], again[LINK_CODE_LEN + 1];
	link_code_new(first);
	int same = 0, seen[256] = {0};
	for (int i = 0; i < 300; i++) {
		link_code_new(code);
		assert_int_equal(strlen(code), LINK_CODE_LEN);
		for (int k = 0; k < LINK_CODE_LEN; k++) {
			assert_non_null(strchr(link_alphabet, code[k]));
			seen[(unsigned char)code[k]]++;
		}
		assert_true(link_code_normalize(code, again));
		assert_string_equal(again, code);
		same += strcmp(code, first) == 0;
	}
	assert_true(same < 2);
	/* 2,400 characters: every one of the 31 shows up, and none of 0 O 1 I L. */
	for (const char *c = link_alphabet; *c; c++)
		assert_true(seen[(unsigned char)*c] > 0);
	for (const char *c = "0O1IL"; *c; c++)
		assert_int_equal(seen[(unsigned char)*c], 0);
	assert_int_equal(strlen(link_alphabet), 31);
}

static void codes_are_read_case_and_dash_insensitively(void **state)
{
	(void)state;
	char out[LINK_CODE_LEN + 1], shown[LINK_CODE_LEN + 2];
	assert_true(link_code_normalize("k7qp-m3xd", out));
	assert_string_equal(out, "K7QPM3XD");
	assert_true(link_code_normalize(" K7QP M3XD ", out));
	assert_string_equal(out, "K7QPM3XD");
	assert_true(link_code_normalize("K-7-Q-P-M-3-X-D", out));
	assert_string_equal(out, "K7QPM3XD");
	static const char *const bad[] = {"",	       "K7QP",	       "K7QP-M3XDA", "K7QP-M3X0",
					  "K7QP-M3XO", "K7QP-M3XL",    "K7QP-M3X1", "K7QP-M3XI",
					  "K7QP_M3XD", "K7QP-M3X\xc3\xa9", "remove"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(link_code_normalize(bad[i], out));
	link_code_format("K7QPM3XD", shown);
	assert_string_equal(shown, "K7QP-M3XD");
}

static void only_a_hash_is_kept_and_codes_expire(void **state)
{
	(void)state;
	char hash[65];
	link_code_hash("K7QPM3XD", hash);
	assert_string_equal(hash,
			    "2ec037f678c6b343201925c5fbb1bea4d17fe3cce98098d88e041485a46c5f1f");
	assert_true(link_code_live(1000 + LINK_CODE_TTL_MS, 1000));
	assert_true(link_code_live(1000 + LINK_CODE_TTL_MS, 1000 + LINK_CODE_TTL_MS - 1));
	assert_false(link_code_live(1000 + LINK_CODE_TTL_MS, 1000 + LINK_CODE_TTL_MS));
	assert_int_equal(LINK_CODE_TTL_MS, 600000);
}

/* ---- the store's link: one transaction, the later change wins, nothing counted twice ---- */

static int setup(void **state)
{
	*state = bot_fixture_new("UTC");
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	return bot_fixture_free(*state);
}

static void mark(struct store *st, const char *group, const char *member, const char *topic,
		 enum store_status status, int64_t at)
{
	struct store_change c = {group, member, member, topic, status, NULL, NULL, at};
	assert_int_equal(store_set_status(st, &c, NULL), COHORT_OK);
}

struct seen {
	char v[8][80];
	int n;
};

static int collect_row(const struct store_row *row, void *ud)
{
	struct seen *s = ud;
	snprintf(s->v[s->n++], sizeof(s->v[0]), "%s %s %s", row->member_id, row->topic_id,
		 store_status_name(row->status));
	return s->n == 8;
}

static int collect_rank(const struct store_rank *r, void *ud)
{
	struct seen *s = ud;
	snprintf(s->v[s->n++], sizeof(s->v[0]), "%d %s %d", r->rank, r->member_id, r->points);
	return s->n == 8;
}

static void a_link_merges_and_an_unlink_gives_back(void **state)
{
	struct bot_fixture *f = *state;
	struct store *st = f->st;
	const char *g = "matrix:!room", *d = "discord:1", *m = "matrix:@ana";
	/* In one group (as after a group link) both identities have records. */
	mark(st, g, d, "kafka", STATUS_DONE, 1000);
	mark(st, g, m, "kafka", STATUS_DONE, 2000); /* both done: counts once */
	mark(st, g, d, "redis", STATUS_DONE, 3000);
	mark(st, g, m, "redis", STATUS_IN_PROGRESS, 4000); /* later: wins */
	mark(st, g, m, "docker", STATUS_SKIPPED, 5000);
	mark(st, g, "matrix:@bob", "kafka", STATUS_DONE, 1500);
	assert_int_equal(store_link_code_put(st, "h1", "member", d, 6000, 7000), COHORT_OK);
	int groups = -1;
	/* An expired code links nothing. */
	assert_int_equal(store_member_link(st, "h1", m, d, "Ana", 7000, &groups),
			 COHORT_ERR_DUPLICATE);
	assert_int_equal(store_link_code_put(st, "h2", "member", d, 6000, 9000), COHORT_OK);
	assert_int_equal(store_member_link(st, "h2", m, d, "Ana", 8000, &groups), COHORT_OK);
	assert_int_equal(groups, 1);
	/* Used once only; and neither identity links again. */
	assert_int_equal(store_member_link(st, "h2", m, d, "Ana", 8000, NULL),
			 COHORT_ERR_DUPLICATE);
	assert_int_equal(store_link_code_put(st, "h3", "member", "discord:2", 6000, 90000),
			 COHORT_OK);
	assert_int_equal(store_member_link(st, "h3", m, "discord:2", "Ana", 8000, NULL),
			 COHORT_ERR_DENIED);
	struct seen s = {0};
	assert_int_equal(store_member_progress(st, g, d, collect_row, &s), COHORT_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.v[0], "discord:1 docker skipped");
	assert_string_equal(s.v[1], "discord:1 kafka done");
	assert_string_equal(s.v[2], "discord:1 redis in_progress");
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_member_progress(st, g, m, collect_row, &s), COHORT_OK);
	assert_int_equal(s.n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_ranking(st, g, PERIOD_ALL, 0, 10, NULL, collect_rank, &s),
			 COHORT_OK);
	assert_int_equal(s.n, 2);
	/* One point each (kafka once): bob (1500) reached it before ana's kept change (2000). */
	assert_string_equal(s.v[0], "1 matrix:@bob 1");
	assert_string_equal(s.v[1], "1 discord:1 1");
	struct store_count c;
	assert_int_equal(store_topic_count(st, g, "kafka", &c), COHORT_OK);
	assert_int_equal(c.done, 2); /* ana (once) and bob */
	int members = 0, finished = 0;
	assert_int_equal(store_group_totals(st, g, &members, &finished), COHORT_OK);
	assert_int_equal(members, 2);
	char *canon = NULL;
	assert_int_equal(store_member_canonical(st, m, &canon), COHORT_OK);
	assert_string_equal(canon, d);
	free(canon);
	/* Unlink: a Matrix room's records go back to the Matrix identity. */
	char *alias = NULL;
	assert_int_equal(store_member_unlink(st, d, 10000, &alias, &canon), COHORT_OK);
	assert_string_equal(alias, m);
	assert_string_equal(canon, d);
	free(alias);
	free(canon);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_member_progress(st, g, m, collect_row, &s), COHORT_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.v[1], "matrix:@ana kafka done");
	assert_int_equal(store_member_canonical(st, m, &canon), COHORT_OK);
	assert_string_equal(canon, m);
	free(canon);
	assert_int_equal(store_member_unlink(st, d, 11000, NULL, NULL), COHORT_ERR_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codes_are_eight_characters_of_the_alphabet_and_differ),
		cmocka_unit_test(codes_are_read_case_and_dash_insensitively),
		cmocka_unit_test(only_a_hash_is_kept_and_codes_expire),
		cmocka_unit_test_setup_teardown(a_link_merges_and_an_unlink_gives_back, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
