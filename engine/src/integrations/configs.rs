//! Connector configurations: one per tenant and platform, created or updated by one POST.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::events;
use crate::http::error::ApiResult;
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::util::now;

const MAX_CREDENTIALS: usize = 20;

#[derive(sqlx::FromRow)]
struct ConfigRow {
    platform: String,
    label: String,
    endpoint: String,
    credential_keys: String,
    is_active: i64,
    last_test_at: Option<String>,
    last_test_ok: Option<i64>,
    last_test_error: Option<String>,
    last_sync_at: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    platform: String,
    label: String,
    endpoint: String,
    credential_keys: Vec<String>,
    is_active: bool,
    last_test_at: Option<String>,
    last_test_ok: Option<bool>,
    last_test_error: Option<String>,
    last_sync_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<ConfigRow> for ConfigView {
    fn from(r: ConfigRow) -> Self {
        ConfigView {
            platform: r.platform,
            label: r.label,
            endpoint: r.endpoint,
            credential_keys: crate::util::parse_string_list(&r.credential_keys),
            is_active: r.is_active != 0,
            last_test_at: r.last_test_at,
            last_test_ok: r.last_test_ok.map(|v| v != 0),
            last_test_error: r.last_test_error,
            last_sync_at: r.last_sync_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "platform, label, endpoint, credential_keys, is_active, last_test_at, last_test_ok, last_test_error, last_sync_at, created_at, updated_at";

/// The context a config's credentials are encrypted under.
pub fn credentials_context(tenant_id: &str, platform: &str) -> String {
    format!("{tenant_id}/integration/{platform}")
}

/// A configuration as connectors receive it, `{"endpoint", "credentials"}` with the
/// credentials decrypted, or `None` when the tenant has not configured the platform.
pub async fn connector_config(
    st: &AppState,
    tenant_id: &str,
    platform: &str,
) -> ApiResult<Option<Value>> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT endpoint, credentials FROM integration_configs WHERE tenant_id = $1 AND platform = $2",
    )
    .bind(tenant_id)
    .bind(platform)
    .fetch_optional(st.db.pool())
    .await?;
    let Some((endpoint, sealed)) = row else {
        return Ok(None);
    };
    let credentials: Value = match sealed {
        Some(s) => st
            .secrets
            .open(&credentials_context(tenant_id, platform), &s)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                crate::http::error::ApiError::internal("stored credentials cannot be decrypted")
            })?,
        None => json!({}),
    };
    Ok(Some(
        json!({"endpoint": endpoint, "credentials": credentials}),
    ))
}

async fn load<'e, E>(exec: E, tenant_id: &str, platform: &str) -> ApiResult<Option<ConfigView>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<ConfigRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM integration_configs WHERE tenant_id = $1 AND platform = $2"
    ))
    .bind(tenant_id)
    .bind(platform)
    .fetch_optional(exec)
    .await?;
    Ok(row.map(ConfigView::from))
}

