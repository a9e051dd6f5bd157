//! An MT5 manager Web API simulator for tests and benchmarks: an axum server on 127.0.0.1:0
//! that speaks the protocol the MT5 connector speaks, holding accounts, positions and deals the
//! test sets up, with failures the test injects.
//!
//! What it implements, as the MT5 Web API documentation describes it:
//! - `GET /api/auth/start?version=&agent=&login=&type=manager` → `{"retcode": "0 Done",
//!   "version_access", "srv_rand"}` (16 random bytes in hex; `version` must be at least 484,
//!   `agent` non-empty without spaces, `type` `manager`);
//! - `GET /api/auth/answer?srv_rand_answer=&cli_rand=`: the answer must be
//!   `hex(MD5(password_hash ‖ srv_rand))` with `password_hash = MD5(MD5(UTF-16LE(password)) ‖
//!   "WebAPI")`, within 10 seconds of the start, once; the server answers `cli_rand_answer =
//!   hex(MD5(password_hash ‖ cli_rand))`. A wrong answer gets `1001 Invalid account`.
//! - `/api/test/access`, `/api/quit`, `/api/user/logins`, `/api/user/get_batch`,
//!   `/api/user/account/get_batch`, `/api/group/get`, `/api/position/get_batch`,
//!   `/api/position/get_page`, `/api/deal/get_page`, `/api/deal/get_batch`, `/api/trade/balance`
//!   (types 2 balance and 3 credit; a withdrawal beyond the balance or the credit is `10019 Not
//!   enough money`, more than 1,000,000,000 at once `4005`, another type `3`, comments cut to 31
//!   characters). Every answer carries `retcode`; numbers are sent as strings, as in the
//!   documentation's examples. Pages hold at most 100 items (`3 Invalid parameters` beyond).
//!
//! Sessions: the real server ties an authenticated session to the keep-alive connection. The
//! simulator does that too (by the client's address and port), and also sets a cookie
//! `mt5sim_session` at `auth/start` that identifies the session when a request comes over
//! another connection ([`SimState::cookie_sessions`], on by default; off, only the connection
//! counts). A request without a session gets HTTP 403 with `8 Not enough permissions`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// `MD5(MD5(UTF-16LE(password)) ‖ "WebAPI")`.
pub fn password_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut h = Md5::new();
    h.update(Md5::digest(&utf16));
    h.update(b"WebAPI");
    h.finalize().into()
}

fn answer_to(hash: &[u8; 16], random: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(hash);
    h.update(random);
    hex::encode(h.finalize())
}

#[derive(Clone, Debug)]
pub struct SimUser {
    pub login: u64,
    pub group: String,
    pub first_name: String,
    pub last_name: String,
    pub leverage: u32,
    pub balance: Decimal,
    pub credit: Decimal,
    pub margin: Decimal,
}

#[derive(Clone, Debug)]
pub struct SimPosition {
    pub ticket: u64,
    pub login: u64,
    pub symbol: String,
    /// 0 buy, 1 sell.
    pub action: u8,
    /// In 1/10000 lot.
    pub volume: u64,
    pub price_open: Decimal,
    pub price_current: Decimal,
    pub profit: Decimal,
    pub storage: Decimal,
    pub time_create: i64,
}

#[derive(Clone, Debug)]
pub struct SimDeal {
    pub deal: u64,
    pub login: u64,
    /// EnDealAction: 0 buy, 1 sell, 2 balance, 3 credit, ...
    pub action: u8,
    /// EnEntryFlags: 0 in, 1 out, 2 in/out, 3 out by.
    pub entry: u8,
    pub time: i64,
    pub symbol: String,
    pub volume: u64,
    pub price: Decimal,
    pub price_position: Decimal,
    pub profit: Decimal,
    pub commission: Decimal,
    pub storage: Decimal,
    pub position_id: u64,
    pub comment: String,
}

