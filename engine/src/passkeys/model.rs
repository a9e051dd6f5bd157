//! Passkey rows, their API view and loading within a tenant and user.

use serde::Serialize;
use serde_json::Value;
use webauthn_rs::prelude::Passkey;

use crate::http::error::ApiError;

#[derive(sqlx::FromRow, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub credential_id: String,
    pub credential: String,
    pub sign_count: i64,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

pub const PASSKEY_COLUMNS: &str =
    "id, user_id, label, credential_id, credential, sign_count, created_at, last_used_at";

/// What the API shows of a passkey: never the credential or its public key.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<&PasskeyRow> for PasskeyView {
    fn from(r: &PasskeyRow) -> Self {
        PasskeyView {
            id: r.id.clone(),
            label: r.label.clone(),
            created_at: r.created_at.clone(),
            last_used_at: r.last_used_at.clone(),
        }
    }
}

pub fn view_json(v: &PasskeyView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl PasskeyRow {
    pub fn passkey(&self) -> Result<Passkey, ApiError> {
        serde_json::from_str(&self.credential).map_err(|e| {
            ApiError::internal(format!("stored passkey {} is unreadable: {e}", self.id))
        })
    }
}

/// Loads one passkey of a user; another user's or tenant's, or a malformed id, is a 404.
pub async fn load_own<'e, E>(
    exec: E,
    tenant_id: &str,
    user_id: &str,
    id: &str,
) -> Result<PasskeyRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<PasskeyRow> = sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
    ))
    .bind(tenant_id)
    .bind(user_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("passkey"))
}

/// Every passkey of a user, oldest first (the order they are offered to the browser).
pub async fn all_of_user<'e, E>(
    exec: E,
    tenant_id: &str,
    user_id: &str,
) -> Result<Vec<PasskeyRow>, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE tenant_id = $1 AND user_id = $2 ORDER BY id"
    ))
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(exec)
    .await?)
}
