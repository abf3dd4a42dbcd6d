/* The session `saasodoo login` keeps: a small "key = value" file at
 * $XDG_CONFIG_HOME/saasodoo/credentials (mode 0600, directory 0700), written atomically,
 * and the refresh of its access token when that has expired. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CREDS_MAX_BYTES (64 * 1024)
#define CREDS_LINE_MAX 8192
/* An access token this close to its expiry is refreshed before use. */
#define CREDS_REFRESH_MARGIN_SECONDS 60

static int config_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;

    /* The XDG spec ignores a relative XDG_CONFIG_HOME. */
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, size, "%s/saasodoo", xdg);
    } else {
        if (home == NULL || home[0] == '\0') {
            struct passwd *pw = getpwuid(getuid());
            home = pw != NULL ? pw->pw_dir : NULL;
        }
        if (home == NULL || home[0] == '\0')
            return cli_failure("cannot find the credentials file: set HOME or XDG_CONFIG_HOME");
        n = snprintf(buf, size, "%s/.config/saasodoo", home);
    }
    if (n < 0 || (size_t)n >= size)
        return cli_failure("the configuration directory path is too long");
    return 0;
}

int creds_path(char *buf, size_t size)
{
    char dir[PATH_MAX];
    int rc = config_dir(dir, sizeof(dir));
    if (rc != 0)
        return rc;
    if ((size_t)snprintf(buf, size, "%s/credentials", dir) >= size)
        return cli_failure("the credentials file path is too long");
    return 0;
}

void creds_clear(cli_creds *c)
{
    if (c->access_token != NULL)
        memset(c->access_token, 0, strlen(c->access_token));
    if (c->refresh_token != NULL)
        memset(c->refresh_token, 0, strlen(c->refresh_token));
    free(c->server);
    free(c->ca_file);
    free(c->user);
    free(c->email);
    free(c->access_token);
    free(c->refresh_token);
    memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int parse_seconds(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < 0)
        return -1;
    *out = (int64_t)n;
    return 0;
}

/* Stores value `v` of `key` in *c. Returns 0, 1 for an unknown key, -1 for a bad value or
 * no memory. */
static int set_field(cli_creds *c, const char *key, const char *v)
{
    static const struct {
        const char *key;
        size_t offset;
    } strings[] = {
        {"server", offsetof(cli_creds, server)},
        {"ca_file", offsetof(cli_creds, ca_file)},
        {"user", offsetof(cli_creds, user)},
        {"email", offsetof(cli_creds, email)},
        {"access_token", offsetof(cli_creds, access_token)},
        {"refresh_token", offsetof(cli_creds, refresh_token)},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strcmp(key, strings[i].key) != 0)
            continue;
        char **slot = (char **)(void *)((char *)c + strings[i].offset);
        free(*slot);
        *slot = v[0] != '\0' ? strdup(v) : NULL;
        return v[0] != '\0' && *slot == NULL ? -1 : 0;
    }
    if (strcmp(key, "access_token_expires") == 0)
        return parse_seconds(v, &c->access_expires);
    if (strcmp(key, "refresh_token_expires") == 0)
        return parse_seconds(v, &c->refresh_expires);
    return 1;
}

int creds_load(cli_creds *c)
{
    char path[PATH_MAX], line[CREDS_LINE_MAX];
    struct stat sb;
    size_t total = 0;
    int lineno = 0, rc = -1;
    FILE *f;

    memset(c, 0, sizeof(*c));
    if (creds_path(path, sizeof(path)) != 0)
        return -1;
    if ((f = fopen(path, "r")) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        cli_failure("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077) != 0)
        fprintf(stderr, "saasodoo: warning: %s can be read by other users; run 'chmod 600 %s'\n",
                path, path);
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        total += n;
        if (total > CREDS_MAX_BYTES) {
            cli_failure("%s is larger than %d bytes: run 'saasodoo login' again", path,
                        CREDS_MAX_BYTES);
            goto out;
        }
        if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
            cli_failure("%s line %d is too long: run 'saasodoo login' again", path, lineno);
            goto out;
        }
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            cli_failure("%s line %d: expected 'key = value': run 'saasodoo login' again", path,
                        lineno);
            goto out;
        }
        *eq = '\0';
        int r = set_field(c, trim(s), trim(eq + 1));
        if (r < 0) {
            cli_failure("%s line %d: bad value for '%s': run 'saasodoo login' again", path, lineno,
                        trim(s));
            goto out;
        }
    }
    if (ferror(f)) {
        cli_failure("cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (c->server == NULL || c->access_token == NULL) {
        cli_failure("%s lacks the server or the access token: run 'saasodoo login' again", path);
        goto out;
    }
    for (const char *p = c->access_token; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            cli_failure("%s: the access token holds characters a token cannot: run 'saasodoo "
                        "login' again",
                        path);
            goto out;
        }
    }
    rc = 1;
