/* saasodoo.v1.AdminService: database servers and the consistency check. Users and the audit
 * log arrive with identity and answer UNIMPLEMENTED until then. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/filter.h"
#include "api/handlers.h"
#include "api/pagination.h"
#include "dbstrategy/dbstrategy.h"
#include "ops/fsck.h"
#include "store/provisioning.h"
#include "tenants/validate.h"

#define SERVER_CAPACITY_DEFAULT 100

static const char *const server_filter_fields[] = {"kind", "accepting_tenants", NULL};

static int list_servers(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__ListDatabaseServersRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    list_request lr;
    int accepting = -1;
    if (list_request_parse("servers", "", req->page_size, req->page_token, req->filter,
                           server_filter_fields, &lr, err) < 0 ||
        filter_bool(&lr.filter, "accepting_tenants", &accepting, err) < 0)
        return -1;
    const char *kind = filter_get(&lr.filter, "kind");
    if (kind && strcmp(kind, "SHARED") != 0 && strcmp(kind, "DEDICATED") != 0)
        return sdo_fail_field(err, "filter", "filter: kind must be SHARED or DEDICATED");
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    Saasodoo__V1__DatabaseServer **items = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc = store_server_list(app->st, c, kind, accepting, lr.key, lr.limit, &items, &n, &last,
                               &more, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    Saasodoo__V1__ListDatabaseServersResponse *out = sdo_malloc(sizeof *out);
    saasodoo__v1__list_database_servers_response__init(out);
    out->database_servers = items;
    out->n_database_servers = n;
    out->next_page_token = page_token_next(more, last, lr.scope);
    *resp = &out->base;
    return 0;
}

/* The identity of a PostgreSQL cluster: its system identifier when the role may read it,
 * else "" (then only host and port tell servers apart). */
