//! Replay, the issuance log and the stats.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::issue::{ISSUANCE_COLUMNS, IssuanceView, Outcome, evaluate, load_deposit};
use super::rules::stored;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::credit_lines::domain::to_json;
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::{Page, PageRequest};
use crate::util::{fmt_time, parse_time};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    deposit_id: String,
    #[serde(flatten)]
    outcome: Outcome,
}

/// Re-evaluates every active rule against a settled deposit. Rules that already paid it are
/// reported as skipped (`already_issued`), so replaying twice issues nothing the second time.
pub async fn replay(
    State(st): State<AppState>,
    actor: Actor,
    Path(deposit_id): Path<String>,
) -> ApiResult<Json<ReplayResult>> {
    let mut tx = st.db.begin().await?;
    let d = load_deposit(&mut tx, &actor.tenant_id, &deposit_id).await?;
    if d.status != "settled" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "A {} deposit earns no bonus; only settled deposits can be replayed.",
                d.status
            ),
        ));
    }
    let outcome = evaluate(&mut tx, &actor, &d, "replay").await?;
    let result = ReplayResult {
        deposit_id: deposit_id.clone(),
        outcome,
    };
    let after = to_json(&result);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "bonus.replayed",
        "deposit",
        &deposit_id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "bonus.replay",
        "deposit",
        Some(&deposit_id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(result))
}

fn time_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<String>> {
    q.get(name)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse_time(s)
                .map(fmt_time)
                .ok_or_else(|| ApiError::field(name, "must be an RFC 3339 time"))
        })
        .transpose()
}

/// Filters shared by the log and the stats: `from` inclusive, `to` exclusive (issue time).
fn filters(b: &mut SqlBuilder, q: &HashMap<String, String>) -> ApiResult<()> {
    for (param, column) in [
        ("ruleId", "rule_id"),
        ("traderId", "trader_id"),
        ("depositId", "deposit_id"),
        ("status", "status"),
        ("currency", "currency"),
        ("source", "source"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(from) = time_param(q, "from")? {
        b.push(" AND created_at >= ").text(from);
    }
    if let Some(to) = time_param(q, "to")? {
        b.push(" AND created_at < ").text(to);
    }
    Ok(())
}

pub async fn issuance_log(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<IssuanceView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {ISSUANCE_COLUMNS} FROM bonus_issuances WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    filters(&mut b, &q)?;
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<IssuanceView> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(Page::from_rows(rows, &page, |r| &r.id)))
}

#[derive(Default)]
struct Totals {
    issued_count: i64,
    issued: Decimal,
    clawed_back_count: i64,
    clawed_back: Decimal,
    shortfall: Decimal,
}

impl Totals {
    fn add(&mut self, amount: Decimal, clawed: Option<Decimal>, shortfall: Option<Decimal>) {
        self.issued_count += 1;
        self.issued += amount;
        if let Some(c) = clawed {
            self.clawed_back_count += 1;
            self.clawed_back += c;
        }
        self.shortfall += shortfall.unwrap_or_default();
    }

    fn json(&self) -> Value {
        json!({
            "issuedCount": self.issued_count,
            "issuedTotal": self.issued.to_string(),
            "clawedBackCount": self.clawed_back_count,
            "clawedBackTotal": self.clawed_back.to_string(),
            "shortfallTotal": self.shortfall.to_string(),
            "netTotal": (self.issued - self.clawed_back).to_string(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StatRow {
    rule_id: String,
    currency: String,
    amount: String,
    clawed_back_amount: Option<String>,
    shortfall: Option<String>,
}

/// Counts and totals per currency and per rule (and currency). Amounts are exact decimal text,
/// so they are summed here rather than in SQL.
pub async fn stats(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut b = SqlBuilder::new(
        "SELECT rule_id, currency, amount, clawed_back_amount, shortfall FROM bonus_issuances WHERE tenant_id = ",
    );
    b.text(&actor.tenant_id);
    filters(&mut b, &q)?;
    let rows: Vec<StatRow> = b.query_as().fetch_all(st.db.pool()).await?;
    let mut per_currency: BTreeMap<String, Totals> = BTreeMap::new();
    let mut per_rule: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for r in rows {
        let amount = stored(&r.amount)?;
        let clawed = r.clawed_back_amount.as_deref().map(stored).transpose()?;
        let shortfall = r.shortfall.as_deref().map(stored).transpose()?;
        per_currency
            .entry(r.currency.clone())
            .or_default()
            .add(amount, clawed, shortfall);
        per_rule
            .entry((r.rule_id, r.currency))
            .or_default()
            .add(amount, clawed, shortfall);
    }
    let names: Vec<(String, String, i64, Option<String>)> =
        sqlx::query_as("SELECT id, name, active, deleted_at FROM bonus_rules WHERE tenant_id = $1")
            .bind(&actor.tenant_id)
            .fetch_all(st.db.pool())
            .await?;
    let live = names.iter().filter(|n| n.3.is_none());
    let (total_rules, active_rules) =
        live.fold((0, 0), |(t, a), n| (t + 1, a + i64::from(n.2 != 0)));
    let names: HashMap<String, String> = names.into_iter().map(|n| (n.0, n.1)).collect();
    let by_currency: Vec<Value> = per_currency
        .iter()
        .map(|(c, t)| {
            let mut v = t.json();
            v["currency"] = json!(c);
            v
        })
        .collect();
    let by_rule: Vec<Value> = per_rule
        .iter()
        .map(|((rule, c), t)| {
            let mut v = t.json();
            v["ruleId"] = json!(rule);
            v["name"] = json!(names.get(rule));
            v["currency"] = json!(c);
            v
        })
        .collect();
    Ok(Json(json!({
        "rules": {"total": total_rules, "active": active_rules},
        "byCurrency": by_currency,
        "byRule": by_rule,
    })))
}
