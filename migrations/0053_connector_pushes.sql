-- Balance operations pushed to trading platforms (a settled deposit, an approved withdrawal):
-- queued in the transaction of the money change, then pushed by a worker through the account's
-- connector. The comment identifies the operation on the platform, so a retried push is
-- recognised there, and is unique here, so it is queued once.
CREATE TABLE connector_pushes (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    platform TEXT NOT NULL,
    account_id TEXT NOT NULL,
    login TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    comment TEXT NOT NULL,
    reference_type TEXT NOT NULL,
    reference_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    deal_id TEXT,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX connector_pushes_comment_uq ON connector_pushes (tenant_id, comment);
CREATE INDEX connector_pushes_due_idx ON connector_pushes (status, next_attempt_at);
