-- Traders, trading accounts, transactions, portal customers, tags and segments.

CREATE TABLE traders (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    phone TEXT,
    first_name TEXT,
    last_name TEXT,
    country TEXT,
    date_of_birth TEXT,
    segments TEXT NOT NULL DEFAULT '[]',
    source TEXT,
    assigned_to_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    kyc_status TEXT NOT NULL DEFAULT 'not_started',
    status TEXT NOT NULL DEFAULT 'active',
    suspended_at TEXT,
    suspension_reason TEXT,
    terms_accepted_at TEXT,
    terms_version TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX traders_email_uq ON traders (tenant_id, email_lower) WHERE deleted_at IS NULL;
CREATE INDEX traders_assigned_idx ON traders (tenant_id, assigned_to_id);

CREATE TABLE trading_accounts (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    external_id TEXT,
    account_number TEXT NOT NULL,
    currency TEXT NOT NULL,
    balance TEXT NOT NULL DEFAULT '0',
    equity TEXT NOT NULL DEFAULT '0',
    leverage BIGINT NOT NULL DEFAULT 100,
    is_demo BIGINT NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX trading_accounts_trader_idx ON trading_accounts (tenant_id, trader_id);
CREATE UNIQUE INDEX trading_accounts_number_uq ON trading_accounts (tenant_id, platform, account_number) WHERE deleted_at IS NULL;

CREATE TABLE transactions (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    account_id TEXT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    description TEXT,
    external_id TEXT,
    occurred_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX transactions_trader_idx ON transactions (tenant_id, trader_id);
CREATE UNIQUE INDEX transactions_external_uq ON transactions (tenant_id, external_id) WHERE external_id IS NOT NULL;

-- Positions reported by platform connectors (read by the portal and dealing views).
CREATE TABLE positions (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    volume TEXT NOT NULL,
    open_price TEXT NOT NULL,
    current_price TEXT,
    profit TEXT,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX positions_trader_idx ON positions (tenant_id, trader_id);

CREATE TABLE customers (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    phone TEXT,
    country TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    trader_id TEXT NOT NULL,
    assigned_to_id TEXT,
    rejection_reason TEXT,
    last_login_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX customers_email_uq ON customers (tenant_id, email_lower);
CREATE INDEX customers_trader_idx ON customers (tenant_id, trader_id);

CREATE TABLE customer_logins (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    success BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_logins_customer_idx ON customer_logins (tenant_id, customer_id);

CREATE TABLE customer_messages (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    body TEXT NOT NULL,
    author_user_id TEXT,
    created_at TEXT NOT NULL,
    read_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_messages_customer_idx ON customer_messages (tenant_id, customer_id);

CREATE TABLE withdrawal_allowlist (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    label TEXT,
    active_from TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX withdrawal_allowlist_uq ON withdrawal_allowlist (tenant_id, trader_id, chain, address);

CREATE TABLE tags (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    color TEXT,
    description TEXT,
    archived_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX tags_name_uq ON tags (tenant_id, name_lower);

CREATE TABLE trader_tags (
    tenant_id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    tag_id TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, trader_id, tag_id)
);

CREATE TABLE segments (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    filter TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
