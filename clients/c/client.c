/* The saasodoo C client on gRPC core's C API: one channel per client, one pluck
 * completion queue per call, protobuf-c for the messages (see saasodoo/client.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "saasodoo/client.h"

#ifndef SAASODOO_VERSION
#define SAASODOO_VERSION "0.0.0"
#endif

struct sdo_client {
    grpc_channel *channel;
    grpc_slice auth_value; /* "Bearer <token>", valid when has_auth */
    bool has_auth;
    int64_t timeout_ms;
};

/* Tags of the batches a call runs; each is plucked by its own address. */
enum { TAG_START, TAG_RECV, TAG_STATUS, TAG_COUNT };

/* One call in flight. Unary calls keep it on the stack, streams on the heap. */
struct sdo_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    const ProtobufCMessageDescriptor *resp_desc;
    grpc_metadata auth_md;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice status_details;
    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *recv_buf;
    bool status_pending;  /* the RECV_STATUS_ON_CLIENT batch has not been plucked yet */
    bool finished;        /* the final result is in `final` */
    sdo_status final;     /* kept so repeated sdo_stream_next calls report it again */
    char tags[TAG_COUNT]; /* addresses used as completion queue tags */
};

/* --- status helpers ---------------------------------------------------------------- */

static void status_reset(sdo_status *st)
{
    if (st != NULL) {
        st->code = SDO_OK;
        st->message = NULL;
        st->details = NULL;
        st->details_len = 0;
    }
}

/* Fills `st` with a locally detected error and returns -code. */
static int local_error(sdo_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int local_error(sdo_status *st, int code, const char *fmt, ...)
{
    if (st != NULL) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        sdo_status_clear(st);
        st->code = code;
        st->message = strdup(buf); /* NULL when out of memory: the code still stands */
    }
    return -code;
}

/* Deep copy of `src` into `dst` (which holds nothing). Returns false when out of memory;
 * dst then keeps the code only. */
static bool status_copy(sdo_status *dst, const sdo_status *src)
{
    status_reset(dst);
    dst->code = src->code;
    if (src->message != NULL && (dst->message = strdup(src->message)) == NULL)
        return false;
    if (src->details_len > 0) {
        dst->details = malloc(src->details_len);
        if (dst->details == NULL)
            return false;
        memcpy(dst->details, src->details, src->details_len);
        dst->details_len = src->details_len;
    }
    return true;
}

/* Moves the received status of `s` into s->final. */
static void take_status(struct sdo_stream *s)
{
    sdo_status *f = &s->final;
    size_t len = GRPC_SLICE_LENGTH(s->status_details);

    status_reset(f);
    f->code = (s->status >= GRPC_STATUS_OK && s->status <= GRPC_STATUS_UNAUTHENTICATED)
                  ? (int)s->status
                  : SDO_UNKNOWN;
    if (len > 0 && (f->message = malloc(len + 1)) != NULL) {
        memcpy(f->message, GRPC_SLICE_START_PTR(s->status_details), len);
        f->message[len] = '\0';
    }
    for (size_t i = 0; i < s->trailing_md.count; i++) {
        const grpc_metadata *md = &s->trailing_md.metadata[i];
        size_t vlen = GRPC_SLICE_LENGTH(md->value);
        if (grpc_slice_str_cmp(md->key, "grpc-status-details-bin") != 0 || vlen == 0)
            continue;
        free(f->details);
        f->details_len = 0;
        if ((f->details = malloc(vlen)) != NULL) {
            memcpy(f->details, GRPC_SLICE_START_PTR(md->value), vlen);
            f->details_len = vlen;
        }
    }
    s->finished = true;
}

/* Records a local failure as the call's final result. */
static void finish_local(struct sdo_stream *s, int code, const char *message)
{
    sdo_status_clear(&s->final);
    s->final.code = code;
    s->final.message = strdup(message);
    s->finished = true;
}

/* Reports s->final through `st` and returns 0 or -code. */
static int report_final(const struct sdo_stream *s, sdo_status *st)
{
    if (st != NULL) {
        sdo_status_clear(st);
        status_copy(st, &s->final);
    }
    return s->final.code == SDO_OK ? 0 : -s->final.code;
}

/* --- messages ---------------------------------------------------------------------- */

