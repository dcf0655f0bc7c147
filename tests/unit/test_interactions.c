/* POST /interactions below the HTTP server: Ed25519 verification and the answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "adapters/discord/discord.h"
#include "adapters/discord/interactions.h"
#include "bot/config.h"
#include "bot/dispatch.h"
#include "bot_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A key pair made for the test, as Discord's application key. */
struct keys {
	EVP_PKEY *pair;
	char public_hex[65];
};

static void make_keys(struct keys *k)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	k->pair = NULL;
	assert_int_equal(EVP_PKEY_keygen_init(c), 1);
	assert_int_equal(EVP_PKEY_keygen(c, &k->pair), 1);
	EVP_PKEY_CTX_free(c);
	unsigned char raw[32];
	size_t n = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_public_key(k->pair, raw, &n), 1);
	for (size_t i = 0; i < 32; i++)
		snprintf(k->public_hex + 2 * i, 3, "%02x", raw[i]);
}

/* The hex signature of timestamp + body, as Discord sends it. */
static void sign(const struct keys *k, const char *ts, const char *body, char out[129])
{
	size_t tl = strlen(ts), bl = strlen(body);
	unsigned char *msg = xmalloc(tl + bl + 1), sig[64];
	memcpy(msg, ts, tl);
	memcpy(msg + tl, body, bl);
	size_t n = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, k->pair), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &n, msg, tl + bl), 1);
	EVP_MD_CTX_free(md);
	free(msg);
	for (size_t i = 0; i < 64; i++)
		snprintf(out + 2 * i, 3, "%02x", sig[i]);
}

/* Now and a second later as X-Signature-Timestamp values (set by main()). */
static char ts_now[24], ts_next[24];

/* What the endpoint answered. */
struct got {
	int calls, drops, status;
	char body[4096];
	void (*written)(void *ud, bool ok); /* kept: the test says when it is written */
	void *written_ud;
};

static void got_send(void *ctx, int status, const char *body, void (*written)(void *ud, bool ok),
		     void *ud)
{
	struct got *g = ctx;
	g->calls++;
	g->status = status;
	snprintf(g->body, sizeof(g->body), "%s", body);
	g->written = written;
	g->written_ud = ud;
}

static void got_drop(void *ctx)
{
	((struct got *)ctx)->drops++;
}

static void handle(struct ix *x, const char *sig, const char *ts, const char *body, struct got *g)
{
	memset(g, 0, sizeof(*g));
	struct ix_answer a = {got_send, got_drop, g};
	ix_handle(x, sig, ts, body, strlen(body), &a);
}

static void only_the_applications_signature_verifies(void **state)
{
	(void)state;
	struct keys k, other;
	make_keys(&k);
	make_keys(&other);
	struct ix *x = ix_new(k.public_hex, NULL);
	assert_non_null(x);
	const char *body = "{\"type\":1}", *ts = "1700000000";
	char sig[129], bad[129];
	sign(&k, ts, body, sig);
	assert_true(ix_verify(x, sig, ts, body, strlen(body)));
	/* The body, the timestamp, or the signer changed: no. */
	assert_false(ix_verify(x, sig, ts, "{\"type\":2}", 10));
	assert_false(ix_verify(x, sig, "1700000001", body, strlen(body)));
	sign(&other, ts, body, bad);
	assert_false(ix_verify(x, bad, ts, body, strlen(body)));
	/* Malformed or missing headers: no. */
	assert_false(ix_verify(x, NULL, ts, body, strlen(body)));
	assert_false(ix_verify(x, sig, NULL, body, strlen(body)));
	assert_false(ix_verify(x, sig, "", body, strlen(body)));
	assert_false(ix_verify(x, sig, "17e8", body, strlen(body)));
	char shorter[129];
	snprintf(shorter, sizeof(shorter), "%.126s", sig);
	assert_false(ix_verify(x, shorter, ts, body, strlen(body)));
	char nothex[129];
	memcpy(nothex, sig, sizeof(nothex));
	nothex[5] = 'z';
	assert_false(ix_verify(x, nothex, ts, body, strlen(body)));
	/* Upper-case hex is the same signature. */
	char upper[129];
	for (size_t i = 0; i < sizeof(upper); i++)
		upper[i] = (char)(sig[i] >= 'a' && sig[i] <= 'f' ? sig[i] - 32 : sig[i]);
	assert_true(ix_verify(x, upper, ts, body, strlen(body)));
	ix_free(x);
	assert_null(ix_new("abc", NULL));
	assert_null(ix_new("zz2bd2a5bd4f1d1c6e0cdbdc1d3e2a1f0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3", NULL));
	EVP_PKEY_free(k.pair);
	EVP_PKEY_free(other.pair);
}

