#include "link.h"

#include "bot_internal.h"
#include "event.h"
#include "reply.h"
#include "scheduler.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"

#include <openssl/evp.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

const char link_alphabet[] = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";

void link_code_new(char out[LINK_CODE_LEN + 1])
{
	size_t n = sizeof(link_alphabet) - 1; /* 31 */
	size_t got = 0;
	while (got < LINK_CODE_LEN) {
		unsigned char raw[32];
		ssize_t k = getrandom(raw, sizeof(raw), 0);
		for (ssize_t i = 0; i < k && got < LINK_CODE_LEN; i++)
			if (raw[i] < 248) /* 8 * 31: every character equally likely */
				out[got++] = link_alphabet[raw[i] % n];
	}
	out[LINK_CODE_LEN] = '\0';
}

bool link_code_normalize(const char *typed, char out[LINK_CODE_LEN + 1])
{
	size_t n = 0;
	for (const char *p = typed; *p; p++) {
		if (*p == '-' || *p == ' ' || *p == '\t')
			continue;
		char c = (char)toupper((unsigned char)*p);
		if (n == LINK_CODE_LEN || !strchr(link_alphabet, c) || !c)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return n == LINK_CODE_LEN;
}

void link_code_format(const char *code, char out[LINK_CODE_LEN + 2])
{
	snprintf(out, LINK_CODE_LEN + 2, "%.4s-%.4s", code, code + 4);
}

void link_code_hash(const char *code, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_Digest(code, strlen(code), md, &len, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

bool link_code_live(int64_t expires_at, int64_t now)
{
	return now < expires_at;
}

/* "Discord", "Matrix", "the console" for an id such as "discord:123". */
static const char *platform_name(const char *id)
{
	if (strncmp(id, "discord:", 8) == 0)
		return "Discord";
	if (strncmp(id, "matrix:", 7) == 0)
		return "Matrix";
	if (strncmp(id, "console:", 8) == 0)
		return "the console";
	return "another platform";
}

static bool same_platform(const char *a, const char *b)
{
	size_t n = strcspn(a, ":");
	return strncmp(a, b, n + 1) == 0;
}

static void store_failed(struct reply *r)
{
	reply_title(r, REPLY_ERROR, "The store failed; nothing was changed");
	reply_line(r, "Try again in a moment.");
}

/*
 * A new code of kind ("member": for ev's member; "group": for ev's group),
 * shown to the asker alone: ephemeral, or on Matrix in their direct room.
 */
static int make_code(struct bot *b, const struct event *ev, const char *kind, struct reply *r)
{
	bool group = strcmp(kind, "group") == 0;
	const char *owner = group ? ev->group_id : ev->member_id;
	char *alias = NULL, *canonical = NULL;
	int rc = group ? store_group_link_get(b->store, owner, &alias, &canonical)
		       : store_member_link_get(b->store, owner, &alias, &canonical, NULL);
	if (rc == COHORT_OK) {
		const char *other = strcmp(alias, owner) == 0 ? canonical : alias;
		if (group) {
			reply_title(r, REPLY_INFO, "This group is linked already");
			reply_line(r, "It is one group with %s's %.80s. /link group remove "
				      "separates them; then /link group gives a new code.",
				   platform_name(other), other + strcspn(other, ":") + 1);
		} else {
			reply_title(r, REPLY_INFO, "You are linked already");
			reply_line(r, "You and your %s identity (%.80s) are one member. /link "
				      "remove separates them; then /link gives a new code.",
				   platform_name(other), other + strcspn(other, ":") + 1);
		}
		free(alias);
		free(canonical);
		return COHORT_OK;
	}
	if (rc != COHORT_ERR_NOT_FOUND) {
		store_failed(r);
		return rc;
	}
	/*
	 * A Discord text command's answer is posted in the channel for everyone
	 * (only a slash command's can be ephemeral): no code is made there.
	 */
	if (strcmp(ev->platform, "discord") == 0 && !ev->slash) {
		const char *slash = group ? "/link-group" : "/link";
		reply_title(r, REPLY_ERROR, "Use the %s slash command for a code", slash);
		reply_line(r, "Here the code would be shown to the whole channel; the answer to "
			      "the slash command %s is shown to you alone. Nothing was changed.",
			   slash);
		return COHORT_OK;
	}
	char code[LINK_CODE_LEN + 1], shown[LINK_CODE_LEN + 2], hash[65];
	int64_t now = bot_now(b);
	do {
		link_code_new(code);
		link_code_hash(code, hash);
		rc = store_link_code_put(b->store, hash, kind, owner, now, now + LINK_CODE_TTL_MS);
	} while (rc == COHORT_ERR_DUPLICATE);
	if (rc) {
		store_failed(r);
		return rc;
	}
	link_code_format(code, shown);
	const char *other = strncmp(owner, "discord:", 8) == 0 ? "Matrix" : "Discord";
	struct reply dm;
	reply_init(&dm);
	struct reply *to = r;
	/* On Matrix a room is not private: the code goes to the member's direct room. */
	bool direct = strcmp(ev->platform, "matrix") == 0;
	if (direct)
		to = &dm;
	if (group) {
		reply_title(to, REPLY_INFO, "Group link code: %s", shown);
		reply_line(to, "An admin of the group on %s types /link %s there within 10 "
			       "minutes to make the two groups one: one leaderboard, one record per "
			       "person, this group's roadmap and settings, the digest in both. It "
			       "works once.",
			   other, shown);
	} else {
		reply_title(to, REPLY_INFO, "Your link code: %s", shown);
		reply_line(to, "Type /link %s on %s within 10 minutes to make your two identities "
			       "one member (your progress is merged). It works once; keep it to "
			       "yourself.",
			   shown, other);
	}
	if (direct) {
		char key[20];
		snprintf(key, sizeof(key), "cl-%.16s", hash);
		int sent = b->sink && b->sink->remind
				   ? b->sink->remind(b->sink->ud, ev->group_id, ev->member_id, &dm, key)
				   : COHORT_ERR_USAGE;
		if (sent == COHORT_OK || sent == COHORT_ERR_PENDING) {
			reply_title(r, REPLY_INFO, "I sent you a code in a direct message");
			reply_line(r, "Type it on %s within 10 minutes: /link CODE.", other);
		} else {
			log_warn("link", "could not send %s a link code in a direct message: %s",
				 ev->member_id, cohort_strerror(sent));
			reply_title(r, REPLY_ERROR, "I could not send you a direct message");
			reply_line(r, "The code is never shown in a room. Try /link again in a "
				      "moment.");
		}
	}
	r->ephemeral = true;
	reply_release(&dm);
	return COHORT_OK;
}

/* A wrong code: counted against brute force. */
static void count_wrong(struct bot *b, const char *member_id, int64_t now)
{
	if (store_link_attempt_add(b->store, member_id, now))
		log_warn("link", "could not count a wrong link code of %s", member_id);
}

static int redeem_group(struct bot *b, const struct event *ev, const char *hash,
			const struct store_link_code *c, struct reply *r);

/*
 * A code typed on the platform it was made on (in a room others may read):
 * spent, so whoever saw it cannot redeem it. COHORT_OK, or the store's
 * failure (then r says so).
 */
static int spend(struct bot *b, const char *hash, const struct store_link_code *c, int64_t now,
		 struct reply *r)
{
	int rc = store_link_code_spend(b->store, hash, c->kind, now);
	if (rc)
		store_failed(r);
	return rc;
}

/*
 * A live code typed but refused for another reason (a wait for wrong codes,
 * an identity or group linked already, a member typing a group code): it
 * was shown where others may read it, so it is spent quietly (the answer
 * says a new one is needed; it does not say whether the code was right).
 */
static void spend_refused(struct bot *b, const char *hash, int64_t now)
{
	struct store_link_code c;
	if (store_link_code_get(b->store, hash, &c) == COHORT_OK) {
		if (!c.used_at && link_code_live(c.expires_at, now) &&
		    store_link_code_spend(b->store, hash, c.kind, now))
			log_warn("link", "a refused code could not be spent (see above); it "
					 "lapses within 10 minutes");
		free(c.owner_id);
	}
}

/* /link CODE: want is the kind expected ("group" from /link group CODE), or NULL for any. */
static int redeem(struct bot *b, const struct event *ev, const char *typed, const char *want,
		  struct reply *r)
{
	char code[LINK_CODE_LEN + 1], hash[65];
	int64_t now = bot_now(b);
	if (!link_code_normalize(typed, code)) {
		reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a link code", 40, typed);
		reply_line(r, "A code is 8 letters and digits such as K7QP-M3XD: /link on the other "
			      "platform gives one. /link remove undoes a link. Nothing was changed.");
		return COHORT_OK;
	}
	int wrong;
	int64_t first;
	int rc = store_link_attempts(b->store, ev->member_id, now - LINK_WINDOW_MS, &wrong, &first);
	if (rc) {
		store_failed(r);
		return rc;
	}
	link_code_hash(code, hash);
	if (wrong >= LINK_MAX_WRONG) {
		int64_t left = first + LINK_WINDOW_MS - now;
		spend_refused(b, hash, now);
		reply_title(r, REPLY_ERROR, "Too many wrong codes: wait %lld minutes",
			    (long long)((left + 59999) / 60000));
		reply_line(r, "After %d wrong codes in 10 minutes, /link CODE waits; a code typed "
			      "now works no more, so make a new one then. Nothing else was changed.",
			   LINK_MAX_WRONG);
		return COHORT_OK;
	}
	struct store_link_code c;
	rc = store_link_code_get(b->store, hash, &c);
	if (rc == COHORT_ERR_NOT_FOUND || (rc == COHORT_OK && want && strcmp(c.kind, want) != 0)) {
		count_wrong(b, ev->member_id, now);
		reply_title(r, REPLY_ERROR, "No such link code");
		reply_line(r, "Check it (letters and digits, no 0, O, 1, I or L), or make a new one "
			      "with /link on the other platform. Nothing was changed.");
		free(c.owner_id);
		return COHORT_OK;
	}
	if (rc) {
		store_failed(r);
		return rc;
	}
	char *alias = NULL, *canonical = NULL;
	if (c.used_at) {
		count_wrong(b, ev->member_id, now);
		reply_title(r, REPLY_ERROR, "That code was used already");
		reply_line(r, "A code works once. /link on the other platform gives a new one. "
			      "Nothing was changed.");
	} else if (!link_code_live(c.expires_at, now)) {
		count_wrong(b, ev->member_id, now);
		reply_title(r, REPLY_ERROR, "That code expired");
		reply_line(r, "A code lasts 10 minutes. /link on the other platform gives a new "
			      "one. Nothing was changed.");
	} else if (strcmp(c.kind, "group") == 0) {
		rc = redeem_group(b, ev, hash, &c, r);
	} else if (strcmp(c.owner_id, ev->member_id) == 0) {
		if ((rc = spend(b, hash, &c, now, r)) == COHORT_OK) {
			reply_title(r, REPLY_ERROR, "That is your own code");
			reply_line(r, "It was typed where others may read it, so it works no "
				      "more: /link gives a new one; type that on the other "
				      "platform (Discord or Matrix) to link the two. Nothing else "
				      "was changed.");
		}
	} else if (same_platform(c.owner_id, ev->member_id)) {
		if ((rc = spend(b, hash, &c, now, r)) == COHORT_OK) {
			reply_title(r, REPLY_ERROR, "That code was made on %s too",
				    platform_name(ev->member_id));
			reply_line(r, "A code links an identity on Discord with one on Matrix. "
				      "It was typed where others may read it, so it works no "
				      "more: /link gives its maker a new one, to type on the other "
				      "platform. Nothing else was changed.");
		}
	} else if ((rc = store_member_link_get(b->store, ev->member_id, &alias, &canonical,
					       NULL)) != COHORT_ERR_NOT_FOUND) {
		if (!rc) {
			spend_refused(b, hash, now);
			reply_title(r, REPLY_ERROR, "You are linked already");
			reply_line(r, "Each identity links to one other. /link remove first, then "
				      "ask for a new code: this one works no more. Nothing else was "
				      "changed.");
		} else {
			store_failed(r);
		}
	} else {
		int groups = 0;
		rc = store_member_link(b->store, hash, ev->member_id, c.owner_id, ev->member_name,
				       now, &groups);
		if (rc == COHORT_ERR_DENIED) {
			rc = COHORT_OK;
			spend_refused(b, hash, now);
			reply_title(r, REPLY_ERROR, "That identity is linked already");
			reply_line(r, "The %s identity that made this code is linked to another; it "
				      "has to /link remove first and make a new code (this one works "
				      "no more). Nothing else was changed.",
				   platform_name(c.owner_id));
		} else if (rc == COHORT_ERR_DUPLICATE) {
			rc = COHORT_OK;
			reply_title(r, REPLY_ERROR, "That code was used already");
			reply_line(r, "A code works once. Nothing was changed.");
		} else if (rc) {
			store_failed(r);
		} else {
			log_info("link", "%s linked to %s (%d groups merged)", ev->member_id,
				 c.owner_id, groups);
			reply_title(r, REPLY_SUCCESS, "Linked: you are one member on %s and %s",
				    platform_name(c.owner_id), platform_name(ev->member_id));
			reply_line(r, "Your progress is one record from now on: where both "
				      "identities had a topic, the later change counts, and nothing "
				      "counts twice. /link remove separates them again.");
		}
	}
	free(alias);
	free(canonical);
	free(c.owner_id);
	return rc;
}

static bool admin_only(const struct event *ev, struct reply *r)
{
	if (ev->is_admin)
		return true;
	reply_title(r, REPLY_ERROR, "Only admins can link groups");
	reply_line(r, "Ask someone who can manage this server or room. Nothing was changed.");
	return false;
}

static int redeem_group(struct bot *b, const struct event *ev, const char *hash,
			const struct store_link_code *c, struct reply *r)
{
	char *alias = NULL, *canonical = NULL;
	int rc = COHORT_OK;
	if (!admin_only(ev, r)) {
		spend_refused(b, hash, bot_now(b));
		reply_line(r, "The code typed works no more: an admin of the group that made it "
			      "gives a new one with /link group.");
		return COHORT_OK;
	}
	if (strcmp(c->owner_id, ev->group_id) == 0) {
		if ((rc = spend(b, hash, c, bot_now(b), r)) == COHORT_OK) {
			reply_title(r, REPLY_ERROR, "That code was made in this group");
			reply_line(r, "It was typed where others may read it, so it works no "
				      "more: /link group gives a new one, for the group on the "
				      "other platform (Discord or Matrix). Nothing else was "
				      "changed.");
		}
	} else if (same_platform(c->owner_id, ev->group_id)) {
		if ((rc = spend(b, hash, c, bot_now(b), r)) == COHORT_OK) {
			reply_title(r, REPLY_ERROR, "That code was made on %s too",
				    platform_name(ev->group_id));
			reply_line(r, "A group code links a Discord server's group with a "
				      "Matrix room's. It was typed where others may read it, so "
				      "it works no more: /link group gives a new one, to type on "
				      "the other platform. Nothing else was changed.");
		}
	} else if ((rc = store_group_link_get(b->store, ev->group_id, &alias, &canonical)) !=
		   COHORT_ERR_NOT_FOUND) {
		if (!rc) {
			spend_refused(b, hash, bot_now(b));
			reply_title(r, REPLY_ERROR, "This group is linked already");
			reply_line(r, "/link group remove first, then ask for a new code: this one "
				      "works no more. Nothing else was changed.");
		} else {
			store_failed(r);
		}
	} else {
		rc = store_group_link(b->store, hash, ev->group_id, c->owner_id, bot_now(b));
		if (rc == COHORT_ERR_DENIED) {
			rc = COHORT_OK;
			spend_refused(b, hash, bot_now(b));
			reply_title(r, REPLY_ERROR, "That group is linked already");
			reply_line(r, "The group that made this code is linked to another; an admin "
				      "there has to /link group remove first and make a new code (this "
				      "one works no more). Nothing else was changed.");
		} else if (rc == COHORT_ERR_DUPLICATE) {
			rc = COHORT_OK;
			reply_title(r, REPLY_ERROR, "That code was used already");
			reply_line(r, "A code works once. Nothing was changed.");
		} else if (rc) {
			store_failed(r);
		} else {
			log_info("link", "group %s linked to %s by %s", ev->group_id, c->owner_id,
				 ev->member_id);
			reply_title(r, REPLY_SUCCESS, "Linked: this group and the %s one are one group",
				    platform_name(c->owner_id));
			reply_line(r, "One leaderboard and one record per person from now on (the "
				      "later change wins a topic both had; members who linked their "
				      "identities are one member), the %s group's roadmap and "
				      "settings; the digest is posted in both. /link group remove "
				      "separates them.",
				   platform_name(c->owner_id));
		}
	}
	free(alias);
	free(canonical);
	return rc;
}

static int unlink_group(struct bot *b, const struct event *ev, struct reply *r)
{
	if (!admin_only(ev, r))
		return COHORT_OK;
	char *alias = NULL, *canonical = NULL;
	int rc = store_group_unlink(b->store, ev->group_id, bot_now(b), &alias, &canonical);
	if (rc == COHORT_ERR_NOT_FOUND) {
		reply_title(r, REPLY_INFO, "This group is not linked; nothing was changed");
		reply_line(r, "/link group gives a code to link it with a group on the other "
			      "platform.");
		return COHORT_OK;
	}
	if (rc) {
		store_failed(r);
		return rc;
	}
	log_info("link", "groups %s and %s unlinked by %s", alias, canonical, ev->member_id);
	reply_title(r, REPLY_SUCCESS, "Unlinked: the %s and %s groups are separate again",
		    platform_name(canonical), platform_name(alias));
	reply_line(r, "Each keeps a copy of the shared records as of now, and records its own "
		      "from now on.");
	free(alias);
	free(canonical);
	return COHORT_OK;
}

static int unlink_member(struct bot *b, const struct event *ev, struct reply *r)
{
	char *alias = NULL, *canonical = NULL;
	int rc = store_member_unlink(b->store, ev->member_id, bot_now(b), &alias, &canonical);
	if (rc == COHORT_ERR_NOT_FOUND) {
		reply_title(r, REPLY_INFO, "You are not linked; nothing was changed");
		reply_line(r, "/link gives a code to link this identity with your other platform.");
		return COHORT_OK;
	}
	if (rc) {
		store_failed(r);
		return rc;
	}
	log_info("link", "%s and %s unlinked", alias, canonical);
	reply_title(r, REPLY_SUCCESS, "Unlinked: %s and %s are separate members again",
		    platform_name(canonical), platform_name(alias));
	reply_line(r, "From now on each records its own progress. Each keeps the records of the "
		      "groups on its own platform; in a group both share, they stay with the %s "
		      "identity, so nothing counts twice.",
		   platform_name(canonical));
	free(alias);
	free(canonical);
	return COHORT_OK;
}

static bool is_remove(const char *s)
{
	return strcasecmp(s, "remove") == 0 || strcasecmp(s, "off") == 0;
}

int link_command(struct bot *b, const struct event *ev, struct reply *r)
{
	char *args = text_trim(xstrdup(ev->args ? ev->args : ""));
	int rc;
	r->ephemeral = true; /* a code, and what links whom, are the member's own */
	char *rest = args + strcspn(args, " \t");
	rest += strspn(rest, " \t");
	bool group = strncasecmp(args, "group", 5) == 0 && (!args[5] || args[5] == ' ' ||
							    args[5] == '\t');
	if (!*args)
		rc = make_code(b, ev, "member", r);
	else if (is_remove(args))
		rc = unlink_member(b, ev, r);
	else if (group && !*rest)
		rc = admin_only(ev, r) ? make_code(b, ev, "group", r) : COHORT_OK;
	else if (group && is_remove(rest))
		rc = unlink_group(b, ev, r);
	else
		rc = redeem(b, ev, group ? rest : args, group ? "group" : NULL, r);
	free(args);
	return rc;
}
