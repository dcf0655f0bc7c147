/*
 * libFuzzer target: a member's message through the command-line splitter,
 * the resolver and the message reader (several topics, notes), over the built-in roadmap.
 */
#include "bot/cmdline.h"
#include "bot/roadmap.h"
#include "lib/err.h"
#include "lib/util.h"

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
	struct rm_resolution res;
	roadmap_resolve(rm, rest, &res);
	if (res.ncandidates > ROADMAP_MAX_CANDIDATES ||
	    (res.match <= RM_FUZZY &&
	     (res.index < 0 || (size_t)res.index >= roadmap_topic_count(rm))))
		__builtin_trap();
	roadmap_resolve_section(rm, rest, &res);
	/* Several topics in one message: every part within bounds. */
	struct rm_part *parts;
	size_t n = roadmap_read_args(rm, rest, &parts);
	for (size_t i = 0; i < n; i++) {
		const struct rm_resolution *r = &parts[i].res;
		if (r->ncandidates > ROADMAP_MAX_CANDIDATES ||
		    r->nsections > ROADMAP_MAX_CANDIDATES ||
		    (r->match <= RM_FUZZY &&
		     (r->index < 0 || (size_t)r->index >= roadmap_topic_count(rm))) ||
		    (r->match == RM_SECTION &&
		     (r->index < 0 || (size_t)r->index >= roadmap_node_count(rm))))
			__builtin_trap();
	}
	roadmap_parts_free(parts, n);
	free(command);
	free(args);
	free(text);
	return 0;
}
