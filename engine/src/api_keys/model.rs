//! API key rows, their API view, scope rules and the secret a caller sees once.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::auth::roles::{parse_roles, roles_json};
use crate::auth::{Access, Actor, Role};
use crate::db::Tx;
use crate::http::api::Api;
use crate::http::error::ApiError;
use crate::util::{now, parse_string_list, parse_time, random_token, sha256_hex};

#[derive(sqlx::FromRow, Clone)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub roles: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

pub const KEY_COLUMNS: &str =
    "id, name, prefix, scopes, roles, created_by, created_at, expires_at, revoked_at, last_used_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// Enough of the key to recognise it in a list; never enough to use it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub roles: Vec<Role>,
    pub created_by: String,
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl KeyRow {
    pub fn status(&self) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.is_expired() {
            "expired"
        } else {
            "active"
        }
    }

    pub fn is_expired(&self) -> bool {
        self.expires_at
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|t| t <= Utc::now())
    }
}

impl From<KeyRow> for KeyView {
    fn from(r: KeyRow) -> Self {
        KeyView {
            status: r.status(),
            scopes: parse_string_list(&r.scopes),
            roles: parse_roles(&r.roles),
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

pub fn view_json(v: &KeyView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Loads a key of the tenant that has not been deleted; anything else is a 404.
pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<KeyRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("api key"))
}

/// A freshly made secret: the full key (shown once) and what the table keeps.
pub struct Secret {
    pub key: String,
    pub hash: String,
    pub prefix: String,
}

/// Makes the `lk_<tenant_id>.<key_id>.<secret>` key that `auth::authorize` resolves.
pub fn new_secret(tenant_id: &str, key_id: &str) -> Secret {
    let secret = random_token();
    let head: String = secret.chars().take(4).collect();
    Secret {
        key: format!("lk_{tenant_id}.{key_id}.{secret}"),
        hash: sha256_hex(&secret),
        prefix: format!("lk_{tenant_id}.{key_id}.{head}"),
    }
}

/// Tags of the operations a key can be scoped to: every tag with a staff operation.
fn scope_tags() -> &'static BTreeSet<&'static str> {
    static TAGS: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut api = Api::documenting();
        crate::app::register_all(&mut api);
        api.ops()
            .iter()
            .filter(|op| matches!(op.access, Access::Staff(_)))
            .map(|op| op.tag)
            .collect()
    })
}

/// Checks one scope string (`*`, `<tag>:read`, `<tag>:write`, `<tag>:*`) against the registry;
/// an installed plugin's name is a tag too (its routes are scoped `<plugin>:read|write`).
pub fn scope_problem(scope: &str, plugins: &crate::plugins::Plugins) -> Option<String> {
    if scope == "*" {
        return None;
    }
    let Some((tag, level)) = scope.split_once(':') else {
        return Some(format!(
            "`{scope}` is not a scope; use `*` or `<tag>:read`, `<tag>:write`, `<tag>:*`"
        ));
    };
    if !["read", "write", "*"].contains(&level) {
        return Some(format!("`{scope}`: the level must be read, write or *"));
    }
    if !scope_tags().contains(tag) && plugins.named(tag).is_none() {
        return Some(format!(
            "`{scope}`: `{tag}` is not an operation tag of this API"
        ));
    }
    None
}

/// Normalised scopes: trimmed, unique, in first-seen order.
pub fn clean_scopes(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list.iter().map(|s| s.trim()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// Whether a set of held scopes allows everything `wanted` allows.
fn covers(held: &[String], wanted: &str) -> bool {
    if held.iter().any(|h| h == "*") {
        return true;
    }
    match wanted.split_once(':') {
        Some((tag, _)) => held.iter().any(|h| h == wanted || *h == format!("{tag}:*")),
        None => false,
    }
}

/// A caller may only hand out or take hold of a key that can do no more than the caller:
/// its roles within the caller's, and (for a caller that is itself a key) its scopes within
/// the caller's scopes.
pub fn ensure_within_caller(
    actor: &Actor,
    roles: &[Role],
    scopes: &[String],
) -> Result<(), ApiError> {
    if roles.iter().any(|r| !actor.roles.contains(r)) {
        return Err(ApiError::Forbidden(
            "This key holds roles you do not have.".into(),
        ));
    }
    if let Some(held) = &actor.scopes
        && let Some(s) = scopes.iter().find(|s| !covers(held, s))
    {
        return Err(ApiError::Forbidden(format!(
            "The scope {s} exceeds the scopes of the API key you are using."
        )));
    }
    Ok(())
}

/// Revokes every live key a member created (they leave the team). Returns how many.
pub async fn revoke_created_by(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
) -> Result<u64, ApiError> {
    let r = sqlx::query(
        "UPDATE api_keys SET revoked_at = $3
         WHERE tenant_id = $1 AND created_by = $2 AND revoked_at IS NULL AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// Keeps a member's keys within the member's roles after those roles change, so a demotion
/// also demotes every key acting for them. Returns how many keys changed.
pub async fn cap_roles_of_creator(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
    roles: &[Role],
) -> Result<u64, ApiError> {
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, roles FROM api_keys WHERE tenant_id = $1 AND created_by = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut changed = 0;
    for (id, held) in keys {
        let held = parse_roles(&held);
        let capped: Vec<Role> = held.iter().copied().filter(|r| roles.contains(r)).collect();
        if capped.len() != held.len() {
            sqlx::query("UPDATE api_keys SET roles = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(&id)
                .bind(roles_json(&capped))
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_cover() {
        let held = vec!["traders:*".to_string(), "admin:read".to_string()];
        assert!(covers(&held, "traders:read"));
        assert!(covers(&held, "traders:*"));
        assert!(covers(&held, "admin:read"));
        assert!(!covers(&held, "admin:write"));
        assert!(!covers(&held, "admin:*"));
        assert!(!covers(&held, "*"));
        assert!(covers(&["*".to_string()], "*"));
    }
}
