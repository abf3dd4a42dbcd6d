/* Handler tables of the services implemented in server/api/. */
#ifndef SDO_HANDLERS_H
#define SDO_HANDLERS_H

#include "rpc/rpc.h"

extern const rpc_handler tenant_handlers[];
extern const rpc_handler operation_handlers[];
extern const rpc_handler admin_handlers[];

#endif
