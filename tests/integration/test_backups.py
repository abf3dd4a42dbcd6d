"""BackupService for real: a PostgreSQL and saasodoo-servers of this suite's own, the stand-in
app, filesystem backup storage shared by the servers. Rows and filestore files written before
a backup are checked after each restore (in place and into a new tenant); a damaged part is
refused with DATA_LOSS; a storage failure in the middle of a stream leaves no backup listed
as complete; retention prunes by grandfather-father-son with the servers' clock moved ahead
(SAASODOO_CLOCK_OFFSET_SECONDS); two servers sharing the store record a scheduled backup
once; restore drills record their result; a migration is preceded by a backup; admins
download parts whole and checksummed (a slow reader too), a damaged part ends in DATA_LOSS
without its last chunk.

The S3 round trip talks to s3rver (tests/s3), which stands in for Amazon S3: it implements
S3's REST API (SigV4, multipart uploads) on this machine."""
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest

import support
from support import assert_status, call_error, unique_id
from saasodoo.v1 import backup_pb2, backup_pb2_grpc, operation_pb2, tenant_pb2

Backup = backup_pb2.Backup
Operation = operation_pb2.Operation
DAY = 86400

SNAPSHOT_SQL = """
SELECT c.relname, (xpath('/row/n/text()', x))[1]::text, (xpath('/row/h/text()', x))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
LATERAL query_to_xml(format('SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) AS h FROM %I t', c.relname), false, true, '') x
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
"""


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bk_pg(workdir):
    cluster = support.make_cluster(workdir / "bk")
    try:
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop(mode="immediate")


@pytest.fixture(scope="module")
def store_dir(workdir):
    d = workdir / "bk-backups"
    d.mkdir(mode=0o755, exist_ok=True)
    return d


def bk_settings(store_dir, **backup):
    b = {"dir": f"\"{store_dir}\"", "scheduler_interval_seconds": 1, "drill_schedule": "disabled"}
    b.update(backup)
    return {"backup": b, "ops": {"retry_base_ms": 100, "max_attempts": 3}}


@pytest.fixture(scope="module")
def bk(workdir, bk_pg, store_dir):
    srv = support.Server(workdir / "bk", bk_pg, name="bk-main", settings=bk_settings(store_dir),
                         level="debug")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
        srv.cleanup_tenants()
        reports = srv.sanitizer_reports()
        assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


@pytest.fixture
def server(bk):
    """The suite's server, running and without a clock offset or fault switch."""
    if bk.running() and getattr(bk, "_extra", None):
        bk.stop()
    bk._extra = None
    if not bk.running():
        bk.start()
    yield bk
    reports = bk.sanitizer_reports()
    assert not reports, "saasodoo-server reported errors:\n" + "\n".join(reports[:20])


def restart(srv, **env):
    """Restarts srv with extra environment for this start only (e.g. a clock offset)."""
    if srv.running():
        srv.stop()
    srv._extra = env
    srv.start(extra_env={k: str(v) for k, v in env.items()})


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def stub(srv):
    return srv.stub(backup_pb2_grpc.BackupServiceStub)


def snapshot(port, tid, password):
    ok, out = support.tcp_login(port, tid, password, tid, SNAPSHOT_SQL)
    assert ok, out
    return {r[0]: (int(r[1]), r[2]) for r in (ln.split("|") for ln in out.splitlines() if ln)}


def write_rows(port, tid, password, n, tag):
    ok, out = support.tcp_login(
        port, tid, password, tid,
        "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL);"
        f"INSERT INTO notes (body) SELECT '{tag} ' || g FROM generate_series(1, {n}) g;"
        "SELECT count(*) FROM notes")
    assert ok, out
    return int(out.splitlines()[-1])


def files_of(srv, tid):
    """{relative path: bytes} of the tenant's filestore (without the stand-in's own record,
    which it writes again each time it starts)."""
    root = srv.filestore_dir / tid
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".standin"}


