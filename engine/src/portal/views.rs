//! What the portal shows a trader of its own records. These views leave out the CRM's internal
//! fields (segments, metadata, assignee, suspension reason, PSP metadata).

use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::traders::TraderRow;

/// The (customer id, trader id) of a portal request.
pub fn portal_ids(actor: &Actor) -> ApiResult<(&str, &str)> {
    match (actor.customer_id.as_deref(), actor.trader_id.as_deref()) {
        (Some(c), Some(t)) => Ok((c, t)),
        _ => Err(ApiError::Unauthorized("unauthenticated")),
    }
}

/// The (customer id, trader id) of a portal request whose customer the broker has approved.
///
/// Sign-up links a customer to an existing trader by e-mail alone, without proof that the
/// person owns that address; approval by the broker is what opens the trader's records
/// (accounts, money, personal data) to the portal session. Until then the session reaches only
/// its own customer record and its conversation with the broker.
pub async fn approved_ids<'a>(st: &AppState, actor: &'a Actor) -> ApiResult<(&'a str, &'a str)> {
    let (customer_id, trader_id) = portal_ids(actor)?;
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(&actor.tenant_id)
            .bind(customer_id)
            .fetch_optional(st.db.pool())
            .await?;
    match status {
        Some((s,)) if s == "approved" => Ok((customer_id, trader_id)),
        Some(_) => Err(not_approved()),
        None => Err(ApiError::Unauthorized("invalid_session")),
    }
}

pub fn not_approved() -> ApiError {
    ApiError::conflict(
        "customer_not_approved",
        "This opens once the broker has approved your portal account.",
    )
}

pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalTrader {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub region: Option<String>,
    pub kyc_status: String,
    pub status: String,
    pub terms_accepted_at: Option<String>,
    pub terms_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TraderRow> for PortalTrader {
    fn from(r: TraderRow) -> Self {
        PortalTrader {
            id: r.id,
            email: r.email,
            phone: r.phone,
            first_name: r.first_name,
            last_name: r.last_name,
            country: r.country,
            date_of_birth: r.date_of_birth,
            address_line1: r.address_line1,
            address_line2: r.address_line2,
            city: r.city,
            postal_code: r.postal_code,
            region: r.region,
            kyc_status: r.kyc_status,
            status: r.status,
            terms_accepted_at: r.terms_accepted_at,
            terms_version: r.terms_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalAccount {
    pub id: String,
    pub platform: String,
    pub account_number: String,
    pub currency: String,
    pub balance: String,
    pub equity: String,
    pub leverage: i64,
    #[serde(serialize_with = "crate::util::int_as_bool")]
    pub is_demo: i64,
    pub status: String,
    pub created_at: String,
}

pub const ACCOUNT_COLUMNS: &str = "id, platform, account_number, currency, balance, equity, leverage, is_demo, status, created_at";

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalTransaction {
    pub id: String,
    pub account_id: Option<String>,
    pub kind: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub occurred_at: String,
    pub created_at: String,
}

pub const TRANSACTION_COLUMNS: &str = "id, account_id, kind, status, amount, currency, reference, description, occurred_at, created_at";

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalPosition {
    pub id: String,
    pub account_id: String,
    pub symbol: String,
    pub side: String,
    pub volume: String,
    pub open_price: String,
    pub current_price: Option<String>,
    pub profit: Option<String>,
    pub opened_at: String,
    pub closed_at: Option<String>,
}

pub const POSITION_COLUMNS: &str =
    "id, account_id, symbol, side, volume, open_price, current_price, profit, opened_at, closed_at";

#[derive(sqlx::FromRow)]
pub struct AllowlistRow {
    pub id: String,
    pub chain: String,
    pub address: String,
    pub label: Option<String>,
    pub active_from: String,
    pub created_at: String,
}

pub const ALLOWLIST_COLUMNS: &str = "id, chain, address, label, active_from, created_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistEntry {
    pub id: String,
    pub chain: String,
    pub address: String,
    pub label: Option<String>,
    /// Addresses become usable for withdrawals 24 hours after they are added.
    pub active_from: String,
    pub active: bool,
    pub created_at: String,
}

impl From<AllowlistRow> for AllowlistEntry {
    fn from(r: AllowlistRow) -> Self {
        let active = r.active_from <= crate::util::now();
        AllowlistEntry {
            id: r.id,
            chain: r.chain,
            address: r.address,
            label: r.label,
            active_from: r.active_from,
            active,
            created_at: r.created_at,
        }
    }
}
