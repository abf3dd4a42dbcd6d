/* Backups: the clock, names, policies and retention, and recording requests as operations. */
#include "backup/backup.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "store/provisioning.h"
#include "store/records.h"
#include "tenants/validate.h"
#include "util/buf.h"
#include "util/log.h"

/* ---- clock -------------------------------------------------------------------------------- */

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
static int64_t clock_offset_us;

static void clock_init(void)
{
    const char *v = getenv(BACKUP_CLOCK_ENV);
    if (v && *v) {
        clock_offset_us = strtoll(v, NULL, 10) * 1000000;
        log_warn("msg=\"backup clock moved for testing\" offset_seconds=%lld",
                 (long long)(clock_offset_us / 1000000));
    }
}

int64_t backup_now_us(void)
{
    pthread_once(&clock_once, clock_init);
    return sdo_now_us() + clock_offset_us;
}

/* ---- names -------------------------------------------------------------------------------- */

bool backup_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0);
        if (!ok)
            return false;
    }
    return true;
}

int backup_name_parse(const char *name, const char *field, char tenant[64], char id[64],
                      sdo_error *err)
{
    const char *slash = NULL;
    if (!name[0])
        return sdo_fail_field(err, field,
                              "%s is required, e.g. 'tenants/acme/backups/20260101-020000-1a2b3c'",
                              field);
    if (strncmp(name, "tenants/", 8) == 0)
        slash = strchr(name + 8, '/');
    size_t tl = slash ? (size_t)(slash - name - 8) : 0;
    if (!slash || tl == 0 || tl >= 64 || strncmp(slash, "/backups/", 9) != 0)
        return sdo_fail_field(err, field,
                              "%s '%.100s' must look like 'tenants/{tenant}/backups/{backup}'",
                              field, name);
    memcpy(tenant, name + 8, tl);
    tenant[tl] = 0;
    if (!tenant_id_syntax_ok(tenant))
        return sdo_fail_field(err, field, "%s: tenant id '%.64s' must match %s", field, tenant,
                              TENANT_ID_PATTERN);
    const char *b = slash + 9;
    if (!backup_id_ok(b))
        return sdo_fail_field(err, field, "%s: backup id '%.80s' must match %s", field, b,
                              BACKUP_ID_PATTERN);
    sdo_strlcpy(id, b, 64);
    return 0;
}

int backup_policy_name_parse(const char *name, const char *field, char tenant[64], sdo_error *err)
{
    const char *slash = strncmp(name, "tenants/", 8) == 0 ? strchr(name + 8, '/') : NULL;
    size_t tl = slash ? (size_t)(slash - name - 8) : 0;
    if (!slash || tl == 0 || tl >= 64 || strcmp(slash, "/backupPolicy") != 0)
        return sdo_fail_field(
            err, field, "%s '%.100s' must look like 'tenants/{tenant}/backupPolicy'", field, name);
    memcpy(tenant, name + 8, tl);
    tenant[tl] = 0;
    if (!tenant_id_syntax_ok(tenant))
        return sdo_fail_field(err, field, "%s: tenant id '%.64s' must match %s", field, tenant,
                              TENANT_ID_PATTERN);
    return 0;
}

/* ---- policies ----------------------------------------------------------------------------- */

#define MAX_PLAN_POLICIES 64
#define KEEP_MAX 1000

typedef struct plan_policy {
    char plan[64];
    backup_policy p;
} plan_policy;

static plan_policy plan_policies[MAX_PLAN_POLICIES];
static size_t n_plan_policies;

static void default_policy(backup_policy *p, int retention_days)
{
    memset(p, 0, sizeof *p);
    sdo_strlcpy(p->schedule, "daily", sizeof p->schedule);
    sdo_strlcpy(p->time_of_day, "02:00", sizeof p->time_of_day);
    p->keep_daily =
        retention_days > 0 ? (retention_days < KEEP_MAX ? retention_days : KEEP_MAX) : 7;
}

static bool time_of_day_ok(const char *s)
{
    return strlen(s) == 5 && s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' &&
           s[2] == ':' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9' &&
           (s[0] - '0') * 10 + (s[1] - '0') < 24;
}

