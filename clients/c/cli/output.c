/* Output of the saasodoo tool: error lines on stderr, JSON through the library's printer,
 * aligned tables for lists and "key: value" lines for single resources. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "saasodoo/v1/error.pb-c.h"

#include "cli.h"

#define TABLE_MAX_CELLS (16u * 1024 * 1024)

/* Where a usage error points to: the help of the command being parsed. */
static char help_hint[96] = "saasodoo --help";

void cli_set_help_hint(const char *group, const char *verb)
{
    snprintf(help_hint, sizeof(help_hint), "saasodoo %s%s%s --help", group, verb ? " " : "",
             verb ? verb : "");
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("saasodoo: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun '%s' for usage.\n", help_hint);
    return CLI_EXIT_USAGE;
}

int cli_failure(const char *fmt, ...)
{
    va_list ap;
    fputs("saasodoo: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAILURE;
}

/* Strips the "type.googleapis.com/" style prefix of an Any type URL. */
static bool any_is(const Google__Protobuf__Any *any, const char *full_name)
{
    const char *slash = any->type_url ? strrchr(any->type_url, '/') : NULL;
    const char *name = slash ? slash + 1 : any->type_url;
    return name != NULL && strcmp(name, full_name) == 0;
}

static void print_clean(FILE *f, const char *s)
{
    char *c = cli_clean(s);
    fputs(c ? c : "?", f);
    free(c);
}

/* Prints the violations carried in a google.rpc.Status, one per line. */
static void print_details(const sdo_status *st)
{
    Google__Rpc__Status *rs = google__rpc__status__unpack(NULL, st->details_len, st->details);
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n_details; i++) {
        const Google__Protobuf__Any *any = rs->details[i];
        if (any_is(any, "google.rpc.BadRequest")) {
            Google__Rpc__BadRequest *br =
                google__rpc__bad_request__unpack(NULL, any->value.len, any->value.data);
            for (size_t k = 0; br != NULL && k < br->n_field_violations; k++) {
                fputs("  ", stderr);
                print_clean(stderr, br->field_violations[k]->field);
                fputs(": ", stderr);
                print_clean(stderr, br->field_violations[k]->description);
                fputc('\n', stderr);
            }
            if (br != NULL)
                google__rpc__bad_request__free_unpacked(br, NULL);
        } else if (any_is(any, "saasodoo.v1.ErrorInfo")) {
            Saasodoo__V1__ErrorInfo *ei =
                saasodoo__v1__error_info__unpack(NULL, any->value.len, any->value.data);
            if (ei != NULL && ei->reason != NULL && ei->reason[0] != '\0') {
                fputs("  reason: ", stderr);
                print_clean(stderr, ei->reason);
                fputc('\n', stderr);
            }
            if (ei != NULL)
                saasodoo__v1__error_info__free_unpacked(ei, NULL);
        } else if (any_is(any, "google.rpc.PreconditionFailure")) {
            Google__Rpc__PreconditionFailure *pf =
                google__rpc__precondition_failure__unpack(NULL, any->value.len, any->value.data);
            for (size_t k = 0; pf != NULL && k < pf->n_violations; k++) {
                fputs("  ", stderr);
                print_clean(stderr, pf->violations[k]->subject);
                fputs(": ", stderr);
                print_clean(stderr, pf->violations[k]->description);
                fputc('\n', stderr);
            }
            if (pf != NULL)
                google__rpc__precondition_failure__free_unpacked(pf, NULL);
        }
    }
    google__rpc__status__free_unpacked(rs, NULL);
}

/* Told after an UNAUTHENTICATED answer: how to sign in. */
static char auth_hint[512];

void cli_set_auth_hint(const char *hint)
{
    snprintf(auth_hint, sizeof(auth_hint), "%s", hint != NULL ? hint : "");
}

