"""Crashes at every step boundary. For each case the server is started with the
fault-injection switch (SAASODOO_FAULT_INJECT=<phase>:<KIND>:<step>), asked for the
operation, and kills itself with SIGKILL at that point; it is started again without the
switch, the operation finishes (or is undone), the tenant ends in the state the operation
promises and the consistency check finds nothing: no orphans, nothing missing.

One PostgreSQL for all cases (the provisioning suites'); each case restarts only the
server."""
import grpc
import pytest

import support
from support import STEPS, assert_consistent
from saasodoo.v1 import operation_pb2, tenant_pb2

Operation = operation_pb2.Operation
Tenant = tenant_pb2.Tenant


def _stored_operation(pg, name):
    """(done, step_index) of the operation as the store holds it (the server is down)."""
    out = pg.psql(f"SELECT done, step_index FROM operations WHERE id = '{name.split('/', 1)[1]}'")
    done, index = out.split("|")
    return done == "t", int(index)


def crash(server, pg, phase, kind, step, call, while_down=None):
    """Arms the fault, makes the call that starts the operation, sees the server die at the
    fault, runs while_down() (checks of the state it died in), restarts it unarmed and waits
    for the operation to end. Returns the operation."""
    server.stop()
    server.start_with_fault(phase, kind, step)
    name = None
    try:
        try:
            name = call().name
        except grpc.RpcError as e:
            # The engine can reach the fault before the answer has left the server: the
            # operation is recorded all the same (the newest of its kind; tests run one by one).
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        server.wait_killed()
    finally:
        if server.running():
            server.kill()
    if name is None:
        name = "operations/" + pg.psql(
            f"SELECT id FROM operations WHERE kind = '{kind}' ORDER BY seq DESC LIMIT 1")
    done, index = _stored_operation(pg, name)
    assert not done, "the server died before the operation could finish"
    expected = STEPS[kind].index(step) + (1 if phase == "after" else 0)
    assert index == expected, f"died with {index} steps recorded, expected {expected}"
    if while_down:
        while_down()
    server.start()
    return support.wait_operation(server, name)


def _rows(port, tid, password):
    return support.table_counts(port, tid, password, tid, list(support.TEMPLATE_ROWS) + ["notes"])


def _write_notes(port, tid, password, n=20):
    ok, out = support.tcp_login(port, tid, password, tid,
                                "CREATE TABLE notes (id serial PRIMARY KEY, body text);"
                                f"INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, {n}) g")
    assert ok, out


def _server_port(server, tid):
    t = support.get_tenant(server, tid)
    return support.list_servers(server)[support.server_id(t)].port


def assert_active_and_serving(server, tid):
    t = support.get_tenant(server, tid)
    assert t.state == Tenant.ACTIVE, (Tenant.State.Name(t.state), t.state_reason)
    status, info = server.standin(tid)
    assert status == 200 and info["current_user"] == tid and info["current_database"] == tid, info
    ok, out = support.tcp_login(_server_port(server, tid), tid, server.db_password(tid), tid)
    assert ok, out


def assert_gone(server, pg, tid):
    t = support.get_tenant(server, tid)
    assert t.state == Tenant.DELETED, (Tenant.State.Name(t.state), t.state_reason)
    assert not pg.exists("database", tid) and not pg.exists("role", tid)
    assert not (server.apps_dir / tid).exists() and not (server.filestore_dir / tid).exists()
    assert not (server.clusters_dir / tid).exists()
    assert f"dedicated-{tid}" not in support.list_servers(server)


CREATE_CASES = ([("after", "plans/basic", s) for s in STEPS["CREATE_TENANT"]]
                + [("before", "plans/basic", s) for s in ("database", "app")]
                + [("after", "plans/premium", s) for s in ("place", "database", "role")])


@pytest.mark.parametrize("phase,plan,step", CREATE_CASES,
                         ids=[f"{p}-{plan.split('/')[1]}-{s}" for p, plan, s in CREATE_CASES])
def test_create_survives_a_crash(prov, prov_pg, phase, plan, step):
    tid = support.unique_id("crc")
    op = crash(prov, prov_pg, phase, "CREATE_TENANT", step,
               lambda: support.create_tenant(prov, plan=plan, tid=tid, wait=False)[1])
    support.assert_operation_succeeded(prov, op)
    assert_active_and_serving(prov, tid)
    assert support.table_counts(_server_port(prov, tid), tid, prov.db_password(tid), tid,
                                support.TEMPLATE_ROWS) == support.TEMPLATE_ROWS
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


