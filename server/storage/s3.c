/* The S3 storage backend: objects in a bucket over HTTP(S) with libcurl, every request signed
 * with AWS Signature Version 4 (sigv4.c). Objects smaller than one part go up in a single
 * PUT; larger ones as a multipart upload, one part in memory at a time, made visible only by
 * CompleteMultipartUpload. Reads are ranged GETs of one part's size. Transport errors and 5xx
 * answers are tried three times with back-off, then reported as UNAVAILABLE. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "storage/sigv4.h"
#include "storage/storage.h"
#include "util/buf.h"

#define S3_MIN_PART ((size_t)5 << 20)
#define S3_MAX_PART ((size_t)5 << 30)
#define S3_MAX_PARTS 10000
#define S3_TRIES 3
#define S3_BACKOFF_MS 250
#define S3_XML_LIMIT ((size_t)4 << 20) /* error and listing bodies */

typedef struct s3_storage {
    storage base;
    char *endpoint;  /* as configured, for messages */
    char *scheme;    /* "http" or "https" */
    char *host;      /* host[:port] of the endpoint */
    char *base_path; /* path of the endpoint without a trailing slash, usually "" */
    char *region;
    char *bucket;
    char *prefix; /* "" or ending in '/' */
    char *access_key;
    char *secret_key;
    char *ca_file;
    size_t part_size;
    int path_style;
    int list_page_size;
} s3_storage;

/* One S3 request and what came back. */
typedef struct s3_call {
    const char *method;
    const char *key; /* the object key without the storage prefix; NULL for the bucket */
    sigv4_pair query[5];
    size_t nquery;
    const void *body; /* PUT/POST body, or NULL */
    size_t body_len;
    char range[64];       /* "bytes=A-B" or "" */
    const char *if_match; /* ETag the object must still have, or NULL */
    int embedded_error;   /* a 200 answer may carry <Error> (CompleteMultipartUpload) */
    size_t resp_limit;    /* cap of the response body; 0 = S3_XML_LIMIT */

    long status;
    sdo_buf resp;
    char etag[256];
} s3_call;

struct storage_writer {
    s3_storage *s;
    CURL *h;
    char *key;
    unsigned char *buf; /* the part being filled */
    size_t len, cap;
    char *upload_id; /* set once the first full part went up */
    char **etags;
    int nparts;
    int failed;
};

struct storage_reader {
    s3_storage *s;
    CURL *h;
    char *key;
    char etag[256];
    int64_t size, off;
    s3_call chunk; /* chunk.resp holds the current range */
    size_t pos;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small XML helpers (S3 answers are flat and predictable) ------------------------------ */

/* Text of the first <tag>...</tag> at or after *from, entities decoded, or NULL. Advances *from
 * past the closing tag. Caller frees. */
static char *xml_take(const char **from, const char *end, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(*from, open);
    if (!a || (end && a >= end))
        return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b || (end && b > end))
        return NULL;
    *from = b + strlen(close);
    char *out = sdo_malloc((size_t)(b - a) + 1), *o = out;
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (const char *p = a; p < b;) {
        if (*p == '&') {
            size_t i;
            for (i = 0; i < sizeof ents / sizeof ents[0]; i++) {
                size_t n = strlen(ents[i].ent);
                if ((size_t)(b - p) >= n && strncmp(p, ents[i].ent, n) == 0) {
                    *o++ = ents[i].c;
                    p += n;
                    break;
                }
            }
            if (i < sizeof ents / sizeof ents[0])
                continue;
            if (p[1] == '#') {
                char *e;
                long v = p[2] == 'x' ? strtol(p + 3, &e, 16) : strtol(p + 2, &e, 10);
                if (e < b && *e == ';' && v > 0 && v < 128) {
                    *o++ = (char)v;
                    p = e + 1;
                    continue;
                }
            }
        }
        *o++ = *p++;
    }
    *o = 0;
    return out;
}

