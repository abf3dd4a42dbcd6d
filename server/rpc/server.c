/* The gRPC server on gRPC core's C API.
 *
 * Each worker thread owns a completion queue and keeps several grpc_server_request_call
 * slots open on it. A call moves through tagged batches: NEW (call arrived) → RECV (request
 * read) → the handler runs on the worker → STATUS (answer sent). Streams add SENT tags, one
 * send in flight at a time with the latest pending message queued behind it (or, with
 * rpc_stream_send_wait, the sender waiting until the send in flight completes, so no message
 * is dropped), and a CLOSE tag that tells when the client goes away. Calls are reference
 * counted: one reference for the call's life until its status is sent, one per batch in
 * flight, and one per holder of a stream (rpc_stream_ref).
 *
 * Handlers that may block (every method but health and reflection waits on PostgreSQL) run
 * on a pool of handler threads fed by a queue, so the completion-queue threads keep moving
 * calls while queries are in flight. */
#include "rpc/server.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "rpc/wirecheck.h"
#include "util/log.h"

#define SLOTS_PER_WORKER 8

typedef enum { TAG_NEW, TAG_RECV, TAG_SENT, TAG_STATUS, TAG_CLOSE } tag_kind;

typedef struct rpc_call rpc_call;

typedef struct call_tag {
    tag_kind kind;
    rpc_call *call;
} call_tag;

typedef struct worker {
    rpc_server *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
} worker;

struct rpc_stream {
    rpc_call *call;
};

struct rpc_call {
    worker *w;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    int cancelled;
    const rpc_method *m;
    rpc_ctx ctx;
    call_tag t_new, t_recv, t_sent, t_status, t_close;
    rpc_stream stream;
    rpc_call *q_next; /* handler queue link */
    int recv_success;

    pthread_mutex_t mu;
    pthread_cond_t sent_cv; /* a send completed or the stream ended (rpc_stream_send_wait) */
    int refs;
    bool initial_sent;
    bool send_in_flight;
    grpc_byte_buffer *pending;
    bool finish_pending;
    int finish_code;
    char *finish_msg;
    bool status_sent;
    bool ended; /* no more sends accepted */
    void (*on_cancel)(rpc_stream *, void *);
    void *cancel_arg;

    /* kept alive until the batches using them complete */
    grpc_metadata initial_md[1];
    grpc_slice status_slice;
    grpc_metadata trailer[1];
    bool has_trailer;
    grpc_byte_buffer *send_buf;
    int status_code;
};

struct rpc_server {
    rpc_server_options opt;
    char *listen;
    const rpc_registry *reg;
    void *app;
    grpc_server *server;
    grpc_completion_queue *shutdown_cq;
    worker *workers;
    int nworkers;
    int port;
    atomic_bool stopping;
    bool started;

    /* handler threads and their queue of received calls */
    pthread_t *handlers;
    int nhandlers;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    rpc_call *q_head, *q_tail;
    bool q_closed;
};

static void call_unref(rpc_call *c);
static void finish_call(rpc_call *c, int code, const ProtobufCMessage *resp);

/* ---- calls ---------------------------------------------------------------------------- */

static void post_request(worker *w)
{
    rpc_server *s = w->srv;
    if (atomic_load(&s->stopping))
        return;
    rpc_call *c = sdo_calloc(1, sizeof *c);
    c->w = w;
    c->refs = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->sent_cv, NULL);
    c->t_new = (call_tag){TAG_NEW, c};
    c->t_recv = (call_tag){TAG_RECV, c};
    c->t_sent = (call_tag){TAG_SENT, c};
    c->t_status = (call_tag){TAG_STATUS, c};
    c->t_close = (call_tag){TAG_CLOSE, c};
    c->stream.call = c;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    grpc_call_error e =
        grpc_server_request_call(s->server, &c->call, &c->details, &c->md, w->cq, w->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        /* Only during shutdown. */
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->sent_cv);
        free(c);
    }
}

