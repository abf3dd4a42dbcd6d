/* The filesystem storage backend: each object is a file under a root directory, written to
 * a hidden temporary file beside its final name and renamed into place on commit, so a
 * reader or a listing never sees half an object, even after a crash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"

typedef struct fs_storage {
    storage base;
    char *root; /* without a trailing slash */
} fs_storage;

struct storage_writer {
    fs_storage *s;
    char *key;
    char *path; /* final name */
    char *tmp;  /* hidden temporary name in the same directory */
    int fd;
    int failed; /* a write failed: commit refuses */
};

struct storage_reader {
    int fd;
    char *key;
    fs_storage *s;
};

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = sdo_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* The status an errno deserves: a full disk or quota (or a file size limit) is
 * RESOURCE_EXHAUSTED, a refused permission PERMISSION_DENIED, anything else INTERNAL. */
static int fs_fail(fs_storage *s, sdo_error *err, int e, const char *what, const char *path)
{
    sdo_status code = SDO_INTERNAL;
    if (e == ENOSPC || e == EDQUOT || e == EFBIG)
        code = SDO_RESOURCE_EXHAUSTED;
    else if (e == EACCES || e == EPERM || e == EROFS)
        code = SDO_PERMISSION_DENIED;
    return sdo_fail(err, code, "filesystem storage %s: %s %s: %s", s->root, what, path,
                    strerror(e));
}

static int bad_key(fs_storage *s, sdo_error *err, const char *key)
{
    return sdo_fail_field(err, "key",
                          "filesystem storage %s: key '%.200s' must be a relative path of "
                          "[A-Za-z0-9._/-] components that do not start with '.'",
                          s->root, key);
}

/* mkdir -p of the directories of path below the root (the root itself exists). */
static int make_parents(fs_storage *s, const char *path, sdo_error *err)
{
    char *p = sdo_strdup(path);
    size_t rootlen = strlen(s->root);
    int rc = 0;
    for (char *c = p + rootlen + 1; (c = strchr(c, '/')) != NULL; c++) {
        *c = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = fs_fail(s, err, errno, "cannot create directory", p);
            break;
        }
        *c = '/';
    }
    free(p);
    return rc;
}

/* Removes the now empty directories between path's directory and the root, best effort. */
static void remove_empty_parents(fs_storage *s, const char *path)
{
    char *p = sdo_strdup(path);
    size_t rootlen = strlen(s->root);
    char *slash;
    while ((slash = strrchr(p, '/')) != NULL && (size_t)(slash - p) > rootlen) {
        *slash = 0;
        if (rmdir(p) != 0)
            break;
    }
    free(p);
}

