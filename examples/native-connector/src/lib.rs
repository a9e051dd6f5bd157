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

/// A number from the credentials (the demo server's size, for benchmarks), or `default`.
fn count(req: &Value, key: &str, default: u64) -> u64 {
    req["config"]["credentials"][key]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The two fixed demo accounts, or, when the credentials ask for `accounts: N`, logins
/// 1000000..1000000+N paged by `cursor` (an offset) and `limit`.
fn list_accounts(req: &Value) -> Value {
    let n = count(req, "accounts", 0);
    if n == 0 {
        return json!({"ok": {"accounts": [
            {"login": "1001", "currency": "USD", "group": "demo\\standard", "leverage": 100, "name": "Demo one"},
            {"login": "1002", "currency": "EUR", "group": "demo\\pro", "leverage": 200, "name": "Demo two"}
        ], "nextCursor": null}});
    }
    let from: u64 = req["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit = req["limit"].as_u64().unwrap_or(500).max(1);
    let to = (from + limit).min(n);
    let accounts: Vec<Value> = (from..to)
        .map(|i| json!({"login": (1_000_000 + i).to_string(), "currency": "USD", "group": "demo\\bench", "leverage": 100, "name": "Bench"}))
        .collect();
    let next = (to < n).then(|| to.to_string());
    json!({"ok": {"accounts": accounts, "nextCursor": next}})
}

fn position(id: &str, login: &Value, closed: bool) -> Value {
    json!({"id": id, "login": login, "symbol": "EURUSD", "side": "buy", "volume": "1.00",
           "openPrice": "1.08500", "closePrice": if closed { json!("1.08700") } else { Value::Null },
           "currentPrice": "1.08625", "profit": if closed { "20.00" } else { "12.50" },
           "commission": "-3.50", "swap": "0.00", "openedAt": "2026-11-20T10:00:00.000Z",
           "closedAt": if closed { json!("2026-11-21T10:00:00.000Z") } else { Value::Null }})
}

fn handle(op: &str, req: &Value) -> Value {
    let password = req["config"]["credentials"]["password"].as_str();
    if op != "describe" && password != Some("demo") {
        return error("unauthorized", "the demo server refuses these credentials");
    }
    let logins: Vec<Value> = req["logins"].as_array().cloned().unwrap_or_default();
    match op {
        "describe" => {
            json!({"ok": {"platform": "other", "name": "Demo native connector", "version": env!("CARGO_PKG_VERSION")}})
        }
        "test-connection" => json!({"ok": "connected to the demo server"}),
        "list-accounts" => list_accounts(req),
        "get-balances" => json!({"ok": logins.iter().map(|l| json!({
            "login": l, "currency": "USD", "balance": "1000.00", "equity": "1012.50", "margin": "20.00", "freeMargin": "992.50"
        })).collect::<Vec<_>>()}),
        "list-open-positions" => {
            // Position ids are unique on the platform: the login and a counter.
            let per = count(req, "positions", 1);
            let mut out = Vec::new();
            for l in &logins {
                let login = l.as_str().unwrap_or_default();
                for k in 0..per {
                    out.push(position(&format!("{login}5{k:03}"), l, false));
                }
            }
            json!({"ok": out})
        }
        // The benchmark's large demo server has no history; the small one has one closed trade.
        "list-closed-positions" if count(req, "accounts", 0) > 0 => json!({"ok": []}),
        "list-closed-positions" => json!({"ok": logins
            .iter()
            .map(|l| position(&format!("{}4000", l.as_str().unwrap_or_default()), l, true))
            .collect::<Vec<_>>()}),
        "push-balance-operation" => {
            // The idempotency key identifies the operation: the same key is the same deal.
            let key = req["op"]["idempotencyKey"].as_str().unwrap_or_default();
            let id = key
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            json!({"ok": id.to_string()})
        }
        other => error("rejected", &format!("{other} is not an operation of ABI 1")),
    }
}
