/*
 * Discord HTTP interactions (POST /interactions): Discord signs each request
 * with the application's Ed25519 key, over the X-Signature-Timestamp header
 * followed by the raw body, and puts the signature in X-Signature-Ed25519
 * (128 hex digits). A request that does not verify, or lacks either header,
 * is a 401 and changes nothing. PING (type 1) is answered with PONG; commands
 * (type 2) and autocomplete (type 4) go to the Discord adapter and are handled
 * exactly as from the gateway (discord_interaction()), answered in the HTTP
 * response (type 4 or 8), or deferred (type 5) and edited in later.
 *
 * Replays: a request whose X-Signature-Timestamp is more than IX_MAX_SKEW_S
 * from now is a 401, and a command runs once per interaction id across every
 * process on the store (discord_interaction()): a captured request replayed
 * later, or to another process, changes nothing.
 *
 * Threading: ix_handle() from any thread (the HTTP server's); the key is
 * read-only after ix_new().
 */
#ifndef COHORT_INTERACTIONS_H
#define COHORT_INTERACTIONS_H

#include <stdbool.h>
#include <stddef.h>

struct adapter;
struct ix;
struct web_route;

/* How far (seconds) X-Signature-Timestamp may be from this machine's clock. */
#define IX_MAX_SKEW_S 300

/* The largest request body taken; a longer one is a 413. */
#define IX_MAX_BODY (64 * 1024)

/*
 * An endpoint for the application whose public key is public_key_hex (64 hex
 * digits) over the Discord adapter discord (borrowed; must outlive it; NULL:
 * only PINGs are answered, for tests). Returns NULL when the key is not an
 * Ed25519 public key.
 */
struct ix *ix_new(const char *public_key_hex, struct adapter *discord);
void ix_free(struct ix *x);

/*
 * True when signature (hex) is the application's Ed25519 signature of
 * timestamp followed by body[0..len). False for a missing (NULL) or
 * malformed header too.
 */
bool ix_verify(const struct ix *x, const char *signature, const char *timestamp,
	       const char *body, size_t len);

/*
 * Where the HTTP answer goes: exactly one of send and drop is called, once,
 * from any thread; send's body (JSON) is borrowed for the call; drop means
 * no answer will come (shutdown) and releases ctx. written, when not NULL,
 * is as in struct dc_responder: send calls it back once the answer is
 * written (ok) or never will be.
 */
struct ix_answer {
	void (*send)(void *ctx, int status, const char *body, void (*written)(void *ud, bool ok),
		     void *ud);
	void (*drop)(void *ctx);
	void *ctx;
};

/*
 * Handles one POST /interactions: signature and timestamp are the headers'
 * values (NULL when missing), body the raw body. Answers through *ans
 * (handed over): 401 (no valid signature, or a timestamp more than
 * IX_MAX_SKEW_S from now), 413 (body over IX_MAX_BODY), 400
 * (not JSON, or an interaction cohort does not take, or one already
 * answered), 200 with PONG, or 200 with the command's answer later.
 */
void ix_handle(struct ix *x, const char *signature, const char *timestamp, const char *body,
	       size_t len, const struct ix_answer *ans);

/*
 * The HTTP server's route POST /interactions over x (borrowed: x must outlive
 * the server), into *out: it reads the two signature headers and answers
 * with ix_handle() (JSON bodies).
 */
void ix_route(struct ix *x, struct web_route *out);

#endif
