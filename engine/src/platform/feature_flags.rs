//! `POST /v1/platform/tenants/{id}/feature-flags`: an operator changes a tenant's flags. The
//! same rules as the tenant's own `PATCH /v1/tenants/current` (`tenants::flags`).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::validate::Validator;
use crate::identity::{TenantView, load_tenant};
use crate::tenants::flags;
use crate::util::now;

pub async fn merge(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<TenantView>> {
    let Value::Object(changes) = body else {
        return Err(ApiError::field(
            "body",
            "must be an object of flags (true, false or null)",
        ));
    };
    let mut v = Validator::new();
    flags::check(&mut v, "", &changes);
    v.finish()?;
    let view = apply(&st, &actor, &id, &changes).await?;
    // Plugin routes of this process see the new flags at once (others within
    // `plugin_flags_cache_ms`).
    st.plugins.enablement.invalidate(&id);
    Ok(Json(view))
}

async fn apply(
    st: &AppState,
    actor: &Actor,
    tenant_id: &str,
    changes: &Map<String, Value>,
) -> ApiResult<TenantView> {
    let mut tx = st.db.begin().await?;
    let cur = load_tenant(&mut *tx, tenant_id).await?;
    let before = serde_json::to_value(&cur).unwrap_or(Value::Null);
    let flags = flags::apply(&cur.feature_flags, changes, "body")?;
    sqlx::query("UPDATE tenants SET feature_flags = $2, updated_at = $3 WHERE id = $1")
        .bind(tenant_id)
        .bind(flags.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let view = load_tenant(&mut *tx, tenant_id).await?;
    let after = serde_json::to_value(&view).unwrap_or(Value::Null);
    events::emit(
        &mut tx,
        tenant_id,
        "tenant.updated",
        "tenant",
        tenant_id,
        &after,
    )
    .await?;
    // In the broker's own log, naming the operator, and in the operator's.
    let mut on_behalf = actor.clone();
    on_behalf.tenant_id = tenant_id.to_string();
    on_behalf.label = format!("platform operator {}", actor.label);
    let mut logs = vec![&on_behalf];
    if actor.tenant_id != tenant_id {
        logs.push(actor);
    }
    for who in logs {
        audit::record(
            &mut tx,
            who,
            "tenant.feature_flags",
            "tenant",
            Some(tenant_id),
            Some(&before),
            Some(&after),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(view)
}
