//! Connections kept between calls, one per tenant, server, manager, password and TLS trust: the
//! engine calls the library once per operation, and a sync run's calls share the MT5 session the
//! first one made. Two tenants configured on one server with the same manager still get a
//! session each: nothing one tenant's session learnt or holds is used for another.
//! A connection idle for [`IDLE`] is dropped; calls on one connection take turns, calls on
//! different ones run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mt5_webapi::{Mt5, Settings};

use crate::http::Http;

/// How long an unused connection is kept.
const IDLE: Duration = Duration::from_secs(600);

pub struct Conn {
    pub mt5: Mt5<Http>,
    last_used: Instant,
}

type Shared = Arc<Mutex<Conn>>;

fn pool() -> MutexGuard<'static, HashMap<String, Shared>> {
    static POOL: OnceLock<Mutex<HashMap<String, Shared>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on `tenant`'s connection for these settings (made when there is none), with this
/// call's tunables (timeouts, retries), which may have changed since it was made. `ca_pem` is
/// the configuration's CA to trust; a connection is never shared between two trusts.
pub fn with_conn<R>(
    tenant: &str,
    settings: Settings,
    ca_pem: Option<&str>,
    f: impl FnOnce(&mut Conn) -> R,
) -> Result<R, String> {
    let key = format!(
        "{tenant}|{}|{}",
        settings.fingerprint(),
        ca_pem.map(mt5_webapi::auth::digest_hex).unwrap_or_default()
    );
    let shared = {
        let mut pool = pool();
        let now = Instant::now();
        pool.retain(|_, c| {
            Arc::strong_count(c) > 1
                || c.try_lock()
                    .map(|c| now.duration_since(c.last_used) < IDLE)
                    .unwrap_or(true)
        });
        match pool.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(Mutex::new(Conn {
                    mt5: Mt5::new(settings.clone(), Http::new(ca_pem)?),
                    last_used: now,
                }));
                pool.insert(key, c.clone());
                c
            }
        }
    };
    let mut conn = shared.lock().unwrap_or_else(|p| p.into_inner());
    conn.mt5.client.settings = settings;
    conn.last_used = Instant::now();
    Ok(f(&mut conn))
}
