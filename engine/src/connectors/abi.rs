//! The C ABI of trusted native connectors, version [`ABI_VERSION`].
//!
//! A native connector is a shared library (`.so`, `.dylib`, `.dll`) that wraps a vendor's own
//! library (the MT5 Manager API is the usual one). It runs inside the engine process with full
//! trust: only the operator installs one, by placing it in `LUMIRE_NATIVE_CONNECTORS_DIR`.
//! Everything else (third-party code, tenant-enabled features) is a WebAssembly plugin.
//!
//! The library exports three C functions:
//!
//! ```c
//! uint32_t lumire_connector_abi_version(void);
//! char *lumire_connector_call(const char *op, const char *request_json);
//! void lumire_connector_free(char *response);
//! ```
//!
//! The engine reads `lumire_connector_abi_version` first and calls nothing else when it differs
//! from the version it speaks. `lumire_connector_call` takes an operation name and a UTF-8 JSON
//! request, and returns a UTF-8 JSON response that the library allocated and that the engine
//! hands back to `lumire_connector_free`. The operations are those of the `connector` interface
//! of the `platform-connector` WIT world, with the same arguments and results in JSON (record
//! fields in camelCase): `describe` → `{platform, name, version}`; `test-connection` → a
//! message; `list-accounts {cursor, limit}` → `{accounts, nextCursor}`; `get-balances {logins}`;
//! `list-open-positions {logins}`; `list-closed-positions {logins, since}`;
//! `push-balance-operation {op: {login, amount, comment, idempotencyKey}}` → the platform's deal
//! id. Every request also carries `{"config": {"endpoint", "credentials"}}` and `"tenant"` (the
//! tenant's id: a library that keeps platform sessions between calls keys them by tenant and
//! configuration, so two tenants on one server never share a session); a response is
//! `{"ok": <value>}` or `{"error": {"code": "unauthorized" | "unavailable" | "rejected" |
//! "not-found", "message": "..."}}`. A connector must be safe to call from several threads at
//! once.

/// The ABI version this engine speaks.
pub const ABI_VERSION: u32 = 1;

pub const SYM_VERSION: &[u8] = b"lumire_connector_abi_version";
pub const SYM_CALL: &[u8] = b"lumire_connector_call";
pub const SYM_FREE: &[u8] = b"lumire_connector_free";

pub type VersionFn = unsafe extern "C" fn() -> u32;
pub type CallFn = unsafe extern "C" fn(
    op: *const std::ffi::c_char,
    request: *const std::ffi::c_char,
) -> *mut std::ffi::c_char;
pub type FreeFn = unsafe extern "C" fn(response: *mut std::ffi::c_char);
