//! Team members: the team overview, the admin user list, role changes and removal. The
//! `/v1/team/members/*` and `/v1/users/*` operations share these rules.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{
    INVITATION_COLUMNS, InvitationRow, InvitationView, ensure_may_touch_owner, lock_team,
    other_owners, parse_role_list, to_json,
};
use crate::app::AppState;
use crate::audit;
use crate::auth::roles::{parse_roles, roles_json};
use crate::auth::session::{self, Subject};
use crate::auth::{Actor, Role};
use crate::db::SqlBuilder;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::identity::{USER_COLUMNS, UserRow, UserView, load_user};
use crate::util::now;

#[derive(Serialize)]
pub struct TeamView {
    members: Vec<UserView>,
    invitations: Vec<InvitationView>,
}

/// Every active member and every pending invitation. A team is small enough for one answer;
/// `GET /v1/users` pages through members.
pub async fn team(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<TeamView>> {
    let members: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY id DESC"
    ))
    .bind(&actor.tenant_id)
    .fetch_all(st.db.pool())
    .await?;
    let invitations: Vec<InvitationRow> = sqlx::query_as(&format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY id DESC"
    ))
    .bind(&actor.tenant_id)
    .bind(now())
    .fetch_all(st.db.pool())
    .await?;
    Ok(Json(TeamView {
        members: members.iter().map(UserView::from).collect(),
        invitations: invitations.into_iter().map(InvitationView::from).collect(),
    }))
}

const USER_STATUSES: &[&str] = &["active", "deactivated"];

pub async fn list_users(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<UserView>>> {
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut v = Validator::new();
    let status = q
        .get("status")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    v.one_of("status", status, USER_STATUSES);
    let role = q.get("role").map(String::as_str).filter(|s| !s.is_empty());
    if let Some(r) = role {
        v.check(Role::parse(r).is_some(), "role", "is not a role");
    }
    v.finish()?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    if status == Some("deactivated") {
        b.push(" AND deleted_at IS NOT NULL");
    } else {
        b.push(" AND deleted_at IS NULL");
    }
    if let Some(r) = role {
        // Roles are stored as a JSON array of strings; match the quoted element.
        b.push(" AND roles LIKE ").text(format!("%{}%", json!(r)));
    }
    if let Some(s) = q.get("q").filter(|s| !s.trim().is_empty()) {
        let like = format!("%{}%", s.trim().to_lowercase());
        b.push(" AND (email_lower LIKE ").text(like.clone());
        b.push(" OR LOWER(display_name) LIKE ").text(like);
        b.push(")");
    }
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<UserRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(|r| UserView::from(&r)),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    roles: Option<Vec<String>>,
}

pub async fn set_roles(
    State(st): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
    ApiJson(b): ApiJson<RolesBody>,
) -> ApiResult<Json<UserView>> {
    let mut v = Validator::new();
    let roles = parse_role_list(&mut v, "roles", b.roles.as_deref());
    v.finish()?;
    let mut tx = st.db.begin().await?;
    lock_team(&mut tx, &actor.tenant_id).await?;
    let cur = load_user(&mut *tx, &actor.tenant_id, &user_id).await?;
    let current = parse_roles(&cur.roles);
    ensure_may_touch_owner(&actor, &current, &roles)?;
    if current.contains(&Role::Owner)
        && !roles.contains(&Role::Owner)
        && other_owners(&mut tx, &actor.tenant_id, &user_id).await? == 0
    {
        return Err(ApiError::conflict(
            "last_owner",
            "The last owner cannot be demoted; make someone else an owner first.",
        ));
    }
    let before = to_json(&UserView::from(&cur));
    sqlx::query("UPDATE users SET roles = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(&actor.tenant_id)
        .bind(&user_id)
        .bind(roles_json(&roles))
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let keys_capped =
        crate::api_keys::cap_roles_of_creator(&mut tx, &actor.tenant_id, &user_id, &roles).await?;
    let view = UserView::from(&load_user(&mut *tx, &actor.tenant_id, &user_id).await?);
    let after = to_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "user.roles_changed",
        "user",
        &user_id,
        &json!({"user": after, "previousRoles": current, "apiKeysCapped": keys_capped}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "user.roles_change",
        "user",
        Some(&user_id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Deactivates a member: soft-deleted, signed out everywhere, their API keys and the
/// invitations they sent revoked, so nothing they set up keeps acting for them.
pub async fn remove(
    State(st): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    lock_team(&mut tx, &actor.tenant_id).await?;
    let cur = load_user(&mut *tx, &actor.tenant_id, &user_id).await?;
    if actor.user_id.as_deref() == Some(user_id.as_str()) {
        return Err(ApiError::conflict(
            "cannot_remove_self",
            "You cannot remove yourself from the team.",
        ));
    }
    let current = parse_roles(&cur.roles);
    ensure_may_touch_owner(&actor, &current, &[])?;
    if current.contains(&Role::Owner)
        && other_owners(&mut tx, &actor.tenant_id, &user_id).await? == 0
    {
        return Err(ApiError::conflict(
            "last_owner",
            "The last owner cannot be removed.",
        ));
    }
    let before = to_json(&UserView::from(&cur));
    let ts = now();
    sqlx::query(
        "UPDATE users SET status = 'deactivated', deleted_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&user_id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    let sessions =
        session::revoke_all(&mut tx, &actor.tenant_id, Subject::User, &user_id, None).await?;
    let keys = crate::api_keys::revoke_created_by(&mut tx, &actor.tenant_id, &user_id).await?;
    let invitations = sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND invited_by = $2
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(&actor.tenant_id)
    .bind(&user_id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let effects = json!({
        "id": user_id,
        "deactivatedAt": ts,
        "sessionsRevoked": sessions,
        "apiKeysRevoked": keys,
        "invitationsRevoked": invitations,
    });
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "user.deactivated",
        "user",
        &user_id,
        &effects,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "user.remove",
        "user",
        Some(&user_id),
        Some(&before),
        Some(&effects),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
