//! The reconciliation view: settled money per currency and how much of it is reconciled.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger;
use crate::util::{now, parse_time};

use axum::Json;

#[derive(Default)]
struct Tally {
    count: i64,
    reconciled: i64,
    total: Decimal,
    reconciled_total: Decimal,
}

/// Settled deposits and withdrawals in a window (`from`, `to` on the settlement time), per
/// currency, with how much of them is reconciled, and the oldest unreconciled items.
pub async fn view(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let from = q.get("from").cloned().unwrap_or_else(|| "0000".into());
    let to = q.get("to").cloned().unwrap_or_else(|| "9999".into());
    for f in ["from", "to"] {
        if q.get(f).is_some_and(|v| parse_time(v).is_none()) {
            return Err(ApiError::field(f, "must be an RFC 3339 time"));
        }
    }
    let (base,): (String,) = sqlx::query_as("SELECT base_currency FROM tenants WHERE id = $1")
        .bind(&actor.tenant_id)
        .fetch_one(st.db.pool())
        .await?;
    let mut out = serde_json::Map::new();
    out.insert("baseCurrency".into(), json!(base));
    for (table, amount_col) in [("deposits", "net_amount"), ("withdrawals", "amount")] {
        let rows: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT id, currency, {amount_col}, reconciled, settled_at FROM {table}
             WHERE tenant_id = $1 AND status = 'settled' AND settled_at >= $2 AND settled_at < $3 ORDER BY settled_at"
        ))
        .bind(&actor.tenant_id)
        .bind(&from)
        .bind(&to)
        .fetch_all(st.db.pool())
        .await?;
        let mut per: BTreeMap<String, Tally> = BTreeMap::new();
        let mut open = Vec::new();
        // The base-currency total converts each movement at the rate in force when it settled.
        let mut base_total = Decimal::ZERO;
        let mut rates_used: Vec<crate::fx::RateUsed> = Vec::new();
        let mut unconverted = Vec::new();
        for (id, currency, amount, reconciled, settled_at) in rows {
            let amount = ledger::dec(&amount)?;
            let at = settled_at.clone().unwrap_or_else(now);
            match crate::fx::rate_at(st.db.pool(), &actor.tenant_id, &currency, &base, &at).await? {
                Some(rate) => {
                    base_total = crate::fx::convert(amount, &rate)
                        .and_then(|v| base_total.checked_add(v))
                        .ok_or_else(|| ApiError::Unprocessable {
                            code: "amount_out_of_range",
                            detail: "The base-currency total is beyond what can be computed."
                                .into(),
                        })?;
                    if !rates_used.contains(&rate) {
                        rates_used.push(rate);
                    }
                }
                None => unconverted.push(id.clone()),
            }
            let t = per.entry(currency.clone()).or_default();
            t.count += 1;
            t.total += amount;
            if reconciled != 0 {
                t.reconciled += 1;
                t.reconciled_total += amount;
            } else if open.len() < 100 {
                open.push(json!({"id": id, "currency": currency, "amount": amount.to_string(), "settledAt": settled_at}));
            }
        }
        let totals: Vec<Value> = per
            .into_iter()
            .map(|(c, t)| {
                json!({
                    "currency": c,
                    "settledCount": t.count,
                    "settledTotal": t.total.to_string(),
                    "reconciledCount": t.reconciled,
                    "reconciledTotal": t.reconciled_total.to_string(),
                    "unreconciledCount": t.count - t.reconciled,
                    "unreconciledTotal": (t.total - t.reconciled_total).to_string(),
                })
            })
            .collect();
        out.insert(
            table.into(),
            json!({
                "totals": totals,
                "unreconciled": open,
                "baseCurrencyTotal": base_total.to_string(),
                "ratesUsed": rates_used,
                "unconverted": unconverted,
            }),
        );
    }
    Ok(Json(Value::Object(out)))
}
