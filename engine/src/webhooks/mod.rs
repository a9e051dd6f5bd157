//! Outgoing webhooks. Tenants subscribe a URL to event patterns; every outbox event
//! (`events::emit`) that matches becomes a delivery, POSTed as
//! `{id, type, createdAt, tenantId, data}` and signed with the subscription's secret
//! (`X-Lumire-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`).
//!
//! - `handlers`: the six `/v1/webhooks/*` operations;
//! - `store`: subscription and delivery rows and views;
//! - `worker`: fan-out of outbox events and lease-based delivery with exponential backoff,
//!   run by the job loop (`app::run_jobs`) or directly with [`run_once`];
//! - `signing`: secrets and signatures; `url_safety`: the SSRF guard; `patterns`: event
//!   patterns.

mod handlers;
pub mod patterns;
pub mod signing;
pub(crate) mod store;
pub mod url_safety;
pub mod worker;

pub use worker::{MAX_ATTEMPTS, Worker, backoff_secs};

use crate::app::AppState;
use crate::auth::roles::{ADMINS, AUDITORS};
use crate::http::api::{Api, Op};
use crate::http::error::ApiResult;

/// Subscriptions and delivery records reveal where the tenant's data goes and carry event
/// bodies, so reading them is for the roles that read the audit trail; managing them is for
/// owners and admins.
const READ: &[crate::auth::Role] = AUDITORS;
const MANAGE: &[crate::auth::Role] = ADMINS;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get(
            "/v1/webhooks/subscriptions",
            "getWebhooksSubscriptions",
            "webhooks",
        )
        .summary("List webhook subscriptions (filter isActive). The secret is never listed.")
        .staff(READ),
        handlers::list_subscriptions,
    );
    api.add(
        Op::post(
            "/v1/webhooks/subscriptions",
            "postWebhooksSubscriptions",
            "webhooks",
        )
        .summary(
            "Subscribe a URL to event patterns (exact names, `prefix.*`, `*`). Answers with the \
             signing secret, shown only this once.",
        )
        .staff(MANAGE)
        .body(r#"{"url":"https://hooks.example.com/lumire","events":["trader.*","deposit.settled"],"description":"Back office"}"#),
        handlers::create_subscription,
    );
    api.add(
        Op::delete(
            "/v1/webhooks/subscriptions/{id}",
            "deleteWebhooksSubscriptionsId",
            "webhooks",
        )
        .summary("Delete a subscription; its queued deliveries are abandoned (status dead).")
        .staff(MANAGE),
        handlers::delete_subscription,
    );
    api.add(
        Op::post(
            "/v1/webhooks/subscriptions/{id}/test",
            "postWebhooksSubscriptionsIdTest",
            "webhooks",
        )
        .summary(
            "Send a synthetic `webhook.test` event to the subscription now; answers with the \
             delivery record (attempted once).",
        )
        .staff(MANAGE),
        handlers::test_subscription,
    );
    api.add(
        Op::get(
            "/v1/webhooks/deliveries",
            "getWebhooksDeliveries",
            "webhooks",
        )
        .summary(
            "List delivery records, newest first (filters status, subscriptionId, eventId, \
             eventType).",
        )
        .staff(READ),
        handlers::list_deliveries,
    );
    api.add(
        Op::post(
            "/v1/webhooks/deliveries/{id}/retry",
            "postWebhooksDeliveriesIdRetry",
            "webhooks",
        )
        .summary(
            "Re-queue a retrying or dead delivery for an attempt now (409 if it succeeded, is \
             queued or is being attempted).",
        )
        .action()
        .staff(MANAGE),
        handlers::retry_delivery,
    );
}

/// One delivery round (fan-out, then every due delivery this process can claim) with a fresh
/// worker. Returns the number of delivery attempts made. Tests drive delivery with it.
pub async fn run_once(state: &AppState) -> ApiResult<usize> {
    Worker::new(&state.settings, state.secrets.clone())?
        .run_once(&state.db)
        .await
}
