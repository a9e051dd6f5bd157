//! An MT5 manager Web API simulator for tests and benchmarks: a hyper server on 127.0.0.1:0
//! (plain HTTP/1.1, or HTTPS with a certificate it makes) that speaks the protocol the MT5
//! connector speaks, holding managers, accounts, positions and deals the test sets up, with
//! failures the test injects, and a log of every request.
//!
//! It is as strict as a MetaQuotes MT5 Web API server where the connector could get something
//! wrong, and follows these sections of the MetaQuotes "MetaTrader 5 Web API" documentation:
//!
//! - **Connection Maintenance.** A session *is* the TCP keep-alive connection on which
//!   `auth/start` and `auth/answer` were made: every accepted connection gets an id of its own
//!   (a counter, never reused) and the session lives on it. A command on a connection without an
//!   authenticated session gets **HTTP 403 with an empty body** (no JSON, no retcode). When the
//!   connection closes (the client closed it, [`SimState::drop_connections`], the idle timeout
//!   of [`SimOptions::idle_timeout`], 180 s by default), its session is gone. There is no cookie
//!   and no other way to find a session. `/api/quit` ends the session and the server closes the
//!   connection after answering (`Connection: close`).
//! - **Authentication** (`auth/start`, `auth/answer`). `auth/start?version=&agent=&login=&type=`
//!   (`version` ≥ 484, `agent` non-empty without spaces, `type=manager`) answers `srv_rand` (16
//!   random bytes in hex) and keeps it on that connection only; it also ends any session the
//!   connection had. `auth/answer?srv_rand_answer=&cli_rand=` must come on the same connection,
//!   within 10 s ([`SimOptions::auth_answer_window`]), once: `srv_rand_answer` must be
//!   `hex(MD5(password_hash ‖ srv_rand))` with `password_hash = MD5(MD5(UTF-16LE(password)) ‖
//!   "WebAPI")`. Another connection, a late or repeated answer, a missing or wrong
//!   `srv_rand_answer`, or a login that is no manager: HTTP 403 with an empty body. The server
//!   answers `cli_rand_answer = hex(MD5(password_hash ‖ cli_rand))` (wrong on purpose with
//!   [`SimState::wrong_server_answer`]).
//! - **Managers and their groups.** Several managers share one server
//!   ([`SimState::add_manager`]); a session belongs to the manager that authenticated, and every
//!   command sees only the users whose group matches that manager's group mask (`real\*,!real\vip`).
//!   A login the manager may not see is treated as one that does not exist: `13 Not found`.
//! - **Response codes.** Every MT5 answer is HTTP 200 with `retcode` (`"0 Done"`, `"3 Invalid
//!   parameters"`, `"8 Not enough permissions"`, `"13 Not found"`, `"10019 Not enough money"`,
//!   ...); numbers are sent as strings, as in the documentation's examples. A refusal such as
//!   `8 Not enough permissions` ends nothing: the session stays valid.
//! - **Commands and their parameters.** Each command has its set of known query parameters, and
//!   any other parameter (or one given twice, or a value that does not parse) is `3 Invalid
//!   parameters`:
//!   `test/access {}`, `quit {}`, `user/logins {group}`, `user/get_batch {login, group}`,
//!   `user/account/get_batch {login, group}`, `group/get {group}`,
//!   `position/get_batch {login, group, ticket, symbol}`, `position/get_page {login, offset,
//!   total}`, `deal/get_page {login, from, to, offset, total}`, `deal/get_batch {login, group,
//!   from, to, ticket}`, `trade/balance {login, type, balance, comment, check_margin}`,
//!   `time/get {}`, `time/server {}`, `common/get {}`. Pages hold 1 to 100 items (`total` 0 or
//!   above 100 is `3`). A login list in which no login is visible is `13 Not found`; the
//!   visible ones of a list are answered.
//! - **Trade: balance operations** (`trade/balance`): types 2 (balance) and 3 (credit) only; an
//!   amount of 0 is `3`, beyond ±1,000,000,000 `4005`; a negative amount needs free margin
//!   (equity − margin + amount ≥ 0, unless `check_margin=0`) and a credit out needs the credit,
//!   else `10019 Not enough money`; comments are cut to 31 characters. A manager without the
//!   right ([`SimState::deny_balance`]) gets `8 Not enough permissions`.
//! - **Trade accounts** (`user/account/get_batch`) exist only for accounts with trade activity
//!   since the server started ([`SimUser::active`]): the others are left out of the answer
//!   (`0 Done`, possibly with an empty list); `user/get_batch` answers every visible user with
//!   `Balance` and `Credit`.
//! - **Time** (`time/get`, the `MTConTime` configuration, `TimeZone` in minutes from GMT;
//!   `time/server`). The simulator keeps times in UTC and serves every time (deal `Time`,
//!   position `TimeCreate`/`TimeUpdate`, user `Registration`/`LastAccess`) in server time,
//!   UTC + [`SimOptions::server_tz_minutes`]; `from`/`to` of deal requests are read in server
//!   time too. [`SimState::hide_time_config`] answers `time/get` with `8` (a manager without
//!   the right to read the server configuration).
//! - **Deals** carry `Volume` (1/10,000 lot, truncated) and `VolumeExt` (1/100,000,000 lot);
//!   netting reversals are entry-2 (in/out) deals ([`SimState::add_netting_reversal`]).
//!
//! Choices of the simulator where the documentation says nothing precise: a path that is no
//! command answers HTTP 404 with an empty body, a method other than GET HTTP 405 with an empty
//! body; a parameter given twice is `3`; `auth/start` on an authenticated connection ends its
//! session; `quit` closes the connection; a login list with no visible login is `13`;
//! `time/server` answers `{"time": "<unix seconds, server time>"}`. Injected faults
//! ([`SimState::fail`], [`SimState::http_fail`], [`SimState::delay`]) apply to any request whose
//! path starts with theirs, before anything else (a session included).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use md5::{Digest, Md5};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// `MD5(MD5(UTF-16LE(password)) ‖ "WebAPI")`.
pub fn password_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut h = Md5::new();
    h.update(Md5::digest(&utf16));
    h.update(b"WebAPI");
    h.finalize().into()
}

/// `hex(MD5(password_hash ‖ random))`: the answer to the other side's random.
pub fn answer_to(hash: &[u8; 16], random: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(hash);
    h.update(random);
    hex::encode(h.finalize())
}

const DONE: &str = "0 Done";
const INVALID: &str = "3 Invalid parameters";
const NO_RIGHTS: &str = "8 Not enough permissions";
const NOT_FOUND: &str = "13 Not found";
const TOO_MUCH: &str = "4005 Reached the limit on the amount of money";
const NO_MONEY: &str = "10019 Not enough money";

/// Most items one page answers.
const PAGE_MAX: usize = 100;
/// The largest amount of one balance operation.
const AMOUNT_MAX: i64 = 1_000_000_000;
/// MT5 keeps 31 characters of a deal comment.
const COMMENT_MAX: usize = 31;
/// VolumeExt units per Volume unit (1/100,000,000 lot against 1/10,000 lot).
const EXT_PER_VOLUME: u64 = 10_000;

/// How the simulator serves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// A connection with no request for this long is closed by the server (180 s).
    pub idle_timeout: Duration,
    /// HTTPS with a certificate made for the run; plain HTTP when `None`.
    pub tls: Option<SimTls>,
    /// The server's time zone in minutes from UTC (120 for UTC+2, -300 for UTC−5).
    pub server_tz_minutes: i32,
    /// How long after `auth/start` its `auth/answer` is accepted (10 s).
    pub auth_answer_window: Duration,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            idle_timeout: Duration::from_secs(180),
            tls: None,
            server_tz_minutes: 0,
            auth_answer_window: Duration::from_secs(10),
        }
    }
}

/// The certificate an HTTPS simulator presents, for 127.0.0.1 and localhost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimTls {
    /// A self-signed certificate: trusting it means trusting that certificate itself.
    SelfSigned,
    /// A leaf signed by a private CA made for the run: trusting the CA.
    PrivateCa,
}

