use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn trader(m: &Member, email: &str, country: &str) -> String {
    let (s, t) = m
        .post("/v1/traders", json!({"email": email, "country": country}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn account(m: &Member, trader_id: &str, number: &str, balance: &str, demo: bool) -> String {
    let (s, a) = m
        .post(
            "/v1/accounts",
            json!({"traderId": trader_id, "platform": "mt5", "accountNumber": number, "currency": "USD", "balance": balance, "isDemo": demo}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_string()
}

async fn rule(m: &Member, body: Value) -> Value {
    let (s, r) = m.post("/v1/risk-rules", body).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    r
}

#[tokio::test]
async fn crud_versions_and_list_order() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let r = rule(
        &owner,
        json!({"name": "Big DE", "match": {"trader_country": "DE", "account_balance": {"gte": 10000}}, "routing": "a_book", "priority": 10, "isActive": true}),
    )
    .await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["version"], 1);
    assert_eq!(r["match"]["trader_country"], "DE");
    assert_eq!(
        r["expression"],
        "(account_balance != () && account_balance >= 10000) && (trader_country == \"DE\")"
    );
    rule(
        &owner,
        json!({"name": "Demo", "match": "is_demo", "routing": "b_book", "priority": 1}),
    )
    .await;
    let (s, list) = owner.get("/v1/risk-rules").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Demo", "Big DE"]);

    let (s, u) = owner
        .patch(
            &format!("/v1/risk-rules/{id}"),
            json!({"match": "account_balance > 5000", "isActive": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        (u["version"].as_i64(), &u["isActive"]),
        (Some(2), &json!(false))
    );
    assert_eq!(u["expression"], "account_balance > 5000");

    let (s, b) = owner
        .post(
            "/v1/risk-rules",
            json!({"name": "big de", "routing": "a_book"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "risk_rule_name_taken");

    let (s, _) = owner.delete(&format!("/v1/risk-rules/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.delete(&format!("/v1/risk-rules/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = owner.get("/v1/risk-rules").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action LIKE 'risk_rule.%'",
            &owner.tenant_id
        )
        .await
            >= 4
    );
}

#[tokio::test]
async fn validation_names_the_field_and_points_into_the_script() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for (field, body) in [
        ("name", json!({"routing": "a_book"})),
        ("routing", json!({"name": "x"})),
        ("routing", json!({"name": "x", "routing": "c_book"})),
        (
            "priority",
            json!({"name": "x", "routing": "a_book", "priority": -1}),
        ),
        (
            "match.balance",
            json!({"name": "x", "routing": "a_book", "match": {"balance": 1}}),
        ),
        (
            "match.account_balance.like",
            json!({"name": "x", "routing": "a_book", "match": {"account_balance": {"like": 1}}}),
        ),
        (
            "match",
            json!({"name": "x", "routing": "a_book", "match": 5}),
        ),
        (
            "isactive",
            json!({"name": "x", "routing": "a_book", "isactive": true}),
        ),
    ] {
        let (s, b) = owner.post("/v1/risk-rules", body).await;
        assert_field_error(s, &b, field);
    }
    // A syntax error: 400 naming `match` with the line and column; nothing saved.
    let (s, b) = owner
        .post(
            "/v1/risk-rules",
            json!({"name": "x", "routing": "a_book", "match": "account_balance >\n  (1000 +"}),
        )
        .await;
    assert_field_error(s, &b, "match");
    let e = &b["errors"][0];
    assert_eq!(e["line"], 2, "{b}");
    assert!(e["column"].as_u64().is_some(), "{b}");
    assert!(e["message"].as_str().unwrap().contains("line 2"), "{b}");
    // An unknown variable is caught at compile time too (strict variables).
    let (s, b) = owner
        .post(
            "/v1/risk-rules",
            json!({"name": "x", "routing": "a_book", "match": "balance > 1"}),
        )
        .await;
    assert_field_error(s, &b, "match");
    assert_eq!(b["errors"][0]["column"], 1, "{b}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM risk_rules WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let r = rule(&owner, json!({"name": "ok", "routing": "a_book"})).await;
    let (s, b) = owner
        .patch(
            &format!("/v1/risk-rules/{}", r["id"].as_str().unwrap()),
            json!({"match": "if ", "name": null}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"match") && fields.contains(&"name"), "{b}");
}

#[tokio::test]
async fn dry_run_structured_and_expression_agree() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let structured = rule(
        &owner,
        json!({"name": "s", "match": {"trader_country": {"in": ["DE", "AT"]}, "account_balance": {"gte": 10000}, "is_demo": false}, "routing": "a_book"}),
    )
    .await;
    let expression = rule(
        &owner,
        json!({"name": "e", "match": {"expr": "trader_country in [\"DE\", \"AT\"] && account_balance >= 10000 && !is_demo"}, "routing": "a_book"}),
    )
    .await;
    let cases = [
        (
            json!({"trader_country": "DE", "account_balance": 15000, "is_demo": false}),
            true,
        ),
        (
            json!({"trader_country": "AT", "account_balance": 10000.0}),
            true,
        ),
        (
            json!({"trader_country": "FR", "account_balance": 15000}),
            false,
        ),
        (
            json!({"trader_country": "DE", "account_balance": 9999.99}),
            false,
        ),
        (
            json!({"trader_country": "DE", "account_balance": 50000, "is_demo": true}),
            false,
        ),
    ];
    for (ctx, want) in cases {
        for r in [&structured, &expression] {
            let (s, out) = owner
                .post(
                    &format!("/v1/risk-rules/{}/dry-run", r["id"].as_str().unwrap()),
                    ctx.clone(),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{out}");
            assert_eq!(out["wouldFire"], want, "{ctx} {out}");
            assert_eq!(
                out["routing"],
                if want { json!("a_book") } else { Value::Null }
            );
        }
    }
    // A rule failing at run time reports the error instead of firing.
    let bad = rule(
        &owner,
        json!({"name": "bad", "match": "position_symbol - 1 > 0", "routing": "a_book"}),
    )
    .await;
    let (s, out) = owner
        .post(
            &format!("/v1/risk-rules/{}/dry-run", bad["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(out["wouldFire"], false);
    assert_eq!(out["error"]["kind"], "runtime", "{out}");
    let (s, b) = owner
        .post(
            &format!("/v1/risk-rules/{}/dry-run", bad["id"].as_str().unwrap()),
            json!({"account_balanse": 1}),
        )
        .await;
    assert_field_error(s, &b, "account_balanse");
}

#[tokio::test]
async fn classify_accounts_first_match_wins_and_stats() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, st) = owner.get("/v1/risk-rules/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["runId"], Value::Null);

    let de = trader(&owner, "de@x.example", "DE").await;
    let fr = trader(&owner, "fr@x.example", "FR").await;
    let big_de = account(&owner, &de, "1", "20000", false).await;
    let small_de = account(&owner, &de, "2", "100", false).await;
    let demo = account(&owner, &fr, "3", "50000", true).await;
    let fr_live = account(&owner, &fr, "4", "50000", false).await;
    let archived = account(&owner, &fr, "5", "50000", false).await;
    let (s, _) = owner
        .patch(
            &format!("/v1/accounts/{archived}"),
            json!({"status": "archived"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let demo_rule = rule(
        &owner,
        json!({"name": "Demo to B", "match": {"is_demo": true}, "routing": "b_book", "priority": 1}),
    )
    .await;
    let big_rule = rule(
        &owner,
        json!({"name": "Big to A", "match": "account_balance >= 10000", "routing": "a_book", "priority": 2}),
    )
    .await;
    // Inactive rules never match.
    rule(
        &owner,
        json!({"name": "Off", "match": "true", "routing": "hybrid", "priority": 0, "isActive": false}),
    )
    .await;
    // Tenant default routing for accounts no rule matches.
    let (s, b) = owner
        .patch(
            "/v1/tenants/current",
            json!({"featureFlags": {"riskDefaultABook": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, run) = owner
        .post("/v1/risk-rules/classify-accounts", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["accounts"], 4, "{run}");
    assert_eq!(run["byRouting"], json!({"a_book": 3, "b_book": 1}), "{run}");
    assert_eq!(run["defaultRouted"], 1);
    assert_eq!(run["errors"], 0);

    let routing = |acc: String| {
        let app = &app;
        let t = owner.tenant_id.clone();
        async move {
            let row: (String, Option<String>) = sqlx::query_as(
                "SELECT routing, rule_id FROM account_routing WHERE tenant_id = $1 AND account_id = $2",
            )
            .bind(t)
            .bind(acc)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
            row
        }
    };
    let demo_id = demo_rule["id"].as_str().unwrap().to_string();
    let big_id = big_rule["id"].as_str().unwrap().to_string();
    assert_eq!(
        routing(demo.clone()).await,
        ("b_book".into(), Some(demo_id))
    );
    assert_eq!(
        routing(big_de).await,
        ("a_book".into(), Some(big_id.clone()))
    );
    assert_eq!(routing(fr_live).await, ("a_book".into(), Some(big_id)));
    assert_eq!(routing(small_de).await, ("a_book".into(), None));

    let (s, st) = owner.get("/v1/risk-rules/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["runId"], run["runId"]);
    assert_eq!(st["byRouting"], run["byRouting"]);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'risk_rules.classify'",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_hostile_rule_is_disabled_for_the_rest_of_the_run() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner, "x@x.example", "DE").await;
    for n in 0..4 {
        account(&owner, &t, &n.to_string(), "100", false).await;
    }
    let bad = rule(
        &owner,
        json!({"name": "spin", "match": "loop { }", "routing": "hybrid", "priority": 0}),
    )
    .await;
    rule(
        &owner,
        json!({"name": "all", "match": {}, "routing": "a_book", "priority": 1}),
    )
    .await;
    let (s, run) = owner
        .post("/v1/risk-rules/classify-accounts", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["errors"], 1, "{run}");
    assert_eq!(run["disabledRules"], json!([bad["id"]]));
    assert_eq!(run["byRouting"], json!({"a_book": 4}));
}

#[tokio::test]
async fn auth_roles_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let support = app.member(&owner, &["support"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let finance = app.member(&owner, &["finance"]).await;
    let r = rule(&owner, json!({"name": "r", "routing": "a_book"})).await;
    let id = r["id"].as_str().unwrap();
    let anon = app.anonymous();
    for (s, _) in [
        anon.get("/v1/risk-rules").await,
        anon.post("/v1/risk-rules", json!({"name": "x", "routing": "a_book"}))
            .await,
        anon.post("/v1/risk-rules/classify-accounts", json!({}))
            .await,
        anon.get("/v1/risk-rules/stats").await,
        anon.post(&format!("/v1/risk-rules/{id}/dry-run"), json!({}))
            .await,
    ] {
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    for (s, _) in [
        support.get("/v1/risk-rules").await,
        support
            .post(&format!("/v1/risk-rules/{id}/dry-run"), json!({}))
            .await,
        finance
            .post("/v1/risk-rules", json!({"name": "x", "routing": "a_book"}))
            .await,
        finance
            .patch(&format!("/v1/risk-rules/{id}"), json!({"priority": 3}))
            .await,
        finance.delete(&format!("/v1/risk-rules/{id}")).await,
        finance
            .post("/v1/risk-rules/classify-accounts", json!({}))
            .await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _) = finance.get("/v1/risk-rules/stats").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = dealer
        .patch(&format!("/v1/risk-rules/{id}"), json!({"priority": 3}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Another tenant: 404, never the rule.
    for (s, _) in [
        other
            .patch(&format!("/v1/risk-rules/{id}"), json!({"priority": 1}))
            .await,
        other.delete(&format!("/v1/risk-rules/{id}")).await,
        other
            .post(&format!("/v1/risk-rules/{id}/dry-run"), json!({}))
            .await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (_, list) = other.get("/v1/risk-rules").await;
    assert_eq!(list["data"], json!([]));
    // Another tenant's classify run never touches this tenant's accounts or stats.
    let t = trader(&owner, "a@x.example", "DE").await;
    account(&owner, &t, "9", "1", false).await;
    let (_, run) = other
        .post("/v1/risk-rules/classify-accounts", json!({}))
        .await;
    assert_eq!(run["accounts"], 0);
    let (_, st) = owner.get("/v1/risk-rules/stats").await;
    assert_eq!(st["runId"], Value::Null);
}
