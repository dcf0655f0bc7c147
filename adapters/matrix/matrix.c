#include "matrix.h"

#include "adapters/attempts.h"
#include "adapters/http.h"
#include "adapters/idset.h"
#include "adapters/json.h"
#include "bot/bot.h"
#include "bot/cmdline.h"
#include "bot/config.h"
#include "bot/reply.h"
#include "bot/scheduler.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG "matrix"
#define API "/_matrix/client/v3"
#define MAX_BODY 16384 /* longest message body looked at */
#define FETCH_TIMEOUT_MS 15000

struct level {
	char *user;
	long level;
};

struct name {
	char *user, *name;
};

struct room {
	char *id;
	bool levels_known;
	long users_default;
	struct level *levels;
	size_t nlevels, caplevels;
	struct name *names;
	size_t nnames, capnames;
	/* Room version 12 on: the creators outrank every power level (absent from `users`). */
	bool create_known;
	char **creators;
	size_t ncreators, capcreators;
	bool encrypted;
	bool told; /* the encryption notice was handed to the dispatcher (which sends it once ever)
		    */
};

struct matrix {
	const struct config *cfg;
	struct door *door; /* the bot: events, state, the clock (borrowed) */
	char *hs; /* the homeserver URL without a trailing slash */
	pthread_t thread;
	bool started;
	int rc;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_bool stopping;     /* set under lock (for the condition); read anywhere */
	struct http_client *http; /* under lock: made once the token is known */
	const char *status;       /* under lock, with the counters below */
	int64_t status_since, last_event;
	unsigned long commands, reconnects;

	/* The sync thread's own. */
	char *token, *user_id, *filter_id, *since;
	char *refresh_token, *device_id; /* from a login: kept in the store with the token */
	int64_t refresh_at;   /* real ms when the access token is renewed ahead of expiry; 0: never */
	int renewals;         /* renewals since a request last succeeded (a loop guard) */
	atomic_bool renewable; /* a refresh token or matrix.password: a 401 is not the end */
	int cut_limit; /* while recovering from an oversized /sync: its timeline limit */
	struct room **rooms;
	size_t nrooms, caprooms;
	struct idset *seen; /* event ids (and invited rooms), against duplicates */

	struct mx_sync_lease lease; /* may_sync NULL: always syncs */
	bool syncing, standby;      /* the sync thread's: the last ask's answer */

	/* The dispatcher thread's own. */
	int64_t txn_base;
	unsigned long txn_next;
};

/* ---- pure helpers (tested) ---- */

static const char *jstr(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool mx_parse_level(const void *json_value, long *out)
{
	const cJSON *v = json_value;
	double d;
	if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
	} else if (cJSON_IsString(v) && *v->valuestring) {
		char *end;
		d = strtod(v->valuestring, &end);
		while (*end == ' ')
			end++;
		if (*end)
			return false;
	} else {
		return false;
	}
	if (!(d > -1e15 && d < 1e15))
		return false;
	*out = (long)d;
	return true;
}

const char *mx_strip_fallback(const char *body)
{
	const char *p = body;
	if (strncmp(p, "> ", 2) != 0 && strcmp(p, ">") != 0 && strncmp(p, ">\n", 2) != 0)
		return body;
	while (*p == '>') {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return p + strlen(p);
		p = nl + 1;
	}
	if (*p == '\n')
		p++;
	return p;
}

/*
 * Escapes s for HTML. A line break inside one line's text is shown as U+FFFD,
 * as in the plain body: it must not forge a line (<br>, or a row in <pre>).
 */
static void add_html(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		switch (*s) {
		case '&': sb_adds(sb, "&amp;"); break;
		case '<': sb_adds(sb, "&lt;"); break;
		case '>': sb_adds(sb, "&gt;"); break;
		case '"': sb_adds(sb, "&quot;"); break;
		case '\'': sb_adds(sb, "&#39;"); break;
		default:
			if (unsafe)
				sb_adds(sb, "\xef\xbf\xbd");
			else
				sb_add(sb, s, k);
		}
		s += k;
		n -= k;
	}
}

void mx_render_html(const struct reply *r, struct strbuf *out)
{
	if (r->title && *r->title) {
		sb_adds(out, "<b>");
		add_html(out, r->title);
		sb_adds(out, "</b>");
	}
	bool in_pre = false;
	for (size_t i = 0; i < r->nlines; i++) {
		const struct reply_line *l = &r->lines[i];
		if (l->style == LINE_MONO) {
			if (!in_pre)
				sb_adds(out, "<pre><code>");
			else
				sb_addc(out, '\n');
			in_pre = true;
			add_html(out, l->text);
			continue;
		}
		if (in_pre) {
			sb_adds(out, "</code></pre>");
			in_pre = false;
		} else if (out->len) {
			sb_adds(out, "<br>");
		}
		add_html(out, l->text);
	}
	if (in_pre)
		sb_adds(out, "</code></pre>");
}

/* ---- sending (any thread; replies from the dispatcher) ---- */

static struct http_client *client(struct matrix *mx)
{
	pthread_mutex_lock(&mx->lock);
	struct http_client *h = mx->http;
	pthread_mutex_unlock(&mx->lock);
	return h;
}

static void fatal_token(struct matrix *mx, const char *what)
{
	log_error(TAG,
		  "the access token was rejected (401 M_UNKNOWN_TOKEN on %s): make a new one "
		  "(log in as the bot, Settings > Help & About > Access Token) and put it in "
		  "matrix.access_token or COHORT_MATRIX_TOKEN",
		  what);
	door_fail(mx->door, COHORT_ERR_AUTH);
}

static void check_answer(struct matrix *mx, const char *what, const struct http_response *r)
{
	if (r->status >= 200 && r->status < 300)
		return;
	if (r->status == 401 && atomic_load(&mx->renewable))
		log_warn(TAG, "%s was refused (401): the access token expired; the sync renews it",
			 what); /* the client holds back every request until then */
	else if (r->status == 401)
		fatal_token(mx, what);
	else if (r->status == 0)
		log_warn(TAG, "%s failed: %s", what, r->error ? r->error : "no answer");
	else
		log_warn(TAG, "%s failed with status %ld: %.200s", what, r->status, r->body);
}

static void sent(void *ud, const struct http_response *r)
{
	check_answer(ud, "sending a message", r);
}

/*
 * How long an answer owed may wait before it is dropped instead of sent:
 * a homeserver keeps transaction ids (what stops a resend from posting
 * twice) for a limited time (Synapse: about 30 minutes), and an answer much
 * later than the question only confuses.
 */
#define MX_ANSWER_MAX_AGE_MS (20 * 60 * 1000)

/* An answer from the outbox being sent. */
struct answer_ctx {
	struct matrix *mx;
	int64_t id;
};

/* What a send's HTTP outcome means for the answer: sent, worth another try, or never. */
static enum answer_outcome answer_outcome(const struct http_response *r)
{
	if (r->status >= 200 && r->status < 300)
		return ANSWER_SENT;
	if (r->status == 0 || r->status == 401 || r->status == 429 || r->status >= 500)
		return ANSWER_RETRY;
	return ANSWER_DROPPED; /* the homeserver refuses it (403: not in the room, 413 ...) */
}

static void answer_sent(void *ud, const struct http_response *r)
{
	struct answer_ctx *c = ud;
	check_answer(c->mx, "sending an answer", r);
	door_answer_sent(c->mx->door, c->id, answer_outcome(r));
	free(c);
}

/* An answer's address in the outbox: {"room", "reply_to", "txn"} (a new string). */
static char *answer_address(const char *room, const char *reply_to, const char *txn)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "room", room);
	if (reply_to)
		cJSON_AddStringToObject(a, "reply_to", reply_to);
	cJSON_AddStringToObject(a, "txn", txn);
	char *text = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}

struct post_ctx {
	struct matrix *mx;
	char key[20];
	char *url, *queue, *body; /* the PUT, when it waits for the look-up */
};

static void post_ctx_free(struct post_ctx *c)
{
	free(c->url);
	free(c->queue);
	free(c->body);
	free(c);
}

static void digest_sent(void *ud, const struct http_response *r)
{
	struct post_ctx *c = ud;
	check_answer(c->mx, "posting the digest", r);
	door_digest_sent(c->mx->door, c->key, http_result(r));
	post_ctx_free(c);
}

