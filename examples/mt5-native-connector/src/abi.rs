//! The C functions the engine calls (ABI version 1): a UTF-8 JSON request in, a UTF-8 JSON
//! response out (`{"ok": ...}` or `{"error": {"code", "message"}}`), freed by the engine
//! through [`lumire_connector_free`]. A panic never crosses the boundary: it becomes an error.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Value, json};

use crate::ops;

const ABI_VERSION: u32 = 1;

#[unsafe(no_mangle)]
pub extern "C" fn lumire_connector_abi_version() -> u32 {
    ABI_VERSION
}

/// # Safety
/// `op` and `request` must be NUL-terminated strings valid for the duration of the call; the
/// result must be released with [`lumire_connector_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lumire_connector_call(
    op: *const c_char,
    request: *const c_char,
) -> *mut c_char {
    if op.is_null() || request.is_null() {
        return into_c(error("rejected", "null argument"));
    }
    // SAFETY: the caller passes valid NUL-terminated strings (checked non-null above).
    let (op, request) = unsafe { (CStr::from_ptr(op), CStr::from_ptr(request)) };
    let (Ok(op), Some(request)) = (
        op.to_str(),
        request
            .to_str()
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(s).ok()),
    ) else {
        return into_c(error(
            "rejected",
            "the operation or request is not UTF-8 JSON",
        ));
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| ops::handle(op, &request)));
    into_c(match outcome {
        Ok(Ok(v)) => json!({"ok": v}),
        Ok(Err((code, message))) => error(code, &message),
        Err(_) => error("unavailable", &format!("the MT5 connector failed in {op}")),
    })
}

/// # Safety
/// `response` must come from [`lumire_connector_call`] and be freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lumire_connector_free(response: *mut c_char) {
    if !response.is_null() {
        // SAFETY: the pointer was produced by `CString::into_raw` in `into_c`.
        drop(unsafe { CString::from_raw(response) });
    }
}

fn into_c(v: Value) -> *mut c_char {
    // serde_json escapes control characters, so the text holds no NUL.
    CString::new(v.to_string())
        .map(CString::into_raw)
        .unwrap_or(std::ptr::null_mut())
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}
