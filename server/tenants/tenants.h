/* Tenant records and their rules: creation (placed in PROVISIONING with a pending
 * operation), reads, lists and updates of mutable fields. Requests arrive validated by the
 * API layer; this layer decides what is allowed and keeps the store consistent. */
#ifndef SDO_TENANTS_H
#define SDO_TENANTS_H

#include "config/config.h"
#include "saasodoo/v1/operation.pb-c.h"
#include "saasodoo/v1/tenant.pb-c.h"
#include "store/records.h"
#include "store/store.h"
#include "util/secret.h"

typedef struct tenant_create_input {
    const char *tenant_id;
    const char *display_name;
    const char *owner;
    const char *plan_id;      /* "basic" */
    const char *odoo_version; /* "" means the platform default */
    const char *labels_json;
    const char *requester;
} tenant_create_input;

/* Stores the tenant in PROVISIONING with a pending CREATE_TENANT operation, returned in out.
 * INVALID_ARGUMENT for an unknown plan, ALREADY_EXISTS for a taken id, INVALID_ARGUMENT for a
 * request id reused with another request; a retry of the same request returns the first
 * operation. */
int tenants_create(store *st, const sdo_config *cfg, const secret_key *key,
                   const tenant_create_input *in, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err);

/* A lifecycle change: suspend, resume, delete or migrate. */
typedef struct tenant_change {
    const char *kind; /* SUSPEND_TENANT, RESUME_TENANT, DELETE_TENANT, MIGRATE_TENANT */
    const char *tenant_id;
    const char *etag;            /* DELETE: "" skips the check */
    const char *reason;          /* SUSPEND: why, kept as the tenant's state reason */
    const char *target_strategy; /* MIGRATE: "SHARED" or "DEDICATED" */
    const char *target_server;   /* MIGRATE: a server id to move to, or "" */
    const char *requester;
} tenant_change;

/* Records the operation for a change after checking it is allowed now: FAILED_PRECONDITION
 * naming the running operation or the tenant's state, ABORTED for a stale etag,
 * RESOURCE_EXHAUSTED when no server can take a migrating tenant. */
int tenants_change(store *st, const secret_key *key, const tenant_change *in, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err);

int tenants_get(store *st, const char *id, Saasodoo__V1__Tenant **out, sdo_error *err);

/* Updates display_name and/or labels_json (NULL = keep). etag "" skips the check; a stale
 * one fails with ABORTED; a deleted tenant with FAILED_PRECONDITION. */
int tenants_update(store *st, const char *id, const char *etag, const char *display_name,
                   const char *labels_json, const request_key *rk, Saasodoo__V1__Tenant **out,
                   sdo_error *err);

/* Runs a list query and counts its matches. */
int tenants_list(store *st, const tenant_query *q, Saasodoo__V1__Tenant ***out, size_t *n,
                 int64_t *last_seq, bool *more, int *total, sdo_error *err);

#endif
