"""AdminService: database servers (register, list with load, drain, capacity, delete only
when empty, bad input, dedicated servers belong to the platform) and the consistency check
(orphans reported and repaired, missing resources reported)."""
import grpc
import pytest
from google.protobuf import field_mask_pb2

import support
from support import assert_consistent, assert_status, call_error, unique_id
from saasodoo.v1 import admin_pb2, tenant_pb2

DatabaseServer = admin_pb2.DatabaseServer
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def create_server(server, sid, conninfo, host="127.0.0.1", port=None, capacity=0,
                  kind=DatabaseServer.SHARED, display_name=""):
    return support.admin_stub(server).CreateDatabaseServer(admin_pb2.CreateDatabaseServerRequest(
        database_server_id=sid, database_server=DatabaseServer(
            host=host, port=port or 5432, admin_conninfo=conninfo, capacity=capacity, kind=kind,
            display_name=display_name)), timeout=30)


def update_server(server, sid, paths, etag="", **fields):
    return support.admin_stub(server).UpdateDatabaseServer(admin_pb2.UpdateDatabaseServerRequest(
        database_server=DatabaseServer(name=f"databaseServers/{sid}", etag=etag, **fields),
        update_mask=field_mask_pb2.FieldMask(paths=paths)), timeout=10)


def delete_server(server, sid):
    return support.admin_stub(server).DeleteDatabaseServer(
        admin_pb2.DeleteDatabaseServerRequest(name=f"databaseServers/{sid}"), timeout=10)


def list_filtered(server, flt):
    return [s.name for s in support.admin_stub(server).ListDatabaseServers(
        admin_pb2.ListDatabaseServersRequest(filter=flt, page_size=1000), timeout=10).database_servers]


def placed_on(server, tid):
    name = support.get_tenant(server, tid).database_server
    assert name.startswith("databaseServers/"), name
    return name.split("/", 1)[1]


@pytest.fixture(scope="module")
def second_pg(workdir):
    """A PostgreSQL of its own (with the template) to register as a second shared server."""
    cluster = support.make_cluster(workdir / unique_id("second"))
    try:
        yield cluster
    finally:
        cluster.stop(mode="immediate")


