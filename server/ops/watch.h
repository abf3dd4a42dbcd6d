/* Watching operations: a thread LISTENs for the store's change notifications and delivers
 * each changed operation to its subscribers until it is done. Subscribers are sinks, so this
 * layer knows nothing of the transport. */
#ifndef SDO_WATCH_H
#define SDO_WATCH_H

#include <stdint.h>

#include "saasodoo/v1/operation.pb-c.h"
#include "store/store.h"

typedef struct op_watch op_watch;

/* Where a watched operation goes. send returns < 0 once the receiver is gone; finish ends the
 * watch; release drops the sink (called exactly once per subscription). */
typedef struct op_sink {
    void *arg;
    int (*send)(void *arg, const Saasodoo__V1__Operation *op);
    void (*finish)(void *arg, int code, const char *message);
    void (*release)(void *arg);
} op_sink;

/* Starts the listener thread. */
op_watch *op_watch_start(store *st);

/* Ends every watch with UNAVAILABLE and refuses new ones; the hub stays valid. */
void op_watch_close(op_watch *w);

/* Closes (as above), stops the thread and frees the hub. */
void op_watch_stop(op_watch *w);

/* A fresh subscription id (never 0), to arrange cancellation before subscribing. */
uint64_t op_watch_next_id(op_watch *w);

/* Subscribes sink to operation op_id under subscription id: sends the operation at once and
 * on every change; finishes when it is done. On failure (NOT_FOUND, UNAVAILABLE) returns < 0
 * and does not keep or release the sink. */
int op_watch_subscribe(op_watch *w, uint64_t sub_id, const char *op_id, const op_sink *sink,
                       sdo_error *err);

/* Drops a subscription if it still exists (the client went away). */
void op_watch_unsubscribe(op_watch *w, uint64_t sub_id);

#endif
