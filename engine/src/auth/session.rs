//! Server-side sessions. The cookie holds `<tenant_id>.<secret>`; the database keeps only
//! sha256(secret), so a leaked table does not leak sessions, and lookups stay within a tenant.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{Duration, Utc};

use crate::db::Tx;
use crate::http::error::ApiError;
use crate::util::{fmt_time, new_id, now, random_token, sha256_hex};

pub const OPERATOR_COOKIE: &str = "lumirecrm_session";
pub const PORTAL_COOKIE: &str = "lumirecrm_portal_session";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Subject {
    User,
    Customer,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::User => "user",
            Subject::Customer => "customer",
        }
    }
}

pub struct NewSession {
    pub id: String,
    pub cookie_value: String,
    pub expires_at: String,
}

pub struct SessionSpec<'a> {
    pub tenant_id: &'a str,
    pub subject: Subject,
    pub subject_id: &'a str,
    pub ttl: Duration,
    pub impersonator_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn create(tx: &mut Tx, spec: SessionSpec<'_>) -> Result<NewSession, ApiError> {
    let id = new_id();
    let secret = random_token();
    let created = now();
    let expires_at = fmt_time(Utc::now() + spec.ttl);
    sqlx::query(
        "INSERT INTO sessions (tenant_id, id, subject_type, subject_id, token_hash, impersonator_id, ip, user_agent, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
    )
    .bind(spec.tenant_id)
    .bind(&id)
    .bind(spec.subject.as_str())
    .bind(spec.subject_id)
    .bind(sha256_hex(&secret))
    .bind(spec.impersonator_id)
    .bind(spec.ip)
    .bind(spec.user_agent)
    .bind(&created)
    .bind(&expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(NewSession {
        id,
        cookie_value: format!("{}.{}", spec.tenant_id, secret),
        expires_at,
    })
}

/// Splits a credential of the form `<tenant_id>.<secret>`.
pub fn split_credential(value: &str) -> Option<(&str, &str)> {
    let (tenant, secret) = value.split_once('.')?;
    (!tenant.is_empty() && tenant.len() <= 32 && !secret.is_empty() && secret.len() <= 128)
        .then_some((tenant, secret))
}

pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", 0, secure)
}

/// Revokes the session behind a cookie value, if it is one. Returns its (tenant, id).
pub async fn revoke_by_cookie(
    tx: &mut Tx,
    cookie_value: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let Some((tenant, secret)) = split_credential(cookie_value) else {
        return Ok(None);
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND token_hash = $2 AND revoked_at IS NULL
         RETURNING id, subject_id",
    )
    .bind(tenant)
    .bind(sha256_hex(secret))
    .bind(now())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id, _)| (tenant.to_string(), id)))
}

/// Revokes every live session of a subject, optionally sparing one.
pub async fn revoke_all(
    tx: &mut Tx,
    tenant_id: &str,
    subject: Subject,
    subject_id: &str,
    except: Option<&str>,
) -> Result<u64, ApiError> {
    let r = sqlx::query(
        "UPDATE sessions SET revoked_at = $4 WHERE tenant_id = $1 AND subject_type = $2 AND subject_id = $3
         AND revoked_at IS NULL AND id <> $5",
    )
    .bind(tenant_id)
    .bind(subject.as_str())
    .bind(subject_id)
    .bind(now())
    .bind(except.unwrap_or(""))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}
