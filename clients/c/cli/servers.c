/* `saasodoo servers ...`: list, register, update, drain and delete the PostgreSQL servers
 * that hold tenant databases, through AdminService. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NAME_MAX_LEN 256
#define CONNINFO_MAX_LEN 4096

/* "host:port", with IPv6 addresses in brackets. */
static void host_port(const Saasodoo__V1__DatabaseServer *s, char *buf, size_t size)
{
    const char *host = s->host != NULL && s->host[0] != '\0' ? s->host : "-";
    if (strchr(host, ':') != NULL)
        snprintf(buf, size, "[%s]:%d", host, (int)s->port);
    else
        snprintf(buf, size, "%s:%d", host, (int)s->port);
}

static int add_server_row(cli_table *tbl, const ProtobufCMessage *m)
{
    const Saasodoo__V1__DatabaseServer *s = (const Saasodoo__V1__DatabaseServer *)m;
    char kbuf[16], addr[NAME_MAX_LEN + 16], load[32];
    const char *kind =
        s->kind == SAASODOO__V1__DATABASE_SERVER__KIND__KIND_UNSPECIFIED
            ? "-"
            : cli_enum_name(&saasodoo__v1__database_server__kind__descriptor, (int)s->kind, kbuf);

    host_port(s, addr, sizeof(addr));
    snprintf(load, sizeof(load), "%d/%d", (int)s->tenant_count, (int)s->capacity);
    const char *cells[6] = {
        s->name, kind, addr, load, s->accepting_tenants ? "yes" : "no", s->tenant,
    };
    return table_add(tbl, cells);
}

static int servers_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME", "KIND",      "HOST:PORT",
                                          "LOAD", "ACCEPTING", "TENANT"};
    static const cli_list_spec spec = {
        .method = SDO_METHOD_ADMIN_SERVICE_LIST_DATABASE_SERVERS,
        .resp_desc = &saasodoo__v1__list_database_servers_response__descriptor,
        .items_field = "database_servers",
        .noun = "database servers",
        .ncols = 6,
        .headers = headers,
        .add_row = add_server_row,
    };
    Saasodoo__V1__ListDatabaseServersRequest req =
        SAASODOO__V1__LIST_DATABASE_SERVERS_REQUEST__INIT;
    return cli_list(ctx, a, &spec, &req.base);
}

/* The --admin-conninfo value; "-" reads one line from standard input instead, so that a
 * password stays off the command line. `buf` holds CONNINFO_MAX_LEN bytes. */
static int admin_conninfo(const char *v, char *buf, const char **out)
{
    if (strcmp(v, "-") != 0) {
        *out = v;
        return 0;
    }
    if (fgets(buf, CONNINFO_MAX_LEN, stdin) == NULL) {
        if (ferror(stdin))
            return cli_failure("cannot read the admin conninfo from standard input: %s",
                               strerror(errno));
        return cli_usage_error("--admin-conninfo -: standard input is empty");
    }
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] != '\n' && !feof(stdin))
        return cli_usage_error("--admin-conninfo -: the line is longer than %d bytes",
                               CONNINFO_MAX_LEN - 2);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    *out = buf;
    return 0;
}

