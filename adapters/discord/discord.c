#include "discord.h"

#include "adapters/attempts.h"
#include "adapters/http.h"
#include "adapters/idset.h"
#include "adapters/json.h"
#include "bot/bot.h"
#include "bot/clock.h"
#include "bot/cmdline.h"
#include "bot/config.h"
#include "bot/dispatch.h"
#include "bot/err.h"
#include "bot/log.h"
#include "bot/scheduler.h"
#include "bot/util.h"
#include "gateway.h"
#include "render.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG "discord"
#define VERSION "0.2.0"
#define MAX_OPTION 65536 /* longer option values are dropped; the bot rejects long ones */
/* How long Discord's enforce_nonce keeps a digest from posting twice ("a few minutes"):
 * a re-send after that first looks for the earlier post. */
#define DC_NONCE_WINDOW_MS (2 * 60 * 1000)
/* The bot's recent messages looked through for an earlier post (Discord's maximum). */
#define DC_LOOKBACK 50

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
	struct pending *next;
};

struct discord {
	const struct config *cfg;
	struct bot *bot; /* the dispatcher thread's: digest attempts */
	struct dispatch *dispatch;
	struct http_client *http;
	struct gw *gw;
	pthread_t thread;
	bool started;
	int rc;

	/* Gateway thread only. */
	char app_id[32], self_id[32];
	bool registered;
	struct strlist command_guilds; /* guilds given commands by an earlier run (the store) */
	struct idset *seen; /* interaction and message ids, against replays */

	pthread_mutex_t lock;
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
	return idset_seen(dc->seen, id);
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
		dispatch_fail(dc->dispatch, COHORT_ERR_AUTH);
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

/* ---- answers (dispatcher thread) ---- */

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
	free(p->id);
	free(p->token);
	free(p);
}

/* Sends a finished message as the interaction's answer: the callback, or an edit if deferred. */
static void answer(struct discord *dc, const char *id, cJSON *msg)
{
	pthread_mutex_lock(&dc->lock);
	struct pending *p = take_pending(dc, id);
	char *app = dc->app_id_shared ? xstrdup(dc->app_id_shared) : NULL;
	if (p && p->deferred) {
		/* The deferral is queued first in the same queue: the edit follows it. */
		char *url = xasprintf("%s/webhooks/%s/%s/messages/@original",
				      dc->cfg->discord_api_url, app ? app : "0", p->token);
		char *queue = xasprintf("ix:%s", id);
		cJSON_DeleteItemFromObject(msg, "flags"); /* fixed by the deferral */
		post_json(dc, "PATCH", url, msg, queue, answered, dc);
		free(url);
		free(queue);
		msg = NULL;
	} else if (p) {
		char *url = xasprintf("%s/interactions/%s/%s/callback", dc->cfg->discord_api_url,
				      id, p->token);
		char *queue = xasprintf("ix:%s", id);
		cJSON *body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "type", CB_MESSAGE);
		cJSON_AddItemToObject(body, "data", msg);
		post_json(dc, "POST", url, body, queue, answered, dc);
		free(url);
		free(queue);
		msg = NULL;
	}
	pthread_mutex_unlock(&dc->lock);
	free(app);
	cJSON_Delete(msg);
	if (p)
		pending_free(p);
}

/* A command to run on the dispatcher: the event's strings are owned. */
struct command_job {
	struct discord *dc;
	char *interaction;              /* the interaction id, or NULL for a text command */
	char *reply_channel, *reply_to; /* a text command: where to answer */
	char *group, *channel, *member, *name, *command, *args, *topic, *note, *source;
	char *command2, *args2; /* a second command in the same interaction (digest-setup) */
	char *perm_note;        /* digest-setup: what the bot lacks in the channel, or NULL */
	bool admin;
};

static void command_job_free(void *arg)
{
	struct command_job *j = arg;
	free(j->interaction);
	free(j->reply_channel);
	free(j->reply_to);
	free(j->group);
	free(j->channel);
	free(j->member);
	free(j->name);
	free(j->command);
	free(j->args);
	free(j->topic);
	free(j->note);
	free(j->source);
	free(j->command2);
	free(j->args2);
	free(j->perm_note);
	free(j);
}

