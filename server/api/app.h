/* What every API handler reaches through ctx->app: configuration, store, operation
 * watcher. Assembled by main. */
#ifndef SDO_APP_H
#define SDO_APP_H

#include "config/config.h"
#include "identity/identity.h"
#include "ops/engine.h"
#include "ops/watch.h"
#include "runtime/runtime.h"
#include "util/secret.h"
#include "rpc/dispatch.h"
#include "storage/storage.h"
#include "store/store.h"

typedef struct sdo_app {
    const sdo_config *cfg;
    store *st;
    op_watch *watch;
    const secret_key *key;
    engine *eng;
    runtime *rt;
    const pgc_config *pgc;
    identity *id;     /* authentication and its caches; NULL only in unit tests */
    storage *backups; /* backup storage (borrowed); NULL when none is open */
} sdo_app;

/* Builds the registry of every service: saasodoo.v1, health and reflection, with the
 * interceptor chain. NULL if a table is inconsistent. */
rpc_registry *api_registry_new(void);

/* The digest of a request for idempotent retries: the packed request with its request_id
 * field cleared. */
void api_request_hash(const ProtobufCMessage *req, unsigned char out[32]);

/* Checks a client-chosen request_id (empty is fine): 1-64 of [A-Za-z0-9._:-]. */
int api_request_id_check(const char *request_id, sdo_error *err);

#endif
