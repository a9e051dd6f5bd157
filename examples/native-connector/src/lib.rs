//! A trusted native connector for a demo server of an in-house platform (`other`), written against the engine's C ABI version 1
//! (see `engine/src/connectors/abi.rs`). A real one wraps a vendor's native library; this one
//! answers from fixed data so the engine's loader, ABI check and calls can be tested.

use std::ffi::{CStr, CString, c_char};

use serde_json::{Value, json};

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
        return into_c(error("bad_call", "null argument"));
    }
    // SAFETY: the caller passes valid NUL-terminated strings (checked non-null above).
    let (op, request) = unsafe { (CStr::from_ptr(op), CStr::from_ptr(request)) };
    let request: Value = match request
        .to_str()
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
    {
        Some(v) => v,
        None => return into_c(error("bad_request", "request is not JSON")),
    };
    into_c(handle(op.to_str().unwrap_or_default(), &request))
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
    CString::new(v.to_string())
        .map(CString::into_raw)
        .unwrap_or(std::ptr::null_mut())
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

fn handle(op: &str, req: &Value) -> Value {
    let password = req["config"]["credentials"]["password"].as_str();
    if op != "describe" && password != Some("demo") {
        return error(
            "invalid_credentials",
            "the demo server refuses these credentials",
        );
    }
    match op {
        "describe" => {
            json!({"ok": {"platform": "other", "name": "Demo native connector", "version": env!("CARGO_PKG_VERSION")}})
        }
        "test-connection" => {
            json!({"ok": {"message": "connected to the demo server", "serverVersion": "demo-1"}})
        }
        "list-accounts" => json!({"ok": [
            {"login": "1001", "currency": "USD", "group": "demo\\standard", "leverage": 100},
            {"login": "1002", "currency": "EUR", "group": "demo\\pro", "leverage": 200}
        ]}),
        "get-balances" => {
            let login = req["login"].as_str().unwrap_or_default();
            json!({"ok": {"login": login, "balance": "1000.00", "credit": "0.00", "equity": "1012.50", "margin": "20.00"}})
        }
        "list-positions" => json!({"ok": [
            {"id": "5001", "login": req["login"], "symbol": "EURUSD", "side": "buy", "volume": "1.00",
             "openPrice": "1.08500", "currentPrice": "1.08625", "profit": "12.50", "commission": "-3.50",
             "swap": "0.00", "openedAt": "2026-11-20T10:00:00.000Z", "closedAt": null}
        ]}),
        "push-balance-operation" => {
            // The comment identifies the operation: the same comment is the same deal.
            let comment = req["comment"].as_str().unwrap_or_default();
            let id = comment
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            json!({"ok": {"dealId": id.to_string(), "duplicate": false}})
        }
        other => error(
            "unknown_operation",
            &format!("{other} is not an operation of ABI 1"),
        ),
    }
}