static char *xml_get(const char *xml, const char *tag)
{
    const char *p = xml;
    return xml ? xml_take(&p, NULL, tag) : NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    s3_call *c = arg;
    size_t n = size * nmemb;
    if (sdo_buf_append(&c->resp, ptr, n) != 0)
        return 0; /* larger than expected: curl fails the transfer */
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    s3_call *c = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncasecmp(ptr, "etag:", 5) == 0) {
        const char *v = ptr + 5;
        size_t len = n - 5;
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len < sizeof c->etag) {
            memcpy(c->etag, v, len);
            c->etag[len] = 0;
        }
    }
    return n;
}

static void hex32(const unsigned char *in, char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[64] = 0;
}

static const char *shown_key(const s3_call *c)
{
    return c->key ? c->key : "(bucket)";
}

/* Fills err from a finished call that did not succeed. */
static int call_error(s3_storage *s, const s3_call *c, CURLcode cc, const char *curl_msg,
                      sdo_error *err)
{
    if (cc != CURLE_OK)
        return sdo_fail(err, SDO_UNAVAILABLE,
                        "s3 storage %s: %s %s in bucket %s: cannot reach the endpoint after %d "
                        "tries: %s",
                        s->endpoint, c->method, shown_key(c), s->bucket, S3_TRIES,
                        curl_msg[0] ? curl_msg : curl_easy_strerror(cc));
    char *code = xml_get(c->resp.data, "Code");
    char *msg = xml_get(c->resp.data, "Message");
    char detail[300];
    snprintf(detail, sizeof detail, "HTTP %ld%s%s%s%s", c->status, code ? " " : "",
             code ? code : "", msg ? ": " : "", msg ? msg : "");
    free(code);
    free(msg);
    sdo_status st;
    if (c->status == 404)
        st = SDO_NOT_FOUND;
    else if (c->status == 403 || c->status == 401)
        st = SDO_PERMISSION_DENIED;
    else if (c->status >= 500 || c->status == 200)
        st = SDO_UNAVAILABLE; /* 200 here: an <Error> inside a 200 answer */
    else
        st = SDO_INTERNAL;
    if (st == SDO_NOT_FOUND && c->key)
        return sdo_fail(err, st, "s3 storage %s: no object %s in bucket %s (%s)", s->endpoint,
                        c->key, s->bucket, detail);
    if (st == SDO_PERMISSION_DENIED)
        return sdo_fail(err, st,
                        "s3 storage %s: %s %s in bucket %s: credentials refused (%s); check "
                        "backup.s3_access_key and backup.s3_secret_key",
                        s->endpoint, c->method, shown_key(c), s->bucket, detail);
    return sdo_fail(err, st, "s3 storage %s: %s %s in bucket %s: %s", s->endpoint, c->method,
                    shown_key(c), s->bucket, detail);
}

static int retryable(const s3_call *c, CURLcode cc)
{
    if (cc != CURLE_OK)
        return 1;
    if (c->status >= 500)
        return 1;
    if (c->embedded_error && c->status == 200 && c->resp.data && strstr(c->resp.data, "<Error>"))
        return 1;
    return 0;
}

static int call_ok(const s3_call *c)
{
    if (c->status < 200 || c->status > 299)
        return 0;
    if (c->embedded_error && c->resp.data && strstr(c->resp.data, "<Error>"))
        return 0;
    return 1;
}

/* Sends c with up to S3_TRIES tries; 0 on a 2xx answer, else a negative status with err
 * filled. h is reset and reused. */