/* The m.notice content of r, as JSON (a new string). */
static char *content_json(const struct reply *r, const char *in_reply_to)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	char *plain = reply_render_text(r);
	size_t n = strlen(plain);
	while (n && plain[n - 1] == '\n')
		plain[--n] = '\0';
	cJSON_AddStringToObject(c, "body", plain);
	free(plain);
	struct strbuf html = STRBUF_INIT;
	mx_render_html(r, &html);
	cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(c, "formatted_body", sb_str(&html));
	sb_release(&html);
	cJSON_AddObjectToObject(c, "m.mentions"); /* mentions nobody, whatever the text says */
	if (in_reply_to) {
		cJSON *rel = cJSON_AddObjectToObject(c, "m.relates_to");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(rel, "m.in_reply_to"), "event_id",
					in_reply_to);
	}
	char *text = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	return text;
}

/* s cut to at most MX_MAX_LINE bytes on a character boundary, "…" marking a cut (new). */
static char *clip_line(const char *s)
{
	size_t n = strlen(s);
	if (n <= MX_MAX_LINE)
		return xstrdup(s);
	n = MX_MAX_LINE - 3;
	while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	char *out = xmalloc(n + 4);
	memcpy(out, s, n);
	memcpy(out + n, "\xe2\x80\xa6", 4);
	return out;
}

/* The content of r's title and first k lines, then "…(N more)" when lines were left out. */
static char *content_first(const struct reply *r, size_t k, const char *in_reply_to)
{
	struct reply view = *r;
	struct reply_line *lines = xcalloc(k + 1, sizeof(*lines));
	memcpy(lines, r->lines, k * sizeof(*lines));
	char *more = NULL;
	if (k < r->nlines) {
		more = xasprintf("\u2026(%zu more)", r->nlines - k);
		lines[k++] = (struct reply_line){LINE_TEXT, more};
	}
	view.lines = lines;
	view.nlines = view.cap = k;
	char *text = content_json(&view, in_reply_to);
	free(more);
	free(lines);
	return text;
}

char *mx_render_content(const struct reply *r, const char *in_reply_to, size_t max)
{
	struct reply cut;
	reply_init(&cut);
	cut.kind = r->kind;
	cut.ephemeral = r->ephemeral;
	cut.title = r->title ? clip_line(r->title) : NULL;
	cut.lines = xcalloc(r->nlines + 1, sizeof(*cut.lines));
	for (size_t i = 0; i < r->nlines; i++)
		cut.lines[i] = (struct reply_line){r->lines[i].style, clip_line(r->lines[i].text)};
	cut.nlines = cut.cap = r->nlines;
	char *text = content_first(&cut, cut.nlines, in_reply_to);
	if (strlen(text) > max && cut.nlines > 0) {
		/* The most lines that fit with the "…(N more)" line; none always fits. */
		size_t lo = 0, hi = cut.nlines - 1;
		while (lo < hi) {
			size_t mid = (lo + hi + 1) / 2;
			char *t = content_first(&cut, mid, in_reply_to);
			bool fits = strlen(t) <= max;
			cJSON_free(t);
			if (fits)
				lo = mid;
			else
				hi = mid - 1;
		}
		cJSON_free(text);
		text = content_first(&cut, lo, in_reply_to);
	}
	reply_release(&cut);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}

/*
 * Sends r to room as an m.notice (a reply to in_reply_to when not NULL) with
 * transaction id txn: the HTTP client's retries reuse the URL, so the server
 * applies it once. In order per room. Kept under Matrix's event size limit.
 */
static int send_notice(struct matrix *mx, const char *room, const struct reply *r,
		       const char *in_reply_to, const char *txn, http_done_fn *done, void *ud)
{
	struct http_client *h = client(mx);
	if (!h)
		return COHORT_ERR_NETWORK;
	char *body = mx_render_content(r, in_reply_to, MX_MAX_CONTENT);
	char *eroom = http_escape(room), *etxn = http_escape(txn);
	char *url = xasprintf("%s" API "/rooms/%s/send/m.room.message/%s", mx->hs, eroom, etxn);
	char *queue = xasprintf("room:%s", room);
	struct http_request rq = {"PUT", url, body, queue, 0, done, ud};
	http_submit(h, &rq);
	free(queue);
	free(url);
	free(eroom);
	free(etxn);
	free(body);
	return COHORT_OK;
}

/* A transaction id unique to this message: the process start and a counter. Any thread. */
static void next_txn(struct matrix *mx, char *buf, size_t n)
{
	pthread_mutex_lock(&mx->lock);
	unsigned long k = ++mx->txn_next;
	pthread_mutex_unlock(&mx->lock);
	snprintf(buf, n, "cohort.%lld.%lu", (long long)mx->txn_base, k);
}

static void set_status(struct matrix *mx, const char *status)
{
	pthread_mutex_lock(&mx->lock);
	if (mx->status != status) {
		mx->status_since = clock_real_ms();
		if (!strcmp(status, "reconnecting"))
			mx->reconnects++;
	}
	mx->status = status;
	pthread_mutex_unlock(&mx->lock);
}

/* ---- jobs (dispatcher thread) ---- */

enum item_kind { ITEM_COMMAND, ITEM_E2E };

struct item {
	enum item_kind kind;
	char *room, *event_id, *sender, *name, *command, *args;
	bool admin;
};

struct batch_job {
	struct matrix *mx;
	struct item *items;
	size_t n, cap;
	char *next_batch;
};

static void batch_job_free(void *arg)
{
	struct batch_job *j = arg;
	for (size_t i = 0; i < j->n; i++) {
		struct item *it = &j->items[i];
		free(it->room);
		free(it->event_id);
		free(it->sender);
		free(it->name);
		free(it->command);
		free(it->args);
	}
	free(j->items);
	free(j->next_batch);
	free(j);
}

/* Where a command's answer goes: a notice in reply to the event. */
struct command_ctx {
	struct matrix *mx;
	char *room, *event_id;
	char txn[64]; /* chosen when the event was submitted: kept with the answer */
};

static void command_ctx_free(void *arg)
{
	struct command_ctx *c = arg;
	free(c->room);
	free(c->event_id);
	free(c);
}

/* A command's answer sink (dispatcher thread). */
static void command_answered(void *arg, const struct door_answer *a)
{
	struct command_ctx *c = arg;
	struct matrix *mx = c->mx;
	pthread_mutex_lock(&mx->lock);
	mx->commands++;
	mx->last_event = clock_real_ms();
	pthread_mutex_unlock(&mx->lock);
	/*
	 * A replayed event was answered when it first came (before a restart), or
	 * its answer is owed and the outbox sends it.
	 */
	if (a->rc != COHORT_ERR_DUPLICATE && a->rc != COHORT_ERR_PENDING) {
		struct answer_ctx *s = xmalloc(sizeof(*s));
		*s = (struct answer_ctx){mx, a->answer_id};
		if (send_notice(mx, c->room, a->reply, c->event_id, c->txn, answer_sent, s)) {
			free(s);
			door_answer_sent(mx->door, a->answer_id, ANSWER_RETRY);
		}
	}
}

struct e2e_ctx {
	struct matrix *mx;
	char *room;
};

static void e2e_ctx_free(void *arg)
{
	struct e2e_ctx *c = arg;
	free(c->room);
	free(c);
}

/* Sends the encryption notice to a room unless it was sent before (dispatcher thread). */
static char *tell_once(void *arg, const char *done, bool ok)
{
	struct e2e_ctx *c = arg;
	if (!ok || done)
		return NULL;
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_INFO, "cohort cannot read encrypted rooms");
	reply_line(&r, "End-to-end encryption is not supported, so commands here "
		       "go unanswered. Use cohort in a room without encryption.");
	char txn[64];
	next_txn(c->mx, txn, sizeof(txn));
	bool queued = send_notice(c->mx, c->room, &r, NULL, txn, sent, c->mx) == COHORT_OK;
	reply_release(&r);
	return queued ? xstrdup("sent") : NULL;
}

/*
 * Hands a batch's events to the bot, then its sync token: the token is saved
 * after the events it covers, so a restart neither skips nor repeats. Frees j.
 */
