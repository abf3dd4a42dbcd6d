/* The BACKUP and RESTORE plans run by the operations engine, and the backup step at the head
 * of a migration. Every step can run again after a crash: a part is written again (the
 * storage replaces it on commit), a scratch database is made again from nothing, a swap that
 * already happened is recognised. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "backup/stream.h"
#include "util/buf.h"
#include "util/log.h"

#define PART_DATABASE "database.dump"
#define PART_FILES "files.tar"
#define PART_MANIFEST "manifest.json"

/* ---- shared ------------------------------------------------------------------------------- */

/* Runs a store call on a pooled connection. */
#define STORE(x, err, call)                                                                        \
    ({                                                                                             \
        PGconn *c = store_acquire((x)->env->st, (err));                                            \
        int rc_ = c ? (call) : -(int)(err)->code;                                                  \
        if (c)                                                                                     \
            store_release((x)->env->st, c);                                                        \
        rc_;                                                                                       \
    })

static storage *stg_of(step_ctx *x, sdo_error *err)
{
    if (!x->env->backups)
        sdo_fail(err, SDO_FAILED_PRECONDITION, "no backup storage is configured");
    return x->env->backups;
}

/* The backup named by the operation's params: tenant (source_tenant or the target) and id. */
static int op_backup(step_ctx *x, char tenant[64], char id[64], sdo_error *err)
{
    char *src = op_param(x->op->params, "source_tenant");
    char *bid = op_param(x->op->params, "backup");
    sdo_strlcpy(tenant, src && src[0] ? src : x->tenant_id, 64);
    int rc = 0;
    if (!bid || !backup_id_ok(bid))
        rc = sdo_fail(err, SDO_INTERNAL, "the operation names no backup");
    else
        sdo_strlcpy(id, bid, 64);
    free(src);
    free(bid);
    return rc;
}

static int load_backup(step_ctx *x, const char *tenant, const char *id, backup_rec *b,
                       sdo_error *err)
{
    return STORE(x, err, store_backup_get_rec(x->env->st, c, tenant, id, false, b, err));
}

static void part_key(const backup_rec *b, const char *part, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s%s", b->prefix, part);
}

static const char *db_of(const tenant_rec *t)
{
    return t->db_name[0] ? t->db_name : t->id;
}

static const char *role_of(const tenant_rec *t)
{
    return t->db_role[0] ? t->db_role : t->id;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int rm_tree(const char *path, sdo_error *err)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : sdo_fail(err, SDO_INTERNAL, "%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
        return sdo_fail(err, SDO_INTERNAL, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* path + suffix, malloc'ed. */
static char *with_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *s = sdo_malloc(n);
    snprintf(s, n, "%s%s", path, suffix);
    return s;
}

/* Removes every object of a backup (best effort) and its parts' records. */
static void discard_objects(step_ctx *x, const backup_rec *b)
{
    storage *stg = x->env->backups;
    if (!stg)
        return;
    const char *parts[] = {PART_DATABASE, PART_FILES, PART_MANIFEST};
    for (size_t i = 0; i < 3; i++) {
        char key[300];
        part_key(b, parts[i], key, sizeof key);
        sdo_error e = {0};
        if (stg->ops->remove(stg, key, &e) < 0)
            log_warn("msg=\"cannot remove a backup part\" key=%s error=\"%s\"", key, e.message);
    }
}

/* ---- BACKUP: create ------------------------------------------------------------------------ */

static int b_start(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64];
    backup_rec b;
    int rc = op_backup(x, tenant, id, err);
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == 0 && strcmp(b.state, "CREATING") != 0)
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "backup '%s' is %s, not CREATING", id, b.state);
    return rc;
}

