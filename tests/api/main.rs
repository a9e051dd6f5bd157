//! Black-box tests over HTTP. One binary; each test starts its own engine and database.

mod accounts;
mod admin_traders;
mod fx;
mod idempotency;
mod identity;
mod ledger;
mod mail;
mod meta;
mod payments;
mod traders;
mod transactions;
