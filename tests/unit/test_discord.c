/* The Discord side of replies (embeds within limits, escaping) and the gateway's policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/discord/discord.h"
#include "adapters/discord/gateway.h"
#include "adapters/discord/render.h"
#include "bot/bot.h"
#include "bot/reply.h"
#include "lib/err.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(const struct reply *r, bool ephemeral_ok)
{
	cJSON *m = dc_render_message(r, ephemeral_ok);
	char *s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return s;
}

static const char *description(cJSON *m)
{
	cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "embeds"), 0);
	return cJSON_GetStringValue(cJSON_GetObjectItem(e, "description"));
}

static void a_reply_becomes_one_embed_that_pings_nobody(void **state)
{
	(void)state;
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_SUCCESS, "ana finished Kafka");
	reply_mono(&r, "%s", "█░░ 1/84 · 1%");
	reply_line(&r, "%s", "First in the group to finish it!");
	r.ephemeral = true;
	char *s = render(&r, true);
	assert_non_null(strstr(s, "\"allowed_mentions\":{\"parse\":[]}"));
	assert_non_null(strstr(s, "\"flags\":64"));
	assert_non_null(strstr(s, "\"title\":\"ana finished Kafka\""));
	cJSON *m = cJSON_Parse(s);
	assert_string_equal(description(m),
			    "```\n█░░ 1/84 · 1%\n```\nFirst in the group to finish it!");
	cJSON_Delete(m);
	cJSON_free(s);
	/* Where ephemeral messages do not exist (a channel post), no flag. */
	s = render(&r, false);
	assert_null(strstr(s, "\"flags\""));
	cJSON_free(s);
	reply_release(&r);
}

static void user_text_cannot_become_markup_or_a_mention(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	dc_escape(&sb, "@everyone **bold** <@&123> [x](http://e.vil) # h\n- item");
	assert_string_equal(sb_str(&sb), "\\@everyone \\*\\*bold\\*\\* \\<\\@&123\\> \\[x\\]\\(http"
					 "://e.vil\\) \\# h\n\\- item");
	sb_release(&sb);
	/* In a code block, only a fence could break out. */
	struct reply r;
	reply_init(&r);
	reply_mono(&r, "%s", "name ```evil``` here");
	char *s = render(&r, true);
	cJSON *m = cJSON_Parse(s);
	const char *d = description(m);
	assert_int_equal(strncmp(d, "```\n", 4), 0);
	assert_null(strstr(d + 4, "```evil"));
	cJSON_Delete(m);
	cJSON_free(s);
	reply_release(&r);
}

static void long_replies_are_clipped_inside_discords_limits(void **state)
{
	(void)state;
	struct reply r;
	reply_init(&r);
	char title[400];
	memset(title, 'T', sizeof(title) - 1);
	title[sizeof(title) - 1] = '\0';
	reply_title(&r, REPLY_INFO, "%s", title);
	for (int i = 0; i < 300; i++)
		reply_mono(&r, "%03d ünïcödé line that is long enough to matter", i);
	char *s = render(&r, true);
	cJSON *m = cJSON_Parse(s);
	cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "embeds"), 0);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "title"));
	const char *d = description(m);
	assert_true(strlen(t) <= DC_MAX_TITLE);
	assert_true(strlen(d) <= DC_MAX_DESCRIPTION);
	assert_true(strlen(d) > DC_MAX_DESCRIPTION - 200);
	/* Cut at a line, the code block closed, valid UTF-8 (cJSON parsed it back). */
	size_t n = strlen(d);
	const char *end = "\n…\n```";
	assert_string_equal(d + n - strlen(end), end);
	cJSON_Delete(m);
	cJSON_free(s);
	reply_release(&r);
}

