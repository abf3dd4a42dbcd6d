"""The saasodoo CLI (build/bin/saasodoo) against a real server: tenants create, get, list,
update and migrate --wait; servers list, create, update, drain and delete; admin fsck;
login, logout, whoami and the stored session (0600 file, refresh of an expired access
token); API keys; backups; users and the audit log; TLS with --ca-file. Every call is
checked for its exit code (0, 1, 2 or 10 + gRPC code) and its output.

Calls run as the bootstrap admin (SAASODOO_TOKEN) unless a test says otherwise, each with
an empty XDG_CONFIG_HOME of its own so that no stored session leaks in."""
import atexit
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid

import grpc
import pytest

import support
from support import unique_id

CLI = support.BUILD_DIR / "bin" / "saasodoo"
TEMPLATE = "saasodoo_template"

OK, FAILURE, USAGE = 0, 1, 2
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS = 13, 15, 16
FAILED_PRECONDITION, ABORTED, UNAVAILABLE = 19, 20, 24
PERMISSION_DENIED, UNAUTHENTICATED = 17, 26
CUSTOMER_PASSWORD = "customer-password-1"
ADMIN = object()  # cli(token=ADMIN): the server's bootstrap admin

SUMMARY = re.compile(r"^(\d+) findings \((\d+) repaired\), (\d+) tenants and (\d+) servers checked$")


_EMPTY_CONFIG = tempfile.mkdtemp(prefix="saasodoo-cli-config-")
atexit.register(shutil.rmtree, _EMPTY_CONFIG, True)


def cli(server, *args, stdin="", timeout=120, token=ADMIN, config=None, env_extra=None):
    """Runs the CLI against `server` (None: no address given); returns CompletedProcess.
    token: ADMIN (the server's bootstrap admin; nothing when server is None), a string for
    SAASODOO_TOKEN, or None for none. config: XDG_CONFIG_HOME (default: an empty one)."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: cmake --build build --target saasodoo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
    env["XDG_CONFIG_HOME"] = str(config or _EMPTY_CONFIG)
    if server is not None:
        env["SAASODOO_SERVER"] = server.address
    if token is ADMIN:
        token = server.admin_token() if server is not None else None
    if token is not None:
        env["SAASODOO_TOKEN"] = token
    env.update(env_extra or {})
    return subprocess.run([str(CLI)] + [str(a) for a in args], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=timeout, cwd="/")


def ok(p):
    assert p.returncode == OK, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def fails(p, code, *needles):
    """Asserts exit `code`, nothing on stdout, and every needle in stderr."""
    assert p.returncode == code, f"expected exit {code}, got {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout == "", p.stdout
    for n in needles:
        assert n in p.stderr, f"stderr should hold {n!r}: {p.stderr!r}"
    return p


def describe(text):
    """`key: value` lines of a single resource in table mode, as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def table(text):
    """An aligned table: (headers, rows as dicts). Cells hold no spaces here."""
    lines = text.splitlines()
    headers = lines[0].split()
    return headers, [dict(zip(headers, ln.split())) for ln in lines[1:]]


def watch_lines(text):
    """`TIME NAME STATE PROGRESS% STEP` lines printed by --wait."""
    return [ln.split() for ln in text.splitlines() if ln.startswith("20") and "operations/" in ln]


def ensure_template(pg):
    """The template database shared tenants are cloned from (docs/provisioning.md)."""
    if pg.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{TEMPLATE}'") != "1":
        pg.psql(f'CREATE ROLE "{TEMPLATE}" NOLOGIN')
    if pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{TEMPLATE}'") != "1":
        pg.psql(f'CREATE DATABASE "{TEMPLATE}" OWNER "{TEMPLATE}"')


@pytest.fixture(scope="module")
def tenant(session_server, pg):
    """A tenant created with `tenants create --wait`: ACTIVE on a shared server."""
    ensure_template(pg)
    tid = unique_id("cli")
    p = ok(cli(session_server, "tenants", "create", tid, "--plan", "basic",
               "--display-name", "CLI tenant", "--label", "team=cli", "--wait"))
    steps = watch_lines(p.stdout)
    assert steps and steps[-1][1].startswith("operations/"), p.stdout
    assert steps[-1][2] == "SUCCEEDED" and steps[-1][3] == "100%", p.stdout
    assert f"result: tenants/{tid}" in p.stdout
    return tid


@pytest.fixture(scope="module")
def second_pg(workdir):
    """A PostgreSQL cluster of its own to register as a second shared server."""
    cluster = support.Postgres(workdir / f"cli-second-{uuid.uuid4().hex[:6]}")
    cluster.root.parent.mkdir(mode=0o755, exist_ok=True)
    os.chmod(cluster.root.parent, 0o755)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop(mode="immediate")


# --- help and usage ----------------------------------------------------------------------

