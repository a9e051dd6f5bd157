//! Loading trusted native connectors through libloading, behind the C ABI in [`super::abi`].

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ConnectorError;
use super::abi::{self, ABI_VERSION, CallFn, FreeFn, VersionFn};

/// A loaded native connector. The library stays loaded as long as this value lives, which keeps
/// the copied function pointers valid.
pub struct NativeConnector {
    pub path: PathBuf,
    pub platform: String,
    pub name: String,
    pub version: String,
    call: CallFn,
    free: FreeFn,
    _lib: libloading::Library,
}

impl std::fmt::Debug for NativeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeConnector")
            .field("path", &self.path)
            .field("platform", &self.platform)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl NativeConnector {
    /// Loads the library at `path`, checks its ABI version before calling anything else, and
    /// asks it to describe itself.
    pub fn load(path: &Path) -> Result<NativeConnector, ConnectorError> {
        let load_err = |e: libloading::Error| ConnectorError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        // SAFETY: loading a library runs its initialisers. Native connectors are full-trust
        // code that only the operator installs (see the module docs of `abi`).
        let lib = unsafe { libloading::Library::new(path) }.map_err(load_err)?;
        // SAFETY: the symbol types are those the ABI defines; a library exporting these names
        // with other types breaks the ABI contract it claims.
        let (version, call, free) = unsafe {
            let version = *lib.get::<VersionFn>(abi::SYM_VERSION).map_err(load_err)?;
            let found = version();
            if found != ABI_VERSION {
                return Err(ConnectorError::AbiMismatch {
                    path: path.display().to_string(),
                    found,
                    expected: ABI_VERSION,
                });
            }
            (
                found,
                *lib.get::<CallFn>(abi::SYM_CALL).map_err(load_err)?,
                *lib.get::<FreeFn>(abi::SYM_FREE).map_err(load_err)?,
            )
        };
        let mut c = NativeConnector {
            path: path.to_path_buf(),
            platform: String::new(),
            name: String::new(),
            version: version.to_string(),
            call,
            free,
            _lib: lib,
        };
        let d = c.call("describe", &serde_json::json!({}))?;
        c.platform = d["platform"].as_str().unwrap_or_default().to_string();
        c.name = d["name"].as_str().unwrap_or_default().to_string();
        c.version = d["version"].as_str().unwrap_or_default().to_string();
        if c.platform.is_empty() {
            return Err(ConnectorError::Protocol(format!(
                "{}: describe named no platform",
                path.display()
            )));
        }
        Ok(c)
    }

    /// One call: `op` with a JSON request, answered with the `ok` value or the connector's error.
    /// Blocking; call it from a blocking thread.
    pub fn call(&self, op: &str, request: &Value) -> Result<Value, ConnectorError> {
        let op_c = CString::new(op).map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        let req_c = CString::new(request.to_string())
            .map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        // SAFETY: both strings are NUL-terminated and outlive the call; the result is freed
        // exactly once, by the library's own `free`, after it was copied.
        let text = unsafe {
            let out = (self.call)(op_c.as_ptr(), req_c.as_ptr());
            if out.is_null() {
                return Err(ConnectorError::Protocol(format!("{op}: null response")));
            }
            let text = CStr::from_ptr(out).to_string_lossy().into_owned();
            (self.free)(out);
            text
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ConnectorError::Protocol(format!("{op}: response is not JSON: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(ConnectorError::Remote {
                code: err["code"].as_str().unwrap_or("error").to_string(),
                message: err["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        v.get("ok")
            .cloned()
            .ok_or_else(|| ConnectorError::Protocol(format!("{op}: neither ok nor error")))
    }
}

/// Whether a file name looks like a shared library of this platform.
pub fn is_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}
