/* The backup scheduler: a thread that, every backup.scheduler_interval_seconds, records the
 * scheduled backups that are due (the slot is taken in the same transaction as the
 * operation, so one server of many records it), prunes backups by retention (through
 * delete operations, one per tenant at a time) and runs restore drills on
 * backup.drill_schedule. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/backup.h"
#include "backup/stream.h"
#include "store/provisioning.h"
#include "store/records.h"
#include "util/log.h"

#define FAILED_KEEP_DAYS 7
#define SLOT_KEEP_DAYS 400

struct backup_scheduler {
    engine_env env;
    engine *eng;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
};

/* The start of the slot now falls in, and its key; false when the schedule has none. */
static bool current_slot(const backup_policy *p, int64_t now_us, int64_t *start_us, char *key,
                         size_t keysz)
{
    time_t now = (time_t)(now_us / 1000000);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strcmp(p->schedule, "hourly") == 0) {
        *start_us = (int64_t)(now - now % 3600) * 1000000;
        snprintf(key, keysz, "hourly:%04d%02d%02dT%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour);
        return true;
    }
    if (strcmp(p->schedule, "daily") != 0)
        return false;
    int hh = atoi(p->time_of_day), mm = atoi(p->time_of_day + 3);
    time_t day = now - now % 86400;
    time_t at = day + hh * 3600 + mm * 60;
    if (at > now)
        at -= 86400;
    struct tm atm;
    gmtime_r(&at, &atm);
    *start_us = (int64_t)at * 1000000;
    snprintf(key, keysz, "daily:%04d%02d%02d", atm.tm_year + 1900, atm.tm_mon + 1, atm.tm_mday);
    return true;
}

static void schedule_tenant(backup_scheduler *s, PGconn *c, const char *id, int64_t now)
{
    sdo_error err = {0};
    Saasodoo__V1__Tenant *t = NULL;
    if (store_tenant_get(s->env.st, c, id, false, &t, &err) < 0)
        return;
    bool live = t->state == SAASODOO__V1__TENANT__STATE__ACTIVE ||
                t->state == SAASODOO__V1__TENANT__STATE__SUSPENDED;
    const char *plan = strncmp(t->plan, "plans/", 6) == 0 ? t->plan + 6 : t->plan;
    int64_t created =
        t->create_time ? t->create_time->seconds * 1000000 + t->create_time->nanos / 1000 : 0;
    backup_policy pol;
    int64_t start = 0;
    char slot[64];
    if (!live || backup_policy_effective(s->env.st, c, id, plan, &pol, NULL, NULL, &err) < 0 ||
        !current_slot(&pol, now, &start, slot, sizeof slot) || start < created)
        goto out;
    backup_request in = {
        .tenant_id = id,
        .trigger = "SCHEDULED",
        .description = "",
        .slot = slot,
        .requester = "system/backup-scheduler",
    };
    Saasodoo__V1__Operation *op = NULL;
    int rc = backup_create(s->env.st, s->env.cfg, &in, NULL, &op, &err);
    if (rc == 0 && op) {
        log_info("msg=\"scheduled backup recorded\" tenant=%s slot=%s operation=%s", id, slot,
                 op->name);
        engine_kick(s->eng);
    } else if (rc < 0) {
        log_debug("msg=\"scheduled backup not recorded yet\" tenant=%s slot=%s error=\"%s\"", id,
                  slot, err.message);
    }
    if (op)
        protobuf_c_message_free_unpacked(&op->base, NULL);
out:
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
}

