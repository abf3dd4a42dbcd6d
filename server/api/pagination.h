/* Paging for every List method: page sizes and opaque page tokens bound to a filter. */
#ifndef SDO_PAGINATION_H
#define SDO_PAGINATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define PAGE_SIZE_DEFAULT 50
#define PAGE_SIZE_MAX 500
#define PAGE_TOKEN_MAX 64

/* 0 → 50, above 500 → 500, negative → INVALID_ARGUMENT naming page_size. */
int page_size_resolve(int32_t requested, int *out, sdo_error *err);

/* Encodes the sort key of the last item and a digest of the query's scope (its filter and
 * options) into out (at least PAGE_TOKEN_MAX bytes). */
void page_token_encode(int64_t key, const char *scope, char *out, size_t outsz);

/* The next_page_token of a List response: a malloc'ed token for the page after the item
 * with key last when more follow, else protobuf-c's empty string. */
char *page_token_next(bool more, int64_t last, const char *scope);

/* Decodes a token: "" gives key 0; a garbled token or one made for another scope fails with
 * INVALID_ARGUMENT naming page_token. */
int page_token_decode(const char *token, const char *scope, int64_t *key, sdo_error *err);

#endif
