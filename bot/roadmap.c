#include "roadmap.h"

#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
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
	bool plain;   /* a bullet without a checkbox: must have items under it */
	char **was;   /* "was:" ids, before topics are built */
	size_t nwas;
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

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

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
		free_list((char **)t->pub.former, t->pub.nformer);
		free(t->key);
	}
	for (size_t i = 0; i < rm->nnodes; i++) {
		free((char *)rm->nodes[i].pub.name);
		free((char *)rm->nodes[i].pub.id);
		free((char *)rm->nodes[i].pub.link);
		free(rm->nodes[i].key);
		free_list(rm->nodes[i].was, rm->nodes[i].nwas);
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

static bool ascii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The length of the UTF-8 sequence at p (1 for a stray byte) and its code point. */
static size_t utf8_at(const unsigned char *p, uint32_t *cp)
{
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			n = 1;
	uint32_t v = n == 1 ? p[0] : p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++)
		v = (v << 6) | (p[i] & 0x3f);
	*cp = v;
	return n;
}

/* Non-ASCII characters that separate words in an id rather than spell them. */
static bool separator_cp(uint32_t c)
{
	return c < 0xc0 || c == 0xd7 || c == 0xf7 || (c >= 0x2000 && c <= 0x2bff) ||
	       (c >= 0x3000 && c <= 0x303f) || (c >= 0xfe00 && c <= 0xfe0f) ||
	       (c >= 0xff00 && c <= 0xff0f) || c == 0xfeff || c >= 0x1f000;
}

/* A '+' or '#' that ends a word is part of the name ("C++", "C#"), as in text_key(). */
static bool symbol_ends_word(const char *s, size_t i)
{
	return (s[i] == '+' || s[i] == '#') && i > 0 &&
	       (ascii_alnum((unsigned char)s[i - 1]) || s[i - 1] == '+' || s[i - 1] == '#') &&
	       !ascii_alnum((unsigned char)s[i + 1]);
}

char *roadmap_id_of(const char *name)
{
	size_t n = strlen(name);
	char *out = xmalloc(6 * n + 1);
	size_t j = 0;
	bool dash = false;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)name[i];
		const char *word = NULL;
		size_t len = 1;
		uint32_t cp = c;
		if (ascii_alnum(c)) {
			word = name + i;
		} else if (j && symbol_ends_word(name, i)) {
			word = c == '+' ? "plus" : "sharp";
			if (j)
				out[j++] = '-';
		} else if (c >= 0x80) {
			len = utf8_at((const unsigned char *)name + i, &cp);
			if (!separator_cp(cp))
				word = name + i;
		}
		if (!word) {
			dash = true;
		} else if (word == name + i) {
			if (dash && j)
				out[j++] = '-';
			for (size_t k = 0; k < len; k++)
				out[j++] = (char)(c < 0x80 && c >= 'A' && c <= 'Z' ? c - 'A' + 'a'
										  : name[i + k]);
			dash = false;
		} else {
			memcpy(out + j, word, strlen(word));
			j += strlen(word);
			dash = true;
		}
		i += len;
	}
	out[j] = '\0';
	return out;
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

/* Splits "a, b" into trimmed non-empty values appended to *v. */
static int add_values(char *list, char ***v, size_t *n, const char *what, const char *fname,
		      int line, char *err)
{
	char *save = NULL;
	for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		a = text_trim(a);
		if (!*a)
			continue;
		if (strlen(a) > ROADMAP_MAX_NAME)
			return fail(err, fname, line, "%s longer than %d bytes", what,
				    ROADMAP_MAX_NAME);
		*v = xrealloc(*v, (*n + 1) * sizeof(char *));
		(*v)[(*n)++] = xstrdup(a);
	}
	return COHORT_OK;
}

/*
 * Parses the annotations in "<!-- ... -->" comments of an item's text
 * ("aliases: a, b; was: old-id") and cuts the comments out of it.
 */
static int parse_annotations(char *text, char ***aliases, size_t *naliases, char ***was,
			     size_t *nwas, const char *fname, int line, char *err)
{
	char *open;
	while ((open = strstr(text, "<!--"))) {
		char *close = strstr(open + 4, "-->");
		if (!close)
			return fail(err, fname, line,
				    "comment not closed on the same line (add -->)");
		*close = '\0';
		char *save = NULL;
		bool first = true;
		for (char *part = strtok_r(open + 4, ";", &save); part;
		     part = strtok_r(NULL, ";", &save), first = false) {
			char *body = text_trim(part);
			char *colon = strchr(body, ':');
			size_t wordlen = colon ? (size_t)(colon - body) : 0;
			bool annotation = colon && wordlen > 0 &&
					  strspn(body, "abcdefghijklmnopqrstuvwxyz") == wordlen;
			if (!annotation) {
				if (first)
					break; /* a plain comment */
				return fail(err, fname, line,
					    "\"%.40s\" in a comment after \"aliases:\" or \"was:\" "
					    "is not an annotation (write \"aliases: a, b; was: "
					    "old-id\")",
					    body);
			}
			int rc;
			if (wordlen == 7 && strncmp(body, "aliases", 7) == 0)
				rc = add_values(colon + 1, aliases, naliases, "alias", fname, line,
						err);
			else if (wordlen == 3 && strncmp(body, "was", 3) == 0)
				rc = add_values(colon + 1, was, nwas, "former id", fname, line, err);
			else
				rc = fail(err, fname, line,
					  "unknown annotation \"%.*s:\" (there are \"aliases:\" "
					  "and \"was:\")",
					  (int)wordlen, body);
			if (rc)
				return rc;
		}
		/* Cut the comment out of the name. */
		memmove(open, close + 3, strlen(close + 3) + 1);
	}
	return COHORT_OK;
}

