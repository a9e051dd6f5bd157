-- Events delivered to plugins (`handle-event`): the outbox is fanned out to the installed plugins
-- that subscribe to an event's name and that the event's tenant has enabled, one delivery row
-- each, retried with backoff. Events older than this migration are not replayed to plugins.
ALTER TABLE events ADD COLUMN plugins_at TEXT;
UPDATE events SET plugins_at = created_at;
CREATE INDEX events_plugins_pending_idx ON events (tenant_id, id) WHERE plugins_at IS NULL;

CREATE TABLE plugin_event_deliveries (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- pending | succeeded | dead | skipped (plugin disabled or uninstalled meanwhile)
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Set while the delivery is due (or leased); NULL once it is settled.
    next_attempt_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX plugin_event_deliveries_uq ON plugin_event_deliveries (tenant_id, plugin, event_id);
CREATE INDEX plugin_event_deliveries_due_idx ON plugin_event_deliveries (tenant_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