static int fsync_dir(fs_storage *s, const char *path, sdo_error *err)
{
    char *dir = sdo_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = fs_fail(s, err, errno, "cannot sync directory", dir);
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

static storage_writer *fs_create(storage *base, const char *key, sdo_error *err)
{
    fs_storage *s = (fs_storage *)base;
    if (!storage_key_ok(key)) {
        bad_key(s, err, key);
        return NULL;
    }
    storage_writer *w = sdo_calloc(1, sizeof *w);
    w->s = s;
    w->fd = -1;
    w->key = sdo_strdup(key);
    w->path = path_join(s->root, key);
    const char *slash = strrchr(w->path, '/');
    size_t dirlen = (size_t)(slash - w->path);
    size_t n = strlen(w->path) + sizeof "/..tmp-XXXXXX";
    w->tmp = sdo_malloc(n);
    n = (size_t)snprintf(w->tmp, n, "%.*s/.%s.tmp-XXXXXX", (int)dirlen, w->path, slash + 1) + 1;
    /* A concurrent remove() may take away an empty parent directory between mkdir and
     * mkostemp: make it again a few times. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (make_parents(s, w->path, err) != 0)
            goto fail;
        memcpy(w->tmp + n - sizeof "XXXXXX", "XXXXXX", 6);
        w->fd = mkostemp(w->tmp, O_CLOEXEC);
        if (w->fd >= 0 || errno != ENOENT)
            break;
    }
    if (w->fd < 0) {
        fs_fail(s, err, errno, "cannot create", w->tmp);
        goto fail;
    }
    return w;
fail:
    remove_empty_parents(s, w->path);
    free(w->tmp);
    free(w->path);
    free(w->key);
    free(w);
    return NULL;
}

static int fs_write(storage_writer *w, const void *buf, size_t n, sdo_error *err)
{
    const char *p = buf;
    if (w->failed)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "filesystem storage %s: writing %s failed earlier", w->s->root, w->key);
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            w->failed = 1;
            return fs_fail(w->s, err, errno, "cannot write", w->path);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void writer_free(storage_writer *w)
{
    free(w->tmp);
    free(w->path);
    free(w->key);
    free(w);
}

static void fs_abort(storage_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    unlink(w->tmp);
    remove_empty_parents(w->s, w->path);
    writer_free(w);
}

static int fs_commit(storage_writer *w, sdo_error *err)
{
    fs_storage *s = w->s;
    int rc;
    if (w->failed) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "filesystem storage %s: writing %s failed earlier", s->root, w->key);
        goto fail;
    }
    if (fsync(w->fd) != 0) {
        rc = fs_fail(s, err, errno, "cannot sync", w->path);
        goto fail;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) {
        rc = fs_fail(s, err, errno, "cannot close", w->path);
        goto fail;
    }
    if (rename(w->tmp, w->path) != 0) {
        rc = fs_fail(s, err, errno, "cannot rename into place", w->path);
        goto fail;
    }
    /* The object is in place; a failed directory sync is still reported, because the
     * rename may not survive a crash. */
    rc = fsync_dir(s, w->path, err);
    writer_free(w);
    return rc;
fail:
    fs_abort(w);
    return rc;
}

static storage_reader *fs_open(storage *base, const char *key, sdo_error *err)
{
    fs_storage *s = (fs_storage *)base;
    if (!storage_key_ok(key)) {
        bad_key(s, err, key);
        return NULL;
    }
    char *path = path_join(s->root, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EISDIR;
        if (fd >= 0)
            close(fd);
        if (e == ENOENT || e == ENOTDIR || e == EISDIR)
            sdo_fail(err, SDO_NOT_FOUND, "filesystem storage %s: no object %s", s->root, key);
        else
            fs_fail(s, err, e, "cannot open", path);
        free(path);
        return NULL;
    }
    free(path);
    storage_reader *r = sdo_calloc(1, sizeof *r);
    r->fd = fd;
    r->s = s;
    r->key = sdo_strdup(key);
    return r;
}

static ssize_t fs_read(storage_reader *r, void *buf, size_t n, sdo_error *err)
{
    for (;;) {
        ssize_t k = read(r->fd, buf, n);
        if (k >= 0)
            return k;
        if (errno != EINTR) {
            fs_fail(r->s, err, errno, "cannot read object", r->key);
            return -1;
        }
    }
}

static void fs_close(storage_reader *r)
{
    if (!r)
        return;
    close(r->fd);
    free(r->key);
    free(r);
}

static int fs_stat(storage *base, const char *key, int64_t *size, sdo_error *err)
{
    fs_storage *s = (fs_storage *)base;
    if (!storage_key_ok(key))
        return bad_key(s, err, key);
    char *path = path_join(s->root, key);
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = sdo_fail(err, SDO_NOT_FOUND, "filesystem storage %s: no object %s", s->root, key);
        else
            rc = fs_fail(s, err, errno, "cannot stat", path);
    } else if (!S_ISREG(st.st_mode)) {
        rc = sdo_fail(err, SDO_NOT_FOUND, "filesystem storage %s: no object %s", s->root, key);
    } else {
        *size = (int64_t)st.st_size;
    }
    free(path);
    return rc;
}

static int fs_remove(storage *base, const char *key, sdo_error *err)
{
    fs_storage *s = (fs_storage *)base;
    if (!storage_key_ok(key))
        return bad_key(s, err, key);
    char *path = path_join(s->root, key);
    int rc = 0;
    if (unlink(path) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            rc = fs_fail(s, err, errno, "cannot remove", path);
    } else {
        remove_empty_parents(s, path);
    }
    free(path);
    return rc;
}

/* ---- list --------------------------------------------------------------------------------- */

typedef struct key_entry {
    char *key;
    int64_t size;
} key_entry;

typedef struct key_list {
    key_entry *e;
    size_t n, cap;
} key_list;

static void key_list_add(key_list *l, const char *key, int64_t size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        key_entry *e = realloc(l->e, cap * sizeof *e);
        if (!e)
            abort();
        l->e = e;
        l->cap = cap;
    }
    l->e[l->n].key = sdo_strdup(key);
    l->e[l->n].size = size;
    l->n++;
}

