/* saasodoo-server: the control-plane daemon. Reads the configuration, prepares the store
 * (migrations, plan catalogue), serves the gRPC API until SIGTERM/SIGINT, then drains. */
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "config/config.h"
#include "ops/watch.h"
#include "rpc/health.h"
#include "rpc/server.h"
#include "store/migrate.h"
#include "store/records.h"
#include "tenants/plans.h"
#include "util/log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fputs("usage: saasodoo-server [--config FILE] [--check-config] [--version] [--help]\n"
          "\n"
          "Serves the saasodoo.v1 gRPC API (tenants, operations, backups, billing, monitoring,\n"
          "identity, administration) with health checking and server reflection.\n"
          "\n"
          "  --config FILE    YAML configuration (default: none, built-in defaults)\n"
          "  --check-config   validate the configuration and plan catalogue, print the\n"
          "                   effective settings, and exit\n"
          "  --version        print the version and exit\n"
          "  --help           print this help and exit\n"
          "\n"
          "Every setting can be overridden by SAASODOO_<SECTION>_<KEY>, e.g.\n"
          "SAASODOO_DATABASE_URL or SAASODOO_GRPC_LISTEN. Exit status: 0 after a clean\n"
          "shutdown, 1 on a runtime failure, 2 on a usage or configuration error.\n",
          out);
}

/* Applies migrations, retrying while the database comes up (up to about 30 s). */
static int prepare_store(store *st)
{
    sdo_error err = {0};
    for (int attempt = 0; attempt < 60; attempt++) {
        if (store_migrate(st, &err) == 0)
            return 0;
        if (err.code != SDO_UNAVAILABLE || stop_requested)
            break;
        if (attempt == 0)
            log_warn("msg=\"waiting for the control-plane database\" error=\"%s\"", err.message);
        usleep(500 * 1000);
    }
    log_error("msg=\"cannot prepare the control-plane database\" error=\"%s\"", err.message);
    return -1;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("saasodoo-server %s (gRPC core %s)\n", SAASODOO_VERSION, grpc_version_string());
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "saasodoo-server: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    sdo_config cfg;
    char err[1024];
    if (config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "saasodoo-server: configuration error: %s\n", err);
        return 2;
    }
    plan_catalog plans;
    if (plans_load_file(cfg.platform_plans_file, &plans, err, sizeof err) < 0) {
        fprintf(stderr, "saasodoo-server: configuration error: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (check_only) {
        config_print(&cfg);
        printf("plans = %zu (%s)\nconfiguration OK\n", plans.n, cfg.platform_plans_file);
        plans_free(&plans);
        config_free(&cfg);
        return 0;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    grpc_init();
    store *st =
        store_new(cfg.database_url, cfg.database_pool_size, cfg.database_connect_timeout_seconds);
    op_watch *watch = NULL;
    rpc_registry *reg = NULL;
    rpc_server *srv = NULL;
    sdo_error serr = {0};

    if (prepare_store(st) < 0)
        goto out;
    if (store_plans_upsert(st, plans.plans, plans.n, &serr) < 0) {
        log_error("msg=\"cannot store the plan catalogue\" error=\"%s\"", serr.message);
        goto out;
    }
    watch = op_watch_start(st);
    sdo_app app = {&cfg, st, watch};
    reg = api_registry_new();
    if (!reg) {
        log_error("msg=\"the service tables are inconsistent\"");
        goto out;
    }
    rpc_server_options opt = {cfg.grpc_listen, cfg.grpc_workers,
                              cfg.grpc_max_receive_message_bytes};
    srv = rpc_server_new(&opt, reg, &app);
    if (rpc_server_start(srv, err, sizeof err) < 0) {
        log_error("msg=\"cannot start the gRPC server\" error=\"%s\"", err);
        goto out;
    }
    rpc_health_set_serving(store_ping(st));
    log_info("msg=\"saasodoo-server started\" version=%s listen=%s port=%d workers=%d "
             "pool=%d pid=%d",
             SAASODOO_VERSION, cfg.grpc_listen, rpc_server_port(srv), cfg.grpc_workers,
             cfg.database_pool_size, (int)getpid());

    /* The main thread watches the store for the health service and tidies up hourly. */
    int ticks = 0;
    while (!stop_requested) {
        usleep(100 * 1000);
        if (++ticks % 10 == 0)
            rpc_health_set_serving(store_ping(st));
        if (ticks % 36000 == 0 && store_request_prune(st, 48, &serr) < 0)
            log_warn("msg=\"cannot prune old request ids\" error=\"%s\"", serr.message);
    }
    log_info("msg=\"shutting down\" grace_seconds=%d", cfg.grpc_shutdown_grace_seconds);
    rpc_health_shutdown();
    op_watch_close(watch);
    rpc_server_shutdown(srv, cfg.grpc_shutdown_grace_seconds * 1000);
    rc = 0;
    log_info("msg=\"stopped\"");
out:
    rpc_server_free(srv);
    op_watch_stop(watch);
    rpc_registry_free(reg);
    store_free(st);
    plans_free(&plans);
    config_free(&cfg);
    grpc_shutdown();
    return rc;
}
