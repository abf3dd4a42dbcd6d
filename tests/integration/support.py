"""Shared helpers for the integration tests: paths, PostgreSQL and server processes,
dynamic message classes for the health and reflection protocols, and small RPC helpers.

Everything here talks to real processes: a PostgreSQL cluster started on a private
socket directory and port, and the real saasodoo-server binary.
"""
import functools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SAASODOO_BUILD_DIR") or (REPO / "build")).resolve()
PYTHON_DIR = BUILD_DIR / "python"
SERVER_BIN = BUILD_DIR / "bin" / "saasodoo-server"
STANDIN_BIN = BUILD_DIR / "bin" / "saasodoo-standin"
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
    "/saasodoo.v1.TenantService/DeleteTenant",
    "/saasodoo.v1.TenantService/SuspendTenant",
    "/saasodoo.v1.TenantService/ResumeTenant",
    "/saasodoo.v1.TenantService/MigrateTenant",
    "/saasodoo.v1.OperationService/GetOperation",
    "/saasodoo.v1.OperationService/ListOperations",
    "/saasodoo.v1.OperationService/WatchOperation",
    "/saasodoo.v1.OperationService/CancelOperation",
    "/saasodoo.v1.AdminService/ListDatabaseServers",
    "/saasodoo.v1.AdminService/CreateDatabaseServer",
    "/saasodoo.v1.AdminService/UpdateDatabaseServer",
    "/saasodoo.v1.AdminService/DeleteDatabaseServer",
    "/saasodoo.v1.AdminService/CheckConsistency",
    "/saasodoo.v1.AdminService/ListUsers",
    "/saasodoo.v1.AdminService/UpdateUser",
    "/saasodoo.v1.AdminService/ListAuditEvents",
    "/saasodoo.v1.IdentityService/SignUp",
    "/saasodoo.v1.IdentityService/SignIn",
    "/saasodoo.v1.IdentityService/RefreshSession",
    "/saasodoo.v1.IdentityService/SignOut",
    "/saasodoo.v1.IdentityService/GetCurrentUser",
    "/saasodoo.v1.IdentityService/CreateApiKey",
    "/saasodoo.v1.IdentityService/ListApiKeys",
    "/saasodoo.v1.IdentityService/DeleteApiKey",
    "/saasodoo.v1.BackupService/CreateBackup",
    "/saasodoo.v1.BackupService/GetBackup",
    "/saasodoo.v1.BackupService/ListBackups",
    "/saasodoo.v1.BackupService/DeleteBackup",
    "/saasodoo.v1.BackupService/RestoreBackup",
    "/saasodoo.v1.BackupService/GetBackupPolicy",
    "/saasodoo.v1.BackupService/UpdateBackupPolicy",
    "/saasodoo.v1.BackupService/DownloadBackupPart",
}

# Every server of a run seals secrets with the same platform key, so servers that share a
# control-plane database can open each other's sealed passwords and conninfos.
RUN_SECRET_KEY = os.urandom(32).hex()

# The template every shared tenant database is cloned from, prepared once per cluster the
# way docs/provisioning.md describes (a NOLOGIN owner role owning everything in it).
TEMPLATE_DATABASE = "saasodoo_template"
TEMPLATE_OWNER = "saasodoo_template"
# table -> rows the template holds; a fresh tenant database holds exactly these.
TEMPLATE_ROWS = {"res_company": 1, "res_partner": 3, "ir_config_parameter": 2}

# Step names of each operation kind, for fault injection (docs/provisioning.md).
STEPS = {
    "CREATE_TENANT": ["place", "database", "role", "app", "health"],
    "SUSPEND_TENANT": ["app", "logins", "server"],
    "RESUME_TENANT": ["server", "logins", "app", "health"],
    "DELETE_TENANT": ["app", "database", "server"],
    "MIGRATE_TENANT": ["backup", "freeze", "target", "copy", "verify", "switch", "app", "health", "cleanup"],
}
FAULT_ENV = "SAASODOO_FAULT_INJECT"


def require_build():
    """Fails with a clear message when the build outputs the tests need are missing."""
    missing = [str(p) for p in (SERVER_BIN, DESCRIPTOR_SET, PYTHON_DIR / "saasodoo" / "v1" / "tenant_pb2.py")
               if not p.exists()]
    if missing:
        raise RuntimeError(
            "build outputs missing (run `cmake -S . -B build && cmake --build build`, or set "
            "SAASODOO_BUILD_DIR): " + ", ".join(missing))