/*
 * Replaces each Markdown link "[text](url)" in name by its text; *link gets
 * the first URL (a new string) unless it has one already.
 */
static void strip_links(char *name, char **link)
{
	char *p = name;
	while ((p = strchr(p, '['))) {
		char *close = strchr(p + 1, ']');
		if (!close || close[1] != '(') {
			p++;
			continue;
		}
		char *end = strchr(close + 2, ')');
		if (!end) {
			p++;
			continue;
		}
		if (!*link)
			*link = text_trim(xstrndup(close + 2, (size_t)(end - close - 2)));
		size_t textlen = (size_t)(close - p - 1);
		memmove(p, p + 1, textlen);
		memmove(p + textlen, end + 1, strlen(end + 1) + 1);
		p += textlen;
	}
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

/* The topic (other than self) whose id or former id is id, or -1. */
static long id_owner(const struct roadmap *rm, const char *id, long self, bool former)
{
	for (size_t i = 0; i < rm->ntopics; i++) {
		if ((long)i == self)
			continue;
		if (!former && strcmp(rm->topics[i].pub.id, id) == 0)
			return (long)i;
		for (size_t k = 0; former && k < rm->topics[i].pub.nformer; k++)
			if (strcmp(rm->topics[i].pub.former[k], id) == 0)
				return (long)i;
	}
	return -1;
}

static void add_former(struct topic *tp, const char *id)
{
	for (size_t k = 0; k < tp->pub.nformer; k++)
		if (strcmp(tp->pub.former[k], id) == 0)
			return;
	tp->pub.former = xrealloc((void *)tp->pub.former, (tp->pub.nformer + 1) * sizeof(char *));
	((const char **)tp->pub.former)[tp->pub.nformer++] = xstrdup(id);
}

/*
 * Former ids: the "was:" ids as written, and only those. An id an older cohort gave
 * the name ("caf" for Café, "c" for C++) is not taken over by itself: it may just as
 * well be a topic that was removed (C, beside C++), whose progress must stay put.
 */
static int build_former(struct roadmap *rm, const char *fname, char *err)
{
	for (size_t i = 0; i < rm->nnodes; i++) {
		struct node *nd = &rm->nodes[i];
		if (!nd->nwas)
			continue;
		if (nd->pub.topic < 0)
			return fail(err, fname, nd->line,
				    "\"%s\" is a section (it has items under it); \"was:\" goes on "
				    "topics",
				    nd->pub.name);
		struct topic *tp = &rm->topics[nd->pub.topic];
		for (size_t k = 0; k < nd->nwas; k++) {
			char *id = roadmap_id_of(nd->was[k]);
			long other = *id ? id_owner(rm, id, -1, false) : -1;
			int rc = COHORT_OK;
			if (!*id)
				rc = fail(err, fname, nd->line,
					  "former id \"%s\" of \"%s\" has no letters or digits",
					  nd->was[k], tp->pub.name);
			else if (other >= 0)
				rc = fail(err, fname, nd->line,
					  "former id \"%s\" of \"%s\" is the id of \"%s\" on this "
					  "roadmap (a topic's progress cannot move while it is "
					  "still a topic: remove one of them)",
					  id, tp->pub.name, rm->topics[other].pub.name);
			else if ((other = id_owner(rm, id, nd->pub.topic, true)) >= 0)
				rc = fail(err, fname, nd->line,
					  "former id \"%s\" is claimed by \"%s\" and \"%s\" (it can "
					  "move to one topic only)",
					  id, rm->topics[other].pub.name, tp->pub.name);
			else
				add_former(tp, id);
			free(id);
			if (rc)
				return rc;
		}
	}
	return COHORT_OK;
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
		if (nd->plain)
			return fail(err, fname, nd->line,
				    "\"%s\" is a list item without a checkbox and has no checklist "
				    "items under it (write \"- [ ] %s\" to make it a topic, or "
				    "remove the line)",
				    nd->pub.name, nd->pub.name);
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
		if (!tp->pub.link && nd->pub.link)
			tp->pub.link = nd->pub.link;
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
	return build_former(rm, fname, err);
}

/* One line of the file, as the parser sees it. */
enum line_kind { L_OTHER, L_HEADING, L_ITEM, L_PLAIN };

struct line {
	enum line_kind kind;
	int col;   /* items: indentation column */
	int level; /* headings: 1-6 */
	const char *text; /* in the line's buffer: after the box, bullet or #s */
};

/* A heading "## Name": its level and text, or 0. */
static int heading_level(const char *s, const char **text)
{
	size_t sp = strspn(s, " ");
	if (sp > 3)
		return 0;
	size_t n = strspn(s + sp, "#");
	if (n < 1 || n > 6 || (s[sp + n] != ' ' && s[sp + n] != '\t' && s[sp + n] != '\0'))
		return 0;
	*text = s + sp + n;
	return (int)n;
}

/* A thematic break ("---", "* * *"): three or more of one of - * _ and spaces only. */
static bool thematic_break(const char *s)
{
	char c = 0;
	int n = 0;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t')
			continue;
		if ((*s != '-' && *s != '*' && *s != '_') || (c && *s != c))
			return false;
		c = *s;
		n++;
	}
	return n >= 3;
}

