//! Withdrawals: pending → [awaiting_second_approval →] approved → settled, with any unsettled
//! state → rejected; every move goes through the shared approval state machine (`approval`), as
//! a compare-and-set, so a hold is released once and a rejected withdrawal never settles.
//! Creating one moves the amount from the trader's wallet into a hold account
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

use super::approval::{self, Action, Claimed, Column, Flow, Record};
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

/// Announces a move the transaction made (its event and audit entry) and returns the
/// withdrawal as it now stands.
async fn announce(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    claimed: Claimed,
    before: &Value,
) -> ApiResult<WithdrawalView> {
    let view = WithdrawalView::from(load_withdrawal(&mut **tx, &actor.tenant_id, id).await?);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    claimed.record(tx, actor, id, before, &after).await?;
    Ok(view)
}

fn snapshot(row: &WithdrawalRow) -> Value {
    serde_json::to_value(WithdrawalView::from(row.clone())).unwrap_or(Value::Null)
}

/// The withdrawal as the state machine sees it.
fn machine(row: &WithdrawalRow) -> Record<'_> {
    Record {
        flow: Flow::Withdrawal,
        id: &row.id,
        status: &row.status,
        needs_dual_control: row.needs_dual_control != 0,
        created_by: row.created_by.as_deref(),
        first_approved_by: row.first_approved_by.as_deref(),
    }
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
    let before = snapshot(&row);
    let claimed = approval::transition(
        tx,
        actor,
        &machine(&row),
        Action::Approve,
        vec![Column::Keep("notes", notes.map(str::to_string))],
    )
    .await?;
    if claimed.mv.to == approval::Status::Approved
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
    announce(tx, actor, id, claimed, &before).await
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
    let before = snapshot(&row);
    // The move first: of racing requests only the one that made it releases the hold.
    let claimed = approval::transition(
        &mut tx,
        &actor,
        &machine(&row),
        Action::Reject,
        vec![Column::Set("reject_reason", Param::OptText(reason))],
    )
    .await?;
    let Some(hold_entry) = row.hold_entry_id.clone() else {
        return Err(ApiError::internal(format!(
            "withdrawal {id} has no hold entry"
        )));
    };
    let release = ledger::reverse(
        &mut tx,
        &actor.tenant_id,
        &hold_entry,
        "withdrawal_release",
        actor.user_id.as_deref(),
    )
    .await?;
    sqlx::query("UPDATE withdrawals SET release_entry_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&id)
        .bind(&release.id)
        .execute(&mut *tx)
        .await?;
    let view = announce(&mut tx, &actor, &id, claimed, &before).await?;
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
    // Checked before the figures, so a withdrawal in the wrong state is a 409 whatever the body.
    approval::find(&machine(&row), Action::Settle, actor.user_id.as_deref())?;
    let amount = ledger::dec(&row.amount)?;
    let mut v = Validator::new();
    let s = common::settlement(&mut v, &b, amount, &row.currency);
    v.finish()?;
    let Some(s) = s else {
        return Err(ApiError::field("feeAmount", "invalid settlement"));
    };
    let before = snapshot(&row);
    // The move first: a request that lost the race stops here, before any money moves.
    let claimed = approval::transition(
        &mut tx,
        &actor,
        &machine(&row),
        Action::Settle,
        vec![
            Column::Set("fee_amount", Param::Text(s.fee.to_string())),
            Column::Set("net_amount", Param::Text(s.net.to_string())),
            Column::Set("settled_at", Param::Text(s.settled_at.clone())),
            Column::Keep("external_id", b.external_id.clone()),
            Column::Keep("proof_url", b.proof_url.clone()),
            Column::Keep("notes", b.notes.clone()),
            Column::Set("settled_by", Param::OptText(actor.user_id.clone())),
        ],
    )
    .await?;
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
        "UPDATE withdrawals SET settle_entry_id = $3, transaction_id = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&entry.id)
    .bind(&transaction_id)
    .execute(&mut *tx)
    .await?;
    let view = announce(&mut tx, &actor, &id, claimed, &before).await?;
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
        return Err(ApiError::conflict(
            "invalid_state",
            format!("A {} withdrawal cannot be reconciled.", row.status),
        ));
    }
    let before = snapshot(&row);
    let ts = now();
    // Compare-and-set on the flag read above: of two racing marks one is a 409.
    let done = sqlx::query(
        "UPDATE withdrawals SET reconciled = $3, reconciled_at = $4, reconciled_by = $5, reconcile_notes = COALESCE($6, reconcile_notes), updated_at = $7
         WHERE tenant_id = $1 AND id = $2 AND status = 'settled' AND reconciled = $8",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(i64::from(flag))
    .bind(flag.then(|| ts.clone()))
    .bind(flag.then(|| actor.user_id.clone()).flatten())
    .bind(&b.notes)
    .bind(&ts)
    .bind(row.reconciled)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("withdrawal"));
    }
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
