#include "keeper.h"

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAG "lease"
/* After a failed renewal (the database did not answer) the next try comes this soon. */
#define RETRY_MS 1000
/* Lapsed leases (one per Discord HTTP interaction, never renewed) are deleted this often,
 * once they lapsed more than PRUNE_AFTER_MS ago, so the table does not grow forever. */
#define PRUNE_EVERY_MS (5 * 60000)
#define PRUNE_AFTER_MS (24 * 3600000LL)
/*
 * The keeper's PostgreSQL statements are cancelled by the server after this
 * long, so one stuck behind a lock (a long transaction elsewhere holding the
 * leases table) cannot block the renewals of every other lease, or shutdown.
 * Under the 6 s lapse margin of a 30 s claim: a renewal that timed out is
 * tried again (RETRY_MS) before the claim is given up.
 */
#define STATEMENT_TIMEOUT_MS 5000

struct kept {
	char *name;
	int64_t period_ms;
	int64_t next_ms; /* clock_real_ms() of the next renewal */
	int64_t ok_ms;   /* clock_real_ms() when the last take that succeeded was sent */
	bool held;       /* under lock */
};

struct keeper {
	struct store *st; /* the keeper thread's only */
	struct mailbox *mb;
	int wake[2];
	pthread_t thread;
	bool started;
	keeper_lost_fn *lost;
	void *lost_ud;
	pthread_mutex_t lock;
	pthread_cond_t answered;
	bool stop;          /* under lock */
	bool closed;        /* under lock: keeper_close() ran; nothing more is posted */
	struct kept *v;     /* under lock; changed only on the keeper thread */
	size_t n, cap;
	int64_t prune_ms; /* keeper thread: clock_real_ms() of the next pruning of lapsed leases */
};

/* Posts to the keeper's thread unless it is closed: false then (the caller answers itself). */
static bool post(struct keeper *k, mail_fn *fn, mail_drop_fn *drop, void *arg)
{
	pthread_mutex_lock(&k->lock);
	bool open = !k->closed;
	if (open)
		mailbox_post(k->mb, fn, drop, arg);
	pthread_mutex_unlock(&k->lock);
	return open;
}

static void wake(void *ud)
{
	struct keeper *k = ud;
	char c = 1;
	ssize_t r = write(k->wake[1], &c, 1);
	(void)r; /* a full pipe wakes the loop already */
}

/*
 * A kept lease not renewed for its period less this margin is given up: the
 * database may have let it lapse, and another process taken it, meanwhile.
 */
static int64_t lapse_margin(int64_t period_ms)
{
	return period_ms / 5;
}

/* Renews every kept lease that is due; returns the ms until the next is due. */
static int64_t renew_due(struct keeper *k)
{
	int64_t now = clock_real_ms(), wait = 60000;
	for (size_t i = 0; i < k->n; i++) {
		struct kept *x = &k->v[i];
		if (now >= x->next_ms) {
			struct store_lease l;
			int rc = store_lease_take(k->st, x->name, store_lease_holder(), x->period_ms,
						  true, &l);
			if (rc == COHORT_ERR_DENIED) {
				log_error(TAG, "lost %s: %s has it now", x->name, l.holder);
				pthread_mutex_lock(&k->lock);
				struct kept gone = *x;
				k->v[i] = k->v[--k->n];
				pthread_mutex_unlock(&k->lock);
				if (k->lost)
					k->lost(k->lost_ud, gone.name, &l);
				free(gone.name);
				i--;
				continue;
			}
			if (rc && clock_real_ms() - x->ok_ms >= x->period_ms - lapse_margin(x->period_ms)) {
				log_error(TAG,
					  "lost %s: not renewed for %lld ms of its %lld ms period "
					  "(the database did not answer); another process may have it",
					  x->name, (long long)(clock_real_ms() - x->ok_ms),
					  (long long)x->period_ms);
				memset(&l, 0, sizeof(l));
				pthread_mutex_lock(&k->lock);
				struct kept gone = *x;
				k->v[i] = k->v[--k->n];
				pthread_mutex_unlock(&k->lock);
				if (k->lost)
					k->lost(k->lost_ud, gone.name, &l);
				free(gone.name);
				i--;
				continue;
			}
			if (rc)
				log_warn(TAG, "could not renew %s; trying again in %d ms", x->name,
					 RETRY_MS);
			else
				x->ok_ms = now;
			x->next_ms = now + (rc ? RETRY_MS : x->period_ms / 3);
			/* The last try comes when it must be given up otherwise, not after. */
			int64_t last = x->ok_ms + x->period_ms - lapse_margin(x->period_ms);
			if (rc && x->next_ms > last)
				x->next_ms = last;
		}
		if (x->next_ms - now < wait)
			wait = x->next_ms - now;
	}
	return wait < 0 ? 0 : wait;
}