static void pings_get_pong_and_bad_requests_401(void **state)
{
	(void)state;
	struct keys k;
	make_keys(&k);
	struct ix *x = ix_new(k.public_hex, NULL);
	struct got g;
	char sig[129];
	const char *ping = "{\"id\":\"1\",\"type\":1,\"application_id\":\"2\"}";
	sign(&k, ts_now, ping, sig);
	handle(x, sig, ts_now, ping, &g);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "{\"type\":1}");
	handle(x, NULL, ts_now, ping, &g);
	assert_int_equal(g.status, 401);
	handle(x, sig, NULL, ping, &g);
	assert_int_equal(g.status, 401);
	handle(x, sig, ts_next, ping, &g);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 401);
	assert_string_equal(g.body, "{\"error\":\"invalid request signature\"}");
	/* Signed, but not an interaction. */
	sign(&k, ts_now, "[1,2]", sig);
	handle(x, sig, ts_now, "[1,2]", &g);
	assert_int_equal(g.status, 400);
	/* Over the cap: refused before anything else. */
	char *big = xmalloc(IX_MAX_BODY + 2);
	memset(big, ' ', IX_MAX_BODY + 1);
	big[IX_MAX_BODY + 1] = '\0';
	handle(x, sig, ts_now, big, &g);
	assert_int_equal(g.status, 413);
	free(big);
	ix_free(x);
	EVP_PKEY_free(k.pair);
}

/* A signed request stamped more than 5 minutes from now is a replay (or a bad clock). */
static void stale_and_future_timestamps_are_401(void **state)
{
	(void)state;
	struct keys k;
	make_keys(&k);
	struct ix *x = ix_new(k.public_hex, NULL);
	const char *ping = "{\"id\":\"1\",\"type\":1,\"application_id\":\"2\"}";
	long long now = (long long)time(NULL);
	struct {
		long long offset;
		int status;
	} cases[] = {{-IX_MAX_SKEW_S - 5, 401}, {IX_MAX_SKEW_S + 5, 401},
		     {-IX_MAX_SKEW_S + 5, 200}, {IX_MAX_SKEW_S - 5, 200}, {0, 200}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char ts[24], sig[129];
		struct got g;
		snprintf(ts, sizeof(ts), "%lld", now + cases[i].offset);
		sign(&k, ts, ping, sig);
		handle(x, sig, ts, ping, &g);
		assert_int_equal(g.calls, 1);
		assert_int_equal(g.status, cases[i].status);
		if (cases[i].status == 401)
			assert_string_equal(g.body,
					    "{\"error\":\"the request's timestamp is too far from now\"}");
	}
	ix_free(x);
	EVP_PKEY_free(k.pair);
}

/* A command and an autocomplete through the real Discord adapter and bot. */
static void commands_are_answered_in_the_http_response(void **state)
{
	(void)state;
	struct bot_fixture *f = bot_fixture_new("UTC");
	assert_non_null(f);
	f->now = 1700000000000;
	struct config cfg;
	config_init(&cfg);
	cfg.discord_enabled = true;
	free(cfg.discord_api_url);
	cfg.discord_api_url = xstrdup("http://127.0.0.1:9"); /* never called */
	struct dispatch *d = dispatch_new(f->bot);
	struct adapter a;
	assert_int_equal(discord_new(&cfg, dispatch_door(d), &a), COHORT_OK);
	struct keys k;
	make_keys(&k);
	struct ix *x = ix_new(k.public_hex, &a);
	const char *done =
		"{\"id\":\"1001\",\"application_id\":\"77\",\"type\":2,\"token\":\"tok-1\","
		"\"guild_id\":\"500\",\"channel_id\":\"600\",\"member\":{\"permissions\":\"0\","
		"\"user\":{\"id\":\"42\",\"username\":\"ana\"}},\"data\":{\"name\":\"done\","
		"\"options\":[{\"name\":\"topic\",\"type\":3,\"value\":\"Kafka\"}]}}";
	char sig[129];
	struct got g;
	sign(&k, ts_now, done, sig);
	handle(x, sig, ts_now, done, &g);
	assert_int_equal(g.calls, 0); /* the bot answers on its thread */
	dispatch_drain(d);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 200);
	assert_non_null(strstr(g.body, "\"type\":4"));
	assert_non_null(strstr(g.body, "Kafka"));
	/* The same interaction again is refused, and nothing runs. */
	handle(x, sig, ts_now, done, &g);
	assert_int_equal(g.status, 400);
	assert_string_equal(g.body, "{\"error\":\"this interaction was answered already\"}");
	/* So it is in another process (an adapter that never saw it) on the same store: the
	 * store remembers the id, and the command does not run again. */
	struct adapter a2;
	assert_int_equal(discord_new(&cfg, dispatch_door(d), &a2), COHORT_OK);
	struct ix *x2 = ix_new(k.public_hex, &a2);
	handle(x2, sig, ts_now, done, &g);
	dispatch_drain(d);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 400);
	assert_string_equal(g.body, "{\"error\":\"this interaction was answered already\"}");
	ix_free(x2);
	a2.ops->free(a2.self);

	const char *ac = "{\"id\":\"1002\",\"application_id\":\"77\",\"type\":4,\"token\":\"tok-2\","
			 "\"guild_id\":\"500\",\"channel_id\":\"600\",\"member\":{\"user\":{"
			 "\"id\":\"42\"}},\"data\":{\"name\":\"done\",\"options\":[{\"name\":"
			 "\"topic\",\"type\":3,\"value\":\"kaf\",\"focused\":true}]}}";
	sign(&k, ts_now, ac, sig);
	handle(x, sig, ts_now, ac, &g);
	dispatch_drain(d);
	assert_int_equal(g.calls, 1);
	assert_non_null(strstr(g.body, "\"type\":8"));
	assert_non_null(strstr(g.body, "\"value\":\"Kafka\""));

	/* One waiting when the adapter goes: dropped, not answered, not leaked. */
	const char *late = "{\"id\":\"1003\",\"application_id\":\"77\",\"type\":2,\"token\":\"t3\","
			   "\"guild_id\":\"500\",\"channel_id\":\"600\",\"member\":{\"user\":{"
			   "\"id\":\"42\"}},\"data\":{\"name\":\"progress\"}}";
	sign(&k, ts_now, late, sig);
	handle(x, sig, ts_now, late, &g);
	dispatch_free(d);
	a.ops->free(a.self);
	assert_int_equal(g.calls, 0);
	assert_int_equal(g.drops, 1);
	ix_free(x);
	EVP_PKEY_free(k.pair);
	config_release(&cfg);
	assert_int_equal(bot_fixture_free(f), 0);
}

