#include "fix.h"

#include "bot_internal.h"
#include "event.h"
#include "reply.h"
#include "roadmap.h"
#include "lib/err.h"
#include "lib/text.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How much of what was typed an answer echoes, in bytes (clipped between characters). */
#define ECHO 60

static int clip(const char *s, int max)
{
	int n = (int)strlen(s);
	if (n <= max)
		return n;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

struct member {
	char *id, *name;
};

enum found { FOUND, NOBODY, AMBIGUOUS, FAILED };

/* Looks who up as typed: an id, a name, a mention, with or without the platform's prefix. */
static enum found lookup(struct bot *b, const struct event *ev, const char *who, struct member *m)
{
	char *bare = xstrdup(who);
	size_t len = strlen(bare);
	/* A Discord mention: <@123> or <@!123>. */
	if (len > 3 && bare[0] == '<' && bare[1] == '@' && bare[len - 1] == '>') {
		bare[len - 1] = '\0';
		memmove(bare, bare + (bare[2] == '!' ? 3 : 2), len);
	}
	const char *plain = bare[0] == '@' && !strchr(bare, ':') ? bare + 1 : bare;
	char *tries[4] = {xstrdup(plain), xasprintf("%s:%s", ev->platform, plain),
			  xasprintf("%s:%s", ev->platform, bare), xstrdup(bare)};
	enum found f = NOBODY;
	for (size_t i = 0; i < 4 && f == NOBODY; i++) {
		int rc = store_find_member(b->store, ev->group_id, tries[i], &m->id, &m->name);
		if (rc == COHORT_ERR_NOT_FOUND)
			continue;
		if (rc) {
			f = FAILED;
			break;
		}
		f = FOUND;
		if (strcmp(m->id, tries[i]) != 0) { /* found by name: is it one member's? */
			int n = 0;
			rc = store_member_name_count(b->store, ev->group_id, tries[i], &n);
			if (rc || n > 1) {
				f = rc ? FAILED : AMBIGUOUS;
				free(m->id);
				free(m->name);
				m->id = m->name = NULL;
			}
		}
	}
	for (size_t i = 0; i < 4; i++)
		free(tries[i]);
	free(bare);
	return f;
}

static void member_release(struct member *m)
{
	free(m->id);
	free(m->name);
}

static void usage(struct reply *r)
{
	reply_line(r, "Usage: /fix MEMBER TOPIC done|start|skip|none, or /fix MEMBER remove. "
		      "Nothing was changed.");
}

/* Answers that who named nobody, or several. */
static void not_found(struct reply *r, enum found f, const char *who)
{
	r->ephemeral = true;
	if (f == FAILED) {
		reply_title(r, REPLY_ERROR, "Could not read the group's members");
		reply_line(r, "The store failed (see the log). Nothing was changed.");
	} else if (f == AMBIGUOUS) {
		reply_title(r, REPLY_QUESTION, "Several members are called \u201c%.*s\u201d",
			    clip(who, ECHO), who);
		reply_line(r, "Name the member by id (as /export shows it) or mention them. "
			      "Nothing was changed.");
	} else {
		reply_title(r, REPLY_ERROR, "No member called \u201c%.*s\u201d here",
			    clip(who, ECHO), who);
		reply_line(r, "Members appear once they have recorded a topic. /leaderboard shows "
			      "who is here. Nothing was changed.");
	}
}

static bool status_of(const char *w, enum store_status *s)
{
	static const struct {
		const char *word;
		enum store_status s;
	} words[] = {
		{"done", STATUS_DONE},           {"start", STATUS_IN_PROGRESS},
		{"started", STATUS_IN_PROGRESS}, {"skip", STATUS_SKIPPED},
		{"skipped", STATUS_SKIPPED},     {"none", STATUS_NONE},
		{"clear", STATUS_NONE},
	};
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcasecmp(w, words[i].word) == 0) {
			*s = words[i].s;
			return true;
		}
	return false;
}

static const char *status_words(enum store_status s)
{
	switch (s) {
	case STATUS_NONE: return "unmarked";
	case STATUS_IN_PROGRESS: return "in progress";
	case STATUS_DONE: return "done";
	case STATUS_SKIPPED: return "skipped";
	}
	return "?";
}

