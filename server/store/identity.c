/* The identity tables: users, sessions, API keys, audit events. Hashes travel as hex text. */
#include "store/identity.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"

#define US(col) "(extract(epoch from " col ") * 1000000)::bigint"

static int failed(sdo_error *err)
{
    return -(int)(err && err->code ? err->code : SDO_INTERNAL);
}

static void hexify(const unsigned char h[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[64] = 0;
}

static void copy_str(char *dst, size_t n, const PGresult *r, int row, int col)
{
    sdo_strlcpy(dst, PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col), n);
}

static char *prefixed(const char *prefix, const char *id)
{
    size_t n = strlen(prefix) + strlen(id) + 1;
    char *s = sdo_malloc(n);
    snprintf(s, n, "%s%s", prefix, id);
    return s;
}

static Google__Protobuf__Timestamp *ts_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : ts_from_us(store_get_i64(r, row, col));
}

/* Rows to keep of a page query run with LIMIT limit + 1; *more tells if others follow. */
static int page_rows(const PGresult *r, int limit, bool *more)
{
    int rows = PQntuples(r);
    *more = rows > limit;
    return *more ? limit : rows;
}

/* ---- users ---- */

#define USER_COLS                                                                                  \
    "id, email, display_name, role, disabled, coalesce(password_hash, ''), version, " US(          \
        "create_time") ", " US("last_sign_in_time") ", seq"

static void user_from_row(const PGresult *r, int i, user_rec *u)
{
    memset(u, 0, sizeof *u);
    copy_str(u->id, sizeof u->id, r, i, 0);
    copy_str(u->email, sizeof u->email, r, i, 1);
    copy_str(u->display_name, sizeof u->display_name, r, i, 2);
    copy_str(u->role, sizeof u->role, r, i, 3);
    u->disabled = store_get_bool(r, i, 4);
    copy_str(u->password_hash, sizeof u->password_hash, r, i, 5);
    u->version = store_get_i64(r, i, 6);
}

static Saasodoo__V1__User *user_message(const PGresult *r, int i)
{
    Saasodoo__V1__User *u = sdo_malloc(sizeof *u);
    saasodoo__v1__user__init(u);
    u->name = prefixed("users/", PQgetvalue(r, i, 0));
    u->email = store_get_str(r, i, 1);
    u->display_name = store_get_str(r, i, 2);
    u->role = strcmp(PQgetvalue(r, i, 3), "ADMIN") == 0 ? SAASODOO__V1__USER__ROLE__ADMIN
                                                        : SAASODOO__V1__USER__ROLE__CUSTOMER;
    u->disabled = store_get_bool(r, i, 4);
    char etag[32];
    snprintf(etag, sizeof etag, "v%" PRId64, store_get_i64(r, i, 6));
    u->etag = sdo_strdup(etag);
    u->create_time = ts_from_us(store_get_i64(r, i, 7));
    u->last_sign_in_time = ts_or_null(r, i, 8);
    return u;
}

