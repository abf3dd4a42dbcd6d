"""A test double of Supabase Auth (GoTrue), for tests only: Supabase cannot run on this
machine, so the integration tests talk to this small HTTP server instead.

It follows the published API of Supabase Auth (github.com/supabase/auth, read at commit
bc32168e13fd; the facts it relies on are listed in EXTERNAL_APIS.md, section 1), as a
hosted project exposes it behind its gateway under /auth/v1:

  POST /auth/v1/signup                         email + password (+ data); 200 with a token
                                               response (autoconfirm) or the user object
  POST /auth/v1/token?grant_type=password      200 token response; 400 invalid_credentials
  POST /auth/v1/token?grant_type=refresh_token 200 token response (the refresh token
                                               rotates); 400 refresh_token_not_found /
                                               refresh_token_already_used / session_not_found
  GET  /auth/v1/user                           Authorization: Bearer <access token>
  POST /auth/v1/logout?scope=global|local|others  204
  GET  /auth/v1/.well-known/jwks.json          {"keys": [...]}, no API key needed

Every other route needs the header `apikey: <anon key>` (401 {"message": "No API key found
in request"} without it, as the self-hosted gateway answers). Errors have Supabase's two
shapes: {"code": <http status>, "error_code", "msg"} by default, {"code": "<error_code>",
"message"} when the request says `X-Supabase-Api-Version: 2024-01-01`; both set the
`x-sb-error-code` header. Access tokens are ES256 JWTs with the claims Supabase issues
(iss, sub, aud as a string, exp, iat, email, phone, app_metadata, user_metadata, role, aal,
amr, session_id, is_anonymous) and the signing key's kid in the header.

Test switches, beyond the real service: rotate_key() (a new signing key; the old one stays
published unless told otherwise), legacy_secret / issue_hs256 (tokens signed with a legacy
HS256 secret, no kid), jwks_fetches (how many times the key set was read), mint() (a token
with any claims, signed by the current key, an unpublished key or the legacy secret),
fail_next() (answer the next request to a path with a given error), autoconfirm.

State lives in memory. Run on its own for manual checks:
    python3 tests/doubles/supabase_auth.py --port 54321
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

PREFIX = "/auth/v1"
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = "2024-01-01"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_BODY = 1 << 20  # limitRequestBody(1 << 20)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(n: int, size: int) -> str:
    return b64url(n.to_bytes(size, "big"))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SigningKey:
    """An EC P-256 key with its kid, publishable as a JWK."""

    def __init__(self, kid=None):
        self.kid = kid or str(uuid.uuid4())
        self.private = ec.generate_private_key(ec.SECP256R1())

    def jwk(self):
        nums = self.private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64url_int(nums.x, 32), "y": b64url_int(nums.y, 32),
                "kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"], "ext": True}

    def sign(self, signing_input: bytes) -> bytes:
        der = self.private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def encode_jwt(header: dict, claims: dict, key=None, secret=None) -> str:
    """A compact JWS: ES256 with key (a SigningKey) or HS256 with secret (bytes)."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode()
    if secret is not None:
        sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    else:
        sig = key.sign(signing_input)
    return f"{head}.{body}.{b64url(sig)}"


class ApiError(Exception):
    def __init__(self, status, error_code, msg, extra=None):
        super().__init__(msg)
        self.status, self.error_code, self.msg, self.extra = status, error_code, msg, extra or {}


