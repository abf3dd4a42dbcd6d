/* The store's side of provisioning: database servers with their load, where each tenant's
 * database lives, and the claiming and progress of operation steps. Secrets (admin
 * conninfos, tenant passwords) are sealed with the platform key before they are stored. */
#ifndef SDO_PROVISIONING_STORE_H
#define SDO_PROVISIONING_STORE_H

#include <stdbool.h>

#include "saasodoo/v1/admin.pb-c.h"
#include "store/store.h"
#include "util/secret.h"

/* A database server as the engine sees it. admin_conninfo is malloc'ed (server_rec_free). */
typedef struct server_rec {
    char id[72];
    char kind[16]; /* SHARED | DEDICATED */
    char host[256];
    int port;
    int capacity;
    int load;
    bool accepting;
    char tenant[64];
    char cluster[64];
    char *admin_conninfo;
} server_rec;

void server_rec_free(server_rec *s);

/* A tenant's placement and credentials. password is malloc'ed (tenant_rec_free). */
typedef struct tenant_rec {
    char id[64];
    char plan_id[64];
    char state[16];
    char strategy[16];
    char server[72];
    char db_name[64];
    char db_role[64];
    char odoo_version[16];
    char *password; /* NULL until the role step made one */
    int app_port;
    int workers;
    int max_conn;
} tenant_rec;

void tenant_rec_free(tenant_rec *t);

/* ---- database servers ---- */

/* Inserts a server; ALREADY_EXISTS when the id is taken. */
int store_server_insert(store *st, PGconn *c, const secret_key *k, const server_rec *s,
                        const char *display_name, sdo_error *err);
/* Reads one (with its current load); NOT_FOUND when absent. */
int store_server_get(store *st, PGconn *c, const secret_key *k, const char *id, server_rec *out,
                     sdo_error *err);
/* Picks the accepting shared server with the lowest load that has room, other than
 * exclude (may be NULL), locking its row for the caller's transaction. RESOURCE_EXHAUSTED
 * when none has room. */
int store_server_pick_shared(store *st, PGconn *c, const secret_key *k, const char *exclude,
                             server_rec *out, sdo_error *err);
/* Deletes a server; FAILED_PRECONDITION while tenants are placed on it; NOT_FOUND. */
int store_server_delete(store *st, PGconn *c, const char *id, bool force, sdo_error *err);
/* Number of servers registered. */
int store_server_count(store *st, PGconn *c, int *n, sdo_error *err);
/* Lists servers as messages, oldest first, after sort key after_seq. */
int store_server_list(store *st, PGconn *c, const char *kind, int accepting, int64_t after_seq,
                      int limit, Saasodoo__V1__DatabaseServer ***out, size_t *n, int64_t *last,
                      bool *more, sdo_error *err);
/* One server as a message (without its conninfo). */
int store_server_message(store *st, PGconn *c, const char *id, Saasodoo__V1__DatabaseServer **out,
                         sdo_error *err);
/* Updates display name (NULL keep), capacity (< 0 keep), accepting (< 0 keep) when the
 * version matches (< 0 any). 1 updated, 0 no match. */
int store_server_update(store *st, PGconn *c, const char *id, int64_t version,
                        const char *display_name, int capacity, int accepting, sdo_error *err);

/* ---- tenants ---- */

int store_tenant_rec_get(store *st, PGconn *c, const secret_key *k, const char *id, bool lock,
                         tenant_rec *out, sdo_error *err);
/* Records the server (and strategy: NULL keeps it) the tenant's database lives on. */
int store_tenant_set_server(store *st, PGconn *c, const char *id, const char *server,
                            const char *strategy, sdo_error *err);
/* Records database name, role and the sealed password. */
int store_tenant_set_db(store *st, PGconn *c, const secret_key *k, const char *id,
                        const char *db_name, const char *db_role, const char *password,
                        sdo_error *err);
int store_tenant_set_app_port(store *st, PGconn *c, const char *id, int port, sdo_error *err);
/* Marks a tenant DELETED now. */
int store_tenant_mark_deleted(store *st, PGconn *c, const char *id, sdo_error *err);
/* Ids of tenants not DELETED (for consistency checks); caller frees. */
int store_tenant_live_ids(store *st, PGconn *c, char ***ids, size_t *n, sdo_error *err);
/* Ids of every tenant ever recorded, deleted ones included; caller frees. */
int store_tenant_known_ids(store *st, PGconn *c, char ***ids, size_t *n, sdo_error *err);

/* ---- operation steps ---- */

/* An operation as the engine runs it. params is JSON text (malloc'ed). */
typedef struct op_rec {
    char id[37];
    char kind[24];
    char target[80];
    char state[16];
    int step_index;
    bool compensating;
    int attempt;
    int error_code;
    char error_message[512];
    char *params;
} op_rec;

void op_rec_free(op_rec *o);

/* Claims the oldest runnable operation not held by a live server (FOR UPDATE SKIP LOCKED),
 * setting lease_owner to owner: 1 claimed (out filled), 0 none. */
int store_op_claim(store *st, PGconn *c, int owner, op_rec *out, sdo_error *err);
/* Re-reads the fields that others may change (state: CANCELLING). */
int store_op_reload(store *st, PGconn *c, op_rec *o, sdo_error *err);
/* Records the step now running (text and progress), visible to watchers. */
int store_op_progress(store *st, PGconn *c, const char *id, const char *step, int progress,
                      sdo_error *err);
/* Records a completed step (or an undone one when compensating). */
int store_op_advance(store *st, PGconn *c, const char *id, int step_index, bool compensating,
                     int progress, int attempt, int error_code, const char *error_message,
                     sdo_error *err);
/* Gives the operation back for a retry after delay_ms. */
int store_op_retry_later(store *st, PGconn *c, const char *id, int attempt, int delay_ms,
                         const char *step, sdo_error *err);
/* Sets one text value in params. */
int store_op_set_param(store *st, PGconn *c, const char *id, const char *key, const char *value,
                       sdo_error *err);
/* Finishes: state SUCCEEDED/FAILED/CANCELLED, done, error, result. */
int store_op_finish(store *st, PGconn *c, const char *id, const char *state, int error_code,
                    const char *error_message, const char *result, sdo_error *err);

/* Reads one text value of a JSON params object (NULL when absent): malloc'ed. */
char *op_param(const char *params, const char *key);

#endif
