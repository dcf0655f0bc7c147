/*
 * Goals with a pace (/goal, DESIGN §5): a member's own goal and the group's
 * goal for everyone, each a topic or a section of the roadmap by a local
 * date in the group's zone. The pace compares the topics left with an even
 * plan from the day the goal was set to its due date; /progress, /goal and
 * the daily digest show it, and the answer that reaches a goal celebrates it
 * (once: store_goal_mark()).
 *
 * The goal grammar (README "Goals"):
 *   /goal                          your goal and the group's, with the pace
 *   /goal TARGET by DATE           sets yours: TARGET a topic or a section
 *   /goal off | /goal clear        removes yours
 *   /goal group TARGET by DATE     admins: the group's goal for everyone
 *   /goal group off | clear        admins: removes it
 * DATE is 2027-03-31, "31 March", "March 31", "31 Mar 2027", "March 31, 2027"
 * (a day and a month name, English, full or three letters, in either order;
 * "1st", "2nd" too). Without a year it is the next such day, today included.
 */
#ifndef COHORT_GOAL_H
#define COHORT_GOAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot;
struct event;
struct reply;

/* Goals end at most this far ahead. */
#define GOAL_MAX_DAYS 3660

enum goal_state {
	GOAL_ON_TRACK, /* at the plan (today's share may still be to do) */
	GOAL_AHEAD,    /* ahead of even tonight's plan by `ahead` topics */
	GOAL_BEHIND,   /* `behind` topics short of where the plan was this morning */
	GOAL_DUE_TODAY,
	GOAL_REACHED, /* every topic in it done or skipped */
	GOAL_MISSED,  /* the due date passed with `missed_by` topics left */
};

struct goal_pace {
	enum goal_state state;
	int total;          /* topics in the goal */
	int left;           /* not done or skipped now */
	int left_at_set;    /* ... when the goal was set (the plan spreads these) */
	long days_total;    /* from the set day to the due day, both counted */
	long days_left;     /* from today to the due day, both counted; 0 once passed */
	int behind;         /* GOAL_BEHIND: topics short of this morning's plan */
	int ahead;          /* GOAL_AHEAD: topics beyond tonight's plan */
	int today;          /* topics still to finish today to be on plan tonight */
	int missed_by;      /* GOAL_MISSED: left at the end of the due day */
	long next;          /* the first unfinished topic (index into finished_at), or -1 */
	int64_t reached_at; /* GOAL_REACHED: when the last topic was finished */
};

/*
 * The pace arithmetic, on local calendar days of zone tz (a day is a date,
 * whatever its length on a daylight-saving change). finished_at[i] is when
 * the goal's i-th topic (roadmap order) was finished (done or skipped), 0 when
 * it is not. set_at: when the goal was set; due_date "YYYY-MM-DD"; now: the
 * clock. Returns false when due_date is not a date.
 */
bool goal_pace(const char *tz, int64_t set_at, const char *due_date, int64_t now,
	       const int64_t *finished_at, size_t n, struct goal_pace *out);

/* True when s is a date "YYYY-MM-DD" that exists (1970 on). */
bool goal_date_valid(const char *s);

/*
 * Reads a due date as typed (the grammar above) on the local day of now in
 * tz: fills out "YYYY-MM-DD" and returns true; false with the reason in why
 * (a sentence, why_len bytes) when it is not a date of that grammar.
 */
bool goal_parse_date(const char *text, const char *tz, int64_t now, char out[11], char *why,
		     size_t why_len);

/* The /goal command (commands.c's table names it). */
int goal_command(struct bot *b, const struct event *ev, struct reply *r);
/* Discord's /goal-group (admins): "/goal group" with the option's text. */
int goal_group_command(struct bot *b, const struct event *ev, struct reply *r);

/* Appends the member's goal and the group's, each with its pace (/progress). */
int goal_progress_lines(struct bot *b, const char *group_id, const char *member_id,
			struct reply *r);

/*
 * After a change by ev's member at or after `since` (the command's start):
 * marks each of their goals that it completed, and celebrates in r those it
 * was the first to mark.
 */
int goal_after_change(struct bot *b, const struct event *ev, int64_t since, struct reply *r);

/*
 * The digest's goal lines for the window [since, now]: goals reached in it
 * (celebrated), goals whose due date ended in it without being reached
 * (missed, by how many), and the pace of the goals running.
 */
int goal_digest_lines(struct bot *b, const char *group_id, int64_t since, int64_t now,
		      struct reply *r);

#endif