def write_files(srv, tid, files):
    root = srv.filestore_dir / tid
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def create_backup(srv, tid, description="", wait=True, expect_ok=True):
    op = stub(srv).CreateBackup(backup_pb2.CreateBackupRequest(
        parent=f"tenants/{tid}", description=description), timeout=10)
    assert op.kind == Operation.BACKUP and op.target == f"tenants/{tid}"
    if wait:
        op = support.wait_operation(srv, op.name, 120)
        if expect_ok:
            support.assert_operation_succeeded(srv, op)
            assert op.result.startswith(f"tenants/{tid}/backups/")
    return op


def get_backup(srv, name):
    return stub(srv).GetBackup(backup_pb2.GetBackupRequest(name=name), timeout=10)


def list_backups(srv, tid, flt=""):
    out, token = [], ""
    while True:
        page = stub(srv).ListBackups(backup_pb2.ListBackupsRequest(
            parent=f"tenants/{tid}", page_size=2, page_token=token, filter=flt), timeout=10)
        out.extend(page.backups)
        token = page.next_page_token
        if not token:
            return out


def restore(srv, name, target="", wait=True, expect_ok=True):
    op = stub(srv).RestoreBackup(backup_pb2.RestoreBackupRequest(
        name=name, target_tenant_id=target), timeout=10)
    assert op.kind == Operation.RESTORE
    if wait:
        op = support.wait_operation(srv, op.name, 180)
        if expect_ok:
            support.assert_operation_succeeded(srv, op)
    return op


def objects(store_dir, tid):
    """Committed objects of a tenant in the filesystem storage (hidden temporaries aside)."""
    root = Path(store_dir) / "tenants" / tid
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def tenant_with_data(srv, pg, prefix, plan="plans/basic", rows=30):
    tid, _ = support.create_tenant(srv, plan=plan, prefix=prefix)
    password = srv.db_password(tid)
    port = db_port(srv, tid, pg)
    write_rows(port, tid, password, rows, "before")
    write_files(srv, tid, {"filestore/ab/abcdef": os.urandom(5000), "notes.txt": b"kept\n"})
    return tid, password, port


def db_port(srv, tid, pg):
    t = support.get_tenant(srv, tid)
    sid = support.server_id(t)
    return support.list_servers(srv)[sid].port


def backup_name(tid, op):
    return op.result


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

def test_round_trip_in_place(server, bk_pg, store_dir):
    tid, password, port = tenant_with_data(server, bk_pg, "rt")
    before, files_before = snapshot(port, tid, password), files_of(server, tid)
    assert before["notes"][0] == 30 and len(files_before) == 2

    op = create_backup(server, tid, description="before the experiment")
    b = get_backup(server, op.result)
    assert b.state == Backup.COMPLETE and b.trigger == Backup.MANUAL
    assert b.description == "before the experiment" and b.plan == "plans/basic"
    assert b.postgres_version and b.odoo_version and b.complete_time.seconds >= b.create_time.seconds
    assert [p.name for p in b.parts] == ["database.dump", "files.tar", "manifest.json"]
    assert b.size_bytes == sum(p.size_bytes for p in b.parts) > 0
    assert all(len(p.sha256) == 64 for p in b.parts)
    bid = b.name.rsplit("/", 1)[1]
    assert objects(store_dir, tid) == [f"{bid}/database.dump", f"{bid}/files.tar", f"{bid}/manifest.json"]
    manifest = json.loads((store_dir / "tenants" / tid / bid / "manifest.json").read_text())
    assert manifest["tenant"] == tid and manifest["plan"] == "basic" and manifest["strategy"] == "SHARED"
    assert manifest["row_counts"]["public.notes"] == 30
    assert {p["name"]: p["sha256"] for p in manifest["parts"]} == {
        p.name: p.sha256 for p in b.parts if p.name != "manifest.json"}
    assert manifest["start_time"] and manifest["end_time"] and manifest["postgres_version"]

    # Change everything, then restore: the rows and files of the backup come back.
    write_rows(port, tid, password, 25, "after")
    ok, out = support.tcp_login(port, tid, password, tid, "DELETE FROM notes WHERE id <= 5")
    assert ok, out
    (server.filestore_dir / tid / "notes.txt").unlink()
    write_files(server, tid, {"new.bin": b"x" * 10})
    assert snapshot(port, tid, password) != before

    op = restore(server, b.name)
    assert op.result == f"tenants/{tid}"
    assert support.get_tenant(server, tid).state == tenant_pb2.Tenant.ACTIVE
    password = server.db_password(tid)
    assert snapshot(port, tid, password) == before
    assert files_of(server, tid) == files_before
    status, info = server.standin(tid)
    assert status == 200 and info["current_database"] == tid
    # The replaced database is gone; only the tenant's database remains.
    assert not bk_pg.exists("database", f"{tid}__old") and not bk_pg.exists("database", f"{tid}__restore")
    assert not (server.filestore_dir / f"{tid}.old").exists()


