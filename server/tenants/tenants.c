/* Tenant records and their rules. */
#include "tenants/tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/provisioning.h"
#include "util/buf.h"
#include "util/log.h"

static int failed(sdo_error *err)
{
    return -(int)(err->code ? err->code : SDO_INTERNAL);
}

int tenants_create(store *st, const sdo_config *cfg, const secret_key *key,
                   const tenant_create_input *in, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err)
{
    Saasodoo__V1__Plan *plan = NULL;
    Saasodoo__V1__Tenant *t = NULL;
    Saasodoo__V1__Tenant *existing = NULL;
    ProtobufCMessage *again = NULL;
    int rc;

    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);

    rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                              (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;

    rc = store_plan_get(st, c, in->plan_id, &plan, err);
    if (rc == -SDO_NOT_FOUND) {
        char *ids = store_plan_ids(st, c);
        sdo_fail_field(err, "tenant.plan",
                       "tenant.plan 'plans/%s' does not exist; choose one of: %s", in->plan_id,
                       ids);
        sdo_error_reason(err, "PLAN_UNKNOWN");
        free(ids);
        rc = -SDO_INVALID_ARGUMENT;
    }
    if (rc < 0)
        goto out;

    char url[512], opid[37], target[64];
    snprintf(url, sizeof url, "http://%s.%s", in->tenant_id, cfg->platform_base_domain);
    snprintf(target, sizeof target, "tenants/%s", in->tenant_id);
    sdo_uuid4(opid);
    tenant_row row = {
        .id = in->tenant_id,
        .display_name = in->display_name[0] ? in->display_name : in->tenant_id,
        .owner = in->owner,
        .plan_id = in->plan_id,
        .state = "PROVISIONING",
        .strategy = plan->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED
                        ? "DEDICATED"
                        : "SHARED",
        .url = url,
        .odoo_version = in->odoo_version[0] ? in->odoo_version : cfg->platform_default_odoo_version,
        .labels_json = in->labels_json,
    };
    op_row op = {
        .id = opid,
        .kind = "CREATE_TENANT",
        .target = target,
        .state = "PENDING",
        .step = "waiting to start",
        .requester = in->requester,
        .request_id = rk && rk->request_id ? rk->request_id : "",
    };

    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    /* A shared tenant needs a server with room now; say so at once rather than fail later. */
    if (plan->database_strategy != SAASODOO__V1__DATABASE_STRATEGY__DEDICATED) {
        server_rec room = {0};
        rc = store_server_pick_shared(st, c, key, NULL, &room, err);
        server_rec_free(&room);
        if (rc < 0)
            goto rollback;
    }
    /* The id of a tenant deleted long enough ago may be taken again. */
    if ((rc = store_tenant_purge_deleted(st, c, in->tenant_id,
                                         cfg->tenants_deleted_id_retention_days, err)) < 0)
        goto rollback;
    rc = store_tenant_insert(st, c, &row, &t, err);
    if (rc == 0) {
        store_rollback(c);
        /* Either a concurrent retry of this very request won, or the id is taken. */
        rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                                  (ProtobufCMessage **)out, err);
        if (rc != 0)
            goto out;
        if (store_tenant_get(st, c, in->tenant_id, false, &existing, err) == 0 &&
            existing->state == SAASODOO__V1__TENANT__STATE__DELETED)
            sdo_fail(err, SDO_ALREADY_EXISTS,
                     "tenant id '%s' belonged to a tenant deleted less than %d days ago and "
                     "cannot be taken again yet",
                     in->tenant_id, cfg->tenants_deleted_id_retention_days);
        else
            sdo_fail(err, SDO_ALREADY_EXISTS,
                     "tenant 'tenants/%s' already exists; choose another "
                     "tenant_id",
                     in->tenant_id);
        sdo_error_reason(err, "TENANT_ID_TAKEN");
        rc = -SDO_ALREADY_EXISTS;
        goto out;
    }
    if (rc < 0)
        goto rollback;
    rc = store_op_insert(st, c, &op, out, err);
    if (rc < 0)
        goto rollback;
    rc = store_request_remember(st, c, rk, &(*out)->base, err);
    if (rc == 0) {
        /* The request id was taken meanwhile by a different request. */
        store_rollback(c);
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
        rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor, &again, err);
        if (rc == 1) {
            *out = (Saasodoo__V1__Operation *)again;
            rc = 0;
        } else if (rc == 0) {
            rc = sdo_fail(err, SDO_ABORTED, "a concurrent request got in the way; retry");
        }
        goto out;
    }
    if (rc < 0)
        goto rollback;
    rc = store_commit(st, c, err);
    if (rc == 0)
        log_info("msg=\"tenant recorded\" tenant=%s plan=%s operation=%s", in->tenant_id,
                 in->plan_id, opid);
    goto out;

