//! Workflow actions: parsed and checked when a workflow is saved (and again when a script
//! returns them), carried out by the engine inside the tenant, each with an audit entry naming
//! the workflow, its version and the run.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::{self, AuditActor};
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::util::{new_id, now, parse_json};

/// Action types the engine knows.
pub const TYPES: &[&str] = &[
    "add_tag",
    "remove_tag",
    "add_segment",
    "remove_segment",
    "assign",
    "set_trader_field",
    "emit_event",
    "send_email",
    "call_webhook",
    "create_ticket",
];

/// Trader fields a workflow may set (besides `metadata.<key>` and `assign`).
const SETTABLE: &[&str] = &["source"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Action {
    AddTag {
        tag_id: String,
    },
    RemoveTag {
        tag_id: String,
    },
    AddSegment {
        segment: String,
    },
    RemoveSegment {
        segment: String,
    },
    Assign {
        user_id: String,
    },
    SetTraderField {
        field: String,
        value: Value,
    },
    EmitEvent {
        name: String,
        #[serde(default)]
        payload: Option<Value>,
    },
    SendEmail {
        subject: String,
        body: String,
        #[serde(default)]
        template: Option<String>,
    },
    CallWebhook {
        subscription_id: String,
    },
    CreateTicket {
        subject: String,
        body: String,
        #[serde(default = "default_priority")]
        priority: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_to_id: Option<String>,
    },
}

fn default_priority() -> String {
    "normal".into()
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddTag { .. } => "add_tag",
            Action::RemoveTag { .. } => "remove_tag",
            Action::AddSegment { .. } => "add_segment",
            Action::RemoveSegment { .. } => "remove_segment",
            Action::Assign { .. } => "assign",
            Action::SetTraderField { .. } => "set_trader_field",
            Action::EmitEvent { .. } => "emit_event",
            Action::SendEmail { .. } => "send_email",
            Action::CallWebhook { .. } => "call_webhook",
            Action::CreateTicket { .. } => "create_ticket",
        }
    }

    fn needs_trader(&self) -> bool {
        !matches!(self, Action::EmitEvent { .. } | Action::CallWebhook { .. })
    }
}

fn is_event_name(s: &str) -> bool {
    s.len() <= 100
        && s.split('.').count() >= 2
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Parses one action's JSON; errors name `field` (`actions[2]`, `actions[2].tagId`).
pub fn parse(v: &Value, field: &str) -> Result<Action, FieldError> {
    let kind = v.get("type").and_then(Value::as_str);
    match kind {
        None => return Err(FieldError::new(format!("{field}.type"), "is required")),
        Some(k) if !TYPES.contains(&k) => {
            return Err(FieldError::new(
                format!("{field}.type"),
                format!("must be one of: {}", TYPES.join(", ")),
            ));
        }
        _ => {}
    }
    let a: Action = serde_json::from_value(v.clone())
        .map_err(|e| FieldError::new(field, format!("invalid action: {e}")))?;
    match &a {
        Action::SetTraderField { field: f, value } => {
            let ok = SETTABLE.contains(&f.as_str())
                || f.strip_prefix("metadata.")
                    .is_some_and(|k| !k.is_empty() && k.len() <= 64);
            if !ok {
                return Err(FieldError::new(
                    format!("{field}.field"),
                    "must be source or metadata.<key>",
                ));
            }
            if f == "source" && !(value.is_string() || value.is_null()) {
                return Err(FieldError::new(
                    format!("{field}.value"),
                    "must be a string or null",
                ));
            }
        }
        Action::AddSegment { segment } | Action::RemoveSegment { segment } => {
            let n = segment.trim().chars().count();
            if n == 0 || n > 64 {
                return Err(FieldError::new(
                    format!("{field}.segment"),
                    "must be 1-64 characters",
                ));
            }
        }
        Action::EmitEvent { name, payload } => {
            if !name.starts_with("custom.") || !is_event_name(name) {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    "must be custom.<name> (lower-case letters, digits, '_', '.')",
                ));
            }
            if payload.as_ref().is_some_and(|p| !p.is_object()) {
                return Err(FieldError::new(
                    format!("{field}.payload"),
                    "must be an object",
                ));
            }
        }
        Action::SendEmail { subject, body, .. } => {
            if subject.trim().is_empty() || subject.len() > 200 {
                return Err(FieldError::new(
                    format!("{field}.subject"),
                    "must be 1-200 characters",
                ));
            }
            if body.trim().is_empty() || body.len() > 20_000 {
                return Err(FieldError::new(
                    format!("{field}.body"),
                    "must be 1-20000 characters",
                ));
            }
        }
        Action::CreateTicket {
            subject,
            body,
            priority,
            ..
        } => {
            let errors =
                crate::support::domain::check_fields(Some(subject), Some(body), Some(priority));
            if let Some(e) = errors.into_iter().next() {
                return Err(FieldError::new(format!("{field}.{}", e.field), e.message));
            }
        }
        _ => {}
    }
    Ok(a)
}

