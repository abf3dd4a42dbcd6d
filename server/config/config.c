/* The server's configuration: a table of keys with types, limits and defaults; YAML read
 * with libyaml's event parser; every key overridable from the environment. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "util/log.h"
#include "util/util.h"

/* CFG_STRING must not be empty; CFG_STRING_EMPTY may be. */
typedef enum { CFG_STRING, CFG_STRING_EMPTY, CFG_INT } cfg_type;

typedef struct cfg_key {
    const char *section;
    const char *key;
    cfg_type type;
    size_t offset;
    long min, max;       /* CFG_INT */
    const char *def;     /* default as text */
    const char *choices; /* CFG_STRING: "a|b|c", or NULL for any non-empty text */
} cfg_key;

#define OFF(f) offsetof(sdo_config, f)

static const cfg_key cfg_keys[] = {
    {"grpc", "listen", CFG_STRING, OFF(grpc_listen), 0, 0, "127.0.0.1:50051", NULL},
    {"grpc", "workers", CFG_INT, OFF(grpc_workers), 0, 256, "0", NULL},
    {"grpc", "max_receive_message_bytes", CFG_INT, OFF(grpc_max_receive_message_bytes), 1024,
     1 << 30, "4194304", NULL},
    {"grpc", "shutdown_grace_seconds", CFG_INT, OFF(grpc_shutdown_grace_seconds), 0, 3600, "10",
     NULL},
    {"grpc", "handler_threads", CFG_INT, OFF(grpc_handler_threads), 0, 1024, "0", NULL},
    {"database", "url", CFG_STRING, OFF(database_url), 0, 0,
     "host=/var/lib/saasodoo/run port=5544 dbname=saasodoo user=postgres", NULL},
    {"database", "pool_size", CFG_INT, OFF(database_pool_size), 0, 1000, "0", NULL},
    {"database", "connect_timeout_seconds", CFG_INT, OFF(database_connect_timeout_seconds), 1, 600,
     "5", NULL},
    {"log", "level", CFG_STRING, OFF(log_level), 0, 0, "info", "debug|info|warn|error"},
    {"log", "format", CFG_STRING, OFF(log_format), 0, 0, "text", "text|json"},
    {"platform", "data_dir", CFG_STRING, OFF(platform_data_dir), 0, 0, "/var/lib/saasodoo", NULL},
    {"platform", "plans_file", CFG_STRING, OFF(platform_plans_file), 0, 0, "plans.yaml", NULL},
    {"platform", "base_domain", CFG_STRING, OFF(platform_base_domain), 0, 0, "localhost", NULL},
    {"platform", "default_odoo_version", CFG_STRING, OFF(platform_default_odoo_version), 0, 0,
     "17.0", NULL},
    {"tenants", "deleted_id_retention_days", CFG_INT, OFF(tenants_deleted_id_retention_days), 0,
     36500, "30", NULL},
    {"runtime", "kind", CFG_STRING, OFF(runtime_kind), 0, 0, "process", "process"},
    {"runtime", "command", CFG_STRING_EMPTY, OFF(runtime_command), 0, 0, "", NULL},
    {"runtime", "args", CFG_STRING_EMPTY, OFF(runtime_args), 0, 0,
     "--database={db_name} --db_host={db_host} --db_port={db_port} --db_user={db_user} "
     "--db-filter=^{db_name}$ --http-port={http_port} --data-dir={data_dir} "
     "--workers={workers} --no-database-list",
     NULL},
    {"runtime", "port_min", CFG_INT, OFF(runtime_port_min), 1024, 65535, "20000", NULL},
    {"runtime", "port_max", CFG_INT, OFF(runtime_port_max), 1024, 65535, "29999", NULL},
    {"runtime", "health_timeout_seconds", CFG_INT, OFF(runtime_health_timeout_seconds), 1, 3600,
     "60", NULL},
    {"runtime", "restart_backoff_max_seconds", CFG_INT, OFF(runtime_restart_backoff_max_seconds), 1,
     3600, "60", NULL},
    {"dbstrategy", "template_database", CFG_STRING, OFF(dbstrategy_template_database), 0, 0,
     "saasodoo_template", NULL},
    {"dbstrategy", "template_owner", CFG_STRING, OFF(dbstrategy_template_owner), 0, 0,
     "saasodoo_template", NULL},
    {"dbstrategy", "shared_admin_url", CFG_STRING_EMPTY, OFF(dbstrategy_shared_admin_url), 0, 0, "",
     NULL},
    {"dbstrategy", "pg_bin_dir", CFG_STRING, OFF(dbstrategy_pg_bin_dir), 0, 0,
     "/usr/lib/postgresql/15/bin", NULL},
    {"dbstrategy", "run_as", CFG_STRING, OFF(dbstrategy_run_as), 0, 0, "postgres", NULL},
    {"dbstrategy", "dedicated_port_min", CFG_INT, OFF(dbstrategy_dedicated_port_min), 1024, 65535,
     "15432", NULL},
    {"dbstrategy", "dedicated_port_max", CFG_INT, OFF(dbstrategy_dedicated_port_max), 1024, 65535,
     "15999", NULL},
    {"dbstrategy", "local_capacity", CFG_INT, OFF(dbstrategy_local_capacity), 0, 100000, "500",
     NULL},
    {"ops", "workers", CFG_INT, OFF(ops_workers), 1, 64, "2", NULL},
    {"ops", "max_attempts", CFG_INT, OFF(ops_max_attempts), 1, 100, "5", NULL},
    {"ops", "retry_base_ms", CFG_INT, OFF(ops_retry_base_ms), 1, 600000, "500", NULL},
    {"security", "secret_key", CFG_STRING_EMPTY, OFF(security_secret_key), 0, 0, "", NULL},
    {"security", "tls_cert_file", CFG_STRING_EMPTY, OFF(security_tls_cert_file), 0, 0, "", NULL},
    {"security", "tls_key_file", CFG_STRING_EMPTY, OFF(security_tls_key_file), 0, 0, "", NULL},
    {"identity", "mode", CFG_STRING, OFF(identity_mode), 0, 0, "builtin", "builtin|supabase"},
    {"identity", "signing_key_file", CFG_STRING_EMPTY, OFF(identity_signing_key_file), 0, 0, "",
     NULL},
    {"identity", "signing_algorithm", CFG_STRING, OFF(identity_signing_algorithm), 0, 0, "ES256",
     "ES256|EdDSA"},
    {"identity", "issuer", CFG_STRING, OFF(identity_issuer), 0, 0, "saasodoo", NULL},
    {"identity", "audience", CFG_STRING, OFF(identity_audience), 0, 0, "saasodoo", NULL},
    {"identity", "access_token_seconds", CFG_INT, OFF(identity_access_token_seconds), 30, 86400,
     "900", NULL},
    {"identity", "refresh_token_seconds", CFG_INT, OFF(identity_refresh_token_seconds), 60,
     31536000, "2592000", NULL},
    {"identity", "clock_leeway_seconds", CFG_INT, OFF(identity_clock_leeway_seconds), 0, 3600, "30",
     NULL},
    {"identity", "bootstrap_admin_email", CFG_STRING_EMPTY, OFF(identity_bootstrap_admin_email), 0,
     0, "", NULL},
    {"identity", "bootstrap_admin_password_file", CFG_STRING_EMPTY,
     OFF(identity_bootstrap_admin_password_file), 0, 0, "", NULL},
    {"identity", "supabase_url", CFG_STRING_EMPTY, OFF(identity_supabase_url), 0, 0, "", NULL},
    {"identity", "supabase_anon_key", CFG_STRING_EMPTY, OFF(identity_supabase_anon_key), 0, 0, "",
     NULL},
    {"identity", "supabase_jwt_secret", CFG_STRING_EMPTY, OFF(identity_supabase_jwt_secret), 0, 0,
     "", NULL},
    {"identity", "supabase_audience", CFG_STRING, OFF(identity_supabase_audience), 0, 0,
     "authenticated", NULL},
    {"identity", "supabase_jwks_min_refresh_seconds", CFG_INT,
     OFF(identity_supabase_jwks_min_refresh_seconds), 0, 86400, "60", NULL},
    {"ratelimit", "principal_rate", CFG_INT, OFF(ratelimit_principal_rate), 1, 1000000, "200",
     NULL},
    {"ratelimit", "principal_burst", CFG_INT, OFF(ratelimit_principal_burst), 1, 1000000, "400",
     NULL},
    {"ratelimit", "address_rate", CFG_INT, OFF(ratelimit_address_rate), 1, 1000000, "1000", NULL},
    {"ratelimit", "address_burst", CFG_INT, OFF(ratelimit_address_burst), 1, 1000000, "2000", NULL},
    {"ratelimit", "sign_in_failures", CFG_INT, OFF(ratelimit_sign_in_failures), 1, 1000000, "5",
     NULL},
    {"ratelimit", "sign_in_window_seconds", CFG_INT, OFF(ratelimit_sign_in_window_seconds), 1,
     86400, "300", NULL},
    {"backup", "storage", CFG_STRING, OFF(backup_storage), 0, 0, "filesystem", "filesystem|s3"},
    {"backup", "dir", CFG_STRING_EMPTY, OFF(backup_dir), 0, 0, "", NULL},
    {"backup", "scheduler_interval_seconds", CFG_INT, OFF(backup_scheduler_interval_seconds), 1,
     86400, "30", NULL},
    {"backup", "drill_schedule", CFG_STRING, OFF(backup_drill_schedule), 0, 0, "daily",
     "daily|weekly|disabled"},
    {"backup", "s3_endpoint", CFG_STRING_EMPTY, OFF(backup_s3_endpoint), 0, 0, "", NULL},
    {"backup", "s3_region", CFG_STRING, OFF(backup_s3_region), 0, 0, "us-east-1", NULL},
    {"backup", "s3_bucket", CFG_STRING_EMPTY, OFF(backup_s3_bucket), 0, 0, "", NULL},
    {"backup", "s3_prefix", CFG_STRING_EMPTY, OFF(backup_s3_prefix), 0, 0, "", NULL},
    {"backup", "s3_access_key", CFG_STRING_EMPTY, OFF(backup_s3_access_key), 0, 0, "", NULL},
    {"backup", "s3_secret_key", CFG_STRING_EMPTY, OFF(backup_s3_secret_key), 0, 0, "", NULL},
    {"backup", "s3_part_size_mb", CFG_INT, OFF(backup_s3_part_size_mb), 5, 5120, "16", NULL},
    {"backup", "s3_path_style", CFG_INT, OFF(backup_s3_path_style), 0, 1, "1", NULL},
};
#define NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

