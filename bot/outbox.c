/* Answers owed: written with their change, delivered once (see outbox.h). */
#include "outbox.h"

#include "bot.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/store.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAG "outbox"
#define MAX_SENDERS 4
/* Answers claimed per platform per sweep: a backlog drains over a few sweeps. */
#define CLAIM_BATCH 50

struct sender {
	const char *platform;
	outbox_deliver_fn *fn;
	void *ud;
};

struct outbox {
	struct bot *bot;
	struct store *st;
	char holder[128];
	struct sender senders[MAX_SENDERS];
	size_t nsenders;
	int64_t *flying; /* ids sent, outcome not known yet */
	size_t nflying, capflying;
	struct store_answer_done *marks; /* done, not yet marked so in the store */
	size_t nmarks, capmarks;
	int64_t marks_since; /* real ms of the oldest waiting mark */
	int64_t next_sweep, next_renew; /* real ms */
	bool started;                   /* the first sweep ran */
};

struct outbox *outbox_new(struct bot *b, struct store *st)
{
	struct outbox *o = xcalloc(1, sizeof(*o));
	o->bot = b;
	o->st = st;
	char host[64] = "";
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "host");
	snprintf(o->holder, sizeof(o->holder), "%s:%ld:%08lx", host, (long)getpid(),
		 (unsigned long)(random_unit() * 4294967295.0));
	return o;
}

static void write_marks(struct outbox *o);

void outbox_free(struct outbox *o)
{
	if (!o)
		return;
	write_marks(o);
	if (o->nmarks)
		log_warn(TAG, "%zu delivered answers could not be marked so: the next start may "
			      "deliver them again (each platform discards a repeat)",
			 o->nmarks);
	free(o->marks);
	free(o->flying);
	free(o);
}

const char *outbox_holder(const struct outbox *o)
{
	return o->holder;
}

size_t outbox_in_flight(const struct outbox *o)
{
	return o->nflying;
}

void outbox_add_sender(struct outbox *o, const char *platform, outbox_deliver_fn *fn, void *ud)
{
	if (o->nsenders == MAX_SENDERS)
		return;
	o->senders[o->nsenders++] = (struct sender){platform, fn, ud};
}

static void fly(struct outbox *o, int64_t id)
{
	if (o->nflying == o->capflying) {
		o->capflying = o->capflying ? 2 * o->capflying : 16;
		o->flying = xrealloc(o->flying, o->capflying * sizeof(*o->flying));
	}
	o->flying[o->nflying++] = id;
}

/* Removes id from the ids in flight; false when it was not there. */
static bool land(struct outbox *o, int64_t id)
{
	for (size_t i = 0; i < o->nflying; i++) {
		if (o->flying[i] == id) {
			o->flying[i] = o->flying[--o->nflying];
			return true;
		}
	}
	return false;
}

/* Whether id is delivered and waits to be marked so. */
static bool marked(const struct outbox *o, int64_t id)
{
	for (size_t i = 0; i < o->nmarks; i++)
		if (o->marks[i].id == id)
			return true;
	return false;
}

/* Writes the waiting done marks in one transaction; on failure they wait for the next try. */
static void write_marks(struct outbox *o)
{
	if (!o->nmarks)
		return;
	if (store_outbox_done(o->st, o->marks, o->nmarks)) {
		log_warn(TAG, "%zu delivered answers could not be marked so yet; trying again",
			 o->nmarks);
		o->marks_since = clock_real_ms();
		return;
	}
	o->nmarks = 0;
}

char *outbox_reply_to_text(const struct reply *r)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "kind", r->kind);
	if (r->ephemeral)
		cJSON_AddTrueToObject(j, "ephemeral");
	if (r->title)
		cJSON_AddStringToObject(j, "title", r->title);
	cJSON *lines = cJSON_AddArrayToObject(j, "lines");
	for (size_t i = 0; i < r->nlines; i++) {
		cJSON *l = cJSON_CreateObject();
		if (r->lines[i].style == LINE_MONO)
			cJSON_AddTrueToObject(l, "mono");
		cJSON_AddStringToObject(l, "text", r->lines[i].text);
		cJSON_AddItemToArray(lines, l);
	}
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}

