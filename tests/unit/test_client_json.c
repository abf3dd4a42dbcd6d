/* Unit tests of the C client's protobuf-c -> JSON printer (saasodoo/json.h), its status
 * helpers (field names, enums, maps, timestamps, escaping, defaults, errors) and the
 * checks sdo_client_new_config makes before it connects (token, CA file). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "saasodoo/client.h"
#include "saasodoo/json.h"

/* Renders `m` with `flags`, checks it succeeded and matches `expected` exactly. */
static void expect_json(const ProtobufCMessage *m, unsigned flags, const char *expected)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sdo_json_render(m, flags, &out, &len), 0);
    assert_non_null(out);
    assert_string_equal(out, expected);
    assert_int_equal(len, strlen(expected));
    free(out);
}

static void test_tenant_labels_enum_timestamps(void **state)
{
    (void)state;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    Saasodoo__V1__Tenant__LabelsEntry e1 = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry e2 = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry e3 = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry *labels[] = {&e1, &e2, &e3};
    Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Google__Protobuf__Timestamp updated = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

    t.name = "tenants/acme";
    t.display_name = "Acme";
    t.plan = "plans/basic";
    t.state = SAASODOO__V1__TENANT__STATE__ACTIVE;
    t.database_strategy = SAASODOO__V1__DATABASE_STRATEGY__SHARED;
    e1.key = "team";
    e1.value = "ops";
    e2.key = "env";
    e2.value = "prod";
    e3.key = "cost-center";
    e3.value = "";
    t.n_labels = 3;
    t.labels = labels;
    created.seconds = 1714557600; /* 2024-05-01T10:00:00Z */
    updated.seconds = 1714557601;
    updated.nanos = 250000000;
    t.create_time = &created;
    t.update_time = &updated;

    /* Field order is the proto's; empty strings and unset timestamps are left out; map
     * keys come out sorted. */
    expect_json(&t.base, 0,
                "{\"name\":\"tenants/acme\",\"display_name\":\"Acme\",\"plan\":\"plans/basic\","
                "\"state\":\"ACTIVE\",\"database_strategy\":\"SHARED\","
                "\"labels\":{\"cost-center\":\"\",\"env\":\"prod\",\"team\":\"ops\"},"
                "\"create_time\":\"2024-05-01T10:00:00Z\","
                "\"update_time\":\"2024-05-01T10:00:01.250Z\"}");
}

static void test_string_escaping(void **state)
{
    (void)state;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;

    /* quote, backslash, the short escapes, other control characters, DEL, UTF-8 (2, 3
     * and 4 bytes) passed through, then invalid UTF-8: a lone continuation byte, a
     * truncated sequence, an overlong encoding and a surrogate. */
    t.display_name = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"
                     " \x80 \xe2\x82 \xc0\xaf \xed\xa0\x80.";
    expect_json(&t.base, 0,
                "{\"display_name\":\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f"
                " caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"
                " \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd.\"}");

    /* Map keys are escaped too. */
    Saasodoo__V1__Tenant__LabelsEntry e = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry *labels[] = {&e};
    Saasodoo__V1__Tenant t2 = SAASODOO__V1__TENANT__INIT;
    e.key = "k\"ey";
    e.value = "line1\nline2";
    t2.n_labels = 1;
    t2.labels = labels;
    expect_json(&t2.base, 0, "{\"labels\":{\"k\\\"ey\":\"line1\\nline2\"}}");
}

static void test_operation_nested_error(void **state)
{
    (void)state;
    Saasodoo__V1__Operation op = SAASODOO__V1__OPERATION__INIT;
    Saasodoo__V1__OperationError err = SAASODOO__V1__OPERATION_ERROR__INIT;

    op.name = "operations/op-1";
    op.kind = SAASODOO__V1__OPERATION__KIND__CREATE_TENANT;
    op.target = "tenants/acme";
    op.done = 1;
    op.progress_percent = 40;
    op.step = "cloning database";
    err.code = 13;
    err.message = "template database \"odoo17\" is missing";
    op.error = &err;
    op.state = SAASODOO__V1__OPERATION__STATE__FAILED;

    expect_json(&op.base, 0,
                "{\"name\":\"operations/op-1\",\"kind\":\"CREATE_TENANT\","
                "\"target\":\"tenants/acme\",\"done\":true,\"progress_percent\":40,"
                "\"step\":\"cloning database\",\"error\":{\"code\":13,\"message\":"
                "\"template database \\\"odoo17\\\" is missing\"},\"state\":\"FAILED\"}");

    expect_json(&op.base, SDO_JSON_PRETTY,
                "{\n"
                "  \"name\": \"operations/op-1\",\n"
                "  \"kind\": \"CREATE_TENANT\",\n"
                "  \"target\": \"tenants/acme\",\n"
                "  \"done\": true,\n"
                "  \"progress_percent\": 40,\n"
                "  \"step\": \"cloning database\",\n"
                "  \"error\": {\n"
                "    \"code\": 13,\n"
                "    \"message\": \"template database \\\"odoo17\\\" is missing\"\n"
                "  },\n"
                "  \"state\": \"FAILED\"\n"
                "}");

    /* An error message with every field at its zero value is still an object. */
    Saasodoo__V1__OperationError empty = SAASODOO__V1__OPERATION_ERROR__INIT;
    Saasodoo__V1__Operation op2 = SAASODOO__V1__OPERATION__INIT;
    op2.error = &empty;
    expect_json(&op2.base, 0, "{\"error\":{}}");
    expect_json(&op2.base, SDO_JSON_PRETTY, "{\n  \"error\": {}\n}");
}

