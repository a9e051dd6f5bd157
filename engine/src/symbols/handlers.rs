//! Handlers of the symbol operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::defaults;
use super::model::{COLUMNS, SymbolBody, SymbolRow, blank, merge, validate};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::{new_id, now};

fn to_json(s: &SymbolRow) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<SymbolRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<SymbolRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM symbols WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("symbol"))
}

async fn symbol_taken(tx: &mut Tx, tenant_id: &str, symbol: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM symbols WHERE tenant_id = $1 AND symbol = $2 AND id <> $3")
            .bind(tenant_id)
            .bind(symbol)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some())
}

/// `?category=`, `?isActive=true|false`, `?q=` (symbol or name); newest first with cursor
/// pagination like every list (`sort_order` is the display order clients apply).
pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<SymbolRow>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM symbols WHERE tenant_id = "));
    b.text(&actor.tenant_id);
    if let Some(c) = q.get("category") {
        if !super::model::CATEGORIES.contains(&c.as_str()) {
            return Err(ApiError::field(
                "category",
                format!("must be one of: {}", super::model::CATEGORIES.join(", ")),
            ));
        }
        b.push(" AND category = ").text(c.clone());
    }
    match q.get("isActive").map(String::as_str) {
        None => {}
        Some("true") => {
            b.push(" AND is_active = 1");
        }
        Some("false") => {
            b.push(" AND is_active = 0");
        }
        Some(_) => return Err(ApiError::field("isActive", "must be true or false")),
    }
    if let Some(s) = q.get("q").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let like = format!("%{}%", s.to_uppercase());
        b.push(" AND (symbol LIKE ").text(like.clone());
        b.push(" OR UPPER(COALESCE(display_name, '')) LIKE ")
            .text(like)
            .push(")");
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<SymbolRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<SymbolRow>> {
    Ok(Json(load(st.db.pool(), &actor.tenant_id, &id).await?))
}

