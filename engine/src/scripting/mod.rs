//! Tenant scripting: one shared, sandboxed Rhai engine (`sandbox`), compiled-script caching
//! (`cache`), conditions in structured or expression form (`condition`) and JSON conversion
//! (`convert`). Scripts only compute decisions from the context they are given; the engine
//! carries the decisions out afterwards, inside the tenant, with an audit entry naming the
//! rule or workflow, its version and the run.

pub mod cache;
pub mod condition;
pub mod convert;
pub mod sandbox;

pub use crate::workflows::run_workflows_once;
pub use sandbox::ScriptError;

use crate::http::error::FieldError;

/// A compile error as a 400 field error pointing at the script's line and column.
pub fn field_error(field: &str, e: &ScriptError) -> FieldError {
    FieldError::at(field, e.to_string(), e.line, e.column)
}
