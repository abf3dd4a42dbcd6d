#!/usr/bin/env bash
# The run command: installs dependencies, builds, starts a local PostgreSQL cluster
# (created on first use), runs saasodoo-server in the foreground and saasodoo-gateway
# (REST API and web UI) beside it, both logging to the terminal. Ctrl-C (or SIGTERM)
# stops the gateway and the server gracefully, then PostgreSQL.
# `bash scripts/stop.sh` stops everything from another terminal.
#
# Runtime data lives outside the checkout (nothing is written into the repository):
#   SAASODOO_DATA_DIR       default /var/lib/saasodoo (PostgreSQL in pg/, socket in run/)
#   SAASODOO_PG_PORT        default 5544 (unix socket only)
#   SAASODOO_CONFIG         default config/saasodoo.yaml
#   SAASODOO_KEEP_POSTGRES  1 = leave PostgreSQL running when the server stops
# Any server setting can be overridden with SAASODOO_<SECTION>_<KEY>, e.g.
#   SAASODOO_GRPC_LISTEN=0.0.0.0:50051 bash scripts/run.sh
# The gateway takes SAASODOO_GATEWAY_LISTEN (default 127.0.0.1:8080),
# SAASODOO_GATEWAY_CORS_ORIGINS and the other SAASODOO_GATEWAY_* settings of
# `build/bin/saasodoo-gateway --help`; its backend is the server started here.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SAASODOO_ROOT"

BUILD_DIR=${SAASODOO_BUILD_DIR:-build}
CONFIG=${SAASODOO_CONFIG:-config/saasodoo.yaml}
SERVER=$BUILD_DIR/bin/saasodoo-server
GATEWAY=$BUILD_DIR/bin/saasodoo-gateway

bash scripts/deps.sh
bash scripts/build.sh || die "build failed"
[[ -x "$SERVER" ]] || die "$SERVER was not built"
[[ -x "$GATEWAY" ]] || die "$GATEWAY was not built"

if pid=$(server_pid); then
    die "saasodoo-server is already running (pid $pid); stop it with: bash scripts/stop.sh"
fi
if pid=$(gateway_pid); then
    die "saasodoo-gateway is already running (pid $pid); stop it with: bash scripts/stop.sh"
fi

gateway=""

cleanup() {
    if [[ -n "$gateway" ]] && kill -0 "$gateway" 2>/dev/null; then
        stop_pid "$gateway" 15 saasodoo-gateway
    fi
    rm -f "$SERVER_PID_FILE" "$GATEWAY_PID_FILE"
    if [[ "${SAASODOO_KEEP_POSTGRES:-0}" != "1" ]]; then
        pg_stop
    fi
}
trap cleanup EXIT

pg_init
pg_start
pg_create_db
pg_create_template

# The server follows this script's data locations unless told otherwise.
export SAASODOO_DATABASE_URL=${SAASODOO_DATABASE_URL:-"host=$PG_SOCKET_DIR port=$PG_PORT dbname=$DB_NAME user=postgres"}
export SAASODOO_PLATFORM_DATA_DIR=${SAASODOO_PLATFORM_DATA_DIR:-$DATA_DIR}
LISTEN=${SAASODOO_GRPC_LISTEN:-$(sed -n 's/^ *listen: *"\{0,1\}\([^"#]*\)"\{0,1\}.*/\1/p' "$CONFIG" | head -n 1)}
LISTEN=${LISTEN:-127.0.0.1:50051}
CLI=$BUILD_DIR/bin/saasodoo
CLI_SERVER=""
PY_ADDR=""
if [[ "$LISTEN" != "127.0.0.1:50051" ]]; then
    CLI_SERVER=" --server ${LISTEN/0.0.0.0/127.0.0.1}"
    PY_ADDR=" ${LISTEN/0.0.0.0/127.0.0.1}"