/* Undo of the start: the backup failed; its objects go, its record says why. */
static int b_fail(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64];
    backup_rec b;
    int rc = op_backup(x, tenant, id, err);
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == -SDO_NOT_FOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (strcmp(b.state, "COMPLETE") == 0)
        return 0;
    discard_objects(x, &b);
    const char *why = x->op->error_message[0] ? x->op->error_message : "the backup did not finish";
    return STORE(x, err,
                 store_backup_set_state(x->env->st, c, tenant, id, NULL, "FAILED", why, err)) < 0
               ? -(int)err->code
               : 0;
}

static int b_database(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64], key[300];
    backup_rec b;
    tenant_rec t = {0};
    server_rec s = {0};
    bk_snapshot snap = {0};
    bk_part part;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == 0)
        rc = step_load_tenant(x, &t, err);
    if (rc == 0 && !t.server[0])
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "tenant '%s' has no database server", t.id);
    if (rc == 0)
        rc = step_server(x, t.server, &s, err);
    if (rc < 0)
        goto out;
    part_key(&b, PART_DATABASE, key, sizeof key);
    int64_t t0 = sdo_mono_us();
    rc = bk_dump_database(stg, key, &s, db_of(&t), x->env->cfg->dbstrategy_pg_bin_dir, &part, &snap,
                          err);
    if (rc < 0)
        goto out;
    rc = STORE(x, err,
               store_backup_set_snapshot(x->env->st, c, tenant, id, snap.postgres_version,
                                         snap.row_counts_json, err));
    if (rc == 0)
        rc = STORE(x, err,
                   store_backup_put_part(x->env->st, c, tenant, id, PART_DATABASE, 1, part.size,
                                         part.sha256, err));
    if (rc == 0)
        log_info("msg=\"database dumped\" tenant=%s backup=%s bytes=%lld ms=%lld", tenant, id,
                 (long long)part.size, (long long)((sdo_mono_us() - t0) / 1000));
out:
    free(snap.row_counts_json);
    server_rec_free(&s);
    tenant_rec_free(&t);
    return rc;
}

static int b_files(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64], key[300];
    backup_rec b;
    bk_part part;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc < 0)
        return rc;
    char *dir = x->env->rt->ops->filestore_path(x->env->rt, tenant);
    part_key(&b, PART_FILES, key, sizeof key);
    rc = bk_tar_dir(stg, key, dir ? dir : "", &part, err);
    free(dir);
    if (rc == 0)
        rc = STORE(x, err,
                   store_backup_put_part(x->env->st, c, tenant, id, PART_FILES, 2, part.size,
                                         part.sha256, err));
    return rc;
}

static void json_str(sdo_buf *b, const char *s)
{
    sdo_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sdo_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            sdo_buf_printf(b, "\\u%04x", *p);
        else
            sdo_buf_append(b, p, 1);
    }
    sdo_buf_puts(b, "\"");
}