static void errf(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* Sets one key from text; where says where the text came from (for messages). */
static int cfg_set(sdo_config *cfg, const cfg_key *k, const char *val, const char *where, char *err,
                   size_t errsz)
{
    char *slot = (char *)cfg + k->offset;
    if (k->type == CFG_INT) {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno) {
            errf(err, errsz, "%s: %s.%s: '%s' is not an integer", where, k->section, k->key, val);
            return -1;
        }
        if (v < k->min || v > k->max) {
            errf(err, errsz, "%s: %s.%s: %ld is out of range (%ld to %ld)", where, k->section,
                 k->key, v, k->min, k->max);
            return -1;
        }
        *(int *)slot = (int)v;
        return 0;
    }
    if (!*val && k->type == CFG_STRING) {
        errf(err, errsz, "%s: %s.%s: must not be empty", where, k->section, k->key);
        return -1;
    }
    if (k->choices) {
        size_t n = strlen(val);
        const char *p = k->choices;
        int ok = 0;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == n && strncmp(p, val, n) == 0)
                ok = 1;
            p += l + (bar ? 1 : 0);
        }
        if (!ok) {
            errf(err, errsz, "%s: %s.%s: '%s' is not one of %s", where, k->section, k->key, val,
                 k->choices);
            return -1;
        }
    }
    char **s = (char **)slot;
    free(*s);
    *s = sdo_strdup(val);
    return 0;
}

