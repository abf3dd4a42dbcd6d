"""Helpers for the gateway and browser tests: the saasodoo-gateway process and a
curl-based HTTP client that signs its calls. PostgreSQL and saasodoo-server come from
the integration tests' support module (tests/integration/support.py), imported from
here; every test server has a bootstrap admin (support.ADMIN_EMAIL).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEGRATION_DIR = HERE.parent / "integration"
if str(INTEGRATION_DIR) not in sys.path:
    sys.path.insert(0, str(INTEGRATION_DIR))

import support  # noqa: E402  (tests/integration/support.py)

GATEWAY_BIN = support.BUILD_DIR / "bin" / "saasodoo-gateway"
FRONTEND_DIR = support.REPO / "frontend"
GATEWAY_START_TIMEOUT = 15.0


def require_gateway_build():
    support.require_build()
    if not GATEWAY_BIN.exists():
        raise RuntimeError(f"{GATEWAY_BIN} is missing: build it with `cmake --build build` "
                           "(needs Go: bash scripts/deps.sh)")


class Gateway:
    """One saasodoo-gateway process on a free port, in front of a backend address."""

    def __init__(self, root: Path, backend, name="gateway", args=(), env=None,
                 frontend=FRONTEND_DIR):
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.port = support.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.address}"
        self.log_path = self.dir / "gateway.log"
        self.args = list(args)
        self.env = dict(env or {})
        self.frontend = frontend
        self.proc = None
        # The access token call() sends when it is given none (None: no credentials).
        self.token = None
        # When set, the first API call through this gateway signs in as the bootstrap
        # admin and keeps the token (if the backend answers sign-ins at all).
        self.sign_in_lazily = False

    def argv(self):
        argv = [str(GATEWAY_BIN), "--listen", self.address, "--backend", self.backend]
        if self.frontend is not None:
            argv += ["--frontend", str(self.frontend)]
        return argv + self.args

    def start(self, timeout=GATEWAY_START_TIMEOUT):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, cwd=str(self.dir),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"saasodoo-gateway exited with {self.proc.returncode}; "
                                     f"its log:\n{self.log_text()}")
            try:
                status, _, _ = http("GET", self.url("/healthz"), timeout=3)
                if status in (200, 503):
                    return self
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"saasodoo-gateway did not answer on {self.address} within "
                             f"{timeout:.0f}s; its log:\n{self.log_text()}")

    def url(self, path):
        return self.base + path

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if not self.running():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"saasodoo-gateway did not exit within {timeout}s of "
                                 f"{signal.Signals(sig).name}; its log:\n{self.log_text()}")

    def kill(self):
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> last value
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


def http(method, url, body=None, headers=None, timeout=10, raw_body=None):
    """Sends one request with curl; returns (status, headers, body bytes). body is
    JSON-encoded unless it is a str; raw_body (bytes) is sent as is."""
    with tempfile.TemporaryDirectory(prefix="gw-curl-") as tmp:
        hdr_file = os.path.join(tmp, "headers")
        body_file = os.path.join(tmp, "body")
        argv = ["curl", "-sS", "-X", method, "-D", hdr_file, "-o", body_file,
                "-w", "%{http_code}", "--max-time", str(timeout), "-H", "Expect:"]
        for k, v in (headers or {}).items():
            argv += ["-H", f"{k}: {v}"]
        data = None
        if raw_body is not None:
            data = raw_body
        elif body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        if data is not None:
            req_file = os.path.join(tmp, "request")
            with open(req_file, "wb") as f:
                f.write(data)
            argv += ["--data-binary", "@" + req_file]
            if not any(k.lower() == "content-type" for k in (headers or {})):
                argv += ["-H", "Content-Type: application/json"]
        argv.append(url)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 5)
        if p.returncode != 0:
            raise OSError(f"curl {method} {url} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
        status = int(p.stdout.decode() or 0)
        hdrs = {}
        with open(hdr_file, "rb") as f:
            for line in f.read().decode("latin-1").splitlines():
                if ":" in line and not line.startswith("HTTP/"):
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
        with open(body_file, "rb") as f:
            out = f.read()
        return status, hdrs, out


GW_TOKEN = object()


def call(gw, method, path, body=None, headers=None, timeout=10, raw_body=None, token=GW_TOKEN):
    """http() against a gateway, returning a Response. The call carries
    'Authorization: Bearer <token>': by default the gateway's own token (gw.token), none
    with token=None, and none added when headers has an Authorization already."""
    headers = dict(headers or {})
    if token is GW_TOKEN:
        if gw.token is None and gw.sign_in_lazily and path.startswith("/v1/") and not path.startswith("/v1/auth:"):
            gw.sign_in_lazily = False
            resp = call(gw, "POST", "/v1/auth:signIn",
                        {"email": support.ADMIN_EMAIL, "password": support.ADMIN_PASSWORD}, token=None)
            if resp.status == 200:
                gw.token = resp.json()["access_token"]
        token = gw.token
    if token and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = f"Bearer {token}"
    status, hdrs, out = http(method, gw.url(path), body=body, headers=headers, timeout=timeout,
                             raw_body=raw_body)
    return Response(status, hdrs, out)


# --- identity over REST ----------------------------------------------------------------

CUSTOMER_PASSWORD = "customer-password-1"


def sign_in(gw, email=None, password=None):
    """POST /v1/auth:signIn (default: the bootstrap admin); returns the Session as JSON."""
    resp = call(gw, "POST", "/v1/auth:signIn",
                {"email": email or support.ADMIN_EMAIL, "password": password or support.ADMIN_PASSWORD},
                token=None)
    assert resp.status == 200, f"signing in as {email or support.ADMIN_EMAIL} failed: {resp!r}"
    return resp.json()


def sign_up(gw, email=None, password=CUSTOMER_PASSWORD, display_name="REST customer"):
    """POST /v1/auth:signUp for a new customer; returns the Session as JSON."""
    email = email or f"{support.unique_id('rest')}@customer.test"
    resp = call(gw, "POST", "/v1/auth:signUp",
                {"email": email, "password": password, "display_name": display_name}, token=None)
    assert resp.status == 200, f"signing up {email} failed: {resp!r}"
    return resp.json()


def admin_token(gw):
    """An access token of the bootstrap admin, signed in through gw."""
    return sign_in(gw)["access_token"]


def ensure_admin_token(gw):
    """Gives gw the admin's token as its default, signing in again when the one it has
    is no longer accepted (e.g. the server was started afresh)."""
    if gw.token:
        resp = call(gw, "GET", "/v1/users/me")
        if resp.status == 200:
            return gw.token
    gw.token = admin_token(gw)
    return gw.token


def assert_error(resp, http_status, grpc_code, *needles):
    """Checks a grpc-gateway error body: {"error","message","code","details"}."""
    assert resp.status == http_status, f"expected HTTP {http_status}, got {resp!r}"
    body = resp.json()
    assert set(body) >= {"error", "message", "code", "details"}, body
    assert body["code"] == grpc_code, f"expected gRPC code {grpc_code}: {body}"
    for n in needles:
        assert n in body["message"], f"error message should name {n!r}: {body['message']!r}"
    return body


def create_tenant(gw, tenant_id=None, plan="plans/basic", display_name="Test tenant", token=GW_TOKEN):
    """POST /v1/tenants (as the gateway's default user, or token's); returns
    (tenant_id, operation)."""
    tenant_id = tenant_id or support.unique_id("gw")
    resp = call(gw, "POST", "/v1/tenants",
                {"tenant_id": tenant_id, "tenant": {"plan": plan, "display_name": display_name}}, token=token)
    assert resp.status == 200, resp
    return tenant_id, resp.json()


API_MODULES = ["tenant", "operation", "backup", "billing", "monitoring", "identity", "admin"]


def http_rules():
    """[(grpc path, HTTP verb, URL template, body)] for every saasodoo.v1 method, read
    from the google.api.http options of the generated Python modules."""
    import importlib

    from google.api import annotations_pb2

    out = []
    for mod in API_MODULES:
        pb2 = importlib.import_module(f"saasodoo.v1.{mod}_pb2")
        for svc in pb2.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                rule = m.GetOptions().Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                out.append((f"/{svc.full_name}/{m.name}", verb.upper(), getattr(rule, verb), rule.body))
    return out


def fill_template(template, value="x1"):
    """Turns '/v1/{name=tenants/*}:suspend' into '/v1/tenants/x1:suspend'."""
    import re

    def repl(m):
        pattern = m.group(2) or "*"
        return pattern.replace("**", value).replace("*", value)

    return re.sub(r"\{([^}=]+)(?:=([^}]*))?\}", repl, template)