static void run_command(struct bot *b, void *arg)
{
	struct command_job *j = arg;
	struct discord *dc = j->dc;
	struct event ev = {"discord",  j->group, j->channel, j->member, j->name,  j->admin,
			   j->command, j->args,  j->topic,   j->note,   j->source};
	struct reply r;
	reply_init(&r);
	bot_handle(b, &ev, &r);
	if (j->command2) {
		/* Both settings in one answer: the second one's title becomes a line. */
		struct reply r2;
		reply_init(&r2);
		struct event ev2 = ev;
		ev2.command = j->command2;
		ev2.args = j->args2;
		ev2.source_id = NULL;
		bot_handle(b, &ev2, &r2);
		if (r2.title)
			reply_line(&r, "%s", r2.title);
		for (size_t i = 0; i < r2.nlines; i++)
			reply_line(&r, "%s", r2.lines[i].text);
		if (r2.kind == REPLY_ERROR)
			r.kind = REPLY_ERROR;
		reply_release(&r2);
	}
	if (j->perm_note && r.kind != REPLY_ERROR)
		reply_line(&r, "%s", j->perm_note);
	pthread_mutex_lock(&dc->lock);
	dc->commands++;
	pthread_mutex_unlock(&dc->lock);
	if (j->interaction) {
		answer(dc, j->interaction, dc_render_message(&r, true));
	} else {
		cJSON *msg = dc_render_message(&r, false);
		cJSON *ref = cJSON_AddObjectToObject(msg, "message_reference");
		cJSON_AddStringToObject(ref, "message_id", j->reply_to);
		cJSON_AddFalseToObject(ref, "fail_if_not_exists");
		cJSON_AddFalseToObject(cJSON_GetObjectItemCaseSensitive(msg, "allowed_mentions"),
				       "replied_user");
		char *url = xasprintf("%s/channels/%s/messages", dc->cfg->discord_api_url,
				      j->reply_channel);
		char *queue = xasprintf("channel:%s", j->reply_channel);
		post_json(dc, "POST", url, msg, queue, answered, dc);
		free(url);
		free(queue);
	}
	reply_release(&r);
	command_job_free(j);
}

struct complete_job {
	struct discord *dc;
	char *id, *token, *typed;
};

static void complete_job_free(void *arg)
{
	struct complete_job *j = arg;
	free(j->id);
	free(j->token);
	free(j->typed);
	free(j);
}

static void run_complete(struct bot *b, void *arg)
{
	struct complete_job *j = arg;
	struct bot_choice ch[DC_MAX_CHOICES];
	size_t n = bot_complete_topics(b, j->typed, ch, DC_MAX_CHOICES);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "type", CB_AUTOCOMPLETE);
	cJSON *data = cJSON_AddObjectToObject(body, "data");
	cJSON *choices = cJSON_AddArrayToObject(data, "choices");
	for (size_t i = 0; i < n; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "name", ch[i].label);
		cJSON_AddStringToObject(c, "value", ch[i].value);
		cJSON_AddItemToArray(choices, c);
	}
	char *url = xasprintf("%s/interactions/%s/%s/callback", j->dc->cfg->discord_api_url, j->id,
			      j->token);
	char *queue = xasprintf("ix:%s", j->id);
	post_json(j->dc, "POST", url, body, queue, answered, j->dc);
	free(url);
	free(queue);
	complete_job_free(j);
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

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* Answers an interaction at once with a message the adapter made itself (ephemeral). */
static void answer_now(struct discord *dc, const char *id, const char *token, const char *title,
		       const char *line)
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
	p->next = dc->pending;
	dc->pending = p;
	pthread_mutex_unlock(&dc->lock);
	answer(dc, id, dc_render_message(&r, true));
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

