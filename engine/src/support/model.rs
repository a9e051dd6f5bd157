//! Ticket and reply rows, their API views, and loading them.

use serde::Serialize;

use crate::http::error::{ApiError, ApiResult};

pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
pub const STATUSES: &[&str] = &["open", "pending", "resolved", "closed"];

pub const SUBJECT_MAX: usize = 200;
pub const BODY_MAX: usize = 20_000;
/// Replies kept on one ticket; a thread longer than this belongs in a new ticket.
pub const MAX_REPLIES: i64 = 1000;

#[derive(sqlx::FromRow, Clone)]
pub struct TicketRow {
    pub id: String,
    pub trader_id: String,
    pub subject: String,
    pub body: String,
    pub priority: String,
    pub status: String,
    pub assigned_to_id: Option<String>,
    pub source: String,
    pub external_id: Option<String>,
    pub created_by_type: String,
    pub created_by_id: Option<String>,
    pub created_by_label: Option<String>,
    pub reply_count: i64,
    pub last_reply_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const TICKET_COLUMNS: &str = "id, trader_id, subject, body, priority, status, assigned_to_id, source, external_id,
   created_by_type, created_by_id, created_by_label, reply_count, last_reply_at, resolved_at, closed_at, created_at, updated_at";

/// Who wrote a ticket or a reply: `user`, `api_key`, `system` (the inbound webhook) or
/// `workflow`, its id and a readable label (an e-mail, a key or workflow name).
#[derive(Serialize, Clone, Debug)]
pub struct Author {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
}

impl Author {
    pub fn of(actor: &crate::auth::Actor) -> Author {
        Author {
            kind: actor.actor_type().to_string(),
            id: actor.actor_id().map(str::to_string),
            label: Some(actor.label.clone()),
        }
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    pub id: String,
    pub trader_id: String,
    pub subject: String,
    pub body: String,
    pub priority: String,
    pub status: String,
    pub assigned_to_id: Option<String>,
    /// `team`, `inbound` or `workflow`.
    pub source: String,
    pub external_id: Option<String>,
    pub created_by: Author,
    pub reply_count: i64,
    pub last_reply_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TicketRow> for TicketView {
    fn from(r: TicketRow) -> Self {
        TicketView {
            id: r.id,
            trader_id: r.trader_id,
            subject: r.subject,
            body: r.body,
            priority: r.priority,
            status: r.status,
            assigned_to_id: r.assigned_to_id,
            source: r.source,
            external_id: r.external_id,
            created_by: Author {
                kind: r.created_by_type,
                id: r.created_by_id,
                label: r.created_by_label,
            },
            reply_count: r.reply_count,
            last_reply_at: r.last_reply_at,
            resolved_at: r.resolved_at,
            closed_at: r.closed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A ticket with its thread, oldest reply first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: TicketView,
    pub replies: Vec<ReplyView>,
}

#[derive(sqlx::FromRow)]
pub struct ReplyRow {
    pub id: String,
    pub ticket_id: String,
    pub body: String,
    pub author_type: String,
    pub author_id: Option<String>,
    pub author_label: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ReplyView {
    pub id: String,
    pub ticket_id: String,
    pub body: String,
    pub author: Author,
    pub created_at: String,
}

impl From<ReplyRow> for ReplyView {
    fn from(r: ReplyRow) -> Self {
        ReplyView {
            id: r.id,
            ticket_id: r.ticket_id,
            body: r.body,
            author: Author {
                kind: r.author_type,
                id: r.author_id,
                label: r.author_label,
            },
            created_at: r.created_at,
        }
    }
}

pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<TicketRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("ticket"))
}

pub async fn load_replies<'e, E>(
    exec: E,
    tenant_id: &str,
    ticket_id: &str,
) -> ApiResult<Vec<ReplyView>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<ReplyRow> = sqlx::query_as(
        "SELECT id, ticket_id, body, author_type, author_id, author_label, created_at
         FROM support_ticket_replies WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY id",
    )
    .bind(tenant_id)
    .bind(ticket_id)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(ReplyView::from).collect())
}

pub fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
