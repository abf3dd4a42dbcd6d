/* Database strategies: where a tenant's database lives and how it is made. One interface,
 * one file per strategy: shared.c (a database and role on a shared server) and dedicated.c
 * (a PostgreSQL cluster of the tenant's own). A Kubernetes StatefulSet strategy is another
 * file behind the same interface. Every function is idempotent: the operations engine may
 * run it again after a crash. */
#ifndef SDO_DBSTRATEGY_H
#define SDO_DBSTRATEGY_H

#include <libpq-fe.h>

#include "config/config.h"
#include "dbstrategy/pgcluster.h"
#include "store/provisioning.h"
#include "store/store.h"
#include "util/secret.h"

typedef struct dbs_env {
    store *st;
    const sdo_config *cfg;
    const secret_key *key;
    const pgc_config *pgc;
} dbs_env;

typedef struct dbstrategy_ops {
    const char *name; /* "SHARED" or "DEDICATED" */
    /* Chooses or makes the server the tenant's database goes on; t->server is set to it and,
     * when record is true, the tenant's record too. prefer names a server to use when not
     * NULL/"". With record, a tenant already placed on a server of this strategy keeps it;
     * without (a migration's target), the tenant's current server is never chosen. */
    int (*place)(const dbs_env *env, tenant_rec *t, const char *prefer, bool record,
                 sdo_error *err);
    /* Undoes place for server id: a dedicated cluster is removed with its record. */
    int (*unplace)(const dbs_env *env, const char *tenant_id, const char *server, sdo_error *err);
    /* Creates the tenant's database from the template on server. */
    int (*create_database)(const dbs_env *env, const tenant_rec *t, const char *server,
                           sdo_error *err);
    /* Starts / stops the server's processes when they are the tenant's own. */
    int (*start_server)(const dbs_env *env, const char *server, sdo_error *err);
    int (*stop_server)(const dbs_env *env, const char *server, sdo_error *err);
} dbstrategy_ops;

extern const dbstrategy_ops dbs_shared;
extern const dbstrategy_ops dbs_dedicated;

/* The strategy of a name ("SHARED"/"DEDICATED"), or NULL. */
const dbstrategy_ops *dbs_for(const char *strategy);

/* ---- shared by the strategies (common.c) ---- */

/* Connects to dbname (NULL = the server's maintenance database) as the server's admin. */
PGconn *dbs_connect(const server_rec *s, const char *dbname, sdo_error *err);

/* Runs one statement on an admin connection; maps failures to statuses. */
int dbs_exec(PGconn *c, const char *sql, const char *what, sdo_error *err);

/* True if database / role exists on the server. */
int dbs_database_exists(PGconn *c, const char *db, bool *exists, sdo_error *err);
int dbs_role_exists(PGconn *c, const char *role, bool *exists, sdo_error *err);

/* Makes the tenant's login role (generating and recording its password the first time),
 * gives it the database and everything in it, and closes the database to everyone else:
 * CONNECT and TEMPORARY revoked from PUBLIC, connection limit from the plan. login=false
 * leaves the role NOLOGIN (used while data is still moving). */
int dbs_setup_role(const dbs_env *env, tenant_rec *t, const char *server, bool login,
                   sdo_error *err);

/* Creates or updates the tenant's role alone (no database needed yet). */
int dbs_ensure_role(const dbs_env *env, tenant_rec *t, const char *server, bool login,
                    sdo_error *err);

/* Creates an empty database db owned by owner on s, for a copy to fill; an existing one not
 * marked complete is dropped first. Returns 1 when a complete copy already exists. */
int dbs_prepare_copy(const server_rec *s, const char *db, const char *owner, sdo_error *err);
/* Marks the copy of db on s complete. */
int dbs_mark_copied(const server_rec *s, const char *db, sdo_error *err);

/* Allows or refuses the role's logins; refusing also ends its open connections. */
int dbs_set_login(const dbs_env *env, const char *server, const char *role, const char *db,
                  bool login, sdo_error *err);

/* Drops the database (ending its connections) and the role; missing ones are fine. */
int dbs_drop(const dbs_env *env, const char *server, const char *db, const char *role,
             sdo_error *err);

/* Revokes CONNECT from PUBLIC on the server's maintenance and template databases, so tenant
 * roles reach their own database only. */
int dbs_close_public(const dbs_env *env, const server_rec *s, sdo_error *err);

/* Where apps reach the server: host and port from its record. */
void dbs_app_address(const server_rec *s, char *host, size_t hostsz, int *port);

/* Conninfo of db on server (admin), malloc'ed. */
char *dbs_conninfo_db(const server_rec *s, const char *db);

#endif
