"""Transport-level behaviour: routing, UNIMPLEMENTED methods, malformed bytes, the
receive size cap, deadlines, request ids and the access log."""
import re
import shutil
import struct
import subprocess
import time
import uuid

import grpc
import pytest

import support
from support import assert_status, call_error, raw_unary, unique_id
from saasodoo.v1 import operation_pb2, operation_pb2_grpc, tenant_pb2, tenant_pb2_grpc

# Transport tests: the operations they record are parked in the queue
# (conftest.parked_operations), so an operation stays PENDING for the watch tests and
# no tenant is provisioned.
pytestmark = pytest.mark.usefixtures("parked_operations")

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MiB = 1024 * 1024


def _unimplemented_methods():
    support.require_build()
    return [(path, m) for path, m in support.all_saasodoo_methods() if path not in support.IMPLEMENTED_METHODS]


def test_descriptor_set_has_every_service_and_implemented_method():
    paths = [p for p, _ in support.all_saasodoo_methods()]
    services = sorted({p.split("/")[1] for p in paths})
    assert services == sorted(support.SAASODOO_SERVICES)
    assert support.IMPLEMENTED_METHODS <= set(paths)
    assert len(_unimplemented_methods()) == len(paths) - len(support.IMPLEMENTED_METHODS)
    # The issue names 45 methods across the seven services.
    assert len(paths) >= 45


@pytest.mark.parametrize("path,method", _unimplemented_methods(),
                         ids=[p for p, _ in _unimplemented_methods()])
def test_unimplemented_method_answers_unimplemented_naming_it(server, path, method):
    ch = server.channel()
    # An empty message is a valid encoding of every request type.
    if method.server_streaming:
        err = call_error(lambda: list(ch.unary_stream(path, request_serializer=lambda x: x,
                                                      response_deserializer=lambda x: x)(b"", timeout=10)))
    else:
        err = call_error(raw_unary, ch, path, b"", timeout=10)
    assert_status(err, grpc.StatusCode.UNIMPLEMENTED, method.name)


