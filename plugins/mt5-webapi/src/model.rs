//! The connector's records, as the engine's connector protocol defines them (the `connector`
//! interface of `lumire:plugin@0.2.0`, and the JSON of the native C ABI). The WebAssembly
//! component converts them to its generated bindings; the native connector serialises them.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The platform's login.
    pub login: String,
    pub group: String,
    pub currency: String,
    pub leverage: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub login: String,
    pub currency: String,
    /// Decimal strings, never floats.
    pub balance: String,
    pub credit: String,
    pub equity: String,
    pub margin: String,
    pub free_margin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// The platform's position (ticket) id.
    pub id: String,
    pub login: String,
    pub symbol: String,
    pub side: Side,
    pub volume: String,
    pub open_price: String,
    /// Set for closed positions.
    pub close_price: Option<String>,
    pub profit: String,
    pub commission: String,
    pub swap: String,
    /// RFC 3339.
    pub opened_at: String,
    pub closed_at: Option<String>,
}

/// One page of positions and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionPage {
    pub positions: Vec<Position>,
    pub next_cursor: Option<String>,
}

/// A balance or credit operation to push to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceOperation {
    pub login: String,
    /// Signed decimal: positive credits the account, negative debits it.
    pub amount: String,
    /// `balance` (deposits and withdrawals) or `credit` (credit in and out).
    pub kind: String,
    pub comment: String,
    /// The engine's id of the operation; a push with a key already on the platform is not
    /// repeated.
    pub idempotency_key: String,
}
