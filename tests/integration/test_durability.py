"""Durability and concurrency: restarts, concurrent creates, SIGTERM under load, and
servers starting together on a fresh database."""
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2

import support
from support import unique_id, unique_owner
from saasodoo.v1 import operation_pb2, operation_pb2_grpc, tenant_pb2, tenant_pb2_grpc

# These tests are about records and the API: the operations they record are parked in
# the queue (conftest.parked_operations), so tenants stay PROVISIONING and operations
# PENDING until a test acts on them. Provisioning is tested in test_provisioning.py and
# the suites beside it.
pytestmark = pytest.mark.usefixtures("parked_operations")

Tenant = tenant_pb2.Tenant


def create_request(tid, owner="", request_id=""):
    return tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=Tenant(plan="plans/basic", display_name=tid, owner=owner),
        request_id=request_id)


def test_data_survives_a_restart(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    tid, premium = unique_id("keep"), unique_id("keep")
    op = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=Tenant(plan="plans/basic", display_name="Before restart", labels={"k": "v"}),
        request_id=str(uuid.uuid4())), timeout=10)
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=premium, tenant=Tenant(plan="plans/premium")), timeout=10)
    updated = tenants.UpdateTenant(tenant_pb2.UpdateTenantRequest(
        tenant=Tenant(name=f"tenants/{tid}", display_name="Updated"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), timeout=10)
    cancelled_tid = unique_id("keep")
    cancelled_op = tenants.CreateTenant(create_request(cancelled_tid), timeout=10)
    ops.CancelOperation(operation_pb2.CancelOperationRequest(name=cancelled_op.name), timeout=10)

    server.restart()

    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    t = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert t.display_name == "Updated"
    assert dict(t.labels) == {"k": "v"}
    assert t.etag == updated.etag
    assert t.state == Tenant.PROVISIONING
    assert t.create_time == updated.create_time and t.update_time == updated.update_time
    p = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{premium}"), timeout=10)
    assert p.database_strategy == tenant_pb2.DEDICATED
    got = ops.GetOperation(operation_pb2.GetOperationRequest(name=op.name), timeout=10)
    assert got.target == f"tenants/{tid}" and not got.done
    c = ops.GetOperation(operation_pb2.GetOperationRequest(name=cancelled_op.name), timeout=10)
    assert c.done and c.state == operation_pb2.Operation.CANCELLED and c.error.code == 1
    failed = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{cancelled_tid}"), timeout=10)
    assert failed.state == Tenant.FAILED
    # The duplicate check is durable too.
    err = support.call_error(tenants.CreateTenant, create_request(tid), timeout=10)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


def test_retry_after_restart_returns_the_same_operation(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid, rid = unique_id("retry"), str(uuid.uuid4())
    first = tenants.CreateTenant(create_request(tid, request_id=rid), timeout=10)
    server.restart()
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    second = tenants.CreateTenant(create_request(tid, request_id=rid), timeout=10)
    assert second.name == first.name


def test_100_concurrent_creates_with_distinct_ids_all_succeed(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    owner = unique_owner()
    ids = [unique_id("par") for _ in range(100)]
    barrier = threading.Barrier(50)

    def one(tid):
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return tenants.CreateTenant(create_request(tid, owner=owner), timeout=30)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda t: _outcome(one, t), ids))
    failures = [(tid, r) for tid, r in zip(ids, results) if isinstance(r, grpc.RpcError)]
    assert not failures, [(tid, e.code(), e.details()) for tid, e in failures[:5]]
    assert len({op.name for op in results}) == 100
    assert {op.target for op in results} == {f"tenants/{t}" for t in ids}
    listed = tenants.ListTenants(tenant_pb2.ListTenantsRequest(
        filter=f'owner = "{owner}"', page_size=500), timeout=10)
    assert listed.total_size == 100
    assert {t.name for t in listed.tenants} == {f"tenants/{t}" for t in ids}


def test_100_concurrent_creates_with_one_id_exactly_one_succeeds(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    tid = unique_id("race")
    barrier = threading.Barrier(50)

    def one(i):
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        # Distinct request ids: these are different requests, not retries.
        return tenants.CreateTenant(create_request(tid, request_id=str(uuid.uuid4())), timeout=30)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda i: _outcome(one, i), range(100)))
    ok = [r for r in results if not isinstance(r, grpc.RpcError)]
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    codes = sorted({e.code().name for e in errors})
    assert len(ok) == 1, f"{len(ok)} creates succeeded; error codes {codes}"
    assert codes == ["ALREADY_EXISTS"], [(e.code(), e.details()) for e in errors
                                         if e.code() != grpc.StatusCode.ALREADY_EXISTS][:5]
    listed = ops.ListOperations(operation_pb2.ListOperationsRequest(
        filter=f'target = "tenants/{tid}"'), timeout=10)
    assert [o.name for o in listed.operations] == [ok[0].name]