static void on_command(struct discord *dc, const cJSON *ix, const char *id, const char *token)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(ix, "data");
	const cJSON *options = cJSON_GetObjectItemCaseSensitive(data, "options");
	const char *name = jstr(data, "name");
	const char *guild = jstr(ix, "guild_id"), *channel = jstr(ix, "channel_id");
	const cJSON *member = cJSON_GetObjectItemCaseSensitive(ix, "member");
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(member, "user");
	const char *user_id = jstr(user, "id");
	if (!name) {
		log_warn(TAG, "ignoring interaction %s without a command name", id);
		return;
	}
	if (!snowflake(guild) || !snowflake(user_id) || !snowflake(channel)) {
		answer_now(dc, id, token, "cohort works in a server's channels",
			   "Progress belongs to a study group: use the commands in your server.");
		return;
	}
	const char *shown = jstr(member, "nick");
	if (!shown)
		shown = jstr(user, "global_name");
	if (!shown)
		shown = jstr(user, "username");
	const char *perms = jstr(member, "permissions");
	unsigned long long bits = perms ? strtoull(perms, NULL, 10) : 0;

	struct command_job *j = xcalloc(1, sizeof(*j));
	j->dc = dc;
	j->interaction = xstrdup(id);
	j->group = xasprintf("discord:%s", guild);
	j->channel = xstrdup(channel);
	j->member = xasprintf("discord:%s", user_id);
	j->name = xstrdup(shown ? shown : user_id);
	j->admin = bits & (PERM_ADMINISTRATOR | PERM_MANAGE_GUILD);
	j->source = xasprintf("discord:%s", id);
	const char *topic = option_value(options, "topic");
	if (strcmp(name, "digest-setup") == 0) {
		const char *where = option_value(options, "channel");
		const char *time = option_value(options, "time");
		if (where && strcmp(where, "off") != 0)
			j->perm_note = digest_permission_note(ix);
		const char *zone = option_value(options, "timezone");
		/* The bot's "digest time" takes HH:MM, HH:MM ZONE, or a zone alone. */
		char *time_args =
			time   ? xasprintf("time %s%s%s", time, zone ? " " : "", zone ? zone : "")
			: zone ? xasprintf("time %s", zone)
			       : NULL;
		j->command = xstrdup("digest");
		if (where) {
			j->args = xasprintf("channel %s", where);
			if (time_args) {
				j->command2 = xstrdup("digest");
				j->args2 = time_args;
				time_args = NULL;
			}
		} else {
			j->args = time_args ? time_args : xstrdup("");
			time_args = NULL;
		}
		free(time_args);
	} else if (!strcmp(name, "done") || !strcmp(name, "start")) {
		j->command = xstrdup(name);
		j->args = xstrdup(topic ? topic : "");
		j->topic = dup_or_null(topic);
		j->note = dup_or_null(option_value(options, "note"));
	} else {
		const char *arg = topic;
		if (!arg)
			arg = option_value(options, "member");
		if (!arg)
			arg = option_value(options, "period");
		if (!arg)
			arg = option_value(options, "section");
		if (!arg)
			arg = option_value(options, "command");
		j->command = xstrdup(name);
		j->args = xstrdup(arg ? arg : "");
	}
	pthread_mutex_lock(&dc->lock);
	struct pending *p = xcalloc(1, sizeof(*p));
	p->id = xstrdup(id);
	p->token = xstrdup(token);
	p->at = clock_real_ms();
	p->personal = bot_command_personal(j->command) || !strcmp(name, "digest-setup");
	p->next = dc->pending;
	dc->pending = p;
	pthread_mutex_unlock(&dc->lock);
	dispatch_submit(dc->dispatch, run_command, command_job_free, j);
}

static void on_autocomplete(struct discord *dc, const cJSON *ix, const char *id, const char *token)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(ix, "data");
	const cJSON *o, *options = cJSON_GetObjectItemCaseSensitive(data, "options");
	const char *typed = "";
	cJSON_ArrayForEach(o, options)
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "focused")) &&
		    cJSON_IsString(v) && strlen(v->valuestring) <= MAX_OPTION)
			typed = v->valuestring;
	}
	struct complete_job *j = xcalloc(1, sizeof(*j));
	j->dc = dc;
	j->id = xstrdup(id);
	j->token = xstrdup(token);
	j->typed = xstrdup(typed);
	dispatch_submit(dc->dispatch, run_complete, complete_job_free, j);
}