static int servers_create(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__CreateDatabaseServerRequest req =
        SAASODOO__V1__CREATE_DATABASE_SERVER_REQUEST__INIT;
    Saasodoo__V1__DatabaseServer srv = SAASODOO__V1__DATABASE_SERVER__INIT;
    static char conninfo_buf[CONNINFO_MAX_LEN];
    char name[NAME_MAX_LEN];
    const char *v, *conninfo = NULL;
    int32_t port = 0, capacity = 0;
    int rc;

    if ((rc = cli_resource_name("databaseServers", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.database_server_id = name + strlen("databaseServers/");
    if ((v = args_value(a, "host")) == NULL || v[0] == '\0')
        return cli_usage_error("'servers create' needs --host HOST");
    srv.host = (char *)v;
    if (args_value(a, "port") == NULL)
        return cli_usage_error("'servers create' needs --port PORT");
    if ((rc = args_int(a, "port", 1, 65535, &port)) != 0)
        return rc;
    srv.port = port;
    if ((v = args_value(a, "admin-conninfo")) == NULL)
        return cli_usage_error("'servers create' needs --admin-conninfo CONNINFO");
    if ((rc = admin_conninfo(v, conninfo_buf, &conninfo)) != 0)
        return rc;
    if (conninfo[0] == '\0')
        return cli_usage_error("--admin-conninfo must not be empty");
    srv.admin_conninfo = (char *)conninfo;
    if ((rc = args_int(a, "capacity", 1, INT32_MAX, &capacity)) != 0)
        return rc;
    srv.capacity = capacity;
    args_string(a, "display-name", &srv.display_name);
    req.database_server = &srv;
    return cli_call_show(ctx, SDO_METHOD_ADMIN_SERVICE_CREATE_DATABASE_SERVER, &req.base,
                         &saasodoo__v1__database_server__descriptor);
}

/* Sends UpdateDatabaseServer for `srv` with the mask `paths` and prints the result. */
static int update_server(cli_ctx *ctx, Saasodoo__V1__DatabaseServer *srv, char **paths,
                         size_t npaths)
{
    Saasodoo__V1__UpdateDatabaseServerRequest req =
        SAASODOO__V1__UPDATE_DATABASE_SERVER_REQUEST__INIT;
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;

    mask.paths = paths;
    mask.n_paths = npaths;
    req.database_server = srv;
    req.update_mask = &mask;
    return cli_call_show(ctx, SDO_METHOD_ADMIN_SERVICE_UPDATE_DATABASE_SERVER, &req.base,
                         &saasodoo__v1__database_server__descriptor);
}

static int servers_update(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DatabaseServer srv = SAASODOO__V1__DATABASE_SERVER__INIT;
    char name[NAME_MAX_LEN];
    char *paths[3];
    size_t npaths = 0;
    const char *v;
    int32_t capacity = 0;
    bool accepting = false;
    int rc;

    if ((rc = cli_resource_name("databaseServers", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    srv.name = name;
    if ((v = args_value(a, "display-name")) != NULL) {
        srv.display_name = (char *)v;
        paths[npaths++] = "display_name";
    }
    if (args_value(a, "capacity") != NULL) {
        if ((rc = args_int(a, "capacity", 0, INT32_MAX, &capacity)) != 0)
            return rc;
        srv.capacity = capacity;
        paths[npaths++] = "capacity";
    }
    if (args_value(a, "accepting") != NULL) {
        if ((rc = args_bool(a, "accepting", &accepting)) != 0)
            return rc;
        srv.accepting_tenants = accepting;
        paths[npaths++] = "accepting_tenants";
    }
    if (npaths == 0)
        return cli_usage_error("nothing to update: give --capacity, --accepting or "
                               "--display-name");
    args_string(a, "etag", &srv.etag);
    return update_server(ctx, &srv, paths, npaths);
}

static int servers_drain(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DatabaseServer srv = SAASODOO__V1__DATABASE_SERVER__INIT;
    char name[NAME_MAX_LEN];
    char *paths[1] = {"accepting_tenants"};
    int rc;

    if ((rc = cli_resource_name("databaseServers", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    srv.name = name;
    srv.accepting_tenants = false;
    return update_server(ctx, &srv, paths, 1);
}

static int servers_delete(cli_ctx *ctx, const cli_args *a)
{
    Saasodoo__V1__DeleteDatabaseServerRequest req =
        SAASODOO__V1__DELETE_DATABASE_SERVER_REQUEST__INIT;
    ProtobufCMessage *out = NULL;
    char name[NAME_MAX_LEN];
    int rc;

    if ((rc = cli_resource_name("databaseServers", a->pos[0], name, sizeof(name))) != 0)
        return rc;
    req.name = name;
    rc = cli_call(ctx, SDO_METHOD_ADMIN_SERVICE_DELETE_DATABASE_SERVER, &req.base,
                  &google__protobuf__empty__descriptor, &out);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (ctx->output == OUT_JSON) {
        rc = cli_print_json(out, false);
    } else {
        printf("deleted %s\n", name);
        rc = cli_flush();
    }
    protobuf_c_message_free_unpacked(out, NULL);
    return rc;
}

static const cli_opt list_opts[] = {
    {"filter", 0, "EXPR", false, "e.g. 'kind = SHARED AND accepting_tenants = true'"},
    CLI_OPTS_PAGING("servers"),
    CLI_OPTS_END,
};

static const cli_opt create_opts[] = {
    {"host", 0, "HOST", false, "where tenant apps reach the server (required)"},
    {"port", 0, "PORT", false, "its PostgreSQL port (required)"},
    {"admin-conninfo", 0, "CONNINFO", false,
     "libpq conninfo of a role with CREATEDB and CREATEROLE (required); - reads it from stdin"},
    {"capacity", 0, "N", false, "most tenants it may hold (default 100)"},
    {"display-name", 0, "NAME", false, "name shown to people"},
    CLI_OPTS_END,
};

static const cli_opt update_opts[] = {
    {"capacity", 0, "N", false, "most tenants it may hold (0: no new ones)"},
    {"accepting", 0, "true|false", false, "whether new tenants may be placed on it"},
    {"display-name", 0, "NAME", false, "new display name"},
    {"etag", 0, "ETAG", false, "only update if the server still has this etag"},
    CLI_OPTS_END,
};

const cli_cmd cli_server_cmds[] = {
    {"servers", "list", "[options]",
     "List database servers with their load and whether they accept new tenants.", list_opts, 0, 0,
     servers_list},
    {"servers", "create", "ID --host HOST --port PORT --admin-conninfo CONNINFO [options]",
     "Register a shared PostgreSQL server; the server tests the conninfo first.", create_opts, 1, 1,
     servers_create},
    {"servers", "update", "ID [options]",
     "Change a server's capacity, accepting flag or display name (the mask follows the options).",
     update_opts, 1, 1, servers_update},
    {"servers", "drain", "ID",
     "Stop placing new tenants on a server (update --accepting false); its tenants stay.",
     cli_no_opts, 1, 1, servers_drain},
    {"servers", "delete", "ID", "Remove a server that holds no tenants.", cli_no_opts, 1, 1,
     servers_delete},
    CLI_CMDS_END,
};
