use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

fn eurusd() -> serde_json::Value {
    json!({"symbol": "eurusd", "display_name": "Euro vs US Dollar", "category": "fx", "base_currency": "EUR",
           "quote_currency": "USD", "contract_size": "100000", "pip_size": "0.00010", "markup_pips": "0.2",
           "commission_per_lot": "3.5", "swap_long": "-6.1", "swap_short": "1.2", "min_lot": "0.01", "max_lot": "50",
           "lot_step": "0.01", "max_leverage": 500, "margin_percent": "0.2", "is_active": true, "sort_order": 10, "badge": "popular"})
}

#[tokio::test]
async fn symbol_crud_and_validation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, sym) = dealer.post("/v1/symbols", eurusd()).await;
    assert_eq!(s, StatusCode::CREATED, "{sym}");
    assert_eq!(sym["symbol"], "EURUSD", "upper-cased");
    assert_eq!(sym["pip_size"], "0.0001", "normalised, exact");
    assert_eq!(sym["is_active"], true);
    let id = sym["id"].as_str().unwrap();
    // Same name again: 409, nothing written.
    let (s, b) = dealer.post("/v1/symbols", eurusd()).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "symbol_exists");
    // Defaults fill the optional terms.
    let (s, gold) = dealer
        .post("/v1/symbols", json!({"symbol": "XAUUSD", "category": "metals", "contract_size": "100", "pip_size": "0.01"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{gold}");
    assert_eq!(
        (
            gold["min_lot"].as_str(),
            gold["max_leverage"].as_i64(),
            gold["markup_pips"].as_str()
        ),
        (Some("0.01"), Some(100), Some("0"))
    );
    // Partial update, validated whole: a max_lot under min_lot is refused.
    let (s, b) = dealer
        .patch(
            &format!("/v1/symbols/{id}"),
            json!({"markup_pips": "0.4", "is_active": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["markup_pips"].as_str(),
            b["is_active"].as_bool(),
            b["max_lot"].as_str()
        ),
        (Some("0.4"), Some(false), Some("50"))
    );
    let (s, b) = dealer
        .patch(&format!("/v1/symbols/{id}"), json!({"max_lot": "0.001"}))
        .await;
    assert_field_error(s, &b, "max_lot");
    let (s, b) = dealer
        .patch(&format!("/v1/symbols/{id}"), json!({"contract_size": null}))
        .await;
    assert_field_error(s, &b, "contract_size");
    let (s, b) = dealer
        .patch(
            &format!("/v1/symbols/{}", gold["id"].as_str().unwrap()),
            json!({"symbol": "EURUSD"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "symbol_exists");
    // Bad input names the field and writes nothing.
    for (body, field) in [
        (
            json!({"category": "fx", "contract_size": "1", "pip_size": "1"}),
            "symbol",
        ),
        (
            json!({"symbol": "X", "category": "bonds", "contract_size": "1", "pip_size": "1"}),
            "category",
        ),
        (
            json!({"symbol": "X", "category": "fx", "contract_size": "-1", "pip_size": "1"}),
            "contract_size",
        ),
        (
            json!({"symbol": "X", "category": "fx", "contract_size": "1", "pip_size": "1e-4"}),
            "pip_size",
        ),
        (
            json!({"symbol": "X", "category": "fx", "contract_size": "1", "pip_size": "1", "max_leverage": 0}),
            "max_leverage",
        ),
        (
            json!({"symbol": "X", "category": "fx", "contract_size": "1", "pip_size": "1", "margin_percent": "150"}),
            "margin_percent",
        ),
        (
            json!({"symbol": "bad symbol!", "category": "fx", "contract_size": "1", "pip_size": "1"}),
            "symbol",
        ),
    ] {
        let (s, b) = dealer.post("/v1/symbols", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = dealer
        .post("/v1/symbols", json!({"symbol": "X", "nope": 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM symbols WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        2
    );
    // Filters.
    let (_, l) = owner.get("/v1/symbols?category=metals").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    let (_, l) = owner.get("/v1/symbols?isActive=true").await;
    assert_eq!(l["data"][0]["symbol"], "XAUUSD");
    let (_, l) = owner.get("/v1/symbols?q=euro").await;
    assert_eq!(l["data"][0]["symbol"], "EURUSD");
    let (s, b) = owner.get("/v1/symbols?category=bonds").await;
    assert_field_error(s, &b, "category");
    // Delete.
    let (s, _) = dealer.delete(&format!("/v1/symbols/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.get(&format!("/v1/symbols/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn seed_defaults_adds_the_pack_once_and_keeps_local_changes() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, mine) = owner
        .post("/v1/symbols", json!({"symbol": "EURUSD", "category": "fx", "contract_size": "100000", "pip_size": "0.0001", "markup_pips": "1.5"}))
        .await;
    let (s, b) = owner.post("/v1/symbols/seed-defaults", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["skipped"], 1);
    let inserted = b["inserted"].as_i64().unwrap();
    assert!(inserted >= 25, "{b}");
    let (_, again) = owner.post("/v1/symbols/seed-defaults", json!({})).await;
    assert_eq!(
        (again["inserted"].as_i64(), again["skipped"].as_i64()),
        (Some(0), Some(inserted + 1))
    );
    let (_, kept) = owner
        .get(&format!("/v1/symbols/{}", mine["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        kept["markup_pips"], "1.5",
        "the desk's markup survives seeding"
    );
    let (_, all) = owner.get("/v1/symbols?limit=500").await;
    let find = |s: &str| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["symbol"] == s)
            .cloned()
            .unwrap()
    };
    for (sym, contract, pip, category) in [
        ("USDJPY", "100000", "0.01", "fx"),
        ("XAUUSD", "100", "0.01", "metals"),
        ("XAGUSD", "5000", "0.001", "metals"),
        ("US500", "1", "0.1", "indices"),
        ("BTCUSD", "1", "1", "crypto"),
        ("USOIL", "1000", "0.01", "energies"),
    ] {
        let x = find(sym);
        assert_eq!(
            (
                x["contract_size"].as_str(),
                x["pip_size"].as_str(),
                x["category"].as_str()
            ),
            (Some(contract), Some(pip), Some(category)),
            "{sym}"
        );
    }
}

#[tokio::test]
async fn symbol_access_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, sym) = owner.post("/v1/symbols", eurusd()).await;
    let id = sym["id"].as_str().unwrap();
    let anon = owner.anonymous();
    let (s, _) = anon.get("/v1/symbols").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = anon.post("/v1/symbols/seed-defaults", json!({})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let sales = app.member(&owner, &["sales"]).await;
    let (s, _) = sales.get(&format!("/v1/symbols/{id}")).await;
    assert_eq!(s, StatusCode::OK, "staff read");
    for (s, _) in [
        sales.post("/v1/symbols", eurusd()).await,
        sales
            .patch(&format!("/v1/symbols/{id}"), json!({"markup_pips": "9"}))
            .await,
        sales.delete(&format!("/v1/symbols/{id}")).await,
        sales.post("/v1/symbols/seed-defaults", json!({})).await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let other = app.register_owner().await;
    for (s, b) in [
        other.get(&format!("/v1/symbols/{id}")).await,
        other
            .patch(&format!("/v1/symbols/{id}"), json!({"markup_pips": "9"}))
            .await,
        other.delete(&format!("/v1/symbols/{id}")).await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    let (_, l) = other.get("/v1/symbols").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 0);
    // The other tenant may use the same symbol name.
    let (s, _) = other.post("/v1/symbols", eurusd()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, mine) = owner.get(&format!("/v1/symbols/{id}")).await;
    assert_eq!(mine["markup_pips"], "0.2");
}
