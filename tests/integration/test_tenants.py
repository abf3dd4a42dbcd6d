"""TenantService: CreateTenant, GetTenant, ListTenants, UpdateTenant and their errors."""
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2

from support import assert_status, call_error, unique_id, unique_owner
from saasodoo.v1 import operation_pb2, operation_pb2_grpc, tenant_pb2, tenant_pb2_grpc

# These tests are about records and the API: the operations they record are parked in
# the queue (conftest.parked_operations), so tenants stay PROVISIONING and operations
# PENDING until a test acts on them. Provisioning is tested in test_provisioning.py and
# the suites beside it.
pytestmark = pytest.mark.usefixtures("parked_operations")

Tenant = tenant_pb2.Tenant
Operation = operation_pb2.Operation
INVALID = grpc.StatusCode.INVALID_ARGUMENT
OPERATION_NAME = re.compile(r"^operations/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def tenants(server):
    return server.stub(tenant_pb2_grpc.TenantServiceStub)


@pytest.fixture
def operations(server):
    return server.stub(operation_pb2_grpc.OperationServiceStub)


def create_request(tid, plan="plans/basic", display_name=None, labels=None, owner="",
                   odoo_version="", request_id=""):
    return tenant_pb2.CreateTenantRequest(
        tenant_id=tid,
        tenant=Tenant(plan=plan, display_name=display_name if display_name is not None else f"Tenant {tid}",
                      labels=labels or {}, owner=owner, odoo_version=odoo_version),
        request_id=request_id)


def create(tenants, tid=None, **kw):
    tid = tid or unique_id()
    op = tenants.CreateTenant(create_request(tid, **kw), timeout=10)
    return tid, op


def get(tenants, tid):
    return tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tid}"), timeout=10)


def list_all(tenants, filter="", page_size=0):
    """Pages through ListTenants; returns (tenant names in order, pages)."""
    names, pages, token = [], [], ""
    for _ in range(1000):
        resp = tenants.ListTenants(tenant_pb2.ListTenantsRequest(
            page_size=page_size, page_token=token, filter=filter), timeout=10)
        pages.append(resp)
        names.extend(t.name for t in resp.tenants)
        token = resp.next_page_token
        if not token:
            return names, pages
    raise AssertionError("ListTenants never returned an empty next_page_token")


def update(tenants, name, mask, etag="", **fields):
    t = Tenant(name=name, etag=etag, **fields)
    return tenants.UpdateTenant(tenant_pb2.UpdateTenantRequest(
        tenant=t, update_mask=field_mask_pb2.FieldMask(paths=mask)), timeout=10)


# ---------------------------------------------------------------------------
# CreateTenant
# ---------------------------------------------------------------------------

def test_create_returns_pending_operation_and_stores_provisioning_tenant(tenants):
    tid = unique_id()
    op = tenants.CreateTenant(create_request(tid, display_name="Acme Ltd", labels={"env": "test", "team": "a"},
                                             owner="users/alice", odoo_version="16.0"), timeout=10)
    assert OPERATION_NAME.match(op.name), op.name
    assert op.kind == Operation.CREATE_TENANT
    assert op.target == f"tenants/{tid}"
    assert op.done is False
    assert op.state == Operation.PENDING
    assert op.HasField("create_time") and op.create_time.seconds > 0

    t = get(tenants, tid)
    assert t.name == f"tenants/{tid}"
    assert t.display_name == "Acme Ltd"
    assert dict(t.labels) == {"env": "test", "team": "a"}
    assert t.owner == "users/alice"
    assert t.plan == "plans/basic"
    assert t.state == Tenant.PROVISIONING
    assert t.database_strategy == tenant_pb2.SHARED
    assert t.odoo_version == "16.0"
    assert t.etag != ""
    assert t.create_time.seconds > 0 and t.update_time.seconds > 0


def test_create_defaults_odoo_version(tenants):
    tid, _ = create(tenants)
    assert get(tenants, tid).odoo_version == "17.0"


@pytest.mark.parametrize("plan,strategy", [
    ("plans/basic", tenant_pb2.SHARED),
    ("plans/premium", tenant_pb2.DEDICATED),
    ("plans/enterprise", tenant_pb2.DEDICATED),
])
def test_database_strategy_follows_plan(tenants, plan, strategy):
    tid, _ = create(tenants, plan=plan)
    t = get(tenants, tid)
    assert t.plan == plan
    assert t.database_strategy == strategy


