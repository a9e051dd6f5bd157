//! Direct uploads into the object store, in two steps like a presigned URL: an operation
//! (the tenant logo today) records an `objects` row and answers an upload URL carrying a
//! single-use token `<tenant_id>.<secret>` (only sha256(secret) is kept); the client PUTs the
//! bytes there. The PUT checks the declared content type, the size limit and the file's magic
//! bytes before anything is stored.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use chrono::{Duration, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::session::split_credential;
use crate::auth::{Actor, ClientInfo};
use crate::db::Tx;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::util::{fmt_time, new_id, now, parse_time, random_token, same_secret, sha256_hex};

/// How long an upload URL stays usable.
pub const UPLOAD_TTL_MINUTES: i64 = 15;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    pub upload_id: String,
    pub upload_url: String,
    pub method: &'static str,
    pub expires_at: String,
    /// Headers the PUT must carry.
    pub headers: Value,
}

/// Records an upload slot for `purpose` and returns where to PUT the bytes.
pub async fn start(
    tx: &mut Tx,
    st: &AppState,
    actor: &Actor,
    purpose: &str,
    content_type: &str,
    size_limit: i64,
) -> ApiResult<UploadTicket> {
    let (id, secret, ts) = (new_id(), random_token(), Utc::now());
    let expires_at = fmt_time(ts + Duration::minutes(UPLOAD_TTL_MINUTES));
    let object_key = format!("{}/{}/{}", actor.tenant_id, purpose.replace('_', "-"), id);
    sqlx::query(
        "INSERT INTO objects (tenant_id, id, object_key, purpose, content_type, size_limit, upload_token_hash, created_at, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&object_key)
    .bind(purpose)
    .bind(content_type)
    .bind(size_limit)
    .bind(sha256_hex(&secret))
    .bind(fmt_time(ts))
    .bind(&expires_at)
    .bind(actor.actor_id())
    .execute(&mut **tx)
    .await?;
    let base = st.settings.public_url.trim_end_matches('/');
    let ticket = UploadTicket {
        upload_url: format!("{base}/v1/uploads/{id}?token={}.{secret}", actor.tenant_id),
        upload_id: id.clone(),
        method: "PUT",
        expires_at,
        headers: json!({"Content-Type": content_type}),
    };
    let record = json!({
        "uploadId": id,
        "purpose": purpose,
        "contentType": content_type,
        "sizeLimit": size_limit,
        "expiresAt": ticket.expires_at,
    });
    events::emit(
        tx,
        &actor.tenant_id,
        "upload.created",
        "object",
        &id,
        &record,
    )
    .await?;
    audit::record(
        tx,
        actor,
        "upload.create",
        "object",
        Some(&id),
        None,
        Some(&record),
    )
    .await?;
    Ok(ticket)
}

#[derive(sqlx::FromRow)]
struct ObjectRow {
    object_key: String,
    purpose: String,
    content_type: String,
    size_limit: i64,
    upload_token_hash: String,
    uploaded_at: Option<String>,
    expires_at: String,
}

/// Whether the first bytes are those of the declared image type.
pub fn looks_like(content_type: &str, bytes: &[u8]) -> bool {
    match content_type {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/webp" => bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "image/svg+xml" => std::str::from_utf8(bytes).is_ok_and(|s| {
            let s = s.trim_start_matches('\u{feff}').trim_start();
            s.starts_with('<') && s.to_ascii_lowercase().contains("<svg")
        }),
        _ => false,
    }
}

/// `PUT /v1/uploads/{id}?token=...`: the body is the file.
pub async fn put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let bad_token = || ApiError::Unauthorized("invalid_upload_token");
    let (tenant_id, secret) = q
        .get("token")
        .and_then(|t| split_credential(t))
        .ok_or_else(bad_token)?;
    let row: Option<ObjectRow> = sqlx::query_as(
        "SELECT object_key, purpose, content_type, size_limit, upload_token_hash, uploaded_at, expires_at
         FROM objects WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(&id)
    .fetch_optional(st.db.pool())
    .await?;
    let row = row.ok_or_else(bad_token)?;
    if !same_secret(&row.upload_token_hash, &sha256_hex(secret)) {
        return Err(bad_token());
    }
    if row.uploaded_at.is_some() {
        return Err(ApiError::conflict(
            "upload_already_completed",
            "This upload URL was already used; request a new one.",
        ));
    }
    if parse_time(&row.expires_at).is_none_or(|t| t <= Utc::now()) {
        return Err(ApiError::Unauthorized("upload_url_expired"));
    }
    let sent_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if sent_type.as_deref() != Some(row.content_type.as_str()) {
        return Err(ApiError::field(
            "Content-Type",
            format!("must be {}, as declared for this upload", row.content_type),
        ));
    }
    let limit = usize::try_from(row.size_limit).unwrap_or(0);
    // Read at most the declared size; a larger body is refused without buffering the rest.
    let mut bytes: Vec<u8> = Vec::with_capacity(limit.min(64 * 1024));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::field("body", "could not read the upload"))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::field("body", "the upload is empty"));
    }
    if !looks_like(&row.content_type, &bytes) {
        return Err(ApiError::field(
            "body",
            format!("the file is not a valid {}", row.content_type),
        ));
    }
    let size = bytes.len() as i64;
    let mut tx = st.db.begin().await?;
    let ts = now();
    // The conditional update claims the slot, so two racing PUTs cannot both complete it.
    let claimed = sqlx::query(
        "UPDATE objects SET uploaded_at = $3, size = $4 WHERE tenant_id = $1 AND id = $2 AND uploaded_at IS NULL",
    )
    .bind(tenant_id)
    .bind(&id)
    .bind(&ts)
    .bind(size)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(ApiError::conflict(
            "upload_already_completed",
            "This upload URL was already used; request a new one.",
        ));
    }
    st.store
        .put(&row.object_key, bytes)
        .await
        .map_err(ApiError::internal)?;
    let record = json!({
        "uploadId": id,
        "purpose": row.purpose,
        "contentType": row.content_type,
        "size": size,
        "uploadedAt": ts,
    });
    events::emit(
        &mut tx,
        tenant_id,
        "upload.completed",
        "object",
        &id,
        &record,
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id,
            actor_type: "upload_token",
            actor_id: None,
            label: None,
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "upload.complete",
        "object",
        Some(&id),
        None,
        Some(&record),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert!(looks_like("image/png", b"\x89PNG\r\n\x1a\nrest"));
        assert!(!looks_like("image/png", b"GIF89a"));
        assert!(looks_like("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(looks_like("image/webp", b"RIFF\x10\0\0\0WEBPVP8 "));
        assert!(looks_like(
            "image/svg+xml",
            b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"
        ));
        assert!(!looks_like("image/svg+xml", b"hello <svg"));
        assert!(!looks_like("image/gif", b"GIF89a"));
    }
}