/* The topic typed, taken only when unmistakable (exact, alias, a unique prefix); else asks. */
static long topic_of(struct bot *b, const char *typed, struct reply *r)
{
	struct rm_resolution res;
	roadmap_resolve(b->rm, typed, &res);
	if (res.match < RM_FUZZY)
		return res.index;
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < res.ncandidates; i++)
		sb_addf(&sb, "%s%s", i ? ", " : "",
			roadmap_topic(b->rm, (size_t)res.candidates[i])->name);
	r->ephemeral = true;
	if (res.match == RM_FUZZY) {
		reply_title(r, REPLY_QUESTION, "Did you mean %s?",
			    roadmap_topic(b->rm, (size_t)res.index)->name);
	} else if (res.match == RM_UNKNOWN) {
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not on the roadmap",
			    clip(typed, ECHO), typed);
		if (sb.len)
			reply_line(r, "Nearest: %s.", sb_str(&sb));
	} else if (res.match == RM_SECTION) {
		reply_title(r, REPLY_QUESTION, "%s is a section: which topic? %s",
			    roadmap_node(b->rm, (size_t)res.index)->name, sb_str(&sb));
	} else {
		reply_title(r, REPLY_QUESTION, "Which one: %s?", sb_str(&sb));
	}
	reply_line(r, "A correction needs the topic's full name (/topics lists them). "
		      "Nothing was changed.");
	sb_release(&sb);
	return -1;
}

struct counter {
	int n;
};

static int count_row(const struct store_row *row, void *ud)
{
	(void)row;
	((struct counter *)ud)->n++;
	return 0;
}

static int remove_records(struct bot *b, const struct event *ev, const struct member *m,
			  bool confirmed, struct reply *r)
{
	struct counter c = {0};
	int rc = store_member_progress(b->store, ev->group_id, m->id, count_row, &c);
	if (rc)
		goto failed;
	r->ephemeral = true;
	if (!c.n) {
		reply_title(r, REPLY_INFO, "%s has no records here", m->name);
		reply_line(r, "Nothing was changed.");
		return COHORT_OK;
	}
	if (!confirmed) {
		reply_title(r, REPLY_QUESTION, "Remove %s%d %s of %s?", c.n > 1 ? "all " : "the ",
			    c.n, text_plural(c.n, "record", "records"), m->name);
		reply_line(r, "Their progress, points and ranks in this group go (logged as yours; "
			      "/undo brings them back).");
		reply_line(r, "To do it, say: /fix %s remove confirm", m->id);
		return COHORT_OK;
	}
	int n = 0;
	rc = store_fix_remove(b->store, ev->group_id, m->id, ev->member_id, ev->member_name,
			      ev->source_id, bot_now(b), &n);
	if (rc == COHORT_ERR_DUPLICATE) {
		reply_title(r, REPLY_INFO, "Already recorded");
		reply_line(r, "That removal was handled before; nothing was changed twice.");
		return rc;
	}
	if (rc == COHORT_ERR_NOT_FOUND) {
		reply_title(r, REPLY_INFO, "%s has no records here", m->name);
		reply_line(r, "Nothing was changed.");
		return COHORT_OK;
	}
	if (rc)
		goto failed;
	r->ephemeral = false;
	reply_title(r, REPLY_SUCCESS, "Removed %d %s of %s", n, text_plural(n, "record", "records"),
		    m->name);
	reply_line(r, "Removed by %s; /undo by %s brings them back.", ev->member_name,
		   ev->member_name);
	return COHORT_OK;
failed:
	r->ephemeral = true;
	reply_title(r, REPLY_ERROR, "Could not change the records");
	reply_line(r, "The store failed (see the log). Nothing was changed.");
	return rc;
}

static int set_record(struct bot *b, const struct event *ev, const struct member *m, long t,
		      enum store_status s, struct reply *r)
{
	const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)t);
	struct store_change c = {ev->group_id, m->id,         m->name,   topic->id, s,
				 NULL,         ev->source_id, bot_now(b)};
	struct store_prior prior;
	int rc = store_fix_status(b->store, &c, ev->member_id, ev->member_name, &prior);
	if (rc == COHORT_ERR_UNCHANGED) {
		r->ephemeral = true;
		reply_title(r, REPLY_INFO, "%s is %s for %s already", topic->name, status_words(s),
			    m->name);
		reply_line(r, "Nothing was changed.");
		return COHORT_OK;
	}
	if (rc == COHORT_ERR_DUPLICATE) {
		r->ephemeral = true;
		reply_title(r, REPLY_INFO, "Already recorded");
		reply_line(r, "That correction was handled before; nothing was changed twice.");
		return rc;
	}
	if (rc) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "Could not record the correction");
		reply_line(r, "The store failed (see the log). Nothing was changed.");
		return rc;
	}
	r->ephemeral = false;
	reply_title(r, REPLY_SUCCESS, "Fixed: %s is %s for %s", topic->name, status_words(s),
		    m->name);
	reply_line(r, "It was %s. Set by %s; /undo by %s reverts it.", status_words(prior.status),
		   ev->member_name, ev->member_name);
	return COHORT_OK;
}