def test_help_at_every_level():
    top = ok(cli(None, "--help")).stdout
    for group in ("login", "logout", "whoami", "tenants", "operations", "backups", "apikeys",
                  "servers", "users", "audit", "admin"):
        assert f"\n  {group} " in top, top
    assert "'admin fsck' findings" in top
    assert "--ca-file FILE" in top and "SAASODOO_TLS_CA" in top and "SAASODOO_TOKEN" in top
    assert "--token" not in top  # a secret on the command line would show in ps
    backups = ok(cli(None, "backups", "--help")).stdout
    for verb in ("create", "list", "get", "restore", "delete", "policy"):
        assert f"\n  {verb} " in backups, backups
    for verb in ("create", "list", "delete"):
        assert f"\n  {verb} " in ok(cli(None, "apikeys", "--help")).stdout
    for verb in ("list", "update"):
        assert f"\n  {verb} " in ok(cli(None, "users", "--help")).stdout
    assert "\n  list " in ok(cli(None, "audit", "--help")).stdout
    login = ok(cli(None, "login", "--help")).stdout
    assert "--email EMAIL" in login and "without echo" in login
    restore = ok(cli(None, "backups", "restore", "--help")).stdout
    for opt in ("--to NEW_TENANT", "--yes", "--wait"):
        assert opt in restore, restore
    policy = ok(cli(None, "backups", "policy", "--help")).stdout
    for opt in ("--schedule WHEN", "--time HH:MM", "--keep-daily N", "--keep-weekly N",
                "--keep-monthly N"):
        assert opt in policy, policy
    update = ok(cli(None, "users", "update", "--help")).stdout
    for opt in ("--role ROLE", "--disable", "--enable"):
        assert opt in update, update
    servers = ok(cli(None, "servers", "--help")).stdout
    for verb in ("list", "create", "update", "drain", "delete"):
        assert f"\n  {verb} " in servers, servers
    assert "fsck" in ok(cli(None, "admin", "--help")).stdout
    fsck = ok(cli(None, "admin", "fsck", "--help")).stdout
    assert "--repair" in fsck and "exit 1 while findings remain" in fsck
    migrate = ok(cli(None, "tenants", "migrate", "--help")).stdout
    assert "--to STRATEGY" in migrate and "--server SERVER_ID" in migrate
    assert "give the global one before the group or as -s" in migrate
    create = ok(cli(None, "servers", "create", "--help")).stdout
    for opt in ("--host HOST", "--port PORT", "--admin-conninfo CONNINFO", "--capacity N",
                "--display-name NAME"):
        assert opt in create, create


def test_usage_errors_exit_2():
    fails(cli(None, "servers"), USAGE)
    fails(cli(None, "servers", "frob"), USAGE, "unknown command 'servers frob'")
    fails(cli(None, "admin", "fsck", "extra"), USAGE, "unexpected argument 'extra'")
    fails(cli(None, "tenants", "migrate", "acme"), USAGE, "needs --to shared or --to dedicated")
    fails(cli(None, "tenants", "migrate", "acme", "--to", "cloud"), USAGE, "--to must be")
    fails(cli(None, "tenants", "migrate", "acme", "--to", "dedicated", "--server", "local"),
          USAGE, "--server can only be given with --to shared")
    fails(cli(None, "servers", "create", "db-x", "--host", "h", "--port", "5432"), USAGE,
          "needs --admin-conninfo")
    fails(cli(None, "servers", "create", "db-x", "--host", "h", "--port", "0",
              "--admin-conninfo", "x"), USAGE, "--port must be")
    fails(cli(None, "servers", "update", "db-x"), USAGE, "nothing to update")
    fails(cli(None, "servers", "update", "db-x", "--accepting", "maybe"), USAGE,
          "--accepting must be 'true' or 'false'")
    fails(cli(None, "servers", "drain"), USAGE, "needs ID")
    fails(cli(None, "servers", "delete", "a/b"), USAGE, "not a valid name")
    fails(cli(None, "--token", "x", "whoami"), USAGE, "unknown option '--token'")
    fails(cli(None, "whoami", "extra"), USAGE, "unexpected argument 'extra' for 'whoami'")
    fails(cli(None, "login"), USAGE, "give --email when the password comes from standard input")
    fails(cli(None, "login", "--email", "a@b.test", stdin=""), USAGE, "standard input is empty")
    fails(cli(None, "backups", "get", "acme"), USAGE, "expected TENANT/BACKUP")
    fails(cli(None, "backups", "get", "tenants/acme/b1"), USAGE, "expected TENANT/BACKUP")
    fails(cli(None, "backups", "restore", "acme/b1"), USAGE, "confirm with --yes")
    fails(cli(None, "backups", "policy", "acme", "--schedule", "weekly"), USAGE,
          "--schedule must be 'hourly', 'daily' or 'disabled'")
    fails(cli(None, "backups", "policy", "acme", "--time", "24:00"), USAGE, "HH:MM")
    fails(cli(None, "backups", "policy", "acme", "--keep-daily", "-1"), USAGE, "--keep-daily must")
    fails(cli(None, "backups", "policy", "acme", "--etag", "e"), USAGE, "only goes with a change")
    fails(cli(None, "users", "update", "u1"), USAGE, "nothing to update")
    fails(cli(None, "users", "update", "u1", "--role", "boss"), USAGE, "--role must be")
    fails(cli(None, "users", "update", "u1", "--disable", "--enable"), USAGE, "cannot be combined")
    fails(cli(None, "apikeys", "delete", "users/u1/keys/k"), USAGE, "not a valid key")
    fails(cli(None, "--ca-file", "/nonexistent/ca.pem", "-s", "127.0.0.1:1", "whoami"), FAILURE,
          "cannot read the CA file /nonexistent/ca.pem")
    fails(cli(None, "-s", "127.0.0.1:1", "whoami", env_extra={"SAASODOO_TLS_CA": "/etc/hostname"}),
          FAILURE, "holds no PEM certificate")


