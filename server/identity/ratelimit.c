/* Token buckets and failure windows in a bounded table: each key hashes to a group of four
 * slots; a key not in its group takes the slot used least recently. */
#include "identity/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define GROUP 4
#define LOCKS 64

typedef struct slot {
    uint64_t key; /* 0: free */
    double tokens;
    int64_t last_us;
    int fails;
    int64_t window_start_us;
} slot;

struct ratelimit {
    slot *slots;
    unsigned mask; /* number of groups - 1 */
    pthread_mutex_t locks[LOCKS];
};

static uint64_t hash2(const char *kind, const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = kind; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ? h : 1;
}

ratelimit *ratelimit_new(unsigned slots)
{
    unsigned groups = 1;
    while (groups * GROUP < slots)
        groups <<= 1;
    ratelimit *rl = sdo_calloc(1, sizeof *rl);
    rl->slots = sdo_calloc((size_t)groups * GROUP, sizeof *rl->slots);
    rl->mask = groups - 1;
    for (int i = 0; i < LOCKS; i++)
        pthread_mutex_init(&rl->locks[i], NULL);
    return rl;
}

void ratelimit_free(ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < LOCKS; i++)
        pthread_mutex_destroy(&rl->locks[i]);
    free(rl->slots);
    free(rl);
}

/* Finds or claims the slot of h, with its group's lock held; *fresh when claimed. */
static slot *find(ratelimit *rl, uint64_t h, pthread_mutex_t **lock, bool *fresh)
{
    unsigned g = (unsigned)(h >> 7) & rl->mask;
    *lock = &rl->locks[g % LOCKS];
    pthread_mutex_lock(*lock);
    slot *grp = &rl->slots[(size_t)g * GROUP], *victim = &grp[0];
    for (int i = 0; i < GROUP; i++) {
        if (grp[i].key == h) {
            *fresh = false;
            return &grp[i];
        }
        if (grp[i].last_us < victim->last_us)
            victim = &grp[i];
    }
    memset(victim, 0, sizeof *victim);
    victim->key = h;
    *fresh = true;
    return victim;
}

bool ratelimit_take(ratelimit *rl, const char *kind, const char *key, double rate, double burst,
                    int64_t now_us, int64_t *retry_ms)
{
    pthread_mutex_t *lock;
    bool fresh;
    slot *s = find(rl, hash2(kind, key), &lock, &fresh);
    if (fresh) {
        s->tokens = burst;
    } else if (now_us > s->last_us) {
        s->tokens += (double)(now_us - s->last_us) / 1e6 * rate;
        if (s->tokens > burst)
            s->tokens = burst;
    }
    s->last_us = now_us > s->last_us ? now_us : s->last_us;
    bool ok = s->tokens >= 1.0;
    if (ok) {
        s->tokens -= 1.0;
        *retry_ms = 0;
    } else {
        double wait = (1.0 - s->tokens) / rate * 1000.0;
        *retry_ms = (int64_t)wait + 1;
    }
    pthread_mutex_unlock(lock);
    return ok;
}

static void window_roll(slot *s, int window_s, int64_t now_us)
{
    if (now_us - s->window_start_us >= (int64_t)window_s * 1000000) {
        s->window_start_us = now_us;
        s->fails = 0;
    }
}

int ratelimit_fail(ratelimit *rl, const char *kind, const char *key, int window_s, int64_t now_us)
{
    pthread_mutex_t *lock;
    bool fresh;
    slot *s = find(rl, hash2(kind, key), &lock, &fresh);
    if (fresh)
        s->window_start_us = now_us;
    window_roll(s, window_s, now_us);
    s->fails++;
    s->last_us = now_us;
    int n = s->fails;
    pthread_mutex_unlock(lock);
    return n;
}

int ratelimit_failures(ratelimit *rl, const char *kind, const char *key, int window_s,
                       int64_t now_us, int64_t *retry_ms)
{
    uint64_t h = hash2(kind, key);
    unsigned g = (unsigned)(h >> 7) & rl->mask;
    pthread_mutex_t *lock = &rl->locks[g % LOCKS];
    pthread_mutex_lock(lock);
    int n = 0;
    *retry_ms = 0;
    slot *grp = &rl->slots[(size_t)g * GROUP];
    for (int i = 0; i < GROUP; i++) {
        if (grp[i].key != h)
            continue;
        window_roll(&grp[i], window_s, now_us);
        n = grp[i].fails;
        *retry_ms = (grp[i].window_start_us + (int64_t)window_s * 1000000 - now_us) / 1000 + 1;
    }
    pthread_mutex_unlock(lock);
    return n;
}

void ratelimit_clear(ratelimit *rl, const char *kind, const char *key)
{
    uint64_t h = hash2(kind, key);
    unsigned g = (unsigned)(h >> 7) & rl->mask;
    pthread_mutex_t *lock = &rl->locks[g % LOCKS];
    pthread_mutex_lock(lock);
    slot *grp = &rl->slots[(size_t)g * GROUP];
    for (int i = 0; i < GROUP; i++)
        if (grp[i].key == h)
            grp[i].fails = 0;
    pthread_mutex_unlock(lock);
}
