//! WebAssembly plugins: components implementing `lumire:plugin/feature-plugin@0.1.0` (see
//! `wit/` and docs/plugins.md), installed for the whole platform from the plugins directory and
//! enabled per tenant with the feature flag `plugin.<name>`.
//!
//! - `bindings`: host bindings generated from the WIT package,
//! - `manifest`: the validated manifest and route matching,
//! - `runtime`: wasmtime (engine, cache, limits, one store per call),
//! - `registry`: installing plugins and calling them,
//! - `host`: the host interfaces a plugin imports (storage, events, config, log),
//! - `storage`: the tenant-scoped document store,
//! - `http`: `GET /v1/plugins` and the fallback that serves plugin routes.

pub mod bindings;
pub mod host;
pub mod http;
pub mod manifest;
pub mod registry;
pub mod runtime;
pub mod storage;

pub use registry::{Installed, Plugins};

use crate::auth::roles::STAFF;
use crate::http::api::{Api, Op};

/// The tenant feature flag that enables a plugin.
pub fn flag_name(plugin: &str) -> String {
    format!("plugin.{plugin}")
}

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/plugins", "getPlugins", "plugins")
            .summary("Installed plugins: name, version, capabilities, routes, and whether the calling tenant enabled each (feature flag `plugin.<name>`).")
            .staff(STAFF),
        http::list,
    );
}
