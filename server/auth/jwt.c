/* JWT verification against typed keys from the configuration and from a JWK set, signing of
 * the server's own tokens, and the signing key file. Signatures go through OpenSSL's EVP
 * interface; JWS encodes ECDSA signatures as R || S, OpenSSL as DER, so both directions are
 * converted here. */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define MAX_KID 127
#define MAX_JWKS_KEYS 256
#define MIN_RSA_BITS 2048

/* A key that verifies exactly one algorithm. */
typedef struct jwt_key {
    jwt_alg alg;
    char *kid;      /* NULL when the key has none */
    EVP_PKEY *pkey; /* ES256, EdDSA, RS256 */
    unsigned char *secret;
    size_t secret_len; /* HS256 */
} jwt_key;

/* An immutable set of keys from one JWK set, shared by the verifications that use it. */
typedef struct keyset {
    int refs; /* under the verifier's mutex: the verifier's own plus one per verification */
    jwt_key *keys;
    size_t n;
} keyset;

struct jwt_verifier {
    unsigned algs;
    jwt_key *keys; /* from the configuration */
    size_t nkeys;
    pthread_mutex_t mu; /* guards jwks and its reference count (the keys never change) */
    keyset *jwks;
    char *issuer;
    char *audience;
    int leeway;
    size_t max_token_size;
    int64_t (*clock)(void *arg);
    void *clock_arg;
    EVP_MD *sha256;
};

static const struct {
    jwt_alg alg;
    const char *name;
} alg_names[] = {
    {JWT_ALG_ES256, "ES256"},
    {JWT_ALG_EDDSA, "EdDSA"},
    {JWT_ALG_RS256, "RS256"},
    {JWT_ALG_HS256, "HS256"},
};

const char *jwt_alg_name(jwt_alg alg)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    return NULL;
}

static const char *key_kind(jwt_alg alg)
{
    switch (alg) {
    case JWT_ALG_ES256:
        return "EC P-256";
    case JWT_ALG_EDDSA:
        return "Ed25519";
    case JWT_ALG_RS256:
        return "RSA";
    case JWT_ALG_HS256:
        return "HMAC";
    }
    return "unknown";
}

/* Fills err as UNAUTHENTICATED with a reason code; returns -SDO_UNAUTHENTICATED. */
static int reject(sdo_error *err, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(sdo_error *err, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sdo_failv(err, SDO_UNAUTHENTICATED, fmt, ap);
    va_end(ap);
    sdo_error_reason(err, reason);
    return rc;
}

/* Copies untrusted text for a message: printable ASCII only, at most 32 characters. */
static const char *shown(const char *s, char buf[40])
{
    size_t i = 0;
    for (; s[i] && i < 32; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (s[i])
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = 0;
    return buf;
}

/* ---- base64url (RFC 4648 section 5, no padding, canonical only) ------------------------- */

/* Value of each byte in the base64url alphabet, 255 for bytes outside it. */
/* clang-format off */
static const unsigned char b64tab[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255,  63,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};
/* clang-format on */

/* Decodes len characters into out (room for len * 3 / 4 bytes). Returns the byte count, or
 * -1 for characters outside the alphabet, padding, an impossible length, or unused trailing
 * bits that are not zero (so every byte string has exactly one accepted encoding). */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned v = b64tab[(unsigned char)in[i]];
        if (v > 63)
            return -1;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[j++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)j;
}

static char *b64url_alloc(const unsigned char *in, size_t len)
{
    size_t cap = (len + 2) / 3 * 4 + 1;
    char *out = sdo_malloc(cap);
    sdo_b64url_encode(in, len, out, cap);
    return out;
}

/* ---- keys ------------------------------------------------------------------------------- */

static void key_clear(jwt_key *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    memset(k, 0, sizeof *k);
}

static void keys_free(jwt_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        key_clear(&keys[i]);
    free(keys);
}

static void keyset_free(keyset *ks)
{
    keys_free(ks->keys, ks->n);
    free(ks);
}

/* Drops one reference; the last one frees the set, outside the lock. */
static void keyset_release(jwt_verifier *v, keyset *ks)
{
    if (!ks)
        return;
    pthread_mutex_lock(&v->mu);
    bool last = --ks->refs == 0;
    pthread_mutex_unlock(&v->mu);
    if (last)
        keyset_free(ks);
}

/* The algorithm a key object verifies, or 0 with the reason in why. */
static jwt_alg classify(EVP_PKEY *pk, char *why, size_t whysz)
{
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcasecmp(group, "P-256") != 0)) {
            snprintf(why, whysz, "EC key on curve '%s': only P-256 is supported", group);
            return 0;
        }
        return JWT_ALG_ES256;
    }
    if (EVP_PKEY_is_a(pk, "ED25519"))
        return JWT_ALG_EDDSA;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < MIN_RSA_BITS) {
            snprintf(why, whysz, "RSA key of %d bits: at least %d are required", bits,
                     MIN_RSA_BITS);
            return 0;
        }
        return JWT_ALG_RS256;
    }
    snprintf(why, whysz, "unsupported key type %s", EVP_PKEY_get0_type_name(pk));
    return 0;
}

