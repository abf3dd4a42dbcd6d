/* The operations engine: claim, run steps, record, retry, compensate, resume. */
#include "ops/engine.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "ops/steps.h"
#include "store/provisioning.h"
#include "store/records.h"
#include "tenants/validate.h"
#include "util/log.h"

/* ---- steps ----------------------------------------------------------------------------- */

static int load_tenant(step_ctx *x, tenant_rec *t, sdo_error *err)
{
    PGconn *c = store_acquire(x->env->st, err);
    if (!c)
        return -(int)err->code;
    int rc = store_tenant_rec_get(x->env->st, c, x->env->key, x->tenant_id, false, t, err);
    store_release(x->env->st, c);
    return rc;
}

static int set_param(step_ctx *x, const char *key, const char *value, sdo_error *err)
{
    PGconn *c = store_acquire(x->env->st, err);
    if (!c)
        return -(int)err->code;
    int rc = store_op_set_param(x->env->st, c, x->op->id, key, value, err);
    store_release(x->env->st, c);
    if (rc == 0) {
        /* keep the in-memory params in step with the store */
        PGconn *c2 = store_acquire(x->env->st, err);
        if (!c2)
            return -(int)err->code;
        rc = store_op_reload(x->env->st, c2, x->op, err);
        store_release(x->env->st, c2);
    }
    return rc;
}

static const dbstrategy_ops *strategy_of(const tenant_rec *t, sdo_error *err)
{
    const dbstrategy_ops *s = dbs_for(t->strategy);
    if (!s)
        sdo_fail(err, SDO_INTERNAL, "tenant %s has an unknown database strategy '%s'", t->id,
                 t->strategy);
    return s;
}

/* Starts the tenant's app against server and records its port. */
static int app_start_on(step_ctx *x, tenant_rec *t, const char *server, sdo_error *err)
{
    PGconn *c = store_acquire(x->env->st, err);
    if (!c)
        return -(int)err->code;
    server_rec s = {0};
    int rc = store_server_get(x->env->st, c, x->env->key, server, &s, err);
    store_release(x->env->st, c);
    if (rc < 0)
        return rc;
    char host[256];
    int port = 0;
    dbs_app_address(&s, host, sizeof host, &port);
    rt_app_spec spec = {
        .tenant_id = t->id,
        .db_host = host,
        .db_port = port,
        .db_user = t->db_role[0] ? t->db_role : t->id,
        .db_password = t->password ? t->password : "",
        .db_name = t->db_name[0] ? t->db_name : t->id,
        .workers = t->workers,
        .odoo_version = t->odoo_version,
    };
    int app_port = 0;
    rc = x->env->rt->ops->start(x->env->rt, &spec, &app_port, err);
    server_rec_free(&s);
    if (rc < 0)
        return rc;
    c = store_acquire(x->env->st, err);
    if (!c)
        return -(int)err->code;
    rc = store_tenant_set_app_port(x->env->st, c, t->id, app_port, err);
    store_release(x->env->st, c);
    return rc;
}

/* create */

static int s_place(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    const dbstrategy_ops *s = rc == 0 ? strategy_of(&t, err) : NULL;
    if (rc == 0)
        rc = s ? s->place(&x->dbs, &t, NULL, true, err) : -SDO_INTERNAL;
    tenant_rec_free(&t);
    return rc;
}

static int u_place(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    const dbstrategy_ops *s = rc == 0 ? strategy_of(&t, err) : NULL;
    if (rc == 0 && s && t.server[0])
        rc = s->unplace(&x->dbs, t.id, t.server, err);
    if (rc == 0) {
        PGconn *c = store_acquire(x->env->st, err);
        rc = c ? store_tenant_set_server(x->env->st, c, t.id, "", NULL, err) : -(int)err->code;
        if (c)
            store_release(x->env->st, c);
    }
    tenant_rec_free(&t);
    return rc;
}

static int s_database(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    const dbstrategy_ops *s = rc == 0 ? strategy_of(&t, err) : NULL;
    if (rc == 0)
        rc = s ? s->create_database(&x->dbs, &t, t.server, err) : -SDO_INTERNAL;
    tenant_rec_free(&t);
    return rc;
}

static int u_database(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0 && t.server[0])
        rc = dbs_drop(&x->dbs, t.server, t.id, "", err);
    tenant_rec_free(&t);
    return rc;
}

static int s_role(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0)
        rc = dbs_setup_role(&x->dbs, &t, t.server, true, err);
    tenant_rec_free(&t);
    return rc;
}

static int u_role(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0 && t.server[0])
        rc = dbs_drop(&x->dbs, t.server, "", t.id, err);
    tenant_rec_free(&t);
    return rc;
}

