/* The filter language of List methods: a small AIP-160 subset,
 * `field = value` terms joined by AND; values bare or "double-quoted". */
#ifndef SDO_FILTER_H
#define SDO_FILTER_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "util/util.h"

#define FILTER_MAX_TERMS 8
#define FILTER_MAX_LEN 1024

typedef struct filter_term {
    char field[32];
    char value[256];
} filter_term;

typedef struct filter_expr {
    filter_term terms[FILTER_MAX_TERMS];
    int n;
} filter_expr;

/* Parses text; fields must be among allowed (NULL-terminated). Fails with INVALID_ARGUMENT
 * naming the filter, the position and, for unknown fields, the field and the allowed ones. */
int filter_parse(const char *text, const char *const *allowed, filter_expr *out, sdo_error *err);

/* The value of field, or NULL when the filter does not name it. */
const char *filter_get(const filter_expr *f, const char *field);

/* A true/false term: *out is 1 or 0, or -1 when the filter does not name field. Fails with
 * INVALID_ARGUMENT naming the filter for any other value. */
int filter_bool(const filter_expr *f, const char *field, int *out, sdo_error *err);

/* Checks that value (of field, if the filter names it) is a non-zero value of the enum d;
 * fails with INVALID_ARGUMENT listing the allowed names. NULL value passes. */
int filter_enum(const char *value, const ProtobufCEnumDescriptor *d, const char *field,
                sdo_error *err);

/* What every List method starts with: page_size resolved, the filter parsed against allowed,
 * and page_token decoded against a scope made of kind, extra (e.g. the parent) and the
 * filter, so a token works only for the query it came from. */
typedef struct list_request {
    int limit;
    int64_t key; /* the sort key the page starts after (0: from the start) */
    filter_expr filter;
    char scope[FILTER_MAX_LEN + 192];
} list_request;

int list_request_parse(const char *kind, const char *extra, int32_t page_size,
                       const char *page_token, const char *filter, const char *const *allowed,
                       list_request *out, sdo_error *err);

#endif
