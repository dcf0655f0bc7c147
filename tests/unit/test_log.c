#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs fn with stderr going to a file; returns what it wrote (static buffer). */
static const char *captured(void (*fn)(void))
{
	static char out[4096];
	char path[] = "/tmp/cohort-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return out;
}

static void log_with_secrets(void)
{
	log_add_secret("s3cr3t-token");
	log_add_secret("");
	log_warn("gw", "connecting with Bot %s to %s", "s3cr3t-token", "gateway");
	log_info("gw", "twice: s3cr3t-token/s3cr3t-token");
	log_debug("gw", "hidden at info level");
	log_error("gw", "forged\nline");
	log_clear_secrets();
}

static void secrets_never_reach_a_line(void **state)
{
	(void)state;
	log_set_level(LOG_INFO);
	const char *out = captured(log_with_secrets);
	assert_null(strstr(out, "s3cr3t"));
	assert_non_null(strstr(out, " warn  [gw] connecting with Bot [redacted] to gateway\n"));
	assert_non_null(strstr(out, " info  [gw] twice: [redacted]/[redacted]\n"));
	assert_null(strstr(out, "hidden at info level"));
	/* One event, one line: a newline in a message cannot forge another. */
	assert_non_null(strstr(out, " error [gw] forged line\n"));
}

static void levels_parse(void **state)
{
	(void)state;
	enum log_level l;
	assert_true(log_level_parse("debug", &l));
	assert_int_equal(l, LOG_DEBUG);
	assert_false(log_level_parse("verbose", &l));
	assert_string_equal(log_level_name(LOG_WARN), "warn");
}

static void log_json(void)
{
	log_add_secret("tok-123");
	log_set_format(LOG_JSON);
	log_warn("gateway", "a \"quoted\"\nline with tok-123 and \x01");
	log_set_format(LOG_TEXT);
	log_clear_secrets();
}

static void json_lines_are_one_object_each(void **state)
{
	(void)state;
	const char *out = captured(log_json);
	const char *want =
		"\"level\":\"warn\",\"module\":\"gateway\",\"msg\":\"a \\\"quoted\\\"\\nline "
		"with [redacted] and \\u0001\"}\n";
	assert_non_null(strstr(out, want));
	assert_int_equal(strncmp(out, "{\"time\":\"", 9), 0);
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
}

static void log_escapes(void)
{
	log_warn("matrix", "joining !x\x1b]0;pwned\x07:evil \x7f\xc2\x9b"
			   "2J \xff tab\there");
	log_set_format(LOG_JSON);
	log_warn("matrix", "!x\x1b[2J\x7f\xc2\x9b\xff\xe2\x80\xae");
	log_set_format(LOG_TEXT);
}

static void terminal_escapes_never_reach_a_line(void **state)
{
	(void)state;
	const char *out = captured(log_escapes);
	/* ESC, BEL, DEL, C1 CSI and a stray byte are shown, not sent to the terminal. */
	assert_non_null(strstr(
		out, "[matrix] joining !x\\x1b]0;pwned\\x07:evil \\x7f\\x9b2J \\xff tab\there\n"));
	assert_non_null(strstr(out, "\"msg\":\"!x\\u001b[2J\\u007f\\u009b\\ufffd\\u202e\"}\n"));
	for (const char *p = out; *p; p++)
		assert_true((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t');
	assert_null(strstr(out, "\x7f"));
	assert_null(strstr(out, "\xc2\x9b"));
}

static void a_log_file_is_appended_and_reopened(void **state)
{
	(void)state;
	char dir[] = "/tmp/cohort-logf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], moved[64], err[512], buf[512];
	snprintf(path, sizeof(path), "%s/c.log", dir);
	snprintf(moved, sizeof(moved), "%s/c.log.1", dir);
	assert_int_equal(log_open(path, err), 0);
	log_info("main", "first");
	assert_int_equal(rename(path, moved), 0);
	log_reopen();
	log_info("main", "second");
	log_close();
	FILE *f = fopen(moved, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_non_null(strstr(buf, "first"));
	assert_null(strstr(buf, "second"));
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_non_null(strstr(buf, "[main] second"));
	assert_int_equal(log_open("/nonexistent-dir/c.log", err), -1);
	assert_non_null(strstr(err, "/nonexistent-dir/c.log"));
	unlink(path);
	unlink(moved);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_lines_are_one_object_each),
		cmocka_unit_test(a_log_file_is_appended_and_reopened),
		cmocka_unit_test(secrets_never_reach_a_line),
		cmocka_unit_test(terminal_escapes_never_reach_a_line),
		cmocka_unit_test(levels_parse),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
