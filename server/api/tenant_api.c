/* saasodoo.v1.TenantService: request validation and mapping to the tenant domain.
 * Create and the lifecycle methods record an operation for the engine and return it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "identity/authz.h"
#include "api/filter.h"
#include "api/handlers.h"
#include "api/pagination.h"
#include "tenants/tenants.h"
#include "tenants/validate.h"
#include "util/buf.h"

#define DISPLAY_NAME_MAX 100

static int display_name_check(const char *s, const char *field, sdo_error *err)
{
    size_t n = strlen(s);
    if (n > DISPLAY_NAME_MAX)
        return sdo_fail_field(err, field, "%s is %zu bytes long; at most %d are allowed", field, n,
                              DISPLAY_NAME_MAX);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return sdo_fail_field(err, field, "%s must not contain control characters", field);
    return 0;
}

static int owner_check(const char *s, sdo_error *err)
{
    if (!s[0])
        return 0;
    bool ok = strncmp(s, "users/", 6) == 0 && strlen(s) > 6 && strlen(s) <= 6 + 64;
    for (const char *p = s + 6; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
             *p == '.';
    if (!ok)
        return sdo_fail_field(err, "tenant.owner",
                              "tenant.owner '%.80s' must look like 'users/{user}' (lower-case "
                              "letters, digits, '-', '_', '.')",
                              s);
    return 0;
}

/* Validates labels and renders them as a JSON object into b (keys and values need no
 * escaping: the label rules exclude every character JSON would escape). Later duplicates
 * of a key win. */
static int labels_json(Saasodoo__V1__Tenant__LabelsEntry **labels, size_t n, sdo_buf *b,
                       sdo_error *err)
{
    if (n > MAX_LABELS)
        return sdo_fail_field(err, "tenant.labels", "a tenant has at most %d labels, not %zu",
                              MAX_LABELS, n);
    sdo_buf_puts(b, "{");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (label_validate(labels[i]->key, labels[i]->value, err) < 0)
            return -SDO_INVALID_ARGUMENT;
        bool later = false;
        for (size_t j = i + 1; j < n && !later; j++)
            later = strcmp(labels[i]->key, labels[j]->key) == 0;
        if (later)
            continue;
        sdo_buf_printf(b, "%s\"%s\":\"%s\"", first ? "" : ",", labels[i]->key, labels[i]->value);
        first = false;
    }
    sdo_buf_puts(b, "}");
    return 0;
}

static void request_key_init(request_key *rk, const rpc_ctx *ctx, const ProtobufCMessage *req,
                             const char *request_id)
{
    rk->request_id = request_id;
    rk->method = ctx->path;
    if (request_id[0])
        api_request_hash(req, rk->hash);
}

static int create_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CreateTenantRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__Tenant *t = req->tenant;
    char plan_id[64];

    if (tenant_id_validate(req->tenant_id, "tenant_id", err) < 0)
        return -1;
    if (!t)
        return sdo_fail_field(err, "tenant",
                              "tenant is required: give at least tenant.plan, e.g. 'plans/basic'");
    if (!t->plan[0])
        return sdo_fail_field(err, "tenant.plan", "tenant.plan is required, e.g. 'plans/basic'");
    if (resource_name_parse(t->plan, "plans", "tenant.plan", plan_id, sizeof plan_id, err) < 0)
        return -1;
    if (display_name_check(t->display_name, "tenant.display_name", err) < 0 ||
        owner_check(t->owner, err) < 0 || api_request_id_check(req->request_id, err) < 0)
        return -1;
    if (t->odoo_version[0] && !odoo_version_ok(t->odoo_version))
        return sdo_fail_field(err, "tenant.odoo_version",
                              "tenant.odoo_version '%.32s' is not an Odoo version such as '17.0'",
                              t->odoo_version);
    sdo_buf labels = {0};
    if (labels_json(t->labels, t->n_labels, &labels, err) < 0) {
        sdo_buf_free(&labels);
        return -1;
    }
    request_key rk;
    request_key_init(&rk, ctx, msg, req->request_id);
    tenant_create_input in = {
        .tenant_id = req->tenant_id,
        .display_name = t->display_name,
        .owner = t->owner[0] ? t->owner : ctx->principal,
        .plan_id = plan_id,
        .odoo_version = t->odoo_version,
        .labels_json = labels.data,
        .requester = ctx->principal,
    };
    Saasodoo__V1__Operation *op = NULL;
    int rc = tenants_create(app->st, app->cfg, app->key, &in, &rk, &op, err);
    sdo_buf_free(&labels);
    if (rc < 0)
        return rc;
    engine_kick(app->eng);
    *resp = &op->base;
    return 0;
}

