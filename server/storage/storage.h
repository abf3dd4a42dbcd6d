/* Where backups are kept: a small object store interface with one implementation per
 * backend (fs.c: a directory on the local filesystem, the embedded default; s3.c: an S3
 * bucket over HTTPS with AWS Signature V4). The backup domain sees only this vtable.
 *
 * Keys are relative paths of [A-Za-z0-9._/-] without "..", e.g.
 * "tenants/acme/20261126T101500Z-3f2a/database.dump": at most 900 bytes, components of 1 to
 * 200 bytes separated by single slashes, none starting with '.' (the filesystem backend keeps
 * unfinished writes in hidden ".NAME.tmp-XXXXXX" files). Objects are written as a stream and
 * become visible only when committed: a reader never sees half an object, and an aborted or
 * crashed write leaves nothing that list() reports.
 *
 * Errors: NOT_FOUND (no such object), UNAVAILABLE (the backend could not be reached or
 * answered 5xx; worth a retry), RESOURCE_EXHAUSTED (disk or quota full), PERMISSION_DENIED
 * (credentials refused), INVALID_ARGUMENT (a bad key), INTERNAL otherwise. Every message
 * names the backend and the key. */
#ifndef SDO_STORAGE_H
#define SDO_STORAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "util/util.h"

typedef struct storage storage;
typedef struct storage_writer storage_writer;
typedef struct storage_reader storage_reader;

/* Called once per object by list(), in key order; a non-zero return stops the listing. */
typedef int (*storage_list_fn)(void *arg, const char *key, int64_t size);

typedef struct storage_ops {
    const char *name; /* "filesystem", "s3" */
    /* Starts writing key (replacing it on commit if it exists). */
    storage_writer *(*create)(storage *s, const char *key, sdo_error *err);
    int (*write)(storage_writer *w, const void *buf, size_t n, sdo_error *err);
    /* Makes the object visible (fsync + rename; S3: complete the upload) and frees w. */
    int (*commit)(storage_writer *w, sdo_error *err);
    /* Discards everything written and frees w. Safe after a failed write. */
    void (*abort)(storage_writer *w);

    storage_reader *(*open)(storage *s, const char *key, sdo_error *err);
    /* Returns bytes read, 0 at the end, or -1 with err filled. */
    ssize_t (*read)(storage_reader *r, void *buf, size_t n, sdo_error *err);
    void (*close)(storage_reader *r);

    /* Size of a committed object; NOT_FOUND when absent. */
    int (*stat)(storage *s, const char *key, int64_t *size, sdo_error *err);
    /* Removes an object; an absent object is not an error. */
    int (*remove)(storage *s, const char *key, sdo_error *err);
    /* Every committed object whose key starts with prefix. */
    int (*list)(storage *s, const char *prefix, storage_list_fn fn, void *arg, sdo_error *err);
    void (*free)(storage *s);
} storage_ops;

struct storage {
    const storage_ops *ops;
};

/* The backend named by cfg->backup_storage, configured from the backup.* keys. */
storage *storage_open(const sdo_config *cfg, sdo_error *err);

/* The backends themselves. */
storage *storage_fs_new(const char *root, sdo_error *err);

typedef struct storage_s3_config {
    const char *endpoint; /* "https://s3.eu-west-1.amazonaws.com" or "http://127.0.0.1:4568" */
    const char *region;
    const char *bucket;
    const char *prefix; /* prepended to every key; may be "" */
    const char *access_key;
    const char *secret_key;
    size_t part_size;    /* multipart part size in bytes, at least 5 MiB */
    int path_style;      /* 1: endpoint/bucket/key; 0: bucket.endpoint/key */
    const char *ca_file; /* "" = the system's CAs */
    int list_page_size;  /* max-keys of each ListObjectsV2 page; 0 = S3's default (1000) */
} storage_s3_config;
storage *storage_s3_new(const storage_s3_config *cfg, sdo_error *err);

/* True if key is an acceptable object key (see above). */
int storage_key_ok(const char *key);

#endif
