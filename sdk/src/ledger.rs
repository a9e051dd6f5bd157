//! Balanced entries in the engine's double-entry ledger (capability `ledger`).
//!
//! ```ignore
//! use lumire_plugin_sdk::ledger::{self, Account};
//! let id = ledger::Entry::new("challenge-fee", "Challenge fee for ch_1", "fee:ch_1")
//!     .line(Account::TraderWallet(trader_id.into()), "USD", "-99.00")
//!     .line(Account::Plugin("challenge-fees".into()), "USD", "99.00")
//!     .post()?;
//! ```

use crate::v1::storage::Write;
use crate::v2::ledger as raw;
pub use raw::{AccountRef as Account, Error, Line};

/// An entry being built: lines are added with [`Entry::line`], storage writes that must commit
/// with it with [`Entry::write`].
pub struct Entry {
    entry: raw::Entry,
    writes: Vec<Write>,
}

impl Entry {
    /// A new entry of `kind` (1-32 of `[a-z0-9_-]`). `idempotency_key` is unique per plugin and
    /// tenant: posting the same key again returns the first entry and moves nothing.
    pub fn new(kind: &str, description: &str, idempotency_key: &str) -> Entry {
        Entry {
            entry: raw::Entry {
                kind: kind.into(),
                description: description.into(),
                idempotency_key: idempotency_key.into(),
                lines: Vec::new(),
            },
            writes: Vec::new(),
        }
    }
    /// A line: `amount` (decimal string) adds to `account`'s balance when positive and takes
    /// from it when negative; each currency's lines must sum to zero.
    pub fn line(mut self, account: Account, currency: &str, amount: &str) -> Self {
        self.entry.lines.push(Line {
            account,
            currency: currency.into(),
            amount: amount.into(),
        });
        self
    }
    /// Puts a storage document in the same transaction as the entry.
    pub fn put<T: serde::Serialize>(mut self, collection: &str, id: &str, body: &T) -> Self {
        self.writes.push(Write {
            collection: collection.into(),
            id: id.into(),
            body: Some(serde_json::to_string(body).unwrap_or_else(|_| "null".into())),
        });
        self
    }
    /// Adds a raw storage write (a put or, with `body: None`, a delete).
    pub fn write(mut self, w: Write) -> Self {
        self.writes.push(w);
        self
    }
    /// The entry and its storage writes (a [`crate::transaction::Transaction`] takes them apart).
    pub(crate) fn into_parts(self) -> (raw::Entry, Vec<Write>) {
        (self.entry, self.writes)
    }
    /// Posts the entry and its storage writes in one transaction; returns the entry id.
    pub fn post(self) -> Result<String, Error> {
        raw::post(&self.entry, &self.writes)
    }
}

/// The balance (decimal string) of an account in a currency.
pub fn balance(account: &Account, currency: &str) -> Result<String, Error> {
    raw::balance(account, currency)
}
