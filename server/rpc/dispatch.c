/* Dispatch: a sorted table of methods built from protobuf-c service descriptors; unary,
 * server-streaming or bidirectional per handler entry; UNIMPLEMENTED for the rest. */
#include "rpc/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INTERCEPTORS 8
#define MAX_SERVICES 32

struct rpc_registry {
    rpc_method *methods;
    size_t n, cap;
    const rpc_interceptor *ics[MAX_INTERCEPTORS];
    size_t nics;
    const char *services[MAX_SERVICES];
    size_t nservices;
    bool sealed;
};

rpc_registry *rpc_registry_new(void)
{
    return sdo_calloc(1, sizeof(rpc_registry));
}

void rpc_registry_free(rpc_registry *r)
{
    if (!r)
        return;
    free(r->methods);
    free(r);
}

static int cmp_method(const void *a, const void *b)
{
    return strcmp(((const rpc_method *)a)->path, ((const rpc_method *)b)->path);
}

int rpc_registry_add(rpc_registry *r, const ProtobufCServiceDescriptor *svc,
                     const rpc_handler *handlers)
{
    if (r->sealed || r->nservices == MAX_SERVICES)
        return -1;
    /* Every handler must name a method of the service: a typo must not pass silently. */
    for (const rpc_handler *h = handlers; h && h->name; h++) {
        bool found = false;
        for (unsigned i = 0; i < svc->n_methods; i++)
            if (strcmp(svc->methods[i].name, h->name) == 0)
                found = true;
        if (!found)
            return -1;
    }
    for (unsigned i = 0; i < svc->n_methods; i++) {
        const ProtobufCMethodDescriptor *md = &svc->methods[i];
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            rpc_method *nm = realloc(r->methods, r->cap * sizeof *nm);
            if (!nm)
                return -1;
            r->methods = nm;
        }
        rpc_method *m = &r->methods[r->n];
        memset(m, 0, sizeof *m);
        int len = snprintf(m->path, sizeof m->path, "/%s/%s", svc->name, md->name);
        if (len < 0 || (size_t)len >= sizeof m->path)
            return -1;
        for (size_t j = 0; j < r->n; j++)
            if (strcmp(r->methods[j].path, m->path) == 0)
                return -1;
        m->service = svc->name;
        m->name = md->name;
        m->input = md->input;
        m->output = md->output;
        m->kind = RPC_UNARY;
        for (const rpc_handler *h = handlers; h && h->name; h++) {
            if (strcmp(h->name, md->name) == 0) {
                m->kind = h->kind;
                m->unary = h->unary;
                m->stream = h->stream;
                m->bidi = h->bidi;
                m->implemented = true;
            }
        }
        r->n++;
    }
    r->services[r->nservices++] = svc->name;
    return 0;
}

void rpc_registry_set_inline(rpc_registry *r, const char *service)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->methods[i].service, service) == 0)
            r->methods[i].inline_ok = true;
}

void rpc_registry_intercept(rpc_registry *r, const rpc_interceptor *ic)
{
    if (r->nics < MAX_INTERCEPTORS)
        r->ics[r->nics++] = ic;
}

void rpc_registry_seal(rpc_registry *r)
{
    if (r->n)
        qsort(r->methods, r->n, sizeof *r->methods, cmp_method);
    r->sealed = true;
}

const rpc_method *rpc_registry_find(const rpc_registry *r, const char *path, size_t len)
{
    /* The path comes from the wire: it may hold NUL bytes and need not end at len. */
    if (len == 0 || len >= sizeof r->methods[0].path || memchr(path, 0, len))
        return NULL;
    char key[sizeof r->methods[0].path];
    memcpy(key, path, len);
    key[len] = 0;
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->methods[mid].path, key);
        if (c == 0)
            return &r->methods[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t rpc_registry_count(const rpc_registry *r)
{
    return r->n;
}

const rpc_method *rpc_registry_at(const rpc_registry *r, size_t i)
{
    return i < r->n ? &r->methods[i] : NULL;
}

size_t rpc_registry_interceptor_count(const rpc_registry *r)
{
    return r->nics;
}

const rpc_interceptor *rpc_registry_interceptor_at(const rpc_registry *r, size_t i)
{
    return i < r->nics ? r->ics[i] : NULL;
}

size_t rpc_registry_service_count(const rpc_registry *r)
{
    return r->nservices;
}

const char *rpc_registry_service_at(const rpc_registry *r, size_t i)
{
    return i < r->nservices ? r->services[i] : NULL;
}
