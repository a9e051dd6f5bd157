//! The MetaTrader 5 connector: a `platform-connector` component that reaches an MT5 server
//! through its manager Web API (`/api/...` over HTTPS) with the tenant's manager credentials.
//!
//! - [`auth`]: the handshake's hashes; [`client`]: the session, retcodes, timeouts, retries;
//! - [`wire`]: requests and answers; [`deals`]: closed positions and pushed operations from
//!   deals; [`dec`], [`time`]: exact decimals and times.
//!
//! Configuration: `config.get()` gives `endpoint` (the Web API's base URL) and optional
//! settings; the secrets `login` and `password` are the manager account. See
//! `docs/mt5-connector.md`.

mod auth;
mod client;
mod deals;
mod dec;
mod retcode;
mod time;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use lumire_plugin_sdk::connector::{
    AccountPage, Balance, BalanceOperation, Connector, Error, Position, PositionPage,
};
use lumire_plugin_sdk::{self as sdk, http_client};
use serde_json::{Value, json};

use client::{Client, HttpReply, Mt5Error, Settings, Transport, TransportError};
use dec::Dec;

const NAME: &str = "mt5";
/// The most logins one request names (they travel in the query string).
const LOGINS_PER_REQUEST: usize = 100;
/// MT5 answers at most 100 deals per `deal/get_page`.
const DEALS_PER_PAGE: usize = 100;
/// A page of closed positions is cut after this many (the engine asks for the rest).
const CLOSED_PAGE: usize = 500;

/// The engine's outbound HTTP, WASI's clock and randomness.
struct Host;

impl Transport for Host {
    fn get(
        &mut self,
        url: &str,
        cookie: Option<&str>,
        timeout_ms: u32,
    ) -> Result<HttpReply, TransportError> {
        let mut req = http_client::request("GET", url)
            .header("accept", "application/json")
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
}

/// What one instance keeps between the calls of one engine operation: the session, and what
/// it learnt about logins and groups.
struct State {
    fingerprint: String,
    client: Client<Host>,
    logins: Option<(String, Vec<u64>)>,
    groups_of: HashMap<u64, String>,
    currency_of: HashMap<String, String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// A setting from the configuration object, or else from a secret of the same name (tenants
/// can only give secrets through the integration's `credentials` today).
fn setting(config: &Value, name: &str) -> Option<String> {
    match &config[name] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => sdk::config::secret(name).filter(|s| !s.is_empty()),
    }
}

fn number<T: std::str::FromStr>(config: &Value, name: &str, default: T) -> Result<T, Mt5Error> {
    match setting(config, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| Mt5Error::Rejected(format!("setting {name}: {v} is not a number"))),
    }
}

/// The settings of this call's configuration.
fn settings() -> Result<(Settings, Value), Mt5Error> {
    let config = sdk::config::get();
    let endpoint = config["endpoint"]
        .as_str()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| e.starts_with("http://") || e.starts_with("https://"))
        .ok_or_else(|| {
            Mt5Error::Rejected(
                "the configuration has no http(s) endpoint for the MT5 Web API".into(),
            )
        })?;
    let (Some(login), Some(password)) = (
        sdk::config::secret("login").filter(|l| !l.trim().is_empty()),
        sdk::config::secret("password").filter(|p| !p.is_empty()),
    ) else {
        return Err(Mt5Error::Unauthorized(
            "the configuration's credentials need the manager's login and password".into(),
        ));
    };
    if !login.trim().bytes().all(|b| b.is_ascii_digit()) {
        return Err(Mt5Error::Rejected(format!(
            "credentials.login must be the manager's numeric login, not {login}"
        )));
    }
    let agent = setting(&config, "agent").unwrap_or_else(|| "LumireCRM".into());
    if agent.contains(char::is_whitespace) {
        return Err(Mt5Error::Rejected(
            "setting agent: MT5 refuses agent names with spaces".into(),
        ));
    }
    let s = Settings {
        endpoint,
        login: login.trim().to_string(),
        password,
        agent,
        version: setting(&config, "version").unwrap_or_else(|| "484".into()),
        timeout_ms: number(&config, "timeout_ms", 10_000u32)?.clamp(100, 120_000),
        retries: number(&config, "retries", 2u32)?.min(5),
        backoff_ms: number(&config, "backoff_ms", 250u64)?.min(5_000),
    };
    Ok((s, config))
}

