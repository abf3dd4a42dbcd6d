/* The plan catalogue, parsed from YAML with libyaml's document loader:
 *   plans: [ {id, display_name, database_strategy, cpu_millicores, ...}, ... ] */
#include "tenants/plans.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "tenants/validate.h"
#include "util/util.h"

typedef enum { P_STR, P_INT, P_I64, P_STRATEGY } ptype;

typedef struct pkey {
    const char *key;
    ptype type;
    size_t offset;
    bool required;
} pkey;

#define POFF(f) offsetof(Saasodoo__V1__Plan, f)

static const pkey plan_keys[] = {
    {"id", P_STR, POFF(name), true},
    {"display_name", P_STR, POFF(display_name), true},
    {"description", P_STR, POFF(description), false},
    {"database_strategy", P_STRATEGY, POFF(database_strategy), true},
    {"cpu_millicores", P_INT, POFF(cpu_millicores), true},
    {"memory_mb", P_INT, POFF(memory_mb), true},
    {"storage_gb", P_INT, POFF(storage_gb), true},
    {"max_db_connections", P_INT, POFF(max_db_connections), true},
    {"odoo_workers", P_INT, POFF(odoo_workers), true},
    {"backup_retention_days", P_INT, POFF(backup_retention_days), true},
    {"price_minor", P_I64, 0, true},
    {"currency", P_STR, 0, true},
    {"billing_period", P_STR, POFF(billing_period), true},
    {"trial_days", P_INT, POFF(trial_days), false},
};
#define NPKEYS (sizeof plan_keys / sizeof plan_keys[0])

void plans_free(plan_catalog *c)
{
    for (size_t i = 0; i < c->n; i++)
        protobuf_c_message_free_unpacked(&c->plans[i]->base, NULL);
    free(c->plans);
    c->plans = NULL;
    c->n = 0;
}