static void submit_batch(struct matrix *mx, struct batch_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct item *it = &j->items[i];
		if (it->kind == ITEM_E2E) {
			char *key = xasprintf("matrix.e2e_notice:%s", it->room);
			struct e2e_ctx *c = xmalloc(sizeof(*c));
			*c = (struct e2e_ctx){mx, xstrdup(it->room)};
			door_state_update(mx->door, key, tell_once, e2e_ctx_free, c);
			free(key);
			continue;
		}
		char *group = xasprintf("matrix:%s", it->room);
		char *member = xasprintf("matrix:%s", it->sender);
		char *source = xasprintf("matrix:%s", it->event_id);
		struct event ev = {
			.platform = "matrix",
			.group_id = group,
			.channel_id = it->room,
			.member_id = member,
			.member_name = it->name,
			.is_admin = it->admin,
			.command = it->command,
			.args = it->args,
			.source_id = source,
			.kind = EVENT_COMMAND,
		};
		struct command_ctx *c = xcalloc(1, sizeof(*c));
		*c = (struct command_ctx){mx, xstrdup(it->room), xstrdup(it->event_id), ""};
		/* The transaction id is chosen now and kept with the answer: a resend reuses it. */
		next_txn(mx, c->txn, sizeof(c->txn));
		char *address = answer_address(it->room, it->event_id, c->txn);
		ev.answer_address = address;
		door_submit(mx->door, &ev,
			    &(struct answer_sink){command_answered, command_ctx_free, c});
		free(address);
		free(group);
		free(member);
		free(source);
	}
	if (j->next_batch)
		door_state_save(mx->door, "matrix.next_batch", j->next_batch);
	batch_job_free(j);
}

/* ---- rooms (sync thread) ---- */

static struct room *room_get(struct matrix *mx, const char *id)
{
	for (size_t i = 0; i < mx->nrooms; i++)
		if (strcmp(mx->rooms[i]->id, id) == 0)
			return mx->rooms[i];
	grow_array((void **)&mx->rooms, &mx->caprooms, mx->nrooms + 1, sizeof(*mx->rooms));
	struct room *r = xcalloc(1, sizeof(*r));
	r->id = xstrdup(id);
	mx->rooms[mx->nrooms++] = r;
	return r;
}

static void room_free(struct room *r)
{
	for (size_t i = 0; i < r->nlevels; i++)
		free(r->levels[i].user);
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i].user), free(r->names[i].name);
	for (size_t i = 0; i < r->ncreators; i++)
		free(r->creators[i]);
	free(r->creators);
	free(r->levels);
	free(r->names);
	free(r->id);
	free(r);
}

static void set_levels(struct room *r, const cJSON *content)
{
	for (size_t i = 0; i < r->nlevels; i++)
		free(r->levels[i].user);
	r->nlevels = 0;
	r->levels_known = true;
	if (!mx_parse_level(cJSON_GetObjectItemCaseSensitive(content, "users_default"),
			    &r->users_default))
		r->users_default = 0;
	const cJSON *u, *users = cJSON_GetObjectItemCaseSensitive(content, "users");
	cJSON_ArrayForEach(u, users)
	{
		long lv;
		if (!u->string || !mx_parse_level(u, &lv))
			continue;
		grow_array((void **)&r->levels, &r->caplevels, r->nlevels + 1, sizeof(*r->levels));
		r->levels[r->nlevels++] = (struct level){xstrdup(u->string), lv};
	}
}

static void add_creator(struct room *r, const char *user)
{
	grow_array((void **)&r->creators, &r->capcreators, r->ncreators + 1,
		   sizeof(*r->creators));
	r->creators[r->ncreators++] = xstrdup(user);
}

/*
 * The room's creators from its m.room.create event (the whole event: the
 * sender is the creator). From room version 12 the sender and
 * additional_creators have unlimited power; earlier versions have none.
 */
static void set_creators(struct room *r, const cJSON *ev)
{
	for (size_t i = 0; i < r->ncreators; i++)
		free(r->creators[i]);
	r->ncreators = 0;
	r->create_known = true;
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	const char *version = jstr(content, "room_version"), *sender = jstr(ev, "sender");
	char *end = NULL;
	long v = version ? strtol(version, &end, 10) : 0;
	if (!version || end == version || *end || v < 12)
		return; /* versions 1-11 (no room_version means 1): creators are ordinary members */
	if (sender && *sender == '@')
		add_creator(r, sender);
	const cJSON *u;
	cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(content, "additional_creators"))
	{
		if (cJSON_IsString(u) && *u->valuestring == '@')
			add_creator(r, u->valuestring);
	}
}

static void set_name(struct room *r, const char *user, const char *name)
{
	for (size_t i = 0; i < r->nnames; i++) {
		if (strcmp(r->names[i].user, user) == 0) {
			free(r->names[i].name);
			r->names[i].name = xstrdup(name);
			return;
		}
	}
	grow_array((void **)&r->names, &r->capnames, r->nnames + 1, sizeof(*r->names));
	r->names[r->nnames++] = (struct name){xstrdup(user), xstrdup(name)};
}

static const char *get_name(const struct room *r, const char *user)
{
	for (size_t i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i].user, user) == 0)
			return r->names[i].name;
	return NULL;
}

/* A GET on the sync thread; the parsed answer or NULL. */
static cJSON *get_json(struct matrix *mx, const char *url, long *status)
{
	struct http_response resp;
	*status = 0;
	if (!client(mx))
		return NULL;
	if (!http_fetch(client(mx), "GET", url, NULL, FETCH_TIMEOUT_MS, &mx->stopping, &resp))
		return NULL;
	*status = resp.status;
	cJSON *j = resp.status == 200 ? cJSON_Parse(resp.body) : NULL;
	http_response_release(&resp);
	return j;
}

/* Power levels and creators for a room seen first after a restart (the sync sends only changes). */
static void fetch_levels(struct matrix *mx, struct room *r)
{
	char *er = http_escape(r->id), *url;
	long status;
	cJSON *j;
	if (!r->levels_known) {
		url = xasprintf("%s" API "/rooms/%s/state/m.room.power_levels/", mx->hs, er);
		j = get_json(mx, url, &status);
		if (j)
			set_levels(r, j);
		else
			log_warn(TAG, "could not read the power levels of %s (status %ld)", r->id,
				 status);
		r->levels_known = true; /* not asked again per message; a change comes by sync */
		cJSON_Delete(j);
		free(url);
	}
	if (!r->create_known) {
		/* format=event: the creator is the event's sender, not in its content. */
		url = xasprintf("%s" API "/rooms/%s/state/m.room.create/?format=event", mx->hs,
				er);
		j = get_json(mx, url, &status);
		if (j && jstr(j, "sender"))
			set_creators(r, j);
		else
			log_warn(TAG, "could not read who created %s (status %ld)", r->id, status);
		r->create_known = true;
		cJSON_Delete(j);
		free(url);
	}
	free(er);
}

static void fetch_name(struct matrix *mx, struct room *r, const char *user)
{
	char *er = http_escape(r->id), *eu = http_escape(user);
	char *url = xasprintf("%s" API "/rooms/%s/state/m.room.member/%s", mx->hs, er, eu);
	long status;
	cJSON *j = get_json(mx, url, &status);
	const char *name = jstr(j, "displayname");
	set_name(r, user, name && *name ? name : user);
	cJSON_Delete(j);
	free(url);
	free(er);
	free(eu);
}

static long level_of(const struct room *r, const char *user)
{
	for (size_t i = 0; i < r->ncreators; i++)
		if (strcmp(r->creators[i], user) == 0)
			return LONG_MAX;
	for (size_t i = 0; i < r->nlevels; i++)
		if (strcmp(r->levels[i].user, user) == 0)
			return r->levels[i].level;
	return r->users_default;
}

static void add_item(struct batch_job *j, struct item it)
{
	grow_array((void **)&j->items, &j->cap, j->n + 1, sizeof(*j->items));
	j->items[j->n++] = it;
}

static bool seen_before(struct matrix *mx, const char *id)
{
	return idset_seen(mx->seen, id);
}

/* Queues the one notice that encryption is not supported (the job checks the store). */
static void tell_encrypted(struct room *r, struct batch_job *j)
{
	if (r->told)
		return;
	r->told = true;
	add_item(j, (struct item){.kind = ITEM_E2E, .room = xstrdup(r->id)});
}

