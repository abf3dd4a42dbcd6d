/* Dispatch: a table of every method of every served service, built from protobuf-c service
 * descriptors, looked up by the HTTP/2 path of a call. */
#ifndef SDO_DISPATCH_H
#define SDO_DISPATCH_H

#include "rpc/rpc.h"

typedef struct rpc_registry rpc_registry;

rpc_registry *rpc_registry_new(void);
void rpc_registry_free(rpc_registry *r);

/* Adds every method of svc. Methods named in handlers get them; the others answer
 * UNIMPLEMENTED naming the method. Returns 0, or -1 if a handler names no method of svc or
 * a path is already registered. */
int rpc_registry_add(rpc_registry *r, const ProtobufCServiceDescriptor *svc,
                     const rpc_handler *handlers);

/* Marks every method of a service as never blocking (health, reflection): they run on the
 * completion-queue threads instead of the handler threads. */
void rpc_registry_set_inline(rpc_registry *r, const char *service);

/* Adds an interceptor; they run in the order added. */
void rpc_registry_intercept(rpc_registry *r, const rpc_interceptor *ic);

/* Finds the method for a path, or NULL. Call rpc_registry_seal first. */
const rpc_method *rpc_registry_find(const rpc_registry *r, const char *path, size_t len);

/* Sorts the table for lookups; no more adds afterwards. */
void rpc_registry_seal(rpc_registry *r);

/* Iteration over methods and interceptors. */
size_t rpc_registry_count(const rpc_registry *r);
const rpc_method *rpc_registry_at(const rpc_registry *r, size_t i);
size_t rpc_registry_interceptor_count(const rpc_registry *r);
const rpc_interceptor *rpc_registry_interceptor_at(const rpc_registry *r, size_t i);

/* Distinct service names in registration order. */
size_t rpc_registry_service_count(const rpc_registry *r);
const char *rpc_registry_service_at(const rpc_registry *r, size_t i);

#endif
