#!/usr/bin/env bash
# Backup benchmark: on a tenant database of at least BENCH_DB_MB (default 200 MB, rows of
# generate_series + md5 text), the time of CreateBackup (request to operation done: pg_dump
# -Fc streamed into the filesystem storage while hashing, the filestore tar, the manifest)
# beside plain `pg_dump -Fc` into a file, and the time of RestoreBackup into a new tenant
# (the tenant and its empty database made, the dump streamed from storage into pg_restore and
# checked against its checksum on the way, the filestore likewise, row counts checked, app
# started) beside plain `createdb` + `pg_restore` of that file into the new database (what the
# plain tools do to restore a dump into a new place); both pairs in the same run, printed as
# throughput ratios (plain time / server time). Every
# timed run starts after a CHECKPOINT, so none pays for writing out the pages the one before
# it left dirty. Not part of the test suite; see README.md here.
#
#   BENCH_DB_MB   size of the tenant database   (default 200)
#   BENCH_ROUNDS  restore rounds (pg_restore, then RestoreBackup); the median one is reported
#                 (default 3)
#   BENCH_KEEP    1 = keep the temporary directory (logs) afterwards
#
# Targets: both ratios at least 0.9. Exit status: 0 targets met, 1 the benchmark could not
# run, 2 it ran but a target was missed (named on output).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

DB_MB=${BENCH_DB_MB:-200}
ROUNDS=${BENCH_ROUNDS:-3}
TEMPLATE=saasodoo_template
bench_require_build
bench_setup
bench_start_postgres

