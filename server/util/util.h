/* Small helpers shared by every layer: errors with a status, ids, time, encodings. */
#ifndef SDO_UTIL_H
#define SDO_UTIL_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes: the gRPC codes, so an error travels to the client unchanged. */
#define SDO_STATUS_MAP(X)                                                                          \
    X(OK, 0)                                                                                       \
    X(CANCELLED, 1)                                                                                \
    X(UNKNOWN, 2)                                                                                  \
    X(INVALID_ARGUMENT, 3)                                                                         \
    X(DEADLINE_EXCEEDED, 4)                                                                        \
    X(NOT_FOUND, 5)                                                                                \
    X(ALREADY_EXISTS, 6)                                                                           \
    X(PERMISSION_DENIED, 7)                                                                        \
    X(RESOURCE_EXHAUSTED, 8)                                                                       \
    X(FAILED_PRECONDITION, 9)                                                                      \
    X(ABORTED, 10)                                                                                 \
    X(OUT_OF_RANGE, 11)                                                                            \
    X(UNIMPLEMENTED, 12)                                                                           \
    X(INTERNAL, 13)                                                                                \
    X(UNAVAILABLE, 14)                                                                             \
    X(DATA_LOSS, 15)                                                                               \
    X(UNAUTHENTICATED, 16)

typedef enum {
#define X(name, num) SDO_##name = num,
    SDO_STATUS_MAP(X)
#undef X
} sdo_status;

/* Name of a status ("NOT_FOUND"); "UNKNOWN" for numbers outside the table. */
const char *sdo_status_name(int code);

/* An error that can reach a client: a status, a sentence, and optionally the request field
 * that was wrong and a machine-readable reason (e.g. "TENANT_ID_TAKEN"). */
typedef struct sdo_error {
    sdo_status code;
    char message[512];
    char field[64];
    char reason[48];
} sdo_error;

/* Fills *err (if not NULL) and returns -code, so callers write `return sdo_fail(...)`. */
int sdo_fail(sdo_error *err, sdo_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same with a va_list. */
int sdo_failv(sdo_error *err, sdo_status code, const char *fmt, va_list ap);
/* Same, naming the offending field (BadRequest field violation). */
int sdo_fail_field(sdo_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the reason code of an error already filled in. */
void sdo_error_reason(sdo_error *err, const char *reason);

/* Microseconds since the Unix epoch. */
int64_t sdo_now_us(void);
/* Monotonic microseconds. */
int64_t sdo_mono_us(void);

/* Fills out (37 bytes) with a random RFC 4122 version 4 UUID. Returns 0 or -1. */
int sdo_uuid4(char out[37]);
/* True if s is a canonical lower-case UUID. */
bool sdo_is_uuid(const char *s);

/* base64url without padding. Return the output length, or -1 if out is too small or the
 * input is not valid base64url. out is NUL-terminated on encode. */
int sdo_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outsz);
int sdo_b64url_decode(const char *in, unsigned char *out, size_t outsz);

/* SHA-256 of data into out[32]. */
void sdo_sha256(const void *data, size_t len, unsigned char out[32]);

/* Copies at most dstsz-1 bytes and terminates; returns strlen(src). */
size_t sdo_strlcpy(char *dst, const char *src, size_t dstsz);

/* Duplicates s; aborts on out-of-memory (the server cannot go on without memory). */
char *sdo_strdup(const char *s);
void *sdo_malloc(size_t n);
void *sdo_calloc(size_t n, size_t size);

#endif
