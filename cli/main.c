/* The cohort command line: wires the config, roadmap, store and adapters together. */
#include "adapters/console.h"
#include "adapters/discord/discord.h"
#include "adapters/discord/gateway.h"
#include "adapters/discord/interactions.h"
#include "adapters/matrix/matrix.h"
#include "adapters/web/pages.h"
#include "adapters/web/web.h"
#include "bot/adapter.h"
#include "bot/bot.h"
#include "bot/config.h"
#include "bot/dispatch.h"
#include "bot/export.h"
#include "bot/rmset.h"
#include "bot/roadmap.h"
#include "bot/scheduler.h"
#include "cli/keeper.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/text.h"
#include "lib/util.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COHORT_VERSION "0.2.0"
/* How often a running cohort writes its status for `cohort status`, and when it is stale. */
#define STATUS_EVERY_MS 10000
#define STATUS_STALE_MS 45000
/*
 * Each process writes its status under STATUS_PREFIX + its holder id
 * (store_lease_holder()), so processes on one database never overwrite each
 * other's. `cohort status` skips, and a starting process removes, an entry not
 * written for STATUS_FORGET_MS (a process stopped or gone that long ago).
 */
#define STATUS_PREFIX "cohort.status."
#define STATUS_FORGET_MS (60 * 60 * 1000)

/* EXIT_CLAIMED: another process runs a Discord shard this one was given (see README). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CLAIMED = 3 };
/*
 * Claims in the database (DESIGN 10), in the process clock's time: a Discord
 * shard's and the Matrix sync's, renewed every third of it while they run.
 */
#define SHARD_CLAIM_MS 30000
#define SYNC_CLAIM_MS 30000

static volatile sig_atomic_t stop_requested, reload_requested;
static struct dispatch *signal_dispatch; /* woken by a signal when set */
/* A byte is written here on every signal, for a loop that polls it (the console). */
static int signal_pipe[2] = {-1, -1};

/*
 * SIGINT/SIGTERM: stop (finish what is in flight); a second one: exit at once.
 * SIGHUP: reopen the log file and reload the roadmap. Only flags and a wake-up.
 */
static void on_signal(int sig)
{
	if (sig == SIGHUP) {
		reload_requested = 1;
	} else if (stop_requested) {
		static const char msg[] = "cohort: second signal: exiting now\n";
		ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)n;
		_exit(EXIT_RUNTIME);
	} else {
		stop_requested = 1;
	}
	if (signal_pipe[1] >= 0) {
		ssize_t n = write(signal_pipe[1], "x", 1); /* a full pipe is awake already */
		(void)n;
	}
	if (signal_dispatch)
		dispatch_wake(signal_dispatch);
}

static void install_signals(void)
{
	if (signal_pipe[0] < 0)
		(void)wake_pipe(signal_pipe); /* without one, the console wakes on its timer */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

struct cli {
	const char *command;
	const char *config;
	const char *as;
	const char *group;
	const char *format;
	const char *guild;
	const char *path; /* the one positional argument (backup, import) */
	const char *to;   /* migrate --to URL */
	bool post, check, help, force, clear;
};

struct app;

/* What a subcommand needs of the store: nothing, one that exists, or one made if missing. */
enum store_need { NO_STORE, STORE_EXISTING, STORE_CREATE };

/* Every subcommand: what it needs, how it is used, and its --help. */
struct subcommand {
	const char *name;
	enum store_need store;
	int (*run)(struct app *app, const struct cli *cli);
	const char *synopsis;
	const char *help;
};

static const struct subcommand *find_subcommand(const char *name);
static void print_usage(FILE *out);

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
		return usage_error("%s", "missing command (run 'cohort help' for the list)");
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
		else if (strcmp(a, "--to") == 0)
			slot = &cli->to;
		else if (strcmp(a, "--post") == 0)
			cli->post = true;
		else if (strcmp(a, "--check") == 0)
			cli->check = true;
		else if (strcmp(a, "--force") == 0)
			cli->force = true;
		else if (strcmp(a, "--clear") == 0)
			cli->clear = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			cli->help = true;
		else if (a[0] == '-' && a[1])
			return usage_error("unknown option '%s'", a);
		else if (!cli->path)
			cli->path = a;
		else
			return usage_error("unexpected argument '%s'", a);
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
	struct rmset *set;       /* the roadmaps groups may choose */
	const struct roadmap *rm; /* the default one, in set */
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
	log_set_format(strcmp(cfg->log_format, "json") == 0 ? LOG_JSON : LOG_TEXT);
	if (log_open(cfg->log_file, err)) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The roadmaps (roadmap.file, roadmap.dir): one that does not parse refuses the start. */
static int load_roadmap(const struct config *cfg, struct rmset **set, const struct roadmap **rm)
{
	char err[COHORT_ERR_LEN];
	int rc = rmset_load(cfg->roadmap_file, cfg->roadmap_dir, set, err);
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_USAGE;
	}
	*rm = rmset_at(*set, rmset_default(*set));
	return EXIT_OK;
}

static void app_release(struct app *app)
{
	bot_free(app->bot);
	store_free(app->store);
	rmset_free(app->set);
	config_release(&app->cfg);
	log_clear_secrets();
	log_close();
}

/*
 * SIGHUP, on the dispatcher's thread: reopen the log, reload the roadmap. A
 * roadmap that no longer parses is logged and the old one kept.
 */
static void reload(struct app *app)
{
	reload_requested = 0;
	log_reopen();
	char err[COHORT_ERR_LEN];
	struct rmset *set;
	int rc = rmset_load(app->cfg.roadmap_file, app->cfg.roadmap_dir, &set, err);
	if (rc) {
		log_error("main", "reload: %s; keeping the roadmaps loaded before", err);
		return;
	}
	bot_set_roadmaps(app->bot, set);
	rmset_free(app->set);
	app->set = set;
	app->rm = rmset_at(set, rmset_default(set));
	log_info("main", "reloaded: %zu topics from %s (the default of %zu %s); log reopened",
		 roadmap_topic_count(app->rm), roadmap_source(app->rm), rmset_count(set),
		 rmset_count(set) == 1 ? "roadmap" : "roadmaps");
}

static void log_warning(const char *msg, void *ud)
{
	(void)ud;
	log_warn("config", "%s", msg);
}

/* The platforms' secrets, checked by the commands that start a platform. */
static int require_secrets(const struct app *app)
{
	char err[COHORT_ERR_LEN];
	if (config_require_secrets(&app->cfg, true, true, err)) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* What `cohort run` refuses before it touches the store. */
static int run_precheck(struct app *app)
{
	if (!app->cfg.discord_enabled && !app->cfg.matrix_enabled && !*app->cfg.http_listen &&
	    app->cfg.source && !isatty(STDIN_FILENO)) {
		/*
		 * A service or container with nothing enabled would read EOF and exit 0,
		 * silently. Only the quick start (no configuration file at all) and a
		 * terminal get the console.
		 */
		fprintf(stderr,
			"cohort: %s: no chat platform is enabled and stdin is not a terminal, so "
			"there is nothing to run: set enabled = true in [discord] (with token or "
			"COHORT_DISCORD_TOKEN) or in [matrix] (with access_token or "
			"COHORT_MATRIX_TOKEN); for a chat on stdin use 'cohort console'\n",
			app->cfg.source);
		config_warnings(&app->cfg, log_warning, NULL);
		return EXIT_USAGE;
	}
	return require_secrets(app);
}

/* path made absolute (against the working directory), as a new string. */
static char *absolute_path(const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, strncmp(path, "./", 2) == 0 ? path + 2 : path);
}

