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

/* What every command runs with. The client is created on first use. */
typedef struct cli_ctx {
    const char *server;
    const char *token;
    cli_output output;
    int64_t timeout_ms; /* unary deadline; 0 none */
    bool timeout_set;   /* --timeout given: also bounds streams */
    sdo_client *client;
} cli_ctx;

typedef struct cli_cmd {
    const char *group;
    const char *verb;
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
/* Parses argv[*i..] against `global` and `local` (either may be NULL). With
 * `stop_at_positional` parsing ends before the first positional argument. Returns 0 or
 * CLI_EXIT_USAGE after printing the problem. */
int args_parse(int argc, char **argv, int *i, const cli_opt *global, const cli_opt *local,
               bool stop_at_positional, cli_args *out);
void args_print_options(FILE *f, const cli_opt *opts);

/* output.c */
/* Usage errors from now on point to `saasodoo GROUP [VERB] --help`. */
void cli_set_help_hint(const char *group, const char *verb);
/* Prints "saasodoo: <message>" and a pointer to the help to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "saasodoo: <message>" to stderr; returns CLI_EXIT_FAILURE. */
int cli_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "saasodoo: CODE: message" (and any field violations) to stderr; returns the
 * exit code for the failed call. */
int cli_rpc_error(int rc, const sdo_status *st);
/* Prints `m` as pretty JSON (one_line: compact) and a newline to stdout. */
int cli_print_json(const ProtobufCMessage *m, bool one_line);
/* Prints every field of `m` as aligned "key: value" lines. */
int cli_print_describe(const ProtobufCMessage *m);
/* A copy of `s` fit for one table cell or line: control characters escaped, "" -> "-".
 * Caller frees. NULL when out of memory. */
char *cli_clean(const char *s);
/* Timestamp field as RFC 3339 UTC, "-" when unset. buf: SDO_TIMESTAMP_BUFSIZE bytes. */
const char *cli_time(const ProtobufCMessage *ts, char *buf);
/* Name of value `v` of an enum, or its number in `buf` (16 bytes). */
const char *cli_enum_name(const ProtobufCEnumDescriptor *d, int v, char *buf);

typedef struct cli_table cli_table;
cli_table *table_new(size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (each cleaned). Returns 0 or -1 when out of memory/too big. */
int table_add(cli_table *t, const char *const *cells);
size_t table_rows(const cli_table *t);
int table_print(const cli_table *t, FILE *f);
void table_free(cli_table *t);

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
/* Calls the method with `req` (its page_token at *token_slot), following pages with
 * --all, and prints the result. Returns the exit code. */
int cli_list(cli_ctx *ctx, const cli_args *a, const cli_list_spec *spec, ProtobufCMessage *req,
             char **token_slot);

/* main.c */
/* The context's client, created on first use; NULL (after saying why) on failure. */
sdo_client *cli_client(cli_ctx *ctx);
/* "acme" or "tenants/acme" -> "tenants/acme" in buf; CLI_EXIT_USAGE when malformed. */
int cli_resource_name(const char *collection, const char *arg, char *buf, size_t size);

/* operations.c */
/* Follows operation `name` until it ends, printing each update; returns the exit code. */
int cli_watch_operation(cli_ctx *ctx, const char *name);

/* tenants.c, operations.c, servers.c, admin.c */
extern const cli_cmd cli_tenant_cmds[];
extern const cli_cmd cli_operation_cmds[];
extern const cli_cmd cli_server_cmds[];
extern const cli_cmd cli_admin_cmds[];

#endif /* SAASODOO_CLI_H */