int backup_policy_check(const backup_policy *p, const char *prefix, sdo_error *err)
{
    char f[64];
    if (strcmp(p->schedule, "hourly") != 0 && strcmp(p->schedule, "daily") != 0 &&
        strcmp(p->schedule, "disabled") != 0) {
        snprintf(f, sizeof f, "%sschedule", prefix);
        return sdo_fail_field(err, f, "%s '%.32s' must be hourly, daily or disabled", f,
                              p->schedule);
    }
    if (strcmp(p->schedule, "daily") == 0 && !time_of_day_ok(p->time_of_day)) {
        snprintf(f, sizeof f, "%stime_of_day", prefix);
        return sdo_fail_field(err, f,
                              "%s '%.32s' must be a UTC time as HH:MM (00:00 to 23:59) for a "
                              "daily schedule",
                              f, p->time_of_day);
    }
    const int *keeps[] = {&p->keep_daily, &p->keep_weekly, &p->keep_monthly};
    const char *names[] = {"keep_daily", "keep_weekly", "keep_monthly"};
    for (int i = 0; i < 3; i++) {
        if (*keeps[i] < 0 || *keeps[i] > KEEP_MAX) {
            snprintf(f, sizeof f, "%s%s", prefix, names[i]);
            return sdo_fail_field(err, f, "%s is %d; it must be between 0 and %d", f, *keeps[i],
                                  KEEP_MAX);
        }
    }
    if (p->keep_daily + p->keep_weekly + p->keep_monthly == 0 &&
        strcmp(p->schedule, "disabled") != 0) {
        snprintf(f, sizeof f, "%skeep_daily", prefix);
        return sdo_fail_field(err, f,
                              "a schedule that keeps nothing makes no sense: set %s, "
                              "keep_weekly or keep_monthly above 0, or the schedule to disabled",
                              f);
    }
    return 0;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_plan_backup(yaml_document_t *doc, yaml_node_t *m, const char *name,
                             backup_policy *p, char *err, size_t errsz)
{
    if (m->type != YAML_MAPPING_NODE) {
        snprintf(err, errsz, "%s:%zu: plans[].backup must be a mapping", name,
                 m->start_mark.line + 1);
        return -1;
    }
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        const char *ks = scalar(k), *vs = scalar(v);
        size_t line = k->start_mark.line + 1;
        if (!ks || !vs) {
            snprintf(err, errsz, "%s:%zu: plans[].backup keys take single values", name, line);
            return -1;
        }
        int *num = strcmp(ks, "keep_daily") == 0     ? &p->keep_daily
                   : strcmp(ks, "keep_weekly") == 0  ? &p->keep_weekly
                   : strcmp(ks, "keep_monthly") == 0 ? &p->keep_monthly
                                                     : NULL;
        if (num) {
            char *end;
            long val = strtol(vs, &end, 10);
            if (!*vs || *end || val < 0 || val > KEEP_MAX) {
                snprintf(err, errsz, "%s:%zu: plans[].backup.%s: '%s' is not a number from 0 to %d",
                         name, line, ks, vs, KEEP_MAX);
                return -1;
            }
            *num = (int)val;
        } else if (strcmp(ks, "schedule") == 0) {
            sdo_strlcpy(p->schedule, vs, sizeof p->schedule);
        } else if (strcmp(ks, "time_of_day") == 0) {
            sdo_strlcpy(p->time_of_day, vs, sizeof p->time_of_day);
        } else {
            snprintf(err, errsz,
                     "%s:%zu: unknown key 'plans[].backup.%s' (schedule, time_of_day, keep_daily, "
                     "keep_weekly, keep_monthly)",
                     name, line, ks);
            return -1;
        }
    }
    sdo_error e = {0};
    if (backup_policy_check(p, "plans[].backup.", &e) < 0) {
        snprintf(err, errsz, "%s:%zu: %s", name, m->start_mark.line + 1, e.message);
        return -1;
    }
    return 0;
}

