//! Invitations: an admin invites an address with roles; the invitee opens the mailed
//! single-use link, sets a password and joins. The link's token is `<tenant_id>.<secret>`;
//! only sha256(secret) is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    INVITATION_COLUMNS, INVITATION_TTL_DAYS, InvitationRow, InvitationView, ensure_free_address,
    ensure_may_touch_owner, load_invitation, lock_team, parse_role_list, to_json,
};
use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::roles::{parse_roles, roles_json};
use crate::auth::session::{self, SessionSpec, Subject, split_credential};
use crate::auth::{Actor, ClientInfo, Role, password};
use crate::db::Tx;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::identity::{UserView, load_tenant, load_user, with_session_cookie};
use crate::mail::{self, Mail};
use crate::util::{fmt_time, new_id, now, random_token, sha256_hex};

/// A validated request to add someone to the team.
pub struct NewMember {
    pub email: String,
    pub display_name: String,
    pub roles: Vec<Role>,
}

/// Validates `email`, `displayName` and `roles` of an invite body.
pub fn check_new_member(
    v: &mut Validator,
    email: Option<&str>,
    display_name: Option<&str>,
    roles: Option<&[String]>,
) -> NewMember {
    let email = v.required("email", email).map(str::to_string);
    v.email("email", email.as_deref());
    v.max_len("displayName", display_name, 200);
    let roles = parse_role_list(v, "roles", roles);
    let email = email.unwrap_or_default();
    let display_name = display_name
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    NewMember {
        email,
        display_name,
        roles,
    }
}

