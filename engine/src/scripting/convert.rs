//! JSON contexts into Rhai values and script results back into JSON.

use rhai::Dynamic;
use serde_json::Value;

use super::sandbox::ScriptError;

pub fn to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

pub fn to_json(d: &Dynamic) -> Result<Value, ScriptError> {
    rhai::serde::from_dynamic::<Value>(d).map_err(|e| {
        ScriptError::new(
            "runtime",
            format!("the script returned a value that is not data: {e}"),
        )
    })
}

/// A condition's result: `true`/`false`; `()` counts as false; anything else is an error, so
/// a typo returning a string is reported instead of silently matching.
pub fn to_bool(d: &Dynamic) -> Result<bool, ScriptError> {
    if d.is_unit() {
        return Ok(false);
    }
    d.as_bool().map_err(|t| {
        ScriptError::new(
            "runtime",
            format!("the condition must return true or false, not {t}"),
        )
    })
}
