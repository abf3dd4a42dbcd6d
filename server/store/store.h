/* The control-plane store: a libpq connection pool with reconnects, error mapping, and
 * helpers for parameterised queries. Everything in PostgreSQL goes through here. */
#ifndef SDO_STORE_H
#define SDO_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

typedef struct store store;

/* Creates a pool of up to pool_size connections (opened lazily). Takes a copy of conninfo. */
store *store_new(const char *conninfo, int pool_size, int connect_timeout_s);
void store_free(store *st);

/* Borrows a connection, opening one if needed; waits for a free one up to the connect
 * timeout. NULL with UNAVAILABLE in err when the database cannot be reached. */
PGconn *store_acquire(store *st, sdo_error *err);
/* Returns a connection; a broken one is closed and reopened on next use. */
void store_release(store *st, PGconn *c);

/* Runs one parameterised statement (text params, NULL = SQL NULL). Returns the result on
 * success (caller PQclears) or NULL with err filled: UNAVAILABLE when the connection is
 * lost, ABORTED on serialization failure/deadlock, DEADLINE_EXCEEDED when cancelled by
 * statement_timeout, INTERNAL otherwise (detail logged). sqlstate (if not NULL, 6 bytes)
 * receives the SQLSTATE of a failure. A statement outside a transaction whose connection had
 * gone stale is retried once on a fresh connection. */
PGresult *store_exec(store *st, PGconn *c, const char *sql, int nparams, const char *const *params,
                     sdo_error *err, char *sqlstate);
/* Same with binary-capable params (lengths/formats as in PQexecParams). */
PGresult *store_exec_bin(store *st, PGconn *c, const char *sql, int nparams,
                         const char *const *params, const int *lengths, const int *formats,
                         sdo_error *err, char *sqlstate);

/* BEGIN / COMMIT / ROLLBACK helpers; return 0 or a negative status with err. */
int store_begin(store *st, PGconn *c, sdo_error *err);
int store_commit(store *st, PGconn *c, sdo_error *err);
void store_rollback(PGconn *c);

/* Probes the database on a connection of its own; true when it answers. */
bool store_ping(store *st);

/* The conninfo (borrowed), e.g. for a LISTEN connection. */
const char *store_conninfo(const store *st);
int store_connect_timeout(const store *st);

/* Opens a standalone connection (not pooled) with the store's settings; NULL on failure
 * with a message in err. */
PGconn *store_connect(const store *st, sdo_error *err);

/* Field helpers on a result row. */
int64_t store_get_i64(const PGresult *r, int row, int col);
int store_get_int(const PGresult *r, int row, int col);
bool store_get_bool(const PGresult *r, int row, int col);
/* malloc'ed copy of a text value ("" for NULL). */
char *store_get_str(const PGresult *r, int row, int col);

#endif
