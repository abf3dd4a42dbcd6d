/* Unit tests of the process runtime (runtime/process.h) against real processes: the stand-in
 * app (build/bin/saasodoo-standin --no-db answers /web/health without a database) started,
 * probed, killed, restarted, stopped, re-adopted by a new runtime and removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/process.h"
#include "util/log.h"

#define TEST_ARGS                                                                                  \
    "--database={db_name} --db_host={db_host} --db_port={db_port} --db_user={db_user} "            \
    "--db-filter=^{db_name}$ --http-port={http_port} --data-dir={data_dir} --workers={workers} "   \
    "--no-database-list --no-db --label={tenant}@{odoo_version} --literal={{x}}"

static char standin[PATH_MAX];
static char root[64], state_dir[128], files_dir[128];
static int port_min, port_max;

static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, text);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Reads /proc/<pid>/<what> (NUL-separated) into buf; returns its length. */
static size_t proc_read(pid_t pid, const char *what, char *buf, size_t bufsz)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t have = 0;
    ssize_t r;
    while (have < bufsz - 1 && (r = read(fd, buf + have, bufsz - 1 - have)) > 0)
        have += (size_t)r;
    close(fd);
    buf[have] = 0;
    return have;
}

/* True if the NUL-separated list holds item exactly. */
static bool nul_list_has(const char *buf, size_t len, const char *item)
{
    for (const char *p = buf; p < buf + len; p += strlen(p) + 1)
        if (strcmp(p, item) == 0)
            return true;
    return false;
}

static bool nul_list_contains(const char *buf, size_t len, const char *needle)
{
    for (const char *p = buf; p < buf + len; p += strlen(p) + 1)
        if (strstr(p, needle))
            return true;
    return false;
}

