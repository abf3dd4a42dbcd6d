"""The store as the database sees it: recorded migrations, plans seeded from the plan
file at every start, and a connection pool bounded by the configuration."""
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import yaml

import support
from support import REPO, unique_id
from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc

MIGRATIONS = sorted((REPO / "server" / "store" / "migrations").glob("*.sql"))
# The plan attributes the issue names, under the plan file's own keys.
PLAN_ATTRIBUTES = ["cpu_millicores", "memory_mb", "storage_gb", "max_db_connections",
                   "backup_retention_days", "price_minor"]


def _fresh_db(pg):
    name = f"store_{uuid.uuid4().hex[:10]}"
    pg.createdb(name)
    return name


def _migration_table(pg, db=None):
    tables = pg.psql("SELECT table_name FROM information_schema.tables "
                     "WHERE table_schema = 'public' AND table_name LIKE '%migration%'", dbname=db).split()
    assert len(tables) == 1, f"expected one table recording migrations, found {tables}"
    return tables[0]


def _plan_rows(pg, db=None):
    out = pg.psql("SELECT row_to_json(p) FROM plans p ORDER BY id", dbname=db)
    return {r["id"]: r for r in (json.loads(line) for line in out.splitlines() if line)}


def test_migrations_are_recorded_once(server_factory, pg):
    assert MIGRATIONS, "no migration files found"
    db = _fresh_db(pg)
    srv = server_factory("migrations", dbname=db)
    srv.start()
    table = _migration_table(pg, db)
    applied = int(pg.psql(f"SELECT count(*) FROM {table}", dbname=db))
    if all(m.stat().st_mtime <= support.SERVER_BIN.stat().st_mtime for m in MIGRATIONS):
        assert applied == len(MIGRATIONS), [m.name for m in MIGRATIONS]
    else:  # the binary predates a migration file: it embeds the ones before it
        assert 1 <= applied <= len(MIGRATIONS)
    assert srv.stop() == 0
    srv.start()
    assert int(pg.psql(f"SELECT count(*) FROM {table}", dbname=db)) == applied, \
        "a restart applied migrations again"
    assert srv.stop() == 0


def test_plans_are_seeded_from_the_plan_file(server):
    wanted = {p["id"]: p for p in yaml.safe_load(support.PLANS_FILE.read_text())["plans"]}
    rows = _plan_rows(server.pg)
    assert set(wanted) <= set(rows), sorted(rows)
    for pid, plan in wanted.items():
        row = rows[pid]
        for attr in PLAN_ATTRIBUTES:
            assert attr in row, f"plans table lacks {attr}: {sorted(row)}"
        for key, value in plan.items():
            if key in row and not isinstance(value, str):
                assert row[key] == value, f"plan {pid} {key}: table {row[key]!r}, file {value!r}"
        assert str(row["database_strategy"]).lower() == plan["database_strategy"].lower()


def test_plan_file_changes_apply_at_the_next_start(server_factory, pg, tmp_path):
    plans = yaml.safe_load(support.PLANS_FILE.read_text())
    db = _fresh_db(pg)
    srv = server_factory("plans", dbname=db)
    srv.start()
    assert srv.stop() == 0

    for p in plans["plans"]:
        if p["id"] == "basic":
            p["price_minor"] = 2345
    starter = dict(plans["plans"][0])
    starter.update(id="starter", display_name="Starter", database_strategy="shared", price_minor=500)
    plans["plans"].append(starter)
    custom = tmp_path / "plans.yaml"
    custom.write_text(yaml.safe_dump(plans))
    support.write_config(srv.config_path, srv.address, pg.url(db), srv.data_dir)
    srv.config_path.write_text(srv.config_path.read_text().replace(str(support.PLANS_FILE), str(custom)))
    srv.start()

    rows = _plan_rows(pg, db)
    assert rows["basic"]["price_minor"] == 2345
    assert "starter" in rows
    stub = tenant_pb2_grpc.TenantServiceStub(srv.channel())
    tid = unique_id("starter")
    stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/starter")), timeout=10)
    t = stub.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert t.plan == "plans/starter" and t.database_strategy == tenant_pb2.SHARED
    assert srv.stop() == 0


def _server_connections(pg, db):
    """The server's connections to db: one line each (pid, application, state, query). The
    sampler's own psql sessions are left out (a finished one may linger while it exits)."""
    return pg.psql(
        "SELECT pid, application_name, state, left(query, 60) FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND application_name <> 'psql'", dbname=db).splitlines()


def test_connections_stay_within_the_pool(server_factory, pg):
    db = _fresh_db(pg)
    srv = server_factory("pool", dbname=db)
    pool_size = 3
    support.write_config(srv.config_path, srv.address, pg.url(db), srv.data_dir, workers=2, pool_size=pool_size)
    srv.start()
    # The creates are what loads the pool here; the tenants need not be provisioned.
    support.park_operations(pg, db)
    stub = tenant_pb2_grpc.TenantServiceStub(srv.channel())
    peak = [0, []]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            conns = _server_connections(pg, db)
            if len(conns) > peak[0]:
                peak[:] = [len(conns), conns]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=32) as ex:
            ops = list(ex.map(lambda i: stub.CreateTenant(tenant_pb2.CreateTenantRequest(
                tenant_id=unique_id("pool"), tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=30),
                range(200)))
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert len(ops) == 200
    print(f"peak of {peak[0]} server connections with pool_size {pool_size}")
    # The pool, plus three connections of their own: the one that listens for operation
    # changes, the health check's, and the one on which the operations engine holds the lock
    # that says this server is alive (docs/provisioning.md).
    assert 1 <= peak[0] <= pool_size + 3, \
        f"peak of {peak[0]} connections with pool_size {pool_size}: " + "\n".join(peak[1])
    assert srv.stop() == 0