static bool valid_kid(const char *kid)
{
    return kid && strlen(kid) <= MAX_KID;
}

/* Turns one configured key into k; 0 or -1 with why filled in. */
static int key_from_config(const jwt_key_config *kc, jwt_key *k, char *why, size_t whysz)
{
    int set = (kc->pem != NULL) + (kc->pkey != NULL) + (kc->secret != NULL);
    if (set != 1) {
        snprintf(why, whysz, "exactly one of pem, pkey and secret must be given");
        return -1;
    }
    if (kc->kid && !valid_kid(kc->kid)) {
        snprintf(why, whysz, "kid is longer than %d bytes", MAX_KID);
        return -1;
    }
    if (kc->secret) {
        if (kc->secret_len < JWT_MIN_HMAC_SECRET) {
            snprintf(why, whysz, "HS256 secret of %zu bytes: at least %d are required",
                     kc->secret_len, JWT_MIN_HMAC_SECRET);
            return -1;
        }
        k->alg = JWT_ALG_HS256;
        k->secret = sdo_malloc(kc->secret_len);
        memcpy(k->secret, kc->secret, kc->secret_len);
        k->secret_len = kc->secret_len;
    } else {
        EVP_PKEY *pk;
        if (kc->pem) {
            BIO *bio = BIO_new_mem_buf(kc->pem, -1);
            pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
            BIO_free(bio);
            ERR_clear_error();
            if (!pk) {
                snprintf(why, whysz, "pem is not a PEM public key (\"BEGIN PUBLIC KEY\")");
                return -1;
            }
        } else {
            pk = kc->pkey;
            EVP_PKEY_up_ref(pk);
        }
        k->pkey = pk;
        k->alg = classify(pk, why, whysz);
        if (!k->alg) {
            key_clear(k);
            return -1;
        }
    }
    if (kc->kid)
        k->kid = sdo_strdup(kc->kid);
    return 0;
}

/* ---- verifier --------------------------------------------------------------------------- */

static int64_t system_clock(void *arg)
{
    (void)arg;
    return (int64_t)time(NULL);
}

jwt_verifier *jwt_verifier_new(const jwt_verifier_config *cfg, sdo_error *err)
{
    const unsigned all = JWT_ALG_ES256 | JWT_ALG_EDDSA | JWT_ALG_RS256 | JWT_ALG_HS256;
    if (!cfg || cfg->algs == 0 || (cfg->algs & ~all)) {
        sdo_fail(err, SDO_INVALID_ARGUMENT,
                 "the JWT verifier needs a set of algorithms from ES256, EdDSA, RS256, HS256");
        return NULL;
    }
    if (cfg->leeway < 0 || cfg->leeway > JWT_MAX_LEEWAY) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "JWT leeway %d must be 0 to %d seconds", cfg->leeway,
                 JWT_MAX_LEEWAY);
        return NULL;
    }
    if (cfg->nkeys && !cfg->keys) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "JWT verifier: nkeys without keys");
        return NULL;
    }

    jwt_verifier *v = sdo_calloc(1, sizeof *v);
    pthread_mutex_init(&v->mu, NULL);
    v->algs = cfg->algs;
    v->leeway = cfg->leeway;
    v->max_token_size = cfg->max_token_size ? cfg->max_token_size : JWT_DEFAULT_MAX_TOKEN_SIZE;
    v->clock = cfg->clock ? cfg->clock : system_clock;
    v->clock_arg = cfg->clock_arg;
    if (cfg->issuer && cfg->issuer[0])
        v->issuer = sdo_strdup(cfg->issuer);
    if (cfg->audience && cfg->audience[0])
        v->audience = sdo_strdup(cfg->audience);
    v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!v->sha256) {
        sdo_fail(err, SDO_INTERNAL, "OpenSSL has no SHA-256");
        goto fail;
    }
    v->keys = sdo_calloc(cfg->nkeys, sizeof *v->keys);
    for (size_t i = 0; i < cfg->nkeys; i++) {
        char why[160];
        if (key_from_config(&cfg->keys[i], &v->keys[i], why, sizeof why) < 0) {
            if (cfg->keys[i].kid)
                sdo_fail(err, SDO_INVALID_ARGUMENT, "JWT key %zu (kid '%s'): %s", i,
                         cfg->keys[i].kid, why);
            else
                sdo_fail(err, SDO_INVALID_ARGUMENT, "JWT key %zu: %s", i, why);
            goto fail;
        }
        v->nkeys = i + 1;
    }
    return v;

fail:
    jwt_verifier_free(v);
    return NULL;
}

