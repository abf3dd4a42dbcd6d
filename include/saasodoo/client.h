/* The saasodoo C client: calls the saasodoo.v1 gRPC services over gRPC core's C API.
 * Generic unary and server-streaming calls on protobuf-c messages, plus one typed
 * wrapper per RPC generated from the service descriptors (saasodoo/client_stubs.h). */
#ifndef SAASODOO_CLIENT_H
#define SAASODOO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "saasodoo/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A connection to one server: a gRPC channel plus the caller's credentials. Safe to
 * share between threads for calls; configure it (sdo_client_set_timeout) before that. */
typedef struct sdo_client sdo_client;

/* An open server-streaming call. Used by one thread at a time. */
typedef struct sdo_stream sdo_stream;

/* Per-call settings. Pass NULL to use the client's defaults. */
typedef struct sdo_call_opts {
    /* Deadline for the whole call in milliseconds: > 0 sets one, 0 means none, < 0 uses
     * the client's default (unary) or none (streams). */
    int64_t timeout_ms;
    /* Wait for the server to become reachable instead of failing with UNAVAILABLE. */
    bool wait_for_ready;
} sdo_call_opts;

/* Default unary deadline of a new client, in milliseconds. */
#define SDO_DEFAULT_TIMEOUT_MS 30000
/* Largest response message the client accepts, in bytes. */
#define SDO_MAX_RESPONSE_BYTES (16 * 1024 * 1024)

/* Creates a client for `address` ("host:port" or any gRPC target URI) over plaintext
 * HTTP/2 (sdo_client_new_config for TLS). When `token` is non-NULL and non-empty every call carries
 * `authorization: Bearer <token>`. Both strings are copied. Returns NULL (errno EINVAL)
 * if the address is empty or the token holds characters a header value may not
 * (anything outside printable ASCII), or NULL (errno ENOMEM) when out of memory.
 * Connecting is lazy: an unreachable server shows up as UNAVAILABLE on the first call.
 * Free with sdo_client_free(). */
sdo_client *sdo_client_new(const char *address, const char *token);

/* How sdo_client_new_config connects. Zero-initialise it and set what you need. */
typedef struct sdo_client_config {
    /* Sent as `authorization: Bearer <token>` on every call when non-NULL and non-empty:
     * an access token or an API key. Printable ASCII only. */
    const char *token;
    /* PEM file holding the root certificates the server's certificate must chain to.
     * Setting it turns TLS on. */
    const char *ca_file;
    /* TLS with the default roots (gRPC's GRPC_DEFAULT_SSL_ROOTS_FILE_PATH or its bundled
     * ones) when no ca_file is given. Ignored when ca_file is set. */
    bool tls;
} sdo_client_config;

/* Largest CA file sdo_client_new_config reads, in bytes. */
#define SDO_MAX_CA_FILE_BYTES (1024 * 1024)

/* Creates a client for `address` as `cfg` says (NULL: plaintext, no token). All strings
 * are copied or read at once, so `cfg` may go away afterwards. Returns NULL with errno:
 * EINVAL (empty address, a token with characters a header value may not hold, a CA
 * file without a PEM certificate), EFBIG (CA file above SDO_MAX_CA_FILE_BYTES), the
 * errno of open/read for a CA file that cannot be read, or ENOMEM. A certificate the
 * server does not match shows up as UNAVAILABLE on the first call. Free with
 * sdo_client_free(). */
sdo_client *sdo_client_new_config(const char *address, const sdo_client_config *cfg);

/* Closes the channel and frees the client. Every stream opened on it must be closed
 * first. NULL is accepted. */
void sdo_client_free(sdo_client *c);

/* Sets the default unary deadline in milliseconds (0: none). */
void sdo_client_set_timeout(sdo_client *c, int64_t timeout_ms);

/* Calls the unary RPC `method_path` ("/saasodoo.v1.TenantService/GetTenant") with `req`
 * and decodes the answer as `resp_desc`. On success returns 0 and stores the response in
 * *resp: the caller frees it with protobuf_c_message_free_unpacked(*resp, NULL). On
 * failure returns -code (a negative sdo_code), leaves *resp NULL and, when `st` is not
 * NULL, fills it (the caller clears it with sdo_status_clear). Local failures use
 * INVALID_ARGUMENT (bad arguments), RESOURCE_EXHAUSTED (out of memory, response too
 * large) and INTERNAL (undecodable response). `st` may be NULL. */
int sdo_call_unary(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                   sdo_status *st);

/* sdo_call_unary with per-call settings; `opts` may be NULL. */
int sdo_call_unary_opts(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, const sdo_call_opts *opts,
                        ProtobufCMessage **resp, sdo_status *st);

/* Starts the server-streaming RPC `method_path` with `req`; messages will be decoded as
 * `resp_desc`. Returns 0 and an open stream in *out (close it with sdo_stream_close), or
 * -code with *out NULL and `st` filled. A server that rejects the call may also report
 * it at the first sdo_stream_next. `opts` may be NULL (no deadline). */
int sdo_stream_open(sdo_client *c, const char *method_path, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, const sdo_call_opts *opts,
                    sdo_stream **out, sdo_status *st);

/* Waits for the next message. Returns 1 with the message in *msg (caller frees it with
 * protobuf_c_message_free_unpacked), 0 when the server ended the stream with OK, or
 * -code when the call failed (`st` filled). After 0 or an error every further call
 * returns the same result again. */
int sdo_stream_next(sdo_stream *s, ProtobufCMessage **msg, sdo_status *st);

/* Cancels the call if it is still running and frees the stream. NULL is accepted. */
void sdo_stream_close(sdo_stream *s);

/* The library's version, e.g. "0.1.0". */
const char *sdo_client_version(void);

#ifdef __cplusplus
}
#endif

/* Typed wrappers, one per RPC, generated at build time. */
#include "saasodoo/client_stubs.h"

#endif /* SAASODOO_CLIENT_H */
