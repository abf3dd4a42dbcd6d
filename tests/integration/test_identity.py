"""IdentityService and access control: sign-up and sign-in, rotating refresh tokens with reuse
detection, sign-out, API keys, disabled users, the first admin (--create-admin and the
bootstrap entry), roles, the audit log, rate limits and forged or expired tokens."""
import base64
import json
import subprocess
import time

import grpc
import pytest
from google.protobuf import field_mask_pb2

import support
from support import assert_status, call_error, unique_id
from saasodoo.v1 import (admin_pb2, admin_pb2_grpc, identity_pb2, identity_pb2_grpc, tenant_pb2,
                         tenant_pb2_grpc)

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
User = identity_pb2.User


def anon(server, cls):
    return cls(server.raw_channel())


def me(server, token):
    return server.stub(identity_pb2_grpc.IdentityServiceStub, token=token).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), timeout=10)


def test_sign_up_sign_in_and_current_user(server, parked_operations):
    email = f"{unique_id('su')}@example.com"
    s = server.sign_up(email, password="a-long-password", display_name="Ada")
    assert s.access_token.count(".") == 2 and s.refresh_token
    assert s.user.email == email and s.user.role == User.CUSTOMER and s.user.name.startswith("users/")
    assert s.access_token_expire_time.seconds > time.time() + 60
    assert s.refresh_token_expire_time.seconds > s.access_token_expire_time.seconds
    u = me(server, s.access_token)
    assert (u.name, u.email, u.display_name) == (s.user.name, email, "Ada")
    # sign in again, with the email in another case
    s2 = server.sign_in(email.upper(), "a-long-password")
    assert s2.user.name == s.user.name and s2.access_token != s.access_token
    assert me(server, s2.access_token).last_sign_in_time.seconds > 0


@pytest.mark.parametrize("email,password,field,needle", [
    ("no-at-sign", "long-enough-password", "email", "not an email address"),
    ("a@b", "long-enough-password", "email", "not an email address"),
    ("ok@example.com", "short", "password", "at least 10 characters"),
    ("ok@example.com", "", "password", "at least 10 characters"),
])
def test_sign_up_rejects_bad_input(server, email, password, field, needle):
    stub = anon(server, identity_pb2_grpc.IdentityServiceStub)
    err = call_error(stub.SignUp, identity_pb2.SignUpRequest(email=email, password=password),
                     timeout=10)
    assert_status(err, INVALID, needle, field)


def test_sign_up_twice_and_wrong_passwords(server):
    email = f"{unique_id('dup')}@example.com"
    server.sign_up(email)
    stub = anon(server, identity_pb2_grpc.IdentityServiceStub)
    err = call_error(stub.SignUp, identity_pb2.SignUpRequest(
        email=email.upper(), password="another-password"), timeout=10)
    assert_status(err, grpc.StatusCode.ALREADY_EXISTS, "already exists")
    wrong = call_error(server.sign_in, email, "not-the-password")
    unknown = call_error(server.sign_in, f"nobody-{email}", "not-the-password")
    # the same answer whether or not the account exists
    assert_status(wrong, UNAUTH, "wrong email or password")
    assert_status(unknown, UNAUTH, "wrong email or password")
    assert wrong.details() == unknown.details()


def test_calls_without_good_credentials_are_refused(server):
    tenants = anon(server, tenant_pb2_grpc.TenantServiceStub)
    err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(), timeout=10)
    assert_status(err, UNAUTH, "needs credentials", "Bearer")
    for header, needle in [("Basic dXNlcjpwYXNz", "must be 'Bearer"),
                           ("Bearer not.a.token", ""),
                           ("Bearer sdo_notakeyatall", "API key is not valid"),
                           ("Bearer " + "x" * 7000, "")]:
        err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(), timeout=10,
                         metadata=[("authorization", header)])
        assert_status(err, UNAUTH, needle)
    # health and reflection need nothing
    assert support.health_check(server.raw_channel()) == 1


