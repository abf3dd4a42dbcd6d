/* Streams between database servers, filestores and backup storage, hashed on the way. */
#include "backup/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbstrategy/dbstrategy.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/spawn.h"

#define CHUNK (1u << 20)
#define TOOL_TIMEOUT_MS (30 * 1000) /* for a tool to exit once its stream ended */

/* ---- hashing ---------------------------------------------------------------------------- */

typedef struct hasher {
    EVP_MD_CTX *md;
} hasher;

static void hash_init(hasher *h)
{
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory */
}

static void hash_hex(hasher *h, char out[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(h->md, d, &len);
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    out[64] = 0;
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

static void hash_drop(hasher *h)
{
    if (h->md)
        EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

/* ---- storage ------------------------------------------------------------------------------ */

/* Storage trouble that may pass (unreachable, full) is retried by the engine as UNAVAILABLE;
 * the message keeps what the backend said. */
static int storage_failed(sdo_error *err)
{
    if (err->code == SDO_RESOURCE_EXHAUSTED) {
        char msg[sizeof err->message];
        sdo_strlcpy(msg, err->message, sizeof msg);
        return sdo_fail(err, SDO_UNAVAILABLE, "backup storage is full: %.480s", msg);
    }
    if (err->code == SDO_OK)
        return sdo_fail(err, SDO_INTERNAL, "backup storage failed");
    return -(int)err->code;
}

static int64_t fault_after(void)
{
    const char *v = getenv(BK_FAULT_ENV);
    return v && *v ? strtoll(v, NULL, 10) : -1;
}

/* Copies everything readable from fd into a new object key, hashing it; commits at the end.
 * Stops reading (and aborts the object) on the first failure. */
static int fd_to_object(storage *stg, const char *key, int fd, bk_part *out, sdo_error *err)
{
    storage_writer *w = stg->ops->create(stg, key, err);
    if (!w)
        return storage_failed(err);
    hasher h;
    hash_init(&h);
    char *buf = sdo_malloc(CHUNK);
    int64_t total = 0, fault = fault_after();
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sdo_fail(err, SDO_INTERNAL, "reading the stream for '%s' failed: %s", key,
                          strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (fault >= 0 && total + n > fault) {
            rc = sdo_fail(err, SDO_UNAVAILABLE,
                          "backup storage %s: writing '%s' failed after %lld bytes (injected "
                          "fault)",
                          stg->ops->name, key, (long long)fault);
            break;
        }
        EVP_DigestUpdate(h.md, buf, (size_t)n);
        if (stg->ops->write(w, buf, (size_t)n, err) < 0) {
            rc = storage_failed(err);
            break;
        }
        total += n;
    }
    free(buf);
    if (rc < 0) {
        hash_drop(&h);
        if (w)
            stg->ops->abort(w);
        return rc;
    }
    if (stg->ops->commit(w, err) < 0) {
        hash_drop(&h);
        return storage_failed(err);
    }
    out->size = total;
    hash_hex(&h, out->sha256);
    return 0;
}

int bk_put_text(storage *stg, const char *key, const char *text, bk_part *out, sdo_error *err)
{
    storage_writer *w = stg->ops->create(stg, key, err);
    if (!w)
        return storage_failed(err);
    size_t n = strlen(text);
    if (stg->ops->write(w, text, n, err) < 0) {
        stg->ops->abort(w);
        return storage_failed(err);
    }
    if (stg->ops->commit(w, err) < 0)
        return storage_failed(err);
    unsigned char d[32];
    sdo_sha256(text, n, d);
    for (int i = 0; i < 32; i++)
        snprintf(out->sha256 + 2 * i, 3, "%02x", d[i]);
    out->size = (int64_t)n;
    return 0;
}

/* DATA_LOSS naming part: the object read has n bytes with SHA-256 got, the record says size
 * and sha256. */
static int part_damaged(const char *part, int64_t n, const char *got, int64_t size,
                        const char *sha256, sdo_error *err)
{
    int rc = sdo_fail(err, SDO_DATA_LOSS,
                      "backup part '%s' is damaged: %lld bytes with SHA-256 %s in storage, the "
                      "manifest says %lld bytes with SHA-256 %s; it will not be restored",
                      part, (long long)n, got, (long long)size, sha256);
    sdo_error_reason(err, "BACKUP_CHECKSUM_MISMATCH");
    return rc;
}

static int part_missing(const char *part, const char *key, sdo_error *err)
{
    int rc =
        sdo_fail(err, SDO_DATA_LOSS, "backup part '%s' is missing from storage (%s)", part, key);
    sdo_error_reason(err, "BACKUP_PART_MISSING");
    return rc;
}

static int write_all(int fd, const char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t m = write(fd, buf + off, n - off);
        if (m < 0 && errno == EINTR)
            continue;
        if (m < 0)
            return -1;
        off += (size_t)m;
    }
    return 0;
}

/* Reads object key, hashing every byte, into fd (-1: nowhere), and checks it against the
 * record of part: size bytes with SHA-256 sha256, else DATA_LOSS naming the part. The chunk
 * read last is written to fd only once the whole object has matched: a program reading fd
 * never reaches the end of a damaged part (pg_restore's single transaction then rolls back,
 * tar stops short). A program that stops reading early does not stop the check: the rest of
 * the object is still read and hashed, so a damaged part is reported as damaged rather than
 * as the program's complaint about it; that it stopped is an INTERNAL failure (the caller
 * prefers the program's own error line). */
static int object_to_fd(storage *stg, const char *key, int fd, const char *part, int64_t size,
                        const char *sha256, sdo_error *err)
{
    storage_reader *r = stg->ops->open(stg, key, err);
    if (!r)
        return err->code == SDO_NOT_FOUND ? part_missing(part, key, err) : storage_failed(err);
    hasher h;
    hash_init(&h);
    char *buf[2] = {sdo_malloc(CHUNK), sdo_malloc(CHUNK)};
    int cur = 0, write_errno = 0;
    size_t held = 0; /* bytes read last, in buf[!cur], not yet written */
    int64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = stg->ops->read(r, buf[cur], CHUNK, err);
        if (n < 0) {
            rc = storage_failed(err);
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(h.md, buf[cur], (size_t)n);
        total += n;
        if (held && fd >= 0 && !write_errno && write_all(fd, buf[!cur], held) < 0)
            write_errno = errno ? errno : EPIPE;
        held = (size_t)n;
        cur = !cur;
    }
    stg->ops->close(r);
    if (rc < 0) {
        hash_drop(&h);
    } else {
        char got[65];
        hash_hex(&h, got);
        if (total != size || strcmp(got, sha256) != 0)
            rc = part_damaged(part, total, got, size, sha256, err);
        else if (held && fd >= 0 && !write_errno && write_all(fd, buf[!cur], held) < 0)
            write_errno = errno ? errno : EPIPE;
        if (rc == 0 && write_errno)
            rc = sdo_fail(err, SDO_INTERNAL, "the program reading '%s' stopped early: %s", key,
                          strerror(write_errno));
    }
    free(buf[0]);
    free(buf[1]);
    return rc;
}

int bk_verify_part(storage *stg, const char *key, const char *part, int64_t size,
                   const char *sha256, sdo_error *err)
{
    return object_to_fd(stg, key, -1, part, size, sha256, err);
}

int bk_check_part_size(storage *stg, const char *key, const char *part, int64_t size,
                       sdo_error *err)
{
    int64_t n = 0;
    if (stg->ops->stat(stg, key, &n, err) < 0)
        return err->code == SDO_NOT_FOUND ? part_missing(part, key, err) : storage_failed(err);
    if (n != size) {
        int rc = sdo_fail(err, SDO_DATA_LOSS,
                          "backup part '%s' is damaged: %lld bytes in storage, the manifest says "
                          "%lld bytes; it will not be restored",
                          part, (long long)n, (long long)size);
        sdo_error_reason(err, "BACKUP_CHECKSUM_MISMATCH");
        return rc;
    }
    return 0;
}

/* A pipe whose writing end holds a whole chunk (best effort: the default 64 KiB works too,
 * with more switches between the writer and the program reading). */
static int stream_pipe(int fds[2], sdo_error *err)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return sdo_fail(err, SDO_INTERNAL, "cannot make a pipe: %s", strerror(errno));
    (void)fcntl(fds[1], F_SETPIPE_SZ, (int)CHUNK);
    return 0;
}

/* ---- programs ----------------------------------------------------------------------------- */

static void conn_kv(sdo_buf *b, const char *key, const char *val)
{
    sdo_buf_printf(b, "%s%s='", b->len ? " " : "", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sdo_buf_puts(b, "\\");
        sdo_buf_append(b, p, 1);
    }
    sdo_buf_puts(b, "'");
}

/* The server's admin conninfo for db without its password, which goes to *password (both
 * malloc'ed; *password may be NULL). */
static int tool_conninfo(const server_rec *s, const char *db, char **out, char **password,
                         sdo_error *err)
{
    *out = NULL;
    *password = NULL;
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->admin_conninfo ? s->admin_conninfo : "", &msg);
    if (!opts) {
        PQfreemem(msg);
        return sdo_fail(err, SDO_INTERNAL, "the conninfo of database server '%s' is unreadable",
                        s->id);
    }
    sdo_buf b = {0};
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            *password = sdo_strdup(o->val);
            continue;
        }
        conn_kv(&b, o->keyword, o->val);
    }
    conn_kv(&b, "dbname", db);
    PQconninfoFree(opts);
    *out = b.data;
    return 0;
}

