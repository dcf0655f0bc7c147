#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/page.h"

#include <cjson/cJSON.h>

static int setup(void **state)
{
	struct bot_fixture *f = bot_fixture_new("Europe/Berlin");
	if (!f)
		return -1;
	f->now = local_time("Europe/Berlin", 2026, 11, 25, 12, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	return bot_fixture_free(*state);
}

/* The token in a reply's link line ("http://x/g/TOKEN"), copied into out. */
static bool token_of(const char *text, char *out)
{
	const char *g = strstr(text, "/g/");
	if (!g)
		return false;
	snprintf(out, PAGE_TOKEN_LEN + 1, "%s", g + 3);
	return page_token_shape(out);
}

static char *page(struct bot_fixture *f, const char *token, enum page_format fmt, int *rc)
{
	struct strbuf sb = STRBUF_INIT;
	*rc = bot_page(f->bot, token, fmt, &sb);
	return sb_detach(&sb);
}

static void tokens_are_long_random_and_url_safe(void **state)
{
	(void)state;
	char a[PAGE_TOKEN_LEN + 1], b[PAGE_TOKEN_LEN + 1];
	assert_int_equal(page_token_new(a), COHORT_OK);
	assert_int_equal(page_token_new(b), COHORT_OK);
	assert_int_equal(strlen(a), PAGE_TOKEN_LEN);
	assert_true(PAGE_TOKEN_LEN * 6 >= 128);
	assert_string_not_equal(a, b);
	assert_true(page_token_shape(a));
	assert_false(page_token_shape("short"));
	assert_false(page_token_shape("../../../../etc/passwd/aaaaaaaaaaaaaaaa"));
	char bad[PAGE_TOKEN_LEN + 1];
	memcpy(bad, a, sizeof(bad));
	bad[3] = '.';
	assert_false(page_token_shape(bad));
}

static void without_a_public_url_dashboard_says_what_to_set(void **state)
{
	struct bot_fixture *f = *state;
	const char *t = say_as(f, "ana", true, "dashboard", "on");
	assert_contains(t, "http.listen");
	assert_contains(t, "http.public_url");
	assert_contains(t, "Nothing was changed");
	struct store_dashboard d;
	assert_int_equal(store_dashboard_get(f->st, "test:group", &d), COHORT_ERR_NOT_FOUND);
	t = say_as(f, "bo", false, "dashboard", "");
	assert_contains(t, "http.public_url");
	assert_true(f->reply.ephemeral);
}

static void admins_turn_the_page_on_off_and_give_it_a_new_link(void **state)
{
	struct bot_fixture *f = *state;
	bot_set_public_url(f->bot, "https://cohort.example.org/");
	char tok[PAGE_TOKEN_LEN + 1], tok2[PAGE_TOKEN_LEN + 1];
	int rc;

	const char *t = say_as(f, "bo", false, "dashboard", "");
	assert_contains(t, "The group's page is off");
	assert_contains(t, "/dashboard on");
	t = say_as(f, "bo", false, "dashboard", "on");
	assert_contains(t, "Only admins");
	assert_int_equal(store_dashboard_get(f->st, "test:group", &(struct store_dashboard){0}),
			 COHORT_ERR_NOT_FOUND);
	t = say_as(f, "ana", true, "dashboard", "sideways");
	assert_contains(t, "Usage: /dashboard [on|off|reset]");

	t = say_as(f, "ana", true, "dashboard", "on");
	assert_contains(t, "The group's page is on");
	assert_contains(t, "https://cohort.example.org/g/");
	assert_lacks(t, "org//g/");
	assert_true(token_of(t, tok));
	/* Anyone gets the link, for their eyes only. */
	t = say_as(f, "bo", false, "dashboard", "");
	assert_contains(t, tok);
	assert_true(f->reply.ephemeral);
	char *html = page(f, tok, PAGE_HTML, &rc);
	assert_int_equal(rc, COHORT_OK);
	assert_contains(html, "<!DOCTYPE html>");
	free(html);

	/* Off: the link finds nothing; on again: the same link. */
	t = say_as(f, "ana", true, "dashboard", "off");
	assert_contains(t, "The group's page is off");
	html = page(f, tok, PAGE_HTML, &rc);
	assert_int_equal(rc, COHORT_ERR_NOT_FOUND);
	assert_string_equal(html, "");
	free(html);
	t = say_as(f, "bo", false, "dashboard", "");
	assert_lacks(t, tok);
	t = say_as(f, "ana", true, "dashboard", "on");
	assert_contains(t, tok);

	/* Reset: a new link; the old one finds nothing. */
	t = say_as(f, "ana", true, "dashboard", "reset");
	assert_contains(t, "new link");
	assert_true(token_of(t, tok2));
	assert_string_not_equal(tok, tok2);
	html = page(f, tok, PAGE_JSON, &rc);
	assert_int_equal(rc, COHORT_ERR_NOT_FOUND);
	free(html);
	html = page(f, tok2, PAGE_JSON, &rc);
	assert_int_equal(rc, COHORT_OK);
	free(html);
	html = page(f, "not-a-token", PAGE_HTML, &rc);
	assert_int_equal(rc, COHORT_ERR_NOT_FOUND);
	free(html);
	char *link = bot_page_link(f->bot, "test:group");
	assert_non_null(link);
	assert_contains(link, tok2);
	free(link);
	assert_null(bot_page_link(f->bot, "test:other"));
}

/* Renders the fixture group's page both ways; the JSON is parsed (the caller deletes it). */
static char *render(struct bot_fixture *f, cJSON **json)
{
	struct page_data d;
	assert_int_equal(page_collect(f->bot, "test:group", &d), COHORT_OK);
	struct strbuf sb = STRBUF_INIT, js = STRBUF_INIT;
	page_render_html(&d, &sb);
	page_render_json(&d, &js);
	page_data_release(&d);
	*json = cJSON_Parse(sb_str(&js));
	assert_non_null(*json);
	sb_release(&js);
	return sb_detach(&sb);
}

static void an_empty_group_gets_a_whole_page(void **state)
{
	struct bot_fixture *f = *state;
	cJSON *j;
	char *html = render(f, &j);
	assert_contains(html, "<!DOCTYPE html>");
	assert_contains(html, "</html>");
	assert_contains(html, "Nobody has finished a topic yet");
	assert_contains(html, "id=\"progress\"");
	assert_contains(html, "id=\"calendar\"");
	assert_contains(html, "<figcaption id=\"progress-cap\">");
	assert_contains(html, "prefers-color-scheme:dark");
	assert_lacks(html, "<script");
	assert_int_equal(cJSON_GetObjectItem(j, "members")->valueint, 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "days")), PAGE_DAYS);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "finishes")), 0);
	cJSON_Delete(j);
	free(html);
}

