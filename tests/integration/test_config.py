"""saasodoo-server's command line and configuration: --check-config, errors naming file,
line and key, environment overrides, --version and --help."""
import re
import socket

import grpc
import pytest

import support
from support import REPO, run_server_cli, write_config

# Lines 1-11 are always the same, so a bad line added after them has a known number.
HEADER = [
    "# saasodoo-server test configuration",
    "grpc:",
    '  listen: "127.0.0.1:1"',
    "  workers: 2",
    "  shutdown_grace_seconds: 10",
    "database:",
    '  url: "host=/nonexistent port=1 dbname=saasodoo user=postgres"',
    "  pool_size: 4",
    "platform:",
    f'  plans_file: "{support.PLANS_FILE}"',
    '  data_dir: "/tmp"',
]


def _write(tmp_path, lines, name="saasodoo.yaml"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def check_config(path, env=None):
    return run_server_cli(["--check-config", "--config", str(path)], env=env)


def _output(p):
    return (p.stderr or "") + (p.stdout or "")


def assert_names_line(message, path, line):
    rest = message.replace(str(path), " ")
    assert re.search(rf"(?<!\d){line}(?!\d)", rest), f"message should name line {line}: {message!r}"


def test_check_config_accepts_the_test_config(server):
    p = check_config(server.config_path)
    assert p.returncode == 0, _output(p)


def test_check_config_accepts_the_documented_default():
    p = check_config(REPO / "config" / "saasodoo.yaml")
    assert p.returncode == 0, _output(p)


def test_check_config_accepts_a_minimal_config(tmp_path):
    p = check_config(_write(tmp_path, HEADER))
    assert p.returncode == 0, _output(p)


@pytest.mark.parametrize("section_line,bad_line,key", [
    ("grpc:", "  listen_port: 50051", "listen_port"),
    ("database:", "  password: secret", "password"),
    ("log:", "  colour: true", "colour"),
    ("nonsense:", "  a: 1", "nonsense"),
])
def test_unknown_key_names_file_line_and_key(tmp_path, section_line, bad_line, key):
    lines = HEADER + [section_line, bad_line]
    bad_no = len(lines) if section_line != "nonsense:" else len(lines) - 1
    path = _write(tmp_path, lines)
    p = check_config(path)
    msg = _output(p)
    assert p.returncode == 2, f"exit {p.returncode}: {msg}"
    assert str(path) in msg, msg
    assert key in msg, msg
    assert_names_line(msg, path, bad_no)


@pytest.mark.parametrize("section_line,bad_line,key", [
    ("grpc:", '  workers: "many"', "workers"),
    ("grpc:", "  shutdown_grace_seconds: soon", "shutdown_grace_seconds"),
    ("grpc:", "  max_receive_message_bytes: -5", "max_receive_message_bytes"),
    ("log:", "  level: loud", "level"),
    ("log:", "  format: xml", "format"),
    ("database:", "  pool_size: [1, 2]", "pool_size"),
])
def test_bad_value_names_file_line_and_key(tmp_path, section_line, bad_line, key):
    # A section may appear only once in the header; extra keys go in a new section
    # unless the section is already there, in which case it is repeated at the end.
    lines = [ln for ln in HEADER]
    if section_line in lines:
        idx = lines.index(section_line) + 1
        lines.insert(idx, bad_line)
        bad_no = idx + 1
    else:
        lines += [section_line, bad_line]
        bad_no = len(lines)
    path = _write(tmp_path, lines)
    p = check_config(path)
    msg = _output(p)
    assert p.returncode == 2, f"exit {p.returncode}: {msg}"
    assert str(path) in msg, msg
    assert key in msg, msg
    assert_names_line(msg, path, bad_no)


def test_bad_yaml_names_file_and_line(tmp_path):
    lines = HEADER + ["log:", '  level: "info": debug', "  format: text"]
    path = _write(tmp_path, lines)
    p = check_config(path)
    msg = _output(p)
    assert p.returncode != 0, msg
    assert str(path) in msg, msg
    assert_names_line(msg, path, len(lines) - 1)


def test_config_errors_also_stop_a_normal_start(tmp_path):
    path = _write(tmp_path, HEADER + ["grpc_typo:", "  listen: x"])
    p = run_server_cli(["--config", str(path)])
    msg = _output(p)
    assert p.returncode == 2, f"exit {p.returncode}: {msg}"
    assert "grpc_typo" in msg and str(path) in msg


def test_missing_config_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    p = check_config(missing)
    assert p.returncode != 0
    assert str(missing) in _output(p)


def test_bad_environment_value_names_the_variable(tmp_path):
    p = check_config(_write(tmp_path, HEADER), env={"SAASODOO_GRPC_WORKERS": "lots"})
    msg = _output(p)
    assert p.returncode == 2, f"exit {p.returncode}: {msg}"
    assert "SAASODOO_GRPC_WORKERS" in msg, msg


def test_environment_overrides_listen_and_database_url(server_factory, pg):
    srv = server_factory("env-override")
    configured_port = support.free_port()
    # The file points at a port nobody listens on and at a database that does not
    # exist; the environment supplies the real ones.
    write_config(srv.config_path, f"127.0.0.1:{configured_port}",
                 "host=/nonexistent port=1 dbname=nothing user=nobody", srv.data_dir)
    srv.env = {"SAASODOO_GRPC_LISTEN": srv.address, "SAASODOO_DATABASE_URL": pg.url()}
    srv.start()
    assert support.health_check(srv.channel()) == support.HEALTH_SERVING
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", configured_port)) != 0, "the configured port should be unused"
    from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc
    tid = support.unique_id("env")
    tenant_pb2_grpc.TenantServiceStub(srv.channel()).CreateTenant(
        tenant_pb2.CreateTenantRequest(tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=10)
    assert srv.stop() == 0


def _access_lines_after_bad_calls(srv):
    srv.start()
    ch = srv.channel()
    for _ in range(5):
        try:
            support.raw_unary(ch, "/saasodoo.v1.TenantService/GetTenant", b"", timeout=5)
        except grpc.RpcError:
            pass
    assert srv.stop() == 0
    return [ln for ln in srv.recent_log().splitlines() if "GetTenant" in ln]


def test_environment_override_of_log_level(server_factory):
    srv = server_factory("env-log")
    assert _access_lines_after_bad_calls(srv), "at level info every call is logged"
    srv.env = {"SAASODOO_LOG_LEVEL": "error"}
    assert _access_lines_after_bad_calls(srv) == [], \
        "with SAASODOO_LOG_LEVEL=error, access log lines must not be written"


def _project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*saasodoo\s+VERSION\s+([0-9][0-9.]*)", text)
    assert m, "no project VERSION in CMakeLists.txt"
    return m.group(1)


def test_version():
    p = run_server_cli(["--version"])
    assert p.returncode == 0, _output(p)
    assert _project_version() in p.stdout, p.stdout


def test_help():
    p = run_server_cli(["--help"])
    assert p.returncode == 0, _output(p)
    for flag in ("--config", "--check-config", "--version", "--help"):
        assert flag in p.stdout, f"--help should mention {flag}: {p.stdout!r}"


def test_unknown_option_is_an_error():
    p = run_server_cli(["--no-such-option"])
    assert p.returncode != 0
    assert "--no-such-option" in _output(p) or "no-such-option" in _output(p)
