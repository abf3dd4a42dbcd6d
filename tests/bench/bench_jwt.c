/* JWT verification throughput: jwt_verify() on one thread for a Supabase-shaped access
 * token, per signature algorithm, with keys generated at start, alternating with the bare
 * OpenSSL signature check timed the way `openssl speed` times it. Prints one key=value line
 * per algorithm; bench_jwt.sh sets the figures beside `openssl speed` itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "auth/jwt.h"
#include "util/util.h"

#define ISSUER "https://bench.supabase.co/auth/v1"
#define AUDIENCE "authenticated"

static double seconds_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The claims Supabase Auth puts in an access token (supabase/auth internal/tokens/service.go,
 * GenerateAccessToken). */
static char *payload(void)
{
    static char buf[1024];
    long now = (long)time(NULL);
    snprintf(buf, sizeof buf,
             "{\"iss\":\"" ISSUER "\",\"sub\":\"5f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f\","
             "\"aud\":\"" AUDIENCE "\",\"exp\":%ld,\"iat\":%ld,\"email\":\"ada@example.com\","
             "\"phone\":\"\",\"app_metadata\":{\"provider\":\"email\",\"providers\":[\"email\"]},"
             "\"user_metadata\":{\"email\":\"ada@example.com\",\"email_verified\":true,"
             "\"phone_verified\":false,\"sub\":\"5f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f\"},"
             "\"role\":\"authenticated\",\"aal\":\"aal1\",\"amr\":[{\"method\":\"password\","
             "\"timestamp\":%ld}],\"session_id\":\"0d7e3c1a-2b4f-4e6a-8c9d-1e2f3a4b5c6d\","
             "\"is_anonymous\":false}",
             now + 3600, now, now);
    return buf;
}

static EVP_PKEY *generate(jwt_alg alg)
{
    switch (alg) {
    case JWT_ALG_ES256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case JWT_ALG_EDDSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    case JWT_ALG_RS256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    default:
        return NULL;
    }
}

/* The bare signature check as `openssl speed` times it: a context set up once, reused for
 * every check of a signature over a short input (20 bytes; a SHA-256 digest for RSA). */
typedef struct bare {
    EVP_PKEY_CTX *pctx; /* ES256, RS256: EVP_PKEY_verify */
    EVP_MD_CTX *mctx;   /* EdDSA: EVP_DigestVerify */
    unsigned char msg[32];
    size_t msglen;
    unsigned char sig[512];
    size_t siglen;
} bare;

static int bare_ctx_params(EVP_PKEY_CTX *ctx, jwt_alg alg)
{
    if (alg != JWT_ALG_RS256)
        return 1;
    return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
           EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) > 0;
}

static int bare_init(bare *b, jwt_alg alg, EVP_PKEY *key)
{
    memset(b, 0, sizeof *b);
    memset(b->msg, 'x', sizeof b->msg);
    b->msglen = alg == JWT_ALG_RS256 ? 32 : 20;
    b->siglen = sizeof b->sig;
    if (alg == JWT_ALG_EDDSA) {
        EVP_MD_CTX *sctx = EVP_MD_CTX_new();
        int ok = sctx && EVP_DigestSignInit(sctx, NULL, NULL, NULL, key) == 1 &&
                 EVP_DigestSign(sctx, b->sig, &b->siglen, b->msg, b->msglen) == 1;
        EVP_MD_CTX_free(sctx);
        b->mctx = EVP_MD_CTX_new();
        return ok && b->mctx && EVP_DigestVerifyInit(b->mctx, NULL, NULL, NULL, key) == 1;
    }
    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = sctx && EVP_PKEY_sign_init(sctx) == 1 && bare_ctx_params(sctx, alg) &&
             EVP_PKEY_sign(sctx, b->sig, &b->siglen, b->msg, b->msglen) == 1;
    EVP_PKEY_CTX_free(sctx);
    b->pctx = EVP_PKEY_CTX_new(key, NULL);
    return ok && b->pctx && EVP_PKEY_verify_init(b->pctx) == 1 && bare_ctx_params(b->pctx, alg);
}

static int bare_verify(bare *b)
{
    if (b->mctx)
        return EVP_DigestVerify(b->mctx, b->sig, b->siglen, b->msg, b->msglen) == 1;
    return EVP_PKEY_verify(b->pctx, b->sig, b->siglen, b->msg, b->msglen) == 1;
}

