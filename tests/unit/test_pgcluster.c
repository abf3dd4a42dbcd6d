/* Unit tests of the local PostgreSQL cluster adapter (dbstrategy/pgcluster.h) against real
 * clusters: create, start, stop, remove, ports, listing, copying a database between two
 * clusters and verifying copies. Everything lives in a fresh directory under /tmp that the
 * group teardown removes (stopping any cluster left running), whatever the tests did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbstrategy/pgcluster.h"
#include "util/spawn.h"

#define CLUSTER_A "tenant-a"
#define CLUSTER_B "tenant-b"

static struct {
    char tmp[64];   /* mkdtemp root, mode 0755 */
    char base[128]; /* tmp/clusters: made by pgc_create */
    pgc_config cfg;
    int port_lo, port_hi; /* where the tests look for ports */
    int port_a, port_b;
} T;

static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, text);
}

static int64_t now_ms(void)
{
    return sdo_mono_us() / 1000;
}

/* ---- libpq helpers ----------------------------------------------------------------- */

/* The admin conninfo of a cluster with dbname replaced (libpq keeps the last dbname). */
static char *db_conninfo(const char *cluster, int port, const char *db)
{
    char *admin = pgc_admin_conninfo(&T.cfg, cluster, port);
    assert_non_null(admin);
    size_t n = strlen(admin) + strlen(db) + 16;
    char *s = malloc(n);
    snprintf(s, n, "%s dbname='%s'", admin, db);
    free(admin);
    return s;
}

static PGconn *connect_ok(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect with \"%s\": %s", conninfo, PQerrorMessage(c));
    return c;
}

/* Runs one or more statements (no CREATE DATABASE among several) and asserts success. */
static void sql(const char *conninfo, const char *q)
{
    PGconn *c = connect_ok(conninfo);
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("\"%s\" failed: %s", q, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* The first value of q's result, in a static buffer. */
static const char *sql_value(const char *conninfo, const char *q)
{
    static char out[256];
    PGconn *c = connect_ok(conninfo);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("\"%s\" failed: %s", q, PQresultErrorMessage(r));
    snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return out;
}

static bool can_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    bool ok = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    return ok;
}

/* ---- fixture ----------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(T.tmp, sizeof T.tmp, "/tmp/pgc-test-XXXXXX");
    if (!mkdtemp(T.tmp) || chmod(T.tmp, 0755) < 0)
        return -1;
    snprintf(T.base, sizeof T.base, "%s/clusters", T.tmp);
    const char *bin = getenv("SAASODOO_PG_BIN");
    T.cfg.bin_dir = bin && *bin ? bin : "/usr/lib/postgresql/15/bin";
    T.cfg.run_as = "postgres";
    T.cfg.base_dir = T.base;
    /* a window of ports that differs between concurrent runs */
    T.port_lo = 40000 + (int)(getpid() % 500) * 20;
    T.port_hi = T.port_lo + 2000;
    return 0;
}

