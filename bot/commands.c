#include "bot_internal.h"

#include "digest.h"
#include "fix.h"
#include "goal.h"
#include "link.h"
#include "remind.h"
#include "rmcmd.h"
#include "leaderboard.h"
#include "page.h"

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/text.h"
#include "lib/util.h"
#include "roadmap.h"
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

/* Limits on what members type; longer input is refused with a message. */
#define MAX_ARGS 1000
#define MAX_NOTE 500
#define MAX_NAME 100
#define BAR_WIDTH 20
#define BOARD_SIZE 10

typedef int (*cmd_fn)(struct bot *b, const struct event *ev, struct reply *r);

/* A row of the command table: what everyone reads (bot.h), and the handler. */
struct command {
	struct bot_command d;
	cmd_fn fn; /* NULL for a slash-only command (bot_handle() runs it) */
};

static int cmd_done(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_start(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_skip(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_reset(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_undo(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_progress(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_leaderboard(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_topics(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_next(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_who(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_digest(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_help(struct bot *b, const struct event *ev, struct reply *r);
static int cmd_dashboard(struct bot *b, const struct event *ev, struct reply *r);

/* The options of each slash command (the text forms take the same words in order). */
static const struct bot_option topic_and_note[] = {
	{.name = "topic",
	 .description = "the roadmap topic",
	 .required = true,
	 .autocomplete = true,
	 .role = BOT_ROLE_TOPIC},
	{.name = "note",
	 .description = "a note for the group (optional)",
	 .max_length = MAX_NOTE,
	 .role = BOT_ROLE_NOTE},
};
static const struct bot_option topic_only[] = {
	{.name = "topic", .description = "the roadmap topic", .required = true, .autocomplete = true},
};
static const struct bot_option member_opt[] = {
	{.name = "member", .description = "a groupmate (default: you)", .type = BOT_OPTION_MEMBER},
};
static const struct bot_option period_opt[] = {
	{.name = "period",
	 .description = "week, month or all (default)",
	 .choices = (const char *const[]){"week", "month", "all", NULL}},
};
static const struct bot_option section_opt[] = {
	{.name = "section", .description = "one section only (optional)"},
};
static const struct bot_option command_opt[] = {
	{.name = "command", .description = "explain one command", .command_choices = true},
};
static const struct bot_option digest_setup_opts[] = {
	{.name = "channel",
	 .description = "here: post it in this channel; off: stop",
	 .choices = (const char *const[]){"here", "off", NULL},
	 .role = BOT_ROLE_NAMED},
	{.name = "time", .description = "local time HH:MM, e.g. 18:00", .role = BOT_ROLE_NAMED},
	{.name = "timezone", .description = "IANA zone, e.g. Europe/Berlin", .role = BOT_ROLE_NAMED},
	{.name = "every",
	 .description = "how often: daily, weekdays (Monday to Friday) or weekly (pick a day)",
	 .choices = (const char *const[]){"daily", "weekdays", "weekly", NULL},
	 .role = BOT_ROLE_NAMED},
	{.name = "day",
	 .description = "the day of a weekly digest",
	 .choices = (const char *const[]){"monday", "tuesday", "wednesday", "thursday", "friday",
					  "saturday", "sunday", NULL},
	 .role = BOT_ROLE_NAMED},
};
static const struct bot_option dashboard_setup_opts[] = {
	{.name = "action",
	 .description = "on, off, or reset (a new link)",
	 .required = true,
	 .choices = (const char *const[]){"on", "off", "reset", NULL},
	 .role = BOT_ROLE_NAMED},
};

static const struct bot_option fix_opts[] = {
	{.name = "member", .description = "whose record", .type = BOT_OPTION_MEMBER,
	 .required = true, .role = BOT_ROLE_NAMED},
	{.name = "status",
	 .description = "what to set; remove: all their records (asks to confirm)",
	 .required = true,
	 .choices = (const char *const[]){"done", "start", "skip", "none", "remove",
					  "remove confirm", NULL},
	 .role = BOT_ROLE_NAMED},
	{.name = "topic", .description = "the roadmap topic", .autocomplete = true,
	 .role = BOT_ROLE_NAMED},
};

static const struct bot_option remind_opt[] = {
	{.name = "time", .description = "HH:MM in the group's time zone (20:00), or off"},
};
static const struct bot_option link_opt[] = {
	{.name = "code", .description = "the code /link gave you on the other platform, or remove"},
};
static const struct bot_option roadmap_use_opt[] = {
	{.name = "name",
	 .description = "the roadmap the group counts from now on",
	 .required = true,
	 .autocomplete = true,
	 .max_length = 40},
};
static const struct bot_option goal_opt[] = {
	{.name = "goal", .description = "TOPIC or SECTION by DATE (Databases by 31 March), or off"},
};

#define OPTIONS(a) a, ARRAY_SIZE(a)

static const struct command commands[] = {
	{{"done", "done TOPIC [note]", "mark a topic finished",
	  "Records that you finished TOPIC. A note may follow the topic (\"done Kafka built a "
	  "consumer\"); use | to separate them when the topic is unclear (\"done circuit breaker "
	  "| read the chapter\"). Several topics: \"done Kafka, Redis\" or \"done docker and "
	  "k8s\".",
	  false, false, false, OPTIONS(topic_and_note)},
	 cmd_done},
	{{"start", "start TOPIC [note]", "mark a topic in progress",
	  "Records that you are working on TOPIC, so groupmates can find a study partner.", false,
	  false, false, OPTIONS(topic_and_note)},
	 cmd_start},
	{{"skip", "skip TOPIC", "skip a topic",
	  "Marks TOPIC skipped: it counts toward your progress but earns no points.", false, false,
	  false, OPTIONS(topic_only)},
	 cmd_skip},
	{{"reset", "reset TOPIC", "clear a topic's status",
	  "Clears your status for TOPIC (done, in progress or skipped).", false, false, false,
	  OPTIONS(topic_only)},
	 cmd_reset},
	{{"undo", "undo", "revert your last change",
	  "Reverts your most recent change (one topic, also after a message that named several). "
	  "Say it again to go further back.",
	  false, false, false, NULL, 0},
	 cmd_undo},
	{{"progress", "progress [member]", "your progress (or a groupmate's)",
	  "Shows the overall bar, a bar per section, topics in progress, the current and longest "
	  "streak, and the rank.",
	  true, false, false, OPTIONS(member_opt)},
	 cmd_progress},
	{{"leaderboard", "leaderboard [week|month|all]", "the group's ranking",
	  "Ranks the group by points (one per finished topic) this week, this month or of all "
	  "time (the default). Ties share a rank; whoever got there first is listed first.",
	  false, false, false, OPTIONS(period_opt)},
	 cmd_leaderboard},
	{{"topics", "topics [section]", "the roadmap with your marks",
	  "Shows the roadmap (or one section) with your status marks: [x] done, [~] in progress, "
	  "[-] skipped, and how many in the group finished each topic.",
	  true, false, false, OPTIONS(section_opt)},
	 cmd_topics},
	{{"next", "next", "what to study next",
	  "Names the first topic in roadmap order you have not finished, and who is on it.", true,
	  false, false, NULL, 0},
	 cmd_next},
	{{"who", "who TOPIC", "who finished a topic",
	  "Lists who finished TOPIC (ask them for help) and who is working on it now.", false,
	  false, false, OPTIONS(topic_only)},
	 cmd_who},
	{{"digest", "digest [channel here|off] [time HH:MM [TZ]] [every daily|weekdays|weekly DAY]",
	  "the daily digest",
	  "Previews today's digest and says when the next one comes. Admins: \"digest channel "
	  "here\" posts it in this channel, \"digest channel off\" stops it, \"digest time 18:00 "
	  "Europe/Berlin\" sets when (\"digest time Europe/Berlin\" changes only the zone), "
	  "\"digest every weekdays\" posts it Monday to Friday, \"digest every weekly monday\" "
	  "once a week (covering the week), \"digest every daily\" every day again.",
	  false, false, false, NULL, 0},
	 cmd_digest},
	{{"dashboard", "dashboard [on|off|reset]", "the link to the group's page",
	  "Gives the link to the group's page: progress over time, the leaderboards, who covered "
	  "which sections, the streak calendar and recent finishes. Admins: \"dashboard on\" "
	  "turns it on, \"dashboard off\" turns it off (the link shows nothing until it is on "
	  "again), \"dashboard reset\" makes a new link (the old one stops working).",
	  true, false, false, NULL, 0},
	 cmd_dashboard},
	{{"help", "help [command]", "how to use cohort", "Lists the commands, or explains one.",
	  true, false, false, OPTIONS(command_opt)},
	 cmd_help},
	{{"goal", "goal [TOPIC|SECTION by DATE|off]", "a goal, with your pace",
	  "Sets your goal: a topic or a section by a date (\"goal Databases by 2027-03-31\", "
	  "\"by 31 March\", \"by March 31\"; without a year, the next such day). \"goal\" "
	  "shows yours and the group's with the pace (ahead, on track, N topics behind) and what "
	  "to do next; \"goal off\" removes yours. Admins: \"goal group Databases by 31 March\" "
	  "sets one for everyone, \"goal group off\" removes it.",
	  true, false, false, OPTIONS(goal_opt)},
	 goal_command},
	{{"fix", "fix MEMBER TOPIC done|start|skip|none", "admins: correct a member's record",
	  "Sets or clears a member's status for a topic (\"fix ana Kafka done\", \"fix ana "
	  "Kafka none\"), logged as yours: the log and the digest say who set it, and your "
	  "/undo reverts it (the member's own /undo does not). \"fix ana remove\" removes all "
	  "of a member's records (progress, points, ranks) after \"fix ana remove confirm\".",
	  false, true, false, OPTIONS(fix_opts)},
	 fix_command},
	{{"remind", "remind [HH:MM|off]", "a reminder on days your streak would break",
	  "Opt-in: \"remind 20:00\" sends you a personal message at 20:00 (the group's time "
	  "zone) on a day your streak would break tonight (nothing done yet today), with your "
	  "next topic; at most one a day. \"remind\" shows your setting, \"remind off\" stops it.",
	  true, false, false, OPTIONS(remind_opt)},
	 remind_command},
	{{"link", "link [CODE|remove|group [CODE|remove]]", "one member on Discord and Matrix",
	  "\"link\" gives you a one-time code, valid 10 minutes and shown only to you (on "
	  "Matrix in a direct message); \"link CODE\" typed on the other platform makes your "
	  "Discord and Matrix identities one member, your progress merged (where both had a "
	  "topic, the later change counts; nothing counts twice). \"link remove\" makes them "
	  "separate members again. Admins: \"link group\" gives a code that an admin of the "
	  "group on the other platform types there (\"link CODE\"): the two groups become one "
	  "(one leaderboard, this group's roadmap and settings, the digest in both); \"link "
	  "group remove\" separates them (each keeps a copy of the shared records).",
	  true, false, false, OPTIONS(link_opt)},
	 link_command},
	{{"roadmap", "roadmap [use NAME]", "the group's roadmap and the others it may use",
	  "Shows the group's roadmap with your progress on it, and the roadmaps the group may "
	  "switch to (how many topics each shares with it). Admins: \"roadmap use frontend\" "
	  "switches the group; progress on topics the two share carries over, the rest is kept "
	  "and counts again after switching back.",
	  true, false, false, NULL, 0},
	 rmcmd_command},
	/* Setting up the digest is for admins: Discord hides it from the others. */
	{{"digest-setup", "digest-setup [channel] [time] [timezone] [every] [day]",
	  "admins: where and when the daily digest goes",
	  "The /digest settings as a slash command: channel here or off, time HH:MM, timezone, "
	  "every daily, weekdays or weekly with a day.",
	  true, true, true, OPTIONS(digest_setup_opts)},
	 NULL},
	/* The group's goal is for admins: on Discord a command of its own, hidden from others. */
	{{"goal-group", "goal-group [goal]", "admins: the group's goal for everyone",
	  "/goal group as a slash command: TOPIC|SECTION by DATE, or off.", false, true, true,
	  OPTIONS(goal_opt)},
	 goal_group_command},
	/* Linking groups is for admins: /link-group, as /link group. */
	{{"link-group", "link-group [code]", "admins: one group on Discord and Matrix",
	  "/link group as a slash command: without a code, a code for this group; with the code "
	  "made in the other platform's group, the two become one; code:remove separates them.",
	  true, true, true, OPTIONS(link_opt)},
	 NULL},
	/* Likewise switching the group's roadmap: /roadmap shows it to everyone. */
	{{"roadmap-use", "roadmap-use name", "admins: switch the group's roadmap",
	  "/roadmap use NAME as a slash command: the roadmap's name.", false, true, true,
	  OPTIONS(roadmap_use_opt)},
	 rmcmd_use_command},
	/* Likewise the group's page: /dashboard gives everyone the link. */
	{{"dashboard-setup", "dashboard-setup action",
	  "admins: turn the group's page on or off, or make a new link",
	  "The /dashboard settings as a slash command: action on, off or reset.", true, true, true,
	  OPTIONS(dashboard_setup_opts)},
	 NULL},
};

static const struct command *command_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].d.name, name) == 0)
			return &commands[i];
	return NULL;
}

size_t bot_command_count(void)
{
	return ARRAY_SIZE(commands);
}

const struct bot_command *bot_command_at(size_t i)
{
	return i < ARRAY_SIZE(commands) ? &commands[i].d : NULL;
}

const struct bot_command *bot_command(const char *name)
{
	const struct command *c = command_named(name);
	return c ? &c->d : NULL;
}

const char *bot_command_summary(const char *name)
{
	const struct command *c = command_named(name);
	return c ? c->d.summary : NULL;
}

bool bot_command_personal(const char *name)
{
	const struct command *c = command_named(name);
	return c && c->d.personal;
}

static const char *command_names[ARRAY_SIZE(commands) + 1];
static pthread_once_t command_names_once = PTHREAD_ONCE_INIT;

static void fill_command_names(void)
{
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!commands[i].d.slash_only)
			command_names[n++] = commands[i].d.name;
}

const char *const *bot_command_names(void)
{
	/* Adapters' threads ask too (Discord's command list): fill it once. */
	pthread_once(&command_names_once, fill_command_names);
	return command_names;
}

/* How many topics one message may name. */
#define MAX_PARTS ROADMAP_MAX_PARTS

/* Appends a name for a list, in quotes when it holds a comma or the words "and"/"or". */
static void add_list_name(struct strbuf *sb, const char *name)
{
	bool quote = strchr(name, ',') != NULL;
	for (const char *p = name; *p && !quote; p++) {
		if (p != name && p[-1] != ' ')
			continue;
		quote = ((strncmp(p, "and", 3) == 0 || strncmp(p, "And", 3) == 0) &&
			 (p[3] == ' ' || !p[3])) ||
			((strncmp(p, "or", 2) == 0 || strncmp(p, "Or", 2) == 0) &&
			 (p[2] == ' ' || !p[2]));
	}
	sb_addf(sb, quote ? "\u201c%s\u201d" : "%s", name);
}

/* "a", "a or b", "a, b or c", and "and N more" when total is larger than n. */
static void add_names(struct strbuf *sb, const char *const *names, size_t n, size_t total,
		      const char *conj)
{
	bool more = total > n;
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sb_adds(sb, i + 1 == n && !more ? conj : ", ");
		add_list_name(sb, names[i]);
	}
	if (more)
		sb_addf(sb, " and %zu more", total - n);
}

static void add_topic_names(const struct bot *b, const long *idx, size_t n, size_t total,
			    const char *conj, struct strbuf *sb)
{
	const char *names[ROADMAP_MAX_CANDIDATES];
	for (size_t i = 0; i < n && i < ROADMAP_MAX_CANDIDATES; i++)
		names[i] = roadmap_topic(b->rm, (size_t)idx[i])->name;
	add_names(sb, names, n, total, conj);
}

static void add_section_names(const struct bot *b, const long *idx, size_t n, size_t total,
			      struct strbuf *sb)
{
	const char *names[ROADMAP_MAX_CANDIDATES];
	for (size_t i = 0; i < n && i < ROADMAP_MAX_CANDIDATES; i++)
		names[i] = roadmap_node(b->rm, (size_t)idx[i])->name;
	add_names(sb, names, n, total, " and ");
}

static bool part_taken(const struct rm_part *p)
{
	return *p->typed && p->res.match <= RM_FUZZY;
}

/*
 * What to ask about a part that is not unmistakable: q is the question (a
 * sentence), hint what to say instead; *kind is REPLY_QUESTION or, for a
 * topic not on the roadmap, REPLY_ERROR.
 */
static void part_question(const struct bot *b, const struct rm_part *p, const char *verb,
			  struct strbuf *q, struct strbuf *hint, enum reply_kind *kind)
{
	const struct rm_resolution *res = &p->res;
	*kind = REPLY_QUESTION;
	switch (res->match) {
	case RM_SECTION: {
		const char *sec = roadmap_node(b->rm, (size_t)res->index)->name;
		const char *first = roadmap_topic(b->rm, (size_t)res->candidates[0])->name;
		if (res->ntotal == 1) {
			sb_adds(q, "Did you mean ");
			add_list_name(q, first);
			sb_addf(q, ", the one topic in %s?", sec);
		} else {
			sb_addf(q, "%s is a section with %zu topics: ", sec, res->ntotal);
			add_topic_names(b, res->candidates, res->ncandidates, res->ntotal, " and ", q);
			sb_adds(q, ". Which one?");
		}
		sb_addf(hint, "Say it with the topic's name, e.g. /%s %s", verb, first);
		return;
	}
	case RM_AMBIGUOUS:
		if (res->ncandidates && res->ntotal > res->ncandidates) {
			sb_addf(q, "\u201c%.*s\u201d fits %zu topics: ", ROADMAP_MAX_QUERY / 4, p->typed,
				res->ntotal);
			add_topic_names(b, res->candidates, res->ncandidates, res->ntotal, " and ", q);
			sb_adds(q, ". Which one?");
		} else if (res->ncandidates) {
			sb_adds(q, "Did you mean ");
			add_topic_names(b, res->candidates, res->ncandidates, res->ncandidates, " or ",
					q);
			sb_adds(q, "?");
		} else {
			sb_addf(q, "\u201c%.*s\u201d begins the sections ", ROADMAP_MAX_QUERY / 4,
				p->typed);
			add_section_names(b, res->sections, res->nsections, res->nsections, q);
			sb_adds(q, ". Which topic?");
		}
		if (res->ncandidates && res->nsections) {
			sb_addf(hint, "\u201c%.*s\u201d also begins the section%s ",
				ROADMAP_MAX_QUERY / 4, p->typed, res->nsections > 1 ? "s" : "");
			add_section_names(b, res->sections, res->nsections, res->nsections, hint);
			sb_addf(hint, " (/topics SECTION lists %s topics). ",
				res->nsections > 1 ? "their" : "its");
		}
		if (p->swallowed)
			sb_addf(hint, "For %s with the note \u201c%.*s\u201d: /%s %s | %.*s",
				roadmap_topic(b->rm, (size_t)res->candidates[0])->name, 60, p->note,
				verb, roadmap_topic(b->rm, (size_t)res->candidates[0])->name, 60,
				p->note);
		else if (res->ncandidates)
			sb_addf(hint, "Say it again with the full name, e.g. /%s %s", verb,
				roadmap_topic(b->rm, (size_t)res->candidates[0])->name);
		else
			sb_adds(hint, "/topics SECTION lists a section's topics.");
		return;
	default:
		*kind = REPLY_ERROR;
		sb_addf(q, "\u201c%.*s\u201d is not on the roadmap", ROADMAP_MAX_QUERY / 4, p->typed);
		if (res->ncandidates) {
			sb_adds(q, ". Nearest: ");
			add_topic_names(b, res->candidates, res->ncandidates, res->ncandidates, ", ",
					q);
		}
		sb_adds(hint, "/topics lists every topic.");
		return;
	}
}

/* Fills r with the question about part p, for a message naming that one topic. */
static void ask_about(struct bot *b, const struct rm_part *p, const char *verb, struct reply *r)
{
	struct strbuf q = STRBUF_INIT, hint = STRBUF_INIT;
	enum reply_kind kind;
	part_question(b, p, verb, &q, &hint, &kind);
	r->ephemeral = true;
	reply_title(r, kind, "%s", sb_str(&q));
	reply_line(r, "Nothing was changed. %s", sb_str(&hint));
	sb_release(&q);
	sb_release(&hint);
}

/* Reads the topics an event names (Discord's separate options, or the text). */
static size_t read_event(struct bot *b, const struct event *ev, struct rm_part **parts)
{
	*parts = NULL;
	if (ev->topic)
		return roadmap_read_topics(b->rm, ev->topic, ev->note, parts);
	return roadmap_read_args(b->rm, ev->args, parts);
}

/*
 * Checks the parts of a message for the handlers that change a status: fills r
 * and returns false when there is no topic, too many, or a note too long.
 */
static bool parts_ok(struct rm_part *parts, size_t n, const char *verb, struct reply *r)
{
	r->ephemeral = true;
	if (n == 0 || (n == 1 && !*parts[0].typed)) {
		reply_title(r, REPLY_ERROR, "Which topic?");
		reply_line(r, "Usage: /%s TOPIC. /topics lists them all.", verb);
		return false;
	}
	if (n > MAX_PARTS) {
		reply_title(r, REPLY_ERROR, "That names more than %d topics", MAX_PARTS);
		reply_line(r, "One message may name up to %d. Nothing was changed.", MAX_PARTS);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (strlen(parts[i].note) > MAX_NOTE) {
			reply_title(r, REPLY_ERROR, "That note is too long");
			reply_line(r, "Notes may be up to %d characters. Nothing was changed.",
				   MAX_NOTE);
			return false;
		}
	}
	return true;
}

/*
 * Finds the one topic a command names (/who). On success returns the topic
 * index; otherwise fills r with the question or error and returns -1.
 */
static long resolve_topic(struct bot *b, const struct event *ev, struct reply *r, const char *verb)
{
	struct rm_part *parts;
	size_t n = read_event(b, ev, &parts);
	long t = -1;
	if (!parts_ok(parts, n, verb, r))
		goto out;
	if (n > 1) {
		r->ephemeral = true;
		reply_title(r, REPLY_ERROR, "One topic at a time, please");
		reply_line(r, "Usage: /%s TOPIC", verb);
		goto out;
	}
	if (!part_taken(&parts[0])) {
		ask_about(b, &parts[0], verb, r);
		goto out;
	}
	t = parts[0].res.index;
	r->ephemeral = false;
	if (parts[0].res.match == RM_FUZZY)
		reply_line(r, "(read \u201c%s\u201d as %s)", parts[0].typed,
			   roadmap_topic(b->rm, (size_t)t)->name);
out:
	roadmap_parts_free(parts, n);
	return t;
}

#define NAMES_SHOWN 10

struct names_ctx {
	const char *skip_member;
	struct strbuf *sb;
	int listed;
};

static int collect_names(const struct store_row *row, void *ud)
{
	struct names_ctx *c = ud;
	if (strcmp(row->member_id, c->skip_member) == 0 || c->listed == NAMES_SHOWN)
		return 0;
	sb_addf(c->sb, "%s%s", c->listed ? ", " : "", row->member_name);
	c->listed++;
	return 0;
}

/*
 * Appends the first groupmates (other than skip, whose own status is
 * skip_has) with the topic in status, and "and N more"; returns how many
 * there are in all, or -1 when the store failed.
 */
static int group_names(struct bot *b, const char *group, const char *topic_id, const char *skip,
		       bool skip_has, enum store_status status, struct strbuf *sb)
{
	struct names_ctx c = {skip, sb, 0};
	struct store_count count;
	if (store_topic_progress(b->store, group, topic_id, status, NAMES_SHOWN + 1, collect_names,
				 &c) ||
	    store_topic_count(b->store, group, topic_id, &count))
		return -1;
	int total = (status == STATUS_DONE ? count.done : count.in_progress) - skip_has;
	if (total > c.listed)
		sb_addf(sb, " and %d more", total - c.listed);
	return total;
}

static void add_progress_line(struct bot *b, const struct event *ev, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	enum store_status *st = xcalloc(n, sizeof(*st));
	if (bot_member_statuses(b, ev->group_id, ev->member_id, st) == COHORT_OK) {
		struct tally t = bot_tally(b, st, NULL);
		struct strbuf sb = STRBUF_INIT;
		text_bar(&sb, t.done + t.skipped, t.total, BAR_WIDTH);
		sb_adds(&sb, "  ");
		bot_format_tally(&sb, &t);
		reply_mono(r, "%s", sb_str(&sb));
		sb_release(&sb);
	}
	free(st);
}

static void store_failed(struct reply *r)
{
	reply_clear(r);
	r->ephemeral = true;
	reply_title(r, REPLY_ERROR, "Something went wrong saving that");
	reply_line(r, "Nothing was changed. Please try again in a moment.");
}

static void date_of(struct bot *b, const char *group, int64_t t, char *buf, int n)
{
	struct group_prefs p;
	if (bot_group_prefs(b, group, &p) != COHORT_OK)
		snprintf(p.timezone, sizeof(p.timezone), "%s", b->timezone);
	tz_format(p.timezone, t, "%Y-%m-%d", buf, n);
	group_prefs_release(&p);
}

/* "done", "in progress", "skipped" for a status a change replaced. */
static const char *was_words(enum store_status s)
{
	return s == STATUS_DONE ? "done" : s == STATUS_IN_PROGRESS ? "in progress" : "skipped";
}

/* A change that takes a finished topic back loses its point: say so, and how to get it back. */
static void lost_point_line(struct bot *b, const struct event *ev, const struct rm_topic *topic,
			    enum store_status status, const struct store_prior *prior,
			    struct reply *r)
{
	if (prior->status != STATUS_DONE || status == STATUS_DONE || status == STATUS_NONE)
		return;
	char day[16];
	date_of(b, ev->group_id, prior->updated_at, day, sizeof(day));
	reply_line(r, "%s was done (since %s): its point is gone. /undo restores it.", topic->name,
		   day);
}

/* Records one change; the source id is the event's, or "ID#k" for its k-th change (k > 1). */
static int record(struct bot *b, const struct event *ev, const struct rm_part *p,
		  enum store_status status, size_t k, struct store_prior *prior)
{
	const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)p->res.index);
	char *src = !ev->source_id ? NULL
		    : k <= 1	   ? xstrdup(ev->source_id)
				   : xasprintf("%s#%zu", ev->source_id, k);
	struct store_change c = {ev->group_id,	ev->member_id, ev->member_name,
				 topic->id,	status,	       status == STATUS_NONE ? NULL : p->note,
				 src,		bot_now(b)};
	int rc = store_set_status(b->store, &c, prior);
	free(src);
	return rc;
}

/* One topic: resolve, change, confirm. */
static int set_one(struct bot *b, const struct event *ev, struct reply *r,
		   const struct rm_part *p, enum store_status status, const char *verb)
{
	if (!part_taken(p)) {
		ask_about(b, p, verb, r);
		return COHORT_OK;
	}
	long t = p->res.index;
	r->ephemeral = false;
	if (p->res.match == RM_FUZZY)
		reply_line(r, "(read \u201c%s\u201d as %s)", p->typed,
			   roadmap_topic(b->rm, (size_t)t)->name);
	const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)t);
	struct store_prior prior;
	int rc = record(b, ev, p, status, 1, &prior);
	struct strbuf sb = STRBUF_INIT;
	char day[16];
	if (rc == COHORT_ERR_DUPLICATE) {
		reply_clear(r);
		reply_title(r, REPLY_INFO, "Already recorded");
		reply_line(r, "That command was handled before; nothing was counted twice.");
		r->ephemeral = true;
		goto out;
	}
	if (rc == COHORT_ERR_UNCHANGED) {
		r->ephemeral = true;
		date_of(b, ev->group_id, prior.updated_at, day, sizeof(day));
		switch (status) {
		case STATUS_DONE:
			reply_title(r, REPLY_INFO, "You already finished %s", topic->name);
			reply_line(r, "Marked done on %s. Nothing was counted twice.", day);
			break;
		case STATUS_IN_PROGRESS:
			reply_title(r, REPLY_INFO, "You are already on %s", topic->name);
			reply_line(r, "Since %s. /done %s when you finish it.", day, topic->name);
			break;
		case STATUS_SKIPPED:
			reply_title(r, REPLY_INFO, "You already skipped %s", topic->name);
			break;
		case STATUS_NONE:
			reply_title(r, REPLY_INFO, "%s has no status to clear", topic->name);
			break;
		}
		rc = COHORT_OK;
		goto out;
	}
	if (rc) {
		store_failed(r);
		goto out;
	}
	bot_topic_label(b, (size_t)t, &sb);
	switch (status) {
	case STATUS_DONE:
		reply_title(r, REPLY_SUCCESS, "%s finished %s", ev->member_name, sb_str(&sb));
		add_progress_line(b, ev, r);
		sb_truncate(&sb, 0);
		if (group_names(b, ev->group_id, topic->id, ev->member_id, true, STATUS_DONE, &sb) >
		    0)
			reply_line(r, "Also finished it: %s", sb_str(&sb));
		else
			reply_line(r, "First in the group to finish it!");
		break;
	case STATUS_IN_PROGRESS:
		reply_title(r, REPLY_SUCCESS, "%s started %s", ev->member_name, sb_str(&sb));
		lost_point_line(b, ev, topic, status, &prior, r);
		sb_truncate(&sb, 0);
		if (group_names(b, ev->group_id, topic->id, ev->member_id, true, STATUS_IN_PROGRESS,
				&sb) > 0)
			reply_line(r, "Also on it: %s \u2014 study together?", sb_str(&sb));
		sb_truncate(&sb, 0);
		if (group_names(b, ev->group_id, topic->id, ev->member_id, false, STATUS_DONE,
				&sb) > 0)
			reply_line(r, "Finished it already (ask them): %s", sb_str(&sb));
		break;
	case STATUS_SKIPPED:
		reply_title(r, REPLY_SUCCESS, "%s skipped %s", ev->member_name, sb_str(&sb));
		lost_point_line(b, ev, topic, status, &prior, r);
		reply_line(r, "Skipped topics count toward progress but earn no points.");
		add_progress_line(b, ev, r);
		break;
	case STATUS_NONE:
		reply_title(r, REPLY_SUCCESS, "Cleared %s", sb_str(&sb));
		reply_line(r, "It was %s. /undo brings it back.", was_words(prior.status));
		r->ephemeral = true;
		break;
	}
out:
	sb_release(&sb);
	return rc;
}

/*
 * Several topics in one message: every unmistakable one is changed (in one
 * transaction), the others asked about, and one reply says both.
 */
static int set_many(struct bot *b, const struct event *ev, struct reply *r, struct rm_part *parts,
		    size_t n, enum store_status status, const char *verb)
{
	static const char *const done_verbs[] = {"cleared", "started", "finished", "skipped"};
	int *res = xcalloc(n, sizeof(*res));
	struct store_prior *prior = xcalloc(n, sizeof(*prior));
	bool *use = xcalloc(n, sizeof(*use));
	struct strbuf sb = STRBUF_INIT;
	size_t k = 0, changed = 0, asked = 0;
	int rc = store_batch_begin(b->store);
	if (rc) {
		store_failed(r);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!part_taken(&parts[i])) {
			asked++;
			continue;
		}
		use[i] = true;
		for (size_t j = 0; j < i; j++)
			use[i] = use[i] && !(use[j] && parts[j].res.index == parts[i].res.index);
		if (!use[i])
			continue; /* the same topic named twice counts once */
		res[i] = record(b, ev, &parts[i], status, ++k, &prior[i]);
		if (res[i] == COHORT_ERR_DUPLICATE && k == 1) {
			store_batch_end(b->store, false);
			r->ephemeral = true;
			reply_title(r, REPLY_INFO, "Already recorded");
			reply_line(r, "That command was handled before; nothing was counted twice.");
			rc = COHORT_ERR_DUPLICATE;
			goto out;
		}
		if (res[i] && res[i] != COHORT_ERR_UNCHANGED && res[i] != COHORT_ERR_DUPLICATE) {
			rc = res[i];
			store_batch_end(b->store, false);
			store_failed(r);
			goto out;
		}
		changed += res[i] == COHORT_OK;
	}
	rc = store_batch_end(b->store, true);
	if (rc) {
		store_failed(r);
		goto out;
	}
	r->ephemeral = !changed || status == STATUS_NONE;
	const char *names[MAX_PARTS];
	size_t nn = 0;
	for (size_t i = 0; i < n; i++)
		if (use[i] && res[i] == COHORT_OK)
			names[nn++] = roadmap_topic(b->rm, (size_t)parts[i].res.index)->name;
	bool titled = changed > 0;
	long first_asked = -1;
	if (!changed) {
		/* Nothing changed: the first question is the answer's title. */
		for (size_t i = 0; i < n && first_asked < 0; i++) {
			if (part_taken(&parts[i]))
				continue;
			struct strbuf q = STRBUF_INIT, hint = STRBUF_INIT;
			enum reply_kind kind;
			part_question(b, &parts[i], verb, &q, &hint, &kind);
			reply_title(r, kind, "%s", sb_str(&q));
			reply_line(r, "%s", sb_str(&hint));
			sb_release(&q);
			sb_release(&hint);
			first_asked = (long)i;
			titled = true;
		}
	}
	if (changed) {
		add_names(&sb, names, nn, nn, " and ");
		if (status == STATUS_NONE)
			reply_title(r, REPLY_SUCCESS, "Cleared %s", sb_str(&sb));
		else
			reply_title(r, REPLY_SUCCESS, "%s %s %s", ev->member_name,
				    done_verbs[status], sb_str(&sb));
		if (status == STATUS_DONE || status == STATUS_SKIPPED)
			add_progress_line(b, ev, r);
	}
	for (size_t i = 0; i < n; i++) {
		if (!use[i])
			continue;
		const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)parts[i].res.index);
		if (parts[i].res.match == RM_FUZZY)
			reply_line(r, "(read \u201c%s\u201d as %s)", parts[i].typed, topic->name);
		if (res[i] == COHORT_ERR_UNCHANGED) {
			if (!titled)
				continue; /* the title says it for all of them (below) */
			if (status == STATUS_NONE)
				reply_line(r, "%s had no status to clear.", topic->name);
			else
				reply_line(r, "%s was %s already; nothing was counted twice.",
					   topic->name, was_words(status));
			continue;
		}
		if (res[i] != COHORT_OK)
			continue;
		lost_point_line(b, ev, topic, status, &prior[i], r);
		sb_truncate(&sb, 0);
		if (status == STATUS_DONE) {
			if (group_names(b, ev->group_id, topic->id, ev->member_id, true,
					STATUS_DONE, &sb) > 0)
				reply_line(r, "Also finished %s: %s", topic->name, sb_str(&sb));
			else
				reply_line(r, "First in the group to finish %s!", topic->name);
		} else if (status == STATUS_IN_PROGRESS) {
			if (group_names(b, ev->group_id, topic->id, ev->member_id, true,
					STATUS_IN_PROGRESS, &sb) > 0)
				reply_line(r, "Also on %s: %s \u2014 study together?", topic->name,
					   sb_str(&sb));
		} else if (status == STATUS_NONE) {
			reply_line(r, "%s was %s.", topic->name, was_words(prior[i].status));
		}
	}
	if (status == STATUS_SKIPPED && changed)
		reply_line(r, "Skipped topics count toward progress but earn no points.");
	for (size_t i = 0; i < n; i++) {
		if (part_taken(&parts[i]) || (long)i == first_asked)
			continue;
		struct strbuf q = STRBUF_INIT, hint = STRBUF_INIT;
		enum reply_kind kind;
		part_question(b, &parts[i], verb, &q, &hint, &kind);
		if (parts[i].res.match == RM_AMBIGUOUS) {
			if (strncmp(sb_str(&q), "Did ", 4) == 0)
				q.buf[0] = 'd';
			reply_line(r, "\u201c%.*s\u201d: %s %s", ROADMAP_MAX_QUERY / 4, parts[i].typed,
				   sb_str(&q), sb_str(&hint));
		} else {
			reply_line(r, "%s. %s", sb_str(&q), sb_str(&hint));
		}
		sb_release(&q);
		sb_release(&hint);
	}
	if (!titled) {
		/* Every topic had that status already. */
		sb_truncate(&sb, 0);
		const char *same[MAX_PARTS] = {0};
		size_t ns = 0;
		for (size_t i = 0; i < n; i++)
			if (use[i])
				same[ns++] = roadmap_topic(b->rm, (size_t)parts[i].res.index)->name;
		add_names(&sb, same, ns, ns, " and ");
		if (status == STATUS_NONE)
			reply_title(r, REPLY_INFO, "%s had no status to clear", sb_str(&sb));
		else
			reply_title(r, REPLY_INFO, "%s %s %s already", sb_str(&sb),
				    ns == 1 ? "was" : "were", was_words(status));
		if (status != STATUS_NONE)
			reply_line(r, "Nothing was counted twice.");
	}
	if (asked)
		reply_line(r, "%s", changed ? "The rest was not changed." : "Nothing was changed.");
	if (changed > 1)
		reply_line(r, "/undo reverts one of these at a time, the last first.");
