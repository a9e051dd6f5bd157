//! The delivery worker: fan-out of new outbox events into delivery rows, then claiming due
//! deliveries with a lease and POSTing them. Every step is safe to run in several engine
//! processes at once: fan-out inserts are idempotent (unique (tenant, subscription, event)) and
//! a delivery is attempted only by the worker whose conditional UPDATE claimed it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::Value;

use super::patterns;
use super::signing;
use super::store::{
    self, DEAD, DeliveryRow, NewDelivery, PENDING, RETRYING, SUB_COLUMNS, SUCCEEDED,
    SubscriptionRow,
};
use super::url_safety::{self, SafeResolver};
use crate::config::Settings;
use crate::db::Db;
use crate::http::error::{ApiError, ApiResult};
use crate::secrets::SecretBox;
use crate::util::{fmt_time, new_id, parse_json};

/// Attempts of an outbox event before it is `dead`.
pub const MAX_ATTEMPTS: i64 = 8;
/// First retry delay; it doubles after every failed attempt (30 s, 1 min, 2 min, ... 32 min).
pub const BASE_DELAY_SECS: i64 = 30;
/// How long a claim lasts; longer than a whole attempt, so a live worker never loses its row.
const LEASE_SECS: i64 = 120;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Response bodies and errors are kept up to this many bytes.
pub const KEEP_BYTES: usize = 1024;
const FANOUT_BATCH: i64 = 200;
pub const DELIVERY_BATCH: i64 = 50;
const PARALLEL: usize = 8;

/// Delay before the attempt after `attempts` failed ones.
pub fn backoff_secs(attempts: i64) -> i64 {
    BASE_DELAY_SECS << (attempts - 1).clamp(0, 20)
}

pub struct Worker {
    client: reqwest::Client,
    /// Subscription secrets are stored encrypted; the worker opens them to sign.
    secrets: Arc<SecretBox>,
    allow_private: bool,
    /// Written to `claimed_by`, so only the claiming worker records the outcome.
    id: String,
}

