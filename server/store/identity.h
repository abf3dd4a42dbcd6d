/* The identity tables: users, sessions with their refresh tokens, API keys and the audit log.
 * Every SQL statement on them lives behind this header. Conventions as in records.h: 0 (or a
 * count) on success, a negative status with err filled on failure; messages returned are
 * malloc'ed for protobuf_c_message_free_unpacked. */
#ifndef SDO_STORE_IDENTITY_H
#define SDO_STORE_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "saasodoo/v1/admin.pb-c.h"
#include "saasodoo/v1/identity.pb-c.h"
#include "store/store.h"

/* A user as the identity domain needs it. */
typedef struct user_rec {
    char id[40];
    char email[256];
    char display_name[128];
    char role[16]; /* "CUSTOMER" or "ADMIN" */
    bool disabled;
    char password_hash[256]; /* "" for users of an external provider */
    int64_t version;
} user_rec;

/* ---- users ---- */

typedef struct user_row {
    const char *id;
    const char *email;
    const char *display_name;
    const char *role;
    const char *password_hash; /* NULL for an external provider */
    const char *provider;
    const char *subject;
} user_row;

/* ALREADY_EXISTS when the email (any case) or the provider's subject is taken. */
int store_user_insert(store *st, PGconn *c, const user_row *row, sdo_error *err);
/* Lookups; NOT_FOUND when absent. by_email ignores case. */
int store_user_get(store *st, PGconn *c, const char *id, user_rec *out, sdo_error *err);
int store_user_by_email(store *st, PGconn *c, const char *email, user_rec *out, sdo_error *err);
int store_user_by_subject(store *st, PGconn *c, const char *provider, const char *subject,
                          user_rec *out, sdo_error *err);
/* The user as a saasodoo.v1.User message. */
int store_user_message(store *st, PGconn *c, const char *id, Saasodoo__V1__User **out,
                       sdo_error *err);
/* Sets display_name and role (NULL: keep) and disabled (-1: keep); expect_version (if > 0)
 * must match. FAILED_PRECONDITION on a stale version, NOT_FOUND for an unknown user. */
int store_user_update(store *st, PGconn *c, const char *id, const char *display_name,
                      const char *role, int disabled, int64_t expect_version, sdo_error *err);
int store_user_signed_in(store *st, PGconn *c, const char *id, sdo_error *err);
/* A page of users in creation order; role/disabled/email filters NULL for any. */
int store_user_list(store *st, PGconn *c, const char *role, int disabled, const char *email,
                    int64_t after_seq, int limit, Saasodoo__V1__User ***out, size_t *n,
                    int64_t *last_seq, bool *more, sdo_error *err);
/* Number of users with role ADMIN. */
int store_user_count_admins(store *st, PGconn *c, int64_t *n, sdo_error *err);

/* ---- sessions ---- */

int store_session_insert(store *st, PGconn *c, const char *id, const char *user_id,
                         const unsigned char hash[32], int64_t expire_unix, sdo_error *err);
/* Replaces the refresh token whose hash is old with new, in one transaction, and returns the
 * session's user. UNAUTHENTICATED when old is unknown, expired or revoked; when old is a
 * token that was already replaced, the whole session is revoked and UNAUTHENTICATED says
 * so. */
int store_session_rotate(store *st, PGconn *c, const unsigned char old_hash[32],
                         const unsigned char new_hash[32], int64_t expire_unix, char *user_id,
                         size_t user_id_sz, char *session_id, size_t session_id_sz, sdo_error *err);
/* Revokes the session of a refresh token (current or replaced); 0 when none. */
int store_session_revoke(store *st, PGconn *c, const unsigned char hash[32], const char *reason,
                         sdo_error *err);
/* Revokes every session of a user. */
int store_session_revoke_user(store *st, PGconn *c, const char *user_id, const char *reason,
                              sdo_error *err);
/* True when the session exists and is neither revoked nor expired. */
int store_session_live(store *st, PGconn *c, const char *id, bool *live, sdo_error *err);

/* ---- API keys ---- */

/* Inserts a key; returns it as a message (without the secret). */
int store_api_key_insert(store *st, PGconn *c, const char *id, const char *user_id,
                         const char *display_name, const char *prefix, const unsigned char hash[32],
                         int64_t expire_unix, Saasodoo__V1__ApiKey **out, sdo_error *err);
/* The owner of the live key with this hash: NOT_FOUND when none (or expired). Updates the
 * last use at most once a minute. */
int store_api_key_lookup(store *st, PGconn *c, const unsigned char hash[32], char *key_id,
                         size_t key_id_sz, char *user_id, size_t user_id_sz, sdo_error *err);
int store_api_key_list(store *st, PGconn *c, const char *user_id, int64_t after_seq, int limit,
                       Saasodoo__V1__ApiKey ***out, size_t *n, int64_t *last_seq, bool *more,
                       sdo_error *err);
/* NOT_FOUND when the user has no such key. */
int store_api_key_delete(store *st, PGconn *c, const char *user_id, const char *id, sdo_error *err);

/* ---- audit log ---- */

typedef struct audit_row {
    const char *principal;
    const char *method;
    const char *target;
    const char *result;
    const char *request_id;
    const char *client_address;
} audit_row;

int store_audit_insert(store *st, PGconn *c, const audit_row *row, sdo_error *err);
int store_audit_list(store *st, PGconn *c, const char *principal, const char *method,
                     const char *target, int64_t after_seq, int limit,
                     Saasodoo__V1__AuditEvent ***out, size_t *n, int64_t *last_seq, bool *more,
                     sdo_error *err);

#endif
