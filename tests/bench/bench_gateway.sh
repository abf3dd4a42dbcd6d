#!/usr/bin/env bash
# REST gateway benchmark: GET /v1/tenants/bench through saasodoo-gateway (HTTP/1.1,
# h2load --h1) beside saasodoo.v1.TenantService/GetTenant over gRPC directly (h2load),
# against the same freshly started saasodoo-server in one run. Prints requests/s for
# both, their ratio (target: REST >= 0.2 of gRPC) and the median latency the gateway
# adds with one request in flight. Not part of the test suite; see README.md here.
#
#   BENCH_REQUESTS       requests per path under load        (default 20000)
#   BENCH_CLIENTS        gRPC: h2load -c connections         (default 8)
#   BENCH_STREAMS        gRPC: h2load -m streams per conn    (default 16)
#   BENCH_REST_CLIENTS   REST: h2load --h1 -c connections    (default 32)
#   BENCH_THREADS        h2load -t, client threads           (default 1)
#   BENCH_WARMUP         warm-up requests per path           (default 2000)
#   BENCH_LATENCY_REQUESTS  requests per path at one in flight, for p50 (default 2000)
#   BENCH_ACCESS_LOG     the gateway's access log during the run: false (default) or true
#   BENCH_KEEP           1 = keep the temporary directory (logs) afterwards
#
# Exit status: 0 the target was met, 1 the benchmark could not run or saw errors,
# 2 it ran cleanly but the target was missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

GATEWAY=$BUILD_DIR/bin/saasodoo-gateway
REQUESTS=${BENCH_REQUESTS:-20000}
CLIENTS=${BENCH_CLIENTS:-8}
STREAMS=${BENCH_STREAMS:-16}
REST_CLIENTS=${BENCH_REST_CLIENTS:-32}
THREADS=${BENCH_THREADS:-1}
WARMUP=${BENCH_WARMUP:-2000}
LAT_REQUESTS=${BENCH_LATENCY_REQUESTS:-2000}

RATIO_TARGET=0.2

for tool in h2load nghttp curl; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install nghttp2-client curl)"
done
bench_require_build "$GATEWAY"
bench_setup
bench_start_postgres
bench_start_server
bench_create_tenant
verify "$GET" "$TMP/get_tenant.frame"

# --- the gateway in front of the same server ----------------------------------------
GW_PORT=$(free_port)
GW=127.0.0.1:$GW_PORT
say "starting saasodoo-gateway on $GW (backend $ADDR)"
"$GATEWAY" --listen "$GW" --backend "$ADDR" --frontend "" \
    --access-log "${BENCH_ACCESS_LOG:-false}" >"$TMP/gateway.log" 2>&1 &
BENCH_EXTRA_PIDS+=($!)
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$GW/healthz" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://$GW/healthz" || die "gateway not healthy: $(tail -n 20 "$TMP/gateway.log")"
REST_URL=http://$GW/v1/tenants/bench
AUTH_HEADER="Authorization: Bearer $BENCH_TOKEN"
body=$(curl -fsS -H "$AUTH_HEADER" "$REST_URL") || die "GET $REST_URL failed"
grep -q '"name":"tenants/bench"' <<<"$body" || die "GET $REST_URL answered something else: $body"

run_rest() { # requests clients -> req/s
    h2load_rps "GET $REST_URL" --h1 -n "$1" -c "$2" -t "$THREADS" -H "$AUTH_HEADER" "$REST_URL"
}

say "warm-up: $WARMUP requests per path"
run_h2load "$GET" "$TMP/get_tenant.frame" "$WARMUP" >/dev/null
run_rest "$WARMUP" "$REST_CLIENTS" >/dev/null

say "load: $REQUESTS requests per path; gRPC h2load -c $CLIENTS -m $STREAMS, REST h2load --h1 -c $REST_CLIENTS"
GRPC_RPS=$(run_h2load "$GET" "$TMP/get_tenant.frame" "$REQUESTS")
REST_RPS=$(run_rest "$REQUESTS" "$REST_CLIENTS")

say "latency: $LAT_REQUESTS requests per path, one in flight"
h2load_rps "$GET (latency)" -n "$LAT_REQUESTS" -c 1 -m 1 -t 1 "${GRPC_HEADERS[@]}" \
    -d "$TMP/get_tenant.frame" --log-file="$TMP/grpc-latency.log" "http://$ADDR$GET" >/dev/null
h2load_rps "GET $REST_URL (latency)" --h1 -n "$LAT_REQUESTS" -c 1 -t 1 \
    -H "$AUTH_HEADER" --log-file="$TMP/rest-latency.log" "$REST_URL" >/dev/null
GRPC_P50=$(p50_ms "$TMP/grpc-latency.log") || die "no successful gRPC request in the latency run"
REST_P50=$(p50_ms "$TMP/rest-latency.log") || die "no successful REST request in the latency run"

# Both must still answer correctly after the load.
verify "$GET" "$TMP/get_tenant.frame"
curl -fsS -H "$AUTH_HEADER" -o /dev/null "$REST_URL" || die "the gateway stopped answering: $(tail -n 20 "$TMP/gateway.log")"
kill -0 "$SERVER_PID" 2>/dev/null || die "server died under load: $(tail -n 20 "$TMP/server.log")"

RATIO=$(awk -v a="$REST_RPS" -v b="$GRPC_RPS" 'BEGIN {printf "%.2f", a / b}')
RATIO_OK=$(awk -v r="$RATIO" -v t="$RATIO_TARGET" 'BEGIN {print (r >= t) ? "ok" : "MISSED"}')
ADDED=$(awk -v a="$REST_P50" -v b="$GRPC_P50" 'BEGIN {printf "%.3f", a - b}')

printf '\n'
printf 'saasodoo REST gateway benchmark (%s requests, %s CPUs)\n' "$REQUESTS" "$(nproc)"
printf '  %-44s %12s req/s  (h2load -c %s -m %s)\n' "gRPC  GetTenant" "$GRPC_RPS" "$CLIENTS" "$STREAMS"
printf '  %-44s %12s req/s  (h2load --h1 -c %s)\n' "REST  GET /v1/tenants/bench" "$REST_RPS" "$REST_CLIENTS"
printf '  %-44s %12s        (target >= %s: %s)\n' "ratio REST / gRPC" "$RATIO" "$RATIO_TARGET" "$RATIO_OK"
printf '  %-44s %12s ms\n' "p50 latency, gRPC, one in flight" "$GRPC_P50"
printf '  %-44s %12s ms\n' "p50 latency, REST, one in flight" "$REST_P50"
printf '  %-44s %12s ms\n' "p50 latency the gateway adds" "$ADDED"

if [[ "$RATIO_OK" != ok ]]; then
    exit 2
fi