static int s_app(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0)
        rc = app_start_on(x, &t, t.server, err);
    tenant_rec_free(&t);
    return rc;
}

static int u_app_remove(step_ctx *x, sdo_error *err)
{
    return x->env->rt->ops->remove(x->env->rt, x->tenant_id, err);
}

static int s_health(step_ctx *x, sdo_error *err)
{
    return x->env->rt->ops->wait_healthy(x->env->rt, x->tenant_id, 0, err);
}

static int s_app_and_health(step_ctx *x, sdo_error *err)
{
    int rc = s_app(x, err);
    return rc < 0 ? rc : s_health(x, err);
}

/* suspend / resume */

static int s_app_stop(step_ctx *x, sdo_error *err)
{
    return x->env->rt->ops->stop(x->env->rt, x->tenant_id, err);
}

static int logins(step_ctx *x, bool on, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0 && t.server[0])
        rc = dbs_set_login(&x->dbs, t.server, t.id, t.id, on, err);
    tenant_rec_free(&t);
    return rc;
}

static int s_logins_off(step_ctx *x, sdo_error *err)
{
    return logins(x, false, err);
}

static int s_logins_on(step_ctx *x, sdo_error *err)
{
    return logins(x, true, err);
}

static int server_power(step_ctx *x, bool on, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    const dbstrategy_ops *s = rc == 0 ? strategy_of(&t, err) : NULL;
    if (rc == 0 && s && t.server[0])
        rc = on ? s->start_server(&x->dbs, t.server, err) : s->stop_server(&x->dbs, t.server, err);
    tenant_rec_free(&t);
    return rc;
}

static int s_server_stop(step_ctx *x, sdo_error *err)
{
    return server_power(x, false, err);
}

static int s_server_start(step_ctx *x, sdo_error *err)
{
    return server_power(x, true, err);
}

/* delete */

static int s_drop_database(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc == 0 && t.server[0] && strcmp(t.strategy, "SHARED") == 0)
        rc = dbs_drop(&x->dbs, t.server, t.id, t.id, err);
    tenant_rec_free(&t);
    return rc;
}

static int s_unplace(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    const dbstrategy_ops *s = rc == 0 ? strategy_of(&t, err) : NULL;
    if (rc == 0 && s && t.server[0])
        rc = s->unplace(&x->dbs, t.id, t.server, err);
    tenant_rec_free(&t);
    return rc;
}

/* migrate: params hold source_server, source_strategy, target_strategy, target_server */

static int s_mig_freeze(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    if (rc < 0)
        goto out;
    char *src = op_param(x->op->params, "source_server");
    if (!src) {
        if ((rc = set_param(x, "source_server", t.server, err)) < 0 ||
            (rc = set_param(x, "source_strategy", t.strategy, err)) < 0)
            goto out;
    }
    free(src);
    if ((rc = x->env->rt->ops->stop(x->env->rt, t.id, err)) < 0)
        goto out;
    rc = dbs_set_login(&x->dbs, t.server, t.id, t.id, false, err);
out:
    tenant_rec_free(&t);
    return rc;
}

static int u_mig_freeze(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    char *src = op_param(x->op->params, "source_server");
    if (rc == 0 && src)
        rc = dbs_set_login(&x->dbs, src, t.id, t.id, true, err);
    if (rc == 0 && src)
        rc = app_start_on(x, &t, src, err);
    if (rc == 0 && src)
        rc = s_health(x, err);
    free(src);
    tenant_rec_free(&t);
    return rc;
}

static int s_mig_target(step_ctx *x, sdo_error *err)
{
    char *have = op_param(x->op->params, "target_server");
    if (have && have[0]) {
        /* chosen before a crash: make sure it is still there (dedicated: running) */
        char *strategy = op_param(x->op->params, "target_strategy");
        const dbstrategy_ops *s = strategy ? dbs_for(strategy) : NULL;
        int rc = s ? s->start_server(&x->dbs, have, err) : 0;
        free(strategy);
        free(have);
        return rc;
    }
    free(have);
    tenant_rec t;
    int rc = load_tenant(x, &t, err);
    char *strategy = op_param(x->op->params, "target_strategy");
    char *prefer = op_param(x->op->params, "prefer_server");
    const dbstrategy_ops *s = strategy ? dbs_for(strategy) : NULL;
    if (rc == 0 && !s)
        rc = sdo_fail(err, SDO_INTERNAL, "migration without a target strategy");
    if (rc == 0)
        rc = s->place(&x->dbs, &t, prefer, false, err);
    if (rc == 0)
        rc = set_param(x, "target_server", t.server, err);
    free(strategy);
    free(prefer);
    tenant_rec_free(&t);
    return rc;
}

