#define NDEBUG /* lws_config.h defines _DEBUG otherwise */
#include "web.h"

#include "bot/adapter.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/metrics.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define TAG "http"
#define MAX_ROUTES 16
#define MAX_ROUTE_HEADERS 8
#define WRITE_CHUNK 16384
/* /healthz waits this long for the store before it says the store does not answer. */
#define WEB_HEALTH_TIMEOUT_MS 3000
/* A /healthz answer younger than this is given again instead of asking the store again. */
#define WEB_HEALTH_REUSE_MS 1000

/* A connection accepted from an IPv4 client (server thread): its socket and whom it was from. */
struct peer {
	int fd; /* -1: a free slot */
	struct sockaddr_in addr;
};

struct route {
	struct web_route r;
	bool post, prefix;
};

struct conn;

struct web_call {
	struct web *w;
	struct conn *conn; /* server thread; NULL once the client is gone or was answered 503 */
	const struct route *route;
	struct web_request req;
	char *path, *query, *method;
	struct strbuf body;
	char *headers[MAX_ROUTE_HEADERS]; /* values of route->r.headers, NULL when absent */
	int64_t deadline;
	bool timeout_json;            /* /healthz: its 503 on a timeout says why, in JSON */
	bool health_wait;             /* /healthz: answered by the health check in flight */
	struct web_call *prev, *next; /* the server's list of calls not answered yet */
};

/* Per connection (libwebsockets' per-session data): the call in progress, the answer being sent. */
struct conn {
	struct lws *wsi;
	struct web_call *call;
	bool head;
	/* The answer: headers sent, then body from out_off. */
	bool answering, headers_sent;
	bool close_after; /* a body was left unread: close once answered */
	struct web_response res;
	size_t out_off;
	void (*written)(void *ud, bool ok); /* web_answer_then(): called once, then NULL */
	void *written_ud;
};

struct web {
	struct web_opts o;
	struct route routes[MAX_ROUTES];
	size_t n_routes;
	struct lws_context *ctx; /* under lock for other threads */
	struct lws_vhost *vhost;
	pthread_mutex_t lock;
	bool stop_asked; /* under lock */
	bool stopping;   /* server thread */
	struct mailbox *answers;
	struct web_call *calls;
	pthread_t thread;
	bool running;
	int port;
	lws_sorted_usec_list_t sul_tick;
	struct peer peers[WEB_MAX_CONNECTIONS]; /* for WEB_MAX_PER_CLIENT */
	/* /healthz (server thread): at most one store check queued on the dispatcher; the
	 * requests that come meanwhile wait for it, and its answer is reused for
	 * WEB_HEALTH_REUSE_MS, so a flood of them cannot fill the dispatcher's queue. */
	bool health_running;
	int64_t health_at; /* clock_real_ms() of health_body; 0: none to reuse */
	int health_status;
	struct strbuf health_body;
};

static const char default_csp[] =
	"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
	"form-action 'none'; frame-ancestors 'none'";

void web_response_init(struct web_response *res)
{
	memset(res, 0, sizeof(*res));
	res->status = 200;
}

void web_response_release(struct web_response *res)
{
	sb_release(&res->body);
	web_response_init(res);
}

void web_response_text(struct web_response *res, int status, const char *fmt, ...)
{
	res->status = status;
	res->content_type = "text/plain; charset=utf-8";
	sb_truncate(&res->body, 0);
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&res->body, fmt, ap);
	va_end(ap);
	sb_addc(&res->body, '\n');
}

/* ---- calls ---- */

static void call_unlink(struct web_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (c->w->calls == c)
		c->w->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void call_free(struct web_call *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->query);
	free(c->method);
	sb_release(&c->body);
	for (size_t i = 0; i < MAX_ROUTE_HEADERS; i++)
		free(c->headers[i]);
	free(c);
}

const char *web_header(const struct web_call *call, const char *name)
{
	const char *const *h = call->route->r.headers;
	for (size_t i = 0; h && h[i] && i < MAX_ROUTE_HEADERS; i++)
		if (strcmp(h[i], name) == 0)
			return call->headers[i];
	return NULL;
}

/* ---- sending an answer (server thread) ---- */

/* Tells web_answer_then()'s caller whether its response was written, once. */
static void conn_written(struct conn *cn, bool ok)
{
	void (*fn)(void *, bool) = cn->written;
	cn->written = NULL;
	if (fn)
		fn(cn->written_ud, ok);
}

