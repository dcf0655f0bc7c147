#ifndef NDEBUG
#define NDEBUG /* lws_config.h defines _DEBUG otherwise */
#endif
#include "gateway.h"

#include "adapters/http.h"
#include "adapters/json.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG (g->tag) /* "gateway", or "gateway#2" for shard 2 */

/* Close codes: what each means for the session (DESIGN §7). */
static const struct {
	int code;
	enum gw_after after;
	const char *why;
} close_policy[] = {
	{1000, GW_IDENTIFY, "the gateway ended the session"},
	{1001, GW_IDENTIFY, "the gateway ended the session"},
	{4000, GW_RESUME, "unknown error"},
	{4001, GW_RESUME, "unknown opcode sent"},
	{4002, GW_RESUME, "a payload could not be decoded"},
	{4003, GW_IDENTIFY, "sent before identifying"},
	{4004, GW_FATAL,
	 "the bot token was rejected (close 4004): copy a fresh token from the Developer "
	 "Portal (Bot > Reset Token) into discord.token or COHORT_DISCORD_TOKEN"},
	{4005, GW_RESUME, "already authenticated"},
	{4007, GW_IDENTIFY, "invalid sequence number on resume"},
	{4008, GW_RESUME, "sending too fast"},
	{4009, GW_IDENTIFY, "the session timed out"},
	{4010, GW_FATAL,
	 "invalid shard (close 4010): Discord refused the shard [id, count] cohort sent: "
	 "check discord.shards (ids below discord.shard_count) and discord.shard_count "
	 "(0: the count Discord recommends)"},
	{4011, GW_FATAL,
	 "sharding required (close 4011): the bot is in too many servers for one connection: "
	 "set discord.shard_count (or leave it 0 for the count GET /gateway/bot recommends)"},
	{4012, GW_FATAL, "invalid API version (close 4012): use discord.api_url .../api/v10"},
	{4013, GW_FATAL, "invalid intents (close 4013): this is a cohort bug; please report it"},
	{4014, GW_FATAL,
	 "disallowed intents (close 4014): discord.prefix needs the Message Content intent; "
	 "enable it in the Developer Portal (Bot > Privileged Gateway Intents) or set "
	 "discord.prefix = \"\""},
};

/* Reconnect delays by consecutive failure (ms), before jitter of up to +50%. */
static const int64_t backoff_ms[] = {1000, 2000, 5000, 10000, 20000, 40000, 60000};

#define IDENTIFY_SPACING_MS 5500
#define TICK_US (100 * LWS_US_PER_MS)

/* IDENTIFY pacing shared by the shards of a process (see gw_starts_new()). */
struct gw_starts {
	pthread_mutex_t lock;
	int max_concurrency; /* >= 1: shard i is in bucket i % max_concurrency */
	long remaining;      /* session starts left, -1: unknown */
	int64_t reset_at;    /* when remaining is renewed */
	int64_t *next;       /* per bucket: the earliest next IDENTIFY */
	struct gw_identify_gate gate; /* ask NULL: no pacing across processes */
};

enum gw_state { GW_IDLE, GW_FETCHING, GW_WAITING, GW_CONNECTING, GW_OPEN };

struct frame {
	char *text;
	size_t len;
	bool heartbeat;
	struct frame *next;
};

struct gw {
	struct gw_opts o;
	char tag[24];
	struct gw_starts *starts; /* o.starts, or own_starts */
	struct gw_starts *own_starts;
	struct lws_context *ctx; /* the loop's, shared with the other shards of gw_run_all() */
	struct lws *wsi;
	enum gw_state state;
	bool stopping;         /* loop thread */
	int64_t stop_deadline; /* loop thread: when a hanging close handshake is given up */
	int fatal;     /* COHORT_ERR_* once a fatal close came */

	/* Cross-thread. */
	pthread_mutex_t lock;
	struct mailbox *tasks; /* calls onto the loop thread (gw_call) */
	bool stop_asked;
	const char *status; /* for gw_status() */
	int64_t status_since;
	unsigned long reconnects;

	/* The session. */
	char *session_id, *resume_url, *gateway_url;
	int64_t seq;
	bool want_resume; /* the next HELLO answers with RESUME */

	/* Heartbeats. */
	int64_t interval_ms;
	bool acked;
	int64_t last_beat;
	lws_sorted_usec_list_t sul_beat, sul_retry, sul_tick, sul_write, sul_ident;
	unsigned long hellos;  /* connections that said HELLO: a late gate answer names its own */
	bool awaiting_gate;    /* an IDENTIFY waits for the gate's slot */

	/* Reconnects. */
	int failures;

