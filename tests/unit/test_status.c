/* Unit tests of the status table and error helpers (util/util.h) and of the error details
 * sent to clients (rpc/status.h): google.rpc.Status carrying BadRequest and ErrorInfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <grpc/slice.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "rpc/status.h"
#include "saasodoo/v1/error.pb-c.h"
#include "util/util.h"

#define BAD_REQUEST_URL "type.googleapis.com/google.rpc.BadRequest"
#define ERROR_INFO_URL "type.googleapis.com/saasodoo.v1.ErrorInfo"

/* ---- the status table ------------------------------------------------------------------ */

static void test_status_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    assert_int_equal(sizeof names / sizeof names[0], 17);
    for (int code = 0; code <= 16; code++)
        assert_string_equal(sdo_status_name(code), names[code]);
}

static void test_status_numbers_are_grpc_codes(void **state)
{
    (void)state;
    /* the values clients see on the wire */
    assert_int_equal(SDO_OK, 0);
    assert_int_equal(SDO_INVALID_ARGUMENT, 3);
    assert_int_equal(SDO_NOT_FOUND, 5);
    assert_int_equal(SDO_ALREADY_EXISTS, 6);
    assert_int_equal(SDO_FAILED_PRECONDITION, 9);
    assert_int_equal(SDO_UNIMPLEMENTED, 12);
    assert_int_equal(SDO_INTERNAL, 13);
    assert_int_equal(SDO_UNAVAILABLE, 14);
    assert_int_equal(SDO_UNAUTHENTICATED, 16);
}

static void test_status_name_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(sdo_status_name(-1), "UNKNOWN");
    assert_string_equal(sdo_status_name(17), "UNKNOWN");
    assert_string_equal(sdo_status_name(100), "UNKNOWN");
    assert_string_equal(sdo_status_name(INT32_MIN), "UNKNOWN");
    assert_string_equal(sdo_status_name(INT32_MAX), "UNKNOWN");
}

/* ---- sdo_fail and friends -------------------------------------------------------------- */

static void test_fail_fills_error(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0x5a, sizeof err); /* garbage from an earlier use */
    assert_int_equal(sdo_fail(&err, SDO_NOT_FOUND, "tenant '%s' not found (%d)", "acme", 7),
                     -SDO_NOT_FOUND);
    assert_int_equal(err.code, SDO_NOT_FOUND);
    assert_string_equal(err.message, "tenant 'acme' not found (7)");
    /* a fresh error: no field or reason left over */
    assert_string_equal(err.field, "");
    assert_string_equal(err.reason, "");

    for (int code = 1; code <= 16; code++) {
        assert_int_equal(sdo_fail(&err, (sdo_status)code, "x"), -code);
        assert_int_equal(err.code, code);
    }
}

static void test_fail_without_error_struct(void **state)
{
    (void)state;
    assert_int_equal(sdo_fail(NULL, SDO_INTERNAL, "ignored %s", "text"), -SDO_INTERNAL);
    assert_int_equal(sdo_fail_field(NULL, "f", "ignored"), -SDO_INVALID_ARGUMENT);
    sdo_error_reason(NULL, "IGNORED"); /* must not crash */
}

static void test_fail_message_truncated(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sdo_error err;
    assert_int_equal(sdo_fail(&err, SDO_INTERNAL, "%s", big), -SDO_INTERNAL);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
    assert_memory_equal(err.message, big, sizeof err.message - 1);
}

static void test_fail_field(void **state)
{
    (void)state;
    sdo_error err;
    memset(&err, 0x5a, sizeof err);
    assert_int_equal(sdo_fail_field(&err, "tenant.display_name", "display_name is %s", "empty"),
                     -SDO_INVALID_ARGUMENT);
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "tenant.display_name");
    assert_string_equal(err.message, "display_name is empty");
    assert_string_equal(err.reason, "");

    /* an over-long field name is cut, never overflows */
    char field[200];
    memset(field, 'f', sizeof field - 1);
    field[sizeof field - 1] = 0;
    sdo_fail_field(&err, field, "x");
    assert_int_equal(strlen(err.field), sizeof err.field - 1);

    /* a later plain failure clears the field */
    sdo_fail(&err, SDO_INTERNAL, "boom");
    assert_string_equal(err.field, "");
}