/*
 * Classifies line (after a '\r' is cut), given whether it is inside a fenced
 * code block or a comment; COHORT_ERR_PARSE for a line that looks like a
 * checklist item but is not one.
 */
static int classify(char *line, bool *fence, bool *comment, struct line *out, const char *fname,
		    int lineno, char *err)
{
	memset(out, 0, sizeof(*out));
	const char *t = line + strspn(line, " \t");
	if (!*comment && (!strncmp(t, "```", 3) || !strncmp(t, "~~~", 3))) {
		*fence = !*fence;
		return COHORT_OK;
	}
	if (*fence)
		return COHORT_OK;
	if (*comment) {
		if (strstr(line, "-->"))
			*comment = false;
		return COHORT_OK;
	}
	int col = 0;
	size_t i = 0;
	for (; line[i] == ' ' || line[i] == '\t'; i++)
		col = line[i] == '\t' ? (col / 4 + 1) * 4 : col + 1;
	const char *s = line + i;
	const char *text;
	int level = heading_level(line, &text);
	if (level) {
		*out = (struct line){L_HEADING, 0, level, text};
		return COHORT_OK;
	}
	bool bullet = (s[0] == '-' || s[0] == '*' || s[0] == '+');
	const char *shut = bullet && s[1] == '[' ? strchr(s + 2, ']') : NULL;
	if (shut && shut - s <= 5 && shut[1] != '(')
		return fail(err, fname, lineno,
			    "\"%.60s\" is not a checklist item (write \"- [ ] Name\", with a "
			    "space after the dash)",
			    s);
	if (bullet && (s[1] == ' ' || s[1] == '\t' || s[1] == '\0') && !thematic_break(s)) {
		const char *rest = item_text(s);
		if (rest) {
			*out = (struct line){L_ITEM, col, 0, rest};
			return COHORT_OK;
		}
		const char *b = s + 1 + strspn(s + 1, " \t");
		/* "[]", "[v]", "[ x]": a box, but not one that counts; "[Name](url)" is a link. */
		const char *close = b[0] == '[' ? strchr(b, ']') : NULL;
		if (close && close - b <= 4 && close[1] != '(')
			return fail(err, fname, lineno,
				    "\"%.60s\" is not a checklist item (write \"- [ ] Name\" or "
				    "\"- [x] Name\")",
				    s);
		*out = (struct line){L_PLAIN, col, 0, b};
		return COHORT_OK;
	}
	/* A comment that runs over several lines: nothing in it is the roadmap. */
	const char *open = strstr(line, "<!--");
	while (open) {
		const char *end = strstr(open + 4, "-->");
		if (!end) {
			*comment = true;
			break;
		}
		open = strstr(end + 3, "<!--");
	}
	return COHORT_OK;
}

/*
 * Whether headings are sections: when more than one has list items under it.
 * A heading alone at the top level before any item is the file's title, not
 * a section: it is made an ordinary line.
 */
static bool headings_are_sections(struct line *lines, size_t n)
{
	int top = 7, at_top = 0;
	size_t title = 0;
	bool item_seen = false, title_first = false;
	for (size_t i = 0; i < n; i++) {
		if (lines[i].kind == L_ITEM || lines[i].kind == L_PLAIN)
			item_seen = true;
		if (lines[i].kind != L_HEADING)
			continue;
		if (lines[i].level < top) {
			top = lines[i].level;
			at_top = 0;
			title = i;
			title_first = !item_seen;
		}
		at_top += lines[i].level == top;
	}
	if (at_top == 1 && title_first)
		lines[title].kind = L_OTHER;
	int with_items = 0;
	bool counted = true;
	for (size_t i = 0; i < n; i++) {
		if (lines[i].kind == L_HEADING)
			counted = false;
		else if ((lines[i].kind == L_ITEM || lines[i].kind == L_PLAIN) && !counted) {
			counted = true;
			with_items++;
		}
	}
	return with_items > 1;
}

struct parse {
	struct roadmap *rm;
	char ***node_aliases;
	size_t *node_naliases;
	size_t alias_cap;
};