class SupabaseAuth:
    """The double: start() serves on 127.0.0.1 (a free port unless one is given)."""

    def __init__(self, port=0, anon_key=None, legacy_secret=None, issue_hs256=False,
                 autoconfirm=True, expires_in=3600, min_password_length=6,
                 audience="authenticated", host="127.0.0.1"):
        self.host = host
        self.port = port
        self.anon_key = anon_key or ("sb_publishable_" + secrets.token_urlsafe(24))
        self.legacy_secret = legacy_secret.encode() if isinstance(legacy_secret, str) else legacy_secret
        self.issue_hs256 = issue_hs256
        self.autoconfirm = autoconfirm
        self.expires_in = expires_in
        self.min_password_length = min_password_length
        self.audience = audience
        self.lock = threading.Lock()
        self.keys = [SigningKey()]  # the first signs; the others stay published
        self.users = {}      # id -> user dict (with "_password")
        self.by_email = {}   # email -> id
        self.sessions = {}   # session id -> {"user_id", "revoked": bool}
        self.refresh = {}    # token -> {"session_id", "revoked": bool}
        self.jwks_fetches = 0
        self.requests = []   # (method, path, headers dict) of every request
        self.forced = {}     # path -> [ApiError, ...] answered before the real handler
        self.httpd = None
        self.thread = None

    # -- process ---------------------------------------------------------------

    def start(self):
        double = self

        class Handler(_Handler):
            owner = double

        self.httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="supabase-auth-double",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        """The project URL (what identity.supabase_url holds)."""
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self):
        return self.url + PREFIX

    # -- test switches -----------------------------------------------------------

    @property
    def kid(self):
        return self.keys[0].kid

    def rotate_key(self, keep_old=True):
        """Signs with a new key from now on; returns its kid. The old key stays in the key
        set (as Supabase keeps a previously used key) unless keep_old is False."""
        with self.lock:
            new = SigningKey()
            self.keys = [new] + (self.keys if keep_old else [])
            return new.kid

    def jwks(self):
        with self.lock:
            return {"keys": [k.jwk() for k in self.keys]}

    def fail_next(self, path, status, error_code, msg, times=1):
        """The next `times` requests to path (e.g. '/token') get this error."""
        with self.lock:
            self.forced.setdefault(path, []).extend([ApiError(status, error_code, msg)] * times)

    def mint(self, sub=None, email="someone@example.com", key="current", kid=None, **claims):
        """A token with the claims a Supabase access token has, overridden by claims
        (None removes one). key: 'current' (the signing key), 'unpublished' (a fresh key
        that is in no key set; kid defaults to a new uuid), 'legacy' (HS256 with the
        legacy secret, no kid)."""
        now = int(time.time())
        body = {"iss": self.issuer, "sub": sub or str(uuid.uuid4()), "aud": self.audience,
                "exp": now + self.expires_in, "iat": now, "email": email, "phone": "",
                "app_metadata": {"provider": "email", "providers": ["email"]},
                "user_metadata": {}, "role": "authenticated", "aal": "aal1",
                "amr": [{"method": "password", "timestamp": now}],
                "session_id": str(uuid.uuid4()), "is_anonymous": False}
        for k, v in claims.items():
            if v is None:
                body.pop(k, None)
            else:
                body[k] = v
        if key == "legacy":
            assert self.legacy_secret, "no legacy secret configured"
            return encode_jwt({"alg": "HS256", "typ": "JWT"}, body, secret=self.legacy_secret)
        signer = SigningKey(kid) if key == "unpublished" else self.keys[0]
        return encode_jwt({"alg": "ES256", "kid": signer.kid, "typ": "JWT"}, body, key=signer)

    def user_by_email(self, email):
        with self.lock:
            uid = self.by_email.get(email.lower())
            return self.public_user(self.users[uid]) if uid else None

    def live_sessions(self, user_id):
        with self.lock:
            return [sid for sid, s in self.sessions.items() if s["user_id"] == user_id and not s["revoked"]]

    # -- the service ---------------------------------------------------------------

    def public_user(self, u):
        return {k: v for k, v in u.items() if not k.startswith("_")}

    def _new_user(self, email, password, data):
        now = time.time()
        uid = str(uuid.uuid4())
        u = {"id": uid, "aud": self.audience, "role": "authenticated", "email": email, "phone": "",
             "app_metadata": {"provider": "email", "providers": ["email"]},
             "user_metadata": data or {}, "identities": [], "created_at": iso(now),
             "updated_at": iso(now), "is_anonymous": False, "_password": password}
        if self.autoconfirm:
            u["email_confirmed_at"] = u["confirmed_at"] = iso(now)
        else:
            u["confirmation_sent_at"] = iso(now)
        self.users[uid] = u
        self.by_email[email.lower()] = uid
        return u

    def _issue(self, u, session_id=None):
        """A token response (AccessTokenResponse) for a new or continued session."""
        now = int(time.time())
        if session_id is None:
            session_id = str(uuid.uuid4())
            self.sessions[session_id] = {"user_id": u["id"], "revoked": False}
        u["last_sign_in_at"] = iso(now)
        claims = {"iss": self.issuer, "sub": u["id"], "aud": u["aud"], "exp": now + self.expires_in,
                  "iat": now, "email": u["email"], "phone": u["phone"],
                  "app_metadata": u["app_metadata"], "user_metadata": u["user_metadata"],
                  "role": u["role"], "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
                  "session_id": session_id, "is_anonymous": False}
        if self.issue_hs256:
            token = encode_jwt({"alg": "HS256", "typ": "JWT"}, claims, secret=self.legacy_secret)
        else:
            k = self.keys[0]
            token = encode_jwt({"alg": "ES256", "kid": k.kid, "typ": "JWT"}, claims, key=k)
        refresh = secrets.token_urlsafe(9)
        self.refresh[refresh] = {"session_id": session_id, "revoked": False}
        return {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in,
                "expires_at": now + self.expires_in, "refresh_token": refresh,
                "user": self.public_user(u)}

    def signup(self, body):
        email = body.get("email") or ""
        phone = body.get("phone") or ""
        password = body.get("password") or ""
        if email and phone:
            raise ApiError(400, "validation_failed", "Only an email address or phone number should be provided on signup.")
        if not email and not phone:
            raise ApiError(422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled")
        if phone:
            raise ApiError(400, "phone_provider_disabled", "Phone signups are disabled")
        if not password:
            raise ApiError(400, "validation_failed", "Signup requires a valid password")
        if not isinstance(email, str) or not EMAIL_RE.match(email) or len(email) > 255:
            raise ApiError(400, "validation_failed", "Unable to validate email address: invalid format")
        if len(password) < self.min_password_length:
            raise ApiError(422, "weak_password",
                           f"Password should be at least {self.min_password_length} characters.",
                           {"weak_password": {"reasons": ["length"]}})
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        with self.lock:
            uid = self.by_email.get(email.lower())
            if uid:
                if self.autoconfirm:
                    raise ApiError(422, "user_already_exists", "User already registered")
                # unconfirmed projects answer with made-up data, so the address is not disclosed
                now = time.time()
                return {"id": str(uuid.uuid4()), "aud": self.audience, "role": "authenticated",
                        "email": email, "phone": "", "confirmation_sent_at": iso(now),
                        "app_metadata": {"provider": "email", "providers": ["email"]},
                        "user_metadata": {}, "identities": [], "created_at": iso(now),
                        "updated_at": iso(now), "is_anonymous": False}
            u = self._new_user(email, password, data)
            if not self.autoconfirm:
                return self.public_user(u)
            return self._issue(u)

    def token(self, grant_type, body):
        if grant_type == "password":
            email = body.get("email") or ""
            phone = body.get("phone") or ""
            password = body.get("password") or ""
            if not email and not phone:
                raise ApiError(400, "validation_failed", "missing email or phone")
            with self.lock:
                uid = self.by_email.get(str(email).lower())
                u = self.users.get(uid) if uid else None
                if u is None or not password or not hmac.compare_digest(
                        u["_password"].encode(), str(password).encode()):
                    raise ApiError(400, "invalid_credentials", "Invalid login credentials")
                if "email_confirmed_at" not in u:
                    raise ApiError(400, "email_not_confirmed", "Email not confirmed")
                return self._issue(u)
        if grant_type == "refresh_token":
            token = body.get("refresh_token") or ""
            if not token:
                raise ApiError(400, "validation_failed", "Refresh token is not valid")
            with self.lock:
                rt = self.refresh.get(token)
                if rt is None:
                    raise ApiError(400, "refresh_token_not_found",
                                   "Invalid Refresh Token: Refresh Token Not Found")
                sess = self.sessions.get(rt["session_id"])
                if sess is None or sess["revoked"]:
                    raise ApiError(400, "session_not_found",
                                   "Invalid Refresh Token: No Valid Session Found")
                if rt["revoked"]:
                    # reuse of a rotated token: the session is revoked
                    sess["revoked"] = True
                    raise ApiError(400, "refresh_token_already_used",
                                   "Invalid Refresh Token: Already Used")
                rt["revoked"] = True
                return self._issue(self.users[sess["user_id"]], session_id=rt["session_id"])
        raise ApiError(400, "invalid_credentials", "unsupported_grant_type")

    def authenticate(self, headers):
        """The claims of the request's bearer token, as requireAuthentication checks it."""
        auth = headers.get("Authorization") or ""
        m = re.match(r"^[Bb]earer (\S+)$", auth)
        if not m:
            raise ApiError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        parts = m.group(1).split(".")
        try:
            header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            sig = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            signing_input = f"{parts[0]}.{parts[1]}".encode()
            if header.get("alg") == "HS256" and self.legacy_secret:
                ok = hmac.compare_digest(hmac.new(self.legacy_secret, signing_input, hashlib.sha256).digest(), sig)
            elif header.get("alg") == "ES256":
                key = next((k for k in self.keys if k.kid == header.get("kid")), None)
                der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
                key.private.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
                ok = True
            else:
                ok = False
            if not ok or claims.get("exp", 0) < time.time():
                raise ValueError("signature or expiry")
        except Exception as e:  # noqa: BLE001 (any failure is a bad JWT)
            raise ApiError(403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {e}")
        with self.lock:
            if claims.get("sub") not in self.users:
                raise ApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
            sid = claims.get("session_id")
            if sid and (sid not in self.sessions or self.sessions[sid]["revoked"]):
                raise ApiError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
        return claims

    def get_user(self, headers):
        claims = self.authenticate(headers)
        with self.lock:
            return self.public_user(self.users[claims["sub"]])

    def logout(self, headers, scope):
        if scope not in ("global", "local", "others"):
            raise ApiError(400, "validation_failed", f"Unsupported logout scope {scope!r}")
        claims = self.authenticate(headers)
        with self.lock:
            sid = claims.get("session_id")
            for s_id, s in self.sessions.items():
                if s["user_id"] != claims["sub"]:
                    continue
                if scope == "global" or (scope == "local" and s_id == sid) or (scope == "others" and s_id != sid):
                    s["revoked"] = True


class _Handler(BaseHTTPRequestHandler):
    owner: SupabaseAuth = None
    protocol_version = "HTTP/1.1"
    server_version = "supabase-auth-double"

    def log_message(self, fmt, *args):  # quiet: the tests read owner.requests instead
        pass

    def _send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _send_error(self, e: ApiError):
        headers = {"x-sb-error-code": e.error_code} if e.error_code else {}
        if self.headers.get(API_VERSION_HEADER) == API_VERSION_2024:
            body = {"code": e.error_code, "message": e.msg}
            headers[API_VERSION_HEADER] = API_VERSION_2024
        else:
            body = {"code": e.status, "error_code": e.error_code, "msg": e.msg}
            if e.status >= 500:
                body["error_id"] = str(uuid.uuid4())
        body.update(e.extra)
        self._send(e.status, body, headers)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ApiError(413, "request_too_large", "Request body too large")
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "bad_json", f"Could not parse request body as JSON: {e}")
        if not isinstance(body, dict):
            raise ApiError(400, "bad_json", "Could not parse request body as JSON: not an object")
        return body

    def _handle(self, method):
        o = self.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        with o.lock:
            o.requests.append((method, url.path, dict(self.headers.items())))
        path = url.path
        if not path.startswith(PREFIX + "/"):
            return self._send(404, {"message": "no Route matched with those values"})
        path = path[len(PREFIX):]
        try:
            body = self._body() if method == "POST" else {}
            if path == "/.well-known/jwks.json" and method == "GET":
                with o.lock:
                    o.jwks_fetches += 1
                return self._send(200, o.jwks(), {"Cache-Control": "public, max-age=600"})
            key = self.headers.get("apikey")
            if not key:
                return self._send(401, {"message": "No API key found in request"})
            if key != o.anon_key:
                return self._send(401, {"message": "Invalid authentication credentials"})
            with o.lock:
                forced = o.forced.get(path)
                err = forced.pop(0) if forced else None
            if err:
                raise err
            if path == "/signup" and method == "POST":
                return self._send(200, o.signup(body))
            if path == "/token" and method == "POST":
                grant = (query.get("grant_type") or [""])[0]
                return self._send(200, o.token(grant, body))
            if path == "/user" and method == "GET":
                return self._send(200, o.get_user(self.headers))
            if path == "/logout" and method == "POST":
                o.logout(self.headers, (query.get("scope") or ["global"])[0])
                return self._send(204)
            raise ApiError(404, "not_found", "Not found")
        except ApiError as e:
            self._send_error(e)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


def main():
    ap = argparse.ArgumentParser(description="Supabase Auth test double")
    ap.add_argument("--port", type=int, default=54321)
    ap.add_argument("--anon-key", default="anon-key-for-tests")
    ap.add_argument("--legacy-secret")
    args = ap.parse_args()
    d = SupabaseAuth(port=args.port, anon_key=args.anon_key, legacy_secret=args.legacy_secret).start()
    print(f"Supabase Auth double on {d.url} (issuer {d.issuer}, anon key {d.anon_key})", flush=True)
    try:
        d.thread.join()
    except KeyboardInterrupt:
        d.stop()


if __name__ == "__main__":
    main()
