//! Connections kept between calls, one per server, manager and password: the engine calls the
//! library once per operation, and a sync run's calls share the MT5 session the first one made.
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

/// Runs `f` on the connection for these settings (made when there is none), with this call's
/// tunables (timeouts, retries), which may have changed since it was made.
pub fn with_conn<R>(settings: Settings, f: impl FnOnce(&mut Conn) -> R) -> R {
    let shared = {
        let mut pool = pool();
        let now = Instant::now();
        pool.retain(|_, c| {
            Arc::strong_count(c) > 1
                || c.try_lock()
                    .map(|c| now.duration_since(c.last_used) < IDLE)
                    .unwrap_or(true)
        });
        pool.entry(settings.fingerprint())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Conn {
                    mt5: Mt5::new(settings.clone(), Http::new()),
                    last_used: now,
                }))
            })
            .clone()
    };
    let mut conn = shared.lock().unwrap_or_else(|p| p.into_inner());
    conn.mt5.client.settings = settings;
    conn.last_used = Instant::now();
    f(&mut conn)
}
