//! Handlers of the operator-side customer operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{
    CUSTOMER_COLUMNS, CustomerRow, CustomerView, LoginRow, LoginView, MESSAGE_COLUMNS, MessageRow,
    MessageView, STATUSES, clean_body, insert_message, load, view_json,
};
use super::notice::{Decision, tell_decision, tenant_name};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::auth::session::{self, Subject};
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::mail::{self, Mail};
use crate::portal::notifications::notify;
use crate::traders::check_assignee;
use crate::util::now;

fn page_of(q: &HashMap<String, String>) -> ApiResult<PageRequest> {
    PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<CustomerView>>> {
    let page = page_of(&q)?;
    let mut v = Validator::new();
    v.one_of(
        "status",
        q.get("status")
            .map(String::as_str)
            .filter(|s| !s.is_empty()),
        STATUSES,
    );
    v.finish()?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    for (param, column) in [
        ("status", "status"),
        ("assignedToId", "assigned_to_id"),
        ("traderId", "trader_id"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(v) = q.get("q").filter(|v| !v.trim().is_empty()) {
        let like = format!("%{}%", v.trim().to_lowercase());
        b.push(" AND (email_lower LIKE ").text(like.clone());
        b.push(" OR LOWER(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '')) LIKE ")
            .text(like.clone());
        b.push(" OR COALESCE(phone, '') LIKE ").text(like);
        b.push(")");
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<CustomerRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(CustomerView::from),
    ))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(CustomerView::from(
        load(st.db.pool(), &actor.tenant_id, &id).await?,
    )))
}

/// Writes the status change, its notification, e-mail, event and audit entry.
async fn finish_decision(
    tx: &mut Tx,
    actor: &Actor,
    cur: CustomerRow,
    decision: Decision<'_>,
) -> ApiResult<CustomerView> {
    let before = view_json(&CustomerView::from(cur.clone()));
    let view = CustomerView::from(load(&mut **tx, &actor.tenant_id, &cur.id).await?);
    let after = view_json(&view);
    let event = decision.event();
    tell_decision(tx, &actor.tenant_id, &cur, decision).await?;
    events::emit(tx, &actor.tenant_id, event, "customer", &cur.id, &after).await?;
    audit::record(
        tx,
        actor,
        event,
        "customer",
        Some(&cur.id),
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(view)
}

/// Another request decided on the same customer between our read and our write.
fn raced() -> ApiError {
    ApiError::conflict(
        "customer_status_changed",
        "The customer's status changed meanwhile; reload and try again.",
    )
}

/// pending → approved and rejected → approved (a rejection can be reversed once the missing
/// information arrives); approving an approved customer is a 409.
pub async fn approve(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if cur.status == "approved" {
        return Err(ApiError::conflict(
            "customer_already_approved",
            "The customer is already approved.",
        ));
    }
    let changed = sqlx::query(
        "UPDATE customers SET status = 'approved', rejection_reason = NULL, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND status = $4",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(now())
    .bind(&cur.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(raced());
    }
    let view = finish_decision(&mut tx, &actor, cur, Decision::Approved).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    reason: Option<String>,
}

/// Only a pending customer can be rejected; an approved one is blocked by suspending its trader.
/// Rejection ends the customer's portal sessions.
pub async fn reject(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RejectBody>,
) -> ApiResult<Json<CustomerView>> {
    let mut v = Validator::new();
    let reason = v
        .required("reason", b.reason.as_deref())
        .map(str::to_string);
    v.max_len("reason", reason.as_deref(), 500);
    v.finish()?;
    let reason = reason.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    match cur.status.as_str() {
        "pending" => {}
        "rejected" => {
            return Err(ApiError::conflict(
                "customer_already_rejected",
                "The customer is already rejected.",
            ));
        }
        _ => {
            return Err(ApiError::conflict(
                "customer_already_approved",
                "An approved customer cannot be rejected; suspend the trader instead.",
            ));
        }
    }
    let changed = sqlx::query(
        "UPDATE customers SET status = 'rejected', rejection_reason = $3, updated_at = $4
         WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&reason)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(raced());
    }
    session::revoke_all(&mut tx, &actor.tenant_id, Subject::Customer, &id, None).await?;
    let view = finish_decision(
        &mut tx,
        &actor,
        cur,
        Decision::Rejected {
            reason: Some(&reason),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssignBody {
    #[serde(default)]
    user_id: Patch<String>,
}

/// `userId` names a tenant member; `null` removes the assignment.
pub async fn assign(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssignBody>,
) -> ApiResult<Json<CustomerView>> {
    if b.user_id.is_missing() {
        return Err(ApiError::field("userId", "is required (null to unassign)"));
    }
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if let Patch::Value(u) = &b.user_id {
        check_assignee(&mut tx, &actor.tenant_id, u, "userId").await?;
    }
    let before = view_json(&CustomerView::from(cur.clone()));
    sqlx::query(
        "UPDATE customers SET assigned_to_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(b.user_id.apply(None))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = CustomerView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer.assigned",
        "customer",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer.assigned",
        "customer",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn logins(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<LoginView>>> {
    let page = page_of(&q)?;
    load(st.db.pool(), &actor.tenant_id, &id).await?;
    let mut b = SqlBuilder::new(
        "SELECT id, success, ip, user_agent, created_at FROM customer_logins WHERE tenant_id = ",
    );
    b.text(&actor.tenant_id);
    b.push(" AND customer_id = ").text(id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<LoginRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(LoginView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    body: Option<String>,
}

/// An outbound message from the team; the customer is told in the portal and by e-mail (the
/// e-mail carries no message text, which stays behind the portal login).
pub async fn reply(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReplyBody>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let mut v = Validator::new();
    let body = clean_body(&mut v, b.body.as_deref());
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let msg = insert_message(
        &mut tx,
        &actor.tenant_id,
        &id,
        "outbound",
        &body,
        actor.user_id.as_deref(),
    )
    .await?;
    let after = json!(&msg);
    notify(
        &mut tx,
        &actor.tenant_id,
        &cur.trader_id,
        "customer_message.sent",
        "New message from your broker",
        "You have a new message in the client portal.",
        &json!({"messageId": msg.id}),
    )
    .await?;
    let broker = tenant_name(&mut tx, &actor.tenant_id).await?;
    mail::enqueue(
        &mut tx,
        Mail {
            tenant_id: &actor.tenant_id,
            to: &cur.email,
            subject: &format!("{broker}: new message"),
            body: "You have a new message from your broker. Log in to the client portal to read it.\n",
            template: "customer_message",
        },
    )
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer_message.sent",
        "customer_message",
        &msg.id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer_message.sent",
        "customer_message",
        Some(&msg.id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(msg)))
}

#[derive(sqlx::FromRow)]
struct InboxRow {
    id: String,
    customer_id: String,
    direction: String,
    body: String,
    author_user_id: Option<String>,
    created_at: String,
    read_at: Option<String>,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    trader_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxCustomer {
    id: String,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    trader_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessage {
    #[serde(flatten)]
    message: MessageView,
    customer: InboxCustomer,
}

/// Messages of every customer of the tenant, newest first (filters: direction, customerId).
pub async fn messages_all(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<InboxMessage>>> {
    let page = page_of(&q)?;
    let mut v = Validator::new();
    v.one_of(
        "direction",
        q.get("direction")
            .map(String::as_str)
            .filter(|s| !s.is_empty()),
        &["inbound", "outbound"],
    );
    v.finish()?;
    let cols = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut b = SqlBuilder::new(&format!(
        "SELECT {cols}, c.email, c.first_name, c.last_name, c.trader_id FROM customer_messages m
         JOIN customers c ON c.tenant_id = m.tenant_id AND c.id = m.customer_id
         WHERE m.tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(d) = q.get("direction").filter(|v| !v.is_empty()) {
        b.push(" AND m.direction = ").text(d.clone());
    }
    if let Some(c) = q.get("customerId").filter(|v| !v.is_empty()) {
        b.push(" AND m.customer_id = ").text(c.clone());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND m.id < ").text(after.clone());
    }
    b.push(" ORDER BY m.id DESC").limit(page.fetch());
    let rows: Vec<InboxRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id).map(|r| {
        InboxMessage {
            customer: InboxCustomer {
                id: r.customer_id.clone(),
                email: r.email,
                first_name: r.first_name,
                last_name: r.last_name,
                trader_id: r.trader_id,
            },
            message: MessageView::from(MessageRow {
                id: r.id,
                customer_id: r.customer_id,
                direction: r.direction,
                body: r.body,
                author_user_id: r.author_user_id,
                created_at: r.created_at,
                read_at: r.read_at,
            }),
        }
    })))
}
