/* Page tokens: base64url of a version byte, the 8-byte sort key and the first 8 bytes of
 * SHA-256(scope, key), so a token only works with the filter it was made for and a changed
 * key is noticed. */
#include "api/pagination.h"

#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_VERSION 0x51

int page_size_resolve(int32_t requested, int *out, sdo_error *err)
{
    if (requested < 0)
        return sdo_fail_field(err, "page_size", "page_size %d must not be negative (0 means %d)",
                              requested, PAGE_SIZE_DEFAULT);
    *out = requested == 0              ? PAGE_SIZE_DEFAULT
           : requested > PAGE_SIZE_MAX ? PAGE_SIZE_MAX
                                       : (int)requested;
    return 0;
}

static void pack(int64_t key, const char *scope, unsigned char raw[17])
{
    unsigned char digest[32];
    raw[0] = TOKEN_VERSION;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (unsigned char)((uint64_t)key >> (56 - 8 * i));
    size_t sl = strlen(scope);
    unsigned char *buf = sdo_malloc(sl + 8);
    memcpy(buf, scope, sl);
    memcpy(buf + sl, raw + 1, 8);
    sdo_sha256(buf, sl + 8, digest);
    free(buf);
    memcpy(raw + 9, digest, 8);
}

void page_token_encode(int64_t key, const char *scope, char *out, size_t outsz)
{
    unsigned char raw[17];
    pack(key, scope, raw);
    if (sdo_b64url_encode(raw, sizeof raw, out, outsz) < 0 && outsz)
        out[0] = 0;
}

int page_token_decode(const char *token, const char *scope, int64_t *key, sdo_error *err)
{
    *key = 0;
    if (!token[0])
        return 0;
    unsigned char raw[24], want[17];
    if (strlen(token) > PAGE_TOKEN_MAX || sdo_b64url_decode(token, raw, sizeof raw) != 17 ||
        raw[0] != TOKEN_VERSION)
        return sdo_fail_field(err, "page_token",
                              "page_token is not valid: pass the next_page_token of the previous "
                              "response unchanged");
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = (k << 8) | raw[1 + i];
    pack((int64_t)k, scope, want);
    if (memcmp(raw + 9, want + 9, 8) != 0)
        return sdo_fail_field(err, "page_token",
                              "page_token does not belong to this request: it was issued for a "
                              "different filter or altered; repeat the request with the same "
                              "filter or start without a page_token");
    if ((int64_t)k < 0)
        return sdo_fail_field(err, "page_token", "page_token is not valid");
    *key = (int64_t)k;
    return 0;
}

char *page_token_next(bool more, int64_t last, const char *scope)
{
    if (!more)
        return (char *)protobuf_c_empty_string;
    char tok[PAGE_TOKEN_MAX];
    page_token_encode(last, scope, tok, sizeof tok);
    return sdo_strdup(tok);
}
