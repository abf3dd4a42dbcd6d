"""MigrateTenant for real: shared -> dedicated -> shared, and between two shared servers
(a second PostgreSQL), with rows written as the tenant before each move present after it;
the source dropped only once the tenant runs on the target; a migration whose copy does not
verify goes back to the source, untouched."""
import grpc
import pytest

import support
from support import assert_consistent, assert_status, call_error, unique_id
from saasodoo.v1 import admin_pb2, operation_pb2, tenant_pb2

Operation = operation_pb2.Operation
Tenant = tenant_pb2.Tenant

SNAPSHOT_SQL = """
SELECT c.relname, (xpath('/row/n/text()', x))[1]::text, (xpath('/row/h/text()', x))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
LATERAL query_to_xml(format('SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) AS h FROM %I t', c.relname), false, true, '') x
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
"""


def snapshot(port, tid, password):
    """{table: (row count, checksum of its rows)} of the tenant's database, read as the
    tenant over TCP."""
    ok, out = support.tcp_login(port, tid, password, tid, SNAPSHOT_SQL)
    assert ok, out
    return {r[0]: (int(r[1]), r[2]) for r in (ln.split("|") for ln in out.splitlines() if ln)}


def write_rows(port, tid, password, n, tag):
    ok, out = support.tcp_login(
        port, tid, password, tid,
        "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL, at timestamptz DEFAULT now());"
        f"INSERT INTO notes (body) SELECT '{tag} ' || g FROM generate_series(1, {n}) g;"
        f"UPDATE res_partner SET email = '{tag}@example.com' WHERE id = 1;"
        "SELECT count(*) FROM notes")
    assert ok, out
    return int(out.splitlines()[-1])


def where(server, tid):
    """(strategy, server id, port apps use) of the tenant now."""
    t = support.get_tenant(server, tid)
    sid = support.server_id(t)
    return tenant_pb2.DatabaseStrategy.Name(t.database_strategy), sid, support.list_servers(server)[sid].port


def assert_serving(server, tid, port):
    status, info = server.standin(tid)
    assert status == 200 and info["current_user"] == tid and info["current_database"] == tid, info
    assert f"--db_port={port}" in server.app_argv(tid)


def migrate(server, tid, strategy, target=""):
    op = support.lifecycle(server, "migrate", tid, target_strategy=strategy,
                           target_database_server=f"databaseServers/{target}" if target else "")
    assert op.kind == Operation.MIGRATE_TENANT and op.result == f"tenants/{tid}"
    assert support.get_tenant(server, tid).state == Tenant.ACTIVE
    return op


def test_shared_to_dedicated_and_back_keeps_every_row(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="mig")
    password = prov.db_password(tid)
    assert where(prov, tid) == ("SHARED", "local", prov_pg.port)
    assert write_rows(prov_pg.port, tid, password, 40, "shared") == 40
    before = snapshot(prov_pg.port, tid, password)
    assert before["notes"][0] == 40 and set(support.TEMPLATE_ROWS) <= set(before)

    migrate(prov, tid, tenant_pb2.DEDICATED)
    strategy, sid, port = where(prov, tid)
    assert (strategy, sid) == ("DEDICATED", f"dedicated-{tid}") and port != prov_pg.port
    assert prov.cluster_running(tid)
    password = prov.db_password(tid)
    assert snapshot(port, tid, password) == before, "the rows written before the move are all there"
    assert_serving(prov, tid, port)
    # The source is gone from the shared server.
    assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
    assert support.list_servers(prov)["local"].tenant_count == int(prov_pg.psql(
        "SELECT count(*) FROM tenants WHERE state <> 'DELETED' AND database_server = 'local'"))
    ok, out = support.tcp_login(port, tid, password, "postgres")
    assert not ok, out
    assert_consistent(prov)

    assert write_rows(port, tid, password, 15, "dedicated") == 55
    before = snapshot(port, tid, password)
    migrate(prov, tid, tenant_pb2.SHARED)
    assert where(prov, tid) == ("SHARED", "local", prov_pg.port)
    password = prov.db_password(tid)
    assert snapshot(prov_pg.port, tid, password) == before
    assert_serving(prov, tid, prov_pg.port)
    assert not (prov.clusters_dir / tid).exists(), "the dedicated cluster is removed after the move"
    assert f"dedicated-{tid}" not in support.list_servers(prov)
    ok, out = support.tcp_login(prov_pg.port, tid, password, support.TEMPLATE_DATABASE)
    assert not ok, out
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


