/* Local PostgreSQL clusters for dedicated tenants (initdb, pg_ctl, one folder per cluster),
 * copying a database between servers with pg_dump | pg_restore, and comparing two databases
 * table by table. Every external program starts from an argument vector (util/spawn.h). */
#include "dbstrategy/pgcluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/spawn.h"

#define INITDB_TIMEOUT_MS 120000
#define CTL_WAIT_SECONDS "60"
#define CTL_TIMEOUT_MS 75000 /* pg_ctl's own wait plus a margin */
#define STATUS_TIMEOUT_MS 15000
#define TOOL_OUTPUT 4096
#define SUPERUSER "postgres"

/* Who runs the PostgreSQL programs and owns the cluster files. */
typedef struct pgc_who {
    const char *user; /* NULL: ourselves */
    uid_t uid;
    gid_t gid;
} pgc_who;

/* ---- checks ------------------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n < 3 || n > 40 || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = name[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && !(ch == '-' && i + 1 < n))
            return false;
    }
    return true;
}

/* pg_ctl hands the data directory, log file and program paths to /bin/sh inside double
 * quotes, and the settings file quotes the socket directory with single quotes: paths
 * holding any of these characters are refused rather than escaped. */
static bool path_ok(const char *p)
{
    return p && p[0] == '/' && strlen(p) < 256 && !strpbrk(p, "\"'\\$`\n\r");
}

static int check_config(const pgc_config *c, sdo_error *err)
{
    if (!c || !path_ok(c->bin_dir))
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "the PostgreSQL bin directory '%s' must be an absolute path without "
                        "quotes, '\\', '$' or '`'",
                        c && c->bin_dir ? c->bin_dir : "");
    if (!path_ok(c->base_dir))
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "the clusters directory '%s' must be an absolute path shorter than 256 "
                        "bytes without quotes, '\\', '$' or '`'",
                        c->base_dir ? c->base_dir : "");
    return 0;
}

static int check_name(const char *name, sdo_error *err)
{
    if (!name_ok(name))
        return sdo_fail_field(err, "name", "cluster name '%s' must match %s", name ? name : "",
                              PGC_NAME_PATTERN);
    return 0;
}

/* When root, the programs run as c->run_as, which must exist; otherwise as ourselves. */
static int resolve_who(const pgc_config *c, pgc_who *w, sdo_error *err)
{
    w->user = NULL;
    w->uid = geteuid();
    w->gid = getegid();
    if (w->uid != 0)
        return 0;
    if (!c->run_as || !c->run_as[0])
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "running as root, PostgreSQL clusters need a user to run as "
                        "(dbstrategy.run_as)");
    if (!spawn_user(c->run_as, &w->uid, &w->gid))
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "user '%s' (dbstrategy.run_as) does not exist; install the postgresql "
                        "package or name another user",
                        c->run_as);
    if (w->uid == 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "dbstrategy.run_as '%s' is root; PostgreSQL refuses to run as root",
                        c->run_as);
    w->user = c->run_as;
    return 0;
}

/* Config, name and user in one go, for the per-cluster calls. */
static int prologue(const pgc_config *c, const char *name, pgc_who *w, sdo_error *err)
{
    int rc = check_config(c, err);
    if (rc == 0)
        rc = check_name(name, err);
    if (rc == 0)
        rc = resolve_who(c, w, err);
    return rc;
}

/* ---- files -------------------------------------------------------------------------- */

/* <base_dir>/<name><leaf> into out (PATH_MAX). Lengths are bounded by path_ok and name_ok. */
static void cpath(char *out, const pgc_config *c, const char *name, const char *leaf)
{
    snprintf(out, PATH_MAX, "%s/%s%s", c->base_dir, name, leaf);
}

/* dir/leaf into out (PATH_MAX); "" if it does not fit (path_ok and name_ok keep paths far
 * shorter). */
static void join(char *out, const char *dir, const char *leaf)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, leaf);
    if (n < 0 || n >= PATH_MAX)
        out[0] = 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The program path bin_dir/prog into out (PATH_MAX); FAILED_PRECONDITION if not executable. */
static int program(const pgc_config *c, const char *prog, char *out, sdo_error *err)
{
    join(out, c->bin_dir, prog);
    if (access(out, X_OK) != 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "%s is not there or not executable (%s); install PostgreSQL or set "
                        "dbstrategy.pg_bin_dir",
                        out, strerror(errno));
    return 0;
}

/* Writes text into path through a temporary file and a rename, owned by w, with mode. */
static int write_file(const char *path, const char *text, const pgc_who *w, mode_t mode,
                      sdo_error *err)
{
    char tmp[PATH_MAX];
    int tn = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (tn < 0 || (size_t)tn >= sizeof tmp)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot write %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    int e = 0;
    while (off < len && !e) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno != EINTR)
            e = errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (!e && w->user && fchown(fd, w->uid, w->gid) < 0)
        e = errno;
    if (!e && fchmod(fd, mode) < 0)
        e = errno;
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* Appends text to path (a file run_as already owns). */
static int append_file(const char *path, const char *text, sdo_error *err)
{
    FILE *f = fopen(path, "ae");
    if (!f)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot open %s: %s", path, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot write %s: %s", path, strerror(e));
    return 0;
}

/* Makes directory path (if missing) owned by w with mode; an existing one is brought to the
 * same owner and mode. */
static int own_dir(const char *path, mode_t mode, const pgc_who *w, sdo_error *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot create %s: %s", path,
                        strerror(errno));
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "%s exists and is not a directory", path);
    if ((w->user && chown(path, w->uid, w->gid) < 0) || chmod(path, mode) < 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot give %s to %s: %s", path,
                        w->user ? w->user : "us", strerror(errno));
    return 0;
}