static int u_mig_target(step_ctx *x, sdo_error *err)
{
    char *target = op_param(x->op->params, "target_server");
    char *strategy = op_param(x->op->params, "target_strategy");
    const dbstrategy_ops *s = strategy ? dbs_for(strategy) : NULL;
    int rc = 0;
    if (target && target[0] && s)
        rc = s->unplace(&x->dbs, x->tenant_id, target, err);
    free(target);
    free(strategy);
    return rc;
}

static int server_of(step_ctx *x, const char *id, server_rec *s, sdo_error *err)
{
    PGconn *c = store_acquire(x->env->st, err);
    if (!c)
        return -(int)err->code;
    int rc = store_server_get(x->env->st, c, x->env->key, id, s, err);
    store_release(x->env->st, c);
    return rc;
}

static int s_mig_copy(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    server_rec src = {0}, dst = {0};
    char *src_id = op_param(x->op->params, "source_server");
    char *dst_id = op_param(x->op->params, "target_server");
    int rc = load_tenant(x, &t, err);
    if (rc == 0 && (!src_id || !dst_id))
        rc = sdo_fail(err, SDO_INTERNAL, "migration lost its source or target");
    if (rc == 0)
        rc = server_of(x, src_id, &src, err);
    if (rc == 0)
        rc = server_of(x, dst_id, &dst, err);
    if (rc == 0)
        rc = dbs_ensure_role(&x->dbs, &t, dst_id, false, err);
    if (rc == 0) {
        rc = dbs_prepare_copy(&dst, t.id, t.id, err);
        if (rc == 0) {
            rc = pgc_copy_database(x->env->pgc, src.admin_conninfo, t.id, dst.admin_conninfo, t.id,
                                   t.id, 6 * 3600 * 1000, err);
            if (rc == 0)
                rc = dbs_mark_copied(&dst, t.id, err);
        } else if (rc > 0) {
            rc = 0;
        }
    }
    if (rc == 0)
        rc = dbs_setup_role(&x->dbs, &t, dst_id, false, err);
    free(src_id);
    free(dst_id);
    server_rec_free(&src);
    server_rec_free(&dst);
    tenant_rec_free(&t);
    return rc;
}

static int u_mig_copy(step_ctx *x, sdo_error *err)
{
    char *dst_id = op_param(x->op->params, "target_server");
    char *src_id = op_param(x->op->params, "source_server");
    int rc = 0;
    /* never drop on the source: only when target and source differ */
    if (dst_id && src_id && strcmp(dst_id, src_id) != 0)
        rc = dbs_drop(&x->dbs, dst_id, x->tenant_id, x->tenant_id, err);
    free(dst_id);
    free(src_id);
    return rc;
}

static int s_mig_verify(step_ctx *x, sdo_error *err)
{
    server_rec src = {0}, dst = {0};
    char *src_id = op_param(x->op->params, "source_server");
    char *dst_id = op_param(x->op->params, "target_server");
    int rc = (src_id && dst_id) ? server_of(x, src_id, &src, err)
                                : sdo_fail(err, SDO_INTERNAL, "migration lost its servers");
    if (rc == 0)
        rc = server_of(x, dst_id, &dst, err);
    if (rc == 0) {
        char *a = dbs_conninfo_db(&src, x->tenant_id);
        char *b = dbs_conninfo_db(&dst, x->tenant_id);
        int tables = 0;
        rc = pgc_verify_same(a, b, &tables, err);
        if (rc == 0)
            log_info("msg=\"migration copy verified\" tenant=%s tables=%d", x->tenant_id, tables);
        free(a);
        free(b);
    }
    free(src_id);
    free(dst_id);
    server_rec_free(&src);
    server_rec_free(&dst);
    return rc;
}

static int s_mig_switch(step_ctx *x, sdo_error *err)
{
    char *dst_id = op_param(x->op->params, "target_server");
    char *strategy = op_param(x->op->params, "target_strategy");
    int rc = dst_id && strategy ? 0 : sdo_fail(err, SDO_INTERNAL, "migration lost its target");
    if (rc == 0)
        rc = dbs_set_login(&x->dbs, dst_id, x->tenant_id, x->tenant_id, true, err);
    if (rc == 0) {
        PGconn *c = store_acquire(x->env->st, err);
        rc = c ? store_tenant_set_server(x->env->st, c, x->tenant_id, dst_id, strategy, err)
               : -(int)err->code;
        if (c)
            store_release(x->env->st, c);
    }
    free(dst_id);
    free(strategy);
    return rc;
}