static void iso_time(int64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int b_manifest(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64], key[300], pgv[64], start[32], end[32];
    backup_rec b;
    backup_part_rec *parts = NULL;
    size_t n = 0;
    char *rows = NULL;
    sdo_buf m = {0};
    bk_part part;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == 0 && strcmp(b.state, "COMPLETE") == 0)
        return 0; /* done before a crash */
    if (rc == 0)
        rc = STORE(x, err, store_backup_parts(x->env->st, c, tenant, id, &parts, &n, err));
    if (rc == 0)
        rc = STORE(x, err,
                   store_backup_snapshot(x->env->st, c, tenant, id, &rows, pgv, sizeof pgv, err));
    if (rc < 0)
        goto out;
    int64_t done_us = backup_now_us();
    iso_time(b.create_us, start);
    iso_time(done_us, end);
    sdo_buf_puts(&m, "{\n  \"format\": 1,\n  \"tenant\": ");
    json_str(&m, tenant);
    sdo_buf_puts(&m, ",\n  \"backup\": ");
    json_str(&m, id);
    sdo_buf_puts(&m, ",\n  \"trigger\": ");
    json_str(&m, b.trigger);
    sdo_buf_puts(&m, ",\n  \"plan\": ");
    json_str(&m, b.plan_id);
    sdo_buf_puts(&m, ",\n  \"strategy\": ");
    json_str(&m, b.strategy);
    sdo_buf_puts(&m, ",\n  \"postgres_version\": ");
    json_str(&m, pgv);
    sdo_buf_puts(&m, ",\n  \"odoo_version\": ");
    json_str(&m, b.odoo_version);
    sdo_buf_printf(&m, ",\n  \"start_time\": \"%s\",\n  \"end_time\": \"%s\",\n", start, end);
    sdo_buf_printf(&m, "  \"row_counts\": %s,\n  \"parts\": [", rows);
    for (size_t i = 0; i < n; i++) {
        sdo_buf_printf(&m, "%s\n    {\"name\": ", i ? "," : "");
        json_str(&m, parts[i].name);
        sdo_buf_printf(&m, ", \"size_bytes\": %lld, \"sha256\": \"%s\"}", (long long)parts[i].size,
                       parts[i].sha256);
    }
    sdo_buf_puts(&m, "\n  ]\n}\n");
    if (m.overflow) {
        rc = sdo_fail(err, SDO_INTERNAL, "the manifest of backup '%s' is too large", id);
        goto out;
    }
    part_key(&b, PART_MANIFEST, key, sizeof key);
    if ((rc = bk_put_text(stg, key, m.data, &part, err)) < 0)
        goto out;
    rc = STORE(x, err,
               store_backup_put_part(x->env->st, c, tenant, id, PART_MANIFEST, 3, part.size,
                                     part.sha256, err));
    if (rc == 0) {
        rc = STORE(x, err, store_backup_complete(x->env->st, c, tenant, id, done_us, err));
        if (rc == 0)
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "backup '%s' stopped being CREATING", id);
        else if (rc > 0) {
            rc = 0;
            log_info("msg=\"backup complete\" tenant=%s backup=%s", tenant, id);
        }
    }
out:
    free(parts);
    free(rows);
    sdo_buf_free(&m);
    return rc;
}

/* ---- BACKUP: delete ------------------------------------------------------------------------ */

static int b_remove(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64];
    backup_rec b;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == -SDO_NOT_FOUND)
        return 0;
    if (rc < 0)
        return rc;
    const char *parts[] = {PART_MANIFEST, PART_FILES, PART_DATABASE};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        char key[300];
        part_key(&b, parts[i], key, sizeof key);
        if (stg->ops->remove(stg, key, err) < 0)
            rc = err->code == SDO_RESOURCE_EXHAUSTED
                     ? sdo_fail(err, SDO_UNAVAILABLE, "%s", err->message)
                     : -(int)err->code;
    }
    if (rc == 0)
        rc = STORE(x, err, store_backup_delete(x->env->st, c, tenant, id, err));
    return rc;
}

/* Undo of a delete that could not be done: the backup stays, as COMPLETE if it still has
 * every part, else FAILED. */
static int b_keep(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64];
    int rc = op_backup(x, tenant, id, err);
    if (rc == 0)
        rc = STORE(x, err,
                   store_backup_set_state(x->env->st, c, tenant, id, "DELETING", "FAILED",
                                          x->op->error_message, err));
    return rc < 0 ? rc : 0;
}

/* ---- RESTORE -------------------------------------------------------------------------------- */

/* Before anything is made: the backup is COMPLETE, its record has every part, the small
 * manifest matches its checksum, and the large parts are in storage with their recorded sizes.
 * The large parts' checksums are checked as they stream into pg_restore and tar (the restore
 * step), which fails with DATA_LOSS naming the part before anything is switched. */
