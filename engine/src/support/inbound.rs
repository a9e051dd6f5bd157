//! `POST /v1/support/webhooks/inbound?tenant=<slug>`: the broker's own systems (a website
//! contact form, a help desk, a trading platform) hand a new ticket to the CRM.
//!
//! The URL names the tenant; the tenant's inbound secret signs each request the way the engine
//! signs its outgoing webhooks: `X-Lumire-Signature: t=<unix seconds>,v1=<hex>` with
//! `hex(HMAC-SHA256(secret, "<t>.<raw body>"))`. The signature is checked, in constant time and
//! with `t` within five minutes of our clock, before the body is read. The secret is made by
//! the engine (`POST /v1/support/settings/inbound-secret`), shown once, stored encrypted; a
//! rotation keeps the previous secret valid for [`PREVIOUS_SECRET_HOURS`].
//!
//! Every ticket carries the sender's `externalId`: a redelivery (or a replayed capture) of the
//! same ticket answers 200 with the ticket already made and changes nothing.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::domain::{self, NewTicket};
use super::model::{Author, TICKET_COLUMNS, TicketRow, TicketView, to_json};
use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::validate::Validator;
use crate::util::{fmt_time, now, parse_time, same_secret};
use crate::webhooks::signing;

pub const PREVIOUS_SECRET_HOURS: i64 = 24;
/// How far `t` in the signature may be from our clock.
pub const TOLERANCE_SECS: i64 = 300;
/// The audit actor (`system`) and ticket author of inbound tickets.
const SOURCE: &str = "support_inbound";

#[derive(sqlx::FromRow, Default)]
struct SettingsRow {
    inbound_secret: Option<String>,
    inbound_previous_secret: Option<String>,
    inbound_previous_until: Option<String>,
    updated_at: Option<String>,
}

async fn load_settings<'e, E>(exec: E, tenant_id: &str) -> ApiResult<SettingsRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<SettingsRow> = sqlx::query_as(
        "SELECT inbound_secret, inbound_previous_secret, inbound_previous_until, updated_at
         FROM support_settings WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(exec)
    .await?;
    Ok(row.unwrap_or_default())
}

fn secret_context(tenant_id: &str) -> String {
    format!("{tenant_id}/support_inbound_secret")
}

fn previous_valid(row: &SettingsRow) -> Option<&str> {
    row.inbound_previous_until
        .as_deref()
        .filter(|u| parse_time(u).is_some_and(|t| t > chrono::Utc::now()))
}

