#include "discord.h"

#include "adapters/attempts.h"
#include "adapters/http.h"
#include "adapters/idset.h"
#include "adapters/json.h"
#include "bot/bot.h"
#include "bot/cmdline.h"
#include "bot/config.h"
#include "bot/scheduler.h"
#include "gateway.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "render.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG "discord"
#define VERSION "0.2.0"
#define MAX_OPTION 65536 /* longer option values are dropped; the bot rejects long ones */
/*
 * How old an answer owed may be and still be sent (issue 18). An
 * interaction's token is valid for 15 minutes: after that nothing can
 * answer it (a margin keeps a send from arriving after it expired). A
 * prefix command's reply is held to the same limit: later, it answers a
 * question the channel has moved on from.
 */
#define DC_ANSWER_MAX_AGE_MS (15 * 60 * 1000 - 30 * 1000)
/* How long Discord's enforce_nonce keeps a digest from posting twice ("a few minutes"):
 * a re-send after that first looks for the earlier post. */
#define DC_NONCE_WINDOW_MS (2 * 60 * 1000)
/* The bot's recent messages looked through for an earlier post (Discord's maximum). */
#define DC_LOOKBACK 50
/* How often the deferral timer looks for interactions to defer. */
#define DC_TIMER_MS 50

/* Permission bits that make a member a cohort admin. */
#define PERM_ADMINISTRATOR (1ULL << 3)
#define PERM_MANAGE_GUILD (1ULL << 5)
/* What the digest needs in its channel (the bot's own permissions there). */
#define PERM_VIEW_CHANNEL (1ULL << 10)
#define PERM_SEND_MESSAGES (1ULL << 11)
#define PERM_EMBED_LINKS (1ULL << 14)
#define PERM_READ_MESSAGE_HISTORY (1ULL << 16)
#define PERM_SEND_MESSAGES_IN_THREADS (1ULL << 38)

enum ix_type { IX_COMMAND = 2, IX_AUTOCOMPLETE = 4 };
enum cb_type { CB_MESSAGE = 4, CB_DEFERRED = 5, CB_AUTOCOMPLETE = 8 };

/* An interaction waiting for its answer. */
struct pending {
	char *id, *token;
	int64_t at;
	bool deferred, personal;
	struct dc_responder resp; /* came over HTTP: the answer (or deferral) goes here once */
	/* Over HTTP: the type 5 response is not written yet, and the edit that must follow
	 * it waits here (deferral_written()). */
	bool in_flight;
	cJSON *edit;
	http_done_fn *edit_done; /* and where its outcome goes */
	void *edit_ud;
	struct pending *next;
};

/* One gateway connection (shard); the shards share the manager thread's loop. */
struct shard {
	struct discord *dc;
	size_t index; /* in dc->shards */
	int id;
	struct gw *gw;
};

struct discord {
	const struct config *cfg;
	struct door *door; /* the bot: events, state, the clock (borrowed) */
	struct http_client *http;
	discord_rate_fn *rate; /* the shared global limit, or NULL */
	void *rate_ud;
	struct gw_starts *starts; /* IDENTIFY pacing shared by the shards */
	pthread_t manager;        /* GET /gateway/bot, then runs the shards' loop */
	pthread_t timer;          /* defers the interactions that wait (timer_thread()) */
	bool started;
	int rc;
	atomic_bool cancel; /* cuts the start-up GET /gateway/bot short */
	cJSON *saved; /* the sessions the last runs saved: {"ID": {"count": N, …}} */
	struct shard feed; /* discord_feed()'s gateway */

	pthread_mutex_t lock;
	pthread_cond_t wake; /* dc_stop() */
	bool stopping;       /* under lock */
	const char *state;   /* under lock: before the shards run ("starting", "failed") */
	int64_t state_since; /* under lock */
	/* Set under lock before the shard threads start, fixed from then on. */
	struct shard *shards;
	size_t n_shards;
	int shard_count; /* 0: not known yet (every guild is ours) */

	/* Under lock: shared by the shards' threads. */
	char app_id[32], self_id[32];
	bool registered;
	struct strlist command_guilds; /* guilds given commands by an earlier run (the store) */
	struct idset *seen; /* interaction and message ids, against replays */

	struct pending *pending; /* under lock */
	char *app_id_shared;     /* under lock: for edits from the dispatcher thread */
	char *self_id_shared;    /* under lock: the bot's user id, for the digest look-up */
	int64_t last_event;      /* under lock */
	unsigned long commands;  /* under lock */
};

/* ---- helpers ---- */

static const char *jstr(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A Discord id (snowflake): 1 to 20 digits. */
static bool snowflake(const char *s)
{
	size_t n = s ? strspn(s, "0123456789") : 0;
	return n > 0 && n <= 20 && !s[n];
}

/* An interaction token: URL-safe characters only, so it can go into a path. */
static bool url_token(const char *s)
{
	size_t n = s ? strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				 "-_.")
		     : 0;
	return n > 0 && n <= 500 && !s[n];
}

static bool seen_before(struct discord *dc, const char *id)
{
	pthread_mutex_lock(&dc->lock);
	bool seen = idset_seen(dc->seen, id);
	pthread_mutex_unlock(&dc->lock);
	return seen;
}

/* The shard Discord sends guild's events to: (guild_id >> 22) % count; a DM (no guild) is 0. */
static int shard_of(const char *guild, int count)
{
	if (!guild || count <= 1)
		return 0;
	return (int)((strtoull(guild, NULL, 10) >> 22) % (unsigned long long)count);
}

/* True when this process runs the shard of guild (always before the shards are known). */
static bool owns_guild(struct discord *dc, const char *guild, int *shard)
{
	*shard = 0;
	if (!dc->shard_count)
		return true;
	*shard = shard_of(guild, dc->shard_count);
	for (size_t i = 0; i < dc->n_shards; i++)
		if (dc->shards[i].id == *shard)
			return true;
	return false;
}

static void post_json(struct discord *dc, const char *method, const char *url, cJSON *body,
		      const char *queue, http_done_fn *done, void *ud)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	struct http_request rq = {method, url, text, queue, 0, done, ud};
	http_submit(dc->http, &rq);
	cJSON_free(text);
	cJSON_Delete(body);
}

/* What a REST answer means for the adapter: a 401 stops it; other failures are logged. */
static void check_answer(struct discord *dc, const char *what, const struct http_response *r)
{
	if (r->status >= 200 && r->status < 300)
		return;
	if (r->status == 401) {
		log_error(TAG,
			  "the bot token was rejected (401 on %s): copy a fresh token from the "
			  "Developer Portal (Bot > Reset Token) into discord.token or "
			  "COHORT_DISCORD_TOKEN",
			  what);
		door_fail(dc->door, COHORT_ERR_AUTH);
		return;
	}
	if (r->status == 0)
		log_warn(TAG, "%s failed: %s", what, r->error ? r->error : "no answer");
	else
		log_warn(TAG, "%s failed with status %ld: %.200s", what, r->status, r->body);
}

static void answered(void *ud, const struct http_response *r)
{
	check_answer(ud, "answering an interaction", r);
}

/* An answer from the outbox being sent, and what is needed to send it after a look-up. */
struct answer_ctx {
	struct discord *dc;
	int64_t id;
	bool interaction; /* else a prefix command's reply */
	char *what;       /* the interaction id, or the message replied to */
	char *url, *queue, *body;
};

static void answer_ctx_free(struct answer_ctx *c)
{
	free(c->what);
	free(c->url);
	free(c->queue);
	free(c->body);
	free(c);
}

static struct answer_ctx *answer_ctx_new(struct discord *dc, int64_t id, bool interaction,
					 const char *what)
{
	struct answer_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	c->id = id;
	c->interaction = interaction;
	c->what = xstrdup(what);
	return c;
}

/* Sends or resends: the outcome is reported to the outbox. Worker thread. */
static void answer_done(void *ud, const struct http_response *r)
{
	struct answer_ctx *c = ud;
	enum answer_outcome o = ANSWER_RETRY;
	if (r->status >= 200 && r->status < 300) {
		o = ANSWER_SENT;
	} else if (c->interaction && c->url && r->status == 404) {
		/* A late answer's follow-up or edit: the interaction is gone. */
		log_warn(TAG, "the answer to interaction %s can no longer be made (Discord no "
			      "longer knows it: its token expired, or it was never acknowledged); "
			      "dropped",
			 c->what);
		o = ANSWER_DROPPED;
	} else if (c->url && r->status >= 400 && r->status < 500 && r->status != 401 &&
		   r->status != 429) {
		check_answer(c->dc, "sending an answer", r);
		o = ANSWER_DROPPED; /* refused (no access to the channel any more ...) */
	} else {
		check_answer(c->dc, c->interaction ? "answering an interaction" : "replying", r);
	}
	door_answer_sent(c->dc->door, c->id, o);
	answer_ctx_free(c);
}

/* ---- answers (dispatcher thread) ---- */

