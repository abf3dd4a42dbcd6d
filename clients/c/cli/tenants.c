/* `saasodoo tenants ...`: create, get, list, update, delete, suspend, resume and migrate
 * tenants through TenantService. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define NAME_MAX_LEN 256
#define MAX_LABELS 64

/* Fills `entries`/`ptrs` from the --label k=v options. Returns 0 or CLI_EXIT_USAGE. */
static int parse_labels(const cli_args *a, Saasodoo__V1__Tenant__LabelsEntry *entries,
                        Saasodoo__V1__Tenant__LabelsEntry **ptrs, char (*keys)[NAME_MAX_LEN],
                        size_t *n)
{
    const char *vals[MAX_LABELS + 1];
    size_t count = args_values(a, "label", vals, MAX_LABELS + 1);

    if (count > MAX_LABELS)
        return cli_usage_error("at most %d --label options", MAX_LABELS);
    for (size_t i = 0; i < count; i++) {
        const char *eq = strchr(vals[i], '=');
        if (eq == NULL || eq == vals[i])
            return cli_usage_error("--label must look like KEY=VALUE, not '%s'", vals[i]);
        size_t klen = (size_t)(eq - vals[i]);
        if (klen >= NAME_MAX_LEN)
            return cli_usage_error("label key in '%s' is too long", vals[i]);
        memcpy(keys[i], vals[i], klen);
        keys[i][klen] = '\0';
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[j], keys[i]) == 0)
                return cli_usage_error("label '%s' given more than once", keys[i]);
        saasodoo__v1__tenant__labels_entry__init(&entries[i]);
        entries[i].key = keys[i];
        entries[i].value = (char *)(eq + 1);
        ptrs[i] = &entries[i];
    }
    *n = count;
    return 0;
}

static int tenants_create(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CreateTenantRequest req = SAASODOO__V1__CREATE_TENANT_REQUEST__INIT;
    Saasodoo__V1__Tenant tenant = SAASODOO__V1__TENANT__INIT;
    Saasodoo__V1__Tenant__LabelsEntry entries[MAX_LABELS], *ptrs[MAX_LABELS];
    static char keys[MAX_LABELS][NAME_MAX_LEN];
    char name[NAME_MAX_LEN], plan[NAME_MAX_LEN], owner[NAME_MAX_LEN];
    const char *v;
    size_t nlabels = 0;
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.tenant_id = name + strlen("tenants/");
    if ((v = args_value(a, "plan")) == NULL)
        return cli_usage_error("'tenants create' needs --plan PLAN");
    if ((rc = cli_resource_name("plans", v, plan, sizeof(plan))) != 0)
        return rc;
    tenant.plan = plan;
    if ((v = args_value(a, "owner")) != NULL) {
        if ((rc = cli_resource_name("users", v, owner, sizeof(owner))) != 0)
            return rc;
        tenant.owner = owner;
    }
    args_string(a, "display-name", &tenant.display_name);
    args_string(a, "odoo-version", &tenant.odoo_version);
    if ((rc = parse_labels(a, entries, ptrs, keys, &nlabels)) != 0)
        return rc;
    tenant.n_labels = nlabels;
    tenant.labels = ptrs;
    req.tenant = &tenant;
    args_string(a, "request-id", &req.request_id);
    return cli_call_operation(ctx, a, SDO_METHOD_TENANT_SERVICE_CREATE_TENANT, &req.base);
}

static int tenants_get(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__GetTenantRequest req = SAASODOO__V1__GET_TENANT_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    return cli_call_show(ctx, SDO_METHOD_TENANT_SERVICE_GET_TENANT, &req.base,
                         &saasodoo__v1__tenant__descriptor);
}

static int add_tenant_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__Tenant *t = (const Saasodoo__V1__Tenant *)m;
    char ebuf[16], tbuf[SDO_TIMESTAMP_BUFSIZE];
    const char *cells[5] = {
        t->name,
        cli_enum_name(&saasodoo__v1__tenant__state__descriptor, (int)t->state, ebuf),
        t->plan,
        t->owner,
        cli_time(t->create_time, tbuf),
    };
    return table_add(tbl, cells);
}

