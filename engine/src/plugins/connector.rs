//! Platform-connector components (`lumire:plugin/platform-connector@0.2.0`) behind the engine's
//! connector operations. The integrations code speaks one JSON protocol to every connector (the
//! operations of `connectors::abi`); this module turns each operation into the typed call of the
//! component and its result back into that JSON.
//!
//! A [`WasmSession`] is one instance for one engine operation (a sync run, a push): its calls
//! share the guest's memory, so a connector keeps its platform session between them, and each
//! call gets the full deadline again.

use std::sync::Arc;

use serde_json::{Value, json};
use wasmtime::Store;

use super::Plugins;
use super::bindings::PlatformConnector;
use super::bindings::connector::{
    Account, Balance, BalanceOperation, Error as ConnError, Position, Side,
};
use super::host::{ConnectorCall, HostState};
use super::registry::Installed;
use super::runtime::{Failure, Pre};
use crate::connectors::ConnectorError;

/// Most pages of positions one operation reads.
const MAX_PAGES: usize = 10_000;

/// A platform connector component and the plugins that run it.
#[derive(Clone)]
pub struct WasmConnector {
    pub plugins: Arc<Plugins>,
    pub plugin: Arc<Installed>,
}

pub struct WasmSession {
    connector: WasmConnector,
    tenant_id: String,
    config: Value,
    live: Option<(PlatformConnector, Store<HostState>)>,
}

fn failure(plugin: &Installed, op: &str, f: Failure) -> ConnectorError {
    ConnectorError::Protocol(format!(
        "connector {} {} ({op}) {f}",
        plugin.manifest.name, plugin.manifest.version
    ))
}

fn remote(e: ConnError) -> ConnectorError {
    let (code, message) = match e {
        ConnError::Unauthorized(m) => ("unauthorized", m),
        ConnError::Unavailable(m) => ("unavailable", m),
        ConnError::Rejected(m) => ("rejected", m),
        ConnError::NotFound => ("not-found", "not found".to_string()),
    };
    ConnectorError::Remote {
        code: code.into(),
        message,
    }
}

