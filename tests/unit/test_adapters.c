/* The platform-independent pieces of the adapters: HTTP helpers and Matrix parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/attempts.h"
#include "adapters/console.h"
#include "adapters/http.h"
#include "adapters/idset.h"
#include "adapters/matrix/matrix.h"
#include "bot/bot.h"
#include "bot/dispatch.h"
#include "bot/reply.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/util.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void retry_after_comes_from_the_body_or_the_header(void **state)
{
	(void)state;
	assert_int_equal(http_retry_after_ms("{\"retry_after\": 0.25, \"global\": true}", -1), 250);
	assert_int_equal(http_retry_after_ms("{\"errcode\":\"M_LIMIT_EXCEEDED\",\"retry_after_ms\":"
					     "700}",
					     2),
			 700);
	assert_int_equal(http_retry_after_ms("not json", 3), 3000);
	assert_int_equal(http_retry_after_ms("", -1), -1);
	assert_int_equal(http_retry_after_ms("{\"retry_after\": 1e12}", -1), 3600 * 1000);
}

static void path_segments_are_escaped(void **state)
{
	(void)state;
	char *s = http_escape("!room:example.org/../x?y=1 z");
	assert_string_equal(s, "%21room%3Aexample.org%2F..%2Fx%3Fy%3D1%20z");
	free(s);
	char buf[HTTP_WHY_LEN];
	assert_string_equal(http_why(NULL, 502, buf), "status 502");
	assert_string_equal(http_why("timed out", 0, buf), "timed out");
}

static void reply_fallbacks_are_stripped(void **state)
{
	(void)state;
	assert_string_equal(mx_strip_fallback("!done Kafka"), "!done Kafka");
	assert_string_equal(mx_strip_fallback("> <@a:b> !done X\n> more\n\n!done Kafka"),
			    "!done Kafka");
	assert_string_equal(mx_strip_fallback("> only a quote"), "");
	assert_string_equal(mx_strip_fallback(">not a fallback"), ">not a fallback");
}

static void power_levels_parse_loosely(void **state)
{
	(void)state;
	const char *cases[] = {"50", "\"50\"", "50.0", "\"75.5\"", "-1"};
	const long want[] = {50, 50, 50, 75, -1};
	for (size_t i = 0; i < 5; i++) {
		cJSON *v = cJSON_Parse(cases[i]);
		long lv = 0;
		assert_true(mx_parse_level(v, &lv));
		assert_int_equal(lv, want[i]);
		cJSON_Delete(v);
	}
	const char *bad[] = {"\"fifty\"", "null", "true", "\"\"", "1e300", "[50]"};
	for (size_t i = 0; i < 6; i++) {
		cJSON *v = cJSON_Parse(bad[i]);
		long lv = 7;
		assert_false(mx_parse_level(v, &lv));
		cJSON_Delete(v);
	}
}

static void html_is_escaped_and_tables_are_preformatted(void **state)
{
	(void)state;
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_INFO, "<b>ana</b> & co");
	reply_line(&r, "%s", "a <script> line");
	reply_mono(&r, "%s", "1. ana  3");
	reply_mono(&r, "%s", "2. <ben> 2");
	reply_line(&r, "%s", "end");
	struct strbuf sb = STRBUF_INIT;
	mx_render_html(&r, &sb);
	assert_string_equal(sb_str(&sb),
			    "<b>&lt;b&gt;ana&lt;/b&gt; &amp; co</b><br>a &lt;script&gt; "
			    "line<pre><code>1. ana  3\n2. &lt;ben&gt; 2</code></pre>end");
	sb_release(&sb);
	reply_release(&r);
}

static void a_line_break_in_a_name_cannot_forge_a_line(void **state)
{
	(void)state;
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_SUCCESS, "%s finished Kafka", "ana\n<b>admin</b> says");
	reply_mono(&r, "%s", "1. eve\n2. mallory 99");
	struct strbuf sb = STRBUF_INIT;
	mx_render_html(&r, &sb);
	assert_string_equal(sb_str(&sb), "<b>ana\xef\xbf\xbd&lt;b&gt;admin&lt;/b&gt; says finished "
					 "Kafka</b><pre><code>1. eve\xef\xbf\xbd"
					 "2. mallory 99</code></pre>");
	sb_release(&sb);
	reply_release(&r);
}

/* The parsed content, after checking it is under max bytes. */
static cJSON *rendered(const struct reply *r, size_t max)
{
	char *text = mx_render_content(r, "$ev1", max);
	assert_true(strlen(text) <= max);
	cJSON *c = cJSON_Parse(text);
	assert_non_null(c);
	free(text);
	return c;
}

