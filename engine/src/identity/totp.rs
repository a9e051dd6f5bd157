//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of clock skew). A code's time step is
//! recorded when used, so the same code (or an older one) is refused afterwards.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use super::model::UserRow;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::util::now;

const STEP: u64 = 30;

fn totp_for(secret_b32: &str, account: &str) -> ApiResult<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        bytes,
        Some("LumireCRM".to_string()),
        account.to_string(),
    )
    .map_err(|e| ApiError::internal(format!("{e:?}")))
}

/// The time step a code belongs to (current, previous or next), if it is valid.
fn matching_step(totp: &TOTP, code: &str) -> Option<i64> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let current = now / STEP;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|step| crate::util::same_secret(&totp.generate(step * STEP), code))
        .map(|s| s as i64)
}

/// Checks a code and records its step atomically, so a code is accepted at most once.
pub async fn consume_code(
    st: &AppState,
    tenant_id: &str,
    user: &UserRow,
    code: &str,
) -> ApiResult<()> {
    let secret = user.totp_secret.as_deref().ok_or_else(|| {
        ApiError::conflict("totp_not_enrolled", "TOTP enrolment has not started.")
    })?;
    let totp = totp_for(secret, &user.email)?;
    let step = matching_step(&totp, code.trim()).ok_or(ApiError::Unauthorized("invalid_totp"))?;
    let r = sqlx::query(
        "UPDATE users SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 AND totp_last_step < $3",
    )
    .bind(tenant_id)
    .bind(&user.id)
    .bind(step)
    .execute(st.db.pool())
    .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::Unauthorized("totp_code_used"));
    }
    Ok(())
}

pub async fn enroll(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<Value>> {
    let user_id = actor.user_id.clone().unwrap_or_default();
    let user = super::load_user(st.db.pool(), &actor.tenant_id, &user_id).await?;
    if user.totp_enabled != 0 {
        return Err(ApiError::conflict(
            "totp_already_enabled",
            "TOTP is already enabled for this user.",
        ));
    }
    let secret = Secret::generate_secret().to_encoded().to_string();
    let totp = totp_for(&secret, &user.email)?;
    let mut tx = st.db.begin().await?;
    sqlx::query("UPDATE users SET totp_secret = $3, totp_last_step = 0, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&user.id)
        .bind(&secret)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &actor,
        "auth.totp_enroll_started",
        "user",
        Some(&user.id),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({"secret": secret, "otpauthUrl": totp.get_url()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    code: Option<String>,
}

pub async fn verify(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<VerifyBody>,
) -> ApiResult<axum::Json<Value>> {
    let mut v = Validator::new();
    let code = v.required("code", b.code.as_deref()).map(str::to_string);
    if let Some(c) = &code {
        v.check(
            c.len() == 6 && c.chars().all(|c| c.is_ascii_digit()),
            "code",
            "must be 6 digits",
        );
    }
    v.finish()?;
    let user_id = actor.user_id.clone().unwrap_or_default();
    let user = super::load_user(st.db.pool(), &actor.tenant_id, &user_id).await?;
    if user.totp_enabled != 0 {
        return Err(ApiError::conflict(
            "totp_already_enabled",
            "TOTP is already enabled.",
        ));
    }
    consume_code(&st, &actor.tenant_id, &user, &code.unwrap_or_default())
        .await
        .map_err(|e| match e {
            ApiError::Unauthorized(_) => ApiError::field("code", "is not a valid current code"),
            other => other,
        })?;
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "UPDATE users SET totp_enabled = 1, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&user.id)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "auth.totp_enabled",
        "user",
        Some(&user.id),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({"totpEnabled": true})))
}