static void conn_answer(struct conn *cn, struct web_response *res)
{
	cn->res = *res;
	web_response_init(res);
	cn->answering = true;
	cn->headers_sent = false;
	cn->out_off = 0;
	lws_callback_on_writable(cn->wsi);
}

/* Answers now with a short text (an error before any route ran). */
static void conn_answer_text(struct conn *cn, int status, const char *allow, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void conn_answer_text(struct conn *cn, int status, const char *allow, const char *fmt, ...)
{
	struct web_response res;
	web_response_init(&res);
	res.status = status;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&res.body, fmt, ap);
	va_end(ap);
	sb_addc(&res.body, '\n');
	res.allow = allow;
	conn_answer(cn, &res);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
		      unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value, (int)strlen(value), p,
					   end);
}

/* Writes the headers, then the body in pieces; 1 when the answer is complete, -1 on error. */
static int conn_write(struct conn *cn)
{
	struct lws *wsi = cn->wsi;
	struct web_response *res = &cn->res;
	if (!cn->headers_sent) {
		unsigned char buf[LWS_PRE + 2048];
		unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
		const char *ctype =
			res->content_type ? res->content_type : "text/plain; charset=utf-8";
		if (lws_add_http_common_headers(wsi, (unsigned)res->status, ctype,
						(lws_filepos_t)res->body.len, &p, end) ||
		    add_header(wsi, "content-security-policy:", res->csp ? res->csp : default_csp,
			       &p, end) ||
		    add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
		    add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
		    add_header(wsi, "x-frame-options:", "DENY", &p, end) ||
		    add_header(wsi, "cross-origin-resource-policy:", "same-origin", &p, end) ||
		    add_header(wsi, "cache-control:",
			       res->cache_control ? res->cache_control : "no-store", &p, end) ||
		    (res->allow && add_header(wsi, "allow:", res->allow, &p, end)))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		cn->headers_sent = true;
		char code[24];
		snprintf(code, sizeof(code), "code=\"%d\"", res->status);
		metrics_count(METRIC_HTTP_REQUESTS, code);
		if (cn->head || !res->body.len)
			return 1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	size_t left = res->body.len - cn->out_off;
	size_t n = left > WRITE_CHUNK ? WRITE_CHUNK : left;
	unsigned char *buf = xmalloc(LWS_PRE + n);
	memcpy(buf + LWS_PRE, res->body.buf + cn->out_off, n);
	int w = lws_write(wsi, buf + LWS_PRE, n, n == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
	free(buf);
	if (w < (int)n)
		return -1;
	cn->out_off += n;
	if (cn->out_off == res->body.len)
		return 1;
	lws_callback_on_writable(wsi);
	return 0;
}

/* ---- answers crossing threads ---- */

struct answer {
	struct web_call *call;
	struct web_response res;
	void (*written)(void *ud, bool ok);
	void *written_ud;
};

static void run_answer(void *ctx, void *arg)
{
	struct web *w = ctx;
	struct answer *a = arg;
	struct web_call *c = a->call;
	(void)w;
	call_unlink(c);
	if (c->conn) {
		c->conn->call = NULL;
		conn_answer(c->conn, &a->res);
		c->conn->written = a->written;
		c->conn->written_ud = a->written_ud;
	} else if (a->written) {
		a->written(a->written_ud, false);
	}
	web_response_release(&a->res);
	call_free(c);
	free(a);
}

static void drop_answer(void *arg)
{
	struct answer *a = arg;
	web_response_release(&a->res);
	if (a->written)
		a->written(a->written_ud, false);
	/* The call is on the server's list until then: web_free() frees it. */
	free(a);
}

void web_answer_then(struct web_call *call, struct web_response *res,
		     void (*written)(void *ud, bool ok), void *ud)
{
	struct answer *a = xmalloc(sizeof(*a));
	a->call = call;
	a->res = *res;
	a->written = written;
	a->written_ud = ud;
	web_response_init(res);
	mailbox_post(call->w->answers, run_answer, drop_answer, a);
}

void web_answer(struct web_call *call, struct web_response *res)
{
	web_answer_then(call, res, NULL, NULL);
}

/* ---- requests ---- */

/* A path a route may see: printable ASCII, no "..", "//", "\" or '%'. */
static bool plain_path(const char *s, size_t n)
{
	if (!n || s[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '\\' || ch == '%')
			return false;
		if (i + 1 < n && ((ch == '.' && s[i + 1] == '.') || (ch == '/' && s[i + 1] == '/')))
			return false;
	}
	return true;
}

static const struct route *find_route(struct web *w, const char *path, bool *other_method_ok,
				      bool post)
{
	*other_method_ok = false;
	const struct route *found = NULL;
	for (size_t i = 0; i < w->n_routes; i++) {
		const struct route *r = &w->routes[i];
		size_t len = strlen(r->r.path);
		bool match = r->prefix ? strncmp(path, r->r.path, len) == 0 && path[len]
				       : strcmp(path, r->r.path) == 0;
		if (!match)
			continue;
		if (r->post == post)
			found = r;
		else
			*other_method_ok = true;
	}
	return found;
}

/* Copies a request header the route reads (NULL when absent or empty). */
static char *copy_header(struct lws *wsi, const char *name)
{
	char key[64];
	int kn = snprintf(key, sizeof(key), "%s:", name);
	if (kn <= 0 || (size_t)kn >= sizeof(key))
		return NULL;
	/* The common ones are tokens of their own in libwebsockets. */
	enum lws_token_indexes tok = (enum lws_token_indexes) - 1;
	if (strcmp(name, "content-type") == 0)
		tok = WSI_TOKEN_HTTP_CONTENT_TYPE;
	else if (strcmp(name, "user-agent") == 0)
		tok = WSI_TOKEN_HTTP_USER_AGENT;
	else if (strcmp(name, "accept") == 0)
		tok = WSI_TOKEN_HTTP_ACCEPT;
	else if (strcmp(name, "host") == 0)
		tok = WSI_TOKEN_HOST;
	int len = (int)tok >= 0 ? lws_hdr_total_length(wsi, tok)
				: lws_hdr_custom_length(wsi, key, kn);
	if (len <= 0)
		return NULL;
	char *v = xmalloc((size_t)len + 1);
	int got = (int)tok >= 0 ? lws_hdr_copy(wsi, v, len + 1, tok)
				: lws_hdr_custom_copy(wsi, v, len + 1, key, kn);
	if (got < 0) {
		free(v);
		return NULL;
	}
	v[got] = '\0';
	return v;
}

static void call_start(struct web *w, struct web_call *c)
{
	struct conn *cn = c->conn;
	c->req.received_ms = clock_real_ms();
	c->req.body = sb_str(&c->body);
	c->req.body_len = c->body.len;
	c->deadline = c->req.received_ms + WEB_ANSWER_TIMEOUT_MS;
	struct web_response res;
	web_response_init(&res);
	enum web_result r = c->route->r.fn(c->route->r.ud, c, &c->req, &res);
	if (r == WEB_ANSWERED) {
		cn->call = NULL;
		conn_answer(cn, &res);
		web_response_release(&res);
		call_free(c);
		return;
	}
	web_response_release(&res);
	c->next = w->calls;
	if (w->calls)
		w->calls->prev = c;
	w->calls = c;
}

/* LWS_CALLBACK_HTTP: the headers are in. Returns what the callback returns. */
static int on_request(struct web *w, struct conn *cn, struct lws *wsi)
{
	memset(cn, 0, sizeof(*cn));
	cn->wsi = wsi;
	char *uri = NULL;
	int uri_len = 0;
	int m = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
	bool post = m == LWSHUMETH_POST;
	cn->head = m == LWSHUMETH_HEAD;
	if (m < 0 || uri_len <= 0 || uri_len > WEB_MAX_PATH) {
		conn_answer_text(cn, m < 0 ? 400 : 414, NULL, "%s",
				 m < 0 ? "bad request" : "the path is too long");
		return 0;
	}
	size_t plen = strcspn(uri, "?");
	if ((size_t)uri_len < plen)
		plen = (size_t)uri_len;
	if (!plain_path(uri, plen)) {
		conn_answer_text(cn, 404, NULL, "not found");
		return 0;
	}
	/* A body where none is taken (GET, HEAD, any other method): refused unread. */
	if (!post && (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
		      lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)) {
		char cl[24] = "";
		if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
		    strcmp(cl, "0") != 0) {
			cn->close_after = true;
			if (m == LWSHUMETH_GET || m == LWSHUMETH_HEAD)
				conn_answer_text(cn, 413, NULL, "a %s takes no body",
						 m == LWSHUMETH_GET ? "GET" : "HEAD");
			else
				conn_answer_text(cn, 405, "GET, HEAD",
						 "only GET and HEAD are served here");
			return 0;
		}
	}
	char *path = xstrndup(uri, plen);
	bool other = false;
	const struct route *r = m == LWSHUMETH_GET || m == LWSHUMETH_HEAD || post
					? find_route(w, path, &other, post)
					: NULL;
	if (!r) {
		bool any_get = false, any_post = false;
		find_route(w, path, &any_get, true); /* a GET route for this path? */
		find_route(w, path, &any_post, false);
		free(path);
		if (any_post && !any_get)
			conn_answer_text(cn, 405, "POST", "this path takes POST only");
		else if (m != LWSHUMETH_GET && m != LWSHUMETH_HEAD)
			conn_answer_text(cn, 405, "GET, HEAD", "only GET and HEAD are served here");
		else
			conn_answer_text(cn, 404, NULL, "not found");
		return 0;
	}
	struct web_call *c = xcalloc(1, sizeof(*c));
	c->w = w;
	c->conn = cn;
	c->route = r;
	c->path = path;
	c->query = xstrdup((size_t)uri_len > plen ? uri + plen + 1 : "");
	/* libwebsockets hands the query over separately: read it whole from its fragments. */
	if (!*c->query && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0) {
		int qn = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
		if (qn <= WEB_MAX_PATH) {
			free(c->query);
			c->query = xmalloc((size_t)qn + 1);
			if (lws_hdr_copy(wsi, c->query, qn + 1, WSI_TOKEN_HTTP_URI_ARGS) < 0)
				c->query[0] = '\0';
		}
	}
	c->method = xstrdup(post ? "POST" : cn->head ? "HEAD" : "GET");
	c->req.method = c->method;
	c->req.path = c->path;
	c->req.query = c->query;
	const char *const *h = r->r.headers;
	for (size_t i = 0; h && h[i] && i < MAX_ROUTE_HEADERS; i++)
		c->headers[i] = copy_header(wsi, h[i]);
	cn->call = c;
	if (!post) {
		call_start(w, c);
		return 0;
	}
	char cl[24];
	size_t max = r->r.max_body ? r->r.max_body : WEB_MAX_BODY;
	if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		cn->call = NULL;
		call_free(c);
		cn->close_after = true;
		conn_answer_text(cn, 411, NULL, "a body needs a Content-Length");
		return 0;
	}
	char *endp;
	unsigned long long n = strtoull(cl, &endp, 10);
	if (*endp || cl[0] == '-' || n > max) {
		cn->call = NULL;
		call_free(c);
		cn->close_after = true;
		conn_answer_text(cn, 413, NULL, "the body is too large");
		return 0;
	}
	if (n == 0) {
		call_start(w, c);
		return 0;
	}
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, WEB_BODY_TIMEOUT_S);
	return 0;
}

