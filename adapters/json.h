/* Reading numbers from platform JSON without trusting them. */
#ifndef COHORT_JSON_H
#define COHORT_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * True when v is a number in [lo, hi] (checked before any conversion, so a
 * hostile 1e300 is refused, not undefined behaviour); *out gets it, rounded
 * toward zero.
 */
static inline bool json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

#endif
