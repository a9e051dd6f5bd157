//! Handlers of the admin trader operations: list-header stats, the enriched detail view and
//! the bulk actions.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kyc::{Decision, Outcome, outcome};
use crate::accounts::AccountView;
use crate::accounts::model::for_trader as accounts_of;
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::Actor;
use crate::auth::roles::AUDITORS;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::traders::model::{KYC_STATUSES, TRADER_COLUMNS, view_json};
use crate::traders::{TraderRow, TraderView, change_segments, load};
use crate::transactions::{TransactionView, recent_for_trader};
use crate::util::{fmt_time, now};

/// The most traders one bulk call may touch.
pub const MAX_BULK: usize = 500;
/// How many transactions and audit entries the detail view carries.
const RECENT: i64 = 50;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    total: i64,
    active: i64,
    suspended: i64,
    by_kyc_status: BTreeMap<String, i64>,
    new_last_7_days: i64,
    new_last_30_days: i64,
    with_trading_accounts: i64,
    generated_at: String,
}

pub async fn stats(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Stats>> {
    let pool = st.db.pool();
    let groups: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT status, kyc_status, COUNT(*) FROM traders WHERE tenant_id = $1 AND deleted_at IS NULL
         GROUP BY status, kyc_status",
    )
    .bind(&actor.tenant_id)
    .fetch_all(pool)
    .await?;
    let mut by_kyc_status: BTreeMap<String, i64> =
        KYC_STATUSES.iter().map(|k| (k.to_string(), 0)).collect();
    let (mut total, mut active, mut suspended) = (0, 0, 0);
    for (status, kyc, n) in groups {
        total += n;
        match status.as_str() {
            "active" => active += n,
            "suspended" => suspended += n,
            _ => {}
        }
        *by_kyc_status.entry(kyc).or_insert(0) += n;
    }
    let now_t = Utc::now();
    let generated_at = fmt_time(now_t);
    let (new_last_7_days, new_last_30_days): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(CASE WHEN created_at >= $2 THEN 1 END), COUNT(CASE WHEN created_at >= $3 THEN 1 END)
         FROM traders WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(fmt_time(now_t - Duration::days(7)))
    .bind(fmt_time(now_t - Duration::days(30)))
    .fetch_one(pool)
    .await?;
    let with_trading_accounts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM traders t WHERE t.tenant_id = $1 AND t.deleted_at IS NULL AND EXISTS (
           SELECT 1 FROM trading_accounts a
           WHERE a.tenant_id = t.tenant_id AND a.trader_id = t.id AND a.deleted_at IS NULL)",
    )
    .bind(&actor.tenant_id)
    .fetch_one(pool)
    .await?;
    Ok(Json(Stats {
        total,
        active,
        suspended,
        by_kyc_status,
        new_last_7_days,
        new_last_30_days,
        with_trading_accounts,
        generated_at,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FullTrader {
    trader: TraderView,
    accounts: Vec<AccountView>,
    recent_transactions: Vec<TransactionView>,
    /// Only for roles that may read the audit trail (`GET /v1/audit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<Vec<AuditEntry>>,
}

pub async fn full(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<FullTrader>> {
    let pool = st.db.pool();
    let trader = TraderView::from(load(pool, &actor.tenant_id, &id).await?);
    let accounts = accounts_of(pool, &actor.tenant_id, &id).await?;
    let recent_transactions = recent_for_trader(pool, &actor.tenant_id, &id, RECENT).await?;
    let audit = if actor.roles.iter().any(|r| AUDITORS.contains(r)) {
        let mut resources: Vec<(&str, &str)> = vec![("trader", id.as_str())];
        resources.extend(accounts.iter().map(|a| ("account", a.id.as_str())));
        Some(audit::recent_for(pool, &actor.tenant_id, &resources, RECENT).await?)
    } else {
        None
    };
    Ok(Json(FullTrader {
        trader,
        accounts,
        recent_transactions,
        audit,
    }))
}

/// Checks a `traderIds` list: present, 1 to 500 entries, none blank. Duplicates are dropped
/// (first occurrence kept) so a trader is never changed twice by one call.
fn check_ids(v: &mut Validator, ids: Option<&Vec<String>>) -> Vec<String> {
    let Some(ids) = ids else {
        v.fail("traderIds", "is required");
        return Vec::new();
    };
    if ids.is_empty() {
        v.fail("traderIds", "must name at least one trader");
    } else if ids.len() > MAX_BULK {
        v.fail(
            "traderIds",
            format!("at most {MAX_BULK} traders per call, got {}", ids.len()),
        );
    } else if ids.iter().any(|i| i.trim().is_empty()) {
        v.fail("traderIds", "cannot contain empty ids");
    }
    let mut seen = HashSet::new();
    ids.iter()
        .map(|i| i.trim().to_string())
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// Loads every named trader of the tenant, in request order. One missing (unknown, deleted,
/// malformed or another tenant's) fails the whole call with 404 before anything changes.
async fn load_all(tx: &mut Tx, tenant_id: &str, ids: &[String]) -> ApiResult<Vec<TraderRow>> {
    let mut b = SqlBuilder::new(&format!(
        "SELECT {TRADER_COLUMNS} FROM traders WHERE tenant_id = "
    ));
    b.text(tenant_id);
    b.push(" AND deleted_at IS NULL AND id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.text(id.clone());
    }
    b.push(")");
    let rows: Vec<TraderRow> = b.query_as().fetch_all(&mut **tx).await?;
    let mut by_id: std::collections::HashMap<String, TraderRow> =
        rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    ids.iter()
        .map(|id| by_id.remove(id).ok_or(ApiError::NotFound("trader")))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KycBody {
    trader_ids: Option<Vec<String>>,
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KycResult {
    trader_id: String,
    previous_kyc_status: String,
    kyc_status: String,
    changed: bool,
}

#[derive(Serialize)]
pub struct KycResponse {
    data: Vec<KycResult>,
    changed: usize,
    unchanged: usize,
}

pub async fn bulk_approve_kyc(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<KycBody>,
) -> ApiResult<Json<KycResponse>> {
    bulk_kyc(&st, &actor, b, Decision::Approve).await
}

pub async fn bulk_reject_kyc(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<KycBody>,
) -> ApiResult<Json<KycResponse>> {
    bulk_kyc(&st, &actor, b, Decision::Reject).await
}

async fn bulk_kyc(
    st: &AppState,
    actor: &Actor,
    b: KycBody,
    decision: Decision,
) -> ApiResult<Json<KycResponse>> {
    let mut v = Validator::new();
    let ids = check_ids(&mut v, b.trader_ids.as_ref());
    let reason = b
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if decision == Decision::Reject && reason.is_none() {
        v.fail("reason", "is required to reject KYC");
    }
    v.max_len("reason", reason.as_deref(), 500);
    v.finish()?;

    let mut tx = st.db.begin().await?;
    let rows = load_all(&mut tx, &actor.tenant_id, &ids).await?;
    let illegal: Vec<String> = rows
        .iter()
        .filter(|r| outcome(&r.kyc_status, decision) == Outcome::Illegal)
        .map(|r| format!("{} ({})", r.id, r.kyc_status))
        .collect();
    if !illegal.is_empty() {
        let shown: Vec<&str> = illegal.iter().take(20).map(String::as_str).collect();
        let more = illegal.len() - shown.len();
        return Err(ApiError::conflict(
            "illegal_kyc_transition",
            format!(
                "KYC can only be {} from pending; nothing was changed. Not pending: {}{}",
                decision.verb(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
            ),
        ));
    }
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        let previous = row.kyc_status.clone();
        if outcome(&previous, decision) == Outcome::Unchanged {
            data.push(KycResult {
                trader_id: row.id,
                kyc_status: previous.clone(),
                previous_kyc_status: previous,
                changed: false,
            });
            continue;
        }
        let before = view_json(&TraderView::from(row.clone()));
        // Guarded on `pending`, so a concurrent decision cannot be overwritten.
        let done = sqlx::query(
            "UPDATE traders SET kyc_status = $3, updated_at = $4
             WHERE tenant_id = $1 AND id = $2 AND kyc_status = 'pending' AND deleted_at IS NULL",
        )
        .bind(&actor.tenant_id)
        .bind(&row.id)
        .bind(decision.target())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(ApiError::conflict(
                "concurrent_update",
                "A trader's KYC status changed while this request ran; nothing was changed.",
            ));
        }
        let view = TraderView::from(load(&mut *tx, &actor.tenant_id, &row.id).await?);
        // The trader record has no column for the decision's reason; it is kept with the
        // event and the audit entry, which is where the decision is looked up.
        let mut after = view_json(&view);
        if let Value::Object(m) = &mut after {
            m.insert(
                "kycDecisionReason".into(),
                reason.clone().map(Value::String).unwrap_or(Value::Null),
            );
        }
        events::emit(
            &mut tx,
            &actor.tenant_id,
            decision.event(),
            "trader",
            &row.id,
            &after,
        )
        .await?;
        audit::record(
            &mut tx,
            actor,
            decision.audit_action(),
            "trader",
            Some(&row.id),
            Some(&before),
            Some(&after),
        )
        .await?;
        data.push(KycResult {
            trader_id: row.id,
            previous_kyc_status: previous,
            kyc_status: view.kyc_status,
            changed: true,
        });
    }
    tx.commit().await?;
    let changed = data.iter().filter(|r| r.changed).count();
    Ok(Json(KycResponse {
        unchanged: data.len() - changed,
        changed,
        data,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SegmentsBody {
    trader_ids: Option<Vec<String>>,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Serialize)]
pub struct SegmentsResponse {
    data: Vec<TraderView>,
}

pub async fn bulk_segments(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<SegmentsBody>,
) -> ApiResult<Json<SegmentsResponse>> {
    let mut v = Validator::new();
    let ids = check_ids(&mut v, b.trader_ids.as_ref());
    v.check(
        !(b.add.is_empty() && b.remove.is_empty()),
        "add",
        "add or remove at least one segment",
    );
    v.check(
        b.add.iter().all(|s| !s.trim().is_empty() && s.len() <= 64),
        "add",
        "segments are 1-64 characters",
    );
    v.check(b.add.len() <= 50, "add", "at most 50 segments");
    v.check(b.remove.len() <= 50, "remove", "at most 50 segments");
    v.finish()?;
    let mut tx = st.db.begin().await?;
    // Every id is checked before the first change, so a 404 never follows partial work.
    load_all(&mut tx, &actor.tenant_id, &ids).await?;
    let mut data = Vec::with_capacity(ids.len());
    for id in &ids {
        data.push(change_segments(&mut tx, &actor, id, &b.add, &b.remove).await?);
    }
    tx.commit().await?;
    Ok(Json(SegmentsResponse { data }))
}
