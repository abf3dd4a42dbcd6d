/* Schema migrations: numbered SQL files embedded at build time, applied at start under an
 * advisory lock and recorded in schema_migrations, so servers starting together never
 * race. */
#ifndef SDO_MIGRATE_H
#define SDO_MIGRATE_H

#include "store/store.h"

typedef struct store_migration {
    int version;
    const char *name;
    const char *sql;
} store_migration;

extern const store_migration store_migrations[];
extern const int store_migration_count;

/* Applies every migration not yet recorded, each in its own transaction. Returns 0 or a
 * negative status with err. */
int store_migrate(store *st, sdo_error *err);

#endif
