//! The third-party connector example (`examples/rest-bridge-connector`, a WebAssembly component
//! built from `sdk/` and `wit/` only) against a mock bridge: it is registered as the platform
//! `rest-bridge`, tests the connection, syncs accounts, balances and paged positions, and pushes a
//! settled deposit exactly once even when the push runs again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::get;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::plugins::plugin;

#[derive(Default)]
struct Bridge {
    /// Idempotency key → operation id.
    operations: HashMap<String, String>,
    posts: usize,
}

type Shared = Arc<Mutex<Bridge>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("x-api-key").and_then(|v| v.to_str().ok()) == Some("bridge-key")
}

fn refused() -> (AxumStatus, Json<Value>) {
    (
        AxumStatus::UNAUTHORIZED,
        Json(json!({"error": "bad api key"})),
    )
}

fn position(id: &str, closed: bool) -> Value {
    json!({"id": id, "login": "1001", "symbol": "EURUSD", "side": "buy", "volume": "1.00",
           "openPrice": "1.08000", "closePrice": if closed { json!("1.08500") } else { Value::Null },
           "profit": "50.00", "commission": "-3.00", "swap": "-0.40",
           "openedAt": "2026-11-20T10:00:00Z", "closedAt": if closed { json!("2026-11-21T10:00:00Z") } else { Value::Null }})
}

async fn mock_bridge() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/ping",
            get(|h: HeaderMap| async move {
                if !authorized(&h) {
                    return refused();
                }
                (AxumStatus::OK, Json(json!({"server": "mock bridge 1.0"})))
            }),
        )
        .route(
            "/accounts",
            get(|h: HeaderMap| async move {
                if !authorized(&h) {
                    return refused();
                }
                (AxumStatus::OK, Json(json!({"accounts": [
                    {"login": "1001", "group": "real", "currency": "USD", "leverage": 100, "name": "A"},
                    {"login": "1002", "group": "real", "currency": "USD", "leverage": 100, "name": "B"}
                ], "next": null})))
            }),
        )
        .route(
            "/balances",
            get(|h: HeaderMap| async move {
                if !authorized(&h) {
                    return refused();
                }
                (AxumStatus::OK, Json(json!([{"login": "1001", "currency": "USD", "balance": "2500.00",
                    "credit": "0.00", "equity": "2546.60", "margin": "100.00", "freeMargin": "2446.60"}])))
            }),
        )
        .route(
            "/positions",
            get(|h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                if !authorized(&h) {
                    return refused();
                }
                let body = match (q.get("state").map(String::as_str), q.get("cursor")) {
                    // Open positions come in two pages.
                    (Some("open"), None) => json!({"positions": [position("501", false)], "next": "p2"}),
                    (Some("open"), Some(_)) => json!({"positions": [position("502", false)], "next": null}),
                    _ => json!({"positions": [position("400", true)], "next": null}),
                };
                (AxumStatus::OK, Json(body))
            }),
        )
        .route(
            "/operations",
            get(
                |State(s): State<Shared>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    if !authorized(&h) {
                        return refused();
                    }
                    let key = q.get("key").cloned().unwrap_or_default();
                    match s.lock().unwrap().operations.get(&key) {
                        Some(id) => (AxumStatus::OK, Json(json!({"id": id}))),
                        None => (AxumStatus::NOT_FOUND, Json(json!({"error": "no such operation"}))),
                    }
                },
            )
            .post(|State(s): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                if !authorized(&h) {
                    return refused();
                }
                let mut bridge = s.lock().unwrap();
                bridge.posts += 1;
                let id = format!("op{}", bridge.posts);
                let key = b["key"].as_str().unwrap_or_default().to_string();
                bridge.operations.insert(key, id.clone());
                (AxumStatus::OK, Json(json!({"id": id})))
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

#[tokio::test]
async fn a_third_party_wasm_connector_syncs_and_pushes_once() {
    use lumire_engine::integrations::pushes;
    let (url, bridge) = mock_bridge().await;
    let app = crate::plugin_host::spawn_http(true).await;
    let owner = app.register_owner().await;
    let (_, list) = owner.get("/v1/plugins").await;
    assert_eq!(plugin(&list, "rest-bridge")["world"], "platform-connector");

    let (_, t) = owner
        .post("/v1/traders", json!({"email": "bridged@client.example"}))
        .await;
    let trader = t["id"].as_str().unwrap();
    let (s, acc) = owner
        .post("/v1/accounts", json!({"traderId": trader, "platform": "rest-bridge", "accountNumber": "1001", "currency": "USD"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{acc}");
    let account_id = acc["id"].as_str().unwrap();
    let (s, c) = owner
        .post("/v1/integrations/configs", json!({"platform": "rest-bridge", "endpoint": url, "credentials": {"apiKey": "bridge-key"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");

    let (s, r) = owner
        .post("/v1/integrations/configs/rest-bridge/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["connector"]["kind"], "wasm");
    assert!(
        r["message"].as_str().unwrap().contains("mock bridge"),
        "{r}"
    );

    let (s, r) = owner.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let tally = &r["data"][0];
    assert_eq!(
        (
            tally["accounts"].as_i64(),
            tally["unmatched"].as_i64(),
            tally["positions"].as_i64()
        ),
        (Some(1), Some(1), Some(3)),
        "{r}"
    );
    let (_, a) = owner.get(&format!("/v1/accounts/{account_id}")).await;
    assert_eq!(
        (a["balance"].as_str(), a["equity"].as_str()),
        (Some("2500.00"), Some("2546.60")),
        "{a}"
    );
    let (_, p) = owner.get("/v1/integrations/positions?status=open").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2, "both pages: {p}");
    assert_eq!(p["data"][0]["swap"], "-0.40", "{p}");

    // A settled deposit reaches the bridge once, however often the push job runs.
    let (_, d) = owner
        .post("/v1/payments/deposits", json!({"traderId": trader, "accountId": account_id, "kind": "bank_wire", "amount": "100.00", "currency": "USD"}))
        .await;
    let id = d["id"].as_str().unwrap().to_string();
    owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    let (s, d) = owner
        .post(
            "/v1/payments/deposits/settle",
            json!({"id": id, "feeAmount": "0"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 0);
    let (_, q) = owner.get("/v1/integrations/pushes?status=pushed").await;
    assert_eq!(q["data"][0]["dealId"], "op1", "{q}");
    // A retry of a pushed operation is refused...
    let push_id = q["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = owner
        .post(
            &format!("/v1/integrations/pushes/{push_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // ...and if the engine lost the outcome (a crash after the bridge accepted it), the next
    // attempt finds the operation by its idempotency key instead of crediting again.
    sqlx::query(
        "UPDATE connector_pushes SET status = 'pending', deal_id = NULL, next_attempt_at = '2000-01-01T00:00:00.000Z' WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&owner.tenant_id)
    .bind(&push_id)
    .execute(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    assert_eq!(bridge.lock().unwrap().posts, 1);

    // Wrong credentials: the test says so and records it.
    owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "rest-bridge", "credentials": {"apiKey": "wrong"}}),
        )
        .await;
    let (_, r) = owner
        .post("/v1/integrations/configs/rest-bridge/test", json!({}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("unauthorized"),
        "{r}"
    );

    // Another tenant sees none of it.
    let stranger = app.register_owner().await;
    let (_, p) = stranger.get("/v1/integrations/positions").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 0);
}
