//! The MetaTrader 5 connector: a `platform-connector` component that reaches an MT5 server
//! through its manager Web API (`/api/...` over HTTPS) with the tenant's manager credentials.
//!
//! The protocol is `mt5-webapi` (shared with the native MT5 connector); this crate gives it the
//! engine's outbound HTTP, WASI's clock and randomness, and the tenant's configuration, and
//! converts its records to the component's bindings.
//!
//! Configuration: `config.get()` gives `endpoint` (the Web API's base URL) and optional
//! settings; the secrets `login` and `password` are the manager account. See
//! `docs/mt5-connector.md`.

use std::sync::Mutex;

use lumire_plugin_sdk::connector::{
    self as wit, AccountPage, BalanceOperation, Connector, Error, PositionPage,
};
use lumire_plugin_sdk::{self as sdk, http_client};
use mt5_webapi::{HttpReply, Level, Mt5, Mt5Error, Source, Transport, TransportError, model};
use serde_json::{Value, json};

const NAME: &str = "mt5";

/// The engine's outbound HTTP, WASI's clock and randomness, the engine's log.
struct Host;

impl Transport for Host {
    fn get(
        &mut self,
        url: &str,
        cookie: Option<&str>,
        timeout_ms: u32,
    ) -> Result<HttpReply, TransportError> {
        // The engine sends a connector session's requests over one connection of its own; the
        // MT5 Web API asks for keep-alive on each ("Connection Maintenance").
        let mut req = http_client::request("GET", url)
            .header("accept", "application/json")
            .header("connection", "keep-alive")
            .timeout_ms(timeout_ms);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        match req.send() {
            Ok(r) => Ok(HttpReply {
                status: r.status,
                set_cookies: r
                    .headers
                    .iter()
                    .filter(|(k, _)| k == "set-cookie")
                    .map(|(_, v)| v.clone())
                    .collect(),
                body: r.body,
            }),
            Err(http_client::Error::Timeout) => Err(TransportError::Timeout),
            Err(http_client::Error::Failed(e)) => Err(TransportError::Failed(e)),
            Err(http_client::Error::Denied(e)) => Err(TransportError::Denied(e)),
            Err(http_client::Error::Invalid(e)) => Err(TransportError::Denied(e)),
        }
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn random16(&mut self) -> Option<[u8; 16]> {
        // WASI randomness: a predictable cli_rand would let a replaying impostor pass the check
        // of the server's answer, so there is no fallback.
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).ok().map(|_| b)
    }

    fn log(&mut self, level: Level, message: &str) {
        match level {
            Level::Info => sdk::log::info(message),
            Level::Warn => sdk::log::warn(message),
        }
    }
}

/// This call's configuration: the object `config.get()` gives, and the tenant's secrets.
struct Config(Value);

impl Source for Config {
    fn config(&self) -> &Value {
        &self.0
    }
    fn secret(&self, name: &str) -> Option<String> {
        sdk::config::secret(name)
    }
}

/// The connection one instance keeps between the calls of one engine operation (a sync run).
static STATE: Mutex<Option<Mt5<Host>>> = Mutex::new(None);

/// Runs `f` with this instance's connection to the configured server, made (or remade, when
/// the configuration changed) as needed.
fn with_mt5<R>(f: impl FnOnce(&mut Mt5<Host>, &Config) -> Result<R, Mt5Error>) -> Result<R, Error> {
    let src = Config(sdk::config::get());
    let settings = mt5_webapi::settings(&src).map_err(to_wit)?;
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let fingerprint = settings.fingerprint();
    if guard
        .as_ref()
        .is_none_or(|m| m.fingerprint() != fingerprint)
    {
        *guard = Some(Mt5::new(settings, Host));
    }
    let mt5 = guard
        .as_mut()
        .ok_or_else(|| Error::Unavailable("no connection state".into()))?;
    f(mt5, &src).map_err(to_wit)
}

fn to_wit(e: Mt5Error) -> Error {
    match e {
        Mt5Error::Unauthorized(m) => Error::Unauthorized(m),
        Mt5Error::Unavailable(m) => Error::Unavailable(m),
        Mt5Error::Rejected(m) => Error::Rejected(m),
        Mt5Error::NotFound(m) => {
            sdk::log::info(&m);
            Error::NotFound
        }
    }
}

