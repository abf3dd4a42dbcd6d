/* The process runtime: each tenant's app is a local process started from a command and an
 * argument template, supervised by a thread (restarted with back-off when it dies), health
 * checked over HTTP and re-adopted after the server restarts. */
#ifndef SDO_RUNTIME_PROCESS_H
#define SDO_RUNTIME_PROCESS_H

#include "runtime/runtime.h"
#include "util/util.h"

/* Placeholders accepted in rt_process_config.args ("{{" writes a literal "{"). */
#define RT_PROCESS_PLACEHOLDERS                                                                    \
    "{tenant} {db_host} {db_port} {db_user} {db_name} {http_port} {data_dir} {workers} "           \
    "{odoo_version}"

typedef struct rt_process_config {
    /* One folder per tenant: pid, port, spec digest, argv and app.log. Created if missing. */
    const char *state_dir;
    /* One folder per tenant, the app's data directory ({data_dir}). Created if missing. */
    const char *filestore_dir;
    /* The app program (a path, or a name looked up in PATH). "" or NULL = apps are not
     * started: start and wait_healthy succeed doing nothing and enabled() is false. */
    const char *command;
    /* Space-separated argument template; a substituted value never splits a token. An unknown
     * placeholder fails the construction. */
    const char *args;
    /* HTTP ports handed to apps: unique per tenant, kept across restarts, checked free with
     * bind() when first allocated. */
    int port_min, port_max;
    int health_timeout_ms;      /* wait_healthy's timeout when called with 0; 0 = 60 s */
    int restart_backoff_max_ms; /* cap of the restart back-off (1 s, 2 s, 4 s, ...); 0 = 60 s */
    /* User the apps run as when the server runs as root; NULL or "" = the server's user.
     * Ignored when the server is not root. */
    const char *run_as;
} rt_process_config;

/* Creates the runtime: checks the configuration, creates the folders, re-adopts the apps
 * still running from an earlier server (same pid and start time as recorded) and starts the
 * supervisor thread. Strings in cfg are copied. Returns NULL with INVALID_ARGUMENT (field
 * "runtime.<key>") for a bad configuration, or INTERNAL when the folders cannot be made.
 * Free with rt->ops->free(rt): apps keep running. */
runtime *rt_process_new(const rt_process_config *cfg, sdo_error *err);

#endif
