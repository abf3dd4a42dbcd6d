/* Schema migrations under a session advisory lock. */
#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"

/* An arbitrary constant shared by every server of this platform. */
#define MIGRATION_LOCK_KEY "7361617309"

int store_migrate(store *st, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return -(int)err->code;
    int rc = -1;
    bool locked = false;
    PGresult *r =
        store_exec(st, c, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", 0, NULL, err, NULL);
    if (!r)
        goto out;
    PQclear(r);
    locked = true;
    r = store_exec(st, c,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version integer PRIMARY KEY, name text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   0, NULL, err, NULL);
    if (!r)
        goto out;
    PQclear(r);
    for (int i = 0; i < store_migration_count; i++) {
        const store_migration *m = &store_migrations[i];
        char v[16];
        snprintf(v, sizeof v, "%d", m->version);
        const char *p[] = {v, m->name};
        r = store_exec(st, c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p, err,
                       NULL);
        if (!r)
            goto out;
        int have = PQntuples(r);
        PQclear(r);
        if (have)
            continue;
        if (store_begin(st, c, err) < 0)
            goto out;
        r = PQexec(c, m->sql); /* multi-statement script: simple protocol */
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_error("msg=\"migration failed\" migration=%s error=\"%s\"", m->name,
                      PQresultErrorMessage(r));
            sdo_fail(err, SDO_INTERNAL, "schema migration %s failed: %s", m->name,
                     PQresultErrorMessage(r));
            PQclear(r);
            store_rollback(c);
            goto out;
        }
        PQclear(r);
        r = store_exec(st, c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, p,
                       err, NULL);
        if (!r) {
            store_rollback(c);
            goto out;
        }
        PQclear(r);
        if (store_commit(st, c, err) < 0)
            goto out;
        log_info("msg=\"schema migration applied\" migration=%s", m->name);
    }
    rc = 0;
out:
    if (locked) {
        r = PQexec(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
        PQclear(r);
    }
    store_release(st, c);
    return rc < 0 ? -(int)(err->code ? err->code : SDO_INTERNAL) : 0;
}