/// The secrets a signature may match now: the current one, and the previous one while its
/// rotation window lasts.
fn valid_secrets(st: &AppState, tenant_id: &str, row: &SettingsRow) -> Vec<String> {
    let ctx = secret_context(tenant_id);
    let previous = previous_valid(row).and(row.inbound_previous_secret.as_ref());
    [row.inbound_secret.as_ref(), previous]
        .into_iter()
        .flatten()
        .filter_map(|sealed| match st.secrets.open(&ctx, sealed) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(tenant_id, error = %e, "support inbound secret unreadable");
                None
            }
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Lumire-Signature header is missing")]
    Missing,
    #[error("the X-Lumire-Signature header is malformed")]
    Malformed,
    #[error("the X-Lumire-Signature timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks `t=<unix>,v1=<hex>[,v1=<hex>...]` against `body` for any of `secrets`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => sigs.push(v.to_ascii_lowercase()),
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_unix - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    // The signing function takes text; a body that is not UTF-8 cannot be a JSON ticket.
    let body = std::str::from_utf8(body).map_err(|_| SignatureError::Mismatch)?;
    let matched = secrets.iter().any(|secret| {
        let expected = signing::signature(secret, t, body);
        sigs.iter().any(|s| same_secret(s, &expected))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InboundBody {
    external_id: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    priority: Option<String>,
    trader_id: Option<String>,
    email: Option<String>,
}

async fn tenant_by_slug(st: &AppState, q: &HashMap<String, String>) -> ApiResult<String> {
    let slug = q
        .get("tenant")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::field("tenant", "the endpoint URL must name the tenant"))?;
    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(st.db.pool())
        .await?;
    tenant.map(|(id,)| id).ok_or(ApiError::NotFound("tenant"))
}

/// The trader a ticket is about: `traderId`, or the tenant's trader with that `email`.
async fn resolve_trader(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: Option<&str>,
    email: Option<&str>,
) -> ApiResult<String> {
    let (field, found) = match (trader_id, email) {
        (Some(t), _) => (
            "traderId",
            crate::traders::load(&mut **tx, tenant_id, t)
                .await
                .ok()
                .map(|r| r.id),
        ),
        (None, Some(e)) => {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM traders WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL",
            )
            .bind(tenant_id)
            .bind(e.trim().to_lowercase())
            .fetch_optional(&mut **tx)
            .await?;
            ("email", row.map(|(id,)| id))
        }
        (None, None) => return Err(ApiError::field("traderId", "give traderId or email")),
    };
    found.ok_or_else(|| ApiError::field(field, "is not a trader of this tenant"))
}

pub async fn receive(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let tenant_id = tenant_by_slug(&st, &q).await?;
    let settings = load_settings(st.db.pool(), &tenant_id).await?;
    let secrets = valid_secrets(&st, &tenant_id, &settings);
    if secrets.is_empty() {
        return Err(ApiError::bad_request(
            "support_inbound_not_configured",
            "This tenant has no inbound support secret (POST /v1/support/settings/inbound-secret).",
        ));
    }
    let header = headers
        .get(signing::SIGNATURE_HEADER)
        .and_then(|h| h.to_str().ok());
    if let Err(e) = verify(header, &raw, &secrets, chrono::Utc::now().timestamp()) {
        tracing::warn!(tenant_id, error = %e, "support inbound webhook refused");
        return Err(ApiError::Unauthorized("invalid_signature"));
    }
    let b: InboundBody = crate::http::json::parse(&raw)?;
    let mut v = Validator::new();
    let external_id = v.required("externalId", b.external_id.as_deref());
    v.max_len("externalId", external_id, 200);
    let subject = v.required("subject", b.subject.as_deref());
    let body = v.required("body", b.body.as_deref());
    for e in domain::check_fields(subject, body, b.priority.as_deref()) {
        v.push(e);
    }
    if b.trader_id.is_some() && b.email.is_some() {
        v.fail("email", "give traderId or email, not both");
    }
    v.finish()?;
    let external_id = external_id.unwrap_or_default();
    let actor = Actor::system(&tenant_id, SOURCE);
    let mut tx = st.db.begin().await?;
    let existing: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE tenant_id = $1 AND external_id = $2"
    ))
    .bind(&tenant_id)
    .bind(external_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        tx.commit().await?;
        return Ok((StatusCode::OK, Json(row.into())));
    }
    let trader_id = resolve_trader(
        &mut tx,
        &tenant_id,
        b.trader_id.as_deref(),
        b.email.as_deref(),
    )
    .await?;
    // Two deliveries of one ticket racing past the lookup: the unique index on the external id
    // refuses the second with 409 `duplicate`; its retry then finds the first.
    let ticket = domain::create(
        &mut tx,
        &tenant_id,
        NewTicket {
            trader_id: &trader_id,
            subject: subject.unwrap_or_default(),
            body: body.unwrap_or_default(),
            priority: b.priority.as_deref().unwrap_or("normal"),
            assigned_to_id: None,
            source: "inbound",
            external_id: Some(external_id),
            created_by: Author::of(&actor),
        },
    )
    .await?;
    let after = to_json(&ticket);
    audit::record_change(
        &mut tx,
        &actor,
        Change {
            event: "ticket.created",
            action: "ticket.create",
            resource_type: "ticket",
            resource_id: &ticket.id,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id, ticket_id = %ticket.id, "inbound support ticket");
    Ok((StatusCode::CREATED, Json(ticket)))
}

