/* Backup rows, parts, policy overrides and scheduler slots. Values always travel as query
 * parameters; states and triggers are stored by their proto names. */
#include "store/backups.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"

#define US(col) "(extract(epoch from " col ") * 1000000)::bigint"

static int failed(sdo_error *err)
{
    return -(int)(err && err->code ? err->code : SDO_INTERNAL);
}

static void us_text(int64_t us, char out[32])
{
    snprintf(out, 32, "%" PRId64, us);
}

/* Runs a statement whose result is not needed. */
static int exec_only(store *st, PGconn *c, const char *sql, int n, const char *const *p,
                     sdo_error *err)
{
    PGresult *r = store_exec(st, c, sql, n, p, err, NULL);
    if (!r)
        return failed(err);
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return changed;
}

int store_backup_insert(store *st, PGconn *c, const backup_row *row, sdo_error *err)
{
    char created[32];
    us_text(row->create_us, created);
    const char *p[] = {row->tenant_id, row->id,       row->trigger,      row->description,
                       row->plan_id,   row->strategy, row->odoo_version, row->storage,
                       row->prefix,    created};
    int rc = exec_only(st, c,
                       "INSERT INTO backups (tenant_id, id, state, trigger, description, plan_id,"
                       " strategy, odoo_version, storage, prefix, create_time) VALUES ($1, $2,"
                       " 'CREATING', $3, $4, $5, $6, $7, $8, $9,"
                       " to_timestamp($10::bigint / 1000000.0))",
                       10, p, err);
    return rc < 0 ? rc : 0;
}

#define REC_COLS                                                                                   \
    "tenant_id, id, state, trigger, plan_id, strategy, odoo_version, storage, prefix, " US(        \
        "create_time") ", size_bytes"

static void rec_from(const PGresult *r, int i, backup_rec *b)
{
    memset(b, 0, sizeof *b);
    sdo_strlcpy(b->tenant_id, PQgetvalue(r, i, 0), sizeof b->tenant_id);
    sdo_strlcpy(b->id, PQgetvalue(r, i, 1), sizeof b->id);
    sdo_strlcpy(b->state, PQgetvalue(r, i, 2), sizeof b->state);
    sdo_strlcpy(b->trigger, PQgetvalue(r, i, 3), sizeof b->trigger);
    sdo_strlcpy(b->plan_id, PQgetvalue(r, i, 4), sizeof b->plan_id);
    sdo_strlcpy(b->strategy, PQgetvalue(r, i, 5), sizeof b->strategy);
    sdo_strlcpy(b->odoo_version, PQgetvalue(r, i, 6), sizeof b->odoo_version);
    sdo_strlcpy(b->storage, PQgetvalue(r, i, 7), sizeof b->storage);
    sdo_strlcpy(b->prefix, PQgetvalue(r, i, 8), sizeof b->prefix);
    b->create_us = store_get_i64(r, i, 9);
    b->size_bytes = store_get_i64(r, i, 10);
}

int store_backup_get_rec(store *st, PGconn *c, const char *tenant, const char *id, bool lock,
                         backup_rec *out, sdo_error *err)
{
    const char *p[] = {tenant, id};
    PGresult *r = store_exec(st, c,
                             lock ? "SELECT " REC_COLS " FROM backups WHERE tenant_id = $1 AND"
                                    " id = $2 FOR UPDATE"
                                  : "SELECT " REC_COLS " FROM backups WHERE tenant_id = $1 AND"
                                    " id = $2",
                             2, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = sdo_fail(err, SDO_NOT_FOUND, "backup 'tenants/%s/backups/%s' does not exist", tenant,
                      id);
    else
        rec_from(r, 0, out);
    PQclear(r);
    return rc;
}

int store_backup_recs(store *st, PGconn *c, const char *tenant, const char *state, backup_rec **out,
                      size_t *n, sdo_error *err)
{
    const char *p[] = {tenant, state};
    PGresult *r =
        store_exec(st, c,
                   "SELECT " REC_COLS " FROM backups WHERE tenant_id = $1 AND"
                   " ($2::text IS NULL OR state = $2) ORDER BY create_time DESC, seq DESC",
                   2, p, err, NULL);
    if (!r)
        return failed(err);
    *n = (size_t)PQntuples(r);
    *out = sdo_calloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n; i++)
        rec_from(r, (int)i, &(*out)[i]);
    PQclear(r);
    return 0;
}

static int enum_value(const ProtobufCEnumDescriptor *d, const char *name)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
    return v ? v->value : 0;
}