static struct pending *find_pending(struct discord *dc, const char *id)
{
	for (struct pending *p = dc->pending; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static struct pending *take_pending(struct discord *dc, const char *id)
{
	for (struct pending **p = &dc->pending; *p; p = &(*p)->next) {
		if (strcmp((*p)->id, id) == 0) {
			struct pending *x = *p;
			*p = x->next;
			return x;
		}
	}
	return NULL;
}

static void pending_free(struct pending *p)
{
	if (p->resp.send && p->resp.drop)
		p->resp.drop(p->resp.ctx); /* never answered (shutdown) */
	if (p->edit && p->edit_done == answer_done)
		answer_ctx_free(p->edit_ud); /* never sent (shutdown): the outbox has it still */
	cJSON_Delete(p->edit);
	free(p->id);
	free(p->token);
	free(p);
}

/* Answers an interaction that came over HTTP with body (freed); the responder is used up. */
static void respond_then(struct dc_responder *r, int status, cJSON *body,
			 void (*written)(void *ud, bool ok), void *ud)
{
	char *text = cJSON_PrintUnformatted(body);
	r->send(r->ctx, status, text, written, ud);
	r->send = NULL;
	r->drop = NULL;
	cJSON_free(text);
	cJSON_Delete(body);
}

static void respond_status(struct dc_responder *r, int status, cJSON *body)
{
	respond_then(r, status, body, NULL, NULL);
}

static void respond(struct dc_responder *r, cJSON *body)
{
	respond_status(r, 200, body);
}

/* Edits a deferred interaction's @original with msg (handed over). Under dc->lock. */
static void edit_original(struct discord *dc, const struct pending *p, cJSON *msg,
			  http_done_fn *done, void *ud)
{
	const char *app = dc->app_id_shared ? dc->app_id_shared : "0";
	char *url = xasprintf("%s/webhooks/%s/%s/messages/@original", dc->cfg->discord_api_url,
			      app, p->token);
	char *queue = xasprintf("ix:%s", p->id);
	cJSON_DeleteItemFromObject(msg, "flags"); /* fixed by the deferral */
	post_json(dc, "PATCH", url, msg, queue, done, ud);
	free(url);
	free(queue);
}

/* Which interaction's type 5 HTTP response deferral_written() hears about. */
struct deferral {
	struct discord *dc;
	char *id;
};

/*
 * The type 5 response of an interaction that came over HTTP is written (or
 * never will be): the edit that waited for it goes now. Discord refuses an
 * edit of an interaction it has not seen acknowledged, and the answer is lost.
 */
static void deferral_written(void *ud, bool ok)
{
	struct deferral *w = ud;
	struct discord *dc = w->dc;
	if (!ok)
		log_warn(TAG, "the deferral of interaction %s was not delivered (its connection "
			      "closed first); its answer edits it all the same", w->id);
	pthread_mutex_lock(&dc->lock);
	struct pending *p = find_pending(dc, w->id);
	if (p) {
		p->in_flight = false;
		if (p->edit) {
			p = take_pending(dc, w->id);
			edit_original(dc, p, p->edit, p->edit_done, p->edit_ud);
			p->edit = NULL;
		} else {
			p = NULL; /* the answer is still to come: answer() edits */
		}
	}
	pthread_mutex_unlock(&dc->lock);
	if (p)
		pending_free(p);
	free(w->id);
	free(w);
}

/*
 * An interaction that came over HTTP and that the store had seen (a replay to
 * this or another process): its HTTP call, if still open, is refused. Nothing
 * goes to Discord: @original belongs to the first delivery's answer.
 */
static void refuse_replay(struct discord *dc, const char *id)
{
	pthread_mutex_lock(&dc->lock);
	struct pending *p = take_pending(dc, id);
	if (p && p->resp.send) {
		cJSON *body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "error", "this interaction was answered already");
		respond_status(&p->resp, 400, body);
	}
	pthread_mutex_unlock(&dc->lock);
	if (p)
		pending_free(p);
}

/*
 * Sends a finished message as the interaction's answer: the callback, or an
 * edit if deferred. The outcome goes to the outbox as answer oid (0: none).
 */
static void answer(struct discord *dc, const char *id, cJSON *msg, int64_t oid)
{
	/* On the live path any failure is a retry: the late path decides what can still be done. */
	void *ud = oid ? (void *)answer_ctx_new(dc, oid, true, id) : (void *)dc;
	http_done_fn *done = oid ? answer_done : answered;
	pthread_mutex_lock(&dc->lock);
	struct pending *p = find_pending(dc, id);
	if (p && p->in_flight && !p->edit) {
		/* Its type 5 HTTP response is not written yet: the edit waits for it. */
		p->edit = msg;
		p->edit_done = done;
		p->edit_ud = ud;
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	p = take_pending(dc, id);
	if (p && p->deferred) {
		/* Over the gateway the deferral is queued first in the same REST queue; over
		 * HTTP its response was written (deferral_written()): the edit follows it. */
		edit_original(dc, p, msg, done, ud);
		msg = NULL;
	} else if (p && p->resp.send) {
		cJSON *body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "type", CB_MESSAGE);
		cJSON_AddItemToObject(body, "data", msg);
		respond(&p->resp, body);
		msg = NULL;
		if (oid) {
			/* In the HTTP response: handed over, the outcome is not ours to see. */
			answer_ctx_free(ud);
			door_answer_sent(dc->door, oid, ANSWER_SENT);
		}
	} else if (p) {
		char *url = xasprintf("%s/interactions/%s/%s/callback", dc->cfg->discord_api_url,
				      id, p->token);
		char *queue = xasprintf("ix:%s", id);
		cJSON *body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "type", CB_MESSAGE);
		cJSON_AddItemToObject(body, "data", msg);
		post_json(dc, "POST", url, body, queue, done, ud);
		free(url);
		free(queue);
		msg = NULL;
	}
	pthread_mutex_unlock(&dc->lock);
	cJSON_Delete(msg);
	if (p) {
		pending_free(p);
	} else if (oid) {
		answer_ctx_free(ud);
		door_answer_sent(dc->door, oid, ANSWER_RETRY); /* the late path sends it */
	}
}

/* True when interaction id came over HTTP (its answer goes in the response). */
static bool over_http(struct discord *dc, const char *id)
{
	pthread_mutex_lock(&dc->lock);
	bool http = false;
	for (struct pending *p = dc->pending; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			http = p->resp.send != NULL;
	pthread_mutex_unlock(&dc->lock);
	return http;
}

/* Forgets an interaction that gets no answer now (the outbox has it, or it was delivered). */
static void forget_pending(struct discord *dc, const char *id)
{
	pthread_mutex_lock(&dc->lock);
	struct pending *p = take_pending(dc, id);
	pthread_mutex_unlock(&dc->lock);
	if (p)
		pending_free(p);
}

/* A prefix command's reply to message reply_to, with its nonce (a new object). */
static cJSON *reply_message(const struct reply *r, const char *reply_to)
{
	cJSON *msg = dc_render_message(r, false);
	cJSON *ref = cJSON_AddObjectToObject(msg, "message_reference");
	cJSON_AddStringToObject(ref, "message_id", reply_to);
	cJSON_AddFalseToObject(ref, "fail_if_not_exists");
	cJSON_AddFalseToObject(cJSON_GetObjectItemCaseSensitive(msg, "allowed_mentions"),
			       "replied_user");
	/* With enforce_nonce, Discord answers a repeated nonce with the earlier message. */
	char nonce[32];
	snprintf(nonce, sizeof(nonce), "r%s", reply_to);
	cJSON_AddStringToObject(msg, "nonce", nonce);
	cJSON_AddTrueToObject(msg, "enforce_nonce");
	return msg;
}

/*
 * An answer's address in the outbox (a new string): an interaction's id, token
 * and application, or a prefix command's channel and message (its reply's
 * nonce is made from the message id, so every send of it carries the same one).
 */
static char *answer_address(const char *ix, const char *token, const char *app,
			    const char *channel, const char *reply_to)
{
	cJSON *a = cJSON_CreateObject();
	if (ix) {
		cJSON_AddStringToObject(a, "interaction", ix);
		cJSON_AddStringToObject(a, "token", token);
		if (app && snowflake(app))
			cJSON_AddStringToObject(a, "app", app);
	} else {
		cJSON_AddStringToObject(a, "channel", channel);
		cJSON_AddStringToObject(a, "reply_to", reply_to);
	}
	char *text = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}



/* Where a command's answer goes: an interaction, or a message to reply to. */
struct command_ctx {
	struct discord *dc;
	char *interaction;              /* the interaction id, or NULL for a text command */
	char *reply_channel, *reply_to; /* a text command: where to answer */
};

static void command_ctx_free(void *arg)
{
	struct command_ctx *c = arg;
	free(c->interaction);
	free(c->reply_channel);
	free(c->reply_to);
	free(c);
}

/* The answer sink of a command (dispatcher thread). */
static void command_answered(void *arg, const struct door_answer *a)
{
	struct command_ctx *c = arg;
	struct discord *dc = c->dc;
	pthread_mutex_lock(&dc->lock);
	dc->commands++;
	pthread_mutex_unlock(&dc->lock);
	if (c->interaction && !a->reply) {
		refuse_replay(dc, c->interaction); /* door_submit_once(): seen before */
		return;
	}
	/*
	 * Answered before: a replay whose answer is owed gets nothing (the outbox
	 * sends that answer), nor a gateway replay whose answer was delivered; one
	 * over HTTP needs an answer to its request, and is told it was handled.
	 */
	if (a->rc == COHORT_ERR_PENDING ||
	    (a->rc == COHORT_ERR_DUPLICATE && !a->answer_id &&
	     !(c->interaction && over_http(dc, c->interaction)))) {
		if (c->interaction)
			forget_pending(dc, c->interaction);
		return;
	}
	if (c->interaction) {
		answer(dc, c->interaction, dc_render_message(a->reply, true), a->answer_id);
	} else {
		cJSON *msg = reply_message(a->reply, c->reply_to);
		char *url = xasprintf("%s/channels/%s/messages", dc->cfg->discord_api_url,
				      c->reply_channel);
		char *queue = xasprintf("channel:%s", c->reply_channel);
		if (a->answer_id) {
			struct answer_ctx *s = answer_ctx_new(dc, a->answer_id, false, c->reply_to);
			s->url = xstrdup(url); /* a refusal is final */
			post_json(dc, "POST", url, msg, queue, answer_done, s);
		} else {
			post_json(dc, "POST", url, msg, queue, answered, dc);
		}
		free(url);
		free(queue);
	}
}

struct complete_ctx {
	struct discord *dc;
	char *id, *token;
	struct dc_responder resp; /* came over HTTP: answered here */
};

static void complete_ctx_free(void *arg)
{
	struct complete_ctx *c = arg;
	if (c->resp.send && c->resp.drop)
		c->resp.drop(c->resp.ctx); /* never answered (shutdown) */
	free(c->id);
	free(c->token);
	free(c);
}

/* The answer sink of an autocomplete request (dispatcher thread). */
static void completed(void *arg, const struct door_answer *a)
{
	struct complete_ctx *c = arg;
	cJSON *body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "type", CB_AUTOCOMPLETE);
	cJSON_AddItemToObject(body, "data", dc_render_choices(a->choices, a->n_choices));
	if (c->resp.send) {
		respond(&c->resp, body);
		return;
	}
	char *url = xasprintf("%s/interactions/%s/%s/callback", c->dc->cfg->discord_api_url, c->id,
			      c->token);
	char *queue = xasprintf("ix:%s", c->id);
	post_json(c->dc, "POST", url, body, queue, answered, c->dc);
	free(url);
	free(queue);
}

/* ---- interactions (gateway thread) ---- */

/* The string value of option name, or NULL. */
static const char *option_value(const cJSON *options, const char *name)
{
	const cJSON *o;
	cJSON_ArrayForEach(o, options)
	{
		if (jstr(o, "name") && strcmp(jstr(o, "name"), name) == 0) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
			if (cJSON_IsString(v) && strlen(v->valuestring) <= MAX_OPTION)
				return v->valuestring;
		}
	}
	return NULL;
}

/* Answers an interaction at once with a message the adapter made itself (ephemeral). */
static void answer_now(struct discord *dc, const char *id, const char *token,
		       const struct dc_responder *resp, const char *title, const char *line)
{
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_ERROR, "%s", title);
	reply_line(&r, "%s", line);
	r.ephemeral = true;
	pthread_mutex_lock(&dc->lock);
	struct pending *p = xcalloc(1, sizeof(*p));
	p->id = xstrdup(id);
	p->token = xstrdup(token);
	p->at = clock_real_ms();
	if (resp)
		p->resp = *resp;
	p->next = dc->pending;
	dc->pending = p;
	pthread_mutex_unlock(&dc->lock);
	answer(dc, id, dc_render_message(&r, true), 0);
	reply_release(&r);
}

/*
 * What the bot lacks to post the digest in the interaction's channel, from
 * app_permissions (its permissions there, sent with every interaction), as a
 * line for the answer; NULL when nothing is missing or Discord did not say.
 */
