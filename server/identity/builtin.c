/* The builtin identity provider (the embedded default).
 *
 * Passwords: scrypt (OpenSSL EVP_PBE_scrypt) with a random 16-byte salt per user, stored as
 * "scrypt$N$r$p$SALT$HASH" (base64url) so that the cost can be raised later without locking
 * anyone out. Access tokens: JWTs signed with the server's key (ES256 or EdDSA), carrying
 * sub (the user id) and sid (the session). Refresh tokens: 32 random bytes; only their
 * SHA-256 is stored; each refresh replaces the token, and presenting a replaced token again
 * revokes the whole session (it has been copied). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "identity/identity.h"
#include "identity/provider.h"
#include "store/identity.h"
#include "util/log.h"

#define SCRYPT_N 32768
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_MAXMEM (64u * 1024u * 1024u)

typedef struct builtin {
    idp base;
    const sdo_config *cfg;
    store *st;
    EVP_PKEY *key;
    jwt_verifier *verifier;
    char kid[24];
} builtin;

static int scrypt_raw(const char *password, const unsigned char *salt, size_t saltlen, uint64_t n,
                      uint64_t r, uint64_t p, unsigned char out[32])
{
    return EVP_PBE_scrypt(password, strlen(password), salt, saltlen, n, r, p, SCRYPT_MAXMEM, out,
                          32) == 1
               ? 0
               : -1;
}

int identity_password_hash(const char *password, char *out, size_t outsz)
{
    unsigned char salt[16], h[32];
    char s64[32], h64[48];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        scrypt_raw(password, salt, sizeof salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, h) < 0)
        return -1;
    sdo_b64url_encode(salt, sizeof salt, s64, sizeof s64);
    sdo_b64url_encode(h, sizeof h, h64, sizeof h64);
    int n = snprintf(out, outsz, "scrypt$%d$%d$%d$%s$%s", SCRYPT_N, SCRYPT_R, SCRYPT_P, s64, h64);
    return n > 0 && (size_t)n < outsz ? 0 : -1;
}

bool identity_password_check(const char *password, const char *stored)
{
    unsigned long long n, r, p;
    char s64[64], h64[64];
    if (sscanf(stored, "scrypt$%llu$%llu$%llu$%63[^$]$%63s", &n, &r, &p, s64, h64) != 5 || n < 2 ||
        n > (1u << 20) || r < 1 || r > 32 || p < 1 || p > 16)
        return false;
    unsigned char salt[48], want[48], got[32];
    int sl = sdo_b64url_decode(s64, salt, sizeof salt);
    int hl = sdo_b64url_decode(h64, want, sizeof want);
    if (sl <= 0 || hl != 32 || scrypt_raw(password, salt, (size_t)sl, n, r, p, got) < 0)
        return false;
    return CRYPTO_memcmp(got, want, 32) == 0;
}

/* A burnt hash for unknown emails, so that a sign-in takes as long whether or not the
 * account exists. */
static char dummy[160];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
    identity_password_hash("not a password at all", dummy, sizeof dummy);
}

static const char *dummy_hash(void)
{
    pthread_once(&dummy_once, dummy_make);
    return dummy;
}

static int issue(builtin *b, const user_rec *u, const char *session_id,
                 const unsigned char refresh[32], int64_t refresh_expires, idp_session *out,
                 sdo_error *err)
{
    int64_t now = sdo_now_us() / 1000000;
    int64_t exp = now + b->cfg->identity_access_token_seconds;
    char jti[37];
    sdo_uuid4(jti);
    char payload[1024];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"%s\",\"session_id\":\"%s\",\"role\":\"%s\","
             "\"iat\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
             b->cfg->identity_issuer, b->cfg->identity_audience, u->id, session_id,
             strcmp(u->role, "ADMIN") == 0 ? "admin" : "customer", (long long)now, (long long)exp,
             jti);
    char *token = NULL;
    if (jwt_sign(b->key, b->kid, payload, &token, err) < 0)
        return -1;
    char r64[64];
    sdo_b64url_encode(refresh, 32, r64, sizeof r64);
    out->access_token = token;
    out->access_expires = exp;
    out->refresh_token = sdo_strdup(r64);
    out->refresh_expires = refresh_expires;
    sdo_strlcpy(out->subject, u->id, sizeof out->subject);
    sdo_strlcpy(out->email, u->email, sizeof out->email);
    return 0;
}

