/* The consistency check. Orphans: tenant-shaped databases and roles on registered servers,
 * local clusters, apps and dedicated server records that no live tenant owns. Missing:
 * a live tenant's server, database, role or (when ACTIVE) app. */
#include "ops/fsck.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbstrategy/dbstrategy.h"
#include "store/provisioning.h"
#include "store/records.h"
#include "tenants/validate.h"
#include "util/log.h"

static pthread_mutex_t fsck_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct report {
    Saasodoo__V1__ConsistencyReport *r;
    size_t cap;
} report;

static void add(report *rep, const char *kind, const char *resource, const char *detail,
                bool repaired)
{
    Saasodoo__V1__ConsistencyReport *r = rep->r;
    if (r->n_findings == rep->cap) {
        rep->cap = rep->cap ? rep->cap * 2 : 16;
        void *p = realloc(r->findings, rep->cap * sizeof *r->findings);
        if (!p)
            abort();
        r->findings = p;
    }
    Saasodoo__V1__ConsistencyFinding *f = sdo_malloc(sizeof *f);
    saasodoo__v1__consistency_finding__init(f);
    f->kind = sdo_strdup(kind);
    f->resource = sdo_strdup(resource);
    f->detail = sdo_strdup(detail);
    f->repaired = repaired;
    r->findings[r->n_findings++] = f;
    log_info("msg=\"consistency finding\" kind=%s resource=%s repaired=%d detail=\"%s\"", kind,
             resource, repaired, detail);
}

/* A live tenant as the check sees it. */
typedef struct live {
    tenant_rec t;
    bool busy; /* an operation is running on it */
} live;

static const live *find_live(const live *l, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].t.id, id) == 0)
            return &l[i];
    return NULL;
}

/* Names of tenants the store has ever known: only those can be the platform's orphans (an
 * operator's own databases and roles on a server are none of its business). */
static char **known;
static size_t nknown;

static bool is_known(const char *name)
{
    for (size_t i = 0; i < nknown; i++)
        if (strcmp(known[i], name) == 0)
            return true;
    return false;
}

/* Names from a catalog query that are ids of tenants the store knows. */
static int names(PGconn *c, const char *sql, char ***out, size_t *n)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return -1;
    }
    int rows = PQntuples(r);
    *out = sdo_calloc((size_t)rows, sizeof **out);
    *n = 0;
    for (int i = 0; i < rows; i++) {
        const char *v = PQgetvalue(r, i, 0);
        if (tenant_id_syntax_ok(v) && !tenant_id_reserved(v) && is_known(v))
            (*out)[(*n)++] = sdo_strdup(v);
    }
    PQclear(r);
    return 0;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Each registered server's cluster identity (system identifier), "" when unreadable. */
typedef struct identity {
    char server[72];
    char id[64];
} identity;

static const identity *identities;
static int nidentities;

static const char *identity_of(const char *server)
{
    for (int i = 0; i < nidentities; i++)
        if (strcmp(identities[i].server, server) == 0)
            return identities[i].id;
    return "";
}

/* True only when both servers are known to be different clusters: a copy of a live
 * tenant's database may then be removed. */
static bool surely_distinct(const char *a, const char *b)
{
    const char *ia = identity_of(a), *ib = identity_of(b);
    return ia[0] && ib[0] && strcmp(ia, ib) != 0;
}