/* True if user w may search (traverse) the directory with this stat. */
static bool can_search(const struct stat *st, const pgc_who *w, const gid_t *groups, int ngroups)
{
    if (w->uid == 0)
        return true;
    if (st->st_uid == w->uid)
        return (st->st_mode & S_IXUSR) != 0;
    for (int i = 0; i < ngroups; i++)
        if (groups[i] == st->st_gid)
            return (st->st_mode & S_IXGRP) != 0;
    return (st->st_mode & S_IXOTH) != 0;
}

/* Creates base_dir (and missing parents, mode 0755) when missing: mode 0750, group of run_as
 * so that user can enter it. Then checks that run_as can traverse every directory from / to
 * base_dir, so a data directory under e.g. /root fails here with a clear message rather than
 * inside initdb. */
static int prepare_base(const pgc_config *c, const pgc_who *w, sdo_error *err)
{
    char path[PATH_MAX];
    sdo_strlcpy(path, c->base_dir, sizeof path);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = 0;
    for (char *p = path + 1;; p++) {
        bool last = *p == 0;
        if (*p != '/' && !last)
            continue;
        *p = 0;
        if (mkdir(path, last ? 0750 : 0755) == 0) {
            if (last && w->user && chown(path, 0, w->gid) < 0)
                return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot give %s to group of %s: %s",
                                path, w->user, strerror(errno));
            if (chmod(path, last ? 0750 : 0755) < 0)
                return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot set the mode of %s: %s", path,
                                strerror(errno));
        } else if (errno != EEXIST) {
            return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot create %s: %s", path,
                            strerror(errno));
        }
        if (last)
            break;
        *p = '/';
    }
    if (!w->user)
        return 0;

    gid_t groups[64];
    int ngroups = 64;
    if (getgrouplist(w->user, w->gid, groups, &ngroups) < 0)
        ngroups = 64; /* more groups than we look at: the first 64 are enough to decide */
    /* "/", then every prefix ending before a '/', then the whole path. */
    for (size_t i = 0; i <= len; i++) {
        if (i > 0 && i < len && path[i] != '/')
            continue;
        if (i > 0 && i < len && path[i - 1] == '/')
            continue;
        char prefix[PATH_MAX];
        size_t plen = i == 0 ? 1 : i;
        memcpy(prefix, path, plen);
        prefix[plen] = 0;
        struct stat st;
        if (stat(prefix, &st) < 0)
            return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot read %s: %s", prefix,
                            strerror(errno));
        if (!S_ISDIR(st.st_mode) || !can_search(&st, w, groups, ngroups))
            return sdo_fail(err, SDO_FAILED_PRECONDITION,
                            "user '%s' cannot reach the clusters directory %s: %s is mode %04o "
                            "owned by uid %u; choose a data directory that user can traverse",
                            w->user, c->base_dir, prefix, (unsigned)(st.st_mode & 07777),
                            (unsigned)st.st_uid);
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* Deletes path and everything below it; missing is success. */
static int rm_rf(const char *path, sdo_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0 && errno == ENOENT)
        return 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return sdo_fail(err, SDO_INTERNAL, "cannot delete %s: %s", path, strerror(errno));
    return 0;
}

/* The port recorded in the cluster's folder, or 0. */
static int recorded_port(const pgc_config *c, const char *name)
{
    char path[PATH_MAX], buf[16] = "";
    cpath(path, c, name, "/port");
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    fclose(f);
    long v = strtol(buf, NULL, 10);
    return v >= 1 && v <= 65535 ? (int)v : 0;
}

/* Line `n` (1-based) of the running postmaster's postmaster.pid into out, or "" . */
static void pid_file_line(const char *data, int n, char *out, size_t outsz)
{
    char path[PATH_MAX], line[PATH_MAX];
    out[0] = 0;
    join(path, data, "postmaster.pid");
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    for (int i = 1; fgets(line, sizeof line, f); i++) {
        if (i == n) {
            line[strcspn(line, "\r\n")] = 0;
            sdo_strlcpy(out, line, outsz);
            break;
        }
    }
    fclose(f);
}

/* ---- programs ----------------------------------------------------------------------- */

/* Copies the most telling line of a program's output into dst: the first line that reports
 * an error, else the first non-empty line. */
