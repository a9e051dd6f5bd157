//! Black-box tests over HTTP. One binary; each test starts its own engine and database.

mod api_keys;
mod identity;
mod meta;
mod team;
mod tenants;
mod traders;
mod users;
