#include "roadmap.h"

#include "err.h"
#include "text.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct topic {
	struct rm_topic pub;
	char *key;
	char **alias_keys;
	size_t places;
	size_t alias_cap;
};

struct node {
	struct rm_node pub;
	char *key;
	int line;
};

struct roadmap {
	char *source;
	struct topic *topics;
	size_t ntopics, topic_cap;
	struct node *nodes;
	size_t nnodes, node_cap;
};

/* The default roadmap, generated from roadmaps/backend.md at build time. */
extern const char cohort_default_roadmap[];

void roadmap_free(struct roadmap *rm)
{
	if (!rm)
		return;
	for (size_t i = 0; i < rm->ntopics; i++) {
		struct topic *t = &rm->topics[i];
		free((char *)t->pub.id);
		for (size_t j = 0; j < t->pub.naliases; j++) {
			free((char *)t->pub.aliases[j]);
			free(t->alias_keys[j]);
		}
		free((void *)t->pub.aliases);
		free(t->alias_keys);
		free((char *)t->pub.path);
		free(t->key);
	}
	for (size_t i = 0; i < rm->nnodes; i++) {
		free((char *)rm->nodes[i].pub.name);
		free((char *)rm->nodes[i].pub.id);
		free(rm->nodes[i].key);
	}
	free(rm->topics);
	free(rm->nodes);
	free(rm->source);
	free(rm);
}

static int fail(char *err, const char *fname, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, const char *fname, int line, const char *fmt, ...)
{
	int n = line > 0 ? snprintf(err, COHORT_ERR_LEN, "%s:%d: ", fname, line)
			 : snprintf(err, COHORT_ERR_LEN, "%s: ", fname);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && n < COHORT_ERR_LEN)
		vsnprintf(err + n, COHORT_ERR_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	return COHORT_ERR_PARSE;
}

/* Recognises "- [ ] ", "* [x] " ...; returns the text after the box, or NULL. */
static const char *item_text(const char *s)
{
	if ((s[0] == '-' || s[0] == '*' || s[0] == '+') && s[1] == ' ' && s[2] == '[' &&
	    (s[3] == ' ' || s[3] == 'x' || s[3] == 'X') && s[4] == ']' &&
	    (s[5] == ' ' || s[5] == '\t' || s[5] == '\0'))
		return s + 5;
	return NULL;
}

