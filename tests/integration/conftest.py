"""Session fixtures: a private PostgreSQL cluster and the real saasodoo-server.

Environment:
  SAASODOO_BUILD_DIR     build directory (default <repo>/build)
  SAASODOO_PG_BIN        PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
  SAASODOO_TEST_TMPDIR   where the run's temporary directory goes (default /tmp)
  SAASODOO_TEST_KEEP=1   keep the temporary directory (logs, data) after the run
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import support


@pytest.fixture(scope="session")
def workdir():
    support.require_build()
    base = os.environ.get("SAASODOO_TEST_TMPDIR", "/tmp")
    path = Path(tempfile.mkdtemp(prefix="saasodoo-it-", dir=base))
    # The postgres user must be able to traverse to its data and socket directories.
    os.chmod(path, 0o755)
    yield path
    if os.environ.get("SAASODOO_TEST_KEEP") == "1":
        print(f"\nintegration test files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def _cluster(root):
    """A private PostgreSQL with the control-plane database and the tenant template."""
    return support.make_cluster(root)


@pytest.fixture(scope="session")
def pg(workdir):
    cluster = _cluster(workdir)
    try:
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop(mode="immediate")


def _session_server(srv):
    srv.start()
    try:
        yield srv
        if srv.running():
            rc = srv.stop()
            assert rc == 0, f"saasodoo-server exited {rc} on SIGTERM at the end of the run:\n{srv.recent_log()}"
    finally:
        srv.kill()
        srv.cleanup_tenants()
        reports = srv.sanitizer_reports()
        assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


@pytest.fixture(scope="session")
def session_server(workdir, pg):
    yield from _session_server(support.Server(workdir, pg))


@pytest.fixture(scope="module")
def parked_operations(session_server, pg):
    """For suites about records and the API: the operations their tests record are parked
    in the queue (support.park_operations), so they stay PENDING and their tenants
    PROVISIONING, deterministically; nothing is provisioned for them. Provisioning has
    suites of its own (test_provisioning.py and the others on the prov_* fixtures)."""
    support.park_operations(pg)
    yield
    support.unpark_operations(pg)


@pytest.fixture
def server(session_server, pg):
    """The session's server, started again first if an earlier test left it (or the
    database) stopped. After the test, its log must hold no sanitizer or crash report."""
    if not pg.is_running():
        pg.start()
    if not session_server.running():
        session_server.start()
    yield session_server
    reports = session_server.sanitizer_reports()
    assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])
    if not session_server.running() and not session_server.stopped_on_purpose:
        pytest.fail(f"saasodoo-server died during the test (exit {session_server.proc.returncode}); "
                    f"its log:\n{session_server.recent_log()}")


@pytest.fixture
def server_factory(workdir, pg):
    """Builds extra servers (own port, config and log) that are killed after the test."""
    made = []

    def make(name, dbname=None, env=None, settings=None, level="info", cluster=None):
        srv = support.Server(workdir, cluster or pg, name=name, dbname=dbname, env=env,
                             settings=settings, level=level)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.kill()
        srv.cleanup_tenants()
    reports = [r for srv in made for r in srv.sanitizer_reports()]
    assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


# ---------------------------------------------------------------------------
# Provisioning suites: a PostgreSQL and a server of their own
# ---------------------------------------------------------------------------
# The consistency check looks at every tenant-shaped database and role on the servers it
# knows, so the provisioning suites keep a cluster of their own: what other suites' servers
# leave in theirs cannot show up as orphans here.

@pytest.fixture(scope="session")
def prov_pg(workdir):
    cluster = _cluster(workdir / "prov")
    try:
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop(mode="immediate")


@pytest.fixture(scope="session")
def prov_session_server(workdir, prov_pg):
    # debug: the log shows each step with its duration
    yield from _session_server(support.Server(workdir / "prov", prov_pg, level="debug"))


@pytest.fixture
def prov(request, prov_session_server, prov_pg):
    """The provisioning suites' server, started again (without fault injection) if an
    earlier test left it stopped. After the test, its log must hold no sanitizer or crash
    report, and it must not have died unless the test meant it to."""
    srv = prov_session_server
    if not prov_pg.is_running():
        prov_pg.start()
    _running_unarmed(srv)
    before = _live(prov_pg)
    yield srv
    reports = srv.sanitizer_reports()
    died = not srv.running() and not srv.stopped_on_purpose
    exit_code = srv.proc.returncode
    log = srv.recent_log()
    # What a failed test left behind must not fail the next ones: delete its tenants and
    # the servers it registered, open 'local' to placement again, and (after a failure)
    # remove what no tenant owns.
    _running_unarmed(srv)
    _tidy(srv, prov_pg, before)
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        support.check_consistency(srv, repair=True)
    assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])
    if died:
        pytest.fail(f"saasodoo-server died during the test (exit {exit_code}); its log:\n{log}")


def _running_unarmed(srv):
    if srv.running() and srv.fault:
        srv.kill()  # left armed with a fault by a test that failed
    if not srv.running():
        srv.start()


def _live(pg):
    return {"tenants": set(pg.psql("SELECT id FROM tenants WHERE state <> 'DELETED'").split()),
            "servers": set(pg.psql("SELECT id FROM database_servers WHERE kind = 'SHARED'").split())}


def _tidy(srv, pg, before):
    now = _live(pg)
    for tid in sorted(now["tenants"] - before["tenants"]):
        try:
            support.wait_for(lambda: pg.psql(
                f"SELECT count(*) FROM operations WHERE NOT done AND target = 'tenants/{tid}'") == "0",
                60, what=f"the operations on {tid} to end")
            support.lifecycle(srv, "delete", tid, wait=False)
        except (AssertionError, support.grpc.RpcError):
            pass
    support.wait_for(lambda: pg.psql("SELECT count(*) FROM operations WHERE NOT done") == "0", 120,
                     what="every operation to end")
    for sid in sorted(now["servers"] - before["servers"]):
        try:
            support.admin_stub(srv).DeleteDatabaseServer(
                support.admin_pb2().DeleteDatabaseServerRequest(name=f"databaseServers/{sid}"), timeout=10)
        except support.grpc.RpcError:
            pass
    support.set_accepting(srv, "local", True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep
    if rep.when == "call" and rep.failed:
        for name in ("server", "prov"):
            srv = getattr(item, "funcargs", {}).get(name)
            if srv is not None:
                rep.sections.append((f"saasodoo-server log ({srv.log_path})", srv.recent_log(4000)))