/* State that matters: power levels, display names, encryption. */
static void apply_state(struct matrix *mx, struct room *r, const cJSON *ev, struct batch_job *j)
{
	const char *type = jstr(ev, "type"), *key = jstr(ev, "state_key");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	if (!type || !key || !cJSON_IsObject(content))
		return;
	if (strcmp(type, "m.room.power_levels") == 0) {
		set_levels(r, content);
	} else if (strcmp(type, "m.room.create") == 0) {
		set_creators(r, ev);
	} else if (strcmp(type, "m.room.member") == 0) {
		const char *name = jstr(content, "displayname");
		if (*key == '@')
			set_name(r, key, name && *name ? name : key);
	} else if (strcmp(type, "m.room.encryption") == 0) {
		r->encrypted = true;
		if (j)
			tell_encrypted(r, j);
	}
	(void)mx;
}

static void on_message(struct matrix *mx, struct room *r, const cJSON *ev, struct batch_job *j)
{
	const char *sender = jstr(ev, "sender"), *id = jstr(ev, "event_id");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	if (!sender || !id || !cJSON_IsObject(content) || strcmp(sender, mx->user_id) == 0)
		return;
	const char *msgtype = jstr(content, "msgtype"), *body = jstr(content, "body");
	if (!msgtype || strcmp(msgtype, "m.text") != 0 || !body || strlen(body) > MAX_BODY)
		return; /* notices (other bots), images, ...: not commands */
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = jstr(rel, "rel_type");
	if ((rel_type && strcmp(rel_type, "m.replace") == 0) ||
	    cJSON_GetObjectItemCaseSensitive(content, "m.new_content"))
		return; /* an edit: the command was answered when it was first sent */
	const char *prefixes[] = {mx->cfg->matrix_prefix, "/", NULL};
	char *command, *args;
	if (!cmdline_parse(mx_strip_fallback(body), prefixes, &command, &args))
		return;
	if (seen_before(mx, id)) {
		free(command);
		free(args);
		return;
	}
	if (!r->levels_known || !r->create_known)
		fetch_levels(mx, r);
	if (!get_name(r, sender))
		fetch_name(mx, r, sender);
	add_item(j, (struct item){ITEM_COMMAND, xstrdup(r->id), xstrdup(id), xstrdup(sender),
				  xstrdup(get_name(r, sender)), command, args,
				  level_of(r, sender) >= MX_ADMIN_LEVEL});
}

/* True when invites from user are accepted (matrix.invite_from: user ids or server names). */
static bool invite_allowed(const struct config *cfg, const char *user)
{
	if (!cfg->matrix_invite_from.n)
		return true;
	const char *server = user ? strchr(user, ':') : NULL;
	for (size_t i = 0; user && i < cfg->matrix_invite_from.n; i++) {
		const char *w = cfg->matrix_invite_from.v[i];
		if (strcmp(w, user) == 0 || (w[0] != '@' && server && strcmp(server + 1, w) == 0))
			return true;
	}
	return false;
}

static void joined(void *ud, const struct http_response *r)
{
	check_answer(ud, "joining a room", r);
}

static void on_invite(struct matrix *mx, const char *room_id, const cJSON *room)
{
	const cJSON *ev, *events = cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(room, "invite_state"), "events");
	const char *inviter = NULL;
	cJSON_ArrayForEach(ev, events)
	{
		const char *type = jstr(ev, "type"), *key = jstr(ev, "state_key");
		const char *membership =
			jstr(cJSON_GetObjectItemCaseSensitive(ev, "content"), "membership");
		if (type && key && membership && !strcmp(type, "m.room.member") &&
		    !strcmp(key, mx->user_id) && !strcmp(membership, "invite"))
			inviter = jstr(ev, "sender");
	}
	if (seen_before(mx, room_id))
		return; /* asked to join already */
	if (!mx->cfg->matrix_auto_join) {
		log_info(TAG, "invited to %s by %s; matrix.auto_join is off", room_id,
			 inviter ? inviter : "someone");
		return;
	}
	if (!invite_allowed(mx->cfg, inviter)) {
		log_info(TAG, "ignoring the invite to %s from %s: not in matrix.invite_from",
			 room_id, inviter ? inviter : "an unknown user");
		return;
	}
	log_info(TAG, "joining %s (invited by %s)", room_id, inviter ? inviter : "someone");
	char *er = http_escape(room_id);
	char *url = xasprintf("%s" API "/join/%s", mx->hs, er);
	char *queue = xasprintf("room:%s", room_id);
	struct http_request rq = {"POST", url, "{}", queue, 0, joined, mx};
	if (client(mx))
		http_submit(client(mx), &rq);
	free(queue);
	free(url);
	free(er);
}

static void on_joined_room(struct matrix *mx, const char *room_id, const cJSON *room, bool initial,
			   struct batch_job *j)
{
	struct room *r = room_get(mx, room_id);
	const cJSON *ev;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(
				       cJSON_GetObjectItemCaseSensitive(room, "state"), "events"))
		apply_state(mx, r, ev, initial ? NULL : j);
	const cJSON *timeline = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(room, "timeline"), "events");
	if (mx->cut_limit &&
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(room, "timeline"), "limited")))
		log_warn(TAG,
			 "%s: only the last %d messages since the last sync were read (the sync "
			 "answer was too large); earlier ones were not answered",
			 room_id, mx->cut_limit);
	/* Messages from before our own join (history of a room just joined) go unanswered. */
	int answer_from = 0, i = 0;
	cJSON_ArrayForEach(ev, timeline)
	{
		const char *type = jstr(ev, "type"), *key = jstr(ev, "state_key");
		const char *membership =
			jstr(cJSON_GetObjectItemCaseSensitive(ev, "content"), "membership");
		/* A join, not a profile change of a member already in (prev_content says so). */
		const char *before = jstr(
			cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(ev, "unsigned"), "prev_content"),
			"membership");
		if (type && key && membership && !strcmp(type, "m.room.member") &&
		    !strcmp(key, mx->user_id) && !strcmp(membership, "join") &&
		    !(before && !strcmp(before, "join")))
			answer_from = i + 1;
		i++;
	}
	i = 0;
	cJSON_ArrayForEach(ev, timeline)
	{
		const char *type = jstr(ev, "type");
		bool answer = !initial && i++ >= answer_from;
		if (!type)
			continue;
		if (jstr(ev, "state_key"))
			apply_state(mx, r, ev, answer ? j : NULL);
		else if (answer && strcmp(type, "m.room.message") == 0)
			on_message(mx, r, ev, j);
		else if (answer && strcmp(type, "m.room.encrypted") == 0) {
			r->encrypted = true;
			tell_encrypted(r, j);
		} else if (strcmp(type, "m.room.message") == 0 ||
			   strcmp(type, "m.room.encrypted") == 0) {
			const char *id = jstr(ev, "event_id");
			if (id)
				seen_before(mx,
					    id); /* history: never answered, even if sent again */
		}
	}
}

static void on_left_room(struct matrix *mx, const char *room_id)
{
	for (size_t i = 0; i < mx->nrooms; i++) {
		if (strcmp(mx->rooms[i]->id, room_id) == 0) {
			room_free(mx->rooms[i]);
			mx->rooms[i] = mx->rooms[--mx->nrooms];
			return;
		}
	}
}

/* Handles one /sync answer; false when it is not one (no next_batch). */
static bool on_sync(struct matrix *mx, const char *body, bool initial)
{
	cJSON *s = cJSON_Parse(body);
	const char *next = jstr(s, "next_batch");
	if (!next) {
		cJSON_Delete(s);
		return false;
	}
	struct batch_job *j = xcalloc(1, sizeof(*j));
	j->mx = mx;
	j->next_batch = xstrdup(next);
	const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(s, "rooms"), *room;
	cJSON_ArrayForEach(room,
			   cJSON_GetObjectItemCaseSensitive(rooms, "invite")) if (room->string)
		on_invite(mx, room->string, room);
	cJSON_ArrayForEach(room, cJSON_GetObjectItemCaseSensitive(
					 rooms, "join")) if (room->string && *room->string == '!')
		on_joined_room(mx, room->string, room, initial, j);
	cJSON_ArrayForEach(room, cJSON_GetObjectItemCaseSensitive(rooms, "leave")) if (room->string)
		on_left_room(mx, room->string);
	if (initial)
		log_info(TAG, "first sync: %zu rooms; earlier messages are not answered",
			 mx->nrooms);
	free(mx->since);
	mx->since = xstrdup(next);
	cJSON_Delete(s);
	submit_batch(mx, j);
	return true;
}

