/*
 * Admin corrections (/fix, DESIGN §5): an admin sets or clears a member's
 * status for a topic, or removes a member's records, each logged as the
 * admin's change (store_fix_status(), store_fix_remove()): it shows in the
 * event log and the digest ("set by ADMIN"), the admin's /undo reverts it
 * and the member's own /undo leaves it alone.
 *
 * The grammar (README "Correcting records"):
 *   /fix MEMBER TOPIC done|start|skip|none
 *   /fix MEMBER remove            says what would go and how to confirm
 *   /fix MEMBER remove confirm    clears every record of MEMBER in the group
 * MEMBER is a display name (the longest run of leading words that names one
 * member), a member id ("matrix:@ana:example.org", "@ana:example.org"), a
 * Discord mention or, as a slash command, the member option. A name two
 * members share is ambiguous: the answer says to use the id. TOPIC resolves
 * as for /done, except that a near miss is asked about, never read as a
 * topic: a correction of someone else's record is never a guess.
 */
#ifndef COHORT_FIX_H
#define COHORT_FIX_H

struct bot;
struct event;
struct reply;

/* The /fix command (commands.c's table names it). Admins only; others change nothing. */
int fix_command(struct bot *b, const struct event *ev, struct reply *r);

#endif
