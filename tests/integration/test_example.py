"""clients/python/example.py runs against a real server."""
import os
import subprocess

import grpc
import pytest

import support
from support import REPO, unique_id
from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc

# These tests are about records and the API: the operations they record are parked in
# the queue (conftest.parked_operations), so tenants stay PROVISIONING and operations
# PENDING until a test acts on them. Provisioning is tested in test_provisioning.py and
# the suites beside it.
pytestmark = pytest.mark.usefixtures("parked_operations")

EXAMPLE = REPO / "clients" / "python" / "example.py"


def run_example(*args, token=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(support.PYTHON_DIR)
    if token:
        env["SAASODOO_TOKEN"] = token
    return subprocess.run([support.PYTHON, str(EXAMPLE)] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=60, cwd=str(REPO))


def test_example_creates_gets_and_lists(server):
    tid = unique_id("ex")
    p = run_example(server.address, tid, token=server.admin_token())
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"target=tenants/{tid}" in p.stdout
    assert "operation operations/" in p.stdout
    assert "kind=CREATE_TENANT" in p.stdout
    assert f"tenant tenants/{tid}:" in p.stdout
    assert "state=PROVISIONING" in p.stdout
    assert "tenants on plans/basic" in p.stdout
    t = server.stub(tenant_pb2_grpc.TenantServiceStub).GetTenant(
        tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    assert t.display_name == f"Example {tid}"
    assert dict(t.labels) == {"created-by": "example"}


def test_example_reports_errors_with_exit_code_1(server):
    tid = unique_id("ex")
    assert run_example(server.address, tid, token=server.admin_token()).returncode == 0
    p = run_example(server.address, tid, token=server.admin_token())    # the id is taken now
    assert p.returncode == 1
    assert "ALREADY_EXISTS" in p.stderr, p.stderr


def test_example_without_a_server_fails_cleanly():
    port = support.free_port()
    p = run_example(f"127.0.0.1:{port}", unique_id("ex"))
    assert p.returncode == 1
    assert grpc.StatusCode.UNAVAILABLE.name in p.stderr, p.stderr