void jwt_verifier_free(jwt_verifier *v)
{
    if (!v)
        return;
    keys_free(v->keys, v->nkeys);
    if (v->jwks)
        keyset_free(v->jwks); /* no verification runs any more */
    pthread_mutex_destroy(&v->mu);
    free(v->issuer);
    free(v->audience);
    EVP_MD_free(v->sha256);
    free(v);
}

/* ---- JWK sets (RFC 7517, key parameters of RFC 7518 section 6 and RFC 8037) -------------- */

/* Decodes member name of a JWK as base64url into a malloc'ed buffer; NULL if absent or
 * invalid. */
static unsigned char *jwk_bytes(const json_value *jwk, const char *name, size_t *len)
{
    size_t slen;
    const char *s = json_string_len(json_get(jwk, name), &slen);
    if (!s || slen == 0)
        return NULL;
    unsigned char *out = sdo_malloc(slen * 3 / 4 + 1);
    long n = b64url_decode(s, slen, out);
    if (n < 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static EVP_PKEY *ec_from_jwk(const json_value *jwk, char *why, size_t whysz)
{
    size_t xl = 0, yl = 0;
    unsigned char *x = jwk_bytes(jwk, "x", &xl), *y = jwk_bytes(jwk, "y", &yl);
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (!x || !y || xl != 32 || yl != 32) {
        snprintf(why, whysz, "x and y must be base64url of 32 bytes each");
        goto out;
    }
    unsigned char pub[65];
    pub[0] = 0x04;
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub),
        OSSL_PARAM_construct_end(),
    };
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        snprintf(why, whysz, "x, y is not a point on P-256");
        goto out;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    free(x);
    free(y);
    return pk;
}

static EVP_PKEY *rsa_from_jwk(const json_value *jwk, char *why, size_t whysz)
{
    size_t nl = 0, el = 0;
    unsigned char *n = jwk_bytes(jwk, "n", &nl), *e = jwk_bytes(jwk, "e", &el);
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    if (!n || !e || n[0] == 0 || e[0] == 0 || el > 8) {
        snprintf(why, whysz,
                 "n and e must be base64url big-endian integers without leading "
                 "zeros");
        goto out;
    }
    if (nl * 8 < MIN_RSA_BITS) {
        snprintf(why, whysz, "RSA key of %zu bits: at least %d are required", nl * 8, MIN_RSA_BITS);
        goto out;
    }
    bn_n = BN_bin2bn(n, (int)nl, NULL);
    bn_e = BN_bin2bn(e, (int)el, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        snprintf(why, whysz, "out of memory");
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        snprintf(why, whysz, "n, e is not an RSA public key");
        goto out;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pk;
}

static EVP_PKEY *okp_from_jwk(const json_value *jwk, char *why, size_t whysz)
{
    size_t xl = 0;
    unsigned char *x = jwk_bytes(jwk, "x", &xl);
    EVP_PKEY *pk = NULL;
    if (!x || xl != 32)
        snprintf(why, whysz, "x must be base64url of 32 bytes");
    else if (!(pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, 32)))
        snprintf(why, whysz, "x is not an Ed25519 public key");
    free(x);
    return pk;
}

/* A key OpenSSL accepted must also pass its public-key check (the point is on the curve,
 * the RSA modulus and exponent are plausible). */
static bool public_check(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int r = ctx ? EVP_PKEY_public_check(ctx) : 0;
    EVP_PKEY_CTX_free(ctx);
    return r == 1 || r == -2; /* -2: no check for this type (Ed25519) */
}