/* ---- /healthz ---- */

static void add_platform(cJSON *list, const struct adapter *a, bool *ok)
{
	struct adapter_status st;
	memset(&st, 0, sizeof(st));
	a->ops->status(a->self, &st);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", a->ops->name);
	const char *state = st.state ? st.state : "unknown";
	cJSON_AddStringToObject(o, "state", state);
	/* A Matrix process standing by while another syncs the account is as it should be. */
	bool up = strcmp(state, "connected") == 0 || strcmp(state, "standby") == 0;
	if (st.n_shards) {
		cJSON *shards = cJSON_AddArrayToObject(o, "shards");
		for (size_t k = 0; k < st.n_shards; k++) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddNumberToObject(s, "id", st.shards[k].id);
			cJSON_AddStringToObject(s, "state", st.shards[k].state);
			up = up && strcmp(st.shards[k].state, "connected") == 0;
			cJSON_AddItemToArray(shards, s);
		}
	}
	free(st.shards);
	cJSON_AddBoolToObject(o, "ok", up);
	*ok = *ok && up;
	cJSON_AddItemToArray(list, o);
}

/* The body of /healthz (on the dispatcher thread): the store's state and the platforms'. */
static void health_render(struct web *w, bool store_ok, struct web_response *res)
{
	bool ok = store_ok;
	cJSON *o = cJSON_CreateObject();
	cJSON *status = cJSON_AddStringToObject(o, "status", "");
	cJSON_AddStringToObject(o, "store", store_ok ? "ok" : "failed");
	cJSON *list = cJSON_AddArrayToObject(o, "platforms");
	for (size_t i = 0; i < w->o.n_adapters; i++)
		add_platform(list, &w->o.adapters[i], &ok);
	cJSON_SetValuestring(status, ok ? "ok" : "unavailable");
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	res->status = ok ? 200 : 503;
	res->content_type = "application/json";
	sb_adds(&res->body, text);
	sb_addc(&res->body, '\n');
	cJSON_free(text);
}

