-- Outgoing webhooks: subscriptions, and one delivery row per (subscription, event).

CREATE TABLE webhook_subscriptions (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    -- JSON array of event patterns: exact names, `prefix.*` or `*`.
    events TEXT NOT NULL,
    description TEXT,
    -- HMAC signing key. Kept readable because every delivery is signed with it; shown to the
    -- API only once, at creation.
    secret TEXT NOT NULL,
    is_active BIGINT NOT NULL DEFAULT 1,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    -- The outbox event delivered (or the synthetic id of a `webhook.test`).
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The exact JSON body sent on every attempt.
    body TEXT NOT NULL,
    -- pending | retrying | succeeded | dead
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    -- Set while the delivery is queued; NULL once it succeeded or died.
    next_attempt_at TEXT,
    -- A worker owns the row until lease_until (claims are a conditional UPDATE).
    lease_until TEXT,
    claimed_by TEXT,
    response_status BIGINT,
    response_body TEXT,
    last_error TEXT,
    last_attempt_at TEXT,
    succeeded_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Fan-out is idempotent: an event reaches a subscription at most once.
CREATE UNIQUE INDEX webhook_deliveries_event_uq ON webhook_deliveries (tenant_id, subscription_id, event_id);
-- Only queued rows are indexed, so the worker's scan for due deliveries stays small.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (tenant_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Fan-out progress: an event is turned into deliveries once, then stamped. A per-event stamp
-- (rather than a cursor on ids) cannot skip an event whose transaction committed after a
-- younger one.
ALTER TABLE events ADD COLUMN webhooks_at TEXT;
UPDATE events SET webhooks_at = created_at;
CREATE INDEX events_webhooks_pending_idx ON events (tenant_id, id) WHERE webhooks_at IS NULL;