static grpc_byte_buffer *pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* Decodes and frees s->recv_buf. Returns the message, or NULL with s->final set. */
static ProtobufCMessage *unpack(struct sdo_stream *s)
{
    grpc_byte_buffer_reader reader;
    ProtobufCMessage *msg = NULL;

    if (!grpc_byte_buffer_reader_init(&reader, s->recv_buf)) {
        finish_local(s, SDO_INTERNAL, "cannot read the response message");
        goto out;
    }
    grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    msg = protobuf_c_message_unpack(s->resp_desc, NULL, GRPC_SLICE_LENGTH(slice),
                                    GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (msg == NULL)
        finish_local(s, SDO_INTERNAL, "cannot decode the response message");
out:
    grpc_byte_buffer_destroy(s->recv_buf);
    s->recv_buf = NULL;
    return msg;
}

/* --- call lifecycle ---------------------------------------------------------------- */

static gpr_timespec deadline_for(int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static grpc_event pluck(struct sdo_stream *s, int tag)
{
    return grpc_completion_queue_pluck(s->cq, &s->tags[tag], gpr_inf_future(GPR_CLOCK_REALTIME),
                                       NULL);
}

/* Validates the common arguments of a call. */
static int check_args(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, sdo_status *st)
{
    if (c == NULL || method_path == NULL || req == NULL || resp_desc == NULL)
        return local_error(st, SDO_INVALID_ARGUMENT,
                           "missing client, method, request or "
                           "response descriptor");
    if (method_path[0] != '/' || strchr(method_path + 1, '/') == NULL)
        return local_error(st, SDO_INVALID_ARGUMENT,
                           "method path '%s' must look like /package.Service/Method", method_path);
    if (req->descriptor == NULL || req->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC ||
        resp_desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return local_error(st, SDO_INVALID_ARGUMENT,
                           "request or response descriptor is not a "
                           "protobuf-c message descriptor");
    return 0;
}

/* Creates the call and runs its first batch: initial metadata, the request, half-close,
 * the server's initial metadata; the status batch is started alongside. With `unary`
 * the response message is received in the first batch too. Returns 0, or -code with
 * s->final set (the call may then exist and is torn down by call_destroy). */
static int call_start(struct sdo_stream *s, sdo_client *c, const char *method_path,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      int64_t timeout_ms, bool wait_for_ready, bool unary)
{
    grpc_op ops[5];
    size_t n = 0;

    memset(s, 0, sizeof(*s));
    s->resp_desc = resp_desc;
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->status_details = grpc_empty_slice();

    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (s->cq == NULL) {
        finish_local(s, SDO_RESOURCE_EXHAUSTED, "cannot create a completion queue");
        return -SDO_RESOURCE_EXHAUSTED;
    }
    s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                       grpc_slice_from_static_string(method_path), NULL,
                                       deadline_for(timeout_ms), NULL);
    if (s->call == NULL) {
        finish_local(s, SDO_INTERNAL, "cannot create the call");
        return -SDO_INTERNAL;
    }
    s->send_buf = pack(req);

    memset(ops, 0, sizeof(ops));
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->has_auth) {
        s->auth_md.key = grpc_slice_from_static_string("authorization");
        s->auth_md.value = c->auth_value;
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = &s->auth_md;
    }
    if (wait_for_ready)
        ops[n].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                       GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    n++;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = s->send_buf;
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    if (unary) {
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &s->recv_buf;
    }
    grpc_call_error err = grpc_call_start_batch(s->call, ops, n, &s->tags[TAG_START], NULL);
    if (err != GRPC_CALL_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "grpc_call_start_batch failed (%d)", (int)err);
        finish_local(s, SDO_INTERNAL, msg);
        return -SDO_INTERNAL;
    }

    grpc_op st_op;
    memset(&st_op, 0, sizeof(st_op));
    st_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st_op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    st_op.data.recv_status_on_client.status = &s->status;
    st_op.data.recv_status_on_client.status_details = &s->status_details;
    err = grpc_call_start_batch(s->call, &st_op, 1, &s->tags[TAG_STATUS], NULL);
    if (err == GRPC_CALL_OK)
        s->status_pending = true;

    grpc_event ev = pluck(s, TAG_START);
    grpc_byte_buffer_destroy(s->send_buf);
    s->send_buf = NULL;
    if (err != GRPC_CALL_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "grpc_call_start_batch failed (%d)", (int)err);
        finish_local(s, SDO_INTERNAL, msg);
        return -SDO_INTERNAL;
    }
    if (!ev.success || (unary && s->recv_buf == NULL)) {
        /* The call failed or ended without a message: the status says why. */
        pluck(s, TAG_STATUS);
        s->status_pending = false;
        take_status(s);
        if (s->final.code == SDO_OK)
            finish_local(s, SDO_INTERNAL,
                         unary ? "the server sent no response message"
                               : "the call ended before it started");
        return -s->final.code;
    }
    return 0;
}

