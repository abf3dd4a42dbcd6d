/* The Supabase identity provider: SignUp, SignIn, RefreshSession and SignOut are forwarded to
 * the project's Supabase Auth REST API (/auth/v1, with the anon key in the apikey header), and
 * access tokens are checked locally, against the project's JWK set or its legacy HS256 secret.
 *
 * The JWK set is fetched at start (a failure is logged and retried in the background), kept,
 * and fetched again when a token names a key the set lacks (a rotation), at most once per
 * identity.supabase_jwks_min_refresh_seconds: one mutex serialises the fetches, so many
 * verifications meeting the same unknown key cause one fetch, not one each. */
#include "identity/provider.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/jwt.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/log.h"

#define SB_CONNECT_TIMEOUT_MS 5000L
#define SB_TIMEOUT_MS 15000L
#define SB_JWKS_TIMEOUT_MS 5000L
#define SB_MAX_RESPONSE (1u << 20) /* Supabase Auth's own request limit; answers are smaller */
#define SB_MAX_REQUEST (64u << 10)
#define SB_MAX_EMAIL 254
#define SB_MAX_PASSWORD 1024
#define SB_MAX_DISPLAY_NAME 256
#define SB_MAX_REFRESH_TOKEN 1024
#define SB_RETRY_MAX_SECONDS 60
/* Asks for the current error shape, {"code": "<error_code>", "message": ...}. */
#define SB_API_VERSION "X-Supabase-Api-Version: 2024-01-01"

typedef struct sb_idp {
    idp base;
    char *url;      /* project URL, no trailing slash */
    char *anon_key; /* "" = not configured */
    jwt_verifier *ver;
    int64_t min_refresh_us;

    pthread_mutex_t mu;         /* serialises JWK set fetches; guards the fields below */
    pthread_cond_t cv;          /* wakes the retry thread for shutdown */
    atomic_uint_fast64_t loads; /* JWK sets put in place so far */
    bool refetched;             /* an on-demand fetch happened ... */
    int64_t last_refetch_us;    /* ... at this monotonic time */
    bool stopping;
    bool retrying; /* the retry thread runs */
    pthread_t retry_thread;
} sb_idp;

typedef enum { SB_SIGN_UP, SB_SIGN_IN, SB_REFRESH, SB_SIGN_OUT } sb_op;

static const char *const sb_op_name[] = {"sign-up", "sign-in", "refresh", "sign-out"};

/* One HTTP exchange with Supabase Auth. */
typedef struct sb_response {
    long status; /* 0 when no answer came */
    sdo_buf body;
    char error_code[64]; /* x-sb-error-code */
    char curl_error[CURL_ERROR_SIZE];
} sb_response;

/* ---- HTTP ------------------------------------------------------------------------------ */

static pthread_once_t sb_curl_once = PTHREAD_ONCE_INIT;

static void sb_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t sb_on_body(char *ptr, size_t size, size_t n, void *arg)
{
    sdo_buf *b = arg;
    if (n && size > SIZE_MAX / n)
        return 0;
    if (sdo_buf_append(b, ptr, size * n) < 0)
        return 0; /* too large: curl stops with CURLE_WRITE_ERROR */
    return size * n;
}

static size_t sb_on_header(char *ptr, size_t size, size_t n, void *arg)
{
    sb_response *r = arg;
    size_t len = size * n;
    static const char name[] = "x-sb-error-code:";
    if (len > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
        const char *v = ptr + sizeof name - 1;
        const char *end = ptr + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        size_t vl = (size_t)(end - v);
        if (vl >= sizeof r->error_code)
            vl = sizeof r->error_code - 1;
        memcpy(r->error_code, v, vl);
        r->error_code[vl] = '\0';
    }
    return len;
}

static void sb_response_free(sb_response *r)
{
    sdo_buf_free(&r->body);
}

/* Sends method (GET or POST) to the project URL + path with the apikey header, body (JSON,
 * POST only) and, when bearer is set, "Authorization: Bearer <bearer>". Returns 0 when an
 * HTTP answer came (whatever its status), -1 with r->curl_error filled in when none did. The
 * caller frees r with sb_response_free() either way. */
