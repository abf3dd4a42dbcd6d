/* Unit tests of JWT verification and signing (auth/jwt.h). Keys are generated with OpenSSL
 * when the tests start; tokens are put together here, signed with OpenSSL directly, so that
 * hostile tokens (alg none, algorithm confusion, DER signatures, duplicate claims, ...) can
 * be made as an attacker would make them. JWK sets are written the way Supabase Auth
 * publishes them (supabase/auth internal/api/jwks.go: kid, alg, kty, use "sig",
 * key_ops ["verify"]). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/jwt.h"
#include "util/json.h"

#define NOW INT64_C(1700000000)
#define ISS "https://proj.supabase.co/auth/v1"
#define AUD "authenticated"
#define LEEWAY 30
#define SECRET "a-legacy-jwt-secret-of-at-least-32-characters"

static EVP_PKEY *ec_key, *ec_other, *ed_key, *rsa_key;
static char *rsa_pem;

static int64_t fixed_clock(void *arg)
{
    (void)arg;
    return NOW;
}

/* ---- token construction ----------------------------------------------------------------- */

static char *b64url(const unsigned char *in, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 5);
    size_t j = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[j++] = a[v >> 18];
        out[j++] = a[(v >> 12) & 63];
        out[j++] = a[(v >> 6) & 63];
        out[j++] = a[v & 63];
    }
    if (len - i == 1) {
        out[j++] = a[in[i] >> 2];
        out[j++] = a[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[j++] = a[v >> 10];
        out[j++] = a[(v >> 4) & 63];
        out[j++] = a[(v & 15) << 2];
    }
    out[j] = 0;
    return out;
}

static char *b64s(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *out = malloc(n);
    snprintf(out, n, "%s.%s.%s", a, b, c);
    return out;
}

typedef enum { SIG_ES256, SIG_ES256_DER, SIG_EDDSA, SIG_RS256, SIG_HS256 } sig_kind;

/* Signs input as the given JWS algorithm would; *len receives the signature length. */
static unsigned char *sign_bytes(sig_kind kind, EVP_PKEY *key, const void *secret,
                                 size_t secret_len, const char *input, size_t *len)
{
    if (kind == SIG_HS256) {
        unsigned char *mac = malloc(EVP_MAX_MD_SIZE);
        unsigned int n = 0;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)input,
                             strlen(input), mac, &n));
        *len = n;
        return mac;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 0;
    assert_int_equal(
        EVP_DigestSignInit(ctx, NULL, kind == SIG_EDDSA ? NULL : EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)input, strlen(input)), 1);
    unsigned char *sig = malloc(n);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    if (kind == SIG_ES256) {
        /* DER to R || S */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        assert_non_null(es);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        unsigned char *raw = malloc(64);
        assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
        assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
        ECDSA_SIG_free(es);
        free(sig);
        *len = 64;
        return raw;
    }
    *len = n;
    return sig;
}

/* When not negative: the signature byte to corrupt (xor 1) in the next tokens made. */
static int flip_byte = -1;
/* When not zero: bytes appended to the signature of the next tokens made. */
static size_t extra_sig_bytes;

/* header.payload.signature with both JSON texts used byte for byte. Caller frees. */
static char *make_token_key(const char *header, const char *payload, sig_kind kind, EVP_PKEY *key,
                            const void *secret, size_t secret_len)
{
    char *h = b64s(header), *p = b64s(payload);
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);
    snprintf(input, n, "%s.%s", h, p);
    size_t siglen;
    unsigned char *sig = sign_bytes(kind, key, secret, secret_len, input, &siglen);
    if (flip_byte >= 0 && (size_t)flip_byte < siglen)
        sig[flip_byte] ^= 1;
    if (extra_sig_bytes) {
        sig = realloc(sig, siglen + extra_sig_bytes);
        memset(sig + siglen, 0, extra_sig_bytes);
        siglen += extra_sig_bytes;
    }
    char *s = b64url(sig, siglen);
    char *tok = join3(h, p, s);
    free(h);
    free(p);
    free(s);
    free(sig);
    free(input);
    return tok;
}

static char *make_token(const char *header, const char *payload, sig_kind kind, EVP_PKEY *key)
{
    return make_token_key(header, payload, kind, key, NULL, 0);
}

static char *make_hs256(const char *header, const char *payload, const void *secret, size_t len)
{
    return make_token_key(header, payload, SIG_HS256, NULL, secret, len);
}

#define H_ES256 "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"ec-1\"}"
#define H_EDDSA "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}"
#define H_RS256 "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"rsa-1\"}"
#define H_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* The claims of a token; a NULL string or a flag leaves the claim out. */
typedef struct claims_spec {
    const char *iss, *sub, *aud_json, *extra;
    int64_t exp, nbf, iat;
    bool no_exp, no_iat;
} claims_spec;

static claims_spec good_claims(void)
{
    claims_spec c = {
        .iss = ISS,
        .sub = "5f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f",
        .aud_json = "\"" AUD "\"",
        .extra = ",\"email\":\"ada@example.com\",\"phone\":\"\",\"role\":\"authenticated\","
                 "\"session_id\":\"0d7e3c1a-2b4f-4e6a-8c9d-1e2f3a4b5c6d\",\"is_anonymous\":false,"
                 "\"app_metadata\":{\"provider\":\"email\",\"providers\":[\"email\"]}",
        .exp = NOW + 3600,
        .iat = NOW,
    };
    return c;
}

static char *payload_of(const claims_spec *c)
{
    size_t cap = 2048 + (c->extra ? strlen(c->extra) : 0);
    char *out = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "{\"v\":1");
    if (c->iss)
        n += (size_t)snprintf(out + n, cap - n, ",\"iss\":\"%s\"", c->iss);
    if (c->sub)
        n += (size_t)snprintf(out + n, cap - n, ",\"sub\":\"%s\"", c->sub);
    if (c->aud_json)
        n += (size_t)snprintf(out + n, cap - n, ",\"aud\":%s", c->aud_json);
    if (!c->no_exp)
        n += (size_t)snprintf(out + n, cap - n, ",\"exp\":%lld", (long long)c->exp);
    if (c->nbf)
        n += (size_t)snprintf(out + n, cap - n, ",\"nbf\":%lld", (long long)c->nbf);
    if (!c->no_iat)
        n += (size_t)snprintf(out + n, cap - n, ",\"iat\":%lld", (long long)c->iat);
    if (c->extra)
        n += (size_t)snprintf(out + n, cap - n, "%s", c->extra);
    snprintf(out + n, cap - n, "}");
    return out;
}

