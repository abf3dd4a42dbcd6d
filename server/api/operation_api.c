/* saasodoo.v1.OperationService: get, list, watch (server stream) and cancel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "identity/authz.h"
#include "api/filter.h"
#include "api/handlers.h"
#include "api/pagination.h"
#include "ops/ops.h"
#include "ops/watch.h"

/* "operations/{uuid}" → id; INVALID_ARGUMENT naming the field otherwise. */
static int op_name_parse(const char *name, char id[37], sdo_error *err)
{
    if (!name[0])
        return sdo_fail_field(err, "name", "name is required, e.g. 'operations/{id}'");
    if (strncmp(name, "operations/", 11) != 0 || !sdo_is_uuid(name + 11))
        return sdo_fail_field(err, "name",
                              "name '%.100s' must look like 'operations/{id}' with the id the "
                              "server returned",
                              name);
    memcpy(id, name + 11, 37);
    return 0;
}

static int get_operation(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__GetOperationRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char id[37];
    Saasodoo__V1__Operation *op = NULL;
    if (op_name_parse(req->name, id, &ctx->err) < 0 || ops_get(app->st, id, &op, &ctx->err) < 0)
        return -1;
    *resp = &op->base;
    return 0;
}

static const char *const op_filter_fields[] = {"target", "kind", "done", NULL};

static int list_operations(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListOperationsRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    list_request lr;
    op_query q = {.done = -1};
    if (list_request_parse("operations", "", req->page_size, req->page_token, req->filter,
                           op_filter_fields, &lr, err) < 0 ||
        filter_bool(&lr.filter, "done", &q.done, err) < 0)
        return -1;
    q.limit = lr.limit;
    q.before_seq = lr.key;
    q.target = filter_get(&lr.filter, "target");
    q.kind = filter_get(&lr.filter, "kind");
    q.owner = authz_owner_scope(ctx->principal, ctx->role);
    if (filter_enum(q.kind, &saasodoo__v1__operation__kind__descriptor, "kind", err) < 0)
        return -1;

    Saasodoo__V1__Operation **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    if (ops_list(app->st, &q, &items, &n, &last, &more, err) < 0)
        return -1;
    Saasodoo__V1__ListOperationsResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_operations_response__init(out);
    out->operations = items;
    out->n_operations = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

static int cancel_operation(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CancelOperationRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char id[37];
    Saasodoo__V1__Operation *op = NULL;
    if (op_name_parse(req->name, id, &ctx->err) < 0 ||
        ops_cancel(app->st, id, ctx->principal, &op, &ctx->err) < 0)
        return -1;
    *resp = &op->base;
    return 0;
}

/* ---- WatchOperation: an rpc_stream as the watcher's sink ---- */

static int sink_send(void *arg, const Saasodoo__V1__Operation *op)
{
    return rpc_stream_send(arg, &op->base);
}

static void sink_finish(void *arg, int code, const char *message)
{
    rpc_stream_finish(arg, code, message);
}

static void sink_release(void *arg)
{
    rpc_stream_unref(arg);
}

static op_watch *watch_hub; /* for the cancel callback, which only carries an id */

static void watch_cancelled(rpc_stream *s, void *arg)
{
    (void)s;
    op_watch_unsubscribe(watch_hub, (uint64_t)(uintptr_t)arg);
}

static int watch_operation(rpc_ctx *ctx, const ProtobufCMessage *msg, rpc_stream *s)
{
    const Saasodoo__V1__WatchOperationRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    char id[37];
    if (op_name_parse(req->name, id, &ctx->err) < 0)
        return -1;
    watch_hub = app->watch;
    uint64_t sub = op_watch_next_id(app->watch);
    rpc_stream_on_cancel(s, watch_cancelled, (void *)(uintptr_t)sub);
    op_sink sink = {s, sink_send, sink_finish, sink_release};
    rpc_stream_ref(s);
    if (op_watch_subscribe(app->watch, sub, id, &sink, &ctx->err) < 0) {
        rpc_stream_on_cancel(s, NULL, NULL);
        rpc_stream_unref(s);
        return -1;
    }
    return 0;
}

const rpc_handler operation_handlers[] = {
    {"GetOperation", RPC_UNARY, get_operation, NULL, NULL},
    {"ListOperations", RPC_UNARY, list_operations, NULL, NULL},
    {"WatchOperation", RPC_SERVER_STREAM, NULL, watch_operation, NULL},
    {"CancelOperation", RPC_UNARY, cancel_operation, NULL, NULL},
    {NULL, 0, NULL, NULL, NULL},
};
