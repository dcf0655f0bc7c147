#include "idset.h"

#include "lib/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing at half load: a generation of IDSET_GENERATION ids in twice the slots. */
#define SLOTS (2 * IDSET_GENERATION)

struct generation {
	char *slot[SLOTS];
	size_t n;
};

struct idset {
	struct generation gen[2];
	int cur;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static char **find(struct generation *g, const char *id, uint64_t h)
{
	for (size_t i = h % SLOTS;; i = (i + 1) % SLOTS)
		if (!g->slot[i] || strcmp(g->slot[i], id) == 0)
			return &g->slot[i];
}

static void clear(struct generation *g)
{
	for (size_t i = 0; i < SLOTS; i++) {
		free(g->slot[i]);
		g->slot[i] = NULL;
	}
	g->n = 0;
}

struct idset *idset_new(void)
{
	return xcalloc(1, sizeof(struct idset));
}

void idset_free(struct idset *s)
{
	if (!s)
		return;
	clear(&s->gen[0]);
	clear(&s->gen[1]);
	free(s);
}

bool idset_seen(struct idset *s, const char *id)
{
	uint64_t h = hash(id);
	struct generation *cur = &s->gen[s->cur], *old = &s->gen[!s->cur];
	if (*find(cur, id, h) || *find(old, id, h))
		return true;
	if (cur->n == IDSET_GENERATION) {
		/* The older generation goes; this one becomes the older. */
		clear(old);
		s->cur = !s->cur;
		cur = old;
	}
	*find(cur, id, h) = xstrdup(id);
	cur->n++;
	return false;
}