/* Records the delete of one backup retention no longer keeps (one at a time per tenant). */
static void prune_tenant(backup_scheduler *s, PGconn *c, const char *id, int64_t now)
{
    sdo_error err = {0};
    Saasodoo__V1__Tenant *t = NULL;
    backup_rec *recs = NULL;
    size_t n = 0;
    if (store_tenant_get(s->env.st, c, id, false, &t, &err) < 0 ||
        store_backup_recs(s->env.st, c, id, NULL, &recs, &n, &err) < 0)
        goto out;
    const char *plan = strncmp(t->plan, "plans/", 6) == 0 ? t->plan + 6 : t->plan;
    backup_policy pol;
    if (backup_policy_effective(s->env.st, c, id, plan, &pol, NULL, NULL, &err) < 0)
        goto out;
    /* retention applies to every complete backup but the ones taken by hand */
    int64_t *times = sdo_calloc(n ? n : 1, sizeof *times);
    size_t *which = sdo_calloc(n ? n : 1, sizeof *which);
    bool *keep = sdo_calloc(n ? n : 1, sizeof *keep);
    size_t m = 0;
    const char *victim = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].state, "COMPLETE") == 0 && strcmp(recs[i].trigger, "MANUAL") != 0) {
            times[m] = recs[i].create_us;
            which[m++] = i;
        } else if (strcmp(recs[i].state, "FAILED") == 0 &&
                   now - recs[i].create_us > (int64_t)FAILED_KEEP_DAYS * 86400 * 1000000) {
            victim = recs[i].id;
        }
    }
    backup_gfs(&pol, times, m, keep);
    for (size_t j = m; j-- > 0 && !victim;)
        if (!keep[j])
            victim = recs[which[j]].id; /* the oldest first */
    if (victim) {
        Saasodoo__V1__Operation *op = NULL;
        if (backup_delete(s->env.st, id, victim, "system/backup-scheduler", NULL, &op, &err) == 0) {
            log_info("msg=\"backup pruned by retention\" tenant=%s backup=%s operation=%s", id,
                     victim, op->name);
            engine_kick(s->eng);
        }
        if (op)
            protobuf_c_message_free_unpacked(&op->base, NULL);
    }
    free(times);
    free(which);
    free(keep);
out:
    free(recs);
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
}

/* ---- drills ---- */

/* Restores the newest complete backup of a tenant into a scratch database on its server,
 * checks it against the manifest, drops it and records the result on the backup. */
static void drill_tenant(backup_scheduler *s, const char *id)
{
    sdo_error err = {0};
    tenant_rec t = {0};
    server_rec srv = {0};
    backup_rec *recs = NULL;
    backup_part_rec *parts = NULL;
    size_t n = 0, np = 0;
    char scratch[80] = "";
    int rc;
    PGconn *c = store_acquire(s->env.st, &err);
    if (!c)
        return;
    rc = store_tenant_rec_get(s->env.st, c, s->env.key, id, false, &t, &err);
    bool active = rc == 0 && strcmp(t.state, "ACTIVE") == 0 && t.server[0];
    if (active)
        rc = store_backup_recs(s->env.st, c, id, "COMPLETE", &recs, &n, &err);
    if (active && rc == 0 && n > 0)
        rc = store_server_get(s->env.st, c, s->env.key, t.server, &srv, &err);
    if (active && rc == 0 && n > 0)
        rc = store_backup_parts(s->env.st, c, id, recs[0].id, &parts, &np, &err);
    store_release(s->env.st, c);
    if (!active || rc < 0 || n == 0)
        goto out;
    const backup_rec *b = &recs[0];
    const char *db = t.db_name[0] ? t.db_name : t.id;
    const char *role = t.db_role[0] ? t.db_role : t.id;
    snprintf(scratch, sizeof scratch, "%s__drill", db);
    int64_t t0 = sdo_mono_us();
    /* every part is read and checked; the dump as it streams into pg_restore */
    const backup_part_rec *dump = NULL;
    for (size_t i = 0; rc == 0 && i < np; i++) {
        char key[300];
        snprintf(key, sizeof key, "%s%s", b->prefix, parts[i].name);
        if (strcmp(parts[i].name, "database.dump") == 0)
            dump = &parts[i];
        else
            rc = bk_verify_part(s->env.backups, key, parts[i].name, parts[i].size, parts[i].sha256,
                                &err);
    }
    if (rc == 0 && !dump)
        rc = sdo_fail(&err, SDO_DATA_LOSS, "the backup has no database dump");
    if (rc == 0)
        rc = bk_scratch_database(&srv, scratch, role, true, &err);
    if (rc == 0) {
        char key[300];
        snprintf(key, sizeof key, "%sdatabase.dump", b->prefix);
        rc = bk_restore_database(s->env.backups, key, dump->name, dump->size, dump->sha256, &srv,
                                 scratch, role, s->env.cfg->dbstrategy_pg_bin_dir, &err);
    }
    char pgv[64];
    char *rows = NULL;
    if (rc == 0 && (c = store_acquire(s->env.st, &err)) != NULL) {
        rc = store_backup_snapshot(s->env.st, c, id, b->id, &rows, pgv, sizeof pgv, &err);
        store_release(s->env.st, c);
    } else if (rc == 0) {
        rc = -(int)err.code;
    }
    if (rc == 0)
        rc = bk_check_rows(&srv, scratch, rows, NULL, &err);
    free(rows);
    sdo_error derr = {0};
    bk_scratch_database(&srv, scratch, NULL, false, &derr);
    char result[600];
    if (rc == 0)
        snprintf(result, sizeof result, "passed");
    else
        snprintf(result, sizeof result, "failed: %s", err.message);
    log_info("msg=\"restore drill\" tenant=%s backup=%s result=\"%s\" ms=%lld", id, b->id, result,
             (long long)((sdo_mono_us() - t0) / 1000));
    sdo_error serr = {0};
    if ((c = store_acquire(s->env.st, &serr)) != NULL) {
        store_backup_set_drill(s->env.st, c, id, b->id, result, &serr);
        store_release(s->env.st, c);
    }
out:
    free(parts);
    free(recs);
    server_rec_free(&srv);
    tenant_rec_free(&t);
}

