/* The store's side of provisioning: database servers, tenant placement, operation steps. */
#include "store/provisioning.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"
#include "util/log.h"

#define US(col) "(extract(epoch from " col ") * 1000000)::bigint"

static int failed(sdo_error *err)
{
    return -(int)(err && err->code ? err->code : SDO_INTERNAL);
}

static void copy_str(char *dst, size_t n, const PGresult *r, int row, int col)
{
    sdo_strlcpy(dst, PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col), n);
}

void server_rec_free(server_rec *s)
{
    free(s->admin_conninfo);
    s->admin_conninfo = NULL;
}

void tenant_rec_free(tenant_rec *t)
{
    free(t->password);
    t->password = NULL;
}

void op_rec_free(op_rec *o)
{
    free(o->params);
    o->params = NULL;
}

/* ---- database servers ------------------------------------------------------------------ */

#define LOAD_SQL                                                                                   \
    "(SELECT count(*) FROM tenants t WHERE t.database_server = s.id AND t.state <> 'DELETED')"

#define SERVER_COLS                                                                                \
    "s.id, s.kind, s.host, s.port, s.capacity, " LOAD_SQL                                          \
    ", s.accepting, s.tenant, s.cluster, s.admin_conninfo_enc"

static int server_from_row(const secret_key *k, const PGresult *r, int i, server_rec *s,
                           sdo_error *err)
{
    memset(s, 0, sizeof *s);
    copy_str(s->id, sizeof s->id, r, i, 0);
    copy_str(s->kind, sizeof s->kind, r, i, 1);
    copy_str(s->host, sizeof s->host, r, i, 2);
    s->port = store_get_int(r, i, 3);
    s->capacity = store_get_int(r, i, 4);
    s->load = store_get_int(r, i, 5);
    s->accepting = store_get_bool(r, i, 6);
    copy_str(s->tenant, sizeof s->tenant, r, i, 7);
    copy_str(s->cluster, sizeof s->cluster, r, i, 8);
    size_t len = 0;
    unsigned char *blob = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 9), &len);
    if (!blob)
        return sdo_fail(err, SDO_INTERNAL, "cannot read the conninfo of server %s", s->id);
    int rc = secret_open(k, blob, len, &s->admin_conninfo, err);
    PQfreemem(blob);
    return rc;
}

