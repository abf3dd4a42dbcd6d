/* The registry of every service the server offers, and helpers shared by the handlers. */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "rpc/health.h"
#include "rpc/interceptors.h"
#include "rpc/reflection.h"
#include "saasodoo/v1/admin.pb-c.h"
#include "saasodoo/v1/backup.pb-c.h"
#include "saasodoo/v1/billing.pb-c.h"
#include "saasodoo/v1/identity.pb-c.h"
#include "saasodoo/v1/monitoring.pb-c.h"
#include "saasodoo/v1/operation.pb-c.h"
#include "saasodoo/v1/tenant.pb-c.h"

extern const unsigned char saasodoo_descriptor_set[];
extern const size_t saasodoo_descriptor_set_len;

/* Services whose methods are all still to come: every call answers UNIMPLEMENTED naming it. */
static const rpc_handler none[] = {{NULL, 0, NULL, NULL, NULL}};

rpc_registry *api_registry_new(void)
{
    rpc_registry *r = rpc_registry_new();
    rpc_registry_intercept(r, &rpc_request_id_interceptor);
    rpc_registry_intercept(r, &rpc_access_log_interceptor);
    rpc_registry_intercept(r, &api_access_interceptor);
    if (rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_handlers) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__operation_service__descriptor, operation_handlers) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__backup_service__descriptor, backup_handlers) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__billing_service__descriptor, none) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__monitoring_service__descriptor, none) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__identity_service__descriptor, identity_handlers) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__admin_service__descriptor, admin_handlers) < 0 ||
        rpc_health_register(r) < 0 ||
        rpc_reflection_register(r, saasodoo_descriptor_set, saasodoo_descriptor_set_len) < 0) {
        rpc_registry_free(r);
        return NULL;
    }
    rpc_registry_seal(r);
    return r;
}

void api_request_hash(const ProtobufCMessage *req, unsigned char out[32])
{
    const ProtobufCMessageDescriptor *d = req->descriptor;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, "request_id");
    /* a shallow copy with request_id cleared; nothing in it is freed */
    unsigned char copy[512];
    const ProtobufCMessage *m = req;
    if (f && d->sizeof_message <= sizeof copy) {
        memcpy(copy, req, d->sizeof_message);
        *(const char **)(copy + f->offset) = "";
        m = (const ProtobufCMessage *)copy;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    unsigned char *buf = sdo_malloc(len);
    protobuf_c_message_pack(m, buf);
    sdo_sha256(buf, len, out);
    free(buf);
}

int api_request_id_check(const char *request_id, sdo_error *err)
{
    if (request_id[0] && !rpc_request_id_valid(request_id))
        return sdo_fail_field(err, "request_id",
                              "request_id '%.80s' must be 1 to 64 characters of letters, digits "
                              "and . _ : - (a UUID is best)",
                              request_id);
    return 0;
}
