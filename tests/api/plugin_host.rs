//! The plugin host beyond the basics of tests/api/plugins.rs: a component built against the
//! frozen 0.1.0 world, core-records scoped to the calling tenant, scheduled jobs, a tenant's
//! plugin configuration and secrets, partner credentials, and plugin routes in OpenAPI.

use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::plugins::{enable, plugin, spawn, spawn_plugins_with, two_tenants_with};

#[tokio::test]
async fn a_component_built_against_0_1_0_still_loads_and_runs() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let (s, list) = owner.get("/v1/plugins").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let legacy = plugin(&list, "legacy-v0-1");
    assert_eq!(legacy["world"], "feature-plugin");
    assert_eq!(legacy["contract"], "lumire:plugin@0.1.0");
    assert_eq!(plugin(&list, "leads-intake")["world"], "feature-plugin");
    assert_eq!(
        plugin(&list, "leads-intake")["contract"],
        "lumire:plugin@0.3.0"
    );

    let (s, _) = owner.get("/v1/legacy/ping").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not enabled yet");
    enable(&owner, "legacy-v0-1").await;
    let (s, b) = owner.get("/v1/legacy/ping").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"world": "0.1.0", "stored": true, "read": true}));
}

#[tokio::test]
async fn a_component_built_against_0_2_0_still_loads_and_runs() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let (_, list) = owner.get("/v1/plugins").await;
    let legacy = plugin(&list, "legacy-v0-2");
    assert_eq!(legacy["world"], "feature-plugin");
    assert_eq!(legacy["contract"], "lumire:plugin@0.2.0");
    assert_eq!(legacy["version"], "0.2.0");
    let (_, trader) = owner
        .post("/v1/traders", json!({"email": "v2.reader@example.com"}))
        .await;
    let (s, _) = owner.get("/v1/legacy2/ping").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not enabled yet");
    enable(&owner, "legacy-v0-2").await;
    enable(&other, "legacy-v0-2").await;
    // Its 0.1.0 storage and 0.2.0 records imports are served by the 0.3.0 host.
    let (s, b) = owner
        .get("/v1/legacy2/ping?email=v2.reader@example.com")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"world": "0.2.0", "stored": true, "trader": trader["id"]})
    );
    let (s, b) = other
        .get("/v1/legacy2/ping?email=v2.reader@example.com")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["trader"],
        json!(null),
        "another tenant's trader is not found"
    );
}

