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

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
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
    fn names_unknown_missing_and_mistyped_fields() {
        assert_eq!(field_of(r#"{"amount":"1","ammount":"2"}"#), "ammount");
        assert_eq!(field_of(r#"{}"#), "amount");
        assert_eq!(field_of(r#"{"amount":"1","inner":{"n":"x"}}"#), "inner.n");
        assert_eq!(field_of(r#"{"amount":"1","inner":{"m":1}}"#), "inner.m");
    }
}
