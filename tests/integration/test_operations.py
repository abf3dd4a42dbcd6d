"""OperationService: GetOperation, ListOperations, CancelOperation, WatchOperation."""
import queue
import threading
import uuid

import grpc
import pytest

import support
from support import assert_status, call_error, unique_id
from saasodoo.v1 import operation_pb2, operation_pb2_grpc, tenant_pb2, tenant_pb2_grpc

# These tests are about records and the API: the operations they record are parked in
# the queue (conftest.parked_operations), so tenants stay PROVISIONING and operations
# PENDING until a test acts on them. Provisioning is tested in test_provisioning.py and
# the suites beside it.
pytestmark = pytest.mark.usefixtures("parked_operations")

Operation = operation_pb2.Operation
Tenant = tenant_pb2.Tenant
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def tenants(server):
    return server.stub(tenant_pb2_grpc.TenantServiceStub)


@pytest.fixture
def operations(server):
    return server.stub(operation_pb2_grpc.OperationServiceStub)


def create(tenants, plan="plans/basic"):
    tid = unique_id("op")
    op = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=Tenant(plan=plan, display_name=tid)), timeout=10)
    return tid, op


def get_op(operations, name):
    return operations.GetOperation(operation_pb2.GetOperationRequest(name=name), timeout=10)


def list_ops(operations, flt, page_size=0, page_token=""):
    return operations.ListOperations(operation_pb2.ListOperationsRequest(
        filter=flt, page_size=page_size, page_token=page_token), timeout=10)


def cancel(operations, name):
    return operations.CancelOperation(operation_pb2.CancelOperationRequest(name=name), timeout=10)


# ---------------------------------------------------------------------------
# GetOperation
# ---------------------------------------------------------------------------

def test_get_operation_returns_what_create_returned(tenants, operations):
    tid, op = create(tenants)
    got = get_op(operations, op.name)
    assert got.name == op.name
    assert got.kind == Operation.CREATE_TENANT
    assert got.target == f"tenants/{tid}"
    assert got.done is False
    assert got.state == Operation.PENDING
    assert got.create_time == op.create_time
    assert not got.HasField("error")


def test_get_unknown_operation_is_not_found(operations):
    name = f"operations/{uuid.uuid4()}"
    assert_status(call_error(get_op, operations, name), grpc.StatusCode.NOT_FOUND, name)


@pytest.mark.parametrize("name", ["", "nope", "operations/", "tenants/acme", "operations/a/b"])
def test_get_operation_with_malformed_name_is_invalid(operations, name):
    assert_status(call_error(get_op, operations, name), INVALID, "name")


# ---------------------------------------------------------------------------
# ListOperations
# ---------------------------------------------------------------------------

def test_list_operations_by_target(tenants, operations):
    tid, op = create(tenants)
    create(tenants)  # another tenant's operation must not show up
    resp = list_ops(operations, f'target = "tenants/{tid}"')
    assert [o.name for o in resp.operations] == [op.name]
    assert resp.operations[0].kind == Operation.CREATE_TENANT
    assert resp.next_page_token == ""


def test_list_operations_by_done_and_kind(tenants, operations):
    tid, op = create(tenants)
    target = f'target = "tenants/{tid}"'
    assert [o.name for o in list_ops(operations, f"{target} AND done = false").operations] == [op.name]
    assert [o.name for o in list_ops(operations, f"{target} AND done = true").operations] == []
    assert [o.name for o in list_ops(operations, f"kind = CREATE_TENANT AND {target}").operations] == [op.name]
    assert [o.name for o in list_ops(operations, f"kind = BACKUP AND {target}").operations] == []
    cancel(operations, op.name)
    assert [o.name for o in list_ops(operations, f"{target} AND done = false").operations] == []
    assert [o.name for o in list_ops(operations, f"{target} AND done = true").operations] == [op.name]
    pending = list_ops(operations, "done = false", page_size=500)
    assert op.name not in [o.name for o in pending.operations]
    assert all(not o.done for o in pending.operations)


def test_list_operations_pages_newest_first_without_repeats(tenants, operations):
    created = [create(tenants)[1].name for _ in range(5)]
    names, token, pages = [], "", 0
    while True:
        resp = list_ops(operations, "kind = CREATE_TENANT", page_size=2, page_token=token)
        pages += 1
        assert len(resp.operations) <= 2
        assert all(o.kind == Operation.CREATE_TENANT for o in resp.operations)
        names.extend(o.name for o in resp.operations)
        token = resp.next_page_token
        if not token:
            break
        assert pages < 10000
    assert len(names) == len(set(names)), "an operation was listed twice"
    assert pages >= 3
    # Newest first: the five just created lead, most recent first.
    assert names[:5] == list(reversed(created))


def test_list_operations_filter_errors(operations):
    assert_status(call_error(list_ops, operations, 'colour = "red"'), INVALID, "colour")
    assert_status(call_error(list_ops, operations, "kind = NOT_A_KIND"), INVALID, "filter")
    assert_status(call_error(list_ops, operations, "done = maybe"), INVALID, "filter")
    assert_status(call_error(list_ops, operations, "", page_size=-5), INVALID, "page_size")
    assert_status(call_error(list_ops, operations, "", page_token="garbage"), INVALID, "page_token")


# ---------------------------------------------------------------------------
# CancelOperation
# ---------------------------------------------------------------------------

