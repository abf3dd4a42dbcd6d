/* The authorization table and its one decision function. */
#include "identity/authz.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define T "/saasodoo.v1.TenantService/"
#define O "/saasodoo.v1.OperationService/"
#define B "/saasodoo.v1.BackupService/"
#define BI "/saasodoo.v1.BillingService/"
#define I "/saasodoo.v1.IdentityService/"
#define M "/saasodoo.v1.MonitoringService/"
#define A "/saasodoo.v1.AdminService/"

static const az_rule rules[] = {
    /* identity */
    {I "SignUp", AZ_PUBLIC, NULL, NULL, NULL},
    {I "SignIn", AZ_PUBLIC, NULL, NULL, NULL},
    {I "RefreshSession", AZ_PUBLIC, NULL, NULL, NULL},
    {I "SignOut", AZ_USER, NULL, NULL, NULL},
    {I "GetCurrentUser", AZ_USER, NULL, NULL, NULL},
    {I "CreateApiKey", AZ_SELF, "parent", NULL, NULL},
    {I "ListApiKeys", AZ_SELF, "parent", NULL, NULL},
    {I "DeleteApiKey", AZ_SELF, "name", NULL, NULL},
    /* tenants: suspending, resuming and moving are the operator's decisions */
    {T "CreateTenant", AZ_CREATE, "tenant.owner", "tenant_id", "tenants/"},
    {T "GetTenant", AZ_TENANT, "name", NULL, NULL},
    {T "ListTenants", AZ_SCOPED, NULL, NULL, NULL},
    {T "UpdateTenant", AZ_TENANT, "tenant.name", NULL, NULL},
    {T "DeleteTenant", AZ_TENANT, "name", NULL, NULL},
    {T "SuspendTenant", AZ_ADMIN, NULL, "name", NULL},
    {T "ResumeTenant", AZ_ADMIN, NULL, "name", NULL},
    {T "MigrateTenant", AZ_ADMIN, NULL, "name", NULL},
    /* operations */
    {O "GetOperation", AZ_OPERATION, "name", NULL, NULL},
    {O "ListOperations", AZ_SCOPED, NULL, NULL, NULL},
    {O "WatchOperation", AZ_OPERATION, "name", NULL, NULL},
    {O "CancelOperation", AZ_OPERATION, "name", NULL, NULL},
    /* backups */
    {B "CreateBackup", AZ_TENANT, "parent", NULL, NULL},
    {B "GetBackup", AZ_TENANT, "name", NULL, NULL},
    {B "ListBackups", AZ_TENANT, "parent", NULL, NULL},
    {B "DeleteBackup", AZ_TENANT, "name", NULL, NULL},
    {B "RestoreBackup", AZ_TENANT, "name", NULL, NULL},
    {B "GetBackupPolicy", AZ_TENANT, "name", NULL, NULL},
    {B "UpdateBackupPolicy", AZ_TENANT, "policy.name", NULL, NULL},
    {B "DownloadBackupPart", AZ_ADMIN, NULL, "name", NULL},
    /* billing: the webhook carries its own secret */
    {BI "ListPlans", AZ_USER, NULL, NULL, NULL},
    {BI "GetPlan", AZ_USER, NULL, NULL, NULL},
    {BI "GetSubscription", AZ_TENANT, "name", NULL, NULL},
    {BI "ChangePlan", AZ_TENANT, "name", NULL, NULL},
    {BI "ListInvoices", AZ_SCOPED, NULL, NULL, NULL},
    {BI "GetInvoice", AZ_USER, NULL, NULL, NULL},
    {BI "PayInvoice", AZ_USER, NULL, NULL, NULL},
    {BI "HandleBillingEvent", AZ_PUBLIC, NULL, NULL, NULL},
    /* monitoring */
    {M "GetTenantUsage", AZ_TENANT, "name", NULL, NULL},
    {M "GetPlatformStatus", AZ_ADMIN, NULL, NULL, NULL},
    {M "ListEvents", AZ_SCOPED, NULL, NULL, NULL},
    /* administration */
    {A "ListUsers", AZ_ADMIN, NULL, NULL, NULL},
    {A "UpdateUser", AZ_ADMIN, NULL, "user.name", NULL},
    {A "ListDatabaseServers", AZ_ADMIN, NULL, NULL, NULL},
    {A "CreateDatabaseServer", AZ_ADMIN, NULL, "database_server_id", "databaseServers/"},
    {A "UpdateDatabaseServer", AZ_ADMIN, NULL, "database_server.name", NULL},
    {A "DeleteDatabaseServer", AZ_ADMIN, NULL, "name", NULL},
    {A "ListAuditEvents", AZ_ADMIN, NULL, NULL, NULL},
    {A "CheckConsistency", AZ_ADMIN, NULL, NULL, NULL},
    /* health and reflection */
    {"/grpc.health.v1.Health/Check", AZ_PUBLIC, NULL, NULL, NULL},
    {"/grpc.health.v1.Health/Watch", AZ_PUBLIC, NULL, NULL, NULL},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", AZ_PUBLIC, NULL, NULL, NULL},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", AZ_PUBLIC, NULL, NULL, NULL},
};