static void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

/* First line of what a program wrote to the temporary file f that says what went wrong. */
static void tool_line(FILE *f, char *dst, size_t dstsz)
{
    char buf[4096];
    ssize_t n = pread(fileno(f), buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    char *pick = strstr(buf, "error:");
    if (!pick)
        pick = strstr(buf, "FATAL:");
    if (!pick)
        pick = buf;
    sdo_strlcpy(dst, pick, dstsz);
    dst[strcspn(dst, "\n")] = 0;
}

static bool passing(const char *msg)
{
    static const char *const marks[] = {
        "Connection refused",   "could not connect",
        "starting up",          "shutting down",
        "too many clients",     "timeout expired",
        "Connection timed out", "server closed the connection unexpectedly"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(msg, marks[i]))
            return true;
    return false;
}

typedef struct tool {
    char path[PATH_MAX];
    char *conninfo;
    char *password;
    char *env[3];
    FILE *errf;
    pid_t pid;
} tool;

static int tool_prepare(tool *t, const char *bin_dir, const char *prog, const server_rec *s,
                        const char *db, sdo_error *err)
{
    memset(t, 0, sizeof *t);
    t->pid = -1;
    if (bin_dir && bin_dir[0])
        snprintf(t->path, sizeof t->path, "%s/%s", bin_dir, prog);
    else
        sdo_strlcpy(t->path, prog, sizeof t->path);
    if (bin_dir && bin_dir[0] && access(t->path, X_OK) != 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "%s is not in %s (dbstrategy.pg_bin_dir): %s",
                        prog, bin_dir, strerror(errno));
    if (s) {
        int rc = tool_conninfo(s, db, &t->conninfo, &t->password, err);
        if (rc < 0)
            return rc;
    }
    size_t n = 0;
    t->env[n++] = sdo_strdup("PGCONNECT_TIMEOUT=10");
    if (t->password) {
        size_t len = strlen(t->password) + 12;
        t->env[n] = sdo_malloc(len);
        snprintf(t->env[n], len, "PGPASSWORD=%s", t->password);
    }
    t->errf = tmpfile();
    if (!t->errf)
        return sdo_fail(err, SDO_INTERNAL, "cannot make a temporary file: %s", strerror(errno));
    return 0;
}

static void tool_free(tool *t)
{
    if (t->pid > 0)
        spawn_wait(t->pid, 0);
    free(t->conninfo);
    free_secret(t->password);
    for (int i = 0; i < 3; i++)
        free_secret(t->env[i]);
    if (t->errf)
        fclose(t->errf);
}

static int tool_start(tool *t, const char *const *argv, int in_fd, int out_fd, sdo_error *err)
{
    spawn_opts o = SPAWN_OPTS_INIT;
    o.env = (const char *const *)t->env;
    o.cwd = "/";
    o.stdin_fd = in_fd;
    o.stdout_fd = out_fd;
    o.stderr_fd = fileno(t->errf);
    char msg[256];
    t->pid = spawn_start(argv, &o, msg, sizeof msg);
    if (t->pid < 0)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "cannot start %s: %s", argv[0], msg);
    return 0;
}