static int r_verify(step_ctx *x, sdo_error *err)
{
    char tenant[64], id[64];
    backup_rec b;
    backup_part_rec *parts = NULL;
    size_t n = 0;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == 0 && strcmp(b.state, "COMPLETE") != 0)
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "backup '%s' is %s, not COMPLETE", id, b.state);
    if (rc == 0)
        rc = STORE(x, err, store_backup_parts(x->env->st, c, tenant, id, &parts, &n, err));
    bool have[3] = {false, false, false};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[300];
        part_key(&b, parts[i].name, key, sizeof key);
        bool manifest = strcmp(parts[i].name, PART_MANIFEST) == 0;
        rc = manifest ? bk_verify_part(stg, key, parts[i].name, parts[i].size, parts[i].sha256, err)
                      : bk_check_part_size(stg, key, parts[i].name, parts[i].size, err);
        have[0] = have[0] || strcmp(parts[i].name, PART_DATABASE) == 0;
        have[1] = have[1] || strcmp(parts[i].name, PART_FILES) == 0;
        have[2] = have[2] || manifest;
    }
    if (rc == 0 && !(have[0] && have[1] && have[2]))
        rc = sdo_fail(err, SDO_DATA_LOSS, "backup '%s' lacks a part in its record", id);
    free(parts);
    if (rc == 0)
        log_info("msg=\"backup parts present\" tenant=%s backup=%s parts=%zu", tenant, id, n);
    return rc;
}

/* The part record named name. */
static int part_of(step_ctx *x, const char *tenant, const char *id, const char *name,
                   backup_part_rec *out, sdo_error *err)
{
    backup_part_rec *parts = NULL;
    size_t n = 0;
    int rc = STORE(x, err, store_backup_parts(x->env->st, c, tenant, id, &parts, &n, err));
    bool found = false;
    for (size_t i = 0; rc == 0 && i < n && !found; i++) {
        if (strcmp(parts[i].name, name) == 0) {
            *out = parts[i];
            found = true;
        }
    }
    free(parts);
    if (rc == 0 && !found)
        rc = sdo_fail(err, SDO_DATA_LOSS, "backup '%s' has no part '%s'", id, name);
    return rc;
}

/* Restores the backup's database into db on server s and its filestore into files_dir (made
 * empty first), both checked against their checksums as they stream. db is made empty first
 * (owned by owner) unless the caller has just made it (fresh). On failure the caller drops db
 * and removes files_dir. */
static int restore_into(step_ctx *x, const server_rec *s, const char *db, const char *owner,
                        bool fresh, const char *files_dir, sdo_error *err)
{
    char tenant[64], id[64], key[300];
    backup_rec b;
    backup_part_rec dump, files;
    storage *stg = stg_of(x, err);
    int rc = stg ? op_backup(x, tenant, id, err) : -(int)err->code;
    if (rc == 0)
        rc = load_backup(x, tenant, id, &b, err);
    if (rc == 0)
        rc = part_of(x, tenant, id, PART_DATABASE, &dump, err);
    if (rc == 0)
        rc = part_of(x, tenant, id, PART_FILES, &files, err);
    if (rc == 0 && !fresh)
        rc = bk_scratch_database(s, db, owner, true, err);
    if (rc < 0)
        return rc;
    int64_t t0 = sdo_mono_us();
    part_key(&b, PART_DATABASE, key, sizeof key);
    rc = bk_restore_database(stg, key, PART_DATABASE, dump.size, dump.sha256, s, db, owner,
                             x->env->cfg->dbstrategy_pg_bin_dir, err);
    if (rc == 0)
        log_info("msg=\"database restored\" tenant=%s backup=%s into=%s ms=%lld", tenant, id, db,
                 (long long)((sdo_mono_us() - t0) / 1000));
    if (rc == 0 && files_dir) {
        if ((rc = rm_tree(files_dir, err)) == 0 && mkdir(files_dir, 0750) < 0)
            rc = sdo_fail(err, SDO_INTERNAL, "cannot create %s: %s", files_dir, strerror(errno));
        part_key(&b, PART_FILES, key, sizeof key);
        if (rc == 0)
            rc = bk_untar(stg, key, PART_FILES, files.size, files.sha256, files_dir, err);
    }
    return rc;
}

