//! Support tickets: a subject and opening message about one of the tenant's traders, with a
//! priority (low, normal, high, urgent), a status (open, pending, resolved, closed; closed is
//! final), an optional assignee from the team and a thread of replies, each with its author.
//! Tickets are opened by the team, by the broker's own systems through the signed inbound
//! webhook (`inbound`), or by workflows (action `create_ticket`, through [`domain::create`]).
//! Every change emits `ticket.created`, `ticket.updated` or `ticket.replied` and writes an
//! audit entry in its transaction.
//!
//! The reference has no trader-side ticket operations, so tickets are for the team only:
//! the support desk (owner, admin, support) works them, compliance reads them (complaints).

pub mod domain;
mod handlers;
mod inbound;
pub mod model;

use crate::auth::roles::{ADMINS, Role};
use crate::http::api::{Api, Op};

/// Who works tickets.
const TICKETS_WRITE: &[Role] = &[Role::Owner, Role::Admin, Role::Support];
/// Who reads them: the desk, and compliance, which handles complaints.
const TICKETS_READ: &[Role] = &[Role::Owner, Role::Admin, Role::Support, Role::Compliance];

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/support/tickets", "getSupportTickets", "support")
            .summary("List support tickets, newest first (filters: status, priority, traderId, assignedToId).")
            .staff(TICKETS_READ),
        handlers::list,
    );
    api.add(
        Op::post("/v1/support/tickets", "postSupportTickets", "support")
            .summary("Open a ticket about a trader of the tenant (priority low, normal (default), high, urgent). Emits ticket.created.")
            .staff(TICKETS_WRITE)
            .body(r#"{"subject":"Withdrawal not received","body":"Client reports the 500 USD withdrawal of 3 May has not arrived.","priority":"high","traderId":"01J0TRADERID00000000000000"}"#),
        handlers::create,
    );
    api.add(
        Op::get("/v1/support/tickets/{id}", "getSupportTicketsId", "support")
            .summary(
                "Get a ticket with its thread of replies (oldest first), each with its author.",
            )
            .staff(TICKETS_READ),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/support/tickets/{id}", "patchSupportTicketsId", "support")
            .summary("Change status, priority or assignee (assignedToId: a team member, null unassigns). Status: open ↔ pending, open/pending → resolved, resolved → open, any but closed → closed; closed is final (409 ticket_closed), other moves are 409 illegal_status_transition. Emits ticket.updated.")
            .staff(TICKETS_WRITE)
            .body(r#"{"status":"pending","priority":"urgent","assignedToId":"01J0USERID0000000000000000"}"#),
        handlers::update,
    );
    api.add(
        Op::post(
            "/v1/support/tickets/{id}/reply",
            "postSupportTicketsIdReply",
            "support",
        )
        .summary("Add a reply from the caller to the ticket's thread (409 ticket_closed on a closed ticket). Emits ticket.replied.")
        .staff(TICKETS_WRITE)
        .body(r#"{"body":"We have traced the transfer; it reaches your bank tomorrow."}"#),
        handlers::reply,
    );
    api.add(
        Op::post(
            "/v1/support/webhooks/inbound",
            "postSupportWebhooksInbound",
            "support",
        )
        .summary("Broker → CRM: new support ticket inbound. ?tenant=<slug>; signed with the tenant's inbound secret (X-Lumire-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>, 401 invalid_signature otherwise). The trader is traderId or email; externalId makes redeliveries answer 200 with the ticket already made.")
        .body(r#"{"externalId":"helpdesk-48213","subject":"Cannot log in to MT5","body":"Sent from the website contact form.","priority":"normal","email":"client@example.com"}"#),
        inbound::receive,
    );
    api.add(
        Op::get("/v1/support/settings", "getSupportSettings", "support")
            .summary("Inbound webhook settings: whether a secret is set, the endpoint URL and signature header (never the secret).")
            .staff(ADMINS),
        inbound::get_settings,
    );
    api.add(
        Op::post(
            "/v1/support/settings/inbound-secret",
            "postSupportSettingsInboundSecret",
            "support",
        )
        .summary("Make a new inbound webhook secret, answered once (inboundWebhook.secret); the previous one stays valid for 24 hours.")
        .action()
        .staff(ADMINS),
        inbound::rotate_secret,
    );
    api.add(
        Op::delete(
            "/v1/support/settings/inbound-secret",
            "deleteSupportSettingsInboundSecret",
            "support",
        )
        .summary("Remove the inbound webhook secret: the endpoint refuses every request until a new one is made.")
        .staff(ADMINS),
        inbound::delete_secret,
    );
}