/* Adds a node named by text (annotations and links taken out of it). */
static int add_node(struct parse *ps, const char *text, bool plain, int depth, long parent,
		    const char *fname, int lineno, char *err)
{
	struct roadmap *rm = ps->rm;
	char *name = xstrdup(text);
	char **aliases = NULL, **was = NULL, *link = NULL;
	size_t naliases = 0, nwas = 0;
	int rc = parse_annotations(name, &aliases, &naliases, &was, &nwas, fname, lineno, err);
	if (!rc)
		strip_links(name, &link);
	text_trim(name);
	if (!rc && !*name)
		rc = fail(err, fname, lineno, "checklist item without a name");
	if (!rc && strlen(name) > ROADMAP_MAX_NAME)
		rc = fail(err, fname, lineno, "item name longer than %d bytes", ROADMAP_MAX_NAME);
	if (!rc && link && strlen(link) > 2 * ROADMAP_MAX_NAME)
		rc = fail(err, fname, lineno, "link longer than %d bytes", 2 * ROADMAP_MAX_NAME);
	if (!rc && rm->nnodes >= ROADMAP_MAX_ITEMS)
		rc = fail(err, fname, lineno, "more than %d items", ROADMAP_MAX_ITEMS);
	if (!rc && depth >= ROADMAP_MAX_DEPTH)
		rc = fail(err, fname, lineno, "items nested deeper than %d levels",
			  ROADMAP_MAX_DEPTH);
	if (rc) {
		free(name);
		free(link);
		free_list(aliases, naliases);
		free_list(was, nwas);
		return rc;
	}
	grow_array((void **)&rm->nodes, &rm->node_cap, rm->nnodes + 1, sizeof(*rm->nodes));
	size_t before = ps->alias_cap;
	grow_array((void **)&ps->node_aliases, &ps->alias_cap, rm->nnodes + 1,
		   sizeof(*ps->node_aliases));
	if (ps->alias_cap != before)
		ps->node_naliases =
			xrealloc(ps->node_naliases, ps->alias_cap * sizeof(*ps->node_naliases));
	struct node *nd = &rm->nodes[rm->nnodes];
	memset(nd, 0, sizeof(*nd));
	nd->pub.name = name;
	nd->pub.id = roadmap_id_of(name);
	nd->pub.depth = depth;
	nd->pub.parent = parent;
	nd->pub.link = link && *link ? link : NULL;
	if (!nd->pub.link)
		free(link);
	nd->key = text_key(name);
	nd->line = lineno;
	nd->plain = plain;
	nd->was = was;
	nd->nwas = nwas;
	ps->node_aliases[rm->nnodes] = aliases;
	ps->node_naliases[rm->nnodes] = naliases;
	rm->nnodes++;
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

	struct parse ps = {xcalloc(1, sizeof(struct roadmap)), NULL, NULL, 0};
	struct roadmap *rm = ps.rm;
	rm->source = xstrdup(fname);
	int rc = COHORT_OK;

	/* First pass: split and classify the lines. */
	char *copy = xstrndup(text, len);
	size_t nlines = 0, line_cap = 0;
	struct line *lines = NULL;
	bool fence = false, comment = false;
	for (char *p = copy, *next; p && !rc; p = next) {
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		size_t n = strlen(p);
		if (n && p[n - 1] == '\r')
			p[n - 1] = '\0';
		grow_array((void **)&lines, &line_cap, nlines + 1, sizeof(*lines));
		rc = classify(p, &fence, &comment, &lines[nlines], fname, (int)nlines + 1, err);
		nlines++;
		if (!next || !*next)
			break;
	}
	bool headings = !rc && headings_are_sections(lines, nlines);

	/* Second pass: the tree. Headings open sections when they count (see above). */
	struct {
		int level;
		long node; /* -1 until an item under it makes it a section */
		const char *text;
		int line;
	} hs[ROADMAP_MAX_DEPTH];
	int hsp = 0;
	struct {
		int col;
		long node;
	} stack[ROADMAP_MAX_DEPTH];
	int sp = 0;
	for (size_t li = 0; li < nlines && !rc; li++) {
		const struct line *l = &lines[li];
		int lineno = (int)li + 1;
		if (l->kind == L_HEADING) {
			if (!headings)
				continue;
			while (hsp > 0 && hs[hsp - 1].level >= l->level)
				hsp--;
			if (hsp >= ROADMAP_MAX_DEPTH) {
				rc = fail(err, fname, lineno, "headings nested deeper than %d levels",
					  ROADMAP_MAX_DEPTH);
				break;
			}
			hs[hsp].level = l->level;
			hs[hsp].node = -1;
			hs[hsp].text = l->text;
			hs[hsp].line = lineno;
			hsp++;
			sp = 0;
			continue;
		}
		if (l->kind != L_ITEM && l->kind != L_PLAIN)
			continue;
		/* The headings above become sections when the first item under them comes. */
		for (int k = 0; k < hsp && !rc; k++) {
			if (hs[k].node >= 0)
				continue;
			rc = add_node(&ps, hs[k].text, false, k, k ? hs[k - 1].node : -1, fname,
				      hs[k].line, err);
			hs[k].node = (long)rm->nnodes - 1;
		}
		if (rc)
			break;
		int popped = -1;
		while (sp > 0 && stack[sp - 1].col >= l->col)
			popped = stack[--sp].col;
		if (popped >= 0 && popped != l->col) {
			rc = fail(err, fname, lineno,
				  "indentation does not match any item above (indent "
				  "children by one tab or a consistent number of spaces)");
			break;
		}
		long parent = sp ? stack[sp - 1].node : hsp ? hs[hsp - 1].node : -1;
		rc = add_node(&ps, l->text, l->kind == L_PLAIN, hsp + sp, parent, fname, lineno,
			      err);
		if (rc)
			break;
		stack[sp].col = l->col;
		stack[sp].node = (long)rm->nnodes - 1;
		sp++;
	}
	free(lines);
	free(copy);
	/* Subtree ends: a node's subtree runs until the next node at its depth or above. */
	for (size_t i = 0; i < rm->nnodes; i++) {
		size_t j = i + 1;
		while (j < rm->nnodes && rm->nodes[j].pub.depth > rm->nodes[i].pub.depth)
			j++;
		rm->nodes[i].pub.end = j;
	}
	if (!rc)
		rc = build_topics(rm, ps.node_aliases, ps.node_naliases, fname, err);
	for (size_t i = 0; i < rm->nnodes; i++)
		free_list(ps.node_aliases[i], ps.node_naliases[i]);
	free(ps.node_aliases);
	free(ps.node_naliases);
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

/*
 * Near misses by edit distance over the keys e[0..n): taken when one item is
 * clearly nearest, asked about when several are in reach, and otherwise
 * unknown, naming the nearest only when they are near.
 */
static void fuzzy(const struct entry *e, size_t n, size_t nitems, const char *key,
		  struct rm_resolution *r)
{
	size_t klen = strlen(key);
	int *dist = xmalloc((nitems ? nitems : 1) * sizeof(int));
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
	} else if (best <= limit) {
		/* Ask about everything within reach. */
		r->match = RM_AMBIGUOUS;
		for (int d = best; d <= limit; d++)
			for (size_t i = 0; i < nitems; i++)
				if (dist[i] == d) {
					add_candidate(r, (long)i);
					r->ntotal++;
				}
	} else {
		/* "Nearest" only when near: one edit beyond reach, in a word long enough. */
		r->match = RM_UNKNOWN;
		if (klen >= 5 && best <= limit + 1)
			for (size_t i = 0; i < nitems; i++)
				if (dist[i] == best && r->ncandidates < 3)
					add_candidate(r, (long)i);
	}
	free(dist);
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
	fuzzy(e, n, nitems, key, r);
out:
	free(key);
}

