/* saasodoo-server: the control-plane daemon. Reads the configuration, prepares the store
 * (migrations, plan catalogue), serves the gRPC API until SIGTERM/SIGINT, then drains. */
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "api/app.h"
#include "backup/backup.h"
#include "config/config.h"
#include "dbstrategy/dbstrategy.h"
#include "ops/engine.h"
#include "ops/watch.h"
#include "runtime/process.h"
#include "rpc/health.h"
#include "rpc/server.h"
#include "store/migrate.h"
#include "store/records.h"
#include "tenants/plans.h"
#include "store/provisioning.h"
#include "util/log.h"
#include "util/secret.h"

#include <errno.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Reads one line (a password) from stdin without echo when it is a terminal. */
static int read_password(char *out, size_t outsz)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "Password (at least 10 characters): ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)outsz, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got)
        return -1;
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}

/* The admin named by identity.bootstrap_admin_email, created on first start with the
 * password in identity.bootstrap_admin_password_file; an existing user is left alone. */
static int bootstrap_admin(const sdo_config *cfg, store *st)
{
    if (!cfg->identity_bootstrap_admin_email[0])
        return 0;
    sdo_error err = {0};
    PGconn *c = store_acquire(st, &err);
    if (!c)
        goto fail;
    user_rec u;
    int rc = store_user_by_email(st, c, cfg->identity_bootstrap_admin_email, &u, &err);
    store_release(st, c);
    if (rc == 0)
        return 0;
    if (err.code != SDO_NOT_FOUND)
        goto fail;
    memset(&err, 0, sizeof err);
    char pw[1100] = "";
    FILE *f = fopen(cfg->identity_bootstrap_admin_password_file, "r");
    if (!f || !fgets(pw, sizeof pw, f)) {
        if (f)
            fclose(f);
        sdo_fail(&err, SDO_NOT_FOUND, "cannot read identity.bootstrap_admin_password_file %s",
                 cfg->identity_bootstrap_admin_password_file);
        goto fail;
    }
    fclose(f);
    pw[strcspn(pw, "\r\n")] = 0;
    bool created = false;
    rc = identity_ensure_admin(st, cfg->identity_bootstrap_admin_email, pw, &created, &err);
    memset(pw, 0, sizeof pw);
    if (rc < 0)
        goto fail;
    log_info("msg=\"created the first admin from the configuration\" email=%s",
             cfg->identity_bootstrap_admin_email);
    return 0;
fail:
    log_error("msg=\"cannot create the bootstrap admin\" error=\"%s\"", err.message);
    return -1;
}

