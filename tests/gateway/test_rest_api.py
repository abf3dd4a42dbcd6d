"""The REST API through saasodoo-gateway, with curl, against the real server: every
HTTP mapping in use, the error codes (400, 401, 403, 404, 405, 409, 412, 413, 501),
unknown JSON fields, field masks, the watch stream, request ids, and identity: sign-up,
sign-in, refresh, sign-out, API keys, and customers kept apart. Calls carry the
bootstrap admin's access token unless a test gives another (or none)."""
import json
import re
import subprocess
import time

import pytest

import gateway_support as gs
from gateway_support import assert_error, call, create_tenant, sign_in, sign_up, support


# --- tenants -------------------------------------------------------------------------

def test_create_tenant_returns_the_operation(gateway):
    tid, op = create_tenant(gateway, display_name="Acme Ltd")
    assert re.fullmatch(r"operations/[0-9a-f-]{36}", op["name"]), op
    assert op["kind"] == "CREATE_TENANT"
    assert op["target"] == f"tenants/{tid}"
    # proto field names, defaults emitted, enums as names
    assert {"progress_percent", "step", "done", "state", "create_time"} <= set(op), op
    assert op["state"] in ("PENDING", "RUNNING", "SUCCEEDED")


def test_get_tenant(gateway):
    tid, _ = create_tenant(gateway, display_name="Get Me")
    resp = call(gateway, "GET", f"/v1/tenants/{tid}")
    assert resp.status == 200, resp
    t = resp.json()
    assert t["name"] == f"tenants/{tid}"
    assert t["display_name"] == "Get Me"
    assert t["plan"] == "plans/basic"
    assert t["state"] in ("PROVISIONING", "ACTIVE")
    assert t["database_strategy"] == "SHARED"
    assert t["etag"]
    assert t["url"]
    assert resp.headers["content-type"].startswith("application/json")


def test_list_tenants_pages_and_filters(gateway):
    owner = support.unique_owner()
    ids = []
    for i in range(3):
        tid = support.unique_id("gl")
        resp = call(gateway, "POST", "/v1/tenants",
                    {"tenant_id": tid, "tenant": {"plan": "plans/basic", "owner": owner}})
        assert resp.status == 200, resp
        ids.append(tid)
    flt = f'owner = "{owner}"'
    seen = []
    token = ""
    for _ in range(5):
        q = f"/v1/tenants?page_size=2&filter={_quote(flt)}"
        if token:
            q += f"&page_token={_quote(token)}"
        resp = call(gateway, "GET", q)
        assert resp.status == 200, resp
        body = resp.json()
        assert body["total_size"] == 3
        seen += [t["name"] for t in body["tenants"]]
        token = body["next_page_token"]
        if not token:
            break
    assert seen == [f"tenants/{t}" for t in ids]


def test_list_tenants_accepts_camel_case_query_names(gateway):
    resp = call(gateway, "GET", "/v1/tenants?pageSize=1")
    assert resp.status == 200, resp
    assert len(resp.json()["tenants"]) <= 1


def test_update_tenant_with_update_mask_in_the_query(gateway):
    tid, _ = create_tenant(gateway)
    resp = call(gateway, "PATCH", f"/v1/tenants/{tid}?update_mask=display_name",
                {"display_name": "Renamed"})
    assert resp.status == 200, resp
    assert resp.json()["display_name"] == "Renamed"
    assert call(gateway, "GET", f"/v1/tenants/{tid}").json()["display_name"] == "Renamed"


def _patch_with_etag(gw, tid, fields):
    """PATCH with the current etag, again if provisioning changed the tenant meanwhile."""
    for _ in range(10):
        etag = call(gw, "GET", f"/v1/tenants/{tid}").json()["etag"]
        resp = call(gw, "PATCH", f"/v1/tenants/{tid}", dict(fields, etag=etag))
        if resp.status != 409:
            return resp
        time.sleep(0.2)
    return resp


