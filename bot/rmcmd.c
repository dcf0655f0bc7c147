#include "rmcmd.h"

#include "bot_internal.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"
#include "rmset.h"
#include "roadmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest typed name echoed back. */
#define ECHO 40

static int clip(const char *s, int max)
{
	int n = (int)strlen(s);
	if (n <= max)
		return n;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* How many topics of a are on b too. */
static size_t shared_topics(const struct roadmap *a, const struct roadmap *b)
{
	size_t n = 0;
	for (size_t i = 0; i < roadmap_topic_count(a); i++)
		n += roadmap_find_id(b, roadmap_topic(a, i)->id) >= 0;
	return n;
}

/* "devops (20 topics, 5 shared)" for each roadmap but the group's, one line each. */
static void list_choices(struct bot *b, struct reply *r)
{
	const struct rmset *s = b->set;
	for (size_t i = 0; i < rmset_count(s); i++) {
		if (i == b->rm_index)
			continue;
		const struct roadmap *rm = rmset_at(s, i);
		size_t n = roadmap_topic_count(rm);
		reply_line(r, "• %s — %zu %s, %zu shared with %s%s", rmset_name(s, i), n,
			   text_plural((long)n, "topic", "topics"), shared_topics(rm, b->rm),
			   rmset_name(s, b->rm_index),
			   i == rmset_default(s) ? " (the default)" : "");
	}
}

/* The names to choose from: "backend, devops or frontend". */
static void add_names(struct strbuf *sb, const struct rmset *s)
{
	size_t n = rmset_count(s);
	for (size_t i = 0; i < n; i++)
		sb_addf(sb, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", rmset_name(s, i));
}

static int show(struct bot *b, const struct event *ev, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	enum store_status *st = xcalloc(n ? n : 1, sizeof(*st));
	int rc = bot_member_statuses(b, ev->group_id, ev->member_id, st);
	if (rc) {
		free(st);
		return rc;
	}
	struct tally t = bot_tally(b, st, NULL);
	free(st);
	struct strbuf sb = STRBUF_INIT;
	bot_format_tally(&sb, &t);
	r->ephemeral = true;
	reply_title(r, REPLY_INFO, "Roadmap: %s (%zu %s)", rmset_name(b->set, b->rm_index), n,
		    text_plural((long)n, "topic", "topics"));
	reply_line(r, "You: %s", sb_str(&sb));
	sb_release(&sb);
	if (rmset_count(b->set) == 1) {
		reply_line(r, "No other roadmap is set up: the bot's admin puts *.md roadmaps in the "
			      "folder roadmap.dir names, and a group admin chooses one with "
			      "/roadmap use NAME.");
		return COHORT_OK;
	}
	reply_line(r, "Others this group may use (an admin switches with /roadmap use NAME; "
		      "progress on shared topics carries over):");
	list_choices(b, r);
	return COHORT_OK;
}

/* The group's done records: on roadmap rm (*on) and in all (*all). */
struct done_ctx {
	const struct roadmap *rm;
	long on, all;
};

static int count_done(const struct store_count *c, void *ud)
{
	struct done_ctx *d = ud;
	d->all += c->done;
	if (roadmap_find_id(d->rm, c->topic_id) >= 0)
		d->on += c->done;
	return 0;
}

static int use(struct bot *b, const struct event *ev, const char *name, struct reply *r)
{
	if (!ev->is_admin) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "Only admins can switch the group's roadmap");
		reply_line(r, "Ask someone who can manage this server or room. Nothing was changed.");
		return COHORT_OK;
	}
	struct strbuf sb = STRBUF_INIT;
	add_names(&sb, b->set);
	if (!*name) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "Which roadmap?");
		reply_line(r, "Say /roadmap use NAME, with NAME one of %s.", sb_str(&sb));
		sb_release(&sb);
		return COHORT_OK;
	}
	long i = rmset_find(b->set, name);
	if (i < 0) {
		const char *best = NULL;
		int bestd = 3;
		for (size_t k = 0; k < rmset_count(b->set); k++) {
			int d = text_distance(name, rmset_name(b->set, k), 2);
			if (d < bestd) {
				bestd = d;
				best = rmset_name(b->set, k);
			}
		}
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "There is no roadmap called \u201c%.*s\u201d",
			    clip(name, ECHO), name);
		if (best)
			reply_line(r, "Did you mean %s? The roadmaps: %s. Nothing was changed.", best,
				   sb_str(&sb));
		else
			reply_line(r, "The roadmaps: %s. Nothing was changed.", sb_str(&sb));
		sb_release(&sb);
		return COHORT_OK;
	}
	sb_release(&sb);
	const char *to = rmset_name(b->set, (size_t)i);
	const struct roadmap *rm = rmset_at(b->set, (size_t)i);
	size_t n = roadmap_topic_count(rm);
	if ((size_t)i == b->rm_index) {
		r->ephemeral = true;
		reply_title(r, REPLY_INFO, "The group's roadmap is %s already", to);
		reply_line(r, "%zu %s. Nothing was changed.", n, text_plural((long)n, "topic", "topics"));
		return COHORT_OK;
	}
	const char *from = rmset_name(b->set, b->rm_index);
	long moved = 0;
	int rc = bot_switch_roadmap(b, ev->group_id, (size_t)i, bot_now(b), &moved);
	if (rc)
		return rc;
	bot_use_group(b, ev->group_id);
	struct done_ctx d = {rm, 0, 0};
	log_info("bot", "%s switched from roadmap %s to %s (%ld records moved from former ids)",
		 ev->group_id, from, to, moved);
	reply_title(r, REPLY_SUCCESS, "The group's roadmap is now %s (%zu %s)", to, n,
		    text_plural((long)n, "topic", "topics"));
	/* The switch is committed: a failed count after it does not unsay it. */
	if (store_topic_counts(b->store, ev->group_id, count_done, &d)) {
		log_warn("bot", "%s: counting the topics that carry over to %s failed (the "
				"switch stands)", ev->group_id, to);
		reply_line(r, "Progress is kept by topic: topics on %s count, the others count "
			      "again after /roadmap use %s.", to, from);
		return COHORT_OK;
	}
	reply_line(r, "%ld of your group's %ld finished %s %s on %s and carry over; progress on "
		      "the others is kept and counts again after /roadmap use %s.",
		   d.on, d.all, text_plural(d.all, "topic", "topics"), d.on == 1 ? "is" : "are", to,
		   from);
	return COHORT_OK;
}

