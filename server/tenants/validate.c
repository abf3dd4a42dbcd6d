/* Rules for identifiers that reach host names, database names and resource names. */
#include "tenants/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reserved_ids[] = {
    "www",      "api",     "admin",     "app",      "apps",      "mail",      "smtp",
    "imap",     "pop",     "pop3",      "ftp",      "ns1",       "ns2",       "dns",
    "mx",       "webmail", "static",    "assets",   "cdn",       "blog",      "docs",
    "help",     "support", "status",    "billing",  "dashboard", "login",     "auth",
    "account",  "portal",  "console",   "root",     "postgres",  "template0", "template1",
    "saasodoo", "odoo",    "localhost", "grpc",     "gateway",   "metrics",   "monitoring",
    "backup",   "backups", "system",    "operator", "signup",    "register",  NULL};

bool tenant_id_syntax_ok(const char *id)
{
    size_t n = strlen(id);
    if (n < 3 || n > 40)
        return false;
    if (!(id[0] >= 'a' && id[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i + 1 < n))
            return false;
    }
    return true;
}

bool tenant_id_reserved(const char *id)
{
    for (const char *const *r = reserved_ids; *r; r++)
        if (strcmp(*r, id) == 0)
            return true;
    return false;
}

int tenant_id_validate(const char *id, const char *field, sdo_error *err)
{
    if (!id || !*id)
        return sdo_fail_field(err, field, "%s is required: the tenant's id, matching %s", field,
                              TENANT_ID_PATTERN);
    if (!tenant_id_syntax_ok(id))
        return sdo_fail_field(err, field,
                              "%s '%.64s' must match %s: 3 to 40 lower-case letters, digits and "
                              "hyphens, starting with a letter and not ending with a hyphen",
                              field, id, TENANT_ID_PATTERN);
    if (tenant_id_reserved(id)) {
        sdo_fail_field(err, field, "%s '%s' is reserved by the platform; choose another", field,
                       id);
        sdo_error_reason(err, "TENANT_ID_RESERVED");
        return -SDO_INVALID_ARGUMENT;
    }
    return 0;
}

int resource_name_parse(const char *name, const char *collection, const char *field, char *id_out,
                        size_t outsz, sdo_error *err)
{
    size_t cl = strlen(collection);
    if (!name || !*name)
        return sdo_fail_field(err, field, "%s is required, e.g. '%s/example'", field, collection);
    if (strncmp(name, collection, cl) != 0 || name[cl] != '/' ||
        !tenant_id_syntax_ok(name + cl + 1) || strlen(name + cl + 1) >= outsz)
        return sdo_fail_field(err, field,
                              "%s '%.100s' must look like '%s/{id}' with an id "
                              "matching %s",
                              field, name, collection, TENANT_ID_PATTERN);
    sdo_strlcpy(id_out, name + cl + 1, outsz);
    return 0;
}

int label_validate(const char *key, const char *value, sdo_error *err)
{
    size_t kl = strlen(key), vl = strlen(value);
    bool ok = kl >= 1 && kl <= 63 && key[0] >= 'a' && key[0] <= 'z';
    for (size_t i = 1; ok && i < kl; i++) {
        char c = key[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    }
    if (!ok)
        return sdo_fail_field(err, "tenant.labels", "label key '%.64s' must match %s", key,
                              LABEL_KEY_PATTERN);
    ok = vl <= 63;
    for (size_t i = 0; ok && i < vl; i++) {
        char c = value[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    }
    if (!ok)
        return sdo_fail_field(err, "tenant.labels", "value of label '%s' must match %s", key,
                              LABEL_VALUE_PATTERN);
    return 0;
}

/* Reads 1-2 decimal digits; returns the count read. */
static int digits(const char *p, int *out)
{
    int n = 0, v = 0;
    while (n < 3 && p[n] >= '0' && p[n] <= '9')
        v = v * 10 + (p[n++] - '0');
    *out = v;
    return n >= 1 && n <= 2 ? n : 0;
}

bool odoo_version_ok(const char *v)
{
    int major, minor;
    bool saas = strncmp(v, "saas~", 5) == 0;
    const char *p = saas ? v + 5 : v;
    int n = digits(p, &major);
    if (!n || major < 8 || p[n] != '.')
        return false;
    p += n + 1;
    n = digits(p, &minor);
    if (!n || p[n] != 0)
        return false;
    return saas || (minor == 0 && n == 1);
}