/// A manager account: its password and the groups it may see.
#[derive(Clone, Debug)]
pub struct SimManager {
    pub login: u64,
    pub password: String,
    /// A group mask (`*`, `real\*,!real\vip`).
    pub groups: String,
    /// Without the right to make balance operations: `trade/balance` answers `8`.
    pub deny_balance: bool,
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
    /// Unix seconds, UTC.
    pub registration: i64,
    pub last_access: i64,
    /// Traded since the server started: only these have a trade account
    /// (`user/account/get_batch`).
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct SimPosition {
    pub ticket: u64,
    pub login: u64,
    pub symbol: String,
    /// 0 buy, 1 sell.
    pub action: u8,
    /// In 1/100,000,000 lot.
    pub volume_ext: u64,
    pub price_open: Decimal,
    pub price_current: Decimal,
    pub profit: Decimal,
    pub storage: Decimal,
    /// Unix seconds, UTC.
    pub time_create: i64,
    pub time_update: i64,
}

#[derive(Clone, Debug)]
pub struct SimDeal {
    pub deal: u64,
    pub login: u64,
    /// EnDealAction: 0 buy, 1 sell, 2 balance, 3 credit, ...
    pub action: u8,
    /// EnEntryFlags: 0 in, 1 out, 2 in/out (a netting reversal), 3 out by.
    pub entry: u8,
    /// Unix seconds, UTC.
    pub time: i64,
    pub symbol: String,
    /// In 1/100,000,000 lot.
    pub volume_ext: u64,
    /// The volume this deal closed, in 1/100,000,000 lot.
    pub volume_closed_ext: u64,
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
    /// Answer with this HTTP status and an empty body, before doing anything.
    pub http_status: Option<u16>,
    /// Do the work, then wait this long before answering (an answer lost to a timeout).
    pub delay: Option<Duration>,
    pub times: usize,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// The connection it came on.
    pub conn: u64,
    /// The manager whose session that connection had when the request arrived.
    pub manager: Option<u64>,
    pub method: String,
    pub path: String,
    /// The query parameters, decoded, in order (empty when the query did not decode).
    pub query: Vec<(String, String)>,
    /// The `Connection` header, as sent.
    pub connection: Option<String>,
    /// Whether the request said `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The `Cookie` header, as sent (the Web API sets none).
    pub cookie: Option<String>,
    /// The answer: its HTTP status and retcode (none for an empty body).
    pub status: u16,
    pub retcode: Option<String>,
}

impl LoggedRequest {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Pending {
    login: u64,
    srv_rand: [u8; 16],
    at: Instant,
}

/// An open connection.
struct Conn {
    pending: Option<Pending>,
    /// The manager whose session this connection is.
    session: Option<u64>,
    in_flight: usize,
    last_active: Instant,
    kill: Option<oneshot::Sender<()>>,
}

pub struct SimState {
    pub managers: BTreeMap<u64, SimManager>,
    pub users: BTreeMap<u64, SimUser>,
    /// Group name → deposit currency.
    pub groups: HashMap<String, String>,
    pub positions: BTreeMap<u64, Vec<SimPosition>>,
    pub deals: BTreeMap<u64, Vec<SimDeal>>,
    pub next_ticket: u64,
    /// Answer the client's random with a wrong hash (an impostor that does not know the
    /// password).
    pub wrong_server_answer: bool,
    /// `time/get` answers `8 Not enough permissions`.
    pub hide_time_config: bool,
    pub faults: Vec<Fault>,
    /// Requests per path.
    pub hits: HashMap<String, usize>,
    tz_minutes: i32,
    idle_timeout: Duration,
    answer_window: Duration,
    conns: HashMap<u64, Conn>,
    /// Connections that made at least one request.
    used: BTreeSet<u64>,
    log: Vec<LoggedRequest>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn money(d: &Decimal) -> String {
    format!("{:.2}", d)
}

/// `"1.5"` lots in 1/100,000,000 lot; a test's mistake (more than 8 decimals) panics.
fn lots_ext(lots: &str) -> u64 {
    let d: Decimal = lots.parse().expect("lots");
    assert!(
        d.scale() <= 8 && d > Decimal::ZERO,
        "lots {lots}: MT5 volumes are positive with at most 8 decimals"
    );
    (d * Decimal::from(100_000_000))
        .try_into()
        .expect("volume in range")
}

fn dec(s: &str, what: &str) -> Decimal {
    s.parse()
        .unwrap_or_else(|_| panic!("{what}: {s} is not a decimal"))
}

impl SimState {
    fn new(options: &SimOptions) -> SimState {
        SimState {
            managers: BTreeMap::new(),
            users: BTreeMap::new(),
            groups: HashMap::new(),
            positions: BTreeMap::new(),
            deals: BTreeMap::new(),
            next_ticket: 100_000,
            wrong_server_answer: false,
            hide_time_config: false,
            faults: Vec::new(),
            hits: HashMap::new(),
            tz_minutes: options.server_tz_minutes,
            idle_timeout: options.idle_timeout,
            answer_window: options.auth_answer_window,
            conns: HashMap::new(),
            used: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    pub fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// A manager account that sees the users of `groups_mask` (`*`, `real\*,!real\vip`).
    pub fn add_manager(&mut self, login: u64, password: &str, groups_mask: &str) {
        self.managers.insert(
            login,
            SimManager {
                login,
                password: password.into(),
                groups: groups_mask.into(),
                deny_balance: false,
            },
        );
    }

    /// Takes the right to make balance operations from a manager: its `trade/balance`
    /// answers `8 Not enough permissions` (and its session stays valid).
    pub fn deny_balance(&mut self, manager_login: u64) {
        self.managers
            .get_mut(&manager_login)
            .expect("no such manager")
            .deny_balance = true;
    }

    pub fn add_group(&mut self, group: &str, currency: &str) {
        self.groups.insert(group.into(), currency.into());
    }

    /// An account with its balance, credit and used margin. It has no trade account
    /// (`user/account/get_batch` leaves it out) until it trades ([`SimState::set_active`]),
    /// unless positions or deals of its login were added before.
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
        let active = self.positions.contains_key(&login) || self.deals.contains_key(&login);
        self.users.insert(
            login,
            SimUser {
                login,
                group: group.into(),
                first_name: first.into(),
                last_name: last.into(),
                leverage: 100,
                balance: dec(balance, "balance"),
                credit: dec(credit, "credit"),
                margin: dec(margin, "margin"),
                registration: 1_700_000_000,
                last_access: 1_700_000_000,
                active,
            },
        );
    }

    /// Whether an account traded since the server started (it has a trade account).
    pub fn set_active(&mut self, login: u64, active: bool) {
        self.users.get_mut(&login).expect("no such login").active = active;
    }

    fn mark_active(&mut self, login: u64) {
        if let Some(u) = self.users.get_mut(&login) {
            u.active = true;
        }
    }

    /// An open position; `lots` like `"1.50"` (up to 8 decimals); `time_create` in UTC.
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
        let p = SimPosition {
            ticket,
            login,
            symbol: symbol.into(),
            action,
            volume_ext: lots_ext(lots),
            price_open: dec(price_open, "price"),
            price_current: dec(price_open, "price"),
            profit: dec(profit, "profit"),
            storage: dec(storage, "storage"),
            time_create,
            time_update: time_create,
        };
        self.positions.entry(login).or_default().push(p);
        self.mark_active(login);
    }

    /// A closed position as MT5 records it: an entry deal and an exit deal sharing its id; the
    /// commission is charged on both, the swap and the profit on the exit. `lots` has up to 8
    /// decimals (deals carry `VolumeExt`, and `Volume` truncated to 1/10,000 lot); times in UTC.
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
        let volume_ext = lots_ext(lots);
        let entry = SimDeal {
            deal: self.ticket(),
            login,
            action,
            entry: 0,
            time: open.1,
            symbol: symbol.into(),
            volume_ext,
            volume_closed_ext: 0,
            price: dec(open.0, "price"),
            price_position: Decimal::ZERO,
            profit: Decimal::ZERO,
            commission: dec(commission_each, "commission"),
            storage: Decimal::ZERO,
            position_id,
            comment: String::new(),
        };
        let exit = SimDeal {
            deal: self.ticket(),
            action: 1 - action,
            entry: 1,
            time: close.1,
            volume_closed_ext: volume_ext,
            price: dec(close.0, "price"),
            price_position: entry.price,
            profit: dec(profit, "profit"),
            storage: dec(swap, "swap"),
            ..entry.clone()
        };
        let list = self.deals.entry(login).or_default();
        list.push(entry);
        list.push(exit);
        self.mark_active(login);
    }

    fn position_mut(&mut self, login: u64, position_id: u64) -> Option<&mut SimPosition> {
        self.positions
            .get_mut(&login)?
            .iter_mut()
            .find(|p| p.ticket == position_id)
    }

    fn push_deal(&mut self, deal: SimDeal) -> u64 {
        let (login, ticket) = (deal.login, deal.deal);
        self.deals.entry(login).or_default().push(deal);
        self.mark_active(login);
        ticket
    }

    /// A deal entering the market (entry 0) on a netting account: opens position
    /// `position_id` (or adds to it, same direction); its ticket. `at` is (price, UTC time).
    #[allow(clippy::too_many_arguments)]
    pub fn add_deal_in(
        &mut self,
        login: u64,
        position_id: u64,
        symbol: &str,
        action: u8,
        lots: &str,
        at: (&str, i64),
        commission: &str,
    ) -> u64 {
        let volume_ext = lots_ext(lots);
        let price = dec(at.0, "price");
        match self.position_mut(login, position_id) {
            Some(p) => {
                assert!(
                    p.action == action && p.symbol == symbol,
                    "position {position_id} goes the other way: use add_netting_reversal or add_deal_out"
                );
                let total = p.volume_ext + volume_ext;
                p.price_open = (p.price_open * Decimal::from(p.volume_ext)
                    + price * Decimal::from(volume_ext))
                    / Decimal::from(total);
                p.volume_ext = total;
                p.time_update = at.1;
            }
            None => self.positions.entry(login).or_default().push(SimPosition {
                ticket: position_id,
                login,
                symbol: symbol.into(),
                action,
                volume_ext,
                price_open: price,
                price_current: price,
                profit: Decimal::ZERO,
                storage: Decimal::ZERO,
                time_create: at.1,
                time_update: at.1,
            }),
        }
        let deal = SimDeal {
            deal: self.ticket(),
            login,
            action,
            entry: 0,
            time: at.1,
            symbol: symbol.into(),
            volume_ext,
            volume_closed_ext: 0,
            price,
            price_position: Decimal::ZERO,
            profit: Decimal::ZERO,
            commission: dec(commission, "commission"),
            storage: Decimal::ZERO,
            position_id,
            comment: String::new(),
        };
        self.push_deal(deal)
    }

    /// A netting reversal: one deal (entry 2, in/out) against open position `position_id` of
    /// more volume than it holds. It closes the position's whole volume (its `profit` is the
    /// closed part's) and opens the opposite direction with the rest, under the same position
    /// id; its ticket.
    #[allow(clippy::too_many_arguments)]
    pub fn add_netting_reversal(
        &mut self,
        login: u64,
        position_id: u64,
        symbol: &str,
        lots: &str,
        at: (&str, i64),
        profit: &str,
        commission: &str,
    ) -> u64 {
        let volume_ext = lots_ext(lots);
        let price = dec(at.0, "price");
        let p = self
            .position_mut(login, position_id)
            .expect("a reversal needs an open position");
        assert_eq!(p.symbol, symbol, "position {position_id}'s symbol");
        assert!(
            volume_ext > p.volume_ext,
            "a reversal is more volume than the position holds"
        );
        let (action, closed, price_position) = (1 - p.action, p.volume_ext, p.price_open);
        p.action = action;
        p.volume_ext = volume_ext - closed;
        p.price_open = price;
        p.price_current = price;
        p.time_create = at.1;
        p.time_update = at.1;
        let deal = SimDeal {
            deal: self.ticket(),
            login,
            action,
            entry: 2,
            time: at.1,
            symbol: symbol.into(),
            volume_ext,
            volume_closed_ext: closed,
            price,
            price_position,
            profit: dec(profit, "profit"),
            commission: dec(commission, "commission"),
            storage: Decimal::ZERO,
            position_id,
            comment: String::new(),
        };
        self.push_deal(deal)
    }

