"""Fixtures: PostgreSQL and saasodoo-server from the integration tests' conftest
(loaded from tests/integration/conftest.py and re-exported), plus saasodoo-gateway.

Environment: as for the integration tests (SAASODOO_BUILD_DIR, SAASODOO_PG_BIN,
SAASODOO_TEST_TMPDIR, SAASODOO_TEST_KEEP=1).
"""
import importlib.util

import pytest

import gateway_support as gs

_spec = importlib.util.spec_from_file_location("saasodoo_integration_conftest",
                                               gs.INTEGRATION_DIR / "conftest.py")
_it = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_it)

workdir = _it.workdir
pg = _it.pg
session_server = _it.session_server
server = _it.server
server_factory = _it.server_factory


@pytest.fixture(scope="session")
def session_gateway(workdir, session_server):
    gs.require_gateway_build()
    gw = gs.Gateway(workdir, session_server.address)
    gw.start()
    try:
        yield gw
        rc = gw.stop()
        assert rc == 0, f"saasodoo-gateway exited {rc} on SIGTERM:\n{gw.log_text()[-4000:]}"
    finally:
        gw.kill()


@pytest.fixture
def gateway(session_gateway, server):
    """The session's gateway in front of the session's server (started again first
    if a test left it stopped). Its calls carry the bootstrap admin's access token
    unless a test says otherwise (gateway_support.call's token)."""
    assert session_gateway.running(), f"saasodoo-gateway died:\n{session_gateway.log_text()[-4000:]}"
    gs.ensure_admin_token(session_gateway)
    yield session_gateway
    assert session_gateway.running(), f"saasodoo-gateway died:\n{session_gateway.log_text()[-4000:]}"


@pytest.fixture
def gateway_factory(workdir):
    """Builds extra gateways (own port and log), killed after the test. Their API calls
    carry the bootstrap admin's token when the backend lets it sign in."""
    made = []

    def make(backend, name, args=(), env=None, frontend=gs.FRONTEND_DIR):
        gw = gs.Gateway(workdir, backend, name=name, args=args, env=env, frontend=frontend)
        gw.sign_in_lazily = True
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for name in ("gateway", "session_gateway"):
            gw = getattr(item, "funcargs", {}).get(name)
            if gw is not None:
                rep.sections.append((f"saasodoo-gateway log ({gw.log_path})", gw.log_text()[-3000:]))
                break
        srv = getattr(item, "funcargs", {}).get("server")
        if srv is not None:
            rep.sections.append((f"saasodoo-server log ({srv.log_path})", srv.recent_log(3000)))