/* The words of a text as text_key() sees them, each with where it starts in the key. */
#define MAX_WORDS 64
struct words {
	char *buf;
	size_t n;
	const char *w[MAX_WORDS];
	size_t off[MAX_WORDS];
};

static bool word_byte(unsigned char c)
{
	return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* A byte of a word as text_key() reads it: "C++" and "C#" are one word each. */
static bool key_byte(unsigned char c)
{
	return word_byte(c) || c == '+' || c == '#';
}

static void words_init(struct words *w, const char *s)
{
	size_t len = strlen(s);
	w->n = 0;
	w->buf = xmalloc(2 * len + 2);
	size_t at = 0, koff = 0, i = 0;
	while (s[i]) {
		while (s[i] && !key_byte((unsigned char)s[i]))
			i++;
		size_t j = i;
		while (s[j] && key_byte((unsigned char)s[j]))
			j++;
		if (j > i && w->n < MAX_WORDS) {
			char *chunk = xstrndup(s + i, j - i);
			char *k = text_key(chunk);
			size_t kl = strlen(k);
			if (kl) {
				memcpy(w->buf + at, k, kl + 1);
				w->w[w->n] = w->buf + at;
				w->off[w->n++] = koff;
				koff += kl;
				at += kl + 1;
			}
			free(k);
			free(chunk);
		}
		i = j;
	}
}

static void words_release(struct words *w)
{
	free(w->buf);
}

/* True when each of t's words begins the word of f at the same place from f's word j on. */
static bool words_begin_at(const struct words *t, const struct words *f, size_t j)
{
	if (!t->n || j + t->n > f->n)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (strncmp(f->w[j + i], t->w[i], strlen(t->w[i])) != 0)
			return false;
	return true;
}

enum fit { FIT_NONE, FIT_PART, FIT_WHOLE };

/*
 * How the typed key and words fit one name or alias: FIT_WHOLE when they start it
 * and reach its last word ("kuber", "circuit break"), FIT_PART when they begin it or
 * begin some of its words ("css" of "css grid", "auth" of "basic auth").
 */
static enum fit fit_form(const char *key, const struct words *tw, const char *fkey,
			 const struct words *fw)
{
	size_t klen = strlen(key);
	bool prefix = strncmp(fkey, key, klen) == 0;
	bool begins = false;
	for (size_t j = 0; j < fw->n && !begins; j++)
		begins = words_begin_at(tw, fw, j);
	if (!prefix && !begins)
		return FIT_NONE;
	size_t last = fw->n ? fw->off[fw->n - 1] : 0;
	if ((prefix && klen > last) || (words_begin_at(tw, fw, 0) && tw->n == fw->n))
		return FIT_WHOLE;
	return FIT_PART;
}

/* The topic whose name or alias has this key, or -1. */
static long topic_by_key(const struct roadmap *rm, const char *key)
{
	if (!*key)
		return -1;
	for (size_t i = 0; i < rm->ntopics; i++) {
		if (strcmp(rm->topics[i].key, key) == 0)
			return (long)i;
		for (size_t a = 0; a < rm->topics[i].pub.naliases; a++)
			if (strcmp(rm->topics[i].alias_keys[a], key) == 0)
				return (long)i;
	}
	return -1;
}

/* Asks which of a section's topics: its first ones as candidates. */
static void section_question(const struct roadmap *rm, size_t node, struct rm_resolution *r)
{
	r->match = RM_SECTION;
	r->index = (long)node;
	r->ncandidates = 0;
	r->nsections = 0;
	bool *in = xcalloc(rm->ntopics ? rm->ntopics : 1, sizeof(bool));
	r->ntotal = roadmap_subtree_topics(rm, node, in);
	for (size_t i = node; i < rm->nodes[node].pub.end; i++) {
		long t = rm->nodes[i].pub.topic;
		if (t >= 0)
			add_candidate(r, t);
	}
	free(in);
	if (!r->ntotal) {
		/* A section with no topics in it has nothing to ask about. */
		r->match = RM_UNKNOWN;
		r->index = -1;
	}
}

/* Words of names and aliases: one topic surely, a section, or a question; false if none fit. */
static bool resolve_words(const struct roadmap *rm, const char *typed, const char *key,
			  struct rm_resolution *r)
{
	struct words tw;
	words_init(&tw, typed);
	/* Rank 0: reaches a name's last word from its start; 1: starts a name or alias; 2: begins
	 * some word of one. -1: does not fit. */
	int *rank = xmalloc((rm->ntopics ? rm->ntopics : 1) * sizeof(int));
	size_t nfit = 0, nsec = 0;
	long sec = -1, only = -1;
	for (size_t i = 0; i < rm->ntopics; i++) {
		const struct topic *t = &rm->topics[i];
		rank[i] = -1;
		for (size_t f = 0; f <= t->pub.naliases; f++) {
			const char *fkey = f ? t->alias_keys[f - 1] : t->key;
			struct words fw;
			words_init(&fw, f ? t->pub.aliases[f - 1] : t->pub.name);
			enum fit ft = fit_form(key, &tw, fkey, &fw);
			words_release(&fw);
			int rk = ft == FIT_WHOLE		     ? 0
				 : ft == FIT_NONE		     ? -1
				 : strncmp(fkey, key, strlen(key)) == 0 ? 1
									: 2;
			if (rk >= 0 && (rank[i] < 0 || rk < rank[i]))
				rank[i] = rk;
		}
		if (rank[i] >= 0) {
			nfit++;
			only = (long)i;
		}
	}
	for (size_t i = 0; i < rm->nnodes; i++) {
		const struct node *nd = &rm->nodes[i];
		/* A section that shares a topic's name (GraphQL) stands behind the topic. */
		if (nd->pub.topic >= 0 || find_topic_key(rm, nd->key) >= 0)
			continue;
		struct words fw;
		words_init(&fw, nd->pub.name);
		if (fit_form(key, &tw, nd->key, &fw) != FIT_NONE) {
			if (r->nsections < ROADMAP_MAX_CANDIDATES)
				r->sections[r->nsections++] = (long)i;
			nsec++;
			sec = (long)i;
		}
		words_release(&fw);
	}
	bool found = nfit + nsec > 0;
	if (nfit == 1 && nsec == 0 && strlen(key) >= 4 && rank[only] == 0) {
		r->match = RM_PREFIX;
		r->index = only;
	} else if (nfit == 0 && nsec == 1) {
		section_question(rm, (size_t)sec, r);
	} else if (found) {
		r->match = RM_AMBIGUOUS;
		r->ntotal = nfit;
		for (int rk = 0; rk <= 2; rk++)
			for (size_t i = 0; i < rm->ntopics; i++)
				if (rank[i] == rk)
					add_candidate(r, (long)i);
	}
	free(rank);
	words_release(&tw);
	return found;
}

void roadmap_resolve(const struct roadmap *rm, const char *typed, struct rm_resolution *out)
{
	memset(out, 0, sizeof(*out));
	out->index = -1;
	out->match = RM_UNKNOWN;
	if (strlen(typed) > ROADMAP_MAX_QUERY)
		return;
	char *key = text_key(typed);
	if (!*key)
		goto out;
	for (size_t i = 0; i < rm->ntopics; i++)
		if (strcmp(rm->topics[i].key, key) == 0) {
			out->match = RM_EXACT;
			out->index = (long)i;
			goto out;
		}
	long t = topic_by_key(rm, key);
	if (t >= 0) {
		out->match = RM_ALIAS;
		out->index = t;
		goto out;
	}
	for (size_t i = 0; i < rm->nnodes; i++)
		if (rm->nodes[i].pub.topic < 0 && strcmp(rm->nodes[i].key, key) == 0) {
			section_question(rm, i, out);
			goto out;
		}
	if (resolve_words(rm, typed, key, out))
		goto out;
	struct entry *e;
	size_t n = topic_entries(rm, &e);
	fuzzy(e, n, rm->ntopics, key, out);
	free(e);
out:
	free(key);
}

void roadmap_resolve_section(const struct roadmap *rm, const char *typed, struct rm_resolution *out)
{
	struct entry *e;
	size_t n = section_entries(rm, &e);
	resolve(e, n, rm->nnodes, typed, out);
	free(e);
}

/* Where the text of a message splits into parts: ",", ";", "&" and the word "and". */
struct seg {
	size_t start, end; /* trimmed, non-empty */
};

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool sep_char(char c)
{
	return c == ',' || c == ';' || c == '&';
}

/* Length of the word "and" at s + i when it stands alone there, else 0. */
static size_t and_at(const char *s, size_t i)
{
	if (i > 0 && !blank(s[i - 1]) && !sep_char(s[i - 1]))
		return 0;
	if ((s[i] | 0x20) != 'a' || (s[i + 1] | 0x20) != 'n' || (s[i + 2] | 0x20) != 'd')
		return 0;
	char after = s[i + 3];
	return after == '\0' || blank(after) || sep_char(after) ? 3 : 0;
}

static size_t segments(const char *s, struct seg **out)
{
	size_t n = 0, cap = 0, len = strlen(s), start = 0;
	struct seg *v = NULL;
	for (size_t i = 0; i <= len;) {
		size_t sep = i == len ? 1 : sep_char(s[i]) ? 1 : and_at(s, i);
		if (!sep) {
			i++;
			continue;
		}
		size_t a = start, b = i;
		while (a < b && blank(s[a]))
			a++;
		while (b > a && blank(s[b - 1]))
			b--;
		if (b > a) {
			grow_array((void **)&v, &cap, n + 1, sizeof(*v));
			v[n++] = (struct seg){a, b};
		}
		i += sep;
		start = i;
	}
	*out = v;
	return n;
}

/* The topic that s[a..b) names exactly (a name or an alias), or -1. */
static long exact_at(const struct roadmap *rm, const char *s, size_t a, size_t b)
{
	char *text = xstrndup(s + a, b - a);
	char *key = text_key(text);
	long t = topic_by_key(rm, key);
	free(key);
	free(text);
	return t;
}

/* True when s[a..b) holds a separator. */
static bool crosses(const char *s, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (sep_char(s[i]) || and_at(s, i))
			return true;
	return false;
}

/* text_key() that keeps ",", ";" and "&": how a name is spelt across separators. */
static char *sep_key(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = s; *p; p++) {
		if (sep_char(*p)) {
			sb_addc(&sb, *p);
			continue;
		}
		const char *q = p;
		while (*q && !sep_char(*q))
			q++;
		char *chunk = xstrndup(p, (size_t)(q - p));
		char *k = text_key(chunk);
		sb_adds(&sb, k);
		free(k);
		free(chunk);
		p = q - 1;
	}
	return sb_detach(&sb);
}

