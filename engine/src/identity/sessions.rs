//! The current user's sessions: list, revoke one, revoke all others.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::auth::session::{self, Subject};
use crate::http::error::{ApiError, ApiResult};
use crate::http::pagination::Page;
use crate::util::now;

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    impersonator_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: String,
    current: bool,
    impersonated: bool,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
}

fn user_id(actor: &Actor) -> ApiResult<&str> {
    actor
        .user_id
        .as_deref()
        .ok_or(ApiError::Unauthorized("unauthenticated"))
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<Page<SessionView>>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, impersonator_id, ip, user_agent, created_at, last_seen_at, expires_at FROM sessions
         WHERE tenant_id = $1 AND subject_type = 'user' AND subject_id = $2 AND revoked_at IS NULL AND expires_at > $3
         ORDER BY id DESC LIMIT 500",
    )
    .bind(&actor.tenant_id)
    .bind(user_id(&actor)?)
    .bind(now())
    .fetch_all(st.db.pool())
    .await?;
    let current = actor.session_id.clone().unwrap_or_default();
    Ok(axum::Json(Page {
        data: rows
            .into_iter()
            .map(|r| SessionView {
                current: r.id == current,
                impersonated: r.impersonator_id.is_some(),
                id: r.id,
                ip: r.ip,
                user_agent: r.user_agent,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                expires_at: r.expires_at,
            })
            .collect(),
        next_cursor: None,
    }))
}

pub async fn revoke(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let r = sqlx::query(
        "UPDATE sessions SET revoked_at = $4 WHERE tenant_id = $1 AND id = $2 AND subject_type = 'user'
         AND subject_id = $3 AND revoked_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(user_id(&actor)?)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::NotFound("session"));
    }
    audit::record(
        &mut tx,
        &actor,
        "auth.session_revoked",
        "session",
        Some(&id),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_all(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<Value>> {
    let mut tx = st.db.begin().await?;
    let n = session::revoke_all(
        &mut tx,
        &actor.tenant_id,
        Subject::User,
        user_id(&actor)?,
        actor.session_id.as_deref(),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "auth.sessions_revoked",
        "user",
        actor.user_id.as_deref(),
        None,
        Some(&json!({"revoked": n})),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({"revoked": n})))
}
