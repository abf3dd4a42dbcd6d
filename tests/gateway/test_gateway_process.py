"""saasodoo-gateway itself: /healthz with the backend up and down, /openapi.json, the
static frontend, CORS, metadata passed to the backend, flags and environment, and
graceful shutdown. Metadata and shutdown use a small Python gRPC backend that reports
what it receives."""
import json
import os
import re
import signal
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest

import gateway_support as gs
from gateway_support import assert_error, call, support
from saasodoo.v1 import operation_pb2, tenant_pb2


# --- /healthz ------------------------------------------------------------------------

def test_healthz_is_200_when_the_backend_serves(gateway):
    resp = call(gateway, "GET", "/healthz")
    assert resp.status == 200, resp
    body = resp.json()
    assert body["status"] == "SERVING"
    assert body["backend"] == gateway.backend


def test_healthz_is_503_when_no_backend_answers(gateway_factory):
    gw = gateway_factory(f"127.0.0.1:{support.free_port()}", "gw-nobackend").start()
    resp = call(gw, "GET", "/healthz")
    assert resp.status == 503, resp
    assert resp.json()["status"] == "UNREACHABLE"
    assert resp.json()["error"]
    # API calls say in words that the server cannot be reached
    resp = call(gw, "GET", "/v1/tenants")
    assert_error(resp, 503, 14, "cannot be reached")


def test_healthz_follows_the_backend_going_down_and_up(server_factory, gateway_factory):
    srv = server_factory("srv-health").start()
    gw = gateway_factory(srv.address, "gw-health").start()
    assert call(gw, "GET", "/healthz").status == 200
    assert srv.stop() == 0
    support.wait_for(lambda: call(gw, "GET", "/healthz").status == 503, 10, what="/healthz to say 503")
    srv.start()
    support.wait_for(lambda: call(gw, "GET", "/healthz").status == 200, 20, what="/healthz to say 200 again")
    assert call(gw, "GET", "/v1/tenants?page_size=1").status == 200


def test_healthz_is_503_when_the_database_is_down(server_factory, gateway_factory, pg):
    srv = server_factory("srv-dbdown").start()
    gw = gateway_factory(srv.address, "gw-dbdown").start()
    assert call(gw, "GET", "/healthz").status == 200
    pg.stop()
    try:
        resp = support.wait_for(lambda: (lambda r: r if r.status == 503 else None)(call(gw, "GET", "/healthz")),
                                20, what="/healthz to say 503 with the database down")
        assert resp.json()["status"] == "NOT_SERVING", resp
    finally:
        pg.start()
    support.wait_for(lambda: call(gw, "GET", "/healthz").status == 200, 30, what="/healthz back to 200")


# --- /openapi.json -------------------------------------------------------------------

def test_openapi_document_has_every_rpc(gateway):
    resp = call(gateway, "GET", "/openapi.json")
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    assert doc["swagger"] == "2.0"
    assert doc["info"]["title"] == "saasodoo API"
    ops = {}
    for route, methods in doc["paths"].items():
        for verb, op in methods.items():
            ops[op["operationId"]] = (verb.upper(), route, op)
    rules = gs.http_rules()
    assert len(rules) == len(support.all_saasodoo_methods())
    for path, verb, template, _ in rules:
        service, method = path.rsplit("/", 2)[-2:]
        assert method in ops, f"{path} is missing from /openapi.json"
        got_verb, route, op = ops[method]
        assert (got_verb, route) == (verb, template), (path, got_verb, route)
        assert op["x-grpc-method"] == f"{service}.{method}"
        assert "default" in op["responses"]
    assert len(ops) == len(rules)
    # every $ref resolves
    refs = set(re.findall(r'"#/definitions/([^"]+)"', resp.body.decode()))
    assert refs <= set(doc["definitions"]), refs - set(doc["definitions"])
    watch = ops["WatchOperation"][2]["responses"]["200"]
    assert "newline-delimited" in watch["description"]



# --- the static frontend -------------------------------------------------------------

def test_frontend_is_served_at_the_root(gateway):
    resp = call(gateway, "GET", "/")
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("text/html")
    assert b"<html" in resp.body.lower()
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    for page in ("index.html", "login.html", "register.html", "dashboard.html", "tenant-create.html",
                 "billing.html", "admin.html"):
        assert call(gateway, "GET", "/" + page).status in (200, 301), page
    resp = call(gateway, "GET", "/js/api-client.js")
    assert resp.status == 200
    assert "javascript" in resp.headers["content-type"]


def test_frontend_hides_dot_files_and_listings(gateway):
    assert call(gateway, "GET", "/.git/config").status == 404
    assert call(gateway, "GET", "/js/").status == 404
    assert call(gateway, "GET", "/no-such-page.html").status == 404
    assert call(gateway, "GET", "/../README.md").status in (400, 404)


def test_frontend_refuses_writes(gateway):
    assert_error(call(gateway, "POST", "/index.html", {}), 405, 12)


# --- CORS ----------------------------------------------------------------------------

