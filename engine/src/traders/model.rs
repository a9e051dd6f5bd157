//! Trader rows, their API view and loading within a tenant.

use serde::Serialize;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::util::{parse_json, parse_string_list};

pub const KYC_STATUSES: &[&str] = &["not_started", "pending", "approved", "rejected"];

#[derive(sqlx::FromRow, Clone)]
pub struct TraderRow {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub segments: String,
    pub source: Option<String>,
    pub assigned_to_id: Option<String>,
    pub metadata: String,
    pub kyc_status: String,
    pub status: String,
    pub suspended_at: Option<String>,
    pub suspension_reason: Option<String>,
    pub terms_accepted_at: Option<String>,
    pub terms_version: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub region: Option<String>,
    pub referred_by_trader_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

pub const TRADER_COLUMNS: &str = "id, email, phone, first_name, last_name, country, date_of_birth, segments, source, assigned_to_id, metadata, kyc_status, status, suspended_at, suspension_reason, terms_accepted_at, terms_version, address_line1, address_line2, city, postal_code, region, referred_by_trader_id, created_at, updated_at, deleted_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TraderView {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub segments: Vec<String>,
    pub source: Option<String>,
    pub assigned_to_id: Option<String>,
    pub metadata: Value,
    pub kyc_status: String,
    pub status: String,
    pub suspended_at: Option<String>,
    pub suspension_reason: Option<String>,
    pub terms_accepted_at: Option<String>,
    pub terms_version: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub region: Option<String>,
    pub referred_by_trader_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

impl From<TraderRow> for TraderView {
    fn from(r: TraderRow) -> Self {
        TraderView {
            segments: parse_string_list(&r.segments),
            metadata: parse_json(&r.metadata),
            id: r.id,
            email: r.email,
            phone: r.phone,
            first_name: r.first_name,
            last_name: r.last_name,
            country: r.country,
            date_of_birth: r.date_of_birth,
            source: r.source,
            assigned_to_id: r.assigned_to_id,
            kyc_status: r.kyc_status,
            status: r.status,
            suspended_at: r.suspended_at,
            suspension_reason: r.suspension_reason,
            terms_accepted_at: r.terms_accepted_at,
            terms_version: r.terms_version,
            address_line1: r.address_line1,
            address_line2: r.address_line2,
            city: r.city,
            postal_code: r.postal_code,
            region: r.region,
            referred_by_trader_id: r.referred_by_trader_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        }
    }
}

/// Loads a live (not soft-deleted) trader of the tenant; anything else is a 404.
pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<TraderRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<TraderRow> = sqlx::query_as(&format!(
        "SELECT {TRADER_COLUMNS} FROM traders WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("trader"))
}

/// Normalises a segment list: trimmed, non-empty, unique, in first-seen order.
pub fn clean_segments(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

pub fn view_json(v: &TraderView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Length limits of the address fields, shared by the operator and portal edits.
pub fn check_address(
    v: &mut crate::http::validate::Validator,
    line1: Option<&str>,
    line2: Option<&str>,
    city: Option<&str>,
    postal_code: Option<&str>,
    region: Option<&str>,
) {
    v.max_len("addressLine1", line1, 200);
    v.max_len("addressLine2", line2, 200);
    v.max_len("city", city, 100);
    v.max_len("postalCode", postal_code, 20);
    v.max_len("region", region, 100);
}

/// A referrer must be another live trader of the same tenant.
pub async fn check_referrer(
    tx: &mut crate::db::Tx,
    tenant_id: &str,
    referrer_id: &str,
    trader_id: &str,
) -> Result<(), ApiError> {
    if referrer_id == trader_id {
        return Err(ApiError::field(
            "referredByTraderId",
            "a trader cannot refer themselves",
        ));
    }
    load(&mut **tx, tenant_id, referrer_id)
        .await
        .map(|_| ())
        .map_err(|_| ApiError::field("referredByTraderId", "is not a trader of this tenant"))
}
