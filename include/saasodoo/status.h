/* Status codes of the saasodoo C client: the gRPC status codes, used both for errors
 * reported by the server and for errors found locally (bad arguments, out of memory,
 * undecodable responses), so a caller handles one table. */
#ifndef SAASODOO_STATUS_H
#define SAASODOO_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, gRPC code). Functions of this library return 0 on success and -SDO_<NAME>
 * on failure. */
#define SDO_STATUS_MAP(XX)                                                                         \
    XX(OK, 0)                                                                                      \
    XX(CANCELLED, 1)                                                                               \
    XX(UNKNOWN, 2)                                                                                 \
    XX(INVALID_ARGUMENT, 3)                                                                        \
    XX(DEADLINE_EXCEEDED, 4)                                                                       \
    XX(NOT_FOUND, 5)                                                                               \
    XX(ALREADY_EXISTS, 6)                                                                          \
    XX(PERMISSION_DENIED, 7)                                                                       \
    XX(RESOURCE_EXHAUSTED, 8)                                                                      \
    XX(FAILED_PRECONDITION, 9)                                                                     \
    XX(ABORTED, 10)                                                                                \
    XX(OUT_OF_RANGE, 11)                                                                           \
    XX(UNIMPLEMENTED, 12)                                                                          \
    XX(INTERNAL, 13)                                                                               \
    XX(UNAVAILABLE, 14)                                                                            \
    XX(DATA_LOSS, 15)                                                                              \
    XX(UNAUTHENTICATED, 16)

typedef enum sdo_code {
#define SDO_CODE_ENUM(name, value) SDO_##name = value,
    SDO_STATUS_MAP(SDO_CODE_ENUM)
#undef SDO_CODE_ENUM
} sdo_code;

/* The outcome of a call. `code` is a gRPC status code (SDO_OK on success); `message` is
 * the server's or the library's explanation (NUL-terminated, or NULL when there is none);
 * `details`/`details_len` hold the serialized google.rpc.Status the server sent in the
 * `grpc-status-details-bin` trailer, if any (NULL/0 otherwise). The library allocates
 * message and details; release them with sdo_status_clear(). Functions that take an
 * sdo_status * start by resetting it without freeing what it held: pass a zeroed or
 * cleared one. */
typedef struct sdo_status {
    int code;
    char *message;
    uint8_t *details;
    size_t details_len;
} sdo_status;

/* Frees what `st` holds and resets it to {SDO_OK, NULL, NULL, 0}. NULL is accepted. */
void sdo_status_clear(sdo_status *st);

/* The canonical name of a status code, e.g. "NOT_FOUND"; "UNKNOWN" for codes outside
 * 0..16. The string is static. */
const char *sdo_code_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* SAASODOO_STATUS_H */