	/* Outgoing frames, oldest first, and the send-rate window. */
	struct frame *out, *out_tail;
	int64_t sent_at[GW_SEND_PER_MINUTE];
	size_t sent_idx;
	int close_code; /* > 0: close with this code at the next WRITEABLE */

	/* Incoming message being assembled. */
	struct strbuf rx;
	bool rx_skip;
	int peer_close; /* the code the gateway closed with, 0 when none */
};

enum gw_after gw_close_policy(int code, const char **why)
{
	for (size_t i = 0; i < ARRAY_SIZE(close_policy); i++) {
		if (close_policy[i].code == code) {
			*why = close_policy[i].why;
			return close_policy[i].after;
		}
	}
	*why = code ? "the connection closed" : "the connection dropped";
	return GW_RESUME;
}

static int64_t now_ms(void)
{
	return clock_real_ms();
}

static void set_status(struct gw *g, const char *status, bool reconnect)
{
	pthread_mutex_lock(&g->lock);
	if (g->status != status)
		g->status_since = now_ms();
	g->status = status;
	if (reconnect)
		g->reconnects++;
	pthread_mutex_unlock(&g->lock);
}

void gw_status(struct gw *g, const char **status, int64_t *since, unsigned long *reconnects)
{
	pthread_mutex_lock(&g->lock);
	*status = g->status;
	*since = g->status_since;
	*reconnects = g->reconnects;
	pthread_mutex_unlock(&g->lock);
}

struct gw_starts *gw_starts_new(void)
{
	struct gw_starts *st = xcalloc(1, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	st->max_concurrency = 1;
	st->remaining = -1;
	st->next = xcalloc(1, sizeof(int64_t));
	return st;
}

void gw_starts_free(struct gw_starts *st)
{
	if (!st)
		return;
	pthread_mutex_destroy(&st->lock);
	free(st->next);
	free(st);
}

void gw_starts_update(struct gw_starts *st, int max_concurrency, long remaining,
		      int64_t reset_after_ms)
{
	pthread_mutex_lock(&st->lock);
	if (max_concurrency >= 1 && max_concurrency != st->max_concurrency) {
		free(st->next);
		st->next = xcalloc((size_t)max_concurrency, sizeof(int64_t));
		st->max_concurrency = max_concurrency;
	}
	if (remaining >= 0) {
		st->remaining = remaining;
		st->reset_at = clock_real_ms() + reset_after_ms;
	}
	pthread_mutex_unlock(&st->lock);
}

/* Takes the next IDENTIFY slot of shard's bucket: when it may identify (Unix ms). */
static int64_t starts_reserve(struct gw_starts *st, int shard, bool *limited)
{
	pthread_mutex_lock(&st->lock);
	int64_t *next = &st->next[(shard < 0 ? 0 : shard) % st->max_concurrency];
	int64_t at = clock_real_ms();
	if (*next > at)
		at = *next;
	*limited = st->remaining == 0 && st->reset_at > at;
	if (*limited)
		at = st->reset_at;
	*next = at + IDENTIFY_SPACING_MS;
	pthread_mutex_unlock(&st->lock);
	return at;
}

void gw_starts_set_gate(struct gw_starts *st, const struct gw_identify_gate *gate)
{
	pthread_mutex_lock(&st->lock);
	st->gate = *gate;
	pthread_mutex_unlock(&st->lock);
}

static void starts_used(struct gw_starts *st)
{
	pthread_mutex_lock(&st->lock);
	if (st->remaining > 0)
		st->remaining--;
	pthread_mutex_unlock(&st->lock);
}

static double random01(void)
{
	return random_unit(); /* seeded per process: shards and processes do not back off in step */
}

static void schedule(struct gw *g, lws_sorted_usec_list_t *sul, sul_cb_t cb, int64_t ms)
{
	if (!g->ctx)
		return; /* gw_feed() without a loop */
	lws_sul_schedule(g->ctx, 0, sul, cb, (lws_usec_t)(ms < 0 ? 0 : ms) * LWS_US_PER_MS);
}

/* Queues a payload for the WRITEABLE callback; refuses one over the size limit. */
static void send_json(struct gw *g, cJSON *payload, bool heartbeat)
{
	char *text = cJSON_PrintUnformatted(payload);
	cJSON_Delete(payload);
	size_t len = strlen(text);
	if (len > GW_MAX_SEND) {
		log_error(TAG, "not sending a %zu-byte payload: the gateway takes at most %d", len,
			  GW_MAX_SEND);
		cJSON_free(text);
		return;
	}
	struct frame *f = xcalloc(1, sizeof(*f));
	f->text = xstrdup(text);
	f->len = len;
	f->heartbeat = heartbeat;
	cJSON_free(text);
	if (heartbeat) { /* a heartbeat goes first: it is what keeps us alive */
		f->next = g->out;
		g->out = f;
		if (!g->out_tail)
			g->out_tail = f;
	} else {
		if (g->out_tail)
			g->out_tail->next = f;
		else
			g->out = f;
		g->out_tail = f;
	}
	if (g->wsi)
		lws_callback_on_writable(g->wsi);
}

static void drop_frames(struct gw *g)
{
	while (g->out) {
		struct frame *f = g->out;
		g->out = f->next;
		free(f->text);
		free(f);
	}
	g->out_tail = NULL;
}

static void notify_session(struct gw *g)
{
	if (!g->o.on_session)
		return;
	struct gw_session s = {g->session_id, g->resume_url, g->seq};
	g->o.on_session(g->o.ud, &s);
}

static void forget_session(struct gw *g)
{
	free(g->session_id);
	free(g->resume_url);
	g->session_id = g->resume_url = NULL;
	g->seq = 0;
	notify_session(g);
}

/* Asks the open connection to close with code at its next WRITEABLE (resumable unless 1000). */
static void close_with(struct gw *g, int code)
{
	if (!g->wsi)
		return;
	g->close_code = code;
	lws_callback_on_writable(g->wsi);
}

static void heartbeat(lws_sorted_usec_list_t *sul)
{
	struct gw *g = lws_container_of(sul, struct gw, sul_beat);
	if (g->state != GW_OPEN)
		return;
	if (!g->acked) {
		log_warn(TAG, "no heartbeat ACK in %lld ms: the connection is dead; resuming",
			 (long long)(now_ms() - g->last_beat));
		close_with(g, 4000);
		return;
	}
	cJSON *p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "op", 1);
	if (g->seq)
		cJSON_AddNumberToObject(p, "d", (double)g->seq);
	else
		cJSON_AddNullToObject(p, "d");
	g->acked = false;
	g->last_beat = now_ms();
	send_json(g, p, true);
	notify_session(g); /* the sequence, for a resume after a restart */
	schedule(g, &g->sul_beat, heartbeat, g->interval_ms);
}