def test_register_list_drain_and_delete_a_shared_server(prov, prov_pg, second_pg):
    made = []
    # One tenant on 'local' first, so that an empty second server is the least loaded.
    first, _ = support.create_tenant(prov, prefix="adm")
    made.append(first)
    sid = unique_id("second")
    try:
        s = create_server(prov, sid, second_pg.url("postgres"), port=second_pg.port, capacity=3,
                          display_name="Second")
        assert s.name == f"databaseServers/{sid}" and s.display_name == "Second"
        assert s.kind == DatabaseServer.SHARED and s.capacity == 3 and s.tenant_count == 0
        assert s.accepting_tenants and s.host == "127.0.0.1" and s.port == second_pg.port
        assert s.admin_conninfo == "", "conninfos are input only"
        assert s.etag and s.HasField("create_time")
        assert_status(call_error(create_server, prov, sid, second_pg.url("postgres"), port=second_pg.port),
                      grpc.StatusCode.ALREADY_EXISTS, sid)
        assert prov_pg.psql(f"SELECT count(*) FROM database_servers WHERE id = '{sid}' "
                            f"AND position('postgres' in encode(admin_conninfo_enc, 'escape')) = 0") == "1", \
            "the admin conninfo is kept sealed"

        listed = support.list_servers(prov)
        assert {"local", sid} <= set(listed)
        assert listed["local"].tenant_count >= 1 and listed[sid].tenant_count == 0
        assert f"databaseServers/{sid}" in list_filtered(prov, "kind = SHARED AND accepting_tenants = true")
        assert f"databaseServers/{sid}" not in list_filtered(prov, "kind = DEDICATED")
        assert_status(call_error(list_filtered, prov, "kind = BIG"), INVALID, "filter")
        assert_status(call_error(list_filtered, prov, 'colour = "red"'), INVALID, "colour")

        # Placement takes the least loaded accepting server with room.
        on_second, _ = support.create_tenant(prov, prefix="adm")
        made.append(on_second)
        assert placed_on(prov, on_second) == sid
        assert support.list_servers(prov)[sid].tenant_count == 1
        status, info = prov.standin(on_second)
        assert status == 200 and info["current_user"] == on_second

        # Only an empty server can be deleted.
        assert_status(call_error(delete_server, prov, sid), PRECONDITION, "still holds tenants")

        # Drained: placement skips it, it keeps its tenants.
        drained = update_server(prov, sid, ["accepting_tenants"], accepting_tenants=False)
        assert not drained.accepting_tenants and drained.etag != s.etag and drained.tenant_count == 1
        assert f"databaseServers/{sid}" in list_filtered(prov, "accepting_tenants = false")
        elsewhere, _ = support.create_tenant(prov, prefix="adm")
        made.append(elsewhere)
        assert placed_on(prov, elsewhere) == "local"

        # Full: accepting again but at capacity, placement skips it too.
        full = update_server(prov, sid, ["accepting_tenants", "capacity"], etag=drained.etag,
                             accepting_tenants=True, capacity=1)
        assert full.accepting_tenants and full.capacity == 1
        assert_status(call_error(update_server, prov, sid, ["capacity"], etag=drained.etag, capacity=5),
                      grpc.StatusCode.ABORTED, "stale")
        also, _ = support.create_tenant(prov, prefix="adm")
        made.append(also)
        assert placed_on(prov, also) == "local"
        assert_status(call_error(update_server, prov, sid, ["kind"], kind=DatabaseServer.DEDICATED),
                      INVALID, "update_mask")
        assert_status(call_error(update_server, prov, sid, []), INVALID, "update_mask")
        assert_status(call_error(update_server, prov, sid, ["capacity"], capacity=-1), INVALID, "capacity")
        assert_status(call_error(update_server, prov, "no-such-server", ["capacity"], capacity=1),
                      grpc.StatusCode.NOT_FOUND, "no-such-server")

        # No shared server accepting: CreateTenant is RESOURCE_EXHAUSTED.
        update_server(prov, sid, ["accepting_tenants"], accepting_tenants=False)
        support.set_accepting(prov, "local", False)
        try:
            err = call_error(support.create_tenant, prov, wait=False)
            assert_status(err, grpc.StatusCode.RESOURCE_EXHAUSTED, "no shared database server")
        finally:
            support.set_accepting(prov, "local", True)

        # Emptied, it can go.
        support.lifecycle(prov, "delete", on_second)
        made.remove(on_second)
        assert support.list_servers(prov)[sid].tenant_count == 0
        delete_server(prov, sid)
        assert sid not in support.list_servers(prov)
        assert_status(call_error(delete_server, prov, sid), grpc.StatusCode.NOT_FOUND, sid)
    finally:
        for tid in made:
            support.lifecycle(prov, "delete", tid)
        if sid in support.list_servers(prov):
            delete_server(prov, sid)
    assert_consistent(prov)


