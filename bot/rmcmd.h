/*
 * A roadmap per group (DESIGN §5 "roadmap [use NAME]", issue 15 §1):
 *   /roadmap            the group's roadmap (name, topics, the member's
 *                       progress on it) and the others it may use (topics
 *                       each, how many it shares with the group's)
 *   /roadmap use NAME   admins: switch the group (store_set_group_roadmap());
 *                       progress is kept by topic id, so topics the two
 *                       share carry over, the others are kept and count
 *                       again after switching back
 * On Discord, /roadmap-use name: is the admin command (hidden from others).
 */
#ifndef COHORT_RMCMD_H
#define COHORT_RMCMD_H

#include <stddef.h>

struct bot;
struct bot_choice;
struct event;
struct reply;

/* The /roadmap command (commands.c's table names it). */
int rmcmd_command(struct bot *b, const struct event *ev, struct reply *r);
/* /roadmap-use name: (Discord's admin command): /roadmap use NAME. */
int rmcmd_use_command(struct bot *b, const struct event *ev, struct reply *r);
/* Completes a roadmap name being typed (the name option): up to max choices. */
size_t rmcmd_complete(struct bot *b, const char *typed, struct bot_choice *out, size_t max);

#endif