static int s3_perform(s3_storage *s, CURL *h, s3_call *c, sdo_error *err)
{
    char *enc_key = NULL;
    if (c->key) {
        size_t n = strlen(s->prefix) + strlen(c->key) + 1;
        char *full = sdo_malloc(n);
        snprintf(full, n, "%s%s", s->prefix, c->key);
        enc_key = sigv4_uri_encode(full, 1);
        free(full);
    }
    sdo_buf path = {.limit = 1 << 16}, host = {.limit = 1 << 12}, url = {.limit = 1 << 17};
    if (s->path_style) {
        sdo_buf_printf(&host, "%s", s->host);
        sdo_buf_printf(&path, "%s/%s%s%s", s->base_path, s->bucket, enc_key ? "/" : "",
                       enc_key ? enc_key : "");
    } else {
        sdo_buf_printf(&host, "%s.%s", s->bucket, s->host);
        sdo_buf_printf(&path, "%s/%s", s->base_path, enc_key ? enc_key : "");
    }
    free(enc_key);
    char *query = sigv4_canonical_query(c->query, c->nquery);
    sdo_buf_printf(&url, "%s://%s%s%s%s", s->scheme, host.data, path.data,
                   query && query[0] ? "?" : "", query ? query : "");
    free(query);

    char payload_hash[65];
    if (c->body) {
        unsigned char d[32];
        sdo_sha256(c->body, c->body_len, d);
        hex32(d, payload_hash);
    } else {
        sdo_strlcpy(payload_hash, SIGV4_EMPTY_SHA256, sizeof payload_hash);
    }

    int rc = 0;
    CURLcode cc = CURLE_OK;
    char curl_msg[CURL_ERROR_SIZE];
    for (int attempt = 0; attempt < S3_TRIES; attempt++) {
        if (attempt > 0) {
            long ms = (long)S3_BACKOFF_MS << (attempt - 1);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
        sdo_buf_free(&c->resp);
        c->resp.limit = c->resp_limit ? c->resp_limit : S3_XML_LIMIT;
        c->status = 0;
        c->etag[0] = 0;
        curl_msg[0] = 0;

        char amz_date[17];
        sigv4_amz_date((long long)time(NULL), amz_date);
        sigv4_pair hdrs[6];
        size_t nh = 0;
        hdrs[nh++] = (sigv4_pair){"host", host.data};
        hdrs[nh++] = (sigv4_pair){"x-amz-content-sha256", payload_hash};
        hdrs[nh++] = (sigv4_pair){"x-amz-date", amz_date};
        if (c->range[0])
            hdrs[nh++] = (sigv4_pair){"range", c->range};
        if (c->if_match)
            hdrs[nh++] = (sigv4_pair){"if-match", c->if_match};
        sigv4_request sr = {
            .method = c->method,
            .path = path.data,
            .query = c->query,
            .nquery = c->nquery,
            .headers = hdrs,
            .nheaders = nh,
            .payload_hash = payload_hash,
            .amz_date = amz_date,
            .region = s->region,
            .service = "s3",
            .access_key = s->access_key,
            .secret_key = s->secret_key,
        };
        char *auth = sigv4_authorization(&sr);
        if (!auth) {
            rc = sdo_fail(err, SDO_INTERNAL, "s3 storage %s: %s %s: cannot sign the request",
                          s->endpoint, c->method, shown_key(c));
            goto out;
        }
        struct curl_slist *list = NULL;
        char line[1024];
        for (size_t i = 0; i < nh; i++) {
            snprintf(line, sizeof line, "%s: %s", hdrs[i].name, hdrs[i].value);
            list = curl_slist_append(list, line);
        }
        snprintf(line, sizeof line, "Authorization: %s", auth);
        list = curl_slist_append(list, line);
        list = curl_slist_append(list, "Expect:");
        list = curl_slist_append(list, "Content-Type:");
        free(auth);

        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url.data);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
        if (s->ca_file[0])
            curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
        if (strcmp(c->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(c->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
            if (c->body || strcmp(c->method, "DELETE") != 0) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
            }
        }
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
        curl_slist_free_all(list);
        if (cc == CURLE_WRITE_ERROR && c->resp.overflow) {
            rc = sdo_fail(err, SDO_INTERNAL,
                          "s3 storage %s: %s %s in bucket %s: the answer is larger than %zu "
                          "bytes",
                          s->endpoint, c->method, shown_key(c), s->bucket, c->resp.limit);
            goto out;
        }
        if (!retryable(c, cc))
            break;
    }
    if (cc != CURLE_OK || !call_ok(c))
        rc = call_error(s, c, cc, curl_msg, err);
out:
    sdo_buf_free(&path);
    sdo_buf_free(&host);
    sdo_buf_free(&url);
    return rc;
}

static CURL *new_handle(s3_storage *s, sdo_error *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        sdo_fail(err, SDO_INTERNAL, "s3 storage %s: cannot create an HTTP handle", s->endpoint);
    return h;
}

static int bad_key(s3_storage *s, const char *key, sdo_error *err)
{
    return sdo_fail_field(err, "key",
                          "s3 storage %s: key '%.200s' must be a relative path of "
                          "[A-Za-z0-9._/-] components that do not start with '.'",
                          s->endpoint, key);
}

/* ---- writer ------------------------------------------------------------------------------- */

static void writer_free(storage_writer *w)
{
    for (int i = 0; i < w->nparts; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->upload_id);
    free(w->buf);
    free(w->key);
    if (w->h)
        curl_easy_cleanup(w->h);
    free(w);
}

/* A handle for a request on key, after checking the key. */
static CURL *key_handle(s3_storage *s, const char *key, sdo_error *err)
{
    if (!storage_key_ok(key)) {
        bad_key(s, key, err);
        return NULL;
    }
    return new_handle(s, err);
}

static storage_writer *s3_create(storage *base, const char *key, sdo_error *err)
{
    s3_storage *s = (s3_storage *)base;
    CURL *h = key_handle(s, key, err);
    if (!h)
        return NULL;
    storage_writer *w = sdo_calloc(1, sizeof *w);
    w->s = s;
    w->h = h;
    w->key = sdo_strdup(key);
    return w;
}

static int start_upload(storage_writer *w, sdo_error *err)
{
    s3_call c = {.method = "POST", .key = w->key, .nquery = 1};
    c.query[0] = (sigv4_pair){"uploads", ""};
    int rc = s3_perform(w->s, w->h, &c, err);
    if (rc == 0) {
        w->upload_id = xml_get(c.resp.data, "UploadId");
        if (!w->upload_id || !w->upload_id[0])
            rc = sdo_fail(err, SDO_INTERNAL,
                          "s3 storage %s: POST %s?uploads in bucket %s: no UploadId in the "
                          "answer",
                          w->s->endpoint, w->key, w->s->bucket);
    }
    sdo_buf_free(&c.resp);
    return rc;
}

static int upload_part(storage_writer *w, sdo_error *err)
{
    if (w->nparts >= S3_MAX_PARTS)
        return sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                        "s3 storage %s: object %s is larger than %d parts of %zu MiB; raise "
                        "backup.s3_part_size_mb",
                        w->s->endpoint, w->key, S3_MAX_PARTS, w->s->part_size >> 20);
    if (!w->upload_id) {
        int rc = start_upload(w, err);
        if (rc)
            return rc;
    }
    char num[16];
    snprintf(num, sizeof num, "%d", w->nparts + 1);
    s3_call c = {.method = "PUT", .key = w->key, .nquery = 2, .body = w->buf, .body_len = w->len};
    c.query[0] = (sigv4_pair){"partNumber", num};
    c.query[1] = (sigv4_pair){"uploadId", w->upload_id};
    int rc = s3_perform(w->s, w->h, &c, err);
    if (rc == 0 && !c.etag[0])
        rc = sdo_fail(err, SDO_INTERNAL,
                      "s3 storage %s: part %s of %s in bucket %s: no ETag in the answer",
                      w->s->endpoint, num, w->key, w->s->bucket);
    if (rc == 0) {
        if (w->nparts % 64 == 0) {
            char **e = realloc(w->etags, (size_t)(w->nparts + 64) * sizeof *e);
            if (!e)
                abort();
            w->etags = e;
        }
        w->etags[w->nparts++] = sdo_strdup(c.etag);
        w->len = 0;
    }
    sdo_buf_free(&c.resp);
    return rc;
}

