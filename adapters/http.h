/*
 * An HTTP client for the platforms' REST APIs: requests go out from one
 * worker thread (libcurl's multi interface), so no caller ever waits on the
 * network. Requests in the same queue run one at a time, in order (a Discord
 * rate-limit bucket, a Matrix room); different queues run side by side.
 *
 * The policy is the platforms' common one: a 429 waits the time the server
 * asks for (Retry-After, or retry_after / retry_after_ms in a JSON body) in
 * that queue, or in every queue when the limit is global; "remaining 0" in
 * X-RateLimit-* holds the queue until the reset; 5xx answers and network
 * errors are retried a bounded number of times with backoff, then given up
 * with a log line; after a 401 the credentials are never used again.
 *
 * Threading: http_submit() from any thread. Callbacks run on the worker.
 */
#ifndef COHORT_HTTP_H
#define COHORT_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest response body kept; a longer one is an error (status 0). */
#define HTTP_MAX_BODY (16 * 1024 * 1024) /* a first /sync of a bot in many rooms is large */
/* Attempts for a request that meets 5xx answers or network errors. */
#define HTTP_MAX_ATTEMPTS 4
/* 429 answers a request may meet before it is given up. */
#define HTTP_MAX_RATE_LIMITED 8

struct http_client;

struct http_response {
	long status;       /* the HTTP status; 0 when there was none (see error) */
	const char *error; /* what went wrong when status is 0, else NULL */
	const char *body;  /* NUL-terminated */
	size_t len;
	int attempts;           /* how many times it was sent */
	int64_t retry_after_ms; /* for a 429: the wait the server asked for; else -1 */
	bool too_large;         /* status 0 because the body passed HTTP_MAX_BODY */
};

/* Called once per request on the worker thread, with its final response (borrowed). */
typedef void http_done_fn(void *ud, const struct http_response *resp);

struct http_request {
	const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *url;    /* absolute */
	const char *body;   /* JSON, or NULL for none */
	const char *queue;  /* requests with the same queue run in order; NULL: the URL */
	long timeout_ms;    /* 0: 15 s */
	http_done_fn *done; /* may be NULL */
	void *ud;
};

struct http_stats {
	unsigned long requests, unauthorized, forbidden, rate_limited, server_errors,
		network_errors, given_up;
	int64_t rate_limit_wait_ms; /* total time spent held back by rate limits */
};

/*
 * A client whose requests all carry these headers ("Name: value" strings,
 * copied; may hold a token: they never reach a log). tag names it in logs.
 * Starts its worker thread; returns NULL when that fails.
 */
struct http_client *http_new(const char *tag, const char *const *headers, size_t nheaders);

/*
 * Waits up to grace_ms for queued requests to finish, cancels the rest
 * (their callbacks see status 0, "cancelled"), stops the worker and frees c.
 */
void http_free(struct http_client *c, long grace_ms);

/*
 * A request budget shared with other processes (Discord's global limit: 50
 * requests per second per bot, whichever process sends them). A request for
 * which counts() is true starts only with a token; the worker gets tokens
 * from reserve(ud, n, answer, ctx), which must not block: answer(ctx,
 * granted, valid_ms) comes once, later, from any thread: granted tokens
 * usable for valid_ms, or none (0) until valid_ms from now; valid_ms < 0:
 * never (the budget is gone: requests go on without it). Every attempt of a
 * request (a retry too) takes a token.
 */
struct http_budget {
	bool (*counts)(void *ud, const char *method, const char *url);
	void (*reserve)(void *ud, int n, void (*answer)(void *ctx, int granted, int64_t valid_ms),
			void *ctx);
	void *ud;
};
/* Tokens are asked for this many at a time. */
#define HTTP_BUDGET_CHUNK 5
/* Sets c's budget (copied), before its first request. */
void http_set_budget(struct http_client *c, const struct http_budget *b);

/* Queues a request (copied). Never blocks on the network. */
void http_submit(struct http_client *c, const struct http_request *rq);

/* What a response means for a caller: COHORT_OK (2xx), COHORT_ERR_AUTH (401), else
 * COHORT_ERR_NETWORK. */
int http_result(const struct http_response *r);

/*
 * Replaces the header with the same name as header ("Authorization: Bearer
 * NEW"; copied, may hold a token) for every request from now on, and takes
 * the client out of the rejected state: a renewed token. A 401 to a request
 * sent with the old credentials no longer retires the new ones. Any thread.
 */
void http_reauthorize(struct http_client *c, const char *header);

/*
 * From now on a 401 holds requests instead of failing them: the one refused
 * and every one after it wait (until http_free() cancels them) for
 * http_reauthorize(), then go out with the new credentials. For tokens that
 * expire and are renewed (Matrix refresh tokens).
 */
void http_hold_unauthorized(struct http_client *c);

/* True once a request met 401: the credentials were rejected. */
bool http_unauthorized(struct http_client *c);

/* A snapshot of the counters. */
struct http_stats http_get_stats(struct http_client *c);

/* Copies the counters into an adapter's status (bot/adapter.h). c may be NULL. */
struct adapter_status;
void http_fill_status(struct http_client *c, struct adapter_status *out);

/*
 * A blocking request on the calling thread (the Matrix long poll), with the
 * client's headers; no queue, no retries. It is cut short (status 0,
 * "cancelled") soon after *cancel becomes true, when cancel is not NULL.
 * *resp must be released with http_response_release(). Returns false when
 * curl could not even start.
 */
bool http_fetch(struct http_client *c, const char *method, const char *url, const char *body,
		long timeout_ms, const atomic_bool *cancel, struct http_response *resp);
void http_response_release(struct http_response *resp);

/* What went wrong, for a log line: the error, or "status N" (in buf, HTTP_WHY_LEN bytes). */
#define HTTP_WHY_LEN 64
const char *http_why(const char *error, long status, char *buf);

/* s percent-encoded for a URL path segment or query value (a new string). */
char *http_escape(const char *s);

/* Reads the wait a 429 answer asks for (ms) from its body or Retry-After; -1 when it gives none. */
int64_t http_retry_after_ms(const char *body, double header_seconds);

#endif