def test_implemented_methods_are_routed(server):
    ch = server.channel()
    for path in sorted(support.IMPLEMENTED_METHODS):
        if path.endswith(("/WatchOperation", "/DownloadBackupPart")):
            fn = ch.unary_stream(path, request_serializer=lambda x: x, response_deserializer=lambda x: x)
            try:
                list(fn(b"", timeout=10))
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
        else:
            try:
                raw_unary(ch, path, b"", timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
        assert code != grpc.StatusCode.UNIMPLEMENTED, path


@pytest.mark.parametrize("path", [
    "/saasodoo.v1.TenantService/NoSuchMethod",
    "/saasodoo.v1.NoSuchService/GetTenant",
    "/saasodoo.v2.TenantService/GetTenant",
    "/grpc.health.v1.Health/NoSuchMethod",
    "/nonsense",
])
def test_unknown_method_is_unimplemented(server, path):
    err = call_error(raw_unary, server.channel(), path, b"", timeout=10)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
    assert support.health_check(server.channel()) == support.HEALTH_SERVING


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num, wire, payload):
    """One encoded field: payload is the raw value (varint bytes for wire type 0)."""
    key = _varint((num << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


GARBAGE = [
    b"\x0a\x10abc",                            # length-delimited field longer than the message
    b"\xff\xff\xff\xff",                       # a tag whose varint never ends
    b"\x08" + b"\xff" * 11 + b"\x01",          # an over-long varint
    b"\x0f",                                   # wire type 7 does not exist
    b"\x0a\x05hello\x12",                      # good field then a truncated one
    b"\x00\x01\x02",                           # field number 0
]


@pytest.mark.parametrize("payload", GARBAGE, ids=[g.hex() for g in GARBAGE])
@pytest.mark.parametrize("path", [
    "/saasodoo.v1.TenantService/GetTenant",
    "/saasodoo.v1.TenantService/CreateTenant",
    "/saasodoo.v1.TenantService/ListTenants",
    "/saasodoo.v1.OperationService/GetOperation",
])
def test_malformed_request_bytes_are_invalid_argument(server, path, payload):
    err = call_error(raw_unary, server.channel(), path, payload, timeout=10)
    assert err.code() == INVALID, f"{err.code()}: {err.details()}"
    assert err.details(), "the error should say what is wrong"


def test_malformed_streaming_request_is_invalid_argument(server):
    ch = server.channel()
    fn = ch.unary_stream("/saasodoo.v1.OperationService/WatchOperation",
                         request_serializer=lambda x: x, response_deserializer=lambda x: x)
    err = call_error(lambda: list(fn(b"\x0a\x10abc", timeout=10)))
    assert err.code() == INVALID, f"{err.code()}: {err.details()}"


BAD_UTF8 = b"\xff\xfe bad \xc3"


def _create_payload(tid, **tenant_fields):
    fields = {"display_name": (2, b"ok"), "plan": (4, b"plans/basic")}
    fields.update(tenant_fields)
    tenant = b"".join(_field(num, 2, val) for num, val in fields.values())
    return _field(1, 2, tid.encode()) + _field(2, 2, tenant)


def _utf8_cases():
    tid = unique_id("utf")
    return [
        ("CreateTenant display_name", "/saasodoo.v1.TenantService/CreateTenant", tid + "-a",
         _create_payload(tid + "-a", display_name=(2, BAD_UTF8))),
        ("CreateTenant odoo_version", "/saasodoo.v1.TenantService/CreateTenant", tid + "-b",
         _create_payload(tid + "-b", odoo_version=(9, BAD_UTF8))),
        ("CreateTenant label value", "/saasodoo.v1.TenantService/CreateTenant", tid + "-c",
         _create_payload(tid + "-c", labels=(10, _field(1, 2, b"k") + _field(2, 2, BAD_UTF8)))),
        ("CreateTenant request_id", "/saasodoo.v1.TenantService/CreateTenant", tid + "-d",
         _create_payload(tid + "-d") + _field(3, 2, BAD_UTF8)),
        ("CreateTenant owner", "/saasodoo.v1.TenantService/CreateTenant", tid + "-e",
         _create_payload(tid + "-e", owner=(3, b"users/" + BAD_UTF8))),
        ("GetTenant name", "/saasodoo.v1.TenantService/GetTenant", None,
         _field(1, 2, b"tenants/" + BAD_UTF8)),
        ("ListTenants filter", "/saasodoo.v1.TenantService/ListTenants", None,
         _field(3, 2, b'owner = "users/' + BAD_UTF8 + b'"')),
        ("ListTenants page_token", "/saasodoo.v1.TenantService/ListTenants", None,
         _field(2, 2, BAD_UTF8)),
        ("ListOperations filter", "/saasodoo.v1.OperationService/ListOperations", None,
         _field(3, 2, b'target = "tenants/' + BAD_UTF8 + b'"')),
        ("GetOperation name", "/saasodoo.v1.OperationService/GetOperation", None,
         _field(1, 2, b"operations/" + BAD_UTF8)),
    ]


@pytest.mark.parametrize("what,path,tid,payload", _utf8_cases(), ids=[c[0] for c in _utf8_cases()])
def test_invalid_utf8_in_string_field_is_invalid_argument(server, what, path, tid, payload):
    err = call_error(raw_unary, server.channel(), path, payload, timeout=10)
    assert err.code() == INVALID, f"{what}: {err.code()}: {err.details()}"
    if tid:
        stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
        err = call_error(stub.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
        assert err.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_utf8_in_update_is_invalid_argument(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("utf")
    stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic", display_name="Fine")), timeout=10)
    tenant = _field(1, 2, f"tenants/{tid}".encode()) + _field(2, 2, BAD_UTF8)
    payload = _field(1, 2, tenant) + _field(2, 2, _field(1, 2, b"display_name"))
    err = call_error(raw_unary, server.channel(), "/saasodoo.v1.TenantService/UpdateTenant", payload, timeout=10)
    assert err.code() == INVALID, f"{err.code()}: {err.details()}"
    assert stub.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10).display_name == "Fine"


def test_unknown_fields_are_ignored(server):
    tid = unique_id("unk")
    payload = _create_payload(tid) + _field(99, 2, b"from a newer client") + _field(100, 0, _varint(7))
    raw = raw_unary(server.channel(), "/saasodoo.v1.TenantService/CreateTenant", payload, timeout=10)
    assert operation_pb2.Operation.FromString(raw).target == f"tenants/{tid}"


def test_gzip_compressed_requests_are_accepted(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("gz")
    op = stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic", display_name="z" * 90)),
        timeout=10, compression=grpc.Compression.Gzip)
    assert op.target == f"tenants/{tid}"
    got = stub.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10,
                         compression=grpc.Compression.Gzip)
    assert got.display_name == "z" * 90


def test_server_keeps_serving_after_malformed_requests(server):
    ch = server.channel()
    for payload in GARBAGE * 5:
        call_error(raw_unary, ch, "/saasodoo.v1.TenantService/CreateTenant", payload, timeout=10)
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id()
    op = stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    assert op.target == f"tenants/{tid}"
    assert support.health_check(ch) == support.HEALTH_SERVING
    assert server.running()


def test_request_over_4_mib_is_resource_exhausted(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    huge = tenant_pb2.GetTenantRequest(name="tenants/" + "a" * (4 * MiB + 16))
    err = call_error(stub.GetTenant, huge, timeout=30)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{err.code()}: {err.details()}"
    # A big request under the cap reaches the handler, which rejects the name.
    big = tenant_pb2.GetTenantRequest(name="tenants/" + "a" * (3 * MiB))
    err = call_error(stub.GetTenant, big, timeout=30)
    assert err.code() == INVALID, f"{err.code()}: {err.details()}"
    assert support.health_check(server.channel()) == support.HEALTH_SERVING


def test_tiny_deadlines_end_in_deadline_exceeded_or_ok_and_server_keeps_serving(server):
    # With a deadline of a microsecond the call may end on either side, or even finish in
    # time (gRPC core rounds deadlines up to its millisecond clock): any other outcome is
    # wrong. The server's own answer to an expired deadline is checked with nghttp below.
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    outcomes = set()
    for _ in range(50):
        try:
            stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=500), timeout=1e-6)
            outcomes.add("OK")
        except grpc.RpcError as e:
            outcomes.add(e.code().name)
    assert outcomes <= {"OK", "DEADLINE_EXCEEDED"}, outcomes
    assert "DEADLINE_EXCEEDED" in outcomes
    tid = unique_id()
    stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    assert stub.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10).name == f"tenants/{tid}"