def test_unreachable_server_exits_24():
    port = support.free_port()
    for args in (["servers", "list"], ["admin", "fsck"],
                 ["tenants", "migrate", "acme", "--to", "dedicated"]):
        p = cli(None, "-s", f"127.0.0.1:{port}", *args)
        fails(p, UNAVAILABLE, "saasodoo: UNAVAILABLE: ")


# --- tenants -----------------------------------------------------------------------------

def test_tenants_get_list_update(server, tenant):
    t = describe(ok(cli(server, "tenants", "get", tenant)).stdout)
    assert t["name"] == f"tenants/{tenant}"
    assert t["state"] == "ACTIVE" and t["database_strategy"] == "SHARED"
    assert t["display_name"] == "CLI tenant" and t["labels"] == "team=cli"
    j = json.loads(ok(cli(server, "-o", "json", "tenants", "get", f"tenants/{tenant}")).stdout)
    assert j["name"] == f"tenants/{tenant}" and j["state"] == "ACTIVE"

    headers, rows = table(ok(cli(server, "tenants", "list", "--all")).stdout)
    assert headers == ["NAME", "STATE", "PLAN", "OWNER", "CREATED"]
    assert {"NAME": f"tenants/{tenant}", "STATE": "ACTIVE"}.items() <= \
        next(r for r in rows if r["NAME"] == f"tenants/{tenant}").items()
    listed = json.loads(ok(cli(server, "-o", "json", "tenants", "list", "--all",
                               "--filter", "state = ACTIVE")).stdout)
    assert f"tenants/{tenant}" in [x["name"] for x in listed["tenants"]]

    u = describe(ok(cli(server, "tenants", "update", tenant, "--display-name", "CLI renamed",
                        "--label", "team=ops", "--etag", j["etag"])).stdout)
    assert u["display_name"] == "CLI renamed" and u["labels"] == "team=ops"
    assert u["etag"] != j["etag"]
    fails(cli(server, "tenants", "update", tenant, "--display-name", "again", "--etag", j["etag"]),
          ABORTED, "saasodoo: ABORTED: ")
    fails(cli(server, "tenants", "get", unique_id("nope")), NOT_FOUND, "saasodoo: NOT_FOUND: ")
    fails(cli(server, "tenants", "create", tenant, "--plan", "basic"), ALREADY_EXISTS,
          "saasodoo: ALREADY_EXISTS: ")


def test_tenants_migrate_wait(server, tenant):
    fails(cli(server, "tenants", "migrate", unique_id("nope"), "--to", "dedicated"), NOT_FOUND,
          "saasodoo: NOT_FOUND: ")
    fails(cli(server, "tenants", "migrate", tenant, "--to", "shared", "--server", "local"),
          FAILED_PRECONDITION, "already on database server 'local'")
    fails(cli(server, "tenants", "migrate", tenant, "--to", "shared", "--server",
              unique_id("nosuch")), INVALID_ARGUMENT, "does not exist")

    # To a dedicated cluster, following the operation in table mode.
    p = ok(cli(server, "tenants", "migrate", tenant, "--to", "dedicated", "--wait"))
    steps = watch_lines(p.stdout)
    assert steps[-1][2] == "SUCCEEDED" and steps[-1][3] == "100%", p.stdout
    assert f"result: tenants/{tenant}" in p.stdout
    t = describe(ok(cli(server, "tenants", "get", tenant)).stdout)
    assert t["state"] == "ACTIVE" and t["database_strategy"] == "DEDICATED", t
    assert t["database_server"].endswith(f"dedicated-{tenant}"), t
    _, rows = table(ok(cli(server, "servers", "list", "--filter", "kind = DEDICATED")).stdout)
    row = next(r for r in rows if r["NAME"] == f"databaseServers/dedicated-{tenant}")
    assert row == {"NAME": f"databaseServers/dedicated-{tenant}", "KIND": "DEDICATED",
                   "HOST:PORT": row["HOST:PORT"], "LOAD": "1/1", "ACCEPTING": "no",
                   "TENANT": f"tenants/{tenant}"}
    # The global address given before the group; the command's --server is the target.
    fails(cli(None, "--server", server.address, "tenants", "migrate", tenant, "--to",
              "dedicated", token=server.admin_token()), FAILED_PRECONDITION,
          "saasodoo: FAILED_PRECONDITION: ")

    # Back to the shared server 'local', in json mode: one JSON object per update.
    p = ok(cli(None, "-o", "json", "tenants", "migrate", tenant, "--to", "shared",
               "--server", "databaseServers/local", "-s", server.address, "--wait",
               token=server.admin_token()))
    updates = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert updates[-1]["done"] is True and updates[-1]["state"] == "SUCCEEDED", updates[-1]
    assert updates[-1]["kind"] == "MIGRATE_TENANT" and updates[-1]["target"] == f"tenants/{tenant}"
    t = describe(ok(cli(server, "tenants", "get", tenant)).stdout)
    assert t["state"] == "ACTIVE" and t["database_strategy"] == "SHARED", t
    _, rows = table(ok(cli(server, "servers", "list", "--all")).stdout)
    assert f"databaseServers/dedicated-{tenant}" not in [r["NAME"] for r in rows]


# --- servers -----------------------------------------------------------------------------