static const cfg_key *cfg_find(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(cfg_keys[i].section, section) == 0 &&
            (!key || strcmp(cfg_keys[i].key, key) == 0))
            return &cfg_keys[i];
    return NULL;
}

static int cfg_defaults(sdo_config *cfg, char *err, size_t errsz)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (cfg_set(cfg, &cfg_keys[i], cfg_keys[i].def, "default", err, errsz) < 0)
            return -1;
    return 0;
}

/* Reads the YAML document: a mapping of sections, each a mapping of scalar keys. */
static int cfg_parse(sdo_config *cfg, const char *name, yaml_parser_t *p, char *err, size_t errsz)
{
    yaml_event_t ev;
    int depth = 0; /* 0 outside, 1 top mapping, 2 section mapping */
    char section[64] = "";
    char key[64] = "";
    int want_key = 1;
    int rc = -1;
    int done = 0;

    while (!done) {
        if (!yaml_parser_parse(p, &ev)) {
            errf(err, errsz, "%s:%zu: invalid YAML: %s", name, p->problem_mark.line + 1,
                 p->problem ? p->problem : "syntax error");
            return -1;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth == 0) {
                depth = 1;
                want_key = 1;
            } else if (depth == 1 && !want_key) {
                depth = 2;
                want_key = 1;
            } else {
                errf(err, errsz, "%s:%zu: %s.%s: expected a single value, not a mapping", name,
                     line, section, key);
                goto out;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            want_key = 1;
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth == 2)
                errf(err, errsz, "%s:%zu: %s.%s: expected a single value, not a list", name, line,
                     section, key);
            else if (depth == 1)
                errf(err, errsz, "%s:%zu: %s: expected a mapping of keys, not a list", name, line,
                     section);
            else
                errf(err, errsz, "%s:%zu: expected a mapping of sections, not a list", name, line);
            goto out;
        case YAML_ALIAS_EVENT:
            errf(err, errsz, "%s:%zu: aliases are not supported", name, line);
            goto out;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth == 0) {
                if (*v) { /* an empty document is fine; a bare scalar is not */
                    errf(err, errsz, "%s:%zu: expected a mapping of sections", name, line);
                    goto out;
                }
            } else if (depth == 1 && want_key) {
                if (!cfg_find(v, NULL)) {
                    errf(err, errsz, "%s:%zu: unknown section '%s'", name, line, v);
                    goto out;
                }
                sdo_strlcpy(section, v, sizeof section);
                want_key = 0;
            } else if (depth == 1) {
                errf(err, errsz, "%s:%zu: section '%s' must be a mapping of keys", name, line,
                     section);
                goto out;
            } else if (want_key) {
                if (!cfg_find(section, v)) {
                    errf(err, errsz, "%s:%zu: unknown key '%s.%s'", name, line, section, v);
                    goto out;
                }
                sdo_strlcpy(key, v, sizeof key);
                want_key = 0;
            } else {
                char where[512];
                snprintf(where, sizeof where, "%s:%zu", name, line);
                if (cfg_set(cfg, cfg_find(section, key), v, where, err, errsz) < 0)
                    goto out;
                want_key = 1;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
        continue;
    out:
        yaml_event_delete(&ev);
        return rc;
    }
    return 0;
}

