"""identity.mode: supabase. SignUp, SignIn, RefreshSession and SignOut are forwarded to
Supabase Auth, and its access tokens authenticate calls, checked against the project's
JWK set (fetched again on a key rotation, at most once a minute for unknown keys) or its
legacy HS256 secret.

Supabase cannot run here: the tests use the Supabase Auth test double in
tests/doubles/supabase_auth.py, which follows Supabase Auth's published API. Each server
gets a control-plane database of its own."""
import base64
import json
import sys
import threading
import time
import uuid

import grpc
import pytest

import support

sys.path.insert(0, str(support.REPO / "tests" / "doubles"))
from supabase_auth import SupabaseAuth  # noqa: E402

LEGACY_SECRET = "legacy-jwt-secret-of-at-least-32-characters-" + uuid.uuid4().hex


def identity():
    from saasodoo.v1 import identity_pb2, identity_pb2_grpc
    return identity_pb2, identity_pb2_grpc


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def claims_of(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def unique_email():
    return f"sb-{uuid.uuid4().hex[:12]}@example.com"


class SupabaseServer:
    """A Supabase Auth double and a saasodoo-server in supabase mode pointed at it."""

    def __init__(self, workdir, pg, name, secret=None, double_port=0, start_double=True, **identity_kv):
        self.double = SupabaseAuth(port=double_port, legacy_secret=LEGACY_SECRET if secret else None)
        if start_double:
            self.double.start()
        dbname = "sb_" + uuid.uuid4().hex[:10]
        pg.createdb(dbname)
        kv = {"mode": "supabase", "supabase_url": f"\"{self.double.url}\"",
              "supabase_anon_key": f"\"{self.double.anon_key}\"",
              "supabase_jwks_min_refresh_seconds": 60}
        if secret:
            kv["supabase_jwt_secret"] = f"\"{LEGACY_SECRET}\""
        kv.update(identity_kv)
        self.server = support.Server(workdir, pg, name=name, dbname=dbname, settings={"identity": kv})
        self.channel = None

    def start(self):
        self.server.start()
        return self

    def stub(self):
        # a channel without credentials: calls carry only the metadata a test gives them
        if self.channel is None:
            self.channel = grpc.insecure_channel(self.server.address)
        return identity()[1].IdentityServiceStub(self.channel)

    def current_user(self, token):
        pb2 = identity()[0]
        return self.stub().GetCurrentUser(pb2.GetCurrentUserRequest(), metadata=bearer(token), timeout=10)

    def close(self):
        if self.channel is not None:
            self.channel.close()
        try:
            if self.server.running():
                rc = self.server.stop()
                assert rc == 0, f"saasodoo-server exited {rc} on SIGTERM:\n{self.server.recent_log()}"
        finally:
            self.server.kill()
            self.double.stop()
        reports = self.server.sanitizer_reports()
        assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


@pytest.fixture(scope="module")
def sb(workdir, pg):
    s = SupabaseServer(workdir, pg, "supabase-server").start()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sb_factory(workdir, pg):
    made = []

    def make(name, **kw):
        s = SupabaseServer(workdir, pg, name, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# --- forwarding --------------------------------------------------------------------------

def test_sign_up_is_forwarded_and_returns_supabases_tokens(sb):
    pb2 = identity()[0]
    email = unique_email()
    n = len(sb.double.requests)
    session = sb.stub().SignUp(pb2.SignUpRequest(email=email, password="correct horse", display_name="Ada"),
                               timeout=20)
    user = sb.double.user_by_email(email)
    assert user is not None, "the sign-up did not reach Supabase Auth"
    assert user["user_metadata"].get("display_name") == "Ada"
    method, path, headers = next(r for r in sb.double.requests[n:] if r[1].endswith("/signup"))
    assert (method, path) == ("POST", "/auth/v1/signup")
    assert headers.get("apikey") == sb.double.anon_key
    c = claims_of(session.access_token)
    assert c["iss"] == sb.double.issuer and c["sub"] == user["id"] and c["email"] == email
    assert session.refresh_token in sb.double.refresh
    assert session.access_token_expire_time.seconds == c["exp"]


def test_sign_in_is_forwarded_and_its_token_authenticates(sb):
    pb2 = identity()[0]
    email = unique_email()
    sb.stub().SignUp(pb2.SignUpRequest(email=email, password="correct horse"), timeout=20)
    session = sb.stub().SignIn(pb2.SignInRequest(email=email, password="correct horse"), timeout=20)
    c = claims_of(session.access_token)
    assert c["sub"] == sb.double.user_by_email(email)["id"]
    assert c["session_id"] in sb.double.live_sessions(c["sub"])
    me = sb.current_user(session.access_token)
    assert me.email == email


def test_sign_up_and_sign_in_errors(sb):
    pb2 = identity()[0]
    email = unique_email()
    stub = sb.stub()
    stub.SignUp(pb2.SignUpRequest(email=email, password="correct horse"), timeout=20)
    err = support.call_error(stub.SignUp, pb2.SignUpRequest(email=email, password="correct horse"), timeout=20)
    support.assert_status(err, grpc.StatusCode.ALREADY_EXISTS)
    err = support.call_error(stub.SignUp, pb2.SignUpRequest(email=unique_email(), password="abc"), timeout=20)
    support.assert_status(err, grpc.StatusCode.INVALID_ARGUMENT)
    err = support.call_error(stub.SignIn, pb2.SignInRequest(email=email, password="wrong password"), timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
    err = support.call_error(stub.SignIn, pb2.SignInRequest(email=unique_email(), password="correct horse"),
                             timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")


def test_supabase_rate_limits_and_outages_map_to_codes(sb):
    pb2 = identity()[0]
    email = unique_email()
    stub = sb.stub()
    stub.SignUp(pb2.SignUpRequest(email=email, password="correct horse"), timeout=20)
    sb.double.fail_next("/token", 429, "over_request_rate_limit", "Request rate limit reached")
    err = support.call_error(stub.SignIn, pb2.SignInRequest(email=email, password="correct horse"), timeout=20)
    support.assert_status(err, grpc.StatusCode.RESOURCE_EXHAUSTED)
    sb.double.fail_next("/token", 500, "unexpected_failure", "Unexpected failure")
    err = support.call_error(stub.SignIn, pb2.SignInRequest(email=email, password="correct horse"), timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAVAILABLE)
    # and it works again afterwards
    stub.SignIn(pb2.SignInRequest(email=email, password="correct horse"), timeout=20)


def test_sign_up_when_the_project_confirms_emails_first(sb):
    pb2 = identity()[0]
    sb.double.autoconfirm = False
    try:
        err = support.call_error(sb.stub().SignUp, pb2.SignUpRequest(email=unique_email(), password="correct horse"),
                                 timeout=20)
    finally:
        sb.double.autoconfirm = True
    support.assert_status(err, grpc.StatusCode.FAILED_PRECONDITION, "confirm")


def test_refresh_rotates_and_sign_out_ends_the_session(sb):
    pb2 = identity()[0]
    email = unique_email()
    stub = sb.stub()
    first = stub.SignUp(pb2.SignUpRequest(email=email, password="correct horse"), timeout=20)
    second = stub.RefreshSession(pb2.RefreshSessionRequest(refresh_token=first.refresh_token), timeout=20)
    assert second.refresh_token != first.refresh_token
    assert claims_of(second.access_token)["session_id"] == claims_of(first.access_token)["session_id"]
    err = support.call_error(stub.RefreshSession, pb2.RefreshSessionRequest(refresh_token=first.refresh_token),
                             timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)

    third = stub.SignIn(pb2.SignInRequest(email=email, password="correct horse"), timeout=20)
    sid = claims_of(third.access_token)["session_id"]
    user_id = claims_of(third.access_token)["sub"]
    assert sid in sb.double.live_sessions(user_id)
    stub.SignOut(pb2.SignOutRequest(refresh_token=third.refresh_token), metadata=bearer(third.access_token),
                 timeout=20)
    assert sid not in sb.double.live_sessions(user_id)
    err = support.call_error(stub.RefreshSession, pb2.RefreshSessionRequest(refresh_token=third.refresh_token),
                             timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)


# --- Supabase-issued tokens ----------------------------------------------------------------

def test_a_supabase_token_makes_the_local_user_on_first_sight(sb):
    """A user who signed up with Supabase directly (not through this server) calls in with
    the token Supabase gave them."""
    email = unique_email()
    token = sb.double.mint(sub=str(uuid.uuid4()), email=email)
    first = sb.current_user(token)
    assert first.email == email and first.name.startswith("users/")
    again = sb.current_user(sb.double.mint(sub=claims_of(token)["sub"], email=email))
    assert again.name == first.name


@pytest.mark.parametrize("claims,why", [
    ({"iss": "https://someone-else.supabase.co/auth/v1"}, "issuer"),
    ({"aud": "anon-audience"}, "audience"),
    ({"exp": int(time.time()) - 7200, "iat": int(time.time()) - 10800}, "expired"),
])
def test_wrong_issuer_audience_or_expired_is_unauthenticated(sb, claims, why):
    err = support.call_error(sb.current_user, sb.double.mint(**claims))
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)
    assert why in err.details(), err.details()


def test_a_token_of_an_unpublished_key_is_unauthenticated(sb):
    err = support.call_error(sb.current_user, sb.double.mint(key="unpublished"))
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)


def test_legacy_hs256_tokens_need_the_secret(sb, sb_factory):
    sb.double.legacy_secret = LEGACY_SECRET.encode()
    try:
        token = sb.double.mint(key="legacy", email=unique_email())
    finally:
        sb.double.legacy_secret = None
    err = support.call_error(sb.current_user, token)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)

    legacy = sb_factory("supabase-legacy", secret=True).start()
    email = unique_email()
    me = legacy.current_user(legacy.double.mint(key="legacy", email=email))
    assert me.email == email
    # a token signed with another secret is refused
    legacy.double.legacy_secret = b"not-the-projects-secret-but-as-long-as-one"
    err = support.call_error(legacy.current_user, legacy.double.mint(key="legacy"))
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)


