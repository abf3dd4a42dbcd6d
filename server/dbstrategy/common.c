/* What both strategies do on a PostgreSQL server: roles, grants, logins, drops. Identifiers
 * are tenant ids (validated against the tenant id pattern before they reach here) quoted
 * with PQescapeIdentifier; literal values with PQescapeLiteral. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbstrategy/dbstrategy.h"
#include "tenants/validate.h"
#include "util/buf.h"
#include "util/log.h"

const dbstrategy_ops *dbs_for(const char *strategy)
{
    if (strcmp(strategy, "SHARED") == 0)
        return &dbs_shared;
    if (strcmp(strategy, "DEDICATED") == 0)
        return &dbs_dedicated;
    return NULL;
}

/* Re-serialises a conninfo with dbname replaced (values quoted as libpq wants). */
static char *with_db(const char *conninfo, const char *db)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        PQfreemem(errmsg);
        return NULL;
    }
    sdo_buf b = {0};
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
        if (!v)
            continue;
        sdo_buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\'' || *p == '\\')
                sdo_buf_append(&b, "\\", 1);
            sdo_buf_append(&b, p, 1);
        }
        sdo_buf_puts(&b, "'");
    }
    PQconninfoFree(opts);
    if (b.overflow) {
        sdo_buf_free(&b);
        return NULL;
    }
    return b.data ? b.data : sdo_strdup("");
}

char *dbs_conninfo_db(const server_rec *s, const char *db)
{
    return with_db(s->admin_conninfo, db);
}

PGconn *dbs_connect(const server_rec *s, const char *dbname, sdo_error *err)
{
    char *ci = with_db(s->admin_conninfo, dbname ? dbname : "postgres");
    if (!ci) {
        sdo_fail(err, SDO_FAILED_PRECONDITION,
                 "the admin conninfo of database server '%s' cannot be parsed", s->id);
        return NULL;
    }
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {ci, "10", "saasodoo-server", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        char line[256];
        sdo_strlcpy(line, PQerrorMessage(c), sizeof line);
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        sdo_fail(err, SDO_UNAVAILABLE, "database server '%s' cannot be reached: %s", s->id, line);
        PQfinish(c);
        return NULL;
    }
    return c;
}

int dbs_exec(PGconn *c, const char *sql, const char *what, sdo_error *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char line[300];
    sdo_strlcpy(line, PQresultErrorMessage(r), sizeof line);
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = 0;
    sdo_status code = SDO_INTERNAL;
    if (!state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strcmp(state, "55006") == 0 /* object in use */ || strcmp(state, "40001") == 0 ||
        strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 /* lock not available */ ||
        strcmp(state, "53300") == 0 /* too many connections */)
        code = SDO_UNAVAILABLE;
    sdo_fail(err, code, "%s failed: %s", what, line);
    PQclear(r);
    return -(int)code;
}

