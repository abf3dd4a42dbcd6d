"""Fixtures for the browser tests: PostgreSQL, saasodoo-server and saasodoo-gateway,
all from the gateway tests' conftest (which takes PostgreSQL and the server from the
integration tests'), loaded from there and re-exported."""
import importlib.util
import sys
from pathlib import Path

GATEWAY_TESTS = Path(__file__).resolve().parent.parent / "gateway"
if str(GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(GATEWAY_TESTS))

_spec = importlib.util.spec_from_file_location("saasodoo_gateway_conftest", GATEWAY_TESTS / "conftest.py")
_gw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gw)

workdir = _gw.workdir
pg = _gw.pg
session_server = _gw.session_server
server = _gw.server
session_gateway = _gw.session_gateway
gateway = _gw.gateway
pytest_runtest_makereport = _gw.pytest_runtest_makereport
