/* `saasodoo backups ...`: create, list, get, restore, download and delete a tenant's backups
 * and show or change its backup policy, through BackupService. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define NAME_MAX_LEN 512

/* "acme/BACKUP" or "tenants/acme/backups/BACKUP" -> "tenants/acme/backups/BACKUP". */
static int backup_name(const char *arg, char *buf, size_t size)
{
    const char *tenant = arg, *slash, *id = NULL;

    if (strncmp(arg, "tenants/", 8) == 0) {
        tenant = arg + 8;
        slash = strchr(tenant, '/');
        if (slash != NULL && strncmp(slash, "/backups/", 9) == 0)
            id = slash + 9;
    } else if ((slash = strchr(arg, '/')) != NULL) {
        id = slash + 1;
    }
    if (id == NULL || slash == tenant || id[0] == '\0' || strchr(id, '/') != NULL)
        return cli_usage_error("'%s' is not a valid backup: expected TENANT/BACKUP or "
                               "tenants/TENANT/backups/BACKUP",
                               arg);
    if ((size_t)snprintf(buf, size, "tenants/%.*s/backups/%s", (int)(slash - tenant), tenant, id) >=
        size)
        return cli_usage_error("'%s' is too long", arg);
    return 0;
}

static int backups_create(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CreateBackupRequest req = SAASODOO__V1__CREATE_BACKUP_REQUEST__INIT;
    char parent[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], parent, sizeof(parent))) != 0)
        return rc;
    req.parent = parent;
    args_string(a, "description", &req.description);
    args_string(a, "request-id", &req.request_id);
    return cli_call_operation(ctx, a, SDO_METHOD_BACKUP_SERVICE_CREATE_BACKUP, &req.base);
}

static int backups_get(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__GetBackupRequest req = SAASODOO__V1__GET_BACKUP_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = backup_name(a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    return cli_call_show(ctx, SDO_METHOD_BACKUP_SERVICE_GET_BACKUP, &req.base,
                         &saasodoo__v1__backup__descriptor);
}

/* 1536 -> "1.5KiB"; no spaces, so a table cell stays one word. */
static const char *human_size(int64_t n, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%" PRId64 "B", n);
    else
        snprintf(buf, size, "%.1f%s", v, units[u]);
    return buf;
}

static int add_backup_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__Backup *b = (const Saasodoo__V1__Backup *)m;
    char sbuf[16], tbuf[16], size[32], when[SDO_TIMESTAMP_BUFSIZE];
    const char *cells[6] = {
        b->name,
        cli_enum_name(&saasodoo__v1__backup__state__descriptor, (int)b->state, sbuf),
        cli_enum_name(&saasodoo__v1__backup__trigger__descriptor, (int)b->trigger, tbuf),
        human_size(b->size_bytes, size, sizeof(size)),
        cli_time(b->create_time, when),
        b->description,
    };
    return table_add(tbl, cells);
}

static int backups_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME", "STATE",   "TRIGGER",
                                          "SIZE", "CREATED", "DESCRIPTION"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_BACKUP_SERVICE_LIST_BACKUPS,
        .resp_desc = &saasodoo__v1__list_backups_response__descriptor,
        .items_field = "backups",
        .noun = "backups",
        .ncols = 6,
        .headers = headers,
        .add_row = add_backup_row,
    };
    Saasodoo__V1__ListBackupsRequest req = SAASODOO__V1__LIST_BACKUPS_REQUEST__INIT;
    char parent[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], parent, sizeof(parent))) != 0)
        return rc;
    req.parent = parent;
    return cli_list(ctx, a, &spec, &req.base);
}

