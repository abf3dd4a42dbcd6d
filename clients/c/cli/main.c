/* saasodoo: the command-line tool for the saasodoo control plane. Parses
 * `saasodoo [options] <group> <command> ...`, runs the command over the C client and
 * maps failures to documented exit codes. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#ifndef SAASODOO_VERSION
#define SAASODOO_VERSION "0.0.0"
#endif

static const cli_opt global_opts[] = {
    {"server", 's', "HOST:PORT", false,
     "server address (env SAASODOO_SERVER, then the signed-in one, default " CLI_DEFAULT_SERVER
     ")"},
    {"ca-file", 0, "FILE", false,
     "use TLS, trusting the PEM root certificates in FILE (env SAASODOO_TLS_CA)"},
    {"output", 'o', "FORMAT", false, "table (default) or json"},
    {"timeout", 0, "SECONDS", false, "deadline per call (default 30; watch: none)"},
    {"help", 'h', NULL, false, "show help; after a group or command, help for it"},
    {"version", 0, NULL, false, "print the version and exit"},
    CLI_OPTS_END,
};

static const struct {
    const char *name;
    const char *alias;
    const char *summary;
    const cli_cmd *cmds;   /* the group's commands, or NULL ... */
    const cli_cmd *direct; /* ... for a command without a verb */
} groups[] = {
    {"login", NULL, "sign in and keep the session for the commands after it", NULL, &cli_login_cmd},
    {"logout", NULL, "end the session and forget it", NULL, &cli_logout_cmd},
    {"whoami", NULL, "show the user the calls are made as", NULL, &cli_whoami_cmd},
    {"tenants", "tenant",
     "Odoo instances: create, get, list, update, delete, suspend, resume, migrate", cli_tenant_cmds,
     NULL},
    {"operations", "operation", "long-running work: get, list, watch, cancel", cli_operation_cmds,
     NULL},
    {"backups", "backup", "tenant backups: create, list, get, restore, delete, policy",
     cli_backup_cmds, NULL},
    {"apikeys", "apikey", "API keys for scripts: create, list, delete", cli_apikey_cmds, NULL},
    {"servers", "server", "database servers: list, create, update, drain, delete", cli_server_cmds,
     NULL},
    {"users", "user", "platform users (admin): list, update", cli_user_cmds, NULL},
    {"audit", NULL, "the audit log (admin): list", cli_audit_cmds, NULL},
    {"admin", NULL, "platform administration: fsck (consistency check)", cli_admin_cmds, NULL},
};
#define N_GROUPS (sizeof(groups) / sizeof(groups[0]))

static void print_exit_codes(FILE *f)
{
    fputs("Exit codes:\n"
          "  0      success\n"
          "  1      local failure (e.g. output could not be written), an operation that\n"
          "         ended in failure without a status code, or 'admin fsck' findings that\n"
          "         were not repaired\n"
          "  2      usage error: unknown option or command, bad or missing argument\n"
          "  10+N   the call failed with gRPC status N, e.g. 13 INVALID_ARGUMENT,\n"
          "         15 NOT_FOUND, 16 ALREADY_EXISTS, 19 FAILED_PRECONDITION, 20 ABORTED,\n"
          "         24 UNAVAILABLE, 25 DATA_LOSS, 26 UNAUTHENTICATED; for 'operations watch'\n"
          "         and --wait also an operation that ended with error code N; for\n"
          "         'backups download' 25 also a part whose SHA-256 does not match\n"
          "Errors go to stderr as 'saasodoo: <STATUS_NAME>: <message>'.\n",
          f);
}

static void print_top_help(FILE *f)
{
    fputs("Usage: saasodoo [options] <group> <command> [arguments]\n\n"
          "Manage saasodoo tenants, backups, users and database servers over gRPC.\n\n"
          "Commands and groups:\n",
          f);
    for (size_t g = 0; g < N_GROUPS; g++)
        fprintf(f, "  %-12s %s\n", groups[g].name, groups[g].summary);
    fputs("\nOptions (accepted anywhere on the line):\n", f);
    args_print_options(f, global_opts);
    fputs("\nAuthentication: the token in SAASODOO_TOKEN (an access token or an API key), else\n"
          "the session 'saasodoo login' stored in $XDG_CONFIG_HOME/saasodoo/credentials\n"
          "(default ~/.config/saasodoo/credentials) for the server it signed in to; an expired\n"
          "access token there is renewed with its refresh token.\n",
          f);
    fputs("After 'tenants migrate', --server names the target database server: give the address\n"
          "before the group or as -s there.\n",
          f);
    fputs("\nRun 'saasodoo <group> --help' or 'saasodoo <group> <command> --help' for more.\n\n",
          f);
    print_exit_codes(f);
}