def _outcome(fn, arg):
    try:
        return fn(arg)
    except grpc.RpcError as e:
        return e


def test_sigterm_under_load_exits_zero_and_loses_nothing_acknowledged(server):
    owner = unique_owner()
    acknowledged = []          # (tenant id, operation name) for every OK response
    errors = []
    lock = threading.Lock()
    stop = threading.Event()
    channel = server.new_channel()
    tenants = tenant_pb2_grpc.TenantServiceStub(channel)

    def worker(n):
        while not stop.is_set():
            tid = f"sig{n}-{uuid.uuid4().hex[:12]}"
            try:
                op = tenants.CreateTenant(create_request(tid, owner=owner), timeout=15)
            except grpc.RpcError as e:
                with lock:
                    errors.append(e)
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    return
                continue
            with lock:
                acknowledged.append((tid, op.name))

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(16)]
    for t in threads:
        t.start()
    try:
        support.wait_for(lambda: len(acknowledged) >= 200, timeout=60, what="200 acknowledged creates")
        before = len(acknowledged)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(timeout=support.SHUTDOWN_GRACE_SECONDS + 3)
        except Exception:
            server.kill()
            raise AssertionError("the server did not exit within the shutdown grace after SIGTERM")
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        channel.close()
    print(f"SIGTERM after {before} acknowledged creates: exit {rc} in {elapsed:.2f}s, "
          f"{len(acknowledged)} acknowledged in all, {len(errors)} failed calls")
    assert rc == 0, f"exit code {rc} after SIGTERM; log:\n{server.recent_log()}"
    assert elapsed <= support.SHUTDOWN_GRACE_SECONDS + 2, elapsed
    unexpected = [e for e in errors if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)]
    assert not unexpected, [(e.code(), e.details()) for e in unexpected[:5]]
    assert len(acknowledged) >= before

    server.start()
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    lost = []
    for tid, op_name in acknowledged:
        try:
            t = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
            assert t.state == Tenant.PROVISIONING
            o = ops.GetOperation(operation_pb2.GetOperationRequest(name=op_name), timeout=10)
            assert o.target == f"tenants/{tid}"
        except grpc.RpcError as e:
            lost.append((tid, e.code().name))
    assert not lost, f"{len(lost)} acknowledged creates lost, e.g. {lost[:5]}"
    listed = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=f'owner = "{owner}"'), timeout=10)
    # Unacknowledged creates may or may not have committed; acknowledged ones must have.
    assert listed.total_size >= len(acknowledged)


def test_sigint_exits_zero(server):
    rc = server.stop(signal.SIGINT)
    assert rc == 0, f"exit code {rc} after SIGINT; log:\n{server.recent_log()}"
    server.start()


def test_idle_sigterm_is_quick(server):
    t0 = time.monotonic()
    rc = server.stop(signal.SIGTERM)
    elapsed = time.monotonic() - t0
    assert rc == 0
    assert elapsed < 3, f"an idle server took {elapsed:.1f}s to stop"
    server.start()


