/* The storage backend named by the configuration, and the rule every object key follows. */
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 900
#define COMPONENT_MAX 200

int storage_key_ok(const char *key)
{
    if (!key || !key[0])
        return 0;
    size_t n = strlen(key);
    if (n > KEY_MAX)
        return 0;
    const char *comp = key;
    for (size_t i = 0; i <= n; i++) {
        char c = key[i];
        if (c == '/' || c == 0) {
            size_t len = (size_t)(key + i - comp);
            if (len == 0 || len > COMPONENT_MAX || comp[0] == '.')
                return 0;
            comp = key + i + 1;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

storage *storage_open(const sdo_config *cfg, sdo_error *err)
{
    if (strcmp(cfg->backup_storage, "filesystem") == 0) {
        if (cfg->backup_dir[0])
            return storage_fs_new(cfg->backup_dir, err);
        size_t n = strlen(cfg->platform_data_dir) + sizeof "/backups";
        char *dir = sdo_malloc(n);
        snprintf(dir, n, "%s/backups", cfg->platform_data_dir);
        storage *s = storage_fs_new(dir, err);
        free(dir);
        return s;
    }
    if (strcmp(cfg->backup_storage, "s3") == 0) {
        char endpoint[512];
        if (cfg->backup_s3_endpoint[0])
            sdo_strlcpy(endpoint, cfg->backup_s3_endpoint, sizeof endpoint);
        else
            snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com",
                     cfg->backup_s3_region);
        storage_s3_config sc = {
            .endpoint = endpoint,
            .region = cfg->backup_s3_region,
            .bucket = cfg->backup_s3_bucket,
            .prefix = cfg->backup_s3_prefix,
            .access_key = cfg->backup_s3_access_key,
            .secret_key = cfg->backup_s3_secret_key,
            .part_size = (size_t)cfg->backup_s3_part_size_mb << 20,
            .path_style = cfg->backup_s3_path_style,
            .ca_file = "",
            .list_page_size = 0,
        };
        return storage_s3_new(&sc, err);
    }
    sdo_fail(err, SDO_INVALID_ARGUMENT, "backup.storage '%s' must be filesystem or s3",
             cfg->backup_storage);
    return NULL;
}
