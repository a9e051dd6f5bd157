//! Subscription and delivery rows, their API views and the queries the handlers and the worker
//! share.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::util::{parse_string_list, parse_time};

/// Queued delivery states; `succeeded` and `dead` are final (until a manual retry).
pub const PENDING: &str = "pending";
pub const RETRYING: &str = "retrying";
pub const SUCCEEDED: &str = "succeeded";
pub const DEAD: &str = "dead";
pub const STATUSES: [&str; 4] = [PENDING, RETRYING, SUCCEEDED, DEAD];

#[derive(sqlx::FromRow, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub secret: String,
    pub is_active: i64,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

pub const SUB_COLUMNS: &str =
    "id, url, events, description, secret, is_active, created_at, updated_at, deleted_at";

impl SubscriptionRow {
    pub fn patterns(&self) -> Vec<String> {
        parse_string_list(&self.events)
    }
}

/// A subscription as the API shows it. The secret is never part of it (see `CreatedView`).
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&SubscriptionRow> for SubscriptionView {
    fn from(r: &SubscriptionRow) -> Self {
        SubscriptionView {
            id: r.id.clone(),
            url: r.url.clone(),
            events: r.patterns(),
            description: r.description.clone(),
            is_active: r.is_active != 0,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// The creation response: the view plus the signing secret, shown this once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedView {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub secret: String,
}

/// A live (not deleted) subscription of the tenant, or 404.
pub async fn load_subscription<'e, E>(
    exec: E,
    tenant_id: &str,
    id: &str,
) -> ApiResult<SubscriptionRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<SubscriptionRow> = sqlx::query_as(&format!(
        "SELECT {SUB_COLUMNS} FROM webhook_subscriptions
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("webhook subscription"))
}

#[derive(sqlx::FromRow, Clone)]
pub struct DeliveryRow {
    pub tenant_id: String,
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Option<String>,
    pub lease_until: Option<String>,
    pub claimed_by: Option<String>,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub succeeded_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const DELIVERY_COLUMNS: &str = "tenant_id, id, subscription_id, event_id, event_type, body, status, attempts,
    max_attempts, next_attempt_at, lease_until, claimed_by, response_status, response_body, last_error,
    last_attempt_at, succeeded_at, created_at, updated_at";

impl DeliveryRow {
    /// A worker holds the row right now.
    pub fn in_flight(&self, now: DateTime<Utc>) -> bool {
        self.lease_until
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|t| t > now)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub in_flight: bool,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Option<String>,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub succeeded_at: Option<String>,
    /// The JSON body sent (the same bytes on every attempt).
    pub payload: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl DeliveryView {
    pub fn new(r: DeliveryRow, now: DateTime<Utc>) -> Self {
        DeliveryView {
            in_flight: r.in_flight(now),
            payload: serde_json::from_str(&r.body).unwrap_or(Value::Null),
            id: r.id,
            subscription_id: r.subscription_id,
            event_id: r.event_id,
            event_type: r.event_type,
            status: r.status,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            next_attempt_at: r.next_attempt_at,
            response_status: r.response_status,
            response_body: r.response_body,
            error: r.last_error,
            last_attempt_at: r.last_attempt_at,
            succeeded_at: r.succeeded_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn load_delivery<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<DeliveryRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<DeliveryRow> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("webhook delivery"))
}

/// The body POSTed to receivers.
pub fn envelope(id: &str, kind: &str, created_at: &str, tenant_id: &str, data: Value) -> String {
    serde_json::json!({
        "id": id,
        "type": kind,
        "createdAt": created_at,
        "tenantId": tenant_id,
        "data": data,
    })
    .to_string()
}

pub struct NewDelivery<'a> {
    pub tenant_id: &'a str,
    pub id: &'a str,
    pub subscription_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    pub max_attempts: i64,
    pub now: &'a str,
    /// Claimed at once by this worker (a test send delivers inside its request).
    pub lease: Option<(&'a str, &'a str)>,
}

/// Inserts a queued delivery unless this event already reached this subscription. Returns
/// whether a row was written.
pub async fn insert_delivery<'e, E>(exec: E, d: NewDelivery<'_>) -> ApiResult<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let (lease_until, claimed_by) = match d.lease {
        Some((until, by)) => (Some(until), Some(by)),
        None => (None, None),
    };
    let r = sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, subscription_id, event_id, event_type, body, status,
           attempts, max_attempts, next_attempt_at, lease_until, claimed_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $10, $8, $8)
         ON CONFLICT (tenant_id, subscription_id, event_id) DO NOTHING",
    )
    .bind(d.tenant_id)
    .bind(d.id)
    .bind(d.subscription_id)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.body)
    .bind(d.max_attempts)
    .bind(d.now)
    .bind(lease_until)
    .bind(claimed_by)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}
