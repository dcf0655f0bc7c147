/* Shared by the command handlers and the digest builder; not for adapters. */
#ifndef COHORT_BOT_INTERNAL_H
#define COHORT_BOT_INTERNAL_H

#include "bot.h"
#include "scheduler.h"
#include "store/store.h"

struct strbuf;
struct digest_sink;

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot {
	struct store *store;
	/*
	 * The roadmap of the group at hand (bot_use_group()): every command, the
	 * digest, the page read it. One thread at a time, so one group at a time.
	 */
	const struct roadmap *rm;
	size_t rm_index;          /* its index in set */
	const struct rmset *set;  /* the roadmaps groups may choose (rmset.h) */
	struct rmset *own_set;    /* set when the bot made it (bot_opts.roadmaps NULL) */
	char *digest_time;
	char *timezone;
	int64_t (*now)(void *ud);
	void *now_ud;
	char *public_url; /* NULL: no HTTP server, no group's page (bot_set_public_url) */
	/* Digests handed to an adapter and not yet confirmed (scheduler.c). */
	struct digest_inflight *inflight;
	size_t ninflight, capinflight;
	int last_sent;         /* the outcome scheduler_sent() saw last */
	bool schedule_changed; /* a digest channel or time changed since scheduler_run() */
	struct outbox *outbox; /* answers owed (outbox.h) */
	/* Where private messages go (a Matrix direct room): dispatch_run()'s sink, or NULL. */
	const struct digest_sink *sink;
};

struct digest_inflight {
	char key[20];
	char *group_id;
	char date[16];
};

/*
 * Makes the roadmap group_id counts (its choice, else the default) the bot's
 * roadmap at hand (b->rm). COHORT_OK, or COHORT_ERR_STORE (b->rm is then the
 * default).
 */
int bot_use_group(struct bot *b, const char *group_id);
/*
 * Switches group_id to the set's roadmap index (the default clears its
 * choice): store_set_group_roadmap(). COHORT_OK or COHORT_ERR_STORE.
 */
int bot_switch_roadmap(struct bot *b, const char *group_id, size_t index, int64_t at, long *moved);

/* A group's effective settings: its own, or the configured defaults. */
struct group_prefs {
	char timezone[80];
	char digest_time[8];
	char *digest_channel; /* owned; NULL when the digest is off */
	struct digest_every every; /* daily when unset (or unreadable) */
};
int bot_group_prefs(struct bot *b, const char *group_id, struct group_prefs *out);
void group_prefs_release(struct group_prefs *p);

/* A member's status for every roadmap topic (statuses[i] for topic i). */
int bot_member_statuses(struct bot *b, const char *group_id, const char *member_id,
			enum store_status *statuses);

struct tally {
	int done, skipped, in_progress, total;
};
/* Counts statuses over the topics flagged in `only` (NULL: all topics). */
struct tally bot_tally(const struct bot *b, const enum store_status *statuses, const bool *only);
/* "23/84 · 27%" (skipped topics count toward the percentage, not the points). */
void bot_format_tally(struct strbuf *sb, const struct tally *t);

/* The topic's name with its place: "Kafka (Message Brokers)". */
void bot_topic_label(const struct bot *b, size_t topic, struct strbuf *sb);

#endif