@pytest.fixture(scope="module")
def other_pg(workdir):
    """A second PostgreSQL, to be registered as a second shared server."""
    root = workdir / "prov-other"
    root.mkdir(mode=0o755)
    cluster = support.Postgres(root)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(mode="immediate")


def test_move_between_shared_servers(prov, prov_pg, other_pg):
    tid, _ = support.create_tenant(prov, prefix="mvs")
    password = prov.db_password(tid)
    write_rows(prov_pg.port, tid, password, 25, "first")
    before = snapshot(prov_pg.port, tid, password)

    sid = unique_id("other")
    admin = support.admin_stub(prov)
    admin.CreateDatabaseServer(admin_pb2.CreateDatabaseServerRequest(
        database_server_id=sid, database_server=admin_pb2.DatabaseServer(
            host="127.0.0.1", port=other_pg.port, admin_conninfo=other_pg.url("postgres"), capacity=5)),
        timeout=30)
    try:
        # Full target: refused at once.
        full = support.admin_stub(prov).UpdateDatabaseServer(admin_pb2.UpdateDatabaseServerRequest(
            database_server=admin_pb2.DatabaseServer(name=f"databaseServers/{sid}", capacity=0),
            update_mask=support.field_mask(["capacity"])), timeout=10)
        assert full.capacity == 0
        err = call_error(support.lifecycle, prov, "migrate", tid, wait=False,
                         target_strategy=tenant_pb2.SHARED, target_database_server=f"databaseServers/{sid}")
        assert_status(err, grpc.StatusCode.RESOURCE_EXHAUSTED, sid, "full")
        support.admin_stub(prov).UpdateDatabaseServer(admin_pb2.UpdateDatabaseServerRequest(
            database_server=admin_pb2.DatabaseServer(name=f"databaseServers/{sid}", capacity=5),
            update_mask=support.field_mask(["capacity"])), timeout=10)

        migrate(prov, tid, tenant_pb2.SHARED, target=sid)
        assert where(prov, tid) == ("SHARED", sid, other_pg.port)
        password = prov.db_password(tid)
        assert snapshot(other_pg.port, tid, password) == before
        assert_serving(prov, tid, other_pg.port)
        assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
        assert other_pg.exists("database", tid) and other_pg.exists("role", tid)
        assert support.list_servers(prov)[sid].tenant_count == 1
        # Its role is as closed on the new server as on the old one.
        for db in ("postgres", other_pg.dbname):
            ok, out = support.tcp_login(other_pg.port, tid, password, db)
            assert not ok, f"{db}: {out}"
        assert_consistent(prov)

        # Without a named target, the least loaded other shared server: back to 'local'.
        write_rows(other_pg.port, tid, password, 5, "second")
        before = snapshot(other_pg.port, tid, password)
        migrate(prov, tid, tenant_pb2.SHARED)
        assert where(prov, tid) == ("SHARED", "local", prov_pg.port)
        assert snapshot(prov_pg.port, tid, prov.db_password(tid)) == before
        assert not other_pg.exists("database", tid) and not other_pg.exists("role", tid)
        assert_consistent(prov)
    finally:
        t = support.get_tenant(prov, tid)
        if t.state != Tenant.DELETED:
            support.lifecycle(prov, "delete", tid)
        admin.DeleteDatabaseServer(admin_pb2.DeleteDatabaseServerRequest(name=f"databaseServers/{sid}"),
                                   timeout=10)
    assert_consistent(prov)