/* The health check's answer, back on the server thread. */
struct health_result {
	struct web *w;
	int status;
	bool reuse; /* false: a "stopping" answer, not kept */
	struct strbuf body;
	const char *content_type;
};

static void run_health_result(void *ctx, void *arg)
{
	struct health_result *h = arg;
	struct web *w = ctx;
	w->health_running = false;
	w->health_status = h->status;
	sb_truncate(&w->health_body, 0);
	sb_add(&w->health_body, h->body.buf, h->body.len);
	w->health_at = h->reuse ? clock_real_ms() : 0;
	struct web_call *next;
	for (struct web_call *c = w->calls; c; c = next) {
		next = c->next;
		if (!c->health_wait)
			continue;
		call_unlink(c);
		if (c->conn) {
			struct web_response res;
			web_response_init(&res);
			res.status = h->status;
			res.content_type = h->content_type;
			sb_add(&res.body, h->body.buf, h->body.len);
			c->conn->call = NULL;
			conn_answer(c->conn, &res);
		}
		call_free(c);
	}
	sb_release(&h->body);
	free(h);
}

static void drop_health_result(void *arg)
{
	struct health_result *h = arg;
	sb_release(&h->body);
	free(h);
}

/* The one health check in flight: door_read() answers it on the dispatcher thread. */
struct health_check {
	struct web *w;
	bool answered;
};