/// A failure to inject on requests whose path starts with `path`, `times` times.
#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    /// Answer with this retcode instead (HTTP 200), before doing anything.
    pub retcode: Option<String>,
    /// Answer with this HTTP status and no MT5 body, before doing anything.
    pub http_status: Option<u16>,
    /// Do the work, then wait this long before answering (an answer lost to a timeout).
    pub delay: Option<Duration>,
    pub times: usize,
}

struct Pending {
    srv_rand: [u8; 16],
    at: Instant,
    cookie: String,
}

pub struct SimState {
    pub manager_login: u64,
    pub password: String,
    pub users: BTreeMap<u64, SimUser>,
    /// Group name → deposit currency.
    pub groups: HashMap<String, String>,
    pub positions: BTreeMap<u64, Vec<SimPosition>>,
    pub deals: BTreeMap<u64, Vec<SimDeal>>,
    pub next_ticket: u64,
    /// Whether the session cookie identifies a session on another connection.
    pub cookie_sessions: bool,
    /// Answer the client's random with a wrong hash (an impostor that does not know the
    /// password).
    pub wrong_server_answer: bool,
    pub faults: Vec<Fault>,
    /// Requests per path.
    pub hits: HashMap<String, usize>,
    pending_by_conn: HashMap<SocketAddr, Pending>,
    pending_by_cookie: HashMap<String, [u8; 16]>,
    sessions_by_conn: HashSet<SocketAddr>,
    sessions_by_cookie: HashSet<String>,
    connections: HashSet<SocketAddr>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn money(d: &Decimal) -> String {
    format!("{:.2}", d)
}

impl SimState {
    fn new(manager_login: u64, password: &str) -> SimState {
        SimState {
            manager_login,
            password: password.to_string(),
            users: BTreeMap::new(),
            groups: HashMap::new(),
            positions: BTreeMap::new(),
            deals: BTreeMap::new(),
            next_ticket: 100_000,
            cookie_sessions: true,
            wrong_server_answer: false,
            faults: Vec::new(),
            hits: HashMap::new(),
            pending_by_conn: HashMap::new(),
            pending_by_cookie: HashMap::new(),
            sessions_by_conn: HashSet::new(),
            sessions_by_cookie: HashSet::new(),
            connections: HashSet::new(),
        }
    }

    pub fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    pub fn add_group(&mut self, group: &str, currency: &str) {
        self.groups.insert(group.into(), currency.into());
    }

    /// An account with its balance, credit and used margin.
    pub fn add_account(
        &mut self,
        login: u64,
        group: &str,
        name: &str,
        balance: &str,
        credit: &str,
        margin: &str,
    ) {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        self.users.insert(
            login,
            SimUser {
                login,
                group: group.into(),
                first_name: first.into(),
                last_name: last.into(),
                leverage: 100,
                balance: balance.parse().expect("balance"),
                credit: credit.parse().expect("credit"),
                margin: margin.parse().expect("margin"),
            },
        );
    }

    /// An open position; `lots` like `"1.50"`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_position(
        &mut self,
        login: u64,
        ticket: u64,
        symbol: &str,
        action: u8,
        lots: &str,
        price_open: &str,
        profit: &str,
        storage: &str,
        time_create: i64,
    ) {
        let lots: Decimal = lots.parse().expect("lots");
        let p = SimPosition {
            ticket,
            login,
            symbol: symbol.into(),
            action,
            volume: (lots * Decimal::from(10_000)).try_into().expect("volume"),
            price_open: price_open.parse().expect("price"),
            price_current: price_open.parse().expect("price"),
            profit: profit.parse().expect("profit"),
            storage: storage.parse().expect("storage"),
            time_create,
        };
        self.positions.entry(login).or_default().push(p);
    }

