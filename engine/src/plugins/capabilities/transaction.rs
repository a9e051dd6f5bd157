//! `transaction` (WIT 0.3.0): a plugin's storage writes with expectations, trader creations and
//! ledger posts, committed in one database transaction or not at all. The host runs the steps
//! only when the plugin hands over the whole list, so no transaction stays open while guest code
//! runs; concurrency is optimistic (a write expecting a revision fails as `stale`).

use std::sync::Arc;

use super::super::bindings::ledger;
use super::super::bindings::storage::Error as StorageError;
use super::super::bindings::transaction::{
    Error, Expect, Failure, Host, Outcome, Step, TraderCreation, Versioned, Write,
};
use super::super::host::HostState;
use super::super::manifest::Manifest;
use super::super::storage::{self as docs, Scope};
use super::ledger::post_in;
use super::records::{create_body, trader};
use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::ApiError;
use crate::traders::handlers::create_with_id;
use crate::traders::model::load;

/// Most steps in one commit.
pub const MAX_STEPS: usize = 200;

fn failure(step: usize, message: impl Into<String>) -> Failure {
    Failure {
        step: u32::try_from(step).unwrap_or(u32::MAX),
        message: message.into(),
    }
}

fn db_err(e: sqlx::Error) -> Error {
    tracing::warn!(error = %e, "plugin transaction failed");
    Error::Unavailable("the database failed".into())
}

fn storage_err(step: usize, e: StorageError) -> Error {
    match e {
        StorageError::Denied => Error::Denied(failure(step, "the storage capability")),
        StorageError::Invalid(m) => Error::Invalid(failure(step, m)),
        StorageError::TooLarge => Error::Invalid(failure(step, "the document is too large")),
        StorageError::Unavailable(m) => Error::Unavailable(m),
    }
}

fn api_err(step: usize, e: ApiError) -> Error {
    match e {
        ApiError::Validation(fields) => Error::Invalid(failure(
            step,
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        )),
        ApiError::Conflict { detail, .. } => Error::Conflict(failure(step, detail)),
        dup @ ApiError::Duplicate { .. } => Error::Conflict(failure(step, dup.to_string())),
        ApiError::BadRequest { detail, .. } => Error::Invalid(failure(step, detail)),
        ApiError::NotFound(what) => Error::Invalid(failure(step, format!("no such {what}"))),
        other => {
            tracing::warn!(error = %other, "plugin transaction: creating a trader failed");
            Error::Unavailable("the engine could not complete the call".into())
        }
    }
}

fn ledger_err(step: usize, e: ledger::Error) -> Error {
    match e {
        ledger::Error::Denied => Error::Denied(failure(step, "the ledger capability")),
        ledger::Error::Invalid(m) => Error::Invalid(failure(step, m)),
        ledger::Error::InsufficientFunds(m) => Error::InsufficientFunds(failure(step, m)),
        ledger::Error::Unavailable(m) => Error::Unavailable(m),
    }
}

fn expectation(e: Expect) -> docs::Expect {
    match e {
        Expect::Any => docs::Expect::Any,
        Expect::Absent => docs::Expect::Absent,
        Expect::Revision(r) => docs::Expect::Revision(r),
    }
}

fn stale(step: usize, w: &Write) -> Error {
    let why = match w.expect {
        Expect::Any => "the document changed".to_string(),
        Expect::Absent => "the document exists".to_string(),
        Expect::Revision(r) => format!("the document is no longer at revision {r}"),
    };
    Error::Stale(failure(step, format!("{}/{}: {why}", w.collection, w.id)))
}

/// What the steps of one commit run with (taken from the call before the first await: the
/// store's data is not `Sync`).
struct Ctx {
    manifest: Arc<Manifest>,
    tenant: String,
    actor: Actor,
    issued_trader_ids: Vec<String>,
}

