/*
 * cohort's configuration: defaults, the TOML file, and environment overrides
 * for secrets (COHORT_DISCORD_TOKEN, COHORT_MATRIX_TOKEN, COHORT_STORE_URL) and the HTTP
 * listener (COHORT_HTTP_LISTEN), validated as a whole.
 */
#ifndef COHORT_CONFIG_H
#define COHORT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

struct strlist {
	char **v;
	size_t n;
};

/* A list of small non-negative integers (Discord shard ids). */
struct intlist {
	int *v;
	size_t n;
};

/* The largest Discord shard count (and shard id + 1) the config accepts. */
#define CONFIG_MAX_SHARDS 65536

/* Owned by the caller: config_init() fills defaults, config_release() frees. */
struct config {
	char *source; /* the file read, or NULL for built-in defaults */

	char *store_path;
	char *store_synchronous; /* "normal" or "full" */
	char *store_url;         /* "": the SQLite file store_path; else a PostgreSQL URI */

	char *roadmap_file; /* "" for the built-in roadmap */
	char *roadmap_dir;  /* "": no other roadmaps to choose from (bot/rmset.h) */

	char *digest_time;     /* "HH:MM" */
	char *digest_timezone; /* IANA name */

	char *log_level;
	char *log_format; /* "text" or "json" */
	char *log_file;   /* "" for stderr */

	bool discord_enabled;
	char *discord_token;
	char *discord_api_url;
	struct strlist discord_guild_ids;
	char *discord_prefix;
	bool discord_register_commands; /* at start-up, once READY */
	int discord_shard_count;        /* 0: as GET /gateway/bot recommends */
	struct intlist discord_shards;  /* the shard ids this process runs; empty: all */
	bool discord_gateway;           /* false: HTTP interactions only, no gateway connection */
	char *discord_public_key;       /* "": none; else 64 hex digits (Ed25519, for /interactions) */

	bool discord_token_from_env; /* COHORT_DISCORD_TOKEN set it */

	bool matrix_enabled;
	char *matrix_homeserver;
	char *matrix_user_id;
	char *matrix_access_token;
	char *matrix_password; /* a one-time login; the token it gets is kept in the store */
	char *matrix_prefix;
	bool matrix_auto_join;
	struct strlist matrix_invite_from; /* user ids or server names; empty: anyone */
	bool matrix_token_from_env; /* COHORT_MATRIX_TOKEN set it */

	char *http_listen;     /* "HOST:PORT" of the HTTP server; "": none */
	bool http_listen_from_env; /* COHORT_HTTP_LISTEN set it */
	char *http_public_url; /* the base URL members reach (links); "": not set */
};

void config_init(struct config *cfg);
/* What store_open() is given: store.url (COHORT_STORE_URL wins) when set, else store.path. */
const char *config_store(const struct config *cfg);
/* The same for messages: a password in the URL replaced by "[redacted]". A new string. */
char *config_store_shown(const struct config *cfg);
void config_release(struct config *cfg);

/*
 * Reads path into cfg (which holds defaults from config_init), applies the
 * environment overrides and validates everything.
 * Returns COHORT_OK, COHORT_ERR_IO (file missing or unreadable) or
 * COHORT_ERR_CONFIG, with "file:line: what (how to fix)" in err.
 */
int config_load(struct config *cfg, const char *path, char *err);

/* Applies environment overrides and validates a config that was not read from a file. */
int config_finish(struct config *cfg, char *err);

/*
 * True for a key whose value is a secret: token, access_token, password, and
 * any key whose name contains "token", "password", "secret" or "private_key"
 * (name future secret keys so). Errors never echo such a value.
 */
bool config_key_is_secret(const char *key);

/*
 * What starting a platform needs beyond a valid file: with discord (matrix)
 * true, an enabled Discord (Matrix) must have its token (or password). Only
 * the commands that contact a platform call this (run, digest --post,
 * register-commands); the offline ones never need a secret.
 * Returns COHORT_OK or COHORT_ERR_CONFIG with the key and the fix in err.
 */
int config_require_secrets(const struct config *cfg, bool discord, bool matrix, char *err);

/*
 * Calls fn once per setting that is valid but probably not what was meant
 * (a token without enabled = true, no platform enabled), with a message
 * naming the file, the key and the fix. msg is borrowed for the call.
 */
void config_warnings(const struct config *cfg, void (*fn)(const char *msg, void *ud), void *ud);

/*
 * Splits http.listen into host (an IPv4 address; "localhost" becomes
 * 127.0.0.1) and port. False when it is not HOST:PORT with a port from 1 to
 * 65535. host and port may be NULL (validation only).
 */
bool config_http_listen(const struct config *cfg, char *host, size_t host_len, int *port);

/* Writes every setting, secrets masked, for check-config. */
void config_describe(const struct config *cfg, struct strbuf *out);

#endif
