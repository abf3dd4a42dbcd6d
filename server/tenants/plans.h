/* The plan catalogue: read from plans.yaml, seeded into the store at start. A plan decides
 * a tenant's database strategy and resources. */
#ifndef SDO_PLANS_H
#define SDO_PLANS_H

#include <stddef.h>

#include "saasodoo/v1/billing.pb-c.h"

typedef struct plan_catalog {
    Saasodoo__V1__Plan **plans; /* each freed with protobuf_c_message_free_unpacked */
    size_t n;
} plan_catalog;

/* Reads a catalogue file. Returns 0, or -1 with a message naming file, line and key. */
int plans_load_file(const char *path, plan_catalog *out, char *err, size_t errsz);
/* Same from text (name is used in messages). */
int plans_load_string(const char *name, const char *yaml, plan_catalog *out, char *err,
                      size_t errsz);
void plans_free(plan_catalog *c);

#endif