fn account(a: model::Account) -> wit::Account {
    wit::Account {
        login: a.login,
        group: a.group,
        currency: a.currency,
        leverage: a.leverage,
        name: a.name,
    }
}

fn balance(b: model::Balance) -> wit::Balance {
    wit::Balance {
        login: b.login,
        currency: b.currency,
        balance: b.balance,
        credit: b.credit,
        equity: b.equity,
        margin: b.margin,
        free_margin: b.free_margin,
    }
}

fn position(p: model::Position) -> wit::Position {
    wit::Position {
        id: p.id,
        login: p.login,
        symbol: p.symbol,
        side: match p.side {
            model::Side::Buy => wit::Side::Buy,
            model::Side::Sell => wit::Side::Sell,
        },
        volume: p.volume,
        open_price: p.open_price,
        close_price: p.close_price,
        profit: p.profit,
        commission: p.commission,
        swap: p.swap,
        opened_at: p.opened_at,
        closed_at: p.closed_at,
    }
}

fn page(p: model::PositionPage) -> PositionPage {
    PositionPage {
        positions: p.positions.into_iter().map(position).collect(),
        next_cursor: p.next_cursor,
    }
}

struct Mt5Connector;

impl Connector for Mt5Connector {
    fn manifest() -> sdk::Manifest {
        sdk::manifest(NAME, env!("CARGO_PKG_VERSION"))
            .description("MetaTrader 5 through the manager Web API: accounts, balances, positions, deals and balance operations.")
            .capability(sdk::Capability::Config)
            .capability(sdk::Capability::HttpOutbound(Vec::new()))
            .config_schema(json!({
                "type": "object",
                "properties": {
                    "endpoint": {"type": "string", "description": "The Web API's base URL, https://host:port"},
                    "groups": {"type": "string", "description": "Group mask of the accounts to sync (default *)"},
                    "currency": {"type": "string", "description": "Deposit currency when the manager may not read group configurations"},
                    "timeout_ms": {"type": "integer", "description": "Per-request timeout (default 10000)"},
                    "retries": {"type": "integer", "description": "Further attempts after a transient failure (default 2)"},
                    "positions_batch": {"type": "integer", "description": "Logins per position/get_batch request (default 50)"},
                    "entry_lookback_days": {"type": "integer", "description": "How far before `since` deals are read to find a closed position's entry (default 30)"},
                    "dedupe_lookback_days": {"type": "integer", "description": "How far back a push looks for a deal carrying its key (default 90)"},
                    "page_budget_ms": {"type": "integer", "description": "Time after which a page of closed positions ends (default 2000)"}
                },
                "required": ["endpoint"]
            }))
            .build()
    }

    fn test_connection() -> Result<String, Error> {
        with_mt5(|m, _| m.test_connection())
    }

    fn list_accounts(cursor: Option<String>, limit: u32) -> Result<AccountPage, Error> {
        with_mt5(|m, src| m.list_accounts(src, cursor.as_deref(), limit))
            .map(|(accounts, next)| (accounts.into_iter().map(account).collect(), next))
    }

    fn get_balances(logins: Vec<String>) -> Result<Vec<wit::Balance>, Error> {
        with_mt5(|m, src| m.get_balances(src, &logins))
            .map(|b| b.into_iter().map(balance).collect())
    }

    fn list_open_positions(
        logins: Vec<String>,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        with_mt5(|m, src| m.list_open_positions(src, &logins, cursor.as_deref())).map(page)
    }

    fn list_closed_positions(
        logins: Vec<String>,
        since: String,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        with_mt5(|m, src| m.list_closed_positions(src, &logins, &since, cursor.as_deref()))
            .map(page)
    }

    fn push_balance_operation(op: BalanceOperation) -> Result<String, Error> {
        let op = model::BalanceOperation {
            login: op.login,
            amount: op.amount,
            kind: op.kind,
            comment: op.comment,
            idempotency_key: op.idempotency_key,
        };
        with_mt5(|m, src| m.push_balance_operation(src, &op))
    }

    fn describe_server() -> Result<Value, Error> {
        with_mt5(|m, _| m.describe_server())
    }
}

sdk::export_connector!(Mt5Connector);
