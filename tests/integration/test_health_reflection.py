"""grpc.health.v1.Health (Check, Watch, following the store) and server reflection
(grpc.reflection.v1 and v1alpha)."""
import queue
import threading
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import support
from support import (HEALTH_NOT_SERVING, HEALTH_SERVICE_UNKNOWN, HEALTH_SERVING, call_error,
                     health_check, health_watch, reflection_call, unique_id)
from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc

REFLECTION_VERSIONS = ["v1", "v1alpha"]
EXPECTED_SERVICES = set(support.SAASODOO_SERVICES) | {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


# ---------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("service", [""] + support.SAASODOO_SERVICES)
def test_health_check_serving(server, service):
    assert health_check(server.channel(), service) == HEALTH_SERVING


def test_health_check_unknown_service_is_not_found(server):
    err = call_error(health_check, server.channel(), "no.such.Service")
    assert err.code() == grpc.StatusCode.NOT_FOUND, err


def test_health_watch_sends_current_status_and_stays_open(server):
    stream = health_watch(server.channel(), "", timeout=30)
    try:
        assert next(stream).status == HEALTH_SERVING
        # Nothing changes, so the stream stays open with nothing more to say.
        got = queue.Queue()
        t = threading.Thread(target=lambda: got.put(_next_or_end(stream)), daemon=True)
        t.start()
        with pytest.raises(queue.Empty):
            got.get(timeout=1.5)
    finally:
        stream.cancel()


def test_health_watch_of_a_saasodoo_service(server):
    stream = health_watch(server.channel(), "saasodoo.v1.TenantService", timeout=30)
    try:
        assert next(stream).status == HEALTH_SERVING
    finally:
        stream.cancel()


def test_health_watch_unknown_service_says_service_unknown(server):
    stream = health_watch(server.channel(), "no.such.Service", timeout=30)
    try:
        assert next(stream).status == HEALTH_SERVICE_UNKNOWN
    finally:
        stream.cancel()


def test_health_watchers_that_go_away_are_released(server):
    def watch_and_leave():
        s = health_watch(server.channel(), "", timeout=30)
        assert next(s).status == HEALTH_SERVING
        s.cancel()

    support.assert_no_growth(server, watch_and_leave, warmup=600, rounds=1000, limit_kb=4096,
                             what="health watches cancelled by their client")


def test_unary_calls_do_not_grow_the_server(server):
    stub = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("rss")
    stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    req = tenant_pb2.GetTenantRequest(name=f"tenants/{tid}")
    support.assert_no_growth(server, lambda: stub.GetTenant(req, timeout=10), warmup=1000, rounds=2000,
                             limit_kb=4096, what="GetTenant calls")


def _next_or_end(stream):
    try:
        return ("msg", next(stream))
    except StopIteration:
        return ("end", None)
    except grpc.RpcError as e:
        return ("error", e)


def _watch_into(stream, out):
    try:
        for msg in stream:
            out.put(msg.status)
    except grpc.RpcError as e:
        out.put(e)


def test_health_follows_the_store_and_the_server_reconnects(server, pg):
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("pg")
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)

    watch_channel = server.new_channel()
    statuses = queue.Queue()
    stream = health_watch(watch_channel, "", timeout=120)
    threading.Thread(target=_watch_into, args=(stream, statuses), daemon=True).start()
    assert statuses.get(timeout=10) == HEALTH_SERVING
    try:
        pg.stop(mode="fast")

        support.wait_for(lambda: _check_quietly(server) == HEALTH_NOT_SERVING, timeout=20,
                         what="Health/Check to report NOT_SERVING with PostgreSQL stopped")
        assert _check_quietly(server, "saasodoo.v1.TenantService") == HEALTH_NOT_SERVING
        assert _next_status(statuses, 10, HEALTH_SERVING) == HEALTH_NOT_SERVING

        err = call_error(tenants.GetTenant, tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=20)
        assert err.code() == grpc.StatusCode.UNAVAILABLE, f"{err.code()}: {err.details()}"
        assert server.running(), "the server must keep running while the store is down"

        pg.start()

        support.wait_for(lambda: _check_quietly(server) == HEALTH_SERVING, timeout=30,
                         what="Health/Check to report SERVING after PostgreSQL came back")
        assert _next_status(statuses, 10, HEALTH_NOT_SERVING) == HEALTH_SERVING
        # Every pooled connection was broken by the restart; each must be replaced.
        for _ in range(20):
            t = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
            assert t.name == f"tenants/{tid}"
        tid2 = unique_id("pg")
        tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
            tenant_id=tid2, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
        assert tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid2}"), timeout=10).name
    finally:
        if not pg.is_running():
            pg.start()
        stream.cancel()
        watch_channel.close()


def _check_quietly(server, service=""):
    try:
        return health_check(server.channel(), service, timeout=5)
    except grpc.RpcError as e:
        return e.code()