/* The value of a slash command's option, or NULL. */
static const char *option(const struct event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n_options; i++)
		if (strcmp(ev->options[i].name, name) == 0)
			return ev->options[i].value;
	return NULL;
}

/* The slash form: member, status and topic are options. */
static int fix_slash(struct bot *b, const struct event *ev, struct reply *r)
{
	const char *who = option(ev, "member"), *st = option(ev, "status");
	const char *typed = option(ev, "topic");
	if (!who || !st) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "/fix needs a member and a status");
		usage(r);
		return COHORT_OK;
	}
	struct member m = {0};
	enum found f = lookup(b, ev, who, &m);
	if (f != FOUND) {
		not_found(r, f, who);
		return COHORT_OK;
	}
	int rc = COHORT_OK;
	enum store_status s;
	if (strcmp(st, "remove") == 0 || strcmp(st, "remove confirm") == 0) {
		rc = remove_records(b, ev, &m, strcmp(st, "remove confirm") == 0, r);
	} else if (!status_of(st, &s)) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a status", clip(st, ECHO), st);
		usage(r);
	} else if (!typed || !*typed) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "Which topic?");
		usage(r);
	} else {
		long t = topic_of(b, typed, r);
		if (t >= 0)
			rc = set_record(b, ev, &m, t, s, r);
	}
	member_release(&m);
	return rc;
}

int fix_command(struct bot *b, const struct event *ev, struct reply *r)
{
	if (!ev->is_admin) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "Only admins can correct records");
		reply_line(r,
			   "Ask someone who can manage this server or room. Nothing was changed.");
		return COHORT_OK;
	}
	if (ev->slash)
		return fix_slash(b, ev, r);

	/* The words typed: MEMBER... TOPIC... STATUS, or MEMBER... remove [confirm]. */
	char *text = xstrdup(ev->args);
	char **w = NULL;
	size_t n = 0, cap = 0;
	char *save = NULL;
	for (char *p = strtok_r(text, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
		grow_array((void **)&w, &cap, n + 1, sizeof(*w));
		w[n++] = p;
	}
	int rc = COHORT_OK;
	struct member m = {0};
	bool removing = false, confirmed = false;
	size_t end = n; /* the words before the status */
	if (n >= 3 && strcasecmp(w[n - 1], "confirm") == 0 && strcasecmp(w[n - 2], "remove") == 0)
		removing = confirmed = true, end = n - 2;
	else if (n >= 2 && strcasecmp(w[n - 1], "remove") == 0)
		removing = true, end = n - 1;
	else if (n)
		end = n - 1;
	enum store_status s = STATUS_NONE;
	r->ephemeral = true;
	if (n < 2 || (!removing && n < 3)) {
		reply_title(r, REPLY_ERROR, "/fix needs a member, a topic and a status");
		usage(r);
		goto out;
	}
	if (!removing && !status_of(w[n - 1], &s)) {
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a status",
			    clip(w[n - 1], ECHO), w[n - 1]);
		reply_line(r, "The last word says what to set: done, start, skip or none "
			      "(or \u201cremove\u201d for all of a member's records).");
		usage(r);
		goto out;
	}
	/* The member: the longest run of leading words that names one (a topic word must remain).
	 */
	size_t k = removing ? end : end - 1;
	enum found f = NOBODY;
	struct strbuf who = STRBUF_INIT;
	for (; k >= 1; k--) {
		sb_release(&who);
		who = (struct strbuf)STRBUF_INIT;
		for (size_t i = 0; i < k; i++)
			sb_addf(&who, "%s%s", i ? " " : "", w[i]);
		f = lookup(b, ev, sb_str(&who), &m);
		if (f != NOBODY || removing)
			break;
	}
	if (f != FOUND) {
		if (f == NOBODY && !removing) {
			sb_release(&who);
			who = (struct strbuf)STRBUF_INIT;
			sb_adds(&who, w[0]);
		}
		not_found(r, f, sb_str(&who));
		sb_release(&who);
		goto out;
	}
	sb_release(&who);
	if (removing) {
		rc = remove_records(b, ev, &m, confirmed, r);
		goto out;
	}
	struct strbuf topic = STRBUF_INIT;
	for (size_t i = k; i < end; i++)
		sb_addf(&topic, "%s%s", i > k ? " " : "", w[i]);
	long t = topic_of(b, sb_str(&topic), r);
	sb_release(&topic);
	if (t >= 0)
		rc = set_record(b, ev, &m, t, s, r);
out:
	member_release(&m);
	free(w);
	free(text);
	return rc;
}
