//! Single-use, expiring tokens mailed to users: e-mail verification and password reset.
//! The mailed token is `<tenant_id>.<secret>`; only sha256(secret) is stored.

use axum::extract::State;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::session::{self, Subject, split_credential};
use crate::auth::{Actor, ClientInfo, password};
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::mail::{self, Mail};
use crate::util::{fmt_time, new_id, now, random_token, sha256_hex};

#[derive(Clone, Copy)]
pub enum TokenPurpose {
    EmailVerify,
    PasswordReset,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::EmailVerify => "email_verify",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }
    fn ttl(self) -> Duration {
        match self {
            TokenPurpose::EmailVerify => Duration::days(3),
            TokenPurpose::PasswordReset => Duration::hours(1),
        }
    }
}

/// Creates a token and queues the e-mail that carries it, in the caller's transaction.
pub async fn issue_token(
    tx: &mut Tx,
    st: &AppState,
    tenant_id: &str,
    user_id: &str,
    email: &str,
    purpose: TokenPurpose,
) -> ApiResult<()> {
    let secret = random_token();
    let ts = Utc::now();
    sqlx::query(
        "INSERT INTO auth_tokens (tenant_id, id, user_id, purpose, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(sha256_hex(&secret))
    .bind(fmt_time(ts))
    .bind(fmt_time(ts + purpose.ttl()))
    .execute(&mut **tx)
    .await?;
    let token = format!("{tenant_id}.{secret}");
    let base = st.settings.public_url.trim_end_matches('/');
    let (subject, body, template) = match purpose {
        TokenPurpose::EmailVerify => (
            "Verify your e-mail address",
            format!(
                "Confirm your e-mail address by opening {base}/verify-email?token={token}\n\nToken: {token}\n"
            ),
            "email_verify",
        ),
        TokenPurpose::PasswordReset => (
            "Reset your password",
            format!(
                "Reset your password within one hour by opening {base}/reset-password?token={token}\n\nToken: {token}\n\nIf you did not ask for this, ignore this message.\n"
            ),
            "password_reset",
        ),
    };
    mail::enqueue(
        tx,
        Mail {
            tenant_id,
            to: email,
            subject,
            body: &body,
            template,
        },
    )
    .await
}

/// Marks a live token used and returns (tenant_id, user_id); a bad, used or expired token is a
/// 400 naming `token`.
async fn consume(tx: &mut Tx, token: &str, purpose: TokenPurpose) -> ApiResult<(String, String)> {
    let invalid = || ApiError::field("token", "is invalid, used or expired");
    let (tenant_id, secret) = split_credential(token).ok_or_else(invalid)?;
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE auth_tokens SET used_at = $4
         WHERE tenant_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4
         RETURNING user_id",
    )
    .bind(tenant_id)
    .bind(sha256_hex(secret))
    .bind(purpose.as_str())
    .bind(now())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|(u,)| (tenant_id.to_string(), u))
        .ok_or_else(invalid)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForgotBody {
    email: Option<String>,
    tenant_slug: Option<String>,
}

pub async fn forgot(
    State(st): State<AppState>,
    client: crate::auth::ClientInfo,
    ApiJson(b): ApiJson<ForgotBody>,
) -> ApiResult<axum::Json<Value>> {
    use crate::http::limits::Limit;
    st.limits.check(
        Limit::ForgotAddress,
        client.ip.as_deref().unwrap_or("unknown"),
    )?;
    let mut v = Validator::new();
    let email = v
        .required("email", b.email.as_deref())
        .map(|e| e.to_lowercase());
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    v.finish()?;
    // Per account too, whether or not it exists (the answer must not tell).
    st.limits.check(
        Limit::ForgotAccount,
        &format!(
            "{}:{}",
            slug.as_deref().unwrap_or_default(),
            email.as_deref().unwrap_or_default()
        ),
    )?;
    let found: Option<(String, String, String)> = sqlx::query_as(
        "SELECT u.tenant_id, u.id, u.email FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE t.slug = $1 AND u.email_lower = $2 AND u.deleted_at IS NULL AND u.status = 'active'",
    )
    .bind(slug.unwrap_or_default())
    .bind(email.unwrap_or_default())
    .fetch_optional(st.db.pool())
    .await?;
    if let Some((tenant_id, user_id, email)) = found {
        let mut tx = st.db.begin().await?;
        issue_token(
            &mut tx,
            &st,
            &tenant_id,
            &user_id,
            &email,
            TokenPurpose::PasswordReset,
        )
        .await?;
        audit::record(
            &mut tx,
            AuditActor {
                tenant_id: &tenant_id,
                actor_type: "user",
                actor_id: Some(&user_id),
                label: Some(&email),
                impersonator_id: None,
                ip: None,
            },
            "auth.password_reset_requested",
            "user",
            Some(&user_id),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
    }
    // Same answer whether or not the account exists, so addresses cannot be enumerated.
    Ok(axum::Json(json!({"status": "ok"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    token: Option<String>,
    password: Option<String>,
}

pub async fn reset(
    State(st): State<AppState>,
    client: ClientInfo,
    ApiJson(b): ApiJson<ResetBody>,
) -> ApiResult<axum::Json<Value>> {
    let mut v = Validator::new();
    let token = v.required("token", b.token.as_deref()).map(str::to_string);
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    if let Some(p) = &pw {
        v.password("password", p);
    }
    v.finish()?;
    let hash = password::hash(pw.unwrap_or_default()).await?;
    let mut tx = st.db.begin().await?;
    let (tenant_id, user_id) = consume(
        &mut tx,
        &token.unwrap_or_default(),
        TokenPurpose::PasswordReset,
    )
    .await?;
    sqlx::query(
        "UPDATE users SET password_hash = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&tenant_id)
    .bind(&user_id)
    .bind(&hash)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let revoked = session::revoke_all(&mut tx, &tenant_id, Subject::User, &user_id, None).await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "user",
            actor_id: Some(&user_id),
            label: None,
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "auth.password_reset",
        "user",
        Some(&user_id),
        None,
        Some(&json!({"sessionsRevoked": revoked})),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({"status": "ok", "sessionsRevoked": revoked}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    token: Option<String>,
}

pub async fn verify_email(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<VerifyBody>,
) -> ApiResult<axum::Json<Value>> {
    let mut v = Validator::new();
    let token = v.required("token", b.token.as_deref()).map(str::to_string);
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let (tenant_id, user_id) = consume(
        &mut tx,
        &token.unwrap_or_default(),
        TokenPurpose::EmailVerify,
    )
    .await?;
    let ts = now();
    sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $3), updated_at = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&tenant_id)
    .bind(&user_id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "user",
            actor_id: Some(&user_id),
            label: None,
            impersonator_id: None,
            ip: None,
        },
        "auth.email_verified",
        "user",
        Some(&user_id),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({"status": "ok", "emailVerified": true})))
}

pub async fn resend(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<Value>> {
    let user_id = actor.user_id.clone().unwrap_or_default();
    let user = super::load_user(st.db.pool(), &actor.tenant_id, &user_id).await?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::conflict(
            "email_already_verified",
            "This e-mail address is already verified.",
        ));
    }
    let mut tx = st.db.begin().await?;
    issue_token(
        &mut tx,
        &st,
        &actor.tenant_id,
        &user.id,
        &user.email,
        TokenPurpose::EmailVerify,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "auth.email_verification_resent",
        "user",
        Some(&user.id),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({"status": "ok"})))
}