DELETE_CASES = [(plan, s) for plan in ("plans/basic", "plans/premium") for s in STEPS["DELETE_TENANT"]]


@pytest.mark.parametrize("plan,step", DELETE_CASES,
                         ids=[f"{plan.split('/')[1]}-{s}" for plan, s in DELETE_CASES])
def test_delete_survives_a_crash(prov, prov_pg, plan, step):
    tid, _ = support.create_tenant(prov, plan=plan, prefix="crd")
    op = crash(prov, prov_pg, "after", "DELETE_TENANT", step,
               lambda: support.lifecycle(prov, "delete", tid, wait=False))
    support.assert_operation_succeeded(prov, op)
    assert_gone(prov, prov_pg, tid)
    assert_consistent(prov)


MIGRATE_CASES = ([("plans/basic", tenant_pb2.DEDICATED, s) for s in STEPS["MIGRATE_TENANT"]]
                 + [("plans/premium", tenant_pb2.SHARED, s) for s in STEPS["MIGRATE_TENANT"]])


@pytest.mark.parametrize("plan,target,step", MIGRATE_CASES,
                         ids=[f"{'to-dedicated' if t == tenant_pb2.DEDICATED else 'to-shared'}-{s}"
                              for _, t, s in MIGRATE_CASES])
def test_migrate_survives_a_crash(prov, prov_pg, plan, target, step):
    tid, _ = support.create_tenant(prov, plan=plan, prefix="crm")
    source = support.server_id(support.get_tenant(prov, tid))
    _write_notes(_server_port(prov, tid), tid, prov.db_password(tid))
    rows = _rows(_server_port(prov, tid), tid, prov.db_password(tid))
    assert rows["notes"] == 20
    def source_still_there():
        # Until the cleanup step the source is left as it was.
        if STEPS["MIGRATE_TENANT"].index(step) < STEPS["MIGRATE_TENANT"].index("cleanup"):
            if target == tenant_pb2.DEDICATED:
                assert prov_pg.exists("database", tid) and prov_pg.exists("role", tid)
            else:
                assert (prov.clusters_dir / tid / "data").is_dir()

    op = crash(prov, prov_pg, "after", "MIGRATE_TENANT", step,
               lambda: support.lifecycle(prov, "migrate", tid, wait=False, target_strategy=target),
               while_down=source_still_there)
    support.assert_operation_succeeded(prov, op)
    t = support.get_tenant(prov, tid)
    assert t.database_strategy == target and support.server_id(t) != source
    assert_active_and_serving(prov, tid)
    assert _rows(_server_port(prov, tid), tid, prov.db_password(tid)) == rows
    if target == tenant_pb2.DEDICATED:
        assert not prov_pg.exists("database", tid) and not prov_pg.exists("role", tid)
    else:
        assert not (prov.clusters_dir / tid).exists()
        assert source not in support.list_servers(prov)
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)


SUSPEND_CASES = ([("plans/basic", "SUSPEND_TENANT", s) for s in STEPS["SUSPEND_TENANT"]]
                 + [("plans/basic", "RESUME_TENANT", s) for s in STEPS["RESUME_TENANT"]]
                 + [("plans/premium", "SUSPEND_TENANT", "server"), ("plans/premium", "RESUME_TENANT", "server")])


@pytest.mark.parametrize("plan,kind,step", SUSPEND_CASES,
                         ids=[f"{plan.split('/')[1]}-{k.split('_')[0].lower()}-{s}" for plan, k, s in SUSPEND_CASES])
def test_suspend_and_resume_survive_a_crash(prov, prov_pg, plan, kind, step):
    tid, _ = support.create_tenant(prov, plan=plan, prefix="crs")
    verb = "suspend" if kind == "SUSPEND_TENANT" else "resume"
    if verb == "resume":
        support.lifecycle(prov, "suspend", tid)
    op = crash(prov, prov_pg, "after", kind, step, lambda: support.lifecycle(prov, verb, tid, wait=False))
    support.assert_operation_succeeded(prov, op)
    if verb == "suspend":
        t = support.get_tenant(prov, tid)
        assert t.state == Tenant.SUSPENDED
        assert prov.app_pid(tid) is None
        ok, out = support.tcp_login(_server_port(prov, tid), tid, "x", tid)
        assert not ok, out
        if plan == "plans/premium":
            assert not prov.cluster_running(tid)
    else:
        assert_active_and_serving(prov, tid)
    assert_consistent(prov)
    support.lifecycle(prov, "delete", tid)
    assert_consistent(prov)