static void cluster_identity(PGconn *c, char *out, size_t outsz)
{
    out[0] = 0;
    PGresult *r = PQexec(c, "SELECT system_identifier::text FROM pg_control_system()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        sdo_strlcpy(out, PQgetvalue(r, 0, 0), outsz);
    PQclear(r);
}

/* Refuses to register a cluster that is already registered under another id: the
 * platform would take one server's tenants for the other's orphans. */
static int refuse_alias(sdo_app *app, const char *id, const char *host, int port,
                        const char *identity, sdo_error *err)
{
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -(int)err->code;
    PGresult *r =
        store_exec(app->st, c, "SELECT id FROM database_servers ORDER BY seq", 0, NULL, err, NULL);
    int rc = r ? 0 : -(int)err->code;
    for (int i = 0; r && rc == 0 && i < PQntuples(r); i++) {
        server_rec s = {0};
        if (store_server_get(app->st, c, app->key, PQgetvalue(r, i, 0), &s, err) < 0)
            continue;
        bool same = strcmp(s.host, host) == 0 && s.port == port;
        if (!same && identity[0]) {
            sdo_error ignored = {0};
            PGconn *o = dbs_connect(&s, NULL, &ignored);
            if (o) {
                char other[64];
                cluster_identity(o, other, sizeof other);
                same = strcmp(other, identity) == 0;
                PQfinish(o);
            }
        }
        if (same)
            rc = sdo_fail(err, SDO_ALREADY_EXISTS,
                          "this PostgreSQL server is already registered as "
                          "'databaseServers/%s'; one server cannot have two names (%s)",
                          s.id, id);
        server_rec_free(&s);
    }
    PQclear(r);
    store_release(app->st, c);
    return rc;
}

/* Connects with the given conninfo and checks the role may create databases and roles;
 * identity receives the cluster's identity (see cluster_identity). */
static int probe_server(const char *id, const char *conninfo, char *identity, size_t idsz,
                        sdo_error *err)
{
    server_rec s = {0};
    sdo_strlcpy(s.id, id, sizeof s.id);
    s.admin_conninfo = (char *)conninfo;
    PGconn *c = dbs_connect(&s, NULL, err);
    if (!c) {
        char why[400];
        sdo_strlcpy(why, err->message, sizeof why);
        return sdo_fail(err, SDO_FAILED_PRECONDITION, "%s; check admin_conninfo", why);
    }
    cluster_identity(c, identity, idsz);
    PGresult *r = PQexec(c, "SELECT rolsuper OR (rolcreatedb AND rolcreaterole) FROM pg_roles"
                            " WHERE rolname = current_user");
    bool ok =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    PQfinish(c);
    if (!ok)
        return sdo_fail(err, SDO_FAILED_PRECONDITION,
                        "the role of admin_conninfo may not create databases and roles on "
                        "database server '%s'; use a superuser or a role with CREATEDB "
                        "CREATEROLE",
                        id);
    return 0;
}

static int create_server(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CreateDatabaseServerRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__DatabaseServer *d = req->database_server;
    if (tenant_id_validate(req->database_server_id, "database_server_id", err) < 0)
        return -1;
    if (!d)
        return sdo_fail_field(err, "database_server",
                              "database_server is required (host, port, admin_conninfo)");
    if (!d->host[0] || strlen(d->host) > 253)
        return sdo_fail_field(err, "database_server.host",
                              "database_server.host is required: where tenant apps reach the "
                              "server (a host name or address)");
    if (d->port < 1 || d->port > 65535)
        return sdo_fail_field(err, "database_server.port",
                              "database_server.port %d must be between 1 and 65535", d->port);
    if (!d->admin_conninfo[0])
        return sdo_fail_field(err, "database_server.admin_conninfo",
                              "database_server.admin_conninfo is required: a libpq conninfo "
                              "of a role that may create databases and roles");
    if (d->kind == SAASODOO__V1__DATABASE_SERVER__KIND__DEDICATED)
        return sdo_fail_field(err, "database_server.kind",
                              "dedicated servers are made by the platform for their tenant; "
                              "register shared servers only");
    if (d->capacity < 0)
        return sdo_fail_field(err, "database_server.capacity",
                              "database_server.capacity must not be negative");
    char identity[64];
    if (probe_server(req->database_server_id, d->admin_conninfo, identity, sizeof identity, err) <
            0 ||
        refuse_alias(app, req->database_server_id, d->host, d->port, identity, err) < 0)
        return -1;
    server_rec s = {0};
    sdo_strlcpy(s.id, req->database_server_id, sizeof s.id);
    sdo_strlcpy(s.kind, "SHARED", sizeof s.kind);
    sdo_strlcpy(s.host, d->host, sizeof s.host);
    s.port = d->port;
    s.capacity = d->capacity ? d->capacity : SERVER_CAPACITY_DEFAULT;
    s.accepting = true; /* new servers take tenants; drain them with UpdateDatabaseServer */
    s.admin_conninfo = d->admin_conninfo;
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    int rc = store_server_insert(app->st, c, app->key, &s, d->display_name, err);
    Saasodoo__V1__DatabaseServer *out = NULL;
    if (rc == 0)
        rc = store_server_message(app->st, c, s.id, &out, err);
    store_release(app->st, c);
    if (rc < 0)
        return -1;
    dbs_env dbs = {app->st, app->cfg, app->key, app->pgc};
    sdo_error ignored = {0};
    dbs_close_public(&dbs, &s, &ignored);
    *resp = &out->base;
    return 0;
}

static int update_server(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__UpdateDatabaseServerRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    const Saasodoo__V1__DatabaseServer *d = req->database_server;
    char id[72];
    if (!d)
        return sdo_fail_field(err, "database_server", "database_server is required");
    if (resource_name_parse(d->name, "databaseServers", "database_server.name", id, sizeof id,
                            err) < 0)
        return -1;
    if (!req->update_mask || req->update_mask->n_paths == 0)
        return sdo_fail_field(err, "update_mask",
                              "update_mask is required: display_name, capacity, "
                              "accepting_tenants");
    const char *display = NULL;
    int capacity = -1, accepting = -1;
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
        const char *p = req->update_mask->paths[i];
        if (strcmp(p, "display_name") == 0)
            display = d->display_name;
        else if (strcmp(p, "capacity") == 0)
            capacity = d->capacity;
        else if (strcmp(p, "accepting_tenants") == 0)
            accepting = d->accepting_tenants ? 1 : 0;
        else
            return sdo_fail_field(err, "update_mask",
                                  "update_mask path '%.64s' cannot be changed; mutable fields: "
                                  "display_name, capacity, accepting_tenants",
                                  p);
    }
    if (capacity < -1 || (capacity == -1 && d->capacity < 0))
        return sdo_fail_field(err, "database_server.capacity", "capacity must not be negative");
    int64_t version = -1;
    if (d->etag[0] && (d->etag[0] != 'v' || (version = strtoll(d->etag + 1, NULL, 10)) <= 0))
        return sdo_fail_field(err, "database_server.etag", "etag '%.40s' is not valid", d->etag);
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    server_rec cur = {0};
    int rc = store_server_get(app->st, c, app->key, id, &cur, err);
    if (rc == 0 && strcmp(cur.kind, "DEDICATED") == 0)
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "database server '%s' is a tenant's dedicated server, managed by the "
                      "platform",
                      id);
    if (rc == 0) {
        rc = store_server_update(app->st, c, id, version, display, capacity, accepting, err);
        if (rc == 0)
            rc = sdo_fail(err, SDO_ABORTED,
                          "etag '%s' is stale: the server changed since you read it", d->etag);
        else if (rc > 0)
            rc = 0;
    }
    Saasodoo__V1__DatabaseServer *out = NULL;
    if (rc == 0)
        rc = store_server_message(app->st, c, id, &out, err);
    store_release(app->st, c);
    server_rec_free(&cur);
    if (rc < 0)
        return -1;
    *resp = &out->base;
    return 0;
}

