//! What the engine gives a plugin during one call: the store's data ([`HostState`]) and the
//! host interfaces of `lumire:plugin` (storage, events, config, log). The tenant of every host
//! call is the one the engine put into [`CallCtx`] before calling the guest.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{config, events, log, storage, types};
use super::call_tx::CallTx;
use super::manifest::Manifest;
use super::storage::{Scope, db_err};
use crate::util::new_id;

/// Who a call serves. `tenant_id` is `None` while the engine asks a plugin to `describe` itself:
/// then every capability answers `denied`.
pub struct CallCtx {
    /// `None` when a plugin is only inspected (`lumire plugin install`).
    pub db: Option<crate::db::Db>,
    pub secrets: Option<Arc<crate::secrets::SecretBox>>,
    /// Object storage and the outbound HTTP client; `None` while inspecting.
    pub services: Option<Arc<Services>>,
    pub manifest: Arc<Manifest>,
    pub tenant_id: Option<String>,
    pub request_id: String,
    /// Set when a platform connector is called for a tenant's integration: its `config`
    /// answers from this, not from `plugin_configs`.
    pub connector: Option<Arc<ConnectorCall>>,
}

/// What the engine gives plugin calls beyond the database.
pub struct Services {
    pub store: Arc<dyn crate::storage::ObjectStore>,
    pub http: reqwest::Client,
    pub http_allow_private: bool,
}

/// A tenant's connector configuration, decrypted for one call.
pub struct ConnectorCall {
    /// `{"endpoint": ..., "label": ...}` plus the configuration's settings.
    pub config: serde_json::Value,
    pub secrets: std::collections::HashMap<String, String>,
    /// The host of the configured endpoint, which the connector may reach.
    pub endpoint_host: Option<String>,
}

/// `StoreLimits`, remembering whether it refused a memory grow (to name the failure).
pub struct Limiter {
    inner: StoreLimits,
    pub memory_refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if !ok {
            self.memory_refused = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Most events one HTTP call may emit (they are held until the call ends).
pub const MAX_DEFERRED_EVENTS: usize = 1000;

/// An event a plugin emitted while serving an HTTP request. The engine writes the call's events
/// when the call ends, in one transaction with the request's audit entry, instead of one
/// transaction per `emit`.
pub struct PendingEvent {
    pub name: String,
    pub resource_type: String,
    pub resource_id: String,
    pub payload: serde_json::Value,
}

/// Writes the events a call emitted, in `tx`.
pub async fn write_events(
    tx: &mut crate::db::Tx,
    tenant_id: &str,
    events: &[PendingEvent],
) -> Result<(), crate::http::error::ApiError> {
    for e in events {
        crate::events::emit(
            tx,
            tenant_id,
            &e.name,
            &e.resource_type,
            &e.resource_id,
            &e.payload,
        )
        .await?;
    }
    Ok(())
}

pub struct HostState {
    /// Built at the guest's first WASI call (a read of the wall clock, say): a call that makes
    /// none (leads-intake's reads and lists) skips building one (streams, clocks, two seeded
    /// random generators), about 2 µs (docs/benchmarks.md).
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub limiter: Limiter,
    pub call: CallCtx,
    /// Epoch ticks seen so far and the most allowed.
    pub ticks: u64,
    pub max_ticks: u64,
    pub timed_out: bool,
    /// `Some` while serving an HTTP request: `emit` validates and holds its events here for
    /// the engine to write when the call ends. `None` (events, jobs, connectors): each `emit`
    /// commits at once.
    pub deferred_events: Option<Vec<PendingEvent>>,
    /// Trader ids `transaction.new-trader-id` issued in this call: the only ones a commit
    /// accepts for a new trader.
    pub issued_trader_ids: Vec<String>,
    /// The database transaction of an HTTP call (`CallTx::Off` otherwise).
    pub call_tx: CallTx,
    /// A connector session's own outbound connections (made at its first request), never
    /// the shared pool: see `capabilities::session_http`.
    pub session_http: Option<super::capabilities::session_http::SessionHttp>,
}

impl HostState {
    pub fn new(call: CallCtx, memory_bytes: usize, max_ticks: u64) -> HostState {
        HostState {
            wasi: None,
            table: ResourceTable::new(),
            limiter: Limiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(memory_bytes)
                    .table_elements(1_000_000)
                    .instances(64)
                    .tables(64)
                    .memories(16)
                    .build(),
                memory_refused: false,
            },
            call,
            ticks: 0,
            max_ticks,
            timed_out: false,
            deferred_events: None,
            issued_trader_ids: Vec::new(),
            call_tx: CallTx::Off,
            session_http: None,
        }
    }

    pub fn services(&self) -> Option<&Arc<Services>> {
        self.call.services.as_ref()
    }

    /// Milliseconds left before the call's deadline.
    pub fn time_left_ms(&self) -> u64 {
        self.max_ticks.saturating_sub(self.ticks) * super::runtime::TICK.as_millis() as u64
    }

    /// The database, tenant and manifest of a storage call (owned: the call's transaction is
    /// borrowed from `self` while they are in use).
    pub(super) fn storage_parts(
        &self,
    ) -> Result<(crate::db::Db, String, Arc<Manifest>), storage::Error> {
        if !self.call.manifest.capabilities.storage {
            return Err(storage::Error::Denied);
        }
        let db = self.call.db.clone().ok_or(storage::Error::Denied)?;
        let tenant = self.call.tenant_id.clone().ok_or(storage::Error::Denied)?;
        Ok((db, tenant, self.call.manifest.clone()))
    }
}

/// What WASI gives a plugin: no files, sockets, environment or arguments; clocks and randomness
/// only.
fn wasi_ctx() -> WasiCtx {
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(wasi_ctx),
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl storage::Host for HostState {
    async fn new_id(&mut self, prefix: String) -> String {
        let id = new_id().to_lowercase();
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        if prefix.is_empty() {
            id
        } else {
            format!("{prefix}_{id}")
        }
    }

    async fn put(
        &mut self,
        collection: String,
        id: String,
        body: String,
    ) -> Result<storage::Document, storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut w = self.begin_write(&db).await.map_err(db_err)?;
        let r = super::storage::put(&mut w, &scope, &collection, &id, &body).await;
        self.end_write(w, r.is_ok()).await.map_err(db_err)?;
        r
    }

    async fn get(
        &mut self,
        collection: String,
        id: String,
    ) -> Result<Option<storage::Document>, storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        super::storage::get(&mut conn, &scope, &collection, &id).await
    }