# --- the JWK set ------------------------------------------------------------------------------

def test_a_rotated_key_is_accepted_after_one_fetch(sb_factory):
    s = sb_factory("supabase-rotation").start()
    assert s.current_user(s.double.mint(email=unique_email())).email
    old = s.double.mint(email=unique_email())  # signed with the first key, not used yet
    before = s.double.jwks_fetches
    s.double.rotate_key(keep_old=False)
    email, sub = unique_email(), str(uuid.uuid4())
    for _ in range(3):
        assert s.current_user(s.double.mint(sub=sub, email=email)).email == email
    assert s.double.jwks_fetches - before == 1
    # the old key is gone from the set now, and asking again is not due yet
    err = support.call_error(s.current_user, old)
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED, "unknown signing key")
    assert s.double.jwks_fetches - before == 1


def test_unknown_keys_cause_at_most_one_fetch_a_minute(sb_factory):
    s = sb_factory("supabase-unknown-kid").start()
    before = s.double.jwks_fetches
    tokens = [s.double.mint(key="unpublished") for _ in range(24)]
    codes = []

    def call(tok):
        try:
            s.current_user(tok)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())

    threads = [threading.Thread(target=call, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * len(tokens), codes
    assert s.double.jwks_fetches - before == 1
    for t in tokens[:5]:
        support.call_error(s.current_user, t)
    assert s.double.jwks_fetches - before == 1


def test_the_server_starts_while_supabase_is_down_and_fetches_the_keys_later(sb_factory):
    port = support.free_port()
    s = sb_factory("supabase-late", double_port=port, start_double=False).start()
    s.double.start()
    email = unique_email()
    token = s.double.mint(email=email)
    me = support.wait_for(lambda: _try_current_user(s, token), 20, interval=0.5,
                          what="the token to be accepted once Supabase answers")
    assert me.email == email
    assert "fetching it again" in s.server.log_text()


def _try_current_user(s, token):
    try:
        return s.current_user(token)
    except grpc.RpcError:
        return None


def test_without_supabase_the_server_serves_refuses_and_stops(sb_factory):
    s = sb_factory("supabase-never", double_port=support.free_port(), start_double=False).start()
    pb2 = identity()[0]
    err = support.call_error(s.current_user, s.double.mint())
    support.assert_status(err, grpc.StatusCode.UNAUTHENTICATED)
    err = support.call_error(s.stub().SignIn, pb2.SignInRequest(email=unique_email(), password="correct horse"),
                             timeout=20)
    support.assert_status(err, grpc.StatusCode.UNAVAILABLE, "cannot be reached")
    # the background retries of the key set do not hold up a shutdown
    rc = s.server.stop()
    assert rc == 0, s.server.recent_log()
