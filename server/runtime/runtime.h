/* Tenant runtimes: where a tenant's Odoo runs. One interface (a vtable), one file per
 * implementation: runtime/process.c supervises local processes; a Kubernetes runtime is a
 * second file behind the same interface. Every operation is idempotent, so the operations
 * engine may repeat it after a crash. */
#ifndef SDO_RUNTIME_H
#define SDO_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* What a tenant's app needs to run. Strings are borrowed for the call. */
typedef struct rt_app_spec {
    const char *tenant_id;
    const char *db_host; /* host name, IP or unix socket directory */
    int db_port;
    const char *db_user;
    const char *db_password;
    const char *db_name;
    int workers;              /* Odoo workers, from the plan */
    const char *odoo_version; /* e.g. "17.0" */
} rt_app_spec;

typedef struct rt_status {
    bool running;
    int pid;      /* 0 when not a local process */
    int port;     /* where the app answers HTTP, 0 if none */
    bool healthy; /* /web/health answered 200 at the last probe */
    int restarts; /* restarts since the app was started */
} rt_status;

typedef struct runtime runtime;

typedef struct runtime_ops {
    const char *name;
    /* Starts the tenant's app, or adopts it if it already runs with the same spec. Returns
     * 0 and the HTTP port in *port. When the runtime has no app command configured it
     * returns 0 with *port = 0 and starts nothing (tenants then run without an app). */
    int (*start)(runtime *rt, const rt_app_spec *spec, int *port, sdo_error *err);
    /* Waits until the app answers /web/health with 200, or fails with UNAVAILABLE after
     * timeout_ms naming the last probe result and pointing at the log file. Returns 0 at
     * once when the runtime starts no apps. */
    int (*wait_healthy)(runtime *rt, const char *tenant_id, int timeout_ms, sdo_error *err);
    /* Stops the app (TERM, then KILL after a grace period). Not running is success. */
    int (*stop)(runtime *rt, const char *tenant_id, sdo_error *err);
    /* Stops and removes everything the runtime keeps for the tenant (state, logs, the
     * filestore directory). Nothing there is success. */
    int (*remove)(runtime *rt, const char *tenant_id, sdo_error *err);
    /* Current state; a tenant unknown to the runtime is {running = false}. */
    int (*status)(runtime *rt, const char *tenant_id, rt_status *out);
    /* Tenant ids the runtime holds anything for (running or not); caller frees each id
     * and the array. */
    int (*list)(runtime *rt, char ***ids, size_t *n, sdo_error *err);
    /* Path of the tenant's filestore directory (malloc'ed), for backups. */
    char *(*filestore_path)(runtime *rt, const char *tenant_id);
    /* True when apps are really started (an app command is configured). */
    bool (*enabled)(runtime *rt);
    /* Stops supervising; apps keep running (they are re-adopted at the next start). */
    void (*free)(runtime *rt);
} runtime_ops;

struct runtime {
    const runtime_ops *ops;
};

#endif
