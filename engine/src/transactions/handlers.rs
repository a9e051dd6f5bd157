//! Handlers of the transaction operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    Filters, STATUSES, TRANSACTION_COLUMNS, TransactionRow, TransactionView, kind_names, view_json,
};
use crate::accounts::model::{find as find_account, require_trader};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{Param, Tx};
use crate::events;
use crate::http::csv_export::{CsvRow, csv_response};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::{fmt_time, new_id, now, parse_time};

/// Clock skew tolerated between the recording system and the engine.
const FUTURE_TOLERANCE_MINUTES: i64 = 5;

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<TransactionView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let filters = Filters::parse(&q)?;
    let mut b = filters.select(&actor.tenant_id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<TransactionRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(TransactionView::from),
    ))
}

pub async fn export_csv(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(&q)?;
    let tenant = actor.tenant_id.clone();
    let header = vec![
        "id",
        "occurred_at",
        "created_at",
        "trader_id",
        "account_id",
        "kind",
        "direction",
        "status",
        "amount",
        "currency",
        "reference",
        "description",
        "external_id",
        "metadata",
    ];
    Ok(csv_response(
        "transactions.csv",
        header,
        move |after, limit| {
            let (db, tenant, filters) = (st.db.clone(), tenant.clone(), filters.clone());
            async move {
                let mut b = filters.select(&tenant);
                if let Some(after) = after {
                    b.push(" AND id < ").bind(Param::Text(after));
                }
                b.push(" ORDER BY id DESC").limit(limit);
                let rows: Vec<TransactionRow> = b.query_as().fetch_all(db.pool()).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| -> CsvRow {
                        let v = TransactionView::from(r);
                        (
                            v.id.clone(),
                            vec![
                                v.id,
                                v.occurred_at,
                                v.created_at,
                                v.trader_id,
                                v.account_id.unwrap_or_default(),
                                v.kind,
                                v.direction.to_string(),
                                v.status,
                                v.amount,
                                v.currency,
                                v.reference.unwrap_or_default(),
                                v.description.unwrap_or_default(),
                                v.external_id.unwrap_or_default(),
                                v.metadata.to_string(),
                            ],
                        )
                    })
                    .collect())
            }
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    trader_id: Option<String>,
    account_id: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    reference: Option<String>,
    description: Option<String>,
    external_id: Option<String>,
    occurred_at: Option<String>,
    metadata: Option<Value>,
}

async fn external_id_taken(tx: &mut Tx, tenant_id: &str, external_id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM transactions WHERE tenant_id = $1 AND external_id = $2")
            .bind(tenant_id)
            .bind(external_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some())
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<TransactionView>)> {
    let mut v = Validator::new();
    let trader_id = v
        .required("traderId", b.trader_id.as_deref())
        .map(str::to_string);
    let account_id = b
        .account_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let kind = v.required("kind", b.kind.as_deref()).map(str::to_string);
    v.one_of("kind", kind.as_deref(), &kind_names());
    let status = b.status.clone().unwrap_or_else(|| "pending".into());
    v.one_of("status", Some(&status), STATUSES);
    let amount = match v.required("amount", b.amount.as_deref()) {
        Some(a) => crate::http::validate::money(&mut v, "amount", Some(a), true),
        None => None,
    };
    crate::http::validate::currency(&mut v, "currency", b.currency.as_deref());
    if account_id.is_none() && b.currency.is_none() {
        v.fail("currency", "is required when no accountId is given");
    }
    v.max_len("reference", b.reference.as_deref(), 128);
    v.max_len("description", b.description.as_deref(), 1000);
    let external_id = b
        .external_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    v.max_len("externalId", external_id.as_deref(), 128);
    let occurred_at = match b.occurred_at.as_deref() {
        None => Some(now()),
        Some(s) => match parse_time(s) {
            Some(t) if t > Utc::now() + Duration::minutes(FUTURE_TOLERANCE_MINUTES) => {
                v.fail("occurredAt", "cannot be in the future");
                None
            }
            Some(t) => Some(fmt_time(t)),
            None => {
                v.fail(
                    "occurredAt",
                    "must be an RFC 3339 time such as 2026-05-23T12:18:22.178Z",
                );
                None
            }
        },
    };
    if let Some(m) = &b.metadata {
        v.check(m.is_object(), "metadata", "must be an object");
    }
    v.finish()?;
    let (trader_id, kind, amount, occurred_at) = (
        trader_id.unwrap_or_default(),
        kind.unwrap_or_default(),
        amount.unwrap_or_default(),
        occurred_at.unwrap_or_default(),
    );

    let mut tx = st.db.begin().await?;
    require_trader(&mut *tx, &actor.tenant_id, &trader_id, "traderId").await?;
    let currency = match &account_id {
        Some(aid) => {
            let account = find_account(&mut *tx, &actor.tenant_id, aid)
                .await?
                .ok_or_else(|| {
                    ApiError::field("accountId", "is not a trading account of this tenant")
                })?;
            if account.trader_id != trader_id {
                return Err(ApiError::field(
                    "accountId",
                    "belongs to another trader than traderId",
                ));
            }
            if let Some(c) = &b.currency
                && *c != account.currency
            {
                return Err(ApiError::field(
                    "currency",
                    format!("must match the account's currency ({})", account.currency),
                ));
            }
            if account.status == "archived" {
                return Err(ApiError::conflict(
                    "account_archived",
                    "Transactions cannot be recorded on an archived account.",
                ));
            }
            account.currency
        }
        None => b.currency.clone().unwrap_or_default(),
    };
    if let Some(ext) = &external_id
        && external_id_taken(&mut tx, &actor.tenant_id, ext).await?
    {
        return Err(ApiError::conflict(
            "external_id_taken",
            "A transaction with this externalId is already recorded.",
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO transactions (tenant_id, id, trader_id, account_id, kind, status, amount, currency,
           reference, description, external_id, occurred_at, metadata, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&trader_id)
    .bind(&account_id)
    .bind(&kind)
    .bind(&status)
    .bind(&amount)
    .bind(&currency)
    .bind(&b.reference)
    .bind(&b.description)
    .bind(&external_id)
    .bind(&occurred_at)
    .bind(b.metadata.unwrap_or_else(|| json!({})).to_string())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let row: TransactionRow = sqlx::query_as(&format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(&actor.tenant_id)
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let view = TransactionView::from(row);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "transaction.created",
        "transaction",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "transaction.create",
        "transaction",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}
