#include "config.h"

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/toml.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum key_type { KEY_STRING, KEY_BOOL, KEY_STRINGS, KEY_INT, KEY_INTS };

struct key_spec {
	const char *table;
	const char *key;
	enum key_type type;
	size_t offset;
};

/* One row of the key table: TOML table, key, its type, and where it goes in struct config. */
#define KEY(t, k, kind, field) {t, k, kind, offsetof(struct config, field)}
#define STR(t, k, field) KEY(t, k, KEY_STRING, field)
#define BOOL(t, k, field) KEY(t, k, KEY_BOOL, field)
#define LIST(t, k, field) KEY(t, k, KEY_STRINGS, field)
#define INT(t, k, field) KEY(t, k, KEY_INT, field)
#define INTS(t, k, field) KEY(t, k, KEY_INTS, field)

/* Every key cohort reads; config.example.toml documents the same list. */
static const struct key_spec keys[] = {
	STR("store", "path", store_path),
	STR("store", "synchronous", store_synchronous),
	STR("store", "url", store_url),
	STR("roadmap", "file", roadmap_file),
	STR("roadmap", "dir", roadmap_dir),
	STR("digest", "time", digest_time),
	STR("digest", "timezone", digest_timezone),
	STR("log", "level", log_level),
	STR("log", "format", log_format),
	STR("log", "file", log_file),
	BOOL("discord", "enabled", discord_enabled),
	STR("discord", "token", discord_token),
	STR("discord", "api_url", discord_api_url),
	LIST("discord", "guild_ids", discord_guild_ids),
	STR("discord", "prefix", discord_prefix),
	BOOL("discord", "register_commands", discord_register_commands),
	INT("discord", "shard_count", discord_shard_count),
	INTS("discord", "shards", discord_shards),
	BOOL("discord", "gateway", discord_gateway),
	STR("discord", "public_key", discord_public_key),
	BOOL("matrix", "enabled", matrix_enabled),
	STR("matrix", "homeserver", matrix_homeserver),
	STR("matrix", "user_id", matrix_user_id),
	STR("matrix", "access_token", matrix_access_token),
	STR("matrix", "prefix", matrix_prefix),
	STR("matrix", "password", matrix_password),
	BOOL("matrix", "auto_join", matrix_auto_join),
	LIST("matrix", "invite_from", matrix_invite_from),
	STR("http", "listen", http_listen),
	STR("http", "public_url", http_public_url),
};

static const char *const tables[] = {"store",   "roadmap", "digest", "log",
				     "discord", "matrix",  "http"};

static void strlist_release(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = xstrdup(v);
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->store_path = xstrdup("cohort.db");
	cfg->store_synchronous = xstrdup("normal");
	cfg->store_url = xstrdup("");
	cfg->roadmap_file = xstrdup("");
	cfg->roadmap_dir = xstrdup("");
	cfg->digest_time = xstrdup("18:00");
	cfg->digest_timezone = xstrdup("UTC");
	cfg->log_level = xstrdup("info");
	cfg->log_format = xstrdup("text");
	cfg->log_file = xstrdup("");
	cfg->discord_token = xstrdup("");
	cfg->discord_api_url = xstrdup("https://discord.com/api/v10");
	cfg->discord_prefix = xstrdup("");
	cfg->discord_register_commands = true;
	cfg->discord_gateway = true;
	cfg->discord_public_key = xstrdup("");
	cfg->matrix_homeserver = xstrdup("https://matrix.example.org");
	cfg->matrix_user_id = xstrdup("@cohort:example.org");
	cfg->matrix_access_token = xstrdup("");
	cfg->matrix_password = xstrdup("");
	cfg->matrix_prefix = xstrdup("!");
	cfg->matrix_auto_join = true;
	cfg->http_listen = xstrdup("");
	cfg->http_public_url = xstrdup("");
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		void *slot = (char *)cfg + keys[i].offset;
		if (keys[i].type == KEY_STRING)
			free(*(char **)slot);
		else if (keys[i].type == KEY_STRINGS)
			strlist_release(slot);
		else if (keys[i].type == KEY_INTS)
			free(((struct intlist *)slot)->v);
	}
	free(cfg->source);
	memset(cfg, 0, sizeof(*cfg));
}

