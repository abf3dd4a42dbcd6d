/* Identity providers: who issues sessions and whose access tokens the server trusts. The
 * identity domain (users, API keys, roles) sees only this vtable; one file per provider:
 * builtin.c (the embedded default: passwords hashed with scrypt in the store, access tokens
 * signed by the server's own key, rotating refresh tokens stored as hashes) and supabase.c
 * (SignUp/SignIn/refresh/sign-out forwarded to Supabase Auth's REST API; access tokens
 * verified locally against the project's JWKS or legacy HS256 secret). */
#ifndef SDO_IDP_H
#define SDO_IDP_H

#include <stdint.h>

#include "config/config.h"
#include "store/store.h"
#include "util/util.h"

typedef struct idp idp;

/* A session as issued; strings are malloc'ed (idp_session_free). */
typedef struct idp_session {
    char *access_token;
    int64_t access_expires; /* Unix seconds */
    char *refresh_token;
    int64_t refresh_expires; /* Unix seconds; 0 when the provider does not say */
    char subject[128];       /* the provider's id of the user ("sub") */
    char email[256];
} idp_session;

/* What a verified access token says. */
typedef struct idp_claims {
    char subject[128];
    char email[256];
    int64_t expires;
    char session_id[64]; /* "" when the provider has none */
} idp_claims;

typedef struct idp_ops {
    const char *name; /* "builtin", "supabase" */
    /* INVALID_ARGUMENT for a bad email or a short password, ALREADY_EXISTS for a taken email,
     * UNAVAILABLE when the provider cannot be reached. */
    int (*sign_up)(idp *p, const char *email, const char *password, const char *display_name,
                   idp_session *out, sdo_error *err);
    /* UNAUTHENTICATED "wrong email or password" (never says which). */
    int (*sign_in)(idp *p, const char *email, const char *password, idp_session *out,
                   sdo_error *err);
    /* Rotates: the old refresh token stops working. UNAUTHENTICATED when it is unknown,
     * expired or revoked; reuse of a rotated token revokes the whole session. */
    int (*refresh)(idp *p, const char *refresh_token, idp_session *out, sdo_error *err);
    /* Revokes the session the refresh token belongs to (an unknown token is fine). */
    int (*sign_out)(idp *p, const char *refresh_token, sdo_error *err);
    /* Checks an access token locally: UNAUTHENTICATED with the reason when it fails. */
    int (*verify)(idp *p, const char *access_token, idp_claims *out, sdo_error *err);
    void (*free)(idp *p);
} idp_ops;

struct idp {
    const idp_ops *ops;
};

/* The provider named by cfg->identity_mode. */
idp *idp_open(const sdo_config *cfg, store *st, sdo_error *err);

idp *idp_builtin_new(const sdo_config *cfg, store *st, sdo_error *err);
idp *idp_supabase_new(const sdo_config *cfg, sdo_error *err);

void idp_session_free(idp_session *s);

#endif