/// The call context of a tenant's configuration `{"endpoint", "credentials", ...}`: settings
/// through `config.get`, each credential through `config.secret`, and the endpoint's host
/// reachable over `http-client`.
fn connector_call(config: &Value) -> ConnectorCall {
    let mut settings = config.clone();
    let mut secrets = std::collections::HashMap::new();
    if let Some(obj) = settings.as_object_mut()
        && let Some(Value::Object(creds)) = obj.remove("credentials")
    {
        for (k, v) in creds {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            secrets.insert(k, text);
        }
    }
    let endpoint_host = config["endpoint"]
        .as_str()
        .and_then(|e| url::Url::parse(e).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    ConnectorCall {
        config: settings,
        secrets,
        endpoint_host,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .or_else(|| x.as_i64().map(|n| n.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn account_json(a: Account) -> Value {
    json!({"login": a.login, "group": a.group, "currency": a.currency, "leverage": a.leverage, "name": a.name})
}

fn balance_json(b: Balance) -> Value {
    json!({
        "login": b.login, "currency": b.currency, "balance": b.balance, "credit": b.credit,
        "equity": b.equity, "margin": b.margin, "freeMargin": b.free_margin,
    })
}

fn position_json(p: Position) -> Value {
    json!({
        "id": p.id, "login": p.login, "symbol": p.symbol,
        "side": match p.side { Side::Buy => "buy", Side::Sell => "sell" },
        "volume": p.volume, "openPrice": p.open_price, "closePrice": p.close_price,
        "profit": p.profit, "commission": p.commission, "swap": p.swap,
        "openedAt": p.opened_at, "closedAt": p.closed_at,
    })
}

impl WasmConnector {
    pub fn session(&self, tenant_id: &str, config: &Value) -> WasmSession {
        WasmSession {
            connector: self.clone(),
            tenant_id: tenant_id.to_string(),
            config: config.clone(),
            live: None,
        }
    }
}

impl WasmSession {
    /// One connector operation with the JSON request and result of `connectors::abi`.
    #[tracing::instrument(name = "connector_call", skip_all, fields(plugin = %self.connector.plugin.manifest.name, op, tenant_id = %self.tenant_id))]
    pub async fn call(&mut self, op: &str, request: &Value) -> Result<Value, ConnectorError> {
        let plugin = self.connector.plugin.clone();
        let plugins = self.connector.plugins.clone();
        let runtime = plugins
            .runtime
            .as_ref()
            .ok_or_else(|| ConnectorError::Protocol("no plugin runtime".into()))?;
        if self.live.is_none() {
            let Pre::Connector(pre) = &plugin.pre else {
                return Err(ConnectorError::Protocol(format!(
                    "{} is not a platform connector",
                    plugin.manifest.name
                )));
            };
            let ctx = plugins.connector_ctx(&plugin, &self.tenant_id, connector_call(&self.config));
            let live = runtime
                .instantiate_connector(pre, ctx)
                .await
                .map_err(|f| failure(&plugin, op, f))?;
            self.live = Some(live);
        }
        let Some((inst, store)) = self.live.as_mut() else {
            return Err(ConnectorError::Protocol(
                "connector instance missing".into(),
            ));
        };
        let c = inst.lumire_plugin0_2_0_connector();
        let deadline = runtime.timeout();
        macro_rules! run {
            ($fut:expr) => {{
                runtime.rearm(store);
                let r = tokio::time::timeout(deadline, $fut).await;
                match runtime.outcome(store, r) {
                    Ok(v) => v,
                    Err(f) => {
                        // A trapped or timed-out instance is not reused.
                        self.live = None;
                        return Err(failure(&plugin, op, f));
                    }
                }
            }};
        }
        let result = match op {
            "test-connection" => run!(c.call_test_connection(&mut *store)).map(Value::String),
            "list-accounts" => {
                let cursor = request["cursor"].as_str().map(str::to_string);
                let limit = request["limit"].as_u64().unwrap_or(500).min(10_000) as u32;
                run!(c.call_list_accounts(&mut *store, cursor.as_deref(), limit)).map(
                    |(accounts, next)| {
                        json!({
                            "accounts": accounts.into_iter().map(account_json).collect::<Vec<_>>(),
                            "nextCursor": next,
                        })
                    },
                )
            }
            "get-balances" => {
                let logins = strings(&request["logins"]);
                run!(c.call_get_balances(&mut *store, &logins))
                    .map(|b| Value::Array(b.into_iter().map(balance_json).collect()))
            }
            "list-open-positions" | "list-closed-positions" => {
                let logins = strings(&request["logins"]);
                let since = request["since"].as_str().unwrap_or_default().to_string();
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                for _ in 0..MAX_PAGES {
                    let page = if op == "list-open-positions" {
                        run!(c.call_list_open_positions(&mut *store, &logins, cursor.as_deref()))
                    } else {
                        run!(c.call_list_closed_positions(
                            &mut *store,
                            &logins,
                            &since,
                            cursor.as_deref()
                        ))
                    };
                    match page {
                        Ok(p) => {
                            all.extend(p.positions.into_iter().map(position_json));
                            match p.next_cursor {
                                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                                _ => break,
                            }
                        }
                        Err(e) => return Err(remote(e)),
                    }
                }
                Ok(Value::Array(all))
            }
            "push-balance-operation" => {
                let o = &request["op"];
                let text = |k: &str| o[k].as_str().unwrap_or_default().to_string();
                let bop = BalanceOperation {
                    login: text("login"),
                    amount: o["amount"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| o["amount"].to_string()),
                    kind: o["kind"].as_str().unwrap_or("balance").to_string(),
                    comment: text("comment"),
                    idempotency_key: text("idempotencyKey"),
                };
                run!(c.call_push_balance_operation(&mut *store, &bop)).map(Value::String)
            }
            "describe-server" => run!(c.call_describe_server(&mut *store))
                .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s))),
            other => {
                return Err(ConnectorError::Protocol(format!(
                    "unknown connector operation {other}"
                )));
            }
        };
        result.map_err(remote)
    }
}
