//! What a ticket may be and become: the field rules, the status transitions, creating a ticket
//! and adding a reply. Shared by the HTTP handlers, the inbound webhook and the workflow action
//! `create_ticket`; everything runs inside the caller's transaction. Callers record the event
//! and the audit entry themselves, because who acted differs: a request's actor through
//! `audit::record_change`, a workflow with its run and the event chain depth.

use super::model::{
    Author, BODY_MAX, MAX_REPLIES, PRIORITIES, ReplyView, SUBJECT_MAX, TicketRow, TicketView, load,
};
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::util::{new_id, now};

/// Checks a ticket's subject, opening message and priority (each may be absent when the caller
/// checks presence itself); the errors name `subject`, `body` and `priority`.
pub fn check_fields(
    subject: Option<&str>,
    body: Option<&str>,
    priority: Option<&str>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(s) = subject {
        let n = s.trim().chars().count();
        if n == 0 || n > SUBJECT_MAX {
            errors.push(FieldError::new(
                "subject",
                format!("must be 1-{SUBJECT_MAX} characters"),
            ));
        }
    }
    if let Some(b) = body {
        errors.extend(check_body(b));
    }
    if let Some(p) = priority
        && !PRIORITIES.contains(&p)
    {
        errors.push(FieldError::new(
            "priority",
            format!("must be one of: {}", PRIORITIES.join(", ")),
        ));
    }
    errors
}

/// A ticket's opening message or a reply.
pub fn check_body(body: &str) -> Option<FieldError> {
    let n = body.trim().chars().count();
    (n == 0 || n > BODY_MAX)
        .then(|| FieldError::new("body", format!("must be 1-{BODY_MAX} characters")))
}

/// The status changes a ticket allows. `closed` is final: a closed matter that comes back is a
/// new ticket. Staying in the same status is not a transition (and always allowed).
pub fn can_move(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("open", "pending" | "resolved" | "closed")
            | ("pending", "open" | "resolved" | "closed")
            | ("resolved", "open" | "closed")
    )
}

pub fn illegal_transition(from: &str, to: &str) -> ApiError {
    ApiError::conflict(
        "illegal_status_transition",
        format!("A {from} ticket cannot become {to}."),
    )
}

pub fn ticket_closed() -> ApiError {
    ApiError::conflict(
        "ticket_closed",
        "The ticket is closed; open a new ticket instead.",
    )
}

pub struct NewTicket<'a> {
    pub trader_id: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub priority: &'a str,
    pub assigned_to_id: Option<&'a str>,
    /// `team`, `inbound` or `workflow`.
    pub source: &'a str,
    pub external_id: Option<&'a str>,
    pub created_by: Author,
}

/// Opens a ticket. The trader must be one of the tenant's (400 naming `traderId`) and the
/// assignee an active member of its team (400 naming `assignedToId`).
pub async fn create(tx: &mut Tx, tenant_id: &str, t: NewTicket<'_>) -> ApiResult<TicketView> {
    crate::traders::load(&mut **tx, tenant_id, t.trader_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::field("traderId", "is not a trader of this tenant"),
            other => other,
        })?;
    if let Some(user) = t.assigned_to_id {
        crate::traders::check_assignee(tx, tenant_id, user, "assignedToId").await?;
    }
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO support_tickets (tenant_id, id, trader_id, subject, body, priority, status, assigned_to_id,
           source, external_id, created_by_type, created_by_id, created_by_label, reply_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, $12, 0, $13, $13)",
    )
    .bind(tenant_id)
    .bind(&id)
    .bind(t.trader_id)
    .bind(t.subject.trim())
    .bind(t.body.trim())
    .bind(t.priority)
    .bind(t.assigned_to_id)
    .bind(t.source)
    .bind(t.external_id)
    .bind(&t.created_by.kind)
    .bind(&t.created_by.id)
    .bind(&t.created_by.label)
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    Ok(load(&mut **tx, tenant_id, &id).await?.into())
}

/// Adds a reply to the thread. The ticket row is updated first, on the condition that it is
/// not closed and has room, so a reply racing a close either lands before it or is refused.
pub async fn add_reply(
    tx: &mut Tx,
    tenant_id: &str,
    ticket: &TicketRow,
    author: &Author,
    body: &str,
) -> ApiResult<ReplyView> {
    let ts = now();
    let n = sqlx::query(
        "UPDATE support_tickets SET reply_count = reply_count + 1, last_reply_at = $3, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND status <> 'closed' AND reply_count < $4",
    )
    .bind(tenant_id)
    .bind(&ticket.id)
    .bind(&ts)
    .bind(MAX_REPLIES)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        let now_row = load(&mut **tx, tenant_id, &ticket.id).await?;
        return Err(if now_row.status == "closed" {
            ticket_closed()
        } else {
            ApiError::conflict(
                "ticket_reply_limit",
                format!("A ticket holds at most {MAX_REPLIES} replies; open a new ticket."),
            )
        });
    }
    let reply = ReplyView {
        id: new_id(),
        ticket_id: ticket.id.clone(),
        body: body.trim().to_string(),
        author: author.clone(),
        created_at: ts,
    };
    sqlx::query(
        "INSERT INTO support_ticket_replies (tenant_id, id, ticket_id, body, author_type, author_id, author_label, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(&reply.id)
    .bind(&reply.ticket_id)
    .bind(&reply.body)
    .bind(&reply.author.kind)
    .bind(&reply.author.id)
    .bind(&reply.author.label)
    .bind(&reply.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        for (from, to) in [
            ("open", "pending"),
            ("open", "resolved"),
            ("open", "closed"),
            ("pending", "open"),
            ("pending", "resolved"),
            ("resolved", "open"),
            ("resolved", "closed"),
        ] {
            assert!(can_move(from, to), "{from} -> {to}");
        }
        for (from, to) in [
            ("closed", "open"),
            ("closed", "pending"),
            ("closed", "resolved"),
            ("resolved", "pending"),
            ("open", "open"),
        ] {
            assert!(!can_move(from, to), "{from} -> {to}");
        }
    }

    #[test]
    fn field_checks_name_the_field() {
        assert!(check_fields(Some("Hi"), Some("Text"), Some("urgent")).is_empty());
        let fields = |e: Vec<FieldError>| e.into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(
            fields(check_fields(Some(" "), Some(""), Some("asap"))),
            ["subject", "body", "priority"]
        );
        assert_eq!(
            fields(check_fields(Some(&"x".repeat(201)), None, None)),
            ["subject"]
        );
    }
}
