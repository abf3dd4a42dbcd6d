/* saasodoo-standin: a stand-in for Odoo in tests, where Odoo cannot be installed. It takes
 * Odoo's command-line flags, serves GET /web/health (200 only while a query on its database
 * succeeds with the credentials it was given) and GET /standin/info (which role and database
 * it reaches), and writes a marker into its filestore like Odoo's data directory layout. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX 8192
#define READ_TIMEOUT_MS 2000

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

typedef struct opts {
    const char *database, *db_host, *db_port, *db_user, *data_dir;
    int http_port;
    bool no_db;
} opts;

static PGconn *conn;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[1024];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S standin: ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(line);
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: saasodoo-standin --http-port=N [--database=NAME --db_host=H --db_port=P "
            "--db_user=U] [--data-dir=D] [--no-db] [other --flag=value ignored]\n"
            "The password comes from PGPASSWORD.\n");
}

static int parse_args(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        size_t kl = eq ? (size_t)(eq - a) : strlen(a);
#define IS(name) (kl == strlen(name) && strncmp(a, name, kl) == 0)
        if (IS("--database") || IS("-d"))
            o->database = v;
        else if (IS("--db_host"))
            o->db_host = v;
        else if (IS("--db_port"))
            o->db_port = v;
        else if (IS("--db_user") || IS("-r"))
            o->db_user = v;
        else if (IS("--data-dir") || IS("-D"))
            o->data_dir = v;
        else if (IS("--http-port") || IS("-p"))
            o->http_port = atoi(v);
        else if (IS("--no-db"))
            o->no_db = true;
        else if (IS("--help") || IS("-h")) {
            usage();
            exit(0);
        }
#undef IS
    }
    if (o->http_port < 1 || o->http_port > 65535) {
        usage();
        return -1;
    }
    if (!o->no_db && (!o->database || !*o->database)) {
        fprintf(stderr, "saasodoo-standin: --database is required (or --no-db)\n");
        return -1;
    }
    return 0;
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0750);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* <data-dir>/filestore/<database>/.standin, where Odoo keeps the database's attachments. */
static int write_marker(const opts *o)
{
    if (!o->data_dir || !*o->data_dir)
        return 0;
    const char *db = o->database && *o->database ? o->database : "no-db";
    if (strchr(db, '/') || strcmp(db, "..") == 0 || strcmp(db, ".") == 0) {
        say("refusing database name '%s' as a folder name", db);
        return -1;
    }
    char dir[4096], path[4200];
    if ((size_t)snprintf(dir, sizeof dir, "%s/filestore/%s", o->data_dir, db) >= sizeof dir)
        return -1;
    if (mkdir_p(dir) < 0) {
        say("cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/.standin", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        say("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "pid=%d database=%s\n", (int)getpid(), db);
    return fclose(f) == 0 ? 0 : -1;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Appends s to out as the inside of a JSON string. */
static void json_str(char *out, size_t outsz, const char *s)
{
    size_t j = strlen(out);
    for (; *s && j + 7 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[j++] = '\\';
            out[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(out + j, outsz - j, "\\u%04x", c);
        } else {
            out[j++] = (char)c;
        }
    }
    out[j] = 0;
}

/* Copies a libpq message as one line: runs of blanks and line breaks become one space. */
static void one_line(char *out, size_t outsz, const char *msg)
{
    size_t j = 0;
    bool space = false;
    for (const char *p = msg; *p && j + 1 < outsz; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < outsz)
            out[j++] = ' ';
        space = false;
        out[j++] = *p;
    }
    out[j] = 0;
}

/* The database connection, made (or remade) when missing or broken. */
static PGconn *db(const opts *o, char *err, size_t errsz)
{
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    if (conn)
        PQfinish(conn);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", "application_name",
                          NULL};
    const char *vals[] = {o->db_host && *o->db_host ? o->db_host : NULL,
                          o->db_port && *o->db_port ? o->db_port : NULL,
                          o->db_user && *o->db_user ? o->db_user : NULL,
                          o->database,
                          "3",
                          "saasodoo-standin",
                          NULL};
    conn = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(err, errsz, PQerrorMessage(conn));
        PQfinish(conn);
        conn = NULL;
        return NULL;
    }
    return conn;
}

/* Runs sql (one row expected); on a broken connection reconnects once and retries. */
static PGresult *query(const opts *o, const char *sql, char *err, size_t errsz)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = db(o, err, errsz);
        if (!c)
            return NULL;
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            return r;
        one_line(err, errsz, PQerrorMessage(c));
        PQclear(r);
        if (PQstatus(c) == CONNECTION_OK)
            return NULL;
    }
    return NULL;
}

