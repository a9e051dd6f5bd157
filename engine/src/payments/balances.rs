//! A trader's balances per currency, from the ledger: wallet, held for pending withdrawals, and
//! available (the wallet). `?at=` gives the balances as they stood at that time. `credit` and
//! `bonus` are what is outstanding on the trader's credit and bonus credit lines: broker money,
//! not the client's, so they are not part of `total`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger;
use crate::util::{fmt_time, parse_time};

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(trader_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Value>> {
    crate::traders::load(st.db.pool(), &actor.tenant_id, &trader_id).await?;
    let at = match q.get("at") {
        Some(s) => {
            Some(fmt_time(parse_time(s).ok_or_else(|| {
                ApiError::field("at", "must be an RFC 3339 time")
            })?))
        }
        None => None,
    };
    let accounts: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, kind, currency, balance FROM ledger_accounts WHERE tenant_id = $1 AND owner_type = 'trader' AND owner_id = $2 ORDER BY currency, kind",
    )
    .bind(&actor.tenant_id)
    .bind(&trader_id)
    .fetch_all(st.db.pool())
    .await?;
    let mut per: BTreeMap<String, [Decimal; 4]> = BTreeMap::new();
    for (id, kind, currency, balance) in accounts {
        let amount = match &at {
            Some(at) => ledger::balance_as_of(st.db.pool(), &actor.tenant_id, &id, at).await?,
            None => ledger::dec(&balance)?,
        };
        let e = per.entry(currency).or_default();
        match kind.as_str() {
            "trader_wallet" => e[0] += amount,
            "withdrawal_hold" => e[1] += amount,
            "trader_credit" => e[2] += amount,
            "trader_bonus" => e[3] += amount,
            _ => {}
        }
    }
    let data: Vec<Value> = per
        .into_iter()
        .map(|(currency, [wallet, held, credit, bonus])| {
            json!({
                "currency": currency,
                "available": wallet.to_string(),
                "held": held.to_string(),
                "total": (wallet + held).to_string(),
                "credit": credit.to_string(),
                "bonus": bonus.to_string(),
            })
        })
        .collect();
    Ok(axum::Json(
        json!({"traderId": trader_id, "at": at, "data": data}),
    ))
}
