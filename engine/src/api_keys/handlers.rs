//! Handlers of the API key operations.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{
    KEY_COLUMNS, KeyRow, KeyView, clean_scopes, ensure_within_caller, load, new_secret,
    scope_problem, view_json,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::roles::{parse_roles, roles_json};
use crate::auth::{Actor, Role};
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::{fmt_time, new_id, now, parse_string_list, parse_time};

/// A key together with its secret, answered once: on creation and on rotation.
#[derive(Serialize)]
pub struct KeyWithSecret {
    #[serde(flatten)]
    view: KeyView,
    /// The full key for `Authorization: Bearer`; it is not stored and cannot be shown again.
    key: String,
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<KeyView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE deleted_at IS NULL AND tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<KeyRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(KeyView::from),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<KeyWithSecret>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    let scopes = clean_scopes(b.scopes.as_deref().unwrap_or_default());
    if scopes.is_empty() {
        v.fail("scopes", "list at least one scope, such as traders:read");
    } else if scopes.len() > 100 {
        v.fail("scopes", "at most 100 scopes");
    }
    for problem in scopes.iter().filter_map(|s| scope_problem(s, &st.plugins)) {
        v.fail("scopes", problem);
    }
    if let Some(e) = &b.expires_at {
        match parse_time(e) {
            None => v.fail("expiresAt", "must be an RFC 3339 time"),
            Some(t) => v.check(t > chrono::Utc::now(), "expiresAt", "must be in the future"),
        }
    }
    v.finish()?;
    let created_by = actor
        .user_id
        .clone()
        .ok_or(ApiError::Unauthorized("unauthenticated"))?;
    // The key acts for its creator, never with more than the creator holds; installation-wide
    // roles stay with people.
    let roles: Vec<Role> = actor
        .roles
        .iter()
        .copied()
        .filter(|r| r.assignable())
        .collect();
    ensure_within_caller(&actor, &roles, &scopes)?;
    let expires_at = b.expires_at.as_deref().and_then(parse_time).map(fmt_time);

    let id = new_id();
    let secret = new_secret(&actor.tenant_id, &id);
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, scopes, roles, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(name.unwrap_or_default())
    .bind(&secret.prefix)
    .bind(&secret.hash)
    .bind(serde_json::to_string(&scopes).unwrap_or_else(|_| "[]".into()))
    .bind(roles_json(&roles))
    .bind(&created_by)
    .bind(now())
    .bind(&expires_at)
    .execute(&mut *tx)
    .await?;
    let view = KeyView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "api_key.created",
        "api_key",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "api_key.create",
        "api_key",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyWithSecret {
            view,
            key: secret.key,
        }),
    ))
}

pub async fn revoke(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if cur.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "api_key_revoked",
            "The API key is already revoked.",
        ));
    }
    let before = view_json(&KeyView::from(cur));
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL AND deleted_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::conflict(
            "api_key_revoked",
            "The API key is already revoked.",
        ));
    }
    let view = KeyView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "api_key.revoked",
        "api_key",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "api_key.revoke",
        "api_key",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

pub async fn rotate(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyWithSecret>> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    if cur.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "api_key_revoked",
            "A revoked API key cannot be rotated; create a new one.",
        ));
    }
    if cur.is_expired() {
        return Err(ApiError::conflict(
            "api_key_expired",
            "An expired API key cannot be rotated; create a new one.",
        ));
    }
    // Rotation hands the caller a working secret, so it needs at least the key's powers.
    ensure_within_caller(
        &actor,
        &parse_roles(&cur.roles),
        &parse_string_list(&cur.scopes),
    )?;
    let before = view_json(&KeyView::from(cur));
    let secret = new_secret(&actor.tenant_id, &id);
    sqlx::query(
        "UPDATE api_keys SET secret_hash = $3, prefix = $4, last_used_at = NULL
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&secret.hash)
    .bind(&secret.prefix)
    .execute(&mut *tx)
    .await?;
    let view = KeyView::from(load(&mut *tx, &actor.tenant_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "api_key.rotated",
        "api_key",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "api_key.rotate",
        "api_key",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(KeyWithSecret {
        view,
        key: secret.key,
    }))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = load(&mut *tx, &actor.tenant_id, &id).await?;
    let before = view_json(&KeyView::from(cur));
    let ts = now();
    let done = sqlx::query(
        "UPDATE api_keys SET deleted_at = $3, revoked_at = COALESCE(revoked_at, $3)
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::NotFound("api key"));
    }
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "api_key.deleted",
        "api_key",
        &id,
        &json!({"id": id, "deletedAt": ts}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "api_key.delete",
        "api_key",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