/* Waits for the tool; 0 when it exited 0, else a failure naming what and its error line. */
static int tool_finish(tool *t, const char *what, sdo_error *err)
{
    int st = spawn_wait(t->pid, TOOL_TIMEOUT_MS);
    t->pid = -1;
    if (st == 0)
        return 0;
    char line[300];
    tool_line(t->errf, line, sizeof line);
    if (!line[0])
        snprintf(line, sizeof line, "exited with status %d", st);
    return sdo_fail(err, passing(line) ? SDO_UNAVAILABLE : SDO_FAILED_PRECONDITION, "%s: %s", what,
                    line);
}

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = sdo_malloc(n);
    snprintf(s, n, "%s%s", a, b);
    return s;
}

/* ---- database ----------------------------------------------------------------------------- */

static int query_failed(PGconn *c, PGresult *r, const char *what, sdo_error *err)
{
    char line[300];
    sdo_strlcpy(line, r ? PQresultErrorMessage(r) : PQerrorMessage(c), sizeof line);
    line[strcspn(line, "\n")] = 0;
    PQclear(r);
    return sdo_fail(err, PQstatus(c) == CONNECTION_OK ? SDO_INTERNAL : SDO_UNAVAILABLE, "%s: %s",
                    what, line);
}

/* A query yielding (key, n): "schema.table" and its exact row count, for every ordinary table
 * outside the system schemas. It is one UNION ALL of a count(*) per table, written by the
 * server itself (format() quotes the names), so the counts take one round trip and a large
 * table may be scanned in parallel. */
