//! Who operates the installation: `lumire operator grant` gives an existing user (of the
//! installation's own tenant, by convention) the `platform_operator` role. Only someone with
//! access to the database and the binary can do it; no API hands the role out.

use crate::db::Db;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("no tenant has the slug {0}")]
    NoTenant(String),
    #[error("tenant {tenant} has no user {email}")]
    NoUser { tenant: String, email: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the user's roles are unreadable: {0}")]
    Roles(#[from] serde_json::Error),
}

/// Adds `platform_operator` to the roles of the user `email` of tenant `slug`; the user's id.
/// Granting it again changes nothing. Sessions pick the role up at their next login.
pub async fn grant(db: &Db, slug: &str, email: &str) -> Result<String, GrantError> {
    let mut tx = db.pool().begin().await?;
    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
    let (tenant_id,) = tenant.ok_or_else(|| GrantError::NoTenant(slug.to_string()))?;
    let user: Option<(String, String)> = sqlx::query_as(
        "SELECT id, roles FROM users WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
    )
    .bind(&tenant_id)
    .bind(email.trim().to_lowercase())
    .fetch_optional(&mut *tx)
    .await?;
    let (user_id, roles) = user.ok_or_else(|| GrantError::NoUser {
        tenant: slug.to_string(),
        email: email.to_string(),
    })?;
    let mut roles: Vec<String> = serde_json::from_str(&roles)?;
    if !roles.iter().any(|r| r == "platform_operator") {
        roles.push("platform_operator".into());
        sqlx::query("UPDATE users SET roles = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(&tenant_id)
            .bind(&user_id)
            .bind(serde_json::to_string(&roles)?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(user_id)
}
