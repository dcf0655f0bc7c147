#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bot/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Unit tests run from the repository root (make test). */
#define FIXTURE(name) "tests/fixtures/config/" name

static int setup(void **state)
{
	(void)state;
	unsetenv("COHORT_DISCORD_TOKEN");
	unsetenv("COHORT_MATRIX_TOKEN");
	unsetenv("COHORT_STORE_URL");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_clear_secrets();
	return 0;
}

static void defaults_are_valid(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	assert_int_equal(config_finish(&cfg, err), COHORT_OK);
	assert_string_equal(cfg.store_path, "cohort.db");
	assert_string_equal(cfg.digest_time, "18:00");
	assert_false(cfg.discord_enabled);
	assert_true(cfg.matrix_auto_join);
	config_release(&cfg);
}

static void the_example_config_loads(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	int rc = config_load(&cfg, "config.example.toml", err);
	if (rc)
		fail_msg("%s", err);
	assert_string_equal(cfg.matrix_prefix, "!");
	assert_string_equal(cfg.discord_api_url, "https://discord.com/api/v10");
	config_release(&cfg);
}

static void a_full_config_is_read(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	int rc = config_load(&cfg, FIXTURE("valid.toml"), err);
	if (rc)
		fail_msg("%s", err);
	assert_string_equal(cfg.store_path, "/var/lib/cohort/cohort.db");
	assert_string_equal(cfg.store_synchronous, "full");
	assert_string_equal(cfg.digest_timezone, "Europe/Berlin");
	assert_true(cfg.discord_enabled);
	assert_string_equal(cfg.discord_token, "file-token");
	assert_int_equal(cfg.discord_guild_ids.n, 1);
	assert_string_equal(cfg.discord_guild_ids.v[0], "123456789012345678");
	struct strbuf sb = STRBUF_INIT;
	config_describe(&cfg, &sb);
	assert_null(strstr(sb_str(&sb), "file-token")); /* secrets are never printed */
	assert_non_null(strstr(sb_str(&sb), "(set, hidden)"));
	sb_release(&sb);
	config_release(&cfg);
}

static void the_environment_wins_for_secrets(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	setenv("COHORT_DISCORD_TOKEN", "env-token", 1);
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURE("valid.toml"), err), COHORT_OK);
	assert_string_equal(cfg.discord_token, "env-token");
	config_release(&cfg);
	/* And it satisfies "enabled needs a token" on its own. */
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURE("discord-without-token.toml"), err), COHORT_OK);
	assert_int_equal(config_require_secrets(&cfg, true, true, err), COHORT_OK);
	config_release(&cfg);
	unsetenv("COHORT_DISCORD_TOKEN");
}

/*
 * A platform enabled without its token loads (the offline commands need no
 * secret); only starting it is refused, with the key and the fix.
 */
static void a_missing_token_is_refused_only_when_a_platform_starts(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN] = "";
	config_init(&cfg);
	int rc = config_load(&cfg, FIXTURE("discord-without-token.toml"), err);
	if (rc)
		fail_msg("%s", err);
	assert_true(cfg.discord_enabled);
	assert_int_equal(config_require_secrets(&cfg, false, true, err), COHORT_OK);
	assert_int_equal(config_require_secrets(&cfg, true, true, err), COHORT_ERR_CONFIG);
	assert_non_null(strstr(err, "discord-without-token.toml: discord.token: Discord is "
				    "enabled but no bot token is set (set token or "
				    "COHORT_DISCORD_TOKEN)"));
	config_release(&cfg);
}

static void collect(const char *msg, void *ud)
{
	sb_addf(ud, "%s\n", msg);
}

/* A token without enabled = true, and no platform at all, are pointed out. */
static void settings_that_do_nothing_are_warned_about(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	struct strbuf sb = STRBUF_INIT;
	setenv("COHORT_DISCORD_TOKEN", "env-token", 1);
	config_init(&cfg);
	assert_int_equal(config_finish(&cfg, err), COHORT_OK);
	config_warnings(&cfg, collect, &sb);
	assert_non_null(strstr(sb_str(&sb), "a Discord bot token is set (COHORT_DISCORD_TOKEN) "
					    "but [discord] enabled is false"));
	assert_non_null(strstr(sb_str(&sb), "no chat platform is enabled"));
	assert_null(strstr(sb_str(&sb), "env-token"));
	config_release(&cfg);
	unsetenv("COHORT_DISCORD_TOKEN");
	sb_release(&sb);
	/* A valid, enabled platform: nothing to say. */
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURE("valid.toml"), err), COHORT_OK);
	config_warnings(&cfg, collect, &sb);
	assert_string_equal(sb_str(&sb), "");
	/* check-config shows the guild ids themselves, not how many there are. */
	config_describe(&cfg, &sb);
	assert_non_null(strstr(sb_str(&sb), "discord.guild_ids    \"123456789012345678\"\n"));
	sb_release(&sb);
	config_release(&cfg);
}

