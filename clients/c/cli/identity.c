/* `saasodoo login`, `logout`, `whoami` and `apikeys ...`: sessions and API keys through
 * IdentityService. The password is read from the terminal without echo, or from standard
 * input when that is not a terminal, and never taken from the command line. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define NAME_MAX_LEN 512
#define SECRET_MAX_LEN 1024

/* --- reading from the terminal ----------------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void restore_echo(void)
{
    if (echo_off) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        echo_off = 0;
    }
}

/* Puts the terminal back before an interrupt ends the program. */
static void on_signal(int sig)
{
    restore_echo();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads one line from stdin into buf without its line break. With `hide` and a terminal,
 * the typing is not echoed. Returns 0, or CLI_EXIT_USAGE / CLI_EXIT_FAILURE after saying
 * why. `what` names the value in messages. */
static int read_line(const char *prompt, bool hide, char *buf, size_t size, const char *what)
{
    bool tty = isatty(STDIN_FILENO);
    struct sigaction sa, old_int, old_term;

    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
    }
    if (tty && hide && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios t = saved_tio;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        t.c_lflag &= ~(tcflag_t)ECHO;
        t.c_lflag |= ECHONL;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
            echo_off = 1;
    }
    char *got = fgets(buf, (int)size, stdin);
    int err = errno;
    if (echo_off) {
        restore_echo();
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (got == NULL) {
        if (ferror(stdin))
            return cli_failure("cannot read the %s: %s", what, strerror(err));
        return cli_usage_error("no %s given: standard input is empty", what);
    }
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] != '\n' && !feof(stdin))
        return cli_usage_error("the %s is longer than %zu characters", what, size - 2);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* --- login, logout, whoami --------------------------------------------------------- */

static const char *role_name(int role)
{
    char buf[16];
    const char *n = cli_enum_name(&saasodoo__v1__user__role__descriptor, role, buf);
    return role == SAASODOO__V1__USER__ROLE__ROLE_UNSPECIFIED ? "-" : n;
}

static int identity_login(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__SignInRequest req = SAASODOO__V1__SIGN_IN_REQUEST__INIT;
    Saasodoo__V1__Session *session = NULL;
    ProtobufCMessage *m = NULL;
    static char email_buf[NAME_MAX_LEN], password[SECRET_MAX_LEN];
    const char *email = args_value(a, "email");
    cli_creds creds = {0};
    int rc;

    if (email == NULL) {
        if (!isatty(STDIN_FILENO))
            return cli_usage_error("give --email when the password comes from standard input");
        if ((rc = read_line("Email: ", false, email_buf, sizeof(email_buf), "email")) != 0)
            return rc;
        email = email_buf;
    }
    if (email[0] == '\0')
        return cli_usage_error("the email must not be empty");
    if ((rc = read_line("Password: ", true, password, sizeof(password), "password")) != 0)
        goto out;
    if (password[0] == '\0') {
        rc = cli_usage_error("the password must not be empty");
        goto out;
    }

    ctx->anonymous = true;
    req.email = (char *)email;
    req.password = password;
    rc = cli_call(ctx, SDO_METHOD_IDENTITY_SERVICE_SIGN_IN, &req.base,
                  &saasodoo__v1__session__descriptor, &m);
    memset(password, 0, sizeof(password));
    if (rc != CLI_EXIT_OK)
        goto out;
    session = (Saasodoo__V1__Session *)m;
    if (creds_from_session(&creds, session, cli_server(ctx), cli_ca_file(ctx)) != 0) {
        rc = cli_failure("the server answered without an access token");
        goto out;
    }
    if (creds.email == NULL && (creds.email = strdup(email)) == NULL) {
        rc = cli_failure("out of memory");
        goto out;
    }
    if ((rc = creds_save(&creds)) != 0)
        goto out;

    if (ctx->output == OUT_JSON && session->user != NULL) {
        rc = cli_print_json(&session->user->base, false);
    } else {
        const Saasodoo__V1__User *u = session->user;
        char *who = cli_clean(creds.email);
        char *name = cli_clean(u != NULL ? u->name : NULL);
        printf("Signed in to %s as %s (%s, %s).\n", creds.server, who ? who : "?",
               name ? name : "?", role_name(u != NULL ? (int)u->role : 0));
        free(who);
        free(name);
        rc = cli_flush();
    }
    if (getenv("SAASODOO_TOKEN") != NULL && getenv("SAASODOO_TOKEN")[0] != '\0')
        fputs("saasodoo: note: SAASODOO_TOKEN is set and is used instead of this session until "
              "it is unset.\n",
              stderr);
out:
    memset(password, 0, sizeof(password));
    creds_clear(&creds);
    if (session != NULL)
        protobuf_c_message_free_unpacked(&session->base, NULL);
    return rc;
}