static int cfg_env(sdo_config *cfg, char *err, size_t errsz)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char name[128];
        snprintf(name, sizeof name, "SAASODOO_%s_%s", cfg_keys[i].section, cfg_keys[i].key);
        for (char *c = name; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        const char *v = getenv(name);
        if (!v)
            continue;
        char where[160];
        snprintf(where, sizeof where, "environment %s", name);
        if (cfg_set(cfg, &cfg_keys[i], v, where, err, errsz) < 0)
            return -1;
    }
    return 0;
}

/* Derived values: worker count, pool size, plans file relative to the config file. */
static void cfg_resolve(sdo_config *cfg)
{
    if (cfg->grpc_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->grpc_workers = n > 0 ? (int)n : 1;
    }
    if (cfg->database_pool_size == 0)
        cfg->database_pool_size = cfg->grpc_workers + 2;
    /* handlers wait on the store: one per pooled connection keeps every connection busy */
    if (cfg->grpc_handler_threads == 0)
        cfg->grpc_handler_threads = cfg->database_pool_size;
    log_set_level_name(cfg->log_level);
    log_set_format_name(cfg->log_format);
    if (cfg->platform_plans_file[0] != '/') {
        const char *base = cfg->dir ? cfg->dir : ".";
        size_t n = strlen(base) + strlen(cfg->platform_plans_file) + 2;
        char *p = sdo_malloc(n);
        snprintf(p, n, "%s/%s", base, cfg->platform_plans_file);
        free(cfg->platform_plans_file);
        cfg->platform_plans_file = p;
    }
}