    async fn delete(&mut self, collection: String, id: String) -> Result<bool, storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut w = self.begin_write(&db).await.map_err(db_err)?;
        let r = super::storage::delete(&mut w, &scope, &collection, &id).await;
        self.end_write(w, r.is_ok()).await.map_err(db_err)?;
        r
    }

    async fn find(&mut self, q: storage::Query) -> Result<storage::Page, storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        super::storage::find(&mut conn, &scope, &q).await
    }

    async fn count(
        &mut self,
        collection: String,
        filters: Vec<storage::Filter>,
    ) -> Result<u64, storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        super::storage::count(&mut conn, &scope, &collection, &filters).await
    }

    async fn batch(&mut self, writes: Vec<storage::Write>) -> Result<(), storage::Error> {
        let (db, tenant, manifest) = self.storage_parts()?;
        let scope = Scope::new(&tenant, &manifest);
        let mut w = self.begin_write(&db).await.map_err(db_err)?;
        let r = super::storage::apply(&mut w, &scope, &writes).await;
        self.end_write(w, r.is_ok()).await.map_err(db_err)?;
        r
    }
}

impl events::Host for HostState {
    async fn emit(
        &mut self,
        name: String,
        resource_type: String,
        resource_id: String,
        payload: String,
    ) -> Result<(), String> {
        if !self.call.manifest.capabilities.events {
            return Err("denied: the manifest does not ask for the events capability".into());
        }
        let Some(tenant) = self.call.tenant_id.clone() else {
            return Err("denied: no tenant in this call".into());
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !valid(&name) || !valid(&resource_type) || resource_id.len() > 128 {
            return Err("invalid: event and resource names are 1-64 of [A-Za-z0-9._-]".into());
        }
        let payload: serde_json::Value =
            serde_json::from_str(&payload).map_err(|e| format!("invalid payload: {e}"))?;
        if let Some(held) = &mut self.deferred_events {
            if held.len() >= MAX_DEFERRED_EVENTS {
                return Err(format!(
                    "invalid: at most {MAX_DEFERRED_EVENTS} events in one request"
                ));
            }
            held.push(PendingEvent {
                name,
                resource_type,
                resource_id,
                payload,
            });
            return Ok(());
        }
        let Some(db) = &self.call.db else {
            return Err("denied: no database in this call".into());
        };
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        crate::events::emit(
            &mut tx,
            &tenant,
            &name,
            &resource_type,
            &resource_id,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())
    }
}

impl config::Host for HostState {
    async fn get(&mut self) -> String {
        if let Some(c) = &self.call.connector {
            return c.config.to_string();
        }
        if !self.call.manifest.capabilities.config {
            return "{}".into();
        }
        let (Some(tenant), Some(db)) = (self.call.tenant_id.clone(), self.call.db.clone()) else {
            return "{}".into();
        };
        let manifest = self.call.manifest.clone();
        let Ok(mut conn) = self.reader(&db).await else {
            return "{}".into();
        };
        let row: Option<String> = sqlx::query_scalar(
            "SELECT config FROM plugin_configs WHERE tenant_id = $1 AND plugin = $2",
        )
        .bind(&tenant)
        .bind(&manifest.name)
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        row.unwrap_or_else(|| "{}".into())
    }

    async fn secret(&mut self, name: String) -> Option<String> {
        if let Some(c) = &self.call.connector {
            return c.secrets.get(&name).cloned();
        }
        if !self.call.manifest.capabilities.config {
            return None;
        }
        let tenant = self.call.tenant_id.clone()?;
        let db = self.call.db.clone()?;
        let manifest = self.call.manifest.clone();
        let mut conn = self.reader(&db).await.ok()?;
        let row: Option<String> = sqlx::query_scalar(
            "SELECT secrets FROM plugin_configs WHERE tenant_id = $1 AND plugin = $2",
        )
        .bind(&tenant)
        .bind(&manifest.name)
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        drop(conn);
        let all: serde_json::Value = serde_json::from_str(&row?).ok()?;
        let sealed = all.get(&name)?.as_str()?;
        let context = format!("plugin:{}:{}", self.call.manifest.name, tenant);
        self.call.secrets.as_ref()?.open(&context, sealed).ok()
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        let message: String = message.chars().take(4096).collect();
        let plugin = self.call.manifest.name.as_str();
        let tenant = self.call.tenant_id.as_deref().unwrap_or("");
        let request_id = self.call.request_id.as_str();
        match level {
            log::Level::Trace | log::Level::Debug => {
                tracing::debug!(plugin, tenant, request_id, "{message}")
            }
            log::Level::Info => tracing::info!(plugin, tenant, request_id, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, tenant, request_id, "{message}"),
            log::Level::Error => tracing::error!(plugin, tenant, request_id, "{message}"),
        }
    }
}
