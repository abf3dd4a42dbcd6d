/* Unit tests of the strict JSON parser (util/json.h): the RFC 8259 grammar, what it refuses
 * (duplicate keys, bad UTF-8, lone surrogates, control characters, trailing data, depth and
 * size limits), exact integers and the accessors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/json.h"

static json_value *parse(const char *text)
{
    sdo_error err;
    json_value *v = json_parse(text, strlen(text), NULL, &err);
    if (!v)
        print_message("json_parse(%s): %s\n", text, err.message);
    return v;
}

/* Parses len bytes, expecting a refusal with the given reason; returns the message. */
static const char *refuse_n(const char *text, size_t len, const json_limits *lim,
                            const char *reason)
{
    static sdo_error err;
    memset(&err, 0, sizeof err);
    json_value *v = json_parse(text, len, lim, &err);
    if (v) {
        json_free(v);
        fail_msg("accepted: %.*s", (int)len, text);
    }
    assert_int_equal(err.code, SDO_INVALID_ARGUMENT);
    assert_string_equal(err.reason, reason);
    assert_true(err.message[0] != 0);
    return err.message;
}

static const char *refuse(const char *text)
{
    return refuse_n(text, strlen(text), NULL, "MALFORMED_JSON");
}

/* ---- grammar ---------------------------------------------------------------------------- */

static void test_scalars(void **state)
{
    (void)state;
    json_value *v;
    bool b;
    int64_t i;
    double d;

    v = parse("null");
    assert_int_equal(json_typeof(v), JSON_NULL);
    assert_true(json_is_null(v));
    assert_false(json_bool(v, &b));
    json_free(v);

    v = parse(" true ");
    assert_int_equal(json_typeof(v), JSON_TRUE);
    assert_true(json_bool(v, &b));
    assert_true(b);
    json_free(v);

    v = parse("\t\r\nfalse\n");
    assert_true(json_bool(v, &b));
    assert_false(b);
    assert_false(json_is_null(v));
    json_free(v);

    v = parse("-12");
    assert_true(json_int64(v, &i));
    assert_int_equal(i, -12);
    assert_true(json_double(v, &d));
    assert_true(d == -12.0);
    assert_null(json_string(v));
    json_free(v);

    v = parse("\"hi\"");
    assert_string_equal(json_string(v), "hi");
    assert_false(json_int64(v, &i));
    assert_false(json_double(v, &d));
    json_free(v);
}

static void test_object_and_array_access(void **state)
{
    (void)state;
    json_value *v =
        parse("{\"b\": [1, \"two\", {\"c\": null}], \"a\": {\"x\": true}, \"e\": {}, \"f\": []}");
    assert_non_null(v);
    assert_int_equal(json_typeof(v), JSON_OBJECT);
    assert_int_equal(json_object_len(v), 4);

    const char *key;
    assert_non_null(json_object_at(v, 0, &key));
    assert_string_equal(key, "b"); /* document order */
    assert_non_null(json_object_at(v, 3, &key));
    assert_string_equal(key, "f");
    assert_null(json_object_at(v, 4, &key));

    const json_value *b = json_get(v, "b");
    assert_int_equal(json_typeof(b), JSON_ARRAY);
    assert_int_equal(json_array_len(b), 3);
    int64_t i;
    assert_true(json_int64(json_array_at(b, 0), &i));
    assert_int_equal(i, 1);
    assert_string_equal(json_string(json_array_at(b, 1)), "two");
    assert_true(json_is_null(json_get(json_array_at(b, 2), "c")));
    assert_null(json_array_at(b, 3));

    bool t = false;
    assert_true(json_bool(json_get(json_get(v, "a"), "x"), &t));
    assert_true(t);
    assert_int_equal(json_object_len(json_get(v, "e")), 0);
    assert_int_equal(json_array_len(json_get(v, "f")), 0);

    /* missing members and wrong types give NULL/JSON_NONE, so chains need no checks */
    assert_null(json_get(v, "zz"));
    assert_int_equal(json_typeof(json_get(v, "zz")), JSON_NONE);
    assert_null(json_get(json_get(v, "zz"), "y"));
    assert_null(json_get(b, "0"));
    assert_int_equal(json_array_len(v), 0);
    assert_int_equal(json_object_len(b), 0);
    assert_null(json_array_at(v, 0));
    assert_null(json_string(NULL));
    json_free(v);
    json_free(NULL);
}