static int sb_http(sb_idp *p, const char *method, const char *path, const char *body,
                   const char *bearer, long timeout_ms, sb_response *r)
{
    memset(r, 0, sizeof *r);
    r->body.limit = SB_MAX_RESPONSE;
    int rc = -1;
    struct curl_slist *headers = NULL;
    sdo_buf url = {0}, key = {0}, auth = {0};
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(r->curl_error, sizeof r->curl_error, "cannot create an HTTP client handle");
        return -1;
    }
    sdo_buf_printf(&url, "%s%s", p->url, path);
    sdo_buf_printf(&key, "apikey: %s", p->anon_key);
    headers = curl_slist_append(headers, key.data);
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, SB_API_VERSION);
    if (bearer) {
        sdo_buf_printf(&auth, "Authorization: Bearer %s", bearer);
        headers = curl_slist_append(headers, auth.data);
    }
    if (strcmp(method, "POST") == 0) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    }
    if (!headers || url.overflow || key.overflow || auth.overflow) {
        snprintf(r->curl_error, sizeof r->curl_error, "cannot build the request");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, SB_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "saasodoo-server/" SAASODOO_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sb_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sb_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_error);
    int64_t t0 = sdo_mono_us();
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (r->body.overflow)
            snprintf(r->curl_error, sizeof r->curl_error, "the answer is larger than %u bytes",
                     SB_MAX_RESPONSE);
        else if (!r->curl_error[0])
            snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(cc));
        log_warn("msg=\"Supabase Auth cannot be reached\" method=%s path=\"%s\" error=\"%s\"",
                 method, path, r->curl_error);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    log_debug("msg=\"Supabase Auth answered\" method=%s path=\"%s\" status=%ld "
              "error_code=\"%s\" ms=%lld",
              method, path, r->status, r->error_code, (long long)((sdo_mono_us() - t0) / 1000));
    rc = 0;
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    sdo_buf_free(&url);
    if (key.data)
        memset(key.data, 0, key.len);
    sdo_buf_free(&key);
    if (auth.data)
        memset(auth.data, 0, auth.len);
    sdo_buf_free(&auth);
    return rc;
}

/* Appends s as a JSON string. */
static void sb_json_str(sdo_buf *b, const char *s)
{
    sdo_buf_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':
            sdo_buf_puts(b, "\\\"");
            break;
        case '\\':
            sdo_buf_puts(b, "\\\\");
            break;
        default:
            if (*c < 0x20)
                sdo_buf_printf(b, "\\u%04x", *c);
            else
                sdo_buf_append(b, c, 1);
        }
    }
    sdo_buf_puts(b, "\"");
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Supabase Auth's error codes (apierrors/errorcodes.go) and the status each becomes. */
static const struct {
    const char *code;
    sdo_status status;
} sb_codes[] = {
    {"user_already_exists", SDO_ALREADY_EXISTS},
    {"email_exists", SDO_ALREADY_EXISTS},
    {"phone_exists", SDO_ALREADY_EXISTS},
    {"weak_password", SDO_INVALID_ARGUMENT},
    {"validation_failed", SDO_INVALID_ARGUMENT},
    {"email_address_invalid", SDO_INVALID_ARGUMENT},
    {"email_address_not_authorized", SDO_INVALID_ARGUMENT},
    {"bad_json", SDO_INVALID_ARGUMENT},
    {"invalid_credentials", SDO_UNAUTHENTICATED},
    {"invalid_grant", SDO_UNAUTHENTICATED},
    {"refresh_token_not_found", SDO_UNAUTHENTICATED},
    {"refresh_token_already_used", SDO_UNAUTHENTICATED},
    {"session_not_found", SDO_UNAUTHENTICATED},
    {"session_expired", SDO_UNAUTHENTICATED},
    {"bad_jwt", SDO_UNAUTHENTICATED},
    {"no_authorization", SDO_UNAUTHENTICATED},
    {"user_not_found", SDO_UNAUTHENTICATED},
    {"email_not_confirmed", SDO_FAILED_PRECONDITION},
    {"phone_not_confirmed", SDO_FAILED_PRECONDITION},
    {"signup_disabled", SDO_FAILED_PRECONDITION},
    {"email_provider_disabled", SDO_FAILED_PRECONDITION},
    {"anonymous_provider_disabled", SDO_FAILED_PRECONDITION},
    {"user_banned", SDO_PERMISSION_DENIED},
    {"over_request_rate_limit", SDO_RESOURCE_EXHAUSTED},
    {"over_email_send_rate_limit", SDO_RESOURCE_EXHAUSTED},
    {"over_sms_send_rate_limit", SDO_RESOURCE_EXHAUSTED},
    {"conflict", SDO_ABORTED},
};

