/* The cohort command line: wires the config, roadmap, store and adapters together. */
#include "adapters/console.h"
#include "adapters/discord/discord.h"
#include "adapters/matrix/matrix.h"
#include "bot/adapter.h"
#include "bot/dispatch.h"
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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COHORT_VERSION "0.1.0"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static volatile sig_atomic_t stop_requested;
static struct dispatch *signal_dispatch; /* woken by a signal when set */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	if (signal_dispatch)
		dispatch_wake(signal_dispatch);
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
	"  register-commands [-c FILE] [--guild ID]\n"
	"                                    register the Discord slash commands (globally,\n"
	"                                    or in one guild at once)\n"
	"  roadmap [-c FILE]                 print the roadmap with topic ids and aliases\n"
	"  digest [-c FILE] --group ID [--post]\n"
	"                                    print today's digest for a group (e.g.\n"
	"                                    console:local); --post sends it to its channel\n"
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
	const char *guild;
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
		else if (strcmp(a, "--guild") == 0)
			slot = &cli->guild;
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

/* The console: digests of its group are shown in the chat. */
struct console_runner {
	struct bot *bot;
	struct console *console;
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
	struct console_runner *run = ud;
	(void)group_id;
	(void)channel_id;
	(void)idem_key; /* a terminal cannot de-duplicate */
	return console_post(run->console, r);
}

