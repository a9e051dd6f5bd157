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

fn connectors_dir(libs: &[&str]) -> PathBuf {
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
    assert_eq!(demo.name, "Demo native connector");
    let accounts = demo
        .call(
            "list-accounts",
            &json!({"config": {"credentials": {"password": "demo"}}}),
        )
        .unwrap();
    assert_eq!(accounts[0]["login"], "1001");
    let err = demo
        .call(
            "no-such-op",
            &json!({"config": {"credentials": {"password": "demo"}}}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("unknown_operation"), "{err}");
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
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid_credentials"),
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
        (Some(1), Some(1), Some(1), Some(1)),
        "{r}"
    );
    let (_, a) = owner.get(&format!("/v1/accounts/{account_id}")).await;
    assert_eq!(
        (a["balance"].as_str(), a["equity"].as_str()),
        (Some("1000.00"), Some("1012.50")),
        "{a}"
    );
    let (_, p) = owner.get("/v1/integrations/positions").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        (
            p["data"][0]["accountId"].as_str(),
            p["data"][0]["commission"].as_str(),
            p["data"][0]["externalId"].as_str()
        ),
        (Some(account_id), Some("-3.50"), Some("5001"))
    );
    // Again: the position is updated in place, the unchanged account is left alone.
    let (_, r) = dealer.post("/v1/integrations/sync", json!({})).await;
    assert_eq!(r["data"][0]["updatedAccounts"], 0, "{r}");
    let (_, p) = owner.get("/v1/integrations/positions").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
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