static void hostile_names_and_notes_are_text(void **state)
{
	struct bot_fixture *f = *state;
	say_as(f, "<script>alert(1)</script>", false, "done", "Kafka \"><img src=x onerror=alert(1)>");
	say_as(f, "eve\xe2\x80\xae" "evil", false, "done", "Redis it's & done");
	cJSON *j;
	char *html = render(f, &j);
	assert_lacks(html, "<script>");
	assert_lacks(html, "<img");
	assert_lacks(html, "\xe2\x80\xae"); /* no bidirectional override reorders the page */
	assert_contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
	assert_contains(html, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
	assert_contains(html, "it&#39;s &amp; done");
	/* The JSON keeps the text as it was written (a JSON string, escaped by the encoder). */
	cJSON *fin = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "finishes"), 0);
	if (strcmp(cJSON_GetObjectItem(fin, "topic")->valuestring, "Kafka") != 0)
		fin = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "finishes"), 1);
	assert_string_equal(cJSON_GetObjectItem(fin, "member")->valuestring,
			    "<script>alert(1)</script>");
	assert_string_equal(cJSON_GetObjectItem(fin, "note")->valuestring,
			    "\"><img src=x onerror=alert(1)>");
	cJSON_Delete(j);
	free(html);
}

static void ties_share_a_rank_and_the_earlier_comes_first(void **state)
{
	struct bot_fixture *f = *state;
	f->now = local_time("Europe/Berlin", 2026, 11, 23, 10, 0); /* Monday */
	say_as(f, "cy", false, "done", "Redis");
	f->now += 60000;
	say_as(f, "ana", false, "done", "Kafka");
	f->now += 60000;
	say_as(f, "bo", false, "done", "Kafka, Redis");
	f->now = local_time("Europe/Berlin", 2026, 11, 25, 9, 0);
	say_as(f, "bo", false, "done", "Docker");
	say_as(f, "ana", false, "done", "Redis");
	say_as(f, "ana", false, "undo", "");
	cJSON *j;
	char *html = render(f, &j);
	cJSON *all = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "leaderboard"), "all");
	if (cJSON_GetArraySize(all) != 3)
		fail_msg("%s", cJSON_Print(all));
	const char *want[3] = {"bo", "cy", "ana"};
	const int rank[3] = {1, 2, 2};
	for (int i = 0; i < 3; i++) {
		cJSON *row = cJSON_GetArrayItem(all, i);
		assert_string_equal(cJSON_GetObjectItem(row, "member")->valuestring, want[i]);
		assert_int_equal(cJSON_GetObjectItem(row, "rank")->valueint, rank[i]);
	}
	/* This week's trend of bo: 3 finishes in the last week. */
	cJSON *trend = cJSON_GetObjectItem(cJSON_GetArrayItem(all, 0), "trend");
	assert_int_equal(cJSON_GetArrayItem(trend, PAGE_WEEKS - 1)->valueint, 3);
	/* Per day: 4 on Monday, 1 on Wednesday (the undone Git does not count); 5 in all. */
	cJSON *days = cJSON_GetObjectItem(j, "days");
	cJSON *mon = cJSON_GetArrayItem(days, PAGE_DAYS - 3), *wed = cJSON_GetArrayItem(days,
										     PAGE_DAYS - 1);
	assert_string_equal(cJSON_GetObjectItem(mon, "date")->valuestring, "2026-11-23");
	assert_int_equal(cJSON_GetObjectItem(mon, "finished")->valueint, 4);
	assert_int_equal(cJSON_GetObjectItem(wed, "finished")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(wed, "done")->valueint, 5);
	/* The HTML shows the same: bo first, cy and ana sharing rank 2 in that order. */
	const char *b = strstr(html, "id=\"board-all\"");
	assert_non_null(b);
	const char *pb = strstr(b, ">bo<"), *pc = strstr(b, ">cy<"), *pa = strstr(b, ">ana<");
	assert_true(pb && pc && pa && pb < pc && pc < pa);
	assert_contains(b, "<td class=\"n\">2</td><td class=\"name\">cy</td>");
	assert_contains(b, "<td class=\"n\">2</td><td class=\"name\">ana</td>");
	/* Every chart has its text equivalent. */
	assert_contains(html, "<th scope=\"row\">2026-11-23</th><td>4</td>");
	assert_contains(html, "Percent of each section finished, by member");
	cJSON_Delete(j);
	free(html);
}