/* Reads one JWK. Returns 1 when taken into k, 0 when skipped, -1 on a malformed key. */
static int jwk_read(const json_value *jwk, jwt_key *k, char *why, size_t whysz)
{
    if (json_typeof(jwk) != JSON_OBJECT) {
        snprintf(why, whysz, "not a JSON object");
        return -1;
    }
    const char *kty = json_string(json_get(jwk, "kty"));
    if (!kty) {
        snprintf(why, whysz, "kty must be a string");
        return -1;
    }
    const json_value *use = json_get(jwk, "use");
    if (use && !json_string(use)) {
        snprintf(why, whysz, "use must be a string");
        return -1;
    }
    if (use && strcmp(json_string(use), "sig") != 0)
        return 0;
    const json_value *ops = json_get(jwk, "key_ops");
    if (ops) {
        bool verify = false;
        if (json_typeof(ops) != JSON_ARRAY) {
            snprintf(why, whysz, "key_ops must be an array of strings");
            return -1;
        }
        for (size_t i = 0; i < json_array_len(ops); i++) {
            const char *op = json_string(json_array_at(ops, i));
            if (!op) {
                snprintf(why, whysz, "key_ops must be an array of strings");
                return -1;
            }
            verify = verify || strcmp(op, "verify") == 0;
        }
        if (!verify)
            return 0;
    }
    const json_value *algv = json_get(jwk, "alg");
    const char *alg = json_string(algv);
    if (algv && !alg) {
        snprintf(why, whysz, "alg must be a string");
        return -1;
    }
    const json_value *kidv = json_get(jwk, "kid");
    const char *kid = json_string(kidv);
    if (kidv && (!kid || !valid_kid(kid))) {
        snprintf(why, whysz, "kid must be a string of at most %d bytes", MAX_KID);
        return -1;
    }

    jwt_alg type;
    const char *crv = json_string(json_get(jwk, "crv"));
    EVP_PKEY *pk;
    if (strcmp(kty, "EC") == 0) {
        if (!crv || strcmp(crv, "P-256") != 0 || (alg && strcmp(alg, "ES256") != 0))
            return 0;
        type = JWT_ALG_ES256;
        pk = ec_from_jwk(jwk, why, whysz);
    } else if (strcmp(kty, "RSA") == 0) {
        if (alg && strcmp(alg, "RS256") != 0)
            return 0;
        type = JWT_ALG_RS256;
        pk = rsa_from_jwk(jwk, why, whysz);
    } else if (strcmp(kty, "OKP") == 0) {
        if (!crv || strcmp(crv, "Ed25519") != 0 ||
            (alg && strcmp(alg, "EdDSA") != 0 && strcmp(alg, "Ed25519") != 0))
            return 0;
        type = JWT_ALG_EDDSA;
        pk = okp_from_jwk(jwk, why, whysz);
    } else {
        return 0; /* "oct" (HMAC secrets are configured, never published) and others */
    }
    ERR_clear_error();
    if (!pk)
        return -1;
    if (!public_check(pk)) {
        ERR_clear_error();
        EVP_PKEY_free(pk);
        snprintf(why, whysz, "the key fails OpenSSL's public key check");
        return -1;
    }
    k->alg = type;
    k->pkey = pk;
    k->kid = kid ? sdo_strdup(kid) : NULL;
    return 1;
}

int jwt_verifier_set_jwks(jwt_verifier *v, const char *jwks_json, sdo_error *err)
{
    if (!jwks_json)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "no JWK set");
    sdo_error jerr;
    json_value *doc = json_parse(jwks_json, strlen(jwks_json), NULL, &jerr);
    if (!doc)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "JWK set: %s", jerr.message);
    int rc;
    keyset *ks = NULL;
    const json_value *keys = json_get(doc, "keys");
    if (json_typeof(keys) != JSON_ARRAY) {
        rc = sdo_fail(err, SDO_INVALID_ARGUMENT, "JWK set: expected {\"keys\": [...]}");
        goto out;
    }
    size_t n = json_array_len(keys);
    if (n > MAX_JWKS_KEYS) {
        rc = sdo_fail(err, SDO_INVALID_ARGUMENT, "JWK set: %zu keys, at most %d are taken", n,
                      MAX_JWKS_KEYS);
        goto out;
    }
    ks = sdo_calloc(1, sizeof *ks);
    ks->refs = 1;
    ks->keys = sdo_calloc(n, sizeof *ks->keys);
    for (size_t i = 0; i < n; i++) {
        char why[160];
        const json_value *jwk = json_array_at(keys, i);
        int r = jwk_read(jwk, &ks->keys[ks->n], why, sizeof why);
        if (r < 0) {
            const char *kid = json_string(json_get(jwk, "kid"));
            char b[40];
            if (kid)
                rc = sdo_fail(err, SDO_INVALID_ARGUMENT, "JWK set: key %zu (kid '%s'): %s", i,
                              shown(kid, b), why);
            else
                rc = sdo_fail(err, SDO_INVALID_ARGUMENT, "JWK set: key %zu: %s", i, why);
            goto out;
        }
        ks->n += (size_t)r;
    }
    rc = (int)ks->n;
    pthread_mutex_lock(&v->mu);
    keyset *old = v->jwks;
    v->jwks = ks;
    pthread_mutex_unlock(&v->mu);
    ks = old;
out:
    keyset_release(v, ks);
    json_free(doc);
    return rc;
}

/* ---- verification ----------------------------------------------------------------------- */

/* DER INTEGER of an unsigned big-endian number; returns the bytes written. */
static size_t der_uint(unsigned char *o, const unsigned char *x, size_t n)
{
    while (n > 1 && x[0] == 0) {
        x++;
        n--;
    }
    size_t pad = (x[0] & 0x80) ? 1 : 0;
    o[0] = 0x02;
    o[1] = (unsigned char)(n + pad);
    o[2] = 0;
    memcpy(o + 2 + pad, x, n);
    return 2 + pad + n;
}

static bool digest_verify(EVP_PKEY *pk, const EVP_MD *md, const unsigned char *sig, size_t siglen,
                          const char *input, size_t inlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error();
    return ok;
}

