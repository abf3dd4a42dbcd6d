/* `saasodoo users ...` and `saasodoo audit list`: the platform's users and its audit log,
 * through AdminService (administrators only). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define NAME_MAX_LEN 256

static int add_user_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__User *u = (const Saasodoo__V1__User *)m;
    char rbuf[16], created[SDO_TIMESTAMP_BUFSIZE], seen[SDO_TIMESTAMP_BUFSIZE];
    const char *cells[6] = {
        u->name,
        u->email,
        u->role == SAASODOO__V1__USER__ROLE__ROLE_UNSPECIFIED
            ? "-"
            : cli_enum_name(&saasodoo__v1__user__role__descriptor, (int)u->role, rbuf),
        u->disabled ? "yes" : "no",
        cli_time(u->create_time, created),
        cli_time(u->last_sign_in_time, seen),
    };
    return table_add(tbl, cells);
}

static int users_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME",     "EMAIL",   "ROLE",
                                          "DISABLED", "CREATED", "LAST_SIGN_IN"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_ADMIN_SERVICE_LIST_USERS,
        .resp_desc = &saasodoo__v1__list_users_response__descriptor,
        .items_field = "users",
        .noun = "users",
        .ncols = 6,
        .headers = headers,
        .add_row = add_user_row,
    };
    Saasodoo__V1__ListUsersRequest req = SAASODOO__V1__LIST_USERS_REQUEST__INIT;
    return cli_list(ctx, a, &spec, &req.base);
}

static int users_update(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__UpdateUserRequest req = SAASODOO__V1__UPDATE_USER_REQUEST__INIT;
    Saasodoo__V1__User user = SAASODOO__V1__USER__INIT;
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    char name[NAME_MAX_LEN];
    char *paths[3];
    const char *v;
    int rc;

    if ((rc = cli_resource_name("users", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    user.name = name;
    if ((v = args_value(a, "role")) != NULL) {
        if (strcasecmp(v, "admin") == 0)
            user.role = SAASODOO__V1__USER__ROLE__ADMIN;
        else if (strcasecmp(v, "customer") == 0)
            user.role = SAASODOO__V1__USER__ROLE__CUSTOMER;
        else
            return cli_usage_error("--role must be 'admin' or 'customer', not '%s'", v);
        paths[mask.n_paths++] = "role";
    }
    if (args_flag(a, "disable") && args_flag(a, "enable"))
        return cli_usage_error("--disable and --enable cannot be combined");
    if (args_flag(a, "disable") || args_flag(a, "enable")) {
        user.disabled = args_flag(a, "disable");
        paths[mask.n_paths++] = "disabled";
    }
    if ((v = args_value(a, "display-name")) != NULL) {
        user.display_name = (char *)v;
        paths[mask.n_paths++] = "display_name";
    }
    if (mask.n_paths == 0)
        return cli_usage_error("nothing to update: give --role, --disable, --enable or "
                               "--display-name");
    args_string(a, "etag", &user.etag);
    args_string(a, "request-id", &req.request_id);
    mask.paths = paths;
    req.user = &user;
    req.update_mask = &mask;
    return cli_call_show(ctx, SDO_METHOD_ADMIN_SERVICE_UPDATE_USER, &req.base,
                         &saasodoo__v1__user__descriptor);
}

static int add_audit_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__AuditEvent *e = (const Saasodoo__V1__AuditEvent *)m;
    char when[SDO_TIMESTAMP_BUFSIZE];
    const char *cells[6] = {
        cli_time(e->create_time, when),
        e->principal,
        e->method,
        e->target,
        e->result,
        e->client_address,
    };
    return table_add(tbl, cells);
}

static int audit_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"TIME",   "PRINCIPAL", "METHOD",
                                          "TARGET", "RESULT",    "CLIENT"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_ADMIN_SERVICE_LIST_AUDIT_EVENTS,
        .resp_desc = &saasodoo__v1__list_audit_events_response__descriptor,
        .items_field = "audit_events",
        .noun = "audit events",
        .ncols = 6,
        .headers = headers,
        .add_row = add_audit_row,
    };
    Saasodoo__V1__ListAuditEventsRequest req = SAASODOO__V1__LIST_AUDIT_EVENTS_REQUEST__INIT;
    return cli_list(ctx, a, &spec, &req.base);
}

static const cli_opt users_list_opts[] = {
    {"filter", 0, "EXPR", false, "e.g. 'role = ADMIN AND disabled = false'"},
    CLI_OPTS_PAGING("users"),
    CLI_OPTS_END,
};

static const cli_opt users_update_opts[] = {
    {"role", 0, "ROLE", false, "admin or customer"},
    {"disable", 0, NULL, false, "the user can no longer sign in or call the API"},
    {"enable", 0, NULL, false, "undo --disable"},
    {"display-name", 0, "NAME", false, "new display name"},
    {"etag", 0, "ETAG", false, "only update if the user still has this etag"},
    CLI_OPT_REQUEST_ID,
    CLI_OPTS_END,
};

static const cli_opt audit_list_opts[] = {
    {"filter", 0, "EXPR", false,
     "e.g. 'principal = \"users/alice\" AND target = \"tenants/acme\"'"},
    CLI_OPTS_PAGING("events"),
    CLI_OPTS_END,
};

const cli_cmd cli_user_cmds[] = {
    {"users", "list", "[options]", "List the platform's users (admin).", users_list_opts, 0, 0,
     users_list},
    {"users", "update", "USER [options]",
     "Change a user's role, disable or enable them, or rename them (admin); USER is ID or "
     "users/ID.",
     users_update_opts, 1, 1, users_update},
    CLI_CMDS_END,
};

const cli_cmd cli_audit_cmds[] = {
    {"audit", "list", "[options]",
     "List audit events, newest first: who called which method on what, and the result "
     "(admin).",
     audit_list_opts, 0, 0, audit_list},
    CLI_CMDS_END,
};