/* Parses the annotations in "<!-- ... -->" comments of an item's text. */
static int parse_annotations(char *text, char ***aliases, size_t *naliases, const char *fname,
			     int line, char *err)
{
	char *open;
	while ((open = strstr(text, "<!--"))) {
		char *close = strstr(open + 4, "-->");
		if (!close)
			return fail(err, fname, line,
				    "comment not closed on the same line (add -->)");
		*close = '\0';
		char *body = text_trim(open + 4);
		char *colon = strchr(body, ':');
		size_t wordlen = colon ? (size_t)(colon - body) : 0;
		bool annotation = colon && wordlen > 0 &&
				  strspn(body, "abcdefghijklmnopqrstuvwxyz") == wordlen;
		if (annotation) {
			if (wordlen != 7 || strncmp(body, "aliases", 7) != 0)
				return fail(err, fname, line,
					    "unknown annotation \"%.*s:\" (the only one is "
					    "\"aliases:\")",
					    (int)wordlen, body);
			char *save = NULL;
			for (char *a = strtok_r(colon + 1, ",", &save); a;
			     a = strtok_r(NULL, ",", &save)) {
				a = text_trim(a);
				if (!*a)
					continue;
				if (strlen(a) > ROADMAP_MAX_NAME)
					return fail(err, fname, line, "alias longer than %d bytes",
						    ROADMAP_MAX_NAME);
				*aliases = xrealloc(*aliases, (*naliases + 1) * sizeof(char *));
				(*aliases)[(*naliases)++] = xstrdup(a);
			}
		}
		/* Cut the comment out of the name. */
		memmove(open, close + 3, strlen(close + 3) + 1);
	}
	return COHORT_OK;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static long find_topic_key(const struct roadmap *rm, const char *key)
{
	for (size_t i = 0; i < rm->ntopics; i++)
		if (strcmp(rm->topics[i].key, key) == 0)
			return (long)i;
	return -1;
}

/* Which topic (other than self) already claims key as its name or alias, or -1. */
static long key_owner(const struct roadmap *rm, const char *key, long self)
{
	for (size_t i = 0; i < rm->ntopics; i++) {
		if ((long)i == self)
			continue;
		if (strcmp(rm->topics[i].key, key) == 0)
			return (long)i;
		for (size_t j = 0; j < rm->topics[i].pub.naliases; j++)
			if (strcmp(rm->topics[i].alias_keys[j], key) == 0)
				return (long)i;
	}
	return -1;
}

static char *node_path(const struct roadmap *rm, long parent)
{
	long chain[ROADMAP_MAX_DEPTH + 1];
	int n = 0;
	for (long p = parent; p >= 0 && n <= ROADMAP_MAX_DEPTH; p = rm->nodes[p].pub.parent)
		chain[n++] = p;
	struct strbuf sb = STRBUF_INIT;
	for (int i = n - 1; i >= 0; i--)
		sb_addf(&sb, "%s%s", i == n - 1 ? "" : " \u203a ", rm->nodes[chain[i]].pub.name);
	return sb_detach(&sb);
}

/* Second pass: leaves become topics (merged by name), aliases checked. */
static int build_topics(struct roadmap *rm, char ***node_aliases, size_t *node_naliases,
			const char *fname, char *err)
{
	for (size_t i = 0; i < rm->nnodes; i++) {
		struct node *nd = &rm->nodes[i];
		bool section = i + 1 < rm->nnodes && rm->nodes[i + 1].pub.depth > nd->pub.depth;
		nd->pub.topic = -1;
		if (section) {
			if (node_naliases[i])
				return fail(err, fname, nd->line,
					    "\"%s\" is a section (it has items under it); aliases "
					    "go on topics",
					    nd->pub.name);
			continue;
		}
		long t = find_topic_key(rm, nd->key);
		if (t < 0) {
			grow_array((void **)&rm->topics, &rm->topic_cap, rm->ntopics + 1,
				   sizeof(*rm->topics));
			t = (long)rm->ntopics++;
			struct topic *tp = &rm->topics[t];
			memset(tp, 0, sizeof(*tp));
			tp->pub.id = xstrdup(nd->pub.id);
			tp->pub.name = nd->pub.name;
			tp->pub.path = node_path(rm, nd->pub.parent);
			tp->pub.node = i;
			tp->key = xstrdup(nd->key);
			if (!*tp->pub.id)
				return fail(err, fname, nd->line,
					    "\"%s\" has no letters or digits to make an id from",
					    nd->pub.name);
			for (size_t k = 0; k < (size_t)t; k++)
				if (strcmp(rm->topics[k].pub.id, tp->pub.id) == 0)
					return fail(err, fname, nd->line,
						    "\"%s\" and \"%s\" have the same id \"%s\"; "
						    "rename one",
						    nd->pub.name, rm->topics[k].pub.name,
						    tp->pub.id);
		}
		nd->pub.topic = t;
		struct topic *tp = &rm->topics[t];
		tp->places++;
		for (size_t a = 0; a < node_naliases[i]; a++) {
			char *key = text_key(node_aliases[i][a]);
			bool dup = !*key || strcmp(key, tp->key) == 0;
			for (size_t k = 0; k < tp->pub.naliases && !dup; k++)
				dup = strcmp(tp->alias_keys[k], key) == 0;
			if (dup) {
				free(key);
				continue;
			}
			tp->alias_keys =
				xrealloc(tp->alias_keys, (tp->pub.naliases + 1) * sizeof(char *));
			tp->pub.aliases = xrealloc((void *)tp->pub.aliases,
						   (tp->pub.naliases + 1) * sizeof(char *));
			tp->alias_keys[tp->pub.naliases] = key;
			((const char **)tp->pub.aliases)[tp->pub.naliases] =
				xstrdup(node_aliases[i][a]);
			tp->pub.naliases++;
		}
	}
	if (rm->ntopics == 0)
		return fail(err, fname, 0,
			    "no checklist items found (write topics as \"- [ ] Name\" lines)");
	/* An alias must name one topic only, and never another topic's name. */
	for (size_t i = 0; i < rm->ntopics; i++) {
		struct topic *tp = &rm->topics[i];
		for (size_t a = 0; a < tp->pub.naliases; a++) {
			long other = key_owner(rm, tp->alias_keys[a], (long)i);
			if (other >= 0)
				return fail(
					err, fname, rm->nodes[tp->pub.node].line,
					"alias \"%s\" of \"%s\" also names \"%s\"; an alias must "
					"name one topic",
					tp->pub.aliases[a], tp->pub.name,
					rm->topics[other].pub.name);
		}
	}
	return COHORT_OK;
}

int roadmap_parse(const char *text, size_t len, const char *fname, struct roadmap **out, char *err)
{
	*out = NULL;
	if (len > ROADMAP_MAX_INPUT)
		return fail(err, fname, 0, "file is larger than %d bytes", ROADMAP_MAX_INPUT);
	if (memchr(text, '\0', len))
		return fail(err, fname, 0, "file contains a NUL byte (is it a text file?)");
	if (!text_utf8_valid(text, len))
		return fail(err, fname, 0, "file is not valid UTF-8");

	struct roadmap *rm = xcalloc(1, sizeof(*rm));
	rm->source = xstrdup(fname);
	char ***node_aliases = NULL;
	size_t *node_naliases = NULL;
	size_t alias_cap = 0;
	struct {
		int col;
		long node;
	} stack[ROADMAP_MAX_DEPTH];
	int sp = 0;
	int rc = COHORT_OK;
	int lineno = 0;
	const char *p = text, *end = text + len;

	while (p < end && !rc) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = xstrndup(p, n);
		p += n + (nl != NULL);
		lineno++;
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';

		int col = 0;
		size_t i = 0;
		for (; line[i] == ' ' || line[i] == '\t'; i++)
			col = line[i] == '\t' ? (col / 4 + 1) * 4 : col + 1;
		const char *rest = item_text(line + i);
		if (!rest) {
			free(line);
			continue;
		}
		char *name = xstrdup(rest);
		free(line);
		char **aliases = NULL;
		size_t naliases = 0;
		rc = parse_annotations(name, &aliases, &naliases, fname, lineno, err);
		text_trim(name);
		if (!rc && !*name)
			rc = fail(err, fname, lineno, "checklist item without a name");
		if (!rc && strlen(name) > ROADMAP_MAX_NAME)
			rc = fail(err, fname, lineno, "item name longer than %d bytes",
				  ROADMAP_MAX_NAME);
		if (!rc && rm->nnodes >= ROADMAP_MAX_ITEMS)
			rc = fail(err, fname, lineno, "more than %d items", ROADMAP_MAX_ITEMS);
		if (!rc) {
			int popped = -1;
			while (sp > 0 && stack[sp - 1].col >= col)
				popped = stack[--sp].col;
			if (popped >= 0 && popped != col)
				rc = fail(err, fname, lineno,
					  "indentation does not match any item above (indent "
					  "children by one tab or a consistent number of spaces)");
			else if (sp >= ROADMAP_MAX_DEPTH)
				rc = fail(err, fname, lineno, "items nested deeper than %d levels",
					  ROADMAP_MAX_DEPTH);
		}
		if (rc) {
			free(name);
			free_list(aliases, naliases);
			break;
		}
		grow_array((void **)&rm->nodes, &rm->node_cap, rm->nnodes + 1, sizeof(*rm->nodes));
		size_t before = alias_cap;
		grow_array((void **)&node_aliases, &alias_cap, rm->nnodes + 1,
			   sizeof(*node_aliases));
		if (alias_cap != before)
			node_naliases = xrealloc(node_naliases, alias_cap * sizeof(*node_naliases));
		struct node *nd = &rm->nodes[rm->nnodes];
		memset(nd, 0, sizeof(*nd));
		nd->pub.name = name;
		nd->pub.id = text_slug(name);
		nd->pub.depth = sp;
		nd->pub.parent = sp ? stack[sp - 1].node : -1;
		nd->key = text_key(name);
		nd->line = lineno;
		node_aliases[rm->nnodes] = aliases;
		node_naliases[rm->nnodes] = naliases;
		stack[sp].col = col;
		stack[sp].node = (long)rm->nnodes;
		sp++;
		rm->nnodes++;
	}
	/* Subtree ends: a node's subtree runs until the next node at its depth or above. */
	for (size_t i = 0; i < rm->nnodes; i++) {
		size_t j = i + 1;
		while (j < rm->nnodes && rm->nodes[j].pub.depth > rm->nodes[i].pub.depth)
			j++;
		rm->nodes[i].pub.end = j;
	}
	if (!rc)
		rc = build_topics(rm, node_aliases, node_naliases, fname, err);
	for (size_t i = 0; i < rm->nnodes; i++)
		free_list(node_aliases[i], node_naliases[i]);
	free(node_aliases);
	free(node_naliases);
	if (rc) {
		roadmap_free(rm);
		return rc;
	}
	*out = rm;
	return COHORT_OK;
}