/* The error code and message of an error answer, whichever of Supabase Auth's shapes it
 * has: {"code": "<code>", "message"} (API version 2024-01-01), {"code": <status>,
 * "error_code", "msg"} (legacy), {"error", "error_description"} (OAuth), or the gateway's
 * {"message"}. */
static void sb_error_of(const sb_response *r, char *code, size_t codesz, char *msg, size_t msgsz)
{
    sdo_strlcpy(code, r->error_code, codesz);
    msg[0] = '\0';
    json_value *doc = r->body.data ? json_parse(r->body.data, r->body.len, NULL, NULL) : NULL;
    const char *c = json_string(json_get(doc, "error_code"));
    if (!c)
        c = json_string(json_get(doc, "code"));
    if (!c)
        c = json_string(json_get(doc, "error"));
    if (c && c[0])
        sdo_strlcpy(code, c, codesz);
    const char *m = json_string(json_get(doc, "message"));
    if (!m)
        m = json_string(json_get(doc, "msg"));
    if (!m)
        m = json_string(json_get(doc, "error_description"));
    if (m) {
        /* the message goes into ours: keep it on one line */
        size_t i = 0;
        for (; m[i] && i + 1 < msgsz; i++)
            msg[i] = (m[i] == '\n' || m[i] == '\r' || m[i] == '"') ? ' ' : m[i];
        msg[i] = '\0';
    }
    json_free(doc);
}

static void sb_reason(sdo_error *err, const char *code)
{
    if (!err || !code[0])
        return;
    char r[sizeof err->reason];
    size_t i = 0;
    for (; code[i] && i + 1 < sizeof r; i++)
        r[i] = (code[i] >= 'a' && code[i] <= 'z') ? (char)(code[i] - 'a' + 'A') : code[i];
    r[i] = '\0';
    sdo_error_reason(err, r);
}

