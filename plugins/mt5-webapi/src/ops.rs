//! The connector's operations over one MT5 server: what the WebAssembly component and the
//! native connector both expose, written once over a [`Transport`] and a [`Source`] of
//! configuration.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::client::{Client, Level, Mt5Error, Settings, Transport};
use crate::dec::Dec;
use crate::model::{Account, Balance, BalanceOperation, Position, PositionPage};
use crate::{deals, time, wire};

/// The most logins one request names (they travel in the query string).
const LOGINS_PER_REQUEST: usize = 100;
/// MT5 answers at most 100 deals per `deal/get_page`.
const DEALS_PER_PAGE: usize = 100;
/// A page of closed positions is cut after this many (the caller asks for the rest).
const CLOSED_PAGE: usize = 500;

/// Where a call's configuration comes from: the configuration object (`endpoint` and
/// settings) and the tenant's secrets (`login`, `password`, and settings given as secrets).
pub trait Source {
    fn config(&self) -> &Value;
    fn secret(&self, name: &str) -> Option<String>;

    /// A setting from the configuration object, or else from a secret of the same name
    /// (tenants give settings through the integration's `credentials` today).
    fn setting(&self, name: &str) -> Option<String> {
        match &self.config()[name] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => self.secret(name).filter(|s| !s.is_empty()),
        }
    }

    /// A numeric setting, `default` when absent; a setting that is not a number is refused.
    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Mt5Error>
    where
        Self: Sized,
    {
        match self.setting(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| Mt5Error::Rejected(format!("setting {name}: {v} is not a number"))),
        }
    }
}

/// The server, manager and tunables a source describes, checked.
pub fn settings(src: &impl Source) -> Result<Settings, Mt5Error> {
    let endpoint = src.config()["endpoint"]
        .as_str()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| e.starts_with("http://") || e.starts_with("https://"))
        .ok_or_else(|| {
            Mt5Error::Rejected(
                "the configuration has no http(s) endpoint for the MT5 Web API".into(),
            )
        })?;
    let (Some(login), Some(password)) = (
        src.secret("login").filter(|l| !l.trim().is_empty()),
        src.secret("password").filter(|p| !p.is_empty()),
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
    let agent = src.setting("agent").unwrap_or_else(|| "LumireCRM".into());
    if agent.contains(char::is_whitespace) {
        return Err(Mt5Error::Rejected(
            "setting agent: MT5 refuses agent names with spaces".into(),
        ));
    }
    Ok(Settings {
        endpoint,
        login: login.trim().to_string(),
        password,
        agent,
        version: src.setting("version").unwrap_or_else(|| "484".into()),
        timeout_ms: src.number("timeout_ms", 10_000u32)?.clamp(100, 120_000),
        retries: src.number("retries", 2u32)?.min(5),
        backoff_ms: src.number("backoff_ms", 250u64)?.min(5_000),
    })
}

/// A connection to one MT5 server with one manager account: the session, and what it learnt
/// about logins, groups and currencies.
pub struct Mt5<T: Transport> {
    fingerprint: String,
    pub client: Client<T>,
    /// Seconds the trade server's clock is ahead of UTC, once known.
    server_offset: Option<i64>,
    logins: Option<(String, Vec<u64>)>,
    groups_of: HashMap<u64, String>,
    currency_of: HashMap<String, String>,
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

fn page_number(cursor: Option<&str>) -> Result<usize, Mt5Error> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| Mt5Error::Rejected(format!("cursor {c} is not a page"))),
    }
}

impl<T: Transport> Mt5<T> {
    pub fn new(settings: Settings, transport: T) -> Mt5<T> {
        Mt5 {
            fingerprint: settings.fingerprint(),
            client: Client::new(settings, transport),
            server_offset: None,
            logins: None,
            groups_of: HashMap::new(),
            currency_of: HashMap::new(),
        }
    }

