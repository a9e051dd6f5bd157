//! `ApiJson<T>`: a JSON body extractor whose errors name the offending field. Request types use
//! `#[serde(deny_unknown_fields)]`, so a typo such as `ammount` is a 400, never silently dropped.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.starts_with("application/json") || v.contains("+json"))
            .unwrap_or(false);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::field("body", "could not read the request body")
            }
        })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            // An empty body is an empty object, so bodiless POSTs (approve, revoke, ...) work.
            Bytes::from_static(b"{}")
        } else {
            if !is_json {
                return Err(ApiError::field(
                    "body",
                    "Content-Type must be application/json",
                ));
            }
            bytes
        };
        parse(&bytes).map(ApiJson)
    }
}

/// Reads a JSON body: a field that does not fit names itself; text after the JSON value, and
/// control characters in any string (NUL and the other C0 controls but tab, newline and
/// carriage return, and DEL) are refused, naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = control_character_field(bytes) {
        return Err(ApiError::field(
            &field,
            "must not contain control characters (NUL, ...)",
        ));
    }
    // Fields have their own limits where they are stored; none takes more than this. Only a
    // body this large can hold such a string, so smaller bodies are not walked.
    if bytes.len() > MAX_STRING_CHARS
        && let Some(field) = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| find_string(&v, "", &|t| t.chars().count() > MAX_STRING_CHARS))
    {
        return Err(ApiError::field(
            &field,
            format!("must be at most {MAX_STRING_CHARS} characters"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = deserialize(de)?;
    de.end()
        .map_err(|_| ApiError::field("body", "unexpected content after the JSON value"))?;
    Ok(value)
}

/// The longest string any body field may hold.
pub const MAX_STRING_CHARS: usize = 100_000;

/// The path of the first string (or key) in `v` for which `bad` holds.
fn find_string(v: &serde_json::Value, path: &str, bad: &dyn Fn(&str) -> bool) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        serde_json::Value::String(t) if bad(t) => Some(here()),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_string(x, &join(&i.to_string()), bad)),
        serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
            if bad(k) {
                Some(here())
            } else {
                find_string(x, &join(k), bad)
            }
        }),
        _ => None,
    }
}

/// Whether the body's text holds an escape that decodes to a refused control character; then
/// where (raw control characters are not valid JSON and fail parsing anyway).
fn control_character_field(bytes: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut found = false;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'b' | b'f' => {
                found = true;
                break;
            }
            b'u' => {
                let code = std::str::from_utf8(bytes.get(i + 2..i + 6).unwrap_or_default())
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok());
                if code
                    .and_then(char::from_u32)
                    .is_some_and(super::hardening::is_refused_control)
                {
                    found = true;
                    break;
                }
                i += 6;
            }
            _ => i += 2,
        }
    }
    if !found {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find_string(&value, "", &|t| {
        t.chars().any(super::hardening::is_refused_control)
    })
}

fn deserialize<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let named = between_backticks(&msg);
        let field = if msg.starts_with("unknown field") || msg.starts_with("missing field") {
            let base = if path == "." { String::new() } else { path };
            let name = named.unwrap_or_default();
            // serde_path_to_error already appends the unknown key to the path.
            if base.ends_with(&name) {
                base
            } else if base.is_empty() {
                name
            } else {
                format!("{base}.{name}")
            }
        } else if path == "." {
            "body".to_string()
        } else {
            path
        };
        let message = msg.split(" at line").next().unwrap_or(&msg).to_string();
        ApiError::Validation(vec![FieldError::new(field, message)])
    })
}

fn between_backticks(s: &str) -> Option<String> {
    let start = s.find('`')? + 1;
    let end = s[start..].find('`')? + start;
    Some(s[start..end].to_string())
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        amount: String,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: i64,
    }

    fn field_of(json: &str) -> String {
        match parse::<Body>(json.as_bytes()) {
            Err(ApiError::Validation(v)) => v[0].field.clone(),
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn refuses_trailing_content_and_control_characters() {
        assert_eq!(field_of(r#"{"amount":"1"} xx"#), "body");
        assert!(parse::<Body>(b"{\"amount\":\"1\"}  \n").is_ok());
        assert_eq!(field_of(r#"{"amount":"a\u0000b"}"#), "amount");
        assert_eq!(
            field_of(r#"{"amount":"1","inner":{"n":1,"x":"\u001b"}}"#),
            "inner.x"
        );
        assert_eq!(field_of(r#"{"amount":"\b"}"#), "amount");
        // An escaped backslash followed by "u0000" is text, not a NUL.
        assert!(parse::<Body>(br#"{"amount":"\\u0000"}"#).is_ok());
        assert!(parse::<Body>(br#"{"amount":"line\nline\t\u00e9"}"#).is_ok());
        let long = format!(
            r#"{{"amount":"1","inner":{{"n":1,"s":"{}"}}}}"#,
            "x".repeat(100_001)
        );
        assert_eq!(field_of(&long), "inner.s");
    }

    #[test]
    fn names_unknown_missing_and_mistyped_fields() {
        assert_eq!(field_of(r#"{"amount":"1","ammount":"2"}"#), "ammount");
        assert_eq!(field_of(r#"{}"#), "amount");
        assert_eq!(field_of(r#"{"amount":"1","inner":{"n":"x"}}"#), "inner.n");
        assert_eq!(field_of(r#"{"amount":"1","inner":{"m":1}}"#), "inner.m");
    }
}
