//! One storage code base for SQLite and PostgreSQL, through sqlx's `Any` driver.
//!
//! Portable SQL rules used everywhere: `$1` placeholders (both databases accept them), money
//! and timestamps as TEXT (exact decimal strings, RFC 3339 UTC with milliseconds, which sort
//! correctly as text), JSON as TEXT, booleans as BIGINT 0/1. Every tenant-owned table has
//! `tenant_id` leading its primary key and indexes so it can be distributed by tenant.

mod params;

pub use params::{Param, SqlBuilder};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;

pub type Tx = sqlx::Transaction<'static, Any>;

/// A compare-and-set write: runs `sql`, whose `$1`, `$2` and `$3` are the tenant, the record's
/// id and the time, and whose `WHERE` holds the state the caller read; whether it changed
/// exactly one row (`false`: another request moved the record first, and nothing was written).
pub async fn update_one(
    tx: &mut Tx,
    sql: &str,
    tenant_id: &str,
    id: &str,
    at: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(sql)
        .bind(tenant_id)
        .bind(id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite only: the connection write transactions use.
    writer: Option<AnyPool>,
    kind: DbKind,
}

/// How long a PostgreSQL connection may wait in the pool and still be handed out without a ping.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

fn pool_options(kind: DbKind, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        // sqlx pings every connection when it goes back to the pool, so one that comes out of
        // the pool was alive when it went in. A PostgreSQL connection can still die with the
        // server or the network while it waits there: it is pinged again before use only when
        // it has waited longer than `PING_AFTER_IDLE`. Pinging on every acquire cost each
        // statement a second round trip to the server (docs/benchmarks.md, "Fewer round
        // trips"). A SQLite connection is a thread of this process with the file open; it is
        // never pinged before use ("SQLite connections without a ping").
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if kind == DbKind::Postgres && meta.idle_for > PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if kind == DbKind::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        })
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database url (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("cannot create the database directory {0}: {1}")]
    CreateDir(String, std::io::Error),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            DbKind::Postgres
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let url = match kind {
            DbKind::Sqlite => prepare_sqlite_url(url)?,
            DbKind::Postgres => url.to_string(),
        };
        let pool = pool_options(kind, max_connections.max(1))
            .connect(&url)
            .await?;
        // SQLite has one writer at a time. Write transactions take their connection from a pool
        // of one, so writers wait their turn in order there, instead of in SQLite's busy handler,
        // which makes a writer that finds the lock taken sleep (1 ms, then longer) and retry
        // (docs/benchmarks.md, "SQLite writers queue in the engine").
        let writer = match kind {
            DbKind::Sqlite => Some(pool_options(kind, 1).connect(&url).await?),
            DbKind::Postgres => None,
        };
        Ok(Db { pool, writer, kind })
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Starts a write transaction. On SQLite it waits for the writer connection and takes the
    /// write lock up front (`BEGIN IMMEDIATE`), so a transaction never fails upgrading a read
    /// lock; PostgreSQL uses row locks where a check must hold (`FOR UPDATE`).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match &self.writer {
            Some(writer) => writer.begin_with("BEGIN IMMEDIATE").await,
            None => self.pool.begin().await,
        }
    }

    /// Starts a write transaction on `conn`, a connection of [`Db::pool`] the caller holds: on
    /// PostgreSQL without taking (and pinging) another connection; on SQLite `conn` goes back to
    /// the pool and the transaction waits for the writer connection as [`Db::begin`] does.
    pub async fn begin_on(&self, conn: PoolConnection<Any>) -> Result<Tx, sqlx::Error> {
        if self.writer.is_some() {
            drop(conn);
            return self.begin().await;
        }
        // What `Pool::begin` does with the connection it acquires (sqlx 0.8 keeps it public, if
        // out of its docs, for this use).
        sqlx::Transaction::begin(conn, None).await
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path != ":memory:"
        && !path.is_empty()
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbError::CreateDir(parent.display().to_string(), e))?;
    }
    let mut out = url.to_string();
    if !out.contains("mode=") {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str("mode=rwc");
    }
    // Validates the URL early with a clear error.
    sqlx::sqlite::SqliteConnectOptions::from_str(&out)?;
    Ok(out)
}