static void identify(struct gw *g)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "op", 2);
	cJSON *d = cJSON_AddObjectToObject(p, "d");
	cJSON_AddStringToObject(d, "token", g->o.token);
	cJSON_AddNumberToObject(d, "intents", g->o.intents);
	cJSON *props = cJSON_AddObjectToObject(d, "properties");
	cJSON_AddStringToObject(props, "os", "linux");
	cJSON_AddStringToObject(props, "browser", "cohort");
	cJSON_AddStringToObject(props, "device", "cohort");
	if (g->o.shard_count > 0) {
		cJSON *shard = cJSON_AddArrayToObject(d, "shard");
		cJSON_AddItemToArray(shard, cJSON_CreateNumber(g->o.shard_id));
		cJSON_AddItemToArray(shard, cJSON_CreateNumber(g->o.shard_count));
	}
	starts_used(g->starts);
	log_info(TAG, "identifying (intents %d)", g->o.intents);
	send_json(g, p, false);
}

static void resume(struct gw *g)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "op", 6);
	cJSON *d = cJSON_AddObjectToObject(p, "d");
	cJSON_AddStringToObject(d, "token", g->o.token);
	cJSON_AddStringToObject(d, "session_id", g->session_id);
	cJSON_AddNumberToObject(d, "seq", (double)g->seq);
	log_info(TAG, "resuming session at sequence %lld", (long long)g->seq);
	send_json(g, p, false);
}

static void connect_now(lws_sorted_usec_list_t *sul);
static void fetch_gateway(struct gw *g);

/* Schedules the next connection attempt: resume or a new session, after a backoff. */
static void reconnect(struct gw *g, bool resume_it, bool quick)
{
	if (g->stopping || g->fatal)
		return;
	g->want_resume = resume_it && g->session_id;
	if (!g->want_resume && g->session_id)
		forget_session(g);
	int64_t wait;
	if (quick) {
		wait = 1000 + (int64_t)(4000 * random01()); /* op 9: Discord asks for 1-5 s */
	} else {
		size_t i = (size_t)g->failures < ARRAY_SIZE(backoff_ms)
				   ? (size_t)g->failures
				   : ARRAY_SIZE(backoff_ms) - 1;
		wait = backoff_ms[i] + (int64_t)((double)backoff_ms[i] * 0.5 * random01());
		if (g->failures == 0)
			wait = (int64_t)(500 * random01()); /* the first retry is almost at once */
	}
	g->failures++;
	if (!g->want_resume && g->gateway_url) {
		/* A new session: one IDENTIFY per bucket per 5 s, within the start limit.
		 * (Without a gateway URL the answer of GET /gateway/bot takes the slot.) */
		bool limited;
		int64_t earliest = starts_reserve(g->starts, g->o.shard_id, &limited);
		if (now_ms() + wait < earliest)
			wait = earliest - now_ms();
		if (limited)
			log_warn(TAG, "session start limit reached; identifying again in %lld s",
				 (long long)(wait / 1000));
	}
	g->state = GW_WAITING;
	log_info(TAG, "%s in %lld ms", g->want_resume ? "resuming" : "reconnecting",
		 (long long)wait);
	schedule(g, &g->sul_retry, connect_now, wait);
}