/// Runs `f` with this instance's state for the configured server, made (or remade, when the
/// configuration changed) as needed.
fn with_state<R>(f: impl FnOnce(&mut State, &Value) -> Result<R, Mt5Error>) -> Result<R, Error> {
    let (settings, config) = settings().map_err(to_wit)?;
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let fingerprint = settings.fingerprint();
    if guard.as_ref().is_none_or(|s| s.fingerprint != fingerprint) {
        *guard = Some(State {
            fingerprint,
            client: Client::new(settings, Host),
            logins: None,
            groups_of: HashMap::new(),
            currency_of: HashMap::new(),
        });
    }
    let state = guard
        .as_mut()
        .ok_or_else(|| Error::Unavailable("no state".into()))?;
    f(state, &config).map_err(to_wit)
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

fn answer(v: &Value) -> &Value {
    &v["answer"]
}

fn list<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, Mt5Error> {
    answer(v)
        .as_array()
        .ok_or_else(|| Mt5Error::Rejected(format!("{what}: the answer is not a list")))
}

fn joined(logins: &[u64]) -> String {
    logins
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_logins(logins: &[String]) -> Result<Vec<u64>, Mt5Error> {
    logins
        .iter()
        .map(|l| {
            l.trim()
                .parse::<u64>()
                .map_err(|_| Mt5Error::Rejected(format!("{l} is not an MT5 login")))
        })
        .collect()
}

impl State {
    /// Every login in the configured groups (`groups`, default `*`), once per instance.
    fn all_logins(&mut self, config: &Value) -> Result<Vec<u64>, Mt5Error> {
        let groups = setting(config, "groups").unwrap_or_else(|| "*".into());
        if let Some((g, l)) = &self.logins
            && *g == groups
        {
            return Ok(l.clone());
        }
        let v = self
            .client
            .call("/api/user/logins", &[("group", groups.clone())])?;
        let logins = wire::logins(answer(&v)).map_err(Mt5Error::Rejected)?;
        self.logins = Some((groups, logins.clone()));
        Ok(logins)
    }

    /// The users of these logins (`user/get_batch`), remembering their groups.
    fn users(&mut self, logins: &[u64]) -> Result<Vec<Value>, Mt5Error> {
        let mut out = Vec::with_capacity(logins.len());
        for chunk in logins.chunks(LOGINS_PER_REQUEST) {
            let v = self
                .client
                .call("/api/user/get_batch", &[("login", joined(chunk))])?;
            for u in list(&v, "user/get_batch")? {
                if let (Some(l), Some(g)) = (wire::int(u, "Login"), wire::text(u, "Group")) {
                    self.groups_of.insert(l as u64, g);
                }
                out.push(u.clone());
            }
        }
        Ok(out)
    }

    /// The deposit currency of a group (`group/get`), or the `currency` setting when the
    /// manager may not read group configurations.
    fn currency(&mut self, group: &str, config: &Value) -> Result<String, Mt5Error> {
        if let Some(c) = self.currency_of.get(group) {
            return Ok(c.clone());
        }
        let currency = match self
            .client
            .call("/api/group/get", &[("group", group.into())])
        {
            Ok(v) => wire::text(answer(&v), "Currency").filter(|c| !c.is_empty()),
            Err(Mt5Error::Rejected(_) | Mt5Error::Unauthorized(_) | Mt5Error::NotFound(_))
                if setting(config, "currency").is_some() =>
            {
                None
            }
            Err(e) => return Err(e),
        }
        .or_else(|| setting(config, "currency"))
        .ok_or_else(|| {
            Mt5Error::Rejected(format!(
                "group {group} has no Currency (set the `currency` setting)"
            ))
        })?;
        self.currency_of.insert(group.to_string(), currency.clone());
        Ok(currency)
    }

    fn currency_of_login(&mut self, login: u64, config: &Value) -> Result<String, Mt5Error> {
        let group = self
            .groups_of
            .get(&login)
            .cloned()
            .ok_or_else(|| Mt5Error::NotFound(format!("user {login} is not on the server")))?;
        self.currency(&group, config)
    }

    /// Every deal of `login` between two times, page by page (`deal/get_page`, 100 a page).
    fn deals(&mut self, login: u64, from: i64, to: i64) -> Result<Vec<Value>, Mt5Error> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let v = self.client.call(
                "/api/deal/get_page",
                &[
                    ("login", login.to_string()),
                    ("from", from.max(0).to_string()),
                    ("to", to.to_string()),
                    ("offset", offset.to_string()),
                    ("total", DEALS_PER_PAGE.to_string()),
                ],
            )?;
            let page = list(&v, "deal/get_page")?;
            out.extend(page.iter().cloned());
            if page.len() < DEALS_PER_PAGE {
                return Ok(out);
            }
            offset += page.len();
        }
    }
}

struct Mt5;

