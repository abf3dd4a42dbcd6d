"""Authorization as a matrix: every RPC of every saasodoo.v1 service, called anonymously, as a
customer on their own resource, as a customer on another customer's resource, and as an
admin. The expectations are written here, independently of the server's table: anonymous
callers get UNAUTHENTICATED except on the public methods; a customer reaching another's
tenant, operation, backup or user gets NOT_FOUND worded exactly like a resource that does not
exist; customers get PERMISSION_DENIED on operator methods; admins are never refused."""
import grpc
import pytest

import support
from support import unique_id
from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc

PUBLIC = {"SignUp", "SignIn", "RefreshSession", "HandleBillingEvent"}
ADMIN_ONLY = {"SuspendTenant", "ResumeTenant", "MigrateTenant", "GetPlatformStatus",
              "DownloadBackupPart"}
# method → (kind of resource, field path); a method not named here needs only a signed-in user
RESOURCE = {
    "GetTenant": ("tenant", "name"), "UpdateTenant": ("tenant", "tenant.name"),
    "DeleteTenant": ("tenant", "name"),
    "GetOperation": ("operation", "name"), "WatchOperation": ("operation", "name"),
    "CancelOperation": ("operation", "name"),
    "CreateBackup": ("tenant", "parent"), "ListBackups": ("tenant", "parent"),
    "GetBackup": ("backup", "name"), "DeleteBackup": ("backup", "name"),
    "RestoreBackup": ("backup", "name"), "GetBackupPolicy": ("policy", "name"),
    "UpdateBackupPolicy": ("policy", "policy.name"),
    "GetSubscription": ("tenant", "name"), "ChangePlan": ("tenant", "name"),
    "GetTenantUsage": ("tenant", "name"),
    "CreateApiKey": ("user", "parent"), "ListApiKeys": ("user", "parent"),
    "DeleteApiKey": ("apikey", "name"),
}
AUTH_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@pytest.fixture(scope="module")
def world(session_server, parked_operations):
    """Two customers, each with a tenant (and its create operation)."""
    srv = session_server
    out = {}
    for who in ("alice", "bob"):
        session = srv.sign_up()
        tid = unique_id(who[:3])
        op = srv.stub(tenant_pb2_grpc.TenantServiceStub, token=session.access_token).CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant_id=tid, tenant=tenant_pb2.Tenant(
                plan="plans/basic")), timeout=10)
        out[who] = {"session": session, "tenant": tid, "operation": op.name,
                    "user": session.user.name}
    return out


def resource_name(kind, owner):
    tid = owner["tenant"]
    return {"tenant": f"tenants/{tid}", "operation": owner["operation"],
            "backup": f"tenants/{tid}/backups/b1", "policy": f"tenants/{tid}/backupPolicy",
            "user": owner["user"], "apikey": f"{owner['user']}/apiKeys/k1"}[kind]


def build_request(method, value):
    cls = support.message_class(method.input_type.full_name)
    req = cls()
    res = RESOURCE.get(method.name)
    if res:
        *parents, leaf = res[1].split(".")
        m = req
        for p in parents:
            m = getattr(m, p)
        setattr(m, leaf, value)
    return req


def call(channel, path, method, req):
    out_cls = support.message_class(method.output_type.full_name)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=out_cls.FromString)(req, timeout=5)
            for _ in stream:
                stream.cancel()
                break
        else:
            channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=out_cls.FromString)(req, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


METHODS = [(p, m) for p, m in support.all_saasodoo_methods() if not m.client_streaming]


@pytest.mark.parametrize("path,method", METHODS, ids=[p.rsplit("/", 1)[1] for p, _ in METHODS])
def test_matrix(session_server, world, path, method):
    srv = session_server
    name = method.name
    alice, bob = world["alice"], world["bob"]
    res = RESOURCE.get(name)
    own = build_request(method, resource_name(res[0], alice) if res else "")
    other = build_request(method, resource_name(res[0], bob) if res else "")
    as_alice = srv.new_channel(token=alice["session"].access_token)

    # anonymous
    code, msg = call(srv.raw_channel(), path, method, own)
    if name in PUBLIC:
        assert code != grpc.StatusCode.UNAUTHENTICATED, msg
    else:
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, msg)

    # a customer on another customer's resource
    code, msg = call(as_alice, path, method, other)
    if name in ADMIN_ONLY or path.startswith("/saasodoo.v1.AdminService/"):
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, msg)
    elif res:
        assert code == grpc.StatusCode.NOT_FOUND, (code, msg)
        assert bob["tenant"] not in msg or "does not exist" in msg, msg
        # worded exactly as for a resource that does not exist at all
        missing = {**bob, "tenant": "nosuchtenant" + bob["tenant"][-6:],
                   "operation": "operations/00000000-0000-4000-8000-000000000000",
                   "user": "users/u0000000000000000"}
        code2, msg2 = call(as_alice, path, method,
                           build_request(method, resource_name(res[0], missing)))
        assert code2 == grpc.StatusCode.NOT_FOUND, (code2, msg2)
        norm = lambda s, o: (s.replace(o["tenant"], "X").replace(o["operation"].split("/")[-1], "X")
                             .replace(o["user"].split("/")[-1], "X"))
        assert norm(msg, bob) == norm(msg2, missing), (msg, msg2)
    else:
        assert code not in AUTH_CODES, (code, msg)

    # a customer on their own resource: never refused for access reasons
    code, msg = call(as_alice, path, method, own)
    if name in ADMIN_ONLY or path.startswith("/saasodoo.v1.AdminService/"):
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, msg)
    else:
        assert code not in AUTH_CODES, (code, msg)
        if res and res[0] in ("tenant", "operation"):
            assert not (code == grpc.StatusCode.NOT_FOUND and "does not exist" in msg
                        and (alice["tenant"] in msg or "operation" in msg)), msg

    # the admin, on anyone's resource
    code, msg = call(srv.channel(), path, method, other)
    assert code not in AUTH_CODES, (code, msg)


def test_lists_show_a_customer_only_their_own(session_server, world):
    srv = session_server
    alice, bob = world["alice"], world["bob"]
    tenants = srv.stub(tenant_pb2_grpc.TenantServiceStub, token=alice["session"].access_token)
    names = [t.name for t in tenants.ListTenants(tenant_pb2.ListTenantsRequest(page_size=500),
                                                 timeout=10).tenants]
    assert names == [f"tenants/{alice['tenant']}"]
    # naming someone else as owner in the filter shows nothing
    other = tenants.ListTenants(tenant_pb2.ListTenantsRequest(
        filter=f'owner = "{bob["user"]}"'), timeout=10).tenants
    assert list(other) == []
    from saasodoo.v1 import operation_pb2, operation_pb2_grpc
    ops = srv.stub(operation_pb2_grpc.OperationServiceStub, token=alice["session"].access_token)
    targets = {o.target for o in ops.ListOperations(
        operation_pb2.ListOperationsRequest(page_size=500), timeout=10).operations}
    assert targets == {f"tenants/{alice['tenant']}"}
    # the admin sees both, and can narrow by owner
    admin = srv.stub(tenant_pb2_grpc.TenantServiceStub)
    for who in (alice, bob):
        names = [t.name for t in admin.ListTenants(tenant_pb2.ListTenantsRequest(
            filter=f'owner = "{who["user"]}"'), timeout=10).tenants]
        assert names == [f"tenants/{who['tenant']}"]
