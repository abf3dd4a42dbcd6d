-- The provisioning engine: database servers, where each tenant's database lives, and the
-- progress of each operation's steps.

CREATE TABLE database_servers (
    id                 text PRIMARY KEY,
    seq                bigserial NOT NULL UNIQUE,
    display_name       text NOT NULL DEFAULT '',
    kind               text NOT NULL CHECK (kind IN ('SHARED', 'DEDICATED')),
    host               text NOT NULL,
    port               integer NOT NULL,
    admin_conninfo_enc bytea NOT NULL,
    capacity           integer NOT NULL CHECK (capacity >= 0),
    accepting          boolean NOT NULL DEFAULT true,
    tenant             text NOT NULL DEFAULT '',
    cluster            text NOT NULL DEFAULT '',
    version            bigint NOT NULL DEFAULT 1,
    create_time        timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time        timestamptz NOT NULL DEFAULT clock_timestamp()
);

ALTER TABLE tenants
    ADD COLUMN db_name         text NOT NULL DEFAULT '',
    ADD COLUMN db_role         text NOT NULL DEFAULT '',
    ADD COLUMN db_password_enc bytea,
    ADD COLUMN app_port        integer NOT NULL DEFAULT 0;
CREATE INDEX tenants_server ON tenants (database_server) WHERE state <> 'DELETED';

ALTER TABLE operations
    ADD COLUMN step_index   integer NOT NULL DEFAULT 0,
    ADD COLUMN compensating boolean NOT NULL DEFAULT false,
    ADD COLUMN attempt      integer NOT NULL DEFAULT 0,
    ADD COLUMN next_run_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD COLUMN lease_owner  integer NOT NULL DEFAULT 0;
CREATE INDEX operations_runnable ON operations (seq) WHERE NOT done;
