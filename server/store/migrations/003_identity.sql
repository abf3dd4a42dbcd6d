-- Identity: users, sessions (rotating refresh tokens), API keys and the audit log.

CREATE TABLE users (
    id                text PRIMARY KEY,          -- users/{id}
    seq               bigserial NOT NULL UNIQUE,
    email             text NOT NULL,
    display_name      text NOT NULL DEFAULT '',
    role              text NOT NULL CHECK (role IN ('CUSTOMER', 'ADMIN')),
    disabled          boolean NOT NULL DEFAULT false,
    password_hash     text,                      -- NULL for users of an external provider
    provider          text NOT NULL DEFAULT 'builtin',
    subject           text NOT NULL,             -- the provider's id of the user
    version           bigint NOT NULL DEFAULT 1,
    create_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_sign_in_time timestamptz
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE UNIQUE INDEX users_subject ON users (provider, subject);

-- One row per session; the refresh token in use is refresh_hash, the ones it replaced are
-- kept in session_tokens so that their reuse is recognised and revokes the session.
CREATE TABLE sessions (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash text NOT NULL UNIQUE,
    generation   integer NOT NULL DEFAULT 1,
    expire_time  timestamptz NOT NULL,
    revoke_time  timestamptz,
    revoke_reason text NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE session_tokens (
    hash       text PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE
);

CREATE TABLE api_keys (
    id             text PRIMARY KEY,
    seq            bigserial NOT NULL UNIQUE,
    user_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name   text NOT NULL,
    prefix         text NOT NULL,
    secret_hash    text NOT NULL UNIQUE,
    create_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_time timestamptz,
    expire_time    timestamptz,
    request_id     text NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_user ON api_keys (user_id, seq);

CREATE TABLE audit_events (
    id             uuid PRIMARY KEY,
    seq            bigserial NOT NULL UNIQUE,
    principal      text NOT NULL,
    method         text NOT NULL,
    target         text NOT NULL DEFAULT '',
    result         text NOT NULL,
    request_id     text NOT NULL DEFAULT '',
    client_address text NOT NULL DEFAULT '',
    create_time    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_events_principal ON audit_events (principal, seq);
CREATE INDEX audit_events_target ON audit_events (target, seq);