static int identity_logout(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__SignOutRequest req = SAASODOO__V1__SIGN_OUT_REQUEST__INIT;
    Google__Protobuf__Empty *empty = NULL;
    char server[NAME_MAX_LEN];
    sdo_status st = {0};
    int rc = CLI_EXIT_OK, removed;

    (void)a;
    if (ctx->token != NULL)
        fputs("saasodoo: note: SAASODOO_TOKEN is set; it stays valid after logout.\n", stderr);
    if (creds_load(&ctx->creds) != 1) {
        ctx->creds_loaded = true;
        fputs("Not signed in.\n", stderr);
        return CLI_EXIT_OK;
    }
    ctx->creds_loaded = true;
    snprintf(server, sizeof(server), "%s", ctx->creds.server);
    /* Sign out where the session came from, with its own token. */
    ctx->server = ctx->creds.server;
    ctx->server_src = SRC_FILE;
    ctx->token = NULL;
    if (ctx->creds.refresh_token != NULL) {
        if (cli_client(ctx) == NULL) {
            rc = ctx->client_rc;
        } else {
            req.refresh_token = ctx->creds.refresh_token;
            rc = sdo_identity_service_sign_out(ctx->client, &req, &empty, &st);
            if (rc < 0 && st.code == SDO_UNAUTHENTICATED) {
                rc = CLI_EXIT_OK; /* the session had already ended */
            } else if (rc < 0) {
                cli_set_auth_hint(NULL);
                rc = cli_rpc_error(rc, &st);
                fprintf(stderr, "saasodoo: the server could not end the session; it ends by itself "
                                "when its refresh token expires.\n");
            } else {
                rc = CLI_EXIT_OK;
            }
            sdo_status_clear(&st);
            if (empty != NULL)
                protobuf_c_message_free_unpacked(&empty->base, NULL);
        }
        if (rc == CLI_EXIT_RPC + SDO_UNAUTHENTICATED)
            rc = CLI_EXIT_OK; /* the stored session could not be renewed: it is over */
    }
    removed = creds_remove();
    if (removed != 0 && removed != 1)
        return removed;
    printf("Signed out of %s.\n", server);
    return cli_flush() != CLI_EXIT_OK ? CLI_EXIT_FAILURE : rc;
}

/* The signed-in user; NULL after saying why (exit code in *rc). Caller frees. */
static Saasodoo__V1__User *current_user(cli_ctx *ctx, int *rc)
{
    Saasodoo__V1__GetCurrentUserRequest req = SAASODOO__V1__GET_CURRENT_USER_REQUEST__INIT;
    ProtobufCMessage *u = NULL;

    *rc = cli_call(ctx, SDO_METHOD_IDENTITY_SERVICE_GET_CURRENT_USER, &req.base,
                   &saasodoo__v1__user__descriptor, &u);
    return (Saasodoo__V1__User *)u;
}

static int identity_whoami(cli_ctx *ctx, const cli_args *a)
{
    int rc = CLI_EXIT_OK;
    (void)a;
    Saasodoo__V1__User *u = current_user(ctx, &rc);
    if (u == NULL)
        return rc;
    rc = cli_show(ctx, &u->base);
    protobuf_c_message_free_unpacked(&u->base, NULL);
    return rc;
}

/* --- apikeys ------------------------------------------------------------------------ */

/* users/ID of --user, or of the signed-in user. Returns 0 or the exit code. */
static int key_owner(cli_ctx *ctx, const cli_args *a, char *buf, size_t size)
{
    const char *v = args_value(a, "user");
    int rc = CLI_EXIT_OK;

    if (v != NULL)
        return cli_resource_name("users", v, buf, size);
    Saasodoo__V1__User *u = current_user(ctx, &rc);
    if (u == NULL)
        return rc;
    if (u->name == NULL || strncmp(u->name, "users/", 6) != 0 ||
        (size_t)snprintf(buf, size, "%s", u->name) >= size)
        rc = cli_failure("the server named the current user '%s', not users/ID",
                         u->name ? u->name : "");
    protobuf_c_message_free_unpacked(&u->base, NULL);
    return rc;
}