int cli_rpc_error(int rc, const sdo_status *st)
{
    int code = st != NULL && st->code != SDO_OK ? st->code : -rc;
    if (code <= SDO_OK || code > SDO_UNAUTHENTICATED)
        code = SDO_UNKNOWN;
    fprintf(stderr, "saasodoo: %s: ", sdo_code_name(code));
    if (st != NULL && st->message != NULL && st->message[0] != '\0')
        print_clean(stderr, st->message);
    else
        fputs("(no message)", stderr);
    fputc('\n', stderr);
    if (st != NULL && st->details_len > 0)
        print_details(st);
    if (code == SDO_UNAUTHENTICATED && auth_hint[0] != '\0')
        fprintf(stderr, "%s\n", auth_hint);
    return CLI_EXIT_RPC + code;
}

int cli_print_json(const ProtobufCMessage *m, bool one_line)
{
    char *json;
    size_t len;
    int rc = sdo_json_render(m, one_line ? 0 : SDO_JSON_PRETTY, &json, &len);
    if (rc < 0)
        return cli_failure("cannot print the response as JSON: %s", sdo_code_name(-rc));
    fwrite(json, 1, len, stdout);
    fputc('\n', stdout);
    free(json);
    return cli_flush();
}

int cli_show(const cli_ctx *ctx, const ProtobufCMessage *m)
{
    return ctx->output == OUT_JSON ? cli_print_json(m, false) : cli_print_describe(m);
}

int cli_flush(void)
{
    return fflush(stdout) == 0 && !ferror(stdout) ? CLI_EXIT_OK
                                                  : cli_failure("cannot write the output");
}

char *cli_clean(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return strdup("-");
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 4)
        return NULL;
    char *out = malloc(4 * n + 1), *o = out; /* "\xNN" is the longest escape */
    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(o, 5, "\\x%02x", *p);
                o += 4;
            } else
                *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

const char *cli_time(const Google__Protobuf__Timestamp *t, char *buf)
{
    if (t == NULL)
        return "-";
    if (sdo_format_timestamp(t->seconds, t->nanos, buf, SDO_TIMESTAMP_BUFSIZE) < 0)
        snprintf(buf, SDO_TIMESTAMP_BUFSIZE, "%" PRId64 "s", t->seconds);
    return buf;
}

const char *cli_enum_name(const ProtobufCEnumDescriptor *d, int v, char *buf)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (ev != NULL)
        return ev->name;
    snprintf(buf, 16, "%d", v);
    return buf;
}

/* --- tables ------------------------------------------------------------------------ */

struct cli_table {
    size_t ncols;
    size_t ncells; /* header row included */
    size_t cap;
    char **cells;
};

