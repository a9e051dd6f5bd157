//! Issuing, listing and revoking partner credentials.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::util::{new_id, now, random_token, sha256_hex};

#[derive(Serialize, sqlx::FromRow, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub id: String,
    pub name: String,
    #[sqlx(skip)]
    pub username: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl CredentialView {
    fn with_username(mut self, tenant_id: &str) -> Self {
        self.username = super::auth::username(tenant_id, &self.id);
        self
    }
}

const COLUMNS: &str = "id, name, created_by, created_at, last_used_at, revoked_at";

async fn load(st: &AppState, tenant_id: &str, id: &str) -> ApiResult<CredentialView> {
    let row: Option<CredentialView> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM partner_credentials WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(st.db.pool())
    .await?;
    row.map(|r| r.with_username(tenant_id))
        .ok_or(ApiError::NotFound("partner credential"))
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<CredentialView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = crate::db::SqlBuilder::new(&format!(
        "SELECT {COLUMNS} FROM partner_credentials WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<CredentialView> = b.query_as().fetch_all(st.db.pool()).await?;
    let rows = rows
        .into_iter()
        .map(|r| r.with_username(&actor.tenant_id))
        .collect();
    Ok(Json(Page::from_rows(rows, &page, |r| r.id.as_str())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    #[serde(flatten)]
    credential: CredentialView,
    /// Shown once.
    password: String,
}

pub async fn create(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Issued>)> {
    let mut v = Validator::new();
    let name = v.required("name", b.name.as_deref()).map(str::to_string);
    v.max_len("name", name.as_deref(), 100);
    v.finish()?;
    let id = format!("prt{}", new_id().to_ascii_lowercase());
    let password = random_token();
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "INSERT INTO partner_credentials (tenant_id, id, name, secret_hash, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(name.unwrap_or_default())
    .bind(sha256_hex(&password))
    .bind(&actor.user_id)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let after = json!({"id": id});
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "partner_credential.created",
            action: "partner_credential.create",
            resource_type: "partner_credential",
            resource_id: &id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    let credential = load(&st, &actor.tenant_id, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Issued {
            credential,
            password,
        }),
    ))
}

pub async fn revoke(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CredentialView>> {
    let before = load(&st, &actor.tenant_id, &id).await?;
    if before.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "already_revoked",
            "These credentials are already revoked.",
        ));
    }
    let mut tx = st.db.begin().await?;
    let n = sqlx::query(
        "UPDATE partner_credentials SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::conflict(
            "already_revoked",
            "These credentials are already revoked.",
        ));
    }
    let (before, after) = (
        json!({"id": id, "revokedAt": null}),
        json!({"id": id, "revokedAt": now()}),
    );
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "partner_credential.revoked",
            action: "partner_credential.revoke",
            resource_type: "partner_credential",
            resource_id: &id,
            before: Some(&before),
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load(&st, &actor.tenant_id, &id).await?))
}
