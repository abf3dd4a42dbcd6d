/* Unit tests of paging (api/pagination.h): page sizes and page tokens bound to a scope;
 * and of the encodings and ids they rest on (util/util.h): base64url and UUIDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/pagination.h"
#include "util/util.h"

static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- page sizes ------------------------------------------------------------------------ */

static void test_page_size_resolve(void **state)
{
    (void)state;
    static const struct {
        int32_t in;
        int out;
    } cases[] = {
        {0, PAGE_SIZE_DEFAULT}, {1, 1}, {49, 49}, {50, 50}, {499, 499}, {500, 500}, {501, 500},
        {INT32_MAX, 500},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int out = -7;
        sdo_error err;
        assert_int_equal(page_size_resolve(cases[i].in, &out, &err), 0);
        assert_int_equal(out, cases[i].out);
    }
    assert_int_equal(PAGE_SIZE_DEFAULT, 50);
    assert_int_equal(PAGE_SIZE_MAX, 500);
}

static void test_page_size_negative(void **state)
{
    (void)state;
    static const int32_t bad[] = {-1, -50, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int out = 0;
        sdo_error err;
        memset(&err, 0, sizeof err);
        assert_int_equal(page_size_resolve(bad[i], &out, &err), -SDO_INVALID_ARGUMENT);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "page_size");
        assert_non_null(strstr(err.message, "page_size"));
    }
}

/* ---- page tokens ----------------------------------------------------------------------- */

static const char scope_a[] = "tenants|state = ACTIVE|show_deleted=0";
static const char scope_b[] = "tenants|state = DELETED|show_deleted=0";

static void expect_token_rejected(const char *token, const char *scope)
{
    int64_t key = 99;
    sdo_error err;
    memset(&err, 0, sizeof err);
    int rc = page_token_decode(token, scope, &key, &err);
    if (rc != -SDO_INVALID_ARGUMENT)
        fail_msg("token '%s' should be rejected (rc %d, key %lld)", token, rc, (long long)key);
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.field, "page_token");
}

static void test_token_round_trip(void **state)
{
    (void)state;
    static const int64_t keys[] = {0, 1, 255, 256, (int64_t)1 << 40, INT64_MAX - 1, INT64_MAX};
    static const char *const scopes[] = {scope_a, "", "x"};
    for (size_t s = 0; s < sizeof scopes / sizeof scopes[0]; s++) {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            char tok[PAGE_TOKEN_MAX];
            memset(tok, 0, sizeof tok);
            page_token_encode(keys[i], scopes[s], tok, sizeof tok);
            size_t n = strlen(tok);
            assert_true(n > 0 && n < PAGE_TOKEN_MAX);
            /* safe to put in a URL or a header as it is */
            assert_int_equal(strspn(tok, url_alphabet), n);

            int64_t key = -1;
            sdo_error err;
            memset(&err, 0, sizeof err);
            assert_int_equal(page_token_decode(tok, scopes[s], &key, &err), 0);
            assert_true(key == keys[i]);
        }
    }
}

static void test_token_depends_on_key_and_scope(void **state)
{
    (void)state;
    char t1[PAGE_TOKEN_MAX], t2[PAGE_TOKEN_MAX], t3[PAGE_TOKEN_MAX], t4[PAGE_TOKEN_MAX];
    page_token_encode(1, scope_a, t1, sizeof t1);
    page_token_encode(2, scope_a, t2, sizeof t2);
    page_token_encode(1, scope_b, t3, sizeof t3);
    page_token_encode(1, scope_a, t4, sizeof t4);
    assert_string_not_equal(t1, t2);
    assert_string_not_equal(t1, t3);
    /* deterministic */
    assert_string_equal(t1, t4);
}

/* Changing the key inside a token is noticed: the digest covers the key too. */
static void test_token_key_tamper_rejected(void **state)
{
    (void)state;
    char tok[PAGE_TOKEN_MAX];
    page_token_encode(1000, scope_a, tok, sizeof tok);
    unsigned char raw[32];
    int n = sdo_b64url_decode(tok, raw, sizeof raw);
    assert_int_equal(n, 17);
    for (int byte = 1; byte <= 8; byte++) {
        unsigned char bad[17];
        memcpy(bad, raw, 17);
        bad[byte] ^= 0x01;
        char btok[PAGE_TOKEN_MAX];
        assert_true(sdo_b64url_encode(bad, 17, btok, sizeof btok) > 0);
        int64_t key = -1;
        sdo_error err = {0};
        assert_true(page_token_decode(btok, scope_a, &key, &err) < 0);
        assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
        assert_string_equal(err.field, "page_token");
    }
}