/* Turns an answer other than success into a status with a message a person can act on. */
static int sb_fail_answer(sb_idp *p, sb_op op, const char *path, const sb_response *r,
                          sdo_error *err)
{
    char code[64], msg[256];
    sb_error_of(r, code, sizeof code, msg, sizeof msg);
    sdo_status st = SDO_UNKNOWN;
    for (size_t i = 0; i < sizeof sb_codes / sizeof sb_codes[0]; i++)
        if (strcmp(code, sb_codes[i].code) == 0)
            st = sb_codes[i].status;
    int rc;
    if (r->status == 429 || st == SDO_RESOURCE_EXHAUSTED) {
        rc = sdo_fail(err, SDO_RESOURCE_EXHAUSTED,
                      "Supabase Auth is rate limiting %s requests (%s); try again later",
                      sb_op_name[op], msg[0] ? msg : "429 Too Many Requests");
    } else if (r->status >= 500) {
        rc = sdo_fail(err, SDO_UNAVAILABLE, "Supabase Auth failed (HTTP %ld%s%s); try again later",
                      r->status, msg[0] ? ": " : "", msg);
    } else if (op == SB_SIGN_IN &&
               (st == SDO_UNAUTHENTICATED || (st == SDO_UNKNOWN && r->status == 400))) {
        rc = sdo_fail(err, SDO_UNAUTHENTICATED, "wrong email or password");
    } else if (op == SB_REFRESH &&
               (st == SDO_UNAUTHENTICATED || strcmp(code, "validation_failed") == 0)) {
        rc =
            sdo_fail(err, SDO_UNAUTHENTICATED, "the refresh token is not valid (%s); sign in again",
                     msg[0] ? msg : "rejected by Supabase Auth");
    } else if (st == SDO_ALREADY_EXISTS) {
        rc = sdo_fail(err, SDO_ALREADY_EXISTS,
                      "an account with this email address already exists; sign in instead");
    } else if (st == SDO_INVALID_ARGUMENT ||
               (st == SDO_UNKNOWN && (r->status == 400 || r->status == 422))) {
        const char *field = strcmp(code, "weak_password") == 0 ? "password"
                            : strstr(msg, "email")             ? "email"
                            : strstr(msg, "assword")           ? "password"
                                                               : "";
        rc = sdo_fail_field(err, field, "%s%s", msg[0] ? msg : "Supabase Auth refused the request",
                            strcmp(code, "weak_password") == 0 ? " Choose a longer password." : "");
    } else if (st != SDO_UNKNOWN) {
        rc = sdo_fail(err, st, "%s", msg[0] ? msg : code);
    } else if (r->status == 401 || r->status == 403) {
        /* no Supabase error code: the gateway refused the project key */
        log_error("msg=\"Supabase Auth refused the API key; check identity.supabase_anon_key\" "
                  "path=\"%s\" status=%ld answer=\"%s\"",
                  path, r->status, msg);
        rc = sdo_fail(err, SDO_INTERNAL,
                      "the server's Supabase settings are wrong (Supabase Auth refused its API "
                      "key); the operator must fix identity.supabase_anon_key");
    } else {
        log_error("msg=\"unexpected answer from Supabase Auth\" path=\"%s\" status=%ld "
                  "error_code=\"%s\" answer=\"%s\" url=\"%s\"",
                  path, r->status, code, msg, p->url);
        rc = sdo_fail(err, SDO_INTERNAL,
                      "Supabase Auth answered HTTP %ld to %s%s%s; check identity.supabase_url",
                      r->status, path, msg[0] ? ": " : "", msg);
    }
    sb_reason(err, code);
    return rc;
}

static int sb_fail_unreachable(const sb_response *r, sdo_error *err)
{
    int rc = sdo_fail(err, SDO_UNAVAILABLE, "Supabase Auth cannot be reached (%s); try again later",
                      r->curl_error);
    sdo_error_reason(err, "IDENTITY_PROVIDER_UNAVAILABLE");
    return rc;
}

/* ---- sessions -------------------------------------------------------------------------- */

/* Fills *out from a token response (AccessTokenResponse). On a sign-up answered with the user
 * object alone (the project confirms email addresses first), FAILED_PRECONDITION. */
static int sb_parse_session(sb_op op, const sb_response *r, idp_session *out, sdo_error *err)
{
    int rc;
    sdo_error jerr;
    json_value *doc = json_parse(r->body.data ? r->body.data : "", r->body.len, NULL, &jerr);
    if (json_typeof(doc) != JSON_OBJECT) {
        rc = sdo_fail(err, SDO_UNAVAILABLE,
                      "Supabase Auth answered the %s with something that "
                      "is not a JSON object; try again later",
                      sb_op_name[op]);
        goto out;
    }
    const char *access = json_string(json_get(doc, "access_token"));
    const char *refresh = json_string(json_get(doc, "refresh_token"));
    const json_value *user = json_get(doc, "user");
    if (!access && op == SB_SIGN_UP && json_string(json_get(doc, "id"))) {
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "the account needs its email address confirmed: follow the link Supabase "
                      "sent to it, then sign in");
        sdo_error_reason(err, "EMAIL_CONFIRMATION_REQUIRED");
        goto out;
    }
    const char *sub = json_string(json_get(user, "id"));
    const char *email = json_string(json_get(user, "email"));
    int64_t expires_at = 0, expires_in = 0;
    if (!json_int64(json_get(doc, "expires_at"), &expires_at) &&
        json_int64(json_get(doc, "expires_in"), &expires_in))
        expires_at = sdo_now_us() / 1000000 + expires_in;
    if (!access || !access[0] || !refresh || !refresh[0] || !sub || !sub[0] || expires_at <= 0 ||
        strlen(sub) >= sizeof out->subject || (email && strlen(email) >= sizeof out->email)) {
        log_error("msg=\"Supabase Auth's token response lacks access_token, refresh_token, "
                  "expires_at or user.id\" op=%s",
                  sb_op_name[op]);
        rc = sdo_fail(err, SDO_UNAVAILABLE,
                      "Supabase Auth answered the %s with an incomplete session; try again later",
                      sb_op_name[op]);
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->access_token = sdo_strdup(access);
    out->access_expires = expires_at;
    out->refresh_token = sdo_strdup(refresh);
    out->refresh_expires = 0; /* Supabase does not say; sessions may have a time box */
    sdo_strlcpy(out->subject, sub, sizeof out->subject);
    sdo_strlcpy(out->email, email ? email : "", sizeof out->email);
    rc = 0;
out:
    json_free(doc);
    return rc;
}

