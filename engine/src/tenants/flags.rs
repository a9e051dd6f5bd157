//! A tenant's feature flags (which features and plugins it has on): the rules for changing them,
//! shared by the tenant's own admins (`PATCH /v1/tenants/current`) and the installation's
//! operators (`POST /v1/platform/tenants/{id}/feature-flags`).

use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::http::validate::Validator;

/// Most flags a tenant holds.
pub const MAX_FLAGS: usize = 200;

/// Merges `changes` into `current` one level deep: a key set to `null` is removed.
pub fn merge(current: &Value, changes: &Map<String, Value>) -> Map<String, Value> {
    let mut out = current.as_object().cloned().unwrap_or_default();
    for (k, v) in changes {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn valid_name(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// Checks a change of flags: names of 1-64 letters, digits, `_`, `-` or `.`, each set to a
/// boolean or `null` (to remove it). Failures are named `<prefix><flag>`.
pub fn check(v: &mut Validator, prefix: &str, changes: &Map<String, Value>) {
    for (k, val) in changes {
        if !valid_name(k) {
            v.fail(
                &format!("{prefix}{k}"),
                "flag names are 1-64 letters, digits, '_', '-' or '.'",
            );
        } else if !(val.is_boolean() || val.is_null()) {
            v.fail(
                &format!("{prefix}{k}"),
                "must be true, false or null (to remove it)",
            );
        }
    }
}

/// The flags after `changes`, refused (400 naming `field`) past [`MAX_FLAGS`].
pub fn apply(
    current: &Value,
    changes: &Map<String, Value>,
    field: &str,
) -> Result<Value, ApiError> {
    let flags = merge(current, changes);
    if flags.len() > MAX_FLAGS {
        return Err(ApiError::field(field, format!("at most {MAX_FLAGS} flags")));
    }
    Ok(Value::Object(flags))
}