def test_output_only_fields_are_ignored_on_create(tenants):
    tid = unique_id()
    req = create_request(tid)
    req.tenant.name = "tenants/someone-else"
    req.tenant.state = Tenant.ACTIVE
    req.tenant.database_strategy = tenant_pb2.DEDICATED
    req.tenant.etag = "made-up"
    tenants.CreateTenant(req, timeout=10)
    t = get(tenants, tid)
    assert t.name == f"tenants/{tid}"
    assert t.state == Tenant.PROVISIONING
    assert t.database_strategy == tenant_pb2.SHARED
    assert t.etag != "made-up"
    assert_status(call_error(get, tenants, "someone-else"), grpc.StatusCode.NOT_FOUND)


def test_tenant_id_boundaries_accepted(tenants):
    shortest = "q" + uuid.uuid4().hex[:2]                  # 3 characters
    longest = "l" + uuid.uuid4().hex[:30] + "-abcdefgh"    # 40 characters
    assert len(longest) == 40
    for tid in (shortest, longest, unique_id("a-b-c")):
        create(tenants, tid)
        assert get(tenants, tid).name == f"tenants/{tid}"


@pytest.mark.parametrize("tid", [
    "",                       # missing
    "ab",                     # too short
    "a" * 41,                 # too long
    "Acme",                   # upper case
    "1acme",                  # starts with a digit
    "-acme",                  # starts with a hyphen
    "acme-",                  # ends with a hyphen
    "ac_me",                  # underscore
    "ac.me",                  # dot
    "ac me",                  # space
    "acmé",                   # non-ASCII
])
def test_create_rejects_bad_tenant_id(tenants, tid):
    err = call_error(tenants.CreateTenant, create_request(tid), timeout=10)
    assert_status(err, INVALID, "tenant_id")


@pytest.mark.parametrize("tid", ["www", "api", "admin", "app", "mail"])
def test_create_rejects_reserved_tenant_id(tenants, tid):
    err = call_error(tenants.CreateTenant, create_request(tid), timeout=10)
    assert_status(err, INVALID, "tenant_id")
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)


def test_create_without_tenant_or_plan_is_invalid(tenants):
    tid = unique_id()
    err = call_error(tenants.CreateTenant, tenant_pb2.CreateTenantRequest(tenant_id=tid), timeout=10)
    assert err.code() == INVALID, err
    err = call_error(tenants.CreateTenant, create_request(tid, plan=""), timeout=10)
    assert_status(err, INVALID, "plan")
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)


def test_create_with_unknown_plan_names_the_plan(tenants):
    tid = unique_id()
    err = call_error(tenants.CreateTenant, create_request(tid, plan="plans/platinum-xl"), timeout=10)
    assert err.code() in (grpc.StatusCode.NOT_FOUND, INVALID), err
    assert "platinum-xl" in (err.details() or ""), err.details()
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)


def test_create_with_malformed_plan_name_is_invalid(tenants):
    err = call_error(tenants.CreateTenant, create_request(unique_id(), plan="plans/"), timeout=10)
    assert err.code() in (grpc.StatusCode.NOT_FOUND, INVALID), err
    assert "plan" in (err.details() or "")


def test_create_duplicate_id_is_already_exists(tenants):
    tid, _ = create(tenants)
    err = call_error(tenants.CreateTenant, create_request(tid, plan="plans/premium"), timeout=10)
    assert_status(err, grpc.StatusCode.ALREADY_EXISTS, tid)
    # The first tenant is untouched.
    assert get(tenants, tid).plan == "plans/basic"


def test_request_id_retry_returns_the_same_operation(tenants, operations):
    tid, rid = unique_id(), str(uuid.uuid4())
    first = tenants.CreateTenant(create_request(tid, request_id=rid), timeout=10)
    second = tenants.CreateTenant(create_request(tid, request_id=rid), timeout=10)
    assert second.name == first.name
    assert second.kind == first.kind and second.target == first.target
    ops = operations.ListOperations(operation_pb2.ListOperationsRequest(
        filter=f'target = "tenants/{tid}"'), timeout=10)
    assert [o.name for o in ops.operations] == [first.name]