def _next_status(q, timeout, previous):
    """The next status the Watch stream sent that differs from previous; fails if the
    stream ended or nothing new arrived in time."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"Health/Watch sent no change from {previous} within {timeout}s"
        try:
            item = q.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(f"Health/Watch sent no change from {previous} within {timeout}s")
        assert not isinstance(item, grpc.RpcError), f"Health/Watch ended: {item.code()} {item.details()}"
        if item != previous:
            return item


# ---------------------------------------------------------------------------
# Reflection
# ---------------------------------------------------------------------------

def _files(resp):
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in resp.file_descriptor_response.file_descriptor_proto]


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
def test_reflection_lists_every_service(server, version):
    (resp,) = reflection_call(server.channel(), version, [{"list_services": "*"}])
    assert resp.WhichOneof("message_response") == "list_services_response", resp
    names = [s.name for s in resp.list_services_response.service]
    assert len(names) == len(set(names)), names
    assert EXPECTED_SERVICES <= set(names), sorted(EXPECTED_SERVICES - set(names))


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
def test_reflection_file_by_filename(server, version):
    (resp,) = reflection_call(server.channel(), version, [{"file_by_filename": "saasodoo/v1/tenant.proto"}])
    files = {f.name: f for f in _files(resp)}
    assert "saasodoo/v1/tenant.proto" in files, list(files)
    fd = files["saasodoo/v1/tenant.proto"]
    assert fd.package == "saasodoo.v1"
    svc = {s.name: s for s in fd.service}["TenantService"]
    assert [m.name for m in svc.method] == [
        "CreateTenant", "GetTenant", "ListTenants", "UpdateTenant",
        "DeleteTenant", "SuspendTenant", "ResumeTenant", "MigrateTenant"]
    assert "Tenant" in [m.name for m in fd.message_type]
    assert "saasodoo/v1/operation.proto" in fd.dependency


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
@pytest.mark.parametrize("symbol,filename,kind,short", [
    ("saasodoo.v1.TenantService", "saasodoo/v1/tenant.proto", "service", "TenantService"),
    ("saasodoo.v1.Tenant", "saasodoo/v1/tenant.proto", "message_type", "Tenant"),
    ("saasodoo.v1.Operation", "saasodoo/v1/operation.proto", "message_type", "Operation"),
    ("saasodoo.v1.AdminService", "saasodoo/v1/admin.proto", "service", "AdminService"),
    ("grpc.health.v1.Health", "grpc/health/v1/health.proto", "service", "Health"),
])
def test_reflection_file_containing_symbol(server, version, symbol, filename, kind, short):
    (resp,) = reflection_call(server.channel(), version, [{"file_containing_symbol": symbol}])
    files = {f.name: f for f in _files(resp)}
    assert filename in files, list(files)
    assert short in [x.name for x in getattr(files[filename], kind)]


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
def test_reflection_method_and_nested_symbols(server, version):
    responses = reflection_call(server.channel(), version, [
        {"file_containing_symbol": "saasodoo.v1.TenantService.CreateTenant"},
        {"file_containing_symbol": "saasodoo.v1.Tenant.State"},
    ])
    assert len(responses) == 2
    for resp in responses:
        assert "saasodoo/v1/tenant.proto" in [f.name for f in _files(resp)]


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
def test_reflection_unknown_symbol_and_file_are_not_found_and_stream_continues(server, version):
    responses = reflection_call(server.channel(), version, [
        {"file_containing_symbol": "saasodoo.v1.NoSuchThing"},
        {"file_by_filename": "saasodoo/v1/nope.proto"},
        {"list_services": ""},
    ])
    assert len(responses) == 3
    for resp in responses[:2]:
        assert resp.WhichOneof("message_response") == "error_response", resp
        assert resp.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        assert resp.error_response.error_message
    assert responses[2].WhichOneof("message_response") == "list_services_response"
    assert EXPECTED_SERVICES <= {s.name for s in responses[2].list_services_response.service}


@pytest.mark.parametrize("version", REFLECTION_VERSIONS)
def test_reflection_is_enough_to_call_the_api(server, version):
    """What a reflection-aware tool does: resolve a service and every file it depends
    on, build the types, and call a method with them."""
    ch = server.channel()
    wanted = ["saasodoo.v1.TenantService"]
    (resp,) = reflection_call(ch, version, [{"file_containing_symbol": wanted[0]}])
    files = {f.name: f for f in _files(resp)}
    missing = set()
    for _ in range(20):
        missing = {d for f in files.values() for d in f.dependency} - set(files)
        if not missing:
            break
        for resp in reflection_call(ch, version, [{"file_by_filename": n} for n in sorted(missing)]):
            for f in _files(resp):
                files.setdefault(f.name, f)
    assert not missing, f"reflection could not resolve {sorted(missing)}"

    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    svc = pool.FindServiceByName("saasodoo.v1.TenantService")
    method = svc.methods_by_name["GetTenant"]
    factory = message_factory.MessageFactory(pool)
    req_cls = factory.GetPrototype(method.input_type)
    resp_cls = factory.GetPrototype(method.output_type)

    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub)
    tid = unique_id("refl")
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic", display_name="Via reflection")), timeout=10)
    call = ch.unary_unary("/saasodoo.v1.TenantService/GetTenant",
                          request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)
    got = call(req_cls(name=f"tenants/{tid}"), timeout=10)
    assert got.name == f"tenants/{tid}"
    assert got.display_name == "Via reflection"