def _pending_operation(server):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    return tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=unique_id("dl"), tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)


def test_deadline_ends_a_watch_and_the_call_is_logged(server):
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    op = _pending_operation(server)
    rid = f"deadline-{uuid.uuid4()}"
    t0 = time.monotonic()
    stream = ops.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=0.5,
                                metadata=(("x-request-id", rid),))
    assert next(stream).name == op.name
    err = call_error(lambda: list(stream))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert time.monotonic() - t0 < 5

    def logged():
        return [ln for ln in server.log_text().splitlines() if rid in ln and "WatchOperation" in ln]
    support.wait_for(logged, timeout=5, what=f"an access log line for the watch {rid}")


def test_watches_ended_by_their_deadline_are_released(server):
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    op = _pending_operation(server)
    req = operation_pb2.WatchOperationRequest(name=op.name)

    def twenty_watches_until_deadline():
        streams = [ops.WatchOperation(req, timeout=0.03) for _ in range(20)]
        for s in streams:
            try:
                for _ in s:
                    pass
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e

    support.assert_no_growth(server, twenty_watches_until_deadline, warmup=30, rounds=50, limit_kb=4096,
                             what="watches ended by their deadline", calls_per_round=20)


def _grpc_frame(msg: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def _nghttp_status(server, tmp_path, path, body, headers):
    """Sends one gRPC request with nghttp; returns the grpc-status the server sent."""
    assert shutil.which("nghttp"), "nghttp is missing: apt-get install nghttp2-client"
    data = tmp_path / "req.bin"
    data.write_bytes(_grpc_frame(body))
    argv = ["nghttp", "-v", "-n", "-t", "10",
            "-H", ":method: POST", "-H", "content-type: application/grpc", "-H", "te: trailers",
            "-H", f"authorization: Bearer {server.admin_token()}"]
    for h in headers:
        argv += ["-H", h]
    argv += ["-d", str(data), f"http://{server.address}{path}"]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
    codes = re.findall(r"grpc-status: (\d+)", p.stdout)
    assert codes, f"no grpc-status in the response:\n{p.stdout[-3000:]}"
    return int(codes[-1])


def test_server_answers_deadline_exceeded_for_an_expired_deadline(server, tmp_path):
    """The client's own timer cannot mask the server here: nghttp sends a grpc-timeout
    that has expired on arrival and reads whatever status the server sends. (A zero
    timeout: gRPC core rounds 1n up to its millisecond clock, and a fast handler may
    rightly finish within that millisecond.)"""
    tid = unique_id()
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    body = tenant_pb2.GetTenantRequest(name=f"tenants/{tid}").SerializeToString()
    # Sanity: the same request without a deadline succeeds.
    assert _nghttp_status(server, tmp_path, "/saasodoo.v1.TenantService/GetTenant", body, []) == 0
    for _ in range(5):
        status = _nghttp_status(server, tmp_path, "/saasodoo.v1.TenantService/GetTenant", body,
                                ["grpc-timeout: 0n"])
        assert status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], f"grpc-status {status}"
    tenants_body = tenant_pb2.CreateTenantRequest(
        tenant_id=unique_id("late"), tenant=tenant_pb2.Tenant(plan="plans/basic"))
    status = _nghttp_status(server, tmp_path, "/saasodoo.v1.TenantService/CreateTenant",
                            tenants_body.SerializeToString(), ["grpc-timeout: 0n"])
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], f"grpc-status {status}"
    # Work on an expired call stops: the late tenant was not created.
    err = call_error(stub.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{tenants_body.tenant_id}"),
                     timeout=10)
    assert err.code() == grpc.StatusCode.NOT_FOUND


