/* grpc.health.v1.Health: Check and Watch. SERVING only while the store answers; the
 * owner of the store reports changes with rpc_health_set_serving. One per process. */
#ifndef SDO_HEALTH_H
#define SDO_HEALTH_H

#include <stdbool.h>

#include "rpc/dispatch.h"

/* Registers the Health service; the known service names are "" and every service of reg
 * (read when calls arrive, so register the others before or after). Returns 0 or -1. */
int rpc_health_register(rpc_registry *reg);

/* Sets the serving state of every service; watchers hear about changes. */
void rpc_health_set_serving(bool serving);
bool rpc_health_serving(void);

/* Tells every watcher NOT_SERVING and ends their streams (UNAVAILABLE), for shutdown. */
void rpc_health_shutdown(void);

#endif
