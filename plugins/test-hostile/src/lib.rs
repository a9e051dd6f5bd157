//! A plugin that misbehaves on purpose, so the tests can check the engine contains it: an
//! endless loop, a trap, a memory grower, an oversized response, a broken response and a call
//! to a capability it did not ask for (storage, ledger, outbound HTTP, and the same as steps of a
//! `transaction` commit), and an attempt to read
//! another tenant's trader through core-records. `GET /v1/hostile/ok` behaves;
//! `GET /v1/hostile/hostcalls?n=N` makes N cheap host calls (the benchmark's host-call cost);
//! `GET /v1/hostile/read-then-compute?id=&ms=` reads a trader, then computes, calling nothing but
//! the clock (the connection its read took must not stay held meanwhile);
//! `GET /v1/hostile/residue` reports what an earlier call left in its statics (never anything:
//! every call gets a fresh instance, whether its pool slot was reset in place or unmapped).

use lumire_plugin_sdk::transaction::{Error as TxError, Expect, Transaction};
use lumire_plugin_sdk::{self as sdk, Plugin, Problem, Request, Response, manifest};
use serde_json::json;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

struct Hostile;

/// Zero-initialised (`.bss`): counts the calls this instance served.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Initialised from the data segment: 7 in a fresh instance.
static SEED: AtomicU64 = AtomicU64::new(7);
/// Zero-initialised scratch memory each call dirties.
static SCRATCH: [AtomicU8; 8192] = [const { AtomicU8::new(0) }; 8192];

const ANY: &[&str] = &[];

impl Plugin for Hostile {
    fn manifest() -> sdk::Manifest {
        manifest("test-hostile", env!("CARGO_PKG_VERSION"))
            .description("Misbehaves on purpose (engine tests only).")
            .route("GET", "/v1/hostile/ok", ANY, "Behaves")
            .route("GET", "/v1/hostile/loop", ANY, "Loops forever")
            .route("GET", "/v1/hostile/trap", ANY, "Traps")
            .route("GET", "/v1/hostile/grow", ANY, "Grows memory without bound")
            .route(
                "GET",
                "/v1/hostile/big",
                ANY,
                "Answers a body larger than allowed",
            )
            .route(
                "GET",
                "/v1/hostile/broken",
                ANY,
                "Answers an invalid status",
            )
            .route(
                "GET",
                "/v1/hostile/denied",
                ANY,
                "Calls storage without the capability",
            )
            .route(
                "GET",
                "/v1/hostile/peek",
                ANY,
                "Reads the trader ?id= through core-records (another tenant's: not found)",
            )
            .route(
                "GET",
                "/v1/hostile/residue",
                ANY,
                "Reports what earlier calls left in its statics, then leaves some",
            )
            .route(
                "GET",
                "/v1/hostile/hostcalls",
                ANY,
                "Makes ?n= host calls and answers",
            )
            .route(
                "GET",
                "/v1/hostile/read-then-compute",
                ANY,
                "Reads the trader ?id= through core-records, then computes for ?ms= milliseconds",
            )
            .capability(sdk::Capability::CoreRecords)
            .event("lead.*")
            .build()
    }