out:
	sb_release(&sb);
	free(use);
	free(prior);
	free(res);
	return rc;
}

/* The shared path of done/start/skip/reset: read the topics, change them, confirm. */
static int set_status(struct bot *b, const struct event *ev, struct reply *r,
		      enum store_status status, const char *verb)
{
	struct rm_part *parts;
	size_t n = read_event(b, ev, &parts);
	int rc = COHORT_OK;
	if (!parts_ok(parts, n, verb, r))
		goto out;
	int64_t since = bot_now(b);
	if (n == 1)
		rc = set_one(b, ev, r, &parts[0], status, verb);
	else
		rc = set_many(b, ev, r, parts, n, status, verb);
	if (!rc && (status == STATUS_DONE || status == STATUS_SKIPPED))
		rc = goal_after_change(b, ev, since, r); /* a goal it reached is celebrated */
out:
	roadmap_parts_free(parts, n);
	return rc;
}

static int cmd_done(struct bot *b, const struct event *ev, struct reply *r)
{
	return set_status(b, ev, r, STATUS_DONE, "done");
}

static int cmd_start(struct bot *b, const struct event *ev, struct reply *r)
{
	return set_status(b, ev, r, STATUS_IN_PROGRESS, "start");
}

static int cmd_skip(struct bot *b, const struct event *ev, struct reply *r)
{
	return set_status(b, ev, r, STATUS_SKIPPED, "skip");
}

