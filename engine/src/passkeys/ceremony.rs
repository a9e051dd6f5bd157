//! WebAuthn ceremony plumbing: the relying party built from settings, ceremony state kept in
//! `webauthn_challenges` (never in process memory: several engine processes share one
//! database), and the decoy options answered for e-mails without a passkey.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
use webauthn_rs::prelude::{
    CredentialID, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::app::AppState;
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::util::{fmt_time, new_id};

/// How long a started ceremony can be finished; also the timeout the browser is given.
pub const CHALLENGE_TTL_SECS: i64 = 300;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    Authenticate,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Authenticate => "authenticate",
        }
    }
}

/// The relying party for this installation. `rp_name` is what the browser shows while a
/// passkey is created (the tenant's name); it plays no part in verification.
pub fn relying_party(st: &AppState, rp_name: Option<&str>) -> ApiResult<Webauthn> {
    let origin = Url::parse(&st.settings.webauthn_origin).map_err(|e| {
        ApiError::internal(format!(
            "webauthn_origin {:?} is not a URL: {e}",
            st.settings.webauthn_origin
        ))
    })?;
    let mut builder = WebauthnBuilder::new(&st.settings.webauthn_rp_id, &origin).map_err(|e| {
        ApiError::internal(format!(
            "webauthn_rp_id {:?} must be the host of webauthn_origin or a parent domain of it: {e}",
            st.settings.webauthn_rp_id
        ))
    })?;
    if let Some(name) = rp_name {
        builder = builder.rp_name(name);
    }
    builder
        .timeout(Duration::from_secs(CHALLENGE_TTL_SECS as u64))
        .build()
        .map_err(|e| ApiError::internal(format!("webauthn configuration: {e}")))
}

