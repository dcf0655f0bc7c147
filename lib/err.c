#include "err.h"

const char *cohort_strerror(int code)
{
	switch ((enum cohort_err)code) {
	case COHORT_OK: return "success";
	case COHORT_ERR_USAGE: return "usage error";
	case COHORT_ERR_CONFIG: return "configuration error";
	case COHORT_ERR_PARSE: return "parse error";
	case COHORT_ERR_IO: return "i/o error";
	case COHORT_ERR_STORE: return "database error";
	case COHORT_ERR_NOT_FOUND: return "not found";
	case COHORT_ERR_DUPLICATE: return "already applied";
	case COHORT_ERR_UNCHANGED: return "nothing to change";
	case COHORT_ERR_TOO_LONG: return "input too long";
	case COHORT_ERR_DENIED: return "permission denied";
	case COHORT_ERR_PENDING: return "in progress";
	case COHORT_ERR_NETWORK: return "network error";
	case COHORT_ERR_AUTH: return "authentication failed";
	}
	return "unknown error";
}
