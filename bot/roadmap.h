/*
 * A learning roadmap: a Markdown checklist ("- [ ] Name", nested by tabs or
 * spaces). An item with children is a section; an item without is a topic.
 * Plain bullets ("- Databases") with checklist items under them are sections
 * too, and so are "## Headings" when more than one heading has items under
 * it (a single one is the file's title). "[Kafka](https://...)" in a name is
 * the name Kafka with a resource link. A topic's id is the slug of its name
 * (README "Roadmap files"); a name that appears in two places is one topic
 * shown in both. "<!-- aliases: a, b; was: old-id -->" after a name lists
 * other names members may type and the ids its progress was kept under before.
 */
#ifndef COHORT_ROADMAP_H
#define COHORT_ROADMAP_H

#include <stdbool.h>
#include <stddef.h>

#define ROADMAP_MAX_INPUT (1024 * 1024)
#define ROADMAP_MAX_NAME 200
#define ROADMAP_MAX_DEPTH 16
#define ROADMAP_MAX_ITEMS 10000
/* Longest text the resolver looks at; longer input is "not on the roadmap". */
#define ROADMAP_MAX_QUERY 200
#define ROADMAP_MAX_CANDIDATES 5
/* Most topics one message may name; reading stops after one more. */
#define ROADMAP_MAX_PARTS 10

struct roadmap;

struct rm_topic {
	const char *id;   /* "postgresql" */
	const char *name; /* "PostgreSQL" */
	const char *path; /* "Relational Databases" (its first place), "" at the top */
	size_t naliases;
	const char *const *aliases; /* as written in the file */
	size_t node;                /* its first place in the tree */
	const char *link;           /* a resource URL from "[Name](URL)", or NULL */
	size_t nformer;
	/* Ids its progress may be stored under: "was:" ids, and the id an older
	 * cohort gave the name ("Café" was "caf") when no other topic has it. */
	const char *const *former;
};

struct rm_node {
	const char *name;
	const char *id; /* slug of the name */
	int depth;      /* 0 at the top level */
	long parent;    /* node index, -1 at the top level */
	long topic;     /* topic index, or -1 for a section */
	size_t end;     /* one past the last node of its subtree */
	const char *link; /* a resource URL from "[Name](URL)", or NULL */
};

/*
 * The id of a topic named name (a new string): ASCII letters and digits
 * lowercased, other letters kept as they are, a '+' or '#' that ends a word
 * spelt out ("C++" is "c-plus-plus", "C#" "c-sharp"), every other run one '-'.
 */
char *roadmap_id_of(const char *name);

/*
 * Parses a Markdown checklist. fname names it in error messages; so does a
 * line it cannot use (a list item without a checkbox and without checklist
 * items under it, a broken checkbox such as "- [] Name").
 * Returns COHORT_OK with a new roadmap in *out, or COHORT_ERR_PARSE with
 * "fname:line: what" in err (COHORT_ERR_LEN bytes).
 */
int roadmap_parse(const char *text, size_t len, const char *fname, struct roadmap **out, char *err);
/* Reads and parses a file; COHORT_ERR_IO when it cannot be read. */
int roadmap_load_file(const char *path, struct roadmap **out, char *err);
/* The built-in backend roadmap (compiled into the binary). */
int roadmap_load_default(struct roadmap **out, char *err);
void roadmap_free(struct roadmap *rm);

/* "the built-in backend roadmap" or the file name. */
const char *roadmap_source(const struct roadmap *rm);
size_t roadmap_topic_count(const struct roadmap *rm);
const struct rm_topic *roadmap_topic(const struct roadmap *rm, size_t i);
/* The topic index with this id, or -1. */
long roadmap_find_id(const struct roadmap *rm, const char *id);
size_t roadmap_node_count(const struct roadmap *rm);
const struct rm_node *roadmap_node(const struct roadmap *rm, size_t i);
/* How many places in the tree show topic i (Redis: 2). */
size_t roadmap_topic_places(const struct roadmap *rm, size_t i);
/*
 * Fills in[] (roadmap_topic_count() flags) with the distinct topics inside
 * node's subtree (the node itself when it is a topic); returns how many.
 */
size_t roadmap_subtree_topics(const struct roadmap *rm, size_t node, bool *in);

