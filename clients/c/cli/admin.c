/* `saasodoo admin ...`: platform administration through AdminService; `fsck` runs the
 * consistency check and exits non-zero while findings remain unrepaired. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int add_finding_row(cli_table *tbl, const Saasodoo__V1__ConsistencyFinding *f)
{
    const char *cells[4] = {f->kind, f->resource, f->detail, f->repaired ? "yes" : "no"};
    return table_add(tbl, cells);
}

/* The findings as a table, then "N findings (M repaired), T tenants and S servers checked". */
static int print_report(const Saasodoo__V1__ConsistencyReport *r, size_t repaired)
{
    static const char *const headers[] = {"KIND", "RESOURCE", "DETAIL", "REPAIRED"};
    cli_table *tbl = NULL;

    if (r->n_findings > 0) {
        if ((tbl = table_new(4, headers)) == NULL)
            return cli_failure("out of memory");
        for (size_t i = 0; i < r->n_findings; i++) {
            if (add_finding_row(tbl, r->findings[i]) < 0) {
                table_free(tbl);
                return cli_failure("out of memory");
            }
        }
        int rc = table_print(tbl, stdout);
        table_free(tbl);
        if (rc < 0)
            return cli_failure("cannot write the output");
    }
    printf("%zu findings (%zu repaired), %d tenants and %d servers checked\n", r->n_findings,
           repaired, (int)r->tenants_checked, (int)r->servers_checked);
    return cli_flush();
}

static int admin_fsck(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CheckConsistencyRequest req = SAASODOO__V1__CHECK_CONSISTENCY_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    size_t repaired = 0, orphans_left = 0;
    int rc;

    req.repair = args_flag(a, "repair");
    rc = cli_call(ctx, SDO_METHOD_ADMIN_SERVICE_CHECK_CONSISTENCY, &req.base,
                  &saasodoo__v1__consistency_report__descriptor, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    const Saasodoo__V1__ConsistencyReport *r = (const Saasodoo__V1__ConsistencyReport *)m;
    for (size_t i = 0; i < r->n_findings; i++) {
        const Saasodoo__V1__ConsistencyFinding *f = r->findings[i];
        if (f->repaired)
            repaired++;
        else if (f->kind != NULL && strncmp(f->kind, "ORPHAN_", 7) == 0)
            orphans_left++;
    }
    size_t left = r->n_findings - repaired;
    rc = ctx->output == OUT_JSON ? cli_print_json(m, false) : print_report(r, repaired);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (left == 0)
        return CLI_EXIT_OK;
    if (ctx->output == OUT_TABLE && !req.repair && orphans_left > 0)
        fputs("Run 'saasodoo admin fsck --repair' to remove the orphans; missing resources are "
              "only reported.\n",
              stderr);
    return CLI_EXIT_FAILURE;
}

static const cli_opt fsck_opts[] = {
    {"repair", 0, NULL, false, "remove orphans (resources no live tenant owns)"},
    CLI_OPTS_END,
};

const cli_cmd cli_admin_cmds[] = {
    {"admin", "fsck", "[--repair]",
     "Check records against databases, roles, clusters and apps; exit 1 while findings remain "
     "unrepaired.",
     fsck_opts, 0, 0, admin_fsck},
    CLI_CMDS_END,
};