def test_a_copy_that_does_not_verify_sends_the_tenant_back_to_its_source(prov, prov_pg):
    """The server is stopped (fault injection) right after the copy; the copy is then changed
    behind its back. After the restart the verification finds the difference, and the
    migration is undone: the tenant runs on its source again, with its data as it was."""
    tid, _ = support.create_tenant(prov, prefix="mbad")
    password = prov.db_password(tid)
    write_rows(prov_pg.port, tid, password, 30, "source")
    before = snapshot(prov_pg.port, tid, password)

    prov.stop()
    prov.start_with_fault("after", "MIGRATE_TENANT", "copy")
    op = support.lifecycle(prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.DEDICATED)
    prov.wait_killed()
    # The tenant is frozen meanwhile: no app, no logins.
    assert prov.app_pid(tid) is None
    ok, out = support.tcp_login(prov_pg.port, tid, password, tid)
    assert not ok and "not permitted to log in" in out, out
    assert prov.cluster_psql(tid, "SELECT count(*) FROM notes", dbname=tid) == "30"
    prov.cluster_psql(tid, "INSERT INTO notes (body) VALUES ('only in the copy')", dbname=tid)
    prov.start()

    done = support.wait_operation(prov, op.name)
    assert done.state == Operation.FAILED, done
    assert done.error.code == grpc.StatusCode.DATA_LOSS.value[0], done.error
    assert "notes" in done.error.message, done.error.message
    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.ACTIVE and t.database_strategy == tenant_pb2.SHARED
    assert support.server_id(t) == "local" and "failed" in t.state_reason, t.state_reason
    assert snapshot(prov_pg.port, tid, prov.db_password(tid)) == before, "the source is untouched"
    assert_serving(prov, tid, prov_pg.port)
    assert not (prov.clusters_dir / tid).exists(), "the half-made target is removed"
    assert f"dedicated-{tid}" not in support.list_servers(prov)
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)


def test_a_cleanup_that_fails_does_not_cost_the_tenant_its_data(prov, prov_pg):
    """Once the tenant runs on the target, the target holds its data. If removing the source
    then fails for good (here the tenant's role owns something outside its database, so it
    cannot be dropped), the tenant must still have its data and serve."""
    tid, _ = support.create_tenant(prov, prefix="mcln")
    password = prov.db_password(tid)
    write_rows(prov_pg.port, tid, password, 30, "precious")
    before = snapshot(prov_pg.port, tid, password)
    pin = f"pin_{unique_id('p').replace('-', '_')}"
    prov_pg.psql(f'CREATE TABLE {pin} (x int); ALTER TABLE {pin} OWNER TO "{tid}"', dbname="postgres")
    try:
        op = support.lifecycle(prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.DEDICATED)
        done = support.wait_operation(prov, op.name)
        t = support.get_tenant(prov, tid)
        strategy, sid, port = where(prov, tid)
        assert t.state == Tenant.ACTIVE, (Operation.State.Name(done.state), done.error.message,
                                          Tenant.State.Name(t.state), t.state_reason)
        assert snapshot(port, tid, prov.db_password(tid)) == before, \
            f"the tenant's data is not on {sid} any more ({done.error.message})"
        assert_serving(prov, tid, port)
    finally:
        prov_pg.psql(f"DROP TABLE {pin}", dbname="postgres")
    # What could not be removed is left to the consistency check, which removes it.
    if prov_pg.exists("role", tid) or prov_pg.exists("database", tid):
        rep = support.check_consistency(prov)
        assert {(f.kind, f.resource) for f in rep.findings} <= {
            ("ORPHAN_ROLE", "databaseServers/local"), ("ORPHAN_DATABASE", "databaseServers/local")} \
            and rep.findings, support.findings(rep)
        assert all(tid in f.detail for f in rep.findings), support.findings(rep)
        support.check_consistency(prov, repair=True)
        assert not prov_pg.exists("role", tid) and not prov_pg.exists("database", tid)
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


def test_a_move_to_the_server_the_tenant_is_on_is_refused_and_touches_nothing(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="msame")
    password = prov.db_password(tid)
    write_rows(prov_pg.port, tid, password, 12, "stay")
    before = snapshot(prov_pg.port, tid, password)
    try:
        op = support.lifecycle(prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.SHARED,
                               target_database_server="databaseServers/local")
    except grpc.RpcError as e:
        assert_status(e, grpc.StatusCode.FAILED_PRECONDITION, "already on database server 'local'")
        op = None
    if op is not None:
        done = support.wait_operation(prov, op.name)
        after = snapshot(prov_pg.port, tid, prov.db_password(tid))
        assert after == before, (f"a move to the server it is on was accepted "
                                 f"({Operation.State.Name(done.state)}) and the tenant's data changed: "
                                 f"{before} -> {after}")
        raise AssertionError(f"a move to the server it is on was accepted: {op.name}")
    assert snapshot(prov_pg.port, tid, password) == before
    support.lifecycle(prov, "delete", tid)
