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


@pytest.fixture(scope="session")
def pg(workdir):
    cluster = support.Postgres(workdir)
    cluster.init()
    cluster.start()
    try:
        cluster.createdb(cluster.dbname)
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop(mode="immediate")


@pytest.fixture(scope="session")
def session_server(workdir, pg):
    srv = support.Server(workdir, pg)
    srv.start()
    try:
        yield srv
        if srv.running():
            rc = srv.stop()
            assert rc == 0, f"saasodoo-server exited {rc} on SIGTERM at the end of the run:\n{srv.recent_log()}"
    finally:
        srv.kill()
        reports = srv.sanitizer_reports()
        assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


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

    def make(name, dbname=None, env=None):
        srv = support.Server(workdir, pg, name=name, dbname=dbname, env=env)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.kill()
    reports = [r for srv in made for r in srv.sanitizer_reports()]
    assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        srv = getattr(item, "funcargs", {}).get("server")
        if srv is not None:
            rep.sections.append((f"saasodoo-server log ({srv.log_path})", srv.recent_log(4000)))
