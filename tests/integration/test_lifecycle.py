"""Suspend, resume and delete for real, shared and dedicated; transitions that are not
allowed; one change at a time; cancelling a create that is running."""
import os
import subprocess
import urllib.error
import urllib.request

import grpc

import support
from support import assert_consistent, assert_status, call_error, unique_id
from saasodoo.v1 import admin_pb2, operation_pb2, tenant_pb2

Operation = operation_pb2.Operation
Tenant = tenant_pb2.Tenant
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def _app_answers(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/web/health", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _open_session(port, tid, password):
    """A psql session of the tenant's role over TCP that stays open (pg_sleep)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    return subprocess.Popen([str(support.PG_BIN / "psql"), "-X", "-w", "-h", "127.0.0.1", "-p", str(port),
                             "-U", tid, "-d", tid, "-c", "SELECT pg_sleep(120)"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd="/")


def _sessions_of(pg, role):
    return int(pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'", dbname="postgres"))


def _write_rows(port, tid, password, n, table="notes"):
    ok, out = support.tcp_login(port, tid, password, tid,
                                f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, body text);"
                                f"INSERT INTO {table} (body) SELECT 'note ' || g FROM generate_series(1, {n}) g;"
                                f"SELECT count(*) FROM {table}")
    assert ok, out
    return int(out.splitlines()[-1])


def test_suspend_closes_a_shared_tenant_and_resume_opens_it_again(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="sus")
    password = prov.db_password(tid)
    pid, port = prov.app_pid(tid), prov.app_port(tid)
    assert _app_answers(port) == 200
    session = _open_session(prov_pg.port, tid, password)
    try:
        support.wait_for(lambda: _sessions_of(prov_pg, tid) >= 2, 10,
                         what="the test's own session of the tenant's role")

        op = support.lifecycle(prov, "suspend", tid, reason="unpaid invoice")
        assert op.kind == Operation.SUSPEND_TENANT and op.result == f"tenants/{tid}"
        t = support.get_tenant(prov, tid)
        assert t.state == Tenant.SUSPENDED and t.state_reason == "unpaid invoice"

        # The app is gone, open sessions were ended, new logins are refused.
        assert not support.pid_alive(pid) and prov.app_pid(tid) is None
        assert _app_answers(port) is None
        out, _ = session.communicate(timeout=15)
        assert session.returncode != 0 and "terminat" in out, out
        assert _sessions_of(prov_pg, tid) == 0
        ok, out = support.tcp_login(prov_pg.port, tid, password, tid)
        assert not ok and "not permitted to log in" in out, out
        assert prov_pg.exists("database", tid) and prov_pg.exists("role", tid), "suspending keeps the data"
        assert_consistent(prov)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()

    op = support.lifecycle(prov, "resume", tid)
    assert op.kind == Operation.RESUME_TENANT
    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.ACTIVE
    new_pid = prov.app_pid(tid)
    assert new_pid and new_pid != pid
    status, info = prov.standin(tid)
    assert status == 200 and info["current_user"] == tid and info["pid"] == new_pid
    assert prov.db_password(tid) == password, "the role keeps its password"
    ok, out = support.tcp_login(prov_pg.port, tid, password, tid)
    assert ok, out
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)


def test_dedicated_tenant_suspend_stops_its_cluster_and_delete_removes_it(prov, prov_pg):
    tid, _ = support.create_tenant(prov, plan="plans/premium", prefix="dsus")
    sid = f"dedicated-{tid}"
    port = support.list_servers(prov)[sid].port
    password = prov.db_password(tid)
    assert _write_rows(port, tid, password, 5) == 5

    # Only one database server of its own.
    err = call_error(support.lifecycle, prov, "migrate", tid, wait=False,
                     target_strategy=tenant_pb2.DEDICATED)
    assert_status(err, PRECONDITION, "already has a database server of its own")

    support.lifecycle(prov, "suspend", tid)
    assert support.get_tenant(prov, tid).state == Tenant.SUSPENDED
    assert not prov.cluster_running(tid), "suspending a dedicated tenant stops its cluster"
    assert (prov.clusters_dir / tid / "data").is_dir(), "but keeps its data"
    ok, out = support.tcp_login(port, tid, password, tid)
    assert not ok and ("Connection refused" in out or "could not connect" in out), out
    assert prov.app_pid(tid) is None
    assert_consistent(prov)

    err = call_error(support.lifecycle, prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.SHARED)
    assert_status(err, PRECONDITION, "SUSPENDED")

    support.lifecycle(prov, "resume", tid)
    assert support.get_tenant(prov, tid).state == Tenant.ACTIVE
    assert prov.cluster_running(tid)
    assert support.table_counts(port, tid, password, tid, ["notes"]) == {"notes": 5}
    status, info = prov.standin(tid)
    assert status == 200 and info["current_database"] == tid
    assert_consistent(prov)

    # No shared server with room: a migration to shared is refused at once.
    support.set_accepting(prov, "local", False)
    try:
        err = call_error(support.lifecycle, prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.SHARED)
        assert_status(err, grpc.StatusCode.RESOURCE_EXHAUSTED, "no shared database server")
    finally:
        support.set_accepting(prov, "local", True)
    assert support.get_tenant(prov, tid).state == Tenant.ACTIVE

    # A suspended dedicated tenant can be deleted: the stopped cluster goes with it.
    support.lifecycle(prov, "suspend", tid)
    op = support.lifecycle(prov, "delete", tid)
    assert op.kind == Operation.DELETE_TENANT
    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.DELETED and t.HasField("delete_time")
    assert not (prov.clusters_dir / tid).exists()
    assert sid not in support.list_servers(prov)
    assert not (prov.apps_dir / tid).exists() and not (prov.filestore_dir / tid).exists()
    assert_consistent(prov)


def test_delete_leaves_nothing_of_a_shared_tenant_but_its_record(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="del")
    pid = prov.app_pid(tid)
    assert (prov.filestore_dir / tid).is_dir() and (prov.apps_dir / tid).is_dir()
    before = support.get_tenant(prov, tid)
    assert not before.HasField("delete_time")

    op = support.lifecycle(prov, "delete", tid)
    assert op.kind == Operation.DELETE_TENANT and op.result == f"tenants/{tid}"
    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.DELETED and t.HasField("delete_time")
    assert t.create_time == before.create_time and t.display_name == before.display_name
    assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
    assert not support.pid_alive(pid)
    assert not (prov.apps_dir / tid).exists() and not (prov.filestore_dir / tid).exists()
    assert_consistent(prov)

    stub = support.tenant_stub(prov)
    listed = stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=1000), timeout=10)
    assert f"tenants/{tid}" not in [x.name for x in listed.tenants]
    listed = stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=1000, show_deleted=True), timeout=10)
    assert f"tenants/{tid}" in [x.name for x in listed.tenants]
    # The id cannot be taken again during the retention period.
    err = call_error(stub.CreateTenant, tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=Tenant(plan="plans/basic")), timeout=10)
    assert_status(err, grpc.StatusCode.ALREADY_EXISTS, "deleted")


def test_transitions_that_are_not_allowed_name_the_state(prov):
    tid, _ = support.create_tenant(prov, prefix="ill")
    stub = support.tenant_stub(prov)

    def refused(verb, *needles, code=PRECONDITION, name=None, **fields):
        if name is not None:
            method, req = {"suspend": ("SuspendTenant", tenant_pb2.SuspendTenantRequest),
                           "resume": ("ResumeTenant", tenant_pb2.ResumeTenantRequest),
                           "delete": ("DeleteTenant", tenant_pb2.DeleteTenantRequest),
                           "migrate": ("MigrateTenant", tenant_pb2.MigrateTenantRequest)}[verb]
            err = call_error(getattr(stub, method), req(name=name, **fields), timeout=10)
        else:
            err = call_error(support.lifecycle, prov, verb, tid, wait=False, **fields)
        assert_status(err, code, *needles)
        return err

    refused("resume", "ACTIVE", f"tenants/{tid}")
    refused("migrate", "target_strategy", code=grpc.StatusCode.INVALID_ARGUMENT)
    refused("migrate", "target_database_server", code=grpc.StatusCode.INVALID_ARGUMENT,
            target_strategy=tenant_pb2.DEDICATED, target_database_server="databaseServers/local")
    refused("migrate", "databaseServers/nowhere", code=grpc.StatusCode.INVALID_ARGUMENT,
            target_strategy=tenant_pb2.SHARED, target_database_server="databaseServers/nowhere")
    refused("delete", "etag", code=grpc.StatusCode.ABORTED, etag="v999")
    for verb in ("suspend", "resume", "delete", "migrate"):
        refused(verb, "tenants/nobody-here", code=grpc.StatusCode.NOT_FOUND, name="tenants/nobody-here",
                **({"target_strategy": tenant_pb2.SHARED} if verb == "migrate" else {}))
        refused(verb, "name", code=grpc.StatusCode.INVALID_ARGUMENT, name="nope",
                **({"target_strategy": tenant_pb2.SHARED} if verb == "migrate" else {}))

    support.lifecycle(prov, "suspend", tid)
    refused("suspend", "SUSPENDED")
    refused("migrate", "SUSPENDED", target_strategy=tenant_pb2.DEDICATED)
    support.lifecycle(prov, "delete", tid)
    for verb in ("suspend", "resume", "delete"):
        refused(verb, "DELETED", f"tenants/{tid}")
    refused("migrate", "DELETED", target_strategy=tenant_pb2.DEDICATED)
    # None of the refusals recorded an operation.
    ops = support.operation_stub(prov).ListOperations(operation_pb2.ListOperationsRequest(
        filter=f'target = "tenants/{tid}"'), timeout=10).operations
    assert sorted(Operation.Kind.Name(o.kind) for o in ops) == \
        ["CREATE_TENANT", "DELETE_TENANT", "SUSPEND_TENANT"]
    assert_consistent(prov)


def test_a_shared_move_with_nowhere_to_go_is_refused_at_once(prov):
    """'local' is the only shared server: a shared tenant on it has nowhere to move to, and
    MigrateTenant says so (RESOURCE_EXHAUSTED) rather than record a migration that fails."""
    tid, _ = support.create_tenant(prov, prefix="nowh")
    assert [sid for sid, s in support.list_servers(prov).items()
            if s.kind == admin_pb2.DatabaseServer.SHARED] == ["local"]
    try:
        op = support.lifecycle(prov, "migrate", tid, wait=False, target_strategy=tenant_pb2.SHARED)
    except grpc.RpcError as e:
        assert_status(e, grpc.StatusCode.RESOURCE_EXHAUSTED, "no shared database server")
    else:
        done = support.wait_operation(prov, op.name)
        raise AssertionError(f"the migration was recorded and then ended "
                             f"{Operation.State.Name(done.state)}: {done.error.message}")
    assert support.get_tenant(prov, tid).state == Tenant.ACTIVE
    support.lifecycle(prov, "delete", tid)


def _wait_step(server, name, step):
    return support.wait_for(
        lambda: (lambda o: o if o.state == Operation.RUNNING and o.step == step else None)(
            support.get_operation(server, name)),
        20, interval=0.05, what=f"operation {name} to be running '{step}'")


def test_one_change_at_a_time_names_the_running_operation(prov, prov_pg):
    tid, _ = support.create_tenant(prov, prefix="busy")
    # The suspend waits in its 'logins' step while the test holds the role's catalog row.
    with support.SqlHold(prov_pg, f'ALTER ROLE "{tid}" CONNECTION LIMIT 20'):
        op = support.lifecycle(prov, "suspend", tid, wait=False)
        _wait_step(prov, op.name, "closing the database to logins")
        for verb, fields in (("suspend", {}), ("resume", {}), ("delete", {}),
                             ("migrate", {"target_strategy": tenant_pb2.DEDICATED})):
            err = call_error(support.lifecycle, prov, verb, tid, wait=False, **fields)
            assert_status(err, PRECONDITION, op.name, "SUSPEND_TENANT", "running")
        # The consistency check leaves a tenant with an operation running alone.
        assert_consistent(prov)
        assert not support.get_operation(prov, op.name).done
    op = support.wait_operation(prov, op.name)
    support.assert_operation_succeeded(prov, op)
    assert support.get_tenant(prov, tid).state == Tenant.SUSPENDED
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


def test_cancelling_a_running_create_undoes_what_it_did(prov, prov_pg):
    """A create held in its database step (the test holds the template, so cloning it
    waits) is cancelled: it stops at the next step boundary, drops what it made and ends
    CANCELLED with the tenant FAILED."""
    tid = unique_id("cxl")
    stub = support.tenant_stub(prov)
    ops = support.operation_stub(prov)
    hold = support.SqlHold(prov_pg, f'ALTER DATABASE "{support.TEMPLATE_DATABASE}" RENAME TO held_template')
    with hold:
        op = stub.CreateTenant(tenant_pb2.CreateTenantRequest(
            tenant_id=tid, tenant=Tenant(plan="plans/basic")), timeout=10)
        _wait_step(prov, op.name, "creating the database")
        err = call_error(support.lifecycle, prov, "delete", tid, wait=False)
        assert_status(err, PRECONDITION, op.name, "CREATE_TENANT")
        c = ops.CancelOperation(operation_pb2.CancelOperationRequest(name=op.name), timeout=10)
        assert c.state == Operation.CANCELLING and not c.done
        again = ops.CancelOperation(operation_pb2.CancelOperationRequest(name=op.name), timeout=10)
        assert again.state == Operation.CANCELLING
    done = support.wait_operation(prov, op.name)
    assert done.state == Operation.CANCELLED and done.error.code == grpc.StatusCode.CANCELLED.value[0], done
    t = support.get_tenant(prov, tid)
    assert t.state == Tenant.FAILED and "cancelled" in t.state_reason, t.state_reason
    assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
    assert not (prov.apps_dir / tid).exists()
    assert_consistent(prov)
    # A FAILED tenant can only be deleted.
    for verb in ("suspend", "resume"):
        assert_status(call_error(support.lifecycle, prov, verb, tid, wait=False), PRECONDITION, "FAILED")
    support.lifecycle(prov, "delete", tid)
    assert support.get_tenant(prov, tid).state == Tenant.DELETED
    assert_consistent(prov)


def test_apps_are_restarted_when_they_die_and_brought_back_after_a_server_restart(prov):
    a, _ = support.create_tenant(prov, prefix="sup")
    b, _ = support.create_tenant(prov, prefix="sup")
    pid_a = prov.app_pid(a)

    # An app that dies is started again by the runtime.
    os.kill(pid_a, 9)
    pid_a = support.wait_for(lambda: (lambda p: p if p and p != pid_a else None)(prov.app_pid(a)), 20,
                             what=f"the app of {a} to be started again")
    support.wait_for(lambda: prov.standin(a, "/web/health")[0] == 200, 20, what=f"{a} healthy again")

    # Apps outlive a restart of the server: running ones are adopted, the ACTIVE tenant whose
    # app died meanwhile gets it started again.
    pid_b = prov.app_pid(b)
    assert prov.stop() == 0
    assert support.pid_alive(pid_a) and support.pid_alive(pid_b), "apps keep running while the server is down"
    os.kill(pid_b, 9)
    support.wait_for(lambda: not support.pid_alive(pid_b), 10, what="the app to die")
    prov.start()
    new_b = support.wait_for(lambda: (lambda p: p if p and p != pid_b else None)(prov.app_pid(b)), 20,
                             what=f"the app of {b} to be started again")
    assert prov.app_pid(a) == pid_a, "a running app is adopted, not restarted"
    for tid, pid in ((a, pid_a), (b, new_b)):
        status, info = support.wait_for(lambda: (lambda r: r if r[0] == 200 else None)(prov.standin(tid)), 20,
                                        what=f"{tid} to answer")
        assert info["pid"] == pid and info["current_user"] == tid
    assert_consistent(prov)
    # And the adopted app is still the runtime's to stop.
    support.lifecycle(prov, "suspend", a)
    support.wait_for(lambda: not support.pid_alive(pid_a), 10, what="the adopted app to stop")
    for tid in (a, b):
        support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)