impl Connector for Mt5 {
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
        with_state(|st, _| {
            // A real handshake every time: a test must prove the credentials, not a session.
            st.client.connect()?;
            st.client.call("/api/test/access", &[])?;
            let s = st.client.session().cloned().unwrap_or_default();
            Ok(format!(
                "connected to the MT5 Web API at {} as manager {} (access server build {}, trade server build {})",
                st.client.settings.endpoint,
                st.client.settings.login,
                s.version_access.as_deref().unwrap_or("?"),
                s.version_trade.as_deref().unwrap_or("?"),
            ))
        })
    }

    fn list_accounts(cursor: Option<String>, limit: u32) -> Result<AccountPage, Error> {
        with_state(|st, config| {
            let after: u64 = match cursor.as_deref() {
                None | Some("") => 0,
                Some(c) => c
                    .parse()
                    .map_err(|_| Mt5Error::Rejected(format!("cursor {c} is not a login")))?,
            };
            let limit = limit.clamp(1, 1_000) as usize;
            let all = st.all_logins(config)?;
            let start = all.partition_point(|l| *l <= after);
            let page: Vec<u64> = all[start..].iter().take(limit).copied().collect();
            let more = start + page.len() < all.len();
            let users = st.users(&page)?;
            let mut accounts = Vec::with_capacity(users.len());
            for u in &users {
                let group = wire::text(u, "Group").unwrap_or_default();
                let currency = st.currency(&group, config)?;
                accounts.push(wire::account(u, &currency).map_err(Mt5Error::Rejected)?);
            }
            let next = if more {
                page.last().map(u64::to_string)
            } else {
                None
            };
            Ok((accounts, next))
        })
    }

    fn get_balances(logins: Vec<String>) -> Result<Vec<Balance>, Error> {
        with_state(|st, config| {
            let logins = parse_logins(&logins)?;
            let unknown: Vec<u64> = logins
                .iter()
                .filter(|l| !st.groups_of.contains_key(l))
                .copied()
                .collect();
            if !unknown.is_empty() {
                st.users(&unknown)?;
            }
            let mut out = Vec::with_capacity(logins.len());
            for chunk in logins.chunks(LOGINS_PER_REQUEST) {
                let v = st
                    .client
                    .call("/api/user/account/get_batch", &[("login", joined(chunk))])?;
                for a in list(&v, "user/account/get_batch")? {
                    let login = wire::int(a, "Login").unwrap_or_default() as u64;
                    let currency = st.currency_of_login(login, config)?;
                    out.push(wire::balance(a, &currency).map_err(Mt5Error::Rejected)?);
                }
            }
            Ok(out)
        })
    }

    fn list_open_positions(
        logins: Vec<String>,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        with_state(|st, config| {
            let logins = parse_logins(&logins)?;
            let per: usize =
                number(config, "positions_batch", 50usize)?.clamp(1, LOGINS_PER_REQUEST);
            let chunk: usize = match cursor.as_deref() {
                None | Some("") => 0,
                Some(c) => c
                    .parse()
                    .map_err(|_| Mt5Error::Rejected(format!("cursor {c} is not a page")))?,
            };
            let chunks: Vec<&[u64]> = logins.chunks(per).collect();
            let Some(these) = chunks.get(chunk) else {
                return Ok(PositionPage {
                    positions: Vec::new(),
                    next_cursor: None,
                });
            };
            let v = st
                .client
                .call("/api/position/get_batch", &[("login", joined(these))])?;
            let positions = list(&v, "position/get_batch")?
                .iter()
                .map(wire::open_position)
                .collect::<Result<Vec<Position>, String>>()
                .map_err(Mt5Error::Rejected)?;
            Ok(PositionPage {
                positions,
                next_cursor: (chunk + 1 < chunks.len()).then(|| (chunk + 1).to_string()),
            })
        })
    }

    fn list_closed_positions(
        logins: Vec<String>,
        since: String,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error> {
        with_state(|st, config| {
            let logins = parse_logins(&logins)?;
            let since = time::parse_rfc3339(&since).ok_or_else(|| {
                Mt5Error::Rejected(format!("since {since} is not an RFC 3339 time"))
            })?;
            let lookback: i64 = number(config, "entry_lookback_days", 30i64)?.clamp(0, 3_650);
            let mut index: usize = match cursor.as_deref() {
                None | Some("") => 0,
                Some(c) => c
                    .parse()
                    .map_err(|_| Mt5Error::Rejected(format!("cursor {c} is not a page")))?,
            };
            let from = since.saturating_sub(lookback * 86_400);
            // Deals stamped up to a day ahead (server time zones) are still read.
            let to = time::now() + 86_400;
            // A page ends after 500 positions or once the time budget is spent (always after
            // one login at least), so a call stays well within the engine's deadline.
            let budget = std::time::Duration::from_millis(
                number(config, "page_budget_ms", 2_000u64)?.clamp(100, 60_000),
            );
            let started = std::time::Instant::now();
            let first = index;
            let mut positions = Vec::new();
            while index < logins.len()
                && positions.len() < CLOSED_PAGE
                && (index == first || started.elapsed() < budget)
            {
                let login = logins[index];
                let deals = st.deals(login, from, to)?;
                let mut closed = deals::closed_positions(&deals, since, &HashSet::new())
                    .map_err(Mt5Error::Rejected)?;
                // Exits of positions whose entry is older than the window may be partial
                // closes: keep only those the platform no longer holds open.
                let entries: HashSet<i64> = deals
                    .iter()
                    .filter(|d| wire::int(d, "Entry") == Some(0))
                    .filter_map(|d| wire::int(d, "PositionID"))
                    .collect();
                if closed
                    .iter()
                    .any(|p| !entries.contains(&p.id.parse::<i64>().unwrap_or_default()))
                {
                    let v = st
                        .client
                        .call("/api/position/get_batch", &[("login", login.to_string())])?;
                    let open: HashSet<i64> = list(&v, "position/get_batch")?
                        .iter()
                        .filter_map(|p| wire::int(p, "Position"))
                        .collect();
                    closed = deals::closed_positions(&deals, since, &open)
                        .map_err(Mt5Error::Rejected)?;
                }
                positions.extend(closed);
                index += 1;
            }
            Ok(PositionPage {
                positions,
                next_cursor: (index < logins.len()).then(|| index.to_string()),
            })
        })
    }

    fn push_balance_operation(op: BalanceOperation) -> Result<String, Error> {
        with_state(|st, config| push(st, config, &op))
    }

    fn describe_server() -> Result<Value, Error> {
        with_state(|st, _| {
            if st.client.session().is_none() {
                st.client.connect()?;
            }
            let s = st.client.session().cloned().unwrap_or_default();
            Ok(json!({
                "endpoint": st.client.settings.endpoint,
                "manager": st.client.settings.login,
                "versionAccess": s.version_access,
                "versionTrade": s.version_trade,
            }))
        })
    }
}

