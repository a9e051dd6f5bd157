//! A session with an MT5 Web API server: the handshake, the session kept between requests,
//! `retcode` checks, timeouts and bounded retries with backoff.
//!
//! The server binds an authenticated session to the keep-alive connection it was made on
//! (MetaQuotes, "Connection Maintenance"): the transport must send every request of a client
//! over one connection of its own (the engine gives each connector session its own connection;
//! the native connector one agent per session) and ask for keep-alive. Any cookie the server
//! sets is sent back as well (a proxy in front of it may use one).
//!
//! What a refusal means:
//! - HTTP 403 (or 401) without a retcode: the connection carries no session (it was replaced,
//!   or the server dropped it). On a command, the connector authenticates again once and
//!   repeats it. During the handshake it is also what a wrong password gets, so a handshake
//!   refused that way is tried once more from the start before the password is blamed.
//! - A closed connection or a timeout: transient, retried with backoff (the next request goes
//!   over a new connection, which then needs a new handshake).
//! - Retcode 8 (`MT_RET_ERR_PERMISSIONS`): the manager may not do this; reported, never
//!   "fixed" by authenticating again.
//! - Retcodes 1000-1999 (authentication): reported as such, naming the code.

use serde_json::Value;

use crate::auth;
use crate::retcode::{Class, Retcode};
use crate::wire::{path_with_query, text};

