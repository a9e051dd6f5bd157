//! # lumire-plugin-sdk
//!
//! Write a LumireCRM engine plugin in Rust. A plugin is a WebAssembly component implementing the
//! `feature-plugin` world of the WIT package `lumire:plugin@0.3.0` (see `wit/` in the engine's
//! repository). This crate wraps the generated bindings:
//!
//! - [`Plugin`]: the trait you implement (manifest, HTTP handler, events, jobs),
//! - [`export_plugin!`]: registers your type as the component's exports,
//! - [`Request`] / [`Response`] / [`Problem`]: HTTP with JSON bodies and problem+json errors,
//! - [`Router`]: typed routing of `(method, route)` to handler functions,
//! - [`storage`], [`files`], [`records`], [`ledger`], [`transaction`], [`http_client`],
//!   [`events`], [`config`], [`log`]: the host's capabilities,
//! - [`connector`]: the [`connector::Connector`] trait and [`export_connector!`] for
//!   trading-platform connectors (world `platform-connector`).
//!
//! ```ignore
//! use lumire_plugin_sdk::{self as sdk, Plugin, Request, Response, Problem, manifest};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn manifest() -> sdk::Manifest {
//!         manifest("hello", env!("CARGO_PKG_VERSION"))
//!             .route("GET", "/v1/hello", &["owner", "admin"], "Say hello")
//!             .build()
//!     }
//!     fn handle(req: Request) -> Result<Response, Problem> {
//!         match (req.method(), req.route()) {
//!             ("GET", "/v1/hello") => Ok(Response::json(200, &serde_json::json!({"hello": req.tenant_id()}))),
//!             _ => Err(Problem::not_found("route")),
//!         }
//!     }
//! }
//! sdk::export_plugin!(Hello);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the engine loads.

mod http;
mod manifest;
mod router;

pub mod connector;
pub mod files;
pub mod http_client;
pub mod ledger;
pub mod records;
pub mod storage;
pub mod transaction;

pub use http::{Problem, Request, Response, field_errors};
pub use manifest::{ManifestBuilder, manifest};
pub use router::{Handler, Router};

/// The bindings generated from the WIT package `lumire:plugin@0.3.0` (world `feature-plugin`,
/// which imports the 0.1.0 and 0.2.0 interfaces unchanged). Prefer the wrappers of this crate; the raw
/// bindings are here for what they do not cover.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/lumire-plugin-0.3.0",
        world: "lumire:plugin/feature-plugin@0.3.0",
        pub_export_macro: true,
        export_macro_name: "__export_feature_plugin",
        default_bindings_module: "lumire_plugin_sdk::bindings",
        // The 0.1.0 and 0.2.0 interfaces the world imports come from other package versions.
        generate_all,
    });
}

/// The bindings of the `platform-connector` world. Its imports are those of [`bindings`]
/// (shared, so the wrappers of this crate serve both worlds).
#[allow(missing_docs, clippy::all)]
pub mod connector_bindings {
    wit_bindgen::generate!({
        path: "../wit/lumire-plugin-0.2.0",
        world: "lumire:plugin/platform-connector@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_platform_connector",
        default_bindings_module: "lumire_plugin_sdk::connector_bindings",
        with: {
            "lumire:plugin/types@0.1.0": crate::bindings::lumire::plugin0_1_0::types,
            "lumire:plugin/config@0.1.0": crate::bindings::lumire::plugin0_1_0::config,
            "lumire:plugin/log@0.1.0": crate::bindings::lumire::plugin0_1_0::log,
            "lumire:plugin/http-client@0.2.0": crate::bindings::lumire::plugin0_2_0::http_client,
        },
    });
}

/// The interfaces of `lumire:plugin@0.1.0` (types, storage, events, config, log).
pub(crate) use bindings::lumire::plugin0_1_0 as v1;
/// The interfaces new in `lumire:plugin@0.2.0` (files, records, ledger, http-client).
pub(crate) use bindings::lumire::plugin0_2_0 as v2;
/// The interface new in `lumire:plugin@0.3.0` (transaction).
pub(crate) use bindings::lumire::plugin0_3_0 as v3;

pub use v1::types::{
    Capability, Collection, Event, HttpRequest, HttpResponse, Job, Manifest, Route,
};

/// Re-exported so plugins need no direct dependency on serde_json.
pub use serde_json;

/// What a plugin implements. Only [`Plugin::manifest`] and [`Plugin::handle`] are required.
pub trait Plugin {
    /// Describes the plugin: name, version, routes, events, jobs, capabilities, collections.
    fn manifest() -> Manifest;

    /// Handles a request that matched one of the manifest's routes. The engine has already
    /// authenticated the caller, checked the route's roles and the tenant's enablement.
    /// An `Err` becomes a problem+json response.
    fn handle(req: Request) -> Result<Response, Problem>;

    /// Handles a subscribed event of a tenant that enabled the plugin.
    fn on_event(_event: Event) -> Result<(), String> {
        Ok(())
    }

    /// Runs a scheduled job for one tenant.
    fn run_job(_tenant_id: &str, _name: &str) -> Result<(), String> {
        Ok(())
    }
}

#[doc(hidden)]
pub fn __handle<P: Plugin>(raw: HttpRequest) -> HttpResponse {
    let resp = match P::handle(Request::new(raw)) {
        Ok(r) => r,
        Err(p) => p.into_response(),
    };
    resp.into_raw()
}

/// Registers `$t` (a type implementing [`Plugin`]) as the component's exports. Use it once,
/// at the top level of the plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        #[doc(hidden)]
        struct __LumirePluginExports;
        impl $crate::bindings::Guest for __LumirePluginExports {
            fn describe() -> $crate::Manifest {
                <$t as $crate::Plugin>::manifest()
            }
            fn handle_http(request: $crate::HttpRequest) -> $crate::HttpResponse {
                $crate::__handle::<$t>(request)
            }
            fn handle_event(event: $crate::Event) -> ::core::result::Result<(), String> {
                <$t as $crate::Plugin>::on_event(event)
            }
            fn run_job(tenant_id: String, name: String) -> ::core::result::Result<(), String> {
                <$t as $crate::Plugin>::run_job(&tenant_id, &name)
            }
        }
        $crate::bindings::__export_feature_plugin!(__LumirePluginExports with_types_in $crate::bindings);
    };
}

/// Emitting events into the engine's outbox (capability `events`).
pub mod events {
    /// Emits `name` about `resource_type`/`resource_id` with a JSON payload.
    pub fn emit(
        name: &str,
        resource_type: &str,
        resource_id: &str,
        payload: &serde_json::Value,
    ) -> Result<(), String> {
        crate::v1::events::emit(name, resource_type, resource_id, &payload.to_string())
    }
}

/// The calling tenant's configuration of this plugin (capability `config`).
pub mod config {
    /// The configuration object (`{}` when the tenant set none).
    pub fn get() -> serde_json::Value {
        serde_json::from_str(&crate::v1::config::get()).unwrap_or_else(|_| serde_json::json!({}))
    }
    /// A secret the tenant stored for this plugin.
    pub fn secret(name: &str) -> Option<String> {
        crate::v1::config::secret(name)
    }
}

/// Lines in the engine's log, tagged with plugin, tenant and request id.
pub mod log {
    use crate::v1::log::{Level, log};
    /// Logs at info level.
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }
    /// Logs at warn level.
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }
    /// Logs at error level.
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }
    /// Logs at debug level.
    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }
}
