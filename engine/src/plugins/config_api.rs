//! A tenant's configuration and secrets of a plugin (what the `config` interface reads):
//! `GET/PUT /v1/plugins/{name}/config` and `PUT/DELETE /v1/plugins/{name}/secrets/{key}`.
//! Secrets are write-only: sealed with the engine's secret key (context
//! `plugin:<name>:<tenant>`), listed by name only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::util::now;

/// Largest configuration object, as JSON text.
const MAX_CONFIG_BYTES: usize = 64 * 1024;

fn installed(st: &AppState, name: &str) -> ApiResult<std::sync::Arc<super::Installed>> {
    st.plugins
        .named(name)
        .cloned()
        .ok_or(ApiError::NotFound("plugin"))
}

async fn stored(
    st: &AppState,
    tenant: &str,
    plugin: &str,
) -> ApiResult<(Value, Map<String, Value>)> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT config, secrets FROM plugin_configs WHERE tenant_id = $1 AND plugin = $2",
    )
    .bind(tenant)
    .bind(plugin)
    .fetch_optional(st.db.pool())
    .await?;
    let (config, secrets) = row.unwrap_or_else(|| ("{}".into(), "{}".into()));
    let config = serde_json::from_str(&config).unwrap_or_else(|_| json!({}));
    let secrets = match serde_json::from_str(&secrets) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Ok((config, secrets))
}

fn view(plugin: &str, config: &Value, secrets: &Map<String, Value>) -> Value {
    let mut names: Vec<&String> = secrets.keys().collect();
    names.sort();
    json!({"plugin": plugin, "config": config, "secrets": names})
}

async fn save(
    st: &AppState,
    actor: &Actor,
    plugin: &str,
    config: &Value,
    secrets: &Map<String, Value>,
    action: &str,
    detail: Value,
) -> ApiResult<()> {
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "INSERT INTO plugin_configs (tenant_id, plugin, config, secrets, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, plugin) DO UPDATE SET config = excluded.config, secrets = excluded.secrets,
           updated_at = excluded.updated_at",
    )
    .bind(&actor.tenant_id)
    .bind(plugin)
    .bind(config.to_string())
    .bind(Value::Object(secrets.clone()).to_string())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    audit::record_change(
        &mut tx,
        actor,
        Change {
            event: "plugin_config.updated",
            action,
            resource_type: "plugin_config",
            resource_id: plugin,
            before: None,
            after: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The checks of the manifest's JSON Schema the engine makes itself: an object, the `required`
/// properties present, and the top-level properties of the declared primitive `type`. Deeper
/// rules are the plugin's to check when it reads its configuration.
fn check_against(schema: Option<&Value>, config: &Value) -> ApiResult<()> {
    let Some(obj) = config.as_object() else {
        return Err(ApiError::field("config", "must be a JSON object"));
    };
    let Some(schema) = schema else {
        return Ok(());
    };
    for r in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = r.as_str()
            && !obj.contains_key(name)
        {
            return Err(ApiError::field(format!("config.{name}"), "is required"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, value) in obj {
            let Some(ty) = props.get(name).and_then(|p| p["type"].as_str()) else {
                continue;
            };
            let ok = match ty {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => true,
            };
            if !ok {
                return Err(ApiError::field(
                    format!("config.{name}"),
                    format!("must be of type {ty}"),
                ));
            }
        }
    }
    Ok(())
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    installed(&st, &name)?;
    let (config, secrets) = stored(&st, &actor.tenant_id, &name).await?;
    Ok(Json(view(&name, &config, &secrets)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    config: Option<Value>,
}

pub async fn put(
    State(st): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<ConfigBody>,
) -> ApiResult<Json<Value>> {
    let p = installed(&st, &name)?;
    let config = b
        .config
        .ok_or_else(|| ApiError::field("config", "is required"))?;
    if config.to_string().len() > MAX_CONFIG_BYTES {
        return Err(ApiError::field("config", "must be at most 64 KiB"));
    }
    check_against(p.manifest.config_schema.as_ref(), &config)?;
    let (_, secrets) = stored(&st, &actor.tenant_id, &name).await?;
    save(
        &st,
        &actor,
        &name,
        &config,
        &secrets,
        "plugin_config.update",
        config.clone(),
    )
    .await?;
    Ok(Json(view(&name, &config, &secrets)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: Option<String>,
}

fn check_key(key: &str) -> ApiResult<()> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("key", "must be 1-64 of [A-Za-z0-9_.-]"))
    }
}

pub async fn put_secret(
    State(st): State<AppState>,
    actor: Actor,
    Path((name, key)): Path<(String, String)>,
    ApiJson(b): ApiJson<SecretBody>,
) -> ApiResult<Json<Value>> {
    installed(&st, &name)?;
    check_key(&key)?;
    let value = b
        .value
        .filter(|v| !v.is_empty() && v.len() <= 8192)
        .ok_or_else(|| ApiError::field("value", "is required (1-8192 characters)"))?;
    let (config, mut secrets) = stored(&st, &actor.tenant_id, &name).await?;
    let context = format!("plugin:{name}:{}", actor.tenant_id);
    let sealed = st.secrets.seal(&context, &value);
    secrets.insert(key.clone(), Value::String(sealed));
    save(
        &st,
        &actor,
        &name,
        &config,
        &secrets,
        "plugin_secret.set",
        json!({"secret": key}),
    )
    .await?;
    Ok(Json(view(&name, &config, &secrets)))
}

pub async fn delete_secret(
    State(st): State<AppState>,
    actor: Actor,
    Path((name, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    installed(&st, &name)?;
    let (config, mut secrets) = stored(&st, &actor.tenant_id, &name).await?;
    if secrets.remove(&key).is_none() {
        return Err(ApiError::NotFound("plugin secret"));
    }
    save(
        &st,
        &actor,
        &name,
        &config,
        &secrets,
        "plugin_secret.delete",
        json!({"secret": key}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::check_against;
    use serde_json::json;

    #[test]
    fn required_and_types_are_checked() {
        let schema = json!({"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}, "n": {"type": "integer"}}});
        assert!(check_against(Some(&schema), &json!({"url": "x", "n": 3})).is_ok());
        assert!(check_against(Some(&schema), &json!({"n": 3})).is_err());
        assert!(check_against(Some(&schema), &json!({"url": 1})).is_err());
        assert!(check_against(Some(&schema), &json!({"url": "x", "n": 1.5})).is_err());
        assert!(check_against(None, &json!([1])).is_err());
        assert!(check_against(None, &json!({})).is_ok());
    }
}
