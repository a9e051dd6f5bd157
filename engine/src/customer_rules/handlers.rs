//! CRUD of customer rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ACTIONS, TRIGGERS, VARS};
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

const MAX_RULES: i64 = 200;

#[derive(sqlx::FromRow)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub trigger_on: String,
    pub condition_json: String,
    pub source: String,
    pub action: String,
    pub params: String,
    pub priority: i64,
    pub is_active: i64,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

pub const COLUMNS: &str = "id, name, trigger_on, condition_json, source, action, params, priority, is_active, version, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    id: String,
    name: String,
    trigger: String,
    condition: Value,
    expression: String,
    action: String,
    reason: Option<String>,
    user_id: Option<String>,
    tag_id: Option<String>,
    priority: i64,
    is_active: bool,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl From<RuleRow> for RuleView {
    fn from(r: RuleRow) -> Self {
        let p = parse_json(&r.params);
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        RuleView {
            reason: s("reason"),
            user_id: s("userId"),
            tag_id: s("tagId"),
            id: r.id,
            name: r.name,
            trigger: r.trigger_on,
            condition: parse_json(&r.condition_json),
            expression: r.source,
            action: r.action,
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
        "SELECT {COLUMNS} FROM customer_rules WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("customer rule"))
}

fn view_json(r: RuleRow) -> (RuleView, Value) {
    let v = RuleView::from(r);
    let j = serde_json::to_value(&v).unwrap_or(Value::Null);
    (v, j)
}

fn check_condition(v: &mut Validator, c: Option<&Value>) -> Option<String> {
    match condition::to_source(c, "condition", &Fields::Paths(VARS)) {
        Err(e) => {
            v.push(e);
            None
        }
        Ok(src) => match sandbox::compile(&src, VARS) {
            Ok(_) => Some(src),
            Err(e) => {
                v.push(field_error("condition", &e));
                None
            }
        },
    }
}

/// The action's parameters, checked against the tenant (a 400 naming the field otherwise).
async fn check_params(tx: &mut Tx, tenant_id: &str, action: &str, params: &Value) -> ApiResult<()> {
    let (field, sql) = match action {
        "assign" => (
            "userId",
            "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        ),
        "tag" => (
            "tagId",
            "SELECT id FROM tags WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL",
        ),
        _ => return Ok(()),
    };
    let Some(id) = params.get(field).and_then(Value::as_str) else {
        return Err(ApiError::field(
            field,
            format!("is required for action {action}"),
        ));
    };
    let found: Option<(String,)> = sqlx::query_as(sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if found.is_none() {
        return Err(ApiError::field(field, "does not exist in this tenant"));
    }
    Ok(())
}

fn params_of(reason: Option<&str>, user_id: Option<&str>, tag_id: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [("reason", reason), ("userId", user_id), ("tagId", tag_id)] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

async fn name_taken(tx: &mut Tx, tenant_id: &str, name: &str, except: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM customer_rules WHERE tenant_id = $1 AND name_lower = $2 AND id <> $3 AND deleted_at IS NULL",
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
        "customer_rule_name_taken",
        "A customer rule with this name already exists.",
    )
}

pub async fn list(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customer_rules WHERE tenant_id = $1 AND deleted_at IS NULL
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
    trigger: Option<String>,
    condition: Option<Value>,
    action: Option<String>,
    reason: Option<String>,
    user_id: Option<String>,
    tag_id: Option<String>,
    priority: Option<i64>,
    is_active: Option<bool>,
}

fn check_common(v: &mut Validator, priority: Option<i64>, reason: Option<&str>) {
    if let Some(p) = priority {
        v.check(
            (0..=1_000_000).contains(&p),
            "priority",
            "must be between 0 and 1000000",
        );
    }
    v.max_len("reason", reason, 500);
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    let trigger = b.trigger.clone().unwrap_or_else(|| "signup".into());
    v.one_of("trigger", Some(&trigger), TRIGGERS);
    let action = v
        .required("action", b.action.as_deref())
        .map(str::to_string);
    v.one_of("action", action.as_deref(), ACTIONS);
    check_common(&mut v, b.priority, b.reason.as_deref());
    let source = check_condition(&mut v, b.condition.as_ref());
    v.finish()?;
    let (name, action) = (name.unwrap_or_default(), action.unwrap_or_default());
    let params = params_of(
        b.reason.as_deref(),
        b.user_id.as_deref(),
        b.tag_id.as_deref(),
    );
    let mut tx = st.db.begin().await?;
    check_params(&mut tx, &actor.tenant_id, &action, &params).await?;
    if name_taken(&mut tx, &actor.tenant_id, &name, "").await? {
        return Err(taken());
    }
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM customer_rules WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_RULES {
        return Err(ApiError::conflict(
            "customer_rule_limit",
            format!("A tenant can have at most {MAX_RULES} customer rules."),
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO customer_rules (tenant_id, id, name, name_lower, trigger_on, condition_json, source, action, params, priority, is_active, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&trigger)
    .bind(b.condition.unwrap_or_else(|| json!({})).to_string())
    .bind(source.unwrap_or_default())
    .bind(&action)
    .bind(params.to_string())
    .bind(b.priority.unwrap_or(0))
    .bind(i64::from(b.is_active.unwrap_or(true)))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let (view, after) = view_json(load(&mut tx, &actor.tenant_id, &id).await?);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer_rule.created",
        "customer_rule",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer_rule.create",
        "customer_rule",
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
    #[serde(default)]
    trigger: Patch<String>,
    #[serde(default)]
    condition: Patch<Value>,
    #[serde(default)]
    action: Patch<String>,
    #[serde(default)]
    reason: Patch<String>,
    #[serde(default)]
    user_id: Patch<String>,
    #[serde(default)]
    tag_id: Patch<String>,
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
        ("trigger", matches!(b.trigger, Patch::Null)),
        ("action", matches!(b.action, Patch::Null)),
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
    v.one_of("trigger", b.trigger.value().map(String::as_str), TRIGGERS);
    v.one_of("action", b.action.value().map(String::as_str), ACTIONS);
    check_common(
        &mut v,
        b.priority.value().copied(),
        b.reason.value().map(String::as_str),
    );
    let source = match &b.condition {
        Patch::Missing => None,
        Patch::Null => check_condition(&mut v, None),
        Patch::Value(c) => check_condition(&mut v, Some(c)),
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
    let old = parse_json(&cur.params);
    let old_s = |k: &str| old.get(k).and_then(Value::as_str).map(str::to_string);
    let reason = b.reason.clone().apply(old_s("reason"));
    let user_id = b.user_id.clone().apply(old_s("userId"));
    let tag_id = b.tag_id.clone().apply(old_s("tagId"));
    let params = params_of(reason.as_deref(), user_id.as_deref(), tag_id.as_deref());
    let action = b
        .action
        .value()
        .cloned()
        .unwrap_or_else(|| cur.action.clone());
    check_params(&mut tx, &actor.tenant_id, &action, &params).await?;
    let condition_json = match &b.condition {
        Patch::Missing => cur.condition_json.clone(),
        Patch::Null => "{}".to_string(),
        Patch::Value(c) => c.to_string(),
    };
    let source = source.unwrap_or_else(|| cur.source.clone());
    let trigger = b
        .trigger
        .value()
        .cloned()
        .unwrap_or_else(|| cur.trigger_on.clone());
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
        "UPDATE customer_rules SET name = $3, name_lower = $4, trigger_on = $5, condition_json = $6, source = $7,
           action = $8, params = $9, priority = $10, is_active = $11, version = version + 1, updated_at = $12
         WHERE tenant_id = $1 AND id = $2 AND version = $13 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(trigger)
    .bind(condition_json)
    .bind(source)
    .bind(action)
    .bind(params.to_string())
    .bind(priority)
    .bind(is_active)
    .bind(now())
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::lost_race("customer rule"));
    }
    let (view, after) = view_json(load(&mut tx, &actor.tenant_id, &id).await?);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer_rule.updated",
        "customer_rule",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer_rule.update",
        "customer_rule",
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
    let (_, before) = view_json(load(&mut tx, &actor.tenant_id, &id).await?);
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE customer_rules SET deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::NotFound("customer rule"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "customer_rule.deleted",
        "customer_rule",
        &id,
        &before,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "customer_rule.delete",
        "customer_rule",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