int store_server_insert(store *st, PGconn *c, const secret_key *k, const server_rec *s,
                        const char *display_name, sdo_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (secret_seal(k, s->admin_conninfo, &sealed, &sealed_len) < 0)
        return sdo_fail(err, SDO_INTERNAL, "cannot seal the server's conninfo");
    char port[16], cap[16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(cap, sizeof cap, "%d", s->capacity);
    const char *p[] = {s->id,     display_name,
                       s->kind,   s->host,
                       port,      (const char *)sealed,
                       cap,       s->accepting ? "true" : "false",
                       s->tenant, s->cluster};
    int len[] = {0, 0, 0, 0, 0, (int)sealed_len, 0, 0, 0, 0};
    int fmt[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    char state[6];
    PGresult *r = store_exec_bin(st, c,
                                 "INSERT INTO database_servers (id, display_name, kind, host, port,"
                                 " admin_conninfo_enc, capacity, accepting, tenant, cluster)"
                                 " VALUES ($1,$2,$3,$4,$5::integer,$6,$7::integer,$8::boolean,$9,"
                                 "$10)",
                                 10, p, len, fmt, err, state);
    free(sealed);
    if (!r) {
        if (strcmp(state, "23505") == 0)
            return sdo_fail(err, SDO_ALREADY_EXISTS,
                            "database server 'databaseServers/%s' already exists", s->id);
        return failed(err);
    }
    PQclear(r);
    return 0;
}

int store_server_get(store *st, PGconn *c, const secret_key *k, const char *id, server_rec *out,
                     sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r = store_exec(st, c, "SELECT " SERVER_COLS " FROM database_servers s WHERE id = $1",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc;
    if (PQntuples(r) == 0)
        rc =
            sdo_fail(err, SDO_NOT_FOUND, "database server 'databaseServers/%s' does not exist", id);
    else
        rc = server_from_row(k, r, 0, out, err);
    PQclear(r);
    return rc;
}

int store_server_pick_shared(store *st, PGconn *c, const secret_key *k, const char *exclude,
                             server_rec *out, sdo_error *err)
{
    const char *p[] = {exclude ? exclude : ""};
    PGresult *r = store_exec(st, c,
                             "SELECT " SERVER_COLS " FROM database_servers s"
                             " WHERE s.kind = 'SHARED' AND s.accepting AND s.id <> $1"
                             " AND " LOAD_SQL " < s.capacity"
                             " ORDER BY " LOAD_SQL ", s.seq LIMIT 1 FOR UPDATE",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                      "no shared database server accepts new tenants or has room; register one "
                      "(AdminService.CreateDatabaseServer) or raise a server's capacity");
    else
        rc = server_from_row(k, r, 0, out, err);
    PQclear(r);
    return rc;
}

int store_server_delete(store *st, PGconn *c, const char *id, bool force, sdo_error *err)
{
    const char *p[] = {id, force ? "true" : "false"};
    PGresult *r = store_exec(st, c,
                             "WITH d AS (DELETE FROM database_servers s WHERE id = $1 AND"
                             " ($2::boolean OR " LOAD_SQL " = 0) RETURNING id)"
                             " SELECT (SELECT count(*) FROM d),"
                             " (SELECT count(*) FROM database_servers WHERE id = $1)",
                             2, p, err, NULL);
    if (!r)
        return failed(err);
    int deleted = store_get_int(r, 0, 0), exists = store_get_int(r, 0, 1);
    PQclear(r);
    if (deleted)
        return 0;
    if (!exists)
        return sdo_fail(err, SDO_NOT_FOUND, "database server 'databaseServers/%s' does not exist",
                        id);
    return sdo_fail(err, SDO_FAILED_PRECONDITION,
                    "database server 'databaseServers/%s' still holds tenants; migrate them away "
                    "first (drain it with accepting_tenants = false)",
                    id);
}

int store_server_count(store *st, PGconn *c, int *n, sdo_error *err)
{
    PGresult *r = store_exec(st, c, "SELECT count(*) FROM database_servers", 0, NULL, err, NULL);
    if (!r)
        return failed(err);
    *n = store_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

#define SERVER_MSG_COLS                                                                            \
    "s.id, s.display_name, s.host, s.port, s.kind, s.capacity, " LOAD_SQL ", s.accepting,"         \
    " s.tenant, " US("s.create_time") ", " US("s.update_time") ", s.version, s.seq"

static Saasodoo__V1__DatabaseServer *server_message(const PGresult *r, int i)
{
    Saasodoo__V1__DatabaseServer *m = sdo_malloc(sizeof *m);
    saasodoo__v1__database_server__init(m);
    size_t n = strlen(PQgetvalue(r, i, 0)) + 17;
    m->name = sdo_malloc(n);
    snprintf(m->name, n, "databaseServers/%s", PQgetvalue(r, i, 0));
    m->display_name = store_get_str(r, i, 1);
    m->host = store_get_str(r, i, 2);
    m->port = store_get_int(r, i, 3);
    m->kind = strcmp(PQgetvalue(r, i, 4), "DEDICATED") == 0
                  ? SAASODOO__V1__DATABASE_SERVER__KIND__DEDICATED
                  : SAASODOO__V1__DATABASE_SERVER__KIND__SHARED;
    m->capacity = store_get_int(r, i, 5);
    m->tenant_count = store_get_int(r, i, 6);
    m->accepting_tenants = store_get_bool(r, i, 7);
    if (PQgetvalue(r, i, 8)[0]) {
        size_t tn = strlen(PQgetvalue(r, i, 8)) + 9;
        m->tenant = sdo_malloc(tn);
        snprintf(m->tenant, tn, "tenants/%s", PQgetvalue(r, i, 8));
    }
    m->create_time = ts_from_us(store_get_i64(r, i, 9));
    m->update_time = ts_from_us(store_get_i64(r, i, 10));
    char etag[32];
    snprintf(etag, sizeof etag, "v%" PRId64, store_get_i64(r, i, 11));
    m->etag = sdo_strdup(etag);
    return m;
}

int store_server_list(store *st, PGconn *c, const char *kind, int accepting, int64_t after_seq,
                      int limit, Saasodoo__V1__DatabaseServer ***out, size_t *n, int64_t *last,
                      bool *more, sdo_error *err)
{
    char after[24], lim[16];
    snprintf(after, sizeof after, "%" PRId64, after_seq);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[] = {kind, accepting < 0 ? NULL : accepting ? "true" : "false", after, lim};
    PGresult *r = store_exec(st, c,
                             "SELECT " SERVER_MSG_COLS " FROM database_servers s WHERE"
                             " ($1::text IS NULL OR s.kind = $1) AND"
                             " ($2::boolean IS NULL OR s.accepting = $2) AND s.seq > $3"
                             " ORDER BY s.seq LIMIT $4",
                             4, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    *more = rows > limit;
    if (*more)
        rows = limit;
    *out = sdo_calloc((size_t)rows, sizeof **out);
    *n = 0;
    for (int i = 0; i < rows; i++) {
        (*out)[(*n)++] = server_message(r, i);
        *last = store_get_i64(r, i, 12);
    }
    PQclear(r);
    return 0;
}

int store_server_message(store *st, PGconn *c, const char *id, Saasodoo__V1__DatabaseServer **out,
                         sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r =
        store_exec(st, c, "SELECT " SERVER_MSG_COLS " FROM database_servers s WHERE s.id = $1", 1,
                   p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc =
            sdo_fail(err, SDO_NOT_FOUND, "database server 'databaseServers/%s' does not exist", id);
    else
        *out = server_message(r, 0);
    PQclear(r);
    return rc;
}

int store_server_update(store *st, PGconn *c, const char *id, int64_t version,
                        const char *display_name, int capacity, int accepting, sdo_error *err)
{
    char ver[24], cap[16];
    snprintf(ver, sizeof ver, "%" PRId64, version);
    snprintf(cap, sizeof cap, "%d", capacity);
    const char *p[] = {id, ver, display_name, capacity < 0 ? NULL : cap,
                       accepting < 0 ? NULL
                       : accepting   ? "true"
                                     : "false"};
    PGresult *r =
        store_exec(st, c,
                   "UPDATE database_servers SET display_name = coalesce($3, display_name),"
                   " capacity = coalesce($4::integer, capacity),"
                   " accepting = coalesce($5::boolean, accepting), version = version + 1,"
                   " update_time = clock_timestamp()"
                   " WHERE id = $1 AND ($2::bigint < 0 OR version = $2::bigint)",
                   5, p, err, NULL);
    if (!r)
        return failed(err);
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

/* ---- tenants --------------------------------------------------------------------------- */

int store_tenant_rec_get(store *st, PGconn *c, const secret_key *k, const char *id, bool lock,
                         tenant_rec *out, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r = store_exec(st, c,
                             lock ? "SELECT t.id, t.plan_id, t.state, t.database_strategy,"
                                    " t.database_server, t.db_name, t.db_role, t.odoo_version,"
                                    " t.db_password_enc, t.app_port, p.odoo_workers,"
                                    " p.max_db_connections FROM tenants t JOIN plans p ON"
                                    " p.id = t.plan_id WHERE t.id = $1 FOR UPDATE OF t"
                                  : "SELECT t.id, t.plan_id, t.state, t.database_strategy,"
                                    " t.database_server, t.db_name, t.db_role, t.odoo_version,"
                                    " t.db_password_enc, t.app_port, p.odoo_workers,"
                                    " p.max_db_connections FROM tenants t JOIN plans p ON"
                                    " p.id = t.plan_id WHERE t.id = $1",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (PQntuples(r) == 0) {
        rc = sdo_fail(err, SDO_NOT_FOUND, "tenant 'tenants/%s' does not exist", id);
    } else {
        copy_str(out->id, sizeof out->id, r, 0, 0);
        copy_str(out->plan_id, sizeof out->plan_id, r, 0, 1);
        copy_str(out->state, sizeof out->state, r, 0, 2);
        copy_str(out->strategy, sizeof out->strategy, r, 0, 3);
        copy_str(out->server, sizeof out->server, r, 0, 4);
        copy_str(out->db_name, sizeof out->db_name, r, 0, 5);
        copy_str(out->db_role, sizeof out->db_role, r, 0, 6);
        copy_str(out->odoo_version, sizeof out->odoo_version, r, 0, 7);
        if (!PQgetisnull(r, 0, 8)) {
            size_t len = 0;
            unsigned char *blob = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 8), &len);
            if (blob) {
                rc = secret_open(k, blob, len, &out->password, err);
                PQfreemem(blob);
            }
        }
        out->app_port = store_get_int(r, 0, 9);
        out->workers = store_get_int(r, 0, 10);
        out->max_conn = store_get_int(r, 0, 11);
    }
    PQclear(r);
    return rc;
}

static int exec_n(store *st, PGconn *c, const char *sql, int n, const char *const *p,
                  sdo_error *err)
{
    PGresult *r = store_exec(st, c, sql, n, p, err, NULL);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_tenant_set_server(store *st, PGconn *c, const char *id, const char *server,
                            const char *strategy, sdo_error *err)
{
    const char *p[] = {id, server, strategy};
    return exec_n(st, c,
                  "UPDATE tenants SET database_server = $2,"
                  " database_strategy = coalesce($3, database_strategy), version = version + 1,"
                  " update_time = clock_timestamp() WHERE id = $1",
                  3, p, err);
}

int store_tenant_set_db(store *st, PGconn *c, const secret_key *k, const char *id,
                        const char *db_name, const char *db_role, const char *password,
                        sdo_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (password && secret_seal(k, password, &sealed, &sealed_len) < 0)
        return sdo_fail(err, SDO_INTERNAL, "cannot seal the tenant's password");
    const char *p[] = {id, db_name, db_role, (const char *)sealed};
    int len[] = {0, 0, 0, (int)sealed_len};
    int fmt[] = {0, 0, 0, 1};
    PGresult *r = store_exec_bin(st, c,
                                 "UPDATE tenants SET db_name = $2, db_role = $3,"
                                 " db_password_enc = $4 WHERE id = $1",
                                 4, p, len, fmt, err, NULL);
    free(sealed);
    if (!r)
        return failed(err);
    PQclear(r);
    return 0;
}

int store_tenant_set_app_port(store *st, PGconn *c, const char *id, int port, sdo_error *err)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *p[] = {id, ps};
    return exec_n(st, c, "UPDATE tenants SET app_port = $2::integer WHERE id = $1", 2, p, err);
}

int store_tenant_mark_deleted(store *st, PGconn *c, const char *id, sdo_error *err)
{
    const char *p[] = {id};
    return exec_n(st, c,
                  "UPDATE tenants SET state = 'DELETED', state_reason = '', database_server = '',"
                  " db_password_enc = NULL, app_port = 0, delete_time = clock_timestamp(),"
                  " version = version + 1, update_time = clock_timestamp() WHERE id = $1",
                  1, p, err);
}

static int id_list(store *st, PGconn *c, const char *sql, char ***ids, size_t *n, sdo_error *err)
{
    PGresult *r = store_exec(st, c, sql, 0, NULL, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    *ids = sdo_calloc((size_t)rows, sizeof **ids);
    for (int i = 0; i < rows; i++)
        (*ids)[i] = store_get_str(r, i, 0);
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

int store_tenant_live_ids(store *st, PGconn *c, char ***ids, size_t *n, sdo_error *err)
{
    return id_list(st, c, "SELECT id FROM tenants WHERE state <> 'DELETED' ORDER BY id", ids, n,
                   err);
}

int store_tenant_known_ids(store *st, PGconn *c, char ***ids, size_t *n, sdo_error *err)
{
    return id_list(st, c, "SELECT id FROM tenants ORDER BY id", ids, n, err);
}

/* ---- operation steps ------------------------------------------------------------------- */

/* Advisory lock namespace of live servers: lease_owner values are locked by their server
 * for its whole life (pg_advisory_lock(7361, owner)), so a dead server's leases lapse the
 * moment its session ends. */
#define OP_COLS_ENGINE                                                                             \
    "o.id, o.kind, o.target, o.state, o.step_index, o.compensating, o.attempt, o.error_code,"      \
    " o.error_message, o.params::text"

static void op_from_row(const PGresult *r, int i, op_rec *o)
{
    memset(o, 0, sizeof *o);
    copy_str(o->id, sizeof o->id, r, i, 0);
    copy_str(o->kind, sizeof o->kind, r, i, 1);
    copy_str(o->target, sizeof o->target, r, i, 2);
    copy_str(o->state, sizeof o->state, r, i, 3);
    o->step_index = store_get_int(r, i, 4);
    o->compensating = store_get_bool(r, i, 5);
    o->attempt = store_get_int(r, i, 6);
    o->error_code = store_get_int(r, i, 7);
    copy_str(o->error_message, sizeof o->error_message, r, i, 8);
    o->params = store_get_str(r, i, 9);
}

int store_op_claim(store *st, PGconn *c, int owner, op_rec *out, sdo_error *err)
{
    char own[16];
    snprintf(own, sizeof own, "%d", owner);
    const char *p[] = {own};
    PGresult *r =
        store_exec(st, c,
                   "UPDATE operations o SET lease_owner = $1::integer,"
                   " state = CASE WHEN o.state = 'PENDING' THEN 'RUNNING' ELSE o.state END,"
                   " update_time = clock_timestamp()"
                   " FROM (SELECT id FROM operations c WHERE NOT c.done"
                   "   AND c.next_run_at <= clock_timestamp()"
                   "   AND (c.lease_owner = 0 OR NOT EXISTS (SELECT 1 FROM pg_locks l"
                   "     WHERE l.locktype = 'advisory' AND l.classid = 7361 AND l.objsubid = 2"
                   "     AND l.granted AND l.objid::text::bigint = c.lease_owner))"
                   "   ORDER BY c.seq LIMIT 1 FOR UPDATE SKIP LOCKED) pick"
                   " WHERE o.id = pick.id RETURNING " OP_COLS_ENGINE,
                   1, p, err, NULL);
    if (!r)
        return failed(err);
    int found = PQntuples(r) > 0;
    if (found)
        op_from_row(r, 0, out);
    PQclear(r);
    return found;
}

int store_op_reload(store *st, PGconn *c, op_rec *o, sdo_error *err)
{
    const char *p[] = {o->id};
    PGresult *r =
        store_exec(st, c, "SELECT " OP_COLS_ENGINE " FROM operations o WHERE o.id = $1::uuid", 1, p,
                   err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0) {
        rc = sdo_fail(err, SDO_NOT_FOUND, "operation %s vanished", o->id);
    } else {
        op_rec_free(o);
        op_from_row(r, 0, o);
    }
    PQclear(r);
    return rc;
}

int store_op_progress(store *st, PGconn *c, const char *id, const char *step, int progress,
                      sdo_error *err)
{
    char pr[16];
    snprintf(pr, sizeof pr, "%d", progress);
    const char *p[] = {id, step, pr};
    return exec_n(st, c,
                  "UPDATE operations SET step = $2, progress = $3::integer,"
                  " update_time = clock_timestamp() WHERE id = $1::uuid",
                  3, p, err);
}

int store_op_advance(store *st, PGconn *c, const char *id, int step_index, bool compensating,
                     int progress, int attempt, int error_code, const char *error_message,
                     sdo_error *err)
{
    char si[16], pr[16], at[16], ec[16];
    snprintf(si, sizeof si, "%d", step_index);
    snprintf(pr, sizeof pr, "%d", progress);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ec, sizeof ec, "%d", error_code);
    const char *p[] = {id, si, compensating ? "true" : "false", pr, at, ec, error_message};
    return exec_n(st, c,
                  "UPDATE operations SET step_index = $2::integer, compensating = $3::boolean,"
                  " progress = $4::integer, attempt = $5::integer,"
                  " error_code = CASE WHEN $6::integer <> 0 THEN $6::integer ELSE error_code END,"
                  " error_message = CASE WHEN $6::integer <> 0 THEN $7 ELSE error_message END,"
                  " update_time = clock_timestamp() WHERE id = $1::uuid",
                  7, p, err);
}

int store_op_retry_later(store *st, PGconn *c, const char *id, int attempt, int delay_ms,
                         const char *step, sdo_error *err)
{
    char at[16], d[16];
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(d, sizeof d, "%d", delay_ms);
    const char *p[] = {id, at, d, step};
    return exec_n(st, c,
                  "UPDATE operations SET attempt = $2::integer, lease_owner = 0, step = $4,"
                  " next_run_at = clock_timestamp() + make_interval(secs => $3::integer / 1000.0),"
                  " update_time = clock_timestamp() WHERE id = $1::uuid",
                  4, p, err);
}

int store_op_set_param(store *st, PGconn *c, const char *id, const char *key, const char *value,
                       sdo_error *err)
{
    const char *p[] = {id, key, value};
    return exec_n(st, c,
                  "UPDATE operations SET params = jsonb_set(params, ARRAY[$2], to_jsonb($3::text))"
                  " WHERE id = $1::uuid",
                  3, p, err);
}

int store_op_finish(store *st, PGconn *c, const char *id, const char *state, int error_code,
                    const char *error_message, const char *result, sdo_error *err)
{
    char ec[16];
    snprintf(ec, sizeof ec, "%d", error_code);
    const char *p[] = {id, state, ec, error_message, result};
    return exec_n(st, c,
                  "UPDATE operations SET state = $2, done = true, lease_owner = 0,"
                  " error_code = $3::integer, error_message = $4, result = $5,"
                  " progress = CASE WHEN $2 = 'SUCCEEDED' THEN 100 ELSE progress END,"
                  " step = CASE WHEN $2 = 'SUCCEEDED' THEN 'done' WHEN $2 = 'CANCELLED' THEN"
                  " 'cancelled' ELSE 'failed' END,"
                  " update_time = clock_timestamp() WHERE id = $1::uuid",
                  5, p, err);
}

char *op_param(const char *params, const char *key)
{
    if (!params)
        return NULL;
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *s = strstr(params, pat);
    if (!s)
        return NULL;
    s += strlen(pat);
    const char *e = strchr(s, '"');
    if (!e)
        return NULL;
    return strndup(s, (size_t)(e - s));
}
