/* The dedicated strategy on one machine: the tenant gets a PostgreSQL cluster of its own
 * (initdb + pg_ctl under the platform's data directory, its own port), registered as a
 * database server of kind DEDICATED, and loaded from the template with pg_dump | pg_restore.
 * Suspending the tenant stops the cluster; deleting it removes the cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbstrategy/dbstrategy.h"
#include "tenants/validate.h"
#include "util/log.h"

static void server_id_of(const char *tenant_id, char out[72], size_t n)
{
    /* tenant ids are at most 40 characters, so this always fits */
    snprintf(out, n, "dedicated-%.40s", tenant_id);
}

static int with_store(const dbs_env *env, PGconn **c, sdo_error *err)
{
    *c = store_acquire(env->st, err);
    return *c ? 0 : -(int)err->code;
}

static int dedicated_place(const dbs_env *env, tenant_rec *t, const char *prefer, bool record,
                           sdo_error *err)
{
    (void)prefer;
    if (!tenant_id_syntax_ok(t->id))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    char sid[72];
    server_id_of(t->id, sid, sizeof sid);
    PGconn *c;
    int rc = with_store(env, &c, err);
    if (rc < 0)
        return rc;
    server_rec s = {0};
    rc = store_server_get(env->st, c, env->key, sid, &s, err);
    if (rc == 0) {
        /* registered by an earlier run: make sure the cluster is there and running */
        if ((rc = pgc_create(env->pgc, t->id, s.port, t->max_conn + 10, err)) == 0)
            rc = pgc_start(env->pgc, t->id, s.port, err);
    } else if (rc == -SDO_NOT_FOUND) {
        /* a cluster left without a record by a crash holds nothing yet: start over */
        bool running = false;
        if (pgc_exists(env->pgc, t->id, &running) && (rc = pgc_remove(env->pgc, t->id, err)) < 0)
            goto out;
        int port = 0;
        if ((rc = pgc_free_port(env->pgc, env->cfg->dbstrategy_dedicated_port_min,
                                env->cfg->dbstrategy_dedicated_port_max, &port, err)) < 0 ||
            (rc = pgc_create(env->pgc, t->id, port, t->max_conn + 10, err)) < 0 ||
            (rc = pgc_start(env->pgc, t->id, port, err)) < 0)
            goto out;
        memset(&s, 0, sizeof s);
        sdo_strlcpy(s.id, sid, sizeof s.id);
        sdo_strlcpy(s.kind, "DEDICATED", sizeof s.kind);
        sdo_strlcpy(s.host, "127.0.0.1", sizeof s.host);
        s.port = port;
        s.capacity = 1;
        s.accepting = false;
        sdo_strlcpy(s.tenant, t->id, sizeof s.tenant);
        sdo_strlcpy(s.cluster, t->id, sizeof s.cluster);
        s.admin_conninfo = pgc_admin_conninfo(env->pgc, t->id, port);
        char display[96];
        snprintf(display, sizeof display, "Dedicated server of %s", t->id);
        rc = store_server_insert(env->st, c, env->key, &s, display, err);
        if (rc < 0)
            goto out;
        log_info("msg=\"dedicated cluster created\" tenant=%s port=%d", t->id, port);
    }
    if (rc < 0)
        goto out;
    if ((rc = dbs_close_public(env, &s, err)) < 0)
        goto out;
    rc = record ? store_tenant_set_server(env->st, c, t->id, sid, NULL, err) : 0;
    if (rc == 0)
        sdo_strlcpy(t->server, sid, sizeof t->server);
out:
    store_release(env->st, c);
    server_rec_free(&s);
    return rc;
}