int outbox_reply_from_text(const char *text, struct reply *out)
{
	reply_init(out);
	cJSON *j = cJSON_Parse(text);
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
	const cJSON *title = cJSON_GetObjectItemCaseSensitive(j, "title");
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(j, "lines");
	if (!cJSON_IsNumber(kind) || kind->valueint < REPLY_INFO || kind->valueint > REPLY_QUESTION ||
	    !cJSON_IsArray(lines)) {
		cJSON_Delete(j);
		return COHORT_ERR_PARSE;
	}
	if (cJSON_IsString(title))
		reply_title(out, (enum reply_kind)kind->valueint, "%s", title->valuestring);
	out->kind = (enum reply_kind)kind->valueint;
	out->ephemeral = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ephemeral"));
	const cJSON *l;
	cJSON_ArrayForEach(l, lines)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(l, "text");
		if (!cJSON_IsString(t))
			continue;
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "mono")))
			reply_mono(out, "%s", t->valuestring);
		else
			reply_line(out, "%s", t->valuestring);
	}
	cJSON_Delete(j);
	return COHORT_OK;
}

int outbox_begin(struct outbox *o, const struct event *ev)
{
	int rc = store_outbox_begin(o->st);
	if (rc)
		return rc;
	/*
	 * A replay of a command whose answer is owed: the outbox sends that answer,
	 * this event gets none; whose answer was delivered: the member has it.
	 */
	int seen = ev->source_id ? store_outbox_answered(o->st, ev->source_id) : COHORT_ERR_NOT_FOUND;
	if (seen == COHORT_ERR_PENDING || seen == COHORT_OK) {
		store_outbox_end(o->st, false);
		log_debug(TAG, "%s was answered before%s", ev->source_id,
			  seen ? " (the outbox sends it)" : "");
		return seen ? COHORT_ERR_PENDING : COHORT_ERR_DUPLICATE;
	}
	return COHORT_OK;
}

/* What a replay whose answer was delivered is told, where it must be told something. */
static void answered_before(struct reply *out)
{
	reply_clear(out);
	reply_title(out, REPLY_INFO, "Already recorded");
	reply_line(out, "That command was handled before; nothing was counted twice.");
	out->ephemeral = true;
}

int outbox_commit(struct outbox *o, const struct event *ev, int handled, const char *address,
		  struct reply *out, int64_t *id)
{
	*id = 0;
	if (handled) {
		/* A replay the event log knew, or a failure: nothing to keep. */
		store_outbox_end(o->st, false);
		return handled;
	}
	char *body = outbox_reply_to_text(out);
	struct store_answer a = {0,       ev->platform, ev->source_id,
				 address, body,         bot_now(o->bot)};
	int64_t lease = clock_real_ms() + OUTBOX_LEASE_MS;
	int rc = store_outbox_put(o->st, &a, o->holder, lease, id);
	free(body);
	if (!rc)
		rc = store_outbox_end(o->st, true);
	else
		store_outbox_end(o->st, false);
	if (rc == COHORT_ERR_DUPLICATE) {
		/* Another process answered it between the look-up and the put. */
		reply_clear(out);
		*id = 0;
		return COHORT_ERR_PENDING;
	}
	if (rc) {
		*id = 0;
		reply_clear(out);
		reply_title(out, REPLY_ERROR, "Something went wrong saving that");
		reply_line(out, "Nothing was saved. Please try again in a moment.");
		return COHORT_OK;
	}
	fly(o, *id);
	return COHORT_OK;
}

int outbox_handle(struct outbox *o, const struct event *ev, const char *address,
		  struct reply *out, int64_t *id)
{
	*id = 0;
	int rc = outbox_begin(o, ev);
	if (rc == COHORT_ERR_DUPLICATE)
		answered_before(out);
	if (rc == COHORT_ERR_PENDING || rc == COHORT_ERR_DUPLICATE)
		return rc;
	if (rc)
		return bot_handle(o->bot, ev, out); /* it answers that nothing was saved */
	return outbox_commit(o, ev, bot_handle(o->bot, ev, out), address, out, id);
}

