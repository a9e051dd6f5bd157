//! `POST /v1/integrations/sync`: for every active configuration whose platform has a connector,
//! read each known trading account's balance and equity and its positions from the platform,
//! and bring the CRM's copies up to date. Positions are matched by the platform's own id, so a
//! repeated sync updates rather than duplicates; accounts the platform reports that the CRM does
//! not know are counted as `unmatched` and left alone.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::configs::connector_config;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::connectors::Connector;
use crate::events;
use crate::http::error::ApiResult;
use crate::util::{new_id, now};

/// Accounts asked for per connector call, and per page of `list-accounts`.
const BATCH: usize = 100;
const PAGE: u32 = 500;
/// A bound on one sync's account list (a connector that pages forever is cut off).
const MAX_ACCOUNTS: usize = 1_000_000;

#[derive(Default)]
struct Tally {
    accounts: i64,
    updated_accounts: i64,
    unmatched: i64,
    positions: i64,
    errors: Vec<String>,
}

/// A decimal from a connector, or `None` when it is not one (the connector is not trusted to
/// send exact figures in the right shape).
fn decimal(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    s.parse::<Decimal>().ok().map(|d| d.to_string())
}

pub async fn sync(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let configs: Vec<(String,)> = sqlx::query_as(
        "SELECT platform FROM integration_configs WHERE tenant_id = $1 AND is_active = 1 ORDER BY platform",
    )
    .bind(&actor.tenant_id)
    .fetch_all(st.db.pool())
    .await?;
    let mut results = Vec::new();
    for (platform,) in configs {
        results.push(sync_config(&st, &actor, &platform).await?);
    }
    Ok(Json(json!({"data": results, "syncedAt": now()})))
}

/// Syncs one configuration of the actor's tenant; the summary of what it did.
async fn sync_config(st: &AppState, actor: &Actor, platform: &str) -> ApiResult<Value> {
    let Some(config) = connector_config(st, &actor.tenant_id, platform).await? else {
        return Ok(json!({"platform": platform, "skipped": "not_configured"}));
    };
    let Some(connector) = st.connectors.for_platform(platform) else {
        return Ok(json!({"platform": platform, "skipped": "connector_not_installed"}));
    };
    let t = sync_platform(st, actor, platform, connector, &config).await?;
    let summary = json!({
        "platform": platform,
        "accounts": t.accounts,
        "updatedAccounts": t.updated_accounts,
        "unmatched": t.unmatched,
        "positions": t.positions,
        "errors": t.errors,
    });
    let mut tx = st.db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        "integration.sync",
        "integration_config",
        Some(platform),
        None,
        Some(&summary),
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// How long a process holds a configuration while it syncs it.
const SYNC_LEASE_SECS: i64 = 600;

/// One round of the scheduled sync: every active configuration not synced for `interval_secs`
/// is claimed with a lease (one process wins each) and synced. Returns how many were synced.
pub async fn run_scheduled(st: &AppState, interval_secs: i64) -> ApiResult<usize> {
    let now_t = chrono::Utc::now();
    let due_before = crate::util::fmt_time(now_t - chrono::Duration::seconds(interval_secs));
    let now_s = crate::util::fmt_time(now_t);
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT tenant_id, platform FROM integration_configs
         WHERE is_active = 1 AND (last_sync_at IS NULL OR last_sync_at < $1)
           AND (sync_lease_until IS NULL OR sync_lease_until < $2)
         ORDER BY last_sync_at LIMIT 100",
    )
    .bind(&due_before)
    .bind(&now_s)
    .fetch_all(st.db.pool())
    .await?;
    let mut done = 0;
    for (tenant_id, platform) in due {
        if st.connectors.for_platform(&platform).is_none() {
            continue;
        }
        let lease = crate::util::fmt_time(now_t + chrono::Duration::seconds(SYNC_LEASE_SECS));
        let claimed = sqlx::query(
            "UPDATE integration_configs SET sync_lease_until = $3
             WHERE tenant_id = $1 AND platform = $2 AND is_active = 1
               AND (last_sync_at IS NULL OR last_sync_at < $4)
               AND (sync_lease_until IS NULL OR sync_lease_until < $5)",
        )
        .bind(&tenant_id)
        .bind(&platform)
        .bind(&lease)
        .bind(&due_before)
        .bind(&now_s)
        .execute(st.db.pool())
        .await?;
        if claimed.rows_affected() != 1 {
            continue;
        }
        let actor = Actor::system(&tenant_id, "scheduler");
        let outcome = sync_config(st, &actor, &platform).await;
        sqlx::query(
            "UPDATE integration_configs SET sync_lease_until = NULL WHERE tenant_id = $1 AND platform = $2",
        )
        .bind(&tenant_id)
        .bind(&platform)
        .execute(st.db.pool())
        .await?;
        match outcome {
            Ok(summary) => {
                tracing::info!(tenant_id, platform, %summary, "scheduled sync");
                done += 1;
            }
            Err(e) => tracing::warn!(tenant_id, platform, error = %e, "scheduled sync failed"),
        }
    }
    Ok(done)
}