int store_user_insert(store *st, PGconn *c, const user_row *row, sdo_error *err)
{
    const char *p[] = {row->id,       row->email,  row->display_name, row->role, row->password_hash,
                       row->provider, row->subject};
    char state[6] = "";
    PGresult *r = store_exec(st, c,
                             "INSERT INTO users (id, email, display_name, role, password_hash, "
                             "provider, subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                             7, p, err, state);
    if (!r) {
        if (strcmp(state, "23505") == 0) {
            memset(err, 0, sizeof *err);
            return sdo_fail(err, SDO_ALREADY_EXISTS,
                            "a user with email '%.200s' already exists; sign in instead",
                            row->email);
        }
        return failed(err);
    }
    PQclear(r);
    return 0;
}

static int user_one(store *st, PGconn *c, const char *sql, int n, const char *const *p,
                    const char *what, user_rec *out, sdo_error *err)
{
    PGresult *r = store_exec(st, c, sql, n, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "%s does not exist", what);
    else
        user_from_row(r, 0, out);
    PQclear(r);
    return rc;
}

int store_user_get(store *st, PGconn *c, const char *id, user_rec *out, sdo_error *err)
{
    const char *p[] = {id};
    char what[80];
    snprintf(what, sizeof what, "user 'users/%.40s'", id);
    return user_one(st, c, "SELECT " USER_COLS " FROM users WHERE id = $1", 1, p, what, out, err);
}

int store_user_by_email(store *st, PGconn *c, const char *email, user_rec *out, sdo_error *err)
{
    const char *p[] = {email};
    return user_one(st, c, "SELECT " USER_COLS " FROM users WHERE lower(email) = lower($1)", 1, p,
                    "the user", out, err);
}

int store_user_by_subject(store *st, PGconn *c, const char *provider, const char *subject,
                          user_rec *out, sdo_error *err)
{
    const char *p[] = {provider, subject};
    return user_one(st, c, "SELECT " USER_COLS " FROM users WHERE provider = $1 AND subject = $2",
                    2, p, "the user", out, err);
}

int store_user_message(store *st, PGconn *c, const char *id, Saasodoo__V1__User **out,
                       sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r =
        store_exec(st, c, "SELECT " USER_COLS " FROM users WHERE id = $1", 1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "user 'users/%.40s' does not exist", id);
    else
        *out = user_message(r, 0);
    PQclear(r);
    return rc;
}

int store_user_update(store *st, PGconn *c, const char *id, const char *display_name,
                      const char *role, int disabled, int64_t expect_version, sdo_error *err)
{
    char dis[8], ver[24];
    snprintf(dis, sizeof dis, "%d", disabled);
    snprintf(ver, sizeof ver, "%" PRId64, expect_version);
    const char *p[] = {id, role, dis, ver, display_name};
    PGresult *r =
        store_exec(st, c,
                   "UPDATE users SET role = coalesce($2, role),"
                   " disabled = CASE WHEN $3::int < 0 THEN disabled ELSE $3::int = 1 END,"
                   " display_name = coalesce($5, display_name),"
                   " version = version + 1, update_time = clock_timestamp()"
                   " WHERE id = $1 AND ($4::bigint <= 0 OR version = $4::bigint) RETURNING id",
                   5, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    PQclear(r);
    if (rows == 1)
        return 0;
    user_rec u;
    if (store_user_get(st, c, id, &u, err) < 0)
        return failed(err);
    return sdo_fail(err, SDO_FAILED_PRECONDITION,
                    "etag 'v%" PRId64 "' is stale: user 'users/%s' changed since you read it "
                    "(now 'v%" PRId64 "'); read it again",
                    expect_version, id, u.version);
}

int store_user_signed_in(store *st, PGconn *c, const char *id, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r =
        store_exec(st, c, "UPDATE users SET last_sign_in_time = clock_timestamp() WHERE id = $1", 1,
                   p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_user_list(store *st, PGconn *c, const char *role, int disabled, const char *email,
                    int64_t after_seq, int limit, Saasodoo__V1__User ***out, size_t *n,
                    int64_t *last_seq, bool *more, sdo_error *err)
{
    char after[24], lim[16], dis[8];
    snprintf(after, sizeof after, "%" PRId64, after_seq);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    snprintf(dis, sizeof dis, "%d", disabled);
    const char *p[] = {role, dis, email, after, lim};
    PGresult *r = store_exec(st, c,
                             "SELECT " USER_COLS " FROM users WHERE ($1::text IS NULL OR role = $1)"
                             " AND ($2::int < 0 OR disabled = ($2::int = 1))"
                             " AND ($3::text IS NULL OR lower(email) = lower($3))"
                             " AND seq > $4::bigint ORDER BY seq LIMIT $5::int",
                             5, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = page_rows(r, limit, more);
    *out = rows ? sdo_malloc((size_t)rows * sizeof **out) : NULL;
    for (int i = 0; i < rows; i++)
        (*out)[i] = user_message(r, i);
    *n = (size_t)rows;
    *last_seq = rows ? store_get_i64(r, rows - 1, 9) : 0;
    PQclear(r);
    return 0;
}

int store_user_count_admins(store *st, PGconn *c, int64_t *n, sdo_error *err)
{
    PGresult *r =
        store_exec(st, c, "SELECT count(*) FROM users WHERE role = 'ADMIN' AND NOT disabled", 0,
                   NULL, err, NULL);
    if (!r)
        return failed(err);
    *n = store_get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---- sessions ---- */

int store_session_insert(store *st, PGconn *c, const char *id, const char *user_id,
                         const unsigned char hash[32], int64_t expire_unix, sdo_error *err)
{
    char h[65], exp[24];
    hexify(hash, h);
    snprintf(exp, sizeof exp, "%" PRId64, expire_unix);
    const char *p[] = {id, user_id, h, exp};
    PGresult *r = store_exec(st, c,
                             "INSERT INTO sessions (id, user_id, refresh_hash, expire_time)"
                             " VALUES ($1, $2, $3, to_timestamp($4::bigint))",
                             4, p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_session_rotate(store *st, PGconn *c, const unsigned char old_hash[32],
                         const unsigned char new_hash[32], int64_t expire_unix, char *user_id,
                         size_t user_id_sz, char *session_id, size_t session_id_sz, sdo_error *err)
{
    char oh[65], nh[65], exp[24];
    hexify(old_hash, oh);
    hexify(new_hash, nh);
    snprintf(exp, sizeof exp, "%" PRId64, expire_unix);
    if (store_begin(st, c, err) < 0)
        return failed(err);
    const char *p1[] = {oh};
    PGresult *r = store_exec(st, c,
                             "SELECT id, user_id, revoke_time IS NOT NULL,"
                             " expire_time < clock_timestamp() FROM sessions"
                             " WHERE refresh_hash = $1 FOR UPDATE",
                             1, p1, err, NULL);
    if (!r)
        goto fail;
    if (PQntuples(r) == 0) {
        PQclear(r);
        /* a token that was replaced: someone holds a copy; end the session */
        r = store_exec(st, c,
                       "UPDATE sessions SET revoke_time = coalesce(revoke_time, clock_timestamp()),"
                       " revoke_reason = CASE WHEN revoke_time IS NULL THEN 'refresh token reused'"
                       " ELSE revoke_reason END"
                       " WHERE id = (SELECT session_id FROM session_tokens WHERE hash = $1)"
                       " RETURNING id",
                       1, p1, err, NULL);
        if (!r)
            goto fail;
        bool reused = PQntuples(r) > 0;
        PQclear(r);
        if (store_commit(st, c, err) < 0)
            return failed(err);
        return reused ? sdo_fail(err, SDO_UNAUTHENTICATED,
                                 "this refresh token was already used; the session has been "
                                 "revoked for safety: sign in again")
                      : sdo_fail(err, SDO_UNAUTHENTICATED,
                                 "the refresh token is not valid: sign in again");
    }
    sdo_strlcpy(session_id, PQgetvalue(r, 0, 0), session_id_sz);
    sdo_strlcpy(user_id, PQgetvalue(r, 0, 1), user_id_sz);
    bool revoked = store_get_bool(r, 0, 2), expired = store_get_bool(r, 0, 3);
    PQclear(r);
    if (revoked || expired) {
        store_rollback(c);
        return sdo_fail(err, SDO_UNAUTHENTICATED, "the session has %s: sign in again",
                        revoked ? "been signed out" : "expired");
    }
    const char *p2[] = {session_id, oh, nh, exp};
    r = store_exec(st, c,
                   "WITH old AS (INSERT INTO session_tokens (hash, session_id) VALUES ($2, $1))"
                   " UPDATE sessions SET refresh_hash = $3, generation = generation + 1,"
                   " expire_time = to_timestamp($4::bigint), update_time = clock_timestamp()"
                   " WHERE id = $1",
                   4, p2, err, NULL);
    if (!r)
        goto fail;
    PQclear(r);
    return store_commit(st, c, err) < 0 ? failed(err) : 0;
fail:
    store_rollback(c);
    return failed(err);
}

int store_session_revoke(store *st, PGconn *c, const unsigned char hash[32], const char *reason,
                         sdo_error *err)
{
    char h[65];
    hexify(hash, h);
    const char *p[] = {h, reason};
    PGresult *r =
        store_exec(st, c,
                   "UPDATE sessions SET revoke_time = coalesce(revoke_time, clock_timestamp()),"
                   " revoke_reason = $2 WHERE refresh_hash = $1"
                   " OR id = (SELECT session_id FROM session_tokens WHERE hash = $1)",
                   2, p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_session_revoke_user(store *st, PGconn *c, const char *user_id, const char *reason,
                              sdo_error *err)
{
    const char *p[] = {user_id, reason};
    PGresult *r = store_exec(st, c,
                             "UPDATE sessions SET revoke_time = clock_timestamp(),"
                             " revoke_reason = $2 WHERE user_id = $1 AND revoke_time IS NULL",
                             2, p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_session_live(store *st, PGconn *c, const char *id, bool *live, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r = store_exec(st, c,
                             "SELECT 1 FROM sessions WHERE id = $1 AND revoke_time IS NULL"
                             " AND expire_time > clock_timestamp()",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    *live = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

/* ---- API keys ---- */

#define KEY_COLS                                                                                   \
    "id, user_id, display_name, prefix, " US("create_time") ", " US("last_used_time") ", " US(     \
        "expire_time") ", seq"

static Saasodoo__V1__ApiKey *key_message(const PGresult *r, int i)
{
    Saasodoo__V1__ApiKey *k = sdo_malloc(sizeof *k);
    saasodoo__v1__api_key__init(k);
    size_t n = strlen(PQgetvalue(r, i, 0)) + strlen(PQgetvalue(r, i, 1)) + 32;
    k->name = sdo_malloc(n);
    snprintf(k->name, n, "users/%s/apiKeys/%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 0));
    k->display_name = store_get_str(r, i, 2);
    k->prefix = store_get_str(r, i, 3);
    k->create_time = ts_from_us(store_get_i64(r, i, 4));
    k->last_used_time = ts_or_null(r, i, 5);
    k->expire_time = ts_or_null(r, i, 6);
    return k;
}

int store_api_key_insert(store *st, PGconn *c, const char *id, const char *user_id,
                         const char *display_name, const char *prefix, const unsigned char hash[32],
                         int64_t expire_unix, Saasodoo__V1__ApiKey **out, sdo_error *err)
{
    char h[65], exp[24];
    hexify(hash, h);
    snprintf(exp, sizeof exp, "%" PRId64, expire_unix);
    const char *p[] = {id, user_id, display_name, prefix, h, expire_unix ? exp : NULL};
    PGresult *r = store_exec(st, c,
                             "INSERT INTO api_keys (id, user_id, display_name, prefix, secret_hash,"
                             " expire_time) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint))"
                             " RETURNING " KEY_COLS,
                             6, p, err, NULL);
    if (!r)
        return failed(err);
    *out = key_message(r, 0);
    PQclear(r);
    return 0;
}

int store_api_key_lookup(store *st, PGconn *c, const unsigned char hash[32], char *key_id,
                         size_t key_id_sz, char *user_id, size_t user_id_sz, sdo_error *err)
{
    char h[65];
    hexify(hash, h);
    const char *p[] = {h};
    PGresult *r = store_exec(
        st, c,
        "SELECT id, user_id, last_used_time IS NULL OR last_used_time < clock_timestamp() -"
        " interval '1 minute' FROM api_keys WHERE secret_hash = $1"
        " AND (expire_time IS NULL OR expire_time > clock_timestamp())",
        1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    bool touch = false;
    if (PQntuples(r) == 0) {
        rc = sdo_fail(err, SDO_NOT_FOUND, "no such API key");
    } else {
        sdo_strlcpy(key_id, PQgetvalue(r, 0, 0), key_id_sz);
        sdo_strlcpy(user_id, PQgetvalue(r, 0, 1), user_id_sz);
        touch = store_get_bool(r, 0, 2);
    }
    PQclear(r);
    if (touch) {
        const char *p2[] = {key_id};
        sdo_error e2 = {0};
        r = store_exec(st, c,
                       "UPDATE api_keys SET last_used_time = clock_timestamp() WHERE id = $1", 1,
                       p2, &e2, NULL);
        if (r)
            PQclear(r);
    }
    return rc;
}

int store_api_key_list(store *st, PGconn *c, const char *user_id, int64_t after_seq, int limit,
                       Saasodoo__V1__ApiKey ***out, size_t *n, int64_t *last_seq, bool *more,
                       sdo_error *err)
{
    char after[24], lim[16];
    snprintf(after, sizeof after, "%" PRId64, after_seq);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[] = {user_id, after, lim};
    PGresult *r = store_exec(st, c,
                             "SELECT " KEY_COLS " FROM api_keys WHERE user_id = $1"
                             " AND seq > $2::bigint ORDER BY seq LIMIT $3::int",
                             3, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = page_rows(r, limit, more);
    *out = rows ? sdo_malloc((size_t)rows * sizeof **out) : NULL;
    for (int i = 0; i < rows; i++)
        (*out)[i] = key_message(r, i);
    *n = (size_t)rows;
    *last_seq = rows ? store_get_i64(r, rows - 1, 7) : 0;
    PQclear(r);
    return 0;
}

int store_api_key_delete(store *st, PGconn *c, const char *user_id, const char *id, sdo_error *err)
{
    const char *p[] = {user_id, id};
    PGresult *r =
        store_exec(st, c, "DELETE FROM api_keys WHERE user_id = $1 AND id = $2", 2, p, err, NULL);
    if (!r)
        return failed(err);
    bool gone = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return gone ? 0
                : sdo_fail(err, SDO_NOT_FOUND, "API key 'users/%s/apiKeys/%s' does not exist",
                           user_id, id);
}

/* ---- audit log ---- */

int store_audit_insert(store *st, PGconn *c, const audit_row *row, sdo_error *err)
{
    char id[37];
    sdo_uuid4(id);
    const char *p[] = {id,          row->principal,  row->method,        row->target,
                       row->result, row->request_id, row->client_address};
    PGresult *r = store_exec(st, c,
                             "INSERT INTO audit_events (id, principal, method, target, result,"
                             " request_id, client_address) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                             7, p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_audit_list(store *st, PGconn *c, const char *principal, const char *method,
                     const char *target, int64_t after_seq, int limit,
                     Saasodoo__V1__AuditEvent ***out, size_t *n, int64_t *last_seq, bool *more,
                     sdo_error *err)
{
    char after[24], lim[16];
    snprintf(after, sizeof after, "%" PRId64, after_seq);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[] = {principal, method, target, after, lim};
    PGresult *r = store_exec(
        st, c,
        "SELECT id, principal, method, target, result, request_id, client_address, " US(
            "create_time") ", seq FROM audit_events WHERE ($1::text IS NULL OR principal = $1)"
                           " AND ($2::text IS NULL OR method = $2)"
                           " AND ($3::text IS NULL OR target = $3)"
                           " AND seq > $4::bigint ORDER BY seq LIMIT $5::int",
        5, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = page_rows(r, limit, more);
    *out = rows ? sdo_malloc((size_t)rows * sizeof **out) : NULL;
    for (int i = 0; i < rows; i++) {
        Saasodoo__V1__AuditEvent *e = sdo_malloc(sizeof *e);
        saasodoo__v1__audit_event__init(e);
        e->name = prefixed("auditEvents/", PQgetvalue(r, i, 0));
        e->principal = store_get_str(r, i, 1);
        e->method = store_get_str(r, i, 2);
        e->target = store_get_str(r, i, 3);
        e->result = store_get_str(r, i, 4);
        e->request_id = store_get_str(r, i, 5);
        e->client_address = store_get_str(r, i, 6);
        e->create_time = ts_from_us(store_get_i64(r, i, 7));
        (*out)[i] = e;
    }
    *n = (size_t)rows;
    *last_seq = rows ? store_get_i64(r, rows - 1, 8) : 0;
    PQclear(r);
    return 0;
}