    /// A deal leaving the market (entry 1): closes `lots` of open position `position_id` (the
    /// whole of it removes the position); its ticket.
    #[allow(clippy::too_many_arguments)]
    pub fn add_deal_out(
        &mut self,
        login: u64,
        position_id: u64,
        symbol: &str,
        lots: &str,
        at: (&str, i64),
        profit: &str,
        commission: &str,
        swap: &str,
    ) -> u64 {
        let volume_ext = lots_ext(lots);
        let p = self
            .position_mut(login, position_id)
            .expect("an exit needs an open position");
        assert_eq!(p.symbol, symbol, "position {position_id}'s symbol");
        assert!(
            volume_ext <= p.volume_ext,
            "an exit of more than the position holds is a reversal"
        );
        let (action, price_position) = (1 - p.action, p.price_open);
        p.volume_ext -= volume_ext;
        p.time_update = at.1;
        if let Some(list) = self.positions.get_mut(&login) {
            list.retain(|p| p.volume_ext > 0);
        }
        let deal = SimDeal {
            deal: self.ticket(),
            login,
            action,
            entry: 1,
            time: at.1,
            symbol: symbol.into(),
            volume_ext,
            volume_closed_ext: volume_ext,
            price: dec(at.0, "price"),
            price_position,
            profit: dec(profit, "profit"),
            commission: dec(commission, "commission"),
            storage: dec(swap, "swap"),
            position_id,
            comment: String::new(),
        };
        self.push_deal(deal)
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

    /// `accounts` logins from `first` in `group`, each with `positions` open positions, all of
    /// them traded (they have trade accounts): the benchmark's server.
    pub fn seed_bulk(&mut self, group: &str, first: u64, accounts: u64, positions: u64) {
        for i in 0..accounts {
            let login = first + i;
            self.add_account(login, group, "Bench Trader", "10000.00", "0.00", "100.00");
            self.set_active(login, true);
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

    /// Makes the next `times` requests to `path` fail with `retcode` (HTTP 200).
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

    /// Makes the next `times` requests to `path` fail with an HTTP status and an empty body.
    pub fn http_fail(&mut self, path: &str, status: u16, times: usize) {
        self.faults.push(Fault {
            path: path.into(),
            retcode: None,
            http_status: Some(status),
            delay: None,
            times,
        });
    }

    /// Forgets every session and pending handshake but keeps the connections open (a server
    /// restart behind a proxy that keeps the client's connections).
    pub fn forget_sessions(&mut self) {
        for c in self.conns.values_mut() {
            c.session = None;
            c.pending = None;
        }
    }

    /// Closes every open connection now, as a server dropping them; their sessions are gone.
    pub fn drop_connections(&mut self) {
        for c in self.conns.values_mut() {
            c.session = None;
            c.pending = None;
            if let Some(kill) = c.kill.take() {
                let _ = kill.send(());
            }
        }
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.get(path).copied().unwrap_or(0)
    }

    /// How many distinct TCP connections made requests.
    pub fn connections(&self) -> usize {
        self.used.len()
    }

    /// The ids of the connections open now, in order.
    pub fn open_connections(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The authenticated sessions now: (connection, manager), in connection order.
    pub fn sessions(&self) -> Vec<(u64, u64)> {
        let mut s: Vec<(u64, u64)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| c.session.map(|m| (*id, m)))
            .collect();
        s.sort_unstable();
        s
    }

    /// Every request so far, in the order the server handled them.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.clone()
    }

    /// The server's time zone in minutes from UTC.
    pub fn server_tz_minutes(&self) -> i32 {
        self.tz_minutes
    }

    fn tz_secs(&self) -> i64 {
        i64::from(self.tz_minutes) * 60
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

    fn floating(&self, login: u64) -> (Decimal, Decimal) {
        self.positions
            .get(&login)
            .map(|ps| {
                ps.iter().fold((Decimal::ZERO, Decimal::ZERO), |(p, s), x| {
                    (p + x.profit, s + x.storage)
                })
            })
            .unwrap_or_default()
    }

    fn equity(&self, u: &SimUser) -> Decimal {
        let (profit, storage) = self.floating(u.login);
        u.balance + u.credit + profit + storage
    }

    fn user_json(&self, u: &SimUser) -> Value {
        let tz = self.tz_secs();
        json!({
            "Login": u.login.to_string(), "Group": u.group, "CertSerialNumber": "0", "Rights": "2403",
            "Registration": (u.registration + tz).to_string(), "LastAccess": (u.last_access + tz).to_string(),
            "Name": format!("{} {}", u.first_name, u.last_name).trim(),
            "FirstName": u.first_name, "LastName": u.last_name, "Country": "", "Email": "", "Leverage": u.leverage.to_string(),
            "Balance": money(&u.balance), "Credit": money(&u.credit),
        })
    }

    fn account_json(&self, u: &SimUser) -> Value {
        let equity = self.equity(u);
        let (profit, storage) = self.floating(u.login);
        json!({
            "Login": u.login.to_string(), "CurrencyDigits": "2", "Balance": money(&u.balance), "Credit": money(&u.credit),
            "Margin": money(&u.margin), "MarginFree": money(&(equity - u.margin)), "MarginLevel": "0", "MarginLeverage": u.leverage.to_string(),
            "Profit": money(&profit), "Storage": money(&storage), "Floating": money(&(profit + storage)), "Equity": money(&equity),
        })
    }

    fn position_json(&self, p: &SimPosition) -> Value {
        let tz = self.tz_secs();
        let (created, updated) = (p.time_create + tz, p.time_update + tz);
        json!({
            "Position": p.ticket.to_string(), "ExternalID": "", "Login": p.login.to_string(), "Symbol": p.symbol,
            "Action": p.action.to_string(), "Digits": "5", "DigitsCurrency": "2", "ContractSize": "100000",
            "TimeCreate": created.to_string(), "TimeCreateMsc": (created * 1000).to_string(),
            "TimeUpdate": updated.to_string(), "TimeUpdateMsc": (updated * 1000).to_string(),
            "PriceOpen": p.price_open.to_string(), "PriceCurrent": p.price_current.to_string(), "PriceSL": "0", "PriceTP": "0",
            "Volume": (p.volume_ext / EXT_PER_VOLUME).to_string(), "VolumeExt": p.volume_ext.to_string(),
            "Profit": money(&p.profit), "Storage": money(&p.storage), "Comment": "", "Reason": "0",
        })
    }

    fn deal_json(&self, d: &SimDeal) -> Value {
        let time = d.time + self.tz_secs();
        json!({
            "Deal": d.deal.to_string(), "ExternalID": "", "Login": d.login.to_string(), "Dealer": "0", "Order": "0",
            "Action": d.action.to_string(), "Entry": d.entry.to_string(), "Reason": "0", "Digits": "5", "DigitsCurrency": "2",
            "ContractSize": "100000", "Time": time.to_string(), "TimeMsc": (time * 1000).to_string(), "Symbol": d.symbol,
            "Price": d.price.to_string(), "Volume": (d.volume_ext / EXT_PER_VOLUME).to_string(), "VolumeExt": d.volume_ext.to_string(),
            "VolumeClosed": (d.volume_closed_ext / EXT_PER_VOLUME).to_string(), "VolumeClosedExt": d.volume_closed_ext.to_string(),
            "Profit": money(&d.profit), "Storage": money(&d.storage), "Commission": money(&d.commission),
            "PositionID": d.position_id.to_string(), "PricePosition": d.price_position.to_string(), "PriceSL": "0", "PriceTP": "0",
            "Comment": d.comment,
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

// ---------------------------------------------------------------------------------------------
// Requests and answers.

/// What the server answers: HTTP status, an MT5 JSON body or nothing, and whether it closes
/// the connection after.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    close: bool,
}

impl Answer {
    fn json(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            close: false,
        }
    }

    fn rc(code: &str) -> Answer {
        Answer::json(json!({ "retcode": code }))
    }

    fn empty(status: StatusCode) -> Answer {
        Answer {
            status,
            body: None,
            close: false,
        }
    }

    fn retcode(&self) -> Option<String> {
        self.body.as_ref()?["retcode"].as_str().map(str::to_string)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = self
            .body
            .as_ref()
            .map(|v| Bytes::from(v.to_string()))
            .unwrap_or_default();
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = self.status;
        if self.body.is_some() {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// `{"retcode": "0 Done", "answer": ...}`.
fn done(answer: Value) -> Value {
    json!({ "retcode": DONE, "answer": answer })
}

/// A command's outcome: an answer, or a retcode refusing it.
type Handled = Result<Answer, &'static str>;

fn answered(answer: Value) -> Handled {
    Ok(Answer::json(done(answer)))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Command {
    AuthStart,
    AuthAnswer,
    TestAccess,
    Quit,
    UserLogins,
    UserGetBatch,
    AccountGetBatch,
    GroupGet,
    PositionGetBatch,
    PositionGetPage,
    DealGetPage,
    DealGetBatch,
    TradeBalance,
    TimeGet,
    TimeServer,
    CommonGet,
}

/// Every command: its path and the query parameters it knows.
const COMMANDS: &[(&str, Command, &[&str])] = &[
    (
        "/api/auth/start",
        Command::AuthStart,
        &["version", "agent", "login", "type"],
    ),
    (
        "/api/auth/answer",
        Command::AuthAnswer,
        &["srv_rand_answer", "cli_rand"],
    ),
    ("/api/test/access", Command::TestAccess, &[]),
    ("/api/quit", Command::Quit, &[]),
    ("/api/user/logins", Command::UserLogins, &["group"]),
    (
        "/api/user/get_batch",
        Command::UserGetBatch,
        &["login", "group"],
    ),
    (
        "/api/user/account/get_batch",
        Command::AccountGetBatch,
        &["login", "group"],
    ),
    ("/api/group/get", Command::GroupGet, &["group"]),
    (
        "/api/position/get_batch",
        Command::PositionGetBatch,
        &["login", "group", "ticket", "symbol"],
    ),
    (
        "/api/position/get_page",
        Command::PositionGetPage,
        &["login", "offset", "total"],
    ),
    (
        "/api/deal/get_page",
        Command::DealGetPage,
        &["login", "from", "to", "offset", "total"],
    ),
    (
        "/api/deal/get_batch",
        Command::DealGetBatch,
        &["login", "group", "from", "to", "ticket"],
    ),
    (
        "/api/trade/balance",
        Command::TradeBalance,
        &["login", "type", "balance", "comment", "check_margin"],
    ),
    ("/api/time/get", Command::TimeGet, &[]),
    ("/api/time/server", Command::TimeServer, &[]),
    ("/api/common/get", Command::CommonGet, &[]),
];

/// Decodes one `application/x-www-form-urlencoded` component; `None` when malformed.
fn decode_component(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's parameters, decoded, in order; `None` when one does not decode.
fn parse_query(query: Option<&str>) -> Option<Vec<(String, String)>> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode_component(k)?, decode_component(v)?))
        })
        .collect()
}

/// A command's parameters, every one of them known and given once.
struct Params<'a>(HashMap<&'a str, &'a str>);

impl<'a> Params<'a> {
    fn new(query: &'a [(String, String)], known: &[&str]) -> Option<Params<'a>> {
        let mut map = HashMap::new();
        for (k, v) in query {
            if !known.contains(&k.as_str()) || map.insert(k.as_str(), v.as_str()).is_some() {
                return None;
            }
        }
        Some(Params(map))
    }

    fn text(&self, k: &str) -> Option<&'a str> {
        self.0.get(k).copied()
    }

    fn opt<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, &'static str> {
        self.text(k)
            .map(|v| v.parse().map_err(|_| INVALID))
            .transpose()
    }

    fn req<T: std::str::FromStr>(&self, k: &str) -> Result<T, &'static str> {
        self.opt(k)?.ok_or(INVALID)
    }

    /// A comma-separated list of numbers (logins, tickets).
    fn list(&self, k: &str) -> Result<Option<Vec<u64>>, &'static str> {
        self.text(k)
            .map(|v| {
                v.split(',')
                    .map(|x| x.parse::<u64>().map_err(|_| INVALID))
                    .collect::<Result<Vec<u64>, _>>()
            })
            .transpose()
    }

    /// `offset` and `total` of a page: `total` from 1 to 100.
    fn page(&self) -> Result<(usize, usize), &'static str> {
        let (offset, total): (usize, usize) = (self.req("offset")?, self.req("total")?);
        if total == 0 || total > PAGE_MAX {
            return Err(INVALID);
        }
        Ok((offset, total))
    }
}

impl SimState {
    /// One request on connection `conn`: logged, counted, faults applied, then routed. The
    /// answer, and how long to wait before sending it.
    fn serve(
        &mut self,
        conn: u64,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> (Answer, Option<Duration>) {
        let path = uri.path().to_string();
        let manager = self.conns.get(&conn).and_then(|c| c.session);
        let query = parse_query(uri.query());
        *self.hits.entry(path.clone()).or_default() += 1;
        self.used.insert(conn);
        let fault = self.take_fault(&path);
        let early = fault
            .as_ref()
            .and_then(|f| match (&f.retcode, f.http_status) {
                (Some(code), _) => Some(Answer::rc(code)),
                (None, Some(st)) => Some(Answer::empty(
                    StatusCode::from_u16(st).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                )),
                (None, None) => None,
            });
        let answer = match early {
            Some(a) => a,
            None => self.route(conn, method, &path, query.as_deref()),
        };
        let header = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let connection = header(header::CONNECTION);
        self.log.push(LoggedRequest {
            conn,
            manager,
            method: method.to_string(),
            path,
            query: query.unwrap_or_default(),
            keep_alive: connection.as_deref().is_some_and(|c| {
                c.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
            }),
            connection,
            cookie: header(header::COOKIE),
            status: answer.status.as_u16(),
            retcode: answer.retcode(),
        });
        (answer, fault.and_then(|f| f.delay))
    }

    fn route(
        &mut self,
        conn: u64,
        method: &Method,
        path: &str,
        query: Option<&[(String, String)]>,
    ) -> Answer {
        let Some(&(_, command, known)) = COMMANDS.iter().find(|(p, ..)| *p == path) else {
            return Answer::empty(StatusCode::NOT_FOUND);
        };
        if method != Method::GET {
            return Answer::empty(StatusCode::METHOD_NOT_ALLOWED);
        }
        let handled = match command {
            Command::AuthStart | Command::AuthAnswer => {
                let Some(params) = query.and_then(|q| Params::new(q, known)) else {
                    return Answer::rc(INVALID);
                };
                if command == Command::AuthStart {
                    self.auth_start(conn, &params)
                } else {
                    self.auth_answer(conn, &params)
                }
            }
            _ => {
                let session = self.conns.get(&conn).and_then(|c| c.session);
                let Some(manager) = session.and_then(|m| self.managers.get(&m)).cloned() else {
                    return Answer::empty(StatusCode::FORBIDDEN);
                };
                let Some(params) = query.and_then(|q| Params::new(q, known)) else {
                    return Answer::rc(INVALID);
                };
                self.command(conn, command, &manager, &params)
            }
        };
        handled.unwrap_or_else(Answer::rc)
    }

    fn auth_start(&mut self, conn: u64, p: &Params) -> Handled {
        let version: u32 = p.req("version")?;
        let agent = p.text("agent").unwrap_or_default();
        let login: u64 = p.req("login")?;
        if version < 484
            || agent.is_empty()
            || agent.contains(char::is_whitespace)
            || p.text("type") != Some("manager")
        {
            return Err(INVALID);
        }
        let srv_rand: [u8; 16] = rand::random();
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(Answer::empty(StatusCode::FORBIDDEN));
        };
        // A login that is no manager gets a random too: the answer fails.
        c.session = None;
        c.pending = Some(Pending {
            login,
            srv_rand,
            at: Instant::now(),
        });
        Ok(Answer::json(
            json!({"retcode": DONE, "version_access": "4000", "srv_rand": hex::encode(srv_rand)}),
        ))
    }

