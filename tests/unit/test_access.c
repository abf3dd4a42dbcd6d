/* Unit tests of access control pieces: token buckets and sign-in failure windows, scrypt
 * password hashes, email and password rules, and the authorization table (one rule for every
 * method the server registers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/app.h"
#include "identity/authz.h"
#include "identity/identity.h"
#include "identity/ratelimit.h"
#include "rpc/dispatch.h"
#include "saasodoo/v1/tenant.pb-c.h"

static void bucket_allows_burst_then_refills(void **state)
{
    (void)state;
    ratelimit *rl = ratelimit_new(1024);
    int64_t t = 1000000, retry = 0;
    for (int i = 0; i < 5; i++)
        assert_true(ratelimit_take(rl, "user", "alice", 2.0, 5.0, t, &retry));
    assert_false(ratelimit_take(rl, "user", "alice", 2.0, 5.0, t, &retry));
    assert_in_range(retry, 400, 501); /* one token every 500 ms */
    /* others have buckets of their own */
    assert_true(ratelimit_take(rl, "user", "bob", 2.0, 5.0, t, &retry));
    assert_true(ratelimit_take(rl, "addr", "alice", 2.0, 5.0, t, &retry));
    /* half a second later one token is back, and only one */
    t += 500000;
    assert_true(ratelimit_take(rl, "user", "alice", 2.0, 5.0, t, &retry));
    assert_false(ratelimit_take(rl, "user", "alice", 2.0, 5.0, t, &retry));
    /* a long pause refills up to the burst, not beyond */
    t += 60 * 1000000LL;
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += ratelimit_take(rl, "user", "alice", 2.0, 5.0, t, &retry);
    assert_int_equal(ok, 5);
    ratelimit_free(rl);
}

static void bucket_table_stays_bounded(void **state)
{
    (void)state;
    ratelimit *rl = ratelimit_new(64);
    int64_t retry = 0;
    char key[32];
    /* far more keys than slots: every new key starts with a full bucket */
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_true(ratelimit_take(rl, "addr", key, 1.0, 1.0, 1000000 + i, &retry));
    }
    ratelimit_free(rl);
}

static void failure_window(void **state)
{
    (void)state;
    ratelimit *rl = ratelimit_new(256);
    int64_t t = 5000000, retry = 0;
    assert_int_equal(ratelimit_failures(rl, "signin", "a@x.io", 60, t, &retry), 0);
    assert_int_equal(ratelimit_fail(rl, "signin", "a@x.io", 60, t), 1);
    assert_int_equal(ratelimit_fail(rl, "signin", "a@x.io", 60, t + 1000000), 2);
    assert_int_equal(ratelimit_failures(rl, "signin", "a@x.io", 60, t + 2000000, &retry), 2);
    assert_in_range(retry, 57000, 58001);
    ratelimit_clear(rl, "signin", "a@x.io");
    assert_int_equal(ratelimit_failures(rl, "signin", "a@x.io", 60, t + 2000000, &retry), 0);
    ratelimit_fail(rl, "signin", "a@x.io", 60, t + 3000000);
    /* the window ends and the count starts over */
    assert_int_equal(ratelimit_failures(rl, "signin", "a@x.io", 60, t + 64000000, &retry), 0);
    ratelimit_free(rl);
}

