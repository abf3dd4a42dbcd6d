"""CreateTenant for real: a shared tenant (a database cloned from the template and a login
role on the local PostgreSQL) and a dedicated one (a PostgreSQL cluster of its own), each
served by the stand-in app with the credentials it was given. The tenant's role reaches its
own database and nothing else."""
import pwd
from pathlib import Path

import grpc

import support
from support import TEMPLATE_DATABASE, TEMPLATE_ROWS, assert_consistent, unique_id
from saasodoo.v1 import admin_pb2, operation_pb2, tenant_pb2

Operation = operation_pb2.Operation
Tenant = tenant_pb2.Tenant

REFUSED = ("permission denied", "not permitted", "does not exist", "password authentication failed")


def _refused(ok, out):
    return not ok and any(r in out for r in REFUSED)


def _tables_and_owners(pg_port, tid, password):
    ok, out = support.tcp_login(pg_port, tid, password, tid,
                                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                                "ORDER BY 1")
    assert ok, out
    return dict(ln.split("|") for ln in out.splitlines() if ln)


def _assert_role_reaches_only_its_database(pg, port, tid, password, other_tid):
    """tid's role logs in to its own database over TCP, owns what is in it, and is refused
    by every other database on the same PostgreSQL."""
    ok, out = support.tcp_login(port, tid, password, tid)
    assert ok and out == f"{tid}|{tid}", out
    owners = _tables_and_owners(port, tid, password)
    assert set(TEMPLATE_ROWS) <= set(owners), owners
    assert set(owners.values()) == {tid}, f"everything in the tenant's database is its own: {owners}"
    counts = support.table_counts(port, tid, password, tid, TEMPLATE_ROWS)
    assert counts == TEMPLATE_ROWS, "the database is a clone of the template"
    # It may create what Odoo creates (tables in public) and use temporary tables.
    ok, out = support.tcp_login(port, tid, password, tid,
                                "CREATE TABLE scratch (x int); CREATE TEMP TABLE t (x int); DROP TABLE scratch")
    assert ok, out
    for db in ("postgres", TEMPLATE_DATABASE) + ((pg.dbname,) if pg else ()):
        ok, out = support.tcp_login(port, tid, password, db)
        assert _refused(ok, out), f"the role of {tid} must not reach database {db}: {out}"
    if other_tid:
        ok, out = support.tcp_login(port, tid, password, other_tid)
        assert _refused(ok, out), f"the role of {tid} must not reach {other_tid}'s database: {out}"
    ok, out = support.tcp_login(port, tid, "not-the-password", tid)
    assert not ok and "password authentication failed" in out, out


def _role_attributes(pg_psql, tid):
    out = pg_psql(f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolconnlimit "
                  f"FROM pg_roles WHERE rolname = '{tid}'")
    return out.split("|")