/* The store for messages: store.url with its password hidden, or store.path made absolute. */
static char *store_name(const struct config *cfg)
{
	return *cfg->store_url ? config_store_shown(cfg) : absolute_path(cfg->store_path);
}

/*
 * Loads config and roadmap, and (unless NO_STORE) opens the store and makes
 * the bot. STORE_EXISTING never creates a store: a missing one is reported
 * with the absolute path looked at (exit 1 for status, a health check; else 2).
 */
static int app_init(struct app *app, const struct cli *cli, enum store_need need)
{
	memset(app, 0, sizeof(*app));
	int rc = load_config(cli, &app->cfg);
	if (!rc)
		rc = load_roadmap(&app->cfg, &app->set, &app->rm);
	if (!rc && strcmp(cli->command, "run") == 0)
		rc = run_precheck(app);
	if (rc || need == NO_STORE)
		return rc;
	char err[COHORT_ERR_LEN];
	bool full = strcmp(app->cfg.store_synchronous, "full") == 0;
	/* store.url (a PostgreSQL database) when set, else the SQLite file at store.path. */
	const char *target = config_store(&app->cfg);
	rc = need == STORE_CREATE ? store_open(target, full, &app->store, err)
				  : store_open_existing(target, full, &app->store, err);
	if (rc == COHORT_ERR_NOT_FOUND) {
		char *abs = absolute_path(app->cfg.store_path);
		fprintf(stderr,
			"cohort: no store at %s (store.path in %s): cohort has not run with this "
			"configuration yet; 'cohort run', 'console' or 'import' create it. Check "
			"store.path, or pass the right config with -c\n",
			abs, app->cfg.source ? app->cfg.source : "the built-in defaults");
		free(abs);
		return strcmp(cli->command, "status") == 0 ? EXIT_RUNTIME : EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_RUNTIME;
	}
	struct bot_opts o = {app->store, app->rm, app->cfg.digest_time, app->cfg.digest_timezone,
			     NULL,       NULL,    app->set};
	if (bot_new(&o, &app->bot)) {
		char *name = store_name(&app->cfg);
		fprintf(stderr, "cohort: %s: setting up the store failed (see the log above)\n",
			name);
		free(name);
		return EXIT_RUNTIME;
	}
	bot_set_public_url(app->bot, app->cfg.http_public_url); /* the group's page links */
	return EXIT_OK;
}

/* The console: digests of its own group (and no other) are shown in the chat. */
struct console_runner {
	struct app *app;
	struct bot *bot;
	struct console *console;
	struct digest_sink sink;
	const char *group_id;
	struct dispatch *dispatch; /* the bot's queue, run on the console's thread */
};

