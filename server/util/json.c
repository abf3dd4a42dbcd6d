/* A strict JSON parser (RFC 8259): recursive descent into a tree allocated from one arena per
 * document, so a document is freed in one call. Objects keep their members in document
 * order and, for lookups and the duplicate-key check, sorted by key. */
#include "util/json.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_value {
    json_type type;
    const char *key; /* when a member of an object: its key (NUL-terminated) */
    size_t keylen;
    size_t keyoff;    /* byte offset of the key in the input, for error messages */
    json_value *next; /* next sibling while the container is being parsed */
    union {
        struct {
            double d;
            int64_t i;
            bool is_int;
        } num;
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            json_value **items;  /* document order */
            json_value **sorted; /* objects: by key */
            size_t n;
        } c;
    } u;
};

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct chunk {
    struct chunk *next;
    size_t cap;
    size_t used;
} chunk;

#define CHUNK_HDR ((sizeof(chunk) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))
#define CHUNK_MAX_FIRST (64u * 1024)

/* The root is the first member, so json_free() finds the arena from the root. */
typedef struct json_doc {
    json_value root;
    chunk *chunks;
    size_t next_cap;
} json_doc;

static void *arena_alloc(json_doc *d, size_t n)
{
    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = d->next_cap > n ? d->next_cap : n;
        c = sdo_malloc(CHUNK_HDR + cap);
        c->cap = cap;
        c->used = 0;
        c->next = d->chunks;
        d->chunks = c;
        d->next_cap = cap * 2;
    }
    void *p = (unsigned char *)c + CHUNK_HDR + c->used;
    c->used += n;
    return p;
}

/* ---- parser ----------------------------------------------------------------------------- */

typedef struct parser {
    const unsigned char *start, *p, *end;
    int depth, max_depth;
    json_doc *doc;
    sdo_error *err;
} parser;

static int fail(parser *ps, const unsigned char *at, const char *reason, const char *what)
{
    sdo_fail(ps->err, SDO_INVALID_ARGUMENT, "invalid JSON at byte %zu: %s",
             (size_t)(at - ps->start), what);
    sdo_error_reason(ps->err, reason);
    return -1;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int parse_value(parser *ps, json_value *v);

static int literal(parser *ps, const char *word, json_type type, json_value *v)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, ps->p, "MALFORMED_JSON", "unexpected character");
    ps->p += n;
    v->type = type;
    return 0;
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    size_t avail = (size_t)(end - s);
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses the string starting at the opening quote into a NUL-terminated arena copy. Escapes
 * only shrink text, so the raw length bounds the decoded one. */
static int parse_string(parser *ps, char **out, size_t *outlen)
{
    const unsigned char *open = ps->p;
    const unsigned char *q = open + 1;
    while (q < ps->end && *q != '"') {
        if (*q == '\\' && q + 1 < ps->end)
            q++;
        q++;
    }
    if (q >= ps->end)
        return fail(ps, open, "MALFORMED_JSON", "unterminated string");

    char *buf = arena_alloc(ps->doc, (size_t)(q - open));
    size_t n = 0;
    const unsigned char *s = open + 1;
    while (s < q) {
        unsigned char c = *s;
        if (c < 0x20)
            return fail(ps, s, "MALFORMED_JSON", "control character in string");
        if (c == '\\') {
            unsigned char e = s[1];
            s += 2;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                buf[n++] = (char)e;
                break;
            case 'b':
                buf[n++] = '\b';
                break;
            case 'f':
                buf[n++] = '\f';
                break;
            case 'n':
                buf[n++] = '\n';
                break;
            case 'r':
                buf[n++] = '\r';
                break;
            case 't':
                buf[n++] = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (q - s < 4 || hex4(s, &cp) < 0)
                    return fail(ps, s - 2, "MALFORMED_JSON", "bad \\u escape");
                s += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail(ps, s - 6, "MALFORMED_JSON", "lone low surrogate");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return fail(ps, s - 6, "MALFORMED_JSON", "lone high surrogate");
                    s += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                n += put_utf8(buf + n, cp);
                break;
            }
            default:
                return fail(ps, s - 2, "MALFORMED_JSON", "bad escape");
            }
            continue;
        }
        size_t k = utf8_seq(s, q);
        if (k == 0)
            return fail(ps, s, "MALFORMED_JSON", "invalid UTF-8");
        memcpy(buf + n, s, k);
        n += k;
        s += k;
    }
    buf[n] = 0;
    ps->p = q + 1;
    *out = buf;
    *outlen = n;
    return 0;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Exact integer value of the decimal digits sig[0..n) times 10^e10, if it fits int64_t. */
