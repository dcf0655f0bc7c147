/* The mailbox: order, one wake-up per empty-to-not-empty, what runs and what is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/mailbox.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdlib.h>

struct log {
	int ran[16];
	int nran;
	int wakes;
	int dropped;
};

static void wake(void *ud)
{
	((struct log *)ud)->wakes++;
}

static void record(void *ctx, void *arg)
{
	struct log *l = ctx;
	l->ran[l->nran++] = *(int *)arg;
	free(arg);
}

static int *num(int n)
{
	int *p = xmalloc(sizeof(*p));
	*p = n;
	return p;
}

struct repost {
	struct mailbox *mb;
	int n;
};

/* A message that posts another: the new one waits for the next run. */
static void post_again(void *ctx, void *arg)
{
	struct repost *r = arg;
	record(ctx, num(r->n));
	mailbox_post(r->mb, record, NULL, num(r->n + 1));
	free(r);
}

static void messages_run_oldest_first_and_wake_once_per_batch(void **state)
{
	(void)state;
	struct log l = {0};
	struct mailbox *mb = mailbox_new(wake, &l);
	assert_true(mailbox_empty(mb));
	for (int i = 1; i <= 3; i++)
		mailbox_post(mb, record, NULL, num(i));
	assert_int_equal(l.wakes, 1); /* the first post woke the owner; the rest found it awake */
	assert_false(mailbox_empty(mb));
	assert_int_equal(mailbox_run(mb, &l), 3);
	assert_int_equal(l.nran, 3);
	assert_int_equal(l.ran[0], 1);
	assert_int_equal(l.ran[2], 3);
	assert_true(mailbox_empty(mb));
	assert_int_equal(mailbox_run(mb, &l), 0);

	struct repost *r = xmalloc(sizeof(*r));
	*r = (struct repost){mb, 10};
	mailbox_post(mb, post_again, NULL, r);
	assert_int_equal(l.wakes, 2);
	assert_int_equal(mailbox_run(mb, &l), 1); /* not the message it posted */
	assert_int_equal(l.wakes, 3);             /* that post found the mailbox empty */
	assert_int_equal(mailbox_run(mb, &l), 1);
	assert_int_equal(l.ran[3], 10);
	assert_int_equal(l.ran[4], 11);
	mailbox_free(mb);
}

static int drops;

static void counted_drop(void *arg)
{
	drops++;
	free(arg);
}

static void messages_never_run_are_dropped(void **state)
{
	(void)state;
	drops = 0;
	struct mailbox *mb = mailbox_new(NULL, NULL);
	mailbox_post(mb, record, counted_drop, num(1));
	mailbox_post(mb, record, NULL, num(2)); /* plain free() */
	assert_int_equal(mailbox_drop_all(mb), 2);
	assert_int_equal(drops, 1);
	assert_true(mailbox_empty(mb));
	mailbox_post(mb, record, counted_drop, num(3));
	mailbox_free(mb);
	assert_int_equal(drops, 2);
}

#define THREADS 4
#define PER_THREAD 5000

struct seq {
	int producer, n;
};

struct tally {
	int last[THREADS];
	int total;
	bool out_of_order;
};

static void check_order(void *ctx, void *arg)
{
	struct tally *t = ctx;
	struct seq *s = arg;
	if (s->n != t->last[s->producer] + 1)
		t->out_of_order = true;
	t->last[s->producer] = s->n;
	t->total++;
	free(s);
}

static void *produce(void *arg)
{
	struct mailbox *mb = arg;
	static int next_id;
	int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_SEQ_CST);
	for (int i = 1; i <= PER_THREAD; i++) {
		struct seq *s = xmalloc(sizeof(*s));
		*s = (struct seq){id, i};
		mailbox_post(mb, check_order, NULL, s);
	}
	return NULL;
}

static void many_producers_keep_each_ones_order(void **state)
{
	(void)state;
	struct mailbox *mb = mailbox_new(NULL, NULL);
	struct tally t = {0};
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, produce, mb);
	while (t.total < THREADS * PER_THREAD)
		mailbox_run(mb, &t);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_false(t.out_of_order);
	assert_int_equal(t.total, THREADS * PER_THREAD);
	mailbox_free(mb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(messages_run_oldest_first_and_wake_once_per_batch),
		cmocka_unit_test(messages_never_run_are_dropped),
		cmocka_unit_test(many_producers_keep_each_ones_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
