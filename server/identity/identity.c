/* Identity: authentication with a small cache, users, API keys, the first admin. */
#include "identity/identity.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* How long a cached authentication is trusted before the user's state (role, disabled, the
 * session) is read again. Changes made through this server drop the cache at once. */
#define AUTH_CACHE_US 1000000
#define AUTH_CACHE_SLOTS 4096 /* a power of two */
#define AUTH_CACHE_LOCKS 64

typedef struct auth_entry {
    unsigned char hash[32]; /* SHA-256 of the credential; all zero when free */
    principal who;
    int64_t expires_unix; /* of the credential; 0 = none (API keys without expiry) */
    int64_t checked_us;   /* monotonic */
    uint64_t generation;
} auth_entry;

struct identity {
    const sdo_config *cfg;
    store *st;
    idp *provider;
    ratelimit *limits;
    auth_entry *cache;
    pthread_mutex_t locks[AUTH_CACHE_LOCKS];
    atomic_uint_fast64_t generation;
};

identity *identity_new(const sdo_config *cfg, store *st, sdo_error *err)
{
    idp *p = idp_open(cfg, st, err);
    if (!p)
        return NULL;
    identity *id = sdo_calloc(1, sizeof *id);
    id->cfg = cfg;
    id->st = st;
    id->provider = p;
    id->limits = ratelimit_new(65536);
    id->cache = sdo_calloc(AUTH_CACHE_SLOTS, sizeof *id->cache);
    for (int i = 0; i < AUTH_CACHE_LOCKS; i++)
        pthread_mutex_init(&id->locks[i], NULL);
    atomic_init(&id->generation, 1);
    return id;
}

void identity_free(identity *id)
{
    if (!id)
        return;
    id->provider->ops->free(id->provider);
    ratelimit_free(id->limits);
    for (int i = 0; i < AUTH_CACHE_LOCKS; i++)
        pthread_mutex_destroy(&id->locks[i]);
    OPENSSL_cleanse(id->cache, AUTH_CACHE_SLOTS * sizeof *id->cache);
    free(id->cache);
    free(id);
}

idp *identity_provider(identity *id)
{
    return id->provider;
}

ratelimit *identity_limits(identity *id)
{
    return id->limits;
}

void identity_invalidate(identity *id)
{
    atomic_fetch_add(&id->generation, 1);
}

static int role_of(const char *s)
{
    return strcmp(s, "ADMIN") == 0 ? ROLE_ADMIN : ROLE_CUSTOMER;
}

/* The user's current state: disabled users are refused. */
static int load_user(identity *id, PGconn *c, const char *user_id, principal *who, sdo_error *err)
{
    user_rec u;
    if (store_user_get(id->st, c, user_id, &u, err) < 0) {
        if (err->code == SDO_NOT_FOUND) {
            memset(err, 0, sizeof *err);
            sdo_fail(err, SDO_UNAUTHENTICATED, "the credential names a user that does not exist");
            sdo_error_reason(err, "UNKNOWN_USER");
        }
        return -1;
    }
    if (u.disabled) {
        sdo_fail(err, SDO_PERMISSION_DENIED, "this account is disabled; ask the operator");
        sdo_error_reason(err, "USER_DISABLED");
        return -1;
    }
    sdo_strlcpy(who->user_id, u.id, sizeof who->user_id);
    who->role = role_of(u.role);
    return 0;
}

/* Checks the credential against the provider or the store: no cache. */
static int authenticate_fresh(identity *id, const char *cred, principal *who, int64_t *expires_unix,
                              sdo_error *err)
{
    memset(who, 0, sizeof *who);
    *expires_unix = 0;
    PGconn *c;
    if (strncmp(cred, API_KEY_PREFIX, strlen(API_KEY_PREFIX)) == 0) {
        unsigned char h[32];
        sdo_sha256(cred, strlen(cred), h);
        c = store_acquire(id->st, err);
        if (!c)
            return -1;
        char user_id[40];
        int rc = store_api_key_lookup(id->st, c, h, who->api_key, sizeof who->api_key, user_id,
                                      sizeof user_id, err);
        if (rc < 0 && err->code == SDO_NOT_FOUND) {
            memset(err, 0, sizeof *err);
            sdo_fail(err, SDO_UNAUTHENTICATED, "the API key is not valid (deleted or expired)");
            sdo_error_reason(err, "BAD_API_KEY");
        }
        if (rc == 0)
            rc = load_user(id, c, user_id, who, err);
        store_release(id->st, c);
        return rc;
    }
    idp_claims cl;
    if (id->provider->ops->verify(id->provider, cred, &cl, err) < 0)
        return -1;
    *expires_unix = cl.expires;
    c = store_acquire(id->st, err);
    if (!c)
        return -1;
    int rc = 0;
    if (strcmp(id->provider->ops->name, "builtin") == 0) {
        rc = load_user(id, c, cl.subject, who, err);
        if (rc == 0 && cl.session_id[0]) {
            bool live = false;
            rc = store_session_live(id->st, c, cl.session_id, &live, err);
            if (rc == 0 && !live) {
                sdo_fail(err, SDO_UNAUTHENTICATED, "the session has ended: sign in again");
                sdo_error_reason(err, "SESSION_ENDED");
                rc = -1;
            }
        }
        store_release(id->st, c);
        return rc;
    }
    store_release(id->st, c);
    user_rec u;
    if (identity_user_for_subject(id, cl.subject, cl.email, &u, err) < 0)
        return -1;
    c = store_acquire(id->st, err);
    if (!c)
        return -1;
    rc = load_user(id, c, u.id, who, err);
    store_release(id->st, c);
    return rc;
}