    fn auth_answer(&mut self, conn: u64, p: &Params) -> Handled {
        let forbidden = Ok(Answer::empty(StatusCode::FORBIDDEN));
        let Some(pending) = self.conns.get_mut(&conn).and_then(|c| c.pending.take()) else {
            return forbidden;
        };
        let Some(manager) = self.managers.get(&pending.login) else {
            return forbidden;
        };
        let hash = password_hash(&manager.password);
        let given = p.text("srv_rand_answer").unwrap_or_default();
        if pending.at.elapsed() > self.answer_window
            || !given.eq_ignore_ascii_case(&answer_to(&hash, &pending.srv_rand))
        {
            return forbidden;
        }
        let Some(cli_rand) = p
            .text("cli_rand")
            .and_then(|c| hex::decode(c).ok())
            .filter(|c| c.len() == 16)
        else {
            return Err(INVALID);
        };
        let cli_answer = if self.wrong_server_answer {
            answer_to(&password_hash("not the password"), &cli_rand)
        } else {
            answer_to(&hash, &cli_rand)
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(pending.login);
        }
        Ok(Answer::json(
            json!({"retcode": DONE, "version_access": "4000", "version_trade": "4000", "cli_rand_answer": cli_answer}),
        ))
    }

    fn command(
        &mut self,
        conn: u64,
        command: Command,
        manager: &SimManager,
        p: &Params,
    ) -> Handled {
        let mask = manager.groups.as_str();
        match command {
            // The handshake never gets here (`route` answers it before any session).
            Command::AuthStart | Command::AuthAnswer | Command::TestAccess => Ok(Answer::rc(DONE)),
            Command::Quit => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = None;
                }
                Ok(Answer {
                    close: true,
                    ..Answer::rc(DONE)
                })
            }
            Command::UserLogins => {
                let group = p.text("group").ok_or(INVALID)?;
                let logins: Vec<String> = self
                    .users
                    .values()
                    .filter(|u| group_matches(mask, &u.group) && group_matches(group, &u.group))
                    .map(|u| u.login.to_string())
                    .collect();
                answered(json!(logins))
            }
            Command::UserGetBatch => {
                let users = self.select(mask, p.list("login")?, p.text("group"))?;
                answered(json!(
                    users
                        .iter()
                        .filter_map(|l| self.users.get(l))
                        .map(|u| self.user_json(u))
                        .collect::<Vec<_>>()
                ))
            }
            Command::AccountGetBatch => {
                let users = self.select(mask, p.list("login")?, p.text("group"))?;
                answered(json!(
                    users
                        .iter()
                        .filter_map(|l| self.users.get(l))
                        .filter(|u| u.active)
                        .map(|u| self.account_json(u))
                        .collect::<Vec<_>>()
                ))
            }
            Command::GroupGet => {
                let group = p.text("group").ok_or(INVALID)?;
                let (name, currency) = self
                    .groups
                    .iter()
                    .find(|(g, _)| g.eq_ignore_ascii_case(group) && group_matches(mask, g))
                    .ok_or(NOT_FOUND)?;
                answered(
                    json!({"Group": name, "Server": "0", "Currency": currency, "CurrencyDigits": "2"}),
                )
            }
            Command::PositionGetBatch => self.position_get_batch(mask, p),
            Command::PositionGetPage => {
                let login: u64 = p.req("login")?;
                let (offset, total) = p.page()?;
                self.visible(mask, login).ok_or(NOT_FOUND)?;
                let list: Vec<Value> = self
                    .positions
                    .get(&login)
                    .into_iter()
                    .flatten()
                    .skip(offset)
                    .take(total)
                    .map(|x| self.position_json(x))
                    .collect();
                answered(json!(list))
            }
            Command::DealGetPage => {
                let login: u64 = p.req("login")?;
                let (from, to): (i64, i64) = (p.req("from")?, p.req("to")?);
                let (offset, total) = p.page()?;
                if from > to {
                    return Err(INVALID);
                }
                self.visible(mask, login).ok_or(NOT_FOUND)?;
                let list: Vec<Value> = self
                    .deals_between(&[login], from, to)
                    .into_iter()
                    .skip(offset)
                    .take(total)
                    .map(|d| self.deal_json(d))
                    .collect();
                answered(json!(list))
            }
            Command::DealGetBatch => self.deal_get_batch(mask, p),
            Command::TradeBalance => self.trade_balance(manager, p),
            Command::TimeGet => {
                if self.hide_time_config {
                    return Err(NO_RIGHTS);
                }
                answered(json!({
                    "Daylight": "0", "DaylightState": "0", "TimeZone": self.tz_minutes.to_string(),
                    "TimeServer": "", "Days": [],
                }))
            }
            Command::TimeServer => answered(json!({"time": (now() + self.tz_secs()).to_string()})),
            Command::CommonGet => answered(json!({
                "Name": "Lumire MT5 simulator", "Owner": "LumireCRM tests", "OwnerID": "lumire",
                "OwnerHost": "127.0.0.1", "Product": "0",
            })),
        }
    }

    /// The user `login` if the manager's mask shows it.
    fn visible(&self, mask: &str, login: u64) -> Option<&SimUser> {
        self.users
            .get(&login)
            .filter(|u| group_matches(mask, &u.group))
    }

