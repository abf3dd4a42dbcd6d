/* Reading a part of a COMPLETE backup back out of backup storage, for operators who take a
 * copy elsewhere: streamed in chunks, hashed on the way and checked against the SHA-256 and
 * size recorded when the backup was made. */
#ifndef SDO_BACKUP_DOWNLOAD_H
#define SDO_BACKUP_DOWNLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "store/store.h"

/* Bytes per chunk handed to the sink (the last one may be shorter). */
#define BK_DOWNLOAD_CHUNK (512 * 1024)

/* Receives the part in order: data[0..n) starts at offset of a part of total bytes; sha256 is
 * NULL but in the last chunk, where it is the recorded checksum. Returns 0 to go on, or a
 * negative status with err filled to stop. */
typedef int (*bk_chunk_fn)(void *arg, const void *data, size_t n, int64_t offset, int64_t total,
                           const char *sha256, sdo_error *err);

/* True if part is a syntactically acceptable part name: 1 to 63 of [A-Za-z0-9._-], not
 * starting with '.'. */
bool bk_part_name_ok(const char *part);

/* Streams part of backup tenant/id from stg to fn. NOT_FOUND for an unknown backup or part
 * (naming the parts it has), FAILED_PRECONDITION when the backup is not COMPLETE or no
 * storage is configured, DATA_LOSS when the object is missing or its bytes do not match the
 * record: then the last chunk is never handed over, so a consumer never ends up with what
 * looks like a whole part. Storage errors as storage.h says. No store connection is held
 * while streaming. */
int bk_download_part(store *st, storage *stg, const char *tenant, const char *id, const char *part,
                     bk_chunk_fn fn, void *arg, sdo_error *err);

#endif
