#include "http.h"

#include "adapters/json.h"
#include "bot/adapter.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Backoff before attempt 2, 3, 4 after a 5xx or a network error (ms; jitter added). */
static const int64_t retry_backoff_ms[] = {500, 1500, 4000};

/*
 * Handles kept for reuse: a fresh one allocates curl's buffers (about 80 kB)
 * again, and freeing them made malloc trim and regrow its heap per request.
 */
#define HTTP_SPARE_HANDLES 8
/* Idle connections kept; curl's default follows the handles in use (4 each). */
#define HTTP_MAX_CONNECTS 16

struct xfer {
	struct http_request rq; /* strings owned */
	char *body_copy;
	struct queue *q;
	CURL *easy;
	struct curl_slist *headers;
	struct strbuf resp;
	bool too_big;
	double h_retry_after; /* Retry-After, seconds; -1 */
	long h_remaining;     /* X-RateLimit-Remaining; -1 */
	double h_reset_after; /* X-RateLimit-Reset-After, seconds; -1 */
	bool h_global;        /* X-RateLimit-Global */
	int attempts, limited, reauthorized;
	unsigned long cred_gen; /* the credentials it was sent with (http_reauthorize) */
	int64_t not_before;
	char errbuf[CURL_ERROR_SIZE];
	struct xfer *next;
};

struct queue {
	char *key;
	struct xfer *head, *tail;
	struct xfer *running; /* at most one at a time */
	int64_t blocked_until;
};

struct http_client {
	char *tag;
	struct curl_slist *base; /* under lock once the worker runs */
	unsigned long cred_gen;  /* under lock: bumped by http_reauthorize */
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;                    /* signalled when the worker has nothing left */
	struct mailbox *inbox;                  /* requests submitted, for the worker */
	bool stopping, cancel;                  /* under lock */
	bool idle_now;                          /* under lock: nothing queued, nothing running */
	bool unauthorized;                      /* under lock */
	bool hold;                              /* under lock: a 401 waits for http_reauthorize */
	struct http_stats stats;                /* under lock */
	/* The worker's own. */
	struct queue **queues;
	size_t nqueues, capqueues;
	int64_t global_until;
	struct http_budget budget; /* reserve NULL: none */
	int tokens;                /* of the budget, usable until tokens_until */
	int64_t tokens_until, budget_retry_at;
	bool asking;               /* a reserve() waits for its answer */
	size_t active;
	CURL *spare[HTTP_SPARE_HANDLES]; /* finished handles, kept for their buffers */
	size_t nspare;
};

static void *worker(void *arg);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (x->resp.len + len > HTTP_MAX_BODY) {
		x->too_big = true;
		return 0; /* aborts the transfer */
	}
	sb_add(&x->resp, data, len);
	return len;
}

/* Matches "Name:" at the start of a header line; returns the value, trimmed, or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, char *buf,
				size_t cap)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	const char *v = line + nl + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

/* A header's seconds: NaN, negative or absurd values count as absent (-1); capped at an hour. */
static double header_seconds(const char *s)
{
	double v = strtod(s, NULL);
	if (!(v >= 0))
		return -1;
	return v > 3600 ? 3600 : v;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	char buf[64];
	if (header_value(line, len, "Retry-After", buf, sizeof(buf)))
		x->h_retry_after = header_seconds(buf);
	else if (header_value(line, len, "X-RateLimit-Remaining", buf, sizeof(buf)))
		x->h_remaining = strtol(buf, NULL, 10);
	else if (header_value(line, len, "X-RateLimit-Reset-After", buf, sizeof(buf)))
		x->h_reset_after = header_seconds(buf);
	else if (header_value(line, len, "X-RateLimit-Global", buf, sizeof(buf)))
		x->h_global = strcasecmp(buf, "true") == 0;
	return len;
}