#define MSG_COLS                                                                                   \
    "tenant_id, id, state, trigger, size_bytes, postgres_version, odoo_version, plan_id, " US(     \
        "create_time") ", coalesce(" US("complete_time") ", 0), last_drill, description, seq"

static Saasodoo__V1__Backup *msg_from(const PGresult *r, int i)
{
    Saasodoo__V1__Backup *b = sdo_malloc(sizeof *b);
    saasodoo__v1__backup__init(b);
    size_t n = strlen(PQgetvalue(r, i, 0)) + strlen(PQgetvalue(r, i, 1)) + 20;
    b->name = sdo_malloc(n);
    snprintf(b->name, n, "tenants/%s/backups/%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    b->state = (Saasodoo__V1__Backup__State)enum_value(&saasodoo__v1__backup__state__descriptor,
                                                       PQgetvalue(r, i, 2));
    b->trigger = (Saasodoo__V1__Backup__Trigger)enum_value(
        &saasodoo__v1__backup__trigger__descriptor, PQgetvalue(r, i, 3));
    b->size_bytes = store_get_i64(r, i, 4);
    b->postgres_version = store_get_str(r, i, 5);
    b->odoo_version = store_get_str(r, i, 6);
    const char *plan = PQgetvalue(r, i, 7);
    if (plan[0]) {
        size_t pn = strlen(plan) + 8;
        b->plan = sdo_malloc(pn);
        snprintf(b->plan, pn, "plans/%s", plan);
    } else {
        b->plan = sdo_strdup("");
    }
    b->create_time = ts_from_us(store_get_i64(r, i, 8));
    int64_t done = store_get_i64(r, i, 9);
    if (done)
        b->complete_time = ts_from_us(done);
    b->last_drill = store_get_str(r, i, 10);
    b->description = store_get_str(r, i, 11);
    return b;
}

static int attach_parts(store *st, PGconn *c, Saasodoo__V1__Backup *b, const char *tenant,
                        const char *id, sdo_error *err)
{
    backup_part_rec *parts = NULL;
    size_t n = 0;
    int rc = store_backup_parts(st, c, tenant, id, &parts, &n, err);
    if (rc < 0)
        return rc;
    if (n) {
        b->parts = sdo_calloc(n, sizeof *b->parts);
        for (size_t i = 0; i < n; i++) {
            Saasodoo__V1__BackupPart *p = sdo_malloc(sizeof *p);
            saasodoo__v1__backup_part__init(p);
            p->name = sdo_strdup(parts[i].name);
            p->size_bytes = parts[i].size;
            p->sha256 = sdo_strdup(parts[i].sha256);
            b->parts[b->n_parts++] = p;
        }
    }
    free(parts);
    return 0;
}

int store_backup_get(store *st, PGconn *c, const char *tenant, const char *id,
                     Saasodoo__V1__Backup **out, sdo_error *err)
{
    const char *p[] = {tenant, id};
    PGresult *r =
        store_exec(st, c, "SELECT " MSG_COLS " FROM backups WHERE tenant_id = $1 AND id = $2", 2, p,
                   err, NULL);
    if (!r)
        return failed(err);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sdo_fail(err, SDO_NOT_FOUND, "backup 'tenants/%s/backups/%s' does not exist", tenant,
                        id);
    }
    Saasodoo__V1__Backup *b = msg_from(r, 0);
    PQclear(r);
    int rc = attach_parts(st, c, b, tenant, id, err);
    if (rc < 0) {
        protobuf_c_message_free_unpacked(&b->base, NULL);
        return rc;
    }
    *out = b;
    return 0;
}

int store_backup_list(store *st, PGconn *c, const char *tenant, const char *state,
                      const char *trigger, int64_t before_seq, int limit,
                      Saasodoo__V1__Backup ***out, size_t *n, int64_t *last_seq, bool *more,
                      sdo_error *err)
{
    char before[32], lim[16];
    snprintf(before, sizeof before, "%" PRId64, before_seq);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[] = {tenant, state, trigger, before, lim};
    PGresult *r = store_exec(st, c,
                             "SELECT " MSG_COLS " FROM backups WHERE tenant_id = $1"
                             " AND ($2::text IS NULL OR state = $2)"
                             " AND ($3::text IS NULL OR trigger = $3)"
                             " AND ($4::bigint = 0 OR seq < $4::bigint)"
                             " ORDER BY seq DESC LIMIT $5::integer",
                             5, p, err, NULL);
    if (!r)
        return failed(err);
    int rows = PQntuples(r);
    *more = rows > limit;
    size_t count = (size_t)(*more ? limit : rows);
    *out = sdo_calloc(count ? count : 1, sizeof **out);
    *n = 0;
    *last_seq = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        Saasodoo__V1__Backup *b = msg_from(r, (int)i);
        (*out)[(*n)++] = b;
        *last_seq = store_get_i64(r, (int)i, 12);
        char *id = strrchr(b->name, '/') + 1;
        if ((rc = attach_parts(st, c, b, tenant, id, err)) < 0)
            break;
    }
    PQclear(r);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            protobuf_c_message_free_unpacked(&(*out)[i]->base, NULL);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int store_backup_set_state(store *st, PGconn *c, const char *tenant, const char *id,
                           const char *from, const char *to, const char *error, sdo_error *err)
{
    const char *p[] = {tenant, id, from, to, error};
    return exec_only(st, c,
                     "UPDATE backups SET state = $4, error = coalesce($5, error)"
                     " WHERE tenant_id = $1 AND id = $2 AND ($3::text IS NULL OR state = $3)",
                     5, p, err);
}

