-- The control plane's first schema: plans, tenants, operations and request ids.

CREATE TABLE plans (
    id                    text PRIMARY KEY,
    display_name          text NOT NULL,
    description           text NOT NULL DEFAULT '',
    database_strategy     text NOT NULL CHECK (database_strategy IN ('SHARED', 'DEDICATED')),
    cpu_millicores        integer NOT NULL,
    memory_mb             integer NOT NULL,
    storage_gb            integer NOT NULL,
    max_db_connections    integer NOT NULL,
    odoo_workers          integer NOT NULL,
    backup_retention_days integer NOT NULL,
    price_minor           bigint NOT NULL,
    currency              text NOT NULL,
    billing_period        text NOT NULL,
    trial_days            integer NOT NULL,
    sort_order            integer NOT NULL DEFAULT 0,
    update_time           timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE tenants (
    id                text PRIMARY KEY,
    seq               bigserial NOT NULL UNIQUE,
    display_name      text NOT NULL DEFAULT '',
    owner             text NOT NULL DEFAULT '',
    plan_id           text NOT NULL REFERENCES plans (id),
    state             text NOT NULL,
    state_reason      text NOT NULL DEFAULT '',
    database_strategy text NOT NULL,
    database_server   text NOT NULL DEFAULT '',
    url               text NOT NULL DEFAULT '',
    odoo_version      text NOT NULL,
    labels            jsonb NOT NULL DEFAULT '{}',
    version           bigint NOT NULL DEFAULT 1,
    create_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delete_time       timestamptz
);
CREATE INDEX tenants_owner ON tenants (owner, seq);
CREATE INDEX tenants_state ON tenants (state, seq);

CREATE TABLE operations (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    kind          text NOT NULL,
    target        text NOT NULL,
    state         text NOT NULL,
    done          boolean NOT NULL DEFAULT false,
    progress      integer NOT NULL DEFAULT 0,
    step          text NOT NULL DEFAULT '',
    error_code    integer NOT NULL DEFAULT 0,
    error_message text NOT NULL DEFAULT '',
    result        text NOT NULL DEFAULT '',
    requester     text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    params        jsonb NOT NULL DEFAULT '{}',
    create_time   timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX operations_target ON operations (target, seq);
-- At most one unfinished operation per resource.
CREATE UNIQUE INDEX operations_one_running ON operations (target) WHERE NOT done;

-- Responses of mutating calls by client request id, so retries get the same answer.
CREATE TABLE request_ids (
    request_id   text PRIMARY KEY,
    method       text NOT NULL,
    request_hash bytea NOT NULL,
    response     bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX request_ids_age ON request_ids (create_time);

-- Every change of an operation is announced, so watchers hear of it at once.
CREATE FUNCTION operations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('saasodoo_operations', NEW.id::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER operations_notify AFTER INSERT OR UPDATE ON operations
    FOR EACH ROW EXECUTE FUNCTION operations_notify();
