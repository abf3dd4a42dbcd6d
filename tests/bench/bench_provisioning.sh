#!/usr/bin/env bash
# Provisioning benchmark: time-to-ACTIVE of shared tenants (CreateTenant until the
# operation is done, the stand-in app answering /web/health) and the database part of it
# (clone + role + grants, the server's own timing of its 'database' and 'role' steps),
# each beside a baseline of plain `createdb -T <template>` in the same run, from a template
# of about 20 MB. 50 creates one at a time, 50 with 8 in flight, then more one at a time up
# to tenant 200 to compare the last tenants with the first. Not part of the test suite;
# see README.md here.
#
#   BENCH_TENANTS      creates per phase (sequential, concurrent)   (default 50)
#   BENCH_IN_FLIGHT    creates in flight in the concurrent phase    (default 8)
#   BENCH_TOTAL        tenants in all, for the last-vs-first figure  (default 200)
#   BENCH_TEMPLATE_MB  size of the template database                (default 20)
#   BENCH_KEEP         1 = keep the temporary directory (logs) afterwards
#
# Targets: database part p50 <= 1.5x plain clone p50; time-to-ACTIVE p50 < 1 s; the last
# tenants no slower than 1.5x the first. Exit status: 0 all targets met, 1 the benchmark
# could not run or saw errors, 2 it ran cleanly but a target was missed (named on output).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

TENANTS=${BENCH_TENANTS:-50}
IN_FLIGHT=${BENCH_IN_FLIGHT:-8}
TOTAL=${BENCH_TOTAL:-200}
TEMPLATE_MB=${BENCH_TEMPLATE_MB:-20}
STANDIN=$BUILD_DIR/bin/saasodoo-standin
TEMPLATE=saasodoo_template

[[ $TENANTS -ge 10 ]] || die "BENCH_TENANTS ($TENANTS) must be at least 10"
[[ $TOTAL -ge $((2 * TENANTS + 10)) ]] ||
    die "BENCH_TOTAL ($TOTAL) must be at least twice BENCH_TENANTS ($TENANTS) plus 10"
bench_require_build "$STANDIN"
bench_setup

# Tenant apps (the stand-in) outlive the server by design: stop them before the rest.
# shellcheck disable=SC2317  # called from the EXIT trap
bench_stop_apps() {
    local f pid
    for f in "$TMP"/data/apps/*/pid; do
        [[ -f "$f" ]] || continue
        pid=$(cut -d' ' -f1 <"$f")
        if [[ -n "$pid" ]]; then
            kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
        fi
    done
}
trap 'bench_stop_apps; bench_cleanup' EXIT

# --- PostgreSQL: socket for the control plane, TCP with passwords for tenant apps -------
PG_PORT=$(free_port)
say "starting PostgreSQL in $TMP/pg (socket $TMP/run, 127.0.0.1:$PG_PORT)"
as_pg "$PG_BIN/initdb" -D "$TMP/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$TMP/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$TMP/initdb.log")"
cat >>"$TMP/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP/run'
max_connections = $((TOTAL + 100))
CONF
PG_STARTED=1
as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/run/postgresql.log" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start: $(tail -n 5 "$TMP/run/postgresql.log" 2>/dev/null)"
psql_admin() { # dbname sql
    as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP/run" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
psql_admin postgres 'CREATE DATABASE saasodoo' >/dev/null || die "CREATE DATABASE failed"

# --- the template: owned by a NOLOGIN role, filled as that role, about TEMPLATE_MB -------
say "preparing the template database $TEMPLATE (about $TEMPLATE_MB MB)"
{ psql_admin postgres "CREATE ROLE $TEMPLATE NOLOGIN" &&
    psql_admin postgres "CREATE DATABASE $TEMPLATE OWNER $TEMPLATE"; } >/dev/null || die "cannot create the template"
psql_admin "$TEMPLATE" "SET ROLE $TEMPLATE;
    CREATE TABLE res_partner (id serial PRIMARY KEY, name text NOT NULL, email text);
    INSERT INTO res_partner (name, email) SELECT 'Partner ' || g, 'p' || g || '@example.com'
        FROM generate_series(1, 1000) g;
    CREATE TABLE ir_attachment (id serial PRIMARY KEY, name text, datas text NOT NULL);" >/dev/null ||
    die "cannot fill the template"
# Rows of about 200 bytes until the database reaches the size asked for.
for _ in $(seq 1 40); do
    size=$(psql_admin "$TEMPLATE" "SELECT pg_database_size(current_database())")
    [[ $size -ge $((TEMPLATE_MB * 1024 * 1024)) ]] && break
    rows=$(((TEMPLATE_MB * 1024 * 1024 - size) / 260 + 1000))
    psql_admin "$TEMPLATE" "SET ROLE $TEMPLATE; INSERT INTO ir_attachment (name, datas)
        SELECT 'file ' || g, repeat(md5(g::text), 6) FROM generate_series(1, $rows) g" >/dev/null ||
        die "cannot fill the template"
done
psql_admin "$TEMPLATE" "VACUUM ANALYZE" >/dev/null
TEMPLATE_SIZE=$(psql_admin "$TEMPLATE" "SELECT pg_database_size(current_database())")

# --- the server, with the stand-in app and its own port ranges ---------------------------
# Per-run random port blocks below the ephemeral range, away from the shipped defaults.
APP_BASE=$(((RANDOM % 40) * 100 + 10000))
GRPC_PORT=$(free_port)
ADDR=127.0.0.1:$GRPC_PORT
say "starting saasodoo-server on $ADDR (tenant apps on ports $APP_BASE-$((APP_BASE + TOTAL + 49)))"
printf '%s\n' bench-admin-password >"$TMP/admin-password"
SAASODOO_GRPC_LISTEN=$ADDR \
    SAASODOO_DATABASE_URL="host=$TMP/run port=$PG_PORT dbname=saasodoo user=postgres" \
    SAASODOO_PLATFORM_DATA_DIR=$TMP/data \
    SAASODOO_LOG_LEVEL=debug \
    SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_EMAIL=admin@bench.test \
    SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD_FILE=$TMP/admin-password \
    SAASODOO_RATELIMIT_PRINCIPAL_RATE=1000000 SAASODOO_RATELIMIT_PRINCIPAL_BURST=1000000 \
    SAASODOO_RUNTIME_COMMAND=$STANDIN \
    SAASODOO_RUNTIME_PORT_MIN=$APP_BASE \
    SAASODOO_RUNTIME_PORT_MAX=$((APP_BASE + TOTAL + 49)) \
    SAASODOO_DBSTRATEGY_TEMPLATE_DATABASE=$TEMPLATE \
    SAASODOO_DBSTRATEGY_TEMPLATE_OWNER=$TEMPLATE \
    SAASODOO_DBSTRATEGY_PG_BIN_DIR=$PG_BIN \
    SAASODOO_DBSTRATEGY_DEDICATED_PORT_MIN=$((APP_BASE + TOTAL + 50)) \
    SAASODOO_DBSTRATEGY_DEDICATED_PORT_MAX=$((APP_BASE + TOTAL + 99)) \
    "$SERVER" --config "$CONFIG" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
export PYTHONPATH=$PYDIR${PYTHONPATH:+:$PYTHONPATH}

# --- the measurements -----------------------------------------------------------------------
set +e
"$PYTHON" - "$ADDR" "$SERVER_PID" "$TMP" "$PG_BIN" "$PG_PORT" "$TEMPLATE" "$TEMPLATE_SIZE" \
    "$TENANTS" "$IN_FLIGHT" "$TOTAL" <<'PY'
import os, re, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor

import grpc
from saasodoo.v1 import (identity_pb2, identity_pb2_grpc, operation_pb2, operation_pb2_grpc,
                         tenant_pb2, tenant_pb2_grpc)

addr, server_pid, tmp, pg_bin, pg_port, template = sys.argv[1:7]
template_size, tenants, in_flight, total = (int(x) for x in sys.argv[7:11])
log_path = os.path.join(tmp, "server.log")


def fail(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def as_pg(argv):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + argv


channel = grpc.insecure_channel(addr)
health = channel.unary_unary("/grpc.health.v1.Health/Check")
deadline = time.time() + 60
while True:
    try:
        if health(b"", timeout=2) == b"\x08\x01":
            break
    except grpc.RpcError:
        pass
    if time.time() > deadline or not os.path.exists(f"/proc/{server_pid}"):
        fail("the server is not serving; see server.log")
    time.sleep(0.2)
session = identity_pb2_grpc.IdentityServiceStub(channel).SignIn(identity_pb2.SignInRequest(
    email="admin@bench.test", password="bench-admin-password"), timeout=30)


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def _add(self, d):
        return d._replace(metadata=list(d.metadata or []) +
                          [("authorization", "Bearer " + session.access_token)])

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._add(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._add(d), req)


channel = grpc.intercept_channel(channel, _Bearer())
stub = tenant_pb2_grpc.TenantServiceStub(channel)
ops = operation_pb2_grpc.OperationServiceStub(channel)


def create(tid):
    """CreateTenant, then WatchOperation until the operation is done: seconds to ACTIVE."""
    t0 = time.perf_counter()
    op = stub.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id=tid, tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=30)
    last = op
    for last in ops.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=120):
        pass
    took = time.perf_counter() - t0
    if not last.done or last.state != operation_pb2.Operation.SUCCEEDED:
        fail(f"creating {tid} ended {operation_pb2.Operation.State.Name(last.state)}: {last.error.message}")
    t = stub.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)
    if t.state != tenant_pb2.Tenant.ACTIVE:
        fail(f"{tid} is {tenant_pb2.Tenant.State.Name(t.state)} after its create succeeded")
    return op.name.split("/", 1)[1], took


def clone(name):
    """The baseline: plain createdb -T <template>, as the server's admin would run it."""
    t0 = time.perf_counter()
    p = subprocess.run(as_pg([f"{pg_bin}/createdb", "-h", f"{tmp}/run", "-p", pg_port, "-U", "postgres",
                              "-T", template, name]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, cwd="/")
    took = time.perf_counter() - t0
    if p.returncode:
        fail(f"createdb -T {template} {name}: {p.stdout.strip()}")
    return took


def step_ms():
    """{operation id: {step: ms}} from the server's debug log."""
    out = {}
    pat = re.compile(r'msg="step" operation=(\S+) step=(\w+) rc=(-?\d+) ms=([0-9.]+)')
    with open(log_path, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m and m.group(3) == "0":
                out.setdefault(m.group(1), {})[m.group(2)] = float(m.group(4))
    return out


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run(fn, names, workers):
    if workers == 1:
        return [fn(n) for n in names]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, names))


def phase(label, names, workers):
    """Baseline clones and creates: one at a time, each create right after its baseline
    clone; in flight, a batch of clones with that many in flight, then the creates."""
    bases = [f"baseline_{n.replace('-', '_')}" for n in names]
    if workers == 1:
        base, made = [], []
        for b, n in zip(bases, names):
            base.append(clone(b))
            made.append(create(n))
    else:
        base = run(clone, bases, workers)
        made = run(create, names, workers)
    # The baseline copies go again (untimed), so that only tenants accumulate.
    for b in bases:
        subprocess.run(as_pg([f"{pg_bin}/dropdb", "-h", f"{tmp}/run", "-p", pg_port, "-U", "postgres", b]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    steps = step_ms()
    parts = {"database": [], "role": []}
    for op_id, _ in made:
        s = steps.get(op_id, {})
        if "database" not in s or "role" not in s:
            fail(f"no step timing for operation {op_id} in server.log (log level debug?)")
        for k in parts:
            parts[k].append(s[k] / 1000.0)
    return {"label": label, "clone": base, "active": [t for _, t in made],
            "db": [a + b for a, b in zip(parts["database"], parts["role"])],
            "db_step": parts["database"], "role_step": parts["role"]}


seq_names = [f"seq-{i:04d}" for i in range(1, tenants + 1)]
con_names = [f"con-{i:04d}" for i in range(1, tenants + 1)]
print(f"bench: {tenants} creates one at a time", file=sys.stderr)
seq = phase("one at a time", seq_names, 1)
print(f"bench: {tenants} creates, {in_flight} in flight", file=sys.stderr)
con = phase(f"{in_flight} in flight", con_names, in_flight)
rest = total - 2 * tenants
print(f"bench: {rest} more creates one at a time, up to tenant {total}", file=sys.stderr)
late = phase(f"up to tenant {total}", [f"late-{i:04d}" for i in range(1, rest + 1)], 1)
first10, last10 = seq["active"][:10], late["active"][-10:]

ms = lambda s: s * 1000.0
missed = []
print()
print(f"saasodoo provisioning benchmark ({os.cpu_count()} CPUs, template {template_size / 1048576:.1f} MB, "
      f"shared tenants, stand-in app, ops.workers {os.environ.get('SAASODOO_OPS_WORKERS', '2')})")
print(f"  {'':34s} {'p50 ms':>9s} {'p95 ms':>9s}")
for ph in (seq, con):
    print(f"  {ph['label']} ({len(ph['active'])} tenants)")
    c50, d50, a50 = pct(ph["clone"], 50), pct(ph["db"], 50), pct(ph["active"], 50)
    print(f"    {'plain createdb -T (baseline)':32s} {ms(c50):9.1f} {ms(pct(ph['clone'], 95)):9.1f}")
    ratio = d50 / c50
    ok = ratio <= 1.5
    print(f"    {'database part (clone+role+grants)':32s} {ms(d50):9.1f} {ms(pct(ph['db'], 95)):9.1f}"
          f"   {ratio:.2f}x baseline (target <= 1.5x: {'ok' if ok else 'MISSED'})")
    if not ok:
        missed.append(f"database part p50 {ratio:.2f}x the plain clone ({ph['label']})")
    print(f"      {'of which the database step':30s} {ms(pct(ph['db_step'], 50)):9.1f} {ms(pct(ph['db_step'], 95)):9.1f}")
    print(f"      {'of which the role step':30s} {ms(pct(ph['role_step'], 50)):9.1f} {ms(pct(ph['role_step'], 95)):9.1f}")
    ok = a50 < 1.0
    print(f"    {'time to ACTIVE':32s} {ms(a50):9.1f} {ms(pct(ph['active'], 95)):9.1f}"
          f"   (target p50 < 1000 ms: {'ok' if ok else 'MISSED'})")
    if not ok:
        missed.append(f"time-to-ACTIVE p50 {ms(a50):.0f} ms ({ph['label']})")
f50, l50 = pct(first10, 50), pct(last10, 50)
ratio = l50 / f50
ok = ratio <= 1.5
print(f"  the last tenants vs the first (one at a time)    {'1-10':>9s} {f'{total - 9}-{total}':>9s}")
print(f"    {'time to ACTIVE p50':44s} {ms(f50):9.1f} {ms(l50):9.1f}   {ratio:.2f}x "
      f"(target <= 1.5x: {'ok' if ok else 'MISSED'})")
print(f"    {'plain createdb -T p50 alongside':44s} {ms(pct(seq['clone'][:10], 50)):9.1f} "
      f"{ms(pct(late['clone'][-10:], 50)):9.1f}")
print(f"    {f'tenant 1, tenant {total}':44s} {ms(seq['active'][0]):9.1f} {ms(late['active'][-1]):9.1f}")
fc, lc = pct(seq['clone'][:10], 50), pct(late['clone'][-10:], 50)
print(f"    (time to ACTIVE over the plain clone alongside: {f50 / fc:.2f} then {l50 / lc:.2f};"
      f" the clone alone went {lc / fc:.2f}x)")
if not ok:
    missed.append(f"tenants {total - 9}-{total} {ratio:.2f}x slower than tenants 1-10")
if missed:
    print("\ntargets missed: " + "; ".join(missed))
    sys.exit(2)
PY
rc=$?
set -e
kill -0 "$SERVER_PID" 2>/dev/null || { say "the server died: $(tail -n 20 "$TMP/server.log")"; exit 1; }
exit $rc
