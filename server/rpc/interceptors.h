/* The interceptors every call passes through: request id, access log. Authentication, rate
 * limiting and metrics join the same chain. */
#ifndef SDO_INTERCEPTORS_H
#define SDO_INTERCEPTORS_H

#include "rpc/rpc.h"

/* Takes x-request-id from the request metadata when it is sane (1-64 characters of
 * [A-Za-z0-9._:-]), otherwise generates a UUID. The id is echoed in the response headers. */
extern const rpc_interceptor rpc_request_id_interceptor;

/* One line per call: method, status, duration, request id, peer. */
extern const rpc_interceptor rpc_access_log_interceptor;

/* True if s is an acceptable client-supplied request id. */
bool rpc_request_id_valid(const char *s);

#endif