psql_admin() { # dbname sql
    as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP/run" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
say "preparing the template database $TEMPLATE"
{ psql_admin postgres "CREATE ROLE $TEMPLATE NOLOGIN" &&
    psql_admin postgres "CREATE DATABASE $TEMPLATE OWNER $TEMPLATE" &&
    psql_admin "$TEMPLATE" "SET ROLE $TEMPLATE; CREATE TABLE res_partner (id serial PRIMARY KEY, name text);
        INSERT INTO res_partner (name) SELECT 'p' || g FROM generate_series(1, 100) g"; } >/dev/null ||
    die "cannot make the template"

export SAASODOO_DBSTRATEGY_TEMPLATE_DATABASE=$TEMPLATE SAASODOO_DBSTRATEGY_TEMPLATE_OWNER=$TEMPLATE
export SAASODOO_DBSTRATEGY_PG_BIN_DIR=$PG_BIN SAASODOO_BACKUP_DRILL_SCHEDULE=disabled
BENCH_LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
bench_start_server
bench_admin_token

set +e
"$PYTHON" - "$ADDR" "$BENCH_ADMIN_TOKEN" "$TMP" "$PG_BIN" "$PG_PORT" "$DB_MB" "$ROUNDS" <<'PY'
import os, subprocess, sys, time

import grpc
from saasodoo.v1 import (backup_pb2, backup_pb2_grpc, operation_pb2, operation_pb2_grpc,
                         tenant_pb2, tenant_pb2_grpc)

addr, token, tmp, pg_bin, pg_port, db_mb, rounds = sys.argv[1:8]
db_mb, rounds = int(db_mb), max(1, int(rounds))
md = [("authorization", "Bearer " + token)]
ch = grpc.insecure_channel(addr)
tenants = tenant_pb2_grpc.TenantServiceStub(ch)
ops = operation_pb2_grpc.OperationServiceStub(ch)
backups = backup_pb2_grpc.BackupServiceStub(ch)


def fail(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def as_pg(argv):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + argv


def pg(tool, *args):
    p = subprocess.run(as_pg([f"{pg_bin}/{tool}", "-h", f"{tmp}/run", "-p", pg_port, "-U", "postgres",
                              *args]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
    if p.returncode:
        fail(f"{tool} {' '.join(args)}: {p.stdout.strip()[-400:]}")
    return p.stdout


def settle():
    """Writes out every dirty page before a timed run, so that it does not pay for the last."""
    pg("psql", "-X", "-q", "-d", "postgres", "-c", "CHECKPOINT")


def wait(op):
    last = op
    for last in ops.WatchOperation(operation_pb2.WatchOperationRequest(name=op.name), timeout=3600,
                                   metadata=md):
        pass
    if last.state != operation_pb2.Operation.SUCCEEDED:
        fail(f"{op.name} ended {operation_pb2.Operation.State.Name(last.state)}: {last.error.message}")
    return last


wait(tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
    tenant_id="bench", tenant=tenant_pb2.Tenant(plan="plans/basic")), timeout=30, metadata=md))
print(f"bench: filling tenant database 'bench' to at least {db_mb} MB", file=sys.stderr)
pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench", "-c",
   "SET ROLE bench; CREATE TABLE ledger (id bigserial PRIMARY KEY, account int NOT NULL, memo text NOT NULL)")
while True:
    size = int(pg("psql", "-X", "-A", "-t", "-d", "bench", "-c", "SELECT pg_database_size('bench')"))
    if size >= db_mb * 1024 * 1024:
        break
    rows = (db_mb * 1024 * 1024 - size) // 200 + 10000
    pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench", "-c",
       f"SET ROLE bench; INSERT INTO ledger (account, memo) SELECT g % 1000, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)"
       f" FROM generate_series(1, {rows}) g")
pg("psql", "-X", "-q", "-d", "bench", "-c", "VACUUM ANALYZE")
size = int(pg("psql", "-X", "-A", "-t", "-d", "bench", "-c", "SELECT pg_database_size('bench')"))

# plain pg_dump -Fc into a file, then the server's backup
plain_dir = os.path.join(tmp, "plain")
os.makedirs(plain_dir, exist_ok=True)
if os.geteuid() == 0:
    import pwd
    pw = pwd.getpwnam("postgres")
    os.chown(plain_dir, pw.pw_uid, pw.pw_gid)
dump = os.path.join(plain_dir, "plain.dump")
settle()
t0 = time.perf_counter()
pg("pg_dump", "-Fc", "-f", dump, "bench")
plain_dump = time.perf_counter() - t0
settle()
t0 = time.perf_counter()
op = wait(backups.CreateBackup(backup_pb2.CreateBackupRequest(parent="tenants/bench"), timeout=30,
                               metadata=md))
server_backup = time.perf_counter() - t0
b = backups.GetBackup(backup_pb2.GetBackupRequest(name=op.result), timeout=30, metadata=md)

# plain createdb + pg_restore of that file into it, then the server's restore into a new
# tenant, next to each other in each of `rounds` rounds; the round whose ratio is the median
# is reported (the machine's speed drifts more between rounds than within one)
restores = []
for i in range(1, rounds + 1):
    settle()
    t0 = time.perf_counter()
    # the plain tools' whole job for a dump going to a new place: a database, then the restore
    pg("createdb", f"plain_restore_{i}")
    pg("pg_restore", "--no-owner", "--no-acl", "-d", f"plain_restore_{i}", dump)
    plain_restore = time.perf_counter() - t0
    settle()
    t0 = time.perf_counter()
    wait(backups.RestoreBackup(backup_pb2.RestoreBackupRequest(
        name=b.name, target_tenant_id=f"bench-copy-{i}"), timeout=30, metadata=md))
    server_restore = time.perf_counter() - t0
    pg("dropdb", f"plain_restore_{i}")
    restores.append((plain_restore / server_restore, plain_restore, server_restore))
    print(f"bench: restore round {i}: pg_restore {plain_restore:.2f} s, RestoreBackup "
          f"{server_restore:.2f} s, ratio {plain_restore / server_restore:.2f}", file=sys.stderr)
r_restore, plain_restore, server_restore = sorted(restores)[len(restores) // 2]

mb = size / 1048576
dump_mb = os.path.getsize(dump) / 1048576
r_backup = plain_dump / server_backup
print(f"database                 {mb:8.1f} MB (dump {dump_mb:.1f} MB, backup {b.size_bytes / 1048576:.1f} MB in {len(b.parts)} parts)")
print(f"pg_dump -Fc to a file    {plain_dump:8.2f} s  {mb / plain_dump:8.1f} MB/s")
print(f"CreateBackup             {server_backup:8.2f} s  {mb / server_backup:8.1f} MB/s   ratio {r_backup:.2f} (target >= 0.9)")
print(f"createdb + pg_restore     {plain_restore:8.2f} s  {mb / plain_restore:8.1f} MB/s")
print(f"RestoreBackup (new)      {server_restore:8.2f} s  {mb / server_restore:8.1f} MB/s   ratio {r_restore:.2f} (target >= 0.9)")
if rounds > 1:
    print(f"  (restore: the median of {rounds} rounds; each ratio: "
          + ", ".join(f"{r:.2f}" for r, _, _ in restores) + ")")
missed = [n for n, r in (("backup", r_backup), ("restore", r_restore)) if r < 0.9]
if missed:
    print("bench: target missed: " + ", ".join(missed), file=sys.stderr)
    sys.exit(2)
PY
rc=$?
set -e
exit $rc
