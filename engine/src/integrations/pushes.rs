//! Balance operations pushed to the trading platform: when a deposit to a trading account
//! settles, or a withdrawal from one is approved, the money movement is queued here in the same
//! transaction, and a worker pushes it through the account's connector.
//!
//! A push is never doubled: the queue holds one row per operation (unique comment
//! `lumire:<kind>:<reference id>`), a worker claims a row with a lease before pushing, and the
//! comment travels with the operation so the connector recognises a retry on the platform
//! (MT5 connectors look the comment up before posting). Failures are retried with exponential
//! backoff (30 s · 2^(n-1)) and, after [`MAX_ATTEMPTS`], the row is `dead` until someone retries
//! it by hand. `GET /v1/integrations/pushes` shows the queue.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::configs::connector_config;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::connectors;
use crate::db::{SqlBuilder, Tx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::{Page, PageRequest};
use crate::util::{fmt_time, new_id, now};

pub const MAX_ATTEMPTS: i64 = 8;
const LEASE_SECS: i64 = 120;
const BATCH: i64 = 50;

/// Queues the platform side of a money movement on `account_id`, if that account lives on a
/// platform this tenant has an active connector configuration for. `amount` is signed: positive
/// credits the platform account, negative debits it.
pub async fn enqueue(
    tx: &mut Tx,
    tenant_id: &str,
    account_id: &str,
    kind: &str,
    amount: Decimal,
    reference_type: &str,
    reference_id: &str,
) -> ApiResult<()> {
    let acc: Option<(String, String, String)> = sqlx::query_as(
        "SELECT a.platform, a.account_number, a.currency FROM trading_accounts a
         JOIN integration_configs c ON c.tenant_id = a.tenant_id AND c.platform = a.platform AND c.is_active = 1
         WHERE a.tenant_id = $1 AND a.id = $2",
    )
    .bind(tenant_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((platform, login, currency)) = acc else {
        return Ok(());
    };
    let ts = now();
    sqlx::query(
        "INSERT INTO connector_pushes (tenant_id, id, platform, account_id, login, kind, amount, currency, comment,
           reference_type, reference_id, status, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $12, $12)
         ON CONFLICT (tenant_id, comment) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(&platform)
    .bind(account_id)
    .bind(&login)
    .bind(kind)
    .bind(amount.to_string())
    .bind(&currency)
    .bind(format!("lumire:{kind}:{reference_id}"))
    .bind(reference_type)
    .bind(reference_id)
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PushRow {
    #[serde(skip)]
    tenant_id: String,
    id: String,
    platform: String,
    account_id: String,
    login: String,
    kind: String,
    amount: String,
    currency: String,
    comment: String,
    reference_type: String,
    reference_id: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    deal_id: Option<String>,
    next_attempt_at: String,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str = "tenant_id, id, platform, account_id, login, kind, amount, currency, comment, reference_type, reference_id, status, attempts, last_error, deal_id, next_attempt_at, created_at, updated_at";

pub fn backoff_secs(attempts: i64) -> i64 {
    30 * (1i64 << (attempts.clamp(1, 10) - 1))
}

/// One round: claims due pushes (one process wins each row) and pushes them. Returns how many
/// were attempted.
pub async fn run_once(st: &AppState) -> ApiResult<usize> {
    let now_t = Utc::now();
    let now_s = fmt_time(now_t);
    let due: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT tenant_id, id FROM connector_pushes
         WHERE status IN ('pending', 'failed') AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
         ORDER BY next_attempt_at LIMIT {BATCH}"
    ))
    .bind(&now_s)
    .fetch_all(st.db.pool())
    .await?;
    let mut attempted = 0;
    for (tenant_id, id) in due {
        let lease = fmt_time(now_t + chrono::Duration::seconds(LEASE_SECS));
        let claimed = sqlx::query(
            "UPDATE connector_pushes SET lease_until = $3
             WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'failed') AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(&tenant_id)
        .bind(&id)
        .bind(&lease)
        .bind(&now_s)
        .execute(st.db.pool())
        .await?;
        if claimed.rows_affected() != 1 {
            continue;
        }
        attempted += 1;
        push(st, &tenant_id, &id, &lease).await?;
    }
    Ok(attempted)
}

async fn load(st: &AppState, tenant_id: &str, id: &str) -> ApiResult<PushRow> {
    let row: Option<PushRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM connector_pushes WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(st.db.pool())
    .await?;
    row.ok_or(ApiError::NotFound("push"))
}

/// Makes one attempt under the lease this worker claimed (`lease`) and records its outcome,
/// unless the lease was lost meanwhile (it ran out and another worker claimed the row): then
/// the lease's new holder records its own outcome, and the push's comment keeps the platform
/// from applying the operation twice.
#[tracing::instrument(name = "balance_push", skip(st, lease))]
async fn push(st: &AppState, tenant_id: &str, id: &str, lease: &str) -> ApiResult<()> {
    let p = load(st, tenant_id, id).await?;
    let outcome = attempt(st, &p).await;
    let attempts = p.attempts + 1;
    let ts = now();
    let (status, error, deal, next) = match outcome {
        Ok(deal) => ("pushed", None, deal, ts.clone()),
        Err(e) if attempts >= MAX_ATTEMPTS => ("dead", Some(e), None, ts.clone()),
        Err(e) => (
            "failed",
            Some(e),
            None,
            fmt_time(Utc::now() + chrono::Duration::seconds(backoff_secs(attempts))),
        ),
    };
    let done = sqlx::query(
        "UPDATE connector_pushes SET status = $3, attempts = $4, last_error = $5, deal_id = COALESCE($6, deal_id),
           next_attempt_at = $7, lease_until = NULL, updated_at = $8
         WHERE tenant_id = $1 AND id = $2 AND lease_until = $9",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(status)
    .bind(attempts)
    .bind(&error)
    .bind(&deal)
    .bind(&next)
    .bind(&ts)
    .bind(lease)
    .execute(st.db.pool())
    .await?;
    if done.rows_affected() != 1 {
        tracing::warn!(
            tenant_id,
            push = id,
            status,
            "balance push outcome dropped: lease lost"
        );
        return Ok(());
    }
    if let Some(e) = &error {
        tracing::warn!(tenant_id, push = id, status, error = %e, "balance push failed");
    }
    Ok(())
}

/// One push through the platform's connector: the deal id, or why it failed.
async fn attempt(st: &AppState, p: &PushRow) -> Result<Option<String>, String> {
    let connector = st
        .connectors
        .for_platform(&p.platform)
        .ok_or_else(|| format!("no connector for {} is installed", p.platform))?;
    let config = connector_config(st, &p.tenant_id, &p.platform)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the platform is no longer configured")?;
    let request = json!({
        "config": config,
        "op": {
            "login": p.login, "amount": p.amount, "comment": p.comment, "idempotencyKey": p.comment,
            "kind": if p.kind.starts_with("credit") { "credit" } else { "balance" },
        },
    });
    match connectors::call(&connector, &p.tenant_id, "push-balance-operation", request).await {
        Ok(v) => Ok(v.as_str().map(str::to_string)),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PushRow>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM connector_pushes WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(s) = q.get("status") {
        if !["pending", "failed", "pushed", "dead"].contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                "must be pending, failed, pushed or dead",
            ));
        }
        b.push(" AND status = ").text(s.clone());
    }
    if let Some(r) = q.get("referenceId") {
        b.push(" AND reference_id = ").text(r.clone());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<PushRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

/// Re-queues a failed or dead push for an attempt now.
pub async fn retry(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<PushRow>> {
    let p = load(&st, &actor.tenant_id, &id).await?;
    if p.status != "failed" && p.status != "dead" {
        return Err(ApiError::conflict(
            "push_not_retryable",
            format!("A {} push cannot be retried.", p.status),
        ));
    }
    let mut tx = st.db.begin().await?;
    // Compare-and-set on the status read above: of racing retries one re-queues the push (and
    // is audited), the others get 409.
    let done = sqlx::query(
        "UPDATE connector_pushes SET status = 'pending', next_attempt_at = $3, attempts = CASE WHEN status = 'dead' THEN $4 ELSE attempts END, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND status = $5",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(now())
    .bind(MAX_ATTEMPTS - 1)
    .bind(&p.status)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("push"));
    }
    audit::record(
        &mut tx,
        &actor,
        "integration.push_retry",
        "connector_push",
        Some(&id),
        Some(&json!({"status": p.status})),
        Some(&json!({"status": "pending"})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load(&st, &actor.tenant_id, &id).await?))
}