static int tenants_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME", "STATE", "PLAN", "OWNER", "CREATED"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_TENANT_SERVICE_LIST_TENANTS,
        .resp_desc = &saasodoo__v1__list_tenants_response__descriptor,
        .items_field = "tenants",
        .noun = "tenants",
        .ncols = 5,
        .headers = headers,
        .add_row = add_tenant_row,
    };
    Saasodoo__V1__ListTenantsRequest req = SAASODOO__V1__LIST_TENANTS_REQUEST__INIT;

    req.show_deleted = args_flag(a, "show-deleted");
    return cli_list(ctx, a, &spec, &req.base);
}

static int tenants_update(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__UpdateTenantRequest req = SAASODOO__V1__UPDATE_TENANT_REQUEST__INIT;
    Saasodoo__V1__Tenant tenant = SAASODOO__V1__TENANT__INIT;
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    Saasodoo__V1__Tenant__LabelsEntry entries[MAX_LABELS], *ptrs[MAX_LABELS];
    static char keys[MAX_LABELS][NAME_MAX_LEN];
    char *paths[2];
    char name[NAME_MAX_LEN];
    const char *v;
    size_t nlabels = 0;
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    tenant.name = name;
    if ((v = args_value(a, "display-name")) != NULL) {
        tenant.display_name = (char *)v;
        paths[mask.n_paths++] = "display_name";
    }
    if ((rc = parse_labels(a, entries, ptrs, keys, &nlabels)) != 0)
        return rc;
    if (nlabels > 0 && args_flag(a, "clear-labels"))
        return cli_usage_error("--label and --clear-labels cannot be combined");
    if (nlabels > 0 || args_flag(a, "clear-labels")) {
        tenant.n_labels = nlabels;
        tenant.labels = ptrs;
        paths[mask.n_paths++] = "labels";
    }
    if (mask.n_paths == 0)
        return cli_usage_error("nothing to update: give --display-name, --label or "
                               "--clear-labels");
    args_string(a, "etag", &tenant.etag);
    mask.paths = paths;
    req.tenant = &tenant;
    req.update_mask = &mask;
    args_string(a, "request-id", &req.request_id);
    return cli_call_show(ctx, SDO_METHOD_TENANT_SERVICE_UPDATE_TENANT, &req.base,
                         &saasodoo__v1__tenant__descriptor);
}

/* Its --server names the target database server and shadows the global --server after the
 * command, so it is looked up by entry (MIGRATE_OPT_SERVER), never by name. */
