/* The process runtime: one local process per tenant, started with an argument vector built
 * from a template, its output appended to a per-tenant log, watched by a supervisor thread
 * that restarts it with back-off, probed on /web/health, and re-adopted after a restart. */
#include "runtime/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tenants/validate.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/util.h"

extern char **environ;

#define STOP_GRACE_MS 10000        /* SIGTERM, then SIGKILL after this */
#define KILL_WAIT_MS 5000          /* how long a SIGKILLed app may take to vanish */
#define TICK_MS 100                /* supervisor period */
#define PROBE_FAST_MS 200          /* supervisor probes of an app not yet healthy */
#define PROBE_SLOW_MS 5000         /* supervisor probes of a healthy app */
#define PROBE_TIMEOUT_MS 2000      /* one health probe */
#define STABLE_US (60 * 1000000LL) /* an app that ran this long restarts its back-off at 1 s */
#define FIRST_BACKOFF_MS 1000
#define LOG_ROTATE_BYTES (16L << 20) /* app.log moves to app.log.1 at the next start */
#define ARG_MAX_BYTES 8192           /* one substituted argument */
#define DIR_MAX 3000                 /* configured folders; leaves room for "/<id>/<file>" */
#define PATH_BYTES 4096

/* ---- template ----------------------------------------------------------------------------- */

enum {
    PH_TENANT,
    PH_DB_HOST,
    PH_DB_PORT,
    PH_DB_USER,
    PH_DB_NAME,
    PH_HTTP_PORT,
    PH_DATA_DIR,
    PH_WORKERS,
    PH_ODOO_VERSION,
    PH_COUNT
};

static const char *const ph_names[PH_COUNT] = {
    "tenant",    "db_host",  "db_port", "db_user",      "db_name",
    "http_port", "data_dir", "workers", "odoo_version",
};

/* Expands one template token into out (vals NULL: only checks it). Returns 0, or -1 with the
 * problem in why. */
static int tmpl_expand(const char *tok, const char *const *vals, sdo_buf *out, char *why,
                       size_t whysz)
{
    for (const char *p = tok; *p;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (out)
                sdo_buf_append(out, p, 1);
            p += 2;
            continue;
        }
        if (*p != '{') {
            if (out)
                sdo_buf_append(out, p, 1);
            p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) {
            snprintf(why, whysz, "unterminated placeholder in '%s' (write {{ for a literal {)",
                     tok);
            return -1;
        }
        size_t n = (size_t)(end - p - 1);
        int k = -1;
        for (int i = 0; i < PH_COUNT; i++)
            if (strlen(ph_names[i]) == n && memcmp(ph_names[i], p + 1, n) == 0)
                k = i;
        if (k < 0) {
            snprintf(why, whysz, "unknown placeholder '%.*s' in '%s'; known: %s",
                     (int)(n + 2 > 64 ? 64 : n + 2), p, tok, RT_PROCESS_PLACEHOLDERS);
            return -1;
        }
        if (out && vals)
            sdo_buf_puts(out, vals[k]);
        p = end + 1;
    }
    if (out && out->overflow) {
        snprintf(why, whysz, "argument from '%s' is longer than %d bytes", tok, ARG_MAX_BYTES);
        return -1;
    }
    return 0;
}

/* Splits the template on blanks into a NULL-ended vector, checking every token. */
static int tmpl_parse(const char *args, char ***out, size_t *n, sdo_error *err)
{
    size_t cap = 8, cnt = 0;
    char **v = sdo_calloc(cap, sizeof *v);
    const char *p = args ? args : "";
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        char *tok = strndup(s, (size_t)(p - s));
        if (!tok)
            abort();
        char why[400];
        if (tmpl_expand(tok, NULL, NULL, why, sizeof why) < 0) {
            free(tok);
            for (size_t i = 0; i < cnt; i++)
                free(v[i]);
            free(v);
            return sdo_fail_field(err, "runtime.args", "runtime.args: %s", why);
        }
        if (cnt + 2 > cap) {
            cap *= 2;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[cnt++] = tok;
        v[cnt] = NULL;
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void strv_free(char **v, bool secret)
{
    if (!v)
        return;
    for (char **p = v; *p; p++) {
        if (secret)
            explicit_bzero(*p, strlen(*p));
        free(*p);
    }
    free(v);
}

/* snprintf for messages that may be cut short (paths in sentences). */
static void msgf(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msgf(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Reads at most bufsz-1 bytes of a small file and terminates them. Returns the length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t have = 0;
    while (have + 1 < bufsz) {
        ssize_t r = read(fd, buf + have, bufsz - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    close(fd);
    buf[have] = 0;
    return (ssize_t)have;
}

/* Replaces path with data through a temporary file and rename(). */
static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[PATH_BYTES];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* mkdir -p: missing parents get 0755, the folder itself mode. */
static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_BYTES];
    if (sdo_strlcpy(buf, path, sizeof buf) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    return rc < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf of one tenant folder: symbolic links are removed, never followed, and other file
 * systems mounted below are not entered. Missing is success. */
static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Reads the state (R, S, Z, ...) and start time (clock ticks after boot) of pid from
 * /proc/<pid>/stat. Returns 0, or -1 when there is no such process. */
static int proc_stat(pid_t pid, unsigned long long *ticks, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) <= 0)
        return -1;
    /* the command name may hold anything, so fields are counted after its last ')' */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    char *end;
    errno = 0;
    *ticks = strtoull(p, &end, 10);
    return errno || end == p ? -1 : 0;
}

static void describe_status(int st, char *how, size_t howsz)
{
    if (WIFEXITED(st))
        snprintf(how, howsz, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(how, howsz, "was killed by signal %d", WTERMSIG(st));
    else
        snprintf(how, howsz, "ended (wait status %d)", st);
}

/* True while the process recorded as (pid, ticks) lives. Our own children are reaped here
 * (waitpid on that pid only); for others a changed start time means the pid was reused. On
 * death, how says what happened when we can know it. */
static bool proc_alive(pid_t pid, unsigned long long ticks, bool own, char *how, size_t howsz)
{
    int st;
    if (own) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            describe_status(st, how, howsz);
            return false;
        }
        if (r == 0)
            return true;
    }
    unsigned long long t;
    char state;
    if (proc_stat(pid, &t, &state) < 0 || t != ticks) {
        snprintf(how, howsz, "exited");
        return false;
    }
    if (state == 'Z' || state == 'X') {
        /* reaps it if it happens to be our child; otherwise its parent will */
        if (waitpid(pid, &st, WNOHANG) == pid)
            describe_status(st, how, howsz);
        else
            snprintf(how, howsz, "exited");
        return false;
    }
    return true;
}

/* True when nothing listens on the port (bind on all addresses with SO_REUSEADDR succeeds,
 * which ignores connections in TIME_WAIT but not a listener). */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Copies s into out with control characters as spaces, at most n characters. */
static void sanitize(const char *s, size_t len, char *out, size_t outsz)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < outsz; i++)
        out[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[j] = 0;
}

/* One HTTP/1.0 GET /web/health on 127.0.0.1:port. Returns the HTTP status, or -1; res says
 * what happened in words ("HTTP 200", "HTTP 503: {...}", "connection refused", ...). */
static int http_probe(int port, int timeout_ms, char *res, size_t ressz)
{
    int64_t until = sdo_mono_us() + (int64_t)timeout_ms * 1000;
    int code = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(res, ressz, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[2048];
    size_t have = 0;
    int e = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) {
            e = errno;
            goto neterr;
        }
        struct pollfd pfd = {fd, POLLOUT, 0};
        int left = (int)((until - sdo_mono_us()) / 1000);
        int pr = left > 0 ? poll(&pfd, 1, left) : 0;
        if (pr <= 0)
            goto timeout;
        socklen_t sl = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
            e = errno;
        if (e)
            goto neterr;
    }
    int rl = snprintf(buf, sizeof buf,
                      "GET /web/health HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
                      "User-Agent: saasodoo-runtime\r\nConnection: close\r\n\r\n",
                      port);
    /* a request this small fits in an empty socket buffer */
    if (send(fd, buf, (size_t)rl, MSG_NOSIGNAL) != rl) {
        e = errno ? errno : EIO;
        goto neterr;
    }
    long want = -1; /* header + body length once Content-Length is known */
    for (;;) {
        if (have + 1 >= sizeof buf || (want >= 0 && (long)have >= want))
            break;
        int left = (int)((until - sdo_mono_us()) / 1000);
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = left > 0 ? poll(&pfd, 1, left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            goto timeout;
        ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0) {
            e = errno;
            goto neterr;
        }
        if (r == 0)
            break;
        have += (size_t)r;
        buf[have] = 0;
        char *hend = strstr(buf, "\r\n\r\n");
        if (hend && want < 0) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl && cl < hend)
                want = (long)(hend + 4 - buf) + strtol(cl + 17, NULL, 10);
        }
    }
    buf[have] = 0;
    int minor;
    if (sscanf(buf, "HTTP/1.%d %d", &minor, &code) != 2) {
        char shown[80];
        sanitize(buf, have, shown, sizeof shown);
        snprintf(res, ressz, "not an HTTP response: '%s'", shown);
        code = -1;
        goto out;
    }
    char *body = strstr(buf, "\r\n\r\n");
    char shown[160];
    sanitize(body ? body + 4 : "", body ? strlen(body + 4) : 0, shown, sizeof shown);
    snprintf(res, ressz, "HTTP %d%s%s", code, shown[0] ? ": " : "", shown);
    goto out;