/* Suspend, resume, delete and migrate share their shape: name, request id, an operation. */
static int change_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp,
                         tenant_change *in, const char *name, const char *request_id)
{
    sdo_app *app = ctx->app;
    char id[64];
    if (resource_name_parse(name, "tenants", "name", id, sizeof id, &ctx->err) < 0 ||
        api_request_id_check(request_id, &ctx->err) < 0)
        return -1;
    in->tenant_id = id;
    in->requester = ctx->principal;
    request_key rk;
    request_key_init(&rk, ctx, msg, request_id);
    Saasodoo__V1__Operation *op = NULL;
    if (tenants_change(app->st, app->key, in, &rk, &op, &ctx->err) < 0)
        return -1;
    engine_kick(app->eng);
    *resp = &op->base;
    return 0;
}

static int delete_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__DeleteTenantRequest *req = (const void *)msg;
    tenant_change in = {.kind = "DELETE_TENANT", .etag = req->etag};
    return change_tenant(ctx, msg, resp, &in, req->name, req->request_id);
}

static int suspend_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__SuspendTenantRequest *req = (const void *)msg;
    if (display_name_check(req->reason, "reason", &ctx->err) < 0)
        return -1;
    tenant_change in = {.kind = "SUSPEND_TENANT", .reason = req->reason};
    return change_tenant(ctx, msg, resp, &in, req->name, req->request_id);
}

static int resume_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ResumeTenantRequest *req = (const void *)msg;
    tenant_change in = {.kind = "RESUME_TENANT"};
    return change_tenant(ctx, msg, resp, &in, req->name, req->request_id);
}

static int migrate_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__MigrateTenantRequest *req = (const void *)msg;
    char server[64] = "";
    if (req->target_strategy == SAASODOO__V1__DATABASE_STRATEGY__DATABASE_STRATEGY_UNSPECIFIED)
        return sdo_fail_field(&ctx->err, "target_strategy",
                              "target_strategy is required: SHARED or DEDICATED");
    if (req->target_database_server[0] &&
        resource_name_parse(req->target_database_server, "databaseServers",
                            "target_database_server", server, sizeof server, &ctx->err) < 0)
        return -1;
    if (req->target_database_server[0] &&
        req->target_strategy != SAASODOO__V1__DATABASE_STRATEGY__SHARED)
        return sdo_fail_field(&ctx->err, "target_database_server",
                              "target_database_server can only be given with target_strategy "
                              "SHARED: a dedicated server is made for the tenant");
    tenant_change in = {
        .kind = "MIGRATE_TENANT",
        .target_strategy = req->target_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED
                               ? "DEDICATED"
                               : "SHARED",
        .target_server = server,
    };
    return change_tenant(ctx, msg, resp, &in, req->name, req->request_id);
}

static int get_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__GetTenantRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char id[64];
    if (resource_name_parse(req->name, "tenants", "name", id, sizeof id, &ctx->err) < 0)
        return -1;
    Saasodoo__V1__Tenant *t = NULL;
    if (tenants_get(app->st, id, &t, &ctx->err) < 0)
        return -1;
    *resp = &t->base;
    return 0;
}

static const char *const tenant_filter_fields[] = {"state", "owner", "plan", "database_strategy",
                                                   NULL};

