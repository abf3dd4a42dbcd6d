/* Unit tests of the identifier rules (tenants/validate.h) and of the List filter language
 * (api/filter.h): what is accepted, and which field and reason a rejection names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/filter.h"
#include "tenants/validate.h"

static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, text);
}

/* Fills s with n characters: 'a' then a cycle of letters and digits. */
static void make_id(char *s, size_t n)
{
    static const char cycle[] = "bcdefghijklmnopqrstuvwxyz0123456789";
    s[0] = 'a';
    for (size_t i = 1; i < n; i++)
        s[i] = cycle[(i - 1) % (sizeof cycle - 1)];
    s[n] = 0;
}

/* ---- tenant ids ------------------------------------------------------------------------ */

static void test_tenant_id_lengths(void **state)
{
    (void)state;
    char id[64];
    make_id(id, 2);
    assert_false(tenant_id_syntax_ok(id));
    make_id(id, 3);
    assert_true(tenant_id_syntax_ok(id));
    make_id(id, 40);
    assert_true(tenant_id_syntax_ok(id));
    make_id(id, 41);
    assert_false(tenant_id_syntax_ok(id));
    assert_false(tenant_id_syntax_ok(""));
    assert_false(tenant_id_syntax_ok("a"));
}

static void test_tenant_id_characters(void **state)
{
    (void)state;
    static const char *const good[] = {"acme", "acme-corp", "a1b", "a-1", "abc123", "a--b", "x9z"};
    static const char *const bad[] = {
        "Acme",         /* upper case */
        "acMe",         /* upper case inside */
        "1acme",        /* leading digit */
        "-acme",        /* leading hyphen */
        "acme-",        /* trailing hyphen */
        "ac_me",        /* underscore */
        "ac.me",        /* dot */
        "ac me",        /* space */
        "acme\n",       /* newline */
        "acm\xc3\xa9",  /* UTF-8 e acute */
        "\xc3\xa9tude", /* UTF-8 first */
        "acm\xff",      /* a byte above 0x7f */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!tenant_id_syntax_ok(good[i]))
            fail_msg("'%s' should be a valid tenant id", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tenant_id_syntax_ok(bad[i]))
            fail_msg("'%s' should not be a valid tenant id", bad[i]);
}

static void test_tenant_id_validate_ok(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(tenant_id_validate("acme", "tenant_id", &err), 0);
    assert_int_equal(tenant_id_validate("acme-2024", "tenant_id", &err), 0);
    assert_int_equal(tenant_id_validate("acme", "tenant_id", NULL), 0);
}

static void test_tenant_id_validate_syntax(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(tenant_id_validate("Acme!", "tenant_id", &err), -SDO_INVALID_ARGUMENT);
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "tenant_id");
    assert_string_equal(err.reason, "");
    expect_contains(err.message, "Acme!");
    expect_contains(err.message, TENANT_ID_PATTERN);

    /* the field passed is the one named */
    assert_int_equal(tenant_id_validate("a_b", "tenant.id", &err), -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "tenant.id");
    expect_contains(err.message, "tenant.id");

    /* empty and missing */
    assert_int_equal(tenant_id_validate("", "tenant_id", &err), -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "tenant_id");
    assert_int_equal(tenant_id_validate(NULL, "tenant_id", &err), -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "tenant_id");
    expect_contains(err.message, "required");

    /* no error struct: still fails */
    assert_int_equal(tenant_id_validate("x", "tenant_id", NULL), -SDO_INVALID_ARGUMENT);
}

static void test_tenant_id_reserved(void **state)
{
    (void)state;
    static const char *const reserved[] = {"www", "api", "admin", "app", "mail"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        sdo_error err;
        memset(&err, 0, sizeof err);
        /* well-formed, yet kept for the platform */
        assert_true(tenant_id_syntax_ok(reserved[i]));
        assert_true(tenant_id_reserved(reserved[i]));
        assert_int_equal(tenant_id_validate(reserved[i], "tenant_id", &err), -SDO_INVALID_ARGUMENT);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "tenant_id");
        assert_string_equal(err.reason, "TENANT_ID_RESERVED");
        expect_contains(err.message, reserved[i]);

        assert_int_equal(tenant_id_validate(reserved[i], "id", &err), -SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "id");
        assert_string_equal(err.reason, "TENANT_ID_RESERVED");
    }
    /* near misses are not reserved */
    assert_false(tenant_id_reserved("www2"));
    assert_false(tenant_id_reserved("apis-corp"));
    assert_false(tenant_id_reserved("acme"));
    assert_false(tenant_id_reserved("WWW"));
}

/* ---- resource names -------------------------------------------------------------------- */

