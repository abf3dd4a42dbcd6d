/* Paged List calls for the saasodoo tool: fetches one page or, with --all, every page,
 * then prints the items as a table or the response as JSON. Works on any List method
 * whose response has a repeated message field and `next_page_token`. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Count and array of the repeated field `f` of `m`. */
static size_t items_of(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       ProtobufCMessage ***items)
{
    size_t n;
    memcpy(&n, (const char *)m + f->quantifier_offset, sizeof(n));
    memcpy(items, (const char *)m + f->offset, sizeof(*items));
    return n;
}

static const char *next_token(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *s;
    memcpy(&s, (const char *)m + f->offset, sizeof(s));
    return s != NULL ? s : "";
}

/* The field `name` of the request `d` when it is a single value of `type`; NULL otherwise. */
static const ProtobufCFieldDescriptor *req_field(const ProtobufCMessageDescriptor *d,
                                                 const char *name, ProtobufCType type)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    return f != NULL && f->type == type && f->label != PROTOBUF_C_LABEL_REPEATED ? f : NULL;
}

int cli_list_options(const cli_args *a, ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *size_f =
        req_field(req->descriptor, "page_size", PROTOBUF_C_TYPE_INT32);
    const ProtobufCFieldDescriptor *filter_f =
        req_field(req->descriptor, "filter", PROTOBUF_C_TYPE_STRING);
    const char *filter = args_value(a, "filter");
    int32_t page_size = 0;
    int rc;

    if (size_f == NULL)
        return cli_failure("%s is not a paged list request", req->descriptor->name);
    if ((rc = args_int(a, "page-size", 0, 100000, &page_size)) != 0)
        return rc;
    memcpy((char *)req + size_f->offset, &page_size, sizeof(page_size));
    if (filter != NULL && filter_f != NULL)
        memcpy((char *)req + filter_f->offset, &filter, sizeof(filter));
    return 0;
}

/* JSON of every page's items in one response shaped like the last page. */
static int print_merged(const ProtobufCMessage *last, const ProtobufCFieldDescriptor *items_f,
                        const ProtobufCFieldDescriptor *token_f, ProtobufCMessage **all,
                        size_t total)
{
    const ProtobufCMessageDescriptor *d = last->descriptor;
    char *copy = malloc(d->sizeof_message);
    static char empty[] = "";
    char *no_token = empty;
    int rc;

    if (copy == NULL)
        return cli_failure("out of memory");
    /* A shallow copy: it borrows every pointer and is never freed as a message. */
    memcpy(copy, last, d->sizeof_message);
    memcpy(copy + items_f->quantifier_offset, &total, sizeof(total));
    memcpy(copy + items_f->offset, &all, sizeof(all));
    memcpy(copy + token_f->offset, &no_token, sizeof(no_token));
    rc = cli_print_json((const ProtobufCMessage *)(const void *)copy, false);
    free(copy);
    return rc;
}

int cli_list(cli_ctx *ctx, const cli_args *a, const cli_list_spec *spec, ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *req_token_f =
        req_field(req->descriptor, "page_token", PROTOBUF_C_TYPE_STRING);
    const ProtobufCFieldDescriptor *items_f =
        protobuf_c_message_descriptor_get_field_by_name(spec->resp_desc, spec->items_field);
    const ProtobufCFieldDescriptor *token_f =
        protobuf_c_message_descriptor_get_field_by_name(spec->resp_desc, "next_page_token");
    ProtobufCMessage **pages = NULL, **all = NULL, **items;
    size_t npages = 0, total = 0;
    bool fetch_all = args_flag(a, "all");
    const char *given = args_value(a, "page-token");
    char *token = NULL;
    cli_table *tbl = NULL;
    char **token_slot;
    int rc;

    if (items_f == NULL || token_f == NULL || items_f->label != PROTOBUF_C_LABEL_REPEATED ||
        items_f->type != PROTOBUF_C_TYPE_MESSAGE || token_f->type != PROTOBUF_C_TYPE_STRING)
        return cli_failure("%s is not a paged list response", spec->resp_desc->name);
    if (req_token_f == NULL)
        return cli_failure("%s is not a paged list request", req->descriptor->name);
    if ((rc = cli_list_options(a, req)) != 0)
        return rc;
    token_slot = (char **)(void *)((char *)req + req_token_f->offset);
    if (given != NULL && (token = strdup(given)) == NULL)
        return cli_failure("out of memory");

    for (;;) {
        static char no_token[] = "";
        ProtobufCMessage *resp = NULL;
        *token_slot = token ? token : no_token;
        rc = cli_call(ctx, spec->method, req, spec->resp_desc, &resp);
        *token_slot = no_token;
        if (rc != CLI_EXIT_OK)
            goto out;
        ProtobufCMessage **p = realloc(pages, (npages + 1) * sizeof(*pages));
        if (p == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            rc = cli_failure("out of memory");
            goto out;
        }
        pages = p;
        pages[npages++] = resp;
        size_t n = items_of(resp, items_f, &items);
        if (n > SIZE_MAX / sizeof(*all) - total) {
            rc = cli_failure("too many %s", spec->noun);
            goto out;
        }
        total += n;
        const char *next = next_token(resp, token_f);
        if (!fetch_all || next[0] == '\0')
            break;
        if (token != NULL && strcmp(token, next) == 0) {
            rc = cli_failure("the server returned the same page token twice");
            goto out;
        }
        if (npages >= CLI_MAX_PAGES) {
            rc = cli_failure("more than %d pages; narrow the listing with --filter", CLI_MAX_PAGES);
            goto out;
        }
        free(token);
        if ((token = strdup(next)) == NULL) {
            rc = cli_failure("out of memory");
            goto out;
        }
    }

    const ProtobufCMessage *last = pages[npages - 1];
    if (ctx->output == OUT_JSON) {
        if (npages == 1) {
            rc = cli_print_json(last, false);
            goto out;
        }
        if (total > 0 && (all = calloc(total, sizeof(*all))) == NULL) {
            rc = cli_failure("out of memory");
            goto out;
        }
        size_t k = 0;
        for (size_t i = 0; i < npages; i++) {
            size_t n = items_of(pages[i], items_f, &items);
            for (size_t j = 0; j < n; j++)
                all[k++] = items[j];
        }
        rc = print_merged(last, items_f, token_f, all, total);
        goto out;
    }

    if ((tbl = table_new(spec->ncols, spec->headers)) == NULL) {
        rc = cli_failure("out of memory");
        goto out;
    }
    for (size_t i = 0; i < npages; i++) {
        size_t n = items_of(pages[i], items_f, &items);
        for (size_t j = 0; j < n; j++) {
            if (spec->add_row(tbl, items[j]) < 0) {
                rc = cli_failure("out of memory");
                goto out;
            }
        }
    }
    if (table_rows(tbl) == 0)
        fprintf(stderr, "No %s found.\n", spec->noun);
    else if (table_print(tbl, stdout) < 0 || fflush(stdout) != 0) {
        rc = cli_failure("cannot write the output");
        goto out;
    }
    if (!fetch_all && next_token(last, token_f)[0] != '\0') {
        char *clean = cli_clean(next_token(last, token_f));
        fprintf(stderr, "More %s: --page-token %s\n", spec->noun, clean ? clean : "?");
        free(clean);
    }
    rc = CLI_EXIT_OK;
out:
    table_free(tbl);
    free(all);
    for (size_t i = 0; i < npages; i++)
        protobuf_c_message_free_unpacked(pages[i], NULL);
    free(pages);
    free(token);
    return rc;
}
