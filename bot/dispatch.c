#include "dispatch.h"

#include "adapter.h"
#include "bot.h"
#include "bot_internal.h"
#include "event.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"
#include "outbox.h"
#include "page.h"
#include "scheduler.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
	dispatch_fn *fn;
	dispatch_drop_fn *drop;
	void *arg;
};

/* The adapters' view of the dispatcher (bot/adapter.h). */
struct door {
	struct dispatch *d;
};

struct dispatch {
	struct door door;
	struct bot *bot;
	struct mailbox *jobs;
	pthread_mutex_t lock;
	bool stop;   /* under lock */
	int fail;    /* under lock */
	int wake[2]; /* a pipe: a byte wakes dispatch_run() */
	void (*hook)(void *ud);
	void *hook_ud;
	int64_t hook_period;
};

void dispatch_set_hook(struct dispatch *d, void (*fn)(void *ud), void *ud, int64_t period_ms)
{
	d->hook = fn;
	d->hook_ud = ud;
	d->hook_period = period_ms;
}

static void wake_up(void *ud);

struct dispatch *dispatch_new(struct bot *b)
{
	struct dispatch *d = xcalloc(1, sizeof(*d));
	d->bot = b;
	d->door.d = d;
	if (wake_pipe(d->wake) != 0) {
		log_error("dispatch", "cannot make a pipe: %s", strerror(errno));
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->jobs = mailbox_new(wake_up, d);
	return d;
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	mailbox_free(d->jobs);
	close(d->wake[0]);
	close(d->wake[1]);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void dispatch_wake(struct dispatch *d)
{
	/* A full pipe already holds a wake-up: EAGAIN is fine. */
	ssize_t n = write(d->wake[1], "x", 1);
	(void)n;
}

static void wake_up(void *ud)
{
	dispatch_wake(ud);
}

static void run_job(void *ctx, void *arg)
{
	struct job *j = arg;
	j->fn(ctx, j->arg);
	free(j);
}

static void drop_job(void *arg)
{
	struct job *j = arg;
	if (j->drop)
		j->drop(j->arg);
	else
		free(j->arg);
	free(j);
}

void dispatch_submit(struct dispatch *d, dispatch_fn *fn, dispatch_drop_fn *drop, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	*j = (struct job){fn, drop, arg};
	mailbox_post(d->jobs, run_job, drop_job, j);
}

struct sent_job {
	char key[20];
	int result;
};

static void run_digest_sent(struct bot *b, void *arg)
{
	struct sent_job *j = arg;
	scheduler_sent(b, j->key, j->result);
	free(j);
}

void dispatch_digest_sent(struct dispatch *d, const char *idem_key, int result)
{
	struct sent_job *j = xmalloc(sizeof(*j));
	snprintf(j->key, sizeof(j->key), "%s", idem_key);
	j->result = result;
	dispatch_submit(d, run_digest_sent, NULL, j);
}

struct answer_job {
	int64_t id;
	int outcome;
};

static void run_answer_sent(struct bot *b, void *arg)
{
	struct answer_job *j = arg;
	outbox_sent(bot_outbox(b), j->id, (enum answer_outcome)j->outcome);
	free(j);
}

void dispatch_answer_sent(struct dispatch *d, int64_t id, int outcome)
{
	if (id <= 0)
		return;
	struct answer_job *j = xmalloc(sizeof(*j));
	*j = (struct answer_job){id, outcome};
	dispatch_submit(d, run_answer_sent, NULL, j);
}

void dispatch_stop(struct dispatch *d)
{
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_mutex_unlock(&d->lock);
	dispatch_wake(d);
}

void dispatch_fail(struct dispatch *d, int code)
{
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	if (!d->fail)
		d->fail = code;
	pthread_mutex_unlock(&d->lock);
	dispatch_wake(d);
}

/* Runs the jobs queued now (not those they queue); returns how many ran. */
static size_t run_jobs(struct dispatch *d)
{
	return mailbox_run(d->jobs, d->bot);
}

void dispatch_drain(struct dispatch *d)
{
	while (run_jobs(d))
		;
}

int dispatch_run(struct dispatch *d, const struct digest_sink *sink,
		 volatile sig_atomic_t *stop_flag)
{
	int64_t next_tick = INT64_MIN; /* the scheduler runs at once */
	d->bot->sink = sink; /* /link sends a Matrix code to the member's direct room */
	for (;;) {
		pthread_mutex_lock(&d->lock);
		bool stop = d->stop;
		int fail = d->fail;
		pthread_mutex_unlock(&d->lock);
		if (stop || (stop_flag && *stop_flag)) {
			d->bot->sink = NULL; /* the sink is the caller's: not kept past the run */
			return fail;
		}
		run_jobs(d);
		if (d->hook)
			d->hook(d->hook_ud);

		int64_t wait = d->hook && d->hook_period < 60000 ? d->hook_period : 60000;
		int64_t owed = outbox_tick(bot_outbox(d->bot));
		wait = owed < wait ? owed : wait;
		if (sink) {
			int64_t now = bot_now(d->bot);
			if (now >= next_tick || scheduler_changed(d->bot)) {
				if (scheduler_run(d->bot, sink, &next_tick))
					next_tick = now + 60000;
			}
			if (next_tick != INT64_MAX) {
				int64_t w = clock_real_wait_ms(next_tick - bot_now(d->bot));
				wait = w < wait ? w : wait;
			}
		}
		struct pollfd p = {d->wake[0], POLLIN, 0};
		int n = poll(&p, 1, (int)(wait < 0 ? 0 : wait));
		if (n > 0) {
			char buf[64];
			while (read(d->wake[0], buf, sizeof(buf)) > 0)
				;
		}
	}
}

/* ---- the door (bot/adapter.h) ---- */

struct door *dispatch_door(struct dispatch *d)
{
	return &d->door;
}

/* A submitted event with its own copies of everything, and where its answer goes. */
struct event_job {
	struct event ev;
	struct event_option *options;
	struct answer_sink sink;
	char *once; /* door_submit_once(): the claim, or NULL */
	int64_t once_ttl_ms;
};

static char *copy(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void event_job_free(void *arg)
{
	struct event_job *j = arg;
	if (j->sink.drop)
		j->sink.drop(j->sink.ctx);
	char *owned[] = {
		(char *)j->ev.platform,  (char *)j->ev.group_id,     (char *)j->ev.channel_id,
		(char *)j->ev.member_id, (char *)j->ev.member_name,  (char *)j->ev.command,
		(char *)j->ev.args,      (char *)j->ev.topic,        (char *)j->ev.note,
		(char *)j->ev.source_id, (char *)j->ev.success_note, (char *)j->ev.answer_address,
	};
	for (size_t i = 0; i < ARRAY_SIZE(owned); i++)
		free(owned[i]);
	for (size_t i = 0; i < j->ev.n_options; i++) {
		free((char *)j->options[i].name);
		free((char *)j->options[i].value);
	}
	free(j->options);
	free(j->once);
	free(j);
}

/* True when j's claim was taken already (door_submit_once()): j must not run. */
static bool claimed_before(struct bot *b, struct event_job *j)
{
	if (!j->once)
		return false;
	struct store_lease l;
	int rc = store_lease_take(b->store, j->once, store_lease_holder(), j->once_ttl_ms, false,
				  &l);
	if (rc == COHORT_ERR_DENIED) {
		log_info("dispatch", "%s was handled already (by %s); not running it again",
			 j->once, l.holder);
		return true;
	}
	if (rc)
		log_warn("dispatch", "could not record %s in the store; running it all the same",
			 j->once);
	return false;
}

static void run_event(struct bot *b, void *arg)
{
	struct event_job *j = arg;
	struct door_answer a = {COHORT_OK, NULL, NULL, 0, 0};
	if (claimed_before(b, j)) {
		a.rc = COHORT_ERR_DUPLICATE;
		if (j->sink.answer)
			j->sink.answer(j->sink.ctx, &a);
	} else if (j->ev.kind == EVENT_COMPLETE) {
		struct bot_choice ch[BOT_MAX_CHOICES];
		size_t max = j->ev.max_choices;
		if (!max || max > BOT_MAX_CHOICES)
			max = BOT_MAX_CHOICES;
		a.choices = ch;
		a.n_choices = bot_complete_topics(b, j->ev.command, j->ev.group_id, j->ev.args, ch,
						  max);
		if (j->sink.answer)
			j->sink.answer(j->sink.ctx, &a);
	} else {
		struct reply r;
		reply_init(&r);
		if (j->ev.answer_address)
			a.rc = outbox_handle(bot_outbox(b), &j->ev, j->ev.answer_address, &r,
					     &a.answer_id);
		else
			a.rc = bot_handle(b, &j->ev, &r);
		a.reply = &r;
		if (j->sink.answer)
			j->sink.answer(j->sink.ctx, &a);
		reply_release(&r);
	}
	event_job_free(j);
}

static struct event_job *event_job_new(const struct event *ev, const struct answer_sink *sink)
{
	struct event_job *j = xcalloc(1, sizeof(*j));
	j->ev = *ev;
	j->ev.platform = copy(ev->platform);
	j->ev.group_id = copy(ev->group_id);
	j->ev.channel_id = copy(ev->channel_id);
	j->ev.member_id = copy(ev->member_id);
	j->ev.member_name = copy(ev->member_name);
	j->ev.command = copy(ev->command ? ev->command : "");
	j->ev.args = copy(ev->args ? ev->args : "");
	j->ev.topic = copy(ev->topic);
	j->ev.note = copy(ev->note);
	j->ev.source_id = copy(ev->source_id);
	j->ev.success_note = copy(ev->success_note);
	j->ev.answer_address = copy(ev->answer_address);
	if (ev->n_options) {
		j->options = xcalloc(ev->n_options, sizeof(*j->options));
		for (size_t i = 0; i < ev->n_options; i++) {
			j->options[i].name = xstrdup(ev->options[i].name);
			j->options[i].value = xstrdup(ev->options[i].value);
		}
	}
	j->ev.options = j->options;
	if (sink)
		j->sink = *sink;
	return j;
}

void door_submit(struct door *d, const struct event *ev, const struct answer_sink *sink)
{
	dispatch_submit(d->d, run_event, event_job_free, event_job_new(ev, sink));
}

void door_submit_once(struct door *d, const char *once, int64_t ttl_ms, const struct event *ev,
		      const struct answer_sink *sink)
{
	struct event_job *j = event_job_new(ev, sink);
	j->once = xstrdup(once);
	j->once_ttl_ms = ttl_ms;
	dispatch_submit(d->d, run_event, event_job_free, j);
}

struct read_job {
	enum door_read what;
	char *arg;
	struct read_sink sink;
};

static void read_job_free(void *arg)
{
	struct read_job *j = arg;
	if (j->sink.drop)
		j->sink.drop(j->sink.ctx);
	free(j->arg);
	free(j);
}

static void run_read(struct bot *b, void *arg)
{
	struct read_job *j = arg;
	struct strbuf body = STRBUF_INIT;
	int rc;
	if (j->what == DOOR_READ_HEALTH) {
		char *v = NULL;
		rc = bot_state_get(b, "cohort.status", &v);
		free(v);
	} else {
		rc = bot_page(b, j->arg ? j->arg : "",
			      j->what == DOOR_READ_PAGE_JSON ? PAGE_JSON : PAGE_HTML, &body);
	}
	struct door_read_answer a = {rc, sb_str(&body), body.len};
	if (j->sink.answer)
		j->sink.answer(j->sink.ctx, &a);
	sb_release(&body);
	read_job_free(j); /* a job that ran is freed by it, as run_event() does */
}

void door_read(struct door *d, enum door_read what, const char *arg, const struct read_sink *sink)
{
	struct read_job *j = xmalloc(sizeof(*j));
	*j = (struct read_job){what, copy(arg), *sink};
	dispatch_submit(d->d, run_read, read_job_free, j);
}

int door_state_get(struct door *d, const char *key, char **value)
{
	return bot_state_get(d->d->bot, key, value);
}

int door_state_set(struct door *d, const char *key, const char *value)
{
	return bot_state_set(d->d->bot, key, value);
}

struct update_job {
	char *key;
	door_update_fn *fn;
	void (*drop)(void *ctx);
	void *ctx;
};

static void update_job_free(void *arg)
{
	struct update_job *j = arg;
	if (j->drop)
		j->drop(j->ctx);
	free(j->key);
	free(j);
}

static void run_update(struct bot *b, void *arg)
{
	struct update_job *j = arg;
	char *old = NULL;
	bool ok = bot_state_get(b, j->key, &old) == COHORT_OK;
	char *value = j->fn(j->ctx, old, ok);
	free(old);
	if (value && bot_state_set(b, j->key, value))
		log_warn("dispatch", "could not save adapter state %s", j->key);
	free(value);
	update_job_free(j);
}

void door_state_update(struct door *d, const char *key, door_update_fn *fn, void (*drop)(void *),
		       void *ctx)
{
	struct update_job *j = xmalloc(sizeof(*j));
	*j = (struct update_job){xstrdup(key), fn, drop, ctx};
	dispatch_submit(d->d, run_update, update_job_free, j);
}

static char *replace_value(void *ctx, const char *old, bool ok)
{
	(void)old;
	(void)ok;
	return xstrdup(ctx);
}

void door_state_save(struct door *d, const char *key, const char *value)
{
	door_state_update(d, key, replace_value, free, xstrdup(value));
}

int64_t door_now(struct door *d)
{
	return bot_now(d->d->bot);
}

void door_answer_sent(struct door *d, int64_t id, int outcome)
{
	dispatch_answer_sent(d->d, id, outcome);
}

void door_add_sender(struct door *d, const char *platform, outbox_deliver_fn *fn, void *ud)
{
	outbox_add_sender(bot_outbox(d->d->bot), platform, fn, ud);
}

void door_digest_sent(struct door *d, const char *idem_key, int result)
{
	dispatch_digest_sent(d->d, idem_key, result);
}

void door_fail(struct door *d, int code)
{
	dispatch_fail(d->d, code);
}