static int cmd_reset(struct bot *b, const struct event *ev, struct reply *r)
{
	return set_status(b, ev, r, STATUS_NONE, "reset");
}

static const char *status_words(enum store_status s)
{
	switch (s) {
	case STATUS_NONE: return "no status";
	case STATUS_IN_PROGRESS: return "in progress";
	case STATUS_DONE: return "done";
	case STATUS_SKIPPED: return "skipped";
	}
	return "?";
}

static int cmd_undo(struct bot *b, const struct event *ev, struct reply *r)
{
	struct store_undone u;
	r->ephemeral = true;
	int rc = store_undo(b->store, ev->group_id, ev->member_id, ev->member_name, ev->source_id,
			    bot_now(b), &u);
	if (rc == COHORT_ERR_NOT_FOUND) {
		reply_title(r, REPLY_INFO, "Nothing to undo");
		reply_line(r, "You have no changes left to revert.");
		return COHORT_OK;
	}
	if (rc == COHORT_ERR_DUPLICATE) {
		reply_title(r, REPLY_INFO, "Already recorded");
		reply_line(r, "That undo was handled before; nothing was reverted twice.");
		return rc;
	}
	if (rc) {
		store_failed(r);
		return rc;
	}
	long t = roadmap_find_id(b->rm, u.topic_id);
	const char *name = t >= 0 ? roadmap_topic(b->rm, (size_t)t)->name : u.topic_id;
	if (u.fixed_member_id) { /* the admin's own correction of someone (/fix) */
		r->ephemeral = false;
		reply_title(r, REPLY_SUCCESS, "Undone: your correction of %s", u.fixed_member_name);
		if (u.count > 1)
			reply_line(r, "%d records of %s are back.", u.count, u.fixed_member_name);
		else
			reply_line(r, "%s is %s again for %s (it was %s).", name,
				   u.to == STATUS_NONE ? "unmarked" : status_words(u.to),
				   u.fixed_member_name,
				   u.from == STATUS_NONE ? "unmarked" : status_words(u.from));
		free(u.topic_id);
		free(u.fixed_member_id);
		free(u.fixed_member_name);
		return COHORT_OK;
	}
	if (u.to == STATUS_NONE)
		reply_title(r, REPLY_SUCCESS, "Undone: %s is unmarked again", name);
	else
		reply_title(r, REPLY_SUCCESS, "Undone: %s is %s again", name, status_words(u.to));
	if (u.from == STATUS_NONE)
		reply_line(r, "It had no status.");
	else
		reply_line(r, "It was %s.", status_words(u.from));
	free(u.topic_id);
	add_progress_line(b, ev, r);
	return COHORT_OK;
}

