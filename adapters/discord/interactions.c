#include "interactions.h"

#include "adapters/json.h"
#include "adapters/web/web.h"
#include "discord.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define TAG "interactions"
#define KEY_LEN 32
#define SIG_LEN 64
/* A timestamp is Unix seconds: digits only, and not many of them. */
#define MAX_TIMESTAMP 20

enum { IX_PING = 1 };

struct ix {
	EVP_PKEY *key;
	struct adapter *discord;
};

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes exactly 2*n hex digits (the whole of hex) into out; false otherwise. */
static bool unhex(const char *hex, unsigned char *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

struct ix *ix_new(const char *public_key_hex, struct adapter *discord)
{
	unsigned char raw[KEY_LEN];
	if (!unhex(public_key_hex, raw, KEY_LEN))
		return NULL;
	EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, KEY_LEN);
	if (!key)
		return NULL;
	struct ix *x = xcalloc(1, sizeof(*x));
	x->key = key;
	x->discord = discord;
	return x;
}

void ix_free(struct ix *x)
{
	if (!x)
		return;
	EVP_PKEY_free(x->key);
	free(x);
}

bool ix_verify(const struct ix *x, const char *signature, const char *timestamp,
	       const char *body, size_t len)
{
	unsigned char sig[SIG_LEN];
	size_t tlen = timestamp ? strlen(timestamp) : 0;
	if (!unhex(signature, sig, SIG_LEN) || tlen == 0 || tlen > MAX_TIMESTAMP ||
	    strspn(timestamp, "0123456789") != tlen || len > IX_MAX_BODY)
		return false;
	/* Ed25519 signs the message in one piece: timestamp + body. */
	unsigned char *msg = xmalloc(tlen + len + 1);
	memcpy(msg, timestamp, tlen);
	if (len)
		memcpy(msg + tlen, body, len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, x->key) == 1 &&
		  EVP_DigestVerify(md, sig, SIG_LEN, msg, tlen + len) == 1;
	EVP_MD_CTX_free(md);
	free(msg);
	return ok;
}

static void say(const struct ix_answer *ans, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	char *text = cJSON_PrintUnformatted(o);
	ans->send(ans->ctx, status, text, NULL, NULL);
	cJSON_free(text);
	cJSON_Delete(o);
}

/* The HTTP answer of an interaction the Discord adapter took: its status and JSON. */
static void relay_send(void *ctx, int status, const char *json,
		       void (*written)(void *ud, bool ok), void *ud)
{
	struct ix_answer *ans = ctx;
	ans->send(ans->ctx, status, json, written, ud);
	free(ans);
}

static void relay_drop(void *ctx)
{
	struct ix_answer *ans = ctx;
	if (ans->drop)
		ans->drop(ans->ctx);
	free(ans);
}

void ix_handle(struct ix *x, const char *signature, const char *timestamp, const char *body,
	       size_t len, const struct ix_answer *ans)
{
	if (len > IX_MAX_BODY) {
		say(ans, 413, "the body is over the size limit");
		return;
	}
	if (!signature || !timestamp) {
		log_info(TAG, "refused a request without %s (401)",
			 !signature ? "X-Signature-Ed25519" : "X-Signature-Timestamp");
		say(ans, 401, "missing signature headers");
		return;
	}
	if (!ix_verify(x, signature, timestamp, body, len)) {
		log_info(TAG, "refused a request whose signature does not verify (401)");
		say(ans, 401, "invalid request signature");
		return;
	}
	/* Verified, so digits only and at most MAX_TIMESTAMP of them. */
	long long ts = strtoll(timestamp, NULL, 10), now = clock_real_ms() / 1000;
	if (ts < now - IX_MAX_SKEW_S || ts > now + IX_MAX_SKEW_S) {
		log_info(TAG,
			 "refused a signed request whose X-Signature-Timestamp is %lld s from now, "
			 "over %d (401: a replay, or this machine's clock is off)",
			 ts - now, IX_MAX_SKEW_S);
		say(ans, 401, "the request's timestamp is too far from now");
		return;
	}
	cJSON *ix = cJSON_ParseWithLength(body, len);
	int64_t type = 0;
	if (!cJSON_IsObject(ix) ||
	    !json_int(cJSON_GetObjectItemCaseSensitive(ix, "type"), 0, 255, &type)) {
		say(ans, 400, "the body is not an interaction");
		goto out;
	}
	if (type == IX_PING) {
		ans->send(ans->ctx, 200, "{\"type\":1}", NULL, NULL);
		goto out;
	}
	if (!x->discord) {
		say(ans, 400, "this endpoint answers PINGs only");
		goto out;
	}
	struct ix_answer *relay = xmalloc(sizeof(*relay));
	*relay = *ans;
	struct dc_responder resp = {relay_send, relay_drop, relay};
	int rc = discord_interaction(x->discord, ix, &resp);
	if (rc) {
		free(relay);
		say(ans, 400,
		    rc == COHORT_ERR_DUPLICATE ? "this interaction was answered already"
					       : "not an interaction cohort takes");
	}
out:
	cJSON_Delete(ix);
}

/* ---- the HTTP server's route ---- */

static void web_send(void *ctx, int status, const char *body,
		     void (*written)(void *ud, bool ok), void *ud)
{
	struct web_response res;
	web_response_init(&res);
	res.status = status;
	res.content_type = "application/json";
	sb_adds(&res.body, body);
	web_answer_then(ctx, &res, written, ud);
	web_response_release(&res);
}

/* No answer will come: the server answers the call itself (503 after its timeout, or
 * nothing once it is stopping) and frees it. */
static void web_drop(void *ctx)
{
	(void)ctx;
}

static enum web_result route(void *ud, struct web_call *call, const struct web_request *req,
			     struct web_response *res)
{
	(void)res;
	struct ix_answer ans = {web_send, web_drop, call};
	ix_handle(ud, web_header(call, "x-signature-ed25519"),
		  web_header(call, "x-signature-timestamp"), req->body, req->body_len, &ans);
	return WEB_LATER;
}

void ix_route(struct ix *x, struct web_route *out)
{
	static const char *const headers[] = {"x-signature-ed25519", "x-signature-timestamp",
					      NULL};
	memset(out, 0, sizeof(*out));
	out->method = "POST";
	out->path = "/interactions";
	out->fn = route;
	out->ud = x;
	out->max_body = IX_MAX_BODY;
	out->headers = headers;
}
