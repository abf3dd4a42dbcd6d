/* Server reflection, grpc.reflection.v1 and v1alpha, answered from the descriptor set
 * embedded at build time, so grpcurl-style tools need no .proto files. */
#ifndef SDO_REFLECTION_H
#define SDO_REFLECTION_H

#include <stddef.h>

#include "rpc/dispatch.h"

/* Indexes the serialized FileDescriptorSet (borrowed; must outlive the server) and registers
 * both reflection services. List requests name every service of reg. Returns 0 or -1. */
int rpc_reflection_register(rpc_registry *reg, const unsigned char *set, size_t len);

#endif
