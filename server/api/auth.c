/* The access interceptor every call passes through, on the handler thread before the
 * handler: rate limit by client address, authentication (bearer access token or API key),
 * rate limit by principal, authorization (identity/authz.c), and after a change the audit
 * record. */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "identity/authz.h"
#include "util/log.h"

/* "ipv4:127.0.0.1:5555" → "127.0.0.1"; "ipv6:[::1]:5555" → "::1". */
static void peer_address(const char *peer, char *out, size_t outsz)
{
    const char *p = strchr(peer, ':');
    p = p ? p + 1 : peer;
    if (*p == '[') {
        const char *e = strchr(p, ']');
        size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
        snprintf(out, outsz, "%.*s", (int)n, p + 1);
        return;
    }
    const char *colon = strrchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    snprintf(out, outsz, "%.*s", (int)n, p);
}

void api_client_address(const rpc_ctx *ctx, char *out, size_t outsz)
{
    peer_address(ctx->peer, out, outsz);
    if (strcmp(out, "127.0.0.1") != 0 && strcmp(out, "::1") != 0)
        return;
    /* A call from this machine may come through the REST gateway, which adds the address it
     * was called from as the last entry of x-forwarded-for (earlier entries are whatever the
     * client sent, and are not trusted). */
    char fwd[512];
    if (rpc_ctx_metadata(ctx, "x-forwarded-for", fwd, sizeof fwd) <= 0)
        return;
    const char *last = strrchr(fwd, ',');
    last = last ? last + 1 : fwd;
    while (*last == ' ')
        last++;
    size_t n = strcspn(last, " ");
    bool ok = n > 0 && n < outsz;
    for (size_t i = 0; ok && i < n; i++)
        ok = (last[i] >= '0' && last[i] <= '9') || (last[i] >= 'a' && last[i] <= 'f') ||
             (last[i] >= 'A' && last[i] <= 'F') || last[i] == '.' || last[i] == ':';
    if (ok)
        snprintf(out, outsz, "%.*s", (int)n, last);
}

static int limited(rpc_ctx *ctx, const char *what, int64_t retry_ms)
{
    sdo_fail(&ctx->err, SDO_RESOURCE_EXHAUSTED, "too many requests from this %s; retry in %.1f s",
             what, (double)retry_ms / 1000.0);
    sdo_error_reason(&ctx->err, "RATE_LIMITED");
    return -1;
}

static void audit(rpc_ctx *ctx, int code)
{
    sdo_app *app = ctx->app;
    char addr[96];
    api_client_address(ctx, addr, sizeof addr);
    char who[200];
    if (ctx->api_key[0])
        snprintf(who, sizeof who, "%s/apiKeys/%s", ctx->principal, ctx->api_key);
    else
        sdo_strlcpy(who, ctx->principal, sizeof who);
    audit_row row = {
        .principal = who,
        .method = ctx->path,
        .target = ctx->target,
        .result = sdo_status_name(code),
        .request_id = ctx->request_id,
        .client_address = addr,
    };
    sdo_error err = {0};
    PGconn *c = store_acquire(app->st, &err);
    if (c) {
        store_audit_insert(app->st, c, &row, &err);
        store_release(app->st, c);
    }
    if (err.code)
        log_error("msg=\"the audit record could not be written\" method=%s request_id=%s "
                  "error=\"%s\"",
                  ctx->path, ctx->request_id, err.message);
}

static int access_request(rpc_ctx *ctx, const ProtobufCMessage *req)
{
    sdo_app *app = ctx->app;
    if (!app || !app->id)
        return 0;
    const sdo_config *cfg = app->cfg;
    ratelimit *rl = identity_limits(app->id);
    int64_t now = sdo_mono_us(), retry = 0;
    char addr[96];
    api_client_address(ctx, addr, sizeof addr);
    if (!ratelimit_take(rl, "addr", addr, cfg->ratelimit_address_rate, cfg->ratelimit_address_burst,
                        now, &retry))
        return limited(ctx, "client address", retry);

    const az_rule *rule = authz_rule(ctx->path);
    if (!rule) {
        log_error("msg=\"no authorization rule for a method: refused\" method=%s", ctx->path);
        return sdo_fail(&ctx->err, SDO_PERMISSION_DENIED, "no authorization rule allows %s",
                        ctx->path);
    }
    if (rule->kind == AZ_PUBLIC) /* no credentials looked at: nothing waits on the store */
        return authz_check(app->st, rule, NULL, req, ctx->target, sizeof ctx->target, &ctx->err);
    char header[16500];
    if (rpc_ctx_metadata(ctx, "authorization", header, sizeof header) < 0) {
        sdo_fail(&ctx->err, SDO_UNAUTHENTICATED,
                 "%s needs credentials: send 'authorization: Bearer <access token or API key>' "
                 "(sign in with IdentityService.SignIn)",
                 strrchr(ctx->path, '/') + 1);
        sdo_error_reason(&ctx->err, "MISSING_CREDENTIALS");
        return -1;
    }
    if (strncasecmp(header, "Bearer ", 7) != 0) {
        sdo_fail(&ctx->err, SDO_UNAUTHENTICATED,
                 "the authorization header must be 'Bearer <access token or API key>'");
        sdo_error_reason(&ctx->err, "MALFORMED_AUTHORIZATION");
        return -1;
    }
    const char *cred = header + 7;
    while (*cred == ' ')
        cred++;
    principal who;
    if (identity_authenticate(app->id, cred, &who, &ctx->err) < 0)
        return -1;
    snprintf(ctx->principal, sizeof ctx->principal, "users/%s", who.user_id);
    ctx->role = who.role;
    sdo_strlcpy(ctx->api_key, who.api_key, sizeof ctx->api_key);
    if (!ratelimit_take(rl, "user", who.user_id, cfg->ratelimit_principal_rate,
                        cfg->ratelimit_principal_burst, now, &retry))
        return limited(ctx, "user", retry);
    if (authz_check(app->st, rule, &who, req, ctx->target, sizeof ctx->target, &ctx->err) < 0) {
        if (authz_mutating(ctx->path))
            audit(ctx, ctx->err.code);
        return -1;
    }
    return 0;
}

static void access_handled(rpc_ctx *ctx, int code)
{
    sdo_app *app = ctx->app;
    if (app && app->id && ctx->method && authz_mutating(ctx->path) &&
        (ctx->principal[0] || code == 0))
        audit(ctx, code);
}

const rpc_interceptor api_access_interceptor = {"access", NULL, NULL, access_request,
                                                access_handled};