    /// The visible logins among `logins` and in `group`, in order. A list in which no login is
    /// visible is `13 Not found`; neither a list nor a group is `3`.
    fn select(
        &self,
        mask: &str,
        logins: Option<Vec<u64>>,
        group: Option<&str>,
    ) -> Result<Vec<u64>, &'static str> {
        let mut out = BTreeSet::new();
        match (&logins, group) {
            (None, None) => return Err(INVALID),
            (Some(list), _) => {
                out.extend(list.iter().filter(|l| self.visible(mask, **l).is_some()));
                if out.is_empty() {
                    return Err(NOT_FOUND);
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(g) = group {
            out.extend(
                self.users
                    .values()
                    .filter(|u| group_matches(mask, &u.group) && group_matches(g, &u.group))
                    .map(|u| u.login),
            );
        }
        Ok(out.into_iter().collect())
    }

    /// Deals of `logins` between two server times, in time order.
    fn deals_between(&self, logins: &[u64], from: i64, to: i64) -> Vec<&SimDeal> {
        let tz = self.tz_secs();
        let mut list: Vec<&SimDeal> = logins
            .iter()
            .filter_map(|l| self.deals.get(l))
            .flatten()
            .filter(|d| (from..=to).contains(&(d.time + tz)))
            .collect();
        list.sort_by_key(|d| (d.time, d.deal));
        list
    }

    fn position_get_batch(&self, mask: &str, p: &Params) -> Handled {
        let (logins, group, tickets) = (p.list("login")?, p.text("group"), p.list("ticket")?);
        let symbols = p.text("symbol");
        let mut found: BTreeMap<u64, &SimPosition> = BTreeMap::new();
        if logins.is_some() || group.is_some() {
            for login in self.select(mask, logins, group)? {
                for x in self.positions.get(&login).into_iter().flatten() {
                    found.insert(x.ticket, x);
                }
            }
        } else if tickets.is_none() {
            return Err(INVALID);
        }
        if let Some(tickets) = tickets {
            let mut any = false;
            for x in self.positions.values().flatten() {
                if tickets.contains(&x.ticket) && self.visible(mask, x.login).is_some() {
                    found.insert(x.ticket, x);
                    any = true;
                }
            }
            if !any {
                return Err(NOT_FOUND);
            }
        }
        let list: Vec<Value> = found
            .values()
            .filter(|x| symbols.is_none_or(|s| group_matches(s, &x.symbol)))
            .map(|x| self.position_json(x))
            .collect();
        answered(json!(list))
    }

    fn deal_get_batch(&self, mask: &str, p: &Params) -> Handled {
        let (logins, group, tickets) = (p.list("login")?, p.text("group"), p.list("ticket")?);
        let (from, to): (Option<i64>, Option<i64>) = (p.opt("from")?, p.opt("to")?);
        let deals: Vec<&SimDeal> = match tickets {
            Some(tickets) => {
                let tz = self.tz_secs();
                let of: Option<Vec<u64>> = if logins.is_some() || group.is_some() {
                    Some(self.select(mask, logins, group)?)
                } else {
                    None
                };
                let mut list: Vec<&SimDeal> = self
                    .deals
                    .values()
                    .flatten()
                    .filter(|d| tickets.contains(&d.deal))
                    .filter(|d| self.visible(mask, d.login).is_some())
                    .filter(|d| of.as_ref().is_none_or(|o| o.contains(&d.login)))
                    .filter(|d| from.is_none_or(|f| d.time + tz >= f))
                    .filter(|d| to.is_none_or(|t| d.time + tz <= t))
                    .collect();
                if list.is_empty() {
                    return Err(NOT_FOUND);
                }
                list.sort_by_key(|d| (d.time, d.deal));
                list
            }
            None => {
                let (Some(from), Some(to)) = (from, to) else {
                    return Err(INVALID);
                };
                if from > to {
                    return Err(INVALID);
                }
                let logins = self.select(mask, logins, group)?;
                self.deals_between(&logins, from, to)
            }
        };
        answered(json!(
            deals
                .into_iter()
                .map(|d| self.deal_json(d))
                .collect::<Vec<_>>()
        ))
    }

    fn trade_balance(&mut self, manager: &SimManager, p: &Params) -> Handled {
        let login: u64 = p.req("login")?;
        let kind: u8 = p.req("type")?;
        let amount: Decimal = p.req("balance")?;
        let check_margin = match p.text("check_margin") {
            None | Some("1") => true,
            Some("0") => false,
            Some(_) => return Err(INVALID),
        };
        if manager.deny_balance {
            return Err(NO_RIGHTS);
        }
        let user = self.visible(&manager.groups, login).ok_or(NOT_FOUND)?;
        let amount = amount.round_dp(2);
        if !(kind == 2 || kind == 3) || amount.is_zero() {
            return Err(INVALID);
        }
        if amount.abs() > Decimal::from(AMOUNT_MAX) {
            return Err(TOO_MUCH);
        }
        if amount.is_sign_negative() {
            let free = self.equity(user) - user.margin;
            if (kind == 3 && user.credit + amount < Decimal::ZERO)
                || (check_margin && free + amount < Decimal::ZERO)
            {
                return Err(NO_MONEY);
            }
        }
        let ticket = self.ticket();
        let user = self.users.get_mut(&login).ok_or(NOT_FOUND)?;
        if kind == 3 {
            user.credit += amount;
        } else {
            user.balance += amount;
        }
        let comment: String = p
            .text("comment")
            .map(|c| c.chars().take(COMMENT_MAX).collect())
            .unwrap_or_default();
        self.push_deal(SimDeal {
            deal: ticket,
            login,
            action: kind,
            entry: 0,
            time: now(),
            symbol: String::new(),
            volume_ext: 0,
            volume_closed_ext: 0,
            price: Decimal::ZERO,
            price_position: Decimal::ZERO,
            profit: amount,
            commission: Decimal::ZERO,
            storage: Decimal::ZERO,
            position_id: 0,
            comment,
        });
        Ok(Answer::json(
            json!({"retcode": DONE, "answer": {"Ticket": ticket.to_string()}}),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The server: one task per TCP connection, hyper's HTTP/1.1 on it.

type Shared = Arc<Mutex<SimState>>;

fn lock(state: &Shared) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stream the server speaks HTTP on: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Counts a request in flight on a connection (an idle connection has none) for as long as it
/// lives.
struct InFlight {
    state: Shared,
    conn: u64,
}

impl InFlight {
    fn enter(state: &Shared, conn: u64) -> InFlight {
        if let Some(c) = lock(state).conns.get_mut(&conn) {
            c.in_flight += 1;
            c.last_active = Instant::now();
        }
        InFlight {
            state: state.clone(),
            conn,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.state).conns.get_mut(&self.conn) {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.last_active = Instant::now();
        }
    }
}

async fn handle(state: Shared, conn: u64, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let _flight = InFlight::enter(&state, conn);
    let (answer, delay) = lock(&state).serve(conn, req.method(), req.uri(), req.headers());
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer.into_response()
}

/// Serves one accepted connection until the client closes it, the server drops it
/// ([`SimState::drop_connections`]) or it stays idle too long; its session goes with it.
async fn serve_connection(state: Shared, id: u64, tcp: TcpStream, tls: Option<TlsAcceptor>) {
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Box::new(stream),
                _ => return,
            }
        }
    };
    let (kill, mut killed) = oneshot::channel::<()>();
    let idle = {
        let mut s = lock(&state);
        s.conns.insert(
            id,
            Conn {
                pending: None,
                session: None,
                in_flight: 0,
                last_active: Instant::now(),
                kill: Some(kill),
            },
        );
        s.idle_timeout
    };
    let svc_state = state.clone();
    let service = service_fn(move |req| {
        let state = svc_state.clone();
        async move { Ok::<_, Infallible>(handle(state, id, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Option::<Duration>::None)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    loop {
        let deadline = match lock(&state).conns.get(&id) {
            Some(c) if c.in_flight == 0 => c.last_active + idle,
            Some(_) => Instant::now() + idle,
            None => break,
        };
        tokio::select! {
            _ = connection.as_mut() => break,
            _ = &mut killed => break,
            _ = tokio::time::sleep_until(deadline.into()) => {
                let expired = lock(&state)
                    .conns
                    .get(&id)
                    .is_none_or(|c| c.in_flight == 0 && c.last_active.elapsed() >= idle);
                if expired {
                    break;
                }
            }
        }
    }
    lock(&state).conns.remove(&id);
}

/// The server's TLS configuration and what a client needs to trust it.
struct TlsSetup {
    acceptor: TlsAcceptor,
    ca_pem: String,
    cert_sha256: String,
}

fn tls_setup(kind: SimTls) -> TlsSetup {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(names).expect("leaf parameters");
    leaf.distinguished_name
        .push(DnType::CommonName, "MT5 Web API simulator");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (chain, ca_pem) = match kind {
        SimTls::SelfSigned => {
            let cert = leaf
                .self_signed(&leaf_key)
                .expect("self-signed certificate");
            (vec![cert.der().clone()], cert.pem())
        }
        SimTls::PrivateCa => {
            let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
            ca.distinguished_name
                .push(DnType::CommonName, "MT5 simulator test CA");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca_key = KeyPair::generate().expect("CA key");
            let issuer = CertifiedIssuer::self_signed(ca, ca_key).expect("CA certificate");
            let cert = leaf
                .signed_by(&leaf_key, &issuer)
                .expect("leaf certificate");
            (vec![cert.der().clone(), issuer.der().clone()], issuer.pem())
        }
    };
    let cert_sha256 = hex::encode(Sha256::digest(chain[0].as_ref()));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("TLS certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsSetup {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem,
        cert_sha256,
    }
}

/// A running simulator.
pub struct Mt5Sim {
    /// `http://127.0.0.1:PORT` (`https://` with TLS), the Web API's base URL.
    pub url: String,
    pub state: Shared,
    /// With TLS: the certificate to trust, PEM (the self-signed certificate, or the private CA).
    pub ca_pem: Option<String>,
    /// With TLS: hex SHA-256 of the server certificate's DER, for pinning.
    pub cert_sha256: Option<String>,
    _stop: oneshot::Sender<()>,
}

impl Mt5Sim {
    /// Starts a plain HTTP server with one manager, `manager_login`, that sees every group.
    pub async fn start(manager_login: u64, password: &str) -> Mt5Sim {
        let sim = Mt5Sim::start_with(SimOptions::default()).await;
        sim.with(|s| s.add_manager(manager_login, password, "*"));
        sim
    }

    /// Starts a server with no manager yet ([`SimState::add_manager`]).
    pub async fn start_with(options: SimOptions) -> Mt5Sim {
        let state: Shared = Arc::new(Mutex::new(SimState::new(&options)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let addr = listener.local_addr().expect("simulator address");
        let tls = options.tls.map(tls_setup);
        let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let shared = state.clone();
        tokio::spawn(async move {
            let mut next_id: u64 = 0;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => {
                            next_id += 1;
                            tokio::spawn(serve_connection(shared.clone(), next_id, tcp, acceptor.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                }
            }
            lock(&shared).drop_connections();
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Mt5Sim {
            url: format!("{scheme}://{addr}"),
            state,
            ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
            cert_sha256: tls.map(|t| t.cert_sha256),
            _stop: stop,
        }
    }

    /// Runs `f` on the simulator's state (set up accounts, inject faults, read deals).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    const MGR: u64 = 1000;
    const PW: &str = "Manager#1 pässword";

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

    fn start_query(login: u64) -> String {
        format!("/api/auth/start?version=484&agent=sim-test&login={login}&type=manager")
    }

    /// The `auth/answer` target for a server random, and our random.
    fn answer_query(password: &str, srv_rand: &str) -> (String, [u8; 16]) {
        let srv = hex::decode(srv_rand).unwrap();
        let cli: [u8; 16] = rand::random();
        let q = format!(
            "/api/auth/answer?srv_rand_answer={}&cli_rand={}",
            answer_to(&password_hash(password), &srv),
            hex::encode(cli)
        );
        (q, cli)
    }

    /// One TCP connection speaking HTTP/1.1 by hand, so the test knows which connection each
    /// request goes over.
    struct Raw(BufReader<TcpStream>);

    impl Raw {
        async fn open(sim: &Mt5Sim) -> Raw {
            let addr = sim.url.trim_start_matches("http://");
            Raw(BufReader::new(TcpStream::connect(addr).await.unwrap()))
        }

        /// Status, headers (lower-case names) and body.
        async fn send(
            &mut self,
            method: &str,
            target: &str,
        ) -> (u16, Vec<(String, String)>, String) {
            let req = format!(
                "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
            );
            self.0.get_mut().write_all(req.as_bytes()).await.unwrap();
            let mut line = String::new();
            self.0.read_line(&mut line).await.unwrap();
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_else(|| panic!("no status line: {line:?}"))
                .parse()
                .unwrap();
            let mut headers = Vec::new();
            loop {
                line.clear();
                self.0.read_line(&mut line).await.unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            self.0.read_exact(&mut body).await.unwrap();
            (status, headers, String::from_utf8(body).unwrap())
        }

        async fn get(&mut self, target: &str) -> (u16, String) {
            let (status, _, body) = self.send("GET", target).await;
            (status, body)
        }

        /// An MT5 answer (HTTP 200 with JSON).
        async fn json(&mut self, target: &str) -> Value {
            let (status, body) = self.get(target).await;
            assert_eq!(status, 200, "{target}: {body}");
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{target}: {body}"))
        }

        async fn retcode(&mut self, target: &str) -> String {
            self.json(target).await["retcode"]
                .as_str()
                .unwrap()
                .to_string()
        }

        async fn start(&mut self, login: u64) -> String {
            let v = self.json(&start_query(login)).await;
            assert_eq!(v["retcode"], DONE, "{v}");
            v["srv_rand"].as_str().unwrap().to_string()
        }

        async fn login(&mut self, login: u64, password: &str) {
            let srv = self.start(login).await;
            let (q, cli) = answer_query(password, &srv);
            let v = self.json(&q).await;
            assert_eq!(v["retcode"], DONE, "{v}");
            assert_eq!(
                v["cli_rand_answer"],
                answer_to(&password_hash(password), &cli)
            );
        }

        /// Whether the server closed the connection (within 2 s).
        async fn closed(&mut self) -> bool {
            let mut b = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_secs(2), self.0.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        }
    }

    /// Waits (up to 2 s) until `f` holds of the state.
    async fn eventually(sim: &Mt5Sim, f: impl Fn(&SimState) -> bool) -> bool {
        for _ in 0..200 {
            if sim.with(|s| f(s)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A client that keeps at most one idle connection: its requests go one after another over
    /// the same connection.
    fn pooled() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap()
    }

    async fn rq(c: &reqwest::Client, base: &str, target: &str) -> (u16, String) {
        let r = c.get(format!("{base}{target}")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn rq_json(c: &reqwest::Client, base: &str, target: &str) -> Value {
        let (status, body) = rq(c, base, target).await;
        assert_eq!(status, 200, "{target}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn rq_login(c: &reqwest::Client, base: &str, login: u64, password: &str) {
        let v = rq_json(c, base, &start_query(login)).await;
        let (q, _) = answer_query(password, v["srv_rand"].as_str().unwrap());
        let v = rq_json(c, base, &q).await;
        assert_eq!(v["retcode"], DONE, "{v}");
    }

    #[tokio::test]
    async fn a_session_is_the_connection_it_was_made_on() {
        let sim = Mt5Sim::start_with(SimOptions {
            auth_answer_window: Duration::from_millis(1_000),
            ..SimOptions::default()
        })
        .await;
        sim.with(|s| s.add_manager(MGR, PW, "*"));

        // No session: 403 with an empty body.
        let mut a = Raw::open(&sim).await;
        assert_eq!(a.get("/api/test/access").await, (403, String::new()));

        // The answer on another connection is refused; on the right one it is taken.
        let srv = a.start(MGR).await;
        let (q, _) = answer_query(PW, &srv);
        let mut b = Raw::open(&sim).await;
        assert_eq!(b.get(&q).await, (403, String::new()));
        assert_eq!(b.get("/api/test/access").await, (403, String::new()));
        assert_eq!(a.retcode(&q).await, DONE);
        assert_eq!(a.retcode("/api/test/access").await, DONE);
        assert_eq!(b.get("/api/test/access").await.0, 403);
        // Once.
        assert_eq!(a.get(&q).await, (403, String::new()));

        // A missing or wrong answer, a late one, a login that is no manager.
        let mut c = Raw::open(&sim).await;
        c.start(MGR).await;
        let cli = hex::encode([7u8; 16]);
        assert_eq!(
            c.get(&format!("/api/auth/answer?cli_rand={cli}")).await,
            (403, String::new())
        );
        let srv = c.start(MGR).await;
        let (q, _) = answer_query("not the password", &srv);
        assert_eq!(c.get(&q).await, (403, String::new()));
        let srv = c.start(MGR).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let (q, _) = answer_query(PW, &srv);
        assert_eq!(c.get(&q).await, (403, String::new()), "too late");
        let srv = c.start(4242).await;
        let (q, _) = answer_query(PW, &srv);
        assert_eq!(c.get(&q).await, (403, String::new()), "no such manager");
        c.login(MGR, PW).await;
        assert_eq!(c.retcode("/api/test/access").await, DONE);

        // A new handshake on a connection ends its session.
        c.start(MGR).await;
        assert_eq!(c.get("/api/test/access").await.0, 403);

        // The session goes with its connection.
        let conn_a = sim.with(|s| s.sessions())[0].0;
        drop(a);
        assert!(
            eventually(&sim, |s| s.sessions().iter().all(|(c, _)| *c != conn_a)).await,
            "closed: no session"
        );

        // quit: the session ends, and the server closes the connection.
        let mut d = Raw::open(&sim).await;
        d.login(MGR, PW).await;
        let (status, headers, body) = d.send("GET", "/api/quit").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "connection" && v == "close"),
            "{headers:?}"
        );
        assert!(d.closed().await);

        // A client with a pool of one connection: every command over the handshake's
        // connection.
        let client = pooled();
        rq_login(&client, &sim.url, MGR, PW).await;
        for _ in 0..3 {
            let (status, _) = rq(&client, &sim.url, "/api/test/access").await;
            assert_eq!(status, 200);
        }
        let log = sim.with(|s| s.requests());
        let answer = log
            .iter()
            .rev()
            .find(|r| r.path == "/api/auth/answer" && r.status == 200)
            .unwrap();
        let after: Vec<&LoggedRequest> = log
            .iter()
            .filter(|r| r.conn == answer.conn && r.path == "/api/test/access")
            .collect();
        assert_eq!(after.len(), 3, "{log:#?}");
        assert!(after.iter().all(|r| r.manager == Some(MGR)));
    }

    /// Users in three groups, a manager that sees only `real\*` but not `real\vip`.
    async fn two_managers() -> Mt5Sim {
        let sim = Mt5Sim::start(MGR, PW).await;
        sim.with(|s| {
            s.add_manager(2000, "second", "real\\*,!real\\vip");
            for (g, login) in [("real\\usd", 1), ("real\\vip", 2), ("demo\\usd", 3)] {
                s.add_group(g, "USD");
                s.add_account(login, g, "Some One", "100.00", "0.00", "0.00");
                s.add_position(
                    login,
                    login * 10,
                    "EURUSD",
                    0,
                    "1",
                    "1.1",
                    "1",
                    "0",
                    1_700_000_000,
                );
                s.add_closed(
                    login,
                    login * 100,
                    "EURUSD",
                    0,
                    "1",
                    ("1.1", 1_700_000_000),
                    ("1.2", 1_700_000_100),
                    "10",
                    "-1",
                    "0",
                );
            }
        });
        sim
    }

    #[tokio::test]
    async fn a_manager_sees_only_its_groups() {
        let sim = two_managers().await;
        let mut m = Raw::open(&sim).await;
        m.login(2000, "second").await;
        let v = m.json("/api/user/logins?group=*").await;
        assert_eq!(v["answer"], json!(["1"]));
        let v = m.json("/api/user/get_batch?login=1,2,3").await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 1, "{v}");
        let v = m.json("/api/user/get_batch?group=*").await;
        assert_eq!(v["answer"][0]["Login"], "1", "{v}");
        let range = "from=0&to=2000000000";
        for target in [
            "/api/user/get_batch?login=2".to_string(),
            "/api/user/account/get_batch?login=2,3".into(),
            "/api/position/get_batch?login=2".into(),
            "/api/position/get_batch?ticket=20".into(),
            "/api/position/get_page?login=2&offset=0&total=10".into(),
            format!("/api/deal/get_page?login=2&{range}&offset=0&total=10"),
            format!("/api/deal/get_batch?login=3&{range}"),
            // Login 2's entry deal.
            "/api/deal/get_batch?ticket=100003".into(),
            "/api/trade/balance?login=2&type=2&balance=10".into(),
            "/api/group/get?group=real%5Cvip".into(),
        ] {
            assert_eq!(m.retcode(&target).await, NOT_FOUND, "{target}");
        }
        let v = m.json("/api/group/get?group=real%5Cusd").await;
        assert_eq!(v["answer"]["Currency"], "USD", "{v}");
        let v = m.json("/api/position/get_batch?group=*").await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 1, "{v}");
        let v = m
            .json(&format!("/api/deal/get_batch?group=*&{range}"))
            .await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(sim.with(|s| s.balance_deals(2).len()), 0);

        // The first manager sees everything.
        let mut all = Raw::open(&sim).await;
        all.login(MGR, PW).await;
        let v = all.json("/api/user/logins?group=*").await;
        assert_eq!(v["answer"], json!(["1", "2", "3"]));
        let v = all.json("/api/position/get_batch?login=2,3").await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 2, "{v}");
    }

    #[tokio::test]
    async fn the_log_names_each_request_s_connection_and_manager() {
        let sim = two_managers().await;
        let (first, second) = (pooled(), pooled());
        rq_login(&first, &sim.url, MGR, PW).await;
        rq_login(&second, &sim.url, 2000, "second").await;
        for _ in 0..3 {
            rq_json(&first, &sim.url, "/api/user/logins?group=*").await;
            rq_json(&second, &sim.url, "/api/user/logins?group=*").await;
        }
        let mut raw = Raw::open(&sim).await;
        raw.get("/api/test/access").await;
        let log = sim.with(|s| s.requests());
        let session_of: HashMap<u64, u64> = log
            .iter()
            .filter(|r| r.path == "/api/auth/answer" && r.status == 200)
            .map(|r| {
                let start = log
                    .iter()
                    .rfind(|s| s.conn == r.conn && s.path == "/api/auth/start")
                    .unwrap();
                (r.conn, start.param("login").unwrap().parse().unwrap())
            })
            .collect();
        assert_eq!(session_of.len(), 2, "two connections: {log:#?}");
        let logins: Vec<&LoggedRequest> = log
            .iter()
            .filter(|r| r.path == "/api/user/logins")
            .collect();
        assert_eq!(logins.len(), 6);
        for r in &logins {
            assert_eq!(r.manager, session_of.get(&r.conn).copied(), "{r:?}");
            assert_eq!(r.param("group"), Some("*"));
            assert_eq!(r.retcode.as_deref(), Some(DONE));
        }
        let last = log.last().unwrap();
        assert_eq!(
            (
                last.manager,
                last.status,
                last.keep_alive,
                last.retcode.clone()
            ),
            (None, 403, true, None)
        );
        assert_eq!(last.connection.as_deref(), Some("keep-alive"));
        assert_eq!(sim.with(|s| s.connections()), 3);
    }

    #[tokio::test]
    async fn idle_and_dropped_connections_lose_their_sessions() {
        let sim = Mt5Sim::start_with(SimOptions {
            idle_timeout: Duration::from_millis(800),
            ..SimOptions::default()
        })
        .await;
        sim.with(|s| s.add_manager(MGR, PW, "*"));

        let mut idle = Raw::open(&sim).await;
        idle.login(MGR, PW).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(idle.closed().await, "idle for longer than the timeout");
        assert!(eventually(&sim, |s| s.sessions().is_empty()).await);

        // A request in progress is no idleness.
        let mut busy = Raw::open(&sim).await;
        busy.login(MGR, PW).await;
        sim.with(|s| s.delay("/api/test/access", Duration::from_millis(1_200), 1));
        assert_eq!(busy.retcode("/api/test/access").await, DONE);
        assert_eq!(busy.retcode("/api/test/access").await, DONE);

        // Dropped by the server.
        sim.with(|s| s.drop_connections());
        assert!(busy.closed().await);
        assert!(eventually(&sim, |s| s.open_connections().is_empty()).await);
        let mut fresh = Raw::open(&sim).await;
        assert_eq!(fresh.get("/api/test/access").await.0, 403);

        // Forgotten sessions: the connection stays open, and authenticates again on it.
        fresh.login(MGR, PW).await;
        sim.with(|s| s.forget_sessions());
        assert_eq!(fresh.get("/api/test/access").await, (403, String::new()));
        fresh.login(MGR, PW).await;
        assert_eq!(fresh.retcode("/api/test/access").await, DONE);
        let conns: BTreeSet<u64> =
            sim.with(|s| s.requests().iter().rev().take(5).map(|r| r.conn).collect());
        assert_eq!(conns.len(), 1, "one connection throughout");
    }

    #[tokio::test]
    async fn parameters_are_strict() {
        let sim = Mt5Sim::start(MGR, PW).await;
        sim.with(|s| {
            s.add_group("real", "USD");
            s.add_account(1, "real", "A B", "1", "0", "0");
        });
        let mut m = Raw::open(&sim).await;
        // Unknown parameters of the handshake.
        let v = m.json(&format!("{}&lang=en", start_query(MGR))).await;
        assert_eq!(v["retcode"], INVALID);
        m.login(MGR, PW).await;
        let range = "from=0&to=2000000000";
        for target in [
            "/api/test/access?x=1".to_string(),
            "/api/quit?now=1".into(),
            "/api/user/logins?group=*&limit=5".into(),
            "/api/user/logins".into(),
            "/api/user/logins?group=*&group=real".into(),
            "/api/user/get_batch".into(),
            "/api/user/get_batch?login=1,x".into(),
            "/api/user/get_batch?logins=1".into(),
            "/api/user/account/get_batch?login=".into(),
            "/api/group/get".into(),
            "/api/position/get_batch".into(),
            "/api/position/get_batch?login=1&offset=0".into(),
            "/api/position/get_page?login=1&offset=0&total=0".into(),
            "/api/position/get_page?login=1&offset=0&total=101".into(),
            "/api/position/get_page?login=1&total=10".into(),
            format!("/api/deal/get_page?login=1&{range}&offset=0&total=101"),
            format!("/api/deal/get_page?login=1&{range}&offset=0&total=0"),
            format!("/api/deal/get_page?login=1,2&{range}&offset=0&total=10"),
            "/api/deal/get_page?login=1&from=0&offset=0&total=10".into(),
            "/api/deal/get_page?login=1&from=10&to=5&offset=0&total=10".into(),
            format!("/api/deal/get_page?login=1&{range}&offset=0&total=10&symbol=EURUSD"),
            "/api/deal/get_batch?login=1".into(),
            format!("/api/deal/get_batch?login=1&{range}&offset=0"),
            "/api/trade/balance?login=1&type=2".into(),
            "/api/trade/balance?login=1&type=2&balance=1&margin_check=0".into(),
            "/api/time/get?tz=1".into(),
            "/api/time/server?x".into(),
            "/api/common/get?name=x".into(),
            "/api/user/logins?group=%zz".into(),
        ] {
            assert_eq!(m.retcode(&target).await, INVALID, "{target}");
        }
        let v = m
            .json("/api/position/get_page?login=1&offset=0&total=100")
            .await;
        assert_eq!(v["retcode"], DONE);
        // Unknown paths and methods: empty bodies.
        assert_eq!(m.get("/api/user/nope").await, (404, String::new()));
        assert_eq!(m.get("/").await, (404, String::new()));
        let (status, _, body) = m.send("POST", "/api/test/access").await;
        assert_eq!((status, body.as_str()), (405, ""));
        // Without a session the session is what is refused first.
        let mut anon = Raw::open(&sim).await;
        assert_eq!(anon.get("/api/test/access?x=1").await, (403, String::new()));
    }

    #[tokio::test]
    async fn balance_operations_check_type_amount_money_and_rights() {
        let sim = Mt5Sim::start(MGR, PW).await;
        sim.with(|s| {
            s.add_group("real", "USD");
            // Equity 100 + 50 - 20 = 130, margin 30: free margin 100.
            s.add_account(7, "real", "A B", "100.00", "50.00", "30.00");
            s.add_position(7, 70, "EURUSD", 0, "1", "1.1", "-20", "0", 1_700_000_000);
        });
        let mut m = Raw::open(&sim).await;
        m.login(MGR, PW).await;
        let op = |q: &str| format!("/api/trade/balance?login=7&{q}");
        for (q, want) in [
            ("type=4&balance=10", INVALID),
            ("type=6&balance=10", INVALID),
            ("type=2&balance=0", INVALID),
            ("type=2&balance=0.001", INVALID),
            ("type=2&balance=abc", INVALID),
            ("type=2&balance=10&check_margin=2", INVALID),
            ("type=2&balance=1000000001", TOO_MUCH),
            ("type=2&balance=-1000000001", TOO_MUCH),
            ("type=2&balance=-100.01", NO_MONEY),
            ("type=3&balance=-50.01", NO_MONEY),
            ("type=3&balance=-50.01&check_margin=0", NO_MONEY),
        ] {
            assert_eq!(m.retcode(&op(q)).await, want, "{q}");
        }
        assert!(sim.with(|s| s.balance_deals(7).is_empty()));
        let v = m.json(&op("type=2&balance=-100.00")).await;
        assert_eq!(v["retcode"], DONE, "the whole free margin: {v}");
        assert_eq!(m.retcode(&op("type=2&balance=-1")).await, NO_MONEY);
        assert_eq!(
            m.retcode(&op("type=2&balance=-1&check_margin=0")).await,
            DONE
        );
        let long = "x".repeat(40);
        assert_eq!(
            m.retcode(&op(&format!("type=3&balance=25&comment={long}%20y")))
                .await,
            DONE
        );
        let deals = sim.with(|s| s.balance_deals(7));
        assert_eq!(deals.len(), 3);
        assert_eq!(
            deals[0].0.to_string(),
            v["answer"]["Ticket"].as_str().unwrap()
        );
        assert_eq!(
            (deals[2].1, deals[2].2, deals[2].3.as_str()),
            (3, Decimal::from(25), &long[..31])
        );
        sim.with(|s| {
            assert_eq!(s.users[&7].balance, "-1.00".parse::<Decimal>().unwrap());
            assert_eq!(s.users[&7].credit, "75.00".parse::<Decimal>().unwrap());
        });

        // Without the right: 8, and the session goes on.
        sim.with(|s| s.deny_balance(MGR));
        assert_eq!(m.retcode(&op("type=2&balance=5")).await, NO_RIGHTS);
        assert_eq!(m.retcode("/api/test/access").await, DONE);
        assert_eq!(sim.with(|s| s.sessions().len()), 1);
        assert_eq!(sim.with(|s| s.balance_deals(7).len()), 3);
    }

    #[tokio::test]
    async fn only_traded_accounts_have_trade_accounts() {
        let sim = Mt5Sim::start(MGR, PW).await;
        sim.with(|s| {
            s.add_group("real", "USD");
            s.add_account(1, "real", "Idle One", "250.00", "10.00", "0.00");
            s.add_account(2, "real", "Idle Two", "0.00", "0.00", "0.00");
        });
        let mut m = Raw::open(&sim).await;
        m.login(MGR, PW).await;
        let v = m.json("/api/user/account/get_batch?login=1,2").await;
        assert_eq!(
            (v["retcode"].as_str(), &v["answer"]),
            (Some(DONE), &json!([]))
        );
        let v = m.json("/api/user/get_batch?login=1,2").await;
        assert_eq!(
            (&v["answer"][0]["Balance"], &v["answer"][0]["Credit"]),
            (&json!("250.00"), &json!("10.00"))
        );
        assert_eq!(v["answer"].as_array().unwrap().len(), 2);

        sim.with(|s| s.set_active(1, true));
        let v = m.json("/api/user/account/get_batch?login=1,2").await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 1);
        assert_eq!(v["answer"][0]["Equity"], "260.00");
        // A balance operation is trade activity.
        assert_eq!(
            m.retcode("/api/trade/balance?login=2&type=2&balance=5")
                .await,
            DONE
        );
        let v = m.json("/api/user/account/get_batch?group=*").await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 2, "{v}");
        sim.with(|s| s.set_active(1, false));
        let v = m.json("/api/user/account/get_batch?login=1").await;
        assert_eq!(v["answer"], json!([]));
    }

    #[tokio::test]
    async fn times_are_served_in_the_server_s_time_zone() {
        let t = 1_700_000_000;
        let sim = Mt5Sim::start_with(SimOptions {
            server_tz_minutes: 120,
            ..SimOptions::default()
        })
        .await;
        sim.with(|s| {
            s.add_manager(MGR, PW, "*");
            s.add_group("real", "USD");
            s.add_account(1, "real", "A B", "1", "0", "0");
            s.add_position(1, 10, "EURUSD", 0, "1", "1.1", "0", "0", t);
            s.add_closed(
                1,
                11,
                "EURUSD",
                0,
                "1",
                ("1.1", t),
                ("1.2", t + 60),
                "1",
                "0",
                "0",
            );
        });
        let mut m = Raw::open(&sim).await;
        m.login(MGR, PW).await;
        let page = |from: i64, to: i64| {
            format!("/api/deal/get_page?login=1&from={from}&to={to}&offset=0&total=100")
        };
        let v = m.json(&page(t - 10, t + 100)).await;
        assert_eq!(
            v["answer"],
            json!([]),
            "a query in UTC misses by the offset"
        );
        let v = m.json(&page(t + 7_200 - 10, t + 7_200 + 100)).await;
        assert_eq!(v["answer"][0]["Time"], (t + 7_200).to_string(), "{v}");
        assert_eq!(v["answer"][1]["Time"], (t + 7_260).to_string(), "{v}");
        let v = m
            .json(&format!(
                "/api/deal/get_batch?login=1&from={}&to={}",
                t + 7_200,
                t + 7_200
            ))
            .await;
        assert_eq!(v["answer"].as_array().unwrap().len(), 1, "{v}");
        let v = m.json("/api/position/get_batch?login=1").await;
        assert_eq!(v["answer"][0]["TimeCreate"], (t + 7_200).to_string());
        assert_eq!(v["answer"][0]["TimeUpdate"], (t + 7_200).to_string());
        let v = m.json("/api/user/get_batch?login=1").await;
        assert_eq!(v["answer"][0]["Registration"], (t + 7_200).to_string());
        let v = m.json("/api/time/get").await;
        assert_eq!(
            (&v["answer"]["TimeZone"], &v["answer"]["Daylight"]),
            (&json!("120"), &json!("0"))
        );
        let v = m.json("/api/time/server").await;
        let served: i64 = v["answer"]["time"].as_str().unwrap().parse().unwrap();
        assert!((served - (now() + 7_200)).abs() <= 5, "{v}");
        sim.with(|s| s.hide_time_config = true);
        assert_eq!(m.retcode("/api/time/get").await, NO_RIGHTS);
        assert_eq!(m.retcode("/api/test/access").await, DONE);

        let west = Mt5Sim::start_with(SimOptions {
            server_tz_minutes: -300,
            ..SimOptions::default()
        })
        .await;
        west.with(|s| {
            s.add_manager(MGR, PW, "*");
            s.add_account(1, "real", "A B", "1", "0", "0");
            s.add_closed(
                1,
                11,
                "EURUSD",
                0,
                "1",
                ("1.1", t),
                ("1.2", t + 60),
                "1",
                "0",
                "0",
            );
        });
        let mut w = Raw::open(&west).await;
        w.login(MGR, PW).await;
        let v = w.json(&page(t - 18_000, t - 18_000)).await;
        assert_eq!(v["answer"][0]["Time"], (t - 18_000).to_string(), "{v}");
        let v = w.json("/api/time/get").await;
        assert_eq!(v["answer"]["TimeZone"], "-300");
    }

    #[tokio::test]
    async fn deals_carry_both_volumes_and_netting_reversals() {
        let t = 1_700_000_000;
        let sim = Mt5Sim::start(MGR, PW).await;
        sim.with(|s| {
            s.add_account(1, "real", "A B", "1000", "0", "0");
            s.add_closed(
                1,
                50,
                "EURUSD",
                0,
                "0.12345678",
                ("1.1", t),
                ("1.2", t + 10),
                "1",
                "0",
                "0",
            );
            s.add_deal_in(1, 60, "XAUUSD", 0, "1", ("2000.0", t + 100), "-1");
            s.add_netting_reversal(1, 60, "XAUUSD", "1.5", ("2010.0", t + 200), "1000", "-1.5");
        });
        let mut m = Raw::open(&sim).await;
        m.login(MGR, PW).await;
        const DEALS: &str = "/api/deal/get_page?login=1&from=0&to=2000000000&offset=0&total=100";
        let d = m.json(DEALS).await["answer"].clone();
        assert_eq!(
            (
                &d[0]["VolumeExt"],
                &d[0]["Volume"],
                &d[1]["VolumeClosedExt"]
            ),
            (&json!("12345678"), &json!("1234"), &json!("12345678"))
        );
        let rev = &d[3];
        assert_eq!(
            (
                rev["Entry"].as_str(),
                rev["Action"].as_str(),
                rev["PositionID"].as_str(),
                rev["VolumeExt"].as_str(),
                rev["Volume"].as_str(),
                rev["VolumeClosedExt"].as_str(),
                rev["PricePosition"].as_str(),
            ),
            (
                Some("2"),
                Some("1"),
                Some("60"),
                Some("150000000"),
                Some("15000"),
                Some("100000000"),
                Some("2000.0")
            ),
            "{rev}"
        );
        let v = m.json("/api/position/get_batch?login=1").await;
        let p = &v["answer"][0];
        assert_eq!(
            (
                p["Position"].as_str(),
                p["Action"].as_str(),
                p["VolumeExt"].as_str(),
                p["PriceOpen"].as_str()
            ),
            (Some("60"), Some("1"), Some("50000000"), Some("2010.0")),
            "the reversed position: {v}"
        );

        sim.with(|s| {
            s.add_deal_out(
                1,
                60,
                "XAUUSD",
                "0.5",
                ("2005.0", t + 300),
                "2.5",
                "-0.5",
                "0",
            )
        });
        let d = m.json(DEALS).await["answer"].clone();
        let entries: Vec<&str> = d
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["PositionID"] == "60")
            .map(|x| x["Entry"].as_str().unwrap())
            .collect();
        assert_eq!(entries, ["0", "2", "1"]);
        assert_eq!(
            (d[4]["Action"].as_str(), d[4]["VolumeExt"].as_str()),
            (Some("0"), Some("50000000"))
        );
        let v = m.json("/api/position/get_batch?login=1").await;
        assert_eq!(v["answer"], json!([]), "closed");
    }

    async fn tls_client(sim: &Mt5Sim) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(sim.ca_pem.as_deref().unwrap().as_bytes()).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .tls_info(true)
            .pool_max_idle_per_host(1)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn tls_with_a_self_signed_certificate_or_a_private_ca() {
        for kind in [SimTls::SelfSigned, SimTls::PrivateCa] {
            let sim = Mt5Sim::start_with(SimOptions {
                tls: Some(kind),
                ..SimOptions::default()
            })
            .await;
            sim.with(|s| s.add_manager(MGR, PW, "*"));
            assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
            let client = tls_client(&sim).await;
            let r = client
                .get(format!("{}/api/test/access", sim.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
            let leaf = r
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate())
                .map(|der| hex::encode(Sha256::digest(der)))
                .unwrap();
            assert_eq!(Some(leaf), sim.cert_sha256, "{kind:?}");
            rq_login(&client, &sim.url, MGR, PW).await;
            assert_eq!(rq(&client, &sim.url, "/api/test/access").await.0, 200);
            assert_eq!(sim.with(|s| s.connections()), 1, "{kind:?}");

            // A client that does not trust it gets nowhere.
            let untrusting = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .build()
                .unwrap();
            let r = untrusting
                .get(format!("{}/api/test/access", sim.url))
                .send()
                .await;
            assert!(r.is_err(), "{kind:?}");
            // Nor does plain HTTP.
            let plain = sim.url.replacen("https", "http", 1);
            assert!(
                reqwest::get(format!("{plain}/api/test/access"))
                    .await
                    .is_err()
            );
        }
        let ca = Mt5Sim::start_with(SimOptions {
            tls: Some(SimTls::PrivateCa),
            ..SimOptions::default()
        })
        .await;
        assert!(
            ca.ca_pem
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }

    #[tokio::test]
    async fn faults_hits_and_connections() {
        let sim = Mt5Sim::start(MGR, PW).await;
        let mut m = Raw::open(&sim).await;
        m.login(MGR, PW).await;
        sim.with(|s| {
            s.fail("/api/test/access", "12 Too frequent requests", 1);
            s.http_fail("/api/time/server", 503, 1);
            s.delay("/api/common/get", Duration::from_millis(300), 1);
        });
        assert_eq!(
            m.retcode("/api/test/access").await,
            "12 Too frequent requests"
        );
        assert_eq!(m.retcode("/api/test/access").await, DONE);
        assert_eq!(m.get("/api/time/server").await, (503, String::new()));
        assert_eq!(m.retcode("/api/time/server").await, DONE);
        let at = Instant::now();
        assert_eq!(m.retcode("/api/common/get").await, DONE);
        assert!(at.elapsed() >= Duration::from_millis(300));
        let mut other = Raw::open(&sim).await;
        other.get("/api/test/access").await;
        // An open connection that never asks anything is not counted.
        let _silent = Raw::open(&sim).await;
        sim.with(|s| {
            assert_eq!(
                (
                    s.hits("/api/test/access"),
                    s.hits("/api/time/server"),
                    s.hits("/api/auth/start")
                ),
                (3, 2, 1)
            );
            assert_eq!(s.connections(), 2);
        });
    }
}