static int cfg_finish(sdo_config *cfg, char *err, size_t errsz)
{
    if (cfg_env(cfg, err, errsz) < 0)
        return -1;
    cfg_resolve(cfg);
    if (cfg->runtime_port_min > cfg->runtime_port_max) {
        errf(err, errsz, "runtime.port_min (%d) is above runtime.port_max (%d)",
             cfg->runtime_port_min, cfg->runtime_port_max);
        return -1;
    }
    if (cfg->dbstrategy_dedicated_port_min > cfg->dbstrategy_dedicated_port_max) {
        errf(err, errsz, "dbstrategy.dedicated_port_min (%d) is above dedicated_port_max (%d)",
             cfg->dbstrategy_dedicated_port_min, cfg->dbstrategy_dedicated_port_max);
        return -1;
    }
    if (!cfg->security_tls_cert_file[0] != !cfg->security_tls_key_file[0]) {
        errf(err, errsz,
             "security.tls_cert_file and security.tls_key_file go together: set "
             "both to serve TLS, or neither");
        return -1;
    }
    if (strcmp(cfg->identity_mode, "supabase") == 0 && !cfg->identity_supabase_url[0]) {
        errf(err, errsz, "identity.mode is supabase but identity.supabase_url is empty");
        return -1;
    }
    if (cfg->identity_bootstrap_admin_email[0] && !cfg->identity_bootstrap_admin_password_file[0]) {
        errf(err, errsz,
             "identity.bootstrap_admin_email needs "
             "identity.bootstrap_admin_password_file");
        return -1;
    }
    if (strcmp(cfg->backup_storage, "s3") == 0 && !cfg->backup_s3_bucket[0]) {
        errf(err, errsz, "backup.storage is s3 but backup.s3_bucket is empty");
        return -1;
    }
    size_t kl = strlen(cfg->security_secret_key);
    bool hex = kl == 64;
    for (size_t i = 0; hex && i < kl; i++)
        hex = isxdigit((unsigned char)cfg->security_secret_key[i]) != 0;
    if (kl && !hex) {
        errf(err, errsz,
             "security.secret_key must be 64 hexadecimal digits (32 bytes); generate "
             "one with: openssl rand -hex 32");
        return -1;
    }
    return 0;
}

int config_load_string(sdo_config *cfg, const char *name, const char *yaml, char *err, size_t errsz)
{
    yaml_parser_t p;
    if (cfg_defaults(cfg, err, errsz) < 0)
        goto fail;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, strlen(yaml));
    int rc = cfg_parse(cfg, name, &p, err, errsz);
    yaml_parser_delete(&p);
    if (rc < 0 || cfg_finish(cfg, err, errsz) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

int config_load(sdo_config *cfg, const char *path, char *err, size_t errsz)
{
    if (cfg_defaults(cfg, err, errsz) < 0)
        goto fail;
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
            errf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
            goto fail;
        }
        cfg->path = sdo_strdup(path);
        const char *slash = strrchr(path, '/');
        if (slash) {
            size_t n = (size_t)(slash - path);
            cfg->dir = sdo_malloc(n + 2);
            memcpy(cfg->dir, path, n ? n : 1);
            cfg->dir[n ? n : 1] = 0;
        } else {
            cfg->dir = sdo_strdup(".");
        }
        yaml_parser_t p;
        yaml_parser_initialize(&p);
        yaml_parser_set_input_file(&p, f);
        int rc = cfg_parse(cfg, path, &p, err, errsz);
        yaml_parser_delete(&p);
        fclose(f);
        if (rc < 0)
            goto fail;
    }
    if (cfg_finish(cfg, err, errsz) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

void config_free(sdo_config *cfg)
{
    free(cfg->path);
    free(cfg->dir);
    cfg->path = cfg->dir = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (cfg_keys[i].type != CFG_INT) {
            char **s = (char **)((char *)cfg + cfg_keys[i].offset);
            free(*s);
            *s = NULL;
        }
    }
}

/* Masks password=... in a conninfo string or the password of a URI. */
static void mask_secret(const char *in, char *out, size_t outsz)
{
    sdo_strlcpy(out, in, outsz);
    char *p = strstr(out, "password=");
    if (p) {
        char *e = p + 9;
        while (*e && *e != ' ')
            e++;
        memmove(p + 12, e, strlen(e) + 1);
        memcpy(p + 9, "***", 3);
    }
    char *scheme = strstr(out, "://");
    char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (at && colon && colon < at) {
        memmove(colon + 4, at, strlen(at) + 1);
        memcpy(colon + 1, "***", 3);
    }
}

void config_print(const sdo_config *cfg)
{
    char masked[1024];
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        const char *slot = (const char *)cfg + k->offset;
        if (k->type == CFG_INT) {
            printf("%s.%s = %d\n", k->section, k->key, *(const int *)slot);
        } else {
            const char *v = *(char *const *)slot;
            if (v[0] &&
                (strcmp(k->key, "secret_key") == 0 || strstr(k->key, "_secret") ||
                 strstr(k->key, "secret_key") || strcmp(k->key, "supabase_anon_key") == 0)) {
                v = "***";
            } else if (strcmp(k->key, "url") == 0 || strcmp(k->key, "shared_admin_url") == 0) {
                mask_secret(v, masked, sizeof masked);
                v = masked;
            }
            printf("%s.%s = %s\n", k->section, k->key, v);
        }
    }
}
