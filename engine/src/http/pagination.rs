//! Cursor pagination: `limit` (default 50, capped at 500) and an opaque `cursor` (the last
//! row's id, base64url). Rows come newest first; ULIDs sort by creation time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub after_id: Option<String>,
}

impl PageRequest {
    pub fn from_params(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => n.min(MAX_LIMIT),
                _ => return Err(ApiError::field("limit", "must be a positive integer")),
            },
        };
        let after_id = match cursor {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { limit, after_id })
    }

    /// Rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

fn decode_cursor(c: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor returned by this list"))
}

pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub fn from_rows(mut rows: Vec<T>, req: &PageRequest, id_of: impl Fn(&T) -> &str) -> Self {
        let more = rows.len() as i64 > req.limit;
        rows.truncate(req.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_caps_and_rejects() {
        assert_eq!(PageRequest::from_params(None, None).unwrap().limit, 50);
        assert_eq!(
            PageRequest::from_params(Some("9999"), None).unwrap().limit,
            500
        );
        assert!(PageRequest::from_params(Some("0"), None).is_err());
        assert!(PageRequest::from_params(Some("x"), None).is_err());
        assert!(PageRequest::from_params(None, Some("!!")).is_err());
        let c = encode_cursor("01ABC");
        assert_eq!(
            PageRequest::from_params(None, Some(&c))
                .unwrap()
                .after_id
                .as_deref(),
            Some("01ABC")
        );
    }
}
