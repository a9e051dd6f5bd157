//! The events outbox: every state change records a named event (`trader.created`, ...) in the
//! same transaction as the change. Webhooks, workflows and plugins consume it from there.
//! Its errors are the database's own; the HTTP layer maps them (`http::error`).

use serde_json::Value;

use crate::db::Tx;
use crate::util::{new_id, now};

pub async fn emit(
    tx: &mut Tx,
    tenant_id: &str,
    name: &str,
    resource_type: &str,
    resource_id: &str,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (tenant_id, id, name, resource_type, resource_id, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(name)
    .bind(resource_type)
    .bind(resource_id)
    .bind(payload.to_string())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
