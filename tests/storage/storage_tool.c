/* saasodoo-storage-tool: drives one storage backend (server/storage/storage.h) from the
 * command line, for tests and for checking a bucket by hand.
 *
 *   saasodoo-storage-tool put KEY <data     saasodoo-storage-tool get KEY >data
 *   saasodoo-storage-tool ls [PREFIX]       prints "SIZE KEY" lines in key order
 *   saasodoo-storage-tool rm KEY            saasodoo-storage-tool stat KEY (prints the size)
 *
 * The backend comes from the environment: SAASODOO_STORAGE=filesystem (with
 * SAASODOO_STORAGE_DIR) or s3 (with SAASODOO_S3_ENDPOINT, _REGION, _BUCKET, _PREFIX,
 * _ACCESS_KEY, _SECRET_KEY, _PART_SIZE in bytes, _PATH_STYLE 0|1, _LIST_PAGE_SIZE,
 * _CA_FILE). On failure the tool prints "STATUS: message" on stderr and exits 1; bad usage
 * exits 2. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage.h"

static const char *env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

static int fail(const sdo_error *err)
{
    fprintf(stderr, "%s: %s\n", sdo_status_name(err->code), err->message);
    return 1;
}

static storage *open_backend(sdo_error *err)
{
    const char *kind = env("SAASODOO_STORAGE", "filesystem");
    if (strcmp(kind, "filesystem") == 0)
        return storage_fs_new(env("SAASODOO_STORAGE_DIR", ""), err);
    if (strcmp(kind, "s3") == 0) {
        storage_s3_config c = {
            .endpoint = env("SAASODOO_S3_ENDPOINT", ""),
            .region = env("SAASODOO_S3_REGION", "us-east-1"),
            .bucket = env("SAASODOO_S3_BUCKET", ""),
            .prefix = env("SAASODOO_S3_PREFIX", ""),
            .access_key = env("SAASODOO_S3_ACCESS_KEY", ""),
            .secret_key = env("SAASODOO_S3_SECRET_KEY", ""),
            .part_size = (size_t)strtoull(env("SAASODOO_S3_PART_SIZE", "5242880"), NULL, 10),
            .path_style = atoi(env("SAASODOO_S3_PATH_STYLE", "1")),
            .ca_file = env("SAASODOO_S3_CA_FILE", ""),
            .list_page_size = atoi(env("SAASODOO_S3_LIST_PAGE_SIZE", "0")),
        };
        return storage_s3_new(&c, err);
    }
    sdo_fail(err, SDO_INVALID_ARGUMENT, "SAASODOO_STORAGE '%s' must be filesystem or s3", kind);
    return NULL;
}

static int print_entry(void *arg, const char *key, int64_t size)
{
    (void)arg;
    printf("%lld %s\n", (long long)size, key);
    return 0;
}

static int do_put(storage *s, const char *key, sdo_error *err)
{
    storage_writer *w = s->ops->create(s, key, err);
    if (!w)
        return -1;
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sdo_fail(err, SDO_INTERNAL, "reading standard input: %s", strerror(errno));
            s->ops->abort(w);
            return -1;
        }
        if (n == 0)
            break;
        if (s->ops->write(w, buf, (size_t)n, err) != 0) {
            s->ops->abort(w);
            return -1;
        }
    }
    return s->ops->commit(w, err);
}

static int do_get(storage *s, const char *key, sdo_error *err)
{
    storage_reader *r = s->ops->open(s, key, err);
    if (!r)
        return -1;
    static char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = s->ops->read(r, buf, sizeof buf, err);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            rc = sdo_fail(err, SDO_INTERNAL, "writing standard output: %s", strerror(errno));
            break;
        }
    }
    s->ops->close(r);
    if (fflush(stdout) != 0 && rc == 0)
        rc = sdo_fail(err, SDO_INTERNAL, "writing standard output: %s", strerror(errno));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 2 && strcmp(argv[1], "ls") != 0)) {
        fprintf(stderr, "usage: %s put KEY <data | get KEY | ls [PREFIX] | rm KEY | stat KEY\n",
                argv[0]);
        return 2;
    }
    /* A connection closed under a TLS write must fail the call, not kill the tool. */
    signal(SIGPIPE, SIG_IGN);
    const char *cmd = argv[1], *arg = argc == 3 ? argv[2] : "";
    sdo_error err = {0};
    storage *s = open_backend(&err);
    if (!s)
        return fail(&err);
    int rc;
    if (strcmp(cmd, "put") == 0) {
        rc = do_put(s, arg, &err);
    } else if (strcmp(cmd, "get") == 0) {
        rc = do_get(s, arg, &err);
    } else if (strcmp(cmd, "ls") == 0) {
        rc = s->ops->list(s, arg, print_entry, NULL, &err);
    } else if (strcmp(cmd, "rm") == 0) {
        rc = s->ops->remove(s, arg, &err);
    } else if (strcmp(cmd, "stat") == 0) {
        int64_t size = 0;
        rc = s->ops->stat(s, arg, &size, &err);
        if (rc == 0)
            printf("%lld\n", (long long)size);
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", argv[0], cmd);
        s->ops->free(s);
        return 2;
    }
    s->ops->free(s);
    return rc == 0 ? 0 : fail(&err);
}