/*
 * A run across separators names topic t only when t's name or an alias is spelt
 * with the same separators ("Instrumentation, Monitoring, and Telemetry"), so
 * "c, d" is not the alias "cd".
 */
static bool spelt_alike(const struct roadmap *rm, long t, const char *s, size_t a, size_t b)
{
	char *text = xstrndup(s + a, b - a);
	char *key = sep_key(text);
	free(text);
	const struct rm_topic *tp = &rm->topics[t].pub;
	bool same = false;
	for (size_t f = 0; f <= tp->naliases && !same; f++) {
		char *k = sep_key(f ? tp->aliases[f - 1] : tp->name);
		same = strcmp(k, key) == 0;
		free(k);
	}
	free(key);
	return same;
}

/* Where the longest run of words from a that names a topic exactly ends, or 0. */
static size_t exact_run(const struct roadmap *rm, const char *s, size_t a, size_t len, long *topic)
{
	size_t longest = a + 2 * ROADMAP_MAX_NAME;
	for (size_t c = len < longest ? len : longest; c > a; c--) {
		bool word_end = !blank(s[c - 1]) && !sep_char(s[c - 1]) &&
				(c == len || blank(s[c]) || sep_char(s[c]));
		if (!word_end)
			continue;
		/* The run ends with a word, not with punctuation ("kafka ')" is Kafka and a note). */
		size_t w = c;
		while (w > a && !blank(s[w - 1]) && !sep_char(s[w - 1]))
			w--;
		bool has_word = false;
		for (size_t i = w; i < c && !has_word; i++)
			has_word = word_byte((unsigned char)s[i]);
		if (!has_word)
			continue;
		long t = exact_at(rm, s, a, c);
		if (t >= 0 && crosses(s, a, c) && !spelt_alike(rm, t, s, a, c))
			t = -1;
		if (t >= 0) {
			*topic = t;
			return c;
		}
	}
	return 0;
}

