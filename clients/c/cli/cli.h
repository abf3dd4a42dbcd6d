/* Shared pieces of the saasodoo command-line tool: the command and option tables, the
 * parsed arguments, the run context and the output helpers. */
#ifndef SAASODOO_CLI_H
#define SAASODOO_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "saasodoo/client.h"
#include "saasodoo/json.h"

/* Exit codes a script can rely on (also in `saasodoo --help` and clients/c/README.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* local failure, an operation that failed without a code, or
                           * `admin fsck` findings left unrepaired */
    CLI_EXIT_USAGE = 2,   /* unknown option or command, bad or missing argument */
    CLI_EXIT_RPC = 10,    /* + the gRPC status code of a failed call or operation */
};

#define CLI_DEFAULT_SERVER "127.0.0.1:50051"
#define CLI_MAX_ARGS 256     /* options and positional arguments per invocation */
#define CLI_MAX_PAGES 100000 /* pages fetched by --all before giving up */

typedef enum { OUT_TABLE, OUT_JSON } cli_output;

/* One option a command accepts. `name` is the long name without "--". */
typedef struct cli_opt {
    const char *name;
    char short_name;      /* 0: none */
    const char *arg_name; /* NULL: a flag without a value */
    bool repeat;          /* may be given more than once */
    const char *help;
} cli_opt;

/* Entries that the option tables of several commands share. Macros, because the entries
 * of one array initializer cannot be taken into another. */
/* clang-format off */
#define CLI_OPT_REQUEST_ID {"request-id", 0, "ID", false, "client-chosen id that makes retries safe"}
#define CLI_OPT_WAIT \
    {"wait", 0, NULL, false, "follow the operation until it ends (like 'operations watch')"}
/* --page-size, --page-token and --all of a list; `noun` is a string literal ("tenants"). */
#define CLI_OPTS_PAGING(noun) \
    {"page-size", 0, "N", false, noun " per page (server default when 0)"}, \
    {"page-token", 0, "TOKEN", false, "continue from a previous page"}, \
    {"all", 0, NULL, false, "fetch every page"}
/* The entry that ends an option table, and the one that ends a command table. */
#define CLI_OPTS_END {NULL, 0, NULL, false, NULL}
#define CLI_CMDS_END {NULL, NULL, NULL, NULL, NULL, 0, 0, NULL}
/* clang-format on */

/* Parsed command line: options in the order given, then the positional arguments. */
typedef struct cli_args {
    struct {
        const cli_opt *opt;
        const char *value; /* NULL for flags */
    } opts[CLI_MAX_ARGS];
    size_t nopts;
    const char *pos[CLI_MAX_ARGS];
    size_t npos;
} cli_args;

/* Where the server address or the token came from. */
typedef enum { SRC_DEFAULT, SRC_FLAG, SRC_ENV, SRC_FILE } cli_source;

/* The signed-in session kept by `saasodoo login` (credentials.c). Strings are owned. */
typedef struct cli_creds {
    char *server;
    char *ca_file; /* NULL: plaintext */
    char *user;    /* users/ID */
    char *email;
    char *access_token;
    int64_t access_expires; /* Unix seconds; 0 unknown */
    char *refresh_token;    /* NULL: none */
    int64_t refresh_expires;
} cli_creds;

/* What every command runs with. The client is created on first use. */
typedef struct cli_ctx {
    const char *server;
    cli_source server_src;
    const char *ca_file; /* --ca-file or SAASODOO_TLS_CA; NULL: see the credentials */
    const char *token;   /* SAASODOO_TOKEN; NULL: the credentials file, if any */
    cli_output output;
    int64_t timeout_ms; /* unary deadline; 0 none */
    bool timeout_set;   /* --timeout given: also bounds streams */
    bool anonymous;     /* no token at all (login) */
    cli_creds creds;    /* loaded from the credentials file when used */
    bool creds_loaded;
    sdo_client *client;
    int client_rc; /* exit code when cli_client failed */
} cli_ctx;

typedef struct cli_cmd {
    const char *group;
    const char *verb;       /* NULL: the group is the command (`saasodoo login`) */
    const char *args_usage; /* e.g. "ID --plan PLAN [options]" */
    const char *summary;
    const cli_opt *opts; /* terminated by an entry with name NULL */
    size_t min_pos, max_pos;
    int (*run)(cli_ctx *ctx, const cli_args *a);
} cli_cmd;