static void the_command_list_is_complete(void **state)
{
	(void)state;
	cJSON *defs = dc_command_definitions();
	assert_int_equal(cJSON_GetArraySize(defs), 23); /* 18 commands, 5 admin settings */
	char *s = cJSON_PrintUnformatted(defs);
	assert_true(strlen(s) < 8000);
	cJSON *c;
	int autocompleted = 0, admin = 0;
	cJSON_ArrayForEach(c, defs)
	{
		const char *desc = cJSON_GetStringValue(cJSON_GetObjectItem(c, "description"));
		assert_true(desc && *desc && strlen(desc) <= 100);
		if (cJSON_GetObjectItem(c, "default_member_permissions"))
			admin++;
		cJSON *o;
		cJSON_ArrayForEach(o, cJSON_GetObjectItem(c, "options"))
		{
			if (cJSON_IsTrue(cJSON_GetObjectItem(o, "autocomplete")))
				autocompleted++;
		}
	}
	/* topic on done, start, skip, reset, who, fix; name on roadmap-use */
	assert_int_equal(autocompleted, 7);
	/* fix, digest-setup, goal-group, roadmap-use, dashboard-setup, link-group */
	assert_int_equal(admin, 6);
	cJSON_free(s);
	cJSON_Delete(defs);
}

static void close_codes_follow_the_policy_table(void **state)
{
	(void)state;
	const char *why;
	assert_int_equal(gw_close_policy(4000, &why), GW_RESUME);
	assert_int_equal(gw_close_policy(4008, &why), GW_RESUME);
	assert_int_equal(gw_close_policy(0, &why), GW_RESUME); /* a dropped socket */
	assert_int_equal(gw_close_policy(1006, &why), GW_RESUME);
	assert_int_equal(gw_close_policy(4007, &why), GW_IDENTIFY);
	assert_int_equal(gw_close_policy(4009, &why), GW_IDENTIFY);
	assert_int_equal(gw_close_policy(4004, &why), GW_FATAL);
	assert_non_null(strstr(why, "token"));
	for (int code = 4010; code <= 4014; code++)
		assert_int_equal(gw_close_policy(code, &why), GW_FATAL);
	assert_non_null(strstr(why, "Message Content"));
	/* The shard codes say which keys to fix. */
	gw_close_policy(4011, &why);
	assert_non_null(strstr(why, "set discord.shard_count (or leave it 0 for the count "
				    "GET /gateway/bot recommends)"));
	gw_close_policy(4010, &why);
	assert_non_null(strstr(why, "check discord.shards"));
}

/* The string array item's values as one "a,b,c" line (choices: name and value agree). */
static void choice_line(const cJSON *choices, char *out, size_t cap)
{
	const cJSON *c;
	out[0] = '\0';
	cJSON_ArrayForEach(c, choices)
	{
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
		const char *value = cJSON_GetStringValue(cJSON_GetObjectItem(c, "value"));
		assert_non_null(name);
		assert_string_equal(name, value);
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", *out ? "," : "", name);
	}
}

static void table_line(const struct bot_option *o, char *out, size_t cap)
{
	const char *const *v = o->command_choices ? bot_command_names() : o->choices;
	out[0] = '\0';
	for (; v && *v; v++)
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", *out ? "," : "", *v);
}

