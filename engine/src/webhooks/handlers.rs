//! Handlers of the webhook operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{
    self, CreatedView, DEAD, DELIVERY_COLUMNS, DeliveryView, NewDelivery, PENDING, RETRYING,
    STATUSES, SUB_COLUMNS, SubscriptionRow, SubscriptionView,
};
use super::worker::{self, Worker};
use super::{patterns, signing, url_safety};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::{fmt_time, new_id, now};

/// Live subscriptions a tenant may have.
pub const MAX_SUBSCRIPTIONS: i64 = 100;
pub const MAX_PATTERNS: usize = 50;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn page_request(q: &HashMap<String, String>) -> ApiResult<PageRequest> {
    PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )
}

pub async fn list_subscriptions(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let page = page_request(&q)?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE deleted_at IS NULL AND tenant_id = "
    ));
    b.text(&actor.tenant_id);
    match q.get("isActive").map(String::as_str) {
        Some("true") => {
            b.push(" AND is_active = 1");
        }
        Some("false") => {
            b.push(" AND is_active = 0");
        }
        None | Some("") => {}
        Some(_) => return Err(ApiError::field("isActive", "must be true or false")),
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<SubscriptionRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(|r| SubscriptionView::from(&r)),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    is_active: Option<bool>,
}

pub async fn create_subscription(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<CreatedView>)> {
    let mut v = Validator::new();
    let url = match v.required("url", b.url.as_deref()).map(url_safety::parse) {
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            v.fail("url", e);
            None
        }
        None => None,
    };
    let mut patterns_in: Vec<String> = Vec::new();
    match &b.events {
        None => v.fail("events", "is required"),
        Some(list) if list.is_empty() => v.fail("events", "list at least one event pattern"),
        Some(list) if list.len() > MAX_PATTERNS => {
            v.fail("events", format!("at most {MAX_PATTERNS} patterns"))
        }
        Some(list) => {
            for p in list.iter().map(|p| p.trim()) {
                if let Some(problem) = patterns::problem(p) {
                    v.fail("events", format!("`{p}`: {problem}"));
                } else if !patterns_in.iter().any(|x| x == p) {
                    patterns_in.push(p.to_string());
                }
            }
        }
    }
    v.max_len("description", b.description.as_deref(), 500);
    v.finish()?;
    let Some(url) = url else {
        return Err(ApiError::field("url", "is required"));
    };
    if !st.settings.webhook_allow_private
        && let Err(e) = url_safety::check_at_create(&url).await
    {
        return Err(ApiError::field("url", format!("refused: {e}")));
    }

    let mut tx = st.db.begin().await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::conflict(
            "webhook_subscription_limit",
            format!("A tenant can have at most {MAX_SUBSCRIPTIONS} webhook subscriptions."),
        ));
    }
    let id = new_id();
    let secret = signing::new_secret();
    let ts = now();
    sqlx::query(
        "INSERT INTO webhook_subscriptions (tenant_id, id, url, events, description, secret, is_active,
           created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(url.as_str())
    .bind(serde_json::to_string(&patterns_in).unwrap_or_else(|_| "[]".into()))
    .bind(b.description.as_deref().map(str::trim))
    .bind(st.secrets.seal(&worker::secret_context(&actor.tenant_id, &id), &secret))
    .bind(i64::from(b.is_active.unwrap_or(true)))
    .bind(&actor.user_id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let row = store::load_subscription(&mut *tx, &actor.tenant_id, &id).await?;
    let view = SubscriptionView::from(&row);
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "webhook_subscription.created",
        "webhook_subscription",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "webhook_subscription.create",
        "webhook_subscription",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedView {
            subscription: view,
            secret,
        }),
    ))
}

