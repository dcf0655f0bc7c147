/* libFuzzer target: the TOML reader must accept or refuse any bytes, never crash. */
#include "lib/err.h"
#include "lib/toml.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[COHORT_ERR_LEN];
	struct toml_doc *doc = NULL;
	int rc = toml_parse((const char *)data, size, "fuzz.toml", &doc, err);
	if (rc == COHORT_OK) {
		/* Every string it hands out is NUL-free UTF-8 of its own length. */
		for (size_t i = 0; i < doc->ntables; i++)
			for (size_t j = 0; j < doc->tables[i].npairs; j++)
				if (doc->tables[i].pairs[j].value.type == TOML_STRING)
					(void)strlen(doc->tables[i].pairs[j].value.str);
		toml_free(doc);
	} else if (doc || !memchr(err, ':', strlen(err))) {
		__builtin_trap(); /* an error always says file:line and leaves no document */
	}
	return 0;
}
