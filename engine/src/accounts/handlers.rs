//! Handlers of the trading-account operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    ACCOUNT_COLUMNS, AccountRow, AccountView, MAX_LEVERAGE, STATUSES, load, require_trader,
    transition_allowed, view_json,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::util::{new_id, now};

const DEFAULT_LEVERAGE: i64 = 100;

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<AccountView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let param = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let mut v = Validator::new();
    v.one_of(
        "platform",
        param("platform"),
        &st.connectors.allowed_platforms(),
    );
    v.one_of("status", param("status"), STATUSES);
    v.one_of("isDemo", param("isDemo"), &["true", "false"]);
    v.finish()?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM trading_accounts WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    b.push(" AND deleted_at IS NULL");
    for (name, column) in [
        ("traderId", "trader_id"),
        ("platform", "platform"),
        ("status", "status"),
        ("currency", "currency"),
        ("accountNumber", "account_number"),
        ("externalId", "external_id"),
    ] {
        if let Some(value) = param(name) {
            b.push(&format!(" AND {column} = ")).text(value);
        }
    }
    if let Some(demo) = param("isDemo") {
        b.push(" AND is_demo = ").int(i64::from(demo == "true"));
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<AccountRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(AccountView::from),
    ))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(AccountView::from(
        load(st.db.pool(), &actor.tenant_id, &id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    trader_id: Option<String>,
    platform: Option<String>,
    external_id: Option<String>,
    account_number: Option<String>,
    currency: Option<String>,
    balance: Option<String>,
    equity: Option<String>,
    leverage: Option<i64>,
    is_demo: Option<bool>,
    metadata: Option<Value>,
}

fn check_leverage(v: &mut Validator, leverage: Option<i64>) {
    if let Some(l) = leverage {
        v.check(
            (1..=MAX_LEVERAGE).contains(&l),
            "leverage",
            "must be an integer from 1 to 10000 (the N of 1:N)",
        );
    }
}

fn check_metadata(v: &mut Validator, metadata: Option<&Value>) {
    if let Some(m) = metadata {
        v.check(m.is_object(), "metadata", "must be an object");
    }
}

/// Another live account of the tenant already uses this number on this platform.
async fn number_taken(
    tx: &mut Tx,
    tenant_id: &str,
    platform: &str,
    account_number: &str,
    except: &str,
) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM trading_accounts
         WHERE tenant_id = $1 AND platform = $2 AND account_number = $3 AND deleted_at IS NULL AND id <> $4",
    )
    .bind(tenant_id)
    .bind(platform)
    .bind(account_number)
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

fn number_conflict(platform: &str, account_number: &str) -> ApiError {
    ApiError::conflict(
        "account_number_taken",
        format!("Account {account_number} on {platform} is already linked in this tenant."),
    )
}

async fn has_transactions(tx: &mut Tx, tenant_id: &str, account_id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM transactions WHERE tenant_id = $1 AND account_id = $2 LIMIT 1",
    )
    .bind(tenant_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let mut v = Validator::new();
    let trader_id = v
        .required("traderId", b.trader_id.as_deref())
        .map(str::to_string);
    let platform = v
        .required("platform", b.platform.as_deref())
        .map(str::to_string);
    v.one_of(
        "platform",
        platform.as_deref(),
        &st.connectors.allowed_platforms(),
    );
    let account_number = v
        .required("accountNumber", b.account_number.as_deref())
        .map(str::to_string);
    v.max_len("accountNumber", account_number.as_deref(), 64);
    v.max_len("externalId", b.external_id.as_deref(), 128);
    let currency = v
        .required("currency", b.currency.as_deref())
        .map(str::to_string);
    crate::http::validate::currency(&mut v, "currency", currency.as_deref());
    let balance = crate::http::validate::money(&mut v, "balance", b.balance.as_deref(), false);
    let equity = crate::http::validate::money(&mut v, "equity", b.equity.as_deref(), false);
    check_leverage(&mut v, b.leverage);
    check_metadata(&mut v, b.metadata.as_ref());
    v.finish()?;
    let (trader_id, platform, account_number, currency) = (
        trader_id.unwrap_or_default(),
        platform.unwrap_or_default(),
        account_number.unwrap_or_default(),
        currency.unwrap_or_default(),
    );
    let mut tx = st.db.begin().await?;
    require_trader(&mut *tx, &actor.tenant_id, &trader_id, "traderId").await?;
    if number_taken(&mut tx, &actor.tenant_id, &platform, &account_number, "").await? {
        return Err(number_conflict(&platform, &account_number));
    }
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO trading_accounts (tenant_id, id, trader_id, platform, external_id, account_number, currency,
           balance, equity, leverage, is_demo, metadata, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13, $13)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&trader_id)
    .bind(&platform)
    .bind(&b.external_id)
    .bind(&account_number)
    .bind(&currency)
    .bind(balance.unwrap_or_else(|| "0".into()))
    .bind(equity.unwrap_or_else(|| "0".into()))
    .bind(b.leverage.unwrap_or(DEFAULT_LEVERAGE))
    .bind(i64::from(b.is_demo.unwrap_or(false)))
    .bind(b.metadata.unwrap_or_else(|| json!({})).to_string())
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let view = AccountView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "account.created",
        "account",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "account.create",
        "account",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBody {
    #[serde(default)]
    trader_id: Patch<String>,
    #[serde(default)]
    platform: Patch<String>,
    #[serde(default)]
    external_id: Patch<String>,
    #[serde(default)]
    account_number: Patch<String>,
    #[serde(default)]
    currency: Patch<String>,
    #[serde(default)]
    balance: Patch<String>,
    #[serde(default)]
    equity: Patch<String>,
    #[serde(default)]
    leverage: Patch<i64>,
    #[serde(default)]
    is_demo: Patch<bool>,
    #[serde(default)]
    metadata: Patch<Value>,
    #[serde(default)]
    status: Patch<String>,
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<AccountView>> {
    let mut v = Validator::new();
    for (field, is_null) in [
        ("traderId", matches!(b.trader_id, Patch::Null)),
        ("platform", matches!(b.platform, Patch::Null)),
        ("accountNumber", matches!(b.account_number, Patch::Null)),
        ("currency", matches!(b.currency, Patch::Null)),
        ("balance", matches!(b.balance, Patch::Null)),
        ("equity", matches!(b.equity, Patch::Null)),
        ("leverage", matches!(b.leverage, Patch::Null)),
        ("isDemo", matches!(b.is_demo, Patch::Null)),
        ("metadata", matches!(b.metadata, Patch::Null)),
        ("status", matches!(b.status, Patch::Null)),
    ] {
        if is_null {
            v.fail(field, "cannot be null");
        }
    }
    let trader_id = b.trader_id.value().map(|s| s.trim().to_string());
    if trader_id.as_deref() == Some("") {
        v.fail("traderId", "cannot be empty");
    }
    v.one_of(
        "platform",
        b.platform.value().map(String::as_str),
        &st.connectors.allowed_platforms(),
    );
    let account_number = b.account_number.value().map(|s| s.trim().to_string());
    if account_number.as_deref() == Some("") {
        v.fail("accountNumber", "cannot be empty");
    }
    v.max_len("accountNumber", account_number.as_deref(), 64);
    v.max_len("externalId", b.external_id.value().map(String::as_str), 128);
    crate::http::validate::currency(&mut v, "currency", b.currency.value().map(String::as_str));
    let balance = crate::http::validate::money(
        &mut v,
        "balance",
        b.balance.value().map(String::as_str),
        false,
    );
    let equity = crate::http::validate::money(
        &mut v,
        "equity",
        b.equity.value().map(String::as_str),
        false,
    );
    check_leverage(&mut v, b.leverage.value().copied());
    check_metadata(&mut v, b.metadata.value());
    v.one_of("status", b.status.value().map(String::as_str), STATUSES);
    v.finish()?;

    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if let Some(to) = b.status.value()
        && !transition_allowed(&cur.status, to)
    {
        return Err(ApiError::conflict(
            "illegal_status_transition",
            format!("An account cannot go from {} to {to}.", cur.status),
        ));
    }
    if cur.status == "archived" {
        return Err(ApiError::conflict(
            "account_archived",
            "An archived account cannot be changed.",
        ));
    }
    let mut next = cur.clone();
    if let Some(t) = trader_id {
        next.trader_id = t;
    }
    if let Some(p) = b.platform.value() {
        next.platform = p.clone();
    }
    next.external_id = b.external_id.apply(cur.external_id.clone());
    if let Some(n) = account_number {
        next.account_number = n;
    }
    if let Some(c) = b.currency.value() {
        next.currency = c.clone();
    }
    if let Some(x) = balance {
        next.balance = x;
    }
    if let Some(x) = equity {
        next.equity = x;
    }
    if let Some(l) = b.leverage.value() {
        next.leverage = *l;
    }
    if let Some(d) = b.is_demo.value() {
        next.is_demo = i64::from(*d);
    }
    if let Some(m) = b.metadata.value() {
        next.metadata = m.to_string();
    }
    if let Some(s) = b.status.value() {
        next.status = s.clone();
    }
    if next == cur {
        // Nothing changes: no write, no event, no audit entry.
        return Ok(Json(AccountView::from(cur)));
    }
    if next.trader_id != cur.trader_id {
        require_trader(&mut *tx, &actor.tenant_id, &next.trader_id, "traderId").await?;
    }
    // Recorded transactions name this account's trader and currency; moving the account to
    // another trader or currency would silently rewrite what those records mean.
    let relinks = next.trader_id != cur.trader_id || next.currency != cur.currency;
    if relinks && has_transactions(&mut tx, &actor.tenant_id, &id).await? {
        let field = if next.trader_id != cur.trader_id {
            "trader"
        } else {
            "currency"
        };
        return Err(ApiError::conflict(
            "account_has_transactions",
            format!("The account has recorded transactions; its {field} cannot change."),
        ));
    }
    if (next.platform != cur.platform || next.account_number != cur.account_number)
        && number_taken(
            &mut tx,
            &actor.tenant_id,
            &next.platform,
            &next.account_number,
            &id,
        )
        .await?
    {
        return Err(number_conflict(&next.platform, &next.account_number));
    }
    let before = view_json(&AccountView::from(cur.clone()));
    // Guarded on the status read above, so a concurrent status change cannot be overwritten
    // by a transition that was only legal from the old status.
    let done = sqlx::query(
        "UPDATE trading_accounts SET trader_id = $3, platform = $4, external_id = $5, account_number = $6,
           currency = $7, balance = $8, equity = $9, leverage = $10, is_demo = $11, metadata = $12, status = $13,
           updated_at = $14
         WHERE tenant_id = $1 AND id = $2 AND status = $15 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&next.trader_id)
    .bind(&next.platform)
    .bind(&next.external_id)
    .bind(&next.account_number)
    .bind(&next.currency)
    .bind(&next.balance)
    .bind(&next.equity)
    .bind(next.leverage)
    .bind(next.is_demo)
    .bind(&next.metadata)
    .bind(&next.status)
    .bind(now())
    .bind(&cur.status)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "concurrent_update",
            "The account changed while this request ran; read it again and retry.",
        ));
    }
    let view = AccountView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "account.updated",
        "account",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "account.update",
        "account",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let before = view_json(&AccountView::from(cur));
    let ts = now();
    let done = sqlx::query(
        "UPDATE trading_accounts SET deleted_at = $3, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("account"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "account.deleted",
        "account",
        &id,
        &json!({"id": id, "deletedAt": ts}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "account.delete",
        "account",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
