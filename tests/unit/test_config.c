/* Unit tests of the server configuration (config/config.h): defaults, YAML values, errors
 * naming file, line and key, environment overrides, relative plans_file; and of the plan
 * catalogue reader (tenants/plans.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "tenants/plans.h"

#ifndef SAASODOO_TEST_SOURCE_DIR
#define SAASODOO_TEST_SOURCE_DIR "."
#endif

extern char **environ;

/* Every SAASODOO_* variable is removed before the tests, so the caller's environment cannot
 * change the defaults under test. */
static int clear_saasodoo_env(void **state)
{
    (void)state;
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "SAASODOO_", 9) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n >= sizeof name)
                    n = sizeof name - 1;
                memcpy(name, *e, n);
                name[n] = 0;
                break;
            }
        }
        if (!name[0])
            return 0;
        unsetenv(name);
    }
}

/* Asserts that text contains needle, printing both when it does not. */
static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, text);
}

/* Loads yaml under name "t.yaml" and expects failure with every needle in the message. */
static void expect_config_error(const char *yaml, const char *where, const char *what)
{
    sdo_config cfg;
    char err[512] = "";
    assert_int_equal(config_load_string(&cfg, "t.yaml", yaml, err, sizeof err), -1);
    expect_contains(err, where);
    expect_contains(err, what);
    /* on failure the config is freed */
    assert_null(cfg.grpc_listen);
    assert_null(cfg.database_url);
    assert_null(cfg.platform_plans_file);
}

/* ---- defaults -------------------------------------------------------------------------- */

static void test_defaults_without_file(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
    assert_null(cfg.path);
    assert_string_equal(cfg.grpc_listen, "127.0.0.1:50051");
    assert_true(cfg.grpc_workers >= 1);
    assert_int_equal(cfg.grpc_max_receive_message_bytes, 4194304);
    assert_int_equal(cfg.grpc_shutdown_grace_seconds, 10);
    assert_string_equal(cfg.database_url,
                        "host=/var/lib/saasodoo/run port=5544 dbname=saasodoo user=postgres");
    assert_int_equal(cfg.database_pool_size, cfg.grpc_workers + 2);
    assert_int_equal(cfg.database_connect_timeout_seconds, 5);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.log_format, "text");
    assert_string_equal(cfg.platform_data_dir, "/var/lib/saasodoo");
    assert_string_equal(cfg.platform_base_domain, "localhost");
    assert_string_equal(cfg.platform_default_odoo_version, "17.0");
    assert_int_equal(cfg.tenants_deleted_id_retention_days, 30);
    assert_non_null(cfg.platform_plans_file);
    const char *pf = cfg.platform_plans_file;
    size_t n = strlen(pf);
    assert_true(n >= strlen("plans.yaml"));
    assert_string_equal(pf + n - strlen("plans.yaml"), "plans.yaml");
    config_free(&cfg);
    assert_null(cfg.grpc_listen);
}

static void test_empty_text_gives_defaults(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load_string(&cfg, "empty.yaml", "", err, sizeof err), 0);
    assert_string_equal(cfg.grpc_listen, "127.0.0.1:50051");
    assert_int_equal(cfg.grpc_max_receive_message_bytes, 4194304);
    assert_true(cfg.grpc_workers >= 1);
    assert_int_equal(cfg.database_pool_size, cfg.grpc_workers + 2);
    config_free(&cfg);

    /* only comments: still every default */
    assert_int_equal(config_load_string(&cfg, "c.yaml", "# nothing here\n", err, sizeof err), 0);
    assert_string_equal(cfg.log_level, "info");
    config_free(&cfg);
}

