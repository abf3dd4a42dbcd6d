/* Moving a tenant's data between its database server or filestore and backup storage as
 * streams, hashing (SHA-256) every byte on the way: pg_dump into an object, an object into
 * pg_restore, a directory as a tar stream into an object and back. Nothing is copied to local
 * disk first; a part read back is checked against its record as it streams. */
#ifndef SDO_BACKUP_STREAM_H
#define SDO_BACKUP_STREAM_H

#include <stdint.h>

#include "storage/storage.h"
#include "store/provisioning.h"
#include "util/util.h"

/* What a committed part turned out to be. */
typedef struct bk_part {
    int64_t size;
    char sha256[65]; /* lower-case hex */
} bk_part;

/* The snapshot a dump was taken in. */
typedef struct bk_snapshot {
    char postgres_version[64];
    char *row_counts_json; /* {"schema.table": rows, ...}; malloc'ed */
} bk_snapshot;

/* Dumps database db of server s (pg_dump -Fc from bin_dir) into object key. The row counts of
 * every table are read in the very snapshot the dump is taken in. On failure nothing is
 * committed. Errors: UNAVAILABLE when the server or the storage cannot be reached or the
 * storage is full (worth a retry), FAILED_PRECONDITION with pg_dump's first error line,
 * others from the storage. */
int bk_dump_database(storage *stg, const char *key, const server_rec *s, const char *db,
                     const char *bin_dir, bk_part *out, bk_snapshot *snap, sdo_error *err);

/* Writes the directory dir as a tar stream into key ("" or a missing dir: an empty archive). */
int bk_tar_dir(storage *stg, const char *key, const char *dir, bk_part *out, sdo_error *err);

/* Writes text into key. */
int bk_put_text(storage *stg, const char *key, const char *text, bk_part *out, sdo_error *err);

/* Reads key back and checks its size and SHA-256: DATA_LOSS naming part when they differ,
 * NOT_FOUND (as DATA_LOSS too) when the object is gone. */
int bk_verify_part(storage *stg, const char *key, const char *part, int64_t size,
                   const char *sha256, sdo_error *err);

/* Checks that key exists with the recorded size, without reading it: DATA_LOSS naming part
 * otherwise. */
int bk_check_part_size(storage *stg, const char *key, const char *part, int64_t size,
                       sdo_error *err);

/* Restores object key (a pg_dump -Fc archive, the backup's part named part) into database db
 * of server s, which must exist, be empty and be owned by owner; objects become owner's. The
 * object is checked as it streams: size bytes with SHA-256 sha256, else DATA_LOSS naming the
 * part (whatever pg_restore made of it), and pg_restore does not get the end of a damaged
 * dump, so its single transaction rolls back. The caller still drops db on any failure. */
int bk_restore_database(storage *stg, const char *key, const char *part, int64_t size,
                        const char *sha256, const server_rec *s, const char *db, const char *owner,
                        const char *bin_dir, sdo_error *err);

/* Extracts object key (a tar stream, the part named part) into the empty directory dir,
 * checking it as it streams like bk_restore_database; the caller removes dir on failure. */
int bk_untar(storage *stg, const char *key, const char *part, int64_t size, const char *sha256,
             const char *dir, sdo_error *err);

/* Compares the row counts of every table of database db on s with row_counts_json: DATA_LOSS
 * naming the first table that differs. *tables (may be NULL) gets the number compared. */
int bk_check_rows(const server_rec *s, const char *db, const char *row_counts_json, int *tables,
                  sdo_error *err);

/* Creates an empty database db owned by owner on s (an existing one is dropped first), or
 * drops it (create = false). db is a scratch name the platform chose. */
int bk_scratch_database(const server_rec *s, const char *db, const char *owner, bool create,
                        sdo_error *err);

/* Fault injection for tests: SAASODOO_BACKUP_FAIL_AFTER_BYTES=N makes every part written to
 * storage fail with UNAVAILABLE once N bytes of it are written. Read at each part. */
#define BK_FAULT_ENV "SAASODOO_BACKUP_FAIL_AFTER_BYTES"

#endif
