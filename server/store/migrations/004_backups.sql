-- Backups: one row per backup with its parts (database dump, filestore, manifest) and the
-- per-table row counts taken in the dump's snapshot; per-tenant policy overrides; and the
-- slots the scheduler has taken, so a slot is run once however many servers share the store.

CREATE TABLE backups (
    tenant_id        text NOT NULL,
    id               text NOT NULL,
    seq              bigserial NOT NULL UNIQUE,
    state            text NOT NULL CHECK (state IN ('CREATING', 'COMPLETE', 'FAILED', 'DELETING')),
    trigger          text NOT NULL,
    description      text NOT NULL DEFAULT '',
    plan_id          text NOT NULL DEFAULT '',
    strategy         text NOT NULL DEFAULT '',
    postgres_version text NOT NULL DEFAULT '',
    odoo_version     text NOT NULL DEFAULT '',
    storage          text NOT NULL,
    prefix           text NOT NULL,
    row_counts       jsonb NOT NULL DEFAULT '{}',
    size_bytes       bigint NOT NULL DEFAULT 0,
    error            text NOT NULL DEFAULT '',
    last_drill       text NOT NULL DEFAULT '',
    last_drill_time  timestamptz,
    create_time      timestamptz NOT NULL,
    complete_time    timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX backups_by_tenant ON backups (tenant_id, seq);

CREATE TABLE backup_parts (
    tenant_id  text NOT NULL,
    backup_id  text NOT NULL,
    name       text NOT NULL,
    ord        integer NOT NULL,
    size_bytes bigint NOT NULL,
    sha256     text NOT NULL,
    PRIMARY KEY (tenant_id, backup_id, name),
    FOREIGN KEY (tenant_id, backup_id) REFERENCES backups (tenant_id, id) ON DELETE CASCADE
);

-- A tenant's own policy; without a row the plan's policy (plans.yaml) applies.
CREATE TABLE backup_policies (
    tenant_id    text PRIMARY KEY,
    schedule     text NOT NULL CHECK (schedule IN ('hourly', 'daily', 'disabled')),
    time_of_day  text NOT NULL DEFAULT '',
    keep_daily   integer NOT NULL,
    keep_weekly  integer NOT NULL,
    keep_monthly integer NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    update_time  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Scheduled work taken: (scope, slot) is unique, so the server that inserts it runs it and
-- every other server sees it taken. scope is a tenant id (scheduled backups) or a job name.
CREATE TABLE backup_slots (
    scope       text NOT NULL,
    slot        text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (scope, slot)
);
