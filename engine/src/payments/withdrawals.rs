//! Withdrawals: pending → [awaiting_second_approval →] approved → settled, with any unsettled
//! state → rejected. Creating one moves the amount from the trader's wallet into a hold account
//! (both floored at zero), so two withdrawals can never spend the same funds; rejecting releases
//! the hold; settling pays it out. At or above the tenant's dual-control threshold a withdrawal
//! needs two approvers, the second neither the first nor its creator.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{self, Movement, SettleBody};
use super::deposits::ReconcileBody;
use super::model::{KINDS, WITHDRAWAL_COLUMNS, WithdrawalRow, WithdrawalView, load_withdrawal};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{Param, SqlBuilder, Tx};
use crate::events;
use crate::http::csv_export::{CsvRow, csv_response};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::ledger::{self, AccountSpec, House, LedgerAccount, Line, NewEntry};
use crate::util::{new_id, now};

use axum::Json;

const UNSETTLED: &[&str] = &["pending", "awaiting_second_approval", "approved"];

async fn hold_account(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: &str,
    currency: &str,
) -> ApiResult<LedgerAccount> {
    let code = format!("trader:{trader_id}:withdrawal_hold");
    Ok(ledger::open_account(
        tx,
        tenant_id,
        AccountSpec {
            code: &code,
            kind: "withdrawal_hold",
            owner_type: Some("trader"),
            owner_id: Some(trader_id),
            currency,
            floor: Some(Decimal::ZERO),
        },
    )
    .await?)
}

async fn threshold(tx: &mut Tx, tenant_id: &str) -> ApiResult<Option<Decimal>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT dual_control_threshold FROM payment_settings WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row
        .and_then(|(t,)| t)
        .map(|t| ledger::dec(&t))
        .transpose()?)
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<WithdrawalView>>> {
    list_where(&st, &actor, &q, None).await
}

