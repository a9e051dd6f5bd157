//! The one middleware that turns a request's credential into an [`Actor`] and enforces the
//! operation's [`Access`] rule. A refused request never reaches its handler.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::roles::{Access, parse_roles};
use super::session::{OPERATOR_COOKIE, PORTAL_COOKIE, Subject, read_cookie, split_credential};
use super::{Actor, ActorKind};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::util::{fmt_time, now, parse_time, same_secret, sha256_hex};

/// What the route registry attaches to each operation.
#[derive(Clone)]
pub struct OpGuard {
    pub state: AppState,
    pub access: Access,
    pub tag: &'static str,
    /// API keys are refused (the operation guards the account itself).
    pub session_only: bool,
}

pub async fn authorize(State(guard): State<OpGuard>, mut req: Request, next: Next) -> Response {
    // Only Sync parts of the request are held across awaits (the body is not Sync).
    let headers = req.headers().clone();
    let method = req.method().clone();
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    match resolve(&guard, &headers, &method, ip).await {
        Ok(Some(actor)) if guard.session_only && actor.kind == ActorKind::ApiKey => {
            ApiError::ForbiddenBecause {
                code: "session_required",
                detail: "This operation guards the account itself (second factor, password, sessions, passkeys): it takes a signed-in session, never an API key.".into(),
            }
            .into_response()
        }
        Ok(Some(actor)) => {
            let span = tracing::Span::current();
            span.record("tenant_id", actor.tenant_id.as_str());
            span.record("actor", actor.label.as_str());
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn resolve(
    guard: &OpGuard,
    parts_headers: &axum::http::HeaderMap,
    method: &Method,
    ip: Option<String>,
) -> Result<Option<Actor>, ApiError> {
    match guard.access {
        Access::Public => {
            guard.state.limits.check(
                crate::http::limits::Limit::Public,
                ip.as_deref().unwrap_or("unknown"),
            )?;
            Ok(None)
        }
        Access::Customer => {
            let Some(cookie) = read_cookie(parts_headers, PORTAL_COOKIE) else {
                return Err(missing_credential(guard, parts_headers, ip).await);
            };
            let actor = customer_from_cookie(guard, ip, cookie).await?;
            Ok(Some(actor))
        }
        Access::Staff(allowed) => {
            let actor = staff_actor(guard, parts_headers, method, ip, guard.tag).await?;
            if !actor.roles.iter().any(|r| allowed.contains(r)) {
                return Err(ApiError::Forbidden(
                    "Your role does not allow this operation.".into(),
                ));
            }
            Ok(Some(actor))
        }
    }
}

async fn staff_actor(
    guard: &OpGuard,
    headers: &axum::http::HeaderMap,
    method: &Method,
    ip: Option<String>,
    tag: &str,
) -> Result<Actor, ApiError> {
    if let Some(key) = bearer(headers) {
        let actor = api_key_actor(guard, ip, key).await?;
        check_scope(tag, method, &actor)?;
        Ok(actor)
    } else if let Some(cookie) = read_cookie(headers, OPERATOR_COOKIE) {
        user_from_cookie(guard, ip, cookie).await
    } else {
        Err(missing_credential(guard, headers, ip).await)
    }
}

/// The answer to a request without the credential its operation takes: 403 when it carries
/// valid partner credentials (a partner is known, but may only call the plugin routes that
/// admit partners), 401 otherwise.
async fn missing_credential(
    guard: &OpGuard,
    headers: &axum::http::HeaderMap,
    ip: Option<String>,
) -> ApiError {
    match super::credentials::partner(&guard.state, headers, ip).await {
        Ok(Some(_)) => ApiError::Forbidden(
            "Partner credentials only reach the routes of the partner API.".into(),
        ),
        Ok(None) => ApiError::Unauthorized("unauthenticated"),
        Err(e) => e,
    }
}

/// Resolves a team member or API key (scope `<tag>:read|write`) without checking roles: for
/// routes whose roles are only known at run time (plugin routes).
pub async fn authenticate_staff(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    method: &Method,
    ip: Option<String>,
    tag: &str,
) -> Result<Actor, ApiError> {
    let guard = OpGuard {
        state: state.clone(),
        access: Access::Staff(&[]),
        tag: "",
        session_only: false,
    };
    staff_actor(&guard, headers, method, ip, tag).await
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    subject_id: String,
    impersonator_id: Option<String>,
    last_seen_at: String,
    expires_at: String,
}

async fn live_session(
    guard: &OpGuard,
    cookie: &str,
    subject: Subject,
) -> Result<(String, SessionRow), ApiError> {
    let (tenant, secret) =
        split_credential(cookie).ok_or(ApiError::Unauthorized("invalid_session"))?;
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT id, subject_id, impersonator_id, last_seen_at, expires_at FROM sessions
         WHERE tenant_id = $1 AND token_hash = $2 AND subject_type = $3 AND revoked_at IS NULL",
    )
    .bind(tenant)
    .bind(sha256_hex(secret))
    .bind(subject.as_str())
    .fetch_optional(guard.state.db.pool())
    .await?;
    let row = row.ok_or(ApiError::Unauthorized("invalid_session"))?;
    let now_t = Utc::now();
    if parse_time(&row.expires_at).is_none_or(|t| t <= now_t) {
        return Err(ApiError::Unauthorized("session_expired"));
    }
    // Touch at most once a minute: a write per request would serialise readers on SQLite.
    if parse_time(&row.last_seen_at).is_none_or(|t| (now_t - t).num_seconds() >= 60) {
        sqlx::query("UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(&row.id)
            .bind(fmt_time(now_t))
            .execute(guard.state.db.pool())
            .await?;
    }
    Ok((tenant.to_string(), row))
}

async fn user_from_cookie(
    guard: &OpGuard,
    ip: Option<String>,
    cookie: &str,
) -> Result<Actor, ApiError> {
    let (tenant_id, s) = live_session(guard, cookie, Subject::User).await?;
    let user: Option<(String, String)> = sqlx::query_as(
        "SELECT email, roles FROM users WHERE tenant_id = $1 AND id = $2 AND status = 'active' AND deleted_at IS NULL",
    )
    .bind(&tenant_id)
    .bind(&s.subject_id)
    .fetch_optional(guard.state.db.pool())
    .await?;
    let (email, roles) = user.ok_or(ApiError::Unauthorized("invalid_session"))?;
    Ok(Actor {
        tenant_id,
        kind: ActorKind::User,
        user_id: Some(s.subject_id),
        customer_id: None,
        trader_id: None,
        roles: parse_roles(&roles),
        session_id: Some(s.id),
        api_key_id: None,
        impersonator_id: s.impersonator_id,
        label: email,
        ip,
        scopes: None,
    })
}

async fn customer_from_cookie(
    guard: &OpGuard,
    ip: Option<String>,
    cookie: &str,
) -> Result<Actor, ApiError> {
    let (tenant_id, s) = live_session(guard, cookie, Subject::Customer).await?;
    let c: Option<(String, String)> = sqlx::query_as(
        "SELECT email, trader_id FROM customers WHERE tenant_id = $1 AND id = $2 AND status <> 'rejected'",
    )
    .bind(&tenant_id)
    .bind(&s.subject_id)
    .fetch_optional(guard.state.db.pool())
    .await?;
    let (email, trader_id) = c.ok_or(ApiError::Unauthorized("invalid_session"))?;
    Ok(Actor {
        tenant_id,
        kind: ActorKind::Customer,
        user_id: None,
        customer_id: Some(s.subject_id),
        trader_id: Some(trader_id),
        roles: Vec::new(),
        session_id: Some(s.id),
        api_key_id: None,
        impersonator_id: s.impersonator_id,
        label: email,
        ip,
        scopes: None,
    })
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    name: String,
    secret_hash: String,
    scopes: String,
    roles: String,
    created_by: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

/// API keys look like `lk_<tenant_id>.<key_id>.<secret>`.
pub fn split_api_key(raw: &str) -> Option<(&str, &str, &str)> {
    let rest = raw.strip_prefix("lk_")?;
    let mut it = rest.splitn(3, '.');
    let (t, k, s) = (it.next()?, it.next()?, it.next()?);
    (!t.is_empty() && !k.is_empty() && !s.is_empty() && t.len() <= 32 && k.len() <= 32)
        .then_some((t, k, s))
}

async fn api_key_actor(guard: &OpGuard, ip: Option<String>, raw: &str) -> Result<Actor, ApiError> {
    let (tenant_id, key_id, secret) =
        split_api_key(raw).ok_or(ApiError::Unauthorized("invalid_api_key"))?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT name, secret_hash, scopes, roles, created_by, expires_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(key_id)
    .fetch_optional(guard.state.db.pool())
    .await?;
    let row = row.ok_or(ApiError::Unauthorized("invalid_api_key"))?;
    if !same_secret(&row.secret_hash, &sha256_hex(secret)) || row.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("invalid_api_key"));
    }
    if row
        .expires_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| t <= Utc::now())
    {
        return Err(ApiError::Unauthorized("api_key_expired"));
    }
    sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(key_id)
        .bind(now())
        .execute(guard.state.db.pool())
        .await?;
    Ok(Actor {
        tenant_id: tenant_id.to_string(),
        kind: ActorKind::ApiKey,
        user_id: Some(row.created_by),
        customer_id: None,
        trader_id: None,
        roles: parse_roles(&row.roles),
        session_id: None,
        api_key_id: Some(key_id.to_string()),
        impersonator_id: None,
        label: format!("api-key:{}", row.name),
        ip,
        scopes: Some(serde_json::from_str(&row.scopes).unwrap_or_default()),
    })
}

/// A key's scopes are `<tag>:read`, `<tag>:write`, `<tag>:*` or `*`; GET/HEAD need read.
fn check_scope(tag: &str, method: &Method, actor: &Actor) -> Result<(), ApiError> {
    let scopes = actor.scopes.as_deref().unwrap_or_default();
    let need = if method == Method::GET || method == Method::HEAD {
        "read"
    } else {
        "write"
    };
    let ok = scopes
        .iter()
        .any(|s| s == "*" || *s == format!("{tag}:*") || *s == format!("{tag}:{need}"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "This API key lacks the scope {tag}:{need}."
        )))
    }
}