/* ---- the sync thread ---- */

/* Waits ms or until stop; returns false when stopping. */
static bool pause_ms(struct matrix *mx, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L)
		until.tv_sec++, until.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&mx->lock);
	while (!mx->stopping)
		if (pthread_cond_timedwait(&mx->wake, &mx->lock, &until) != 0)
			break;
	bool go_on = !mx->stopping;
	pthread_mutex_unlock(&mx->lock);
	return go_on;
}

/* The wait after `failures` failed requests in a row: doubling from 1 s, jittered, capped. */
static int64_t backoff(int failures)
{
	int64_t ms = 1000;
	for (int i = 1; i < failures && ms < MX_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > MX_BACKOFF_MAX_MS)
		ms = MX_BACKOFF_MAX_MS;
	return ms / 2 + (int64_t)((double)(ms / 2) * random_unit());
}

static struct http_client *make_client(const char *token)
{
	char *auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
	const char *headers[] = {"User-Agent: cohort/0.2", auth};
	struct http_client *h = http_new(TAG, headers, auth ? 2 : 1);
	free(auth);
	return h;
}

/* Replaces *slot with a copy of s (NULL clears it). */
static void set_str(char **slot, const char *s)
{
	free(*slot);
	*slot = s ? xstrdup(s) : NULL;
}

/*
 * Takes the tokens of a /login or /refresh answer j: the access token, the
 * refresh token (a /refresh may leave the old one valid by giving none),
 * when to renew (three quarters into expires_in_ms), the device. Switches
 * the HTTP client to the new token and saves the login in the store.
 * Returns COHORT_OK, or COHORT_ERR_IO when no client can be made.
 */
static int adopt_tokens(struct matrix *mx, const cJSON *j)
{
	const char *token = jstr(j, "access_token"), *refresh = jstr(j, "refresh_token");
	set_str(&mx->token, token);
	log_add_secret(token);
	if (refresh && *refresh) {
		set_str(&mx->refresh_token, refresh);
		log_add_secret(refresh);
	}
	if (jstr(j, "device_id"))
		set_str(&mx->device_id, jstr(j, "device_id"));
	int64_t life;
	mx->refresh_at = json_int(cJSON_GetObjectItemCaseSensitive(j, "expires_in_ms"), 1,
				  INT64_C(1) << 50, &life)
				 ? clock_real_ms() + life / 4 * 3
				 : 0;
	atomic_store(&mx->renewable, mx->refresh_token || *mx->cfg->matrix_password);

	char *auth = xasprintf("Authorization: Bearer %s", token);
	pthread_mutex_lock(&mx->lock);
	if (mx->http)
		http_reauthorize(mx->http, auth);
	else if ((mx->http = make_client(token)) && atomic_load(&mx->renewable))
		http_hold_unauthorized(mx->http);
	bool ok = mx->http != NULL;
	pthread_mutex_unlock(&mx->lock);
	free(auth);

	cJSON *save = cJSON_CreateObject();
	cJSON_AddStringToObject(save, "access_token", token);
	cJSON_AddStringToObject(save, "device_id", mx->device_id ? mx->device_id : "");
	if (mx->refresh_token)
		cJSON_AddStringToObject(save, "refresh_token", mx->refresh_token);
	if (mx->refresh_at)
		cJSON_AddNumberToObject(save, "refresh_at", (double)mx->refresh_at);
	char *text = cJSON_PrintUnformatted(save);
	door_state_save(mx->door, "matrix.login", text);
	cJSON_free(text);
	cJSON_Delete(save);
	return ok ? COHORT_OK : COHORT_ERR_IO;
}

/*
 * POSTs body to an unauthenticated endpoint (/login, /refresh) until it
 * answers: network errors and 5xx are retried with backoff. Returns the
 * parsed 200 answer, or NULL with *status set (0 when stopping).
 */
static cJSON *auth_call(struct matrix *mx, const char *path, const char *body, long *status)
{
	struct http_client *h = make_client(NULL);
	cJSON *out = NULL;
	*status = 0;
	if (!h)
		return NULL;
	char *url = xasprintf("%s" API "%s", mx->hs, path);
	for (int failures = 0; !mx->stopping;) {
		struct http_response r;
		if (!http_fetch(h, "POST", url, body, FETCH_TIMEOUT_MS, &mx->stopping, &r))
			break;
		*status = r.status;
		out = r.status == 200 ? cJSON_Parse(r.body) : NULL;
		bool retry = !out && (r.status == 0 || r.status == 429 || r.status >= 500 ||
				      r.status == 200);
		char why[HTTP_WHY_LEN];
		if (retry)
			log_warn(TAG, "%s failed (%s); retrying", path,
				 http_why(r.error, r.status, why));
		http_response_release(&r);
		if (!retry || !pause_ms(mx, backoff(++failures)))
			break;
	}
	if (mx->stopping)
		*status = 0;
	free(url);
	http_free(h, 0);
	return out;
}

/*
 * A password login (asking for a refresh token, on the device of the last
 * login): keeps the tokens and device in the store for the next start.
 * COHORT_OK (also when stopping), COHORT_ERR_AUTH or COHORT_ERR_IO.
 */
static int login(struct matrix *mx)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "type", "m.login.password");
	cJSON *idf = cJSON_AddObjectToObject(req, "identifier");
	cJSON_AddStringToObject(idf, "type", "m.id.user");
	cJSON_AddStringToObject(idf, "user", mx->cfg->matrix_user_id);
	cJSON_AddStringToObject(req, "password", mx->cfg->matrix_password);
	if (mx->device_id && *mx->device_id)
		cJSON_AddStringToObject(req, "device_id", mx->device_id);
	cJSON_AddStringToObject(req, "initial_device_display_name", "cohort");
	cJSON_AddTrueToObject(req, "refresh_token");
	char *body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	long status;
	cJSON *j = auth_call(mx, "/login", body, &status);
	cJSON_free(body);
	int rc = COHORT_OK;
	if (j && jstr(j, "access_token")) {
		rc = adopt_tokens(mx, j);
		log_info(TAG, "logged in as %s", mx->cfg->matrix_user_id);
	} else if (status) {
		log_error(TAG,
			  "the login as %s was refused (%ld): check matrix.user_id and "
			  "matrix.password",
			  mx->cfg->matrix_user_id, status);
		rc = COHORT_ERR_AUTH;
	}
	cJSON_Delete(j);
	return rc;
}

/* POST /refresh: a new access token for the refresh token. COHORT_OK or COHORT_ERR_AUTH. */
static int refresh(struct matrix *mx)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "refresh_token", mx->refresh_token);
	char *body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	long status;
	cJSON *j = auth_call(mx, "/refresh", body, &status);
	cJSON_free(body);
	int rc = COHORT_OK;
	if (j && jstr(j, "access_token")) {
		rc = adopt_tokens(mx, j);
		log_info(TAG, "renewed the access token with the refresh token");
	} else if (status) {
		log_warn(TAG, "the refresh token was refused (%ld)", status);
		set_str(&mx->refresh_token, NULL);
		rc = COHORT_ERR_AUTH;
	}
	cJSON_Delete(j);
	return rc;
}

/*
 * After a 401 M_UNKNOWN_TOKEN (body, may be NULL) on what: a new access
 * token from the refresh token (unless the server says the device was
 * logged out for good: no soft_logout; tried anyway once the token is due),
 * else from a password login; else the token was revoked for good (logged).
 * COHORT_OK when a request may be tried again; COHORT_ERR_AUTH.
 */
static int renew(struct matrix *mx, const char *what, const char *body)
{
	/* soft_logout false (or absent) in the server's answer: the device was logged out.
	 * No answer to read: the HTTP client held back a request after another one's 401. */
	cJSON *j = body && *body ? cJSON_Parse(body) : NULL;
	bool hard = j && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "soft_logout"));
	cJSON_Delete(j);
	/* A fresh token rejected again at once will not get better by renewing it again. */
	if (++mx->renewals > 2) {
		fatal_token(mx, what);
		return COHORT_ERR_AUTH;
	}
	if (mx->refresh_token && (!hard || (mx->refresh_at && clock_real_ms() >= mx->refresh_at))) {
		if (refresh(mx) == COHORT_OK)
			return COHORT_OK;
	}
	if (*mx->cfg->matrix_password) {
		log_info(TAG, "the access token was rejected on %s; logging in again with "
			      "matrix.password", what);
		return login(mx);
	}
	fatal_token(mx, what);
	return COHORT_ERR_AUTH;
}