/* On the dispatcher: the store answered (DOOR_READ_HEALTH); the body goes to the server. */
static void health_answer(void *ctx, const struct door_read_answer *a)
{
	struct health_check *hc = ctx;
	struct web_response res;
	web_response_init(&res);
	health_render(hc->w, a->rc == COHORT_OK, &res);
	struct health_result *h = xcalloc(1, sizeof(*h));
	*h = (struct health_result){hc->w, res.status, true, res.body, "application/json"};
	mailbox_post(hc->w->answers, run_health_result, drop_health_result, h);
	hc->answered = true;
}

/* Always, last: a check that never ran (shutdown) is answered "stopping". */
static void health_drop(void *ctx)
{
	struct health_check *hc = ctx;
	if (!hc->answered) {
		struct health_result *h = xcalloc(1, sizeof(*h));
		*h = (struct health_result){hc->w, 503, false, {0}, "text/plain; charset=utf-8"};
		sb_adds(&h->body, "cohort is stopping; try again later\n");
		mailbox_post(hc->w->answers, run_health_result, drop_health_result, h);
	}
	free(hc);
}

/* Server thread: a fresh answer is given again; otherwise the call waits for the one check in
 * flight (started when none is). */
static enum web_result health_route(void *ud, struct web_call *call, const struct web_request *req,
				    struct web_response *res)
{
	struct web *w = ud;
	(void)req;
	int64_t now = clock_real_ms();
	if (w->health_at && now >= w->health_at && now - w->health_at < WEB_HEALTH_REUSE_MS) {
		res->status = w->health_status;
		res->content_type = "application/json";
		sb_add(&res->body, w->health_body.buf, w->health_body.len);
		return WEB_ANSWERED;
	}
	call->deadline = call->req.received_ms + WEB_HEALTH_TIMEOUT_MS;
	call->timeout_json = true;
	call->health_wait = true;
	if (!w->health_running) {
		w->health_running = true;
		struct health_check *hc = xmalloc(sizeof(*hc));
		*hc = (struct health_check){w, false};
		struct read_sink sink = {health_answer, health_drop, hc};
		log_debug(TAG, "/healthz: reading the store");
		door_read(w->o.door, DOOR_READ_HEALTH, NULL, &sink);
	}
	return WEB_LATER;
}

/* ---- /metrics ---- */