pub(super) async fn insert(tx: &mut Tx, tenant_id: &str, s: &SymbolRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO symbols (tenant_id, id, symbol, display_name, category, base_currency, quote_currency, contract_size,
           pip_size, markup_pips, commission_per_lot, swap_long, swap_short, min_lot, max_lot, lot_step, max_leverage,
           margin_percent, is_active, sort_order, badge, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
    )
    .bind(tenant_id)
    .bind(&s.id)
    .bind(&s.symbol)
    .bind(&s.display_name)
    .bind(&s.category)
    .bind(&s.base_currency)
    .bind(&s.quote_currency)
    .bind(&s.contract_size)
    .bind(&s.pip_size)
    .bind(&s.markup_pips)
    .bind(&s.commission_per_lot)
    .bind(&s.swap_long)
    .bind(&s.swap_short)
    .bind(&s.min_lot)
    .bind(&s.max_lot)
    .bind(&s.lot_step)
    .bind(s.max_leverage)
    .bind(&s.margin_percent)
    .bind(s.is_active)
    .bind(s.sort_order)
    .bind(&s.badge)
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn taken() -> ApiError {
    ApiError::conflict(
        "symbol_exists",
        "This tenant already has a symbol with that name.",
    )
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<SymbolBody>,
) -> ApiResult<(StatusCode, Json<SymbolRow>)> {
    let mut v = Validator::new();
    let mut s = merge(&mut v, blank(), b);
    validate(&mut v, &mut s);
    v.finish()?;
    let ts = now();
    s.id = new_id();
    s.created_at = ts.clone();
    s.updated_at = ts;
    let mut tx = st.db.begin().await?;
    if symbol_taken(&mut tx, &actor.tenant_id, &s.symbol, "").await? {
        return Err(taken());
    }
    insert(&mut tx, &actor.tenant_id, &s).await?;
    let after = to_json(&s);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "symbol.created",
            action: "symbol.create",
            resource_type: "symbol",
            resource_id: &s.id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(s)))
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SymbolBody>,
) -> ApiResult<Json<SymbolRow>> {
    let mut tx = st.db.begin().await?;
    let before = load(&mut *tx, &actor.tenant_id, &id).await?;
    let mut v = Validator::new();
    let mut s = merge(&mut v, before.clone(), b);
    validate(&mut v, &mut s);
    v.finish()?;
    if symbol_taken(&mut tx, &actor.tenant_id, &s.symbol, &id).await? {
        return Err(taken());
    }
    s.updated_at = now();
    sqlx::query(
        "UPDATE symbols SET symbol = $3, display_name = $4, category = $5, base_currency = $6, quote_currency = $7,
           contract_size = $8, pip_size = $9, markup_pips = $10, commission_per_lot = $11, swap_long = $12, swap_short = $13,
           min_lot = $14, max_lot = $15, lot_step = $16, max_leverage = $17, margin_percent = $18, is_active = $19,
           sort_order = $20, badge = $21, updated_at = $22
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&s.symbol)
    .bind(&s.display_name)
    .bind(&s.category)
    .bind(&s.base_currency)
    .bind(&s.quote_currency)
    .bind(&s.contract_size)
    .bind(&s.pip_size)
    .bind(&s.markup_pips)
    .bind(&s.commission_per_lot)
    .bind(&s.swap_long)
    .bind(&s.swap_short)
    .bind(&s.min_lot)
    .bind(&s.max_lot)
    .bind(&s.lot_step)
    .bind(s.max_leverage)
    .bind(&s.margin_percent)
    .bind(s.is_active)
    .bind(s.sort_order)
    .bind(&s.badge)
    .bind(&s.updated_at)
    .execute(&mut *tx)
    .await?;
    let after = to_json(&s);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "symbol.updated",
            action: "symbol.update",
            resource_type: "symbol",
            resource_id: &id,
            before: Some(&to_json(&before)),
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(s))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let before = load(&mut *tx, &actor.tenant_id, &id).await?;
    let done = sqlx::query("DELETE FROM symbols WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    // A delete that lost the race to another is a 404, like any delete of a deleted record.
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("symbol"));
    }
    let snapshot = to_json(&before);
    audit::record_change(
        &mut tx,
        &actor,
        audit::Change {
            event: "symbol.deleted",
            action: "symbol.delete",
            resource_type: "symbol",
            resource_id: &id,
            before: Some(&snapshot),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds every symbol of the standard pack that the tenant does not have yet; symbols it already
/// has (by name) are left exactly as the dealing desk configured them.
pub async fn seed_defaults(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let mut tx = st.db.begin().await?;
    let existing: Vec<(String,)> =
        sqlx::query_as("SELECT symbol FROM symbols WHERE tenant_id = $1")
            .bind(&actor.tenant_id)
            .fetch_all(&mut *tx)
            .await?;
    let existing: std::collections::HashSet<String> = existing.into_iter().map(|(s,)| s).collect();
    let ts = now();
    let mut inserted = Vec::new();
    let mut skipped = Vec::new();
    for (i, mut s) in defaults::pack().into_iter().enumerate() {
        if existing.contains(&s.symbol) {
            skipped.push(s.symbol);
            continue;
        }
        s.id = new_id();
        s.sort_order = i as i64 * 10;
        s.created_at = ts.clone();
        s.updated_at = ts.clone();
        insert(&mut tx, &actor.tenant_id, &s).await?;
        inserted.push(s.symbol);
    }
    let after = json!({"inserted": inserted, "skipped": skipped});
    if !inserted.is_empty() {
        events::emit(
            &mut tx,
            &actor.tenant_id,
            "symbol.seeded",
            "symbol",
            "defaults",
            &after,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        &actor,
        "symbol.seed_defaults",
        "symbol",
        None,
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({
        "inserted": after["inserted"].as_array().map_or(0, Vec::len),
        "skipped": after["skipped"].as_array().map_or(0, Vec::len),
        "symbols": after["inserted"],
    })))
}
