//! Handlers of the credit line operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::domain::{self, Movement, NewLine, to_json};
use super::model::{
    CreditLineRow, CreditLineView, ENTRY_COLUMNS, EntryView, KIND_BONUS, KIND_CREDIT, LINE_SELECT,
    load_line,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::{Validator, is_currency};
use crate::ledger::currency::parse_amount;
use crate::util::now;

/// Parses a required positive amount in `currency`, recording a field error.
pub fn amount_field(
    v: &mut Validator,
    field: &str,
    value: Option<&str>,
    currency: &str,
) -> Option<Decimal> {
    v.required(field, value)?;
    match parse_amount(value.unwrap_or_default(), currency) {
        Ok(d) => Some(d),
        Err(msg) => {
            v.fail(field, msg);
            None
        }
    }
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<CreditLineView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(LINE_SELECT);
    b.text(&actor.tenant_id);
    if q.get("includeDeleted").map(String::as_str) != Some("true") {
        b.push(" AND cl.deleted_at IS NULL");
    }
    for (param, column) in [
        ("traderId", "cl.trader_id"),
        ("customerId", "cl.customer_id"),
        ("currency", "cl.currency"),
        ("kind", "cl.kind"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND cl.id < ").text(after.clone());
    }
    b.push(" ORDER BY cl.id DESC").limit(page.fetch());
    let rows: Vec<CreditLineRow> = b.query_as().fetch_all(st.db.pool()).await?;
    let page = Page::from_rows(rows, &page, |r| &r.id);
    let data = page
        .data
        .into_iter()
        .map(CreditLineRow::view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Page {
        data,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    trader_id: Option<String>,
    customer_id: Option<String>,
    currency: Option<String>,
    limit: Option<String>,
    terms: Option<String>,
    metadata: Option<Value>,
}

/// The trader a body names: `traderId`, or `customerId` resolved to the customer's linked
/// trader. Either must belong to the tenant (400 naming the field otherwise).
async fn resolve_party(
    tx: &mut Tx,
    tenant: &str,
    trader_id: Option<&str>,
    customer_id: Option<&str>,
) -> ApiResult<String> {
    let (field, trader) = match (trader_id, customer_id) {
        (Some(t), _) => ("traderId", Some(t.to_string())),
        (None, Some(c)) => {
            let linked: Option<(String,)> =
                sqlx::query_as("SELECT trader_id FROM customers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(c)
                    .fetch_optional(&mut **tx)
                    .await?;
            ("customerId", linked.map(|(t,)| t))
        }
        (None, None) => return Err(ApiError::field("traderId", "is required")),
    };
    let found = match &trader {
        Some(t) => crate::traders::load(&mut **tx, tenant, t).await.ok(),
        None => None,
    };
    found
        .map(|t| t.id)
        .ok_or_else(|| ApiError::field(field, "is not a trader of this tenant"))
}

fn line_exists(existing: &CreditLineRow) -> ApiError {
    ApiError::conflict(
        "credit_line_exists",
        format!(
            "The trader already has a live credit line in {} ({}).",
            existing.currency, existing.id
        ),
    )
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<CreditLineView>)> {
    let mut v = Validator::new();
    if b.trader_id.is_some() && b.customer_id.is_some() {
        v.fail("customerId", "give traderId or customerId, not both");
    }
    let currency = v
        .required("currency", b.currency.as_deref())
        .map(str::to_string);
    if let Some(c) = &currency
        && !is_currency(c)
    {
        v.fail("currency", "must be an ISO 4217 code such as USD");
    }
    let limit = amount_field(
        &mut v,
        "limit",
        b.limit.as_deref(),
        currency.as_deref().unwrap_or("USD"),
    );
    v.max_len("terms", b.terms.as_deref(), 2000);
    let metadata = match &b.metadata {
        Some(m) if !m.is_object() => {
            v.fail("metadata", "must be an object");
            String::new()
        }
        Some(m) => m.to_string(),
        None => "{}".into(),
    };
    v.finish()?;
    let currency = currency.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let trader_id = resolve_party(
        &mut tx,
        &actor.tenant_id,
        b.trader_id.as_deref(),
        b.customer_id.as_deref(),
    )
    .await?;
    if let Some(existing) = domain::live_line(
        &mut tx,
        &actor.tenant_id,
        &trader_id,
        &currency,
        KIND_CREDIT,
    )
    .await?
    {
        return Err(line_exists(&existing));
    }
    let opened = domain::open_line(
        &mut tx,
        &actor,
        NewLine {
            trader_id: &trader_id,
            customer_id: b.customer_id.as_deref(),
            kind: KIND_CREDIT,
            currency: &currency,
            limit,
            terms: b.terms.as_deref(),
            metadata,
        },
    )
    .await?;
    let line = match opened {
        Some(line) => line,
        None => {
            // Another request opened one meanwhile.
            let existing = domain::live_line(
                &mut tx,
                &actor.tenant_id,
                &trader_id,
                &currency,
                KIND_CREDIT,
            )
            .await?
            .ok_or_else(|| ApiError::internal("live credit line vanished"))?;
            return Err(line_exists(&existing));
        }
    };
    let view = line.view()?;
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "credit_line.created",
        "credit_line",
        &view.id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "credit_line.create",
        "credit_line",
        Some(&view.id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CreditLineView>> {
    Ok(Json(
        load_line(st.db.pool(), &actor.tenant_id, &id)
            .await?
            .view()?,
    ))
}

/// Soft delete, only when nothing is outstanding (409 `credit_outstanding`).
pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let line = load_line(&mut *tx, &actor.tenant_id, &id).await?;
    let outstanding = domain::lock_outstanding(&mut tx, &actor.tenant_id, &line).await?;
    // Read again under the lock: a racing delete may have committed meanwhile.
    let line = load_line(&mut *tx, &actor.tenant_id, &id).await?;
    if line.deleted_at.is_some() {
        return Err(ApiError::conflict(
            "credit_line_deleted",
            "This credit line has already been deleted.",
        ));
    }
    if !outstanding.is_zero() {
        return Err(ApiError::conflict(
            "credit_outstanding",
            format!(
                "{outstanding} {} is outstanding; revoke it before deleting the line.",
                line.currency
            ),
        ));
    }
    let before = to_json(&line.clone().view()?);
    let ts = now();
    let done = sqlx::query(
        "UPDATE credit_lines SET deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "credit_line_deleted",
            "This credit line has already been deleted.",
        ));
    }
    let after = to_json(&load_line(&mut *tx, &actor.tenant_id, &id).await?.view()?);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "credit_line.deleted",
        "credit_line",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "credit_line.delete",
        "credit_line",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn entries(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<EntryView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    load_line(st.db.pool(), &actor.tenant_id, &id).await?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {ENTRY_COLUMNS} FROM credit_line_entries WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    b.push(" AND credit_line_id = ").text(id);
    for (param, column) in [("kind", "kind"), ("source", "source")] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<EntryView> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    amount: Option<String>,
    reason: Option<String>,
}

/// A grant or revoke and the line as it stands after it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveResult {
    #[serde(flatten)]
    entry: EntryView,
    credit_line: CreditLineView,
}

async fn movement(
    st: AppState,
    actor: Actor,
    id: String,
    b: MoveBody,
    revoke: bool,
) -> ApiResult<(StatusCode, Json<MoveResult>)> {
    let line = load_line(st.db.pool(), &actor.tenant_id, &id).await?;
    let mut v = Validator::new();
    let amount = amount_field(&mut v, "amount", b.amount.as_deref(), &line.currency);
    v.max_len("reason", b.reason.as_deref(), 500);
    v.finish()?;
    let amount = amount.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let line = load_line(&mut *tx, &actor.tenant_id, &id).await?;
    let before = to_json(&line.clone().view()?);
    let (ledger_kind, event, action) = match (revoke, line.kind == KIND_BONUS) {
        (false, false) => ("credit_grant", "credit_line.granted", "credit_line.grant"),
        (false, true) => ("bonus_grant", "credit_line.granted", "credit_line.grant"),
        (true, false) => ("credit_revoke", "credit_line.revoked", "credit_line.revoke"),
        (true, true) => ("bonus_revoke", "credit_line.revoked", "credit_line.revoke"),
    };
    let m = Movement {
        amount,
        source: "manual",
        ledger_kind,
        reason: b.reason.as_deref(),
        bonus_issuance_id: None,
    };
    let entry = if revoke {
        domain::revoke(&mut tx, &actor, &line, m, None).await?
    } else {
        domain::grant(&mut tx, &actor, &line, m).await?
    };
    let credit_line = load_line(&mut *tx, &actor.tenant_id, &id).await?.view()?;
    let result = MoveResult { entry, credit_line };
    let after = to_json(&result);
    events::emit(&mut tx, &actor.tenant_id, event, "credit_line", &id, &after).await?;
    audit::record(
        &mut tx,
        &actor,
        action,
        "credit_line",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(result)))
}

pub async fn grant(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> ApiResult<(StatusCode, Json<MoveResult>)> {
    movement(st, actor, id, b, false).await
}

pub async fn revoke(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> ApiResult<(StatusCode, Json<MoveResult>)> {
    movement(st, actor, id, b, true).await
}