static void test_many_keys_lookup(void **state)
{
    (void)state;
    enum { N = 500 };
    char *text = malloc(N * 24 + 16);
    size_t n = 0;
    text[n++] = '{';
    for (int k = 0; k < N; k++)
        n += (size_t)sprintf(text + n, "%s\"k%d\":%d", k ? "," : "", (k * 7919) % N, k);
    text[n++] = '}';
    text[n] = 0;
    json_value *v = parse(text);
    assert_non_null(v);
    for (int k = 0; k < N; k++) {
        char key[16];
        int64_t got;
        snprintf(key, sizeof key, "k%d", (k * 7919) % N);
        assert_true(json_int64(json_get(v, key), &got));
        assert_int_equal(got, k);
    }
    assert_null(json_get(v, "k"));
    json_free(v);

    /* the same keys with one repeated at the end */
    n -= 1;
    n += (size_t)sprintf(text + n, ",\"k%d\":0}", 123);
    const char *msg = refuse(text);
    assert_non_null(strstr(msg, "duplicate key \"k123\""));
    free(text);
}

static void test_structure_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          " ",           "{",      "}",       "[",           "]",
        "[1,]",      "[,1]",        "[1 2]",  "{,}",     "{\"a\"}",     "{\"a\":}",
        "{\"a\" 1}", "{\"a\":1,}",  "{a:1}",  "{'a':1}", "['a']",       "{1:1}",
        "tru",       "True",        "nul",    "NaN",     "Infinity",    "undefined",
        "{}{}",      "{} x",        "[] ]",   "1 2",     "\"a\" \"b\"", "[1]\f",
        "\v[1]",     "[1]\xc2\xa0", "/*c*/1", "1//c",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse(bad[i]);

    /* the message gives the byte offset */
    assert_non_null(strstr(refuse("[1,x]"), "at byte 3"));
    assert_non_null(strstr(refuse("{\"a\":1} x"), "at byte 8"));
}

static void test_exact_length_and_nul(void **state)
{
    (void)state;
    sdo_error err;
    /* only len bytes are read: the text need not be NUL-terminated */
    const char buf[] = "[1,2]garbage";
    json_value *v = json_parse(buf, 5, NULL, &err);
    assert_non_null(v);
    assert_int_equal(json_array_len(v), 2);
    json_free(v);
    /* a NUL byte inside the length is not whitespace */
    refuse_n("[1]\0", 4, NULL, "MALFORMED_JSON");
    refuse_n("[\0]", 3, NULL, "MALFORMED_JSON");
    /* byte order mark */
    refuse("\xef\xbb\xbf{}");
}

/* ---- numbers ---------------------------------------------------------------------------- */

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool is_int;
        int64_t i;
        double d;
    } cases[] = {
        {"0", true, 0, 0},
        {"-0", true, 0, -0.0},
        {"7", true, 7, 7},
        {"1.0", true, 1, 1},
        {"4.2e1", true, 42, 42},
        {"4200E-2", true, 42, 42},
        {"1e3", true, 1000, 1000},
        {"1E+3", true, 1000, 1000},
        {"0.5", false, 0, 0.5},
        {"-1.25", false, 0, -1.25},
        {"1e-1", false, 0, 0.1},
        {"1700000000", true, 1700000000, 1700000000.0},
        {"9007199254740993", true, 9007199254740993LL, 9007199254740992.0},
        {"9223372036854775807", true, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", true, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", false, 0, 9223372036854775808.0},
        {"-9223372036854775809", false, 0, -9223372036854775809.0},
        {"1e19", false, 0, 1e19},
        {"123456789012345678901234567890", false, 0, 123456789012345678901234567890.0},
        {"1e-400", false, 0, 0},
        {"0.00000000000000000000000000000000000000000000000000000000000000000000000000000012e80",
         true, 12, 12},
        {"100000000000000000000000000000000000000000000000000000000000000000000000e-69", true, 100,
         100},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        json_value *v = parse(cases[k].text);
        assert_non_null(v);
        assert_int_equal(json_typeof(v), JSON_NUMBER);
        int64_t i = 0;
        double d = 1;
        if (json_int64(v, &i) != cases[k].is_int)
            fail_msg("%s: integral should be %d", cases[k].text, cases[k].is_int);
        if (cases[k].is_int && i != cases[k].i)
            fail_msg("%s: got %lld", cases[k].text, (long long)i);
        assert_true(json_double(v, &d));
        if (d != cases[k].d)
            fail_msg("%s: double %.17g", cases[k].text, d);
        json_free(v);
    }

    static const char *const bad[] = {"01",
                                      "-01",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "-",
                                      "1e",
                                      "1e+",
                                      "1E-",
                                      "0x10",
                                      "1.e3",
                                      "- 1",
                                      "1ee3",
                                      "--1",
                                      "1e400",
                                      "-1e400",
                                      "[1e99999999999999999999]"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        refuse(bad[k]);
}

