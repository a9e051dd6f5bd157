-- Trading symbols (the instruments a broker offers, with contract and pricing terms) and trading
-- groups (pricing/leverage profiles that customers belong to). Decimal terms are exact strings.

CREATE TABLE symbols (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    display_name TEXT,
    category TEXT NOT NULL,
    base_currency TEXT,
    quote_currency TEXT,
    contract_size TEXT NOT NULL,
    pip_size TEXT NOT NULL,
    markup_pips TEXT NOT NULL,
    commission_per_lot TEXT NOT NULL,
    swap_long TEXT NOT NULL,
    swap_short TEXT NOT NULL,
    min_lot TEXT NOT NULL,
    max_lot TEXT NOT NULL,
    lot_step TEXT NOT NULL,
    max_leverage BIGINT NOT NULL,
    margin_percent TEXT,
    is_active INTEGER NOT NULL,
    sort_order BIGINT NOT NULL,
    badge TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX symbols_symbol_uq ON symbols (tenant_id, symbol);

CREATE TABLE trading_groups (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    markup_pips_override TEXT,
    max_leverage_override BIGINT,
    commission_per_lot_override TEXT,
    swap_free INTEGER NOT NULL,
    is_archived INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX trading_groups_slug_uq ON trading_groups (tenant_id, slug);

-- A customer belongs to at most one trading group (its pricing profile).
CREATE TABLE trading_group_members (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, customer_id)
);
CREATE UNIQUE INDEX trading_group_members_customer_uq ON trading_group_members (tenant_id, customer_id);