int64_t http_retry_after_ms(const char *body, double header_seconds)
{
	/* A wait of over an hour is someone's bug: do not sleep for days. */
	const double cap = 3600.0;
	double seconds = -1;
	cJSON *j = body && *body ? cJSON_Parse(body) : NULL;
	const cJSON *v;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "retry_after_ms")) && cJSON_IsNumber(v))
		seconds = v->valuedouble / 1000.0;
	else if ((v = cJSON_GetObjectItemCaseSensitive(j, "retry_after")) && cJSON_IsNumber(v))
		seconds = v->valuedouble;
	cJSON_Delete(j);
	if (!(seconds >= 0) && header_seconds >= 0)
		seconds = header_seconds;
	if (!(seconds >= 0))
		return -1; /* none given, negative, or not a number */
	if (seconds > cap)
		seconds = cap;
	return (int64_t)(seconds * 1000.0 + 0.999);
}

static bool body_says_global(const char *body)
{
	cJSON *j = body && *body ? cJSON_Parse(body) : NULL;
	bool g = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "global"));
	cJSON_Delete(j);
	return g;
}

static void xfer_setup(struct http_client *c, struct xfer *x, CURL *e, const char *method,
		       const char *url, const char *body, long timeout_ms)
{
	sb_release(&x->resp);
	x->too_big = false;
	x->h_retry_after = -1;
	x->h_remaining = -1;
	x->h_reset_after = -1;
	x->h_global = false;
	x->errbuf[0] = '\0';
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 15000L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	}
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct curl_slist *h = c->base; h; h = h->next)
		x->headers = curl_slist_append(x->headers, h->data);
	x->cred_gen = c->cred_gen;
	pthread_mutex_unlock(&c->lock);
	if (body)
		x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
	x->headers = curl_slist_append(x->headers, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
}

/* What a request owns before it is started (also: one submitted after the worker stopped). */
static void xfer_drop(void *arg)
{
	struct xfer *x = arg;
	free((char *)x->rq.method);
	free((char *)x->rq.url);
	free((char *)x->rq.queue);
	free(x->body_copy);
	free(x);
}

static void xfer_free(struct http_client *c, struct xfer *x)
{
	if (x->easy && c->nspare < HTTP_SPARE_HANDLES)
		c->spare[c->nspare++] = x->easy;
	else if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	sb_release(&x->resp);
	xfer_drop(x);
}

static void wake_worker(void *ud)
{
	struct http_client *c = ud;
	curl_multi_wakeup(c->multi);
}

static void finish(struct http_client *c, struct xfer *x, long status, const char *error)
{
	struct http_response r = {.status = status,
				  .error = error,
				  .body = sb_str(&x->resp),
				  .len = x->resp.len,
				  .attempts = x->attempts,
				  .retry_after_ms = -1,
				  .too_large = status == 0 && x->too_big};
	if (x->rq.done)
		x->rq.done(x->rq.ud, &r);
	xfer_free(c, x);
}

struct http_client *http_new(const char *tag, const char *const *headers, size_t nheaders)
{
	pthread_once(&curl_once, curl_init_once);
	struct http_client *c = xcalloc(1, sizeof(*c));
	c->tag = xstrdup(tag);
	for (size_t i = 0; i < nheaders; i++)
		c->base = curl_slist_append(c->base, headers[i]);
	c->multi = curl_multi_init();
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_MAX_CONNECTS);
	c->inbox = mailbox_new(wake_worker, c);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	if (thread_start(&c->thread, worker, c) != 0) {
		log_error(tag, "cannot start the HTTP worker thread");
		mailbox_free(c->inbox);
		curl_multi_cleanup(c->multi);
		curl_slist_free_all(c->base);
		free(c->tag);
		free(c);
		return NULL;
	}
	return c;
}

static void accept_xfer(void *ctx, void *arg);

static void set_budget(void *ctx, void *arg)
{
	struct http_client *c = ctx;
	c->budget = *(struct http_budget *)arg;
	free(arg);
}

void http_set_budget(struct http_client *c, const struct http_budget *b)
{
	struct http_budget *copy = xmalloc(sizeof(*copy));
	*copy = *b;
	mailbox_post(c->inbox, set_budget, NULL, copy);
}

struct budget_answer {
	struct http_client *c;
	int granted;
	int64_t valid_ms;
};

static void on_budget(void *ctx, void *arg)
{
	struct http_client *c = ctx;
	struct budget_answer *a = arg;
	int64_t now = clock_real_ms();
	c->asking = false;
	if (a->valid_ms < 0) {
		c->budget.reserve = NULL; /* gone (shutting down): go on without it */
	} else if (a->granted > 0) {
		c->tokens = a->granted;
		/* A margin, so that none is used after the database's second ended. */
		c->tokens_until = now + a->valid_ms - 20;
	} else {
		c->budget_retry_at = now + a->valid_ms;
	}
	free(a);
}