def test_request_id_reused_with_different_body_is_invalid(tenants):
    tid, rid = unique_id(), str(uuid.uuid4())
    first = tenants.CreateTenant(create_request(tid, display_name="One", request_id=rid), timeout=10)
    err = call_error(tenants.CreateTenant, create_request(tid, display_name="Two", request_id=rid), timeout=10)
    assert_status(err, INVALID, "request_id")
    other = unique_id()
    err = call_error(tenants.CreateTenant, create_request(other, display_name="One", request_id=rid), timeout=10)
    assert_status(err, INVALID, "request_id")
    assert_status(call_error(get, tenants, other), grpc.StatusCode.NOT_FOUND)
    assert get(tenants, tid).display_name == "One"
    # The original retry still works.
    again = tenants.CreateTenant(create_request(tid, display_name="One", request_id=rid), timeout=10)
    assert again.name == first.name


def test_distinct_request_ids_for_the_same_id_conflict(tenants):
    tid = unique_id()
    create(tenants, tid, request_id=str(uuid.uuid4()))
    err = call_error(tenants.CreateTenant, create_request(tid, request_id=str(uuid.uuid4())), timeout=10)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err


# ---------------------------------------------------------------------------
# GetTenant
# ---------------------------------------------------------------------------

def test_get_unknown_tenant_names_it(tenants):
    tid = unique_id("missing")
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND, tid)


@pytest.mark.parametrize("name", [
    "", "acme", "tenants/", "tenants", "tenant/acme", "operations/acme", "tenants/acme/backups/x",
    "tenants/Acme", "tenants/ac_me",
])
def test_get_with_malformed_name_is_invalid(tenants, name):
    err = call_error(tenants.GetTenant, tenant_pb2.GetTenantRequest(name=name), timeout=10)
    assert_status(err, INVALID, "name")


# ---------------------------------------------------------------------------
# ListTenants
# ---------------------------------------------------------------------------

def test_list_pages_in_creation_order_without_repeats(tenants):
    owner = unique_owner()
    ids = [create(tenants, owner=owner)[0] for _ in range(7)]
    names, pages = list_all(tenants, filter=f'owner = "{owner}"', page_size=3)
    assert names == [f"tenants/{i}" for i in ids]
    assert [len(p.tenants) for p in pages] == [3, 3, 1]
    assert all(p.total_size == 7 for p in pages), [p.total_size for p in pages]
    stamps = [(t.create_time.seconds, t.create_time.nanos) for p in pages for t in p.tenants]
    assert stamps == sorted(stamps)


def test_list_default_page_size_is_50_and_max_is_500(tenants):
    owner = unique_owner()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: create(tenants, owner=owner)[0], range(505)))
    flt = f'owner = "{owner}"'

    first = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt), timeout=20)
    assert len(first.tenants) == 50
    assert first.next_page_token != ""
    assert first.total_size == 505

    for size in (500, 501, 100000):
        big = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt, page_size=size), timeout=30)
        assert len(big.tenants) == 500, size
        assert big.next_page_token != ""
        rest = tenants.ListTenants(tenant_pb2.ListTenantsRequest(
            filter=flt, page_size=size, page_token=big.next_page_token), timeout=30)
        assert len(rest.tenants) == 5
        assert rest.next_page_token == ""
        seen = [t.name for t in big.tenants] + [t.name for t in rest.tenants]
        assert len(set(seen)) == 505
        assert set(seen) == {f"tenants/{i}" for i in ids}

    names, pages = list_all(tenants, filter=flt)
    assert [len(p.tenants) for p in pages] == [50] * 10 + [5]
    assert len(names) == len(set(names)) == 505


def test_list_page_boundaries_stay_stable_under_inserts(tenants):
    owner = unique_owner()
    flt = f'owner = "{owner}"'
    before = [create(tenants, owner=owner)[0] for _ in range(6)]
    page1 = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt, page_size=4), timeout=10)
    assert [t.name for t in page1.tenants] == [f"tenants/{i}" for i in before[:4]]
    after = [create(tenants, owner=owner)[0] for _ in range(3)]
    names = [t.name for t in page1.tenants]
    token = page1.next_page_token
    while token:
        resp = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt, page_size=4, page_token=token),
                                   timeout=10)
        names.extend(t.name for t in resp.tenants)
        token = resp.next_page_token
    assert names == [f"tenants/{i}" for i in before + after]


