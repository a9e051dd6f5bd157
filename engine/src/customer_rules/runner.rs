//! Runs customer rules for the outbox events that mean "signed up" or "changed", from the
//! workflow worker. The decision row's unique key (tenant, event, customer) makes several
//! engine processes decide once per event.

use std::time::Instant;

use serde_json::{Value, json};

use super::VARS;
use crate::audit::{self, AuditActor};
use crate::auth::session::{self, Subject};
use crate::customers::Decision;
use crate::db::{Db, Tx};
use crate::http::error::ApiResult;
use crate::scripting::{ScriptError, cache, convert, sandbox};
use crate::util::{new_id, now, parse_json};
use crate::workflows::{EventRow, MAX_CHAIN_DEPTH};

#[derive(sqlx::FromRow)]
struct Rule {
    id: String,
    name: String,
    version: i64,
    source: String,
    action: String,
    params: String,
}

fn trigger_of(event: &str) -> Option<&'static str> {
    match event {
        "customer.created" => Some("signup"),
        "customer.updated" | "trader.updated" => Some("update"),
        _ => None,
    }
}

/// Decides on the customers an event is about; returns the number of decisions recorded.
pub async fn on_event(db: &Db, ev: &EventRow) -> ApiResult<usize> {
    let Some(trigger) = trigger_of(&ev.name) else {
        return Ok(0);
    };
    if ev.chain_depth >= MAX_CHAIN_DEPTH {
        return Ok(0);
    }
    let rules: Vec<Rule> = sqlx::query_as(
        "SELECT id, name, version, source, action, params FROM customer_rules
         WHERE tenant_id = $1 AND deleted_at IS NULL AND is_active = 1 AND trigger_on IN ($2, 'any')
           AND created_at <= $3
         ORDER BY priority, id",
    )
    .bind(&ev.tenant_id)
    .bind(trigger)
    .bind(&ev.created_at)
    .fetch_all(db.pool())
    .await?;
    if rules.is_empty() {
        return Ok(0);
    }
    let customers: Vec<(String,)> = if ev.resource_type == "customer" {
        vec![(ev.resource_id.clone(),)]
    } else {
        sqlx::query_as("SELECT id FROM customers WHERE tenant_id = $1 AND trader_id = $2")
            .bind(&ev.tenant_id)
            .bind(&ev.resource_id)
            .fetch_all(db.pool())
            .await?
    };
    let mut n = 0;
    for (customer_id,) in customers {
        if decide_one(db, ev, &customer_id, &rules).await? {
            n += 1;
        }
    }
    Ok(n)
}