/* A token with the given claims, signed ES256 by ec_key as kid ec-1. */
static char *es256_with(const claims_spec *c)
{
    char *p = payload_of(c);
    char *t = make_token(H_ES256, p, SIG_ES256, ec_key);
    free(p);
    return t;
}

/* ---- verifiers -------------------------------------------------------------------------- */

static jwt_verifier *verifier(unsigned algs, const jwt_key_config *keys, size_t n)
{
    jwt_verifier_config cfg = {
        .algs = algs,
        .keys = keys,
        .nkeys = n,
        .issuer = ISS,
        .audience = AUD,
        .leeway = LEEWAY,
        .clock = fixed_clock,
    };
    sdo_error err;
    jwt_verifier *v = jwt_verifier_new(&cfg, &err);
    if (!v)
        fail_msg("jwt_verifier_new: %s", err.message);
    return v;
}

/* ES256 with ec_key as "ec-1": the verifier most cases use. */
static jwt_verifier *es256_verifier(void)
{
    jwt_key_config k = {.kid = "ec-1", .pkey = ec_key};
    return verifier(JWT_ALG_ES256, &k, 1);
}

static void expect_ok(jwt_verifier *v, const char *token, jwt_claims *c)
{
    sdo_error err;
    memset(&err, 0, sizeof err);
    int rc = jwt_verify(v, token, c, &err);
    if (rc != 0)
        fail_msg("refused (%s): %s", err.reason, err.message);
    assert_true(c->sub[0] != 0);
}

/* Expects a refusal with the reason; returns the message (valid until the next call). */
static const char *expect_reject(jwt_verifier *v, const char *token, const char *reason)
{
    static sdo_error err;
    jwt_claims c;
    memset(&c, 0x5a, sizeof c);
    memset(&err, 0, sizeof err);
    int rc = jwt_verify(v, token, &c, &err);
    if (rc == 0)
        fail_msg("accepted a token that should fail with %s", reason);
    assert_int_equal(rc, -SDO_UNAUTHENTICATED);
    assert_int_equal(err.code, SDO_UNAUTHENTICATED);
    if (strcmp(err.reason, reason) != 0)
        fail_msg("reason %s (%s), expected %s", err.reason, err.message, reason);
    assert_true(err.message[0] != 0);
    /* nothing of a refused token is handed out */
    assert_int_equal(c.sub[0], 0);
    assert_int_equal(c.exp, 0);
    return err.message;
}

/* ---- accepted tokens -------------------------------------------------------------------- */

static void test_valid_es256(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.extra = ",\"email\":\"ada@example.com\",\"role\":\"authenticated\",\"jti\":\"j-42\","
               "\"session_id\":\"0d7e3c1a-2b4f-4e6a-8c9d-1e2f3a4b5c6d\"";
    char *t = es256_with(&cs);
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_ES256);
    assert_string_equal(c.kid, "ec-1");
    assert_string_equal(c.sub, "5f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f");
    assert_string_equal(c.email, "ada@example.com");
    assert_string_equal(c.role, "authenticated");
    assert_string_equal(c.iss, ISS);
    assert_string_equal(c.aud, AUD);
    assert_string_equal(c.jti, "j-42");
    assert_string_equal(c.session_id, "0d7e3c1a-2b4f-4e6a-8c9d-1e2f3a4b5c6d");
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.iat, NOW);
    assert_int_equal(c.nbf, 0);
    free(t);
    jwt_verifier_free(v);
}