int identity_authenticate(identity *id, const char *cred, principal *who, sdo_error *err)
{
    size_t len = strlen(cred);
    if (len == 0 || len > 16384) {
        sdo_fail(err, SDO_UNAUTHENTICATED,
                 len ? "the credential is too large"
                     : "the authorization header has no credential");
        sdo_error_reason(err, len ? "TOKEN_TOO_LARGE" : "MISSING_CREDENTIALS");
        return -1;
    }
    unsigned char h[32];
    sdo_sha256(cred, len, h);
    unsigned idx = ((unsigned)h[0] | (unsigned)h[1] << 8) & (AUTH_CACHE_SLOTS - 1);
    pthread_mutex_t *lock = &id->locks[idx % AUTH_CACHE_LOCKS];
    auth_entry *e = &id->cache[idx];
    int64_t now = sdo_mono_us();
    int64_t now_unix = sdo_now_us() / 1000000;
    uint64_t gen = atomic_load(&id->generation);

    pthread_mutex_lock(lock);
    bool hit = CRYPTO_memcmp(e->hash, h, 32) == 0 && e->generation == gen &&
               now - e->checked_us < AUTH_CACHE_US &&
               (e->expires_unix == 0 || e->expires_unix > now_unix);
    if (hit)
        *who = e->who;
    pthread_mutex_unlock(lock);
    if (hit)
        return 0;

    int64_t expires = 0;
    if (authenticate_fresh(id, cred, who, &expires, err) < 0)
        return -1;
    pthread_mutex_lock(lock);
    memcpy(e->hash, h, 32);
    e->who = *who;
    e->expires_unix = expires;
    e->checked_us = now;
    e->generation = gen;
    pthread_mutex_unlock(lock);
    return 0;
}

int identity_check_email(const char *email, sdo_error *err)
{
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    bool ok = n >= 3 && n <= 254 && at && at != email && strchr(at + 1, '@') == NULL &&
              strchr(at + 1, '.') && at[1] != '.' && email[n - 1] != '.';
    for (const char *p = email; ok && *p; p++)
        ok = (unsigned char)*p > ' ' && *p != '"' && *p != '<' && *p != '>' && *p != ',';
    if (!ok)
        return sdo_fail_field(
            err, "email", "email '%.80s' is not an email address (like name@example.com)", email);
    return 0;
}

int identity_check_password(const char *password, sdo_error *err)
{
    size_t n = strlen(password);
    if (n < 10)
        return sdo_fail_field(err, "password",
                              "password must be at least 10 characters (it has %zu)", n);
    if (n > 1024)
        return sdo_fail_field(err, "password", "password must be at most 1024 characters");
    return 0;
}

int identity_user_create(store *st, const char *email, const char *display_name, const char *role,
                         const char *password_hash, const char *provider, const char *subject,
                         user_rec *out, sdo_error *err)
{
    unsigned char r[8];
    if (RAND_bytes(r, sizeof r) != 1)
        return sdo_fail(err, SDO_INTERNAL, "no randomness for a user id");
    char uid[40];
    snprintf(uid, sizeof uid, "u%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
             r[5], r[6], r[7]);
    user_row row = {uid,           email,    display_name ? display_name : "", role,
                    password_hash, provider, subject ? subject : uid};
    PGconn *c = store_acquire(st, err);
    if (!c)
        return -1;
    int rc = store_user_insert(st, c, &row, err);
    if (rc == 0)
        rc = store_user_get(st, c, uid, out, err);
    store_release(st, c);
    if (rc == 0)
        log_info("msg=\"user created\" user=users/%s role=%s provider=%s", uid, role, provider);
    return rc;
}