static char *digest_permission_note(const cJSON *ix)
{
	const char *perms = jstr(ix, "app_permissions");
	if (!perms || !*perms || strspn(perms, "0123456789") != strlen(perms))
		return NULL;
	unsigned long long bits = strtoull(perms, NULL, 10);
	if (bits & PERM_ADMINISTRATOR)
		return NULL;
	int64_t type = -1;
	json_int(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ix, "channel"),
						  "type"),
		 0, 255, &type);
	bool thread = type == 10 || type == 11 || type == 12;
	struct {
		unsigned long long bit;
		const char *name;
	} need[] = {
		{PERM_VIEW_CHANNEL, "View Channel"},
		{thread ? PERM_SEND_MESSAGES_IN_THREADS : PERM_SEND_MESSAGES,
		 thread ? "Send Messages in Threads" : "Send Messages"},
		{PERM_EMBED_LINKS, "Embed Links"},
	};
	struct strbuf missing = STRBUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
		if (bits & need[i].bit)
			continue;
		sb_adds(&missing, missing.len ? ", " : "");
		sb_adds(&missing, need[i].name);
	}
	char *note = NULL;
	if (missing.len)
		note = xasprintf("\u26a0 cohort cannot post the digest here yet: it lacks %s. Allow "
				 "that for cohort's role in %s (Edit Channel > Permissions).",
				 sb_str(&missing), thread ? "the thread's channel" : "this channel");
	else if (!(bits & PERM_READ_MESSAGE_HISTORY))
		note = xstrdup("Optional: with Read Message History here, cohort can check after "
			       "a long outage that a digest it could not confirm was not posted "
			       "already.");
	sb_release(&missing);
	return note;
}

void dc_ix_event_release(struct dc_ix_event *e)
{
	free(e->group);
	free(e->member);
	free(e->source);
	free(e->note);
	free(e->options);
	memset(e, 0, sizeof(*e));
}

/* The text typed so far in an autocomplete's focused option ("" when none). */
static const char *focused_value(const cJSON *options)
{
	const cJSON *o;
	cJSON_ArrayForEach(o, options)
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "focused")) &&
		    cJSON_IsString(v) && strlen(v->valuestring) <= MAX_OPTION)
			return v->valuestring;
	}
	return "";
}

int dc_ix_event(const cJSON *ix, struct dc_ix_event *out)
{
	memset(out, 0, sizeof(*out));
	const char *id = jstr(ix, "id");
	int64_t type;
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(ix, "data");
	const cJSON *options = cJSON_GetObjectItemCaseSensitive(data, "options");
	const char *name = jstr(data, "name");
	if (!snowflake(id) ||
	    !json_int(cJSON_GetObjectItemCaseSensitive(ix, "type"), 0, 255, &type) ||
	    (type != IX_COMMAND && type != IX_AUTOCOMPLETE) || (type == IX_COMMAND && !name))
		return COHORT_ERR_PARSE;
	const char *guild = jstr(ix, "guild_id"), *channel = jstr(ix, "channel_id");
	if (type == IX_AUTOCOMPLETE) {
		/* The guild's group: it completes the topics of its own roadmap. */
		if (snowflake(guild))
			out->group = xasprintf("discord:%s", guild);
		out->ev = (struct event){
			.platform = "discord",
			.group_id = out->group,
			.command = name ? name : "",
			.args = focused_value(options),
			.kind = EVENT_COMPLETE,
			.max_choices = DC_MAX_CHOICES,
		};
		return COHORT_OK;
	}
	const cJSON *member = cJSON_GetObjectItemCaseSensitive(ix, "member");
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(member, "user");
	const char *user_id = jstr(user, "id");
	if (!snowflake(guild) || !snowflake(user_id) || !snowflake(channel))
		return COHORT_ERR_DENIED;
	const char *shown = jstr(member, "nick");
	if (!shown)
		shown = jstr(user, "global_name");
	if (!shown)
		shown = jstr(user, "username");
	const char *perms = jstr(member, "permissions");
	unsigned long long bits = perms ? strtoull(perms, NULL, 10) : 0;
	out->group = xasprintf("discord:%s", guild);
	out->member = xasprintf("discord:%s", user_id);
	out->source = xasprintf("discord:%s", id);
	/* The options the command table names; the bot reads them by their roles. */
	const struct bot_command *def = bot_command(name);
	size_t n = 0;
	out->options = xcalloc(def && def->n_options ? def->n_options : 1, sizeof(*out->options));
	for (size_t i = 0; def && i < def->n_options; i++) {
		const char *v = option_value(options, def->options[i].name);
		if (v)
			out->options[n++] = (struct event_option){def->options[i].name, v};
	}
	/* Discord alone says what the bot may do in the channel: the note is ours to add. */
	const char *where = option_value(options, "channel");
	if (strcmp(name, "digest-setup") == 0 && where && strcmp(where, "off") != 0)
		out->note = digest_permission_note(ix);
	out->ev = (struct event){
		.platform = "discord",
		.group_id = out->group,
		.channel_id = channel,
		.member_id = out->member,
		.member_name = shown ? shown : user_id,
		.is_admin = bits & (PERM_ADMINISTRATOR | PERM_MANAGE_GUILD),
		.command = name,
		.args = "",
		.source_id = out->source,
		.kind = EVENT_COMMAND,
		.slash = true,
		.options = out->options,
		.n_options = n,
		.success_note = out->note,
	};
	return COHORT_OK;
}

static int on_command(struct discord *dc, const cJSON *ix, const char *id, const char *token,
		      const struct dc_responder *resp)
{
	struct dc_ix_event e;
	int rc = dc_ix_event(ix, &e);
	if (rc == COHORT_ERR_PARSE) {
		log_warn(TAG, "ignoring interaction %s without a command name", id);
		dc_ix_event_release(&e);
		return COHORT_ERR_USAGE;
	}
	if (rc == COHORT_ERR_DENIED) {
		answer_now(dc, id, token, resp, DC_NOT_IN_A_SERVER_TITLE, DC_NOT_IN_A_SERVER_LINE);
		dc_ix_event_release(&e);
		return COHORT_OK;
	}
	pthread_mutex_lock(&dc->lock);
	struct pending *p = xcalloc(1, sizeof(*p));
	p->id = xstrdup(id);
	p->token = xstrdup(token);
	p->at = clock_real_ms();
	p->personal = bot_command_personal(e.ev.command);
	if (resp)
		p->resp = *resp;
	p->next = dc->pending;
	dc->pending = p;
	pthread_mutex_unlock(&dc->lock);
	struct command_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	c->interaction = xstrdup(id);
	char *address = answer_address(id, token, jstr(ix, "application_id"), NULL, NULL);
	e.ev.answer_address = address;
	struct answer_sink sink = {command_answered, command_ctx_free, c};
	if (resp) {
		/* A signed request can be replayed to any process, or after a restart: the
		 * store, not this process's memory, says whether it ran. */
		char *once = xasprintf("ix:%s", id);
		door_submit_once(dc->door, once, DC_IX_CLAIM_MS, &e.ev, &sink);
		free(once);
	} else {
		door_submit(dc->door, &e.ev, &sink);
	}
	free(address);
	dc_ix_event_release(&e);
	return COHORT_OK;
}

static int on_autocomplete(struct discord *dc, const cJSON *ix, const char *id, const char *token,
			   const struct dc_responder *resp)
{
	struct dc_ix_event e;
	if (dc_ix_event(ix, &e)) {
		dc_ix_event_release(&e);
		return COHORT_ERR_USAGE; /* not one (on_interaction() checked the id and type) */
	}
	struct complete_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	c->id = xstrdup(id);
	c->token = xstrdup(token);
	if (resp)
		c->resp = *resp;
	door_submit(dc->door, &e.ev, &(struct answer_sink){completed, complete_ctx_free, c});
	dc_ix_event_release(&e);
	return COHORT_OK;
}

/*
 * An interaction from the gateway (resp NULL) or over HTTP. Returns COHORT_OK
 * (handled; resp handed over), COHORT_ERR_DUPLICATE (delivered before) or
 * COHORT_ERR_USAGE (not one cohort answers); resp is untouched then.
 */
static int on_interaction(struct discord *dc, const cJSON *ix, const struct dc_responder *resp)
{
	const char *id = jstr(ix, "id"), *token = jstr(ix, "token");
	int64_t type;
	if (!snowflake(id) || !url_token(token) ||
	    !json_int(cJSON_GetObjectItemCaseSensitive(ix, "type"), 0, 255, &type)) {
		log_warn(TAG, "ignoring an interaction without a valid id, token or type");
		return COHORT_ERR_USAGE;
	}
	if (type != IX_COMMAND && type != IX_AUTOCOMPLETE) {
		log_debug(TAG, "ignoring interaction type %d", (int)type);
		return COHORT_ERR_USAGE;
	}
	if (seen_before(dc, id)) {
		log_info(TAG, "interaction %s was delivered again; it is answered already", id);
		return COHORT_ERR_DUPLICATE;
	}
	/* Without a gateway there is no READY: the edits of deferred answers need the id. */
	const char *app = jstr(ix, "application_id");
	pthread_mutex_lock(&dc->lock);
	if (!dc->app_id_shared && snowflake(app))
		dc->app_id_shared = xstrdup(app);
	pthread_mutex_unlock(&dc->lock);
	if (type == IX_COMMAND)
		return on_command(dc, ix, id, token, resp);
	return on_autocomplete(dc, ix, id, token, resp);
}

static void on_message_create(struct discord *dc, const cJSON *m)
{
	const char *content = jstr(m, "content"), *id = jstr(m, "id");
	const char *channel = jstr(m, "channel_id"), *guild = jstr(m, "guild_id");
	const cJSON *author = cJSON_GetObjectItemCaseSensitive(m, "author");
	const char *author_id = jstr(author, "id");
	if (!*dc->cfg->discord_prefix || !content || !snowflake(id) || !snowflake(channel) ||
	    !snowflake(guild) || !snowflake(author_id))
		return;
	pthread_mutex_lock(&dc->lock);
	bool own = strcmp(author_id, dc->self_id) == 0;
	pthread_mutex_unlock(&dc->lock);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(author, "bot")) || own)
		return;
	const char *prefixes[] = {dc->cfg->discord_prefix, NULL};
	char *command, *args;
	if (strlen(content) > 4000 || !cmdline_parse(content, prefixes, &command, &args))
		return;
	if (seen_before(dc, id)) {
		free(command);
		free(args);
		return;
	}
	const cJSON *member = cJSON_GetObjectItemCaseSensitive(m, "member");
	const char *shown = jstr(member, "nick");
	if (!shown)
		shown = jstr(author, "global_name");
	if (!shown)
		shown = jstr(author, "username");
	char *group = xasprintf("discord:%s", guild);
	char *member_id = xasprintf("discord:%s", author_id);
	char *source = xasprintf("discord:msg:%s", id);
	struct event ev = {
		.platform = "discord",
		.group_id = group,
		.channel_id = channel,
		.member_id = member_id,
		.member_name = shown ? shown : author_id,
		.is_admin = false, /* a message carries no permissions: admin commands are slash
				      commands */
		.command = command,
		.args = args,
		.source_id = source,
		.kind = EVENT_COMMAND,
	};
	struct command_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	c->reply_channel = xstrdup(channel);
	c->reply_to = xstrdup(id);
	char *address = answer_address(NULL, NULL, NULL, channel, id);
	ev.answer_address = address;
	door_submit(dc->door, &ev, &(struct answer_sink){command_answered, command_ctx_free, c});
	free(address);
	free(group);
	free(member_id);
	free(source);
	free(command);
	free(args);
}