static int s3_write(storage_writer *w, const void *buf, size_t n, sdo_error *err)
{
    s3_storage *s = w->s;
    if (w->failed)
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "s3 storage %s: writing %s failed earlier",
                        s->endpoint, w->key);
    const unsigned char *p = buf;
    while (n > 0) {
        size_t take = s->part_size - w->len;
        if (take > n)
            take = n;
        if (w->len + take > w->cap) {
            size_t cap = w->cap ? w->cap : 64 * 1024;
            while (cap < w->len + take)
                cap *= 2;
            if (cap > s->part_size)
                cap = s->part_size;
            unsigned char *nb = realloc(w->buf, cap);
            if (!nb) {
                w->failed = 1;
                return sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                                "s3 storage %s: no memory for a part of %s", s->endpoint, w->key);
            }
            w->buf = nb;
            w->cap = cap;
        }
        memcpy(w->buf + w->len, p, take);
        w->len += take;
        p += take;
        n -= take;
        if (w->len == s->part_size) {
            int rc = upload_part(w, err);
            if (rc) {
                w->failed = 1;
                return rc;
            }
        }
    }
    return 0;
}

static void abort_upload(storage_writer *w)
{
    if (!w->upload_id)
        return;
    s3_call c = {.method = "DELETE", .key = w->key, .nquery = 1};
    c.query[0] = (sigv4_pair){"uploadId", w->upload_id};
    sdo_error ignored;
    s3_perform(w->s, w->h, &c, &ignored);
    sdo_buf_free(&c.resp);
}