static bool drill_slot(const char *schedule, int64_t now_us, char *key, size_t keysz)
{
    time_t now = (time_t)(now_us / 1000000);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strcmp(schedule, "daily") == 0) {
        snprintf(key, keysz, "drill:%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        return true;
    }
    if (strcmp(schedule, "weekly") == 0) {
        char w[16];
        strftime(w, sizeof w, "%G-W%V", &tm);
        snprintf(key, keysz, "drill:%s", w);
        return true;
    }
    return false;
}

static void run_drills(backup_scheduler *s, int64_t now)
{
    char slot[64];
    if (!s->env.backups || !drill_slot(s->env.cfg->backup_drill_schedule, now, slot, sizeof slot))
        return;
    sdo_error err = {0};
    PGconn *c = store_acquire(s->env.st, &err);
    if (!c)
        return;
    int taken = store_backup_slot_take(s->env.st, c, "drills", slot, &err);
    char **ids = NULL;
    size_t n = 0;
    if (taken == 1 && store_tenant_live_ids(s->env.st, c, &ids, &n, &err) < 0)
        n = 0;
    store_release(s->env.st, c);
    if (taken != 1)
        return;
    log_info("msg=\"restore drills starting\" slot=%s tenants=%zu", slot, n);
    for (size_t i = 0; i < n; i++) {
        if (!atomic_load(&s->stop))
            drill_tenant(s, ids[i]);
        free(ids[i]);
    }
    free(ids);
}

/* ---- the loop ---- */

static void tick(backup_scheduler *s)
{
    sdo_error err = {0};
    int64_t now = backup_now_us();
    PGconn *c = store_acquire(s->env.st, &err);
    if (!c) {
        log_debug("msg=\"backup scheduler: store unavailable\" error=\"%s\"", err.message);
        return;
    }
    char **ids = NULL;
    size_t n = 0;
    if (store_tenant_live_ids(s->env.st, c, &ids, &n, &err) < 0) {
        store_release(s->env.st, c);
        return;
    }
    for (size_t i = 0; i < n && !atomic_load(&s->stop); i++)
        schedule_tenant(s, c, ids[i], now);
    for (size_t i = 0; i < n && !atomic_load(&s->stop); i++)
        prune_tenant(s, c, ids[i], now);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    store_backup_slots_prune(s->env.st, c, SLOT_KEEP_DAYS, &err);
    store_release(s->env.st, c);
    if (!atomic_load(&s->stop))
        run_drills(s, now);
}

static void *scheduler_main(void *arg)
{
    backup_scheduler *s = arg;
    int interval = s->env.cfg->backup_scheduler_interval_seconds;
    while (!atomic_load(&s->stop)) {
        tick(s);
        pthread_mutex_lock(&s->mu);
        if (!atomic_load(&s->stop)) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += interval > 0 ? interval : 30;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

backup_scheduler *backup_scheduler_start(const engine_env *env, engine *eng)
{
    backup_scheduler *s = sdo_calloc(1, sizeof *s);
    s->env = *env;
    s->eng = eng;
    atomic_init(&s->stop, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    log_info("msg=\"backup scheduler started\" interval_seconds=%d drills=%s",
             env->cfg->backup_scheduler_interval_seconds, env->cfg->backup_drill_schedule);
    return s;
}

void backup_scheduler_stop(backup_scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
