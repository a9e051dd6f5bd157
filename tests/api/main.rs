//! Black-box tests over HTTP. One binary; each test starts its own engine and database.

mod identity;
mod meta;
mod passkeys;
mod traders;