/* The closest candidate to word within a small edit distance, or NULL. */
static const char *did_you_mean(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	int bestd = 3;
	for (size_t i = 0; i < n; i++) {
		int d = text_distance(word, cands[i], 2);
		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return best;
}

static int unknown_key(const char *file, int line, const char *table, const char *key, char *err)
{
	const char *cands[ARRAY_SIZE(keys)];
	size_t n = 0;
	struct strbuf valid = STRBUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].table, table) != 0)
			continue;
		cands[n++] = keys[i].key;
		sb_addf(&valid, "%s%s", valid.len ? ", " : "", keys[i].key);
	}
	const char *hint = did_you_mean(key, cands, n);
	if (hint)
		snprintf(err, COHORT_ERR_LEN,
			 "%s:%d: unknown key \"%s\" in [%s] (did you mean \"%s\"?)", file, line,
			 key, table, hint);
	else
		snprintf(err, COHORT_ERR_LEN, "%s:%d: unknown key \"%s\" in [%s] (valid keys: %s)",
			 file, line, key, table, sb_str(&valid));
	sb_release(&valid);
	return COHORT_ERR_CONFIG;
}

static int unknown_table(const char *file, int line, const char *table, char *err)
{
	const char *hint = did_you_mean(table, tables, ARRAY_SIZE(tables));
	if (hint)
		snprintf(err, COHORT_ERR_LEN, "%s:%d: unknown table [%s] (did you mean [%s]?)",
			 file, line, table, hint);
	else
		snprintf(err, COHORT_ERR_LEN,
			 "%s:%d: unknown table [%s] (valid tables: store, roadmap, digest, log, "
			 "discord, matrix)",
			 file, line, table);
	return COHORT_ERR_CONFIG;
}

static const char *type_word(enum key_type t)
{
	switch (t) {
	case KEY_STRING: return "a string (in double quotes)";
	case KEY_BOOL: return "a boolean (true or false)";
	case KEY_STRINGS: return "an array of strings";
	case KEY_INT: return "an integer (without quotes)";
	case KEY_INTS: return "an array of integers (like [0, 2])";
	}
	return "?";
}

static int apply_pair(struct config *cfg, const char *file, const struct toml_table *t,
		      const struct toml_pair *p, int *lines, char *err)
{
	const struct key_spec *spec = NULL;
	size_t idx = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].table, t->name) == 0 && strcmp(keys[i].key, p->key) == 0) {
			spec = &keys[i];
			idx = i;
		}
	}
	if (!spec)
		return unknown_key(file, p->line, t->name, p->key, err);
	const struct toml_value *v = &p->value;
	void *slot = (char *)cfg + spec->offset;
	bool ok = (spec->type == KEY_STRING && v->type == TOML_STRING) ||
		  (spec->type == KEY_BOOL && v->type == TOML_BOOLEAN) ||
		  (spec->type == KEY_STRINGS && v->type == TOML_ARRAY) ||
		  (spec->type == KEY_INT && v->type == TOML_INTEGER) ||
		  (spec->type == KEY_INTS && v->type == TOML_ARRAY);
	/* Shard counts and ids: small non-negative integers, each id once. */
	if (ok && spec->type == KEY_INT && (v->integer < 0 || v->integer > CONFIG_MAX_SHARDS)) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s:%d: \"%s\" in [%s]: %lld is out of range: write 0 (as Discord "
			 "recommends) or a count from 1 to %d",
			 file, p->line, p->key, t->name, v->integer, CONFIG_MAX_SHARDS);
		return COHORT_ERR_CONFIG;
	}
	for (size_t i = 0; ok && spec->type == KEY_INTS && i < v->nitems; i++) {
		const struct toml_value *it = &v->items[i];
		if (it->type != TOML_INTEGER || it->integer < 0 ||
		    it->integer >= CONFIG_MAX_SHARDS) {
			snprintf(err, COHORT_ERR_LEN,
				 "%s:%d: \"%s\" in [%s]: item %zu is not a shard id: write "
				 "non-negative integers without quotes, like [0, 2]",
				 file, p->line, p->key, t->name, i + 1);
			return COHORT_ERR_CONFIG;
		}
		for (size_t k = 0; k < i; k++) {
			if (v->items[k].integer == it->integer) {
				snprintf(err, COHORT_ERR_LEN,
					 "%s:%d: \"%s\" in [%s]: shard %lld is listed twice: "
					 "list each shard id once",
					 file, p->line, p->key, t->name, it->integer);
				return COHORT_ERR_CONFIG;
			}
		}
	}
	for (size_t i = 0; ok && spec->type == KEY_STRINGS && i < v->nitems; i++) {
		const struct toml_value *it = &v->items[i];
		if (it->type == TOML_STRING)
			continue;
		/* [123]: the array is right, its items are not; show the fix. */
		if (it->type == TOML_INTEGER)
			snprintf(err, COHORT_ERR_LEN,
				 "%s:%d: \"%s\" in [%s]: %lld is a number, but these are strings: "
				 "write [\"%lld\"]",
				 file, p->line, p->key, t->name, it->integer, it->integer);
		else
			snprintf(err, COHORT_ERR_LEN,
				 "%s:%d: \"%s\" in [%s]: item %zu is %s, but these are strings: "
				 "write each in double quotes, like [\"%s\"]",
				 file, p->line, p->key, t->name, i + 1, toml_type_name(it->type),
				 strcmp(p->key, "guild_ids") == 0 ? "123456789012345678"
								  : "@ana:example.org");
		return COHORT_ERR_CONFIG;
	}
	if (!ok) {
		snprintf(err, COHORT_ERR_LEN, "%s:%d: \"%s\" in [%s] must be %s, not %s", file,
			 p->line, p->key, t->name, type_word(spec->type), toml_type_name(v->type));
		return COHORT_ERR_CONFIG;
	}
	lines[idx] = p->line;
	switch (spec->type) {
	case KEY_STRING: set_str(slot, v->str); break;
	case KEY_BOOL: *(bool *)slot = v->boolean; break;
	case KEY_INT: *(int *)slot = (int)v->integer; break;
	case KEY_INTS: {
		struct intlist *l = slot;
		free(l->v);
		l->v = xcalloc(v->nitems ? v->nitems : 1, sizeof(int));
		for (size_t i = 0; i < v->nitems; i++)
			l->v[i] = (int)v->items[i].integer;
		l->n = v->nitems;
		break;
	}
	case KEY_STRINGS: {
		struct strlist *l = slot;
		strlist_release(l);
		l->v = xcalloc(v->nitems, sizeof(char *));
		for (size_t i = 0; i < v->nitems; i++)
			l->v[i] = xstrdup(v->items[i].str);
		l->n = v->nitems;
		break;
	}
	}
	return COHORT_OK;
}

