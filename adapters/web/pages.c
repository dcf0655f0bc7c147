#include "pages.h"

#include "bot/adapter.h"
#include "bot/page.h"
#include "lib/err.h"
#include "lib/util.h"

#include <stdlib.h>
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

struct page_call {
	struct web_call *call;
	enum page_format fmt;
	bool answered;
};

/* On the dispatcher thread: the bot's answer becomes the response. */
static void page_answer(void *ctx, const struct door_read_answer *a)
{
	struct page_call *pc = ctx;
	struct web_response res;
	web_response_init(&res);
	if (a->rc == COHORT_OK) {
		sb_add(&res.body, a->body, a->len);
		res.status = 200;
		res.content_type =
			pc->fmt == PAGE_JSON ? "application/json" : "text/html; charset=utf-8";
	} else if (a->rc == COHORT_ERR_NOT_FOUND) {
		not_found(&res);
	} else {
		web_response_text(&res, 503, "The group's page cannot be read right now; try again "
					     "in a minute.");
	}
	web_answer(pc->call, &res);
	pc->answered = true;
}

/* A read that never ran (shutdown) is answered too. */
static void page_drop(void *ctx)
{
	struct page_call *pc = ctx;
	if (!pc->answered) {
		struct web_response res;
		web_response_init(&res);
		web_response_text(&res, 503, "cohort is stopping; try again later");
		web_answer(pc->call, &res);
	}
	free(pc);
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
	struct page_call *pc = xmalloc(sizeof(*pc));
	*pc = (struct page_call){call, fmt, false};
	struct read_sink sink = {page_answer, page_drop, pc};
	door_read(ud, fmt == PAGE_JSON ? DOOR_READ_PAGE_JSON : DOOR_READ_PAGE_HTML, token, &sink);
	return WEB_LATER;
}

void pages_route(struct door *door, struct web_route *out)
{
	memset(out, 0, sizeof(*out));
	out->ud = door;
	out->method = "GET";
	out->path = PREFIX;
	out->fn = page_route;
}
