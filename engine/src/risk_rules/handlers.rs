//! CRUD and dry-run of risk rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ROUTINGS;
use super::classify::{self, FIELDS, RiskContext};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::Tx;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::scripting::condition::{self, Fields};
use crate::scripting::{field_error, sandbox};
use crate::util::{new_id, now, parse_json};

/// Rules per tenant: every account is tried against them in turn.
const MAX_RULES: i64 = 500;

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    name: String,
    match_json: String,
    source: String,
    routing: String,
    priority: i64,
    is_active: i64,
    version: i64,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str =
    "id, name, match_json, source, routing, priority, is_active, version, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    id: String,
    name: String,
    #[serde(rename = "match")]
    match_: Value,
    /// The Rhai expression the rule runs (the structured form compiled).
    expression: String,
    routing: String,
    priority: i64,
    is_active: bool,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl From<RuleRow> for RuleView {
    fn from(r: RuleRow) -> Self {
        RuleView {
            id: r.id,
            name: r.name,
            match_: parse_json(&r.match_json),
            expression: r.source,
            routing: r.routing,
            priority: r.priority,
            is_active: r.is_active != 0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

async fn load(conn: &mut sqlx::AnyConnection, tenant_id: &str, id: &str) -> ApiResult<RuleRow> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM risk_rules WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("risk rule"))
}

fn view_json(r: RuleRow) -> (RuleView, Value) {
    let v = RuleView::from(r);
    let j = serde_json::to_value(&v).unwrap_or(Value::Null);
    (v, j)
}

/// The Rhai source of a `match`, compiled once to report errors at their line and column.
fn check_match(v: &mut Validator, m: Option<&Value>) -> Option<String> {
    match condition::to_source(m, "match", &Fields::Flat(FIELDS)) {
        Err(e) => {
            v.push(e);
            None
        }
        Ok(src) => match sandbox::compile(&src, FIELDS) {
            Ok(_) => Some(src),
            Err(e) => {
                v.push(field_error("match", &e));
                None
            }
        },
    }
}

async fn name_taken(tx: &mut Tx, tenant_id: &str, name: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM risk_rules WHERE tenant_id = $1 AND name_lower = $2 AND id <> $3 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(name.to_lowercase())
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

fn taken() -> ApiError {
    ApiError::conflict(
        "risk_rule_name_taken",
        "A risk rule with this name already exists.",
    )
}

fn check_priority(v: &mut Validator, p: Option<i64>) {
    if let Some(p) = p {
        v.check(
            (0..=1_000_000).contains(&p),
            "priority",
            "must be between 0 and 1000000",
        );
    }
}

pub async fn list(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM risk_rules WHERE tenant_id = $1 AND deleted_at IS NULL
         ORDER BY priority, id LIMIT {MAX_RULES}"
    ))
    .bind(&actor.tenant_id)
    .fetch_all(st.db.pool())
    .await?;
    let data: Vec<RuleView> = rows.into_iter().map(RuleView::from).collect();
    Ok(Json(json!({"data": data, "next_cursor": null})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    name: Option<String>,
    #[serde(rename = "match")]
    match_: Option<Value>,
    routing: Option<String>,
    priority: Option<i64>,
    is_active: Option<bool>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    let routing = v
        .required("routing", b.routing.as_deref())
        .map(str::to_string);
    v.one_of("routing", routing.as_deref(), ROUTINGS);
    check_priority(&mut v, b.priority);
    let source = check_match(&mut v, b.match_.as_ref());
    v.finish()?;
    let (name, routing, source) = (
        name.unwrap_or_default(),
        routing.unwrap_or_default(),
        source.unwrap_or_default(),
    );
    let mut tx = st.db.begin().await?;
    if name_taken(&mut tx, &actor.tenant_id, &name, "").await? {
        return Err(taken());
    }
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM risk_rules WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_RULES {
        return Err(ApiError::conflict(
            "risk_rule_limit",
            format!("A tenant can have at most {MAX_RULES} risk rules."),
        ));
    }
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO risk_rules (tenant_id, id, name, name_lower, match_json, source, routing, priority, is_active, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(b.match_.unwrap_or_else(|| json!({})).to_string())
    .bind(&source)
    .bind(&routing)
    .bind(b.priority.unwrap_or(0))
    .bind(i64::from(b.is_active.unwrap_or(true)))
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let (view, after) = view_json(load(&mut tx, &actor.tenant_id, &id).await?);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "risk_rule.created",
        "risk_rule",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "risk_rule.create",
        "risk_rule",
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
    name: Patch<String>,
    #[serde(default, rename = "match")]
    match_: Patch<Value>,
    #[serde(default)]
    routing: Patch<String>,
    #[serde(default)]
    priority: Patch<i64>,
    #[serde(default)]
    is_active: Patch<bool>,
}

pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<RuleView>> {
    let mut v = Validator::new();
    for (field, null) in [
        ("name", matches!(b.name, Patch::Null)),
        ("routing", matches!(b.routing, Patch::Null)),
        ("priority", matches!(b.priority, Patch::Null)),
        ("isActive", matches!(b.is_active, Patch::Null)),
    ] {
        if null {
            v.fail(field, "cannot be null");
        }
    }
    let name = b
        .name
        .value()
        .and_then(|n| v.required("name", Some(n)).map(str::to_string));
    v.max_len("name", name.as_deref(), 100);
    v.one_of("routing", b.routing.value().map(String::as_str), ROUTINGS);
    check_priority(&mut v, b.priority.value().copied());
    let source = match &b.match_ {
        Patch::Missing => None,
        Patch::Null => check_match(&mut v, None),
        Patch::Value(m) => check_match(&mut v, Some(m)),
    };
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let cur = load(&mut tx, &actor.tenant_id, &id).await?;
    let name = name.unwrap_or_else(|| cur.name.clone());
    if name.to_lowercase() != cur.name.to_lowercase()
        && name_taken(&mut tx, &actor.tenant_id, &name, &id).await?
    {
        return Err(taken());
    }
    let match_json = match &b.match_ {
        Patch::Missing => cur.match_json.clone(),
        Patch::Null => "{}".to_string(),
        Patch::Value(m) => m.to_string(),
    };
    let source = source.unwrap_or_else(|| cur.source.clone());
    let routing = b
        .routing
        .value()
        .cloned()
        .unwrap_or_else(|| cur.routing.clone());
    let priority = b.priority.value().copied().unwrap_or(cur.priority);
    let is_active = b
        .is_active
        .value()
        .map(|a| i64::from(*a))
        .unwrap_or(cur.is_active);
    let version = cur.version;
    let (_, before) = view_json(cur);
    // Compare-and-set on the version read: the row is written back whole, so an edit (or an
    // enable/disable) made meanwhile would be undone; the later request gets 409 instead.
    let done = sqlx::query(
        "UPDATE risk_rules SET name = $3, name_lower = $4, match_json = $5, source = $6, routing = $7,
           priority = $8, is_active = $9, version = version + 1, updated_at = $10
         WHERE tenant_id = $1 AND id = $2 AND version = $11 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(match_json)
    .bind(source)
    .bind(routing)
    .bind(priority)
    .bind(is_active)
    .bind(now())
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("risk rule"));
    }
    let (view, after) = view_json(load(&mut tx, &actor.tenant_id, &id).await?);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "risk_rule.updated",
        "risk_rule",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "risk_rule.update",
        "risk_rule",
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
    let cur = load(&mut tx, &actor.tenant_id, &id).await?;
    let (_, before) = view_json(cur);
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE risk_rules SET deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::NotFound("risk rule"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "risk_rule.deleted",
        "risk_rule",
        &id,
        &before,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "risk_rule.delete",
        "risk_rule",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    trader_country: Option<String>,
    account_balance: Option<f64>,
    account_equity: Option<f64>,
    account_leverage: Option<i64>,
    account_currency: Option<String>,
    account_platform: Option<String>,
    deposit_total_lifetime: Option<f64>,
    position_volume: Option<f64>,
    position_symbol: Option<String>,
    position_profit: Option<f64>,
    is_demo: Option<bool>,
}

pub async fn dry_run(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DryRunBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    for (field, n) in [
        ("account_balance", b.account_balance),
        ("account_equity", b.account_equity),
        ("deposit_total_lifetime", b.deposit_total_lifetime),
        ("position_volume", b.position_volume),
        ("position_profit", b.position_profit),
    ] {
        v.check(
            n.is_none_or(f64::is_finite),
            field,
            "must be a finite number",
        );
    }
    v.finish()?;
    let rule = {
        let mut conn = st.db.pool().acquire().await?;
        load(&mut conn, &actor.tenant_id, &id).await?
    };
    let ctx = RiskContext {
        trader_country: b.trader_country.unwrap_or_default(),
        account_balance: b.account_balance.unwrap_or(0.0),
        account_equity: b.account_equity.or(b.account_balance).unwrap_or(0.0),
        account_leverage: b.account_leverage.unwrap_or(100),
        account_currency: b.account_currency.unwrap_or_default(),
        account_platform: b.account_platform.unwrap_or_default(),
        deposit_total_lifetime: b.deposit_total_lifetime.unwrap_or(0.0),
        position_volume: b.position_volume.unwrap_or(0.0),
        position_symbol: b.position_symbol.unwrap_or_default(),
        position_profit: b.position_profit.unwrap_or(0.0),
        is_demo: b.is_demo.unwrap_or(false),
    };
    let ast = classify::compiled(&actor.tenant_id, &rule.id, rule.version, &rule.source)
        .map_err(ApiError::internal)?;
    let eval_ctx = ctx.clone();
    let outcome = sandbox::run_blocking(move || classify::matches(&ast, &eval_ctx))
        .await
        .and_then(|r| r);
    let (matched, error) = match outcome {
        Ok(m) => (m, Value::Null),
        Err(e) => (
            false,
            json!({"kind": e.kind, "message": e.message, "line": e.line, "column": e.column}),
        ),
    };
    Ok(Json(json!({
        "ruleId": rule.id,
        "version": rule.version,
        "isActive": rule.is_active != 0,
        "wouldFire": matched,
        "routing": if matched { Value::String(rule.routing) } else { Value::Null },
        "expression": rule.source,
        "context": ctx,
        "error": error,
    })))
}
