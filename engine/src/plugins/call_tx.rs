//! One database connection and one transaction per plugin HTTP call. The call's first read takes
//! a connection from the pool and keeps it for the call's later reads; the call's first write
//! opens the transaction (on PostgreSQL on that same connection, so a read-then-write call takes
//! and pings one connection, like a native route; SQLite writes go through the engine's writer
//! connection). Every later read and write of the call runs in the transaction (a guest reads
//! what it wrote), each write host call in a savepoint of its own (a failed `commit` or `post`
//! undoes only itself); the engine commits it with the call's events and audit entry when the
//! guest answers a success, and drops it (a rollback) when the guest traps, runs past its deadline
//! or answers an error status. Events, jobs and connector calls have neither: each read takes a
//! pooled connection and each write host call commits at once.

use std::ops::{Deref, DerefMut};

use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor};

use super::host::HostState;
use crate::db::{Db, Tx};

/// The call transaction of a [`HostState`].
#[derive(Default)]
pub enum CallTx {
    /// Not an HTTP call: each write host call commits at once.
    #[default]
    Off,
    /// An HTTP call that has neither read nor written yet.
    Idle,
    /// An HTTP call that has read but not written: the connection of its first read, kept for
    /// its later reads and (on PostgreSQL) its transaction.
    Reading(PoolConnection<Any>),
    /// The call's open transaction.
    Open(Tx),
    /// Lent to a write host call ([`Writer`]), or lost with one that never ended: the call
    /// cannot commit (see [`CallTx::finish`]).
    Lent,
}

impl CallTx {
    /// What the engine commits when the call ends: `Ok(None)` when the call wrote nothing, an
    /// error when a write host call never gave the transaction back.
    pub fn finish(self) -> Result<Option<Tx>, &'static str> {
        match self {
            CallTx::Off | CallTx::Idle | CallTx::Reading(_) => Ok(None),
            CallTx::Open(tx) => Ok(Some(tx)),
            CallTx::Lent => Err("a storage write of the call did not complete"),
        }
    }
}

/// Where a read runs: in the call's transaction once it has one, else on the call's connection,
/// else (outside HTTP calls) on a pooled connection of its own.
pub enum Reader<'a> {
    Call(&'a mut Tx),
    Held(&'a mut PoolConnection<Any>),
    Pool(PoolConnection<Any>),
}

impl Deref for Reader<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Reader::Call(tx) => tx,
            Reader::Held(c) => c,
            Reader::Pool(c) => c,
        }
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Reader::Call(tx) => tx,
            Reader::Held(c) => c,
            Reader::Pool(c) => c,
        }
    }
}

/// How a write host call holds its transaction.
enum Hold {
    /// A transaction of its own (not an HTTP call): committed or rolled back when it ends.
    Own,
    /// The call's transaction, opened by this write: undoing the write is rolling it back (one
    /// round trip fewer on each side of the call's first write than a savepoint).
    Opened,
    /// The call's transaction, inside a savepoint.
    Savepoint,
}

/// A write host call's transaction.
pub struct Writer {
    tx: Tx,
    hold: Hold,
}

impl Deref for Writer {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl HostState {
    /// A connection for a read of this call.
    pub(super) async fn reader(&mut self, db: &Db) -> Result<Reader<'_>, sqlx::Error> {
        if matches!(self.call_tx, CallTx::Idle) {
            self.call_tx = CallTx::Reading(db.pool().acquire().await?);
        }
        match &mut self.call_tx {
            CallTx::Open(tx) => Ok(Reader::Call(tx)),
            CallTx::Reading(conn) => Ok(Reader::Held(conn)),
            CallTx::Off | CallTx::Idle | CallTx::Lent => {
                Ok(Reader::Pool(db.pool().acquire().await?))
            }
        }
    }

    /// Gives back the connection the call's reads kept, if it has not written.
    pub(super) fn release_idle_connection(&mut self) {
        if matches!(self.call_tx, CallTx::Reading(_)) {
            self.call_tx = CallTx::Idle;
        }
    }

    /// Starts a write host call: the call's transaction, opened now by its first write or
    /// with a savepoint for a later one; outside HTTP calls, a transaction of its own.
    pub(super) async fn begin_write(&mut self, db: &Db) -> Result<Writer, sqlx::Error> {
        match std::mem::replace(&mut self.call_tx, CallTx::Lent) {
            CallTx::Off => {
                self.call_tx = CallTx::Off;
                let tx = db.begin().await?;
                Ok(Writer {
                    tx,
                    hold: Hold::Own,
                })
            }
            // The call's first write: on PostgreSQL on the connection its reads kept, if any (on
            // SQLite that one goes back to the pool while the writer connection takes the write).
            first @ (CallTx::Idle | CallTx::Reading(_)) => {
                let opened = match first {
                    CallTx::Reading(conn) => db.begin_on(conn).await,
                    _ => db.begin().await,
                };
                match opened {
                    Ok(tx) => Ok(Writer {
                        tx,
                        hold: Hold::Opened,
                    }),
                    Err(e) => {
                        self.call_tx = CallTx::Idle;
                        Err(e)
                    }
                }
            }
            CallTx::Open(mut tx) => {
                tx.execute("SAVEPOINT host_call").await?;
                Ok(Writer {
                    tx,
                    hold: Hold::Savepoint,
                })
            }
            // An earlier write never ended: the call stays unable to commit.
            CallTx::Lent => Err(sqlx::Error::Protocol(
                "an earlier write of this plugin call did not complete".into(),
            )),
        }
    }

    /// Ends a write host call: keeps (`ok`) or undoes its changes. Outside HTTP calls that is a
    /// commit or a rollback; in an HTTP call, releasing or rolling back to the savepoint, the
    /// call's transaction staying open for the engine to commit. If the savepoint cannot be
    /// ended the transaction is not given back, so the call cannot commit.
    pub(super) async fn end_write(&mut self, w: Writer, ok: bool) -> Result<(), sqlx::Error> {
        let Writer { mut tx, hold } = w;
        match hold {
            Hold::Own if ok => tx.commit().await,
            // Dropping a transaction rolls it back.
            Hold::Own => Ok(()),
            Hold::Opened => {
                self.call_tx = if ok { CallTx::Open(tx) } else { CallTx::Idle };
                Ok(())
            }
            Hold::Savepoint => {
                if !ok {
                    tx.execute("ROLLBACK TO SAVEPOINT host_call").await?;
                }
                tx.execute("RELEASE SAVEPOINT host_call").await?;
                self.call_tx = CallTx::Open(tx);
                Ok(())
            }
        }
    }
}