static bool exact_int(const unsigned char *sig, size_t n, int64_t e10, bool neg, int64_t *out)
{
    while (n > 0 && sig[0] == '0') {
        sig++;
        n--;
    }
    if (n == 0) {
        *out = 0;
        return true;
    }
    while (sig[n - 1] == '0') {
        n--;
        e10++;
    }
    if (e10 < 0 || (int64_t)n + e10 > 19)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (size_t i = 0; i < n + (size_t)e10; i++) {
        unsigned d = i < n ? (unsigned)(sig[i] - '0') : 0;
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static int parse_number(parser *ps, json_value *v)
{
    const unsigned char *s = ps->p, *q = s, *end = ps->end;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    const unsigned char *int_start = q;
    if (q < end && *q == '0') {
        q++;
    } else if (q < end && *q >= '1' && *q <= '9') {
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    } else {
        return fail(ps, q, "MALFORMED_JSON", "bad number");
    }
    const unsigned char *int_end = q, *frac_start = q, *frac_end = q;
    if (q < end && *q == '.') {
        frac_start = ++q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        frac_end = q;
        if (frac_end == frac_start)
            return fail(ps, q, "MALFORMED_JSON", "bad number: digits must follow '.'");
    }
    int64_t exp10 = 0;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        bool eneg = false;
        if (q < end && (*q == '+' || *q == '-'))
            eneg = *q++ == '-';
        if (q >= end || *q < '0' || *q > '9')
            return fail(ps, q, "MALFORMED_JSON", "bad number: digits must follow the exponent");
        while (q < end && *q >= '0' && *q <= '9') {
            if (exp10 < 1000000000)
                exp10 = exp10 * 10 + (*q - '0');
            q++;
        }
        if (eneg)
            exp10 = -exp10;
    }
    size_t len = (size_t)(q - s);

    /* The double, converted by the C library in the C locale from a terminated copy. */
    char small[64];
    char *copy = len < sizeof small ? small : arena_alloc(ps->doc, len + 1);
    memcpy(copy, s, len);
    copy[len] = 0;
    pthread_once(&c_locale_once, c_locale_init);
    double d = c_locale ? strtod_l(copy, NULL, c_locale) : strtod(copy, NULL);
    if (isinf(d))
        return fail(ps, s, "MALFORMED_JSON", "number out of range");

    /* The digits without the point, to decide exactly whether the value is an integer. */
    size_t nint = (size_t)(int_end - int_start), nfrac = (size_t)(frac_end - frac_start);
    unsigned char dsmall[64];
    unsigned char *digits =
        nint + nfrac <= sizeof dsmall ? dsmall : arena_alloc(ps->doc, nint + nfrac);
    memcpy(digits, int_start, nint);
    memcpy(digits + nint, frac_start, nfrac);

    v->type = JSON_NUMBER;
    v->u.num.d = d;
    v->u.num.is_int = exact_int(digits, nint + nfrac, exp10 - (int64_t)nfrac, neg, &v->u.num.i);
    ps->p = q;
    return 0;
}

/* Builds the items array of a container from its sibling list. */
static json_value **collect(parser *ps, json_value *first, size_t n)
{
    json_value **items = arena_alloc(ps->doc, (n ? n : 1) * sizeof *items);
    size_t i = 0;
    for (json_value *c = first; c; c = c->next)
        items[i++] = c;
    return items;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

static int member_cmp(const void *x, const void *y)
{
    const json_value *a = *(const json_value *const *)x, *b = *(const json_value *const *)y;
    int r = key_cmp(a->key, a->keylen, b->key, b->keylen);
    if (r)
        return r;
    return a->keyoff < b->keyoff ? -1 : a->keyoff > b->keyoff;
}

static int enter(parser *ps)
{
    if (++ps->depth > ps->max_depth) {
        fail(ps, ps->p, "JSON_TOO_DEEP", "nesting is too deep");
        if (ps->err)
            snprintf(ps->err->message, sizeof ps->err->message,
                     "invalid JSON at byte %zu: nesting deeper than %d levels",
                     (size_t)(ps->p - ps->start), ps->max_depth);
        return -1;
    }
    return 0;
}

static int parse_array(parser *ps, json_value *v)
{
    if (enter(ps) < 0)
        return -1;
    ps->p++; /* '[' */
    json_value *first = NULL, *last = NULL;
    size_t n = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
    } else {
        for (;;) {
            json_value *e = arena_alloc(ps->doc, sizeof *e);
            memset(e, 0, sizeof *e);
            if (parse_value(ps, e) < 0)
                return -1;
            if (last)
                last->next = e;
            else
                first = e;
            last = e;
            n++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                break;
            }
            return fail(ps, ps->p, "MALFORMED_JSON", "expected ',' or ']'");
        }
    }
    ps->depth--;
    v->type = JSON_ARRAY;
    v->u.c.items = collect(ps, first, n);
    v->u.c.n = n;
    return 0;
}