impl Ctx {
    /// Runs the steps in order inside `tx`; the first failure stops them.
    async fn run(&self, tx: &mut Tx, steps: Vec<Step>) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = Vec::with_capacity(steps.len());
        for (i, step) in steps.into_iter().enumerate() {
            let outcome = match step {
                Step::Write(w) => self.write_step(tx, i, &w).await?,
                Step::CreateTrader(c) => self.trader_step(tx, i, c).await?,
                Step::Post(e) => {
                    if !self.manifest.capabilities.ledger {
                        return Err(Error::Denied(failure(i, "the ledger capability")));
                    }
                    let id = post_in(&self.manifest, tx, &self.tenant, &e, &[])
                        .await
                        .map_err(|e| ledger_err(i, e))?;
                    Outcome::Posted(id)
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn write_step(&self, tx: &mut Tx, step: usize, w: &Write) -> Result<Outcome, Error> {
        if !self.manifest.capabilities.storage {
            return Err(Error::Denied(failure(step, "the storage capability")));
        }
        let scope = Scope {
            tenant_id: &self.tenant,
            manifest: &self.manifest,
        };
        let expect = expectation(w.expect);
        let done = match &w.body {
            Some(body) => docs::put_expecting(tx, &scope, &w.collection, &w.id, body, expect)
                .await
                .map_err(|e| storage_err(step, e))?
                .map(|written| Outcome::Written(written.revision)),
            None => docs::delete_expecting(tx, &scope, &w.collection, &w.id, expect)
                .await
                .map_err(|e| storage_err(step, e))?
                .map(Outcome::Deleted),
        };
        done.ok_or_else(|| stale(step, w))
    }

    async fn trader_step(
        &self,
        tx: &mut Tx,
        step: usize,
        c: TraderCreation,
    ) -> Result<Outcome, Error> {
        if !self.manifest.capabilities.core_records {
            return Err(Error::Denied(failure(step, "the core-records capability")));
        }
        if !self.issued_trader_ids.contains(&c.id) {
            return Err(Error::Invalid(failure(
                step,
                "id: was not issued by new-trader-id in this call",
            )));
        }
        let view = create_with_id(tx, &self.actor, create_body(c.trader), c.id)
            .await
            .map_err(|e| api_err(step, e))?;
        let row = load(&mut **tx, &self.tenant, &view.id)
            .await
            .map_err(|e| api_err(step, e))?;
        Ok(Outcome::TraderCreated(trader(row)))
    }
}

impl Host for HostState {
    async fn get(&mut self, collection: String, id: String) -> Result<Option<Versioned>, Error> {
        let (db, tenant, manifest) = self.storage_parts().map_err(|e| storage_err(0, e))?;
        let scope = Scope::new(&tenant, &manifest);
        let mut conn = self.reader(&db).await.map_err(db_err)?;
        let found = docs::get_versioned(&mut conn, &scope, &collection, &id)
            .await
            .map_err(|e| storage_err(0, e))?;
        Ok(found.map(|(document, revision)| Versioned { document, revision }))
    }

    async fn new_trader_id(&mut self) -> String {
        let id = crate::util::new_id();
        // A commit creates at most MAX_STEPS traders: ids issued beyond that are not honoured
        // (the list stays small however often a plugin asks).
        if self.issued_trader_ids.len() < MAX_STEPS {
            self.issued_trader_ids.push(id.clone());
        }
        id
    }

    async fn commit(&mut self, steps: Vec<Step>) -> Result<Vec<Outcome>, Error> {
        if steps.len() > MAX_STEPS {
            return Err(Error::Invalid(failure(
                MAX_STEPS,
                format!("at most {MAX_STEPS} steps in one commit"),
            )));
        }
        let tenant = self
            .call
            .tenant_id
            .clone()
            .ok_or_else(|| Error::Denied(failure(0, "no tenant in this call")))?;
        let db = self
            .call
            .db
            .clone()
            .ok_or_else(|| Error::Denied(failure(0, "no database in this call")))?;
        let ctx = Ctx {
            manifest: self.call.manifest.clone(),
            actor: self.plugin_actor(&tenant),
            tenant,
            issued_trader_ids: self.issued_trader_ids.clone(),
        };
        let mut tx = self.begin_write(&db).await.map_err(db_err)?;
        let r = ctx.run(&mut tx, steps).await;
        self.end_write(tx, r.is_ok()).await.map_err(db_err)?;
        r
    }
}
