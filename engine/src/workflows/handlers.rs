//! Workflow operations: create, list, delete, runs and dry-run.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::actions::{self, Action};
use super::runner::{self, VARS};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::scripting::condition::{self, Fields};
use crate::scripting::{field_error, sandbox};
use crate::util::{new_id, now, parse_json};

const MAX_ACTIONS: usize = 20;

#[derive(sqlx::FromRow)]
struct WorkflowRow {
    id: String,
    name: String,
    trigger_type: String,
    condition_json: String,
    source: String,
    actions: String,
    is_active: i64,
    version: i64,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str = "id, name, trigger_type, condition_json, source, actions, is_active, version, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    id: String,
    name: String,
    trigger_type: String,
    condition: Value,
    /// The Rhai expression the condition runs as.
    expression: String,
    actions: Value,
    is_active: bool,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl From<WorkflowRow> for WorkflowView {
    fn from(r: WorkflowRow) -> Self {
        WorkflowView {
            id: r.id,
            name: r.name,
            trigger_type: r.trigger_type,
            condition: parse_json(&r.condition_json),
            expression: r.source,
            actions: parse_json(&r.actions),
            is_active: r.is_active != 0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

async fn load(conn: &mut sqlx::AnyConnection, tenant_id: &str, id: &str) -> ApiResult<WorkflowRow> {
    let row: Option<WorkflowRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM workflows WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("workflow"))
}

fn is_trigger(s: &str) -> bool {
    s.len() <= 100
        && s.split('.').count() >= 2
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<WorkflowView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM workflows WHERE deleted_at IS NULL AND tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(t) = q.get("triggerType") {
        b.push(" AND trigger_type = ").text(t.clone());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<WorkflowRow> = b.query_as().fetch_all(st.db.pool()).await?;
    let views: Vec<WorkflowView> = rows.into_iter().map(WorkflowView::from).collect();
    Ok(Json(Page::from_rows(views, &page, |r| &r.id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    name: Option<String>,
    trigger_type: Option<String>,
    condition: Option<Value>,
    actions: Option<Vec<Value>>,
    is_active: Option<bool>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<WorkflowView>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    let trigger = v
        .required("triggerType", b.trigger_type.as_deref())
        .map(str::to_string);
    if let Some(t) = &trigger {
        v.check(
            is_trigger(t),
            "triggerType",
            "must be an event name such as trader.created",
        );
    }
    let source = match condition::to_source(b.condition.as_ref(), "condition", &Fields::Paths(VARS))
    {
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
    };
    let raw_actions = b.actions.unwrap_or_default();
    if raw_actions.len() > MAX_ACTIONS {
        v.fail("actions", format!("at most {MAX_ACTIONS} actions"));
    }
    let mut parsed: Vec<Action> = Vec::new();
    for (i, a) in raw_actions.iter().enumerate() {
        match actions::parse(a, &format!("actions[{i}]")) {
            Ok(a) => parsed.push(a),
            Err(e) => v.push(e),
        }
    }
    v.finish()?;
    let mut v = Validator::new();
    let mut tx = st.db.begin().await?;
    for (i, a) in parsed.iter().enumerate() {
        if let Some(e) =
            actions::check_refs(&mut tx, &actor.tenant_id, a, &format!("actions[{i}]")).await?
        {
            v.push(e);
        }
    }
    v.finish()?;
    let name = name.unwrap_or_default();
    let taken: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM workflows WHERE tenant_id = $1 AND name_lower = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(name.to_lowercase())
    .fetch_optional(&mut *tx)
    .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(
            "workflow_name_taken",
            "A workflow with this name already exists.",
        ));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO workflows (tenant_id, id, name, name_lower, trigger_type, condition_json, source, actions, is_active, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(trigger.unwrap_or_default())
    .bind(b.condition.unwrap_or_else(|| json!({})).to_string())
    .bind(source.unwrap_or_default())
    .bind(serde_json::to_string(&parsed).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(b.is_active.unwrap_or(false)))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = WorkflowView::from(load(&mut tx, &actor.tenant_id, &id).await?);
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "workflow.created",
        "workflow",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "workflow.create",
        "workflow",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = WorkflowView::from(load(&mut tx, &actor.tenant_id, &id).await?);
    let before = serde_json::to_value(&cur).unwrap_or(Value::Null);
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE workflows SET deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::NotFound("workflow"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "workflow.deleted",
        "workflow",
        &id,
        &before,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "workflow.delete",
        "workflow",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    workflow_id: String,
    workflow_version: i64,
    event_id: String,
    event_name: String,
    status: String,
    input: String,
    decision: String,
    actions: String,
    error: Option<String>,
    duration_ms: i64,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    id: String,
    workflow_id: String,
    workflow_version: i64,
    event_id: String,
    event_name: String,
    status: String,
    input: Value,
    decision: Value,
    actions: Value,
    error: Option<String>,
    duration_ms: i64,
    created_at: String,
}

pub async fn runs(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<RunView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut conn = st.db.pool().acquire().await?;
    load(&mut conn, &actor.tenant_id, &id).await?;
    let mut b = SqlBuilder::new(
        "SELECT id, workflow_id, workflow_version, event_id, event_name, status, input, decision, actions, error, duration_ms, created_at
         FROM workflow_runs WHERE tenant_id = ",
    );
    b.text(&actor.tenant_id);
    b.push(" AND workflow_id = ").text(id.clone());
    if let Some(s) = q.get("status") {
        b.push(" AND status = ").text(s.clone());
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<RunRow> = b.query_as().fetch_all(&mut *conn).await?;
    let views: Vec<RunView> = rows
        .into_iter()
        .map(|r| RunView {
            id: r.id,
            workflow_id: r.workflow_id,
            workflow_version: r.workflow_version,
            event_id: r.event_id,
            event_name: r.event_name,
            status: r.status,
            input: parse_json(&r.input),
            decision: parse_json(&r.decision),
            actions: parse_json(&r.actions),
            error: r.error,
            duration_ms: r.duration_ms,
            created_at: r.created_at,
        })
        .collect();
    Ok(Json(Page::from_rows(views, &page, |r| &r.id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SampleEvent {
    name: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    payload: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DryRunBody {
    event: Option<SampleEvent>,
}

pub async fn dry_run(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DryRunBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let ev = b.event.unwrap_or(SampleEvent {
        name: None,
        resource_type: None,
        resource_id: None,
        payload: None,
    });
    if ev.payload.as_ref().is_some_and(|p| !p.is_object()) {
        v.fail("event.payload", "must be an object");
    }
    v.finish()?;
    let mut conn = st.db.pool().acquire().await?;
    let wf = load(&mut conn, &actor.tenant_id, &id).await?;
    let payload = ev.payload.unwrap_or_else(|| json!({}));
    let resource_type = ev.resource_type.unwrap_or_default();
    let resource_id = ev.resource_id.unwrap_or_default();
    let trader_id = runner::trader_of(&resource_type, &resource_id, &payload);
    let event = json!({
        "id": null, "name": ev.name.unwrap_or_else(|| wf.trigger_type.clone()),
        "resourceType": resource_type, "resourceId": resource_id,
        "createdAt": now(), "payload": payload,
    });
    // The trader must be this tenant's: another tenant's id reads as no trader.
    let ctx = runner::context(&mut conn, &actor.tenant_id, event, trader_id.as_deref()).await?;
    drop(conn);
    let ast = runner::compiled(&actor.tenant_id, &wf.id, wf.version, &wf.source)
        .map_err(ApiError::internal)?;
    let configured = runner::configured_actions(&wf.actions);
    let eval_ctx = ctx.clone();
    let outcome = sandbox::run_blocking(move || runner::decide(&ast, &eval_ctx, &configured))
        .await
        .and_then(|d| d);
    Ok(Json(match outcome {
        Ok(d) => json!({
            "workflowId": wf.id, "version": wf.version, "wouldRun": d.fired,
            "decision": d.raw,
            "actions": d.actions.iter().map(|a| actions::preview(a, &ctx["trader"])).collect::<Vec<_>>(),
            "input": ctx, "error": null,
        }),
        Err(e) => json!({
            "workflowId": wf.id, "version": wf.version, "wouldRun": false,
            "decision": null, "actions": [], "input": ctx,
            "error": {"kind": e.kind, "message": e.message, "line": e.line, "column": e.column},
        }),
    }))
}