def _forge(payload, key_pem=None):
    """A token signed with a key of the test's own (ES256)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    key = (serialization.load_pem_private_key(key_pem, None) if key_pem
           else ec.generate_private_key(ec.SECP256R1()))
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    der = key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_forged_and_expired_tokens_are_refused(server):
    s = server.sign_up()
    uid = s.user.name.split("/")[1]
    now = int(time.time())
    claims = {"iss": "saasodoo", "aud": "saasodoo", "sub": uid, "iat": now, "exp": now + 600}
    # signed by a stranger's key
    err = call_error(me, server, _forge(claims))
    assert_status(err, UNAUTH)
    # signed by the server's own key, but expired / for another audience
    pem = (server.data_dir / "jwt-signing.pem").read_bytes()
    for bad, needle in [({**claims, "exp": now - 120}, "expired"),
                        ({**claims, "aud": "someone-else"}, "audience")]:
        err = call_error(me, server, _forge(bad, pem))
        assert_status(err, UNAUTH, needle)
    # and a good one made the same way works (the check above is not vacuous)
    assert me(server, _forge(claims, pem)).name == s.user.name


def test_refresh_rotates_and_reuse_revokes_the_session(server):
    s = server.sign_up()
    stub = anon(server, identity_pb2_grpc.IdentityServiceStub)
    r1 = stub.RefreshSession(identity_pb2.RefreshSessionRequest(refresh_token=s.refresh_token),
                             timeout=10)
    assert r1.refresh_token != s.refresh_token and r1.user.name == s.user.name
    assert me(server, r1.access_token).name == s.user.name
    r2 = stub.RefreshSession(identity_pb2.RefreshSessionRequest(refresh_token=r1.refresh_token),
                             timeout=10)
    # the first token again: someone copied it; the whole session ends
    err = call_error(stub.RefreshSession,
                     identity_pb2.RefreshSessionRequest(refresh_token=s.refresh_token), timeout=10)
    assert_status(err, UNAUTH, "already used", "revoked")
    err = call_error(stub.RefreshSession,
                     identity_pb2.RefreshSessionRequest(refresh_token=r2.refresh_token), timeout=10)
    assert_status(err, UNAUTH)
    err = call_error(me, server, r2.access_token)
    assert_status(err, UNAUTH, "session has ended")
    err = call_error(stub.RefreshSession, identity_pb2.RefreshSessionRequest(), timeout=10)
    assert_status(err, INVALID, "refresh_token")


def test_sign_out_ends_the_session(server):
    s = server.sign_up()
    ident = server.stub(identity_pb2_grpc.IdentityServiceStub, token=s.access_token)
    other = server.sign_in(s.user.email, "customer-password-1")  # a second session
    ident.SignOut(identity_pb2.SignOutRequest(refresh_token=s.refresh_token), timeout=10)
    assert_status(call_error(me, server, s.access_token), UNAUTH, "session has ended")
    err = call_error(anon(server, identity_pb2_grpc.IdentityServiceStub).RefreshSession,
                     identity_pb2.RefreshSessionRequest(refresh_token=s.refresh_token), timeout=10)
    assert_status(err, UNAUTH)
    assert me(server, other.access_token).name == s.user.name  # only that session ended


def test_api_keys(server, parked_operations):
    s = server.sign_up()
    ident = server.stub(identity_pb2_grpc.IdentityServiceStub, token=s.access_token)
    key = ident.CreateApiKey(identity_pb2.CreateApiKeyRequest(
        parent=s.user.name, api_key=identity_pb2.ApiKey(display_name="ci deploys")), timeout=10)
    assert key.secret.startswith("sdo_") and len(key.secret) > 40
    assert key.name.startswith(s.user.name + "/apiKeys/") and key.secret.startswith(key.prefix)
    listed = ident.ListApiKeys(identity_pb2.ListApiKeysRequest(parent="users/me"), timeout=10)
    assert [(k.name, k.prefix, k.secret) for k in listed.api_keys] == [(key.name, key.prefix, "")]
    # the key works as a bearer credential, as its owner
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub, token=key.secret)
    tid = unique_id("key")
    op = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    assert op.name
    assert support.get_tenant(server, tid).owner == s.user.name
    assert me(server, key.secret).name == s.user.name
    listed = ident.ListApiKeys(identity_pb2.ListApiKeysRequest(parent=s.user.name), timeout=10)
    assert listed.api_keys[0].last_used_time.seconds > 0
    # bad input
    err = call_error(ident.CreateApiKey, identity_pb2.CreateApiKeyRequest(
        parent=s.user.name, api_key=identity_pb2.ApiKey()), timeout=10)
    assert_status(err, INVALID, "display_name")
    # another customer sees none of it
    other = server.sign_up()
    ident2 = server.stub(identity_pb2_grpc.IdentityServiceStub, token=other.access_token)
    for call, req in [(ident2.ListApiKeys, identity_pb2.ListApiKeysRequest(parent=s.user.name)),
                      (ident2.DeleteApiKey, identity_pb2.DeleteApiKeyRequest(name=key.name))]:
        assert_status(call_error(call, req, timeout=10), NOT_FOUND)
    # deleting it stops it at once
    ident.DeleteApiKey(identity_pb2.DeleteApiKeyRequest(name=key.name), timeout=10)
    assert_status(call_error(me, server, key.secret), UNAUTH, "API key is not valid")
    assert_status(call_error(ident.DeleteApiKey, identity_pb2.DeleteApiKeyRequest(name=key.name),
                             timeout=10), NOT_FOUND)


def _update_user(server, name, paths, **fields):
    return support.admin_stub(server).UpdateUser(admin_pb2.UpdateUserRequest(
        user=User(name=name, **fields), update_mask=field_mask_pb2.FieldMask(paths=paths)),
        timeout=10)


def test_a_disabled_user_is_locked_out_at_once(server):
    s = server.sign_up()
    key = server.stub(identity_pb2_grpc.IdentityServiceStub, token=s.access_token).CreateApiKey(
        identity_pb2.CreateApiKeyRequest(parent="users/me",
                                         api_key=identity_pb2.ApiKey(display_name="k")),
        timeout=10)
    assert me(server, s.access_token).name == me(server, key.secret).name
    u = _update_user(server, s.user.name, ["disabled"], disabled=True)
    assert u.disabled
    for cred in (s.access_token, key.secret):
        assert_status(call_error(me, server, cred), DENIED, "disabled")
    assert_status(call_error(server.sign_in, s.user.email, "customer-password-1"), DENIED,
                  "disabled")
    _update_user(server, s.user.name, ["disabled"], disabled=False)
    assert me(server, key.secret).name == s.user.name
    # sessions of a disabled user were ended; signing in again works
    assert_status(call_error(me, server, s.access_token), UNAUTH)
    assert me(server, server.sign_in(s.user.email, "customer-password-1").access_token)


def test_roles_list_users_and_the_last_admin(server):
    s = server.sign_up()
    admins = support.admin_stub(server).ListUsers(
        admin_pb2.ListUsersRequest(filter="role = ADMIN"), timeout=10).users
    assert support.ADMIN_EMAIL in [u.email for u in admins]
    assert all(u.role == User.ADMIN for u in admins)
    # a customer cannot reach AdminService
    admin_as_customer = server.stub(admin_pb2_grpc.AdminServiceStub, token=s.access_token)
    assert_status(call_error(admin_as_customer.ListUsers, admin_pb2.ListUsersRequest(), timeout=10),
                  DENIED, "admins only")
    # promote, then the new admin can list users; demote again
    u = _update_user(server, s.user.name, ["role"], role=User.ADMIN)
    assert u.role == User.ADMIN
    assert admin_as_customer.ListUsers(admin_pb2.ListUsersRequest(), timeout=10).users
    stale = _update_user(server, s.user.name, ["display_name"], display_name="Boss", etag=u.etag)
    err = call_error(_update_user, server, s.user.name, ["display_name"], display_name="x",
                     etag=u.etag)
    assert_status(err, grpc.StatusCode.FAILED_PRECONDITION, "stale")
    _update_user(server, s.user.name, ["role"], role=User.CUSTOMER, etag=stale.etag)
    assert_status(call_error(admin_as_customer.ListUsers, admin_pb2.ListUsersRequest(),
                             timeout=10), DENIED)
    err = call_error(_update_user, server, s.user.name, ["email"], email="x@y.z")
    assert_status(err, INVALID, "update_mask")


def test_the_last_admin_cannot_be_demoted(workdir, pg):
    dbname = unique_id("lastadmin")
    pg.createdb(dbname)
    srv = support.Server(workdir, pg, name=dbname, dbname=dbname)
    srv.start()
    try:
        admin = me(srv, srv.admin_token())
        err = call_error(_update_user, srv, admin.name, ["role"], role=User.CUSTOMER)
        assert_status(err, grpc.StatusCode.FAILED_PRECONDITION, "last active admin")
        err = call_error(_update_user, srv, admin.name, ["disabled"], disabled=True)
        assert_status(err, grpc.StatusCode.FAILED_PRECONDITION, "last active admin")
    finally:
        srv.stop()


def test_audit_log_records_changes_without_secrets(server, parked_operations):
    s = server.sign_up()
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub, token=s.access_token)
    tid = unique_id("aud")
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10,
        metadata=[("x-request-id", f"req-{tid}")])
    # a refused change is on record too
    admin_as_customer = server.stub(admin_pb2_grpc.AdminServiceStub, token=s.access_token)
    call_error(admin_as_customer.CheckConsistency, admin_pb2.CheckConsistencyRequest(repair=True),
               timeout=10)
    # reads are not
    tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    events = support.admin_stub(server).ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter=f'principal = "{s.user.name}"', page_size=100), timeout=10).audit_events
    got = [(e.method.rsplit("/", 1)[1], e.target, e.result) for e in events]
    assert ("CreateTenant", f"tenants/{tid}", "OK") in got
    assert ("CheckConsistency", "", "PERMISSION_DENIED") in got
    assert not any(m == "GetTenant" for m, _, _ in got)
    create = next(e for e in events if e.method.endswith("/CreateTenant"))
    assert create.request_id == f"req-{tid}" and create.client_address == "127.0.0.1"
    assert create.create_time.seconds > 0
    by_target = support.admin_stub(server).ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter=f'target = "tenants/{tid}"'), timeout=10).audit_events
    assert [e.principal for e in by_target] == [s.user.name]
    # paging
    page = support.admin_stub(server).ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(page_size=1), timeout=10)
    assert len(page.audit_events) == 1 and page.next_page_token
    err = call_error(support.admin_stub(server).ListAuditEvents,
                     admin_pb2.ListAuditEventsRequest(filter="password = x"), timeout=10)
    assert_status(err, INVALID, "filter")
    # no secret reaches the log or the audit table
    text = server.log_text()
    for secret in (s.access_token, s.refresh_token, "customer-password-1",
                   support.ADMIN_PASSWORD):
        assert secret not in text
    dump = server.pg.psql("SELECT string_agg(t::text, ' ') FROM audit_events t")
    for secret in (s.access_token, s.refresh_token, "customer-password-1"):
        assert secret not in dump


def test_rate_limits_and_failed_sign_ins(workdir, pg):
    dbname = unique_id("rl")
    pg.createdb(dbname)
    srv = support.Server(workdir, pg, name=dbname, dbname=dbname, settings={
        "ratelimit": {"principal_rate": 1, "principal_burst": 5, "sign_in_failures": 3,
                      "sign_in_window_seconds": 60}})
    srv.start()
    try:
        s = srv.sign_up()
        codes = []
        for _ in range(8):
            try:
                me(srv, s.access_token)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        assert codes[:4] == [grpc.StatusCode.OK] * 4, codes
        assert EXHAUSTED in codes, codes
        err = next(call_error(me, srv, s.access_token) for _ in range(3))
        assert_status(err, EXHAUSTED, "retry in")
        # another user is not held back by the first
        assert me(srv, srv.sign_up().access_token)
        # failed sign-ins lock the account, even for the right password, and say for how long
        for _ in range(3):
            assert_status(call_error(srv.sign_in, s.user.email, "wrong-password-x"), UNAUTH)
        err = call_error(srv.sign_in, s.user.email, "customer-password-1")
        assert_status(err, EXHAUSTED, "too many failed sign-ins", "retry in")
    finally:
        srv.stop()


def test_create_admin_and_bootstrap(workdir, pg):
    dbname = unique_id("boot")
    pg.createdb(dbname)
    srv = support.Server(workdir, pg, name=dbname, dbname=dbname)
    binary = str(support.SERVER_BIN)
    email = f"{unique_id('op')}@example.com"
    run = lambda *args, stdin="": subprocess.run([binary, "--config", str(srv.config_path), *args],
                                                 input=stdin, capture_output=True, text=True,
                                                 timeout=60)
    r = run("--create-admin", email, stdin="operator-password\n")
    assert r.returncode == 0, r.stderr
    assert email in r.stdout and "operator-password" not in r.stdout + r.stderr
    r = run("--create-admin", "not-an-email", stdin="operator-password\n")
    assert r.returncode == 2 and "not an email address" in r.stderr
    r = run("--create-admin", email, stdin="short\n")
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    srv.start()
    try:
        s = srv.sign_in(email, "operator-password")
        assert s.user.role == User.ADMIN
        # the bootstrap admin of the configuration exists as well
        assert me(srv, srv.admin_token()).role == User.ADMIN
    finally:
        srv.stop()


def test_eddsa_tokens(workdir, pg):
    """identity.signing_algorithm: EdDSA makes an Ed25519 key on first start and signs with it."""
    dbname = unique_id("ed")
    pg.createdb(dbname)
    srv = support.Server(workdir, pg, name=dbname, dbname=dbname,
                         settings={"identity": {"signing_algorithm": "EdDSA"}})
    srv.start()
    try:
        s = srv.sign_up()
        head = json.loads(base64.urlsafe_b64decode(s.access_token.split(".")[0] + "=="))
        assert head["alg"] == "EdDSA"
        assert "PRIVATE KEY" in (srv.data_dir / "jwt-signing.pem").read_text()
        assert me(srv, s.access_token).name == s.user.name
    finally:
        srv.stop()


def test_client_address_through_the_gateway(server, parked_operations):
    """From this machine, the last x-forwarded-for entry (what the REST gateway adds) is the
    client's address in the audit log; entries a client sent before it are not trusted."""
    s = server.sign_up()
    tenants = server.stub(tenant_pb2_grpc.TenantServiceStub, token=s.access_token)
    tid = unique_id("fwd")
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10,
        metadata=[("x-forwarded-for", "6.6.6.6, 203.0.113.9")])
    bad = unique_id("fwd")
    tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=bad, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10,
        metadata=[("x-forwarded-for", "not an address")])
    events = {e.target: e.client_address for e in support.admin_stub(server).ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(filter=f'principal = "{s.user.name}"'),
        timeout=10).audit_events}
    assert events[f"tenants/{tid}"] == "203.0.113.9"
    assert events[f"tenants/{bad}"] == "127.0.0.1"