static void matrix_messages_stay_under_the_event_size_limit(void **state)
{
	(void)state;
	/* Three 30,000-character names (from a store older than name clipping). */
	size_t n = 30000;
	char *name = xmalloc(n + 1);
	memset(name, '&', n); /* escaped to "&amp;": five bytes each in HTML */
	name[n] = '\0';
	struct reply r;
	reply_init(&r);
	reply_title(&r, REPLY_INFO, "Leaderboard %s", name);
	for (int i = 0; i < 3; i++)
		reply_mono(&r, "#%d %s 3 pts", i + 1, name);
	cJSON *c = rendered(&r, MX_MAX_CONTENT);
	const char *body = cJSON_GetStringValue(cJSON_GetObjectItem(c, "body"));
	const char *html = cJSON_GetStringValue(cJSON_GetObjectItem(c, "formatted_body"));
	assert_non_null(strstr(body, "#3 &&&"));
	assert_non_null(strstr(html, "#3 &amp;&amp;"));
	assert_non_null(strstr(html, "&amp;\xe2\x80\xa6")); /* a clipped line ends in "…" */
	assert_non_null(cJSON_GetObjectItem(c, "m.mentions"));
	cJSON_Delete(c);
	reply_release(&r);

	/* Many lines: the last give way to a count. */
	reply_init(&r);
	reply_title(&r, REPLY_INFO, "Topics");
	for (int i = 0; i < 3000; i++)
		reply_line(&r, "topic number %d with a fairly long line of text after it", i);
	c = rendered(&r, MX_MAX_CONTENT);
	body = cJSON_GetStringValue(cJSON_GetObjectItem(c, "body"));
	html = cJSON_GetStringValue(cJSON_GetObjectItem(c, "formatted_body"));
	const char *more = strstr(body, "\xe2\x80\xa6(");
	assert_non_null(more);
	int shown = 0, left = 0;
	for (const char *p = body; (p = strstr(p, "topic number ")); p++)
		shown++;
	assert_int_equal(sscanf(more, "\xe2\x80\xa6(%d more)", &left), 1);
	assert_int_equal(shown + left, 3000);
	assert_true(shown > 100);
	char want[32];
	snprintf(want, sizeof(want), "\xe2\x80\xa6(%d more)", left);
	assert_non_null(strstr(html, want));
	cJSON_Delete(c);
	/* Small enough: all of it. */
	reply_release(&r);
	reply_init(&r);
	reply_title(&r, REPLY_INFO, "Short");
	reply_line(&r, "one");
	c = rendered(&r, MX_MAX_CONTENT);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "body")), "Short\n  one");
	cJSON_Delete(c);
	reply_release(&r);
	free(name);
}

static void replayed_ids_are_recognised_within_a_generation(void **state)
{
	(void)state;
	struct idset *s = idset_new();
	char id[32];
	for (int i = 0; i < 3 * IDSET_GENERATION; i++) {
		snprintf(id, sizeof(id), "%d", 1000000 + i);
		assert_false(idset_seen(s, id));
		assert_true(idset_seen(s, id)); /* at once */
		if (i >= IDSET_GENERATION) {
			/* Anything added within the last generation is still known. */
			snprintf(id, sizeof(id), "%d", 1000000 + i - IDSET_GENERATION + 1);
			assert_true(idset_seen(s, id));
		}
	}
	snprintf(id, sizeof(id), "%d", 1000000); /* long gone: memory stays bounded */
	assert_false(idset_seen(s, id));
	idset_free(s);
}