static void test_pool_size_follows_workers(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load_string(&cfg, "t.yaml",
                                        "grpc:\n  workers: 3\ndatabase:\n  pool_size: 0\n", err,
                                        sizeof err),
                     0);
    assert_int_equal(cfg.grpc_workers, 3);
    assert_int_equal(cfg.database_pool_size, 5);
    config_free(&cfg);

    /* an explicit pool size is kept */
    assert_int_equal(config_load_string(&cfg, "t.yaml",
                                        "grpc:\n  workers: 3\ndatabase:\n  pool_size: 1\n", err,
                                        sizeof err),
                     0);
    assert_int_equal(cfg.database_pool_size, 1);
    config_free(&cfg);

    /* workers: 0 means one per core, never 0 */
    assert_int_equal(config_load_string(&cfg, "t.yaml", "grpc:\n  workers: 0\n", err, sizeof err),
                     0);
    assert_true(cfg.grpc_workers >= 1);
    assert_int_equal(cfg.database_pool_size, cfg.grpc_workers + 2);
    config_free(&cfg);
}

/* ---- values from YAML ------------------------------------------------------------------ */

static void test_good_yaml_sets_every_key(void **state)
{
    (void)state;
    static const char yaml[] = "# a complete file\n"
                               "grpc:\n"
                               "  listen: \"0.0.0.0:6000\"\n"
                               "  workers: 7\n"
                               "  max_receive_message_bytes: 1024\n"
                               "  shutdown_grace_seconds: 0\n"
                               "database:\n"
                               "  url: 'host=db port=5432 dbname=x'\n"
                               "  pool_size: 1000\n"
                               "  connect_timeout_seconds: 600\n"
                               "log:\n"
                               "  level: warn\n"
                               "  format: json\n"
                               "platform:\n"
                               "  data_dir: /srv/saasodoo\n"
                               "  plans_file: /etc/saasodoo/plans.yaml\n"
                               "  base_domain: example.com\n"
                               "  default_odoo_version: \"16.0\"\n"
                               "tenants:\n"
                               "  deleted_id_retention_days: 36500\n";
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load_string(&cfg, "good.yaml", yaml, err, sizeof err), 0);
    assert_string_equal(cfg.grpc_listen, "0.0.0.0:6000");
    assert_int_equal(cfg.grpc_workers, 7);
    assert_int_equal(cfg.grpc_max_receive_message_bytes, 1024);
    assert_int_equal(cfg.grpc_shutdown_grace_seconds, 0);
    assert_string_equal(cfg.database_url, "host=db port=5432 dbname=x");
    assert_int_equal(cfg.database_pool_size, 1000);
    assert_int_equal(cfg.database_connect_timeout_seconds, 600);
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.log_format, "json");
    assert_string_equal(cfg.platform_data_dir, "/srv/saasodoo");
    assert_string_equal(cfg.platform_plans_file, "/etc/saasodoo/plans.yaml");
    assert_string_equal(cfg.platform_base_domain, "example.com");
    assert_string_equal(cfg.platform_default_odoo_version, "16.0");
    assert_int_equal(cfg.tenants_deleted_id_retention_days, 36500);
    config_free(&cfg);

    /* back to the default level, for the tests that follow */
    assert_int_equal(config_load_string(&cfg, "t.yaml", "", err, sizeof err), 0);
    config_free(&cfg);
}

static void test_partial_yaml_keeps_other_defaults(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load_string(&cfg, "t.yaml",
                                        "grpc:\n  max_receive_message_bytes: 1073741824\n", err,
                                        sizeof err),
                     0);
    assert_int_equal(cfg.grpc_max_receive_message_bytes, 1073741824);
    assert_string_equal(cfg.grpc_listen, "127.0.0.1:50051");
    assert_string_equal(cfg.log_level, "info");
    config_free(&cfg);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_unknown_section(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\nbogus:\n  x: 1\n", "t.yaml:3:", "bogus");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workerz: 4\n", "t.yaml:3:", "grpc.workerz");
    /* a key of another section is unknown here */
    expect_config_error("log:\n  level: info\n  url: x\n", "t.yaml:3:", "log.url");
}

