#include "cmdline.h"

#include "lib/text.h"
#include "lib/util.h"

#include <string.h>

#define MAX_COMMAND_WORD 32

bool cmdline_parse(const char *text, const char *const *prefixes, char **command, char **args)
{
	while (*text == ' ' || *text == '\t')
		text++;
	for (; *prefixes; prefixes++) {
		size_t n = strlen(*prefixes);
		if (n == 0 || strncmp(text, *prefixes, n) != 0)
			continue;
		const char *p = text + n;
		size_t len = 0;
		while ((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z') ||
		       (p[len] >= '0' && p[len] <= '9') || p[len] == '-' || p[len] == '_')
			len++;
		if (len == 0 || len > MAX_COMMAND_WORD ||
		    (p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != '\n'))
			continue;
		char *cmd = xstrndup(p, len);
		for (char *c = cmd; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		*command = cmd;
		*args = text_trim(xstrdup(p + len));
		return true;
	}
	return false;
}