static int u_mig_switch(step_ctx *x, sdo_error *err)
{
    char *src_id = op_param(x->op->params, "source_server");
    char *src_strategy = op_param(x->op->params, "source_strategy");
    char *dst_id = op_param(x->op->params, "target_server");
    int rc = 0;
    if (src_id && src_strategy) {
        PGconn *c = store_acquire(x->env->st, err);
        rc = c ? store_tenant_set_server(x->env->st, c, x->tenant_id, src_id, src_strategy, err)
               : -(int)err->code;
        if (c)
            store_release(x->env->st, c);
    }
    if (rc == 0 && dst_id)
        rc = dbs_set_login(&x->dbs, dst_id, x->tenant_id, x->tenant_id, false, err);
    free(src_id);
    free(src_strategy);
    free(dst_id);
    return rc;
}

static int s_mig_cleanup(step_ctx *x, sdo_error *err)
{
    char *src_id = op_param(x->op->params, "source_server");
    char *src_strategy = op_param(x->op->params, "source_strategy");
    char *dst_id = op_param(x->op->params, "target_server");
    int rc = 0;
    if (src_id && dst_id && strcmp(src_id, dst_id) != 0) {
        if (src_strategy && strcmp(src_strategy, "DEDICATED") == 0)
            rc = dbs_dedicated.unplace(&x->dbs, x->tenant_id, src_id, err);
        else
            rc = dbs_drop(&x->dbs, src_id, x->tenant_id, x->tenant_id, err);
    }
    /* The tenant already lives on the target: a source that will not go is no reason to undo
     * the move. A passing trouble is retried; a lasting one is left to the consistency check,
     * which reports (and repairs) the orphan. */
    if (rc < 0 && err->code != SDO_UNAVAILABLE && err->code != SDO_ABORTED) {
        log_warn("msg=\"the old copy stays behind\" tenant=%s server=%s error=\"%s\"", x->tenant_id,
                 src_id ? src_id : "?", err->message);
        rc = 0;
    }
    free(src_id);
    free(src_strategy);
    free(dst_id);
    return rc;
}

/* ---- helpers other domains' steps use (ops/steps.h) ---------------------------------- */

int step_load_tenant(step_ctx *x, tenant_rec *t, sdo_error *err)
{
    return load_tenant(x, t, err);
}

int step_set_param(step_ctx *x, const char *key, const char *value, sdo_error *err)
{
    return set_param(x, key, value, err);
}

int step_server(step_ctx *x, const char *id, server_rec *s, sdo_error *err)
{
    return server_of(x, id, s, err);
}

int step_app_start(step_ctx *x, tenant_rec *t, const char *server, sdo_error *err)
{
    int rc = app_start_on(x, t, server, err);
    return rc < 0 ? rc : s_health(x, err);
}

int step_place(step_ctx *x, sdo_error *err)
{
    return s_place(x, err);
}

int step_unplace(step_ctx *x, sdo_error *err)
{
    return u_place(x, err);
}

int step_drop_role(step_ctx *x, sdo_error *err)
{
    return u_role(x, err);
}

int step_app_remove(step_ctx *x, sdo_error *err)
{
    return u_app_remove(x, err);
}

int step_app_stop(step_ctx *x, sdo_error *err)
{
    return s_app_stop(x, err);
}

static const step_def create_steps[] = {
    {"place", "choosing a database server", s_place, u_place},
    {"database", "creating the database", s_database, u_database},
    {"role", "creating the database role", s_role, u_role},
    {"app", "starting Odoo", s_app, u_app_remove},
    {"health", "waiting for Odoo to answer", s_health, NULL},
};
static const step_def suspend_steps[] = {
    {"app", "stopping Odoo", s_app_stop, s_app_and_health},
    {"logins", "closing the database to logins", s_logins_off, s_logins_on},
    {"server", "stopping the database server", s_server_stop, s_server_start},
};
static const step_def resume_steps[] = {
    {"server", "starting the database server", s_server_start, s_server_stop},
    {"logins", "opening the database to logins", s_logins_on, s_logins_off},
    {"app", "starting Odoo", s_app, s_app_stop},
    {"health", "waiting for Odoo to answer", s_health, NULL},
};
static const step_def delete_steps[] = {
    {"app", "removing Odoo and its files", u_app_remove, NULL},
    {"database", "dropping the database and role", s_drop_database, NULL},
    {"server", "removing the tenant's database server", s_unplace, NULL},
};
static const step_def migrate_steps[] = {
    {"backup", "backing up before the move", backup_step_pre_migration, NULL},
    {"freeze", "stopping writes", s_mig_freeze, u_mig_freeze},
    {"target", "preparing the target server", s_mig_target, u_mig_target},
    {"copy", "copying the data", s_mig_copy, u_mig_copy},
    {"verify", "verifying the copy", s_mig_verify, NULL},
    {"switch", "switching to the new server", s_mig_switch, u_mig_switch},
    {"app", "starting Odoo", s_app, s_app_stop},
    {"health", "waiting for Odoo to answer", s_health, NULL},
    {"cleanup", "removing the old copy", s_mig_cleanup, NULL},
};