def test_list_negative_page_size_is_invalid(tenants):
    err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(page_size=-1), timeout=10)
    assert_status(err, INVALID, "page_size")


def test_list_garbled_page_token_is_invalid(tenants):
    owner = unique_owner()
    for _ in range(3):
        create(tenants, owner=owner)
    flt = f'owner = "{owner}"'
    page = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt, page_size=1), timeout=10)
    token = page.next_page_token
    assert token
    for bad in ("garbage", "!!!not-base64!!!", "AAAA", token[: len(token) // 2], token + "x" * 7):
        err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(
            filter=flt, page_size=1, page_token=bad), timeout=10)
        assert_status(err, INVALID, "page_token")


def test_list_page_token_with_another_filter_is_invalid(tenants):
    owner = unique_owner()
    for _ in range(3):
        create(tenants, owner=owner)
    page = tenants.ListTenants(tenant_pb2.ListTenantsRequest(
        filter=f'owner = "{owner}"', page_size=1), timeout=10)
    assert page.next_page_token
    for other in (f'owner = "{unique_owner()}"', "", f'owner = "{owner}" AND state = PROVISIONING'):
        err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(
            filter=other, page_size=1, page_token=page.next_page_token), timeout=10)
        assert_status(err, INVALID, "page_token")


def test_list_filters(tenants, operations):
    owner = unique_owner()
    basic1, _ = create(tenants, owner=owner, plan="plans/basic")
    basic2, op2 = create(tenants, owner=owner, plan="plans/basic")
    premium, _ = create(tenants, owner=owner, plan="plans/premium")
    create(tenants, owner=unique_owner(), plan="plans/basic")  # another owner's
    cancelled = operations.CancelOperation(operation_pb2.CancelOperationRequest(name=op2.name), timeout=10)
    assert cancelled.done
    assert get(tenants, basic2).state == Tenant.FAILED

    def names(flt):
        resp = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=flt, page_size=100), timeout=10)
        assert resp.total_size == len(resp.tenants), flt
        return [t.name for t in resp.tenants]

    o = f'owner = "{owner}"'
    assert names(o) == [f"tenants/{basic1}", f"tenants/{basic2}", f"tenants/{premium}"]
    assert names(f'state = PROVISIONING AND plan = "plans/basic" AND {o}') == [f"tenants/{basic1}"]
    assert names(f'{o} AND plan = "plans/premium"') == [f"tenants/{premium}"]
    assert names(f'state = FAILED AND {o}') == [f"tenants/{basic2}"]
    assert names(f'state = PROVISIONING AND {o}') == [f"tenants/{basic1}", f"tenants/{premium}"]
    assert names(f'database_strategy = DEDICATED AND {o}') == [f"tenants/{premium}"]
    assert names(f'state = ACTIVE AND {o}') == []
    assert names(f'owner = "{unique_owner()}"') == []


def test_list_without_filter_counts_everything(tenants):
    create(tenants)
    resp = tenants.ListTenants(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10)
    assert len(resp.tenants) == 1
    assert resp.total_size >= 1
    names, _ = list_all(tenants, page_size=500)
    assert len(names) == len(set(names)) == resp.total_size


def test_list_filter_with_unknown_field_names_it(tenants):
    err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(
        filter='colour = "red" AND state = ACTIVE'), timeout=10)
    assert_status(err, INVALID, "colour")


@pytest.mark.parametrize("flt", [
    "state =",
    "state = BOGUS",
    'owner = "users/x" AND',
    'owner "users/x"',
    'owner = "users/x',
    "= ACTIVE",
])
def test_list_malformed_filter_is_invalid(tenants, flt):
    err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(filter=flt), timeout=10)
    assert_status(err, INVALID, "filter")


# ---------------------------------------------------------------------------
# UpdateTenant
# ---------------------------------------------------------------------------