/* POSTs body to path and reads a session from a 200 answer. */
static int sb_session_call(sb_idp *p, sb_op op, const char *path, const sdo_buf *body,
                           idp_session *out, sdo_error *err)
{
    if (body->overflow)
        return sdo_fail(err, SDO_INVALID_ARGUMENT, "the request is too large");
    if (!p->anon_key[0])
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "Supabase sign-up and sign-in are off: the operator has not set "
                        "identity.supabase_anon_key");
    sb_response r;
    int rc;
    if (sb_http(p, "POST", path, body->data, NULL, SB_TIMEOUT_MS, &r) < 0)
        rc = sb_fail_unreachable(&r, err);
    else if (r.status == 200)
        rc = sb_parse_session(op, &r, out, err);
    else
        rc = sb_fail_answer(p, op, path, &r, err);
    sb_response_free(&r);
    return rc;
}

static int sb_check_email_password(const char *email, const char *password, sdo_error *err)
{
    if (!email || !email[0])
        return sdo_fail_field(err, "email", "email is required");
    if (strlen(email) > SB_MAX_EMAIL)
        return sdo_fail_field(err, "email", "email is longer than %d characters", SB_MAX_EMAIL);
    if (!password || !password[0])
        return sdo_fail_field(err, "password", "password is required");
    if (strlen(password) > SB_MAX_PASSWORD)
        return sdo_fail_field(err, "password", "password is longer than %d characters",
                              SB_MAX_PASSWORD);
    return 0;
}

static int sb_check_refresh_token(const char *t, sdo_error *err)
{
    if (!t || !t[0])
        return sdo_fail_field(err, "refresh_token", "refresh_token is required");
    if (strlen(t) > SB_MAX_REFRESH_TOKEN)
        return sdo_fail(err, SDO_UNAUTHENTICATED,
                        "the refresh token is not valid (longer than %d characters); sign in "
                        "again",
                        SB_MAX_REFRESH_TOKEN);
    return 0;
}

static int sb_sign_up(idp *ip, const char *email, const char *password, const char *display_name,
                      idp_session *out, sdo_error *err)
{
    sb_idp *p = (sb_idp *)ip;
    int rc = sb_check_email_password(email, password, err);
    if (rc < 0)
        return rc;
    if (display_name && strlen(display_name) > SB_MAX_DISPLAY_NAME)
        return sdo_fail_field(err, "display_name", "display_name is longer than %d characters",
                              SB_MAX_DISPLAY_NAME);
    sdo_buf b = {.limit = SB_MAX_REQUEST};
    sdo_buf_puts(&b, "{\"email\":");
    sb_json_str(&b, email);
    sdo_buf_puts(&b, ",\"password\":");
    sb_json_str(&b, password);
    if (display_name && display_name[0]) {
        /* becomes the user's user_metadata */
        sdo_buf_puts(&b, ",\"data\":{\"display_name\":");
        sb_json_str(&b, display_name);
        sdo_buf_puts(&b, "}");
    }
    sdo_buf_puts(&b, "}");
    rc = sb_session_call(p, SB_SIGN_UP, "/auth/v1/signup", &b, out, err);
    if (b.data)
        memset(b.data, 0, b.len);
    sdo_buf_free(&b);
    return rc;
}