static int delete_server(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__DeleteDatabaseServerRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    sdo_error *err = &ctx->err;
    char id[72];
    if (resource_name_parse(req->name, "databaseServers", "name", id, sizeof id, err) < 0)
        return -1;
    PGconn *c = store_acquire(app->st, err);
    if (!c)
        return -1;
    server_rec cur = {0};
    int rc = store_server_get(app->st, c, app->key, id, &cur, err);
    if (rc == 0 && strcmp(cur.kind, "DEDICATED") == 0)
        rc = sdo_fail(err, SDO_FAILED_PRECONDITION,
                      "database server '%s' is a tenant's dedicated server; it goes with its "
                      "tenant",
                      id);
    if (rc == 0)
        rc = store_server_delete(app->st, c, id, false, err);
    store_release(app->st, c);
    server_rec_free(&cur);
    if (rc < 0)
        return -1;
    Google__Protobuf__Empty *out = sdo_malloc(sizeof *out);
    google__protobuf__empty__init(out);
    *resp = &out->base;
    return 0;
}

static int check_consistency(rpc_ctx *ctx, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
    const Saasodoo__V1__CheckConsistencyRequest *req = (const void *)msg;
    sdo_app *app = ctx->app;
    engine_env env = {
        .st = app->st, .cfg = app->cfg, .rt = app->rt, .key = app->key, .pgc = app->pgc};
    Saasodoo__V1__ConsistencyReport *out = NULL;
    if (fsck_run(&env, req->repair, &out, &ctx->err) < 0)
        return -1;
    *resp = &out->base;
    return 0;
}

const rpc_handler admin_handlers[] = {
    {"ListUsers", RPC_UNARY, admin_list_users, NULL, NULL},
    {"UpdateUser", RPC_UNARY, admin_update_user, NULL, NULL},
    {"ListAuditEvents", RPC_UNARY, admin_list_audit_events, NULL, NULL},
    {"ListDatabaseServers", RPC_UNARY, list_servers, NULL, NULL},
    {"CreateDatabaseServer", RPC_UNARY, create_server, NULL, NULL},
    {"UpdateDatabaseServer", RPC_UNARY, update_server, NULL, NULL},
    {"DeleteDatabaseServer", RPC_UNARY, delete_server, NULL, NULL},
    {"CheckConsistency", RPC_UNARY, check_consistency, NULL, NULL},
    {NULL, 0, NULL, NULL, NULL},
};