/// What the connector needs of its host: HTTP (the engine's `http-client` in the component, a
/// blocking client in the native connector, a scripted fake in unit tests), sleep, randomness
/// and logging.
pub trait Transport {
    fn get(
        &mut self,
        url: &str,
        cookie: Option<&str>,
        timeout_ms: u32,
    ) -> Result<HttpReply, TransportError>;
    fn sleep_ms(&mut self, ms: u64);
    /// 16 random bytes, or `None` when no randomness is to be had.
    fn random16(&mut self) -> Option<[u8; 16]>;
    /// A line for the operator's log (the engine's log in the component; `tracing`-less
    /// native builds may drop it).
    fn log(&mut self, _level: Level, _message: &str) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

pub struct HttpReply {
    pub status: u16,
    /// The `set-cookie` header values.
    pub set_cookies: Vec<String>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum TransportError {
    Timeout,
    /// Connection refused, TLS, DNS, ...
    Failed(String),
    /// The engine refused the request (host not allowed, ...).
    Denied(String),
}

/// The connector's errors, each mapped onto the WIT `connector.error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mt5Error {
    Unauthorized(String),
    Unavailable(String),
    Rejected(String),
    NotFound(String),
}

impl Mt5Error {
    pub fn message(&self) -> &str {
        match self {
            Mt5Error::Unauthorized(m)
            | Mt5Error::Unavailable(m)
            | Mt5Error::Rejected(m)
            | Mt5Error::NotFound(m) => m,
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, Mt5Error::Unavailable(_))
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:port`, without a trailing slash.
    pub endpoint: String,
    pub login: String,
    pub password: String,
    pub agent: String,
    pub version: String,
    pub timeout_ms: u32,
    /// Further attempts after a transient failure.
    pub retries: u32,
    pub backoff_ms: u64,
}

impl Settings {
    /// Identifies the server and credentials a session was made with.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}",
            self.endpoint,
            self.login,
            hex::encode(auth::password_hash(&self.password))
        )
    }
}

/// An authenticated session: the cookies the server set, and the versions it reported.
#[derive(Debug, Clone, Default)]
pub struct Session {
    cookies: Vec<(String, String)>,
    pub version_access: Option<String>,
    pub version_trade: Option<String>,
}

impl Session {
    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
    fn absorb(&mut self, set_cookies: &[String]) {
        for c in set_cookies {
            let Some((name, value)) = c.split(';').next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            self.cookies.retain(|(k, _)| *k != name);
            self.cookies.push((name, value));
        }
    }
}

/// How a handshake failed: `Ambiguous` when the server gave no reason (a refusal without a
/// retcode, or the connection lost mid-way), which a fresh handshake may cure; `true` when it
/// was `auth/answer` that was refused so.
enum Handshake {
    Ambiguous(Mt5Error, bool),
    Failed(Mt5Error),
}

pub struct Client<T: Transport> {
    pub settings: Settings,
    transport: T,
    session: Option<Session>,
}

/// What one exchange came back as. `bare` marks the refusals that name no reason (HTTP 401/403
/// without a retcode): the connection has no session.
enum Outcome {
    Ok(Value),
    Err(Mt5Error, Class),
    Bare(Mt5Error),
}

impl<T: Transport> Client<T> {
    pub fn new(settings: Settings, transport: T) -> Client<T> {
        Client {
            settings,
            transport,
            session: None,
        }
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    pub fn log(&mut self, level: Level, message: &str) {
        self.transport.log(level, message);
    }

    /// One GET: transport errors, HTTP status and `retcode` folded into one outcome.
    fn exchange(&mut self, path: &str, what: &str) -> Outcome {
        let url = format!("{}{}", self.settings.endpoint, path);
        let cookie = self.session.as_ref().and_then(Session::cookie_header);
        let reply = match self
            .transport
            .get(&url, cookie.as_deref(), self.settings.timeout_ms)
        {
            Ok(r) => r,
            Err(TransportError::Timeout) => {
                return Outcome::Err(
                    Mt5Error::Unavailable(format!(
                        "{what}: no answer from {} within {} ms",
                        self.settings.endpoint, self.settings.timeout_ms
                    )),
                    Class::Transient,
                );
            }
            Err(TransportError::Failed(e)) => {
                return Outcome::Err(
                    Mt5Error::Unavailable(format!(
                        "{what}: cannot reach {}: {e}",
                        self.settings.endpoint
                    )),
                    Class::Transient,
                );
            }
            Err(TransportError::Denied(e)) => {
                return Outcome::Err(
                    Mt5Error::Unavailable(format!(
                        "{what}: the engine refused the request to {}: {e}",
                        self.settings.endpoint
                    )),
                    Class::Rejected,
                );
            }
        };
        if let Some(s) = self.session.as_mut() {
            s.absorb(&reply.set_cookies);
        }
        let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
        let retcode = body
            .as_ref()
            .and_then(|b| text(b, "retcode"))
            .and_then(|t| Retcode::parse(&t));
        match (reply.status, retcode) {
            (200, Some(rc)) if rc.is_ok() => Outcome::Ok(body.unwrap_or(Value::Null)),
            (_, Some(rc)) => {
                let class = rc.class();
                let msg = format!("{what}: {rc}");
                let err = match class {
                    Class::Auth => Mt5Error::Unauthorized(msg),
                    Class::Transient => Mt5Error::Unavailable(msg),
                    Class::NotFound => Mt5Error::NotFound(msg),
                    Class::Ok | Class::Rejected => Mt5Error::Rejected(msg),
                };
                Outcome::Err(err, class)
            }
            (401 | 403, None) => Outcome::Bare(Mt5Error::Unauthorized(format!(
                "{what}: HTTP {} without a retcode (no session on this connection)",
                reply.status
            ))),
            (s, None) if s >= 500 => Outcome::Err(
                Mt5Error::Unavailable(format!("{what}: HTTP {s} from the server")),
                Class::Transient,
            ),
            (s, None) => Outcome::Err(
                Mt5Error::Rejected(format!(
                    "{what}: HTTP {s}, and the answer is not an MT5 answer (no retcode)"
                )),
                Class::Rejected,
            ),
        }
    }

    fn backoff(&mut self, attempt: u32) {
        let ms = self.settings.backoff_ms.saturating_mul(1 << attempt.min(6));
        self.transport.sleep_ms(ms.min(5_000));
    }

    /// `exchange` with bounded retries of transient failures.
    fn exchange_retrying(&mut self, path: &str, what: &str) -> Outcome {
        let mut attempt = 0;
        loop {
            match self.exchange(path, what) {
                Outcome::Err(e, Class::Transient) if attempt < self.settings.retries => {
                    let _ = e;
                    self.backoff(attempt);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The handshake: `auth/start`, our answer to the server's random, and the check of the
    /// server's answer to ours. A handshake refused without a reason (HTTP 403 without a
    /// retcode, or the connection lost between its two requests) is made once more from the
    /// start; refused so twice at `auth/answer`, the password is what the server refuses.
    pub fn connect(&mut self) -> Result<(), Mt5Error> {
        let mut attempt = 0;
        loop {
            self.session = Some(Session::default());
            let err = match self.handshake() {
                Ok(()) => return Ok(()),
                Err(Handshake::Ambiguous(e, _)) if attempt == 0 => {
                    self.transport.log(
                        Level::Warn,
                        &format!("{}; starting the handshake again", e.message()),
                    );
                    attempt += 1;
                    continue;
                }
                Err(Handshake::Ambiguous(Mt5Error::Unauthorized(m), true)) => {
                    Mt5Error::Unauthorized(format!(
                        "the server refused manager {}'s password: {m}, twice, each time on the connection of its auth/start",
                        self.settings.login
                    ))
                }
                Err(Handshake::Ambiguous(e, _) | Handshake::Failed(e)) => e,
            };
            self.session = None;
            return Err(err);
        }
    }

    fn handshake(&mut self) -> Result<(), Handshake> {
        let s = &self.settings;
        let start = path_with_query(
            "/api/auth/start",
            &[
                ("version", s.version.clone()),
                ("agent", s.agent.clone()),
                ("login", s.login.clone()),
                ("type", "manager".into()),
            ],
        );
        let started = match self.exchange_retrying(&start, "auth/start") {
            Outcome::Ok(v) => v,
            Outcome::Bare(e) => return Err(Handshake::Ambiguous(e, false)),
            Outcome::Err(Mt5Error::Unauthorized(m), _) => {
                return Err(Handshake::Failed(Mt5Error::Unauthorized(format!(
                    "{m} (manager login {})",
                    self.settings.login
                ))));
            }
            Outcome::Err(e, _) => return Err(Handshake::Failed(e)),
        };
        let srv_rand = text(&started, "srv_rand")
            .and_then(|r| auth::parse_random(&r))
            .ok_or_else(|| {
                Handshake::Failed(Mt5Error::Unavailable(
                    "auth/start: the answer has no srv_rand of 16 bytes in hex; is the endpoint an MT5 Web API server?".into(),
                ))
            })?;
        let ph = auth::password_hash(&self.settings.password);
        let cli_rand = self.transport.random16().ok_or_else(|| {
            Handshake::Failed(Mt5Error::Unavailable(
                "no randomness for cli_rand: the server cannot be authenticated".into(),
            ))
        })?;
        let answer = path_with_query(
            "/api/auth/answer",
            &[
                ("srv_rand_answer", auth::answer(&ph, &srv_rand)),
                ("cli_rand", hex::encode(cli_rand)),
            ],
        );
        // Not retried alone: the server's random is single-use, valid for 10 seconds, and
        // bound to the connection auth/start went over.
        let answered = match self.exchange(&answer, "auth/answer") {
            Outcome::Ok(v) => v,
            Outcome::Bare(e) => return Err(Handshake::Ambiguous(e, true)),
            Outcome::Err(e, Class::Transient) => return Err(Handshake::Ambiguous(e, false)),
            Outcome::Err(Mt5Error::Unauthorized(m), _) => {
                return Err(Handshake::Failed(Mt5Error::Unauthorized(format!(
                    "the server refused manager {}'s password: {m}",
                    self.settings.login
                ))));
            }
            Outcome::Err(e, _) => return Err(Handshake::Failed(e)),
        };
        let given = text(&answered, "cli_rand_answer").unwrap_or_default();
        if !auth::server_answer_ok(&ph, &cli_rand, &given) {
            return Err(Handshake::Failed(Mt5Error::Unauthorized(format!(
                "auth/answer: the server's cli_rand_answer is wrong, so it does not know manager {}'s password: not the configured MT5 server (or an impostor); nothing more was sent to it",
                self.settings.login
            ))));
        }
        if let Some(session) = self.session.as_mut() {
            session.version_access = text(&started, "version_access");
            session.version_trade = text(&answered, "version_trade");
        }
        Ok(())
    }

    fn ensure_session(&mut self) -> Result<(), Mt5Error> {
        if self.session.is_none() {
            self.connect()?;
        }
        Ok(())
    }

    /// A read (or any request safe to repeat): authenticates when needed, retries transient
    /// failures, and authenticates again once when the connection turns out to carry no
    /// session (HTTP 403 without a retcode, or an authentication retcode). Returns the whole
    /// answer (`retcode` already checked).
    pub fn call(&mut self, path: &str, query: &[(&str, String)]) -> Result<Value, Mt5Error> {
        let what = path.trim_start_matches("/api/");
        let full = path_with_query(path, query);
        self.ensure_session()?;
        match self.exchange_retrying(&full, what) {
            Outcome::Ok(v) => Ok(v),
            Outcome::Bare(_) | Outcome::Err(_, Class::Auth) => {
                self.connect()?;
                match self.exchange_retrying(&full, what) {
                    Outcome::Ok(v) => Ok(v),
                    Outcome::Bare(e) | Outcome::Err(e, _) => Err(e),
                }
            }
            Outcome::Err(e, _) => Err(e),
        }
    }

    /// A request that must not be repeated blindly (a balance operation): one attempt, the
    /// caller decides what a failure means. Refused for want of a session, it was not carried
    /// out: then the session is renewed and the request made once more.
    pub fn call_once(&mut self, path: &str, query: &[(&str, String)]) -> Result<Value, Mt5Error> {
        let what = path.trim_start_matches("/api/");
        let full = path_with_query(path, query);
        self.ensure_session()?;
        match self.exchange(&full, what) {
            Outcome::Ok(v) => Ok(v),
            Outcome::Bare(_) | Outcome::Err(_, Class::Auth) => {
                self.connect()?;
                match self.exchange(&full, what) {
                    Outcome::Ok(v) => Ok(v),
                    Outcome::Bare(e) | Outcome::Err(e, _) => Err(e),
                }
            }
            Outcome::Err(e, _) => Err(e),
        }
    }

    /// Pauses before another attempt of a caller-driven retry loop.
    pub fn pause(&mut self, attempt: u32) {
        self.backoff(attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::VecDeque;

    /// Answers from a script, in order; records the requests.
    struct Script {
        replies: VecDeque<Result<HttpReply, TransportError>>,
        seen: Vec<(String, Option<String>)>,
        slept: Vec<u64>,
    }

    fn reply(status: u16, body: Value) -> Result<HttpReply, TransportError> {
        Ok(HttpReply {
            status,
            set_cookies: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    }

    impl Transport for &mut Script {
        fn get(
            &mut self,
            url: &str,
            cookie: Option<&str>,
            _timeout_ms: u32,
        ) -> Result<HttpReply, TransportError> {
            self.seen
                .push((url.to_string(), cookie.map(str::to_string)));
            self.replies
                .pop_front()
                .unwrap_or(Err(TransportError::Failed("script exhausted".into())))
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
        }
        fn random16(&mut self) -> Option<[u8; 16]> {
            hex::decode("4db98fec17aab4dc5a240bdc659e8395")
                .ok()
                .and_then(|b| b.try_into().ok())
        }
    }

    fn settings() -> Settings {
        Settings {
            endpoint: "http://mt5.test".into(),
            login: "1000".into(),
            password: "Password1".into(),
            agent: "lumire".into(),
            version: "484".into(),
            timeout_ms: 1000,
            retries: 2,
            backoff_ms: 100,
        }
    }

    fn handshake_replies(cli_answer: &str) -> Vec<Result<HttpReply, TransportError>> {
        vec![
            reply(200, json!({"retcode": "0 Done", "version_access": "1290", "srv_rand": "73007dc7184747ce0f7c98516ef1c851"})),
            Ok(HttpReply {
                status: 200,
                set_cookies: vec!["sid=abc; Path=/; HttpOnly".into()],
                body: json!({"retcode": "0 Done", "version_trade": "1290", "cli_rand_answer": cli_answer})
                    .to_string()
                    .into_bytes(),
            }),
        ]
    }

    fn script(replies: Vec<Result<HttpReply, TransportError>>) -> Script {
        Script {
            replies: replies.into(),
            seen: Vec::new(),
            slept: Vec::new(),
        }
    }

    #[test]
    fn handshake_then_calls_with_the_session_cookie() {
        let mut replies = handshake_replies("1732021b1b332f51660b2b315eed3a35");
        replies.push(reply(200, json!({"retcode": "0 Done", "answer": ["1001"]})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        let v = c
            .call("/api/user/logins", &[("group", "*".into())])
            .unwrap();
        assert_eq!(v["answer"][0], "1001");
        assert_eq!(c.session().unwrap().version_trade.as_deref(), Some("1290"));
        drop(c);
        assert_eq!(
            s.seen[0].0,
            "http://mt5.test/api/auth/start?version=484&agent=lumire&login=1000&type=manager"
        );
        assert_eq!(
            s.seen[1].0,
            "http://mt5.test/api/auth/answer?srv_rand_answer=77fe51827f7fa69dd80fbec9aa33f1bb&cli_rand=4db98fec17aab4dc5a240bdc659e8395"
        );
        assert_eq!(s.seen[2].1.as_deref(), Some("sid=abc"));
    }

    #[test]
    fn a_server_that_does_not_know_the_password_is_refused() {
        let mut s = script(handshake_replies("00000000000000000000000000000000"));
        let mut c = Client::new(settings(), &mut s);
        let e = c.call("/api/user/logins", &[]).unwrap_err();
        assert!(matches!(e, Mt5Error::Unauthorized(_)), "{e:?}");
        assert!(e.message().contains("cli_rand_answer is wrong"), "{e:?}");
        assert!(c.session().is_none());
        drop(c);
        assert_eq!(s.seen.len(), 2, "nothing is sent after a failed check");
    }

    #[test]
    fn a_wrong_password_names_the_code() {
        let mut s = script(vec![
            reply(
                200,
                json!({"retcode": "0 Done", "srv_rand": "73007dc7184747ce0f7c98516ef1c851"}),
            ),
            reply(200, json!({"retcode": "1001 Invalid account"})),
        ]);
        let mut c = Client::new(settings(), &mut s);
        let e = c.connect().unwrap_err();
        assert!(matches!(e, Mt5Error::Unauthorized(_)));
        assert!(e.message().contains("1001 Invalid account"), "{e:?}");
    }

    #[test]
    fn transient_failures_are_retried_with_backoff_and_bounded() {
        let mut replies = handshake_replies("1732021b1b332f51660b2b315eed3a35");
        replies.push(Err(TransportError::Timeout));
        replies.push(reply(200, json!({"retcode": "12 Too frequent requests"})));
        replies.push(reply(200, json!({"retcode": "0 Done", "answer": []})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        assert!(c.call("/api/user/logins", &[]).is_ok());
        drop(c);
        assert_eq!(s.slept, vec![100, 200]);

        let mut replies = handshake_replies("1732021b1b332f51660b2b315eed3a35");
        for _ in 0..3 {
            replies.push(reply(503, json!(null)));
        }
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        let e = c.call("/api/user/logins", &[]).unwrap_err();
        assert!(
            e.is_transient() && e.message().contains("HTTP 503"),
            "{e:?}"
        );
    }

    #[test]
    fn errors_are_not_retried_and_name_their_code() {
        let mut replies = handshake_replies("1732021b1b332f51660b2b315eed3a35");
        replies.push(reply(200, json!({"retcode": "3 Invalid parameters"})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        let e = c.call("/api/user/get_batch", &[]).unwrap_err();
        assert_eq!(
            e,
            Mt5Error::Rejected("user/get_batch: MT5 retcode 3 Invalid parameters".into())
        );
        drop(c);
        assert!(s.slept.is_empty());
    }

    fn bare(status: u16) -> Result<HttpReply, TransportError> {
        Ok(HttpReply {
            status,
            set_cookies: Vec::new(),
            body: Vec::new(),
        })
    }

    const GOOD: &str = "1732021b1b332f51660b2b315eed3a35";

    #[test]
    fn a_lost_session_is_renewed_once() {
        let mut replies = handshake_replies(GOOD);
        replies.push(reply(200, json!({"retcode": "0 Done", "answer": []})));
        replies.push(bare(403));
        replies.extend(handshake_replies(GOOD));
        replies.push(reply(200, json!({"retcode": "0 Done", "answer": ["1"]})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        c.call("/api/user/logins", &[]).unwrap();
        let v = c.call("/api/user/logins", &[]).unwrap();
        assert_eq!(v["answer"][0], "1");
        drop(c);
        assert_eq!(s.seen.len(), 7);
    }

    #[test]
    fn a_fresh_session_refused_without_a_reason_is_made_again_once() {
        // The command after a fresh handshake left on another connection: 403, no retcode.
        let mut replies = handshake_replies(GOOD);
        replies.push(bare(403));
        replies.extend(handshake_replies(GOOD));
        replies.push(reply(200, json!({"retcode": "0 Done"})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        c.call("/api/test/access", &[]).unwrap();
        drop(c);
        assert_eq!(s.seen.len(), 6);
    }

    #[test]
    fn a_handshake_refused_without_a_reason_is_tried_again_before_the_password_is_blamed() {
        let start = || {
            reply(
                200,
                json!({"retcode": "0 Done", "srv_rand": "73007dc7184747ce0f7c98516ef1c851"}),
            )
        };
        // Refused once, then accepted: no error.
        let mut replies = vec![start(), bare(403)];
        replies.extend(handshake_replies(GOOD));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        c.connect().unwrap();
        drop(c);
        assert_eq!(s.seen.len(), 4);
        // A connection lost at auth/answer is no verdict on the password either.
        let mut replies = vec![start(), Err(TransportError::Failed("closed".into()))];
        replies.extend(handshake_replies(GOOD));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        c.connect().unwrap();
        // Refused twice at auth/answer: the password.
        let mut s = script(vec![start(), bare(403), start(), bare(403)]);
        let mut c = Client::new(settings(), &mut s);
        let e = c.connect().unwrap_err();
        assert!(matches!(e, Mt5Error::Unauthorized(_)), "{e:?}");
        assert!(
            e.message().contains("refused manager 1000's password")
                && e.message().contains("twice"),
            "{e:?}"
        );
        assert!(c.session().is_none());
    }

    #[test]
    fn a_refused_command_is_reported_without_authenticating_again() {
        let mut replies = handshake_replies(GOOD);
        replies.push(reply(200, json!({"retcode": "8 Not enough permissions"})));
        let mut s = script(replies);
        let mut c = Client::new(settings(), &mut s);
        let e = c.call_once("/api/trade/balance", &[]).unwrap_err();
        assert_eq!(
            e,
            Mt5Error::Rejected("trade/balance: MT5 retcode 8 Not enough permissions".into())
        );
        assert!(c.session().is_some(), "the session is kept");
        drop(c);
        assert_eq!(s.seen.len(), 3, "no second handshake, no repeat");
    }
}