static void print_group_help(FILE *f, size_t g)
{
    fprintf(f, "Usage: saasodoo [options] %s <command> [arguments]\n\n%s: %s\n\nCommands:\n",
            groups[g].name, groups[g].name, groups[g].summary);
    for (const cli_cmd *c = groups[g].cmds; c->verb != NULL; c++)
        fprintf(f, "  %-10s %s\n", c->verb, c->summary);
    fprintf(f, "\nRun 'saasodoo %s <command> --help' for its options.\n", groups[g].name);
}

static void print_cmd_help(FILE *f, const cli_cmd *c)
{
    fprintf(f, "Usage: saasodoo [options] %s%s%s %s\n\n%s\n", c->group, c->verb ? " " : "",
            c->verb ? c->verb : "", c->args_usage, c->summary);
    if (c->opts != NULL && c->opts[0].name != NULL) {
        fputs("\nOptions:\n", f);
        args_print_options(f, c->opts);
    }
    fputs("\nGlobal options:\n", f);
    args_print_options(f, global_opts);
    for (const cli_opt *g = global_opts; g->name != NULL; g++) {
        for (const cli_opt *o = c->opts; o != NULL && o->name != NULL; o++) {
            if (strcmp(g->name, o->name) != 0)
                continue;
            fprintf(f,
                    "After '%s %s', --%s is the command's own option: give the global one "
                    "before the group",
                    c->group, c->verb ? c->verb : "", g->name);
            bool short_shadowed = false;
            for (const cli_opt *l = c->opts; l->name != NULL; l++)
                short_shadowed =
                    short_shadowed || (l->short_name && l->short_name == g->short_name);
            if (g->short_name && !short_shadowed)
                fprintf(f, " or as -%c", g->short_name);
            fputs(".\n", f);
        }
    }
    fputc('\n', f);
    print_exit_codes(f);
}

static int find_group(const char *name)
{
    for (size_t g = 0; g < N_GROUPS; g++)
        if (strcmp(name, groups[g].name) == 0 ||
            (groups[g].alias != NULL && strcmp(name, groups[g].alias) == 0))
            return (int)g;
    return -1;
}

