//! Black-box tests over HTTP. One binary; each test starts its own engine and database.

mod customers;
mod identity;
mod meta;
mod portal;
mod segments;
mod tags;
mod traders;
