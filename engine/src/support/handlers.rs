//! Handlers of the team's ticket operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::domain::{self, NewTicket, can_move, illegal_transition, ticket_closed};
use super::model::{
    Author, PRIORITIES, ReplyView, STATUSES, TICKET_COLUMNS, TicketDetail, TicketRow, TicketView,
    load, load_replies, to_json,
};
use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::util::now;

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Newest first; filters `status`, `priority`, `traderId`, `assignedToId`.
pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TicketView>>> {
    let page = PageRequest::from_params(param(&q, "limit"), param(&q, "cursor"))?;
    let mut v = Validator::new();
    v.one_of("status", param(&q, "status"), STATUSES);
    v.one_of("priority", param(&q, "priority"), PRIORITIES);
    v.finish()?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    for (name, column) in [
        ("status", "status"),
        ("priority", "priority"),
        ("traderId", "trader_id"),
        ("assignedToId", "assigned_to_id"),
    ] {
        if let Some(value) = param(&q, name) {
            b.push(&format!(" AND {column} = ")).text(value);
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<TicketRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(TicketView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    subject: Option<String>,
    body: Option<String>,
    priority: Option<String>,
    trader_id: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let mut v = Validator::new();
    let subject = v.required("subject", b.subject.as_deref());
    let body = v.required("body", b.body.as_deref());
    let trader_id = v.required("traderId", b.trader_id.as_deref());
    for e in domain::check_fields(subject, body, b.priority.as_deref()) {
        v.push(e);
    }
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let ticket = domain::create(
        &mut tx,
        &actor.tenant_id,
        NewTicket {
            trader_id: trader_id.unwrap_or_default(),
            subject: subject.unwrap_or_default(),
            body: body.unwrap_or_default(),
            priority: b.priority.as_deref().unwrap_or("normal"),
            assigned_to_id: None,
            source: "team",
            external_id: None,
            created_by: Author::of(&actor),
        },
    )
    .await?;
    let after = to_json(&ticket);
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "ticket.created",
            action: "ticket.create",
            resource_type: "ticket",
            resource_id: &ticket.id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketDetail>> {
    let mut conn = st.db.pool().acquire().await?;
    let ticket = TicketView::from(load(&mut *conn, &actor.tenant_id, &id).await?);
    let replies = load_replies(&mut *conn, &actor.tenant_id, &id).await?;
    Ok(Json(TicketDetail { ticket, replies }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBody {
    status: Option<String>,
    priority: Option<String>,
    /// A team member's id; `null` unassigns.
    #[serde(default)]
    assigned_to_id: Patch<String>,
}

/// Changes status, priority or assignee. A change to a closed ticket is 409 `ticket_closed`;
/// a status change the lifecycle does not allow is 409 `illegal_status_transition`. A request
/// that changes nothing answers the ticket as it is and records nothing.
pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<TicketView>> {
    let mut v = Validator::new();
    v.one_of("status", b.status.as_deref(), STATUSES);
    v.one_of("priority", b.priority.as_deref(), PRIORITIES);
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let status = b.status.clone().unwrap_or_else(|| cur.status.clone());
    let priority = b.priority.clone().unwrap_or_else(|| cur.priority.clone());
    let assignee = b.assigned_to_id.clone().apply(cur.assigned_to_id.clone());
    if status == cur.status && priority == cur.priority && assignee == cur.assigned_to_id {
        return Ok(Json(cur.into()));
    }
    if cur.status == "closed" {
        return Err(ticket_closed());
    }
    if status != cur.status && !can_move(&cur.status, &status) {
        return Err(illegal_transition(&cur.status, &status));
    }
    if let Some(user) = &assignee
        && assignee != cur.assigned_to_id
    {
        crate::traders::check_assignee(&mut tx, &actor.tenant_id, user, "assignedToId").await?;
    }
    let ts = now();
    // `resolvedAt`: when the ticket was last resolved, cleared when it is reopened.
    let resolved_at = match status.as_str() {
        "resolved" if cur.status != "resolved" => Some(ts.clone()),
        "open" | "pending" => None,
        _ => cur.resolved_at.clone(),
    };
    let closed_at = (status == "closed").then(|| ts.clone());
    // Compare-and-set on the status read above: a racing change makes this one a 409.
    let n = sqlx::query(
        "UPDATE support_tickets SET status = $3, priority = $4, assigned_to_id = $5, resolved_at = $6,
           closed_at = $7, updated_at = $8
         WHERE tenant_id = $1 AND id = $2 AND status = $9",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&status)
    .bind(&priority)
    .bind(&assignee)
    .bind(&resolved_at)
    .bind(&closed_at)
    .bind(&ts)
    .bind(&cur.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::conflict(
            "ticket_changed",
            "The ticket's status changed meanwhile; reload and try again.",
        ));
    }
    let before = to_json(&TicketView::from(cur));
    let view = TicketView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "ticket.updated",
            action: "ticket.update",
            resource_type: "ticket",
            resource_id: &id,
            before: Some(&before),
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    body: Option<String>,
}

/// Adds a reply from the caller to the thread (409 `ticket_closed` on a closed ticket). The
/// status is left as it is: the team moves it explicitly.
pub async fn reply(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReplyBody>,
) -> ApiResult<(StatusCode, Json<ReplyView>)> {
    let mut v = Validator::new();
    if let Some(body) = v.required("body", b.body.as_deref())
        && let Some(e) = domain::check_body(body)
    {
        v.push(e);
    }
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let ticket = load(&mut *tx, &actor.tenant_id, &id).await?;
    let reply = domain::add_reply(
        &mut tx,
        &actor.tenant_id,
        &ticket,
        &Author::of(&actor),
        b.body.as_deref().unwrap_or_default(),
    )
    .await?;
    // Workflows on `ticket.replied` find the trader in the payload.
    let mut after = to_json(&reply);
    after["traderId"] = ticket.trader_id.clone().into();
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "ticket.replied",
            action: "ticket.reply",
            resource_type: "ticket",
            resource_id: &id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(reply)))
}