static long topic_by_key_text(const struct roadmap *rm, const char *text)
{
	char *key = text_key(text);
	long t = topic_by_key(rm, key);
	free(key);
	return t;
}

static struct rm_part *new_part(struct rm_part **parts, size_t *n, size_t *cap, const char *s,
				size_t a, size_t b)
{
	grow_array((void **)parts, cap, *n + 1, sizeof(**parts));
	struct rm_part *p = &(*parts)[(*n)++];
	memset(p, 0, sizeof(*p));
	p->typed = text_trim(xstrndup(s + a, b - a));
	p->note = xstrdup("");
	return p;
}

/*
 * After the run typed (topic t) come note's words: when the run and the note's first
 * word begin another topic's name ("go" + "mod": Go Modules), the part is a question.
 */
static void check_swallow(const struct roadmap *rm, long t, struct rm_part *p)
{
	char *both = xasprintf("%s %s", p->typed, p->note);
	struct words tw;
	words_init(&tw, both);
	free(both);
	struct words run;
	words_init(&run, p->typed);
	size_t want = run.n + 1;
	words_release(&run);
	if (tw.n > want)
		tw.n = want;
	struct rm_resolution *r = &p->res;
	for (size_t i = 0; i < rm->ntopics; i++) {
		if ((long)i == t || tw.n < want)
			continue;
		const struct topic *tp = &rm->topics[i];
		for (size_t f = 0; f <= tp->pub.naliases; f++) {
			struct words fw;
			words_init(&fw, f ? tp->pub.aliases[f - 1] : tp->pub.name);
			bool hit = words_begin_at(&tw, &fw, 0);
			words_release(&fw);
			if (hit) {
				if (!p->swallowed) {
					memset(r, 0, sizeof(*r));
					r->match = RM_AMBIGUOUS;
					r->index = -1;
					add_candidate(r, t);
					r->ntotal = 1;
					p->swallowed = true;
				}
				add_candidate(r, (long)i);
				r->ntotal++;
				break;
			}
		}
	}
	words_release(&tw);
}

