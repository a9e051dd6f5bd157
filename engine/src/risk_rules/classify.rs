//! The risk context of an account, rule evaluation (first match wins), `classify-accounts`
//! and `stats`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use rhai::{AST, Dynamic};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::{Value, json};

use super::ROUTINGS;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::scripting::{ScriptError, cache, sandbox};
use crate::util::{new_id, now, parse_json};

/// The variables a risk rule can read (and the structured form can name).
pub const FIELDS: &[&str] = &[
    "trader_country",
    "account_balance",
    "account_equity",
    "account_leverage",
    "account_currency",
    "account_platform",
    "deposit_total_lifetime",
    "position_volume",
    "position_symbol",
    "position_profit",
    "is_demo",
];

/// What a rule sees. Amounts are numbers for comparison only: a rule decides a routing, it
/// never computes money.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RiskContext {
    pub trader_country: String,
    pub account_balance: f64,
    pub account_equity: f64,
    pub account_leverage: i64,
    pub account_currency: String,
    pub account_platform: String,
    pub deposit_total_lifetime: f64,
    pub position_volume: f64,
    pub position_symbol: String,
    pub position_profit: f64,
    pub is_demo: bool,
}

impl RiskContext {
    pub fn vars(&self) -> Vec<(&'static str, Dynamic)> {
        vec![
            ("trader_country", self.trader_country.clone().into()),
            ("account_balance", self.account_balance.into()),
            ("account_equity", self.account_equity.into()),
            ("account_leverage", self.account_leverage.into()),
            ("account_currency", self.account_currency.clone().into()),
            ("account_platform", self.account_platform.clone().into()),
            ("deposit_total_lifetime", self.deposit_total_lifetime.into()),
            ("position_volume", self.position_volume.into()),
            ("position_symbol", self.position_symbol.clone().into()),
            ("position_profit", self.position_profit.into()),
            ("is_demo", self.is_demo.into()),
        ]
    }
}

pub struct CompiledRule {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub routing: String,
    pub ast: Arc<AST>,
}

pub fn compiled(
    tenant_id: &str,
    id: &str,
    version: i64,
    source: &str,
) -> Result<Arc<AST>, ScriptError> {
    cache::get_or_compile(
        &cache::key("risk_rule", tenant_id, id, version),
        source,
        FIELDS,
    )
}

/// Whether one rule matches; blocking (run it off the async threads).
pub fn matches(ast: &AST, ctx: &RiskContext) -> Result<bool, ScriptError> {
    let out = sandbox::eval(ast, ctx.vars())?;
    crate::scripting::convert::to_bool(&out)
}

/// The first matching rule (index) and how many rule evaluations failed on the way; a rule
/// that fails for an account counts as not matching it.
/// A rule that hits a limit or the deadline on one account is `disabled` for the rest of the
/// run: one hostile rule must not cost its full time budget on every account.
pub fn first_match(
    rules: &[CompiledRule],
    ctx: &RiskContext,
    disabled: &mut [bool],
) -> (Option<usize>, u64) {
    let mut errors = 0;
    for (i, r) in rules.iter().enumerate() {
        if disabled[i] {
            continue;
        }
        match matches(&r.ast, ctx) {
            Ok(true) => return (Some(i), errors),
            Ok(false) => {}
            Err(e) => {
                errors += 1;
                if e.kind == "limit" || e.kind == "timeout" {
                    disabled[i] = true;
                }
            }
        }
    }
    (None, errors)
}