static void usage(FILE *out)
{
    fputs("usage: saasodoo-server [--config FILE] [--check-config] [--create-admin EMAIL]\n"
          "                       [--version] [--help]\n"
          "\n"
          "Serves the saasodoo.v1 gRPC API (tenants, operations, backups, billing, monitoring,\n"
          "identity, administration) with health checking and server reflection.\n"
          "\n"
          "  --config FILE    YAML configuration (default: none, built-in defaults)\n"
          "  --check-config   validate the configuration and plan catalogue, print the\n"
          "                   effective settings, and exit\n"
          "  --create-admin EMAIL\n"
          "                   make EMAIL an admin (created if new) with the password read\n"
          "                   from stdin, then exit\n"
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

/* mkdir -p with mode for each missing folder. */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[1024];
    if (sdo_strlcpy(buf, path, sizeof buf) >= sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* The embedded default: with no database server registered, the control plane's own
 * PostgreSQL (or dbstrategy.shared_admin_url) becomes the first shared server, "local".
 * Tenant apps reach it over TCP: a unix socket path in the conninfo means 127.0.0.1. */
static int register_local_server(const sdo_config *cfg, store *st, const secret_key *key,
                                 const pgc_config *pgc)
{
    sdo_error err = {0};
    PGconn *c = store_acquire(st, &err);
    if (!c)
        goto fail;
    /* tenant roles must not reach the control plane's own database */
    PGresult *r = PQexec(c, "DO $$ BEGIN EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE"
                            " %I FROM PUBLIC', current_database()); END $$");
    PQclear(r);
    int n = 0;
    int rc = store_server_count(st, c, &n, &err);
    if (rc < 0 || n > 0) {
        store_release(st, c);
        if (rc < 0)
            goto fail;
        return 0;
    }
    const char *admin =
        cfg->dbstrategy_shared_admin_url[0] ? cfg->dbstrategy_shared_admin_url : cfg->database_url;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(admin, &perr);
    server_rec s = {0};
    sdo_strlcpy(s.id, "local", sizeof s.id);
    sdo_strlcpy(s.kind, "SHARED", sizeof s.kind);
    sdo_strlcpy(s.host, "127.0.0.1", sizeof s.host);
    s.port = 5432;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val && o->val[0] && o->val[0] != '/')
            sdo_strlcpy(s.host, o->val, sizeof s.host);
        if (strcmp(o->keyword, "port") == 0 && o->val && o->val[0])
            s.port = atoi(o->val);
    }
    PQconninfoFree(opts);
    PQfreemem(perr);
    s.capacity = cfg->dbstrategy_local_capacity;
    s.accepting = true;
    s.admin_conninfo = (char *)admin;
    rc = store_server_insert(st, c, key, &s, "This machine's PostgreSQL", &err);
    store_release(st, c);
    if (rc < 0 && rc != -SDO_ALREADY_EXISTS)
        goto fail;
    dbs_env env = {st, cfg, key, pgc};
    dbs_close_public(&env, &s, &err);
    log_info("msg=\"registered the local PostgreSQL as shared database server 'local'\" host=%s "
             "port=%d capacity=%d",
             s.host, s.port, s.capacity);
    return 0;
fail:
    log_error("msg=\"cannot register the local database server\" error=\"%s\"", err.message);
    return -1;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    const char *create_admin = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--create-admin") == 0 && i + 1 < argc) {
            create_admin = argv[++i];
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
    if (backup_policies_load(cfg.platform_plans_file, err, sizeof err) < 0) {
        fprintf(stderr, "saasodoo-server: configuration error: %s\n", err);
        plans_free(&plans);
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
    engine *eng = NULL;
    runtime *rt = NULL;
    secret_key key;
    rpc_registry *reg = NULL;
    rpc_server *srv = NULL;
    identity *ident = NULL;
    storage *backups = NULL;
    backup_scheduler *sched = NULL;
    sdo_error serr = {0};

    if (prepare_store(st) < 0)
        goto out;
    if (create_admin) {
        char pw[1100];
        bool created = false;
        if (read_password(pw, sizeof pw) < 0) {
            fprintf(stderr, "saasodoo-server: no password given on stdin\n");
            rc = 2;
            goto out;
        }
        int arc = identity_ensure_admin(st, create_admin, pw, &created, &serr);
        memset(pw, 0, sizeof pw);
        if (arc < 0) {
            fprintf(stderr, "saasodoo-server: %s\n", serr.message);
            rc = serr.code == SDO_INVALID_ARGUMENT ? 2 : 1;
            goto out;
        }
        printf("%s is %s admin; sign in with this email and password\n", create_admin,
               created ? "now an" : "again an");
        rc = 0;
        goto out;
    }
    if (bootstrap_admin(&cfg, st) < 0)
        goto out;
    if (store_plans_upsert(st, plans.plans, plans.n, &serr) < 0) {
        log_error("msg=\"cannot store the plan catalogue\" error=\"%s\"", serr.message);
        goto out;
    }
    /* platform data: the key, tenant apps, filestores, dedicated clusters */
    char path[1024], apps_dir[1024], files_dir[1024], clusters_dir[1024];
    if (make_dirs(cfg.platform_data_dir, 0755) < 0) {
        log_error("msg=\"cannot create the data directory\" path=%s error=\"%s\"",
                  cfg.platform_data_dir, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/secret.key", cfg.platform_data_dir);
    snprintf(apps_dir, sizeof apps_dir, "%s/apps", cfg.platform_data_dir);
    snprintf(files_dir, sizeof files_dir, "%s/filestore", cfg.platform_data_dir);
    snprintf(clusters_dir, sizeof clusters_dir, "%s/clusters", cfg.platform_data_dir);
    if (secret_key_load(&key, cfg.security_secret_key, path, err, sizeof err) < 0) {
        log_error("msg=\"cannot load the platform key\" error=\"%s\"", err);
        goto out;
    }
    pgc_config pgc = {cfg.dbstrategy_pg_bin_dir, cfg.dbstrategy_run_as, clusters_dir};
    if (register_local_server(&cfg, st, &key, &pgc) < 0)
        goto out;
    rt_process_config rcfg = {
        .state_dir = apps_dir,
        .filestore_dir = files_dir,
        .command = cfg.runtime_command,
        .args = cfg.runtime_args,
        .port_min = cfg.runtime_port_min,
        .port_max = cfg.runtime_port_max,
        .health_timeout_ms = cfg.runtime_health_timeout_seconds * 1000,
        .restart_backoff_max_ms = cfg.runtime_restart_backoff_max_seconds * 1000,
        .run_as = NULL,
    };
    rt = rt_process_new(&rcfg, &serr);
    if (!rt) {
        log_error("msg=\"cannot start the tenant runtime\" error=\"%s\"", serr.message);
        goto out;
    }
    if (!rt->ops->enabled(rt))
        log_warn("msg=\"tenant apps are not started: no Odoo command is configured; databases "
                 "are still provisioned. Set runtime.command (SAASODOO_RUNTIME_COMMAND) to the "
                 "odoo program to run them\"");
    backups = storage_open(&cfg, &serr);
    if (!backups) {
        log_error("msg=\"cannot open the backup storage\" error=\"%s\"", serr.message);
        goto out;
    }
    if (backup_register_plans() < 0) {
        log_error("msg=\"cannot register the backup operations\"");
        goto out;
    }
    engine_env eenv = {st, &cfg, rt, &key, &pgc, backups};
    eng = engine_start(&eenv, cfg.ops_workers, err, sizeof err);
    if (!eng) {
        log_error("msg=\"cannot start the operations engine\" error=\"%s\"", err);
        goto out;
    }
    engine_reconcile_apps(eng);
    sched = backup_scheduler_start(&eenv, eng);
    watch = op_watch_start(st);
    ident = identity_new(&cfg, st, &serr);
    if (!ident) {
        log_error("msg=\"cannot start identity\" error=\"%s\"", serr.message);
        goto out;
    }
    sdo_app app = {&cfg, st, watch, &key, eng, rt, &pgc, ident, backups};
    reg = api_registry_new();
    if (!reg) {
        log_error("msg=\"the service tables are inconsistent\"");
        goto out;
    }
    rpc_server_options opt = {
        cfg.grpc_listen,          cfg.grpc_workers,           cfg.grpc_max_receive_message_bytes,
        cfg.grpc_handler_threads, cfg.security_tls_cert_file, cfg.security_tls_key_file};
    srv = rpc_server_new(&opt, reg, &app);
    if (rpc_server_start(srv, err, sizeof err) < 0) {
        log_error("msg=\"cannot start the gRPC server\" error=\"%s\"", err);
        goto out;
    }
    rpc_health_set_serving(store_ping(st));
    log_info("msg=\"saasodoo-server started\" version=%s listen=%s port=%d workers=%d "
             "handlers=%d pool=%d pid=%d",
             SAASODOO_VERSION, cfg.grpc_listen, rpc_server_port(srv), cfg.grpc_workers,
             cfg.grpc_handler_threads, cfg.database_pool_size, (int)getpid());

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
    backup_scheduler_stop(sched);
    sched = NULL;
    engine_stop(eng);
    eng = NULL;
    rc = 0;
    log_info("msg=\"stopped\"");
out:
    rpc_server_free(srv);
    backup_scheduler_stop(sched);
    engine_stop(eng);
    if (backups)
        backups->ops->free(backups);
    if (rt)
        rt->ops->free(rt);
    op_watch_stop(watch);
    rpc_registry_free(reg);
    identity_free(ident);
    store_free(st);
    plans_free(&plans);
    config_free(&cfg);
    grpc_shutdown();
    return rc;
}