/// Checks that the ids an action names exist in the tenant (on save: a 400 naming the field).
pub async fn check_refs(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    a: &Action,
    field: &str,
) -> ApiResult<Option<FieldError>> {
    let (sql, id, name) = match a {
        Action::AddTag { tag_id } | Action::RemoveTag { tag_id } => (
            "SELECT id FROM tags WHERE tenant_id = $1 AND id = $2",
            tag_id,
            "tagId",
        ),
        Action::Assign { user_id } => (
            "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            user_id,
            "userId",
        ),
        Action::CallWebhook { subscription_id } => (
            "SELECT id FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            subscription_id,
            "subscriptionId",
        ),
        Action::CreateTicket {
            assigned_to_id: Some(user_id),
            ..
        } => (
            "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            user_id,
            "assignedToId",
        ),
        _ => return Ok(None),
    };
    let found: Option<(String,)> = sqlx::query_as(sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found
        .is_none()
        .then(|| FieldError::new(format!("{field}.{name}"), "does not exist in this tenant")))
}

/// Who carried an action out: the workflow, at a version, in a run.
pub struct RunRef<'a> {
    pub tenant_id: &'a str,
    pub workflow_id: &'a str,
    pub workflow_name: &'a str,
    pub version: i64,
    pub run_id: &'a str,
    /// The chain depth of the event that triggered the run.
    pub depth: i64,
}

impl RunRef<'_> {
    fn label(&self) -> String {
        format!(
            "workflow {} ({}) v{} run {}",
            self.workflow_name, self.workflow_id, self.version, self.run_id
        )
    }
}

/// Records an event caused by a workflow run, one hop further down the chain.
async fn emit(
    tx: &mut Tx,
    r: &RunRef<'_>,
    name: &str,
    resource_type: &str,
    resource_id: &str,
    payload: &Value,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO events (tenant_id, id, name, resource_type, resource_id, payload, created_at, chain_depth)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.tenant_id)
    .bind(new_id())
    .bind(name)
    .bind(resource_type)
    .bind(resource_id)
    .bind(payload.to_string())
    .bind(now())
    .bind(r.depth + 1)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn audit(
    tx: &mut Tx,
    r: &RunRef<'_>,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ApiResult<()> {
    let label = r.label();
    let who = AuditActor {
        tenant_id: r.tenant_id,
        actor_type: "workflow",
        actor_id: Some(r.workflow_id),
        label: Some(&label),
        impersonator_id: None,
        ip: None,
    };
    let mut after = after.cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut after {
        m.insert(
            "workflow".into(),
            json!({"id": r.workflow_id, "version": r.version, "runId": r.run_id}),
        );
    }
    audit::record(
        tx,
        who,
        action,
        resource_type,
        Some(resource_id),
        before,
        Some(&after),
    )
    .await
    .map_err(Into::into)
}

fn failed(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "workflow_action_failed",
        detail: msg.into(),
    }
}

fn fill(template: &str, trader: &Value) -> String {
    let mut out = template.to_string();
    for key in ["firstName", "lastName", "email", "country"] {
        let v = trader.get(key).and_then(Value::as_str).unwrap_or("");
        out = out.replace(&format!("{{{{{key}}}}}"), v);
    }
    out
}

/// A `create_ticket` subject filled in for the trader. Filling in a name can push it past the
/// ticket's limit; the end is cut.
fn ticket_subject(template: &str, trader: &Value) -> String {
    fill(template, trader)
        .chars()
        .take(crate::support::model::SUBJECT_MAX)
        .collect()
}

/// An action as a dry run shows it: its templates (`send_email`, `create_ticket`) filled in for
/// the sample's trader, so the admin reads the e-mail or ticket it would produce.
pub fn preview(a: &Action, trader: &Value) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    match a {
        Action::SendEmail { subject, body, .. } => {
            v["subject"] = fill(subject, trader).into();
            v["body"] = fill(body, trader).into();
        }
        Action::CreateTicket { subject, body, .. } => {
            v["subject"] = ticket_subject(subject, trader).into();
            v["body"] = fill(body, trader).into();
        }
        _ => {}
    }
    v
}