#[tracing::instrument(name = "sync", skip_all, fields(tenant_id = %actor.tenant_id, platform))]
async fn sync_platform(
    st: &AppState,
    actor: &Actor,
    platform: &str,
    connector: Connector,
    config: &Value,
) -> ApiResult<Tally> {
    let mut t = Tally::default();
    // One session for the whole run: a WebAssembly connector keeps its platform session.
    let mut session = connector.session(&actor.tenant_id, config);
    // Every account the platform has, page by page.
    let mut remote = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let req = json!({"config": config, "cursor": cursor, "limit": PAGE});
        match session.call("list-accounts", req).await {
            Ok(v) => {
                remote.extend(v["accounts"].as_array().cloned().unwrap_or_default());
                cursor = v["nextCursor"].as_str().map(str::to_string);
                if cursor.is_none() || remote.len() > MAX_ACCOUNTS {
                    break;
                }
            }
            Err(e) => {
                t.errors.push(format!("list-accounts: {e}"));
                return Ok(t);
            }
        }
    }
    // The ones the CRM knows, by login (one query for the tenant's accounts on the platform).
    let local: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT account_number, id, trader_id, balance, equity FROM trading_accounts
         WHERE tenant_id = $1 AND platform = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(platform)
    .fetch_all(st.db.pool())
    .await?;
    let local: HashMap<String, (String, String, String, String)> = local
        .into_iter()
        .map(|(n, id, trader, balance, equity)| (n, (id, trader, balance, equity)))
        .collect();
    let mut known: HashMap<String, (String, String, String, String)> = HashMap::new();
    for acc in &remote {
        let Some(login) = acc["login"].as_str() else {
            t.errors
                .push("list-accounts: an account without a login".into());
            continue;
        };
        match local.get(login) {
            Some(l) => {
                known.insert(login.to_string(), l.clone());
            }
            None => t.unmatched += 1,
        }
    }
    t.accounts = known.len() as i64;
    let since = sqlx::query_as::<_, (Option<String>,)>(
        "SELECT last_sync_at FROM integration_configs WHERE tenant_id = $1 AND platform = $2",
    )
    .bind(&actor.tenant_id)
    .bind(platform)
    .fetch_optional(st.db.pool())
    .await?
    .and_then(|(s,)| s)
    .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into());
    let logins: Vec<String> = known.keys().cloned().collect();
    for chunk in logins.chunks(BATCH) {
        let base = json!({"config": config, "logins": chunk});
        let balances = session.call("get-balances", base.clone()).await;
        let open = session.call("list-open-positions", base.clone()).await;
        let mut closed_req = base;
        closed_req["since"] = json!(since);
        let closed = session.call("list-closed-positions", closed_req).await;
        let mut tx = st.db.begin().await?;
        match balances {
            Ok(list) => {
                for b in list.as_array().cloned().unwrap_or_default() {
                    let login = b["login"].as_str().unwrap_or_default();
                    let Some((account_id, _, balance, equity)) = known.get(login) else {
                        continue;
                    };
                    let (Some(new_balance), Some(new_equity)) =
                        (decimal(&b["balance"]), decimal(&b["equity"]))
                    else {
                        t.errors.push(format!(
                            "get-balances {login}: balance or equity is not a decimal"
                        ));
                        continue;
                    };
                    if &new_balance != balance || &new_equity != equity {
                        sqlx::query(
                            "UPDATE trading_accounts SET balance = $3, equity = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind(&actor.tenant_id)
                        .bind(account_id)
                        .bind(&new_balance)
                        .bind(&new_equity)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                        let payload = json!({"id": account_id, "balance": new_balance, "equity": new_equity, "source": "sync"});
                        events::emit(
                            &mut tx,
                            &actor.tenant_id,
                            "account.updated",
                            "trading_account",
                            account_id,
                            &payload,
                        )
                        .await?;
                        t.updated_accounts += 1;
                    }
                }
            }
            Err(e) => t.errors.push(format!("get-balances: {e}")),
        }
        for (what, result) in [
            ("list-open-positions", open),
            ("list-closed-positions", closed),
        ] {
            match result {
                Ok(list) => {
                    for p in list.as_array().cloned().unwrap_or_default() {
                        let login = p["login"].as_str().unwrap_or_default();
                        let Some((account_id, trader_id, _, _)) = known.get(login) else {
                            continue;
                        };
                        if upsert_position(
                            &mut tx,
                            &actor.tenant_id,
                            platform,
                            account_id,
                            trader_id,
                            &p,
                        )
                        .await?
                        {
                            t.positions += 1;
                        } else {
                            t.errors.push(format!("{what} {login}: a position lacks id, symbol, side, volume, price or time"));
                        }
                    }
                }
                Err(e) => t.errors.push(format!("{what}: {e}")),
            }
        }
        tx.commit().await?;
    }
    sqlx::query(
        "UPDATE integration_configs SET last_sync_at = $3 WHERE tenant_id = $1 AND platform = $2",
    )
    .bind(&actor.tenant_id)
    .bind(platform)
    .bind(now())
    .execute(st.db.pool())
    .await?;
    Ok(t)
}