/* ---- session and commands ---- */

static void on_session(void *ud, const struct gw_session *s)
{
	struct shard *sh = ud;
	struct discord *dc = sh->dc;
	cJSON *o = cJSON_CreateObject();
	if (s->session_id) {
		cJSON_AddStringToObject(o, "session_id", s->session_id);
		cJSON_AddStringToObject(o, "resume_url", s->resume_url ? s->resume_url : "");
		cJSON_AddNumberToObject(o, "seq", (double)s->seq);
		cJSON_AddNumberToObject(o, "saved_at", (double)clock_real_ms());
		/* A resumed session has no READY to say who the bot is. */
		pthread_mutex_lock(&dc->lock);
		cJSON_AddStringToObject(o, "app_id", dc->app_id);
		cJSON_AddStringToObject(o, "self_id", dc->self_id);
		pthread_mutex_unlock(&dc->lock);
	}
	/* Each shard under a key of its own: processes running other shards of the same
	 * database never overwrite it (no read-modify-write of a shared row). */
	cJSON_AddNumberToObject(o, "count", dc->shard_count ? dc->shard_count : 1);
	char key[48];
	snprintf(key, sizeof(key), "discord.session.%d", sh->id);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	door_state_save(dc->door, key, text);
	cJSON_free(text);
}

static void registered(void *ud, const struct http_response *r)
{
	struct discord *dc = ud;
	if (r->status >= 200 && r->status < 300)
		log_info(TAG, "slash commands registered");
	else
		check_answer(dc, "registering the slash commands", r);
}

#define GUILDS_KEY "discord.command_guilds"

/* The guilds that have cohort's commands, as the store keeps them: a JSON array of ids. */
static void read_guilds(const char *json, struct strlist *out)
{
	cJSON *a = json ? cJSON_Parse(json) : NULL, *g;
	cJSON_ArrayForEach(g, a)
	{
		if (cJSON_IsString(g) && snowflake(g->valuestring)) {
			out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
			out->v[out->n++] = xstrdup(g->valuestring);
		}
	}
	cJSON_Delete(a);
}

static bool in_list(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

struct guilds_job {
	char *set;   /* the whole list (JSON), or NULL */
	char *add;   /* or one guild to add to it */
};

static void guilds_job_free(void *arg)
{
	struct guilds_job *j = arg;
	free(j->set);
	free(j->add);
	free(j);
}

static char *save_guilds(void *arg, const char *value, bool ok)
{
	struct guilds_job *j = arg;
	if (j->add && ok) {
		struct strlist l = {NULL, 0};
		read_guilds(value, &l);
		cJSON *a = cJSON_CreateArray();
		if (!in_list(&l, j->add))
			cJSON_AddItemToArray(a, cJSON_CreateString(j->add));
		for (size_t i = 0; i < l.n; i++) {
			cJSON_AddItemToArray(a, cJSON_CreateString(l.v[i]));
			free(l.v[i]);
		}
		free(l.v);
		char *text = cJSON_PrintUnformatted(a);
		j->set = xstrdup(text);
		cJSON_free(text);
		cJSON_Delete(a);
	}
	return j->set ? xstrdup(j->set) : NULL;
}

struct cleared_ctx {
	struct discord *dc;
	char *guild; /* NULL: the global commands */
};

static void cleared(void *ud, const struct http_response *r)
{
	struct cleared_ctx *c = ud;
	const char *where = c->guild ? c->guild : "";
	if (r->status >= 200 && r->status < 300) {
		log_info(TAG, "removed the slash commands %s%s (not in use: %s)",
			 c->guild ? "of server " : "globally", where,
			 c->guild ? "discord.guild_ids no longer has it" : "discord.guild_ids is set");
	} else if (c->guild && (r->status == 403 || r->status == 404)) {
		log_info(TAG, "server %s is no longer reachable (%ld); its commands went with it",
			 where, r->status);
	} else {
		check_answer(c->dc, "removing the slash commands of the scope not in use", r);
		if (c->guild) { /* try again at the next start */
			struct guilds_job *j = xcalloc(1, sizeof(*j));
			j->add = xstrdup(c->guild);
			door_state_update(c->dc->door, GUILDS_KEY, save_guilds, guilds_job_free, j);
		}
	}
	free(c->guild);
	free(c);
}

/*
 * PUTs the command list for each configured guild, or globally, and an empty
 * list where an earlier configuration put them (globally when guild_ids is
 * set; the guilds of an earlier run that guild_ids no longer names): else
 * Discord shows every command twice. Remembers the guilds in the store.
 */
static void register_commands(struct discord *dc)
{
	char app_id[32]; /* another shard's READY may write it meanwhile */
	pthread_mutex_lock(&dc->lock);
	snprintf(app_id, sizeof(app_id), "%s", dc->app_id);
	pthread_mutex_unlock(&dc->lock);
	const struct strlist *g = &dc->cfg->discord_guild_ids;
	const char *api = dc->cfg->discord_api_url;
	for (size_t i = 0; i < (g->n ? g->n : 1); i++) {
		char *url = g->n ? xasprintf("%s/applications/%s/guilds/%s/commands", api, app_id,
					     g->v[i])
				 : xasprintf("%s/applications/%s/commands", api, app_id);
		post_json(dc, "PUT", url, dc_command_definitions(), "commands", registered, dc);
		free(url);
	}
	if (g->n) {
		char *url = xasprintf("%s/applications/%s/commands", api, app_id);
		struct cleared_ctx *c = xcalloc(1, sizeof(*c));
		c->dc = dc;
		post_json(dc, "PUT", url, cJSON_CreateArray(), "commands", cleared, c);
		free(url);
	}
	for (size_t i = 0; i < dc->command_guilds.n; i++) {
		const char *old = dc->command_guilds.v[i];
		if (in_list(g, old))
			continue;
		char *url = xasprintf("%s/applications/%s/guilds/%s/commands", api, app_id, old);
		struct cleared_ctx *c = xcalloc(1, sizeof(*c));
		c->dc = dc;
		c->guild = xstrdup(old);
		post_json(dc, "PUT", url, cJSON_CreateArray(), "commands", cleared, c);
		free(url);
	}
	/* Saved now; a removal that fails adds its guild back (after this job). */
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < g->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(g->v[i]));
	struct guilds_job *j = xcalloc(1, sizeof(*j));
	char *text = cJSON_PrintUnformatted(a);
	j->set = xstrdup(text);
	cJSON_free(text);
	cJSON_Delete(a);
	door_state_update(dc->door, GUILDS_KEY, save_guilds, guilds_job_free, j);
}

static void on_event(void *ud, const char *type, const cJSON *d)
{
	struct shard *sh = ud;
	struct discord *dc = sh->dc;
	pthread_mutex_lock(&dc->lock);
	dc->last_event = clock_real_ms();
	pthread_mutex_unlock(&dc->lock);
	bool routed =
		strcmp(type, "INTERACTION_CREATE") == 0 || strcmp(type, "MESSAGE_CREATE") == 0;
	int owner;
	if (routed && !owns_guild(dc, jstr(d, "guild_id"), &owner)) {
		/* Discord sends a guild only to its shard; a misrouted event is another
		 * process's to answer, and answering it here would answer it twice. */
		log_debug(TAG,
			  "ignoring %s of guild %s on shard %d: it belongs to shard %d, which "
			  "this process does not run",
			  type, jstr(d, "guild_id"), sh->id, owner);
		return;
	}
	if (strcmp(type, "INTERACTION_CREATE") == 0) {
		on_interaction(dc, d, NULL);
	} else if (strcmp(type, "MESSAGE_CREATE") == 0) {
		on_message_create(dc, d);
	} else if (strcmp(type, "READY") == 0) {
		const char *app = jstr(cJSON_GetObjectItemCaseSensitive(d, "application"), "id");
		const char *self = jstr(cJSON_GetObjectItemCaseSensitive(d, "user"), "id");
		pthread_mutex_lock(&dc->lock);
		if (snowflake(app)) {
			snprintf(dc->app_id, sizeof(dc->app_id), "%s", app);
			free(dc->app_id_shared);
			dc->app_id_shared = xstrdup(app);
		}
		if (snowflake(self)) {
			snprintf(dc->self_id, sizeof(dc->self_id), "%s", self);
			free(dc->self_id_shared);
			dc->self_id_shared = xstrdup(self);
		}
		pthread_mutex_unlock(&dc->lock);
	}
	if (strcmp(type, "READY") == 0 || strcmp(type, "RESUMED") == 0) {
		/* Once per process, whichever shard is ready first. A quick restart resumes:
		 * the configuration may have changed all the same. */
		pthread_mutex_lock(&dc->lock);
		bool now = dc->cfg->discord_register_commands && !dc->registered && *dc->app_id;
		if (now)
			dc->registered = true;
		pthread_mutex_unlock(&dc->lock);
		if (now)
			register_commands(dc);
	}
}

static void on_fatal(void *ud, int code, const char *msg)
{
	struct shard *sh = ud;
	struct discord *dc = sh->dc;
	if (dc->shard_count > 1)
		log_error(TAG, "stopping: shard %d of %d: %s", sh->id, dc->shard_count, msg);
	else
		log_error(TAG, "stopping: %s", msg);
	door_fail(dc->door, code == 4004 || code == 401 ? COHORT_ERR_AUTH : COHORT_ERR_CONFIG);
}

/*
 * Defers every interaction that has waited DC_DEFER_MS for its answer: a
 * type 5 callback, or for one that came over HTTP, its HTTP answer.
 */
static void defer_due(struct discord *dc)
{
	int64_t now = clock_real_ms();
	pthread_mutex_lock(&dc->lock);
	for (struct pending *p = dc->pending; p; p = p->next) {
		if (p->deferred || now - p->at < DC_DEFER_MS)
			continue;
		p->deferred = true;
		log_info(TAG, "interaction %s is taking long; deferring its answer", p->id);
		cJSON *body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "type", CB_DEFERRED);
		if (p->personal)
			cJSON_AddNumberToObject(cJSON_AddObjectToObject(body, "data"), "flags", 64);
		if (p->resp.send) {
			struct deferral *w = xmalloc(sizeof(*w));
			w->dc = dc;
			w->id = xstrdup(p->id);
			p->in_flight = true;
			respond_then(&p->resp, 200, body, deferral_written, w);
			continue;
		}
		char *url = xasprintf("%s/interactions/%s/%s/callback", dc->cfg->discord_api_url,
				      p->id, p->token);
		char *queue = xasprintf("ix:%s", p->id);
		post_json(dc, "POST", url, body, queue, answered, dc);
		free(url);
		free(queue);
	}
	pthread_mutex_unlock(&dc->lock);
}