/* Splits "wss://host:port/path" into its parts; false when it is not a ws(s) URL. */
static bool split_url(const char *url, bool *tls, char *host, size_t hcap, int *port, char *path,
		      size_t pcap)
{
	const char *p;
	if (strncmp(url, "wss://", 6) == 0)
		*tls = true, p = url + 6, *port = 443;
	else if (strncmp(url, "ws://", 5) == 0)
		*tls = false, p = url + 5, *port = 80;
	else
		return false;
	size_t hl = strcspn(p, ":/?");
	if (hl == 0 || hl >= hcap)
		return false;
	memcpy(host, p, hl);
	host[hl] = '\0';
	p += hl;
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (v <= 0 || v > 65535)
			return false;
		*port = (int)v;
		p = end;
	}
	/* The gateway's path ("/" when none), then our query (replacing any it had). */
	size_t pl = strcspn(p, "?");
	int n = snprintf(path, pcap, "%.*s?v=10&encoding=json", (int)(pl ? pl : 1), pl ? p : "/");
	return n > 0 && (size_t)n < pcap;
}

static void connect_now(lws_sorted_usec_list_t *sul)
{
	struct gw *g = lws_container_of(sul, struct gw, sul_retry);
	if (g->stopping)
		return;
	if (!g->want_resume && !g->gateway_url) {
		fetch_gateway(g);
		return;
	}
	const char *url = g->want_resume && g->resume_url ? g->resume_url : g->gateway_url;
	bool tls;
	char host[256], path[512];
	int port;
	if (!split_url(url, &tls, host, sizeof(host), &port, path, sizeof(path))) {
		log_error(TAG, "the gateway URL '%s' is not a ws:// or wss:// URL", url);
		free(g->gateway_url);
		g->gateway_url = NULL;
		g->want_resume = false;
		reconnect(g, false, false);
		return;
	}
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = g->ctx;
	ci.address = host;
	ci.port = port;
	ci.path = path;
	ci.host = host;
	ci.origin = host;
	ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
	ci.protocol = NULL;
	ci.local_protocol_name = "discord-gateway";
	ci.pwsi = &g->wsi;
	ci.userdata = g;
	ci.opaque_user_data = g; /* which shard's connection a callback is about */
	g->state = GW_CONNECTING;
	g->peer_close = 0;
	log_debug(TAG, "connecting to %s", url);
	if (!lws_client_connect_via_info(&ci)) {
		g->wsi = NULL;
		log_warn(TAG, "cannot connect to %s", url);
		reconnect(g, g->want_resume, false);
	}
}

/* The answer of GET /gateway/bot, carried to the loop thread. */
struct gateway_answer {
	struct gw *g;
	long status;
	char *url;
	long remaining, reset_after_ms;
	int max_concurrency;
	char *error;
};

static void gateway_answer_free(void *arg)
{
	struct gateway_answer *a = arg;
	free(a->url);
	free(a->error);
	free(a);
}

static void on_gateway_answer(void *ctx, void *arg)
{
	struct gateway_answer *a = arg;
	struct gw *g = ctx;
	if (a->status == 401) {
		g->fatal = COHORT_ERR_AUTH;
		set_status(g, "failed", false);
		if (g->o.on_fatal)
			g->o.on_fatal(
				g->o.ud, 401,
				"the bot token was rejected (401 from GET /gateway/bot): copy a "
				"fresh token from the Developer Portal (Bot > Reset Token) into "
				"discord.token or COHORT_DISCORD_TOKEN");
		lws_cancel_service(g->ctx);
	} else if (!a->url) {
		log_warn(TAG, "GET /gateway/bot failed (%s)",
			 a->error ? a->error : "no gateway URL in the answer");
		g->state = GW_IDLE;
		reconnect(g, false, false);
	} else {
		free(g->gateway_url);
		g->gateway_url = a->url;
		a->url = NULL;
		gw_starts_update(g->starts, a->max_concurrency, a->remaining, a->reset_after_ms);
		g->want_resume = false;
		bool limited;
		int64_t at = starts_reserve(g->starts, g->o.shard_id, &limited);
		if (limited)
			log_warn(TAG, "session start limit reached; identifying again in %lld s",
				 (long long)((at - now_ms()) / 1000));
		schedule(g, &g->sul_retry, connect_now, at - now_ms());
	}
	gateway_answer_free(a);
}