def test_servers_list_create_update_drain_delete(server, tenant, second_pg):
    headers, rows = table(ok(cli(server, "servers", "list")).stdout)
    assert headers == ["NAME", "KIND", "HOST:PORT", "LOAD", "ACCEPTING", "TENANT"]
    local = next(r for r in rows if r["NAME"] == "databaseServers/local")
    assert local["KIND"] == "SHARED" and local["ACCEPTING"] == "yes" and local["TENANT"] == "-"
    count, capacity = (int(x) for x in local["LOAD"].split("/"))
    assert count >= 1 and capacity >= count

    sid = unique_id("db")
    conninfo = second_pg.url("postgres")
    try:
        # The conninfo on standard input keeps a password off the command line.
        p = ok(cli(server, "servers", "create", sid, "--host", "127.0.0.1", "--port",
                   second_pg.port, "--admin-conninfo", "-", "--capacity", "5",
                   "--display-name", "Second", stdin=conninfo + "\n"))
        s = describe(p.stdout)
        assert s["name"] == f"databaseServers/{sid}" and s["kind"] == "SHARED"
        assert s["capacity"] == "5" and s["accepting_tenants"] == "true"
        assert s["admin_conninfo"] == "-" and s["display_name"] == "Second"
        fails(cli(server, "servers", "create", sid, "--host", "127.0.0.1", "--port",
                  second_pg.port, "--admin-conninfo", conninfo), ALREADY_EXISTS)
        fails(cli(server, "servers", "create", unique_id("db"), "--host", "127.0.0.1", "--port",
                  "5432", "--admin-conninfo", f"host=127.0.0.1 port={support.free_port()} "
                  "user=nobody connect_timeout=5"), FAILED_PRECONDITION, "check admin_conninfo")

        _, rows = table(ok(cli(server, "servers", "list", "--filter", "kind = SHARED",
                               "--all")).stdout)
        assert {"NAME": f"databaseServers/{sid}", "KIND": "SHARED",
                "HOST:PORT": f"127.0.0.1:{second_pg.port}", "LOAD": "0/5", "ACCEPTING": "yes",
                "TENANT": "-"} in rows
        listed = json.loads(ok(cli(server, "-o", "json", "servers", "list", "--page-size", "1",
                                   "--all")).stdout)
        names = [x["name"] for x in listed["database_servers"]]
        assert f"databaseServers/{sid}" in names and "databaseServers/local" in names
        assert "admin_conninfo" not in json.dumps(listed)
        p = ok(cli(server, "servers", "list", "--page-size", "1"))
        assert len(table(p.stdout)[1]) == 1 and "--page-token " in p.stderr

        u = describe(ok(cli(server, "servers", "update", sid, "--capacity", "7",
                            "--display-name", "Second box", "--etag", s["etag"])).stdout)
        assert u["capacity"] == "7" and u["display_name"] == "Second box"
        assert u["accepting_tenants"] == "true"
        fails(cli(server, "servers", "update", sid, "--capacity", "8", "--etag", s["etag"]),
              ABORTED, "stale")
        fails(cli(server, "servers", "update", unique_id("db"), "--capacity", "8"), NOT_FOUND)

        d = json.loads(ok(cli(server, "-o", "json", "servers", "drain",
                              f"databaseServers/{sid}")).stdout)
        assert d["name"] == f"databaseServers/{sid}" and "accepting_tenants" not in d
        assert d["capacity"] == 7
        _, rows = table(ok(cli(server, "servers", "list", "--filter",
                               "accepting_tenants = false AND kind = SHARED")).stdout)
        assert [r["NAME"] for r in rows] == [f"databaseServers/{sid}"]
        fails(cli(server, "servers", "list", "--filter", "kind = CLOUD"), INVALID_ARGUMENT)
        u = describe(ok(cli(server, "servers", "update", sid, "--accepting", "true")).stdout)
        assert u["accepting_tenants"] == "true"
        ok(cli(server, "servers", "drain", sid))
        fails(cli(server, "servers", "drain", unique_id("db")), NOT_FOUND)

        fails(cli(server, "servers", "delete", "local"), FAILED_PRECONDITION, "still holds tenants")
        p = ok(cli(server, "servers", "delete", sid))
        assert p.stdout == f"deleted databaseServers/{sid}\n"
        sid = None
        fails(cli(server, "servers", "delete", f"databaseServers/{unique_id('db')}"), NOT_FOUND)
    finally:
        if sid is not None:
            cli(server, "servers", "drain", sid)
            cli(server, "servers", "delete", sid)
    _, rows = table(ok(cli(server, "servers", "list", "--all")).stdout)
    assert "databaseServers/local" in [r["NAME"] for r in rows]


# --- admin fsck --------------------------------------------------------------------------

def fsck(server, *args):
    """Runs `admin fsck`; returns (exit code, finding rows, summary numbers), checking that
    the summary counts the rows and that the exit code follows the unrepaired ones."""
    p = cli(server, "admin", "fsck", *args)
    assert p.returncode in (OK, FAILURE), f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    lines = p.stdout.splitlines()
    m = SUMMARY.match(lines[-1])
    assert m, p.stdout
    findings, repaired, tenants, servers = (int(x) for x in m.groups())
    rows = []
    if findings:
        assert lines[0].split() == ["KIND", "RESOURCE", "DETAIL", "REPAIRED"], p.stdout
        for ln in lines[1:-1]:
            kind, resource, rest = ln.split(None, 2)
            detail, flag = rest.rsplit(None, 1)
            rows.append({"kind": kind, "resource": resource, "detail": detail, "repaired": flag})
    else:
        assert len(lines) == 1, p.stdout
    assert len(rows) == findings and sum(r["repaired"] == "yes" for r in rows) == repaired
    assert tenants >= 1 and servers >= 1
    unrepaired = findings - repaired
    assert p.returncode == (FAILURE if unrepaired else OK), (p.returncode, p.stdout)
    return p, rows