static bool signature_ok(const jwt_verifier *v, const jwt_key *k, const unsigned char *sig,
                         size_t siglen, const char *input, size_t inlen)
{
    switch (k->alg) {
    case JWT_ALG_ES256: {
        /* R || S, 32 bytes each (RFC 7518 section 3.4); DER or any other length is refused. */
        if (siglen != 64)
            return false;
        unsigned char der[2 + 2 * 35];
        size_t n = 2;
        n += der_uint(der + n, sig, 32);
        n += der_uint(der + n, sig + 32, 32);
        der[0] = 0x30;
        der[1] = (unsigned char)(n - 2);
        return digest_verify(k->pkey, v->sha256, der, n, input, inlen);
    }
    case JWT_ALG_EDDSA:
        return siglen == 64 && digest_verify(k->pkey, NULL, sig, siglen, input, inlen);
    case JWT_ALG_RS256:
        return siglen == (size_t)EVP_PKEY_get_size(k->pkey) &&
               digest_verify(k->pkey, v->sha256, sig, siglen, input, inlen);
    case JWT_ALG_HS256: {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (siglen != 32 || k->secret_len > INT_MAX ||
            !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, inlen,
                  mac, &maclen) ||
            maclen != 32)
            return false;
        bool ok = CRYPTO_memcmp(mac, sig, 32) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return ok;
    }
    }
    return false;
}

/* Picks the key for a token: by kid when it has one, else the only key of that algorithm. */
static const jwt_key *find_key(const jwt_verifier *v, const keyset *ks, jwt_alg alg,
                               const char *kid, sdo_error *err)
{
    const jwt_key *sets[2] = {v->keys, ks ? ks->keys : NULL};
    size_t lens[2] = {v->nkeys, ks ? ks->n : 0};
    const jwt_key *found = NULL, *named = NULL;
    size_t count = 0;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < lens[s]; i++) {
            const jwt_key *k = &sets[s][i];
            if (kid) {
                if (!k->kid || strcmp(k->kid, kid) != 0)
                    continue;
                if (k->alg == alg)
                    return k;
                named = k;
            } else if (k->alg == alg) {
                found = k;
                count++;
            }
        }
    }
    char b[40];
    if (kid && named) {
        reject(err, "KEY_MISMATCH", "key '%s' is an %s key and cannot verify %s", shown(kid, b),
               key_kind(named->alg), jwt_alg_name(alg));
        return NULL;
    }
    if (kid) {
        reject(err, "UNKNOWN_KID", "unknown signing key '%s'", shown(kid, b));
        return NULL;
    }
    if (count == 1)
        return found;
    if (count == 0)
        reject(err, "NO_KEY", "no key to verify %s tokens", jwt_alg_name(alg));
    else
        reject(err, "NO_KEY", "the token names no key (kid) and %zu keys could verify it", count);
    return NULL;
}

static keyset *jwks_acquire(jwt_verifier *v)
{
    pthread_mutex_lock(&v->mu);
    keyset *ks = v->jwks;
    if (ks)
        ks->refs++;
    pthread_mutex_unlock(&v->mu);
    return ks;
}

static int check_header(const jwt_verifier *v, const json_value *h, jwt_alg *alg, const char **kid,
                        sdo_error *err)
{
    char b[40];
    if (json_typeof(h) != JSON_OBJECT)
        return reject(err, "MALFORMED_TOKEN", "token header is not a JSON object");
    const json_value *algv = json_get(h, "alg");
    const char *name = json_string(algv);
    if (!name)
        return reject(err, "MALFORMED_TOKEN", "token header has no alg");
    if (strcasecmp(name, "none") == 0)
        return reject(err, "ALG_NOT_ALLOWED", "algorithm none is not allowed");
    *alg = 0;
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strcmp(name, alg_names[i].name) == 0)
            *alg = alg_names[i].alg;
    if (!*alg || !(v->algs & *alg))
        return reject(err, "ALG_NOT_ALLOWED", "algorithm %s is not allowed", shown(name, b));

    const json_value *typ = json_get(h, "typ");
    if (typ) {
        const char *t = json_string(typ);
        if (!t || (strcasecmp(t, "JWT") != 0 && strcasecmp(t, "application/jwt") != 0))
            return reject(err, "UNSUPPORTED_TOKEN", "token type (typ) is not JWT");
    }
    if (json_get(h, "crit"))
        return reject(err, "UNSUPPORTED_TOKEN", "token header has critical extensions (crit)");
    const json_value *kidv = json_get(h, "kid");
    *kid = NULL;
    if (kidv) {
        *kid = json_string(kidv);
        if (!*kid || !valid_kid(*kid))
            return reject(err, "MALFORMED_TOKEN", "token kid must be a string of at most %d bytes",
                          MAX_KID);
    }
    return 0;
}