static int read_file(const char *path, char **out, size_t *len, char *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, COHORT_ERR_LEN,
			 "%s: cannot open config file: %s (check the path given with -c, or copy "
			 "config.example.toml)",
			 path, strerror(errno));
		return COHORT_ERR_IO;
	}
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		sb_add(&sb, buf, n);
		if (sb.len > TOML_MAX_INPUT)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, COHORT_ERR_LEN, "%s: cannot read config file", path);
		sb_release(&sb);
		return COHORT_ERR_IO;
	}
	*len = sb.len;
	*out = sb_detach(&sb);
	return COHORT_OK;
}

/* Where a validation error points: the key's line when it came from the file. */
static int bad_value(const struct config *cfg, const int *lines, const char *table, const char *key,
		     char *err, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int bad_value(const struct config *cfg, const int *lines, const char *table, const char *key,
		     char *err, const char *fmt, ...)
{
	int line = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].table, table) == 0 && strcmp(keys[i].key, key) == 0)
			line = lines ? lines[i] : 0;
	int n;
	if (line > 0)
		n = snprintf(err, COHORT_ERR_LEN, "%s:%d: %s.%s: ", cfg->source, line, table, key);
	else
		n = snprintf(err, COHORT_ERR_LEN,
			     "%s: %s.%s: ", cfg->source ? cfg->source : "configuration", table,
			     key);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && n < COHORT_ERR_LEN)
		vsnprintf(err + n, COHORT_ERR_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	return COHORT_ERR_CONFIG;
}

static bool is_http_url(const char *s)
{
	return (strncmp(s, "https://", 8) == 0 && s[8]) || (strncmp(s, "http://", 7) == 0 && s[7]);
}