static int set_key(const char *name, Saasodoo__V1__Plan *p, const pkey *k, yaml_node_t *v,
                   char *err, size_t errsz)
{
    size_t line = v->start_mark.line + 1;
    if (v->type != YAML_SCALAR_NODE) {
        snprintf(err, errsz, "%s:%zu: plans[].%s must be a single value", name, line, k->key);
        return -1;
    }
    const char *s = (const char *)v->data.scalar.value;
    if (k->type == P_STR) {
        if (!*s && k->required) {
            snprintf(err, errsz, "%s:%zu: plans[].%s must not be empty", name, line, k->key);
            return -1;
        }
        char **slot;
        if (strcmp(k->key, "currency") == 0) {
            if (strlen(s) != 3 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' ||
                s[2] < 'A' || s[2] > 'Z') {
                snprintf(err, errsz, "%s:%zu: plans[].currency '%s' is not an ISO 4217 code", name,
                         line, s);
                return -1;
            }
            slot = &p->price->currency_code;
        } else {
            slot = (char **)((char *)p + k->offset);
        }
        if (strcmp(k->key, "id") == 0) {
            if (!tenant_id_syntax_ok(s)) {
                snprintf(err, errsz, "%s:%zu: plans[].id '%s' must match %s", name, line, s,
                         TENANT_ID_PATTERN);
                return -1;
            }
            size_t n = strlen(s) + 7;
            char *full = sdo_malloc(n);
            snprintf(full, n, "plans/%s", s);
            *slot = full;
        } else {
            *slot = sdo_strdup(s);
        }
        return 0;
    }
    if (k->type == P_STRATEGY) {
        if (strcmp(s, "shared") == 0)
            p->database_strategy = SAASODOO__V1__DATABASE_STRATEGY__SHARED;
        else if (strcmp(s, "dedicated") == 0)
            p->database_strategy = SAASODOO__V1__DATABASE_STRATEGY__DEDICATED;
        else {
            snprintf(err, errsz,
                     "%s:%zu: plans[].database_strategy '%s' must be shared or "
                     "dedicated",
                     name, line, s);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long long v64 = strtoll(s, &end, 10);
    if (!*s || *end || errno || v64 < 0 || (k->type == P_INT && v64 > 1000000000)) {
        snprintf(err, errsz, "%s:%zu: plans[].%s: '%s' is not a non-negative integer", name, line,
                 k->key, s);
        return -1;
    }
    if (k->type == P_I64)
        p->price->amount_minor = v64;
    else
        *(int32_t *)((char *)p + k->offset) = (int32_t)v64;
    return 0;
}

static int load_doc(const char *name, yaml_parser_t *parser, plan_catalog *out, char *err,
                    size_t errsz)
{
    yaml_document_t doc;
    memset(out, 0, sizeof *out);
    if (!yaml_parser_load(parser, &doc)) {
        snprintf(err, errsz, "%s:%zu: invalid YAML: %s", name, parser->problem_mark.line + 1,
                 parser->problem ? parser->problem : "syntax error");
        return -1;
    }
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *list = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        snprintf(err, errsz, "%s:1: expected a mapping with a 'plans' list", name);
        goto out;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, "plans") == 0) {
            list = yaml_document_get_node(&doc, pr->value);
        } else {
            snprintf(err, errsz, "%s:%zu: unknown key '%s'", name, k->start_mark.line + 1,
                     k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : "?");
            goto out;
        }
    }
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errsz, "%s:1: 'plans' must be a list of plans", name);
        goto out;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    out->plans = sdo_calloc(n, sizeof *out->plans);
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *pn = yaml_document_get_node(&doc, *it);
        if (pn->type != YAML_MAPPING_NODE) {
            snprintf(err, errsz, "%s:%zu: each plan must be a mapping", name,
                     pn->start_mark.line + 1);
            goto out;
        }
        Saasodoo__V1__Plan *p = sdo_malloc(sizeof *p);
        saasodoo__v1__plan__init(p);
        p->price = sdo_malloc(sizeof *p->price);
        saasodoo__v1__money__init(p->price);
        out->plans[out->n++] = p;
        bool seen[NPKEYS] = {false};
        for (yaml_node_pair_t *pr = pn->data.mapping.pairs.start; pr < pn->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
            const char *ks = k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : "?";
            if (strcmp(ks, "backup") == 0)
                continue; /* the plan's backup policy: read by server/backup/backup.c */
            size_t ki = NPKEYS;
            for (size_t j = 0; j < NPKEYS; j++)
                if (strcmp(plan_keys[j].key, ks) == 0)
                    ki = j;
            if (ki == NPKEYS) {
                snprintf(err, errsz, "%s:%zu: unknown key 'plans[].%s'", name,
                         k->start_mark.line + 1, ks);
                goto out;
            }
            if (seen[ki]) {
                snprintf(err, errsz, "%s:%zu: plans[].%s given twice", name, k->start_mark.line + 1,
                         ks);
                goto out;
            }
            seen[ki] = true;
            if (set_key(name, p, &plan_keys[ki], v, err, errsz) < 0)
                goto out;
        }
        for (size_t j = 0; j < NPKEYS; j++) {
            if (plan_keys[j].required && !seen[j]) {
                snprintf(err, errsz, "%s:%zu: plan is missing '%s'", name, pn->start_mark.line + 1,
                         plan_keys[j].key);
                goto out;
            }
        }
        for (size_t j = 0; j + 1 < out->n; j++) {
            if (strcmp(out->plans[j]->name, p->name) == 0) {
                snprintf(err, errsz, "%s:%zu: plan '%s' is defined twice", name,
                         pn->start_mark.line + 1, p->name + 6);
                goto out;
            }
        }
    }
    if (out->n == 0) {
        snprintf(err, errsz, "%s: the catalogue defines no plan", name);
        goto out;
    }
    rc = 0;
out:
    yaml_document_delete(&doc);
    if (rc < 0)
        plans_free(out);
    return rc;
}

int plans_load_string(const char *name, const char *yaml, plan_catalog *out, char *err,
                      size_t errsz)
{
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, strlen(yaml));
    int rc = load_doc(name, &p, out, err, errsz);
    yaml_parser_delete(&p);
    return rc;
}

int plans_load_file(const char *path, plan_catalog *out, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: cannot open the plan catalogue: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int rc = load_doc(path, &p, out, err, errsz);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}