static void test_not_an_integer(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: many\n", "t.yaml:3:", "grpc.workers");
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: 4x\n", "t.yaml:3:", "'4x'");
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: 2.5\n", "t.yaml:3:", "grpc.workers");
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: \"\"\n", "t.yaml:3:", "grpc.workers");
    /* beyond what a long holds */
    expect_config_error("grpc:\n  workers: 99999999999999999999\n", "t.yaml:2:", "grpc.workers");
}

static void test_integer_out_of_range(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: 257\n", "t.yaml:3:", "grpc.workers");
    expect_config_error("grpc:\n  listen: \"a:1\"\n  workers: -1\n", "t.yaml:3:", "grpc.workers");
    expect_config_error("grpc:\n  max_receive_message_bytes: 1023\n",
                        "t.yaml:2:", "grpc.max_receive_message_bytes");
    expect_config_error("grpc:\n  max_receive_message_bytes: 1073741825\n",
                        "t.yaml:2:", "grpc.max_receive_message_bytes");
    expect_config_error("database:\n  connect_timeout_seconds: 0\n",
                        "t.yaml:2:", "database.connect_timeout_seconds");
    /* the limits themselves are accepted */
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(config_load_string(&cfg, "t.yaml", "grpc:\n  workers: 256\n", err, sizeof err),
                     0);
    assert_int_equal(cfg.grpc_workers, 256);
    config_free(&cfg);
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\nlog:\n  level: loud\n",
                        "t.yaml:4:", "log.level");
    expect_config_error("log:\n  level: info\n  format: xml\n", "t.yaml:3:", "log.format");
    /* choices are matched whole, not by prefix */
    expect_config_error("log:\n  level: inf\n", "t.yaml:2:", "log.level");
    expect_config_error("log:\n  level: INFO\n", "t.yaml:2:", "log.level");
}

static void test_empty_string(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: \"a:1\"\nplatform:\n  base_domain: \"\"\n",
                        "t.yaml:4:", "platform.base_domain");
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    /* a list where a value is expected */
    expect_config_error("grpc:\n  workers: 2\n  listen: [a, b]\n", "t.yaml:3:", "grpc.listen");
    expect_config_error("grpc:\n  workers: 2\n  listen:\n    - a\n", "t.yaml:", "grpc.listen");
    /* a mapping where a value is expected */
    expect_config_error("grpc:\n  workers: 2\n  listen:\n    host: a\n", "t.yaml:", "grpc.listen");
    /* a section that is not a mapping */
    expect_config_error("grpc: 5\n", "t.yaml:1:", "grpc");
    expect_config_error("log:\n  - level\n", "t.yaml:2:", "log");
    /* a document that is not a mapping */
    expect_config_error("just text\n", "t.yaml:1:", "mapping");
    expect_config_error("- grpc\n", "t.yaml:1:", "list");
    /* aliases */
    expect_config_error("grpc:\n  listen: &a x\n  workers: *a\n", "t.yaml:3:", "alias");
}

static void test_invalid_yaml_syntax(void **state)
{
    (void)state;
    expect_config_error("grpc:\n  listen: x\n workers: 2\n", "t.yaml:3:", "invalid YAML");
    expect_config_error("grpc:\n  listen: x\n  workers: 2: 3\n", "t.yaml:3:", "invalid YAML");
    expect_config_error("grpc:\n  listen: x\n\tworkers: 2\n", "t.yaml:3:", "invalid YAML");
}

static void test_error_names_the_given_name(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[512] = "";
    assert_int_equal(config_load_string(&cfg, "config/other-name.yaml",
                                        "\n\n\n\n\ngrpc:\n  workers: 999\n", err, sizeof err),
                     -1);
    expect_contains(err, "config/other-name.yaml:7:");
    expect_contains(err, "grpc.workers");
    expect_contains(err, "999");
}

