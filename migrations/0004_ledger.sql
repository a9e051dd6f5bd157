-- The double-entry ledger. Append-only: journal entries and postings are never updated or
-- deleted; a correction is a new entry that reverses an old one. Each ledger account keeps a
-- maintained balance that must always equal the sum of its postings (checked by
-- ledger::verify). Amounts are exact decimal strings.

CREATE TABLE ledger_accounts (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    code TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_type TEXT,
    owner_id TEXT,
    currency TEXT NOT NULL,
    -- Lowest balance a posting may leave; NULL means no floor (house accounts).
    floor_amount TEXT,
    balance TEXT NOT NULL DEFAULT '0',
    version BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX ledger_accounts_code_uq ON ledger_accounts (tenant_id, code, currency);
CREATE INDEX ledger_accounts_owner_idx ON ledger_accounts (tenant_id, owner_type, owner_id);

CREATE TABLE journal_entries (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT,
    reference_type TEXT,
    reference_id TEXT,
    reverses_entry_id TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX journal_entries_reversal_uq ON journal_entries (tenant_id, reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX journal_entries_reference_idx ON journal_entries (tenant_id, reference_type, reference_id);

CREATE TABLE postings (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount TEXT NOT NULL,
    balance_after TEXT NOT NULL,
    -- Position in the account's history (1, 2, 3, ...): ULIDs made in the same millisecond do
    -- not sort by creation, so running balances and as-of queries order by this instead.
    seq BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX postings_account_seq_uq ON postings (tenant_id, account_id, seq);
CREATE INDEX postings_entry_idx ON postings (tenant_id, entry_id);
