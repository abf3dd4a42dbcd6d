/* The store's side of backups: backup rows and their parts, per-tenant policy overrides, and
 * the slots the scheduler takes. All SQL of these tables lives here. Functions take a
 * connection from the caller (so several may share a transaction) and return 0 (or a count
 * where stated) or a negative status with err filled. */
#ifndef SDO_BACKUPS_STORE_H
#define SDO_BACKUPS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "saasodoo/v1/backup.pb-c.h"
#include "store/store.h"

/* A backup as the backup domain sees it. */
typedef struct backup_rec {
    char tenant_id[64];
    char id[64];
    char state[16];   /* CREATING | COMPLETE | FAILED | DELETING */
    char trigger[24]; /* MANUAL | SCHEDULED | PRE_MIGRATION | PRE_PLAN_CHANGE */
    char plan_id[64];
    char strategy[16];
    char odoo_version[16];
    char storage[16];
    char prefix[200]; /* object keys are prefix + part name */
    int64_t create_us;
    int64_t size_bytes;
} backup_rec;

typedef struct backup_part_rec {
    char name[64];
    int64_t size;
    char sha256[65];
} backup_part_rec;

/* The values of a new backup row (state CREATING). */
typedef struct backup_row {
    const char *tenant_id;
    const char *id;
    const char *trigger;
    const char *description;
    const char *plan_id;
    const char *strategy;
    const char *odoo_version;
    const char *storage;
    const char *prefix;
    int64_t create_us;
} backup_row;

int store_backup_insert(store *st, PGconn *c, const backup_row *row, sdo_error *err);
/* NOT_FOUND when absent. */
int store_backup_get_rec(store *st, PGconn *c, const char *tenant, const char *id, bool lock,
                         backup_rec *out, sdo_error *err);
/* The backup as a message, with its parts. NOT_FOUND when absent. */
int store_backup_get(store *st, PGconn *c, const char *tenant, const char *id,
                     Saasodoo__V1__Backup **out, sdo_error *err);
/* A page of a tenant's backups, newest first, before sort key before_seq (0 = from the
 * newest); state and trigger (NULL = any) filter. */
int store_backup_list(store *st, PGconn *c, const char *tenant, const char *state,
                      const char *trigger, int64_t before_seq, int limit,
                      Saasodoo__V1__Backup ***out, size_t *n, int64_t *last_seq, bool *more,
                      sdo_error *err);
/* Every backup of a tenant in state (NULL = any), newest first; caller frees *out. */
int store_backup_recs(store *st, PGconn *c, const char *tenant, const char *state, backup_rec **out,
                      size_t *n, sdo_error *err);
/* Moves a backup from state `from` (NULL = any) to `to`, recording error (NULL = keep).
 * Returns rows changed. */
int store_backup_set_state(store *st, PGconn *c, const char *tenant, const char *id,
                           const char *from, const char *to, const char *error, sdo_error *err);
/* Records what the dump's snapshot saw: server version and {"schema.table": rows} as JSON. */
int store_backup_set_snapshot(store *st, PGconn *c, const char *tenant, const char *id,
                              const char *postgres_version, const char *row_counts_json,
                              sdo_error *err);
/* Records (or replaces) a committed part. */
int store_backup_put_part(store *st, PGconn *c, const char *tenant, const char *id,
                          const char *name, int ord, int64_t size, const char *sha256,
                          sdo_error *err);
/* The parts in their order; caller frees *out. */
int store_backup_parts(store *st, PGconn *c, const char *tenant, const char *id,
                       backup_part_rec **out, size_t *n, sdo_error *err);
/* The row counts as JSON text (malloc'ed) and the server version (into pgv). */
int store_backup_snapshot(store *st, PGconn *c, const char *tenant, const char *id,
                          char **row_counts_json, char *pgv, size_t pgvsz, sdo_error *err);
/* CREATING -> COMPLETE with the size of its parts and the completion time. Returns rows
 * changed (0: it was not CREATING). */
int store_backup_complete(store *st, PGconn *c, const char *tenant, const char *id,
                          int64_t complete_us, sdo_error *err);
/* Removes the row and its parts. */
int store_backup_delete(store *st, PGconn *c, const char *tenant, const char *id, sdo_error *err);
/* Records the result of a restore drill ("passed" or "failed: ..."). */
int store_backup_set_drill(store *st, PGconn *c, const char *tenant, const char *id,
                           const char *result, sdo_error *err);

/* ---- policies ---- */

typedef struct backup_policy {
    char schedule[16];   /* hourly | daily | disabled */
    char time_of_day[8]; /* "HH:MM" for daily */
    int keep_daily;
    int keep_weekly;
    int keep_monthly;
} backup_policy;

/* The tenant's override: 1 found (out and *version set), 0 none. */
int store_backup_policy_get(store *st, PGconn *c, const char *tenant, bool lock, backup_policy *out,
                            int64_t *version, sdo_error *err);
/* Inserts or replaces the override; *version gets the new version. */
int store_backup_policy_put(store *st, PGconn *c, const char *tenant, const backup_policy *p,
                            int64_t *version, sdo_error *err);

/* ---- slots ---- */

/* Takes (scope, slot) inside the caller's transaction: 1 taken now, 0 taken before. */
int store_backup_slot_take(store *st, PGconn *c, const char *scope, const char *slot,
                           sdo_error *err);
/* Forgets slots older than days. */
int store_backup_slots_prune(store *st, PGconn *c, int days, sdo_error *err);

#endif