/// The WebAuthn user handle: stable per user, opaque (no e-mail or id inside it), and
/// different across tenants for the same person.
pub fn user_handle(tenant_id: &str, user_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("lumire-passkey-user:{tenant_id}:{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

pub fn encode_credential_id(id: &CredentialID) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// A `challengeId` is `<tenant_id>.<challenge row id>`: the public finish call carries no
/// other credential, and the tenant must be known to look the row up by its key.
pub fn challenge_id(tenant_id: &str, id: &str) -> String {
    format!("{tenant_id}.{id}")
}

pub fn parse_challenge_id(value: &str) -> Option<(&str, &str)> {
    let (tenant, id) = value.split_once('.')?;
    let is_ulid = |s: &str| s.len() == 26 && ulid::Ulid::from_string(s).is_ok();
    (is_ulid(tenant) && is_ulid(id)).then_some((tenant, id))
}

pub struct Stored {
    pub challenge_id: String,
    pub expires_at: String,
}

/// Stores a started ceremony's server-side state. Expired rows of the tenant are swept here,
/// so the table stays bounded without a background job.
pub async fn store(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
    kind: Kind,
    label: Option<&str>,
    state: &str,
) -> ApiResult<Stored> {
    let now = Utc::now();
    sqlx::query("DELETE FROM webauthn_challenges WHERE tenant_id = $1 AND expires_at <= $2")
        .bind(tenant_id)
        .bind(fmt_time(now))
        .execute(&mut **tx)
        .await?;
    let id = new_id();
    let expires_at = fmt_time(now + chrono::Duration::seconds(CHALLENGE_TTL_SECS));
    sqlx::query(
        "INSERT INTO webauthn_challenges (tenant_id, id, user_id, kind, label, state, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(&id)
    .bind(user_id)
    .bind(kind.as_str())
    .bind(label)
    .bind(state)
    .bind(fmt_time(now))
    .bind(&expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(Stored {
        challenge_id: challenge_id(tenant_id, &id),
        expires_at,
    })
}

#[derive(sqlx::FromRow)]
pub struct Pending {
    pub user_id: String,
    pub label: Option<String>,
    pub state: String,
    pub expires_at: String,
}

impl Pending {
    pub fn expired(&self) -> bool {
        crate::util::parse_time(&self.expires_at).is_none_or(|t| t <= Utc::now())
    }
}

/// Takes a started ceremony out of the table: whoever deletes the row owns it, so a challenge
/// is answered at most once even when two processes race on it.
pub async fn consume(
    tx: &mut Tx,
    tenant_id: &str,
    id: &str,
    kind: Kind,
) -> ApiResult<Option<Pending>> {
    Ok(sqlx::query_as(
        "DELETE FROM webauthn_challenges WHERE tenant_id = $1 AND id = $2 AND kind = $3
         RETURNING user_id, label, state, expires_at",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await?)
}

/// The id of the user's newest registration still pending, for finish calls without
/// `challengeId`.
pub async fn latest_registration(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM webauthn_challenges WHERE tenant_id = $1 AND user_id = $2 AND kind = $3
         AND expires_at > $4 ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(Kind::Register.as_str())
    .bind(fmt_time(Utc::now()))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Request options as sent to the browser, with the `challengeId` and expiry beside them.
/// Transport hints are dropped so real options look exactly like decoys.
pub fn options_body(options: &impl serde::Serialize, stored: &Stored) -> ApiResult<Value> {
    let mut body = serde_json::to_value(options).map_err(ApiError::internal)?;
    if let Some(creds) = body
        .pointer_mut("/publicKey/allowCredentials")
        .and_then(Value::as_array_mut)
    {
        for c in creds.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("transports");
        }
    }
    if let Some(obj) = body.as_object_mut() {
        obj.insert("challengeId".into(), json!(stored.challenge_id));
        obj.insert("expiresAt".into(), json!(stored.expires_at));
    }
    Ok(body)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// The tenant's decoy key, made on first use. Two processes may race to make it; the
/// primary key keeps the first and both read it back.
pub async fn decoy_key(tx: &mut Tx, tenant_id: &str) -> ApiResult<Vec<u8>> {
    sqlx::query(
        "INSERT INTO webauthn_decoy_keys (tenant_id, hmac_key, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(hex::encode(random_bytes::<32>()))
    .bind(crate::util::now())
    .execute(&mut **tx)
    .await?;
    let (key,): (String,) =
        sqlx::query_as("SELECT hmac_key FROM webauthn_decoy_keys WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&mut **tx)
            .await?;
    hex::decode(key).map_err(ApiError::internal)
}

/// Credential ids that look like a real account's: the same e-mail always gets the same ones
/// (so asking twice reveals nothing), with the count and lengths real passkeys have. The
/// library's distribution sometimes yields none; an account that exists and has none is
/// answered with decoys too, so decoys always carry at least one id.
fn decoy_credentials(hmac_key: &[u8], email: &str) -> ApiResult<Vec<CredentialID>> {
    let generator = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(hmac_key)
        .map_err(ApiError::internal)?;
    for round in 0..64u32 {
        let input = if round == 0 {
            email.to_string()
        } else {
            format!("{email}\u{0}{round}")
        };
        let ids = generator
            .generate(input.as_bytes())
            .map_err(ApiError::internal)?;
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    Err(ApiError::internal(
        "decoy credential generator yielded no ids",
    ))
}

/// Options for a login that cannot succeed, shaped exactly like real ones (the same type is
/// serialised, with a fresh random challenge).
pub fn decoy_options(
    st: &AppState,
    hmac_key: &[u8],
    email: &str,
) -> ApiResult<RequestChallengeResponse> {
    let allow: Vec<Value> = decoy_credentials(hmac_key, email)?
        .iter()
        .map(|id| json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(id)}))
        .collect();
    serde_json::from_value(json!({
        "publicKey": {
            "challenge": URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
            "timeout": CHALLENGE_TTL_SECS * 1000,
            "rpId": st.settings.webauthn_rp_id,
            "allowCredentials": allow,
            "userVerification": "required",
        }
    }))
    .map_err(ApiError::internal)
}

/// A random key for tenants that do not exist (nothing is stored for them).
pub fn throwaway_key() -> Vec<u8> {
    random_bytes::<32>().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_ids_round_trip_and_reject_junk() {
        let (t, i) = (new_id(), new_id());
        let c = challenge_id(&t, &i);
        assert_eq!(parse_challenge_id(&c), Some((t.as_str(), i.as_str())));
        assert_eq!(parse_challenge_id("abc"), None);
        assert_eq!(parse_challenge_id(&format!("{t}.x")), None);
        assert_eq!(parse_challenge_id(&format!("{t}.{i}.{i}")), None);
    }

    #[test]
    fn decoys_are_stable_per_email_and_never_empty() {
        let key = throwaway_key();
        for n in 0..50 {
            let email = format!("user{n}@example.com");
            let a = decoy_credentials(&key, &email).unwrap();
            assert!(!a.is_empty());
            assert_eq!(a, decoy_credentials(&key, &email).unwrap());
        }
        assert_ne!(
            decoy_credentials(&key, "a@example.com").unwrap(),
            decoy_credentials(&throwaway_key(), "a@example.com").unwrap()
        );
    }

    #[test]
    fn user_handles_differ_by_tenant() {
        assert_eq!(user_handle("t1", "u"), user_handle("t1", "u"));
        assert_ne!(user_handle("t1", "u"), user_handle("t2", "u"));
    }
}
