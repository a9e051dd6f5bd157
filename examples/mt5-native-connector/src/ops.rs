//! The operations of the C ABI (version 1) on an MT5 connection. Requests carry the tenant's
//! configuration (`{"config": {"endpoint", "credentials"}}`); positions come back whole (the
//! ABI has no cursor), read page by page from the server.

use mt5_webapi::{BalanceOperation, Mt5Error, PositionPage, Source};
use serde_json::{Value, json};

use crate::pool::{Conn, with_conn};

/// The platform this connector serves.
const PLATFORM: &str = "mt5";
/// Pages of positions read for one call before the connector stops (a guard against a server
/// that never ends its cursor).
const MAX_PAGES: usize = 10_000;

/// The request's configuration: `endpoint` and settings in `config`, the manager's login,
/// password and further settings in `config.credentials`.
struct Request<'a>(&'a Value);

impl Source for Request<'_> {
    fn config(&self) -> &Value {
        &self.0["config"]
    }
    fn secret(&self, name: &str) -> Option<String> {
        match &self.0["config"]["credentials"][name] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

type Failure = (&'static str, String);

fn code(e: Mt5Error) -> Failure {
    match e {
        Mt5Error::Unauthorized(m) => ("unauthorized", m),
        Mt5Error::Unavailable(m) => ("unavailable", m),
        Mt5Error::Rejected(m) => ("rejected", m),
        Mt5Error::NotFound(m) => ("not-found", m),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .or_else(|| x.as_u64().map(|n| n.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn json_of<T: serde::Serialize>(v: T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| ("rejected", e.to_string()))
}

/// Every page of positions, concatenated.
fn all_pages(
    mut page: impl FnMut(Option<&str>) -> Result<PositionPage, Mt5Error>,
) -> Result<Value, Failure> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let p = page(cursor.as_deref()).map_err(code)?;
        all.extend(p.positions);
        match p.next_cursor {
            Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
            _ => return json_of(all),
        }
    }
    Err((
        "unavailable",
        format!("the server's positions did not end within {MAX_PAGES} pages"),
    ))
}

/// One ABI operation: its `ok` value, or an error code and message.
pub fn handle(op: &str, req: &Value) -> Result<Value, Failure> {
    if op == "describe" {
        return Ok(json!({
            "platform": PLATFORM,
            "name": "MetaTrader 5 Web API (native)",
            "version": env!("CARGO_PKG_VERSION"),
        }));
    }
    let src = Request(req);
    let settings = mt5_webapi::settings(&src).map_err(code)?;
    let Some(tenant) = req["tenant"].as_str().filter(|t| !t.is_empty()) else {
        return Err((
            "rejected",
            "the request names no tenant (engine older than this connector?)".into(),
        ));
    };
    if src.secret("tls_cert_sha256").is_some() {
        return Err((
            "rejected",
            "tls_cert_sha256: certificate pinning is served by the WebAssembly MT5 connector; the native one trusts tls_ca_cert".into(),
        ));
    }
    let ca = src.secret("tls_ca_cert").filter(|c| !c.trim().is_empty());
    with_conn(tenant, settings, ca.as_deref(), |conn: &mut Conn| {
        let mt5 = &mut conn.mt5;
        let logins = strings(&req["logins"]);
        match op {
            "test-connection" => mt5.test_connection().map(Value::String).map_err(code),
            "list-accounts" => {
                let limit = req["limit"].as_u64().unwrap_or(500).min(10_000) as u32;
                let (accounts, next) = mt5
                    .list_accounts(&src, req["cursor"].as_str(), limit)
                    .map_err(code)?;
                Ok(json!({"accounts": json_of(accounts)?, "nextCursor": next}))
            }
            "get-balances" => json_of(mt5.get_balances(&src, &logins).map_err(code)?),
            "list-open-positions" => all_pages(|c| mt5.list_open_positions(&src, &logins, c)),
            "list-closed-positions" => {
                let since = req["since"].as_str().unwrap_or("1970-01-01T00:00:00Z");
                all_pages(|c| mt5.list_closed_positions(&src, &logins, since, c))
            }
            "push-balance-operation" => {
                let o = &req["op"];
                let text = |k: &str| match &o[k] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let kind = text("kind");
                let op = BalanceOperation {
                    login: text("login"),
                    amount: text("amount"),
                    kind: if kind.is_empty() {
                        "balance".into()
                    } else {
                        kind
                    },
                    comment: text("comment"),
                    idempotency_key: text("idempotencyKey"),
                };
                mt5.push_balance_operation(&src, &op)
                    .map(Value::String)
                    .map_err(code)
            }
            "describe-server" => mt5.describe_server().map_err(code),
            other => Err(("rejected", format!("{other} is not an operation of ABI 1"))),
        }
    })
    .map_err(|e| ("rejected", e))?
}
