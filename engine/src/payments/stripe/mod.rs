//! `POST /v1/payments/webhooks/stripe?tenant=<slug>`: Stripe's notifications about card
//! deposits. Each tenant connects its own Stripe account, so the endpoint URL names the tenant
//! and the tenant's signing secret verifies the `Stripe-Signature` header over the raw body
//! before anything in the body is read.
//!
//! Every event is recorded once per Stripe event id (`stripe_events`), in the same transaction
//! as its effect, so a redelivery (Stripe retries until it gets a 2xx) changes nothing and is
//! answered `{"duplicate": true}`. Effects, matched to a deposit by `metadata.depositId` or by
//! the deposit's `externalId` = the PaymentIntent id:
//!
//! | Stripe event | deposit state | effect |
//! | --- | --- | --- |
//! | `payment_intent.succeeded` | pending, approved | approved (if pending) and settled for `amount_received`; less than the deposit amount settles partially; more is refused (`amount_mismatch`) |
//! | `payment_intent.payment_failed`, `payment_intent.canceled` | pending, approved | rejected with Stripe's reason |
//! | `charge.refunded` (fully), `charge.dispute.created` | settled | reversed (the ledger effect is undone) |
//!
//! A business rule that refuses the effect (for example a reversal the wallet no longer
//! covers) is recorded with outcome `refused` and answered 200: retrying cannot help, and the
//! finance team sees it in the audit log. Database failures answer 500 so Stripe retries, and so
//! does a move that lost the race to an operator's request on the same deposit (409
//! `concurrent_update`, nothing recorded): the redelivery finds the deposit as the operator left
//! it and acts from there.

pub mod signature;

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::common::SettleBody;
use super::deposits;
use super::model::{DepositRow, load_deposit};
use super::settings;
use crate::app::AppState;
use crate::audit;
use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger::currency::precision;
use crate::util::now;

/// What handling an event did, recorded in `stripe_events.outcome`.
struct Outcome {
    outcome: &'static str,
    detail: Option<String>,
    deposit_id: Option<String>,
}

impl Outcome {
    fn new(outcome: &'static str, deposit_id: Option<&str>) -> Outcome {
        Outcome {
            outcome,
            detail: None,
            deposit_id: deposit_id.map(str::to_string),
        }
    }
    fn detail(mut self, d: impl Into<String>) -> Outcome {
        self.detail = Some(d.into());
        self
    }
}