void outbox_sent(struct outbox *o, int64_t id, enum answer_outcome outcome)
{
	if (id <= 0)
		return;
	land(o, id);
	if (outcome == ANSWER_RETRY) {
		/* Released: a later sweep (of any process) takes it again. */
		log_debug(TAG, "answer %lld was not delivered; trying again", (long long)id);
		if (store_outbox_release(o->st, id))
			log_warn(TAG, "could not release answer %lld: tried again once its lease "
				      "runs out", (long long)id);
		return;
	}
	if (marked(o, id))
		return;
	if (o->nmarks == o->capmarks) {
		o->capmarks = o->capmarks ? 2 * o->capmarks : OUTBOX_MARK_BATCH;
		o->marks = xrealloc(o->marks, o->capmarks * sizeof(*o->marks));
	}
	if (!o->nmarks)
		o->marks_since = clock_real_ms();
	o->marks[o->nmarks++] =
		(struct store_answer_done){id, bot_now(o->bot), outcome == ANSWER_SENT};
	if (o->nmarks >= OUTBOX_MARK_BATCH)
		write_marks(o);
}

struct claim_ctx {
	struct outbox *o;
	const struct sender *s;
	int n;
};

static int deliver_claimed(const struct store_answer *a, void *ud)
{
	struct claim_ctx *c = ud;
	struct outbox *o = c->o;
	c->n++;
	if (marked(o, a->id))
		return 0; /* delivered; its mark waits (write_marks() failed) */
	struct reply r;
	int64_t age = bot_now(o->bot) - a->created_at;
	if (outbox_reply_from_text(a->body, &r)) {
		log_error(TAG, "answer %lld in the outbox cannot be read; dropping it",
			  (long long)a->id);
		outbox_sent(o, a->id, ANSWER_DROPPED);
		return 0;
	}
	log_info(TAG, "delivering answer %lld (%s, %s) written %lld s ago", (long long)a->id,
		 a->platform, a->source_id ? a->source_id : "no source", (long long)(age / 1000));
	fly(o, a->id);
	int rc = c->s->fn(c->s->ud, a->id, a->address, &r, age < 0 ? 0 : age);
	reply_release(&r);
	if (rc == COHORT_ERR_USAGE)
		outbox_sent(o, a->id, ANSWER_DROPPED);
	else if (rc != COHORT_ERR_PENDING && rc != COHORT_OK)
		outbox_sent(o, a->id, ANSWER_RETRY); /* not now: a later sweep */
	return 0;
}

int64_t outbox_tick(struct outbox *o)
{
	int64_t now = clock_real_ms();
	if (o->nmarks && now - o->marks_since >= OUTBOX_MARK_DELAY_MS)
		write_marks(o);
	if (!o->nsenders) /* nothing to deliver through (the console) */
		return o->nmarks ? OUTBOX_MARK_DELAY_MS : 60000;
	if ((o->nflying || o->nmarks) && now >= o->next_renew) {
		o->next_renew = now + OUTBOX_RENEW_MS;
		if (store_outbox_renew(o->st, o->holder, now + OUTBOX_LEASE_MS))
			log_warn(TAG, "could not renew the outbox leases (see above)");
	}
	if (now >= o->next_sweep && o->nsenders) {
		o->next_sweep = now + OUTBOX_SWEEP_MS;
		/*
		 * On SQLite a start takes every answer owed: the process that wrote
		 * them is gone (one process per SQLite store).
		 */
		int64_t upto = !o->started && !store_shared(o->st) ? INT64_MAX : now;
		o->started = true;
		for (size_t i = 0; i < o->nsenders; i++) {
			struct claim_ctx c = {o, &o->senders[i], 0};
			if (store_outbox_claim(o->st, o->senders[i].platform, o->holder, upto,
					       now + OUTBOX_LEASE_MS, CLAIM_BATCH, deliver_claimed,
					       &c))
				log_warn(TAG, "could not look for answers owed (see above)");
			if (c.n == CLAIM_BATCH)
				o->next_sweep = now; /* more waiting: soon again */
		}
		if (o->nflying || o->nmarks)
			o->next_renew = now + OUTBOX_RENEW_MS;
	}
	int64_t next = o->next_sweep;
	if ((o->nflying || o->nmarks) && o->next_renew < next)
		next = o->next_renew;
	if (o->nmarks && o->marks_since + OUTBOX_MARK_DELAY_MS < next)
		next = o->marks_since + OUTBOX_MARK_DELAY_MS;
	return next > now ? next - now : 0;
}
