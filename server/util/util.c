/* Small helpers shared by every layer: errors with a status, ids, time, encodings. */
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *sdo_status_name(int code)
{
    switch (code) {
#define X(name, num)                                                                               \
    case num:                                                                                      \
        return #name;
        SDO_STATUS_MAP(X)
#undef X
    }
    return "UNKNOWN";
}

int sdo_failv(sdo_error *err, sdo_status code, const char *fmt, va_list ap)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return -(int)code;
}

int sdo_fail(sdo_error *err, sdo_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sdo_failv(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

int sdo_fail_field(sdo_error *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sdo_failv(err, SDO_INVALID_ARGUMENT, fmt, ap);
    va_end(ap);
    if (err)
        sdo_strlcpy(err->field, field, sizeof err->field);
    return rc;
}

void sdo_error_reason(sdo_error *err, const char *reason)
{
    if (err)
        sdo_strlcpy(err->reason, reason, sizeof err->reason);
}

int64_t sdo_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sdo_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int sdo_uuid4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

bool sdo_is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sdo_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
    size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (need + 1 > outsz)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[j++] = b64url[(v >> 18) & 63];
        out[j++] = b64url[(v >> 12) & 63];
        if (i + 1 < len)
            out[j++] = b64url[(v >> 6) & 63];
        if (i + 2 < len)
            out[j++] = b64url[v & 63];
    }
    out[j] = 0;
    return (int)j;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int sdo_b64url_decode(const char *in, unsigned char *out, size_t outsz)
{
    size_t len = strlen(in);
    if (len % 4 == 1)
        return -1;
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (j >= outsz)
                return -1;
            out[j++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero, so that each byte string has one encoding. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (int)j;
}

void sdo_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

size_t sdo_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t n = strlen(src);
    if (dstsz) {
        size_t c = n < dstsz - 1 ? n : dstsz - 1;
        memcpy(dst, src, c);
        dst[c] = 0;
    }
    return n;
}

void *sdo_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("saasodoo-server: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *sdo_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("saasodoo-server: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *sdo_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sdo_malloc(n);
    memcpy(p, s, n);
    return p;
}
