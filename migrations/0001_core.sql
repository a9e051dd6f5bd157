-- Core schema. Portable between SQLite and PostgreSQL: TEXT for ids (ULID), timestamps
-- (RFC 3339 UTC, ms), money (exact decimal strings) and JSON; BIGINT for integers and 0/1 flags.
-- Every tenant-owned table leads its keys and indexes with tenant_id (Citus distribution key).

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    branding TEXT NOT NULL DEFAULT '{}',
    feature_flags TEXT NOT NULL DEFAULT '{}',
    logo_key TEXT,
    base_currency TEXT NOT NULL DEFAULT 'USD',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tenants_slug_uq ON tenants (slug);

CREATE TABLE users (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    password_hash TEXT,
    display_name TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'active',
    email_verified_at TEXT,
    totp_secret TEXT,
    totp_enabled BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_uq ON users (tenant_id, email_lower) WHERE deleted_at IS NULL;

-- Operator and portal sessions. The cookie carries "<tenant_id>.<secret>"; only sha256(secret) is stored.
CREATE TABLE sessions (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    impersonator_id TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX sessions_token_uq ON sessions (tenant_id, token_hash);
CREATE INDEX sessions_subject_idx ON sessions (tenant_id, subject_type, subject_id);

-- Single-use tokens: e-mail verification, password reset.
CREATE TABLE auth_tokens (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX auth_tokens_hash_uq ON auth_tokens (tenant_id, token_hash);

-- Failed login attempts, counted across engine processes for rate limiting.
CREATE TABLE auth_failures (
    scope_key TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX auth_failures_key_idx ON auth_failures (scope_key, created_at);

CREATE TABLE api_keys (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    roles TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE invitations (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    display_name TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    token_hash TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    accepted_at TEXT,
    revoked_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX invitations_token_uq ON invitations (tenant_id, token_hash);

CREATE TABLE passkeys (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    label TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX passkeys_cred_uq ON passkeys (tenant_id, credential_id);

CREATE TABLE webauthn_challenges (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Outgoing mail. Delivered by the job runner when SMTP is configured; otherwise kept here and logged.
CREATE TABLE mail_outbox (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    template TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    claimed_until TEXT,
    logged_at TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mail_outbox_status_idx ON mail_outbox (status, created_at);

-- Events outbox, written in the same transaction as the state change it announces.
CREATE TABLE events (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    published_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_unpublished_idx ON events (tenant_id, published_at, id);

-- Audit log, written in the same transaction as each mutating request.
CREATE TABLE audit_log (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_label TEXT,
    impersonator_id TEXT,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    before_json TEXT,
    after_json TEXT,
    ip TEXT,
    request_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_resource_idx ON audit_log (tenant_id, resource_type, resource_id);
CREATE INDEX audit_actor_idx ON audit_log (tenant_id, actor_id);

-- Stored responses of POSTs sent with an Idempotency-Key.
CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT,
    response_body TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, credential_id, idem_key)
);

CREATE TABLE objects (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    purpose TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_limit BIGINT NOT NULL,
    upload_token_hash TEXT NOT NULL,
    uploaded_at TEXT,
    size BIGINT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