static int setup(void **state)
{
    (void)state;
    /* a space in the folder name: substituted values must stay one argument */
    snprintf(root, sizeof root, "/tmp/sdo runtime XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(state_dir, sizeof state_dir, "%s/apps", root);
    snprintf(files_dir, sizeof files_dir, "%s/filestore", root);
    port_min = 30000 + (int)(getpid() % 300) * 100;
    port_max = port_min + 99;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* apps left running by a failed test */
    char pattern[256], line[64];
    DIR *d = opendir(state_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        snprintf(pattern, sizeof pattern, "%s/%.64s/pid", state_dir, de->d_name);
        FILE *f = fopen(pattern, "r");
        if (f && fgets(line, sizeof line, f) && atoi(line) > 0)
            kill(-atoi(line), SIGKILL);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static runtime *make_rt(const char *command, const char *args, int backoff_max_ms)
{
    rt_process_config cfg = {
        .state_dir = state_dir,
        .filestore_dir = files_dir,
        .command = command,
        .args = args,
        .port_min = port_min,
        .port_max = port_max,
        .health_timeout_ms = 5000,
        .restart_backoff_max_ms = backoff_max_ms,
        .run_as = NULL,
    };
    sdo_error err = {0};
    runtime *rt = rt_process_new(&cfg, &err);
    if (!rt)
        fail_msg("rt_process_new: %s", err.message);
    return rt;
}

static rt_app_spec spec_for(const char *id, const char *password)
{
    rt_app_spec s = {
        .tenant_id = id,
        .db_host = "/tmp/db sockets here",
        .db_port = 5544,
        .db_user = "u_acme",
        .db_password = password,
        .db_name = "db_acme",
        .workers = 2,
        .odoo_version = "17.0",
    };
    return s;
}

static int start_ok(runtime *rt, const rt_app_spec *spec)
{
    sdo_error err = {0};
    int port = -1;
    int rc = rt->ops->start(rt, spec, &port, &err);
    if (rc)
        fail_msg("start %s: %s", spec->tenant_id, err.message);
    return port;
}

static void healthy_ok(runtime *rt, const char *id)
{
    sdo_error err = {0};
    int rc = rt->ops->wait_healthy(rt, id, 0, &err);
    if (rc)
        fail_msg("wait_healthy %s: %s", id, err.message);
}

static rt_status status_of(runtime *rt, const char *id)
{
    rt_status st;
    assert_int_equal(rt->ops->status(rt, id, &st), 0);
    return st;
}

/* Polls until the tenant runs with a pid other than old (up to timeout_ms); returns it. */
static int wait_new_pid(runtime *rt, const char *id, int old, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    while (now_ms() < until) {
        rt_status st = status_of(rt, id);
        if (st.running && st.pid != old)
            return st.pid;
        nap_ms(20);
    }
    fail_msg("tenant %s was not restarted within %d ms", id, timeout_ms);
    return 0;
}

static void remove_all(runtime *rt)
{
    char **ids = NULL;
    size_t n = 0;
    sdo_error err = {0};
    assert_int_equal(rt->ops->list(rt, &ids, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rt->ops->remove(rt, ids[i], &err), 0);
        free(ids[i]);
    }
    free(ids);
}

/* ---- configuration ------------------------------------------------------------------------- */

static void expect_config_error(const char *command, const char *args, int pmin, int pmax,
                                const char *field, const char *needle)
{
    rt_process_config cfg = {state_dir, files_dir, command, args, pmin, pmax, 1000, 1000, NULL};
    sdo_error err = {0};
    runtime *rt = rt_process_new(&cfg, &err);
    if (rt) {
        rt->ops->free(rt);
        fail_msg("expected an error naming %s for args '%s'", field, args);
    }
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, field);
    expect_contains(err.message, needle);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error(standin, "--x={nope}", port_min, port_max, "runtime.args", "'{nope}'");
    expect_config_error(standin, "--http-port={http_port} --y={db_name", port_min, port_max,
                        "runtime.args", "unterminated");
    expect_config_error("", "--x={DB_NAME}", port_min, port_max, "runtime.args", "{DB_NAME}");
    expect_config_error("/nonexistent/odoo", TEST_ARGS, port_min, port_max, "runtime.command",
                        "/nonexistent/odoo");
    expect_config_error("no-such-program-anywhere", TEST_ARGS, port_min, port_max,
                        "runtime.command", "PATH");
    expect_config_error(standin, TEST_ARGS, port_max, port_min, "runtime.port_min", "range");
    rt_process_config same = {state_dir, state_dir, standin, TEST_ARGS, port_min,
                              port_max,  0,         0,       NULL};
    sdo_error err = {0};
    assert_null(rt_process_new(&same, &err));
    assert_string_equal(err.field, "runtime.filestore_dir");
}

static void test_disabled(void **state)
{
    (void)state;
    runtime *rt = make_rt("", TEST_ARGS, 0);
    assert_false(rt->ops->enabled(rt));
    rt_app_spec spec = spec_for("acme", "pw");
    assert_int_equal(start_ok(rt, &spec), 0);
    healthy_ok(rt, "acme");
    rt_status st = status_of(rt, "acme");
    assert_false(st.running);
    assert_int_equal(st.port, 0);
    char *fs = rt->ops->filestore_path(rt, "acme");
    assert_non_null(fs);
    char want[PATH_MAX + 8];
    snprintf(want, sizeof want, "%s/acme", files_dir);
    assert_string_equal(fs, want);
    free(fs);
    rt->ops->free(rt);
}

static void test_invalid_ids(void **state)
{
    (void)state;
    runtime *rt = make_rt(standin, TEST_ARGS, 1000);
    sdo_error err = {0};
    int port;
    rt_app_spec spec = spec_for("../etc", "pw");
    assert_int_equal(rt->ops->start(rt, &spec, &port, &err), -SDO_INVALID_ARGUMENT);
    expect_contains(err.message, "../etc");
    assert_int_equal(rt->ops->remove(rt, "..", &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(rt->ops->stop(rt, "a/b", &err), -SDO_INVALID_ARGUMENT);
    assert_null(rt->ops->filestore_path(rt, "../../root"));
    assert_int_equal(rt->ops->wait_healthy(rt, "Acme", 100, &err), -SDO_INVALID_ARGUMENT);
    /* unknown but valid: nothing to do is success */
    assert_int_equal(rt->ops->stop(rt, "ghost", &err), 0);
    assert_int_equal(rt->ops->remove(rt, "ghost", &err), 0);
    assert_int_equal(rt->ops->wait_healthy(rt, "ghost", 100, &err), -SDO_FAILED_PRECONDITION);
    rt->ops->free(rt);
}

/* ---- the app's life ------------------------------------------------------------------------ */

static void test_start_health_kill_stop(void **state)
{
    (void)state;
    runtime *rt = make_rt(standin, TEST_ARGS, 1500);
    assert_true(rt->ops->enabled(rt));
    rt_app_spec spec = spec_for("acme", "s3cret-pw");

    int64_t t0 = now_ms();
    int port = start_ok(rt, &spec);
    healthy_ok(rt, "acme");
    print_message("start to healthy: %lld ms\n", (long long)(now_ms() - t0));
    assert_in_range(port, port_min, port_max);
    rt_status st = status_of(rt, "acme");
    assert_true(st.running);
    assert_true(st.healthy);
    assert_int_equal(st.port, port);
    assert_int_equal(st.restarts, 0);
    pid_t pid = st.pid;
    assert_true(pid > 0);

    /* argv: every placeholder substituted, values with spaces kept whole, no password */
    char buf[16384], want[PATH_MAX + 64];
    size_t n = proc_read(pid, "cmdline", buf, sizeof buf);
    assert_string_equal(buf, standin);
    assert_true(nul_list_has(buf, n, "--database=db_acme"));
    assert_true(nul_list_has(buf, n, "--db_host=/tmp/db sockets here"));
    assert_true(nul_list_has(buf, n, "--db_port=5544"));
    assert_true(nul_list_has(buf, n, "--db_user=u_acme"));
    assert_true(nul_list_has(buf, n, "--db-filter=^db_acme$"));
    snprintf(want, sizeof want, "--http-port=%d", port);
    assert_true(nul_list_has(buf, n, want));
    snprintf(want, sizeof want, "--data-dir=%s/acme", files_dir);
    assert_true(nul_list_has(buf, n, want));
    assert_true(nul_list_has(buf, n, "--workers=2"));
    assert_true(nul_list_has(buf, n, "--label=acme@17.0"));
    assert_true(nul_list_has(buf, n, "--literal={x}"));
    assert_false(nul_list_contains(buf, n, "s3cret-pw"));
    n = proc_read(pid, "environ", buf, sizeof buf);
    assert_true(nul_list_has(buf, n, "PGPASSWORD=s3cret-pw"));
    assert_true(nul_list_has(buf, n, "PGHOST=/tmp/db sockets here"));
    assert_true(nul_list_has(buf, n, "PGDATABASE=db_acme"));

    /* the app got its data dir: the stand-in writes its marker where Odoo keeps files */
    char *fs = rt->ops->filestore_path(rt, "acme");
    snprintf(want, sizeof want, "%s/filestore/db_acme/.standin", fs);
    assert_true(exists(want));
    snprintf(want, sizeof want, "%s/acme/app.log", state_dir);
    assert_true(exists(want));

    /* start again with the same spec: the same process */
    assert_int_equal(start_ok(rt, &spec), port);
    assert_int_equal(status_of(rt, "acme").pid, pid);

    /* a second tenant gets a port of its own */
    rt_app_spec beta = spec_for("beta", "other-pw");
    int port_b = start_ok(rt, &beta);
    assert_in_range(port_b, port_min, port_max);
    assert_int_not_equal(port_b, port);

    /* killed: restarted after 1 s, then after the 1.5 s cap */
    int64_t k = now_ms();
    kill(pid, SIGKILL);
    pid_t pid2 = wait_new_pid(rt, "acme", pid, 5000);
    int64_t waited = now_ms() - k;
    assert_true(waited >= 1000);
    healthy_ok(rt, "acme");
    st = status_of(rt, "acme");
    assert_int_equal(st.restarts, 1);
    assert_true(st.healthy);
    assert_int_equal(st.port, port);
    k = now_ms();
    kill(pid2, SIGKILL);
    pid_t pid3 = wait_new_pid(rt, "acme", pid2, 5000);
    waited = now_ms() - k;
    assert_true(waited >= 1500);
    assert_int_equal(status_of(rt, "acme").restarts, 2);

    /* stopped: gone and not brought back */
    sdo_error err = {0};
    assert_int_equal(rt->ops->stop(rt, "acme", &err), 0);
    st = status_of(rt, "acme");
    assert_false(st.running);
    assert_false(st.healthy);
    assert_int_equal(kill(pid3, 0), -1);
    assert_int_equal(rt->ops->stop(rt, "acme", &err), 0);
    nap_ms(1700);
    assert_false(status_of(rt, "acme").running);
    assert_int_equal(rt->ops->wait_healthy(rt, "acme", 200, &err), -SDO_FAILED_PRECONDITION);

    /* started again: same port; a changed password restarts it with the new one */
    assert_int_equal(start_ok(rt, &spec), port);
    pid_t pid4 = status_of(rt, "acme").pid;
    assert_true(pid4 > 0 && pid4 != pid3);
    rt_app_spec rotated = spec_for("acme", "new-pw");
    assert_int_equal(start_ok(rt, &rotated), port);
    pid_t pid5 = status_of(rt, "acme").pid;
    assert_int_not_equal(pid5, pid4);
    healthy_ok(rt, "acme");
    n = proc_read(pid5, "environ", buf, sizeof buf);
    assert_true(nul_list_has(buf, n, "PGPASSWORD=new-pw"));

    char **ids = NULL;
    size_t nids = 0;
    assert_int_equal(rt->ops->list(rt, &ids, &nids, &err), 0);
    assert_int_equal(nids, 2);
    assert_string_equal(ids[0], "acme");
    assert_string_equal(ids[1], "beta");
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);

    /* remove: process, state folder and filestore gone; repeating it is fine */
    assert_int_equal(rt->ops->remove(rt, "acme", &err), 0);
    assert_false(status_of(rt, "acme").running);
    assert_int_equal(kill(pid5, 0), -1);
    snprintf(want, sizeof want, "%s/acme", state_dir);
    assert_false(exists(want));
    assert_false(exists(fs));
    assert_int_equal(rt->ops->remove(rt, "acme", &err), 0);
    free(fs);

    remove_all(rt);
    rt->ops->free(rt);
}

static void test_readoption(void **state)
{
    (void)state;
    runtime *rt = make_rt(standin, TEST_ARGS, 1000);
    rt_app_spec spec = spec_for("acme", "pw-1");
    int port = start_ok(rt, &spec);
    healthy_ok(rt, "acme");
    pid_t pid = status_of(rt, "acme").pid;
    rt->ops->free(rt);
    assert_int_equal(kill(pid, 0), 0); /* apps outlive the runtime */

    /* a new runtime finds it running and supervises it again */
    rt = make_rt(standin, TEST_ARGS, 1000);
    rt_status st = status_of(rt, "acme");
    assert_true(st.running);
    assert_int_equal(st.pid, pid);
    assert_int_equal(st.port, port);
    healthy_ok(rt, "acme");
    kill(pid, SIGKILL);
    pid_t pid2 = wait_new_pid(rt, "acme", pid, 5000);
    assert_int_equal(status_of(rt, "acme").restarts, 1);
    healthy_ok(rt, "acme");
    /* starting it with the same spec keeps that process */
    assert_int_equal(start_ok(rt, &spec), port);
    assert_int_equal(status_of(rt, "acme").pid, pid2);
    rt->ops->free(rt);

    /* gone while no runtime watched: known as stopped, started again on its old port */
    kill(pid2, SIGKILL);
    waitpid(pid2, NULL, 0);
    rt = make_rt(standin, TEST_ARGS, 1000);
    st = status_of(rt, "acme");
    assert_false(st.running);
    assert_int_equal(st.port, port);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/acme/pid", state_dir);
    assert_false(exists(path));
    assert_int_equal(start_ok(rt, &spec), port);
    healthy_ok(rt, "acme");
    remove_all(rt);
    rt->ops->free(rt);
}

static void test_unhealthy_apps(void **state)
{
    (void)state;
    /* answers 503: its database cannot be reached */
    runtime *rt =
        make_rt(standin, "--database={db_name} --db_host={db_host} --http-port={http_port}", 1000);
    rt_app_spec spec = spec_for("acme", "pw");
    spec.db_host = "/nonexistent";
    start_ok(rt, &spec);
    sdo_error err = {0};
    assert_int_equal(rt->ops->wait_healthy(rt, "acme", 300, &err), -SDO_UNAVAILABLE);
    expect_contains(err.message, "'acme'");
    expect_contains(err.message, "HTTP 503");
    expect_contains(err.message, "/acme/app.log");
    assert_false(status_of(rt, "acme").healthy);
    remove_all(rt);
    rt->ops->free(rt);

    /* exits at once: wait_healthy says so instead of waiting out its timeout */
    rt = make_rt("/bin/false", "{http_port}", 60000);
    start_ok(rt, &spec);
    assert_int_equal(rt->ops->wait_healthy(rt, "acme", 20000, &err), -SDO_UNAVAILABLE);
    expect_contains(err.message, "exited with status 1");
    expect_contains(err.message, "app.log");
    remove_all(rt);
    rt->ops->free(rt);

    /* a command gone since the runtime was made */
    char gone[PATH_MAX + 16];
    snprintf(gone, sizeof gone, "%s/gone.sh", root);
    FILE *f = fopen(gone, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    chmod(gone, 0755);
    rt = make_rt(gone, "{http_port}", 1000);
    unlink(gone);
    int port;
    assert_int_equal(rt->ops->start(rt, &spec, &port, &err), -SDO_FAILED_PRECONDITION);
    expect_contains(err.message, "gone.sh");
    assert_false(status_of(rt, "acme").running);
    remove_all(rt);
    rt->ops->free(rt);
}

typedef struct starter {
    runtime *rt;
    char id[24];
    int port;
} starter;

static void *start_thread(void *arg)
{
    starter *s = arg;
    rt_app_spec spec = spec_for(s->id, "pw");
    sdo_error err = {0};
    if (s->rt->ops->start(s->rt, &spec, &s->port, &err) == 0 &&
        s->rt->ops->wait_healthy(s->rt, s->id, 0, &err) != 0)
        s->port = -1;
    return NULL;
}

static void test_concurrent_starts(void **state)
{
    (void)state;
    runtime *rt = make_rt(standin, TEST_ARGS, 1000);
    starter s[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        s[i].rt = rt;
        snprintf(s[i].id, sizeof s[i].id, "tenant-%d", i);
        s[i].port = 0;
        assert_int_equal(pthread_create(&th[i], NULL, start_thread, &s[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_in_range(s[i].port, port_min, port_max);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(s[i].port, s[j].port);
        assert_true(status_of(rt, s[i].id).healthy);
    }
    remove_all(rt);
    char **ids = NULL;
    size_t n = 1;
    sdo_error err = {0};
    assert_int_equal(rt->ops->list(rt, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    rt->ops->free(rt);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* the stand-in is built next to this test, in build/bin */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "%s: cannot find myself\n", argv[0]);
        return 1;
    }
    self[n] = 0;
    snprintf(standin, sizeof standin, "%s/saasodoo-standin", dirname(self));
    if (access(standin, X_OK) != 0) {
        fprintf(stderr, "%s: %s is not built\n", argv[0], standin);
        return 1;
    }
    log_min_level = LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_health_kill_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readoption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy_apps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_starts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