/* args.c */
const char *args_value(const cli_args *a, const char *name);
/* Value of exactly this option (not a global one of the same name); NULL when not given. */
const char *args_opt_value(const cli_args *a, const cli_opt *opt);
bool args_flag(const cli_args *a, const char *name);
size_t args_values(const cli_args *a, const char *name, const char **out, size_t max);
int args_int(const cli_args *a, const char *name, int32_t min, int32_t max, int32_t *out);
/* "true" or "false" of option `name`, when given, into *out. Returns 0 or CLI_EXIT_USAGE. */
int args_bool(const cli_args *a, const char *name, bool *out);
/* Points *field at the value of option `name` when it was given; leaves it otherwise. */
void args_string(const cli_args *a, const char *name, char **field);
/* Parses argv[*i..] against `global` and `local` (either may be NULL). With
 * `stop_at_positional` parsing ends before the first positional argument. Returns 0 or
 * CLI_EXIT_USAGE after printing the problem. */
int args_parse(int argc, char **argv, int *i, const cli_opt *global, const cli_opt *local,
               bool stop_at_positional, cli_args *out);
void args_print_options(FILE *f, const cli_opt *opts);
/* The option table of a command without options of its own. */
extern const cli_opt cli_no_opts[];

/* output.c */
/* Usage errors from now on point to `saasodoo GROUP [VERB] --help`. */
void cli_set_help_hint(const char *group, const char *verb);
/* Prints "saasodoo: <message>" and a pointer to the help to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "saasodoo: <message>" to stderr; returns CLI_EXIT_FAILURE. */
int cli_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "saasodoo: CODE: message" (and any field violations) to stderr; returns the
 * exit code for the failed call. After UNAUTHENTICATED it adds the hint set last. */
int cli_rpc_error(int rc, const sdo_status *st);
/* What to tell a caller whose call came back UNAUTHENTICATED (copied; NULL: nothing). */
void cli_set_auth_hint(const char *hint);
/* Prints `m` as pretty JSON (one_line: compact) and a newline to stdout. */
int cli_print_json(const ProtobufCMessage *m, bool one_line);
/* Prints every field of `m` as aligned "key: value" lines. */
int cli_print_describe(const ProtobufCMessage *m);
/* Prints one resource as the output format asks: pretty JSON or "key: value" lines. */
int cli_show(const cli_ctx *ctx, const ProtobufCMessage *m);
/* Flushes stdout: CLI_EXIT_OK, or CLI_EXIT_FAILURE after saying it could not be written. */
int cli_flush(void);
/* A copy of `s` fit for one table cell or line: control characters escaped, "" -> "-".
 * Caller frees. NULL when out of memory. */
char *cli_clean(const char *s);
/* Timestamp field as RFC 3339 UTC, "-" when unset. buf: SDO_TIMESTAMP_BUFSIZE bytes. */
const char *cli_time(const Google__Protobuf__Timestamp *ts, char *buf);
/* Name of value `v` of an enum, or its number in `buf` (16 bytes). */
const char *cli_enum_name(const ProtobufCEnumDescriptor *d, int v, char *buf);