def test_cors_only_for_configured_origins(gateway, gateway_factory):
    allowed = "https://app.example.com"
    gw = gateway_factory(gateway.backend, "gw-cors", args=["--cors-origins", f"{allowed}, https://b.example.com"]).start()
    pre = {"Origin": allowed, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type, x-request-id"}
    resp = call(gw, "OPTIONS", "/v1/tenants", headers=pre)
    assert resp.status == 204, resp
    assert resp.headers["access-control-allow-origin"] == allowed
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert "X-Request-Id" in resp.headers["access-control-allow-headers"]
    resp = call(gw, "GET", "/v1/tenants?page_size=1", headers={"Origin": allowed})
    assert resp.status == 200
    assert resp.headers["access-control-allow-origin"] == allowed
    assert "X-Request-Id" in resp.headers["access-control-expose-headers"]

    other = dict(pre, Origin="https://evil.example.net")
    resp = call(gw, "OPTIONS", "/v1/tenants", headers=other)
    assert_error(resp, 403, 7, "https://evil.example.net")
    assert "access-control-allow-origin" not in resp.headers
    resp = call(gw, "GET", "/v1/tenants?page_size=1", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in resp.headers

    # the default gateway allows no other origin
    resp = call(gateway, "OPTIONS", "/v1/tenants", headers=pre)
    assert resp.status == 403
    assert "access-control-allow-origin" not in resp.headers


# --- metadata to the backend, and graceful shutdown ----------------------------------

class FakeBackend:
    """A gRPC server that answers GetTenant with the metadata it received (as JSON in
    display_name), sleeps on 'tenants/slow', and streams WatchOperation until cancelled."""

    def __init__(self):
        self.port = support.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.watch_started = threading.Event()
        self.watch_ended = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers([self])
        self.server.add_insecure_port(self.address)

    def service(self, details):
        m = details.method
        if m == "/grpc.health.v1.Health/Check":
            return grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\x08\x01")
        if m == "/saasodoo.v1.TenantService/GetTenant":
            return grpc.unary_unary_rpc_method_handler(
                self.get_tenant, request_deserializer=tenant_pb2.GetTenantRequest.FromString,
                response_serializer=tenant_pb2.Tenant.SerializeToString)
        if m == "/saasodoo.v1.OperationService/WatchOperation":
            return grpc.unary_stream_rpc_method_handler(
                self.watch, request_deserializer=operation_pb2.WatchOperationRequest.FromString,
                response_serializer=operation_pb2.Operation.SerializeToString)
        return None

    def get_tenant(self, req, ctx):
        if req.name == "tenants/slow":
            time.sleep(1.5)
        md = {}
        for k, v in ctx.invocation_metadata():
            md.setdefault(k, []).append(v)
        ctx.send_initial_metadata((("x-request-id", md.get("x-request-id", [""])[0]),
                                   ("x-backend", "fake")))
        return tenant_pb2.Tenant(name=req.name, display_name=json.dumps(md))

    def watch(self, req, ctx):
        self.watch_started.set()
        yield operation_pb2.Operation(name=req.name, step="running", progress_percent=10)
        while ctx.is_active():
            time.sleep(0.05)
        self.watch_ended.set()

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0)


def test_authorization_request_id_and_forwarded_for_reach_the_backend(gateway_factory):
    with FakeBackend() as be:
        gw = gateway_factory(be.address, "gw-metadata").start()
        resp = call(gw, "GET", "/v1/tenants/acme", headers={
            "Authorization": "Bearer token-123", "X-Request-Id": "md-rid-1",
            "X-Forwarded-For": "203.0.113.7", "Grpc-Metadata-X-Custom": "yes",
            "Cookie": "secret=1"})
        assert resp.status == 200, resp
        md = json.loads(resp.json()["display_name"])
        assert md["authorization"] == ["Bearer token-123"]
        assert md["x-request-id"] == ["md-rid-1"]
        assert md["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
        assert md["x-custom"] == ["yes"]
        assert "cookie" not in md and "grpcgateway-cookie" not in md
        assert resp.headers["x-request-id"] == "md-rid-1"
        assert resp.headers["grpc-metadata-x-backend"] == "fake"
        resp = call(gw, "GET", "/v1/tenants/acme")
        md = json.loads(resp.json()["display_name"])
        assert md["x-forwarded-for"] == ["127.0.0.1"]
        assert "authorization" not in md
        assert md["x-request-id"] == [resp.headers["x-request-id"]]


def test_sigterm_lets_requests_finish_and_ends_streams(gateway_factory):
    with FakeBackend() as be:
        gw = gateway_factory(be.address, "gw-shutdown", args=["--shutdown-grace", "8s"]).start()
        watch = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "30", gw.url("/v1/operations/abc:watch")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert be.watch_started.wait(10)
        first = watch.stdout.readline()
        assert json.loads(first)["result"]["step"] == "running"
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=call(gw, "GET", "/v1/tenants/slow")))
        t.start()
        time.sleep(0.4)  # the slow call is in flight
        start = time.monotonic()
        os.kill(gw.proc.pid, signal.SIGTERM)
        t.join(15)
        assert slow["r"].status == 200, slow
        rc = gw.proc.wait(timeout=15)
        assert rc == 0, gw.log_text()
        assert time.monotonic() - start < 6, "shutdown waited for the open stream"
        watch.communicate(timeout=10)
        assert be.watch_ended.wait(10), "the backend's stream was not cancelled"
        # a new connection is refused once it is gone
        with pytest.raises(OSError):
            call(gw, "GET", "/healthz", timeout=2)