static void test_valid_eddsa(void **state)
{
    (void)state;
    jwt_key_config k = {.kid = "ed-1", .pkey = ed_key};
    jwt_verifier *v = verifier(JWT_ALG_EDDSA, &k, 1);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token(H_EDDSA, p, SIG_EDDSA, ed_key);
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_EDDSA);
    assert_string_equal(c.email, "ada@example.com");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_valid_rs256(void **state)
{
    (void)state;
    jwt_key_config k = {.kid = "rsa-1", .pem = rsa_pem};
    jwt_verifier *v = verifier(JWT_ALG_RS256, &k, 1);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token(H_RS256, p, SIG_RS256, rsa_key);
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_RS256);
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_valid_hs256(void **state)
{
    (void)state;
    /* Supabase's legacy secret: HS256 tokens carry no kid and use the only HMAC key */
    jwt_key_config k = {.secret = (const unsigned char *)SECRET, .secret_len = strlen(SECRET)};
    jwt_verifier *v = verifier(JWT_ALG_HS256, &k, 1);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_hs256(H_HS256, p, SECRET, strlen(SECRET));
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_HS256);
    assert_string_equal(c.kid, "");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_valid_without_kid_single_key(void **state)
{
    (void)state;
    jwt_key_config k = {.pkey = ec_key};
    jwt_verifier *v = verifier(JWT_ALG_ES256, &k, 1);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token("{\"alg\":\"ES256\"}", p, SIG_ES256, ec_key);
    jwt_claims c;
    expect_ok(v, t, &c);
    free(t);
    /* typ is compared without regard to case, and may be the media type */
    t = make_token("{\"alg\":\"ES256\",\"typ\":\"application/jwt\"}", p, SIG_ES256, ec_key);
    expect_ok(v, t, &c);
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_aud_array_accepted(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.aud_json = "[\"https://api.example.com\",\"" AUD "\"]";
    char *t = es256_with(&cs);
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_string_equal(c.aud, AUD);
    free(t);
    jwt_verifier_free(v);
}

static void test_leeway_edges_accepted(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    jwt_claims c;
    claims_spec cs = good_claims();
    /* expired LEEWAY - 1 seconds ago: still inside the leeway */
    cs.exp = NOW - LEEWAY + 1;
    char *t = es256_with(&cs);
    expect_ok(v, t, &c);
    free(t);
    /* valid from LEEWAY seconds in the future: inside the leeway */
    cs = good_claims();
    cs.nbf = NOW + LEEWAY;
    t = es256_with(&cs);
    expect_ok(v, t, &c);
    assert_int_equal(c.nbf, NOW + LEEWAY);
    free(t);
    /* fractional NumericDates are allowed (RFC 7519 section 2) */
    cs = good_claims();
    cs.no_exp = true;
    cs.extra = ",\"exp\":1700000000.5e0";
    cs.exp = 0;
    jwt_key_config k = {.kid = "ec-1", .pkey = ec_key};
    jwt_verifier_config cfg = {.algs = JWT_ALG_ES256, .keys = &k, .nkeys = 1, .clock = fixed_clock};
    sdo_error err;
    jwt_verifier *strict = jwt_verifier_new(&cfg, &err); /* no leeway */
    assert_non_null(strict);
    t = es256_with(&cs);
    /* exp 1700000000.5 is rounded down: at NOW the token has expired */
    expect_reject(strict, t, "TOKEN_EXPIRED");
    free(t);
    jwt_verifier_free(strict);
    jwt_verifier_free(v);
}

static void test_payload_handed_out(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *t = es256_with(&cs);
    jwt_claims c;
    json_value *payload = NULL;
    sdo_error err;
    assert_int_equal(jwt_verify_payload(v, t, &c, &payload, &err), 0);
    assert_non_null(payload);
    assert_string_equal(json_string(json_get(json_get(payload, "app_metadata"), "provider")),
                        "email");
    json_free(payload);
    /* NULL claims are allowed too */
    assert_int_equal(jwt_verify(v, t, NULL, &err), 0);
    free(t);
    jwt_verifier_free(v);
}

/* ---- refused: algorithm ----------------------------------------------------------------- */

static void test_reject_alg_none_unsigned(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs), *h = b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *pb = b64s(p);
    char *t = join3(h, pb, "");
    const char *msg = expect_reject(v, t, "ALG_NOT_ALLOWED");
    assert_string_equal(msg, "algorithm none is not allowed");
    free(t);
    free(h);
    free(pb);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_alg_none_signed(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs), *pb = b64s(p);
    static const char *const headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                                          "{\"alg\":\"NONE\",\"kid\":\"ec-1\"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *h = b64s(headers[i]);
        /* a real ES256 signature over the same input does not make it acceptable */
        size_t n = strlen(h) + strlen(pb) + 2, siglen;
        char *input = malloc(n);
        snprintf(input, n, "%s.%s", h, pb);
        unsigned char *sig = sign_bytes(SIG_ES256, ec_key, NULL, 0, input, &siglen);
        char *s = b64url(sig, siglen);
        char *t = join3(h, pb, s);
        assert_string_equal(expect_reject(v, t, "ALG_NOT_ALLOWED"),
                            "algorithm none is not allowed");
        free(t);
        free(s);
        free(sig);
        free(input);
        free(h);
    }
    free(pb);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_hs256_with_rsa_public_key_as_secret(void **state)
{
    (void)state;
    /* A verifier that takes RS256 from a JWK set and HS256 from the legacy secret: the
     * attacker signs HS256 using the (public) RSA key's PEM as the HMAC secret. */
    jwt_key_config keys[] = {
        {.kid = "rsa-1", .pem = rsa_pem},
        {.secret = (const unsigned char *)SECRET, .secret_len = strlen(SECRET)},
    };
    claims_spec cs = good_claims();
    cs.sub = "admin";
    char *p = payload_of(&cs);

    /* naming the RSA key: that key is typed RSA and never used as an HMAC secret */
    char *t = make_hs256("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", p, rsa_pem, strlen(rsa_pem));
    jwt_verifier *v = verifier(JWT_ALG_RS256 | JWT_ALG_HS256, keys, 2);
    expect_reject(v, t, "KEY_MISMATCH");
    free(t);
    /* without kid: checked against the configured secret, which it does not match */
    t = make_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, rsa_pem, strlen(rsa_pem));
    expect_reject(v, t, "BAD_SIGNATURE");
    jwt_verifier_free(v);

    /* with only the RSA key configured there is no HMAC key at all */
    v = verifier(JWT_ALG_RS256 | JWT_ALG_HS256, keys, 1);
    expect_reject(v, t, "NO_KEY");
    jwt_verifier_free(v);
    /* and with RS256 alone, HS256 is not even considered */
    v = verifier(JWT_ALG_RS256, keys, 1);
    expect_reject(v, t, "ALG_NOT_ALLOWED");
    jwt_verifier_free(v);
    free(t);
    free(p);
}