#define COUNTS_QUERY_SQL                                                                           \
    "SELECT coalesce(string_agg(format('SELECT %L::text AS key, count(*) AS n FROM %I.%I',"        \
    " n.nspname || '.' || c.relname, n.nspname, c.relname), ' UNION ALL '"                         \
    " ORDER BY n.nspname, c.relname), 'SELECT NULL::text AS key, 0::bigint AS n WHERE false')"     \
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"         \
    " WHERE c.relkind = 'r' AND n.nspname <> 'information_schema'"                                 \
    " AND n.nspname NOT LIKE 'pg\\_%'"

/* The counting query for database c is connected to (malloc'ed into *out). */
static int counts_query(PGconn *c, char **out, sdo_error *err)
{
    PGresult *r = PQexec(c, COUNTS_QUERY_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return query_failed(c, r, "cannot list the tables to count", err);
    *out = sdo_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int bk_dump_database(storage *stg, const char *key, const server_rec *s, const char *db,
                     const char *bin_dir, bk_part *out, bk_snapshot *snap, sdo_error *err)
{
    memset(snap, 0, sizeof *snap);
    tool t;
    int pipefd[2] = {-1, -1};
    char *dbarg = NULL, *snaparg = NULL, *counts = NULL;
    int rc = tool_prepare(&t, bin_dir, "pg_dump", s, db, err);
    PGconn *c = rc == 0 ? dbs_connect(s, db, err) : NULL;
    if (rc == 0 && !c)
        rc = -(int)err->code;
    if (rc < 0)
        goto out;
    /* One snapshot for the counts and the dump: exported here, held until pg_dump is done. */
    PGresult *r = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = query_failed(c, r, "cannot start the backup's snapshot", err);
        goto out;
    }
    PQclear(r);
    r = PQexec(c, "SELECT pg_export_snapshot(), current_setting('server_version')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = query_failed(c, r, "cannot export the backup's snapshot", err);
        goto out;
    }
    snaparg = concat("--snapshot=", PQgetvalue(r, 0, 0));
    sdo_strlcpy(snap->postgres_version, PQgetvalue(r, 0, 1), sizeof snap->postgres_version);
    PQclear(r);
    if ((rc = counts_query(c, &counts, err)) < 0)
        goto out;
    sdo_buf sql = {0};
    sdo_buf_printf(&sql, "SELECT coalesce(jsonb_object_agg(key, n), '{}')::text FROM (%s) t",
                   counts);
    r = sql.overflow ? NULL : PQexec(c, sql.data);
    sdo_buf_free(&sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = query_failed(c, r, "cannot count the rows of the tenant's tables", err);
        goto out;
    }
    snap->row_counts_json = sdo_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);

    if ((rc = stream_pipe(pipefd, err)) < 0)
        goto out;
    dbarg = concat("--dbname=", t.conninfo);
    const char *argv[] = {t.path, "--format=custom", snaparg, dbarg, NULL};
    if ((rc = tool_start(&t, argv, -1, pipefd[1], err)) < 0)
        goto out;
    close(pipefd[1]);
    pipefd[1] = -1;
    rc = fd_to_object(stg, key, pipefd[0], out, err);
    close(pipefd[0]); /* pg_dump, if still writing, gets EPIPE and ends */
    pipefd[0] = -1;
    if (rc < 0) {
        spawn_wait(t.pid, TOOL_TIMEOUT_MS);
        t.pid = -1;
        /* the object was aborted, but a dump that failed first tells more */
        goto out;
    }
    char what[128];
    snprintf(what, sizeof what, "pg_dump of database '%s' failed", db);
    if ((rc = tool_finish(&t, what, err)) < 0)
        stg->ops->remove(stg, key, &(sdo_error){0});
out:
    if (c) {
        PQclear(PQexec(c, "COMMIT"));
        PQfinish(c);
    }
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    tool_free(&t);
    free(dbarg);
    free(snaparg);
    free(counts);
    if (rc < 0) {
        free(snap->row_counts_json);
        snap->row_counts_json = NULL;
    }
    return rc;
}

