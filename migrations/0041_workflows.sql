-- Workflows: a trigger (an outbox event name), a condition (structured or Rhai, compiled to
-- `source` on save) and actions the engine carries out when the condition holds.
CREATE TABLE workflows (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    condition_json TEXT NOT NULL,
    source TEXT NOT NULL,
    actions TEXT NOT NULL,
    is_active BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workflows_trigger_idx ON workflows (tenant_id, trigger_type);

-- One run per (workflow, event): the unique key is what makes several engine processes
-- trigger each workflow once per event.
CREATE TABLE workflow_runs (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    workflow_version BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    decision TEXT NOT NULL,
    actions TEXT NOT NULL,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX workflow_runs_event_uq ON workflow_runs (tenant_id, workflow_id, event_id);
CREATE INDEX workflow_runs_workflow_idx ON workflow_runs (tenant_id, workflow_id, id);

-- Events not yet offered to workflows (as `webhooks_at` for webhooks); events recorded before
-- workflows existed are marked as seen. `chain_depth` counts how many workflow runs led to an
-- event, so workflows triggering each other stop after a few hops.
ALTER TABLE events ADD COLUMN workflows_at TEXT;
UPDATE events SET workflows_at = created_at;
CREATE INDEX events_workflows_pending_idx ON events (tenant_id, id) WHERE workflows_at IS NULL;
ALTER TABLE events ADD COLUMN chain_depth BIGINT NOT NULL DEFAULT 0;