static void telling_line(const char *out, char *dst, size_t dstsz)
{
    static const char *const marks[] = {"error",  "FATAL",  "PANIC", "could not",
                                        "cannot", "failed", "ERROR"};
    const char *first = NULL, *pick = NULL;
    size_t first_len = 0, pick_len = 0;
    for (const char *p = out; p && *p && !pick;) {
        size_t len = strcspn(p, "\n");
        if (len > 0 && !first) {
            first = p;
            first_len = len;
        }
        for (size_t i = 0; i < sizeof marks / sizeof marks[0] && !pick; i++) {
            const char *m = memmem(p, len, marks[i], strlen(marks[i]));
            if (m) {
                pick = p;
                pick_len = len;
            }
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    if (!pick) {
        pick = first;
        pick_len = first_len;
    }
    if (!pick) {
        sdo_strlcpy(dst, "(no output)", dstsz);
        return;
    }
    if (pick_len >= dstsz)
        pick_len = dstsz - 1;
    memcpy(dst, pick, pick_len);
    dst[pick_len] = 0;
}

/* Runs a PostgreSQL program as w from /, capturing its output. Returns its exit status, -1 on
 * timeout, -2 if it could not start (out then says why). */
static int run_tool(const pgc_who *w, const char *const *argv, int timeout_ms, char *out,
                    size_t outsz)
{
    spawn_opts o = SPAWN_OPTS_INIT;
    o.user = w->user;
    o.cwd = "/";
    int64_t t0 = sdo_mono_us();
    int rc = spawn_run(argv, &o, timeout_ms, out, outsz);
    if (rc == -1 && sdo_mono_us() - t0 < (int64_t)timeout_ms * 1000)
        return -2;
    return rc;
}

/* pg_ctl status: 0 running, 3 not running, 4 no data directory, < 0 trouble. */
static int ctl_status(const pgc_config *c, const pgc_who *w, const char *data)
{
    char pg_ctl[PATH_MAX], pidfile[PATH_MAX], out[TOOL_OUTPUT];
    join(pidfile, data, "postmaster.pid");
    if (!file_exists(pidfile)) /* a postmaster always holds one */
        return 3;
    join(pg_ctl, c->bin_dir, "pg_ctl");
    const char *argv[] = {pg_ctl, "status", "-D", data, NULL};
    return run_tool(w, argv, STATUS_TIMEOUT_MS, out, sizeof out);
}

/* The settings written before every start: where the cluster listens. */
static int write_listen_conf(const pgc_config *c, const char *name, const char *data, int port,
                             const pgc_who *w, sdo_error *err)
{
    char path[PATH_MAX], run[PATH_MAX], text[PATH_MAX + 512];
    cpath(run, c, name, "/run");
    join(path, data, "saasodoo.conf");
    snprintf(text, sizeof text,
             "# Written by saasodoo before every start; put your own settings in "
             "postgresql.conf.\n"
             "listen_addresses = '127.0.0.1'\n"
             "port = %d\n"
             "unix_socket_directories = '%s'\n"
             "unix_socket_permissions = 0700\n",
             port, run);
    return write_file(path, text, w, 0600, err);
}

/* The socket's path must fit a sockaddr_un. */
static int check_socket_path(const pgc_config *c, const char *name, int port, sdo_error *err)
{
    char sock[PATH_MAX];
    int n = snprintf(sock, sizeof sock, "%s/%s/run/.s.PGSQL.%d", c->base_dir, name, port);
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    if (n < 0 || (size_t)n > max)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "the socket path of cluster '%s' (%s) is %d bytes, more than the %zu "
                        "a unix socket allows; use a shorter data directory",
                        name, sock, n, max);
    return 0;
}

static int write_port(const pgc_config *c, const char *name, int port, const pgc_who *w,
                      sdo_error *err)
{
    char path[PATH_MAX], text[16];
    cpath(path, c, name, "/port");
    snprintf(text, sizeof text, "%d\n", port);
    return write_file(path, text, w, 0644, err);
}

/* ---- clusters ----------------------------------------------------------------------- */

int pgc_create(const pgc_config *c, const char *name, int port, int max_connections, sdo_error *err)
{
    pgc_who w;
    int rc = prologue(c, name, &w, err);
    if (rc < 0)
        return rc;
    if (port < 1 || port > 65535)
        return sdo_fail_field(err, "port", "port %d of cluster '%s' must be within 1..65535", port,
                              name);
    if (max_connections < 1 || max_connections > 10000)
        return sdo_fail_field(err, "max_connections",
                              "max_connections %d of cluster '%s' must be within 1..10000",
                              max_connections, name);
    if ((rc = check_socket_path(c, name, port, err)) < 0)
        return rc;
    int64_t t0 = sdo_mono_us();
    char dir[PATH_MAX], data[PATH_MAX], scratch[PATH_MAX], path[PATH_MAX], initdb[PATH_MAX];
    cpath(dir, c, name, "");
    cpath(data, c, name, "/data");
    cpath(scratch, c, name, "/data.initdb");
    cpath(path, c, name, "/data/PG_VERSION");
    if (file_exists(path))
        return 0;
    if ((rc = program(c, "initdb", initdb, err)) < 0 || (rc = prepare_base(c, &w, err)) < 0 ||
        (rc = own_dir(dir, 0750, &w, err)) < 0 || (rc = write_port(c, name, port, &w, err)) < 0 ||
        (rc = rm_rf(scratch, err)) < 0)
        goto fail;

    char out[TOOL_OUTPUT];
    const char *argv[] = {initdb,
                          "-D",
                          scratch,
                          "-U",
                          SUPERUSER,
                          "--encoding=UTF8",
                          "--locale=C.UTF-8",
                          "--auth-local=trust",
                          "--auth-host=scram-sha-256",
                          "--no-instructions",
                          NULL};
    int st = run_tool(&w, argv, INITDB_TIMEOUT_MS, out, sizeof out);
    if (st != 0) {
        char line[300];
        telling_line(out, line, sizeof line);
        rc = sdo_fail(err, st == -1 ? SDO_DEADLINE_EXCEEDED : SDO_FAILED_PRECONDITION,
                      "initdb of cluster '%s' in %s failed (%s): %s", name, scratch,
                      st == -1   ? "timed out"
                      : st == -2 ? "did not start"
                                 : "exit status",
                      line);
        goto fail;
    }

    /* Configuration, then the rename that makes the cluster exist. */
    char text[1024];
    cpath(path, c, name, "/data.initdb/pg_hba.conf");
    if ((rc = write_file(path,
                         "# Written by saasodoo. The socket directory is open to the cluster's "
                         "owner and root\n"
                         "# only, so the superuser connects there without a password; "
                         "everyone else needs one.\n"
                         "# TYPE  DATABASE  USER      ADDRESS        METHOD\n"
                         "local   all       " SUPERUSER "                 trust\n"
                         "local   all       all                      scram-sha-256\n"
                         "host    all       all       127.0.0.1/32   scram-sha-256\n",
                         &w, 0600, err)) < 0)
        goto fail;
    cpath(path, c, name, "/data.initdb/postgresql.conf");
    snprintf(text, sizeof text,
             "\n# Added by saasodoo when the cluster was made.\n"
             "max_connections = %d\n"
             "shared_buffers = 32MB\n"
             "fsync = on\n"
             "max_locks_per_transaction = 256 # restores run in one transaction\n"
             "password_encryption = scram-sha-256\n"
             "include_if_exists = 'saasodoo.conf'\n",
             max_connections);
    if ((rc = append_file(path, text, err)) < 0 ||
        (rc = write_listen_conf(c, name, scratch, port, &w, err)) < 0)
        goto fail;
    cpath(path, c, name, "/run");
    if ((rc = own_dir(path, 0700, &w, err)) < 0)
        goto fail;
    if (rename(scratch, data) < 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot rename %s to %s: %s", scratch, data,
                      strerror(errno));
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    log_info("event=pgcluster_created cluster=%s port=%d max_connections=%d ms=%lld", name, port,
             max_connections, (long long)((sdo_mono_us() - t0) / 1000));
    return 0;
fail:
    log_warn("event=pgcluster_create_failed cluster=%s message=\"%s\"", name,
             err ? err->message : "");
    return rc;
}

/* Reads the first telling line the server wrote to its log from offset on. */
static void log_reason(const char *log, off_t from, char *dst, size_t dstsz)
{
    char buf[8192];
    dst[0] = 0;
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    telling_line(buf, dst, dstsz);
}

int pgc_start(const pgc_config *c, const char *name, int port, sdo_error *err)
{
    pgc_who w;
    int rc = prologue(c, name, &w, err);
    if (rc < 0)
        return rc;
    if (port < 1 || port > 65535)
        return sdo_fail_field(err, "port", "port %d of cluster '%s' must be within 1..65535", port,
                              name);
    char data[PATH_MAX], path[PATH_MAX], log[PATH_MAX], pg_ctl[PATH_MAX];
    cpath(data, c, name, "/data");
    cpath(log, c, name, "/postgres.log");
    cpath(path, c, name, "/data/PG_VERSION");
    if (!file_exists(path))
        return sdo_fail(err, SDO_NOT_FOUND, "cluster '%s' does not exist under %s; create it first",
                        name, c->base_dir);
    if ((rc = program(c, "pg_ctl", pg_ctl, err)) < 0)
        return rc;

    int st = ctl_status(c, &w, data);
    if (st == 0) {
        char line[64];
        pid_file_line(data, 4, line, sizeof line);
        int running_port = atoi(line);
        if (running_port && running_port != port)
            return sdo_fail(err, SDO_FAILED_PRECONDITION,
                            "cluster '%s' is running on port %d, not %d; stop it first", name,
                            running_port, port);
        pid_file_line(data, 8, line, sizeof line);
        if (line[0] && strncmp(line, "ready", 5) != 0)
            return sdo_fail(err, SDO_UNAVAILABLE, "cluster '%s' is running but %s, not ready", name,
                            line);
        return 0;
    }

    int64_t t0 = sdo_mono_us();
    if ((rc = check_socket_path(c, name, port, err)) < 0)
        return rc;
    cpath(path, c, name, "/run");
    if ((rc = own_dir(path, 0700, &w, err)) < 0 || (rc = write_port(c, name, port, &w, err)) < 0 ||
        (rc = write_listen_conf(c, name, data, port, &w, err)) < 0)
        return rc;
    struct stat lst;
    off_t log_from = stat(log, &lst) == 0 ? lst.st_size : 0;

    char out[TOOL_OUTPUT];
    const char *argv[] = {pg_ctl, "start",          "-D", data, "-l", log, "-w",
                          "-t",   CTL_WAIT_SECONDS, NULL};
    st = run_tool(&w, argv, CTL_TIMEOUT_MS, out, sizeof out);
    if (st == 0) {
        log_info("event=pgcluster_started cluster=%s port=%d ms=%lld", name, port,
                 (long long)((sdo_mono_us() - t0) / 1000));
        return 0;
    }
    char line[300];
    log_reason(log, log_from, line, sizeof line);
    if (!line[0])
        telling_line(out, line, sizeof line);
    if (st == -1 || strstr(out, "did not start in time"))
        return sdo_fail(err, SDO_UNAVAILABLE,
                        "cluster '%s' did not become ready on port %d in %s s (see %s): %s", name,
                        port, CTL_WAIT_SECONDS, log, line);
    return sdo_fail(err, SDO_FAILED_PRECONDITION,
                    "cluster '%s' did not start on port %d (see %s): %s", name, port, log, line);
}

int pgc_stop(const pgc_config *c, const char *name, sdo_error *err)
{
    pgc_who w;
    int rc = prologue(c, name, &w, err);
    if (rc < 0)
        return rc;
    char data[PATH_MAX], path[PATH_MAX], pg_ctl[PATH_MAX];
    cpath(data, c, name, "/data");
    cpath(path, c, name, "/data/postmaster.pid");
    if (!file_exists(path))
        return 0;
    if ((rc = program(c, "pg_ctl", pg_ctl, err)) < 0)
        return rc;
    char out[TOOL_OUTPUT];
    const char *argv[] = {pg_ctl, "stop",           "-D", data, "-m", "fast", "-w",
                          "-t",   CTL_WAIT_SECONDS, NULL};
    int st = run_tool(&w, argv, CTL_TIMEOUT_MS, out, sizeof out);
    if (st == 0) {
        log_info("event=pgcluster_stopped cluster=%s", name);
        return 0;
    }
    int now = ctl_status(c, &w, data);
    if (now == 3 || now == 4) /* it was not running after all */
        return 0;
    char line[300];
    telling_line(out, line, sizeof line);
    if (st == -1 || strstr(out, "did not shut down"))
        return sdo_fail(err, SDO_UNAVAILABLE, "cluster '%s' did not stop within %s s: %s", name,
                        CTL_WAIT_SECONDS, line);
    return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot stop cluster '%s': %s", name, line);
}

int pgc_remove(const pgc_config *c, const char *name, sdo_error *err)
{
    pgc_who w;
    int rc = prologue(c, name, &w, err);
    if (rc < 0)
        return rc;
    char dir[PATH_MAX], gone[PATH_MAX];
    cpath(dir, c, name, "");
    snprintf(gone, sizeof gone, "%s/.%s.removing", c->base_dir, name);
    bool had = file_exists(dir) || file_exists(gone);
    if (file_exists(dir)) {
        if ((rc = pgc_stop(c, name, err)) < 0)
            return rc;
        if ((rc = rm_rf(gone, err)) < 0)
            return rc;
        if (rename(dir, gone) < 0)
            return sdo_fail(err, SDO_INTERNAL, "cannot rename %s to %s: %s", dir, gone,
                            strerror(errno));
    }
    if ((rc = rm_rf(gone, err)) < 0)
        return rc;
    if (had)
        log_info("event=pgcluster_removed cluster=%s", name);
    return 0;
}

bool pgc_exists(const pgc_config *c, const char *name, bool *running)
{
    if (running)
        *running = false;
    pgc_who w;
    if (prologue(c, name, &w, NULL) < 0)
        return false;
    char data[PATH_MAX], path[PATH_MAX];
    cpath(data, c, name, "/data");
    cpath(path, c, name, "/data/PG_VERSION");
    if (!file_exists(path))
        return false;
    if (running)
        *running = ctl_status(c, &w, data) == 0;
    return true;
}

/* Appends keyword='value' with libpq's quoting. */
static void conn_kv(sdo_buf *b, const char *key, const char *val)
{
    sdo_buf_printf(b, "%s%s='", b->len ? " " : "", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sdo_buf_append(b, "\\", 1);
        sdo_buf_append(b, p, 1);
    }
    sdo_buf_puts(b, "'");
}

char *pgc_admin_conninfo(const pgc_config *c, const char *name, int port)
{
    if (check_config(c, NULL) < 0 || !name_ok(name) || port < 1 || port > 65535)
        return NULL;
    char run[PATH_MAX], p[16];
    cpath(run, c, name, "/run");
    snprintf(p, sizeof p, "%d", port);
    sdo_buf b = {0};
    conn_kv(&b, "host", run);
    conn_kv(&b, "port", p);
    conn_kv(&b, "user", SUPERUSER);
    conn_kv(&b, "dbname", "postgres");
    if (b.overflow) {
        sdo_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pgc_list(const pgc_config *c, char ***names, size_t *n, sdo_error *err)
{
    *names = NULL;
    *n = 0;
    int rc = check_config(c, err);
    if (rc < 0)
        return rc;
    DIR *d = opendir(c->base_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot list %s: %s", c->base_dir,
                        strerror(errno));
    }
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!name_ok(e->d_name))
            continue;
        char path[PATH_MAX];
        struct stat st;
        cpath(path, c, e->d_name, "");
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (cnt == cap) {
            if (cap > 1000000) {
                rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED, "too many entries in %s", c->base_dir);
                break;
            }
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED, "out of memory listing %s", c->base_dir);
                break;
            }
            v = nv;
        }
        v[cnt++] = sdo_strdup(e->d_name);
    }
    closedir(d);
    if (rc < 0) {
        for (size_t i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_names);
    *names = v;
    *n = cnt;
    return 0;
}