static void test_defaults(void **state)
{
    (void)state;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    expect_json(&t.base, 0, "{}");
    expect_json(&t.base, SDO_JSON_EMIT_DEFAULTS,
                "{\"name\":\"\",\"display_name\":\"\",\"owner\":\"\",\"plan\":\"\","
                "\"state\":\"STATE_UNSPECIFIED\","
                "\"database_strategy\":\"DATABASE_STRATEGY_UNSPECIFIED\","
                "\"database_server\":\"\",\"url\":\"\",\"odoo_version\":\"\",\"labels\":{},"
                "\"create_time\":null,\"update_time\":null,\"etag\":\"\",\"state_reason\":\"\","
                "\"delete_time\":null}");

    Saasodoo__V1__ListTenantsResponse r = SAASODOO__V1__LIST_TENANTS_RESPONSE__INIT;
    expect_json(&r.base, SDO_JSON_EMIT_DEFAULTS,
                "{\"tenants\":[],\"next_page_token\":\"\",\"total_size\":0}");
    expect_json(&r.base, SDO_JSON_EMIT_DEFAULTS | SDO_JSON_PRETTY,
                "{\n  \"tenants\": [],\n  \"next_page_token\": \"\",\n  \"total_size\": 0\n}");
}

static void test_numbers_and_lists(void **state)
{
    (void)state;
    Saasodoo__V1__TenantUsage u = SAASODOO__V1__TENANT_USAGE__INIT;
    u.database_size_bytes = INT64_C(9007199254740993); /* above 2^53: needs a string */
    u.filestore_size_bytes = -5;
    u.db_connections = -2147483647 - 1;
    u.cpu_millicores = 0.1;
    u.memory_bytes = INT64_MAX;
    expect_json(&u.base, 0,
                "{\"database_size_bytes\":\"9007199254740993\",\"filestore_size_bytes\":\"-5\","
                "\"db_connections\":-2147483648,\"cpu_millicores\":0.1,"
                "\"memory_bytes\":\"9223372036854775807\"}");

    u = (Saasodoo__V1__TenantUsage)SAASODOO__V1__TENANT_USAGE__INIT;
    u.cpu_millicores = INFINITY;
    expect_json(&u.base, 0, "{\"cpu_millicores\":\"Infinity\"}");
    u.cpu_millicores = 1e300;
    expect_json(&u.base, 0, "{\"cpu_millicores\":1e+300}");
    u.cpu_millicores = 2.5;
    expect_json(&u.base, 0, "{\"cpu_millicores\":2.5}");

    /* A list of messages, pretty. */
    Saasodoo__V1__Tenant a = SAASODOO__V1__TENANT__INIT, b = SAASODOO__V1__TENANT__INIT;
    Saasodoo__V1__Tenant *items[] = {&a, &b};
    Saasodoo__V1__ListTenantsResponse r = SAASODOO__V1__LIST_TENANTS_RESPONSE__INIT;
    a.name = "tenants/a";
    b.name = "tenants/b";
    r.n_tenants = 2;
    r.tenants = items;
    r.next_page_token = "t2";
    r.total_size = 7;
    expect_json(&r.base, SDO_JSON_PRETTY,
                "{\n"
                "  \"tenants\": [\n"
                "    {\n"
                "      \"name\": \"tenants/a\"\n"
                "    },\n"
                "    {\n"
                "      \"name\": \"tenants/b\"\n"
                "    }\n"
                "  ],\n"
                "  \"next_page_token\": \"t2\",\n"
                "  \"total_size\": 7\n"
                "}");
}

