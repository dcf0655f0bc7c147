/*
 * libFuzzer target: one Discord gateway message through the gateway's opcode
 * handling and the adapter's event handling (interactions, autocomplete,
 * messages, READY), then the commands it made through the dispatcher.
 */
#include "adapters/discord/discord.h"
#include "fuzz_host.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct adapter a;
	struct fuzz_host *h = fuzz_host_get();
	if (!a.ops && discord_new(&h->cfg, dispatch_door(h->d), &a))
		abort();
	discord_feed(&a, (const char *)data, size);
	dispatch_drain(h->d);
	return 0;
}