static void call_free(rpc_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    if (c->pending)
        grpc_byte_buffer_destroy(c->pending);
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    if (c->initial_sent)
        grpc_slice_unref(c->initial_md[0].value);
    if (c->status_sent)
        grpc_slice_unref(c->status_slice);
    if (c->has_trailer)
        grpc_slice_unref(c->trailer[0].value);
    free(c->finish_msg);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->sent_cv);
    free(c);
}

static void call_ref_locked(rpc_call *c)
{
    c->refs++;
}

static void call_unref(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        call_free(c);
}

static void start_batch(rpc_call *c, const grpc_op *ops, size_t n, call_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        /* A programming error (e.g. two sends at once); the tag will never come. */
        log_error("msg=\"grpc_call_start_batch failed\" method=%s error=%d",
                  c->ctx.method ? c->ctx.method->path : "?", (int)e);
        c->refs--; /* caller holds the lock and took a ref for this batch */
    }
}

/* Fills the initial metadata op (x-request-id) the first time; call with the lock held. */
static void add_initial_md(rpc_call *c, grpc_op *op)
{
    memset(op, 0, sizeof *op);
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    c->initial_md[0].key = grpc_slice_from_static_string("x-request-id");
    c->initial_md[0].value = grpc_slice_from_copied_string(c->ctx.request_id);
    op->data.send_initial_metadata.count = 1;
    op->data.send_initial_metadata.metadata = c->initial_md;
    c->initial_sent = true;
}

static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice sl = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Sends the final status (and, for unary calls, the response). Lock held. */
static void send_status_locked(rpc_call *c, int code, const char *message,
                               const ProtobufCMessage *resp)
{
    grpc_op ops[4];
    size_t n = 0;
    if (!c->initial_sent)
        add_initial_md(c, &ops[n++]);
    if (resp) {
        c->send_buf = pack_message(resp);
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->send_buf;
        n++;
    }
    c->status_slice = grpc_slice_from_copied_string(message ? message : "");
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n].data.send_status_from_server.status_details = &c->status_slice;
    grpc_slice details;
    if (code != 0 && (int)c->ctx.err.code == code && rpc_status_details(&c->ctx.err, &details)) {
        c->trailer[0].key = grpc_slice_from_static_string("grpc-status-details-bin");
        c->trailer[0].value = details;
        c->has_trailer = true;
        ops[n].data.send_status_from_server.trailing_metadata_count = 1;
        ops[n].data.send_status_from_server.trailing_metadata = c->trailer;
    }
    n++;
    if (!c->m || c->m->kind == RPC_UNARY) {
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
        n++;
    }
    c->status_sent = true;
    c->ended = true;
    c->status_code = code;
    pthread_cond_broadcast(&c->sent_cv);
    call_ref_locked(c);
    start_batch(c, ops, n, &c->t_status);
}

