-- Client portal: trader addresses and referrals, the portal notification feed, single-use
-- platform web-terminal tokens, and case-insensitive unique names for saved segments.

-- Address fields a trader maintains from the portal (operators can edit them too).
ALTER TABLE traders ADD COLUMN address_line1 TEXT;
ALTER TABLE traders ADD COLUMN address_line2 TEXT;
ALTER TABLE traders ADD COLUMN city TEXT;
ALTER TABLE traders ADD COLUMN postal_code TEXT;
ALTER TABLE traders ADD COLUMN region TEXT;
-- The trader who referred this one (same tenant); GET /v1/traders/me/referrals reads it.
ALTER TABLE traders ADD COLUMN referred_by_trader_id TEXT;
CREATE INDEX traders_referred_by_idx ON traders (tenant_id, referred_by_trader_id);

-- What the portal shows a trader in GET /v1/traders/me/notifications.
CREATE TABLE trader_notifications (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    read_at TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX trader_notifications_trader_idx ON trader_notifications (tenant_id, trader_id, id);

-- Short-lived single-use tokens the platform web terminal redeems to log a trading account in.
CREATE TABLE platform_login_tokens (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX platform_login_tokens_hash_uq ON platform_login_tokens (tenant_id, token_hash);

ALTER TABLE segments ADD COLUMN name_lower TEXT;
UPDATE segments SET name_lower = LOWER(name);
CREATE UNIQUE INDEX segments_name_uq ON segments (tenant_id, name_lower);

CREATE INDEX trader_tags_tag_idx ON trader_tags (tenant_id, tag_id);
CREATE INDEX customer_messages_tenant_idx ON customer_messages (tenant_id, id);
CREATE INDEX customers_status_idx ON customers (tenant_id, status);