/*
 * A request that must succeed before syncing (whoami, the filter): retried
 * with backoff. Returns the parsed answer, or NULL when stopping or fatal.
 */
static cJSON *setup_call(struct matrix *mx, const char *method, const char *url, const char *body,
			 const char *what)
{
	for (int failures = 0; !mx->stopping;) {
		struct http_response r;
		if (!http_fetch(client(mx), method, url, body, FETCH_TIMEOUT_MS, &mx->stopping, &r))
			return NULL;
		cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
		long status = r.status;
		char *error = r.error ? xstrdup(r.error) : NULL;
		if (status == 401) {
			free(error);
			int rc = renew(mx, what, r.body);
			http_response_release(&r);
			if (rc == COHORT_OK)
				continue; /* with the new token */
			mx->rc = rc;
			return NULL;
		}
		http_response_release(&r);
		if (j) {
			free(error);
			mx->renewals = 0;
			return j;
		}
		int64_t wait = backoff(++failures);
		char why[HTTP_WHY_LEN];
		log_warn(TAG, "%s failed (%s); retrying in %lld ms", what,
			 http_why(error, status, why), (long long)wait);
		free(error);
		if (!pause_ms(mx, wait))
			return NULL;
	}
	return NULL;
}

/* The sync filter, with at most limit timeline events per room. */
static char *filter_json(int limit)
{
	cJSON *f = cJSON_CreateObject();
	cJSON *room = cJSON_AddObjectToObject(f, "room");
	cJSON *tl = cJSON_AddObjectToObject(room, "timeline");
	cJSON_AddNumberToObject(tl, "limit", limit);
	const char *tl_types[] = {"m.room.message",	 "m.room.encrypted",  "m.room.member",
				  "m.room.power_levels", "m.room.encryption", "m.room.create"};
	cJSON_AddItemToObject(tl, "types", cJSON_CreateStringArray(tl_types, 6));
	cJSON *st = cJSON_AddObjectToObject(room, "state");
	cJSON_AddItemToObject(st, "types", cJSON_CreateStringArray(tl_types + 2, 4));
	cJSON_AddTrueToObject(st, "lazy_load_members");
	cJSON_AddItemToObject(cJSON_AddObjectToObject(room, "ephemeral"), "types",
			      cJSON_CreateArray());
	cJSON_AddItemToObject(cJSON_AddObjectToObject(room, "account_data"), "types",
			      cJSON_CreateArray());
	cJSON_AddItemToObject(cJSON_AddObjectToObject(f, "presence"), "types", cJSON_CreateArray());
	cJSON_AddItemToObject(cJSON_AddObjectToObject(f, "account_data"), "types",
			      cJSON_CreateArray());
	char *text = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}

/* Renews the access token ahead of its expiry, when the login said when that is. */
static void refresh_if_due(struct matrix *mx)
{
	if (mx->refresh_token && mx->refresh_at && clock_real_ms() >= mx->refresh_at &&
	    refresh(mx) != COHORT_OK)
		mx->refresh_at = 0; /* the token is used until a 401 says otherwise */
}

static int setup(struct matrix *mx)
{
	if (!client(mx)) {
		/* No token yet: a password login makes one. */
		int rc = login(mx);
		if (rc || !client(mx))
			return rc;
	}
	refresh_if_due(mx);

	char *url = xasprintf("%s" API "/account/whoami", mx->hs);
	cJSON *who = setup_call(mx, "GET", url, NULL, "whoami");
	free(url);
	if (!who)
		return mx->rc;
	const char *uid = jstr(who, "user_id");
	mx->user_id = xstrdup(uid ? uid : mx->cfg->matrix_user_id);
	if (uid && strcmp(uid, mx->cfg->matrix_user_id) != 0)
		log_warn(TAG, "the token belongs to %s, not matrix.user_id %s; going on as %s", uid,
			 mx->cfg->matrix_user_id, uid);
	cJSON_Delete(who);
	log_info(TAG, "signed in as %s", mx->user_id);

	char *euid = http_escape(mx->user_id);
	url = xasprintf("%s" API "/user/%s/filter", mx->hs, euid);
	char *filter = filter_json(MX_SYNC_LIMIT);
	cJSON *f = setup_call(mx, "POST", url, filter, "creating the sync filter");
	free(filter);
	free(url);
	free(euid);
	if (!f)
		return mx->rc;
	const char *fid = jstr(f, "filter_id");
	mx->filter_id = http_escape(fid ? fid : "");
	cJSON_Delete(f);
	return COHORT_OK;
}

/*
 * Whether this process may sync now (the sync lease); false after waiting
 * while another process syncs, or when stopping.
 */
static bool wait_for_lease(struct matrix *mx)
{
	char who[256] = "";
	char *since = NULL;
	int64_t retry = 1000;
	bool resume = !mx->syncing;
	if (mx->lease.may_sync(mx->lease.ud, mx->user_id, resume, &since, who, sizeof(who),
			       &retry)) {
		if (resume && since) {
			free(mx->since);
			mx->since = since;
		} else {
			free(since);
		}
		if (mx->standby)
			log_info(TAG, "taking over the sync of %s", mx->user_id);
		mx->syncing = true;
		mx->standby = false;
		return true;
	}
	free(since);
	if (!mx->standby)
		log_info(TAG, "standing by: %s syncs %s; taking over when its lease lapses", who,
			 mx->user_id);
	mx->syncing = false;
	mx->standby = true;
	set_status(mx, "standby");
	pause_ms(mx, retry < 200 ? 200 : retry);
	return false;
}

static void *sync_thread(void *arg)
{
	struct matrix *mx = arg;
	int rc = setup(mx);
	if (rc) {
		set_status(mx, "failed");
		mx->rc = rc;
		door_fail(mx->door, rc);
		return NULL;
	}
	int failures = 0;
	enum { SYNC_FULL, SYNC_CUT, SYNC_SKIP } mode = SYNC_FULL;
	while (!mx->stopping && client(mx)) {
		if (mx->lease.may_sync && !wait_for_lease(mx))
			continue;
		refresh_if_due(mx);
		/*
		 * An answer over HTTP_MAX_BODY (a backlog of large messages in many rooms)
		 * would be asked for again forever. First the same position with a short
		 * timeline per room (the rest of the backlog is not answered, and each room
		 * cut is logged), then, if even that is too large, a sync without a
		 * position: like a first start, nothing before now is answered.
		 */
		bool initial = !mx->since || mode == SYNC_SKIP;
		char *since = initial ? NULL : http_escape(mx->since);
		char *inline_filter = NULL;
		if (mode != SYNC_FULL) {
			char *f = filter_json(mode == SYNC_CUT ? MX_SYNC_CUT_LIMIT : 1);
			inline_filter = http_escape(f);
			free(f);
		}
		char *url =
			xasprintf("%s" API "/sync?filter=%s&timeout=%d&set_presence=offline%s%s",
				  mx->hs, inline_filter ? inline_filter : mx->filter_id,
				  initial ? 0 : MX_SYNC_TIMEOUT_MS, since ? "&since=" : "",
				  since ? since : "");
		free(inline_filter);
		free(since);
		struct http_response r;
		bool ok = http_fetch(client(mx), "GET", url, NULL, MX_SYNC_TIMEOUT_MS + 15000,
				     &mx->stopping, &r);
		free(url);
		if (!ok || mx->stopping) {
			if (ok)
				http_response_release(&r);
			break;
		}
		int64_t wait = 0;
		mx->cut_limit = mode == SYNC_CUT ? MX_SYNC_CUT_LIMIT : 0;
		bool handled = r.status == 200 && on_sync(mx, r.body, initial);
		mx->cut_limit = 0;
		if (handled) {
			if (mode == SYNC_SKIP)
				log_warn(TAG,
					 "skipped ahead to the present: messages sent while the "
					 "sync answer was too large were not answered");
			mode = SYNC_FULL;
			failures = 0;
			mx->renewals = 0;
			set_status(mx, "connected");
		} else if (r.too_large && mode == SYNC_FULL && mx->since) {
			log_warn(
				TAG,
				"/sync failed (the response is larger than the limit of %d MiB: a "
				"backlog of large messages); asking again for the last %d messages "
				"of each room (older ones since the last sync will not be "
				"answered)",
				HTTP_MAX_BODY >> 20, MX_SYNC_CUT_LIMIT);
			mode = SYNC_CUT;
		} else if (r.too_large && mode != SYNC_SKIP) {
			log_error(TAG,
				  "/sync failed (the response is larger than the limit of %d MiB "
				  "even "
				  "so); skipping ahead to the present: nothing sent %s is answered",
				  HTTP_MAX_BODY >> 20,
				  mx->since ? "since the last sync" : "before this start");
			mode = SYNC_SKIP;
		} else if (r.status == 401) {
			rc = renew(mx, "/sync", r.body);
			if (rc) {
				set_status(mx, "failed");
				mx->rc = rc;
				door_fail(mx->door, rc);
				http_response_release(&r);
				break;
			}
		} else if (r.status == 429 && r.retry_after_ms >= 0) {
			wait = r.retry_after_ms;
			log_warn(TAG, "/sync is rate limited; waiting %lld ms", (long long)wait);
		} else {
			wait = backoff(++failures);
			set_status(mx, "reconnecting");
			char why[HTTP_WHY_LEN];
			log_warn(TAG, "/sync failed (%s); retrying in %lld ms",
				 http_why(r.error, r.status, why), (long long)wait);
		}
		http_response_release(&r);
		if (wait && !pause_ms(mx, wait))
			break;
	}
	return NULL;
}