int store_backup_set_snapshot(store *st, PGconn *c, const char *tenant, const char *id,
                              const char *postgres_version, const char *row_counts_json,
                              sdo_error *err)
{
    const char *p[] = {tenant, id, postgres_version, row_counts_json};
    int rc = exec_only(st, c,
                       "UPDATE backups SET postgres_version = $3, row_counts = $4::jsonb"
                       " WHERE tenant_id = $1 AND id = $2",
                       4, p, err);
    return rc < 0 ? rc : 0;
}

int store_backup_put_part(store *st, PGconn *c, const char *tenant, const char *id,
                          const char *name, int ord, int64_t size, const char *sha256,
                          sdo_error *err)
{
    char o[16], sz[32];
    snprintf(o, sizeof o, "%d", ord);
    snprintf(sz, sizeof sz, "%" PRId64, size);
    const char *p[] = {tenant, id, name, o, sz, sha256};
    int rc = exec_only(st, c,
                       "INSERT INTO backup_parts (tenant_id, backup_id, name, ord, size_bytes,"
                       " sha256) VALUES ($1, $2, $3, $4::integer, $5::bigint, $6)"
                       " ON CONFLICT (tenant_id, backup_id, name) DO UPDATE SET"
                       " ord = EXCLUDED.ord, size_bytes = EXCLUDED.size_bytes,"
                       " sha256 = EXCLUDED.sha256",
                       6, p, err);
    return rc < 0 ? rc : 0;
}

int store_backup_parts(store *st, PGconn *c, const char *tenant, const char *id,
                       backup_part_rec **out, size_t *n, sdo_error *err)
{
    const char *p[] = {tenant, id};
    PGresult *r = store_exec(st, c,
                             "SELECT name, size_bytes, sha256 FROM backup_parts WHERE"
                             " tenant_id = $1 AND backup_id = $2 ORDER BY ord, name",
                             2, p, err, NULL);
    if (!r)
        return failed(err);
    *n = (size_t)PQntuples(r);
    *out = sdo_calloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        sdo_strlcpy((*out)[i].name, PQgetvalue(r, (int)i, 0), sizeof(*out)[i].name);
        (*out)[i].size = store_get_i64(r, (int)i, 1);
        sdo_strlcpy((*out)[i].sha256, PQgetvalue(r, (int)i, 2), sizeof(*out)[i].sha256);
    }
    PQclear(r);
    return 0;
}

int store_backup_snapshot(store *st, PGconn *c, const char *tenant, const char *id,
                          char **row_counts_json, char *pgv, size_t pgvsz, sdo_error *err)
{
    const char *p[] = {tenant, id};
    PGresult *r = store_exec(st, c,
                             "SELECT row_counts::text, postgres_version FROM backups WHERE"
                             " tenant_id = $1 AND id = $2",
                             2, p, err, NULL);
    if (!r)
        return failed(err);
    int rc = 0;
    if (PQntuples(r) == 0) {
        rc = sdo_fail(err, SDO_NOT_FOUND, "backup 'tenants/%s/backups/%s' does not exist", tenant,
                      id);
    } else {
        *row_counts_json = store_get_str(r, 0, 0);
        sdo_strlcpy(pgv, PQgetvalue(r, 0, 1), pgvsz);
    }
    PQclear(r);
    return rc;
}

