/* Backups of tenants: a database dump, the filestore as a tar stream and a manifest, streamed
 * to backup storage with SHA-256 checksums; restores in place or into a new tenant, verified
 * before (checksums) and after (row counts); policies per plan (plans.yaml) overridable per
 * tenant; a scheduler that runs due backups through the operations engine exactly once across
 * servers, prunes by grandfather-father-son retention and runs restore drills.
 *
 * Requests are recorded as operations (kind BACKUP or RESTORE, target the tenant), so one
 * operation at a time runs on a tenant and the engine retries, resumes and compensates them. */
#ifndef SDO_BACKUP_H
#define SDO_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "ops/steps.h"
#include "saasodoo/v1/operation.pb-c.h"
#include "store/backups.h"
#include "store/store.h"
#include "tenants/tenants.h"

/* ---- clock ---- */

/* The clock of backups and their schedules: the time now plus SAASODOO_CLOCK_OFFSET_SECONDS
 * (read once), so tests can move a server into the future. Microseconds since the epoch. */
int64_t backup_now_us(void);
#define BACKUP_CLOCK_ENV "SAASODOO_CLOCK_OFFSET_SECONDS"

/* ---- names ---- */

#define BACKUP_ID_PATTERN "^[a-z0-9][a-z0-9-]{0,62}$"
bool backup_id_ok(const char *id);
/* Parses "tenants/{tenant}/backups/{backup}"; INVALID_ARGUMENT naming field. */
int backup_name_parse(const char *name, const char *field, char tenant[64], char id[64],
                      sdo_error *err);
/* Parses "tenants/{tenant}/backupPolicy". */
int backup_policy_name_parse(const char *name, const char *field, char tenant[64], sdo_error *err);

/* ---- policies ---- */

/* Reads the per-plan policies (plans[].backup) of the plan file; plans without one get
 * daily at 02:00 keeping backup_retention_days daily backups. Returns 0, or -1 with a
 * message naming file, line and key. Call once at start, before the scheduler. */
int backup_policies_load(const char *plans_file, char *err, size_t errsz);
/* The policy of a plan (the default when the plan is unknown). */
void backup_plan_policy(const char *plan_id, backup_policy *out);
/* Checks a policy: INVALID_ARGUMENT naming the field (prefix + name). */
int backup_policy_check(const backup_policy *p, const char *prefix, sdo_error *err);
/* The policy in force for a tenant: its override, or its plan's. */
int backup_policy_effective(store *st, PGconn *c, const char *tenant, const char *plan_id,
                            backup_policy *out, bool *overridden, int64_t *version, sdo_error *err);

/* Which backups grandfather-father-son retention keeps, given backups newest first
 * (create_us) and now: the newest of each of the keep_daily most recent days that have one,
 * of the keep_weekly most recent ISO weeks and of the keep_monthly most recent months, and
 * always the newest. keep[i] is set for each one kept. */
void backup_gfs(const backup_policy *p, const int64_t *create_us, size_t n, bool *keep);

/* ---- requests ---- */

typedef struct backup_request {
    const char *tenant_id;
    const char *trigger; /* MANUAL | SCHEDULED */
    const char *description;
    const char *slot; /* scheduled: the slot to take in the same transaction; else NULL */
    const char *requester;
} backup_request;

/* Records a backup (CREATING) and its BACKUP operation. FAILED_PRECONDITION (reason
 * OPERATION_RUNNING) while another operation runs on the tenant, or when the tenant is not
 * ACTIVE or SUSPENDED; NOT_FOUND for an unknown tenant. With a slot already taken, returns 1
 * and records nothing. */
int backup_create(store *st, const sdo_config *cfg, const backup_request *in, const request_key *rk,
                  Saasodoo__V1__Operation **out, sdo_error *err);
/* Marks a backup DELETING and records the operation that removes it. */
int backup_delete(store *st, const char *tenant, const char *id, const char *requester,
                  const request_key *rk, Saasodoo__V1__Operation **out, sdo_error *err);
/* Records a restore of a COMPLETE backup: in place (target "" or the same tenant) or into the
 * new tenant target, made with the backup's plan and Odoo version. */
int backup_restore(store *st, const sdo_config *cfg, const char *tenant, const char *id,
                   const char *target, const char *requester, const request_key *rk,
                   Saasodoo__V1__Operation **out, sdo_error *err);

/* ---- engine ---- */

/* Registers the BACKUP and RESTORE plans with the engine. */
int backup_register_plans(void);
/* The first step of a migration: a PRE_MIGRATION backup of the tenant. */
int backup_step_pre_migration(step_ctx *x, sdo_error *err);

/* ---- scheduler ---- */

typedef struct backup_scheduler backup_scheduler;
/* Starts the scheduler thread (env is copied; eng is kicked when work is recorded). */
backup_scheduler *backup_scheduler_start(const engine_env *env, engine *eng);
/* Stops it, waiting for a drill in progress to finish its current tenant. Safe on NULL. */
void backup_scheduler_stop(backup_scheduler *s);

#endif
