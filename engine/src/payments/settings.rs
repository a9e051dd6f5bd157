//! The tenant's payment settings: the dual-control threshold for withdrawals and the Stripe
//! webhook signing secret. The secret is write-only: it is stored encrypted (see
//! `crate::secrets`) and reads only say whether one is set. Replacing it keeps the previous
//! secret valid for [`PREVIOUS_SECRET_HOURS`], so events Stripe signed before the switch still
//! verify during the rotation.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::ApiResult;
use crate::http::json::ApiJson;
use crate::http::patch::Patch;
use crate::http::validate::Validator;
use crate::ledger;
use crate::util::{fmt_time, now, parse_time};

pub const PREVIOUS_SECRET_HOURS: i64 = 24;

#[derive(sqlx::FromRow, Default)]
pub struct SettingsRow {
    pub dual_control_threshold: Option<String>,
    pub stripe_webhook_secret: Option<String>,
    pub stripe_previous_secret: Option<String>,
    pub stripe_previous_until: Option<String>,
    pub updated_at: Option<String>,
}

pub async fn load<'e, E>(exec: E, tenant_id: &str) -> ApiResult<SettingsRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<SettingsRow> = sqlx::query_as(
        "SELECT dual_control_threshold, stripe_webhook_secret, stripe_previous_secret, stripe_previous_until, updated_at
         FROM payment_settings WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(exec)
    .await?;
    Ok(row.unwrap_or_default())
}

/// The context a tenant's Stripe secret is encrypted under.
pub fn stripe_secret_context(tenant_id: &str) -> String {
    format!("{tenant_id}/stripe_webhook_secret")
}

/// The secrets a Stripe signature may match now: the current one, and the previous one while
/// its rotation window lasts.
pub fn stripe_secrets(st: &AppState, tenant_id: &str, row: &SettingsRow) -> Vec<String> {
    let ctx = stripe_secret_context(tenant_id);
    let mut out = Vec::new();
    if let Some(s) = &row.stripe_webhook_secret {
        match st.secrets.open(&ctx, s) {
            Ok(p) => out.push(p),
            Err(e) => tracing::error!(tenant_id, error = %e, "stripe webhook secret unreadable"),
        }
    }
    let previous_valid = row
        .stripe_previous_until
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|until| until > chrono::Utc::now());
    if let (Some(s), true) = (&row.stripe_previous_secret, previous_valid)
        && let Ok(p) = st.secrets.open(&ctx, s)
    {
        out.push(p);
    }
    out
}

async fn view(st: &AppState, tenant_id: &str, row: &SettingsRow) -> ApiResult<Value> {
    let slug: Option<(String,)> = sqlx::query_as("SELECT slug FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(st.db.pool())
        .await?;
    let endpoint = slug.map(|(s,)| {
        format!(
            "{}/v1/payments/webhooks/stripe?tenant={s}",
            st.settings.public_url.trim_end_matches('/')
        )
    });
    let previous_valid_until = row
        .stripe_previous_until
        .as_deref()
        .filter(|u| parse_time(u).is_some_and(|t| t > chrono::Utc::now()));
    Ok(json!({
        "dualControlThreshold": row.dual_control_threshold,
        "stripeWebhook": {
            "configured": row.stripe_webhook_secret.is_some(),
            "endpointUrl": endpoint,
            "previousSecretValidUntil": previous_valid_until,
        },
        "updatedAt": row.updated_at,
    }))
}

pub async fn get(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let row = load(st.db.pool(), &actor.tenant_id).await?;
    Ok(Json(view(&st, &actor.tenant_id, &row).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsBody {
    #[serde(default)]
    dual_control_threshold: Patch<String>,
    #[serde(default)]
    stripe_webhook_secret: Patch<String>,
}

pub async fn patch(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<SettingsBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let threshold = match &b.dual_control_threshold {
        Patch::Value(s) => match ledger::currency::parse_amount(s, "XXX") {
            Ok(d) => Some(d.to_string()),
            Err(m) => {
                v.fail("dualControlThreshold", m);
                None
            }
        },
        _ => None,
    };
    if let Patch::Value(s) = &b.stripe_webhook_secret {
        v.check(
            s.starts_with("whsec_") && s.len() >= 16 && s.len() <= 200,
            "stripeWebhookSecret",
            "must be the endpoint's signing secret (whsec_...)",
        );
    }
    v.finish()?;
    let mut tx = st.db.begin().await?;
    let old = load(&mut *tx, &actor.tenant_id).await?;
    let mut new = SettingsRow {
        dual_control_threshold: match b.dual_control_threshold {
            Patch::Missing => old.dual_control_threshold.clone(),
            Patch::Null => None,
            Patch::Value(_) => threshold,
        },
        stripe_webhook_secret: old.stripe_webhook_secret.clone(),
        stripe_previous_secret: old.stripe_previous_secret.clone(),
        stripe_previous_until: old.stripe_previous_until.clone(),
        updated_at: Some(now()),
    };
    match &b.stripe_webhook_secret {
        Patch::Missing => {}
        Patch::Null => {
            new.stripe_webhook_secret = None;
            new.stripe_previous_secret = None;
            new.stripe_previous_until = None;
        }
        Patch::Value(secret) => {
            let ctx = stripe_secret_context(&actor.tenant_id);
            new.stripe_webhook_secret = Some(st.secrets.seal(&ctx, secret));
            if let Some(current) = &old.stripe_webhook_secret {
                new.stripe_previous_secret = Some(current.clone());
                new.stripe_previous_until = Some(fmt_time(
                    chrono::Utc::now() + chrono::Duration::hours(PREVIOUS_SECRET_HOURS),
                ));
            }
        }
    }
    save(&mut tx, &actor.tenant_id, &new).await?;
    // The audit trail says that the secret changed, never what it is.
    let summary = |r: &SettingsRow| {
        json!({
            "dualControlThreshold": r.dual_control_threshold,
            "stripeWebhookSecretSet": r.stripe_webhook_secret.is_some(),
        })
    };
    let mut after = summary(&new);
    if !b.stripe_webhook_secret.is_missing() {
        after["stripeWebhookSecretChanged"] = json!(true);
    }
    audit::record(
        &mut tx,
        &actor,
        "payments.settings_update",
        "payment_settings",
        Some(&actor.tenant_id),
        Some(&summary(&old)),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view(&st, &actor.tenant_id, &new).await?))
}

async fn save(tx: &mut Tx, tenant_id: &str, r: &SettingsRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO payment_settings (tenant_id, dual_control_threshold, stripe_webhook_secret, stripe_previous_secret, stripe_previous_until, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id) DO UPDATE SET dual_control_threshold = $2, stripe_webhook_secret = $3,
           stripe_previous_secret = $4, stripe_previous_until = $5, updated_at = $6",
    )
    .bind(tenant_id)
    .bind(&r.dual_control_threshold)
    .bind(&r.stripe_webhook_secret)
    .bind(&r.stripe_previous_secret)
    .bind(&r.stripe_previous_until)
    .bind(r.updated_at.as_deref().unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
