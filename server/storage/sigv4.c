/* AWS Signature Version 4 (header-based) as S3 checks it: canonical request, string to
 * sign, derived signing key, Authorization header. Follows the AWS "Signature Calculations
 * for the Authorization Header" rules; the unit test replays AWS's published example. */
#include "storage/sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/buf.h"
#include "util/util.h"

#define SIGV4_MAX_HEADERS 64

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

static void hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n);
}

static char *take(sdo_buf *b)
{
    if (b->overflow) {
        sdo_buf_free(b);
        return NULL;
    }
    if (!b->data)
        return sdo_strdup("");
    return b->data;
}

char *sigv4_uri_encode(const char *s, int keep_slash)
{
    static const char d[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = sdo_malloc(n * 3 + 1), *p = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~' ||
            (*c == '/' && keep_slash)) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = d[*c >> 4];
            *p++ = d[*c & 15];
        }
    }
    *p = 0;
    return out;
}

typedef struct enc_pair {
    char *name;
    char *value;
} enc_pair;

static int cmp_pair(const void *a, const void *b)
{
    const enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *sigv4_canonical_query(const sigv4_pair *query, size_t n)
{
    sdo_buf b = {.limit = 1 << 20};
    enc_pair *e = n ? sdo_calloc(n, sizeof *e) : NULL;
    for (size_t i = 0; i < n; i++) {
        e[i].name = sigv4_uri_encode(query[i].name, 0);
        e[i].value = sigv4_uri_encode(query[i].value ? query[i].value : "", 0);
    }
    if (n)
        qsort(e, n, sizeof *e, cmp_pair);
    for (size_t i = 0; i < n; i++) {
        sdo_buf_printf(&b, "%s%s=%s", i ? "&" : "", e[i].name, e[i].value);
        free(e[i].name);
        free(e[i].value);
    }
    free(e);
    return take(&b);
}

typedef struct canon_header {
    char *name;  /* lower case */
    char *value; /* trimmed, runs of spaces collapsed */
} canon_header;

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const canon_header *)a)->name, ((const canon_header *)b)->name);
}

static char *canon_value(const char *v)
{
    char *out = sdo_malloc(strlen(v) + 1), *p = out;
    while (*v == ' ' || *v == '\t')
        v++;
    int space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space && p != out)
            *p++ = ' ';
        space = 0;
        *p++ = *v;
    }
    *p = 0;
    return out;
}

char *sigv4_canonical_request(const sigv4_request *r, char **signed_headers)
{
    if (signed_headers)
        *signed_headers = NULL;
    if (r->nheaders > SIGV4_MAX_HEADERS)
        return NULL;
    canon_header h[SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!r->headers[i].name[0]) {
            for (size_t j = 0; j < i; j++) {
                free(h[j].name);
                free(h[j].value);
            }
            return NULL;
        }
        h[i].name = sdo_strdup(r->headers[i].name);
        for (char *c = h[i].name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        h[i].value = canon_value(r->headers[i].value);
    }
    if (r->nheaders)
        qsort(h, r->nheaders, sizeof *h, cmp_header);

    char *query = sigv4_canonical_query(r->query, r->nquery);
    sdo_buf b = {.limit = 1 << 20}, sh = {.limit = 1 << 16};
    sdo_buf_printf(&b, "%s\n%s\n%s\n", r->method, r->path[0] ? r->path : "/", query ? query : "");
    free(query);
    for (size_t i = 0; i < r->nheaders; i++) {
        sdo_buf_printf(&b, "%s:%s\n", h[i].name, h[i].value);
        sdo_buf_printf(&sh, "%s%s", i ? ";" : "", h[i].name);
        free(h[i].name);
        free(h[i].value);
    }
    char *shs = take(&sh);
    sdo_buf_printf(&b, "\n%s\n%s", shs ? shs : "", r->payload_hash);
    char *out = take(&b);
    if (!out || !shs) {
        free(out);
        free(shs);
        return NULL;
    }
    if (signed_headers)
        *signed_headers = shs;
    else
        free(shs);
    return out;
}

char *sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                           const char *canonical_request)
{
    unsigned char digest[32];
    char digest_hex[65];
    sdo_sha256(canonical_request, strlen(canonical_request), digest);
    hex(digest, 32, digest_hex);
    sdo_buf b = {.limit = 1 << 16};
    sdo_buf_printf(&b, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date,
                   region, service, digest_hex);
    return take(&b);
}

void sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                       const char *service, unsigned char out[32])
{
    size_t n = strlen(secret_key) + 5;
    char *k = sdo_malloc(n);
    snprintf(k, n, "AWS4%s", secret_key);
    unsigned char a[32], b[32];
    hmac(k, strlen(k), date8, a);
    hmac(a, 32, region, b);
    hmac(b, 32, service, a);
    hmac(a, 32, "aws4_request", out);
    OPENSSL_cleanse(k, n);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    free(k);
}

char *sigv4_authorization(const sigv4_request *r)
{
    char *signed_headers = NULL;
    char *creq = sigv4_canonical_request(r, &signed_headers);
    if (!creq)
        return NULL;
    char *sts = sigv4_string_to_sign(r->amz_date, r->region, r->service, creq);
    free(creq);
    if (!sts) {
        free(signed_headers);
        return NULL;
    }
    char date8[9];
    snprintf(date8, sizeof date8, "%.8s", r->amz_date);
    unsigned char key[32], sig[32];
    char sig_hex[65];
    sigv4_signing_key(r->secret_key, date8, r->region, r->service, key);
    hmac(key, 32, sts, sig);
    OPENSSL_cleanse(key, sizeof key);
    hex(sig, 32, sig_hex);
    free(sts);
    sdo_buf b = {.limit = 1 << 16};
    sdo_buf_printf(&b,
                   "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request,SignedHeaders=%s,"
                   "Signature=%s",
                   r->access_key, date8, r->region, r->service, signed_headers, sig_hex);
    free(signed_headers);
    return take(&b);
}

void sigv4_amz_date(long long t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
