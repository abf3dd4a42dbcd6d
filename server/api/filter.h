/* The filter language of List methods: a small AIP-160 subset,
 * `field = value` terms joined by AND; values bare or "double-quoted". */
#ifndef SDO_FILTER_H
#define SDO_FILTER_H

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

#endif