impl Worker {
    pub fn new(settings: &Settings, secrets: Arc<SecretBox>) -> Result<Worker, ApiError> {
        let mut b = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could lead anywhere (including a private address given as a literal);
            // a 3xx is a failed attempt instead.
            .redirect(reqwest::redirect::Policy::none())
            // Proxies from the environment would bypass the address check below.
            .no_proxy()
            .user_agent(concat!("LumireCRM-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.webhook_allow_private {
            b = b.dns_resolver(Arc::new(SafeResolver));
        }
        Ok(Worker {
            client: b.build().map_err(ApiError::internal)?,
            secrets,
            allow_private: settings.webhook_allow_private,
            id: new_id(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// One round: fan out new events, then attempt every due delivery this worker can claim.
    /// Returns the number of delivery attempts made.
    pub async fn run_once(&self, db: &Db) -> ApiResult<usize> {
        // Catch up with a backlog (a bulk import emits many events), within reason per round.
        for _ in 0..10 {
            if fan_out(db).await? < FANOUT_BATCH as usize {
                break;
            }
        }
        let now = Utc::now();
        let due: Vec<(String, String)> = sqlx::query_as(
            "SELECT tenant_id, id FROM webhook_deliveries
             WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
               AND (lease_until IS NULL OR lease_until < $1)
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(fmt_time(now))
        .bind(DELIVERY_BATCH)
        .fetch_all(db.pool())
        .await?;
        let mut claimed = Vec::new();
        for (tenant_id, id) in due {
            if self.claim(db, &tenant_id, &id, now).await? {
                claimed.push((tenant_id, id));
            }
        }
        let n = claimed.len();
        let results: Vec<ApiResult<DeliveryRow>> = futures_util::stream::iter(claimed)
            .map(|(t, id)| async move { self.attempt(db, &t, &id).await })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for r in results {
            if let Err(e) = r {
                tracing::warn!(error = %e, "webhook delivery bookkeeping failed");
            }
        }
        Ok(n)
    }

    /// Takes the row for this worker if it is due and nobody holds it. Portable: a conditional
    /// UPDATE, and the row count says who won.
    async fn claim(
        &self,
        db: &Db,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        let current = fmt_time(now);
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $3, claimed_by = $4
             WHERE tenant_id = $1 AND id = $2
               AND next_attempt_at IS NOT NULL AND next_attempt_at <= $5
               AND (lease_until IS NULL OR lease_until < $5)",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(lease_until(now))
        .bind(&self.id)
        .bind(&current)
        .execute(db.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sends a delivery this worker holds and records the outcome. Returns the updated row.
    pub async fn attempt(&self, db: &Db, tenant_id: &str, id: &str) -> ApiResult<DeliveryRow> {
        let d = store::load_delivery(db.pool(), tenant_id, id).await?;
        if d.claimed_by.as_deref() != Some(self.id.as_str()) {
            return Ok(d);
        }
        let sub: Option<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(&d.subscription_id)
        .fetch_optional(db.pool())
        .await?;
        let outcome = match sub {
            Some(s) if s.deleted_at.is_none() && s.is_active != 0 => self.send(&s, &d).await,
            Some(s) if s.deleted_at.is_none() => Outcome::abandon("subscription is inactive"),
            _ => Outcome::abandon("subscription deleted"),
        };
        self.record(db, &d, outcome).await
    }

    async fn send(&self, sub: &SubscriptionRow, d: &DeliveryRow) -> Outcome {
        let url = match url_safety::parse(&sub.url) {
            Ok(u) => u,
            Err(e) => return Outcome::failed(None, None, format!("invalid url: {e}")),
        };
        if !self.allow_private
            && let Err(e) = url_safety::check_literal(&url)
        {
            return Outcome::failed(None, None, format!("refused: {e}"));
        }
        let secret = match self
            .secrets
            .open(&secret_context(&d.tenant_id, &sub.id), &sub.secret)
        {
            Ok(s) => s,
            Err(e) => return Outcome::failed(None, None, format!("signing secret: {e}")),
        };
        let t = Utc::now().timestamp();
        let req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(
                signing::SIGNATURE_HEADER,
                signing::header_value(&secret, t, &d.body),
            )
            .header(signing::EVENT_HEADER, &d.event_type)
            .header(signing::DELIVERY_HEADER, &d.id)
            .body(d.body.clone());
        match req.send().await {
            Ok(mut resp) => {
                let code = resp.status().as_u16();
                let mut kept: Vec<u8> = Vec::new();
                while kept.len() < KEEP_BYTES {
                    match resp.chunk().await {
                        Ok(Some(c)) => kept.extend_from_slice(&c),
                        _ => break,
                    }
                }
                let body = truncate(&String::from_utf8_lossy(&kept));
                if resp.status().is_success() {
                    Outcome::Succeeded { code, body }
                } else {
                    Outcome::failed(Some(code), Some(body), format!("receiver answered {code}"))
                }
            }
            Err(e) => Outcome::failed(None, None, error_chain(&e)),
        }
    }

    async fn record(&self, db: &Db, d: &DeliveryRow, outcome: Outcome) -> ApiResult<DeliveryRow> {
        let now = Utc::now();
        let current = fmt_time(now);
        let (status, next, attempts, code, body, error, succeeded_at) = match outcome {
            Outcome::Succeeded { code, body } => (
                SUCCEEDED,
                None,
                d.attempts + 1,
                Some(code),
                Some(body),
                None,
                Some(current.clone()),
            ),
            Outcome::Failed { code, body, error } => {
                let attempts = d.attempts + 1;
                if attempts >= d.max_attempts {
                    (DEAD, None, attempts, code, body, Some(error), None)
                } else {
                    let next = now + chrono::Duration::seconds(backoff_secs(attempts));
                    (
                        RETRYING,
                        Some(fmt_time(next)),
                        attempts,
                        code,
                        body,
                        Some(error),
                        None,
                    )
                }
            }
            Outcome::Abandoned { error } => (DEAD, None, d.attempts, None, None, Some(error), None),
        };
        let code = code.map(i64::from);
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $4, next_attempt_at = $5, attempts = $6,
               response_status = $7, response_body = $8, last_error = $9,
               succeeded_at = COALESCE($10, succeeded_at), last_attempt_at = $11, updated_at = $11,
               lease_until = NULL, claimed_by = NULL
             WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3",
        )
        .bind(&d.tenant_id)
        .bind(&d.id)
        .bind(&self.id)
        .bind(status)
        .bind(next)
        .bind(attempts)
        .bind(code)
        .bind(body)
        .bind(error)
        .bind(succeeded_at)
        .bind(&current)
        .execute(db.pool())
        .await?;
        store::load_delivery(db.pool(), &d.tenant_id, &d.id).await
    }
}

enum Outcome {
    Succeeded {
        code: u16,
        body: String,
    },
    Failed {
        code: Option<u16>,
        body: Option<String>,
        error: String,
    },
    /// Not sent and not retried (the subscription is gone).
    Abandoned {
        error: String,
    },
}

impl Outcome {
    fn failed(code: Option<u16>, body: Option<String>, error: String) -> Outcome {
        Outcome::Failed {
            code,
            body,
            error: truncate(&error),
        }
    }
    fn abandon(error: &str) -> Outcome {
        Outcome::Abandoned {
            error: error.to_string(),
        }
    }
}

/// The context a subscription's secret is encrypted under (see `crate::secrets`).
pub fn secret_context(tenant_id: &str, subscription_id: &str) -> String {
    format!("{tenant_id}/webhook_subscription/{subscription_id}")
}

pub fn lease_until(now: DateTime<Utc>) -> String {
    fmt_time(now + chrono::Duration::seconds(LEASE_SECS))
}

fn truncate(s: &str) -> String {
    if s.len() <= KEEP_BYTES {
        return s.to_string();
    }
    let mut end = KEEP_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// reqwest's own message ("error sending request") hides the cause; the chain names it
/// (refused address, connection refused, timeout, TLS).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[derive(sqlx::FromRow)]
struct EventRow {
    tenant_id: String,
    id: String,
    name: String,
    payload: String,
    created_at: String,
}

/// Turns outbox events not yet seen by webhooks into one delivery per matching subscription,
/// then stamps them (`events.webhooks_at`). A subscription receives events created at or after
/// its own creation. Returns the number of events handled.
pub async fn fan_out(db: &Db) -> ApiResult<usize> {
    // Cheap look first, so an idle engine does not take SQLite's write lock every round.
    let waiting: Option<(String,)> =
        sqlx::query_as("SELECT id FROM events WHERE webhooks_at IS NULL LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    if waiting.is_none() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT tenant_id, id, name, payload, created_at FROM events
         WHERE webhooks_at IS NULL ORDER BY created_at, id LIMIT $1",
    )
    .bind(FANOUT_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if events.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let current = crate::util::now();
    let mut subs: HashMap<String, Vec<SubscriptionRow>> = HashMap::new();
    for ev in &events {
        if !subs.contains_key(&ev.tenant_id) {
            let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
                "SELECT {SUB_COLUMNS} FROM webhook_subscriptions
                 WHERE tenant_id = $1 AND deleted_at IS NULL AND is_active = 1 ORDER BY id"
            ))
            .bind(&ev.tenant_id)
            .fetch_all(&mut *tx)
            .await?;
            subs.insert(ev.tenant_id.clone(), rows);
        }
        let matching = subs.get(&ev.tenant_id).into_iter().flatten().filter(|s| {
            // Ids are time-ordered (and strictly increasing within a process), so this is
            // "created at or after the subscription" without millisecond ties.
            s.id <= ev.id && patterns::any_matches(&s.patterns(), &ev.name)
        });
        let mut body: Option<String> = None;
        for s in matching {
            let body = body.get_or_insert_with(|| {
                let data: Value = parse_json(&ev.payload);
                store::envelope(&ev.id, &ev.name, &ev.created_at, &ev.tenant_id, data)
            });
            store::insert_delivery(
                &mut *tx,
                NewDelivery {
                    tenant_id: &ev.tenant_id,
                    id: &new_id(),
                    subscription_id: &s.id,
                    event_id: &ev.id,
                    event_type: &ev.name,
                    body,
                    max_attempts: MAX_ATTEMPTS,
                    now: &current,
                    lease: None,
                },
            )
            .await?;
        }
        sqlx::query(
            "UPDATE events SET webhooks_at = $3
             WHERE tenant_id = $1 AND id = $2 AND webhooks_at IS NULL",
        )
        .bind(&ev.tenant_id)
        .bind(&ev.id)
        .bind(&current)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(events.len())
}

/// Rows a manual retry may re-queue, and the state needed to answer 409 otherwise.
pub fn requeue_problem(d: &DeliveryRow, now: DateTime<Utc>) -> Option<ApiError> {
    if d.in_flight(now) {
        return Some(ApiError::conflict(
            "delivery_in_flight",
            "The delivery is being attempted right now.",
        ));
    }
    match d.status.as_str() {
        SUCCEEDED => Some(ApiError::conflict(
            "delivery_succeeded",
            "The delivery already succeeded.",
        )),
        PENDING => Some(ApiError::conflict(
            "delivery_queued",
            "The delivery is already queued for its next attempt.",
        )),
        _ => None,
    }
}