static int check_rows(step_ctx *x, const server_rec *s, const char *db, sdo_error *err)
{
    char tenant[64], id[64], pgv[64];
    char *rows = NULL;
    int rc = op_backup(x, tenant, id, err);
    if (rc == 0)
        rc = STORE(x, err,
                   store_backup_snapshot(x->env->st, c, tenant, id, &rows, pgv, sizeof pgv, err));
    int tables = 0;
    if (rc == 0)
        rc = bk_check_rows(s, db, rows, &tables, err);
    if (rc == 0)
        log_info("msg=\"restored rows match the manifest\" backup=%s database=%s tables=%d", id, db,
                 tables);
    free(rows);
    return rc;
}

/* Tenant, its server, and the names used while restoring in place. */
typedef struct in_place {
    tenant_rec t;
    server_rec s;
    char scratch[80]; /* the database restored into */
    char old[80];     /* the tenant's database while the restored one takes its name */
    char *files;      /* the filestore */
    char *files_new;
    char *files_old;
} in_place;

static void in_place_free(in_place *p)
{
    tenant_rec_free(&p->t);
    server_rec_free(&p->s);
    free(p->files);
    free(p->files_new);
    free(p->files_old);
}

static int in_place_load(step_ctx *x, in_place *p, sdo_error *err)
{
    memset(p, 0, sizeof *p);
    int rc = step_load_tenant(x, &p->t, err);
    if (rc == 0 && !p->t.server[0])
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "tenant '%s' has no database server", p->t.id);
    if (rc == 0)
        rc = step_server(x, p->t.server, &p->s, err);
    if (rc < 0)
        return rc;
    snprintf(p->scratch, sizeof p->scratch, "%s__restore", db_of(&p->t));
    snprintf(p->old, sizeof p->old, "%s__old", db_of(&p->t));
    p->files = x->env->rt->ops->filestore_path(x->env->rt, p->t.id);
    if (!p->files)
        return sdo_fail(err, SDO_INTERNAL, "tenant '%s' has no filestore path", p->t.id);
    p->files_new = with_suffix(p->files, ".restore");
    p->files_old = with_suffix(p->files, ".old");
    return 0;
}

static int ri_freeze(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = x->env->rt->ops->stop(x->env->rt, t.id, err);
    if (rc == 0)
        rc = dbs_set_login(&x->dbs, t.server, role_of(&t), db_of(&t), false, err);
    tenant_rec_free(&t);
    return rc;
}

static int ri_unfreeze(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = dbs_set_login(&x->dbs, t.server, role_of(&t), db_of(&t), true, err);
    if (rc == 0)
        rc = step_app_start(x, &t, t.server, err);
    tenant_rec_free(&t);
    return rc;
}

/* A restore step that failed removes what it made before it reports the failure (the
 * engine undoes only the steps that completed): a damaged part leaves no restored copy. */
static int restore_failed(step_ctx *x, int rc, int (*undo)(step_ctx *, sdo_error *))
{
    sdo_error e = {0};
    if (undo(x, &e) < 0)
        log_warn("msg=\"cannot remove what a failed restore made\" tenant=%s error=\"%s\"",
                 x->tenant_id, e.message);
    return rc;
}

static int ri_unrestore(step_ctx *x, sdo_error *err);

static int ri_restore(step_ctx *x, sdo_error *err)
{
    in_place p;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = restore_into(x, &p.s, p.scratch, role_of(&p.t), false, p.files_new, err);
    in_place_free(&p);
    return rc < 0 ? restore_failed(x, rc, ri_unrestore) : rc;
}

static int ri_unrestore(step_ctx *x, sdo_error *err)
{
    in_place p;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = bk_scratch_database(&p.s, p.scratch, NULL, false, err);
    if (rc == 0)
        rc = rm_tree(p.files_new, err);
    in_place_free(&p);
    return rc;
}