static const op_plan tenant_plans[] = {
    OP_PLAN("CREATE_TENANT", create_steps, "ACTIVE", NULL, NULL),
    OP_PLAN("SUSPEND_TENANT", suspend_steps, "SUSPENDED", "ACTIVE", NULL),
    OP_PLAN("RESUME_TENANT", resume_steps, "ACTIVE", "SUSPENDED", NULL),
    OP_PLAN("DELETE_TENANT", delete_steps, "DELETED", NULL, NULL),
    OP_PLAN("MIGRATE_TENANT", migrate_steps, "ACTIVE", "ACTIVE", NULL),
};

/* Plans other domains registered (engine_register_plans), looked up after the tenant plans. */
#define MAX_PLANS 32
static const op_plan *extra_plans[MAX_PLANS];
static size_t n_extra_plans;
static pthread_mutex_t plans_mu = PTHREAD_MUTEX_INITIALIZER;

int engine_register_plans(const op_plan *p, size_t n)
{
    pthread_mutex_lock(&plans_mu);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        bool have = false;
        for (size_t j = 0; j < n_extra_plans && !have; j++)
            have = extra_plans[j] == &p[i];
        if (have)
            continue;
        if (n_extra_plans == MAX_PLANS) {
            rc = -1;
            break;
        }
        extra_plans[n_extra_plans++] = &p[i];
    }
    pthread_mutex_unlock(&plans_mu);
    return rc;
}

static bool variant_is(const char *want, const char *have)
{
    if (!want)
        return !have || !have[0];
    return have && strcmp(want, have) == 0;
}

/* The plan of an operation: its kind and, for kinds with variants, params "variant". */
static const op_plan *plan_of(const char *kind, const char *params)
{
    for (size_t i = 0; i < sizeof tenant_plans / sizeof tenant_plans[0]; i++)
        if (strcmp(tenant_plans[i].kind, kind) == 0)
            return &tenant_plans[i];
    char *variant = params ? op_param(params, "variant") : NULL;
    const op_plan *found = NULL;
    pthread_mutex_lock(&plans_mu);
    for (size_t i = 0; i < n_extra_plans && !found; i++)
        if (strcmp(extra_plans[i]->kind, kind) == 0 && variant_is(extra_plans[i]->variant, variant))
            found = extra_plans[i];
    pthread_mutex_unlock(&plans_mu);
    free(variant);
    return found;
}

/* ---- the engine ------------------------------------------------------------------------ */

struct engine {
    engine_env env;
    pthread_t *threads;
    int nthreads;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicks;
    PGconn *presence; /* holds the advisory lock that says this server is alive */
    pthread_t reconciler;
    bool reconciling;
    int owner;
    char fault[128];
};

static bool transient(int code)
{
    return code == SDO_UNAVAILABLE || code == SDO_ABORTED || code == SDO_DEADLINE_EXCEEDED;
}

static void fault_point(engine *e, const char *phase, const char *kind, const char *step)
{
    if (!e->fault[0])
        return;
    char here[128];
    snprintf(here, sizeof here, "%s:%s:%s", phase, kind, step);
    if (strcmp(here, e->fault) == 0) {
        log_warn("msg=\"fault injection: stopping the process\" at=%s", here);
        kill(getpid(), SIGKILL);
    }
}

/* Runs a store call on a pooled connection, retrying while the store is unavailable. */
#define WITH_STORE(e, err, call)                                                                   \
    ({                                                                                             \
        int rc_ = -1;                                                                              \
        for (int try_ = 0; try_ < 50 && !atomic_load(&(e)->stop); try_++) {                        \
            PGconn *c_ = store_acquire((e)->env.st, (err));                                        \
            if (c_) {                                                                              \
                PGconn *c = c_;                                                                    \
                rc_ = (call);                                                                      \
                store_release((e)->env.st, c_);                                                    \
                if (rc_ >= 0 || (err)->code != SDO_UNAVAILABLE)                                    \
                    break;                                                                         \
            }                                                                                      \
            usleep(200 * 1000);                                                                    \
        }                                                                                          \
        rc_;                                                                                       \
    })