static void check_server(const engine_env *env, const dbs_env *dbs, const server_rec *s,
                         const live *l, size_t nl, bool repair, report *rep)
{
    char res[128];
    snprintf(res, sizeof res, "databaseServers/%s", s->id);
    sdo_error err = {0};
    PGconn *c = dbs_connect(s, NULL, &err);
    if (!c) {
        add(rep, "SERVER_UNREACHABLE", res, err.message, false);
        return;
    }
    char **dbsn = NULL, **roles = NULL;
    size_t ndb = 0, nroles = 0;
    names(c, "SELECT datname FROM pg_database WHERE NOT datistemplate", &dbsn, &ndb);
    names(c, "SELECT rolname FROM pg_roles WHERE NOT rolsuper", &roles, &nroles);
    (void)env;
    /* orphans: what no tenant placed here owns */
    for (size_t i = 0; i < ndb; i++) {
        const live *o = find_live(l, nl, dbsn[i]);
        if (o && (o->busy || strcmp(o->t.server, s->id) == 0))
            continue;
        char detail[300];
        /* a tenant living on another server may be this very server under a second name:
         * its copy is removed only when the two are surely different clusters */
        bool may = !o || surely_distinct(s->id, o->t.server);
        if (o)
            snprintf(detail, sizeof detail,
                     "database '%s' is a leftover copy of tenant %s, which "
                     "lives on '%s'%s",
                     dbsn[i], o->t.id, o->t.server,
                     may ? "" : "; the servers cannot be told apart, remove it by hand");
        else
            snprintf(detail, sizeof detail, "database '%s' belongs to no live tenant", dbsn[i]);
        bool fixed = repair && may && dbs_drop(dbs, s->id, dbsn[i], "", &err) == 0;
        add(rep, "ORPHAN_DATABASE", res, detail, fixed);
    }
    for (size_t i = 0; i < nroles; i++) {
        const live *o = find_live(l, nl, roles[i]);
        if (o && (o->busy || strcmp(o->t.server, s->id) == 0))
            continue;
        if (strcmp(roles[i], env->cfg->dbstrategy_template_owner) == 0)
            continue;
        char detail[300];
        bool may = !o || surely_distinct(s->id, o->t.server);
        if (o)
            snprintf(detail, sizeof detail,
                     "role '%s' is a leftover of tenant %s, which lives "
                     "on '%s'%s",
                     roles[i], o->t.id, o->t.server,
                     may ? "" : "; the servers cannot be told apart, remove it by hand");
        else
            snprintf(detail, sizeof detail, "role '%s' belongs to no live tenant", roles[i]);
        bool fixed = repair && may && dbs_drop(dbs, s->id, "", roles[i], &err) == 0;
        add(rep, "ORPHAN_ROLE", res, detail, fixed);
    }
    /* missing: what tenants placed here should have */
    for (size_t i = 0; i < nl; i++) {
        const live *o = &l[i];
        if (o->busy || strcmp(o->t.server, s->id) != 0 || strcmp(o->t.state, "FAILED") == 0)
            continue;
        char tres[96];
        snprintf(tres, sizeof tres, "tenants/%s", o->t.id);
        bool have_db = false, have_role = false;
        for (size_t j = 0; j < ndb; j++)
            have_db |= strcmp(dbsn[j], o->t.id) == 0;
        for (size_t j = 0; j < nroles; j++)
            have_role |= strcmp(roles[j], o->t.id) == 0;
        if (!have_db)
            add(rep, "MISSING_DATABASE", tres, "its database is not on its server", false);
        if (!have_role)
            add(rep, "MISSING_ROLE", tres, "its role is not on its server", false);
    }
    free_names(dbsn, ndb);
    free_names(roles, nroles);
    PQfinish(c);
}

