/* Unit tests of the method table (rpc/dispatch.h) built from real protobuf-c service
 * descriptors, and of the full registry the server serves (api/app.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/app.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "rpc/dispatch.h"
#include "saasodoo/v1/admin.pb-c.h"
#include "saasodoo/v1/backup.pb-c.h"
#include "saasodoo/v1/billing.pb-c.h"
#include "saasodoo/v1/identity.pb-c.h"
#include "saasodoo/v1/monitoring.pb-c.h"
#include "saasodoo/v1/operation.pb-c.h"
#include "saasodoo/v1/tenant.pb-c.h"

#define GET_TENANT "/saasodoo.v1.TenantService/GetTenant"

static int create_tenant(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
    return 1;
}

static int get_tenant(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
    return 2;
}

static int get_operation(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
    return 3;
}

static int watch_operation(rpc_ctx *ctx, const ProtobufCMessage *req, rpc_stream *s)
{
    (void)ctx;
    (void)req;
    (void)s;
    return 4;
}

static const rpc_handler tenant_table[] = {
    {"CreateTenant", RPC_UNARY, create_tenant, NULL, NULL},
    {"GetTenant", RPC_UNARY, get_tenant, NULL, NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const rpc_handler operation_table[] = {
    {"GetOperation", RPC_UNARY, get_operation, NULL, NULL},
    {"WatchOperation", RPC_SERVER_STREAM, NULL, watch_operation, NULL},
    {NULL, 0, NULL, NULL, NULL},
};

/* Looks up a NUL-terminated path. */
static const rpc_method *find(const rpc_registry *r, const char *path)
{
    return rpc_registry_find(r, path, strlen(path));
}

/* Operation service first, then tenant service, sealed. */
static int registry_setup(void **state)
{
    rpc_registry *r = rpc_registry_new();
    if (!r)
        return -1;
    if (rpc_registry_add(r, &saasodoo__v1__operation_service__descriptor, operation_table) < 0 ||
        rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table) < 0) {
        rpc_registry_free(r);
        return -1;
    }
    rpc_registry_seal(r);
    *state = r;
    return 0;
}

static int registry_teardown(void **state)
{
    rpc_registry_free(*state);
    return 0;
}

/* ---- lookups --------------------------------------------------------------------------- */

static void test_find_implemented(void **state)
{
    const rpc_registry *r = *state;
    const rpc_method *m = find(r, GET_TENANT);
    assert_non_null(m);
    assert_string_equal(m->path, GET_TENANT);
    assert_string_equal(m->service, "saasodoo.v1.TenantService");
    assert_string_equal(m->name, "GetTenant");
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_UNARY);
    assert_ptr_equal(m->input, &saasodoo__v1__get_tenant_request__descriptor);
    assert_ptr_equal(m->output, &saasodoo__v1__tenant__descriptor);
    assert_non_null(m->unary);
    assert_int_equal(m->unary(NULL, NULL, NULL), 2);
    assert_null(m->stream);

    m = find(r, "/saasodoo.v1.TenantService/CreateTenant");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_ptr_equal(m->input, &saasodoo__v1__create_tenant_request__descriptor);
    assert_ptr_equal(m->output, &saasodoo__v1__operation__descriptor);
    assert_int_equal(m->unary(NULL, NULL, NULL), 1);
}

static void test_find_server_stream(void **state)
{
    const rpc_registry *r = *state;
    const rpc_method *m = find(r, "/saasodoo.v1.OperationService/WatchOperation");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_SERVER_STREAM);
    assert_non_null(m->stream);
    assert_int_equal(m->stream(NULL, NULL, NULL), 4);
    assert_null(m->unary);
    assert_ptr_equal(m->input, &saasodoo__v1__watch_operation_request__descriptor);
    assert_ptr_equal(m->output, &saasodoo__v1__operation__descriptor);

    m = find(r, "/saasodoo.v1.OperationService/GetOperation");
    assert_non_null(m);
    assert_int_equal(m->kind, RPC_UNARY);
    assert_int_equal(m->unary(NULL, NULL, NULL), 3);
}

static void test_find_unhandled_method_present(void **state)
{
    const rpc_registry *r = *state;
    const rpc_method *m = find(r, "/saasodoo.v1.TenantService/DeleteTenant");
    assert_non_null(m);
    assert_false(m->implemented);
    assert_string_equal(m->name, "DeleteTenant");
    assert_ptr_equal(m->input, &saasodoo__v1__delete_tenant_request__descriptor);
    assert_ptr_equal(m->output, &saasodoo__v1__operation__descriptor);
    assert_null(m->unary);
    assert_null(m->stream);
    assert_null(m->bidi);

    m = find(r, "/saasodoo.v1.OperationService/CancelOperation");
    assert_non_null(m);
    assert_false(m->implemented);
}

