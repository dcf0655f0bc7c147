/*
 * What the adapter fuzzers share: a bot over a fresh store in a temporary
 * folder, a dispatcher whose jobs run after each input, and the log sent to
 * /dev/null (the adapters' REST calls go nowhere and fail quietly).
 */
#ifndef COHORT_FUZZ_HOST_H
#define COHORT_FUZZ_HOST_H

#include "bot/bot.h"
#include "bot/config.h"
#include "bot/dispatch.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>

struct fuzz_host {
	struct config cfg;
	struct roadmap *rm;
	struct store *st;
	struct bot *bot;
	struct dispatch *d;
	char dir[32]; /* the store's temporary folder */
};

static inline struct fuzz_host *fuzz_host_get(void)
{
	static struct fuzz_host h;
	static int ready;
	if (ready)
		return &h;
	char err[COHORT_ERR_LEN], path[64];
	json_use_xmalloc();
	snprintf(h.dir, sizeof(h.dir), "/tmp/cohort-fuzz-XXXXXX");
	if (!mkdtemp(h.dir))
		abort();
	snprintf(path, sizeof(path), "%s/f.db", h.dir);
	config_init(&h.cfg);
	free(h.cfg.discord_token);
	h.cfg.discord_token = xstrdup("fuzz-token");
	free(h.cfg.discord_api_url);
	h.cfg.discord_api_url = xstrdup("http://127.0.0.1:9/api/v10"); /* refused at once */
	free(h.cfg.matrix_homeserver);
	h.cfg.matrix_homeserver = xstrdup("http://127.0.0.1:9");
	if (log_open("/dev/null", err) || roadmap_load_default(&h.rm, err) ||
	    store_open(path, false, &h.st, err))
		abort();
	struct bot_opts o = {h.st, h.rm, "18:00", "UTC", NULL, NULL, NULL};
	if (bot_new(&o, &h.bot) || !(h.d = dispatch_new(h.bot)))
		abort();
	ready = 1;
	return &h;
}

#endif