static bool serves_console(void *ud, const char *group_id)
{
	struct console_runner *run = ud;
	return strcmp(group_id, run->group_id) == 0;
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

/* A reminder in the console: shown in the chat (bot/remind.c names the member). */
static int remind_console(void *ud, const char *group_id, const char *member_id,
			  const struct reply *r, const char *idem_key)
{
	struct console_runner *run = ud;
	(void)group_id;
	(void)member_id;
	(void)idem_key;
	return console_post(run->console, r);
}

/* Runs the events the console queued at the bot's door. */
static void pump(void *ud)
{
	struct console_runner *run = ud;
	dispatch_drain(run->dispatch);
}

/* Runs due digests; returns how long the console may wait before the next tick. */
static int64_t tick(void *ud)
{
	struct console_runner *run = ud;
	if (reload_requested)
		reload(run->app);
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
	if (strncmp(group, "console:", 8) == 0)
		group += 8; /* the group's id given for its name: the same group */
	if (strlen(as) > 32 || strcspn(as, " \t@") != strlen(as) || !*as)
		return usage_error("--as '%s': a name is 1 to 32 characters without spaces or @",
				   as);
	if (strlen(group) > 64 || !*group || strcspn(group, " \t") != strlen(group))
		return usage_error(
			"--group '%s': a group name is 1 to 64 characters without spaces", group);
	/* The console shows its group's digest unless an admin turned it off. */
	char *group_id = xasprintf("console:%s", group);
	int rc = store_default_digest_channel(app->store, group_id, "console");
	if (rc) {
		free(group_id);
		return EXIT_RUNTIME;
	}
	struct console_runner run = {app,      app->bot, NULL, {serves_console, post_console, NULL, remind_console},
				     group_id, NULL};
	run.sink.ud = &run;
	run.dispatch = dispatch_new(app->bot);
	if (!run.dispatch) {
		free(group_id);
		return EXIT_RUNTIME;
	}
	struct console_opts o = {
		.member = as,
		.group = group,
		.in = STDIN_FILENO,
		.out = stdout,
		.stop = &stop_requested,
		.wake = signal_pipe[0],
		.tick = tick,
		.tick_ud = &run,
		.pump = pump,
	};
	run.console = console_new(dispatch_door(run.dispatch), &o);
	rc = console_run(run.console);
	dispatch_drain(run.dispatch);
	console_free(run.console);
	dispatch_free(run.dispatch);
	free(group_id);
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

static int remind_platform(void *ud, const char *group_id, const char *member_id,
			   const struct reply *r, const char *idem_key)
{
	const struct adapter *a = adapter_for(ud, group_id);
	if (!a->ops->remind)
		return COHORT_ERR_USAGE; /* this platform sends no reminders yet */
	return a->ops->remind(a->self, group_id, member_id, r, idem_key);
}

/* Makes the adapters of every enabled platform (not started). */
static int platforms_init(struct platforms *p, struct app *app, struct dispatch *d)
{
	memset(p, 0, sizeof(*p));
	p->sink = (struct digest_sink){serves_platform, post_platform, p, remind_platform};
	if (app->cfg.discord_enabled) {
		if (discord_new(&app->cfg, dispatch_door(d), &p->v[p->n]))
			return EXIT_RUNTIME;
		p->n++;
	}
	if (app->cfg.matrix_enabled) {
		if (matrix_new(&app->cfg, dispatch_door(d), &p->v[p->n]))
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
	if (rc == COHORT_ERR_DENIED)
		return EXIT_CLAIMED; /* a shard's claim was lost to another process */
	return rc == COHORT_ERR_AUTH || rc == COHORT_ERR_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
}

/* A claim the keeper lost: a shard's means two processes would answer its guilds. */
static void claim_lost(void *ud, const char *name, const struct store_lease *l)
{
	struct dispatch *d = ud;
	if (strncmp(name, "discord:shard:", 14) != 0)
		return; /* the Matrix sync: the adapter stands by at its next ask */
	if (l->holder[0])
		log_error("main",
			  "stopping: %s has Discord shard %s now (this process could not renew "
			  "its claim in time); two processes must not run one shard",
			  l->holder, name + 14);
	else
		log_error("main",
			  "stopping: the claim of Discord shard %s could not be renewed in time "
			  "(the database did not answer), so another process may run it now; two "
			  "processes must not run one shard",
			  name + 14);
	dispatch_fail(d, COHORT_ERR_DENIED);
}

/* The shard ids this process claims: discord.shards, else all of shard_count, else 0. */
static size_t shard_claims(const struct config *cfg, int **ids)
{
	size_t n = cfg->discord_shards.n;
	if (!n)
		n = cfg->discord_shard_count > 0 ? (size_t)cfg->discord_shard_count : 1;
	*ids = xcalloc(n, sizeof(**ids));
	for (size_t i = 0; i < n; i++)
		(*ids)[i] = cfg->discord_shards.n ? cfg->discord_shards.v[i] : (int)i;
	return n;
}

/*
 * Claims Discord shard id for this process. A claim another process holds
 * is waited on for up to one claim period: a killed process stops renewing
 * and its claim lapses (one of this host that no longer runs is taken over
 * at once); a claim that is renewed meanwhile belongs to a live process, and
 * this one refuses to start (EXIT_CLAIMED), naming it.
 */
static int claim_shard(struct keeper *k, int id)
{
	char name[40];
	snprintf(name, sizeof(name), "discord:shard:%d", id);
	int64_t period = clock_real_wait_ms(SHARD_CLAIM_MS);
	struct store_lease l;
	int rc = keeper_claim(k, name, period, &l);
	if (rc == COHORT_ERR_DENIED) {
		int64_t start = clock_real_ms(), expires = start + l.ms_left;
		log_warn("main",
			 "Discord shard %d is claimed by %s; waiting up to %lld s for that claim "
			 "to lapse (a stopped process no longer renews it)",
			 id, l.holder, (long long)(period + 999) / 1000);
		while (rc == COHORT_ERR_DENIED && !stop_requested &&
		       clock_real_ms() + l.ms_left <= expires + 500 &&
		       clock_real_ms() - start <= period + 1000) {
			poll(NULL, 0, (int)(period / 20 < 250 ? period / 20 + 1 : 250));
			rc = keeper_claim(k, name, period, &l);
		}
		if (rc == COHORT_OK)
			log_info("main", "took over Discord shard %d: its earlier claim lapsed", id);
	}
	if (rc == COHORT_ERR_DENIED) {
		log_error("main",
			  "Discord shard %d is run by another process (%s), which keeps renewing "
			  "its claim: two processes must not run one shard. Stop that process, or "
			  "give this one other ids in discord.shards (exit %d)",
			  id, l.holder, EXIT_CLAIMED);
		return EXIT_CLAIMED;
	}
	if (rc)
		return stop_requested ? EXIT_OK : EXIT_RUNTIME;
	log_debug("main", "claimed Discord shard %d", id);
	return EXIT_OK;
}

/* IDENTIFY slots across processes (struct gw_identify_gate), through the keeper. */
static void identify_gate(void *ud, int bucket, int64_t period_ms,
			  void (*answer)(void *ctx, bool got, int64_t retry_ms), void *ctx)
{
	char name[48];
	snprintf(name, sizeof(name), "discord:identify:%d", bucket);
	keeper_slot(ud, name, period_ms, answer, ctx);
}

/* Discord's global REST limit shared by the processes, through the keeper. */
static void rest_rate(void *ud, const char *name, int limit, int want,
		      void (*answer)(void *ctx, int granted, int64_t valid_ms), void *ctx)
{
	keeper_rate(ud, name, limit, want, answer, ctx);
}

/* The Matrix sync lease (struct mx_sync_lease), through the keeper. */
static bool may_sync(void *ud, const char *user_id, bool resume, char **since, char *who,
		     size_t n, int64_t *retry_ms)
{
	struct keeper *k = ud;
	char *name = xasprintf("matrix:sync:%s", user_id);
	int64_t period = clock_real_wait_ms(SYNC_CLAIM_MS);
	struct store_lease l;
	int rc = keeper_claim(k, name, period, &l);
	free(name);
	*since = NULL;
	if (rc == COHORT_OK && resume)
		keeper_state_get(k, "matrix.next_batch", since);
	if (rc == COHORT_OK)
		return true;
	if (rc == COHORT_ERR_STORE) {
		/* A database that does not answer: the lease may lapse and another sync. */
		snprintf(who, n, "another process, maybe (the database did not answer, so this "
			 "one's lease may have lapsed),");
		*retry_ms = period / 10;
		return false;
	}
	snprintf(who, n, "%s", l.holder);
	*retry_ms = l.ms_left > 0 ? l.ms_left + 50 : period / 10;
	if (*retry_ms > period / 3)
		*retry_ms = period / 3;
	return false;
}

/* What a running cohort knows about itself, for `cohort status`. */
struct runner {
	struct app *app;
	struct platforms *p;
	int64_t started, last_status;
};

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Every process's status (a JSON array of the parsed entries, key order). */
static int add_status(const char *key, const char *value, void *ud)
{
	cJSON *o = cJSON_Parse(value);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return 0;
	}
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddItemToArray(ud, o);
	return 0;
}

static cJSON *read_statuses(struct store *st)
{
	cJSON *all = cJSON_CreateArray();
	if (store_state_list(st, STATUS_PREFIX, add_status, all)) {
		cJSON_Delete(all);
		return NULL;
	}
	return all;
}

/* Removes the entries of processes that have not written for STATUS_FORGET_MS. */
static void forget_old_status(struct store *st)
{
	cJSON *all = read_statuses(st);
	const cJSON *o;
	cJSON_ArrayForEach(o, all)
	{
		if (clock_real_ms() - (int64_t)num(o, "updated_at") < STATUS_FORGET_MS)
			continue;
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "key"));
		if (key && store_state_delete(st, key))
			log_warn("main", "could not remove the old status %s", key);
	}
	cJSON_Delete(all);
}

/* Writes the status (adapters' states and counters) into the store. */
static void write_status(struct runner *r, bool stopping)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "version", COHORT_VERSION);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddStringToObject(o, "holder", store_lease_holder());
	cJSON_AddNumberToObject(o, "started_at", (double)r->started);
	cJSON_AddNumberToObject(o, "updated_at", (double)clock_real_ms());
	cJSON_AddBoolToObject(o, "running", !stopping);
	cJSON *list = cJSON_AddArrayToObject(o, "adapters");
	for (size_t i = 0; i < r->p->n; i++) {
		struct adapter_status st;
		memset(&st, 0, sizeof(st));
		r->p->v[i].ops->status(r->p->v[i].self, &st);
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "name", r->p->v[i].ops->name);
		cJSON_AddStringToObject(a, "state", st.state ? st.state : "unknown");
		cJSON_AddNumberToObject(a, "since", (double)st.since);
		cJSON_AddNumberToObject(a, "last_event", (double)st.last_event);
		cJSON_AddNumberToObject(a, "commands", (double)st.commands);
		cJSON_AddNumberToObject(a, "reconnects", (double)st.reconnects);
		cJSON_AddNumberToObject(a, "requests", (double)st.requests);
		cJSON_AddNumberToObject(a, "rate_limited", (double)st.rate_limited);
		cJSON_AddNumberToObject(a, "rate_limit_wait_ms", (double)st.rate_limit_wait_ms);
		cJSON_AddNumberToObject(a, "unauthorized", (double)st.unauthorized);
		cJSON_AddNumberToObject(a, "forbidden", (double)st.forbidden);
		cJSON_AddNumberToObject(a, "server_errors", (double)st.server_errors);
		cJSON_AddNumberToObject(a, "given_up", (double)st.given_up);
		if (st.n_shards) {
			cJSON *shards = cJSON_AddArrayToObject(a, "shards");
			for (size_t k = 0; k < st.n_shards; k++) {
				cJSON *s = cJSON_CreateObject();
				cJSON_AddNumberToObject(s, "id", st.shards[k].id);
				cJSON_AddNumberToObject(s, "count", st.shards[k].count);
				cJSON_AddStringToObject(s, "state", st.shards[k].state);
				cJSON_AddNumberToObject(s, "since", (double)st.shards[k].since);
				cJSON_AddNumberToObject(s, "reconnects",
							(double)st.shards[k].reconnects);
				cJSON_AddItemToArray(shards, s);
			}
		}
		free(st.shards);
		cJSON_AddItemToArray(list, a);
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!r->last_status)
		forget_old_status(r->app->store);
	char *key = xasprintf("%s%s", STATUS_PREFIX, store_lease_holder());
	if (store_state_set(r->app->store, key, text))
		log_warn("main", "could not write the status");
	free(key);
	cJSON_free(text);
	r->last_status = clock_real_ms();
}

