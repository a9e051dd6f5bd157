use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn trader(m: &Member) -> String {
    let (s, t) = m
        .post("/v1/traders", json!({"email": format!("{}@client.example", ulid::Ulid::new().to_string().to_lowercase())}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn line(m: &Member, trader_id: &str, limit: &str) -> Value {
    let (s, l) = m
        .post(
            "/v1/credit-lines",
            json!({"traderId": trader_id, "currency": "USD", "limit": limit, "terms": "30 days"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    l
}

/// The USD row of the balances endpoint.
async fn usd_balance(m: &Member, trader_id: &str) -> Value {
    let (s, b) = m
        .get(&format!("/v1/payments/traders/{trader_id}/balances"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["currency"] == "USD")
        .cloned()
        .unwrap_or(json!({}))
}

async fn ledger_ok(app: &TestApp, tenant: &str) {
    let report = lumire_engine::ledger::verify(app.db.pool(), tenant)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

async fn house_credit(app: &TestApp, tenant: &str) -> String {
    sqlx::query_scalar::<_, String>(
        "SELECT balance FROM ledger_accounts WHERE tenant_id = $1 AND code = 'house:credit' AND currency = 'USD'",
    )
    .bind(tenant)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn grant_and_revoke_move_money_through_the_ledger() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let finance = app.member(&owner, &["finance"]).await;
    let t = trader(&owner).await;
    let l = line(&finance, &t, "1000.00").await;
    let id = l["id"].as_str().unwrap();
    assert_eq!(
        (&l["kind"], &l["limit"], &l["outstanding"], &l["available"]),
        (
            &json!("credit"),
            &json!("1000.00"),
            &json!("0"),
            &json!("1000.00")
        ),
        "{l}"
    );

    let (s, g) = finance
        .post(
            &format!("/v1/credit-lines/{id}/grant"),
            json!({"amount": "400.00", "reason": "promo"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["kind"], "grant");
    assert_eq!(g["outstandingAfter"], "400.00");
    assert_eq!(g["creditLine"]["outstanding"], "400.00");
    assert_eq!(g["creditLine"]["available"], "600.00");
    let grant_entry = g["ledgerEntryId"].as_str().unwrap().to_string();

    // Credit shows on the balances endpoint but is not cash: available and total stay at zero.
    let b = usd_balance(&owner, &t).await;
    assert_eq!(
        (&b["credit"], &b["available"]),
        (&json!("400.00"), &json!("0")),
        "{b}"
    );
    assert_eq!(house_credit(&app, &owner.tenant_id).await, "-400.00");

    let (s, r) = finance
        .post(
            &format!("/v1/credit-lines/{id}/revoke"),
            json!({"amount": "150.00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["creditLine"]["outstanding"], "250.00");
    assert_eq!(usd_balance(&owner, &t).await["credit"], "250.00");
    assert_eq!(house_credit(&app, &owner.tenant_id).await, "-250.00");

    // Entries list both movements, newest first, each with its ledger entry.
    let (s, e) = owner.get(&format!("/v1/credit-lines/{id}/entries")).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let kinds: Vec<&str> = e["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["revoke", "grant"]);
    assert_eq!(e["data"][1]["ledgerEntryId"], grant_entry.as_str());
    let (s, e) = owner
        .get(&format!("/v1/credit-lines/{id}/entries?kind=grant&limit=1"))
        .await;
    assert_eq!(
        (s, e["data"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let journal = app
        .count(
            &format!("SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND id = '{grant_entry}' AND kind = 'credit_grant'"),
            &owner.tenant_id,
        )
        .await;
    assert_eq!(journal, 1);

    for e in [
        "credit_line.created",
        "credit_line.granted",
        "credit_line.revoked",
    ] {
        assert_eq!(
            app.count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{e}'"),
                &owner.tenant_id
            )
            .await,
            1,
            "{e}"
        );
    }
    for a in [
        "credit_line.create",
        "credit_line.grant",
        "credit_line.revoke",
    ] {
        assert_eq!(
            app.count(
                &format!("SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = '{a}'"),
                &owner.tenant_id
            )
            .await,
            1,
            "{a}"
        );
    }
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn limit_over_revoke_and_delete_rules() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let l = line(&owner, &t, "500.00").await;
    let id = l["id"].as_str().unwrap();
    let grant = |amount: &'static str| {
        let owner = &owner;
        async move {
            owner
                .post(
                    &format!("/v1/credit-lines/{id}/grant"),
                    json!({ "amount": amount }),
                )
                .await
        }
    };
    let (s, b) = grant("500.01").await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_limit_exceeded");
    let (s, _) = grant("300.00").await;
    assert_eq!(s, StatusCode::CREATED);
    // Cumulative: 300 outstanding + 201 > 500.
    let (s, b) = grant("201.00").await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_limit_exceeded");
    assert!(b["detail"].as_str().unwrap().contains("200.00"), "{b}");
    let (s, b) = grant("200.00").await;
    assert_eq!(
        (s, &b["creditLine"]["available"]),
        (StatusCode::CREATED, &json!("0.00")),
        "{b}"
    );
    // The refused grants left nothing behind.
    assert_eq!(usd_balance(&owner, &t).await["credit"], "500.00");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM credit_line_entries WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        2
    );

    let (s, b) = owner
        .post(
            &format!("/v1/credit-lines/{id}/revoke"),
            json!({"amount": "500.01"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "revoke_exceeds_outstanding");
    assert!(b["detail"].as_str().unwrap().contains("500.01"), "{b}");

    let (s, b) = owner.delete(&format!("/v1/credit-lines/{id}")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_outstanding");

    // One live line per trader and currency.
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "USD", "limit": "10"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_line_exists");

    let (s, _) = owner
        .post(
            &format!("/v1/credit-lines/{id}/revoke"),
            json!({"amount": "500.00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = owner.delete(&format!("/v1/credit-lines/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = owner.get(&format!("/v1/credit-lines/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["deletedAt"].is_string(), "{b}");
    let (s, b) = owner.delete(&format!("/v1/credit-lines/{id}")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_line_deleted");
    let (s, b) = grant("1.00").await;
    assert_problem(s, &b, StatusCode::CONFLICT, "credit_line_deleted");
    // Deleted lines leave the list unless asked for; a new line may be opened.
    let (_, list) = owner.get(&format!("/v1/credit-lines?traderId={t}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    let (_, list) = owner
        .get(&format!(
            "/v1/credit-lines?traderId={t}&includeDeleted=true"
        ))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    line(&owner, &t, "100").await;
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn list_filters_and_pages() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (t1, t2) = (trader(&owner).await, trader(&owner).await);
    line(&owner, &t1, "100").await;
    line(&owner, &t2, "200").await;
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"traderId": t1, "currency": "EUR", "limit": "50.00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, all) = owner.get("/v1/credit-lines").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let (_, p1) = owner.get("/v1/credit-lines?limit=2").await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/credit-lines?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    let (_, f) = owner
        .get(&format!("/v1/credit-lines?traderId={t1}&currency=EUR"))
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 1);
    assert_eq!(f["data"][0]["limit"], "50.00");
    let (s, b) = owner.get("/v1/credit-lines?limit=0").await;
    assert_field_error(s, &b, "limit");
}

#[tokio::test]
async fn customer_id_resolves_to_the_linked_trader() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let email = format!(
        "{}@client.example",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let (_, b) = crate::portal::signup(&app, &owner, &email).await;
    let customer_id = b["customer"]["id"].as_str().unwrap().to_string();
    let trader_id = b["customer"]["traderId"].as_str().unwrap().to_string();
    let (s, l) = owner
        .post(
            "/v1/credit-lines",
            json!({"customerId": customer_id, "currency": "USD", "limit": "100"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(
        (&l["traderId"], &l["customerId"]),
        (&json!(trader_id), &json!(customer_id))
    );
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"customerId": "01JUNKNOWN", "currency": "USD", "limit": "100"}),
        )
        .await;
    assert_field_error(s, &b, "customerId");
}

#[tokio::test]
async fn access_validation_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let l = line(&owner, &t, "100.00").await;
    let id = l["id"].as_str().unwrap();

    // 401 without a credential.
    let anon = owner.anonymous();
    let (s, _) = anon.get("/v1/credit-lines").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = anon
        .post(
            &format!("/v1/credit-lines/{id}/grant"),
            json!({"amount": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Support reads but cannot move money or open lines.
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get(&format!("/v1/credit-lines/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = support.get(&format!("/v1/credit-lines/{id}/entries")).await;
    assert_eq!(s, StatusCode::OK);
    for (path, body) in [
        (
            format!("/v1/credit-lines/{id}/grant"),
            json!({"amount": "1"}),
        ),
        (
            format!("/v1/credit-lines/{id}/revoke"),
            json!({"amount": "1"}),
        ),
        (
            "/v1/credit-lines".to_string(),
            json!({"traderId": t, "currency": "EUR", "limit": "1"}),
        ),
    ] {
        let (s, b) = support.post(&path, body).await;
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    }
    let (s, b) = support.delete(&format!("/v1/credit-lines/{id}")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // Another tenant sees none of it.
    let other = app.register_owner().await;
    let (s, _) = other.get(&format!("/v1/credit-lines/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other.get(&format!("/v1/credit-lines/{id}/entries")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other
        .post(
            &format!("/v1/credit-lines/{id}/grant"),
            json!({"amount": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other.delete(&format!("/v1/credit-lines/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = other.get("/v1/credit-lines").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (s, b) = other
        .post(
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "USD", "limit": "1"}),
        )
        .await;
    assert_field_error(s, &b, "traderId");
    let (s, _) = owner.get("/v1/credit-lines/not-an-id").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // 400s name the field.
    let (s, b) = owner
        .post("/v1/credit-lines", json!({"currency": "USD", "limit": "1"}))
        .await;
    assert_field_error(s, &b, "traderId");
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "usd", "limit": "1"}),
        )
        .await;
    assert_field_error(s, &b, "currency");
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "EUR", "limit": "1.001"}),
        )
        .await;
    assert_field_error(s, &b, "limit");
    let (s, b) = owner
        .post(
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "EUR", "limmit": "1"}),
        )
        .await;
    assert_field_error(s, &b, "limmit");
    let (s, b) = owner
        .post(
            &format!("/v1/credit-lines/{id}/grant"),
            json!({"amount": "-5"}),
        )
        .await;
    assert_field_error(s, &b, "amount");
    let (s, b) = owner
        .post(&format!("/v1/credit-lines/{id}/revoke"), json!({}))
        .await;
    assert_field_error(s, &b, "amount");
}

#[tokio::test]
async fn racing_grants_cannot_pass_the_limit_and_keys_replay() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let l = line(&owner, &t, "500.00").await;
    let id = l["id"].as_str().unwrap();
    let path = format!("/v1/credit-lines/{id}/grant");
    let body = || json!({"amount": "200.00"});
    let (r1, r2, r3, r4) = tokio::join!(
        owner.post(&path, body()),
        owner.post(&path, body()),
        owner.post(&path, body()),
        owner.post(&path, body())
    );
    let results = [r1, r2, r3, r4];
    let ok = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(ok, 2, "{results:?}");
    for (s, b) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*s, StatusCode::CONFLICT, "{b}");
    }
    assert_eq!(usd_balance(&owner, &t).await["credit"], "400.00");

    // The same Idempotency-Key moves money once and replays the first answer.
    let key = [("Idempotency-Key", "grant-once-1")];
    let first = owner
        .raw(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": "50.00"})),
            &key,
        )
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = owner
        .raw(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": "50.00"})),
            &key,
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(usd_balance(&owner, &t).await["credit"], "450.00");
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn a_racing_delete_and_grant_never_strand_credit() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    for _ in 0..3 {
        let l = line(&owner, &t, "100.00").await;
        let id = l["id"].as_str().unwrap();
        let (grant_path, line_path) = (
            format!("/v1/credit-lines/{id}/grant"),
            format!("/v1/credit-lines/{id}"),
        );
        let (grant, delete) = tokio::join!(
            owner.post(&grant_path, json!({"amount": "10.00"})),
            owner.delete(&line_path)
        );
        let (_, after) = owner.get(&format!("/v1/credit-lines/{id}")).await;
        match (grant.0, delete.0) {
            (StatusCode::CREATED, StatusCode::CONFLICT) => {
                assert_eq!(delete.1["code"], "credit_outstanding");
                assert_eq!(after["outstanding"], "10.00");
                let (s, _) = owner
                    .post(
                        &format!("/v1/credit-lines/{id}/revoke"),
                        json!({"amount": "10.00"}),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED);
                let (s, _) = owner.delete(&format!("/v1/credit-lines/{id}")).await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
            (StatusCode::CONFLICT, StatusCode::NO_CONTENT) => {
                assert_eq!(grant.1["code"], "credit_line_deleted");
                assert_eq!(after["outstanding"], "0");
            }
            other => panic!("unexpected outcome {other:?}: {grant:?} {delete:?}"),
        }
    }
    ledger_ok(&app, &owner.tenant_id).await;
}
