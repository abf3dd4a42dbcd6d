/* The server's configuration: YAML (libyaml) with defaults, overridden by environment
 * variables SAASODOO_<SECTION>_<KEY>. Described key by key in docs/configuration.md. */
#ifndef SDO_CONFIG_H
#define SDO_CONFIG_H

#include <stddef.h>

typedef struct sdo_config {
    char *path; /* the file read, or NULL */
    char *dir;  /* its folder, for relative paths */

    char *grpc_listen;
    int grpc_workers; /* resolved: never 0 after config_load */
    int grpc_max_receive_message_bytes;
    int grpc_shutdown_grace_seconds;
    int grpc_handler_threads; /* resolved: never 0 after config_load */

    char *database_url;
    int database_pool_size; /* resolved: never 0 after config_load */
    int database_connect_timeout_seconds;

    char *log_level;
    char *log_format;

    char *platform_data_dir;
    char *platform_plans_file; /* resolved against dir */
    char *platform_base_domain;
    char *platform_default_odoo_version;

    int tenants_deleted_id_retention_days;

    char *runtime_kind;
    char *runtime_command; /* "" = tenant apps are not started */
    char *runtime_args;    /* space-separated argv template with {placeholders} */
    int runtime_port_min;
    int runtime_port_max;
    int runtime_health_timeout_seconds;
    int runtime_restart_backoff_max_seconds;

    char *dbstrategy_template_database;
    char *dbstrategy_template_owner;
    char *dbstrategy_shared_admin_url; /* "" = the control-plane server (database.url) */
    char *dbstrategy_pg_bin_dir;
    char *dbstrategy_run_as;
    int dbstrategy_dedicated_port_min;
    int dbstrategy_dedicated_port_max;
    int dbstrategy_local_capacity;

    int ops_workers;
    int ops_max_attempts;
    int ops_retry_base_ms;

    char *security_secret_key;    /* 64 hex digits; "" = read or create data_dir/secret.key */
    char *security_tls_cert_file; /* PEM certificate chain; "" = plaintext */
    char *security_tls_key_file;  /* PEM private key; set together with tls_cert_file */

    char *identity_mode;                  /* "builtin" or "supabase" */
    char *identity_signing_key_file;      /* "" = data_dir/jwt-signing.pem, created if absent */
    char *identity_signing_algorithm;     /* "ES256" or "EdDSA" */
    char *identity_issuer;                /* "iss" of the server's own tokens */
    char *identity_audience;              /* "aud" of the server's own tokens */
    int identity_access_token_seconds;    /* lifetime of an access token */
    int identity_refresh_token_seconds;   /* lifetime of a refresh token */
    int identity_clock_leeway_seconds;    /* skew allowed on exp and nbf */
    char *identity_bootstrap_admin_email; /* "" = none */
    char *identity_bootstrap_admin_password_file;   /* file holding its password */
    char *identity_supabase_url;                    /* https://PROJECT.supabase.co */
    char *identity_supabase_anon_key;               /* the project's anon (publishable) key */
    char *identity_supabase_jwt_secret;             /* legacy HS256 secret; "" = JWKS only */
    char *identity_supabase_audience;               /* "authenticated" */
    int identity_supabase_jwks_min_refresh_seconds; /* refetch on an unknown kid at most so often */

    int ratelimit_principal_rate;  /* requests per second per principal (bucket refill) */
    int ratelimit_principal_burst; /* bucket size */
    int ratelimit_address_rate;    /* requests per second per client address */
    int ratelimit_address_burst;
    int ratelimit_sign_in_failures;       /* failed sign-ins allowed per account and per address */
    int ratelimit_sign_in_window_seconds; /* ... within this window */

    char *backup_storage;                  /* "filesystem" or "s3" */
    char *backup_dir;                      /* "" = data_dir/backups */
    int backup_scheduler_interval_seconds; /* how often the scheduler looks for due work */
    char *backup_drill_schedule;           /* "daily", "weekly" or "disabled" */
    char *backup_s3_endpoint;              /* "" = https://s3.REGION.amazonaws.com */
    char *backup_s3_region;
    char *backup_s3_bucket;
    char *backup_s3_prefix;
    char *backup_s3_access_key;
    char *backup_s3_secret_key;
    int backup_s3_part_size_mb; /* multipart upload part size, 5 or more */
    int backup_s3_path_style;   /* 1 = https://endpoint/bucket/key */
} sdo_config;

/* Loads defaults, then the YAML file at path (skipped when path is NULL), then the
 * environment. Returns 0, or -1 with a message naming file, line and key in err. On error the
 * config is freed. */
int config_load(sdo_config *cfg, const char *path, char *err, size_t errsz);

/* Same, from YAML text; name is used in messages. */
int config_load_string(sdo_config *cfg, const char *name, const char *yaml, char *err,
                       size_t errsz);

/* Frees every string the config owns. */
void config_free(sdo_config *cfg);

/* Prints the effective configuration (secrets in database.url masked) to stdout. */
void config_print(const sdo_config *cfg);

#endif
