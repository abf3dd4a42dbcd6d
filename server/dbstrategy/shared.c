/* The shared strategy: the tenant's database is cloned from the template database with
 * CREATE DATABASE ... TEMPLATE on the least-loaded shared server that accepts tenants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbstrategy/dbstrategy.h"
#include "tenants/validate.h"
#include "util/log.h"

static int shared_place(const dbs_env *env, tenant_rec *t, const char *prefer, bool record,
                        sdo_error *err)
{
    PGconn *c = store_acquire(env->st, err);
    if (!c)
        return -(int)err->code;
    server_rec s = {0};
    int rc = store_begin(env->st, c, err);
    if (rc < 0)
        goto out;
    tenant_rec cur;
    if ((rc = store_tenant_rec_get(env->st, c, env->key, t->id, true, &cur, err)) < 0)
        goto rollback;
    tenant_rec_free(&cur);
    if (record && cur.server[0] && strcmp(cur.strategy, "SHARED") == 0 && (!prefer || !prefer[0])) {
        /* already placed by an earlier run of this step */
        sdo_strlcpy(t->server, cur.server, sizeof t->server);
        store_rollback(c);
        goto out;
    }
    if (prefer && prefer[0]) {
        rc = store_server_get(env->st, c, env->key, prefer, &s, err);
        if (rc == 0 && strcmp(s.kind, "SHARED") != 0)
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "database server '%s' is not a shared server", prefer);
        else if (rc == 0 && strcmp(cur.server, prefer) != 0 && s.load >= s.capacity)
            rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                          "database server '%s' is full (%d of %d tenants)", prefer, s.load,
                          s.capacity);
    } else {
        rc = store_server_pick_shared(env->st, c, env->key, cur.server, &s, err);
    }
    if (rc < 0)
        goto rollback;
    if (record && (rc = store_tenant_set_server(env->st, c, t->id, s.id, NULL, err)) < 0)
        goto rollback;
    if ((rc = store_commit(env->st, c, err)) < 0)
        goto out;
    sdo_strlcpy(t->server, s.id, sizeof t->server);
    goto out;
rollback:
    store_rollback(c);
out:
    store_release(env->st, c);
    server_rec_free(&s);
    return rc;
}

static int shared_unplace(const dbs_env *env, const char *tenant_id, const char *server,
                          sdo_error *err)
{
    (void)env;
    (void)tenant_id;
    (void)server;
    (void)err;
    return 0; /* the server stays; the tenant's record is moved by the caller */
}

static int shared_create_database(const dbs_env *env, const tenant_rec *t, const char *server,
                                  sdo_error *err)
{
    if (!tenant_id_syntax_ok(t->id))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    PGconn *sc = store_acquire(env->st, err);
    if (!sc)
        return -(int)err->code;
    server_rec s = {0};
    int rc = store_server_get(env->st, sc, env->key, server, &s, err);
    store_release(env->st, sc);
    if (rc < 0)
        return rc;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        server_rec_free(&s);
        return -(int)err->code;
    }
    const char *tmpl = env->cfg->dbstrategy_template_database;
    bool exists = false, have_template = false;
    if ((rc = dbs_database_exists(c, t->id, &exists, err)) < 0 || exists)
        goto out;
    if ((rc = dbs_database_exists(c, tmpl, &have_template, err)) < 0)
        goto out;
    if (!have_template) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "the template database '%s' does not exist on database server '%s'; "
                      "create it once with Odoo (odoo -d %s -i base --stop-after-init, owned "
                      "by the role '%s'), see docs/provisioning.md",
                      tmpl, s.id, tmpl, env->cfg->dbstrategy_template_owner);
        goto out;
    }
    char *qd = PQescapeIdentifier(c, t->id, strlen(t->id));
    char *qt = PQescapeIdentifier(c, tmpl, strlen(tmpl));
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s", qd, qt);
    PQfreemem(qd);
    PQfreemem(qt);
    rc = dbs_exec(c, sql, "cloning the template database", err);
out:
    PQfinish(c);
    server_rec_free(&s);
    return rc;
}

static int shared_nothing(const dbs_env *env, const char *server, sdo_error *err)
{
    (void)env;
    (void)server;
    (void)err;
    return 0; /* a shared server runs for everyone */
}

const dbstrategy_ops dbs_shared = {
    "SHARED", shared_place, shared_unplace, shared_create_database, shared_nothing, shared_nothing,
};
