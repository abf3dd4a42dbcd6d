/* Rate limits: token buckets keyed by text (a principal, a client address, an account),
 * in a fixed table of buckets with striped locks, so memory stays bounded whatever the
 * number of keys (a key that collides with a busier one shares its bucket, which can only
 * make the limit stricter). Each server keeps its own buckets. */
#ifndef SDO_RATELIMIT_H
#define SDO_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit ratelimit;

/* A table of `slots` buckets (rounded up to a power of two). */
ratelimit *ratelimit_new(unsigned slots);
void ratelimit_free(ratelimit *rl);

/* Takes one token from the bucket of (kind, key), which refills at rate per second up to
 * burst. Returns true when allowed; otherwise false and *retry_ms tells when a token will be
 * there. now_us is a monotonic clock (tests pass their own). */
bool ratelimit_take(ratelimit *rl, const char *kind, const char *key, double rate, double burst,
                    int64_t now_us, int64_t *retry_ms);

/* Failure counting (sign-in): records one failure of (kind, key) inside a window of
 * window_s seconds, returning the failures in the current window. */
int ratelimit_fail(ratelimit *rl, const char *kind, const char *key, int window_s, int64_t now_us);
/* Failures of (kind, key) in the current window; *retry_ms until the window ends. */
int ratelimit_failures(ratelimit *rl, const char *kind, const char *key, int window_s,
                       int64_t now_us, int64_t *retry_ms);
/* Forgets the failures of (kind, key) (a successful sign-in). */
void ratelimit_clear(ratelimit *rl, const char *kind, const char *key);

#endif