def test_shared_tenant_is_created_step_by_step_and_serves_with_its_own_credentials(prov, prov_pg):
    tid = unique_id("shr")
    op = support.tenant_stub(prov).CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=Tenant(plan="plans/basic", display_name="Shared Ltd")), timeout=10)
    assert op.state == Operation.PENDING and not op.done
    seen = support.watch_operation(prov, op.name)

    # The stream shows the operation moving through its steps, then ends with it done.
    assert seen, "WatchOperation sent nothing"
    assert all(m.name == op.name for m in seen)
    last = seen[-1]
    assert last.done and last.state == Operation.SUCCEEDED, last
    assert last.progress_percent == 100 and last.result == f"tenants/{tid}"
    assert all(not m.done for m in seen[:-1]), "messages after the end"
    progress = [m.progress_percent for m in seen]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    steps = [m.step for m in seen[:-1] if m.step]
    assert len(set(steps)) >= 2, f"step messages should arrive while it runs: {[(m.step, m.progress_percent) for m in seen]}"
    assert any(0 < p < 100 for p in progress), progress
    assert support.get_operation(prov, op.name) == last

    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.ACTIVE and t.state_reason == ""
    assert t.database_strategy == tenant_pb2.SHARED
    assert t.database_server == "databaseServers/local"
    assert t.url == f"http://{tid}.localhost"

    # The stand-in app answers, connected with the tenant's credentials to its database.
    assert prov.standin(tid, "/web/health")[0] == 200
    status, info = prov.standin(tid)
    assert status == 200 and info["current_user"] == tid and info["current_database"] == tid, info
    argv = prov.app_argv(tid)
    assert argv[0] == str(support.STANDIN_BIN)
    assert f"--database={tid}" in argv and f"--db_user={tid}" in argv
    assert "--db_host=127.0.0.1" in argv and f"--db_port={prov_pg.port}" in argv
    password = prov.db_password(tid)
    assert len(password) >= 32
    assert not any(password in a for a in argv), "the password must not be on the command line"
    assert password not in prov.log_text(), "the password must not be logged"
    assert password.encode() not in bytes.fromhex(prov_pg.psql(
        f"SELECT encode(db_password_enc, 'hex') FROM tenants WHERE id = '{tid}'")), \
        "the password is kept sealed in the store"
    assert (prov.apps_dir / tid / "app.log").is_file()
    assert (prov.filestore_dir / tid).is_dir()

    # The role: a plain login role with the plan's connection limit (basic: 20).
    assert _role_attributes(prov_pg.psql, tid) == ["f", "f", "f", "t", "20"]
    other, _ = support.create_tenant(prov, prefix="shr")
    _assert_role_reaches_only_its_database(prov_pg, prov_pg.port, tid, password, other)
    _assert_role_reaches_only_its_database(prov_pg, prov_pg.port, other, prov.db_password(other), tid)
    assert prov.standin(other)[1]["current_user"] == other

    servers = support.list_servers(prov)
    live_on_local = int(prov_pg.psql("SELECT count(*) FROM tenants WHERE state <> 'DELETED' "
                                     "AND database_server = 'local'"))
    assert servers["local"].tenant_count == live_on_local >= 2
    assert_consistent(prov)
    for x in (tid, other):
        support.lifecycle(prov, "delete", x)


def _postmaster_of(data_dir: Path):
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    owner = Path(f"/proc/{pid}").stat().st_uid
    return pid, [a.decode() for a in cmdline], owner


def test_dedicated_tenant_has_a_postmaster_of_its_own(prov, prov_pg):
    tid, op = support.create_tenant(prov, plan="plans/premium", prefix="ded")
    t = support.get_tenant(prov, tid)
    sid = f"dedicated-{tid}"
    assert t.state == Tenant.ACTIVE and t.database_strategy == tenant_pb2.DEDICATED
    assert t.database_server == f"databaseServers/{sid}"

    servers = support.list_servers(prov)
    assert sid in servers, sorted(servers)
    s = servers[sid]
    assert s.kind == admin_pb2.DatabaseServer.DEDICATED
    assert s.tenant_count == 1 and not s.accepting_tenants and s.capacity == 1
    assert s.tenant == f"tenants/{tid}", s.tenant
    assert s.host == "127.0.0.1" and s.port != prov_pg.port
    assert s.admin_conninfo == "", "conninfos are never returned"
    listed = support.admin_stub(prov).ListDatabaseServers(
        admin_pb2.ListDatabaseServersRequest(filter="kind = DEDICATED"), timeout=10)
    assert f"databaseServers/{sid}" in [x.name for x in listed.database_servers]
    assert all(x.kind == admin_pb2.DatabaseServer.DEDICATED for x in listed.database_servers)

    # A separate postmaster, run as postgres, on the server's port, from the tenant's folder.
    data = prov.clusters_dir / tid / "data"
    pid, cmdline, uid = _postmaster_of(data)
    assert uid == pwd.getpwnam("postgres").pw_uid
    assert cmdline[0].endswith("postgres") and str(data) in cmdline
    shared_pid = int((prov_pg.data_dir / "postmaster.pid").read_text().split()[0])
    assert pid != shared_pid
    assert (prov.clusters_dir / tid / "port").read_text().strip() == str(s.port)

    status, info = prov.standin(tid)
    assert status == 200 and info["current_user"] == tid and info["current_database"] == tid, info
    assert f"--db_port={s.port}" in prov.app_argv(tid)
    password = prov.db_password(tid)
    assert _role_attributes(lambda q: prov.cluster_psql(tid, q), tid) == ["f", "f", "f", "t", "60"]
    _assert_role_reaches_only_its_database(None, s.port, tid, password, None)
    # Nothing of it on the shared server, and shared tenants cannot reach its cluster.
    assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
    ok, out = support.tcp_login(prov_pg.port, tid, password, tid)
    assert not ok, out
    other, _ = support.create_tenant(prov, prefix="shr")
    ok, out = support.tcp_login(s.port, other, prov.db_password(other), tid)
    assert not ok and "password authentication failed" in out, out
    assert_consistent(prov)

    support.lifecycle(prov, "delete", other)
    support.lifecycle(prov, "delete", tid)
    assert not (prov.clusters_dir / tid).exists()
    support.wait_for(lambda: not support.pid_alive(pid), 10, what="the tenant's postmaster to be gone")
    assert sid not in support.list_servers(prov)
    assert_consistent(prov)


