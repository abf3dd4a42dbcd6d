/* The gRPC server on gRPC core's C API: worker threads, each with its own completion
 * queue, serving unary, server-streaming and bidirectional calls from a registry. */
#ifndef SDO_RPC_SERVER_H
#define SDO_RPC_SERVER_H

#include <stddef.h>

#include "rpc/dispatch.h"

typedef struct rpc_server rpc_server;

typedef struct rpc_server_options {
    const char *listen;        /* host:port */
    int workers;               /* threads */
    int max_receive_bytes;     /* request size cap */
    int handler_threads;       /* threads running handlers that may block (0 = workers) */
    const char *tls_cert_file; /* PEM certificate chain; NULL or "" = plaintext */
    const char *tls_key_file;  /* PEM private key of that certificate */
} rpc_server_options;

/* Creates a server over a sealed registry; app is handed to handlers as ctx->app. */
rpc_server *rpc_server_new(const rpc_server_options *opt, const rpc_registry *reg, void *app);

/* Binds and starts the workers. Returns 0, or -1 with a reason in err. */
int rpc_server_start(rpc_server *s, char *err, size_t errsz);

/* The bound port (useful with port 0). */
int rpc_server_port(const rpc_server *s);

/* Stops accepting calls, lets in-flight calls finish for up to grace_ms, then cancels what
 * is left and joins the workers. */
void rpc_server_shutdown(rpc_server *s, int grace_ms);

/* True once shutdown has begun (handlers of long streams may end early). */
bool rpc_server_stopping(const rpc_server *s);

void rpc_server_free(rpc_server *s);

#endif
