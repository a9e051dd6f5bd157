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

async fn rule(m: &Member, body: Value) -> String {
    let (s, r) = m.post("/v1/bonuses", body).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    r["id"].as_str().unwrap().to_string()
}

/// Creates, approves and settles a deposit (no fee); returns its id.
async fn deposit(m: &Member, trader_id: &str, amount: &str, currency: &str) -> String {
    let (s, d) = m
        .post("/v1/payments/deposits", json!({"traderId": trader_id, "kind": "bank_wire", "amount": amount, "currency": currency}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let (s, d) = m
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let (s, d) = m
        .post("/v1/payments/deposits/settle", json!({"id": id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    id
}

async fn balance(m: &Member, trader_id: &str, currency: &str) -> Value {
    let (s, b) = m
        .get(&format!("/v1/payments/traders/{trader_id}/balances"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["currency"] == currency)
        .cloned()
        .unwrap_or(json!({}))
}

/// Issuances of a deposit, as the log shows them.
async fn issued_for(m: &Member, deposit_id: &str) -> Vec<Value> {
    let (s, log) = m
        .get(&format!("/v1/bonuses/issuance-log?depositId={deposit_id}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    log["data"].as_array().unwrap().clone()
}

async fn ledger_ok(app: &TestApp, tenant: &str) {
    let report = lumire_engine::ledger::verify(app.db.pool(), tenant)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

async fn count(app: &TestApp, tenant: &str, sql: &str) -> i64 {
    app.count(sql, tenant).await
}

#[tokio::test]
async fn settlement_issues_rounded_capped_bonuses() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let finance = app.member(&owner, &["finance"]).await;
    let t = trader(&owner).await;
    // 10% of 123.45 = 12.345 → 12.34 (rounded down; the house keeps 0.005).
    let pct = rule(
        &finance,
        json!({"name": "Ten percent", "kind": "percent", "value": "10", "currency": "USD"}),
    )
    .await;
    // 50% of 123.45 = 61.725, capped at 20.00.
    let capped = rule(
        &finance,
        json!({"name": "Half, capped", "trigger": "deposit", "kind": "percent", "value": "50", "maxBonus": "20.00", "currency": "USD"}),
    )
    .await;
    // Needs 200 or more: not paid.
    let big = rule(
        &finance,
        json!({"name": "Big depositor", "kind": "fixed", "value": "25.00", "minDeposit": "200.00", "currency": "USD"}),
    )
    .await;
    // Other currency: not paid.
    rule(
        &finance,
        json!({"name": "Euro", "kind": "fixed", "value": "5", "currency": "EUR"}),
    )
    .await;
    // Inactive: not paid.
    rule(
        &finance,
        json!({"name": "Off", "kind": "fixed", "value": "5", "currency": "USD", "active": false}),
    )
    .await;

    let d = deposit(&finance, &t, "123.45", "USD").await;
    let log = issued_for(&owner, &d).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let amount_of = |rule_id: &str| {
        log.iter()
            .find(|i| i["ruleId"] == rule_id)
            .map(|i| i["amount"].as_str().unwrap().to_string())
    };
    assert_eq!(amount_of(&pct).as_deref(), Some("12.34"));
    assert_eq!(amount_of(&capped).as_deref(), Some("20.00"));
    assert_eq!(amount_of(&big), None);
    assert!(log.iter().all(|i| i["status"] == "issued"
        && i["source"] == "settlement"
        && i["depositAmount"] == "123.45"
        && i["ledgerEntryId"].is_string()));

    // Bonus money is credit on the bonus line, not cash.
    let b = balance(&owner, &t, "USD").await;
    assert_eq!(
        (&b["available"], &b["bonus"], &b["credit"]),
        (&json!("123.45"), &json!("32.34"), &json!("0")),
        "{b}"
    );
    let line_id = log[0]["creditLineId"].as_str().unwrap();
    let (s, line) = owner.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!(s, StatusCode::OK, "{line}");
    assert_eq!(
        (&line["kind"], &line["outstanding"], &line["limit"]),
        (&json!("bonus"), &json!("32.34"), &Value::Null)
    );
    let (_, entries) = owner
        .get(&format!("/v1/credit-lines/{line_id}/entries"))
        .await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2);
    assert_eq!(entries["data"][0]["source"], "bonus");
    let house: String = sqlx::query_scalar(
        "SELECT balance FROM ledger_accounts WHERE tenant_id = $1 AND code = 'house:bonuses' AND currency = 'USD'",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(house, "-32.34");
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'bonus.issued'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'bonus.issue'"
        )
        .await,
        2
    );

    // A second deposit gets its own bonuses on the same bonus line; min deposit now met.
    let d2 = deposit(&finance, &t, "200.00", "USD").await;
    let log2 = issued_for(&owner, &d2).await;
    assert_eq!(log2.len(), 3, "{log2:?}");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "97.34");
    assert!(log2.iter().all(|i| i["creditLineId"] == line_id));

    // Zero-decimal currency: 10% of 1005 JPY = 100.5 → 100.
    rule(
        &finance,
        json!({"name": "Yen", "kind": "percent", "value": "10", "currency": "JPY"}),
    )
    .await;
    let dj = deposit(&finance, &t, "1005", "JPY").await;
    let lj = issued_for(&owner, &dj).await;
    assert_eq!(lj.len(), 1);
    assert_eq!(lj[0]["amount"], "100");
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn first_deposit_only_pays_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    rule(
        &owner,
        json!({"name": "Welcome", "kind": "fixed", "value": "50.00", "currency": "USD", "firstDepositOnly": true}),
    )
    .await;
    let d1 = deposit(&owner, &t, "100.00", "USD").await;
    let d2 = deposit(&owner, &t, "100.00", "USD").await;
    assert_eq!(issued_for(&owner, &d1).await.len(), 1);
    assert_eq!(issued_for(&owner, &d2).await.len(), 0);
    let (s, r) = owner
        .post(&format!("/v1/bonuses/replay/{d2}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["skipped"][0]["reason"], "not_first_deposit", "{r}");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "50.00");
}

#[tokio::test]
async fn replay_is_idempotent() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    // Settled before any rule existed: nothing issued.
    let d = deposit(&owner, &t, "80.00", "USD").await;
    assert_eq!(issued_for(&owner, &d).await.len(), 0);
    let r1 = rule(
        &owner,
        json!({"name": "Late", "kind": "percent", "value": "12.5", "currency": "USD"}),
    )
    .await;
    let r2 = rule(
        &owner,
        json!({"name": "Too high", "kind": "fixed", "value": "1", "minDeposit": "100", "currency": "USD"}),
    )
    .await;

    let (s, r) = owner
        .post(&format!("/v1/bonuses/replay/{d}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["depositId"], d.as_str());
    assert_eq!(r["issued"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["issued"][0]["amount"], "10.00");
    assert_eq!(r["issued"][0]["source"], "replay");
    assert_eq!(r["issued"][0]["ruleId"], r1.as_str());
    assert_eq!(
        r["skipped"],
        json!([{"ruleId": r2, "ruleName": "Too high", "reason": "below_min_deposit"}])
    );

    // Second replay: the (rule, deposit) key is taken, so it is skipped.
    let (s, r) = owner
        .post(&format!("/v1/bonuses/replay/{d}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["issued"], json!([]));
    let reasons: Vec<(&str, &str)> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["ruleId"].as_str().unwrap(), x["reason"].as_str().unwrap()))
        .collect();
    assert!(reasons.contains(&(r1.as_str(), "already_issued")), "{r}");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "10.00");
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM bonus_issuances WHERE tenant_id = $1"
        )
        .await,
        1
    );

    // Only settled deposits; others are 409, unknown ones 404.
    let (_, pending) = owner
        .post(
            "/v1/payments/deposits",
            json!({"traderId": t, "kind": "card", "amount": "500", "currency": "USD"}),
        )
        .await;
    let pid = pending["id"].as_str().unwrap();
    let (s, b) = owner
        .post(&format!("/v1/bonuses/replay/{pid}"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (s, _) = owner
        .post("/v1/bonuses/replay/01JUNKNOWNDEPOSIT", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let other = app.register_owner().await;
    let (s, _) = other
        .post(&format!("/v1/bonuses/replay/{d}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn reversal_claws_back_and_records_shortfall() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    rule(
        &owner,
        json!({"name": "Twenty", "kind": "percent", "value": "20", "currency": "USD"}),
    )
    .await;
    // Full clawback: the grant's exact ledger reversal.
    let d1 = deposit(&owner, &t, "100.00", "USD").await;
    let grant_entry = issued_for(&owner, &d1).await[0]["ledgerEntryId"]
        .as_str()
        .unwrap()
        .to_string();
    let d2 = deposit(&owner, &t, "50.00", "USD").await;
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "30.00");
    let (s, r) = owner
        .post(
            "/v1/payments/deposits/reverse",
            json!({"id": d1, "reason": "chargeback"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let i1 = &issued_for(&owner, &d1).await[0];
    assert_eq!(
        (&i1["status"], &i1["clawedBackAmount"], &i1["shortfall"]),
        (&json!("clawed_back"), &json!("20.00"), &json!("0.00")),
        "{i1}"
    );
    let reversal: Option<String> = sqlx::query_scalar(
        "SELECT reverses_entry_id FROM journal_entries WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&owner.tenant_id)
    .bind(i1["clawbackEntryId"].as_str().unwrap())
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(reversal.as_deref(), Some(grant_entry.as_str()));
    let b = balance(&owner, &t, "USD").await;
    assert_eq!(
        (&b["bonus"], &b["available"]),
        (&json!("10.00"), &json!("50.00")),
        "{b}"
    );

    // Partial: an operator already revoked 4 of the remaining 10; the reversal claws back the
    // 6 left and records 4 as shortfall.
    let line_id = i1["creditLineId"].as_str().unwrap();
    let (s, b) = owner
        .post(
            &format!("/v1/credit-lines/{line_id}/revoke"),
            json!({"amount": "4.00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, r) = owner
        .post(
            "/v1/payments/deposits/reverse",
            json!({"id": d2, "reason": "fraud"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let i2 = &issued_for(&owner, &d2).await[0];
    assert_eq!(
        (&i2["status"], &i2["clawedBackAmount"], &i2["shortfall"]),
        (&json!("clawed_back"), &json!("6.00"), &json!("4.00")),
        "{i2}"
    );
    let b = balance(&owner, &t, "USD").await;
    assert_eq!(
        (&b["bonus"], &b["available"]),
        (&json!("0.00"), &json!("0.00")),
        "{b}"
    );
    let (_, entries) = owner
        .get(&format!(
            "/v1/credit-lines/{line_id}/entries?source=clawback"
        ))
        .await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2, "{entries}");
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'bonus.clawed_back'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'bonus.claw_back'"
        )
        .await,
        2
    );

    // A reversed deposit cannot be replayed into a new bonus.
    let (s, b) = owner
        .post(&format!("/v1/bonuses/replay/{d1}"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");

    // Stats: two issued (30.00), both clawed back (26.00), 4.00 shortfall.
    let (s, st) = owner.get("/v1/bonuses/stats").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(
        st["byCurrency"],
        json!([{"currency": "USD", "issuedCount": 2, "issuedTotal": "30.00", "clawedBackCount": 2,
                "clawedBackTotal": "26.00", "shortfallTotal": "4.00", "netTotal": "4.00"}])
    );
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn stats_per_currency_and_rule() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let a = rule(
        &owner,
        json!({"name": "A", "kind": "fixed", "value": "5.00", "currency": "USD"}),
    )
    .await;
    let b = rule(
        &owner,
        json!({"name": "B", "kind": "percent", "value": "1", "currency": "USD"}),
    )
    .await;
    let e = rule(
        &owner,
        json!({"name": "E", "kind": "fixed", "value": "2", "currency": "EUR"}),
    )
    .await;
    deposit(&owner, &t, "100.00", "USD").await;
    deposit(&owner, &t, "300.00", "USD").await;
    deposit(&owner, &t, "10.00", "EUR").await;
    let (s, st) = owner.get("/v1/bonuses/stats").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["rules"], json!({"total": 3, "active": 3}));
    let cur = |c: &str| {
        st["byCurrency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["currency"] == c)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (&cur("USD")["issuedCount"], &cur("USD")["issuedTotal"]),
        (&json!(4), &json!("14.00"))
    );
    assert_eq!(cur("EUR")["issuedTotal"], "2");
    let per = |id: &str| {
        st["byRule"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["ruleId"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            &per(&a)["name"],
            &per(&a)["issuedCount"],
            &per(&a)["issuedTotal"]
        ),
        (&json!("A"), &json!(2), &json!("10.00"))
    );
    assert_eq!(per(&b)["issuedTotal"], "4.00");
    assert_eq!(per(&e)["currency"], "EUR");
    let (_, st) = owner.get("/v1/bonuses/stats?currency=EUR").await;
    assert_eq!(st["byCurrency"].as_array().unwrap().len(), 1);
    let (s, b) = owner.get("/v1/bonuses/stats?from=yesterday").await;
    assert_field_error(s, &b, "from");

    // The log pages and filters.
    let (_, p1) = owner.get("/v1/bonuses/issuance-log?limit=3").await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/bonuses/issuance-log?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    let (_, f) = owner
        .get(&format!("/v1/bonuses/issuance-log?ruleId={a}"))
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    // Another tenant sees nothing.
    let other = app.register_owner().await;
    let (_, st) = other.get("/v1/bonuses/stats").await;
    assert_eq!(st["byCurrency"], json!([]));
    let (_, log) = other.get("/v1/bonuses/issuance-log").await;
    assert_eq!(log["data"], json!([]));
}

#[tokio::test]
async fn rule_crud_access_and_validation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let finance = app.member(&owner, &["finance"]).await;
    let support = app.member(&owner, &["support"]).await;
    let (s, r) = finance
        .post(
            "/v1/bonuses",
            json!({"name": "Welcome 50%", "description": "First deposit bonus", "trigger": "deposit", "kind": "percent",
                   "value": "50", "maxBonus": "500.00", "minDeposit": "100.00", "currency": "USD", "firstDepositOnly": true, "active": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        (&r["trigger"], &r["firstDepositOnly"], &r["maxBonus"]),
        (&json!("deposit"), &json!(true), &json!("500.00"))
    );
    let (s, g) = support.get(&format!("/v1/bonuses/{id}")).await;
    assert_eq!((s, &g["name"]), (StatusCode::OK, &json!("Welcome 50%")));
    let (s, p) = finance
        .patch(
            &format!("/v1/bonuses/{id}"),
            json!({"value": "25", "maxBonus": null, "active": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (&p["value"], &p["maxBonus"], &p["active"], &p["minDeposit"]),
        (&json!("25"), &Value::Null, &json!(false), &json!("100.00"))
    );
    let (_, l) = support.get("/v1/bonuses?active=false").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    let (_, l) = support.get("/v1/bonuses?active=true").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 0);
    let (s, b) = support.get("/v1/bonuses?active=maybe").await;
    assert_field_error(s, &b, "active");

    // 401, 403.
    let anon = owner.anonymous();
    let (s, _) = anon.get("/v1/bonuses").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = anon.get("/v1/bonuses/stats").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = support
        .post(
            "/v1/bonuses",
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "USD"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = support
        .patch(&format!("/v1/bonuses/{id}"), json!({"active": true}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = support.delete(&format!("/v1/bonuses/{id}")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = support
        .post("/v1/bonuses/replay/01JANYTHING", json!({}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = support.get("/v1/bonuses/issuance-log").await;
    assert_eq!(s, StatusCode::OK);

    // 404 for another tenant.
    let other = app.register_owner().await;
    let (s, _) = other.get(&format!("/v1/bonuses/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other
        .patch(&format!("/v1/bonuses/{id}"), json!({"active": true}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other.delete(&format!("/v1/bonuses/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, l) = other.get("/v1/bonuses").await;
    assert_eq!(l["data"], json!([]));

    // 400 naming the field.
    for (body, field) in [
        (
            json!({"kind": "fixed", "value": "1", "currency": "USD"}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "bogus", "value": "1", "currency": "USD"}),
            "kind",
        ),
        (
            json!({"name": "x", "trigger": "login", "kind": "fixed", "value": "1", "currency": "USD"}),
            "trigger",
        ),
        (
            json!({"name": "x", "kind": "percent", "value": "0", "currency": "USD"}),
            "value",
        ),
        (
            json!({"name": "x", "kind": "percent", "value": "1001", "currency": "USD"}),
            "value",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1.001", "currency": "USD"}),
            "value",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "USD", "maxBonus": "abc"}),
            "maxBonus",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "USD", "minDeposit": "-1"}),
            "minDeposit",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "dollars"}),
            "currency",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "USD", "cap": "5"}),
            "cap",
        ),
        (
            json!({"name": "x", "kind": "fixed", "value": "1", "currency": "USD", "active": "yes"}),
            "active",
        ),
    ] {
        let (s, b) = finance.post("/v1/bonuses", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = finance
        .patch(
            &format!("/v1/bonuses/{id}"),
            json!({"kind": "percent", "value": "abc"}),
        )
        .await;
    assert_field_error(s, &b, "value");

    // Delete is soft: gone from reads, stops issuing.
    let (s, _) = finance.delete(&format!("/v1/bonuses/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = finance.get(&format!("/v1/bonuses/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = finance.delete(&format!("/v1/bonuses/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for e in ["bonus.created", "bonus.updated", "bonus.deleted"] {
        assert_eq!(
            count(
                &app,
                &owner.tenant_id,
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{e}'")
            )
            .await,
            1,
            "{e}"
        );
    }
}

#[tokio::test]
async fn racing_replays_issue_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let d = deposit(&owner, &t, "100.00", "USD").await;
    rule(
        &owner,
        json!({"name": "Late", "kind": "fixed", "value": "7.00", "currency": "USD"}),
    )
    .await;
    let path = format!("/v1/bonuses/replay/{d}");
    let (r1, r2, r3, r4) = tokio::join!(
        owner.post(&path, json!({})),
        owner.post(&path, json!({})),
        owner.post(&path, json!({})),
        owner.post(&path, json!({}))
    );
    let results = [r1, r2, r3, r4];
    let issued: usize = results
        .iter()
        .map(|(s, r)| {
            assert!(
                *s == StatusCode::OK || *s == StatusCode::CONFLICT,
                "{s} {r}"
            );
            r["issued"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(issued, 1, "{results:?}");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "7.00");
    assert_eq!(issued_for(&owner, &d).await.len(), 1);
    ledger_ok(&app, &owner.tenant_id).await;
}

/// Sends a signed Stripe event to the tenant's webhook endpoint.
async fn stripe_event(app: &TestApp, slug: &str, secret: &str, event: Value) -> Value {
    use hmac::{Hmac, Mac};
    let body = event.to_string();
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let r = app
        .anonymous()
        .raw_request(
            reqwest::Method::POST,
            &format!("/v1/payments/webhooks/stripe?tenant={slug}"),
        )
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={t},v1={sig}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn provider_webhooks_issue_and_claw_back_too() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let secret = "whsec_bonus_test_0123456789";
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": secret}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = trader(&owner).await;
    rule(
        &owner,
        json!({"name": "Card 3.33%", "kind": "percent", "value": "3.33", "currency": "USD"}),
    )
    .await;
    let (s, d) = owner
        .post("/v1/payments/deposits", json!({"traderId": t, "kind": "card", "amount": "99.99", "currency": "USD", "externalId": "pi_bonus"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let d = d["id"].as_str().unwrap().to_string();
    let ev = json!({"id": "evt_b1", "object": "event", "type": "payment_intent.succeeded", "livemode": false,
        "data": {"object": {"id": "pi_bonus", "object": "payment_intent", "amount": 9999,
                            "amount_received": 9999, "currency": "usd", "metadata": {}}}});
    let b = stripe_event(&app, &owner.slug, secret, ev).await;
    assert_eq!(b["outcome"], "settled", "{b}");
    // 3.33% of 99.99 = 3.329667 → 3.32.
    let log = issued_for(&owner, &d).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["amount"], "3.32");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "3.32");
    let dispute = json!({"id": "evt_b2", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_b", "object": "dispute", "payment_intent": "pi_bonus", "amount": 9999, "currency": "usd"}}});
    let b = stripe_event(&app, &owner.slug, secret, dispute).await;
    assert_eq!(b["outcome"], "reversed", "{b}");
    assert_eq!(issued_for(&owner, &d).await[0]["status"], "clawed_back");
    assert_eq!(balance(&owner, &t, "USD").await["bonus"], "0.00");
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn bonuses_join_the_deposit_flow_through_its_hooks_once() {
    use lumire_engine::payments::hooks::{Moment, registered};
    let _a = TestApp::spawn().await;
    let _b = TestApp::spawn().await;
    for moment in [Moment::Settled, Moment::Reversed] {
        let names = registered(moment);
        assert_eq!(
            names.iter().filter(|n| **n == "bonuses").count(),
            1,
            "{moment:?}: {names:?}"
        );
    }
}
