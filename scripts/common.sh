# shellcheck shell=bash
# Shared by scripts/run.sh and scripts/stop.sh: where the local platform keeps its data,
# how its PostgreSQL cluster is run, and the pid files of the server and the gateway.
# Source it; do not execute it.
#
#   SAASODOO_DATA_DIR      runtime data (default /var/lib/saasodoo)
#   SAASODOO_PG_DATA       PostgreSQL data directory (default $SAASODOO_DATA_DIR/pg)
#   SAASODOO_PG_SOCKET_DIR PostgreSQL unix socket directory (default $SAASODOO_DATA_DIR/run)
#   SAASODOO_PG_PORT       PostgreSQL port, i.e. the socket's name (default 5544)
#   SAASODOO_PG_BIN        PostgreSQL server binaries (default /usr/lib/postgresql/<newest>/bin)
#   SAASODOO_DB_NAME       control-plane database (default saasodoo)
#
# PostgreSQL refuses to run as root, so as root its binaries run as the `postgres` user
# (runuser) on directories that user owns. These directories live outside the checkout,
# which may sit where `postgres` cannot reach (e.g. under /root).

# shellcheck disable=SC2034  # used by the scripts that source this file
SAASODOO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DATA_DIR=${SAASODOO_DATA_DIR:-/var/lib/saasodoo}
PG_DATA=${SAASODOO_PG_DATA:-$DATA_DIR/pg}
PG_SOCKET_DIR=${SAASODOO_PG_SOCKET_DIR:-$DATA_DIR/run}
PG_PORT=${SAASODOO_PG_PORT:-5544}
PG_LOG_DIR=$DATA_DIR/log
PG_LOG=$PG_LOG_DIR/postgresql.log
DB_NAME=${SAASODOO_DB_NAME:-saasodoo}
SERVER_PID_FILE=$DATA_DIR/saasodoo-server.pid
GATEWAY_PID_FILE=$DATA_DIR/saasodoo-gateway.pid

if [[ -n "${SAASODOO_PG_BIN:-}" ]]; then
    PG_BIN=$SAASODOO_PG_BIN
else
    PG_BIN=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -d "$PG_BIN" ]] || PG_BIN=""
    PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
fi

if [[ $EUID -eq 0 ]]; then
    PG_USER=postgres
else
    PG_USER=$(id -un)
fi

log() { printf 'saasodoo: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Runs a PostgreSQL binary as the cluster's owner, from a directory that user can read.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

pg_running() {
    [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# Creates the cluster once, then (re)writes the settings this script owns.
pg_init() {
    [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL not found in $PG_BIN (bash scripts/deps.sh)"
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "user postgres does not exist (is the postgresql package installed?)"
    fi
    mkdir -p "$DATA_DIR" "$PG_DATA" "$PG_SOCKET_DIR" "$PG_LOG_DIR"
    chmod 755 "$DATA_DIR"
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_USER:$PG_USER" "$PG_DATA" "$PG_SOCKET_DIR" "$PG_LOG_DIR"
    fi
    chmod 700 "$PG_DATA"
    chmod 755 "$PG_SOCKET_DIR"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "creating the PostgreSQL cluster in $PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$PG_LOG_DIR/initdb.log" 2>&1 ||
            die "initdb failed; see $PG_LOG_DIR/initdb.log"
        echo "include_if_exists = 'saasodoo.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
    fi
    # The control plane talks over the unix socket, trusted and open only to the cluster's
    # owner (and root). Tenant apps come over TCP on 127.0.0.1 with their role's password.
    as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<HBA
# Written by scripts/run.sh on every start.
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
HBA
    as_pg tee "$PG_DATA/saasodoo.conf" >/dev/null <<CONF
# Written by scripts/run.sh on every start; edit postgresql.conf for your own settings.
listen_addresses = '127.0.0.1'
password_encryption = 'scram-sha-256'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
unix_socket_permissions = 0700
CONF
}

pg_start() {
    if pg_running; then
        log "PostgreSQL already running ($PG_DATA)"
        return 0
    fi
    log "starting PostgreSQL (socket $PG_SOCKET_DIR, port $PG_PORT, log $PG_LOG)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null ||
        die "PostgreSQL did not start; see $PG_LOG"
}

# Tenant apps and dedicated clusters outlive a server restart on purpose (the server adopts
# them again); stopping the platform stops them too.
tenant_processes_stop() {
    local f pid dir
    for f in "$DATA_DIR"/apps/*/pid; do
        [[ -f "$f" ]] || continue
        pid=$(cat "$f" 2>/dev/null)
        [[ "$pid" =~ ^[0-9]+$ ]] && kill -TERM -- "-$pid" 2>/dev/null
    done
    for dir in "$DATA_DIR"/clusters/*/data; do
        [[ -f "$dir/postmaster.pid" ]] || continue
        log "stopping the dedicated cluster in $dir"
        as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    done
}

pg_stop() {
    tenant_processes_stop
    if pg_running; then
        log "stopping PostgreSQL ($PG_DATA)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || true
    fi
}

psql_pg() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres "$@"
}

pg_create_db() {
    local exists
    exists=$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ||
        die "cannot query PostgreSQL at $PG_SOCKET_DIR:$PG_PORT"
    if [[ "$exists" != "1" ]]; then
        log "creating database $DB_NAME"
        psql_pg -d postgres -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null || die "CREATE DATABASE failed"
    fi
}

# The database tenant databases are cloned from. Without Odoo here, an empty one lets the
# platform run; docs/provisioning.md says how to prepare a real one with Odoo.
pg_create_template() {
    local exists
    exists=$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'saasodoo_template'") ||
        die "cannot query PostgreSQL at $PG_SOCKET_DIR:$PG_PORT"
    if [[ "$exists" != "1" ]]; then
        log "creating an empty template database saasodoo_template (prepare it with Odoo to serve Odoo: docs/provisioning.md)"
        psql_pg -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saasodoo_template') THEN CREATE ROLE saasodoo_template NOLOGIN; END IF; END \$\$" >/dev/null &&
            psql_pg -d postgres -c "CREATE DATABASE saasodoo_template" >/dev/null ||
            die "creating the template database failed"
    fi
}

# The process recorded in a pid file, if it is still running under the expected name.
pid_from_file() { # file comm-prefix
    local pid
    [[ -f "$1" ]] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]] || return 1
    echo "$pid"
}

# The saasodoo-server started by scripts/run.sh, if it is still running.
server_pid() {
    pid_from_file "$SERVER_PID_FILE" saasodoo-serve
}

# The saasodoo-gateway started by scripts/run.sh, if it is still running.
gateway_pid() {
    pid_from_file "$GATEWAY_PID_FILE" saasodoo-gatew
}

# Sends SIGTERM and waits up to $2 seconds, then SIGKILL.
stop_pid() { # pid seconds name
    local pid=$1 name=$3
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$name did not stop in $2 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