/// Records an invitation and queues the e-mail carrying its link, in the caller's transaction.
pub async fn create_invitation(
    tx: &mut Tx,
    st: &AppState,
    actor: &Actor,
    m: &NewMember,
) -> ApiResult<InvitationView> {
    ensure_may_touch_owner(actor, &[], &m.roles)?;
    let inviter = actor
        .user_id
        .clone()
        .ok_or(ApiError::Unauthorized("unauthenticated"))?;
    let email_lower = m.email.to_lowercase();
    lock_team(tx, &actor.tenant_id).await?;
    ensure_free_address(tx, &actor.tenant_id, &email_lower).await?;
    let inviter_name = inviter_name(tx, actor).await?;
    let (id, secret, ts) = (new_id(), random_token(), Utc::now());
    let expires_at = fmt_time(ts + Duration::days(INVITATION_TTL_DAYS));
    sqlx::query(
        "INSERT INTO invitations (tenant_id, id, email, email_lower, display_name, roles, token_hash, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&m.email)
    .bind(&email_lower)
    .bind(&m.display_name)
    .bind(roles_json(&m.roles))
    .bind(sha256_hex(&secret))
    .bind(&inviter)
    .bind(fmt_time(ts))
    .bind(&expires_at)
    .execute(&mut **tx)
    .await?;
    let tenant = load_tenant(&mut **tx, &actor.tenant_id).await?;
    let token = format!("{}.{secret}", actor.tenant_id);
    let base = st.settings.public_url.trim_end_matches('/');
    let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
    let body = format!(
        "{inviter_name} invited you to join {} on LumireCRM as {}.\n\nAccept within {INVITATION_TTL_DAYS} days by opening {base}/accept-invite?token={token}\n\nToken: {token}\n\nIf you did not expect this, ignore this message.\n",
        tenant.name,
        roles.join(", "),
    );
    let subject = format!("You are invited to join {} on LumireCRM", tenant.name);
    mail::enqueue(
        tx,
        Mail {
            tenant_id: &actor.tenant_id,
            to: &m.email,
            subject: &subject,
            body: &body,
            template: "team_invitation",
        },
    )
    .await?;
    let view = InvitationView::from(load_invitation(&mut **tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    events::emit(
        tx,
        &actor.tenant_id,
        "invitation.created",
        "invitation",
        &id,
        &after,
    )
    .await?;
    audit::record(
        tx,
        actor,
        "invitation.create",
        "invitation",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    Ok(view)
}

/// How mails name the member acting (an API key acts for the member who created it).
pub async fn inviter_name(tx: &mut Tx, actor: &Actor) -> ApiResult<String> {
    let Some(user_id) = actor.user_id.as_deref() else {
        return Ok(actor.label.clone());
    };
    match load_user(&mut **tx, &actor.tenant_id, user_id).await {
        Ok(u) => Ok(u.display_name),
        Err(ApiError::NotFound(_)) => Ok(actor.label.clone()),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteBody {
    email: Option<String>,
    display_name: Option<String>,
    roles: Option<Vec<String>>,
}

pub async fn invite(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<InvitationView>)> {
    let mut v = Validator::new();
    let m = check_new_member(
        &mut v,
        b.email.as_deref(),
        b.display_name.as_deref(),
        b.roles.as_deref(),
    );
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let view = create_invitation(&mut tx, &st, &actor, &m).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The live invitation a token stands for; a malformed, used, revoked or expired one is a 404.
async fn pending_by_token<'e, E>(exec: E, token: &str) -> ApiResult<(String, InvitationRow)>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let (tenant_id, secret) = split_credential(token).ok_or(ApiError::NotFound("invitation"))?;
    let row: Option<InvitationRow> = sqlx::query_as(&format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 AND token_hash = $2
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3"
    ))
    .bind(tenant_id)
    .bind(sha256_hex(secret))
    .bind(now())
    .fetch_optional(exec)
    .await?;
    row.map(|r| (tenant_id.to_string(), r))
        .ok_or(ApiError::NotFound("invitation"))
}

/// What the accept page shows: who invites the address, to which broker, with which roles.
pub async fn show(State(st): State<AppState>, Path(token): Path<String>) -> ApiResult<Json<Value>> {
    let (tenant_id, inv) = pending_by_token(st.db.pool(), &token).await?;
    let tenant = load_tenant(st.db.pool(), &tenant_id).await?;
    Ok(Json(json!({
        "tenant": {"name": tenant.name, "slug": tenant.slug},
        "email": inv.email,
        "displayName": inv.display_name,
        "roles": parse_roles(&inv.roles),
        "expiresAt": inv.expires_at,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcceptBody {
    password: Option<String>,
    display_name: Option<String>,
}

pub async fn accept(
    State(st): State<AppState>,
    client: ClientInfo,
    Path(token): Path<String>,
    ApiJson(b): ApiJson<AcceptBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    let pw = v
        .required("password", b.password.as_deref())
        .map(str::to_string);
    if let Some(p) = &pw {
        v.password("password", p);
    }
    v.max_len("displayName", b.display_name.as_deref(), 200);
    v.finish()?;
    // Hashing is slow and needs no lock; do it before the transaction.
    let hash = password::hash(pw.unwrap_or_default()).await?;

    let mut tx = st.db.begin().await?;
    let (tenant_id, inv) = pending_by_token(&mut *tx, &token).await?;
    let ts = now();
    // Claiming the row first makes the token single-use even under concurrent accepts.
    let claimed = sqlx::query(
        "UPDATE invitations SET accepted_at = $3 WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(&tenant_id)
    .bind(&inv.id)
    .bind(&ts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(ApiError::NotFound("invitation"));
    }
    let member: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
    )
    .bind(&tenant_id)
    .bind(inv.email.to_lowercase())
    .fetch_optional(&mut *tx)
    .await?;
    if member.is_some() {
        return Err(ApiError::conflict(
            "member_exists",
            "This address already belongs to a team member; sign in instead.",
        ));
    }
    let user_id = new_id();
    let display_name = b
        .display_name
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| inv.display_name.clone());
    // Opening the mailed link proves the address, so it starts verified.
    sqlx::query(
        "INSERT INTO users (tenant_id, id, email, email_lower, password_hash, display_name, roles, email_verified_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)",
    )
    .bind(&tenant_id)
    .bind(&user_id)
    .bind(&inv.email)
    .bind(inv.email.to_lowercase())
    .bind(&hash)
    .bind(&display_name)
    .bind(&inv.roles)
    .bind(&ts)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE invitations SET accepted_user_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&tenant_id)
        .bind(&inv.id)
        .bind(&user_id)
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
    let user = UserView::from(&load_user(&mut *tx, &tenant_id, &user_id).await?);
    let tenant = load_tenant(&mut *tx, &tenant_id).await?;
    let invitation = to_json(&InvitationView::from(
        load_invitation(&mut *tx, &tenant_id, &inv.id).await?,
    ));
    events::emit(
        &mut tx,
        &tenant_id,
        "invitation.accepted",
        "invitation",
        &inv.id,
        &invitation,
    )
    .await?;
    events::emit(
        &mut tx,
        &tenant_id,
        "user.created",
        "user",
        &user_id,
        &to_json(&user),
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id: &tenant_id,
            actor_type: "user",
            actor_id: Some(&user_id),
            label: Some(&inv.email),
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "invitation.accept",
        "invitation",
        Some(&inv.id),
        Some(&to_json(&InvitationView::from(inv.clone()))),
        Some(&invitation),
    )
    .await?;
    tx.commit().await?;
    Ok(with_session_cookie(
        &st,
        StatusCode::CREATED,
        json!({"user": user, "tenant": tenant, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    ))
}

/// Revokes a pending invitation by its id; its link stops working.
pub async fn revoke(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let cur = load_invitation(&mut *tx, &actor.tenant_id, &id).await?;
    match cur.status() {
        "accepted" => {
            return Err(ApiError::conflict(
                "invitation_accepted",
                "The invitation was already accepted; remove the member instead.",
            ));
        }
        "revoked" => {
            return Err(ApiError::conflict(
                "invitation_revoked",
                "The invitation is already revoked.",
            ));
        }
        _ => {}
    }
    let before = to_json(&InvitationView::from(cur));
    // Compare-and-set on the pending state read above: an acceptance or another revocation
    // that came first makes this one a 409 that records nothing.
    let done = crate::db::update_one(
        &mut tx,
        "UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        &actor.tenant_id,
        &id,
        &now(),
    )
    .await?;
    if !done {
        return Err(ApiError::lost_race("invitation"));
    }
    let after = to_json(&InvitationView::from(
        load_invitation(&mut *tx, &actor.tenant_id, &id).await?,
    ));
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "invitation.revoked",
        "invitation",
        &id,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "invitation.revoke",
        "invitation",
        Some(&id),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