/* ---- the adapter interface ---- */

static int mx_start(void *self)
{
	struct matrix *mx = self;
	/* Replies refused with an expired token wait for the sync thread to renew it. */
	if (client(mx) && atomic_load(&mx->renewable))
		http_hold_unauthorized(client(mx));
	if (thread_start(&mx->thread, sync_thread, mx)) {
		log_error(TAG, "cannot start the sync thread");
		return COHORT_ERR_IO;
	}
	mx->started = true;
	return COHORT_OK;
}

static void mx_stop(void *self)
{
	struct matrix *mx = self;
	pthread_mutex_lock(&mx->lock);
	mx->stopping = true;
	pthread_cond_broadcast(&mx->wake);
	pthread_mutex_unlock(&mx->lock);
}

static int mx_join(void *self)
{
	struct matrix *mx = self;
	if (!mx->started)
		return COHORT_OK;
	pthread_join(mx->thread, NULL);
	mx->started = false;
	if (!mx->rc)
		set_status(mx, "stopped");
	return mx->rc;
}

/* The content field that carries a digest's key: a later look-up recognises it by this. */
#define DIGEST_KEY_FIELD "org.cohort.digest_key"
/* The room's latest messages from the bot looked through before a re-send. */
#define MX_LOOKBACK 50

/* True when a GET .../messages answer holds an event from user carrying key. */
static bool has_digest(const char *body, const char *user, const char *key)
{
	cJSON *j = cJSON_Parse(body);
	const cJSON *ev;
	bool found = false;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(j, "chunk"))
	{
		const char *sender = jstr(ev, "sender");
		const char *k = jstr(cJSON_GetObjectItemCaseSensitive(ev, "content"), DIGEST_KEY_FIELD);
		found |= sender && k && !strcmp(sender, user) && !strcmp(k, key);
	}
	cJSON_Delete(j);
	return found;
}

/* The look-up before a re-send: the earlier event counts as sent; else send. Worker. */
static void looked_up(void *ud, const struct http_response *r)
{
	struct post_ctx *c = ud;
	struct matrix *mx = c->mx;
	if (r->status == 200 && has_digest(r->body, mx->cfg->matrix_user_id, c->key)) {
		log_info(TAG, "the digest %s was posted already (its answer was lost); not posting "
			      "it again", c->key);
		door_digest_sent(mx->door, c->key, COHORT_OK);
		post_ctx_free(c);
		return;
	}
	if (r->status != 200)
		check_answer(mx, "looking for an earlier post of the digest", r);
	struct http_client *h = client(mx);
	struct http_request rq = {"PUT", c->url, c->body, c->queue, 0, digest_sent, c};
	http_submit(h, &rq);
}

static int mx_post(void *self, const char *group_id, const char *channel_id, const struct reply *r,
		   const char *idem_key)
{
	struct matrix *mx = self;
	(void)group_id;
	/* `cohort digest --post` runs no sync thread to renew a token that expired meanwhile. */
	if (!mx->started)
		refresh_if_due(mx);
	struct http_client *h = client(mx);
	if (!h)
		return COHORT_ERR_NETWORK;
	char *text = mx_render_content(r, NULL, MX_MAX_CONTENT - 64); /* room for the key */
	cJSON *content = cJSON_Parse(text);
	free(text);
	cJSON_AddStringToObject(content, DIGEST_KEY_FIELD, idem_key);
	text = cJSON_PrintUnformatted(content);
	cJSON_Delete(content);
	struct post_ctx *c = xcalloc(1, sizeof(*c));
	c->mx = mx;
	snprintf(c->key, sizeof(c->key), "%s", idem_key);
	c->body = xstrdup(text);
	cJSON_free(text);
	char *eroom = http_escape(channel_id), *etxn = http_escape(idem_key);
	/* The digest's transaction id is its idempotency key: a re-send is the same event
	 * while the homeserver remembers the transaction (Synapse: about half an hour, for
	 * one access token, and not across its restarts). */
	c->url = xasprintf("%s" API "/rooms/%s/send/m.room.message/%s", mx->hs, eroom, etxn);
	c->queue = xasprintf("room:%s", channel_id);
	int64_t now = door_now(mx->door);
	if (attempts_first(mx->door, "matrix.digest_attempts", idem_key, now) < now) {
		/* A re-send: look among the bot's latest messages in the room first. */
		log_info(TAG, "re-sending the digest %s: looking for an earlier post first",
			 idem_key);
		cJSON *f = cJSON_CreateObject();
		const char *types[] = {"m.room.message"}, *senders[] = {mx->cfg->matrix_user_id};
		cJSON_AddItemToObject(f, "types", cJSON_CreateStringArray(types, 1));
		cJSON_AddItemToObject(f, "senders", cJSON_CreateStringArray(senders, 1));
		cJSON_AddNumberToObject(f, "limit", MX_LOOKBACK);
		char *ftext = cJSON_PrintUnformatted(f);
		char *efilter = http_escape(ftext);
		char *url = xasprintf("%s" API "/rooms/%s/messages?dir=b&limit=%d&filter=%s",
				      mx->hs, eroom, MX_LOOKBACK, efilter);
		struct http_request rq = {"GET", url, NULL, c->queue, 0, looked_up, c};
		http_submit(h, &rq);
		free(url);
		free(efilter);
		cJSON_free(ftext);
		cJSON_Delete(f);
	} else {
		struct http_request rq = {"PUT", c->url, c->body, c->queue, 0, digest_sent, c};
		http_submit(h, &rq);
	}
	free(eroom);
	free(etxn);
	return COHORT_ERR_PENDING;
}

/* A reminder on its way to a member's direct room (made first when there is none). */
struct dm_ctx {
	struct matrix *mx;
	char key[20];
	char *user, *body;
};

static void dm_ctx_free(struct dm_ctx *c)
{
	free(c->user);
	free(c->body);
	free(c);
}

/* The adapter-state key of the direct room with user (a new string). */
static char *dm_state_key(const char *user)
{
	return xasprintf("matrix.dm:%s", user);
}

static void dm_sent(void *ud, const struct http_response *r)
{
	struct dm_ctx *c = ud;
	check_answer(c->mx, "sending a reminder", r);
	if (r->status >= 200 && r->status < 300)
		log_debug(TAG, "reminder %s delivered to %s", c->key, c->user);
	dm_ctx_free(c);
}

/* Sends the reminder to room, its transaction id the reminder's key. Any thread. */
static void dm_send(struct dm_ctx *c, const char *room)
{
	struct http_client *h = client(c->mx);
	if (!h) {
		dm_ctx_free(c);
		return;
	}
	char *eroom = http_escape(room), *etxn = http_escape(c->key);
	char *url = xasprintf("%s" API "/rooms/%s/send/m.room.message/%s", c->mx->hs, eroom, etxn);
	char *queue = xasprintf("room:%s", room);
	struct http_request rq = {"PUT", url, c->body, queue, 0, dm_sent, c};
	http_submit(h, &rq);
	free(url);
	free(queue);
	free(eroom);
	free(etxn);
}