static int ri_check(step_ctx *x, sdo_error *err)
{
    in_place p;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = check_rows(x, &p.s, p.scratch, err);
    in_place_free(&p);
    return rc;
}

static int db_exists(const server_rec *s, const char *db, bool *exists, sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    int rc = dbs_database_exists(c, db, exists, err);
    PQfinish(c);
    return rc;
}

static int rename_db(const server_rec *s, const char *from, const char *to, sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    char *qf = PQescapeIdentifier(c, from, strlen(from));
    char *qt = PQescapeIdentifier(c, to, strlen(to));
    sdo_buf sql = {0};
    /* nobody may be connected to a database being renamed */
    const char *p[] = {from};
    PQclear(PQexecParams(c,
                         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                         " datname = $1 AND pid <> pg_backend_pid()",
                         1, NULL, p, NULL, NULL, 0));
    sdo_buf_printf(&sql, "ALTER DATABASE %s RENAME TO %s", qf, qt);
    int rc = dbs_exec(c, sql.data, "renaming a database", err);
    sdo_buf_free(&sql);
    PQfreemem(qf);
    PQfreemem(qt);
    PQfinish(c);
    return rc;
}

static int rename_path(const char *from, const char *to, sdo_error *err)
{
    if (rename(from, to) < 0 && errno != ENOENT)
        return sdo_fail(err, SDO_INTERNAL, "cannot rename %s to %s: %s", from, to, strerror(errno));
    return 0;
}

/* db -> db__old, db__restore -> db; the same for the filestore. A swap already made (the
 * scratch database gone, the old one there) is left as it is. */
static int ri_swap(step_ctx *x, sdo_error *err)
{
    in_place p;
    bool scratch = false, old = false, cur = false;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = db_exists(&p.s, p.scratch, &scratch, err);
    if (rc == 0)
        rc = db_exists(&p.s, p.old, &old, err);
    if (rc == 0)
        rc = db_exists(&p.s, db_of(&p.t), &cur, err);
    if (rc == 0 && scratch) {
        if (cur && !old)
            rc = rename_db(&p.s, db_of(&p.t), p.old, err);
        else if (cur && old)
            rc = sdo_fail(err, SDO_INTERNAL, "both %s and %s exist; the swap cannot go on",
                          db_of(&p.t), p.old);
        if (rc == 0)
            rc = rename_db(&p.s, p.scratch, db_of(&p.t), err);
    } else if (rc == 0 && !cur) {
        rc = sdo_fail(err, SDO_INTERNAL, "neither the restored nor the tenant's database exists");
    }
    struct stat sb;
    if (rc == 0 && stat(p.files_new, &sb) == 0) {
        rc = rm_tree(p.files_old, err);
        if (rc == 0)
            rc = rename_path(p.files, p.files_old, err);
        if (rc == 0)
            rc = rename_path(p.files_new, p.files, err);
    }
    in_place_free(&p);
    return rc;
}

static int ri_unswap(step_ctx *x, sdo_error *err)
{
    in_place p;
    bool old = false, cur = false;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = db_exists(&p.s, p.old, &old, err);
    if (rc == 0)
        rc = db_exists(&p.s, db_of(&p.t), &cur, err);
    if (rc == 0 && old) {
        if (cur)
            rc = rename_db(&p.s, db_of(&p.t), p.scratch, err);
        if (rc == 0)
            rc = rename_db(&p.s, p.old, db_of(&p.t), err);
    }
    struct stat sb;
    if (rc == 0 && stat(p.files_old, &sb) == 0) {
        rc = rm_tree(p.files_new, err);
        if (rc == 0)
            rc = rename_path(p.files, p.files_new, err);
        if (rc == 0)
            rc = rename_path(p.files_old, p.files, err);
    }
    in_place_free(&p);
    return rc;
}

static int ri_open(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = dbs_setup_role(&x->dbs, &t, t.server, true, err);
    tenant_rec_free(&t);
    return rc;
}

