/* AWS Signature Version 4 for S3 requests signed in the Authorization header: the
 * canonical request, the string to sign, the signing key and the header value. Pure
 * functions over strings, so the published AWS examples can be checked byte for byte. */
#ifndef SDO_SIGV4_H
#define SDO_SIGV4_H

#include <stddef.h>

/* Hex SHA-256 of an empty payload, the value of x-amz-content-sha256 for GET, HEAD, DELETE. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct sigv4_pair {
    const char *name;
    const char *value;
} sigv4_pair;

typedef struct sigv4_request {
    const char *method;      /* "GET", "PUT", ... */
    const char *path;        /* the URI path as sent, already percent-encoded ("/a/b%20c") */
    const sigv4_pair *query; /* query parameters, not encoded; any order; value "" allowed */
    size_t nquery;
    const sigv4_pair *headers; /* headers to sign, any case and order; must include host and
                                * x-amz-date; values are trimmed and inner spaces collapsed */
    size_t nheaders;
    const char *payload_hash; /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "20130524T000000Z", the x-amz-date value */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
    const char *access_key;
    const char *secret_key;
} sigv4_request;

/* Percent-encodes s per SigV4: unreserved characters (A-Z a-z 0-9 - . _ ~) stay, every
 * other byte becomes %XY (upper-case hex); '/' stays when keep_slash. Returns a string the
 * caller frees with free(). */
char *sigv4_uri_encode(const char *s, int keep_slash);

/* The canonical query string: names and values encoded, sorted by name then value, joined
 * with '&', "name=" for empty values. Caller frees. */
char *sigv4_canonical_query(const sigv4_pair *query, size_t n);

/* The canonical request (see the AWS SigV4 documentation), and the signed-header list
 * ("host;range;x-amz-date") into *signed_headers when not NULL. Caller frees both.
 * NULL if a header name is empty or the request has more than 64 headers. */
char *sigv4_canonical_request(const sigv4_request *r, char **signed_headers);

/* The string to sign for a canonical request. Caller frees. */
char *sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                           const char *canonical_request);

/* HMAC chain "AWS4"+secret -> date (YYYYMMDD) -> region -> service -> "aws4_request". */
void sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                       const char *service, unsigned char out[32]);

/* The value of the Authorization header for r:
 * "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b,Signature=hex". Caller frees; NULL as sigv4_canonical_request. */
char *sigv4_authorization(const sigv4_request *r);

/* Formats t (seconds since the epoch, UTC) as "YYYYMMDDTHHMMSSZ" into out[17]. */
void sigv4_amz_date(long long t, char out[17]);

#endif
