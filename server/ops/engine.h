/* The operations engine: worker threads claim unfinished operations from the store
 * (FOR UPDATE SKIP LOCKED, so several servers can share one store), run their steps in
 * order, record each step's completion before the next starts, retry transient failures
 * with exponential back-off, and on a permanent failure or a cancel undo what the earlier
 * steps made (compensation). An operation cut short by a crash is resumed from its last
 * recorded step by whichever server claims it next. */
#ifndef SDO_ENGINE_H
#define SDO_ENGINE_H

#include "config/config.h"
#include "dbstrategy/dbstrategy.h"
#include "runtime/runtime.h"
#include "storage/storage.h"
#include "store/store.h"
#include "util/secret.h"

typedef struct engine engine;

typedef struct engine_env {
    store *st;
    const sdo_config *cfg;
    runtime *rt;
    const secret_key *key;
    const pgc_config *pgc;
    storage *backups; /* where backups are kept (borrowed) */
} engine_env;

/* Starts workers threads; NULL with a message in err when the engine cannot register this
 * server as alive in the store. */
engine *engine_start(const engine_env *env, int workers, char *err, size_t errsz);

/* Brings back the apps of ACTIVE tenants that no operation is working on (after a restart
 * of the server or of the machine): started again, or re-adopted when still running. Runs in
 * the background; returns at once. */
void engine_reconcile_apps(engine *e);

/* Wakes idle workers: new work was recorded. Safe on NULL. */
void engine_kick(engine *e);

/* Lets running steps finish, then stops the workers and frees the engine. Operations not
 * finished stay in the store for the next start. */
void engine_stop(engine *e);

/* The fault-injection switch for crash tests: SAASODOO_FAULT_INJECT="after:CREATE_TENANT:database"
 * (or "before:...") kills this process with SIGKILL right after recording that step's
 * completion (or its start). Read once at engine start. */
#define ENGINE_FAULT_ENV "SAASODOO_FAULT_INJECT"

#endif