/* A string claim into dst; "" when absent unless required. */
static int claim_string(const json_value *p, const char *name, bool required, char *dst,
                        size_t dstsz, sdo_error *err)
{
    const json_value *c = json_get(p, name);
    dst[0] = 0;
    if (!c) {
        if (required)
            return reject(err, "INVALID_CLAIM", "token has no %s claim", name);
        return 0;
    }
    const char *s = json_string(c);
    if (!s)
        return reject(err, "INVALID_CLAIM", "claim %s must be a string", name);
    if (strlen(s) >= dstsz)
        return reject(err, "INVALID_CLAIM", "claim %s is longer than %zu bytes", name, dstsz - 1);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* A NumericDate claim (RFC 7519 section 2): seconds, possibly fractional, rounded towards
 * the stricter side (up for nbf, down otherwise). 1 when present, 0 when absent. */
static int claim_time(const json_value *p, const char *name, bool round_up, int64_t *out,
                      sdo_error *err)
{
    const json_value *c = json_get(p, name);
    *out = 0;
    if (!c)
        return 0;
    int64_t i;
    double d;
    if (json_int64(c, &i)) {
        *out = i;
        return 1;
    }
    if (!json_double(c, &d))
        return reject(err, "INVALID_CLAIM", "claim %s must be a number of seconds", name);
    d = round_up ? ceil(d) : floor(d);
    if (!(d > -9.2e18 && d < 9.2e18))
        return reject(err, "INVALID_CLAIM", "claim %s is out of range", name);
    *out = (int64_t)d;
    return 1;
}

static int check_claims(const jwt_verifier *v, const json_value *p, jwt_claims *c, sdo_error *err)
{
    int r;
    if (json_typeof(p) != JSON_OBJECT)
        return reject(err, "MALFORMED_TOKEN", "token payload is not a JSON object");

    int64_t now = v->clock(v->clock_arg);
    if ((r = claim_time(p, "exp", false, &c->exp, err)) < 0)
        return r;
    if (r == 0)
        return reject(err, "INVALID_CLAIM", "token has no exp claim");
    if ((r = claim_time(p, "nbf", true, &c->nbf, err)) < 0)
        return r;
    bool has_nbf = r == 1;
    if ((r = claim_time(p, "iat", false, &c->iat, err)) < 0)
        return r;
    /* RFC 7519: valid while now < exp, and from nbf on; leeway widens both ends. */
    if (now - v->leeway >= c->exp)
        return reject(err, "TOKEN_EXPIRED", "token expired");
    if (has_nbf && now + v->leeway < c->nbf)
        return reject(err, "TOKEN_NOT_YET_VALID", "token is not valid yet");

    if ((r = claim_string(p, "iss", v->issuer != NULL, c->iss, sizeof c->iss, err)) < 0)
        return r;
    if (v->issuer && strcmp(c->iss, v->issuer) != 0)
        return reject(err, "WRONG_ISSUER", "token issuer is not '%s'", v->issuer);

    const json_value *aud = json_get(p, "aud");
    bool matched = false;
    const char *first = NULL;
    if (json_typeof(aud) == JSON_STRING) {
        first = json_string(aud);
        if (!first)
            return reject(err, "INVALID_CLAIM", "claim aud must be a string or strings");
        matched = v->audience && strcmp(first, v->audience) == 0;
    } else if (json_typeof(aud) == JSON_ARRAY) {
        for (size_t i = 0; i < json_array_len(aud); i++) {
            const char *a = json_string(json_array_at(aud, i));
            if (!a)
                return reject(err, "INVALID_CLAIM", "claim aud must be a string or strings");
            if (!first)
                first = a;
            matched = matched || (v->audience && strcmp(a, v->audience) == 0);
        }
    } else if (aud) {
        return reject(err, "INVALID_CLAIM", "claim aud must be a string or strings");
    }
    if (v->audience && !matched)
        return reject(err, "WRONG_AUDIENCE", "token audience is not '%s'", v->audience);
    const char *aud_out = v->audience ? v->audience : first ? first : "";
    if (strlen(aud_out) >= sizeof c->aud)
        return reject(err, "INVALID_CLAIM", "claim aud is longer than %zu bytes",
                      sizeof c->aud - 1);
    memcpy(c->aud, aud_out, strlen(aud_out) + 1);

    if ((r = claim_string(p, "sub", true, c->sub, sizeof c->sub, err)) < 0)
        return r;
    if (!c->sub[0])
        return reject(err, "INVALID_CLAIM", "claim sub must not be empty");
    if ((r = claim_string(p, "email", false, c->email, sizeof c->email, err)) < 0 ||
        (r = claim_string(p, "role", false, c->role, sizeof c->role, err)) < 0 ||
        (r = claim_string(p, "jti", false, c->jti, sizeof c->jti, err)) < 0 ||
        (r = claim_string(p, "session_id", false, c->session_id, sizeof c->session_id, err)) < 0)
        return r;
    return 0;
}

int jwt_verify_payload(jwt_verifier *v, const char *token, jwt_claims *out, json_value **payload,
                       sdo_error *err)
{
    jwt_claims scratch;
    jwt_claims *c = out ? out : &scratch;
    memset(c, 0, sizeof *c);
    if (payload)
        *payload = NULL;
    if (!token || !token[0])
        return reject(err, "MALFORMED_TOKEN", "no token");
    size_t len = strnlen(token, v->max_token_size + 1);
    if (len > v->max_token_size)
        return reject(err, "TOKEN_TOO_LARGE", "token is larger than %zu bytes", v->max_token_size);

    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return reject(err, "MALFORMED_TOKEN", "token is not three base64url parts joined by '.'");
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);

    int rc;
    json_value *header = NULL, *body = NULL;
    keyset *ks = NULL;
    /* The three parts decoded: base64url only shrinks, so len bytes hold them all. */
    unsigned char *buf = sdo_malloc(len);
    unsigned char *hbuf = buf, *pbuf, *sbuf;
    long hn = b64url_decode(token, hlen, hbuf);
    if (hn <= 0) {
        rc = reject(err, "MALFORMED_TOKEN", "token header is not base64url");
        goto out;
    }
    pbuf = hbuf + hn;
    long pn = b64url_decode(d1 + 1, plen, pbuf);
    if (pn <= 0) {
        rc = reject(err, "MALFORMED_TOKEN", "token payload is not base64url");
        goto out;
    }
    sbuf = pbuf + pn;
    long sn = b64url_decode(d2 + 1, slen, sbuf);
    if (sn < 0) {
        rc = reject(err, "MALFORMED_TOKEN", "token signature is not base64url");
        goto out;
    }

    sdo_error jerr;
    json_limits lim = {.max_size = len, .max_depth = 8};
    header = json_parse((const char *)hbuf, (size_t)hn, &lim, &jerr);
    if (!header) {
        rc = reject(err, "MALFORMED_TOKEN", "token header: %s", jerr.message);
        goto out;
    }
    jwt_alg alg = 0;
    const char *kid = NULL;
    if ((rc = check_header(v, header, &alg, &kid, err)) < 0)
        goto out;
    c->alg = alg;
    if (kid)
        sdo_strlcpy(c->kid, kid, sizeof c->kid);

    /* The signature before the payload: nothing reads the claims of a token that does not
     * verify. */
    if (sn == 0) {
        rc = reject(err, "BAD_SIGNATURE", "token has no signature");
        goto out;
    }
    ks = jwks_acquire(v);
    const jwt_key *key = find_key(v, ks, alg, kid, err);
    if (!key) {
        rc = -SDO_UNAUTHENTICATED;
        goto out;
    }
    if (!signature_ok(v, key, sbuf, (size_t)sn, token, (size_t)(d2 - token))) {
        rc = reject(err, "BAD_SIGNATURE", "signature does not verify");
        goto out;
    }

    lim.max_depth = JSON_DEFAULT_MAX_DEPTH;
    body = json_parse((const char *)pbuf, (size_t)pn, &lim, &jerr);
    if (!body) {
        rc = reject(err, "MALFORMED_TOKEN", "token payload: %s", jerr.message);
        goto out;
    }
    if ((rc = check_claims(v, body, c, err)) < 0)
        goto out;
    rc = 0;
    if (payload) {
        *payload = body;
        body = NULL;
    }
out:
    if (rc < 0 && c == out) {
        /* Nothing from a refused token is handed out. */
        memset(c, 0, sizeof *c);
    }
    keyset_release(v, ks);
    json_free(body);
    json_free(header);
    free(buf);
    return rc;
}