def test_admin_fsck_reports_and_repairs(server, pg, tenant):
    # The check only judges names of tenants the platform has known: leave a database behind
    # under the id of a tenant that was deleted.
    orphan = unique_id("orphan")
    ok(cli(server, "tenants", "create", orphan, "--plan", "plans/basic", "--wait"))
    ok(cli(server, "tenants", "delete", orphan, "--wait"))
    pg.psql(f'CREATE DATABASE "{orphan}"')
    detail = f"database '{orphan}' belongs to no live tenant"

    p, rows = fsck(server)
    assert p.returncode == FAILURE
    assert {"kind": "ORPHAN_DATABASE", "resource": "databaseServers/local", "detail": detail,
            "repaired": "no"} in rows
    assert "admin fsck --repair" in p.stderr

    j = cli(server, "-o", "json", "admin", "fsck")
    assert j.returncode == FAILURE, j.stderr
    report = json.loads(j.stdout)
    assert {"kind": "ORPHAN_DATABASE", "resource": "databaseServers/local",
            "detail": detail} in report["findings"]
    assert report["tenants_checked"] >= 1 and report["servers_checked"] >= 1

    p, rows = fsck(server, "--repair")
    assert {"kind": "ORPHAN_DATABASE", "resource": "databaseServers/local", "detail": detail,
            "repaired": "yes"} in rows
    assert pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{orphan}'") == "0"

    p, rows = fsck(server)
    assert detail not in p.stdout
    if not rows:
        assert p.returncode == OK and p.stdout.startswith("0 findings (0 repaired), ")


# --- login, logout, whoami and the stored session -----------------------------------------

def customer(server):
    """A fresh customer: (email, Session)."""
    email = f"{unique_id('cli')}@customer.test"
    return email, server.sign_up(email=email, password=CUSTOMER_PASSWORD)


def creds_file(config):
    return config / "saasodoo" / "credentials"


def read_creds(config):
    out = {}
    for line in creds_file(config).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def write_creds(config, values):
    text = "".join(f"{k} = {v}\n" for k, v in values.items())
    creds_file(config).write_text(text)
    os.chmod(creds_file(config), 0o600)


def login(server, config, email, password=CUSTOMER_PASSWORD):
    return cli(server, "login", "--email", email, stdin=password + "\n", token=None,
               config=config)


def refresh_error(server, refresh_token):
    from saasodoo.v1 import identity_pb2
    return support.call_error(server._identity_stub().RefreshSession,
                              identity_pb2.RefreshSessionRequest(refresh_token=refresh_token),
                              timeout=10)


def test_login_whoami_logout(server, tmp_path):
    email, _ = customer(server)
    config = tmp_path / "config"

    # A wrong password: UNAUTHENTICATED, and nothing is stored.
    fails(login(server, config, email, "not-the-password"), UNAUTHENTICATED,
          "saasodoo: UNAUTHENTICATED: ")
    assert not creds_file(config).exists()

    p = ok(login(server, config, email))
    assert p.stdout.startswith(f"Signed in to {server.address} as {email} (users/"), p.stdout
    assert "CUSTOMER" in p.stdout and "password" not in p.stdout.lower()
    f = creds_file(config)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    stored = read_creds(config)
    assert stored["server"] == server.address and stored["email"] == email
    assert stored["user"].startswith("users/") and stored["access_token"]
    assert stored["refresh_token"] and int(stored["access_token_expires"]) > time.time()
    assert CUSTOMER_PASSWORD not in f.read_text()
    assert [x.name for x in f.parent.iterdir() if x.name.startswith(".credentials")] == []

    me = describe(ok(cli(server, "whoami", token=None, config=config)).stdout)
    assert me["email"] == email and me["role"] == "CUSTOMER" and me["name"] == stored["user"]
    # Without an address, the calls go to the server the session was made with.
    me = json.loads(ok(cli(None, "-o", "json", "whoami", config=config)).stdout)
    assert me["email"] == email and me["name"] == stored["user"]
    # SAASODOO_TOKEN comes first: the admin's token wins over the stored session ...
    assert describe(ok(cli(server, "whoami", config=config)).stdout)["role"] == "ADMIN"
    # ... and a bad one is reported as such, not silently replaced by the session.
    fails(cli(server, "whoami", token="not-a-token", config=config), UNAUTHENTICATED,
          "SAASODOO_TOKEN")

    p = ok(cli(server, "logout", token=None, config=config))
    assert p.stdout == f"Signed out of {server.address}.\n"
    assert not f.exists()
    err = refresh_error(server, stored["refresh_token"])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    fails(cli(server, "whoami", token=None, config=config), UNAUTHENTICATED,
          "saasodoo: UNAUTHENTICATED: ", "saasodoo login")
    p = ok(cli(server, "logout", token=None, config=config))
    assert p.stdout == "" and "Not signed in" in p.stderr