static void bare_free(bare *b)
{
    EVP_PKEY_CTX_free(b->pctx);
    EVP_MD_CTX_free(b->mctx);
}

static int run(jwt_alg alg, double seconds)
{
    bare b = {0};
    int rc = 1;
    sdo_error err;
    char *token = NULL;
    jwt_verifier *v = NULL;
    EVP_PKEY *key = generate(alg);
    if (!key) {
        fprintf(stderr, "bench_jwt: cannot generate a %s key\n", jwt_alg_name(alg));
        return 1;
    }
    jwt_key_config kc = {.kid = "bench-key", .pkey = key};
    jwt_verifier_config cfg = {
        .algs = alg,
        .keys = &kc,
        .nkeys = 1,
        .issuer = ISSUER,
        .audience = AUDIENCE,
        .leeway = 30,
    };
    if (!(v = jwt_verifier_new(&cfg, &err)) ||
        jwt_sign(key, "bench-key", payload(), &token, &err) < 0) {
        fprintf(stderr, "bench_jwt: %s\n", err.message);
        goto out;
    }
    jwt_claims claims;
    if (jwt_verify(v, token, &claims, &err) < 0) {
        fprintf(stderr, "bench_jwt: the %s token does not verify: %s\n", jwt_alg_name(alg),
                err.message);
        goto out;
    }
    if (!bare_init(&b, alg, key) || !bare_verify(&b)) {
        fprintf(stderr, "bench_jwt: the bare %s check cannot be set up\n", jwt_alg_name(alg));
        goto out;
    }
    /* Warm-up, then batches of whole verifications and of bare checks in turn until the
     * wall-clock time is up, so that both see the same conditions. Rates are per second of
     * this thread's CPU time, as `openssl speed` counts per second of user CPU time: time
     * the machine gives to other work then does not count against either. */
    for (int i = 0; i < 50; i++)
        jwt_verify(v, token, &claims, &err);
    long n = 0, nb = 0;
    double cpu = 0, cpub = 0, wall, wall0 = seconds_of(CLOCK_MONOTONIC);
    do {
        double t = seconds_of(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < 16; i++) {
            if (jwt_verify(v, token, &claims, &err) < 0) {
                fprintf(stderr, "bench_jwt: verification failed: %s\n", err.message);
                goto out;
            }
        }
        double t2 = seconds_of(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < 16; i++) {
            if (!bare_verify(&b)) {
                fprintf(stderr, "bench_jwt: the bare check failed\n");
                goto out;
            }
        }
        cpu += t2 - t;
        cpub += seconds_of(CLOCK_THREAD_CPUTIME_ID) - t2;
        n += 16;
        nb += 16;
        wall = seconds_of(CLOCK_MONOTONIC) - wall0;
    } while (wall < seconds);
    printf("alg=%s token_bytes=%zu verifications=%ld cpu_seconds=%.2f per_cpu_second=%.1f "
           "bare_checks=%ld bare_cpu_seconds=%.2f bare_per_cpu_second=%.1f\n",
           jwt_alg_name(alg), strlen(token), n, cpu, (double)n / cpu, nb, cpub, (double)nb / cpub);
    fflush(stdout);
    rc = 0;
out:
    bare_free(&b);
    free(token);
    jwt_verifier_free(v);
    EVP_PKEY_free(key);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-seconds") == 0) {
        seconds = atof(argv[2]);
        first = 3;
    }
    if (seconds <= 0) {
        fprintf(stderr, "usage: bench_jwt [-seconds N] [ES256|EdDSA|RS256]...\n");
        return 2;
    }
    static const jwt_alg all[] = {JWT_ALG_ES256, JWT_ALG_EDDSA};
    if (first >= argc) {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (run(all[i], seconds) != 0)
                return 1;
        return 0;
    }
    for (int i = first; i < argc; i++) {
        jwt_alg alg = 0;
        static const jwt_alg known[] = {JWT_ALG_ES256, JWT_ALG_EDDSA, JWT_ALG_RS256};
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(argv[i], jwt_alg_name(known[k])) == 0)
                alg = known[k];
        if (!alg) {
            fprintf(stderr, "bench_jwt: unknown algorithm '%s' (ES256, EdDSA, RS256)\n", argv[i]);
            return 2;
        }
        if (run(alg, seconds) != 0)
            return 1;
    }
    return 0;
}