def pid_alive(pid):
    """True if pid is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


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
        # Trusted on the socket (the control plane and the tests as superuser); passwords over
        # TCP, where tenant apps and tenant roles log in.
        self._run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                "--locale=C", "--no-sync"]))

    def start(self):
        opts = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
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

    def create_template(self, name=TEMPLATE_DATABASE, owner=TEMPLATE_OWNER, rows=TEMPLATE_ROWS):
        """Prepares the template database the shared strategy clones: a NOLOGIN owner role,
        the database owned by it, and a few tables and rows created as that role, so that
        everything in it is the owner's (the role step hands it all to the tenant)."""
        self.psql(f'CREATE ROLE "{owner}" NOLOGIN')
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"', dbname="postgres")
        self.psql(template_sql(owner, rows), dbname=name)

    def exists(self, what, name):
        """True if a database ('database') or role ('role') of that name exists."""
        table, col = {"database": ("pg_database", "datname"), "role": ("pg_roles", "rolname")}[what]
        return self.psql(f"SELECT count(*) FROM {table} WHERE {col} = '{name}'",
                         dbname="postgres") == "1"


def template_sql(owner=TEMPLATE_OWNER, rows=TEMPLATE_ROWS):
    """SQL that fills a template database as its owner role."""
    parts = [f'SET ROLE "{owner}";',
             "CREATE TABLE res_company (id serial PRIMARY KEY, name text NOT NULL);",
             "CREATE TABLE res_partner (id serial PRIMARY KEY, name text NOT NULL, email text,"
             " company_id integer REFERENCES res_company(id));",
             "CREATE TABLE ir_config_parameter (key text PRIMARY KEY, value text NOT NULL);",
             "CREATE VIEW partner_names AS SELECT name FROM res_partner;"]
    parts.append("INSERT INTO res_company (name) SELECT 'Company ' || g FROM generate_series(1, %d) g;"
                 % rows["res_company"])
    parts.append("INSERT INTO res_partner (name, email, company_id) SELECT 'Partner ' || g, "
                 "'p' || g || '@example.com', 1 FROM generate_series(1, %d) g;" % rows["res_partner"])
    parts.append("INSERT INTO ir_config_parameter (key, value) SELECT 'param.' || g, md5(g::text) "
                 "FROM generate_series(1, %d) g;" % rows["ir_config_parameter"])
    parts.append("RESET ROLE;")
    return "\n".join(parts)