def test_restore_into_new_tenant(server, bk_pg):
    tid, password, port = tenant_with_data(server, bk_pg, "src", rows=12)
    before, files_before = snapshot(port, tid, password), files_of(server, tid)
    op = create_backup(server, tid)
    new = unique_id("copy")
    rop = restore(server, op.result, target=new)
    assert rop.target == f"tenants/{new}" and rop.result == f"tenants/{new}"
    t = support.get_tenant(server, new)
    assert t.state == tenant_pb2.Tenant.ACTIVE and t.plan == "plans/basic"
    npw = server.db_password(new)
    assert snapshot(db_port(server, new, bk_pg), new, npw) == before
    assert files_of(server, new) == files_before
    # The source is untouched, and each role reaches only its own database.
    assert snapshot(port, tid, password) == before
    ok, _ = support.tcp_login(port, new, npw, tid)
    assert not ok
    # The new tenant's id is taken now.
    err = call_error(stub(server).RestoreBackup, backup_pb2.RestoreBackupRequest(
        name=op.result, target_tenant_id=new), timeout=10)
    assert_status(err, grpc.StatusCode.ALREADY_EXISTS, new)


def test_damaged_part_is_refused(server, bk_pg, store_dir):
    tid, password, port = tenant_with_data(server, bk_pg, "dmg", rows=8)
    op = create_backup(server, tid)
    bid = op.result.rsplit("/", 1)[1]
    write_rows(port, tid, password, 3, "later")
    now = snapshot(port, tid, password)
    dump = store_dir / "tenants" / tid / bid / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))

    rop = restore(server, op.result, wait=True, expect_ok=False)
    assert rop.state == Operation.FAILED and rop.error.code == grpc.StatusCode.DATA_LOSS.value[0]
    assert "database.dump" in rop.error.message and "SHA-256" in rop.error.message
    # Nothing was touched.
    t = support.get_tenant(server, tid)
    assert t.state == tenant_pb2.Tenant.ACTIVE
    assert snapshot(port, tid, server.db_password(tid)) == now
    assert not bk_pg.exists("database", f"{tid}__restore")


def test_damaged_dump_into_new_tenant_leaves_nothing(server, bk_pg, store_dir):
    # A dump of several megabytes, checked while it streams into pg_restore: a byte changed
    # near its end is found only once pg_restore has most of it (a dump cut short is found
    # by its size before).
    tid, password, port = tenant_with_data(server, bk_pg, "dmgn", rows=2)
    ok, out = support.tcp_login(
        port, tid, password, tid,
        "CREATE TABLE blobs (id serial PRIMARY KEY, body text NOT NULL);"
        "INSERT INTO blobs (body) SELECT md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 120000) g")
    assert ok, out
    op = create_backup(server, tid)
    b = get_backup(server, op.result)
    dump_part = next(p for p in b.parts if p.name == "database.dump")
    assert dump_part.size_bytes > 3 * 1024 * 1024
    bid = op.result.rsplit("/", 1)[1]
    dump = store_dir / "tenants" / tid / bid / "database.dump"
    good = dump.read_bytes()
    for damaged, why in ((good[:-1500] + bytes([good[-1500] ^ 0xFF]) + good[-1499:], "SHA-256"),
                         (good[:-1] + bytes([good[-1] ^ 0x01]), "SHA-256"),
                         (good[:-7], "bytes in storage")):
        dump.write_bytes(damaged)
        new = unique_id("dmgcopy")
        rop = restore(server, op.result, target=new, expect_ok=False)
        assert rop.state == Operation.FAILED and rop.error.code == grpc.StatusCode.DATA_LOSS.value[0]
        assert "database.dump" in rop.error.message and why in rop.error.message, rop.error.message
        # the database made for the new tenant, its role and its filestore are gone
        assert not bk_pg.exists("database", new) and not bk_pg.exists("role", new)
        assert not (server.filestore_dir / new).exists()
    # the intact backup still restores
    dump.write_bytes(good)
    new = unique_id("dmgcopy")
    restore(server, op.result, target=new)
    ok, out = support.tcp_login(db_port(server, new, bk_pg), new, server.db_password(new), new,
                                "SELECT count(*) FROM blobs")
    assert ok and out.splitlines()[-1] == "120000", out


