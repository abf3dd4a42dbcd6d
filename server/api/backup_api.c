/* saasodoo.v1.BackupService: request validation and mapping to the backup domain. Create,
 * delete and restore record an operation for the engine and return it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/filter.h"
#include "api/handlers.h"
#include "api/pagination.h"
#include "backup/backup.h"
#include "backup/download.h"
#include "saasodoo/v1/backup.pb-c.h"
#include "store/records.h"
#include "tenants/validate.h"

#define DESCRIPTION_MAX 200

static void request_key_init(request_key *rk, const rpc_ctx *ctx, const ProtobufCMessage *req,
                             const char *request_id)
{
    rk->request_id = request_id;
    rk->method = ctx->path;
    if (request_id[0])
        api_request_hash(req, rk->hash);
}

static int text_check(const char *s, const char *field, size_t max, sdo_error *err)
{
    size_t n = strlen(s);
    if (n > max)
        return sdo_fail_field(err, field, "%s is %zu bytes long; at most %zu are allowed", field, n,
                              max);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return sdo_fail_field(err, field, "%s must not contain control characters", field);
    return 0;
}

static int create_backup(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CreateBackupRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64];
    if (!req->parent[0])
        return sdo_fail_field(&ctx->err, "parent", "parent is required, e.g. 'tenants/acme'");
    if (resource_name_parse(req->parent, "tenants", "parent", tenant, sizeof tenant, &ctx->err) <
            0 ||
        text_check(req->description, "description", DESCRIPTION_MAX, &ctx->err) < 0 ||
        api_request_id_check(req->request_id, &ctx->err) < 0)
        return -1;
    request_key rk;
    request_key_init(&rk, ctx, msg, req->request_id);
    backup_request in = {
        .tenant_id = tenant,
        .trigger = "MANUAL",
        .description = req->description,
        .slot = NULL,
        .requester = ctx->principal,
    };
    Saasodoo__V1__Operation *op = NULL;
    if (backup_create(app->st, app->cfg, &in, &rk, &op, &ctx->err) < 0)
        return -1;
    engine_kick(app->eng);
    *resp = &op->base;
    return 0;
}

static int get_backup(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__GetBackupRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64], id[64];
    if (backup_name_parse(req->name, "name", tenant, id, &ctx->err) < 0)
        return -1;
    PGconn *c = store_acquire(app->st, &ctx->err);
    if (!c)
        return -1;
    Saasodoo__V1__Backup *b = NULL;
    int rc = store_backup_get(app->st, c, tenant, id, &b, &ctx->err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    *resp = &b->base;
    return 0;
}

static const char *const backup_filter_fields[] = {"state", "trigger", NULL};

static int list_backups(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListBackupsRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    char tenant[64];
    list_request lr;
    if (!req->parent[0])
        return sdo_fail_field(err, "parent", "parent is required, e.g. 'tenants/acme'");
    if (resource_name_parse(req->parent, "tenants", "parent", tenant, sizeof tenant, err) < 0 ||
        list_request_parse("backups", tenant, req->page_size, req->page_token, req->filter,
                           backup_filter_fields, &lr, err) < 0)
        return -1;
    const char *state = filter_get(&lr.filter, "state");
    const char *trigger = filter_get(&lr.filter, "trigger");
    if (filter_enum(state, &saasodoo__v1__backup__state__descriptor, "state", err) < 0 ||
        filter_enum(trigger, &saasodoo__v1__backup__trigger__descriptor, "trigger", err) < 0)
        return -1;
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    Saasodoo__V1__Backup **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc = store_backup_list(app->st, c, tenant, state, trigger, lr.key, lr.limit, &items, &n,
                               &last, &more, err);
    if (rc == 0 && n == 0 && !lr.key) {
        /* nothing listed: say so when the tenant is unknown altogether */
        Saasodoo__V1__Tenant *t = NULL;
        rc = store_tenant_get(app->st, c, tenant, false, &t, err);
        if (t)
            protobuf_c_message_free_unpacked(&t->base, NULL);
    }
    store_release(app->st, c);
    if (rc < 0) {
        free(items);
        return -1;
    }
    Saasodoo__V1__ListBackupsResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_backups_response__init(out);
    out->backups = items;
    out->n_backups = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

static int delete_backup(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__DeleteBackupRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64], id[64];
    if (backup_name_parse(req->name, "name", tenant, id, &ctx->err) < 0 ||
        api_request_id_check(req->request_id, &ctx->err) < 0)
        return -1;
    request_key rk;
    request_key_init(&rk, ctx, msg, req->request_id);
    Saasodoo__V1__Operation *op = NULL;
    if (backup_delete(app->st, tenant, id, ctx->principal, &rk, &op, &ctx->err) < 0)
        return -1;
    engine_kick(app->eng);
    *resp = &op->base;
    return 0;
}