static void gateway_fetched(void *ud, const struct http_response *r)
{
	struct gateway_answer *a = xcalloc(1, sizeof(*a));
	a->g = ud;
	a->status = r->status;
	a->remaining = -1;
	cJSON *j = r->status == 200 ? cJSON_Parse(r->body) : NULL;
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(j, "url");
	if (cJSON_IsString(url) && (strncmp(url->valuestring, "ws://", 5) == 0 ||
				    strncmp(url->valuestring, "wss://", 6) == 0))
		a->url = xstrdup(url->valuestring);
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "session_start_limit");
	int64_t rem, rst;
	if (json_int(cJSON_GetObjectItemCaseSensitive(lim, "remaining"), 0, 1000000, &rem) &&
	    json_int(cJSON_GetObjectItemCaseSensitive(lim, "reset_after"), 0, 7 * 86400000LL,
		     &rst)) {
		a->remaining = (long)rem;
		a->reset_after_ms = (long)rst;
	}
	int64_t mc;
	if (json_int(cJSON_GetObjectItemCaseSensitive(lim, "max_concurrency"), 1, 1024, &mc))
		a->max_concurrency = (int)mc;
	if (!a->url)
		a->error = r->error ? xstrdup(r->error) : xasprintf("status %ld", r->status);
	cJSON_Delete(j);
	gw_call(a->g, on_gateway_answer, gateway_answer_free, a);
}

static void fetch_gateway(struct gw *g)
{
	g->state = GW_FETCHING;
	char *url = xasprintf("%s/gateway/bot", g->o.api_url);
	struct http_request rq = {"GET", url, NULL, "gateway", 0, gateway_fetched, g};
	http_submit(g->o.http, &rq);
	free(url);
}

/* The gate's answer for the connection that said HELLO number `hello`. */
struct gate_answer {
	struct gw *g;
	unsigned long hello;
	bool got;
	int64_t retry_ms;
};

static void ask_gate(struct gw *g);

static void gate_retry(lws_sorted_usec_list_t *sul)
{
	ask_gate(lws_container_of(sul, struct gw, sul_ident));
}

static void on_gate_answer(void *ctx, void *arg)
{
	struct gw *g = ctx;
	struct gate_answer *a = arg;
	if (a->hello == g->hellos && g->awaiting_gate && g->wsi && !g->stopping &&
	    a->retry_ms >= 0) {
		if (a->got) {
			g->awaiting_gate = false;
			identify(g);
		} else {
			log_info(TAG, "another process identified in this bucket; identifying in "
				      "%lld ms",
				 (long long)a->retry_ms);
			schedule(g, &g->sul_ident, gate_retry, a->retry_ms);
		}
	}
	free(a);
}

/* From any thread: hands the answer to the loop. */
static void gate_answered(void *ctx, bool got, int64_t retry_ms)
{
	struct gate_answer *a = ctx;
	a->got = got;
	a->retry_ms = retry_ms;
	gw_call(a->g, on_gate_answer, free, a);
}

static void ask_gate(struct gw *g)
{
	pthread_mutex_lock(&g->starts->lock);
	struct gw_identify_gate gate = g->starts->gate;
	int bucket = (g->o.shard_id < 0 ? 0 : g->o.shard_id) % g->starts->max_concurrency;
	pthread_mutex_unlock(&g->starts->lock);
	struct gate_answer *a = xcalloc(1, sizeof(*a));
	a->g = g;
	a->hello = g->hellos;
	gate.ask(gate.ud, bucket, IDENTIFY_SPACING_MS, gate_answered, a);
}

static void on_hello(struct gw *g, const cJSON *d)
{
	int64_t iv;
	/* Discord says about 41 s; anything from 0.1 s to an hour is taken. */
	if (!json_int(cJSON_GetObjectItemCaseSensitive(d, "heartbeat_interval"), 100, 3600000,
		      &iv)) {
		log_warn(TAG, "HELLO without a heartbeat interval; reconnecting");
		close_with(g, 4000);
		return;
	}
	g->interval_ms = iv;
	g->acked = true;
	/* The first beat after interval * random[0, 1): spreads reconnecting clients. */
	int64_t first = (int64_t)((double)g->interval_ms * random01());
	log_debug(TAG, "HELLO: heartbeat every %lld ms, first in %lld ms",
		  (long long)g->interval_ms, (long long)first);
	schedule(g, &g->sul_beat, heartbeat, first);
	g->hellos++;
	pthread_mutex_lock(&g->starts->lock);
	bool gated = g->starts->gate.ask != NULL;
	pthread_mutex_unlock(&g->starts->lock);
	if (g->want_resume && g->session_id) {
		resume(g);
	} else if (gated) {
		/* One IDENTIFY per bucket per 5 s across processes: the slot first. */
		g->awaiting_gate = true;
		ask_gate(g);
	} else {
		identify(g);
	}
}

