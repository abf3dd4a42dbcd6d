"""Backup storage backends (server/storage) through saasodoo-storage-tool, a small command
line over the storage vtable: the filesystem backend in a temporary directory, and the S3
backend against a real S3 server.

s3rver (npm package, pinned in tests/s3/package-lock.json, installed by scripts/deps.sh)
stands in for Amazon S3: it follows the S3 REST API (PUT/GET/HEAD/DELETE Object, ranged
GETs, CreateMultipartUpload / UploadPart / CompleteMultipartUpload / AbortMultipartUpload,
ListObjectsV2 with continuation tokens, the S3 error XML). It refuses unknown access key ids
with 403 InvalidAccessKeyId, but it does not check Signature V4 signatures. So the S3 tests
talk to it through SignatureCheck, an HTTP front that recomputes the signature of every
request with botocore's S3SigV4Auth (an independent SigV4 implementation) from the
server's secret and answers 403 SignatureDoesNotMatch, as S3 does, when it differs; requests
that pass go on to s3rver unchanged.
"""
import hashlib
import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SAASODOO_BUILD_DIR") or (REPO / "build")).resolve()
TOOL = BUILD_DIR / "bin" / "saasodoo-storage-tool"
S3RVER = REPO / "tests" / "s3" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
TMP_ROOT = Path(os.environ.get("SAASODOO_TEST_TMPDIR", "/tmp"))

BUCKET = "backups"
# s3rver's built-in account (lib/models/account.js).
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"s3rver exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"s3rver did not listen on {port} within {timeout} s")


class S3rver:
    """One s3rver process on a fixed port and data directory, restartable."""

    def __init__(self, data_dir, port):
        self.data_dir = data_dir
        self.port = port
        self.proc = None
        self.log = data_dir.parent / f"s3rver-{port}.log"

    def start(self):
        node = shutil.which("node")
        if not node:
            pytest.fail("node is not installed (bash scripts/deps.sh installs nodejs)")
        if not S3RVER.exists():
            pytest.fail(f"{S3RVER} is missing: run bash scripts/deps.sh (npm ci in tests/s3)")
        # s3rver makes continuation tokens with DES, which OpenSSL 3 keeps in its legacy
        # provider.
        self.proc = subprocess.Popen(
            [node, "--openssl-legacy-provider", str(S3RVER), "-d", str(self.data_dir),
             "-a", "127.0.0.1", "-p", str(self.port), "--service-endpoint", "localhost",
             "--configure-bucket", BUCKET],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"


class SignatureCheck:
    """HTTP front that verifies each request's SigV4 signature with botocore, then relays it
    to s3rver."""

    def __init__(self, upstream_port, secret):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest, HTTPHeaders
        from botocore.credentials import Credentials

        front = self
        self.checked = 0
        self.refused = 0

        class Verifier(S3SigV4Auth):
            def __init__(self, region, signed):
                super().__init__(Credentials(ACCESS_KEY, secret), "s3", region)
                self.signed = signed

            def headers_to_sign(self, request):
                m = HTTPHeaders()
                for name in self.signed:
                    m[name] = request.headers.get(name, "")
                return m

        def verify(method, url, headers, body):
            auth = headers.get("Authorization", "")
            if not auth.startswith("AWS4-HMAC-SHA256 "):
                return "no AWS4-HMAC-SHA256 Authorization header"
            fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
            akid, date8, region, service, term = fields["Credential"].split("/")
            amz_date = headers.get("x-amz-date", "")
            if akid != ACCESS_KEY or service != "s3" or term != "aws4_request" or \
                    amz_date[:8] != date8:
                return f"bad credential scope {fields['Credential']}"
            signed = fields["SignedHeaders"].split(";")
            for required in ("host", "x-amz-date", "x-amz-content-sha256"):
                if required not in signed:
                    return f"{required} is not signed"
            content_sha = headers.get("x-amz-content-sha256", "")
            if content_sha != "UNSIGNED-PAYLOAD" and content_sha != hashlib.sha256(body).hexdigest():
                return "x-amz-content-sha256 does not match the body"
            req = AWSRequest(method=method, url=url, headers=dict(headers.items()), data=body)
            req.context["timestamp"] = amz_date
            v = Verifier(region, signed)
            expected = v.signature(v.string_to_sign(req, v.canonical_request(req)), req)
            return None if expected == fields["Signature"] else "signature differs"

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                url = f"http://{self.headers['Host']}{self.path}"
                problem = verify(self.command, url, self.headers, body)
                front.checked += 1
                if problem:
                    front.refused += 1
                    xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                           "<Code>SignatureDoesNotMatch</Code><Message>The request signature we "
                           "calculated does not match the signature you provided. Check your key "
                           f"and signing method. ({problem})</Message></Error>").encode()
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body if n else None,
                                 headers=dict(self.headers.items()))
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                         "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length",
                                 resp.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_tool(env, *args, data=None, check=True):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} is missing: build the tree (cmake --build {BUILD_DIR})")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_S3_")}
    full_env.update(env)
    p = subprocess.run([str(TOOL), *args], input=data, capture_output=True, env=full_env,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"storage tool {args} failed ({p.returncode}): {p.stderr.decode()}")
    return p