def test_expired_access_token_is_refreshed(server, tmp_path):
    email, _ = customer(server)
    config = tmp_path / "config"
    ok(login(server, config, email))
    before = read_creds(config)

    # An access token that expired an hour ago, and is garbage besides: only a refresh can
    # make the next call work.
    expired = dict(before, access_token="expired-and-garbled",
                   access_token_expires=str(int(time.time()) - 3600))
    write_creds(config, expired)
    me = describe(ok(cli(server, "whoami", token=None, config=config)).stdout)
    assert me["email"] == email
    after = read_creds(config)
    assert after["access_token"] not in ("expired-and-garbled", before["access_token"])
    assert int(after["access_token_expires"]) > time.time()
    assert after["refresh_token"] != before["refresh_token"]  # the refresh token turns over
    assert after["email"] == email and after["user"] == before["user"]
    assert stat.S_IMODE(creds_file(config).stat().st_mode) == 0o600
    # The refreshed session keeps working without another refresh.
    ok(cli(server, "whoami", token=None, config=config))
    assert read_creds(config)["access_token"] == after["access_token"]
    # The old refresh token was used up (presenting it again may end the whole session).
    err = refresh_error(server, before["refresh_token"])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err

    # An expired access token whose refresh token the server no longer honours.
    write_creds(config, dict(after, access_token_expires="1", refresh_token="no-such-refresh"))
    fails(cli(server, "whoami", token=None, config=config), UNAUTHENTICATED,
          "saasodoo: UNAUTHENTICATED: ", "saasodoo login")
    # A refresh token past its expiry is not even tried.
    write_creds(config, dict(after, access_token_expires="1", refresh_token_expires="2"))
    fails(cli(server, "whoami", token=None, config=config), UNAUTHENTICATED, "has expired")


def test_broken_credentials_file_is_reported(server, tmp_path):
    config = tmp_path / "config"
    creds_file(config).parent.mkdir(parents=True)
    creds_file(config).write_text("server = x\nthis line has no equals sign\n")
    p = cli(server, "whoami", token=None, config=config)
    assert p.returncode == UNAUTHENTICATED, p.stderr
    assert "line 2" in p.stderr and "saasodoo login" in p.stderr


# --- API keys ---------------------------------------------------------------------------------

def test_apikeys_create_use_delete(server):
    email, session = customer(server)
    token = session.access_token
    name = unique_id("key")

    p = ok(cli(server, "apikeys", "create", name, token=token))
    key = describe(p.stdout)
    assert key["display_name"] == name
    assert key["name"].startswith(f"{session.user.name}/apiKeys/"), key
    secret = key["secret"]
    assert secret not in ("", "-") and secret.startswith(key["prefix"]), key
    assert "cannot be shown again" in p.stderr

    # The secret is a token of its own.
    me = describe(ok(cli(server, "whoami", token=secret)).stdout)
    assert me["email"] == email and me["name"] == session.user.name

    p = ok(cli(server, "apikeys", "list", token=secret))
    headers, rows = table(p.stdout)
    assert headers == ["NAME", "PREFIX", "CREATED", "LAST_USED", "EXPIRES", "DISPLAY_NAME"]
    row = next(r for r in rows if r["NAME"] == key["name"])
    assert row["DISPLAY_NAME"] == name and row["PREFIX"] == key["prefix"]
    assert secret not in p.stdout
    listed = json.loads(ok(cli(server, "-o", "json", "apikeys", "list", token=token)).stdout)
    assert [k["name"] for k in listed["api_keys"]] == [key["name"]]
    assert "secret" not in listed["api_keys"][0]

    # Deleted by the name it was given; the secret stops working at once.
    p = ok(cli(server, "apikeys", "delete", name, token=token))
    assert p.stdout == f"deleted {key['name']}\n"
    fails(cli(server, "whoami", token=secret), UNAUTHENTICATED, "SAASODOO_TOKEN")
    fails(cli(server, "apikeys", "delete", name, token=token), NOT_FOUND, f"'{name}'")
    _, rows = table(ok(cli(server, "apikeys", "list", token=token)).stdout or "NAME\n")
    assert key["name"] not in [r["NAME"] for r in rows]

    # By ID and by full name too; another customer's key is not found.
    k2 = describe(ok(cli(server, "apikeys", "create", "second", token=token)).stdout)
    other_email, other = customer(server)
    fails(cli(server, "apikeys", "delete", k2["name"], token=other.access_token), NOT_FOUND)
    ok(cli(server, "apikeys", "delete", k2["name"].rsplit("/", 1)[1], token=token))
    fails(cli(server, "whoami", token=k2["secret"]), UNAUTHENTICATED)


# --- users and the audit log --------------------------------------------------------------

def test_users_list_update_and_audit(server):
    email, session = customer(server)
    uname = session.user.name
    uid = uname.split("/", 1)[1]

    headers, rows = table(ok(cli(server, "users", "list", "--all")).stdout)
    assert headers == ["NAME", "EMAIL", "ROLE", "DISABLED", "CREATED", "LAST_SIGN_IN"]
    row = next(r for r in rows if r["NAME"] == uname)
    assert row["EMAIL"] == email and row["ROLE"] == "CUSTOMER" and row["DISABLED"] == "no"
    assert support.ADMIN_EMAIL in [r["EMAIL"] for r in rows]
    # Customers may not.
    fails(cli(server, "users", "list", token=session.access_token), PERMISSION_DENIED)
    fails(cli(server, "audit", "list", token=session.access_token), PERMISSION_DENIED)
    fails(cli(server, "users", "update", uid, "--role", "admin", token=session.access_token),
          PERMISSION_DENIED)

    u = describe(ok(cli(server, "users", "update", uid, "--role", "admin")).stdout)
    assert u["name"] == uname and u["role"] == "ADMIN"
    u = describe(ok(cli(server, "users", "update", uname, "--role", "customer",
                        "--disable")).stdout)
    assert u["role"] == "CUSTOMER" and u["disabled"] == "true"
    p = cli(server, "whoami", token=session.access_token)
    assert p.returncode in (UNAUTHENTICATED, PERMISSION_DENIED), (p.returncode, p.stderr)
    u = describe(ok(cli(server, "users", "update", uid, "--enable")).stdout)
    assert u["disabled"] == "false"
    fails(cli(server, "users", "update", f"u{uuid.uuid4().hex[:16]}", "--enable"), NOT_FOUND)

    events = json.loads(ok(cli(server, "-o", "json", "audit", "list", "--all", "--filter",
                               f'target = "{uname}"')).stdout)["audit_events"]
    methods = [e["method"] for e in events]
    assert methods.count("/saasodoo.v1.AdminService/UpdateUser") >= 3, events
    assert all(e["target"] == uname for e in events)
    headers, rows = table(ok(cli(server, "audit", "list", "--page-size", "5")).stdout)
    assert headers == ["TIME", "PRINCIPAL", "METHOD", "TARGET", "RESULT", "CLIENT"]
    assert 1 <= len(rows) <= 5
    fails(cli(server, "audit", "list", "--filter", "colour = red"), INVALID_ARGUMENT)