const az_rule *authz_rule(const char *method)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].method, method) == 0)
            return &rules[i];
    return NULL;
}

const az_rule *authz_rules(size_t *n)
{
    *n = sizeof rules / sizeof rules[0];
    return rules;
}

bool authz_mutating(const char *method)
{
    const char *name = strrchr(method, '/');
    name = name ? name + 1 : method;
    if (strncmp(method, "/grpc.", 6) == 0)
        return false;
    return strncmp(name, "Get", 3) != 0 && strncmp(name, "List", 4) != 0 &&
           strncmp(name, "Watch", 5) != 0 && strcmp(name, "RefreshSession") != 0;
}

/* The string at a dotted path of the request ("tenant.name"), "" when a message on the way
 * is unset or the path names no string field. */
static const char *field_text(const ProtobufCMessage *m, const char *path)
{
    char part[64];
    while (m && path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part)
            return "";
        memcpy(part, path, n);
        part[n] = 0;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, part);
        if (!f || f->label == PROTOBUF_C_LABEL_REPEATED)
            return "";
        const char *slot = (const char *)m + f->offset;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && dot) {
            m = *(const ProtobufCMessage *const *)slot;
            path = dot + 1;
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_STRING && !dot) {
            const char *s = *(const char *const *)slot;
            return s ? s : "";
        }
        return "";
    }
    return "";
}

/* The id after "collection/" up to the next '/', into out; false when name has another
 * shape. */
static bool segment(const char *name, const char *collection, char *out, size_t outsz)
{
    size_t cl = strlen(collection);
    if (strncmp(name, collection, cl) != 0 || name[cl] != '/')
        return false;
    const char *id = name + cl + 1, *end = strchr(id, '/');
    size_t n = end ? (size_t)(end - id) : strlen(id);
    if (n == 0 || n >= outsz)
        return false;
    memcpy(out, id, n);
    out[n] = 0;
    return true;
}

/* Tenants never change owner, and a deleted tenant's id stays reserved for weeks, so the
 * owner of a tenant is remembered for a minute: a customer's reads then cost no extra
 * query. */
#define OWNER_SLOTS 1024
#define OWNER_TTL_US (60 * 1000000LL)

typedef struct owner_slot {
    char tenant[64];
    char owner[72];
    int64_t at_us;
} owner_slot;

static owner_slot owners[OWNER_SLOTS];
static pthread_mutex_t owners_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned owner_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % OWNER_SLOTS;
}

static bool owner_cached(const char *id, char *owner, size_t ownersz)
{
    owner_slot *s = &owners[owner_hash(id)];
    pthread_mutex_lock(&owners_mu);
    bool hit = strcmp(s->tenant, id) == 0 && sdo_mono_us() - s->at_us < OWNER_TTL_US;
    if (hit)
        sdo_strlcpy(owner, s->owner, ownersz);
    pthread_mutex_unlock(&owners_mu);
    return hit;
}

