//! Platform connectors: what the engine uses to reach trading platforms (test a connection,
//! list accounts, read balances and positions, push balance operations). Connectors come as
//! WebAssembly plugins (the `platform-connector` world) or, for vendors that only ship a native
//! library, as trusted native libraries loaded through libloading ([`native`], ABI in [`abi`]).
//! The registry maps a platform name to the connector that serves it.

pub mod abi;
pub mod native;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use native::NativeConnector;

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

#[derive(Default, Debug)]
pub struct Registry {
    native: BTreeMap<String, Arc<NativeConnector>>,
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

    pub fn for_platform(&self, platform: &str) -> Option<Arc<NativeConnector>> {
        self.native.get(platform).cloned()
    }

    pub fn platforms(&self) -> Vec<String> {
        self.native.keys().cloned().collect()
    }
}

/// Calls a connector off the async threads, bounded by [`CALL_TIMEOUT`].
pub async fn call(
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
