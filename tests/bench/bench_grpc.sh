#!/usr/bin/env bash
# gRPC benchmark: h2load against grpc.health.v1.Health/Check and
# saasodoo.v1.TenantService/GetTenant in one run, on a private PostgreSQL and a freshly
# started saasodoo-server. Prints requests/s for both, their ratio (target >= 0.3) and the
# server's idle RSS (target < 30 MB). Not part of the test suite; see README.md here.
#
#   BENCH_REQUESTS  requests per method          (default 20000)
#   BENCH_CLIENTS   h2load -c, connections       (default 8)
#   BENCH_STREAMS   h2load -m, streams per conn  (default 16)
#   BENCH_THREADS   h2load -t, client threads    (default 1)
#   BENCH_WARMUP    warm-up requests per method  (default 2000)
#   BENCH_KEEP      1 = keep the temporary directory (logs) afterwards
#
# Exit status: 0 all targets met, 1 the benchmark could not run or saw errors,
# 2 it ran cleanly but a target was missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

BUILD_DIR=${SAASODOO_BUILD_DIR:-build}
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
SERVER=$BUILD_DIR/bin/saasodoo-server
PYDIR=$BUILD_DIR/python
PYTHON=/usr/bin/python3
CONFIG=$ROOT/config/saasodoo.yaml

REQUESTS=${BENCH_REQUESTS:-20000}
CLIENTS=${BENCH_CLIENTS:-8}
STREAMS=${BENCH_STREAMS:-16}
THREADS=${BENCH_THREADS:-1}
WARMUP=${BENCH_WARMUP:-2000}

RATIO_TARGET=0.3
RSS_TARGET_MB=30

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

for tool in h2load nghttp; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install nghttp2-client)"
done
if [[ ! -x "$SERVER" || ! -d "$PYDIR/saasodoo" ]]; then
    say "building first (bash scripts/build.sh)"
    bash scripts/build.sh >/dev/null || die "build failed"
fi

if [[ -n "${SAASODOO_PG_BIN:-}" ]]; then
    PG_BIN=$SAASODOO_PG_BIN
else
    PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
[[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL not found in $PG_BIN (apt-get install postgresql)"

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

TMP=$(mktemp -d /tmp/saasodoo-bench.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/pg" "$TMP/run" "$TMP/data"
if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$TMP/pg" "$TMP/run"
fi
chmod 700 "$TMP/pg"

SERVER_PID=""
PG_STARTED=0
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $PG_STARTED -eq 1 ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ "${BENCH_KEEP:-0}" == "1" ]]; then
        say "kept $TMP (server.log, postgresql.log)"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL on a private socket directory and port --------------------------------
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

# --- the server ------------------------------------------------------------------------
GRPC_PORT=$(free_port)
ADDR=127.0.0.1:$GRPC_PORT
say "starting saasodoo-server on $ADDR"
SAASODOO_GRPC_LISTEN=$ADDR \
    SAASODOO_DATABASE_URL="host=$TMP/run port=$PG_PORT dbname=saasodoo user=postgres" \
    SAASODOO_PLATFORM_DATA_DIR=$TMP/data \
    SAASODOO_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn} \
    "$SERVER" --config "$CONFIG" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

export PYTHONPATH=$PYDIR${PYTHONPATH:+:$PYTHONPATH}

# Waits until Health/Check answers SERVING (HealthCheckResponse{status: SERVING} is 08 01),
# using raw bytes so no health stubs are needed.
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

# --- idle RSS, after start and before any load ----------------------------------------
sleep 1
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
RSS_MB=$(awk -v kb="$RSS_KB" 'BEGIN {printf "%.1f", kb / 1024}')

# --- a tenant to read, and the request frames ------------------------------------------
# gRPC framing: 1 byte compression flag (0), 4-byte big-endian length, serialized message.
"$PYTHON" - "$ADDR" "$TMP" <<'PY' || die "could not create the benchmark tenant"
import struct, sys, grpc
from saasodoo.v1 import tenant_pb2, tenant_pb2_grpc
addr, tmp = sys.argv[1], sys.argv[2]
stub = tenant_pb2_grpc.TenantServiceStub(grpc.insecure_channel(addr))
stub.CreateTenant(tenant_pb2.CreateTenantRequest(
    tenant_id="bench", request_id="bench-create",
    tenant=tenant_pb2.Tenant(display_name="Benchmark", plan="plans/basic")), timeout=10)