/* From any thread: hands reserve()'s answer to the worker. */
static void budget_answered(void *ctx, int granted, int64_t valid_ms)
{
	struct http_client *c = ctx;
	struct budget_answer *a = xmalloc(sizeof(*a));
	*a = (struct budget_answer){c, granted, valid_ms};
	mailbox_post(c->inbox, on_budget, NULL, a);
}

/*
 * Whether x may start now as far as the shared budget goes (taking a token);
 * when not, a reserve() is under way or *wait says when to look again.
 */
static bool budget_allows(struct http_client *c, const struct xfer *x, int64_t now, long *wait)
{
	if (!c->budget.reserve || !c->budget.counts(c->budget.ud, x->rq.method, x->rq.url))
		return true;
	if (c->tokens > 0 && now < c->tokens_until) {
		c->tokens--;
		return true;
	}
	c->tokens = 0;
	if (c->asking)
		return false; /* its answer wakes the worker */
	if (now < c->budget_retry_at) {
		if (c->budget_retry_at - now < *wait)
			*wait = (long)(c->budget_retry_at - now);
		return false;
	}
	c->asking = true;
	c->budget.reserve(c->budget.ud, HTTP_BUDGET_CHUNK, budget_answered, c);
	return false;
}

void http_submit(struct http_client *c, const struct http_request *rq)
{
	struct xfer *x = xcalloc(1, sizeof(*x));
	x->rq = *rq;
	x->rq.method = xstrdup(rq->method);
	x->rq.url = xstrdup(rq->url);
	x->rq.queue = xstrdup(rq->queue ? rq->queue : rq->url);
	x->body_copy = rq->body ? xstrdup(rq->body) : NULL;
	x->rq.body = x->body_copy;
	mailbox_post(c->inbox, accept_xfer, xfer_drop, x);
	pthread_mutex_lock(&c->lock);
	c->idle_now = false;
	pthread_mutex_unlock(&c->lock);
}

int http_result(const struct http_response *r)
{
	if (r->status >= 200 && r->status < 300)
		return COHORT_OK;
	return r->status == 401 ? COHORT_ERR_AUTH : COHORT_ERR_NETWORK;
}

void http_reauthorize(struct http_client *c, const char *header)
{
	size_t name = strcspn(header, ":") + 1;
	struct curl_slist *base = NULL;
	pthread_mutex_lock(&c->lock);
	bool replaced = false;
	for (struct curl_slist *h = c->base; h; h = h->next) {
		bool same = strncasecmp(h->data, header, name) == 0;
		base = curl_slist_append(base, same ? header : h->data);
		replaced |= same;
	}
	if (!replaced)
		base = curl_slist_append(base, header);
	curl_slist_free_all(c->base);
	c->base = base;
	c->cred_gen++;
	c->unauthorized = false;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
}

void http_hold_unauthorized(struct http_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->hold = true;
	pthread_mutex_unlock(&c->lock);
}

bool http_unauthorized(struct http_client *c)
{
	pthread_mutex_lock(&c->lock);
	bool u = c->unauthorized;
	pthread_mutex_unlock(&c->lock);
	return u;
}

struct http_stats http_get_stats(struct http_client *c)
{
	pthread_mutex_lock(&c->lock);
	struct http_stats s = c->stats;
	pthread_mutex_unlock(&c->lock);
	return s;
}

static struct queue *queue_get(struct http_client *c, const char *key)
{
	for (size_t i = 0; i < c->nqueues; i++)
		if (strcmp(c->queues[i]->key, key) == 0)
			return c->queues[i];
	grow_array((void **)&c->queues, &c->capqueues, c->nqueues + 1, sizeof(*c->queues));
	struct queue *q = xcalloc(1, sizeof(*q));
	q->key = xstrdup(key);
	c->queues[c->nqueues++] = q;
	return q;
}

