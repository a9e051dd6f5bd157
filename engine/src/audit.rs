//! The audit log: one entry per mutating request, written in the request's own transaction,
//! and the `GET /v1/audit*` operations that read it.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

use crate::app::AppState;
use crate::auth::Actor;
use crate::auth::roles::AUDITORS;
use crate::db::{Param, SqlBuilder, Tx};
use crate::http::api::{Api, Op};
use crate::http::csv_export::{CsvRow, csv_response};
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::{Page, PageRequest};
use crate::http::request_id;
use crate::util::{new_id, now, parse_json};

/// Who did it, for entries written outside an authenticated request (register, login).
pub struct AuditActor<'a> {
    pub tenant_id: &'a str,
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub label: Option<&'a str>,
    pub impersonator_id: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl<'a> From<&'a Actor> for AuditActor<'a> {
    fn from(a: &'a Actor) -> Self {
        AuditActor {
            tenant_id: &a.tenant_id,
            actor_type: a.actor_type(),
            actor_id: a.actor_id(),
            label: Some(&a.label),
            impersonator_id: a.impersonator_id.as_deref(),
            ip: a.ip.as_deref(),
        }
    }
}

pub async fn record<'a>(
    tx: &mut Tx,
    actor: impl Into<AuditActor<'a>>,
    action: &str,
    resource_type: &str,
    resource_id: Option<&str>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), sqlx::Error> {
    let a = actor.into();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor_type, actor_id, actor_label, impersonator_id, action,
           resource_type, resource_id, before_json, after_json, ip, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(a.tenant_id)
    .bind(new_id())
    .bind(a.actor_type)
    .bind(a.actor_id)
    .bind(a.label)
    .bind(a.impersonator_id)
    .bind(action)
    .bind(resource_type)
    .bind(resource_id)
    .bind(before.map(Value::to_string))
    .bind(after.map(Value::to_string))
    .bind(a.ip)
    .bind(request_id::current())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A state change as both the outbox and the audit log record it.
pub struct Change<'a> {
    /// Outbox event name (`symbol.updated`).
    pub event: &'a str,
    /// Audit action (`symbol.update`).
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// Emits the change's event (its payload: the state after, else before) and writes its audit
/// entry, both in the caller's transaction.
pub async fn record_change(tx: &mut Tx, actor: &Actor, c: Change<'_>) -> Result<(), sqlx::Error> {
    let payload = c.after.or(c.before).cloned().unwrap_or(Value::Null);
    crate::events::emit(
        tx,
        &actor.tenant_id,
        c.event,
        c.resource_type,
        c.resource_id,
        &payload,
    )
    .await?;
    record(
        tx,
        actor,
        c.action,
        c.resource_type,
        Some(c.resource_id),
        c.before,
        c.after,
    )
    .await
}

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/audit", "getAudit", "admin")
            .summary("List audit entries (filters: actorId, action, resourceType, resourceId, from, to).")
            .staff(AUDITORS),
        list,
    );
    api.add(
        Op::get("/v1/audit/facets", "getAuditFacets", "admin")
            .summary("Distinct actions, resource types and actors with counts, for filter pickers.")
            .staff(AUDITORS),
        facets,
    );
    api.add(
        Op::get("/v1/audit/export.csv", "getAuditExportCsv", "admin")
            .summary("Export filtered audit entries as CSV (max 10,000 rows, streamed).")
            .staff(AUDITORS)
            .csv(),
        export_csv,
    );
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    actor_type: String,
    actor_id: Option<String>,
    actor_label: Option<String>,
    impersonator_id: Option<String>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    before_json: Option<String>,
    after_json: Option<String>,
    ip: Option<String>,
    request_id: Option<String>,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    id: String,
    actor_type: String,
    actor_id: Option<String>,
    actor_label: Option<String>,
    impersonator_id: Option<String>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    ip: Option<String>,
    request_id: Option<String>,
    created_at: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            actor_label: r.actor_label,
            impersonator_id: r.impersonator_id,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            before: r.before_json.as_deref().map(parse_json),
            after: r.after_json.as_deref().map(parse_json),
            ip: r.ip,
            request_id: r.request_id,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "id, actor_type, actor_id, actor_label, impersonator_id, action, resource_type, resource_id, before_json, after_json, ip, request_id, created_at";