async fn endpoint_url(st: &AppState, tenant_id: &str) -> ApiResult<Option<String>> {
    let slug: Option<(String,)> = sqlx::query_as("SELECT slug FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(st.db.pool())
        .await?;
    Ok(slug.map(|(s,)| {
        format!(
            "{}/v1/support/webhooks/inbound?tenant={s}",
            st.settings.public_url.trim_end_matches('/')
        )
    }))
}

async fn settings_view(st: &AppState, tenant_id: &str, row: &SettingsRow) -> ApiResult<Value> {
    Ok(json!({
        "inboundWebhook": {
            "configured": row.inbound_secret.is_some(),
            "endpointUrl": endpoint_url(st, tenant_id).await?,
            "signatureHeader": signing::SIGNATURE_HEADER,
            "previousSecretValidUntil": previous_valid(row),
        },
        "updatedAt": row.updated_at,
    }))
}

/// Whether an inbound secret is set and where the broker sends tickets; never the secret.
pub async fn get_settings(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let row = load_settings(st.db.pool(), &actor.tenant_id).await?;
    Ok(Json(settings_view(&st, &actor.tenant_id, &row).await?))
}

async fn save(tx: &mut Tx, tenant_id: &str, r: &SettingsRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO support_settings (tenant_id, inbound_secret, inbound_previous_secret, inbound_previous_until, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET inbound_secret = $2, inbound_previous_secret = $3,
           inbound_previous_until = $4, updated_at = $5",
    )
    .bind(tenant_id)
    .bind(&r.inbound_secret)
    .bind(&r.inbound_previous_secret)
    .bind(&r.inbound_previous_until)
    .bind(&r.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes a new inbound secret and answers it once. The one it replaces keeps working for
/// [`PREVIOUS_SECRET_HOURS`], so the broker can switch without losing tickets.
pub async fn rotate_secret(State(st): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    let secret = signing::new_secret();
    let mut tx = st.db.begin().await?;
    let old = load_settings(&mut *tx, &actor.tenant_id).await?;
    let new = SettingsRow {
        inbound_secret: Some(st.secrets.seal(&secret_context(&actor.tenant_id), &secret)),
        inbound_previous_until: old
            .inbound_secret
            .as_ref()
            .map(|_| fmt_time(chrono::Utc::now() + chrono::Duration::hours(PREVIOUS_SECRET_HOURS))),
        inbound_previous_secret: old.inbound_secret.clone(),
        updated_at: Some(now()),
    };
    save(&mut tx, &actor.tenant_id, &new).await?;
    // The audit trail says that the secret changed, never what it is.
    audit::record(
        &mut tx,
        &actor,
        "support.inbound_secret_rotate",
        "support_settings",
        Some(&actor.tenant_id),
        Some(&json!({"inboundSecretSet": old.inbound_secret.is_some()})),
        Some(&json!({"inboundSecretSet": true, "inboundSecretChanged": true})),
    )
    .await?;
    tx.commit().await?;
    let mut view = settings_view(&st, &actor.tenant_id, &new).await?;
    view["inboundWebhook"]["secret"] = secret.into();
    Ok(Json(view))
}

/// Removes the inbound secret (and a previous one still in its window): the endpoint then
/// refuses every request with 400 `support_inbound_not_configured`.
pub async fn delete_secret(State(st): State<AppState>, actor: Actor) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin().await?;
    let old = load_settings(&mut *tx, &actor.tenant_id).await?;
    save(
        &mut tx,
        &actor.tenant_id,
        &SettingsRow {
            updated_at: Some(now()),
            ..SettingsRow::default()
        },
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "support.inbound_secret_delete",
        "support_settings",
        Some(&actor.tenant_id),
        Some(&json!({"inboundSecretSet": old.inbound_secret.is_some()})),
        Some(&json!({"inboundSecretSet": false})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"externalId":"1"}"#;

    fn header(secret: &str, t: i64) -> String {
        signing::header_value(secret, t, std::str::from_utf8(BODY).unwrap())
    }

    #[test]
    fn accepts_the_engines_own_signature_format() {
        let secrets = vec!["whsec_new".to_string(), "whsec_old".to_string()];
        assert_eq!(
            verify(Some(&header("whsec_new", 1000)), BODY, &secrets, 1010),
            Ok(())
        );
        // The previous secret still verifies during a rotation.
        assert_eq!(
            verify(Some(&header("whsec_old", 1000)), BODY, &secrets, 1000),
            Ok(())
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_garbage() {
        let secrets = vec!["whsec_a".to_string()];
        let h = header("whsec_a", 1000);
        assert_eq!(
            verify(Some(&h), b"{}", &secrets, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header("whsec_b", 1000)), BODY, &secrets, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), BODY, &secrets, 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, BODY, &secrets, 1000),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "garbage"] {
            assert_eq!(
                verify(Some(bad), BODY, &secrets, 1000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
