/* The control-plane store: a fixed-size libpq connection pool (mutex + condition
 * variable), lazily opened connections that are replaced when PostgreSQL restarts, and
 * SQLSTATE-to-status mapping. */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

typedef struct slot {
    PGconn *conn;
    bool busy;
} slot;

struct store {
    char *conninfo;
    int timeout_s;
    slot *slots;
    int nslots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGconn *ping_conn;
    pthread_mutex_t ping_mu;
};

store *store_new(const char *conninfo, int pool_size, int connect_timeout_s)
{
    store *st = sdo_calloc(1, sizeof *st);
    st->conninfo = sdo_strdup(conninfo);
    st->timeout_s = connect_timeout_s > 0 ? connect_timeout_s : 5;
    st->nslots = pool_size > 0 ? pool_size : 4;
    st->slots = sdo_calloc((size_t)st->nslots, sizeof(slot));
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->ping_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    return st;
}

void store_free(store *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nslots; i++)
        if (st->slots[i].conn)
            PQfinish(st->slots[i].conn);
    if (st->ping_conn)
        PQfinish(st->ping_conn);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->ping_mu);
    pthread_cond_destroy(&st->cv);
    free(st->slots);
    free(st->conninfo);
    free(st);
}

const char *store_conninfo(const store *st)
{
    return st->conninfo;
}

int store_connect_timeout(const store *st)
{
    return st->timeout_s;
}

/* First line of libpq's message, for a client-facing sentence. */
static void first_line(const char *msg, char *out, size_t outsz)
{
    sdo_strlcpy(out, msg ? msg : "", outsz);
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = 0;
}

PGconn *store_connect(const store *st, sdo_error *err)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", st->timeout_s);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {st->conninfo, timeout, "saasodoo-server", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char line[256];
        first_line(c ? PQerrorMessage(c) : "out of memory", line, sizeof line);
        log_warn("msg=\"control-plane database unreachable\" error=\"%s\"", line);
        sdo_fail(err, SDO_UNAVAILABLE,
                 "the control-plane database is unreachable (%s); retry shortly", line);
        if (c)
            PQfinish(c);
        return NULL;
    }
    return c;
}

PGconn *store_acquire(store *st, sdo_error *err)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += st->timeout_s;

    pthread_mutex_lock(&st->mu);
    int idx = -1;
    for (;;) {
        /* prefer an open idle connection, then an empty slot */
        for (int i = 0; i < st->nslots && idx < 0; i++)
            if (!st->slots[i].busy && st->slots[i].conn)
                idx = i;
        for (int i = 0; i < st->nslots && idx < 0; i++)
            if (!st->slots[i].busy)
                idx = i;
        if (idx >= 0)
            break;
        if (pthread_cond_timedwait(&st->cv, &st->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&st->mu);
            sdo_fail(err, SDO_UNAVAILABLE,
                     "all %d control-plane database connections are busy; retry shortly",
                     st->nslots);
            return NULL;
        }
    }
    st->slots[idx].busy = true;
    PGconn *c = st->slots[idx].conn;
    pthread_mutex_unlock(&st->mu);

    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    if (!c)
        c = store_connect(st, err);
    pthread_mutex_lock(&st->mu);
    st->slots[idx].conn = c;
    if (!c)
        st->slots[idx].busy = false;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return c;
}

void store_release(store *st, PGconn *c)
{
    if (!c)
        return;
    /* A connection left inside a transaction is rolled back before reuse. */
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        store_rollback(c);
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->nslots; i++) {
        if (st->slots[i].conn == c) {
            if (PQstatus(c) != CONNECTION_OK) {
                PQfinish(c);
                st->slots[i].conn = NULL;
            }
            st->slots[i].busy = false;
            break;
        }
    }
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static PGresult *exec_once(PGconn *c, const char *sql, int n, const char *const *params,
                           const int *lengths, const int *formats)
{
    return PQexecParams(c, sql, n, NULL, params, lengths, formats, 0);
}

