"""The saasodoo CLI (build/bin/saasodoo) against a real server: tenants create, get, list,
update and migrate --wait; servers list, create, update, drain and delete; admin fsck.
Every call is checked for its exit code (0, 1, 2 or 10 + gRPC code) and its output."""
import json
import os
import re
import subprocess
import uuid

import pytest

import support
from support import unique_id

CLI = support.BUILD_DIR / "bin" / "saasodoo"
TEMPLATE = "saasodoo_template"

OK, FAILURE, USAGE = 0, 1, 2
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS = 13, 15, 16
FAILED_PRECONDITION, ABORTED, UNAVAILABLE = 19, 20, 24

SUMMARY = re.compile(r"^(\d+) findings \((\d+) repaired\), (\d+) tenants and (\d+) servers checked$")


def cli(server, *args, stdin=None, timeout=120):
    """Runs the CLI against `server` (None: no address given); returns CompletedProcess."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: cmake --build build --target saasodoo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAASODOO_")}
    if server is not None:
        env["SAASODOO_SERVER"] = server.address
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
    for group in ("tenants", "operations", "servers", "admin"):
        assert f"\n  {group} " in top, top
    assert "'admin fsck' findings" in top
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
              "dedicated"), FAILED_PRECONDITION, "saasodoo: FAILED_PRECONDITION: ")

    # Back to the shared server 'local', in json mode: one JSON object per update.
    p = ok(cli(None, "-o", "json", "tenants", "migrate", tenant, "--to", "shared",
               "--server", "databaseServers/local", "-s", server.address, "--wait"))
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
