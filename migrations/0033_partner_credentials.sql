-- HTTP Basic credentials a tenant admin issues to a partner (an introducing broker, a lead
-- vendor) for the plugin routes that admit partners (the partner Leads API). The username is
-- `<tenant id>.<credential id>`; only the password's sha256 is kept.
CREATE TABLE partner_credentials (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