/// Script time one classify run may use before it gives up (nothing is persisted then).
pub const CLASSIFY_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn default_routing(conn: &mut sqlx::AnyConnection, tenant_id: &str) -> ApiResult<String> {
    let flags: Option<(String,)> =
        sqlx::query_as("SELECT feature_flags FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
    let v = flags.map(|(f,)| parse_json(&f)).unwrap_or(Value::Null);
    // Feature flags are booleans; any other default is a catch-all rule (`match: {}`) with the
    // highest priority number.
    let a_book = v.get("riskDefaultABook").and_then(Value::as_bool) == Some(true);
    Ok(if a_book { ROUTINGS[0] } else { ROUTINGS[1] }.to_string())
}

#[derive(sqlx::FromRow)]
struct RuleSrc {
    id: String,
    name: String,
    version: i64,
    routing: String,
    source: String,
}

pub async fn active_rules(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
) -> ApiResult<Vec<CompiledRule>> {
    let rows: Vec<RuleSrc> = sqlx::query_as(
        "SELECT id, name, version, routing, source FROM risk_rules
         WHERE tenant_id = $1 AND deleted_at IS NULL AND is_active = 1
         ORDER BY priority, id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        // Saved rules compiled when saved; a failure here means the engine changed under them.
        match compiled(tenant_id, &r.id, r.version, &r.source) {
            Ok(ast) => out.push(CompiledRule {
                id: r.id,
                name: r.name,
                version: r.version,
                routing: r.routing,
                ast,
            }),
            Err(e) => {
                tracing::warn!(rule_id = %r.id, error = %e, "risk rule does not compile; skipped")
            }
        }
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct AccountCtxRow {
    id: String,
    trader_id: String,
    balance: String,
    equity: String,
    leverage: i64,
    is_demo: i64,
    currency: String,
    platform: String,
    country: Option<String>,
}

fn num(s: &str) -> f64 {
    Decimal::from_str(s.trim())
        .ok()
        .and_then(|d| d.to_f64())
        .unwrap_or(0.0)
}

/// The contexts of every active account of the tenant.
async fn account_contexts(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
) -> ApiResult<Vec<(String, RiskContext)>> {
    let accounts: Vec<AccountCtxRow> = sqlx::query_as(
        "SELECT a.id, a.trader_id, a.balance, a.equity, a.leverage, a.is_demo, a.currency, a.platform, t.country
         FROM trading_accounts a LEFT JOIN traders t ON t.tenant_id = a.tenant_id AND t.id = a.trader_id
         WHERE a.tenant_id = $1 AND a.deleted_at IS NULL AND a.status = 'active'
         ORDER BY a.id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    // Lifetime deposits: settled amounts, summed per trader in decimal.
    let deposits: Vec<(String, String)> = sqlx::query_as(
        "SELECT trader_id, COALESCE(settled_amount, amount) FROM deposits WHERE tenant_id = $1 AND status = 'settled'",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut dep: HashMap<String, Decimal> = HashMap::new();
    for (t, a) in deposits {
        *dep.entry(t).or_default() += Decimal::from_str(a.trim()).unwrap_or_default();
    }
    // Open positions per account: total volume and profit; the symbol of the largest one.
    let positions: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT account_id, symbol, volume, profit FROM positions WHERE tenant_id = $1 AND closed_at IS NULL",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut pos: HashMap<String, (f64, f64, String, f64)> = HashMap::new();
    for (acc, symbol, volume, profit) in positions {
        let v = num(&volume);
        let e = pos
            .entry(acc)
            .or_insert((0.0, 0.0, String::new(), f64::MIN));
        e.0 += v;
        e.1 += profit.as_deref().map(num).unwrap_or(0.0);
        if v > e.3 {
            e.2 = symbol;
            e.3 = v;
        }
    }
    Ok(accounts
        .into_iter()
        .map(|a| {
            let (pv, pp, ps, _) = pos.remove(&a.id).unwrap_or_default();
            let ctx = RiskContext {
                trader_country: a.country.unwrap_or_default(),
                account_balance: num(&a.balance),
                account_equity: num(&a.equity),
                account_leverage: a.leverage,
                account_currency: a.currency,
                account_platform: a.platform,
                deposit_total_lifetime: dep
                    .get(&a.trader_id)
                    .and_then(|d| d.to_f64())
                    .unwrap_or(0.0),
                position_volume: pv,
                position_symbol: ps,
                position_profit: pp,
                is_demo: a.is_demo != 0,
            };
            (a.id, ctx)
        })
        .collect())
}

struct Decision {
    account_id: String,
    rule: Option<usize>,
}

pub async fn classify_accounts(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let tenant_id = actor.tenant_id.clone();
    let (rules, contexts, default) = {
        let mut conn = st.db.pool().acquire().await?;
        (
            active_rules(&mut conn, &tenant_id).await?,
            account_contexts(&mut conn, &tenant_id).await?,
            default_routing(&mut conn, &tenant_id).await?,
        )
    };
    let rules = Arc::new(rules);
    let eval_rules = rules.clone();
    let (decisions, errors, disabled) = sandbox::run_blocking(move || {
        let mut errors = 0u64;
        let mut disabled = vec![false; eval_rules.len()];
        let mut decisions: Vec<Decision> = Vec::with_capacity(contexts.len());
        for (account_id, ctx) in contexts {
            if started.elapsed() > CLASSIFY_BUDGET {
                return None;
            }
            let (rule, e) = first_match(&eval_rules, &ctx, &mut disabled);
            errors += e;
            decisions.push(Decision { account_id, rule });
        }
        Some((decisions, errors, disabled))
    })
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::Unprocessable {
        code: "classify_budget_exceeded",
        detail: format!(
            "Evaluating the rules took longer than {} s; nothing was changed. Simplify or deactivate slow rules (dry-run them).",
            CLASSIFY_BUDGET.as_secs()
        ),
    })?;

    let run_id = new_id();
    let ts = now();
    let mut by_routing: HashMap<String, i64> = HashMap::new();
    let mut by_rule: Vec<i64> = vec![0; rules.len()];
    let mut defaulted = 0i64;
    let mut tx = st.db.begin().await?;
    for d in &decisions {
        let (routing, rule_id, version) = match d.rule {
            Some(i) => {
                by_rule[i] += 1;
                let r = &rules[i];
                (r.routing.as_str(), Some(r.id.as_str()), Some(r.version))
            }
            None => {
                defaulted += 1;
                (default.as_str(), None, None)
            }
        };
        *by_routing.entry(routing.to_string()).or_default() += 1;
        sqlx::query(
            "INSERT INTO account_routing (tenant_id, account_id, routing, rule_id, rule_version, run_id, classified_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, account_id) DO UPDATE SET routing = $3, rule_id = $4, rule_version = $5, run_id = $6, classified_at = $7",
        )
        .bind(&tenant_id)
        .bind(&d.account_id)
        .bind(routing)
        .bind(rule_id)
        .bind(version)
        .bind(&run_id)
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
    }
    // Accounts no longer active keep no stale decision.
    sqlx::query("DELETE FROM account_routing WHERE tenant_id = $1 AND run_id <> $2")
        .bind(&tenant_id)
        .bind(&run_id)
        .execute(&mut *tx)
        .await?;
    let duration_ms = started.elapsed().as_millis() as i64;
    let summary = json!({
        "runId": run_id,
        "accounts": decisions.len(),
        "byRouting": by_routing,
        "byRule": rules.iter().zip(&by_rule).map(|(r, n)| json!({
            "ruleId": r.id, "name": r.name, "version": r.version, "routing": r.routing, "accounts": n,
        })).collect::<Vec<_>>(),
        "defaultRouting": default,
        "defaultRouted": defaulted,
        "errors": errors,
        // Rules that hit a limit or the deadline and were skipped for the rest of the run.
        "disabledRules": rules.iter().zip(&disabled).filter(|(_, d)| **d).map(|(r, _)| r.id.clone()).collect::<Vec<_>>(),
        "durationMs": duration_ms,
        "classifiedAt": ts,
    });
    sqlx::query(
        "INSERT INTO risk_classify_runs (tenant_id, id, accounts, errors, summary, duration_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&tenant_id)
    .bind(&run_id)
    .bind(decisions.len() as i64)
    .bind(errors as i64)
    .bind(summary.to_string())
    .bind(duration_ms)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    events::emit(
        &mut tx,
        &tenant_id,
        "risk_rules.classified",
        "risk_classify_run",
        &run_id,
        &summary,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "risk_rules.classify",
        "risk_classify_run",
        Some(&run_id),
        None,
        Some(&summary),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(summary))
}

pub async fn stats(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT summary FROM risk_classify_runs WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(&actor.tenant_id)
    .fetch_optional(st.db.pool())
    .await?;
    Ok(Json(match row {
        Some((s,)) => parse_json(&s),
        None => json!({
            "runId": null, "accounts": 0, "byRouting": {}, "byRule": [],
            "defaultRouted": 0, "errors": 0, "disabledRules": [], "durationMs": 0, "classifiedAt": null,
        }),
    }))
}