/* Looks up a groupmate named in args ("@bob" or "bob"); fills r and returns false if unknown. */
static bool find_member(struct bot *b, const struct event *ev, struct reply *r, char **id,
			char **name)
{
	char *who = text_trim(xstrdup(ev->args));
	const char *w = who[0] == '@' ? who + 1 : who;
	if (!*w) {
		free(who);
		*id = xstrdup(ev->member_id);
		*name = xstrdup(ev->member_name);
		return true;
	}
	int rc = store_find_member(b->store, ev->group_id, w, id, name);
	if (rc == COHORT_ERR_NOT_FOUND) {
		/* Platforms qualify ids ("console:bob"); accept the bare name the member sees. */
		char *qualified = xasprintf("%s:%s", ev->platform, w);
		rc = store_find_member(b->store, ev->group_id, qualified, id, name);
		free(qualified);
	}
	if (rc) {
		r->ephemeral = true;
		if (rc == COHORT_ERR_NOT_FOUND) {
			reply_title(r, REPLY_ERROR, "No member called \u201c%.*s\u201d here",
				    MAX_NAME, w);
			reply_line(r, "Members appear once they have recorded a topic. "
				      "/leaderboard shows who is here.");
		} else {
			store_failed(r);
		}
		free(who);
		return false;
	}
	free(who);
	return true;
}

/* How much of a note lists show, in characters (the whole note is kept). */
#define NOTE_SHOWN 80

/* Appends a member's note in quotes, clipped to NOTE_SHOWN characters with "…". */
static void add_note(struct strbuf *sb, const char *note)
{
	size_t chars = 0, i = 0;
	for (; note[i]; i++) {
		if (((unsigned char)note[i] & 0xc0) != 0x80 && chars++ == NOTE_SHOWN)
			break;
	}
	sb_adds(sb, "\u201c");
	sb_add(sb, note, i);
	sb_adds(sb, note[i] ? "\u2026\u201d" : "\u201d");
}

#define NOTES_SHOWN 5

struct note_row {
	long topic;
	int64_t at;
	char *note;
};

struct notes_ctx {
	const struct roadmap *rm;
	struct note_row *rows;
	size_t n, cap;
};

static int collect_note(const struct store_row *row, void *ud)
{
	struct notes_ctx *c = ud;
	long t = roadmap_find_id(c->rm, row->topic_id);
	if (!*row->note || t < 0 || row->status == STATUS_NONE)
		return 0;
	grow_array((void **)&c->rows, &c->cap, c->n + 1, sizeof(*c->rows));
	c->rows[c->n++] = (struct note_row){t, row->updated_at, xstrdup(row->note)};
	return 0;
}

static int newest_first(const void *pa, const void *pb)
{
	const struct note_row *a = pa, *b = pb;
	if (a->at != b->at)
		return a->at > b->at ? -1 : 1;
	return a->topic < b->topic ? -1 : a->topic > b->topic;
}

