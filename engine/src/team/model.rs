//! Invitation rows and views, and the rules every change to a team follows.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::auth::roles::parse_roles;
use crate::auth::{Actor, Role};
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::validate::Validator;
use crate::util::{now, parse_time};

/// Invitations stay valid this long.
pub const INVITATION_TTL_DAYS: i64 = 7;

#[derive(sqlx::FromRow, Clone)]
pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub roles: String,
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub revoked_at: Option<String>,
    pub accepted_user_id: Option<String>,
}

pub const INVITATION_COLUMNS: &str = "id, email, display_name, roles, invited_by, created_at, expires_at, accepted_at, revoked_at, accepted_user_id";

impl InvitationRow {
    pub fn status(&self) -> &'static str {
        if self.accepted_at.is_some() {
            "accepted"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if parse_time(&self.expires_at).is_none_or(|t| t <= Utc::now()) {
            "expired"
        } else {
            "pending"
        }
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub invited_by: String,
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub revoked_at: Option<String>,
    pub accepted_user_id: Option<String>,
}

impl From<InvitationRow> for InvitationView {
    fn from(r: InvitationRow) -> Self {
        InvitationView {
            status: r.status(),
            roles: parse_roles(&r.roles),
            id: r.id,
            email: r.email,
            display_name: r.display_name,
            invited_by: r.invited_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
            accepted_user_id: r.accepted_user_id,
        }
    }
}

pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub async fn load_invitation<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<InvitationRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<InvitationRow> = sqlx::query_as(&format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("invitation"))
}

/// Reads a `roles` list from a request: known, tenant-assignable roles, at least one, no
/// repeats. Problems are reported on `field`.
pub fn parse_role_list(v: &mut Validator, field: &str, list: Option<&[String]>) -> Vec<Role> {
    let Some(list) = list else {
        v.fail(field, "is required, e.g. [\"sales\"]");
        return Vec::new();
    };
    let mut roles = Vec::new();
    for name in list {
        match Role::parse(name.trim()) {
            Some(r) if !r.assignable() => v.fail(
                field,
                format!("`{name}` is never assignable to a team member"),
            ),
            Some(r) => {
                if !roles.contains(&r) {
                    roles.push(r);
                }
            }
            None => {
                let names: Vec<&str> = Role::ALL
                    .iter()
                    .filter(|r| r.assignable())
                    .map(|r| r.as_str())
                    .collect();
                v.fail(
                    field,
                    format!("`{name}` is not a role; use {}", names.join(", ")),
                )
            }
        }
    }
    if list.is_empty() {
        v.fail(field, "list at least one role");
    }
    roles
}

/// Only an owner grants or takes away `owner`, or changes an owner's membership at all.
pub fn ensure_may_touch_owner(actor: &Actor, current: &[Role], wanted: &[Role]) -> ApiResult<()> {
    let touches_owner = current.contains(&Role::Owner) || wanted.contains(&Role::Owner);
    if touches_owner && !actor.has_role(Role::Owner) {
        return Err(ApiError::Forbidden(
            "Only an owner can grant or remove the owner role, or change an owner's membership."
                .into(),
        ));
    }
    Ok(())
}

/// Serialises changes to a tenant's team: the owner count checked below stays true until
/// commit (on PostgreSQL the tenant row lock queues concurrent changes; SQLite's write
/// transaction already does).
pub async fn lock_team(tx: &mut Tx, tenant_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Active owners of the tenant other than `except`.
pub async fn other_owners(tx: &mut Tx, tenant_id: &str, except: &str) -> ApiResult<i64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND id <> $2 AND deleted_at IS NULL
         AND status = 'active' AND roles LIKE '%\"owner\"%'",
    )
    .bind(tenant_id)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

/// Refuses to add someone who already is a member, or who has a live invitation.
pub async fn ensure_free_address(tx: &mut Tx, tenant_id: &str, email_lower: &str) -> ApiResult<()> {
    let member: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(email_lower)
    .fetch_optional(&mut **tx)
    .await?;
    if member.is_some() {
        return Err(ApiError::conflict(
            "member_exists",
            "A team member with this e-mail address already exists.",
        ));
    }
    let pending: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM invitations WHERE tenant_id = $1 AND email_lower = $2
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(tenant_id)
    .bind(email_lower)
    .bind(now())
    .fetch_optional(&mut **tx)
    .await?;
    if pending.is_some() {
        return Err(ApiError::conflict(
            "invitation_pending",
            "This address already has a pending invitation; revoke it to send a new one.",
        ));
    }
    Ok(())
}