static void test_error_reason(void **state)
{
    (void)state;
    sdo_error err;
    sdo_fail(&err, SDO_ALREADY_EXISTS, "tenant 'acme' exists");
    sdo_error_reason(&err, "TENANT_ID_TAKEN");
    assert_string_equal(err.reason, "TENANT_ID_TAKEN");
    /* the rest is kept */
    assert_int_equal(err.code, SDO_ALREADY_EXISTS);
    assert_string_equal(err.message, "tenant 'acme' exists");

    char reason[100];
    memset(reason, 'R', sizeof reason - 1);
    reason[sizeof reason - 1] = 0;
    sdo_error_reason(&err, reason);
    assert_int_equal(strlen(err.reason), sizeof err.reason - 1);

    /* a new failure starts without a reason */
    sdo_fail(&err, SDO_NOT_FOUND, "gone");
    assert_string_equal(err.reason, "");
}

/* ---- rpc_status_details ---------------------------------------------------------------- */

/* Packs err, unpacks the slice as google.rpc.Status; the caller frees the result. */
static Google__Rpc__Status *details_of(const sdo_error *err)
{
    grpc_slice s;
    assert_true(rpc_status_details(err, &s));
    Google__Rpc__Status *st =
        google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    assert_non_null(st);
    return st;
}

static const Google__Protobuf__Any *find_detail(const Google__Rpc__Status *st, const char *url)
{
    for (size_t i = 0; i < st->n_details; i++)
        if (strcmp(st->details[i]->type_url, url) == 0)
            return st->details[i];
    return NULL;
}

static void test_details_none(void **state)
{
    (void)state;
    sdo_error err;
    grpc_slice s = grpc_empty_slice();
    sdo_fail(&err, SDO_NOT_FOUND, "tenant 'acme' not found");
    assert_false(rpc_status_details(&err, &s));
    sdo_fail(&err, SDO_INTERNAL, "%s", "");
    assert_false(rpc_status_details(&err, &s));
    assert_int_equal(GRPC_SLICE_LENGTH(s), 0);
}

static void test_details_field(void **state)
{
    (void)state;
    sdo_error err;
    sdo_fail_field(&err, "tenant_id", "tenant_id 'Acme!' must match %s", "^[a-z]$");
    Google__Rpc__Status *st = details_of(&err);
    assert_int_equal(st->code, SDO_INVALID_ARGUMENT);
    assert_string_equal(st->message, "tenant_id 'Acme!' must match ^[a-z]$");
    assert_int_equal(st->n_details, 1);
    assert_string_equal(st->details[0]->type_url, BAD_REQUEST_URL);
    assert_null(find_detail(st, ERROR_INFO_URL));

    const Google__Protobuf__Any *any = st->details[0];
    Google__Rpc__BadRequest *br =
        google__rpc__bad_request__unpack(NULL, any->value.len, any->value.data);
    assert_non_null(br);
    assert_int_equal(br->n_field_violations, 1);
    assert_string_equal(br->field_violations[0]->field, "tenant_id");
    assert_string_equal(br->field_violations[0]->description, err.message);
    google__rpc__bad_request__free_unpacked(br, NULL);
    google__rpc__status__free_unpacked(st, NULL);
}

static void test_details_reason(void **state)
{
    (void)state;
    sdo_error err;
    sdo_fail(&err, SDO_ALREADY_EXISTS, "tenant 'acme' already exists");
    sdo_error_reason(&err, "TENANT_ID_TAKEN");
    Google__Rpc__Status *st = details_of(&err);
    assert_int_equal(st->code, SDO_ALREADY_EXISTS);
    assert_string_equal(st->message, "tenant 'acme' already exists");
    assert_int_equal(st->n_details, 1);
    assert_null(find_detail(st, BAD_REQUEST_URL));

    const Google__Protobuf__Any *any = find_detail(st, ERROR_INFO_URL);
    assert_non_null(any);
    Saasodoo__V1__ErrorInfo *ei =
        saasodoo__v1__error_info__unpack(NULL, any->value.len, any->value.data);
    assert_non_null(ei);
    assert_string_equal(ei->reason, "TENANT_ID_TAKEN");
    assert_string_equal(ei->domain, "saasodoo.v1");
    saasodoo__v1__error_info__free_unpacked(ei, NULL);
    google__rpc__status__free_unpacked(st, NULL);
}