int backup_policies_load(const char *plans_file, char *err, size_t errsz)
{
    FILE *f = fopen(plans_file, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: cannot open the plan catalogue", plans_file);
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errsz, "%s:%zu: invalid YAML", plans_file, parser.problem_mark.line + 1);
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    plan_policy found[MAX_PLAN_POLICIES];
    size_t n = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *list = NULL;
    for (yaml_node_pair_t *pr =
             root && root->type == YAML_MAPPING_NODE ? root->data.mapping.pairs.start : NULL;
         pr && pr < root->data.mapping.pairs.top; pr++) {
        const char *ks = scalar(yaml_document_get_node(&doc, pr->key));
        if (ks && strcmp(ks, "plans") == 0)
            list = yaml_document_get_node(&doc, pr->value);
    }
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errsz, "%s:1: 'plans' must be a list of plans", plans_file);
        goto out;
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *pn = yaml_document_get_node(&doc, *it);
        if (pn->type != YAML_MAPPING_NODE)
            continue; /* the catalogue's own reader reports it */
        const char *id = NULL;
        int retention = 0;
        yaml_node_t *bk = NULL;
        for (yaml_node_pair_t *pr = pn->data.mapping.pairs.start; pr < pn->data.mapping.pairs.top;
             pr++) {
            const char *ks = scalar(yaml_document_get_node(&doc, pr->key));
            yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
            if (!ks)
                continue;
            if (strcmp(ks, "id") == 0)
                id = scalar(v);
            else if (strcmp(ks, "backup_retention_days") == 0 && scalar(v))
                retention = atoi(scalar(v));
            else if (strcmp(ks, "backup") == 0)
                bk = v;
        }
        if (!id || n == MAX_PLAN_POLICIES)
            continue;
        plan_policy *pp = &found[n];
        sdo_strlcpy(pp->plan, id, sizeof pp->plan);
        default_policy(&pp->p, retention);
        if (bk) {
            pp->p.keep_daily = pp->p.keep_weekly = pp->p.keep_monthly = 0;
            if (parse_plan_backup(&doc, bk, plans_file, &pp->p, err, errsz) < 0)
                goto out;
        }
        n++;
    }
    memcpy(plan_policies, found, n * sizeof found[0]);
    n_plan_policies = n;
    rc = 0;
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

void backup_plan_policy(const char *plan_id, backup_policy *out)
{
    for (size_t i = 0; i < n_plan_policies; i++) {
        if (strcmp(plan_policies[i].plan, plan_id) == 0) {
            *out = plan_policies[i].p;
            return;
        }
    }
    default_policy(out, 7);
}

int backup_policy_effective(store *st, PGconn *c, const char *tenant, const char *plan_id,
                            backup_policy *out, bool *overridden, int64_t *version, sdo_error *err)
{
    int64_t v = 0;
    int found = store_backup_policy_get(st, c, tenant, false, out, &v, err);
    if (found < 0)
        return found;
    if (!found)
        backup_plan_policy(plan_id, out);
    if (overridden)
        *overridden = found == 1;
    if (version)
        *version = v;
    return 0;
}

/* Days since the epoch (UTC), ISO weeks (Monday first) and months of a time. */
static int64_t day_of(int64_t us)
{
    int64_t s = us / 1000000;
    return s >= 0 ? s / 86400 : (s - 86399) / 86400;
}

static int64_t week_of(int64_t us)
{
    int64_t d = day_of(us) + 3; /* 1970-01-01 was a Thursday */
    return d >= 0 ? d / 7 : (d - 6) / 7;
}

static int64_t month_of(int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int64_t)tm.tm_year * 12 + tm.tm_mon;
}

static void keep_buckets(int64_t (*bucket)(int64_t), int keep, const int64_t *us, size_t n,
                         bool *out)
{
    int taken = 0;
    bool have_last = false;
    int64_t last = 0;
    for (size_t i = 0; i < n && taken < keep; i++) {
        int64_t b = bucket(us[i]);
        if (have_last && b == last)
            continue; /* an older one of a bucket already kept */
        out[i] = true;
        last = b;
        have_last = true;
        taken++;
    }
}

void backup_gfs(const backup_policy *p, const int64_t *create_us, size_t n, bool *keep)
{
    for (size_t i = 0; i < n; i++)
        keep[i] = false;
    if (n == 0)
        return;
    keep[0] = true;
    keep_buckets(day_of, p->keep_daily, create_us, n, keep);
    keep_buckets(week_of, p->keep_weekly, create_us, n, keep);
    keep_buckets(month_of, p->keep_monthly, create_us, n, keep);
}

/* ---- requests ----------------------------------------------------------------------------- */

static int failed(sdo_error *err)
{
    return -(int)(err->code ? err->code : SDO_INTERNAL);
}

