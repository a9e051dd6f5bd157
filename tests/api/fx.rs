use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn tenant_rates_override_global_and_history_is_kept() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner.post("/v1/fx/rates/seed-defaults", json!({})).await;
    assert_eq!((s, &b["seeded"]), (StatusCode::OK, &json!(14)), "{b}");
    let (_, b) = owner.post("/v1/fx/rates/seed-defaults", json!({})).await;
    assert_eq!(
        b["seeded"], 0,
        "seeding never overwrites existing global rates"
    );
    let (_, latest) = owner.get("/v1/fx/rates/latest").await;
    let eurusd = latest["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["base"] == "EUR" && r["quote"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(
        (eurusd["rate"].as_str(), eurusd["scope"].as_str()),
        (Some("1.0870"), Some("global"))
    );
    let (s, b) = owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "EUR", "quote": "USD", "rate": "1.1", "source": "desk"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "EUR", "quote": "USD", "rate": 1.2}]}),
        )
        .await;
    let (_, latest) = owner.get("/v1/fx/rates/latest").await;
    let eurusd = latest["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["base"] == "EUR" && r["quote"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(
        (eurusd["rate"].as_str(), eurusd["scope"].as_str()),
        (Some("1.2"), Some("tenant"))
    );
    let (_, hist) = owner
        .get("/v1/fx/rates?base=EUR&quote=USD&tenant_only=true")
        .await;
    assert_eq!(hist["data"].as_array().unwrap().len(), 2);
    // Another tenant still sees the global rate.
    let other = app.register_owner().await;
    let (_, latest) = other.get("/v1/fx/rates/latest").await;
    let eurusd = latest["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["base"] == "EUR" && r["quote"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(eurusd["rate"], "1.0870");
    let (_, admin) = other.get("/v1/admin/fx-rates").await;
    assert_eq!(admin["data"].as_array().unwrap().len(), 14);
}

#[tokio::test]
async fn validation_roles_and_the_global_pool() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "EUR", "quote": "USD", "rate": "-1"}]}),
        )
        .await;
    assert_field_error(s, &b, "rates[0].rate");
    let (s, b) = owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "EU", "quote": "USD", "rate": "1"}]}),
        )
        .await;
    assert_field_error(s, &b, "rates[0].base");
    let (s, b) = owner
        .post("/v1/fx/rates/upsert", json!({"rates": []}))
        .await;
    assert_field_error(s, &b, "rates");
    let (s, b) = owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "EUR", "quote": "USD", "rate": "1"}], "global": true}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = owner
        .post(
            "/v1/admin/fx-rates",
            json!({"base": "EUR", "quote": "USD", "rate": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let operator = app.member(&owner, &["platform_operator"]).await;
    let (s, b) = operator
        .post(
            "/v1/admin/fx-rates",
            json!({"base": "EUR", "quote": "USD", "rate": "1.05"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, admin) = owner.get("/v1/admin/fx-rates").await;
    assert_eq!(admin["data"][0]["rate"], "1.05");
    let sales = app.member(&owner, &["sales"]).await;
    assert_eq!(
        sales.post("/v1/fx/rates/seed-defaults", json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner.anonymous().get("/v1/fx/rates/latest").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn base_currency_and_converted_aggregates_name_their_rates() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, b) = owner.get("/v1/fx/tenant/base-currency").await;
    assert_eq!(b["base_currency"], "USD");
    let (s, b) = owner
        .patch("/v1/fx/tenant/base-currency", json!({"base_currency": "E"}))
        .await;
    assert_field_error(s, &b, "base_currency");
    let (s, _) = owner
        .patch(
            "/v1/fx/tenant/base-currency",
            json!({"base_currency": "EUR"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "USD", "quote": "EUR", "rate": "0.5"}]}),
        )
        .await;
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "fx@example.com"}))
        .await;
    let tid = t["id"].as_str().unwrap();
    let (_, d) = owner
        .post(
            "/v1/payments/deposits",
            json!({"traderId": tid, "kind": "card", "amount": "100.00", "currency": "USD"}),
        )
        .await;
    let id = d["id"].as_str().unwrap();
    owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    owner
        .post("/v1/payments/deposits/settle", json!({"id": id}))
        .await;
    // A later rate does not change how the earlier deposit is converted.
    owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "USD", "quote": "EUR", "rate": "0.9"}]}),
        )
        .await;
    let (_, rec) = owner.get("/v1/payments/reconciliation").await;
    assert_eq!(rec["baseCurrency"], "EUR");
    assert_eq!(rec["deposits"]["baseCurrencyTotal"], "50.00", "{rec}");
    assert_eq!(rec["deposits"]["ratesUsed"][0]["rate"], "0.5");
}

#[tokio::test]
async fn rates_have_bounds() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for rate in [
        json!("79228162514264337593543950335"),
        json!("1000000000"),
        json!("0.0000000000001"),
        json!("1e3"),
        json!("01.5"),
        json!(-1),
    ] {
        let (s, b) = owner
            .post(
                "/v1/fx/rates/upsert",
                json!({"rates": [{"base": "EUR", "quote": "USD", "rate": rate}]}),
            )
            .await;
        assert_field_error(s, &b, "rates[0].rate");
    }
    let (s, b) = owner
        .post(
            "/v1/fx/rates/upsert",
            json!({"rates": [{"base": "USD", "quote": "JPY", "rate": "999999999.999999999999"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