int store_backup_complete(store *st, PGconn *c, const char *tenant, const char *id,
                          int64_t complete_us, sdo_error *err)
{
    char done[32];
    us_text(complete_us, done);
    const char *p[] = {tenant, id, done};
    return exec_only(st, c,
                     "UPDATE backups SET state = 'COMPLETE', error = '',"
                     " complete_time = to_timestamp($3::bigint / 1000000.0),"
                     " size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM backup_parts"
                     "   WHERE tenant_id = $1 AND backup_id = $2)"
                     " WHERE tenant_id = $1 AND id = $2 AND state = 'CREATING'",
                     3, p, err);
}

int store_backup_delete(store *st, PGconn *c, const char *tenant, const char *id, sdo_error *err)
{
    const char *p[] = {tenant, id};
    int rc = exec_only(st, c, "DELETE FROM backups WHERE tenant_id = $1 AND id = $2", 2, p, err);
    return rc < 0 ? rc : 0;
}

int store_backup_set_drill(store *st, PGconn *c, const char *tenant, const char *id,
                           const char *result, sdo_error *err)
{
    const char *p[] = {tenant, id, result};
    int rc = exec_only(st, c,
                       "UPDATE backups SET last_drill = $3, last_drill_time = clock_timestamp()"
                       " WHERE tenant_id = $1 AND id = $2",
                       3, p, err);
    return rc < 0 ? rc : 0;
}

/* ---- policies ---- */

int store_backup_policy_get(store *st, PGconn *c, const char *tenant, bool lock, backup_policy *out,
                            int64_t *version, sdo_error *err)
{
    const char *p[] = {tenant};
    PGresult *r = store_exec(st, c,
                             lock ? "SELECT schedule, time_of_day, keep_daily, keep_weekly,"
                                    " keep_monthly, version FROM backup_policies"
                                    " WHERE tenant_id = $1 FOR UPDATE"
                                  : "SELECT schedule, time_of_day, keep_daily, keep_weekly,"
                                    " keep_monthly, version FROM backup_policies"
                                    " WHERE tenant_id = $1",
                             1, p, err, NULL);
    if (!r)
        return failed(err);
    int found = PQntuples(r) > 0;
    if (found) {
        memset(out, 0, sizeof *out);
        sdo_strlcpy(out->schedule, PQgetvalue(r, 0, 0), sizeof out->schedule);
        sdo_strlcpy(out->time_of_day, PQgetvalue(r, 0, 1), sizeof out->time_of_day);
        out->keep_daily = store_get_int(r, 0, 2);
        out->keep_weekly = store_get_int(r, 0, 3);
        out->keep_monthly = store_get_int(r, 0, 4);
        if (version)
            *version = store_get_i64(r, 0, 5);
    }
    PQclear(r);
    return found;
}

int store_backup_policy_put(store *st, PGconn *c, const char *tenant, const backup_policy *pol,
                            int64_t *version, sdo_error *err)
{
    char d[16], w[16], m[16];
    snprintf(d, sizeof d, "%d", pol->keep_daily);
    snprintf(w, sizeof w, "%d", pol->keep_weekly);
    snprintf(m, sizeof m, "%d", pol->keep_monthly);
    const char *p[] = {tenant, pol->schedule, pol->time_of_day, d, w, m};
    PGresult *r = store_exec(st, c,
                             "INSERT INTO backup_policies (tenant_id, schedule, time_of_day,"
                             " keep_daily, keep_weekly, keep_monthly) VALUES ($1, $2, $3,"
                             " $4::integer, $5::integer, $6::integer)"
                             " ON CONFLICT (tenant_id) DO UPDATE SET schedule = EXCLUDED.schedule,"
                             " time_of_day = EXCLUDED.time_of_day,"
                             " keep_daily = EXCLUDED.keep_daily,"
                             " keep_weekly = EXCLUDED.keep_weekly,"
                             " keep_monthly = EXCLUDED.keep_monthly,"
                             " version = backup_policies.version + 1,"
                             " update_time = clock_timestamp() RETURNING version",
                             6, p, err, NULL);
    if (!r)
        return failed(err);
    if (version)
        *version = store_get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---- slots ---- */

int store_backup_slot_take(store *st, PGconn *c, const char *scope, const char *slot,
                           sdo_error *err)
{
    const char *p[] = {scope, slot};
    return exec_only(st, c,
                     "INSERT INTO backup_slots (scope, slot) VALUES ($1, $2)"
                     " ON CONFLICT DO NOTHING",
                     2, p, err);
}

int store_backup_slots_prune(store *st, PGconn *c, int days, sdo_error *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", days);
    const char *p[] = {d};
    int rc = exec_only(st, c,
                       "DELETE FROM backup_slots WHERE create_time < clock_timestamp() -"
                       " make_interval(days => $1::integer)",
                       1, p, err);
    return rc < 0 ? rc : 0;
}
