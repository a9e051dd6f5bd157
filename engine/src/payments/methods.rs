//! Payment methods saved for a trader (card, bank account, crypto address, e-wallet).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common;
use super::model::KINDS;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::ApiResult;
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::{Validator, is_currency};
use crate::util::{new_id, now, parse_json};

use axum::Json;

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    trader_id: String,
    kind: String,
    label: String,
    external_ref: Option<String>,
    currency: Option<String>,
    network: Option<String>,
    metadata: String,
    is_default: i64,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str = "id, trader_id, kind, label, external_ref, currency, network, metadata, is_default, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodView {
    id: String,
    trader_id: String,
    kind: String,
    label: String,
    external_ref: Option<String>,
    currency: Option<String>,
    network: Option<String>,
    metadata: Value,
    is_default: bool,
    created_at: String,
    updated_at: String,
}

impl From<Row> for MethodView {
    fn from(r: Row) -> Self {
        MethodView {
            metadata: parse_json(&r.metadata),
            is_default: r.is_default != 0,
            id: r.id,
            trader_id: r.trader_id,
            kind: r.kind,
            label: r.label,
            external_ref: r.external_ref,
            currency: r.currency,
            network: r.network,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<MethodView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE deleted_at IS NULL AND tenant_id = "
    ));
    b.text(&actor.tenant_id);
    for (param, column) in [
        ("traderId", "trader_id"),
        ("kind", "kind"),
        ("currency", "currency"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<Row> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(MethodView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    trader_id: Option<String>,
    kind: Option<String>,
    label: Option<String>,
    external_ref: Option<String>,
    currency: Option<String>,
    network: Option<String>,
    metadata: Option<Value>,
    is_default: Option<bool>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<MethodView>)> {
    let mut v = Validator::new();
    let trader_id = v
        .required("traderId", b.trader_id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    let kind = v.required("kind", b.kind.as_deref()).map(str::to_string);
    v.one_of("kind", kind.as_deref(), KINDS);
    let label = v.required("label", b.label.as_deref()).map(str::to_string);
    v.max_len("label", label.as_deref(), 100);
    v.max_len("externalRef", b.external_ref.as_deref(), 256);
    v.max_len("network", b.network.as_deref(), 32);
    if let Some(c) = b.currency.as_deref() {
        v.check(
            is_currency(c),
            "currency",
            "must be an ISO 4217 code such as USD",
        );
    }
    let metadata = common::metadata_json(&mut v, b.metadata.as_ref());
    v.finish()?;
    let mut tx = st.db.begin().await?;
    common::check_parties(&mut tx, &actor.tenant_id, &trader_id, None, None).await?;
    let is_default = b.is_default.unwrap_or(false);
    let ts = now();
    if is_default {
        // One default per trader: the new one replaces any other.
        sqlx::query("UPDATE payment_methods SET is_default = 0, updated_at = $3 WHERE tenant_id = $1 AND trader_id = $2 AND is_default = 1")
            .bind(&actor.tenant_id)
            .bind(&trader_id)
            .bind(&ts)
            .execute(&mut *tx)
            .await?;
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO payment_methods (tenant_id, id, trader_id, kind, label, external_ref, currency, network, metadata, is_default, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&trader_id)
    .bind(&kind)
    .bind(&label)
    .bind(&b.external_ref)
    .bind(&b.currency)
    .bind(&b.network)
    .bind(metadata)
    .bind(i64::from(is_default))
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(&actor.tenant_id)
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let view = MethodView::from(row);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "payment_method.created",
        "payment_method",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "payment_method.create",
        "payment_method",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}