pub async fn delete_subscription(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let row = store::load_subscription(&mut *tx, &actor.tenant_id, &id).await?;
    let before = to_json(&SubscriptionView::from(&row));
    let ts = now();
    let done = sqlx::query(
        "UPDATE webhook_subscriptions SET deleted_at = $3, is_active = 0, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("webhook subscription"));
    }
    // Queued deliveries are abandoned; one being attempted right now finishes, and the worker
    // abandons it if it would be retried.
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $4, next_attempt_at = NULL,
           last_error = 'subscription deleted', updated_at = $3
         WHERE tenant_id = $1 AND subscription_id = $2 AND next_attempt_at IS NOT NULL
           AND (lease_until IS NULL OR lease_until < $3)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .bind(DEAD)
    .execute(&mut *tx)
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "webhook_subscription.deleted",
        "webhook_subscription",
        &id,
        &before,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "webhook_subscription.delete",
        "webhook_subscription",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a synthetic `webhook.test` event to the subscription now, inside the request, and
/// answers with the delivery record. A test delivery is attempted once (a manual retry may
/// send it again).
pub async fn test_subscription(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let sub = store::load_subscription(st.db.pool(), &actor.tenant_id, &id).await?;
    let worker = Worker::new(&st.settings, st.secrets.clone())?;
    let delivery_id = new_id();
    let event_id = new_id();
    let at = Utc::now();
    let ts = fmt_time(at);
    let body = store::envelope(
        &event_id,
        "webhook.test",
        &ts,
        &actor.tenant_id,
        json!({"subscriptionId": sub.id, "message": "Test event sent from LumireCRM."}),
    );
    let lease = worker::lease_until(at);
    let mut tx = st.db.begin().await?;
    store::insert_delivery(
        &mut *tx,
        NewDelivery {
            tenant_id: &actor.tenant_id,
            id: &delivery_id,
            subscription_id: &sub.id,
            event_id: &event_id,
            event_type: "webhook.test",
            body: &body,
            max_attempts: 1,
            now: &ts,
            lease: Some((&lease, worker.id())),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "webhook_subscription.test",
        "webhook_subscription",
        Some(&sub.id),
        None,
        Some(&json!({"deliveryId": delivery_id})),
    )
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "webhook_subscription.tested",
        "webhook_subscription",
        &sub.id,
        &json!({"subscriptionId": sub.id, "deliveryId": delivery_id}),
    )
    .await?;
    tx.commit().await?;
    let row = worker
        .attempt(&st.db, &actor.tenant_id, &delivery_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeliveryView::new(row, Utc::now())),
    ))
}

pub async fn list_deliveries(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let page = page_request(&q)?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(s) = q.get("status").filter(|s| !s.is_empty()) {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                format!("must be one of: {}", STATUSES.join(", ")),
            ));
        }
        b.push(" AND status = ").text(s.clone());
    }
    for (param, column) in [
        ("subscriptionId", "subscription_id"),
        ("eventId", "event_id"),
        ("eventType", "event_type"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<store::DeliveryRow> = b.query_as().fetch_all(st.db.pool()).await?;
    let at = Utc::now();
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(|r| DeliveryView::new(r, at)),
    ))
}

/// Re-queues a `retrying` or `dead` delivery for an attempt now. A dead delivery gets one
/// more attempt (and is dead again if it fails); a retrying one keeps its schedule otherwise.
pub async fn retry_delivery(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    let at = Utc::now();
    let ts = fmt_time(at);
    let mut tx = st.db.begin().await?;
    let d = store::load_delivery(&mut *tx, &actor.tenant_id, &id).await?;
    if let Some(problem) = worker::requeue_problem(&d, at) {
        return Err(problem);
    }
    let live: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&d.subscription_id)
    .fetch_optional(&mut *tx)
    .await?;
    if live.is_none() {
        return Err(ApiError::conflict(
            "subscription_deleted",
            "The delivery's subscription was deleted.",
        ));
    }
    // Conditional on the state just read, so a worker claiming the row in between wins and
    // this answers 409 (PostgreSQL takes no lock on the read above).
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, updated_at = $4
         WHERE tenant_id = $1 AND id = $2 AND status IN ($5, $6)
           AND (lease_until IS NULL OR lease_until < $4)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(PENDING)
    .bind(&ts)
    .bind(RETRYING)
    .bind(DEAD)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "delivery_in_flight",
            "The delivery is being attempted right now.",
        ));
    }
    let after = store::load_delivery(&mut *tx, &actor.tenant_id, &id).await?;
    audit::record(
        &mut tx,
        &actor,
        "webhook_delivery.retry",
        "webhook_delivery",
        Some(&id),
        Some(&json!({"status": d.status, "attempts": d.attempts})),
        Some(&json!({"status": after.status, "nextAttemptAt": after.next_attempt_at})),
    )
    .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "webhook_delivery.retried",
        "webhook_delivery",
        &id,
        &json!({"deliveryId": id, "subscriptionId": after.subscription_id, "previousStatus": d.status}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(DeliveryView::new(after, at)))
}
