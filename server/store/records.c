/* Rows of the control-plane tables as saasodoo.v1 messages. Values always travel as query
 * parameters; enum values are stored by their proto names. */
#include "store/records.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define US(col) "(extract(epoch from " col ") * 1000000)::bigint"

Google__Protobuf__Timestamp *ts_from_us(int64_t us)
{
    Google__Protobuf__Timestamp *t = sdo_malloc(sizeof *t);
    google__protobuf__timestamp__init(t);
    int64_t s = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        s -= 1;
    }
    t->seconds = s;
    t->nanos = (int32_t)(rem * 1000);
    return t;
}

static int enum_value(const ProtobufCEnumDescriptor *d, const char *name)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
    return v ? v->value : 0;
}

static char *prefixed(const char *prefix, const char *id)
{
    size_t n = strlen(prefix) + strlen(id) + 1;
    char *s = sdo_malloc(n);
    snprintf(s, n, "%s%s", prefix, id);
    return s;
}

/* Returns a failure for a query whose result is NULL. */
static int failed(sdo_error *err)
{
    return -(int)(err && err->code ? err->code : SDO_INTERNAL);
}

/* ---- plans --------------------------------------------------------------------------- */

int store_plans_upsert(store *st, Saasodoo__V1__Plan *const *plans, size_t n, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_begin(st, c, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Saasodoo__V1__Plan *p = plans[i];
        char v[10][24];
        snprintf(v[0], 24, "%d", p->cpu_millicores);
        snprintf(v[1], 24, "%d", p->memory_mb);
        snprintf(v[2], 24, "%d", p->storage_gb);
        snprintf(v[3], 24, "%d", p->max_db_connections);
        snprintf(v[4], 24, "%d", p->odoo_workers);
        snprintf(v[5], 24, "%d", p->backup_retention_days);
        snprintf(v[6], 24, "%" PRId64, p->price->amount_minor);
        snprintf(v[7], 24, "%d", p->trial_days);
        snprintf(v[8], 24, "%zu", i);
        const char *params[] = {p->name + 6,
                                p->display_name,
                                p->description,
                                p->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED
                                    ? "DEDICATED"
                                    : "SHARED",
                                v[0],
                                v[1],
                                v[2],
                                v[3],
                                v[4],
                                v[5],
                                v[6],
                                p->price->currency_code,
                                p->billing_period,
                                v[7],
                                v[8]};
        PGresult *r = store_exec(
            st, c,
            "INSERT INTO plans (id, display_name, description, database_strategy, cpu_millicores,"
            " memory_mb, storage_gb, max_db_connections, odoo_workers, backup_retention_days,"
            " price_minor, currency, billing_period, trial_days, sort_order)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
            " ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name,"
            " description = EXCLUDED.description, database_strategy = EXCLUDED.database_strategy,"
            " cpu_millicores = EXCLUDED.cpu_millicores, memory_mb = EXCLUDED.memory_mb,"
            " storage_gb = EXCLUDED.storage_gb, max_db_connections = EXCLUDED.max_db_connections,"
            " odoo_workers = EXCLUDED.odoo_workers,"
            " backup_retention_days = EXCLUDED.backup_retention_days,"
            " price_minor = EXCLUDED.price_minor, currency = EXCLUDED.currency,"
            " billing_period = EXCLUDED.billing_period, trial_days = EXCLUDED.trial_days,"
            " sort_order = EXCLUDED.sort_order, update_time = clock_timestamp()",
            15, params, err, NULL);
        if (!r)
            rc = failed(err);
        PQclear(r);
    }
    if (rc == 0)
        rc = store_commit(st, c, err);
    store_release(st, c);
    return rc;
}

#define PLAN_COLS                                                                                  \
    "id, display_name, description, database_strategy, cpu_millicores, memory_mb, storage_gb,"     \
    " max_db_connections, odoo_workers, backup_retention_days, price_minor, currency,"             \
    " billing_period, trial_days"

