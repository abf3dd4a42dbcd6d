/* What a domain needs to give the operations engine a plan of its own: the step context, step
 * and plan tables, registration, and the small step helpers every domain uses (the tenant's
 * record, operation parameters, starting the tenant's app). Tenant plans live in engine.c;
 * other domains (backups) register theirs before the engine starts. */
#ifndef SDO_STEPS_H
#define SDO_STEPS_H

#include "dbstrategy/dbstrategy.h"
#include "ops/engine.h"
#include "store/provisioning.h"

typedef struct step_ctx {
    const engine_env *env;
    dbs_env dbs;
    op_rec *op;
    const char *tenant_id; /* from the operation's target "tenants/{id}" */
} step_ctx;

/* Returns 0 (or any value >= 0) on success, or a negative status with err filled. Transient
 * statuses (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED) are retried with back-off. A step must be
 * safe to run again: a crash may interrupt it after it did its work but before that was
 * recorded. */
typedef int (*step_fn)(step_ctx *x, sdo_error *err);

typedef struct step_def {
    const char *name; /* stable id, used by fault injection */
    const char *text; /* what a person reads while it runs */
    step_fn run;
    step_fn undo; /* NULL: nothing to undo */
} step_def;

/* One kind of operation (or one variant of it) as a list of steps. */
typedef struct op_plan {
    const char *kind;
    const step_def *steps;
    int n;
    /* Tenant state once done; NULL leaves the tenant's state (and reason) as it is. */
    const char *success_state;
    /* Tenant state once compensated: NULL = FAILED; "" leaves it as it is. */
    const char *undone_state;
    /* NULL: the plan of its kind. Otherwise the plan of operations whose params hold
     * "variant" equal to this. */
    const char *variant;
} op_plan;

#define OP_PLAN(kind, steps, ok, undone, variant)                                                  \
    {                                                                                              \
        kind, steps, (int)(sizeof steps / sizeof steps[0]), ok, undone, variant                    \
    }

/* Adds plans (borrowed; static tables) to the engine. Call before engine_start. At most 32
 * plans may be registered. Returns 0, or -1 when the table is full. */
int engine_register_plans(const op_plan *plans, size_t n);

/* The result an operation reports on success: a step may set params "result" (e.g. the
 * backup it made); otherwise the target. */
#define OP_RESULT_PARAM "result"

/* ---- helpers for steps ---- */

/* The tenant's record (caller frees with tenant_rec_free). */
int step_load_tenant(step_ctx *x, tenant_rec *t, sdo_error *err);
/* Sets one text value in the operation's params and reloads them into x->op. */
int step_set_param(step_ctx *x, const char *key, const char *value, sdo_error *err);
/* Reads a server's record (caller frees with server_rec_free). */
int step_server(step_ctx *x, const char *id, server_rec *s, sdo_error *err);
/* Starts the tenant's app against server, records its port, and waits until it answers. */
int step_app_start(step_ctx *x, tenant_rec *t, const char *server, sdo_error *err);

/* The steps of creating a tenant, for plans that create one another way. */
int step_place(step_ctx *x, sdo_error *err);
int step_unplace(step_ctx *x, sdo_error *err);
int step_drop_role(step_ctx *x, sdo_error *err);
int step_app_remove(step_ctx *x, sdo_error *err);
int step_app_stop(step_ctx *x, sdo_error *err);

#endif