int identity_user_for_subject(identity *id, const char *subject, const char *email, user_rec *out,
                              sdo_error *err)
{
    const char *prov = id->provider->ops->name;
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = store_acquire(id->st, err);
        if (!c)
            return -1;
        sdo_error e2 = {0};
        int rc = store_user_by_subject(id->st, c, prov, subject, out, &e2);
        store_release(id->st, c);
        if (rc == 0)
            return 0;
        if (e2.code != SDO_NOT_FOUND) {
            *err = e2;
            return -1;
        }
        char fallback[200];
        if (!email || !email[0]) { /* keep emails unique: a placeholder per subject */
            snprintf(fallback, sizeof fallback, "%.120s@%s.invalid", subject, prov);
            email = fallback;
        }
        memset(&e2, 0, sizeof e2);
        rc = identity_user_create(id->st, email, "", "CUSTOMER", NULL, prov, subject, out, &e2);
        if (rc == 0)
            return 0;
        if (e2.code != SDO_ALREADY_EXISTS) {
            *err = e2;
            return -1;
        }
        /* created by a concurrent call, or the email belongs to another account */
    }
    return sdo_fail(err, SDO_ALREADY_EXISTS,
                    "the email of this account is already used by another user here");
}

int identity_ensure_admin(store *st, const char *email, const char *password, bool *created,
                          sdo_error *err)
{
    if (identity_check_email(email, err) < 0 || identity_check_password(password, err) < 0)
        return -1;
    char hash[160];
    if (identity_password_hash(password, hash, sizeof hash) < 0)
        return sdo_fail(err, SDO_INTERNAL, "the password could not be hashed");
    *created = false;
    PGconn *c = store_acquire(st, err);
    if (!c)
        return -1;
    user_rec u;
    sdo_error e2 = {0};
    int rc = store_user_by_email(st, c, email, &u, &e2);
    if (rc == 0) {
        const char *p[] = {u.id, hash};
        PGresult *r = store_exec(st, c,
                                 "UPDATE users SET role = 'ADMIN', disabled = false,"
                                 " password_hash = $2, version = version + 1,"
                                 " update_time = clock_timestamp() WHERE id = $1",
                                 2, p, err, NULL);
        rc = r ? 0 : -1;
        if (r)
            PQclear(r);
        store_release(st, c);
        return rc;
    }
    store_release(st, c);
    if (e2.code != SDO_NOT_FOUND) {
        *err = e2;
        return -1;
    }
    rc = identity_user_create(st, email, "Administrator", "ADMIN", hash, "builtin", NULL, &u, err);
    *created = rc == 0;
    return rc;
}

int identity_api_key_create(identity *id, const char *user_id, const char *display_name,
                            int64_t expire_unix, Saasodoo__V1__ApiKey **out, char **secret,
                            sdo_error *err)
{
    unsigned char raw[32], idr[6], h[32];
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(idr, sizeof idr) != 1)
        return sdo_fail(err, SDO_INTERNAL, "no randomness for an API key");
    char body[64], whole[80], kid[16], prefix[API_KEY_SHOWN + 1];
    sdo_b64url_encode(raw, sizeof raw, body, sizeof body);
    snprintf(whole, sizeof whole, "%s%s", API_KEY_PREFIX, body);
    snprintf(kid, sizeof kid, "k%02x%02x%02x%02x%02x%02x", idr[0], idr[1], idr[2], idr[3], idr[4],
             idr[5]);
    sdo_strlcpy(prefix, whole, sizeof prefix);
    sdo_sha256(whole, strlen(whole), h);
    PGconn *c = store_acquire(id->st, err);
    if (!c)
        return -1;
    int rc = store_api_key_insert(id->st, c, kid, user_id, display_name, prefix, h, expire_unix,
                                  out, err);
    store_release(id->st, c);
    if (rc < 0)
        return -1;
    *secret = sdo_strdup(whole);
    OPENSSL_cleanse(body, sizeof body);
    OPENSSL_cleanse(whole, sizeof whole);
    return 0;
}

/* ---- providers ---- */

idp *idp_open(const sdo_config *cfg, store *st, sdo_error *err)
{
    if (strcmp(cfg->identity_mode, "supabase") == 0)
        return idp_supabase_new(cfg, err);
    return idp_builtin_new(cfg, st, err);
}

void idp_session_free(idp_session *s)
{
    if (s->access_token)
        OPENSSL_cleanse(s->access_token, strlen(s->access_token));
    if (s->refresh_token)
        OPENSSL_cleanse(s->refresh_token, strlen(s->refresh_token));
    free(s->access_token);
    free(s->refresh_token);
    s->access_token = s->refresh_token = NULL;
}
