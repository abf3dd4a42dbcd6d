/* Unit tests of AWS Signature Version 4 (storage/sigv4.h). The first vectors are AWS's own:
 * the S3 "GET Object" example of the header-based authentication page (GET /test.txt with
 * Range bytes=0-9 on examplebucket.s3.amazonaws.com at 20130524T000000Z) and the
 * "derive a signing key" example (20120215, us-east-1, iam). The multipart vectors were
 * computed with botocore's S3SigV4Auth, an independent implementation, for the requests
 * this server sends (UploadPart with an uploadId that needs encoding, and the bare
 * "?uploads" of CreateMultipartUpload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/sigv4.h"

#define AKID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

static const sigv4_pair get_headers[] = {
    /* Mixed case and order on purpose: the canonical form lower-cases and sorts. */
    {"Range", "bytes=0-9"},
    {"x-amz-date", "20130524T000000Z"},
    {"Host", "examplebucket.s3.amazonaws.com"},
    {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
};

static sigv4_request get_example(void)
{
    return (sigv4_request){
        .method = "GET",
        .path = "/test.txt",
        .headers = get_headers,
        .nheaders = 4,
        .payload_hash = SIGV4_EMPTY_SHA256,
        .amz_date = "20130524T000000Z",
        .region = "us-east-1",
        .service = "s3",
        .access_key = AKID,
        .secret_key = SECRET,
    };
}