static void on_dispatch(struct gw *g, const char *t, const cJSON *d)
{
	if (strcmp(t, "READY") == 0) {
		const cJSON *sid = cJSON_GetObjectItemCaseSensitive(d, "session_id");
		const cJSON *url = cJSON_GetObjectItemCaseSensitive(d, "resume_gateway_url");
		if (cJSON_IsString(sid)) {
			free(g->session_id);
			g->session_id = xstrdup(sid->valuestring);
		}
		if (cJSON_IsString(url)) {
			free(g->resume_url);
			g->resume_url = xstrdup(url->valuestring);
		}
		g->failures = 0;
		set_status(g, "connected", false);
		log_info(TAG, "connected (session ready)");
		notify_session(g);
	} else if (strcmp(t, "RESUMED") == 0) {
		g->failures = 0;
		set_status(g, "connected", false);
		log_info(TAG, "session resumed at sequence %lld", (long long)g->seq);
	}
	if (g->o.on_event)
		g->o.on_event(g->o.ud, t, d);
}

/* One whole gateway message. Anything malformed is logged and skipped. */
static void on_message(struct gw *g, const char *text, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(text, len);
	int64_t op;
	if (!cJSON_IsObject(j) ||
	    !json_int(cJSON_GetObjectItemCaseSensitive(j, "op"), 0, 255, &op)) {
		log_warn(TAG, "ignoring a malformed gateway message (%zu bytes)", len);
		cJSON_Delete(j);
		return;
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "d");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "s");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
	int64_t seq;
	switch (op) {
	case 0:
		if (json_int(s, 1, INT64_C(1) << 53, &seq) && seq > g->seq)
			g->seq = seq;
		if (cJSON_IsString(t))
			on_dispatch(g, t->valuestring, d);
		break;
	case 1: /* the gateway asks for a heartbeat now */
		g->acked = true;
		lws_sul_cancel(&g->sul_beat);
		heartbeat(&g->sul_beat);
		break;
	case 7:
		log_info(TAG, "the gateway asked to reconnect (op 7); resuming");
		close_with(g, 4000);
		break;
	case 9:
		if (cJSON_IsTrue(d)) {
			log_info(TAG, "session invalidated (op 9, resumable); resuming");
			g->want_resume = true;
		} else {
			log_info(TAG, "session invalidated (op 9); starting a new one");
			forget_session(g);
			g->want_resume = false;
		}
		g->peer_close = -9; /* the close below is ours: reconnect the op-9 way */
		close_with(g, 4000);
		break;
	case 10: on_hello(g, d); break;
	case 11: g->acked = true; break;
	default: log_debug(TAG, "ignoring opcode %d", (int)op);
	}
	cJSON_Delete(j);
}

/* The connection is gone: decide from the close code what comes next. */
static void on_closed(struct gw *g)
{
	lws_sul_cancel(&g->sul_beat);
	lws_sul_cancel(&g->sul_ident);
	g->awaiting_gate = false;
	drop_frames(g);
	g->wsi = NULL;
	g->close_code = 0;
	sb_release(&g->rx);
	g->rx_skip = false;
	if (g->stopping) {
		g->state = GW_IDLE;
		set_status(g, "stopped", false);
		return;
	}
	int code = g->peer_close;
	if (code == -9) { /* op 9: the payload said resume or not */
		set_status(g, "reconnecting", true);
		reconnect(g, g->want_resume, true);
		return;
	}
	const char *why;
	enum gw_after after = gw_close_policy(code, &why);
	if (after == GW_FATAL) {
		log_error(TAG, "%s", why);
		g->fatal = code == 4004 ? COHORT_ERR_AUTH : COHORT_ERR_CONFIG;
		set_status(g, "failed", false);
		if (g->o.on_fatal)
			g->o.on_fatal(g->o.ud, code, why);
		return;
	}
	log_warn(TAG, "disconnected (%s%s%d)", why, code ? ", close " : "", code);
	set_status(g, "reconnecting", true);
	reconnect(g, after == GW_RESUME, false);
}

static void run_tasks(struct gw *g)
{
	pthread_mutex_lock(&g->lock);
	bool stop = g->stop_asked;
	pthread_mutex_unlock(&g->lock);
	mailbox_run(g->tasks, g);
	if (stop && !g->stopping) {
		g->stopping = true;
		lws_sul_cancel(&g->sul_retry);
		if (g->wsi)
			close_with(g, 4000); /* resumable: a quick restart picks it up */
	}
}