static void render_platforms(struct web *w, struct strbuf *out)
{
	struct adapter_status *st = xcalloc(w->o.n_adapters ? w->o.n_adapters : 1, sizeof(*st));
	for (size_t i = 0; i < w->o.n_adapters; i++)
		w->o.adapters[i].ops->status(w->o.adapters[i].self, &st[i]);
	sb_adds(out, "# HELP cohort_platform_connected Whether a platform connection (each Discord "
		     "shard) is connected.\n# TYPE cohort_platform_connected gauge\n");
	for (size_t i = 0; i < w->o.n_adapters; i++) {
		const char *name = w->o.adapters[i].ops->name;
		if (!st[i].n_shards)
			sb_addf(out, "cohort_platform_connected{platform=\"%s\",shard=\"0\"} %d\n",
				name, st[i].state && !strcmp(st[i].state, "connected"));
		for (size_t k = 0; k < st[i].n_shards; k++)
			sb_addf(out, "cohort_platform_connected{platform=\"%s\",shard=\"%d\"} %d\n",
				name, st[i].shards[k].id,
				!strcmp(st[i].shards[k].state, "connected"));
	}
	sb_adds(out, "# HELP cohort_gateway_reconnects_total Reconnects of a platform connection "
		     "(each Discord shard's gateway, Matrix's sync).\n"
		     "# TYPE cohort_gateway_reconnects_total counter\n");
	for (size_t i = 0; i < w->o.n_adapters; i++) {
		const char *name = w->o.adapters[i].ops->name;
		if (!st[i].n_shards)
			sb_addf(out,
				"cohort_gateway_reconnects_total{platform=\"%s\",shard=\"0\"} "
				"%lu\n",
				name, st[i].reconnects);
		for (size_t k = 0; k < st[i].n_shards; k++)
			sb_addf(out,
				"cohort_gateway_reconnects_total{platform=\"%s\",shard=\"%d\"} "
				"%lu\n",
				name, st[i].shards[k].id, st[i].shards[k].reconnects);
	}
	sb_adds(out, "# HELP cohort_rest_rate_limited_total REST requests a platform answered with "
		     "429.\n# TYPE cohort_rest_rate_limited_total counter\n");
	for (size_t i = 0; i < w->o.n_adapters; i++)
		sb_addf(out, "cohort_rest_rate_limited_total{platform=\"%s\"} %lu\n",
			w->o.adapters[i].ops->name, st[i].rate_limited);
	sb_adds(out, "# HELP cohort_rest_requests_total REST requests a platform answered.\n"
		     "# TYPE cohort_rest_requests_total counter\n");
	for (size_t i = 0; i < w->o.n_adapters; i++)
		sb_addf(out, "cohort_rest_requests_total{platform=\"%s\"} %lu\n",
			w->o.adapters[i].ops->name, st[i].requests);
	for (size_t i = 0; i < w->o.n_adapters; i++)
		free(st[i].shards);
	free(st);
}

static enum web_result metrics_route(void *ud, struct web_call *call, const struct web_request *req,
				     struct web_response *res)
{
	(void)call;
	(void)req;
	res->content_type = "text/plain; version=0.0.4; charset=utf-8";
	metrics_render(&res->body);
	render_platforms(ud, &res->body);
	return WEB_ANSWERED;
}

/* ---- connections per client ---- */

static bool peer_of(int fd, struct sockaddr_in *sa)
{
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &n) != 0 || ss.ss_family != AF_INET)
		return false;
	memcpy(sa, &ss, sizeof(*sa));
	return true;
}

/* Whether the slot's socket is still the connection it recorded (closed sockets are not
 * reported to us: their number is free or belongs to another peer by now). */
static bool peer_alive(const struct peer *p)
{
	struct sockaddr_in now;
	return peer_of(p->fd, &now) && now.sin_addr.s_addr == p->addr.sin_addr.s_addr &&
	       now.sin_port == p->addr.sin_port;
}

/* LWS_CALLBACK_FILTER_NETWORK_CONNECTION: true to hang up on a new connection because its
 * client already holds WEB_MAX_PER_CLIENT; otherwise it is recorded. */
static bool too_many_from(struct web *w, int fd)
{
	struct sockaddr_in sa;
	if (!peer_of(fd, &sa))
		return false; /* not IPv4 (the server listens on IPv4 only) */
	size_t same = 0, free_slot = WEB_MAX_CONNECTIONS;
	for (size_t i = 0; i < WEB_MAX_CONNECTIONS; i++) {
		struct peer *p = &w->peers[i];
		if (p->fd >= 0 && (p->fd == fd || !peer_alive(p)))
			p->fd = -1; /* closed since */
		if (p->fd < 0) {
			if (free_slot == WEB_MAX_CONNECTIONS)
				free_slot = i;
			continue;
		}
		if (p->addr.sin_addr.s_addr == sa.sin_addr.s_addr)
			same++;
	}
	if (same >= WEB_MAX_PER_CLIENT) {
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
		log_debug(TAG, "%s already has %zu connections: refused another", ip, same);
		return true;
	}
	if (free_slot < WEB_MAX_CONNECTIONS)
		w->peers[free_slot] = (struct peer){fd, sa};
	return false;
}