static void test_get_object_canonical_request(void **state)
{
    (void)state;
    sigv4_request r = get_example();
    char *signed_headers = NULL;
    char *creq = sigv4_canonical_request(&r, &signed_headers);
    assert_non_null(creq);
    assert_string_equal(creq, "GET\n"
                              "/test.txt\n"
                              "\n"
                              "host:examplebucket.s3.amazonaws.com\n"
                              "range:bytes=0-9\n"
                              "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
                              "x-amz-date:20130524T000000Z\n"
                              "\n"
                              "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    assert_string_equal(signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
    char *sts = sigv4_string_to_sign(r.amz_date, r.region, r.service, creq);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n"
                             "20130524T000000Z\n"
                             "20130524/us-east-1/s3/aws4_request\n"
                             "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    free(sts);
    free(creq);
    free(signed_headers);
}

static void test_get_object_signature(void **state)
{
    (void)state;
    sigv4_request r = get_example();
    char *auth = sigv4_authorization(&r);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 "
                              "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                              "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                              "Signature="
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);

    /* One byte of the secret changes the signature. */
    r.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ";
    auth = sigv4_authorization(&r);
    assert_null(strstr(auth, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
    free(auth);
}

static void test_signing_key(void **state)
{
    (void)state;
    unsigned char key[32];
    char hex[65];
    /* AWS "Examples of how to derive a signing key for Signature Version 4". */
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
                      key);
    to_hex(key, 32, hex);
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    /* The key behind the GET Object example. */
    sigv4_signing_key(SECRET, "20130524", "us-east-1", "s3", key);
    to_hex(key, 32, hex);
    assert_string_equal(hex, "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378");
}

static void test_upload_part_signature(void **state)
{
    (void)state;
    const sigv4_pair query[] = {{"uploadId", "2~abc/def+g="}, {"partNumber", "1"}};
    const sigv4_pair headers[] = {
        {"host", "127.0.0.1:4568"},
        {"x-amz-content-sha256",
         "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
        {"x-amz-date", "20130524T000000Z"},
    };
    sigv4_request r = {
        .method = "PUT",
        .path = "/backups/tenants/acme/db.dump",
        .query = query,
        .nquery = 2,
        .headers = headers,
        .nheaders = 3,
        .payload_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        .amz_date = "20130524T000000Z",
        .region = "us-east-1",
        .service = "s3",
        .access_key = AKID,
        .secret_key = SECRET,
    };
    char *q = sigv4_canonical_query(query, 2);
    assert_string_equal(q, "partNumber=1&uploadId=2~abc%2Fdef%2Bg%3D");
    free(q);
    char *auth = sigv4_authorization(&r);
    assert_non_null(
        strstr(auth, "Signature=1fb40c87f69bb091a890ed1c237a8178d96c7ffb9cf6ef4dd5684f848012f36e"));
    free(auth);
}

static void test_create_multipart_signature(void **state)
{
    (void)state;
    const sigv4_pair query[] = {{"uploads", ""}};
    const sigv4_pair headers[] = {
        {"host", "127.0.0.1:4568"},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
        {"x-amz-date", "20130524T000000Z"},
    };
    sigv4_request r = {
        .method = "POST",
        .path = "/backups/tenants/acme/db.dump",
        .query = query,
        .nquery = 1,
        .headers = headers,
        .nheaders = 3,
        .payload_hash = SIGV4_EMPTY_SHA256,
        .amz_date = "20130524T000000Z",
        .region = "us-east-1",
        .service = "s3",
        .access_key = AKID,
        .secret_key = SECRET,
    };
    char *creq = sigv4_canonical_request(&r, NULL);
    assert_non_null(strstr(creq, "\nuploads=\n"));
    free(creq);
    char *auth = sigv4_authorization(&r);
    assert_non_null(
        strstr(auth, "Signature=740560a13cc44536dbe14ce900576aefc33ffdb2cdacd2f525e985e0329bcb49"));
    free(auth);
}

static void test_uri_encode(void **state)
{
    (void)state;
    char *e = sigv4_uri_encode("a b/c~d_e.f-g+h=i*j%", 1);
    assert_string_equal(e, "a%20b/c~d_e.f-g%2Bh%3Di%2Aj%25");
    free(e);
    e = sigv4_uri_encode("a/b", 0);
    assert_string_equal(e, "a%2Fb");
    free(e);
    e = sigv4_uri_encode("\xc3\xa9", 1);
    assert_string_equal(e, "%C3%A9");
    free(e);
}

static void test_canonical_query_sorting(void **state)
{
    (void)state;
    const sigv4_pair q[] = {{"prefix", "tenants/acme/"},
                            {"list-type", "2"},
                            {"continuation-token", "1/2+3=="},
                            {"max-keys", "5"}};
    char *s = sigv4_canonical_query(q, 4);
    assert_string_equal(s, "continuation-token=1%2F2%2B3%3D%3D&list-type=2&max-keys=5&"
                           "prefix=tenants%2Facme%2F");
    free(s);
    s = sigv4_canonical_query(NULL, 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_header_values_trimmed(void **state)
{
    (void)state;
    const sigv4_pair headers[] = {{"Host", "  example.com "}, {"X-Amz-Meta-A", "a   b  c"}};
    sigv4_request r = {.method = "GET",
                       .path = "",
                       .headers = headers,
                       .nheaders = 2,
                       .payload_hash = "UNSIGNED-PAYLOAD"};
    char *sh = NULL;
    char *creq = sigv4_canonical_request(&r, &sh);
    assert_string_equal(creq, "GET\n/\n\nhost:example.com\nx-amz-meta-a:a b c\n\n"
                              "host;x-amz-meta-a\nUNSIGNED-PAYLOAD");
    assert_string_equal(sh, "host;x-amz-meta-a");
    free(creq);
    free(sh);
}

static void test_amz_date(void **state)
{
    (void)state;
    char d[17];
    sigv4_amz_date(1369353600LL, d); /* 2013-05-24 00:00:00 UTC */
    assert_string_equal(d, "20130524T000000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_object_canonical_request),
        cmocka_unit_test(test_get_object_signature),
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_upload_part_signature),
        cmocka_unit_test(test_create_multipart_signature),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_canonical_query_sorting),
        cmocka_unit_test(test_header_values_trimmed),
        cmocka_unit_test(test_amz_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