static void test_error_message_is_truncated_safely(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[12];
    memset(err, 'x', sizeof err);
    assert_int_equal(config_load_string(&cfg, "t.yaml", "bogus:\n  x: 1\n", err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, "t.yaml:1: u", sizeof err - 1);
}

/* ---- environment ----------------------------------------------------------------------- */

static int unset_config_env(void **state)
{
    (void)state;
    unsetenv("SAASODOO_GRPC_LISTEN");
    unsetenv("SAASODOO_GRPC_WORKERS");
    unsetenv("SAASODOO_DATABASE_URL");
    unsetenv("SAASODOO_LOG_LEVEL");
    unsetenv("SAASODOO_PLATFORM_BASE_DOMAIN");
    return 0;
}

static void test_env_overrides_file_and_default(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(setenv("SAASODOO_GRPC_LISTEN", "0.0.0.0:7000", 1), 0);
    assert_int_equal(setenv("SAASODOO_DATABASE_URL", "host=db.internal dbname=sdo", 1), 0);
    assert_int_equal(setenv("SAASODOO_GRPC_WORKERS", "2", 1), 0);
    assert_int_equal(config_load_string(&cfg, "t.yaml",
                                        "grpc:\n  listen: \"127.0.0.1:1\"\n  workers: 9\n", err,
                                        sizeof err),
                     0);
    assert_string_equal(cfg.grpc_listen, "0.0.0.0:7000");
    assert_string_equal(cfg.database_url, "host=db.internal dbname=sdo");
    assert_int_equal(cfg.grpc_workers, 2);
    assert_int_equal(cfg.database_pool_size, 4);
    config_free(&cfg);

    /* also without a file */
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.grpc_listen, "0.0.0.0:7000");
    assert_string_equal(cfg.database_url, "host=db.internal dbname=sdo");
    config_free(&cfg);

    /* unset again: the defaults are back */
    unset_config_env(NULL);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.grpc_listen, "127.0.0.1:50051");
    config_free(&cfg);
}

static void test_env_bad_values_name_the_variable(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[512] = "";

    assert_int_equal(setenv("SAASODOO_GRPC_WORKERS", "lots", 1), 0);
    assert_int_equal(config_load_string(&cfg, "t.yaml", "", err, sizeof err), -1);
    expect_contains(err, "SAASODOO_GRPC_WORKERS");
    expect_contains(err, "grpc.workers");
    assert_null(cfg.grpc_listen);

    assert_int_equal(setenv("SAASODOO_GRPC_WORKERS", "999", 1), 0);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), -1);
    expect_contains(err, "SAASODOO_GRPC_WORKERS");
    expect_contains(err, "out of range");
    unsetenv("SAASODOO_GRPC_WORKERS");

    assert_int_equal(setenv("SAASODOO_LOG_LEVEL", "loud", 1), 0);
    assert_int_equal(config_load_string(&cfg, "t.yaml", "", err, sizeof err), -1);
    expect_contains(err, "SAASODOO_LOG_LEVEL");
    expect_contains(err, "log.level");
    unsetenv("SAASODOO_LOG_LEVEL");

    assert_int_equal(setenv("SAASODOO_PLATFORM_BASE_DOMAIN", "", 1), 0);
    assert_int_equal(config_load_string(&cfg, "t.yaml", "", err, sizeof err), -1);
    expect_contains(err, "SAASODOO_PLATFORM_BASE_DOMAIN");
    unsetenv("SAASODOO_PLATFORM_BASE_DOMAIN");

    /* the file's own errors come first and still name the file */
    assert_int_equal(setenv("SAASODOO_GRPC_LISTEN", "0.0.0.0:7000", 1), 0);
    assert_int_equal(config_load_string(&cfg, "t.yaml", "grpc:\n  nope: 1\n", err, sizeof err), -1);
    expect_contains(err, "t.yaml:2:");
    expect_contains(err, "grpc.nope");
}

