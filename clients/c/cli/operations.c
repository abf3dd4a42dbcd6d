/* `saasodoo operations ...`: get, list, watch and cancel operations through
 * OperationService; also the watch loop behind --wait on tenant commands. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NAME_MAX_LEN 256

/* One line per update in table mode: time, state, progress, step. */
static int print_progress(const Saasodoo__V1__Operation *op)
{
    char ebuf[16], tbuf[SDO_TIMESTAMP_BUFSIZE];
    const char *when = cli_time(op->update_time, tbuf);
    const char *state =
        cli_enum_name(&saasodoo__v1__operation__state__descriptor, (int)op->state, ebuf);
    char *step = cli_clean(op->step);

    printf("%s  %s  %-10s %3d%%  %s\n", when, op->name ? op->name : "-", state,
           (int)op->progress_percent, step ? step : "?");
    free(step);
    if (op->done && op->result != NULL && op->result[0] != '\0') {
        char *result = cli_clean(op->result);
        printf("result: %s\n", result ? result : "?");
        free(result);
    }
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

/* Exit code for a finished operation; prints why it failed. */
static int operation_outcome(const Saasodoo__V1__Operation *op)
{
    bool failed = op->state == SAASODOO__V1__OPERATION__STATE__FAILED ||
                  op->state == SAASODOO__V1__OPERATION__STATE__CANCELLED ||
                  (op->error != NULL && op->error->code != 0);
    if (!failed)
        return CLI_EXIT_OK;

    int code = op->error != NULL ? op->error->code : 0;
    const char *msg = op->error != NULL && op->error->message != NULL && op->error->message[0]
                          ? op->error->message
                          : "(no message)";
    char *clean = cli_clean(msg);
    char ebuf[16];
    if (code > SDO_OK && code <= SDO_UNAUTHENTICATED)
        fprintf(stderr, "saasodoo: %s: operation %s failed: %s\n", sdo_code_name(code),
                op->name ? op->name : "-", clean ? clean : "?");
    else
        fprintf(stderr, "saasodoo: operation %s ended %s: %s\n", op->name ? op->name : "-",
                cli_enum_name(&saasodoo__v1__operation__state__descriptor, (int)op->state, ebuf),
                clean ? clean : "?");
    free(clean);
    return code > SDO_OK && code <= SDO_UNAUTHENTICATED ? CLI_EXIT_RPC + code : CLI_EXIT_FAILURE;
}

int cli_watch_operation(cli_ctx *ctx, const char *name)
{
    Saasodoo__V1__WatchOperationRequest req = SAASODOO__V1__WATCH_OPERATION_REQUEST__INIT;
    Saasodoo__V1__Operation *last = NULL, *op = NULL;
    sdo_stream *s = NULL;
    sdo_status st = {0};
    int rc;

    req.name = (char *)name;
    rc = cli_open_stream(ctx, SDO_METHOD_OPERATION_SERVICE_WATCH_OPERATION, &req.base,
                         &saasodoo__v1__operation__descriptor, &s);
    if (rc != CLI_EXIT_OK)
        return rc;
    while ((rc = sdo_operation_service_watch_operation_next(s, &op, &st)) == 1) {
        int out = ctx->output == OUT_JSON ? cli_print_json(&op->base, true) : print_progress(op);
        if (last != NULL)
            protobuf_c_message_free_unpacked(&last->base, NULL);
        last = op;
        if (out != 0) {
            rc = cli_failure("cannot write the output");
            goto out;
        }
    }
    if (rc < 0) {
        rc = cli_rpc_failure(rc, &st);
        goto out;
    }
    if (last == NULL)
        rc = cli_failure("the watch of %s ended without an update", name);
    else if (!last->done)
        rc = cli_failure("the watch of %s ended before the operation finished", name);
    else
        rc = operation_outcome(last);
out:
    sdo_stream_close(s);
    if (last != NULL)
        protobuf_c_message_free_unpacked(&last->base, NULL);
    return rc;
}

int cli_print_operation(cli_ctx *ctx, const cli_args *a, Saasodoo__V1__Operation *op)
{
    if (args_flag(a, "wait") && !op->done)
        return cli_watch_operation(ctx, op->name);
    return cli_show(ctx, &op->base);
}

int cli_call_operation(cli_ctx *ctx, const cli_args *a, const char *method,
                       const ProtobufCMessage *req)
{
    ProtobufCMessage *m = NULL;
    int rc = cli_call(ctx, method, req, &saasodoo__v1__operation__descriptor, &m);

    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_print_operation(ctx, a, (Saasodoo__V1__Operation *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int operations_get(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__GetOperationRequest req = SAASODOO__V1__GET_OPERATION_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("operations", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    return cli_call_show(ctx, SDO_METHOD_OPERATION_SERVICE_GET_OPERATION, &req.base,
                         &saasodoo__v1__operation__descriptor);
}

static int operations_cancel(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CancelOperationRequest req = SAASODOO__V1__CANCEL_OPERATION_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("operations", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    return cli_call_show(ctx, SDO_METHOD_OPERATION_SERVICE_CANCEL_OPERATION, &req.base,
                         &saasodoo__v1__operation__descriptor);
}

static int operations_watch(cli_ctx *ctx, const cli_args *a)
{
    char name[NAME_MAX_LEN];
    int rc = cli_resource_name("operations", a->pos[0], name, sizeof(name));
    return rc != 0 ? rc : cli_watch_operation(ctx, name);
}

static int add_operation_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__Operation *op = (const Saasodoo__V1__Operation *)m;
    char kbuf[16], sbuf[16], progress[16];
    snprintf(progress, sizeof(progress), "%d%%", (int)op->progress_percent);
    const char *cells[6] = {
        op->name,
        cli_enum_name(&saasodoo__v1__operation__kind__descriptor, (int)op->kind, kbuf),
        op->target,
        cli_enum_name(&saasodoo__v1__operation__state__descriptor, (int)op->state, sbuf),
        progress,
        op->step,
    };
    return table_add(tbl, cells);
}

static int operations_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME", "KIND", "TARGET", "STATE", "PROGRESS", "STEP"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_OPERATION_SERVICE_LIST_OPERATIONS,
        .resp_desc = &saasodoo__v1__list_operations_response__descriptor,
        .items_field = "operations",
        .noun = "operations",
        .ncols = 6,
        .headers = headers,
        .add_row = add_operation_row,
    };
    Saasodoo__V1__ListOperationsRequest req = SAASODOO__V1__LIST_OPERATIONS_REQUEST__INIT;
    return cli_list(ctx, a, &spec, &req.base);
}

static const cli_opt list_opts[] = {
    {"filter", 0, "EXPR", false, "e.g. 'target = \"tenants/acme\" AND done = false'"},
    CLI_OPTS_PAGING("operations"),
    CLI_OPTS_END,
};

const cli_cmd cli_operation_cmds[] = {
    {"operations", "get", "ID", "Show one operation (ID or operations/ID).", cli_no_opts, 1, 1,
     operations_get},
    {"operations", "list", "[options]", "List operations, newest first.", list_opts, 0, 0,
     operations_list},
    {"operations", "watch", "ID",
     "Print each update of an operation until it ends; fails (exit 10+code) if it ends with "
     "an error.",
     cli_no_opts, 1, 1, operations_watch},
    {"operations", "cancel", "ID", "Ask an operation to stop; prints it.", cli_no_opts, 1, 1,
     operations_cancel},
    CLI_CMDS_END,
};
