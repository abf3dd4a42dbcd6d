/* A small, strict JSON parser (RFC 8259) for input that must be unambiguous: JWT headers and
 * claims, JWK sets. It builds a read-only tree and refuses what other parsers might read
 * differently: duplicate object keys, invalid UTF-8, lone surrogates, control characters in
 * strings, trailing data, a byte order mark, nesting deeper than a limit. */
#ifndef SDO_JSON_H
#define SDO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef enum {
    JSON_NONE = 0, /* what json_typeof() says of a NULL pointer (a missing member) */
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_value json_value;

typedef struct json_limits {
    size_t max_size; /* input bytes; 0 = JSON_DEFAULT_MAX_SIZE */
    int max_depth;   /* nested arrays/objects; 0 = JSON_DEFAULT_MAX_DEPTH */
} json_limits;

#define JSON_DEFAULT_MAX_SIZE (1u << 20)
#define JSON_DEFAULT_MAX_DEPTH 32

/* Parses exactly len bytes of text (which need not be NUL-terminated) holding one JSON value,
 * optionally surrounded by whitespace. limits may be NULL for the defaults. Returns the root,
 * which the caller frees with json_free(), or NULL with err filled in (INVALID_ARGUMENT, a
 * message giving the byte offset, reason "MALFORMED_JSON"; "JSON_TOO_LARGE" or
 * "JSON_TOO_DEEP" for the limits). */
json_value *json_parse(const char *text, size_t len, const json_limits *limits, sdo_error *err);

/* Frees a tree returned by json_parse(); NULL is ignored. Every pointer obtained from the
 * tree (values, strings) becomes invalid. */
void json_free(json_value *root);

/* The type of v; JSON_NONE when v is NULL, so lookups can be chained without checks. */
json_type json_typeof(const json_value *v);

/* Member key of obj, or NULL when obj is not an object or has no such member. Keys are
 * compared byte for byte; a key holding U+0000 cannot be looked up. Borrowed. */
const json_value *json_get(const json_value *obj, const char *key);

/* The string of v, NUL-terminated UTF-8, or NULL when v is not a string or the string holds
 * U+0000 (which C would silently cut short). Borrowed from the tree. */
const char *json_string(const json_value *v);
/* The string of v with its length in *len, U+0000 included; NULL if v is not a string. */
const char *json_string_len(const json_value *v, size_t *len);

/* True when v is a number whose value is an integer that fits int64_t exactly (written as
 * "42", "4.2e1" or "42.0" alike); stores it in *out. */
bool json_int64(const json_value *v, int64_t *out);
/* True when v is a number; stores the nearest double in *out. */
bool json_double(const json_value *v, double *out);
/* True when v is true or false; stores it in *out. */
bool json_bool(const json_value *v, bool *out);
bool json_is_null(const json_value *v);

/* Number of elements of an array (0 for anything else) and element i (NULL if out of
 * range). */
size_t json_array_len(const json_value *arr);
const json_value *json_array_at(const json_value *arr, size_t i);

/* Number of members of an object (0 for anything else) and member i in document order,
 * with its key in *key (may be NULL); NULL if out of range. */
size_t json_object_len(const json_value *obj);
const json_value *json_object_at(const json_value *obj, size_t i, const char **key);

#endif