/* True if nothing has bound 127.0.0.1:port. SO_REUSEADDR as PostgreSQL sets it, so a port
 * with only connections in TIME_WAIT counts as free, as it would for the server. */
static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int pgc_free_port(const pgc_config *c, int min, int max, int *port, sdo_error *err)
{
    *port = 0;
    if (min < 1 || max > 65535 || min > max)
        return sdo_fail_field(err, "port", "port range %d..%d must lie within 1..65535", min, max);
    char **names = NULL;
    size_t n = 0;
    int rc = pgc_list(c, &names, &n, err);
    if (rc < 0)
        return rc;
    bool *taken = sdo_calloc((size_t)(max - min + 1), sizeof *taken);
    for (size_t i = 0; i < n; i++) {
        int p = recorded_port(c, names[i]);
        if (p >= min && p <= max)
            taken[p - min] = true;
        free(names[i]);
    }
    free(names);
    for (int p = min; p <= max; p++) {
        if (!taken[p - min] && port_bindable(p)) {
            *port = p;
            break;
        }
    }
    free(taken);
    if (!*port)
        return sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                        "no free port in %d..%d for a new cluster: every port is recorded by a "
                        "cluster or in use; widen dbstrategy.dedicated_port_min/max",
                        min, max);
    return 0;
}

