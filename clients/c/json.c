/* A generic protobuf-c to JSON printer: walks a message through its descriptor and
 * writes the proto3 JSON mapping with original field names (see saasodoo/json.h). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saasodoo/json.h"

/* Output buffer with a sticky error: once `err` is set every append is a no-op. */
typedef struct jw {
    char *data;
    size_t len;
    size_t cap;
    int err;
    unsigned flags;
    int depth;     /* open objects and arrays, for indentation */
    int msg_depth; /* messages being written, capped at SDO_JSON_MAX_DEPTH */
} jw;

static void jw_fail(jw *w, int err)
{
    if (w->err == 0)
        w->err = err;
}

static void jw_append(jw *w, const void *s, size_t n)
{
    if (w->err != 0)
        return;
    if (n > SDO_JSON_MAX_OUTPUT - w->len) {
        jw_fail(w, -SDO_RESOURCE_EXHAUSTED);
        return;
    }
    size_t need = w->len + n + 1; /* room for the final NUL */
    if (need > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < need)
            cap *= 2; /* need <= SDO_JSON_MAX_OUTPUT + 1, far from SIZE_MAX */
        char *p = realloc(w->data, cap);
        if (p == NULL) {
            jw_fail(w, -SDO_RESOURCE_EXHAUSTED);
            return;
        }
        w->data = p;
        w->cap = cap;
    }
    memcpy(w->data + w->len, s, n);
    w->len += n;
}

static void jw_puts(jw *w, const char *s)
{
    jw_append(w, s, strlen(s));
}

static void jw_printf(jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jw_printf(jw *w, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        jw_fail(w, -SDO_INTERNAL);
        return;
    }
    jw_append(w, buf, (size_t)n);
}

static bool pretty(const jw *w)
{
    return (w->flags & SDO_JSON_PRETTY) != 0;
}

/* Starts member or element number `index` of the object/array at the current depth. */
static void jw_item(jw *w, size_t index)
{
    if (index > 0)
        jw_append(w, ",", 1);
    if (pretty(w)) {
        jw_append(w, "\n", 1);
        for (int i = 0; i < w->depth; i++)
            jw_append(w, "  ", 2);
    }
}

static void jw_open(jw *w, char c)
{
    jw_append(w, &c, 1);
    w->depth++;
}

static void jw_close(jw *w, char c, size_t count)
{
    w->depth--;
    if (count > 0 && pretty(w)) {
        jw_append(w, "\n", 1);
        for (int i = 0; i < w->depth; i++)
            jw_append(w, "  ", 2);
    }
    jw_append(w, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (n bytes available, s[0] >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Writes the body of a JSON string (no quotes). */
static void jw_escaped(jw *w, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0, i = 0;

    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_len(s + i, n - i);
            if (len > 0) {
                i += len;
                continue;
            }
        }
        jw_append(w, s + run, i - run);
        switch (c) {
        case '"':
            jw_puts(w, "\\\"");
            break;
        case '\\':
            jw_puts(w, "\\\\");
            break;
        case '\b':
            jw_puts(w, "\\b");
            break;
        case '\f':
            jw_puts(w, "\\f");
            break;
        case '\n':
            jw_puts(w, "\\n");
            break;
        case '\r':
            jw_puts(w, "\\r");
            break;
        case '\t':
            jw_puts(w, "\\t");
            break;
        default:
            if (c < 0x20)
                jw_printf(w, "\\u%04x", c);
            else
                jw_puts(w, "\\ufffd"); /* a byte that does not start valid UTF-8 */
            break;
        }
        i++;
        run = i;
    }
    jw_append(w, s + run, n - run);
}

static void jw_string(jw *w, const char *s)
{
    jw_append(w, "\"", 1);
    if (s != NULL)
        jw_escaped(w, s, strlen(s));
    jw_append(w, "\"", 1);
}

static void jw_base64(jw *w, const uint8_t *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];

    jw_append(w, "\"", 1);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[0] = tbl[(v >> 18) & 63];
        out[1] = tbl[(v >> 12) & 63];
        out[2] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[3] = i + 2 < len ? tbl[v & 63] : '=';
        jw_append(w, out, 4);
    }
    jw_append(w, "\"", 1);
}

