/* grpc.health.v1.Health: Check answers from the last store probe; Watch keeps a list of
 * streams and sends each one the new state when it changes. */
#include "rpc/health.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "util/log.h"

typedef struct watcher {
    uint64_t id;
    rpc_stream *stream;
    char *service;
    struct watcher *next;
} watcher;

static pthread_mutex_t health_mu = PTHREAD_MUTEX_INITIALIZER;
static bool health_serving;
static bool health_closed;
static watcher *health_watchers;
static const rpc_registry *health_reg;
static uint64_t health_next_id = 1;

static bool service_known(const char *name)
{
    if (!name[0])
        return true;
    for (size_t i = 0; i < rpc_registry_service_count(health_reg); i++)
        if (strcmp(rpc_registry_service_at(health_reg, i), name) == 0)
            return true;
    return false;
}

static Grpc__Health__V1__HealthCheckResponse__ServingStatus status_of(const char *service)
{
    if (!service_known(service))
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    return health_serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static int health_check(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    if (!service_known(r->service))
        return sdo_fail(&ctx->err, SDO_NOT_FOUND, "service '%s' is not served here", r->service);
    Grpc__Health__V1__HealthCheckResponse *out = sdo_malloc(sizeof *out);
    grpc__health__v1__health_check_response__init(out);
    pthread_mutex_lock(&health_mu);
    out->status = status_of(r->service);
    pthread_mutex_unlock(&health_mu);
    *resp = &out->base;
    return 0;
}

static void send_status(watcher *w)
{
    Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    out.status = status_of(w->service);
    rpc_stream_send(w->stream, &out.base);
}

/* Removes the watcher with this id if still there and returns it. */
static watcher *unlink_watcher(uint64_t id)
{
    for (watcher **pp = &health_watchers; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            watcher *w = *pp;
            *pp = w->next;
            return w;
        }
    }
    return NULL;
}

static void free_watcher(watcher *w)
{
    rpc_stream_unref(w->stream);
    free(w->service);
    free(w);
}

static void watch_cancelled(rpc_stream *s, void *arg)
{
    (void)s;
    pthread_mutex_lock(&health_mu);
    watcher *w = unlink_watcher((uint64_t)(uintptr_t)arg);
    pthread_mutex_unlock(&health_mu);
    if (w)
        free_watcher(w);
}

static int health_watch(rpc_ctx *ctx, const ProtobufCMessage *req, rpc_stream *s)
{
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    pthread_mutex_lock(&health_mu);
    if (health_closed) {
        pthread_mutex_unlock(&health_mu);
        return sdo_fail(&ctx->err, SDO_UNAVAILABLE, "the server is shutting down");
    }
    watcher *w = sdo_calloc(1, sizeof *w);
    w->id = health_next_id++;
    w->stream = s;
    w->service = sdo_strdup(r->service);
    rpc_stream_ref(s);
    rpc_stream_on_cancel(s, watch_cancelled, (void *)(uintptr_t)w->id);
    w->next = health_watchers;
    health_watchers = w;
    send_status(w);
    pthread_mutex_unlock(&health_mu);
    return 0;
}

static const rpc_handler health_handlers[] = {
    {"Check", RPC_UNARY, health_check, NULL, NULL},
    {"Watch", RPC_SERVER_STREAM, NULL, health_watch, NULL},
    {NULL, 0, NULL, NULL, NULL},
};

int rpc_health_register(rpc_registry *reg)
{
    health_reg = reg;
    if (rpc_registry_add(reg, &grpc__health__v1__health__descriptor, health_handlers) < 0)
        return -1;
    rpc_registry_set_inline(reg, grpc__health__v1__health__descriptor.name);
    return 0;
}

void rpc_health_set_serving(bool serving)
{
    pthread_mutex_lock(&health_mu);
    if (health_serving != serving && !health_closed) {
        health_serving = serving;
        log_info("msg=\"health changed\" status=%s", serving ? "SERVING" : "NOT_SERVING");
        for (watcher *w = health_watchers; w; w = w->next)
            send_status(w);
    }
    pthread_mutex_unlock(&health_mu);
}

bool rpc_health_serving(void)
{
    pthread_mutex_lock(&health_mu);
    bool s = health_serving;
    pthread_mutex_unlock(&health_mu);
    return s;
}

void rpc_health_shutdown(void)
{
    pthread_mutex_lock(&health_mu);
    health_serving = false;
    health_closed = true;
    watcher *list = health_watchers;
    health_watchers = NULL;
    for (watcher *w = list; w; w = w->next)
        send_status(w);
    pthread_mutex_unlock(&health_mu);
    while (list) {
        watcher *next = list->next;
        rpc_stream_finish(list->stream, SDO_UNAVAILABLE, "the server is shutting down");
        free_watcher(list);
        list = next;
    }
}