static size_t read_parts(const struct roadmap *rm, const char *s, bool explicit_note,
			 struct rm_part **out)
{
	struct seg *sg;
	size_t nseg = segments(s, &sg), len = strlen(s);
	struct rm_part *parts = NULL;
	size_t n = 0, cap = 0;
	/* The part whose note a following part without a topic continues, or -1. */
	long open_note = -1;
	size_t note_start = 0;
	for (size_t i = 0; i < nseg && n <= ROADMAP_MAX_PARTS;) {
		long t = -1;
		size_t c = exact_run(rm, s, sg[i].start, len, &t);
		size_t j = i;
		while (c && j + 1 < nseg && sg[j + 1].start < c)
			j++;
		if (c && explicit_note && c < sg[j].end)
			c = 0; /* with the note given apart, a part is a topic as a whole */
		if (!c) {
			if (open_note >= 0) {
				struct rm_part *p = &parts[open_note];
				free(p->note);
				p->note = text_trim(xstrndup(s + note_start, sg[i].end - note_start));
			} else {
				struct rm_part *p = new_part(&parts, &n, &cap, s, sg[i].start, sg[i].end);
				roadmap_resolve(rm, p->typed, &p->res);
			}
			i++;
			continue;
		}
		open_note = -1;
		struct rm_part *p = new_part(&parts, &n, &cap, s, sg[i].start, c);
		roadmap_resolve(rm, p->typed, &p->res);
		if (c < sg[j].end) {
			free(p->note);
			p->note = text_trim(xstrndup(s + c, sg[j].end - c));
			long second = topic_by_key_text(rm, p->note);
			if (second >= 0) {
				/* "docker k8s": the note is one more topic. */
				struct rm_part *q = new_part(&parts, &n, &cap, s, c, sg[j].end);
				roadmap_resolve(rm, q->typed, &q->res);
				free(parts[n - 2].note);
				parts[n - 2].note = xstrdup("");
			} else {
				check_swallow(rm, t, p);
				open_note = (long)(n - 1);
				note_start = c;
			}
		}
		i = j + 1;
	}
	free(sg);
	*out = parts;
	return n;
}

/* Each part of topics is a topic as a whole; note (may be NULL) goes with the last. */
static size_t read_explicit(const struct roadmap *rm, const char *topics, const char *note,
			    bool split, struct rm_part **parts)
{
	size_t n = 0, cap = 0;
	if (split) {
		n = read_parts(rm, topics, true, parts);
		cap = n;
	} else {
		*parts = NULL;
		size_t len = strlen(topics);
		struct rm_part *p = new_part(parts, &n, &cap, topics, 0, len);
		if (*p->typed) {
			roadmap_resolve(rm, p->typed, &p->res);
		} else {
			free(p->typed);
			free(p->note);
			n = 0;
		}
	}
	char *nt = text_trim(xstrdup(note ? note : ""));
	if (!n && *nt) {
		/* A note without a topic: one empty part, so the caller asks which topic. */
		roadmap_parts_free(*parts, n);
		*parts = NULL;
		cap = 0;
		new_part(parts, &n, &cap, "", 0, 0);
	}
	if (n) {
		free((*parts)[n - 1].note);
		(*parts)[n - 1].note = nt;
	} else {
		free(nt);
		roadmap_parts_free(*parts, 0);
		*parts = NULL;
	}
	return n;
}

size_t roadmap_read_topics(const struct roadmap *rm, const char *topic, const char *note,
			   struct rm_part **parts)
{
	return read_explicit(rm, topic, note, false, parts);
}

size_t roadmap_read_args(const struct roadmap *rm, const char *args, struct rm_part **parts)
{
	const char *bar = strchr(args, '|');
	if (!bar)
		return read_parts(rm, args, false, parts);
	char *topics = xstrndup(args, (size_t)(bar - args));
	size_t n = read_explicit(rm, topics, bar + 1, true, parts);
	free(topics);
	return n;
}

void roadmap_parts_free(struct rm_part *parts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(parts[i].typed);
		free(parts[i].note);
	}
	free(parts);
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