/// Carries out one action in the run's transaction; returns what was done.
pub async fn execute(
    tx: &mut Tx,
    r: &RunRef<'_>,
    a: &Action,
    trader_id: Option<&str>,
    event: &Value,
) -> ApiResult<Value> {
    let t = match (a.needs_trader(), trader_id) {
        (true, None) => return Err(failed(format!("{}: the event names no trader", a.kind()))),
        (_, t) => t.unwrap_or(""),
    };
    if a.needs_trader() {
        crate::traders::load(&mut **tx, r.tenant_id, t)
            .await
            .map_err(|_| failed(format!("{}: trader {t} not found", a.kind())))?;
    }
    let tenant = r.tenant_id;
    match a {
        Action::AddTag { tag_id } => {
            let tag: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT name, archived_at FROM tags WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(tag_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some((name, None)) = tag else {
                return Err(failed(format!(
                    "add_tag: tag {tag_id} is missing or archived"
                )));
            };
            let n = sqlx::query(
                "INSERT INTO trader_tags (tenant_id, trader_id, tag_id, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, trader_id, tag_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(t)
            .bind(tag_id)
            .bind(format!("workflow:{}", r.workflow_id))
            .bind(now())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            let p = json!({"traderId": t, "tagId": tag_id, "tagName": name});
            if n > 0 {
                emit(tx, r, "trader.tag_applied", "trader", t, &p).await?;
                audit(tx, r, "trader.tag_applied", "trader", t, None, Some(&p)).await?;
            }
            Ok(json!({"type": "add_tag", "traderId": t, "tagId": tag_id, "changed": n > 0}))
        }
        Action::RemoveTag { tag_id } => {
            let n = sqlx::query(
                "DELETE FROM trader_tags WHERE tenant_id = $1 AND trader_id = $2 AND tag_id = $3",
            )
            .bind(tenant)
            .bind(t)
            .bind(tag_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            let p = json!({"traderId": t, "tagId": tag_id});
            if n > 0 {
                emit(tx, r, "trader.tag_removed", "trader", t, &p).await?;
                audit(tx, r, "trader.tag_removed", "trader", t, Some(&p), None).await?;
            }
            Ok(json!({"type": "remove_tag", "traderId": t, "tagId": tag_id, "changed": n > 0}))
        }
        Action::AddSegment { segment } | Action::RemoveSegment { segment } => {
            let (cur,): (String,) =
                sqlx::query_as("SELECT segments FROM traders WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(t)
                    .fetch_one(&mut **tx)
                    .await?;
            let mut list = crate::util::parse_string_list(&cur);
            let seg = segment.trim().to_string();
            let add = matches!(a, Action::AddSegment { .. });
            let had = list.contains(&seg);
            if add && !had {
                if list.len() >= 50 {
                    return Err(failed("add_segment: a trader can have at most 50 segments"));
                }
                list.push(seg.clone());
            } else if !add {
                list.retain(|s| s != &seg);
            }
            let changed = add != had;
            if changed {
                let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
                set_trader(tx, r, t, "segments", Some(&json)).await?;
            }
            Ok(json!({"type": a.kind(), "traderId": t, "segment": seg, "changed": changed}))
        }
        Action::Assign { user_id } => {
            let user: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(tenant)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
            if user.is_none() {
                return Err(failed(format!("assign: user {user_id} not found")));
            }
            set_trader(tx, r, t, "assigned_to_id", Some(user_id.as_str())).await?;
            Ok(json!({"type": "assign", "traderId": t, "userId": user_id}))
        }
        Action::SetTraderField { field, value } => {
            if field == "source" {
                set_trader(tx, r, t, "source", value.as_str()).await?;
            } else if let Some(key) = field.strip_prefix("metadata.") {
                let (meta,): (String,) =
                    sqlx::query_as("SELECT metadata FROM traders WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(t)
                        .fetch_one(&mut **tx)
                        .await?;
                let mut m = match parse_json(&meta) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                if value.is_null() {
                    m.remove(key);
                } else {
                    m.insert(key.to_string(), value.clone());
                }
                set_trader(tx, r, t, "metadata", Some(&Value::Object(m).to_string())).await?;
            }
            Ok(json!({"type": "set_trader_field", "traderId": t, "field": field, "value": value}))
        }
        Action::EmitEvent { name, payload } => {
            let mut p = payload.clone().unwrap_or_else(|| json!({}));
            if let Value::Object(m) = &mut p {
                m.insert(
                    "workflow".into(),
                    json!({"id": r.workflow_id, "version": r.version, "runId": r.run_id}),
                );
                if let Some(t) = trader_id {
                    m.entry("traderId").or_insert_with(|| json!(t));
                }
            }
            emit(tx, r, name, "workflow_run", r.run_id, &p).await?;
            audit(
                tx,
                r,
                "workflow.emit_event",
                "workflow_run",
                r.run_id,
                None,
                Some(&json!({"name": name})),
            )
            .await?;
            Ok(json!({"type": "emit_event", "name": name}))
        }
        Action::SendEmail {
            subject,
            body,
            template,
        } => {
            let trader =
                crate::traders::TraderView::from(crate::traders::load(&mut **tx, tenant, t).await?);
            let tj = serde_json::to_value(&trader).unwrap_or(Value::Null);
            let to = tj
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let (subject, body) = (fill(subject, &tj), fill(body, &tj));
            crate::mail::enqueue(
                tx,
                crate::mail::Mail {
                    tenant_id: tenant,
                    to: &to,
                    subject: &subject,
                    body: &body,
                    template: template.as_deref().unwrap_or("workflow"),
                },
            )
            .await?;
            let p = json!({"to": to, "subject": subject});
            audit(tx, r, "workflow.send_email", "trader", t, None, Some(&p)).await?;
            Ok(json!({"type": "send_email", "traderId": t, "to": to, "subject": subject}))
        }
        Action::CallWebhook { subscription_id } => {
            let sub: Option<(i64,)> = sqlx::query_as(
                "SELECT is_active FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(tenant)
            .bind(subscription_id)
            .fetch_optional(&mut **tx)
            .await?;
            if !matches!(sub, Some((1,))) {
                return Err(failed(format!(
                    "call_webhook: subscription {subscription_id} is missing or inactive"
                )));
            }
            let ts = now();
            let data = json!({"workflowId": r.workflow_id, "runId": r.run_id, "event": event});
            let body =
                crate::webhooks::store::envelope(r.run_id, "workflow.webhook", &ts, tenant, data);
            crate::webhooks::store::insert_delivery(
                &mut **tx,
                crate::webhooks::store::NewDelivery {
                    tenant_id: tenant,
                    id: &new_id(),
                    subscription_id,
                    event_id: r.run_id,
                    event_type: "workflow.webhook",
                    body: &body,
                    max_attempts: crate::webhooks::worker::MAX_ATTEMPTS,
                    now: &ts,
                    lease: None,
                },
            )
            .await?;
            audit(
                tx,
                r,
                "workflow.call_webhook",
                "webhook_subscription",
                subscription_id,
                None,
                None,
            )
            .await?;
            Ok(json!({"type": "call_webhook", "subscriptionId": subscription_id}))
        }
        Action::CreateTicket {
            subject,
            body,
            priority,
            assigned_to_id,
        } => {
            let trader =
                crate::traders::TraderView::from(crate::traders::load(&mut **tx, tenant, t).await?);
            let tj = serde_json::to_value(&trader).unwrap_or(Value::Null);
            let subject = ticket_subject(subject, &tj);
            let body = fill(body, &tj);
            let label = r.label();
            let made = crate::support::domain::create(
                tx,
                tenant,
                crate::support::domain::NewTicket {
                    trader_id: t,
                    subject: &subject,
                    body: &body,
                    priority,
                    assigned_to_id: assigned_to_id.as_deref(),
                    source: "workflow",
                    external_id: None,
                    created_by: crate::support::model::Author {
                        kind: "workflow".into(),
                        id: Some(r.workflow_id.to_string()),
                        label: Some(label),
                    },
                },
            )
            .await;
            let ticket = match made {
                Ok(ticket) => ticket,
                // A trader or assignee that is gone is the run's failure, not the engine's.
                Err(e) if e.status().is_client_error() => {
                    return Err(failed(format!("create_ticket: {}", e.detail())));
                }
                Err(e) => return Err(e),
            };
            let after = serde_json::to_value(&ticket).unwrap_or(Value::Null);
            emit(tx, r, "ticket.created", "ticket", &ticket.id, &after).await?;
            audit(
                tx,
                r,
                "ticket.create",
                "ticket",
                &ticket.id,
                None,
                Some(&after),
            )
            .await?;
            Ok(json!({
                "type": "create_ticket", "traderId": t, "ticketId": ticket.id,
                "subject": ticket.subject, "priority": ticket.priority,
            }))
        }
    }
}

async fn set_trader(
    tx: &mut Tx,
    r: &RunRef<'_>,
    trader_id: &str,
    column: &'static str,
    value: Option<&str>,
) -> ApiResult<()> {
    let before = crate::traders::TraderView::from(
        crate::traders::load(&mut **tx, r.tenant_id, trader_id).await?,
    );
    sqlx::query(&format!(
        "UPDATE traders SET {column} = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(r.tenant_id)
    .bind(trader_id)
    .bind(value)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    let after = crate::traders::TraderView::from(
        crate::traders::load(&mut **tx, r.tenant_id, trader_id).await?,
    );
    let before = serde_json::to_value(&before).unwrap_or(Value::Null);
    let after = serde_json::to_value(&after).unwrap_or(Value::Null);
    emit(tx, r, "trader.updated", "trader", trader_id, &after).await?;
    audit(
        tx,
        r,
        "trader.update",
        "trader",
        trader_id,
        Some(&before),
        Some(&after),
    )
    .await
}