static void the_digest_links_the_page_when_it_is_on(void **state)
{
	struct bot_fixture *f = *state;
	bot_set_public_url(f->bot, "http://127.0.0.1:8080");
	char tok[PAGE_TOKEN_LEN + 1], want[128];
	say_as(f, "ana", false, "done", "Kafka");
	const char *t = say_as(f, "ana", false, "digest", "");
	assert_lacks(t, "/g/");
	t = say_as(f, "ana", true, "dashboard", "on");
	assert_true(token_of(t, tok));
	snprintf(want, sizeof(want), "The group's page: http://127.0.0.1:8080/g/%s", tok);
	t = say_as(f, "ana", false, "digest", "");
	assert_contains(t, want);
	say_as(f, "ana", true, "dashboard", "off");
	t = say_as(f, "ana", false, "digest", "");
	assert_lacks(t, "/g/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tokens_are_long_random_and_url_safe),
		cmocka_unit_test_setup_teardown(without_a_public_url_dashboard_says_what_to_set,
						setup, teardown),
		cmocka_unit_test_setup_teardown(admins_turn_the_page_on_off_and_give_it_a_new_link,
						setup, teardown),
		cmocka_unit_test_setup_teardown(an_empty_group_gets_a_whole_page, setup, teardown),
		cmocka_unit_test_setup_teardown(the_digest_links_the_page_when_it_is_on, setup,
						teardown),
		cmocka_unit_test_setup_teardown(hostile_names_and_notes_are_text, setup, teardown),
		cmocka_unit_test_setup_teardown(ties_share_a_rank_and_the_earlier_comes_first, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("page", tests, NULL, NULL);
}