static bool is_snowflake(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * The password in a connection URI, as written there (userinfo
 * "user:password@" or a "password=" parameter): a new string, or NULL.
 */
static char *url_password(const char *url)
{
	const char *q = strstr(url, "password=");
	if (q && (q == url || q[-1] == '?' || q[-1] == '&')) {
		q += 9;
		return xstrndup(q, strcspn(q, "&#"));
	}
	const char *start = strstr(url, "://");
	start = start ? start + 3 : url;
	size_t host = strcspn(start, "/?#");
	const char *at = memchr(start, '@', host);
	const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
	return colon && at > colon + 1 ? xstrndup(colon + 1, (size_t)(at - colon - 1)) : NULL;
}

const char *config_store(const struct config *cfg)
{
	return *cfg->store_url ? cfg->store_url : cfg->store_path;
}

char *config_store_shown(const struct config *cfg)
{
	if (!*cfg->store_url)
		return xstrdup(cfg->store_path);
	char *pw = url_password(cfg->store_url);
	if (!pw)
		return xstrdup(cfg->store_url);
	const char *at = strstr(cfg->store_url, pw);
	char *shown = xasprintf("%.*s[redacted]%s", (int)(at - cfg->store_url), cfg->store_url,
				at + strlen(pw));
	free(pw);
	return shown;
}

static void apply_env(struct config *cfg)
{
	/* The store's URL may carry a password: it can come from the environment, like tokens. */
	const char *url = getenv("COHORT_STORE_URL");
	if (url && *url)
		set_str(&cfg->store_url, url);
	char *pw = url_password(cfg->store_url);
	if (pw)
		log_add_secret(pw);
	free(pw);
	const char *v = getenv("COHORT_DISCORD_TOKEN");
	cfg->discord_token_from_env = v && *v;
	if (v && *v)
		set_str(&cfg->discord_token, v);
	v = getenv("COHORT_MATRIX_TOKEN");
	cfg->matrix_token_from_env = v && *v;
	if (v && *v)
		set_str(&cfg->matrix_access_token, v);
	log_add_secret(cfg->discord_token);
	log_add_secret(cfg->matrix_access_token);
	log_add_secret(cfg->matrix_password);
	/* A container image sets where it listens (its HEALTHCHECK asks there). */
	v = getenv("COHORT_HTTP_LISTEN");
	cfg->http_listen_from_env = v && *v;
	if (v && *v)
		set_str(&cfg->http_listen, v);
}

static int validate(const struct config *cfg, const int *lines, char *err)
{
	int hh, mm;
	enum log_level lvl;
	if (!*cfg->store_path)
		return bad_value(cfg, lines, "store", "path", err,
				 "must not be empty (for example \"cohort.db\")");
	if (*cfg->store_url && strncmp(cfg->store_url, "postgresql://", 13) != 0 &&
	    strncmp(cfg->store_url, "postgres://", 11) != 0)
		return bad_value(cfg, lines, "store", "url", err,
				 "must be a PostgreSQL connection URI starting with postgresql:// "
				 "(for example \"postgresql://cohort@/cohort?host=/run/postgresql\"), "
				 "or be left out to use store.path");
	if (strcmp(cfg->store_synchronous, "normal") != 0 &&
	    strcmp(cfg->store_synchronous, "full") != 0)
		return bad_value(cfg, lines, "store", "synchronous", err,
				 "\"%s\" is not \"normal\" or \"full\"", cfg->store_synchronous);
	struct stat dst;
	int dir_rc = *cfg->roadmap_dir ? stat(cfg->roadmap_dir, &dst) : 0;
	if (*cfg->roadmap_dir && (dir_rc != 0 || !S_ISDIR(dst.st_mode)))
		return bad_value(cfg, lines, "roadmap", "dir", err,
				 "\"%s\" is not a folder (%s): give the folder that holds the *.md "
				 "roadmaps groups may choose, or leave it \"\"",
				 cfg->roadmap_dir, dir_rc ? strerror(errno) : "it is a file");
	if (!parse_hhmm(cfg->digest_time, &hh, &mm))
		return bad_value(cfg, lines, "digest", "time", err,
				 "\"%s\" is not a time of day as \"HH:MM\" (for example \"18:00\")",
				 cfg->digest_time);
	if (!tz_valid(cfg->digest_timezone))
		return bad_value(cfg, lines, "digest", "timezone", err,
				 "\"%s\" is not a known IANA time zone (for example \"UTC\" or "
				 "\"Europe/Berlin\")",
				 cfg->digest_timezone);
	if (!log_level_parse(cfg->log_level, &lvl))
		return bad_value(cfg, lines, "log", "level", err,
				 "\"%s\" is not one of error, warn, info, debug", cfg->log_level);
	if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0)
		return bad_value(cfg, lines, "log", "format", err,
				 "\"%s\" is not \"text\" or \"json\"", cfg->log_format);
	if (!is_http_url(cfg->discord_api_url))
		return bad_value(cfg, lines, "discord", "api_url", err,
				 "\"%s\" is not an http(s):// URL", cfg->discord_api_url);
	for (size_t i = 0; i < cfg->discord_guild_ids.n; i++)
		if (!is_snowflake(cfg->discord_guild_ids.v[i]))
			return bad_value(cfg, lines, "discord", "guild_ids", err,
					 "\"%s\" is not a Discord guild id (digits only; copy it "
					 "with Developer Mode on)",
					 cfg->discord_guild_ids.v[i]);
	if (strlen(cfg->discord_prefix) > 8 || strchr(cfg->discord_prefix, ' '))
		return bad_value(cfg, lines, "discord", "prefix", err,
				 "must be at most 8 characters without spaces");
	for (size_t i = 0; cfg->discord_shard_count && i < cfg->discord_shards.n; i++)
		if (cfg->discord_shards.v[i] >= cfg->discord_shard_count)
			return bad_value(cfg, lines, "discord", "shards", err,
					 "shard %d is not below discord.shard_count = %d (ids run "
					 "from 0 to %d): remove it or raise shard_count",
					 cfg->discord_shards.v[i], cfg->discord_shard_count,
					 cfg->discord_shard_count - 1);
	if (*cfg->discord_public_key && (strlen(cfg->discord_public_key) != 64 ||
					 strspn(cfg->discord_public_key, "0123456789abcdefABCDEF") != 64))
		return bad_value(cfg, lines, "discord", "public_key", err,
				 "\"%.80s\" is not an Ed25519 public key: copy the 64 hex digits of "
				 "Public Key from the Developer Portal (General Information)",
				 cfg->discord_public_key);
	if (cfg->discord_enabled && !cfg->discord_gateway && !*cfg->discord_public_key)
		return bad_value(cfg, lines, "discord", "gateway", err,
				 "false (HTTP interactions only) needs discord.public_key, the "
				 "application's Public Key from the Developer Portal; set it, or "
				 "gateway = true");
	if (cfg->discord_enabled && !cfg->discord_gateway && !*cfg->http_listen)
		return bad_value(cfg, lines, "discord", "gateway", err,
				 "false (HTTP interactions only) needs http.listen, the address "
				 "Discord's requests reach cohort on (for example \"127.0.0.1:8080\" "
				 "behind an HTTPS proxy); set it, or gateway = true");
	if (!is_http_url(cfg->matrix_homeserver))
		return bad_value(cfg, lines, "matrix", "homeserver", err,
				 "\"%s\" is not an http(s):// URL", cfg->matrix_homeserver);
	if (cfg->matrix_user_id[0] != '@' || !strchr(cfg->matrix_user_id, ':'))
		return bad_value(cfg, lines, "matrix", "user_id", err,
				 "\"%s\" is not a Matrix user id like \"@cohort:example.org\"",
				 cfg->matrix_user_id);
	if (!*cfg->matrix_prefix || strlen(cfg->matrix_prefix) > 8 ||
	    strchr(cfg->matrix_prefix, ' '))
		return bad_value(cfg, lines, "matrix", "prefix", err,
				 "must be 1 to 8 characters without spaces (for example \"!\")");
	for (size_t i = 0; i < cfg->matrix_invite_from.n; i++) {
		const char *w = cfg->matrix_invite_from.v[i];
		if (!*w || strchr(w, ' ') || (w[0] == '@' && !strchr(w, ':')))
			return bad_value(cfg, lines, "matrix", "invite_from", err,
					 "\"%s\" is not a user id (\"@ana:example.org\") or a "
					 "server name (\"example.org\")",
					 w);
	}
	if (*cfg->http_listen && !config_http_listen(cfg, NULL, 0, NULL) &&
	    cfg->http_listen_from_env) {
		snprintf(err, COHORT_ERR_LEN,
			 "COHORT_HTTP_LISTEN: \"%s\" is not HOST:PORT with an IPv4 address or "
			 "localhost and a port from 1 to 65535 (for example \"0.0.0.0:8080\"); it "
			 "wins over http.listen",
			 cfg->http_listen);
		return COHORT_ERR_CONFIG;
	}
	if (*cfg->http_listen && !config_http_listen(cfg, NULL, 0, NULL))
		return bad_value(cfg, lines, "http", "listen", err,
				 "\"%s\" is not HOST:PORT with an IPv4 address or localhost and a "
				 "port from 1 to 65535 (for example \"127.0.0.1:8080\"), or \"\" "
				 "for no HTTP server",
				 cfg->http_listen);
	if (*cfg->http_public_url &&
	    (!is_http_url(cfg->http_public_url) || strpbrk(cfg->http_public_url, "?# \t\"<>")))
		return bad_value(cfg, lines, "http", "public_url", err,
				 "\"%s\" is not an http(s):// URL without a query or fragment "
				 "(for example \"https://cohort.example.org\"), or \"\" when "
				 "members reach no page",
				 cfg->http_public_url);
	return COHORT_OK;
}

