/* The consistency check: compares the store's records with the databases, roles, clusters
 * and apps that really exist, reports differences and, on request, removes orphans. */
#ifndef SDO_FSCK_H
#define SDO_FSCK_H

#include "ops/engine.h"
#include "saasodoo/v1/admin.pb-c.h"

/* Fills a report (caller frees with protobuf_c_message_free_unpacked). Resources of tenants
 * with an operation running are left alone: they are in motion. */
int fsck_run(const engine_env *env, bool repair, Saasodoo__V1__ConsistencyReport **out,
             sdo_error *err);

#endif