static int parse_object(parser *ps, json_value *v)
{
    if (enter(ps) < 0)
        return -1;
    const unsigned char *open = ps->p;
    ps->p++; /* '{' */
    json_value *first = NULL, *last = NULL;
    size_t n = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, ps->p, "MALFORMED_JSON", "expected a string key");
            json_value *m = arena_alloc(ps->doc, sizeof *m);
            memset(m, 0, sizeof *m);
            m->keyoff = (size_t)(ps->p - ps->start);
            char *key;
            if (parse_string(ps, &key, &m->keylen) < 0)
                return -1;
            m->key = key;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, ps->p, "MALFORMED_JSON", "expected ':'");
            ps->p++;
            if (parse_value(ps, m) < 0)
                return -1;
            if (last)
                last->next = m;
            else
                first = m;
            last = m;
            n++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            return fail(ps, ps->p, "MALFORMED_JSON", "expected ',' or '}'");
        }
    }
    ps->depth--;
    v->type = JSON_OBJECT;
    v->u.c.items = collect(ps, first, n);
    v->u.c.sorted = collect(ps, first, n);
    v->u.c.n = n;
    if (n > 1)
        qsort(v->u.c.sorted, n, sizeof *v->u.c.sorted, member_cmp);
    for (size_t i = 1; i < n; i++) {
        const json_value *a = v->u.c.sorted[i - 1], *b = v->u.c.sorted[i];
        if (key_cmp(a->key, a->keylen, b->key, b->keylen) == 0) {
            /* Quote the key in the message, printable ASCII only and cut short. */
            char shown[41];
            size_t k = 0;
            for (; k < b->keylen && k < sizeof shown - 1; k++) {
                unsigned char c = (unsigned char)b->key[k];
                shown[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
            }
            shown[k] = 0;
            fail(ps, open, "MALFORMED_JSON", "duplicate key");
            if (ps->err)
                snprintf(ps->err->message, sizeof ps->err->message,
                         "invalid JSON at byte %zu: duplicate key \"%s\"", b->keyoff, shown);
            return -1;
        }
    }
    return 0;
}

static int parse_value(parser *ps, json_value *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "MALFORMED_JSON", "unexpected end of input");
    switch (*ps->p) {
    case '{':
        return parse_object(ps, v);
    case '[':
        return parse_array(ps, v);
    case '"':
        v->type = JSON_STRING;
        return parse_string(ps, &v->u.str.s, &v->u.str.len);
    case 't':
        return literal(ps, "true", JSON_TRUE, v);
    case 'f':
        return literal(ps, "false", JSON_FALSE, v);
    case 'n':
        return literal(ps, "null", JSON_NULL, v);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v);
        return fail(ps, ps->p, "MALFORMED_JSON", "unexpected character");
    }
}