bool config_http_listen(const struct config *cfg, char *host, size_t host_len, int *port)
{
	const char *s = cfg->http_listen;
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= 64)
		return false;
	char h[64];
	memcpy(h, s, (size_t)(colon - s));
	h[colon - s] = '\0';
	struct in_addr a;
	if (strcmp(h, "localhost") != 0 && inet_pton(AF_INET, h, &a) != 1)
		return false;
	const char *p = colon + 1;
	long v = 0;
	if (!*p || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	if (host)
		snprintf(host, host_len, "%s", strcmp(h, "localhost") == 0 ? "127.0.0.1" : h);
	if (port)
		*port = (int)v;
	return true;
}

int config_require_secrets(const struct config *cfg, bool discord, bool matrix, char *err)
{
	if (discord && cfg->discord_enabled && !*cfg->discord_token)
		return bad_value(cfg, NULL, "discord", "token", err,
				 "Discord is enabled but no bot token is set (set token or "
				 "COHORT_DISCORD_TOKEN)");
	if (matrix && cfg->matrix_enabled && !*cfg->matrix_access_token &&
	    !*cfg->matrix_password)
		return bad_value(
			cfg, NULL, "matrix", "access_token", err,
			"Matrix is enabled but no access token is set (set access_token or "
			"COHORT_MATRIX_TOKEN, or password for a one-time login)");
	return COHORT_OK;
}