static void test_reject_alg_not_allowed(void **state)
{
    (void)state;
    /* the verifier holds an RSA key too, but only ES256 is allowed */
    jwt_key_config keys[] = {{.kid = "ec-1", .pkey = ec_key}, {.kid = "rsa-1", .pem = rsa_pem}};
    jwt_verifier *v = verifier(JWT_ALG_ES256, keys, 2);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token(H_RS256, p, SIG_RS256, rsa_key);
    assert_string_equal(expect_reject(v, t, "ALG_NOT_ALLOWED"), "algorithm RS256 is not allowed");
    free(t);

    static const char *const headers[] = {
        "{\"alg\":\"HS512\",\"kid\":\"ec-1\"}", "{\"alg\":\"ES384\",\"kid\":\"ec-1\"}",
        "{\"alg\":\"es256\",\"kid\":\"ec-1\"}", "{\"alg\":\"ES256 \",\"kid\":\"ec-1\"}",
        "{\"alg\":\"\",\"kid\":\"ec-1\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        t = make_token(headers[i], p, SIG_ES256, ec_key);
        expect_reject(v, t, "ALG_NOT_ALLOWED");
        free(t);
    }
    /* alg missing or not a string */
    t = make_token("{\"kid\":\"ec-1\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    t = make_token("{\"alg\":[\"ES256\"],\"kid\":\"ec-1\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_unsupported_header(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t =
        make_token("{\"alg\":\"ES256\",\"typ\":\"JWE\",\"kid\":\"ec-1\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "UNSUPPORTED_TOKEN");
    free(t);
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"],\"exp\":1}", p,
                   SIG_ES256, ec_key);
    expect_reject(v, t, "UNSUPPORTED_TOKEN");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

/* ---- refused: signature ----------------------------------------------------------------- */

static void test_reject_empty_signature(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *t = es256_with(&cs);
    *(strrchr(t, '.') + 1) = 0;
    assert_string_equal(expect_reject(v, t, "BAD_SIGNATURE"), "token has no signature");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_truncated_signature(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *t = es256_with(&cs);
    size_t n = strlen(t);
    /* 86 characters = 64 bytes; 84 = 63 bytes, 40 = 30 bytes: valid base64url, wrong size */
    t[n - 2] = 0;
    expect_reject(v, t, "BAD_SIGNATURE");
    char *dot = strrchr(t, '.');
    dot[1 + 40] = 0;
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_wrong_signature(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *t = es256_with(&cs);
    /* one bit changed in S: flip a base64url character to its neighbour */
    char *s = strrchr(t, '.') + 1;
    s[60] = s[60] == 'A' ? 'B' : 'A';
    assert_string_equal(expect_reject(v, t, "BAD_SIGNATURE"), "signature does not verify");
    free(t);

    /* a valid signature by another P-256 key under the same kid */
    char *p = payload_of(&cs);
    t = make_token(H_ES256, p, SIG_ES256, ec_other);
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);

    /* the signature of one token on another's header and payload */
    claims_spec other = good_claims();
    other.sub = "someone-else";
    char *t1 = es256_with(&cs), *t2 = es256_with(&other);
    char *mixed = malloc(strlen(t1) + strlen(t2));
    size_t keep = (size_t)(strrchr(t2, '.') - t2);
    memcpy(mixed, t2, keep);
    strcpy(mixed + keep, strrchr(t1, '.'));
    expect_reject(v, mixed, "BAD_SIGNATURE");
    free(mixed);
    free(t1);
    free(t2);

    /* each algorithm, with the last byte of the signature corrupted */
    jwt_key_config keys[] = {
        {.kid = "ec-1", .pkey = ec_key},
        {.kid = "ed-1", .pkey = ed_key},
        {.kid = "rsa-1", .pkey = rsa_key},
        {.secret = (const unsigned char *)SECRET, .secret_len = strlen(SECRET)},
    };
    jwt_verifier *all =
        verifier(JWT_ALG_ES256 | JWT_ALG_EDDSA | JWT_ALG_RS256 | JWT_ALG_HS256, keys, 4);
    static const struct {
        const char *header;
        sig_kind kind;
        int last;
    } algs[] = {
        {H_ES256, SIG_ES256, 63},
        {H_EDDSA, SIG_EDDSA, 63},
        {H_RS256, SIG_RS256, 255},
        {H_HS256, SIG_HS256, 31},
    };
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        flip_byte = algs[i].last;
        t = make_token_key(algs[i].header, p, algs[i].kind, keys[i].pkey, SECRET, strlen(SECRET));
        flip_byte = -1;
        expect_reject(all, t, "BAD_SIGNATURE");
        free(t);
        /* the same token unharmed passes, so the corruption is what is refused */
        t = make_token_key(algs[i].header, p, algs[i].kind, keys[i].pkey, SECRET, strlen(SECRET));
        jwt_claims c;
        expect_ok(all, t, &c);
        free(t);
    }
    jwt_verifier_free(all);

    /* the payload changed after signing */
    t = es256_with(&cs);
    char *dot1 = strchr(t, '.');
    dot1[5] = dot1[5] == 'x' ? 'y' : 'x';
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_es256_der_signature(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    /* OpenSSL's own encoding (DER SEQUENCE of two INTEGERs) is not what JWS specifies */
    char *t = make_token(H_ES256, p, SIG_ES256_DER, ec_key);
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);
    /* a valid R || S with bytes after it */
    extra_sig_bytes = 8;
    t = make_token(H_ES256, p, SIG_ES256, ec_key);
    extra_sig_bytes = 0;
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_unknown_kid(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token("{\"alg\":\"ES256\",\"kid\":\"rotated-2\"}", p, SIG_ES256, ec_key);
    const char *msg = expect_reject(v, t, "UNKNOWN_KID");
    assert_non_null(strstr(msg, "rotated-2"));
    free(t);
    /* kid of the wrong type */
    t = make_token("{\"alg\":\"ES256\",\"kid\":7}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_ambiguous_key(void **state)
{
    (void)state;
    jwt_key_config keys[] = {{.kid = "ec-1", .pkey = ec_key}, {.kid = "ec-2", .pkey = ec_other}};
    jwt_verifier *v = verifier(JWT_ALG_ES256, keys, 2);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token("{\"alg\":\"ES256\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "NO_KEY");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

/* ---- refused: claims -------------------------------------------------------------------- */

static void test_reject_expired(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.exp = NOW - 3600;
    char *t = es256_with(&cs);
    assert_string_equal(expect_reject(v, t, "TOKEN_EXPIRED"), "token expired");
    free(t);
    /* exactly at the edge of the leeway: expired */
    cs.exp = NOW - LEEWAY;
    t = es256_with(&cs);
    expect_reject(v, t, "TOKEN_EXPIRED");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_not_yet_valid(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.nbf = NOW + LEEWAY + 1;
    char *t = es256_with(&cs);
    expect_reject(v, t, "TOKEN_NOT_YET_VALID");
    free(t);
    cs.nbf = NOW + 86400;
    t = es256_with(&cs);
    expect_reject(v, t, "TOKEN_NOT_YET_VALID");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_missing_or_bad_exp(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.no_exp = true;
    char *t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    cs.extra = ",\"exp\":\"1800000000\"";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    cs = good_claims();
    cs.no_iat = true;
    cs.extra = ",\"iat\":true";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_wrong_issuer(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.iss = "https://other.supabase.co/auth/v1";
    char *t = es256_with(&cs);
    expect_reject(v, t, "WRONG_ISSUER");
    free(t);
    cs.iss = NULL;
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_wrong_audience_string(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.aud_json = "\"anon\"";
    char *t = es256_with(&cs);
    expect_reject(v, t, "WRONG_AUDIENCE");
    free(t);
    cs.aud_json = NULL;
    t = es256_with(&cs);
    expect_reject(v, t, "WRONG_AUDIENCE");
    free(t);
    cs.aud_json = "\"Authenticated\"";
    t = es256_with(&cs);
    expect_reject(v, t, "WRONG_AUDIENCE");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_wrong_audience_array(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.aud_json = "[\"anon\",\"service_role\"]";
    char *t = es256_with(&cs);
    expect_reject(v, t, "WRONG_AUDIENCE");
    free(t);
    cs.aud_json = "[]";
    t = es256_with(&cs);
    expect_reject(v, t, "WRONG_AUDIENCE");
    free(t);
    cs.aud_json = "[\"" AUD "\",42]";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    cs.aud_json = "{\"aud\":\"" AUD "\"}";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_missing_sub(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.sub = NULL;
    char *t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    cs.sub = "";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    cs.sub = NULL;
    cs.extra = ",\"sub\":12345";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    /* a sub C would read as "admin" */
    cs.extra = ",\"sub\":\"admin\\u0000-not\"";
    t = es256_with(&cs);
    expect_reject(v, t, "INVALID_CLAIM");
    free(t);
    jwt_verifier_free(v);
}

static void test_reject_duplicate_claims(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    cs.extra = ",\"sub\":\"admin\"";
    char *t = es256_with(&cs);
    const char *msg = expect_reject(v, t, "MALFORMED_TOKEN");
    assert_non_null(strstr(msg, "duplicate key \"sub\""));
    free(t);
    cs = good_claims();
    cs.extra = ",\"role\":\"user\",\"r\\u006fle\":\"service_role\"";
    t = es256_with(&cs);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    /* in the header too */
    char *p = payload_of(&cs);
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"alg\":\"none\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    free(p);
    jwt_verifier_free(v);
}

/* ---- refused: encoding and size --------------------------------------------------------- */

static void test_reject_malformed_base64(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *good = es256_with(&cs);
    jwt_claims c;
    expect_ok(v, good, &c);
    size_t n = strlen(good);
    char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    size_t h = (size_t)(d1 - good), s = (size_t)(d2 - good);

    /* a character outside the alphabet in each part */
    size_t at[] = {1, h + 3, s + 3};
    const char bad[] = {'+', '/', '*', ' ', '=', '\n', '\x80'};
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = 0; k < sizeof bad; k++) {
            char *t = strdup(good);
            t[at[i]] = bad[k];
            expect_reject(v, t, "MALFORMED_TOKEN");
            free(t);
        }
    }
    /* padding */
    char *t = malloc(n + 4);
    snprintf(t, n + 4, "%s==", good);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    /* an impossible length (4k+1 characters) */
    assert_int_equal((n - s - 1) % 4, 2);
    t = malloc(n + 4);
    snprintf(t, n + 4, "%sAAA", good);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    /* non-canonical: 86 characters hold 64 bytes and 4 unused bits, which must be zero */
    t = strdup(good);
    char *last = t + n - 1;
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t val = (size_t)(strchr(alpha, *last) - alpha);
    *last = alpha[val ^ 1];
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    free(good);
    jwt_verifier_free(v);
}

static void test_reject_malformed_structure(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *good = es256_with(&cs);
    static const char *const bad[] = {"",    ".",       "..",        "...",
                                      "a.b", "a.b.c.d", "a.b.c.d.e", "Bearer x.y.z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(v, bad[i], "MALFORMED_TOKEN");
    expect_reject(v, NULL, "MALFORMED_TOKEN");
    /* five parts, as an encrypted token (JWE) has */
    size_t n = strlen(good) + 8;
    char *t = malloc(n);
    snprintf(t, n, "%s.AAAA.AA", good);
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    /* an empty header or payload */
    t = strdup(strchr(good, '.'));
    expect_reject(v, t, "MALFORMED_TOKEN");
    free(t);
    free(good);
    jwt_verifier_free(v);
}

static void test_reject_malformed_json_header(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    static const char *const headers[] = {
        "{\"alg\":\"ES256\",\"kid\":\"ec-1\"",
        "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}x",
        "[\"ES256\"]",
        "\"ES256\"",
        "{'alg':'ES256'}",
        "{\"alg\":\"ES256\",\"kid\":\"ec-1\",}",
        "{\"alg\":\"ES\\u0000256\",\"kid\":\"ec-1\"}",
        "{\"alg\":\"ES256\",\"kid\":\"ec\xff\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = make_token(headers[i], p, SIG_ES256, ec_key);
        expect_reject(v, t, "MALFORMED_TOKEN");
        free(t);
    }
    free(p);
    jwt_verifier_free(v);
}

static void test_reject_malformed_json_payload(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    static const char *const payloads[] = {
        "{\"sub\":\"a\",\"exp\":1800000000",
        "{\"sub\":\"a\",\"exp\":1800000000}garbage",
        "[{\"sub\":\"a\",\"exp\":1800000000}]",
        "\"sub\"",
        "null",
        "{\"sub\":\"a\",\"exp\":01800000000}",
        "{\"sub\":\"a\\x\",\"exp\":1800000000}",
        "{\"sub\":\"\xc0\xaf\",\"exp\":1800000000}",
        "{\"sub\":\"\\ud800\",\"exp\":1800000000}",
        "{\"sub\":\"tab\there\",\"exp\":1800000000}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *t = make_token(H_ES256, payloads[i], SIG_ES256, ec_key);
        expect_reject(v, t, "MALFORMED_TOKEN");
        free(t);
    }
    jwt_verifier_free(v);
}

static void test_reject_oversized_token(void **state)
{
    (void)state;
    jwt_verifier *v = es256_verifier();
    claims_spec cs = good_claims();
    char *big = malloc(7000);
    memset(big, 'x', 6999);
    big[6999] = 0;
    char *extra = malloc(7100);
    snprintf(extra, 7100, ",\"user_metadata\":{\"bio\":\"%s\"}", big);
    cs.extra = extra;
    char *t = es256_with(&cs);
    assert_true(strlen(t) > JWT_DEFAULT_MAX_TOKEN_SIZE);
    expect_reject(v, t, "TOKEN_TOO_LARGE");
    free(t);
    /* the same size is fine when the configuration allows it */
    jwt_key_config k = {.kid = "ec-1", .pkey = ec_key};
    jwt_verifier_config cfg = {.algs = JWT_ALG_ES256,
                               .keys = &k,
                               .nkeys = 1,
                               .max_token_size = 16384,
                               .clock = fixed_clock};
    sdo_error err;
    jwt_verifier *roomy = jwt_verifier_new(&cfg, &err);
    t = es256_with(&cs);
    jwt_claims c;
    expect_ok(roomy, t, &c);
    free(t);
    jwt_verifier_free(roomy);
    free(extra);
    free(big);
    jwt_verifier_free(v);
}

/* ---- JWK sets --------------------------------------------------------------------------- */

static char *b64_bn_param(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

static char *jwk_ec(EVP_PKEY *k, const char *kid)
{
    char *x = b64_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = b64_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char *out = malloc(512);
    snprintf(out, 512,
             "{\"kid\":\"%s\",\"alg\":\"ES256\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
             "\"y\":\"%s\",\"use\":\"sig\",\"key_ops\":[\"verify\"],\"ext\":true}",
             kid, x, y);
    free(x);
    free(y);
    return out;
}

static char *jwk_rsa(EVP_PKEY *k, const char *kid)
{
    char *n = b64_bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = b64_bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0);
    char *out = malloc(1024);
    snprintf(out, 1024,
             "{\"kid\":\"%s\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\","
             "\"use\":\"sig\",\"key_ops\":[\"verify\"]}",
             kid, n, e);
    free(n);
    free(e);
    return out;
}

static char *jwk_okp(EVP_PKEY *k, const char *kid)
{
    unsigned char raw[32];
    size_t len = sizeof raw;
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
    char *x = b64url(raw, len);
    char *out = malloc(512);
    snprintf(out, 512,
             "{\"kid\":\"%s\",\"alg\":\"EdDSA\",\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\","
             "\"use\":\"sig\",\"key_ops\":[\"verify\"]}",
             kid, x);
    free(x);
    return out;
}

static char *jwks_of(const char *const *keys, size_t n)
{
    size_t cap = 32;
    for (size_t i = 0; i < n; i++)
        cap += strlen(keys[i]) + 1;
    char *out = malloc(cap);
    size_t len = (size_t)snprintf(out, cap, "{\"keys\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", keys[i]);
    snprintf(out + len, cap - len, "]}");
    return out;
}

/* A verifier for Supabase: ES256, RS256 and EdDSA from the JWK set, no static keys. */
static jwt_verifier *jwks_verifier(void)
{
    return verifier(JWT_ALG_ES256 | JWT_ALG_RS256 | JWT_ALG_EDDSA, NULL, 0);
}

static void test_jwks_kid_selection(void **state)
{
    (void)state;
    char *ec = jwk_ec(ec_key, "ec-1"), *ec2 = jwk_ec(ec_other, "ec-2"),
         *rsa = jwk_rsa(rsa_key, "rsa-1"), *ed = jwk_okp(ed_key, "ed-1");
    const char *const skipped[] = {
        /* HMAC keys are never taken from a JWK set */
        "{\"kid\":\"oct-1\",\"kty\":\"oct\",\"k\":"
        "\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"}",
        /* encryption keys, other curves and algorithms, unknown types */
        "{\"kid\":\"enc-1\",\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"x\":\"AA\",\"y\":"
        "\"AA\"}",
        "{\"kid\":\"p384\",\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kid\":\"rs512\",\"kty\":\"RSA\",\"alg\":\"RS512\",\"n\":\"AA\",\"e\":\"AQAB\"}",
        "{\"kid\":\"x448\",\"kty\":\"OKP\",\"crv\":\"X448\",\"x\":\"AA\"}",
        "{\"kid\":\"sign-only\",\"kty\":\"EC\",\"crv\":\"P-256\",\"key_ops\":[\"sign\"],\"x\":"
        "\"AA\",\"y\":\"AA\"}",
        "{\"kid\":\"pq\",\"kty\":\"AKP\",\"alg\":\"ML-DSA-44\"}",
    };
    const char *keys[] = {ec,         ec2,        skipped[0], rsa,        skipped[1], ed,
                          skipped[2], skipped[3], skipped[4], skipped[5], skipped[6]};
    char *jwks = jwks_of(keys, sizeof keys / sizeof keys[0]);
    jwt_verifier *v = jwks_verifier();
    sdo_error err;
    int n = jwt_verifier_set_jwks(v, jwks, &err);
    if (n < 0)
        fail_msg("set_jwks: %s", err.message);
    assert_int_equal(n, 4);

    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    jwt_claims c;
    char *t = make_token(H_ES256, p, SIG_ES256, ec_key);
    expect_ok(v, t, &c);
    assert_string_equal(c.kid, "ec-1");
    free(t);
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", p, SIG_ES256, ec_other);
    expect_ok(v, t, &c);
    assert_string_equal(c.kid, "ec-2");
    free(t);
    /* ec_key's signature presented as ec-2's */
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "BAD_SIGNATURE");
    free(t);
    t = make_token(H_RS256, p, SIG_RS256, rsa_key);
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_RS256);
    free(t);
    t = make_token(H_EDDSA, p, SIG_EDDSA, ed_key);
    expect_ok(v, t, &c);
    assert_int_equal(c.alg, JWT_ALG_EDDSA);
    free(t);
    /* a kid naming a key of another type */
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "KEY_MISMATCH");
    free(t);
    /* skipped keys are unknown */
    t = make_token("{\"alg\":\"ES256\",\"kid\":\"enc-1\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "UNKNOWN_KID");
    free(t);
    /* no kid and two EC keys: ambiguous */
    t = make_token("{\"alg\":\"ES256\"}", p, SIG_ES256, ec_key);
    expect_reject(v, t, "NO_KEY");
    free(t);
    /* no kid and exactly one RSA key */
    t = make_token("{\"alg\":\"RS256\"}", p, SIG_RS256, rsa_key);
    expect_ok(v, t, &c);
    free(t);

    free(p);
    free(jwks);
    free(ec);
    free(ec2);
    free(rsa);
    free(ed);
    jwt_verifier_free(v);
}

static void test_jwks_replaced(void **state)
{
    (void)state;
    /* a static HS256 secret next to the JWK set, as with Supabase's legacy secret */
    jwt_key_config k = {.secret = (const unsigned char *)SECRET, .secret_len = strlen(SECRET)};
    jwt_verifier *v = verifier(JWT_ALG_ES256 | JWT_ALG_HS256, &k, 1);
    char *ec = jwk_ec(ec_key, "ec-1"), *ec2 = jwk_ec(ec_other, "ec-2");
    char *set1 = jwks_of((const char *const[]){ec}, 1);
    char *set2 = jwks_of((const char *const[]){ec2}, 1);
    sdo_error err;
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t1 = make_token(H_ES256, p, SIG_ES256, ec_key);
    char *t2 = make_token("{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", p, SIG_ES256, ec_other);
    char *th = make_hs256(H_HS256, p, SECRET, strlen(SECRET));
    jwt_claims c;

    /* before any JWK set: kids are unknown */
    expect_reject(v, t1, "UNKNOWN_KID");
    assert_int_equal(jwt_verifier_set_jwks(v, set1, &err), 1);
    expect_ok(v, t1, &c);
    expect_reject(v, t2, "UNKNOWN_KID");
    /* key rotation: the old kid disappears, the new one appears */
    assert_int_equal(jwt_verifier_set_jwks(v, set2, &err), 1);
    expect_reject(v, t1, "UNKNOWN_KID");
    expect_ok(v, t2, &c);
    /* the configured secret stays */
    expect_ok(v, th, &c);
    /* an empty set ({"keys":[]}, an HS256-only project) */
    assert_int_equal(jwt_verifier_set_jwks(v, "{\"keys\":[]}", &err), 0);
    expect_reject(v, t2, "UNKNOWN_KID");
    expect_ok(v, th, &c);

    free(th);
    free(t1);
    free(t2);
    free(p);
    free(set1);
    free(set2);
    free(ec);
    free(ec2);
    jwt_verifier_free(v);
}

static void test_jwks_malformed_keeps_previous(void **state)
{
    (void)state;
    jwt_verifier *v = jwks_verifier();
    char *ec = jwk_ec(ec_key, "ec-1");
    char *set = jwks_of((const char *const[]){ec}, 1);
    sdo_error err;
    assert_int_equal(jwt_verifier_set_jwks(v, set, &err), 1);

    /* a point that is not on the curve: y of another key */
    char *other = jwk_ec(ec_other, "ec-x");
    char *mixed = strdup(ec);
    char *y_at = strstr(mixed, "\"y\":\""), *y_other = strstr(other, "\"y\":\"");
    memcpy(y_at, y_other, 5 + 43);
    char *kid_at = strstr(mixed, "ec-1");
    kid_at[3] = '9';

    const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[1]}",
        "{\"keys\":[{\"kid\":\"a\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA+A\"}]}",
        "{\"keys\":[],\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"EC\",\"use\":7}]}",
        mixed,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = jwt_verifier_set_jwks(v, bad[i], &err);
        if (rc >= 0)
            fail_msg("took %s", bad[i]);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_true(err.message[0] != 0);
    }
    assert_true(jwt_verifier_set_jwks(v, NULL, &err) < 0);

    /* the first set is still in force */
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token(H_ES256, p, SIG_ES256, ec_key);
    jwt_claims c;
    expect_ok(v, t, &c);
    free(t);
    free(p);
    free(mixed);
    free(other);
    free(set);
    free(ec);
    jwt_verifier_free(v);
}

typedef struct race {
    jwt_verifier *v;
    const char *token;
    int failures;
} race;

static void *verify_loop(void *arg)
{
    race *r = arg;
    for (int i = 0; i < 150; i++) {
        jwt_claims c;
        sdo_error err;
        if (jwt_verify(r->v, r->token, &c, &err) != 0)
            r->failures++;
    }
    return NULL;
}

static void test_jwks_swap_while_verifying(void **state)
{
    (void)state;
    jwt_verifier *v = jwks_verifier();
    char *ec = jwk_ec(ec_key, "ec-1"), *ed = jwk_okp(ed_key, "ed-1");
    char *set = jwks_of((const char *const[]){ec, ed}, 2);
    sdo_error err;
    assert_int_equal(jwt_verifier_set_jwks(v, set, &err), 2);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    char *t = make_token(H_EDDSA, p, SIG_EDDSA, ed_key);

    enum { THREADS = 4 };
    pthread_t th[THREADS];
    race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (race){.v = v, .token = t};
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, &r[i]), 0);
    }
    /* replace the set with an equal one over and over: verifications always find the key */
    for (int i = 0; i < 100; i++)
        assert_int_equal(jwt_verifier_set_jwks(v, set, &err), 2);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].failures, 0);
    }
    free(t);
    free(p);
    free(set);
    free(ec);
    free(ed);
    jwt_verifier_free(v);
}

/* ---- configuration ---------------------------------------------------------------------- */

static char *public_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static void expect_config_error(const jwt_verifier_config *cfg, const char *needle)
{
    sdo_error err;
    memset(&err, 0, sizeof err);
    jwt_verifier *v = jwt_verifier_new(cfg, &err);
    if (v) {
        jwt_verifier_free(v);
        fail_msg("configuration accepted; expected '%s'", needle);
    }
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' lacks '%s'", err.message, needle);
}

static void test_config_errors(void **state)
{
    (void)state;
    jwt_verifier_config cfg = {.algs = 0};
    expect_config_error(&cfg, "algorithms");
    cfg.algs = 1u << 7;
    expect_config_error(&cfg, "algorithms");
    cfg.algs = JWT_ALG_ES256;
    cfg.leeway = -1;
    expect_config_error(&cfg, "leeway");
    cfg.leeway = 0;

    jwt_key_config k = {.secret = (const unsigned char *)"short", .secret_len = 5};
    cfg.keys = &k;
    cfg.nkeys = 1;
    expect_config_error(&cfg, "at least 32");

    k = (jwt_key_config){.kid = "bad", .pem = "-----BEGIN PUBLIC KEY-----\nnope\n"};
    expect_config_error(&cfg, "kid 'bad'");

    /* a private key where a public key is expected */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, ec_key, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *priv = strndup(data, (size_t)len);
    BIO_free(bio);
    k = (jwt_key_config){.pem = priv};
    expect_config_error(&cfg, "PEM public key");
    free(priv);

    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    char *pem = public_pem(p384);
    k = (jwt_key_config){.pem = pem};
    expect_config_error(&cfg, "P-256");
    free(pem);
    EVP_PKEY_free(p384);

    EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(rsa1024);
    k = (jwt_key_config){.pkey = rsa1024};
    expect_config_error(&cfg, "2048");
    EVP_PKEY_free(rsa1024);

    k = (jwt_key_config){
        .pem = rsa_pem, .secret = (const unsigned char *)SECRET, .secret_len = strlen(SECRET)};
    expect_config_error(&cfg, "exactly one");
}

/* ---- signing and key files -------------------------------------------------------------- */

static void test_sign_roundtrip(void **state)
{
    (void)state;
    jwt_key_config keys[] = {
        {.kid = "ec-1", .pkey = ec_key},
        {.kid = "ed-1", .pkey = ed_key},
        {.kid = "rsa-1", .pkey = rsa_key},
    };
    jwt_verifier *v = verifier(JWT_ALG_ES256 | JWT_ALG_EDDSA | JWT_ALG_RS256, keys, 3);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs);
    static const jwt_alg want[] = {JWT_ALG_ES256, JWT_ALG_EDDSA, JWT_ALG_RS256};
    for (int i = 0; i < 3; i++) {
        char *t = NULL;
        sdo_error err;
        assert_int_equal(jwt_sign(keys[i].pkey, keys[i].kid, p, &t, &err), 0);
        assert_non_null(t);
        jwt_claims c;
        expect_ok(v, t, &c);
        assert_int_equal(c.alg, want[i]);
        assert_string_equal(c.kid, keys[i].kid);
        if (want[i] == JWT_ALG_ES256) /* R || S: 64 bytes, 86 characters */
            assert_int_equal(strlen(strrchr(t, '.') + 1), 86);
        free(t);
    }
    /* without kid: the only key of the type is used */
    char *t = NULL;
    sdo_error err;
    assert_int_equal(jwt_sign(ec_key, NULL, p, &t, &err), 0);
    jwt_claims c;
    expect_ok(v, t, &c);
    assert_string_equal(c.kid, "");
    free(t);

    /* what jwt_sign refuses */
    assert_int_equal(jwt_sign(ec_key, NULL, "[1]", &t, &err), -SDO_INVALID_ARGUMENT);
    assert_null(t);
    assert_int_equal(jwt_sign(ec_key, NULL, "{\"a\":1,\"a\":2}", &t, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(jwt_sign(ec_key, "bad\"kid", p, &t, &err), -SDO_INVALID_ARGUMENT);
    /* a public key cannot sign */
    BIO *bio = BIO_new_mem_buf(rsa_pem, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_int_equal(jwt_sign(pub, NULL, p, &t, &err), -SDO_INVALID_ARGUMENT);
    EVP_PKEY_free(pub);
    free(p);
    jwt_verifier_free(v);
}

static void test_load_or_create_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_jwt.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/signing.pem", dir);
    sdo_error err;
    bool created = false;

    EVP_PKEY *k1 = jwt_load_or_create_key(path, JWT_ALG_ES256, &created, &err);
    if (!k1)
        fail_msg("%s", err.message);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    EVP_PKEY *k2 = jwt_load_or_create_key(path, JWT_ALG_ES256, &created, &err);
    assert_non_null(k2);
    assert_false(created);
    assert_int_equal(EVP_PKEY_eq(k1, k2), 1);

    /* signed with the key as created, verified with the key as loaded */
    jwt_key_config kc = {.kid = "server-1", .pkey = k2};
    jwt_verifier *v = verifier(JWT_ALG_ES256, &kc, 1);
    claims_spec cs = good_claims();
    char *p = payload_of(&cs), *t = NULL;
    assert_int_equal(jwt_sign(k1, "server-1", p, &t, &err), 0);
    jwt_claims c;
    expect_ok(v, t, &c);
    free(t);
    free(p);
    jwt_verifier_free(v);

    /* a file that is not a key */
    char junk[256];
    snprintf(junk, sizeof junk, "%s/junk.pem", dir);
    FILE *f = fopen(junk, "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_null(jwt_load_or_create_key(junk, JWT_ALG_ES256, NULL, &err));
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    /* a directory that does not exist */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/key.pem", dir);
    assert_null(jwt_load_or_create_key(missing, JWT_ALG_ES256, NULL, &err));
    assert_null(jwt_load_private_key(missing, &err));
    assert_int_equal(err.code, SDO_NOT_FOUND);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    unlink(junk);
    unlink(path);
    rmdir(dir);
}

/* ---- setup ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!ec_key || !ec_other || !ed_key || !rsa_key)
        return -1;
    rsa_pem = public_pem(rsa_key);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec_other);
    EVP_PKEY_free(ed_key);
    EVP_PKEY_free(rsa_key);
    free(rsa_pem);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_es256),
        cmocka_unit_test(test_valid_eddsa),
        cmocka_unit_test(test_valid_rs256),
        cmocka_unit_test(test_valid_hs256),
        cmocka_unit_test(test_valid_without_kid_single_key),
        cmocka_unit_test(test_aud_array_accepted),
        cmocka_unit_test(test_leeway_edges_accepted),
        cmocka_unit_test(test_payload_handed_out),
        cmocka_unit_test(test_reject_alg_none_unsigned),
        cmocka_unit_test(test_reject_alg_none_signed),
        cmocka_unit_test(test_reject_hs256_with_rsa_public_key_as_secret),
        cmocka_unit_test(test_reject_alg_not_allowed),
        cmocka_unit_test(test_reject_unsupported_header),
        cmocka_unit_test(test_reject_empty_signature),
        cmocka_unit_test(test_reject_truncated_signature),
        cmocka_unit_test(test_reject_wrong_signature),
        cmocka_unit_test(test_reject_es256_der_signature),
        cmocka_unit_test(test_reject_unknown_kid),
        cmocka_unit_test(test_reject_ambiguous_key),
        cmocka_unit_test(test_reject_expired),
        cmocka_unit_test(test_reject_not_yet_valid),
        cmocka_unit_test(test_reject_missing_or_bad_exp),
        cmocka_unit_test(test_reject_wrong_issuer),
        cmocka_unit_test(test_reject_wrong_audience_string),
        cmocka_unit_test(test_reject_wrong_audience_array),
        cmocka_unit_test(test_reject_missing_sub),
        cmocka_unit_test(test_reject_duplicate_claims),
        cmocka_unit_test(test_reject_malformed_base64),
        cmocka_unit_test(test_reject_malformed_structure),
        cmocka_unit_test(test_reject_malformed_json_header),
        cmocka_unit_test(test_reject_malformed_json_payload),
        cmocka_unit_test(test_reject_oversized_token),
        cmocka_unit_test(test_jwks_kid_selection),
        cmocka_unit_test(test_jwks_replaced),
        cmocka_unit_test(test_jwks_malformed_keeps_previous),
        cmocka_unit_test(test_jwks_swap_while_verifying),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_load_or_create_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