static int restore_backup(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__RestoreBackupRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64], id[64];
    if (backup_name_parse(req->name, "name", tenant, id, &ctx->err) < 0 ||
        api_request_id_check(req->request_id, &ctx->err) < 0)
        return -1;
    if (req->target_tenant_id[0] && strcmp(req->target_tenant_id, tenant) != 0 &&
        tenant_id_validate(req->target_tenant_id, "target_tenant_id", &ctx->err) < 0)
        return -1;
    request_key rk;
    request_key_init(&rk, ctx, msg, req->request_id);
    Saasodoo__V1__Operation *op = NULL;
    if (backup_restore(app->st, app->cfg, tenant, id, req->target_tenant_id, ctx->principal, &rk,
                       &op, &ctx->err) < 0)
        return -1;
    engine_kick(app->eng);
    *resp = &op->base;
    return 0;
}

/* ---- DownloadBackupPart: the part's bytes as a stream of BackupChunk ---- */

static int send_chunk(void *arg, const void *data, size_t n, int64_t offset, int64_t total,
                      const char *sha256, sdo_error *err)
{
    Saasodoo__V1__BackupChunk m = SAASODOO__V1__BACKUP_CHUNK__INIT;
    m.data.data = (uint8_t *)data;
    m.data.len = n;
    m.offset = offset;
    m.total_size = total;
    if (sha256)
        m.sha256 = (char *)sha256;
    if (rpc_stream_send_wait(arg, &m.base) < 0)
        return sdo_fail(err, SDO_CANCELLED, "the client went away during the download");
    return 0;
}

static int download_part(rpc_ctx *ctx, const ProtobufCMessage *msg, rpc_stream *s)
{
    const Saasodoo__V1__DownloadBackupPartRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64], id[64];
    if (backup_name_parse(req->name, "name", tenant, id, &ctx->err) < 0)
        return -1;
    if (!req->part[0])
        return sdo_fail_field(&ctx->err, "part",
                              "part is required: one of the backup's parts, e.g. "
                              "'database.dump', 'files.tar' or 'manifest.json'");
    if (!bk_part_name_ok(req->part))
        return sdo_fail_field(&ctx->err, "part",
                              "part '%.80s' is not a part name: 1 to 63 of [A-Za-z0-9._-], not "
                              "starting with '.', e.g. 'database.dump'",
                              req->part);
    if (bk_download_part(app->st, app->backups, tenant, id, req->part, send_chunk, s, &ctx->err) <
        0)
        return -1;
    rpc_stream_finish(s, 0, NULL);
    return 0;
}

/* ---- policies ---- */

static void policy_etag(bool overridden, int64_t version, char *out, size_t outsz)
{
    if (overridden)
        snprintf(out, outsz, "\"p%lld\"", (long long)version);
    else
        snprintf(out, outsz, "\"plan\"");
}

static Saasodoo__V1__BackupPolicy *policy_msg(const char *tenant, const backup_policy *p,
                                              bool overridden, int64_t version)
{
    Saasodoo__V1__BackupPolicy *m = sdo_malloc(sizeof *m);
    saasodoo__v1__backup_policy__init(m);
    size_t n = strlen(tenant) + 24;
    m->name = sdo_malloc(n);
    snprintf(m->name, n, "tenants/%s/backupPolicy", tenant);
    m->schedule = sdo_strdup(p->schedule);
    m->time_of_day = sdo_strdup(strcmp(p->schedule, "daily") == 0 ? p->time_of_day : "");
    m->keep_daily = p->keep_daily;
    m->keep_weekly = p->keep_weekly;
    m->keep_monthly = p->keep_monthly;
    m->overridden = overridden;
    char etag[32];
    policy_etag(overridden, version, etag, sizeof etag);
    m->etag = sdo_strdup(etag);
    return m;
}

/* The tenant's plan id (without "plans/"); NOT_FOUND for an unknown tenant. */
static int tenant_plan(store *st, PGconn *c, const char *tenant, bool lock, char plan[64],
                       sdo_error *err)
{
    Saasodoo__V1__Tenant *t = NULL;
    int rc = store_tenant_get(st, c, tenant, lock, &t, err);
    if (rc == 0) {
        sdo_strlcpy(plan, strncmp(t->plan, "plans/", 6) == 0 ? t->plan + 6 : t->plan, 64);
        if (t->state == SAASODOO__V1__TENANT__STATE__DELETED)
            rc = sdo_fail(err, SDO_NOT_FOUND, "tenant 'tenants/%s' was deleted", tenant);
    }
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    return rc;
}