/* Walks dir (the directory of relative key path rel, "" for the root), adding every
 * committed object whose key starts with prefix. Hidden entries (temporary files) are
 * skipped. */
static int walk(fs_storage *s, const char *rel, const char *prefix, key_list *out, sdo_error *err)
{
    char *dir = rel[0] ? path_join(s->root, rel) : sdo_strdup(s->root);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        int rc = (e == ENOENT || e == ENOTDIR) ? 0 : fs_fail(s, err, e, "cannot list", dir);
        free(dir);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *key = rel[0] ? path_join(rel, de->d_name) : sdo_strdup(de->d_name);
        size_t klen = strlen(key), plen = strlen(prefix);
        /* Descend only where keys below can still match the prefix. */
        size_t cmp = klen < plen ? klen : plen;
        if (strncmp(key, prefix, cmp) != 0) {
            free(key);
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                rc = fs_fail(s, err, errno, "cannot stat", key);
            free(key);
            if (rc)
                break;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(s, key, prefix, out, err);
        } else if (S_ISREG(st.st_mode) && klen >= plen && storage_key_ok(key)) {
            key_list_add(out, key, (int64_t)st.st_size);
        }
        free(key);
        if (rc)
            break;
    }
    closedir(d);
    free(dir);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const key_entry *)a)->key, ((const key_entry *)b)->key);
}

static int fs_list(storage *base, const char *prefix, storage_list_fn fn, void *arg, sdo_error *err)
{
    fs_storage *s = (fs_storage *)base;
    if (!prefix)
        prefix = "";
    for (const char *c = prefix; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-' || *c == '/'))
            return sdo_fail_field(err, "prefix",
                                  "filesystem storage %s: prefix '%.200s' may hold only "
                                  "[A-Za-z0-9._/-]",
                                  s->root, prefix);
    }
    if (strstr(prefix, "..") || prefix[0] == '/')
        return sdo_fail_field(err, "prefix",
                              "filesystem storage %s: prefix '%.200s' must be relative and "
                              "must not contain '..'",
                              s->root, prefix);
    /* Start at the deepest directory the prefix names in full. */
    char *start = sdo_strdup(prefix);
    char *slash = strrchr(start, '/');
    if (slash)
        *slash = 0;
    else
        start[0] = 0;
    key_list l = {0};
    int rc = walk(s, start, prefix, &l, err);
    free(start);
    if (l.n)
        qsort(l.e, l.n, sizeof *l.e, cmp_entry);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (fn(arg, l.e[i].key, l.e[i].size) != 0)
            break;
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.e[i].key);
    free(l.e);
    return rc;
}

static void fs_free(storage *base)
{
    fs_storage *s = (fs_storage *)base;
    if (!s)
        return;
    free(s->root);
    free(s);
}

static const storage_ops fs_ops = {
    .name = "filesystem",
    .create = fs_create,
    .write = fs_write,
    .commit = fs_commit,
    .abort = fs_abort,
    .open = fs_open,
    .read = fs_read,
    .close = fs_close,
    .stat = fs_stat,
    .remove = fs_remove,
    .list = fs_list,
    .free = fs_free,
};

storage *storage_fs_new(const char *root, sdo_error *err)
{
    if (!root || !root[0]) {
        sdo_fail_field(err, "backup.dir", "filesystem storage needs a directory");
        return NULL;
    }
    fs_storage *s = sdo_calloc(1, sizeof *s);
    s->base.ops = &fs_ops;
    s->root = sdo_strdup(root);
    size_t n = strlen(s->root);
    while (n > 1 && s->root[n - 1] == '/')
        s->root[--n] = 0;
    /* mkdir -p root */
    for (char *c = s->root + 1;; c++) {
        if (*c == '/' || *c == 0) {
            char saved = *c;
            *c = 0;
            if (mkdir(s->root, 0700) != 0 && errno != EEXIST) {
                fs_fail(s, err, errno, "cannot create directory", s->root);
                *c = saved;
                fs_free(&s->base);
                return NULL;
            }
            *c = saved;
            if (!saved)
                break;
        }
    }
    struct stat st;
    if (stat(s->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "filesystem storage %s is not a directory", s->root);
        fs_free(&s->base);
        return NULL;
    }
    return &s->base;
}