int roadmap_load_file(const char *path, struct roadmap **out, char *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: cannot open roadmap file: %s (check roadmap.file)", path,
			 strerror(errno));
		return COHORT_ERR_IO;
	}
	struct strbuf sb = STRBUF_INIT;
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb.len <= ROADMAP_MAX_INPUT)
		sb_add(&sb, buf, n);
	int bad = ferror(f);
	fclose(f);
	int rc;
	if (bad) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot read roadmap file", path);
		rc = COHORT_ERR_IO;
	} else {
		rc = roadmap_parse(sb_str(&sb), sb.len, path, out, err);
	}
	sb_release(&sb);
	return rc;
}

int roadmap_load_default(struct roadmap **out, char *err)
{
	int rc = roadmap_parse(cohort_default_roadmap, strlen(cohort_default_roadmap),
			       "(built-in roadmap)", out, err);
	if (!rc) {
		free((*out)->source);
		(*out)->source = xstrdup("the built-in backend roadmap");
	}
	return rc;
}

const char *roadmap_source(const struct roadmap *rm)
{
	return rm->source;
}

size_t roadmap_topic_count(const struct roadmap *rm)
{
	return rm->ntopics;
}

const struct rm_topic *roadmap_topic(const struct roadmap *rm, size_t i)
{
	return i < rm->ntopics ? &rm->topics[i].pub : NULL;
}

