/* Error details for clients: a google.rpc.Status with BadRequest / ErrorInfo, sent in the
 * grpc-status-details-bin trailer so clients can branch without parsing text. */
#ifndef SDO_RPC_STATUS_H
#define SDO_RPC_STATUS_H

#include <grpc/slice.h>
#include <stdbool.h>

#include "util/util.h"

/* Packs err as google.rpc.Status into *out (caller unrefs). Returns false when err carries
 * nothing beyond code and message (then no trailer is needed). */
bool rpc_status_details(const sdo_error *err, grpc_slice *out);

#endif
