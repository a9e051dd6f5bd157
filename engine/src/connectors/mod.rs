//! Platform connectors: what the engine uses to reach trading platforms (test a connection,
//! list accounts, read balances and positions, push balance operations). Connectors come as
//! WebAssembly plugins (the `platform-connector` world) or, for vendors that only ship a native
//! library, as trusted native libraries loaded through libloading ([`native`], ABI in [`abi`]).
//! The registry maps a platform name to the connector that serves it.

pub mod abi;
pub mod native;
pub mod tls;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use native::NativeConnector;

use crate::plugins::connector::{WasmConnector, WasmSession};

/// How long one connector call may take before the engine gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("cannot load connector {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("connector {path} speaks ABI version {found}; this engine speaks version {expected}")]
    AbiMismatch {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("connector protocol error: {0}")]
    Protocol(String),
    #[error("{code}: {message}")]
    Remote { code: String, message: String },
    #[error("the connector did not answer within {0:?}")]
    Timeout(Duration),
}

/// A connector refused at start-up, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    pub path: String,
    pub reason: String,
}

/// A connector the engine can call: a trusted native library or a WebAssembly component.
#[derive(Clone)]
pub enum Connector {
    Native(Arc<NativeConnector>),
    Wasm(WasmConnector),
}

impl Connector {
    pub fn name(&self) -> String {
        match self {
            Connector::Native(n) => n.name.clone(),
            Connector::Wasm(w) => w.plugin.manifest.description.clone(),
        }
    }
    pub fn version(&self) -> String {
        match self {
            Connector::Native(n) => n.version.clone(),
            Connector::Wasm(w) => w.plugin.manifest.version.clone(),
        }
    }
    /// `native` or `wasm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Connector::Native(_) => "native",
            Connector::Wasm(_) => "wasm",
        }
    }
    /// A session for one engine operation of one tenant, with that tenant's configuration
    /// (`{"endpoint", "credentials"}`).
    pub fn session(&self, tenant_id: &str, config: &Value) -> Session {
        match self {
            Connector::Native(n) => Session::Native(n.clone(), tenant_id.to_string()),
            Connector::Wasm(w) => Session::Wasm(Box::new(w.session(tenant_id, config))),
        }
    }
}

/// Calls of one engine operation (a sync run, a push) on one connector.
pub enum Session {
    /// The library and the tenant whose configuration its requests carry.
    Native(Arc<NativeConnector>, String),
    Wasm(Box<WasmSession>),
}

impl Session {
    /// One operation of the connector protocol (`abi`'s JSON operations).
    pub async fn call(
        &mut self,
        op: &'static str,
        request: Value,
    ) -> Result<Value, ConnectorError> {
        match self {
            Session::Native(n, tenant_id) => {
                // The library keys the platform sessions it keeps by tenant and configuration:
                // two tenants on one server never share one (abi's `tenant`).
                let mut request = request;
                if let Some(obj) = request.as_object_mut() {
                    obj.insert("tenant".into(), Value::String(tenant_id.clone()));
                }
                call_native(n.clone(), op, request).await
            }
            Session::Wasm(w) => {
                match tokio::time::timeout(CALL_TIMEOUT * 4, w.call(op, &request)).await {
                    Ok(r) => r,
                    Err(_) => Err(ConnectorError::Timeout(CALL_TIMEOUT * 4)),
                }
            }
        }
    }
}

#[derive(Default)]
pub struct Registry {
    native: BTreeMap<String, Arc<NativeConnector>>,
    wasm: BTreeMap<String, WasmConnector>,
    pub rejected: Vec<Rejected>,
}

impl Registry {
    /// Loads every shared library in `dir`. A library that fails to load or speaks another ABI
    /// version is refused (logged and listed in `rejected`); the engine starts without it.
    pub fn load_dir(dir: &Path) -> Registry {
        let mut reg = Registry::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "native connectors directory unreadable");
                reg.rejected.push(Rejected {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                });
                return reg;
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| native::is_library(p))
            .collect();
        paths.sort();
        for path in paths {
            reg.load(&path);
        }
        reg
    }

    /// Loads one library into the registry (refusals are recorded, not returned).
    pub fn load(&mut self, path: &Path) {
        match NativeConnector::load(path) {
            Ok(c) => {
                tracing::warn!(
                    path = %path.display(), platform = %c.platform, version = %c.version,
                    "loaded a native connector: it runs with full trust inside the engine"
                );
                self.native.insert(c.platform.clone(), Arc::new(c));
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "native connector refused");
                self.rejected.push(Rejected {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Registers the platform-connector components among the installed plugins, each under its
    /// manifest name. A native connector for the same platform wins (it is the operator's
    /// explicit, full-trust choice); the component is then listed as refused.
    pub fn add_plugins(&mut self, plugins: &Arc<crate::plugins::Plugins>) {
        for p in plugins.connectors() {
            let platform = p.manifest.name.clone();
            if self.native.contains_key(&platform) {
                self.rejected.push(Rejected {
                    path: p.file.display().to_string(),
                    reason: format!("a native connector already serves {platform}"),
                });
                continue;
            }
            tracing::info!(platform = %platform, version = %p.manifest.version, "WebAssembly connector registered");
            self.wasm.insert(
                platform,
                WasmConnector {
                    plugins: plugins.clone(),
                    plugin: p.clone(),
                },
            );
        }
    }

    pub fn for_platform(&self, platform: &str) -> Option<Connector> {
        if let Some(n) = self.native.get(platform) {
            return Some(Connector::Native(n.clone()));
        }
        self.wasm.get(platform).cloned().map(Connector::Wasm)
    }

    /// Platforms accounts and integrations may name: the engine's list, plus any platform an
    /// installed connector (native or WebAssembly) serves.
    pub fn allowed_platforms(&self) -> Vec<&str> {
        let mut v: Vec<&str> = crate::accounts::model::PLATFORMS.to_vec();
        for p in self.native.keys().chain(self.wasm.keys()) {
            if !v.contains(&p.as_str()) {
                v.push(p.as_str());
            }
        }
        v
    }

    pub fn platforms(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .native
            .keys()
            .chain(self.wasm.keys())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One operation on a connector for a tenant, in a session of its own.
pub async fn call(
    connector: &Connector,
    tenant_id: &str,
    op: &'static str,
    request: Value,
) -> Result<Value, ConnectorError> {
    let mut session = connector.session(tenant_id, &request["config"]);
    session.call(op, request).await
}

/// Calls a native connector off the async threads, bounded by [`CALL_TIMEOUT`].
async fn call_native(
    connector: Arc<NativeConnector>,
    op: &'static str,
    request: Value,
) -> Result<Value, ConnectorError> {
    let work = tokio::task::spawn_blocking(move || connector.call(op, &request));
    match tokio::time::timeout(CALL_TIMEOUT, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(ConnectorError::Protocol(format!("{op}: {join}"))),
        Err(_) => Err(ConnectorError::Timeout(CALL_TIMEOUT)),
    }
}