/* Cancels the call if its status is still outstanding, then frees everything. */
static void call_destroy(struct sdo_stream *s)
{
    if (s->call != NULL) {
        if (s->status_pending) {
            grpc_call_cancel(s->call, NULL);
            pluck(s, TAG_STATUS);
            s->status_pending = false;
        }
        grpc_call_unref(s->call);
        s->call = NULL;
    }
    if (s->cq != NULL) {
        grpc_completion_queue_shutdown(s->cq);
        grpc_event ev;
        do
            ev = grpc_completion_queue_pluck(s->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        while (ev.type != GRPC_QUEUE_SHUTDOWN);
        grpc_completion_queue_destroy(s->cq);
        s->cq = NULL;
    }
    if (s->send_buf != NULL)
        grpc_byte_buffer_destroy(s->send_buf);
    if (s->recv_buf != NULL)
        grpc_byte_buffer_destroy(s->recv_buf);
    s->send_buf = s->recv_buf = NULL;
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->status_details);
    s->status_details = grpc_empty_slice();
    sdo_status_clear(&s->final);
}

/* --- public API -------------------------------------------------------------------- */

const char *sdo_client_version(void)
{
    return SAASODOO_VERSION;
}

/* Reads the PEM file `path` into a NUL-terminated buffer the caller frees. Returns NULL
 * with errno set (see sdo_client_new_config). */
static char *read_ca_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int saved;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return NULL;
    buf = malloc(SDO_MAX_CA_FILE_BYTES + 1);
    if (buf == NULL) {
        errno = ENOMEM;
        goto fail;
    }
    len = fread(buf, 1, SDO_MAX_CA_FILE_BYTES + 1, f);
    if (ferror(f)) {
        errno = errno ? errno : EIO;
        goto fail;
    }
    if (len > SDO_MAX_CA_FILE_BYTES) {
        errno = EFBIG;
        goto fail;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL || strstr(buf, "-----BEGIN CERTIFICATE-----") == NULL) {
        errno = EINVAL;
        goto fail;
    }
    fclose(f);
    return buf;
fail:
    saved = errno;
    free(buf);
    fclose(f);
    errno = saved;
    return NULL;
}

sdo_client *sdo_client_new(const char *address, const char *token)
{
    sdo_client_config cfg = {.token = token, .ca_file = NULL, .tls = false};
    return sdo_client_new_config(address, &cfg);
}

sdo_client *sdo_client_new_config(const char *address, const sdo_client_config *cfg)
{
    static const char bearer[] = "Bearer ";
    const char *token = cfg != NULL ? cfg->token : NULL;
    char *ca_pem = NULL;
    sdo_client *c;

    if (address == NULL || address[0] == '\0') {
        errno = EINVAL;
        return NULL;
    }
    if (token != NULL) {
        for (const char *p = token; *p; p++) {
            if (*p < 0x20 || *p > 0x7e) {
                errno = EINVAL;
                return NULL;
            }
        }
    }
    if (cfg != NULL && cfg->ca_file != NULL) {
        if (cfg->ca_file[0] == '\0') {
            errno = EINVAL;
            return NULL;
        }
        if ((ca_pem = read_ca_file(cfg->ca_file)) == NULL)
            return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        free(ca_pem);
        errno = ENOMEM;
        return NULL;
    }
    c->timeout_ms = SDO_DEFAULT_TIMEOUT_MS;

    grpc_init();
    if (token != NULL && token[0] != '\0') {
        size_t tlen = strlen(token);
        c->auth_value = grpc_slice_malloc(sizeof(bearer) - 1 + tlen);
        memcpy(GRPC_SLICE_START_PTR(c->auth_value), bearer, sizeof(bearer) - 1);
        memcpy(GRPC_SLICE_START_PTR(c->auth_value) + sizeof(bearer) - 1, token, tlen);
        c->has_auth = true;
    }

    char user_agent[] = "saasodoo-c/" SAASODOO_VERSION;
    grpc_arg args[2];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_STRING;
    args[0].key = GRPC_ARG_PRIMARY_USER_AGENT_STRING;
    args[0].value.string = user_agent;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[1].value.integer = SDO_MAX_RESPONSE_BYTES;
    grpc_channel_args chargs = {.num_args = 2, .args = args};

    grpc_channel_credentials *creds;
    if (ca_pem != NULL || (cfg != NULL && cfg->tls))
        creds = grpc_ssl_credentials_create(ca_pem, NULL, NULL, NULL);
    else
        creds = grpc_insecure_credentials_create();
    free(ca_pem);
    if (creds == NULL) {
        sdo_client_free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->channel = grpc_channel_create(address, creds, &chargs);
    grpc_channel_credentials_release(creds);
    if (c->channel == NULL) {
        sdo_client_free(c);
        errno = ENOMEM;
        return NULL;
    }
    return c;
}

void sdo_client_free(sdo_client *c)
{
    if (c == NULL)
        return;
    if (c->channel != NULL)
        grpc_channel_destroy(c->channel);
    if (c->has_auth)
        grpc_slice_unref(c->auth_value);
    free(c);
    grpc_shutdown_blocking();
}

void sdo_client_set_timeout(sdo_client *c, int64_t timeout_ms)
{
    if (c != NULL)
        c->timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

int sdo_call_unary(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                   sdo_status *st)
{
    return sdo_call_unary_opts(c, method_path, req, resp_desc, NULL, resp, st);
}

static int call_unary_once(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, const sdo_call_opts *opts,
                           ProtobufCMessage **resp, sdo_status *st)
{
    struct sdo_stream s;
    ProtobufCMessage *msg = NULL;
    int rc;

    status_reset(st);
    if (resp == NULL)
        return local_error(st, SDO_INVALID_ARGUMENT, "missing response pointer");
    *resp = NULL;
    if ((rc = check_args(c, method_path, req, resp_desc, st)) < 0)
        return rc;

    int64_t timeout = opts != NULL && opts->timeout_ms >= 0 ? opts->timeout_ms : c->timeout_ms;
    rc = call_start(&s, c, method_path, req, resp_desc, timeout,
                    opts != NULL && opts->wait_for_ready, true);
    if (rc == 0) {
        msg = unpack(&s);
        pluck(&s, TAG_STATUS);
        s.status_pending = false;
        if (!s.finished) /* else decoding failed and that error stands */
            take_status(&s);
        if (s.final.code != SDO_OK && msg != NULL) {
            protobuf_c_message_free_unpacked(msg, NULL);
            msg = NULL;
        }
    }
    rc = report_final(&s, st);
    call_destroy(&s);
    if (rc == 0)
        *resp = msg;
    return rc;
}

int sdo_call_unary_opts(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, const sdo_call_opts *opts,
                        ProtobufCMessage **resp, sdo_status *st)
{
    /* A connection that could not be made carried no request, so trying again is safe even
     * for calls that change things; a moment's trouble on a busy machine then goes unseen,
     * while a server that is really down is still reported within a fraction of a second. */
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0) {
            struct timespec pause = {0, 100000000L * attempt};
            nanosleep(&pause, NULL);
            sdo_status_clear(st); /* the failed try's message */
        }
        rc = call_unary_once(c, method_path, req, resp_desc, opts, resp, st);
        if (rc != -SDO_UNAVAILABLE || st == NULL || st->message == NULL ||
            strstr(st->message, "failed to connect") == NULL)
            break;
    }
    return rc;
}