def test_update_display_name_and_labels(tenants):
    tid, _ = create(tenants, display_name="Before", labels={"a": "1"})
    name = f"tenants/{tid}"
    t0 = get(tenants, tid)

    t1 = update(tenants, name, ["display_name"], display_name="After", plan="plans/enterprise",
                labels={"ignored": "yes"})
    assert t1.display_name == "After"
    assert dict(t1.labels) == {"a": "1"}          # not in the mask
    assert t1.plan == "plans/basic"               # not in the mask
    assert t1.etag != t0.etag
    assert (t1.update_time.seconds, t1.update_time.nanos) >= (t0.update_time.seconds, t0.update_time.nanos)
    assert t1.create_time == t0.create_time

    t2 = update(tenants, name, ["labels"], labels={"tier": "gold", "env": "prod"})
    assert dict(t2.labels) == {"tier": "gold", "env": "prod"}
    assert t2.display_name == "After"
    assert t2.etag not in (t0.etag, t1.etag)

    t3 = update(tenants, name, ["display_name", "labels"], display_name="Both", labels={})
    assert t3.display_name == "Both" and dict(t3.labels) == {}
    assert t3.etag not in (t0.etag, t1.etag, t2.etag)

    stored = get(tenants, tid)
    assert stored.display_name == "Both" and dict(stored.labels) == {}
    assert stored.etag == t3.etag
    assert stored.state == Tenant.PROVISIONING and stored.plan == "plans/basic"


def test_update_with_current_etag_succeeds_and_stale_etag_is_aborted(tenants):
    tid, _ = create(tenants, display_name="v0")
    name = f"tenants/{tid}"
    e0 = get(tenants, tid).etag
    e1 = update(tenants, name, ["display_name"], etag=e0, display_name="v1").etag
    assert e1 != e0
    err = call_error(update, tenants, name, ["display_name"], etag=e0, display_name="stale")
    assert err.code() == grpc.StatusCode.ABORTED, err
    assert get(tenants, tid).display_name == "v1"
    # An empty etag means "don't check".
    assert update(tenants, name, ["display_name"], display_name="v2").etag not in (e0, e1)


@pytest.mark.parametrize("path", ["plan", "state", "owner", "name", "etag", "database_strategy",
                                  "create_time", "odoo_version", "no_such_field"])
def test_update_of_immutable_or_unknown_path_is_invalid(tenants, path):
    tid, _ = create(tenants, display_name="Same")
    before = get(tenants, tid)
    err = call_error(update, tenants, f"tenants/{tid}", ["display_name", path], display_name="Changed",
                     plan="plans/premium", owner="users/mallory", state=Tenant.ACTIVE)
    assert_status(err, INVALID, path)
    after = get(tenants, tid)
    assert after.display_name == "Same" and after.etag == before.etag


def test_update_with_empty_mask_is_invalid(tenants):
    tid, _ = create(tenants)
    err = call_error(update, tenants, f"tenants/{tid}", [], display_name="x")
    assert_status(err, INVALID, "update_mask")


def test_update_unknown_tenant_is_not_found(tenants):
    tid = unique_id("missing")
    err = call_error(update, tenants, f"tenants/{tid}", ["display_name"], display_name="x")
    assert_status(err, grpc.StatusCode.NOT_FOUND, tid)


@pytest.mark.parametrize("name", ["", "acme", "tenants/", "tenants/Bad_Id"])
def test_update_with_malformed_name_is_invalid(tenants, name):
    err = call_error(update, tenants, name, ["display_name"], display_name="x")
    assert err.code() == INVALID, err


# ---------------------------------------------------------------------------
# Values that are easy to get wrong on the way to and from the store
# ---------------------------------------------------------------------------

def test_create_and_update_times_are_now_in_utc(tenants):
    import time
    tid, op = create(tenants)
    now = time.time()
    t = get(tenants, tid)
    for label, ts in (("tenant create_time", t.create_time), ("tenant update_time", t.update_time),
                      ("operation create_time", op.create_time)):
        assert abs(ts.seconds + ts.nanos / 1e9 - now) < 60, f"{label} is {ts.ToJsonString()}, now is {now}"


@pytest.mark.parametrize("display_name", [
    "Café Ünïcødé ✓ 日本語 🚀",
    "quotes ' \" and back\\slash",
    "percent %s %d %n and braces {}",
])
def test_display_name_round_trips_exactly(tenants, display_name):
    tid, _ = create(tenants, display_name=display_name)
    assert get(tenants, tid).display_name == display_name
    t = update(tenants, f"tenants/{tid}", ["display_name"], display_name=display_name[::-1])
    assert t.display_name == display_name[::-1]
    assert get(tenants, tid).display_name == display_name[::-1]