def test_create_with_the_template_missing_fails_cleanly_and_says_how_to_fix_it(prov, prov_pg):
    """With dbstrategy.template_database naming a database that does not exist, the create
    operation fails with FAILED_PRECONDITION saying how to make the template, the tenant is
    FAILED with that reason, and nothing is left behind."""
    prov.restart(extra_env={"SAASODOO_DBSTRATEGY_TEMPLATE_DATABASE": "nope"})
    try:
        tid, op = support.create_tenant(prov, prefix="notmpl", expect_ok=False)
        assert op.state == Operation.FAILED, op
        assert op.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0], op.error
        for needle in ("'nope'", "does not exist", "odoo -d nope -i base", "docs/provisioning.md"):
            assert needle in op.error.message, op.error.message
        t = support.get_tenant(prov, tid)
        assert t.state == Tenant.FAILED
        assert "nope" in t.state_reason and "creation failed" in t.state_reason, t.state_reason
        assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
        assert not (prov.apps_dir / tid).exists()
        assert t.database_server == "", "the placement was undone"
        assert_consistent(prov)
        # A FAILED tenant can be deleted.
        support.lifecycle(prov, "delete", tid)
        assert support.get_tenant(prov, tid).state == Tenant.DELETED
    finally:
        prov.restart()
    assert_consistent(prov)


def test_the_template_stays_with_its_owner_and_closed_to_tenants(prov, prov_pg):
    """Handing the template's objects to a tenant must not hand it the template itself: the
    template database stays with its owner or the server's admin, and no tenant role can
    reach it (what a tenant put there would be cloned into every later tenant's database)."""
    first, _ = support.create_tenant(prov, prefix="tpl")
    second, _ = support.create_tenant(prov, prefix="tpl")
    owner = prov_pg.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database "
                         f"WHERE datname = '{TEMPLATE_DATABASE}'")
    assert owner in (support.TEMPLATE_OWNER, prov_pg.user), \
        f"the template database is now owned by {owner!r}"
    assert prov_pg.psql(f"SELECT count(*) FROM pg_database WHERE datname <> '{TEMPLATE_DATABASE}' "
                        f"AND datdba = (SELECT oid FROM pg_roles WHERE rolname = '{owner}') "
                        f"AND datname IN ('{first}', '{second}')") == "0"
    # The objects in the template stay its owner's, for the next tenant.
    assert prov_pg.psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                        dbname=TEMPLATE_DATABASE) == support.TEMPLATE_OWNER
    for tid in (first, second):
        ok, out = support.tcp_login(prov_pg.port, tid, prov.db_password(tid), TEMPLATE_DATABASE)
        assert _refused(ok, out), f"tenant {tid} reaches the template: {out}"
    for tid in (first, second):
        support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


def test_no_shared_server_with_room_is_resource_exhausted(prov):
    support.set_accepting(prov, "local", False)
    try:
        tid = unique_id("full")
        err = support.call_error(support.tenant_stub(prov).CreateTenant, tenant_pb2.CreateTenantRequest(
            tenant_id=tid, tenant=Tenant(plan="plans/basic")), timeout=10)
        support.assert_status(err, grpc.StatusCode.RESOURCE_EXHAUSTED, "no shared database server")
        assert support.call_error(support.get_tenant, prov, tid).code() == grpc.StatusCode.NOT_FOUND
    finally:
        support.set_accepting(prov, "local", True)
    tid, _ = support.create_tenant(prov, prefix="room")
    support.lifecycle(prov, "delete", tid)
