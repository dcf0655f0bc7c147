/*
 * cohort's HTTP server (http.listen): libwebsockets' server role on its own
 * thread, like every other adapter. Routes plug in before web_start(); each
 * request reaches one route's function on the server thread, which either
 * answers at once or hands the request on and answers later, from any thread,
 * with web_answer(). Work that needs the bot or the store goes to the
 * dispatcher thread through the door (bot/adapter.h: door_read()), as every
 * adapter's does; the server never runs bot code on its own thread.
 *
 * What the server does before any route sees a request (DESIGN §11):
 * - only GET and HEAD, except on a route registered for POST (405 with Allow);
 * - request headers up to WEB_MAX_HEADER_BYTES in all (else the connection is
 *   refused), a body only on POST routes, up to the route's max_body (413),
 *   with a Content-Length (411);
 * - a path that is not plain (no "..", "//", "\", "%", control bytes, at most
 *   WEB_MAX_PATH bytes) is a 404: there are no files behind the server
 *   (libwebsockets has already decoded %XX and collapsed dot segments by then);
 * - slow clients are dropped: headers within WEB_HEADER_TIMEOUT_S, a body
 *   within WEB_BODY_TIMEOUT_S, idle keep-alive after a few seconds; one IP
 *   address holds at most WEB_MAX_PER_CLIENT connections (more are hung up
 *   on), so slow clients cannot take every header slot;
 * - a route that has not answered within its time (WEB_ANSWER_TIMEOUT_MS)
 *   gets a 503 sent for it, and its late answer is dropped.
 * Every response carries a strict Content-Security-Policy (no script, no
 * outside resource), X-Content-Type-Options: nosniff, Referrer-Policy:
 * no-referrer (a capability URL never leaks in a Referer), X-Frame-Options:
 * DENY and Cache-Control: no-store unless the route says otherwise; the
 * server never sets a cookie and never reads one.
 *
 * Built-in routes: GET /healthz (the store and every platform of web_opts) and
 * GET /metrics (lib/metrics.h's series and the platforms' counters).
 *
 * Threading: web_new(), web_add_route(), web_start(), web_stop(), web_join()
 * and web_free() from the CLI's thread; route functions run on the server
 * thread; web_answer() from any thread.
 * Lifecycle (as bot/adapter.h): start; stop and join; dispatch_drain() so that
 * every bot job has answered; then free (answers after that are not allowed).
 */
#ifndef COHORT_WEB_H
#define COHORT_WEB_H

#include "lib/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct adapter;
struct door;
struct web;
struct web_call;

#define WEB_MAX_HEADER_BYTES 4096 /* all request headers together */
#define WEB_MAX_PATH 512          /* the path and query */
#define WEB_MAX_BODY (64 * 1024)  /* a POST route's default body cap */
#define WEB_HEADER_TIMEOUT_S 2    /* a client has this long to send its headers */
#define WEB_BODY_TIMEOUT_S 5      /* and this long for its body */
#define WEB_ANSWER_TIMEOUT_MS 5000
#define WEB_MAX_CONNECTIONS 256 /* open at once; a header slot for nearly each */
#define WEB_MAX_PER_CLIENT 32   /* open at once from one IP address; more are hung up on */

/* A request as a route sees it; everything borrowed until the call is answered. */
struct web_request {
	const char *method; /* "GET", "HEAD" or "POST" */
	const char *path;   /* as sent, without the query: "/g/abc"; plain (see above) */
	const char *query;  /* after '?', as sent (not decoded); "" when none */
	const char *body;   /* POST: the whole body, NUL-terminated; GET/HEAD: "" */
	size_t body_len;
	int64_t received_ms; /* when the request was complete (Unix ms) */
};

/*
 * A response, filled by a route. web_response_init() gives 200, no body,
 * default headers; web_response_release() frees what it holds.
 */