def test_update_tenant_derives_the_mask_from_the_body(gateway):
    tid, _ = create_tenant(gateway)
    resp = _patch_with_etag(gateway, tid, {"display_name": "From body", "labels": {"tier": "gold"}})
    assert resp.status == 200, resp
    t = resp.json()
    assert t["display_name"] == "From body"
    assert t["labels"] == {"tier": "gold"}
    # lowerCamelCase JSON names work too
    resp = call(gateway, "PATCH", f"/v1/tenants/{tid}", {"displayName": "Camel"})
    assert resp.status == 200, resp
    assert resp.json()["display_name"] == "Camel"


def test_update_tenant_with_a_stale_etag_is_409(gateway):
    tid, _ = create_tenant(gateway)
    etag = call(gateway, "GET", f"/v1/tenants/{tid}").json()["etag"]
    assert _patch_with_etag(gateway, tid, {"display_name": "One"}).status == 200
    resp = call(gateway, "PATCH", f"/v1/tenants/{tid}", {"display_name": "Two", "etag": etag})
    assert_error(resp, 409, 10, "stale")


def test_update_tenant_of_an_unmutable_field_names_it(gateway):
    tid, _ = create_tenant(gateway)
    resp = call(gateway, "PATCH", f"/v1/tenants/{tid}?update_mask=plan", {"plan": "plans/premium"})
    assert_error(resp, 400, 3, "plan")


# --- errors --------------------------------------------------------------------------

def test_unknown_tenant_is_404(gateway):
    resp = call(gateway, "GET", "/v1/tenants/no-such-tenant-here")
    assert_error(resp, 404, 5, "tenants/no-such-tenant-here")


def test_unknown_operation_is_404(gateway):
    resp = call(gateway, "GET", "/v1/operations/00000000-0000-4000-8000-000000000000")
    assert_error(resp, 404, 5, "operations/00000000-0000-4000-8000-000000000000")


def test_unknown_path_is_404_in_the_error_shape(gateway):
    resp = call(gateway, "GET", "/v1/nothing/here/at/all")
    assert_error(resp, 404, 5, "/v1/nothing/here/at/all")


def test_wrong_method_is_405_in_the_error_shape(gateway):
    resp = call(gateway, "PUT", "/v1/tenants", {})
    assert_error(resp, 405, 12, "PUT")