    /// The server and credentials this connection was made for.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Every login in the configured groups (`groups`, default `*`). Read from the server at
    /// the start of a listing (`refresh`), remembered for its further pages.
    fn all_logins(&mut self, src: &impl Source, refresh: bool) -> Result<Vec<u64>, Mt5Error> {
        let groups = src.setting("groups").unwrap_or_else(|| "*".into());
        if !refresh
            && let Some((g, l)) = &self.logins
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
    fn currency(&mut self, group: &str, src: &impl Source) -> Result<String, Mt5Error> {
        if let Some(c) = self.currency_of.get(group) {
            return Ok(c.clone());
        }
        let currency = match self
            .client
            .call("/api/group/get", &[("group", group.into())])
        {
            Ok(v) => wire::text(answer(&v), "Currency").filter(|c| !c.is_empty()),
            Err(Mt5Error::Rejected(_) | Mt5Error::Unauthorized(_) | Mt5Error::NotFound(_))
                if src.setting("currency").is_some() =>
            {
                None
            }
            Err(e) => return Err(e),
        }
        .or_else(|| src.setting("currency"))
        .ok_or_else(|| {
            Mt5Error::Rejected(format!(
                "group {group} has no Currency (set the `currency` setting)"
            ))
        })?;
        self.currency_of.insert(group.to_string(), currency.clone());
        Ok(currency)
    }

    fn currency_of_login(&mut self, login: u64, src: &impl Source) -> Result<String, Mt5Error> {
        let group = self
            .groups_of
            .get(&login)
            .cloned()
            .ok_or_else(|| Mt5Error::NotFound(format!("user {login} is not on the server")))?;
        self.currency(&group, src)
    }

    /// Seconds the trade server's local time is ahead of UTC: MT5 stamps deals and positions in
    /// the server's time zone. The `server_time_offset_minutes` setting when given, otherwise
    /// the server's time configuration (`time/get`: `TimeZone` in minutes east of GMT, plus an
    /// hour while `DaylightState` is on); a manager without the right to read it gets UTC and a
    /// warning in the log naming the setting.
    pub fn server_offset(&mut self, src: &impl Source) -> Result<i64, Mt5Error> {
        if let Some(o) = self.server_offset {
            return Ok(o);
        }
        const MAX_MINUTES: i64 = 14 * 60;
        let minutes = match src.setting("server_time_offset_minutes") {
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|m| m.abs() <= MAX_MINUTES)
                .ok_or_else(|| {
                    Mt5Error::Rejected(format!(
                        "setting server_time_offset_minutes: {v} is not a number of minutes between -840 and 840"
                    ))
                })?,
            None => match self.client.call("/api/time/get", &[]) {
                Ok(v) => {
                    let a = answer(&v);
                    let zone = wire::int(a, "TimeZone")
                        .filter(|m| m.abs() <= MAX_MINUTES)
                        .ok_or_else(|| {
                            Mt5Error::Rejected(format!(
                                "time/get: TimeZone {} is not minutes east of GMT; set server_time_offset_minutes",
                                a["TimeZone"]
                            ))
                        })?;
                    let daylight = wire::int(a, "DaylightState").unwrap_or(0) != 0;
                    zone + if daylight { 60 } else { 0 }
                }
                Err(Mt5Error::Rejected(m) | Mt5Error::NotFound(m)) => {
                    self.client.log(
                        Level::Warn,
                        &format!(
                            "{m}: the server's time zone is unknown, times are read as UTC; set server_time_offset_minutes"
                        ),
                    );
                    0
                }
                Err(e) => return Err(e),
            },
        };
        self.server_offset = Some(minutes * 60);
        Ok(minutes * 60)
    }