/* Runs due digests; returns how long the console may wait before the next tick. */
static int64_t tick(void *ud)
{
	struct console_runner *run = ud;
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
	struct console_runner run = {app->bot, NULL, {serves_console, post_console, NULL}};
	run.sink.ud = &run;
	struct console_opts o = {as, group, STDIN_FILENO, stdout, &stop_requested, tick, &run};
	run.console = console_new(app->bot, &o);
	install_signals();
	rc = console_run(run.console);
	console_free(run.console);
	if (rc) {
		log_error("main", "console stopped: %s", cohort_strerror(rc));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* The platforms: each group goes to the adapter named by its id's prefix ("discord:"). */
struct platforms {
	struct adapter v[2];
	size_t n;
	struct digest_sink sink;
};

static const struct adapter *adapter_for(const struct platforms *p, const char *group_id)
{
	for (size_t i = 0; i < p->n; i++) {
		size_t len = strlen(p->v[i].ops->name);
		if (strncmp(group_id, p->v[i].ops->name, len) == 0 && group_id[len] == ':')
			return &p->v[i];
	}
	return NULL;
}

static bool serves_platform(void *ud, const char *group_id)
{
	return adapter_for(ud, group_id) != NULL;
}

static int post_platform(void *ud, const char *group_id, const char *channel_id,
			 const struct reply *r, const char *idem_key)
{
	const struct adapter *a = adapter_for(ud, group_id);
	return a->ops->post(a->self, group_id, channel_id, r, idem_key);
}

/* Makes the adapters of every enabled platform (not started). */
static int platforms_init(struct platforms *p, struct app *app, struct dispatch *d)
{
	memset(p, 0, sizeof(*p));
	p->sink = (struct digest_sink){serves_platform, post_platform, p};
	if (app->cfg.discord_enabled) {
		if (discord_new(&app->cfg, app->bot, d, &p->v[p->n]))
			return EXIT_RUNTIME;
		p->n++;
	}
	if (app->cfg.matrix_enabled) {
		if (matrix_new(&app->cfg, app->bot, d, &p->v[p->n]))
			return EXIT_RUNTIME;
		p->n++;
	}
	return EXIT_OK;
}

static void platforms_release(struct platforms *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->v[i].ops->free(p->v[i].self);
	p->n = 0;
}

/* An adapter's fatal error as an exit code: a rejected token is a configuration error. */
static int exit_code_of(int rc)
{
	if (!rc)
		return EXIT_OK;
	return rc == COHORT_ERR_AUTH || rc == COHORT_ERR_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
}

static int cmd_run(struct app *app, const struct cli *cli)
{
	if (!app->cfg.discord_enabled && !app->cfg.matrix_enabled) {
		log_info("main", "no chat platform is enabled (%s); starting the console",
			 app->cfg.source ? app->cfg.source : "built-in defaults");
		return console_session(app, cli);
	}
	struct dispatch *d = dispatch_new(app->bot);
	if (!d)
		return EXIT_RUNTIME;
	struct platforms p;
	int rc = platforms_init(&p, app, d);
	size_t started = 0;
	for (; !rc && started < p.n; started++)
		if (p.v[started].ops->start(p.v[started].self))
			rc = EXIT_RUNTIME;
	if (!rc) {
		signal_dispatch = d;
		install_signals();
		log_info("main", "cohort %s running", COHORT_VERSION);
		rc = exit_code_of(dispatch_run(d, &p.sink, &stop_requested));
		if (stop_requested)
			log_info("main", "stopping (signal)");
	}
	/* Stop taking commands, hand the replies in flight over, then send them. */
	for (size_t i = 0; i < started; i++)
		p.v[i].ops->stop(p.v[i].self);
	for (size_t i = 0; i < started; i++) {
		int arc = p.v[i].ops->join(p.v[i].self);
		if (arc && !rc)
			rc = exit_code_of(arc);
	}
	dispatch_drain(d);
	platforms_release(&p);
	dispatch_drain(d); /* the outcomes the adapters reported while finishing */
	signal_dispatch = NULL;
	dispatch_free(d);
	return rc;
}

static int cmd_register(struct app *app, const struct cli *cli)
{
	if (!*app->cfg.discord_token) {
		fprintf(stderr,
			"cohort: %s: no Discord bot token: set [discord] token or "
			"COHORT_DISCORD_TOKEN\n",
			app->cfg.source ? app->cfg.source : "configuration");
		return EXIT_USAGE;
	}
	if (cli->guild && (strspn(cli->guild, "0123456789") != strlen(cli->guild) || !*cli->guild))
		return usage_error("--guild '%s': a guild id is digits only (Developer Mode > "
				   "Copy Server ID)",
				   cli->guild);
	int rc = COHORT_OK;
	if (cli->guild) {
		rc = discord_register_commands(&app->cfg, cli->guild);
	} else if (app->cfg.discord_guild_ids.n) {
		for (size_t i = 0; !rc && i < app->cfg.discord_guild_ids.n; i++)
			rc = discord_register_commands(&app->cfg, app->cfg.discord_guild_ids.v[i]);
	} else {
		rc = discord_register_commands(&app->cfg, NULL);
	}
	return exit_code_of(rc);
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
		printf("would run: %s%s%s\n", app->cfg.discord_enabled ? "discord" : "",
		       app->cfg.discord_enabled && app->cfg.matrix_enabled ? " and " : "",
		       app->cfg.matrix_enabled ? "matrix" : "");
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
	/* Posting records it as today's digest: the scheduler will not post it again. */
	struct digest_sink sink = {serves_stdout, post_stdout, NULL};
	struct dispatch *d = NULL;
	struct platforms p = {0};
	int rc = COHORT_OK;
	if (!serves_stdout(NULL, cli->group)) {
		d = dispatch_new(app->bot);
		rc = d ? platforms_init(&p, app, d) : EXIT_RUNTIME;
		if (!rc && !adapter_for(&p, cli->group))
			rc = usage_error(
				"cannot post to '%s': no enabled platform serves that group "
				"(enable its platform in the configuration)",
				cli->group);
		sink = p.sink;
	}
	char *channel = NULL;
	if (!rc) {
		struct store_settings st;
		rc = store_get_settings(app->store, cli->group, &st) ? EXIT_RUNTIME : EXIT_OK;
		if (!rc) {
			channel = st.digest_channel                 ? xstrdup(st.digest_channel)
				  : serves_stdout(NULL, cli->group) ? xstrdup("console")
								    : NULL;
			store_settings_release(&st);
		}
		if (!rc && !channel)
			rc = usage_error(
				"%s has no digest channel: an admin says \"/digest channel "
				"here\" in it first",
				cli->group);
	}
	if (!rc) {
		int prc = scheduler_post_now(app->bot, &sink, cli->group, channel);
		/* A platform answers later: wait for it (the HTTP client gives up by itself). */
		while (prc == COHORT_OK && scheduler_inflight(app->bot)) {
			dispatch_drain(d);
			if (scheduler_inflight(app->bot))
				poll(NULL, 0, 20);
		}
		if (prc == COHORT_OK && d)
			prc = scheduler_last_result(app->bot);
		if (prc == COHORT_ERR_DUPLICATE)
			fprintf(stderr,
				"cohort: today's digest of %s was posted already; not posting it "
				"twice (run without --post to see it)\n",
				cli->group);
		else if (prc)
			fprintf(stderr, "cohort: posting the digest of %s failed: %s\n", cli->group,
				cohort_strerror(prc));
		rc = prc == COHORT_OK || prc == COHORT_ERR_DUPLICATE ? EXIT_OK : EXIT_RUNTIME;
	}
	free(channel);
	platforms_release(&p);
	if (d)
		dispatch_drain(d);
	dispatch_free(d);
	return rc;
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
	} known[] = {{"run", true},
		     {"console", true},
		     {"check-config", false},
		     {"roadmap", false},
		     {"digest", true},
		     {"export", true},
		     {"register-commands", false}};
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
		else if (strcmp(cli.command, "register-commands") == 0)
			rc = cmd_register(&app, &cli);
		else
			rc = cmd_export(&app, &cli);
	}
	app_release(&app);
	return rc;
}
