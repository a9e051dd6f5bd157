//! Delivering outbox events to plugins (`handle-event`). A fan-out step turns each new event
//! into one delivery per installed plugin that subscribes to its name and that the event's
//! tenant has enabled (at fan-out time); deliveries are retried with backoff and end
//! `succeeded`, `dead` (after [`MAX_ATTEMPTS`]) or `skipped` (plugin disabled or gone meanwhile).
//! Run by the engine's job loop; tests call [`run_once`].

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde_json::Value;

use super::bindings::types;
use crate::app::AppState;
use crate::http::error::ApiResult;
use crate::util::{fmt_time, new_id};

const FANOUT_BATCH: i64 = 200;
const DELIVERY_BATCH: i64 = 50;
/// Attempts before a delivery is given up (`dead`).
pub const MAX_ATTEMPTS: i64 = 6;
/// How long a claimed delivery is leased to the worker attempting it.
const LEASE_SECS: i64 = 300;

/// `trader.created` matches `trader.created`, `trader.*` and `*`.
pub fn subscribed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == name
            || p.strip_suffix(".*").is_some_and(|prefix| {
                name.starts_with(prefix) && name[prefix.len()..].starts_with('.')
            })
    })
}

/// Fans out new events, then attempts the due deliveries. Returns the deliveries attempted.
pub async fn run_once(st: &AppState) -> ApiResult<usize> {
    for _ in 0..10 {
        if fan_out(st).await? < FANOUT_BATCH as usize {
            break;
        }
    }
    deliver(st).await
}

