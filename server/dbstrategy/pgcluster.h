/* Local PostgreSQL clusters, one per dedicated tenant: created with initdb, run with pg_ctl
 * as an unprivileged user, one folder each under a base directory; plus copying a database
 * between two servers (pg_dump | pg_restore) and checking that two databases hold the same
 * data. Every function is idempotent, so the operations engine may repeat it after a crash.
 *
 * Layout of a cluster named N under base_dir:
 *   N/data          the data directory (mode 0700, owned by run_as)
 *   N/run           the unix socket directory (mode 0700, owned by run_as)
 *   N/port          the port the cluster was last given (the record pgc_free_port reads)
 *   N/postgres.log  the server log
 * The cluster listens on 127.0.0.1:<port> (password logins, scram-sha-256) and on its socket,
 * where its superuser `postgres` is trusted: only run_as and root can open that directory. */
#ifndef SDO_PGCLUSTER_H
#define SDO_PGCLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

#define PGC_NAME_PATTERN "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"

typedef struct pgc_config {
    const char *bin_dir;  /* PostgreSQL programs, e.g. /usr/lib/postgresql/15/bin */
    const char *run_as;   /* user that runs initdb/pg_ctl/pg_dump/pg_restore when we are root
                             (the server programs refuse root); ignored otherwise */
    const char *base_dir; /* absolute; one folder per cluster; created (mode 0750, group of
                             run_as) if missing; every parent must be traversable by run_as */
} pgc_config;

/* Creates the cluster `name` (PGC_NAME_PATTERN) to listen on 127.0.0.1:port with
 * max_connections, shared_buffers 32MB, fsync on. initdb runs into a scratch folder that is
 * renamed into place once configured, so a crash never leaves a half-made data directory.
 * An existing cluster is left as it is (its settings are not changed). Errors:
 * INVALID_ARGUMENT for a bad name, port or max_connections; FAILED_PRECONDITION when the
 * base directory cannot be made or reached by run_as, run_as does not exist, or initdb
 * fails (with initdb's first error line). */
int pgc_create(const pgc_config *c, const char *name, int port, int max_connections,
               sdo_error *err);

/* Starts the cluster on port (pg_ctl start -w, log in N/postgres.log), recording the port.
 * Already running on that port is success; running on another port is FAILED_PRECONDITION.
 * NOT_FOUND if the cluster does not exist; UNAVAILABLE if it did not become ready within
 * 60 s; FAILED_PRECONDITION with the log's first error line (e.g. the port is taken). */
int pgc_start(const pgc_config *c, const char *name, int port, sdo_error *err);

/* Stops the cluster (pg_ctl stop -m fast -w). Not running or not existing is success;
 * UNAVAILABLE if it did not stop within 60 s. */
int pgc_stop(const pgc_config *c, const char *name, sdo_error *err);

/* Stops the cluster and deletes its folder. Missing is success. The folder is first renamed
 * to base_dir/.N.removing, so a crash midway leaves no half-deleted cluster behind under
 * its name (the next pgc_remove of N finishes the job). */
int pgc_remove(const pgc_config *c, const char *name, sdo_error *err);

/* True if the cluster's folder holds an initialised data directory. *running (may be NULL)
 * is set from pg_ctl status. False for invalid names or configuration. */
bool pgc_exists(const pgc_config *c, const char *name, bool *running);

/* libpq conninfo of the cluster's superuser over its socket, caller frees:
 * "host='<base_dir>/<name>/run' port=<port> user='postgres' dbname='postgres'".
 * NULL for an invalid name or configuration. */
char *pgc_admin_conninfo(const pgc_config *c, const char *name, int port);

/* Names of the folders under base_dir that are named like clusters (initialised or not),
 * sorted; a missing base_dir is an empty list. Caller frees each name and the array. */
int pgc_list(const pgc_config *c, char ***names, size_t *n, sdo_error *err);

/* Finds a port in [min, max] that no cluster folder records and that nothing has bound on
 * 127.0.0.1 (bind test), lowest first. Nothing is reserved: callers that pick ports
 * concurrently must serialise between this call and pgc_create. INVALID_ARGUMENT for a bad
 * range, RESOURCE_EXHAUSTED when every port is taken. */
int pgc_free_port(const pgc_config *c, int min, int max, int *port, sdo_error *err);

/* Copies database src_db of the server at src_conninfo into dst_db of the server at
 * dst_conninfo: pg_dump -Fc | pg_restore --no-owner --no-acl --role=owner_role
 * --single-transaction, run as run_as when we are root. The conninfo strings (keyword/value
 * or URI) name the servers and admin users; their dbname is replaced; passwords are handed
 * over in the environment, never on a command line. dst_db must exist, be owned by
 * owner_role and be empty: a failed copy leaves it empty again, so the copy can simply be
 * repeated. Errors: FAILED_PRECONDITION when dst_db is missing or not empty, or with the
 * first error line of pg_dump or pg_restore (e.g. the source database does not exist);
 * UNAVAILABLE when a server cannot be reached; DEADLINE_EXCEEDED after timeout_ms. */
int pgc_copy_database(const pgc_config *c, const char *src_conninfo, const char *src_db,
                      const char *dst_conninfo, const char *dst_db, const char *owner_role,
                      int timeout_ms, sdo_error *err);

/* Checks that two databases (conninfo strings including dbname) hold the same data: the same
 * tables in schema public, each with the same row count and the same checksum (the sum of
 * the 128-bit md5 of every row's text, so row order does not matter and no sort is needed),
 * and the same sequences with the same values. Each side is read in one REPEATABLE READ
 * snapshot. Returns 0 when equal, -DATA_LOSS (reason "DATA_MISMATCH") naming the first table
 * or sequence that differs, UNAVAILABLE when a server cannot be reached, INTERNAL for a
 * failed query. *tables (may be NULL) is the number of tables compared. */
int pgc_verify_same(const char *a_conninfo, const char *b_conninfo, int *tables, sdo_error *err);

#endif
