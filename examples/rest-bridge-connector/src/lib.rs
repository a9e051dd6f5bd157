//! A connector for a trading platform reached through a JSON REST bridge (the kind many brokers
//! run in front of an in-house or white-label platform), written only against the SDK. The
//! engine registers it as the platform `rest-bridge`; a tenant configures the bridge's base URL
//! as the endpoint and its API key as the credential `apiKey`.
//!
//! The bridge's API, as this connector uses it (every answer JSON, errors as
//! `{"error": "..."}` with a 4xx/5xx status):
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /ping` | `{"server": "..."}` |
//! | `GET /accounts?cursor=&limit=` | `{"accounts": [{login, group, currency, leverage, name}], "next": cursor or null}` |
//! | `GET /balances?logins=1,2` | `[{login, currency, balance, credit, equity, margin, freeMargin}]` |
//! | `GET /positions?logins=1,2&state=open` or `&state=closed&since=RFC3339`, `&cursor=` | `{"positions": [...], "next": cursor or null}` |
//! | `GET /operations?key=K` | `{"id": "..."}` or 404 |
//! | `POST /operations {login, amount, kind, comment, key}` | `{"id": "..."}` |

use lumire_plugin_sdk::connector::{
    Account, AccountPage, Balance, BalanceOperation, Connector, Error, Position, PositionPage, Side,
};
use lumire_plugin_sdk::{self as sdk, config, http_client, manifest};
use serde_json::{Value, json};

struct RestBridge;

fn endpoint() -> Result<String, Error> {
    config::get()["endpoint"]
        .as_str()
        .map(|s| s.trim_end_matches('/').to_string())
        .ok_or_else(|| Error::Unauthorized("no endpoint configured".into()))
}

/// One request to the bridge; the API key goes in `X-Api-Key`.
fn call(method: &str, path: &str, body: Option<&Value>) -> Result<Option<Value>, Error> {
    let key = config::secret("apiKey").ok_or_else(|| Error::Unauthorized("no apiKey".into()))?;
    let mut req = http_client::request(method, &format!("{}{path}", endpoint()?))
        .header("x-api-key", &key)
        .timeout_ms(5000);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req
        .send()
        .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
    let parsed: Value = resp.json().unwrap_or(Value::Null);
    let message = || parsed["error"].as_str().unwrap_or("no detail").to_string();
    match resp.status {
        200..=299 => Ok(Some(parsed)),
        404 => Ok(None),
        401 | 403 => Err(Error::Unauthorized(message())),
        400..=499 => Err(Error::Rejected(format!("{}: {}", resp.status, message()))),
        _ => Err(Error::Unavailable(format!(
            "{}: {}",
            resp.status,
            message()
        ))),
    }
}

fn get(path: &str) -> Result<Value, Error> {
    call("GET", path, None)?.ok_or(Error::NotFound)
}

fn text(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn position(p: &Value) -> Position {
    let opt = |k: &str| p[k].as_str().map(str::to_string);
    Position {
        id: text(p, "id"),
        login: text(p, "login"),
        symbol: text(p, "symbol"),
        side: if p["side"] == "sell" {
            Side::Sell
        } else {
            Side::Buy
        },
        volume: text(p, "volume"),
        open_price: text(p, "openPrice"),
        close_price: opt("closePrice"),
        profit: text(p, "profit"),
        commission: text(p, "commission"),
        swap: text(p, "swap"),
        opened_at: text(p, "openedAt"),
        closed_at: opt("closedAt"),
    }
}

fn positions(query: String) -> Result<PositionPage, Error> {
    let v = get(&format!("/positions?{query}"))?;
    Ok(PositionPage {
        positions: v["positions"]
            .as_array()
            .map(|a| a.iter().map(position).collect())
            .unwrap_or_default(),
        next_cursor: v["next"].as_str().map(str::to_string),
    })
}

fn cursor_param(cursor: &Option<String>) -> String {
    cursor
        .as_deref()
        .map(|c| format!("&cursor={c}"))
        .unwrap_or_default()
}

impl Connector for RestBridge {
    fn manifest() -> sdk::Manifest {
        manifest("rest-bridge", env!("CARGO_PKG_VERSION"))
            .description("REST bridge connector (example)")
            .build()
    }

    fn test_connection() -> Result<String, Error> {
        let v = get("/ping")?;
        Ok(format!("connected to {}", text(&v, "server")))
    }

    fn list_accounts(cursor: Option<String>, limit: u32) -> Result<AccountPage, Error> {
        let v = get(&format!("/accounts?limit={limit}{}", cursor_param(&cursor)))?;
        let accounts = v["accounts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| Account {
                        login: text(x, "login"),
                        group: text(x, "group"),
                        currency: text(x, "currency"),
                        leverage: x["leverage"].as_u64().unwrap_or(100) as u32,
                        name: text(x, "name"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((accounts, v["next"].as_str().map(str::to_string)))
    }

    fn get_balances(logins: Vec<String>) -> Result<Vec<Balance>, Error> {
        let v = get(&format!("/balances?logins={}", logins.join(",")))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|b| Balance {
                        login: text(b, "login"),
                        currency: text(b, "currency"),
                        balance: text(b, "balance"),
                        credit: text(b, "credit"),
                        equity: text(b, "equity"),
                        margin: text(b, "margin"),
                        free_margin: text(b, "freeMargin"),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn list_open_positions(
        logins: Vec<String>,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        positions(format!(
            "logins={}&state=open{}",
            logins.join(","),
            cursor_param(&cursor)
        ))
    }

    fn list_closed_positions(
        logins: Vec<String>,
        since: String,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        positions(format!(
            "logins={}&state=closed&since={since}{}",
            logins.join(","),
            cursor_param(&cursor)
        ))
    }

    /// Looks for an operation with the idempotency key first: a retried push finds it and
    /// moves nothing.
    fn push_balance_operation(op: BalanceOperation) -> Result<String, Error> {
        if let Some(v) = call(
            "GET",
            &format!("/operations?key={}", op.idempotency_key),
            None,
        )? {
            return Ok(text(&v, "id"));
        }
        let body = json!({
            "login": op.login, "amount": op.amount, "kind": op.kind,
            "comment": op.comment, "key": op.idempotency_key,
        });
        let v = call("POST", "/operations", Some(&body))?.ok_or(Error::NotFound)?;
        Ok(text(&v, "id"))
    }
}

sdk::export_connector!(RestBridge);