rollback:
    store_rollback(c);
    if (*out) {
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    }
out:
    if (rc == 1)
        rc = 0; /* replayed */
    store_release(st, c);
    if (plan)
        protobuf_c_message_free_unpacked(&plan->base, NULL);
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    if (existing)
        protobuf_c_message_free_unpacked(&existing->base, NULL);
    return rc;
}

int tenants_get(store *st, const char *id, Saasodoo__V1__Tenant **out, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_tenant_get(st, c, id, false, out, err);
    store_release(st, c);
    return rc;
}

int tenants_update(store *st, const char *id, const char *etag, const char *display_name,
                   const char *labels_json, const request_key *rk, Saasodoo__V1__Tenant **out,
                   sdo_error *err)
{
    Saasodoo__V1__Tenant *cur = NULL;
    int64_t want = -1;
    if (etag && etag[0]) {
        want = tenant_etag_parse(etag);
        if (want < 0)
            return sdo_fail_field(err, "tenant.etag",
                                  "tenant.etag '%.64s' is not an etag this server issued; leave "
                                  "it empty or pass the etag from GetTenant",
                                  etag);
    }
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_request_replay(st, c, rk, &saasodoo__v1__tenant__descriptor,
                                  (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;
    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    if ((rc = store_tenant_get(st, c, id, true, &cur, err)) < 0)
        goto rollback;
    if (cur->state == SAASODOO__V1__TENANT__STATE__DELETED) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "tenant 'tenants/%s' is DELETED and can no longer be changed", id);
        goto rollback;
    }
    if (want >= 0 && strcmp(cur->etag, etag) != 0) {
        rc = sdo_fail(err, SDO_ABORTED,
                      "tenant.etag '%s' is stale: tenant 'tenants/%s' changed since you read it "
                      "(now '%s'); get it again and retry",
                      etag, id, cur->etag);
        goto rollback;
    }
    rc = store_tenant_update(st, c, id, want, display_name, labels_json, out, err);
    if (rc == 0)
        rc = sdo_fail(err, SDO_ABORTED, "tenant 'tenants/%s' changed meanwhile; retry", id);
    if (rc < 0)
        goto rollback;
    rc = store_request_remember(st, c, rk, &(*out)->base, err);
    if (rc == 0)
        rc = sdo_fail(err, SDO_ABORTED, "request_id '%s' is being used by a concurrent request",
                      rk->request_id);
    if (rc < 0)
        goto rollback;
    rc = store_commit(st, c, err);
    goto out;
rollback:
    store_rollback(c);
    if (*out) {
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    }
out:
    if (rc == 1)
        rc = 0;
    store_release(st, c);
    if (cur)
        protobuf_c_message_free_unpacked(&cur->base, NULL);
    return rc;
}

int tenants_list(store *st, const tenant_query *q, Saasodoo__V1__Tenant ***out, size_t *n,
                 int64_t *last_seq, bool *more, int *total, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_tenant_list(st, c, q, out, n, last_seq, more, err);
    if (rc == 0)
        rc = store_tenant_count(st, c, q, total, err);
    store_release(st, c);
    return rc;
}

static const char *kind_verb(const char *kind)
{
    if (strcmp(kind, "SUSPEND_TENANT") == 0)
        return "suspended";
    if (strcmp(kind, "RESUME_TENANT") == 0)
        return "resumed";
    if (strcmp(kind, "DELETE_TENANT") == 0)
        return "deleted";
    return "migrated";
}

/* Which states each change starts from. */
static bool change_allowed(const char *kind, Saasodoo__V1__Tenant__State st, const char **need)
{
    if (strcmp(kind, "SUSPEND_TENANT") == 0) {
        *need = "ACTIVE";
        return st == SAASODOO__V1__TENANT__STATE__ACTIVE;
    }
    if (strcmp(kind, "RESUME_TENANT") == 0) {
        *need = "SUSPENDED";
        return st == SAASODOO__V1__TENANT__STATE__SUSPENDED;
    }
    if (strcmp(kind, "DELETE_TENANT") == 0) {
        *need = "ACTIVE, SUSPENDED or FAILED";
        return st == SAASODOO__V1__TENANT__STATE__ACTIVE ||
               st == SAASODOO__V1__TENANT__STATE__SUSPENDED ||
               st == SAASODOO__V1__TENANT__STATE__FAILED;
    }
    *need = "ACTIVE";
    return st == SAASODOO__V1__TENANT__STATE__ACTIVE;
}