/* ---- the adapter interface ---- */

/* A saved session (load_sessions()), when it is recent enough to resume. */
static bool session_from(const cJSON *j, struct gw_session *s)
{
	memset(s, 0, sizeof(*s));
	const char *sid = jstr(j, "session_id"), *url = jstr(j, "resume_url");
	int64_t seq, at;
	bool ok = sid && url && *url &&
		  json_int(cJSON_GetObjectItemCaseSensitive(j, "seq"), 0, INT64_C(1) << 53, &seq) &&
		  json_int(cJSON_GetObjectItemCaseSensitive(j, "saved_at"), 0, INT64_C(1) << 53,
			   &at) &&
		  clock_real_ms() - at < DC_RESUME_MAX_AGE_MS;
	if (ok) {
		s->session_id = xstrdup(sid);
		s->resume_url = xstrdup(url);
		s->seq = seq;
	}
	return ok;
}

static struct gw *make_gw(struct discord *dc, struct shard *sh, int count, const char *url,
			  const struct gw_session *session)
{
	const struct config *cfg = dc->cfg;
	int intents =
		*cfg->discord_prefix ? GW_INTENT_GUILD_MESSAGES | GW_INTENT_MESSAGE_CONTENT : 0;
	struct gw_opts o = {cfg->discord_token,
			    cfg->discord_api_url,
			    intents,
			    dc->http,
			    on_event,
			    on_session,
			    on_fatal,
			    NULL, /* the deferrals have their own timer (timer_thread()) */
			    sh,
			    sh->id,
			    count,
			    dc->starts,
			    url};
	return gw_new(&o, session);
}

static void set_state(struct discord *dc, const char *state)
{
	pthread_mutex_lock(&dc->lock);
	dc->state = state;
	dc->state_since = clock_real_ms();
	pthread_mutex_unlock(&dc->lock);
}

/* Waits ms, or less when dc_stop() comes. Returns false once stopping. */
static bool wait_unless_stopped(struct discord *dc, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&dc->lock);
	while (!dc->stopping && pthread_cond_timedwait(&dc->wake, &dc->lock, &until) == 0)
		;
	bool go_on = !dc->stopping;
	pthread_mutex_unlock(&dc->lock);
	return go_on;
}

/* What GET /gateway/bot says: where to connect, how many shards, how fast to identify. */
struct gateway_bot {
	char *url;
	int shards, max_concurrency;
	long remaining;
	int64_t reset_after_ms;
};

/* Reads an answer of GET /gateway/bot into *out; out->url stays NULL when it has none. */
static void parse_gateway_bot(const char *body, struct gateway_bot *out)
{
	cJSON *j = cJSON_Parse(body);
	const char *u = jstr(j, "url");
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "session_start_limit");
	int64_t v, rst;
	if (u && (strncmp(u, "ws://", 5) == 0 || strncmp(u, "wss://", 6) == 0)) {
		out->url = xstrdup(u);
		out->shards = 1;
		if (json_int(cJSON_GetObjectItemCaseSensitive(j, "shards"), 1, CONFIG_MAX_SHARDS,
			     &v))
			out->shards = (int)v;
		if (json_int(cJSON_GetObjectItemCaseSensitive(lim, "max_concurrency"), 1, 1024, &v))
			out->max_concurrency = (int)v;
		if (json_int(cJSON_GetObjectItemCaseSensitive(lim, "remaining"), 0, 1000000, &v) &&
		    json_int(cJSON_GetObjectItemCaseSensitive(lim, "reset_after"), 0,
			     7 * 86400000LL, &rst)) {
			out->remaining = (long)v;
			out->reset_after_ms = rst;
		}
	}
	cJSON_Delete(j);
}

/*
 * GET /gateway/bot, retried with backoff until it answers (manager thread).
 * Returns COHORT_OK, COHORT_ERR_AUTH (a 401: the adapter stops) or
 * COHORT_ERR_IO when dc_stop() came first.
 */
static int fetch_gateway_bot(struct discord *dc, struct gateway_bot *out)
{
	static const int64_t backoff[] = {1000, 2000, 5000, 10000, 20000, 40000, 60000};
	memset(out, 0, sizeof(*out));
	out->remaining = -1;
	char *url = xasprintf("%s/gateway/bot", dc->cfg->discord_api_url);
	int rc = COHORT_ERR_IO;
	for (size_t attempt = 0;; attempt++) {
		struct http_response r;
		char why[HTTP_WHY_LEN];
		if (!http_fetch(dc->http, "GET", url, NULL, 15000, &dc->cancel, &r)) {
			log_warn(TAG, "GET /gateway/bot could not start");
		} else {
			if (r.status == 200)
				parse_gateway_bot(r.body, out);
			long status = r.status;
			if (!out->url && atomic_load(&dc->cancel)) {
				http_response_release(&r);
				break; /* dc_stop() came */
			}
			if (!out->url && status != 401)
				log_warn(TAG, "GET /gateway/bot failed (%s)",
					 r.status == 200 ? "no gateway URL in the answer"
							 : http_why(r.error, r.status, why));
			http_response_release(&r);
			if (out->url) {
				rc = COHORT_OK;
				break;
			}
			if (status == 401) {
				rc = COHORT_ERR_AUTH;
				break;
			}
		}
		int64_t ms =
			backoff[attempt < ARRAY_SIZE(backoff) ? attempt : ARRAY_SIZE(backoff) - 1];
		if (!wait_unless_stopped(dc, ms + (int64_t)((double)ms * 0.5 * random_unit())))
			break;
	}
	free(url);
	return rc;
}

/* The saved session of shard id of count, when one was saved for that count. */
static bool saved_session(struct discord *dc, int id, int count, struct gw_session *s)
{
	memset(s, 0, sizeof(*s));
	char key[16];
	snprintf(key, sizeof(key), "%d", id);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(dc->saved, key);
	int64_t n;
	if (!json_int(cJSON_GetObjectItemCaseSensitive(e, "count"), 1, CONFIG_MAX_SHARDS, &n) ||
	    n != count)
		return false;
	return session_from(e, s);
}

/*
 * Without a gateway (discord.gateway = false) the manager only waits:
 * interactions come over HTTP (discord_interaction()) until dc_stop().
 */
/* GET /applications/@me answered: the application id, then the slash commands. Worker. */
static void got_application(void *ud, const struct http_response *r)
{
	struct discord *dc = ud;
	cJSON *j = r->status == 200 ? cJSON_Parse(r->body) : NULL;
	const char *id = jstr(j, "id");
	if (snowflake(id)) {
		pthread_mutex_lock(&dc->lock);
		snprintf(dc->app_id, sizeof(dc->app_id), "%s", id);
		if (!dc->app_id_shared)
			dc->app_id_shared = xstrdup(id);
		bool now = !dc->registered;
		dc->registered = true;
		pthread_mutex_unlock(&dc->lock);
		if (now)
			register_commands(dc);
	} else if (r->status == 200) {
		log_warn(TAG, "GET /applications/@me gave no application id; the slash commands "
			      "are not registered (run cohort register-commands)");
	} else {
		check_answer(dc, "GET /applications/@me (to register the slash commands)", r);
	}
	cJSON_Delete(j);
}

static void run_without_gateway(struct discord *dc)
{
	log_info(TAG, "no gateway connection (discord.gateway = false): taking interactions on "
		      "POST /interactions only");
	if (dc->cfg->discord_register_commands) {
		/* No READY says who the application is: ask, then register as after READY. */
		char *url = xasprintf("%s/applications/@me", dc->cfg->discord_api_url);
		struct http_request rq = {"GET", url, NULL, "commands", 0, got_application, dc};
		http_submit(dc->http, &rq);
		free(url);
	}
	set_state(dc, "connected");
	while (wait_unless_stopped(dc, 60000))
		;
	set_state(dc, "stopped");
}

/*
 * The manager thread: learns the gateway URL and shard count, then runs the
 * shards of this process, all on one libwebsockets loop (gw_run_all()) on this
 * thread, until they end.
 */
static void *manager_thread(void *arg)
{
	struct discord *dc = arg;
	const struct config *cfg = dc->cfg;
	if (!cfg->discord_gateway) {
		run_without_gateway(dc);
		return NULL;
	}
	struct gateway_bot gb;
	int rc = fetch_gateway_bot(dc, &gb);
	if (rc == COHORT_ERR_AUTH) {
		set_state(dc, "failed");
		struct shard none = {dc, 0, 0, NULL};
		on_fatal(&none, 401,
			 "the bot token was rejected (401 from GET /gateway/bot): copy a fresh "
			 "token from the Developer Portal (Bot > Reset Token) into discord.token "
			 "or COHORT_DISCORD_TOKEN");
		dc->rc = rc;
		return NULL;
	}
	if (rc) {
		free(gb.url);
		return NULL; /* stopped before Discord answered */
	}
	int count = cfg->discord_shard_count ? cfg->discord_shard_count : gb.shards;
	for (size_t i = 0; i < cfg->discord_shards.n; i++) {
		if (cfg->discord_shards.v[i] < count)
			continue;
		log_error(TAG,
			  "discord.shards: shard %d is not below the %d shard%s GET /gateway/bot "
			  "recommends: set discord.shard_count to the count all processes use, or "
			  "remove the shard from discord.shards",
			  cfg->discord_shards.v[i], count, count == 1 ? "" : "s");
		set_state(dc, "failed");
		dc->rc = COHORT_ERR_CONFIG;
		door_fail(dc->door, COHORT_ERR_CONFIG);
		free(gb.url);
		return NULL;
	}
	gw_starts_update(dc->starts, gb.max_concurrency, gb.remaining, gb.reset_after_ms);
	size_t n = cfg->discord_shards.n ? cfg->discord_shards.n : (size_t)count;
	struct shard *shards = xcalloc(n, sizeof(*shards));
	for (size_t i = 0; i < n; i++) {
		shards[i].dc = dc;
		shards[i].index = i;
		shards[i].id = cfg->discord_shards.n ? cfg->discord_shards.v[i] : (int)i;
	}
	log_info(TAG, "running %zu of %d shard%s (max_concurrency %d)", n, count,
		 count == 1 ? "" : "s", gb.max_concurrency ? gb.max_concurrency : 1);
	pthread_mutex_lock(&dc->lock);
	if (dc->stopping) {
		pthread_mutex_unlock(&dc->lock);
		free(shards);
		free(gb.url);
		return NULL;
	}
	dc->shards = shards;
	dc->n_shards = n;
	dc->shard_count = count;
	for (size_t i = 0; i < n; i++) {
		struct gw_session s;
		bool resume = saved_session(dc, shards[i].id, count, &s);
		if (resume)
			log_info(TAG,
				 "shard %d: found a session saved at shutdown; trying to "
				 "resume it",
				 shards[i].id);
		shards[i].gw = make_gw(dc, &shards[i], count, gb.url, resume ? &s : NULL);
		gw_session_release(&s);
	}
	pthread_mutex_unlock(&dc->lock);
	free(gb.url);
	struct gw **gws = xcalloc(n, sizeof(*gws));
	for (size_t i = 0; i < n; i++)
		gws[i] = shards[i].gw;
	rc = gw_run_all(gws, n);
	free(gws);
	if (rc && !dc->rc)
		dc->rc = rc;
	return NULL;
}