static int table_push(cli_table *t, const char *s)
{
    if (t->ncells == t->cap) {
        if (t->cap >= TABLE_MAX_CELLS)
            return -1;
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = realloc(t->cells, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        t->cells = p;
        t->cap = cap;
    }
    char *c = cli_clean(s);
    if (c == NULL)
        return -1;
    t->cells[t->ncells++] = c;
    return 0;
}

cli_table *table_new(size_t ncols, const char *const *headers)
{
    cli_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    if (table_add(t, headers) < 0) {
        table_free(t);
        return NULL;
    }
    return t;
}

int table_add(cli_table *t, const char *const *cells)
{
    size_t start = t->ncells;
    for (size_t i = 0; i < t->ncols; i++) {
        if (table_push(t, cells[i]) < 0) {
            while (t->ncells > start)
                free(t->cells[--t->ncells]);
            return -1;
        }
    }
    return 0;
}

size_t table_rows(const cli_table *t)
{
    return t->ncols ? t->ncells / t->ncols - 1 : 0;
}

/* Width on a terminal: UTF-8 code points, not bytes. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

int table_print(const cli_table *t, FILE *f)
{
    size_t *width = calloc(t->ncols, sizeof(*width));
    if (width == NULL)
        return -1;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = text_width(t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols;
        fputs(t->cells[i], f);
        if (col + 1 == t->ncols)
            fputc('\n', f);
        else
            fprintf(f, "%*s", (int)(width[col] - text_width(t->cells[i]) + 2), "");
    }
    free(width);
    return ferror(f) ? -1 : 0;
}

void table_free(cli_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* --- describe: every field of one message as "key: value" ------------------------- */

typedef struct kv_list {
    cli_table *t; /* two columns: key, value */
    int err;
} kv_list;

static void kv_add(kv_list *l, const char *key, const char *value)
{
    const char *cells[2] = {key, value};
    if (l->err == 0 && table_add(l->t, cells) < 0)
        l->err = -1;
}

/* Text of one scalar value stored at `p`; `buf` holds at least 64 bytes. Strings are
 * returned as they are (cleaned later by the table). */
static const char *scalar_text(const ProtobufCFieldDescriptor *f, const void *p, char *buf)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, 64, "%" PRId32, *(const int32_t *)p);
        return buf;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, 64, "%" PRIu32, *(const uint32_t *)p);
        return buf;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, 64, "%" PRId64, *(const int64_t *)p);
        return buf;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, 64, "%" PRIu64, *(const uint64_t *)p);
        return buf;
    case PROTOBUF_C_TYPE_FLOAT:
        snprintf(buf, 64, "%g", (double)*(const float *)p);
        return buf;
    case PROTOBUF_C_TYPE_DOUBLE:
        snprintf(buf, 64, "%g", *(const double *)p);
        return buf;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)p ? "true" : "false";
    case PROTOBUF_C_TYPE_ENUM:
        return cli_enum_name(f->descriptor, *(const int *)p, buf);
    case PROTOBUF_C_TYPE_STRING:
        return *(char *const *)p;
    case PROTOBUF_C_TYPE_BYTES:
        snprintf(buf, 64, "<%zu bytes>", ((const ProtobufCBinaryData *)p)->len);
        return buf;
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return "?";
}

/* Appends `s` to a growing string (`sep` first unless empty); sets l->err on failure. */
static void join(kv_list *l, char **acc, size_t *len, const char *sep, const char *s)
{
    if (l->err != 0)
        return;
    size_t slen = strlen(s), seplen = *len ? strlen(sep) : 0;
    if (slen > 1024 * 1024 || *len > 16 * 1024 * 1024) {
        l->err = -1;
        return;
    }
    char *p = realloc(*acc, *len + seplen + slen + 1);
    if (p == NULL) {
        l->err = -1;
        return;
    }
    memcpy(p + *len, sep, seplen);
    memcpy(p + *len + seplen, s, slen + 1);
    *acc = p;
    *len += seplen + slen;
}

typedef struct kv_pair {
    const char *key, *value;
} kv_pair;

static int kv_pair_cmp(const void *a, const void *b)
{
    return strcmp(((const kv_pair *)a)->key, ((const kv_pair *)b)->key);
}

static void describe(kv_list *l, const char *prefix, const ProtobufCMessage *m, int depth);

static bool is_map_entry(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t n = strlen(e->short_name);
    return f->type == PROTOBUF_C_TYPE_MESSAGE && e->n_fields == 2 && n > 5 &&
           strcmp(e->short_name + n - 5, "Entry") == 0 && strcmp(e->fields[0].name, "key") == 0 &&
           strcmp(e->fields[1].name, "value") == 0 && e->fields[1].type != PROTOBUF_C_TYPE_MESSAGE;
}

/* A map of scalars as "k=v, k2=v2", sorted by key. */
static void describe_map(kv_list *l, const char *key, const ProtobufCFieldDescriptor *f,
                         ProtobufCMessage *const *entries, size_t n)
{
    typedef struct {
        char k[64], v[64]; /* room for numbers and enum numbers */
    } text_buf;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    char *acc = NULL;
    size_t len = 0;
    kv_pair *pairs = n ? calloc(n, sizeof(*pairs)) : NULL;
    text_buf *bufs = n ? calloc(n, sizeof(*bufs)) : NULL;

    if (n > 0 && (pairs == NULL || bufs == NULL)) {
        l->err = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *entry = (const char *)entries[i];
        const char *k = scalar_text(&e->fields[0], entry + e->fields[0].offset, bufs[i].k);
        const char *v = scalar_text(&e->fields[1], entry + e->fields[1].offset, bufs[i].v);
        pairs[i].key = k ? k : "";
        pairs[i].value = v ? v : "";
    }
    if (n > 1)
        qsort(pairs, n, sizeof(*pairs), kv_pair_cmp);
    for (size_t i = 0; i < n && l->err == 0; i++) {
        join(l, &acc, &len, ", ", pairs[i].key);
        join(l, &acc, &len, "", "=");
        join(l, &acc, &len, "", pairs[i].value);
    }
    kv_add(l, key, acc);
out:
    free(acc);
    free(pairs);
    free(bufs);
}

