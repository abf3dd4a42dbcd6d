/* Operations: the durable record of long-running work. This layer reads them and decides
 * what cancelling means for each state and kind. */
#ifndef SDO_OPS_H
#define SDO_OPS_H

#include "saasodoo/v1/operation.pb-c.h"
#include "store/records.h"
#include "store/store.h"

int ops_get(store *st, const char *id, Saasodoo__V1__Operation **out, sdo_error *err);

int ops_list(store *st, const op_query *q, Saasodoo__V1__Operation ***out, size_t *n,
             int64_t *last_seq, bool *more, sdo_error *err);

/* Cancels an operation: a PENDING one ends CANCELLED at once and what it was to create is
 * marked FAILED; a RUNNING one becomes CANCELLING and stops at its next step boundary.
 * FAILED_PRECONDITION for a finished operation. */
int ops_cancel(store *st, const char *id, const char *who, Saasodoo__V1__Operation **out,
               sdo_error *err);

#endif
