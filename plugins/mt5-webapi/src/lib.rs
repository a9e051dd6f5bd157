//! The MetaTrader 5 manager Web API (`/api/...` over HTTPS), as the engine's connectors need it:
//! the handshake, a session with retcode checks, timeouts and bounded retries, accounts,
//! balances, open positions, closed positions rebuilt from deals, and balance operations that a
//! retry never repeats.
//!
//! It has no host of its own: the caller gives it a [`Transport`] (HTTP, sleep, randomness,
//! log) and a [`Source`] of configuration. Two connectors are built on it, speaking the same
//! protocol to the same servers:
//!
//! - `plugins/mt5-connector`, the bundled WebAssembly component (outbound HTTP through the
//!   engine's allowlisted `http-client`);
//! - `examples/mt5-native-connector`, a trusted native library loaded through the engine's C
//!   ABI (its own blocking HTTP client).
//!
//! Modules: [`auth`] the handshake's hashes; [`client`] the session; [`wire`] requests and
//! answers; [`deals`] closed positions and pushed operations from deals; [`dec`], [`time`]
//! exact decimals and times; [`model`] the connector's records; [`ops`] the operations.

pub mod auth;
pub mod client;
pub mod deals;
pub mod dec;
pub mod model;
pub mod ops;
pub mod retcode;
pub mod time;
pub mod wire;

pub use client::{HttpReply, Level, Mt5Error, Settings, Transport, TransportError};
pub use model::{Account, Balance, BalanceOperation, Position, PositionPage, Side};
pub use ops::{Mt5, Source, settings};