static void test_token_other_scope_rejected(void **state)
{
    (void)state;
    char tok[PAGE_TOKEN_MAX];
    page_token_encode(42, scope_a, tok, sizeof tok);
    expect_token_rejected(tok, scope_b);
    expect_token_rejected(tok, "");
    /* a scope that differs in one byte only */
    char near[sizeof scope_a];
    memcpy(near, scope_a, sizeof scope_a);
    near[0] = 'T';
    expect_token_rejected(tok, near);

    page_token_encode(42, "", tok, sizeof tok);
    expect_token_rejected(tok, scope_a);
}

static void test_token_empty_is_first_page(void **state)
{
    (void)state;
    int64_t key = 1234;
    sdo_error err;
    assert_int_equal(page_token_decode("", scope_a, &key, &err), 0);
    assert_true(key == 0);
    key = 5;
    assert_int_equal(page_token_decode("", "", &key, &err), 0);
    assert_true(key == 0);
}

/* Replaces tok[i] with another character of the alphabet. */
static void flip(char *tok, size_t i)
{
    tok[i] = tok[i] == 'A' ? 'B' : 'A';
}

static void test_token_garbled(void **state)
{
    (void)state;
    char good[PAGE_TOKEN_MAX];
    char tok[PAGE_TOKEN_MAX * 2 + 8];
    page_token_encode((int64_t)1 << 40, scope_a, good, sizeof good);
    size_t n = strlen(good);
    assert_true(n > 4);

    /* the leading character carries the format version */
    strcpy(tok, good);
    flip(tok, 0);
    expect_token_rejected(tok, scope_a);

    /* the trailing characters carry the scope digest */
    for (size_t i = n - 8; i < n; i++) {
        strcpy(tok, good);
        flip(tok, i);
        expect_token_rejected(tok, scope_a);
    }

    /* truncated */
    for (size_t cut = 1; cut < n; cut++) {
        memcpy(tok, good, cut);
        tok[cut] = 0;
        expect_token_rejected(tok, scope_a);
    }

    /* characters outside base64url, including standard base64 and padding */
    static const char bad_chars[] = "+/=!. \n%";
    for (size_t c = 0; c < sizeof bad_chars - 1; c++) {
        strcpy(tok, good);
        tok[n / 2] = bad_chars[c];
        expect_token_rejected(tok, scope_a);
    }
    strcpy(tok, good);
    strcat(tok, "=");
    expect_token_rejected(tok, scope_a);

    /* too long: extra characters, or far more than any token */
    strcpy(tok, good);
    strcat(tok, "AAAA");
    expect_token_rejected(tok, scope_a);
    strcpy(tok, good);
    strcat(tok, good);
    expect_token_rejected(tok, scope_a);
    memset(tok, 'A', PAGE_TOKEN_MAX + 4);
    tok[PAGE_TOKEN_MAX + 4] = 0;
    expect_token_rejected(tok, scope_a);

    /* plausible-looking strings that no encoder made */
    expect_token_rejected("A", scope_a);
    expect_token_rejected("AAAA", scope_a);
    expect_token_rejected("next-page", scope_a);
    expect_token_rejected("42", scope_a);
}

/* ---- base64url ------------------------------------------------------------------------- */

static void expect_b64(const char *in, const char *want)
{
    char out[64];
    int n = sdo_b64url_encode((const unsigned char *)in, strlen(in), out, sizeof out);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
    unsigned char back[64];
    assert_int_equal(sdo_b64url_decode(want, back, sizeof back), (int)strlen(in));
    assert_memory_equal(back, in, strlen(in));
}

static void test_b64url_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10, without padding */
    expect_b64("", "");
    expect_b64("f", "Zg");
    expect_b64("fo", "Zm8");
    expect_b64("foo", "Zm9v");
    expect_b64("foob", "Zm9vYg");
    expect_b64("fooba", "Zm9vYmE");
    expect_b64("foobar", "Zm9vYmFy");

    /* the URL alphabet: '-' and '_' where base64 has '+' and '/' */
    static const unsigned char hi[] = {0xfb, 0xff, 0xbf};
    char out[16];
    assert_int_equal(sdo_b64url_encode(hi, 3, out, sizeof out), 4);
    assert_string_equal(out, "-_-_");
    assert_int_equal(sdo_b64url_encode(hi, 2, out, sizeof out), 3);
    assert_string_equal(out, "-_8");
    unsigned char back[8];
    assert_int_equal(sdo_b64url_decode("-_-_", back, sizeof back), 3);
    assert_memory_equal(back, hi, 3);
}

