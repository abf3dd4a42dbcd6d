/* Rows of the control-plane tables as saasodoo.v1 messages: plans, tenants, operations,
 * and stored responses by request id. All SQL of these tables lives behind this header.
 *
 * Messages returned through out-parameters are malloc'ed so that
 * protobuf_c_message_free_unpacked frees them; the caller owns them. Functions return 0 (or
 * a count where stated) and a negative status with err filled on failure. */
#ifndef SDO_RECORDS_H
#define SDO_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "saasodoo/v1/billing.pb-c.h"
#include "saasodoo/v1/operation.pb-c.h"
#include "saasodoo/v1/tenant.pb-c.h"
#include "store/store.h"

/* A malloc'ed google.protobuf.Timestamp for microseconds since the epoch. */
Google__Protobuf__Timestamp *ts_from_us(int64_t us);

/* ---- plans ---- */

/* Inserts or updates every plan of the catalogue, in one transaction. */
int store_plans_upsert(store *st, Saasodoo__V1__Plan *const *plans, size_t n, sdo_error *err);
/* Reads one plan by id ("basic"); NOT_FOUND when absent. */
int store_plan_get(store *st, PGconn *c, const char *id, Saasodoo__V1__Plan **out, sdo_error *err);
/* Comma-separated ids of every plan, for messages (malloc'ed). */
char *store_plan_ids(store *st, PGconn *c);

/* ---- tenants ---- */

typedef struct tenant_query {
    const char *state; /* NULL means any, for each filter */
    const char *owner;
    const char *plan_id;
    const char *strategy;
    bool show_deleted;
    int64_t after_seq;
    int limit;
} tenant_query;

/* The values a new tenant row gets. */
typedef struct tenant_row {
    const char *id;
    const char *display_name;
    const char *owner;
    const char *plan_id;
    const char *state;
    const char *strategy;
    const char *url;
    const char *odoo_version;
    const char *labels_json;
} tenant_row;

int store_tenant_get(store *st, PGconn *c, const char *id, bool for_update,
                     Saasodoo__V1__Tenant **out, sdo_error *err);
/* Returns 1 when inserted (out set), 0 when the id is taken. */
int store_tenant_insert(store *st, PGconn *c, const tenant_row *row, Saasodoo__V1__Tenant **out,
                        sdo_error *err);
/* Lists a page; *last_seq is the sort key of the last row, *more tells if rows follow. */
int store_tenant_list(store *st, PGconn *c, const tenant_query *q, Saasodoo__V1__Tenant ***out,
                      size_t *n, int64_t *last_seq, bool *more, sdo_error *err);
/* Counts the tenants matching q (ignoring after_seq and limit). */
int store_tenant_count(store *st, PGconn *c, const tenant_query *q, int *total, sdo_error *err);
/* Updates the fields given (NULL = keep) when the version matches etag_version (< 0 = any).
 * Returns 1 when updated (out set), 0 when no row matched. */
int store_tenant_update(store *st, PGconn *c, const char *id, int64_t etag_version,
                        const char *display_name, const char *labels_json,
                        Saasodoo__V1__Tenant **out, sdo_error *err);
/* Moves a tenant from state `from` (NULL = any) to `to` with a reason (NULL keeps the current
 * one). Returns rows changed. */
int store_tenant_set_state(store *st, PGconn *c, const char *id, const char *from, const char *to,
                           const char *reason, sdo_error *err);

/* Removes a DELETED tenant's record once its id may be taken again (deleted more than days
 * ago). Returns the number of records removed. */
int store_tenant_purge_deleted(store *st, PGconn *c, const char *id, int days, sdo_error *err);

/* Etag of a tenant version, and back; parse returns -1 for a malformed etag. */
void tenant_etag(int64_t version, char *out, size_t outsz);
int64_t tenant_etag_parse(const char *etag);

/* ---- operations ---- */

typedef struct op_query {
    const char *target;
    const char *kind;
    int done;           /* -1 any, 0, 1 */
    int64_t before_seq; /* newest first; 0 = from the newest */
    int limit;
    const char *owner; /* only operations on tenants of this owner; NULL = all */
} op_query;

typedef struct op_row {
    const char *id;
    const char *kind;
    const char *target;
    const char *state;
    const char *step;
    const char *requester;
    const char *request_id;
    const char *params_json; /* NULL = {} */
} op_row;

int store_op_insert(store *st, PGconn *c, const op_row *row, Saasodoo__V1__Operation **out,
                    sdo_error *err);
/* NOT_FOUND when absent. */
int store_op_get(store *st, PGconn *c, const char *id, bool for_update,
                 Saasodoo__V1__Operation **out, sdo_error *err);
int store_op_list(store *st, PGconn *c, const op_query *q, Saasodoo__V1__Operation ***out,
                  size_t *n, int64_t *last_seq, bool *more, sdo_error *err);
/* Sets state/done/error of an operation; returns the updated row in out (may be NULL). */
int store_op_set_state(store *st, PGconn *c, const char *id, const char *state, bool done,
                       int error_code, const char *error_message, Saasodoo__V1__Operation **out,
                       sdo_error *err);
/* The unfinished operation on a target, if any: 1 found (out set), 0 none. */
int store_op_running_on(store *st, PGconn *c, const char *target, Saasodoo__V1__Operation **out,
                        sdo_error *err);

/* ---- responses by request id ---- */

/* A client's request id and a digest of its request, for safe retries. */
typedef struct request_key {
    const char *request_id; /* "" or NULL: no idempotency */
    const char *method;
    unsigned char hash[32];
} request_key;

/* The stored response of rk's request id: 1 replayed into *out (a desc message), 0 none (or
 * no request id), < 0 with err (INVALID_ARGUMENT, reason REQUEST_ID_REUSED, when the id
 * was used for a different request). */
int store_request_replay(store *st, PGconn *c, const request_key *rk,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                         sdo_error *err);

/* 1 when found (method, hash and response filled; response malloc'ed), 0 when not. */
int store_request_lookup(store *st, PGconn *c, const char *request_id, char *method,
                         size_t methodsz, unsigned char hash[32], unsigned char **response,
                         size_t *response_len, sdo_error *err);
/* 1 when saved, 0 when the id was taken meanwhile. */
int store_request_save(store *st, PGconn *c, const char *request_id, const char *method,
                       const unsigned char hash[32], const unsigned char *response,
                       size_t response_len, sdo_error *err);
/* Saves the response of rk's request in the caller's transaction: 1 saved (or no request
 * id), 0 when the id was taken meanwhile by another request. */
int store_request_remember(store *st, PGconn *c, const request_key *rk,
                           const ProtobufCMessage *resp, sdo_error *err);
/* Inserts a PENDING operation (kind, target, params JSON, requester) and remembers it as the
 * response of rk's request, in the caller's transaction; ABORTED when the request id was
 * taken meanwhile. */
int store_op_record(store *st, PGconn *c, const char *kind, const char *target,
                    const char *params_json, const char *requester, const request_key *rk,
                    Saasodoo__V1__Operation **out, sdo_error *err);
/* FAILED_PRECONDITION (reason OPERATION_RUNNING, naming it) when an operation runs on the
 * tenant target; 0 when none does. */
int store_op_check_idle(store *st, PGconn *c, const char *target, sdo_error *err);
/* The name of an enum value ("ACTIVE"), or "UNKNOWN". */
const char *store_enum_name(const ProtobufCEnumDescriptor *d, int value);

/* Forgets responses older than hours. */
int store_request_prune(store *st, int hours, sdo_error *err);

#endif
