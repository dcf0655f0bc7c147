/* libFuzzer target: the Markdown roadmap parser, then the resolver over what it built. */
#include "bot/roadmap.h"
#include "lib/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[COHORT_ERR_LEN];
	struct roadmap *rm = NULL;
	if (roadmap_parse((const char *)data, size, "fuzz.md", &rm, err) != COHORT_OK)
		return 0;
	/* Each topic resolves to itself by name, and every node's subtree is in range. */
	bool *in = calloc(roadmap_topic_count(rm) + 1, sizeof(bool));
	for (size_t i = 0; i < roadmap_node_count(rm); i++) {
		const struct rm_node *nd = roadmap_node(rm, i);
		if (nd->end <= i || nd->end > roadmap_node_count(rm))
			__builtin_trap();
		roadmap_subtree_topics(rm, i, in);
	}
	for (size_t i = 0; i < roadmap_topic_count(rm); i++) {
		struct rm_resolution res;
		roadmap_resolve(rm, roadmap_topic(rm, i)->name, &res);
		if (res.match != RM_EXACT || (size_t)res.index != i)
			__builtin_trap();
	}
	free(in);
	roadmap_free(rm);
	return 0;
}
