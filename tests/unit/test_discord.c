/* The Discord side of replies (embeds within limits, escaping) and the gateway's policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/discord/gateway.h"
#include "adapters/discord/render.h"
#include "bot/reply.h"
#include "lib/util.h"

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
	assert_int_equal(cJSON_GetArraySize(defs), 13);
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
	assert_int_equal(autocompleted, 5); /* topic on done, start, skip, reset, who */
	assert_int_equal(admin, 1);
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

int main(void)
{
	json_use_xmalloc();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_reply_becomes_one_embed_that_pings_nobody),
		cmocka_unit_test(user_text_cannot_become_markup_or_a_mention),
		cmocka_unit_test(long_replies_are_clipped_inside_discords_limits),
		cmocka_unit_test(the_command_list_is_complete),
		cmocka_unit_test(close_codes_follow_the_policy_table),
	};
	return cmocka_run_group_tests_name("discord", tests, NULL, NULL);
}
