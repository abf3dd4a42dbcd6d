/* The filter language of List methods: `field = value [AND field = value ...]`. */
#include "api/filter.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/pagination.h"

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n')
        (*p)++;
}

static int bad(sdo_error *err, const char *text, const char *p, const char *what)
{
    return sdo_fail_field(err, "filter",
                          "filter is not valid at position %d: %s (expected "
                          "field = value joined by AND, e.g. state = ACTIVE AND plan = "
                          "\"plans/basic\")",
                          (int)(p - text) + 1, what);
}

int filter_parse(const char *text, const char *const *allowed, filter_expr *out, sdo_error *err)
{
    memset(out, 0, sizeof *out);
    if (strlen(text) > FILTER_MAX_LEN)
        return sdo_fail_field(err, "filter", "filter is longer than %d characters", FILTER_MAX_LEN);
    const char *p = text;
    skip_ws(&p);
    if (!*p)
        return 0;
    for (;;) {
        if (out->n == FILTER_MAX_TERMS)
            return bad(err, text, p, "too many terms");
        filter_term *t = &out->terms[out->n];
        size_t n = 0;
        if (!(isalpha((unsigned char)*p) || *p == '_'))
            return bad(err, text, p, "a field name must come first");
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '.') {
            if (n + 1 >= sizeof t->field)
                return bad(err, text, p, "field name too long");
            t->field[n++] = *p++;
        }
        t->field[n] = 0;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, t->field) == 0)
                ok = true;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                if (list[0])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *a, sizeof list - strlen(list) - 1);
            }
            return sdo_fail_field(err, "filter",
                                  "filter names unknown field '%s'; fields you can filter on: %s",
                                  t->field, list);
        }
        for (int i = 0; i < out->n; i++)
            if (strcmp(out->terms[i].field, t->field) == 0)
                return sdo_fail_field(err, "filter", "filter names field '%s' twice", t->field);
        skip_ws(&p);
        if (*p != '=')
            return bad(err, text, p, "'=' must follow the field name");
        p++;
        skip_ws(&p);
        n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                if (n + 1 >= sizeof t->value)
                    return bad(err, text, p, "value too long");
                t->value[n++] = *p++;
            }
            if (*p != '"')
                return bad(err, text, p, "unterminated quoted value");
            p++;
        } else {
            while (*p && (isalnum((unsigned char)*p) || strchr("_-./:@", *p))) {
                if (n + 1 >= sizeof t->value)
                    return bad(err, text, p, "value too long");
                t->value[n++] = *p++;
            }
            if (n == 0)
                return bad(err, text, p, "a value must follow '='");
        }
        t->value[n] = 0;
        out->n++;
        skip_ws(&p);
        if (!*p)
            return 0;
        if (strncmp(p, "AND", 3) != 0 || !(p[3] == ' ' || p[3] == '\t' || p[3] == '\n'))
            return bad(err, text, p, "terms must be joined by AND");
        p += 3;
        skip_ws(&p);
    }
}

const char *filter_get(const filter_expr *f, const char *field)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->terms[i].field, field) == 0)
            return f->terms[i].value;
    return NULL;
}

int filter_bool(const filter_expr *f, const char *field, int *out, sdo_error *err)
{
    const char *v = filter_get(f, field);
    *out = -1;
    if (!v)
        return 0;
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        *out = v[0] == 't';
        return 0;
    }
    return sdo_fail_field(err, "filter", "filter: %s must be true or false, not '%.20s'", field, v);
}

int filter_enum(const char *value, const ProtobufCEnumDescriptor *d, const char *field,
                sdo_error *err)
{
    if (!value)
        return 0;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, value);
    if (v && v->value != 0)
        return 0;
    char names[256] = "";
    for (unsigned i = 0; i < d->n_values; i++) {
        if (d->values[i].value == 0)
            continue;
        if (names[0])
            strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, d->values[i].name, sizeof names - strlen(names) - 1);
    }
    return sdo_fail_field(err, "filter", "filter: %s '%.40s' is not one of %s", field, value,
                          names);
}

int list_request_parse(const char *kind, const char *extra, int32_t page_size,
                       const char *page_token, const char *filter, const char *const *allowed,
                       list_request *out, sdo_error *err)
{
    memset(out, 0, sizeof *out);
    if (page_size_resolve(page_size, &out->limit, err) < 0 ||
        filter_parse(filter, allowed, &out->filter, err) < 0)
        return -1;
    snprintf(out->scope, sizeof out->scope, "%s|%s|%s", kind, extra, filter);
    return page_token_decode(page_token, out->scope, &out->key, err);
}
