//! MetaTrader 5 as a trusted native connector: the engine loads this library through libloading
//! and calls it through its C ABI version 1 (`engine/src/connectors/abi.rs`).
//!
//! It speaks the MT5 manager Web API with the same protocol code as the bundled WebAssembly
//! connector (`plugins/mt5-webapi`), over a native blocking HTTP client, so either path can
//! serve platform `mt5` and the tests prove both against the same simulator. A broker whose
//! vendor ships only a native library (the MT5 Manager API) writes its connector the same way:
//! the exported functions of [`abi`], its own [`Transport`](mt5_webapi::Transport).
//!
//! - [`abi`]: the exported C functions and the JSON envelope;
//! - [`ops`]: the ABI's operations on a connection;
//! - [`pool`]: connections kept between calls, per server and manager;
//! - [`http`]: the blocking HTTP transport.

mod abi;
mod http;
mod ops;
mod pool;

pub use abi::{lumire_connector_abi_version, lumire_connector_call, lumire_connector_free};