static const cli_opt migrate_opts[] = {
    {"to", 0, "STRATEGY", false, "shared or dedicated (required)"},
    {"server", 0, "SERVER_ID", false,
     "target database server, ID or databaseServers/ID (--to shared only)"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};
#define MIGRATE_OPT_SERVER (&migrate_opts[1])

static int tenants_migrate(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__MigrateTenantRequest req = SAASODOO__V1__MIGRATE_TENANT_REQUEST__INIT;
    char name[NAME_MAX_LEN], server[NAME_MAX_LEN];
    const char *to = args_value(a, "to"), *v;
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    if (to == NULL)
        return cli_usage_error("'tenants migrate' needs --to shared or --to dedicated");
    if (strcasecmp(to, "shared") == 0)
        req.target_strategy = SAASODOO__V1__DATABASE_STRATEGY__SHARED;
    else if (strcasecmp(to, "dedicated") == 0)
        req.target_strategy = SAASODOO__V1__DATABASE_STRATEGY__DEDICATED;
    else
        return cli_usage_error("--to must be 'shared' or 'dedicated', not '%s'", to);
    if ((v = args_opt_value(a, MIGRATE_OPT_SERVER)) != NULL) {
        if (req.target_strategy != SAASODOO__V1__DATABASE_STRATEGY__SHARED)
            return cli_usage_error("--server can only be given with --to shared: a dedicated "
                                   "server is made for the tenant");
        if ((rc = cli_resource_name("databaseServers", v, server, sizeof(server))) != 0)
            return rc;
        req.target_database_server = server;
    }
    args_string(a, "request-id", &req.request_id);
    return cli_call_operation(ctx, a, SDO_METHOD_TENANT_SERVICE_MIGRATE_TENANT, &req.base);
}

/* delete, suspend and resume: a name in, an Operation out. */
static int tenants_lifecycle(cli_ctx *ctx, const cli_args *a, int which)
{
    Saasodoo__V1__DeleteTenantRequest del = SAASODOO__V1__DELETE_TENANT_REQUEST__INIT;
    Saasodoo__V1__SuspendTenantRequest sus = SAASODOO__V1__SUSPEND_TENANT_REQUEST__INIT;
    Saasodoo__V1__ResumeTenantRequest res = SAASODOO__V1__RESUME_TENANT_REQUEST__INIT;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("tenants", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    switch (which) {
    case 0:
        del.name = name;
        args_string(a, "etag", &del.etag);
        args_string(a, "request-id", &del.request_id);
        return cli_call_operation(ctx, a, SDO_METHOD_TENANT_SERVICE_DELETE_TENANT, &del.base);
    case 1:
        sus.name = name;
        args_string(a, "reason", &sus.reason);
        args_string(a, "request-id", &sus.request_id);
        return cli_call_operation(ctx, a, SDO_METHOD_TENANT_SERVICE_SUSPEND_TENANT, &sus.base);
    default:
        res.name = name;
        args_string(a, "request-id", &res.request_id);
        return cli_call_operation(ctx, a, SDO_METHOD_TENANT_SERVICE_RESUME_TENANT, &res.base);
    }
}

static int tenants_delete(cli_ctx *ctx, const cli_args *a)
{
    return tenants_lifecycle(ctx, a, 0);
}

static int tenants_suspend(cli_ctx *ctx, const cli_args *a)
{
    return tenants_lifecycle(ctx, a, 1);
}

static int tenants_resume(cli_ctx *ctx, const cli_args *a)
{
    return tenants_lifecycle(ctx, a, 2);
}

static const cli_opt create_opts[] = {
    {"plan", 0, "PLAN", false, "plan, as NAME or plans/NAME (required)"},
    {"display-name", 0, "NAME", false, "name shown to people"},
    {"owner", 0, "USER", false, "owner, as users/NAME (default: the caller)"},
    {"odoo-version", 0, "VERSION", false, "Odoo major version, e.g. 17.0"},
    {"label", 0, "KEY=VALUE", true, "label to set; repeat for more"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt list_opts[] = {
    {"filter", 0, "EXPR", false, "e.g. 'state = ACTIVE AND plan = \"plans/basic\"'"},
    CLI_OPTS_PAGING("tenants"),
    {"show-deleted", 0, NULL, false, "include DELETED tenants"},
    CLI_OPTS_END,
};

static const cli_opt update_opts[] = {
    {"display-name", 0, "NAME", false, "new display name"},
    {"label", 0, "KEY=VALUE", true, "replaces all labels with the ones given; repeat"},
    {"clear-labels", 0, NULL, false, "remove every label"},
    {"etag", 0, "ETAG", false, "only update if the tenant still has this etag"},
    CLI_OPT_REQUEST_ID,
    CLI_OPTS_END,
};

static const cli_opt delete_opts[] = {
    {"etag", 0, "ETAG", false, "only delete if the tenant still has this etag"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt suspend_opts[] = {
    {"reason", 0, "TEXT", false, "why the tenant is suspended"},
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

static const cli_opt resume_opts[] = {
    CLI_OPT_REQUEST_ID,
    CLI_OPT_WAIT,
    CLI_OPTS_END,
};

const cli_cmd cli_tenant_cmds[] = {
    {"tenants", "create", "ID --plan PLAN [options]",
     "Create a tenant; prints the operation that provisions it.", create_opts, 1, 1,
     tenants_create},
    {"tenants", "get", "ID", "Show one tenant (ID or tenants/ID).", cli_no_opts, 1, 1, tenants_get},
    {"tenants", "list", "[options]", "List tenants.", list_opts, 0, 0, tenants_list},
    {"tenants", "update", "ID [options]",
     "Change a tenant's display name or labels; the update mask follows the options given.",
     update_opts, 1, 1, tenants_update},
    {"tenants", "delete", "ID [options]", "Delete a tenant; prints the operation.", delete_opts, 1,
     1, tenants_delete},
    {"tenants", "suspend", "ID [options]", "Suspend a tenant; prints the operation.", suspend_opts,
     1, 1, tenants_suspend},
    {"tenants", "resume", "ID [options]", "Resume a suspended tenant; prints the operation.",
     resume_opts, 1, 1, tenants_resume},
    {"tenants", "migrate", "ID --to shared|dedicated [options]",
     "Move a tenant's database (shared, dedicated, another server); prints the operation.",
     migrate_opts, 1, 1, tenants_migrate},
    CLI_CMDS_END,
};
