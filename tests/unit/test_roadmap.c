#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot/rmset.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static struct roadmap *parse_ok(const char *md)
{
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	if (roadmap_parse(md, strlen(md), "t.md", &rm, err))
		fail_msg("%s", err);
	return rm;
}

static void parse_fails(const char *md, const char *want)
{
	char err[COHORT_ERR_LEN] = "";
	struct roadmap *rm = NULL;
	int rc = roadmap_parse(md, strlen(md), "t.md", &rm, err);
	if (rc != COHORT_ERR_PARSE || rm || !strstr(err, want))
		fail_msg("rc=%d\n  got:  %s\n  want: %s", rc, err, want);
}

/* Stored progress depends on the ids: the default roadmap's stay what they always were. */
static void default_roadmap_ids_are_unchanged(void **state)
{
	(void)state;
	struct roadmap *rm = backend();
	for (size_t i = 0; i < roadmap_topic_count(rm); i++) {
		const struct rm_topic *t = roadmap_topic(rm, i);
		char *old = text_slug(t->name);
		assert_string_equal(t->id, old);
		assert_int_equal(t->nformer, 0);
		free(old);
	}
	assert_string_equal(roadmap_topic(rm, (size_t)id_of(rm, "n-1-problem"))->name,
			    "N+1 Problem");
	roadmap_free(rm);
}

/* C, C++ and C# were one topic "c"; Café was "caf"; 日本語 was refused. */
static void ids_are_distinct_for_any_names(void **state)
{
	(void)state;
	struct roadmap *rm = parse_ok("- [ ] Languages\n"
				      "  - [ ] C\n"
				      "  - [ ] C++\n"
				      "  - [ ] C#\n"
				      "  - [ ] F#\n"
				      "- [ ] Caf\xc3\xa9\n"
				      "- [ ] \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\n"
				      "- [ ] Kafka \xe2\x80\x94 Streams\n");
	assert_int_equal(roadmap_topic_count(rm), 7);
	const char *want[] = {"c", "c-plus-plus", "c-sharp", "f-sharp", "caf\xc3\xa9",
			      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "kafka-streams"};
	for (size_t i = 0; i < 7; i++)
		assert_string_equal(roadmap_topic(rm, i)->id, want[i]);
	/* Each is found by its own name. */
	const char *names[] = {"C", "C++", "C#", "F#"};
	for (size_t i = 0; i < 4; i++) {
		struct rm_resolution res;
		roadmap_resolve(rm, names[i], &res);
		assert_int_equal(res.match, RM_EXACT);
		assert_int_equal(res.index, (long)i);
	}
	/* No former ids unless the file names them ("was:"). */
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(roadmap_topic(rm, i)->nformer, 0);
	roadmap_free(rm);
	char *id = roadmap_id_of("N+1 Problem");
	assert_string_equal(id, "n-1-problem");
	free(id);
}