def test_bad_tenant_id_is_400_naming_the_field_and_rule(gateway):
    resp = call(gateway, "POST", "/v1/tenants",
                {"tenant_id": "Bad_Id", "tenant": {"plan": "plans/basic"}})
    body = assert_error(resp, 400, 3, "tenant_id", "^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
    # the server's google.rpc.BadRequest detail comes through as JSON
    kinds = [d.get("@type") for d in body["details"]]
    assert "type.googleapis.com/google.rpc.BadRequest" in kinds, body


def test_reserved_tenant_id_is_400(gateway):
    resp = call(gateway, "POST", "/v1/tenants", {"tenant_id": "admin", "tenant": {"plan": "plans/basic"}})
    assert_error(resp, 400, 3, "tenant_id")


def test_unknown_json_field_is_400_naming_it(gateway):
    resp = call(gateway, "POST", "/v1/tenants",
                {"tenant_id": support.unique_id("uf"), "tenant": {"plan": "plans/basic"}, "bogus": 1})
    assert_error(resp, 400, 3, '"bogus"')


def test_unknown_nested_json_field_is_400_naming_its_path(gateway):
    resp = call(gateway, "POST", "/v1/tenants",
                {"tenant_id": support.unique_id("uf"), "tenant": {"plan": "plans/basic", "colour": "red"}})
    assert_error(resp, 400, 3, '"tenant.colour"')


def test_unknown_field_in_a_patch_body_is_400(gateway):
    tid, _ = create_tenant(gateway)
    resp = call(gateway, "PATCH", f"/v1/tenants/{tid}?update_mask=display_name",
                {"display_name": "x", "nickname": "y"})
    assert_error(resp, 400, 3, '"nickname"')


def test_wrongly_typed_json_field_is_400_naming_it(gateway):
    resp = call(gateway, "POST", "/v1/tenants", {"tenant_id": 42})
    assert_error(resp, 400, 3, '"tenant_id"')


def test_malformed_json_is_400(gateway):
    resp = call(gateway, "POST", "/v1/tenants", '{"tenant_id": ')
    assert_error(resp, 400, 3, "JSON")


def test_negative_page_size_is_400_naming_it(gateway):
    assert_error(call(gateway, "GET", "/v1/tenants?page_size=-1"), 400, 3, "page_size")


def test_bad_filter_is_400_naming_the_field(gateway):
    resp = call(gateway, "GET", "/v1/tenants?filter=" + _quote("colour = red"))
    assert_error(resp, 400, 3, "colour")


def test_existing_tenant_id_is_409(gateway):
    tid, _ = create_tenant(gateway)
    resp = call(gateway, "POST", "/v1/tenants", {"tenant_id": tid, "tenant": {"plan": "plans/basic"}})
    assert_error(resp, 409, 6, tid)


def test_body_over_the_cap_is_413(gateway):
    big = json.dumps({"tenant_id": "big-body", "tenant": {"display_name": "x" * (1 << 20)}})
    resp = call(gateway, "POST", "/v1/tenants", big)
    assert_error(resp, 413, 8, "1048576")


def test_chunked_body_over_the_cap_is_413(gateway):
    big = json.dumps({"tenant_id": "big-body", "tenant": {"display_name": "x" * (1 << 20)}})
    resp = call(gateway, "POST", "/v1/tenants", big, headers={"Transfer-Encoding": "chunked"})
    assert_error(resp, 413, 8)


@pytest.mark.parametrize("path,verb,template,body",
                         [r for r in gs.http_rules() if r[0] not in support.IMPLEMENTED_METHODS],
                         ids=lambda v: v if isinstance(v, str) and v.startswith("/saasodoo") else "")
def test_unimplemented_methods_answer_501_naming_the_method(gateway, path, verb, template, body):
    url = gs.fill_template(template)
    resp = call(gateway, verb, url, {} if body else None)
    assert_error(resp, 501, 12, path)


def test_every_http_mapping_reaches_its_method(gateway):
    """Each mapping routes to the method it annotates: unimplemented ones name
    themselves; implemented ones answer anything but 'no such route'."""
    for path, verb, template, body in gs.http_rules():
        resp = call(gateway, verb, gs.fill_template(template), {} if body else None)
        msg = resp.json().get("message", "") if resp.status >= 400 else ""
        assert "no API method answers" not in msg and resp.status != 405, (path, resp)
        if path not in support.IMPLEMENTED_METHODS:
            assert path in msg, (path, resp)


# --- identity ------------------------------------------------------------------------

def test_a_call_without_credentials_is_401_in_the_error_shape(gateway):
    resp = call(gateway, "GET", "/v1/tenants?page_size=1", token=None)
    body = assert_error(resp, 401, 16)
    assert "authorization" in body["message"].lower() or "credential" in body["message"].lower(), body
    assert resp.headers["content-type"].startswith("application/json")


def test_a_call_with_a_bad_token_is_401(gateway):
    resp = call(gateway, "GET", "/v1/tenants?page_size=1", token="not-a-token")
    assert_error(resp, 401, 16)
    resp = call(gateway, "GET", "/v1/tenants?page_size=1", headers={"Authorization": "Basic YTpi"})
    assert_error(resp, 401, 16, "Bearer")


def test_a_watch_without_credentials_is_401_in_the_error_shape(gateway):
    _, op = create_tenant(gateway)
    resp = call(gateway, "GET", f"/v1/{op['name']}:watch", token=None)
    assert_error(resp, 401, 16)


def test_sign_up_gives_a_session_for_a_new_customer(gateway):
    email = f"{support.unique_id('su')}@customer.test"
    s = sign_up(gateway, email=email, display_name="Sign Up Ltd")
    assert s["access_token"] and s["refresh_token"], s
    assert s["access_token_expire_time"] and s["refresh_token_expire_time"], s
    assert s["user"]["email"] == email
    assert s["user"]["display_name"] == "Sign Up Ltd"
    assert s["user"]["role"] == "CUSTOMER"
    assert re.fullmatch(r"users/[A-Za-z0-9_-]+", s["user"]["name"]), s["user"]
    me = call(gateway, "GET", "/v1/users/me", token=s["access_token"])
    assert me.status == 200, me
    assert me.json()["name"] == s["user"]["name"]
    assert me.json()["email"] == email


def test_sign_up_checks_its_input(gateway):
    resp = call(gateway, "POST", "/v1/auth:signUp",
                {"email": f"{support.unique_id('sp')}@customer.test", "password": "short"}, token=None)
    assert_error(resp, 400, 3, "password")
    resp = call(gateway, "POST", "/v1/auth:signUp",
                {"email": "not-an-email", "password": "long-enough-password"}, token=None)
    assert_error(resp, 400, 3, "email")
    email = f"{support.unique_id('dup')}@customer.test"
    sign_up(gateway, email=email)
    resp = call(gateway, "POST", "/v1/auth:signUp",
                {"email": email, "password": "another-long-password"}, token=None)
    assert_error(resp, 409, 6)


def test_sign_in_with_the_right_and_the_wrong_password(gateway):
    email = f"{support.unique_id('si')}@customer.test"
    sign_up(gateway, email=email, password="the-right-password")
    s = sign_in(gateway, email, "the-right-password")
    assert s["user"]["email"] == email and s["access_token"]
    resp = call(gateway, "POST", "/v1/auth:signIn", {"email": email, "password": "the-wrong-password"},
                token=None)
    body = assert_error(resp, 401, 16)
    # the same answer for an unknown account: nothing tells which accounts exist
    other = call(gateway, "POST", "/v1/auth:signIn",
                 {"email": f"{support.unique_id('nobody')}@customer.test", "password": "the-wrong-password"},
                 token=None)
    assert_error(other, 401, 16)
    assert other.json()["message"] == body["message"]


def test_refresh_gives_a_new_session_and_retires_the_old_refresh_token(gateway):
    s = sign_up(gateway)
    resp = call(gateway, "POST", "/v1/auth:refresh", {"refresh_token": s["refresh_token"]}, token=None)
    assert resp.status == 200, resp
    fresh = resp.json()
    assert fresh["access_token"] and fresh["refresh_token"] != s["refresh_token"], fresh
    assert call(gateway, "GET", "/v1/users/me", token=fresh["access_token"]).status == 200
    again = call(gateway, "POST", "/v1/auth:refresh", {"refresh_token": s["refresh_token"]}, token=None)
    assert_error(again, 401, 16)
    assert_error(call(gateway, "POST", "/v1/auth:refresh", {"refresh_token": "garbage"}, token=None), 401, 16)


def test_sign_out_ends_the_refresh_token(gateway):
    s = sign_up(gateway)
    resp = call(gateway, "POST", "/v1/auth:signOut", {"refresh_token": s["refresh_token"]},
                token=s["access_token"])
    assert resp.status == 200, resp
    assert resp.json() == {}
    after = call(gateway, "POST", "/v1/auth:refresh", {"refresh_token": s["refresh_token"]}, token=None)
    assert_error(after, 401, 16)


def test_a_customer_gets_404_for_another_customers_tenant(gateway):
    owner = sign_up(gateway)
    other = sign_up(gateway)
    tid, op = create_tenant(gateway, token=owner["access_token"])
    assert call(gateway, "GET", f"/v1/tenants/{tid}", token=owner["access_token"]).status == 200
    # the other customer: not found, exactly as for a tenant that does not exist
    resp = call(gateway, "GET", f"/v1/tenants/{tid}", token=other["access_token"])
    assert_error(resp, 404, 5, f"tenants/{tid}")
    assert_error(call(gateway, "PATCH", f"/v1/tenants/{tid}?update_mask=display_name", {"display_name": "Mine"},
                      token=other["access_token"]), 404, 5)
    assert_error(call(gateway, "DELETE", f"/v1/tenants/{tid}", token=other["access_token"]), 404, 5)
    assert_error(call(gateway, "GET", f"/v1/{op['name']}", token=other["access_token"]), 404, 5)
    listed = call(gateway, "GET", "/v1/tenants?page_size=100", token=other["access_token"])
    assert listed.status == 200, listed
    assert f"tenants/{tid}" not in [t["name"] for t in listed.json()["tenants"]]
    # the admin sees every tenant
    assert call(gateway, "GET", f"/v1/tenants/{tid}").status == 200


def test_a_customer_may_not_use_the_admin_methods(gateway):
    s = sign_up(gateway)
    assert_error(call(gateway, "GET", "/v1/users", token=s["access_token"]), 403, 7)
    assert_error(call(gateway, "GET", "/v1/databaseServers", token=s["access_token"]), 403, 7)
    assert call(gateway, "GET", "/v1/users?page_size=5").status == 200


def test_an_api_key_works_as_a_bearer_credential_until_deleted(gateway):
    s = sign_up(gateway)
    parent = s["user"]["name"]
    resp = call(gateway, "POST", f"/v1/{parent}/apiKeys", {"display_name": "ci"}, token=s["access_token"])
    assert resp.status == 200, resp
    key = resp.json()
    assert key["secret"] and key["secret"].startswith(key["prefix"]), key
    me = call(gateway, "GET", "/v1/users/me", token=key["secret"])
    assert me.status == 200 and me.json()["name"] == parent, me
    listed = call(gateway, "GET", f"/v1/{parent}/apiKeys", token=s["access_token"]).json()["api_keys"]
    assert [k["name"] for k in listed] == [key["name"]]
    assert listed[0]["secret"] == "", "the secret is returned only when the key is made"
    assert call(gateway, "DELETE", f"/v1/{key['name']}", token=s["access_token"]).status == 200
    assert_error(call(gateway, "GET", "/v1/users/me", token=key["secret"]), 401, 16)


# --- operations ----------------------------------------------------------------------

def test_get_and_list_operations(gateway):
    tid, op = create_tenant(gateway)
    resp = call(gateway, "GET", f"/v1/{op['name']}")
    assert resp.status == 200, resp
    assert resp.json()["name"] == op["name"]
    flt = f'target = "tenants/{tid}"'
    resp = call(gateway, "GET", "/v1/operations?filter=" + _quote(flt))
    assert resp.status == 200, resp
    names = [o["name"] for o in resp.json()["operations"]]
    assert op["name"] in names


def _cancel_until_done(gw, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = call(gw, "POST", f"/v1/{name}:cancel", {})
        if resp.status == 412:
            return resp
        assert resp.status == 200, resp
        if resp.json()["done"]:
            return resp
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish within {timeout}s of cancelling")


def test_cancelling_a_finished_operation_is_412(gateway):
    _, op = create_tenant(gateway)
    _cancel_until_done(gateway, op["name"])
    resp = call(gateway, "POST", f"/v1/{op['name']}:cancel", {})
    assert_error(resp, 412, 9)


def test_watch_streams_newline_delimited_results_until_done(gateway):
    _, op = create_tenant(gateway)
    proc = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "40", "-H", f"Authorization: Bearer {gateway.token}",
                             gateway.url(f"/v1/{op['name']}:watch")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        assert first.endswith(b"\n"), first
        line = json.loads(first)
        assert set(line) == {"result"}, line
        assert line["result"]["name"] == op["name"]
        if not line["result"]["done"]:
            _cancel_until_done(gateway, op["name"])
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in (first + rest).decode().splitlines() if x.strip()]
    assert all(set(x) == {"result"} for x in lines), lines
    assert lines[-1]["result"]["done"] is True, lines[-1]


def test_watch_of_an_unknown_operation_is_404_in_the_error_shape(gateway):
    resp = call(gateway, "GET", "/v1/operations/00000000-0000-4000-8000-000000000000:watch")
    assert_error(resp, 404, 5, "operations/00000000-0000-4000-8000-000000000000")


# --- backup downloads ----------------------------------------------------------------

def _wait_done(gw, name, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        resp = call(gw, "GET", f"/v1/{name}")
        assert resp.status == 200, resp
        if resp.json().get("done"):
            return resp.json()
        time.sleep(0.3)
    raise AssertionError(f"{name} did not finish within {timeout} s")


def test_backup_part_download_is_a_file(gateway):
    import hashlib
    tid, op = create_tenant(gateway)
    assert _wait_done(gateway, op["name"])["state"] == "SUCCEEDED"
    resp = call(gateway, "POST", f"/v1/tenants/{tid}/backups", {"description": "REST download"})
    assert resp.status == 200, resp
    bop = _wait_done(gateway, resp.json()["name"])
    assert bop["state"] == "SUCCEEDED", bop
    name = bop["result"]
    bid = name.rsplit("/", 1)[1]
    backup = call(gateway, "GET", f"/v1/{name}").json()
    assert backup["state"] == "COMPLETE"
    assert {p["name"] for p in backup["parts"]} >= {"database.dump", "manifest.json"}
    for part in backup["parts"]:
        resp = call(gateway, "GET", f"/v1/{name}:download?part={part['name']}", timeout=60)
        assert resp.status == 200, resp
        assert resp.headers["content-type"] == "application/octet-stream"
        assert resp.headers["content-disposition"] == \
            f'attachment; filename="{tid}-{bid}-{part["name"]}"'
        assert int(resp.headers["content-length"]) == int(part["size_bytes"]) == len(resp.body)
        assert hashlib.sha256(resp.body).hexdigest() == part["sha256"]

    url = f"/v1/{name}:download?part=database.dump"
    body = assert_error(call(gateway, "GET", url, token=None), 401, 16)
    assert "credential" in body["message"].lower() or "authorization" in body["message"].lower()
    customer = sign_up(gateway)
    resp = call(gateway, "GET", url, token=customer["access_token"])
    assert_error(resp, 403, 7)
    assert resp.headers["content-type"].startswith("application/json")
    assert_error(call(gateway, "GET", f"/v1/{name}:download?part=nope.bin"), 404, 5, "nope.bin")
    assert_error(call(gateway, "GET", f"/v1/{name}:download"), 400, 3, "part")
    assert_error(call(gateway, "GET", f"/v1/tenants/{tid}/backups/20200101-000000-abcdef:download"
                                      "?part=database.dump"), 404, 5, "does not exist")
    assert_error(call(gateway, "POST", url, {}), 405, 12)


# --- request ids and the access log --------------------------------------------------

def test_request_id_is_passed_to_the_server_and_echoed(gateway, server):
    rid = "rest-" + support.unique_id("rid")
    resp = call(gateway, "GET", "/v1/tenants?page_size=1", headers={"X-Request-Id": rid})
    assert resp.status == 200
    assert resp.headers.get("x-request-id") == rid
    support.wait_for(lambda: f"request_id={rid}" in server.log_text(), 5,
                     what="the server's access log line with the request id")
    support.wait_for(lambda: f"request_id={rid}" in gateway.log_text(), 5,
                     what="the gateway's access log line with the request id")


def test_request_id_is_generated_when_absent_or_invalid(gateway):
    resp = call(gateway, "GET", "/v1/tenants?page_size=1")
    rid = resp.headers.get("x-request-id", "")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", rid), rid
    resp = call(gateway, "GET", "/v1/tenants?page_size=1", headers={"X-Request-Id": "bad id with spaces"})
    assert resp.headers.get("x-request-id") not in ("", "bad id with spaces")


def test_request_id_is_echoed_on_errors(gateway):
    resp = call(gateway, "GET", "/v1/tenants/no-such-tenant-rid", headers={"X-Request-Id": "err-rid-1"})
    assert resp.status == 404
    assert resp.headers.get("x-request-id") == "err-rid-1"


def test_access_log_has_one_line_per_request(gateway):
    rid = "log-" + support.unique_id("rid")
    call(gateway, "GET", "/v1/tenants/no-such-tenant-log", headers={"X-Request-Id": rid})
    line = support.wait_for(
        lambda: next((ln for ln in gateway.log_text().splitlines() if f"request_id={rid}" in ln), None),
        5, what="the access log line")
    assert "method=GET" in line and 'path="/v1/tenants/no-such-tenant-log"' in line
    assert "status=404" in line and "duration_ms=" in line and "remote=127.0.0.1" in line
    assert sum(f"request_id={rid}" in ln for ln in gateway.log_text().splitlines()) == 1


def _quote(s):
    from urllib.parse import quote
    return quote(s, safe="")