/* ---- strings ---------------------------------------------------------------------------- */

static void check_string(const char *json, const char *want, size_t wantlen)
{
    json_value *v = parse(json);
    assert_non_null(v);
    size_t len = 0;
    const char *s = json_string_len(v, &len);
    assert_non_null(s);
    assert_int_equal(len, wantlen);
    assert_memory_equal(s, want, wantlen);
    assert_int_equal(s[len], 0);
    json_free(v);
}

static void test_string_escapes(void **state)
{
    (void)state;
    check_string("\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7);
    check_string("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5);
    check_string("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
    check_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4); /* U+1F600 */
    check_string("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4); /* U+10FFFF */
    check_string("\"\\uffff\"", "\xef\xbf\xbf", 3);
    check_string("\"\"", "", 0);
    check_string("\"\x7f\"", "\x7f", 1); /* DEL is not a control character in JSON */

    static const char *const bad[] = {
        "\"\\x41\"",
        "\"\\u12\"",
        "\"\\uZZZZ\"",
        "\"\\u00g0\"",
        "\"\\ud800\"",
        "\"\\ud800x\"",
        "\"\\ud800\\u0041\"",
        "\"\\udc00\"",
        "\"\\ude00\\ud83d\"",
        "\"\\ud800\\ud800\"",
        "\"\\U0041\"",
        "\"\\'\"",
        "\"abc",
        "\"abc\\\"",
        "\"\\",
        "'abc'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse(bad[i]);
}

static void test_string_control_characters(void **state)
{
    (void)state;
    char text[8];
    for (int c = 1; c < 0x20; c++) {
        snprintf(text, sizeof text, "\"a%cb\"", c);
        refuse(text);
    }
    refuse("\"a\tb\"");
    refuse("\"line\nbreak\"");
}

static void test_string_utf8(void **state)
{
    (void)state;
    check_string("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
    check_string("\"\xed\x9f\xbf\xee\x80\x80\"", "\xed\x9f\xbf\xee\x80\x80", 6);

    static const char *const bad[] = {
        "\"\x80\"",             /* lone continuation byte */
        "\"\xc0\x80\"",         /* overlong NUL */
        "\"\xc1\xbf\"",         /* overlong */
        "\"\xe0\x80\x80\"",     /* overlong 3-byte */
        "\"\xe0\x9f\xbf\"",     /* overlong 3-byte */
        "\"\xf0\x80\x80\x80\"", /* overlong 4-byte */
        "\"\xed\xa0\x80\"",     /* UTF-16 surrogate encoded in UTF-8 */
        "\"\xed\xbf\xbf\"",     /* UTF-16 surrogate encoded in UTF-8 */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"", /* never valid */
        "\"\xff\"",             /* never valid */
        "\"\xe2\x82\"",         /* truncated */
        "\"\xe2\x82x\"",        /* bad continuation */
        "\"\xf0\x9f\x98\"",     /* truncated 4-byte */
        "{\"k\xc3\":1}",        /* in a key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse(bad[i]);
}

static void test_string_with_nul(void **state)
{
    (void)state;
    json_value *v = parse("{\"a\":\"x\\u0000y\",\"a\\u0000\":1}");
    assert_non_null(v);
    const json_value *a = json_get(v, "a");
    /* C would cut "x\0y" short to "x": json_string() refuses it */
    assert_null(json_string(a));
    size_t len;
    assert_memory_equal(json_string_len(a, &len), "x\0y", 3);
    assert_int_equal(len, 3);
    /* "a" and "a\0" are different keys, both present; the second cannot be looked up */
    assert_int_equal(json_object_len(v), 2);
    json_free(v);
}

/* ---- duplicates, depth, size ------------------------------------------------------------ */

static void test_duplicate_keys(void **state)
{
    (void)state;
    const char *msg = refuse("{\"sub\":\"alice\",\"sub\":\"admin\"}");
    assert_non_null(strstr(msg, "duplicate key \"sub\""));
    assert_non_null(strstr(msg, "at byte 15"));
    /* equal after unescaping */
    refuse("{\"a\":1,\"\\u0061\":2}");
    refuse("{\"\\u00e9\":1,\"\xc3\xa9\":2}");
    refuse("{\"x\":{\"a\":1,\"b\":2,\"a\":3}}");
    refuse("[{\"a\":1,\"a\":1}]");

    /* the same key in different objects is fine */
    json_value *v = parse("{\"a\":{\"a\":1},\"b\":[{\"a\":2},{\"a\":3}]}");
    assert_non_null(v);
    json_free(v);
}

static char *nested(int depth, char open, char close)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = open;
        s[2 * depth - 1 - i] = close;
    }
    s[2 * depth] = 0;
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *ok = nested(JSON_DEFAULT_MAX_DEPTH, '[', ']');
    json_value *v = parse(ok);
    assert_non_null(v);
    json_free(v);
    free(ok);

    char *deep = nested(JSON_DEFAULT_MAX_DEPTH + 1, '[', ']');
    refuse_n(deep, strlen(deep), NULL, "JSON_TOO_DEEP");
    free(deep);

    /* far too deep: refused without exhausting the stack */
    char *very = nested(100000, '[', ']');
    refuse_n(very, strlen(very), NULL, "JSON_TOO_DEEP");
    free(very);

    json_limits lim = {.max_depth = 2};
    refuse_n("{\"a\":{\"b\":[]}}", 14, &lim, "JSON_TOO_DEEP");
    sdo_error err;
    v = json_parse("{\"a\":{\"b\":1}}", 13, &lim, &err);
    assert_non_null(v);
    json_free(v);
}

static void test_size_limit(void **state)
{
    (void)state;
    json_limits lim = {.max_size = 10};
    refuse_n("[1,2,3,4,5]", 11, &lim, "JSON_TOO_LARGE");
    sdo_error err;
    json_value *v = json_parse("[1,2,3,4]", 9, &lim, &err);
    assert_non_null(v);
    json_free(v);

    /* the default cap */
    size_t big = JSON_DEFAULT_MAX_SIZE + 1;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '1';
    refuse_n(text, big, NULL, "JSON_TOO_LARGE");
    v = json_parse(text, big - 1, NULL, &err);
    assert_non_null(v);
    json_free(v);
    free(text);
}

static void test_large_document(void **state)
{
    (void)state;
    /* enough nodes and text to need several arena chunks */
    enum { N = 20000 };
    char *text = malloc(N * 40 + 16);
    size_t n = 0;
    text[n++] = '[';
    for (int k = 0; k < N; k++)
        n += (size_t)sprintf(text + n, "%s{\"id\":%d,\"name\":\"item-%d\"}", k ? "," : "", k, k);
    text[n++] = ']';
    text[n] = 0;
    json_value *v = parse(text);
    assert_non_null(v);
    assert_int_equal(json_array_len(v), N);
    int64_t id;
    assert_true(json_int64(json_get(json_array_at(v, N - 1), "id"), &id));
    assert_int_equal(id, N - 1);
    assert_string_equal(json_string(json_get(json_array_at(v, 12345), "name")), "item-12345");
    json_free(v);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_object_and_array_access),
        cmocka_unit_test(test_many_keys_lookup),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_exact_length_and_nul),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_string_control_characters),
        cmocka_unit_test(test_string_utf8),
        cmocka_unit_test(test_string_with_nul),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_large_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
