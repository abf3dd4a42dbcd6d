/* JSON Web Tokens (RFC 7519, compact JWS of RFC 7515): verification of access tokens, from
 * Supabase Auth or from this server, and signing of the server's own tokens.
 *
 * The verifier is built from configuration and trusts nothing the token says about how to
 * check it: the allowed algorithms come from the configuration, keys are typed (an HS256
 * token is only ever checked against a configured HMAC secret, never against the bytes of a
 * public key), and keys named in the token header (jwk, jku, x5u) are ignored. */
#ifndef SDO_JWT_H
#define SDO_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/json.h"
#include "util/util.h"

/* Signature algorithms (JWA names in comments), combined with | in a configuration. */
typedef enum {
    JWT_ALG_ES256 = 1 << 0, /* "ES256": ECDSA P-256 SHA-256, signature R || S */
    JWT_ALG_EDDSA = 1 << 1, /* "EdDSA": Ed25519 */
    JWT_ALG_RS256 = 1 << 2, /* "RS256": RSASSA-PKCS1-v1_5 SHA-256, RSA of 2048 bits or more */
    JWT_ALG_HS256 = 1 << 3, /* "HS256": HMAC SHA-256, secret of 32 bytes or more */
} jwt_alg;

/* The JWA name of one algorithm ("ES256"), or NULL. */
const char *jwt_alg_name(jwt_alg alg);

#define JWT_DEFAULT_MAX_TOKEN_SIZE 8192
#define JWT_MAX_LEEWAY 3600
#define JWT_MIN_HMAC_SECRET 32

/* One configured key. Exactly one of pem, pkey and secret is set. */
typedef struct jwt_key_config {
    const char *kid;             /* optional key id matched against the token's "kid" */
    const char *pem;             /* public key, PEM SubjectPublicKeyInfo ("PUBLIC KEY"):
                                    EC P-256, Ed25519 or RSA */
    EVP_PKEY *pkey;              /* or a key object, public or private (the verifier takes
                                    its own reference), e.g. the server's signing key */
    const unsigned char *secret; /* or an HS256 secret: secret_len bytes */
    size_t secret_len;
} jwt_key_config;

typedef struct jwt_verifier_config {
    unsigned algs;              /* allowed algorithms, JWT_ALG_* or'ed; at least one */
    const jwt_key_config *keys; /* static keys, kept across jwt_verifier_set_jwks() */
    size_t nkeys;
    const char *issuer;          /* required "iss"; NULL or "" = not checked */
    const char *audience;        /* required in "aud" (a string or an array of strings);
                                    NULL or "" = not checked */
    int leeway;                  /* clock skew allowed on exp and nbf, seconds, 0..3600 */
    size_t max_token_size;       /* bytes; 0 = JWT_DEFAULT_MAX_TOKEN_SIZE */
    int64_t (*clock)(void *arg); /* current Unix time in seconds; NULL = the system clock */
    void *clock_arg;
} jwt_verifier_config;

typedef struct jwt_verifier jwt_verifier;

/* Builds a verifier; the configuration is copied (keys are parsed, strings duplicated).
 * Returns NULL with err filled in (INVALID_ARGUMENT, naming the key) when a key cannot be
 * used: unreadable PEM, a curve other than P-256, RSA under 2048 bits, a short secret. */
jwt_verifier *jwt_verifier_new(const jwt_verifier_config *cfg, sdo_error *err);
void jwt_verifier_free(jwt_verifier *v);

/* Replaces the keys taken from a JWK set (RFC 7517 {"keys": [...]}) with those of jwks_json,
 * atomically: verifications running on other threads see either the old or the new set.
 * Takes EC P-256, RSA and OKP Ed25519 public keys; skips keys whose "use" is not "sig",
 * whose "key_ops" lack "verify", whose "alg" is not one this verifier could check with that
 * key, and other key types or curves (HMAC "oct" keys are never taken from a JWK set).
 * Returns the number of keys taken (0 or more), or a negative code with err filled in
 * (INVALID_ARGUMENT) when the text is not a JWK set or a key it would take is malformed; the
 * previous set then stays in place. */
int jwt_verifier_set_jwks(jwt_verifier *v, const char *jwks_json, sdo_error *err);

/* What a verified token says. Strings are NUL-terminated; absent optional claims are "" or
 * 0. A token whose claim does not fit its field is rejected rather than cut short. */
typedef struct jwt_claims {
    jwt_alg alg;
    char kid[128]; /* header "kid", "" if none */
    char sub[256]; /* never empty */
    char email[320];
    char role[64];
    char iss[256];
    char aud[256]; /* the configured audience when checked, else the token's (first) */
    char jti[128];
    char session_id[128]; /* Supabase's "session_id" */
    int64_t exp;          /* always present */
    int64_t iat;          /* 0 if absent */
    int64_t nbf;          /* 0 if absent */
} jwt_claims;

/* Verifies a compact JWS token and fills *out (which may be NULL). Returns 0, or
 * -SDO_UNAUTHENTICATED with a short sentence in err->message ("token expired",
 * "signature does not verify", "algorithm none is not allowed") and a code in err->reason:
 *   TOKEN_TOO_LARGE, MALFORMED_TOKEN (structure, base64url, JSON, duplicate members),
 *   UNSUPPORTED_TOKEN (typ not JWT, crit), ALG_NOT_ALLOWED, UNKNOWN_KID (the kid names no
 *   known key: fetch the JWK set again), NO_KEY (no kid and not exactly one key for the
 *   algorithm), KEY_MISMATCH (the kid names a key of another type), BAD_SIGNATURE,
 *   TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, WRONG_ISSUER, WRONG_AUDIENCE, INVALID_CLAIM
 *   (a registered claim missing or of the wrong type or size).
 * Safe to call from many threads at once, also while jwt_verifier_set_jwks() runs. */
int jwt_verify(jwt_verifier *v, const char *token, jwt_claims *out, sdo_error *err);

/* Same, and on success hands the whole payload to *payload for claims jwt_claims does not
 * carry; the caller frees it with json_free(). */
int jwt_verify_payload(jwt_verifier *v, const char *token, jwt_claims *out, json_value **payload,
                       sdo_error *err);

/* Signs payload_json (a JSON object, used as is) with a private key: ES256 for an EC P-256
 * key, EdDSA for Ed25519, RS256 for RSA. The header is {"alg","typ":"JWT"} plus "kid" when
 * kid is not NULL. On success *token is a malloc'ed compact JWS the caller frees. Errors:
 * INVALID_ARGUMENT (payload not a JSON object, unusable key), INTERNAL (OpenSSL failed). */
int jwt_sign(EVP_PKEY *key, const char *kid, const char *payload_json, char **token,
             sdo_error *err);

/* Loads a PEM private key (PKCS#8 or traditional) from path. The caller frees it with
 * EVP_PKEY_free(). NULL with err filled in (NOT_FOUND, INVALID_ARGUMENT) on failure. */
EVP_PKEY *jwt_load_private_key(const char *path, sdo_error *err);

/* Loads the signing key at path or, when the file does not exist, generates a key for alg
 * (JWT_ALG_ES256: EC P-256; JWT_ALG_EDDSA: Ed25519) and writes it there (PKCS#8 PEM, mode 0600,
 * created atomically so that two servers starting together end up with the same key). The key must
 * be EC P-256 or Ed25519. Sets *created (if not NULL) when the file was made. Caller frees with
 * EVP_PKEY_free(). */
EVP_PKEY *jwt_load_or_create_key(const char *path, jwt_alg alg, bool *created, sdo_error *err);

#endif
