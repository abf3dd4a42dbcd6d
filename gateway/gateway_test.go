package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/genproto/protobuf/field_mask"

	v1 "github.com/saasodoo/saasodoo/gen/go/saasodoo/v1"
)

func decode(t *testing.T, body string, v interface{}) error {
	t.Helper()
	return newStrictJSON().NewDecoder(strings.NewReader(body)).Decode(v)
}

func TestStrictDecoderAcceptsKnownFieldsInBothNamings(t *testing.T) {
	var req v1.CreateTenantRequest
	if err := decode(t, `{"tenant_id":"acme","tenant":{"displayName":"Acme","plan":"plans/basic","labels":{"a":"b"}}}`, &req); err != nil {
		t.Fatal(err)
	}
	if req.TenantId != "acme" || req.Tenant.DisplayName != "Acme" || req.Tenant.Labels["a"] != "b" {
		t.Fatalf("decoded %+v", req)
	}
}

func TestStrictDecoderNamesUnknownFields(t *testing.T) {
	cases := map[string]string{
		`{"tenant_id":"acme","bogus":1}`:                 `"bogus"`,
		`{"tenant":{"plan":"plans/basic","colour":"x"}}`: `"tenant.colour"`,
		`{"tenant_id":5}`:                                `"tenant_id"`,
		`{"tenant":{"labels":{"a":1}}}`:                  `"tenant.labels"`,
		`{"tenant":"x"}`:                                 `"tenant"`,
	}
	for body, want := range cases {
		var req v1.CreateTenantRequest
		err := decode(t, body, &req)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v should name %s", body, err, want)
		}
	}
}

func TestStrictDecoderIntoAFieldPointer(t *testing.T) {
	var req v1.UpdateTenantRequest
	if err := decode(t, `{"display_name":"x"}`, &req.Tenant); err != nil || req.Tenant.DisplayName != "x" {
		t.Fatalf("err %v tenant %+v", err, req.Tenant)
	}
	var req2 v1.UpdateTenantRequest
	if err := decode(t, `{"nickname":"x"}`, &req2.Tenant); err == nil || !strings.Contains(err.Error(), `"nickname"`) {
		t.Fatalf("err %v", err)
	}
}

func TestStrictDecoderEmptyBodyIsEOF(t *testing.T) {
	var req v1.CancelOperationRequest
	if err := decode(t, "  ", &req); err != io.EOF {
		t.Fatalf("want io.EOF, got %v", err)
	}
}

func TestFieldMasksAreMappedToProtoNames(t *testing.T) {
	req := &v1.UpdateTenantRequest{
		Tenant:     &v1.Tenant{},
		UpdateMask: &field_mask.FieldMask{Paths: []string{"DisplayName", "Labels.Tier", "Labels", "Etag", "Name", "odoo_version"}},
	}
	fixUpdateMask(req)
	want := []string{"display_name", "labels", "odoo_version"}
	if !reflect.DeepEqual(req.UpdateMask.Paths, want) {
		t.Fatalf("paths %v, want %v", req.UpdateMask.Paths, want)
	}
	ds := &v1.UpdateDatabaseServerRequest{UpdateMask: &field_mask.FieldMask{Paths: []string{"AcceptingTenants"}}}
	fixUpdateMask(ds)
	if !reflect.DeepEqual(ds.UpdateMask.Paths, []string{"accepting_tenants"}) {
		t.Fatalf("paths %v", ds.UpdateMask.Paths)
	}
}

func TestRequestIDRule(t *testing.T) {
	for id, ok := range map[string]bool{"abc": true, "a.b_c:d-e": true, "": false, "has space": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false, "ü": false} {
		if validRequestID(id) != ok {
			t.Errorf("validRequestID(%q) != %v", id, ok)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	h := corsHandler([]string{"https://a.example"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(299)
	}))
	r := httptest.NewRequest("OPTIONS", "/v1/tenants", nil)
	r.Header.Set("Origin", "https://a.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://a.example" {
		t.Fatalf("allowed preflight: %d %v", w.Code, w.Header())
	}
	r.Header.Set("Origin", "https://b.example")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refused preflight: %d %v", w.Code, w.Header())
	}
	r = httptest.NewRequest("GET", "/v1/tenants", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 299 {
		t.Fatalf("same-origin request: %d", w.Code)
	}
}

func TestBodyLimit(t *testing.T) {
	g := &gateway{cfg: &config{maxBodyBytes: 10}}
	h := g.limitBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/x", strings.NewReader("0123456789")))
	if w.Code != 200 || w.Body.String() != "0123456789" {
		t.Fatalf("at the limit: %d %q", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v1/x", strings.NewReader("0123456789A"))
	r.ContentLength = -1
	h.ServeHTTP(w, r)
	if w.Code != 413 || !strings.Contains(w.Body.String(), `"code":8`) {
		t.Fatalf("over the limit: %d %q", w.Code, w.Body.String())
	}
}

func TestStreamErrorBeforeTheFirstMessageGetsTheErrorShape(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &streamErrorWriter{ResponseWriter: rec}
	sw.WriteHeader(404)
	sw.Write([]byte(`{"error":{"grpc_code":5,"http_code":404,"message":"operation 'operations/x' not found","http_status":"Not Found","details":[]}}`))
	sw.finish()
	want := `{"error":"operation 'operations/x' not found","message":"operation 'operations/x' not found","code":5,"details":[]}`
	if rec.Code != 404 || rec.Body.String() != want {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{"DisplayName": "display_name", "displayName": "display_name", "plan": "plan"} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q", in, got)
		}
	}
}

func TestDownloadRouteAndFileName(t *testing.T) {
	m := downloadPath.FindStringSubmatch("/v1/tenants/acme/backups/20261126-101500-3f2a9c:download")
	if m == nil || m[1] != "acme" || m[2] != "20261126-101500-3f2a9c" {
		t.Fatalf("match %q", m)
	}
	for _, p := range []string{"/v1/tenants/acme/backups/b1", "/v1/tenants/acme/backups/b1:restore",
		"/v1/tenants/acme/backups:download", "/v1/tenants/a/b/backups/b1:download"} {
		if downloadPath.MatchString(p) {
			t.Errorf("%s should not be a download", p)
		}
	}
	if got := downloadFilename("acme", "b1", `x"; y/../z`); got != "acme-b1-x___y_.._z" {
		t.Errorf("file name %q", got)
	}
}
