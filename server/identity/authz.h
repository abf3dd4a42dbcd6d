/* Authorization, decided in one place: a table with one rule per RPC saying who may call it
 * and which field of the request names the resource it acts on. Admins may do everything; a
 * customer acts on their own tenants (and the operations and backups of those) and their own
 * user; another customer's resource answers NOT_FOUND exactly as a missing one does, so ids
 * cannot be probed. List methods are narrowed to the caller's own resources by the handlers
 * through authz_owner_scope(). */
#ifndef SDO_AUTHZ_H
#define SDO_AUTHZ_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "identity/identity.h"
#include "store/store.h"

typedef enum {
    AZ_PUBLIC,    /* no credentials needed */
    AZ_USER,      /* any signed-in user */
    AZ_ADMIN,     /* admins only */
    AZ_TENANT,    /* the tenant named by field (tenants/{id}[/...]) must be the caller's */
    AZ_OPERATION, /* the operation named by field (operations/{id}) must be on a tenant of the
                     caller's */
    AZ_SELF,      /* the user named by field (users/{id}[/...]) must be the caller */
    AZ_CREATE,    /* a new resource; field is its owner, which must be "" or the caller */
    AZ_SCOPED,    /* a List: the handler narrows it with authz_owner_scope() */
} az_kind;

typedef struct az_rule {
    const char *method; /* full path, "/saasodoo.v1.TenantService/GetTenant" */
    az_kind kind;
    const char *field;         /* dotted path in the request to the resource name, or NULL */
    const char *target;        /* for the audit log: dotted path of the target, or NULL = field */
    const char *target_prefix; /* prepended to the target ("tenants/" for tenant_id) */
} az_rule;

/* The rule of a method, or NULL when the table has none (such a method is refused). */
const az_rule *authz_rule(const char *method);
/* Every rule, for tests and documentation. */
const az_rule *authz_rules(size_t *n);
/* True for methods that change something: written to the audit log. */
bool authz_mutating(const char *method);

/* Decides whether who may make this call. Fills target (the resource, for the audit log).
 * PERMISSION_DENIED for a customer calling an admin method, NOT_FOUND for a resource of
 * someone else, INVALID_ARGUMENT is left to the handler. who is NULL for anonymous callers
 * of public methods. */
int authz_check(store *st, const az_rule *rule, const principal *who, const ProtobufCMessage *req,
                char *target, size_t targetsz, sdo_error *err);

/* The owner a List must be narrowed to ("users/{id}"), or NULL for admins. */
const char *authz_owner_scope(const char *principal_name, int role);

#endif
