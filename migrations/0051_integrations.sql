-- Trading-platform connector configurations, one per tenant and platform. Credentials are
-- encrypted at rest (engine/src/secrets.rs); only their key names are ever shown.
CREATE TABLE integration_configs (
    tenant_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    label TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    credentials TEXT,
    credential_keys TEXT NOT NULL DEFAULT '[]',
    is_active INTEGER NOT NULL,
    last_test_at TEXT,
    last_test_ok INTEGER,
    last_test_error TEXT,
    last_sync_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, platform)
);

-- What the platform sync fills in beside the original position columns.
ALTER TABLE positions ADD COLUMN platform TEXT;
ALTER TABLE positions ADD COLUMN external_id TEXT;
ALTER TABLE positions ADD COLUMN close_price TEXT;
ALTER TABLE positions ADD COLUMN commission TEXT;
ALTER TABLE positions ADD COLUMN swap TEXT;
ALTER TABLE positions ADD COLUMN updated_at TEXT;
CREATE UNIQUE INDEX positions_external_uq ON positions (tenant_id, platform, external_id);
CREATE INDEX positions_account_idx ON positions (tenant_id, account_id);