static void tick(lws_sorted_usec_list_t *sul)
{
	struct gw *g = lws_container_of(sul, struct gw, sul_tick);
	if (g->o.on_tick)
		g->o.on_tick(g->o.ud);
	schedule(g, &g->sul_tick, tick, 100);
}

/* True when the send window allows another message now. */
static bool may_send(struct gw *g, bool heartbeat_frame)
{
	if (heartbeat_frame)
		return true; /* heartbeats are what keep the connection alive */
	int64_t oldest = g->sent_at[g->sent_idx];
	return !oldest || now_ms() - oldest >= 60000;
}

static void retry_writable(lws_sorted_usec_list_t *sul);

/* The gateways one context serves (its user pointer): see gw_run_all(). */
struct gw_loop {
	struct gw **gws;
	size_t n;
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		/* Raised on protocols[0], not on a connection: any shard may have mail. */
		struct gw_loop *loop = lws_context_user(lws_get_context(wsi));
		for (size_t i = 0; loop && i < loop->n; i++)
			run_tasks(loop->gws[i]);
		return 0;
	}
	struct gw *g = lws_get_opaque_user_data(wsi);
	if (!g)
		g = user; /* ci.userdata: the same gw */
	if (!g)
		return 0; /* the protocol's own life (init, destroy): nothing of ours */
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		g->state = GW_OPEN;
		log_debug(TAG, "websocket open");
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (wsi != g->wsi)
			break;
		if (!g->rx_skip) {
			if (g->rx.len + len > GW_MAX_MESSAGE) {
				log_warn(TAG, "dropping a gateway message over %d bytes",
					 GW_MAX_MESSAGE);
				g->rx_skip = true;
				sb_release(&g->rx);
			} else {
				sb_add(&g->rx, in, len);
			}
		}
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
			if (!g->rx_skip && g->rx.len)
				on_message(g, g->rx.buf, g->rx.len);
			sb_truncate(&g->rx, 0);
			g->rx_skip = false;
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		if (wsi != g->wsi)
			break;
		if (g->close_code) {
			lws_close_reason(wsi, (enum lws_close_status)g->close_code, NULL, 0);
			return -1;
		}
		struct frame *f = g->out;
		if (!f)
			break;
		if (!may_send(g, f->heartbeat)) {
			int64_t wait = 60000 - (now_ms() - g->sent_at[g->sent_idx]);
			log_warn(TAG, "sending too fast; waiting %lld ms", (long long)wait);
			schedule(g, &g->sul_write, retry_writable, wait);
			break;
		}
		g->out = f->next;
		if (!g->out)
			g->out_tail = NULL;
		unsigned char *buf = xmalloc(LWS_PRE + f->len);
		memcpy(buf + LWS_PRE, f->text, f->len);
		int n = lws_write(wsi, buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
		free(buf);
		if (!f->heartbeat) {
			g->sent_at[g->sent_idx] = now_ms();
			g->sent_idx = (g->sent_idx + 1) % GW_SEND_PER_MINUTE;
		}
		free(f->text);
		free(f);
		if (n < 0)
			return -1;
		if (g->out)
			lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (wsi == g->wsi && len >= 2) {
			const unsigned char *c = in;
			g->peer_close = (c[0] << 8) | c[1];
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (g->state != GW_CONNECTING)
			break;
		log_warn(TAG, "cannot connect: %s", in ? (const char *)in : "connection error");
		on_closed(g);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi != g->wsi)
			break;
		on_closed(g);
		break;
	default: break;
	}
	return 0;
}

static void retry_writable(lws_sorted_usec_list_t *sul)
{
	struct gw *g = lws_container_of(sul, struct gw, sul_write);
	if (g->wsi)
		lws_callback_on_writable(g->wsi);
}