int rmcmd_command(struct bot *b, const struct event *ev, struct reply *r)
{
	char *args = text_trim(xstrdup(ev->args ? ev->args : ""));
	int rc;
	if (!*args) {
		rc = show(b, ev, r);
	} else if (strncasecmp(args, "use", 3) == 0 && (args[3] == ' ' || !args[3])) {
		char *name = text_trim(args + 3);
		rc = use(b, ev, name, r);
	} else {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "/roadmap takes no \u201c%.*s\u201d", clip(args, ECHO),
			    args);
		reply_line(r, "Say /roadmap to see the group's roadmap, or (admins) /roadmap use "
			      "NAME to switch.");
		rc = COHORT_OK;
	}
	free(args);
	return rc;
}

int rmcmd_use_command(struct bot *b, const struct event *ev, struct reply *r)
{
	char *name = text_trim(xstrdup(ev->args ? ev->args : ""));
	int rc = use(b, ev, name, r);
	free(name);
	return rc;
}

/* Whether needle occurs in hay, ignoring ASCII case. */
static bool contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

size_t rmcmd_complete(struct bot *b, const char *typed, struct bot_choice *out, size_t max)
{
	size_t k = 0, len = strlen(typed ? typed : "");
	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < rmset_count(b->set) && k < max; i++) {
			const char *name = rmset_name(b->set, i);
			bool prefix = strncasecmp(name, typed ? typed : "", len) == 0;
			bool inside = !prefix && len && contains(name, typed);
			if ((pass == 0 && !prefix) || (pass == 1 && !inside))
				continue;
			size_t n = roadmap_topic_count(rmset_at(b->set, i));
			snprintf(out[k].label, sizeof(out[k].label), "%s — %zu %s", name, n,
				 text_plural((long)n, "topic", "topics"));
			snprintf(out[k].value, sizeof(out[k].value), "%s", name);
			k++;
		}
	return k;
}