enum rm_match {
	RM_EXACT,     /* the name, ignoring case and punctuation */
	RM_ALIAS,     /* one of its aliases */
	RM_PREFIX,    /* the start of exactly one topic's name or alias, reaching its last word */
	RM_FUZZY,     /* a clear near miss ("kubernets") */
	RM_SECTION,   /* a section's name (or the start of one section's name, and nothing
		       * else): index is the node, candidates its first topics: ask which */
	RM_AMBIGUOUS, /* several fit, or one fits but not surely: ask */
	RM_UNKNOWN,   /* nothing fits: candidates are the nearest names, only when near */
};

struct rm_resolution {
	enum rm_match match;
	long index; /* the topic for RM_EXACT..RM_FUZZY, the node for RM_SECTION; else -1 */
	size_t ncandidates;
	long candidates[ROADMAP_MAX_CANDIDATES]; /* topic indexes, best first */
	size_t ntotal; /* how many topics fit (RM_AMBIGUOUS) or the section holds (RM_SECTION);
			* may exceed ncandidates */
	size_t nsections; /* RM_AMBIGUOUS: sections whose names the text begins too */
	long sections[ROADMAP_MAX_CANDIDATES]; /* node indexes */
};

/*
 * Resolves what a member typed to a topic (DESIGN §4): exact name, alias,
 * a section's name (ask which of its topics), then the words of names and
 * aliases: a text that begins or names words of several topics or sections
 * asks; one topic is taken only when the text reaches its name's last word
 * ("kuber", "circuit break", not "css" for "CSS Grid" or "go" for "GOF
 * Design Patterns"); then edit distance, taken only when clearly nearest.
 */
void roadmap_resolve(const struct roadmap *rm, const char *typed, struct rm_resolution *out);
/* Resolves what a member typed to a section node (exact, prefix, fuzzy; no aliases). */
void roadmap_resolve_section(const struct roadmap *rm, const char *typed,
			     struct rm_resolution *out);

/* One topic a member's message names, with its note. */
struct rm_part {
	char *typed; /* the words read as the topic (new string) */
	char *note;  /* what follows them, "" when nothing (new string) */
	struct rm_resolution res;
	/* RM_AMBIGUOUS only: the topic read exactly ends before words that begin a longer
	 * name ("go mod": Go with the note "mod", or Go Modules?); candidates[0] is it. */
	bool swallowed;
};

/*
 * Reads a text command's arguments as one or more topics (DESIGN §5), each
 * resolved with roadmap_resolve(). The text splits at ",", ";", "&" and the
 * word "and", except inside a run of words that is exactly a name or alias
 * ("Instrumentation, Monitoring, and Telemetry", "ci & cd"). In each part the
 * longest leading run of words that is exactly a name or alias is the topic
 * and the rest its note; a note that is itself exactly a name or alias is one
 * more topic ("docker k8s"); a part with no such run is a topic as a whole,
 * or, after a part with a note, more of that note ("kafka built a consumer
 * and a producer"). An explicit "|" ends the topics: each part before it is a
 * topic as a whole and what follows is the last part's note.
 * Returns how many parts there are (0 for empty text; ROADMAP_MAX_PARTS + 1 means
 * "more than ROADMAP_MAX_PARTS", the rest unread); *parts is a new array
 * (NULL for 0) for roadmap_parts_free().
 */
size_t roadmap_read_args(const struct roadmap *rm, const char *args, struct rm_part **parts);
/*
 * The same for Discord's separate options: topic (autocompleted to one name)
 * is one topic as a whole, never split; note (may be NULL) goes with it.
 * Returns 0 or 1 parts (1 with an empty typed text when only a note is given).
 */
size_t roadmap_read_topics(const struct roadmap *rm, const char *topic, const char *note,
			   struct rm_part **parts);
void roadmap_parts_free(struct rm_part *parts, size_t n);

/*
 * Completes a topic name being typed (Discord autocomplete): fills out[] with
 * up to max topic indexes, best first — exact, then name prefix, alias prefix,
 * substring, then near misses; roadmap order within each. An empty text
 * lists the roadmap from the top. Returns how many.
 */
size_t roadmap_complete(const struct roadmap *rm, const char *typed, long *out, size_t max);

#endif