/* Each broken file fails with exactly this message (file:line, what, and the fix). */
static void broken_files_name_the_line_and_the_fix(void **state)
{
	(void)state;
	struct {
		const char *file;
		int rc;
		const char *want;
	} cases[] = {
		{"misspelt-key.toml", COHORT_ERR_CONFIG,
		 "misspelt-key.toml:5: unknown key \"tokn\" in [discord] (did you mean "
		 "\"token\"?)"},
		{"wrong-type.toml", COHORT_ERR_CONFIG,
		 "wrong-type.toml:4: \"enabled\" in [matrix] must be a boolean (true or false), "
		 "not a "
		 "string"},
		{"unterminated-string.toml", COHORT_ERR_CONFIG,
		 "unterminated-string.toml:2: unterminated string (add the closing \" on the same "
		 "line)"},
		{"unknown-table.toml", COHORT_ERR_CONFIG,
		 "unknown-table.toml:1: unknown table [digets] (did you mean [digest]?)"},
		{"bad-timezone.toml", COHORT_ERR_CONFIG,
		 "bad-timezone.toml:2: digest.timezone: \"Mars/Olympus\" is not a known IANA time "
		 "zone (for example \"UTC\" or \"Europe/Berlin\")"},
		{"bad-time.toml", COHORT_ERR_CONFIG,
		 "bad-time.toml:2: digest.time: \"6pm\" is not a time of day as \"HH:MM\" (for "
		 "example \"18:00\")"},
		{"key-outside-table.toml", COHORT_ERR_CONFIG,
		 "key-outside-table.toml:1: key \"level\" is outside any table"},
		{"guild-id-number.toml", COHORT_ERR_CONFIG,
		 "guild-id-number.toml:2: \"guild_ids\" in [discord]: 123 is a number, but these "
		 "are strings: write [\"123\"]"},
		{"invite-from-bool.toml", COHORT_ERR_CONFIG,
		 "invite-from-bool.toml:2: \"invite_from\" in [matrix]: item 1 is a boolean, but "
		 "these are strings: write each in double quotes"},
		{"bad-guild-id.toml", COHORT_ERR_CONFIG,
		 "bad-guild-id.toml:2: discord.guild_ids: \"not-a-number\" is not a Discord guild "
		 "id"},
		{"no-such-file.toml", COHORT_ERR_IO,
		 "no-such-file.toml: cannot open config file: No such file or directory"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char err[COHORT_ERR_LEN] = "";
		char path[256];
		snprintf(path, sizeof(path), FIXTURE("%s"), cases[i].file);
		config_init(&cfg);
		int rc = config_load(&cfg, path, err);
		const char *msg = strstr(err, cases[i].file);
		if (rc != cases[i].rc || !msg ||
		    strncmp(msg, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("%s: rc=%d\n  got:  %s\n  want: %s", cases[i].file, rc, err,
				 cases[i].want);
		config_release(&cfg);
	}
}

/* Loads text as a config file; the error message (static buffer) and the code. */
static const char *load_text(const char *text, int *rc)
{
	static char err[COHORT_ERR_LEN];
	char path[] = "/tmp/cohort-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	struct config cfg;
	config_init(&cfg);
	err[0] = '\0';
	*rc = config_load(&cfg, path, err);
	config_release(&cfg);
	unlink(path);
	const char *name = strstr(err, "cohort-config-");
	return name ? name + strlen("cohort-config-XXXXXX") : err; /* from ":line:" on */
}

static void errors_never_echo_a_secret(void **state)
{
	(void)state;
	int rc;
	const char *err = load_text("[matrix]\npassword = hunter2sekrit\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_null(strstr(err, "hunter2"));
	assert_string_equal(err, ":2: the value of \"password\" is not a valid string (it is "
				 "not shown: it is a secret); write it in double quotes, "
				 "password = \"...\", with \\\\ for a backslash and \\\" for "
				 "a quote");
	err = load_text("[discord]\n  token=abc.def-ghi_jkl\n", &rc);
	assert_null(strstr(err, "abc"));
	assert_non_null(strstr(err, ":2: the value of \"token\""));
	err = load_text("[matrix]\naccess_token = \"syt_abc\\qxyz\"\n", &rc);
	assert_null(strstr(err, "\\q"));
	assert_non_null(strstr(err, "access_token"));
	/* Not a secret: the value helps, so it is shown. */
	err = load_text("[log]\nlevel = verbose\n", &rc);
	assert_non_null(strstr(err, ":2: invalid value 'verbose'"));
	/* An error elsewhere on a secret's line is kept as it is. */
	err = load_text("[matrix]\npassword = \"a\"\npassword = \"b\"\n", &rc);
	assert_non_null(strstr(err, ":3: key \"password\" is set twice"));
	assert_true(config_key_is_secret("token"));
	assert_true(config_key_is_secret("access_token"));
	assert_true(config_key_is_secret("client_secret"));
	assert_false(config_key_is_secret("public_key"));
	assert_false(config_key_is_secret("homeserver"));
}

/* store.url: COHORT_STORE_URL wins; a password in it is never shown; a file path is refused. */
static void the_store_url_is_checked_and_its_password_never_shown(void **state)
{
	(void)state;
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	assert_string_equal(config_store(&cfg), "cohort.db");
	config_release(&cfg);
	const char *url = "postgresql://cohort:s3cret-pw@db.example/cohort";
	setenv("COHORT_STORE_URL", url, 1);
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURE("valid.toml"), err), COHORT_OK);
	assert_string_equal(config_store(&cfg), url);
	struct strbuf sb = STRBUF_INIT;
	config_describe(&cfg, &sb);
	assert_null(strstr(sb_str(&sb), "s3cret-pw"));
	assert_non_null(
		strstr(sb_str(&sb), "store.url            postgresql://cohort:[redacted]@db.example/"));
	sb_release(&sb);
	config_release(&cfg);
	setenv("COHORT_STORE_URL", "postgresql://cohort@/cohort?host=/tmp&password=pw2x", 1);
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURE("valid.toml"), err), COHORT_OK);
	char *shown = config_store_shown(&cfg);
	assert_string_equal(shown, "postgresql://cohort@/cohort?host=/tmp&password=[redacted]");
	free(shown);
	config_release(&cfg);
	unsetenv("COHORT_STORE_URL");
	int rc;
	const char *e = load_text("[store]\nurl = \"data/cohort.db\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(e, ":2: store.url: must be a PostgreSQL connection URI"));
	/* An unparsable value on its line is not echoed: it may hold a password. */
	e = load_text("[store]\nurl = postgresql://u:hunter2@h/db\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_null(strstr(e, "hunter2"));
}

/* discord.shard_count and discord.shards: read, and every mistake named with its line. */
static void shard_keys_are_read_and_checked(void **state)
{
	(void)state;
	char path[] = "/tmp/cohort-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("[discord]\nshard_count = 4\nshards = [1, 3]\n", f);
	fclose(f);
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	assert_int_equal(cfg.discord_shard_count, 0);
	assert_int_equal(cfg.discord_shards.n, 0);
	assert_int_equal(config_load(&cfg, path, err), COHORT_OK);
	assert_int_equal(cfg.discord_shard_count, 4);
	assert_int_equal(cfg.discord_shards.n, 2);
	assert_int_equal(cfg.discord_shards.v[0], 1);
	assert_int_equal(cfg.discord_shards.v[1], 3);
	config_release(&cfg);
	unlink(path);

	int rc;
	const char *e = load_text("[discord]\nshard_count = 2\nshards = [0, 2]\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":3: discord.shards: shard 2 is not below discord.shard_count = 2 "
			       "(ids run from 0 to 1): remove it or raise shard_count");
	e = load_text("[discord]\nshards = [1, 1]\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: \"shards\" in [discord]: shard 1 is listed twice: list each "
			       "shard id once");
	e = load_text("[discord]\nshards = [0, -1]\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: \"shards\" in [discord]: item 2 is not a shard id: write "
			       "non-negative integers without quotes, like [0, 2]");
	e = load_text("[discord]\nshards = [\"1\"]\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(e, ":2: \"shards\" in [discord]: item 1 is not a shard id"));
	e = load_text("[discord]\nshard_count = -4\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: \"shard_count\" in [discord]: -4 is out of range: write 0 (as "
			       "Discord recommends) or a count from 1 to 65536");
	e = load_text("[discord]\nshard_count = \"4\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: \"shard_count\" in [discord] must be an integer (without "
			       "quotes), not a string");
	e = load_text("[discord]\nshards = 1\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(e, "must be an array of integers (like [0, 2])"));
	/* With shard_count 0 (the recommendation) any id is taken; the adapter checks it. */
	load_text("[discord]\nshards = [7]\n", &rc);
	assert_int_equal(rc, COHORT_OK);
}

static void interaction_keys_are_read_and_checked(void **state)
{
	(void)state;
	int rc;
	const char *key = "8f2bd2a5bd4f1d1c6e0cdbdc1d3e2a1f0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3";
	char text[300];
	snprintf(text, sizeof(text), "[discord]\ngateway = false\npublic_key = \"%s\"\n", key);
	char path[] = "/tmp/cohort-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	struct config cfg;
	char err[COHORT_ERR_LEN];
	config_init(&cfg);
	assert_true(cfg.discord_gateway);
	assert_string_equal(cfg.discord_public_key, "");
	assert_int_equal(config_load(&cfg, path, err), COHORT_OK);
	assert_false(cfg.discord_gateway);
	assert_string_equal(cfg.discord_public_key, key);
	config_release(&cfg);
	unlink(path);

	const char *e = load_text("[discord]\npublic_key = \"abc\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: discord.public_key: \"abc\" is not an Ed25519 public key: copy "
			       "the 64 hex digits of Public Key from the Developer Portal (General "
			       "Information)");
	/* 64 characters, one of them not hex. */
	e = load_text("[discord]\npublic_key = "
		      "\"8f2bd2a5bd4f1d1c6e0cdbdc1d3e2a1f0c9b8a7f6e5d4c3b2a1908f7e6d5c4bg\"\n",
		      &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(e, ":2: discord.public_key: "));
	e = load_text("[discord]\nenabled = true\ntoken = \"t\"\n\ngateway = false\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":5: discord.gateway: false (HTTP interactions only) needs "
			       "discord.public_key, the application's Public Key from the Developer "
			       "Portal; set it, or gateway = true");
	e = load_text("[discord]\nenabled = true\ngateway = false\npublic_key = "
		      "\"8f2bd2a5bd4f1d1c6e0cdbdc1d3e2a1f0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3\"\n",
		      &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":3: discord.gateway: false (HTTP interactions only) needs "
			       "http.listen, the address Discord's requests reach cohort on (for "
			       "example \"127.0.0.1:8080\" behind an HTTPS proxy); set it, or "
			       "gateway = true");
	load_text("[discord]\nenabled = true\ngateway = false\npublic_key = "
		  "\"8f2bd2a5bd4f1d1c6e0cdbdc1d3e2a1f0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3\"\n"
		  "[http]\nlisten = \"127.0.0.1:8080\"\n",
		  &rc);
	assert_int_equal(rc, COHORT_OK);
	/* Valid, but not what was meant: said by check-config and at start. */
	struct strbuf sb = STRBUF_INIT;
	config_init(&cfg);
	cfg.discord_enabled = true;
	cfg.discord_gateway = false;
	free(cfg.discord_public_key);
	cfg.discord_public_key = xstrdup(key);
	free(cfg.discord_prefix);
	cfg.discord_prefix = xstrdup("!");
	config_warnings(&cfg, collect, &sb);
	assert_non_null(strstr(sb_str(&sb), "discord.public_key is set but http.listen is empty: "
					    "there is no POST /interactions for Discord to reach"));
	assert_non_null(strstr(sb_str(&sb), "discord.prefix is set but discord.gateway is false"));
	sb_release(&sb);
	config_release(&cfg);
	e = load_text("[discord]\ngateway = \"no\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(e, ":2: \"gateway\" in [discord] must be a boolean (true or false), "
			       "not a string");
}

/* roadmap.dir must name a folder: the error points at its line. */
static void the_roadmap_dir_must_be_a_folder(void **state)
{
	(void)state;
	int rc;
	const char *msg = load_text("[roadmap]\ndir = \"/nonexistent/roadmaps\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_string_equal(msg, ":2: roadmap.dir: \"/nonexistent/roadmaps\" is not a folder (No such "
				 "file or directory): give the folder that holds the *.md roadmaps "
				 "groups may choose, or leave it \"\"");
	msg = load_text("[roadmap]\ndir = \"/etc/hostname\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(msg, "is not a folder (it is a file)"));
	msg = load_text("[roadmap]\ndir = \"/tmp\"\n", &rc);
	assert_int_equal(rc, COHORT_OK);
	msg = load_text("[roadmap]\ndirs = \"/tmp\"\n", &rc);
	assert_int_equal(rc, COHORT_ERR_CONFIG);
	assert_non_null(strstr(msg, "did you mean \"dir\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(defaults_are_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(the_example_config_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(a_full_config_is_read, setup, teardown),
		cmocka_unit_test_setup_teardown(the_environment_wins_for_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_missing_token_is_refused_only_when_a_platform_starts, setup, teardown),
		cmocka_unit_test_setup_teardown(settings_that_do_nothing_are_warned_about, setup,
						teardown),
		cmocka_unit_test_setup_teardown(broken_files_name_the_line_and_the_fix, setup,
						teardown),
		cmocka_unit_test_setup_teardown(errors_never_echo_a_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(the_store_url_is_checked_and_its_password_never_shown,
						setup, teardown),
		cmocka_unit_test_setup_teardown(shard_keys_are_read_and_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(interaction_keys_are_read_and_checked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(the_roadmap_dir_must_be_a_folder, setup, teardown),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