static void on_interaction(struct discord *dc, const cJSON *ix)
{
	const char *id = jstr(ix, "id"), *token = jstr(ix, "token");
	int64_t type;
	if (!snowflake(id) || !url_token(token) ||
	    !json_int(cJSON_GetObjectItemCaseSensitive(ix, "type"), 0, 255, &type)) {
		log_warn(TAG, "ignoring an interaction without a valid id, token or type");
		return;
	}
	if (seen_before(dc, id)) {
		log_info(TAG, "interaction %s was delivered again; it is answered already", id);
		return;
	}
	if (type == IX_COMMAND)
		on_command(dc, ix, id, token);
	else if (type == IX_AUTOCOMPLETE)
		on_autocomplete(dc, ix, id, token);
	else
		log_debug(TAG, "ignoring interaction type %d", (int)type);
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
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(author, "bot")) ||
	    strcmp(author_id, dc->self_id) == 0)
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
	struct command_job *j = xcalloc(1, sizeof(*j));
	j->dc = dc;
	j->reply_channel = xstrdup(channel);
	j->reply_to = xstrdup(id);
	j->group = xasprintf("discord:%s", guild);
	j->channel = xstrdup(channel);
	j->member = xasprintf("discord:%s", author_id);
	j->name = xstrdup(shown ? shown : author_id);
	j->admin = false; /* a message carries no permissions: admin commands are slash commands */
	j->command = command;
	j->args = args;
	j->source = xasprintf("discord:msg:%s", id);
	dispatch_submit(dc->dispatch, run_command, command_job_free, j);
}

/* ---- session and commands ---- */

struct state_job {
	char *value;
};

static void state_job_free(void *arg)
{
	struct state_job *j = arg;
	free(j->value);
	free(j);
}

static void run_save_state(struct bot *b, void *arg)
{
	struct state_job *j = arg;
	if (bot_state_set(b, "discord.session", j->value))
		log_warn(TAG, "could not save the gateway session; a restart will start a new one");
	state_job_free(j);
}