int jwt_verify(jwt_verifier *v, const char *token, jwt_claims *out, sdo_error *err)
{
    return jwt_verify_payload(v, token, out, NULL, err);
}

/* ---- signing ---------------------------------------------------------------------------- */

/* Converts OpenSSL's DER ECDSA signature to JWS R || S (32 bytes each). */
static int ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!es)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    int ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(es);
    return ok ? 0 : -1;
}

int jwt_sign(EVP_PKEY *key, const char *kid, const char *payload_json, char **token, sdo_error *err)
{
    *token = NULL;
    if (!key || !payload_json)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "jwt_sign needs a key and a payload");
    char why[160];
    jwt_alg alg = classify(key, why, sizeof why);
    if (!alg)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "signing key: %s", why);
    if (kid) {
        /* The kid goes into the header as is: printable ASCII without quote or backslash. */
        size_t n = strlen(kid);
        bool ok = n > 0 && n <= MAX_KID;
        for (size_t i = 0; ok && i < n; i++)
            ok = kid[i] > 0x20 && kid[i] < 0x7f && kid[i] != '"' && kid[i] != '\\';
        if (!ok)
            return sdo_fail(err, SDO_INVALID_ARGUMENT,
                            "kid must be 1 to %d printable ASCII characters without quotes",
                            MAX_KID);
    }
    sdo_error jerr;
    size_t plen = strlen(payload_json);
    json_value *doc = json_parse(payload_json, plen, NULL, &jerr);
    bool parsed = doc != NULL, is_object = json_typeof(doc) == JSON_OBJECT;
    json_free(doc);
    if (!is_object)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "JWT payload must be a JSON object%s%s",
                        parsed ? "" : ": ", parsed ? "" : jerr.message);

    char header[64 + MAX_KID];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"%s%s%s}", jwt_alg_name(alg),
             kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "");
    char *h64 = b64url_alloc((const unsigned char *)header, strlen(header));
    char *p64 = b64url_alloc((const unsigned char *)payload_json, plen);
    size_t inlen = strlen(h64) + 1 + strlen(p64);
    char *input = sdo_malloc(inlen + 1);
    snprintf(input, inlen + 1, "%s.%s", h64, p64);

    int rc = 0;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = alg == JWT_ALG_EDDSA ? NULL : EVP_sha256();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (unsigned char *)input, inlen) != 1 ||
        !(sig = sdo_malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, inlen) != 1) {
        /* OpenSSL reports a public-only key only when it comes to signing */
        rc = sdo_fail(err, SDO_INVALID_ARGUMENT, "cannot sign with this key (no private key?)");
        goto out;
    }
    unsigned char raw[64];
    const unsigned char *s = sig;
    if (alg == JWT_ALG_ES256) {
        if (ecdsa_der_to_raw(sig, siglen, raw) < 0) {
            rc = sdo_fail(err, SDO_INTERNAL, "OpenSSL returned a malformed ECDSA signature");
            goto out;
        }
        s = raw;
        siglen = 64;
    }
    char *s64 = b64url_alloc(s, siglen);
    size_t tlen = inlen + 1 + strlen(s64);
    *token = sdo_malloc(tlen + 1);
    snprintf(*token, tlen + 1, "%s.%s", input, s64);
    free(s64);