pub async fn pending_dual_control(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<WithdrawalView>>> {
    list_where(&st, &actor, &q, Some("awaiting_second_approval")).await
}

async fn list_where(
    st: &AppState,
    actor: &Actor,
    q: &HashMap<String, String>,
    status: Option<&str>,
) -> ApiResult<Json<Page<WithdrawalView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    common::list_filters(&mut b, q)?;
    if let Some(s) = status {
        b.push(" AND status = ").text(s);
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<WithdrawalRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(WithdrawalView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    trader_id: Option<String>,
    account_id: Option<String>,
    payment_method_id: Option<String>,
    kind: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    destination_ref: Option<String>,
    metadata: Option<Value>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<WithdrawalView>)> {
    let mut v = Validator::new();
    let trader_id = v
        .required("traderId", b.trader_id.as_deref())
        .map(str::to_string);
    let kind = v.required("kind", b.kind.as_deref()).map(str::to_string);
    v.one_of("kind", kind.as_deref(), KINDS);
    let currency = common::currency(&mut v, b.currency.as_deref());
    let amount = common::amount(
        &mut v,
        "amount",
        b.amount.as_deref(),
        currency.as_deref().unwrap_or("USD"),
    );
    v.max_len("destinationRef", b.destination_ref.as_deref(), 256);
    let metadata = common::metadata_json(&mut v, b.metadata.as_ref());
    v.finish()?;
    let (trader_id, kind, currency, amount) = (
        trader_id.unwrap_or_default(),
        kind.unwrap_or_default(),
        currency.unwrap_or_default(),
        amount.unwrap_or_default(),
    );
    let mut tx = st.db.begin().await?;
    common::check_parties(
        &mut tx,
        &actor.tenant_id,
        &trader_id,
        b.account_id.as_deref(),
        b.payment_method_id.as_deref(),
    )
    .await?;
    let id = new_id();
    let wallet = ledger::trader_wallet(&mut tx, &actor.tenant_id, &trader_id, &currency).await?;
    let hold = hold_account(&mut tx, &actor.tenant_id, &trader_id, &currency).await?;
    let entry = ledger::post(
        &mut tx,
        &actor.tenant_id,
        NewEntry {
            kind: "withdrawal_hold".into(),
            description: Some(format!("hold for withdrawal {id}")),
            reference_type: Some("withdrawal".into()),
            reference_id: Some(id.clone()),
            created_by: actor.user_id.clone(),
            reverses_entry_id: None,
            lines: vec![
                Line {
                    account_id: wallet.id,
                    currency: currency.clone(),
                    amount: -amount,
                },
                Line {
                    account_id: hold.id,
                    currency: currency.clone(),
                    amount,
                },
            ],
        },
    )
    .await?;
    let dual = threshold(&mut tx, &actor.tenant_id)
        .await?
        .is_some_and(|t| amount >= t);
    let ts = now();
    sqlx::query(
        "INSERT INTO withdrawals (tenant_id, id, trader_id, account_id, payment_method_id, kind, amount, currency, destination_ref, status,
           metadata, needs_dual_control, hold_entry_id, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $13, $14, $14)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&trader_id)
    .bind(&b.account_id)
    .bind(&b.payment_method_id)
    .bind(&kind)
    .bind(amount.to_string())
    .bind(&currency)
    .bind(&b.destination_ref)
    .bind(metadata)
    .bind(i64::from(dual))
    .bind(&entry.id)
    .bind(actor.user_id.as_deref())
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let view = finish(
        &mut tx,
        &actor,
        &id,
        "withdrawal.created",
        "withdrawal.create",
        None,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn finish(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    event: &str,
    action: &str,
    before: Option<&Value>,
) -> ApiResult<WithdrawalView> {
    let view = WithdrawalView::from(load_withdrawal(&mut **tx, &actor.tenant_id, id).await?);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    events::emit(tx, &actor.tenant_id, event, "withdrawal", id, &after).await?;
    audit::record(
        tx,
        actor,
        action,
        "withdrawal",
        Some(id),
        before,
        Some(&after),
    )
    .await?;
    Ok(view)
}

fn snapshot(row: &WithdrawalRow) -> Value {
    serde_json::to_value(WithdrawalView::from(row.clone())).unwrap_or(Value::Null)
}

fn illegal(row: &WithdrawalRow, action: &str) -> ApiError {
    ApiError::conflict(
        "invalid_state",
        format!("A {} withdrawal cannot be {action}.", row.status),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    id: Option<String>,
    notes: Option<String>,
}

async fn approve_one(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    notes: Option<&str>,
) -> ApiResult<WithdrawalView> {
    let row = load_withdrawal(&mut **tx, &actor.tenant_id, id).await?;
    let me = actor.user_id.clone().unwrap_or_default();
    let before = snapshot(&row);
    let ts = now();
    let (next, event, first) = match (row.status.as_str(), row.needs_dual_control != 0) {
        ("pending", false) => ("approved", "withdrawal.approved", false),
        ("pending", true) => (
            "awaiting_second_approval",
            "withdrawal.first_approved",
            true,
        ),
        ("awaiting_second_approval", _) => {
            if row.first_approved_by.as_deref() == Some(me.as_str())
                || row.created_by.as_deref() == Some(me.as_str())
            {
                return Err(ApiError::conflict(
                    "second_approver_required",
                    "A second approver who is neither the first approver nor the creator must approve this withdrawal.",
                ));
            }
            ("approved", "withdrawal.approved", false)
        }
        _ => return Err(illegal(&row, "approved")),
    };
    let sql = if first {
        "UPDATE withdrawals SET status = $3, first_approved_by = $4, first_approved_at = $5, notes = COALESCE($6, notes), updated_at = $5
         WHERE tenant_id = $1 AND id = $2 AND status = $7"
    } else {
        "UPDATE withdrawals SET status = $3, approved_by = $4, approved_at = $5, notes = COALESCE($6, notes), updated_at = $5
         WHERE tenant_id = $1 AND id = $2 AND status = $7"
    };
    sqlx::query(sql)
        .bind(&actor.tenant_id)
        .bind(id)
        .bind(next)
        .bind(&me)
        .bind(&ts)
        .bind(notes)
        .bind(&row.status)
        .execute(&mut **tx)
        .await?;
    if next == "approved"
        && let Some(account_id) = row.account_id.as_deref()
    {
        let amount = ledger::dec(&row.amount)?;
        crate::integrations::pushes::enqueue(
            tx,
            &actor.tenant_id,
            account_id,
            "withdrawal",
            -amount,
            "withdrawal",
            id,
        )
        .await?;
    }
    finish(tx, actor, id, event, "withdrawal.approve", Some(&before)).await
}

pub async fn approve(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ApproveBody>,
) -> ApiResult<Json<WithdrawalView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let view = approve_one(&mut tx, &actor, &id, b.notes.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    ids: Option<Vec<String>>,
    notes: Option<String>,
}

pub async fn bulk_approve(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<BulkBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let ids = common::bulk_ids(&mut v, b.ids.as_ref());
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        out.push(
            approve_one(&mut tx, &actor, id, b.notes.as_deref())
                .await
                .map_err(|e| match e {
                    ApiError::Conflict { code, detail } => {
                        ApiError::conflict(code, format!("{id}: {detail}"))
                    }
                    other => other,
                })?,
        );
    }
    tx.commit().await?;
    Ok(Json(json!({"data": out, "approved": out.len()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    id: Option<String>,
    reason: Option<String>,
}

pub async fn reject(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Json<WithdrawalView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    let reason = v
        .required("reason", b.reason.as_deref())
        .map(str::to_string);
    v.max_len("reason", reason.as_deref(), 500);
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let row = load_withdrawal(&mut *tx, &actor.tenant_id, &id).await?;
    let Some(hold_entry) = row
        .hold_entry_id
        .clone()
        .filter(|_| UNSETTLED.contains(&row.status.as_str()))
    else {
        return Err(illegal(&row, "rejected"));
    };
    let before = snapshot(&row);
    let release = ledger::reverse(
        &mut tx,
        &actor.tenant_id,
        &hold_entry,
        "withdrawal_release",
        actor.user_id.as_deref(),
    )
    .await?;
    sqlx::query(
        "UPDATE withdrawals SET status = 'rejected', reject_reason = $3, release_entry_id = $4, updated_at = $5
         WHERE tenant_id = $1 AND id = $2 AND status = $6",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&reason)
    .bind(&release.id)
    .bind(now())
    .bind(&row.status)
    .execute(&mut *tx)
    .await?;
    let view = finish(
        &mut tx,
        &actor,
        &id,
        "withdrawal.rejected",
        "withdrawal.reject",
        Some(&before),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Pays out the held amount: the hold gives it all, cash receives the net paid out (its balance
/// moves towards zero as money leaves), fees receive the fee.
pub async fn settle(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<SettleBody>,
) -> ApiResult<Json<WithdrawalView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let row = load_withdrawal(&mut *tx, &actor.tenant_id, &id).await?;
    if row.status != "approved" {
        return Err(illegal(&row, "settled"));
    }
    let amount = ledger::dec(&row.amount)?;
    let mut v = Validator::new();
    let s = common::settlement(&mut v, &b, amount, &row.currency);
    v.finish()?;
    let Some(s) = s else {
        return Err(ApiError::field("feeAmount", "invalid settlement"));
    };
    let before = snapshot(&row);
    let hold = hold_account(&mut tx, &actor.tenant_id, &row.trader_id, &row.currency).await?;
    let cash = ledger::house_account(&mut tx, &actor.tenant_id, House::Cash, &row.currency).await?;
    let mut lines = vec![
        Line {
            account_id: hold.id,
            currency: row.currency.clone(),
            amount: -amount,
        },
        Line {
            account_id: cash.id,
            currency: row.currency.clone(),
            amount: s.net,
        },
    ];
    if !s.fee.is_zero() {
        let fees =
            ledger::house_account(&mut tx, &actor.tenant_id, House::Fees, &row.currency).await?;
        lines.push(Line {
            account_id: fees.id,
            currency: row.currency.clone(),
            amount: s.fee,
        });
    }
    let entry = ledger::post(
        &mut tx,
        &actor.tenant_id,
        NewEntry {
            kind: "withdrawal".into(),
            description: Some(format!("withdrawal {id}")),
            reference_type: Some("withdrawal".into()),
            reference_id: Some(id.clone()),
            created_by: actor.user_id.clone(),
            reverses_entry_id: None,
            lines,
        },
    )
    .await?;
    let transaction_id = common::record_transaction(
        &mut tx,
        Movement {
            tenant_id: &actor.tenant_id,
            trader_id: &row.trader_id,
            account_id: row.account_id.as_deref(),
            kind: "withdrawal",
            amount,
            currency: &row.currency,
            reference: &id,
            occurred_at: &s.settled_at,
            metadata: json!({"withdrawalId": id, "ledgerEntryId": entry.id, "net": s.net.to_string(), "fee": s.fee.to_string()}),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE withdrawals SET status = 'settled', fee_amount = $3, net_amount = $4, settled_at = $5, external_id = COALESCE($6, external_id),
           proof_url = COALESCE($7, proof_url), notes = COALESCE($8, notes), settled_by = $9, settle_entry_id = $10, transaction_id = $11, updated_at = $12
         WHERE tenant_id = $1 AND id = $2 AND status = 'approved'",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(s.fee.to_string())
    .bind(s.net.to_string())
    .bind(&s.settled_at)
    .bind(&b.external_id)
    .bind(&b.proof_url)
    .bind(&b.notes)
    .bind(actor.user_id.as_deref())
    .bind(&entry.id)
    .bind(&transaction_id)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = finish(
        &mut tx,
        &actor,
        &id,
        "withdrawal.settled",
        "withdrawal.settle",
        Some(&before),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn reconcile(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ReconcileBody>,
) -> ApiResult<Json<WithdrawalView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.check(b.reconciled.is_some(), "reconciled", "is required");
    v.finish()?;
    let flag = b.reconciled.unwrap_or(false);
    let mut tx = st.db.begin().await?;
    let row = load_withdrawal(&mut *tx, &actor.tenant_id, &id).await?;
    if row.status != "settled" {
        return Err(illegal(&row, "reconciled"));
    }
    let before = snapshot(&row);
    let ts = now();
    sqlx::query(
        "UPDATE withdrawals SET reconciled = $3, reconciled_at = $4, reconciled_by = $5, reconcile_notes = COALESCE($6, reconcile_notes), updated_at = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(i64::from(flag))
    .bind(flag.then(|| ts.clone()))
    .bind(flag.then(|| actor.user_id.clone()).flatten())
    .bind(&b.notes)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let (event, action) = if flag {
        ("withdrawal.reconciled", "withdrawal.reconcile")
    } else {
        ("withdrawal.unreconciled", "withdrawal.unreconcile")
    };
    let view = finish(&mut tx, &actor, &id, event, action, Some(&before)).await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn export_csv(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    common::list_filters(&mut SqlBuilder::new(""), &q)?;
    let tenant = actor.tenant_id.clone();
    let header = vec![
        "id",
        "created_at",
        "trader_id",
        "account_id",
        "kind",
        "status",
        "amount",
        "currency",
        "fee_amount",
        "net_amount",
        "settled_at",
        "destination_ref",
        "reconciled",
        "settle_entry_id",
    ];
    Ok(csv_response(
        "withdrawals.csv",
        header,
        move |after, limit| {
            let (db, tenant, q) = (st.db.clone(), tenant.clone(), q.clone());
            async move {
                let mut b = SqlBuilder::new(&format!(
                    "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE tenant_id = "
                ));
                b.text(&tenant);
                common::list_filters(&mut b, &q)?;
                if let Some(after) = after {
                    b.push(" AND id < ").bind(Param::Text(after));
                }
                b.push(" ORDER BY id DESC").limit(limit);
                let rows: Vec<WithdrawalRow> = b.query_as().fetch_all(db.pool()).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| -> CsvRow {
                        (
                            r.id.clone(),
                            vec![
                                r.id,
                                r.created_at,
                                r.trader_id,
                                r.account_id.unwrap_or_default(),
                                r.kind,
                                r.status,
                                r.amount,
                                r.currency,
                                r.fee_amount.unwrap_or_default(),
                                r.net_amount.unwrap_or_default(),
                                r.settled_at.unwrap_or_default(),
                                r.destination_ref.unwrap_or_default(),
                                (r.reconciled != 0).to_string(),
                                r.settle_entry_id.unwrap_or_default(),
                            ],
                        )
                    })
                    .collect())
            }
        },
    ))
}