static void dc_stop(void *self);

/*
 * The deferral timer, from start to stop, whatever the gateway does: an
 * interaction from the gateway or over HTTP is deferred on time even before
 * (or without) a gateway loop, or while GET /gateway/bot is retried.
 */
static void *timer_thread(void *arg)
{
	struct discord *dc = arg;
	while (wait_unless_stopped(dc, DC_TIMER_MS))
		defer_due(dc);
	return NULL;
}

static int dc_start(void *self)
{
	struct discord *dc = self;
	if (thread_start(&dc->timer, timer_thread, dc)) {
		log_error(TAG, "cannot start the deferral timer thread");
		return COHORT_ERR_IO;
	}
	if (thread_start(&dc->manager, manager_thread, dc)) {
		log_error(TAG, "cannot start the gateway thread");
		dc_stop(dc);
		pthread_join(dc->timer, NULL);
		return COHORT_ERR_IO;
	}
	dc->started = true;
	return COHORT_OK;
}

static void dc_stop(void *self)
{
	struct discord *dc = self;
	pthread_mutex_lock(&dc->lock);
	dc->stopping = true;
	atomic_store(&dc->cancel, true);
	pthread_cond_broadcast(&dc->wake);
	for (size_t i = 0; i < dc->n_shards; i++)
		gw_stop(dc->shards[i].gw);
	pthread_mutex_unlock(&dc->lock);
}

static int dc_join(void *self)
{
	struct discord *dc = self;
	if (!dc->started)
		return COHORT_OK;
	pthread_join(dc->manager, NULL);
	pthread_join(dc->timer, NULL);
	dc->started = false;
	/* Save where each session stands, so that a quick restart resumes them. */
	for (size_t i = 0; i < dc->n_shards; i++) {
		struct gw_session s;
		gw_session_copy(dc->shards[i].gw, &s);
		if (s.session_id)
			on_session(&dc->shards[i], &s);
		gw_session_release(&s);
	}
	return dc->rc;
}

struct post_ctx {
	struct discord *dc;
	char key[20];
	char *url, *queue, *body; /* the POST, when it waits for the look-up */
};

static void post_ctx_free(struct post_ctx *c)
{
	free(c->url);
	free(c->queue);
	free(c->body);
	free(c);
}

static void digest_posted(void *ud, const struct http_response *r)
{
	struct post_ctx *c = ud;
	check_answer(c->dc, "posting the digest", r);
	door_digest_sent(c->dc->door, c->key, http_result(r));
	post_ctx_free(c);
}

/* The digest's key, in its embed footer: what a later look-up recognises it by. */
#define FOOTER_PREFIX "cohort digest "

/* True when one of the bot's messages (a GET .../messages answer) carries key. */
static bool has_digest(const char *body, const char *self_id, const char *key)
{
	cJSON *list = cJSON_Parse(body);
	const cJSON *m;
	bool found = false;
	char *footer = xasprintf(FOOTER_PREFIX "%s", key);
	cJSON_ArrayForEach(m, list)
	{
		const cJSON *author = cJSON_GetObjectItemCaseSensitive(m, "author");
		const char *id = jstr(author, "id");
		bool mine = *self_id ? id && strcmp(id, self_id) == 0
				     : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(author, "bot"));
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "embeds"))
		{
			const char *text =
				jstr(cJSON_GetObjectItemCaseSensitive(e, "footer"), "text");
			found |= mine && text && strcmp(text, footer) == 0;
		}
	}
	free(footer);
	cJSON_Delete(list);
	return found;
}

/* The look-up before a late re-send: the earlier post counts as sent; else send. Worker. */
static void looked_up(void *ud, const struct http_response *r)
{
	struct post_ctx *c = ud;
	struct discord *dc = c->dc;
	pthread_mutex_lock(&dc->lock);
	char self[32];
	snprintf(self, sizeof(self), "%s", dc->self_id_shared ? dc->self_id_shared : "");
	pthread_mutex_unlock(&dc->lock);
	if (r->status == 200 && has_digest(r->body, self, c->key)) {
		log_info(TAG, "the digest %s was posted already (its answer was lost); not posting "
			      "it again", c->key);
		door_digest_sent(dc->door, c->key, COHORT_OK);
		post_ctx_free(c);
		return;
	}
	if (r->status == 403)
		log_warn(TAG, "cannot look for an earlier post of the digest %s without Read "
			      "Message History in its channel; posting it again (Discord's nonce "
			      "guards only a few minutes)", c->key);
	else if (r->status != 200)
		check_answer(dc, "looking for an earlier post of the digest", r);
	struct http_request rq = {"POST", c->url, c->body, c->queue, 0, digest_posted, c};
	http_submit(dc->http, &rq);
}

static int dc_post(void *self, const char *group_id, const char *channel_id, const struct reply *r,
		   const char *idem_key)
{
	struct discord *dc = self;
	if (!snowflake(channel_id)) {
		log_warn(TAG, "the digest channel of %s is not a Discord channel id: '%s'",
			 group_id, channel_id);
		return COHORT_ERR_USAGE;
	}
	cJSON *msg = dc_render_message(r, false);
	cJSON *embed = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(msg, "embeds"), 0);
	char *footer = xasprintf(FOOTER_PREFIX "%s", idem_key);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(embed, "footer"), "text", footer);
	free(footer);
	/* With enforce_nonce, Discord answers a repeated nonce with the earlier message. */
	cJSON_AddStringToObject(msg, "nonce", idem_key);
	cJSON_AddTrueToObject(msg, "enforce_nonce");
	struct post_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	snprintf(c->key, sizeof(c->key), "%s", idem_key);
	c->url = xasprintf("%s/channels/%s/messages", dc->cfg->discord_api_url, channel_id);
	c->queue = xasprintf("channel:%s", channel_id);
	char *text = cJSON_PrintUnformatted(msg);
	c->body = xstrdup(text);
	cJSON_free(text);
	cJSON_Delete(msg);
	int64_t now = door_now(dc->door);
	int64_t first = attempts_first(dc->door, "discord.digest_attempts", idem_key, now);
	if (now - first >= DC_NONCE_WINDOW_MS) {
		/* An earlier attempt's answer never came, longer ago than the nonce lasts. */
		log_info(TAG, "re-sending the digest %s first tried %lld min ago: looking for it "
			      "among the channel's last %d messages first",
			 idem_key, (long long)((now - first) / 60000), DC_LOOKBACK);
		char *url = xasprintf("%s/channels/%s/messages?limit=%d", dc->cfg->discord_api_url,
				      channel_id, DC_LOOKBACK);
		struct http_request rq = {"GET", url, NULL, c->queue, 0, looked_up, c};
		http_submit(dc->http, &rq);
		free(url);
	} else {
		struct http_request rq = {"POST", c->url, c->body, c->queue, 0, digest_posted, c};
		http_submit(dc->http, &rq);
	}
	return COHORT_ERR_PENDING;
}

/* ---- answers owed, sent late (the outbox's sender) ---- */

/* True when a message (a GET answer) has something in it: not a deferral's placeholder. */
static bool has_content(const cJSON *m)
{
	const char *content = jstr(m, "content");
	return (content && *content) ||
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "embeds")) > 0;
}

/*
 * An interaction's @original, looked up before a late answer: with content,
 * the answer got there (its outcome was lost); a deferral's empty
 * placeholder is edited; none (404) gets a follow-up. Worker thread.
 */
static void original_looked_up(void *ud, const struct http_response *r)
{
	struct answer_ctx *c = ud;
	struct discord *dc = c->dc;
	cJSON *m = r->status == 200 ? cJSON_Parse(r->body) : NULL;
	if (r->status == 200 && has_content(m)) {
		log_info(TAG, "interaction %s was answered already (that answer's outcome was "
			      "lost); not answering again", c->what);
		door_answer_sent(dc->door, c->id, ANSWER_SENT);
		answer_ctx_free(c);
	} else if (r->status == 200 || r->status == 404) {
		const char *method = r->status == 200 ? "PATCH" : "POST";
		char *url = r->status == 200 ? xasprintf("%s/messages/@original", c->url)
					     : xasprintf("%s?wait=true", c->url);
		if (r->status == 200) {
			/* The deferral fixed the flags: an edit may not change them. */
			cJSON *body = cJSON_Parse(c->body);
			cJSON_DeleteItemFromObject(body, "flags");
			char *text = cJSON_PrintUnformatted(body);
			free(c->body);
			c->body = xstrdup(text);
			cJSON_free(text);
			cJSON_Delete(body);
		}
		log_info(TAG, "answering interaction %s late: %s", c->what,
			 r->status == 200 ? "editing its deferred answer" : "a follow-up message");
		struct http_request rq = {method, url, c->body, c->queue, 0, answer_done, c};
		http_submit(dc->http, &rq);
		free(url);
	} else {
		check_answer(dc, "looking up an interaction's answer", r);
		door_answer_sent(dc->door, c->id, ANSWER_RETRY);
		answer_ctx_free(c);
	}
	cJSON_Delete(m);
}

/* True when the bot's messages (a GET .../messages answer) hold a reply to message_id. */
static bool has_reply(const char *body, const char *self_id, const char *message_id)
{
	cJSON *list = cJSON_Parse(body);
	const cJSON *m;
	bool found = false;
	cJSON_ArrayForEach(m, list)
	{
		const cJSON *author = cJSON_GetObjectItemCaseSensitive(m, "author");
		const char *id = jstr(author, "id");
		bool mine = *self_id ? id && strcmp(id, self_id) == 0
				     : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(author, "bot"));
		const char *to =
			jstr(cJSON_GetObjectItemCaseSensitive(m, "message_reference"), "message_id");
		found |= mine && to && strcmp(to, message_id) == 0;
	}
	cJSON_Delete(list);
	return found;
}

/* A prefix reply's channel, looked up after the nonce stopped guarding it. Worker thread. */
static void replies_looked_up(void *ud, const struct http_response *r)
{
	struct answer_ctx *c = ud;
	struct discord *dc = c->dc;
	pthread_mutex_lock(&dc->lock);
	char self[32];
	snprintf(self, sizeof(self), "%s", dc->self_id_shared ? dc->self_id_shared : "");
	pthread_mutex_unlock(&dc->lock);
	if (r->status == 200 && has_reply(r->body, self, c->what)) {
		log_info(TAG, "the reply to message %s was posted already (its outcome was lost); "
			      "not posting it again", c->what);
		door_answer_sent(dc->door, c->id, ANSWER_SENT);
		answer_ctx_free(c);
		return;
	}
	if (r->status != 200)
		log_warn(TAG, "cannot look for an earlier reply to message %s (status %ld); "
			      "posting it (Discord's nonce guards only a few minutes)",
			 c->what, r->status);
	struct http_request rq = {"POST", c->url, c->body, c->queue, 0, answer_done, c};
	http_submit(dc->http, &rq);
}

