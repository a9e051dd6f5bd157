//! Which plugins a tenant has enabled (its feature flags), as every plugin request asks before
//! reaching the guest. The answer is cached per tenant for `plugin_flags_cache_ms` (one second
//! by default) so that a plugin route costs no more database round trips than a native one.
//!
//! Staleness: several engine processes may share one database, and a flag changed through
//! another process is seen here once the entry expires (at most `plugin_flags_cache_ms`
//! later). A change made through this process ([`Enablement::invalidate`], called by
//! `PATCH /v1/tenants/current` after its commit) is seen by the next request at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::db::Db;

/// Most tenants kept; past it the cache starts again from empty (a burst of one query each).
const MAX_TENANTS: usize = 10_000;

pub struct Enablement {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Value>)>>,
    /// Bumped by every invalidation: a read that began before one does not refill the cache
    /// with what it read (it could predate the change).
    generation: AtomicU64,
}

impl Enablement {
    /// A cache keeping each tenant's flags for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Enablement {
        Enablement {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn cached(&self, tenant_id: &str) -> Option<Arc<Value>> {
        let entries = self.entries.lock().ok()?;
        let (at, flags) = entries.get(tenant_id)?;
        (at.elapsed() < self.ttl).then(|| flags.clone())
    }

    /// The tenant's feature flags (`{}` for an unknown tenant or unreadable flags).
    pub async fn flags(&self, db: &Db, tenant_id: &str) -> Result<Arc<Value>, sqlx::Error> {
        if let Some(flags) = self.cached(tenant_id) {
            return Ok(flags);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let raw: Option<String> =
            sqlx::query_scalar("SELECT feature_flags FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(db.pool())
                .await?;
        let flags = Arc::new(
            raw.and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or_else(|| json!({})),
        );
        if !self.ttl.is_zero()
            && let Ok(mut entries) = self.entries.lock()
            && self.generation.load(Ordering::Acquire) == generation
        {
            if entries.len() >= MAX_TENANTS && !entries.contains_key(tenant_id) {
                entries.clear();
            }
            entries.insert(tenant_id.to_string(), (Instant::now(), flags.clone()));
        }
        Ok(flags)
    }

    /// Forgets the tenant's flags: the next request reads them again.
    pub fn invalidate(&self, tenant_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(tenant_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidated_or_expired_entry_is_not_served() {
        let e = Enablement::new(Duration::from_secs(60));
        let flags = Arc::new(json!({"plugin.x": true}));
        e.entries
            .lock()
            .unwrap()
            .insert("t1".into(), (Instant::now(), flags.clone()));
        assert_eq!(e.cached("t1"), Some(flags));
        e.invalidate("t1");
        assert_eq!(e.cached("t1"), None);

        let none = Enablement::new(Duration::ZERO);
        none.entries
            .lock()
            .unwrap()
            .insert("t1".into(), (Instant::now(), Arc::new(json!({}))));
        assert_eq!(none.cached("t1"), None);
    }
}