/* The member's newest notes, one line each: "Notes:" then "Kafka: “built a consumer”". */
static int add_notes(struct bot *b, const char *group, const char *member, struct reply *r)
{
	struct notes_ctx c = {b->rm, NULL, 0, 0};
	int rc = store_member_progress(b->store, group, member, collect_note, &c);
	if (!rc && c.n) {
		qsort(c.rows, c.n, sizeof(*c.rows), newest_first);
		reply_line(r, "Notes:");
		for (size_t i = 0; i < c.n && i < NOTES_SHOWN; i++) {
			struct strbuf sb = STRBUF_INIT;
			add_note(&sb, c.rows[i].note);
			reply_line(r, "%s: %s", roadmap_topic(b->rm, (size_t)c.rows[i].topic)->name,
				   sb_str(&sb));
			sb_release(&sb);
		}
		if (c.n > NOTES_SHOWN)
			reply_line(r, "and %zu more (/who TOPIC shows a topic's notes)",
				   c.n - NOTES_SHOWN);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.rows[i].note);
	free(c.rows);
	return rc;
}

struct progress_set_by {
	const struct roadmap *rm;
	struct strbuf sb;
};

static int add_topic_set_by(const char *member_id, const char *topic_id, const char *actor_name,
			    void *ud)
{
	(void)member_id;
	struct progress_set_by *c = ud;
	long t = roadmap_find_id(c->rm, topic_id);
	if (t >= 0)
		sb_addf(&c->sb, "%s%s (%s)", c->sb.len ? ", " : "",
			roadmap_topic(c->rm, (size_t)t)->name, actor_name);
	return 0;
}

/* "Set by an admin: Redis (boss)": the member's records an admin's /fix set. */
static int add_set_by(struct bot *b, const char *group, const char *member, struct reply *r)
{
	struct progress_set_by c = {b->rm, STRBUF_INIT};
	int rc = store_corrected(b->store, group, member, NULL, add_topic_set_by, &c);
	if (!rc && c.sb.len)
		reply_line(r, "Set by an admin: %s", sb_str(&c.sb));
	sb_release(&c.sb);
	return rc;
}

static int cmd_progress(struct bot *b, const struct event *ev, struct reply *r)
{
	char *id, *name;
	if (!find_member(b, ev, r, &id, &name))
		return COHORT_OK;
	size_t n = roadmap_topic_count(b->rm);
	enum store_status *st = xcalloc(n, sizeof(*st));
	bool *in = xcalloc(n, sizeof(*in));
	struct group_prefs prefs;
	struct strbuf sb = STRBUF_INIT;
	struct streaks streak = {0, 0};
	struct leaderboard own = {0};
	int rc = bot_member_statuses(b, ev->group_id, id, st);
	if (!rc)
		rc = bot_group_prefs(b, ev->group_id, &prefs);
	if (rc) {
		store_failed(r);
		goto out;
	}
	rc = leaderboard_streaks(b, ev->group_id, id, prefs.timezone, bot_now(b), &streak);
	group_prefs_release(&prefs);
	if (!rc)
		rc = leaderboard_build(b, ev->group_id, LB_ALL, 0, id, NULL, &own);
	if (rc) {
		store_failed(r);
		goto out;
	}
	r->ephemeral = true;
	struct tally all = bot_tally(b, st, NULL);
	reply_title(r, REPLY_INFO, "%s's progress", name);
	text_bar(&sb, all.done + all.skipped, all.total, BAR_WIDTH);
	sb_adds(&sb, "  ");
	bot_format_tally(&sb, &all);
	reply_mono(r, "%s", sb_str(&sb));

	/* One row per top-level item, names padded to a column. */
	size_t width = 0;
	for (size_t i = 0; i < roadmap_node_count(b->rm); i = roadmap_node(b->rm, i)->end) {
		size_t w = text_display_width(roadmap_node(b->rm, i)->name);
		width = w > width ? w : width;
	}
	if (width > 36)
		width = 36;
	for (size_t i = 0; i < roadmap_node_count(b->rm); i = roadmap_node(b->rm, i)->end) {
		const struct rm_node *nd = roadmap_node(b->rm, i);
		roadmap_subtree_topics(b->rm, i, in);
		struct tally t = bot_tally(b, st, in);
		sb_truncate(&sb, 0);
		text_add_padded(&sb, nd->name, width);
		sb_adds(&sb, " ");
		text_bar(&sb, t.done + t.skipped, t.total, 10);
		sb_addf(&sb, " %d/%d", t.done + t.skipped, t.total);
		reply_mono(r, "%s", sb_str(&sb));
	}
	sb_truncate(&sb, 0);
	for (size_t i = 0; i < n; i++)
		if (st[i] == STATUS_IN_PROGRESS)
			sb_addf(&sb, "%s%s", sb.len ? ", " : "", roadmap_topic(b->rm, i)->name);
	if (sb.len)
		reply_line(r, "In progress: %s", sb_str(&sb));
	rc = add_notes(b, ev->group_id, id, r);
	if (!rc)
		rc = add_set_by(b, ev->group_id, id, r);
	if (rc) {
		store_failed(r);
		goto out;
	}
	if (streak.current > 0)
		reply_line(r, "Streak: %d day%s (longest %d)", streak.current,
			   streak.current == 1 ? "" : "s", streak.longest);
	else if (streak.longest > 0)
		reply_line(r, "Streak: none right now (longest %d) \u2014 finish a topic today.",
			   streak.longest);
	else
		reply_line(r, "Streak: none yet \u2014 finish a topic today to start one.");
	if (own.n)
		reply_line(r, "Rank: #%d with %d point%s", own.rows[0].rank, own.rows[0].points,
			   own.rows[0].points == 1 ? "" : "s");
	rc = goal_progress_lines(b, ev->group_id, id, r);
	if (rc)
		store_failed(r);
out:
	leaderboard_release(&own);
	sb_release(&sb);
	free(st);
	free(in);
	free(id);
	free(name);
	return rc;
}

/* One board row: "#1   ana      12 pts  streak 3  ▲2", names padded to width. */
static void board_row(const struct leaderboard *lb, const struct lb_row *row, size_t width,
		      struct strbuf *sb)
{
	sb_addf(sb, "#%-3d ", row->rank);
	text_add_padded(sb, row->member_name, width);
	sb_addf(sb, " %4d pt%s", row->points, row->points == 1 ? " " : "s");
	if (row->streak > 0)
		sb_addf(sb, "  streak %d", row->streak);
	if (lb->has_previous && !row->ranked_before)
		sb_adds(sb, "  new");
	else if (row->movement > 0)
		sb_addf(sb, "  \u25b2%d", row->movement);
	else if (row->movement < 0)
		sb_addf(sb, "  \u25bc%d", -row->movement);
}

static int cmd_leaderboard(struct bot *b, const struct event *ev, struct reply *r)
{
	char *arg = text_trim(xstrdup(ev->args));
	enum lb_period period;
	if (!lb_period_parse(arg, &period)) {
		reply_title(r, REPLY_ERROR, "Unknown period \u201c%.*s\u201d", 40, arg);
		reply_line(r, "Usage: /leaderboard [week|month|all]");
		r->ephemeral = true;
		free(arg);
		return COHORT_OK;
	}
	free(arg);
	struct leaderboard lb;
	int rc = leaderboard_build(b, ev->group_id, period, BOARD_SIZE, ev->member_id, NULL, &lb);
	if (rc) {
		store_failed(r);
		return rc;
	}
	reply_title(r, REPLY_INFO, "Leaderboard \u2014 %s", lb_period_name(period));
	if (lb.n == 0)
		reply_line(r, "Nobody has finished a topic%s%s yet. Be the first: /done TOPIC",
			   period == LB_ALL ? "" : " ", period == LB_ALL ? "" : lb_period_name(period));
	size_t width = 4;
	for (size_t i = 0; i < lb.n; i++) {
		size_t w = text_display_width(lb.rows[i].member_name);
		width = w > width ? (w > 24 ? 24 : w) : width;
	}
	for (size_t i = 0; i < lb.n; i++) {
		struct strbuf sb = STRBUF_INIT;
		/* The asker's own row, when beyond the top, comes after a gap. */
		if (i == BOARD_SIZE)
			reply_mono(r, "...");
		board_row(&lb, &lb.rows[i], width, &sb);
		reply_mono(r, "%s", sb_str(&sb));
		sb_release(&sb);
	}
	if (lb.has_previous && period == LB_ALL && lb.n)
		reply_line(r, "\u25b2\u25bc: places moved since the last digest.");
	leaderboard_release(&lb);
	return COHORT_OK;
}

struct done_counts {
	const struct roadmap *rm;
	int *done; /* per topic index */
};

static int count_into(const struct store_count *c, void *ud)
{
	struct done_counts *dc = ud;
	long t = roadmap_find_id(dc->rm, c->topic_id);
	if (t >= 0)
		dc->done[t] = c->done;
	return 0;
}

static const char *mark(enum store_status s)
{
	switch (s) {
	case STATUS_DONE: return "[x]";
	case STATUS_IN_PROGRESS: return "[~]";
	case STATUS_SKIPPED: return "[-]";
	case STATUS_NONE: break;
	}
	return "[ ]";
}

static int cmd_topics(struct bot *b, const struct event *ev, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	size_t first = 0, last = roadmap_node_count(b->rm);
	char *arg = text_trim(xstrdup(ev->args));
	int rc = COHORT_OK;
	enum store_status *st = xcalloc(n, sizeof(*st));
	int *done = xcalloc(n, sizeof(*done));
	bool *in = xcalloc(n, sizeof(*in));
	r->ephemeral = true;
	if (*arg) {
		struct rm_resolution res;
		roadmap_resolve_section(b->rm, arg, &res);
		if (res.index < 0) {
			struct strbuf sb = STRBUF_INIT;
			for (size_t i = 0; i < res.ncandidates; i++)
				sb_addf(&sb, "%s%s", i ? ", " : "",
					roadmap_node(b->rm, (size_t)res.candidates[i])->name);
			if (res.match == RM_AMBIGUOUS)
				reply_title(r, REPLY_QUESTION, "Which section: %s?", sb_str(&sb));
			else
				reply_title(r, REPLY_ERROR, "No section called \u201c%.*s\u201d",
					    60, arg);
			sb_release(&sb);
			reply_line(r, "/topics without a name shows the whole roadmap.");
			goto out;
		}
		first = (size_t)res.index;
		last = roadmap_node(b->rm, first)->end;
	}
	struct done_counts ctx = {b->rm, done};
	rc = bot_member_statuses(b, ev->group_id, ev->member_id, st);
	if (!rc)
		rc = store_topic_counts(b->store, ev->group_id, count_into, &ctx);
	if (rc) {
		store_failed(r);
		goto out;
	}
	int base = roadmap_node(b->rm, first)->depth;
	if (*arg) {
		roadmap_subtree_topics(b->rm, first, in);
		struct tally t = bot_tally(b, st, in);
		struct strbuf sb = STRBUF_INIT;
		bot_format_tally(&sb, &t);
		reply_title(r, REPLY_INFO, "%s \u2014 %s", roadmap_node(b->rm, first)->name,
			    sb_str(&sb));
		sb_release(&sb);
		first++;
		base++;
	} else {
		reply_title(r, REPLY_INFO, "%s", "The roadmap");
	}
	for (size_t i = first; i < last; i++) {
		const struct rm_node *nd = roadmap_node(b->rm, i);
		struct strbuf sb = STRBUF_INIT;
		for (int d = base; d < nd->depth; d++)
			sb_adds(&sb, "  ");
		if (nd->topic < 0) {
			roadmap_subtree_topics(b->rm, i, in);
			struct tally t = bot_tally(b, st, in);
			sb_addf(&sb, "%s  %d/%d", nd->name, t.done + t.skipped, t.total);
		} else {
			sb_addf(&sb, "%s %s", mark(st[nd->topic]), nd->name);
			if (done[nd->topic])
				sb_addf(&sb, "  (%d finished)", done[nd->topic]);
			/* One section in detail: its topics' resource links (the roadmap's []()). */
			const char *link = roadmap_topic(b->rm, (size_t)nd->topic)->link;
			if (*arg && link)
				sb_addf(&sb, "  %s", link);
		}
		reply_mono(r, "%s", sb_str(&sb));
		sb_release(&sb);
	}
	reply_line(r, "[x] done  [~] in progress  [-] skipped");
out:
	free(arg);
	free(st);
	free(done);
	free(in);
	return rc;
}