static void test_find_every_method_of_both_services(void **state)
{
    const rpc_registry *r = *state;
    const ProtobufCServiceDescriptor *svcs[] = {&saasodoo__v1__operation_service__descriptor,
                                                &saasodoo__v1__tenant_service__descriptor};
    size_t total = 0;
    for (size_t s = 0; s < 2; s++) {
        for (unsigned i = 0; i < svcs[s]->n_methods; i++) {
            char path[200];
            snprintf(path, sizeof path, "/%s/%s", svcs[s]->name, svcs[s]->methods[i].name);
            const rpc_method *m = find(r, path);
            if (!m)
                fail_msg("%s is missing", path);
            assert_string_equal(m->path, path);
            assert_ptr_equal(m->input, svcs[s]->methods[i].input);
            assert_ptr_equal(m->output, svcs[s]->methods[i].output);
            total++;
        }
    }
    assert_int_equal(rpc_registry_count(r), total);
    assert_int_equal(total, 12);

    /* iteration reaches each method once, and find agrees with it */
    for (size_t i = 0; i < rpc_registry_count(r); i++) {
        const rpc_method *m = rpc_registry_at(r, i);
        assert_non_null(m);
        assert_ptr_equal(find(r, m->path), m);
    }
    assert_null(rpc_registry_at(r, rpc_registry_count(r)));
}

static void test_find_unknown_paths(void **state)
{
    const rpc_registry *r = *state;
    static const char *const unknown[] = {
        "",
        "/",
        "/saasodoo.v1.TenantService",
        "/saasodoo.v1.TenantService/",
        "/saasodoo.v1.TenantService/GetTen",       /* a prefix of a path */
        "/saasodoo.v1.TenantService/GetTenantX",   /* a path and one more character */
        "/saasodoo.v1.TenantService/GetTenant/",   /* a trailing slash */
        "/saasodoo.v1.TenantService/gettenant",    /* case matters */
        "/saasodoo.v1.TenantService/NoSuchMethod", /* wrong method */
        "/saasodoo.v1.TenantServic/GetTenant",     /* wrong service */
        "/saasodoo.v2.TenantService/GetTenant",    /* wrong package */
        "/saasodoo.v1.BackupService/GetTenant",    /* service not registered */
        "/saasodoo.v1.OperationService/GetTenant", /* method of another service */
        "saasodoo.v1.TenantService/GetTenant",     /* no leading slash */
        "//saasodoo.v1.TenantService/GetTenant",   /* doubled slash */
        "/saasodoo.v1.TenantService/GetTenant ",   /* trailing space */
        "/grpc.health.v1.Health/Check",            /* not registered here */
        "/zzz",
        "/A",
        "~", /* beyond both ends of the table */
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        if (find(r, unknown[i]))
            fail_msg("'%s' should not be found", unknown[i]);
}

static void test_find_honours_len(void **state)
{
    const rpc_registry *r = *state;
    /* the buffer goes on after len: only the first len bytes are the path */
    static const char buf[] = GET_TENANT "sX/more";
    size_t n = strlen(GET_TENANT);
    const rpc_method *m = rpc_registry_find(r, buf, n);
    assert_non_null(m);
    assert_string_equal(m->path, GET_TENANT);
    assert_null(rpc_registry_find(r, buf, n - 1));
    assert_null(rpc_registry_find(r, buf, n + 1));
    assert_null(rpc_registry_find(r, buf, 0));

    /* a path that is not NUL-terminated at all */
    char raw[sizeof GET_TENANT - 1];
    memcpy(raw, GET_TENANT, sizeof raw);
    m = rpc_registry_find(r, raw, sizeof raw);
    assert_non_null(m);
    assert_string_equal(m->name, "GetTenant");

    /* ListTenants is reached even when the buffer continues with a valid-looking path */
    static const char two[] = "/saasodoo.v1.TenantService/ListTenants/saasodoo.v1.X/Y";
    m = rpc_registry_find(r, two, strlen("/saasodoo.v1.TenantService/ListTenants"));
    assert_non_null(m);
    assert_string_equal(m->name, "ListTenants");
}

static void test_services_in_registration_order(void **state)
{
    const rpc_registry *r = *state;
    assert_int_equal(rpc_registry_service_count(r), 2);
    assert_string_equal(rpc_registry_service_at(r, 0), "saasodoo.v1.OperationService");
    assert_string_equal(rpc_registry_service_at(r, 1), "saasodoo.v1.TenantService");
    assert_null(rpc_registry_service_at(r, 2));
}

/* ---- building ------------------------------------------------------------------------- */

static void test_add_rejects_unknown_handler_name(void **state)
{
    (void)state;
    static const rpc_handler typo[] = {
        {"GetTenant", RPC_UNARY, get_tenant, NULL, NULL},
        {"GetTennant", RPC_UNARY, get_tenant, NULL, NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    static const rpc_handler other_service[] = {
        {"GetOperation", RPC_UNARY, get_operation, NULL, NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, typo), -1);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, other_service),
                     -1);
    /* nothing was registered */
    assert_int_equal(rpc_registry_count(r), 0);
    assert_int_equal(rpc_registry_service_count(r), 0);

    /* the correct table still goes in afterwards */
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table),
                     0);
    rpc_registry_seal(r);
    assert_non_null(find(r, GET_TENANT));
    rpc_registry_free(r);
}

