#!/usr/bin/env python3
"""A short tour of the saasodoo API from Python.

Usage:
    PYTHONPATH=build/python /usr/bin/python3 clients/python/example.py [ADDRESS] [TENANT_ID]

ADDRESS defaults to 127.0.0.1:50051; TENANT_ID defaults to a fresh random id.
Credentials: SAASODOO_TOKEN (an access token or an API key), or SAASODOO_EMAIL and
SAASODOO_PASSWORD to sign in first.
Creates a tenant, prints the operation that provisions it, reads the tenant back and
lists the tenants on the same plan. Exits 1 with the gRPC status on failure.
"""
import os
import sys
import uuid

import grpc

from saasodoo.v1 import (identity_pb2, identity_pb2_grpc, operation_pb2, operation_pb2_grpc,
                         tenant_pb2, tenant_pb2_grpc)


def credentials(channel):
    """The bearer token to send: SAASODOO_TOKEN, or a session from signing in."""
    token = os.environ.get("SAASODOO_TOKEN", "")
    if not token and os.environ.get("SAASODOO_EMAIL"):
        session = identity_pb2_grpc.IdentityServiceStub(channel).SignIn(
            identity_pb2.SignInRequest(email=os.environ["SAASODOO_EMAIL"],
                                       password=os.environ.get("SAASODOO_PASSWORD", "")),
            timeout=10)
        token = session.access_token
    return [("authorization", f"Bearer {token}")] if token else []


def main(argv):
    address = argv[1] if len(argv) > 1 else "127.0.0.1:50051"
    tenant_id = argv[2] if len(argv) > 2 else f"example-{uuid.uuid4().hex[:8]}"

    with grpc.insecure_channel(address) as channel:
        tenants = tenant_pb2_grpc.TenantServiceStub(channel)
        operations = operation_pb2_grpc.OperationServiceStub(channel)
        try:
            md = credentials(channel)
            # Create: returns a long-running Operation at once. The request id makes the
            # call safe to retry: the same id and body give back the same operation.
            op = tenants.CreateTenant(
                tenant_pb2.CreateTenantRequest(
                    tenant_id=tenant_id,
                    tenant=tenant_pb2.Tenant(
                        plan="plans/basic",
                        display_name=f"Example {tenant_id}",
                        labels={"created-by": "example"},
                    ),
                    request_id=str(uuid.uuid4()),
                ),
                timeout=10, metadata=md,
            )
            print(f"operation {op.name}: kind={operation_pb2.Operation.Kind.Name(op.kind)} "
                  f"target={op.target} state={operation_pb2.Operation.State.Name(op.state)} done={op.done}")

            # The operation can be read again by name at any time.
            op = operations.GetOperation(operation_pb2.GetOperationRequest(name=op.name), timeout=10, metadata=md)
            print(f"operation {op.name} progress={op.progress_percent}% step={op.step!r}")

            # Get: the tenant record, in PROVISIONING until the operation finishes.
            tenant = tenants.GetTenant(tenant_pb2.GetTenantRequest(name=f"tenants/{tenant_id}"), timeout=10, metadata=md)
            print(f"tenant {tenant.name}: display_name={tenant.display_name!r} plan={tenant.plan} "
                  f"state={tenant_pb2.Tenant.State.Name(tenant.state)} "
                  f"database={tenant_pb2.DatabaseStrategy.Name(tenant.database_strategy)} etag={tenant.etag}")

            # List: filtered, paged with page_token / next_page_token.
            page_token, shown = "", 0
            while True:
                resp = tenants.ListTenants(
                    tenant_pb2.ListTenantsRequest(filter='plan = "plans/basic"', page_size=100,
                                                  page_token=page_token),
                    timeout=10, metadata=md,
                )
                for t in resp.tenants:
                    shown += 1
                    if shown <= 10:
                        print(f"  {t.name}  {tenant_pb2.Tenant.State.Name(t.state)}  {t.display_name}")
                page_token = resp.next_page_token
                if not page_token:
                    break
            print(f"{resp.total_size} tenants on plans/basic")
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