/* Stops and removes whatever clusters the tests left, then the directory. */
static int group_teardown(void **state)
{
    (void)state;
    char **names = NULL;
    size_t n = 0;
    if (pgc_list(&T.cfg, &names, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            sdo_error err;
            if (pgc_remove(&T.cfg, names[i], &err) < 0)
                fprintf(stderr, "cleanup of cluster %s: %s\n", names[i], err.message);
            free(names[i]);
        }
        free(names);
    }
    nftw(T.tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- input checks ------------------------------------------------------------------ */

static void expect_bad_name(const char *name)
{
    sdo_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(pgc_create(&T.cfg, name, T.port_lo, 10, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "name");
    expect_contains(err.message, PGC_NAME_PATTERN);
    assert_int_equal(pgc_start(&T.cfg, name, T.port_lo, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(pgc_stop(&T.cfg, name, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(pgc_remove(&T.cfg, name, &err), -SDO_INVALID_ARGUMENT);
    bool running = true;
    assert_false(pgc_exists(&T.cfg, name, &running));
    assert_false(running);
    assert_null(pgc_admin_conninfo(&T.cfg, name, T.port_lo));
}

static void test_rejects_bad_input(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "ab",
                         "A-tenant",
                         "-abc",
                         "abc-",
                         "a_bc",
                         "1abc",
                         "ab.c",
                         "ab/c",
                         "../etc",
                         "ab c",
                         "tenant-Å",
                         "abcdefghijklmnopqrstuvwxyz0123456789abcde" /* 41 */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad_name(bad[i]);
    expect_bad_name(NULL);

    /* the shortest and the longest valid names pass the check */
    char *ci = pgc_admin_conninfo(&T.cfg, "abc", 5432);
    assert_non_null(ci);
    free(ci);
    ci = pgc_admin_conninfo(&T.cfg, "abcdefghijklmnopqrstuvwxyz0123456789abcd", 5432);
    assert_non_null(ci);
    free(ci);

    sdo_error err;
    assert_int_equal(pgc_create(&T.cfg, "abc", 0, 10, &err), -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "port");
    assert_int_equal(pgc_create(&T.cfg, "abc", 65536, 10, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(pgc_create(&T.cfg, "abc", T.port_lo, 0, &err), -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "max_connections");
    int port = -1;
    assert_int_equal(pgc_free_port(&T.cfg, 2000, 1000, &port, &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(pgc_free_port(&T.cfg, 0, 1000, &port, &err), -SDO_INVALID_ARGUMENT);

    /* paths that would break pg_ctl's shell line or the settings file */
    pgc_config bad_cfg = T.cfg;
    bad_cfg.base_dir = "relative/clusters";
    assert_int_equal(pgc_create(&bad_cfg, "abc", T.port_lo, 10, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "relative/clusters");
    bad_cfg.base_dir = "/tmp/it's";
    assert_int_equal(pgc_create(&bad_cfg, "abc", T.port_lo, 10, &err), -SDO_FAILED_PRECONDITION);
    bad_cfg.base_dir = T.base;
    bad_cfg.bin_dir = "/nonexistent/bin";
    assert_int_equal(pgc_create(&bad_cfg, "abc", T.port_lo, 10, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "/nonexistent/bin/initdb");

    /* none of this made anything */
    struct stat st;
    assert_int_equal(stat(T.base, &st), -1);
    char **names = NULL;
    size_t n = 99;
    assert_int_equal(pgc_list(&T.cfg, &names, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(names);
}

/* As root, a base directory its run_as user cannot traverse fails before initdb. */
static void test_unreachable_base(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char priv[160];
    snprintf(priv, sizeof priv, "%s/private", T.tmp);
    assert_int_equal(mkdir(priv, 0700), 0);
    pgc_config cfg = T.cfg;
    char base[200];
    snprintf(base, sizeof base, "%s/clusters", priv);
    cfg.base_dir = base;
    sdo_error err;
    assert_int_equal(pgc_create(&cfg, "abc", T.port_lo, 10, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "cannot reach");
    expect_contains(err.message, priv);
    expect_contains(err.message, "0700");
    rmdir(base);
    rmdir(priv);
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void test_lifecycle(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(pgc_free_port(&T.cfg, T.port_lo, T.port_hi, &T.port_a, &err), 0);

    int64_t t0 = now_ms();
    if (pgc_create(&T.cfg, CLUSTER_A, T.port_a, 20, &err) < 0)
        fail_msg("create: %s", err.message);
    int64_t t1 = now_ms();
    bool running = true;
    assert_true(pgc_exists(&T.cfg, CLUSTER_A, &running));
    assert_false(running);

    /* the base directory was made for run_as; data and socket directories are private */
    char path[256];
    struct stat st;
    assert_int_equal(stat(T.base, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid == 0)
        assert_true(spawn_user("postgres", &uid, &gid));
    snprintf(path, sizeof path, "%s/%s/data", T.base, CLUSTER_A);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, uid);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/%s/run", T.base, CLUSTER_A);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, uid);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/%s/data.initdb", T.base, CLUSTER_A);
    assert_int_equal(stat(path, &st), -1);

    int64_t t2 = now_ms();
    if (pgc_start(&T.cfg, CLUSTER_A, T.port_a, &err) < 0)
        fail_msg("start: %s", err.message);
    int64_t t3 = now_ms();
    print_message("cluster %s: initdb %lld ms, start %lld ms (port %d)\n", CLUSTER_A,
                  (long long)(t1 - t0), (long long)(t3 - t2), T.port_a);
    assert_true(pgc_exists(&T.cfg, CLUSTER_A, &running));
    assert_true(running);

    char *admin = pgc_admin_conninfo(&T.cfg, CLUSTER_A, T.port_a);
    assert_non_null(admin);
    expect_contains(admin, "user='postgres'");
    assert_string_equal(sql_value(admin, "SELECT 1"), "1");
    assert_string_equal(sql_value(admin, "SHOW max_connections"), "20");
    assert_string_equal(sql_value(admin, "SHOW shared_buffers"), "32MB");
    assert_string_equal(sql_value(admin, "SHOW fsync"), "on");
    assert_string_equal(sql_value(admin, "SHOW listen_addresses"), "127.0.0.1");

    /* over TCP even the superuser needs a password (it has none) */
    char tcp[128];
    snprintf(tcp, sizeof tcp, "host=127.0.0.1 port=%d user=postgres dbname=postgres", T.port_a);
    PGconn *c = PQconnectdb(tcp);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    expect_contains(PQerrorMessage(c), "password");
    PQfinish(c);

    /* repeating is harmless; another port while running is refused */
    assert_int_equal(pgc_create(&T.cfg, CLUSTER_A, T.port_a, 20, &err), 0);
    assert_int_equal(pgc_start(&T.cfg, CLUSTER_A, T.port_a, &err), 0);
    assert_int_equal(pgc_start(&T.cfg, CLUSTER_A, T.port_a + 1, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, CLUSTER_A);

    assert_int_equal(pgc_stop(&T.cfg, CLUSTER_A, &err), 0);
    assert_true(pgc_exists(&T.cfg, CLUSTER_A, &running));
    assert_false(running);
    assert_false(can_connect(admin));
    assert_int_equal(pgc_stop(&T.cfg, CLUSTER_A, &err), 0);

    assert_int_equal(pgc_start(&T.cfg, CLUSTER_A, T.port_a, &err), 0);
    assert_string_equal(sql_value(admin, "SELECT 1"), "1");
    free(admin);

    /* a missing cluster cannot start and needs no stopping */
    assert_int_equal(pgc_start(&T.cfg, "missing", T.port_a, &err), -SDO_NOT_FOUND);
    expect_contains(err.message, "missing");
    assert_int_equal(pgc_stop(&T.cfg, "missing", &err), 0);
    assert_false(pgc_exists(&T.cfg, "missing", NULL));
}

/* ---- copy and verify --------------------------------------------------------------- */

static void test_copy_and_verify(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0, sizeof err);
    char *admin_a = pgc_admin_conninfo(&T.cfg, CLUSTER_A, T.port_a);
    char *src = db_conninfo(CLUSTER_A, T.port_a, "src");
    sql(admin_a, "CREATE DATABASE src");
    sql(src, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),"
             "  at timestamptz, tags text[], ratio float8);"
             "INSERT INTO items (name, price, at, tags, ratio)"
             "  SELECT 'item ' || g, g * 1.5, '2024-01-01 00:00+00'::timestamptz + g * interval "
             "'1 hour', ARRAY['a', g::text], g / 3.0"
             "  FROM generate_series(1, 200) g;"
             "CREATE EXTENSION pg_trgm;"
             "CREATE INDEX items_name_trgm ON items USING gin (name gin_trgm_ops);"
             "CREATE FUNCTION item_label(i items) RETURNS text LANGUAGE plpgsql AS "
             "  $$BEGIN RETURN i.name || ' (' || i.price || ')'; END$$;"
             "CREATE VIEW labels AS SELECT item_label(items) AS label FROM items;"
             "CREATE TABLE empty_one (x int);"
             "CREATE TABLE notes (id int, body bytea);"
             "INSERT INTO notes VALUES (1, '\\x00ff'), (2, NULL), (2, NULL);");

    /* a second cluster with the tenant's role and its empty database */
    assert_int_equal(pgc_free_port(&T.cfg, T.port_lo, T.port_hi, &T.port_b, &err), 0);
    assert_int_not_equal(T.port_b, T.port_a);
    if (pgc_create(&T.cfg, CLUSTER_B, T.port_b, 20, &err) < 0 ||
        pgc_start(&T.cfg, CLUSTER_B, T.port_b, &err) < 0)
        fail_msg("cluster b: %s", err.message);
    char *admin_b = pgc_admin_conninfo(&T.cfg, CLUSTER_B, T.port_b);
    char *dst = db_conninfo(CLUSTER_B, T.port_b, "dst");
    sql(admin_b, "CREATE ROLE tenant_b LOGIN PASSWORD 'pw-b'");
    sql(admin_b, "CREATE DATABASE dst OWNER tenant_b");

    int64_t t0 = now_ms();
    if (pgc_copy_database(&T.cfg, admin_a, "src", admin_b, "dst", "tenant_b", 60000, &err) < 0)
        fail_msg("copy: %s", err.message);
    print_message("copy of a small database: %lld ms\n", (long long)(now_ms() - t0));
    assert_string_equal(sql_value(dst, "SELECT count(*) FROM items"), "200");
    assert_string_equal(sql_value(dst, "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables "
                                       "WHERE schemaname = 'public'"),
                        "tenant_b");
    assert_string_equal(sql_value(dst, "SELECT nextval('items_id_seq')"), "201");
    assert_string_equal(sql_value(dst, "SELECT label FROM labels ORDER BY label LIMIT 1"),
                        "item 1 (1.50)");
    assert_string_equal(sql_value(dst, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                       "'items_name_trgm'"),
                        "1");
    sql(dst, "SELECT setval('items_id_seq', 200)");

    int tables = -1;
    t0 = now_ms();
    if (pgc_verify_same(src, dst, &tables, &err) < 0)
        fail_msg("verify: %s", err.message);
    print_message("verify: %lld ms\n", (long long)(now_ms() - t0));
    assert_int_equal(tables, 3);

    /* one changed value is found and named; putting it back makes them equal again */
    sql(dst, "UPDATE items SET name = 'changed' WHERE id = 7");
    assert_int_equal(pgc_verify_same(src, dst, &tables, &err), -SDO_DATA_LOSS);
    assert_int_equal(err.code, SDO_DATA_LOSS);
    assert_string_equal(err.reason, "DATA_MISMATCH");
    expect_contains(err.message, "public.items");
    expect_contains(err.message, "contents");
    assert_int_equal(tables, 1); /* empty_one compared, then items differed */
    sql(dst, "UPDATE items SET name = 'item 7' WHERE id = 7");
    assert_int_equal(pgc_verify_same(src, dst, &tables, &err), 0);

    /* a swapped pair of values keeps every column's multiset but not the rows */
    sql(dst, "UPDATE items SET price = CASE id WHEN 1 THEN 3.00 ELSE 1.50 END WHERE id IN (1, 2)");
    assert_int_equal(pgc_verify_same(src, dst, NULL, &err), -SDO_DATA_LOSS);
    expect_contains(err.message, "public.items");
    sql(dst, "UPDATE items SET price = id * 1.5 WHERE id IN (1, 2)");

    /* a duplicate row removed, a missing row, a missing table, a sequence moved */
    sql(dst, "DELETE FROM notes WHERE ctid IN (SELECT ctid FROM notes WHERE id = 2 LIMIT 1)");
    assert_int_equal(pgc_verify_same(src, dst, NULL, &err), -SDO_DATA_LOSS);
    expect_contains(err.message, "public.notes");
    expect_contains(err.message, "3 rows");
    expect_contains(err.message, "2 in");
    sql(dst, "INSERT INTO notes VALUES (2, NULL)");
    sql(dst, "ALTER TABLE empty_one RENAME TO empty_two");
    assert_int_equal(pgc_verify_same(src, dst, NULL, &err), -SDO_DATA_LOSS);
    expect_contains(err.message, "empty_");
    sql(dst, "ALTER TABLE empty_two RENAME TO empty_one");
    sql(dst, "SELECT nextval('items_id_seq')");
    assert_int_equal(pgc_verify_same(src, dst, NULL, &err), -SDO_DATA_LOSS);
    expect_contains(err.message, "items_id_seq");
    sql(dst, "SELECT setval('items_id_seq', 200)");
    assert_int_equal(pgc_verify_same(src, dst, NULL, &err), 0);

    /* copying onto data is refused: the destination must be empty */
    assert_int_equal(
        pgc_copy_database(&T.cfg, admin_a, "src", admin_b, "dst", "tenant_b", 60000, &err),
        -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "not empty");
    assert_int_equal(
        pgc_copy_database(&T.cfg, admin_a, "src", admin_b, "missing", "tenant_b", 60000, &err),
        -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "'missing' does not exist");

    /* a missing source database is named; a server that is not there is UNAVAILABLE; the
     * destination stays empty, so the copy can be repeated */
    sql(admin_b, "CREATE DATABASE dst2 OWNER tenant_b");
    assert_int_equal(
        pgc_copy_database(&T.cfg, admin_a, "nope", admin_b, "dst2", "tenant_b", 60000, &err),
        -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "pg_dump");
    expect_contains(err.message, "\"nope\" does not exist");
    char *nowhere = pgc_admin_conninfo(&T.cfg, CLUSTER_A, T.port_hi + 1);
    assert_int_equal(
        pgc_copy_database(&T.cfg, nowhere, "src", admin_b, "dst2", "tenant_b", 60000, &err),
        -SDO_UNAVAILABLE);
    free(nowhere);
    assert_int_equal(
        pgc_copy_database(&T.cfg, admin_a, "src", admin_b, "dst2", "no_such_role", 60000, &err),
        -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "pg_restore");
    expect_contains(err.message, "no_such_role");
    if (pgc_copy_database(&T.cfg, admin_a, "src", admin_b, "dst2", "tenant_b", 60000, &err) < 0)
        fail_msg("copy after failures: %s", err.message);
    char *dst2 = db_conninfo(CLUSTER_B, T.port_b, "dst2");
    assert_int_equal(pgc_verify_same(src, dst2, &tables, &err), 0);
    assert_int_equal(tables, 3);

    /* the tenant's own password login over TCP works as a destination and for verifying */
    sql(admin_b, "CREATE DATABASE dst3 OWNER tenant_b");
    char tcp[160];
    snprintf(tcp, sizeof tcp, "postgresql://tenant_b:pw-b@127.0.0.1:%d/postgres", T.port_b);
    if (pgc_copy_database(&T.cfg, admin_a, "src", tcp, "dst3", "tenant_b", 60000, &err) < 0)
        fail_msg("copy over TCP: %s", err.message);
    snprintf(tcp, sizeof tcp, "host=127.0.0.1 port=%d user=tenant_b password=pw-b dbname=dst3",
             T.port_b);
    assert_int_equal(pgc_verify_same(src, tcp, &tables, &err), 0);
    snprintf(tcp, sizeof tcp, "host=127.0.0.1 port=%d user=tenant_b password=wrong dbname=dst3",
             T.port_b);
    assert_int_equal(pgc_verify_same(src, tcp, &tables, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "password");

    free(dst2);
    free(dst);
    free(admin_b);
    free(src);
    free(admin_a);
}

/* ---- ports and listing ------------------------------------------------------------- */

static void test_free_port(void **state)
{
    (void)state;
    sdo_error err;
    int p = 0, q = 0;
    assert_int_equal(pgc_free_port(&T.cfg, T.port_hi - 100, T.port_hi, &p, &err), 0);

    /* a port someone listens on is skipped */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(pgc_free_port(&T.cfg, p, T.port_hi, &q, &err), 0);
    assert_true(q > p);
    assert_int_equal(pgc_free_port(&T.cfg, p, p, &q, &err), -SDO_RESOURCE_EXHAUSTED);
    expect_contains(err.message, "no free port");

    /* starting on a port someone else holds fails, naming the reason from the server log */
    assert_int_equal(pgc_stop(&T.cfg, CLUSTER_A, &err), 0);
    assert_int_equal(pgc_start(&T.cfg, CLUSTER_A, p, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, CLUSTER_A);
    expect_contains(err.message, "Address already in use");
    close(fd);
    assert_int_equal(pgc_start(&T.cfg, CLUSTER_A, T.port_a, &err), 0);
    assert_int_equal(pgc_stop(&T.cfg, CLUSTER_A, &err), 0);

    assert_int_equal(pgc_free_port(&T.cfg, p, p, &q, &err), 0);
    assert_int_equal(q, p);

    /* a cluster's recorded port is skipped even while the cluster is stopped */
    assert_int_equal(pgc_free_port(&T.cfg, T.port_a, T.port_a, &q, &err), -SDO_RESOURCE_EXHAUSTED);
    assert_int_equal(pgc_free_port(&T.cfg, T.port_a, T.port_hi, &q, &err), 0);
    assert_int_not_equal(q, T.port_a);
    assert_int_not_equal(q, T.port_b);
}

static void test_list(void **state)
{
    (void)state;
    /* things in the base directory that are not clusters are not listed */
    char path[256];
    snprintf(path, sizeof path, "%s/README", T.base);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/not_a_cluster", T.base);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/plain-file", T.base);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);

    char **names = NULL;
    size_t n = 0;
    sdo_error err;
    assert_int_equal(pgc_list(&T.cfg, &names, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], CLUSTER_A);
    assert_string_equal(names[1], CLUSTER_B);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void test_remove(void **state)
{
    (void)state;
    sdo_error err;
    char *admin_b = pgc_admin_conninfo(&T.cfg, CLUSTER_B, T.port_b);
    assert_true(can_connect(admin_b));
    /* a is stopped (test_free_port), b is running */
    assert_int_equal(pgc_remove(&T.cfg, CLUSTER_A, &err), 0);
    assert_int_equal(pgc_remove(&T.cfg, CLUSTER_B, &err), 0);
    assert_false(can_connect(admin_b));
    free(admin_b);

    const char *names[] = {CLUSTER_A, CLUSTER_B};
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        struct stat st;
        assert_false(pgc_exists(&T.cfg, names[i], NULL));
        snprintf(path, sizeof path, "%s/%s", T.base, names[i]);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof path, "%s/.%s.removing", T.base, names[i]);
        assert_int_equal(stat(path, &st), -1);
        assert_int_equal(pgc_remove(&T.cfg, names[i], &err), 0);
        assert_int_equal(pgc_stop(&T.cfg, names[i], &err), 0);
        assert_int_equal(pgc_start(&T.cfg, names[i], T.port_a, &err), -SDO_NOT_FOUND);
    }
    char **list = NULL;
    size_t n = 9;
    assert_int_equal(pgc_list(&T.cfg, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_bad_input),
        cmocka_unit_test(test_unreachable_base),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_copy_and_verify),
        cmocka_unit_test(test_free_port),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_remove),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