int tenants_change(store *st, const secret_key *key, const tenant_change *in, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err)
{
    Saasodoo__V1__Tenant *cur = NULL;
    sdo_buf params = {0};
    char target[64];
    snprintf(target, sizeof target, "tenants/%s", in->tenant_id);

    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                                  (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;
    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    if ((rc = store_tenant_get(st, c, in->tenant_id, true, &cur, err)) < 0)
        goto rollback;
    if ((rc = store_op_check_idle(st, c, target, err)) != 0)
        goto rollback;
    const char *need = "";
    if (!change_allowed(in->kind, cur->state, &need)) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "tenant '%s' is %s; it can only be %s when it is %s", target,
                      store_enum_name(&saasodoo__v1__tenant__state__descriptor, cur->state),
                      kind_verb(in->kind), need);
        sdo_error_reason(err, "TENANT_STATE");
        goto rollback;
    }
    if (in->etag && in->etag[0] && strcmp(in->etag, cur->etag) != 0) {
        rc = sdo_fail(err, SDO_ABORTED,
                      "etag '%s' is stale: tenant '%s' changed since you read it (now '%s'); "
                      "get it again and retry",
                      in->etag, target, cur->etag);
        goto rollback;
    }
    sdo_buf_puts(&params, "{");
    const char *new_state = NULL;
    /* the tenant's server as an id: the record holds its resource name */
    const char *cur_server = cur->database_server;
    if (strncmp(cur_server, "databaseServers/", 16) == 0)
        cur_server += 16;
    if (strcmp(in->kind, "MIGRATE_TENANT") == 0) {
        const char *from = cur->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED
                               ? "DEDICATED"
                               : "SHARED";
        if (strcmp(in->target_strategy, "DEDICATED") == 0 && strcmp(from, "DEDICATED") == 0) {
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "tenant '%s' already has a database server of its own", target);
            goto rollback;
        }
        if (strcmp(in->target_strategy, "SHARED") == 0) {
            server_rec s = {0};
            if (in->target_server[0]) {
                rc = store_server_get(st, c, key, in->target_server, &s, err);
                if (rc == -SDO_NOT_FOUND) {
                    sdo_fail_field(err, "target_database_server",
                                   "target_database_server 'databaseServers/%s' does not exist",
                                   in->target_server);
                    rc = -SDO_INVALID_ARGUMENT;
                } else if (rc == 0 && strcmp(s.kind, "SHARED") != 0) {
                    rc = sdo_fail_field(err, "target_database_server",
                                        "target_database_server '%s' is not a shared server",
                                        in->target_server);
                } else if (rc == 0 && strcmp(s.id, cur_server) == 0) {
                    rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                                  "tenant '%s' is already on database server '%s'", target, s.id);
                } else if (rc == 0 && s.load >= s.capacity) {
                    rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                                  "database server '%s' is full (%d of %d tenants)", s.id, s.load,
                                  s.capacity);
                }
            } else {
                rc = store_server_pick_shared(st, c, key, cur_server, &s, err);
            }
            server_rec_free(&s);
            if (rc < 0)
                goto rollback;
        }
        sdo_buf_printf(&params, "\"target_strategy\": \"%s\", \"prefer_server\": \"%s\"",
                       in->target_strategy, in->target_server);
        new_state = "MIGRATING";
    } else if (strcmp(in->kind, "DELETE_TENANT") == 0) {
        new_state = "DELETING";
    }
    sdo_buf_puts(&params, "}");
    if (new_state && (rc = store_tenant_set_state(st, c, in->tenant_id, NULL, new_state,
                                                  cur->state_reason, err)) < 0)
        goto rollback;
    if (strcmp(in->kind, "SUSPEND_TENANT") == 0 && in->reason && in->reason[0] &&
        (rc = store_tenant_set_state(st, c, in->tenant_id, NULL, "ACTIVE", in->reason, err)) < 0)
        goto rollback;
    if ((rc = store_op_record(st, c, in->kind, target, params.data, in->requester, rk, out, err)) <
        0)
        goto rollback;
    rc = store_commit(st, c, err);
    if (rc == 0)
        log_info("msg=\"tenant change recorded\" tenant=%s kind=%s operation=%s", in->tenant_id,
                 in->kind, (*out)->name);
    goto out;
rollback:
    store_rollback(c);
    if (*out) {
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    }
out:
    if (rc == 1)
        rc = 0;
    store_release(st, c);
    sdo_buf_free(&params);
    if (cur)
        protobuf_c_message_free_unpacked(&cur->base, NULL);
    return rc;
}