static void links_headings_and_plain_bullets(void **state)
{
	(void)state;
	struct roadmap *rm = parse_ok("# Study plan\n"
				      "Some prose with a [link](https://example.org).\n"
				      "\n"
				      "## Frontend\n"
				      "- [ ] HTML\n"
				      "- Styling\n"
				      "  - [ ] [CSS Grid](https://css-tricks.com/grid/) <!-- aliases: "
				      "grid layout; was: grid -->\n"
				      "## Backend\n"
				      "### Brokers\n"
				      "- [x] [Kafka](https://kafka.apache.org)\n"
				      "```\n"
				      "- not an item, in a code block\n"
				      "```\n"
				      "<!--\n"
				      "- nor in a comment\n"
				      "-->\n"
				      "---\n");
	const char *want[][3] = {
		{"Frontend", "-", ""},
		{"HTML", "html", ""},
		{"Styling", "-", ""},
		{"CSS Grid", "css-grid", "https://css-tricks.com/grid/"},
		{"Backend", "-", ""},
		{"Brokers", "-", ""},
		{"Kafka", "kafka", "https://kafka.apache.org"},
	};
	assert_int_equal(roadmap_node_count(rm), 7);
	for (size_t i = 0; i < 7; i++) {
		const struct rm_node *nd = roadmap_node(rm, i);
		assert_string_equal(nd->name, want[i][0]);
		if (strcmp(want[i][1], "-") == 0) {
			assert_int_equal(nd->topic, -1);
			continue;
		}
		const struct rm_topic *t = roadmap_topic(rm, (size_t)nd->topic);
		assert_string_equal(t->id, want[i][1]);
		if (want[i][2][0])
			assert_string_equal(t->link, want[i][2]);
		else
			assert_null(t->link);
	}
	const struct rm_topic *grid = roadmap_topic(rm, (size_t)id_of(rm, "css-grid"));
	assert_string_equal(grid->path, "Frontend \u203a Styling");
	assert_int_equal(grid->naliases, 1);
	assert_int_equal(grid->nformer, 1);
	assert_string_equal(grid->former[0], "grid");
	assert_string_equal(roadmap_topic(rm, (size_t)id_of(rm, "kafka"))->path,
			    "Backend \u203a Brokers");
	roadmap_free(rm);
	/* One heading above the checklist is the file's title, as in the group's own file. */
	rm = parse_ok("## Roadmap\n[Backend Roadmap](https://roadmap.sh/backend)\n\n"
		      "## Checklist\n- [ ] Node.js\n");
	assert_int_equal(roadmap_node_count(rm), 1);
	assert_string_equal(roadmap_topic(rm, 0)->path, "");
	roadmap_free(rm);
}

static void lines_it_cannot_use_are_named(void **state)
{
	(void)state;
	parse_fails("- [ ] A\n- Notes\n- [ ] B\n",
		    "t.md:2: \"Notes\" is a list item without a checkbox");
	parse_fails("- [ ] A\n- [] B\n", "t.md:2: \"- [] B\" is not a checklist item");
	parse_fails("- [ ] A\n-[ ] B\n", "t.md:2: \"-[ ] B\" is not a checklist item");
	parse_fails("- [ ] A\n- [v] B\n", "t.md:2:");
	parse_fails("- [ ] A\n- [ ]B\n", "t.md:2:");
	parse_fails("- [ ] Grid\n- [ ] CSS Grid <!-- was: grid -->\n",
		    "t.md:2: former id \"grid\" of \"CSS Grid\" is the id of \"Grid\"");
	parse_fails("- [ ] A <!-- was: old -->\n- [ ] B <!-- was: Old -->\n",
		    "t.md:2: former id \"old\" is claimed by \"A\" and \"B\"");
	parse_fails("- [ ] S <!-- was: s -->\n  - [ ] T\n", "t.md:1: \"S\" is a section");
	parse_fails("- [ ] A <!-- aliases: a1; grid -->\n", "t.md:1: \"grid\" in a comment");
	parse_fails("- [ ] A <!-- wsa: x -->\n", "t.md:1: unknown annotation \"wsa:\"");
	parse_fails("- [ ] A\n- [ ] ##\n", "t.md:2: \"##\" has no letters or digits");
	parse_fails("- [ ] Kafka \xe2\x80\x94 intro\n- [ ] Kafka intro\n",
		    "have the same id \"kafka-intro\"");
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
	/* "Nearest" only when near: nothing for a word far from every name. */
	struct rm_resolution res;
	roadmap_resolve(rm, "xyzzy", &res);
	assert_int_equal(res.ncandidates, 0);
	roadmap_resolve(rm, "kafkaqqqq", &res);
	assert_int_equal(res.match, RM_UNKNOWN);
	assert_int_equal(res.ncandidates, 1);
	assert_string_equal(roadmap_topic(rm, (size_t)res.candidates[0])->id, "kafka");
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
		struct rm_part *parts;
		size_t n = roadmap_read_args(rm, cases[i].args, &parts);
		const char *topic = n ? parts[0].typed : "", *note = n ? parts[0].note : "";
		if (n > 1 || strcmp(topic, cases[i].topic) != 0 || strcmp(note, cases[i].note) != 0)
			fail_msg("\"%s\": got %zu parts, [%s|%s], want [%s|%s]", cases[i].args, n,
				 topic, note, cases[i].topic, cases[i].note);
		roadmap_parts_free(parts, n);
	}
	roadmap_free(rm);
}

