//! `POST /v1/integrations/configs/{platform}/test`: asks the platform's connector to connect with
//! the stored configuration and records the outcome on the configuration.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::configs::connector_config;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::connectors::{self, ConnectorError};
use crate::http::error::{ApiError, ApiResult};
use crate::util::now;

pub async fn test(
    State(st): State<AppState>,
    actor: Actor,
    Path(platform): Path<String>,
) -> ApiResult<Json<Value>> {
    let platform = platform.to_lowercase();
    let Some(config) = connector_config(&st, &actor.tenant_id, &platform).await? else {
        return Err(ApiError::NotFound("integration config"));
    };
    let Some(connector) = st.connectors.for_platform(&platform) else {
        return Err(ApiError::conflict(
            "connector_not_installed",
            format!("No connector for {platform} is installed on this engine."),
        ));
    };
    let request = json!({ "config": config });
    let started = std::time::Instant::now();
    let outcome = connectors::call(&connector, &actor.tenant_id, "test-connection", request).await;
    let elapsed_ms = started.elapsed().as_millis() as i64;
    let (ok, message) = match &outcome {
        Ok(v) => (
            true,
            v.as_str()
                .or(v["message"].as_str())
                .unwrap_or("connected")
                .to_string(),
        ),
        Err(ConnectorError::Remote { code, message }) => (false, format!("{code}: {message}")),
        Err(e) => (false, e.to_string()),
    };
    let ts = now();
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "UPDATE integration_configs SET last_test_at = $3, last_test_ok = $4, last_test_error = $5
         WHERE tenant_id = $1 AND platform = $2",
    )
    .bind(&actor.tenant_id)
    .bind(&platform)
    .bind(&ts)
    .bind(i64::from(ok))
    .bind((!ok).then_some(message.as_str()))
    .execute(&mut *tx)
    .await?;
    let result = json!({
        "platform": platform,
        "ok": ok,
        "message": message,
        "connector": {"name": connector.name(), "version": connector.version(), "kind": connector.kind()},
        "elapsedMs": elapsed_ms,
        "testedAt": ts,
    });
    audit::record(
        &mut tx,
        &actor,
        "integration.test",
        "integration_config",
        Some(&platform),
        None,
        Some(&result),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(result))
}