static int new_session(builtin *b, PGconn *c, const user_rec *u, idp_session *out, sdo_error *err)
{
    unsigned char refresh[32], h[32];
    char sid[37];
    if (RAND_bytes(refresh, sizeof refresh) != 1)
        return sdo_fail(err, SDO_INTERNAL, "no randomness for a refresh token");
    sdo_uuid4(sid);
    sdo_sha256(refresh, sizeof refresh, h);
    int64_t rexp = sdo_now_us() / 1000000 + b->cfg->identity_refresh_token_seconds;
    if (store_session_insert(b->st, c, sid, u->id, h, rexp, err) < 0 ||
        store_user_signed_in(b->st, c, u->id, err) < 0)
        return -1;
    return issue(b, u, sid, refresh, rexp, out, err);
}

static int b_sign_up(idp *p, const char *email, const char *password, const char *display_name,
                     idp_session *out, sdo_error *err)
{
    builtin *b = (builtin *)p;
    char hash[160];
    if (identity_password_hash(password, hash, sizeof hash) < 0)
        return sdo_fail(err, SDO_INTERNAL, "the password could not be hashed");
    user_rec u;
    if (identity_user_create(b->st, email, display_name, "CUSTOMER", hash, "builtin", NULL, &u,
                             err) < 0)
        return -1;
    PGconn *c = store_acquire(b->st, err);
    if (!c)
        return -1;
    int rc = new_session(b, c, &u, out, err);
    store_release(b->st, c);
    return rc;
}

static int b_sign_in(idp *p, const char *email, const char *password, idp_session *out,
                     sdo_error *err)
{
    builtin *b = (builtin *)p;
    PGconn *c = store_acquire(b->st, err);
    if (!c)
        return -1;
    user_rec u;
    sdo_error e2 = {0};
    int rc = store_user_by_email(b->st, c, email, &u, &e2);
    if (rc < 0 && e2.code != SDO_NOT_FOUND) {
        *err = e2;
        store_release(b->st, c);
        return -1;
    }
    bool ok = identity_password_check(password, rc == 0 && u.password_hash[0] ? u.password_hash
                                                                              : dummy_hash());
    if (rc < 0 || !u.password_hash[0] || !ok) {
        store_release(b->st, c);
        sdo_fail(err, SDO_UNAUTHENTICATED, "wrong email or password");
        sdo_error_reason(err, "BAD_CREDENTIALS");
        return -1;
    }
    if (u.disabled) {
        store_release(b->st, c);
        sdo_fail(err, SDO_PERMISSION_DENIED, "this account is disabled; ask the operator");
        sdo_error_reason(err, "USER_DISABLED");
        return -1;
    }
    rc = new_session(b, c, &u, out, err);
    store_release(b->st, c);
    return rc;
}

static int decode_refresh(const char *token, unsigned char h[32], sdo_error *err)
{
    unsigned char raw[48];
    if (strlen(token) > 64 || sdo_b64url_decode(token, raw, sizeof raw) != 32)
        return sdo_fail(err, SDO_UNAUTHENTICATED, "the refresh token is not valid: sign in again");
    sdo_sha256(raw, 32, h);
    return 0;
}

static int b_refresh(idp *p, const char *token, idp_session *out, sdo_error *err)
{
    builtin *b = (builtin *)p;
    unsigned char old[32], fresh[32], h[32];
    if (decode_refresh(token, old, err) < 0)
        return -1;
    if (RAND_bytes(fresh, sizeof fresh) != 1)
        return sdo_fail(err, SDO_INTERNAL, "no randomness for a refresh token");
    sdo_sha256(fresh, sizeof fresh, h);
    int64_t rexp = sdo_now_us() / 1000000 + b->cfg->identity_refresh_token_seconds;
    PGconn *c = store_acquire(b->st, err);
    if (!c)
        return -1;
    char uid[40], sid[64];
    user_rec u;
    int rc = store_session_rotate(b->st, c, old, h, rexp, uid, sizeof uid, sid, sizeof sid, err);
    if (rc == 0)
        rc = store_user_get(b->st, c, uid, &u, err);
    store_release(b->st, c);
    if (rc < 0)
        return -1;
    if (u.disabled)
        return sdo_fail(err, SDO_PERMISSION_DENIED, "this account is disabled; ask the operator");
    return issue(b, &u, sid, fresh, rexp, out, err);
}