def tcp_login(port, user, password, dbname, sql="SELECT current_user, current_database()",
              host="127.0.0.1"):
    """Logs in with psql over TCP with a password and runs sql. Returns (ok, output): the
    query's unaligned output, or psql's error message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGPASSWORD=password or "", PGCONNECT_TIMEOUT="5", PGAPPNAME="saasodoo-tests")
    p = subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-w", "-h", host, "-p", str(port), "-U", user, "-d", dbname, "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30,
                       env=env, cwd="/")
    return p.returncode == 0, p.stdout.strip()


class SqlHold:
    """Runs statements in an open transaction on a psql session of its own and keeps it open
    (with its locks) until release(): a way to make the server wait at a chosen point, e.g.
    holding a role's catalog row so that ALTER ROLE on it waits. Use as a context manager."""

    def __init__(self, pg, sql, dbname="postgres"):
        self.pg, self.sql, self.dbname = pg, sql, dbname
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.pg.socket_dir), "-p", str(self.pg.port), "-U", self.pg.user,
             "-d", self.dbname],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd="/")
        self.proc.stdin.write(f"BEGIN;\n{self.sql};\n\\echo held\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != "held":
            rest = line + (self.proc.communicate(timeout=10)[0] or "")
            raise RuntimeError(f"could not take the hold ({self.sql}): {rest}")
        return self

    def release(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.communicate("ROLLBACK;\n\\q\n", timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc):
        self.release()


def park_operations(pg, dbname=None):
    """From now on, operations recorded in that control-plane database wait in the queue
    (they are due at the end of time, like a retry scheduled very late) instead of being run:
    they stay PENDING and their tenants PROVISIONING. For suites that test records and the
    API rather than provisioning."""
    pg.psql("ALTER TABLE operations ALTER COLUMN next_run_at SET DEFAULT 'infinity'", dbname=dbname)


def unpark_operations(pg, dbname=None):
    """New operations are run again (the parked ones stay where they are)."""
    pg.psql("ALTER TABLE operations ALTER COLUMN next_run_at SET DEFAULT clock_timestamp()",
            dbname=dbname)


def make_cluster(root: Path, template=True):
    """A private PostgreSQL under root, started, with the control-plane database and (with
    template) the tenant template."""
    root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    cluster = Postgres(root)
    cluster.init()
    cluster.start()
    try:
        cluster.createdb(cluster.dbname)
        if template:
            cluster.create_template()
    except BaseException:
        cluster.stop(mode="immediate")
        raise
    return cluster


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

# Blocks of ports for tenant apps and dedicated clusters, one per data directory, drawn at
# random per run below the ephemeral range and away from the shipped defaults
# (runtime 20000-29999, dedicated clusters 15432-15999).
PORT_BLOCK = 100
_PORT_RANGES = [(10000, 15400), (16000, 19900), (30000, 32700)]
_port_blocks = {}


def port_block(data_dir):
    key = str(data_dir)
    if key not in _port_blocks:
        taken = set(_port_blocks.values())
        while True:
            lo, hi = random.choice(_PORT_RANGES)
            base = lo + random.randrange((hi - lo) // PORT_BLOCK) * PORT_BLOCK
            if base not in taken:
                break
        _port_blocks[key] = base
    return _port_blocks[key]


def provisioning_settings(data_dir):
    """The provisioning settings of a test server: the stand-in app, private port ranges,
    short timeouts and retries, the run's platform key."""
    base = port_block(data_dir)
    return {
        "runtime": {
            "command": f"\"{STANDIN_BIN}\"",
            "port_min": base, "port_max": base + 59,
            "health_timeout_seconds": 10,
            "restart_backoff_max_seconds": 2,
        },
        "dbstrategy": {
            "template_database": TEMPLATE_DATABASE,
            "template_owner": TEMPLATE_OWNER,
            "pg_bin_dir": f"\"{PG_BIN}\"",
            "dedicated_port_min": base + 60, "dedicated_port_max": base + 99,
        },
        "ops": {"retry_base_ms": 100},
        "security": {"secret_key": f"\"{RUN_SECRET_KEY}\""},
    }


ADMIN_EMAIL = "admin@saasodoo.test"
ADMIN_PASSWORD = "admin-password-for-tests"


def identity_settings(data_dir):
    """The bootstrap admin every test server gets, and limits loose enough for the suite
    (the rate-limit tests set their own)."""
    pw = Path(data_dir) / "admin-password"
    pw.write_text(ADMIN_PASSWORD + "\n")
    os.chmod(pw, 0o600)
    return {
        "identity": {"bootstrap_admin_email": f"\"{ADMIN_EMAIL}\"",
                     "bootstrap_admin_password_file": f"\"{pw}\"",
                     "access_token_seconds": 3600},
        "ratelimit": {"principal_rate": 100000, "principal_burst": 100000,
                      "address_rate": 100000, "address_burst": 100000},
    }


class _Auth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
            grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds 'authorization: Bearer <token>' to every call that does not carry its own."""

    def __init__(self, token_fn):
        self.token_fn = token_fn

    def _details(self, d):
        md = list(d.metadata or [])
        if not any(k == "authorization" for k, _ in md):
            md.append(("authorization", f"Bearer {self.token_fn()}"))
        return d._replace(metadata=md) if hasattr(d, "_replace") else _CallDetails(d, md)

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_stream_unary(self, cont, d, it):
        return cont(self._details(d), it)

    def intercept_stream_stream(self, cont, d, it):
        return cont(self._details(d), it)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, d, md):
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = md
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def write_config(path: Path, listen, database_url, data_dir, workers=2, pool_size=4,
                 level="info", extra="", settings=None):
    """Writes a test config. settings ({section: {key: value}}) adds to or overrides the
    provisioning settings; values are written as given (quote strings that need it)."""
    sections = provisioning_settings(data_dir)
    for sec, kv in identity_settings(data_dir).items():
        sections.setdefault(sec, {}).update(kv)
    for sec, kv in (settings or {}).items():
        sections.setdefault(sec, {}).update(kv)
    text = ("grpc:\n"
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
            f"  plans_file: \"{PLANS_FILE}\"\n")
    for sec, kv in sections.items():
        text += f"{sec}:\n" + "".join(f"  {k}: {v}\n" for k, v in kv.items())
    path.write_text(text + extra)


class Server:
    """One saasodoo-server process with its own config file, port and log."""

    def __init__(self, root: Path, pg: Postgres, name="server", dbname=None, env=None,
                 settings=None, level="info"):
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL (run as 'postgres') reaches dedicated clusters under the data directory.
        os.chmod(self.dir, 0o755)
        self.pg = pg
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config_path = self.dir / "saasodoo.yaml"
        self.log_path = self.dir / "server.log"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        os.chmod(self.data_dir, 0o755)
        self.env = dict(env or {})
        self.proc = None
        self.fault = None
        self.stopped_on_purpose = False
        self._channel = None
        self._log_offset = 0
        write_config(self.config_path, self.address, pg.url(dbname), self.data_dir,
                     level=level, settings=settings)

    # -- process control ------------------------------------------------------

    def _environ(self, extra_env=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
        env.update(self.env)
        env.update(extra_env or {})
        return env

    def start(self, timeout=SERVER_START_TIMEOUT, wait=True, extra_env=None):
        """Starts the server; extra_env adds variables for this start only (e.g. the
        fault-injection switch)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.stopped_on_purpose = False
        # the fault this run of the server is armed with, if any
        self.fault = (extra_env or {}).get(FAULT_ENV) or self.env.get(FAULT_ENV)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SERVER_BIN), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._environ(extra_env),
                cwd=str(self.dir), start_new_session=True)
        if wait:
            self.wait_serving(timeout)
        return self

    def start_with_fault(self, phase, kind, step, timeout=SERVER_START_TIMEOUT):
        """Starts the server so that it kills itself (SIGKILL) at phase ('before'/'after')
        of kind's step; wait_killed() then accepts that death."""
        assert kind in STEPS and step in STEPS[kind], (kind, step)
        return self.start(timeout=timeout, extra_env={FAULT_ENV: f"{phase}:{kind}:{step}"})

    def wait_killed(self, timeout=60):
        """Waits for the server to die by SIGKILL (fault injection) and accepts that death;
        fails if it exits otherwise or not in time."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"saasodoo-server did not kill itself within {timeout}s; "
                                 f"its log:\n{self.recent_log()}")
        self.stopped_on_purpose = True
        self.close_channel()
        assert rc == -signal.SIGKILL, f"saasodoo-server exited {rc}, not by SIGKILL:\n{self.recent_log()}"
        assert "fault injection" in self.recent_log(), self.recent_log()
        return rc

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

    def restart(self, timeout=SERVER_START_TIMEOUT, extra_env=None):
        rc = self.stop()
        assert rc == 0, f"saasodoo-server exited {rc} on SIGTERM; its log:\n{self.recent_log()}"
        self.start(timeout=timeout, extra_env=extra_env)

    # -- what the server made: tenant apps and dedicated clusters ---------------

    @property
    def apps_dir(self):
        return self.data_dir / "apps"

    @property
    def filestore_dir(self):
        return self.data_dir / "filestore"

    @property
    def clusters_dir(self):
        return self.data_dir / "clusters"

    def app_pid(self, tid):
        """The pid of the tenant's app as the runtime recorded it, if that process is alive."""
        try:
            pid = int((self.apps_dir / tid / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def app_port(self, tid):
        try:
            return int((self.apps_dir / tid / "port").read_text().strip())
        except (OSError, ValueError):
            return None

    def app_env(self, tid):
        """The environment the tenant's app was started with (/proc/PID/environ)."""
        pid = self.app_pid(tid)
        assert pid, f"tenant {tid} has no running app"
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)

    def app_argv(self, tid):
        pid = self.app_pid(tid)
        assert pid, f"tenant {tid} has no running app"
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]

    def db_password(self, tid):
        """The tenant role's password, as its app received it (PGPASSWORD)."""
        return self.app_env(tid)["PGPASSWORD"]

    def standin(self, tid, path="/standin/info", timeout=5):
        """GET path on the tenant's app; returns (HTTP status, parsed JSON body), or
        (None, {"error": ...}) when nothing answers on its port."""
        port = self.app_port(tid)
        assert port, f"tenant {tid} has no recorded app port"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except OSError as e:
            return None, {"error": str(e)}

    def cluster_running(self, tid):
        """True if the tenant's dedicated cluster has a live postmaster."""
        pidfile = self.clusters_dir / tid / "data" / "postmaster.pid"
        try:
            return pid_alive(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return False

    def cluster_psql(self, tid, sql, dbname="postgres"):
        """SQL as the superuser of the tenant's dedicated cluster, over its socket (only
        root and postgres may open that folder); returns the unaligned output."""
        port = (self.clusters_dir / tid / "port").read_text().strip()
        p = subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", str(self.clusters_dir / tid / "run"), "-p", port, "-U", "postgres",
                            "-d", dbname, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30, cwd="/")
        assert p.returncode == 0, p.stdout
        return p.stdout.strip()

    def cleanup_tenants(self):
        """Stops what the server left running outside itself: tenant apps (they outlive the
        server by design) and dedicated clusters."""
        if self.apps_dir.is_dir():
            for d in self.apps_dir.iterdir():
                pid = self.app_pid(d.name)
                if pid:
                    for target in (-pid, pid):
                        try:
                            os.kill(target, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
        if self.clusters_dir.is_dir():
            for d in self.clusters_dir.iterdir():
                if (d / "data" / "postmaster.pid").exists():
                    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(d / "data"),
                                                 "-m", "immediate", "-w", "-t", "30", "stop"]),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=60, cwd="/")

    # -- clients --------------------------------------------------------------

    def channel(self):
        """A channel whose calls carry the bootstrap admin's token."""
        if self._channel is None:
            self._channel = self.new_channel()
        return self._channel

    def raw_channel(self, options=None):
        """A channel without credentials."""
        return grpc.insecure_channel(self.address, options=options or [])

    def new_channel(self, options=None, token=None):
        """A new channel whose calls carry token (default: the admin's)."""
        fn = (lambda: token) if token else self.admin_token
        return grpc.intercept_channel(self.raw_channel(options), _Auth(fn))

    def close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def stub(self, stub_class, token=None):
        """A stub calling as the admin, or with token."""
        if token:
            return stub_class(self.new_channel(token=token))
        return stub_class(self.channel())

    def admin_token(self):
        if getattr(self, "_admin_token", None) is None:
            self._admin_token = self.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).access_token
        return self._admin_token

    def _identity_stub(self):
        from saasodoo.v1 import identity_pb2_grpc
        if getattr(self, "_raw", None) is None:
            self._raw = self.raw_channel()
        return identity_pb2_grpc.IdentityServiceStub(self._raw)

    def sign_in(self, email, password):
        """A Session for email/password (SignIn)."""
        from saasodoo.v1 import identity_pb2
        return self._identity_stub().SignIn(
            identity_pb2.SignInRequest(email=email, password=password), timeout=30)

    def sign_up(self, email=None, password="customer-password-1", display_name=""):
        """Signs a new customer up; returns the Session (session.user.name is users/{id})."""
        from saasodoo.v1 import identity_pb2
        email = email or f"{unique_id('c')}@customer.test"
        return self._identity_stub().SignUp(identity_pb2.SignUpRequest(
            email=email, password=password, display_name=display_name), timeout=30)

    def customer_stub(self, stub_class, email=None):
        """A stub calling as a fresh customer; the customer's Session is stub.session."""
        session = self.sign_up(email)
        stub = stub_class(self.new_channel(token=session.access_token))
        stub.session = session
        return stub

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