/* Ends an operation and sets the tenant's state, in one transaction. */
static int finish(engine *e, op_rec *op, const op_plan *plan, const char *op_state, int code,
                  const char *message)
{
    sdo_error err = {0};
    const char *tid = op->target + 8;
    const char *tstate;
    char reason[600] = "";
    if (strcmp(op_state, "SUCCEEDED") == 0) {
        tstate = plan->success_state;
    } else {
        tstate = plan->undone_state ? plan->undone_state : "FAILED";
        if (!tstate[0])
            tstate = NULL; /* the tenant's state is not this plan's business */
        snprintf(reason, sizeof reason, "%s: %s",
                 strcmp(op_state, "CANCELLED") == 0 ? "cancelled" : "failed", message);
        if (strcmp(plan->kind, "CREATE_TENANT") == 0)
            snprintf(reason, sizeof reason, "creation %s: %s",
                     strcmp(op_state, "CANCELLED") == 0 ? "was cancelled" : "failed", message);
    }
    char *result = op_param(op->params, OP_RESULT_PARAM);
    for (int attempt = 0; attempt < 50; attempt++) {
        PGconn *c = store_acquire(e->env.st, &err);
        if (!c) {
            usleep(200 * 1000);
            continue;
        }
        int rc = store_begin(e->env.st, c, &err);
        if (rc == 0 && !tstate)
            ; /* leave the tenant as it is */
        else if (rc == 0 && strcmp(tstate, "DELETED") == 0)
            rc = store_tenant_mark_deleted(e->env.st, c, tid, &err);
        else if (rc == 0)
            rc = store_tenant_set_state(e->env.st, c, tid, NULL, tstate,
                                        strcmp(op_state, "SUCCEEDED") == 0 &&
                                                strcmp(plan->kind, "SUSPEND_TENANT") == 0
                                            ? NULL /* keep the reason given for suspending */
                                            : reason,
                                        &err) < 0
                     ? -1
                     : 0;
        if (rc == 0)
            rc = store_op_finish(e->env.st, c, op->id, op_state, code, message ? message : "",
                                 strcmp(op_state, "SUCCEEDED") != 0 ? ""
                                 : result && result[0]              ? result
                                                                    : op->target,
                                 &err);
        if (rc == 0)
            rc = store_commit(e->env.st, c, &err);
        else
            store_rollback(c);
        store_release(e->env.st, c);
        if (rc == 0) {
            log_info("msg=\"operation finished\" operation=%s kind=%s target=%s state=%s%s%s",
                     op->id, op->kind, op->target, op_state, message && *message ? " error=" : "",
                     message && *message ? message : "");
            free(result);
            return 0;
        }
        usleep(200 * 1000);
    }
    log_error("msg=\"cannot record the end of an operation\" operation=%s error=\"%s\"", op->id,
              err.message);
    free(result);
    return -1;
}

static int progress_of(const op_plan *p, int done_steps)
{
    return p->n ? done_steps * 100 / (p->n + 1) : 0;
}