static void test_field_mask_and_unknown_enum(void **state)
{
    (void)state;
    Saasodoo__V1__UpdateTenantRequest req = SAASODOO__V1__UPDATE_TENANT_REQUEST__INIT;
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    char *paths[] = {"display_name", "labels"};

    mask.n_paths = 2;
    mask.paths = paths;
    t.state = (Saasodoo__V1__Tenant__State)42; /* newer server, older client */
    req.tenant = &t;
    req.update_mask = &mask;
    expect_json(&req.base, 0,
                "{\"tenant\":{\"state\":42},\"update_mask\":\"display_name,labels\"}");
}

/* Messages decoded from the wire take the same path as hand-built ones. */
static void test_round_trip(void **state)
{
    (void)state;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    Saasodoo__V1__Tenant__LabelsEntry e1 = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry e2 = SAASODOO__V1__TENANT__LABELS_ENTRY__INIT;
    Saasodoo__V1__Tenant__LabelsEntry *labels[] = {&e1, &e2};
    Google__Protobuf__Timestamp deleted = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    uint8_t buf[512];

    t.name = "tenants/b";
    t.state = SAASODOO__V1__TENANT__STATE__DELETED;
    e1.key = "z";
    e1.value = "1";
    e2.key = "a";
    e2.value = "2";
    t.n_labels = 2;
    t.labels = labels;
    deleted.seconds = 0;
    deleted.nanos = 1000;
    t.delete_time = &deleted;
    size_t len = saasodoo__v1__tenant__get_packed_size(&t);
    assert_true(len <= sizeof(buf));
    saasodoo__v1__tenant__pack(&t, buf);
    Saasodoo__V1__Tenant *u = saasodoo__v1__tenant__unpack(NULL, len, buf);
    assert_non_null(u);
    expect_json(
        &u->base, 0,
        "{\"name\":\"tenants/b\",\"state\":\"DELETED\",\"labels\":{\"a\":\"2\",\"z\":\"1\"},"
        "\"delete_time\":\"1970-01-01T00:00:00.000001Z\"}");
    saasodoo__v1__tenant__free_unpacked(u, NULL);
}