/* Waits for the program reading a part from the pipe; the part's own failure (damaged,
 * storage trouble) says more than the program's complaint about it, except that a program
 * that failed explains why it stopped reading. */
static int finish_reader(tool *t, const char *what, int copy_rc, const sdo_error *copy_err,
                         sdo_error *err)
{
    int rc = tool_finish(t, what, err);
    if (copy_rc < 0 && (rc == 0 || copy_err->code != SDO_INTERNAL)) {
        *err = *copy_err;
        rc = copy_rc;
    }
    return rc;
}

/* Streams a part from storage into the standard input of a started-to-be tool (argv), hashing
 * it on the way, and waits for the tool. A damaged part fails with DATA_LOSS before its end
 * reaches the tool; what names the tool's work in a failure of its own. */
static int feed_tool(tool *t, const char *const *argv, storage *stg, const char *key,
                     const char *part, int64_t size, const char *sha256, const char *what,
                     sdo_error *err)
{
    int pipefd[2] = {-1, -1};
    int rc = stream_pipe(pipefd, err);
    if (rc == 0)
        rc = tool_start(t, argv, pipefd[0], -1, err);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (rc < 0) {
        if (pipefd[1] >= 0)
            close(pipefd[1]);
        return rc;
    }
    int copy_rc = object_to_fd(stg, key, pipefd[1], part, size, sha256, err);
    sdo_error copy_err = *err;
    close(pipefd[1]); /* end of input: the tool finishes (pg_restore commits or rolls back) */
    return finish_reader(t, what, copy_rc, &copy_err, err);
}

int bk_restore_database(storage *stg, const char *key, const char *part, int64_t size,
                        const char *sha256, const server_rec *s, const char *db, const char *owner,
                        const char *bin_dir, sdo_error *err)
{
    tool t;
    int rc = tool_prepare(&t, bin_dir, "pg_restore", s, db, err);
    if (rc < 0) {
        tool_free(&t);
        return rc;
    }
    char *dbarg = concat("--dbname=", t.conninfo);
    char *rolearg = concat("--role=", owner);
    const char *argv[] = {
        t.path,  "--no-owner", "--no-acl", "--no-tablespaces", "--single-transaction",
        rolearg, dbarg,        NULL};
    char what[128];
    snprintf(what, sizeof what, "pg_restore into database '%s' failed", db);
    rc = feed_tool(&t, argv, stg, key, part, size, sha256, what, err);
    tool_free(&t);
    free(dbarg);
    free(rolearg);
    return rc;
}

