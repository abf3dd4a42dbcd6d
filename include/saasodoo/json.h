/* Protobuf-c messages as JSON, following the proto3 JSON mapping the way the saasodoo
 * REST gateway prints it: original (snake_case) field names, enums by name, 64-bit
 * integers as strings, bytes as base64, maps as objects with sorted keys,
 * google.protobuf.Timestamp as RFC 3339 UTC, Duration as "1.5s", FieldMask as a
 * comma-separated string of its paths, wrapper types as their bare value. */
#ifndef SAASODOO_JSON_H
#define SAASODOO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "saasodoo/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    /* Indent with two spaces and put each member on its own line. */
    SDO_JSON_PRETTY = 1u << 0,
    /* Print proto3 fields that hold their zero value ("", 0, false, first enum value,
     * empty lists and maps; unset messages as null). Without it they are left out, as
     * protobuf's own printers do. */
    SDO_JSON_EMIT_DEFAULTS = 1u << 1,
};

/* Longest output sdo_json_render produces, in bytes. */
#define SDO_JSON_MAX_OUTPUT (64u * 1024 * 1024)
/* Deepest message nesting sdo_json_render follows. */
#define SDO_JSON_MAX_DEPTH 64

/* Renders `msg` as JSON. On success returns 0 and a NUL-terminated string in *out that
 * the caller frees with free(); *out_len (when not NULL) receives its length. On failure
 * returns -SDO_INVALID_ARGUMENT (NULL arguments, nesting deeper than
 * SDO_JSON_MAX_DEPTH), -SDO_OUT_OF_RANGE (a Timestamp or Duration outside the range
 * JSON can express) or -SDO_RESOURCE_EXHAUSTED (out of memory, output longer than
 * SDO_JSON_MAX_OUTPUT), and leaves *out NULL. Strings are copied through as UTF-8 with
 * control characters escaped; invalid UTF-8 sequences become U+FFFD. */
int sdo_json_render(const ProtobufCMessage *msg, unsigned flags, char **out, size_t *out_len);

/* Longest text sdo_format_timestamp writes, with its NUL. */
#define SDO_TIMESTAMP_BUFSIZE 32

/* Writes seconds/nanos since the Unix epoch as RFC 3339 in UTC, e.g.
 * "2024-05-01T10:00:00Z" or "2024-05-01T10:00:00.250Z" (0, 3, 6 or 9 fractional digits),
 * into buf (at least SDO_TIMESTAMP_BUFSIZE bytes). Returns 0, or -SDO_OUT_OF_RANGE when
 * the time is outside years 1..9999 or nanos outside 0..999999999. */
int sdo_format_timestamp(int64_t seconds, int32_t nanos, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif

/* Size in memory of one element of a repeated field of this type (protobuf-c layout). */
size_t sdo_proto_element_size(ProtobufCType type);

#endif /* SAASODOO_JSON_H */