timeout:
    snprintf(res, ressz, "no answer within %d ms", timeout_ms);
    goto out;
neterr:
    snprintf(res, ressz, "%s", strerror(e));
out:
    close(fd);
    return code;
}

/* ---- the runtime -------------------------------------------------------------------------- */

/* Environment variables the runtime sets for an app, in the order they are digested. */
static const char *const env_keys[] = {"PGHOST",     "PGPORT", "PGUSER", "PGDATABASE",
                                       "PGPASSWORD", "HOME",   "USER",   "LOGNAME"};
#define N_ENV_KEYS (sizeof env_keys / sizeof env_keys[0])

typedef struct app {
    char id[48];
    int port;
    pid_t pid;                      /* 0 = not running */
    unsigned long long start_ticks; /* of pid, from /proc/<pid>/stat: tells a reused pid apart */
    bool own_child;                 /* forked by this runtime: reaped with waitpid */
    bool want_running;              /* restart it when it dies */
    bool busy;                      /* being stopped or removed with the lock released */
    char **argv, **env;             /* the spec it runs with (env holds the password); NULL
                                     * when unknown (adopted, environment unreadable) */
    char digest[65];                /* SHA-256 of argv, env and user */
    int restarts;
    int backoff_ms;
    int64_t started_us;    /* monotonic */
    int64_t restart_at_us; /* 0 = no restart pending */
    unsigned exits;        /* deaths seen */
    unsigned start_exits;  /* exits at the last start(): a death since fails wait_healthy */
    char last_exit[96];
    bool healthy;
    char last_probe[200];
    int64_t next_probe_us;
    int64_t fast_probe_until_us;
} app;

typedef struct proc_rt {
    runtime base; /* first: the runtime * handed out points here */
    char *state_dir, *filestore_dir, *command, *run_as;
    char **tmpl;
    size_t ntmpl;
    bool enabled;
    bool as_user; /* run_as applies (we are root) */
    uid_t uid;
    gid_t gid;
    int port_min, port_max, next_port;
    int health_timeout_ms, backoff_max_ms;

    pthread_mutex_t mu;
    pthread_cond_t changed; /* an app stopped being busy */
    pthread_cond_t wake;    /* the supervisor should look now (or quit) */
    pthread_t thread;
    bool thread_started, quit;
    app **apps;
    size_t napps, capps;
} proc_rt;

static int tenant_path(const proc_rt *rt, bool filestore, const char *id, const char *file,
                       char *out, size_t outsz)
{
    size_t n =
        (size_t)snprintf(out, outsz, "%s/%s%s%s", filestore ? rt->filestore_dir : rt->state_dir, id,
                         file ? "/" : "", file ? file : "");
    return n >= outsz ? -1 : 0;
}