static void test_add_same_service_twice(void **state)
{
    (void)state;
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table),
                     0);
    size_t n = rpc_registry_count(r);
    assert_int_equal(n, saasodoo__v1__tenant_service__descriptor.n_methods);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table),
                     -1);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, NULL), -1);
    assert_int_equal(rpc_registry_count(r), n);
    assert_int_equal(rpc_registry_service_count(r), 1);
    rpc_registry_seal(r);
    const rpc_method *m = find(r, GET_TENANT);
    assert_non_null(m);
    assert_true(m->implemented);
    rpc_registry_free(r);
}

static void test_add_without_handlers(void **state)
{
    (void)state;
    static const rpc_handler empty[] = {{NULL, 0, NULL, NULL, NULL}};
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__backup_service__descriptor, empty), 0);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__billing_service__descriptor, NULL), 0);
    rpc_registry_seal(r);
    assert_int_equal(rpc_registry_count(r),
                     saasodoo__v1__backup_service__descriptor.n_methods +
                         saasodoo__v1__billing_service__descriptor.n_methods);
    for (size_t i = 0; i < rpc_registry_count(r); i++)
        assert_false(rpc_registry_at(r, i)->implemented);
    rpc_registry_free(r);
}

static void test_add_after_seal_refused(void **state)
{
    (void)state;
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table),
                     0);
    rpc_registry_seal(r);
    assert_int_equal(
        rpc_registry_add(r, &saasodoo__v1__operation_service__descriptor, operation_table), -1);
    assert_null(find(r, "/saasodoo.v1.OperationService/GetOperation"));
    assert_int_equal(rpc_registry_service_count(r), 1);
    rpc_registry_free(r);
}

static void test_empty_registry(void **state)
{
    (void)state;
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    rpc_registry_seal(r);
    assert_int_equal(rpc_registry_count(r), 0);
    assert_int_equal(rpc_registry_service_count(r), 0);
    assert_int_equal(rpc_registry_interceptor_count(r), 0);
    assert_null(rpc_registry_at(r, 0));
    assert_null(rpc_registry_interceptor_at(r, 0));
    assert_null(find(r, GET_TENANT));
    assert_null(find(r, ""));
    rpc_registry_free(r);
    rpc_registry_free(NULL);
}