def status_of(p):
    assert p.returncode == 1, (p.returncode, p.stderr)
    return p.stderr.decode().split(":", 1)[0]


def listing(env, prefix=""):
    out = run_tool(env, "ls", prefix).stdout.decode()
    rows = [line.split(" ", 1) for line in out.splitlines()]
    return [(key, int(size)) for size, key in rows]


@pytest.fixture
def workdir():
    d = Path(os.environ.get("SAASODOO_TEST_TMPDIR", "/tmp"))
    path = Path(subprocess.check_output(["mktemp", "-d", str(d / "sdo-storage-XXXXXX")],
                                        text=True).strip())
    yield path
    if os.environ.get("SAASODOO_TEST_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def s3(workdir):
    server = S3rver(workdir / "s3rver", free_port())
    server.data_dir.mkdir()
    server.start()
    yield server
    server.stop()


def have_botocore():
    try:
        import botocore.auth  # noqa: F401
        return True
    except ImportError:
        return False


class Direct:
    """No signature check (botocore missing): requests go straight to s3rver."""

    def __init__(self, s3):
        self.endpoint = s3.endpoint
        self.checked = None
        self.refused = 0


@pytest.fixture
def checked(s3):
    """The endpoint the S3 tests use: the signature-checking front when botocore
    (python3-botocore) is installed, otherwise s3rver itself."""
    if not have_botocore():
        yield Direct(s3)
        return
    front = SignatureCheck(s3.port, SECRET_KEY)
    yield front
    front.close()


def s3_env(endpoint, **extra):
    env = {
        "SAASODOO_STORAGE": "s3",
        "SAASODOO_S3_ENDPOINT": endpoint,
        "SAASODOO_S3_BUCKET": BUCKET,
        "SAASODOO_S3_REGION": "us-east-1",
        "SAASODOO_S3_ACCESS_KEY": ACCESS_KEY,
        "SAASODOO_S3_SECRET_KEY": SECRET_KEY,
        "SAASODOO_S3_PART_SIZE": str(5 * MIB),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ---- filesystem ------------------------------------------------------------------------------

def test_filesystem_round_trip(workdir):
    env = {"SAASODOO_STORAGE": "filesystem", "SAASODOO_STORAGE_DIR": str(workdir / "backups")}
    data = os.urandom(3 * MIB + 17)
    key = "tenants/acme/20261126T101500Z-3f2a/database.dump"
    run_tool(env, "put", key, data=data)
    assert run_tool(env, "get", key).stdout == data
    assert run_tool(env, "stat", key).stdout.decode().strip() == str(len(data))
    run_tool(env, "put", "tenants/acme/manifest.json", data=b"{}")
    assert listing(env, "tenants/") == [(key, len(data)), ("tenants/acme/manifest.json", 2)]
    # No temporary file is left beside the objects.
    names = [p.name for p in (workdir / "backups" / "tenants" / "acme").iterdir()]
    assert sorted(names) == ["20261126T101500Z-3f2a", "manifest.json"]

    run_tool(env, "rm", key)
    assert status_of(run_tool(env, "stat", key, check=False)) == "NOT_FOUND"
    assert status_of(run_tool(env, "get", key, check=False)) == "NOT_FOUND"
    assert not (workdir / "backups" / "tenants" / "acme" / "20261126T101500Z-3f2a").exists()
    assert listing(env) == [("tenants/acme/manifest.json", 2)]

    p = run_tool(env, "put", "../escape", data=b"x", check=False)
    assert status_of(p) == "INVALID_ARGUMENT"
    assert "../escape" in p.stderr.decode()
    assert not (workdir / "escape").exists()


# ---- S3 --------------------------------------------------------------------------------------

def test_s3_multipart_round_trip_list_remove(s3, checked):
    env = s3_env(checked.endpoint, SAASODOO_S3_PREFIX="saasodoo")
    data = os.urandom(12 * MIB)  # 3 parts of 5 MiB: 5 + 5 + 2
    key = "tenants/acme/20261126T101500Z-3f2a/database.dump"
    run_tool(env, "put", key, data=data)
    log = s3.log.read_text(errors="replace")
    assert "?uploads" in log and "partNumber=3" in log and "partNumber=4" not in log

    back = run_tool(env, "get", key).stdout
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    assert run_tool(env, "stat", key).stdout.decode().strip() == str(12 * MIB)

    # A small object goes up in one PUT; an empty one too.
    run_tool(env, "put", "tenants/acme/manifest.json", data=b'{"v":1}')
    run_tool(env, "put", "tenants/acme/empty", data=b"")
    assert run_tool(env, "get", "tenants/acme/empty").stdout == b""
    assert listing(env, "tenants/acme/") == [
        (key, 12 * MIB), ("tenants/acme/empty", 0), ("tenants/acme/manifest.json", 7)]
    # The prefix is where the objects are, and the storage hides it.
    assert (s3.data_dir / BUCKET / "saasodoo" / "tenants").is_dir()
    assert listing(s3_env(checked.endpoint), "saasodoo/tenants/acme/m") == [
        ("saasodoo/tenants/acme/manifest.json", 7)]

    run_tool(env, "rm", key)
    assert status_of(run_tool(env, "stat", key, check=False)) == "NOT_FOUND"
    p = run_tool(env, "get", key, check=False)
    assert status_of(p) == "NOT_FOUND" and key in p.stderr.decode()
    run_tool(env, "rm", key)  # absent: not an error
    assert [k for k, _ in listing(env, "tenants/")] == ["tenants/acme/empty",
                                                          "tenants/acme/manifest.json"]
    assert checked.refused == 0
    assert checked.checked is None or checked.checked > 10


def test_s3_list_pages(s3, checked):
    env = s3_env(checked.endpoint, SAASODOO_S3_LIST_PAGE_SIZE=3)
    keys = [f"tenants/t{i:02d}/b" for i in range(11)]
    for k in keys:
        run_tool(env, "put", k, data=k.encode())
    run_tool(env, "put", "other/x", data=b"x")
    got = listing(env, "tenants/")
    assert [k for k, _ in got] == keys
    assert all(size == len(k) for k, size in got)
    # 11 keys in pages of 3: four requests, three of them with a continuation token.
    log = s3.log.read_text(errors="replace")
    assert log.count("continuation-token=") >= 3
    assert checked.refused == 0


def test_s3_virtual_host_style(s3, checked):
    # s3rver started with --service-endpoint localhost takes BUCKET.s3.localhost as
    # virtual-host style; *.localhost names resolve to the loopback address.
    path_env = s3_env(s3.endpoint)
    run_tool(path_env, "put", "both/ways", data=b"path style")
    vhost_env = s3_env(f"http://s3.localhost:{s3.port}", SAASODOO_S3_PATH_STYLE=0)
    assert run_tool(vhost_env, "get", "both/ways").stdout == b"path style"
    run_tool(vhost_env, "put", "both/vhost", data=b"virtual host")
    assert run_tool(path_env, "get", "both/vhost").stdout == b"virtual host"
    assert [k for k, _ in listing(vhost_env, "both/")] == ["both/vhost", "both/ways"]


def test_s3_wrong_credentials(s3, checked):
    # An unknown access key id is refused by s3rver itself.
    p = run_tool(s3_env(s3.endpoint, SAASODOO_S3_ACCESS_KEY="NOBODY"), "ls", check=False)
    assert status_of(p) == "PERMISSION_DENIED"
    assert "InvalidAccessKeyId" in p.stderr.decode()

    # A wrong secret: only a server that checks signatures can tell.
    if checked.checked is None:
        pytest.skip("python3-botocore is not installed: no signature check for a wrong secret")
    p = run_tool(s3_env(checked.endpoint, SAASODOO_S3_SECRET_KEY="not-the-secret"),
                 "put", "tenants/acme/x", data=b"secret data", check=False)
    assert status_of(p) == "PERMISSION_DENIED"
    assert "SignatureDoesNotMatch" in p.stderr.decode()
    assert checked.refused >= 1
    assert listing(s3_env(s3.endpoint)) == []


def test_s3_server_stops_mid_upload(s3):
    env = s3_env(s3.endpoint)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_S3_")}
    full_env.update(env)
    proc = subprocess.Popen([str(TOOL), "put", "tenants/acme/big.dump"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env)
    # 6 MiB: more than one part, so the upload has started when the write returns (a pipe
    # holds at most 64 KiB).
    proc.stdin.write(os.urandom(6 * MIB))
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while "partNumber=1" not in s3.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the first part never reached s3rver"
        time.sleep(0.05)
    s3.stop()
    try:
        proc.stdin.write(os.urandom(6 * MIB))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.decode().startswith("UNAVAILABLE:"), err
    assert s3.endpoint in err.decode()

    s3.start()
    assert listing(env) == []
    assert status_of(run_tool(env, "stat", "tenants/acme/big.dump", check=False)) == "NOT_FOUND"


def test_s3_unreachable_endpoint(workdir):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    p = run_tool(s3_env(f"http://127.0.0.1:{port}"), "stat", "a/b", check=False)
    assert status_of(p) == "UNAVAILABLE"
    assert f"http://127.0.0.1:{port}" in p.stderr.decode()
    assert "3 tries" in p.stderr.decode()
    assert time.monotonic() - t0 < 30