def test_cancel_pending_create_fails_the_tenant(tenants, operations):
    tid, op = create(tenants)
    done = cancel(operations, op.name)
    assert done.name == op.name
    assert done.done is True
    assert done.state == Operation.CANCELLED
    assert done.HasField("error")
    assert done.error.code == grpc.StatusCode.CANCELLED.value[0] == 1
    assert done.error.message != ""
    again = get_op(operations, op.name)
    assert again.done and again.state == Operation.CANCELLED and again.error.code == 1
    t = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert t.state == Tenant.FAILED


def test_cancel_done_operation_is_failed_precondition(tenants, operations):
    _, op = create(tenants)
    cancel(operations, op.name)
    err = call_error(cancel, operations, op.name)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    assert get_op(operations, op.name).state == Operation.CANCELLED


def test_cancel_unknown_or_malformed_operation(operations):
    name = f"operations/{uuid.uuid4()}"
    assert_status(call_error(cancel, operations, name), grpc.StatusCode.NOT_FOUND, name)
    assert_status(call_error(cancel, operations, "bogus"), INVALID, "name")


# ---------------------------------------------------------------------------
# WatchOperation
# ---------------------------------------------------------------------------

def _collect(stream, out):
    try:
        for msg in stream:
            out.put(("msg", msg))
        out.put(("end", None))
    except grpc.RpcError as e:
        out.put(("error", e))


def test_watch_streams_current_state_then_the_change_and_ends(tenants, operations):
    _, op = create(tenants)
    stream = operations.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=30)
    events = queue.Queue()
    reader = threading.Thread(target=_collect, args=(stream, events), daemon=True)
    reader.start()
    try:
        kind, first = events.get(timeout=10)
        assert kind == "msg", first
        assert first.name == op.name and first.done is False and first.state == Operation.PENDING

        cancelled = cancel(operations, op.name)
        assert cancelled.done

        seen = [first]
        while True:
            kind, item = events.get(timeout=10)
            if kind == "end":
                break
            assert kind == "msg", f"watch ended with an error: {item.code()} {item.details()}"
            seen.append(item)
        last = seen[-1]
        assert last.done is True and last.state == Operation.CANCELLED and last.error.code == 1
        assert all(not m.done for m in seen[:-1]), "the stream went on after the operation was done"
        assert stream.code() == grpc.StatusCode.OK
    finally:
        stream.cancel()
        reader.join(timeout=5)


def test_watch_of_done_operation_sends_it_once_and_ends(tenants, operations):
    _, op = create(tenants)
    cancel(operations, op.name)
    msgs = list(operations.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=10))
    assert len(msgs) == 1
    assert msgs[0].name == op.name and msgs[0].done and msgs[0].state == Operation.CANCELLED


def test_several_watchers_all_see_the_end(tenants, operations, server):
    _, op = create(tenants)
    channels = [server.new_channel() for _ in range(5)]
    try:
        streams = [operation_pb2_grpc.OperationServiceStub(ch).WatchOperation(
            operation_pb2.WatchOperationRequest(name=op.name), timeout=30) for ch in channels]
        queues = []
        for s in streams:
            q = queue.Queue()
            threading.Thread(target=_collect, args=(s, q), daemon=True).start()
            queues.append(q)
        for q in queues:
            kind, first = q.get(timeout=10)
            assert kind == "msg" and not first.done
        cancel(operations, op.name)
        for q in queues:
            last = None
            while True:
                kind, item = q.get(timeout=10)
                if kind == "end":
                    break
                assert kind == "msg", f"watch ended with an error: {item.code()} {item.details()}"
                last = item
            assert last is not None and last.done and last.state == Operation.CANCELLED
    finally:
        for ch in channels:
            ch.close()


def test_watcher_that_goes_away_does_not_disturb_the_server(tenants, operations, server):
    _, op = create(tenants)
    for _ in range(20):
        ch = server.new_channel()
        s = operation_pb2_grpc.OperationServiceStub(ch).WatchOperation(
            operation_pb2.WatchOperationRequest(name=op.name), timeout=30)
        assert next(s).name == op.name
        s.cancel()
        ch.close()
    done = cancel(operations, op.name)
    assert done.done and done.state == Operation.CANCELLED
    assert get_op(operations, op.name).state == Operation.CANCELLED


def test_watchers_that_go_away_are_released(tenants, operations, server):
    _, op = create(tenants)
    req = operation_pb2.WatchOperationRequest(name=op.name)

    def watch_and_leave():
        s = operations.WatchOperation(req, timeout=30)
        assert next(s).name == op.name
        s.cancel()

    support.assert_no_growth(server, watch_and_leave, warmup=600, rounds=1000, limit_kb=4096,
                             what="watches cancelled by their client")
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    assert ops.CancelOperation(operation_pb2.CancelOperationRequest(name=op.name), timeout=10).done


def test_watch_unknown_or_malformed_operation(operations):
    name = f"operations/{uuid.uuid4()}"
    err = call_error(lambda: list(operations.WatchOperation(
        operation_pb2.WatchOperationRequest(name=name), timeout=10)))
    assert_status(err, grpc.StatusCode.NOT_FOUND, name)
    err = call_error(lambda: list(operations.WatchOperation(
        operation_pb2.WatchOperationRequest(name="nope"), timeout=10)))
    assert_status(err, INVALID, "name")