/* Ends the call with a status; for errors the message comes from ctx.err. */
static void finish_call(rpc_call *c, int code, const ProtobufCMessage *resp)
{
    pthread_mutex_lock(&c->mu);
    if (!c->status_sent) {
        const char *msg = code == 0 ? "" : c->ctx.err.message;
        if (c->send_in_flight) {
            c->finish_pending = true;
            c->finish_code = code;
            free(c->finish_msg);
            c->finish_msg = sdo_strdup(msg);
            c->ended = true;
            pthread_cond_broadcast(&c->sent_cv);
        } else {
            send_status_locked(c, code, msg, resp);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void fail_call(rpc_call *c, sdo_status code, const char *fmt, const char *arg)
{
    sdo_fail(&c->ctx.err, code, fmt, arg);
    finish_call(c, code, NULL);
}

/* Starts a RECV_CLOSE_ON_SERVER batch so a client that leaves a stream is noticed. */
static void watch_close(rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    pthread_mutex_lock(&c->mu);
    call_ref_locked(c);
    start_batch(c, &op, 1, &c->t_close);
    pthread_mutex_unlock(&c->mu);
}

static void recv_message(rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    pthread_mutex_lock(&c->mu);
    call_ref_locked(c);
    start_batch(c, &op, 1, &c->t_recv);
    pthread_mutex_unlock(&c->mu);
}

static void run_interceptors_after(rpc_call *c, int code)
{
    const rpc_registry *r = c->w->srv->reg;
    int64_t dur = sdo_mono_us() - c->ctx.start_us;
    for (size_t i = rpc_registry_interceptor_count(r); i-- > 0;) {
        const rpc_interceptor *ic = rpc_registry_interceptor_at(r, i);
        if (ic->after)
            ic->after(&c->ctx, code, dur);
    }
}

static int run_interceptors_before(rpc_call *c)
{
    const rpc_registry *r = c->w->srv->reg;
    for (size_t i = 0; i < rpc_registry_interceptor_count(r); i++) {
        const rpc_interceptor *ic = rpc_registry_interceptor_at(r, i);
        if (ic->before && ic->before(&c->ctx) < 0) {
            if (c->ctx.err.code == SDO_OK)
                sdo_fail(&c->ctx.err, SDO_INTERNAL, "interceptor %s refused the call", ic->name);
            return -1;
        }
    }
    return 0;
}

static int run_interceptors_request(rpc_call *c, const ProtobufCMessage *req)
{
    const rpc_registry *r = c->w->srv->reg;
    for (size_t i = 0; i < rpc_registry_interceptor_count(r); i++) {
        const rpc_interceptor *ic = rpc_registry_interceptor_at(r, i);
        if (ic->request && ic->request(&c->ctx, req) < 0) {
            if (c->ctx.err.code == SDO_OK)
                sdo_fail(&c->ctx.err, SDO_INTERNAL, "interceptor %s refused the call", ic->name);
            return -1;
        }
    }
    return 0;
}

static void run_interceptors_handled(rpc_call *c, int code)
{
    const rpc_registry *r = c->w->srv->reg;
    for (size_t i = 0; i < rpc_registry_interceptor_count(r); i++) {
        const rpc_interceptor *ic = rpc_registry_interceptor_at(r, i);
        if (ic->handled)
            ic->handled(&c->ctx, code);
    }
}

static void on_new_call(rpc_call *c)
{
    rpc_server *s = c->w->srv;
    post_request(c->w);

    rpc_ctx *ctx = &c->ctx;
    ctx->start_us = sdo_mono_us();
    ctx->deadline = c->details.deadline;
    ctx->md = &c->md;
    ctx->app = s->app;
    const char *path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    size_t plen = GRPC_SLICE_LENGTH(c->details.method);
    snprintf(ctx->path, sizeof ctx->path, "%.*s",
             (int)(plen < sizeof ctx->path ? plen : sizeof ctx->path - 1), path);
    char *peer = grpc_call_get_peer(c->call);
    if (peer) {
        sdo_strlcpy(ctx->peer, peer, sizeof ctx->peer);
        gpr_free(peer);
    }
    c->m = rpc_registry_find(s->reg, path, plen);
    ctx->method = c->m;

    if (run_interceptors_before(c) < 0) {
        finish_call(c, ctx->err.code, NULL);
        return;
    }
    if (!c->m) {
        fail_call(c, SDO_UNIMPLEMENTED, "method %s is not served by this server", ctx->path);
        return;
    }
    if (c->m->kind != RPC_UNARY && c->m->implemented)
        watch_close(c);
    recv_message(c);
}

/* Reads the received message into a protobuf-c message; NULL with ctx.err set on failure. */
static ProtobufCMessage *decode_request(rpc_call *c)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, c->recv)) {
        sdo_fail(&c->ctx.err, SDO_INVALID_ARGUMENT, "the request body could not be read");
        return NULL;
    }
    grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    char field[200];
    if (rpc_check_strings(c->m->input, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), field,
                          sizeof field) == 1) {
        grpc_slice_unref(sl);
        grpc_byte_buffer_destroy(c->recv);
        c->recv = NULL;
        sdo_fail_field(&c->ctx.err, field, "%s must be valid UTF-8 text without NUL characters",
                       field);
        return NULL;
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(c->m->input, NULL, GRPC_SLICE_LENGTH(sl),
                                                      GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (!req)
        sdo_fail(&c->ctx.err, SDO_INVALID_ARGUMENT, "the request body is not a valid %s message",
                 c->m->input->name);
    return req;
}

static void on_recv(rpc_call *c, int success)
{
    rpc_ctx *ctx = &c->ctx;
    const rpc_method *m = c->m;

    if (!success) { /* the call was cancelled before the message came */
        finish_call(c, SDO_CANCELLED, NULL);
        return;
    }
    if (!c->recv) {
        if (m->kind == RPC_BIDI) { /* the client finished sending */
            finish_call(c, SDO_OK, NULL);
            return;
        }
        fail_call(c, SDO_INVALID_ARGUMENT, "the request message is missing (%s)", m->input->name);
        return;
    }
    if (rpc_ctx_expired(ctx)) {
        fail_call(c, SDO_DEADLINE_EXCEEDED, "the deadline of %s expired before it started",
                  m->path);
        return;
    }
    ProtobufCMessage *req = decode_request(c);
    if (!req) {
        finish_call(c, ctx->err.code, NULL);
        return;
    }
    if (run_interceptors_request(c, req) < 0) {
        protobuf_c_message_free_unpacked(req, NULL);
        finish_call(c, ctx->err.code, NULL);
        return;
    }
    if (!m->implemented) { /* after the interceptors: anonymous callers learn nothing */
        protobuf_c_message_free_unpacked(req, NULL);
        fail_call(c, SDO_UNIMPLEMENTED, "method %s is not implemented yet", m->path);
        return;
    }

    ProtobufCMessage *resp = NULL;
    int rc;
    switch (m->kind) {
    case RPC_UNARY:
        rc = m->unary(ctx, req, &resp);
        protobuf_c_message_free_unpacked(req, NULL);
        if (rpc_ctx_expired(ctx)) { /* the client has given up: say so, whatever happened */
            if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
            resp = NULL;
            sdo_fail(&ctx->err, SDO_DEADLINE_EXCEEDED, "the deadline of %s expired", m->path);
            rc = -1;
        }
        if (rc < 0 && ctx->err.code == SDO_OK)
            sdo_fail(&ctx->err, SDO_INTERNAL, "internal error (request id %s)", ctx->request_id);
        run_interceptors_handled(c, rc < 0 ? (int)ctx->err.code : 0);
        finish_call(c, rc < 0 ? (int)ctx->err.code : 0, rc < 0 ? NULL : resp);
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        break;
    case RPC_SERVER_STREAM:
        rc = m->stream(ctx, req, &c->stream);
        protobuf_c_message_free_unpacked(req, NULL);
        if (rc < 0) {
            if (ctx->err.code == SDO_OK)
                sdo_fail(&ctx->err, SDO_INTERNAL, "internal error (request id %s)",
                         ctx->request_id);
            run_interceptors_handled(c, (int)ctx->err.code);
            finish_call(c, ctx->err.code, NULL);
        } else {
            /* A stream the handler already ended reports its status; one it keeps open
             * (a watch) reports OK: it was taken. */
            pthread_mutex_lock(&c->mu);
            int code = c->status_sent ? c->status_code : c->finish_pending ? c->finish_code : 0;
            pthread_mutex_unlock(&c->mu);
            run_interceptors_handled(c, code);
        }
        break;
    case RPC_BIDI:
        rc = m->bidi(ctx, req, &resp);
        protobuf_c_message_free_unpacked(req, NULL);
        if (rc < 0) {
            finish_call(c, ctx->err.code ? (int)ctx->err.code : SDO_INTERNAL, NULL);
        } else {
            rpc_stream_send(&c->stream, resp); /* its completion asks for the next message */
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        break;
    }
}

static void on_sent(rpc_call *c, int success)
{
    pthread_mutex_lock(&c->mu);
    c->send_in_flight = false;
    pthread_cond_broadcast(&c->sent_cv);
    if (c->send_buf) {
        grpc_byte_buffer_destroy(c->send_buf);
        c->send_buf = NULL;
    }
    if (!success) {
        c->ended = true;
        if (c->pending) {
            grpc_byte_buffer_destroy(c->pending);
            c->pending = NULL;
        }
    }
    bool next_recv = false;
    if (c->pending) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_MESSAGE;
        c->send_buf = c->pending;
        c->pending = NULL;
        op.data.send_message.send_message = c->send_buf;
        c->send_in_flight = true;
        call_ref_locked(c);
        start_batch(c, &op, 1, &c->t_sent);
    } else if (c->finish_pending && !c->status_sent) {
        c->finish_pending = false;
        send_status_locked(c, c->finish_code, c->finish_msg, NULL);
    } else if (c->m->kind == RPC_BIDI && success && !c->status_sent) {
        next_recv = true;
    } else if (!success && !c->status_sent) {
        send_status_locked(c, SDO_CANCELLED, "the client went away", NULL);
    }
    pthread_mutex_unlock(&c->mu);
    if (next_recv)
        recv_message(c);
}

static void on_status(rpc_call *c)
{
    int code = c->status_code;
    if (code != 0 && code != (int)c->ctx.err.code)
        c->ctx.err.code = (sdo_status)code;
    run_interceptors_after(c, code);
}

static void on_close(rpc_call *c)
{
    void (*fn)(rpc_stream *, void *) = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->cancelled || !c->status_sent) {
        c->ended = true;
        pthread_cond_broadcast(&c->sent_cv);
        fn = c->on_cancel;
        arg = c->cancel_arg;
        c->on_cancel = NULL;
        /* The client left (cancel, deadline): end the call so its life reference goes and
         * the access log sees it. A send in flight ends it from on_sent instead. */
        if (!c->status_sent && !c->finish_pending) {
            sdo_fail(&c->ctx.err, SDO_CANCELLED, "the client went away");
            if (c->send_in_flight) {
                c->finish_pending = true;
                c->finish_code = SDO_CANCELLED;
                free(c->finish_msg);
                c->finish_msg = sdo_strdup("the client went away");
            } else {
                send_status_locked(c, SDO_CANCELLED, "the client went away", NULL);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (fn)
        fn(&c->stream, arg);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < SLOTS_PER_WORKER; i++)
        post_request(w);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        call_tag *t = ev.tag;
        rpc_call *c = t->call;
        switch (t->kind) {
        case TAG_NEW:
            if (!ev.success) { /* server shutting down: the slot comes back unused */
                grpc_call_details_destroy(&c->details);
                grpc_metadata_array_destroy(&c->md);
                pthread_mutex_destroy(&c->mu);
                pthread_cond_destroy(&c->sent_cv);
                free(c);
                continue;
            }
            on_new_call(c);
            continue; /* the life reference stays until the status is sent */
        case TAG_RECV:
            if (c->m && !c->m->inline_ok && ev.success && c->recv) {
                /* to a handler thread, which drops the batch's reference when done */
                c->recv_success = ev.success;
                rpc_server *s = c->w->srv;
                pthread_mutex_lock(&s->q_mu);
                c->q_next = NULL;
                if (s->q_tail)
                    s->q_tail->q_next = c;
                else
                    s->q_head = c;
                s->q_tail = c;
                pthread_cond_signal(&s->q_cv);
                pthread_mutex_unlock(&s->q_mu);
                continue;
            }
            on_recv(c, ev.success);
            break;
        case TAG_SENT:
            on_sent(c, ev.success);
            break;
        case TAG_STATUS:
            on_status(c);
            call_unref(c); /* the life reference */
            break;
        case TAG_CLOSE:
            on_close(c);
            break;
        }
        call_unref(c); /* the batch's reference */
    }
    return NULL;
}

static void *handler_main(void *arg)
{
    rpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->q_mu);
        while (!s->q_head && !s->q_closed)
            pthread_cond_wait(&s->q_cv, &s->q_mu);
        rpc_call *c = s->q_head;
        if (c) {
            s->q_head = c->q_next;
            if (!s->q_head)
                s->q_tail = NULL;
        }
        pthread_mutex_unlock(&s->q_mu);
        if (!c)
            return NULL; /* closed and drained */
        on_recv(c, c->recv_success);
        call_unref(c); /* the RECV batch's reference */
    }
}