# ---------------------------------------------------------------------------
# Lifecycle helpers: tenants, operations, database servers
# ---------------------------------------------------------------------------

def _pb():
    from saasodoo.v1 import (admin_pb2, admin_pb2_grpc, operation_pb2, operation_pb2_grpc,
                             tenant_pb2, tenant_pb2_grpc)
    return admin_pb2, admin_pb2_grpc, operation_pb2, operation_pb2_grpc, tenant_pb2, tenant_pb2_grpc


def admin_pb2():
    return _pb()[0]


def tenant_stub(server):
    return _pb()[5].TenantServiceStub(server.channel())


def operation_stub(server):
    return _pb()[3].OperationServiceStub(server.channel())


def admin_stub(server):
    return _pb()[1].AdminServiceStub(server.channel())


def server_id(tenant):
    """The id of the database server a tenant is on, from its resource name
    (databaseServers/<id>); '' when it is on none."""
    name = tenant.database_server
    assert name == "" or name.startswith("databaseServers/"), name
    return name.split("/", 1)[1] if name else ""


def get_tenant(server, tid):
    tenant_pb2 = _pb()[4]
    return tenant_stub(server).GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)


def get_operation(server, name):
    operation_pb2 = _pb()[2]
    return operation_stub(server).GetOperation(operation_pb2.GetOperationRequest(name=name), timeout=10)