def test_storage_failure_leaves_nothing_complete(server, bk_pg, store_dir):
    tid, _, _ = tenant_with_data(server, bk_pg, "flt", rows=5)
    # The storage refuses in the middle of the first part, every time: the engine retries,
    # then the operation fails and the backup is FAILED with no object left behind.
    restart(server, SAASODOO_BACKUP_FAIL_AFTER_BYTES=2000)
    op = create_backup(server, tid, wait=True, expect_ok=False)
    assert op.state == Operation.FAILED and op.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "injected" in op.error.message
    backups = list_backups(server, tid)
    assert [b.state for b in backups] == [Backup.FAILED]
    assert list_backups(server, tid, "state = COMPLETE") == []
    assert objects(store_dir, tid) == []
    assert "retrying" in server.log_text() or "will retry" in server.log_text()

    # A storage that cannot make the backup's folder at all (a file in its place).
    restart(server)
    shutil.rmtree(store_dir / "tenants" / tid, ignore_errors=True)
    (store_dir / "tenants").mkdir(exist_ok=True)
    (store_dir / "tenants" / tid).write_text("in the way")
    try:
        op = create_backup(server, tid, wait=True, expect_ok=False)
        assert op.state == Operation.FAILED
        assert list_backups(server, tid, "state = COMPLETE") == []
        assert all(b.state == Backup.FAILED for b in list_backups(server, tid))
    finally:
        (store_dir / "tenants" / tid).unlink()
    # With the storage back, a backup succeeds.
    op = create_backup(server, tid)
    assert get_backup(server, op.result).state == Backup.COMPLETE


def gfs_expected(days, keep_daily, keep_weekly, keep_monthly, base):
    """The days GFS keeps of backups taken at base + day (newest first)."""
    times = sorted(days, reverse=True)
    keep = {times[0]}

    def buckets(key, n):
        last = None
        taken = 0
        for d in times:
            b = key(base + datetime.timedelta(days=d))
            if b == last:
                continue
            if taken == n:
                break
            keep.add(d)
            last = b
            taken += 1
    buckets(lambda t: t.date(), keep_daily)
    buckets(lambda t: t.isocalendar()[:2], keep_weekly)
    buckets(lambda t: (t.year, t.month), keep_monthly)
    return keep


def test_retention_prunes_by_gfs_with_a_moved_clock(server, bk_pg):
    tid, _, _ = tenant_with_data(server, bk_pg, "ret", rows=3)
    manual = create_backup(server, tid, description="kept by hand")
    pol = stub(server).UpdateBackupPolicy(backup_pb2.UpdateBackupPolicyRequest(
        policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", schedule="daily",
                                       time_of_day="00:30", keep_daily=2, keep_weekly=1,
                                       keep_monthly=0),
        update_mask=support.field_mask(["schedule", "time_of_day", "keep_daily", "keep_weekly",
                                        "keep_monthly"])), timeout=10)
    assert pol.overridden and pol.schedule == "daily" and pol.keep_daily == 2

    start = time.time()
    today = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    taken = []
    for day in (1, 2, 3, 9):
        restart(server, SAASODOO_CLOCK_OFFSET_SECONDS=day * DAY)
        taken.append(day)
        want = len(gfs_expected(taken, 2, 1, 0, today))

        def settled():
            sched = list_backups(server, tid, "trigger = SCHEDULED")
            idle = bk_pg.psql("SELECT count(*) FROM operations WHERE NOT done"
                              f" AND target = 'tenants/{tid}'") == "0"
            return idle and len(sched) == want and all(b.state == Backup.COMPLETE for b in sched)
        support.wait_for(settled, 120, interval=0.5, what=f"day {day}: {want} scheduled backups kept")
    sched = list_backups(server, tid, "trigger = SCHEDULED")
    kept_days = sorted(round((b.create_time.seconds - start) / DAY) for b in sched)
    assert set(kept_days) == gfs_expected(taken, 2, 1, 0, today)
    # The backup taken by hand is never pruned; the slot of each day was taken once.
    assert get_backup(server, manual.result).state == Backup.COMPLETE
    assert bk_pg.psql(f"SELECT count(*) FROM backup_slots WHERE scope = '{tid}'") == str(len(taken))


