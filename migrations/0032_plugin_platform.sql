-- Plugin platform, second part: ledger idempotency and job schedules.

-- One row per ledger entry a plugin posted, keyed by its idempotency key: a retried post finds
-- the first entry instead of moving money again.
CREATE TABLE plugin_ledger_keys (
    tenant_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin, idempotency_key)
);

-- When each scheduled job of a plugin last ran for a tenant, and the lease of the engine
-- process running it now: several processes share the schedule and each run happens once.
CREATE TABLE plugin_job_runs (
    tenant_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    job TEXT NOT NULL,
    next_run_at TEXT NOT NULL,
    lease_until TEXT,
    last_started_at TEXT,
    last_finished_at TEXT,
    last_error TEXT,
    runs BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, plugin, job)
);