# --- backups ------------------------------------------------------------------------------

def test_backups_create_list_get_restore_delete(server, tenant):
    p = ok(cli(server, "backups", "create", tenant, "--description", "before the upgrade",
               "--wait"))
    steps = watch_lines(p.stdout)
    assert steps and steps[-1][2] == "SUCCEEDED" and steps[-1][3] == "100%", p.stdout
    m = re.search(rf"^result: (tenants/{tenant}/backups/\S+)$", p.stdout, re.M)
    assert m, p.stdout
    bname = m.group(1)
    short = f"{tenant}/{bname.rsplit('/', 1)[1]}"

    headers, rows = table(ok(cli(server, "backups", "list", tenant)).stdout)
    assert headers == ["NAME", "STATE", "TRIGGER", "SIZE", "CREATED", "DESCRIPTION"]
    row = next(r for r in rows if r["NAME"] == bname)
    assert row["STATE"] == "COMPLETE" and row["TRIGGER"] == "MANUAL", row
    listed = json.loads(ok(cli(server, "-o", "json", "backups", "list",
                               f"tenants/{tenant}")).stdout)
    assert bname in [b["name"] for b in listed["backups"]]

    b = describe(ok(cli(server, "backups", "get", short)).stdout)
    assert b["name"] == bname and b["state"] == "COMPLETE"
    assert b["description"] == "before the upgrade" and int(b["size_bytes"]) > 0
    assert json.loads(ok(cli(server, "-o", "json", "backups", "get", bname)).stdout)["parts"]
    fails(cli(server, "backups", "get", f"{tenant}/{unique_id('nobackup')}"), NOT_FOUND)
    fails(cli(server, "backups", "create", unique_id("nope")), NOT_FOUND)

    # In place, confirmed with --yes.
    fails(cli(server, "backups", "restore", short), USAGE, "confirm with --yes")
    p = ok(cli(server, "backups", "restore", short, "--yes", "--wait"))
    steps = watch_lines(p.stdout)
    assert steps[-1][2] == "SUCCEEDED", p.stdout
    t = describe(ok(cli(server, "tenants", "get", tenant)).stdout)
    assert t["state"] == "ACTIVE", t

    # Into a new tenant.
    copy = unique_id("cli-copy")
    p = ok(cli(server, "backups", "restore", short, "--to", copy, "--wait"))
    assert watch_lines(p.stdout)[-1][2] == "SUCCEEDED", p.stdout
    assert describe(ok(cli(server, "tenants", "get", copy)).stdout)["state"] == "ACTIVE"
    ok(cli(server, "tenants", "delete", copy, "--wait"))

    p = ok(cli(server, "backups", "delete", short, "--wait"))
    assert watch_lines(p.stdout)[-1][2] == "SUCCEEDED", p.stdout
    fails(cli(server, "backups", "get", short), NOT_FOUND)


def test_backup_policy(server, tenant):
    pol = describe(ok(cli(server, "backups", "policy", tenant)).stdout)
    assert pol["name"] == f"tenants/{tenant}/backupPolicy"
    assert pol["schedule"] in ("hourly", "daily", "disabled"), pol
    p = describe(ok(cli(server, "backups", "policy", tenant, "--schedule", "daily", "--time",
                        "02:30", "--keep-daily", "7", "--keep-weekly", "4")).stdout)
    assert p["schedule"] == "daily" and p["time_of_day"] == "02:30", p
    assert p["keep_daily"] == "7" and p["keep_weekly"] == "4" and p["overridden"] == "true"
    assert p["keep_monthly"] == pol["keep_monthly"]  # not in the mask: unchanged
    j = json.loads(ok(cli(server, "-o", "json", "backups", "policy", tenant)).stdout)
    assert j["schedule"] == "daily" and j["keep_daily"] == 7
    fails(cli(server, "backups", "policy", tenant, "--keep-monthly", "2", "--etag",
              pol["etag"]), ABORTED)
    fails(cli(server, "backups", "policy", unique_id("nope")), NOT_FOUND)


# --- TLS ----------------------------------------------------------------------------------