int bk_check_rows(const server_rec *s, const char *db, const char *row_counts_json, int *tables,
                  sdo_error *err)
{
    PGconn *c = dbs_connect(s, db, err);
    if (!c)
        return -(int)err->code;
    char *counts = NULL;
    int rc = counts_query(c, &counts, err);
    if (rc < 0) {
        PQfinish(c);
        return rc;
    }
    sdo_buf sql = {0};
    sdo_buf_printf(&sql,
                   "WITH got AS (SELECT key, to_jsonb(n) AS value FROM (%s) t),"
                   " want AS (SELECT key, value FROM jsonb_each($1::jsonb))"
                   " SELECT (SELECT count(*) FROM want), k.key, w.value::text, g.value::text"
                   " FROM (SELECT key FROM want UNION SELECT key FROM got) k"
                   " LEFT JOIN want w ON w.key = k.key LEFT JOIN got g ON g.key = k.key"
                   " WHERE w.value IS DISTINCT FROM g.value"
                   " UNION ALL SELECT (SELECT count(*) FROM want), NULL, NULL, NULL"
                   " ORDER BY 2 NULLS LAST LIMIT 1",
                   counts);
    free(counts);
    const char *p[] = {row_counts_json};
    PGresult *r = sql.overflow ? NULL : PQexecParams(c, sql.data, 1, NULL, p, NULL, NULL, 0);
    sdo_buf_free(&sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = query_failed(c, r, "cannot count the restored rows", err);
        PQfinish(c);
        return rc;
    }
    if (tables)
        *tables = atoi(PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1)) {
        rc = sdo_fail(err, SDO_DATA_LOSS,
                      "the restored database does not match the manifest: table %s has %s rows, "
                      "the backup had %s",
                      PQgetvalue(r, 0, 1), PQgetisnull(r, 0, 3) ? "no" : PQgetvalue(r, 0, 3),
                      PQgetisnull(r, 0, 2) ? "none" : PQgetvalue(r, 0, 2));
        sdo_error_reason(err, "BACKUP_ROWS_MISMATCH");
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int bk_scratch_database(const server_rec *s, const char *db, const char *owner, bool create,
                        sdo_error *err)
{
    PGconn *c = dbs_connect(s, NULL, err);
    if (!c)
        return -(int)err->code;
    char *qd = PQescapeIdentifier(c, db, strlen(db));
    char *qo = owner ? PQescapeIdentifier(c, owner, strlen(owner)) : NULL;
    sdo_buf sql = {0};
    sdo_buf_printf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qd);
    int rc = dbs_exec(c, sql.data, "dropping a scratch database", err);
    if (rc == 0 && create) {
        sdo_buf_free(&sql);
        sdo_buf_printf(&sql, "CREATE DATABASE %s%s%s TEMPLATE template0", qd, qo ? " OWNER " : "",
                       qo ? qo : "");
        rc = dbs_exec(c, sql.data, "creating a database to restore into", err);
    }
    sdo_buf_free(&sql);
    PQfreemem(qd);
    PQfreemem(qo);
    PQfinish(c);
    return rc;
}

/* ---- filestore ---------------------------------------------------------------------------- */

int bk_tar_dir(storage *stg, const char *key, const char *dir, bk_part *out, sdo_error *err)
{
    tool t;
    int pipefd[2] = {-1, -1};
    int rc = tool_prepare(&t, NULL, "tar", NULL, NULL, err);
    if (rc < 0)
        goto out;
    struct stat sb;
    bool have = dir && dir[0] && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    if ((rc = stream_pipe(pipefd, err)) < 0)
        goto out;
    const char *with_dir[] = {"tar", "-C", dir, "-cf", "-", ".", NULL};
    const char *empty[] = {"tar", "-cf", "-", "--files-from=/dev/null", NULL};
    if ((rc = tool_start(&t, have ? with_dir : empty, -1, pipefd[1], err)) < 0)
        goto out;
    close(pipefd[1]);
    pipefd[1] = -1;
    rc = fd_to_object(stg, key, pipefd[0], out, err);
    close(pipefd[0]);
    pipefd[0] = -1;
    if (rc < 0)
        goto out;
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "archiving the filestore %s failed", have ? dir : "(empty)");
    if ((rc = tool_finish(&t, what, err)) < 0)
        stg->ops->remove(stg, key, &(sdo_error){0});
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    tool_free(&t);
    return rc;
}

int bk_untar(storage *stg, const char *key, const char *part, int64_t size, const char *sha256,
             const char *dir, sdo_error *err)
{
    tool t;
    int rc = tool_prepare(&t, NULL, "tar", NULL, NULL, err);
    if (rc == 0) {
        const char *argv[] = {"tar", "-C", dir, "-xf", "-", NULL};
        char what[PATH_MAX + 64];
        snprintf(what, sizeof what, "extracting the filestore into %s failed", dir);
        rc = feed_tool(&t, argv, stg, key, part, size, sha256, what, err);
    }
    tool_free(&t);
    return rc;
}
