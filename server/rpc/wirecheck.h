/* A pass over a request's wire bytes that protobuf-c does not make: proto3 strings must be
 * valid UTF-8, and this server also refuses NUL characters in them (protobuf-c hands strings
 * to C code that would silently cut them at the NUL). */
#ifndef SDO_WIRECHECK_H
#define SDO_WIRECHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 0 when every string field (at any depth) is valid UTF-8 without NUL; 1 when one
 * is not, with its dotted field path in field (e.g. "tenant.display_name"); -1 when the
 * bytes are not a well-formed message (left to the decoder to report). */
int rpc_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                      char *field, size_t fieldsz);

/* True if s[0..len) is valid UTF-8 with no NUL and no surrogate or over-long forms. */
int rpc_utf8_ok(const uint8_t *s, size_t len);

#endif