typedef struct cli_table cli_table;
cli_table *table_new(size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (each cleaned). Returns 0 or -1 when out of memory/too big. */
int table_add(cli_table *t, const char *const *cells);
size_t table_rows(const cli_table *t);
int table_print(const cli_table *t, FILE *f);
void table_free(cli_table *t);

/* call.c: the calls of a command. Each connects first (cli_client) and, when the call
 * fails, says why on stderr and returns the exit code. */
/* Reports a failed call (cli_rpc_error), clears `st` and returns the exit code. */
int cli_rpc_failure(int rc, sdo_status *st);
/* Calls the unary method `method` (an SDO_METHOD_* path) with `req` and decodes the
 * answer as `resp_desc`. Returns 0 with the answer in *resp (the caller frees it), or
 * the exit code with *resp NULL. */
int cli_call(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp);
/* cli_call, then cli_show of the answer. Returns the exit code. */
int cli_call_show(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc);
/* Opens the server stream `method` with `req`, its messages decoded as `resp_desc`,
 * bounded only by a --timeout given. Returns 0 with the stream in *s (close it with
 * sdo_stream_close), or the exit code with *s NULL. */
int cli_open_stream(cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, sdo_stream **s);

/* list.c: a paged List method and how to show its items. */
typedef struct cli_list_spec {
    const char *method;                          /* e.g. SDO_METHOD_TENANT_SERVICE_LIST_TENANTS */
    const ProtobufCMessageDescriptor *resp_desc; /* the List response */
    const char *items_field;                     /* its repeated field, e.g. "tenants" */
    const char *noun;                            /* "tenants", for messages */
    size_t ncols;
    const char *const *headers;
    int (*add_row)(cli_table *t, const ProtobufCMessage *item);
} cli_list_spec;
/* Sets the page_size and filter fields of the List request `req` from --page-size and
 * --filter when given. Returns 0 or CLI_EXIT_USAGE after saying why. */
int cli_list_options(const cli_args *a, ProtobufCMessage *req);
/* Calls the method with `req` (its paging fields set by cli_list_options), following
 * pages with --page-token and --all, and prints the result. Returns the exit code. */
int cli_list(cli_ctx *ctx, const cli_args *a, const cli_list_spec *spec, ProtobufCMessage *req);

/* main.c */
/* The context's client, created on first use with the token that applies (refreshing a
 * stored session that has expired); NULL on failure, after saying why, with the exit
 * code in ctx->client_rc. */
sdo_client *cli_client(cli_ctx *ctx);
/* The address and CA file calls go to: flags and environment first, then the stored
 * session's, then the default. */
const char *cli_server(cli_ctx *ctx);
const char *cli_ca_file(cli_ctx *ctx);
/* A client without a token for the same server (sign-in, refresh). Caller frees.
 * NULL after saying why. */
sdo_client *cli_anonymous_client(cli_ctx *ctx);
/* Asks "question [y/N] " on the terminal; true for y or yes. False when stdin is no tty. */
bool cli_confirm(const char *question);
/* "acme" or "tenants/acme" -> "tenants/acme" in buf; CLI_EXIT_USAGE when malformed. */
int cli_resource_name(const char *collection, const char *arg, char *buf, size_t size);

/* operations.c */
/* Follows operation `name` until it ends, printing each update; returns the exit code. */
int cli_watch_operation(cli_ctx *ctx, const char *name);
/* Prints an Operation a mutating call returned, or follows it when the command's --wait
 * was given. Returns the exit code. */
int cli_print_operation(cli_ctx *ctx, const cli_args *a, Saasodoo__V1__Operation *op);
/* Calls `method`, which answers with an Operation, and prints or follows it as
 * cli_print_operation does. Returns the exit code. */
int cli_call_operation(cli_ctx *ctx, const cli_args *a, const char *method,
                       const ProtobufCMessage *req);

/* credentials.c */
/* The credentials file: $XDG_CONFIG_HOME/saasodoo/credentials, else
 * ~/.config/saasodoo/credentials. Returns 0 or CLI_EXIT_FAILURE after saying why. */
int creds_path(char *buf, size_t size);
/* Loads the file into *c. Returns 1 when loaded, 0 when there is none, or
 * CLI_EXIT_FAILURE (negated: -1) after saying why. */
int creds_load(cli_creds *c);
/* Writes *c atomically (temporary file + rename), mode 0600 in a 0700 directory.
 * Returns 0 or CLI_EXIT_FAILURE after saying why. */
int creds_save(const cli_creds *c);
/* Removes the file. Returns 1 removed, 0 there was none, or CLI_EXIT_FAILURE. */
int creds_remove(void);
void creds_clear(cli_creds *c);
/* Fills *c from a Session and the server it came from. Returns 0 or -1 (out of memory). */
int creds_from_session(cli_creds *c, const Saasodoo__V1__Session *s, const char *server,
                       const char *ca_file);
/* Makes sure the stored access token is usable: when it expires within a minute and a
 * refresh token exists, calls RefreshSession and rewrites the file, holding a lock so
 * that concurrent commands refresh once. Returns 0 or the exit code after saying why. */
int creds_ensure_fresh(cli_ctx *ctx);

/* tenants.c, operations.c, servers.c, admin.c, identity.c, backups.c, users.c */
extern const cli_cmd cli_tenant_cmds[];
extern const cli_cmd cli_operation_cmds[];
extern const cli_cmd cli_server_cmds[];
extern const cli_cmd cli_admin_cmds[];
extern const cli_cmd cli_login_cmd;
extern const cli_cmd cli_logout_cmd;
extern const cli_cmd cli_whoami_cmd;
extern const cli_cmd cli_apikey_cmds[];
extern const cli_cmd cli_backup_cmds[];
extern const cli_cmd cli_user_cmds[];
extern const cli_cmd cli_audit_cmds[];

#endif /* SAASODOO_CLI_H */