static Saasodoo__V1__Plan *plan_from_row(const PGresult *r, int i)
{
    Saasodoo__V1__Plan *p = sdo_malloc(sizeof *p);
    saasodoo__v1__plan__init(p);
    p->name = prefixed("plans/", PQgetvalue(r, i, 0));
    p->display_name = store_get_str(r, i, 1);
    p->description = store_get_str(r, i, 2);
    p->database_strategy = (Saasodoo__V1__DatabaseStrategy)enum_value(
        &saasodoo__v1__database_strategy__descriptor, PQgetvalue(r, i, 3));
    p->cpu_millicores = store_get_int(r, i, 4);
    p->memory_mb = store_get_int(r, i, 5);
    p->storage_gb = store_get_int(r, i, 6);
    p->max_db_connections = store_get_int(r, i, 7);
    p->odoo_workers = store_get_int(r, i, 8);
    p->backup_retention_days = store_get_int(r, i, 9);
    p->price = sdo_malloc(sizeof *p->price);
    saasodoo__v1__money__init(p->price);
    p->price->amount_minor = store_get_i64(r, i, 10);
    p->price->currency_code = store_get_str(r, i, 11);
    p->billing_period = store_get_str(r, i, 12);
    p->trial_days = store_get_int(r, i, 13);
    return p;
}

int store_plan_get(store *st, PGconn *c, const char *id, Saasodoo__V1__Plan **out, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r =
        store_exec(st, c, "SELECT " PLAN_COLS " FROM plans WHERE id = $1", 1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "plan 'plans/%s' does not exist", id);
    else
        *out = plan_from_row(r, 0);
    PQclear(r);
    return rc;
}

char *store_plan_ids(store *st, PGconn *c)
{
    PGresult *r = store_exec(st, c,
                             "SELECT string_agg('plans/' || id, ', ' ORDER BY sort_order, id)"
                             " FROM plans",
                             0, NULL, NULL, NULL);
    char *s = r && PQntuples(r) ? store_get_str(r, 0, 0) : sdo_strdup("");
    PQclear(r);
    return s;
}

/* ---- tenants ------------------------------------------------------------------------- */

#define TENANT_COLS                                                                                \
    "id, display_name, owner, plan_id, state, state_reason, database_strategy,"                    \
    " database_server, url, odoo_version,"                                                         \
    " labels::text,"                                                                               \
    " version, " US("create_time") ", " US("update_time") ", " US("delete_time") ", seq"

