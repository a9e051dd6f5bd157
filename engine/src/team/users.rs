//! The admin side of the team: add a user (directly with a password, or by invitation) and
//! owner impersonation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;

use super::invitations::{NewMember, check_new_member, create_invitation, inviter_name};
use super::model::{ensure_free_address, ensure_may_touch_owner, lock_team, to_json};
use crate::app::AppState;
use crate::audit;
use crate::auth::roles::{parse_roles, roles_json};
use crate::auth::session::{self, OPERATOR_COOKIE, SessionSpec, Subject};
use crate::auth::{Actor, ActorKind, ClientInfo, Role, password};
use crate::db::Tx;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::identity::{UserView, load_tenant, load_user};
use crate::mail::{self, Mail};
use crate::util::{new_id, now};

/// An impersonation session lasts at most this long.
pub const IMPERSONATION_MINUTES: i64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteBody {
    email: Option<String>,
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    password: Option<String>,
    send_invite_link: Option<bool>,
}

/// With a `password` the user is created at once (and `sendInviteLink: true` mails them a
/// sign-in notice); without one they are invited by e-mail like `POST /v1/team/invite`.
pub async fn invite(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let mut v = Validator::new();
    let m = check_new_member(
        &mut v,
        b.email.as_deref(),
        b.display_name.as_deref(),
        b.roles.as_deref(),
    );
    if let Some(p) = &b.password {
        v.password("password", p);
    } else if b.send_invite_link == Some(false) {
        v.fail(
            "sendInviteLink",
            "without a password the user can only join through an invite link",
        );
    }
    v.finish()?;
    // Hashing is slow; keep it out of the write transaction.
    let hash = match b.password {
        Some(pw) => Some(password::hash(pw).await?),
        None => None,
    };
    let mut tx = st.db.begin().await?;
    let body = match hash {
        None => {
            let invitation = create_invitation(&mut tx, &st, &actor, &m).await?;
            json!({"user": null, "invitation": invitation})
        }
        Some(hash) => {
            let notify = b.send_invite_link == Some(true);
            let user = create_user(&mut tx, &st, &actor, &m, &hash, notify).await?;
            json!({"user": user, "invitation": null})
        }
    };
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

async fn create_user(
    tx: &mut Tx,
    st: &AppState,
    actor: &Actor,
    m: &NewMember,
    password_hash: &str,
    notify: bool,
) -> ApiResult<UserView> {
    ensure_may_touch_owner(actor, &[], &m.roles)?;
    let email_lower = m.email.to_lowercase();
    lock_team(tx, &actor.tenant_id).await?;
    ensure_free_address(tx, &actor.tenant_id, &email_lower).await?;
    let (id, ts) = (new_id(), now());
    sqlx::query(
        "INSERT INTO users (tenant_id, id, email, email_lower, password_hash, display_name, roles, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(&m.email)
    .bind(&email_lower)
    .bind(password_hash)
    .bind(&m.display_name)
    .bind(roles_json(&m.roles))
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    if notify {
        let tenant = load_tenant(&mut **tx, &actor.tenant_id).await?;
        let base = st.settings.public_url.trim_end_matches('/');
        // The password was chosen by the admin and is handed over by them, never by mail.
        let by = inviter_name(tx, actor).await?;
        let body = format!(
            "{by} added you to {} on LumireCRM.\n\nSign in at {base}/login with this e-mail address, workspace `{}` and the password your administrator gives you.\n",
            tenant.name, tenant.slug,
        );
        let subject = format!("Your LumireCRM account at {}", tenant.name);
        mail::enqueue(
            tx,
            Mail {
                tenant_id: &actor.tenant_id,
                to: &m.email,
                subject: &subject,
                body: &body,
                template: "team_account_created",
            },
        )
        .await?;
    }
    let view = UserView::from(&load_user(&mut **tx, &actor.tenant_id, &id).await?);
    let after = to_json(&view);
    events::emit(tx, &actor.tenant_id, "user.created", "user", &id, &after).await?;
    audit::record(
        tx,
        actor,
        "user.create",
        "user",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    Ok(view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateBody {
    reason: Option<String>,
}

/// Starts a short session as another member so an owner sees exactly what they see. The
/// session carries the owner's id (`impersonator_id`), shown by `/v1/auth/me` and written on
/// every audit entry made with it.
pub async fn impersonate(
    State(st): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(target_id): Path<String>,
    ApiJson(b): ApiJson<ImpersonateBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    v.max_len("reason", b.reason.as_deref(), 500);
    v.finish()?;
    // A session cookie may only come from a signed-in owner, never from an API key.
    let owner_id = match (actor.kind, actor.session_id.as_deref(), &actor.user_id) {
        (ActorKind::User, Some(_), Some(id)) => id.clone(),
        _ => {
            return Err(ApiError::Forbidden(
                "Impersonation needs an owner's session, not an API key.".into(),
            ));
        }
    };
    if owner_id == target_id {
        return Err(ApiError::conflict(
            "cannot_impersonate_self",
            "You are already signed in as yourself.",
        ));
    }
    let mut tx = st.db.begin().await?;
    let target = load_user(&mut *tx, &actor.tenant_id, &target_id).await?;
    if target.status != "active" {
        return Err(ApiError::conflict(
            "user_inactive",
            "Only an active member can be impersonated.",
        ));
    }
    if parse_roles(&target.roles).contains(&Role::Owner) {
        return Err(ApiError::Forbidden(
            "An owner cannot impersonate another owner.".into(),
        ));
    }
    let s = session::create(
        &mut tx,
        SessionSpec {
            tenant_id: &actor.tenant_id,
            subject: Subject::User,
            subject_id: &target_id,
            ttl: Duration::minutes(IMPERSONATION_MINUTES),
            impersonator_id: Some(&owner_id),
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await?;
    let user = UserView::from(&target);
    let record = json!({
        "targetUserId": target_id,
        "impersonatorId": owner_id,
        "sessionId": s.id,
        "expiresAt": s.expires_at,
        "reason": b.reason,
    });
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "user.impersonated",
        "user",
        &target_id,
        &record,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "user.impersonate",
        "user",
        Some(&target_id),
        None,
        Some(&record),
    )
    .await?;
    tx.commit().await?;
    let body = json!({
        "user": user,
        "session": {"id": s.id, "expiresAt": s.expires_at, "impersonatorId": owner_id},
    });
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            OPERATOR_COOKIE,
            &s.cookie_value,
            IMPERSONATION_MINUTES * 60,
            st.settings.cookie_secure,
        ),
    );
    Ok(resp)
}