static int cmd_next(struct bot *b, const struct event *ev, struct reply *r)
{
	size_t n = roadmap_topic_count(b->rm);
	enum store_status *st = xcalloc(n, sizeof(*st));
	int rc = bot_member_statuses(b, ev->group_id, ev->member_id, st);
	r->ephemeral = true;
	if (rc) {
		store_failed(r);
		free(st);
		return rc;
	}
	size_t i = 0;
	while (i < n && (st[i] == STATUS_DONE || st[i] == STATUS_SKIPPED))
		i++;
	if (i == n) {
		reply_title(r, REPLY_SUCCESS, "You have finished the whole roadmap!");
		reply_line(r, "Help a groupmate: /who TOPIC shows who is working on what.");
		free(st);
		return COHORT_OK;
	}
	const struct rm_topic *t = roadmap_topic(b->rm, i);
	struct strbuf sb = STRBUF_INIT;
	bot_topic_label(b, i, &sb);
	reply_title(r, REPLY_INFO, "Next for you: %s", sb_str(&sb));
	if (st[i] == STATUS_IN_PROGRESS)
		reply_line(r, "You are already on it. /done %s when you finish.", t->name);
	else
		reply_line(r, "/start %s to tell the group you are on it.", t->name);
	sb_truncate(&sb, 0);
	if (group_names(b, ev->group_id, t->id, ev->member_id, st[i] == STATUS_IN_PROGRESS,
			STATUS_IN_PROGRESS, &sb) > 0)
		reply_line(r, "On it now: %s", sb_str(&sb));
	sb_truncate(&sb, 0);
	if (group_names(b, ev->group_id, t->id, ev->member_id, false, STATUS_DONE, &sb) > 0)
		reply_line(r, "Finished it (ask them): %s", sb_str(&sb));
	sb_release(&sb);
	free(st);
	return COHORT_OK;
}

struct set_by;

struct who_ctx {
	const char *tz;
	struct strbuf sb;
	int listed;
	const struct set_by *set_by; /* records set by an admin's correction, or NULL */
};

/* Records an admin's correction set (/fix): "set by ADMIN" where they are listed. */
struct set_by {
	char **member, **actor;
	size_t n, cap, capa;
};

static int collect_set_by(const char *member_id, const char *topic_id, const char *actor_name,
			  void *ud)
{
	(void)topic_id;
	struct set_by *s = ud;
	grow_array((void **)&s->member, &s->cap, s->n + 1, sizeof(*s->member));
	grow_array((void **)&s->actor, &s->capa, s->n + 1, sizeof(*s->actor));
	s->member[s->n] = xstrdup(member_id);
	s->actor[s->n++] = xstrdup(actor_name);
	return 0;
}

static const char *set_by_of(const struct set_by *s, const char *member_id)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->member[i], member_id) == 0)
			return s->actor[i];
	return NULL;
}

static void set_by_release(struct set_by *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->member[i]);
		free(s->actor[i]);
	}
	free(s->member);
	free(s->actor);
}

static int collect_who(const struct store_row *row, void *ud)
{
	struct who_ctx *c = ud;
	sb_addf(&c->sb, "%s%s", c->listed++ ? ", " : "", row->member_name);
	const char *by = set_by_of(c->set_by, row->member_id);
	if (by)
		sb_addf(&c->sb, " [set by %s]", by);
	if (row->status == STATUS_DONE) {
		char day[16];
		tz_format(c->tz, row->updated_at, "%Y-%m-%d", day, sizeof(day));
		sb_addf(&c->sb, " (%s", day);
		if (*row->note) {
			sb_adds(&c->sb, ": ");
			add_note(&c->sb, row->note);
		}
		sb_adds(&c->sb, ")");
	} else if (*row->note) {
		sb_adds(&c->sb, " (");
		add_note(&c->sb, row->note);
		sb_adds(&c->sb, ")");
	}
	return 0;
}

#define WHO_SHOWN 20

/* Lists up to WHO_SHOWN members with the topic in status as "label: a, b and N more". */
static int who_line(struct bot *b, const char *group, const char *topic_id, const char *tz,
		    enum store_status status, int total, const char *label, struct reply *r)
{
	struct set_by by = {0};
	struct who_ctx c = {tz, STRBUF_INIT, 0, &by};
	int rc = store_corrected(b->store, group, NULL, topic_id, collect_set_by, &by);
	if (!rc)
		rc = store_topic_progress(b->store, group, topic_id, status, WHO_SHOWN,
					  collect_who, &c);
	set_by_release(&by);
	if (!rc && c.listed) {
		if (total > c.listed)
			sb_addf(&c.sb, " and %d more", total - c.listed);
		reply_line(r, "%s: %s", label, sb_str(&c.sb));
	}
	sb_release(&c.sb);
	return rc;
}

static int cmd_who(struct bot *b, const struct event *ev, struct reply *r)
{
	long t = resolve_topic(b, ev, r, "who");
	if (t < 0)
		return COHORT_OK;
	r->ephemeral = true;
	const struct rm_topic *topic = roadmap_topic(b->rm, (size_t)t);
	struct group_prefs prefs;
	struct store_count count;
	int rc = bot_group_prefs(b, ev->group_id, &prefs);
	if (!rc)
		rc = store_topic_count(b->store, ev->group_id, topic->id, &count);
	if (!rc) {
		reply_title(r, REPLY_INFO, "Who knows %s", topic->name);
		if (!count.done)
			reply_line(r, "Nobody in the group has finished %s yet.", topic->name);
		rc = who_line(b, ev->group_id, topic->id, prefs.timezone, STATUS_DONE, count.done,
			      "Finished", r);
	}
	if (!rc)
		rc = who_line(b, ev->group_id, topic->id, prefs.timezone, STATUS_IN_PROGRESS,
			      count.in_progress, "On it now", r);
	group_prefs_release(&prefs);
	if (rc)
		store_failed(r);
	return rc;
}

static bool admin_only(const struct event *ev, struct reply *r)
{
	if (ev->is_admin)
		return true;
	r->ephemeral = true;
	reply_title(r, REPLY_ERROR, "Only admins can change the digest");
	reply_line(r, "Ask someone who can manage this server or room. Nothing was changed.");
	return false;
}

/*
 * "Next digest: Monday 30 November, 18:00 (Europe/Berlin)." for a group with
 * a digest channel: the first digest time from now on a digest day whose
 * digest has not been posted yet.
 */
static int next_digest_line(struct bot *b, struct reply *r, const char *group_id,
			    const struct group_prefs *p)
{
	int hh, mm;
	if (!p->digest_channel || !parse_hhmm(p->digest_time, &hh, &mm))
		return COHORT_OK;
	int64_t now = bot_now(b);
	int64_t next = scheduler_next_slot(&p->every, p->timezone, hh, mm, now);
	char date[16], when[64];
	tz_format(p->timezone, next, "%Y-%m-%d", date, sizeof(date));
	struct store_digest d;
	int rc = store_digest_get(b->store, group_id, date, &d);
	if (rc == COHORT_OK) { /* posted early (cohort digest --post): the one after */
		if (d.sent_at)
			next = scheduler_next_slot(&p->every, p->timezone, hh, mm,
						   tz_day_start(p->timezone, next, 1));
		store_digest_release(&d);
	} else if (rc != COHORT_ERR_NOT_FOUND) {
		return rc;
	}
	tz_format(p->timezone, next, "%A %d %B, %H:%M", when, sizeof(when));
	reply_line(r, "Next digest: %s (%s).", when, p->timezone);
	return COHORT_OK;
}

/* "Every day", "Monday to Friday", "Every Monday": how often, for the start of a sentence. */
static const char *every_phrase(const struct group_prefs *p, char *buf, size_t n)
{
	scheduler_every_describe(&p->every, buf, n);
	buf[0] = (char)(buf[0] == 'e' ? 'E' : buf[0]);
	return buf;
}

/* "Posted every day at 18:00 (Europe/Berlin) in this channel", or that the digest is off. */
static void digest_settings_line(struct reply *r, const struct event *ev,
				 const struct group_prefs *p)
{
	char often[40];
	scheduler_every_describe(&p->every, often, sizeof(often));
	if (!p->digest_channel)
		reply_line(r, "The daily digest is off: an admin turns it on with "
			      "/digest channel here.");
	else if (strcmp(p->digest_channel, ev->channel_id) == 0)
		reply_line(r, "Posted %s at %s (%s) in this channel.", often, p->digest_time,
			   p->timezone);
	else
		reply_line(r, "Posted %s at %s (%s) in another channel (%.64s).", often,
			   p->digest_time, p->timezone, p->digest_channel);
}

/* Whether the group's digest time has passed today (in its zone). */
static bool digest_time_passed(struct bot *b, const struct group_prefs *p)
{
	int hh, mm;
	int64_t now = bot_now(b);
	return parse_hhmm(p->digest_time, &hh, &mm) && tz_at_time(p->timezone, now, hh, mm) < now;
}

/* Says word is not a time zone (nor, alone, a time), with the zone it most likely meant. */
static void not_a_zone(struct reply *r, const char *word, bool alone)
{
	char guess[80];
	reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a time zone%s", 64, word,
		    alone ? " or a time" : "");
	if (tz_suggest(word, guess, sizeof(guess)))
		reply_line(r, "Did you mean %s? Nothing was changed.", guess);
	else if (alone)
		reply_line(r,
			   "Write a time as HH:MM (/digest time 18:00) or a zone as an IANA name "
			   "such as Europe/Berlin. Nothing was changed.");
	else
		reply_line(r, "Use an IANA name such as UTC, Europe/Berlin or "
			      "America/New_York. Nothing was changed.");
}

