/* A growable byte buffer with a hard cap, for text built from input. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int sdo_buf_append(sdo_buf *b, const void *data, size_t len)
{
    size_t limit = b->limit ? b->limit : (size_t)16 << 20;
    if (b->overflow || len > limit || b->len > limit - len) {
        b->overflow = true;
        return -1;
    }
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + len + 1)
            ncap *= 2;
        char *n = realloc(b->data, ncap);
        if (!n) {
            b->overflow = true;
            return -1;
        }
        b->data = n;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

int sdo_buf_puts(sdo_buf *b, const char *s)
{
    return sdo_buf_append(b, s, strlen(s));
}

int sdo_buf_printf(sdo_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return sdo_buf_append(b, small, (size_t)n);
    char *big = sdo_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sdo_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void sdo_buf_free(sdo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = false;
}