def test_scheduled_backup_once_with_two_servers(server, bk_pg, store_dir, workdir):
    tid, _, _ = tenant_with_data(server, bk_pg, "two", rows=2)
    stub(server).UpdateBackupPolicy(backup_pb2.UpdateBackupPolicyRequest(
        policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", schedule="hourly",
                                       keep_daily=5),
        update_mask=support.field_mask(["schedule", "keep_daily"])), timeout=10)
    other = support.Server(workdir / "bk", bk_pg, name=unique_id("bk-other"),
                           settings=bk_settings(store_dir))
    offset = 2 * 3600
    try:
        other.start(extra_env={"SAASODOO_CLOCK_OFFSET_SECONDS": str(offset)})
        restart(server, SAASODOO_CLOCK_OFFSET_SECONDS=offset)
        support.wait_for(lambda: [b.state for b in list_backups(server, tid, "trigger = SCHEDULED")]
                         == [Backup.COMPLETE], 120, interval=0.5, what="the scheduled backup")
        time.sleep(4)  # several scheduler rounds on both servers
        assert len(list_backups(server, tid, "trigger = SCHEDULED")) == 1
        assert bk_pg.psql(f"SELECT count(*) FROM operations WHERE kind = 'BACKUP' AND target = 'tenants/{tid}'"
                          " AND requester = 'system/backup-scheduler'") == "1"
    finally:
        other.kill()
        other.cleanup_tenants()


def test_restore_drill_records_its_result(server, bk_pg, store_dir):
    tid, _, _ = tenant_with_data(server, bk_pg, "drl", rows=4)
    # no scheduled backups: the drill takes the newest complete backup, this one
    stub(server).UpdateBackupPolicy(backup_pb2.UpdateBackupPolicyRequest(
        policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", schedule="disabled"),
        update_mask=support.field_mask(["schedule"])), timeout=10)
    op = create_backup(server, tid)
    restart(server, SAASODOO_BACKUP_DRILL_SCHEDULE="daily", SAASODOO_CLOCK_OFFSET_SECONDS=40 * DAY)
    support.wait_for(lambda: get_backup(server, op.result).last_drill != "", 120, interval=0.5,
                     what="the restore drill")
    assert get_backup(server, op.result).last_drill == "passed"
    assert not bk_pg.exists("database", f"{tid}__drill")
    # A damaged backup fails its drill, which says why.
    bid = op.result.rsplit("/", 1)[1]
    tar = store_dir / "tenants" / tid / bid / "files.tar"
    tar.write_bytes(tar.read_bytes()[:-10])
    restart(server, SAASODOO_BACKUP_DRILL_SCHEDULE="daily", SAASODOO_CLOCK_OFFSET_SECONDS=41 * DAY)
    support.wait_for(lambda: get_backup(server, op.result).last_drill.startswith("failed"), 120,
                     interval=0.5, what="the second drill")
    assert "files.tar" in get_backup(server, op.result).last_drill


def test_migration_is_preceded_by_a_backup(server, bk_pg):
    tid, _, _ = tenant_with_data(server, bk_pg, "pre", rows=6)
    support.lifecycle(server, "migrate", tid, target_strategy=tenant_pb2.DEDICATED, timeout=180)
    pre = list_backups(server, tid, "trigger = PRE_MIGRATION")
    assert len(pre) == 1 and pre[0].state == Backup.COMPLETE and pre[0].plan == "plans/basic"
    # The dedicated tenant restores into its own cluster.
    restore(server, pre[0].name)
    assert support.get_tenant(server, tid).state == tenant_pb2.Tenant.ACTIVE