/* ---- copying ------------------------------------------------------------------------ */

/* True for messages that say a server is not there (yet), so trying again later may work. */
static bool transient(const char *msg)
{
    static const char *const marks[] = {"Connection refused",
                                        "No such file or directory",
                                        "starting up",
                                        "shutting down",
                                        "too many clients",
                                        "too many connections",
                                        "timeout expired",
                                        "Connection timed out",
                                        "could not translate host name",
                                        "server closed the connection unexpectedly",
                                        "recovery mode",
                                        "terminating connection due to administrator command"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(msg, marks[i]))
            return true;
    return false;
}

/* A conninfo (keyword/value or URI) re-serialised with dbname = db and without its password,
 * which goes to *password (both caller frees; *password NULL when there is none). Without a
 * user it gets default_user (if not NULL): the user libpq would pick inside the programs,
 * which run as that system user, so our own connections and theirs log in alike. */
static int conninfo_for(const char *conninfo, const char *db, const char *default_user,
                        const char *which, char **out, char **password, sdo_error *err)
{
    *out = NULL;
    *password = NULL;
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    if (!opts) {
        char line[200];
        sdo_strlcpy(line, errmsg ? errmsg : "out of memory", sizeof line);
        line[strcspn(line, "\n")] = 0;
        PQfreemem(errmsg);
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "the %s conninfo cannot be parsed: %s", which,
                        line);
    }
    sdo_buf b = {0};
    bool has_user = false;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            *password = sdo_strdup(o->val);
            continue;
        }
        has_user = has_user || strcmp(o->keyword, "user") == 0;
        conn_kv(&b, o->keyword, o->val);
    }
    if (!has_user && default_user)
        conn_kv(&b, "user", default_user);
    conn_kv(&b, "dbname", db);
    PQconninfoFree(opts);
    if (b.overflow) {
        sdo_buf_free(&b);
        free(*password);
        *password = NULL;
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "the %s conninfo is too long", which);
    }
    *out = b.data;
    return 0;
}