static void test_details_field_and_reason(void **state)
{
    (void)state;
    sdo_error err;
    sdo_fail_field(&err, "tenant_id", "tenant_id 'www' is reserved");
    sdo_error_reason(&err, "TENANT_ID_RESERVED");
    Google__Rpc__Status *st = details_of(&err);
    assert_int_equal(st->code, SDO_INVALID_ARGUMENT);
    assert_string_equal(st->message, "tenant_id 'www' is reserved");
    assert_int_equal(st->n_details, 2);

    const Google__Protobuf__Any *a1 = find_detail(st, BAD_REQUEST_URL);
    const Google__Protobuf__Any *a2 = find_detail(st, ERROR_INFO_URL);
    assert_non_null(a1);
    assert_non_null(a2);
    Google__Rpc__BadRequest *br =
        google__rpc__bad_request__unpack(NULL, a1->value.len, a1->value.data);
    assert_non_null(br);
    assert_int_equal(br->n_field_violations, 1);
    assert_string_equal(br->field_violations[0]->field, "tenant_id");
    Saasodoo__V1__ErrorInfo *ei =
        saasodoo__v1__error_info__unpack(NULL, a2->value.len, a2->value.data);
    assert_non_null(ei);
    assert_string_equal(ei->reason, "TENANT_ID_RESERVED");
    assert_string_equal(ei->domain, "saasodoo.v1");
    saasodoo__v1__error_info__free_unpacked(ei, NULL);
    google__rpc__bad_request__free_unpacked(br, NULL);
    google__rpc__status__free_unpacked(st, NULL);
}

static void test_details_largest_error(void **state)
{
    (void)state;
    /* every buffer of sdo_error full: the details still pack and read back whole */
    sdo_error err;
    char msg[sizeof err.message + 10], field[sizeof err.field + 10], reason[sizeof err.reason + 10];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    memset(field, 'f', sizeof field - 1);
    field[sizeof field - 1] = 0;
    memset(reason, 'R', sizeof reason - 1);
    reason[sizeof reason - 1] = 0;
    sdo_fail_field(&err, field, "%s", msg);
    sdo_error_reason(&err, reason);

    Google__Rpc__Status *st = details_of(&err);
    assert_int_equal(strlen(st->message), sizeof err.message - 1);
    assert_int_equal(st->n_details, 2);
    const Google__Protobuf__Any *a1 = find_detail(st, BAD_REQUEST_URL);
    assert_non_null(a1);
    Google__Rpc__BadRequest *br =
        google__rpc__bad_request__unpack(NULL, a1->value.len, a1->value.data);
    assert_non_null(br);
    assert_string_equal(br->field_violations[0]->field, err.field);
    assert_string_equal(br->field_violations[0]->description, err.message);
    const Google__Protobuf__Any *a2 = find_detail(st, ERROR_INFO_URL);
    assert_non_null(a2);
    Saasodoo__V1__ErrorInfo *ei =
        saasodoo__v1__error_info__unpack(NULL, a2->value.len, a2->value.data);
    assert_non_null(ei);
    assert_string_equal(ei->reason, err.reason);
    saasodoo__v1__error_info__free_unpacked(ei, NULL);
    google__rpc__bad_request__free_unpacked(br, NULL);
    google__rpc__status__free_unpacked(st, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_status_numbers_are_grpc_codes),
        cmocka_unit_test(test_status_name_out_of_range),
        cmocka_unit_test(test_fail_fills_error),
        cmocka_unit_test(test_fail_without_error_struct),
        cmocka_unit_test(test_fail_message_truncated),
        cmocka_unit_test(test_fail_field),
        cmocka_unit_test(test_error_reason),
        cmocka_unit_test(test_details_none),
        cmocka_unit_test(test_details_field),
        cmocka_unit_test(test_details_reason),
        cmocka_unit_test(test_details_field_and_reason),
        cmocka_unit_test(test_details_largest_error),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