/* A listening socket on 127.0.0.1 standing in for Discord's REST API; its port in *port. */
static int listen_local(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	socklen_t n = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &n), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* True when a connection comes to fd within ms. */
static bool connection_within(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, ms) == 1;
}

/*
 * After a deferral over HTTP, the edit of @original is sent only once the type
 * 5 response is written: Discord refuses an edit of an interaction it has not
 * seen acknowledged. The command here finishes right after its deferral, while
 * the response is still on its way (the test holds it).
 */
static void an_edit_waits_for_its_deferral_to_be_written(void **state)
{
	(void)state;
	int port, lfd = listen_local(&port);
	struct bot_fixture *f = bot_fixture_new("UTC");
	assert_non_null(f);
	f->now = 1700000000000;
	struct config cfg;
	config_init(&cfg);
	cfg.discord_enabled = true;
	cfg.discord_gateway = false;
	cfg.discord_register_commands = false;
	free(cfg.discord_api_url);
	cfg.discord_api_url = xasprintf("http://127.0.0.1:%d", port);
	struct dispatch *d = dispatch_new(f->bot);
	struct adapter a;
	assert_int_equal(discord_new(&cfg, dispatch_door(d), &a), COHORT_OK);
	assert_int_equal(a.ops->start(a.self), COHORT_OK);
	struct keys k;
	make_keys(&k);
	struct ix *x = ix_new(k.public_hex, &a);
	const char *done =
		"{\"id\":\"1101\",\"application_id\":\"77\",\"type\":2,\"token\":\"tok-9\","
		"\"guild_id\":\"500\",\"channel_id\":\"600\",\"member\":{\"permissions\":\"0\","
		"\"user\":{\"id\":\"42\",\"username\":\"ana\"}},\"data\":{\"name\":\"done\","
		"\"options\":[{\"name\":\"topic\",\"type\":3,\"value\":\"Kafka\"}]}}";
	char sig[129];
	struct got g;
	sign(&k, ts_now, done, sig);
	handle(x, sig, ts_now, done, &g);
	/* The dispatcher (this thread) has not run it: the timer defers it. */
	for (int i = 0; i < 100 && !g.calls; i++) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "{\"type\":5}");
	assert_non_null(g.written);
	dispatch_drain(d); /* the command finishes: its answer must wait */
	assert_false(connection_within(lfd, 700));
	g.written(g.written_ud, true);
	assert_true(connection_within(lfd, 5000));
	int c = accept(lfd, NULL, NULL);
	assert_true(c >= 0);
	char req[4096] = "";
	size_t have = 0;
	while (have < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		req[have] = '\0';
	}
	assert_true(strncmp(req, "PATCH /webhooks/77/tok-9/messages/@original ", 44) == 0);
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	assert_true(write(c, ok, strlen(ok)) == (ssize_t)strlen(ok));
	a.ops->stop(a.self);
	assert_int_equal(a.ops->join(a.self), COHORT_OK);
	dispatch_drain(d);
	a.ops->free(a.self); /* the edit's outcome goes to the dispatcher: free it last */
	dispatch_drain(d);
	dispatch_free(d);
	close(c);
	close(lfd);
	ix_free(x);
	EVP_PKEY_free(k.pair);
	config_release(&cfg);
	assert_int_equal(bot_fixture_free(f), 0);
}

int main(void)
{
	snprintf(ts_now, sizeof(ts_now), "%lld", (long long)time(NULL));
	snprintf(ts_next, sizeof(ts_next), "%lld", (long long)time(NULL) + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(only_the_applications_signature_verifies),
		cmocka_unit_test(pings_get_pong_and_bad_requests_401),
		cmocka_unit_test(stale_and_future_timestamps_are_401),
		cmocka_unit_test(commands_are_answered_in_the_http_response),
		cmocka_unit_test(an_edit_waits_for_its_deferral_to_be_written),
	};
	return cmocka_run_group_tests_name("interactions", tests, NULL, NULL);
}