/*
 * What came of a message, compactly: its parts joined by " + ", each the topic id
 * read ("kafka"), "ask(ids / section ids)" for a question, "section(id)" for a
 * section's name, "unknown" or "unknown(nearest ids)", "empty" for no topic text;
 * then " [note]" when there is a note.
 */
static char *outcome(const struct roadmap *rm, const struct rm_part *parts, size_t n)
{
	char *out = calloc(1, 4096);
	for (size_t i = 0; i < n; i++) {
		const struct rm_resolution *r = &parts[i].res;
		char *o = out + strlen(out);
		if (i)
			o += sprintf(o, " + ");
		if (!*parts[i].typed) {
			o += sprintf(o, "empty");
		} else if (r->match <= RM_FUZZY) {
			o += sprintf(o, "%s", roadmap_topic(rm, (size_t)r->index)->id);
		} else if (r->match == RM_SECTION) {
			o += sprintf(o, "section(%s)", roadmap_node(rm, (size_t)r->index)->id);
		} else {
			o += sprintf(o, r->match == RM_AMBIGUOUS ? "ask" : "unknown");
			if (r->ncandidates || r->nsections)
				o += sprintf(o, "(");
			for (size_t k = 0; k < r->ncandidates; k++)
				o += sprintf(o, "%s%s", k ? " " : "",
					     roadmap_topic(rm, (size_t)r->candidates[k])->id);
			if (r->nsections)
				o += sprintf(o, "%s/", r->ncandidates ? " " : "");
			for (size_t k = 0; k < r->nsections; k++)
				o += sprintf(o, " %s", roadmap_node(rm, (size_t)r->sections[k])->id);
			if (r->ncandidates || r->nsections)
				o += sprintf(o, ")");
		}
		if (*parts[i].note)
			sprintf(o, " [%s]", parts[i].note);
	}
	return out;
}

static const char languages_roadmap[] = "- [ ] Languages\n"
					"\t- [ ] C\n"
					"\t- [ ] C++\n"
					"\t- [ ] C#\n"
					"\t- [ ] Caf\u00e9\n";

static const char custom_roadmap[] = "- [ ] Frontend\n"
				     "\t- [ ] Flexbox\n"
				     "\t- [ ] Grid <!-- aliases: css grid -->\n"
				     "\t- [ ] React\n"
				     "- [ ] Languages\n"
				     "\t- [ ] Go <!-- aliases: golang -->\n"
				     "\t- [ ] Go Modules\n"
				     "\t- [ ] Rust\n";

/*
 * The phrasing table (issue 12): what members type, and what a careful person
 * would record or ask. A recorded change is never a guess.
 */
