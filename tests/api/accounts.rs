use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn new_trader(m: &Member, email: &str) -> String {
    let (s, t) = m.post("/v1/traders", json!({"email": email})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

fn account(trader_id: &str, number: &str) -> Value {
    json!({"traderId": trader_id, "platform": "mt5", "externalId": format!("srv1:{number}"), "accountNumber": number, "currency": "USD", "balance": "1250.50", "equity": "1249.80", "leverage": 200, "isDemo": false, "metadata": {"group": "real\\std"}})
}

async fn new_account(m: &Member, trader_id: &str, number: &str) -> String {
    let (s, a) = m.post("/v1/accounts", account(trader_id, number)).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_string()
}

async fn count(app: &TestApp, m: &Member, sql: &str) -> i64 {
    app.count(sql, &m.tenant_id).await
}

#[tokio::test]
async fn create_get_update_delete() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "acc@example.com").await;
    let (s, a) = owner.post("/v1/accounts", account(&trader, "501234")).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["traderId"], trader.as_str());
    assert_eq!(a["platform"], "mt5");
    assert_eq!(a["accountNumber"], "501234");
    assert_eq!(a["balance"], "1250.50", "scale kept as sent");
    assert_eq!(a["equity"], "1249.80");
    assert_eq!(a["leverage"], 200);
    assert_eq!(a["isDemo"], false);
    assert_eq!(a["status"], "active");
    assert_eq!(a["metadata"]["group"], "real\\std");

    let (s, got) = owner.get(&format!("/v1/accounts/{id}")).await;
    assert_eq!(
        (s, &got["externalId"]),
        (StatusCode::OK, &json!("srv1:501234"))
    );

    let (s, up) = owner
        .patch(
            &format!("/v1/accounts/{id}"),
            json!({"balance": "-12.5", "equity": "0.00", "externalId": null, "isDemo": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(
        up["balance"], "-12.5",
        "a negative balance is a fact to record"
    );
    assert_eq!(up["equity"], "0.00");
    assert_eq!(up["externalId"], Value::Null);
    assert_eq!(up["isDemo"], true);
    assert_eq!(up["leverage"], 200);

    // A PATCH that changes nothing writes nothing.
    let (s, _) = owner
        .patch(&format!("/v1/accounts/{id}"), json!({"balance": "-12.5"}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = owner.delete(&format!("/v1/accounts/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        owner.get(&format!("/v1/accounts/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner.delete(&format!("/v1/accounts/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = owner.get("/v1/accounts").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    // Soft delete: the row stays.
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM trading_accounts WHERE tenant_id = $1 AND deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    for name in ["account.created", "account.updated", "account.deleted"] {
        let n = count(
            &app,
            &owner,
            &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
        )
        .await;
        assert_eq!(n, 1, "{name}");
    }
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["account.delete", "account.update", "account.create"]
    );
    // The number is free again after the soft delete.
    new_account(&owner, &trader, "501234").await;
}

#[tokio::test]
async fn defaults() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "d@example.com").await;
    let (s, a) = owner
        .post(
            "/v1/accounts",
            json!({"traderId": trader, "platform": "ctrader", "accountNumber": "9", "currency": "USDT"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["balance"], "0");
    assert_eq!(a["equity"], "0");
    assert_eq!(a["leverage"], 100);
    assert_eq!(a["isDemo"], false);
    assert_eq!(a["metadata"], json!({}));
    assert_eq!(a["externalId"], Value::Null);
}

#[tokio::test]
async fn validation_names_fields_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let trader = new_trader(&owner, "v@example.com").await;
    let foreign_trader = new_trader(&other, "f@example.com").await;
    let with = |patch: Value| {
        let mut body = account(&trader, "777");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"traderId": null}), "traderId"),
        (json!({"traderId": foreign_trader}), "traderId"),
        (json!({"traderId": "not-a-ulid"}), "traderId"),
        (json!({"platform": "mt6"}), "platform"),
        (json!({"accountNumber": "  "}), "accountNumber"),
        (json!({"currency": "usd"}), "currency"),
        (json!({"currency": "DOLLARS"}), "currency"),
        (json!({"balance": 1250.5}), "balance"),
        (json!({"balance": "1e5"}), "balance"),
        (json!({"balance": "1,250.50"}), "balance"),
        (json!({"balance": "abc"}), "balance"),
        (json!({"equity": "1.123456789"}), "equity"),
        (json!({"equity": ""}), "equity"),
        (json!({"leverage": 0}), "leverage"),
        (json!({"leverage": 1.5}), "leverage"),
        (json!({"isDemo": "no"}), "isDemo"),
        (json!({"metadata": [1]}), "metadata"),
        (json!({"balanse": "1"}), "balanse"),
    ];
    for (patch, field) in cases {
        let (s, b) = owner.post("/v1/accounts", with(patch.clone())).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM trading_accounts WHERE tenant_id = $1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND resource_type = 'account'"
        )
        .await,
        0
    );

    let id = new_account(&owner, &trader, "778").await;
    let path = format!("/v1/accounts/{id}");
    for (body, field) in [
        (json!({"balance": 5}), "balance"),
        (json!({"balance": null}), "balance"),
        (json!({"equity": "--1"}), "equity"),
        (json!({"status": "frozen"}), "status"),
        (json!({"status": null}), "status"),
        (json!({"traderId": foreign_trader}), "traderId"),
        (json!({"currency": "eur"}), "currency"),
        (json!({"leverage": 20000}), "leverage"),
        (json!({"accountNumber": ""}), "accountNumber"),
    ] {
        let (s, b) = owner.patch(&path, body).await;
        assert_field_error(s, &b, field);
    }
    let (_, a) = owner.get(&path).await;
    assert_eq!(a["balance"], "1250.50");
    assert_eq!(a["traderId"], trader.as_str());
    assert_eq!(a["status"], "active");
}

#[tokio::test]
async fn account_numbers_are_unique_per_platform_and_tenant() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let t1 = new_trader(&owner, "u1@example.com").await;
    let t2 = new_trader(&owner, "u2@example.com").await;
    new_account(&owner, &t1, "1001").await;
    let (s, b) = owner.post("/v1/accounts", account(&t2, "1001")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_number_taken");
    // Same number on another platform, or in another tenant, is another account.
    let mut mt4 = account(&t2, "1001");
    mt4["platform"] = json!("mt4");
    let (s, mt4) = owner.post("/v1/accounts", mt4).await;
    assert_eq!(s, StatusCode::CREATED, "{mt4}");
    let ot = new_trader(&other, "o@example.com").await;
    new_account(&other, &ot, "1001").await;
    // Moving the mt4 account onto the taken mt5 number is refused too.
    let (s, b) = owner
        .patch(
            &format!("/v1/accounts/{}", mt4["id"].as_str().unwrap()),
            json!({"platform": "mt5"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_number_taken");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM trading_accounts WHERE tenant_id = $1"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn status_state_machine() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "sm@example.com").await;
    let id = new_account(&owner, &trader, "42").await;
    let path = format!("/v1/accounts/{id}");
    for status in ["disabled", "active", "disabled", "archived"] {
        let (s, b) = owner.patch(&path, json!({"status": status})).await;
        assert_eq!((s, &b["status"]), (StatusCode::OK, &json!(status)), "{b}");
    }
    let (s, b) = owner.patch(&path, json!({"status": "active"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_transition");
    let (s, b) = owner.patch(&path, json!({"status": "disabled"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_transition");
    let (s, b) = owner.patch(&path, json!({"balance": "1.00"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_archived");
    let (_, a) = owner.get(&path).await;
    assert_eq!(a["status"], "archived");
    assert_eq!(a["balance"], "1250.50");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'account.updated'"
        )
        .await,
        4
    );
    // Archived accounts can still be deleted.
    assert_eq!(owner.delete(&path).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn trader_and_currency_are_fixed_once_money_is_recorded() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t1 = new_trader(&owner, "r1@example.com").await;
    let t2 = new_trader(&owner, "r2@example.com").await;
    let id = new_account(&owner, &t1, "55").await;
    let path = format!("/v1/accounts/{id}");
    // Re-linking is fine while the account has no transactions (a mis-linked account).
    let (s, b) = owner.patch(&path, json!({"traderId": t2})).await;
    assert_eq!((s, &b["traderId"]), (StatusCode::OK, &json!(t2)), "{b}");
    let (s, b) = owner
        .post(
            "/v1/transactions",
            json!({"traderId": t2, "accountId": id, "kind": "deposit", "amount": "10"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = owner.patch(&path, json!({"traderId": t1})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_has_transactions");
    let (s, b) = owner.patch(&path, json!({"currency": "EUR"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_has_transactions");
    let (_, a) = owner.get(&path).await;
    assert_eq!(
        (&a["traderId"], &a["currency"]),
        (&json!(t2), &json!("USD"))
    );
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let trader = new_trader(&a, "iso@example.com").await;
    let id = new_account(&a, &trader, "S3CRET-123").await;
    let path = format!("/v1/accounts/{id}");
    let (s, body) = b.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("S3CRET"));
    assert_eq!(
        b.patch(&path, json!({"balance": "0"})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.delete(&path).await.0, StatusCode::NOT_FOUND);
    let (_, list) = b.get("/v1/accounts").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = b.get(&format!("/v1/accounts?traderId={trader}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        b.get("/v1/accounts/not-a-ulid").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, still) = a.get(&path).await;
    assert_eq!(still["balance"], "1250.50");
}

#[tokio::test]
async fn roles_and_auth() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "roles@example.com").await;
    let sales = app.member(&owner, &["sales"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let finance = app.member(&owner, &["finance"]).await;
    let ib = app.member(&owner, &["ib"]).await;
    let anon = owner.anonymous();
    assert_eq!(anon.get("/v1/accounts").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon.post("/v1/accounts", account(&trader, "1")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sales.get("/v1/accounts").await.0, StatusCode::OK);
    assert_eq!(ib.get("/v1/accounts").await.0, StatusCode::FORBIDDEN);
    let (s, b) = sales.post("/v1/accounts", account(&trader, "1")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let id = new_account(&dealer, &trader, "1").await;
    new_account(&finance, &trader, "2").await;
    let path = format!("/v1/accounts/{id}");
    assert_eq!(
        sales.patch(&path, json!({"balance": "1"})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(sales.delete(&path).await.0, StatusCode::FORBIDDEN);
    assert_eq!(anon.delete(&path).await.0, StatusCode::UNAUTHORIZED);
    let (_, a) = owner.get(&path).await;
    assert_eq!(a["balance"], "1250.50");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM trading_accounts WHERE tenant_id = $1"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn list_filters_and_cursor_pagination() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t1 = new_trader(&owner, "l1@example.com").await;
    let t2 = new_trader(&owner, "l2@example.com").await;
    for i in 0..6 {
        let mut body = account(if i < 4 { &t1 } else { &t2 }, &format!("N{i}"));
        body["platform"] = json!(if i % 2 == 0 { "mt5" } else { "mt4" });
        body["currency"] = json!(if i < 3 { "USD" } else { "EUR" });
        body["isDemo"] = json!(i == 5);
        let (s, b) = owner.post("/v1/accounts", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (_, p1) = owner.get("/v1/accounts?limit=4").await;
    let data = p1["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(data[0]["accountNumber"], "N5", "newest first");
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/accounts?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    assert!(p2["next_cursor"].is_null());
    let n = |v: &Value| v["data"].as_array().unwrap().len();
    assert_eq!(
        n(&owner.get(&format!("/v1/accounts?traderId={t1}")).await.1),
        4
    );
    assert_eq!(n(&owner.get("/v1/accounts?platform=mt4").await.1), 3);
    assert_eq!(n(&owner.get("/v1/accounts?currency=EUR").await.1), 3);
    assert_eq!(n(&owner.get("/v1/accounts?isDemo=true").await.1), 1);
    assert_eq!(n(&owner.get("/v1/accounts?isDemo=false").await.1), 5);
    assert_eq!(n(&owner.get("/v1/accounts?status=active").await.1), 6);
    assert_eq!(n(&owner.get("/v1/accounts?status=archived").await.1), 0);
    assert_eq!(
        n(&owner
            .get(&format!(
                "/v1/accounts?traderId={t2}&platform=mt4&isDemo=true"
            ))
            .await
            .1),
        1
    );
    let (s, b) = owner.get("/v1/accounts?isDemo=yes").await;
    assert_field_error(s, &b, "isDemo");
    let (s, b) = owner.get("/v1/accounts?status=gone").await;
    assert_field_error(s, &b, "status");
    let (s, b) = owner.get("/v1/accounts?platform=mt9").await;
    assert_field_error(s, &b, "platform");
    let (s, b) = owner.get("/v1/accounts?cursor=%21%21").await;
    assert_field_error(s, &b, "cursor");
}