static void describe_field(kv_list *l, const char *prefix, const ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *f, int depth)
{
    char key[256], buf[64];
    const char *p = (const char *)m + f->offset;

    snprintf(key, sizeof(key), "%s%s", prefix, f->name);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
        const char *arr = *(const char *const *)p;
        if (is_map_entry(f)) {
            describe_map(l, key, f, (ProtobufCMessage *const *)(const void *)arr, n);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage *const *msgs = (ProtobufCMessage *const *)(const void *)arr;
            if (n == 0)
                kv_add(l, key, "-");
            for (size_t i = 0; i < n; i++) {
                char sub[300];
                snprintf(sub, sizeof(sub), "%s[%zu].", key, i);
                describe(l, sub, msgs[i], depth + 1);
            }
        } else {
            char *acc = NULL;
            size_t len = 0;
            size_t size = sdo_proto_element_size(f->type);
            for (size_t i = 0; i < n; i++) {
                const char *s = scalar_text(f, arr + i * size, buf);
                join(l, &acc, &len, ", ", s ? s : "");
            }
            kv_add(l, key, acc);
            free(acc);
        }
        return;
    }
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        kv_add(l, key, scalar_text(f, p, buf));
        return;
    }
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
    const ProtobufCMessageDescriptor *sd = f->descriptor;
    char ts[SDO_TIMESTAMP_BUFSIZE];
    if (sub == NULL) {
        kv_add(l, key, "-");
    } else if (strcmp(sd->name, "google.protobuf.Timestamp") == 0) {
        kv_add(l, key, cli_time((const Google__Protobuf__Timestamp *)sub, ts));
    } else if (strcmp(sd->name, "google.protobuf.FieldMask") == 0) {
        const Google__Protobuf__FieldMask *fm = (const Google__Protobuf__FieldMask *)sub;
        char *acc = NULL;
        size_t len = 0;
        for (size_t i = 0; i < fm->n_paths; i++)
            join(l, &acc, &len, ",", fm->paths[i]);
        kv_add(l, key, acc);
        free(acc);
    } else {
        char sp[300];
        snprintf(sp, sizeof(sp), "%s.", key);
        describe(l, sp, sub, depth + 1);
    }
}

static void describe(kv_list *l, const char *prefix, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > SDO_JSON_MAX_DEPTH) {
        l->err = -1;
        return;
    }
    for (unsigned i = 0; i < d->n_fields && l->err == 0; i++)
        describe_field(l, prefix, m, &d->fields[i], depth);
}

int cli_print_describe(const ProtobufCMessage *m)
{
    static const char *const headers[2] = {"", ""};
    kv_list l = {.t = table_new(2, headers)};
    int rc = CLI_EXIT_OK;

    if (l.t == NULL)
        return cli_failure("out of memory");
    describe(&l, "", m, 0);
    if (l.err != 0) {
        rc = cli_failure("cannot format the response");
        goto out;
    }
    size_t width = 0;
    char **cells = l.t->cells;
    for (size_t i = 2; i < l.t->ncells; i += 2)
        if (text_width(cells[i]) > width)
            width = text_width(cells[i]);
    for (size_t i = 2; i < l.t->ncells; i += 2)
        printf("%s:%*s%s\n", cells[i], (int)(width - text_width(cells[i]) + 2), "", cells[i + 1]);
    rc = cli_flush();
out:
    table_free(l.t);
    return rc;
}
