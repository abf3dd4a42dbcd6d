"""Browser end-to-end tests: each scenario of e2e.mjs runs in Debian's Chromium
(driven by playwright-core) against the real saasodoo-gateway and saasodoo-server,
signed in as customers it signs up or as the server's bootstrap admin.
Screenshots go to SAASODOO_BROWSER_OUTPUT (default <build>/browser-output)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import gateway_support as gs

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("SAASODOO_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"
OUTPUT = Path(os.environ.get("SAASODOO_BROWSER_OUTPUT") or (gs.support.BUILD_DIR / "browser-output"))

SCENARIOS = [
    "pages",
    "bad_tenant_id",
    "create_watch_active",
    "suspend_resume",
    "delete",
    "admin_lists_database_server",
    "customers_see_only_their_own",
    "api_keys",
    "admin_only",
    "backups",
    "session_refresh",
]


@pytest.fixture(scope="session")
def browser_ready():
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not os.access(NODE, os.X_OK):
        missing.append("node (apt-get install nodejs)")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        missing.append(f"{HERE}/node_modules/playwright-core (npm ci --prefix {HERE}, done by scripts/deps.sh)")
    if missing:
        pytest.fail("the browser tests need: " + "; ".join(missing))
    OUTPUT.mkdir(parents=True, exist_ok=True)


def test_scenario_list_matches():
    out = subprocess.run([NODE, str(HERE / "e2e.mjs"), "--list"], stdout=subprocess.PIPE, text=True,
                         timeout=30, cwd=str(HERE))
    assert out.stdout.split() == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_browser(browser_ready, gateway, scenario):
    out_dir = OUTPUT / scenario
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    # The scenarios sign up their own customers; the admin is the test server's bootstrap admin.
    env = dict(os.environ, SAASODOO_E2E_BASE_URL=gateway.base, SAASODOO_E2E_OUT=str(out_dir),
               SAASODOO_CHROMIUM=CHROMIUM, SAASODOO_E2E_ADMIN_EMAIL=gs.support.ADMIN_EMAIL,
               SAASODOO_E2E_ADMIN_PASSWORD=gs.support.ADMIN_PASSWORD)
    p = subprocess.run([NODE, str(HERE / "e2e.mjs"), "--scenario", scenario], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=400, cwd=str(HERE), env=env)
    assert p.returncode == 0, f"scenario {scenario} failed (screenshots in {out_dir}):\n{p.stdout[-6000:]}"
    assert any(out_dir.glob("*.png")), f"scenario {scenario} saved no screenshot in {out_dir}"
