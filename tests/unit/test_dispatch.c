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

#include "bot/adapter.h"
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
	struct digest_sink sink = {serves, post_later, &l, NULL};
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

/* ---- the door (bot/adapter.h) ---- */

/* What an answer sink saw, in order: "a" for an answer, "d" for its drop. */
struct seen {
	char trace[64];
	int rc;
	char *text;      /* the rendered reply */
	char first[101]; /* the first choice's value */
	size_t n_choices;
	struct dispatch *d;
};

static void seen_answer(void *ctx, const struct door_answer *a)
{
	struct seen *s = ctx;
	strcat(s->trace, "a");
	s->rc = a->rc;
	free(s->text);
	s->text = a->reply ? reply_render_text(a->reply) : NULL;
	s->n_choices = a->n_choices;
	if (a->n_choices)
		snprintf(s->first, sizeof(s->first), "%s", a->choices[0].value);
}

static void seen_drop(void *ctx)
{
	strcat(((struct seen *)ctx)->trace, "d");
}

/* Submits "/done TOPIC" as ana with a source id, from strings that die after the call. */
static void submit_done(struct door *door, const char *topic, const char *source, struct seen *s)
{
	char *group = xstrdup("test:group"), *args = xstrdup(topic), *src = xstrdup(source);
	struct event ev = {
		.platform = "test",
		.group_id = group,
		.channel_id = "chan",
		.member_id = "test:ana",
		.member_name = "ana",
		.command = "done",
		.args = args,
		.source_id = src,
		.kind = EVENT_COMMAND,
	};
	door_submit(door, &ev, &(struct answer_sink){seen_answer, seen_drop, s});
	/* The event is the door's copy from here on. */
	memset(group, 'x', strlen(group));
	memset(args, 'x', strlen(args));
	free(group);
	free(args);
	free(src);
}

static void an_event_is_answered_through_its_sink_then_dropped(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	struct seen s = {0}, again = {0};
	submit_done(dispatch_door(d), "kafka", "ev-1", &s);
	submit_done(dispatch_door(d), "kafka", "ev-1", &again); /* the platform sent it twice */
	assert_string_equal(s.trace, ""); /* queued: nothing runs on the submitting thread */
	dispatch_drain(d);
	assert_string_equal(s.trace, "ad");
	assert_int_equal(s.rc, COHORT_OK);
	assert_contains(s.text, "Kafka");
	assert_string_equal(again.trace, "ad");
	assert_int_equal(again.rc, COHORT_ERR_DUPLICATE);
	/* Recorded once, as the bot saw it: ana finished Kafka. */
	assert_contains(say_as(f, "ana", false, "progress", ""), "1/");
	free(s.text);
	free(again.text);
	dispatch_free(d);
	assert_int_equal(bot_fixture_free(f), 0);
}

static void a_completion_answers_choices_within_the_platforms_limit(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	struct seen s = {0}, one = {0};
	struct event ev = {
		.platform = "test", .command = "done", .args = "kafk", .kind = EVENT_COMPLETE};
	door_submit(dispatch_door(d), &ev, &(struct answer_sink){seen_answer, seen_drop, &s});
	ev.args = "re";
	ev.max_choices = 1;
	door_submit(dispatch_door(d), &ev, &(struct answer_sink){seen_answer, seen_drop, &one});
	dispatch_drain(d);
	assert_string_equal(s.trace, "ad");
	assert_null(s.text); /* choices, not a reply */
	assert_true(s.n_choices >= 1);
	assert_string_equal(s.first, "Kafka");
	assert_string_equal(one.trace, "ad");
	assert_int_equal(one.n_choices, 1);
	dispatch_free(d);
	assert_int_equal(bot_fixture_free(f), 0);
}

struct ordered {
	struct seen *event; /* answered before the update ran? */
	char saw[64];
	char old[64];
};

static char *check_order(void *ctx, const char *old, bool ok)
{
	struct ordered *o = ctx;
	snprintf(o->saw, sizeof(o->saw), "%s", o->event->trace);
	snprintf(o->old, sizeof(o->old), "%s", ok && old ? old : "(unset)");
	return xasprintf("%s+1", ok && old ? old : "0");
}