fi
export SAASODOO_GATEWAY_LISTEN=${SAASODOO_GATEWAY_LISTEN:-127.0.0.1:8080}
export SAASODOO_GATEWAY_BACKEND=${LISTEN/0.0.0.0/127.0.0.1}
WEB_URL="http://${SAASODOO_GATEWAY_LISTEN/0.0.0.0/127.0.0.1}/"

# The first admin: created by the server on its first start, with a password generated
# once and kept (mode 0600) in the data directory.
ADMIN_EMAIL=${SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_EMAIL:-admin@saasodoo.local}
ADMIN_PASSWORD_FILE=${SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD_FILE:-$DATA_DIR/admin-password}
if [[ ! -s "$ADMIN_PASSWORD_FILE" ]]; then
    (umask 077 && openssl rand -base64 18 | tr -d '/+=' >"$ADMIN_PASSWORD_FILE")
fi
chmod 600 "$ADMIN_PASSWORD_FILE"
export SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_EMAIL=$ADMIN_EMAIL
export SAASODOO_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD_FILE=$ADMIN_PASSWORD_FILE

cat <<BANNER

  saasodoo control plane
  ----------------------
  web UI        $WEB_URL
  REST API      ${WEB_URL}v1/   (OpenAPI: ${WEB_URL}openapi.json, health: ${WEB_URL}healthz)
  gRPC API      $LISTEN   (health, server reflection, saasodoo.v1.*)
  PostgreSQL    $PG_SOCKET_DIR/.s.PGSQL.$PG_PORT   database $DB_NAME   (data in $PG_DATA)
  config        $CONFIG

  Sign in as the first admin:
    email         $ADMIN_EMAIL
    password      $(cat "$ADMIN_PASSWORD_FILE")   (kept in $ADMIN_PASSWORD_FILE)
  (the first admin is made once; customers register at ${WEB_URL}register.html)

  Try it from another terminal:
    $CLI$CLI_SERVER login --email $ADMIN_EMAIL < $ADMIN_PASSWORD_FILE
    $CLI$CLI_SERVER tenants create acme --plan plans/basic --wait
    $CLI$CLI_SERVER tenants list
    $CLI$CLI_SERVER backups create acme --wait
    SAASODOO_EMAIL=$ADMIN_EMAIL SAASODOO_PASSWORD=\$(cat $ADMIN_PASSWORD_FILE) \\
      PYTHONPATH=$BUILD_DIR/python /usr/bin/python3 clients/python/example.py$PY_ADDR

  Open ${WEB_URL}login.html in a browser for the dashboard.

  Ctrl-C stops the gateway, the server and PostgreSQL (or run: bash scripts/stop.sh).

BANNER

server=""
stopping=0

on_signal() {
    stopping=1
    if [[ -n "$gateway" ]] && kill -0 "$gateway" 2>/dev/null; then
        log "stopping saasodoo-gateway (pid $gateway)"
        kill -TERM "$gateway" 2>/dev/null || true
    fi
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        log "stopping saasodoo-server (pid $server)"
        kill -TERM "$server" 2>/dev/null || true
    fi
}

trap on_signal INT TERM

"$SERVER" --config "$CONFIG" &
server=$!
echo "$server" >"$SERVER_PID_FILE"

# The gateway dials the server lazily, so it can start at once; until the server
# answers, API calls get 503 and /healthz says UNREACHABLE.
"$GATEWAY" --frontend "${SAASODOO_GATEWAY_FRONTEND:-$SAASODOO_ROOT/frontend}" &
gateway=$!
echo "$gateway" >"$GATEWAY_PID_FILE"

# `wait` returns early when a trapped signal arrives; keep waiting for the server.
set +e
while :; do
    wait "$server"
    rc=$?
    if ! kill -0 "$server" 2>/dev/null; then
        break
    fi
done
set -e

if [[ $stopping -eq 1 ]]; then
    log "saasodoo-server stopped (exit $rc)"
elif [[ $rc -ne 0 ]]; then
    log "saasodoo-server exited with status $rc"
fi
exit "$rc"