/* Deletes long-lapsed leases when it is time; returns the ms until it is time again. */
static int64_t prune_due(struct keeper *k)
{
	int64_t now = clock_real_ms();
	if (now >= k->prune_ms) {
		int64_t n = 0;
		if (store_lease_prune(k->st, PRUNE_AFTER_MS, &n) == COHORT_OK)
			log_debug(TAG, "deleted %lld leases lapsed more than a day ago", (long long)n);
		else
			log_warn(TAG, "could not delete the lapsed leases; trying again in %d min",
				 PRUNE_EVERY_MS / 60000);
		/* Link codes and wrong link codes (/link) a day past their use, by the bot's clock. */
		if (store_link_prune(k->st, clock_now_ms() - PRUNE_AFTER_MS, &n) == COHORT_OK)
			log_debug(TAG, "deleted %lld link codes and wrong codes of more than a day ago",
				  (long long)n);
		else
			log_warn(TAG, "could not delete old link codes; trying again in %d min",
				 PRUNE_EVERY_MS / 60000);
		k->prune_ms = now + PRUNE_EVERY_MS;
	}
	return k->prune_ms - now;
}

static void *keeper_thread(void *arg)
{
	struct keeper *k = arg;
	for (;;) {
		pthread_mutex_lock(&k->lock);
		bool stop = k->stop;
		pthread_mutex_unlock(&k->lock);
		if (stop)
			break;
		mailbox_run(k->mb, k);
		int64_t wait = renew_due(k), prune_wait = prune_due(k);
		if (prune_wait < wait)
			wait = prune_wait;
		struct pollfd p = {k->wake[0], POLLIN, 0};
		if (poll(&p, 1, (int)wait) > 0) {
			char buf[64];
			while (read(k->wake[0], buf, sizeof(buf)) > 0)
				;
		}
	}
	mailbox_run(k->mb, k); /* a claim waiting for its answer gets one */
	for (size_t i = 0; i < k->n; i++) {
		if (store_lease_release(k->st, k->v[i].name, store_lease_holder()) == COHORT_OK)
			log_debug(TAG, "released %s", k->v[i].name);
		free(k->v[i].name);
	}
	k->n = 0;
	return NULL;
}

int keeper_new(const char *target, bool sync_full, keeper_lost_fn *lost, void *ud,
	       struct keeper **out, char *err)
{
	*out = NULL;
	struct keeper *k = xcalloc(1, sizeof(*k));
	k->wake[0] = k->wake[1] = -1;
	k->lost = lost;
	k->lost_ud = ud;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->answered, NULL);
	int rc = store_open(target, sync_full, &k->st, err);
	if (!rc && store_set_statement_timeout(k->st, STATEMENT_TIMEOUT_MS)) {
		/* not the target in the message: a URL may hold a password */
		snprintf(err, COHORT_ERR_LEN, "the lease keeper's store connection refused "
					      "a statement_timeout (see the log)");
		rc = COHORT_ERR_STORE;
	}
	if (!rc && wake_pipe(k->wake)) {
		snprintf(err, COHORT_ERR_LEN, "cannot make the lease keeper's wake-up pipe");
		rc = COHORT_ERR_IO;
	}
	if (!rc) {
		k->mb = mailbox_new(wake, k);
		if (thread_start(&k->thread, keeper_thread, k)) {
			snprintf(err, COHORT_ERR_LEN, "cannot start the lease keeper's thread");
			rc = COHORT_ERR_IO;
		} else {
			k->started = true;
		}
	}
	if (rc) {
		keeper_free(k);
		return rc;
	}
	*out = k;
	return COHORT_OK;
}