static void test_resource_name_parse_ok(void **state)
{
    (void)state;
    char id[64] = "";
    sdo_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(resource_name_parse("tenants/acme", "tenants", "name", id, sizeof id, &err),
                     0);
    assert_string_equal(id, "acme");
    assert_int_equal(
        resource_name_parse("operations/op-1a", "operations", "name", id, sizeof id, &err), 0);
    assert_string_equal(id, "op-1a");

    char longest[64];
    char name[80];
    make_id(longest, 40);
    snprintf(name, sizeof name, "tenants/%s", longest);
    assert_int_equal(resource_name_parse(name, "tenants", "name", id, sizeof id, &err), 0);
    assert_string_equal(id, longest);
}

static void test_resource_name_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "tenant/acme",    /* wrong collection */
        "tenantsx/acme",  /* collection as a prefix */
        "tenants/",       /* no id */
        "tenants",        /* no slash */
        "tenants/Acme",   /* id breaks the rule */
        "tenants/ac",     /* id too short */
        "tenants/acme/x", /* extra segment */
        "tenants//acme",  /* empty segment */
        "/tenants/acme",  /* leading slash */
        "acme",           /* bare id */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char id[64] = "unchanged";
        sdo_error err;
        memset(&err, 0, sizeof err);
        int rc = resource_name_parse(bad[i], "tenants", "tenant.name", id, sizeof id, &err);
        if (rc != -SDO_INVALID_ARGUMENT)
            fail_msg("'%s' should be rejected (rc %d)", bad[i], rc);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "tenant.name");
        expect_contains(err.message, "tenant.name");
        expect_contains(err.message, "tenants/");
    }

    char id[64];
    sdo_error err;
    assert_int_equal(resource_name_parse("", "tenants", "name", id, sizeof id, &err),
                     -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "name");
    assert_int_equal(resource_name_parse(NULL, "tenants", "name", id, sizeof id, &err),
                     -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "name");

    /* the id must fit the output */
    char small[4];
    assert_int_equal(
        resource_name_parse("tenants/acme", "tenants", "name", small, sizeof small, &err),
        -SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "name");
}

/* ---- labels ---------------------------------------------------------------------------- */

