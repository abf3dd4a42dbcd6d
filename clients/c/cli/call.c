/* Calls for the saasodoo tool's commands: each connects first (cli_client), reports a
 * failure on stderr and hands back the exit code, so that a command only fills in its
 * request and prints the answer. */
#include "cli.h"

int cli_rpc_failure(int rc, sdo_status *st)
{
    rc = cli_rpc_error(rc, st);
    sdo_status_clear(st);
    return rc;
}

int cli_call(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    sdo_status st = {0};
    int rc;

    *resp = NULL;
    if (cli_client(ctx) == NULL)
        return ctx->client_rc;
    rc = sdo_call_unary(ctx->client, method, req, resp_desc, resp, &st);
    return rc < 0 ? cli_rpc_failure(rc, &st) : CLI_EXIT_OK;
}

int cli_call_show(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc)
{
    ProtobufCMessage *m = NULL;
    int rc = cli_call(ctx, method, req, resp_desc, &m);

    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_show(ctx, m);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int cli_open_stream(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, sdo_stream **s)
{
    sdo_call_opts opts = {.timeout_ms = ctx->timeout_set ? ctx->timeout_ms : 0};
    sdo_status st = {0};
    int rc;

    *s = NULL;
    if (cli_client(ctx) == NULL)
        return ctx->client_rc;
    rc = sdo_stream_open(ctx->client, method, req, resp_desc, &opts, s, &st);
    return rc < 0 ? cli_rpc_failure(rc, &st) : CLI_EXIT_OK;
}