static void on_session(void *ud, const struct gw_session *s)
{
	struct discord *dc = ud;
	cJSON *o = cJSON_CreateObject();
	if (s->session_id) {
		cJSON_AddStringToObject(o, "session_id", s->session_id);
		cJSON_AddStringToObject(o, "resume_url", s->resume_url ? s->resume_url : "");
		cJSON_AddNumberToObject(o, "seq", (double)s->seq);
		cJSON_AddNumberToObject(o, "saved_at", (double)clock_real_ms());
		/* A resumed session has no READY to say who the bot is. */
		cJSON_AddStringToObject(o, "app_id", dc->app_id);
		cJSON_AddStringToObject(o, "self_id", dc->self_id);
	}
	struct state_job *j = xmalloc(sizeof(*j));
	char *text = cJSON_PrintUnformatted(o);
	j->value = xstrdup(text);
	cJSON_free(text);
	cJSON_Delete(o);
	dispatch_submit(dc->dispatch, run_save_state, state_job_free, j);
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

static void run_save_guilds(struct bot *b, void *arg)
{
	struct guilds_job *j = arg;
	char *value = NULL;
	if (j->add && bot_state_get(b, GUILDS_KEY, &value) == COHORT_OK) {
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
	if (j->set && bot_state_set(b, GUILDS_KEY, j->set))
		log_warn(TAG, "could not save which servers have the slash commands");
	free(value);
	guilds_job_free(j);
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
			dispatch_submit(c->dc->dispatch, run_save_guilds, guilds_job_free, j);
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
	const struct strlist *g = &dc->cfg->discord_guild_ids;
	const char *api = dc->cfg->discord_api_url;
	for (size_t i = 0; i < (g->n ? g->n : 1); i++) {
		char *url = g->n ? xasprintf("%s/applications/%s/guilds/%s/commands", api,
					     dc->app_id, g->v[i])
				 : xasprintf("%s/applications/%s/commands", api, dc->app_id);
		post_json(dc, "PUT", url, dc_command_definitions(), "commands", registered, dc);
		free(url);
	}
	if (g->n) {
		char *url = xasprintf("%s/applications/%s/commands", api, dc->app_id);
		struct cleared_ctx *c = xcalloc(1, sizeof(*c));
		c->dc = dc;
		post_json(dc, "PUT", url, cJSON_CreateArray(), "commands", cleared, c);
		free(url);
	}
	for (size_t i = 0; i < dc->command_guilds.n; i++) {
		const char *old = dc->command_guilds.v[i];
		if (in_list(g, old))
			continue;
		char *url = xasprintf("%s/applications/%s/guilds/%s/commands", api, dc->app_id,
				      old);
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
	dispatch_submit(dc->dispatch, run_save_guilds, guilds_job_free, j);
}

static void on_event(void *ud, const char *type, const cJSON *d)
{
	struct discord *dc = ud;
	pthread_mutex_lock(&dc->lock);
	dc->last_event = clock_real_ms();
	pthread_mutex_unlock(&dc->lock);
	if (strcmp(type, "INTERACTION_CREATE") == 0) {
		on_interaction(dc, d);
	} else if (strcmp(type, "MESSAGE_CREATE") == 0) {
		on_message_create(dc, d);
	} else if (strcmp(type, "READY") == 0) {
		const char *app = jstr(cJSON_GetObjectItemCaseSensitive(d, "application"), "id");
		const char *self = jstr(cJSON_GetObjectItemCaseSensitive(d, "user"), "id");
		if (snowflake(app)) {
			snprintf(dc->app_id, sizeof(dc->app_id), "%s", app);
			pthread_mutex_lock(&dc->lock);
			free(dc->app_id_shared);
			dc->app_id_shared = xstrdup(app);
			pthread_mutex_unlock(&dc->lock);
		}
		if (snowflake(self)) {
			snprintf(dc->self_id, sizeof(dc->self_id), "%s", self);
			pthread_mutex_lock(&dc->lock);
			free(dc->self_id_shared);
			dc->self_id_shared = xstrdup(self);
			pthread_mutex_unlock(&dc->lock);
		}
		if (dc->cfg->discord_register_commands && !dc->registered && *dc->app_id) {
			dc->registered = true;
			register_commands(dc);
		}
	} else if (strcmp(type, "RESUMED") == 0) {
		/* A quick restart resumes: the configuration may have changed all the same. */
		if (dc->cfg->discord_register_commands && !dc->registered && *dc->app_id) {
			dc->registered = true;
			register_commands(dc);
		}
	}
}

static void on_fatal(void *ud, int code, const char *msg)
{
	struct discord *dc = ud;
	log_error(TAG, "stopping: %s", msg);
	dispatch_fail(dc->dispatch,
		      code == 4004 || code == 401 ? COHORT_ERR_AUTH : COHORT_ERR_CONFIG);
}

/* Defers every interaction that has waited DC_DEFER_MS for its answer. */
static void on_tick(void *ud)
{
	struct discord *dc = ud;
	int64_t now = clock_real_ms();
	pthread_mutex_lock(&dc->lock);
	for (struct pending *p = dc->pending; p; p = p->next) {
		if (p->deferred || now - p->at < DC_DEFER_MS)
			continue;
		p->deferred = true;
		log_info(TAG, "interaction %s is taking long; deferring its answer", p->id);
		char *url = xasprintf("%s/interactions/%s/%s/callback", dc->cfg->discord_api_url,
				      p->id, p->token);
		char *queue = xasprintf("ix:%s", p->id);
		cJSON *body = cJSON_CreateObject();
		cJSON_AddNumberToObject(body, "type", CB_DEFERRED);
		if (p->personal)
			cJSON_AddNumberToObject(cJSON_AddObjectToObject(body, "data"), "flags", 64);
		post_json(dc, "POST", url, body, queue, answered, dc);
		free(url);
		free(queue);
	}
	pthread_mutex_unlock(&dc->lock);
}

/* ---- the adapter interface ---- */

static void *gateway_thread(void *arg)
{
	struct discord *dc = arg;
	dc->rc = gw_run(dc->gw);
	return NULL;
}

static int dc_start(void *self)
{
	struct discord *dc = self;
	if (thread_start(&dc->thread, gateway_thread, dc)) {
		log_error(TAG, "cannot start the gateway thread");
		return COHORT_ERR_IO;
	}
	dc->started = true;
	return COHORT_OK;
}

static void dc_stop(void *self)
{
	gw_stop(((struct discord *)self)->gw);
}

static int dc_join(void *self)
{
	struct discord *dc = self;
	if (!dc->started)
		return COHORT_OK;
	pthread_join(dc->thread, NULL);
	dc->started = false;
	/* Save where the session stands, so that a quick restart resumes it. */
	struct gw_session s;
	gw_session_copy(dc->gw, &s);
	if (s.session_id)
		on_session(dc, &s);
	gw_session_release(&s);
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
	dispatch_digest_sent(c->dc->dispatch, c->key, http_result(r));
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
		dispatch_digest_sent(dc->dispatch, c->key, COHORT_OK);
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
	int64_t now = bot_now(dc->bot);
	int64_t first = attempts_first(dc->bot, "discord.digest_attempts", idem_key, now);
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

static void dc_status(void *self, struct adapter_status *out)
{
	struct discord *dc = self;
	memset(out, 0, sizeof(*out));
	gw_status(dc->gw, &out->state, &out->since, &out->reconnects);
	pthread_mutex_lock(&dc->lock);
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
	gw_free(dc->gw);
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
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

static const struct adapter_ops discord_ops = {
	"discord", dc_start, dc_stop, dc_join, dc_post, dc_status, dc_free,
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

/* The saved session, when it is recent enough to resume (and the ids READY gave). */
static bool load_session(struct bot *b, struct gw_session *s, struct discord *dc)
{
	char *value = NULL;
	memset(s, 0, sizeof(*s));
	if (bot_state_get(b, "discord.session", &value) || !value)
		return false;
	cJSON *j = cJSON_Parse(value);
	free(value);
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
		const char *app = jstr(j, "app_id"), *self = jstr(j, "self_id");
		if (snowflake(app)) {
			snprintf(dc->app_id, sizeof(dc->app_id), "%s", app);
			dc->app_id_shared = xstrdup(app);
		}
		if (snowflake(self)) {
			snprintf(dc->self_id, sizeof(dc->self_id), "%s", self);
			dc->self_id_shared = xstrdup(self);
		}
	}
	cJSON_Delete(j);
	return ok;
}

int discord_new(const struct config *cfg, struct bot *b, struct dispatch *d, struct adapter *out)
{
	struct discord *dc = xcalloc(1, sizeof(*dc));
	dc->cfg = cfg;
	dc->bot = b;
	dc->dispatch = d;
	dc->seen = idset_new();
	pthread_mutex_init(&dc->lock, NULL);
	dc->http = make_http(cfg);
	if (!dc->http) {
		dc_free(dc);
		return COHORT_ERR_IO;
	}
	int intents =
		*cfg->discord_prefix ? GW_INTENT_GUILD_MESSAGES | GW_INTENT_MESSAGE_CONTENT : 0;
	struct gw_opts o = {cfg->discord_token,
			    cfg->discord_api_url,
			    intents,
			    dc->http,
			    on_event,
			    on_session,
			    on_fatal,
			    on_tick,
			    dc};
	char *guilds = NULL;
	if (bot_state_get(b, GUILDS_KEY, &guilds) == COHORT_OK)
		read_guilds(guilds, &dc->command_guilds);
	free(guilds);
	struct gw_session s;
	bool resume = load_session(b, &s, dc);
	if (resume)
		log_info(TAG, "found a session saved at shutdown; trying to resume it");
	dc->gw = gw_new(&o, resume ? &s : NULL);
	gw_session_release(&s);
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

void discord_feed(struct adapter *a, const char *payload, size_t len)
{
	gw_feed(((struct discord *)a->self)->gw, payload, len);
}