def test_huge_display_name_is_rejected_or_kept_whole(tenants):
    tid, name = unique_id(), "x" * 100_000
    try:
        create(tenants, tid, display_name=name)
    except grpc.RpcError as e:
        assert_status(e, INVALID, "display_name")
        assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)
        return
    assert get(tenants, tid).display_name == name


def test_display_name_with_nul_is_rejected_or_kept_whole(tenants):
    tid = unique_id()
    try:
        create(tenants, tid, display_name="before\x00after")
    except grpc.RpcError as e:
        assert e.code() == INVALID, e
        return
    assert get(tenants, tid).display_name == "before\x00after", "the name was cut at the NUL byte"


def test_labels_round_trip_exactly(tenants):
    labels = {
        "plain": "value",
        "dots.and_under-scores": "Mixed.Case_value-1",
        "empty": "",
        "long": "v" * 63,
        "k" + "x" * 62: "max-length-key",
    }
    tid, _ = create(tenants, labels=labels)
    assert dict(get(tenants, tid).labels) == labels
    many = {f"k{i}": f"v{i}" for i in range(60)}
    t = update(tenants, f"tenants/{tid}", ["labels"], labels=many)
    assert dict(t.labels) == many
    assert dict(get(tenants, tid).labels) == many


@pytest.mark.parametrize("value", ['say "hi"', "o'brien", "back\\slash", "{}", "x" * 64, "é"])
def test_bad_label_value_is_rejected_naming_the_label(tenants, value):
    tid = unique_id()
    err = call_error(create, tenants, tid, labels={"note": value})
    assert_status(err, INVALID, "note")
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("key", ['quote"key', "json}{", "Upper", ""])
def test_bad_label_key_is_rejected_naming_it(tenants, key):
    tid = unique_id()
    err = call_error(create, tenants, tid, labels={key: "v"})
    assert_status(err, INVALID, "label")
    if key:
        assert key in err.details(), err.details()
    assert_status(call_error(get, tenants, tid), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("value", [
    "users/x' OR '1'='1",
    "users/x\" OR \"1\"=\"1",
    "users/x'; DROP TABLE tenants; --",
    "users/x\\",
    "users/%",
    "users/_",
])
def test_filter_values_are_not_interpreted(tenants, value):
    owner = unique_owner()
    create(tenants, owner=owner)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    try:
        resp = tenants.ListTenants(tenant_pb2.ListTenantsRequest(filter=f'owner = "{escaped}"', page_size=500),
                                   timeout=10)
    except grpc.RpcError as e:
        assert e.code() == INVALID, e
    else:
        assert [t.name for t in resp.tenants] == [], f"filter {value!r} matched other owners' tenants"
        assert resp.total_size == 0
    # The store is intact.
    assert len(list_all(tenants, filter=f'owner = "{owner}"')[0]) == 1


@pytest.mark.parametrize("template", [
    'owner="{o}"',
    '   owner   =   "{o}"   ',
    'owner = "{o}" AND plan="plans/basic"',
    'state=PROVISIONING AND owner="{o}"',
])
def test_filter_spacing_variants(tenants, template):
    owner = unique_owner()
    tid, _ = create(tenants, owner=owner)
    names, _ = list_all(tenants, filter=template.format(o=owner))
    assert names == [f"tenants/{tid}"]


def test_page_token_from_another_method_is_invalid(tenants, operations):
    for _ in range(2):
        create(tenants)
    ops = operations.ListOperations(operation_pb2.ListOperationsRequest(page_size=1), timeout=10)
    assert ops.next_page_token
    err = call_error(tenants.ListTenants, tenant_pb2.ListTenantsRequest(
        page_size=1, page_token=ops.next_page_token), timeout=10)
    assert_status(err, INVALID, "page_token")
    page = tenants.ListTenants(tenant_pb2.ListTenantsRequest(page_size=1), timeout=10)
    assert page.next_page_token
    err = call_error(operations.ListOperations, operation_pb2.ListOperationsRequest(
        page_size=1, page_token=page.next_page_token), timeout=10)
    assert_status(err, INVALID, "page_token")