    fn handle(req: Request) -> Result<Response, Problem> {
        match req.route() {
            "/v1/hostile/ok" => Ok(Response::json(200, &json!({"ok": true}))),
            "/v1/hostile/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/v1/hostile/trap" => {
                // panic = "abort": the panic becomes a wasm trap.
                let v: Vec<u8> = std::hint::black_box(Vec::new());
                let i = std::hint::black_box(1usize);
                Ok(Response::json(200, &json!({"never": v[i]})))
            }
            "/v1/hostile/grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "/v1/hostile/big" => Ok(Response {
                status: 200,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: vec![b'x'; 20 << 20],
            }),
            "/v1/hostile/broken" => Ok(Response {
                status: 42,
                headers: Vec::new(),
                body: Vec::new(),
            }),
            "/v1/hostile/denied" => {
                let r = sdk::storage::put("secrets", "x", &json!({"stolen": true}));
                let ledger = sdk::ledger::Entry::new("steal", "steal", "k1")
                    .line(sdk::ledger::Account::House("cash".into()), "USD", "-100")
                    .line(sdk::ledger::Account::Plugin("loot".into()), "USD", "100")
                    .post();
                let http = sdk::http_client::request("GET", "https://example.com/").send();
                let files = sdk::files::put("x.txt", "text/plain", b"x");
                // The same through a 0.3.0 commit: each step needs its own capability.
                let write = Transaction::new()
                    .put("secrets", "y", &json!({"stolen": true}), Expect::Any)
                    .commit();
                let post = Transaction::new()
                    .post(
                        sdk::ledger::Entry::new("steal", "steal", "k2")
                            .line(sdk::ledger::Account::House("cash".into()), "USD", "-1")
                            .line(sdk::ledger::Account::Plugin("loot".into()), "USD", "1"),
                    )
                    .commit();
                let read = sdk::transaction::get::<serde_json::Value>("secrets", "x");
                let denied =
                    |r: &Result<_, TxError>| matches!(r, Err(TxError::Denied(f)) if f.step == 0);
                Ok(Response::json(
                    200,
                    &json!({
                        "denied": matches!(r, Err(sdk::storage::Error::Denied)),
                        "ledgerDenied": matches!(ledger, Err(sdk::ledger::Error::Denied)),
                        "httpDenied": matches!(http, Err(sdk::http_client::Error::Denied(_))),
                        "filesDenied": matches!(files, Err(sdk::files::Error::Denied)),
                        "commitWriteDenied": denied(&write.map(|_| ())),
                        "commitPostDenied": denied(&post.map(|_| ())),
                        "versionedGetDenied": denied(&read.map(|_| ())),
                    }),
                ))
            }
            "/v1/hostile/peek" => {
                let id = req.query("id").unwrap_or_default();
                match sdk::records::trader(id) {
                    Ok(t) => Ok(Response::json(200, &json!({"leaked": t.email}))),
                    Err(sdk::records::Error::NotFound) => Err(Problem::not_found("trader")),
                    Err(e) => Err(Problem::new(500, "records_failed", &format!("{e:?}"))),
                }
            }
            "/v1/hostile/residue" => {
                let calls = CALLS.fetch_add(1, Ordering::Relaxed);
                let seed = SEED.swap(99, Ordering::Relaxed);
                let dirty = SCRATCH
                    .iter()
                    .filter(|b| b.load(Ordering::Relaxed) != 0)
                    .count();
                for b in &SCRATCH {
                    b.store(0xAB, Ordering::Relaxed);
                }
                Ok(Response::json(
                    200,
                    &json!({"calls": calls, "seed": seed, "dirtyBytes": dirty}),
                ))
            }
            "/v1/hostile/hostcalls" => {
                let n: u32 = req.query("n").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut last = String::new();
                for _ in 0..n.min(100_000) {
                    last = sdk::storage::new_id("x");
                }
                Ok(Response::json(200, &json!({"calls": n, "last": last})))
            }
            "/v1/hostile/read-then-compute" => {
                let id = req.query("id").unwrap_or_default();
                let found = sdk::records::trader(id).is_ok();
                let ms: u64 = req.query("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
                let until =
                    std::time::Instant::now() + std::time::Duration::from_millis(ms.min(10_000));
                let mut n: u64 = 0;
                while std::time::Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                Ok(Response::json(200, &json!({"found": found, "spins": n})))
            }
            _ => Err(Problem::not_found("route")),
        }
    }

    /// Loops on every event it gets: its deliveries must fail alone.
    fn on_event(_event: sdk::Event) -> Result<(), String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

sdk::export_plugin!(Hostile);