def test_delete_and_bad_requests(server, bk_pg, store_dir):
    tid, _, _ = tenant_with_data(server, bk_pg, "del", rows=1)
    op = create_backup(server, tid)
    dop = stub(server).DeleteBackup(backup_pb2.DeleteBackupRequest(name=op.result), timeout=10)
    support.assert_operation_succeeded(server, support.wait_operation(server, dop.name, 60))
    err = call_error(get_backup, server, op.result)
    assert_status(err, grpc.StatusCode.NOT_FOUND, op.result)
    assert objects(store_dir, tid) == []

    s = stub(server)
    for call, req, needle in [
        (s.GetBackup, backup_pb2.GetBackupRequest(name="tenants/x"), "tenants/{tenant}/backups/{backup}"),
        (s.GetBackup, backup_pb2.GetBackupRequest(name=f"tenants/{tid}/backups/Bad_Id"), "backup id"),
        (s.CreateBackup, backup_pb2.CreateBackupRequest(parent=""), "parent"),
        (s.CreateBackup, backup_pb2.CreateBackupRequest(parent=f"tenants/{tid}", description="a\x01"), "control"),
        (s.ListBackups, backup_pb2.ListBackupsRequest(parent=f"tenants/{tid}", filter="state = DONE"), "COMPLETE"),
        (s.RestoreBackup, backup_pb2.RestoreBackupRequest(name=op.result, target_tenant_id="Bad!"), "target_tenant_id"),
        (s.GetBackupPolicy, backup_pb2.GetBackupPolicyRequest(name=f"tenants/{tid}/policy"), "backupPolicy"),
        (s.UpdateBackupPolicy, backup_pb2.UpdateBackupPolicyRequest(
            policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", schedule="weekly"),
            update_mask=support.field_mask(["schedule"])), "hourly, daily or disabled"),
        (s.UpdateBackupPolicy, backup_pb2.UpdateBackupPolicyRequest(
            policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", time_of_day="25:00"),
            update_mask=support.field_mask(["time_of_day"])), "HH:MM"),
        (s.UpdateBackupPolicy, backup_pb2.UpdateBackupPolicyRequest(
            policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy", keep_daily=-1),
            update_mask=support.field_mask(["keep_daily"])), "keep_daily"),
        (s.UpdateBackupPolicy, backup_pb2.UpdateBackupPolicyRequest(
            policy=backup_pb2.BackupPolicy(name=f"tenants/{tid}/backupPolicy"),
            update_mask=support.field_mask(["etag"])), "update_mask"),
    ]:
        err = call_error(call, req, timeout=10)
        assert_status(err, grpc.StatusCode.INVALID_ARGUMENT, needle)
    err = call_error(s.RestoreBackup, backup_pb2.RestoreBackupRequest(
        name=f"tenants/{tid}/backups/20200101-000000-abcdef"), timeout=10)
    assert_status(err, grpc.StatusCode.NOT_FOUND)
    err = call_error(s.ListBackups, backup_pb2.ListBackupsRequest(parent="tenants/nobody-here"), timeout=10)
    assert_status(err, grpc.StatusCode.NOT_FOUND)
    # The plan's policy, then an override with an etag.
    p = s.GetBackupPolicy(backup_pb2.GetBackupPolicyRequest(name=f"tenants/{tid}/backupPolicy"), timeout=10)
    assert not p.overridden and p.schedule == "daily" and p.time_of_day == "02:00" and p.keep_daily == 7
    p2 = s.UpdateBackupPolicy(backup_pb2.UpdateBackupPolicyRequest(
        policy=backup_pb2.BackupPolicy(name=p.name, keep_weekly=3, etag=p.etag),
        update_mask=support.field_mask(["keep_weekly"])), timeout=10)
    assert p2.overridden and p2.keep_weekly == 3 and p2.keep_daily == 7 and p2.etag != p.etag
    err = call_error(s.UpdateBackupPolicy, backup_pb2.UpdateBackupPolicyRequest(
        policy=backup_pb2.BackupPolicy(name=p.name, keep_weekly=4, etag=p.etag),
        update_mask=support.field_mask(["keep_weekly"])), timeout=10)
    assert_status(err, grpc.StatusCode.ABORTED, "stale")


