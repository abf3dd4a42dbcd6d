#!/usr/bin/env bash
# Stops what scripts/run.sh started: saasodoo-gateway and saasodoo-server (gracefully,
# SIGTERM) and the local PostgreSQL cluster. Uses the same SAASODOO_DATA_DIR /
# SAASODOO_PG_* settings.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if pid=$(gateway_pid); then
    stop_pid "$pid" 15 saasodoo-gateway
    rm -f "$GATEWAY_PID_FILE"
else
    log "saasodoo-gateway is not running"
fi

if pid=$(server_pid); then
    log "stopping saasodoo-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # The server lets in-flight calls finish within its grace period (10 s by default).
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "saasodoo-server did not stop in 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$SERVER_PID_FILE"
else
    log "saasodoo-server is not running"
fi

if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    if pg_running; then
        pg_stop
    else
        log "PostgreSQL is not running"
    fi
fi