pub async fn list(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let rows: Vec<ConfigRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM integration_configs WHERE tenant_id = $1 ORDER BY platform"
    ))
    .bind(&actor.tenant_id)
    .fetch_all(st.db.pool())
    .await?;
    let data: Vec<ConfigView> = rows.into_iter().map(ConfigView::from).collect();
    Ok(Json(json!({ "data": data })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpsertBody {
    platform: Option<String>,
    label: Option<String>,
    endpoint: Option<String>,
    credentials: Option<Map<String, Value>>,
    is_active: Option<bool>,
}

fn check_endpoint(v: &mut Validator, e: &str) {
    let ok = url::Url::parse(e).is_ok_and(|u| {
        matches!(u.scheme(), "https" | "http")
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    });
    v.check(
        ok,
        "endpoint",
        "must be an http(s) URL without credentials in it",
    );
    v.max_len("endpoint", Some(e), 2048);
}

/// Credentials are a flat object of strings (login, password, certificate, ...).
fn check_credentials(v: &mut Validator, c: &Map<String, Value>) {
    if c.is_empty() || c.len() > MAX_CREDENTIALS {
        v.fail("credentials", "must hold 1 to 20 entries");
    }
    for (k, val) in c {
        let key_ok = !k.is_empty()
            && k.len() <= 64
            && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !key_ok {
            v.fail(
                &format!("credentials.{k}"),
                "keys are 1-64 letters, digits or _",
            );
        } else if !val
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.len() <= 8192)
        {
            v.fail(&format!("credentials.{k}"), "must be a non-empty string");
        }
    }
    // The TLS trust a connector session will use is checked now, not at the first sync.
    if let Err((field, message)) =
        crate::connectors::tls::TlsTrust::from_lookup(|k| c.get(k).and_then(Value::as_str))
    {
        v.fail(&format!("credentials.{field}"), &message);
    }
}

pub async fn upsert(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<UpsertBody>,
) -> ApiResult<(StatusCode, Json<ConfigView>)> {
    let mut v = Validator::new();
    let platform = v
        .required("platform", b.platform.as_deref())
        .map(str::to_lowercase);
    v.one_of(
        "platform",
        platform.as_deref(),
        &st.connectors.allowed_platforms(),
    );
    v.max_len("label", b.label.as_deref(), 100);
    if let Some(e) = b.endpoint.as_deref() {
        check_endpoint(&mut v, e);
    }
    if let Some(c) = &b.credentials {
        check_credentials(&mut v, c);
    }
    v.finish()?;
    let platform = platform.unwrap_or_default();
    let mut tx = st.db.begin().await?;
    let before = load(&mut *tx, &actor.tenant_id, &platform).await?;
    let ts = now();
    let sealed = b.credentials.as_ref().map(|c| {
        st.secrets.seal(
            &credentials_context(&actor.tenant_id, &platform),
            &Value::Object(c.clone()).to_string(),
        )
    });
    let keys = b.credentials.as_ref().map(|c| {
        let mut k: Vec<&String> = c.keys().collect();
        k.sort();
        json!(k).to_string()
    });
    let created = before.is_none();
    if created {
        // A new config needs everything a connector needs to reach the platform.
        let mut v = Validator::new();
        v.required("endpoint", b.endpoint.as_deref());
        v.check(b.credentials.is_some(), "credentials", "is required");
        v.finish()?;
        sqlx::query(
            "INSERT INTO integration_configs (tenant_id, platform, label, endpoint, credentials, credential_keys, is_active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&actor.tenant_id)
        .bind(&platform)
        .bind(b.label.clone().unwrap_or_else(|| platform.to_uppercase()))
        .bind(&b.endpoint)
        .bind(&sealed)
        .bind(keys.clone().unwrap_or_else(|| "[]".into()))
        .bind(i64::from(b.is_active.unwrap_or(true)))
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE integration_configs SET label = COALESCE($3, label), endpoint = COALESCE($4, endpoint),
               credentials = COALESCE($5, credentials), credential_keys = COALESCE($6, credential_keys),
               is_active = COALESCE($7, is_active), updated_at = $8
             WHERE tenant_id = $1 AND platform = $2",
        )
        .bind(&actor.tenant_id)
        .bind(&platform)
        .bind(&b.label)
        .bind(&b.endpoint)
        .bind(&sealed)
        .bind(&keys)
        .bind(b.is_active.map(i64::from))
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
    }
    let view = load(&mut *tx, &actor.tenant_id, &platform)
        .await?
        .ok_or(crate::http::error::ApiError::NotFound("integration config"))?;
    let mut after = serde_json::to_value(&view).unwrap_or(Value::Null);
    if b.credentials.is_some() {
        after["credentialsChanged"] = json!(true);
    }
    let before = before.map(|b| serde_json::to_value(b).unwrap_or(Value::Null));
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "integration.configured",
        "integration_config",
        &platform,
        &after,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "integration.configure",
        "integration_config",
        Some(&platform),
        before.as_ref(),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}