static void owner_remember(const char *id, const char *owner)
{
    if (strlen(id) >= sizeof owners[0].tenant || strlen(owner) >= sizeof owners[0].owner)
        return;
    owner_slot *s = &owners[owner_hash(id)];
    pthread_mutex_lock(&owners_mu);
    sdo_strlcpy(s->tenant, id, sizeof s->tenant);
    sdo_strlcpy(s->owner, owner, sizeof s->owner);
    s->at_us = sdo_mono_us();
    pthread_mutex_unlock(&owners_mu);
}

static int owner_query(store *st, const char *sql, const char *id, char *owner, size_t ownersz,
                       bool *found, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return -1;
    const char *p[] = {id};
    PGresult *r = store_exec(st, c, sql, 1, p, err, NULL);
    store_release(st, c);
    if (!r)
        return -1;
    *found = PQntuples(r) > 0;
    if (*found)
        sdo_strlcpy(owner, PQgetvalue(r, 0, 0), ownersz);
    PQclear(r);
    return 0;
}

int authz_check(store *st, const az_rule *rule, const principal *who, const ProtobufCMessage *req,
                char *target, size_t targetsz, sdo_error *err)
{
    const char *tfield = rule->target ? rule->target : rule->field;
    if (tfield)
        snprintf(target, targetsz, "%s%s", rule->target_prefix ? rule->target_prefix : "",
                 field_text(req, tfield));
    else
        target[0] = 0;
    if (rule->kind == AZ_PUBLIC || (who && who->role == ROLE_ADMIN))
        return 0;
    if (!who)
        return sdo_fail(err, SDO_UNAUTHENTICATED, "this call needs credentials");
    char self[64];
    snprintf(self, sizeof self, "users/%s", who->user_id);
    const char *value = rule->field ? field_text(req, rule->field) : "";
    char id[128], owner[160] = "";
    bool found = false;
    switch (rule->kind) {
    case AZ_PUBLIC:
    case AZ_USER:
    case AZ_SCOPED:
        return 0;
    case AZ_ADMIN:
        return sdo_fail(err, SDO_PERMISSION_DENIED, "%s is for admins only",
                        strrchr(rule->method, '/') + 1);
    case AZ_CREATE:
        if (value[0] && strcmp(value, self) != 0)
            return sdo_fail(err, SDO_PERMISSION_DENIED,
                            "%s must be empty or your own user (%s): only admins create "
                            "resources for others",
                            rule->field, self);
        return 0;
    case AZ_SELF:
        if (!segment(value, "users", id, sizeof id))
            return 0; /* malformed: the handler says what is wrong */
        if (strcmp(id, who->user_id) != 0 && strcmp(id, "me") != 0)
            return sdo_fail(err, SDO_NOT_FOUND, "user 'users/%.64s' does not exist", id);
        return 0;
    case AZ_TENANT:
        if (!segment(value, "tenants", id, sizeof id))
            return 0;
        found = owner_cached(id, owner, sizeof owner);
        if (!found) {
            if (owner_query(st, "SELECT owner FROM tenants WHERE id = $1", id, owner, sizeof owner,
                            &found, err) < 0)
                return -1;
            if (found)
                owner_remember(id, owner);
        }
        if (!found || strcmp(owner, self) != 0)
            return sdo_fail(err, SDO_NOT_FOUND, "tenant 'tenants/%s' does not exist", id);
        return 0;
    case AZ_OPERATION:
        if (!segment(value, "operations", id, sizeof id) || !sdo_is_uuid(id))
            return 0;
        if (owner_query(st,
                        "SELECT t.owner FROM operations o JOIN tenants t"
                        " ON o.target = 'tenants/' || t.id WHERE o.id = $1::uuid",
                        id, owner, sizeof owner, &found, err) < 0)
            return -1;
        if (!found || strcmp(owner, self) != 0)
            return sdo_fail(err, SDO_NOT_FOUND, "operation 'operations/%s' does not exist", id);
        return 0;
    }
    return sdo_fail(err, SDO_PERMISSION_DENIED, "no rule allows this call");
}

const char *authz_owner_scope(const char *principal_name, int role)
{
    return role == ROLE_ADMIN ? NULL : principal_name;
}
