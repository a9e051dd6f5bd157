//! Black-box tests over HTTP. One binary; each test starts its own engine and database.

mod accounts;
mod admin_traders;
mod api_keys;
mod customers;
mod fx;
mod idempotency;
mod identity;
mod ledger;
mod mail;
mod meta;
mod money_invariants;
mod passkeys;
mod payment_documents;
mod payments;
mod plugins;
mod portal;
mod s3_storage;
mod segments;
mod stripe_webhooks;
mod tags;
mod team;
mod tenants;
mod traders;
mod transactions;
mod users;
mod webhooks;
