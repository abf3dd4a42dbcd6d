/* A growable byte buffer with a hard cap, for text built from input. */
#ifndef SDO_BUF_H
#define SDO_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sdo_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t limit; /* growth beyond this fails; 0 = 16 MiB */
    bool overflow;
} sdo_buf;

/* Appends; on reaching the limit sets overflow and returns -1 (the buffer stays valid). */
int sdo_buf_append(sdo_buf *b, const void *data, size_t len);
int sdo_buf_puts(sdo_buf *b, const char *s);
int sdo_buf_printf(sdo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the data; the struct can be reused. */
void sdo_buf_free(sdo_buf *b);

#endif
