//! Small shared helpers: ids, time, tokens and hashing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new id: a ULID, increasing within this process even for ids made in the same millisecond,
/// so "newest first" (`ORDER BY id DESC`) is creation order.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let next = GENERATOR.lock().ok().and_then(|mut g| g.generate().ok());
    // Not `unwrap_or_default()` (clippy's suggestion): `Ulid::default()` is the nil id.
    match next {
        Some(id) => id.to_string(),
        None => ulid::Ulid::new().to_string(),
    }
}

/// RFC 3339 UTC with milliseconds, the API's and the database's time format.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now() -> String {
    fmt_time(Utc::now())
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A random secret of 32 bytes, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Constant-time comparison of two secrets' hashes.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

pub fn parse_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
}

pub fn parse_string_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

#[cfg(test)]
mod id_tests {
    #[test]
    fn ids_increase_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