/* Delivers an answer owed (outbox_deliver_fn). Dispatcher thread. */
static int dc_deliver(void *ud, int64_t id, const char *address, const struct reply *r,
		      int64_t age_ms)
{
	struct discord *dc = ud;
	cJSON *a = cJSON_Parse(address);
	const char *ix = jstr(a, "interaction"), *token = jstr(a, "token");
	const char *channel = jstr(a, "channel"), *reply_to = jstr(a, "reply_to");
	int rc = COHORT_ERR_PENDING;
	/* The interaction named its application; else the one READY or the session gave. */
	const char *ix_app = jstr(a, "app");
	pthread_mutex_lock(&dc->lock);
	char *app = ix_app && snowflake(ix_app) ? xstrdup(ix_app)
		    : dc->app_id_shared && snowflake(dc->app_id_shared) ? xstrdup(dc->app_id_shared)
									   : NULL;
	pthread_mutex_unlock(&dc->lock);
	if (!(ix && token && url_token(token)) && !(snowflake(channel) && snowflake(reply_to))) {
		log_error(TAG, "answer %lld has an address cohort cannot read; dropping it",
			  (long long)id);
		rc = COHORT_ERR_USAGE;
	} else if (age_ms > DC_ANSWER_MAX_AGE_MS) {
		log_warn(TAG, "the answer to %s %s is %lld min old: Discord takes an answer for 15 "
			      "minutes, so it is dropped, not sent late",
			 ix ? "interaction" : "message", ix ? ix : reply_to,
			 (long long)(age_ms / 60000));
		rc = COHORT_ERR_USAGE;
	} else if (ix && !app) {
		rc = COHORT_ERR_NETWORK; /* the application id comes with READY: a later sweep */
	} else if (ix) {
		struct answer_ctx *c = answer_ctx_new(dc, id, true, ix);
		c->url = xasprintf("%s/webhooks/%s/%s", dc->cfg->discord_api_url, app, token);
		c->queue = xasprintf("ix:%s", ix);
		cJSON *msg = dc_render_message(r, true);
		char *text = cJSON_PrintUnformatted(msg);
		c->body = xstrdup(text);
		cJSON_free(text);
		cJSON_Delete(msg);
		char *url = xasprintf("%s/messages/@original", c->url);
		struct http_request rq = {"GET", url, NULL, c->queue, 0, original_looked_up, c};
		http_submit(dc->http, &rq);
		free(url);
	} else {
		struct answer_ctx *c = answer_ctx_new(dc, id, false, reply_to);
		c->url = xasprintf("%s/channels/%s/messages", dc->cfg->discord_api_url, channel);
		c->queue = xasprintf("channel:%s", channel);
		cJSON *msg = reply_message(r, reply_to);
		char *text = cJSON_PrintUnformatted(msg);
		c->body = xstrdup(text);
		cJSON_free(text);
		cJSON_Delete(msg);
		if (age_ms < DC_NONCE_WINDOW_MS) {
			struct http_request rq = {"POST", c->url, c->body, c->queue, 0, answer_done, c};
			http_submit(dc->http, &rq);
		} else {
			char *url = xasprintf("%s?limit=%d", c->url, DC_LOOKBACK);
			struct http_request rq = {"GET", url, NULL, c->queue, 0, replies_looked_up, c};
			http_submit(dc->http, &rq);
			free(url);
		}
	}
	free(app);
	cJSON_Delete(a);
	return rc;
}

/* A reminder on its way: the DM channel is opened first, then the message posted. */
struct dm_ctx {
	struct discord *dc;
	char key[20];
	char *user, *body;
};

static void dm_ctx_free(struct dm_ctx *c)
{
	free(c->user);
	free(c->body);
	free(c);
}

/* Discord's error code in a REST answer's JSON body (0 when none). */
static long error_code(const char *body)
{
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
	long v = cJSON_IsNumber(code) ? (long)code->valuedouble : 0;
	cJSON_Delete(j);
	return v;
}

static void dm_sent(void *ud, const struct http_response *r)
{
	struct dm_ctx *c = ud;
	if (r->status == 403 && error_code(r->body) == 50007)
		/* Their privacy settings: quietly, once (a reminder is not retried that day). */
		log_info(TAG, "user %s does not accept direct messages from the bot: reminder %s "
			      "not delivered (their /remind setting is kept)",
			 c->user, c->key);
	else if (r->status >= 200 && r->status < 300)
		log_debug(TAG, "reminder %s delivered to user %s", c->key, c->user);
	else
		check_answer(c->dc, "sending a reminder", r);
	dm_ctx_free(c);
}

/* POST /users/@me/channels answered: the DM channel's id; the message goes there. Worker. */
static void dm_opened(void *ud, const struct http_response *r)
{
	struct dm_ctx *c = ud;
	cJSON *j = r->status == 200 ? cJSON_Parse(r->body) : NULL;
	const char *id = jstr(j, "id");
	if (!id || !snowflake(id)) {
		if (r->status == 200)
			log_warn(TAG, "opening a DM channel with user %s: no channel id in the answer",
				 c->user);
		else
			check_answer(c->dc, "opening a DM channel for a reminder", r);
		cJSON_Delete(j);
		dm_ctx_free(c);
		return;
	}
	char *url = xasprintf("%s/channels/%s/messages", c->dc->cfg->discord_api_url, id);
	char *queue = xasprintf("channel:%s", id);
	struct http_request rq = {"POST", url, c->body, queue, 0, dm_sent, c};
	http_submit(c->dc->http, &rq);
	free(url);
	free(queue);
	cJSON_Delete(j);
}

static int dc_remind(void *self, const char *group_id, const char *member_id, const struct reply *r,
		     const char *idem_key)
{
	struct discord *dc = self;
	const char *user = strncmp(member_id, "discord:", 8) == 0 ? member_id + 8 : "";
	if (!snowflake(user)) {
		log_warn(TAG, "a reminder in %s for '%s', who is not a Discord user", group_id,
			 member_id);
		return COHORT_ERR_USAGE;
	}
	cJSON *msg = dc_render_message(r, false);
	cJSON_AddStringToObject(msg, "nonce", idem_key);
	cJSON_AddTrueToObject(msg, "enforce_nonce");
	struct dm_ctx *c = xcalloc(1, sizeof(*c));
	c->dc = dc;
	snprintf(c->key, sizeof(c->key), "%s", idem_key);
	c->user = xstrdup(user);
	char *text = cJSON_PrintUnformatted(msg);
	c->body = xstrdup(text);
	cJSON_free(text);
	cJSON_Delete(msg);
	cJSON *open = cJSON_CreateObject();
	cJSON_AddStringToObject(open, "recipient_id", user);
	char *url = xasprintf("%s/users/@me/channels", dc->cfg->discord_api_url);
	post_json(dc, "POST", url, open, "dm", dm_opened, c);
	free(url);
	return COHORT_ERR_PENDING;
}

static void dc_status(void *self, struct adapter_status *out)
{
	struct discord *dc = self;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&dc->lock);
	out->state = dc->state;
	out->since = dc->state_since;
	if (dc->n_shards) {
		out->shards = xcalloc(dc->n_shards, sizeof(*out->shards));
		out->n_shards = dc->n_shards;
	}
	/* Connected only when every shard is; else the first shard that is not (a failed
	 * one first). */
	const struct adapter_shard *worst = NULL;
	for (size_t i = 0; i < dc->n_shards; i++) {
		struct adapter_shard *s = &out->shards[i];
		s->id = dc->shards[i].id;
		s->count = dc->shard_count;
		gw_status(dc->shards[i].gw, &s->state, &s->since, &s->reconnects);
		out->reconnects += s->reconnects;
		if (strcmp(s->state, "connected") == 0) {
			if (!worst && s->since > out->since)
				out->since = s->since;
			continue;
		}
		if (!worst || (strcmp(s->state, "failed") == 0 && strcmp(worst->state, "failed")))
			worst = s;
	}
	if (dc->n_shards) {
		out->state = worst ? worst->state : "connected";
		if (worst)
			out->since = worst->since;
	}
	out->last_event = dc->last_event;
	out->commands = dc->commands;
	pthread_mutex_unlock(&dc->lock);
	http_fill_status(dc->http, out);
}

