/* The transport's interface to the layers above: method tables, the per-call context
 * handlers see, and server streams. Handlers never touch gRPC core directly. */
#ifndef SDO_RPC_H
#define SDO_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

typedef struct rpc_stream rpc_stream;
typedef struct rpc_method rpc_method;

/* What a handler knows about its call. Lives as long as the call. */
typedef struct rpc_ctx {
    const rpc_method *method; /* NULL for a path no service serves */
    char path[160];           /* the call's method path as sent */
    char request_id[80];
    char peer[96];
    gpr_timespec deadline;
    int64_t start_us;
    sdo_error err;           /* set by a failing handler or interceptor */
    grpc_metadata_array *md; /* request metadata; valid until the call ends */
    void *app;               /* application state given to rpc_server_new (borrowed) */
    char principal[128];     /* who is calling, once known: "users/{id}"; "" when anonymous */
    int role;                /* the caller's role (identity/authz.h), 0 when anonymous */
    char api_key[48];        /* the API key id the call came with, "" otherwise */
    char target[160];        /* the resource the call acts on, for the audit log */
} rpc_ctx;

/* Unary handler: on success sets *resp (allocated so that protobuf_c_message_free_unpacked
 * can free it: every non-default string and array malloc'ed) and returns 0; on failure fills
 * ctx->err (sdo_fail) and returns a negative value. */
typedef int (*rpc_unary_fn)(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp);

/* Server-streaming handler: returns 0 once it has taken the stream (it then sends with
 * rpc_stream_send or rpc_stream_send_wait and ends with rpc_stream_finish, from any thread),
 * or fails like a unary handler (also after sending) and the transport ends the call with
 * ctx->err. */
typedef int (*rpc_stream_fn)(rpc_ctx *ctx, const ProtobufCMessage *req, rpc_stream *s);

/* Bidirectional handler: called once per request message with one response each. */
typedef int (*rpc_bidi_fn)(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp);

typedef enum { RPC_UNARY, RPC_SERVER_STREAM, RPC_BIDI } rpc_kind;

struct rpc_method {
    char path[160]; /* "/saasodoo.v1.TenantService/GetTenant" */
    const char *service;
    const char *name;
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    rpc_kind kind;
    rpc_unary_fn unary;
    rpc_stream_fn stream;
    rpc_bidi_fn bidi;
    bool implemented;
    bool inline_ok; /* never blocks: runs on the completion-queue thread itself */
};

/* One handler of a service, by method name; NULL-named entry ends a table. */
typedef struct rpc_handler {
    const char *name;
    rpc_kind kind;
    rpc_unary_fn unary;
    rpc_stream_fn stream;
    rpc_bidi_fn bidi;
} rpc_handler;

/* Interceptors run around every call: before (on the completion-queue thread, when the call
 * arrives: must not block) may fail it (fill ctx->err, return < 0); request (on the handler
 * thread, with the decoded request, just before the handler: may wait on the store) may fail
 * it the same way; after (on a completion-queue thread) sees the final status. Any may be
 * NULL. */
typedef struct rpc_interceptor {
    const char *name;
    int (*before)(rpc_ctx *ctx);
    void (*after)(rpc_ctx *ctx, int code, int64_t duration_us);
    int (*request)(rpc_ctx *ctx, const ProtobufCMessage *req);
    /* On the handler thread once a unary or server-streaming handler has returned, with its
     * status: a stream's final status when the handler ended it, 0 when it keeps it open
     * (may wait on the store: the audit log is written here). */
    void (*handled)(rpc_ctx *ctx, int code);
} rpc_interceptor;

/* Copies the value of request metadata `key` into out; returns its length or -1 if absent. */
int rpc_ctx_metadata(const rpc_ctx *ctx, const char *key, char *out, size_t outsz);
/* True once the call's deadline has passed. */
bool rpc_ctx_expired(const rpc_ctx *ctx);
/* Milliseconds left before the deadline, or -1 when there is none. */
int64_t rpc_ctx_remaining_ms(const rpc_ctx *ctx);

/* Sends one message on a server stream; the message is packed at once and stays owned by
 * the caller. Only the latest unsent message is kept when the client reads slower than
 * changes arrive. Returns 0, or -1 when the stream has ended. Thread-safe. */
int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg);
/* Sends one message on a server stream without ever dropping one: waits (blocking the calling
 * thread) until the previous message has gone out, so a slow client slows the sender down.
 * For data that must arrive whole (a file); not to be mixed with rpc_stream_send on the
 * same stream. Returns 0, or -1 when the stream has ended (the client went away, the deadline
 * passed, the server is stopping). */
int rpc_stream_send_wait(rpc_stream *s, const ProtobufCMessage *msg);
/* Ends the stream with a status (message may be NULL). Idempotent. Thread-safe. */
void rpc_stream_finish(rpc_stream *s, int code, const char *message);
/* Keeps the stream alive beyond the handler; each ref needs one unref. */
void rpc_stream_ref(rpc_stream *s);
void rpc_stream_unref(rpc_stream *s);
/* Called once if the client goes away before the stream is finished (from a transport
 * thread). Set it before sending. */
void rpc_stream_on_cancel(rpc_stream *s, void (*fn)(rpc_stream *s, void *arg), void *arg);
/* The context of the stream's call. */
rpc_ctx *rpc_stream_ctx(rpc_stream *s);

#endif