static void queue_push(struct queue *q, struct xfer *x, bool front)
{
	x->q = q;
	if (front) {
		x->next = q->head;
		q->head = x;
		if (!q->tail)
			q->tail = x;
		return;
	}
	x->next = NULL;
	if (q->tail)
		q->tail->next = x;
	else
		q->head = x;
	q->tail = x;
}

/* Drops queues with nothing queued, nothing running and no hold to remember. */
static void queues_prune(struct http_client *c, int64_t now)
{
	size_t j = 0;
	for (size_t i = 0; i < c->nqueues; i++) {
		struct queue *q = c->queues[i];
		if (!q->head && !q->running && q->blocked_until <= now) {
			free(q->key);
			free(q);
		} else {
			c->queues[j++] = q;
		}
	}
	c->nqueues = j;
}

static void start(struct http_client *c, struct queue *q)
{
	struct xfer *x = q->head;
	q->head = x->next;
	if (!q->head)
		q->tail = NULL;
	x->next = NULL;
	q->running = x;
	if (!x->easy)
		x->easy = c->nspare ? c->spare[--c->nspare] : curl_easy_init();
	xfer_setup(c, x, x->easy, x->rq.method, x->rq.url, x->rq.body, x->rq.timeout_ms);
	x->attempts++;
	curl_multi_add_handle(c->multi, x->easy);
	c->active++;
	pthread_mutex_lock(&c->lock);
	c->stats.requests++;
	pthread_mutex_unlock(&c->lock);
}

/*
 * Counts an answer (and, sent, the request); a 401 retires the credentials
 * it was sent with (gen), unless http_reauthorize() replaced them since.
 */
static void count(struct http_client *c, long status, bool sent, unsigned long gen)
{
	pthread_mutex_lock(&c->lock);
	if (sent)
		c->stats.requests++;
	if (status == 401)
		c->stats.unauthorized++, c->unauthorized |= gen == c->cred_gen;
	else if (status == 403)
		c->stats.forbidden++;
	else if (status == 429)
		c->stats.rate_limited++;
	else if (status >= 500)
		c->stats.server_errors++;
	else if (status == 0)
		c->stats.network_errors++;
	pthread_mutex_unlock(&c->lock);
}

static int64_t jitter(int64_t ms)
{
	return ms + (int64_t)((double)ms * 0.25 * random_unit());
}

/*
 * The current time in ms rounded up. A wait is counted from here: the worker starts a
 * transfer once clock_real_ms() (rounded down) reaches the deadline, so a deadline from a
 * rounded-down start could come up to a millisecond early.
 */
static int64_t now_ms_ceil(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + (ts.tv_nsec + 999999) / 1000000;
}

