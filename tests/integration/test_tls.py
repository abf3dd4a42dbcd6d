"""TLS: saasodoo-server serving gRPC over TLS (security.tls_cert_file / tls_key_file), and
saasodoo-gateway serving HTTPS (--tls-cert / --tls-key) in front of a TLS backend
(--backend-ca).

The certificates are made for the run with the openssl command: a CA, a server
certificate for localhost and 127.0.0.1 signed by it, and a second CA that signed
nothing the server presents."""
import os
import subprocess
import sys
import time

import grpc
import pytest

import support

sys.path.insert(0, str(support.REPO / "tests" / "gateway"))
import gateway_support as gs  # noqa: E402


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)}:\n{p.stdout}"


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{name}.pem"


@pytest.fixture(scope="module")
def certs(workdir):
    d = workdir / "tls-certs"
    d.mkdir(exist_ok=True)
    ca = make_ca(d, "saasodoo-test-ca")
    other_ca = make_ca(d, "unrelated-ca")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "basicConstraints=CA:FALSE\n"
                                  "keyUsage=critical,digitalSignature\n"
                                  "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", "saasodoo-test-ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    # a key that belongs to no certificate here
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "stray.key",
            cwd=d)
    os.chmod(d / "server.key", 0o600)
    return {"ca": ca, "other_ca": other_ca, "cert": d / "server.pem", "key": d / "server.key",
            "stray_key": d / "stray.key", "ca_bytes": ca.read_bytes(),
            "other_ca_bytes": other_ca.read_bytes()}


def tls_settings(cert, key):
    return {"security": {"tls_cert_file": f"\"{cert}\"", "tls_key_file": f"\"{key}\""}}


class TlsServer(support.Server):
    """A server that serves gRPC over TLS only: health is polled over a TLS channel that
    trusts the run's CA, and channel() is a TLS channel too."""

    def __init__(self, root, pg, certs, **kw):
        super().__init__(root, pg, settings=tls_settings(certs["cert"], certs["key"]), **kw)
        self.ca_bytes = certs["ca_bytes"]

    def secure_channel(self, target=None, root_certificates=None):
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates or self.ca_bytes)
        return grpc.secure_channel(target or self.address, creds)

    def channel(self):
        if self._channel is None:
            self._channel = self.secure_channel()
        return self._channel

    def wait_serving(self, timeout=support.SERVER_START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(f"saasodoo-server exited with {rc} before serving; its log:\n"
                                     f"{self.recent_log()}")
            ch = self.secure_channel()
            try:
                status = support.health_check(ch, timeout=1.0)
                if status == support.HEALTH_SERVING:
                    return
                last = f"health status {status}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            finally:
                ch.close()
            time.sleep(0.1)
        raise AssertionError(f"saasodoo-server did not report SERVING over TLS within {timeout:.0f}s "
                             f"({last}); its log:\n{self.recent_log()}")


@pytest.fixture(scope="module")
def tls_server(workdir, pg, certs):
    srv = TlsServer(workdir, pg, certs, name="tls-server")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
        srv.cleanup_tenants()
        reports = srv.sanitizer_reports()
        assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


# --- gRPC over TLS ---------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_channel_trusting_the_ca_gets_health(tls_server, host):
    ch = tls_server.secure_channel(f"{host}:{tls_server.port}")
    try:
        assert support.health_check(ch, timeout=5) == support.HEALTH_SERVING
    finally:
        ch.close()
    assert "serving gRPC over TLS" in tls_server.log_text()


def test_reflection_answers_over_tls(tls_server):
    resps = support.reflection_call(tls_server.channel(), "v1", [{"list_services": ""}])
    names = {s.name for s in resps[0].list_services_response.service}
    assert "saasodoo.v1.TenantService" in names


def test_an_authenticated_call_over_tls(tls_server):
    from saasodoo.v1 import identity_pb2, identity_pb2_grpc, tenant_pb2, tenant_pb2_grpc
    ch = tls_server.secure_channel()
    try:
        session = identity_pb2_grpc.IdentityServiceStub(ch).SignIn(
            identity_pb2.SignInRequest(email=support.ADMIN_EMAIL, password=support.ADMIN_PASSWORD), timeout=30)
        tenants = tenant_pb2_grpc.TenantServiceStub(ch)
        tenants.ListTenants(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10,
                            metadata=(("authorization", f"Bearer {session.access_token}"),))
        err = support.call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(page_size=1), timeout=10)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    finally:
        ch.close()