static void the_registration_follows_the_command_table(void **state)
{
	(void)state;
	cJSON *defs = dc_command_definitions();
	/* One command registered per row of the table, in its order, and nothing else. */
	assert_int_equal(cJSON_GetArraySize(defs), bot_command_count());
	for (size_t i = 0; i < bot_command_count(); i++) {
		const struct bot_command *t = bot_command_at(i);
		const cJSON *c = cJSON_GetArrayItem(defs, (int)i);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), t->name);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "description")),
				    t->summary);
		const char *perm =
			cJSON_GetStringValue(cJSON_GetObjectItem(c, "default_member_permissions"));
		if (t->admin_only)
			assert_string_equal(perm, "32"); /* Manage Server */
		else
			assert_null(perm);
		const cJSON *opts = cJSON_GetObjectItem(c, "options");
		assert_int_equal(cJSON_GetArraySize(opts), t->n_options);
		for (size_t k = 0; k < t->n_options; k++) {
			const struct bot_option *to = &t->options[k];
			const cJSON *o = cJSON_GetArrayItem(opts, (int)k);
			assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")),
					    to->name);
			assert_string_equal(
				cJSON_GetStringValue(cJSON_GetObjectItem(o, "description")),
				to->description);
			assert_true(strlen(to->description) <= 100);
			assert_int_equal(cJSON_GetObjectItem(o, "type")->valueint,
					 to->type == BOT_OPTION_MEMBER ? 6 : 3);
			assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(o, "required")),
					 to->required);
			assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(o, "autocomplete")),
					 to->autocomplete);
			const cJSON *max = cJSON_GetObjectItem(o, "max_length");
			assert_int_equal(max ? max->valueint : 0, to->max_length);
			const cJSON *min = cJSON_GetObjectItem(o, "min_length");
			assert_int_equal(min ? min->valueint : 0, to->min_length);
			char got[512], want[512];
			choice_line(cJSON_GetObjectItem(o, "choices"), got, sizeof(got));
			table_line(to, want, sizeof(want));
			assert_string_equal(got, want);
		}
	}
	/* Every command help lists is registered (and the slash-only ones too). */
	for (const char *const *n = bot_command_names(); *n; n++) {
		bool found = false;
		const cJSON *c;
		cJSON_ArrayForEach(c, defs) found |=
			strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), *n) == 0;
		assert_true(found);
	}
	cJSON_Delete(defs);
}

/* The bytes Discord is sent: a change here re-registers every server's commands. */
static void the_registration_payload_is_pinned(void **state)
{
	(void)state;
	FILE *f = fopen("tests/fixtures/discord/commands.json", "rb");
	assert_non_null(f);
	char want[16384];
	size_t n = fread(want, 1, sizeof(want) - 1, f);
	fclose(f);
	want[n] = '\0';
	while (n && want[n - 1] == '\n')
		want[--n] = '\0';
	cJSON *defs = dc_command_definitions();
	char *got = cJSON_PrintUnformatted(defs);
	assert_string_equal(got, want);
	cJSON_free(got);
	cJSON_Delete(defs);
}

