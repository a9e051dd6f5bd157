//! Deposits: pending → approved → settled → reversed, with pending|approved → rejected; every
//! move goes through the shared approval state machine (`approval`), as a compare-and-set.
//! Settlement posts one balanced ledger entry: the trader's wallet gains the net, the fees
//! account the fee, and the cash account (money held at banks and providers) gives the gross.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::approval::{self, Action, Claimed, Column, Flow, Record};
use super::common::{self, Movement, SettleBody};
use super::model::{DEPOSIT_COLUMNS, DepositRow, DepositView, KINDS, load_deposit};
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
use crate::ledger::{self, House, Line, NewEntry};
use crate::util::{new_id, now};

use axum::Json;

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<DepositView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    common::list_filters(&mut b, &q)?;
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<DepositRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(DepositView::from),
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
    external_id: Option<String>,
    metadata: Option<Value>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<DepositView>)> {
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
    v.max_len("externalId", b.external_id.as_deref(), 128);
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
    if let Some(ext) = &b.external_id {
        let dup: Option<(String,)> =
            sqlx::query_as("SELECT id FROM deposits WHERE tenant_id = $1 AND external_id = $2")
                .bind(&actor.tenant_id)
                .bind(ext)
                .fetch_optional(&mut *tx)
                .await?;
        if dup.is_some() {
            return Err(ApiError::conflict(
                "duplicate_external_id",
                "A deposit with this externalId exists.",
            ));
        }
    }
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO deposits (tenant_id, id, trader_id, account_id, payment_method_id, kind, amount, currency, status, external_id, metadata, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $12, $12)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&trader_id)
    .bind(&b.account_id)
    .bind(&b.payment_method_id)
    .bind(&kind)
    .bind(amount.to_string())
    .bind(&currency)
    .bind(&b.external_id)
    .bind(metadata)
    .bind(actor.user_id.as_deref())
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let view = finish(
        &mut tx,
        &actor,
        &id,
        "deposit.created",
        "deposit.create",
        None,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Emits the event and audit entry of a change and returns the deposit as it now stands.
async fn finish(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    event: &str,
    action: &str,
    before: Option<&Value>,
) -> ApiResult<DepositView> {
    let view = DepositView::from(load_deposit(&mut **tx, &actor.tenant_id, id).await?);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    events::emit(tx, &actor.tenant_id, event, "deposit", id, &after).await?;
    audit::record(tx, actor, action, "deposit", Some(id), before, Some(&after)).await?;
    Ok(view)
}

/// Announces a move the transaction made (its event and audit entry) and returns the deposit
/// as it now stands.
async fn announce(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    claimed: Claimed,
    before: &Value,
) -> ApiResult<DepositView> {
    let view = DepositView::from(load_deposit(&mut **tx, &actor.tenant_id, id).await?);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    claimed.record(tx, actor, id, before, &after).await?;
    Ok(view)
}

fn snapshot(row: &DepositRow) -> Value {
    serde_json::to_value(DepositView::from(row.clone())).unwrap_or(Value::Null)
}

/// The deposit as the state machine sees it.
fn machine(row: &DepositRow) -> Record<'_> {
    Record {
        flow: Flow::Deposit,
        id: &row.id,
        status: &row.status,
        needs_dual_control: false,
        created_by: row.created_by.as_deref(),
        first_approved_by: None,
    }
}

/// The answer to an action the deposit's state does not allow, for checks made before the
/// move (the state machine gives the same one).
fn illegal(row: &DepositRow, action: Action) -> ApiError {
    approval::TransitionError::Illegal {
        flow: Flow::Deposit,
        status: row.status.clone(),
        action,
    }
    .into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    id: Option<String>,
    notes: Option<String>,
}

pub(super) async fn approve_one(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    notes: Option<&str>,
) -> ApiResult<DepositView> {
    let row = load_deposit(&mut **tx, &actor.tenant_id, id).await?;
    let before = snapshot(&row);
    let claimed = approval::transition(
        tx,
        actor,
        &machine(&row),
        Action::Approve,
        vec![Column::Keep("notes", notes.map(str::to_string))],
    )
    .await?;
    announce(tx, actor, id, claimed, &before).await
}

