/* Operations: reads, and the rules of cancelling. */
#include "ops/ops.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

static int failed(sdo_error *err)
{
    return -(int)(err->code ? err->code : SDO_INTERNAL);
}

static const char *state_name(Saasodoo__V1__Operation__State s)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&saasodoo__v1__operation__state__descriptor, (int)s);
    return v ? v->name : "UNKNOWN";
}

int ops_get(store *st, const char *id, Saasodoo__V1__Operation **out, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_op_get(st, c, id, false, out, err);
    store_release(st, c);
    return rc;
}

int ops_list(store *st, const op_query *q, Saasodoo__V1__Operation ***out, size_t *n,
             int64_t *last_seq, bool *more, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_op_list(st, c, q, out, n, last_seq, more, err);
    store_release(st, c);
    return rc;
}

int ops_cancel(store *st, const char *id, const char *who, Saasodoo__V1__Operation **out,
               sdo_error *err)
{
    Saasodoo__V1__Operation *cur = NULL;
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_begin(st, c, err);
    if (rc < 0)
        goto out;
    if ((rc = store_op_get(st, c, id, true, &cur, err)) < 0)
        goto rollback;
    if (cur->done) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "operation 'operations/%s' has already finished (%s); nothing to cancel", id,
                      state_name(cur->state));
        goto rollback;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "cancelled%s%s before it started", who[0] ? " by " : "", who);
    switch (cur->state) {
    case SAASODOO__V1__OPERATION__STATE__PENDING:
        rc = store_op_set_state(st, c, id, "CANCELLED", true, SDO_CANCELLED, msg, out, err);
        if (rc < 0)
            goto rollback;
        /* Nothing was done yet; what the operation was to create is left FAILED. */
        if (cur->kind == SAASODOO__V1__OPERATION__KIND__CREATE_TENANT &&
            strncmp(cur->target, "tenants/", 8) == 0) {
            rc = store_tenant_set_state(st, c, cur->target + 8, "PROVISIONING", "FAILED",
                                        "creation was cancelled before it started", err);
            if (rc < 0)
                goto rollback;
        }
        break;
    case SAASODOO__V1__OPERATION__STATE__RUNNING:
        rc = store_op_set_state(st, c, id, "CANCELLING", false, 0, "", out, err);
        if (rc < 0)
            goto rollback;
        break;
    default: /* already CANCELLING */
        *out = cur;
        cur = NULL;
        break;
    }
    rc = store_commit(st, c, err);
    if (rc == 0)
        log_info("msg=\"operation cancel requested\" operation=%s by=\"%s\"", id, who);
    goto out;
rollback:
    store_rollback(c);
out:
    store_release(st, c);
    if (cur)
        protobuf_c_message_free_unpacked(&cur->base, NULL);
    if (rc < 0 && *out) {
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    }
    return rc < 0 ? rc : 0;
}