json_value *json_parse(const char *text, size_t len, const json_limits *limits, sdo_error *err)
{
    size_t max_size = limits && limits->max_size ? limits->max_size : JSON_DEFAULT_MAX_SIZE;
    int max_depth = limits && limits->max_depth > 0 ? limits->max_depth : JSON_DEFAULT_MAX_DEPTH;
    if (len > max_size) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "JSON text of %zu bytes is over the limit of %zu", len,
                 max_size);
        sdo_error_reason(err, "JSON_TOO_LARGE");
        return NULL;
    }
    if (!text)
        text = "";
    json_doc *doc = sdo_calloc(1, sizeof *doc);
    doc->next_cap = 512 + 2 * len;
    if (doc->next_cap > CHUNK_MAX_FIRST)
        doc->next_cap = CHUNK_MAX_FIRST;
    parser ps = {
        .start = (const unsigned char *)text,
        .p = (const unsigned char *)text,
        .end = (const unsigned char *)text + len,
        .max_depth = max_depth,
        .doc = doc,
        .err = err,
    };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        fail(&ps, ps.p, "MALFORMED_JSON", "byte order mark");
        goto fail;
    }
    if (parse_value(&ps, &doc->root) < 0)
        goto fail;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail(&ps, ps.p, "MALFORMED_JSON", "unexpected data after the value");
        goto fail;
    }
    return &doc->root;

fail:
    json_free(&doc->root);
    return NULL;
}

void json_free(json_value *root)
{
    if (!root)
        return;
    json_doc *doc = (json_doc *)root;
    chunk *c = doc->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* ---- accessors -------------------------------------------------------------------------- */

json_type json_typeof(const json_value *v)
{
    return v ? v->type : JSON_NONE;
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key)
        return NULL;
    size_t klen = strlen(key), lo = 0, hi = obj->u.c.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const json_value *m = obj->u.c.sorted[mid];
        int r = key_cmp(m->key, m->keylen, key, klen);
        if (r == 0)
            return m;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *json_string(const json_value *v)
{
    if (!v || v->type != JSON_STRING || memchr(v->u.str.s, 0, v->u.str.len))
        return NULL;
    return v->u.str.s;
}

const char *json_string_len(const json_value *v, size_t *len)
{
    if (!v || v->type != JSON_STRING)
        return NULL;
    if (len)
        *len = v->u.str.len;
    return v->u.str.s;
}

bool json_int64(const json_value *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER || !v->u.num.is_int)
        return false;
    *out = v->u.num.i;
    return true;
}

bool json_double(const json_value *v, double *out)
{
    if (!v || v->type != JSON_NUMBER)
        return false;
    *out = v->u.num.d;
    return true;
}

bool json_bool(const json_value *v, bool *out)
{
    if (!v || (v->type != JSON_TRUE && v->type != JSON_FALSE))
        return false;
    *out = v->type == JSON_TRUE;
    return true;
}

bool json_is_null(const json_value *v)
{
    return v && v->type == JSON_NULL;
}

size_t json_array_len(const json_value *arr)
{
    return arr && arr->type == JSON_ARRAY ? arr->u.c.n : 0;
}

const json_value *json_array_at(const json_value *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARRAY || i >= arr->u.c.n)
        return NULL;
    return arr->u.c.items[i];
}

size_t json_object_len(const json_value *obj)
{
    return obj && obj->type == JSON_OBJECT ? obj->u.c.n : 0;
}

const json_value *json_object_at(const json_value *obj, size_t i, const char **key)
{
    if (!obj || obj->type != JSON_OBJECT || i >= obj->u.c.n)
        return NULL;
    if (key)
        *key = obj->u.c.items[i]->key;
    return obj->u.c.items[i];
}
