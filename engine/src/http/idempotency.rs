//! `Idempotency-Key` on authenticated POSTs. The first request with a key claims it and its
//! response is stored; a retry with the same key and body replays that response; the same key
//! with another body is 422; a duplicate arriving while the first is still running is 409.
//! Keys are scoped to tenant and credential and kept at least 24 hours. Because the claim is a
//! row with a unique key, concurrent duplicates produce exactly one effect, across processes.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::Actor;
use crate::util::{fmt_time, now};

pub const HEADER: &str = "idempotency-key";
/// Stored keys are honoured for this long (CONVENTIONS: at least 24 hours).
pub const RETENTION_HOURS: i64 = 24;

pub async fn middleware(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match run(st, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(st: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "must be 1-255 printable ASCII characters",
            )
        })?
        .to_string();
    let Some(actor) = req.extensions().get::<Actor>().cloned() else {
        return Ok(next.run(req).await);
    };
    let (parts, body) = req.into_parts();
    // Plugin routes accept larger bodies (uploads); core routes' extractors still enforce
    // `max_body_bytes` on the buffered body afterwards.
    let limit = st
        .settings
        .max_body_bytes
        .max(st.settings.plugin_max_request_bytes);
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let mut h = Sha256::new();
    h.update(parts.uri.path().as_bytes());
    h.update([0]);
    h.update(&bytes);
    let hash = hex::encode(h.finalize());
    let credential = actor.credential_id().to_string();

    if !claim(&st, &actor.tenant_id, &credential, &key, &hash).await? {
        return replay(&st, &actor.tenant_id, &credential, &key, &hash).await;
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status();
    if status.is_server_error() {
        // A failure we caused is not an answer worth replaying: free the key for a retry.
        release(&st, &actor.tenant_id, &credential, &key).await?;
        return Ok(resp);
    }
    let (resp_parts, resp_body) = resp.into_parts();
    let resp_bytes = to_bytes(resp_body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    let content_type = resp_parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    sqlx::query(
        "UPDATE idempotency_keys SET status = $4, response_body = $5, content_type = $6
         WHERE tenant_id = $1 AND credential_id = $2 AND idem_key = $3",
    )
    .bind(&actor.tenant_id)
    .bind(&credential)
    .bind(&key)
    .bind(i64::from(status.as_u16()))
    .bind(String::from_utf8_lossy(&resp_bytes).into_owned())
    .bind(content_type)
    .execute(st.db.pool())
    .await?;
    Ok(Response::from_parts(resp_parts, Body::from(resp_bytes)))
}

/// Inserts the claim row; false when the key is already held.
async fn claim(
    st: &AppState,
    tenant: &str,
    credential: &str,
    key: &str,
    hash: &str,
) -> Result<bool, ApiError> {
    // A key older than the retention window is forgotten, so it may be used afresh.
    let cutoff = fmt_time(Utc::now() - Duration::hours(RETENTION_HOURS));
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND credential_id = $2 AND idem_key = $3 AND created_at < $4",
    )
    .bind(tenant)
    .bind(credential)
    .bind(key)
    .bind(&cutoff)
    .execute(st.db.pool())
    .await?;
    let r = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, credential_id, idem_key, request_hash, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(credential)
    .bind(key)
    .bind(hash)
    .bind(now())
    .execute(st.db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn release(st: &AppState, tenant: &str, credential: &str, key: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND credential_id = $2 AND idem_key = $3")
        .bind(tenant)
        .bind(credential)
        .bind(key)
        .execute(st.db.pool())
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    request_hash: String,
    status: Option<i64>,
    response_body: Option<String>,
    content_type: Option<String>,
}

async fn replay(
    st: &AppState,
    tenant: &str,
    credential: &str,
    key: &str,
    hash: &str,
) -> Result<Response, ApiError> {
    let row: Option<StoredKey> = sqlx::query_as(
        "SELECT request_hash, status, response_body, content_type FROM idempotency_keys
         WHERE tenant_id = $1 AND credential_id = $2 AND idem_key = $3",
    )
    .bind(tenant)
    .bind(credential)
    .bind(key)
    .fetch_optional(st.db.pool())
    .await?;
    let Some(StoredKey {
        request_hash: stored_hash,
        status,
        response_body: body,
        content_type,
    }) = row
    else {
        return Err(ApiError::conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is being processed; retry shortly.",
        ));
    };
    if stored_hash != hash {
        return Err(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            detail: "This Idempotency-Key was used with a different request body.".into(),
        });
    }
    let Some(status) = status else {
        return Err(ApiError::conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is being processed; retry shortly.",
        ));
    };
    let code = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = (code, body.unwrap_or_default()).into_response();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(resp)
}