def wait_operation(server, name, timeout=90):
    """Polls the operation until it is done; returns it."""
    return wait_for(lambda: (lambda op: op if op.done else None)(get_operation(server, name)),
                    timeout, interval=0.05, what=f"operation {name} to finish")


def watch_operation(server, name, timeout=90):
    """Follows the operation with WatchOperation until the stream ends; returns every message."""
    operation_pb2 = _pb()[2]
    stream = operation_stub(server).WatchOperation(
        operation_pb2.WatchOperationRequest(name=name), timeout=timeout)
    return list(stream)


def create_tenant(server, plan="plans/basic", tid=None, prefix="t", wait=True, expect_ok=True,
                  timeout=90):
    """Creates a tenant; with wait, waits for the operation to finish and (expect_ok) checks
    it succeeded. Returns (tenant id, operation)."""
    tenant_pb2 = _pb()[4]
    tid = tid or unique_id(prefix)
    op = tenant_stub(server).CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan=plan, display_name=tid)), timeout=10)
    if wait:
        op = wait_operation(server, op.name, timeout)
        if expect_ok:
            assert_operation_succeeded(server, op)
    return tid, op


def assert_operation_succeeded(server, op):
    operation_pb2 = _pb()[2]
    assert op.done and op.state == operation_pb2.Operation.SUCCEEDED, (
        f"operation {op.name} ({operation_pb2.Operation.Kind.Name(op.kind)}) ended "
        f"{operation_pb2.Operation.State.Name(op.state)}: {op.error.message!r}; server log:\n"
        f"{server.recent_log(3000)}")