/* Connects with libpq: conninfo plus an optional separate password (libpq ignores empty
 * values). */
static PGconn *connect_db(const char *conninfo, const char *password, const char *app)
{
    const char *keys[] = {"dbname", "password", "connect_timeout", "application_name", NULL};
    const char *vals[] = {conninfo, password ? password : "", "10", app, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static void first_line(const char *msg, char *dst, size_t dstsz)
{
    sdo_strlcpy(dst, msg ? msg : "", dstsz);
    dst[strcspn(dst, "\n")] = 0;
}

/* The destination must exist and hold no relations outside the system schemas. */
static int check_destination(const char *conninfo, const char *password, const char *db,
                             sdo_error *err)
{
    PGconn *pc = connect_db(conninfo, password, "saasodoo-copy");
    char line[300];
    int rc = 0;
    if (PQstatus(pc) != CONNECTION_OK) {
        first_line(PQerrorMessage(pc), line, sizeof line);
        if (strstr(line, "does not exist") && strstr(line, "database"))
            rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                          "destination database '%s' does not exist; create it (owned by the "
                          "tenant's role) before copying: %s",
                          db, line);
        else
            rc = sdo_fail(err, transient(line) ? SDO_UNAVAILABLE : SDO_FAILED_PRECONDITION,
                          "cannot reach destination database '%s': %s", db, line);
        PQfinish(pc);
        return rc;
    }
    PGresult *r = PQexec(pc, "SELECT count(*) FROM pg_catalog.pg_class c "
                             "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname <> 'information_schema' "
                             "AND n.nspname NOT LIKE 'pg\\_%'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        first_line(PQresultErrorMessage(r), line, sizeof line);
        rc = sdo_fail(err, SDO_INTERNAL, "cannot inspect destination database '%s': %s", db, line);
    } else if (atol(PQgetvalue(r, 0, 0)) > 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "destination database '%s' is not empty (%s relations); drop and create it "
                      "again before copying",
                      db, PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(pc);
    return rc;
}

/* Reads the telling line of what a program wrote to fd (a temporary file). */
static void fd_line(int fd, char *dst, size_t dstsz)
{
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    dst[0] = 0;
    if (n > 0)
        telling_line(buf, dst, dstsz);
}

/* Milliseconds until the monotonic deadline until (0 = none: -1, wait forever), at least
 * floor. */
static int left_ms(int64_t until, int floor)
{
    if (!until)
        return -1;
    int64_t left = (until - sdo_mono_us()) / 1000;
    return left > floor ? (int)(left < INT_MAX ? left : INT_MAX) : floor;
}

/* a + b, malloc'ed. */
static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = sdo_malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* Frees s after overwriting it (it may hold a password). */
static void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

static bool db_name_ok(const char *s)
{
    return s && s[0] && strlen(s) < 64;
}

int pgc_copy_database(const pgc_config *c, const char *src_conninfo, const char *src_db,
                      const char *dst_conninfo, const char *dst_db, const char *owner_role,
                      int timeout_ms, sdo_error *err)
{
    if (!db_name_ok(src_db))
        return sdo_fail_field(err, "src_db", "source database name '%s' must be 1..63 bytes",
                              src_db ? src_db : "");
    if (!db_name_ok(dst_db))
        return sdo_fail_field(err, "dst_db", "destination database name '%s' must be 1..63 bytes",
                              dst_db ? dst_db : "");
    if (!db_name_ok(owner_role))
        return sdo_fail_field(err, "owner_role", "owner role '%s' must be 1..63 bytes",
                              owner_role ? owner_role : "");
    pgc_who w;
    int rc = check_config(c, err);
    if (rc == 0)
        rc = resolve_who(c, &w, err);
    if (rc < 0)
        return rc;

    char pg_dump[PATH_MAX], pg_restore[PATH_MAX];
    char *src = NULL, *src_pw = NULL, *dst = NULL, *dst_pw = NULL;
    char *dump_env[4] = {NULL}, *restore_env[4] = {NULL};
    char *dbarg_src = NULL, *dbarg_dst = NULL, *rolearg = NULL;
    FILE *dump_err = NULL, *restore_err = NULL;
    int pipefd[2] = {-1, -1};
    pid_t dump_pid = -1, restore_pid = -1;
    int64_t t0 = sdo_mono_us();

    if ((rc = program(c, "pg_dump", pg_dump, err)) < 0 ||
        (rc = program(c, "pg_restore", pg_restore, err)) < 0 ||
        (rc = conninfo_for(src_conninfo, src_db, w.user, "source", &src, &src_pw, err)) < 0 ||
        (rc = conninfo_for(dst_conninfo, dst_db, w.user, "destination", &dst, &dst_pw, err)) < 0 ||
        (rc = check_destination(dst, dst_pw, dst_db, err)) < 0)
        goto out;

    /* Passwords travel in each program's environment, never on its command line. */
    size_t ne = 0;
    dump_env[ne] = sdo_strdup("PGCONNECT_TIMEOUT=10");
    restore_env[ne++] = sdo_strdup("PGCONNECT_TIMEOUT=10");
    dump_env[ne] = sdo_strdup("PGAPPNAME=saasodoo-copy");
    restore_env[ne++] = sdo_strdup("PGAPPNAME=saasodoo-copy");
    if (src_pw)
        dump_env[ne] = concat("PGPASSWORD=", src_pw);
    if (dst_pw)
        restore_env[ne] = concat("PGPASSWORD=", dst_pw);
    dbarg_src = concat("--dbname=", src);
    dbarg_dst = concat("--dbname=", dst);
    rolearg = concat("--role=", owner_role);

    dump_err = tmpfile();
    restore_err = tmpfile();
    if (!dump_err || !restore_err || pipe2(pipefd, O_CLOEXEC) < 0) {
        rc = sdo_fail(err, SDO_INTERNAL, "cannot set up the copy of '%s': %s", src_db,
                      strerror(errno));
        goto out;
    }

    char msg[256];
    spawn_opts o = SPAWN_OPTS_INIT;
    o.user = w.user;
    o.cwd = "/";
    o.env = (const char *const *)dump_env;
    o.stdout_fd = pipefd[1];
    o.stderr_fd = fileno(dump_err);
    const char *dump_argv[] = {pg_dump, "--format=custom", "--compress=0", dbarg_src, NULL};
    dump_pid = spawn_start(dump_argv, &o, msg, sizeof msg);
    if (dump_pid < 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot start pg_dump: %s", msg);
        goto out;
    }
    o.env = (const char *const *)restore_env;
    o.stdin_fd = pipefd[0];
    o.stdout_fd = -1;
    o.stderr_fd = fileno(restore_err);
    const char *restore_argv[] = {
        pg_restore, "--no-owner", "--no-acl", "--no-tablespaces", "--single-transaction",
        rolearg,    dbarg_dst,    NULL};
    restore_pid = spawn_start(restore_argv, &o, msg, sizeof msg);
    /* Only the two programs hold the pipe now, so each sees the other end close. */
    close(pipefd[0]);
    close(pipefd[1]);
    pipefd[0] = pipefd[1] = -1;
    if (restore_pid < 0) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot start pg_restore: %s", msg);
        goto out;
    }

    int64_t until = timeout_ms > 0 ? t0 + (int64_t)timeout_ms * 1000 : 0;
    int dump_st = spawn_wait(dump_pid, left_ms(until, 1));
    dump_pid = -1;
    /* pg_restore sees end of input once pg_dump is gone; give it a moment to roll back. */
    int restore_st = spawn_wait(restore_pid, left_ms(until, 5000));
    restore_pid = -1;
    if (dump_st == 0 && restore_st == 0) {
        log_info("event=pgcluster_copied src_db=%s dst_db=%s owner=%s ms=%lld", src_db, dst_db,
                 owner_role, (long long)((sdo_mono_us() - t0) / 1000));
        goto out;
    }
    if (dump_st == -1 || restore_st == -1) {
        rc = sdo_fail(err, SDO_DEADLINE_EXCEEDED,
                      "copying database '%s' to '%s' took longer than %d ms and was stopped; "
                      "the restore into '%s' was rolled back",
                      src_db, dst_db, timeout_ms, dst_db);
        goto out;
    }
    char line[300] = "";
    const char *tool = "pg_dump";
    /* pg_dump failing only because pg_restore stopped reading says nothing useful */
    if (dump_st != 0 && dump_st != 128 + SIGPIPE) {
        fd_line(fileno(dump_err), line, sizeof line);
        if (strstr(line, "Broken pipe") && restore_st != 0)
            line[0] = 0;
    }
    if (!line[0] && restore_st != 0) {
        tool = "pg_restore";
        fd_line(fileno(restore_err), line, sizeof line);
    }
    if (!line[0]) {
        tool = dump_st != 0 ? "pg_dump" : "pg_restore";
        snprintf(line, sizeof line, "%s exited with status %d", tool,
                 dump_st != 0 ? dump_st : restore_st);
    }
    rc = sdo_fail(err, transient(line) ? SDO_UNAVAILABLE : SDO_FAILED_PRECONDITION,
                  "copying database '%s' to '%s' failed in %s: %s", src_db, dst_db, tool, line);

out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (dump_pid > 0) /* pg_restore did not start: stop pg_dump */
        spawn_wait(dump_pid, 0);
    if (dump_err)
        fclose(dump_err);
    if (restore_err)
        fclose(restore_err);
    for (size_t i = 0; i < 4; i++) {
        free_secret(dump_env[i]);
        free_secret(restore_env[i]);
    }
    free(src);
    free_secret(src_pw);
    free(dst);
    free_secret(dst_pw);
    free(dbarg_src);
    free(dbarg_dst);
    free(rolearg);
    if (rc < 0)
        log_warn("event=pgcluster_copy_failed src_db=%s dst_db=%s message=\"%s\"", src_db, dst_db,
                 err ? err->message : "");
    return rc;
}

/* ---- verifying ---------------------------------------------------------------------- */

typedef struct side {
    PGconn *c;
    char where[200]; /* database "x" at host:port, for messages */
    char **names;
    int n;
} side;

static void side_free(side *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    s->names = NULL;
    s->n = 0;
}

static int query_fail(side *s, PGresult *r, const char *what, sdo_error *err)
{
    char line[300];
    first_line(r ? PQresultErrorMessage(r) : PQerrorMessage(s->c), line, sizeof line);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    sdo_status code = SDO_INTERNAL;
    if (!state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        code = SDO_UNAVAILABLE;
    PQclear(r);
    return sdo_fail(err, code, "cannot %s in %s: %s", what, s->where, line);
}

/* Connects one side and opens one read-only snapshot with fixed output settings, so both
 * sides print the same values the same way. */
static int side_open(side *s, const char *conninfo, sdo_error *err)
{
    s->c = connect_db(conninfo ? conninfo : "", NULL, "saasodoo-verify");
    if (PQstatus(s->c) != CONNECTION_OK) {
        char line[300];
        first_line(PQerrorMessage(s->c), line, sizeof line);
        const char *db = PQdb(s->c);
        return sdo_fail(err, transient(line) ? SDO_UNAVAILABLE : SDO_FAILED_PRECONDITION,
                        "cannot reach database \"%s\" to verify it: %s", db ? db : "", line);
    }
    const char *host = PQhost(s->c);
    snprintf(s->where, sizeof s->where, "database \"%s\" at %s:%s", PQdb(s->c), host ? host : "",
             PQport(s->c));
    PGresult *r = PQexec(s->c, "SET search_path = pg_catalog; SET DateStyle = 'ISO, YMD'; "
                               "SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; "
                               "SET extra_float_digits = 3; SET bytea_output = 'hex'; "
                               "SET lc_monetary = 'C'; "
                               "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return query_fail(s, r, "open a snapshot", err);
    PQclear(r);
    return 0;
}

/* Names of the relations of kind relkind in schema public, sorted bytewise. */
static int side_names(side *s, const char *relkind, sdo_error *err)
{
    const char *p[] = {relkind};
    PGresult *r = PQexecParams(s->c,
                               "SELECT c.relname FROM pg_class c "
                               "JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = 'public' AND c.relkind = $1::\"char\" "
                               "ORDER BY c.relname COLLATE \"C\"",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return query_fail(s, r, "list the tables", err);
    s->n = PQntuples(r);
    s->names = sdo_calloc((size_t)s->n + 1, sizeof *s->names);
    for (int i = 0; i < s->n; i++)
        s->names[i] = sdo_strdup(PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

/* Runs sql (with %s = the quoted table name) and copies up to 3 text columns of its one row
 * into vals. */
static int side_values(side *s, const char *fmt, const char *table, char vals[3][64],
                       sdo_error *err)
{
    char *q = PQescapeIdentifier(s->c, table, strlen(table));
    if (!q)
        return query_fail(s, NULL, "quote a table name", err);
    sdo_buf b = {0};
    sdo_buf_printf(&b, fmt, q);
    PQfreemem(q);
    PGresult *r = b.overflow ? NULL : PQexec(s->c, b.data);
    sdo_buf_free(&b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return query_fail(s, r, "read a table", err);
    for (int i = 0; i < 3; i++)
        sdo_strlcpy(vals[i], i < PQnfields(r) ? PQgetvalue(r, 0, i) : "", 64);
    PQclear(r);
    return 0;
}

/* Compares the sorted name lists of a and b; fails naming the first name on one side only. */
static int same_names(const side *a, const side *b, const char *kind, sdo_error *err)
{
    int i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int d = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->names[i], b->names[j]);
        if (d != 0) {
            const side *has = d < 0 ? a : b, *lacks = d < 0 ? b : a;
            const char *name = d < 0 ? a->names[i] : b->names[j];
            sdo_fail(err, SDO_DATA_LOSS, "%s public.%s is in %s but not in %s", kind, name,
                     has->where, lacks->where);
            sdo_error_reason(err, "DATA_MISMATCH");
            return -SDO_DATA_LOSS;
        }
        i++;
        j++;
    }
    return 0;
}

/* Row count and two sums of 64-bit halves of each row's md5: order-free, no sort, constant
 * memory. The alias is unusual so that no column of the table shadows the whole-row
 * reference. */
#define ROWS_SQL                                                                                   \
    "SELECT count(*)::text, "                                                                      \
    "coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::int8::numeric), 0)::text, "                  \
    "coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::int8::numeric), 0)::text "                  \
    "FROM (SELECT md5(saasodoo_row::text) AS h FROM public.%s AS saasodoo_row) AS s"
#define SEQ_SQL "SELECT last_value::text, is_called::text, '' FROM public.%s"

int pgc_verify_same(const char *a_conninfo, const char *b_conninfo, int *tables, sdo_error *err)
{
    side a = {0}, b = {0};
    int compared = 0, rc;
    char va[3][64], vb[3][64];
    if ((rc = side_open(&a, a_conninfo, err)) < 0 || (rc = side_open(&b, b_conninfo, err)) < 0)
        goto out;

    if ((rc = side_names(&a, "r", err)) < 0 || (rc = side_names(&b, "r", err)) < 0 ||
        (rc = same_names(&a, &b, "table", err)) < 0)
        goto out;
    for (int i = 0; i < a.n; i++) {
        if ((rc = side_values(&a, ROWS_SQL, a.names[i], va, err)) < 0 ||
            (rc = side_values(&b, ROWS_SQL, b.names[i], vb, err)) < 0)
            goto out;
        if (strcmp(va[0], vb[0]) != 0) {
            rc = sdo_fail(err, SDO_DATA_LOSS, "table public.%s differs: %s rows in %s, %s in %s",
                          a.names[i], va[0], a.where, vb[0], b.where);
            sdo_error_reason(err, "DATA_MISMATCH");
            goto out;
        }
        if (strcmp(va[1], vb[1]) != 0 || strcmp(va[2], vb[2]) != 0) {
            rc = sdo_fail(err, SDO_DATA_LOSS,
                          "table public.%s differs: %s rows on both sides, but their contents "
                          "differ between %s and %s",
                          a.names[i], va[0], a.where, b.where);
            sdo_error_reason(err, "DATA_MISMATCH");
            goto out;
        }
        compared++;
    }

    side_free(&a);
    side_free(&b);
    if ((rc = side_names(&a, "S", err)) < 0 || (rc = side_names(&b, "S", err)) < 0 ||
        (rc = same_names(&a, &b, "sequence", err)) < 0)
        goto out;
    for (int i = 0; i < a.n; i++) {
        if ((rc = side_values(&a, SEQ_SQL, a.names[i], va, err)) < 0 ||
            (rc = side_values(&b, SEQ_SQL, b.names[i], vb, err)) < 0)
            goto out;
        if (strcmp(va[0], vb[0]) != 0 || strcmp(va[1], vb[1]) != 0) {
            rc = sdo_fail(err, SDO_DATA_LOSS,
                          "sequence public.%s differs: last value %s (called %s) in %s, %s "
                          "(called %s) in %s",
                          a.names[i], va[0], va[1], a.where, vb[0], vb[1], b.where);
            sdo_error_reason(err, "DATA_MISMATCH");
            goto out;
        }
    }
    rc = 0;
out:
    if (tables)
        *tables = compared;
    side_free(&a);
    side_free(&b);
    PQfinish(a.c);
    PQfinish(b.c);
    return rc;
}