/* The dispatcher's housekeeping: SIGHUP, and the status every STATUS_EVERY_MS. */
static void housekeeping(void *ud)
{
	struct runner *r = ud;
	if (reload_requested)
		reload(r->app);
	if (clock_real_ms() - r->last_status >= STATUS_EVERY_MS)
		write_status(r, false);
}

static void print_warning(const char *msg, void *ud)
{
	fprintf(ud, "warning: %s\n", msg);
}

/*
 * The HTTP server of http.listen, over the platforms p (for /healthz), started;
 * *out stays NULL when http.listen is empty. With discord.public_key, *ix is
 * the POST /interactions endpoint over the Discord adapter (ix_free() it after
 * web_free()). Returns EXIT_OK or EXIT_RUNTIME.
 */
static int web_init(struct app *app, struct dispatch *d, struct platforms *p, struct web **out,
		    struct ix **ix)
{
	*out = NULL;
	*ix = NULL;
	if (!*app->cfg.http_listen)
		return EXIT_OK;
	char host[64];
	int port;
	config_http_listen(&app->cfg, host, sizeof(host), &port);
	struct web_opts o = {host, port, dispatch_door(d), p->v, p->n};
	struct web *w = web_new(&o);
	/* Routes beyond /healthz are added here (web_add_route()), before web_start(). */
	struct web_route pages;
	pages_route(dispatch_door(d), &pages);
	web_add_route(w, &pages);
	struct adapter *discord = NULL;
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].ops->name, "discord") == 0)
			discord = &p->v[i];
	if (discord && *app->cfg.discord_public_key) {
		*ix = ix_new(app->cfg.discord_public_key, discord);
		if (!*ix) { /* 64 hex digits (the config checked) that are not a curve point */
			log_error("main", "discord.public_key is not an Ed25519 public key: copy "
					  "Public Key from the Developer Portal (General Information)");
			web_free(w);
			return EXIT_USAGE;
		}
		struct web_route route;
		ix_route(*ix, &route);
		web_add_route(w, &route);
	}
	if (web_start(w)) {
		web_free(w);
		ix_free(*ix);
		*ix = NULL;
		return EXIT_RUNTIME;
	}
	*out = w;
	return EXIT_OK;
}

static int cmd_run(struct app *app, const struct cli *cli)
{
	config_warnings(&app->cfg, log_warning, NULL);
	if (!app->cfg.discord_enabled && !app->cfg.matrix_enabled && !*app->cfg.http_listen) {
		log_info("main", "starting the console (%s)",
			 app->cfg.source ? app->cfg.source : "no configuration file");
		return console_session(app, cli);
	}
	struct dispatch *d = dispatch_new(app->bot);
	if (!d)
		return EXIT_RUNTIME;
	signal_dispatch = d; /* from now on a signal also wakes the dispatcher */
	struct platforms p;
	int rc = platforms_init(&p, app, d);
	/* The claims: this process's shards, and the Matrix sync when it is its turn. */
	struct keeper *keeper = NULL;
	if (!rc) {
		char err[COHORT_ERR_LEN];
		if (keeper_new(config_store(&app->cfg),
			       strcmp(app->cfg.store_synchronous, "full") == 0, claim_lost, d,
			       &keeper, err)) {
			log_error("main", "%s", err);
			rc = EXIT_RUNTIME;
		}
	}
	/* Without a gateway (HTTP interactions only) there are no shards: any number may run. */
	if (!rc && app->cfg.discord_enabled && app->cfg.discord_gateway) {
		int *ids;
		size_t n = shard_claims(&app->cfg, &ids);
		for (size_t i = 0; !rc && i < n; i++)
			rc = claim_shard(keeper, ids[i]);
		free(ids);
	}
	/* On SQLite (one process) IDENTIFY pacing and REST limits stay the process's own. */
	bool shared = strncmp(config_store(&app->cfg), "postgres", 8) == 0;
	for (size_t i = 0; !rc && i < p.n; i++) {
		if (strcmp(p.v[i].ops->name, "matrix") == 0)
			matrix_set_sync_lease(&p.v[i], &(struct mx_sync_lease){may_sync, keeper});
		if (strcmp(p.v[i].ops->name, "discord") == 0 && shared) {
			discord_set_identify_gate(
				&p.v[i], &(struct gw_identify_gate){identify_gate, keeper});
			discord_share_rest_limit(&p.v[i], rest_rate, keeper);
		}
	}
	size_t started = 0;
	if (stop_requested)
		log_info("main", "stopping (signal) before connecting to any platform");
	for (; !rc && !stop_requested && started < p.n; started++)
		if (p.v[started].ops->start(p.v[started].self))
			rc = EXIT_RUNTIME;
	struct web *web = NULL;
	struct ix *ix = NULL;
	if (!rc && !stop_requested)
		rc = web_init(app, d, &p, &web, &ix);
	struct runner r = {app, &p, clock_real_ms(), 0};
	if (!rc) {
		log_info("main", "cohort %s running", COHORT_VERSION);
		dispatch_set_hook(d, housekeeping, &r, STATUS_EVERY_MS);
		rc = exit_code_of(dispatch_run(d, &p.sink, &stop_requested));
		if (stop_requested)
			log_info("main", "stopping (signal): finishing the answers in flight");
	}
	/* Stop taking commands, hand the replies in flight over, then send them. */
	if (web)
		web_stop(web);
	for (size_t i = 0; i < started; i++)
		p.v[i].ops->stop(p.v[i].self);
	for (size_t i = 0; i < started; i++) {
		int arc = p.v[i].ops->join(p.v[i].self);
		if (arc && !rc)
			rc = exit_code_of(arc);
	}
	if (web)
		web_join(web);
	dispatch_drain(d);
	web_free(web); /* after the drain: every request handed to the bot has its answer */
	ix_free(ix);
	if (started)
		write_status(&r, true);
	/* Releases the claims (a successor need not wait) and answers what waits for the
	 * keeper (an IDENTIFY slot, REST tokens) while the askers still exist. */
	keeper_close(keeper);
	platforms_release(&p);
	keeper_free(keeper);
	dispatch_drain(d); /* the outcomes the adapters reported while finishing */
	signal_dispatch = NULL;
	dispatch_free(d);
	log_info("main", "stopped");
	return rc;
}

static void print_time(const char *label, int64_t ms)
{
	if (!ms) {
		printf("  %-18s never\n", label);
		return;
	}
	char buf[32];
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("  %-18s %s (%lld s ago)\n", label, buf, (long long)((clock_real_ms() - ms) / 1000));
}