static void dc_free(void *self)
{
	struct discord *dc = self;
	if (!dc)
		return;
	http_free(dc->http, 5000);
	for (size_t i = 0; i < dc->n_shards; i++)
		gw_free(dc->shards[i].gw);
	free(dc->shards);
	gw_free(dc->feed.gw);
	gw_starts_free(dc->starts);
	cJSON_Delete(dc->saved);
	while (dc->pending) {
		struct pending *p = dc->pending;
		dc->pending = p->next;
		pending_free(p);
	}
	free(dc->app_id_shared);
	free(dc->self_id_shared);
	for (size_t i = 0; i < dc->command_guilds.n; i++)
		free(dc->command_guilds.v[i]);
	free(dc->command_guilds.v);
	idset_free(dc->seen);
	pthread_cond_destroy(&dc->wake);
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

static const struct adapter_ops discord_ops = {
	"discord", dc_start, dc_stop, dc_join, dc_post, dc_status, dc_free, dc_remind,
};

static struct http_client *make_http(const struct config *cfg)
{
	char *auth = xasprintf("Authorization: Bot %s", cfg->discord_token);
	const char *headers[] = {
		auth,
		"User-Agent: DiscordBot (https://github.com/cohort-bot/cohort, " VERSION ")",
	};
	struct http_client *h = http_new(TAG, headers, ARRAY_SIZE(headers));
	free(auth);
	return h;
}

/* Reads the JSON object under key, or NULL. */
static cJSON *load_object(struct door *door, const char *key)
{
	char *value = NULL;
	cJSON *j = NULL;
	if (!door_state_get(door, key, &value) && value)
		j = cJSON_Parse(value);
	free(value);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* Puts shard id's saved session e (taken) into all, with its shard count. */
static void put_session(cJSON *all, int id, cJSON *e, int64_t count)
{
	char key[16];
	snprintf(key, sizeof(key), "%d", id);
	cJSON_DeleteItemFromObjectCaseSensitive(e, "count");
	cJSON_AddNumberToObject(e, "count", (double)count);
	cJSON_DeleteItemFromObjectCaseSensitive(all, key);
	cJSON_AddItemToObject(all, key, e);
}

/* Reads "discord.session.ID" into all, when it holds a session. */
static void load_shard(struct door *door, cJSON *all, int id)
{
	char key[48];
	snprintf(key, sizeof(key), "discord.session.%d", id);
	cJSON *e = load_object(door, key);
	int64_t count;
	if (e && json_int(cJSON_GetObjectItemCaseSensitive(e, "count"), 1, CONFIG_MAX_SHARDS,
			  &count) &&
	    id < count)
		put_session(all, id, e, count);
	else
		cJSON_Delete(e);
}

/*
 * The sessions the last runs saved, as {"ID": session with its "count"}, for the
 * shards this process will run. Each shard's is under "discord.session.ID". When
 * the shard count comes from GET /gateway/bot (later, on another thread), the
 * count shard 0 was saved with names the shards to read: a process without
 * discord.shards runs them all. Older stores hold every shard's session in one
 * "discord.sessions" ({"count": N, "shards": {"ID": session}}) or, before shards,
 * one "discord.session" (shard 0 of 1): both are still read, so an upgrade resumes.
 */
static cJSON *load_sessions(const struct config *cfg, struct door *door)
{
	cJSON *all = cJSON_CreateObject();
	cJSON *old = load_object(door, "discord.sessions");
	int64_t count;
	if (old && json_int(cJSON_GetObjectItemCaseSensitive(old, "count"), 1, CONFIG_MAX_SHARDS,
			    &count)) {
		cJSON *e, *shards = cJSON_GetObjectItemCaseSensitive(old, "shards");
		cJSON_ArrayForEach(e, shards)
		{
			char *end;
			long id = strtol(e->string, &end, 10);
			if (*end || id < 0 || id >= count || !cJSON_IsObject(e))
				continue;
			put_session(all, (int)id, cJSON_Duplicate(e, true), count);
		}
	} else {
		cJSON *one = load_object(door, "discord.session");
		if (one)
			put_session(all, 0, one, 1);
	}
	cJSON_Delete(old);
	if (cfg->discord_shards.n) {
		for (size_t i = 0; i < cfg->discord_shards.n; i++)
			load_shard(door, all, cfg->discord_shards.v[i]);
		return all;
	}
	int n = cfg->discord_shard_count;
	if (!n) {
		load_shard(door, all, 0);
		const cJSON *zero = cJSON_GetObjectItemCaseSensitive(all, "0");
		int64_t c = 1;
		json_int(cJSON_GetObjectItemCaseSensitive(zero, "count"), 1, CONFIG_MAX_SHARDS, &c);
		n = (int)c;
	}
	for (int id = 0; id < n; id++)
		load_shard(door, all, id);
	return all;
}

int discord_new(const struct config *cfg, struct door *door, struct adapter *out)
{
	struct discord *dc = xcalloc(1, sizeof(*dc));
	dc->cfg = cfg;
	dc->door = door;
	dc->seen = idset_new();
	dc->starts = gw_starts_new();
	dc->feed.dc = dc;
	dc->state = "starting";
	dc->state_since = clock_real_ms();
	atomic_init(&dc->cancel, false);
	pthread_mutex_init(&dc->lock, NULL);
	pthread_cond_init(&dc->wake, NULL);
	dc->http = make_http(cfg);
	if (!dc->http) {
		dc_free(dc);
		return COHORT_ERR_IO;
	}
	char *guilds = NULL;
	if (door_state_get(door, GUILDS_KEY, &guilds) == COHORT_OK)
		read_guilds(guilds, &dc->command_guilds);
	free(guilds);
	dc->saved = load_sessions(cfg, door);
	/* A resumed session has no READY to say who the bot is: the saved one does. */
	const cJSON *e;
	cJSON_ArrayForEach(e, dc->saved)
	{
		struct gw_session s;
		bool ok = session_from(e, &s);
		gw_session_release(&s);
		const char *app = jstr(e, "app_id"), *self = jstr(e, "self_id");
		if (!ok || !snowflake(app))
			continue;
		snprintf(dc->app_id, sizeof(dc->app_id), "%s", app);
		dc->app_id_shared = xstrdup(app);
		if (snowflake(self)) {
			snprintf(dc->self_id, sizeof(dc->self_id), "%s", self);
			dc->self_id_shared = xstrdup(self);
		}
		break;
	}
	door_add_sender(door, "discord", dc_deliver, dc);
	*out = (struct adapter){&discord_ops, dc};
	return COHORT_OK;
}

/* ---- register-commands ---- */

/* A blocking REST call for the command line; the answer's status, 0 without one. */
static long cli_call(struct http_client *h, const char *method, const char *url,
		     const char *body, cJSON **json)
{
	struct http_response r;
	if (json)
		*json = NULL;
	if (!http_fetch(h, method, url, body, 15000, NULL, &r))
		return 0;
	long status = r.status;
	if (json && status >= 200 && status < 300)
		*json = cJSON_Parse(r.body);
	if (status < 200 || status >= 300) {
		char why[HTTP_WHY_LEN];
		log_error(TAG, "%s %s: %s: %.300s", method, url + strcspn(url, "/") + 2,
			  http_why(r.error, status, why), r.body ? r.body : "");
	}
	http_response_release(&r);
	return status;
}

static int status_rc(long status)
{
	return status >= 200 && status < 300 ? COHORT_OK
	       : status == 401		     ? COHORT_ERR_AUTH
					     : COHORT_ERR_NETWORK;
}

/* Every guild the bot is in (GET /users/@me/guilds, 200 a page), into *out. */
static int list_guilds(struct http_client *h, const char *api, struct strlist *out)
{
	char after[32] = "0";
	for (;;) {
		char *url = xasprintf("%s/users/@me/guilds?limit=200&after=%s", api, after);
		cJSON *page;
		long status = cli_call(h, "GET", url, NULL, &page);
		free(url);
		if (status_rc(status) || !cJSON_IsArray(page)) {
			cJSON_Delete(page);
			return status_rc(status) ? status_rc(status) : COHORT_ERR_NETWORK;
		}
		int n = cJSON_GetArraySize(page);
		const cJSON *g;
		cJSON_ArrayForEach(g, page)
		{
			const char *id = jstr(g, "id");
			if (!snowflake(id))
				continue;
			out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
			out->v[out->n++] = xstrdup(id);
			snprintf(after, sizeof(after), "%s", id);
		}
		cJSON_Delete(page);
		if (n < 200)
			return COHORT_OK;
	}
}

/* Removes the commands of one scope (guild NULL: global) if it has any; prints it. */
static int clear_scope(struct http_client *h, const char *api, const char *app, const char *guild)
{
	char *url = guild ? xasprintf("%s/applications/%s/guilds/%s/commands", api, app, guild)
			  : xasprintf("%s/applications/%s/commands", api, app);
	cJSON *have;
	long status = cli_call(h, "GET", url, NULL, &have);
	int rc = status_rc(status), n = cJSON_GetArraySize(have);
	cJSON_Delete(have);
	if (!rc && n > 0) {
		rc = status_rc(cli_call(h, "PUT", url, "[]", NULL));
		if (!rc)
			printf("removed %d commands %s%s\n", n, guild ? "from server " : "globally",
			       guild ? guild : "");
	}
	free(url);
	return rc;
}

int discord_register_commands(const struct config *cfg, const char *guild_id, bool clear)
{
	struct http_client *h = make_http(cfg);
	if (!h)
		return COHORT_ERR_IO;
	const char *api = cfg->discord_api_url;
	const struct strlist *conf = &cfg->discord_guild_ids;
	struct strlist use = {NULL, 0}, all = {NULL, 0};
	char app[32] = "";
	cJSON *j;
	char *url = xasprintf("%s/applications/@me", api);
	int rc = status_rc(cli_call(h, "GET", url, NULL, &j));
	free(url);
	if (!rc && snowflake(jstr(j, "id")))
		snprintf(app, sizeof(app), "%s", jstr(j, "id"));
	else if (!rc)
		rc = COHORT_ERR_NETWORK;
	cJSON_Delete(j);

	/* Where the commands go: --guild, else discord.guild_ids, else global (empty). */
	if (guild_id)
		use = (struct strlist){(char **)&guild_id, 1};
	else
		use = *conf;
	if (!rc && clear) {
		if (guild_id) {
			rc = clear_scope(h, api, app, guild_id);
		} else {
			rc = clear_scope(h, api, app, NULL);
			if (!rc)
				rc = list_guilds(h, api, &all);
			for (size_t i = 0; !rc && i < all.n; i++)
				rc = clear_scope(h, api, app, all.v[i]);
		}
		if (!rc)
			printf("the slash commands are removed%s%s\n", guild_id ? " from server " : "",
			       guild_id ? guild_id : "");
	} else if (!rc) {
		cJSON *defs = dc_command_definitions();
		char *body = cJSON_PrintUnformatted(defs);
		int n = cJSON_GetArraySize(defs);
		cJSON_Delete(defs);
		for (size_t i = 0; !rc && i < (use.n ? use.n : 1); i++) {
			url = use.n ? xasprintf("%s/applications/%s/guilds/%s/commands", api, app,
						use.v[i])
				    : xasprintf("%s/applications/%s/commands", api, app);
			rc = status_rc(cli_call(h, "PUT", url, body, NULL));
			if (!rc)
				printf("registered %d commands %s%s\n", n,
				       use.n ? "in server " : "globally (they show at once)",
				       use.n ? use.v[i] : "");
			free(url);
		}
		cJSON_free(body);
		/* The scope not in use is emptied, or every command shows twice. --guild
		 * adds one server and leaves the rest as they are. */
		if (!rc && !guild_id) {
			if (use.n)
				rc = clear_scope(h, api, app, NULL);
			if (!rc)
				rc = list_guilds(h, api, &all);
			for (size_t i = 0; !rc && i < all.n; i++)
				if (!in_list(&use, all.v[i]))
					rc = clear_scope(h, api, app, all.v[i]);
		}
	}
	if (rc == COHORT_ERR_AUTH)
		log_error(TAG, "the bot token was rejected (401): copy a fresh token from the "
			       "Developer Portal (Bot > Reset Token) into discord.token or "
			       "COHORT_DISCORD_TOKEN");
	for (size_t i = 0; i < all.n; i++)
		free(all.v[i]);
	free(all.v);
	http_free(h, 0);
	return rc;
}

int discord_interaction(struct adapter *a, const cJSON *ix, const struct dc_responder *resp)
{
	return on_interaction(a->self, ix, resp);
}

void discord_set_identify_gate(struct adapter *a, const struct gw_identify_gate *gate)
{
	struct discord *dc = a->self;
	gw_starts_set_gate(dc->starts, gate);
}

bool discord_rest_counts(const char *url)
{
	/* Interaction endpoints are not bound to the global limit (Discord's rate-limit docs). */
	return !strstr(url, "/interactions/") && !strstr(url, "/webhooks/");
}

static bool rest_counts(void *ud, const char *method, const char *url)
{
	(void)ud;
	(void)method;
	return discord_rest_counts(url);
}

static void rest_reserve(void *ud, int n, void (*done)(void *ctx, int granted, int64_t valid_ms),
			 void *ctx)
{
	struct discord *dc = ud;
	dc->rate(dc->rate_ud, "discord:rest:global", DISCORD_GLOBAL_PER_S, n, done, ctx);
}

void discord_share_rest_limit(struct adapter *a, discord_rate_fn *rate, void *ud)
{
	struct discord *dc = a->self;
	dc->rate = rate;
	dc->rate_ud = ud;
	http_set_budget(dc->http, &(struct http_budget){rest_counts, rest_reserve, dc});
}

void discord_feed(struct adapter *a, const char *payload, size_t len)
{
	struct discord *dc = a->self;
	if (!dc->feed.gw)
		dc->feed.gw = make_gw(dc, &dc->feed, 0, NULL, NULL);
	gw_feed(dc->feed.gw, payload, len);
}
