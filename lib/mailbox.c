#include "mailbox.h"

#include "util.h"

#include <pthread.h>
#include <stdlib.h>

struct mail {
	mail_fn *fn;
	mail_drop_fn *drop;
	void *arg;
	struct mail *next;
};

struct mailbox {
	pthread_mutex_t lock;
	struct mail *head, **tail; /* under lock, oldest first */
	void (*wake)(void *ud);
	void *ud;
};

struct mailbox *mailbox_new(void (*wake)(void *ud), void *ud)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));
	pthread_mutex_init(&mb->lock, NULL);
	mb->tail = &mb->head;
	mb->wake = wake;
	mb->ud = ud;
	return mb;
}

/* Takes the whole list, leaving the mailbox empty. */
static struct mail *take(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	struct mail *m = mb->head;
	mb->head = NULL;
	mb->tail = &mb->head;
	pthread_mutex_unlock(&mb->lock);
	return m;
}

size_t mailbox_drop_all(struct mailbox *mb)
{
	size_t n = 0;
	for (struct mail *m = take(mb), *next; m; m = next, n++) {
		next = m->next;
		if (m->drop)
			m->drop(m->arg);
		else
			free(m->arg);
		free(m);
	}
	return n;
}

void mailbox_free(struct mailbox *mb)
{
	if (!mb)
		return;
	mailbox_drop_all(mb);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}

void mailbox_post(struct mailbox *mb, mail_fn *fn, mail_drop_fn *drop, void *arg)
{
	struct mail *m = xmalloc(sizeof(*m));
	*m = (struct mail){fn, drop, arg, NULL};
	pthread_mutex_lock(&mb->lock);
	bool was_empty = !mb->head;
	*mb->tail = m;
	mb->tail = &m->next;
	pthread_mutex_unlock(&mb->lock);
	/* A non-empty mailbox has a wake-up on its way already. */
	if (was_empty && mb->wake)
		mb->wake(mb->ud);
}

size_t mailbox_run(struct mailbox *mb, void *ctx)
{
	size_t n = 0;
	for (struct mail *m = take(mb), *next; m; m = next, n++) {
		next = m->next;
		m->fn(ctx, m->arg);
		free(m);
	}
	return n;
}

bool mailbox_empty(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	bool empty = !mb->head;
	pthread_mutex_unlock(&mb->lock);
	return empty;
}
