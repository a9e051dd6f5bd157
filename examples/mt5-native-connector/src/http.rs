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
    /// An agent keeping one connection per server. `ca_pem`, when given, is the only trust
    /// (the configuration's `tls_ca_cert`); otherwise the public roots.
    pub fn new(ca_pem: Option<&str>) -> Result<Http, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let certs = ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls_ca_cert is not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("tls_ca_cert holds no certificate".into());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections_per_host(1)
            .user_agent("LumireCRM-mt5-native")
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Http { agent })
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
        // The MT5 Web API asks for keep-alive on every request ("Connection Maintenance").
        let mut req = self
            .agent
            .get(url)
            .header("accept", "application/json")
            .header("connection", "keep-alive");
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