/* Prints one process's status; true when it runs (written lately), *healthy when all connected. */
static bool print_status(const cJSON *o, bool *healthy)
{
	int64_t updated = (int64_t)num(o, "updated_at");
	bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "running")) &&
		       clock_real_ms() - updated < STATUS_STALE_MS;
	*healthy = running;
	const char *holder = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "holder"));
	int host_len = holder ? (int)strcspn(holder, " ") : 0;
	printf("cohort %s, pid %.0f%s%.*s: %s\n",
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "version")) ?: "?",
	       num(o, "pid"), host_len ? " on " : "", host_len, holder ? holder : "",
	       running ? "running" : "not running");
	print_time("started", (int64_t)num(o, "started_at"));
	print_time("status written", updated);
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(o, "adapters"))
	{
		const char *state =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "state"));
		const char *name =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "name"));
		printf("%s: %s\n", name ? name : "?", state ? state : "?");
		if (!state || strcmp(state, "connected") != 0)
			*healthy = false;
		print_time("since", (int64_t)num(a, "since"));
		print_time("last event", (int64_t)num(a, "last_event"));
		printf("  %-18s %.0f\n", "commands", num(a, "commands"));
		printf("  %-18s %.0f\n", "reconnects", num(a, "reconnects"));
		printf("  %-18s %.0f (%.1f s waited)\n", "rate limited", num(a, "rate_limited"),
		       num(a, "rate_limit_wait_ms") / 1000.0);
		printf("  %-18s %.0f requests; 401: %.0f, 403: %.0f, 5xx: %.0f, given up: %.0f\n",
		       "REST", num(a, "requests"), num(a, "unauthorized"), num(a, "forbidden"),
		       num(a, "server_errors"), num(a, "given_up"));
		/* Each Discord shard: healthy only when every one is connected. */
		const cJSON *sh;
		const cJSON *shards = cJSON_GetObjectItemCaseSensitive(a, "shards");
		bool several = cJSON_GetArraySize(shards) > 1;
		cJSON_ArrayForEach(sh, shards)
		{
			const char *st =
				cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sh, "state"));
			if (!st || strcmp(st, "connected") != 0)
				*healthy = false;
			if (!several && num(sh, "count") <= 1)
				continue; /* one unsharded connection: the lines above say it all */
			char label[32];
			snprintf(label, sizeof(label), "shard %.0f/%.0f", num(sh, "id"),
				 num(sh, "count"));
			int64_t since = (int64_t)num(sh, "since");
			printf("  %-18s %s since %lld s, %.0f reconnects\n", label, st ? st : "?",
			       (long long)(since ? (clock_real_ms() - since) / 1000 : 0),
			       num(sh, "reconnects"));
		}
	}
	return running;
}

/*
 * Reads what every cohort process on this database wrote (entries not written
 * for STATUS_FORGET_MS skipped). Exit 0 when at least one runs and every running
 * one has every platform connected; a process that stopped, or stopped writing,
 * is listed as not running and does not count.
 */
static int cmd_status(struct app *app, const struct cli *cli)
{
	(void)cli;
	cJSON *all = read_statuses(app->store);
	if (!all) {
		fprintf(stderr, "cohort: could not read the status from the store\n");
		return EXIT_RUNTIME;
	}
	int shown = 0, running = 0;
	bool healthy = true;
	const cJSON *o;
	cJSON_ArrayForEach(o, all)
	{
		if (clock_real_ms() - (int64_t)num(o, "updated_at") >= STATUS_FORGET_MS)
			continue;
		if (shown++)
			printf("\n");
		bool ok;
		if (print_status(o, &ok)) {
			running++;
			healthy = healthy && ok;
		}
	}
	cJSON_Delete(all);
	if (!shown) {
		char *name = store_name(&app->cfg);
		printf("cohort has not run with a chat platform on %s in the last hour\n", name);
		free(name);
		return EXIT_RUNTIME;
	}
	return running && healthy ? EXIT_OK : EXIT_RUNTIME;
}

static int cmd_backup(struct app *app, const struct cli *cli)
{
	if (!cli->path)
		return usage_error("%s", "backup needs a PATH to write the copy to");
	char err[COHORT_ERR_LEN];
	int rc = store_backup(app->store, cli->path, cli->force, err);
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return rc == COHORT_ERR_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
	}
	printf("backed up %s to %s\n", app->cfg.store_path, cli->path);
	return EXIT_OK;
}

static int parse_format(const struct cli *cli, const char *what, enum export_format *fmt)
{
	if (!cli->format) {
		fprintf(stderr, "cohort: %s needs --format csv or --format json\n", what);
		return EXIT_USAGE;
	}
	if (strcmp(cli->format, "csv") == 0)
		*fmt = EXPORT_CSV;
	else if (strcmp(cli->format, "json") == 0)
		*fmt = EXPORT_JSON;
	else
		return usage_error("--format '%s': use csv or json", cli->format);
	return EXIT_OK;
}

static int cmd_import(struct app *app, const struct cli *cli)
{
	enum export_format fmt;
	int rc = parse_format(cli, "import", &fmt);
	if (rc)
		return rc;
	if (!cli->path)
		return usage_error("%s", "import needs the FILE an export wrote (- for stdin)");
	bool use_stdin = strcmp(cli->path, "-") == 0;
	FILE *in = use_stdin ? stdin : fopen(cli->path, "rb");
	if (!in) {
		fprintf(stderr, "cohort: %s: %s\n", cli->path, strerror(errno));
		return EXIT_USAGE;
	}
	char err[COHORT_ERR_LEN];
	size_t n;
	rc = export_read(app->store, app->set, fmt, in, use_stdin ? "stdin" : cli->path, &n, err);
	if (!use_stdin)
		fclose(in);
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return rc == COHORT_ERR_STORE || rc == COHORT_ERR_IO ? EXIT_RUNTIME : EXIT_USAGE;
	}
	char *name = store_name(&app->cfg);
	printf("imported %zu %s into %s\n", n, text_plural((long)n, "record", "records"), name);
	free(name);
	return EXIT_OK;
}
/*
 * Copies the SQLite store at store.path into the empty PostgreSQL database
 * at --to, exactly: the complete JSON dump of one is restored into the other
 * (in one transaction), and every score derived again there.
 */
static int cmd_migrate(struct app *app, const struct cli *cli)
{
	if (!cli->to)
		return usage_error("%s", "migrate needs --to URL, the PostgreSQL database to copy "
					 "the store into (postgresql://...)");
	if (strncmp(cli->to, "postgresql://", 13) != 0 && strncmp(cli->to, "postgres://", 11) != 0)
		return usage_error("%s", "--to: not a PostgreSQL connection URI (it starts with "
					 "postgresql:// or postgres://)");
	if (*app->cfg.store_url)
		return usage_error("%s", "migrate copies the SQLite store at store.path: unset "
					 "store.url (and COHORT_STORE_URL) for it");
	char err[COHORT_ERR_LEN];
	struct store *src = NULL, *dst = NULL;
	struct bot *b = NULL;
	FILE *tmp = NULL;
	size_t n = 0;
	int rc = store_open_existing(app->cfg.store_path, false, &src, err);
	if (rc == COHORT_ERR_NOT_FOUND) {
		char *abs = absolute_path(app->cfg.store_path);
		fprintf(stderr, "cohort: no store at %s (store.path): nothing to migrate\n", abs);
		free(abs);
		return EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_RUNTIME;
	}
	int code = EXIT_RUNTIME;
	tmp = tmpfile();
	if (!tmp || export_write(src, app->set, NULL, EXPORT_JSON, tmp) || fflush(tmp) != 0) {
		fprintf(stderr, "cohort: %s: reading the store failed (see the log)\n",
			app->cfg.store_path);
		goto out;
	}
	rewind(tmp);
	if (store_open(cli->to, strcmp(app->cfg.store_synchronous, "full") == 0, &dst, err)) {
		fprintf(stderr, "cohort: %s\n", err);
		goto out;
	}
	struct bot_opts o = {dst,  app->rm, app->cfg.digest_time, app->cfg.digest_timezone,
			     NULL, NULL,    app->set};
	if (bot_new(&o, &b)) {
		fprintf(stderr, "cohort: setting up the PostgreSQL store failed (see the log)\n");
		goto out;
	}
	rc = export_read(dst, app->set, EXPORT_JSON, tmp, app->cfg.store_path, &n, err);
	if (rc == COHORT_ERR_USAGE) {
		fprintf(stderr,
			"cohort: --to: that database holds progress already; migrate copies into "
			"an empty one (nothing was changed)\n");
		code = EXIT_USAGE;
		goto out;
	}
	if (rc) {
		fprintf(stderr, "cohort: %s (nothing was changed)\n", err);
		goto out;
	}
	printf("copied %zu %s from %s into PostgreSQL; set store.url (or COHORT_STORE_URL) to "
	       "use it\n",
	       n, text_plural((long)n, "record", "records"), app->cfg.store_path);
	code = EXIT_OK;
out:
	if (tmp)
		fclose(tmp);
	bot_free(b);
	store_free(dst);
	store_free(src);
	return code;
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
	return exit_code_of(discord_register_commands(&app->cfg, cli->guild, cli->clear));
}

