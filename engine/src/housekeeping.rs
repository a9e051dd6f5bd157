//! Periodic clean-up of short-lived rows: stale idempotency keys, old login failures, expired
//! WebAuthn challenges and auth tokens. Deleting is idempotent, so several processes may run it.

use chrono::{Duration, Utc};

use crate::db::Db;
use crate::http::idempotency::RETENTION_HOURS;
use crate::util::fmt_time;

pub async fn purge(db: &Db) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    // Keep idempotency keys twice the promised retention, so a key is never forgotten early.
    let idem_cutoff = fmt_time(now - Duration::hours(RETENTION_HOURS * 2));
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(&idem_cutoff)
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM auth_failures WHERE created_at < $1")
        .bind(fmt_time(now - Duration::days(1)))
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM webauthn_challenges WHERE expires_at < $1")
        .bind(fmt_time(now))
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1")
        .bind(fmt_time(now - Duration::days(30)))
        .execute(db.pool())
        .await?;
    Ok(())
}