#[tokio::test]
async fn core_records_never_reach_another_tenant() {
    let app = spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let (s, trader) = a
        .post("/v1/traders", json!({"email": "secret.whale@example.com"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{trader}");
    let id = trader["id"].as_str().unwrap();
    enable(&a, "test-hostile").await;
    enable(&b, "test-hostile").await;

    // Tenant B's plugin asks for tenant A's trader by id: the host scopes it to B.
    let (s, body) = b.get(&format!("/v1/hostile/peek?id={id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.to_string().contains("secret.whale"), "{body}");
    // Tenant A's own call reads it: the capability works, the scope is the difference.
    let (s, body) = a.get(&format!("/v1/hostile/peek?id={id}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["leaked"], "secret.whale@example.com");
}

/// A plugin reads an account's open positions and those closed since a time through core
/// records; another tenant's plugin asking for that account gets 404, never its positions.
#[tokio::test]
async fn a_plugin_reads_an_accounts_positions_and_never_another_tenants() {
    let app = spawn().await;
    let (a, b) = two_tenants_with(&app, "test-capabilities").await;
    let (s, trader) = a
        .post("/v1/traders", json!({"email": "positions@example.com"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{trader}");
    let (s, account) = a
        .post(
            "/v1/accounts",
            json!({"traderId": trader["id"], "platform": "mt5", "externalId": "srv1:7001",
                   "accountNumber": "7001", "currency": "USD", "balance": "100", "equity": "100",
                   "leverage": 100, "isDemo": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap();
    for (symbol, closed_at) in [
        ("EURUSD", None),
        ("XAUUSD", Some("2026-01-02T00:00:00.000Z")),
        ("GBPUSD", Some("2025-12-01T00:00:00.000Z")),
    ] {
        sqlx::query(
            "INSERT INTO positions (tenant_id, id, account_id, trader_id, symbol, side, volume, open_price, opened_at, closed_at)
             VALUES ($1, $2, $3, $4, $5, 'buy', '1.00', '1.0850', '2025-11-01T00:00:00.000Z', $6)",
        )
        .bind(&a.tenant_id)
        .bind(ulid::Ulid::new().to_string())
        .bind(account_id)
        .bind(trader["id"].as_str().unwrap())
        .bind(symbol)
        .bind(closed_at)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let path = format!("/v1/captest/positions?account={account_id}&since=2026-01-01T00:00:00.000Z");
    let (s, p) = a.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p, json!({"open": ["EURUSD"], "closed": ["XAUUSD"]}));
    let (s, p) = b.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    assert!(!p.to_string().contains("USD"), "{p}");
}

/// An owner of a tenant that enabled `test-hostile`, and one of its traders.
async fn hostile_owner_with_trader(app: &TestApp, email: &str) -> (Member, Value) {
    let owner = app.register_owner().await;
    enable(&owner, "test-hostile").await;
    let (s, trader) = owner.post("/v1/traders", json!({ "email": email })).await;
    assert_eq!(s, StatusCode::CREATED, "{trader}");
    (owner, trader)
}

/// Sends `busy` (a plugin call that computes), then after `delay_ms` a native read of `trader`,
/// which must be answered first; returns the plugin call's answer.
async fn native_read_answers_during(
    owner: &Member,
    busy: &str,
    trader: &Value,
    delay_ms: u64,
) -> (StatusCode, Value) {
    let id = trader["id"].as_str().unwrap();
    let plugin = owner.get(busy);
    tokio::pin!(plugin);
    let native = async {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        owner.get(&format!("/v1/traders/{id}")).await
    };
    tokio::select! {
        (s, b) = &mut plugin => panic!("the plugin call ended before the native read: {s} {b}"),
        (s, b) = native => {
            assert_eq!(s, StatusCode::OK, "{b}");
            assert_eq!(b["id"], trader["id"]);
        }
    }
    plugin.await
}

/// A call's reads keep the connection of its first read (its later reads and, on PostgreSQL, its
/// transaction use it), but a guest that then computes gives it back at the next deadline tick:
/// with a pool of one connection, a native read is served while the plugin is still computing.
/// On several worker threads, as the engine runs (the next test covers a runtime of one thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_computing_after_a_read_holds_no_connection() {
    let app = spawn_plugins_with(|s| {
        s.db_max_connections = 1;
        s.plugin_timeout_ms = 10_000;
    })
    .await;
    let (owner, trader) = hostile_owner_with_trader(&app, "one.connection@example.com").await;
    let id = trader["id"].as_str().unwrap();
    // 500 ms: long enough for the plugin to have read and started computing.
    let slow = format!("/v1/hostile/read-then-compute?id={id}&ms=3000");
    let (s, b) = native_read_answers_during(&owner, &slow, &trader, 500).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["found"], true, "{b}");
}

/// A guest that computes yields at every deadline tick through tokio's `yield_now`, which lets
/// the worker poll its I/O before the guest runs again: on a runtime of one thread, shared by the
/// engine, the looping guest and the client, a native request sent while the guest loops is
/// answered long before the guest's deadline (in about 70 ms, debug build). With a plain wake
/// (`UpdateDeadline::Yield`) tokio polled I/O there only every 61 scheduler ticks (0.6 s of 10 ms
/// slices), the native request took 2.4 s or more, and it lost to the 1.5 s deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_computing_plugin_leaves_other_requests_io_flowing_on_its_thread() {
    let app = spawn_plugins_with(|s| s.plugin_timeout_ms = 1_500).await;
    let (owner, trader) = hostile_owner_with_trader(&app, "same.thread@example.com").await;
    let (s, b) = native_read_answers_during(&owner, "/v1/hostile/loop", &trader, 200).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
}

/// Pool slots are reused call after call: reset in place (`plugin_keep_resident_kib`, the
/// default) or unmapped (0, wasmtime's copy-on-write images). Either way a call starts from the
/// component's initial memory: its zeroed statics are zero, its initialised ones hold their
/// initial value, whatever the previous calls (of either tenant) wrote there.
#[tokio::test]
async fn a_call_never_sees_what_an_earlier_call_left_in_memory() {
    for keep_resident_kib in [256, 0] {
        let app = spawn_plugins_with(|s| s.plugin_keep_resident_kib = keep_resident_kib).await;
        let a = app.register_owner().await;
        let b = app.register_owner().await;
        enable(&a, "test-hostile").await;
        enable(&b, "test-hostile").await;
        for n in 0..12 {
            let caller = if n % 3 == 0 { &b } else { &a };
            let (s, body) = caller.get("/v1/hostile/residue").await;
            assert_eq!(s, StatusCode::OK, "{body}");
            assert_eq!(
                body,
                json!({"calls": 0, "seed": 7, "dirtyBytes": 0}),
                "call {n} with {keep_resident_kib} KiB kept resident"
            );
        }
        // Calls at the same time take several slots; each starts clean too.
        let path = "/v1/hostile/residue";
        let (r1, r2, r3, r4) = tokio::join!(a.get(path), a.get(path), b.get(path), a.get(path));
        for (s, body) in [r1, r2, r3, r4] {
            assert_eq!(s, StatusCode::OK, "{body}");
            assert_eq!(body, json!({"calls": 0, "seed": 7, "dirtyBytes": 0}));
        }
    }
}

#[tokio::test]
async fn scheduled_jobs_run_once_per_interval_for_enabling_tenants_only() {
    let app = spawn().await;
    let on = app.register_owner().await;
    let off = app.register_owner().await;
    enable(&on, "legacy-v0-1").await;
    let runs = lumire_engine::plugins::jobs::run_once(&app.state)
        .await
        .expect("jobs");
    assert_eq!(runs, 1, "one enabled tenant, one job");
    // Not due again within the hour, whichever process asks.
    let again = lumire_engine::plugins::jobs::run_once(&app.state)
        .await
        .expect("jobs");
    assert_eq!(again, 0);
    let sql =
        "SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin = 'legacy-v0-1'";
    assert_eq!(app.count(sql, &on.tenant_id).await, 1);
    assert_eq!(app.count(sql, &off.tenant_id).await, 0);
    let finished = "SELECT COUNT(*) FROM plugin_job_runs WHERE tenant_id = $1 AND runs = 1 AND last_error IS NULL";
    assert_eq!(app.count(finished, &on.tenant_id).await, 1);
}

#[tokio::test]
async fn a_tenant_configures_a_plugin_and_its_secrets_stay_write_only() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;

    let (s, b) = owner
        .put(
            "/v1/plugins/leads-intake/config",
            json!({"config": {"defaultSource": "web"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["config"]["defaultSource"], "web");
    let (s, b) = owner
        .put(
            "/v1/plugins/leads-intake/secrets/crmToken",
            json!({"value": "tok_very_secret"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["secrets"], json!(["crmToken"]));
    let (s, b) = owner.get("/v1/plugins/leads-intake/config").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!b.to_string().contains("tok_very_secret"), "{b}");
    // Stored sealed, not in clear.
    let clear = app
        .count(
            "SELECT COUNT(*) FROM plugin_configs WHERE tenant_id = $1 AND secrets LIKE '%tok_very_secret%'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(clear, 0);
    // Another tenant has its own (empty) configuration.
    let (s, b) = other.get("/v1/plugins/leads-intake/config").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["config"], json!({}));
    assert_eq!(b["secrets"], json!([]));

    let (s, b) = owner
        .put("/v1/plugins/leads-intake/config", json!({"config": [1]}))
        .await;
    assert_field_error(s, &b, "config");
    let (s, b) = owner
        .put(
            "/v1/plugins/leads-intake/secrets/bad%20key",
            json!({"value": "x"}),
        )
        .await;
    assert_field_error(s, &b, "key");
    let (s, _) = owner.get("/v1/plugins/no-such-plugin/config").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = sales.get("/v1/plugins/leads-intake/config").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.anonymous().get("/v1/plugins/leads-intake/config").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, _) = owner
        .delete("/v1/plugins/leads-intake/secrets/crmToken")
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = owner
        .delete("/v1/plugins/leads-intake/secrets/crmToken")
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn partner_credentials_are_issued_listed_and_revoked() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;
    let (s, issued) = owner
        .post("/v1/partner-credentials", json!({"name": "Acme Leads"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let id = issued["id"].as_str().unwrap().to_string();
    assert!(issued["password"].as_str().unwrap().len() >= 32);
    assert_eq!(issued["username"], format!("{}.{}", owner.tenant_id, id));
    let (s, list) = owner.get("/v1/partner-credentials").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"][0]["id"], id);
    assert!(list["data"][0].get("password").is_none(), "{list}");

    let (s, b) = owner.post("/v1/partner-credentials", json!({})).await;
    assert_field_error(s, &b, "name");
    let (s, _) = sales.get("/v1/partner-credentials").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.anonymous().get("/v1/partner-credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = other
        .post(&format!("/v1/partner-credentials/{id}/revoke"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's credential");

    let (s, b) = owner
        .post(&format!("/v1/partner-credentials/{id}/revoke"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["revokedAt"].is_string());
    let (s, b) = owner
        .post(&format!("/v1/partner-credentials/{id}/revoke"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "already_revoked");
}

#[tokio::test]
async fn plugin_routes_are_in_the_openapi_document() {
    let app = spawn().await;
    let (s, doc) = app.anonymous().get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let op = &doc["paths"]["/v1/leads"]["post"];
    assert_eq!(op["tags"], json!(["leads"]), "{op}");
    assert!(op["description"].as_str().unwrap().contains("leads-intake"));
    assert!(doc["paths"]["/v1/legacy/ping"]["get"].is_object());
}

/// A test app whose plugins may reach loopback addresses (`allow_private`) or not.
pub(crate) async fn spawn_http(allow_private: bool) -> lumire_tests::TestApp {
    spawn_plugins_with(|s| {
        s.plugin_timeout_ms = 3000;
        s.plugin_http_allow_private = allow_private;
    })
    .await
}

#[tokio::test]
async fn ledger_posts_are_balanced_idempotent_and_atomic_with_storage() {
    let app = spawn().await;
    let (owner, other) = two_tenants_with(&app, "test-capabilities").await;
    let (_, trader) = owner
        .post("/v1/traders", json!({"email": "pool.member@example.com"}))
        .await;
    let tid = trader["id"].as_str().unwrap();

    // From the plugin's pool to the trader: +50 on the wallet.
    let (s, first) = owner
        .post(
            "/v1/captest/transfer",
            json!({"traderId": tid, "amount": "-50.00", "key": "payout-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["transfers"], 1);
    // The same key again moves nothing and answers the first entry.
    let (s, again) = owner
        .post(
            "/v1/captest/transfer",
            json!({"traderId": tid, "amount": "-50.00", "key": "payout-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["entryId"], first["entryId"]);
    let (_, b) = owner
        .get(&format!("/v1/payments/traders/{tid}/balances"))
        .await;
    assert!(b.to_string().contains("50"), "{b}");
    let (_, wallet) = owner
        .get(&format!("/v1/captest/balance?trader={tid}"))
        .await;
    assert_eq!(wallet["balance"], "50.00");

    // More than the wallet holds: refused, and the storage write of the same call is undone.
    let (s, b) = owner
        .post(
            "/v1/captest/transfer",
            json!({"traderId": tid, "amount": "80.00", "key": "fee-1"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "insufficient_funds");
    let docs = "SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin = 'test-capabilities'";
    assert_eq!(app.count(docs, &owner.tenant_id).await, 1);
    let (_, pool) = owner.get("/v1/captest/balance").await;
    assert_eq!(pool["balance"], "-50.00");

    // Another tenant's trader does not exist for this tenant's plugin.
    let (s, b) = other
        .post(
            "/v1/captest/transfer",
            json!({"traderId": tid, "amount": "-1.00", "key": "x"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST, "invalid_entry");
    // Every posting is a balanced ledger entry of this tenant.
    let sums = "SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND kind = 'plugin:test-capabilities:transfer'";
    assert_eq!(app.count(sums, &owner.tenant_id).await, 1);
    assert_eq!(app.count(sums, &other.tenant_id).await, 0);
}

#[tokio::test]
async fn files_are_kept_under_the_tenant_and_plugin() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let resp = owner
        .raw_request(reqwest::Method::POST, "/v1/captest/files")
        .header("content-type", "text/plain")
        .body("hello plugin")
        .send()
        .await
        .unwrap();
    let s = resp.status();
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["roundTrip"], true);
    assert_eq!(b["size"], 12);
    let key = b["key"].as_str().unwrap();
    assert!(key.ends_with("note.txt") && !key.contains('/'), "{key}");
}

#[tokio::test]
async fn outbound_http_reaches_only_allowed_hosts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi there" }));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let open = spawn_http(true).await;
    let owner = open.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let (s, b) = owner
        .get(&format!(
            "/v1/captest/fetch?url=http://127.0.0.1:{port}/hello"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["body"], "hi there");
    // A host the manifest does not list.
    let (s, b) = owner
        .get(&format!(
            "/v1/captest/fetch?url=http://localhost:{port}/hello"
        ))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "http_denied");

    // Without the operator's permission, loopback stays out of reach even when listed.
    let guarded = spawn_http(false).await;
    let owner = guarded.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let (s, b) = owner
        .get(&format!(
            "/v1/captest/fetch?url=http://127.0.0.1:{port}/hello"
        ))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "http_denied");
}

/// `plugin_perfmap` makes wasmtime name the compiled guest functions in `/tmp/perf-<pid>.map`,
/// where `perf` looks for them; a plugin served with it on answers as usual.
#[tokio::test]
async fn a_perf_map_names_the_guest_code_when_asked_for() {
    let app = spawn_plugins_with(|s| s.plugin_perfmap = true).await;
    let owner = app.register_owner().await;
    enable(&owner, "test-hostile").await;
    let (s, body) = owner.get("/v1/hostile/ok").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let map = std::env::temp_dir().join(format!("perf-{}.map", std::process::id()));
    let text = std::fs::read_to_string(&map).expect("the perf map is written");
    let _ = std::fs::remove_file(&map);
    // `<start> <size> <name>` per function, start and size in hex, as perf reads it.
    let line = text
        .lines()
        .find(|l| l.contains("wasm["))
        .expect("a guest function in the map");
    let mut parts = line.splitn(3, ' ');
    for _ in 0..2 {
        let hex = parts.next().expect("address and size");
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        assert!(u64::from_str_radix(hex, 16).is_ok(), "{line}");
    }
}
