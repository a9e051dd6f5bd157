//! The workflow worker: offers outbox events to the tenant's workflows for that trigger,
//! evaluates each condition on a blocking thread, and carries out the decided actions in one
//! transaction together with the run record. The run's unique key (tenant, workflow, event)
//! makes several engine processes trigger each workflow once per event: a process that loses
//! the race rolls its transaction back, actions included.

use std::sync::Arc;
use std::time::Instant;

use rhai::AST;
use serde_json::{Value, json};

use super::actions::{self, Action, RunRef};
use crate::app::AppState;
use crate::db::Db;
use crate::http::error::ApiResult;
use crate::scripting::{ScriptError, cache, convert, sandbox};
use crate::util::{new_id, now, parse_json};

/// The variables a workflow condition can read.
pub const VARS: &[&str] = &["event", "payload", "trader"];
/// Events caused by this many chained workflow runs trigger no further workflows.
pub const MAX_CHAIN_DEPTH: i64 = 3;
const BATCH: i64 = 100;

pub fn compiled(
    tenant_id: &str,
    id: &str,
    version: i64,
    source: &str,
) -> Result<Arc<AST>, ScriptError> {
    cache::get_or_compile(
        &cache::key("workflow", tenant_id, id, version),
        source,
        VARS,
    )
}

/// What a condition decided: the actions to take (empty: the workflow does not fire).
pub struct Decision {
    pub fired: bool,
    pub actions: Vec<Action>,
    pub raw: Value,
}

/// Evaluates a condition (blocking). `true` takes the workflow's actions; an array of action
/// objects takes those instead; `false` or `()` takes none.
pub fn decide(ast: &AST, ctx: &Value, configured: &[Action]) -> Result<Decision, ScriptError> {
    let vars = vec![
        ("event", convert::to_dynamic(&ctx["event"])),
        ("payload", convert::to_dynamic(&ctx["event"]["payload"])),
        ("trader", convert::to_dynamic(&ctx["trader"])),
    ];
    let out = sandbox::eval(ast, vars)?;
    if out.is_array() {
        let raw = convert::to_json(&out)?;
        let mut list = Vec::new();
        for (i, a) in raw.as_array().into_iter().flatten().enumerate() {
            let a = actions::parse(a, &format!("result[{i}]"))
                .map_err(|e| ScriptError::new("runtime", format!("{}: {}", e.field, e.message)))?;
            list.push(a);
        }
        return Ok(Decision {
            fired: !list.is_empty(),
            actions: list,
            raw,
        });
    }
    let fired = convert::to_bool(&out)?;
    Ok(Decision {
        fired,
        actions: if fired { configured.to_vec() } else { vec![] },
        raw: Value::Bool(fired),
    })
}

#[derive(sqlx::FromRow, Clone)]
pub struct EventRow {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub resource_type: String,
    pub resource_id: String,
    pub payload: String,
    pub created_at: String,
    pub chain_depth: i64,
}