# ---------------------------------------------------------------------------
# S3 (s3rver stands in for Amazon S3)
# ---------------------------------------------------------------------------

S3RVER = support.REPO / "tests" / "s3" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
S3_BUCKET = "backups"


@pytest.fixture
def s3rver(workdir):
    node = shutil.which("node")
    if not node or not S3RVER.exists():
        pytest.fail("s3rver is missing: run bash scripts/deps.sh (node, npm ci in tests/s3)")
    data = workdir / unique_id("s3rver")
    data.mkdir()
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    proc = subprocess.Popen(
        [node, "--openssl-legacy-provider", str(S3RVER), "-d", str(data), "-a", "127.0.0.1",
         "-p", str(port), "--service-endpoint", "localhost", "--configure-bucket", S3_BUCKET],
        stdout=open(workdir / f"s3rver-{port}.log", "ab"), stderr=subprocess.STDOUT)
    support.wait_for(lambda: _listening(port), 20, what="s3rver")
    yield f"http://127.0.0.1:{port}", data
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_s3_round_trip(server, bk_pg, store_dir, workdir, s3rver):
    endpoint, data = s3rver
    tid, password, port = tenant_with_data(server, bk_pg, "s3", rows=20)
    before, files_before = snapshot(port, tid, password), files_of(server, tid)
    server.stop()  # only the S3 server runs operations now
    s3srv = support.Server(workdir / "bk", bk_pg, name=unique_id("bk-s3"), settings=bk_settings(
        store_dir, storage="s3", s3_endpoint=f"\"{endpoint}\"", s3_bucket=S3_BUCKET,
        s3_prefix="platform", s3_access_key="S3RVER", s3_secret_key="S3RVER", s3_part_size_mb=5,
        s3_path_style=1))
    try:
        # the tenant's files as this server sees them
        shutil.copytree(server.filestore_dir / tid, s3srv.filestore_dir / tid)
        s3srv.start()
        op = create_backup(s3srv, tid)
        b = get_backup(s3srv, op.result)
        assert b.state == Backup.COMPLETE and len(b.parts) == 3
        new = unique_id("s3copy")
        restore(s3srv, op.result, target=new)
        assert snapshot(db_port(s3srv, new, bk_pg), new, s3srv.db_password(new)) == before
        assert files_of(s3srv, new) == files_before
    finally:
        s3srv.kill()
        s3srv.cleanup_tenants()
    # The objects are in the bucket, not in the filesystem storage.
    assert objects(store_dir, tid) == []


# ---------------------------------------------------------------------------
# downloads
# ---------------------------------------------------------------------------

def download(srv, name, part, token=None, pause=0.0):
    """The chunks of DownloadBackupPart, read one by one (pausing between reads)."""
    s = srv.stub(backup_pb2_grpc.BackupServiceStub, token=token)
    out = []
    for chunk in s.DownloadBackupPart(backup_pb2.DownloadBackupPartRequest(name=name, part=part),
                                      timeout=60):
        out.append(chunk)
        if pause:
            time.sleep(pause)
    return out