void keeper_close(struct keeper *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	bool was = k->closed;
	k->closed = true;
	k->stop = true;
	pthread_mutex_unlock(&k->lock);
	if (was)
		return;
	if (k->started) {
		wake(k);
		pthread_join(k->thread, NULL);
		k->started = false;
	}
	mailbox_drop_all(k->mb); /* whoever waits gets "never" now, while it still exists */
}

void keeper_free(struct keeper *k)
{
	if (!k)
		return;
	keeper_close(k);
	mailbox_free(k->mb);
	store_free(k->st);
	if (k->wake[0] >= 0) {
		close(k->wake[0]);
		close(k->wake[1]);
	}
	free(k->v);
	pthread_cond_destroy(&k->answered);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

const char *keeper_holder(const struct keeper *k)
{
	(void)k;
	return store_lease_holder();
}

/* A blocking request, run on the keeper's thread; the caller waits for done. */
struct request {
	struct keeper *k;
	const char *name; /* borrowed: the caller waits */
	int64_t period_ms;
	bool release;
	char **state; /* not NULL: read this adapter state key (name) instead */
	struct store_lease lease;
	int rc;
	bool done; /* under k->lock */
};

static long kept_find(struct keeper *k, const char *name)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void run_request(void *ctx, void *arg)
{
	struct keeper *k = ctx;
	struct request *r = arg;
	long i = kept_find(k, r->name);
	if (r->state) {
		r->rc = store_state_get(k->st, r->name, r->state);
	} else if (r->release) {
		r->rc = store_lease_release(k->st, r->name, store_lease_holder());
		if (i >= 0) {
			pthread_mutex_lock(&k->lock);
			free(k->v[i].name);
			k->v[i] = k->v[--k->n];
			pthread_mutex_unlock(&k->lock);
		}
	} else {
		int64_t sent = clock_real_ms();
		r->rc = store_lease_take(k->st, r->name, store_lease_holder(), r->period_ms, true,
					 &r->lease);
		/* A process of this host that was killed need not be waited out. */
		if (r->rc == COHORT_ERR_DENIED && store_lease_holder_gone(r->lease.holder) &&
		    store_lease_take_over(k->st, r->name, r->lease.holder, store_lease_holder(),
					  r->period_ms) == COHORT_OK) {
			log_info(TAG, "took over %s from %s, which no longer runs", r->name,
				 r->lease.holder);
			snprintf(r->lease.holder, sizeof(r->lease.holder), "%s",
				 store_lease_holder());
			r->lease.ms_left = r->period_ms;
			r->rc = COHORT_OK;
		}
		if (!r->rc) {
			pthread_mutex_lock(&k->lock);
			if (i < 0) {
				grow_array((void **)&k->v, &k->cap, k->n + 1, sizeof(*k->v));
				i = (long)k->n++;
				k->v[i].name = xstrdup(r->name);
			}
			k->v[i].period_ms = r->period_ms;
			k->v[i].next_ms = clock_real_ms() + r->period_ms / 3;
			k->v[i].ok_ms = sent;
			k->v[i].held = true;
			pthread_mutex_unlock(&k->lock);
		}
	}
	pthread_mutex_lock(&k->lock);
	r->done = true;
	pthread_cond_broadcast(&k->answered);
	pthread_mutex_unlock(&k->lock);
}

static void drop_request(void *arg)
{
	struct request *r = arg;
	pthread_mutex_lock(&r->k->lock);
	r->rc = COHORT_ERR_STORE;
	r->done = true;
	pthread_cond_broadcast(&r->k->answered);
	pthread_mutex_unlock(&r->k->lock);
}

static int ask(struct keeper *k, struct request *r)
{
	r->k = k;
	if (!post(k, run_request, drop_request, r))
		return COHORT_ERR_STORE; /* closed */
	pthread_mutex_lock(&k->lock);
	while (!r->done)
		pthread_cond_wait(&k->answered, &k->lock);
	pthread_mutex_unlock(&k->lock);
	return r->rc;
}

int keeper_claim(struct keeper *k, const char *name, int64_t period_ms, struct store_lease *out)
{
	struct request r = {.name = name, .period_ms = period_ms};
	int rc = ask(k, &r);
	if (out)
		*out = r.lease;
	return rc;
}

void keeper_release(struct keeper *k, const char *name)
{
	struct request r = {.name = name, .release = true};
	ask(k, &r);
}

int keeper_state_get(struct keeper *k, const char *key, char **value)
{
	*value = NULL;
	struct request r = {.name = key, .state = value};
	return ask(k, &r);
}

bool keeper_holds(struct keeper *k, const char *name)
{
	pthread_mutex_lock(&k->lock);
	long i = kept_find(k, name);
	bool held = i >= 0 && k->v[i].held;
	pthread_mutex_unlock(&k->lock);
	return held;
}

struct slot {
	char *name;
	int64_t period_ms;
	void (*done)(void *ud, bool got, int64_t retry_ms);
	void *ud;
};

static void run_slot(void *ctx, void *arg)
{
	struct keeper *k = ctx;
	struct slot *s = arg;
	struct store_lease l;
	int rc = store_lease_take(k->st, s->name, store_lease_holder(), s->period_ms, false, &l);
	int64_t retry = rc == COHORT_ERR_DENIED ? (l.ms_left > 0 ? l.ms_left : 1) : RETRY_MS;
	if (rc == COHORT_ERR_DENIED)
		log_debug(TAG, "%s is used (%s); free again in %lld ms", s->name, l.holder,
			  (long long)retry);
	s->done(s->ud, rc == COHORT_OK, retry);
	free(s->name);
	free(s);
}

static void drop_slot(void *arg)
{
	struct slot *s = arg;
	s->done(s->ud, false, -1); /* never: the keeper is going away */
	free(s->name);
	free(s);
}

void keeper_slot(struct keeper *k, const char *name, int64_t period_ms,
		 void (*done)(void *ud, bool got, int64_t retry_ms), void *ud)
{
	struct slot *s = xmalloc(sizeof(*s));
	*s = (struct slot){xstrdup(name), period_ms, done, ud};
	if (!post(k, run_slot, drop_slot, s))
		drop_slot(s);
}

struct rate {
	char *name;
	int limit, want;
	void (*done)(void *ud, int granted, int64_t valid_ms);
	void *ud;
};

static void run_rate(void *ctx, void *arg)
{
	struct keeper *k = ctx;
	struct rate *r = arg;
	int64_t ms = 0;
	int rc = store_rate_take(k->st, r->name, r->limit, r->want, &ms);
	if (rc == COHORT_OK)
		r->done(r->ud, r->want, ms);
	else if (rc == COHORT_ERR_DENIED)
		r->done(r->ud, 0, ms);
	else
		r->done(r->ud, 0, RETRY_MS); /* the database did not answer: wait, then ask again */
	free(r->name);
	free(r);
}

static void drop_rate(void *arg)
{
	struct rate *r = arg;
	r->done(r->ud, 0, -1);
	free(r->name);
	free(r);
}

void keeper_rate(struct keeper *k, const char *name, int limit, int want,
		 void (*done)(void *ud, int granted, int64_t valid_ms), void *ud)
{
	struct rate *r = xmalloc(sizeof(*r));
	*r = (struct rate){xstrdup(name), limit, want, done, ud};
	if (!post(k, run_rate, drop_rate, r))
		drop_rate(r);
}