/// The trader an event is about: the resource itself, or `traderId` in its payload.
pub fn trader_of(resource_type: &str, resource_id: &str, payload: &Value) -> Option<String> {
    if resource_type == "trader" {
        return Some(resource_id.to_string());
    }
    payload
        .get("traderId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The context a condition sees: `event` (id, name, resourceType, resourceId, createdAt,
/// payload) and `trader` (the trader's record, or `()` when the event names none).
pub async fn context(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    event: Value,
    trader_id: Option<&str>,
) -> ApiResult<Value> {
    let trader = match trader_id {
        Some(t) => match crate::traders::load(&mut *conn, tenant_id, t).await {
            Ok(row) => {
                serde_json::to_value(crate::traders::TraderView::from(row)).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        },
        None => Value::Null,
    };
    Ok(json!({"event": event, "trader": trader}))
}

#[derive(sqlx::FromRow)]
pub struct WorkflowSrc {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub source: String,
    pub actions: String,
}

pub fn configured_actions(json: &str) -> Vec<Action> {
    serde_json::from_str(json).unwrap_or_default()
}

/// One round: every event not yet offered to workflows and customer rules (up to a batch).
/// Returns the number of events handled (0: nothing was waiting), so a caller can loop until
/// the backlog is gone.
pub async fn run_workflows_once(st: &AppState) -> ApiResult<usize> {
    let db = &st.db;
    let waiting: Option<(String,)> =
        sqlx::query_as("SELECT id FROM events WHERE workflows_at IS NULL LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    if waiting.is_none() {
        return Ok(0);
    }
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT tenant_id, id, name, resource_type, resource_id, payload, created_at, chain_depth FROM events
         WHERE workflows_at IS NULL ORDER BY created_at, id LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    let handled = events.len();
    for ev in events {
        let workflows: Vec<WorkflowSrc> = sqlx::query_as(
            "SELECT id, name, version, source, actions FROM workflows
             WHERE tenant_id = $1 AND trigger_type = $2 AND is_active = 1 AND deleted_at IS NULL
               AND created_at <= $3
             ORDER BY id",
        )
        .bind(&ev.tenant_id)
        .bind(&ev.name)
        .bind(&ev.created_at)
        .fetch_all(db.pool())
        .await?;
        for wf in workflows {
            let done: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM workflow_runs WHERE tenant_id = $1 AND workflow_id = $2 AND event_id = $3",
            )
            .bind(&ev.tenant_id)
            .bind(&wf.id)
            .bind(&ev.id)
            .fetch_optional(db.pool())
            .await?;
            if done.is_some() {
                continue;
            }
            run_one(db, &ev, &wf).await?;
        }
        crate::customer_rules::on_event(db, &ev).await?;
        sqlx::query(
            "UPDATE events SET workflows_at = $3 WHERE tenant_id = $1 AND id = $2 AND workflows_at IS NULL",
        )
        .bind(&ev.tenant_id)
        .bind(&ev.id)
        .bind(now())
        .execute(db.pool())
        .await?;
    }
    Ok(handled)
}

struct RunRecord<'a> {
    id: &'a str,
    status: &'a str,
    input: &'a Value,
    decision: &'a Value,
    actions: &'a Value,
    error: Option<String>,
    duration_ms: i64,
}

/// Inserts the run unless another process already ran this workflow for this event.
async fn insert_run(
    tx: &mut crate::db::Tx,
    ev: &EventRow,
    wf: &WorkflowSrc,
    r: RunRecord<'_>,
) -> ApiResult<bool> {
    let n = sqlx::query(
        "INSERT INTO workflow_runs (tenant_id, id, workflow_id, workflow_version, event_id, event_name, status,
           input, decision, actions, error, duration_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT DO NOTHING",
    )
    .bind(&ev.tenant_id)
    .bind(r.id)
    .bind(&wf.id)
    .bind(wf.version)
    .bind(&ev.id)
    .bind(&ev.name)
    .bind(r.status)
    .bind(r.input.to_string())
    .bind(r.decision.to_string())
    .bind(r.actions.to_string())
    .bind(r.error)
    .bind(r.duration_ms)
    .bind(now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub fn event_json(ev: &EventRow) -> Value {
    json!({
        "id": ev.id, "name": ev.name, "resourceType": ev.resource_type,
        "resourceId": ev.resource_id, "createdAt": ev.created_at,
        "payload": parse_json(&ev.payload),
    })
}

fn error_json(e: &ScriptError) -> String {
    e.to_string()
}

/// Runs one workflow for one event; returns whether this process recorded the run.
async fn run_one(db: &Db, ev: &EventRow, wf: &WorkflowSrc) -> ApiResult<bool> {
    let started = Instant::now();
    let run_id = new_id();
    let event = event_json(ev);
    let trader_id = trader_of(&ev.resource_type, &ev.resource_id, &event["payload"]);
    let input = {
        let mut conn = db.pool().acquire().await?;
        context(
            &mut conn,
            &ev.tenant_id,
            event.clone(),
            trader_id.as_deref(),
        )
        .await?
    };
    let configured = configured_actions(&wf.actions);
    let decision = if ev.chain_depth >= MAX_CHAIN_DEPTH {
        Err(ScriptError::new(
            "limit",
            format!(
                "the event was caused by {MAX_CHAIN_DEPTH} chained workflow runs; no further workflows run"
            ),
        ))
    } else {
        match compiled(&ev.tenant_id, &wf.id, wf.version, &wf.source) {
            Ok(ast) => {
                let ctx = input.clone();
                sandbox::run_blocking(move || decide(&ast, &ctx, &configured))
                    .await
                    .and_then(|d| d)
            }
            Err(e) => Err(e),
        }
    };
    let ms = |s: Instant| s.elapsed().as_millis() as i64;
    let decision = match decision {
        Err(e) => {
            let mut tx = db.begin().await?;
            let ok = insert_run(
                &mut tx,
                ev,
                wf,
                RunRecord {
                    id: &run_id,
                    status: "failed",
                    input: &input,
                    decision: &Value::Null,
                    actions: &json!([]),
                    error: Some(error_json(&e)),
                    duration_ms: ms(started),
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(ok);
        }
        Ok(d) => d,
    };
    let run = RunRef {
        tenant_id: &ev.tenant_id,
        workflow_id: &wf.id,
        workflow_name: &wf.name,
        version: wf.version,
        run_id: &run_id,
        depth: ev.chain_depth,
    };
    let mut tx = db.begin().await?;
    // Claim first: a process that finds the run already recorded does nothing.
    let status = if decision.fired {
        "succeeded"
    } else {
        "skipped"
    };
    if !insert_run(
        &mut tx,
        ev,
        wf,
        RunRecord {
            id: &run_id,
            status,
            input: &input,
            decision: &decision.raw,
            actions: &json!([]),
            error: None,
            duration_ms: 0,
        },
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut done = Vec::new();
    let mut failure = None;
    for a in &decision.actions {
        match actions::execute(&mut tx, &run, a, trader_id.as_deref(), &event).await {
            Ok(v) => done.push(v),
            Err(e) => {
                failure = Some(format!("{e}"));
                break;
            }
        }
    }
    if let Some(err) = failure {
        // All or nothing: the actions already taken are rolled back with the failed one.
        tx.rollback().await?;
        let mut tx = db.begin().await?;
        let ok = insert_run(
            &mut tx,
            ev,
            wf,
            RunRecord {
                id: &run_id,
                status: "failed",
                input: &input,
                decision: &decision.raw,
                actions: &Value::Array(done),
                error: Some(err),
                duration_ms: ms(started),
            },
        )
        .await?;
        tx.commit().await?;
        return Ok(ok);
    }
    sqlx::query(
        "UPDATE workflow_runs SET actions = $3, duration_ms = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&ev.tenant_id)
    .bind(&run_id)
    .bind(Value::Array(done).to_string())
    .bind(ms(started))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
