/* Command-line parsing for the saasodoo tool: long options ("--name value",
 * "--name=value"), short ones ("-o json", "-ojson"), flags, repeated options, "--". */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const cli_opt cli_no_opts[] = {CLI_OPTS_END};

static const cli_opt *find_long(const cli_opt *opts, const char *name, size_t len)
{
    for (; opts != NULL && opts->name != NULL; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

static const cli_opt *find_short(const cli_opt *opts, char c)
{
    for (; opts != NULL && opts->name != NULL; opts++)
        if (opts->short_name == c)
            return opts;
    return NULL;
}

static int add_opt(cli_args *out, const cli_opt *opt, const char *value)
{
    if (!opt->repeat) {
        for (size_t k = 0; k < out->nopts; k++)
            if (out->opts[k].opt == opt)
                return cli_usage_error("--%s given more than once", opt->name);
    }
    if (out->nopts >= CLI_MAX_ARGS)
        return cli_usage_error("too many options (at most %d)", CLI_MAX_ARGS);
    out->opts[out->nopts].opt = opt;
    out->opts[out->nopts].value = value;
    out->nopts++;
    return 0;
}

int args_parse(int argc, char **argv, int *i, const cli_opt *global, const cli_opt *local,
               bool stop_at_positional, cli_args *out)
{
    bool only_positional = false;

    while (*i < argc) {
        const char *arg = argv[*i];
        const cli_opt *opt = NULL;
        const char *value = NULL;
        bool inline_value = false;

        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (stop_at_positional)
                return 0;
            if (out->npos >= CLI_MAX_ARGS)
                return cli_usage_error("too many arguments (at most %d)", CLI_MAX_ARGS);
            out->pos[out->npos++] = arg;
            (*i)++;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            if (stop_at_positional)
                return 0;
            only_positional = true;
            (*i)++;
            continue;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            opt = find_long(local, name, len);
            if (opt == NULL)
                opt = find_long(global, name, len);
            if (opt == NULL)
                return cli_usage_error("unknown option '--%.*s'", (int)len, name);
            if (eq != NULL) {
                if (opt->arg_name == NULL)
                    return cli_usage_error("--%s takes no value", opt->name);
                value = eq + 1;
                inline_value = true;
            }
        } else {
            opt = find_short(local, arg[1]);
            if (opt == NULL)
                opt = find_short(global, arg[1]);
            if (opt == NULL)
                return cli_usage_error("unknown option '-%c'", arg[1]);
            if (arg[2] != '\0') {
                if (opt->arg_name == NULL)
                    return cli_usage_error("-%c takes no value", arg[1]);
                value = arg + 2;
                inline_value = true;
            }
        }
        (*i)++;
        if (opt->arg_name != NULL && !inline_value) {
            if (*i >= argc)
                return cli_usage_error("--%s needs a value (%s)", opt->name, opt->arg_name);
            value = argv[(*i)++];
        }
        int rc = add_opt(out, opt, value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const char *args_value(const cli_args *a, const char *name)
{
    const char *v = NULL;
    for (size_t k = 0; k < a->nopts; k++)
        if (strcmp(a->opts[k].opt->name, name) == 0)
            v = a->opts[k].value;
    return v;
}

const char *args_opt_value(const cli_args *a, const cli_opt *opt)
{
    const char *v = NULL;
    for (size_t k = 0; k < a->nopts; k++)
        if (a->opts[k].opt == opt)
            v = a->opts[k].value;
    return v;
}

bool args_flag(const cli_args *a, const char *name)
{
    for (size_t k = 0; k < a->nopts; k++)
        if (strcmp(a->opts[k].opt->name, name) == 0)
            return true;
    return false;
}

size_t args_values(const cli_args *a, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < a->nopts; k++)
        if (strcmp(a->opts[k].opt->name, name) == 0 && n < max)
            out[n++] = a->opts[k].value;
    return n;
}

int args_int(const cli_args *a, const char *name, int32_t min, int32_t max, int32_t *out)
{
    const char *v = args_value(a, name);
    char *end;

    if (v == NULL)
        return 0;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
        return cli_usage_error("--%s must be a whole number from %d to %d, not '%s'", name,
                               (int)min, (int)max, v);
    *out = (int32_t)n;
    return 0;
}

int args_bool(const cli_args *a, const char *name, bool *out)
{
    const char *v = args_value(a, name);

    if (v == NULL)
        return 0;
    if (strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0)
        *out = false;
    else
        return cli_usage_error("--%s must be 'true' or 'false', not '%s'", name, v);
    return 0;
}

void args_string(const cli_args *a, const char *name, char **field)
{
    const char *v = args_value(a, name);
    if (v != NULL)
        *field = (char *)v;
}

void args_print_options(FILE *f, const cli_opt *opts)
{
    for (; opts != NULL && opts->name != NULL; opts++) {
        char left[64];
        if (opts->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", opts->short_name, opts->name,
                     opts->arg_name ? " " : "", opts->arg_name ? opts->arg_name : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", opts->name, opts->arg_name ? " " : "",
                     opts->arg_name ? opts->arg_name : "");
        fprintf(f, "  %-28s %s\n", left, opts->help);
    }
}