    /// A closed position as MT5 records it: an entry deal and an exit deal sharing its id; the
    /// commission is charged on both, the swap and the profit on the exit.
    #[allow(clippy::too_many_arguments)]
    pub fn add_closed(
        &mut self,
        login: u64,
        position_id: u64,
        symbol: &str,
        action: u8,
        lots: &str,
        open: (&str, i64),
        close: (&str, i64),
        profit: &str,
        commission_each: &str,
        swap: &str,
    ) {
        let lots: Decimal = lots.parse().expect("lots");
        let volume: u64 = (lots * Decimal::from(10_000)).try_into().expect("volume");
        let entry = SimDeal {
            deal: self.ticket(),
            login,
            action,
            entry: 0,
            time: open.1,
            symbol: symbol.into(),
            volume,
            price: open.0.parse().expect("price"),
            price_position: Decimal::ZERO,
            profit: Decimal::ZERO,
            commission: commission_each.parse().expect("commission"),
            storage: Decimal::ZERO,
            position_id,
            comment: String::new(),
        };
        let exit = SimDeal {
            deal: self.ticket(),
            action: 1 - action,
            entry: 1,
            time: close.1,
            price: close.0.parse().expect("price"),
            price_position: entry.price,
            profit: profit.parse().expect("profit"),
            storage: swap.parse().expect("swap"),
            ..entry.clone()
        };
        let list = self.deals.entry(login).or_default();
        list.push(entry);
        list.push(exit);
    }

