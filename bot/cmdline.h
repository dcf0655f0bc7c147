/* Splitting a text message into a command and its arguments. */
#ifndef COHORT_CMDLINE_H
#define COHORT_CMDLINE_H

#include <stdbool.h>

/*
 * When text starts with one of the prefixes (NULL-terminated list, e.g. "/"
 * and "!") followed by a command word, sets *command (lowercased) and *args
 * (trimmed, "" when none) to new strings and returns true. Text that is not
 * a command returns false and sets nothing.
 */
bool cmdline_parse(const char *text, const char *const *prefixes, char **command, char **args);

#endif