static int ri_close(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = dbs_set_login(&x->dbs, t.server, role_of(&t), db_of(&t), false, err);
    tenant_rec_free(&t);
    return rc;
}

static int ri_app(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = step_app_start(x, &t, t.server, err);
    tenant_rec_free(&t);
    return rc;
}

static int ri_cleanup(step_ctx *x, sdo_error *err)
{
    in_place p;
    int rc = in_place_load(x, &p, err);
    if (rc == 0)
        rc = bk_scratch_database(&p.s, p.old, NULL, false, err);
    if (rc == 0)
        rc = rm_tree(p.files_old, err);
    in_place_free(&p);
    return rc;
}

/* ---- RESTORE into a new tenant ----------------------------------------------------------------
 */

static int rn_unrestore(step_ctx *x, sdo_error *err);

static int rn_restore(step_ctx *x, sdo_error *err)
{
    tenant_rec t = {0};
    server_rec s = {0};
    char *files = NULL;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0 && !t.server[0])
        rc = sdo_fail(err, SDO_INTERNAL, "tenant '%s' was not placed", t.id);
    if (rc == 0)
        rc = step_server(x, t.server, &s, err);
    /* an empty database under the tenant's name, then its role (which takes it over); the
     * restore goes into that database as it is */
    if (rc == 0)
        rc = bk_scratch_database(&s, t.id, NULL, true, err);
    if (rc == 0)
        rc = dbs_setup_role(&x->dbs, &t, t.server, false, err);
    if (rc == 0) {
        files = x->env->rt->ops->filestore_path(x->env->rt, t.id);
        rc = restore_into(x, &s, t.id, t.id, true, files, err);
    }
    bool placed = t.server[0] != 0;
    free(files);
    server_rec_free(&s);
    tenant_rec_free(&t);
    return rc < 0 && placed ? restore_failed(x, rc, rn_unrestore) : rc;
}

static int rn_unrestore(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0 && t.server[0])
        rc = dbs_drop(&x->dbs, t.server, t.id, t.id, err);
    if (rc == 0)
        rc = x->env->rt->ops->remove(x->env->rt, t.id, err);
    tenant_rec_free(&t);
    return rc;
}

static int rn_check(step_ctx *x, sdo_error *err)
{
    tenant_rec t;
    server_rec s = {0};
    int rc = step_load_tenant(x, &t, err);
    if (rc == 0)
        rc = step_server(x, t.server, &s, err);
    if (rc == 0)
        rc = check_rows(x, &s, t.id, err);
    server_rec_free(&s);
    tenant_rec_free(&t);
    return rc;
}

/* ---- plans ---------------------------------------------------------------------------------- */

static const step_def backup_steps[] = {
    {"start", "starting the backup", b_start, b_fail},
    {"database", "dumping the database", b_database, NULL},
    {"files", "archiving the filestore", b_files, NULL},
    {"manifest", "writing the manifest", b_manifest, NULL},
};
static const step_def delete_steps[] = {
    {"remove", "removing the backup", b_remove, b_keep},
};
static const step_def restore_in_place_steps[] = {
    {"verify", "checking the backup's parts", r_verify, NULL},
    {"restore", "restoring into a new database", ri_restore, ri_unrestore},
    {"check", "checking the restored rows against the manifest", ri_check, NULL},
    {"freeze", "stopping Odoo and closing the database", ri_freeze, ri_unfreeze},
    {"swap", "putting the restored database in place", ri_swap, ri_unswap},
    {"open", "opening the database to the tenant", ri_open, ri_close},
    {"app", "starting Odoo", ri_app, step_app_stop},
    {"cleanup", "dropping the replaced database", ri_cleanup, NULL},
};
static const step_def restore_new_steps[] = {
    {"verify", "checking the backup's parts", r_verify, NULL},
    {"place", "choosing a database server", step_place, step_unplace},
    {"restore", "restoring the database and files", rn_restore, rn_unrestore},
    {"check", "checking the restored rows against the manifest", rn_check, NULL},
    {"open", "opening the database to the tenant", ri_open, ri_close},
    {"app", "starting Odoo", ri_app, step_app_remove},
};