static void test_b64url_round_trip_lengths(void **state)
{
    (void)state;
    unsigned char in[20];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 97 + 13) ^ (i % 2 ? 0xff : 0x00);
    in[3] = 0x00;
    in[4] = 0xff;
    for (size_t len = 0; len <= sizeof in; len++) {
        char enc[64];
        size_t want = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
        int n = sdo_b64url_encode(in, len, enc, sizeof enc);
        assert_int_equal(n, (int)want);
        assert_int_equal(strlen(enc), want);
        assert_int_equal(strspn(enc, url_alphabet), want);

        unsigned char dec[32];
        memset(dec, 0xaa, sizeof dec);
        assert_int_equal(sdo_b64url_decode(enc, dec, sizeof dec), (int)len);
        if (len)
            assert_memory_equal(dec, in, len);

        /* exactly enough room, on both sides */
        char tight[64];
        assert_int_equal(sdo_b64url_encode(in, len, tight, want + 1), (int)want);
        assert_string_equal(tight, enc);
        if (len) {
            assert_int_equal(sdo_b64url_decode(enc, dec, len), (int)len);
            assert_int_equal(sdo_b64url_decode(enc, dec, len - 1), -1);
        }
        /* one byte short for the terminator */
        assert_int_equal(sdo_b64url_encode(in, len, tight, want), -1);
    }
}

static void test_b64url_rejects_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zm9v=",      /* padding */
        "Zg==",       /* padding */
        "Zm+v",       /* standard alphabet */
        "Zm/v",       /* standard alphabet */
        "Z",          /* a single character cannot hold a byte */
        "A",          /* not even with zero bits */
        "AAAAA",      /* 4n + 1 characters, all zero bits */
        "Zm9vY",      /* 4n + 1 characters */
        "Zh",         /* leftover bits set: "Zg" is the only encoding of "f" */
        "Zm9",        /* leftover bits set: "Zm8" encodes "fo" */
        "Zm 9v",      /* space */
        "Zm9v\n",     /* newline */
        "Zm\xc3\xa9", /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[32];
        if (sdo_b64url_decode(bad[i], out, sizeof out) != -1)
            fail_msg("'%s' should not decode", bad[i]);
    }
    unsigned char out[1];
    assert_int_equal(sdo_b64url_decode("", out, 0), 0);
}

/* ---- UUIDs ----------------------------------------------------------------------------- */

static void test_uuid4(void **state)
{
    (void)state;
    char a[37], b[37];
    assert_int_equal(sdo_uuid4(a), 0);
    assert_int_equal(sdo_uuid4(b), 0);
    assert_int_equal(strlen(a), 36);
    assert_true(sdo_is_uuid(a));
    assert_true(sdo_is_uuid(b));
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    /* version 4, RFC 4122 variant */
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));

    for (int i = 0; i < 64; i++) {
        assert_int_equal(sdo_uuid4(a), 0);
        assert_true(sdo_is_uuid(a));
        assert_int_equal(a[14], '4');
        assert_non_null(strchr("89ab", a[19]));
    }
}

static void test_is_uuid(void **state)
{
    (void)state;
    assert_true(sdo_is_uuid("123e4567-e89b-42d3-a456-426614174000"));
    assert_true(sdo_is_uuid("00000000-0000-0000-0000-000000000000"));
    static const char *const bad[] = {
        "",
        "123E4567-E89B-42D3-A456-426614174000",  /* upper case */
        "123e4567e89b42d3a456426614174000",      /* no hyphens */
        "123e4567-e89b-42d3-a456-42661417400",   /* short */
        "123e4567-e89b-42d3-a456-4266141740000", /* long */
        "123e4567-e89b-42d3-a456_426614174000",  /* wrong separator */
        "123e456-7e89b-42d3-a456-426614174000",  /* hyphen misplaced */
        "123e4567-e89b-42d3-a456-42661417400g",  /* not hex */
        "{123e4567-e89b-42d3-a456-426614174000}",
        " 23e4567-e89b-42d3-a456-426614174000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sdo_is_uuid(bad[i]))
            fail_msg("'%s' should not be a UUID", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_size_resolve),
        cmocka_unit_test(test_page_size_negative),
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_token_depends_on_key_and_scope),
        cmocka_unit_test(test_token_key_tamper_rejected),
        cmocka_unit_test(test_token_other_scope_rejected),
        cmocka_unit_test(test_token_empty_is_first_page),
        cmocka_unit_test(test_token_garbled),
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_round_trip_lengths),
        cmocka_unit_test(test_b64url_rejects_invalid),
        cmocka_unit_test(test_uuid4),
        cmocka_unit_test(test_is_uuid),
    };
    return cmocka_run_group_tests_name("pagination", tests, NULL, NULL);
}