static void test_label_validate(void **state)
{
    (void)state;
    sdo_error err;
    char k63[64], k64[65], v63[64], v64[65];
    memset(k63, 'k', 63);
    k63[63] = 0;
    memset(k64, 'k', 64);
    k64[64] = 0;
    memset(v63, 'V', 63);
    v63[63] = 0;
    memset(v64, 'V', 64);
    v64[64] = 0;

    static const char *const good[][2] = {
        {"env", "prod"}, {"team", ""}, {"cost-center", "R_and.D-1"}, {"a.b_c-9", "X"}, {"x", "0"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (label_validate(good[i][0], good[i][1], &err) != 0)
            fail_msg("label %s=%s should be valid: %s", good[i][0], good[i][1], err.message);
    assert_int_equal(label_validate(k63, "v", &err), 0);
    assert_int_equal(label_validate("k", v63, &err), 0);

    static const char *const bad[][2] = {
        {"", "v"},      {"Env", "v"},   {"1env", "v"},  {"-env", "v"},          {"en v", "v"},
        {"env/x", "v"}, {"env", "a b"}, {"env", "a/b"}, {"env", "caf\xc3\xa9"}, {"env", "a=b"},
        {"_env", "v"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (label_validate(bad[i][0], bad[i][1], &err) != -SDO_INVALID_ARGUMENT)
            fail_msg("label '%s'='%s' should be rejected", bad[i][0], bad[i][1]);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "tenant.labels");
    }
    memset(&err, 0, sizeof err);
    assert_int_equal(label_validate(k64, "v", &err), -SDO_INVALID_ARGUMENT);
    expect_contains(err.message, LABEL_KEY_PATTERN);
    memset(&err, 0, sizeof err);
    assert_int_equal(label_validate("big", v64, &err), -SDO_INVALID_ARGUMENT);
    expect_contains(err.message, "big");
    expect_contains(err.message, LABEL_VALUE_PATTERN);
}

/* ---- Odoo versions --------------------------------------------------------------------- */

static void test_odoo_version_ok(void **state)
{
    (void)state;
    static const char *const good[] = {"17.0", "16.0", "8.0", "99.0", "saas~17.2", "saas~16.4"};
    static const char *const bad[] = {"17",      "abc",       "7.0",    "",         "100.0",
                                      "17.",     ".0",        "17.0.1", "17.0beta", "saas~",
                                      "saas~17", "saas-17.2", "v17.0",  "17,0",     "saas~7.1",
                                      " 17.0",   "+17.0",     "17.-0",  "17.3"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!odoo_version_ok(good[i]))
            fail_msg("'%s' should be a valid Odoo version", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (odoo_version_ok(bad[i]))
            fail_msg("'%s' should not be a valid Odoo version", bad[i]);
}

/* ---- filters --------------------------------------------------------------------------- */

static const char *const tenant_fields[] = {"state", "plan", "labels.env", NULL};

static void expect_filter_error(const char *text, const char *const *allowed, const char *what)
{
    filter_expr f;
    sdo_error err;
    memset(&err, 0, sizeof err);
    int rc = filter_parse(text, allowed, &f, &err);
    if (rc != -SDO_INVALID_ARGUMENT)
        fail_msg("filter '%s' should be rejected (rc %d)", text, rc);
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "filter");
    if (what)
        expect_contains(err.message, what);
}

static void test_filter_two_terms(void **state)
{
    (void)state;
    filter_expr f;
    sdo_error err;
    assert_int_equal(
        filter_parse("state = ACTIVE AND plan = \"plans/basic\"", tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.terms[0].field, "state");
    assert_string_equal(f.terms[0].value, "ACTIVE");
    assert_string_equal(f.terms[1].field, "plan");
    assert_string_equal(f.terms[1].value, "plans/basic");
    assert_string_equal(filter_get(&f, "state"), "ACTIVE");
    assert_string_equal(filter_get(&f, "plan"), "plans/basic");
    assert_null(filter_get(&f, "labels.env"));
    assert_null(filter_get(&f, "nothing"));
}

static void test_filter_spacing_and_bare_values(void **state)
{
    (void)state;
    filter_expr f;
    sdo_error err;
    assert_int_equal(filter_parse("state=ACTIVE", tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(filter_get(&f, "state"), "ACTIVE");

    assert_int_equal(
        filter_parse("  plan\t=\tplans/basic\nAND\tlabels.env = prod-1  ", tenant_fields, &f, &err),
        0);
    assert_int_equal(f.n, 2);
    assert_string_equal(filter_get(&f, "plan"), "plans/basic");
    assert_string_equal(filter_get(&f, "labels.env"), "prod-1");

    /* the characters a bare value may hold */
    assert_int_equal(filter_parse("plan = a_b-c.d/e:f@g", tenant_fields, &f, &err), 0);
    assert_string_equal(filter_get(&f, "plan"), "a_b-c.d/e:f@g");
}

static void test_filter_empty(void **state)
{
    (void)state;
    filter_expr f;
    sdo_error err;
    assert_int_equal(filter_parse("", tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 0);
    assert_null(filter_get(&f, "state"));
    assert_int_equal(filter_parse(" \t\n ", tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 0);
}

static void test_filter_quoted_values(void **state)
{
    (void)state;
    filter_expr f;
    sdo_error err;
    assert_int_equal(filter_parse("plan = \"say \\\"hi\\\" now\"", tenant_fields, &f, &err), 0);
    assert_string_equal(filter_get(&f, "plan"), "say \"hi\" now");

    assert_int_equal(filter_parse("plan = \"back\\\\slash\"", tenant_fields, &f, &err), 0);
    assert_string_equal(filter_get(&f, "plan"), "back\\slash");

    /* AND inside quotes is part of the value */
    assert_int_equal(filter_parse("plan = \"a AND b = c\" AND state = X", tenant_fields, &f, &err),
                     0);
    assert_int_equal(f.n, 2);
    assert_string_equal(filter_get(&f, "plan"), "a AND b = c");
    assert_string_equal(filter_get(&f, "state"), "X");

    assert_int_equal(filter_parse("plan = \"\"", tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(filter_get(&f, "plan"), "");

    expect_filter_error("plan = \"unterminated", tenant_fields, "unterminated");
    expect_filter_error("plan = \"ends in escape\\\"", tenant_fields, NULL);
}

static void test_filter_unknown_field(void **state)
{
    (void)state;
    expect_filter_error("owner = bob", tenant_fields, "'owner'");
    expect_filter_error("owner = bob", tenant_fields, "state, plan, labels.env");
    /* fields are matched whole and case-sensitively */
    expect_filter_error("State = ACTIVE", tenant_fields, "'State'");
    expect_filter_error("labels = x", tenant_fields, "'labels'");
    expect_filter_error("state = A AND planx = b", tenant_fields, "'planx'");
}

static void test_filter_syntax_errors(void **state)
{
    (void)state;
    expect_filter_error("state ACTIVE", tenant_fields, "'='");
    expect_filter_error("state ACTIVE", tenant_fields, "position 7");
    expect_filter_error("state", tenant_fields, "'='");
    expect_filter_error("state =", tenant_fields, "value");
    expect_filter_error("state = ", tenant_fields, "value");
    expect_filter_error("state = !", tenant_fields, "value");
    expect_filter_error("state = ACTIVE and plan = x", tenant_fields, "AND");
    expect_filter_error("state = ACTIVE And plan = x", tenant_fields, "AND");
    expect_filter_error("state = ACTIVE OR plan = x", tenant_fields, "AND");
    expect_filter_error("state = ACTIVE plan = x", tenant_fields, "AND");
    expect_filter_error("state = ACTIVE AND", tenant_fields, NULL);
    expect_filter_error("state = ACTIVE AND ", tenant_fields, NULL);
    expect_filter_error("state = ACTIVE ANDplan = x", tenant_fields, NULL);
    expect_filter_error("AND state = ACTIVE", tenant_fields, NULL);
    expect_filter_error("= ACTIVE", tenant_fields, "field");
    expect_filter_error("9state = ACTIVE", tenant_fields, "field");
    expect_filter_error("state == ACTIVE", tenant_fields, NULL);
    expect_filter_error("state != ACTIVE", tenant_fields, NULL);
}

static void test_filter_duplicate_field(void **state)
{
    (void)state;
    expect_filter_error("state = ACTIVE AND state = DELETED", tenant_fields, "'state'");
    expect_filter_error("state = ACTIVE AND plan = x AND state = A", tenant_fields, "twice");
}

static void test_filter_term_limit(void **state)
{
    (void)state;
    static const char *const many[] = {"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", NULL};
    char text[512] = "";
    filter_expr f;
    sdo_error err;
    for (int i = 1; i <= FILTER_MAX_TERMS; i++) {
        char term[32];
        snprintf(term, sizeof term, "%sf%d = v%d", i > 1 ? " AND " : "", i, i);
        strcat(text, term);
    }
    assert_int_equal(filter_parse(text, many, &f, &err), 0);
    assert_int_equal(f.n, FILTER_MAX_TERMS);
    assert_string_equal(filter_get(&f, "f8"), "v8");

    strcat(text, " AND f9 = v9");
    expect_filter_error(text, many, "too many");
}

static void test_filter_length_limits(void **state)
{
    (void)state;
    filter_expr f;
    sdo_error err;
    char text[FILTER_MAX_LEN + 2];

    /* exactly the limit: a valid term padded with spaces */
    memset(text, ' ', sizeof text);
    memcpy(text, "state = ACTIVE", 14);
    text[FILTER_MAX_LEN] = 0;
    assert_int_equal(filter_parse(text, tenant_fields, &f, &err), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(filter_get(&f, "state"), "ACTIVE");

    /* one more character is too long, whatever it holds */
    text[FILTER_MAX_LEN] = ' ';
    text[FILTER_MAX_LEN + 1] = 0;
    expect_filter_error(text, tenant_fields, "longer");

    /* a value of 255 characters fits, 256 does not */
    char value[300];
    char t2[320];
    memset(value, 'v', 255);
    value[255] = 0;
    snprintf(t2, sizeof t2, "plan = %s", value);
    assert_int_equal(filter_parse(t2, tenant_fields, &f, &err), 0);
    assert_int_equal(strlen(filter_get(&f, "plan")), 255);
    snprintf(t2, sizeof t2, "plan = \"%s\"", value);
    assert_int_equal(filter_parse(t2, tenant_fields, &f, &err), 0);
    assert_int_equal(strlen(filter_get(&f, "plan")), 255);
    memset(value, 'v', 256);
    value[256] = 0;
    snprintf(t2, sizeof t2, "plan = %s", value);
    expect_filter_error(t2, tenant_fields, "too long");
    snprintf(t2, sizeof t2, "plan = \"%s\"", value);
    expect_filter_error(t2, tenant_fields, "too long");

    /* a field name longer than any allowed one */
    char field[80];
    memset(field, 'f', 40);
    snprintf(field + 40, sizeof field - 40, " = x");
    expect_filter_error(field, tenant_fields, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_id_lengths),
        cmocka_unit_test(test_tenant_id_characters),
        cmocka_unit_test(test_tenant_id_validate_ok),
        cmocka_unit_test(test_tenant_id_validate_syntax),
        cmocka_unit_test(test_tenant_id_reserved),
        cmocka_unit_test(test_resource_name_parse_ok),
        cmocka_unit_test(test_resource_name_parse_errors),
        cmocka_unit_test(test_label_validate),
        cmocka_unit_test(test_odoo_version_ok),
        cmocka_unit_test(test_filter_two_terms),
        cmocka_unit_test(test_filter_spacing_and_bare_values),
        cmocka_unit_test(test_filter_empty),
        cmocka_unit_test(test_filter_quoted_values),
        cmocka_unit_test(test_filter_unknown_field),
        cmocka_unit_test(test_filter_syntax_errors),
        cmocka_unit_test(test_filter_duplicate_field),
        cmocka_unit_test(test_filter_term_limit),
        cmocka_unit_test(test_filter_length_limits),
    };
    return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
