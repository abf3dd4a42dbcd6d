"""Shared helpers for the integration tests: paths, PostgreSQL and server processes,
dynamic message classes for the health and reflection protocols, and small RPC helpers.

Everything here talks to real processes: a PostgreSQL cluster started on a private
socket directory and port, and the real saasodoo-server binary.
"""
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SAASODOO_BUILD_DIR") or (REPO / "build")).resolve()
PYTHON_DIR = BUILD_DIR / "python"
SERVER_BIN = BUILD_DIR / "bin" / "saasodoo-server"
DESCRIPTOR_SET = BUILD_DIR / "gen" / "descriptor_set.pb"
PLANS_FILE = REPO / "config" / "plans.yaml"
PG_BIN = Path(os.environ.get("SAASODOO_PG_BIN", "/usr/lib/postgresql/15/bin"))
PYTHON = os.environ.get("SAASODOO_TEST_PYTHON", "/usr/bin/python3")

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

# Shutdown grace written into every test config; tests measure exits against it.
SHUTDOWN_GRACE_SECONDS = 10
SERVER_START_TIMEOUT = 20.0

HEALTH_SERVING = 1
HEALTH_NOT_SERVING = 2
HEALTH_SERVICE_UNKNOWN = 3

SAASODOO_SERVICES = [
    "saasodoo.v1.TenantService",
    "saasodoo.v1.OperationService",
    "saasodoo.v1.BackupService",
    "saasodoo.v1.BillingService",
    "saasodoo.v1.MonitoringService",
    "saasodoo.v1.IdentityService",
    "saasodoo.v1.AdminService",
]

# Methods this stage of the server implements; every other saasodoo.v1 method must
# answer UNIMPLEMENTED.
IMPLEMENTED_METHODS = {
    "/saasodoo.v1.TenantService/CreateTenant",
    "/saasodoo.v1.TenantService/GetTenant",
    "/saasodoo.v1.TenantService/ListTenants",
    "/saasodoo.v1.TenantService/UpdateTenant",
    "/saasodoo.v1.OperationService/GetOperation",
    "/saasodoo.v1.OperationService/ListOperations",
    "/saasodoo.v1.OperationService/WatchOperation",
    "/saasodoo.v1.OperationService/CancelOperation",
}


def require_build():
    """Fails with a clear message when the build outputs the tests need are missing."""
    missing = [str(p) for p in (SERVER_BIN, DESCRIPTOR_SET, PYTHON_DIR / "saasodoo" / "v1" / "tenant_pb2.py")
               if not p.exists()]
    if missing:
        raise RuntimeError(
            "build outputs missing (run `cmake -S . -B build && cmake --build build`, or set "
            "SAASODOO_BUILD_DIR): " + ", ".join(missing))


