//! The blocking HTTP transport of the native connector (ureq over rustls), with the host's clock
//! and randomness. One agent per connection: MT5 binds a session to the keep-alive connection
//! it was made on, and the agent keeps that connection.

use std::time::Duration;

use mt5_webapi::{HttpReply, Level, Transport, TransportError};

/// Answers larger than this are refused (a page of 1,000 users is well under 2 MiB).
const MAX_BODY: u64 = 16 * 1024 * 1024;

pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("LumireCRM-mt5-native")
            .build()
            .into();
        Http { agent }
    }
}

fn failed(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        other => TransportError::Failed(other.to_string()),
    }
}

impl Transport for Http {
    fn get(
        &mut self,
        url: &str,
        cookie: Option<&str>,
        timeout_ms: u32,
    ) -> Result<HttpReply, TransportError> {
        let mut req = self.agent.get(url).header("accept", "application/json");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let mut reply = req
            .config()
            .timeout_global(Some(Duration::from_millis(u64::from(timeout_ms))))
            .build()
            .call()
            .map_err(failed)?;
        let set_cookies = reply
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let body = reply
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(failed)?;
        Ok(HttpReply {
            status: reply.status().as_u16(),
            set_cookies,
            body,
        })
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn random16(&mut self) -> Option<[u8; 16]> {
        // No fallback: a predictable random would let a replaying impostor pass the check of
        // the server's answer.
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).ok().map(|_| b)
    }

    fn log(&mut self, level: Level, message: &str) {
        // The C ABI has no log channel; the engine's process shares stderr.
        let level = match level {
            Level::Info => "INFO",
            Level::Warn => "WARN",
        };
        eprintln!("{level} mt5-native-connector: {message}");
    }
}