static int backups_restore(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__RestoreBackupRequest req = SAASODOO__V1__RESTORE_BACKUP_REQUEST__INIT;
    char name[NAME_MAX_LEN], target[NAME_MAX_LEN];
    const char *to = args_value(a, "to");
    int rc;

    if ((rc = backup_name(a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    if (to != NULL) {
        if ((rc = cli_resource_name("tenants", to, target, sizeof(target))) != 0)
            return rc;
        req.target_tenant_id = target + strlen("tenants/");
    } else if (!args_flag(a, "yes")) {
        /* In place: the tenant's current data is replaced. */
        char question[NAME_MAX_LEN + 128];
        const char *tenant_end = strstr(name, "/backups/");
        snprintf(question, sizeof(question), "Replace the current data of %.*s with backup %s?",
                 (int)(tenant_end - name), name, name);
        if (!cli_confirm(question))
            return cli_usage_error("restoring in place replaces the tenant's current data: "
                                   "confirm with --yes, or restore into a new tenant with --to");
    }
    args_string(a, "request-id", &req.request_id);
    return cli_call_operation(ctx, a, SDO_METHOD_BACKUP_SERVICE_RESTORE_BACKUP, &req.base);
}

static int backups_delete(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DeleteBackupRequest req = SAASODOO__V1__DELETE_BACKUP_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = backup_name(a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    args_string(a, "request-id", &req.request_id);
    return cli_call_operation(ctx, a, SDO_METHOD_BACKUP_SERVICE_DELETE_BACKUP, &req.base);
}

/* "HH:MM" with HH 00-23 and MM 00-59. */
static bool valid_time_of_day(const char *s)
{
    if (strlen(s) != 5 || s[2] != ':')
        return false;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return false;
    return (s[0] - '0') * 10 + (s[1] - '0') < 24 && (s[3] - '0') * 10 + (s[4] - '0') < 60;
}

static int backups_policy(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__UpdateBackupPolicyRequest upd = SAASODOO__V1__UPDATE_BACKUP_POLICY_REQUEST__INIT;
    Saasodoo__V1__GetBackupPolicyRequest get = SAASODOO__V1__GET_BACKUP_POLICY_REQUEST__INIT;
    Saasodoo__V1__BackupPolicy policy = SAASODOO__V1__BACKUP_POLICY__INIT;
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    static const struct {
        const char *opt, *path;
        size_t offset;
    } keeps[] = {
        {"keep-daily", "keep_daily", offsetof(Saasodoo__V1__BackupPolicy, keep_daily)},
        {"keep-weekly", "keep_weekly", offsetof(Saasodoo__V1__BackupPolicy, keep_weekly)},
        {"keep-monthly", "keep_monthly", offsetof(Saasodoo__V1__BackupPolicy, keep_monthly)},
    };
    char tenant[NAME_MAX_LEN], name[NAME_MAX_LEN + 16];
    char *paths[8];
    const char *v;
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], tenant, sizeof(tenant))) != 0)
        return rc;
    snprintf(name, sizeof(name), "%s/backupPolicy", tenant);
    policy.name = name;
    if ((v = args_value(a, "schedule")) != NULL) {
        if (strcmp(v, "hourly") != 0 && strcmp(v, "daily") != 0 && strcmp(v, "disabled") != 0)
            return cli_usage_error("--schedule must be 'hourly', 'daily' or 'disabled', not '%s'",
                                   v);
        policy.schedule = (char *)v;
        paths[mask.n_paths++] = "schedule";
    }
    if ((v = args_value(a, "time")) != NULL) {
        if (!valid_time_of_day(v))
            return cli_usage_error("--time must be a UTC time of day as HH:MM (00:00 to 23:59), "
                                   "not '%s'",
                                   v);
        policy.time_of_day = (char *)v;
        paths[mask.n_paths++] = "time_of_day";
    }
    for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
        int32_t n = 0;
        if (args_value(a, keeps[i].opt) == NULL)
            continue;
        if ((rc = args_int(a, keeps[i].opt, 0, 10000, &n)) != 0)
            return rc;
        memcpy((char *)&policy + keeps[i].offset, &n, sizeof(n));
        paths[mask.n_paths++] = (char *)keeps[i].path;
    }
    if ((v = args_value(a, "etag")) != NULL) {
        if (mask.n_paths == 0)
            return cli_usage_error("--etag only goes with a change (--schedule, --time, "
                                   "--keep-*)");
        policy.etag = (char *)v;
    }
    if ((v = args_value(a, "request-id")) != NULL) {
        if (mask.n_paths == 0)
            return cli_usage_error("--request-id only goes with a change (--schedule, --time, "
                                   "--keep-*)");
        upd.request_id = (char *)v;
    }

    if (mask.n_paths == 0) {
        get.name = name;
        return cli_call_show(ctx, SDO_METHOD_BACKUP_SERVICE_GET_BACKUP_POLICY, &get.base,
                             &saasodoo__v1__backup_policy__descriptor);
    }
    mask.paths = paths;
    upd.policy = &policy;
    upd.update_mask = &mask;
    return cli_call_show(ctx, SDO_METHOD_BACKUP_SERVICE_UPDATE_BACKUP_POLICY, &upd.base,
                         &saasodoo__v1__backup_policy__descriptor);
}

/* ---- download ---- */