/// A balance operation exactly once per idempotency key: look for a deal carrying the key's
/// comment first; push only when there is none; after a failure that may have gone through
/// (a timeout), look again before trying again.
fn push(st: &mut State, config: &Value, op: &BalanceOperation) -> Result<String, Mt5Error> {
    let login: u64 = op
        .login
        .trim()
        .parse()
        .map_err(|_| Mt5Error::Rejected(format!("{} is not an MT5 login", op.login)))?;
    let action = match op.kind.as_str() {
        "balance" | "deposit" | "withdrawal" => deals::DEAL_BALANCE,
        "credit" | "credit_in" | "credit_out" => deals::DEAL_CREDIT,
        other => {
            return Err(Mt5Error::Rejected(format!(
                "kind {other}: MT5 balance operations are `balance` (type 2) or `credit` (type 3)"
            )));
        }
    };
    let amount = Dec::parse(&op.amount)
        .filter(|a| !a.is_zero())
        .ok_or_else(|| {
            Mt5Error::Rejected(format!("amount {} is not a non-zero decimal", op.amount))
        })?;
    if op.idempotency_key.trim().is_empty() {
        return Err(Mt5Error::Rejected(
            "a balance operation needs an idempotency key".into(),
        ));
    }
    let comment = deals::comment_for(&op.idempotency_key);
    let lookback: i64 = number(config, "dedupe_lookback_days", 90i64)?.clamp(1, 3_650);
    let retries = st.client.settings.retries;
    let mut attempt = 0;
    loop {
        let now = time::now();
        let earlier = st.deals(login, now - lookback * 86_400, now + 86_400)?;
        if let Some(ticket) = deals::find_pushed(&earlier, login as i64, action, &comment) {
            sdk::log::info(&format!(
                "balance operation {} already on MT5 as deal {ticket}",
                op.idempotency_key
            ));
            return Ok(ticket);
        }
        let result = st.client.call_once(
            "/api/trade/balance",
            &[
                ("login", login.to_string()),
                ("type", action.to_string()),
                ("balance", amount.to_string()),
                ("comment", comment.clone()),
            ],
        );
        match result {
            Ok(v) => {
                return wire::text(answer(&v), "Ticket").ok_or_else(|| {
                    Mt5Error::Rejected("trade/balance: the answer has no Ticket".into())
                });
            }
            Err(e) if e.is_transient() && attempt < retries => {
                sdk::log::warn(&format!(
                    "balance operation {}: {}; looking for it before trying again",
                    op.idempotency_key,
                    e.message()
                ));
                st.client.pause(attempt);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

sdk::export_connector!(Mt5);