/* Runs an operation until it is done or handed back for a retry. */
static void run_op(engine *e, op_rec *op)
{
    const op_plan *plan = plan_of(op->kind, op->params);
    sdo_error err = {0};
    if (!plan || strncmp(op->target, "tenants/", 8) != 0 || !tenant_id_syntax_ok(op->target + 8)) {
        static const op_plan unknown = {"", NULL, 0, NULL, "", NULL};
        finish(e, op, plan ? plan : &unknown, "FAILED", SDO_UNIMPLEMENTED,
               "this kind of operation is not run by this server");
        return;
    }
    step_ctx x = {&e->env, {e->env.st, e->env.cfg, e->env.key, e->env.pgc}, op, op->target + 8};

    while (!atomic_load(&e->stop)) {
        if (WITH_STORE(e, &err, store_op_reload(e->env.st, c, op, &err)) < 0)
            return;
        if (!op->compensating && strcmp(op->state, "CANCELLING") == 0) {
            op->compensating = true;
            if (WITH_STORE(e, &err,
                           store_op_advance(e->env.st, c, op->id, op->step_index, true,
                                            progress_of(plan, op->step_index), 0, SDO_CANCELLED,
                                            "cancelled by request", &err)) < 0)
                return;
            continue;
        }
        if (op->compensating) {
            bool cancelled = op->error_code == SDO_CANCELLED;
            if (op->step_index <= 0 || strcmp(plan->kind, "DELETE_TENANT") == 0) {
                finish(e, op, plan, cancelled ? "CANCELLED" : "FAILED",
                       op->error_code ? op->error_code : SDO_INTERNAL, op->error_message);
                return;
            }
            const step_def *s = &plan->steps[op->step_index - 1];
            if (s->undo) {
                char text[160];
                snprintf(text, sizeof text, "undoing: %s", s->text);
                WITH_STORE(e, &err,
                           store_op_progress(e->env.st, c, op->id, text,
                                             progress_of(plan, op->step_index - 1), &err));
                int rc = -1;
                for (int attempt = 0; attempt < e->env.cfg->ops_max_attempts; attempt++) {
                    memset(&err, 0, sizeof err);
                    rc = s->undo(&x, &err);
                    if (rc >= 0 || !transient(err.code))
                        break;
                    usleep((useconds_t)e->env.cfg->ops_retry_base_ms * 1000u << attempt);
                }
                if (rc < 0) {
                    char msg[1400];
                    snprintf(msg, sizeof msg, "%s; undoing '%s' failed too: %s", op->error_message,
                             s->text, err.message);
                    log_error("msg=\"compensation failed\" operation=%s step=%s error=\"%s\"",
                              op->id, s->name, err.message);
                    finish(e, op,
                           &(op_plan){plan->kind, plan->steps, plan->n, plan->success_state,
                                      plan->undone_state && !plan->undone_state[0] ? "" : NULL,
                                      plan->variant},
                           "FAILED", op->error_code ? op->error_code : SDO_INTERNAL, msg);
                    return;
                }
            }
            WITH_STORE(e, &err,
                       store_op_advance(e->env.st, c, op->id, op->step_index - 1, true,
                                        progress_of(plan, op->step_index - 1), 0, 0, "", &err));
            continue;
        }
        if (op->step_index >= plan->n) {
            finish(e, op, plan, "SUCCEEDED", 0, "");
            return;
        }
        const step_def *s = &plan->steps[op->step_index];
        if (WITH_STORE(e, &err,
                       store_op_progress(e->env.st, c, op->id, s->text,
                                         progress_of(plan, op->step_index), &err)) < 0)
            return;
        fault_point(e, "before", op->kind, s->name);
        memset(&err, 0, sizeof err);
        int64_t t0 = sdo_mono_us();
        int rc = s->run(&x, &err);
        log_debug("msg=\"step\" operation=%s step=%s rc=%d ms=%.1f", op->id, s->name, rc,
                  (double)(sdo_mono_us() - t0) / 1000.0);
        if (rc >= 0) {
            if (WITH_STORE(e, &err,
                           store_op_advance(e->env.st, c, op->id, op->step_index + 1, false,
                                            progress_of(plan, op->step_index + 1), 0, 0, "",
                                            &err)) < 0)
                return;
            fault_point(e, "after", op->kind, s->name);
            continue;
        }
        if (err.code == SDO_OK)
            sdo_fail(&err, SDO_INTERNAL, "step '%s' failed", s->text);
        if (transient(err.code) && op->attempt + 1 < e->env.cfg->ops_max_attempts) {
            int delay = e->env.cfg->ops_retry_base_ms << op->attempt;
            char text[700];
            snprintf(text, sizeof text, "%s (retrying: %s)", s->text, err.message);
            log_warn("msg=\"step failed, will retry\" operation=%s step=%s attempt=%d "
                     "delay_ms=%d error=\"%s\"",
                     op->id, s->name, op->attempt + 1, delay, err.message);
            sdo_error rerr = {0};
            WITH_STORE(
                e, &rerr,
                store_op_retry_later(e->env.st, c, op->id, op->attempt + 1, delay, text, &rerr));
            return;
        }
        log_warn("msg=\"step failed\" operation=%s step=%s error=\"%s\"", op->id, s->name,
                 err.message);
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", s->text, err.message);
        int code = err.code;
        if (WITH_STORE(e, &err,
                       store_op_advance(e->env.st, c, op->id, op->step_index, true,
                                        progress_of(plan, op->step_index), 0, code, msg, &err)) < 0)
            return;
    }
}

static void *worker_main(void *arg)
{
    engine *e = arg;
    while (!atomic_load(&e->stop)) {
        op_rec op;
        sdo_error err = {0};
        PGconn *c = store_acquire(e->env.st, &err);
        int got = c ? store_op_claim(e->env.st, c, e->owner, &op, &err) : -1;
        if (c)
            store_release(e->env.st, c);
        if (got == 1) {
            log_debug("msg=\"operation claimed\" operation=%s kind=%s step=%d", op.id, op.kind,
                      op.step_index);
            run_op(e, &op);
            op_rec_free(&op);
            continue;
        }
        /* nothing to do (or the store is away): sleep until kicked or a moment passes */
        pthread_mutex_lock(&e->mu);
        if (e->kicks == 0 && !atomic_load(&e->stop)) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += 250 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->cv, &e->mu, &until);
        }
        if (e->kicks > 0)
            e->kicks--;
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

