/* Rules for identifiers that reach host names, database names and resource names. */
#ifndef SDO_VALIDATE_H
#define SDO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

#define TENANT_ID_PATTERN "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
#define LABEL_KEY_PATTERN "^[a-z][a-z0-9_.-]{0,62}$"
#define LABEL_VALUE_PATTERN "^[A-Za-z0-9_.-]{0,63}$"
#define MAX_LABELS 64

/* True if id matches TENANT_ID_PATTERN (the same rule serves database server ids). */
bool tenant_id_syntax_ok(const char *id);
/* True if id is kept for the platform (www, api, admin, app, mail, ...). */
bool tenant_id_reserved(const char *id);
/* Full check for a new tenant id; fails with INVALID_ARGUMENT naming field. */
int tenant_id_validate(const char *id, const char *field, sdo_error *err);

/* Parses "<collection>/<id>" (e.g. "tenants/acme") into id_out, checking the id's syntax.
 * Fails with INVALID_ARGUMENT naming field. */
int resource_name_parse(const char *name, const char *collection, const char *field, char *id_out,
                        size_t outsz, sdo_error *err);

/* Checks one label; fails with INVALID_ARGUMENT naming the label. */
int label_validate(const char *key, const char *value, sdo_error *err);

/* True for a plausible Odoo version: "<major>.0" with major 8..99, or "saas~<n>.<m>". */
bool odoo_version_ok(const char *v);

#endif
