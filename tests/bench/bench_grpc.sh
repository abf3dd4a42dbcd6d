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
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

REQUESTS=${BENCH_REQUESTS:-20000}
CLIENTS=${BENCH_CLIENTS:-8}
STREAMS=${BENCH_STREAMS:-16}
THREADS=${BENCH_THREADS:-1}
WARMUP=${BENCH_WARMUP:-2000}

RATIO_TARGET=0.3
# GetTenant / Health measured before calls carried credentials (docs: tests/bench/README.md);
# the run reports how far authentication and the ownership check moved it.
FOUNDATION_RATIO=0.25
RSS_TARGET_MB=30

for tool in h2load nghttp; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install nghttp2-client)"
done
bench_require_build
bench_setup
bench_start_postgres
bench_start_server

# --- idle RSS, after start and before any load ----------------------------------------
sleep 1
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
RSS_MB=$(awk -v kb="$RSS_KB" 'BEGIN {printf "%.1f", kb / 1024}')

# --- a tenant to read, and the request frames ------------------------------------------
bench_create_tenant
verify "$HEALTH" "$TMP/health.frame"
verify "$GET" "$TMP/get_tenant.frame"

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
printf '  %-40s %12s   (GetTenant with a customer access token)\n' "" ""
printf '  %-40s %12s   (before credentials: %s, moved %s)\n' "ratio against the foundation" "" \
    "$FOUNDATION_RATIO" "$(awk -v r="$RATIO" -v f="$FOUNDATION_RATIO" 'BEGIN {printf "%+.2f", r - f}')"
printf '  %-40s %12s MB  (target < %s MB: %s)\n' "server idle RSS" "$RSS_MB" "$RSS_TARGET_MB" "$RSS_OK"

if [[ "$RATIO_OK" != ok || "$RSS_OK" != ok ]]; then
    exit 2
fi