long roadmap_find_id(const struct roadmap *rm, const char *id)
{
	for (size_t i = 0; i < rm->ntopics; i++)
		if (strcmp(rm->topics[i].pub.id, id) == 0)
			return (long)i;
	return -1;
}

size_t roadmap_node_count(const struct roadmap *rm)
{
	return rm->nnodes;
}

const struct rm_node *roadmap_node(const struct roadmap *rm, size_t i)
{
	return i < rm->nnodes ? &rm->nodes[i].pub : NULL;
}

size_t roadmap_topic_places(const struct roadmap *rm, size_t i)
{
	return i < rm->ntopics ? rm->topics[i].places : 0;
}

size_t roadmap_subtree_topics(const struct roadmap *rm, size_t node, bool *in)
{
	memset(in, 0, rm->ntopics * sizeof(bool));
	size_t n = 0;
	for (size_t i = node; i < rm->nodes[node].pub.end; i++) {
		long t = rm->nodes[i].pub.topic;
		if (t >= 0 && !in[t]) {
			in[t] = true;
			n++;
		}
	}
	return n;
}

/* The resolver works over "entries": one key per name or alias, each naming an item. */
struct entry {
	const char *key;
	long item;
	bool alias;
};

static size_t topic_entries(const struct roadmap *rm, struct entry **out)
{
	size_t n = 0, cap = 0;
	struct entry *e = NULL;
	for (size_t i = 0; i < rm->ntopics; i++) {
		grow_array((void **)&e, &cap, n + 1 + rm->topics[i].pub.naliases, sizeof(*e));
		e[n++] = (struct entry){rm->topics[i].key, (long)i, false};
		for (size_t a = 0; a < rm->topics[i].pub.naliases; a++)
			e[n++] = (struct entry){rm->topics[i].alias_keys[a], (long)i, true};
	}
	*out = e;
	return n;
}