fn filtered(tenant_id: &str, q: &HashMap<String, String>) -> SqlBuilder {
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = "
    ));
    b.text(tenant_id);
    for (param, column) in [
        ("actorId", "actor_id"),
        ("action", "action"),
        ("resourceType", "resource_type"),
        ("resourceId", "resource_id"),
        ("requestId", "request_id"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(v) = q.get("from").filter(|v| !v.is_empty()) {
        b.push(" AND created_at >= ").text(v.clone());
    }
    if let Some(v) = q.get("to").filter(|v| !v.is_empty()) {
        b.push(" AND created_at < ").text(v.clone());
    }
    b
}

fn check_times(q: &HashMap<String, String>) -> ApiResult<()> {
    for f in ["from", "to"] {
        if let Some(v) = q.get(f).filter(|v| !v.is_empty())
            && crate::util::parse_time(v).is_none()
        {
            return Err(ApiError::field(f, "must be an RFC 3339 time"));
        }
    }
    Ok(())
}

/// The newest entries about any of the given `(resource_type, resource_id)` pairs, for detail
/// views that show a record's recent history.
pub async fn recent_for<'e, E>(
    exec: E,
    tenant_id: &str,
    resources: &[(&str, &str)],
    limit: i64,
) -> ApiResult<Vec<AuditEntry>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if resources.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = "
    ));
    b.text(tenant_id);
    for (i, (kind, id)) in resources.iter().enumerate() {
        b.push(if i == 0 { " AND ((" } else { " OR (" });
        b.push("resource_type = ").text(*kind);
        b.push(" AND resource_id = ").text(*id);
        b.push(")");
    }
    b.push(") ORDER BY id DESC").limit(limit);
    let rows: Vec<AuditRow> = b.query_as().fetch_all(exec).await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Page<AuditEntry>>> {
    check_times(&q)?;
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = filtered(&actor.tenant_id, &q);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<AuditRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |r| &r.id).map(AuditEntry::from),
    ))
}

#[derive(Serialize)]
struct Facet {
    value: String,
    count: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Facets {
    actions: Vec<Facet>,
    resource_types: Vec<Facet>,
    actors: Vec<Facet>,
}

async fn facets(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<Facets>> {
    let mut out = Vec::new();
    for column in [
        "action",
        "resource_type",
        "COALESCE(actor_label, actor_type)",
    ] {
        let sql = format!(
            "SELECT {column} AS v, COUNT(*) AS n FROM audit_log WHERE tenant_id = $1 GROUP BY {column} ORDER BY n DESC, v LIMIT 200"
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
            .bind(&actor.tenant_id)
            .fetch_all(st.db.pool())
            .await?;
        out.push(
            rows.into_iter()
                .map(|(value, count)| Facet { value, count })
                .collect(),
        );
    }
    let actors = out.pop().unwrap_or_default();
    let resource_types = out.pop().unwrap_or_default();
    let actions = out.pop().unwrap_or_default();
    Ok(axum::Json(Facets {
        actions,
        resource_types,
        actors,
    }))
}

async fn export_csv(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    check_times(&q)?;
    let tenant = actor.tenant_id.clone();
    let header = vec![
        "id",
        "created_at",
        "actor_type",
        "actor_id",
        "actor_label",
        "impersonator_id",
        "action",
        "resource_type",
        "resource_id",
        "ip",
        "request_id",
        "before",
        "after",
    ];
    Ok(csv_response("audit.csv", header, move |after, limit| {
        let (db, tenant, q) = (st.db.clone(), tenant.clone(), q.clone());
        async move {
            let mut b = filtered(&tenant, &q);
            if let Some(after) = after {
                b.push(" AND id < ").bind(Param::Text(after));
            }
            b.push(" ORDER BY id DESC").limit(limit);
            let rows: Vec<AuditRow> = b.query_as().fetch_all(db.pool()).await?;
            Ok(rows
                .into_iter()
                .map(|r| -> CsvRow {
                    let id = r.id.clone();
                    (
                        id,
                        vec![
                            r.id,
                            r.created_at,
                            r.actor_type,
                            r.actor_id.unwrap_or_default(),
                            r.actor_label.unwrap_or_default(),
                            r.impersonator_id.unwrap_or_default(),
                            r.action,
                            r.resource_type,
                            r.resource_id.unwrap_or_default(),
                            r.ip.unwrap_or_default(),
                            r.request_id.unwrap_or_default(),
                            r.before_json.unwrap_or_default(),
                            r.after_json.unwrap_or_default(),
                        ],
                    )
                })
                .collect())
        }
    }))
}