static int apikeys_create(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CreateApiKeyRequest req = SAASODOO__V1__CREATE_API_KEY_REQUEST__INIT;
    Saasodoo__V1__ApiKey key = SAASODOO__V1__API_KEY__INIT;
    Google__Protobuf__Timestamp expire = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ProtobufCMessage *out = NULL;
    char parent[NAME_MAX_LEN];
    int32_t days = 0;
    int rc;

    if (a->pos[0][0] == '\0')
        return cli_usage_error("the key's NAME must not be empty");
    if ((rc = args_int(a, "expire-days", 1, 36500, &days)) != 0)
        return rc;
    if ((rc = key_owner(ctx, a, parent, sizeof(parent))) != 0)
        return rc;
    key.display_name = (char *)a->pos[0];
    if (days > 0) {
        expire.seconds = (int64_t)time(NULL) + (int64_t)days * 86400;
        key.expire_time = &expire;
    }
    req.parent = parent;
    req.api_key = &key;
    args_string(a, "request-id", &req.request_id);
    rc = cli_call(ctx, SDO_METHOD_IDENTITY_SERVICE_CREATE_API_KEY, &req.base,
                  &saasodoo__v1__api_key__descriptor, &out);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_show(ctx, out);
    if (rc == CLI_EXIT_OK)
        fputs("Copy the secret now: it cannot be shown again. Scripts pass it in "
              "SAASODOO_TOKEN.\n",
              stderr);
    protobuf_c_message_free_unpacked(out, NULL);
    return rc;
}

static int add_key_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__ApiKey *k = (const Saasodoo__V1__ApiKey *)m;
    char c[SDO_TIMESTAMP_BUFSIZE], u[SDO_TIMESTAMP_BUFSIZE], e[SDO_TIMESTAMP_BUFSIZE];
    const char *cells[6] = {
        k->name,
        k->prefix,
        cli_time(k->create_time, c),
        cli_time(k->last_used_time, u),
        cli_time(k->expire_time, e),
        k->display_name,
    };
    return table_add(tbl, cells);
}

static const char *const key_headers[] = {"NAME",      "PREFIX",  "CREATED",
                                          "LAST_USED", "EXPIRES", "DISPLAY_NAME"};
static const cli_list_spec key_list_spec = {
    .method = SDO_METHOD_IDENTITY_SERVICE_LIST_API_KEYS,
    .resp_desc = &saasodoo__v1__list_api_keys_response__descriptor,
    .items_field = "api_keys",
    .noun = "API keys",
    .ncols = 6,
    .headers = key_headers,
    .add_row = add_key_row,
};

static int apikeys_list(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__ListApiKeysRequest req = SAASODOO__V1__LIST_API_KEYS_REQUEST__INIT;
    char parent[NAME_MAX_LEN];
    int rc;

    /* A bad --page-size is told before the server is asked who the caller is. */
    if ((rc = cli_list_options(a, &req.base)) != 0)
        return rc;
    if ((rc = key_owner(ctx, a, parent, sizeof(parent))) != 0)
        return rc;
    req.parent = parent;
    return cli_list(ctx, a, &key_list_spec, &req.base);
}

/* Finds the key `arg` (its ID or its display name) among the keys of `parent`; its full
 * name goes to buf. Returns 0 or the exit code after saying why. */
static int find_key(cli_ctx *ctx, const char *parent, const char *arg, char *buf, size_t size)
{
    Saasodoo__V1__ListApiKeysRequest req = SAASODOO__V1__LIST_API_KEYS_REQUEST__INIT;
    static char no_token[] = "";
    char *token = NULL;
    size_t by_name = 0;
    bool by_id = false;
    int rc = 0;

    buf[0] = '\0';
    if (cli_client(ctx) == NULL)
        return ctx->client_rc;
    req.parent = (char *)parent;
    req.page_size = 500;
    for (int page = 0; page < CLI_MAX_PAGES && !by_id; page++) {
        Saasodoo__V1__ListApiKeysResponse *resp = NULL;
        sdo_status st = {0};
        req.page_token = token ? token : no_token;
        int r = sdo_identity_service_list_api_keys(ctx->client, &req, &resp, &st);
        if (r < 0) {
            rc = cli_rpc_failure(r, &st);
            goto out;
        }
        for (size_t i = 0; i < resp->n_api_keys; i++) {
            const Saasodoo__V1__ApiKey *k = resp->api_keys[i];
            const char *slash = k->name ? strrchr(k->name, '/') : NULL;
            if (slash != NULL && strcmp(slash + 1, arg) == 0) {
                snprintf(buf, size, "%s", k->name);
                by_id = true;
                break;
            }
            if (k->display_name != NULL && strcmp(k->display_name, arg) == 0 && k->name) {
                if (by_name++ == 0)
                    snprintf(buf, size, "%s", k->name);
            }
        }
        free(token);
        token = resp->next_page_token && resp->next_page_token[0] ? strdup(resp->next_page_token)
                                                                  : NULL;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (token == NULL)
            break;
    }
    if (by_id)
        goto out;
    if (by_name > 1) {
        rc = cli_usage_error("%zu API keys are named '%s': give the ID of the one to delete",
                             by_name, arg);
    } else if (by_name == 0) {
        fprintf(stderr, "saasodoo: NOT_FOUND: no API key with the ID or name '%s' in %s\n", arg,
                parent);
        rc = CLI_EXIT_RPC + SDO_NOT_FOUND;
    }
out:
    free(token);
    return rc;
}