struct web_response {
	int status;
	const char *content_type; /* static; NULL: "text/plain; charset=utf-8" */
	struct strbuf body;       /* HEAD requests get the headers only */
	/*
	 * Overrides of the defaults, static strings or NULL: the
	 * Content-Security-Policy (the default allows nothing but inline style
	 * from the same document: "default-src 'none'; style-src 'unsafe-inline';
	 * img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors
	 * 'none'"), Cache-Control ("no-store"), and Allow (405 answers).
	 */
	const char *csp, *cache_control, *allow;
};

void web_response_init(struct web_response *res);
void web_response_release(struct web_response *res);
/* Sets status and a plain-text body (a line, newline added). */
void web_response_text(struct web_response *res, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* What a route function returns. */
enum web_result {
	WEB_ANSWERED, /* res is filled: the server sends it */
	WEB_LATER,    /* the route keeps call and calls web_answer() exactly once */
};

/*
 * A route's function, on the server thread. req is borrowed until the call is
 * answered; res (initialised) is what WEB_ANSWERED sends. Never blocks.
 */
typedef enum web_result web_route_fn(void *ud, struct web_call *call, const struct web_request *req,
				     struct web_response *res);

struct web_route {
	const char *method; /* "GET" (HEAD is answered by it too, without the body) or "POST" */
	/* An exact path ("/healthz"), or a prefix when it ends in '/' ("/g/" takes "/g/x"). */
	const char *path;
	web_route_fn *fn;
	void *ud;
	size_t max_body; /* POST: the largest body taken (413 above); 0: WEB_MAX_BODY */
	/*
	 * The request headers the route reads with web_header(), lowercase names
	 * without the colon, NULL-terminated (borrowed for the server's life), or
	 * NULL. The server keeps no other header.
	 */
	const char *const *headers;
};

struct web_opts {
	const char *host; /* an IPv4 address to listen on ("127.0.0.1") */
	int port;
	/* The bot's door (borrowed): /healthz asks it whether the store answers. */
	struct door *door;
	/* The platforms /healthz reports on (borrowed; may change before web_start()). */
	const struct adapter *adapters;
	size_t n_adapters;
};

/* A server, not yet listening. opts and what it points to are borrowed. */
struct web *web_new(const struct web_opts *opts);
/*
 * Adds a route (r copied; what it points to borrowed). Before web_start().
 * Returns COHORT_OK, or COHORT_ERR_USAGE for a path taken already or a method
 * other than GET or POST.
 */
int web_add_route(struct web *w, const struct web_route *r);
/*
 * Listens and starts the server thread. Returns COHORT_OK or COHORT_ERR_IO
 * (the address cannot be bound: logged with the address and the reason).
 */
int web_start(struct web *w);
/* The port listened on (after web_start()). */
int web_port(const struct web *w);
/* Stops taking requests and closes connections; returns at once. */
void web_stop(struct web *w);
/* Waits for the server thread. Returns COHORT_OK. */
int web_join(struct web *w);
void web_free(struct web *w);

/* The value of a header the route asked for (web_route.headers), or NULL when absent. */
const char *web_header(const struct web_call *call, const char *name);

/*
 * Answers call: res's contents are taken over (res is left initialised and
 * empty). Any thread, at most once per WEB_LATER. When the client has gone or
 * the server answered 503 already (timeout), the answer is dropped. A call
 * that is never answered (its work was dropped at shutdown) gets the 503 of
 * the timeout while the server runs, and is freed by web_free().
 */
void web_answer(struct web_call *call, struct web_response *res);

/*
 * As web_answer(), then written(ud, ok) exactly once, from the server thread
 * (or web_free()'s): ok once the whole response is written to the connection,
 * false when it never will be (the client went, the call was answered 503
 * already, the server stopped). For work that must follow the response (an
 * interaction's edit after its deferral).
 */
void web_answer_then(struct web_call *call, struct web_response *res,
		     void (*written)(void *ud, bool ok), void *ud);

#endif
