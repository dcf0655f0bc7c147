/* The cohort command line: wires the config, roadmap, store and adapters together. */
#include "adapters/console.h"
#include "bot/bot.h"
#include "bot/config.h"
#include "bot/err.h"
#include "bot/export.h"
#include "bot/log.h"
#include "bot/roadmap.h"
#include "bot/scheduler.h"
#include "bot/clock.h"
#include "bot/text.h"
#include "bot/util.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COHORT_VERSION "0.1.0"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static const char usage_text[] =
	"usage: cohort COMMAND [options]\n"
	"\n"
	"commands:\n"
	"  run [-c FILE]                     run every enabled platform (the console when none "
	"is)\n"
	"  console [-c FILE] [--as NAME] [--group NAME]\n"
	"                                    a local chat on stdin/stdout; \"@bob /done Redis\"\n"
	"                                    speaks as bob\n"
	"  check-config [-c FILE]            validate the configuration and the roadmap\n"
	"  roadmap [-c FILE]                 print the roadmap with topic ids and aliases\n"
	"  digest [-c FILE] --group ID       print today's digest for a group (e.g. "
	"console:local)\n"
	"  export [-c FILE] [--group ID] --format csv|json\n"
	"                                    write every progress record to stdout\n"
	"  help                              this text\n"
	"  version                           the version\n"
	"\n"
	"The configuration is FILE, else $COHORT_CONFIG, else ./cohort.toml when it exists,\n"
	"else the built-in defaults. Exit codes: 0 success, 1 runtime failure, 2 usage or\n"
	"configuration error.\n";

struct cli {
	const char *command;
	const char *config;
	const char *as;
	const char *group;
	const char *format;
	bool post;
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "cohort: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nrun 'cohort help' for usage\n");
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	if (argc < 2)
		return usage_error("%s", "missing command (run, console, check-config, roadmap, "
					 "digest, export)");
	cli->command = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
			slot = &cli->config;
		else if (strcmp(a, "--as") == 0)
			slot = &cli->as;
		else if (strcmp(a, "--group") == 0)
			slot = &cli->group;
		else if (strcmp(a, "--format") == 0)
			slot = &cli->format;
		else if (strcmp(a, "--post") == 0)
			cli->post = true;
		else
			return usage_error("unknown option '%s'", a);
		if (slot) {
			if (i + 1 >= argc)
				return usage_error("option '%s' needs a value", a);
			*slot = argv[++i];
		}
	}
	return EXIT_OK;
}

/* Everything a command needs, set up from the configuration. */
struct app {
	struct config cfg;
	struct roadmap *rm;
	struct store *store;
	struct bot *bot;
};

static int load_config(const struct cli *cli, struct config *cfg)
{
	char err[COHORT_ERR_LEN];
	const char *path = cli->config;
	if (!path)
		path = getenv("COHORT_CONFIG");
	if (path && !*path)
		path = NULL;
	if (!path && access("cohort.toml", F_OK) == 0)
		path = "cohort.toml";
	config_init(cfg);
	int rc = path ? config_load(cfg, path, err) : config_finish(cfg, err);
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_USAGE;
	}
	enum log_level lvl;
	if (log_level_parse(cfg->log_level, &lvl))
		log_set_level(lvl);
	return EXIT_OK;
}