/* One (group, topic id) total, copied out of the store's callback. */
struct group_total {
	char *group, *topic;
	long records, done;
};

struct group_totals {
	struct group_total *v;
	size_t n;
};

static int collect_total(const struct store_topic_total *t, void *ud)
{
	struct group_totals *g = ud;
	g->v = xrealloc(g->v, (g->n + 1) * sizeof(*g->v));
	g->v[g->n++] = (struct group_total){xstrdup(t->group_id), xstrdup(t->topic_id), t->records,
					    t->done};
	return 0;
}

/* A record total off its group's roadmap, with that roadmap. */
struct off_row {
	struct group_total t;
	const struct roadmap *rm;
};

static int by_topic(const void *a, const void *b)
{
	const struct group_total *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : strcmp(x->group, y->group);
}

/*
 * Prints the stored topic ids that are not on the roadmap their group counts
 * (kept, but not counted), with what becomes of them; *ids and *records
 * receive how many. Each group counts its own roadmap (/roadmap use).
 */
static int print_off_roadmap(struct store *st, const struct rmset *set, size_t *ids,
			     long *records)
{
	struct group_totals g = {NULL, 0};
	int rc = store_group_topic_totals(st, collect_total, &g);
	/* Each group's roadmap, looked up once per group (rows come in group order). */
	const struct roadmap **rms = xcalloc(g.n ? g.n : 1, sizeof(*rms));
	for (size_t i = 0; !rc && i < g.n; i++) {
		if (i && strcmp(g.v[i].group, g.v[i - 1].group) == 0) {
			rms[i] = rms[i - 1];
			continue;
		}
		char *name = NULL;
		rc = store_group_roadmap(st, g.v[i].group, &name);
		long k = name ? rmset_find(set, name) : -1;
		rms[i] = rmset_at(set, k >= 0 ? (size_t)k : rmset_default(set));
		free(name);
	}
	/* Sorted by topic with their roadmaps: one line per topic id. */
	struct off_row *rows = xcalloc(g.n ? g.n : 1, sizeof(*rows));
	size_t n = 0;
	for (size_t i = 0; !rc && i < g.n; i++)
		if (roadmap_find_id(rms[i], g.v[i].topic) < 0)
			rows[n++] = (struct off_row){g.v[i], rms[i]};
	for (size_t i = 1; i < n; i++) /* insertion sort by topic, stable; n is small */
		for (size_t j = i; j > 0 && by_topic(&rows[j - 1].t, &rows[j].t) > 0; j--) {
			struct off_row tmp = rows[j];
			rows[j] = rows[j - 1];
			rows[j - 1] = tmp;
		}
	*ids = 0;
	*records = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		long recs = 0, done = 0;
		for (; j < n && strcmp(rows[j].t.topic, rows[i].t.topic) == 0; j++) {
			recs += rows[j].t.records;
			done += rows[j].t.done;
		}
		if (!(*ids)++)
			printf("\nStored progress on topics not on its group's roadmap (kept, but not "
			       "counted):\n");
		*records += recs;
		printf("  %s: %ld %s (%ld done)", rows[i].t.topic, recs,
		       text_plural(recs, "record", "records"), done);
		const struct roadmap *rm = rows[i].rm;
		for (size_t t = 0; t < roadmap_topic_count(rm); t++) {
			const struct rm_topic *tp = roadmap_topic(rm, t);
			for (size_t k = 0; k < tp->nformer; k++)
				if (strcmp(tp->former[k], rows[i].t.topic) == 0)
					printf(" - a former id of %s [%s]: moved to it when cohort "
					       "starts, except for members who have %s already",
					       tp->name, tp->id, tp->name);
		}
		putchar('\n');
		i = j;
	}
	for (size_t i = 0; i < g.n; i++) {
		free(g.v[i].group);
		free(g.v[i].topic);
	}
	free(g.v);
	free(rms);
	free(rows);
	return rc;
}

/* "roadmaps groups may use: backend (default, 84 topics), frontend (10 topics)" when several. */
static void print_roadmap_set(const struct rmset *set)
{
	if (rmset_count(set) < 2)
		return;
	printf("roadmaps groups may use (/roadmap use NAME):");
	for (size_t i = 0; i < rmset_count(set); i++) {
		size_t n = roadmap_topic_count(rmset_at(set, i));
		printf("%s %s (%s%zu %s)", i ? "," : "", rmset_name(set, i),
		       i == rmset_default(set) ? "default, " : "", n,
		       text_plural((long)n, "topic", "topics"));
	}
	putchar('\n');
}

static int cmd_roadmap(struct app *app, const struct cli *cli)
{
	(void)cli;
	const struct roadmap *rm = app->rm;
	size_t sections = 0;
	for (size_t i = 0; i < roadmap_node_count(rm); i++) {
		const struct rm_node *nd = roadmap_node(rm, i);
		printf("%*s%s", nd->depth * 2, "", nd->name);
		if (nd->topic >= 0) {
			const struct rm_topic *t = roadmap_topic(rm, (size_t)nd->topic);
			printf("  [%s]", t->id);
			for (size_t a = 0; a < t->naliases; a++)
				printf("%s%s", a ? ", " : "  aliases: ", t->aliases[a]);
			for (size_t k = 0; k < t->nformer && t->node == i; k++)
				printf("%s%s", k ? ", " : "  was: ", t->former[k]);
			if (t->link && t->node == i)
				printf("  <%s>", t->link);
			if (t->node != i)
				printf("  (same topic as above)");
		} else {
			sections++;
			if (nd->link)
				printf("  <%s>", nd->link);
		}
		putchar('\n');
	}
	size_t topics = roadmap_topic_count(rm);
	printf("\n%zu %s in %zu %s, from %s\n", topics,
	       text_plural((long)topics, "topic", "topics"), sections,
	       text_plural((long)sections, "section", "sections"), roadmap_source(rm));
	print_roadmap_set(app->set);
	/* The store, when there is one: progress it keeps on topics this roadmap lacks. */
	if (!*app->cfg.store_url && access(app->cfg.store_path, F_OK) != 0)
		return EXIT_OK;
	char err[COHORT_ERR_LEN];
	struct store *st;
	if (store_open(config_store(&app->cfg), false, &st, err)) {
		fprintf(stderr, "cohort: %s\n", err);
		return EXIT_RUNTIME;
	}
	size_t ids;
	long records;
	int rc = print_off_roadmap(st, app->set, &ids, &records);
	store_free(st);
	char *name = store_name(&app->cfg);
	if (rc)
		fprintf(stderr, "cohort: %s: reading the stored progress failed (see the log)\n",
			name);
	else if (ids)
		printf("%ld %s on %zu %s not on the roadmap, in %s\n", records,
		       text_plural(records, "record", "records"), ids,
		       text_plural((long)ids, "topic", "topics"), name);
	free(name);
	return rc ? EXIT_RUNTIME : EXIT_OK;
}

