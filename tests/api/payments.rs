use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) async fn trader(m: &Member) -> String {
    let (s, t) = m
        .post("/v1/traders", json!({"email": format!("{}@client.example", ulid::Ulid::new().to_string().to_lowercase())}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Creates, approves and settles a deposit; returns it.
pub(crate) async fn funded(m: &Member, trader_id: &str, amount: &str, fee: &str) -> Value {
    let (s, d) = m
        .post("/v1/payments/deposits", json!({"traderId": trader_id, "kind": "bank_wire", "amount": amount, "currency": "USD"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap();
    let (s, d) = m
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let (s, d) = m
        .post(
            "/v1/payments/deposits/settle",
            json!({"id": id, "feeAmount": fee}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    d
}

pub(crate) async fn balance(m: &Member, trader_id: &str) -> (String, String) {
    let (s, b) = m
        .get(&format!("/v1/payments/traders/{trader_id}/balances"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let usd = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["currency"] == "USD")
        .cloned()
        .unwrap_or(json!({"available": "0", "held": "0"}));
    (
        usd["available"].as_str().unwrap().to_string(),
        usd["held"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn ledger_ok(app: &TestApp, tenant: &str) {
    let report = lumire_engine::ledger::verify(app.db.pool(), tenant)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn deposit_lifecycle_moves_money_through_the_ledger() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let d = funded(&owner, &t, "100.00", "2.50").await;
    assert_eq!(d["status"], "settled");
    assert_eq!(d["netAmount"], "97.50");
    assert_eq!(balance(&owner, &t).await, ("97.50".into(), "0".into()));
    // The settled deposit appears as a transaction matching its postings.
    let (_, txs) = owner.get(&format!("/v1/transactions?traderId={t}")).await;
    let tx = &txs["data"][0];
    assert_eq!(
        (
            tx["kind"].as_str(),
            tx["amount"].as_str(),
            tx["status"].as_str()
        ),
        (Some("deposit"), Some("97.50"), Some("completed")),
        "{txs}"
    );
    let id = d["id"].as_str().unwrap();
    let (s, r) = owner
        .post(
            "/v1/payments/deposits/reconcile",
            json!({"id": id, "reconciled": true}),
        )
        .await;
    assert_eq!((s, &r["reconciled"]), (StatusCode::OK, &json!(true)));
    let (_, rec) = owner.get("/v1/payments/reconciliation").await;
    assert_eq!(
        rec["deposits"]["totals"][0]["reconciledTotal"], "97.50",
        "{rec}"
    );
    let csv = owner
        .raw(
            reqwest::Method::GET,
            "/v1/payments/deposits/export.csv",
            None,
            &[],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("id,created_at") && csv.contains(id),
        "{csv}"
    );
    // Chargeback: reversed once, money back out, transaction flagged.
    let (s, r) = owner
        .post(
            "/v1/payments/deposits/reverse",
            json!({"id": id, "reason": "chargeback"}),
        )
        .await;
    assert_eq!(
        (s, &r["status"]),
        (StatusCode::OK, &json!("reversed")),
        "{r}"
    );
    assert_eq!(balance(&owner, &t).await.0, "0.00");
    let (s, r) = owner
        .post(
            "/v1/payments/deposits/reverse",
            json!({"id": id, "reason": "again"}),
        )
        .await;
    assert_problem(s, &r, StatusCode::CONFLICT, "invalid_state");
    let (_, txs) = owner.get(&format!("/v1/transactions?traderId={t}")).await;
    assert_eq!(txs["data"][0]["status"], "reversed");
    for e in [
        "deposit.created",
        "deposit.approved",
        "deposit.settled",
        "deposit.reversed",
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
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn deposit_state_machine_and_validation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    for (body, field) in [
        (
            json!({"traderId": t, "kind": "card", "amount": "1e3", "currency": "USD"}),
            "amount",
        ),
        (
            json!({"traderId": t, "kind": "card", "amount": "10.001", "currency": "USD"}),
            "amount",
        ),
        (
            json!({"traderId": t, "kind": "card", "amount": "-5", "currency": "USD"}),
            "amount",
        ),
        (
            json!({"traderId": t, "kind": "card", "amount": "10", "currency": "usd"}),
            "currency",
        ),
        (
            json!({"traderId": t, "kind": "cheque", "amount": "10", "currency": "USD"}),
            "kind",
        ),
        (
            json!({"traderId": "01NOTATRADER", "kind": "card", "amount": "10", "currency": "USD"}),
            "traderId",
        ),
        (
            json!({"traderId": t, "kind": "card", "ammount": "10", "currency": "USD"}),
            "ammount",
        ),
    ] {
        let (s, b) = owner.post("/v1/payments/deposits", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM deposits WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (_, d) = owner
        .post(
            "/v1/payments/deposits",
            json!({"traderId": t, "kind": "card", "amount": "10", "currency": "USD"}),
        )
        .await;
    let id = d["id"].as_str().unwrap();
    let (s, b) = owner
        .post("/v1/payments/deposits/settle", json!({"id": id}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (s, b) = owner
        .post(
            "/v1/payments/deposits/reconcile",
            json!({"id": id, "reconciled": true}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    let (s, b) = owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (s, b) = owner
        .post(
            "/v1/payments/deposits/settle",
            json!({"id": id, "feeAmount": "3", "netAmount": "8"}),
        )
        .await;
    assert_field_error(s, &b, "feeAmount");
    let (s, b) = owner
        .post("/v1/payments/deposits/reject", json!({"id": id}))
        .await;
    assert_field_error(s, &b, "reason");
    let (s, b) = owner
        .post(
            "/v1/payments/deposits/reject",
            json!({"id": id, "reason": "fraud"}),
        )
        .await;
    assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("rejected")));
    let (s, b) = owner
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    assert_eq!(balance(&owner, &t).await.0, "0");
}

#[tokio::test]
async fn deposit_auth_roles_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let (_, d) = owner
        .post(
            "/v1/payments/deposits",
            json!({"traderId": t, "kind": "card", "amount": "10", "currency": "USD"}),
        )
        .await;
    let id = d["id"].as_str().unwrap();
    assert_eq!(
        owner.anonymous().get("/v1/payments/deposits").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner
            .anonymous()
            .post("/v1/payments/deposits/approve", json!({"id": id}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let dealer = app.member(&owner, &["dealer"]).await;
    assert_eq!(dealer.get("/v1/payments/deposits").await.0, StatusCode::OK);
    let (s, b) = dealer
        .post("/v1/payments/deposits/approve", json!({"id": id}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let finance = app.member(&owner, &["finance"]).await;
    assert_eq!(
        finance
            .post("/v1/payments/deposits/approve", json!({"id": id}))
            .await
            .0,
        StatusCode::OK
    );
    let other = app.register_owner().await;
    let (s, b) = other
        .post("/v1/payments/deposits/settle", json!({"id": id}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (_, list) = other.get("/v1/payments/deposits").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        other
            .get(&format!("/v1/payments/traders/{t}/balances"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, b) = other
        .post(
            "/v1/payments/deposits",
            json!({"traderId": t, "kind": "card", "amount": "10", "currency": "USD"}),
        )
        .await;
    assert_field_error(s, &b, "traderId");
}

#[tokio::test]
async fn partial_settle_and_bulk_approve() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, d) = owner
            .post(
                "/v1/payments/deposits",
                json!({"traderId": t, "kind": "bank_wire", "amount": "100", "currency": "USD"}),
            )
            .await;
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    let (s, b) = owner
        .post("/v1/payments/deposits/bulk-approve", json!({"ids": ids}))
        .await;
    assert_eq!((s, &b["approved"]), (StatusCode::OK, &json!(3)), "{b}");
    // One already approved id refuses the whole batch.
    let (_, d) = owner
        .post(
            "/v1/payments/deposits",
            json!({"traderId": t, "kind": "bank_wire", "amount": "5", "currency": "USD"}),
        )
        .await;
    let fresh = d["id"].as_str().unwrap().to_string();
    let (s, b) = owner
        .post(
            "/v1/payments/deposits/bulk-approve",
            json!({"ids": [fresh, ids[0]]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (_, list) = owner.get("/v1/payments/deposits?status=pending").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "nothing changed");
    let too_many: Vec<String> = (0..51).map(|i| format!("id{i}")).collect();
    let (s, b) = owner
        .post(
            "/v1/payments/deposits/bulk-approve",
            json!({"ids": too_many}),
        )
        .await;
    assert_field_error(s, &b, "ids");
    let (s, b) = owner
        .post(
            &format!("/v1/admin/deposits/{}/partial-settle", ids[0]),
            json!({"settledAmount": "100"}),
        )
        .await;
    assert_field_error(s, &b, "settledAmount");
    let (s, b) = owner
        .post(
            &format!("/v1/admin/deposits/{}/partial-settle", ids[0]),
            json!({"settledAmount": "95.00", "notes": "bank charges"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["settledAmount"], "95.00");
    assert_eq!(
        b["providerPayload"]["partialSettlement"]["requested"],
        "100"
    );
    assert_eq!(balance(&owner, &t).await.0, "95.00");
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn withdrawals_hold_funds_and_need_dual_control_above_the_threshold() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let finance = app.member(&owner, &["finance"]).await;
    let t = trader(&owner).await;
    funded(&owner, &t, "100.00", "0").await;
    let (s, w) = owner
        .post(
            "/v1/payments/withdrawals",
            json!({"traderId": t, "kind": "bank_wire", "amount": "60", "currency": "USD"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(balance(&owner, &t).await, ("40.00".into(), "60".into()));
    let (s, b) = owner
        .post(
            "/v1/payments/withdrawals",
            json!({"traderId": t, "kind": "bank_wire", "amount": "50", "currency": "USD"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "insufficient_funds");
    let w1 = w["id"].as_str().unwrap();
    let (s, b) = owner
        .post(
            "/v1/payments/withdrawals/reject",
            json!({"id": w1, "reason": "client cancelled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(balance(&owner, &t).await, ("100.00".into(), "0".into()));

    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"dualControlThreshold": "50"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = finance
        .patch(
            "/v1/payments/settings",
            json!({"dualControlThreshold": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (_, w) = owner
        .post(
            "/v1/payments/withdrawals",
            json!({"traderId": t, "kind": "bank_wire", "amount": "60", "currency": "USD"}),
        )
        .await;
    assert_eq!(w["needsDualControl"], true);
    let w2 = w["id"].as_str().unwrap();
    let (s, b) = owner
        .post("/v1/payments/withdrawals/approve", json!({"id": w2}))
        .await;
    assert_eq!(
        (s, &b["status"]),
        (StatusCode::OK, &json!("awaiting_second_approval")),
        "{b}"
    );
    let (_, pending) = owner
        .get("/v1/payments/withdrawals/pending-dual-control")
        .await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 1);
    let (s, b) = owner
        .post("/v1/payments/withdrawals/approve", json!({"id": w2}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "second_approver_required");
    let (s, b) = owner
        .post("/v1/payments/withdrawals/settle", json!({"id": w2}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (s, b) = finance
        .post("/v1/payments/withdrawals/approve", json!({"id": w2}))
        .await;
    assert_eq!(
        (s, &b["status"]),
        (StatusCode::OK, &json!("approved")),
        "{b}"
    );
    let (s, b) = finance
        .post(
            "/v1/payments/withdrawals/settle",
            json!({"id": w2, "feeAmount": "1.00"}),
        )
        .await;
    assert_eq!(
        (s, &b["status"], &b["netAmount"]),
        (StatusCode::OK, &json!("settled"), &json!("59.00")),
        "{b}"
    );
    assert_eq!(balance(&owner, &t).await, ("40.00".into(), "0".into()));
    let (s, b) = finance
        .post(
            "/v1/payments/withdrawals/reject",
            json!({"id": w2, "reason": "late"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid_state");
    let (s, _) = finance
        .post(
            "/v1/payments/withdrawals/reconcile",
            json!({"id": w2, "reconciled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let csv = owner
        .raw(
            reqwest::Method::GET,
            "/v1/payments/withdrawals/export.csv?status=settled",
            None,
            &[],
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn racing_withdrawal_requests_never_overdraw() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    funded(&owner, &t, "100.00", "0").await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        let c = owner.client.clone();
        let t = t.clone();
        handles.push(tokio::spawn(async move {
            c.post(
                "/v1/payments/withdrawals",
                json!({"traderId": t, "kind": "bank_wire", "amount": "10", "currency": "USD"}),
            )
            .await
        }));
    }
    let mut created = 0;
    for h in handles {
        let (s, b) = h.await.unwrap();
        match s {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_eq!(b["code"], "insufficient_funds", "{b}"),
            other => panic!("{other}: {b}"),
        }
    }
    assert_eq!(created, 10);
    assert_eq!(balance(&owner, &t).await, ("0.00".into(), "100".into()));
    ledger_ok(&app, &owner.tenant_id).await;
}

#[tokio::test]
async fn payment_methods_and_balances_as_of() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let (s, m1) = owner
        .post(
            "/v1/payments/methods",
            json!({"traderId": t, "kind": "card", "label": "Visa 4242", "isDefault": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m1}");
    let (_, m2) = owner
        .post(
            "/v1/payments/methods",
            json!({"traderId": t, "kind": "bank_wire", "label": "IBAN", "isDefault": true}),
        )
        .await;
    let (_, list) = owner
        .get(&format!("/v1/payments/methods?traderId={t}"))
        .await;
    let defaults: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["isDefault"] == true)
        .collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], m2["id"]);
    let (s, b) = owner
        .post(
            "/v1/payments/methods",
            json!({"traderId": t, "kind": "card"}),
        )
        .await;
    assert_field_error(s, &b, "label");
    let before = lumire_tests::instant_between_writes().await;
    funded(&owner, &t, "10.00", "0").await;
    let (_, past) = owner
        .get(&format!("/v1/payments/traders/{t}/balances?at={before}"))
        .await;
    assert_eq!(past["data"][0]["available"], "0", "{past}");
    let (s, b) = owner
        .get(&format!("/v1/payments/traders/{t}/balances?at=yesterday"))
        .await;
    assert_field_error(s, &b, "at");
}