static void test_env_unrelated_variables_ignored(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[256] = "";
    assert_int_equal(setenv("SAASODOO_NOT_A_KEY", "whatever", 1), 0);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
    config_free(&cfg);
    unsetenv("SAASODOO_NOT_A_KEY");
}

/* ---- files ----------------------------------------------------------------------------- */

typedef struct tmp_files {
    char dir[64];
    char paths[4][256];
    int n;
} tmp_files;

static int tmp_setup(void **state)
{
    tmp_files *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/sdo-config-test-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    tmp_files *t = *state;
    for (int i = t->n - 1; i >= 0; i--)
        unlink(t->paths[i]);
    rmdir(t->dir);
    free(t);
    return 0;
}

/* Writes text to dir/name and returns the path (owned by t). */
static const char *tmp_write(tmp_files *t, const char *name, const char *text)
{
    assert_true(t->n < 4);
    char *path = t->paths[t->n];
    char buf[sizeof t->paths[0]];
    snprintf(buf, sizeof buf, "%s/%s", t->dir, name);
    memcpy(path, buf, sizeof buf);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    t->n++;
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_file_relative_plans_file(void **state)
{
    tmp_files *t = *state;
    const char *path =
        tmp_write(t, "saasodoo.yaml", "platform:\n  plans_file: catalogue/plans.yaml\n");
    sdo_config cfg;
    char err[512] = "";
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.dir, t->dir);
    char want[256];
    snprintf(want, sizeof want, "%s/catalogue/plans.yaml", t->dir);
    assert_string_equal(cfg.platform_plans_file, want);
    config_free(&cfg);
    assert_null(cfg.path);
    assert_null(cfg.dir);
}

static void test_file_default_plans_file_beside_config(void **state)
{
    tmp_files *t = *state;
    const char *path = tmp_write(t, "c.yaml", "grpc:\n  workers: 1\n");
    sdo_config cfg;
    char err[512] = "";
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    char want[256];
    snprintf(want, sizeof want, "%s/plans.yaml", t->dir);
    assert_string_equal(cfg.platform_plans_file, want);
    assert_int_equal(cfg.grpc_workers, 1);
    assert_int_equal(cfg.database_pool_size, 3);
    config_free(&cfg);
}

static void test_file_absolute_plans_file_kept(void **state)
{
    tmp_files *t = *state;
    const char *path = tmp_write(t, "c.yaml", "platform:\n  plans_file: /opt/p/plans.yaml\n");
    sdo_config cfg;
    char err[512] = "";
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.platform_plans_file, "/opt/p/plans.yaml");
    config_free(&cfg);
}

static void test_file_errors_name_the_path(void **state)
{
    tmp_files *t = *state;
    const char *path = tmp_write(t, "bad.yaml", "grpc:\n  listen: \"a:1\"\n  workerz: 2\n");
    sdo_config cfg;
    char err[512] = "";
    char want[300];
    assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3:", path);
    expect_contains(err, want);
    expect_contains(err, "grpc.workerz");
    assert_null(cfg.path);
    assert_null(cfg.grpc_listen);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.yaml", t->dir);
    assert_int_equal(config_load(&cfg, missing, err, sizeof err), -1);
    expect_contains(err, missing);
    assert_null(cfg.grpc_listen);
}

static void test_shipped_config_and_catalogue(void **state)
{
    (void)state;
    sdo_config cfg;
    char err[512] = "";
    const char *path = SAASODOO_TEST_SOURCE_DIR "/config/saasodoo.yaml";
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    /* the shipped file repeats the defaults */
    assert_string_equal(cfg.grpc_listen, "127.0.0.1:50051");
    assert_int_equal(cfg.grpc_max_receive_message_bytes, 4194304);
    assert_int_equal(cfg.database_pool_size, cfg.grpc_workers + 2);
    assert_string_equal(cfg.platform_plans_file, SAASODOO_TEST_SOURCE_DIR "/config/plans.yaml");

    plan_catalog cat;
    assert_int_equal(plans_load_file(cfg.platform_plans_file, &cat, err, sizeof err), 0);
    assert_int_equal(cat.n, 3);
    plans_free(&cat);
    config_free(&cfg);
}

