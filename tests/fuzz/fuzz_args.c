/*
 * libFuzzer target: a member's message through the command-line splitter,
 * the topic/note splitter and the resolver, over the built-in roadmap.
 */
#include "bot/cmdline.h"
#include "bot/err.h"
#include "bot/roadmap.h"
#include "bot/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct roadmap *rm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[COHORT_ERR_LEN];
	if (!rm && roadmap_load_default(&rm, err) != COHORT_OK)
		__builtin_trap();
	char *text = xstrndup((const char *)data, size); /* stops at a NUL, as C strings do */
	static const char *const prefixes[] = {"/", "!", NULL};
	char *command = NULL, *args = NULL;
	const char *rest = text;
	if (cmdline_parse(text, prefixes, &command, &args))
		rest = args;
	char *topic, *note;
	roadmap_split_args(rm, rest, &topic, &note);
	struct rm_resolution res;
	roadmap_resolve(rm, topic, &res);
	if (res.ncandidates > ROADMAP_MAX_CANDIDATES ||
	    (res.match <= RM_FUZZY &&
	     (res.index < 0 || (size_t)res.index >= roadmap_topic_count(rm))))
		__builtin_trap();
	roadmap_resolve_section(rm, topic, &res);
	free(topic);
	free(note);
	free(command);
	free(args);
	free(text);
	return 0;
}