def _metadata_value(md, key):
    for k, v in md or ():
        if k == key:
            return v
    return None


def test_request_id_is_echoed_in_initial_metadata(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    rid = f"test-{uuid.uuid4()}"
    _, call = stub.ListTenants.with_call(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10,
                                         metadata=(("x-request-id", rid),))
    assert _metadata_value(call.initial_metadata(), "x-request-id") == rid


def test_request_id_is_generated_when_absent(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    seen = set()
    for _ in range(3):
        _, call = stub.ListTenants.with_call(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10)
        rid = _metadata_value(call.initial_metadata(), "x-request-id")
        assert rid, f"no x-request-id in {call.initial_metadata()!r}"
        seen.add(rid)
    assert len(seen) == 3, "generated request ids must differ per call"


def test_long_request_id_does_not_break_the_call(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    rid = "r" * 2000
    _, call = stub.ListTenants.with_call(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10,
                                         metadata=(("x-request-id", rid),))
    assert _metadata_value(call.initial_metadata(), "x-request-id")


def test_request_id_is_returned_on_errors(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    rid = f"test-{uuid.uuid4()}"
    err = call_error(stub.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{unique_id('nf')}"),
                     timeout=10, metadata=(("x-request-id", rid),))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    md = tuple(err.initial_metadata() or ()) + tuple(err.trailing_metadata() or ())
    assert _metadata_value(md, "x-request-id") == rid, md
    err = call_error(stub.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{unique_id('nf')}"), timeout=10)
    md = tuple(err.initial_metadata() or ()) + tuple(err.trailing_metadata() or ())
    assert _metadata_value(md, "x-request-id"), md


def test_request_id_on_streaming_calls(server, tmp_path):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    op = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=unique_id(), tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    ops = server.stub(operation_pb2_grpc.OperationServiceStub)
    rid = f"test-{uuid.uuid4()}"
    stream = ops.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=10,
                                metadata=(("x-request-id", rid),))
    try:
        assert next(stream).name == op.name
        assert _metadata_value(stream.initial_metadata(), "x-request-id") == rid
    finally:
        stream.cancel()


def test_access_log_names_request_id_method_and_status(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    rid = f"log-{uuid.uuid4()}"
    call_error(stub.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{unique_id('nf')}"),
               timeout=10, metadata=(("x-request-id", rid),))

    def line():
        for ln in server.log_text().splitlines():
            if rid in ln:
                return ln
        return None

    ln = support.wait_for(line, timeout=5, what=f"an access log line with {rid}")
    assert "GetTenant" in ln, ln
    assert re.search(r"NOT_FOUND|\b5\b", ln), ln


def test_many_concurrent_connections(server):
    channels = [server.new_channel() for _ in range(30)]
    try:
        futures = [tenant_pb2_grpc.TenantServiceStub(ch).ListTenants.future(
            tenant_pb2.ListTenantsRequest(page_size=1), timeout=20) for ch in channels]
        for f in futures:
            assert f.result().total_size >= 0
    finally:
        for ch in channels:
            ch.close()
    time.sleep(0.2)
    assert support.health_check(server.channel()) == support.HEALTH_SERVING