def unique_id(prefix="t"):
    """A tenant id that matches ^[a-z][a-z0-9-]{1,38}[a-z0-9]$ and is unique per call."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def unique_owner():
    return f"users/u{uuid.uuid4().hex[:12]}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Polls predicate() until it returns a truthy value; returns it or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


# ---------------------------------------------------------------------------
# Dynamic messages from the build's descriptor set (health, reflection, ...)
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def descriptor_set():
    return descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())


@functools.lru_cache(maxsize=None)
def _pool_and_factory():
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_set().file:
        pool.Add(f)
    return pool, message_factory.MessageFactory(pool)


def message_class(full_name):
    """The Python class of a message type from the descriptor set, e.g.
    'grpc.health.v1.HealthCheckRequest'."""
    pool, factory = _pool_and_factory()
    return factory.GetPrototype(pool.FindMessageTypeByName(full_name))


def service_descriptor(full_name):
    pool, _ = _pool_and_factory()
    return pool.FindServiceByName(full_name)


def all_saasodoo_methods():
    """[(path, MethodDescriptor)] for every method of every saasodoo.v1 service in the
    descriptor set, in declaration order."""
    out = []
    for f in descriptor_set().file:
        if f.package != "saasodoo.v1":
            continue
        for svc in f.service:
            full = f"{f.package}.{svc.name}"
            desc = service_descriptor(full)
            for m in desc.methods:
                out.append((f"/{full}/{m.name}", m))
    return out


def health_check(channel, service="", timeout=2.0, metadata=None):
    req_cls = message_class("grpc.health.v1.HealthCheckRequest")
    resp_cls = message_class("grpc.health.v1.HealthCheckResponse")
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString)
    return call(req_cls(service=service), timeout=timeout, metadata=metadata).status


def health_watch(channel, service="", timeout=30.0):
    req_cls = message_class("grpc.health.v1.HealthCheckRequest")
    resp_cls = message_class("grpc.health.v1.HealthCheckResponse")
    call = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString)
    return call(req_cls(service=service), timeout=timeout)


def reflection_call(channel, version, requests, timeout=10.0):
    """Sends the given ServerReflectionRequest field dicts on one
    ServerReflectionInfo stream and returns the responses."""
    pkg = f"grpc.reflection.{version}"
    req_cls = message_class(f"{pkg}.ServerReflectionRequest")
    resp_cls = message_class(f"{pkg}.ServerReflectionResponse")
    call = channel.stream_stream(
        f"/{pkg}.ServerReflection/ServerReflectionInfo",
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString)
    return list(call(iter([req_cls(**r) for r in requests]), timeout=timeout))


def raw_unary(channel, path, payload, timeout=5.0, metadata=None):
    """Calls a unary method with raw request bytes; returns the raw response bytes."""
    call = channel.unary_unary(path, request_serializer=lambda x: x,
                               response_deserializer=lambda x: x)
    return call(payload, timeout=timeout, metadata=metadata)


def call_error(fn, *args, **kwargs):
    """Calls fn and returns the grpc.RpcError it raises; fails if it succeeds."""
    try:
        result = fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError(f"expected an RPC error, got a response: {result!r}")


def assert_status(err, code, *needles):
    """Asserts an RpcError has the status code and that its message contains every
    needle."""
    assert isinstance(err, grpc.RpcError), f"not an RPC error: {err!r}"
    assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err.details()!r}"
    details = err.details() or ""
    for n in needles:
        assert n in details, f"{code.name} message should name {n!r}; got {details!r}"


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

def _as_postgres(argv):
    """PostgreSQL's server binaries refuse to run as root: run them as 'postgres'."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