void config_warnings(const struct config *cfg, void (*fn)(const char *msg, void *ud), void *ud)
{
	const char *src = cfg->source ? cfg->source : "configuration";
	char msg[COHORT_ERR_LEN];
	if (!cfg->discord_enabled && *cfg->discord_token) {
		snprintf(msg, sizeof(msg),
			 "%s: a Discord bot token is set (%s) but [discord] enabled is false: "
			 "Discord will not run (set enabled = true in [discord] to run it)",
			 src, cfg->discord_token_from_env ? "COHORT_DISCORD_TOKEN" : "discord.token");
		fn(msg, ud);
	}
	if (!cfg->matrix_enabled && (*cfg->matrix_access_token || *cfg->matrix_password)) {
		snprintf(msg, sizeof(msg),
			 "%s: a Matrix %s is set (%s) but [matrix] enabled is false: Matrix will "
			 "not run (set enabled = true in [matrix] to run it)",
			 src, *cfg->matrix_access_token ? "access token" : "password",
			 !*cfg->matrix_access_token ? "matrix.password"
			 : cfg->matrix_token_from_env ? "COHORT_MATRIX_TOKEN"
						      : "matrix.access_token");
		fn(msg, ud);
	}
	if (cfg->discord_enabled && !cfg->discord_gateway && *cfg->discord_prefix) {
		snprintf(msg, sizeof(msg),
			 "%s: discord.prefix is set but discord.gateway is false: text commands "
			 "come only over the gateway, so \"%s\" commands get no answer (remove "
			 "prefix, or set gateway = true)",
			 src, cfg->discord_prefix);
		fn(msg, ud);
	}
	if (cfg->discord_enabled && *cfg->discord_public_key && !*cfg->http_listen) {
		snprintf(msg, sizeof(msg),
			 "%s: discord.public_key is set but http.listen is empty: there is no "
			 "POST /interactions for Discord to reach (set listen in [http])",
			 src);
		fn(msg, ud);
	}
	if (!cfg->discord_enabled && !cfg->matrix_enabled) {
		snprintf(msg, sizeof(msg),
			 "%s: no chat platform is enabled: set enabled = true in [discord] or "
			 "[matrix] (with its token) to run the bot there; 'cohort run' starts only "
			 "the console chat, on a terminal",
			 src);
		fn(msg, ud);
	}
}

int config_finish(struct config *cfg, char *err)
{
	apply_env(cfg);
	return validate(cfg, NULL, err);
}

bool config_key_is_secret(const char *key)
{
	static const char *const words[] = {"token", "password", "secret", "private_key"};
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strstr(key, words[i]))
			return true;
	return strcmp(key, "url") == 0; /* store.url: a connection URI may carry a password */
}