static void password_hashes(void **state)
{
    (void)state;
    char h1[160], h2[160];
    assert_int_equal(identity_password_hash("correct horse battery", h1, sizeof h1), 0);
    assert_int_equal(identity_password_hash("correct horse battery", h2, sizeof h2), 0);
    assert_true(strncmp(h1, "scrypt$32768$8$1$", 17) == 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_true(identity_password_check("correct horse battery", h1));
    assert_true(identity_password_check("correct horse battery", h2));
    assert_false(identity_password_check("correct horse batterY", h1));
    assert_false(identity_password_check("", h1));
    assert_false(identity_password_check("correct horse battery", "plain-text"));
    assert_false(identity_password_check("x", "scrypt$99999999999$8$1$AAAA$AAAA"));
    /* a changed byte of the stored hash fails */
    h1[strlen(h1) - 2] = h1[strlen(h1) - 2] == 'A' ? 'B' : 'A';
    assert_false(identity_password_check("correct horse battery", h1));
}

static void email_and_password_rules(void **state)
{
    (void)state;
    sdo_error err = {0};
    assert_int_equal(identity_check_email("ada@example.com", &err), 0);
    const char *bad[] = {"",
                         "ada",
                         "@example.com",
                         "ada@",
                         "ada@example",
                         "a b@example.com",
                         "ada@@example.com",
                         "ada@example.com.",
                         "ada@.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_true(identity_check_email(bad[i], &err) < 0);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "email");
    }
    memset(&err, 0, sizeof err);
    assert_true(identity_check_password("123456789", &err) < 0);
    assert_non_null(strstr(err.message, "at least 10"));
    assert_int_equal(identity_check_password("1234567890", &err), 0);
}

/* Every method the server serves has exactly one rule, and the rules name no method that
 * does not exist. */
static void every_method_has_a_rule(void **state)
{
    (void)state;
    rpc_registry *r = api_registry_new();
    assert_non_null(r);
    size_t n = rpc_registry_count(r);
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        const rpc_method *m = rpc_registry_at(r, i);
        const az_rule *rule = authz_rule(m->path);
        if (!rule)
            fail_msg("no authorization rule for %s", m->path);
    }
    size_t nr = 0;
    const az_rule *rules = authz_rules(&nr);
    for (size_t i = 0; i < nr; i++) {
        bool served = false;
        for (size_t j = 0; j < n && !served; j++)
            served = strcmp(rpc_registry_at(r, j)->path, rules[i].method) == 0;
        if (!served)
            fail_msg("rule for %s names no served method", rules[i].method);
        for (size_t j = 0; j < i; j++)
            if (strcmp(rules[j].method, rules[i].method) == 0)
                fail_msg("two rules for %s", rules[i].method);
    }
    rpc_registry_free(r);
}

static void admins_pass_customers_are_checked(void **state)
{
    (void)state;
    Saasodoo__V1__CreateTenantRequest req = SAASODOO__V1__CREATE_TENANT_REQUEST__INIT;
    Saasodoo__V1__Tenant t = SAASODOO__V1__TENANT__INIT;
    req.tenant_id = "acme";
    req.tenant = &t;
    t.owner = "users/someoneelse";
    const az_rule *rule = authz_rule("/saasodoo.v1.TenantService/CreateTenant");
    principal admin = {"uadmin", ROLE_ADMIN, ""}, cust = {"ucust", ROLE_CUSTOMER, ""};
    char target[160];
    sdo_error err = {0};
    /* no store is touched by these rules */
    assert_int_equal(authz_check(NULL, rule, &admin, &req.base, target, sizeof target, &err), 0);
    assert_string_equal(target, "tenants/acme");
    assert_true(authz_check(NULL, rule, &cust, &req.base, target, sizeof target, &err) < 0);
    assert_int_equal(err.code, SDO_PERMISSION_DENIED);
    t.owner = "users/ucust";
    memset(&err, 0, sizeof err);
    assert_int_equal(authz_check(NULL, rule, &cust, &req.base, target, sizeof target, &err), 0);
    t.owner = "";
    assert_int_equal(authz_check(NULL, rule, &cust, &req.base, target, sizeof target, &err), 0);
    /* admin-only methods */
    const az_rule *fsck = authz_rule("/saasodoo.v1.AdminService/CheckConsistency");
    assert_true(authz_check(NULL, fsck, &cust, &req.base, target, sizeof target, &err) < 0);
    assert_int_equal(err.code, SDO_PERMISSION_DENIED);
    /* anonymous callers of a non-public method */
    memset(&err, 0, sizeof err);
    assert_true(authz_check(NULL, fsck, NULL, &req.base, target, sizeof target, &err) < 0);
    assert_int_equal(err.code, SDO_UNAUTHENTICATED);
    assert_true(authz_mutating("/saasodoo.v1.TenantService/CreateTenant"));
    assert_false(authz_mutating("/saasodoo.v1.TenantService/GetTenant"));
    assert_false(authz_mutating("/saasodoo.v1.OperationService/WatchOperation"));
    assert_false(authz_mutating("/grpc.health.v1.Health/Check"));
    assert_null(authz_owner_scope("users/uadmin", ROLE_ADMIN));
    assert_string_equal(authz_owner_scope("users/ucust", ROLE_CUSTOMER), "users/ucust");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_allows_burst_then_refills),
        cmocka_unit_test(bucket_table_stays_bounded),
        cmocka_unit_test(failure_window),
        cmocka_unit_test(password_hashes),
        cmocka_unit_test(email_and_password_rules),
        cmocka_unit_test(every_method_has_a_rule),
        cmocka_unit_test(admins_pass_customers_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