def lifecycle(server, verb, tid, wait=True, timeout=90, **fields):
    """Calls SuspendTenant / ResumeTenant / DeleteTenant / MigrateTenant ('suspend', ...) on
    tenants/<tid>; with wait, waits for the operation and checks it succeeded."""
    tenant_pb2 = _pb()[4]
    method, req = {
        "suspend": ("SuspendTenant", tenant_pb2.SuspendTenantRequest),
        "resume": ("ResumeTenant", tenant_pb2.ResumeTenantRequest),
        "delete": ("DeleteTenant", tenant_pb2.DeleteTenantRequest),
        "migrate": ("MigrateTenant", tenant_pb2.MigrateTenantRequest),
    }[verb]
    op = getattr(tenant_stub(server), method)(req(name=f"tenants/{tid}", **fields), timeout=10)
    if wait:
        op = wait_operation(server, op.name, timeout)
        assert_operation_succeeded(server, op)
    return op


def check_consistency(server, repair=False):
    admin_pb2 = _pb()[0]
    return admin_stub(server).CheckConsistency(admin_pb2.CheckConsistencyRequest(repair=repair),
                                               timeout=60)


def findings(report):
    return [(f.kind, f.resource, f.detail) for f in report.findings]


def assert_consistent(server):
    """CheckConsistency finds nothing: no orphans, nothing missing."""
    rep = check_consistency(server)
    assert not rep.findings, f"consistency findings: {findings(rep)}"
    return rep


def list_servers(server):
    admin_pb2 = _pb()[0]
    resp = admin_stub(server).ListDatabaseServers(
        admin_pb2.ListDatabaseServersRequest(page_size=1000), timeout=10)
    return {s.name.split("/", 1)[1]: s for s in resp.database_servers}


def set_accepting(server, sid, accepting):
    from google.protobuf import field_mask_pb2
    admin_pb2 = _pb()[0]
    return admin_stub(server).UpdateDatabaseServer(admin_pb2.UpdateDatabaseServerRequest(
        database_server=admin_pb2.DatabaseServer(name=f"databaseServers/{sid}",
                                                 accepting_tenants=accepting),
        update_mask=field_mask_pb2.FieldMask(paths=["accepting_tenants"])), timeout=10)


def table_counts(pg_port, user, password, dbname, tables):
    """{table: row count} read over TCP as user."""
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    ok, out = tcp_login(pg_port, user, password, dbname, sql)
    assert ok, out
    return {ln.split("|")[0]: int(ln.split("|")[1]) for ln in out.splitlines() if ln}


def field_mask(paths):
    from google.protobuf import field_mask_pb2
    return field_mask_pb2.FieldMask(paths=list(paths))