/* Decides what a finished transfer means: done, retried, or given up. */
static void completed(struct http_client *c, struct xfer *x, CURLcode code)
{
	struct queue *q = x->q;
	int64_t now = now_ms_ceil();
	long status = 0;
	curl_multi_remove_handle(c->multi, x->easy);
	c->active--;
	q->running = NULL;
	if (code == CURLE_OK)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);

	/* What the bucket headers say holds the queue whatever the status. */
	if (x->h_remaining == 0 && x->h_reset_after > 0)
		q->blocked_until = now + (int64_t)(x->h_reset_after * 1000.0 + 0.999);

	count(c, status, false, x->cred_gen);

	/* Refused with credentials that are (or are about to be) replaced: send it again
	 * with the new ones. The worker holds the queue until http_reauthorize(). */
	pthread_mutex_lock(&c->lock);
	bool again = status == 401 && (c->hold || x->cred_gen != c->cred_gen);
	pthread_mutex_unlock(&c->lock);
	if (again && ++x->reauthorized <= 2) {
		x->attempts--;
		queue_push(q, x, true);
		return;
	}

	if (status == 429 && ++x->limited <= HTTP_MAX_RATE_LIMITED) {
		int64_t wait = http_retry_after_ms(sb_str(&x->resp), x->h_retry_after);
		if (wait < 0)
			wait = 1000;
		bool global = x->h_global || body_says_global(sb_str(&x->resp));
		log_warn(c->tag, "rate limited on %s %s%s: waiting %lld ms", x->rq.method,
			 x->rq.queue, global ? " (global)" : "", (long long)wait);
		if (global)
			c->global_until = now + wait;
		else
			q->blocked_until = now + wait;
		pthread_mutex_lock(&c->lock);
		c->stats.rate_limit_wait_ms += wait;
		pthread_mutex_unlock(&c->lock);
		x->attempts--; /* a 429 is not a failed attempt */
		queue_push(q, x, true);
		return;
	}
	bool transient = status >= 500 || (status == 0 && !x->too_big);
	if (transient && x->attempts < HTTP_MAX_ATTEMPTS) {
		int64_t wait = jitter(retry_backoff_ms[x->attempts - 1]);
		log_warn(c->tag, "%s %s: %s; retrying in %lld ms (attempt %d of %d)", x->rq.method,
			 x->rq.queue,
			 status ? "server error"
				: (x->errbuf[0] ? x->errbuf : curl_easy_strerror(code)),
			 (long long)wait, x->attempts + 1, HTTP_MAX_ATTEMPTS);
		x->not_before = now + wait;
		queue_push(q, x, true);
		return;
	}
	char why[CURL_ERROR_SIZE + 64];
	const char *error = NULL;
	if (status == 0) {
		snprintf(why, sizeof(why), "%s",
			 x->too_big     ? "the response is larger than the limit"
			 : x->errbuf[0] ? x->errbuf
					: curl_easy_strerror(code));
		error = why;
	}
	if (transient || status == 429) {
		pthread_mutex_lock(&c->lock);
		c->stats.given_up++;
		pthread_mutex_unlock(&c->lock);
		char buf[HTTP_WHY_LEN];
		log_error(c->tag, "%s %s: giving up after %d attempts (%s)", x->rq.method,
			  x->rq.queue, x->attempts, http_why(error, status, buf));
	}
	finish(c, x, status, error);
}

static void cancel_all(struct http_client *c)
{
	for (size_t i = 0; i < c->nqueues; i++) {
		struct queue *q = c->queues[i];
		while (q->head) {
			struct xfer *x = q->head;
			q->head = x->next;
			log_warn(c->tag, "%s %s: cancelled at shutdown", x->rq.method, x->rq.queue);
			finish(c, x, 0, "cancelled");
		}
		q->tail = NULL;
		if (q->running) {
			struct xfer *x = q->running;
			q->running = NULL;
			curl_multi_remove_handle(c->multi, x->easy);
			c->active--;
			log_warn(c->tag, "%s %s: cut short at shutdown", x->rq.method, x->rq.queue);
			finish(c, x, 0, "cancelled");
		}
	}
}

/* On the worker: a submitted request joins its queue. */
static void accept_xfer(void *ctx, void *arg)
{
	struct http_client *c = ctx;
	struct xfer *x = arg;
	queue_push(queue_get(c, x->rq.queue), x, false);
}

