//! Several changes committed together (WIT `lumire:plugin@0.3.0`, interface `transaction`):
//! storage writes that expect the document's current state, traders created through the core
//! records, and ledger entries, all in one database transaction or not at all.
//!
//! Read first, decide, then commit the whole change. A write that expects a revision fails
//! with [`Error::Stale`] when someone changed the document in between: read again and decide
//! again (or answer 409).
//!
//! ```ignore
//! use lumire_plugin_sdk::transaction::{self, Expect, Transaction};
//! let (mut lead, revision) = transaction::get::<Lead>("leads", id)?.ok_or(not_found)?;
//! let trader_id = transaction::new_trader_id();
//! lead.trader_id = Some(trader_id.clone());
//! let outcomes = Transaction::new()
//!     .create_trader(&trader_id, new_trader)
//!     .put("leads", &lead.id, &lead, Expect::Revision(revision))
//!     .commit()?;
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::v2::records::NewTrader;
use crate::v3::transaction as raw;
pub use raw::{Error, Expect, Failure, Outcome, Versioned};

/// A document's body parsed into `T`, with its revision (capability `storage`).
/// `Box<serde_json::value::RawValue>` keeps the body as stored.
pub fn get<T: DeserializeOwned>(collection: &str, id: &str) -> Result<Option<(T, u64)>, Error> {
    let Some(v) = raw::get(collection, id)? else {
        return Ok(None);
    };
    let body = serde_json::from_str(&v.document.body).map_err(|e| {
        Error::Invalid(Failure {
            step: 0,
            message: format!("{collection}/{id}: {e}"),
        })
    })?;
    Ok(Some((body, v.revision)))
}

/// A document's body as the engine stored it, with its revision (capability `storage`): a
/// JSON object, which the engine checked when it was written, to answer unchanged
/// ([`crate::Response::json_text`]) without parsing it.
pub fn get_text(collection: &str, id: &str) -> Result<Option<(String, u64)>, Error> {
    Ok(raw::get(collection, id)?.map(|v| (v.document.body, v.revision)))
}

/// A fresh id for a trader that a [`Transaction`] of this call creates
/// (capability `core-records`).
pub fn new_trader_id() -> String {
    raw::new_trader_id()
}

/// The steps of one commit, in order.
#[derive(Default)]
pub struct Transaction {
    steps: Vec<raw::Step>,
    /// A body that did not serialise: reported by [`Transaction::commit`], naming its step.
    broken: Option<Failure>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Puts `body` (it must serialise to a JSON object) as `collection/id` if `expect` holds.
    pub fn put<T: Serialize + ?Sized>(
        mut self,
        collection: &str,
        id: &str,
        body: &T,
        expect: Expect,
    ) -> Self {
        match serde_json::to_string(body) {
            Ok(text) => self.push_write(collection, id, Some(text), expect),
            Err(e) => {
                self.broken.get_or_insert(Failure {
                    step: self.steps.len() as u32,
                    message: format!("{collection}/{id}: {e}"),
                });
                // Keep the step numbering of what follows.
                self.push_write(collection, id, None, expect)
            }
        }
    }

    /// Deletes `collection/id` if `expect` holds.
    pub fn delete(self, collection: &str, id: &str, expect: Expect) -> Self {
        self.push_write(collection, id, None, expect)
    }

    fn push_write(
        mut self,
        collection: &str,
        id: &str,
        body: Option<String>,
        expect: Expect,
    ) -> Self {
        self.steps.push(raw::Step::Write(raw::Write {
            collection: collection.into(),
            id: id.into(),
            body,
            expect,
        }));
        self
    }

    /// Creates a trader under `id`, which [`new_trader_id`] issued in this call.
    pub fn create_trader(mut self, id: &str, trader: NewTrader) -> Self {
        self.steps
            .push(raw::Step::CreateTrader(raw::TraderCreation {
                id: id.into(),
                trader,
            }));
        self
    }

    /// Posts a ledger entry (capability `ledger`); the entry's own storage writes follow it as
    /// unconditional puts and deletes.
    pub fn post(mut self, entry: crate::ledger::Entry) -> Self {
        let (entry, writes) = entry.into_parts();
        self.steps.push(raw::Step::Post(entry));
        for w in writes {
            self = self.push_write(&w.collection, &w.id, w.body, Expect::Any);
        }
        self
    }

    /// The number of steps so far (a [`Failure::step`] indexes them).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when no step was added.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs every step in one transaction; on success, one [`Outcome`] per step.
    pub fn commit(self) -> Result<Vec<Outcome>, Error> {
        if let Some(f) = self.broken {
            return Err(Error::Invalid(f));
        }
        raw::commit(&self.steps)
    }
}

/// The id of the trader a step created, from a commit's outcomes.
pub fn created_trader(outcomes: &[Outcome]) -> Option<&crate::records::Trader> {
    outcomes.iter().find_map(|o| match o {
        Outcome::TraderCreated(t) => Some(t),
        _ => None,
    })
}
