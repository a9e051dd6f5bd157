-- Payments: payment methods, deposits and withdrawals. Their money effects live in the ledger
-- (journal_entries/postings); these tables hold the workflow state and point at the entries.

CREATE TABLE payment_methods (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    external_ref TEXT,
    currency TEXT,
    network TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    is_default BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX payment_methods_trader_idx ON payment_methods (tenant_id, trader_id);

CREATE TABLE deposits (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    account_id TEXT,
    payment_method_id TEXT,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    external_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    fee_amount TEXT,
    net_amount TEXT,
    settled_amount TEXT,
    settled_at TEXT,
    proof_url TEXT,
    notes TEXT,
    reject_reason TEXT,
    reversal_reason TEXT,
    provider_payload TEXT NOT NULL DEFAULT '{}',
    approved_by TEXT,
    approved_at TEXT,
    settled_by TEXT,
    ledger_entry_id TEXT,
    reversal_entry_id TEXT,
    transaction_id TEXT,
    reconciled BIGINT NOT NULL DEFAULT 0,
    reconciled_at TEXT,
    reconciled_by TEXT,
    reconcile_notes TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX deposits_trader_idx ON deposits (tenant_id, trader_id);
CREATE INDEX deposits_status_idx ON deposits (tenant_id, status);
CREATE UNIQUE INDEX deposits_external_uq ON deposits (tenant_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE withdrawals (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    account_id TEXT,
    payment_method_id TEXT,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    destination_ref TEXT,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    external_id TEXT,
    fee_amount TEXT,
    net_amount TEXT,
    settled_at TEXT,
    proof_url TEXT,
    notes TEXT,
    reject_reason TEXT,
    needs_dual_control BIGINT NOT NULL DEFAULT 0,
    first_approved_by TEXT,
    first_approved_at TEXT,
    approved_by TEXT,
    approved_at TEXT,
    settled_by TEXT,
    hold_entry_id TEXT,
    settle_entry_id TEXT,
    release_entry_id TEXT,
    transaction_id TEXT,
    reconciled BIGINT NOT NULL DEFAULT 0,
    reconciled_at TEXT,
    reconciled_by TEXT,
    reconcile_notes TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX withdrawals_trader_idx ON withdrawals (tenant_id, trader_id);
CREATE INDEX withdrawals_status_idx ON withdrawals (tenant_id, status);

-- Per-tenant payment policy. A withdrawal at or above the threshold (in its own currency)
-- needs two distinct approvers, neither of them its creator.
CREATE TABLE payment_settings (
    tenant_id TEXT NOT NULL,
    dual_control_threshold TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id)
);