def test_bad_database_server_input_is_refused_and_registers_nothing(prov, prov_pg):
    before = set(support.list_servers(prov))
    good = prov_pg.url("postgres")
    for bad_id in ("", "X", "bad_id", "-x", "ab", "a" * 41, "local-"):
        assert_status(call_error(create_server, prov, bad_id, good, port=prov_pg.port), INVALID,
                      "database_server_id")
    assert_status(call_error(support.admin_stub(prov).CreateDatabaseServer,
                             admin_pb2.CreateDatabaseServerRequest(database_server_id=unique_id("s")),
                             timeout=10), INVALID, "database_server")
    assert_status(call_error(create_server, prov, unique_id("s"), good, host="", port=prov_pg.port),
                  INVALID, "host")
    for port in (-1, 65536, 100000):
        assert_status(call_error(create_server, prov, unique_id("s"), good, port=port), INVALID, "port")
    assert_status(call_error(create_server, prov, unique_id("s"), "", port=prov_pg.port), INVALID,
                  "admin_conninfo")
    assert_status(call_error(create_server, prov, unique_id("s"), good, port=prov_pg.port,
                             kind=DatabaseServer.DEDICATED), INVALID, "dedicated")
    assert_status(call_error(create_server, prov, unique_id("s"), good, port=prov_pg.port, capacity=-3),
                  INVALID, "capacity")

    # Conninfos that do not lead to a usable admin role.
    nobody = support.free_port()
    unreachable = f"host=127.0.0.1 port={nobody} dbname=postgres user=postgres connect_timeout=3"
    assert_status(call_error(create_server, prov, unique_id("s"), unreachable, port=nobody),
                  PRECONDITION, "admin_conninfo")
    assert_status(call_error(create_server, prov, unique_id("s"), "this is = not 'a conninfo",
                             port=prov_pg.port), PRECONDITION)
    prov_pg.psql("CREATE ROLE weak_admin LOGIN PASSWORD 'weak-pw'; "
                 "GRANT CONNECT ON DATABASE postgres TO weak_admin")
    try:
        tcp = f"host=127.0.0.1 port={prov_pg.port} dbname=postgres user=weak_admin"
        assert_status(call_error(create_server, prov, unique_id("s"), tcp + " password=wrong",
                                 port=prov_pg.port), PRECONDITION, "admin_conninfo")
        assert_status(call_error(create_server, prov, unique_id("s"), tcp + " password=weak-pw",
                                 port=prov_pg.port), PRECONDITION, "CREATEDB")
    finally:
        prov_pg.psql("REVOKE CONNECT ON DATABASE postgres FROM weak_admin; DROP ROLE weak_admin")

    for bad in ("nope", "databaseServers/", "databaseServers/a/b"):
        assert_status(call_error(support.admin_stub(prov).DeleteDatabaseServer,
                                 admin_pb2.DeleteDatabaseServerRequest(name=bad), timeout=10), INVALID, "name")
    assert_status(call_error(delete_server, prov, "no-such-server"), grpc.StatusCode.NOT_FOUND)
    assert set(support.list_servers(prov)) == before
    assert_consistent(prov)


def test_dedicated_servers_are_managed_by_the_platform(prov):
    tid, _ = support.create_tenant(prov, plan="plans/premium", prefix="dadm")
    sid = f"dedicated-{tid}"
    assert sid in support.list_servers(prov)
    assert_status(call_error(update_server, prov, sid, ["accepting_tenants"], accepting_tenants=True),
                  PRECONDITION, "dedicated")
    assert_status(call_error(update_server, prov, sid, ["capacity"], capacity=10), PRECONDITION, "dedicated")
    assert_status(call_error(delete_server, prov, sid), PRECONDITION, "dedicated")
    assert support.list_servers(prov)[sid].capacity == 1
    # Not a placement target for anyone else.
    other, _ = support.create_tenant(prov, prefix="dadm")
    assert placed_on(prov, other) != sid
    assert_status(call_error(support.lifecycle, prov, "migrate", other, wait=False,
                             target_strategy=tenant_pb2.SHARED,
                             target_database_server=f"databaseServers/{sid}"),
                  INVALID, "not a shared server")
    support.lifecycle(prov, "delete", other)
    support.lifecycle(prov, "delete", tid)
    assert sid not in support.list_servers(prov)
    assert_consistent(prov)


def _kinds(report):
    return sorted((f.kind, f.resource, f.repaired) for f in report.findings)


def test_consistency_check_reports_orphans_and_repairs_them(prov, prov_pg):
    """Leftovers named after a tenant that is gone (deleted here; left behind, say, by a
    hand-made restore): a database and a role on a registered server, a cluster folder, an
    app folder (the runtime learns its apps from their folders when it starts, hence the
    restart). The operator's own databases and roles, whatever their names, are left alone."""
    name, _ = support.create_tenant(prov, prefix="orphan")
    support.lifecycle(prov, "delete", name)
    prov_pg.psql(f'CREATE DATABASE "{name}"', dbname="postgres")
    prov_pg.psql(f'CREATE ROLE "{name}" NOLOGIN')
    mine = unique_id("operator")
    prov_pg.psql(f'CREATE DATABASE "{mine}"', dbname="postgres")
    prov_pg.psql(f'CREATE ROLE "{mine}" NOLOGIN')
    (prov.clusters_dir / name).mkdir(parents=True)
    prov.stop()
    (prov.apps_dir / name).mkdir(parents=True)
    prov.start()
    try:
        _orphans_reported_then_repaired(prov, prov_pg, name)
        assert prov_pg.exists("database", mine) and prov_pg.exists("role", mine)
    finally:
        support.check_consistency(prov, repair=True)
        prov_pg.psql(f'DROP DATABASE IF EXISTS "{mine}"', dbname="postgres")
        prov_pg.psql(f'DROP ROLE IF EXISTS "{mine}"', dbname="postgres")