int store_tenant_purge_deleted(store *st, PGconn *c, const char *id, int days, sdo_error *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", days);
    const char *p[] = {id, d};
    PGresult *r =
        store_exec(st, c,
                   "DELETE FROM tenants WHERE id = $1 AND state = 'DELETED' AND"
                   " delete_time < clock_timestamp() - make_interval(days => $2::integer)",
                   2, p, err, NULL);
    if (!r)
        return failed(err);
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

void tenant_etag(int64_t version, char *out, size_t outsz)
{
    snprintf(out, outsz, "v%" PRId64, version);
}

int64_t tenant_etag_parse(const char *etag)
{
    if (etag[0] != 'v' || !etag[1])
        return -1;
    char *end;
    long long v = strtoll(etag + 1, &end, 10);
    return *end || v < 0 ? -1 : v;
}

/* Labels come back as jsonb text, {"k": "v", ...}: keys and values are validated to hold
 * no character JSON escapes, so the strings can be taken between quotes as they are. */
static void labels_from_json(Saasodoo__V1__Tenant *t, const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == ':';
    if (n == 0)
        return;
    t->labels = sdo_calloc(n, sizeof *t->labels);
    const char *p = text;
    while (t->n_labels < n) {
        const char *k = strchr(p, '"');
        const char *ke = k ? strchr(k + 1, '"') : NULL;
        const char *v = ke ? strchr(ke + 1, '"') : NULL;
        const char *ve = v ? strchr(v + 1, '"') : NULL;
        if (!ve)
            break;
        Saasodoo__V1__Tenant__LabelsEntry *e = sdo_malloc(sizeof *e);
        saasodoo__v1__tenant__labels_entry__init(e);
        e->key = strndup(k + 1, (size_t)(ke - k - 1));
        e->value = strndup(v + 1, (size_t)(ve - v - 1));
        if (!e->key || !e->value)
            abort();
        t->labels[t->n_labels++] = e;
        p = ve + 1;
    }
}

static Saasodoo__V1__Tenant *tenant_from_row(const PGresult *r, int i)
{
    Saasodoo__V1__Tenant *t = sdo_malloc(sizeof *t);
    saasodoo__v1__tenant__init(t);
    t->name = prefixed("tenants/", PQgetvalue(r, i, 0));
    t->display_name = store_get_str(r, i, 1);
    t->owner = store_get_str(r, i, 2);
    t->plan = prefixed("plans/", PQgetvalue(r, i, 3));
    t->state = (Saasodoo__V1__Tenant__State)enum_value(&saasodoo__v1__tenant__state__descriptor,
                                                       PQgetvalue(r, i, 4));
    t->state_reason = store_get_str(r, i, 5);
    t->database_strategy = (Saasodoo__V1__DatabaseStrategy)enum_value(
        &saasodoo__v1__database_strategy__descriptor, PQgetvalue(r, i, 6));
    t->database_server = PQgetvalue(r, i, 7)[0] ? prefixed("databaseServers/", PQgetvalue(r, i, 7))
                                                : store_get_str(r, i, 7);
    t->url = store_get_str(r, i, 8);
    t->odoo_version = store_get_str(r, i, 9);
    labels_from_json(t, PQgetvalue(r, i, 10));
    char etag[32];
    tenant_etag(store_get_i64(r, i, 11), etag, sizeof etag);
    t->etag = sdo_strdup(etag);
    t->create_time = ts_from_us(store_get_i64(r, i, 12));
    t->update_time = ts_from_us(store_get_i64(r, i, 13));
    if (!PQgetisnull(r, i, 14))
        t->delete_time = ts_from_us(store_get_i64(r, i, 14));
    return t;
}

int store_tenant_get(store *st, PGconn *c, const char *id, bool for_update,
                     Saasodoo__V1__Tenant **out, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r = store_exec(st, c,
                             for_update ? "SELECT " TENANT_COLS " FROM tenants WHERE id = $1"
                                          " FOR UPDATE"
                                        : "SELECT " TENANT_COLS " FROM tenants WHERE id = $1",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "tenant 'tenants/%s' does not exist", id);
    else
        *out = tenant_from_row(r, 0);
    PQclear(r);
    return rc;
}

int store_tenant_insert(store *st, PGconn *c, const tenant_row *row, Saasodoo__V1__Tenant **out,
                        sdo_error *err)
{
    const char *p[] = {row->id,      row->display_name, row->owner,
                       row->plan_id, row->state,        row->strategy,
                       row->url,     row->odoo_version, row->labels_json};
    PGresult *r = store_exec(
        st, c,
        "INSERT INTO tenants (id, display_name, owner, plan_id, state, database_strategy, url,"
        " odoo_version, labels) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb)"
        " ON CONFLICT (id) DO NOTHING RETURNING " TENANT_COLS,
        9, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = PQntuples(r) == 1;
    if (rc)
        *out = tenant_from_row(r, 0);
    PQclear(r);
    return rc;
}

#define TENANT_FILTER                                                                              \
    " ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR owner = $2)"                       \
    " AND ($3::text IS NULL OR plan_id = $3) AND ($4::text IS NULL OR database_strategy = $4)"     \
    " AND ($5::boolean OR state <> 'DELETED')"

int store_tenant_list(store *st, PGconn *c, const tenant_query *q, Saasodoo__V1__Tenant ***out,
                      size_t *n, int64_t *last_seq, bool *more, sdo_error *err)
{
    char after[24], limit[16];
    snprintf(after, sizeof after, "%" PRId64, q->after_seq);
    snprintf(limit, sizeof limit, "%d", q->limit + 1);
    const char *p[] = {
        q->state, q->owner, q->plan_id, q->strategy, q->show_deleted ? "true" : "false",
        after,    limit};
    PGresult *r = store_exec(st, c,
                             "SELECT " TENANT_COLS " FROM tenants WHERE" TENANT_FILTER
                             " AND seq > $6 ORDER BY seq LIMIT $7",
                             7, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    *more = rows > q->limit;
    if (*more)
        rows = q->limit;
    *out = sdo_calloc((size_t)rows, sizeof **out);
    *n = 0;
    for (int i = 0; i < rows; i++) {
        (*out)[(*n)++] = tenant_from_row(r, i);
        *last_seq = store_get_i64(r, i, 15);
    }
    PQclear(r);
    return 0;
}

int store_tenant_count(store *st, PGconn *c, const tenant_query *q, int *total, sdo_error *err)
{
    const char *p[] = {q->state, q->owner, q->plan_id, q->strategy,
                       q->show_deleted ? "true" : "false"};
    PGresult *r =
        store_exec(st, c, "SELECT count(*) FROM tenants WHERE" TENANT_FILTER, 5, p, err, NULL);
    if (!r)
        return failed(err);
    *total = store_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int store_tenant_update(store *st, PGconn *c, const char *id, int64_t etag_version,
                        const char *display_name, const char *labels_json,
                        Saasodoo__V1__Tenant **out, sdo_error *err)
{
    char ver[24];
    snprintf(ver, sizeof ver, "%" PRId64, etag_version);
    const char *p[] = {id, ver, display_name, labels_json};
    PGresult *r = store_exec(
        st, c,
        "UPDATE tenants SET display_name = coalesce($3, display_name),"
        " labels = coalesce($4::jsonb, labels), version = version + 1,"
        " update_time = clock_timestamp()"
        " WHERE id = $1 AND ($2::bigint < 0 OR version = $2::bigint) RETURNING " TENANT_COLS,
        4, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = PQntuples(r) == 1;
    if (rc)
        *out = tenant_from_row(r, 0);
    PQclear(r);
    return rc;
}

int store_tenant_set_state(store *st, PGconn *c, const char *id, const char *from, const char *to,
                           const char *reason, sdo_error *err)
{
    const char *p[] = {id, from, to, reason};
    PGresult *r =
        store_exec(st, c,
                   "UPDATE tenants SET state = $3, state_reason = coalesce($4, state_reason),"
                   " version = version + 1, update_time = clock_timestamp()"
                   " WHERE id = $1 AND ($2::text IS NULL OR state = $2)",
                   4, p, err, NULL);
    if (!r)
        return failed(err);
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

/* ---- operations ---------------------------------------------------------------------- */

#define OP_COLS                                                                                    \
    "id, kind, target, state, done, progress, step, error_code, error_message, result,"            \
    " requester, request_id, " US("create_time") ", " US("update_time") ", seq"

static Saasodoo__V1__Operation *op_from_row(const PGresult *r, int i)
{
    Saasodoo__V1__Operation *o = sdo_malloc(sizeof *o);
    saasodoo__v1__operation__init(o);
    o->name = prefixed("operations/", PQgetvalue(r, i, 0));
    o->kind = (Saasodoo__V1__Operation__Kind)enum_value(&saasodoo__v1__operation__kind__descriptor,
                                                        PQgetvalue(r, i, 1));
    o->target = store_get_str(r, i, 2);
    o->state = (Saasodoo__V1__Operation__State)enum_value(
        &saasodoo__v1__operation__state__descriptor, PQgetvalue(r, i, 3));
    o->done = store_get_bool(r, i, 4);
    o->progress_percent = store_get_int(r, i, 5);
    o->step = store_get_str(r, i, 6);
    int code = store_get_int(r, i, 7);
    if (code != 0) {
        o->error = sdo_malloc(sizeof *o->error);
        saasodoo__v1__operation_error__init(o->error);
        o->error->code = code;
        o->error->message = store_get_str(r, i, 8);
    }
    o->result = store_get_str(r, i, 9);
    o->requester = store_get_str(r, i, 10);
    o->request_id = store_get_str(r, i, 11);
    o->create_time = ts_from_us(store_get_i64(r, i, 12));
    o->update_time = ts_from_us(store_get_i64(r, i, 13));
    return o;
}

int store_op_insert(store *st, PGconn *c, const op_row *row, Saasodoo__V1__Operation **out,
                    sdo_error *err)
{
    const char *p[] = {
        row->id,   row->kind,      row->target,     row->state,
        row->step, row->requester, row->request_id, row->params_json ? row->params_json : "{}"};
    char state[6];
    PGresult *r = store_exec(st, c,
                             "INSERT INTO operations (id, kind, target, state, step, requester,"
                             " request_id, params) VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb)"
                             " RETURNING " OP_COLS,
                             8, p, err, state);
    if (!r && strcmp(state, "23505") == 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "'%s' already has an operation running; wait for it or cancel it",
                        row->target);
    if (!r)
        return failed(err);
    *out = op_from_row(r, 0);
    PQclear(r);
    return 0;
}

int store_op_get(store *st, PGconn *c, const char *id, bool for_update,
                 Saasodoo__V1__Operation **out, sdo_error *err)
{
    const char *p[] = {id};
    PGresult *r = store_exec(st, c,
                             for_update ? "SELECT " OP_COLS " FROM operations WHERE id = $1::uuid"
                                          " FOR UPDATE"
                                        : "SELECT " OP_COLS " FROM operations WHERE id = $1::uuid",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "operation 'operations/%s' does not exist", id);
    else
        *out = op_from_row(r, 0);
    PQclear(r);
    return rc;
}

int store_op_list(store *st, PGconn *c, const op_query *q, Saasodoo__V1__Operation ***out,
                  size_t *n, int64_t *last_seq, bool *more, sdo_error *err)
{
    char before[24], limit[16];
    snprintf(before, sizeof before, "%" PRId64, q->before_seq);
    snprintf(limit, sizeof limit, "%d", q->limit + 1);
    const char *p[] = {q->target, q->kind, q->done < 0 ? NULL : q->done ? "true" : "false",
                       before,    limit,   q->owner};
    PGresult *r =
        store_exec(st, c,
                   "SELECT " OP_COLS " FROM operations WHERE"
                   " ($1::text IS NULL OR target = $1) AND ($2::text IS NULL OR kind = $2)"
                   " AND ($3::boolean IS NULL OR done = $3)"
                   " AND ($4::bigint = 0 OR seq < $4)"
                   " AND ($6::text IS NULL OR target IN (SELECT 'tenants/' || id FROM tenants"
                   " WHERE owner = $6))"
                   " ORDER BY seq DESC LIMIT $5",
                   6, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    *more = rows > q->limit;
    if (*more)
        rows = q->limit;
    *out = sdo_calloc((size_t)rows, sizeof **out);
    *n = 0;
    for (int i = 0; i < rows; i++) {
        (*out)[(*n)++] = op_from_row(r, i);
        *last_seq = store_get_i64(r, i, 14);
    }
    PQclear(r);
    return 0;
}

int store_op_set_state(store *st, PGconn *c, const char *id, const char *state, bool done,
                       int error_code, const char *error_message, Saasodoo__V1__Operation **out,
                       sdo_error *err)
{
    char code[16];
    snprintf(code, sizeof code, "%d", error_code);
    const char *p[] = {id, state, done ? "true" : "false", code, error_message};
    PGresult *r = store_exec(st, c,
                             "UPDATE operations SET state = $2, done = $3::boolean,"
                             " error_code = $4::integer, error_message = $5,"
                             " update_time = clock_timestamp()"
                             " WHERE id = $1::uuid RETURNING " OP_COLS,
                             5, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "operation 'operations/%s' does not exist", id);
    else if (out)
        *out = op_from_row(r, 0);
    PQclear(r);
    return rc;
}

int store_op_running_on(store *st, PGconn *c, const char *target, Saasodoo__V1__Operation **out,
                        sdo_error *err)
{
    const char *p[] = {target};
    PGresult *r =
        store_exec(st, c, "SELECT " OP_COLS " FROM operations WHERE target = $1 AND NOT done", 1, p,
                   err, NULL);
    if (!r)
        return failed(err);
    int found = PQntuples(r) > 0;
    if (found)
        *out = op_from_row(r, 0);
    PQclear(r);
    return found;
}

/* ---- responses by request id --------------------------------------------------------- */

int store_request_replay(store *st, PGconn *c, const request_key *rk,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                         sdo_error *err)
{
    if (!rk || !rk->request_id || !rk->request_id[0])
        return 0;
    char method[160];
    unsigned char hash[32];
    unsigned char *resp = NULL;
    size_t len = 0;
    int found =
        store_request_lookup(st, c, rk->request_id, method, sizeof method, hash, &resp, &len, err);
    if (found <= 0)
        return found;
    int rc = 1;
    if (strcmp(method, rk->method) != 0 || memcmp(hash, rk->hash, 32) != 0) {
        sdo_fail_field(err, "request_id",
                       "request_id '%s' was already used for a different request; use a new "
                       "request_id for a new request",
                       rk->request_id);
        sdo_error_reason(err, "REQUEST_ID_REUSED");
        rc = -SDO_INVALID_ARGUMENT;
    } else {
        *out = protobuf_c_message_unpack(desc, NULL, len, resp);
        if (!*out)
            rc = sdo_fail(err, SDO_INTERNAL,
                          "the stored response of request_id '%s' is "
                          "unreadable",
                          rk->request_id);
    }
    free(resp);
    return rc;
}

int store_request_remember(store *st, PGconn *c, const request_key *rk,
                           const ProtobufCMessage *resp, sdo_error *err)
{
    if (!rk || !rk->request_id || !rk->request_id[0])
        return 1;
    size_t len = protobuf_c_message_get_packed_size(resp);
    unsigned char *buf = sdo_malloc(len);
    protobuf_c_message_pack(resp, buf);
    int rc = store_request_save(st, c, rk->request_id, rk->method, rk->hash, buf, len, err);
    free(buf);
    return rc;
}

int store_op_record(store *st, PGconn *c, const char *kind, const char *target,
                    const char *params_json, const char *requester, const request_key *rk,
                    Saasodoo__V1__Operation **out, sdo_error *err)
{
    char opid[37];
    sdo_uuid4(opid);
    op_row op = {
        .id = opid,
        .kind = kind,
        .target = target,
        .state = "PENDING",
        .step = "waiting to start",
        .requester = requester ? requester : "",
        .request_id = rk && rk->request_id ? rk->request_id : "",
        .params_json = params_json,
    };
    int rc = store_op_insert(st, c, &op, out, err);
    if (rc < 0)
        return rc;
    rc = store_request_remember(st, c, rk, &(*out)->base, err);
    if (rc == 0)
        return sdo_fail(err, SDO_ABORTED, "request_id '%s' is being used by a concurrent request",
                        rk->request_id);
    return rc < 0 ? rc : 0;
}

int store_op_check_idle(store *st, PGconn *c, const char *target, sdo_error *err)
{
    Saasodoo__V1__Operation *running = NULL;
    int rc = store_op_running_on(st, c, target, &running, err);
    if (rc == 1) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "tenant '%s' has operation '%s' (%s) running; wait for it to finish or "
                      "cancel it",
                      target, running->name,
                      store_enum_name(&saasodoo__v1__operation__kind__descriptor, running->kind));
        sdo_error_reason(err, "OPERATION_RUNNING");
        protobuf_c_message_free_unpacked(&running->base, NULL);
    }
    return rc;
}

const char *store_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    return v ? v->name : "UNKNOWN";
}

int store_request_lookup(store *st, PGconn *c, const char *request_id, char *method,
                         size_t methodsz, unsigned char hash[32], unsigned char **response,
                         size_t *response_len, sdo_error *err)
{
    const char *p[] = {request_id};
    int fmt[] = {0};
    PGresult *r = PQexecParams(c,
                               "SELECT method, request_hash, response FROM request_ids"
                               " WHERE request_id = $1",
                               1, NULL, p, NULL, fmt, 1 /* binary results */);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        /* run it through the mapping for a proper status */
        r = store_exec(st, c, "SELECT 1 FROM request_ids WHERE request_id = $1", 1, p, err, NULL);
        PQclear(r);
        return failed(err);
    }
    int found = PQntuples(r) > 0;
    if (found) {
        int ml = PQgetlength(r, 0, 0);
        snprintf(method, methodsz, "%.*s", ml, PQgetvalue(r, 0, 0));
        if (PQgetlength(r, 0, 1) == 32)
            memcpy(hash, PQgetvalue(r, 0, 1), 32);
        else
            memset(hash, 0, 32);
        *response_len = (size_t)PQgetlength(r, 0, 2);
        *response = sdo_malloc(*response_len);
        memcpy(*response, PQgetvalue(r, 0, 2), *response_len);
    }
    PQclear(r);
    return found;
}

int store_request_save(store *st, PGconn *c, const char *request_id, const char *method,
                       const unsigned char hash[32], const unsigned char *response,
                       size_t response_len, sdo_error *err)
{
    const char *p[] = {request_id, method, (const char *)hash, (const char *)response};
    int len[] = {0, 0, 32, (int)response_len};
    int fmt[] = {0, 0, 1, 1};
    PGresult *r = store_exec_bin(st, c,
                                 "INSERT INTO request_ids (request_id, method, request_hash,"
                                 " response) VALUES ($1, $2, $3, $4)"
                                 " ON CONFLICT (request_id) DO NOTHING",
                                 4, p, len, fmt, err, NULL);
    if (!r)
        return failed(err);
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

int store_request_prune(store *st, int hours, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    char h[16];
    snprintf(h, sizeof h, "%d", hours);
    const char *p[] = {h};
    PGresult *r = store_exec(st, c,
                             "DELETE FROM request_ids WHERE create_time < clock_timestamp() -"
                             " make_interval(hours => $1::integer)",
                             1, p, err, NULL);
    int rc = r ? 0 : failed(err);
    PQclear(r);
    store_release(st, c);
    return rc;
}