/* Shortest decimal text that reads back as the same float/double. */
static void jw_float(jw *w, double v, bool single)
{
    char buf[40];

    if (isnan(v)) {
        jw_puts(w, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        jw_puts(w, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    jw_puts(w, buf);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int64_t)yoe + era * 400 + (*month <= 2);
}

/* ".5", ".250", ".000001", ... for 0 < nanos < 1e9: 3, 6 or 9 digits. */
static void format_fraction(int32_t nanos, char *buf, size_t size)
{
    if (nanos == 0)
        buf[0] = '\0';
    else if (nanos % 1000000 == 0)
        snprintf(buf, size, ".%03" PRId32, nanos / 1000000);
    else if (nanos % 1000 == 0)
        snprintf(buf, size, ".%06" PRId32, nanos / 1000);
    else
        snprintf(buf, size, ".%09" PRId32, nanos);
}

#define TS_MIN_SECONDS INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define TS_MAX_SECONDS INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define DURATION_MAX_SECONDS INT64_C(315576000000)

int sdo_format_timestamp(int64_t seconds, int32_t nanos, char *buf, size_t bufsize)
{
    char frac[12];
    int64_t year;
    unsigned month, day;

    if (buf == NULL || bufsize < SDO_TIMESTAMP_BUFSIZE)
        return -SDO_INVALID_ARGUMENT;
    if (seconds < TS_MIN_SECONDS || seconds > TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
        return -SDO_OUT_OF_RANGE;
    int64_t days = seconds / 86400, rem = seconds % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &year, &month, &day);
    format_fraction(nanos, frac, sizeof(frac));
    snprintf(buf, bufsize, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d%sZ", year, month, day,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
    return 0;
}

/* Address of the member a field descriptor describes. */
static const void *member(const ProtobufCMessage *m, unsigned offset)
{
    return (const char *)m + offset;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

static bool is_type(const ProtobufCMessageDescriptor *d, const char *name)
{
    return strcmp(d->name, name) == 0;
}

/* Reads the `seconds` and `nanos` fields of a Timestamp or Duration. */
static bool seconds_nanos(const ProtobufCMessage *m, int64_t *seconds, int32_t *nanos)
{
    const ProtobufCFieldDescriptor *fs = field_named(m, "seconds");
    const ProtobufCFieldDescriptor *fn = field_named(m, "nanos");
    if (fs == NULL || fn == NULL || fs->type != PROTOBUF_C_TYPE_INT64 ||
        fn->type != PROTOBUF_C_TYPE_INT32 || fs->label == PROTOBUF_C_LABEL_REPEATED ||
        fn->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    memcpy(seconds, member(m, fs->offset), sizeof(*seconds));
    memcpy(nanos, member(m, fn->offset), sizeof(*nanos));
    return true;
}

static void write_message(jw *w, const ProtobufCMessage *m);
static void write_value(jw *w, const ProtobufCFieldDescriptor *f, const void *p);

static bool write_timestamp(jw *w, const ProtobufCMessage *m)
{
    int64_t seconds;
    int32_t nanos;
    char buf[SDO_TIMESTAMP_BUFSIZE];

    if (!seconds_nanos(m, &seconds, &nanos))
        return false;
    int rc = sdo_format_timestamp(seconds, nanos, buf, sizeof(buf));
    if (rc < 0)
        jw_fail(w, rc);
    else
        jw_string(w, buf);
    return true;
}

static bool write_duration(jw *w, const ProtobufCMessage *m)
{
    int64_t seconds;
    int32_t nanos;
    char frac[12];

    if (!seconds_nanos(m, &seconds, &nanos))
        return false;
    if (seconds < -DURATION_MAX_SECONDS || seconds > DURATION_MAX_SECONDS || nanos < -999999999 ||
        nanos > 999999999 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
        jw_fail(w, -SDO_OUT_OF_RANGE);
        return true;
    }
    bool neg = seconds < 0 || nanos < 0;
    format_fraction(nanos < 0 ? -nanos : nanos, frac, sizeof(frac));
    jw_printf(w, "\"%s%" PRId64 "%ss\"", neg ? "-" : "", seconds < 0 ? -seconds : seconds, frac);
    return true;
}

static bool write_field_mask(jw *w, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = field_named(m, "paths");
    if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_STRING)
        return false;
    size_t n;
    char *const *paths;
    memcpy(&n, member(m, f->quantifier_offset), sizeof(n));
    memcpy(&paths, member(m, f->offset), sizeof(paths));
    jw_append(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            jw_append(w, ",", 1);
        if (paths[i] != NULL)
            jw_escaped(w, paths[i], strlen(paths[i]));
    }
    jw_append(w, "\"", 1);
    return true;
}

static bool write_wrapper(jw *w, const ProtobufCMessage *m)
{
    static const char *const wrappers[] = {
        "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue",
    };
    const ProtobufCMessageDescriptor *d = m->descriptor;
    size_t i;

    for (i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
        if (is_type(d, wrappers[i]))
            break;
    if (i == sizeof(wrappers) / sizeof(wrappers[0]) || d->n_fields != 1 ||
        d->fields[0].label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    write_value(w, &d->fields[0], member(m, d->fields[0].offset));
    return true;
}

/* Well-known types with a JSON form of their own; false when `m` is not one. */
static bool write_well_known(jw *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (strncmp(d->name, "google.protobuf.", 16) != 0)
        return false;
    if (is_type(d, "google.protobuf.Timestamp"))
        return write_timestamp(w, m);
    if (is_type(d, "google.protobuf.Duration"))
        return write_duration(w, m);
    if (is_type(d, "google.protobuf.FieldMask"))
        return write_field_mask(w, m);
    return write_wrapper(w, m);
}

size_t sdo_proto_element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Writes one value of field `f` stored at `p` (a single element, never a list). */
static void write_value(jw *w, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t v;
        memcpy(&v, p, sizeof(v));
        jw_printf(w, "%" PRId32, v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        jw_printf(w, "%" PRIu32, v);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v;
        memcpy(&v, p, sizeof(v));
        jw_printf(w, "\"%" PRId64 "\"", v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        jw_printf(w, "\"%" PRIu64 "\"", v);
        break;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v;
        memcpy(&v, p, sizeof(v));
        jw_float(w, v, true);
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        memcpy(&v, p, sizeof(v));
        jw_float(w, v, false);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v;
        memcpy(&v, p, sizeof(v));
        jw_puts(w, v ? "true" : "false");
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v;
        memcpy(&v, p, sizeof(v));
        const ProtobufCEnumValue *ev =
            f->descriptor ? protobuf_c_enum_descriptor_get_value(f->descriptor, v) : NULL;
        if (ev != NULL)
            jw_string(w, ev->name);
        else
            jw_printf(w, "%d", v); /* a value this build does not know */
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        memcpy(&s, p, sizeof(s));
        jw_string(w, s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        jw_base64(w, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m;
        memcpy(&m, p, sizeof(m));
        if (m == NULL)
            jw_puts(w, "null");
        else
            write_message(w, m);
        break;
    }
    }
}

/* Zero value of a proto3 field without presence? */
static bool is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return v == 0;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return v == 0;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v;
        memcpy(&v, p, sizeof(v));
        return v == 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        memcpy(&v, p, sizeof(v));
        return v == 0;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v;
        memcpy(&v, p, sizeof(v));
        return !v;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v;
        memcpy(&v, p, sizeof(v));
        return v == 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        memcpy(&s, p, sizeof(s));
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const void *m;
        memcpy(&m, p, sizeof(m));
        return m == NULL;
    }
    }
    return true;
}

/* Is a non-repeated field present in `m` (and so printed)? */
static bool is_present(const jw *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *p = member(m, f->offset);

    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which;
        memcpy(&which, member(m, f->quantifier_offset), sizeof(which));
        return which == f->id;
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const void *ptr;
            memcpy(&ptr, p, sizeof(ptr));
            return ptr != NULL;
        } else {
            protobuf_c_boolean has;
            memcpy(&has, member(m, f->quantifier_offset), sizeof(has));
            return has != 0;
        }
    case PROTOBUF_C_LABEL_NONE:
        return (w->flags & SDO_JSON_EMIT_DEFAULTS) || !is_zero(f, p);
    case PROTOBUF_C_LABEL_REPEATED:
        break;
    }
    return false;
}

/* protoc names the entry message of map field `foo_bar` "FooBarEntry", nested in the
 * message holding the field. */
static bool is_map_field(const ProtobufCMessageDescriptor *parent,
                         const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0 ||
        e->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
        e->fields[1].label == PROTOBUF_C_LABEL_REPEATED)
        return false;

    size_t plen = strlen(parent->name);
    const char *n = e->name;
    if (strncmp(n, parent->name, plen) != 0 || n[plen] != '.')
        return false;
    n += plen + 1;
    bool cap_next = true;
    for (const char *s = f->name; *s; s++) {
        char c = *s;
        if (c == '_') {
            cap_next = true;
            continue;
        }
        if (cap_next && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        cap_next = false;
        if (*n++ != c)
            return false;
    }
    return strcmp(n, "Entry") == 0;
}

typedef struct map_item {
    const ProtobufCMessage *entry;
    const char *skey; /* string keys */
    int64_t ikey;     /* signed integer keys */
    uint64_t ukey;    /* unsigned integer and bool keys */
    int kind;         /* 0 string, 1 signed, 2 unsigned */
} map_item;

static int map_item_cmp(const void *a, const void *b)
{
    const map_item *x = a, *y = b;
    switch (x->kind) {
    case 0:
        return strcmp(x->skey, y->skey);
    case 1:
        return (x->ikey > y->ikey) - (x->ikey < y->ikey);
    default:
        return (x->ukey > y->ukey) - (x->ukey < y->ukey);
    }
}

/* A map as a JSON object, keys in sorted order so output is reproducible. */
static void write_map(jw *w, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
                      size_t n)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    map_item *items = NULL;

    if (n > 0) {
        if (n > SIZE_MAX / sizeof(*items)) {
            jw_fail(w, -SDO_RESOURCE_EXHAUSTED);
            return;
        }
        items = calloc(n, sizeof(*items));
        if (items == NULL) {
            jw_fail(w, -SDO_RESOURCE_EXHAUSTED);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const void *kp = member(entries[i], kf->offset);
        items[i].entry = entries[i];
        switch (kf->type) {
        case PROTOBUF_C_TYPE_STRING:
            memcpy(&items[i].skey, kp, sizeof(items[i].skey));
            if (items[i].skey == NULL)
                items[i].skey = "";
            items[i].kind = 0;
            break;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32: {
            int32_t v;
            memcpy(&v, kp, sizeof(v));
            items[i].ikey = v;
            items[i].kind = 1;
            break;
        }
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            memcpy(&items[i].ikey, kp, sizeof(items[i].ikey));
            items[i].kind = 1;
            break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32: {
            uint32_t v;
            memcpy(&v, kp, sizeof(v));
            items[i].ukey = v;
            items[i].kind = 2;
            break;
        }
        case PROTOBUF_C_TYPE_BOOL: {
            protobuf_c_boolean v;
            memcpy(&v, kp, sizeof(v));
            items[i].ukey = v != 0;
            items[i].kind = 2;
            break;
        }
        default: /* UINT64/FIXED64; other key types cannot occur */
            memcpy(&items[i].ukey, kp, sizeof(items[i].ukey));
            items[i].kind = 2;
            break;
        }
    }
    if (n > 1)
        qsort(items, n, sizeof(*items), map_item_cmp);

    jw_open(w, '{');
    for (size_t i = 0; i < n && w->err == 0; i++) {
        jw_item(w, i);
        if (items[i].kind == 0)
            jw_string(w, items[i].skey);
        else if (kf->type == PROTOBUF_C_TYPE_BOOL)
            jw_puts(w, items[i].ukey ? "\"true\"" : "\"false\"");
        else if (items[i].kind == 1)
            jw_printf(w, "\"%" PRId64 "\"", items[i].ikey);
        else
            jw_printf(w, "\"%" PRIu64 "\"", items[i].ukey);
        jw_puts(w, pretty(w) ? ": " : ":");
        const void *vp = member(items[i].entry, vf->offset);
        const ProtobufCMessage *vm = NULL;
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE)
            memcpy(&vm, vp, sizeof(vm));
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE && vm == NULL)
            jw_puts(w, "{}"); /* an absent message value is the empty message */
        else
            write_value(w, vf, vp);
    }
    jw_close(w, '}', n);
    free(items);
}

static void write_repeated(jw *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    size_t n;
    const char *arr;

    memcpy(&n, member(m, f->quantifier_offset), sizeof(n));
    memcpy(&arr, member(m, f->offset), sizeof(arr));
    if (n > 0 && arr == NULL) {
        jw_fail(w, -SDO_INVALID_ARGUMENT);
        return;
    }
    if (is_map_field(m->descriptor, f)) {
        write_map(w, f, (ProtobufCMessage *const *)(const void *)arr, n);
        return;
    }
    size_t size = sdo_proto_element_size(f->type);
    jw_open(w, '[');
    for (size_t i = 0; i < n && w->err == 0; i++) {
        jw_item(w, i);
        write_value(w, f, arr + i * size);
    }
    jw_close(w, ']', n);
}

static void write_message(jw *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    size_t count = 0;

    if (d == NULL || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        jw_fail(w, -SDO_INVALID_ARGUMENT);
        return;
    }
    if (w->msg_depth >= SDO_JSON_MAX_DEPTH) {
        jw_fail(w, -SDO_INVALID_ARGUMENT);
        return;
    }
    if (write_well_known(w, m))
        return;
    w->msg_depth++;
    jw_open(w, '{');
    for (unsigned i = 0; i < d->n_fields && w->err == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, member(m, f->quantifier_offset), sizeof(n));
            if (n == 0 && !(w->flags & SDO_JSON_EMIT_DEFAULTS))
                continue;
        } else if (!is_present(w, m, f))
            continue;
        jw_item(w, count++);
        jw_string(w, f->name);
        jw_puts(w, pretty(w) ? ": " : ":");
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            write_repeated(w, m, f);
        else
            write_value(w, f, member(m, f->offset));
    }
    jw_close(w, '}', count);
    w->msg_depth--;
}

int sdo_json_render(const ProtobufCMessage *msg, unsigned flags, char **out, size_t *out_len)
{
    jw w = {.flags = flags};

    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (msg == NULL || out == NULL)
        return -SDO_INVALID_ARGUMENT;
    write_message(&w, msg);
    if (w.err == 0 && w.data == NULL)
        jw_fail(&w, -SDO_INTERNAL); /* unreachable: a message writes at least "{}" */
    if (w.err != 0) {
        free(w.data);
        return w.err;
    }
    w.data[w.len] = '\0';
    *out = w.data;
    if (out_len != NULL)
        *out_len = w.len;
    return 0;
}