/* ---- the loop ---- */

static void tick(lws_sorted_usec_list_t *sul)
{
	struct web *w = lws_container_of(sul, struct web, sul_tick);
	int64_t now = clock_real_ms();
	for (struct web_call *c = w->calls; c; c = c->next) {
		if (!c->conn || now < c->deadline)
			continue;
		log_warn(TAG, "%s %s: no answer within %lld ms; answered 503", c->req.method,
			 c->req.path, (long long)(c->deadline - c->req.received_ms));
		struct conn *cn = c->conn;
		c->conn = NULL; /* the late answer is dropped */
		cn->call = NULL;
		if (c->timeout_json) {
			struct web_response res;
			web_response_init(&res);
			res.status = 503;
			res.content_type = "application/json";
			sb_adds(&res.body,
				"{\"status\":\"unavailable\",\"store\":\"no answer\"}\n");
			conn_answer(cn, &res);
		} else {
			conn_answer_text(cn, 503, NULL,
					 "cohort did not answer in time; try again later");
		}
	}
	lws_sul_schedule(w->ctx, 0, &w->sul_tick, tick, 100 * LWS_US_PER_MS);
}

static void run_mail(struct web *w)
{
	pthread_mutex_lock(&w->lock);
	bool stop = w->stop_asked;
	pthread_mutex_unlock(&w->lock);
	mailbox_run(w->answers, w);
	if (stop)
		w->stopping = true;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct web *w = ctx ? lws_context_user(ctx) : NULL;
	struct conn *cn = user;
	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		return w && too_many_from(w, (int)(lws_intptr_t)in) ? -1 : 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (w)
			run_mail(w);
		return 0;
	case LWS_CALLBACK_HTTP:
		if (!cn)
			return -1;
		return on_request(w, cn, wsi);
	case LWS_CALLBACK_HTTP_BODY:
		if (!cn || !cn->call)
			return 0;
		if (cn->call->body.len + len >
		    (cn->call->route->r.max_body ? cn->call->route->r.max_body : WEB_MAX_BODY))
			return -1; /* more than its Content-Length said */
		sb_add(&cn->call->body, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!cn || !cn->call)
			return 0;
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		call_start(w, cn->call);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		if (!cn || !cn->answering)
			return 0;
		int r = conn_write(cn);
		if (r < 0)
			return -1;
		if (r == 1) {
			cn->answering = false;
			web_response_release(&cn->res);
			conn_written(cn, true);
			if (w->stopping || cn->close_after || lws_http_transaction_completed(wsi))
				return -1;
		}
		return 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (!cn)
			return 0;
		if (cn->call) {
			if (cn->call->prev || cn->call->next || (w && w->calls == cn->call))
				cn->call->conn = NULL; /* a route holds it: its answer frees it */
			else
				call_free(cn->call); /* the body never completed */
			cn->call = NULL;
		}
		if (cn->answering)
			web_response_release(&cn->res);
		cn->answering = false;
		conn_written(cn, false);
		return 0;
	default: break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"http", callback, sizeof(struct conn), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* What any client can cause (too many headers) is not the server's error. */
	if (strstr(line, "header data space") || strstr(line, "Header pool"))
		log_debug("lws", "%.*s", (int)n, line);
	else if (level & LLL_ERR)
		log_error("lws", "%.*s", (int)n, line);
	else
		log_warn("lws", "%.*s", (int)n, line);
}

static void wake_loop(void *ud)
{
	struct web *w = ud;
	pthread_mutex_lock(&w->lock);
	if (w->ctx)
		lws_cancel_service(w->ctx);
	pthread_mutex_unlock(&w->lock);
}

struct web *web_new(const struct web_opts *opts)
{
	struct web *w = xcalloc(1, sizeof(*w));
	w->o = *opts;
	for (size_t i = 0; i < WEB_MAX_CONNECTIONS; i++)
		w->peers[i].fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	w->answers = mailbox_new(wake_loop, w);
	struct web_route health = {"GET", "/healthz", health_route, w, 0, NULL};
	web_add_route(w, &health);
	struct web_route metrics = {"GET", "/metrics", metrics_route, w, 0, NULL};
	web_add_route(w, &metrics);
	return w;
}