def _orphans_reported_then_repaired(prov, prov_pg, name):
    rep = support.check_consistency(prov)
    assert rep.tenants_checked >= 0 and rep.servers_checked >= 1 and rep.HasField("check_time")
    found = {(f.kind, f.resource): f for f in rep.findings}
    assert ("ORPHAN_DATABASE", "databaseServers/local") in found, _kinds(rep)
    assert name in found[("ORPHAN_DATABASE", "databaseServers/local")].detail
    assert ("ORPHAN_ROLE", "databaseServers/local") in found, _kinds(rep)
    assert ("ORPHAN_CLUSTER", f"clusters/{name}") in found, _kinds(rep)
    assert ("ORPHAN_APP", f"apps/{name}") in found, _kinds(rep)
    assert len(rep.findings) == 4 and not any(f.repaired for f in rep.findings), _kinds(rep)
    assert prov_pg.exists("database", name), "without repair nothing is removed"

    rep = support.check_consistency(prov, repair=True)
    assert len(rep.findings) == 4 and all(f.repaired for f in rep.findings), _kinds(rep)
    assert not prov_pg.exists("database", name) and not prov_pg.exists("role", name)
    assert not (prov.clusters_dir / name).exists() and not (prov.apps_dir / name).exists()
    assert_consistent(prov)


def test_consistency_check_reports_what_a_tenant_is_missing_and_leaves_it(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="miss")
    prov_pg.psql(f'DROP DATABASE "{tid}" WITH (FORCE)', dbname="postgres")
    prov_pg.psql(f'DROP ROLE "{tid}"', dbname="postgres")
    for repair in (False, True):
        rep = support.check_consistency(prov, repair=repair)
        assert sorted((f.kind, f.resource) for f in rep.findings) == [
            ("MISSING_DATABASE", f"tenants/{tid}"), ("MISSING_ROLE", f"tenants/{tid}")], _kinds(rep)
        assert not any(f.repaired for f in rep.findings), "missing resources are only reported"
    assert support.get_tenant(prov, tid).state == tenant_pb2.Tenant.ACTIVE
    # Deleting it copes with what is already gone.
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


@pytest.fixture
def lone(workdir, server_factory):
    """A server on a PostgreSQL of its own, for a test whose failure could destroy data."""
    cluster = support.make_cluster(workdir / unique_id("lone"))
    srv = server_factory(cluster.root.parent.name, cluster=cluster)
    srv.start()
    try:
        yield srv, cluster
    finally:
        srv.kill()
        srv.cleanup_tenants()
        cluster.stop(mode="immediate")


def test_repair_never_drops_a_live_tenants_database(lone):
    """The same PostgreSQL registered a second time under another id (another host name for
    it, say): each tenant database on it then belongs to no tenant placed on the alias. A
    repair must still not drop a database or role that a live tenant uses."""
    srv, pg = lone
    tid, _ = support.create_tenant(srv, prefix="live")
    # A second name for a registered server is refused, whether it reaches it by the same
    # address or another one (the cluster's system identifier tells).
    for host in ("127.0.0.1", "localhost"):
        alias = unique_id("alias")
        assert_status(call_error(create_server, srv, alias, pg.url("postgres"), port=pg.port,
                                 host=host),
                      grpc.StatusCode.ALREADY_EXISTS, "already registered as 'databaseServers/local'")
        assert alias not in support.list_servers(srv)
    rep = support.check_consistency(srv, repair=True)
    dropped = [what for what in ("database", "role") if not pg.exists(what, tid)]
    assert not dropped, (f"a repair dropped the {' and '.join(dropped)} of live tenant {tid}; "
                         f"findings: {_kinds(rep)}")
    status, info = srv.standin(tid)
    assert status == 200 and info["current_user"] == tid
    support.lifecycle(srv, "delete", tid)
    assert_consistent(srv)