static int ic_before(rpc_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static void test_interceptors_in_order(void **state)
{
    (void)state;
    static const rpc_interceptor first = {"first", ic_before, NULL, NULL, NULL};
    static const rpc_interceptor second = {"second", NULL, NULL, NULL, NULL};
    static const rpc_interceptor third = {"third", ic_before, NULL, NULL, NULL};
    rpc_registry *r = rpc_registry_new();
    assert_non_null(r);
    rpc_registry_intercept(r, &first);
    rpc_registry_intercept(r, &second);
    rpc_registry_intercept(r, &third);
    assert_int_equal(rpc_registry_add(r, &saasodoo__v1__tenant_service__descriptor, tenant_table),
                     0);
    rpc_registry_seal(r);
    assert_int_equal(rpc_registry_interceptor_count(r), 3);
    assert_ptr_equal(rpc_registry_interceptor_at(r, 0), &first);
    assert_ptr_equal(rpc_registry_interceptor_at(r, 1), &second);
    assert_ptr_equal(rpc_registry_interceptor_at(r, 2), &third);
    assert_string_equal(rpc_registry_interceptor_at(r, 2)->name, "third");
    assert_null(rpc_registry_interceptor_at(r, 3));
    rpc_registry_free(r);
}

/* ---- the server's registry ------------------------------------------------------------- */

static void test_api_registry_has_everything(void **state)
{
    (void)state;
    /* built once per process: the reflection index it fills is process-wide */
    rpc_registry *r = api_registry_new();
    assert_non_null(r);

    const ProtobufCServiceDescriptor *const svcs[] = {
        &saasodoo__v1__tenant_service__descriptor,
        &saasodoo__v1__operation_service__descriptor,
        &saasodoo__v1__backup_service__descriptor,
        &saasodoo__v1__billing_service__descriptor,
        &saasodoo__v1__monitoring_service__descriptor,
        &saasodoo__v1__identity_service__descriptor,
        &saasodoo__v1__admin_service__descriptor,
        &grpc__health__v1__health__descriptor,
        &grpc__reflection__v1__server_reflection__descriptor,
        &grpc__reflection__v1alpha__server_reflection__descriptor,
    };
    const size_t nsvcs = sizeof svcs / sizeof svcs[0];
    size_t total = 0;
    for (size_t s = 0; s < nsvcs; s++) {
        assert_true(svcs[s]->n_methods > 0);
        for (unsigned i = 0; i < svcs[s]->n_methods; i++) {
            char path[200];
            snprintf(path, sizeof path, "/%s/%s", svcs[s]->name, svcs[s]->methods[i].name);
            const rpc_method *m = find(r, path);
            if (!m)
                fail_msg("%s is missing from the server's registry", path);
            assert_ptr_equal(m->input, svcs[s]->methods[i].input);
            assert_ptr_equal(m->output, svcs[s]->methods[i].output);
            total++;
        }
        /* each service is listed once */
        size_t seen = 0;
        for (size_t i = 0; i < rpc_registry_service_count(r); i++)
            if (strcmp(rpc_registry_service_at(r, i), svcs[s]->name) == 0)
                seen++;
        if (seen != 1)
            fail_msg("service %s listed %zu times", svcs[s]->name, seen);
    }
    assert_int_equal(rpc_registry_count(r), total);
    assert_int_equal(rpc_registry_service_count(r), nsvcs);

    /* a path with a NUL inside, or longer than any method path, matches nothing */
    static const char nul_path[] = "/grpc.health.v1.Health/Check\0trailing";
    assert_null(rpc_registry_find(r, nul_path, sizeof nul_path - 1));
    char longpath[400];
    memset(longpath, 'a', sizeof longpath);
    assert_null(rpc_registry_find(r, longpath, sizeof longpath));

    /* a second registry in the same process works too */
    rpc_registry *r2 = api_registry_new();
    assert_non_null(r2);
    assert_int_equal(rpc_registry_count(r2), total);
    rpc_registry_free(r2);

    const rpc_method *m = find(r, "/grpc.health.v1.Health/Check");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_UNARY);
    assert_non_null(m->unary);

    m = find(r, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_BIDI);
    assert_non_null(m->bidi);
    m = find(r, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_BIDI);

    m = find(r, GET_TENANT);
    assert_non_null(m);
    assert_true(m->implemented);
    m = find(r, "/saasodoo.v1.OperationService/WatchOperation");
    assert_non_null(m);
    assert_true(m->implemented);
    assert_int_equal(m->kind, RPC_SERVER_STREAM);

    /* the interceptor chain is in place and every entry is named */
    assert_true(rpc_registry_interceptor_count(r) > 0);
    for (size_t i = 0; i < rpc_registry_interceptor_count(r); i++) {
        const rpc_interceptor *ic = rpc_registry_interceptor_at(r, i);
        assert_non_null(ic);
        assert_non_null(ic->name);
    }

    assert_null(find(r, "/saasodoo.v1.TenantService/Nope"));
    rpc_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find_implemented, registry_setup, registry_teardown),
        cmocka_unit_test_setup_teardown(test_find_server_stream, registry_setup, registry_teardown),
        cmocka_unit_test_setup_teardown(test_find_unhandled_method_present, registry_setup,
                                        registry_teardown),
        cmocka_unit_test_setup_teardown(test_find_every_method_of_both_services, registry_setup,
                                        registry_teardown),
        cmocka_unit_test_setup_teardown(test_find_unknown_paths, registry_setup, registry_teardown),
        cmocka_unit_test_setup_teardown(test_find_honours_len, registry_setup, registry_teardown),
        cmocka_unit_test_setup_teardown(test_services_in_registration_order, registry_setup,
                                        registry_teardown),
        cmocka_unit_test(test_add_rejects_unknown_handler_name),
        cmocka_unit_test(test_add_same_service_twice),
        cmocka_unit_test(test_add_without_handlers),
        cmocka_unit_test(test_add_after_seal_refused),
        cmocka_unit_test(test_interceptors_in_order),
        cmocka_unit_test(test_api_registry_has_everything),
        /* kept last: an abort here (sanitizer builds) must not hide the other results */
        cmocka_unit_test(test_empty_registry),
    };
    return cmocka_run_group_tests_name("dispatch", tests, NULL, NULL);
}