def _chown_postgres(path):
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class Postgres:
    """A throwaway PostgreSQL cluster on a private socket directory and port."""

    def __init__(self, root: Path):
        self.root = root / "pg"
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.user = "postgres"
        self.dbname = "saasodoo"

    @property
    def conninfo(self):
        return {"host": str(self.socket_dir), "port": str(self.port),
                "dbname": self.dbname, "user": self.user}

    def url(self, dbname=None):
        c = dict(self.conninfo)
        if dbname:
            c["dbname"] = dbname
        return " ".join(f"{k}={v}" for k, v in c.items())

    def _run(self, argv, timeout=60):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, cwd="/")
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}")
        return p.stdout

    def init(self):
        self.root.mkdir(mode=0o755)
        self.socket_dir.mkdir(mode=0o755)
        for p in (self.root, self.socket_dir):
            os.chmod(p, 0o755)
            _chown_postgres(p)
        self._run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                                "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]))

    def start(self):
        opts = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                                "-w", "-t", "60", "-o", opts, "start"]), timeout=90)

    def stop(self, mode="fast"):
        self._run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                                "-w", "-t", "60", "stop"]), timeout=90)

    def is_running(self):
        p = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        return p.returncode == 0

    def createdb(self, name):
        self._run([str(PG_BIN / "createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
                   "-U", self.user, name])

    def psql(self, sql, dbname=None):
        """Runs SQL and returns the unaligned, tuples-only output."""
        out = self._run([str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user,
                         "-d", dbname or self.dbname, "-c", sql])
        return out.strip()


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

def write_config(path: Path, listen, database_url, data_dir, workers=2, pool_size=4,
                 level="info", extra=""):
    path.write_text(
        "grpc:\n"
        f"  listen: \"{listen}\"\n"
        f"  workers: {workers}\n"
        f"  shutdown_grace_seconds: {SHUTDOWN_GRACE_SECONDS}\n"
        "database:\n"
        f"  url: \"{database_url}\"\n"
        f"  pool_size: {pool_size}\n"
        "log:\n"
        f"  level: {level}\n"
        "platform:\n"
        f"  data_dir: \"{data_dir}\"\n"
        f"  plans_file: \"{PLANS_FILE}\"\n"
        + extra)


class Server:
    """One saasodoo-server process with its own config file, port and log."""

    def __init__(self, root: Path, pg: Postgres, name="server", dbname=None, env=None):
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pg = pg
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config_path = self.dir / "saasodoo.yaml"
        self.log_path = self.dir / "server.log"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.env = dict(env or {})
        self.proc = None
        self.stopped_on_purpose = False
        self._channel = None
        self._log_offset = 0
        write_config(self.config_path, self.address, pg.url(dbname), self.data_dir)

    # -- process control ------------------------------------------------------

    def _environ(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
        env.update(self.env)
        return env

    def start(self, timeout=SERVER_START_TIMEOUT, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.stopped_on_purpose = False
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SERVER_BIN), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._environ(),
                cwd=str(self.dir), start_new_session=True)
        if wait:
            self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout=SERVER_START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"saasodoo-server exited with {rc} before serving; its log:\n{self.recent_log()}")
            ch = grpc.insecure_channel(self.address)
            try:
                status = health_check(ch, timeout=1.0)
                if status == HEALTH_SERVING:
                    return
                last = f"health status {status}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            finally:
                ch.close()
            time.sleep(0.1)
        raise AssertionError(
            f"saasodoo-server did not report SERVING within {timeout:.0f}s ({last}); "
            f"its log:\n{self.recent_log()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.stopped_on_purpose = True
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=SHUTDOWN_GRACE_SECONDS + 5):
        """Sends sig and waits for the exit; returns the exit code. A server that does
        not exit in time is killed and the test fails."""
        self.close_channel()
        self.stopped_on_purpose = True
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"saasodoo-server did not exit within {timeout}s of {signal.Signals(sig).name}; "
                f"its log:\n{self.recent_log()}")

    def kill(self):
        self.stopped_on_purpose = True
        self.close_channel()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def restart(self, timeout=SERVER_START_TIMEOUT):
        rc = self.stop()
        assert rc == 0, f"saasodoo-server exited {rc} on SIGTERM; its log:\n{self.recent_log()}"
        self.start(timeout=timeout)

    # -- clients --------------------------------------------------------------

    def channel(self):
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def new_channel(self, options=None):
        return grpc.insecure_channel(self.address, options=options or [])

    def close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def stub(self, stub_class):
        return stub_class(self.channel())

    # -- logs -----------------------------------------------------------------

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "ThreadSanitizer", "Segmentation fault", "assertion failed", "Assertion `")

    def sanitizer_reports(self):
        """Lines of the log (since the last call) that report memory errors, undefined
        behaviour or crashes."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "_scan_offset", 0))
            text = f.read().decode(errors="replace")
            self._scan_offset = f.tell()
        return [ln for ln in text.splitlines() if any(m in ln for m in self.SANITIZER_MARKERS)]

    def recent_log(self, max_chars=6000):
        if not self.log_path.exists():
            return "(no log)"
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode(errors="replace")
        return text[-max_chars:] if text else "(empty log)"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@functools.lru_cache(maxsize=None)
def sanitized_build():
    """True when saasodoo-server is built with AddressSanitizer (RSS is then dominated by
    its quarantine, and leaks are reported at exit instead)."""
    data = SERVER_BIN.read_bytes()
    return b"__asan_init" in data or b"libasan.so" in data


def assert_no_growth(server, action, warmup, rounds, limit_kb, what, calls_per_round=1):
    """Runs action() warmup times, then rounds times, and checks the server process did
    not keep what those calls allocated. The warm-up also uses up memory the allocator
    has free from earlier tests, so a leak shows as growth. In a sanitizer build the
    check is LeakSanitizer's at exit: the server is stopped (and must exit 0) and started
    again."""
    for _ in range(warmup):
        action()
    time.sleep(0.3)
    before = rss_kb(server.proc.pid)
    for _ in range(rounds):
        action()
    time.sleep(0.5)
    grown = rss_kb(server.proc.pid) - before
    if sanitized_build():
        rc = server.stop()
        assert rc == 0, f"exit {rc} after {what}; log:\n{server.recent_log()}"
        server.start()
    else:
        calls = rounds * calls_per_round
        assert grown < limit_kb, (f"the server's RSS grew by {grown} KB over {calls} {what} "
                                  f"(about {grown * 1024 // calls} bytes each)")


def run_server_cli(args, env=None, timeout=20):
    """Runs saasodoo-server with args (not as a daemon); returns CompletedProcess."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
    base.update(env or {})
    return subprocess.run([str(SERVER_BIN)] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=base, timeout=timeout, cwd="/")