# --- flags and environment -----------------------------------------------------------

def test_listen_and_backend_come_from_the_environment(gateway, workdir):
    port = support.free_port()
    env = {"SAASODOO_GATEWAY_LISTEN": f"127.0.0.1:{port}", "SAASODOO_GATEWAY_BACKEND": gateway.backend,
           "SAASODOO_GATEWAY_MAX_BODY_BYTES": "100"}
    gw = gs.Gateway(workdir, "unused:1", name="gw-env", env=env)
    gw.address = f"127.0.0.1:{port}"
    gw.base = f"http://{gw.address}"
    gw.argv = lambda: [str(gs.GATEWAY_BIN)]
    try:
        gw.start()
        assert call(gw, "GET", "/healthz").status == 200
        resp = call(gw, "POST", "/v1/tenants", {"tenant_id": "x" * 200})
        assert_error(resp, 413, 8, "100 bytes")
    finally:
        gw.kill()


@pytest.mark.parametrize("args,needle", [
    (["--listen", "nonsense"], "--listen"),
    (["--max-body-bytes", "0"], "--max-body-bytes"),
    (["--shutdown-grace", "soon"], "--shutdown-grace"),
    (["--frontend", "/no/such/folder"], "--frontend"),
    (["--bogus-flag"], "bogus-flag"),
])
def test_bad_flags_exit_2_with_a_message(args, needle):
    p = subprocess.run([str(gs.GATEWAY_BIN)] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr


def test_version_and_help():
    p = subprocess.run([str(gs.GATEWAY_BIN), "--version"], stdout=subprocess.PIPE, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("saasodoo-gateway ")
    p = subprocess.run([str(gs.GATEWAY_BIN), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=10)
    assert p.returncode == 0
    for flag in ("--listen", "--backend", "--frontend", "--cors-origins", "--max-body-bytes"):
        assert flag.lstrip("-") in p.stdout


# --- TLS -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gateway_certs(workdir):
    """A CA and a certificate for localhost and 127.0.0.1 signed by it (openssl)."""
    d = workdir / "gw-certs"
    d.mkdir(exist_ok=True)

    def openssl(*args):
        p = subprocess.run(["openssl", *args], cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stdout

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=gateway test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "gw.key",
            "-out", "gw.csr", "-subj", "/CN=localhost")
    (d / "gw.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "gw.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "gw.pem", "-days", "2", "-extfile", "gw.ext")
    (d / "not-pem.txt").write_text("this is not a certificate\n")
    return {"ca": d / "ca.pem", "cert": d / "gw.pem", "key": d / "gw.key", "junk": d / "not-pem.txt"}


def test_https_is_served_with_a_certificate(gateway_factory, gateway_certs, monkeypatch):
    monkeypatch.setenv("CURL_CA_BUNDLE", str(gateway_certs["ca"]))
    with FakeBackend() as be:
        gw = gateway_factory(be.address, "gw-https-only",
                             args=["--tls-cert", str(gateway_certs["cert"]), "--tls-key", str(gateway_certs["key"])])
        gw.base = f"https://localhost:{gw.port}"
        gw.start()
        resp = call(gw, "GET", "/v1/tenants/acme", headers={"X-Request-Id": "tls-rid-1"})
        assert resp.status == 200, resp
        assert json.loads(resp.json()["display_name"])["x-request-id"] == ["tls-rid-1"]
        assert "listening on https://" in gw.log_text()
    # curl without the CA does not trust it
    env = {k: v for k, v in os.environ.items() if k != "CURL_CA_BUNDLE"}
    p = subprocess.run(["curl", "-sS", "--max-time", "5", f"https://localhost:{gw.port}/healthz"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=15)
    assert p.returncode == 60, p.stderr


@pytest.mark.parametrize("flags,needle", [
    (lambda c: ["--tls-cert", str(c["cert"])], "--tls-key"),
    (lambda c: ["--tls-key", str(c["key"])], "--tls-cert"),
    (lambda c: ["--tls-cert", str(c["junk"]), "--tls-key", str(c["key"])], "--tls-cert"),
    (lambda c: ["--tls-cert", str(c["cert"]), "--tls-key", str(c["ca"])], "--tls-key"),
    (lambda c: ["--backend-ca", str(c["junk"])], "holds no PEM certificate"),
    (lambda c: ["--backend-ca", "/no/such/ca.pem"], "--backend-ca"),
])
def test_bad_tls_flags_exit_2_with_a_message(gateway_certs, flags, needle):
    p = subprocess.run([str(gs.GATEWAY_BIN)] + flags(gateway_certs), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr
