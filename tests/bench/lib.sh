# shellcheck shell=bash
# Shared by the benchmarks in this folder: a private PostgreSQL, saasodoo-server on a
# free port, the benchmark tenant and its request frames, and h2load runs that count
# only successes. Source it after setting ROOT; do not execute it.
#
#   BENCH_KEEP       1 = keep the temporary directory (logs) afterwards
#   BENCH_LOG_LEVEL  the server's log.level during the run (default warn)

BUILD_DIR=${SAASODOO_BUILD_DIR:-build}
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
SERVER=$BUILD_DIR/bin/saasodoo-server
PYDIR=$BUILD_DIR/python
PYTHON=/usr/bin/python3
CONFIG=$ROOT/config/saasodoo.yaml

HEALTH=/grpc.health.v1.Health/Check
GET=/saasodoo.v1.TenantService/GetTenant
GRPC_HEADERS=(-H 'content-type: application/grpc' -H 'te: trailers')

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Builds when the binaries the benchmark needs are missing.
bench_require_build() { # binary...
    local missing=0 f
    for f in "$SERVER" "$@"; do
        [[ -x "$f" ]] || missing=1
    done
    [[ -d "$PYDIR/saasodoo" ]] || missing=1
    if [[ $missing -eq 1 ]]; then
        say "building first (bash scripts/build.sh)"
        bash "$ROOT/scripts/build.sh" >/dev/null || die "build failed"
    fi
}

if [[ -n "${SAASODOO_PG_BIN:-}" ]]; then
    PG_BIN=$SAASODOO_PG_BIN
else
    PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# PostgreSQL refuses root: run it as `postgres` in a directory that user can reach.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TMP=""
SERVER_PID=""
PG_STARTED=0
BENCH_EXTRA_PIDS=()