static int sb_sign_in(idp *ip, const char *email, const char *password, idp_session *out,
                      sdo_error *err)
{
    sb_idp *p = (sb_idp *)ip;
    int rc = sb_check_email_password(email, password, err);
    if (rc < 0)
        return rc;
    sdo_buf b = {.limit = SB_MAX_REQUEST};
    sdo_buf_puts(&b, "{\"email\":");
    sb_json_str(&b, email);
    sdo_buf_puts(&b, ",\"password\":");
    sb_json_str(&b, password);
    sdo_buf_puts(&b, "}");
    rc = sb_session_call(p, SB_SIGN_IN, "/auth/v1/token?grant_type=password", &b, out, err);
    if (b.data)
        memset(b.data, 0, b.len);
    sdo_buf_free(&b);
    return rc;
}

static int sb_refresh_as(sb_idp *p, sb_op op, const char *refresh_token, idp_session *out,
                         sdo_error *err)
{
    int rc = sb_check_refresh_token(refresh_token, err);
    if (rc < 0)
        return rc;
    sdo_buf b = {.limit = SB_MAX_REQUEST};
    sdo_buf_puts(&b, "{\"refresh_token\":");
    sb_json_str(&b, refresh_token);
    sdo_buf_puts(&b, "}");
    rc = sb_session_call(p, op, "/auth/v1/token?grant_type=refresh_token", &b, out, err);
    sdo_buf_free(&b);
    return rc;
}

static int sb_refresh(idp *ip, const char *refresh_token, idp_session *out, sdo_error *err)
{
    return sb_refresh_as((sb_idp *)ip, SB_REFRESH, refresh_token, out, err);
}

/* Supabase's /logout needs an access token of the session, and the interface gives the
 * refresh token: it is exchanged for a fresh access token first (which also makes the refresh
 * token unusable), then that session alone is ended (scope=local). A refresh token Supabase
 * does not know, or one of a session already ended, is fine. */
static int sb_sign_out(idp *ip, const char *refresh_token, sdo_error *err)
{
    sb_idp *p = (sb_idp *)ip;
    idp_session s = {0};
    sdo_error e = {0};
    int rc = sb_refresh_as(p, SB_SIGN_OUT, refresh_token, &s, &e);
    if (rc < 0) {
        if (e.code == SDO_UNAUTHENTICATED || e.code == SDO_INVALID_ARGUMENT) {
            if (e.code == SDO_INVALID_ARGUMENT && strcmp(e.field, "refresh_token") == 0) {
                if (err)
                    *err = e;
                return rc;
            }
            return 0; /* unknown, used or ended: nothing to end */
        }
        if (err)
            *err = e;
        return rc;
    }
    sb_response r;
    if (sb_http(p, "POST", "/auth/v1/logout?scope=local", NULL, s.access_token, SB_TIMEOUT_MS, &r) <
        0) {
        rc = sb_fail_unreachable(&r, err);
    } else if (r.status == 204 || r.status == 200 ||
               (r.status == 403 && strcmp(r.error_code, "session_not_found") == 0)) {
        rc = 0;
    } else {
        rc = sb_fail_answer(p, SB_SIGN_OUT, "/auth/v1/logout", &r, err);
    }
    sb_response_free(&r);
    free(s.access_token);
    free(s.refresh_token);
    return rc;
}

/* ---- the JWK set ----------------------------------------------------------------------- */

/* Fetches the JWK set and puts it in place. Called with p->mu held. Returns 0 or -1 (logged). */
static int sb_fetch_jwks(sb_idp *p, const char *why)
{
    sb_response r;
    int rc = -1;
    if (sb_http(p, "GET", "/auth/v1/.well-known/jwks.json", NULL, NULL, SB_JWKS_TIMEOUT_MS, &r) < 0)
        goto out; /* logged by sb_http */
    if (r.status != 200) {
        log_warn("msg=\"cannot fetch the Supabase JWK set\" url=\"%s/auth/v1/.well-known/"
                 "jwks.json\" status=%ld why=%s",
                 p->url, r.status, why);
        goto out;
    }
    sdo_error e;
    int n = jwt_verifier_set_jwks(p->ver, r.body.data ? r.body.data : "", &e);
    if (n < 0) {
        log_warn("msg=\"the Supabase JWK set cannot be used\" error=\"%s\" why=%s", e.message, why);
        goto out;
    }
    atomic_fetch_add(&p->loads, 1);
    log_info("msg=\"Supabase JWK set loaded\" keys=%d why=%s", n, why);
    rc = 0;
out:
    sb_response_free(&r);
    return rc;
}

