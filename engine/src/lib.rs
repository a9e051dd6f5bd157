//! The LumireCRM engine: a multi-tenant CRM for forex/CFD brokers serving the `/v1` API.

pub mod accounts;
pub mod admin_traders;
pub mod api_keys;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod customers;
pub mod db;
pub mod events;
pub mod fx;
pub mod housekeeping;
pub mod http;
pub mod identity;
pub mod ledger;
pub mod mail;
pub mod meta;
pub mod money;
pub mod passkeys;
pub mod payments;
pub mod pdf;
pub mod plugins;
pub mod portal;
pub mod secrets;
pub mod segments;
pub mod storage;
pub mod tags;
pub mod team;
pub mod tenants;
pub mod traders;
pub mod transactions;
pub mod util;
pub mod webhooks;

pub use app::{App, AppState};
pub use config::Settings;