static const op_plan backup_plans[] = {
    OP_PLAN("BACKUP", backup_steps, NULL, "", "create"),
    OP_PLAN("BACKUP", delete_steps, NULL, "", "delete"),
    OP_PLAN("RESTORE", restore_in_place_steps, "ACTIVE", "ACTIVE", "in_place"),
    OP_PLAN("RESTORE", restore_new_steps, "ACTIVE", NULL, "new_tenant"),
};

int backup_register_plans(void)
{
    return engine_register_plans(backup_plans, sizeof backup_plans / sizeof backup_plans[0]);
}

/* ---- before a migration --------------------------------------------------------------------- */

int backup_step_pre_migration(step_ctx *x, sdo_error *err)
{
    char *have = op_param(x->op->params, "backup");
    int rc = 0;
    if (!have || !have[0]) {
        /* record the backup and remember it in the migration's params */
        tenant_rec t;
        if ((rc = step_load_tenant(x, &t, err)) < 0) {
            free(have);
            return rc;
        }
        Saasodoo__V1__Tenant *msg = NULL;
        PGconn *c = store_acquire(x->env->st, err);
        rc = c ? store_tenant_get(x->env->st, c, t.id, false, &msg, err) : -(int)err->code;
        char id[64] = "";
        if (rc == 0) {
            time_t now = (time_t)(backup_now_us() / 1000000);
            struct tm tm;
            gmtime_r(&now, &tm);
            char uuid[37];
            sdo_uuid4(uuid);
            snprintf(id, sizeof id, "%04d%02d%02d-%02d%02d%02d-%.6s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, uuid);
            char prefix[200];
            snprintf(prefix, sizeof prefix, "tenants/%s/%s/", t.id, id);
            backup_row row = {
                .tenant_id = t.id,
                .id = id,
                .trigger = "PRE_MIGRATION",
                .description = "taken before a migration",
                .plan_id = t.plan_id,
                .strategy = t.strategy,
                .odoo_version = t.odoo_version,
                .storage = x->env->cfg->backup_storage,
                .prefix = prefix,
                .create_us = backup_now_us(),
            };
            rc = store_backup_insert(x->env->st, c, &row, err);
        }
        if (c)
            store_release(x->env->st, c);
        if (msg)
            protobuf_c_message_free_unpacked(&msg->base, NULL);
        tenant_rec_free(&t);
        if (rc == 0)
            rc = step_set_param(x, "backup", id, err);
        if (rc < 0) {
            free(have);
            return rc;
        }
    }
    free(have);
    rc = b_start(x, err);
    if (rc == -SDO_FAILED_PRECONDITION) {
        char tenant[64], id[64];
        backup_rec b;
        if (op_backup(x, tenant, id, err) == 0 && load_backup(x, tenant, id, &b, err) == 0 &&
            strcmp(b.state, "COMPLETE") == 0)
            return 0; /* made before a crash */
        /* a failed attempt: the next one starts a new backup */
        step_set_param(x, "backup", "", &(sdo_error){0});
        return sdo_fail(err, SDO_UNAVAILABLE, "the backup before the move failed; trying again");
    }
    if (rc == 0)
        rc = b_database(x, err);
    if (rc == 0)
        rc = b_files(x, err);
    if (rc == 0)
        rc = b_manifest(x, err);
    if (rc < 0) {
        sdo_error saved = *err;
        sdo_error e = {0};
        char msg[600];
        snprintf(msg, sizeof msg, "backing up before the move: %s", saved.message);
        sdo_strlcpy(x->op->error_message, msg, sizeof x->op->error_message);
        b_fail(x, &e);
        x->op->error_message[0] = 0;
        step_set_param(x, "backup", "", &e);
        *err = saved;
    }
    return rc;
}