static void new_backup_id(char out[64])
{
    time_t t = (time_t)(backup_now_us() / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char uuid[37];
    sdo_uuid4(uuid);
    snprintf(out, 64, "%04d%02d%02d-%02d%02d%02d-%.6s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, uuid);
}

static void drop_op(Saasodoo__V1__Operation **out)
{
    if (*out)
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
    *out = NULL;
}

int backup_create(store *st, const sdo_config *cfg, const backup_request *in, const request_key *rk,
                  Saasodoo__V1__Operation **out, sdo_error *err)
{
    Saasodoo__V1__Tenant *t = NULL;
    char target[80], id[64], prefix[200];
    sdo_buf params = {0};
    snprintf(target, sizeof target, "tenants/%s", in->tenant_id);
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                                  (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;
    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    if ((rc = store_tenant_get(st, c, in->tenant_id, true, &t, err)) < 0)
        goto rollback;
    if (t->state != SAASODOO__V1__TENANT__STATE__ACTIVE &&
        t->state != SAASODOO__V1__TENANT__STATE__SUSPENDED) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "tenant '%s' is %s; only ACTIVE or SUSPENDED tenants can be backed up",
                      target, store_enum_name(&saasodoo__v1__tenant__state__descriptor, t->state));
        sdo_error_reason(err, "TENANT_STATE");
        goto rollback;
    }
    if (t->state == SAASODOO__V1__TENANT__STATE__SUSPENDED &&
        t->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "tenant '%s' is SUSPENDED and its database server is stopped; resume it "
                      "to back it up",
                      target);
        sdo_error_reason(err, "TENANT_STATE");
        goto rollback;
    }
    if ((rc = store_op_check_idle(st, c, target, err)) != 0)
        goto rollback;
    if (in->slot) {
        rc = store_backup_slot_take(st, c, in->tenant_id, in->slot, err);
        if (rc <= 0) {
            rc = rc == 0 ? 1 : rc; /* 1: taken before */
            goto rollback;
        }
    }
    new_backup_id(id);
    snprintf(prefix, sizeof prefix, "tenants/%s/%s/", in->tenant_id, id);
    const char *plan = strncmp(t->plan, "plans/", 6) == 0 ? t->plan + 6 : t->plan;
    backup_row row = {
        .tenant_id = in->tenant_id,
        .id = id,
        .trigger = in->trigger,
        .description = in->description ? in->description : "",
        .plan_id = plan,
        .strategy = t->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED ? "DEDICATED"
                                                                                       : "SHARED",
        .odoo_version = t->odoo_version,
        .storage = cfg->backup_storage,
        .prefix = prefix,
        .create_us = backup_now_us(),
    };
    if ((rc = store_backup_insert(st, c, &row, err)) < 0)
        goto rollback;
    sdo_buf_printf(&params,
                   "{\"variant\": \"create\", \"backup\": \"%s\", \"" OP_RESULT_PARAM
                   "\": \"tenants/%s/backups/%s\"}",
                   id, in->tenant_id, id);
    if ((rc = store_op_record(st, c, "BACKUP", target, params.data, in->requester, rk, out, err)) <
        0)
        goto rollback;
    if ((rc = store_commit(st, c, err)) == 0)
        log_info("msg=\"backup recorded\" tenant=%s backup=%s trigger=%s operation=%s",
                 in->tenant_id, id, in->trigger, (*out)->name);
    goto out;
rollback:
    store_rollback(c);
    drop_op(out);
out:
    if (rc == 1 && *out)
        rc = 0; /* replayed */
    store_release(st, c);
    sdo_buf_free(&params);
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    return rc;
}

int backup_delete(store *st, const char *tenant, const char *id, const char *requester,
                  const request_key *rk, Saasodoo__V1__Operation **out, sdo_error *err)
{
    char target[80];
    sdo_buf params = {0};
    snprintf(target, sizeof target, "tenants/%s", tenant);
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                                  (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;
    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    backup_rec b;
    if ((rc = store_backup_get_rec(st, c, tenant, id, true, &b, err)) < 0)
        goto rollback;
    if (strcmp(b.state, "CREATING") == 0 || strcmp(b.state, "DELETING") == 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "backup 'tenants/%s/backups/%s' is %s; wait for it to finish", tenant, id,
                      b.state);
        sdo_error_reason(err, "BACKUP_STATE");
        goto rollback;
    }
    if ((rc = store_op_check_idle(st, c, target, err)) != 0)
        goto rollback;
    if ((rc = store_backup_set_state(st, c, tenant, id, NULL, "DELETING", NULL, err)) < 0)
        goto rollback;
    sdo_buf_printf(&params, "{\"variant\": \"delete\", \"backup\": \"%s\"}", id);
    if ((rc = store_op_record(st, c, "BACKUP", target, params.data, requester, rk, out, err)) < 0)
        goto rollback;
    rc = store_commit(st, c, err);
    goto out;
rollback:
    store_rollback(c);
    drop_op(out);
out:
    if (rc == 1)
        rc = 0;
    store_release(st, c);
    sdo_buf_free(&params);
    return rc;
}

