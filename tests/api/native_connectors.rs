//! Trusted native connectors loaded through libloading: the ABI check, the registry, and the
//! integrations `test` operation calling a connector.

use std::path::PathBuf;

use lumire_engine::connectors::Registry;
use lumire_tests::{TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

/// The directory cargo put the workspace's shared libraries in (beside `deps/`, where this test
/// binary runs from). `scripts/test` builds them before the tests.
fn built_library(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let path = dir.join(&file);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {crate_name}`",
        path.display()
    );
    path
}

pub(crate) fn connectors_dir(libs: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lumire-connectors-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    for lib in libs {
        let src = built_library(lib);
        std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_abi_version_is_checked_before_anything_is_called() {
    let dir = connectors_dir(&[
        "lumire-native-connector-example",
        "lumire-test-connector-abi-mismatch",
    ]);
    let reg = Registry::load_dir(&dir);
    assert_eq!(reg.platforms(), vec!["other".to_string()]);
    assert_eq!(reg.rejected.len(), 1, "{:?}", reg.rejected);
    let reason = &reg.rejected[0].reason;
    assert!(
        reason.contains("ABI version 99") && reason.contains("version 1"),
        "{reason}"
    );
    let demo = reg.for_platform("other").unwrap();
    assert_eq!(demo.name(), "Demo native connector");
    assert_eq!(demo.kind(), "native");
    let config = json!({"credentials": {"password": "demo"}});
    let mut session = demo.session("tenant", &config);
    let accounts = session
        .call("list-accounts", json!({"config": config}))
        .await
        .unwrap();
    assert_eq!(accounts["accounts"][0]["login"], "1001");
    let err = session
        .call("no-such-op", json!({"config": config}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn integration_test_calls_the_platform_connector() {
    let dir = connectors_dir(&["lumire-native-connector-example"]);
    let d = dir.clone();
    let app = TestApp::spawn_with(move |s| s.native_connectors_dir = Some(d)).await;
    let owner = app.register_owner().await;
    let (s, _) = owner
        .post("/v1/integrations/configs", json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"login": "1", "password": "demo"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, r) = owner
        .post("/v1/integrations/configs/other/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["ok"].as_bool(), r["connector"]["kind"].as_str()),
        (Some(true), Some("native")),
        "{r}"
    );
    // Wrong credentials: the test runs and reports the connector's refusal.
    owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "other", "credentials": {"login": "1", "password": "wrong"}}),
        )
        .await;
    let (s, r) = owner
        .post("/v1/integrations/configs/other/test", json!({}))
        .await;
    assert_eq!((s, r["ok"].as_bool()), (StatusCode::OK, Some(false)), "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("unauthorized"),
        "{r}"
    );
    let (_, l) = owner.get("/v1/integrations/configs").await;
    assert_eq!(
        (
            l["data"][0]["lastTestOk"].as_bool(),
            l["data"][0]["lastTestError"].is_string()
        ),
        (Some(false), true),
        "{l}"
    );
    // A platform without an installed connector, a platform without a config.
    owner
        .post("/v1/integrations/configs", json!({"platform": "mt5", "endpoint": "https://mt5.example", "credentials": {"login": "1", "password": "x"}}))
        .await;
    let (s, b) = owner
        .post("/v1/integrations/configs/mt5/test", json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "connector_not_installed");
    let (s, _) = owner
        .post("/v1/integrations/configs/ctrader/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Roles and tenants.
    let (s, _) = owner
        .anonymous()
        .post("/v1/integrations/configs/other/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, _) = dealer
        .post("/v1/integrations/configs/other/test", json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let other = app.register_owner().await;
    let (s, _) = other
        .post("/v1/integrations/configs/other/test", json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's config is not reachable"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sync_brings_balances_and_positions_from_the_connector() {
    let dir = connectors_dir(&["lumire-native-connector-example"]);
    let d = dir.clone();
    let app = TestApp::spawn_with(move |s| s.native_connectors_dir = Some(d)).await;
    let owner = app.register_owner().await;
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "synced@client.example"}))
        .await;
    let (s, acc) = owner
        .post("/v1/accounts", json!({"traderId": t["id"], "platform": "other", "accountNumber": "1001", "currency": "USD"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{acc}");
    let account_id = acc["id"].as_str().unwrap();
    owner
        .post("/v1/integrations/configs", json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"login": "1", "password": "demo"}}))
        .await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let other = &r["data"][0];
    assert_eq!(
        (
            other["accounts"].as_i64(),
            other["unmatched"].as_i64(),
            other["positions"].as_i64(),
            other["updatedAccounts"].as_i64()
        ),
        (Some(1), Some(1), Some(2), Some(1)),
        "{r}"
    );
    let (_, a) = owner.get(&format!("/v1/accounts/{account_id}")).await;
    assert_eq!(
        (a["balance"].as_str(), a["equity"].as_str()),
        (Some("1000.00"), Some("1012.50")),
        "{a}"
    );
    let (_, p) = owner.get("/v1/integrations/positions?status=open").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        (
            p["data"][0]["accountId"].as_str(),
            p["data"][0]["commission"].as_str(),
            p["data"][0]["externalId"].as_str()
        ),
        (Some(account_id), Some("-3.50"), Some("10015000"))
    );
    let (_, p) = owner.get("/v1/integrations/positions?status=closed").await;
    assert_eq!(
        (
            p["data"][0]["closePrice"].as_str(),
            p["data"][0]["profit"].as_str()
        ),
        (Some("1.08700"), Some("20.00")),
        "{p}"
    );
    // Again: the position is updated in place, the unchanged account is left alone.
    let (_, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["updatedAccounts"], 0, "{r}");
    let (_, p) = owner.get("/v1/integrations/positions").await;
    assert_eq!(
        p["data"].as_array().unwrap().len(),
        2,
        "updated, not duplicated"
    );
    let (_, l) = owner.get("/v1/integrations/configs").await;
    assert!(l["data"][0]["lastSyncAt"].is_string(), "{l}");
    // Roles, and a tenant whose connector is missing is told so.
    let sales = app.member(&owner, &["sales"]).await;
    let (s, _) = sales.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = owner
        .anonymous()
        .post("/v1/integrations/sync", json!({}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let stranger = app.register_owner().await;
    stranger
        .post("/v1/integrations/configs", json!({"platform": "mt5", "endpoint": "https://mt5.example", "credentials": {"password": "x"}}))
        .await;
    let (_, r) = stranger.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["skipped"], "connector_not_installed", "{r}");
    let (_, p) = stranger.get("/v1/integrations/positions").await;
    assert_eq!(
        p["data"].as_array().unwrap().len(),
        0,
        "no data crosses tenants"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The scheduled sync: due configurations are claimed with a lease, so two processes running
/// the job at once sync each configuration once; a fresh one is not due again.
#[tokio::test]
async fn scheduled_sync_runs_each_configuration_once_per_interval() {
    let dir = connectors_dir(&["lumire-native-connector-example"]);
    let d = dir.clone();
    let app = TestApp::spawn_with(move |s| s.native_connectors_dir = Some(d)).await;
    let mut owners = Vec::new();
    for _ in 0..3 {
        let owner = app.register_owner().await;
        owner
            .post("/v1/integrations/configs", json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"password": "demo"}}))
            .await;
        owners.push(owner);
    }
    let (a, b) = tokio::join!(
        lumire_engine::integrations::sync::run_scheduled(&app.state, 300),
        lumire_engine::integrations::sync::run_scheduled(&app.state, 300),
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        3,
        "each configuration synced exactly once"
    );
    for owner in &owners {
        let (_, l) = owner.get("/v1/integrations/configs").await;
        assert!(l["data"][0]["lastSyncAt"].is_string(), "{l}");
        let runs = app
            .count("SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'integration.sync'", &owner.tenant_id)
            .await;
        assert_eq!(runs, 1);
    }
    let again = lumire_engine::integrations::sync::run_scheduled(&app.state, 300)
        .await
        .unwrap();
    assert_eq!(again, 0, "nothing is due within the interval");
    let _ = std::fs::remove_dir_all(dir);
}

/// Settled deposits and approved withdrawals on a trading account reach its platform once,
/// through the connector; failures are retried, visible, and retryable by hand.
#[tokio::test]
async fn money_movements_are_pushed_to_the_platform_once() {
    use lumire_engine::integrations::pushes;
    let dir = connectors_dir(&["lumire-native-connector-example"]);
    let d = dir.clone();
    let app = TestApp::spawn_with(move |s| s.native_connectors_dir = Some(d)).await;
    let owner = app.register_owner().await;
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "pushed@client.example"}))
        .await;
    let trader = t["id"].as_str().unwrap();
    let (_, acc) = owner
        .post("/v1/accounts", json!({"traderId": trader, "platform": "other", "accountNumber": "1001", "currency": "USD"}))
        .await;
    let (_, unconnected) = owner
        .post("/v1/accounts", json!({"traderId": trader, "platform": "mt5", "accountNumber": "77", "currency": "USD"}))
        .await;
    owner
        .post("/v1/integrations/configs", json!({"platform": "other", "endpoint": "https://demo.example", "credentials": {"password": "demo"}}))
        .await;
    let settle = |account: String, amount: &'static str| {
        let owner = &owner;
        async move {
            let (_, d) = owner
                .post("/v1/payments/deposits", json!({"traderId": trader, "accountId": account, "kind": "bank_wire", "amount": amount, "currency": "USD"}))
                .await;
            let id = d["id"].as_str().unwrap().to_string();
            owner
                .post("/v1/payments/deposits/approve", json!({"id": id}))
                .await;
            let (s, d) = owner
                .post(
                    "/v1/payments/deposits/settle",
                    json!({"id": id, "feeAmount": "1.00"}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{d}");
            id
        }
    };
    let dep = settle(acc["id"].as_str().unwrap().to_string(), "100.00").await;
    settle(unconnected["id"].as_str().unwrap().to_string(), "50.00").await;
    let (_, q) = owner.get("/v1/integrations/pushes").await;
    assert_eq!(
        q["data"].as_array().unwrap().len(),
        1,
        "only the connected platform: {q}"
    );
    assert_eq!(
        (
            q["data"][0]["amount"].as_str(),
            q["data"][0]["status"].as_str(),
            q["data"][0]["comment"].as_str()
        ),
        (
            Some("99.00"),
            Some("pending"),
            Some(format!("lumire:deposit:{dep}").as_str())
        )
    );
    let (a, b) = tokio::join!(pushes::run_once(&app.state), pushes::run_once(&app.state));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "one worker wins the row");
    let (_, q) = owner.get("/v1/integrations/pushes?status=pushed").await;
    assert!(q["data"][0]["dealId"].is_string(), "{q}");
    assert_eq!(
        pushes::run_once(&app.state).await.unwrap(),
        0,
        "pushed once"
    );
    // The platform refuses (credentials changed): failed, backed off, visible, retryable.
    owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "other", "credentials": {"password": "rotated"}}),
        )
        .await;
    let (_, w) = owner
        .post("/v1/payments/withdrawals", json!({"traderId": trader, "accountId": acc["id"], "kind": "bank_wire", "amount": "40.00", "currency": "USD"}))
        .await;
    let (s, _) = owner
        .post("/v1/payments/withdrawals/approve", json!({"id": w["id"]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (_, q) = owner.get("/v1/integrations/pushes?status=failed").await;
    let failed = &q["data"][0];
    assert_eq!(
        (failed["amount"].as_str(), failed["attempts"].as_i64()),
        (Some("-40.00"), Some(1)),
        "{q}"
    );
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .contains("unauthorized"),
        "{q}"
    );
    assert_eq!(
        pushes::run_once(&app.state).await.unwrap(),
        0,
        "backing off"
    );
    let id = failed["id"].as_str().unwrap();
    owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "other", "credentials": {"password": "demo"}}),
        )
        .await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, _) = dealer
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, r) = owner
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{r}"
    );
    assert_eq!(pushes::run_once(&app.state).await.unwrap(), 1);
    let (s, b) = owner
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "push_not_retryable");
    let (_, q) = owner.get("/v1/integrations/pushes?status=pushed").await;
    assert_eq!(q["data"].as_array().unwrap().len(), 2);
    // Other tenants see nothing of it.
    let other = app.register_owner().await;
    let (_, q) = other.get("/v1/integrations/pushes").await;
    assert_eq!(q["data"].as_array().unwrap().len(), 0);
    let (s, _) = other
        .post(&format!("/v1/integrations/pushes/{id}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = owner.get("/v1/integrations/pushes?status=lost").await;
    lumire_tests::assert_field_error(s, &b, "status");
    let _ = std::fs::remove_dir_all(dir);
}