out:
    if (rc < 0)
        ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    free(sig);
    free(input);
    free(p64);
    free(h64);
    return rc;
}

/* ---- key files -------------------------------------------------------------------------- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

EVP_PKEY *jwt_load_private_key(const char *path, sdo_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sdo_fail(err, errno == ENOENT ? SDO_NOT_FOUND : SDO_FAILED_PRECONDITION, "%s: %s", path,
                 strerror(errno));
        return NULL;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    ERR_clear_error();
    if (!pk) {
        sdo_fail(err, SDO_INVALID_ARGUMENT,
                 "%s: not an unencrypted PEM private key (\"BEGIN PRIVATE KEY\")", path);
        return NULL;
    }
    char why[160];
    if (!classify(pk, why, sizeof why)) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "%s: %s", path, why);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes a new P-256 key to path: to a private temporary file first, then link(2) to the
 * final name, which fails if another process got there first. 1 = written, 0 = path
 * appeared meanwhile, -1 = error. */
static int create_key_file(const char *path, jwt_alg alg, EVP_PKEY **out, sdo_error *err)
{
    int rc = -1, fd = -1;
    char *tmp = NULL;
    BIO *bio = NULL;
    EVP_PKEY *pk = alg == JWT_ALG_EDDSA ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                        : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pk) {
        sdo_fail(err, SDO_INTERNAL, "cannot generate a %s key",
                 alg == JWT_ALG_EDDSA ? "Ed25519" : "P-256");
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    char *pem;
    long pemlen;
    if (!bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
        sdo_fail(err, SDO_INTERNAL, "cannot encode the new signing key");
        goto out;
    }
    unsigned char rnd[6];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        sdo_fail(err, SDO_INTERNAL, "no randomness for a temporary file name");
        goto out;
    }
    size_t tlen = strlen(path) + 32;
    tmp = sdo_malloc(tlen);
    snprintf(tmp, tlen, "%s.%02x%02x%02x%02x%02x%02x.tmp", path, rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sdo_fail(err, SDO_FAILED_PRECONDITION, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, pem, (size_t)pemlen) < 0 || fsync(fd) < 0) {
        sdo_fail(err, SDO_FAILED_PRECONDITION, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (link(tmp, path) < 0) {
        if (errno == EEXIST) {
            rc = 0;
        } else {
            sdo_fail(err, SDO_FAILED_PRECONDITION, "%s: %s", path, strerror(errno));
        }
        goto out;
    }
    rc = 1;
    *out = pk;
    pk = NULL;
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    BIO_free(bio);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

EVP_PKEY *jwt_load_or_create_key(const char *path, jwt_alg alg, bool *created, sdo_error *err)
{
    if (created)
        *created = false;
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT) {
            sdo_fail(err, SDO_FAILED_PRECONDITION, "%s: %s", path, strerror(errno));
            return NULL;
        }
        EVP_PKEY *pk = NULL;
        int r = create_key_file(path, alg, &pk, err);
        if (r < 0)
            return NULL;
        if (r == 1) {
            if (created)
                *created = true;
            return pk;
        }
        /* Another process created it meanwhile: use theirs. */
    }
    EVP_PKEY *pk = jwt_load_private_key(path, err);
    if (pk && !EVP_PKEY_is_a(pk, "EC") && !EVP_PKEY_is_a(pk, "ED25519")) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "%s: the signing key must be EC P-256 or Ed25519",
                 path);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}