static void s3_abort(storage_writer *w)
{
    if (!w)
        return;
    abort_upload(w);
    writer_free(w);
}

static int complete_upload(storage_writer *w, sdo_error *err)
{
    sdo_buf body = {.limit = (size_t)S3_MAX_PARTS * 400};
    sdo_buf_puts(&body,
                 "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 0; i < w->nparts; i++)
        sdo_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                       w->etags[i]);
    sdo_buf_puts(&body, "</CompleteMultipartUpload>");
    if (body.overflow) {
        sdo_buf_free(&body);
        return sdo_fail(err, SDO_INTERNAL, "s3 storage %s: completing %s: too many parts",
                        w->s->endpoint, w->key);
    }
    s3_call c = {.method = "POST",
                 .key = w->key,
                 .nquery = 1,
                 .body = body.data,
                 .body_len = body.len,
                 .embedded_error = 1};
    c.query[0] = (sigv4_pair){"uploadId", w->upload_id};
    int rc = s3_perform(w->s, w->h, &c, err);
    sdo_buf_free(&c.resp);
    sdo_buf_free(&body);
    return rc;
}

static int s3_commit(storage_writer *w, sdo_error *err)
{
    s3_storage *s = w->s;
    int rc;
    if (w->failed) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION, "s3 storage %s: writing %s failed earlier",
                      s->endpoint, w->key);
        goto fail;
    }
    if (!w->upload_id) {
        /* Smaller than a part: one PUT makes it visible at once. */
        s3_call c = {.method = "PUT",
                     .key = w->key,
                     .body = w->buf ? (const void *)w->buf : "",
                     .body_len = w->len};
        rc = s3_perform(s, w->h, &c, err);
        sdo_buf_free(&c.resp);
        if (rc)
            goto fail;
        writer_free(w);
        return 0;
    }
    if (w->len > 0 && (rc = upload_part(w, err)) != 0)
        goto fail;
    if ((rc = complete_upload(w, err)) != 0)
        goto fail;
    writer_free(w);
    return 0;
fail:
    s3_abort(w);
    return rc;
}

/* ---- reader, stat, remove, list ----------------------------------------------------------- */