/* Appends one line to the tenant's app.log, marked as coming from the runtime. */
static void app_note(const proc_rt *rt, const app *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void app_note(const proc_rt *rt, const app *a, const char *fmt, ...)
{
    char path[PATH_BYTES], line[1024];
    if (tenant_path(rt, false, a->id, "app.log", path, sizeof path) < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ saasodoo-runtime: ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(line);
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, n);
    (void)w;
    close(fd);
}

/* The last line the app itself wrote to its log (runtime notes skipped), sanitized. */
static void log_tail(const char *path, char *out, size_t outsz)
{
    out[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *end = buf + n;
    while (end > buf) {
        while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
            end--;
        char *start = end;
        while (start > buf && start[-1] != '\n')
            start--;
        if (end > start) {
            *end = 0;
            if (!strstr(start, " saasodoo-runtime: ")) {
                sanitize(start, (size_t)(end - start), out, outsz);
                return;
            }
        }
        end = start;
    }
}

static app *app_find(proc_rt *rt, const char *id)
{
    for (size_t i = 0; i < rt->napps; i++)
        if (strcmp(rt->apps[i]->id, id) == 0)
            return rt->apps[i];
    return NULL;
}

static app *app_add(proc_rt *rt, const char *id)
{
    if (rt->napps == rt->capps) {
        size_t ncap = rt->capps ? rt->capps * 2 : 16;
        app **n = realloc(rt->apps, ncap * sizeof *n);
        if (!n)
            abort();
        rt->apps = n;
        rt->capps = ncap;
    }
    app *a = sdo_calloc(1, sizeof *a);
    sdo_strlcpy(a->id, id, sizeof a->id);
    snprintf(a->last_probe, sizeof a->last_probe, "not probed yet");
    rt->apps[rt->napps++] = a;
    return a;
}

static void app_free(app *a)
{
    strv_free(a->argv, false);
    strv_free(a->env, true);
    free(a);
}

static void app_drop(proc_rt *rt, app *a)
{
    for (size_t i = 0; i < rt->napps; i++) {
        if (rt->apps[i] == a) {
            rt->apps[i] = rt->apps[--rt->napps];
            break;
        }
    }
    app_free(a);
}

/* Waits (lock held) until the tenant's entry, if any, is not busy; creates it when asked. */
static app *app_get_idle(proc_rt *rt, const char *id, bool create)
{
    app *a;
    while ((a = app_find(rt, id)) && a->busy)
        pthread_cond_wait(&rt->changed, &rt->mu);
    if (!a && create)
        a = app_add(rt, id);
    return a;
}

static void unlink_pid_file(const proc_rt *rt, const app *a)
{
    char path[PATH_BYTES];
    if (tenant_path(rt, false, a->id, "pid", path, sizeof path) == 0)
        unlink(path);
}

/* SHA-256 (hex) of what makes a run: argv, env, and the user it runs as. */
static void spec_digest(const proc_rt *rt, char *const *argv, char *const *env, char out[65])
{
    sdo_buf b = {0};
    b.limit = (size_t)1 << 20;
    for (char *const *p = argv; *p; p++)
        sdo_buf_append(&b, *p, strlen(*p) + 1);
    sdo_buf_append(&b, "\001", 1);
    for (char *const *p = env; *p; p++)
        sdo_buf_append(&b, *p, strlen(*p) + 1);
    sdo_buf_append(&b, "\001", 1);
    if (rt->as_user)
        sdo_buf_puts(&b, rt->run_as);
    unsigned char h[32];
    sdo_sha256(b.data ? b.data : "", b.len, h);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    explicit_bzero(b.data, b.len);
    sdo_buf_free(&b);
}

/* Called on a death (lock held): records it and schedules a restart when one is due. */
static void app_died(proc_rt *rt, app *a, const char *how, int64_t now)
{
    /* the app led its own process group: whatever it left there (workers holding its listening
     * socket) goes too, so that the next start can bind the port */
    if (a->pid > 0)
        kill(-a->pid, SIGKILL);
    a->pid = 0;
    a->own_child = false;
    a->healthy = false;
    a->exits++;
    sdo_strlcpy(a->last_exit, how, sizeof a->last_exit);
    unlink_pid_file(rt, a);
    if (!a->want_running) {
        log_info("event=app_exited tenant=%s how=\"%s\"", a->id, how);
        return;
    }
    if (!a->argv) {
        a->want_running = false;
        app_note(rt, a, "app %s; not restarted: its spec is unknown until it is started again",
                 how);
        log_warn("event=app_exited tenant=%s how=\"%s\" restart=no message=\"its spec is "
                 "unknown until the tenant is started again\"",
                 a->id, how);
        return;
    }
    if (now - a->started_us >= STABLE_US)
        a->backoff_ms = 0;
    int first = FIRST_BACKOFF_MS < rt->backoff_max_ms ? FIRST_BACKOFF_MS : rt->backoff_max_ms;
    if (a->backoff_ms <= 0)
        a->backoff_ms = first;
    else
        a->backoff_ms =
            a->backoff_ms > rt->backoff_max_ms / 2 ? rt->backoff_max_ms : a->backoff_ms * 2;
    a->restart_at_us = now + (int64_t)a->backoff_ms * 1000;
    app_note(rt, a, "app %s; restarting in %d ms", how, a->backoff_ms);
    log_warn("event=app_exited tenant=%s how=\"%s\" restart_in_ms=%d restarts=%d", a->id, how,
             a->backoff_ms, a->restarts);
}

/* Checks (lock held, app not busy) whether a running app is still alive. */
static void app_refresh(proc_rt *rt, app *a, int64_t now)
{
    char how[96];
    if (a->pid > 0 && !proc_alive(a->pid, a->start_ticks, a->own_child, how, sizeof how))
        app_died(rt, a, how, now);
}

/* The child's environment additions: the app's own variables, preceded by blank values for
 * the server's PostgreSQL and SAASODOO_ variables it must not inherit (connection settings
 * and secrets of the control plane). Caller frees with strv_free(v, true). */
static char **child_env(char *const *env)
{
    size_t n = 0, cap = 16;
    char **v = sdo_calloc(cap, sizeof *v);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || !(strncmp(*e, "PG", 2) == 0 || strncmp(*e, "SAASODOO_", 9) == 0))
            continue;
        size_t kl = (size_t)(eq - *e);
        bool ours = false;
        for (char *const *o = env; *o && !ours; o++)
            ours = strncmp(*o, *e, kl + 1) == 0;
        if (ours)
            continue;
        if (n + 2 > cap) {
            cap *= 2;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[n] = sdo_malloc(kl + 2);
        memcpy(v[n], *e, kl + 1);
        v[n][kl + 1] = 0;
        v[++n] = NULL;
    }
    for (char *const *o = env; *o; o++) {
        if (n + 2 > cap) {
            cap *= 2;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[n] = sdo_strdup(*o);
        v[++n] = NULL;
    }
    return v;
}

/* Starts a->argv with a->env (lock held). Returns 0, or -1 with errno and a message. */
static int app_spawn(proc_rt *rt, app *a, char *msg, size_t msgsz)
{
    char dir[PATH_BYTES], data[PATH_BYTES], path[PATH_BYTES], old[PATH_BYTES];
    if (tenant_path(rt, false, a->id, NULL, dir, sizeof dir) < 0 ||
        tenant_path(rt, true, a->id, NULL, data, sizeof data) < 0 ||
        tenant_path(rt, false, a->id, "app.log", path, sizeof path) < 0 ||
        tenant_path(rt, false, a->id, "app.log.1", old, sizeof old) < 0) {
        msgf(msg, msgsz, "path too long");
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdir_p(dir, 0750) < 0 || mkdir_p(data, 0750) < 0) {
        int e = errno;
        msgf(msg, msgsz, "cannot create %s or %s: %s", dir, data, strerror(e));
        errno = e;
        return -1;
    }
    if (rt->as_user && chown(data, rt->uid, rt->gid) < 0) {
        int e = errno;
        msgf(msg, msgsz, "cannot hand %s to user %s: %s", data, rt->run_as, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > LOG_ROTATE_BYTES)
        rename(path, old);

    /* argv, for restarting the app once a later server adopts it; it holds no secret */
    sdo_buf b = {0};
    for (char **p = a->argv; *p; p++)
        sdo_buf_append(&b, *p, strlen(*p) + 1);
    char spath[PATH_BYTES];
    tenant_path(rt, false, a->id, "argv", spath, sizeof spath);
    int wrc = write_file(spath, b.data ? b.data : "", b.len);
    sdo_buf_free(&b);
    char line[80];
    int ll = snprintf(line, sizeof line, "%s\n", a->digest);
    tenant_path(rt, false, a->id, "spec", spath, sizeof spath);
    if (wrc < 0 || write_file(spath, line, (size_t)ll) < 0) {
        int e = errno;
        msgf(msg, msgsz, "cannot write the state of %s in %s: %s", a->id, dir, strerror(e));
        errno = e;
        return -1;
    }

    int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (logfd < 0) {
        int e = errno;
        msgf(msg, msgsz, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    sdo_buf shown = {0};
    shown.limit = 2000;
    for (char **p = a->argv; *p; p++)
        sdo_buf_printf(&shown, "%s%s", p == a->argv ? "" : " ", *p);
    app_note(rt, a, "starting on port %d: %s", a->port, shown.data ? shown.data : "");
    sdo_buf_free(&shown);

    char **env = child_env(a->env);
    spawn_opts o = SPAWN_OPTS_INIT;
    o.env = (const char *const *)env;
    o.user = rt->as_user ? rt->run_as : NULL;
    o.cwd = data;
    o.stdout_fd = logfd;
    o.new_session = true;
    pid_t pid = spawn_start((const char *const *)a->argv, &o, msg, msgsz);
    int e = errno;
    strv_free(env, true);
    close(logfd);
    if (pid < 0) {
        app_note(rt, a, "%s", msg);
        errno = e;
        return -1;
    }
    char state;
    if (proc_stat(pid, &a->start_ticks, &state) < 0)
        a->start_ticks = 0;
    a->pid = pid;
    a->own_child = true;
    a->healthy = false;
    int64_t now = sdo_mono_us();
    a->started_us = now;
    a->restart_at_us = 0;
    a->next_probe_us = now + PROBE_FAST_MS * 1000LL;
    a->fast_probe_until_us = now + (int64_t)rt->health_timeout_ms * 1000;
    snprintf(a->last_probe, sizeof a->last_probe, "not probed yet");
    ll = snprintf(line, sizeof line, "%d %llu\n", (int)pid, a->start_ticks);
    tenant_path(rt, false, a->id, "pid", spath, sizeof spath);
    if (write_file(spath, line, (size_t)ll) < 0)
        log_warn("event=app_pid_file_failed tenant=%s path=\"%s\" error=\"%s\" message=\"the "
                 "app will not be re-adopted after a server restart\"",
                 a->id, spath, strerror(errno));
    log_info("event=app_started tenant=%s pid=%d port=%d", a->id, (int)pid, a->port);
    return 0;
}

static int spawn_fail(sdo_error *err, const char *id, const char *msg, int e)
{
    bool permanent = e == ENOENT || e == EACCES || e == ENOEXEC || e == ENOTDIR || e == EPERM ||
                     e == ENAMETOOLONG;
    return sdo_fail(err, permanent ? SDO_FAILED_PRECONDITION : SDO_UNAVAILABLE,
                    "tenant '%s': cannot start the app: %s", id, msg);
}

/* Stops a's process (lock held on entry and exit, released while waiting; a not busy). */
static int app_stop(proc_rt *rt, app *a, sdo_error *err)
{
    a->want_running = false;
    a->restart_at_us = 0;
    char how[96];
    if (a->pid <= 0 || !proc_alive(a->pid, a->start_ticks, a->own_child, how, sizeof how)) {
        if (a->pid > 0) {
            a->pid = 0;
            a->exits++;
            sdo_strlcpy(a->last_exit, how, sizeof a->last_exit);
        }
        a->healthy = false;
        unlink_pid_file(rt, a);
        return 0;
    }
    pid_t pid = a->pid;
    unsigned long long ticks = a->start_ticks;
    bool own = a->own_child;
    a->busy = true;
    app_note(rt, a, "stopping pid %d (SIGTERM)", (int)pid);
    pthread_mutex_unlock(&rt->mu);

    if (kill(-pid, SIGTERM) < 0)
        kill(pid, SIGTERM);
    bool alive = true;
    int64_t until = sdo_mono_us() + STOP_GRACE_MS * 1000LL;
    int nap = 2;
    while ((alive = proc_alive(pid, ticks, own, how, sizeof how)) && sdo_mono_us() < until) {
        sleep_ms(nap);
        nap = nap < 50 ? nap * 2 : 50;
    }
    if (alive) {
        log_warn("event=app_kill tenant=%s pid=%d message=\"no exit %d ms after SIGTERM; sending "
                 "SIGKILL\"",
                 a->id, (int)pid, STOP_GRACE_MS);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        until = sdo_mono_us() + KILL_WAIT_MS * 1000LL;
        while ((alive = proc_alive(pid, ticks, own, how, sizeof how)) && sdo_mono_us() < until)
            sleep_ms(20);
    }
    if (!alive)
        kill(-pid, SIGKILL); /* whatever the app left behind in its process group */

    pthread_mutex_lock(&rt->mu);
    a->busy = false;
    pthread_cond_broadcast(&rt->changed);
    if (alive)
        return sdo_fail(err, SDO_UNAVAILABLE, "tenant '%s': app pid %d did not exit after SIGKILL",
                        a->id, (int)pid);
    a->pid = 0;
    a->own_child = false;
    a->healthy = false;
    a->exits++;
    snprintf(a->last_exit, sizeof a->last_exit, "was stopped");
    unlink_pid_file(rt, a);
    app_note(rt, a, "stopped");
    log_info("event=app_stopped tenant=%s pid=%d", a->id, (int)pid);
    return 0;
}

static bool port_taken(const proc_rt *rt, const app *self, int port)
{
    for (size_t i = 0; i < rt->napps; i++)
        if (rt->apps[i] != self && rt->apps[i]->port == port)
            return true;
    return false;
}

/* Gives a a port (lock held): its recorded one while in range and free, else the next free
 * one in the range, recorded in <state>/<id>/port. */
static int app_port(proc_rt *rt, app *a, sdo_error *err)
{
    if (a->port >= rt->port_min && a->port <= rt->port_max && !port_taken(rt, a, a->port) &&
        (a->pid > 0 || port_free(a->port)))
        return 0;
    int range = rt->port_max - rt->port_min + 1;
    int found = 0;
    for (int i = 0; i < range && !found; i++) {
        int p = rt->port_min + (rt->next_port - rt->port_min + i) % range;
        if (!port_taken(rt, a, p) && port_free(p))
            found = p;
    }
    if (!found)
        return sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                        "tenant '%s': no free HTTP port left in runtime.port_min..port_max "
                        "(%d-%d)",
                        a->id, rt->port_min, rt->port_max);
    if (a->port)
        log_warn("event=app_port_moved tenant=%s from=%d to=%d message=\"the recorded port is "
                 "in use or out of range\"",
                 a->id, a->port, found);
    a->port = found;
    rt->next_port = found + 1 > rt->port_max ? rt->port_min : found + 1;
    char path[PATH_BYTES], line[16];
    int n = snprintf(line, sizeof line, "%d\n", found);
    if (tenant_path(rt, false, a->id, "port", path, sizeof path) < 0 ||
        write_file(path, line, (size_t)n) < 0)
        return sdo_fail(err, SDO_INTERNAL, "tenant '%s': cannot record its port in %s: %s", a->id,
                        path, strerror(errno));
    return 0;
}

static void env_add(char **env, size_t *n, const char *key, const char *val)
{
    if (!val || !*val)
        return;
    size_t len = strlen(key) + strlen(val) + 2;
    env[*n] = sdo_malloc(len);
    snprintf(env[*n], len, "%s=%s", key, val);
    (*n)++;
    env[*n] = NULL;
}

/* Builds the argv and env for spec on a->port. Returns 0 or an error. */
static int build_spec(proc_rt *rt, const app *a, const rt_app_spec *spec, char ***argv_out,
                      char ***env_out, sdo_error *err)
{
    char port[16], http[16], workers[16], data[PATH_BYTES];
    snprintf(port, sizeof port, "%d", spec->db_port);
    snprintf(http, sizeof http, "%d", a->port);
    snprintf(workers, sizeof workers, "%d", spec->workers);
    if (tenant_path(rt, true, a->id, NULL, data, sizeof data) < 0)
        return sdo_fail(err, SDO_INTERNAL, "filestore path too long");
    const char *vals[PH_COUNT];
    vals[PH_TENANT] = a->id;
    vals[PH_DB_HOST] = spec->db_host ? spec->db_host : "";
    vals[PH_DB_PORT] = port;
    vals[PH_DB_USER] = spec->db_user ? spec->db_user : "";
    vals[PH_DB_NAME] = spec->db_name ? spec->db_name : "";
    vals[PH_HTTP_PORT] = http;
    vals[PH_DATA_DIR] = data;
    vals[PH_WORKERS] = workers;
    vals[PH_ODOO_VERSION] = spec->odoo_version ? spec->odoo_version : "";

    char **argv = sdo_calloc(rt->ntmpl + 2, sizeof *argv);
    argv[0] = sdo_strdup(rt->command);
    for (size_t i = 0; i < rt->ntmpl; i++) {
        sdo_buf b = {0};
        b.limit = ARG_MAX_BYTES;
        char why[400];
        if (tmpl_expand(rt->tmpl[i], vals, &b, why, sizeof why) < 0) {
            sdo_buf_free(&b);
            strv_free(argv, false);
            return sdo_fail(err, SDO_INVALID_ARGUMENT, "tenant '%s': %s", a->id, why);
        }
        argv[i + 1] = b.data ? b.data : sdo_strdup("");
    }
    char **env = sdo_calloc(N_ENV_KEYS + 1, sizeof *env);
    size_t n = 0;
    env_add(env, &n, "PGHOST", spec->db_host);
    env_add(env, &n, "PGPORT", spec->db_port > 0 ? port : NULL);
    env_add(env, &n, "PGUSER", spec->db_user);
    env_add(env, &n, "PGDATABASE", spec->db_name);
    env_add(env, &n, "PGPASSWORD", spec->db_password);
    if (rt->as_user) {
        env_add(env, &n, "HOME", data);
        env_add(env, &n, "USER", rt->run_as);
        env_add(env, &n, "LOGNAME", rt->run_as);
    }
    *argv_out = argv;
    *env_out = env;
    return 0;
}

/* ---- runtime_ops -------------------------------------------------------------------------- */

static int check_id(const char *id, sdo_error *err)
{
    if (!id || !tenant_id_syntax_ok(id))
        return sdo_fail_field(err, "tenant_id", "runtime: tenant id '%.64s' must match %s",
                              id ? id : "", TENANT_ID_PATTERN);
    return 0;
}

static int p_start(runtime *base, const rt_app_spec *spec, int *port, sdo_error *err)
{
    proc_rt *rt = (proc_rt *)base;
    if (port)
        *port = 0;
    if (!spec)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "runtime: no app spec");
    int rc = check_id(spec->tenant_id, err);
    if (rc)
        return rc;
    if (!rt->enabled)
        return 0;
    if (spec->db_port < 0 || spec->db_port > 65535 || spec->workers < 0)
        return sdo_fail(err, SDO_INVALID_ARGUMENT,
                        "tenant '%s': db_port %d or workers %d out of range", spec->tenant_id,
                        spec->db_port, spec->workers);
    char **argv = NULL, **env = NULL;
    char digest[65];
    pthread_mutex_lock(&rt->mu);
    app *a = app_get_idle(rt, spec->tenant_id, true);
    app_refresh(rt, a, sdo_mono_us());
    char dir[PATH_BYTES];
    if (tenant_path(rt, false, a->id, NULL, dir, sizeof dir) < 0 || mkdir_p(dir, 0750) < 0) {
        rc = sdo_fail(err, SDO_INTERNAL, "tenant '%s': cannot create %s: %s", a->id, dir,
                      strerror(errno));
        goto out;
    }
    if ((rc = app_port(rt, a, err)) < 0)
        goto out;
    if ((rc = build_spec(rt, a, spec, &argv, &env, err)) < 0)
        goto out;
    spec_digest(rt, argv, env, digest);
    if (a->pid > 0 && strcmp(digest, a->digest) == 0) {
        /* already running as asked: adopt it, learning its spec if it was unknown */
        if (!a->argv) {
            a->argv = argv;
            a->env = env;
            argv = env = NULL;
        }
        a->want_running = true;
        a->start_exits = a->exits;
        goto out;
    }
    if (a->pid > 0) {
        log_info("event=app_spec_changed tenant=%s message=\"restarting it\"", a->id);
        if ((rc = app_stop(rt, a, err)) < 0)
            goto out;
    }
    strv_free(a->argv, false);
    strv_free(a->env, true);
    a->argv = argv;
    a->env = env;
    argv = env = NULL;
    memcpy(a->digest, digest, sizeof digest);
    a->restarts = 0;
    a->backoff_ms = 0;
    a->want_running = true;
    a->start_exits = a->exits;
    char msg[300];
    if (app_spawn(rt, a, msg, sizeof msg) < 0) {
        a->want_running = false;
        rc = spawn_fail(err, a->id, msg, errno);
    }
out:
    if (rc == 0 && port)
        *port = a->port;
    pthread_mutex_unlock(&rt->mu);
    strv_free(argv, false);
    strv_free(env, true);
    return rc;
}

static int p_wait_healthy(runtime *base, const char *id, int timeout_ms, sdo_error *err)
{
    proc_rt *rt = (proc_rt *)base;
    int rc = check_id(id, err);
    if (rc || !rt->enabled)
        return rc;
    if (timeout_ms <= 0)
        timeout_ms = rt->health_timeout_ms;
    int64_t t0 = sdo_mono_us(), until = t0 + (int64_t)timeout_ms * 1000;
    char last[200] = "no probe made", logpath[PATH_BYTES], tail[160];
    tenant_path(rt, false, id, "app.log", logpath, sizeof logpath);
    int nap = 5, port = 0;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        app *a = app_find(rt, id);
        if (!a || a->busy || (!a->want_running && a->pid <= 0)) {
            pthread_mutex_unlock(&rt->mu);
            return sdo_fail(err, SDO_FAILED_PRECONDITION,
                            "tenant '%s': the app is not running; start it first", id);
        }
        int64_t now = sdo_mono_us();
        app_refresh(rt, a, now);
        if (a->pid <= 0 && a->exits != a->start_exits) {
            /* it died since it was started, before answering: say so now rather than after
             * the timeout (the supervisor still restarts it) */
            char how[96];
            sdo_strlcpy(how, a->last_exit, sizeof how);
            pthread_mutex_unlock(&rt->mu);
            log_tail(logpath, tail, sizeof tail);
            return sdo_fail(err, SDO_UNAVAILABLE,
                            "tenant '%s': the app %s before answering /web/health (last probe: "
                            "%s); log: %s%s%s",
                            id, how, last, logpath, tail[0] ? "; last line: " : "", tail);
        }
        pid_t pid = a->pid;
        port = a->port;
        if (pid <= 0)
            snprintf(last, sizeof last, "app not running (it %s; restart pending)", a->last_exit);
        pthread_mutex_unlock(&rt->mu);

        if (pid > 0) {
            int left = (int)((until - now) / 1000);
            int t = left < PROBE_TIMEOUT_MS ? (left < 50 ? 50 : left) : PROBE_TIMEOUT_MS;
            int code = http_probe(port, t, last, sizeof last);
            pthread_mutex_lock(&rt->mu);
            a = app_find(rt, id);
            if (a && a->pid == pid) {
                a->healthy = code == 200;
                sdo_strlcpy(a->last_probe, last, sizeof a->last_probe);
            }
            pthread_mutex_unlock(&rt->mu);
            if (code == 200) {
                log_debug("event=app_healthy tenant=%s ms=%lld", id,
                          (long long)((sdo_mono_us() - t0) / 1000));
                return 0;
            }
        }
        now = sdo_mono_us();
        if (now >= until)
            break;
        /* quick at first (time to ACTIVE matters and a refused connect costs microseconds),
         * gentler once the app is slow to come up */
        int left = (int)((until - now) / 1000) + 1;
        sleep_ms(nap < left ? nap : left);
        nap = now - t0 < 250000 ? 5 : now - t0 < 5000000 ? 50 : 250;
    }
    log_tail(logpath, tail, sizeof tail);
    return sdo_fail(err, SDO_UNAVAILABLE,
                    "tenant '%s': the app did not answer /web/health with 200 within %d ms; last "
                    "probe of http://127.0.0.1:%d/web/health: %s; log: %s%s%s",
                    id, timeout_ms, port, last, logpath, tail[0] ? "; last line: " : "", tail);
}

static int p_stop(runtime *base, const char *id, sdo_error *err)
{
    proc_rt *rt = (proc_rt *)base;
    int rc = check_id(id, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&rt->mu);
    app *a = app_get_idle(rt, id, false);
    if (a)
        rc = app_stop(rt, a, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

static int p_remove(runtime *base, const char *id, sdo_error *err)
{
    proc_rt *rt = (proc_rt *)base;
    int rc = check_id(id, err);
    if (rc)
        return rc;
    char state[PATH_BYTES], files[PATH_BYTES];
    if (tenant_path(rt, false, id, NULL, state, sizeof state) < 0 ||
        tenant_path(rt, true, id, NULL, files, sizeof files) < 0)
        return sdo_fail(err, SDO_INTERNAL, "tenant '%s': path too long", id);
    pthread_mutex_lock(&rt->mu);
    app *a = app_get_idle(rt, id, false);
    if (a) {
        if ((rc = app_stop(rt, a, err)) < 0) {
            pthread_mutex_unlock(&rt->mu);
            return rc;
        }
        a->busy = true;
    }
    pthread_mutex_unlock(&rt->mu);

    /* the state folder goes last: while it exists the tenant is listed, so a remove cut short
     * is seen and repeated */
    int e = 0;
    const char *failed = NULL;
    if (rm_tree(files) < 0) {
        e = errno;
        failed = files;
    } else if (rm_tree(state) < 0) {
        e = errno;
        failed = state;
    }

    pthread_mutex_lock(&rt->mu);
    if (a) {
        a->busy = false;
        if (!failed)
            app_drop(rt, a);
        pthread_cond_broadcast(&rt->changed);
    }
    pthread_mutex_unlock(&rt->mu);
    if (failed)
        return sdo_fail(err, SDO_INTERNAL, "tenant '%s': cannot remove %s: %s", id, failed,
                        strerror(e));
    if (a)
        log_info("event=app_removed tenant=%s", id);
    return 0;
}

static int p_status(runtime *base, const char *id, rt_status *out)
{
    proc_rt *rt = (proc_rt *)base;
    memset(out, 0, sizeof *out);
    if (check_id(id, NULL))
        return -SDO_INVALID_ARGUMENT;
    pthread_mutex_lock(&rt->mu);
    app *a = app_find(rt, id);
    if (a) {
        if (!a->busy)
            app_refresh(rt, a, sdo_mono_us());
        out->running = a->pid > 0;
        out->pid = a->pid;
        out->port = a->port;
        out->healthy = a->pid > 0 && a->healthy;
        out->restarts = a->restarts;
    }
    pthread_mutex_unlock(&rt->mu);
    return 0;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int p_list(runtime *base, char ***ids, size_t *n, sdo_error *err)
{
    (void)err;
    proc_rt *rt = (proc_rt *)base;
    pthread_mutex_lock(&rt->mu);
    char **v = sdo_calloc(rt->napps + 1, sizeof *v);
    for (size_t i = 0; i < rt->napps; i++)
        v[i] = sdo_strdup(rt->apps[i]->id);
    *n = rt->napps;
    pthread_mutex_unlock(&rt->mu);
    qsort(v, *n, sizeof *v, cmp_str);
    *ids = v;
    return 0;
}

static char *p_filestore_path(runtime *base, const char *id)
{
    proc_rt *rt = (proc_rt *)base;
    char path[PATH_BYTES];
    if (check_id(id, NULL) || tenant_path(rt, true, id, NULL, path, sizeof path) < 0)
        return NULL;
    return sdo_strdup(path);
}

static bool p_enabled(runtime *base)
{
    return ((proc_rt *)base)->enabled;
}

/* ---- supervisor --------------------------------------------------------------------------- */

typedef struct probe_job {
    char id[48];
    pid_t pid;
    int port;
    int code;
    char result[200];
} probe_job;

static void *supervise(void *arg)
{
    proc_rt *rt = arg;
    probe_job *jobs = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&rt->mu);
    while (!rt->quit) {
        int64_t now = sdo_mono_us();
        size_t njobs = 0;
        for (size_t i = 0; i < rt->napps; i++) {
            app *a = rt->apps[i];
            if (a->busy)
                continue;
            app_refresh(rt, a, now);
            if (a->pid <= 0 && a->want_running && a->restart_at_us && now >= a->restart_at_us) {
                a->restarts++;
                char msg[300];
                if (app_spawn(rt, a, msg, sizeof msg) < 0) {
                    log_warn("event=app_restart_failed tenant=%s error=\"%s\"", a->id, msg);
                    a->started_us = now;
                    app_died(rt, a, "could not be restarted", now);
                } else {
                    app_note(rt, a, "restart %d", a->restarts);
                }
            }
            if (a->pid > 0 && now >= a->next_probe_us) {
                if (njobs == cap) {
                    cap = cap ? cap * 2 : 16;
                    probe_job *nj = realloc(jobs, cap * sizeof *nj);
                    if (!nj)
                        abort();
                    jobs = nj;
                }
                probe_job *j = &jobs[njobs++];
                sdo_strlcpy(j->id, a->id, sizeof j->id);
                j->pid = a->pid;
                j->port = a->port;
                bool fast = !a->healthy && now < a->fast_probe_until_us;
                a->next_probe_us = now + (fast ? PROBE_FAST_MS : PROBE_SLOW_MS) * 1000LL;
            }
        }
        if (njobs) {
            pthread_mutex_unlock(&rt->mu);
            for (size_t i = 0; i < njobs && !__atomic_load_n(&rt->quit, __ATOMIC_RELAXED); i++)
                jobs[i].code = http_probe(jobs[i].port, PROBE_TIMEOUT_MS, jobs[i].result,
                                          sizeof jobs[i].result);
            pthread_mutex_lock(&rt->mu);
            for (size_t i = 0; i < njobs && !rt->quit; i++) {
                app *a = app_find(rt, jobs[i].id);
                if (a && a->pid == jobs[i].pid) {
                    a->healthy = jobs[i].code == 200;
                    sdo_strlcpy(a->last_probe, jobs[i].result, sizeof a->last_probe);
                }
            }
        }
        if (rt->quit)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rt->wake, &rt->mu, &ts);
    }
    pthread_mutex_unlock(&rt->mu);
    free(jobs);
    return NULL;
}

/* ---- construction ------------------------------------------------------------------------- */

/* Learns the spec of an adopted app: argv from its state folder, the variables the runtime
 * sets from /proc/<pid>/environ; kept only when they digest to the recorded spec. */
static void recover_spec(proc_rt *rt, app *a)
{
    char path[PATH_BYTES];
    size_t cap = 1 << 20;
    char *buf = sdo_malloc(cap);
    char **argv = NULL, **env = NULL;
    tenant_path(rt, false, a->id, "argv", path, sizeof path);
    ssize_t n = read_file(path, buf, cap);
    if (n <= 0 || buf[n - 1] != 0)
        goto out;
    size_t cnt = 0;
    for (ssize_t i = 0; i < n; i++)
        cnt += buf[i] == 0;
    argv = sdo_calloc(cnt + 1, sizeof *argv);
    size_t k = 0;
    for (char *p = buf; p < buf + n; p += strlen(p) + 1)
        argv[k++] = sdo_strdup(p);

    snprintf(path, sizeof path, "/proc/%d/environ", (int)a->pid);
    n = read_file(path, buf, cap);
    if (n <= 0)
        goto out;
    env = sdo_calloc(N_ENV_KEYS + 1, sizeof *env);
    size_t ne = 0;
    /* HOME, USER and LOGNAME are the runtime's only when it runs apps as another user */
    size_t nkeys = rt->as_user ? N_ENV_KEYS : 5;
    for (size_t key = 0; key < nkeys; key++) {
        size_t kl = strlen(env_keys[key]);
        const char *val = NULL;
        for (char *p = buf; p < buf + n; p += strlen(p) + 1)
            if (strncmp(p, env_keys[key], kl) == 0 && p[kl] == '=')
                val = p + kl + 1; /* the last one wins, as in getenv after putenv */
        env_add(env, &ne, env_keys[key], val);
    }
    char digest[65];
    spec_digest(rt, argv, env, digest);
    if (strcmp(digest, a->digest) == 0) {
        a->argv = argv;
        a->env = env;
        argv = env = NULL;
    }
out:
    explicit_bzero(buf, cap);
    free(buf);
    strv_free(argv, false);
    strv_free(env, true);
}

/* Loads one tenant folder found at construction. */
static void load_app(proc_rt *rt, const char *id)
{
    app *a = app_add(rt, id);
    char path[PATH_BYTES], buf[128];
    tenant_path(rt, false, id, "port", path, sizeof path);
    if (read_file(path, buf, sizeof buf) > 0)
        a->port = atoi(buf);
    if (a->port < 1 || a->port > 65535)
        a->port = 0;
    tenant_path(rt, false, id, "spec", path, sizeof path);
    if (read_file(path, buf, sizeof buf) >= 64) {
        memcpy(a->digest, buf, 64);
        a->digest[64] = 0;
    }
    tenant_path(rt, false, id, "pid", path, sizeof path);
    int pid = 0;
    unsigned long long ticks = 0, now_ticks;
    char state;
    if (read_file(path, buf, sizeof buf) <= 0 || sscanf(buf, "%d %llu", &pid, &ticks) != 2 ||
        pid <= 0)
        return;
    if (proc_stat(pid, &now_ticks, &state) < 0 || now_ticks != ticks || state == 'Z' ||
        state == 'X') {
        log_info("event=app_gone tenant=%s pid=%d", id, pid);
        unlink(path);
        return;
    }
    a->pid = pid;
    a->start_ticks = ticks;
    a->own_child = false;
    a->want_running = true;
    a->started_us = sdo_mono_us();
    a->next_probe_us = a->started_us;
    a->fast_probe_until_us = a->started_us + (int64_t)rt->health_timeout_ms * 1000;
    recover_spec(rt, a);
    app_note(rt, a, "adopted pid %d", pid);
    log_info("event=app_adopted tenant=%s pid=%d port=%d spec_known=%s", id, pid, a->port,
             a->argv ? "yes" : "no");
}

static void p_free(runtime *base)
{
    proc_rt *rt = (proc_rt *)base;
    if (!rt)
        return;
    if (rt->thread_started) {
        pthread_mutex_lock(&rt->mu);
        __atomic_store_n(&rt->quit, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&rt->wake);
        pthread_mutex_unlock(&rt->mu);
        pthread_join(rt->thread, NULL);
    }
    for (size_t i = 0; i < rt->napps; i++)
        app_free(rt->apps[i]);
    free(rt->apps);
    strv_free(rt->tmpl, false);
    pthread_cond_destroy(&rt->wake);
    pthread_cond_destroy(&rt->changed);
    pthread_mutex_destroy(&rt->mu);
    free(rt->state_dir);
    free(rt->filestore_dir);
    free(rt->command);
    free(rt->run_as);
    free(rt);
}

static const runtime_ops process_ops = {
    .name = "process",
    .start = p_start,
    .wait_healthy = p_wait_healthy,
    .stop = p_stop,
    .remove = p_remove,
    .status = p_status,
    .list = p_list,
    .filestore_path = p_filestore_path,
    .enabled = p_enabled,
    .free = p_free,
};

/* True if cmd names an executable file, directly or through PATH. */
static bool command_found(const char *cmd)
{
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char full[PATH_BYTES];
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((size_t)snprintf(full, sizeof full, "%.*s/%s", (int)len, p, cmd) < sizeof full &&
            access(full, X_OK) == 0)
            return true;
        if (!end)
            return false;
        p = end + 1;
    }
}

/* Creates dir and stores its absolute path in *out. */
static int make_dir(const char *dir, const char *key, mode_t mode, char **out, sdo_error *err)
{
    if (!dir || !*dir)
        return sdo_fail_field(err, key, "%s is required", key);
    if (strlen(dir) > DIR_MAX)
        return sdo_fail_field(err, key, "%s is longer than %d bytes", key, DIR_MAX);
    if (mkdir_p(dir, mode) < 0)
        return sdo_fail(err, SDO_INTERNAL, "%s: cannot create %s: %s", key, dir, strerror(errno));
    char *abs = realpath(dir, NULL);
    if (!abs)
        return sdo_fail(err, SDO_INTERNAL, "%s: %s: %s", key, dir, strerror(errno));
    if (strlen(abs) > DIR_MAX || strcmp(abs, "/") == 0) {
        free(abs);
        return sdo_fail_field(err, key, "%s '%s' cannot hold tenant folders", key, dir);
    }
    *out = abs;
    return 0;
}

runtime *rt_process_new(const rt_process_config *cfg, sdo_error *err)
{
    proc_rt *rt = sdo_calloc(1, sizeof *rt);
    rt->base.ops = &process_ops;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->changed, NULL);
    pthread_cond_init(&rt->wake, &ca);
    pthread_condattr_destroy(&ca);

    rt->command = sdo_strdup(cfg->command ? cfg->command : "");
    rt->enabled = rt->command[0] != 0;
    rt->port_min = cfg->port_min;
    rt->port_max = cfg->port_max;
    rt->next_port = cfg->port_min;
    rt->health_timeout_ms = cfg->health_timeout_ms > 0 ? cfg->health_timeout_ms : 60000;
    rt->backoff_max_ms = cfg->restart_backoff_max_ms > 0 ? cfg->restart_backoff_max_ms : 60000;
    if (tmpl_parse(cfg->args, &rt->tmpl, &rt->ntmpl, err) < 0)
        goto fail;
    if (rt->enabled) {
        if (cfg->port_min < 1 || cfg->port_max > 65535 || cfg->port_min > cfg->port_max) {
            sdo_fail_field(err, "runtime.port_min",
                           "runtime.port_min..port_max (%d-%d) must be a range within 1-65535",
                           cfg->port_min, cfg->port_max);
            goto fail;
        }
        if (!command_found(rt->command)) {
            sdo_fail_field(err, "runtime.command",
                           "runtime.command '%s' is not an executable file%s", rt->command,
                           strchr(rt->command, '/') ? "" : " found in PATH");
            goto fail;
        }
    }
    if (cfg->run_as && *cfg->run_as && geteuid() == 0) {
        rt->run_as = sdo_strdup(cfg->run_as);
        if (!spawn_user(rt->run_as, &rt->uid, &rt->gid)) {
            sdo_fail_field(err, "runtime.run_as", "runtime.run_as: user '%s' does not exist",
                           rt->run_as);
            goto fail;
        }
        rt->as_user = true;
    }
    if (make_dir(cfg->state_dir, "runtime.state_dir", 0750, &rt->state_dir, err) < 0 ||
        make_dir(cfg->filestore_dir, "runtime.filestore_dir", rt->as_user ? 0755 : 0750,
                 &rt->filestore_dir, err) < 0)
        goto fail;
    if (strcmp(rt->state_dir, rt->filestore_dir) == 0) {
        sdo_fail_field(err, "runtime.filestore_dir",
                       "the state and filestore folders must differ (both are %s)", rt->state_dir);
        goto fail;
    }

    DIR *d = opendir(rt->state_dir);
    if (!d) {
        sdo_fail(err, SDO_INTERNAL, "cannot read %s: %s", rt->state_dir, strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (!tenant_id_syntax_ok(de->d_name) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        load_app(rt, de->d_name);
    }
    closedir(d);

    if (pthread_create(&rt->thread, NULL, supervise, rt) != 0) {
        sdo_fail(err, SDO_INTERNAL, "cannot start the runtime supervisor thread");
        goto fail;
    }
    rt->thread_started = true;
    if (rt->enabled)
        log_info("event=runtime_ready kind=process command=\"%s\" ports=%d-%d state=\"%s\" "
                 "filestore=\"%s\" user=%s tenants=%zu",
                 rt->command, rt->port_min, rt->port_max, rt->state_dir, rt->filestore_dir,
                 rt->as_user ? rt->run_as : "-", rt->napps);
    return &rt->base;
fail:
    p_free(&rt->base);
    return NULL;
}