/* "/digest every daily|weekdays|weekly DAY" (words after "every"; an admin's). */
static int set_every(struct bot *b, const struct event *ev, const char *const *words, int nw,
		     struct reply *r)
{
	char text[64] = "", why[COHORT_ERR_LEN], stored[DIGEST_EVERY_LEN], often[40];
	struct digest_every e;
	for (int i = 0; i < nw; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s", i ? " " : "",
			 words[i]);
	if (nw == 0) {
		reply_title(r, REPLY_ERROR, "Say how often the digest is posted");
		reply_line(r, "/digest every daily, /digest every weekdays (Monday to Friday) or "
			      "/digest every weekly monday. Nothing was changed.");
		return COHORT_OK;
	}
	if (!scheduler_every_parse(text, &e, why, sizeof(why))) {
		reply_title(r, REPLY_ERROR, "%s", why);
		reply_line(r, "/digest every daily, /digest every weekdays (Monday to Friday) or "
			      "/digest every weekly monday. Nothing was changed.");
		return COHORT_OK;
	}
	scheduler_every_format(&e, stored);
	int rc = store_set_digest_every(b->store, ev->group_id, stored);
	if (!rc)
		rc = scheduler_settings_changed(b, ev->group_id);
	struct group_prefs p;
	if (!rc)
		rc = bot_group_prefs(b, ev->group_id, &p);
	if (rc) {
		store_failed(r);
		return rc;
	}
	reply_title(r, REPLY_SUCCESS, "The digest is now posted %s",
		    scheduler_every_describe(&p.every, often, sizeof(often)));
	reply_line(r, "%s at %s (%s), covering everything since the digest before.",
		   every_phrase(&p, often, sizeof(often)), p.digest_time, p.timezone);
	if (p.digest_channel)
		rc = next_digest_line(b, r, ev->group_id, &p);
	else
		reply_line(r, "No channel yet: an admin says /digest channel here.");
	group_prefs_release(&p);
	if (rc)
		store_failed(r);
	return rc;
}

static int cmd_digest(struct bot *b, const struct event *ev, struct reply *r)
{
	char *args = text_trim(xstrdup(ev->args));
	char *words[4] = {0};
	int nw = 0;
	char *save = NULL;
	for (char *w = strtok_r(args, " \t", &save); w && nw < 4; w = strtok_r(NULL, " \t", &save))
		words[nw++] = w;
	int rc = COHORT_OK;
	if (nw == 0) {
		struct group_prefs p;
		rc = bot_digest(b, ev->group_id, r);
		if (!rc)
			rc = bot_group_prefs(b, ev->group_id, &p);
		if (rc) {
			store_failed(r);
			goto out;
		}
		digest_settings_line(r, ev, &p);
		rc = next_digest_line(b, r, ev->group_id, &p);
		group_prefs_release(&p);
		if (rc)
			store_failed(r);
		goto out;
	}
	r->ephemeral = true;
	if (text_ieq(words[0], "channel") && nw == 2 &&
	    (text_ieq(words[1], "here") || text_ieq(words[1], "off"))) {
		if (!admin_only(ev, r))
			goto out;
		bool off = text_ieq(words[1], "off");
		/* Each group of a linked pair has its own digest channel (its platform's). */
		const char *home = ev->home_group_id ? ev->home_group_id : ev->group_id;
		rc = store_set_digest_channel(b->store, home, off ? NULL : ev->channel_id);
		if (!rc)
			rc = scheduler_settings_changed(b, home);
		if (rc) {
			store_failed(r);
			goto out;
		}
		struct group_prefs p;
		if (bot_group_prefs(b, ev->group_id, &p) == COHORT_OK) {
			if (off)
				reply_title(r, REPLY_SUCCESS, "The daily digest is off");
			else
				reply_title(r, REPLY_SUCCESS, "The %s digest will be posted here",
					    p.every.kind == EVERY_DAY	      ? "daily"
					    : p.every.kind == EVERY_WEEKDAY ? "weekday"
									    : "weekly");
			char often[40];
			if (!off)
				reply_line(r,
					   "%s at %s (%s). /digest time HH:MM [zone] "
					   "changes it.",
					   every_phrase(&p, often, sizeof(often)), p.digest_time,
					   p.timezone);
			if (!off && p.every.kind == EVERY_DAY && digest_time_passed(b, &p))
				reply_line(r,
					   "Today's %s has passed: the first digest comes "
					   "tomorrow.",
					   p.digest_time);
			else if (!off && p.every.kind != EVERY_DAY)
				rc = next_digest_line(b, r, ev->group_id, &p);
			group_prefs_release(&p);
		}
		goto out;
	}
	if (text_ieq(words[0], "time") && (nw == 2 || nw == 3)) {
		if (!admin_only(ev, r))
			goto out;
		/* "time HH:MM", "time HH:MM ZONE", or "time ZONE" (the zone alone). */
		int hh = -1, mm = 0;
		char hhmm[16], zone[80];
		const char *zone_word = nw == 3 ? words[2] : NULL;
		if (!parse_time_of_day(words[1], &hh, &mm)) {
			bool looks_like_time =
				(words[1][0] >= '0' && words[1][0] <= '9') || nw == 3;
			if (looks_like_time) {
				reply_title(r, REPLY_ERROR, "\u201c%.*s\u201d is not a time", 20,
					    words[1]);
				reply_line(r, "Write it as HH:MM, 24-hour: /digest time 18:00 "
					      "Europe/Berlin. Nothing was changed.");
				goto out;
			}
			hh = -1;
			zone_word = words[1];
		}
		if (zone_word && !tz_canonical(zone_word, zone, sizeof(zone))) {
			not_a_zone(r, zone_word, nw == 2);
			goto out;
		}
		struct store_settings before;
		rc = store_get_settings(b->store, ev->group_id, &before);
		if (rc) {
			store_failed(r);
			goto out;
		}
		struct group_prefs old;
		rc = bot_group_prefs(b, ev->group_id, &old);
		if (!rc) {
			/* The zone alone keeps the time as it was (unset stays the default). */
			if (hh >= 0)
				snprintf(hhmm, sizeof(hhmm), "%02d:%02d", hh, mm);
			rc = store_set_digest_time(b->store, ev->group_id,
						   hh >= 0 ? hhmm : before.digest_time,
						   zone_word ? zone : NULL);
		}
		store_settings_release(&before);
		if (!rc)
			rc = scheduler_settings_changed(b, ev->group_id);
		/* Weeks and months now start at the new zone's midnights: recount them. */
		if (!rc && zone_word && strcmp(old.timezone, zone) != 0)
			rc = store_rebuild_periods(b->store, ev->group_id);
		group_prefs_release(&old);
		if (rc) {
			store_failed(r);
			goto out;
		}
		struct group_prefs p;
		if (bot_group_prefs(b, ev->group_id, &p) == COHORT_OK) {
			reply_title(r, REPLY_SUCCESS, "The digest time is now %s (%s)",
				    p.digest_time, p.timezone);
			if (p.digest_channel && p.every.kind == EVERY_DAY &&
			    digest_time_passed(b, &p))
				reply_line(r,
					   "Today's %s has passed: the first digest at the new "
					   "time comes tomorrow.",
					   p.digest_time);
			else if (p.every.kind != EVERY_DAY)
				rc = next_digest_line(b, r, ev->group_id, &p);
			if (!p.digest_channel)
				reply_line(r,
					   "No channel yet: an admin says /digest channel here.");
			group_prefs_release(&p);
		}
		goto out;
	}
	if (text_ieq(words[0], "every")) {
		if (!admin_only(ev, r))
			goto out;
		rc = set_every(b, ev, (const char *const *)words + 1, nw - 1, r);
		goto out;
	}
	reply_title(r, REPLY_ERROR,
		    "Usage: /digest [channel here|off] [time HH:MM [zone]] "
		    "[every daily|weekdays|weekly DAY]");
	reply_line(r, "/digest alone previews today's digest; /digest time Europe/Berlin changes "
		      "only the zone.");
out:
	free(args);
	return rc;
}

/* What the admin must configure before the group's page can be served. */
static void no_page_server(struct reply *r)
{
	reply_title(r, REPLY_ERROR, "The group's page needs cohort's web server");
	reply_line(r, "An admin of the bot sets http.listen (e.g. \"127.0.0.1:8080\") and "
		      "http.public_url (the address members reach it at) in cohort's config "
		      "file, then restarts it. Nothing was changed.");
}

static int cmd_dashboard(struct bot *b, const struct event *ev, struct reply *r)
{
	char *arg = text_trim(xstrdup(ev->args));
	bool on = text_ieq(arg, "on"), off = text_ieq(arg, "off"), reset = text_ieq(arg, "reset");
	struct store_dashboard dash;
	char token[PAGE_TOKEN_LEN + 1];
	r->ephemeral = true;
	int rc = COHORT_OK;
	if (*arg && !on && !off && !reset) {
		reply_title(r, REPLY_ERROR, "Usage: /dashboard [on|off|reset]");
		reply_line(r, "/dashboard alone gives the link to the group's page; admins turn it "
			      "on or off, or make a new link with reset. Nothing was changed.");
		goto out_arg;
	}
	if (*arg && !ev->is_admin) {
		reply_title(r, REPLY_ERROR, "Only admins can change the group's page");
		reply_line(r, "Ask someone who can manage this server or room. /dashboard alone "
			      "gives the link. Nothing was changed.");
		goto out_arg;
	}
	if (!b->public_url && !off) {
		no_page_server(r);
		goto out_arg;
	}
	rc = store_dashboard_get(b->store, ev->group_id, &dash);
	if (rc && rc != COHORT_ERR_NOT_FOUND) {
		store_failed(r);
		goto out_arg;
	}
	bool known = rc == COHORT_OK;
	rc = COHORT_OK;
	if (!*arg) {
		if (known && dash.enabled) {
			reply_title(r, REPLY_INFO, "The group's page");
			reply_line(r, "%s/g/%s", b->public_url, dash.token);
			reply_line(r, "Anyone with the link can see the group's progress: share it "
				      "only with the group.");
		} else {
			reply_title(r, REPLY_INFO, "The group's page is off");
			reply_line(r, "An admin turns it on with /dashboard on.");
		}
		goto out;
	}
	if (off) {
		if (!known || !dash.enabled) {
			reply_title(r, REPLY_INFO, "The group's page is off already");
			goto out;
		}
		rc = store_dashboard_set(b->store, ev->group_id, dash.token, false, bot_now(b));
		if (rc) {
			store_failed(r);
			goto out;
		}
		reply_title(r, REPLY_SUCCESS, "The group's page is off");
		reply_line(r, "Its link shows nothing now. /dashboard on brings it back under the "
			      "same link; /dashboard reset makes a new one.");
		goto out;
	}
	if (on && known && dash.enabled) {
		reply_title(r, REPLY_INFO, "The group's page is on already");
		reply_line(r, "%s/g/%s", b->public_url, dash.token);
		goto out;
	}
	/* on (the same link when there was one) or reset (always a new one). */
	const char *use = on && known ? dash.token : NULL;
	for (int tries = 0; !use && tries < 3; tries++) {
		rc = page_token_new(token);
		if (rc)
			break;
		rc = store_dashboard_set(b->store, ev->group_id, token, true, bot_now(b));
		if (rc != COHORT_ERR_DUPLICATE)
			break; /* a collision of 192 random bits: only ever by a broken generator */
	}
	if (use)
		rc = store_dashboard_set(b->store, ev->group_id, use, true, bot_now(b));
	if (rc == COHORT_ERR_IO) {
		reply_title(r, REPLY_ERROR, "No link was made");
		reply_line(r, "The system gave no random numbers for an unguessable link. Nothing "
			      "was changed.");
		goto out;
	}
	if (rc) {
		store_failed(r);
		goto out;
	}
	if (reset && known)
		reply_title(r, REPLY_SUCCESS, "The group's page has a new link");
	else
		reply_title(r, REPLY_SUCCESS, "The group's page is on");
	reply_line(r, "%s/g/%s", b->public_url, use ? use : token);
	if (reset && known)
		reply_line(r, "The old link shows nothing any more.");
	reply_line(r, "Members get the link with /dashboard.");
out:
	store_dashboard_release(&dash);
out_arg:
	free(arg);
	return rc;
}