static int head_object(s3_storage *s, CURL *h, const char *key, int64_t *size, char *etag,
                       size_t etagsz, sdo_error *err)
{
    s3_call c = {.method = "HEAD", .key = key};
    int rc = s3_perform(s, h, &c, err);
    if (rc == 0) {
        curl_off_t len = -1;
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        if (len < 0)
            rc = sdo_fail(err, SDO_INTERNAL,
                          "s3 storage %s: HEAD %s in bucket %s: no Content-Length in the answer",
                          s->endpoint, key, s->bucket);
        *size = (int64_t)len;
        if (etag)
            sdo_strlcpy(etag, c.etag, etagsz);
    }
    sdo_buf_free(&c.resp);
    return rc;
}

static storage_reader *s3_open(storage *base, const char *key, sdo_error *err)
{
    s3_storage *s = (s3_storage *)base;
    CURL *h = key_handle(s, key, err);
    if (!h)
        return NULL;
    storage_reader *r = sdo_calloc(1, sizeof *r);
    r->s = s;
    r->h = h;
    r->key = sdo_strdup(key);
    if (head_object(s, h, key, &r->size, r->etag, sizeof r->etag, err) != 0) {
        curl_easy_cleanup(h);
        free(r->key);
        free(r);
        return NULL;
    }
    return r;
}

static ssize_t s3_read(storage_reader *r, void *buf, size_t n, sdo_error *err)
{
    s3_storage *s = r->s;
    if (r->pos == r->chunk.resp.len) {
        if (r->off >= r->size)
            return 0;
        int64_t last = r->off + (int64_t)s->part_size - 1;
        if (last > r->size - 1)
            last = r->size - 1;
        s3_call *c = &r->chunk;
        sdo_buf keep = c->resp;
        *c = (s3_call){.method = "GET", .key = r->key, .resp = keep};
        c->resp.len = 0;
        c->resp_limit = s->part_size + 1;
        c->if_match = r->etag[0] ? r->etag : NULL;
        snprintf(c->range, sizeof c->range, "bytes=%lld-%lld", (long long)r->off, (long long)last);
        r->pos = 0;
        if (s3_perform(s, r->h, c, err) != 0) {
            c->resp.len = 0;
            return -1;
        }
        size_t want = (size_t)(last - r->off + 1);
        if (c->resp.len != want || (c->status != 206 && r->off != 0)) {
            sdo_fail(err, SDO_INTERNAL,
                     "s3 storage %s: GET %s in bucket %s: asked bytes %lld-%lld, got %zu bytes "
                     "(HTTP %ld); the object changed while being read",
                     s->endpoint, r->key, s->bucket, (long long)r->off, (long long)last,
                     c->resp.len, c->status);
            c->resp.len = 0;
            return -1;
        }
        r->off = last + 1;
    }
    size_t avail = r->chunk.resp.len - r->pos;
    if (n > avail)
        n = avail;
    memcpy(buf, r->chunk.resp.data + r->pos, n);
    r->pos += n;
    return (ssize_t)n;
}

static void s3_close(storage_reader *r)
{
    if (!r)
        return;
    sdo_buf_free(&r->chunk.resp);
    curl_easy_cleanup(r->h);
    free(r->key);
    free(r);
}

static int s3_stat(storage *base, const char *key, int64_t *size, sdo_error *err)
{
    s3_storage *s = (s3_storage *)base;
    if (!storage_key_ok(key))
        return bad_key(s, key, err);
    CURL *h = new_handle(s, err);
    if (!h)
        return -SDO_INTERNAL;
    int rc = head_object(s, h, key, size, NULL, 0, err);
    curl_easy_cleanup(h);
    return rc;
}