static void *worker(void *arg)
{
	struct http_client *c = arg;
	for (;;) {
		/* Oldest first, so each queue keeps submission order. */
		mailbox_run(c->inbox, c);
		pthread_mutex_lock(&c->lock);
		bool cancel = c->cancel, unauthorized = c->unauthorized, hold = c->hold;
		pthread_mutex_unlock(&c->lock);
		if (cancel)
			cancel_all(c);
		/*
		 * Finished transfers first: one may have set a wait (a 429's retry_after,
		 * global or not, a bucket reset, a 5xx backoff) that the requests about to
		 * start must respect, or freed its queue for the next one; and the next
		 * deadline is worked out from what they left, so a retry starts when due.
		 */
		int running;
		curl_multi_perform(c->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(c->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			completed(c, x, m->data.result);
		}

		int64_t now = clock_real_ms();
		long wait = 1000;
		bool pending = false;
		for (size_t i = 0; i < c->nqueues; i++) {
			struct queue *q = c->queues[i];
			if (!q->head)
				continue;
			pending = true;
			if (q->running || (unauthorized && hold))
				continue; /* held: http_reauthorize() wakes the worker */
			if (unauthorized) {
				/* The token was rejected: never send it again. */
				struct xfer *x = q->head;
				q->head = x->next;
				if (!q->head)
					q->tail = NULL;
				finish(c, x, 401, NULL);
				i--;
				continue;
			}
			int64_t ready = q->blocked_until;
			if (c->global_until > ready)
				ready = c->global_until;
			if (q->head->not_before > ready)
				ready = q->head->not_before;
			if (ready > now) {
				if (ready - now < wait)
					wait = (long)(ready - now);
			} else if (budget_allows(c, q->head, now, &wait)) {
				start(c, q);
			}
		}
		queues_prune(c, now);
		if (!pending && !c->active) {
			pthread_mutex_lock(&c->lock);
			bool empty = mailbox_empty(c->inbox);
			bool done = c->stopping && empty;
			c->idle_now = empty;
			pthread_cond_broadcast(&c->idle);
			pthread_mutex_unlock(&c->lock);
			if (done)
				break;
		}
		if (c->active || pending)
			curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
		else
			curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

void http_free(struct http_client *c, long grace_ms)
{
	if (!c)
		return;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += grace_ms / 1000;
	until.tv_nsec += (grace_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L)
		until.tv_sec++, until.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	c->idle_now = false;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
	pthread_mutex_lock(&c->lock);
	while (!c->idle_now)
		if (pthread_cond_timedwait(&c->idle, &c->lock, &until) != 0)
			break;
	c->cancel = true; /* whatever is left after the grace period */
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
	pthread_join(c->thread, NULL);
	for (size_t i = 0; i < c->nqueues; i++)
		free(c->queues[i]->key), free(c->queues[i]);
	free(c->queues);
	while (c->nspare)
		curl_easy_cleanup(c->spare[--c->nspare]);
	mailbox_free(c->inbox);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->base);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c->tag);
	free(c);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	return atomic_load((const atomic_bool *)ud) ? 1 : 0; /* non-zero aborts the transfer */
}

bool http_fetch(struct http_client *c, const char *method, const char *url, const char *body,
		long timeout_ms, const atomic_bool *cancel, struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->retry_after_ms = -1;
	if (http_unauthorized(c)) {
		resp->status = 401;
		resp->body = xstrdup(""); /* http_response_release() frees it */
		return true;
	}
	struct xfer *x = xcalloc(1, sizeof(*x));
	CURL *e = curl_easy_init();
	if (!e) {
		free(x);
		return false;
	}
	xfer_setup(c, x, e, method, url, body, timeout_ms);
	if (cancel) {
		curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)cancel);
	}
	CURLcode code = curl_easy_perform(e);
	long status = 0;
	if (code == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	count(c, status, true, x->cred_gen);
	resp->status = status;
	resp->attempts = 1;
	if (status == 0)
		resp->error = xstrdup(code == CURLE_ABORTED_BY_CALLBACK ? "cancelled"
				      : x->too_big   ? "the response is larger than the limit"
				      : x->errbuf[0] ? x->errbuf
						     : curl_easy_strerror(code));
	if (status == 429)
		resp->retry_after_ms = http_retry_after_ms(sb_str(&x->resp), x->h_retry_after);
	resp->too_large = status == 0 && x->too_big;
	resp->len = x->resp.len;
	resp->body = sb_detach(&x->resp);
	curl_easy_cleanup(e);
	curl_slist_free_all(x->headers);
	free(x);
	return true;
}

void http_response_release(struct http_response *resp)
{
	free((char *)resp->body);
	free((char *)resp->error);
	memset(resp, 0, sizeof(*resp));
}

char *http_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			sb_addc(&sb, (char)*p);
		} else {
			sb_addc(&sb, '%');
			sb_addc(&sb, hex[*p >> 4]);
			sb_addc(&sb, hex[*p & 15]);
		}
	}
	return sb_detach(&sb);
}

const char *http_why(const char *error, long status, char *buf)
{
	if (error)
		return error;
	snprintf(buf, HTTP_WHY_LEN, "status %ld", status);
	return buf;
}

void http_fill_status(struct http_client *c, struct adapter_status *out)
{
	if (!c)
		return;
	struct http_stats hs = http_get_stats(c);
	out->requests = hs.requests;
	out->rate_limited = hs.rate_limited;
	out->unauthorized = hs.unauthorized;
	out->forbidden = hs.forbidden;
	out->server_errors = hs.server_errors;
	out->given_up = hs.given_up;
	out->rate_limit_wait_ms = hs.rate_limit_wait_ms;
}