static void phrasings_are_read_as_a_careful_person_would(void **state)
{
	(void)state;
	struct roadmap *def = backend(), *custom = NULL;
	char err[COHORT_ERR_LEN];
	if (roadmap_parse(custom_roadmap, strlen(custom_roadmap), "custom.md", &custom, err))
		fail_msg("%s", err);
	struct roadmap *langs = NULL;
	if (roadmap_parse(languages_roadmap, strlen(languages_roadmap), "langs.md", &langs, err))
		fail_msg("%s", err);
	struct {
		int custom; /* 0: the default roadmap, 1: custom.md, 2: langs.md */
		const char *typed, *want;
	} rows[] = {
		/* Names, any case or punctuation; aliases. */
		{0, "Kafka", "kafka"},
		{0, "  KAFKA!! ", "kafka"},
		{0, "postgres", "postgresql"},
		{0, "pg", "postgresql"},
		{0, "k8s", "kubernetes"},
		{0, "rabbit mq", "rabbitmq"},
		{0, "json web token", "jwt"},
		{0, "node.js", "node-js"},
		{0, "CI/CD", "ci-cd"},
		{0, "ci & cd", "ci-cd + ci-cd"}, /* two aliases of one topic (marked once) */
		{0, "rabbit, mq", "rabbitmq + unknown"}, /* not the key "rabbitmq": split, each read alone */
		{0, "SSL/TLS", "ssl-tls"},
		{0, "12 factor", "twelve-factor-apps"},
		{0, "rest api", "rest"},
		{0, "horizontal scaling", "horizontal-vertical-scaling"},
		/* Prefixes are taken only when they reach the name's last word. */
		{0, "kuber", "kubernetes"},
		{0, "circuit break", "circuit-breaker"},
		{0, "go", "ask(gof-design-patterns)"},
		{0, "Test", "ask(test-driven-development)"},
		{0, "auth", "ask(cookie-based basic-auth token-auth / authentication)"},
		{0, "database",
		 "ask(database-indexes / relational-databases nosql-databases "
		 "more-about-databases scaling-databases)"},
		{0, "security",
		 "ask(owasp-security-risks content-security-policy server-security / "
		 "web-security-knowledge)"},
		{0, "re", "ask(redis data-replication rest / relational-databases realtime)"},
		{0, "graph", "ask(graphql / graph-dbs)"},
		/* Typos: taken when clearly nearest, asked when not. */
		{0, "kubernets", "kubernetes"},
		{0, "elasticsearh", "elasticsearch"},
		{0, "circut breaker", "circuit-breaker"},
		{0, "graceful degredation", "graceful-degradation"},
		{0, "redsi", "ask(redis rest)"},
		{0, "sql", "ask(postgresql graphql ssl-tls)"}, /* psql, gql, ssl */
		/* Sections ask which of their topics; GraphQL the topic wins over the section. */
		{0, "Caching", "section(caching)"},
		{0, "Server Side", "section(server-side)"},
		{0, "message", "section(message-brokers)"},
		{0, "relational", "section(relational-databases)"},
		{0, "GraphQL", "graphql"},
		{0, "Redis", "redis"}, /* in two sections, one topic */
		/* Not on the roadmap: "Nearest" only when near. */
		{0, "java", "unknown"},
		{0, "unit testing", "unknown"},
		{0, "xyzzy", "unknown"},
		{0, "kafkaqqqq", "unknown(kafka)"},
		/* Notes. */
		{0, "kafka built a consumer", "kafka [built a consumer]"},
		{0, "circut breaker | read the chapter", "circuit-breaker [read the chapter]"},
		{0, "| only a note", "empty [only a note]"},
		{0, "kafka '); DROP TABLE progress; --", "kafka ['); DROP TABLE progress; --]"},
		{0, "kafka built a consumer and a producer",
		 "kafka [built a consumer and a producer]"},
		/* Several topics. */
		{0, "kafka, redis", "kafka + redis"},
		{0, "redis and docker", "redis + docker"},
		{0, "docker k8s", "docker + kubernetes"},
		{0, "Kafka and Redis were fun", "kafka + redis [were fun]"},
		{0, "kafka; redis & docker", "kafka + redis + docker"},
		{0, "REST AND SOAP", "rest + soap"},
		{0, "sse & websockets", "server-sent-events + websockets"},
		{0, "graphql apollo", "graphql + apollo"},
		{0, "kafka, redis | built a pipeline", "kafka + redis [built a pipeline]"},
		{0, "kafka, java", "kafka + unknown"},
		{0, "kuber and dockr", "kubernetes + docker"},
		/* Names that hold "and", "&" or commas themselves. */
		{0, "Instrumentation, Monitoring, and Telemetry",
		 "instrumentation-monitoring-and-telemetry"},
		{0, "instrumentation, monitoring, and telemetry was a lot",
		 "instrumentation-monitoring-and-telemetry [was a lot]"},
		{0, "MD5 and why not to use it", "md5-and-why-not-to-use-it"},
		{0, "threads and concurrency", "threads-and-concurrency"},
		{0, "threads and concurrency, kafka", "threads-and-concurrency + kafka"},
		{0, "", ""},
		/* A custom roadmap: an alias's first word, and a name that swallows a note. */
		{1, "css", "ask(grid)"},
		{1, "css grid", "grid"},
		{1, "go", "go"},
		{1, "go mod", "ask(go go-modules) [mod]"},
		{1, "go modules", "go-modules"},
		{1, "golang was fun", "go [was fun]"},
		{1, "go | mod", "go [mod]"},
		{1, "Go, Go Modules", "go + go-modules"},
		{1, "go and rust", "go + rust"},
		/* "+" and "#" that end a word are part of a name: C, C++ and C# are three. */
		{2, "C++", "c-plus-plus"},
		{2, "c#", "c-sharp"},
		{2, "C", "c"},
		{2, "c, c++ and c#", "c + c-plus-plus + c-sharp"},
		{2, "c++ templates", "c-plus-plus [templates]"},
		{2, "caf\u00e9", "caf\u00e9"},
		{2, "cafe", "ask(caf\u00e9)"}, /* an accent is a typo, not the same name */
	};
	size_t bad = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct roadmap *rm = rows[i].custom == 2 ? langs : rows[i].custom ? custom : def;
		struct rm_part *parts;
		size_t n = roadmap_read_args(rm, rows[i].typed, &parts);
		char *got = outcome(rm, parts, n);
		if (strcmp(got, rows[i].want) != 0) {
			print_error("\"%s\":\n  got:  %s\n  want: %s\n", rows[i].typed, got,
				    rows[i].want);
			bad++;
		}
		free(got);
		roadmap_parts_free(parts, n);
	}
	assert_true(sizeof(rows) / sizeof(rows[0]) >= 40);
	assert_int_equal(bad, 0);
	/* Discord: topic and note are separate options, and the topic is one topic, whole. */
	struct rm_part *parts;
	size_t n = roadmap_read_topics(def, "kafka", "built a pipeline, and more", &parts);
	char *got = outcome(def, parts, n);
	assert_string_equal(got, "kafka [built a pipeline, and more]");
	free(got);
	roadmap_parts_free(parts, n);
	n = roadmap_read_topics(def, "Kafka'; DROP TABLE events;--", NULL, &parts);
	got = outcome(def, parts, n);
	assert_string_equal(got, "unknown");
	free(got);
	roadmap_parts_free(parts, n);
	n = roadmap_read_topics(def, " ", "a note", &parts);
	got = outcome(def, parts, n);
	assert_string_equal(got, "empty [a note]");
	free(got);
	roadmap_parts_free(parts, n);
	roadmap_free(langs);
	roadmap_free(custom);
	roadmap_free(def);
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

