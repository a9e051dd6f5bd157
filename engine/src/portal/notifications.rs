//! The portal notification feed: what the broker tells a trader (account approved, new message,
//! deposit recorded, new withdrawal address), written in the transaction of the change itself.

use serde::Serialize;
use serde_json::Value;

use crate::db::Tx;
use crate::http::error::ApiError;
use crate::util::{new_id, now, parse_json};

pub async fn notify(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: &str,
    kind: &str,
    title: &str,
    body: &str,
    data: &Value,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO trader_notifications (tenant_id, id, trader_id, kind, title, body, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(trader_id)
    .bind(kind)
    .bind(title)
    .bind(body)
    .bind(data.to_string())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: String,
    pub read_at: Option<String>,
    pub created_at: String,
}

pub const NOTIFICATION_COLUMNS: &str = "id, kind, title, body, data, read_at, created_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: Value,
    pub read_at: Option<String>,
    pub created_at: String,
}

impl From<NotificationRow> for NotificationView {
    fn from(r: NotificationRow) -> Self {
        NotificationView {
            data: parse_json(&r.data),
            id: r.id,
            kind: r.kind,
            title: r.title,
            body: r.body,
            read_at: r.read_at,
            created_at: r.created_at,
        }
    }
}
