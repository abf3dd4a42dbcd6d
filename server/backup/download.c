/* Reading a backup part back out of storage; see download.h. */
#include "backup/download.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backups.h"
#include "util/log.h"

bool bk_part_name_ok(const char *part)
{
    size_t n = strlen(part);
    if (n == 0 || n > 63 || part[0] == '.')
        return false;
    for (const char *p = part; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The backup's record and the part's, checked: COMPLETE, and the part is one of its parts. */
static int find_part(store *st, const char *tenant, const char *id, const char *part, backup_rec *b,
                     backup_part_rec *out, sdo_error *err)
{
    PGconn *c = store_acquire(st, err);
    if (!c)
        return -(int)err->code;
    backup_part_rec *parts = NULL;
    size_t n = 0;
    int rc = store_backup_get_rec(st, c, tenant, id, false, b, err);
    if (rc == 0 && strcmp(b->state, "COMPLETE") != 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "backup 'tenants/%s/backups/%s' is %s: only a COMPLETE backup can be "
                      "downloaded",
                      tenant, id, b->state);
        sdo_error_reason(err, "BACKUP_NOT_COMPLETE");
    }
    if (rc == 0)
        rc = store_backup_parts(st, c, tenant, id, &parts, &n, err);
    store_release(st, c);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].name, part) == 0) {
            *out = parts[i];
            free(parts);
            return 0;
        }
    }
    char names[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (names[0])
            strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, parts[i].name, sizeof names - strlen(names) - 1);
    }
    free(parts);
    return sdo_fail(err, SDO_NOT_FOUND,
                    "backup 'tenants/%s/backups/%s' has no part '%s'; its parts: %s", tenant, id,
                    part, names[0] ? names : "none");
}

/* Reads until buf holds size bytes or the object ends; returns the bytes read or -1. */
static ssize_t read_full(storage *stg, storage_reader *r, char *buf, size_t size, sdo_error *err)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = stg->ops->read(r, buf + got, size - got, err);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int damaged(sdo_error *err, const char *tenant, const char *id, const backup_part_rec *p,
                   int64_t size, const char *sha)
{
    int rc = sdo_fail(err, SDO_DATA_LOSS,
                      "backup part '%s' of 'tenants/%s/backups/%s' is damaged: %lld%s bytes with "
                      "SHA-256 %s in storage, the backup recorded %lld bytes with SHA-256 %s",
                      p->name, tenant, id, (long long)size, sha ? "" : " or more",
                      sha ? sha : "(not computed)", (long long)p->size, p->sha256);
    sdo_error_reason(err, "BACKUP_CHECKSUM_MISMATCH");
    return rc;
}

int bk_download_part(store *st, storage *stg, const char *tenant, const char *id, const char *part,
                     bk_chunk_fn fn, void *arg, sdo_error *err)
{
    backup_rec b;
    backup_part_rec p;
    int rc = find_part(st, tenant, id, part, &b, &p, err);
    if (rc < 0)
        return rc;
    if (!stg)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "no backup storage is configured");
    char key[300];
    snprintf(key, sizeof key, "%s%s", b.prefix, p.name);
    storage_reader *r = stg->ops->open(stg, key, err);
    if (!r) {
        if (err->code != SDO_NOT_FOUND)
            return -(int)err->code;
        rc = sdo_fail(err, SDO_DATA_LOSS,
                      "backup part '%s' of 'tenants/%s/backups/%s' is missing from %s storage (%s)",
                      p.name, tenant, id, stg->ops->name, key);
        sdo_error_reason(err, "BACKUP_PART_MISSING");
        return rc;
    }

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory */
    /* Two buffers: a chunk goes out once the next read tells whether it is the last. */
    char *cur = sdo_malloc(BK_DOWNLOAD_CHUNK), *next = sdo_malloc(BK_DOWNLOAD_CHUNK);
    int64_t offset = 0;
    ssize_t n = read_full(stg, r, cur, BK_DOWNLOAD_CHUNK, err);
    rc = n < 0 ? -(int)err->code : 0;
    while (rc == 0) {
        EVP_DigestUpdate(md, cur, (size_t)n);
        if (offset + n > p.size) { /* already longer than recorded: no use reading on */
            rc = damaged(err, tenant, id, &p, offset + n, NULL);
            break;
        }
        ssize_t m = n == BK_DOWNLOAD_CHUNK ? read_full(stg, r, next, BK_DOWNLOAD_CHUNK, err) : 0;
        if (m < 0) {
            rc = -(int)err->code;
            break;
        }
        if (m == 0) { /* cur is the last chunk: check before handing it over */
            unsigned char d[EVP_MAX_MD_SIZE];
            unsigned len = 0;
            char sha[65];
            EVP_DigestFinal_ex(md, d, &len);
            for (unsigned i = 0; i < 32; i++)
                snprintf(sha + 2 * i, 3, "%02x", d[i]);
            if (offset + n != p.size || strcmp(sha, p.sha256) != 0)
                rc = damaged(err, tenant, id, &p, offset + n, sha);
            else
                rc = fn(arg, cur, (size_t)n, offset, p.size, p.sha256, err);
            break;
        }
        rc = fn(arg, cur, (size_t)n, offset, p.size, NULL, err);
        offset += n;
        char *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    if (rc < 0 && err->code == SDO_OK)
        rc = sdo_fail(err, SDO_INTERNAL, "reading backup part '%s' failed", p.name);
    if (rc < 0 && err->code == SDO_DATA_LOSS)
        log_error("msg=\"a backup part does not match its checksum\" key=%s error=\"%s\"", key,
                  err->message);
    EVP_MD_CTX_free(md);
    free(cur);
    free(next);
    stg->ops->close(r);
    return rc;
}
