/* Identity and access: who is calling (authentication: access tokens of the configured
 * provider, or API keys), what they may do (authorization: authz.h), how often
 * (ratelimit.h). The API layer calls these; they call the provider and the store. */
#ifndef SDO_IDENTITY_H
#define SDO_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "identity/provider.h"
#include "identity/ratelimit.h"
#include "store/identity.h"
#include "store/store.h"

/* Roles, as in saasodoo.v1.User.Role. */
enum { ROLE_NONE = 0, ROLE_CUSTOMER = 1, ROLE_ADMIN = 2 };

/* API keys: "sdo_" then 43 characters of base64url; the first 12 characters are the prefix
 * shown in listings. */
#define API_KEY_PREFIX "sdo_"
#define API_KEY_SHOWN 12

typedef struct identity identity;

/* The caller, as established by identity_authenticate. */
typedef struct principal {
    char user_id[40];
    int role;
    char api_key[40]; /* the key id when the call came with an API key */
} principal;

identity *identity_new(const sdo_config *cfg, store *st, sdo_error *err);
void identity_free(identity *id);

idp *identity_provider(identity *id);
ratelimit *identity_limits(identity *id);

/* Checks a bearer credential (an access token or an API key) and fills *who. Results are
 * cached per credential for at most a second, and dropped at once by
 * identity_invalidate(). UNAUTHENTICATED (with err->reason) when the credential is not
 * good, PERMISSION_DENIED when the user is disabled. */
int identity_authenticate(identity *id, const char *credential, principal *who, sdo_error *err);

/* Forgets every cached authentication: a user was disabled, a key deleted, a session ended. */
void identity_invalidate(identity *id);

/* Email and password rules, with messages naming the field. */
int identity_check_email(const char *email, sdo_error *err);
int identity_check_password(const char *password, sdo_error *err);

/* scrypt password hashes ("scrypt$N$r$p$salt$hash"). */
int identity_password_hash(const char *password, char *out, size_t outsz);
bool identity_password_check(const char *password, const char *stored);

/* Creates a user with a fresh id (subject NULL: the id itself). ALREADY_EXISTS for a taken
 * email. */
int identity_user_create(store *st, const char *email, const char *display_name, const char *role,
                         const char *password_hash, const char *provider, const char *subject,
                         user_rec *out, sdo_error *err);

/* The local user for a provider's subject, created as a customer on first sight. */
int identity_user_for_subject(identity *id, const char *subject, const char *email, user_rec *out,
                              sdo_error *err);

/* Makes email an admin with this password: creates the user, or promotes an existing one
 * and sets its password. Used by --create-admin and identity.bootstrap_admin_email. */
int identity_ensure_admin(store *st, const char *email, const char *password, bool *created,
                          sdo_error *err);

/* Creates an API key for user_id; *secret receives the whole secret (malloc'ed). */
int identity_api_key_create(identity *id, const char *user_id, const char *display_name,
                            int64_t expire_unix, Saasodoo__V1__ApiKey **out, char **secret,
                            sdo_error *err);

#endif