static const struct lws_protocols protocols[] = {
	{"discord-gateway", callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_error("lws", "%.*s", (int)n, line);
	else
		log_warn("lws", "%.*s", (int)n, line);
}

/* Wakes the loop (LWS_CALLBACK_EVENT_WAIT_CANCELLED runs the tasks); gw_run() runs
 * what was posted before the loop existed. */
static void wake_loop(void *ud)
{
	struct gw *g = ud;
	pthread_mutex_lock(&g->lock);
	if (g->ctx)
		lws_cancel_service(g->ctx);
	pthread_mutex_unlock(&g->lock);
}

struct gw *gw_new(const struct gw_opts *opts, const struct gw_session *session)
{
	struct gw *g = xcalloc(1, sizeof(*g));
	g->o = *opts;
	if (opts->shard_count > 1)
		snprintf(g->tag, sizeof(g->tag), "gateway#%d", opts->shard_id);
	else
		snprintf(g->tag, sizeof(g->tag), "gateway");
	g->starts = opts->starts;
	if (!g->starts)
		g->starts = g->own_starts = gw_starts_new();
	if (opts->gateway_url)
		g->gateway_url = xstrdup(opts->gateway_url);
	g->acked = true;
	g->status = "starting";
	g->status_since = now_ms();
	pthread_mutex_init(&g->lock, NULL);
	g->tasks = mailbox_new(wake_loop, g);
	if (session && session->session_id && session->resume_url) {
		g->session_id = xstrdup(session->session_id);
		g->resume_url = xstrdup(session->resume_url);
		g->seq = session->seq;
		g->want_resume = true;
	}
	return g;
}

void gw_free(struct gw *g)
{
	if (!g)
		return;
	mailbox_free(g->tasks); /* the loop is gone: what is left is only freed */
	drop_frames(g);
	sb_release(&g->rx);
	free(g->session_id);
	free(g->resume_url);
	free(g->gateway_url);
	gw_starts_free(g->own_starts);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* Starts g on the loop: resume, identify (paced), or ask for the gateway URL first. */
static void begin(struct gw *g)
{
	schedule(g, &g->sul_tick, tick, 100);
	if (g->want_resume) {
		schedule(g, &g->sul_retry, connect_now, 0);
	} else if (g->gateway_url) {
		bool limited;
		int64_t at = starts_reserve(g->starts, g->o.shard_id, &limited);
		if (limited)
			log_warn(TAG, "session start limit reached; identifying in %lld s",
				 (long long)((at - now_ms()) / 1000));
		schedule(g, &g->sul_retry, connect_now, at - now_ms());
	} else {
		fetch_gateway(g);
	}
	run_tasks(g);
}

/* True while g still needs the loop: not failed, and not stopped (or given up stopping). */
static bool running(struct gw *g)
{
	if (g->fatal || (g->stopping && !g->wsi))
		return false;
	if (g->stopping && !g->stop_deadline)
		g->stop_deadline = now_ms() + 2000;
	return !(g->stop_deadline && now_ms() > g->stop_deadline); /* a hanging close */
}

int gw_run_all(struct gw **gws, size_t n)
{
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	struct gw_loop loop = {gws, n};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = &loop;
	info.fd_limit_per_thread = (unsigned int)(8 + 2 * n);
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx) {
		for (size_t i = 0; i < n; i++)
			log_error(gws[i]->tag, "libwebsockets could not start");
		return COHORT_ERR_IO;
	}
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&gws[i]->lock);
		gws[i]->ctx = ctx;
		pthread_mutex_unlock(&gws[i]->lock);
	}
	for (size_t i = 0; i < n; i++)
		begin(gws[i]);
	for (;;) {
		/* A shard that failed is done; the others run on until they are stopped (the
		 * adapter stops them all when one fails). */
		bool any = false;
		for (size_t i = 0; i < n; i++)
			any |= running(gws[i]);
		if (!any)
			break;
		if (lws_service(ctx, 0) < 0)
			break;
	}
	int rc = COHORT_OK;
	for (size_t i = 0; i < n; i++) {
		struct gw *g = gws[i];
		if (!g->fatal)
			set_status(g, "stopped", false);
		else if (!rc)
			rc = g->fatal;
		lws_sul_cancel(&g->sul_tick);
		lws_sul_cancel(&g->sul_beat);
		lws_sul_cancel(&g->sul_retry);
		lws_sul_cancel(&g->sul_write);
		lws_sul_cancel(&g->sul_ident);
		pthread_mutex_lock(&g->lock);
		g->ctx = NULL;
		pthread_mutex_unlock(&g->lock);
	}
	lws_context_destroy(ctx);
	for (size_t i = 0; i < n; i++)
		gws[i]->wsi = NULL;
	return rc;
}

int gw_run(struct gw *g)
{
	return gw_run_all(&g, 1);
}

void gw_feed(struct gw *g, const char *text, size_t len)
{
	on_message(g, text, len);
	drop_frames(g);
}

void gw_stop(struct gw *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop_asked = true;
	struct lws_context *ctx = g->ctx;
	pthread_mutex_unlock(&g->lock);
	if (ctx)
		lws_cancel_service(ctx);
}

void gw_call(struct gw *g, mail_fn *fn, mail_drop_fn *drop, void *arg)
{
	mailbox_post(g->tasks, fn, drop, arg);
}

void gw_session_copy(const struct gw *g, struct gw_session *out)
{
	out->session_id = g->session_id ? xstrdup(g->session_id) : NULL;
	out->resume_url = g->resume_url ? xstrdup(g->resume_url) : NULL;
	out->seq = g->seq;
}

void gw_session_release(struct gw_session *s)
{
	free(s->session_id);
	free(s->resume_url);
	s->session_id = s->resume_url = NULL;
}