/*
 * After a TOML error in err: when its line sets a secret key and the error is
 * about the value (the value alone does not parse), says so without the value,
 * which the parser may have quoted ("invalid value 'hunter2'").
 */
static void hide_secret(const char *text, size_t len, const char *path, char *err)
{
	size_t plen = strlen(path);
	if (strncmp(err, path, plen) != 0 || err[plen] != ':')
		return;
	char *end;
	long line = strtol(err + plen + 1, &end, 10);
	if (line < 1 || *end != ':')
		return;
	const char *p = text, *stop = text + len;
	for (long l = 1; l < line && p < stop; p++)
		if (*p == '\n')
			l++;
	const char *eol = memchr(p, '\n', (size_t)(stop - p));
	if (!eol)
		eol = stop;
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	bool quoted = p < eol && *p == '"';
	const char *key = p + quoted;
	size_t klen =
		strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
	if (klen == 0 || klen > 64 || key + klen > eol)
		return;
	p = key + klen + (quoted && key[klen] == '"');
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= eol || *p != '=')
		return;
	char name[65];
	memcpy(name, key, klen);
	name[klen] = '\0';
	if (!config_key_is_secret(name))
		return;
	/* The value on its own: if it parses, the error was about something else. */
	struct strbuf one = STRBUF_INIT;
	sb_adds(&one, "x ");
	sb_add(&one, p, (size_t)(eol - p));
	sb_addc(&one, '\n');
	struct toml_doc *doc = NULL;
	char ignored[COHORT_ERR_LEN];
	int rc = toml_parse(one.buf, one.len, "value", &doc, ignored);
	toml_free(doc);
	sb_release(&one);
	if (rc == COHORT_OK)
		return;
	snprintf(err, COHORT_ERR_LEN,
		 "%s:%ld: the value of \"%s\" is not a valid string (it is not shown: it is a "
		 "secret); write it in double quotes, %s = \"...\", with \\\\ for a backslash "
		 "and \\\" for a quote",
		 path, line, name, name);
}

int config_load(struct config *cfg, const char *path, char *err)
{
	char *text = NULL;
	size_t len = 0;
	struct toml_doc *doc = NULL;
	int lines[ARRAY_SIZE(keys)] = {0};
	set_str(&cfg->source, path);
	int rc = read_file(path, &text, &len, err);
	if (rc)
		goto out;
	rc = toml_parse(text, len, path, &doc, err);
	if (rc) {
		hide_secret(text, len, path, err);
		rc = COHORT_ERR_CONFIG;
		goto out;
	}
	for (size_t i = 0; i < doc->ntables && !rc; i++) {
		const struct toml_table *t = &doc->tables[i];
		bool known = false;
		for (size_t k = 0; k < ARRAY_SIZE(tables); k++)
			known |= strcmp(t->name, tables[k]) == 0;
		if (!known && (t->line > 0 || t->npairs > 0)) {
			if (t->line > 0)
				rc = unknown_table(path, t->line, t->name, err);
			else {
				snprintf(err, COHORT_ERR_LEN,
					 "%s:%d: key \"%s\" is outside any table (put it under "
					 "[store], [digest], ... )",
					 path, t->pairs[0].line, t->pairs[0].key);
				rc = COHORT_ERR_CONFIG;
			}
			break;
		}
		for (size_t j = 0; j < t->npairs && !rc; j++)
			rc = apply_pair(cfg, path, t, &t->pairs[j], lines, err);
	}
	if (rc)
		goto out;
	apply_env(cfg);
	rc = validate(cfg, lines, err);
out:
	toml_free(doc);
	free(text);
	return rc;
}

static void describe_secret(struct strbuf *out, const char *name, const char *v)
{
	sb_addf(out, "  %-20s %s\n", name, *v ? "(set, hidden)" : "(not set)");
}

static void describe_list(struct strbuf *out, const char *name, const struct strlist *l,
			  const char *none)
{
	sb_addf(out, "  %-20s ", name);
	if (!l->n)
		sb_addf(out, "%s", none);
	for (size_t i = 0; i < l->n; i++)
		sb_addf(out, "%s\"%s\"", i ? ", " : "", l->v[i]);
	sb_addf(out, "\n");
}

