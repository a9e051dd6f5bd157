//! Register, login, logout and `me`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::model::{USER_COLUMNS, UserRow, UserView, load_tenant, load_user};
use super::tokens::{TokenPurpose, issue_token};
use super::totp;
use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::roles::roles_json;
use crate::auth::session::{self, OPERATOR_COOKIE, SessionSpec, Subject};
use crate::auth::{Actor, ClientInfo, Role, password};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::util::{fmt_time, new_id, now};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
    tenant_slug: Option<String>,
    tenant_name: Option<String>,
}

pub fn valid_slug(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub async fn register(
    State(st): State<AppState>,
    client: ClientInfo,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<Response> {
    st.limits.check(
        crate::http::limits::Limit::Register,
        client.ip.as_deref().unwrap_or("unknown"),
    )?;
    let mut v = Validator::new();
    let email = v.required("email", b.email.as_deref()).map(str::to_string);
    v.email("email", email.as_deref());
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    if let Some(p) = &pw {
        v.password("password", p);
    }
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    if let Some(s) = &slug {
        v.check(
            valid_slug(s),
            "tenantSlug",
            "must be 3-63 lowercase letters, digits or hyphens",
        );
    }
    let tenant_name = v
        .required("tenantName", b.tenant_name.as_deref())
        .map(str::to_string);
    v.max_len("tenantName", tenant_name.as_deref(), 200);
    v.max_len("displayName", b.display_name.as_deref(), 200);
    v.finish()?;
    let (email, pw, slug, tenant_name) = (
        email.unwrap_or_default(),
        pw.unwrap_or_default(),
        slug.unwrap_or_default(),
        tenant_name.unwrap_or_default(),
    );
    let display_name = b
        .display_name
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    let hash = password::hash(pw).await?;

    let mut tx = st.db.begin().await?;
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(&slug)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(ApiError::Conflict {
            code: "tenant_slug_taken",
            detail: "tenantSlug is already in use.".into(),
        });
    }
    let (tenant_id, user_id, ts) = (new_id(), new_id(), now());
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&tenant_id)
    .bind(&slug)
    .bind(&tenant_name)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO users (tenant_id, id, email, email_lower, password_hash, display_name, roles, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&tenant_id)
    .bind(&user_id)
    .bind(email.trim())
    .bind(email.trim().to_lowercase())
    .bind(&hash)
    .bind(&display_name)
    .bind(roles_json(&[Role::Owner]))
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let s = session::create(
        &mut tx,
        SessionSpec {
            tenant_id: &tenant_id,
            subject: Subject::User,
            subject_id: &user_id,
            ttl: Duration::hours(st.settings.session_ttl_hours),
            impersonator_id: None,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await?;
    issue_token(
        &mut tx,
        &st,
        &tenant_id,
        &user_id,
        email.trim(),
        TokenPurpose::EmailVerify,
    )
    .await?;
    let user = load_user(&mut *tx, &tenant_id, &user_id).await?;
    let tenant = load_tenant(&mut *tx, &tenant_id).await?;
    let user_view = UserView::from(&user);
    let after = json!({"tenant": &tenant, "user": &user_view});
    events::emit(
        &mut tx,
        &tenant_id,
        "tenant.created",
        "tenant",
        &tenant_id,
        &json!(&tenant),
    )
    .await?;
    events::emit(
        &mut tx,
        &tenant_id,
        "user.created",
        "user",
        &user_id,
        &json!(&user_view),
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "user",
            actor_id: Some(&user_id),
            label: Some(email.trim()),
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "auth.register",
        "tenant",
        Some(&tenant_id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(with_session_cookie(
        &st,
        StatusCode::CREATED,
        json!({"user": user_view, "tenant": tenant, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    ))
}

pub fn with_session_cookie(
    st: &AppState,
    status: StatusCode,
    body: serde_json::Value,
    cookie_value: &str,
) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            OPERATOR_COOKIE,
            cookie_value,
            st.settings.session_ttl_hours * 3600,
            st.settings.cookie_secure,
        ),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginBody {
    email: Option<String>,
    password: Option<String>,
    totp_code: Option<String>,
    tenant_slug: Option<String>,
}

/// The login lockout, a back-off rather than a wall. Failures are counted per scope (tenant and
/// e-mail) in the database, so every engine process shares the count. Up to
/// `login_max_failures` within `login_window_secs`, attempts go through. Beyond that, an attempt
/// is refused with 429 and `Retry-After` until a delay has passed since the latest failure:
/// 1 s after the first failure over the limit, doubling with each further one, at most
/// `login_backoff_max_secs` (60 s). Once the delay has passed, one attempt is checked like any
/// other, so the right password always gets through after at most that delay, while a guesser
/// gets about one guess a minute per account. A login from a device that logged in as this
/// user before (`known_device`, see [`DEVICE_COOKIE`]) is not held back at all: a stranger who
/// knows the owner's e-mail cannot lock the owner out of the browser the owner uses.
pub async fn check_rate_limit(st: &AppState, scope_key: &str, known_device: bool) -> ApiResult<()> {
    if known_device {
        return Ok(());
    }
    let window_start = fmt_time(Utc::now() - Duration::seconds(st.settings.login_window_secs));
    let (count, latest): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), MAX(created_at) FROM auth_failures WHERE scope_key = $1 AND created_at >= $2",
    )
    .bind(scope_key)
    .bind(&window_start)
    .fetch_one(st.db.pool())
    .await?;
    let over = count - st.settings.login_max_failures;
    if over < 0 {
        return Ok(());
    }
    let delay = 1i64
        .checked_shl(over.min(30) as u32)
        .unwrap_or(i64::MAX)
        .min(st.settings.login_backoff_max_secs.max(1));
    let free_at = latest
        .as_deref()
        .and_then(crate::util::parse_time)
        .map(|t| t + Duration::seconds(delay));
    match free_at {
        Some(at) if at > Utc::now() => {
            let ms = (at - Utc::now()).num_milliseconds().max(1);
            Err(ApiError::RateLimited {
                retry_after: ((ms + 999) / 1000) as u64,
            })
        }
        _ => Ok(()),
    }
}

/// The cookie a browser gets at a successful operator login: the user's id sealed with the
/// engine's secret key for that tenant (AES-GCM, so it cannot be forged or moved to another
/// tenant). It grants nothing by itself; it only marks the device as one the user logged in
/// from, which the lockout lets through ([`check_rate_limit`]).
pub const DEVICE_COOKIE: &str = "lumirecrm_device";

fn device_context(tenant_id: &str) -> String {
    format!("login-device:{tenant_id}")
}

/// Whether the request comes from a device that logged in as `user_id` before.
fn known_device(st: &AppState, headers: &HeaderMap, tenant_id: &str, user_id: &str) -> bool {
    session::read_cookie(headers, DEVICE_COOKIE)
        .and_then(|v| st.secrets.open(&device_context(tenant_id), v).ok())
        .is_some_and(|id| crate::util::same_secret(&id, user_id))
}

pub async fn record_failure(st: &AppState, scope_key: &str) -> ApiResult<()> {
    sqlx::query("INSERT INTO auth_failures (scope_key, created_at) VALUES ($1, $2)")
        .bind(scope_key)
        .bind(now())
        .execute(st.db.pool())
        .await?;
    Ok(())
}

pub async fn login(
    State(st): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(b): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    let email = v
        .required("email", b.email.as_deref())
        .map(|e| e.to_lowercase());
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    v.finish()?;
    let (email, pw, slug) = (
        email.unwrap_or_default(),
        pw.unwrap_or_default(),
        slug.unwrap_or_default(),
    );
    let scope_key = format!("login:{slug}:{email}");
    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(&slug)
        .fetch_optional(st.db.pool())
        .await?;
    let user: Option<UserRow> = match &tenant {
        Some((tid,)) => {
            sqlx::query_as(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL AND status = 'active'"
            ))
            .bind(tid)
            .bind(&email)
            .fetch_optional(st.db.pool())
            .await?
        }
        None => None,
    };
    let device = match (&tenant, &user) {
        (Some((tid,)), Some(u)) => known_device(&st, &headers, tid, &u.id),
        _ => false,
    };
    check_rate_limit(&st, &scope_key, device).await?;
    let ok = password::verify(pw, user.as_ref().and_then(|u| u.password_hash.clone())).await?;
    let (Some((tenant_id,)), Some(user), true) = (tenant, user, ok) else {
        record_failure(&st, &scope_key).await?;
        return Err(ApiError::Unauthorized("invalid_credentials"));
    };
    if user.totp_enabled != 0 {
        let Some(code) = b.totp_code.filter(|c| !c.is_empty()) else {
            return Err(ApiError::Unauthorized("totp_required"));
        };
        if let Err(e) = totp::consume_code(&st, &tenant_id, &user, &code).await {
            record_failure(&st, &scope_key).await?;
            return Err(e);
        }
    }
    sqlx::query("DELETE FROM auth_failures WHERE scope_key = $1")
        .bind(&scope_key)
        .execute(st.db.pool())
        .await?;

    let mut tx = st.db.begin().await?;
    // Session rotation: whatever session the browser held is revoked; a new id is issued.
    if let Some(old) = session::read_cookie(&headers, OPERATOR_COOKIE) {
        session::revoke_by_cookie(&mut tx, old).await?;
    }
    let s = session::create(
        &mut tx,
        SessionSpec {
            tenant_id: &tenant_id,
            subject: Subject::User,
            subject_id: &user.id,
            ttl: Duration::hours(st.settings.session_ttl_hours),
            impersonator_id: None,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "user",
            actor_id: Some(&user.id),
            label: Some(&user.email),
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "auth.login",
        "session",
        Some(&s.id),
        None,
        None,
    )
    .await?;
    let tenant = load_tenant(&mut *tx, &tenant_id).await?;
    tx.commit().await?;
    let mut resp = with_session_cookie(
        &st,
        StatusCode::OK,
        json!({"user": UserView::from(&user), "tenant": tenant, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    );
    let device = st.secrets.seal(&device_context(&tenant_id), &user.id);
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            DEVICE_COOKIE,
            &device,
            400 * 24 * 3600,
            st.settings.cookie_secure,
        ),
    );
    Ok(resp)
}

pub async fn logout(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(cookie) = session::read_cookie(&headers, OPERATOR_COOKIE) {
        let mut tx = st.db.begin().await?;
        if let Some((tenant_id, session_id)) = session::revoke_by_cookie(&mut tx, cookie).await? {
            audit::record(
                &mut tx,
                AuditActor {
                    tenant_id: &tenant_id,
                    actor_type: "user",
                    actor_id: None,
                    label: None,
                    impersonator_id: None,
                    ip: None,
                },
                "auth.logout",
                "session",
                Some(&session_id),
                None,
                None,
            )
            .await?;
        }
        tx.commit().await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(OPERATOR_COOKIE, st.settings.cookie_secure),
    );
    Ok(resp)
}

pub async fn me(
    State(st): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let user_id = actor.user_id.clone().unwrap_or_default();
    let user = load_user(st.db.pool(), &actor.tenant_id, &user_id).await?;
    let tenant = load_tenant(st.db.pool(), &actor.tenant_id).await?;
    let impersonator = match &actor.impersonator_id {
        Some(id) => load_user(st.db.pool(), &actor.tenant_id, id)
            .await
            .ok()
            .map(|u| json!({"id": u.id, "email": u.email, "displayName": u.display_name})),
        None => None,
    };
    Ok(axum::Json(json!({
        "user": UserView::from(&user),
        "tenant": tenant,
        "session": {"id": actor.session_id, "apiKeyId": actor.api_key_id},
        "impersonation": {"active": impersonator.is_some(), "impersonator": impersonator},
    })))
}