static int s3_remove(storage *base, const char *key, sdo_error *err)
{
    s3_storage *s = (s3_storage *)base;
    if (!storage_key_ok(key))
        return bad_key(s, key, err);
    CURL *h = new_handle(s, err);
    if (!h)
        return -SDO_INTERNAL;
    s3_call c = {.method = "DELETE", .key = key};
    int rc = s3_perform(s, h, &c, err);
    if (rc == -SDO_NOT_FOUND)
        rc = 0;
    sdo_buf_free(&c.resp);
    curl_easy_cleanup(h);
    return rc;
}

static int s3_list(storage *base, const char *prefix, storage_list_fn fn, void *arg, sdo_error *err)
{
    s3_storage *s = (s3_storage *)base;
    if (!prefix)
        prefix = "";
    if (strlen(prefix) > 1024)
        return sdo_fail_field(err, "prefix", "s3 storage %s: prefix is longer than 1024 bytes",
                              s->endpoint);
    CURL *h = new_handle(s, err);
    if (!h)
        return -SDO_INTERNAL;
    size_t n = strlen(s->prefix) + strlen(prefix) + 1;
    char *full = sdo_malloc(n);
    snprintf(full, n, "%s%s", s->prefix, prefix);
    size_t plen = strlen(s->prefix);
    char max_keys[16];
    snprintf(max_keys, sizeof max_keys, "%d", s->list_page_size);
    char *token = NULL;
    int rc = 0, stop = 0;
    do {
        s3_call c = {.method = "GET"};
        c.query[c.nquery++] = (sigv4_pair){"list-type", "2"};
        c.query[c.nquery++] = (sigv4_pair){"prefix", full};
        if (s->list_page_size > 0)
            c.query[c.nquery++] = (sigv4_pair){"max-keys", max_keys};
        if (token)
            c.query[c.nquery++] = (sigv4_pair){"continuation-token", token};
        rc = s3_perform(s, h, &c, err);
        free(token);
        token = NULL;
        if (rc) {
            sdo_buf_free(&c.resp);
            break;
        }
        const char *p = c.resp.data ? c.resp.data : "";
        const char *contents;
        while (!stop && (contents = strstr(p, "<Contents>")) != NULL) {
            const char *end = strstr(contents, "</Contents>");
            if (!end)
                break;
            const char *q = contents;
            char *key = xml_take(&q, end, "Key");
            q = contents;
            char *size = xml_take(&q, end, "Size");
            if (key && size && strncmp(key, s->prefix, plen) == 0 && storage_key_ok(key + plen))
                stop = fn(arg, key + plen, strtoll(size, NULL, 10)) != 0;
            free(key);
            free(size);
            p = end + strlen("</Contents>");
        }
        char *truncated = xml_get(c.resp.data, "IsTruncated");
        if (!stop && truncated && strcmp(truncated, "true") == 0) {
            token = xml_get(c.resp.data, "NextContinuationToken");
            if (!token || !token[0]) {
                rc = sdo_fail(err, SDO_INTERNAL,
                              "s3 storage %s: listing %s in bucket %s: a truncated page without "
                              "NextContinuationToken",
                              s->endpoint, full, s->bucket);
                free(token);
                token = NULL;
            }
        }
        free(truncated);
        sdo_buf_free(&c.resp);
    } while (token);
    free(full);
    curl_easy_cleanup(h);
    return rc;
}

static void s3_free(storage *base)
{
    s3_storage *s = (s3_storage *)base;
    if (!s)
        return;
    free(s->endpoint);
    free(s->scheme);
    free(s->host);
    free(s->base_path);
    free(s->region);
    free(s->bucket);
    free(s->prefix);
    if (s->secret_key)
        memset(s->secret_key, 0, strlen(s->secret_key));
    free(s->access_key);
    free(s->secret_key);
    free(s->ca_file);
    free(s);
}

static const storage_ops s3_ops = {
    .name = "s3",
    .create = s3_create,
    .write = s3_write,
    .commit = s3_commit,
    .abort = s3_abort,
    .open = s3_open,
    .read = s3_read,
    .close = s3_close,
    .stat = s3_stat,
    .remove = s3_remove,
    .list = s3_list,
    .free = s3_free,
};