/* A command typed as text (or its slash form): the slash-only ones are not found. */
static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!commands[i].d.slash_only && text_ieq(commands[i].d.name, name))
			return &commands[i];
	return NULL;
}

static int cmd_help(struct bot *b, const struct event *ev, struct reply *r)
{
	(void)b;
	char *arg = text_trim(xstrdup(ev->args));
	const char *name = arg[0] == '/' || arg[0] == '!' ? arg + 1 : arg;
	r->ephemeral = true;
	if (*name) {
		const struct command *c = find_command(name);
		if (c) {
			reply_title(r, REPLY_INFO, "/%s", c->d.usage);
			reply_line(r, "%s", c->d.details);
			free(arg);
			return COHORT_OK;
		}
		reply_title(r, REPLY_ERROR, "There is no command \u201c%.*s\u201d", 40, name);
	} else {
		reply_title(r, REPLY_INFO,
			    "cohort \u2014 track the group's progress through the roadmap");
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!commands[i].d.slash_only)
			reply_mono(r, "/%-40s %s", commands[i].d.usage, commands[i].d.summary);
	reply_line(r, "Topics may be typed loosely: \"postgres\", \"k8s\", \"rabbit mq\". "
		      "/help COMMAND explains one.");
	free(arg);
	return COHORT_OK;
}

/* True when every text field of ev is valid UTF-8 within its limit; else fills r. */
static bool event_ok(const struct event *ev, struct reply *r)
{
	const char *fields[] = {ev->args, ev->topic, ev->note, ev->member_name};
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		if (fields[i] && !text_utf8_valid(fields[i], strlen(fields[i]))) {
			reply_title(r, REPLY_ERROR, "That message is not valid UTF-8");
			reply_line(r, "Nothing was changed.");
			r->ephemeral = true;
			return false;
		}
	}
	if (strlen(ev->args) > MAX_ARGS || (ev->topic && strlen(ev->topic) > MAX_ARGS) ||
	    (ev->note && strlen(ev->note) > MAX_NOTE)) {
		reply_title(r, REPLY_ERROR, "That is too long");
		reply_line(r,
			   "Commands may be up to %d characters and notes up to %d. Nothing was "
			   "changed.",
			   MAX_ARGS, MAX_NOTE);
		r->ephemeral = true;
		return false;
	}
	return true;
}

static int handle(struct bot *b, const struct event *ev, struct reply *out);

/* /metrics: the command (known names only, else "other") and its platform, and the time taken. */
static void count_command(const struct event *ev, double seconds)
{
	const char *platform = ev->platform;
	if (strcmp(platform, "discord") && strcmp(platform, "matrix") && strcmp(platform, "console"))
		platform = "other";
	char labels[METRICS_MAX_LABELS];
	snprintf(labels, sizeof(labels), "command=\"%s\",platform=\"%s\"",
		 ev->command && bot_command_summary(ev->command) ? ev->command : "other", platform);
	metrics_count(METRIC_COMMANDS, labels);
	snprintf(labels, sizeof(labels), "platform=\"%s\"", platform);
	metrics_observe(METRIC_REPLY_SECONDS, labels, seconds);
}

/* The value of a slash command's option, or NULL when it was not given. */
static const char *option(const struct event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n_options; i++)
		if (strcmp(ev->options[i].name, name) == 0)
			return ev->options[i].value;
	return NULL;
}

/*
 * /digest-setup (a slash command only): its options time and timezone,
 * every and day, channel are the /digest settings, applied in that order (so
 * the channel's answer says the schedule); several make one answer, the
 * later ones' titles becoming lines. "day" alone means weekly on that day; a
 * bad every/day changes nothing and is the only thing answered; a setting
 * refused (a bad time or zone) stops the ones after it, so nothing is
 * changed when the first is refused.
 */
static int digest_setup(struct bot *b, const struct event *in, struct reply *out)
{
	const char *where = option(in, "channel"), *time = option(in, "time");
	const char *zone = option(in, "timezone"), *every = option(in, "every");
	const char *day = option(in, "day");
	char *parts[3];
	size_t n = 0;
	struct event ev = *in;
	ev.command = "digest";
	if (every || day) {
		char *e = xasprintf("every %s%s%s", every ? every : "weekly", day ? " " : "",
				    day ? day : "");
		struct digest_every parsed;
		if (!scheduler_every_parse(e + 6, &parsed, NULL, 0))
			where = time = zone = NULL; /* its error alone: nothing else is changed */
		/* The bot's "digest time" takes HH:MM, HH:MM ZONE, or a zone alone. */
		if (time || zone)
			parts[n++] = xasprintf("time %s%s%s", time ? time : "",
					       time && zone ? " " : "", zone ? zone : "");
		parts[n++] = e;
	} else if (time || zone) {
		parts[n++] = xasprintf("time %s%s%s", time ? time : "", time && zone ? " " : "",
				       zone ? zone : "");
	}
	if (where)
		parts[n++] = xasprintf("channel %s", where);
	if (n == 0 || !in->is_admin) { /* the preview, or the members' refusal said once */
		ev.args = n ? parts[0] : "";
		int rc = handle(b, &ev, out);
		while (n)
			free(parts[--n]);
		return rc;
	}
	int rc = COHORT_OK;
	for (size_t i = 0; i < n; i++) {
		struct reply r;
		reply_init(&r);
		ev.args = parts[i];
		if (i)
			ev.source_id = NULL;
		int rc2 = handle(b, &ev, &r);
		rc = rc ? rc : rc2;
		if (i == 0) {
			out->ephemeral = r.ephemeral;
			reply_title(out, r.kind, "%s", r.title ? r.title : "");
		} else if (r.title) {
			reply_line(out, "%s", r.title);
		}
		for (size_t j = 0; j < r.nlines; j++)
			/* "No channel yet" is not so when this answer also sets it. */
			if (!where || strncmp(r.lines[j].text, "No channel yet", 14) != 0)
				reply_line(out, "%s", r.lines[j].text);
		bool refused = r.kind == REPLY_ERROR;
		reply_release(&r);
		if (refused) {
			/* The settings after a refused one are not applied. */
			out->kind = REPLY_ERROR;
			if (i + 1 < n)
				reply_line(out, i ? "The settings after it were not changed."
						  : "Nothing else was changed.");
			while (n > i)
				free(parts[--n]);
			break;
		}
		free(parts[i]);
	}
	return rc;
}

/*
 * A slash command's options as the text form's fields, by the command
 * table's roles: its text (args), a topic kept whole, a note. The values are
 * ev->options' (borrowed).
 */
static void from_options(struct event *ev)
{
	const struct command *c = command_named(ev->command);
	if (!c)
		return;
	const char *args = NULL;
	for (size_t i = 0; i < c->d.n_options; i++) {
		const struct bot_option *o = &c->d.options[i];
		const char *v = option(ev, o->name);
		if (!v)
			continue;
		if (o->role == BOT_ROLE_TOPIC)
			ev->topic = v;
		else if (o->role == BOT_ROLE_NOTE)
			ev->note = v;
		if ((o->role == BOT_ROLE_ARGS || o->role == BOT_ROLE_TOPIC) && !args)
			args = v;
	}
	if (args)
		ev->args = args;
}

int bot_handle(struct bot *b, const struct event *in, struct reply *out)
{
	/* Names are made safe and short once, here, for every platform. */
	char *name = bot_member_name(in->member_name, in->member_id);
	struct event ev = *in;
	ev.member_name = name;
	double t0 = metrics_clock();
	int rc;
	/*
	 * Linked identities are one member (bot/link.h): resolved here, once, for
	 * every command but /link itself, which works on the identity as given.
	 */
	char *canonical = NULL, *group = NULL, *link_args = NULL;
	if (ev.slash && strcmp(ev.command, "link-group") == 0) {
		/* /link-group code:X is /link group X. */
		const char *code = option(&ev, "code");
		link_args = xasprintf("group %s", code ? code : "");
		ev.command = "link";
		ev.args = link_args; /* still a slash command: its answer is ephemeral */
	}
	bool link = strcmp(ev.command ? ev.command : "", "link") == 0;
	if (!link && ev.member_id &&
	    store_member_canonical(b->store, ev.member_id, &canonical) == COHORT_OK)
		ev.member_id = canonical;
	/* A linked group is the group whose admin made the code (its roadmap, its settings). */
	if (!link && ev.group_id && store_group_canonical(b->store, ev.group_id, &group) == COHORT_OK &&
	    strcmp(group, ev.group_id) != 0) {
		ev.home_group_id = ev.group_id;
		ev.group_id = group;
	}
	/* Every command resolves and counts against the group's own roadmap. */
	rc = bot_use_group(b, ev.group_id);
	if (rc)
		log_warn("bot", "reading %s's roadmap failed; answering with the default",
			 ev.group_id);
	if (ev.slash && strcmp(ev.command, "digest-setup") == 0) {
		rc = digest_setup(b, &ev, out);
	} else if (ev.slash && strcmp(ev.command, "dashboard-setup") == 0) {
		/* /dashboard-setup action:on is /dashboard on. */
		const char *action = option(&ev, "action");
		ev.command = "dashboard";
		ev.args = action ? action : "";
		rc = handle(b, &ev, out);
	} else {
		if (ev.slash && !link_args)
			from_options(&ev);
		rc = handle(b, &ev, out);
	}
	if (ev.success_note && out->kind != REPLY_ERROR)
		reply_line(out, "%s", ev.success_note);
	free(name);
	free(canonical);
	free(group);
	free(link_args);
	count_command(in, metrics_clock() - t0);
	return rc;
}

static int handle(struct bot *b, const struct event *ev, struct reply *out)
{
	const struct command *c = find_command(ev->command);
	if (!c && ev->slash && command_named(ev->command) && command_named(ev->command)->fn)
		c = command_named(ev->command); /* a slash-only command with a handler (goal-group) */
	if (!c) {
		const char *best = NULL;
		int bestd = 3;
		for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
			if (commands[i].d.slash_only)
				continue;
			int d = text_distance(ev->command, commands[i].d.name, 2);
			if (d < bestd) {
				bestd = d;
				best = commands[i].d.name;
			}
		}
		out->ephemeral = true;
		reply_title(out, REPLY_ERROR, "Unknown command /%.*s", 40, ev->command);
		if (best)
			reply_line(out, "Did you mean /%s? /help lists every command.", best);
		else
			reply_line(out, "/help lists every command.");
		return COHORT_OK;
	}
	if (!event_ok(ev, out))
		return COHORT_OK;
	int rc = c->fn(b, ev, out);
	if (rc && rc != COHORT_ERR_DUPLICATE)
		log_warn("bot", "/%s in %s failed: %s", c->d.name, ev->group_id, cohort_strerror(rc));
	return rc;
}