void config_describe(const struct config *cfg, struct strbuf *out)
{
	sb_addf(out, "configuration: %s\n", cfg->source ? cfg->source : "(built-in defaults)");
	char cwd[4096];
	if (*cfg->store_url) {
		char *shown = config_store_shown(cfg);
		sb_addf(out, "  %-20s %s\n", "store.url", shown);
		free(shown);
	} else if (cfg->store_path[0] != '/' && getcwd(cwd, sizeof(cwd)))
		sb_addf(out, "  %-20s %s (%s/%s)\n", "store.path", cfg->store_path, cwd,
			cfg->store_path);
	else
		sb_addf(out, "  %-20s %s\n", "store.path", cfg->store_path);
	sb_addf(out, "  %-20s %s\n", "store.synchronous", cfg->store_synchronous);
	sb_addf(out, "  %-20s %s\n", "roadmap.file",
		*cfg->roadmap_file ? cfg->roadmap_file : "(built-in backend roadmap)");
	if (*cfg->roadmap_dir)
		sb_addf(out, "  %-20s %s\n", "roadmap.dir", cfg->roadmap_dir);
	sb_addf(out, "  %-20s %s %s\n", "digest.time", cfg->digest_time, cfg->digest_timezone);
	sb_addf(out, "  %-20s %s\n", "log.level", cfg->log_level);
	sb_addf(out, "  %-20s %s\n", "log.format", cfg->log_format);
	sb_addf(out, "  %-20s %s\n", "log.file", *cfg->log_file ? cfg->log_file : "(stderr)");
	sb_addf(out, "  %-20s %s\n", "discord.enabled", cfg->discord_enabled ? "true" : "false");
	if (cfg->discord_enabled) {
		describe_secret(out, "discord.token", cfg->discord_token);
		sb_addf(out, "  %-20s %s\n", "discord.api_url", cfg->discord_api_url);
		describe_list(out, "discord.guild_ids", &cfg->discord_guild_ids,
			      "(none: commands are registered globally)");
		sb_addf(out, "  %-20s %s\n", "discord.prefix",
			*cfg->discord_prefix ? cfg->discord_prefix : "(slash commands only)");
		sb_addf(out, "  %-20s %s\n", "discord.register_commands",
			cfg->discord_register_commands ? "true" : "false");
		if (cfg->discord_shard_count)
			sb_addf(out, "  %-20s %d\n", "discord.shard_count",
				cfg->discord_shard_count);
		else
			sb_addf(out, "  %-20s %s\n", "discord.shard_count",
				"0 (as GET /gateway/bot recommends)");
		sb_addf(out, "  %-20s ", "discord.shards");
		if (!cfg->discord_shards.n)
			sb_addf(out, "(all of them)");
		for (size_t i = 0; i < cfg->discord_shards.n; i++)
			sb_addf(out, "%s%d", i ? ", " : "", cfg->discord_shards.v[i]);
		sb_addf(out, "\n");
		sb_addf(out, "  %-20s %s\n", "discord.gateway",
			cfg->discord_gateway ? "true" : "false (HTTP interactions only)");
		sb_addf(out, "  %-20s %s\n", "discord.public_key",
			*cfg->discord_public_key ? cfg->discord_public_key
						 : "(not set: no POST /interactions)");
	}
	sb_addf(out, "  %-20s %s\n", "matrix.enabled", cfg->matrix_enabled ? "true" : "false");
	if (cfg->matrix_enabled) {
		sb_addf(out, "  %-20s %s\n", "matrix.homeserver", cfg->matrix_homeserver);
		sb_addf(out, "  %-20s %s\n", "matrix.user_id", cfg->matrix_user_id);
		describe_secret(out, "matrix.access_token", cfg->matrix_access_token);
		describe_secret(out, "matrix.password", cfg->matrix_password);
		sb_addf(out, "  %-20s %s\n", "matrix.prefix", cfg->matrix_prefix);
		sb_addf(out, "  %-20s %s\n", "matrix.auto_join",
			cfg->matrix_auto_join ? "true" : "false");
		describe_list(out, "matrix.invite_from", &cfg->matrix_invite_from,
			      "(none: invites from anyone)");
	}
	sb_addf(out, "  %-20s %s%s\n", "http.listen",
		*cfg->http_listen ? cfg->http_listen : "(no HTTP server)",
		cfg->http_listen_from_env ? " (from COHORT_HTTP_LISTEN)" : "");
	if (*cfg->http_listen)
		sb_addf(out, "  %-20s %s\n", "http.public_url",
			*cfg->http_public_url ? cfg->http_public_url : "(not set)");
}