/* A signal that lands after the console looked at its stop flag, just before it waits. */
struct late_signal {
	volatile sig_atomic_t stop;
	int wake[2];
	int ticks;
};

static int64_t signal_before_the_wait(void *ud)
{
	struct late_signal *s = ud;
	if (s->ticks++ == 0) {
		s->stop = 1;
		assert_int_equal(write(s->wake[1], "x", 1), 1);
	}
	return -1; /* nothing due: wait for input as long as the console likes */
}

static void a_signal_just_before_the_wait_still_stops_the_console(void **state)
{
	(void)state;
	struct late_signal s = {0};
	int in[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(s.wake), 0);
	struct console_opts o = {
		.member = "ana",
		.group = "local",
		.in = in[0],
		.out = stdout,
		.stop = &s.stop,
		.wake = s.wake[0],
		.tick = signal_before_the_wait,
		.tick_ud = &s,
	};
	struct console *c = console_new(NULL, &o);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(console_run(c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 1.0); /* without the wake-up it waits 60 s */
	assert_int_equal(s.ticks, 1);
	console_free(c);
	close(in[0]);
	close(in[1]);
	close(s.wake[0]);
	close(s.wake[1]);
}

/* The first number a new process draws, read from a child. */
static double first_draw_of_a_new_process(void)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		double x = random_unit();
		_exit(write(fds[1], &x, sizeof(x)) == sizeof(x) ? 0 : 1);
	}
	double x = -1;
	assert_int_equal(read(fds[0], &x, sizeof(x)), sizeof(x));
	waitpid(pid, NULL, 0);
	close(fds[0]);
	close(fds[1]);
	return x;
}

static void jitter_differs_between_processes_and_repeats_when_seeded(void **state)
{
	(void)state;
	/* rand() unseeded gave every process the same "random" backoff. */
	double a = first_draw_of_a_new_process(), b = first_draw_of_a_new_process();
	double c = first_draw_of_a_new_process();
	assert_true(a != b || b != c);
	random_seed(42);
	double seq[100];
	double sum = 0;
	for (int i = 0; i < 100; i++) {
		seq[i] = random_unit();
		assert_true(seq[i] >= 0.0 && seq[i] < 1.0);
		sum += seq[i];
	}
	assert_true(sum > 35 && sum < 65); /* about 50: not stuck at an end */
	random_seed(42);
	for (int i = 0; i < 100; i++)
		assert_true(random_unit() == seq[i]);
}

static void digest_attempts_are_kept_then_forgotten(void **state)
{
	(void)state;
	char dir[] = "/tmp/cohort-attempts-XXXXXX", path[64], err[COHORT_ERR_LEN];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	struct store *st;
	struct roadmap *rm;
	struct bot *b;
	static const char md[] = "- [ ] Kafka\n";
	assert_int_equal(store_open(path, false, &st, err), COHORT_OK);
	assert_int_equal(roadmap_parse(md, strlen(md), "t.md", &rm, err), COHORT_OK);
	struct bot_opts o = {st, rm, "18:00", "UTC", NULL, NULL, NULL};
	assert_int_equal(bot_new(&o, &b), COHORT_OK);
	struct dispatch *d = dispatch_new(b);
	struct door *door = dispatch_door(d);
	const int64_t t0 = INT64_C(1796000000000), day = INT64_C(86400000);
	assert_true(attempts_first(door, "x.attempts", "k1", t0) == t0);        /* the first */
	assert_true(attempts_first(door, "x.attempts", "k1", t0 + 9000) == t0); /* a re-send */
	assert_true(attempts_first(door, "x.attempts", "k2", t0 + day) == t0 + day);
	/* Older than ATTEMPTS_KEEP_MS: forgotten, so the next one is a first attempt. */
	int64_t later = t0 + ATTEMPTS_KEEP_MS + day + 1;
	assert_true(attempts_first(door, "x.attempts", "k1", later) == later);
	char *kept = NULL;
	assert_int_equal(bot_state_get(b, "x.attempts", &kept), COHORT_OK);
	assert_non_null(strstr(kept, "\"k1\""));
	assert_null(strstr(kept, "\"k2\"")); /* pruned */
	free(kept);
	dispatch_free(d);
	bot_free(b);
	roadmap_free(rm);
	store_free(st);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void cjson_out_of_memory_aborts_with_a_message(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip(); /* the address limit below would stop AddressSanitizer's own allocator */
#else
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		size_t n = 256u << 20;
		char *big = malloc(n);
		if (!big)
			_exit(3);
		memset(big, 'x', n - 1);
		big[n - 1] = '\0';
		struct rlimit rl = {(rlim_t)n + (128u << 20), (rlim_t)n + (128u << 20)};
		setrlimit(RLIMIT_AS, &rl);
		cJSON *s = cJSON_CreateString(big); /* a copy of 256 MiB does not fit */
		_exit(s ? 4 : 5);                   /* 5: cJSON returned NULL unnoticed */
	}
	close(fds[1]);
	int status = 0;
	waitpid(pid, &status, 0);
	char out[256] = "";
	ssize_t got = read(fds[0], out, sizeof(out) - 1);
	out[got > 0 ? got : 0] = '\0';
	close(fds[0]);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(out, "out of memory"));
