//! Verification of the `Stripe-Signature` header: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
//! where each `v1` is HMAC-SHA256 over `"<t>.<raw body>"` with an endpoint secret. Several
//! `v1` values appear while Stripe rolls a secret; any one matching any of our secrets passes.
//! Comparison is constant-time (`Mac::verify_slice`), and the timestamp must be within the
//! tolerance of our clock, which bounds replays of a captured request.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's own libraries default to five minutes.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks `header` against `body` for any of `secrets`; returns the signed timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now_unix: i64,
    tolerance: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // Undecodable values cannot match; they are skipped like unknown schemes (v0).
            "v1" => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_unix - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for sig in &signatures {
            if mac_for(secret, t, body).is_some_and(|m| m.verify_slice(sig).is_ok()) {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// HMAC accepts keys of every length, so this is `None` only in theory.
fn mac_for(secret: &str, t: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The header value Stripe would send for `body` at `t`.
#[cfg(test)]
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let sig = mac_for(secret, t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={t},v1={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    #[test]
    fn accepts_a_valid_signature_and_any_of_several() {
        let h = sign("whsec_a", 1000, BODY);
        assert_eq!(verify(Some(&h), BODY, &["whsec_a"], 1010, 300), Ok(1000));
        // Rotation on Stripe's side: two v1 values, one per secret.
        let other = sign("whsec_old", 1000, BODY);
        let both = format!("{h},{}", other.split_once(',').unwrap().1);
        assert_eq!(
            verify(Some(&both), BODY, &["whsec_old"], 1000, 300),
            Ok(1000)
        );
        // Rotation on ours: the previous secret still verifies.
        assert_eq!(
            verify(Some(&h), BODY, &["whsec_new", "whsec_a"], 1000, 300),
            Ok(1000)
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_garbage() {
        let h = sign("whsec_a", 1000, BODY);
        assert_eq!(
            verify(Some(&h), b"{}", &["whsec_a"], 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), BODY, &["whsec_b"], 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), BODY, &["whsec_a"], 1301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, BODY, &["whsec_a"], 1000, 300),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "garbage"] {
            assert_eq!(
                verify(Some(bad), BODY, &["whsec_a"], 1000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(Some("t=1000,v1=zz"), BODY, &["whsec_a"], 1000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&h), BODY, &[], 1000, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