# Stops one process gracefully (SIGTERM, then SIGKILL after 15 s).
bench_stop_pid() {
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

bench_cleanup() {
    local pid
    for pid in "${BENCH_EXTRA_PIDS[@]}"; do
        bench_stop_pid "$pid"
    done
    bench_stop_pid "$SERVER_PID"
    if [[ $PG_STARTED -eq 1 ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$TMP" ]]; then
        if [[ "${BENCH_KEEP:-0}" == "1" ]]; then
            say "kept $TMP (server.log, postgresql.log)"
        else
            rm -rf "$TMP"
        fi
    fi
}

# Creates the temporary directory and arranges for everything to be stopped on exit.
bench_setup() {
    [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL not found in $PG_BIN (apt-get install postgresql)"
    TMP=$(mktemp -d /tmp/saasodoo-bench.XXXXXX)
    chmod 755 "$TMP"
    mkdir -p "$TMP/pg" "$TMP/run" "$TMP/data"
    if [[ $EUID -eq 0 ]]; then
        chown postgres:postgres "$TMP/pg" "$TMP/run"
    fi
    chmod 700 "$TMP/pg"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# PostgreSQL on a private socket directory and port, with the saasodoo database.
bench_start_postgres() {
    PG_PORT=$(free_port)
    say "starting PostgreSQL in $TMP/pg (socket $TMP/run, port $PG_PORT)"
    as_pg "$PG_BIN/initdb" -D "$TMP/pg" -U postgres --auth-local=trust --auth-host=reject \
        --encoding=UTF8 --locale=C.UTF-8 >"$TMP/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$TMP/initdb.log")"
    cat >>"$TMP/pg/postgresql.conf" <<CONF
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$TMP/run'
CONF
    PG_STARTED=1
    as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/run/postgresql.log" -w -t 60 start >/dev/null ||
        die "PostgreSQL did not start: $(tail -n 5 "$TMP/run/postgresql.log" 2>/dev/null)"
    as_pg "$PG_BIN/psql" -X -q -h "$TMP/run" -p "$PG_PORT" -U postgres -d postgres \
        -c 'CREATE DATABASE saasodoo' >/dev/null || die "CREATE DATABASE failed"
}

# saasodoo-server on a free port; waits until Health/Check answers SERVING
# (HealthCheckResponse{status: SERVING} is 08 01), using raw bytes so no health stubs
# are needed. Sets ADDR and SERVER_PID.
bench_start_server() {
    local port
    port=$(free_port)
    ADDR=127.0.0.1:$port
    say "starting saasodoo-server on $ADDR"
    BENCH_ADMIN_EMAIL=admin@bench.test
    BENCH_ADMIN_PASSWORD=bench-admin-password
    printf '%s\n' "$BENCH_ADMIN_PASSWORD" >"$TMP/admin-password"
    chmod 600 "$TMP/admin-password"
    # the benchmark measures the server, not its rate limits
    SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_EMAIL=$BENCH_ADMIN_EMAIL \
        SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD_FILE=$TMP/admin-password \
        SAASODOO_RATELIMIT_PRINCIPAL_RATE=1000000 SAASODOO_RATELIMIT_PRINCIPAL_BURST=1000000 \
        SAASODOO_RATELIMIT_ADDRESS_RATE=1000000 SAASODOO_RATELIMIT_ADDRESS_BURST=1000000 \
        SAASODOO_GRPC_LISTEN=$ADDR \
        SAASODOO_DATABASE_URL="host=$TMP/run port=$PG_PORT dbname=saasodoo user=postgres" \
        SAASODOO_PLATFORM_DATA_DIR=$TMP/data \
        SAASODOO_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn} \
        "$SERVER" --config "$CONFIG" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    export PYTHONPATH=$PYDIR${PYTHONPATH:+:$PYTHONPATH}
    "$PYTHON" - "$ADDR" "$SERVER_PID" <<'PY' || die "server not serving: $(tail -n 20 "$TMP/server.log")"
import os, sys, time, grpc
ch = grpc.insecure_channel(sys.argv[1])
check = ch.unary_unary("/grpc.health.v1.Health/Check")
deadline = time.time() + 60
while True:
    try:
        if check(b"", timeout=2) == b"\x08\x01":
            break
    except grpc.RpcError:
        pass
    if time.time() > deadline or not os.path.exists("/proc/" + sys.argv[2]):
        sys.exit(1)
    time.sleep(0.2)
PY
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(tail -n 20 "$TMP/server.log")"
}

# Signs in as the benchmark's admin; sets BENCH_ADMIN_TOKEN.
bench_admin_token() {
    BENCH_ADMIN_TOKEN=$("$PYTHON" - "$ADDR" "$BENCH_ADMIN_EMAIL" "$BENCH_ADMIN_PASSWORD" <<'PY'
import sys, grpc
from saasodoo.v1 import identity_pb2, identity_pb2_grpc
stub = identity_pb2_grpc.IdentityServiceStub(grpc.insecure_channel(sys.argv[1]))
print(stub.SignIn(identity_pb2.SignInRequest(email=sys.argv[2], password=sys.argv[3]),
                  timeout=30).access_token)
PY
) || die "could not sign in as the benchmark admin"
}

# Signs up customer bench@bench.test, creates its tenant `bench` with the generated Python
# client and writes the request frames: gRPC's 5-byte prefix (compression flag 0,
# big-endian length) followed by the serialized message, in $TMP/get_tenant.frame and
# $TMP/health.frame. Calls then carry the customer's access token (BENCH_TOKEN), as a
# customer's reads do: authentication, the ownership check and the read itself.
bench_create_tenant() {
    "$PYTHON" - "$ADDR" "$TMP" <<'PY' || die "could not create the benchmark tenant"
import struct, sys, grpc
from saasodoo.v1 import identity_pb2, identity_pb2_grpc, tenant_pb2, tenant_pb2_grpc
addr, tmp = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel(addr)
session = identity_pb2_grpc.IdentityServiceStub(ch).SignUp(identity_pb2.SignUpRequest(
    email="bench@bench.test", password="bench-customer-password"), timeout=30)
md = [("authorization", "Bearer " + session.access_token)]
stub = tenant_pb2_grpc.TenantServiceStub(ch)
stub.CreateTenant(tenant_pb2.CreateTenantRequest(
    tenant_id="bench", request_id="bench-create",
    tenant=tenant_pb2.Tenant(display_name="Benchmark", plan="plans/basic")), timeout=10,
    metadata=md)
req = tenant_pb2.GetTenantRequest(name="tenants/bench")
stub.GetTenant(req, timeout=10, metadata=md)
with open(tmp + "/token", "w") as f:
    f.write(session.access_token)
body = req.SerializeToString()
with open(tmp + "/get_tenant.frame", "wb") as f:
    f.write(b"\x00" + struct.pack(">I", len(body)) + body)
with open(tmp + "/health.frame", "wb") as f:
    f.write(b"\x00\x00\x00\x00\x00")
PY
    BENCH_TOKEN=$(cat "$TMP/token")
    GRPC_HEADERS+=(-H "authorization: Bearer $BENCH_TOKEN")
}

# h2load only sees HTTP status; check grpc-status once per method so errors are not
# counted as successes.
verify() { # path frame
    local out
    out=$(nghttp -v "${GRPC_HEADERS[@]}" -d "$2" "http://$ADDR$1" 2>&1 | tr -d '\r' | grep -a 'grpc-status' || true)
    if ! grep -qaE 'grpc-status: 0([^0-9]|$)' <<<"$out"; then
        die "$1 did not answer grpc-status 0: ${out:-no grpc-status}"
    fi
}

# Runs h2load and prints requests/s; fails on any unsuccessful request (HTTP status
# other than 2xx counts as a failure for h2load too).
h2load_rps() { # description h2load-args...
    local what=$1 out rps total ok
    shift
    out=$(h2load "$@" 2>&1) || die "h2load failed on $what: $out"
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    total=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' <<<"$out")
    ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
    [[ -n "$ok" ]] || ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    if [[ -z "$rps" || -z "$total" || "$ok" != "$total" ]]; then
        die "h2load on $what: $ok of $total requests succeeded"$'\n'"$out"
    fi
    echo "$rps"
}

# gRPC load on one method with the configured concurrency; prints requests/s.
run_h2load() { # path frame requests
    h2load_rps "$1" -n "$3" -c "$CLIENTS" -m "$STREAMS" -t "$THREADS" "${GRPC_HEADERS[@]}" \
        -d "$2" "http://$ADDR$1"
}

# The median of h2load's per-request durations (--log-file: start, status, µs),
# counting only successful requests; prints milliseconds.
p50_ms() { # log-file
    awk -F'\t' '$2 >= 200 && $2 < 300 { print $3 }' "$1" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m / 1000 }'
}