/* Writes text to dir/name. */
static void put_file(const char *dir, const char *name, const char *text)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/* Issue 15 §1: the built-in backend roadmap, roadmap.file and every *.md of roadmap.dir. */
static void the_roadmap_set_is_builtin_file_and_dir(void **state)
{
	(void)state;
	char dir[] = "/tmp/cohort-rmset-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char err[COHORT_ERR_LEN];
	struct rmset *s;
	/* Without a dir: the built-in one alone, the default. */
	assert_int_equal(rmset_load("", "", &s, err), COHORT_OK);
	assert_int_equal(rmset_count(s), 1);
	assert_string_equal(rmset_name(s, 0), "backend");
	assert_int_equal(roadmap_topic_count(rmset_at(s, 0)), 84);
	rmset_free(s);

	put_file(dir, "frontend.md", "- [ ] HTML\n- [ ] CSS\n- [ ] Redis\n");
	put_file(dir, "devops.md", "- [ ] Docker\n- [ ] Kubernetes\n");
	put_file(dir, "notes.txt", "not a roadmap\n");
	assert_int_equal(rmset_load(NULL, dir, &s, err), COHORT_OK);
	assert_int_equal(rmset_count(s), 3);
	assert_string_equal(rmset_name(s, 0), "backend");
	assert_string_equal(rmset_name(s, 1), "devops");
	assert_string_equal(rmset_name(s, 2), "frontend");
	assert_int_equal(rmset_default(s), 0);
	assert_int_equal(rmset_find(s, "FrontEnd"), 2);
	assert_int_equal(rmset_find(s, "frontent"), -1);
	assert_int_equal(roadmap_topic_count(rmset_at(s, 2)), 3);
	rmset_free(s);

	/* roadmap.file is the default; when it lies in the dir it is loaded once. */
	char file[300];
	snprintf(file, sizeof(file), "%s/frontend.md", dir);
	assert_int_equal(rmset_load(file, dir, &s, err), COHORT_OK);
	assert_int_equal(rmset_count(s), 3);
	assert_string_equal(rmset_name(s, rmset_default(s)), "frontend");
	rmset_free(s);

	/* A roadmap that does not parse refuses the set, naming its file and line. */
	put_file(dir, "broken.md", "- [ ] Fine\n- [] Broken\n");
	assert_int_equal(rmset_load(NULL, dir, &s, err), COHORT_ERR_PARSE);
	assert_null(s);
	assert_non_null(strstr(err, "broken.md:2:"));
	remove_file(dir, "broken.md");

	/* Names: one each (ignoring case), and only what can be typed. */
	put_file(dir, "Backend.md", "- [ ] Go\n");
	assert_int_equal(rmset_load(NULL, dir, &s, err), COHORT_ERR_CONFIG);
	assert_non_null(strstr(err, "Backend.md: a roadmap named \"backend\" is loaded already"));
	remove_file(dir, "Backend.md");
	put_file(dir, "data science.md", "- [ ] Pandas\n");
	assert_int_equal(rmset_load(NULL, dir, &s, err), COHORT_ERR_CONFIG);
	assert_non_null(strstr(err, "\"data science\" cannot name a roadmap"));
	remove_file(dir, "data science.md");

	/* A dir that cannot be read is named. */
	char missing[320];
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(rmset_load(NULL, missing, &s, err), COHORT_ERR_IO);
	assert_non_null(strstr(err, "nope: cannot read roadmap.dir"));

	remove_file(dir, "frontend.md");
	remove_file(dir, "devops.md");
	remove_file(dir, "notes.txt");
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_default_roadmap_has_84_topics),
		cmocka_unit_test(the_shipped_checklist_matches_the_default),
		cmocka_unit_test(spaces_nest_and_aliases_are_read),
		cmocka_unit_test(broken_roadmaps_name_the_line),
		cmocka_unit_test(default_roadmap_ids_are_unchanged),
		cmocka_unit_test(ids_are_distinct_for_any_names),
		cmocka_unit_test(links_headings_and_plain_bullets),
		cmocka_unit_test(lines_it_cannot_use_are_named),
		cmocka_unit_test(the_resolver_answers_what_members_type),
		cmocka_unit_test(args_split_into_topic_and_note),
		cmocka_unit_test(phrasings_are_read_as_a_careful_person_would),
		cmocka_unit_test(completion_ranks_what_is_being_typed),
		cmocka_unit_test(the_roadmap_set_is_builtin_file_and_dir),
	};
	return cmocka_run_group_tests_name("roadmap", tests, NULL, NULL);
}
