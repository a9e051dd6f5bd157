//! Authenticating a partner from an `Authorization: Basic` header.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;

use crate::app::AppState;
use crate::auth::{Actor, ActorKind};
use crate::http::error::{ApiError, ApiResult};
use crate::util::{fmt_time, parse_time, same_secret, sha256_hex};

/// The username of a credential: `<tenant id>.<credential id>`.
pub fn username(tenant_id: &str, id: &str) -> String {
    format!("{tenant_id}.{id}")
}

/// The `user:password` pair of a Basic authorization header, if that is what it is.
fn basic(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let raw = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = raw.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The partner behind a Basic authorization header: `Ok(None)` when the request carries no
/// Basic credentials, 401 when they are wrong or revoked.
pub async fn partner_actor(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    ip: Option<String>,
) -> ApiResult<Option<Actor>> {
    let Some((user, pass)) = basic(headers) else {
        return Ok(None);
    };
    let address = ip.clone().unwrap_or_else(|| "unknown".into());
    st.limits.partner_allowed(&address)?;
    let bad = || {
        st.limits.partner_failed(&address);
        ApiError::Unauthorized("invalid_credentials")
    };
    let (tenant_id, id) = user.rsplit_once('.').ok_or_else(bad)?;
    let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT secret_hash, revoked_at, last_used_at FROM partner_credentials WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(st.db.pool())
    .await?;
    let (hash, revoked, last_used) = row.ok_or_else(bad)?;
    if revoked.is_some() || !same_secret(&hash, &sha256_hex(&pass)) {
        return Err(bad());
    }
    let now_t = Utc::now();
    // Recorded at most once a minute, as sessions are.
    if last_used
        .as_deref()
        .and_then(parse_time)
        .is_none_or(|t| (now_t - t).num_seconds() >= 60)
    {
        sqlx::query(
            "UPDATE partner_credentials SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(fmt_time(now_t))
        .execute(st.db.pool())
        .await?;
    }
    Ok(Some(Actor {
        tenant_id: tenant_id.to_string(),
        kind: ActorKind::Partner,
        user_id: None,
        customer_id: None,
        trader_id: None,
        roles: Vec::new(),
        session_id: None,
        api_key_id: None,
        impersonator_id: None,
        label: id.to_string(),
        ip,
        scopes: None,
    }))
}