static void an_interaction_becomes_an_event_by_the_command_table(void **state)
{
	(void)state;
	static const char done[] =
		"{\"id\":\"77\",\"type\":2,\"token\":\"t\",\"guild_id\":\"5\",\"channel_id\":\"6\","
		"\"member\":{\"nick\":\"Ana\",\"permissions\":\"32\",\"user\":{\"id\":\"9\","
		"\"username\":\"ana\"}},\"data\":{\"name\":\"done\",\"options\":["
		"{\"name\":\"note\",\"type\":3,\"value\":\"built one\"},"
		"{\"name\":\"stray\",\"type\":3,\"value\":\"not in the table\"},"
		"{\"name\":\"topic\",\"type\":3,\"value\":\"Kafka\"}]}}";
	cJSON *ix = cJSON_Parse(done);
	struct dc_ix_event e;
	assert_int_equal(dc_ix_event(ix, &e), COHORT_OK);
	assert_int_equal(e.ev.kind, EVENT_COMMAND);
	assert_true(e.ev.slash);
	assert_string_equal(e.ev.group_id, "discord:5");
	assert_string_equal(e.ev.channel_id, "6");
	assert_string_equal(e.ev.member_id, "discord:9");
	assert_string_equal(e.ev.member_name, "Ana");
	assert_true(e.ev.is_admin); /* Manage Server */
	assert_string_equal(e.ev.source_id, "discord:77");
	assert_string_equal(e.ev.command, "done");
	/* In the table's order, and only the table's. */
	assert_int_equal(e.ev.n_options, 2);
	assert_string_equal(e.ev.options[0].name, "topic");
	assert_string_equal(e.ev.options[0].value, "Kafka");
	assert_string_equal(e.ev.options[1].name, "note");
	assert_null(e.ev.success_note);
	dc_ix_event_release(&e);
	cJSON_Delete(ix);

	/* A direct message has no server: refused, for an ephemeral answer. */
	ix = cJSON_Parse("{\"id\":\"78\",\"type\":2,\"token\":\"t\",\"channel_id\":\"6\","
			 "\"user\":{\"id\":\"9\"},\"data\":{\"name\":\"done\"}}");
	assert_int_equal(dc_ix_event(ix, &e), COHORT_ERR_DENIED);
	dc_ix_event_release(&e);
	cJSON_Delete(ix);

	/* Autocomplete: the focused option's text. */
	ix = cJSON_Parse("{\"id\":\"79\",\"type\":4,\"token\":\"t\",\"guild_id\":\"5\","
			 "\"data\":{\"name\":\"done\",\"options\":[{\"name\":\"topic\","
			 "\"value\":\"kaf\",\"focused\":true}]}}");
	assert_int_equal(dc_ix_event(ix, &e), COHORT_OK);
	assert_int_equal(e.ev.kind, EVENT_COMPLETE);
	assert_string_equal(e.ev.args, "kaf");
	assert_int_equal(e.ev.max_choices, DC_MAX_CHOICES);
	/* The guild's group: completion offers the topics of its own roadmap. */
	assert_string_equal(e.ev.group_id, "discord:5");
	dc_ix_event_release(&e);
	cJSON_Delete(ix);

	/* /digest-setup here where the bot may not post: the note goes with the answer. */
	ix = cJSON_Parse("{\"id\":\"80\",\"type\":2,\"token\":\"t\",\"guild_id\":\"5\","
			 "\"channel_id\":\"6\",\"app_permissions\":\"1024\",\"member\":{"
			 "\"permissions\":\"32\",\"user\":{\"id\":\"9\"}},\"data\":{\"name\":"
			 "\"digest-setup\",\"options\":[{\"name\":\"channel\",\"value\":\"here\"}]}}");
	assert_int_equal(dc_ix_event(ix, &e), COHORT_OK);
	assert_int_equal(e.ev.n_options, 1);
	assert_non_null(e.ev.success_note);
	assert_non_null(strstr(e.ev.success_note, "Send Messages"));
	dc_ix_event_release(&e);
	cJSON_Delete(ix);

	/* Not a command: ignored. */
	ix = cJSON_Parse("{\"id\":\"81\",\"type\":2,\"token\":\"t\",\"data\":{}}");
	assert_int_equal(dc_ix_event(ix, &e), COHORT_ERR_PARSE);
	dc_ix_event_release(&e);
	cJSON_Delete(ix);
}

static void choices_render_as_discords_autocomplete_data(void **state)
{
	(void)state;
	struct bot_choice c[2] = {{"Kafka \u2014 Message Brokers", "Kafka"}, {"Redis", "Redis"}};
	cJSON *d = dc_render_choices(c, 2);
	char *s = cJSON_PrintUnformatted(d);
	assert_string_equal(s, "{\"choices\":[{\"name\":\"Kafka \u2014 Message Brokers\",\"value\":"
			       "\"Kafka\"},{\"name\":\"Redis\",\"value\":\"Redis\"}]}");
	cJSON_free(s);
	cJSON_Delete(d);
}

int main(void)
{
	json_use_xmalloc();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_reply_becomes_one_embed_that_pings_nobody),
		cmocka_unit_test(user_text_cannot_become_markup_or_a_mention),
		cmocka_unit_test(long_replies_are_clipped_inside_discords_limits),
		cmocka_unit_test(the_command_list_is_complete),
		cmocka_unit_test(the_registration_follows_the_command_table),
		cmocka_unit_test(the_registration_payload_is_pinned),
		cmocka_unit_test(an_interaction_becomes_an_event_by_the_command_table),
		cmocka_unit_test(choices_render_as_discords_autocomplete_data),
		cmocka_unit_test(close_codes_follow_the_policy_table),
	};
	return cmocka_run_group_tests_name("discord", tests, NULL, NULL);
}