int fsck_run(const engine_env *env, bool repair, Saasodoo__V1__ConsistencyReport **out,
             sdo_error *err)
{
    dbs_env dbs = {env->st, env->cfg, env->key, env->pgc};
    report rep = {0};
    rep.r = sdo_malloc(sizeof *rep.r);
    saasodoo__v1__consistency_report__init(rep.r);
    live *l = NULL;
    size_t nl = 0;
    char **ids = NULL;
    size_t nids = 0;
    bool locked = false;
    int rc;

    PGconn *c = store_acquire(env->st, err);
    if (!c) {
        rc = -(int)err->code;
        goto out;
    }
    pthread_mutex_lock(&fsck_mu); /* one check at a time: `known` is shared */
    locked = true;
    if ((rc = store_tenant_live_ids(env->st, c, &ids, &nids, err)) < 0 ||
        (rc = store_tenant_known_ids(env->st, c, &known, &nknown, err)) < 0) {
        store_release(env->st, c);
        goto out;
    }
    l = sdo_calloc(nids, sizeof *l);
    for (size_t i = 0; i < nids; i++) {
        if (store_tenant_rec_get(env->st, c, env->key, ids[i], false, &l[nl].t, err) < 0)
            continue;
        char target[80];
        snprintf(target, sizeof target, "tenants/%s", ids[i]);
        Saasodoo__V1__Operation *op = NULL;
        l[nl].busy = store_op_running_on(env->st, c, target, &op, err) == 1;
        if (op)
            protobuf_c_message_free_unpacked(&op->base, NULL);
        nl++;
    }
    /* every registered server */
    PGresult *r =
        store_exec(env->st, c, "SELECT id FROM database_servers ORDER BY seq", 0, NULL, err, NULL);
    int nservers = r ? PQntuples(r) : 0;
    server_rec *servers = sdo_calloc((size_t)nservers, sizeof *servers);
    int ns = 0;
    for (int i = 0; i < nservers; i++)
        if (store_server_get(env->st, c, env->key, PQgetvalue(r, i, 0), &servers[ns], err) == 0)
            ns++;
    PQclear(r);
    store_release(env->st, c);

    identity *ids_of = sdo_calloc((size_t)ns, sizeof *ids_of);
    for (int i = 0; i < ns; i++) {
        sdo_strlcpy(ids_of[i].server, servers[i].id, sizeof ids_of[i].server);
        sdo_error ignored = {0};
        PGconn *ic = dbs_connect(&servers[i], NULL, &ignored);
        if (!ic)
            continue;
        PGresult *ir = PQexec(ic, "SELECT system_identifier::text FROM pg_control_system()");
        if (PQresultStatus(ir) == PGRES_TUPLES_OK && PQntuples(ir) == 1)
            sdo_strlcpy(ids_of[i].id, PQgetvalue(ir, 0, 0), sizeof ids_of[i].id);
        PQclear(ir);
        PQfinish(ic);
    }
    identities = ids_of;
    nidentities = ns;

    for (int i = 0; i < ns; i++) {
        const server_rec *s = &servers[i];
        char res[128];
        snprintf(res, sizeof res, "databaseServers/%s", s->id);
        if (strcmp(s->kind, "DEDICATED") == 0) {
            const live *o = find_live(l, nl, s->tenant);
            if (!o || (!o->busy && strcmp(o->t.server, s->id) != 0)) {
                bool fixed = repair && dbs_dedicated.unplace(&dbs, s->tenant, s->id, err) == 0;
                add(&rep, "ORPHAN_SERVER_RECORD", res,
                    "a dedicated server whose tenant is gone or lives elsewhere", fixed);
                continue;
            }
            bool running = false;
            if (s->cluster[0] && !pgc_exists(env->pgc, s->cluster, &running)) {
                add(&rep, "MISSING_SERVER", res, "its cluster folder is gone", false);
                continue;
            }
            if (!running) /* a suspended tenant's cluster is stopped on purpose */
                continue;
        }
        check_server(env, &dbs, s, l, nl, repair, &rep);
    }
    for (size_t i = 0; i < nl; i++) {
        bool known = false;
        for (int j = 0; j < ns; j++)
            known |= strcmp(servers[j].id, l[i].t.server) == 0;
        if (l[i].t.server[0] && !known && !l[i].busy) {
            char tres[96];
            snprintf(tres, sizeof tres, "tenants/%s", l[i].t.id);
            add(&rep, "MISSING_SERVER", tres, "its database server is not registered", false);
        }
    }
    /* local clusters with no server record */
    char **clusters = NULL;
    size_t ncl = 0;
    if (pgc_list(env->pgc, &clusters, &ncl, err) == 0) {
        for (size_t i = 0; i < ncl; i++) {
            bool owned = false;
            for (int j = 0; j < ns; j++)
                owned |= strcmp(servers[j].cluster, clusters[i]) == 0;
            const live *o = find_live(l, nl, clusters[i]);
            if (owned || (o && o->busy) || !is_known(clusters[i]))
                continue;
            char res[96];
            snprintf(res, sizeof res, "clusters/%s", clusters[i]);
            bool fixed = repair && pgc_remove(env->pgc, clusters[i], err) == 0;
            add(&rep, "ORPHAN_CLUSTER", res, "a local PostgreSQL cluster no server record names",
                fixed);
        }
        free_names(clusters, ncl);
    }
    /* apps */
    char **apps = NULL;
    size_t napps = 0;
    if (env->rt->ops->list(env->rt, &apps, &napps, err) == 0) {
        for (size_t i = 0; i < napps; i++) {
            const live *o = find_live(l, nl, apps[i]);
            if (o)
                continue;
            char res[96];
            snprintf(res, sizeof res, "apps/%s", apps[i]);
            bool fixed = repair && env->rt->ops->remove(env->rt, apps[i], err) == 0;
            add(&rep, "ORPHAN_APP", res, "an app whose tenant is gone", fixed);
        }
        free_names(apps, napps);
    }
    if (env->rt->ops->enabled(env->rt)) {
        for (size_t i = 0; i < nl; i++) {
            if (l[i].busy || strcmp(l[i].t.state, "ACTIVE") != 0)
                continue;
            rt_status st = {0};
            env->rt->ops->status(env->rt, l[i].t.id, &st);
            if (!st.running) {
                char tres[96];
                snprintf(tres, sizeof tres, "tenants/%s", l[i].t.id);
                add(&rep, "MISSING_APP", tres, "the tenant is ACTIVE but its app is not running",
                    false);
            }
        }
    }
    identities = NULL;
    nidentities = 0;
    free(ids_of);
    rep.r->tenants_checked = (int32_t)nl;
    rep.r->servers_checked = ns;
    rep.r->check_time = ts_from_us(sdo_now_us());
    for (int i = 0; i < ns; i++)
        server_rec_free(&servers[i]);
    free(servers);
    rc = 0;
out:
    for (size_t i = 0; i < nl; i++)
        tenant_rec_free(&l[i].t);
    free(l);
    free_names(ids, nids);
    if (locked) {
        free_names(known, nknown);
        known = NULL;
        nknown = 0;
        pthread_mutex_unlock(&fsck_mu);
    }
    if (rc < 0) {
        protobuf_c_message_free_unpacked(&rep.r->base, NULL);
        return rc;
    }
    *out = rep.r;
    return 0;
}