def test_a_plaintext_channel_is_refused(tls_server):
    ch = grpc.insecure_channel(tls_server.address)
    try:
        err = support.call_error(support.health_check, ch, timeout=3)
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    finally:
        ch.close()


def test_a_channel_trusting_another_ca_is_refused(tls_server, certs):
    ch = tls_server.secure_channel(root_certificates=certs["other_ca_bytes"])
    try:
        err = support.call_error(support.health_check, ch, timeout=3)
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    finally:
        ch.close()


def _start_fails(server, timeout=30):
    server.start(wait=False)
    try:
        rc = server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"the server started with unusable TLS files; its log:\n{server.recent_log()}")
    server.stopped_on_purpose = True
    return rc, server.recent_log()


def test_a_key_that_is_not_the_certificates_stops_the_start(workdir, pg, certs):
    srv = support.Server(workdir, pg, name="tls-stray-key", settings=tls_settings(certs["cert"], certs["stray_key"]))
    rc, log = _start_fails(srv)
    assert rc != 0
    assert "security.tls_key_file" in log and "stray.key" in log and "is not the key" in log, log


def test_a_missing_certificate_file_stops_the_start(workdir, pg, certs):
    srv = support.Server(workdir, pg, name="tls-missing-cert",
                         settings=tls_settings(certs["cert"].parent / "nope.pem", certs["key"]))
    rc, log = _start_fails(srv)
    assert rc != 0
    assert "security.tls_cert_file" in log and "nope.pem" in log, log


def test_cert_without_key_is_a_configuration_error(workdir, certs):
    cfg = workdir / "tls-half.yaml"
    cfg.write_text(f"security:\n  tls_cert_file: \"{certs['cert']}\"\n")
    p = support.run_server_cli(["--config", str(cfg), "--check-config"])
    assert p.returncode == 2, p
    assert "tls_key_file" in p.stderr


# --- the gateway: HTTPS in front, TLS to the backend -------------------------------------

def _curl(url, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args, url], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=20)


@pytest.fixture
def https_gateway(workdir, tls_server, certs, monkeypatch):
    gs.require_gateway_build()
    # gateway_support's curl client trusts the run's CA through CURL_CA_BUNDLE
    monkeypatch.setenv("CURL_CA_BUNDLE", str(certs["ca"]))
    made = []

    def make(name, backend_ca=True):
        args = ["--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"])]
        if backend_ca:
            args += ["--backend-ca", str(certs["ca"])]
        gw = gs.Gateway(workdir, f"localhost:{tls_server.port}", name=name, args=args)
        gw.base = f"https://localhost:{gw.port}"
        made.append(gw)
        return gw.start()

    yield make
    for gw in made:
        gw.kill()


def test_gateway_serves_https_and_dials_the_tls_backend(https_gateway, certs):
    gw = https_gateway("gw-https")
    resp = gs.call(gw, "GET", "/healthz")
    assert resp.status == 200, (resp, gw.log_text())
    assert resp.json()["status"] == "SERVING"
    assert "listening on https://" in gw.log_text() and "backend_tls=on" in gw.log_text()
    # curl with the CA: the certificate names localhost and 127.0.0.1
    for host in ("localhost", "127.0.0.1"):
        p = _curl(f"https://{host}:{gw.port}/healthz", "--cacert", str(certs["ca"]))
        assert p.returncode == 0, p.stderr
        assert '"SERVING"' in p.stdout
    # API calls go through to the server over TLS: sign in, then list tenants
    session = gs.sign_in(gw)
    resp = gs.call(gw, "GET", "/v1/tenants?page_size=1", token=session["access_token"])
    assert resp.status == 200, resp
    resp = gs.call(gw, "GET", "/v1/tenants?page_size=1", token=None)
    assert resp.status == 401, resp
    # without the CA, curl does not trust the gateway
    p = _curl(f"https://localhost:{gw.port}/healthz")
    assert p.returncode == 60, (p.returncode, p.stderr)
    # and plain HTTP is not served on that port
    p = _curl(f"http://127.0.0.1:{gw.port}/healthz", "-o", "/dev/null", "-w", "%{http_code}")
    assert p.stdout.strip() in ("400", "000"), p.stdout


def test_gateway_without_backend_ca_cannot_reach_a_tls_backend(https_gateway):
    gw = https_gateway("gw-https-plain-backend", backend_ca=False)
    resp = gs.call(gw, "GET", "/healthz")
    assert resp.status == 503, resp
    assert resp.json()["status"] == "UNREACHABLE"