int backup_restore(store *st, const sdo_config *cfg, const char *tenant, const char *id,
                   const char *target_id, const char *requester, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err)
{
    bool in_place = !target_id || !target_id[0] || strcmp(target_id, tenant) == 0;
    const char *tid = in_place ? tenant : target_id;
    Saasodoo__V1__Tenant *src = NULL, *made = NULL, *existing = NULL;
    Saasodoo__V1__Plan *plan = NULL;
    char target[80];
    sdo_buf params = {0};
    snprintf(target, sizeof target, "tenants/%s", tid);
    PGconn *c = store_acquire(st, err);
    if (!c)
        return failed(err);
    int rc = store_request_replay(st, c, rk, &saasodoo__v1__operation__descriptor,
                                  (ProtobufCMessage **)out, err);
    if (rc != 0)
        goto out;
    if ((rc = store_begin(st, c, err)) < 0)
        goto out;
    backup_rec b;
    if ((rc = store_backup_get_rec(st, c, tenant, id, true, &b, err)) < 0)
        goto rollback;
    if (strcmp(b.state, "COMPLETE") != 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "backup 'tenants/%s/backups/%s' is %s; only a COMPLETE backup can be "
                      "restored",
                      tenant, id, b.state);
        sdo_error_reason(err, "BACKUP_STATE");
        goto rollback;
    }
    if (in_place) {
        if ((rc = store_tenant_get(st, c, tenant, true, &src, err)) < 0)
            goto rollback;
        if (src->state != SAASODOO__V1__TENANT__STATE__ACTIVE) {
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "tenant 'tenants/%s' is %s; a backup is restored in place only into "
                          "an ACTIVE tenant (or restore it into a new tenant with "
                          "target_tenant_id)",
                          tenant,
                          store_enum_name(&saasodoo__v1__tenant__state__descriptor, src->state));
            sdo_error_reason(err, "TENANT_STATE");
            goto rollback;
        }
        if ((rc = store_op_check_idle(st, c, target, err)) != 0)
            goto rollback;
    } else {
        /* The source tenant may be gone; its backup still tells the plan and version. */
        rc = store_tenant_get(st, c, tenant, false, &src, err);
        if (rc < 0 && rc != -SDO_NOT_FOUND)
            goto rollback;
        rc = store_plan_get(st, c, b.plan_id, &plan, err);
        if (rc == -SDO_NOT_FOUND) {
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "the backup's plan 'plans/%s' no longer exists; a new tenant cannot "
                          "be made from it",
                          b.plan_id);
        }
        if (rc < 0)
            goto rollback;
        if ((rc = store_tenant_purge_deleted(st, c, tid, cfg->tenants_deleted_id_retention_days,
                                             err)) < 0)
            goto rollback;
        char url[512];
        snprintf(url, sizeof url, "http://%s.%s", tid, cfg->platform_base_domain);
        tenant_row row = {
            .id = tid,
            .display_name = tid,
            .owner = src ? src->owner : requester,
            .plan_id = b.plan_id,
            .state = "PROVISIONING",
            .strategy = plan->database_strategy == SAASODOO__V1__DATABASE_STRATEGY__DEDICATED
                            ? "DEDICATED"
                            : "SHARED",
            .url = url,
            .odoo_version = b.odoo_version[0] ? b.odoo_version : cfg->platform_default_odoo_version,
            .labels_json = "{}",
        };
        rc = store_tenant_insert(st, c, &row, &made, err);
        if (rc == 0) {
            rc = sdo_fail_field(err, "target_tenant_id",
                                "tenant 'tenants/%s' already exists (or was deleted less than %d "
                                "days ago); choose another target_tenant_id",
                                tid, cfg->tenants_deleted_id_retention_days);
            sdo_error_reason(err, "TENANT_ID_TAKEN");
            rc = -SDO_ALREADY_EXISTS;
            err->code = SDO_ALREADY_EXISTS;
        }
        if (rc < 0)
            goto rollback;
    }
    sdo_buf_printf(&params, "{\"variant\": \"%s\", \"source_tenant\": \"%s\", \"backup\": \"%s\"}",
                   in_place ? "in_place" : "new_tenant", tenant, id);
    if ((rc = store_op_record(st, c, "RESTORE", target, params.data, requester, rk, out, err)) < 0)
        goto rollback;
    if ((rc = store_commit(st, c, err)) == 0)
        log_info("msg=\"restore recorded\" tenant=%s backup=%s into=%s operation=%s", tenant, id,
                 tid, (*out)->name);
    goto out;
rollback:
    store_rollback(c);
    drop_op(out);
out:
    if (rc == 1)
        rc = 0;
    store_release(st, c);
    sdo_buf_free(&params);
    if (src)
        protobuf_c_message_free_unpacked(&src->base, NULL);
    if (made)
        protobuf_c_message_free_unpacked(&made->base, NULL);
    if (existing)
        protobuf_c_message_free_unpacked(&existing->base, NULL);
    if (plan)
        protobuf_c_message_free_unpacked(&plan->base, NULL);
    return rc;
}
