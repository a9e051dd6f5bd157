//! Trading-account rows, their API view, the status state machine and loading within a tenant.

use serde::Serialize;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::util::parse_json;

/// Trading platforms an account can live on; `other` covers in-house or niche platforms.
pub const PLATFORMS: &[&str] = &[
    "mt4",
    "mt5",
    "ctrader",
    "dxtrade",
    "match_trader",
    "tradelocker",
    "other",
];

pub const STATUSES: &[&str] = &["active", "disabled", "archived"];

/// `active <-> disabled`, either of them `-> archived`; `archived` is final (the account stays
/// on record for its transactions and audit trail but can no longer change).
pub fn transition_allowed(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            ("active", "disabled")
                | ("disabled", "active")
                | ("active", "archived")
                | ("disabled", "archived")
        )
}

pub const MAX_LEVERAGE: i64 = 10_000;

#[derive(sqlx::FromRow, Clone, PartialEq)]
pub struct AccountRow {
    pub id: String,
    pub trader_id: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub account_number: String,
    pub currency: String,
    pub balance: String,
    pub equity: String,
    pub leverage: i64,
    pub is_demo: i64,
    pub metadata: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

pub const ACCOUNT_COLUMNS: &str = "id, trader_id, platform, external_id, account_number, currency, balance, equity, leverage, is_demo, metadata, status, created_at, updated_at, deleted_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub trader_id: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub account_number: String,
    pub currency: String,
    pub balance: String,
    pub equity: String,
    pub leverage: i64,
    pub is_demo: bool,
    pub metadata: Value,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

impl From<AccountRow> for AccountView {
    fn from(r: AccountRow) -> Self {
        AccountView {
            metadata: parse_json(&r.metadata),
            is_demo: r.is_demo != 0,
            id: r.id,
            trader_id: r.trader_id,
            platform: r.platform,
            external_id: r.external_id,
            account_number: r.account_number,
            currency: r.currency,
            balance: r.balance,
            equity: r.equity,
            leverage: r.leverage,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        }
    }
}

pub fn view_json(v: &AccountView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Loads a live (not soft-deleted) account of the tenant; anything else is a 404.
pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<AccountRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    find(exec, tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("account"))
}

/// Like [`load`], but lets the caller decide what a missing account means (a 400 naming the
/// field when the id comes from a request body).
pub async fn find<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<Option<AccountRow>, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM trading_accounts WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?)
}

/// Live accounts of one trader, newest first.
pub async fn for_trader<'e, E>(
    exec: E,
    tenant_id: &str,
    trader_id: &str,
) -> Result<Vec<AccountView>, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM trading_accounts
         WHERE tenant_id = $1 AND trader_id = $2 AND deleted_at IS NULL ORDER BY id DESC"
    ))
    .bind(tenant_id)
    .bind(trader_id)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(AccountView::from).collect())
}

/// A trader named in a request body must be a live trader of the caller's tenant; otherwise the
/// body is wrong (400 naming the field), not the URL (404).
pub async fn require_trader<'e, E>(
    exec: E,
    tenant_id: &str,
    trader_id: &str,
    field: &str,
) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM traders WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(trader_id)
    .fetch_optional(exec)
    .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::field(field, "is not a trader of this tenant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_machine() {
        assert!(transition_allowed("active", "disabled"));
        assert!(transition_allowed("disabled", "active"));
        assert!(transition_allowed("disabled", "archived"));
        assert!(transition_allowed("active", "active"));
        assert!(!transition_allowed("archived", "active"));
        assert!(!transition_allowed("archived", "disabled"));
    }
}
