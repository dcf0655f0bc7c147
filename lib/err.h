/* Error codes shared by every cohort module. 0 is success. */
#ifndef COHORT_ERR_H
#define COHORT_ERR_H

/* Size of the caller-supplied buffer that receives an error's details. */
#define COHORT_ERR_LEN 512

enum cohort_err {
	COHORT_OK = 0,
	COHORT_ERR_USAGE,     /* a command line or command argument is wrong */
	COHORT_ERR_CONFIG,    /* the configuration file is invalid */
	COHORT_ERR_PARSE,     /* a file or payload could not be parsed */
	COHORT_ERR_IO,        /* a file could not be read or written */
	COHORT_ERR_STORE,     /* the database failed */
	COHORT_ERR_NOT_FOUND, /* the thing asked for does not exist */
	COHORT_ERR_DUPLICATE, /* this source event was already applied */
	COHORT_ERR_UNCHANGED, /* the change asked for is already in place */
	COHORT_ERR_TOO_LONG,  /* an input is over its size limit */
	COHORT_ERR_DENIED,    /* the member may not do this */
	COHORT_ERR_PENDING,   /* accepted; the outcome is reported later */
	COHORT_ERR_NETWORK,   /* a platform could not be reached or refused the request */
	COHORT_ERR_AUTH,      /* a platform rejected the credentials */
};

/* A short lowercase description of code; never NULL. */
const char *cohort_strerror(int code);

#endif