/* Retries the first fetch of the JWK set, waiting longer each time, until one works or the
 * provider is freed. */
static void *sb_retry_main(void *arg)
{
    sb_idp *p = arg;
    int delay = 1;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && atomic_load(&p->loads) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += delay;
        while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
            ;
        if (p->stopping || atomic_load(&p->loads) > 0)
            break;
        sb_fetch_jwks(p, "retry");
        delay = delay * 2 > SB_RETRY_MAX_SECONDS ? SB_RETRY_MAX_SECONDS : delay * 2;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* After a verification failed because the token names a key the set lacks: fetches the set
 * again, unless another thread has put a new set in place since the failed verification
 * (seen = the load count before it) or the last such fetch is more recent than the minimum
 * interval. Returns true when a newer set is in place, so verifying again may succeed. */
static bool sb_refetch(sb_idp *p, uint_fast64_t seen)
{
    bool newer = false;
    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->loads) != seen) {
        newer = true;
    } else {
        int64_t now = sdo_mono_us();
        if (!p->refetched || now - p->last_refetch_us >= p->min_refresh_us) {
            p->refetched = true;
            p->last_refetch_us = now;
            newer = sb_fetch_jwks(p, "unknown_key") == 0;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return newer;
}

/* ---- verification ---------------------------------------------------------------------- */

static int sb_verify(idp *ip, const char *access_token, idp_claims *out, sdo_error *err)
{
    sb_idp *p = (sb_idp *)ip;
    jwt_claims c;
    sdo_error e = {0};
    if (!access_token || !access_token[0])
        return sdo_fail(err, SDO_UNAUTHENTICATED, "no access token");
    uint_fast64_t seen = atomic_load(&p->loads);
    int rc = jwt_verify(p->ver, access_token, &c, &e);
    if (rc < 0 && (strcmp(e.reason, "UNKNOWN_KID") == 0 || strcmp(e.reason, "NO_KEY") == 0) &&
        sb_refetch(p, seen))
        rc = jwt_verify(p->ver, access_token, &c, &e);
    if (rc < 0) {
        if (err)
            *err = e;
        return rc;
    }
    if (!c.email[0]) {
        rc = sdo_fail(err, SDO_UNAUTHENTICATED,
                      "the token carries no email address; sign in with an email and password");
        sdo_error_reason(err, "INVALID_CLAIM");
        return rc;
    }
    if (strlen(c.sub) >= sizeof out->subject || strlen(c.email) >= sizeof out->email ||
        strlen(c.session_id) >= sizeof out->session_id) {
        rc = sdo_fail(err, SDO_UNAUTHENTICATED,
                      "a claim of the token (sub, email or session_id) "
                      "is too long");
        sdo_error_reason(err, "INVALID_CLAIM");
        return rc;
    }
    if (out) {
        memset(out, 0, sizeof *out);
        sdo_strlcpy(out->subject, c.sub, sizeof out->subject);
        sdo_strlcpy(out->email, c.email, sizeof out->email);
        sdo_strlcpy(out->session_id, c.session_id, sizeof out->session_id);
        out->expires = c.exp;
    }
    return 0;
}

/* ---- life ------------------------------------------------------------------------------ */

static void sb_free(idp *ip)
{
    sb_idp *p = (sb_idp *)ip;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->retrying)
        pthread_join(p->retry_thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    jwt_verifier_free(p->ver);
    free(p->url);
    if (p->anon_key) {
        memset(p->anon_key, 0, strlen(p->anon_key));
        free(p->anon_key);
    }
    free(p);
}

static const idp_ops sb_ops = {
    .name = "supabase",
    .sign_up = sb_sign_up,
    .sign_in = sb_sign_in,
    .refresh = sb_refresh,
    .sign_out = sb_sign_out,
    .verify = sb_verify,
    .free = sb_free,
};

static bool sb_header_safe(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

idp *idp_supabase_new(const sdo_config *cfg, sdo_error *err)
{
    const char *url = cfg->identity_supabase_url ? cfg->identity_supabase_url : "";
    const char *key = cfg->identity_supabase_anon_key ? cfg->identity_supabase_anon_key : "";
    const char *secret = cfg->identity_supabase_jwt_secret ? cfg->identity_supabase_jwt_secret : "";
    if (!url[0]) {
        sdo_fail(err, SDO_INVALID_ARGUMENT,
                 "identity.supabase_url is empty: set it to the "
                 "project URL, e.g. https://PROJECT.supabase.co");
        return NULL;
    }
    if ((strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) ||
        !sb_header_safe(url) || strchr(url, ' ') || strchr(url, '?') || strchr(url, '#')) {
        sdo_fail(err, SDO_INVALID_ARGUMENT,
                 "identity.supabase_url '%s' must be the project URL, e.g. "
                 "https://PROJECT.supabase.co (http:// only for a local Supabase)",
                 url);
        return NULL;
    }
    if (!sb_header_safe(key)) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "identity.supabase_anon_key holds control characters");
        return NULL;
    }
    pthread_once(&sb_curl_once, sb_curl_init);

    sb_idp *p = sdo_calloc(1, sizeof *p);
    p->base.ops = &sb_ops;
    p->url = sdo_strdup(url);
    for (size_t n = strlen(p->url); n > 0 && p->url[n - 1] == '/'; n--)
        p->url[n - 1] = '\0';
    p->anon_key = sdo_strdup(key);
    p->min_refresh_us = (int64_t)cfg->identity_supabase_jwks_min_refresh_seconds * 1000000;
    atomic_init(&p->loads, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);

    sdo_buf issuer = {0};
    sdo_buf_printf(&issuer, "%s/auth/v1", p->url);
    jwt_key_config hs = {
        .kid = NULL,
        .pem = NULL,
        .pkey = NULL,
        .secret = (const unsigned char *)secret,
        .secret_len = strlen(secret),
    };
    jwt_verifier_config vc = {
        .algs = JWT_ALG_ES256 | JWT_ALG_RS256 | (secret[0] ? JWT_ALG_HS256 : 0),
        .keys = secret[0] ? &hs : NULL,
        .nkeys = secret[0] ? 1 : 0,
        .issuer = issuer.data,
        .audience = cfg->identity_supabase_audience,
        .leeway = cfg->identity_clock_leeway_seconds,
        .max_token_size = 0,
        .clock = NULL,
        .clock_arg = NULL,
    };
    sdo_error verr;
    p->ver = jwt_verifier_new(&vc, &verr);
    sdo_buf_free(&issuer);
    if (!p->ver) {
        sdo_fail(err, SDO_INVALID_ARGUMENT, "identity.supabase_jwt_secret: %s", verr.message);
        sb_free(&p->base);
        return NULL;
    }
    if (!key[0])
        log_warn("msg=\"identity.supabase_anon_key is empty: SignUp, SignIn, RefreshSession "
                 "and SignOut will fail; access tokens are still verified\"");

    pthread_mutex_lock(&p->mu);
    int fetched = sb_fetch_jwks(p, "start");
    pthread_mutex_unlock(&p->mu);
    if (fetched < 0) {
        log_warn("msg=\"starting without the Supabase JWK set; fetching it again in the "
                 "background\" url=\"%s\"",
                 p->url);
        if (pthread_create(&p->retry_thread, NULL, sb_retry_main, p) == 0)
            p->retrying = true;
    }
    log_info("msg=\"identity provider ready\" mode=supabase url=\"%s\" issuer=\"%s/auth/v1\" "
             "audience=\"%s\" hs256=%s jwks_min_refresh_seconds=%d",
             p->url, p->url, cfg->identity_supabase_audience, secret[0] ? "on" : "off",
             cfg->identity_supabase_jwks_min_refresh_seconds);
    return &p->base;
}