/* ---- streams --------------------------------------------------------------------------- */

/* Starts the SEND_MESSAGE batch of bb (with the initial metadata the first time). Lock held,
 * no send in flight. */
static void start_send_locked(rpc_call *c, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = 0;
    if (!c->initial_sent)
        add_initial_md(c, &ops[n++]);
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    c->send_buf = bb;
    ops[n].data.send_message.send_message = bb;
    n++;
    c->send_in_flight = true;
    call_ref_locked(c);
    start_batch(c, ops, n, &c->t_sent);
}

int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg)
{
    rpc_call *c = s->call;
    pthread_mutex_lock(&c->mu);
    if (c->ended || c->status_sent) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    grpc_byte_buffer *bb = pack_message(msg);
    if (c->send_in_flight) {
        if (c->pending)
            grpc_byte_buffer_destroy(c->pending);
        c->pending = bb;
    } else {
        start_send_locked(c, bb);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int rpc_stream_send_wait(rpc_stream *s, const ProtobufCMessage *msg)
{
    rpc_call *c = s->call;
    grpc_byte_buffer *bb = pack_message(msg); /* packed outside the lock */
    pthread_mutex_lock(&c->mu);
    while (!c->ended && !c->status_sent && (c->send_in_flight || c->pending))
        pthread_cond_wait(&c->sent_cv, &c->mu);
    if (c->ended || c->status_sent) {
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    start_send_locked(c, bb);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void rpc_stream_finish(rpc_stream *s, int code, const char *message)
{
    rpc_call *c = s->call;
    if (code != 0)
        sdo_fail(&c->ctx.err, (sdo_status)code, "%s", message ? message : "");
    pthread_mutex_lock(&c->mu);
    if (c->status_sent || c->finish_pending) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (c->send_in_flight) {
        c->finish_pending = true;
        c->finish_code = code;
        free(c->finish_msg);
        c->finish_msg = sdo_strdup(message ? message : "");
        c->ended = true;
        pthread_cond_broadcast(&c->sent_cv);
    } else {
        send_status_locked(c, code, message, NULL);
    }
    pthread_mutex_unlock(&c->mu);
}

void rpc_stream_ref(rpc_stream *s)
{
    pthread_mutex_lock(&s->call->mu);
    s->call->refs++;
    pthread_mutex_unlock(&s->call->mu);
}

void rpc_stream_unref(rpc_stream *s)
{
    call_unref(s->call);
}

void rpc_stream_on_cancel(rpc_stream *s, void (*fn)(rpc_stream *, void *), void *arg)
{
    pthread_mutex_lock(&s->call->mu);
    s->call->on_cancel = fn;
    s->call->cancel_arg = arg;
    pthread_mutex_unlock(&s->call->mu);
}

rpc_ctx *rpc_stream_ctx(rpc_stream *s)
{
    return &s->call->ctx;
}

/* ---- context helpers ------------------------------------------------------------------- */

int rpc_ctx_metadata(const rpc_ctx *ctx, const char *key, char *out, size_t outsz)
{
    if (!ctx->md)
        return -1;
    size_t klen = strlen(key);
    for (size_t i = 0; i < ctx->md->count; i++) {
        const grpc_metadata *m = &ctx->md->metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == klen &&
            memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0) {
            size_t vlen = GRPC_SLICE_LENGTH(m->value);
            if (vlen >= outsz)
                vlen = outsz - 1;
            memcpy(out, GRPC_SLICE_START_PTR(m->value), vlen);
            out[vlen] = 0;
            return (int)vlen;
        }
    }
    return -1;
}

bool rpc_ctx_expired(const rpc_ctx *ctx)
{
    if (gpr_time_cmp(ctx->deadline, gpr_inf_future(ctx->deadline.clock_type)) == 0)
        return false;
    return gpr_time_cmp(gpr_now(ctx->deadline.clock_type), ctx->deadline) >= 0;
}

int64_t rpc_ctx_remaining_ms(const rpc_ctx *ctx)
{
    if (gpr_time_cmp(ctx->deadline, gpr_inf_future(ctx->deadline.clock_type)) == 0)
        return -1;
    gpr_timespec left = gpr_time_sub(ctx->deadline, gpr_now(ctx->deadline.clock_type));
    int64_t ms = left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return ms < 0 ? 0 : ms;
}

/* ---- server ---------------------------------------------------------------------------- */

rpc_server *rpc_server_new(const rpc_server_options *opt, const rpc_registry *reg, void *app)
{
    rpc_server *s = sdo_calloc(1, sizeof *s);
    s->opt = *opt;
    s->listen = sdo_strdup(opt->listen);
    s->opt.listen = s->listen;
    s->reg = reg;
    s->app = app;
    s->nworkers = opt->workers > 0 ? opt->workers : 1;
    s->nhandlers = opt->handler_threads > 0 ? opt->handler_threads : s->nworkers;
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    atomic_init(&s->stopping, false);
    return s;
}

#define TLS_MAX_PEM_BYTES (1 << 20)

/* Reads a PEM file whole (at most TLS_MAX_PEM_BYTES). Returns a malloc'ed NUL-terminated
 * text, or NULL with the reason in err naming key (the configuration key). */
static char *read_pem_file(const char *path, const char *key, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s '%s' cannot be opened: %m", key, path);
        return NULL;
    }
    char *text = sdo_malloc(TLS_MAX_PEM_BYTES + 1);
    size_t n = fread(text, 1, TLS_MAX_PEM_BYTES + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || n == 0 || n > TLS_MAX_PEM_BYTES) {
        snprintf(err, errsz, "%s '%s' %s", key, path,
                 failed   ? "cannot be read"
                 : n == 0 ? "is empty"
                          : "is larger than 1 MiB");
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* Checks that cert holds a PEM certificate and key a PEM private key that belongs to it, so a
 * mistake is reported at start with the file's name rather than at the first handshake. */
static int check_key_pair(const rpc_server_options *opt, const char *cert, const char *key,
                          char *err, size_t errsz)
{
    int rc = -1;
    BIO *cb = BIO_new_mem_buf(cert, -1);
    BIO *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pk = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    if (!x)
        snprintf(err, errsz, "security.tls_cert_file '%s' holds no PEM certificate",
                 opt->tls_cert_file);
    else if (!pk)
        snprintf(err, errsz,
                 "security.tls_key_file '%s' holds no PEM private key (or one with a passphrase)",
                 opt->tls_key_file);
    else if (X509_check_private_key(x, pk) != 1)
        snprintf(err, errsz,
                 "security.tls_key_file '%s' is not the key of the certificate in "
                 "security.tls_cert_file '%s'",
                 opt->tls_key_file, opt->tls_cert_file);
    else
        rc = 0;
    ERR_clear_error();
    EVP_PKEY_free(pk);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    return rc;
}

/* The credentials the port is bound with: TLS (gRPC core's SSL server credentials, no client
 * certificate asked for) when a certificate and key are configured, else plaintext. NULL with
 * the reason in err when the files cannot be used. */
static grpc_server_credentials *server_credentials(const rpc_server_options *opt, char *err,
                                                   size_t errsz)
{
    if (!opt->tls_cert_file || !opt->tls_cert_file[0])
        return grpc_insecure_server_credentials_create();
    grpc_server_credentials *creds = NULL;
    char *key = NULL;
    char *cert = read_pem_file(opt->tls_cert_file, "security.tls_cert_file", err, errsz);
    if (!cert)
        goto out;
    key = read_pem_file(opt->tls_key_file ? opt->tls_key_file : "", "security.tls_key_file", err,
                        errsz);
    if (!key || check_key_pair(opt, cert, key, err, errsz) < 0)
        goto out;
    grpc_ssl_pem_key_cert_pair pair = {key, cert}; /* copied by gRPC */
    creds = grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
    if (!creds)
        snprintf(err, errsz, "gRPC cannot use the TLS certificate '%s' and key '%s'",
                 opt->tls_cert_file, opt->tls_key_file);
out:
    if (key) {
        OPENSSL_cleanse(key, strlen(key));
        free(key);
    }
    free(cert);
    return creds;
}

int rpc_server_start(rpc_server *s, char *err, size_t errsz)
{
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = s->opt.max_receive_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[1].value.integer = 0;
    grpc_channel_args cargs = {2, args};

    s->server = grpc_server_create(&cargs, NULL);
    s->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);
    s->workers = sdo_calloc((size_t)s->nworkers, sizeof(worker));
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].srv = s;
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
    }
    grpc_server_credentials *creds = server_credentials(&s->opt, err, errsz);
    if (!creds)
        return -1;
    s->port = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        snprintf(err, errsz, "cannot listen on %s (address in use or invalid)", s->listen);
        return -1;
    }
    if (s->opt.tls_cert_file && s->opt.tls_cert_file[0])
        log_info("msg=\"serving gRPC over TLS\" cert=\"%s\"", s->opt.tls_cert_file);
    grpc_server_start(s->server);
    s->started = true;
    s->handlers = sdo_calloc((size_t)s->nhandlers, sizeof(pthread_t));
    for (int i = 0; i < s->nhandlers; i++)
        pthread_create(&s->handlers[i], NULL, handler_main, s);
    for (int i = 0; i < s->nworkers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    return 0;
}

int rpc_server_port(const rpc_server *s)
{
    return s->port;
}

bool rpc_server_stopping(const rpc_server *s)
{
    return atomic_load(&s->stopping);
}

void rpc_server_shutdown(rpc_server *s, int grace_ms)
{
    if (!s->started)
        return;
    atomic_store(&s->stopping, true);
    int tag;
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, &tag);
    grpc_event ev = grpc_completion_queue_pluck(
        s->shutdown_cq, &tag,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(grace_ms, GPR_TIMESPAN)),
        NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        log_warn("msg=\"grace period over, cancelling the calls still running\" grace_ms=%d",
                 grace_ms);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_pluck(s->shutdown_cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    /* handlers finish what is queued (their answers need the queues still running) */
    pthread_mutex_lock(&s->q_mu);
    s->q_closed = true;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    for (int i = 0; i < s->nhandlers; i++)
        pthread_join(s->handlers[i], NULL);
    for (int i = 0; i < s->nworkers; i++)
        grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
    grpc_completion_queue_shutdown(s->shutdown_cq);
    while (
        grpc_completion_queue_pluck(s->shutdown_cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
            .type != GRPC_QUEUE_SHUTDOWN)
        ;
    s->started = false;
}

void rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    if (s->server)
        grpc_server_destroy(s->server);
    for (int i = 0; s->workers && i < s->nworkers; i++)
        grpc_completion_queue_destroy(s->workers[i].cq);
    if (s->shutdown_cq)
        grpc_completion_queue_destroy(s->shutdown_cq);
    free(s->workers);
    free(s->handlers);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    free(s->listen);
    free(s);
}