async fn decide_one(db: &Db, ev: &EventRow, customer_id: &str, rules: &[Rule]) -> ApiResult<bool> {
    let tenant = ev.tenant_id.as_str();
    let done: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM customer_rule_decisions WHERE tenant_id = $1 AND event_id = $2 AND customer_id = $3",
    )
    .bind(tenant)
    .bind(&ev.id)
    .bind(customer_id)
    .fetch_optional(db.pool())
    .await?;
    if done.is_some() {
        return Ok(false);
    }
    let (customer, trader) = {
        let mut conn = db.pool().acquire().await?;
        let Ok(c) = crate::customers::load(&mut *conn, tenant, customer_id).await else {
            return Ok(false);
        };
        let trader = match crate::traders::load(&mut *conn, tenant, &c.trader_id).await {
            Ok(t) => {
                serde_json::to_value(crate::traders::TraderView::from(t)).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        };
        let view = crate::customers::CustomerView::from(c);
        (serde_json::to_value(view).unwrap_or(Value::Null), trader)
    };
    let event = crate::workflows::event_json(ev);
    let mut compiled = Vec::new();
    for r in rules {
        compiled.push(cache::get_or_compile(
            &cache::key("customer_rule", tenant, &r.id, r.version),
            &r.source,
            VARS,
        ));
    }
    let ctx = (customer.clone(), trader, event);
    let started = Instant::now();
    // First match wins; a rule failing for this customer is skipped and its error kept.
    let (matched, errors) = sandbox::run_blocking(move || {
        let mut errors: Vec<(usize, ScriptError)> = Vec::new();
        for (i, ast) in compiled.iter().enumerate() {
            let ast = match ast {
                Ok(a) => a,
                Err(e) => {
                    errors.push((i, e.clone()));
                    continue;
                }
            };
            let vars = vec![
                ("customer", convert::to_dynamic(&ctx.0)),
                ("trader", convert::to_dynamic(&ctx.1)),
                ("event", convert::to_dynamic(&ctx.2)),
            ];
            match sandbox::eval(ast, vars).and_then(|d| convert::to_bool(&d)) {
                Ok(true) => return (Some(i), errors),
                Ok(false) => {}
                Err(e) => errors.push((i, e)),
            }
        }
        (None, errors)
    })
    .await
    .unwrap_or_else(|e| (None, vec![(0, e)]));
    let error = (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(|(i, e)| format!("rule {}: {e}", rules[*i].id))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let rule = matched.map(|i| &rules[i]);
    let mut tx = db.begin().await?;
    let decision = rule.map(|r| r.action.as_str()).unwrap_or("none");
    let inserted = sqlx::query(
        "INSERT INTO customer_rule_decisions (tenant_id, id, customer_id, event_id, rule_id, rule_version, decision, outcome, error, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(new_id())
    .bind(customer_id)
    .bind(&ev.id)
    .bind(rule.map(|r| r.id.as_str()))
    .bind(rule.map(|r| r.version))
    .bind(decision)
    .bind(&error)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let outcome = match rule {
        Some(r) => apply(&mut tx, ev, customer_id, &customer, r).await?,
        None => "no_match",
    };
    sqlx::query(
        "UPDATE customer_rule_decisions SET outcome = $4 WHERE tenant_id = $1 AND event_id = $2 AND customer_id = $3",
    )
    .bind(tenant)
    .bind(&ev.id)
    .bind(customer_id)
    .bind(outcome)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(
        customer_id,
        decision,
        outcome,
        ms = started.elapsed().as_millis() as u64,
        "customer rules"
    );
    Ok(true)
}

async fn emit(
    tx: &mut Tx,
    ev: &EventRow,
    name: &str,
    rt: &str,
    rid: &str,
    payload: &Value,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO events (tenant_id, id, name, resource_type, resource_id, payload, created_at, chain_depth)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&ev.tenant_id)
    .bind(new_id())
    .bind(name)
    .bind(rt)
    .bind(rid)
    .bind(payload.to_string())
    .bind(now())
    .bind(ev.chain_depth + 1)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Carries out the rule's decision; returns `applied` or `unchanged` (e.g. approving an
/// approved customer).
async fn apply(
    tx: &mut Tx,
    ev: &EventRow,
    customer_id: &str,
    before: &Value,
    r: &Rule,
) -> ApiResult<&'static str> {
    let tenant = ev.tenant_id.as_str();
    let params = parse_json(&r.params);
    let p = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
    let ts = now();
    let (changed, event) = match r.action.as_str() {
        "approve" => {
            let n = sqlx::query(
                "UPDATE customers SET status = 'approved', rejection_reason = NULL, updated_at = $3
                 WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'rejected')",
            )
            .bind(tenant)
            .bind(customer_id)
            .bind(&ts)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            (n > 0, "customer.approved")
        }
        "reject" => {
            let reason = p("reason").unwrap_or_else(|| format!("Rejected by rule {}", r.name));
            let n = sqlx::query(
                "UPDATE customers SET status = 'rejected', rejection_reason = $3, updated_at = $4
                 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
            )
            .bind(tenant)
            .bind(customer_id)
            .bind(reason)
            .bind(&ts)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            (n > 0, "customer.rejected")
        }
        "assign" => {
            let user = p("userId");
            let same = before.get("assignedToId").and_then(Value::as_str) == user.as_deref();
            if !same {
                sqlx::query("UPDATE customers SET assigned_to_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(customer_id)
                    .bind(user)
                    .bind(&ts)
                    .execute(&mut **tx)
                    .await?;
            }
            (!same, "customer.assigned")
        }
        _ => {
            let trader_id = before.get("traderId").and_then(Value::as_str).unwrap_or("");
            let n = sqlx::query(
                "INSERT INTO trader_tags (tenant_id, trader_id, tag_id, created_by, created_at)
                 SELECT $1, $2, id, $4, $5 FROM tags WHERE tenant_id = $1 AND id = $3 AND archived_at IS NULL
                 ON CONFLICT (tenant_id, trader_id, tag_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(trader_id)
            .bind(p("tagId"))
            .bind(format!("customer_rule:{}", r.id))
            .bind(&ts)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            (n > 0, "trader.tag_applied")
        }
    };
    sqlx::query(
        "UPDATE customers SET rule_decision = $3, rule_decision_rule_id = $4, rule_decided_at = $5
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(customer_id)
    .bind(&r.action)
    .bind(&r.id)
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    let row = crate::customers::load(&mut **tx, tenant, customer_id).await?;
    // The customer hears of an approval or rejection as from a manual decision.
    let told = match (changed, r.action.as_str()) {
        (true, "approve") => Some(Decision::Approved),
        (true, "reject") => Some(Decision::Rejected {
            reason: params.get("reason").and_then(Value::as_str),
        }),
        _ => None,
    };
    if let Some(decision) = told {
        crate::customers::tell_decision(tx, tenant, &row, decision).await?;
        if let Decision::Rejected { .. } = decision {
            // As a manual rejection does, this ends the customer's portal sessions.
            session::revoke_all(tx, tenant, Subject::Customer, customer_id, None).await?;
        }
    }
    let after =
        serde_json::to_value(crate::customers::CustomerView::from(row)).unwrap_or(Value::Null);
    let rule_ref = json!({"id": r.id, "name": r.name, "version": r.version, "eventId": ev.id});
    if changed {
        let payload = if event == "trader.tag_applied" {
            json!({"traderId": after["traderId"], "tagId": p("tagId"), "customerRule": rule_ref})
        } else {
            after.clone()
        };
        let (rt, rid) = if event == "trader.tag_applied" {
            (
                "trader",
                after["traderId"].as_str().unwrap_or("").to_string(),
            )
        } else {
            ("customer", customer_id.to_string())
        };
        emit(tx, ev, event, rt, &rid, &payload).await?;
    }
    let label = format!(
        "customer rule {} ({}) v{} event {}",
        r.name, r.id, r.version, ev.id
    );
    let who = AuditActor {
        tenant_id: tenant,
        actor_type: "customer_rule",
        actor_id: Some(&r.id),
        label: Some(&label),
        impersonator_id: None,
        ip: None,
    };
    let mut after_audit = after.clone();
    if let Value::Object(m) = &mut after_audit {
        m.insert("customerRule".into(), rule_ref);
    }
    audit::record(
        tx,
        who,
        &format!("customer.rule_{}", r.action),
        "customer",
        Some(customer_id),
        Some(before),
        Some(&after_audit),
    )
    .await?;
    Ok(if changed { "applied" } else { "unchanged" })
}
