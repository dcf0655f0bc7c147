/*
 * One person on two platforms (/link, DESIGN §5, issue 15 §4).
 *
 *   /link           a one-time code, valid LINK_CODE_TTL_MS, shown only to the
 *                   member (ephemeral on Discord; on Matrix in their direct room)
 *   /link CODE      typed on the OTHER platform: the two identities become one
 *                   member (the code's maker is the one recorded), their progress
 *                   merged (the later change wins a topic both have)
 *   /link remove    the identities are separate again from now on
 *
 * Codes are 8 characters from an alphabet without 0, O, 1, I and L, shown
 * grouped (K7QP-M3XD) and read case- and dash-insensitively. The store keeps
 * only their SHA-256, so any process on a shared PostgreSQL can redeem them,
 * once. LINK_MAX_WRONG wrong codes within LINK_WINDOW_MS make a member wait.
 */
#ifndef COHORT_LINK_H
#define COHORT_LINK_H

#include <stdbool.h>
#include <stdint.h>

struct bot;
struct event;
struct reply;

#define LINK_CODE_LEN 8
#define LINK_CODE_TTL_MS (10 * 60 * 1000)
#define LINK_WINDOW_MS (10 * 60 * 1000)
#define LINK_MAX_WRONG 5

/* The characters a code is made of (31: no 0/O, 1/I/L). */
extern const char link_alphabet[];

/* A new random code (LINK_CODE_LEN characters and a NUL) from getrandom(2). */
void link_code_new(char out[LINK_CODE_LEN + 1]);
/*
 * What a member typed as a code, made canonical: spaces and dashes dropped,
 * letters upper-cased. False (out unspecified) unless that leaves exactly
 * LINK_CODE_LEN characters of link_alphabet.
 */
bool link_code_normalize(const char *typed, char out[LINK_CODE_LEN + 1]);
/* "K7QP-M3XD" of "K7QPM3XD". */
void link_code_format(const char *code, char out[LINK_CODE_LEN + 2]);
/* The hex SHA-256 of a canonical code: what the store keeps. */
void link_code_hash(const char *code, char out[65]);
/* Whether a code made at created_at is still good at now. */
bool link_code_live(int64_t expires_at, int64_t now);

/*
 * The /link command. ev->member_id is the identity as the platform gave it
 * (bot_handle() does not resolve it for this command). Borrowed; the answer
 * goes into r.
 */
int link_command(struct bot *b, const struct event *ev, struct reply *r);

#endif
