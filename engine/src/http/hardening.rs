//! What every request and response goes through before and after its route: clean text in the
//! URL, and the security headers of an API.
//!
//! - **Control characters** (NUL and the other C0 controls and DEL) in the percent-decoded path
//!   or in a query parameter's name or value are refused with a 400 naming `path` or
//!   `query.<name>`: PostgreSQL cannot store a NUL in text (it would be a 500 there and stored
//!   as-is on SQLite), and no identifier, filter or cursor of the API holds one. Bodies are
//!   checked by [`super::json`] (`ApiJson`).
//! - **Headers**: every response carries `X-Content-Type-Options: nosniff`; API responses
//!   (`/v1/...`, which may be authenticated and personal) carry `Cache-Control: no-store`
//!   unless the route set its own.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Whether `c` is a control character the API refuses (tab, newline and carriage return are
/// allowed in bodies, where multi-line text is documented; never in URLs).
pub fn is_refused_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || c == '\u{7f}'
}

fn decoded_has_control(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        i += 3;
                        v
                    }
                    None => {
                        i += 1;
                        b'%'
                    }
                }
            }
            b => {
                i += 1;
                b
            }
        };
        if b < 0x20 || b == 0x7f {
            return true;
        }
    }
    false
}

/// The field a URL's control character is in, if it has one.
fn url_control_field(path: &str, query: Option<&str>) -> Option<String> {
    if decoded_has_control(path) {
        return Some("path".into());
    }
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decoded_has_control(name) || decoded_has_control(value) {
            let clean: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect();
            return Some(format!("query.{clean}"));
        }
    }
    None
}

/// Refuses control characters in the URL; adds the security headers to the response.
pub async fn middleware(req: Request, next: Next) -> Response {
    if let Some(field) = url_control_field(req.uri().path(), req.uri().query()) {
        return with_headers(
            ApiError::field(&field, "must not contain control characters (NUL, ...)")
                .into_response(),
            true,
        );
    }
    let api = req.uri().path().starts_with("/v1/");
    with_headers(next.run(req).await, api)
}

fn with_headers(mut resp: Response, api: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_control_characters_where_they_are() {
        assert_eq!(url_control_field("/v1/traders/abc", None), None);
        assert_eq!(
            url_control_field("/v1/traders/a%00b", None).as_deref(),
            Some("path")
        );
        assert_eq!(
            url_control_field("/v1/traders", Some("q=a%00&limit=1")).as_deref(),
            Some("query.q")
        );
        assert_eq!(
            url_control_field("/v1/traders", Some("q=caf%C3%A9%20x&limit=%7F")).as_deref(),
            Some("query.limit")
        );
        assert_eq!(url_control_field("/v1/x", Some("q=100%25&r=%2")), None);
        assert!(is_refused_control('\0') && is_refused_control('\u{1b}'));
        assert!(!is_refused_control('\n') && !is_refused_control('é'));
    }
}