static int exists_query(PGconn *c, const char *sql, const char *name, bool *exists, sdo_error *err)
{
    const char *p[] = {name};
    PGresult *r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sdo_fail(err, SDO_UNAVAILABLE, "cannot read the catalog: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -SDO_UNAVAILABLE;
    }
    *exists = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

int dbs_database_exists(PGconn *c, const char *db, bool *exists, sdo_error *err)
{
    return exists_query(c, "SELECT 1 FROM pg_database WHERE datname = $1", db, exists, err);
}

int dbs_role_exists(PGconn *c, const char *role, bool *exists, sdo_error *err)
{
    return exists_query(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", role, exists, err);
}

/* Formats and runs one statement with quoted identifiers; frees the quoted strings. */
static int run(PGconn *c, const char *what, sdo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int run(PGconn *c, const char *what, sdo_error *err, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof sql)
        return sdo_fail(err, SDO_INTERNAL, "%s: statement too long", what);
    return dbs_exec(c, sql, what, err);
}

static int load_server(const dbs_env *env, const char *id, server_rec *s, sdo_error *err)
{
    PGconn *c = store_acquire(env->st, err);
    if (!c)
        return -(int)err->code;
    int rc = store_server_get(env->st, c, env->key, id, s, err);
    store_release(env->st, c);
    return rc;
}

int dbs_setup_role(const dbs_env *env, tenant_rec *t, const char *server, bool login,
                   sdo_error *err)
{
    if (!tenant_id_syntax_ok(t->id))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    server_rec s = {0};
    int rc = load_server(env, server, &s, err);
    if (rc < 0)
        return rc;
    PGconn *c = NULL, *tc = NULL;
    char *role = NULL, *db = NULL, *pw = NULL, *owner = NULL;

    /* The password is made once and kept sealed, so a repeated step reuses it. */
    if (!t->password) {
        char fresh[33];
        if (secret_password(fresh, 32) < 0) {
            rc = sdo_fail(err, SDO_INTERNAL, "no randomness for a password");
            goto out;
        }
        PGconn *sc = store_acquire(env->st, err);
        if (!sc) {
            rc = -(int)err->code;
            goto out;
        }
        rc = store_tenant_set_db(env->st, sc, env->key, t->id, t->id, t->id, fresh, err);
        store_release(env->st, sc);
        if (rc < 0)
            goto out;
        t->password = sdo_strdup(fresh);
        sdo_strlcpy(t->db_name, t->id, sizeof t->db_name);
        sdo_strlcpy(t->db_role, t->id, sizeof t->db_role);
    }
    c = dbs_connect(&s, NULL, err);
    if (!c) {
        rc = -(int)err->code;
        goto out;
    }
    role = PQescapeIdentifier(c, t->id, strlen(t->id));
    db = PQescapeIdentifier(c, t->id, strlen(t->id));
    pw = PQescapeLiteral(c, t->password, strlen(t->password));
    owner = PQescapeIdentifier(c, env->cfg->dbstrategy_template_owner,
                               strlen(env->cfg->dbstrategy_template_owner));
    bool exists = false;
    if ((rc = dbs_role_exists(c, t->id, &exists, err)) < 0)
        goto out;
    int limit = t->max_conn > 0 ? t->max_conn : 20;
    if (!exists)
        rc = run(c, "creating the tenant's role", err,
                 "CREATE ROLE %s %s PASSWORD %s CONNECTION LIMIT %d", role,
                 login ? "LOGIN" : "NOLOGIN", pw, limit);
    else
        rc = run(c, "updating the tenant's role", err,
                 "ALTER ROLE %s %s PASSWORD %s CONNECTION LIMIT %d", role,
                 login ? "LOGIN" : "NOLOGIN", pw, limit);
    if (rc < 0)
        goto out;
    if ((rc = run(c, "giving the database to the tenant", err, "ALTER DATABASE %s OWNER TO %s", db,
                  role)) < 0 ||
        (rc = run(c, "closing the database to others", err,
                  "REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", db)) < 0 ||
        (rc = run(c, "opening the database to the tenant", err,
                  "GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s", db, role)) < 0)
        goto out;
    /* Inside the database: what the template's owner owned becomes the tenant's. */
    tc = dbs_connect(&s, t->id, err);
    if (!tc) {
        rc = -(int)err->code;
        goto out;
    }
    bool owner_exists = false;
    if ((rc = dbs_role_exists(tc, env->cfg->dbstrategy_template_owner, &owner_exists, err)) < 0)
        goto out;
    /* REASSIGN OWNED also moves shared objects: databases the template owner owns (the
     * template itself) would go to this tenant. Keep the owner from owning any database, so
     * only the objects inside this one change hands. */
    if (owner_exists) {
        const char *p[] = {env->cfg->dbstrategy_template_owner};
        PGresult *r = PQexecParams(tc,
                                   "SELECT datname FROM pg_database d JOIN pg_roles r ON"
                                   " r.oid = d.datdba WHERE r.rolname = $1",
                                   1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = sdo_fail(err, SDO_UNAVAILABLE, "cannot read the catalog: %s",
                          PQresultErrorMessage(r));
            PQclear(r);
            goto out;
        }
        for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
            const char *dn = PQgetvalue(r, i, 0);
            char *qdn = PQescapeIdentifier(tc, dn, strlen(dn));
            rc = run(tc, "taking the template database from its object owner", err,
                     "ALTER DATABASE %s OWNER TO CURRENT_USER", qdn);
            PQfreemem(qdn);
        }
        PQclear(r);
        if (rc < 0)
            goto out;
        if ((rc = run(tc, "handing the template's objects to the tenant", err,
                      "REASSIGN OWNED BY %s TO %s", owner, role)) < 0)
            goto out;
    }
    if ((rc = run(tc, "giving the public schema to the tenant", err,
                  "ALTER SCHEMA public OWNER TO %s", role)) < 0)
        goto out;
    rc = 0;
out:
    if (role)
        PQfreemem(role);
    if (db)
        PQfreemem(db);
    if (pw)
        PQfreemem(pw);
    if (owner)
        PQfreemem(owner);
    if (c)
        PQfinish(c);
    if (tc)
        PQfinish(tc);
    server_rec_free(&s);
    return rc;
}

int dbs_set_login(const dbs_env *env, const char *server, const char *role, const char *db,
                  bool login, sdo_error *err)
{
    if (!tenant_id_syntax_ok(role))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    server_rec s = {0};
    int rc = load_server(env, server, &s, err);
    if (rc < 0)
        return rc;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        server_rec_free(&s);
        return -(int)err->code;
    }
    bool exists = false;
    rc = dbs_role_exists(c, role, &exists, err);
    if (rc == 0 && exists) {
        char *q = PQescapeIdentifier(c, role, strlen(role));
        rc = run(c, login ? "allowing the tenant's logins" : "refusing the tenant's logins", err,
                 "ALTER ROLE %s %s", q, login ? "LOGIN" : "NOLOGIN");
        PQfreemem(q);
        if (rc == 0 && !login) {
            const char *p[] = {db, role};
            PGresult *r = PQexecParams(c,
                                       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                       " WHERE datname = $1 OR usename = $2",
                                       2, NULL, p, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                rc = sdo_fail(err, SDO_UNAVAILABLE, "ending the tenant's connections failed: %s",
                              PQresultErrorMessage(r));
            PQclear(r);
        }
    }
    PQfinish(c);
    server_rec_free(&s);
    return rc;
}

int dbs_drop(const dbs_env *env, const char *server, const char *db, const char *role,
             sdo_error *err)
{
    if ((db[0] && !tenant_id_syntax_ok(db)) || (role[0] && !tenant_id_syntax_ok(role)))
        return sdo_fail(err, SDO_INTERNAL, "refusing an unchecked identifier");
    server_rec s = {0};
    int rc = load_server(env, server, &s, err);
    if (rc == -SDO_NOT_FOUND)
        return 0; /* the server went with it (dedicated) */
    if (rc < 0)
        return rc;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        server_rec_free(&s);
        return -(int)err->code;
    }
    if (db[0]) {
        char *q = PQescapeIdentifier(c, db, strlen(db));
        rc = run(c, "dropping the tenant's database", err,
                 "DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
        PQfreemem(q);
    }
    if (rc == 0 && role[0]) {
        char *q = PQescapeIdentifier(c, role, strlen(role));
        rc = run(c, "dropping the tenant's role", err, "DROP ROLE IF EXISTS %s", q);
        PQfreemem(q);
    }
    PQfinish(c);
    server_rec_free(&s);
    return rc;
}

int dbs_close_public(const dbs_env *env, const server_rec *s, sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    const char *dbs[] = {"postgres", env->cfg->dbstrategy_template_database, NULL};
    int rc = 0;
    for (int i = 0; dbs[i] && rc == 0; i++) {
        bool exists = false;
        if ((rc = dbs_database_exists(c, dbs[i], &exists, err)) < 0 || !exists)
            continue;
        char *q = PQescapeIdentifier(c, dbs[i], strlen(dbs[i]));
        rc = run(c, "closing a database to tenant roles", err,
                 "REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", q);
        PQfreemem(q);
    }
    PQfinish(c);
    return rc;
}

void dbs_app_address(const server_rec *s, char *host, size_t hostsz, int *port)
{
    sdo_strlcpy(host, s->host, hostsz);
    *port = s->port;
}

int dbs_ensure_role(const dbs_env *env, tenant_rec *t, const char *server, bool login,
                    sdo_error *err)
{
    if (!tenant_id_syntax_ok(t->id) || !t->password)
        return sdo_fail(err, SDO_INTERNAL, "the tenant's role has no password yet");
    server_rec s = {0};
    int rc = load_server(env, server, &s, err);
    if (rc < 0)
        return rc;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        server_rec_free(&s);
        return -(int)err->code;
    }
    char *role = PQescapeIdentifier(c, t->id, strlen(t->id));
    char *pw = PQescapeLiteral(c, t->password, strlen(t->password));
    bool exists = false;
    rc = dbs_role_exists(c, t->id, &exists, err);
    if (rc == 0)
        rc = run(c, "preparing the tenant's role", err,
                 "%s ROLE %s %s PASSWORD %s CONNECTION LIMIT %d", exists ? "ALTER" : "CREATE", role,
                 login ? "LOGIN" : "NOLOGIN", pw, t->max_conn > 0 ? t->max_conn : 20);
    PQfreemem(role);
    PQfreemem(pw);
    PQfinish(c);
    server_rec_free(&s);
    return rc;
}