def openssl(d, *args):
    p = subprocess.run(["openssl", *args], cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)}:\n{p.stdout}"


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it, and an
    unrelated CA."""
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=saasodoo cli test {ca}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "basicConstraints=CA:FALSE\n"
                                  "extendedKeyUsage=serverAuth\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    os.chmod(d / "server.key", 0o600)
    os.chmod(d, 0o755)
    return d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key"


class TlsServer(support.Server):
    """A server that answers over TLS only; ready once health answers over TLS."""

    def __init__(self, *args, ca, **kw):
        super().__init__(*args, **kw)
        self.ca = ca

    def wait_serving(self, timeout=support.SERVER_START_TIMEOUT):
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited:\n{self.recent_log()}"
            ch = grpc.secure_channel(self.address, creds)
            try:
                if support.health_check(ch, timeout=1.0) == support.HEALTH_SERVING:
                    return
            except grpc.RpcError:
                pass
            finally:
                ch.close()
            time.sleep(0.1)
        raise AssertionError(f"no TLS health answer within {timeout}s:\n{self.recent_log()}")


def test_tls_with_ca_file(workdir, pg, tmp_path):
    ca, other_ca, cert, key = make_certs(workdir / f"cli-tls-{uuid.uuid4().hex[:6]}")
    srv = TlsServer(workdir, pg, name=f"cli-tls-{uuid.uuid4().hex[:6]}", ca=ca,
                    settings={"security": {"tls_cert_file": f'"{cert}"',
                                           "tls_key_file": f'"{key}"'}})
    srv.start()
    try:
        config = tmp_path / "config"
        pw = support.ADMIN_PASSWORD + "\n"
        # Plaintext to a TLS server, and TLS trusting the wrong CA: no connection.
        fails(cli(srv, "login", "--email", support.ADMIN_EMAIL, stdin=pw, token=None,
                  config=config), UNAVAILABLE)
        fails(cli(srv, "--ca-file", other_ca, "login", "--email", support.ADMIN_EMAIL, stdin=pw,
                  token=None, config=config), UNAVAILABLE)
        assert not creds_file(config).exists()

        p = ok(cli(srv, "--ca-file", ca, "login", "--email", support.ADMIN_EMAIL, stdin=pw,
                   token=None, config=config))
        assert "ADMIN" in p.stdout
        assert read_creds(config)["ca_file"] == str(ca)
        # The session remembers the CA file; SAASODOO_TLS_CA works as well as --ca-file.
        me = describe(ok(cli(srv, "whoami", token=None, config=config)).stdout)
        assert me["email"] == support.ADMIN_EMAIL and me["role"] == "ADMIN"
        token = read_creds(config)["access_token"]
        ok(cli(srv, "tenants", "list", token=token, env_extra={"SAASODOO_TLS_CA": str(ca)}))
        fails(cli(srv, "tenants", "list", token=token), UNAVAILABLE)
        ok(cli(srv, "logout", token=None, config=config))
        assert not creds_file(config).exists()
    finally:
        srv.kill()


def test_backups_download(server, tenant, tmp_path):
    import hashlib
    p = ok(cli(server, "backups", "create", tenant, "--description", "to download", "--wait"))
    m = re.search(rf"^result: (tenants/{tenant}/backups/(\S+))$", p.stdout, re.M)
    assert m, p.stdout
    bname, bid = m.group(1), m.group(2)
    short = f"{tenant}/{bid}"
    parts = {x["name"]: x for x in
             json.loads(ok(cli(server, "-o", "json", "backups", "get", bname)).stdout)["parts"]}
    assert {"database.dump", "manifest.json"} <= set(parts)
    for part, info in parts.items():
        dest = tmp_path / part
        p = ok(cli(server, "backups", "download", short, part, "-o", dest))
        data = dest.read_bytes()
        assert len(data) == int(info["size_bytes"])
        assert hashlib.sha256(data).hexdigest() == info["sha256"]
        assert p.stdout == f"{dest}: {len(data)} bytes, SHA-256 {info['sha256']} (verified)\n"
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    dump = tmp_path / "database.dump"
    # an existing file is only replaced with --force
    fails(cli(server, "backups", "download", short, "database.dump", "-o", dump), USAGE, "--force")
    ok(cli(server, "backups", "download", bname, "database.dump", "-o", dump, "--force"))
    # -o json before the group: the part as JSON; -o - after the command: the bytes on stdout
    j = json.loads(ok(cli(server, "-o", "json", "backups", "download", short, "manifest.json",
                          "-o", tmp_path / "m.json")).stdout)
    assert j == {"name": "manifest.json", "size_bytes": parts["manifest.json"]["size_bytes"],
                 "sha256": parts["manifest.json"]["sha256"]}
    p = ok(cli(server, "backups", "download", short, "manifest.json", "-o", "-"))
    assert p.stdout.encode() == (tmp_path / "manifest.json").read_bytes()
    assert "verified" in p.stderr

    customer = server.sign_up()
    fails(cli(server, "backups", "download", short, "database.dump", "-o", tmp_path / "c",
              token=customer.access_token), PERMISSION_DENIED)
    fails(cli(server, "backups", "download", short, "nope.bin", "-o", tmp_path / "n"), NOT_FOUND,
          "nope.bin")
    fails(cli(server, "backups", "download", short), USAGE)

    # a part damaged in storage: DATA_LOSS (exit 25) and no file left behind
    [stored] = [f for f in server.data_dir.rglob(f"tenants/{tenant}/{bid}/database.dump")]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    fails(cli(server, "backups", "download", short, "database.dump", "-o", tmp_path / "bad"),
          10 + 15, "DATA_LOSS", "database.dump")
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(set(parts) | {"m.json"})
    ok(cli(server, "backups", "delete", short, "--wait"))