static int load_roadmap(const struct config *cfg, struct roadmap **rm)
{
	char err[COHORT_ERR_LEN];
	int rc = *cfg->roadmap_file ? roadmap_load_file(cfg->roadmap_file, rm, err)
				    : roadmap_load_default(rm, err);
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static void app_release(struct app *app)
{
	bot_free(app->bot);
	store_free(app->store);
	roadmap_free(app->rm);
	config_release(&app->cfg);
	log_clear_secrets();
}

/* Loads config and roadmap, and (with_store) opens the store and makes the bot. */
static int app_init(struct app *app, const struct cli *cli, bool with_store)
{
	memset(app, 0, sizeof(*app));
	int rc = load_config(cli, &app->cfg);
	if (!rc)
		rc = load_roadmap(&app->cfg, &app->rm);
	if (rc || !with_store)
		return rc;
	char err[COHORT_ERR_LEN];
	if (store_open(app->cfg.store_path, strcmp(app->cfg.store_synchronous, "full") == 0,
		       &app->store, err)) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_RUNTIME;
	}
	struct bot_opts o = {app->store, app->rm, app->cfg.digest_time, app->cfg.digest_timezone,
			     NULL,       NULL};
	if (bot_new(&o, &app->bot)) {
		fprintf(stderr, "cohort: %s: setting up the store failed (see the log above)\n",
			app->cfg.store_path);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* Digests go to the adapter serving the group's platform: the console, for now. */
struct runner {
	struct bot *bot;
	struct adapter console;
	struct digest_sink sink;
};

static bool serves_console(void *ud, const char *group_id)
{
	(void)ud;
	return strncmp(group_id, "console:", 8) == 0;
}

static int post_console(void *ud, const char *group_id, const char *channel_id,
			const struct reply *r, const char *idem_key)
{
	struct runner *run = ud;
	(void)group_id;
	(void)idem_key; /* a terminal cannot de-duplicate */
	return run->console.ops->post(run->console.self, channel_id, r);
}

/* Runs due digests; returns how long the adapter may wait before the next tick. */
static int64_t tick(void *ud)
{
	struct runner *run = ud;
	int64_t next;
	if (scheduler_run(run->bot, &run->sink, &next))
		return 60000;
	if (next == INT64_MAX)
		return -1;
	return clock_real_wait_ms(next - bot_now(run->bot));
}

static int console_session(struct app *app, const struct cli *cli)
{
	const char *user = getenv("USER");
	const char *as = cli->as ? cli->as : (user && *user ? user : "me");
	const char *group = cli->group ? cli->group : "local";
	if (strlen(as) > 32 || strcspn(as, " \t@") != strlen(as) || !*as)
		return usage_error("--as '%s': a name is 1 to 32 characters without spaces or @",
				   as);
	if (strlen(group) > 64 || !*group || strcspn(group, " \t") != strlen(group))
		return usage_error(
			"--group '%s': a group name is 1 to 64 characters without spaces", group);
	/* The console shows its group's digest unless an admin turned it off. */
	char *group_id = xasprintf("console:%s", group);
	int rc = store_default_digest_channel(app->store, group_id, "console");
	free(group_id);
	if (rc)
		return EXIT_RUNTIME;
	struct runner run = {app->bot, {NULL, NULL}, {serves_console, post_console, NULL}};
	run.sink.ud = &run;
	struct console_opts o = {as, group, STDIN_FILENO, stdout, &stop_requested, tick, &run};
	run.console = console_new(app->bot, &o);
	install_signals();
	rc = run.console.ops->run(run.console.self);
	run.console.ops->free(run.console.self);
	if (rc) {
		log_error("main", "console stopped: %s", cohort_strerror(rc));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

static int cmd_run(struct app *app, const struct cli *cli)
{
	const char *missing = app->cfg.discord_enabled  ? "discord"
			      : app->cfg.matrix_enabled ? "matrix"
							: NULL;
	if (missing) {
		fprintf(stderr,
			"cohort: %s: [%s] enabled = true, but this build of cohort has no %s "
			"adapter yet; set enabled = false to use the console\n",
			app->cfg.source ? app->cfg.source : "configuration", missing, missing);
		return EXIT_USAGE;
	}
	log_info("main", "no chat platform is enabled (%s); starting the console",
		 app->cfg.source ? app->cfg.source : "built-in defaults");
	return console_session(app, cli);
}

static void print_roadmap(const struct roadmap *rm)
{
	size_t sections = 0;
	for (size_t i = 0; i < roadmap_node_count(rm); i++) {
		const struct rm_node *nd = roadmap_node(rm, i);
		printf("%*s%s", nd->depth * 2, "", nd->name);
		if (nd->topic >= 0) {
			const struct rm_topic *t = roadmap_topic(rm, (size_t)nd->topic);
			printf("  [%s]", t->id);
			for (size_t a = 0; a < t->naliases; a++)
				printf("%s%s", a ? ", " : "  aliases: ", t->aliases[a]);
			if (t->node != i)
				printf("  (same topic as above)");
		} else {
			sections++;
		}
		putchar('\n');
	}
	printf("\n%zu topics in %zu sections, from %s\n", roadmap_topic_count(rm), sections,
	       roadmap_source(rm));
}

static int cmd_check_config(struct app *app)
{
	struct strbuf sb = STRBUF_INIT;
	config_describe(&app->cfg, &sb);
	fputs(sb_str(&sb), stdout);
	sb_release(&sb);
	printf("roadmap: %zu topics from %s\n", roadmap_topic_count(app->rm),
	       roadmap_source(app->rm));
	if (app->cfg.discord_enabled || app->cfg.matrix_enabled)
		printf("would run: %s%s%s\n", app->cfg.discord_enabled ? "discord " : "",
		       app->cfg.matrix_enabled ? "matrix " : "", "(not available in this build)");
	else
		printf("would run: the console (no chat platform is enabled)\n");
	printf("configuration OK\n");
	return EXIT_OK;
}

static bool serves_stdout(void *ud, const char *group_id)
{
	(void)ud;
	return strncmp(group_id, "console:", 8) == 0;
}

static int post_stdout(void *ud, const char *group_id, const char *channel_id,
		       const struct reply *r, const char *idem_key)
{
	(void)ud;
	(void)group_id;
	(void)channel_id;
	(void)idem_key;
	char *text = reply_render_text(r);
	fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? COHORT_OK : COHORT_ERR_IO;
}

static int cmd_digest(struct app *app, const struct cli *cli)
{
	if (!cli->group)
		return usage_error("%s", "digest needs --group ID (for example console:local)");
	if (!cli->post) {
		struct reply r;
		reply_init(&r);
		int rc = bot_digest(app->bot, cli->group, &r);
		if (!rc) {
			char *text = reply_render_text(&r);
			fputs(text, stdout);
			free(text);
		}
		reply_release(&r);
		return rc ? EXIT_RUNTIME : EXIT_OK;
	}
	if (!serves_stdout(NULL, cli->group))
		return usage_error("cannot post to '%s': this build has no adapter for that "
				   "platform",
				   cli->group);
	/* Posting records it as today's digest: the scheduler will not post it again. */
	struct digest_sink sink = {serves_stdout, post_stdout, NULL};
	int rc = scheduler_post_now(app->bot, &sink, cli->group, "console");
	if (rc == COHORT_ERR_DUPLICATE) {
		fprintf(stderr,
			"cohort: today's digest of %s was posted already; not posting it "
			"twice (run without --post to see it)\n",
			cli->group);
		return EXIT_OK;
	}
	return rc ? EXIT_RUNTIME : EXIT_OK;
}

static int cmd_export(struct app *app, const struct cli *cli)
{
	enum export_format fmt;
	if (!cli->format)
		return usage_error("%s", "export needs --format csv or --format json");
	if (strcmp(cli->format, "csv") == 0)
		fmt = EXPORT_CSV;
	else if (strcmp(cli->format, "json") == 0)
		fmt = EXPORT_JSON;
	else
		return usage_error("--format '%s': use csv or json", cli->format);
	int rc = export_write(app->store, app->rm, cli->group, fmt, stdout);
	if (rc) {
		fprintf(stderr, "cohort: export failed: %s\n", cohort_strerror(rc));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cli cli;
	if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (argc >= 2 && (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("cohort %s\n", COHORT_VERSION);
		return EXIT_OK;
	}
	int rc = parse_args(argc, argv, &cli);
	if (rc)
		return rc;
	static const struct {
		const char *name;
		bool store;
	} known[] = {{"run", true},      {"console", true}, {"check-config", false},
		     {"roadmap", false}, {"digest", true},  {"export", true}};
	bool with_store = false, found = false;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		if (strcmp(cli.command, known[i].name) == 0) {
			found = true;
			with_store = known[i].store;
		}
	}
	if (!found)
		return usage_error("unknown command '%s'", cli.command);

	struct app app;
	rc = app_init(&app, &cli, with_store);
	if (!rc) {
		if (strcmp(cli.command, "run") == 0)
			rc = cmd_run(&app, &cli);
		else if (strcmp(cli.command, "console") == 0)
			rc = console_session(&app, &cli);
		else if (strcmp(cli.command, "check-config") == 0)
			rc = cmd_check_config(&app);
		else if (strcmp(cli.command, "roadmap") == 0)
			print_roadmap(app.rm);
		else if (strcmp(cli.command, "digest") == 0)
			rc = cmd_digest(&app, &cli);
		else
			rc = cmd_export(&app, &cli);
	}
	app_release(&app);
	return rc;
}
