#include "attempts.h"

#include "adapters/json.h"
#include "bot/adapter.h"
#include "lib/err.h"
#include "lib/log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int64_t attempts_first(struct door *door, const char *state_key, const char *idem_key, int64_t now)
{
	char *value = NULL;
	if (door_state_get(door, state_key, &value) != COHORT_OK) {
		log_warn("digest", "cannot read %s; treating the digest as a first attempt",
			 state_key);
		return now;
	}
	cJSON *old = value ? cJSON_Parse(value) : NULL;
	free(value);
	cJSON *keep = cJSON_CreateObject();
	int64_t first = 0, at;
	const cJSON *e;
	cJSON_ArrayForEach(e, old)
	{
		if (!e->string || !json_int(e, 0, INT64_C(1) << 53, &at) ||
		    now - at > ATTEMPTS_KEEP_MS)
			continue; /* pruned */
		if (strcmp(e->string, idem_key) == 0)
			first = at;
		cJSON_AddNumberToObject(keep, e->string, (double)at);
	}
	cJSON_Delete(old);
	if (!first) {
		first = now;
		cJSON_AddNumberToObject(keep, idem_key, (double)now);
		char *text = cJSON_PrintUnformatted(keep);
		if (door_state_set(door, state_key, text))
			log_warn("digest", "cannot record the digest attempt in %s", state_key);
		cJSON_free(text);
	}
	cJSON_Delete(keep);
	return first;
}
