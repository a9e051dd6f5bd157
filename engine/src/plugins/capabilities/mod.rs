//! The host interfaces new in `lumire:plugin@0.2.0` and `@0.3.0` (`transaction`), one module
//! each. Every call is scoped to the
//! tenant the host is serving (from the call context, never from an argument) and refused with
//! `denied` unless the manifest asked for the capability and the operator approved it.

pub mod files;
pub mod ledger;
pub mod outbound;
pub mod records;
pub mod session_http;
pub mod transaction;
