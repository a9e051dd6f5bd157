//! Requests, JSON responses and problem+json errors.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{HttpRequest, HttpResponse};

/// A request the engine routed to the plugin, with helpers for parameters and JSON bodies.
pub struct Request {
    raw: HttpRequest,
}

impl Request {
    /// Wraps the raw request of the bindings.
    pub fn new(raw: HttpRequest) -> Request {
        Request { raw }
    }
    /// The raw request of the bindings.
    pub fn raw(&self) -> &HttpRequest {
        &self.raw
    }
    /// The calling tenant (storage is scoped to it by the host already).
    pub fn tenant_id(&self) -> &str {
        &self.raw.tenant_id
    }
    /// The actor's id (user, API key or customer).
    pub fn actor_id(&self) -> &str {
        &self.raw.actor.id
    }
    /// `user`, `api_key`, `customer`, `system` or `partner` (HTTP Basic partner credentials, on
    /// routes whose manifest roles include `partner`).
    pub fn actor_kind(&self) -> &str {
        &self.raw.actor.kind
    }
    /// The partner's credential id when a partner is calling.
    pub fn partner_id(&self) -> Option<&str> {
        (self.raw.actor.kind == "partner").then_some(self.raw.actor.id.as_str())
    }
    /// True when the actor holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.raw.actor.roles.iter().any(|r| r == role)
    }
    /// The engine's request id (quote it in logs).
    pub fn request_id(&self) -> &str {
        &self.raw.request_id
    }
    /// `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        &self.raw.method
    }
    /// The manifest route that matched (`/v1/leads/{lead-id}`): match on it with [`Self::method`].
    pub fn route(&self) -> &str {
        &self.raw.route
    }
    /// The request path.
    pub fn path(&self) -> &str {
        &self.raw.path
    }
    /// A `{name}` segment of the route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.raw
            .path_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.raw
            .query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A header (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.raw.body
    }
    /// The body parsed as JSON into `T`; a 400 problem naming the failing field otherwise.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_json::from_slice(&self.raw.body).map_err(|e| {
            Problem::new(
                400,
                "invalid_json",
                &format!("The body is not valid JSON: {e}"),
            )
        })
    }
}

/// A response: a status, headers and a body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers (`content-type` defaults to `application/json`).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
        Response::json_bytes(
            status,
            serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec()),
        )
    }
    /// A JSON response whose body is already JSON text (a stored document from
    /// [`crate::transaction::get_text`], say): sent as it is, neither parsed nor written again.
    pub fn json_text(status: u16, body: String) -> Response {
        Response::json_bytes(status, body.into_bytes())
    }
    fn json_bytes(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }
    /// An empty 204 response.
    pub fn no_content() -> Response {
        Response {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    /// Converts to the bindings' type.
    pub fn into_raw(self) -> HttpResponse {
        HttpResponse {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// An error that becomes an RFC 9457 problem+json response, shaped like the engine's own.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code (`validation_failed`, `not_found`, ...).
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
    /// Field errors of a 400.
    pub errors: Vec<(String, String)>,
}

impl Problem {
    /// A problem with a status, code and detail.
    pub fn new(status: u16, code: &str, detail: &str) -> Problem {
        Problem {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    /// 404 for `what`.
    pub fn not_found(what: &str) -> Problem {
        Problem::new(404, "not_found", &format!("{what} not found"))
    }
    /// 400 naming one field.
    pub fn field(field: &str, message: &str) -> Problem {
        Problem::fields(vec![(field.into(), message.into())])
    }
    /// 400 naming several fields.
    pub fn fields(errors: Vec<(String, String)>) -> Problem {
        let detail = errors
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            status: 400,
            code: "validation_failed".into(),
            detail,
            errors,
        }
    }
    /// 409 with a code.
    pub fn conflict(code: &str, detail: &str) -> Problem {
        Problem::new(409, code, detail)
    }
    /// 500 (details go to the log, not to the client).
    pub fn internal(detail: &str) -> Problem {
        crate::log::error(detail);
        Problem::new(
            500,
            "internal_error",
            "An unexpected error occurred; quote the request id when reporting it.",
        )
    }
    /// The problem+json response.
    pub fn into_response(self) -> Response {
        let title = match self.status {
            400 => "Invalid request",
            401 => "Authentication required",
            403 => "Forbidden",
            404 => "Not found",
            409 => "Conflict",
            _ => "Error",
        };
        let mut body = json!({
            "type": format!("https://lumirecrm.dev/problems/{}", self.code.replace('_', "-")),
            "title": title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(
                self.errors
                    .iter()
                    .map(|(f, m)| json!({"field": f, "message": m}))
                    .collect(),
            );
        }
        let mut r = Response::json(self.status, &body);
        r.headers = vec![("content-type".into(), "application/problem+json".into())];
        r
    }
}

impl From<crate::storage::Error> for Problem {
    fn from(e: crate::storage::Error) -> Problem {
        Problem::internal(&format!("storage: {e:?}"))
    }
}

/// A failed commit as a problem: `stale` and engine-rule conflicts are 409s (retry or decide
/// again), insufficient funds a 409 `insufficient_funds`, invalid steps a 400 naming the fields
/// the host named (`email: is not valid`), and the rest an error of the plugin or the engine.
impl From<crate::transaction::Error> for Problem {
    fn from(e: crate::transaction::Error) -> Problem {
        use crate::transaction::Error as E;
        match e {
            E::Stale(f) => Problem::conflict(
                "concurrent_update",
                &format!(
                    "The record changed while this request ran; retry it. ({})",
                    f.message
                ),
            ),
            E::Conflict(f) => Problem::conflict("conflict", &f.message),
            E::InsufficientFunds(f) => Problem::conflict(
                "insufficient_funds",
                &format!("Insufficient funds: {}", f.message),
            ),
            E::Invalid(f) => Problem::fields(field_errors(&f.message)),
            E::Denied(f) => Problem::internal(&format!(
                "transaction step {} denied: {}",
                f.step, f.message
            )),
            E::Unavailable(m) => {
                crate::log::warn(&format!("transaction unavailable: {m}"));
                Problem::new(
                    503,
                    "unavailable",
                    "The engine is unavailable; retry later.",
                )
            }
        }
    }
}

/// Splits a host message such as `email: is not valid; phone: too long` into field errors
/// (parts without a field name are reported under `body`).
pub fn field_errors(message: &str) -> Vec<(String, String)> {
    message
        .split("; ")
        .map(|part| match part.split_once(": ") {
            Some((f, m)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                (f.to_string(), m.to_string())
            }
            _ => ("body".to_string(), part.to_string()),
        })
        .collect()
}