pub async fn receive(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let slug = q
        .get("tenant")
        .ok_or_else(|| ApiError::field("tenant", "the endpoint URL must name the tenant"))?;
    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(st.db.pool())
        .await?;
    let Some((tenant_id,)) = tenant else {
        return Err(ApiError::NotFound("tenant"));
    };
    let config = settings::load(st.db.pool(), &tenant_id).await?;
    let secrets = settings::stripe_secrets(&st, &tenant_id, &config);
    if secrets.is_empty() {
        return Err(ApiError::bad_request(
            "stripe_not_configured",
            "This tenant has not set its Stripe webhook secret (PATCH /v1/payments/settings).",
        ));
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|h| h.to_str().ok());
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    if let Err(e) = signature::verify(
        header,
        &body,
        &refs,
        chrono::Utc::now().timestamp(),
        signature::TOLERANCE_SECS,
    ) {
        tracing::warn!(tenant_id, error = %e, "stripe webhook refused");
        return Err(ApiError::bad_request("invalid_signature", e.to_string()));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::field("body", "must be a Stripe event (JSON)"))?;
    let (Some(event_id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(ApiError::field("id", "a Stripe event needs id and type"));
    };
    let object = &event["data"]["object"];
    let actor = Actor::system(&tenant_id, "stripe");

    let mut tx = st.db.begin().await?;
    if !claim(&mut tx, &tenant_id, event_id, kind, &event).await? {
        tx.commit().await?;
        return Ok(duplicate(event_id));
    }
    let outcome = match handle(&mut tx, &actor, kind, object).await {
        Ok(o) => o,
        Err(e) if e.is_lost_race() => return Err(e),
        Err(e) if e.status().is_client_error() => {
            // A business rule refused the effect: undo any partial work, keep the record.
            tx.rollback().await?;
            tx = st.db.begin().await?;
            if !claim(&mut tx, &tenant_id, event_id, kind, &event).await? {
                tx.commit().await?;
                return Ok(duplicate(event_id));
            }
            Outcome::new("refused", deposit_ref(object).as_deref()).detail(e.detail())
        }
        Err(e) => return Err(e),
    };
    finish(&mut tx, &actor, event_id, kind, &outcome).await?;
    tx.commit().await?;
    tracing::info!(
        tenant_id,
        event_id,
        kind,
        outcome = outcome.outcome,
        "stripe event"
    );
    Ok(Json(json!({
        "received": true,
        "duplicate": false,
        "eventId": event_id,
        "outcome": outcome.outcome,
        "depositId": outcome.deposit_id,
        "detail": outcome.detail,
    })))
}

fn duplicate(event_id: &str) -> Json<Value> {
    Json(json!({"received": true, "duplicate": true, "eventId": event_id}))
}

/// Records the event before acting on it. The primary key decides between concurrent
/// deliveries of one event: the second waits for the first's transaction and then finds the
/// row, so only one of them acts.
async fn claim(
    tx: &mut Tx,
    tenant_id: &str,
    event_id: &str,
    kind: &str,
    event: &Value,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "INSERT INTO stripe_events (tenant_id, event_id, type, outcome, livemode, received_at)
         VALUES ($1, $2, $3, 'processing', $4, $5)
         ON CONFLICT (tenant_id, event_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(event_id)
    .bind(kind)
    .bind(i64::from(event["livemode"].as_bool().unwrap_or(false)))
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn finish(
    tx: &mut Tx,
    actor: &Actor,
    event_id: &str,
    kind: &str,
    o: &Outcome,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE stripe_events SET outcome = $3, detail = $4, deposit_id = $5
         WHERE tenant_id = $1 AND event_id = $2",
    )
    .bind(&actor.tenant_id)
    .bind(event_id)
    .bind(o.outcome)
    .bind(&o.detail)
    .bind(&o.deposit_id)
    .execute(&mut **tx)
    .await?;
    audit::record(
        tx,
        actor,
        "stripe.event",
        "stripe_event",
        Some(event_id),
        None,
        Some(&json!({"type": kind, "outcome": o.outcome, "detail": o.detail, "depositId": o.deposit_id})),
    )
    .await
    .map_err(Into::into)
}

/// The deposit an event's object points at: our id in metadata, else the PaymentIntent id.
fn deposit_ref(object: &Value) -> Option<String> {
    object["metadata"]["depositId"]
        .as_str()
        .or_else(|| object["metadata"]["deposit_id"].as_str())
        .map(str::to_string)
}

async fn find_deposit(
    tx: &mut Tx,
    tenant_id: &str,
    object: &Value,
) -> ApiResult<Option<DepositRow>> {
    if let Some(id) = deposit_ref(object) {
        return match load_deposit(&mut **tx, tenant_id, &id).await {
            Ok(row) => Ok(Some(row)),
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        };
    }
    // Charges and disputes name their PaymentIntent; PaymentIntents are their own id.
    let intent = object["payment_intent"]
        .as_str()
        .or_else(|| object["id"].as_str().filter(|id| id.starts_with("pi_")));
    let Some(intent) = intent else {
        return Ok(None);
    };
    let id: Option<(String,)> =
        sqlx::query_as("SELECT id FROM deposits WHERE tenant_id = $1 AND external_id = $2")
            .bind(tenant_id)
            .bind(intent)
            .fetch_optional(&mut **tx)
            .await?;
    match id {
        Some((id,)) => Ok(Some(load_deposit(&mut **tx, tenant_id, &id).await?)),
        None => Ok(None),
    }
}

/// Stripe amounts are integers in the currency's minor unit (cents; yen have none).
fn from_minor(minor: i64, currency: &str) -> Decimal {
    Decimal::new(minor, precision(currency))
}

async fn handle(tx: &mut Tx, actor: &Actor, kind: &str, object: &Value) -> ApiResult<Outcome> {
    let handled = matches!(
        kind,
        "payment_intent.succeeded"
            | "payment_intent.payment_failed"
            | "payment_intent.canceled"
            | "charge.refunded"
            | "charge.dispute.created"
    );
    if !handled {
        return Ok(Outcome::new("ignored", None));
    }
    let Some(dep) = find_deposit(tx, &actor.tenant_id, object).await? else {
        return Ok(Outcome::new("unmatched", None).detail("no deposit matches this event"));
    };
    let id = dep.id.clone();
    let currency = object["currency"].as_str().map(str::to_uppercase);
    if currency.as_deref().is_some_and(|c| c != dep.currency) {
        return Ok(Outcome::new("amount_mismatch", Some(&id)).detail(format!(
            "Stripe currency {} differs from the deposit's {}",
            currency.unwrap_or_default(),
            dep.currency
        )));
    }
    match kind {
        "payment_intent.succeeded" => succeeded(tx, actor, &dep, object).await,
        "payment_intent.payment_failed" | "payment_intent.canceled" => {
            if dep.status != "pending" && dep.status != "approved" {
                return Ok(
                    Outcome::new("ignored", Some(&id)).detail(format!("deposit is {}", dep.status))
                );
            }
            let reason = object["last_payment_error"]["message"]
                .as_str()
                .or_else(|| object["cancellation_reason"].as_str())
                .unwrap_or(kind);
            deposits::reject_in(tx, actor, &id, &format!("stripe: {reason}")).await?;
            Ok(Outcome::new("rejected", Some(&id)))
        }
        _ => {
            if kind == "charge.refunded" && object["refunded"].as_bool() != Some(true) {
                return Ok(Outcome::new("ignored", Some(&id))
                    .detail("partial refunds are left to the finance team"));
            }
            match dep.status.as_str() {
                "settled" => {
                    deposits::reverse_in(tx, actor, &id, &format!("stripe: {kind}")).await?;
                    Ok(Outcome::new("reversed", Some(&id)))
                }
                "reversed" => Ok(Outcome::new("already_reversed", Some(&id))),
                other => {
                    Ok(Outcome::new("ignored", Some(&id)).detail(format!("deposit is {other}")))
                }
            }
        }
    }
}

async fn succeeded(
    tx: &mut Tx,
    actor: &Actor,
    dep: &DepositRow,
    object: &Value,
) -> ApiResult<Outcome> {
    let id = dep.id.as_str();
    match dep.status.as_str() {
        "pending" | "approved" => {}
        "settled" | "reversed" => return Ok(Outcome::new("already_settled", Some(id))),
        other => {
            return Ok(Outcome::new("ignored", Some(id)).detail(format!("deposit is {other}")));
        }
    }
    let Some(minor) = object["amount_received"]
        .as_i64()
        .or(object["amount"].as_i64())
    else {
        return Ok(Outcome::new("amount_mismatch", Some(id)).detail("no amount in the event"));
    };
    let received = from_minor(minor, &dep.currency);
    let requested = crate::ledger::dec(&dep.amount).map_err(ApiError::from)?;
    if received > requested || received <= Decimal::ZERO {
        return Ok(Outcome::new("amount_mismatch", Some(id)).detail(format!(
            "Stripe received {received} {}, the deposit is for {requested}",
            dep.currency
        )));
    }
    if dep.status == "pending" {
        deposits::approve_one(tx, actor, id, Some("approved by Stripe payment")).await?;
    }
    let body = SettleBody {
        id: Some(id.to_string()),
        fee_amount: None,
        net_amount: None,
        settled_at: None,
        external_id: object["id"].as_str().map(str::to_string),
        proof_url: None,
        notes: Some("settled by Stripe webhook".into()),
    };
    let partial = (received < requested).then_some((received, Some("Stripe received less")));
    deposits::settle_in(tx, actor, id, &body, partial).await?;
    Ok(Outcome::new("settled", Some(id)))
}
