/* The interceptors every call passes through: request id, access log. */
#include "rpc/interceptors.h"

#include <string.h>

#include "util/log.h"

bool rpc_request_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static int request_id_before(rpc_ctx *ctx)
{
    if (rpc_ctx_metadata(ctx, "x-request-id", ctx->request_id, sizeof ctx->request_id) <= 0 ||
        !rpc_request_id_valid(ctx->request_id))
        sdo_uuid4(ctx->request_id);
    return 0;
}

const rpc_interceptor rpc_request_id_interceptor = {"request_id", request_id_before, NULL, NULL,
                                                    NULL};

static void access_log_after(rpc_ctx *ctx, int code, int64_t duration_us)
{
    log_level lvl =
        code == SDO_INTERNAL || code == SDO_UNKNOWN || code == SDO_DATA_LOSS ? LOG_ERROR : LOG_INFO;
    LOGF(lvl, "rpc method=%s status=%s duration_ms=%.3f request_id=%s peer=%s%s%s", ctx->path,
         sdo_status_name(code), (double)duration_us / 1000.0, ctx->request_id, ctx->peer,
         ctx->principal[0] ? " principal=" : "", ctx->principal);
}

const rpc_interceptor rpc_access_log_interceptor = {"access_log", NULL, access_log_after, NULL,
                                                    NULL};