async fn fan_out(st: &AppState) -> ApiResult<usize> {
    let waiting: Option<(String,)> =
        sqlx::query_as("SELECT id FROM events WHERE plugins_at IS NULL LIMIT 1")
            .fetch_optional(st.db.pool())
            .await?;
    if waiting.is_none() {
        return Ok(0);
    }
    let mut tx = st.db.begin().await?;
    let events: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, id, name FROM events WHERE plugins_at IS NULL ORDER BY created_at, id LIMIT $1",
    )
    .bind(FANOUT_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let now = fmt_time(Utc::now());
    let mut flags: HashMap<String, Value> = HashMap::new();
    for (tenant_id, event_id, name) in &events {
        let subscribers: Vec<_> = st
            .plugins
            .installed()
            .iter()
            .filter(|p| subscribed(&p.manifest.events, name))
            .collect();
        if !subscribers.is_empty() && !flags.contains_key(tenant_id) {
            let raw: Option<String> =
                sqlx::query_scalar("SELECT feature_flags FROM tenants WHERE id = $1")
                    .bind(tenant_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let v = raw
                .and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or(Value::Null);
            flags.insert(tenant_id.clone(), v);
        }
        for p in subscribers {
            if !super::http::enabled(&flags[tenant_id], &p.manifest.name) {
                continue;
            }
            sqlx::query(
                "INSERT INTO plugin_event_deliveries (tenant_id, id, plugin, event_id, status, attempts, next_attempt_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)
                 ON CONFLICT (tenant_id, plugin, event_id) DO NOTHING",
            )
            .bind(tenant_id)
            .bind(new_id())
            .bind(&p.manifest.name)
            .bind(event_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE events SET plugins_at = $3 WHERE tenant_id = $1 AND id = $2 AND plugins_at IS NULL",
        )
        .bind(tenant_id)
        .bind(event_id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(events.len())
}

#[derive(sqlx::FromRow)]
struct Due {
    tenant_id: String,
    id: String,
    plugin: String,
    event_id: String,
    attempts: i64,
    next_attempt_at: String,
}

async fn settle(
    st: &AppState,
    d: &Due,
    status: &str,
    attempts: i64,
    next: Option<String>,
    error: Option<String>,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE plugin_event_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6, updated_at = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&d.tenant_id)
    .bind(&d.id)
    .bind(status)
    .bind(attempts)
    .bind(next)
    .bind(error)
    .bind(fmt_time(Utc::now()))
    .execute(st.db.pool())
    .await?;
    Ok(())
}

async fn deliver(st: &AppState) -> ApiResult<usize> {
    let now = Utc::now();
    let due: Vec<Due> = sqlx::query_as(
        "SELECT tenant_id, id, plugin, event_id, attempts, next_attempt_at FROM plugin_event_deliveries
         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(fmt_time(now))
    .bind(DELIVERY_BATCH)
    .fetch_all(st.db.pool())
    .await?;
    let mut attempted = 0;
    for d in due {
        // Claim it: another worker that read the same row loses the race.
        let claimed = sqlx::query(
            "UPDATE plugin_event_deliveries SET next_attempt_at = $4
             WHERE tenant_id = $1 AND id = $2 AND next_attempt_at = $3",
        )
        .bind(&d.tenant_id)
        .bind(&d.id)
        .bind(&d.next_attempt_at)
        .bind(fmt_time(now + Duration::seconds(LEASE_SECS)))
        .execute(st.db.pool())
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            continue;
        }
        let Some(plugin) = st.plugins.named(&d.plugin).cloned() else {
            settle(
                st,
                &d,
                "skipped",
                d.attempts,
                None,
                Some("plugin not installed".into()),
            )
            .await?;
            continue;
        };
        let flags: Option<String> =
            sqlx::query_scalar("SELECT feature_flags FROM tenants WHERE id = $1")
                .bind(&d.tenant_id)
                .fetch_optional(st.db.pool())
                .await?;
        let flags: Value = flags
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or(Value::Null);
        if !super::http::enabled(&flags, &plugin.manifest.name) {
            settle(
                st,
                &d,
                "skipped",
                d.attempts,
                None,
                Some("plugin disabled".into()),
            )
            .await?;
            continue;
        }
        let row: Option<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT name, resource_type, resource_id, payload, created_at FROM events WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&d.tenant_id)
        .bind(&d.event_id)
        .fetch_optional(st.db.pool())
        .await?;
        let Some((name, resource_type, resource_id, payload, occurred_at)) = row else {
            settle(
                st,
                &d,
                "skipped",
                d.attempts,
                None,
                Some("event not found".into()),
            )
            .await?;
            continue;
        };
        let event = types::Event {
            id: d.event_id.clone(),
            tenant_id: d.tenant_id.clone(),
            name,
            resource_type,
            resource_id,
            payload,
            occurred_at,
        };
        attempted += 1;
        let outcome = st.plugins.handle_event(&plugin, &d.tenant_id, event).await;
        let attempts = d.attempts + 1;
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(msg)) => Some(msg.chars().take(500).collect::<String>()),
            Err(f) => Some(format!(
                "plugin {} {} failed in handle-event: {f}",
                plugin.manifest.name, plugin.manifest.version
            )),
        };
        match error {
            None => settle(st, &d, "succeeded", attempts, None, None).await?,
            Some(e) if attempts >= MAX_ATTEMPTS => {
                tracing::warn!(plugin = %d.plugin, event = %d.event_id, error = %e, "plugin event delivery dead");
                settle(st, &d, "dead", attempts, None, Some(e)).await?
            }
            Some(e) => {
                // 30 s, 1 min, 2 min, 4 min, 8 min.
                let wait = Duration::seconds(30 * (1 << (attempts - 1).min(8)));
                let next = fmt_time(Utc::now() + wait);
                settle(st, &d, "pending", attempts, Some(next), Some(e)).await?
            }
        }
    }
    Ok(attempted)
}

#[cfg(test)]
mod tests {
    use super::subscribed;

    #[test]
    fn patterns() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["lead.created"]), "lead.created"));
        assert!(subscribed(&p(&["lead.*"]), "lead.created"));
        assert!(!subscribed(&p(&["lead.*"]), "leads.created"));
        assert!(subscribed(&p(&["*"]), "x.y"));
        assert!(!subscribed(&p(&["trader.created"]), "lead.created"));
    }
}
