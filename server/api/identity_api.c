/* IdentityService (sign-up, sign-in, sessions, API keys) and the user and audit methods of
 * AdminService. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/filter.h"
#include "api/handlers.h"
#include "api/pagination.h"
#include "identity/authz.h"
#include "saasodoo/v1/admin.pb-c.h"
#include "saasodoo/v1/identity.pb-c.h"
#include "store/records.h"
#include "tenants/validate.h"
#include "util/log.h"

static int text_check(const char *field, const char *s, size_t max, sdo_error *err)
{
    if (strlen(s) > max)
        return sdo_fail_field(err, field, "%s must be at most %zu characters", field, max);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return sdo_fail_field(err, field, "%s must not contain control characters", field);
    return 0;
}

/* The Session message for an issued session and its local user. */
static int session_message(sdo_app *app, idp_session *s, const char *user_id,
                           ProtobufCMessage **resp, sdo_error *err)
{
    Saasodoo__V1__Session *out = sdo_malloc(sizeof *out);
    saasodoo__v1__session__init(out);
    PGconn *c = store_acquire(app->st, err);
    int rc = c ? store_user_message(app->st, c, user_id, &out->user, err) : -1;
    if (c)
        store_release(app->st, c);
    if (rc < 0) {
        free(out);
        return -1;
    }
    out->access_token = s->access_token;
    out->access_token_expire_time = ts_from_us(s->access_expires * 1000000);
    out->refresh_token = s->refresh_token;
    if (s->refresh_expires)
        out->refresh_token_expire_time = ts_from_us(s->refresh_expires * 1000000);
    s->access_token = s->refresh_token = NULL; /* now the message's */
    *resp = &out->base;
    return 0;
}

/* The local user behind an issued session (created on first sight for an external
 * provider); a disabled user gets PERMISSION_DENIED. */
static int session_user(sdo_app *app, const idp_session *s, user_rec *u, sdo_error *err)
{
    int rc;
    if (strcmp(identity_provider(app->id)->ops->name, "builtin") == 0) {
        PGconn *c = store_acquire(app->st, err);
        if (!c)
            return -1;
        rc = store_user_get(app->st, c, s->subject, u, err);
        store_release(app->st, c);
    } else {
        rc = identity_user_for_subject(app->id, s->subject, s->email, u, err);
    }
    if (rc == 0 && u->disabled) {
        sdo_fail(err, SDO_PERMISSION_DENIED, "this account is disabled; ask the operator");
        sdo_error_reason(err, "USER_DISABLED");
        return -1;
    }
    return rc;
}

static int finish_session(rpc_ctx *ctx, idp_session *s, ProtobufCMessage **resp)
{
    sdo_app *app = ctx->app;
    user_rec u;
    int rc = session_user(app, s, &u, &ctx->err);
    if (rc == 0) {
        snprintf(ctx->principal, sizeof ctx->principal, "users/%s", u.id);
        snprintf(ctx->target, sizeof ctx->target, "users/%s", u.id);
        rc = session_message(app, s, u.id, resp, &ctx->err);
    }
    idp_session_free(s);
    return rc;
}

static int sign_up(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__SignUpRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    if (identity_check_email(req->email, err) < 0 ||
        identity_check_password(req->password, err) < 0 ||
        text_check("display_name", req->display_name, 100, err) < 0)
        return -1;
    idp *p = identity_provider(app->id);
    idp_session s = {0};
    if (p->ops->sign_up(p, req->email, req->password, req->display_name, &s, err) < 0)
        return -1;
    return finish_session(ctx, &s, resp);
}