/* ---- plan catalogue -------------------------------------------------------------------- */

/* Reads a whole file into a malloc'ed string. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static void test_plans_shipped_catalogue(void **state)
{
    (void)state;
    char *text = read_text(SAASODOO_TEST_SOURCE_DIR "/config/plans.yaml");
    plan_catalog cat;
    char err[512] = "";
    int rc = plans_load_string("plans.yaml", text, &cat, err, sizeof err);
    free(text);
    assert_int_equal(rc, 0);
    assert_int_equal(cat.n, 3);

    const Saasodoo__V1__Plan *b = cat.plans[0];
    assert_string_equal(b->name, "plans/basic");
    assert_string_equal(b->display_name, "Basic");
    assert_int_equal(b->database_strategy, SAASODOO__V1__DATABASE_STRATEGY__SHARED);
    assert_int_equal(b->cpu_millicores, 500);
    assert_int_equal(b->memory_mb, 1024);
    assert_int_equal(b->storage_gb, 10);
    assert_int_equal(b->max_db_connections, 20);
    assert_int_equal(b->odoo_workers, 2);
    assert_int_equal(b->backup_retention_days, 7);
    assert_non_null(b->price);
    assert_int_equal(b->price->amount_minor, 1900);
    assert_string_equal(b->price->currency_code, "EUR");
    assert_string_equal(b->billing_period, "monthly");
    assert_int_equal(b->trial_days, 14);

    assert_string_equal(cat.plans[1]->name, "plans/premium");
    assert_int_equal(cat.plans[1]->database_strategy, SAASODOO__V1__DATABASE_STRATEGY__DEDICATED);
    assert_int_equal(cat.plans[1]->price->amount_minor, 7900);
    assert_string_equal(cat.plans[2]->name, "plans/enterprise");
    assert_int_equal(cat.plans[2]->database_strategy, SAASODOO__V1__DATABASE_STRATEGY__DEDICATED);
    assert_int_equal(cat.plans[2]->trial_days, 0);
    assert_int_equal(cat.plans[2]->price->amount_minor, 24900);

    plans_free(&cat);
    assert_int_equal(cat.n, 0);
    assert_null(cat.plans);
}

/* The keys of one valid plan, one per line after "  - " / "    ". */
static const char *const plan_lines[] = {
    "id: basic",
    "display_name: Basic",
    "description: Small teams.",
    "database_strategy: shared",
    "cpu_millicores: 500",
    "memory_mb: 1024",
    "storage_gb: 10",
    "max_db_connections: 20",
    "odoo_workers: 2",
    "backup_retention_days: 7",
    "price_minor: 1900",
    "currency: EUR",
    "billing_period: monthly",
    "trial_days: 14",
};
#define N_PLAN_LINES (sizeof plan_lines / sizeof plan_lines[0])

/* Appends one plan to buf: every line of plan_lines, with the line starting with `key:`
 * replaced by `repl` (left out when repl is NULL). */
static void append_plan(char *buf, size_t bufsz, const char *key, const char *repl)
{
    int first = 1;
    for (size_t i = 0; i < N_PLAN_LINES; i++) {
        const char *line = plan_lines[i];
        if (key && strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') {
            if (!repl)
                continue;
            line = repl;
        }
        size_t used = strlen(buf);
        snprintf(buf + used, bufsz - used, "%s%s\n", first ? "  - " : "    ", line);
        first = 0;
    }
}

/* Loads "plans:" + one plan edited as append_plan does; expects failure naming where and
 * what. The plan starts on line 2, its key number i (from 0) is on line 2 + i. */