static int list_tenants(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListTenantsRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    list_request lr;
    tenant_query q = {0};
    char plan_id[64];

    if (list_request_parse("tenants", req->show_deleted ? "deleted" : "", req->page_size,
                           req->page_token, req->filter, tenant_filter_fields, &lr, err) < 0)
        return -1;
    const filter_expr *f = &lr.filter;
    q.limit = lr.limit;
    q.after_seq = lr.key;
    q.state = filter_get(f, "state");
    q.owner = filter_get(f, "owner");
    const char *scope_owner = authz_owner_scope(ctx->principal, ctx->role);
    if (scope_owner) {
        if (q.owner && strcmp(q.owner, scope_owner) != 0)
            q.owner = "users/ nobody"; /* another customer's tenants: none to show */
        else
            q.owner = scope_owner;
    }
    q.strategy = filter_get(f, "database_strategy");
    q.show_deleted = req->show_deleted;
    if (filter_enum(q.state, &saasodoo__v1__tenant__state__descriptor, "state", err) < 0 ||
        filter_enum(q.strategy, &saasodoo__v1__database_strategy__descriptor, "database_strategy",
                    err) < 0)
        return -1;
    const char *plan = filter_get(f, "plan");
    if (plan) {
        if (strncmp(plan, "plans/", 6) != 0)
            return sdo_fail_field(err, "filter", "filter: plan must look like \"plans/basic\"");
        if (resource_name_parse(plan, "plans", "filter", plan_id, sizeof plan_id, err) < 0)
            return -1;
        q.plan_id = plan_id;
    }

    Saasodoo__V1__Tenant **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int total = 0;
    if (tenants_list(app->st, &q, &items, &n, &last, &more, &total, err) < 0)
        return -1;
    Saasodoo__V1__ListTenantsResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_tenants_response__init(out);
    out->tenants = items;
    out->n_tenants = n;
    out->total_size = total;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

static int update_tenant(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__UpdateTenantRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__Tenant *t = req->tenant;
    char id[64];

    if (!t)
        return sdo_fail_field(err, "tenant", "tenant is required, with tenant.name set");
    if (resource_name_parse(t->name, "tenants", "tenant.name", id, sizeof id, err) < 0)
        return -1;
    if (!req->update_mask || req->update_mask->n_paths == 0)
        return sdo_fail_field(err, "update_mask",
                              "update_mask is required: name the fields to change "
                              "(display_name, labels)");
    if (api_request_id_check(req->request_id, err) < 0)
        return -1;
    bool set_display = false, set_labels = false;
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
        const char *p = req->update_mask->paths[i];
        if (strcmp(p, "display_name") == 0) {
            set_display = true;
        } else if (strcmp(p, "labels") == 0) {
            set_labels = true;
        } else if (strcmp(p, "*") == 0) {
            set_display = set_labels = true;
        } else if (strcmp(p, "plan") == 0) {
            return sdo_fail_field(err, "update_mask",
                                  "update_mask path 'plan' cannot be changed here; use "
                                  "BillingService.ChangePlan");
        } else {
            return sdo_fail_field(err, "update_mask",
                                  "update_mask path '%.64s' is not a field you can change; "
                                  "mutable fields: display_name, labels",
                                  p);
        }
    }
    if (set_display) {
        if (!t->display_name[0])
            return sdo_fail_field(err, "tenant.display_name",
                                  "tenant.display_name must not be empty");
        if (display_name_check(t->display_name, "tenant.display_name", err) < 0)
            return -1;
    }
    sdo_buf labels = {0};
    if (set_labels && labels_json(t->labels, t->n_labels, &labels, err) < 0) {
        sdo_buf_free(&labels);
        return -1;
    }
    request_key rk;
    request_key_init(&rk, ctx, msg, req->request_id);
    Saasodoo__V1__Tenant *out = NULL;
    int rc = tenants_update(app->st, id, t->etag, set_display ? t->display_name : NULL,
                            set_labels ? labels.data : NULL, &rk, &out, err);
    sdo_buf_free(&labels);
    if (rc < 0)
        return rc;
    *resp = &out->base;
    return 0;
}

const rpc_handler tenant_handlers[] = {
    {"CreateTenant", RPC_UNARY, create_tenant, NULL, NULL},
    {"GetTenant", RPC_UNARY, get_tenant, NULL, NULL},
    {"ListTenants", RPC_UNARY, list_tenants, NULL, NULL},
    {"UpdateTenant", RPC_UNARY, update_tenant, NULL, NULL},
    {"DeleteTenant", RPC_UNARY, delete_tenant, NULL, NULL},
    {"SuspendTenant", RPC_UNARY, suspend_tenant, NULL, NULL},
    {"ResumeTenant", RPC_UNARY, resume_tenant, NULL, NULL},
    {"MigrateTenant", RPC_UNARY, migrate_tenant, NULL, NULL},
    {NULL, 0, NULL, NULL, NULL},
};
