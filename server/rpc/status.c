/* Error details for clients: google.rpc.Status with BadRequest and ErrorInfo. */
#include "rpc/status.h"

#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "saasodoo/v1/error.pb-c.h"

#define ERROR_DOMAIN "saasodoo.v1"

static void pack_any(Google__Protobuf__Any *any, const char *type, const ProtobufCMessage *m,
                     uint8_t *buf)
{
    any->type_url = (char *)type;
    any->value.len = protobuf_c_message_pack(m, buf);
    any->value.data = buf;
}

bool rpc_status_details(const sdo_error *err, grpc_slice *out)
{
    if (!err->field[0] && !err->reason[0])
        return false;

    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Protobuf__Any any[2] = {GOOGLE__PROTOBUF__ANY__INIT, GOOGLE__PROTOBUF__ANY__INIT};
    Google__Protobuf__Any *anyp[2] = {&any[0], &any[1]};
    uint8_t b1[1024], b2[1024];
    size_t n = 0;

    Google__Rpc__BadRequest__FieldViolation fv = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
    Google__Rpc__BadRequest__FieldViolation *fvp = &fv;
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    if (err->field[0]) {
        fv.field = (char *)err->field;
        fv.description = (char *)err->message;
        br.n_field_violations = 1;
        br.field_violations = &fvp;
        pack_any(&any[n++], "type.googleapis.com/google.rpc.BadRequest", &br.base, b1);
    }
    Saasodoo__V1__ErrorInfo ei = SAASODOO__V1__ERROR_INFO__INIT;
    if (err->reason[0]) {
        ei.reason = (char *)err->reason;
        ei.domain = ERROR_DOMAIN;
        pack_any(&any[n++], "type.googleapis.com/saasodoo.v1.ErrorInfo", &ei.base, b2);
    }
    st.code = (int32_t)err->code;
    st.message = (char *)err->message;
    st.n_details = n;
    st.details = anyp;
    size_t len = protobuf_c_message_get_packed_size(&st.base);
    *out = grpc_slice_malloc(len);
    protobuf_c_message_pack(&st.base, GRPC_SLICE_START_PTR(*out));
    return true;
}