static void expect_plan_error(const char *key, const char *repl, const char *where,
                              const char *what)
{
    char yaml[2048] = "plans:\n";
    append_plan(yaml, sizeof yaml, key, repl);
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), -1);
    expect_contains(err, where);
    expect_contains(err, what);
    assert_int_equal(cat.n, 0);
    assert_null(cat.plans);
}

static void test_plans_generated_plan_is_valid(void **state)
{
    (void)state;
    char yaml[2048] = "plans:\n";
    append_plan(yaml, sizeof yaml, NULL, NULL);
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), 0);
    assert_int_equal(cat.n, 1);
    assert_string_equal(cat.plans[0]->name, "plans/basic");
    plans_free(&cat);

    /* optional keys may be left out */
    yaml[0] = 0;
    strcpy(yaml, "plans:\n");
    append_plan(yaml, sizeof yaml, "trial_days", NULL);
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), 0);
    assert_int_equal(cat.plans[0]->trial_days, 0);
    plans_free(&cat);
}

static void test_plans_missing_key(void **state)
{
    (void)state;
    expect_plan_error("memory_mb", NULL, "p.yaml:2:", "memory_mb");
    expect_plan_error("currency", NULL, "p.yaml:2:", "currency");
    expect_plan_error("id", NULL, "p.yaml:2:", "'id'");
}

static void test_plans_unknown_key(void **state)
{
    (void)state;
    /* description is line 4 */
    expect_plan_error("description", "colour: red", "p.yaml:4:", "colour");
}

static void test_plans_bad_values(void **state)
{
    (void)state;
    /* database_strategy is line 5 */
    expect_plan_error("database_strategy", "database_strategy: cluster",
                      "p.yaml:5:", "database_strategy");
    expect_plan_error("database_strategy", "database_strategy: SHARED",
                      "p.yaml:5:", "database_strategy");
    /* currency is line 13 */
    expect_plan_error("currency", "currency: eur", "p.yaml:13:", "currency");
    expect_plan_error("currency", "currency: EURO", "p.yaml:13:", "currency");
    expect_plan_error("currency", "currency: E1R", "p.yaml:13:", "currency");
    expect_plan_error("currency", "currency: EUr", "p.yaml:13:", "currency");
    expect_plan_error("currency", "currency: 1EU", "p.yaml:13:", "currency");
    /* memory_mb is line 7 */
    expect_plan_error("memory_mb", "memory_mb: lots", "p.yaml:7:", "memory_mb");
    expect_plan_error("memory_mb", "memory_mb: -1", "p.yaml:7:", "memory_mb");
    expect_plan_error("memory_mb", "memory_mb: [1]", "p.yaml:7:", "memory_mb");
    /* price_minor is line 12 */
    expect_plan_error("price_minor", "price_minor: 19.00", "p.yaml:12:", "price_minor");
    /* the id becomes a resource name: it follows the id rule */
    expect_plan_error("id", "id: Basic", "p.yaml:2:", "id");
    expect_plan_error("display_name", "display_name: \"\"", "p.yaml:3:", "display_name");
}

static void test_plans_large_price_kept(void **state)
{
    (void)state;
    char yaml[2048] = "plans:\n";
    append_plan(yaml, sizeof yaml, "price_minor", "price_minor: 5000000000");
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), 0);
    assert_int_equal(cat.plans[0]->price->amount_minor, 5000000000LL);
    plans_free(&cat);
}

static void test_plans_duplicate_plan(void **state)
{
    (void)state;
    char yaml[4096] = "plans:\n";
    append_plan(yaml, sizeof yaml, NULL, NULL);
    append_plan(yaml, sizeof yaml, NULL, NULL);
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), -1);
    /* the second plan starts on line 2 + 14 */
    expect_contains(err, "p.yaml:16:");
    expect_contains(err, "basic");
    assert_int_equal(cat.n, 0);

    /* two different ids are fine */
    strcpy(yaml, "plans:\n");
    append_plan(yaml, sizeof yaml, NULL, NULL);
    append_plan(yaml, sizeof yaml, "id", "id: premium");
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), 0);
    assert_int_equal(cat.n, 2);
    assert_string_equal(cat.plans[1]->name, "plans/premium");
    plans_free(&cat);
}