req = tenant_pb2.GetTenantRequest(name="tenants/bench")
stub.GetTenant(req, timeout=10)
body = req.SerializeToString()
with open(tmp + "/get_tenant.frame", "wb") as f:
    f.write(b"\x00" + struct.pack(">I", len(body)) + body)
with open(tmp + "/health.frame", "wb") as f:
    f.write(b"\x00\x00\x00\x00\x00")
PY

HEALTH=/grpc.health.v1.Health/Check
GET=/saasodoo.v1.TenantService/GetTenant
GRPC_HEADERS=(-H 'content-type: application/grpc' -H 'te: trailers')

# h2load only sees HTTP status; check grpc-status once per method so errors are not
# counted as successes.
verify() { # path frame
    local out
    out=$(nghttp -v "${GRPC_HEADERS[@]}" -d "$2" "http://$ADDR$1" 2>&1 | tr -d '\r' | grep -a 'grpc-status' || true)
    if ! grep -qaE 'grpc-status: 0([^0-9]|$)' <<<"$out"; then
        die "$1 did not answer grpc-status 0: ${out:-no grpc-status}"
    fi
}
verify "$HEALTH" "$TMP/health.frame"
verify "$GET" "$TMP/get_tenant.frame"

run_h2load() { # path frame requests -> prints req/s; fails on any unsuccessful request
    local out rps total ok
    out=$(h2load -n "$3" -c "$CLIENTS" -m "$STREAMS" -t "$THREADS" "${GRPC_HEADERS[@]}" \
        -d "$2" "http://$ADDR$1" 2>&1) || die "h2load failed on $1: $out"
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    total=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' <<<"$out")
    ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    if [[ -z "$rps" || -z "$total" || "$ok" != "$total" ]]; then
        die "h2load on $1: $ok of $total requests succeeded"$'\n'"$out"
    fi
    echo "$rps"
}

say "warm-up: $WARMUP requests per method"
run_h2load "$HEALTH" "$TMP/health.frame" "$WARMUP" >/dev/null
run_h2load "$GET" "$TMP/get_tenant.frame" "$WARMUP" >/dev/null

say "load: $REQUESTS requests per method, h2load -c $CLIENTS -m $STREAMS -t $THREADS"
HEALTH_RPS=$(run_h2load "$HEALTH" "$TMP/health.frame" "$REQUESTS")
GET_RPS=$(run_h2load "$GET" "$TMP/get_tenant.frame" "$REQUESTS")

# The server must still answer correctly after the load.
verify "$GET" "$TMP/get_tenant.frame"
kill -0 "$SERVER_PID" 2>/dev/null || die "server died under load: $(tail -n 20 "$TMP/server.log")"

RATIO=$(awk -v a="$GET_RPS" -v b="$HEALTH_RPS" 'BEGIN {printf "%.2f", a / b}')
RATIO_OK=$(awk -v r="$RATIO" -v t="$RATIO_TARGET" 'BEGIN {print (r >= t) ? "ok" : "MISSED"}')
RSS_OK=$(awk -v m="$RSS_MB" -v t="$RSS_TARGET_MB" 'BEGIN {print (m < t) ? "ok" : "MISSED"}')

printf '\n'
printf 'saasodoo gRPC benchmark (%s requests, h2load -c %s -m %s -t %s, %s CPUs)\n' \
    "$REQUESTS" "$CLIENTS" "$STREAMS" "$THREADS" "$(nproc)"
printf '  %-40s %12s req/s\n' "grpc.health.v1.Health/Check" "$HEALTH_RPS"
printf '  %-40s %12s req/s\n' "saasodoo.v1.TenantService/GetTenant" "$GET_RPS"
printf '  %-40s %12s   (target >= %s: %s)\n' "ratio GetTenant / Health" "$RATIO" "$RATIO_TARGET" "$RATIO_OK"
printf '  %-40s %12s MB  (target < %s MB: %s)\n' "server idle RSS" "$RSS_MB" "$RSS_TARGET_MB" "$RSS_OK"

if [[ "$RATIO_OK" != ok || "$RSS_OK" != ok ]]; then
    exit 2
fi