static int sign_in(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__SignInRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    if (!req->email[0])
        return sdo_fail_field(err, "email", "email is required");
    if (!req->password[0])
        return sdo_fail_field(err, "password", "password is required");
    if (strlen(req->email) > 254 || strlen(req->password) > 1024)
        return sdo_fail(err, SDO_UNAUTHENTICATED, "wrong email or password");
    const sdo_config *cfg = app->cfg;
    ratelimit *rl = identity_limits(app->id);
    char addr[96], account[260];
    api_client_address(ctx, addr, sizeof addr);
    snprintf(account, sizeof account, "%s", req->email);
    for (char *q = account; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    int64_t now = sdo_mono_us(), ra = 0, rb = 0;
    int window = cfg->ratelimit_sign_in_window_seconds, limit = cfg->ratelimit_sign_in_failures;
    int fa = ratelimit_failures(rl, "signin-account", account, window, now, &ra);
    /* an address may try a few accounts: it gets four times an account's allowance */
    int fb = ratelimit_failures(rl, "signin-addr", addr, window, now, &rb);
    if (fa >= limit || fb >= 4 * limit) {
        sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                 "too many failed sign-ins for this %s; retry in %" PRId64 " s",
                 fa >= limit ? "account" : "address", ((fa >= limit ? ra : rb) + 999) / 1000);
        sdo_error_reason(err, "SIGN_IN_LOCKED");
        return -1;
    }
    idp *p = identity_provider(app->id);
    idp_session s = {0};
    if (p->ops->sign_in(p, req->email, req->password, &s, err) < 0) {
        if (err->code == SDO_UNAUTHENTICATED) {
            ratelimit_fail(rl, "signin-account", account, window, now);
            ratelimit_fail(rl, "signin-addr", addr, window, now);
            log_warn("msg=\"failed sign-in\" peer=%s request_id=%s", addr, ctx->request_id);
        }
        return -1;
    }
    ratelimit_clear(rl, "signin-account", account);
    return finish_session(ctx, &s, resp);
}

static int refresh_session(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__RefreshSessionRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    if (!req->refresh_token[0])
        return sdo_fail_field(&ctx->err, "refresh_token", "refresh_token is required");
    idp *p = identity_provider(app->id);
    idp_session s = {0};
    if (p->ops->refresh(p, req->refresh_token, &s, &ctx->err) < 0) {
        identity_invalidate(app->id); /* a reuse may have revoked a session */
        return -1;
    }
    return finish_session(ctx, &s, resp);
}

static int sign_out(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__SignOutRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    if (!req->refresh_token[0])
        return sdo_fail_field(&ctx->err, "refresh_token",
                              "refresh_token is required: it names the session to end");
    idp *p = identity_provider(app->id);
    if (p->ops->sign_out(p, req->refresh_token, &ctx->err) < 0)
        return -1;
    identity_invalidate(app->id);
    Google__Protobuf__Empty *out = sdo_malloc(sizeof *out);
    google__protobuf__empty__init(out);
    *resp = &out->base;
    return 0;
}

