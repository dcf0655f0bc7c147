#include "pages.h"

#include "bot/page.h"
#include "lib/err.h"

#include <string.h>

#define PREFIX "/g/"
#define JSON_SUFFIX ".json"

/* The token and format of path ("/g/TOKEN" or "/g/TOKEN.json"); false when it is neither. */
static bool parse(const char *path, char *token, enum page_format *fmt)
{
	if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
		return false;
	const char *t = path + strlen(PREFIX);
	size_t n = strlen(t);
	*fmt = PAGE_HTML;
	if (n > strlen(JSON_SUFFIX) && strcmp(t + n - strlen(JSON_SUFFIX), JSON_SUFFIX) == 0) {
		*fmt = PAGE_JSON;
		n -= strlen(JSON_SUFFIX);
	}
	if (n != PAGE_TOKEN_LEN)
		return false;
	memcpy(token, t, n);
	token[n] = '\0';
	return page_token_shape(token);
}

static void not_found(struct web_response *res)
{
	web_response_text(res, 404, "There is no page here. Ask the group for the link: "
				    "/dashboard in the chat gives it.");
}

/* On the dispatcher thread. */
static void page_bot(void *ud, struct bot *b, const struct web_request *req,
		     struct web_response *res)
{
	(void)ud;
	char token[PAGE_TOKEN_LEN + 1];
	enum page_format fmt;
	if (!parse(req->path, token, &fmt)) {
		not_found(res);
		return;
	}
	int rc = bot_page(b, token, fmt, &res->body);
	if (rc == COHORT_OK) {
		res->status = 200;
		res->content_type =
			fmt == PAGE_JSON ? "application/json" : "text/html; charset=utf-8";
	} else if (rc == COHORT_ERR_NOT_FOUND) {
		not_found(res);
	} else {
		sb_truncate(&res->body, 0);
		web_response_text(res, 503, "The group's page cannot be read right now; try again "
					    "in a minute.");
	}
}

static enum web_result page_route(void *ud, struct web_call *call, const struct web_request *req,
				  struct web_response *res)
{
	char token[PAGE_TOKEN_LEN + 1];
	enum page_format fmt;
	if (!parse(req->path, token, &fmt)) {
		not_found(res); /* no token has that shape: nothing to look up */
		return WEB_ANSWERED;
	}
	web_ask_bot(call, page_bot, ud);
	return WEB_LATER;
}

void pages_route(struct web_route *out)
{
	memset(out, 0, sizeof(*out));
	out->method = "GET";
	out->path = PREFIX;
	out->fn = page_route;
}