static int get_policy(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__GetBackupPolicyRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char tenant[64], plan[64];
    if (backup_policy_name_parse(req->name, "name", tenant, &ctx->err) < 0)
        return -1;
    PGconn *c = store_acquire(app->st, &ctx->err);
    if (!c)
        return -1;
    backup_policy p;
    bool overridden = false;
    int64_t version = 0;
    int rc = tenant_plan(app->st, c, tenant, false, plan, &ctx->err);
    if (rc == 0)
        rc =
            backup_policy_effective(app->st, c, tenant, plan, &p, &overridden, &version, &ctx->err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    *resp = &policy_msg(tenant, &p, overridden, version)->base;
    return 0;
}

static int update_policy(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__UpdateBackupPolicyRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__BackupPolicy *in = req->policy;
    char tenant[64], plan[64];
    if (!in)
        return sdo_fail_field(
            err, "policy", "policy is required, with policy.name 'tenants/{tenant}/backupPolicy'");
    if (backup_policy_name_parse(in->name, "policy.name", tenant, err) < 0 ||
        api_request_id_check(req->request_id, err) < 0)
        return -1;
    if (!req->update_mask || req->update_mask->n_paths == 0)
        return sdo_fail_field(err, "update_mask",
                              "update_mask is required: name the fields to change (schedule, "
                              "time_of_day, keep_daily, keep_weekly, keep_monthly)");
    bool set[5] = {false};
    static const char *const fields[5] = {"schedule", "time_of_day", "keep_daily", "keep_weekly",
                                          "keep_monthly"};
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
        const char *path = req->update_mask->paths[i];
        bool known = false;
        for (int j = 0; j < 5; j++) {
            if (strcmp(path, fields[j]) == 0 || strcmp(path, "*") == 0) {
                set[j] = true;
                known = true;
            }
        }
        if (!known)
            return sdo_fail_field(err, "update_mask",
                                  "update_mask path '%.64s' is not a field you can change; "
                                  "mutable fields: schedule, time_of_day, keep_daily, "
                                  "keep_weekly, keep_monthly",
                                  path);
    }
    if (set[0] && strlen(in->schedule) >= sizeof((backup_policy *)0)->schedule)
        return sdo_fail_field(err, "policy.schedule",
                              "policy.schedule must be hourly, daily or disabled");
    if (set[1] && strlen(in->time_of_day) >= sizeof((backup_policy *)0)->time_of_day)
        return sdo_fail_field(err, "policy.time_of_day",
                              "policy.time_of_day must be a UTC time as HH:MM");

    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    backup_policy p;
    bool overridden = false;
    int64_t version = 0;
    int rc = store_begin(app->st, c, err);
    if (rc == 0)
        rc = tenant_plan(app->st, c, tenant, true, plan, err);
    if (rc == 0)
        rc = backup_policy_effective(app->st, c, tenant, plan, &p, &overridden, &version, err);
    if (rc == 0 && in->etag[0]) {
        char etag[32];
        policy_etag(overridden, version, etag, sizeof etag);
        if (strcmp(etag, in->etag) != 0)
            rc = sdo_fail(err, SDO_ABORTED,
                          "policy.etag %.40s is stale: the policy of tenant '%s' changed since "
                          "you read it (now %s); get it again and retry",
                          in->etag, tenant, etag);
    }
    if (rc == 0) {
        if (set[0])
            sdo_strlcpy(p.schedule, in->schedule, sizeof p.schedule);
        if (set[1])
            sdo_strlcpy(p.time_of_day, in->time_of_day, sizeof p.time_of_day);
        if (set[2])
            p.keep_daily = in->keep_daily;
        if (set[3])
            p.keep_weekly = in->keep_weekly;
        if (set[4])
            p.keep_monthly = in->keep_monthly;
        if (strcmp(p.schedule, "daily") != 0 && !set[1])
            p.time_of_day[0] = 0;
        rc = backup_policy_check(&p, "policy.", err);
    }
    if (rc == 0)
        rc = store_backup_policy_put(app->st, c, tenant, &p, &version, err);
    if (rc == 0)
        rc = store_commit(app->st, c, err);
    else
        store_rollback(c);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    *resp = &policy_msg(tenant, &p, true, version)->base;
    return 0;
}

const rpc_handler backup_handlers[] = {
    {"CreateBackup", RPC_UNARY, create_backup, NULL, NULL},
    {"GetBackup", RPC_UNARY, get_backup, NULL, NULL},
    {"ListBackups", RPC_UNARY, list_backups, NULL, NULL},
    {"DeleteBackup", RPC_UNARY, delete_backup, NULL, NULL},
    {"RestoreBackup", RPC_UNARY, restore_backup, NULL, NULL},
    {"GetBackupPolicy", RPC_UNARY, get_policy, NULL, NULL},
    {"UpdateBackupPolicy", RPC_UNARY, update_policy, NULL, NULL},
    {"DownloadBackupPart", RPC_SERVER_STREAM, NULL, download_part, NULL},
    {NULL, 0, NULL, NULL, NULL},
};
