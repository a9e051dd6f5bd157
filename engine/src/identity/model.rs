//! User and tenant rows and their API views.

use serde::Serialize;
use serde_json::Value;

use crate::auth::Role;
use crate::auth::roles::parse_roles;
use crate::http::error::ApiError;
use crate::util::parse_json;

#[derive(sqlx::FromRow, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub roles: String,
    pub status: String,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_enabled: i64,
    pub created_at: String,
}

pub const USER_COLUMNS: &str = "id, email, display_name, roles, status, password_hash, email_verified_at, totp_secret, totp_enabled, created_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub status: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub created_at: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            roles: parse_roles(&u.roles),
            status: u.status.clone(),
            email_verified: u.email_verified_at.is_some(),
            totp_enabled: u.totp_enabled != 0,
            created_at: u.created_at.clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub branding: String,
    pub feature_flags: String,
    pub logo_key: Option<String>,
    pub base_currency: String,
    pub created_at: String,
    pub updated_at: String,
}

pub const TENANT_COLUMNS: &str =
    "id, slug, name, branding, feature_flags, logo_key, base_currency, created_at, updated_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub branding: Value,
    pub feature_flags: Value,
    pub logo_url: Option<String>,
    pub base_currency: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TenantRow> for TenantView {
    fn from(t: TenantRow) -> Self {
        TenantView {
            logo_url: t
                .logo_key
                .as_ref()
                .map(|_| "/v1/tenants/current/logo".to_string()),
            id: t.id,
            slug: t.slug,
            name: t.name,
            branding: parse_json(&t.branding),
            feature_flags: parse_json(&t.feature_flags),
            base_currency: t.base_currency,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

pub async fn load_tenant<'e, E>(exec: E, tenant_id: &str) -> Result<TenantView, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<TenantRow> = sqlx::query_as(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
    ))
    .bind(tenant_id)
    .fetch_optional(exec)
    .await?;
    row.map(TenantView::from)
        .ok_or(ApiError::NotFound("tenant"))
}

pub async fn load_user<'e, E>(exec: E, tenant_id: &str, user_id: &str) -> Result<UserRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("user"))
}