    /// Every deal of `login` between two UTC times, page by page (`deal/get_page`, 100 a
    /// page); the window is asked in the server's time.
    fn deals(
        &mut self,
        src: &impl Source,
        login: u64,
        from: i64,
        to: i64,
    ) -> Result<Vec<Value>, Mt5Error> {
        let shift = self.server_offset(src)?;
        let (from, to) = (from + shift, to + shift);
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

    /// A fresh handshake and an access check: a test must prove the credentials, not reuse a
    /// session.
    pub fn test_connection(&mut self) -> Result<String, Mt5Error> {
        self.client.connect()?;
        self.client.call("/api/test/access", &[])?;
        let s = self.client.session().cloned().unwrap_or_default();
        Ok(format!(
            "connected to the MT5 Web API at {} as manager {} (access server build {}, trade server build {})",
            self.client.settings.endpoint,
            self.client.settings.login,
            s.version_access.as_deref().unwrap_or("?"),
            s.version_trade.as_deref().unwrap_or("?"),
        ))
    }

    /// A page of accounts in login order after `cursor` (a login), at most `limit`.
    pub fn list_accounts(
        &mut self,
        src: &impl Source,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Account>, Option<String>), Mt5Error> {
        let after: u64 = match cursor {
            None | Some("") => 0,
            Some(c) => c
                .parse()
                .map_err(|_| Mt5Error::Rejected(format!("cursor {c} is not a login")))?,
        };
        let limit = limit.clamp(1, 1_000) as usize;
        let all = self.all_logins(src, after == 0)?;
        let start = all.partition_point(|l| *l <= after);
        let page: Vec<u64> = all[start..].iter().take(limit).copied().collect();
        let more = start + page.len() < all.len();
        let users = self.users(&page)?;
        let mut accounts = Vec::with_capacity(users.len());
        for u in &users {
            let group = wire::text(u, "Group").unwrap_or_default();
            let currency = self.currency(&group, src)?;
            accounts.push(wire::account(u, &currency).map_err(Mt5Error::Rejected)?);
        }
        let next = if more {
            page.last().map(u64::to_string)
        } else {
            None
        };
        Ok((accounts, next))
    }

    /// Balance, credit, equity and margin of these logins.
    pub fn get_balances(
        &mut self,
        src: &impl Source,
        logins: &[String],
    ) -> Result<Vec<Balance>, Mt5Error> {
        let logins = parse_logins(logins)?;
        let unknown: Vec<u64> = logins
            .iter()
            .filter(|l| !self.groups_of.contains_key(l))
            .copied()
            .collect();
        if !unknown.is_empty() {
            self.users(&unknown)?;
        }
        let mut out = Vec::with_capacity(logins.len());
        let mut answered = HashSet::new();
        for chunk in logins.chunks(LOGINS_PER_REQUEST) {
            let v = self
                .client
                .call("/api/user/account/get_batch", &[("login", joined(chunk))])?;
            for a in list(&v, "user/account/get_batch")? {
                let login = wire::int(a, "Login").unwrap_or_default() as u64;
                let currency = self.currency_of_login(login, src)?;
                out.push(wire::balance(a, &currency).map_err(Mt5Error::Rejected)?);
                answered.insert(login);
            }
        }
        // `user/account/get_batch` answers only accounts traded since the server started; the
        // others' balance and credit are on their user records.
        let idle: Vec<u64> = logins
            .iter()
            .filter(|l| !answered.contains(l))
            .copied()
            .collect();
        if !idle.is_empty() {
            for u in self.users(&idle)? {
                let login = wire::int(&u, "Login").unwrap_or_default() as u64;
                let currency = self.currency_of_login(login, src)?;
                out.push(wire::idle_balance(&u, &currency).map_err(Mt5Error::Rejected)?);
            }
        }
        Ok(out)
    }

    /// Open positions of these logins, one batch of logins (`positions_batch`) per page.
    pub fn list_open_positions(
        &mut self,
        src: &impl Source,
        logins: &[String],
        cursor: Option<&str>,
    ) -> Result<PositionPage, Mt5Error> {
        let logins = parse_logins(logins)?;
        let per: usize = src
            .number("positions_batch", 50usize)?
            .clamp(1, LOGINS_PER_REQUEST);
        let chunk = page_number(cursor)?;
        let chunks: Vec<&[u64]> = logins.chunks(per).collect();
        let Some(these) = chunks.get(chunk) else {
            return Ok(PositionPage {
                positions: Vec::new(),
                next_cursor: None,
            });
        };
        let shift = self.server_offset(src)?;
        let v = self
            .client
            .call("/api/position/get_batch", &[("login", joined(these))])?;
        let positions = list(&v, "position/get_batch")?
            .iter()
            .map(|p| wire::open_position(p, shift))
            .collect::<Result<Vec<Position>, String>>()
            .map_err(Mt5Error::Rejected)?;
        Ok(PositionPage {
            positions,
            next_cursor: (chunk + 1 < chunks.len()).then(|| (chunk + 1).to_string()),
        })
    }

    /// Positions of these logins closed since `since` (RFC 3339), rebuilt from their deals.
    pub fn list_closed_positions(
        &mut self,
        src: &impl Source,
        logins: &[String],
        since: &str,
        cursor: Option<&str>,
    ) -> Result<PositionPage, Mt5Error> {
        let logins = parse_logins(logins)?;
        let since = time::parse_rfc3339(since)
            .ok_or_else(|| Mt5Error::Rejected(format!("since {since} is not an RFC 3339 time")))?;
        let lookback: i64 = src.number("entry_lookback_days", 30i64)?.clamp(0, 3_650);
        let mut index = page_number(cursor)?;
        let from = since.saturating_sub(lookback * 86_400);
        // An hour ahead: clocks disagree (the window is asked in the server's time).
        let to = time::now() + 3_600;
        // A page ends after 500 positions or once the time budget is spent (always after one
        // login at least), so a call stays well within the engine's deadline.
        let budget = std::time::Duration::from_millis(
            src.number("page_budget_ms", 2_000u64)?.clamp(100, 60_000),
        );
        let started = std::time::Instant::now();
        let first = index;
        let mut positions = Vec::new();
        while index < logins.len()
            && positions.len() < CLOSED_PAGE
            && (index == first || started.elapsed() < budget)
        {
            let login = logins[index];
            let deals = self.deals(src, login, from, to)?;
            let shift = self.server_offset(src)?;
            let mut closed = deals::closed_positions(&deals, since, &HashSet::new(), shift)
                .map_err(Mt5Error::Rejected)?;
            // Exits of positions whose entry is older than the window may be partial closes:
            // keep only those the platform no longer holds open.
            let entries: HashSet<i64> = deals
                .iter()
                .filter(|d| matches!(wire::int(d, "Entry"), Some(0 | 2)))
                .filter_map(|d| wire::int(d, "PositionID"))
                .collect();
            let position_of = |id: &str| -> i64 {
                id.split('-')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_default()
            };
            if closed
                .iter()
                .any(|p| !entries.contains(&position_of(&p.id)))
            {
                let v = self
                    .client
                    .call("/api/position/get_batch", &[("login", login.to_string())])?;
                let open: HashSet<i64> = list(&v, "position/get_batch")?
                    .iter()
                    .filter_map(|p| wire::int(p, "Position"))
                    .collect();
                closed = deals::closed_positions(&deals, since, &open, shift)
                    .map_err(Mt5Error::Rejected)?;
            }
            positions.extend(closed);
            index += 1;
        }
        Ok(PositionPage {
            positions,
            next_cursor: (index < logins.len()).then(|| index.to_string()),
        })
    }

    /// A balance operation exactly once per idempotency key: look for a deal carrying the
    /// key's comment first; push only when there is none; after a failure that may have gone
    /// through (a timeout), look again before trying again. The platform's deal ticket.
    pub fn push_balance_operation(
        &mut self,
        src: &impl Source,
        op: &BalanceOperation,
    ) -> Result<String, Mt5Error> {
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
        let lookback: i64 = src.number("dedupe_lookback_days", 90i64)?.clamp(1, 3_650);
        let retries = self.client.settings.retries;
        let mut attempt = 0;
        loop {
            let now = time::now();
            let earlier = self.deals(src, login, now - lookback * 86_400, now + 86_400)?;
            if let Some(ticket) = deals::find_pushed(&earlier, login as i64, action, &comment) {
                self.client.log(
                    Level::Info,
                    &format!(
                        "balance operation {} already on MT5 as deal {ticket}",
                        op.idempotency_key
                    ),
                );
                return Ok(ticket);
            }
            let result = self.client.call_once(
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
                    self.client.log(
                        Level::Warn,
                        &format!(
                            "balance operation {}: {}; looking for it before trying again",
                            op.idempotency_key,
                            e.message()
                        ),
                    );
                    self.client.pause(attempt);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's endpoint, the manager, and the builds the handshake reported.
    pub fn describe_server(&mut self) -> Result<Value, Mt5Error> {
        if self.client.session().is_none() {
            self.client.connect()?;
        }
        let s = self.client.session().cloned().unwrap_or_default();
        Ok(json!({
            "endpoint": self.client.settings.endpoint,
            "manager": self.client.settings.login,
            "versionAccess": s.version_access,
            "versionTrade": s.version_trade,
        }))
    }
}