static void state_updates_run_after_the_events_submitted_before_them(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	struct door *door = dispatch_door(d);
	struct seen s = {0};
	struct ordered o = {&s, "", ""};
	submit_done(door, "redis", "ev-2", &s);
	door_state_update(door, "x.counter", check_order, NULL, &o);
	door_state_save(door, "x.token", "after-the-events");
	char *value = NULL;
	assert_int_equal(door_state_get(door, "x.token", &value), COHORT_OK);
	assert_null(value); /* queued, not yet saved */
	dispatch_drain(d);
	assert_string_equal(o.saw, "ad"); /* the event ran (and was answered) first */
	assert_string_equal(o.old, "(unset)");
	assert_int_equal(door_state_get(door, "x.counter", &value), COHORT_OK);
	assert_string_equal(value, "0+1");
	free(value);
	assert_int_equal(door_state_get(door, "x.token", &value), COHORT_OK);
	assert_string_equal(value, "after-the-events");
	free(value);
	/* Synchronous set, as an adapter does on the dispatcher thread. */
	assert_int_equal(door_state_set(door, "x.counter", "7"), COHORT_OK);
	door_state_update(door, "x.counter", check_order, NULL, &o);
	dispatch_drain(d);
	assert_string_equal(o.old, "7");
	free(s.text);
	dispatch_free(d);
	assert_int_equal(bot_fixture_free(f), 0);
}

static char *never_runs(void *ctx, const char *old, bool ok)
{
	(void)ctx, (void)old, (void)ok;
	fail_msg("an update ran after the dispatcher was freed without draining");
	return NULL;
}

static void counted_drop(void *ctx)
{
	(*(int *)ctx)++;
}

static void events_left_at_free_get_their_drop_alone(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	struct dispatch *d = dispatch_new(f->bot);
	struct seen s = {0};
	int dropped = 0;
	submit_done(dispatch_door(d), "kafka", "ev-3", &s);
	door_state_update(dispatch_door(d), "x.k", never_runs, counted_drop, &dropped);
	door_state_save(dispatch_door(d), "x.k", "v");
	dispatch_free(d); /* no drain: ASan's leak check sees any copy not freed */
	assert_string_equal(s.trace, "d");
	assert_int_equal(dropped, 1);
	assert_int_equal(bot_fixture_free(f), 0);
}

static void *report_later(void *arg)
{
	door_digest_sent(dispatch_door(arg), "no-such-key", COHORT_OK);
	door_fail(dispatch_door(arg), COHORT_ERR_CONFIG);
	return NULL;
}

static void an_adapter_ends_the_run_through_its_door(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	f->now = 1795626000000;
	struct dispatch *d = dispatch_new(f->bot);
	assert_true(door_now(dispatch_door(d)) == 1795626000000);
	pthread_t t;
	pthread_create(&t, NULL, report_later, d);
	assert_int_equal(dispatch_run(d, NULL, NULL), COHORT_ERR_CONFIG);
	pthread_join(t, NULL);
	dispatch_drain(d);
	dispatch_free(d);
	assert_int_equal(bot_fixture_free(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jobs_from_many_threads_run_in_order_on_one),
		cmocka_unit_test(jobs_left_at_free_are_dropped_with_their_drop_function),
		cmocka_unit_test(a_fatal_adapter_error_ends_the_run),
		cmocka_unit_test(a_queued_digest_is_sent_once_and_retried_after_a_failure),
		cmocka_unit_test(an_event_is_answered_through_its_sink_then_dropped),
		cmocka_unit_test(a_completion_answers_choices_within_the_platforms_limit),
		cmocka_unit_test(state_updates_run_after_the_events_submitted_before_them),
		cmocka_unit_test(events_left_at_free_get_their_drop_alone),
		cmocka_unit_test(an_adapter_ends_the_run_through_its_door),
	};
	return cmocka_run_group_tests_name("dispatch", tests, NULL, NULL);
}