static void test_plans_duplicate_key(void **state)
{
    (void)state;
    char yaml[2048] = "plans:\n";
    append_plan(yaml, sizeof yaml, NULL, NULL);
    strcat(yaml, "    memory_mb: 2048\n"); /* line 16 */
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_string("p.yaml", yaml, &cat, err, sizeof err), -1);
    expect_contains(err, "p.yaml:16:");
    expect_contains(err, "memory_mb");
}

static void test_plans_document_shape(void **state)
{
    (void)state;
    plan_catalog cat;
    char err[512] = "";
    struct {
        const char *yaml;
        const char *where;
        const char *what;
    } cases[] = {
        {"plans: []\n", "p.yaml", "no plan"},
        {"", "p.yaml", "plans"},
        {"plans: basic\n", "p.yaml", "plans"},
        {"- id: basic\n", "p.yaml", "plans"},
        {"plans:\n  - basic\n", "p.yaml:2:", "mapping"},
        {"plans: []\nextra: 1\n", "p.yaml:2:", "extra"},
        {"plans:\n  - id: basic\n   x: [\n", "p.yaml:3:", "invalid YAML"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        assert_int_equal(plans_load_string("p.yaml", cases[i].yaml, &cat, err, sizeof err), -1);
        expect_contains(err, cases[i].where);
        expect_contains(err, cases[i].what);
        assert_int_equal(cat.n, 0);
    }
}

static void test_plans_missing_file(void **state)
{
    (void)state;
    plan_catalog cat;
    char err[512] = "";
    assert_int_equal(plans_load_file("/nonexistent/saasodoo/plans.yaml", &cat, err, sizeof err),
                     -1);
    expect_contains(err, "/nonexistent/saasodoo/plans.yaml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_file),
        cmocka_unit_test(test_empty_text_gives_defaults),
        cmocka_unit_test(test_pool_size_follows_workers),
        cmocka_unit_test(test_good_yaml_sets_every_key),
        cmocka_unit_test(test_partial_yaml_keeps_other_defaults),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_not_an_integer),
        cmocka_unit_test(test_integer_out_of_range),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_empty_string),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_invalid_yaml_syntax),
        cmocka_unit_test(test_error_names_the_given_name),
        cmocka_unit_test(test_error_message_is_truncated_safely),
        cmocka_unit_test_teardown(test_env_overrides_file_and_default, unset_config_env),
        cmocka_unit_test_teardown(test_env_bad_values_name_the_variable, unset_config_env),
        cmocka_unit_test(test_env_unrelated_variables_ignored),
        cmocka_unit_test_setup_teardown(test_file_relative_plans_file, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_default_plans_file_beside_config, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_absolute_plans_file_kept, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_errors_name_the_path, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_shipped_config_and_catalogue),
        cmocka_unit_test(test_plans_shipped_catalogue),
        cmocka_unit_test(test_plans_generated_plan_is_valid),
        cmocka_unit_test(test_plans_missing_key),
        cmocka_unit_test(test_plans_unknown_key),
        cmocka_unit_test(test_plans_bad_values),
        cmocka_unit_test(test_plans_large_price_kept),
        cmocka_unit_test(test_plans_duplicate_plan),
        cmocka_unit_test(test_plans_duplicate_key),
        cmocka_unit_test(test_plans_document_shape),
        cmocka_unit_test(test_plans_missing_file),
    };
    return cmocka_run_group_tests_name("config", tests, clear_saasodoo_env, NULL);
}
