#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot/err.h"
#include "bot/roadmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE(name) "tests/fixtures/roadmap/" name

static struct roadmap *backend(void)
{
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	if (roadmap_load_default(&rm, err))
		fail_msg("%s", err);
	return rm;
}

static long id_of(const struct roadmap *rm, const char *id)
{
	long t = roadmap_find_id(rm, id);
	if (t < 0)
		fail_msg("no topic %s", id);
	return t;
}

static void the_default_roadmap_has_84_topics(void **state)
{
	(void)state;
	struct roadmap *rm = backend();
	assert_int_equal(roadmap_topic_count(rm), 84);
	/* Kafka sits beside RabbitMQ under Message Brokers. */
	const struct rm_topic *kafka = roadmap_topic(rm, (size_t)id_of(rm, "kafka"));
	assert_string_equal(kafka->name, "Kafka");
	assert_string_equal(kafka->path, "Message Brokers");
	/* Redis appears twice and is one topic shown in both places. */
	long redis = id_of(rm, "redis");
	assert_int_equal(roadmap_topic_places(rm, (size_t)redis), 2);
	size_t nodes_naming_redis = 0;
	for (size_t i = 0; i < roadmap_node_count(rm); i++)
		nodes_naming_redis += roadmap_node(rm, i)->topic == redis;
	assert_int_equal(nodes_naming_redis, 2);
	/* GraphQL is a topic under APIs and a section holding Apollo. */
	const struct rm_topic *gql = roadmap_topic(rm, (size_t)id_of(rm, "graphql"));
	assert_string_equal(gql->path, "APIs");
	struct rm_resolution res;
	roadmap_resolve_section(rm, "GraphQL", &res);
	assert_int_equal(res.match, RM_EXACT);
	assert_int_equal(roadmap_node(rm, (size_t)res.index)->topic, -1);
	assert_string_equal(
		roadmap_topic(rm, (size_t)roadmap_node(rm, (size_t)res.index + 1)->topic)->id,
		"apollo");
	id_of(rm, "postgresql");
	id_of(rm, "ci-cd");
	id_of(rm, "node-js");
	roadmap_free(rm);
}

static void the_shipped_checklist_matches_the_default(void **state)
{
	(void)state;
	/* The group's checklist (a copy of shared/roadmap-checklist.md) gives the same topics, less
	 * Kafka. */
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	const char *path = FIXTURE("checklist.md");
	if (roadmap_load_file(path, &rm, err))
		fail_msg("%s", err);
	assert_int_equal(roadmap_topic_count(rm), 83);
	assert_true(roadmap_find_id(rm, "kafka") < 0);
	struct roadmap *def = backend();
	for (size_t i = 0; i < roadmap_topic_count(rm); i++)
		assert_true(roadmap_find_id(def, roadmap_topic(rm, i)->id) >= 0);
	roadmap_free(def);
	roadmap_free(rm);
}

static void spaces_nest_and_aliases_are_read(void **state)
{
	(void)state;
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	if (roadmap_load_file(FIXTURE("spaces.md"), &rm, err))
		fail_msg("%s", err);
	assert_int_equal(roadmap_topic_count(rm), 4); /* C, Rust, GNU Make, Git */
	const struct rm_topic *c = roadmap_topic(rm, (size_t)id_of(rm, "c"));
	assert_int_equal(c->naliases, 2);
	assert_string_equal(c->aliases[1], "c language");
	assert_string_equal(roadmap_topic(rm, (size_t)id_of(rm, "gnu-make"))->path,
			    "Tools \u203a Make");
	struct rm_resolution res;
	roadmap_resolve(rm, "C11", &res);
	assert_int_equal(res.match, RM_ALIAS);
	roadmap_free(rm);
}

