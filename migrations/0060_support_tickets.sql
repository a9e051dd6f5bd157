-- Support tickets: a subject and opening message about one of the tenant's traders, a priority,
-- a status (open, pending, resolved, closed), an optional assignee from the team, and a thread
-- of replies. `external_id` is the sender's id of a ticket that arrived through the inbound
-- webhook: unique per tenant, so a redelivery creates nothing new.
CREATE TABLE support_tickets (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trader_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    assigned_to_id TEXT,
    -- team (an operator or API key), inbound (the webhook) or workflow.
    source TEXT NOT NULL,
    external_id TEXT,
    created_by_type TEXT NOT NULL,
    created_by_id TEXT,
    created_by_label TEXT,
    reply_count BIGINT NOT NULL DEFAULT 0,
    last_reply_at TEXT,
    resolved_at TEXT,
    closed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX support_tickets_external_uq ON support_tickets (tenant_id, external_id);
CREATE INDEX support_tickets_status_idx ON support_tickets (tenant_id, status, id);
CREATE INDEX support_tickets_trader_idx ON support_tickets (tenant_id, trader_id, id);
CREATE INDEX support_tickets_assignee_idx ON support_tickets (tenant_id, assigned_to_id, id);

-- The thread: every reply with its author (a user, an API key, the inbound webhook, a workflow).
CREATE TABLE support_ticket_replies (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    body TEXT NOT NULL,
    author_type TEXT NOT NULL,
    author_id TEXT,
    author_label TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX support_ticket_replies_ticket_idx ON support_ticket_replies (tenant_id, ticket_id, id);