static int b_sign_out(idp *p, const char *token, sdo_error *err)
{
    builtin *b = (builtin *)p;
    unsigned char h[32];
    sdo_error ignored = {0};
    if (decode_refresh(token, h, &ignored) < 0)
        return 0; /* nothing of ours to revoke */
    PGconn *c = store_acquire(b->st, err);
    if (!c)
        return -1;
    int rc = store_session_revoke(b->st, c, h, "signed out", err);
    store_release(b->st, c);
    return rc;
}

static int b_verify(idp *p, const char *token, idp_claims *out, sdo_error *err)
{
    builtin *b = (builtin *)p;
    jwt_claims cl;
    if (jwt_verify(b->verifier, token, &cl, err) < 0)
        return -1;
    memset(out, 0, sizeof *out);
    sdo_strlcpy(out->subject, cl.sub, sizeof out->subject);
    out->expires = cl.exp;
    sdo_strlcpy(out->session_id, cl.session_id, sizeof out->session_id);
    return 0;
}

static void b_free(idp *p)
{
    builtin *b = (builtin *)p;
    if (!b)
        return;
    jwt_verifier_free(b->verifier);
    EVP_PKEY_free(b->key);
    free(b);
}

static const idp_ops builtin_ops = {
    "builtin", b_sign_up, b_sign_in, b_refresh, b_sign_out, b_verify, b_free,
};

idp *idp_builtin_new(const sdo_config *cfg, store *st, sdo_error *err)
{
    char path[1024];
    if (cfg->identity_signing_key_file[0])
        sdo_strlcpy(path, cfg->identity_signing_key_file, sizeof path);
    else
        snprintf(path, sizeof path, "%s/jwt-signing.pem", cfg->platform_data_dir);
    bool created = false;
    bool want_ed = strcmp(cfg->identity_signing_algorithm, "EdDSA") == 0;
    EVP_PKEY *key =
        jwt_load_or_create_key(path, want_ed ? JWT_ALG_EDDSA : JWT_ALG_ES256, &created, err);
    if (!key)
        return NULL;
    bool ed = EVP_PKEY_id(key) == EVP_PKEY_ED25519;
    if (ed != want_ed) {
        EVP_PKEY_free(key);
        sdo_fail(err, SDO_INVALID_ARGUMENT,
                 "identity.signing_algorithm is %s but the key in %s is %s; use a matching key "
                 "or remove the file to have one made",
                 cfg->identity_signing_algorithm, path, ed ? "Ed25519" : "EC P-256");
        return NULL;
    }
    if (created)
        log_info("msg=\"created the token signing key\" path=%s", path);
    builtin *b = sdo_calloc(1, sizeof *b);
    b->base.ops = &builtin_ops;
    b->cfg = cfg;
    b->st = st;
    b->key = key;
    /* the key id: the start of the SHA-256 of the public key, so that a new key gets a new
     * kid and tokens of the old one fail clearly */
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(key, &der);
    unsigned char h[32];
    sdo_sha256(der, dl > 0 ? (size_t)dl : 0, h);
    OPENSSL_free(der);
    sdo_b64url_encode(h, 12, b->kid, sizeof b->kid);
    jwt_key_config kc = {.kid = b->kid, .pkey = key};
    jwt_verifier_config vc = {
        .algs = want_ed ? JWT_ALG_EDDSA : JWT_ALG_ES256,
        .keys = &kc,
        .nkeys = 1,
        .issuer = cfg->identity_issuer,
        .audience = cfg->identity_audience,
        .leeway = cfg->identity_clock_leeway_seconds,
    };
    b->verifier = jwt_verifier_new(&vc, err);
    if (!b->verifier) {
        b_free(&b->base);
        return NULL;
    }
    return &b->base;
}