def test_sigterm_lets_an_open_watch_end_and_exits_zero(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    op = tenants.CreateTenant(create_request(unique_id("w")), timeout=10)
    channel = server.new_channel()
    try:
        stream = operation_pb2_grpc.OperationServiceStub(channel).WatchOperation(
            operation_pb2.WatchOperationRequest(name=op.name), timeout=60)
        assert next(stream).name == op.name
        t0 = time.monotonic()
        rc = server.stop(signal.SIGTERM)
        assert rc == 0
        assert time.monotonic() - t0 <= support.SHUTDOWN_GRACE_SECONDS + 2
        try:
            for _ in stream:
                pass
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e
    finally:
        channel.close()
        server.start()


def test_two_servers_start_together_on_a_fresh_database(server_factory, pg):
    for round_ in range(3):
        db = f"race{round_}_{uuid.uuid4().hex[:8]}"
        pg.createdb(db)
        a = server_factory(f"race-a-{db}", dbname=db)
        b = server_factory(f"race-b-{db}", dbname=db)
        a.start(wait=False)
        b.start(wait=False)
        a.wait_serving()
        b.wait_serving()
        support.park_operations(pg, db)
        tid = unique_id("both")
        op = tenant_pb2_grpc.TenantServiceStub(a.channel()).CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant_id=tid, tenant=Tenant(plan="plans/enterprise")), timeout=10)
        t = tenant_pb2_grpc.TenantServiceStub(b.channel()).GetTenant(
            tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
        assert t.database_strategy == tenant_pb2.DEDICATED
        got = operation_pb2_grpc.OperationServiceStub(b.channel()).GetOperation(
            operation_pb2.GetOperationRequest(name=op.name), timeout=10)
        assert got.target == f"tenants/{tid}"
        assert a.stop() == 0, a.recent_log()
        assert b.stop() == 0, b.recent_log()
        # A third start on the migrated database applies nothing new and serves.
        c = server_factory(f"race-c-{db}", dbname=db)
        c.start()
        assert tenant_pb2_grpc.TenantServiceStub(c.channel()).GetTenant(
            tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10).name == f"tenants/{tid}"
        assert c.stop() == 0, c.recent_log()


def _race(n, fn):
    """Runs fn(i) for i in range(n) from n threads released together; returns outcomes."""
    barrier = threading.Barrier(n)

    def one(i):
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: _outcome(one, i), range(n)))


def test_concurrent_updates_with_one_etag_exactly_one_wins(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("etag")
    tenants.CreateTenant(create_request(tid), timeout=10)
    etag = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10).etag

    results = _race(20, lambda i: tenants.UpdateTenant(tenant_pb2.UpdateTenantRequest(
        tenant=Tenant(name=f"tenants/{tid}", etag=etag, display_name=f"writer {i}"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), timeout=30))
    ok = [r for r in results if not isinstance(r, grpc.RpcError)]
    codes = sorted({r.code().name for r in results if isinstance(r, grpc.RpcError)})
    assert len(ok) == 1, f"{len(ok)} updates with the same etag succeeded; errors {codes}"
    assert codes == ["ABORTED"], codes
    final = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert final.display_name == ok[0].display_name and final.etag == ok[0].etag


def test_concurrent_cancels_exactly_one_succeeds(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    tid = unique_id("cxl")
    op = tenants.CreateTenant(create_request(tid), timeout=10)
    results = _race(20, lambda i: ops.CancelOperation(
        operation_pb2.CancelOperationRequest(name=op.name), timeout=30))
    ok = [r for r in results if not isinstance(r, grpc.RpcError)]
    codes = sorted({r.code().name for r in results if isinstance(r, grpc.RpcError)})
    assert len(ok) == 1, f"{len(ok)} cancels succeeded; errors {codes}"
    assert codes == ["FAILED_PRECONDITION"], codes
    assert ok[0].state == operation_pb2.Operation.CANCELLED
    t = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert t.state == Tenant.FAILED


def test_concurrent_retries_with_one_request_id_all_get_the_same_operation(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    tid, rid = unique_id("idem"), str(uuid.uuid4())
    results = _race(20, lambda i: tenants.CreateTenant(create_request(tid, request_id=rid), timeout=30))
    errors = [(r.code().name, r.details()) for r in results if isinstance(r, grpc.RpcError)]
    assert not errors, f"retries of one request failed: {errors[:5]}"
    assert len({r.name for r in results}) == 1
    listed = ops.ListOperations(operation_pb2.ListOperationsRequest(filter=f'target = "tenants/{tid}"'),
                                timeout=10)
    assert [o.name for o in listed.operations] == [results[0].name]
