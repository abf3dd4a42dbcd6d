/* Server reflection from the embedded descriptor set.
 *
 * The FileDescriptorSet is split into its files without re-encoding (the original bytes of
 * each FileDescriptorProto are served as they are); each file is decoded once to index its
 * symbols (messages, enums, services, methods, extensions) and dependencies. A file request
 * answers with the file and everything it imports. v1 and v1alpha share one wire format, so
 * v1 requests are answered by the v1alpha code. */
#include "rpc/reflection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

typedef struct refl_file {
    char *name;
    const unsigned char *data;
    size_t len;
    int *deps;
    size_t ndeps;
} refl_file;

typedef struct refl_symbol {
    char *name;
    int file;
} refl_symbol;

typedef struct refl_ext {
    char *extendee; /* without the leading dot */
    int number;
    int file;
} refl_ext;

static struct {
    refl_file *files;
    size_t nfiles;
    refl_symbol *syms;
    size_t nsyms, capsyms;
    refl_ext *exts;
    size_t nexts, capexts;
    const rpc_registry *reg;
} R;

static void add_symbol(const char *prefix, const char *name, int file)
{
    if (R.nsyms == R.capsyms) {
        R.capsyms = R.capsyms ? R.capsyms * 2 : 256;
        R.syms = realloc(R.syms, R.capsyms * sizeof *R.syms);
        if (!R.syms)
            abort();
    }
    size_t n = strlen(prefix) + strlen(name) + 2;
    char *full = sdo_malloc(n);
    snprintf(full, n, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    R.syms[R.nsyms].name = full;
    R.syms[R.nsyms].file = file;
    R.nsyms++;
}

static void add_ext(const Google__Protobuf__FieldDescriptorProto *f, int file)
{
    if (!f->extendee || !f->has_number)
        return;
    if (R.nexts == R.capexts) {
        R.capexts = R.capexts ? R.capexts * 2 : 32;
        R.exts = realloc(R.exts, R.capexts * sizeof *R.exts);
        if (!R.exts)
            abort();
    }
    const char *e = f->extendee[0] == '.' ? f->extendee + 1 : f->extendee;
    R.exts[R.nexts].extendee = sdo_strdup(e);
    R.exts[R.nexts].number = f->number;
    R.exts[R.nexts].file = file;
    R.nexts++;
}

static void index_message(const char *prefix, const Google__Protobuf__DescriptorProto *m, int file)
{
    add_symbol(prefix, m->name, file);
    char full[512];
    snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", m->name);
    for (size_t i = 0; i < m->n_nested_type; i++)
        index_message(full, m->nested_type[i], file);
    for (size_t i = 0; i < m->n_enum_type; i++)
        add_symbol(full, m->enum_type[i]->name, file);
    for (size_t i = 0; i < m->n_extension; i++) {
        add_symbol(full, m->extension[i]->name, file);
        add_ext(m->extension[i], file);
    }
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(((const refl_symbol *)a)->name, ((const refl_symbol *)b)->name);
}

static int find_file(const char *name)
{
    for (size_t i = 0; i < R.nfiles; i++)
        if (strcmp(R.files[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_symbol(const char *name)
{
    refl_symbol key = {(char *)name, 0};
    refl_symbol *s = bsearch(&key, R.syms, R.nsyms, sizeof *R.syms, cmp_sym);
    return s ? s->file : -1;
}

/* Reads a varint; returns bytes used or 0 on malformed input. */
static size_t read_varint(const unsigned char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

static int index_set(const unsigned char *set, size_t len)
{
    /* FileDescriptorSet { repeated FileDescriptorProto file = 1; } */
    size_t pos = 0, cap = 0;
    while (pos < len) {
        uint64_t tag, flen;
        size_t n = read_varint(set + pos, len - pos, &tag);
        if (!n || tag != ((1 << 3) | 2))
            return -1;
        pos += n;
        n = read_varint(set + pos, len - pos, &flen);
        if (!n || flen > len - pos - n)
            return -1;
        pos += n;
        if (R.nfiles == cap) {
            cap = cap ? cap * 2 : 32;
            R.files = realloc(R.files, cap * sizeof *R.files);
            if (!R.files)
                abort();
        }
        refl_file *f = &R.files[R.nfiles];
        memset(f, 0, sizeof *f);
        f->data = set + pos;
        f->len = (size_t)flen;
        R.nfiles++;
        pos += (size_t)flen;
    }
    for (size_t i = 0; i < R.nfiles; i++) {
        refl_file *f = &R.files[i];
        Google__Protobuf__FileDescriptorProto *fd =
            google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->data);
        if (!fd)
            return -1;
        f->name = sdo_strdup(fd->name ? fd->name : "");
        const char *pkg = fd->package ? fd->package : "";
        int fi = (int)i;
        for (size_t j = 0; j < fd->n_message_type; j++)
            index_message(pkg, fd->message_type[j], fi);
        for (size_t j = 0; j < fd->n_enum_type; j++)
            add_symbol(pkg, fd->enum_type[j]->name, fi);
        for (size_t j = 0; j < fd->n_service; j++) {
            const Google__Protobuf__ServiceDescriptorProto *sv = fd->service[j];
            add_symbol(pkg, sv->name, fi);
            char full[512];
            snprintf(full, sizeof full, "%s%s%s", pkg, pkg[0] ? "." : "", sv->name);
            for (size_t k = 0; k < sv->n_method; k++)
                add_symbol(full, sv->method[k]->name, fi);
        }
        for (size_t j = 0; j < fd->n_extension; j++) {
            add_symbol(pkg, fd->extension[j]->name, fi);
            add_ext(fd->extension[j], fi);
        }
        /* protoc writes dependencies before the files that import them */
        f->ndeps = fd->n_dependency;
        f->deps = sdo_calloc(fd->n_dependency, sizeof(int));
        for (size_t j = 0; j < fd->n_dependency; j++) {
            f->deps[j] = -1;
            for (size_t k = 0; k < i; k++)
                if (strcmp(R.files[k].name, fd->dependency[j]) == 0)
                    f->deps[j] = (int)k;
        }
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    }
    qsort(R.syms, R.nsyms, sizeof *R.syms, cmp_sym);
    return 0;
}

/* Adds file i and its dependencies (depth first, each once) to the response. */
static void collect(int i, bool *seen, Grpc__Reflection__V1alpha__FileDescriptorResponse *out)
{
    if (i < 0 || seen[i])
        return;
    seen[i] = true;
    const refl_file *f = &R.files[i];
    ProtobufCBinaryData *b = &out->file_descriptor_proto[out->n_file_descriptor_proto++];
    b->len = f->len;
    b->data = sdo_malloc(f->len);
    memcpy(b->data, f->data, f->len);
    for (size_t j = 0; j < f->ndeps; j++)
        collect(f->deps[j], seen, out);
}

static void set_error(Grpc__Reflection__V1alpha__ServerReflectionResponse *r, int code,
                      const char *fmt, const char *arg)
{
    Grpc__Reflection__V1alpha__ErrorResponse *e = sdo_malloc(sizeof *e);
    grpc__reflection__v1alpha__error_response__init(e);
    e->error_code = code;
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    e->error_message = sdo_strdup(msg);
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = e;
}

static void set_files(Grpc__Reflection__V1alpha__ServerReflectionResponse *r, int file)
{
    Grpc__Reflection__V1alpha__FileDescriptorResponse *fr = sdo_malloc(sizeof *fr);
    grpc__reflection__v1alpha__file_descriptor_response__init(fr);
    fr->file_descriptor_proto = sdo_calloc(R.nfiles, sizeof(ProtobufCBinaryData));
    bool *seen = sdo_calloc(R.nfiles, sizeof(bool));
    collect(file, seen, fr);
    free(seen);
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = fr;
}

static int reflect(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    (void)ctx;
    const Grpc__Reflection__V1alpha__ServerReflectionRequest *q = (const void *)req;
    Grpc__Reflection__V1alpha__ServerReflectionResponse *r = sdo_malloc(sizeof *r);
    grpc__reflection__v1alpha__server_reflection_response__init(r);
    r->valid_host = sdo_strdup(q->host ? q->host : "");

    /* echo the request: a copy through the wire format */
    size_t qlen = protobuf_c_message_get_packed_size(req);
    uint8_t *qbuf = sdo_malloc(qlen);
    protobuf_c_message_pack(req, qbuf);
    r->original_request =
        grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, qlen, qbuf);
    free(qbuf);

    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
        Grpc__Reflection__V1alpha__ListServiceResponse *l = sdo_malloc(sizeof *l);
        grpc__reflection__v1alpha__list_service_response__init(l);
        size_t n = rpc_registry_service_count(R.reg);
        l->service = sdo_calloc(n, sizeof *l->service);
        for (size_t i = 0; i < n; i++) {
            Grpc__Reflection__V1alpha__ServiceResponse *s = sdo_malloc(sizeof *s);
            grpc__reflection__v1alpha__service_response__init(s);
            s->name = sdo_strdup(rpc_registry_service_at(R.reg, i));
            l->service[l->n_service++] = s;
        }
        r->message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        r->list_services_response = l;
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
        int f = find_file(q->file_by_filename);
        if (f < 0)
            set_error(r, SDO_NOT_FOUND, "file '%s' is not known to this server",
                      q->file_by_filename);
        else
            set_files(r, f);
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
        const char *sym = q->file_containing_symbol;
        if (sym[0] == '.')
            sym++;
        int f = find_symbol(sym);
        if (f < 0)
            set_error(r, SDO_NOT_FOUND, "symbol '%s' is not known to this server", sym);
        else
            set_files(r, f);
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1alpha__ExtensionRequest *e = q->file_containing_extension;
        int f = -1;
        for (size_t i = 0; e && i < R.nexts; i++)
            if (strcmp(R.exts[i].extendee, e->containing_type) == 0 &&
                R.exts[i].number == e->extension_number)
                f = R.exts[i].file;
        if (f < 0)
            set_error(r, SDO_NOT_FOUND, "no extension of '%s' with that number is known",
                      e ? e->containing_type : "");
        else
            set_files(r, f);
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
        const char *type = q->all_extension_numbers_of_type;
        if (find_symbol(type) < 0) {
            set_error(r, SDO_NOT_FOUND, "type '%s' is not known to this server", type);
            break;
        }
        Grpc__Reflection__V1alpha__ExtensionNumberResponse *x = sdo_malloc(sizeof *x);
        grpc__reflection__v1alpha__extension_number_response__init(x);
        x->base_type_name = sdo_strdup(type);
        x->extension_number = sdo_calloc(R.nexts, sizeof(int32_t));
        for (size_t i = 0; i < R.nexts; i++)
            if (strcmp(R.exts[i].extendee, type) == 0)
                x->extension_number[x->n_extension_number++] = R.exts[i].number;
        r->message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        r->all_extension_numbers_response = x;
        break;
    }
    default:
        set_error(r, SDO_INVALID_ARGUMENT, "%s", "the reflection request names no question");
        break;
    }
    *resp = &r->base;
    return 0;
}

/* v1: same wire format; translate through bytes. */
static int reflect_v1(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = sdo_malloc(len);
    protobuf_c_message_pack(req, buf);
    ProtobufCMessage *alpha = protobuf_c_message_unpack(
        &grpc__reflection__v1alpha__server_reflection_request__descriptor, NULL, len, buf);
    free(buf);
    if (!alpha)
        return sdo_fail(&ctx->err, SDO_INTERNAL, "reflection request could not be translated");
    ProtobufCMessage *out = NULL;
    int rc = reflect(ctx, alpha, &out);
    protobuf_c_message_free_unpacked(alpha, NULL);
    if (rc < 0)
        return rc;
    len = protobuf_c_message_get_packed_size(out);
    buf = sdo_malloc(len);
    protobuf_c_message_pack(out, buf);
    protobuf_c_message_free_unpacked(out, NULL);
    *resp = protobuf_c_message_unpack(&grpc__reflection__v1__server_reflection_response__descriptor,
                                      NULL, len, buf);
    free(buf);
    if (!*resp)
        return sdo_fail(&ctx->err, SDO_INTERNAL, "reflection response could not be translated");
    return 0;
}

static const rpc_handler v1alpha_handlers[] = {
    {"ServerReflectionInfo", RPC_BIDI, NULL, NULL, reflect},
    {NULL, 0, NULL, NULL, NULL},
};
static const rpc_handler v1_handlers[] = {
    {"ServerReflectionInfo", RPC_BIDI, NULL, NULL, reflect_v1},
    {NULL, 0, NULL, NULL, NULL},
};

int rpc_reflection_register(rpc_registry *reg, const unsigned char *set, size_t len)
{
    /* The index is built once per process; later registries share it. */
    if (!R.files && index_set(set, len) < 0)
        return -1;
    R.reg = reg;
    if (rpc_registry_add(reg, &grpc__reflection__v1__server_reflection__descriptor, v1_handlers) <
        0)
        return -1;
    return rpc_registry_add(reg, &grpc__reflection__v1alpha__server_reflection__descriptor,
                            v1alpha_handlers);
}