/// Inserts or updates one position by its platform id; `false` when the connector's record is
/// unusable.
async fn upsert_position(
    tx: &mut crate::db::Tx,
    tenant_id: &str,
    platform: &str,
    account_id: &str,
    trader_id: &str,
    p: &Value,
) -> ApiResult<bool> {
    let external = p["id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| p["id"].as_i64().map(|n| n.to_string()));
    let side = p["side"].as_str().filter(|s| *s == "buy" || *s == "sell");
    let (Some(external), Some(symbol), Some(side), Some(volume), Some(open_price), Some(opened_at)) = (
        external,
        p["symbol"].as_str(),
        side,
        decimal(&p["volume"]),
        decimal(&p["openPrice"]),
        p["openedAt"]
            .as_str()
            .and_then(crate::util::parse_time)
            .map(crate::util::fmt_time),
    ) else {
        return Ok(false);
    };
    let closed_at = p["closedAt"]
        .as_str()
        .and_then(crate::util::parse_time)
        .map(crate::util::fmt_time);
    let ts = now();
    // One statement, arbitrated by the unique (tenant, platform, platform id) index: a repeated
    // sync updates in place, and the plan never depends on how many positions exist yet.
    sqlx::query(
        "INSERT INTO positions (tenant_id, id, account_id, trader_id, symbol, side, volume, open_price, current_price,
           profit, opened_at, closed_at, platform, external_id, close_price, commission, swap, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (tenant_id, platform, external_id) DO UPDATE SET
           current_price = excluded.current_price, close_price = excluded.close_price, profit = excluded.profit,
           commission = excluded.commission, swap = excluded.swap, closed_at = excluded.closed_at,
           volume = excluded.volume, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(account_id)
    .bind(trader_id)
    .bind(symbol.to_uppercase())
    .bind(side)
    .bind(&volume)
    .bind(&open_price)
    .bind(decimal(&p["currentPrice"]))
    .bind(decimal(&p["profit"]))
    .bind(&opened_at)
    .bind(&closed_at)
    .bind(platform)
    .bind(&external)
    .bind(decimal(&p["closePrice"]))
    .bind(decimal(&p["commission"]))
    .bind(decimal(&p["swap"]))
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}