int sdo_stream_open(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, const sdo_call_opts *opts,
                    sdo_stream **out, sdo_status *st)
{
    struct sdo_stream *s;
    int rc;

    status_reset(st);
    if (out == NULL)
        return local_error(st, SDO_INVALID_ARGUMENT, "missing stream pointer");
    *out = NULL;
    if ((rc = check_args(c, method_path, req, resp_desc, st)) < 0)
        return rc;
    s = malloc(sizeof(*s));
    if (s == NULL)
        return local_error(st, SDO_RESOURCE_EXHAUSTED, "out of memory");

    int64_t timeout = opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 0;
    rc = call_start(s, c, method_path, req, resp_desc, timeout,
                    opts != NULL && opts->wait_for_ready, false);
    if (rc < 0) {
        rc = report_final(s, st);
        call_destroy(s);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sdo_stream_next(sdo_stream *s, ProtobufCMessage **msg, sdo_status *st)
{
    status_reset(st);
    if (msg == NULL || s == NULL)
        return local_error(st, SDO_INVALID_ARGUMENT, "missing stream or message pointer");
    *msg = NULL;
    if (s->finished)
        return report_final(s, st);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_buf;
    grpc_call_error err = grpc_call_start_batch(s->call, &op, 1, &s->tags[TAG_RECV], NULL);
    if (err != GRPC_CALL_OK) {
        char m[128];
        snprintf(m, sizeof(m), "grpc_call_start_batch failed (%d)", (int)err);
        finish_local(s, SDO_INTERNAL, m);
        return report_final(s, st);
    }
    grpc_event ev = pluck(s, TAG_RECV);
    if (ev.success && s->recv_buf != NULL) {
        ProtobufCMessage *m = unpack(s);
        if (m != NULL) {
            *msg = m;
            return 1;
        }
        /* Undecodable: stop the call, keep the local error. */
        grpc_call_cancel(s->call, NULL);
        pluck(s, TAG_STATUS);
        s->status_pending = false;
        return report_final(s, st);
    }
    /* End of stream or failure: the status tells which. */
    pluck(s, TAG_STATUS);
    s->status_pending = false;
    take_status(s);
    return s->final.code == SDO_OK ? 0 : report_final(s, st);
}

void sdo_stream_close(sdo_stream *s)
{
    if (s == NULL)
        return;
    call_destroy(s);
    free(s);
}