static size_t section_entries(const struct roadmap *rm, struct entry **out)
{
	struct entry *e = xcalloc(rm->nnodes, sizeof(*e));
	size_t n = 0;
	for (size_t i = 0; i < rm->nnodes; i++)
		if (rm->nodes[i].pub.topic < 0)
			e[n++] = (struct entry){rm->nodes[i].key, (long)i, false};
	*out = e;
	return n;
}

static void add_candidate(struct rm_resolution *r, long item)
{
	for (size_t i = 0; i < r->ncandidates; i++)
		if (r->candidates[i] == item)
			return;
	if (r->ncandidates < ROADMAP_MAX_CANDIDATES)
		r->candidates[r->ncandidates++] = item;
}

/* How far a typo may go before a key no longer counts as a near miss. */
static int fuzzy_limit(size_t len)
{
	return len <= 3 ? 1 : len <= 6 ? 2 : 3;
}

static void resolve(const struct entry *e, size_t n, size_t nitems, const char *typed,
		    struct rm_resolution *r)
{
	memset(r, 0, sizeof(*r));
	r->index = -1;
	r->match = RM_UNKNOWN;
	if (strlen(typed) > ROADMAP_MAX_QUERY)
		return;
	char *key = text_key(typed);
	size_t klen = strlen(key);
	if (!klen)
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			if (e[i].alias == (pass == 1) && strcmp(e[i].key, key) == 0) {
				r->match = pass ? RM_ALIAS : RM_EXACT;
				r->index = e[i].item;
				goto out;
			}
		}
	}
	/* Unique prefix: count distinct items with a name or alias starting with key. */
	for (size_t i = 0; i < n; i++)
		if (strncmp(e[i].key, key, klen) == 0)
			add_candidate(r, e[i].item);
	if (r->ncandidates == 1) {
		r->match = RM_PREFIX;
		r->index = r->candidates[0];
		r->ncandidates = 0;
		goto out;
	}
	if (r->ncandidates > 1) {
		r->match = RM_AMBIGUOUS;
		goto out;
	}
	/* Fuzzy: each item's best distance over its keys. */
	int *dist = xmalloc(nitems * sizeof(int));
	const int wide = 64;
	for (size_t i = 0; i < nitems; i++)
		dist[i] = wide + 1;
	for (size_t i = 0; i < n; i++) {
		int d = text_distance(key, e[i].key, wide);
		if (d < dist[e[i].item])
			dist[e[i].item] = d;
	}
	int limit = fuzzy_limit(klen);
	int best = wide + 1, second = wide + 1;
	long best_item = -1;
	for (size_t i = 0; i < nitems; i++) {
		if (dist[i] < best) {
			second = best;
			best = dist[i];
			best_item = (long)i;
		} else if (dist[i] < second) {
			second = dist[i];
		}
	}
	bool sure =
		best_item >= 0 && klen >= 4 && best <= (klen >= 8 ? 2 : 1) && second >= best + 2;
	if (sure) {
		r->match = RM_FUZZY;
		r->index = best_item;
	} else {
		/* Ask about everything within reach; with nothing in reach, name the nearest. */
		r->match = best <= limit ? RM_AMBIGUOUS : RM_UNKNOWN;
		int reach = best <= limit ? limit : best + 2;
		for (int d = best; d <= reach; d++)
			for (size_t i = 0; i < nitems; i++)
				if (dist[i] == d)
					add_candidate(r, (long)i);
		if (r->match == RM_UNKNOWN && r->ncandidates > 3)
			r->ncandidates = 3;
	}
	free(dist);