static void test_timestamps(void **state)
{
    (void)state;
    char buf[SDO_TIMESTAMP_BUFSIZE];

    assert_int_equal(sdo_format_timestamp(0, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(sdo_format_timestamp(-1, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_int_equal(sdo_format_timestamp(951782400, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2000-02-29T00:00:00.000000001Z");
    assert_int_equal(sdo_format_timestamp(INT64_C(-62135596800), 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0001-01-01T00:00:00Z");
    assert_int_equal(sdo_format_timestamp(INT64_C(253402300799), 999999999, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "9999-12-31T23:59:59.999999999Z");

    assert_int_equal(sdo_format_timestamp(INT64_C(253402300800), 0, buf, sizeof(buf)),
                     -SDO_OUT_OF_RANGE);
    assert_int_equal(sdo_format_timestamp(INT64_C(-62135596801), 0, buf, sizeof(buf)),
                     -SDO_OUT_OF_RANGE);
    assert_int_equal(sdo_format_timestamp(0, -1, buf, sizeof(buf)), -SDO_OUT_OF_RANGE);
    assert_int_equal(sdo_format_timestamp(0, 1000000000, buf, sizeof(buf)), -SDO_OUT_OF_RANGE);
    assert_int_equal(sdo_format_timestamp(0, 0, buf, 8), -SDO_INVALID_ARGUMENT);
}

static void test_errors(void **state)
{
    (void)state;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    Google__Protobuf__Timestamp bad = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    char *out = (char *)"untouched";

    assert_int_equal(sdo_json_render(NULL, 0, &out, NULL), -SDO_INVALID_ARGUMENT);
    assert_null(out);
    assert_int_equal(sdo_json_render(&t.base, 0, NULL, NULL), -SDO_INVALID_ARGUMENT);

    /* A timestamp JSON cannot express fails the whole rendering, leaking nothing. */
    bad.seconds = INT64_MAX;
    t.name = "tenants/x";
    t.create_time = &bad;
    out = (char *)"untouched";
    assert_int_equal(sdo_json_render(&t.base, 0, &out, NULL), -SDO_OUT_OF_RANGE);
    assert_null(out);
}

static void test_status_helpers(void **state)
{
    (void)state;
    assert_string_equal(sdo_code_name(SDO_OK), "OK");
    assert_string_equal(sdo_code_name(5), "NOT_FOUND");
    assert_string_equal(sdo_code_name(14), "UNAVAILABLE");
    assert_string_equal(sdo_code_name(16), "UNAUTHENTICATED");
    assert_string_equal(sdo_code_name(17), "UNKNOWN");
    assert_string_equal(sdo_code_name(-1), "UNKNOWN");

    sdo_status st = {.code = SDO_NOT_FOUND};
    st.message = strdup("tenant 'x' not found");
    st.details = malloc(3);
    st.details_len = 3;
    sdo_status_clear(&st);
    assert_int_equal(st.code, SDO_OK);
    assert_null(st.message);
    assert_null(st.details);
    assert_int_equal(st.details_len, 0);
    sdo_status_clear(NULL);
}

/* A self-signed CA certificate (no key kept anywhere): valid PEM for the TLS path. */
static const char test_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBmDCCAT2gAwIBAgIUQp1oi8ll35dQx4qQYuyyKCaY2T0wCgYIKoZIzj0EAwIw\n"
    "IDEeMBwGA1UEAwwVc2Fhc29kb28tdW5pdC10ZXN0LWNhMCAXDTI2MTEyNjIyNDQw\n"
    "MVoYDzIxMjYxMTAyMjI0NDAxWjAgMR4wHAYDVQQDDBVzYWFzb2Rvby11bml0LXRl\n"
    "c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASQ0g0eqMLBpWzOvifJTgce\n"
    "HJKr9an9/qrVo4+4awcghovViU+zQAd1vNP+qRPkp5KSbzeWPaMIUNnmTppEiK4l\n"
    "o1MwUTAdBgNVHQ4EFgQUvtM8nq4Ht4QulJyT6vpxqZtlXagwHwYDVR0jBBgwFoAU\n"
    "vtM8nq4Ht4QulJyT6vpxqZtlXagwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD\n"
    "AgNJADBGAiEApGv2K/qDSRtxbWNzgmlcsyrA85DYArGVdHGhtxme6d0CIQCxwN0a\n"
    "ilGP1Eo4CS26glWb4WxEUXJ87Nd2HLTk9f9xRQ==\n"
    "-----END CERTIFICATE-----\n";

/* Writes `len` bytes of `data` to a new temporary file; returns its path (static). */
static const char *temp_file(const char *data, size_t len)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/sdo-client-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
    assert_int_equal(close(fd), 0);
    return path;
}

static void test_client_config(void **state)
{
    (void)state;
    sdo_client_config cfg = {0};
    sdo_client *c;

    errno = 0;
    assert_null(sdo_client_new_config("", NULL));
    assert_int_equal(errno, EINVAL);
    cfg.token = "line\nbreak";
    errno = 0;
    assert_null(sdo_client_new_config("127.0.0.1:1", &cfg));
    assert_int_equal(errno, EINVAL);
    cfg.token = "abc";

    cfg.ca_file = "";
    errno = 0;
    assert_null(sdo_client_new_config("127.0.0.1:1", &cfg));
    assert_int_equal(errno, EINVAL);
    cfg.ca_file = "/nonexistent/saasodoo-ca.pem";
    errno = 0;
    assert_null(sdo_client_new_config("127.0.0.1:1", &cfg));
    assert_int_equal(errno, ENOENT);

    /* Not PEM at all. */
    cfg.ca_file = temp_file("just text\n", 10);
    errno = 0;
    assert_null(sdo_client_new_config("127.0.0.1:1", &cfg));
    assert_int_equal(errno, EINVAL);
    unlink(cfg.ca_file);

    /* Larger than the cap. */
    size_t big_len = SDO_MAX_CA_FILE_BYTES + 10;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'A', big_len);
    memcpy(big, test_ca_pem, sizeof(test_ca_pem) - 1);
    cfg.ca_file = temp_file(big, big_len);
    free(big);
    errno = 0;
    assert_null(sdo_client_new_config("127.0.0.1:1", &cfg));
    assert_int_equal(errno, EFBIG);
    unlink(cfg.ca_file);

    /* A real certificate: the client is made; nothing listens, so the call is UNAVAILABLE. */
    cfg.ca_file = temp_file(test_ca_pem, sizeof(test_ca_pem) - 1);
    c = sdo_client_new_config("127.0.0.1:1", &cfg);
    unlink(cfg.ca_file);
    assert_non_null(c);
    sdo_client_set_timeout(c, 5000);
    Saasodoo__V1__GetTenantRequest req = SAASODOO__V1__GET_TENANT_REQUEST__INIT;
    Saasodoo__V1__Tenant *t = NULL;
    sdo_status st = {0};
    req.name = "tenants/acme";
    assert_int_equal(sdo_tenant_service_get_tenant(c, &req, &t, &st), -SDO_UNAVAILABLE);
    assert_null(t);
    assert_int_equal(st.code, SDO_UNAVAILABLE);
    sdo_status_clear(&st);
    sdo_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_labels_enum_timestamps),
        cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_operation_nested_error),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_numbers_and_lists),
        cmocka_unit_test(test_field_mask_and_unknown_enum),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_status_helpers),
        cmocka_unit_test(test_client_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