out:
    fclose(f);
    if (rc < 0)
        creds_clear(c);
    return rc;
}

/* mkdir 0700 unless it exists; with `tighten`, an existing directory we own that others
 * may enter becomes 0700. */
static int ensure_dir(const char *path, bool tighten)
{
    const mode_t mode = 0700;
    struct stat sb;
    if (mkdir(path, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return cli_failure("cannot create %s: %s", path, strerror(errno));
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_failure("%s is not a directory", path);
    if (tighten && (sb.st_mode & 077) != 0 && sb.st_uid == getuid() && chmod(path, mode) != 0)
        return cli_failure("cannot make %s private: %s", path, strerror(errno));
    return 0;
}

/* A value fit for one line of the file. */
static bool one_line(const char *s)
{
    for (; s != NULL && *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\0')
            return false;
    return true;
}

int creds_save(const cli_creds *c)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    int fd = -1, rc;
    FILE *f = NULL;

    if ((rc = config_dir(dir, sizeof(dir))) != 0)
        return rc;
    if (!one_line(c->server) || !one_line(c->ca_file) || !one_line(c->user) ||
        !one_line(c->email) || !one_line(c->access_token) || !one_line(c->refresh_token))
        return cli_failure("the session holds a line break and cannot be stored");
    /* The parent (XDG_CONFIG_HOME or ~/.config), then saasodoo/ itself. */
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = '\0';
    if ((rc = ensure_dir(parent, false)) != 0 || (rc = ensure_dir(dir, true)) != 0)
        return rc;
    if ((rc = creds_path(path, sizeof(path))) != 0)
        return rc;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.credentials.XXXXXX", dir) >= sizeof(tmp))
        return cli_failure("the credentials file path is too long");

    if ((fd = mkstemp(tmp)) < 0)
        return cli_failure("cannot create a file in %s: %s", dir, strerror(errno));
    if (fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
        rc = cli_failure("cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1; /* owned by f now */
    fprintf(f, "# The saasodoo session written by 'saasodoo login'. Keep it private.\n");
    fprintf(f, "server = %s\n", c->server);
    if (c->ca_file != NULL)
        fprintf(f, "ca_file = %s\n", c->ca_file);
    if (c->user != NULL)
        fprintf(f, "user = %s\n", c->user);
    if (c->email != NULL)
        fprintf(f, "email = %s\n", c->email);
    fprintf(f, "access_token = %s\n", c->access_token);
    fprintf(f, "access_token_expires = %" PRId64 "\n", c->access_expires);
    if (c->refresh_token != NULL) {
        fprintf(f, "refresh_token = %s\n", c->refresh_token);
        fprintf(f, "refresh_token_expires = %" PRId64 "\n", c->refresh_expires);
    }
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        rc = cli_failure("cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = cli_failure("cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        rc = cli_failure("cannot replace %s: %s", path, strerror(errno));
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    if (f != NULL)
        fclose(f);
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int creds_remove(void)
{
    char path[PATH_MAX];
    if (creds_path(path, sizeof(path)) != 0)
        return CLI_EXIT_FAILURE;
    if (unlink(path) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    return cli_failure("cannot remove %s: %s", path, strerror(errno));
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

int creds_from_session(cli_creds *c, const Saasodoo__V1__Session *s, const char *server,
                       const char *ca_file)
{
    memset(c, 0, sizeof(*c));
    c->server = dup_or_null(server);
    c->ca_file = dup_or_null(ca_file);
    c->access_token = dup_or_null(s->access_token);
    c->refresh_token = dup_or_null(s->refresh_token);
    if (s->access_token_expire_time != NULL)
        c->access_expires = s->access_token_expire_time->seconds;
    if (s->refresh_token_expire_time != NULL)
        c->refresh_expires = s->refresh_token_expire_time->seconds;
    if (s->user != NULL) {
        c->user = dup_or_null(s->user->name);
        c->email = dup_or_null(s->user->email);
    }
    if (c->server == NULL || c->access_token == NULL ||
        (ca_file != NULL && ca_file[0] != '\0' && c->ca_file == NULL) ||
        (s->refresh_token != NULL && s->refresh_token[0] != '\0' && c->refresh_token == NULL)) {
        creds_clear(c);
        return -1;
    }
    return 0;
}

static bool needs_refresh(const cli_creds *c, int64_t now)
{
    return c->access_expires != 0 && c->access_expires - CREDS_REFRESH_MARGIN_SECONDS <= now;
}

/* Replaces a field of `dst` by the one of `src` when `dst` lacks it. */
static void keep(char **dst, char **src)
{
    if (*dst == NULL) {
        *dst = *src;
        *src = NULL;
    }
}

int creds_ensure_fresh(cli_ctx *ctx)
{
    Saasodoo__V1__RefreshSessionRequest req = SAASODOO__V1__REFRESH_SESSION_REQUEST__INIT;
    Saasodoo__V1__Session *session = NULL;
    cli_creds *c = &ctx->creds, fresh;
    char path[PATH_MAX], lock_path[PATH_MAX + 8];
    sdo_status st = {0};
    sdo_client *anon = NULL;
    int64_t now = (int64_t)time(NULL);
    int lock_fd = -1, rc;

    if (!needs_refresh(c, now) || c->refresh_token == NULL)
        return 0;
    if (c->refresh_expires != 0 && c->refresh_expires <= now) {
        fprintf(stderr,
                "saasodoo: UNAUTHENTICATED: the session stored for %s has expired: run "
                "'saasodoo login'\n",
                c->server);
        return CLI_EXIT_RPC + SDO_UNAUTHENTICATED;
    }
    if ((rc = creds_path(path, sizeof(path))) != 0)
        return rc;
    /* One refresh at a time: the refresh token changes with each, so a second command
     * refreshing with the old one would be turned away. */
    snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd >= 0 && flock(lock_fd, LOCK_EX) != 0) {
        close(lock_fd);
        lock_fd = -1;
    }
    /* Another command may have refreshed while this one waited for the lock. */
    if (creds_load(&fresh) == 1) {
        if (strcmp(fresh.server, c->server) == 0 && !needs_refresh(&fresh, now)) {
            creds_clear(c);
            *c = fresh;
            rc = 0;
            goto out;
        }
        creds_clear(&fresh);
    }

    if ((anon = cli_anonymous_client(ctx)) == NULL) {
        rc = ctx->client_rc;
        goto out;
    }
    req.refresh_token = c->refresh_token;
    rc = sdo_identity_service_refresh_session(anon, &req, &session, &st);
    if (rc < 0) {
        fprintf(stderr, "saasodoo: cannot renew the session stored for %s\n", c->server);
        cli_set_auth_hint("The stored session has ended: run 'saasodoo login'.");
        rc = cli_rpc_failure(rc, &st);
        goto out;
    }
    if (creds_from_session(&fresh, session, c->server, c->ca_file) != 0) {
        rc = cli_failure("the server answered the refresh without an access token");
        goto out;
    }
    keep(&fresh.user, &c->user);
    keep(&fresh.email, &c->email);
    if (fresh.refresh_token == NULL) { /* the server kept the refresh token as it was */
        fresh.refresh_token = c->refresh_token;
        fresh.refresh_expires = c->refresh_expires;
        c->refresh_token = NULL;
    }
    creds_clear(c);
    *c = fresh;
    rc = creds_save(c);
out:
    if (session != NULL)
        protobuf_c_message_free_unpacked(&session->base, NULL);
    sdo_client_free(anon);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the lock */
    return rc;
}
