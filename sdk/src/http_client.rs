//! Outbound HTTP(S) to the hosts the manifest lists in `http-outbound` (a connector may also
//! reach its tenant's configured endpoint). Everything else is refused by the host.

use crate::v2::http_client as raw;
pub use raw::{Error, Request as RawRequest, Response};

/// An outbound request being built.
pub struct Outbound(RawRequest);

/// Starts a request: `method` (`GET`, `POST`, ...) to an absolute URL. 10 s timeout by default.
pub fn request(method: &str, url: &str) -> Outbound {
    Outbound(RawRequest {
        method: method.into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: 10_000,
    })
}

impl Outbound {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0.headers.push((name.into(), value.into()));
        self
    }
    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }
    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }
    /// The timeout in milliseconds (the host caps it at the call's own deadline).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.0.timeout_ms = ms;
        self
    }
    /// Sends it.
    pub fn send(self) -> Result<Response, Error> {
        raw::send(&self.0)
    }
}

impl Response {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