/* The folder the store goes in must exist (the store itself is made on first use). */
static int check_store_folder(const struct config *cfg)
{
	if (*cfg->store_url)
		return EXIT_OK; /* a database server's, not a folder here */
	char *dir = xstrdup(cfg->store_path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	struct stat sb;
	int rc = EXIT_OK;
	const char *src = cfg->source ? cfg->source : "configuration";
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr,
			"cohort: %s: store.path: the folder %s %s (create it, or set store.path "
			"to a file in a folder that exists)\n",
			src, dir, stat(dir, &sb) != 0 ? "does not exist" : "is not a folder");
		rc = EXIT_USAGE;
	} else if (access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr,
			"cohort: %s: store.path: cohort cannot write in the folder %s (%s; give "
			"its user write access, or set store.path to a writable folder)\n",
			src, dir, strerror(errno));
		rc = EXIT_USAGE;
	}
	free(dir);
	return rc;
}

static int cmd_check_config(struct app *app, const struct cli *cli)
{
	(void)cli;
	int rc = check_store_folder(&app->cfg);
	if (rc)
		return rc;
	struct strbuf sb = STRBUF_INIT;
	config_describe(&app->cfg, &sb);
	fputs(sb_str(&sb), stdout);
	sb_release(&sb);
	printf("roadmap: %zu %s from %s\n", roadmap_topic_count(app->rm),
	       text_plural((long)roadmap_topic_count(app->rm), "topic", "topics"),
	       roadmap_source(app->rm));
	print_roadmap_set(app->set);
	if (app->cfg.discord_enabled || app->cfg.matrix_enabled)
		printf("would run: %s%s%s\n", app->cfg.discord_enabled ? "discord" : "",
		       app->cfg.discord_enabled && app->cfg.matrix_enabled ? " and " : "",
		       app->cfg.matrix_enabled ? "matrix" : "");
	else
		printf("would run: the console (no chat platform is enabled)\n");
	char err[COHORT_ERR_LEN];
	if (config_require_secrets(&app->cfg, true, true, err))
		printf("warning: %s ('cohort run' will refuse to start until it is set; the "
		       "offline commands do not need it)\n",
		       err);
	config_warnings(&app->cfg, print_warning, stdout);
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

struct group_list {
	const char *want;
	bool found, console; /* console: console:WANT exists */
	struct strbuf names;
};

static int add_group(const char *group_id, void *ud)
{
	struct group_list *l = ud;
	l->found |= strcmp(group_id, l->want) == 0;
	l->console |= strncmp(group_id, "console:", 8) == 0 && strcmp(group_id + 8, l->want) == 0;
	sb_addf(&l->names, "%s%s", l->names.len ? ", " : "", group_id);
	return 0;
}

/* A group that is not in the store is a usage error naming the groups there are. */
static int require_group(struct app *app, const char *group_id)
{
	struct group_list l = {group_id, false, false, STRBUF_INIT};
	int rc = store_groups(app->store, add_group, &l) ? EXIT_RUNTIME : EXIT_OK;
	if (!rc && !l.found) {
		char *abs = store_name(&app->cfg);
		if (l.console)
			fprintf(stderr,
				"cohort: --group '%s': no such group in %s (did you mean "
				"console:%s? a group id names its platform); the groups there are: "
				"%s\n",
				group_id, abs, group_id, sb_str(&l.names));
		else if (l.names.len)
			fprintf(stderr,
				"cohort: --group '%s': no such group in %s; the groups there are: "
				"%s\n",
				group_id, abs, sb_str(&l.names));
		else
			fprintf(stderr, "cohort: --group '%s': no such group in %s: it has no groups yet\n",
				group_id, abs);
		fprintf(stderr, "run 'cohort help digest' for usage\n");
		free(abs);
		rc = EXIT_USAGE;
	}
	sb_release(&l.names);
	return rc;
}

/* The channel a posted digest of group goes to, as a new string; refused when there is none. */
static int digest_channel(struct app *app, const char *group, char **channel)
{
	struct store_settings st;
	*channel = NULL;
	if (store_get_settings(app->store, group, &st))
		return EXIT_RUNTIME;
	bool console_group = serves_stdout(NULL, group);
	if (st.digest_channel)
		*channel = xstrdup(st.digest_channel);
	else if (console_group && !st.stored)
		*channel = xstrdup("console"); /* a console group never set up: the console */
	bool off = st.stored && !st.digest_channel;
	store_settings_release(&st);
	if (*channel)
		return EXIT_OK;
	if (off)
		fprintf(stderr,
			"cohort: the digest of %s is turned off (an admin said \"/digest channel "
			"off\"): nothing was posted; an admin turns it on again with \"/digest "
			"channel here\" in the channel it should go to\n",
			group);
	else
		fprintf(stderr,
			"cohort: %s has no digest channel: an admin says \"/digest channel here\" "
			"in it first\n",
			group);
	return EXIT_USAGE;
}

static int cmd_digest(struct app *app, const struct cli *cli)
{
	if (!cli->group)
		return usage_error("%s", "digest needs --group ID (for example console:local)");
	int rc = require_group(app, cli->group);
	if (rc)
		return rc;
	if (!cli->post) {
		struct reply r;
		reply_init(&r);
		rc = bot_digest(app->bot, cli->group, &r);
		if (!rc) {
			char *text = reply_render_text(&r);
			fputs(text, stdout);
			free(text);
		}
		reply_release(&r);
		return rc ? EXIT_RUNTIME : EXIT_OK;
	}
	char *channel = NULL;
	rc = digest_channel(app, cli->group, &channel);
	if (rc)
		return rc;
	/* Posting records it as today's digest: the scheduler will not post it again. */
	struct digest_sink sink = {serves_stdout, post_stdout, NULL, NULL};
	struct dispatch *d = NULL;
	struct platforms p = {0};
	if (!serves_stdout(NULL, cli->group)) {
		rc = require_secrets(app);
		d = rc ? NULL : dispatch_new(app->bot);
		if (!rc)
			rc = d ? platforms_init(&p, app, d) : EXIT_RUNTIME;
		if (!rc && !adapter_for(&p, cli->group))
			rc = usage_error(
				"cannot post to '%s': no enabled platform serves that group "
				"(enable its platform in the configuration)",
				cli->group);
		sink = p.sink;
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
		else if (prc == COHORT_ERR_DENIED)
			fprintf(stderr,
				"cohort: another cohort process is posting today's digest of %s "
				"now; not posting it twice\n",
				cli->group);
		else if (prc)
			fprintf(stderr, "cohort: posting the digest of %s failed: %s\n", cli->group,
				cohort_strerror(prc));
		rc = prc == COHORT_OK || prc == COHORT_ERR_DUPLICATE || prc == COHORT_ERR_DENIED
			     ? EXIT_OK
			     : EXIT_RUNTIME;
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
	int rc = parse_format(cli, "export", &fmt);
	if (rc)
		return rc;
	rc = export_write(app->store, app->set, cli->group, fmt, stdout);
	if (rc) {
		fprintf(stderr, "cohort: export failed: %s\n", cohort_strerror(rc));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

static int cmd_console(struct app *app, const struct cli *cli)
{
	return console_session(app, cli);
}

static const struct subcommand subcommands[] = {
	{"run", STORE_CREATE, cmd_run, "run [-c FILE]",
	 "Runs every enabled platform (Discord, Matrix or both) and the daily digest until\n"
	 "SIGINT or SIGTERM. Each enabled platform needs its token (exit 2 without).\n"
	 "With no platform enabled it runs the console chat instead when there is no\n"
	 "configuration file at all (the quick start, piped or not) or stdin is a\n"
	 "terminal; a configuration file that enables nothing, with stdin not a\n"
	 "terminal (a service, a container), is an error (exit 2) saying what to enable.\n"
	 "SIGTERM/SIGINT: stop taking commands, finish the answers in flight (up to 5 s),\n"
	 "close the connections; a second signal exits at once. SIGHUP: reopen the log\n"
	 "file and reload the roadmap.\n"},
	{"console", STORE_CREATE, cmd_console, "console [-c FILE] [--as NAME] [--group NAME]",
	 "A local chat on stdin/stdout with the full command set and the real store. Each\n"
	 "line is a message from NAME (default $USER), who is the group's admin; a line\n"
	 "\"@bob /done Redis\" speaks as bob. The group id is console:NAME (default\n"
	 "console:local; --group console:NAME means the same group). Only that group's\n"
	 "digest is shown. Works piped, for scripts. Creates the store if missing.\n"},
	{"check-config", NO_STORE, cmd_check_config, "check-config [-c FILE]",
	 "Validates the configuration and the roadmap and prints every setting (secrets\n"
	 "hidden) and what would run. Exit 0 when valid, 2 with file:line when not (or\n"
	 "when store.path's folder does not exist). Warns, without failing, about a\n"
	 "platform enabled without its token, a token set without enabled = true, and\n"
	 "no platform enabled. Needs no token and contacts nothing.\n"},
	{"roadmap", NO_STORE, cmd_roadmap, "roadmap [-c FILE]",
	 "Prints the loaded roadmap as a tree, with each topic's id and aliases.\n"},
	{"register-commands", NO_STORE, cmd_register,
	 "register-commands [-c FILE] [--guild ID] [--clear]",
	 "Registers the Discord slash commands now (a bulk overwrite, safe to repeat;\n"
	 "they show at once): in every discord.guild_ids, else globally, and removes\n"
	 "them from the scope not in use (globally, or the servers not listed), so no\n"
	 "command shows twice. --guild ID: in that server only, nothing else touched.\n"
	 "--clear removes them everywhere (or from --guild ID). Needs discord.token.\n"},
	{"digest", STORE_EXISTING, cmd_digest, "digest [-c FILE] --group ID [--post]",
	 "Prints today's digest of group ID (console:local, discord:GUILD_ID,\n"
	 "matrix:!ROOM:server). A group the store does not know is an error (exit 2)\n"
	 "that lists the groups there are. --post sends it to the group's digest channel\n"
	 "now and counts it as today's digest (the scheduler will not post it again\n"
	 "today); refused (exit 2) when the group has no digest channel or turned it off.\n"
	 "Without --post it needs no token and contacts nothing.\n"},
	{"export", STORE_EXISTING, cmd_export, "export [-c FILE] [--group ID] --format csv|json",
	 "Writes one group, or all, to stdout. CSV: every progress record (group, member,\n"
	 "member_name, topic_id, topic, status, updated_at in ISO 8601 UTC, note) and an\n"
	 "end line, so a cut file is refused. JSON: a complete dump (settings, members,\n"
	 "records, the event log, digest records; never a secret) that import restores.\n"
	 "Needs no token; a store that does not exist is reported, never created.\n"},
	{"import", STORE_CREATE, cmd_import, "import [-c FILE] --format csv|json FILE",
	 "Restores what export wrote (FILE, or - for stdin) into an empty store: every\n"
	 "record is checked first, then all are written in one transaction. A store\n"
	 "that already holds progress is refused: import restores, it does not merge.\n"},
	{"backup", STORE_EXISTING, cmd_backup, "backup [-c FILE] [--force] PATH",
	 "Copies the store to PATH with SQLite's online backup: safe while cohort runs.\n"
	 "The copy is one self-contained file (mode 0600, no -wal or -shm), written under\n"
	 "a new temporary name beside PATH and checked (quick_check) before it is renamed;\n"
	 "a damaged store is refused (exit 1). An existing PATH is replaced only with\n"
	 "--force; the live store itself never (exit 2). Point store.path at the copy to\n"
	 "restore.\n"},
	{"migrate", NO_STORE, cmd_migrate, "migrate [-c FILE] --to URL",
	 "Copies the SQLite store at store.path into an empty PostgreSQL database\n"
	 "(URL: postgresql://...), exactly: a JSON export of both is identical. All is\n"
	 "written in one transaction; a database that holds progress already is refused\n"
	 "(exit 2). Then set store.url (or COHORT_STORE_URL) to the URL.\n"},
	{"status", STORE_EXISTING, cmd_status, "status [-c FILE]",
	 "Shows what the running cohort last reported (every 10 s): each platform's\n"
	 "connection state, last event, commands handled, reconnects, rate-limit waits\n"
	 "and REST errors. Exit 0 when it runs and every platform is connected, else 1\n"
	 "(a container health check). Needs no token; a missing store is reported with\n"
	 "the path looked at (exit 1), never created.\n"},
	{"help", NO_STORE, NULL, "help [COMMAND]", "Lists the commands, or explains one.\n"},
	{"version", NO_STORE, NULL, "version", "Prints the version.\n"},
};

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

static void print_usage(FILE *out)
{
	fputs("usage: cohort COMMAND [options]\n\ncommands:\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(out, "  %s\n", subcommands[i].synopsis);
	fputs("\n'cohort help COMMAND' or 'cohort COMMAND --help' explains one.\n"
	      "The configuration is -c FILE, else $COHORT_CONFIG, else ./cohort.toml when it\n"
	      "exists, else the built-in defaults. Exit codes: 0 success, 1 runtime failure,\n"
	      "2 usage or configuration error.\n",
	      out);
}

static void print_help(const struct subcommand *c)
{
	printf("usage: cohort %s\n\n%s", c->synopsis, c->help);
}

int main(int argc, char **argv)
{
	json_use_xmalloc();
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		if (argc >= 3 && strcmp(argv[1], "help") == 0) {
			const struct subcommand *c = find_subcommand(argv[2]);
			if (!c)
				return usage_error("unknown command '%s'", argv[2]);
			print_help(c);
			return EXIT_OK;
		}
		print_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		if (argc >= 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
			print_help(find_subcommand("version"));
			return EXIT_OK;
		}
		if (argc >= 3)
			return usage_error("version takes no arguments, not '%s'", argv[2]);
		printf("cohort %s\n", COHORT_VERSION);
		return EXIT_OK;
	}
	struct cli cli;
	int rc = parse_args(argc, argv, &cli);
	if (rc)
		return rc;
	const struct subcommand *c = find_subcommand(cli.command);
	if (!c || !c->run)
		return usage_error("unknown command '%s'", cli.command);
	if (cli.help) {
		print_help(c);
		return EXIT_OK;
	}
	/*
	 * The long-running commands take SIGTERM/SIGINT from the start, so a stop while
	 * the store opens or the platforms connect is a clean one (the flag is checked
	 * before anything waits); the others keep the default, ending at once.
	 */
	if (c->run == cmd_run || c->run == cmd_console)
		install_signals();
	struct app app;
	rc = app_init(&app, &cli, c->store);
	if (!rc)
		rc = c->run(&app, &cli);
	app_release(&app);
	return rc;
}
