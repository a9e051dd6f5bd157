-- Stripe webhooks: each tenant's endpoint signing secret (encrypted at rest, see
-- engine/src/secrets.rs), the previous secret during a rotation window, and every Stripe event
-- received, keyed by Stripe's event id so a redelivered event has no second effect.

ALTER TABLE payment_settings ADD COLUMN stripe_webhook_secret TEXT;
ALTER TABLE payment_settings ADD COLUMN stripe_previous_secret TEXT;
ALTER TABLE payment_settings ADD COLUMN stripe_previous_until TEXT;

CREATE TABLE stripe_events (
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    -- What the engine did: settled, rejected, reversed, already_settled, ignored, unmatched,
    -- amount_mismatch, refused (a business rule refused it; see detail).
    outcome TEXT NOT NULL,
    detail TEXT,
    deposit_id TEXT,
    livemode INTEGER NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX stripe_events_deposit_idx ON stripe_events (tenant_id, deposit_id);