static void broken_roadmaps_name_the_line(void **state)
{
	(void)state;
	struct {
		const char *file;
		const char *want;
	} cases[] = {
		{"bad-indent.md", "bad-indent.md:3: indentation does not match"},
		{"alias-conflict.md", "alias-conflict.md:1: alias \"x\" of \"A\" also names \"B\""},
		{"unknown-annotation.md", "unknown-annotation.md:1: unknown annotation \"alias:\""},
		{"empty.md", "empty.md: no checklist items found"},
		{"alias-on-section.md", "alias-on-section.md:1: \"Section\" is a section"},
		{"nameless.md", "nameless.md:2: checklist item without a name"},
		{"open-comment.md", "open-comment.md:1: comment not closed"},
		{"missing.md", "missing.md: cannot open roadmap file"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[COHORT_ERR_LEN] = "";
		char path[256];
		struct roadmap *rm = NULL;
		snprintf(path, sizeof(path), FIXTURE("%s"), cases[i].file);
		int rc = roadmap_load_file(path, &rm, err);
		const char *msg = strstr(err, cases[i].file);
		if (!rc || rm || !msg || strncmp(msg, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("%s: rc=%d\n  got:  %s\n  want: %s", cases[i].file, rc, err,
				 cases[i].want);
	}
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	assert_int_equal(roadmap_parse("- [ ] a\xff\n", 9, "x.md", &rm, err), COHORT_ERR_PARSE);
	assert_non_null(strstr(err, "UTF-8"));
}

/* What members type, and what must come of it. */
static void the_resolver_answers_what_members_type(void **state)
{
	(void)state;
	struct roadmap *rm = backend();
	struct {
		const char *typed;
		enum rm_match match;
		const char *id; /* the topic, or the first candidate when asking */
	} cases[] = {
		{"Kafka", RM_EXACT, "kafka"},
		{"kafka", RM_EXACT, "kafka"},
		{"  KAFKA!! ", RM_EXACT, "kafka"},
		{"postgres", RM_ALIAS, "postgresql"},
		{"pg", RM_ALIAS, "postgresql"},
		{"k8s", RM_ALIAS, "kubernetes"},
		{"rabbit mq", RM_EXACT, "rabbitmq"},
		{"rabbit", RM_ALIAS, "rabbitmq"},
		{"jwt", RM_EXACT, "jwt"},
		{"json web token", RM_ALIAS, "jwt"},
		{"mongo", RM_ALIAS, "mongodb"},
		{"es", RM_ALIAS, "elasticsearch"},
		{"Redis", RM_EXACT, "redis"},
		{"GraphQL", RM_EXACT, "graphql"},
		{"node.js", RM_EXACT, "node-js"},
		{"CI/CD", RM_EXACT, "ci-cd"},
		{"kube", RM_ALIAS, "kubernetes"},
		{"kuber", RM_PREFIX, "kubernetes"},
		{"elasticsearh", RM_FUZZY, "elasticsearch"},
		{"kubernets", RM_FUZZY, "kubernetes"},
		{"circut breaker", RM_FUZZY, "circuit-breaker"},
		{"re", RM_AMBIGUOUS, "rest"},
		{"sql", RM_AMBIGUOUS, NULL},
		{"redsi", RM_AMBIGUOUS, "redis"}, /* short and unsure: ask */
		{"xyzzy", RM_UNKNOWN, NULL},
		{"", RM_UNKNOWN, NULL},
		{"!!!", RM_UNKNOWN, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rm_resolution res;
		roadmap_resolve(rm, cases[i].typed, &res);
		const char *got = NULL;
		if (res.index >= 0)
			got = roadmap_topic(rm, (size_t)res.index)->id;
		if (res.match != cases[i].match)
			fail_msg("\"%s\": match %d, want %d", cases[i].typed, res.match,
				 cases[i].match);
		if (res.match <= RM_FUZZY && strcmp(got, cases[i].id) != 0)
			fail_msg("\"%s\": got %s, want %s", cases[i].typed, got, cases[i].id);
		if (res.match == RM_AMBIGUOUS && res.ncandidates < 2 &&
		    strcmp(cases[i].typed, "redsi") != 0)
			fail_msg("\"%s\": asks about %zu candidates", cases[i].typed,
				 res.ncandidates);
		if (res.match == RM_AMBIGUOUS && cases[i].id) {
			bool listed = false;
			for (size_t k = 0; k < res.ncandidates; k++)
				listed |= strcmp(roadmap_topic(rm, (size_t)res.candidates[k])->id,
						 cases[i].id) == 0;
			if (!listed)
				fail_msg("\"%s\": %s not among the candidates", cases[i].typed,
					 cases[i].id);
		}
	}
	/* An unknown topic still names the nearest ones. */
	struct rm_resolution res;
	roadmap_resolve(rm, "xyzzy", &res);
	assert_true(res.ncandidates > 0 && res.ncandidates <= 3);
	/* Over-long input is not looked at. */
	char big[ROADMAP_MAX_QUERY + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	roadmap_resolve(rm, big, &res);
	assert_int_equal(res.match, RM_UNKNOWN);
	roadmap_free(rm);
}

static void args_split_into_topic_and_note(void **state)
{
	(void)state;
	struct roadmap *rm = backend();
	struct {
		const char *args, *topic, *note;
	} cases[] = {
		{"Kafka built a consumer", "Kafka", "built a consumer"},
		{"Kafka", "Kafka", ""},
		{"rabbit mq was fun", "rabbit mq", "was fun"},
		{"circut breaker | read the chapter", "circut breaker", "read the chapter"},
		{"circut breaker read the chapter", "circut breaker read the chapter", ""},
		{"json web token  notes here", "json web token", "notes here"},
		{"Server Sent Events done", "Server Sent Events", "done"},
		{"  ", "", ""},
		{"| only a note", "", "only a note"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *topic, *note;
		roadmap_split_args(rm, cases[i].args, &topic, &note);
		if (strcmp(topic, cases[i].topic) != 0 || strcmp(note, cases[i].note) != 0)
			fail_msg("\"%s\": got [%s|%s], want [%s|%s]", cases[i].args, topic, note,
				 cases[i].topic, cases[i].note);
		free(topic);
		free(note);
	}
	roadmap_free(rm);
}

static void completion_ranks_what_is_being_typed(void **state)
{
	(void)state;
	struct roadmap *rm;
	char err[COHORT_ERR_LEN];
	assert_int_equal(roadmap_load_default(&rm, err), COHORT_OK);
	long idx[25];
	const struct {
		const char *typed, *first;
	} cases[] = {
		{"kaf", "Kafka"},
		{"KAFKA", "Kafka"},
		{"postgres", "PostgreSQL"},
		{"k8s", "Kubernetes"},
		{"postgers", "PostgreSQL"},
		{"graph", "GraphQL"},
		{"breaker", "Circuit Breaker"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = roadmap_complete(rm, cases[i].typed, idx, 25);
		if (n == 0 || strcmp(roadmap_topic(rm, (size_t)idx[0])->name, cases[i].first) != 0)
			fail_msg("\"%s\": got %s, want %s", cases[i].typed,
				 n ? roadmap_topic(rm, (size_t)idx[0])->name : "nothing",
				 cases[i].first);
	}
	/* Nothing typed: the roadmap from the top, as many as asked. */
	assert_int_equal(roadmap_complete(rm, "", idx, 25), 25);
	assert_int_equal(idx[0], 0);
	assert_int_equal(roadmap_complete(rm, "zzzzqqq", idx, 25), 0);
	char big[300];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(roadmap_complete(rm, big, idx, 25), 0);
	roadmap_free(rm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_default_roadmap_has_84_topics),
		cmocka_unit_test(the_shipped_checklist_matches_the_default),
		cmocka_unit_test(spaces_nest_and_aliases_are_read),
		cmocka_unit_test(broken_roadmaps_name_the_line),
		cmocka_unit_test(the_resolver_answers_what_members_type),
		cmocka_unit_test(args_split_into_topic_and_note),
		cmocka_unit_test(completion_ranks_what_is_being_typed),
	};
	return cmocka_run_group_tests_name("roadmap", tests, NULL, NULL);
}