static int apikeys_delete(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DeleteApiKeyRequest req = SAASODOO__V1__DELETE_API_KEY_REQUEST__INIT;
    ProtobufCMessage *empty = NULL;
    char parent[NAME_MAX_LEN], name[NAME_MAX_LEN];
    const char *arg = a->pos[0];
    int rc;

    if (arg[0] == '\0')
        return cli_usage_error("give the key's ID, name or users/USER/apiKeys/ID");
    if (strchr(arg, '/') != NULL) {
        /* users/USER/apiKeys/ID, as printed by 'apikeys list' */
        const char *p = strchr(arg, '/') + 1, *q = strchr(p, '/');
        if (strncmp(arg, "users/", 6) != 0 || q == NULL || q == p ||
            strncmp(q, "/apiKeys/", 9) != 0 || q[9] == '\0' || strchr(q + 9, '/') != NULL)
            return cli_usage_error("'%s' is not a valid key: expected ID, NAME or "
                                   "users/USER/apiKeys/ID",
                                   arg);
        if ((size_t)snprintf(name, sizeof(name), "%s", arg) >= sizeof(name))
            return cli_usage_error("'%s' is too long", arg);
    } else {
        if ((rc = key_owner(ctx, a, parent, sizeof(parent))) != 0)
            return rc;
        if ((rc = find_key(ctx, parent, arg, name, sizeof(name))) != 0)
            return rc;
    }
    req.name = name;
    rc = cli_call(ctx, SDO_METHOD_IDENTITY_SERVICE_DELETE_API_KEY, &req.base,
                  &google__protobuf__empty__descriptor, &empty);
    if (rc != CLI_EXIT_OK)
        return rc;
    protobuf_c_message_free_unpacked(empty, NULL);
    printf("deleted %s\n", name);
    return cli_flush();
}

static const cli_opt login_opts[] = {
    {"email", 0, "EMAIL", false,
     "the account's email (asked on the terminal when not given; required when the password "
     "comes from standard input)"},
    CLI_OPTS_END,
};

static const char user_help[] = "whose keys, as ID or users/ID (admin; default: the caller)";

static const cli_opt key_create_opts[] = {
    {"user", 0, "USER", false, user_help},
    {"expire-days", 0, "N", false, "the key stops working after N days (default: never)"},
    CLI_OPT_REQUEST_ID,
    CLI_OPTS_END,
};

static const cli_opt key_list_opts[] = {
    {"user", 0, "USER", false, user_help},
    CLI_OPTS_PAGING("keys"),
    CLI_OPTS_END,
};

static const cli_opt key_delete_opts[] = {
    {"user", 0, "USER", false, user_help},
    CLI_OPTS_END,
};

const cli_cmd cli_login_cmd = {
    "login",
    NULL,
    "[--email EMAIL]",
    "Sign in with email and password and store the session (mode 0600) for the commands that "
    "follow. The password is read from the terminal without echo, or as one line from "
    "standard input when that is not a terminal.",
    login_opts,
    0,
    0,
    identity_login};

const cli_cmd cli_logout_cmd = {
    "logout",    NULL, "", "End the stored session on the server and remove the credentials file.",
    cli_no_opts, 0,    0,  identity_logout};

const cli_cmd cli_whoami_cmd = {
    "whoami",    NULL, "", "Show the user the calls are made as: name, email, role.",
    cli_no_opts, 0,    0,  identity_whoami};

const cli_cmd cli_apikey_cmds[] = {
    {"apikeys", "create", "NAME [options]",
     "Create an API key named NAME; prints its secret once (it cannot be shown again).",
     key_create_opts, 1, 1, apikeys_create},
    {"apikeys", "list", "[options]", "List API keys (the secret is never shown).", key_list_opts, 0,
     0, apikeys_list},
    {"apikeys", "delete", "ID|NAME",
     "Delete an API key, given its ID, its name or users/USER/apiKeys/ID; it stops working at "
     "once.",
     key_delete_opts, 1, 1, apikeys_delete},
    CLI_CMDS_END,
};