static int dedicated_unplace(const dbs_env *env, const char *tenant_id, const char *server,
                             sdo_error *err)
{
    if (!tenant_id_syntax_ok(tenant_id))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    char sid[72];
    server_id_of(tenant_id, sid, sizeof sid);
    if (server && server[0] && strcmp(server, sid) != 0)
        return 0; /* not this tenant's own server */
    int rc = pgc_remove(env->pgc, tenant_id, err);
    if (rc < 0)
        return rc;
    PGconn *c;
    if ((rc = with_store(env, &c, err)) < 0)
        return rc;
    rc = store_server_delete(env->st, c, sid, true, err);
    store_release(env->st, c);
    return rc == -SDO_NOT_FOUND ? 0 : rc;
}

static int dedicated_create_database(const dbs_env *env, const tenant_rec *t, const char *server,
                                     sdo_error *err)
{
    if (!tenant_id_syntax_ok(t->id))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    PGconn *sc;
    int rc = with_store(env, &sc, err);
    if (rc < 0)
        return rc;
    server_rec s = {0};
    rc = store_server_get(env->st, sc, env->key, server, &s, err);
    store_release(env->st, sc);
    if (rc < 0)
        return rc;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        server_rec_free(&s);
        return -(int)err->code;
    }
    const char *owner = env->cfg->dbstrategy_template_owner;
    bool owner_exists = false;
    if ((rc = dbs_role_exists(c, owner, &owner_exists, err)) < 0)
        goto out;
    if (!owner_exists) {
        char *qo = PQescapeIdentifier(c, owner, strlen(owner));
        char sql[256];
        snprintf(sql, sizeof sql, "CREATE ROLE %s NOLOGIN", qo);
        PQfreemem(qo);
        if ((rc = dbs_exec(c, sql, "creating the template owner", err)) < 0)
            goto out;
    }
    rc = dbs_prepare_copy(&s, t->id, owner, err);
    if (rc != 0) {
        rc = rc > 0 ? 0 : rc; /* a complete copy is already there */
        goto out;
    }
    const char *src = env->cfg->dbstrategy_shared_admin_url[0]
                          ? env->cfg->dbstrategy_shared_admin_url
                          : env->cfg->database_url;
    rc = pgc_copy_database(env->pgc, src, env->cfg->dbstrategy_template_database, s.admin_conninfo,
                           t->id, owner, 30 * 60 * 1000, err);
    if (rc == -SDO_NOT_FOUND || rc == -SDO_FAILED_PRECONDITION) {
        char why[512];
        sdo_strlcpy(why, err->message, sizeof why);
        sdo_fail(err, SDO_FAILED_PRECONDITION,
                 "the template database '%s' could not be copied: %s; create it once with Odoo "
                 "(see docs/provisioning.md)",
                 env->cfg->dbstrategy_template_database, why);
        rc = -SDO_FAILED_PRECONDITION;
    }
    if (rc == 0)
        rc = dbs_mark_copied(&s, t->id, err);
out:
    PQfinish(c);
    server_rec_free(&s);
    return rc;
}

static int cluster_of(const dbs_env *env, const char *server, server_rec *s, sdo_error *err)
{
    PGconn *c;
    int rc = with_store(env, &c, err);
    if (rc < 0)
        return rc;
    rc = store_server_get(env->st, c, env->key, server, s, err);
    store_release(env->st, c);
    return rc;
}

static int dedicated_start(const dbs_env *env, const char *server, sdo_error *err)
{
    server_rec s = {0};
    int rc = cluster_of(env, server, &s, err);
    if (rc == 0 && s.cluster[0])
        rc = pgc_start(env->pgc, s.cluster, s.port, err);
    server_rec_free(&s);
    return rc;
}

static int dedicated_stop(const dbs_env *env, const char *server, sdo_error *err)
{
    server_rec s = {0};
    int rc = cluster_of(env, server, &s, err);
    if (rc == -SDO_NOT_FOUND)
        return 0;
    if (rc == 0 && s.cluster[0])
        rc = pgc_stop(env->pgc, s.cluster, err);
    server_rec_free(&s);
    return rc;
}

const dbstrategy_ops dbs_dedicated = {
    "DEDICATED",     dedicated_place, dedicated_unplace, dedicated_create_database,
    dedicated_start, dedicated_stop,
};