engine *engine_start(const engine_env *env, int workers, char *err, size_t errsz)
{
    engine *e = sdo_calloc(1, sizeof *e);
    e->env = *env;
    atomic_init(&e->stop, false);
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    const char *fault = getenv(ENGINE_FAULT_ENV);
    if (fault)
        sdo_strlcpy(e->fault, fault, sizeof e->fault);

    /* Presence: a session-level advisory lock on (7361, owner) held for the server's life. */
    sdo_error serr = {0};
    e->presence = store_connect(env->st, &serr);
    if (!e->presence) {
        snprintf(err, errsz, "%s", serr.message);
        goto fail;
    }
    for (int attempt = 0; attempt < 20 && !e->owner; attempt++) {
        uint32_t v = 0;
        if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
            break;
        int cand = (int)(v & 0x3fffffff) + 1;
        char key[16];
        snprintf(key, sizeof key, "%d", cand);
        const char *p[] = {key};
        PGresult *res = PQexecParams(e->presence, "SELECT pg_try_advisory_lock(7361, $1::integer)",
                                     1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't')
            e->owner = cand;
        PQclear(res);
    }
    if (!e->owner) {
        snprintf(err, errsz, "cannot register this server as alive in the store");
        goto fail;
    }
    e->nthreads = workers > 0 ? workers : 1;
    e->threads = sdo_calloc((size_t)e->nthreads, sizeof(pthread_t));
    for (int i = 0; i < e->nthreads; i++)
        pthread_create(&e->threads[i], NULL, worker_main, e);
    log_info("msg=\"operations engine started\" workers=%d owner=%d%s%s", e->nthreads, e->owner,
             e->fault[0] ? " fault_inject=" : "", e->fault);
    return e;
fail:
    if (e->presence)
        PQfinish(e->presence);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
    return NULL;
}

static void *reconcile_main(void *arg)
{
    engine *e = arg;
    sdo_error err = {0};
    char **ids = NULL;
    size_t n = 0;
    PGconn *c = store_acquire(e->env.st, &err);
    if (!c || store_tenant_live_ids(e->env.st, c, &ids, &n, &err) < 0) {
        if (c)
            store_release(e->env.st, c);
        log_warn("msg=\"cannot bring tenant apps back\" error=\"%s\"", err.message);
        return NULL;
    }
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&e->stop)) {
            free(ids[i]);
            continue;
        }
        tenant_rec t;
        char target[80];
        snprintf(target, sizeof target, "tenants/%s", ids[i]);
        Saasodoo__V1__Operation *op = NULL;
        bool busy = store_op_running_on(e->env.st, c, target, &op, &err) == 1;
        if (op)
            protobuf_c_message_free_unpacked(&op->base, NULL);
        if (!busy && store_tenant_rec_get(e->env.st, c, e->env.key, ids[i], false, &t, &err) == 0) {
            if (strcmp(t.state, "ACTIVE") == 0 && t.server[0]) {
                step_ctx x = {&e->env, {e->env.st, e->env.cfg, e->env.key, e->env.pgc}, NULL, t.id};
                /* a dedicated tenant's cluster comes back first */
                const dbstrategy_ops *s = dbs_for(t.strategy);
                if (s)
                    s->start_server(&x.dbs, t.server, &err);
                if (app_start_on(&x, &t, t.server, &err) == 0)
                    started++;
                else
                    log_warn("msg=\"cannot bring an app back\" tenant=%s error=\"%s\"", t.id,
                             err.message);
            }
            tenant_rec_free(&t);
        }
        free(ids[i]);
    }
    free(ids);
    store_release(e->env.st, c);
    if (started)
        log_info("msg=\"tenant apps brought back\" count=%d", started);
    return NULL;
}

void engine_reconcile_apps(engine *e)
{
    if (!e || e->reconciling)
        return;
    e->reconciling = pthread_create(&e->reconciler, NULL, reconcile_main, e) == 0;
}

void engine_kick(engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->kicks = e->nthreads;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void engine_stop(engine *e)
{
    if (!e)
        return;
    atomic_store(&e->stop, true);
    engine_kick(e);
    for (int i = 0; i < e->nthreads; i++)
        pthread_join(e->threads[i], NULL);
    if (e->reconciling)
        pthread_join(e->reconciler, NULL);
    /* Leases lapse with the presence session: another server may resume our work. */
    PQfinish(e->presence);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->threads);
    free(e);
}