def assert_whole(chunks, part):
    """The chunks make up part exactly: in order, sized and checksummed as recorded."""
    import hashlib
    assert chunks, part.name
    offset = 0
    for c in chunks:
        assert c.offset == offset and c.total_size == part.size_bytes, (part.name, c.offset, offset)
        assert 0 < len(c.data) <= 1 << 20 or (part.size_bytes == 0 and len(chunks) == 1)
        offset += len(c.data)
    assert [bool(c.sha256) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    data = b"".join(c.data for c in chunks)
    assert len(data) == part.size_bytes
    assert hashlib.sha256(data).hexdigest() == part.sha256 == chunks[-1].sha256
    return data


def test_download_parts(server, bk_pg, store_dir):
    tid, _, _ = tenant_with_data(server, bk_pg, "dl", rows=20)
    # a filestore large enough for several chunks
    write_files(server, tid, {"filestore/cd/big": os.urandom(3 * 1024 * 1024 + 123)})
    op = create_backup(server, tid)
    b = get_backup(server, op.result)
    assert b.state == Backup.COMPLETE
    bid = op.result.rsplit("/", 1)[1]
    assert {p.name for p in b.parts} == {"database.dump", "files.tar", "manifest.json"}
    for part in b.parts:
        # a slow reader gets every chunk too: the server waits for it
        data = assert_whole(download(server, op.result, part.name,
                                     pause=0.05 if part.name == "files.tar" else 0), part)
        assert data == (store_dir / "tenants" / tid / bid / part.name).read_bytes()
        if part.name == "files.tar":
            assert part.size_bytes > 3 * 1024 * 1024
    manifest = json.loads(assert_whole(download(server, op.result, "manifest.json"),
                                       next(p for p in b.parts if p.name == "manifest.json")))
    assert manifest

    # every download is in the audit log, with the backup as target
    from saasodoo.v1 import admin_pb2, admin_pb2_grpc
    events = server.stub(admin_pb2_grpc.AdminServiceStub).ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(filter=f'target = "{op.result}"', page_size=100),
        timeout=10).audit_events
    downloads = [e for e in events if e.method.endswith("/DownloadBackupPart")]
    assert len(downloads) == len(b.parts) + 1 and all(e.result == "OK" for e in downloads), events

    # customers may not download, not even their own tenant's backups
    customer = server.sign_up()
    err = call_error(download, server, op.result, "database.dump", token=customer.access_token)
    assert_status(err, grpc.StatusCode.PERMISSION_DENIED)
    # without credentials
    raw = backup_pb2_grpc.BackupServiceStub(server.raw_channel())
    err = call_error(lambda: list(raw.DownloadBackupPart(backup_pb2.DownloadBackupPartRequest(
        name=op.result, part="database.dump"), timeout=10)))
    assert_status(err, grpc.StatusCode.UNAUTHENTICATED)

    # bad requests name the field; unknown backups and parts are NOT_FOUND
    for name, part, needle in [
        ("", "database.dump", "name"),
        ("tenants/x", "database.dump", "tenants/{tenant}/backups/{backup}"),
        (f"tenants/{tid}/backups/Bad_Id", "database.dump", "backup id"),
        (op.result, "", "part"),
        (op.result, "../database.dump", "part"),
        (op.result, ".hidden", "part"),
    ]:
        err = call_error(download, server, name, part)
        assert_status(err, grpc.StatusCode.INVALID_ARGUMENT, needle)
    err = call_error(download, server, op.result, "nothing.bin")
    assert_status(err, grpc.StatusCode.NOT_FOUND, "nothing.bin", "database.dump")
    err = call_error(download, server, f"tenants/{tid}/backups/20200101-000000-abcdef",
                     "database.dump")
    assert_status(err, grpc.StatusCode.NOT_FOUND, "does not exist")

    # a damaged part ends with DATA_LOSS, and its last chunk is never sent
    tar = store_dir / "tenants" / tid / bid / "files.tar"
    data = bytearray(tar.read_bytes())
    data[-1000] ^= 0xFF
    tar.write_bytes(bytes(data))
    got = []
    s = stub(server)
    with pytest.raises(grpc.RpcError) as e:
        for chunk in s.DownloadBackupPart(backup_pb2.DownloadBackupPartRequest(
                name=op.result, part="files.tar"), timeout=60):
            got.append(chunk)
    assert_status(e.value, grpc.StatusCode.DATA_LOSS, "files.tar", "SHA-256")
    assert "does not match its checksum" in server.log_text()
    assert got and not any(c.sha256 for c in got)
    assert sum(len(c.data) for c in got) < len(data)
    # a part gone from storage is DATA_LOSS too
    tar.unlink()
    err = call_error(download, server, op.result, "files.tar")
    assert_status(err, grpc.StatusCode.DATA_LOSS, "missing")


def test_download_of_a_failed_backup_is_refused(server, bk_pg):
    tid, _, _ = tenant_with_data(server, bk_pg, "dlf", rows=2)
    restart(server, SAASODOO_BACKUP_FAIL_AFTER_BYTES=2000)
    op = create_backup(server, tid, wait=True, expect_ok=False)
    assert op.state == Operation.FAILED
    [b] = list_backups(server, tid)
    assert b.state == Backup.FAILED
    err = call_error(download, server, b.name, "database.dump")
    assert_status(err, grpc.StatusCode.FAILED_PRECONDITION, "FAILED", "COMPLETE")
