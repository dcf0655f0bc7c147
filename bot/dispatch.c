#include "dispatch.h"

#include "bot.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"
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

struct dispatch {
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
	for (;;) {
		pthread_mutex_lock(&d->lock);
		bool stop = d->stop;
		int fail = d->fail;
		pthread_mutex_unlock(&d->lock);
		if (stop || (stop_flag && *stop_flag))
			return fail;
		run_jobs(d);
		if (d->hook)
			d->hook(d->hook_ud);

		int64_t wait = d->hook && d->hook_period < 60000 ? d->hook_period : 60000;
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