#define READY_MARK "saasodoo:ready"

int dbs_prepare_copy(const server_rec *s, const char *db, const char *owner, sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    char *qd = PQescapeIdentifier(c, db, strlen(db));
    char *qo = PQescapeIdentifier(c, owner, strlen(owner));
    bool exists = false;
    int rc = dbs_database_exists(c, db, &exists, err);
    if (rc == 0 && exists) {
        const char *p[] = {db, READY_MARK};
        PGresult *r = PQexecParams(c,
                                   "SELECT 1 FROM pg_database d JOIN pg_shdescription s ON"
                                   " s.objoid = d.oid WHERE d.datname = $1 AND s.description = $2",
                                   2, NULL, p, NULL, NULL, 0);
        bool ready = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
        PQclear(r);
        if (ready) {
            rc = 1;
            goto out;
        }
        rc = run(c, "dropping an incomplete copy", err, "DROP DATABASE %s WITH (FORCE)", qd);
    }
    if (rc == 0)
        rc = run(c, "creating the database for the copy", err, "CREATE DATABASE %s OWNER %s", qd,
                 qo);
out:
    PQfreemem(qd);
    PQfreemem(qo);
    PQfinish(c);
    return rc;
}

int dbs_mark_copied(const server_rec *s, const char *db, sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    char *qd = PQescapeIdentifier(c, db, strlen(db));
    int rc =
        run(c, "marking the copy complete", err, "COMMENT ON DATABASE %s IS '" READY_MARK "'", qd);
    PQfreemem(qd);
    PQfinish(c);
    return rc;
}