/* POST /createRoom answered: the new direct room is remembered, then used. Worker. */
static void dm_created(void *ud, const struct http_response *r)
{
	struct dm_ctx *c = ud;
	cJSON *j = r->status == 200 ? cJSON_Parse(r->body) : NULL;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "room_id");
	if (!cJSON_IsString(id) || id->valuestring[0] != '!') {
		if (r->status == 200)
			log_warn(TAG, "creating a direct room with %s: no room_id in the answer",
				 c->user);
		else
			check_answer(c->mx, "creating a direct room for a reminder", r);
		cJSON_Delete(j);
		dm_ctx_free(c);
		return;
	}
	char *key = dm_state_key(c->user);
	door_state_save(c->mx->door, key, id->valuestring);
	free(key);
	log_info(TAG, "made the direct room %s with %s for their reminders", id->valuestring,
		 c->user);
	dm_send(c, id->valuestring);
	cJSON_Delete(j);
}

static int mx_remind(void *self, const char *group_id, const char *member_id, const struct reply *r,
		     const char *idem_key)
{
	struct matrix *mx = self;
	const char *user = strncmp(member_id, "matrix:", 7) == 0 ? member_id + 7 : "";
	if (user[0] != '@' || !strchr(user, ':')) {
		log_warn(TAG, "a reminder in %s for '%s', who is not a Matrix user", group_id,
			 member_id);
		return COHORT_ERR_USAGE;
	}
	struct http_client *h = client(mx);
	if (!h)
		return COHORT_ERR_NETWORK;
	char *key = dm_state_key(user), *room = NULL;
	if (door_state_get(mx->door, key, &room)) {
		free(key);
		return COHORT_ERR_STORE;
	}
	free(key);
	struct dm_ctx *c = xcalloc(1, sizeof(*c));
	c->mx = mx;
	snprintf(c->key, sizeof(c->key), "%s", idem_key);
	c->user = xstrdup(user);
	c->body = mx_render_content(r, NULL, MX_MAX_CONTENT);
	if (room) {
		dm_send(c, room); /* the direct room made for an earlier reminder */
		free(room);
		return COHORT_ERR_PENDING;
	}
	cJSON *req = cJSON_CreateObject();
	cJSON_AddTrueToObject(req, "is_direct");
	cJSON_AddStringToObject(req, "preset", "trusted_private_chat");
	const char *invite[] = {user};
	cJSON_AddItemToObject(req, "invite", cJSON_CreateStringArray(invite, 1));
	char *text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	char *url = xasprintf("%s" API "/createRoom", mx->hs);
	struct http_request rq = {"POST", url, text, "createRoom", 0, dm_created, c};
	http_submit(h, &rq);
	free(url);
	cJSON_free(text);
	return COHORT_ERR_PENDING;
}

static void mx_status(void *self, struct adapter_status *out)
{
	struct matrix *mx = self;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&mx->lock);
	out->state = mx->status;
	out->since = mx->status_since;
	out->last_event = mx->last_event;
	out->commands = mx->commands;
	out->reconnects = mx->reconnects;
	struct http_client *h = mx->http;
	pthread_mutex_unlock(&mx->lock);
	http_fill_status(h, out);
}

static void mx_free(void *self)
{
	struct matrix *mx = self;
	if (!mx)
		return;
	http_free(mx->http, 5000);
	for (size_t i = 0; i < mx->nrooms; i++)
		room_free(mx->rooms[i]);
	free(mx->rooms);
	free(mx->token);
	free(mx->refresh_token);
	free(mx->device_id);
	free(mx->user_id);
	free(mx->filter_id);
	free(mx->since);
	free(mx->hs);
	idset_free(mx->seen);
	pthread_mutex_destroy(&mx->lock);
	pthread_cond_destroy(&mx->wake);
	free(mx);
}

/* Delivers an answer owed (outbox_deliver_fn): with the transaction id chosen when it was written. */
static int mx_deliver(void *ud, int64_t id, const char *address, const struct reply *r,
		      int64_t age_ms)
{
	struct matrix *mx = ud;
	cJSON *a = cJSON_Parse(address);
	const char *room = jstr(a, "room"), *reply_to = jstr(a, "reply_to"), *txn = jstr(a, "txn");
	int rc = COHORT_ERR_PENDING;
	if (!room || !txn) {
		log_error(TAG, "answer %lld has no room or transaction id; dropping it",
			  (long long)id);
		rc = COHORT_ERR_USAGE;
	} else if (age_ms > MX_ANSWER_MAX_AGE_MS) {
		log_warn(TAG, "the answer to %s in %s is %lld min old (the limit is %d): dropped, "
			      "not sent late",
			 reply_to ? reply_to : "a command", room, (long long)(age_ms / 60000),
			 MX_ANSWER_MAX_AGE_MS / 60000);
		rc = COHORT_ERR_USAGE;
	} else {
		struct answer_ctx *c = xmalloc(sizeof(*c));
		*c = (struct answer_ctx){mx, id};
		if (send_notice(mx, room, r, reply_to, txn, answer_sent, c)) {
			free(c);
			rc = COHORT_ERR_NETWORK; /* no client yet: a later sweep */
		}
	}
	cJSON_Delete(a);
	return rc;
}

static const struct adapter_ops matrix_ops = {
	"matrix", mx_start, mx_stop, mx_join, mx_post, mx_status, mx_free, mx_remind,
};

void matrix_set_sync_lease(struct adapter *a, const struct mx_sync_lease *l)
{
	struct matrix *mx = a->self;
	mx->lease = *l;
}

int matrix_new(const struct config *cfg, struct door *door, struct adapter *out)
{
	struct matrix *mx = xcalloc(1, sizeof(*mx));
	mx->cfg = cfg;
	mx->door = door;
	mx->seen = idset_new();
	mx->hs = xstrdup(cfg->matrix_homeserver);
	size_t n = strlen(mx->hs);
	while (n && mx->hs[n - 1] == '/')
		mx->hs[--n] = '\0';
	pthread_mutex_init(&mx->lock, NULL);
	pthread_cond_init(&mx->wake, NULL);
	mx->txn_base = clock_real_ms();
	mx->status = "starting";
	mx->status_since = mx->txn_base;

	char *value = NULL;
	if (door_state_get(door, "matrix.login", &value) == COHORT_OK && value) {
		/* The last login's device is reused by the next one, whichever token is used. */
		cJSON *j = cJSON_Parse(value);
		const char *t = jstr(j, "access_token"), *rt = jstr(j, "refresh_token");
		int64_t at;
		if (jstr(j, "device_id") && *jstr(j, "device_id"))
			mx->device_id = xstrdup(jstr(j, "device_id"));
		if (t && *t && !*cfg->matrix_access_token) {
			mx->token = xstrdup(t);
			log_add_secret(t);
			if (rt && *rt) {
				mx->refresh_token = xstrdup(rt);
				log_add_secret(rt);
			}
			if (json_int(cJSON_GetObjectItemCaseSensitive(j, "refresh_at"), 1,
				     INT64_C(1) << 53, &at))
				mx->refresh_at = at;
		}
		cJSON_Delete(j);
	}
	if (*cfg->matrix_access_token)
		mx->token = xstrdup(cfg->matrix_access_token);
	atomic_store(&mx->renewable, mx->refresh_token || *cfg->matrix_password);
	free(value);
	value = NULL;
	/* With a token the client exists from the start: `cohort digest --post` needs no sync. */
	if (mx->token && !(mx->http = make_client(mx->token))) {
		mx_free(mx);
		return COHORT_ERR_IO;
	}
	if (door_state_get(door, "matrix.next_batch", &value) == COHORT_OK && value && *value)
		mx->since = value;
	else
		free(value);
	door_add_sender(door, "matrix", mx_deliver, mx);
	*out = (struct adapter){&matrix_ops, mx};
	return COHORT_OK;
}

bool matrix_feed_sync(struct adapter *a, const char *body)
{
	struct matrix *mx = a->self;
	if (!mx->user_id)
		mx->user_id = xstrdup(mx->cfg->matrix_user_id);
	return on_sync(mx, body, false);
}