PGresult *store_exec_bin(store *st, PGconn *c, const char *sql, int nparams,
                         const char *const *params, const int *lengths, const int *formats,
                         sdo_error *err, char *sqlstate)
{
    (void)st;
    bool idle = PQtransactionStatus(c) == PQTRANS_IDLE;
    PGresult *r = exec_once(c, sql, nparams, params, lengths, formats);
    ExecStatusType s = PQresultStatus(r);
    if ((s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) && idle &&
        PQstatus(c) == CONNECTION_BAD) {
        /* The server restarted since this connection was last used: reconnect once. */
        PQclear(r);
        PQreset(c);
        if (PQstatus(c) == CONNECTION_OK) {
            log_info("msg=\"reconnected to the control-plane database\"");
            r = exec_once(c, sql, nparams, params, lengths, formats);
            s = PQresultStatus(r);
        } else {
            r = NULL;
            s = PGRES_FATAL_ERROR;
        }
    }
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        if (sqlstate)
            sqlstate[0] = 0;
        return r;
    }

    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        state = "08006";
    if (sqlstate)
        sdo_strlcpy(sqlstate, state, 6);
    char line[256];
    first_line(r ? PQresultErrorMessage(r) : PQerrorMessage(c), line, sizeof line);
    if (PQstatus(c) != CONNECTION_OK || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0) {
        sdo_fail(err, SDO_UNAVAILABLE,
                 "the control-plane database connection was lost; retry shortly");
    } else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        sdo_fail(err, SDO_ABORTED, "a concurrent change got in the way; retry the request");
    } else if (strcmp(state, "57014") == 0) {
        sdo_fail(err, SDO_DEADLINE_EXCEEDED, "the database query ran past the deadline");
    } else if (strcmp(state, "23505") == 0) {
        sdo_fail(err, SDO_ALREADY_EXISTS, "the resource already exists");
    } else {
        log_error("msg=\"query failed\" sqlstate=%s error=\"%s\"", state, line);
        sdo_fail(err, SDO_INTERNAL, "the control-plane database failed a query (SQLSTATE %s)",
                 state);
    }
    PQclear(r);
    return NULL;
}

PGresult *store_exec(store *st, PGconn *c, const char *sql, int nparams,
                     const char *const *params, sdo_error *err, char *sqlstate)
{
    return store_exec_bin(st, c, sql, nparams, params, NULL, NULL, err, sqlstate);
}

static int simple(store *st, PGconn *c, const char *sql, sdo_error *err)
{
    PGresult *r = store_exec(st, c, sql, 0, NULL, err, NULL);
    if (!r)
        return -(int)(err ? err->code : SDO_INTERNAL);
    PQclear(r);
    return 0;
}

int store_begin(store *st, PGconn *c, sdo_error *err)
{
    return simple(st, c, "BEGIN", err);
}

int store_commit(store *st, PGconn *c, sdo_error *err)
{
    return simple(st, c, "COMMIT", err);
}

void store_rollback(PGconn *c)
{
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

bool store_ping(store *st)
{
    pthread_mutex_lock(&st->ping_mu);
    if (st->ping_conn && PQstatus(st->ping_conn) != CONNECTION_OK) {
        PQfinish(st->ping_conn);
        st->ping_conn = NULL;
    }
    if (!st->ping_conn)
        st->ping_conn = store_connect(st, NULL);
    bool ok = false;
    if (st->ping_conn) {
        PGresult *r = PQexec(st->ping_conn, "SELECT 1");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            PQfinish(st->ping_conn);
            st->ping_conn = NULL;
        }
    }
    pthread_mutex_unlock(&st->ping_mu);
    return ok;
}

int64_t store_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int store_get_int(const PGresult *r, int row, int col)
{
    return (int)store_get_i64(r, row, col);
}

bool store_get_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

char *store_get_str(const PGresult *r, int row, int col)
{
    return sdo_strdup(PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}