#endif
}

/* A one-shot server on 127.0.0.1 that answers every connection with a 401 (a child). */
static pid_t serve_401(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;) {
			int c = accept(fd, NULL, NULL);
			if (c < 0)
				_exit(0);
			char buf[4096];
			ssize_t got = read(c, buf, sizeof(buf)); /* the request (small, one read) */
			(void)got;
			static const char answer[] =
				"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n"
				"Connection: close\r\n\r\n{}";
			ssize_t put = write(c, answer, sizeof(answer) - 1);
			(void)put;
			close(c);
		}
	}
	close(fd);
	return pid;
}

static void a_request_after_a_401_is_refused_and_released_cleanly(void **state)
{
	(void)state;
	int port;
	pid_t pid = serve_401(&port);
	const char *headers[] = {"Authorization: Bearer revoked"};
	struct http_client *c = http_new("test", headers, 1);
	char *url = xasprintf("http://127.0.0.1:%d/x", port);
	struct http_response r;
	assert_true(http_fetch(c, "GET", url, NULL, 5000, NULL, &r));
	assert_int_equal(r.status, 401);
	http_response_release(&r);
	assert_true(http_unauthorized(c));
	/* Never sent with the rejected credentials: a 401 at once, released like any other. */
	assert_true(http_fetch(c, "GET", url, NULL, 5000, NULL, &r));
	assert_int_equal(r.status, 401);
	assert_string_equal(r.body, "");
	http_response_release(&r); /* freed a string literal before: a crash */
	assert_int_equal(http_get_stats(c).requests, 1);
	free(url);
	http_free(c, 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	json_use_xmalloc();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_request_after_a_401_is_refused_and_released_cleanly),
		cmocka_unit_test(retry_after_comes_from_the_body_or_the_header),
		cmocka_unit_test(path_segments_are_escaped),
		cmocka_unit_test(reply_fallbacks_are_stripped),
		cmocka_unit_test(power_levels_parse_loosely),
		cmocka_unit_test(html_is_escaped_and_tables_are_preformatted),
		cmocka_unit_test(a_line_break_in_a_name_cannot_forge_a_line),
		cmocka_unit_test(matrix_messages_stay_under_the_event_size_limit),
		cmocka_unit_test(replayed_ids_are_recognised_within_a_generation),
		cmocka_unit_test(a_signal_just_before_the_wait_still_stops_the_console),
		cmocka_unit_test(jitter_differs_between_processes_and_repeats_when_seeded),
		cmocka_unit_test(digest_attempts_are_kept_then_forgotten),
		cmocka_unit_test(cjson_out_of_memory_aborts_with_a_message),
	};
	return cmocka_run_group_tests_name("adapters", tests, NULL, NULL);
}