    /// The balance (2) and credit (3) deals of a login: (ticket, action, amount, comment).
    pub fn balance_deals(&self, login: u64) -> Vec<(u64, u8, Decimal, String)> {
        self.deals
            .get(&login)
            .map(|l| {
                l.iter()
                    .filter(|d| d.action == 2 || d.action == 3)
                    .map(|d| (d.deal, d.action, d.profit, d.comment.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `accounts` logins from `first` in `group`, each with `positions` open positions: the
    /// benchmark's server.
    pub fn seed_bulk(&mut self, group: &str, first: u64, accounts: u64, positions: u64) {
        for i in 0..accounts {
            let login = first + i;
            self.add_account(login, group, "Bench Trader", "10000.00", "0.00", "100.00");
            for k in 0..positions {
                let ticket = login * 1_000 + k;
                self.add_position(
                    login,
                    ticket,
                    "EURUSD",
                    (k % 2) as u8,
                    "0.10",
                    "1.08500",
                    "2.50",
                    "-0.10",
                    1_700_000_000,
                );
            }
        }
    }

    /// Makes the next `times` requests to `path` fail with `retcode`.
    pub fn fail(&mut self, path: &str, retcode: &str, times: usize) {
        self.faults.push(Fault {
            path: path.into(),
            retcode: Some(retcode.into()),
            http_status: None,
            delay: None,
            times,
        });
    }

    /// Makes the next `times` answers to `path` wait `delay` after the work is done.
    pub fn delay(&mut self, path: &str, delay: Duration, times: usize) {
        self.faults.push(Fault {
            path: path.into(),
            retcode: None,
            http_status: None,
            delay: Some(delay),
            times,
        });
    }

    /// Makes the next `times` requests to `path` fail with an HTTP status and no MT5 body.
    pub fn http_fail(&mut self, path: &str, status: u16, times: usize) {
        self.faults.push(Fault {
            path: path.into(),
            retcode: None,
            http_status: Some(status),
            delay: None,
            times,
        });
    }

    /// Forgets every session (a server restart, or the connection dropped).
    pub fn forget_sessions(&mut self) {
        self.sessions_by_conn.clear();
        self.sessions_by_cookie.clear();
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.get(path).copied().unwrap_or(0)
    }

    /// How many TCP connections made requests.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| f.times > 0 && path.starts_with(&f.path))?;
        self.faults[i].times -= 1;
        let f = self.faults[i].clone();
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(f)
    }

    fn equity(&self, u: &SimUser) -> Decimal {
        let floating: Decimal = self
            .positions
            .get(&u.login)
            .map(|ps| ps.iter().map(|p| p.profit + p.storage).sum())
            .unwrap_or_default();
        u.balance + u.credit + floating
    }

    fn user_json(&self, u: &SimUser) -> Value {
        json!({
            "Login": u.login.to_string(), "Group": u.group, "CertSerialNumber": "0", "Rights": "2403",
            "Registration": "1700000000", "LastAccess": "1700000000", "Name": format!("{} {}", u.first_name, u.last_name).trim(),
            "FirstName": u.first_name, "LastName": u.last_name, "Country": "", "Email": "", "Leverage": u.leverage.to_string(),
            "Balance": money(&u.balance), "Credit": money(&u.credit),
        })
    }

    fn account_json(&self, u: &SimUser) -> Value {
        let equity = self.equity(u);
        let profit: Decimal = self
            .positions
            .get(&u.login)
            .map(|ps| ps.iter().map(|p| p.profit).sum())
            .unwrap_or_default();
        let storage: Decimal = self
            .positions
            .get(&u.login)
            .map(|ps| ps.iter().map(|p| p.storage).sum())
            .unwrap_or_default();
        json!({
            "Login": u.login.to_string(), "CurrencyDigits": "2", "Balance": money(&u.balance), "Credit": money(&u.credit),
            "Margin": money(&u.margin), "MarginFree": money(&(equity - u.margin)), "MarginLevel": "0", "MarginLeverage": u.leverage.to_string(),
            "Profit": money(&profit), "Storage": money(&storage), "Floating": money(&(profit + storage)), "Equity": money(&equity),
        })
    }

    fn position_json(p: &SimPosition) -> Value {
        json!({
            "Login": p.login.to_string(), "Symbol": p.symbol, "Action": p.action.to_string(), "Digits": "5", "DigitsCurrency": "2",
            "ContractSize": "100000", "Position": p.ticket.to_string(), "ExternalID": "", "TimeCreate": p.time_create.to_string(),
            "TimeUpdate": p.time_create.to_string(), "PriceOpen": p.price_open.to_string(), "PriceCurrent": p.price_current.to_string(),
            "PriceSL": "0", "PriceTP": "0", "Volume": p.volume.to_string(), "VolumeExt": (p.volume * 10_000).to_string(),
            "Profit": money(&p.profit), "Storage": money(&p.storage), "Comment": "",
        })
    }

    fn deal_json(d: &SimDeal) -> Value {
        json!({
            "Deal": d.deal.to_string(), "ExternalID": "", "Login": d.login.to_string(), "Dealer": "0", "Order": "0",
            "Action": d.action.to_string(), "Entry": d.entry.to_string(), "Digits": "5", "DigitsCurrency": "2",
            "Time": d.time.to_string(), "Symbol": d.symbol, "Price": d.price.to_string(), "Volume": d.volume.to_string(),
            "VolumeExt": (d.volume * 10_000).to_string(), "Profit": money(&d.profit), "Storage": money(&d.storage),
            "Commission": money(&d.commission), "PositionID": d.position_id.to_string(), "Comment": d.comment,
            "PricePosition": d.price_position.to_string(), "VolumeClosed": if d.entry == 0 { "0".into() } else { d.volume.to_string() },
        })
    }
}

/// A group mask: comma-separated names with `*`, and `!` before a name to exclude it.
fn group_matches(mask: &str, group: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let mut included = false;
    for part in mask.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(ex) = part.strip_prefix('!') {
            if glob(ex.as_bytes(), group.as_bytes()) {
                return false;
            }
        } else if glob(part.as_bytes(), group.as_bytes()) {
            included = true;
        }
    }
    included
}

type Shared = Arc<Mutex<SimState>>;

/// A running simulator.
pub struct Mt5Sim {
    /// `http://127.0.0.1:PORT`, the Web API's base URL.
    pub url: String,
    pub state: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Mt5Sim {
    /// Starts a server for the manager `login` with `password`.
    pub async fn start(manager_login: u64, password: &str) -> Mt5Sim {
        let state: Shared = Arc::new(Mutex::new(SimState::new(manager_login, password)));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let addr = listener.local_addr().expect("simulator address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        });
        Mt5Sim {
            url: format!("http://{addr}"),
            state,
            _stop: tx,
        }
    }

    /// Runs `f` on the simulator's state (set up accounts, inject faults, read deals).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

fn reply(status: StatusCode, body: Value, cookie: Option<String>) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(c) = cookie
        .and_then(|c| HeaderValue::from_str(&format!("mt5sim_session={c}; Path=/; HttpOnly")).ok())
    {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

fn rc(code: &str) -> Value {
    json!({ "retcode": code })
}

fn done(answer: Value) -> Value {
    json!({ "retcode": "0 Done", "answer": answer })
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "mt5sim_session")
        .map(|(_, v)| v.to_string())
}

fn logins_param(q: &HashMap<String, String>) -> Option<Vec<u64>> {
    q.get("login")
        .map(|l| l.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

fn num<T: std::str::FromStr>(q: &HashMap<String, String>, k: &str) -> Option<T> {
    q.get(k).and_then(|v| v.trim().parse().ok())
}

async fn handle(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    let cookie = session_cookie(&headers);
    let (response, delay) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.hits.entry(path.clone()).or_default() += 1;
        s.connections.insert(peer);
        let fault = s.take_fault(&path);
        let early = fault.as_ref().and_then(|f| {
            if let Some(code) = &f.retcode {
                Some(reply(StatusCode::OK, rc(code), None))
            } else {
                f.http_status.map(|st| {
                    reply(
                        StatusCode::from_u16(st).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        json!("unavailable"),
                        None,
                    )
                })
            }
        });
        let response = match early {
            Some(r) => r,
            None => route(&mut s, &path, &q, peer, cookie),
        };
        (response, fault.and_then(|f| f.delay))
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    response
}

fn route(
    s: &mut SimState,
    path: &str,
    q: &HashMap<String, String>,
    peer: SocketAddr,
    cookie: Option<String>,
) -> Response {
    let ok = |v: Value| reply(StatusCode::OK, v, None);
    let invalid = || reply(StatusCode::OK, rc("3 Invalid parameters"), None);
    match path {
        "/api/auth/start" => {
            let version_ok = num::<u32>(q, "version").is_some_and(|v| v >= 484);
            let agent_ok = q
                .get("agent")
                .is_some_and(|a| !a.is_empty() && !a.contains(char::is_whitespace));
            if !version_ok
                || !agent_ok
                || q.get("type").map(String::as_str) != Some("manager")
                || num::<u64>(q, "login").is_none()
            {
                return invalid();
            }
            let srv_rand: [u8; 16] = rand::random();
            let token = hex::encode(rand::random::<[u8; 16]>());
            // A login other than the manager's gets a random too; the answer fails later.
            s.pending_by_conn.insert(
                peer,
                Pending {
                    srv_rand,
                    at: Instant::now(),
                    cookie: token.clone(),
                },
            );
            s.pending_by_cookie.insert(token.clone(), srv_rand);
            if num::<u64>(q, "login") != Some(s.manager_login) {
                s.pending_by_conn.remove(&peer);
                s.pending_by_cookie.remove(&token);
            }
            reply(
                StatusCode::OK,
                json!({"retcode": "0 Done", "version_access": "4000", "srv_rand": hex::encode(srv_rand)}),
                Some(token),
            )
        }
        "/api/auth/answer" => {
            let by_conn = s.pending_by_conn.remove(&peer);
            let pending = match by_conn {
                Some(p) => {
                    s.pending_by_cookie.remove(&p.cookie);
                    Some((p.srv_rand, p.at, p.cookie))
                }
                None if s.cookie_sessions => cookie.as_ref().and_then(|c| {
                    s.pending_by_cookie
                        .remove(c)
                        .map(|r| (r, Instant::now(), c.clone()))
                }),
                None => None,
            };
            let Some((srv_rand, at, token)) = pending else {
                return ok(rc("1001 Invalid account"));
            };
            let hash = password_hash(&s.password);
            let expected = answer_to(&hash, &srv_rand);
            let given = q
                .get("srv_rand_answer")
                .map(|a| a.to_ascii_lowercase())
                .unwrap_or_default();
            if at.elapsed() > Duration::from_secs(10) || given != expected {
                return ok(rc("1001 Invalid account"));
            }
            let Some(cli_rand) = q
                .get("cli_rand")
                .and_then(|c| hex::decode(c).ok())
                .filter(|c| c.len() == 16)
            else {
                return invalid();
            };
            let cli_answer = if s.wrong_server_answer {
                answer_to(&password_hash("not the password"), &cli_rand)
            } else {
                answer_to(&hash, &cli_rand)
            };
            s.sessions_by_conn.insert(peer);
            s.sessions_by_cookie.insert(token);
            ok(
                json!({"retcode": "0 Done", "version_access": "4000", "version_trade": "4000", "cli_rand_answer": cli_answer}),
            )
        }
        _ => {
            let authed = s.sessions_by_conn.contains(&peer)
                || (s.cookie_sessions
                    && cookie
                        .as_ref()
                        .is_some_and(|c| s.sessions_by_cookie.contains(c)));
            if !authed {
                return reply(StatusCode::FORBIDDEN, rc("8 Not enough permissions"), None);
            }
            ok(api(s, path, q, peer, cookie))
        }
    }
}

fn api(
    s: &mut SimState,
    path: &str,
    q: &HashMap<String, String>,
    peer: SocketAddr,
    cookie: Option<String>,
) -> Value {
    match path {
        "/api/test/access" => rc("0 Done"),
        "/api/quit" => {
            s.sessions_by_conn.remove(&peer);
            if let Some(c) = cookie {
                s.sessions_by_cookie.remove(&c);
            }
            rc("0 Done")
        }
        "/api/user/logins" => {
            let Some(mask) = q.get("group") else {
                return rc("3 Invalid parameters");
            };
            let logins: Vec<String> = s
                .users
                .values()
                .filter(|u| group_matches(mask, &u.group))
                .map(|u| u.login.to_string())
                .collect();
            done(json!(logins))
        }
        "/api/user/get_batch" => {
            let users: Vec<&SimUser> = match (logins_param(q), q.get("group")) {
                (Some(l), _) => l.iter().filter_map(|l| s.users.get(l)).collect(),
                (None, Some(mask)) => s
                    .users
                    .values()
                    .filter(|u| group_matches(mask, &u.group))
                    .collect(),
                (None, None) => return rc("3 Invalid parameters"),
            };
            done(json!(
                users.iter().map(|u| s.user_json(u)).collect::<Vec<_>>()
            ))
        }
        "/api/user/account/get_batch" => {
            let Some(logins) = logins_param(q) else {
                return rc("3 Invalid parameters");
            };
            done(json!(
                logins
                    .iter()
                    .filter_map(|l| s.users.get(l))
                    .map(|u| s.account_json(u))
                    .collect::<Vec<_>>()
            ))
        }
        "/api/group/get" => match q.get("group").and_then(|g| s.groups.get(g).map(|c| (g, c))) {
            Some((g, c)) => {
                done(json!({"Group": g, "Server": "0", "Currency": c, "CurrencyDigits": "2"}))
            }
            None => rc("13 Not found"),
        },
        "/api/position/get_batch" => {
            let Some(logins) = logins_param(q) else {
                return rc("3 Invalid parameters");
            };
            let list: Vec<Value> = logins
                .iter()
                .filter_map(|l| s.positions.get(l))
                .flatten()
                .map(SimState::position_json)
                .collect();
            done(json!(list))
        }
        "/api/position/get_page" => {
            let (Some(login), Some(offset), Some(total)) = (
                num::<u64>(q, "login"),
                num::<usize>(q, "offset"),
                num::<usize>(q, "total"),
            ) else {
                return rc("3 Invalid parameters");
            };
            if total == 0 || total > 100 {
                return rc("3 Invalid parameters");
            }
            let list: Vec<Value> = s
                .positions
                .get(&login)
                .into_iter()
                .flatten()
                .skip(offset)
                .take(total)
                .map(SimState::position_json)
                .collect();
            done(json!(list))
        }
        "/api/deal/get_page" | "/api/deal/get_batch" => {
            let (Some(from), Some(to)) = (num::<i64>(q, "from"), num::<i64>(q, "to")) else {
                return rc("3 Invalid parameters");
            };
            let Some(logins) = logins_param(q) else {
                return rc("3 Invalid parameters");
            };
            let mut list: Vec<&SimDeal> = logins
                .iter()
                .filter_map(|l| s.deals.get(l))
                .flatten()
                .filter(|d| d.time >= from && d.time <= to)
                .collect();
            list.sort_by_key(|d| (d.time, d.deal));
            if path == "/api/deal/get_page" {
                let (Some(offset), Some(total)) =
                    (num::<usize>(q, "offset"), num::<usize>(q, "total"))
                else {
                    return rc("3 Invalid parameters");
                };
                if logins.len() != 1 || total == 0 || total > 100 {
                    return rc("3 Invalid parameters");
                }
                list = list.into_iter().skip(offset).take(total).collect();
            }
            done(json!(
                list.into_iter()
                    .map(SimState::deal_json)
                    .collect::<Vec<_>>()
            ))
        }
        "/api/trade/balance" => trade_balance(s, q),
        _ => rc("3 Invalid parameters"),
    }
}

fn trade_balance(s: &mut SimState, q: &HashMap<String, String>) -> Value {
    let (Some(login), Some(kind), Some(amount)) = (
        num::<u64>(q, "login"),
        num::<u8>(q, "type"),
        num::<Decimal>(q, "balance"),
    ) else {
        return rc("3 Invalid parameters");
    };
    if !(2..=6).contains(&kind) || amount.is_zero() {
        return rc("3 Invalid parameters");
    }
    if amount.abs() > Decimal::from(1_000_000_000) {
        return rc("4005 Reached the limit on the amount of money");
    }
    let ticket = s.next_ticket + 1;
    let Some(u) = s.users.get_mut(&login) else {
        return rc("13 Not found");
    };
    match kind {
        3 if u.credit + amount < Decimal::ZERO => return rc("10019 Not enough money"),
        3 => u.credit += amount,
        _ if u.balance + amount < Decimal::ZERO => return rc("10019 Not enough money"),
        _ => u.balance += amount,
    }
    s.next_ticket = ticket;
    let comment: String = q
        .get("comment")
        .map(|c| c.chars().take(31).collect())
        .unwrap_or_default();
    s.deals.entry(login).or_default().push(SimDeal {
        deal: ticket,
        login,
        action: kind,
        entry: 0,
        time: now(),
        symbol: String::new(),
        volume: 0,
        price: Decimal::ZERO,
        price_position: Decimal::ZERO,
        profit: amount,
        commission: Decimal::ZERO,
        storage: Decimal::ZERO,
        position_id: 0,
        comment,
    });
    json!({"retcode": "0 Done", "answer": {"Ticket": ticket.to_string()}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_hashes() {
        let h = password_hash("Password1");
        assert_eq!(hex::encode(h), "904ba8ecb16273d2f0ae9c3b8a023752");
        let srv = hex::decode("73007dc7184747ce0f7c98516ef1c851").unwrap();
        assert_eq!(answer_to(&h, &srv), "77fe51827f7fa69dd80fbec9aa33f1bb");
    }

    #[test]
    fn group_masks() {
        assert!(group_matches("*", "real\\usd"));
        assert!(group_matches("real\\*", "real\\usd"));
        assert!(!group_matches("real\\*,!real\\usd", "real\\usd"));
        assert!(group_matches("demo,real\\usd", "real\\usd"));
        assert!(!group_matches("demo*", "real\\usd"));
    }
}