int web_add_route(struct web *w, const struct web_route *r)
{
	bool post = strcmp(r->method, "POST") == 0;
	if ((!post && strcmp(r->method, "GET") != 0) || w->n_routes == MAX_ROUTES || !r->path ||
	    r->path[0] != '/')
		return COHORT_ERR_USAGE;
	for (size_t i = 0; i < w->n_routes; i++)
		if (w->routes[i].post == post && strcmp(w->routes[i].r.path, r->path) == 0)
			return COHORT_ERR_USAGE;
	struct route *dst = &w->routes[w->n_routes++];
	dst->r = *r;
	dst->post = post;
	size_t len = strlen(r->path);
	dst->prefix = len > 1 && r->path[len - 1] == '/';
	return COHORT_OK;
}

static void *serve(void *arg)
{
	struct web *w = arg;
	run_mail(w);
	while (!w->stopping)
		if (lws_service(w->ctx, 0) < 0)
			break;
	return NULL;
}

int web_start(struct web *w)
{
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = w->o.port;
	info.iface = w->o.host;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.user = w;
	info.max_http_header_data = WEB_MAX_HEADER_BYTES;
	/* A header slot for nearly every connection: slow clients cannot take them all
	 * (each client holds at most WEB_MAX_PER_CLIENT connections). */
	info.max_http_header_pool = WEB_MAX_CONNECTIONS - 16;
	info.timeout_secs = WEB_BODY_TIMEOUT_S; /* lws renews a body's timeout with this */
	info.timeout_secs_ah_idle = WEB_HEADER_TIMEOUT_S; /* else 10 s for headers that stop coming */
	info.keepalive_timeout = 5;
	info.fd_limit_per_thread = WEB_MAX_CONNECTIONS;
	info.server_string = "cohort";
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx) {
		log_error(TAG,
			  "cannot listen on %s:%d (http.listen): the address is in use or "
			  "not on this machine",
			  w->o.host, w->o.port);
		return COHORT_ERR_IO;
	}
	pthread_mutex_lock(&w->lock);
	w->ctx = ctx;
	pthread_mutex_unlock(&w->lock);
	w->vhost = lws_get_vhost_by_name(ctx, "default");
	w->port = w->vhost ? lws_get_vhost_listen_port(w->vhost) : w->o.port;
	lws_sul_schedule(ctx, 0, &w->sul_tick, tick, 100 * LWS_US_PER_MS);
	if (thread_start(&w->thread, serve, w)) {
		log_error(TAG, "cannot start the server thread");
		lws_sul_cancel(&w->sul_tick);
		pthread_mutex_lock(&w->lock);
		w->ctx = NULL;
		pthread_mutex_unlock(&w->lock);
		lws_context_destroy(ctx);
		return COHORT_ERR_IO;
	}
	w->running = true;
	log_info(TAG, "listening on http://%s:%d", w->o.host, w->port);
	return COHORT_OK;
}

int web_port(const struct web *w)
{
	return w->port;
}

void web_stop(struct web *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop_asked = true;
	struct lws_context *ctx = w->ctx;
	pthread_mutex_unlock(&w->lock);
	if (ctx)
		lws_cancel_service(ctx);
}

int web_join(struct web *w)
{
	if (!w->running)
		return COHORT_OK;
	pthread_join(w->thread, NULL);
	w->running = false;
	return COHORT_OK;
}

void web_free(struct web *w)
{
	if (!w)
		return;
	if (w->running) {
		web_stop(w);
		web_join(w);
	}
	struct lws_context *ctx = w->ctx;
	if (ctx) {
		lws_sul_cancel(&w->sul_tick);
		/* Answers that came in after the loop ended: unlink their calls. */
		mailbox_run(w->answers, w);
		pthread_mutex_lock(&w->lock);
		w->ctx = NULL;
		pthread_mutex_unlock(&w->lock);
		lws_context_destroy(ctx); /* closes the connections (CLOSED_HTTP orphans calls) */
	}
	mailbox_free(w->answers);
	while (w->calls) {
		struct web_call *c = w->calls;
		call_unlink(c);
		call_free(c);
	}
	sb_release(&w->health_body);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