out:
	free(key);
}

void roadmap_resolve(const struct roadmap *rm, const char *typed, struct rm_resolution *out)
{
	struct entry *e;
	size_t n = topic_entries(rm, &e);
	resolve(e, n, rm->ntopics, typed, out);
	free(e);
}

void roadmap_resolve_section(const struct roadmap *rm, const char *typed, struct rm_resolution *out)
{
	struct entry *e;
	size_t n = section_entries(rm, &e);
	resolve(e, n, rm->nnodes, typed, out);
	free(e);
}

static bool names_topic_exactly(const struct roadmap *rm, const char *text)
{
	char *key = text_key(text);
	bool hit = *key && key_owner(rm, key, -1) >= 0;
	free(key);
	return hit;
}

void roadmap_split_args(const struct roadmap *rm, const char *args, char **topic, char **note)
{
	const char *bar = strchr(args, '|');
	if (bar) {
		*topic = text_trim(xstrndup(args, (size_t)(bar - args)));
		*note = text_trim(xstrdup(bar + 1));
		return;
	}
	char *all = text_trim(xstrdup(args));
	/* Word boundaries, longest leading run first. A run far longer than any name
	 * (even with punctuation around it) cannot be one, so the search starts there. */
	size_t len = strlen(all);
	size_t longest = 2 * ROADMAP_MAX_NAME;
	for (size_t cut = len < longest ? len : longest; cut > 0; cut--) {
		if (cut < len && all[cut] != ' ' && all[cut] != '\t')
			continue;
		if (cut < len && (all[cut - 1] == ' ' || all[cut - 1] == '\t'))
			continue;
		char *head = xstrndup(all, cut);
		if (names_topic_exactly(rm, head)) {
			*topic = text_trim(head);
			*note = text_trim(xstrdup(all + cut));
			free(all);
			return;
		}
		free(head);
	}
	*topic = all;
	*note = xstrdup("");
}

struct ranked {
	long topic;
	int score;
};

static int cmp_ranked(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	return a->topic < b->topic ? -1 : a->topic > b->topic;
}

/* How well key (a name or alias key) fits what is being typed; lower is better, -1 not at all. */
static int fit(const char *key, const char *q, size_t qlen, bool alias)
{
	if (strcmp(key, q) == 0)
		return 0;
	if (strncmp(key, q, qlen) == 0)
		return alias ? 2 : 1;
	if (strstr(key, q))
		return 3;
	if (qlen < 3)
		return -1;
	/* A typo in what was typed so far: compare with the same-length start. */
	char head[ROADMAP_MAX_QUERY + 1];
	size_t n = strlen(key) < qlen ? strlen(key) : qlen;
	memcpy(head, key, n);
	head[n] = '\0';
	int max = 1 + (int)qlen / 4;
	int d = text_distance(q, head, max);
	return d <= max ? 4 + d : -1;
}

size_t roadmap_complete(const struct roadmap *rm, const char *typed, long *out, size_t max)
{
	char *q = text_key(typed);
	size_t qlen = strlen(q), n = 0;
	if (qlen > ROADMAP_MAX_QUERY) {
		free(q);
		return 0;
	}
	struct ranked *r = xcalloc(rm->ntopics ? rm->ntopics : 1, sizeof(*r));
	for (size_t i = 0; i < rm->ntopics; i++) {
		const struct topic *t = &rm->topics[i];
		int best = qlen ? fit(t->key, q, qlen, false) : 1;
		for (size_t a = 0; qlen && a < t->pub.naliases; a++) {
			int s = fit(t->alias_keys[a], q, qlen, true);
			if (s >= 0 && (best < 0 || s < best))
				best = s;
		}
		if (best >= 0)
			r[n++] = (struct ranked){(long)i, best};
	}
	qsort(r, n, sizeof(*r), cmp_ranked);
	size_t k = n < max ? n : max;
	for (size_t i = 0; i < k; i++)
		out[i] = r[i].topic;
	free(r);
	free(q);
	return k;
}
