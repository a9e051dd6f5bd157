-- Credit lines and bonuses. Credit is broker money lent to a trader: each line has its own
-- ledger account (kind trader_credit or trader_bonus, floor 0) whose balance is the amount
-- outstanding; these tables hold the terms and the history and point at the journal entries.

CREATE TABLE credit_lines (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    customer_id TEXT,
    -- credit: opened by an operator, granted from house:credit; bonus: opened by the engine for
    -- auto-issued bonuses, granted from house:bonuses, no limit.
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    credit_limit TEXT,
    terms TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    ledger_account_id TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX credit_lines_trader_idx ON credit_lines (tenant_id, trader_id);
-- One live line per trader, currency and kind.
CREATE UNIQUE INDEX credit_lines_live_uq ON credit_lines (tenant_id, trader_id, currency, kind) WHERE deleted_at IS NULL;

CREATE TABLE credit_line_entries (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    credit_line_id TEXT NOT NULL,
    -- grant or revoke
    kind TEXT NOT NULL,
    -- manual, bonus (auto-issued), clawback (deposit reversed)
    source TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    outstanding_after TEXT NOT NULL,
    ledger_entry_id TEXT NOT NULL,
    bonus_issuance_id TEXT,
    reason TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX credit_line_entries_line_idx ON credit_line_entries (tenant_id, credit_line_id);

CREATE TABLE bonus_rules (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    trigger_kind TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    max_bonus TEXT,
    min_deposit TEXT,
    currency TEXT NOT NULL,
    first_deposit_only BIGINT NOT NULL DEFAULT 0,
    active BIGINT NOT NULL DEFAULT 1,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX bonus_rules_active_idx ON bonus_rules (tenant_id, active);

CREATE TABLE bonus_issuances (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    deposit_id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    credit_line_id TEXT,
    currency TEXT NOT NULL,
    deposit_amount TEXT NOT NULL,
    amount TEXT NOT NULL,
    -- issued, clawed_back
    status TEXT NOT NULL,
    -- settlement (automatic) or replay
    source TEXT NOT NULL,
    ledger_entry_id TEXT,
    credit_entry_id TEXT,
    clawback_entry_id TEXT,
    clawed_back_amount TEXT,
    shortfall TEXT,
    clawed_back_at TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- A rule pays a deposit once: replays and racing settlements hit this key and are skipped.
CREATE UNIQUE INDEX bonus_issuances_rule_deposit_uq ON bonus_issuances (tenant_id, rule_id, deposit_id);
CREATE INDEX bonus_issuances_deposit_idx ON bonus_issuances (tenant_id, deposit_id);
CREATE INDEX bonus_issuances_trader_idx ON bonus_issuances (tenant_id, trader_id);
