/* Handler tables of the services implemented in server/api/. */
#ifndef SDO_HANDLERS_H
#define SDO_HANDLERS_H

#include "rpc/rpc.h"

extern const rpc_handler tenant_handlers[];
extern const rpc_handler operation_handlers[];
extern const rpc_handler admin_handlers[];
extern const rpc_handler identity_handlers[];
extern const rpc_handler backup_handlers[];

/* AdminService's user and audit methods (identity_api.c). */
int admin_list_users(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int admin_update_user(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp);
int admin_list_audit_events(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp);

/* The access interceptor (auth.c): rate limits, authentication, authorization, audit. */
extern const rpc_interceptor api_access_interceptor;

/* The client's address: the peer's ("ipv4:10.0.0.7:5555" → "10.0.0.7"), or for a call from
 * this machine through the REST gateway, the address the gateway was called from (the last
 * entry of x-forwarded-for). */
void api_client_address(const rpc_ctx *ctx, char *out, size_t outsz);

#endif
