-- Risk rules: tenant-defined A-book/B-book routing. `match_json` is the condition as submitted
-- (structured or a Rhai expression), `source` the Rhai expression it compiles to; `version`
-- grows on every edit (it keys the compiled-script cache and is named in audit entries).
CREATE TABLE risk_rules (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    match_json TEXT NOT NULL,
    source TEXT NOT NULL,
    routing TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    is_active BIGINT NOT NULL DEFAULT 1,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX risk_rules_priority_idx ON risk_rules (tenant_id, priority, id);

-- One row per classify-accounts run, with its breakdown (what `stats` reports).
CREATE TABLE risk_classify_runs (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    accounts BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    summary TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The routing decision of each trading account, and the rule (and version) that made it;
-- rule_id NULL means no rule matched and the tenant's default routing applied.
CREATE TABLE account_routing (
    tenant_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    routing TEXT NOT NULL,
    rule_id TEXT,
    rule_version BIGINT,
    run_id TEXT NOT NULL,
    classified_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
