-- Customer rules: decide on a portal customer when it signs up or changes (approve, reject,
-- assign, tag). Rules for a trigger are tried in ascending priority; the first match decides.
CREATE TABLE customer_rules (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    trigger_on TEXT NOT NULL,
    condition_json TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    priority BIGINT NOT NULL DEFAULT 0,
    is_active BIGINT NOT NULL DEFAULT 1,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_rules_priority_idx ON customer_rules (tenant_id, priority, id);

-- Every decision a rule made; one per (event, customer): several engine processes decide once.
CREATE TABLE customer_rule_decisions (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    rule_id TEXT,
    rule_version BIGINT,
    decision TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX customer_rule_decisions_event_uq ON customer_rule_decisions (tenant_id, event_id, customer_id);
CREATE INDEX customer_rule_decisions_customer_idx ON customer_rule_decisions (tenant_id, customer_id);

-- The latest rule decision, on the customer itself.
ALTER TABLE customers ADD COLUMN rule_decision TEXT;
ALTER TABLE customers ADD COLUMN rule_decision_rule_id TEXT;
ALTER TABLE customers ADD COLUMN rule_decided_at TEXT;
