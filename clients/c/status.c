/* Status codes of the C client: names for the gRPC codes and the release of an
 * sdo_status. */
#include <stdlib.h>

#include "saasodoo/status.h"

void sdo_status_clear(sdo_status *st)
{
    if (st == NULL)
        return;
    free(st->message);
    free(st->details);
    st->code = SDO_OK;
    st->message = NULL;
    st->details = NULL;
    st->details_len = 0;
}

const char *sdo_code_name(int code)
{
    switch (code) {
#define SDO_CODE_NAME(name, value)                                                                 \
    case value:                                                                                    \
        return #name;
        SDO_STATUS_MAP(SDO_CODE_NAME)
#undef SDO_CODE_NAME
    default:
        return "UNKNOWN";
    }
}
