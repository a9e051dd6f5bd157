//! Positions synced from the trading platforms, for the back office.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::{Page, PageRequest};

#[derive(sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionView {
    id: String,
    platform: Option<String>,
    external_id: Option<String>,
    account_id: String,
    trader_id: String,
    symbol: String,
    side: String,
    volume: String,
    open_price: String,
    current_price: Option<String>,
    close_price: Option<String>,
    profit: Option<String>,
    commission: Option<String>,
    swap: Option<String>,
    opened_at: String,
    closed_at: Option<String>,
    updated_at: Option<String>,
}

const COLUMNS: &str = "id, platform, external_id, account_id, trader_id, symbol, side, volume, open_price, current_price, close_price, profit, commission, swap, opened_at, closed_at, updated_at";

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PositionView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM positions WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    match q.get("status").map(String::as_str) {
        None => {}
        Some("open") => {
            b.push(" AND closed_at IS NULL");
        }
        Some("closed") => {
            b.push(" AND closed_at IS NOT NULL");
        }
        Some(_) => return Err(ApiError::field("status", "must be open or closed")),
    }
    for (param, column) in [
        ("traderId", "trader_id"),
        ("accountId", "account_id"),
        ("platform", "platform"),
    ] {
        if let Some(v) = q.get(param) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(s) = q.get("symbol") {
        b.push(" AND symbol = ").text(s.to_uppercase());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<PositionView> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}
