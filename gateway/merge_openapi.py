#!/usr/bin/env python3
"""Merges the per-file OpenAPI (Swagger 2.0) documents that protoc-gen-swagger writes
into the one document the gateway serves at /openapi.json, and writes the Go file that
embeds it.

    merge_openapi.py --version 0.1.0 --out-dir DIR [--services-dir DIR] FILE.swagger.json...

With --services-dir it also writes services.go: every service found (its operations'
tag) with its generated Register<Service>Handler, so a new service needs no gateway code.

Every operation keeps the operationId protoc-gen-swagger gives it (the RPC name) and
gains `x-grpc-method` (e.g. `saasodoo.v1.TenantService.GetTenant`) and a `default`
error response. Streaming responses are described as what the gateway sends: one JSON
object per line. Two files defining the same name differently, or the same path and
method twice, stop the build.
"""
import argparse
import json
import os
import sys

DESCRIPTION = """\
The saasodoo control-plane API over HTTP/JSON, served by saasodoo-gateway in front of the
gRPC API `saasodoo.v1`. Every method here is a gRPC method with a `google.api.http`
mapping: resource names travel whole in the path (`/v1/tenants/acme` fills
`name = "tenants/acme"`), request bodies and responses use the proto field names
(`tenant_id`, `display_name`), int64 values are JSON strings, enums are their names.

Errors come as `{"error", "message", "code", "details"}` where `code` is the gRPC status
code and the HTTP status follows from it (400 INVALID_ARGUMENT, 404 NOT_FOUND,
409 ALREADY_EXISTS/ABORTED, 412 FAILED_PRECONDITION, 501 UNIMPLEMENTED,
503 UNAVAILABLE, ...). Unknown JSON fields are refused with 400 naming the field.

Send `Authorization: Bearer <token>` to act as a user and `X-Request-Id` to trace a
request; the response echoes `X-Request-Id`.
"""

ERROR_DEFINITION = {
    "type": "object",
    "description": "The body of every error response.",
    "properties": {
        "error": {"type": "string", "description": "The error message (same as message)."},
        "message": {"type": "string", "description": "What went wrong, in a sentence."},
        "code": {"type": "integer", "format": "int32",
                 "description": "The gRPC status code, e.g. 5 for NOT_FOUND."},
        "details": {"type": "array", "items": {"$ref": "#/definitions/protobufAny"},
                    "description": "google.rpc error details such as BadRequest or "
                                   "saasodoo.v1.ErrorInfo, with their @type."},
    },
}

STREAM_ERROR_DEFINITION = {
    "type": "object",
    "description": "The error that ends a stream.",
    "properties": {
        "grpc_code": {"type": "integer", "format": "int32"},
        "http_code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "http_status": {"type": "string"},
        "details": {"type": "array", "items": {"$ref": "#/definitions/protobufAny"}},
    },
}

PROTOBUF_ANY = {
    "type": "object",
    "properties": {
        "type_url": {"type": "string"},
        "value": {"type": "string", "format": "byte"},
    },
}


def fail(msg):
    print(f"merge_openapi: {msg}", file=sys.stderr)
    sys.exit(1)


def merge(files, version):
    out = {
        "swagger": "2.0",
        "info": {"title": "saasodoo API", "version": version, "description": DESCRIPTION},
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "tags": [],
        "paths": {},
        "definitions": {},
    }
    tags = set()
    for path in sorted(files):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        package = "saasodoo.v1"
        for name, schema in doc.get("definitions", {}).items():
            have = out["definitions"].get(name)
            if have is not None and have != schema:
                fail(f"{path}: definition {name} differs from an earlier file's")
            out["definitions"][name] = schema
        for route, ops in doc.get("paths", {}).items():
            dest = out["paths"].setdefault(route, {})
            for method, op in ops.items():
                if method in dest:
                    fail(f"{path}: {method.upper()} {route} is defined twice")
                service = (op.get("tags") or ["?"])[0]
                tags.add(service)
                op["x-grpc-method"] = f"{package}.{service}.{op['operationId']}"
                ok = op.get("responses", {}).get("200")
                if ok and "(streaming responses)" in ok.get("description", ""):
                    ref = ok.get("schema", {}).get("$ref", "")
                    item = ref.rsplit("/", 1)[-1]
                    stream_name = f"streamResultOf{item[:1].upper()}{item[1:]}"
                    out["definitions"][stream_name] = {
                        "type": "object",
                        "description": "One line of the stream: `result` for each message, "
                                       "or `error` once when the stream fails.",
                        "properties": {
                            "result": {"$ref": ref},
                            "error": {"$ref": "#/definitions/runtimeStreamError"},
                        },
                    }
                    ok["description"] = ("A stream of newline-delimited JSON objects, one per "
                                         "line, sent as each message arrives: "
                                         "{\"result\": {...}} per message and, if the call "
                                         "fails after it started, one {\"error\": {...}}.")
                    ok["schema"] = {"$ref": f"#/definitions/{stream_name}"}
                op.setdefault("responses", {})["default"] = {
                    "description": "An error; the HTTP status follows from the gRPC code.",
                    "schema": {"$ref": "#/definitions/gatewayError"},
                }
                dest[method] = op
    out["definitions"]["gatewayError"] = ERROR_DEFINITION
    out["definitions"]["runtimeStreamError"] = STREAM_ERROR_DEFINITION
    out["definitions"].setdefault("protobufAny", PROTOBUF_ANY)
    out["tags"] = [{"name": t} for t in sorted(tags)]
    out["paths"] = dict(sorted(out["paths"].items()))
    out["definitions"] = dict(sorted(out["definitions"].items()))
    return out


GO_FILE = """\
// Code generated by gateway/merge_openapi.py. DO NOT EDIT.

// Package openapi holds the merged OpenAPI document of the saasodoo API.
package openapi

import _ "embed"

// Document is the OpenAPI (Swagger 2.0) document served at /openapi.json.
//
//go:embed openapi.json
var Document []byte
"""


SERVICES_GO = """\
// Code generated by gateway/merge_openapi.py. DO NOT EDIT.

// Package gwservices lists every saasodoo.v1 service with HTTP mappings and the
// function that registers its generated REST handlers.
package gwservices

import (
\t"context"

\t"github.com/grpc-ecosystem/grpc-gateway/runtime"
\t"google.golang.org/grpc"

\tv1 "github.com/saasodoo/saasodoo/gen/go/saasodoo/v1"
)

// Service is one gRPC service and the registration of its REST handlers.
type Service struct {
\tName     string
\tRegister func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// All holds every service of the OpenAPI document, in name order.
var All = []Service{
%s}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--services-dir", help="also write the Go list of services here")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    doc = merge(args.files, args.version)
    if args.services_dir:
        os.makedirs(args.services_dir, exist_ok=True)
        lines = "".join(f'\t{{"saasodoo.v1.{t["name"]}", v1.Register{t["name"]}Handler}},\n' for t in doc["tags"])
        with open(os.path.join(args.services_dir, "services.go"), "w", encoding="utf-8") as f:
            f.write(SERVICES_GO % lines)
    ops = sum(len(v) for v in doc["paths"].values())
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "openapi.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(os.path.join(args.out_dir, "openapi.go"), "w", encoding="utf-8") as f:
        f.write(GO_FILE)
    print(f"merge_openapi: {ops} operations from {len(args.files)} files")


if __name__ == "__main__":
    main()