static void respond(int fd, int code, const char *body)
{
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 400 ? "Bad Request"
                                       : "Service Unavailable";
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     code, reason, strlen(body));
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n)
        send(fd, body, strlen(body), MSG_NOSIGNAL);
}

static void handle(int fd, const opts *o)
{
    char req[REQUEST_MAX + 1];
    size_t have = 0;
    while (have < REQUEST_MAX) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, READ_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR && !stopping)
            continue;
        if (pr <= 0)
            return;
        ssize_t r = recv(fd, req + have, REQUEST_MAX - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        have += (size_t)r;
        req[have] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[have] = 0;
    char method[16], path[1024];
    if (sscanf(req, "%15s %1023s", method, path) != 2) {
        respond(fd, 400, "{\"error\":\"bad request\"}");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond(fd, 405, "{\"error\":\"only GET\"}");
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    char body[2048] = "", err[1024] = "";
    if (strcmp(path, "/web/health") == 0) {
        if (o->no_db) {
            respond(fd, 200, "{\"status\":\"pass\"}");
            return;
        }
        PGresult *r = query(o, "SELECT 1", err, sizeof err);
        if (r) {
            PQclear(r);
            respond(fd, 200, "{\"status\":\"pass\"}");
            return;
        }
        strcpy(body, "{\"status\":\"fail\",\"error\":\"");
        json_str(body, sizeof body - 3, err);
        strcat(body, "\"}");
        say("GET /web/health 503: %s", err);
        respond(fd, 503, body);
        return;
    }
    if (strcmp(path, "/standin/info") == 0) {
        if (o->no_db) {
            respond(fd, 503, "{\"error\":\"started with --no-db\"}");
            return;
        }
        PGresult *r = query(o,
                            "SELECT current_user, current_database(), "
                            "(SELECT count(*) FROM pg_class)",
                            err, sizeof err);
        if (!r) {
            strcpy(body, "{\"error\":\"");
            json_str(body, sizeof body - 3, err);
            strcat(body, "\"}");
            respond(fd, 503, body);
            return;
        }
        strcpy(body, "{\"current_user\":\"");
        json_str(body, sizeof body - 200, PQgetvalue(r, 0, 0));
        strcat(body, "\",\"current_database\":\"");
        json_str(body, sizeof body - 100, PQgetvalue(r, 0, 1));
        size_t n = strlen(body);
        snprintf(body + n, sizeof body - n, "\",\"pg_class_count\":%s,\"pid\":%d}",
                 PQgetvalue(r, 0, 2), (int)getpid());
        PQclear(r);
        respond(fd, 200, body);
        return;
    }
    respond(fd, 404, "{\"error\":\"not found\"}");
}

int main(int argc, char **argv)
{
    opts o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (write_marker(&o) < 0)
        return 1;
    int lfd = listen_on(o.http_port);
    if (lfd < 0) {
        say("cannot listen on 127.0.0.1:%d: %s", o.http_port, strerror(errno));
        return 1;
    }
    say("listening on 127.0.0.1:%d database=%s user=%s host=%s port=%s pid=%d", o.http_port,
        o.no_db ? "(none)" : o.database, o.db_user ? o.db_user : "", o.db_host ? o.db_host : "",
        o.db_port ? o.db_port : "", (int)getpid());

    while (!stopping) {
        struct pollfd pfd = {lfd, POLLIN, 0};
        int pr = poll(&pfd, 1, -1);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            say("poll: %s", strerror(errno));
            break;
        }
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        handle(c, &o);
        close(c);
    }
    close(lfd);
    if (conn)
        PQfinish(conn);
    say("stopped");
    return 0;
}
