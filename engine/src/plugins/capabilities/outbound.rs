//! `http-client`: outbound HTTP(S) from a plugin, only to the hosts it may reach.
//!
//! - A feature plugin may reach the hosts its manifest lists in `http-outbound` (approved by the
//!   operator at install).
//! - A platform connector may also reach the host of the tenant's configured endpoint.
//!
//! Unless the operator allows private targets (`LUMIRE_PLUGIN_HTTP_ALLOW_PRIVATE`), loopback,
//! private, link-local and reserved addresses are refused after DNS resolution, as for webhooks.
//! No redirects are followed, no proxy from the environment is used, and the body read back is
//! bounded.
//!
//! Feature plugins share the engine's pooled client (their requests carry no session). A
//! platform connector's requests never do: each connector session (one tenant's integration
//! configuration, one engine operation) has its own connections ([`super::session_http`]), as
//! the MT5 Web API binds a manager session to its connection.

use std::sync::Arc;
use std::time::Duration;

use super::super::bindings::http_client::{Error, Host, Request, Response};
use super::super::host::{ConnectorCall, HostState};
use super::session_http::{SessionError, SessionHttp};
use crate::connectors::tls::TlsTrust;
use crate::webhooks::url_safety;

/// Largest response body handed to a plugin.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Largest request body a plugin may send.
pub const MAX_REQUEST_BYTES: usize = 8 << 20;

/// The engine's HTTP client for plugins.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("LumireCRM-Plugins/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        b = b.dns_resolver(Arc::new(url_safety::SafeResolver));
    }
    b.build()
}

/// Whether `host` matches an allowlist entry: the same name, or `*.example.com` for a subdomain.
pub fn host_allowed(allow: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|a| {
        let a = a.trim().trim_end_matches('.').to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => a == host,
        }
    })
}

impl HostState {
    fn allowed_hosts(&self) -> Vec<String> {
        let mut v = self.call.manifest.capabilities.http_outbound.clone();
        if let Some(c) = &self.call.connector {
            v.extend(c.endpoint_host.iter().cloned());
        }
        v
    }
}

impl Host for HostState {
    async fn send(&mut self, r: Request) -> Result<Response, Error> {
        let services = self
            .services()
            .ok_or_else(|| Error::Denied("no outbound HTTP in this call".into()))?
            .clone();
        let url = url::Url::parse(&r.url)
            .map_err(|_| Error::Invalid("url must be an absolute http or https URL".into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid(
                "only http and https URLs are allowed".into(),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        if !host_allowed(&self.allowed_hosts(), &host) {
            return Err(Error::Denied(format!(
                "{host} is not among the hosts this plugin may reach"
            )));
        }
        if !services.http_allow_private
            && let Err(e) = url_safety::check_literal(&url)
        {
            return Err(Error::Denied(e));
        }
        let method = reqwest::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::Invalid("bad method".into()))?;
        if r.body.len() > MAX_REQUEST_BYTES {
            return Err(Error::Invalid("request body over 8 MiB".into()));
        }
        // Never longer than what is left of the call's own deadline.
        let left_ms = self.time_left_ms();
        let timeout = Duration::from_millis(u64::from(r.timeout_ms.max(1)).min(left_ms.max(1)));
        if let Some(connector) = self.call.connector.clone() {
            return self
                .send_in_session(
                    &connector,
                    services.http_allow_private,
                    method,
                    url,
                    r,
                    timeout,
                )
                .await;
        }
        let mut req = services
            .http
            .request(method, url)
            .timeout(timeout)
            .body(r.body);
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => return Err(Error::Timeout),
            Err(e) => return Err(Error::Failed(error_chain(&e))),
        };
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(Error::Failed("response body over 8 MiB".into()));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Error::Timeout),
                Err(e) => return Err(Error::Failed(error_chain(&e))),
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

impl HostState {
    /// A connector call's request, over the connector session's own connection (see
    /// `session_http`): made at the session's first request with the TLS trust of the tenant's
    /// configuration.
    async fn send_in_session(
        &mut self,
        connector: &ConnectorCall,
        allow_private: bool,
        method: reqwest::Method,
        url: url::Url,
        r: Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        if self.session_http.is_none() {
            let trust = TlsTrust::from_settings(&connector.secrets).map_err(Error::Invalid)?;
            self.session_http =
                Some(SessionHttp::new(&trust, allow_private).map_err(Error::Invalid)?);
        }
        let Some(session) = self.session_http.as_mut() else {
            return Err(Error::Failed("no session connection".into()));
        };
        match session
            .send(
                method,
                &url,
                &r.headers,
                r.body,
                timeout,
                MAX_RESPONSE_BYTES,
            )
            .await
        {
            Ok(resp) => Ok(Response {
                status: resp.status,
                headers: resp.headers,
                body: resp.body,
            }),
            Err(SessionError::Timeout) => Err(Error::Timeout),
            Err(SessionError::Failed(e)) => Err(Error::Failed(e)),
            Err(SessionError::Denied(e)) => Err(Error::Denied(e)),
            Err(SessionError::Invalid(e)) => Err(Error::Invalid(e)),
        }
    }
}

/// An error and its sources in one line, at most 500 characters.
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn allowlist_matches_names_and_wildcards() {
        let allow = vec![
            "api.example.com".to_string(),
            "*.mt5.example.net".to_string(),
        ];
        assert!(host_allowed(&allow, "api.example.com"));
        assert!(host_allowed(&allow, "API.example.com."));
        assert!(!host_allowed(&allow, "evil.api.example.com"));
        assert!(host_allowed(&allow, "srv1.mt5.example.net"));
        assert!(!host_allowed(&allow, "mt5.example.net"));
        assert!(!host_allowed(&allow, "example.com"));
        assert!(!host_allowed(&[], "example.com"));
    }
}
