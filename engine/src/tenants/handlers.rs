//! Handlers of the current-tenant operations: settings and the logo.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::flags;
use super::uploads::{self, UploadTicket};
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::identity::{TenantView, load_tenant};
use crate::storage::StoreError;
use crate::util::now;

pub const LOGO_PURPOSE: &str = "tenant_logo";
pub const LOGO_TYPES: &[&str] = &["image/png", "image/jpeg", "image/svg+xml", "image/webp"];
pub const LOGO_MAX_BYTES: i64 = 2 * 1024 * 1024;
const BRANDING_MAX_BYTES: usize = 16 * 1024;

fn to_json(t: &TenantView) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub async fn get(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<TenantView>> {
    Ok(Json(load_tenant(st.db.pool(), &actor.tenant_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBody {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    branding: Patch<Value>,
    #[serde(default)]
    feature_flags: Patch<Value>,
}

/// `branding` and `featureFlags` are merged into the stored objects (a key set to `null` is
/// removed), so a client changes one setting without resending the others.
pub async fn update(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<TenantView>> {
    let mut v = Validator::new();
    let name = match &b.name {
        Patch::Null => {
            v.fail("name", "cannot be null");
            None
        }
        Patch::Value(n) => {
            let n = n.trim();
            v.check(!n.is_empty(), "name", "cannot be empty");
            v.max_len("name", Some(n), 200);
            Some(n.to_string())
        }
        Patch::Missing => None,
    };
    let branding = match &b.branding {
        Patch::Null => {
            v.fail("branding", "cannot be null; use {} or set keys to null");
            None
        }
        Patch::Value(Value::Object(m)) => Some(m.clone()),
        Patch::Value(_) => {
            v.fail("branding", "must be an object");
            None
        }
        Patch::Missing => None,
    };
    let flags = match &b.feature_flags {
        Patch::Null => {
            v.fail(
                "featureFlags",
                "cannot be null; use {} or set flags to null",
            );
            None
        }
        Patch::Value(Value::Object(m)) => {
            flags::check(&mut v, "featureFlags.", m);
            Some(m.clone())
        }
        Patch::Value(_) => {
            v.fail("featureFlags", "must be an object of booleans");
            None
        }
        Patch::Missing => None,
    };
    v.finish()?;

    let mut tx = st.db.begin().await?;
    let cur = load_tenant(&mut *tx, &actor.tenant_id).await?;
    let before = to_json(&cur);
    let branding = match branding {
        Some(changes) => Value::Object(flags::merge(&cur.branding, &changes)),
        None => cur.branding.clone(),
    };
    if branding.to_string().len() > BRANDING_MAX_BYTES {
        return Err(ApiError::field(
            "branding",
            format!("must stay under {BRANDING_MAX_BYTES} bytes of JSON"),
        ));
    }
    let flags = match flags {
        Some(changes) => flags::apply(&cur.feature_flags, &changes, "featureFlags")?,
        None => cur.feature_flags.clone(),
    };
    sqlx::query(
        "UPDATE tenants SET name = $2, branding = $3, feature_flags = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(&actor.tenant_id)
    .bind(name.unwrap_or(cur.name))
    .bind(branding.to_string())
    .bind(flags.to_string())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = load_tenant(&mut *tx, &actor.tenant_id).await?;
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "tenant.updated",
        "tenant",
        &actor.tenant_id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "tenant.update",
        "tenant",
        Some(&actor.tenant_id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    // Plugin routes of this process see the new flags at once (others within
    // `plugin_flags_cache_ms`).
    st.plugins.enablement.invalidate(&actor.tenant_id);
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogoUploadBody {
    content_type: Option<String>,
    file_size: Option<i64>,
}

pub async fn logo_upload(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<LogoUploadBody>,
) -> ApiResult<(StatusCode, Json<UploadTicket>)> {
    let mut v = Validator::new();
    let content_type = v
        .required("contentType", b.content_type.as_deref())
        .map(str::to_string);
    v.one_of("contentType", content_type.as_deref(), LOGO_TYPES);
    match b.file_size {
        None => v.fail("fileSize", "is required (bytes)"),
        Some(n) => v.check(
            (1..=LOGO_MAX_BYTES).contains(&n),
            "fileSize",
            "must be between 1 byte and 2 MiB (2097152 bytes)",
        ),
    }
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let ticket = uploads::start(
        &mut tx,
        &st,
        &actor,
        LOGO_PURPOSE,
        &content_type.unwrap_or_default(),
        b.file_size.unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogoConfirmBody {
    upload_id: Option<String>,
}

/// Makes a completed logo upload the tenant's logo.
pub async fn logo_confirm(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<LogoConfirmBody>,
) -> ApiResult<Json<TenantView>> {
    let mut v = Validator::new();
    let upload_id = v
        .required("uploadId", b.upload_id.as_deref())
        .map(str::to_string)
        .unwrap_or_default();
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let obj: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT object_key, uploaded_at FROM objects WHERE tenant_id = $1 AND id = $2 AND purpose = $3",
    )
    .bind(&actor.tenant_id)
    .bind(&upload_id)
    .bind(LOGO_PURPOSE)
    .fetch_optional(&mut *tx)
    .await?;
    let (object_key, uploaded_at) = obj.ok_or(ApiError::NotFound("upload"))?;
    if uploaded_at.is_none() {
        return Err(ApiError::conflict(
            "upload_incomplete",
            "Nothing was uploaded yet; PUT the file to the upload URL first.",
        ));
    }
    let before = to_json(&load_tenant(&mut *tx, &actor.tenant_id).await?);
    sqlx::query("UPDATE tenants SET logo_key = $2, updated_at = $3 WHERE id = $1")
        .bind(&actor.tenant_id)
        .bind(&object_key)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let view = load_tenant(&mut *tx, &actor.tenant_id).await?;
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "tenant.updated",
        "tenant",
        &actor.tenant_id,
        &json!({"tenant": after, "logoUploadId": upload_id}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "tenant.logo_change",
        "tenant",
        Some(&actor.tenant_id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn logo(State(st): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT o.object_key, o.content_type FROM tenants t
         JOIN objects o ON o.tenant_id = t.id AND o.object_key = t.logo_key
         WHERE t.id = $1 AND o.tenant_id = $1 AND o.uploaded_at IS NOT NULL",
    )
    .bind(&actor.tenant_id)
    .fetch_optional(st.db.pool())
    .await?;
    let (key, content_type) = found.ok_or(ApiError::NotFound("logo"))?;
    let bytes = match st.store.get(&key).await {
        Ok(b) => b,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("logo")),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // An SVG opened directly must not run script or load anything.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    Ok(resp)
}