/* Applies the global options found so far to the context. */
static int apply_globals(cli_ctx *ctx, const cli_args *a)
{
    const char *v;

    if ((v = args_value(a, "server")) != NULL) {
        if (v[0] == '\0')
            return cli_usage_error("--server must not be empty");
        ctx->server = v;
        ctx->server_src = SRC_FLAG;
    }
    if ((v = args_value(a, "ca-file")) != NULL) {
        if (v[0] == '\0')
            return cli_usage_error("--ca-file must name a file");
        ctx->ca_file = v;
    }
    if ((v = args_value(a, "output")) != NULL) {
        if (strcmp(v, "table") == 0)
            ctx->output = OUT_TABLE;
        else if (strcmp(v, "json") == 0)
            ctx->output = OUT_JSON;
        else
            return cli_usage_error("--output must be 'table' or 'json', not '%s'", v);
    }
    if ((v = args_value(a, "timeout")) != NULL) {
        char *end;
        errno = 0;
        double s = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0' || !isfinite(s) || s <= 0 || s > 86400 * 365)
            return cli_usage_error("--timeout must be a number of seconds above 0, not '%s'", v);
        ctx->timeout_ms = (int64_t)ceil(s * 1000);
        ctx->timeout_set = true;
    }
    if (ctx->token != NULL) {
        for (const char *p = ctx->token; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                return cli_usage_error("SAASODOO_TOKEN may only hold printable ASCII characters");
    }
    return 0;
}

/* Loads the stored session once; false when there is none or it cannot be read (said). */
static bool have_creds(cli_ctx *ctx)
{
    if (!ctx->creds_loaded) {
        ctx->creds_loaded = true;
        if (creds_load(&ctx->creds) != 1)
            return false;
    }
    return ctx->creds.server != NULL;
}

const char *cli_server(cli_ctx *ctx)
{
    if (ctx->server_src == SRC_DEFAULT && have_creds(ctx))
        return ctx->creds.server;
    return ctx->server;
}

/* The stored session applies when it was made with the server the calls go to. */
static bool creds_apply(cli_ctx *ctx)
{
    return have_creds(ctx) && strcmp(ctx->creds.server, cli_server(ctx)) == 0;
}

const char *cli_ca_file(cli_ctx *ctx)
{
    if (ctx->ca_file != NULL)
        return ctx->ca_file;
    return creds_apply(ctx) ? ctx->creds.ca_file : NULL;
}

static sdo_client *new_client(cli_ctx *ctx, const char *token)
{
    const char *server = cli_server(ctx), *ca = cli_ca_file(ctx);
    sdo_client_config cfg = {.token = token, .ca_file = ca, .tls = false};
    sdo_client *c = sdo_client_new_config(server, &cfg);

    if (c != NULL) {
        sdo_client_set_timeout(c, ctx->timeout_ms);
        return c;
    }
    if (ca != NULL && errno == EINVAL)
        cli_failure("cannot use the CA file %s: it holds no PEM certificate", ca);
    else if (ca != NULL && errno == EFBIG)
        cli_failure("cannot use the CA file %s: larger than %d bytes", ca, SDO_MAX_CA_FILE_BYTES);
    else if (ca != NULL && errno != ENOMEM)
        cli_failure("cannot read the CA file %s: %s", ca, strerror(errno));
    else
        cli_failure("cannot create a client for '%s': %s", server, strerror(errno));
    ctx->client_rc = CLI_EXIT_FAILURE;
    return NULL;
}

sdo_client *cli_anonymous_client(cli_ctx *ctx)
{
    return new_client(ctx, NULL);
}

sdo_client *cli_client(cli_ctx *ctx)
{
    char hint[400];
    const char *token = NULL;
    int rc;

    if (ctx->client != NULL)
        return ctx->client;
    if (ctx->anonymous) {
        cli_set_auth_hint(NULL);
    } else if (ctx->token != NULL) {
        token = ctx->token;
        cli_set_auth_hint("The token in SAASODOO_TOKEN was not accepted: it may have expired "
                          "or been revoked.");
    } else if (creds_apply(ctx)) {
        if ((rc = creds_ensure_fresh(ctx)) != 0) {
            ctx->client_rc = rc;
            return NULL;
        }
        token = ctx->creds.access_token;
        snprintf(hint, sizeof(hint),
                 "The session stored for %s is no longer valid: run 'saasodoo login'.",
                 ctx->creds.server);
        cli_set_auth_hint(hint);
    } else if (have_creds(ctx)) {
        snprintf(hint, sizeof(hint),
                 "Not signed in to %s (the stored session is for %s): run 'saasodoo --server "
                 "%s login' or set SAASODOO_TOKEN.",
                 cli_server(ctx), ctx->creds.server, cli_server(ctx));
        cli_set_auth_hint(hint);
    } else {
        cli_set_auth_hint("Not signed in: run 'saasodoo login' or set SAASODOO_TOKEN.");
    }
    ctx->client = new_client(ctx, token);
    return ctx->client;
}

bool cli_confirm(const char *question)
{
    char answer[16];

    if (!isatty(STDIN_FILENO))
        return false;
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    if (fgets(answer, sizeof(answer), stdin) == NULL)
        return false;
    answer[strcspn(answer, "\r\n")] = '\0';
    return strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0;
}

int cli_resource_name(const char *collection, const char *arg, char *buf, size_t size)
{
    size_t clen = strlen(collection);
    const char *id = arg;

    if (strncmp(arg, collection, clen) == 0 && arg[clen] == '/')
        id = arg + clen + 1;
    if (id[0] == '\0' || strchr(id, '/') != NULL)
        return cli_usage_error("'%s' is not a valid name: expected ID or %s/ID", arg, collection);
    if ((size_t)snprintf(buf, size, "%s/%s", collection, id) >= size)
        return cli_usage_error("'%s' is too long", arg);
    return 0;
}

/* Which of the given options are global: copies them into `globals`. */
static void split_globals(const cli_args *all, cli_args *globals)
{
    for (size_t k = 0; k < all->nopts; k++) {
        for (const cli_opt *o = global_opts; o->name != NULL; o++) {
            if (all->opts[k].opt == o) {
                globals->opts[globals->nopts++] = all->opts[k];
                break;
            }
        }
    }
}

static int run(int argc, char **argv, cli_ctx *ctx)
{
    static cli_args pre, rest, globals; /* large: kept off the stack */
    int i = 1, rc;

    /* Global options, then the group, then more global options, then the command. */
    if ((rc = args_parse(argc, argv, &i, global_opts, NULL, true, &pre)) != 0)
        return rc;
    if (args_flag(&pre, "version")) {
        printf("saasodoo %s\n", SAASODOO_VERSION);
        return CLI_EXIT_OK;
    }
    if (i >= argc) {
        if (args_flag(&pre, "help")) {
            print_top_help(stdout);
            return CLI_EXIT_OK;
        }
        print_top_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *gname = argv[i++];
    if (strcmp(gname, "help") == 0) {
        print_top_help(stdout);
        return CLI_EXIT_OK;
    }
    int g = find_group(gname);
    if (g < 0)
        return cli_usage_error("unknown command or group '%s' (see 'saasodoo --help')", gname);
    cli_set_help_hint(groups[g].name, NULL);
    const cli_cmd *cmd = groups[g].direct;
    if (cmd != NULL)
        goto parse_command;
    if ((rc = args_parse(argc, argv, &i, global_opts, NULL, true, &pre)) != 0)
        return rc;
    if (args_flag(&pre, "version")) {
        printf("saasodoo %s\n", SAASODOO_VERSION);
        return CLI_EXIT_OK;
    }
    if (i >= argc) {
        if (args_flag(&pre, "help")) {
            print_group_help(stdout, (size_t)g);
            return CLI_EXIT_OK;
        }
        print_group_help(stderr, (size_t)g);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[i++];
    for (const cli_cmd *c = groups[g].cmds; c->verb != NULL; c++)
        if (strcmp(c->verb, verb) == 0)
            cmd = c;
    if (cmd == NULL) {
        if (strcmp(verb, "help") == 0) {
            print_group_help(stdout, (size_t)g);
            return CLI_EXIT_OK;
        }
        return cli_usage_error("unknown command '%s %s'", groups[g].name, verb);
    }
    cli_set_help_hint(cmd->group, cmd->verb);

parse_command:
    rest = pre;
    if ((rc = args_parse(argc, argv, &i, global_opts, cmd->opts, false, &rest)) != 0)
        return rc;
    if (args_flag(&rest, "help")) {
        print_cmd_help(stdout, cmd);
        return CLI_EXIT_OK;
    }
    if (args_flag(&rest, "version")) {
        printf("saasodoo %s\n", SAASODOO_VERSION);
        return CLI_EXIT_OK;
    }
    split_globals(&rest, &globals);
    if ((rc = apply_globals(ctx, &globals)) != 0)
        return rc;
    const char *sp = cmd->verb ? " " : "", *verb_text = cmd->verb ? cmd->verb : "";
    if (rest.npos < cmd->min_pos)
        return cli_usage_error("'%s%s%s' needs %s", cmd->group, sp, verb_text, cmd->args_usage);
    if (rest.npos > cmd->max_pos)
        return cli_usage_error("unexpected argument '%s' for '%s%s%s'", rest.pos[cmd->max_pos],
                               cmd->group, sp, verb_text);
    return cmd->run(ctx, &rest);
}

int main(int argc, char **argv)
{
    cli_ctx ctx = {
        .server = CLI_DEFAULT_SERVER,
        .output = OUT_TABLE,
        .timeout_ms = SDO_DEFAULT_TIMEOUT_MS,
    };
    const char *env = getenv("SAASODOO_SERVER");
    if (env != NULL && env[0] != '\0') {
        ctx.server = env;
        ctx.server_src = SRC_ENV;
    }
    env = getenv("SAASODOO_TOKEN");
    if (env != NULL && env[0] != '\0')
        ctx.token = env;
    env = getenv("SAASODOO_TLS_CA");
    if (env != NULL && env[0] != '\0')
        ctx.ca_file = env;

    int rc = run(argc, argv, &ctx);
    sdo_client_free(ctx.client);
    creds_clear(&ctx.creds);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = cli_failure("cannot write the output");
    return rc;
}