static const cli_opt download_opts[] = {
    {"output", 'o', "FILE", false,
     "where to write the part ('-': standard output); default TENANT-BACKUP-PART"},
    {"force", 'f', NULL, false, "replace FILE if it exists"},
    CLI_OPTS_END,
};

/* Puts the finished temporary file at path: replacing what is there with force, otherwise
 * only if nothing is (link fails with EEXIST when a file appeared meanwhile). */
static int place_file(const char *tmp, const char *path, bool force)
{
    if (force)
        return rename(tmp, path);
    if (link(tmp, path) == 0)
        return unlink(tmp);
    if (errno == EEXIST)
        return -1;
    /* a filesystem without hard links */
    if (access(path, F_OK) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, path);
}

static int backups_download(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DownloadBackupPartRequest req = SAASODOO__V1__DOWNLOAD_BACKUP_PART_REQUEST__INIT;
    char name[NAME_MAX_LEN], deflt[NAME_MAX_LEN + 80], tmp[NAME_MAX_LEN + 120];
    const char *part = a->pos[1];
    const char *path = args_opt_value(a, &download_opts[0]);
    bool force = args_flag(a, "force"), to_stdout;
    Saasodoo__V1__BackupChunk *chunk = NULL;
    sdo_stream *s = NULL;
    sdo_status st = {0};
    EVP_MD_CTX *md = NULL;
    FILE *out = NULL;
    int64_t written = 0, total = -1;
    char want[65] = "", got[65] = "";
    int rc, fd = -1;

    if ((rc = backup_name(a->pos[0], name, sizeof(name))) != 0)
        return rc;
    if (part[0] == '\0' || strchr(part, '/') != NULL)
        return cli_usage_error("'%s' is not a part name such as database.dump, files.tar or "
                               "manifest.json (see 'saasodoo backups get')",
                               part);
    if (path == NULL) {
        /* "tenants/T/backups/B" -> "T-B-PART" */
        const char *t = name + strlen("tenants/"), *b = strstr(t, "/backups/");
        snprintf(deflt, sizeof(deflt), "%.*s-%s-%s", (int)(b - t), t, b + strlen("/backups/"),
                 part);
        path = deflt;
    }
    if (path[0] == '\0')
        return cli_usage_error("--output must name a file, or '-' for standard output");
    to_stdout = strcmp(path, "-") == 0;
    if (!to_stdout && !force && access(path, F_OK) == 0)
        return cli_usage_error("'%s' exists: give --force to replace it, or another --output",
                               path);

    req.name = name;
    req.part = (char *)part;
    rc = cli_open_stream(ctx, SDO_METHOD_BACKUP_SERVICE_DOWNLOAD_BACKUP_PART, &req.base,
                         &saasodoo__v1__backup_chunk__descriptor, &s);
    if (rc != CLI_EXIT_OK)
        return rc;
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = cli_failure("out of memory");
        goto out;
    }
    if (to_stdout) {
        out = stdout;
    } else {
        /* a temporary file beside the target, renamed over it once the part is whole */
        snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", path);
        if ((fd = mkstemp(tmp)) < 0 || (out = fdopen(fd, "wb")) == NULL) {
            rc = cli_failure("cannot create a file beside '%s': %s", path, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            fd = -1;
            goto out;
        }
    }
    while ((rc = sdo_backup_service_download_backup_part_next(s, &chunk, &st)) == 1) {
        if (chunk->offset != written || (total >= 0 && chunk->total_size != total)) {
            rc =
                cli_failure("the server sent a chunk at offset %" PRId64 " after %" PRId64 " bytes",
                            (int64_t)chunk->offset, written);
            goto out;
        }
        total = chunk->total_size;
        if (chunk->data.len > 0 &&
            (fwrite(chunk->data.data, 1, chunk->data.len, out) != chunk->data.len)) {
            rc = cli_failure("cannot write to '%s': %s", path, strerror(errno));
            goto out;
        }
        EVP_DigestUpdate(md, chunk->data.data, chunk->data.len);
        written += (int64_t)chunk->data.len;
        if (chunk->sha256 != NULL && chunk->sha256[0] != '\0')
            snprintf(want, sizeof(want), "%s", chunk->sha256);
        protobuf_c_message_free_unpacked(&chunk->base, NULL);
        chunk = NULL;
    }
    if (rc < 0) {
        rc = cli_rpc_failure(rc, &st);
        goto out;
    }
    if (fflush(out) != 0 || (!to_stdout && fsync(fileno(out)) != 0)) {
        rc = cli_failure("cannot write to '%s': %s", path, strerror(errno));
        goto out;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(md, d, &len);
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    if (want[0] == '\0' || written != total || strcmp(got, want) != 0) {
        fprintf(stderr,
                "saasodoo: DATA_LOSS: part '%s' of %s arrived damaged: %" PRId64
                " bytes with SHA-256 %s, the backup recorded %" PRId64 " bytes with SHA-256 %s\n",
                part, name, written, got, total, want[0] ? want : "(none received)");
        rc = CLI_EXIT_RPC + SDO_DATA_LOSS;
        goto out;
    }
    if (!to_stdout) {
        int e = fclose(out);
        out = NULL;
        fd = -1;
        if (e != 0 || place_file(tmp, path, force) != 0) {
            rc = errno == EEXIST ? cli_usage_error("'%s' exists: give --force to replace it", path)
                                 : cli_failure("cannot write '%s': %s", path, strerror(errno));
            unlink(tmp);
            goto out;
        }
    }
    if (ctx->output == OUT_JSON) {
        Saasodoo__V1__BackupPart p = SAASODOO__V1__BACKUP_PART__INIT;
        p.name = (char *)part;
        p.size_bytes = written;
        p.sha256 = got;
        if (!to_stdout) {
            rc = cli_print_json(&p.base, false);
        } else {
            char *json = NULL;
            size_t jlen = 0;
            if (sdo_json_render(&p.base, SDO_JSON_PRETTY, &json, &jlen) == 0)
                fprintf(stderr, "%s\n", json);
            free(json);
            rc = CLI_EXIT_OK;
        }
    } else {
        fprintf(to_stdout ? stderr : stdout, "%s: %" PRId64 " bytes, SHA-256 %s (verified)\n",
                to_stdout ? part : path, written, got);
        rc = CLI_EXIT_OK;
    }
out:
    if (chunk != NULL)
        protobuf_c_message_free_unpacked(&chunk->base, NULL);
    if (out != NULL && !to_stdout) {
        fclose(out);
        unlink(tmp);
    }
    EVP_MD_CTX_free(md);
    sdo_stream_close(s);
    return rc;
}

static const cli_opt create_opts[] = {
    {"description", 0, "TEXT", false, "a note kept with the backup"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt list_opts[] = {
    {"filter", 0, "EXPR", false, "e.g. 'state = COMPLETE AND trigger = MANUAL'"},
    CLI_OPTS_PAGING("backups"),
    CLI_OPTS_END,
};

static const cli_opt restore_opts[] = {
    {"to", 0, "NEW_TENANT", false, "restore into a new tenant with this ID instead of in place"},
    {"yes", 'y', NULL, false, "restore in place without asking"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt delete_opts[] = {
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt policy_opts[] = {
    {"schedule", 0, "WHEN", false, "hourly, daily or disabled"},
    {"time", 0, "HH:MM", false, "UTC time of day of daily backups"},
    {"keep-daily", 0, "N", false, "daily backups to keep"},
    {"keep-weekly", 0, "N", false, "weekly backups to keep"},
    {"keep-monthly", 0, "N", false, "monthly backups to keep"},
    {"etag", 0, "ETAG", false, "only change the policy if it still has this etag"},
    CLI_OPT_REQUEST_ID,
    CLI_OPTS_END,
};

const cli_cmd cli_backup_cmds[] = {
    {"backups", "create", "TENANT [options]",
     "Back up a tenant's database and files; prints the operation (--wait follows it).",
     create_opts, 1, 1, backups_create},
    {"backups", "list", "TENANT [options]", "List a tenant's backups, newest first.", list_opts, 1,
     1, backups_list},
    {"backups", "get", "TENANT/BACKUP", "Show one backup, its parts and their checksums.",
     cli_no_opts, 1, 1, backups_get},
    {"backups", "restore", "TENANT/BACKUP [options]",
     "Restore a backup in place (asks first, or --yes) or into a new tenant (--to); prints the "
     "operation.",
     restore_opts, 1, 1, backups_restore},
    {"backups", "download", "TENANT/BACKUP PART [options]",
     "Save one part of a complete backup (admins), checking its SHA-256; see 'backups get' "
     "for its parts.",
     download_opts, 2, 2, backups_download},
    {"backups", "delete", "TENANT/BACKUP [options]", "Delete a backup; prints the operation.",
     delete_opts, 1, 1, backups_delete},
    {"backups", "policy", "TENANT [options]",
     "Show a tenant's backup schedule and retention; with options, change them (the update "
     "mask follows the options given).",
     policy_opts, 1, 1, backups_policy},
    CLI_CMDS_END,
};