static int get_current_user(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    (void)msg;
    sdo_app *app = ctx->app;
    Saasodoo__V1__User *u = NULL;
    PGconn *c = store_acquire(app->st, &ctx->err);
    if (!c)
        return -1;
    int rc = store_user_message(app->st, c, ctx->principal + 6, &u, &ctx->err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    *resp = &u->base;
    return 0;
}

/* "users/{id}" or "users/me" → the user id (the caller's for "me"). */
static int user_parent(rpc_ctx *ctx, const char *parent, const char *field, char *id, size_t idsz)
{
    if (strcmp(parent, "users/me") == 0) {
        sdo_strlcpy(id, ctx->principal + 6, idsz);
        return 0;
    }
    size_t n = strlen(parent);
    bool ok = strncmp(parent, "users/", 6) == 0 && n > 6 && n - 6 < idsz;
    for (const char *p = parent + 6; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
    if (!ok)
        return sdo_fail_field(&ctx->err, field,
                              "%s '%.80s' must look like 'users/{user}' (or 'users/me')", field,
                              parent);
    sdo_strlcpy(id, parent + 6, idsz);
    return 0;
}

static int create_api_key(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CreateApiKeyRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    char uid[40];
    if (user_parent(ctx, req->parent, "parent", uid, sizeof uid) < 0 ||
        api_request_id_check(req->request_id, err) < 0)
        return -1;
    const Saasodoo__V1__ApiKey *k = req->api_key;
    if (!k || !k->display_name[0])
        return sdo_fail_field(err, "api_key.display_name",
                              "api_key.display_name is required: name the key after the tool "
                              "that uses it");
    if (text_check("api_key.display_name", k->display_name, 100, err) < 0)
        return -1;
    int64_t expire = 0;
    if (k->expire_time) {
        expire = k->expire_time->seconds;
        if (expire <= sdo_now_us() / 1000000)
            return sdo_fail_field(err, "api_key.expire_time",
                                  "api_key.expire_time must be in the future");
    }
    Saasodoo__V1__ApiKey *out = NULL;
    char *secret = NULL;
    if (identity_api_key_create(app->id, uid, k->display_name, expire, &out, &secret, err) < 0)
        return -1;
    out->secret = secret;
    snprintf(ctx->target, sizeof ctx->target, "%s", out->name);
    *resp = &out->base;
    return 0;
}

static int list_api_keys(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListApiKeysRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    char uid[40];
    list_request lr;
    if (user_parent(ctx, req->parent, "parent", uid, sizeof uid) < 0 ||
        list_request_parse("apikeys", uid, req->page_size, req->page_token, "", NULL, &lr, err) < 0)
        return -1;
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    Saasodoo__V1__ApiKey **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc = store_api_key_list(app->st, c, uid, lr.key, lr.limit, &items, &n, &last, &more, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    Saasodoo__V1__ListApiKeysResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_api_keys_response__init(out);
    out->api_keys = items;
    out->n_api_keys = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

static int delete_api_key(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__DeleteApiKeyRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const char *slash = strstr(req->name, "/apiKeys/");
    char parent[80], uid[40];
    if (!slash || (size_t)(slash - req->name) >= sizeof parent || !slash[9])
        return sdo_fail_field(
            err, "name", "name '%.80s' must look like 'users/{user}/apiKeys/{key}'", req->name);
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - req->name), req->name);
    if (user_parent(ctx, parent, "name", uid, sizeof uid) < 0)
        return -1;
    const char *kid = slash + 9;
    if (strlen(kid) > 32)
        return sdo_fail_field(err, "name", "the key id in name is too long");
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    int rc = store_api_key_delete(app->st, c, uid, kid, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    identity_invalidate(app->id);
    Google__Protobuf__Empty *out = sdo_malloc(sizeof *out);
    google__protobuf__empty__init(out);
    *resp = &out->base;
    return 0;
}

const rpc_handler identity_handlers[] = {
    {"SignUp", RPC_UNARY, sign_up, NULL, NULL},
    {"SignIn", RPC_UNARY, sign_in, NULL, NULL},
    {"RefreshSession", RPC_UNARY, refresh_session, NULL, NULL},
    {"SignOut", RPC_UNARY, sign_out, NULL, NULL},
    {"GetCurrentUser", RPC_UNARY, get_current_user, NULL, NULL},
    {"CreateApiKey", RPC_UNARY, create_api_key, NULL, NULL},
    {"ListApiKeys", RPC_UNARY, list_api_keys, NULL, NULL},
    {"DeleteApiKey", RPC_UNARY, delete_api_key, NULL, NULL},
    {NULL, 0, NULL, NULL, NULL},
};

/* ---- AdminService: users and the audit log ---- */

static const char *const user_filter_fields[] = {"role", "disabled", "email", NULL};

int admin_list_users(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListUsersRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    list_request lr;
    int disabled = -1;
    if (list_request_parse("users", "", req->page_size, req->page_token, req->filter,
                           user_filter_fields, &lr, err) < 0 ||
        filter_bool(&lr.filter, "disabled", &disabled, err) < 0)
        return -1;
    const char *role = filter_get(&lr.filter, "role");
    if (role && strcmp(role, "ADMIN") != 0 && strcmp(role, "CUSTOMER") != 0)
        return sdo_fail_field(err, "filter", "filter: role must be ADMIN or CUSTOMER");
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    Saasodoo__V1__User **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc = store_user_list(app->st, c, role, disabled, filter_get(&lr.filter, "email"), lr.key,
                             lr.limit, &items, &n, &last, &more, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    Saasodoo__V1__ListUsersResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_users_response__init(out);
    out->users = items;
    out->n_users = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

int admin_update_user(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__UpdateUserRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__User *u = req->user;
    char uid[40];
    if (!u)
        return sdo_fail_field(err, "user", "user is required");
    if (user_parent(ctx, u->name, "user.name", uid, sizeof uid) < 0 ||
        api_request_id_check(req->request_id, err) < 0)
        return -1;
    if (!req->update_mask || req->update_mask->n_paths == 0)
        return sdo_fail_field(err, "update_mask",
                              "update_mask is required: role, disabled, display_name");
    const char *role = NULL, *display = NULL;
    int disabled = -1;
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
        const char *p = req->update_mask->paths[i];
        if (strcmp(p, "role") == 0) {
            if (u->role == SAASODOO__V1__USER__ROLE__ADMIN)
                role = "ADMIN";
            else if (u->role == SAASODOO__V1__USER__ROLE__CUSTOMER)
                role = "CUSTOMER";
            else
                return sdo_fail_field(err, "user.role", "user.role must be ADMIN or CUSTOMER");
        } else if (strcmp(p, "disabled") == 0) {
            disabled = u->disabled ? 1 : 0;
        } else if (strcmp(p, "display_name") == 0) {
            if (text_check("user.display_name", u->display_name, 100, err) < 0)
                return -1;
            display = u->display_name;
        } else {
            return sdo_fail_field(err, "update_mask",
                                  "update_mask path '%.64s' cannot be changed; mutable fields: "
                                  "role, disabled, display_name",
                                  p);
        }
    }
    int64_t version = 0;
    if (u->etag[0] && (u->etag[0] != 'v' || (version = strtoll(u->etag + 1, NULL, 10)) <= 0))
        return sdo_fail_field(err, "user.etag", "etag '%.40s' is not valid", u->etag);
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    int rc = store_begin(app->st, c, err);
    user_rec cur;
    if (rc == 0)
        rc = store_user_get(app->st, c, uid, &cur, err);
    if (rc == 0 && strcmp(cur.role, "ADMIN") == 0 && !cur.disabled &&
        ((role && strcmp(role, "ADMIN") != 0) || disabled == 1)) {
        /* never lock the operators out: keep one active admin */
        PGresult *r =
            store_exec(app->st, c, "SELECT pg_advisory_xact_lock(7001)", 0, NULL, err, NULL);
        int64_t admins = 0;
        rc = r ? store_user_count_admins(app->st, c, &admins, err) : -1;
        if (r)
            PQclear(r);
        if (rc == 0 && admins <= 1)
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "users/%s is the last active admin; make another admin first", uid);
    }
    if (rc == 0)
        rc = store_user_update(app->st, c, uid, display, role, disabled, version, err);
    if (rc == 0 && disabled == 1)
        rc = store_session_revoke_user(app->st, c, uid, "user disabled", err);
    if (rc == 0)
        rc = store_commit(app->st, c, err);
    else
        store_rollback(c);
    Saasodoo__V1__User *out = NULL;
    if (rc == 0)
        rc = store_user_message(app->st, c, uid, &out, err);
    store_release(app->st, c);
    identity_invalidate(app->id);
    if (rc < 0)
        return -1;
    log_info("msg=\"user updated\" user=users/%s by=%s%s%s%s", uid, ctx->principal,
             role ? " role=" : "", role ? role : "",
             disabled < 0 ? ""
             : disabled   ? " disabled=true"
                          : " disabled=false");
    *resp = &out->base;
    return 0;
}

static const char *const audit_filter_fields[] = {"principal", "method", "target", NULL};

int admin_list_audit_events(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListAuditEventsRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    list_request lr;
    if (list_request_parse("audit", "", req->page_size, req->page_token, req->filter,
                           audit_filter_fields, &lr, err) < 0)
        return -1;
    const filter_expr *f = &lr.filter;
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    Saasodoo__V1__AuditEvent **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc =
        store_audit_list(app->st, c, filter_get(f, "principal"), filter_get(f, "method"),
                         filter_get(f, "target"), lr.key, lr.limit, &items, &n, &last, &more, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    Saasodoo__V1__ListAuditEventsResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_audit_events_response__init(out);
    out->audit_events = items;
    out->n_audit_events = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}
