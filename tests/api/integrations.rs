use lumire_tests::{TestApp, assert_field_error};
use reqwest::StatusCode;
use serde_json::json;

fn mt5() -> serde_json::Value {
    json!({"platform": "mt5", "label": "MT5 live", "endpoint": "https://mt5.broker.example:443",
           "credentials": {"login": "1001", "password": "manager-secret-pass"}, "isActive": true})
}

#[tokio::test]
async fn configs_are_upserted_and_credentials_never_shown() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, c) = owner.post("/v1/integrations/configs", mt5()).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["credentialKeys"], json!(["login", "password"]));
    assert!(!c.to_string().contains("manager-secret-pass"));
    // Stored encrypted.
    let clear = app
        .count("SELECT COUNT(*) FROM integration_configs WHERE tenant_id = $1 AND credentials LIKE '%manager-secret-pass%'", &owner.tenant_id)
        .await;
    assert_eq!(clear, 0);
    // Same platform again: an update (200); omitted credentials are kept.
    let (s, c) = owner
        .post(
            "/v1/integrations/configs",
            json!({"platform": "MT5", "label": "MT5 live (EU)", "isActive": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(
        (
            c["label"].as_str(),
            c["isActive"].as_bool(),
            c["credentialKeys"].as_array().map(Vec::len)
        ),
        (Some("MT5 live (EU)"), Some(false), Some(2))
    );
    let (s, l) = owner.get("/v1/integrations/configs").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    assert!(!l.to_string().contains("manager-secret-pass"));
    // The audit trail records the change but not the secret.
    let secrets_in_audit = app
        .count("SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND after_json LIKE '%manager-secret-pass%'", &owner.tenant_id)
        .await;
    assert_eq!(secrets_in_audit, 0);
}

#[tokio::test]
async fn config_validation_roles_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for (body, field) in [
        (
            json!({"endpoint": "https://x.example", "credentials": {"a": "b"}}),
            "platform",
        ),
        (
            json!({"platform": "fortran", "endpoint": "https://x.example", "credentials": {"a": "b"}}),
            "platform",
        ),
        (
            json!({"platform": "mt5", "endpoint": "ftp://x.example", "credentials": {"a": "b"}}),
            "endpoint",
        ),
        (
            json!({"platform": "mt5", "endpoint": "https://u:p@x.example", "credentials": {"a": "b"}}),
            "endpoint",
        ),
        (
            json!({"platform": "mt5", "credentials": {"a": "b"}}),
            "endpoint",
        ),
        (
            json!({"platform": "mt5", "endpoint": "https://x.example"}),
            "credentials",
        ),
        (
            json!({"platform": "mt5", "endpoint": "https://x.example", "credentials": {}}),
            "credentials",
        ),
        (
            json!({"platform": "mt5", "endpoint": "https://x.example", "credentials": {"password": 5}}),
            "credentials.password",
        ),
    ] {
        let (s, b) = owner.post("/v1/integrations/configs", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM integration_configs WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (s, _) = owner.anonymous().get("/v1/integrations/configs").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, _) = dealer.get("/v1/integrations/configs").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = dealer.post("/v1/integrations/configs", mt5()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let sales = app.member(&owner, &["sales"]).await;
    let (s, _) = sales.get("/v1/integrations/configs").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    owner.post("/v1/integrations/configs", mt5()).await;
    let other = app.register_owner().await;
    let (_, l) = other.get("/v1/integrations/configs").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 0);
    // Another tenant configuring the same platform gets its own config.
    let (s, _) = other.post("/v1/integrations/configs", mt5()).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn positions_are_listed_with_filters_inside_the_tenant() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    for (tenant, trader, symbol, closed) in [
        (&owner.tenant_id, "T1", "EURUSD", None),
        (
            &owner.tenant_id,
            "T1",
            "XAUUSD",
            Some("2026-01-02T00:00:00.000Z"),
        ),
        (&owner.tenant_id, "T2", "EURUSD", None),
        (&other.tenant_id, "T9", "EURUSD", None),
    ] {
        sqlx::query(
            "INSERT INTO positions (tenant_id, id, account_id, trader_id, symbol, side, volume, open_price, opened_at, closed_at, platform, external_id, commission, swap)
             VALUES ($1, $2, 'A1', $3, $4, 'buy', '1.00', '1.0850', '2026-01-01T00:00:00.000Z', $5, 'mt5', $2, '-3.50', '-0.12')",
        )
        .bind(tenant)
        .bind(ulid::Ulid::new().to_string())
        .bind(trader)
        .bind(symbol)
        .bind(closed)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let (s, p) = owner.get("/v1/integrations/positions").await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["data"].as_array().unwrap().len(), 3);
    assert_eq!(p["data"][0]["commission"], "-3.50");
    let (_, p) = owner
        .get("/v1/integrations/positions?status=open&traderId=T1")
        .await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    let (_, p) = owner.get("/v1/integrations/positions?symbol=xauusd").await;
    assert_eq!(p["data"][0]["closedAt"], "2026-01-02T00:00:00.000Z");
    let (_, p) = owner.get("/v1/integrations/positions?traderId=T9").await;
    assert_eq!(
        p["data"].as_array().unwrap().len(),
        0,
        "never another tenant's"
    );
    let (s, b) = owner.get("/v1/integrations/positions?status=maybe").await;
    assert_field_error(s, &b, "status");
    let (s, _) = owner.anonymous().get("/v1/integrations/positions").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let ib = app.member(&owner, &["ib"]).await;
    let (s, _) = ib.get("/v1/integrations/positions").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