pub async fn approve(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ApproveBody>,
) -> ApiResult<Json<DepositView>> {
    let mut v = Validator::new();
    let id = v.required("id", b.id.as_deref()).map(str::to_string);
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let view = approve_one(&mut tx, &actor, &id.unwrap_or_default(), b.notes.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    ids: Option<Vec<String>>,
    notes: Option<String>,
}

/// All or nothing: one id that cannot be approved refuses the whole batch.
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
) -> ApiResult<Json<DepositView>> {
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
    let view = reject_in(&mut tx, &actor, &id, &reason.unwrap_or_default()).await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub(super) async fn reject_in(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    reason: &str,
) -> ApiResult<DepositView> {
    let row = load_deposit(&mut **tx, &actor.tenant_id, id).await?;
    let before = snapshot(&row);
    let claimed = approval::transition(
        tx,
        actor,
        &machine(&row),
        Action::Reject,
        vec![Column::Set("reject_reason", Param::Text(reason.into()))],
    )
    .await?;
    announce(tx, actor, id, claimed, &before).await
}

/// Posts the settlement and moves the deposit to settled. `gross` is what actually arrived.
async fn settle_with(
    st: &AppState,
    actor: &Actor,
    id: &str,
    b: &SettleBody,
    partial: Option<(Decimal, Option<&str>)>,
) -> ApiResult<DepositView> {
    let mut tx = st.db.begin().await?;
    let view = settle_in(&mut tx, actor, id, b, partial).await?;
    tx.commit().await?;
    Ok(view)
}

/// Settles inside the caller's transaction (the HTTP operations and provider webhooks).
pub(super) async fn settle_in(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    b: &SettleBody,
    partial: Option<(Decimal, Option<&str>)>,
) -> ApiResult<DepositView> {
    let row = load_deposit(&mut **tx, &actor.tenant_id, id).await?;
    // Checked before the figures, so a deposit in the wrong state is a 409 whatever the body.
    approval::find(&machine(&row), Action::Settle, actor.user_id.as_deref())?;
    let requested = ledger::dec(&row.amount).map_err(ApiError::from)?;
    let gross = match partial {
        Some((g, _)) if g >= requested => {
            return Err(ApiError::field(
                "settledAmount",
                format!("must be less than the deposit amount {requested}"),
            ));
        }
        Some((g, _)) => g,
        None => requested,
    };
    let mut v = Validator::new();
    let s = common::settlement(&mut v, b, gross, &row.currency);
    v.finish()?;
    let Some(s) = s else {
        return Err(ApiError::field("feeAmount", "invalid settlement"));
    };
    let before = snapshot(&row);
    let mut payload = crate::util::parse_json(&row.provider_payload);
    if let (Some((_, note)), Some(obj)) = (partial, payload.as_object_mut()) {
        obj.insert(
            "partialSettlement".into(),
            json!({"requested": requested.to_string(), "received": gross.to_string(), "note": note, "at": s.settled_at}),
        );
    }
    // The move first: a request that lost the race stops here, before any money moves.
    let claimed = approval::transition(
        tx,
        actor,
        &machine(&row),
        Action::Settle,
        vec![
            Column::Set("fee_amount", Param::Text(s.fee.to_string())),
            Column::Set("net_amount", Param::Text(s.net.to_string())),
            Column::Set("settled_amount", Param::Text(gross.to_string())),
            Column::Set("settled_at", Param::Text(s.settled_at.clone())),
            Column::Keep("external_id", b.external_id.clone()),
            Column::Keep("proof_url", b.proof_url.clone()),
            Column::Keep("notes", b.notes.clone()),
            Column::Set("settled_by", Param::OptText(actor.user_id.clone())),
            Column::Set("provider_payload", Param::Text(payload.to_string())),
        ],
    )
    .await?;
    let wallet = ledger::trader_wallet(tx, &actor.tenant_id, &row.trader_id, &row.currency).await?;
    let cash = ledger::house_account(tx, &actor.tenant_id, House::Cash, &row.currency).await?;
    let mut lines = vec![
        Line {
            account_id: wallet.id,
            currency: row.currency.clone(),
            amount: s.net,
        },
        Line {
            account_id: cash.id,
            currency: row.currency.clone(),
            amount: -gross,
        },
    ];
    if !s.fee.is_zero() {
        let fees = ledger::house_account(tx, &actor.tenant_id, House::Fees, &row.currency).await?;
        lines.push(Line {
            account_id: fees.id,
            currency: row.currency.clone(),
            amount: s.fee,
        });
    }
    let entry = ledger::post(
        tx,
        &actor.tenant_id,
        NewEntry {
            kind: "deposit".into(),
            description: Some(format!("deposit {id}")),
            reference_type: Some("deposit".into()),
            reference_id: Some(id.to_string()),
            created_by: actor.user_id.clone(),
            reverses_entry_id: None,
            lines,
        },
    )
    .await?;
    if let Some(account_id) = row.account_id.as_deref() {
        crate::integrations::pushes::enqueue(
            tx,
            &actor.tenant_id,
            account_id,
            "deposit",
            s.net,
            "deposit",
            id,
        )
        .await?;
    }
    let transaction_id = common::record_transaction(
        tx,
        Movement {
            tenant_id: &actor.tenant_id,
            trader_id: &row.trader_id,
            account_id: row.account_id.as_deref(),
            kind: "deposit",
            amount: s.net,
            currency: &row.currency,
            reference: id,
            occurred_at: &s.settled_at,
            metadata: json!({"depositId": id, "ledgerEntryId": entry.id, "gross": gross.to_string(), "fee": s.fee.to_string()}),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE deposits SET ledger_entry_id = $3, transaction_id = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(id)
    .bind(&entry.id)
    .bind(&transaction_id)
    .execute(&mut **tx)
    .await?;
    // What features do when a deposit settles (bonuses issue what it earns) happens in the
    // settlement's own transaction, HTTP and provider webhooks alike (`hooks`).
    super::hooks::run(super::hooks::Moment::Settled, tx, actor, id).await?;
    announce(tx, actor, id, claimed, &before).await
}

pub async fn settle(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<SettleBody>,
) -> ApiResult<Json<DepositView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.finish()?;
    Ok(Json(settle_with(&st, &actor, &id, &b, None).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PartialBody {
    settled_amount: Option<String>,
    fee_amount: Option<String>,
    settled_at: Option<String>,
    external_id: Option<String>,
    proof_url: Option<String>,
    notes: Option<String>,
}

pub async fn partial_settle(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PartialBody>,
) -> ApiResult<Json<DepositView>> {
    let row = load_deposit(st.db.pool(), &actor.tenant_id, &id).await?;
    let mut v = Validator::new();
    let gross = common::amount(
        &mut v,
        "settledAmount",
        b.settled_amount.as_deref(),
        &row.currency,
    );
    v.finish()?;
    let body = SettleBody {
        id: Some(id.clone()),
        fee_amount: b.fee_amount,
        net_amount: None,
        settled_at: b.settled_at,
        external_id: b.external_id,
        proof_url: b.proof_url,
        notes: b.notes.clone(),
    };
    let gross = gross.unwrap_or_default();
    Ok(Json(
        settle_with(&st, &actor, &id, &body, Some((gross, b.notes.as_deref()))).await?,
    ))
}

/// Reverses a settled deposit (chargeback, NSF, fraud): the settlement entry is reversed, which
/// needs the net still in the trader's wallet; otherwise 409 `insufficient_funds`.
pub async fn reverse(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Json<DepositView>> {
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
    let view = reverse_in(&mut tx, &actor, &id, &reason.unwrap_or_default()).await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub(super) async fn reverse_in(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    reason: &str,
) -> ApiResult<DepositView> {
    let row = load_deposit(&mut **tx, &actor.tenant_id, id).await?;
    let Some(entry_id) = row.ledger_entry_id.clone() else {
        return Err(illegal(&row, Action::Reverse));
    };
    let before = snapshot(&row);
    let claimed = approval::transition(
        tx,
        actor,
        &machine(&row),
        Action::Reverse,
        vec![Column::Set("reversal_reason", Param::Text(reason.into()))],
    )
    .await?;
    let reversal = ledger::reverse(
        tx,
        &actor.tenant_id,
        &entry_id,
        "deposit_reversal",
        actor.user_id.as_deref(),
    )
    .await?;
    if let Some(t) = &row.transaction_id {
        common::mark_transaction_reversed(tx, &actor.tenant_id, t).await?;
    }
    sqlx::query("UPDATE deposits SET reversal_entry_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(id)
        .bind(&reversal.id)
        .execute(&mut **tx)
        .await?;
    // What features undo (bonuses claw back what it paid), in the same transaction.
    super::hooks::run(super::hooks::Moment::Reversed, tx, actor, id).await?;
    announce(tx, actor, id, claimed, &before).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    pub id: Option<String>,
    pub reconciled: Option<bool>,
    pub notes: Option<String>,
}

pub async fn reconcile(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<ReconcileBody>,
) -> ApiResult<Json<DepositView>> {
    let mut v = Validator::new();
    let id = v
        .required("id", b.id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.check(b.reconciled.is_some(), "reconciled", "is required");
    v.finish()?;
    let flag = b.reconciled.unwrap_or(false);
    let mut tx = st.db.begin().await?;
    let row = load_deposit(&mut *tx, &actor.tenant_id, &id).await?;
    if row.status != "settled" && row.status != "reversed" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("A {} deposit cannot be reconciled.", row.status),
        ));
    }
    let before = snapshot(&row);
    let ts = now();
    // Compare-and-set on the status and flag read above: of two racing marks one is a 409.
    let done = sqlx::query(
        "UPDATE deposits SET reconciled = $3, reconciled_at = $4, reconciled_by = $5, reconcile_notes = COALESCE($6, reconcile_notes), updated_at = $7
         WHERE tenant_id = $1 AND id = $2 AND status = $8 AND reconciled = $9",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(i64::from(flag))
    .bind(flag.then(|| ts.clone()))
    .bind(flag.then(|| actor.user_id.clone()).flatten())
    .bind(&b.notes)
    .bind(&ts)
    .bind(&row.status)
    .bind(row.reconciled)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("deposit"));
    }
    let (event, action) = if flag {
        ("deposit.reconciled", "deposit.reconcile")
    } else {
        ("deposit.unreconciled", "deposit.unreconcile")
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
    // Validate filters before streaming starts, so a bad one is a clean 400.
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
        "settled_amount",
        "settled_at",
        "external_id",
        "reconciled",
        "ledger_entry_id",
    ];
    Ok(csv_response("deposits.csv", header, move |after, limit| {
        let (db, tenant, q) = (st.db.clone(), tenant.clone(), q.clone());
        async move {
            let mut b = SqlBuilder::new(&format!(
                "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE tenant_id = "
            ));
            b.text(&tenant);
            common::list_filters(&mut b, &q)?;
            if let Some(after) = after {
                b.push(" AND id < ").bind(Param::Text(after));
            }
            b.push(" ORDER BY id DESC").limit(limit);
            let rows: Vec<DepositRow> = b.query_as().fetch_all(db.pool()).await?;
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
                            r.settled_amount.unwrap_or_default(),
                            r.settled_at.unwrap_or_default(),
                            r.external_id.unwrap_or_default(),
                            (r.reconciled != 0).to_string(),
                            r.ledger_entry_id.unwrap_or_default(),
                        ],
                    )
                })
                .collect())
        }
    }))
}