static int bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (const char *c = b; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
            return 0;
    return 1;
}

storage *storage_s3_new(const storage_s3_config *cfg, sdo_error *err)
{
    const char *ep = cfg->endpoint ? cfg->endpoint : "";
    const char *rest;
    const char *scheme;
    if (strncmp(ep, "https://", 8) == 0) {
        scheme = "https";
        rest = ep + 8;
    } else if (strncmp(ep, "http://", 7) == 0) {
        scheme = "http";
        rest = ep + 7;
    } else {
        sdo_fail_field(err, "backup.s3_endpoint",
                       "backup.s3_endpoint '%.200s' must start with https:// or http://", ep);
        return NULL;
    }
    size_t hostlen = strcspn(rest, "/?#");
    if (hostlen == 0 || rest[hostlen] == '?' || rest[hostlen] == '#') {
        sdo_fail_field(err, "backup.s3_endpoint",
                       "backup.s3_endpoint '%.200s' must be scheme://host[:port][/path] without "
                       "a query",
                       ep);
        return NULL;
    }
    if (!cfg->bucket || !bucket_ok(cfg->bucket)) {
        sdo_fail_field(err, "backup.s3_bucket",
                       "backup.s3_bucket '%.100s' must be 3 to 63 characters of [a-z0-9.-]",
                       cfg->bucket ? cfg->bucket : "");
        return NULL;
    }
    if (!cfg->region || !cfg->region[0]) {
        sdo_fail_field(err, "backup.s3_region", "backup.s3_region must not be empty");
        return NULL;
    }
    if (!cfg->access_key || !cfg->access_key[0] || !cfg->secret_key || !cfg->secret_key[0]) {
        sdo_fail_field(err,
                       cfg->access_key && cfg->access_key[0] ? "backup.s3_secret_key"
                                                             : "backup.s3_access_key",
                       "S3 storage needs backup.s3_access_key and backup.s3_secret_key");
        return NULL;
    }
    if (cfg->part_size < S3_MIN_PART || cfg->part_size > S3_MAX_PART) {
        sdo_fail_field(err, "backup.s3_part_size_mb",
                       "backup.s3_part_size_mb must be between 5 and 5120 (S3's part limits)");
        return NULL;
    }
    const char *prefix = cfg->prefix ? cfg->prefix : "";
    while (*prefix == '/')
        prefix++;
    if (strlen(prefix) > 100) {
        sdo_fail_field(err, "backup.s3_prefix", "backup.s3_prefix is longer than 100 bytes");
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);

    s3_storage *s = sdo_calloc(1, sizeof *s);
    s->base.ops = &s3_ops;
    s->endpoint = sdo_strdup(ep);
    s->scheme = sdo_strdup(scheme);
    s->host = sdo_malloc(hostlen + 1);
    memcpy(s->host, rest, hostlen);
    s->host[hostlen] = 0;
    s->base_path = sdo_strdup(rest + hostlen);
    size_t bl = strlen(s->base_path);
    while (bl > 0 && s->base_path[bl - 1] == '/')
        s->base_path[--bl] = 0;
    s->region = sdo_strdup(cfg->region);
    s->bucket = sdo_strdup(cfg->bucket);
    size_t pl = strlen(prefix);
    s->prefix = sdo_malloc(pl + 2);
    snprintf(s->prefix, pl + 2, "%s%s", prefix, pl && prefix[pl - 1] != '/' ? "/" : "");
    s->access_key = sdo_strdup(cfg->access_key);
    s->secret_key = sdo_strdup(cfg->secret_key);
    s->ca_file = sdo_strdup(cfg->ca_file ? cfg->ca_file : "");
    s->part_size = cfg->part_size;
    s->path_style = cfg->path_style;
    s->list_page_size =
        cfg->list_page_size > 0 && cfg->list_page_size <= 1000 ? cfg->list_page_size : 0;
    return &s->base;
}
