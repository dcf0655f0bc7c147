/*
 * The dispatcher (jobs from other threads run in order on one thread) and the
 * asynchronous digest path (a platform that answers later).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot_fixture.h"

#include "bot/dispatch.h"
#include "bot/scheduler.h"

#include <pthread.h>

#define PER_THREAD 2000

struct record {
	pthread_mutex_t lock;
	int seen[4]; /* the last number seen from each producer */
	int total;
	bool out_of_order;
	struct dispatch *d;
};

struct job {
	struct record *rec;
	int producer, n;
};

static void run(struct bot *b, void *arg)
{
	(void)b;
	struct job *j = arg;
	/* Jobs run one at a time: no lock needed, but the checker thread reads total. */
	pthread_mutex_lock(&j->rec->lock);
	if (j->n != j->rec->seen[j->producer] + 1)
		j->rec->out_of_order = true;
	j->rec->seen[j->producer] = j->n;
	if (++j->rec->total == 4 * PER_THREAD)
		dispatch_stop(j->rec->d);
	pthread_mutex_unlock(&j->rec->lock);
	free(j); /* a job owns its argument */
}

struct producer {
	struct record *rec;
	int id;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (int i = 1; i <= PER_THREAD; i++) {
		struct job *j = xmalloc(sizeof(*j));
		*j = (struct job){p->rec, p->id, i};
		dispatch_submit(p->rec->d, run, NULL, j);
	}
	return NULL;
}

static void jobs_from_many_threads_run_in_order_on_one(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct record rec = {.d = dispatch_new(f->bot)};
	pthread_mutex_init(&rec.lock, NULL);
	pthread_t t[4];
	struct producer p[4];
	for (int i = 0; i < 4; i++) {
		p[i] = (struct producer){&rec, i};
		pthread_create(&t[i], NULL, produce, &p[i]);
	}
	assert_int_equal(dispatch_run(rec.d, NULL, NULL), COHORT_OK);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	dispatch_drain(rec.d);
	assert_int_equal(rec.total, 4 * PER_THREAD);
	assert_false(rec.out_of_order);
	dispatch_free(rec.d);
	pthread_mutex_destroy(&rec.lock);
	assert_int_equal(bot_fixture_free(f), 0);
}

static void *fail_soon(void *arg)
{
	dispatch_fail(arg, COHORT_ERR_AUTH);
	return NULL;
}

static void a_fatal_adapter_error_ends_the_run(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	pthread_t t;
	pthread_create(&t, NULL, fail_soon, d);
	assert_int_equal(dispatch_run(d, NULL, NULL), COHORT_ERR_AUTH);
	pthread_join(t, NULL);
	dispatch_free(d);
	volatile sig_atomic_t flag = 1; /* a signal that came before the run */
	d = dispatch_new(f->bot);
	assert_int_equal(dispatch_run(d, NULL, &flag), COHORT_OK);
	dispatch_free(d);
	assert_int_equal(bot_fixture_free(f), 0);
}

/* A platform that queues: the outcome comes later through scheduler_sent(). */
struct later {
	int posts;
	char key[20];
};

static bool serves(void *ud, const char *group)
{
	(void)ud;
	return strncmp(group, "test:", 5) == 0;
}

static int post_later(void *ud, const char *group, const char *channel, const struct reply *r,
		      const char *key)
{
	(void)group, (void)channel, (void)r;
	struct later *l = ud;
	l->posts++;
	snprintf(l->key, sizeof(l->key), "%s", key);
	return COHORT_ERR_PENDING;
}

static void a_queued_digest_is_sent_once_and_retried_after_a_failure(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	f->now = 1795626000000; /* 17:00: someone has logged progress before digest time */
	say_as(f, "ana", false, "done", "kafka");
	say_as(f, "ana", true, "digest", "channel here");
	f->now = 1795629600000; /* 2026-11-25T18:00:00Z */
	struct later l = {0};
	struct digest_sink sink = {serves, post_later, &l};
	int64_t next;
	assert_int_equal(scheduler_run(f->bot, &sink, &next), COHORT_OK);
	assert_int_equal(l.posts, 1);
	assert_int_equal(scheduler_inflight(f->bot), 1);
	/* While it is on its way, the scheduler does not send it again. */
	f->now += 60000;
	assert_int_equal(scheduler_run(f->bot, &sink, &next), COHORT_OK);
	assert_int_equal(l.posts, 1);
	/* The platform failed: a minute later it goes again, with the same key. */
	char first[20];
	snprintf(first, sizeof(first), "%s", l.key);
	scheduler_sent(f->bot, l.key, COHORT_ERR_NETWORK);
	assert_int_equal(scheduler_inflight(f->bot), 0);
	assert_int_equal(scheduler_last_result(f->bot), COHORT_ERR_NETWORK);
	f->now += 60000;
	assert_int_equal(scheduler_run(f->bot, &sink, &next), COHORT_OK);
	assert_int_equal(l.posts, 2);
	assert_string_equal(l.key, first);
	/* Accepted: marked sent, never posted again today. */
	scheduler_sent(f->bot, l.key, COHORT_OK);
	f->now += 3600000;
	assert_int_equal(scheduler_run(f->bot, &sink, &next), COHORT_OK);
	assert_int_equal(l.posts, 2);
	assert_int_equal(bot_fixture_free(f), 0);
}

/* A job's argument with fields of its own: only its drop function frees them all. */
struct owned {
	char *text;
	int *dropped;
};

static void owned_drop(void *arg)
{
	struct owned *o = arg;
	(*o->dropped)++;
	free(o->text);
	free(o);
}

static void owned_run(struct bot *b, void *arg)
{
	(void)b;
	(void)arg;
	fail_msg("a job ran after the dispatcher was freed without draining");
}

static void jobs_left_at_free_are_dropped_with_their_drop_function(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	int dropped = 0;
	for (int i = 0; i < 3; i++) {
		struct owned *o = xmalloc(sizeof(*o));
		*o = (struct owned){xstrdup("a field of the job's own"), &dropped};
		dispatch_submit(d, owned_run, owned_drop, o);
	}
	dispatch_submit(d, owned_run, NULL, xstrdup("freed with free()"));
	dispatch_free(d); /* no drain: ASan's leak check sees anything not freed */
	assert_int_equal(dropped, 3);
	bot_fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jobs_from_many_threads_run_in_order_on_one),
		cmocka_unit_test(jobs_left_at_free_are_dropped_with_their_drop_function),
		cmocka_unit_test(a_fatal_adapter_error_ends_the_run),
		cmocka_unit_test(a_queued_digest_is_sent_once_and_retried_after_a_failure),
	};
	return cmocka_run_group_tests_name("dispatch", tests, NULL, NULL);
}
