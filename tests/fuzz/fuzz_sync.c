/*
 * libFuzzer target: one Matrix /sync answer through the adapter (invites,
 * room state, power levels, messages, reply fallbacks, encryption), then the
 * commands it made through the dispatcher.
 */
#include "adapters/matrix/matrix.h"
#include "fuzz_host.h"
#include "lib/util.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct adapter a;
	struct fuzz_host *h = fuzz_host_get();
	if (!a.ops && matrix_new(&h->cfg, dispatch_door(h->d), &a))
		abort();
	char *body = xstrndup((const char *)data, size);
	matrix_feed_sync(&a, body);
	free(body);
	dispatch_drain(h->d);
	return 0;
}
