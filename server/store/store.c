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
    uint64_t *prepared; /* hashes of the statements prepared on conn */
    size_t nprepared, capprepared;
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
    for (int i = 0; i < st->nslots; i++) {
        if (st->slots[i].conn)
            PQfinish(st->slots[i].conn);
        free(st->slots[i].prepared);
    }
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

/* Server notices (e.g. "relation already exists, skipping") go to the debug log. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char line[256];
    first_line(message, line, sizeof line);
    log_debug("msg=\"database notice\" notice=\"%s\"", line);
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
        sdo_fail(err, SDO_UNAVAILABLE,
                 "the control-plane database is unreachable (%s); retry shortly", line);
        if (c)
            PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
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
    if (st->slots[idx].conn != c)
        st->slots[idx].nprepared = 0;
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
                st->slots[i].nprepared = 0;
            }
            st->slots[i].busy = false;
            break;
        }
    }
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* The pool slot holding c, or NULL for a standalone connection. Only the thread that
 * borrowed c touches its slot's statement list, so no lock is needed past the lookup. */
static slot *slot_of(store *st, PGconn *c)
{
    for (int i = 0; i < st->nslots; i++)
        if (st->slots[i].conn == c)
            return &st->slots[i];
    return NULL;
}

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* Runs sql as a named prepared statement on pooled connections (prepared on first use per
 * connection: parsing and planning once saves most of a short query's cost), or with
 * PQexecParams on standalone ones. */
static PGresult *exec_once(store *st, PGconn *c, const char *sql, int n, const char *const *params,
                           const int *lengths, const int *formats)
{
    slot *sl = slot_of(st, c);
    if (!sl)
        return PQexecParams(c, sql, n, NULL, params, lengths, formats, 0);
    uint64_t h = sql_hash(sql);
    char name[24];
    snprintf(name, sizeof name, "s%016llx", (unsigned long long)h);
    bool have = false;
    for (size_t i = 0; i < sl->nprepared && !have; i++)
        have = sl->prepared[i] == h;
    if (!have) {
        PGresult *pr = PQprepare(c, name, sql, n, NULL);
        if (PQresultStatus(pr) != PGRES_COMMAND_OK)
            return pr; /* the error travels like any other */
        PQclear(pr);
        if (sl->nprepared == sl->capprepared) {
            size_t cap = sl->capprepared ? sl->capprepared * 2 : 32;
            uint64_t *np = realloc(sl->prepared, cap * sizeof *np);
            if (np) {
                sl->prepared = np;
                sl->capprepared = cap;
            }
        }
        if (sl->nprepared < sl->capprepared)
            sl->prepared[sl->nprepared++] = h;
    }
    return PQexecPrepared(c, name, n, params, lengths, formats, 0);
}

PGresult *store_exec_bin(store *st, PGconn *c, const char *sql, int nparams,
                         const char *const *params, const int *lengths, const int *formats,
                         sdo_error *err, char *sqlstate)
{
    bool idle = PQtransactionStatus(c) == PQTRANS_IDLE;
    PGresult *r = exec_once(st, c, sql, nparams, params, lengths, formats);
    ExecStatusType s = PQresultStatus(r);
    if ((s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) && idle && PQstatus(c) == CONNECTION_BAD) {
        /* The server restarted since this connection was last used: reconnect once. */
        PQclear(r);
        PQreset(c);
        slot *sl = slot_of(st, c);
        if (sl)
            sl->nprepared = 0; /* a new session has no prepared statements */
        if (PQstatus(c) == CONNECTION_OK) {
            log_info("msg=\"reconnected to the control-plane database\"");
            r = exec_once(st, c, sql, nparams, params, lengths, formats);
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

PGresult *store_exec(store *st, PGconn *c, const char *sql, int nparams, const char *const *params,
                     sdo_error *err, char *sqlstate)
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
