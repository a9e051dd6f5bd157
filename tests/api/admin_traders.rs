use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

async fn new_trader(m: &Member, email: &str) -> String {
    let (s, t) = m.post("/v1/traders", json!({"email": email})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Submits a trader's KYC for review (the only KYC change these tests make outside the
/// decision endpoints: approved/rejected are reached through the bulk decisions).
async fn submit_kyc(m: &Member, id: &str) {
    let (s, b) = m
        .patch(
            &format!("/v1/traders/{id}"),
            json!({"kycStatus": "pending"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn decide(m: &Member, id: &str, approve: bool) {
    let path = if approve {
        "/v1/admin/traders/bulk-approve-kyc"
    } else {
        "/v1/admin/traders/bulk-reject-kyc"
    };
    let (s, b) = m
        .post(path, json!({"traderIds": [id], "reason": "test decision"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn kyc_of(m: &Member, id: &str) -> String {
    let (_, t) = m.get(&format!("/v1/traders/{id}")).await;
    t["kycStatus"].as_str().unwrap_or_default().to_string()
}

async fn count(app: &TestApp, m: &Member, sql: &str) -> i64 {
    app.count(sql, &m.tenant_id).await
}

#[tokio::test]
async fn stats_count_the_tenant_only() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(new_trader(&owner, &format!("s{i}@example.com")).await);
    }
    new_trader(&other, "elsewhere@example.com").await;
    for id in &ids[0..4] {
        submit_kyc(&owner, id).await;
    }
    decide(&owner, &ids[2], true).await;
    decide(&owner, &ids[3], false).await;
    let (s, _) = owner
        .post(
            &format!("/v1/traders/{}/suspend", ids[4]),
            json!({"reason": "AML"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Deleted traders are not counted.
    assert_eq!(
        owner.delete(&format!("/v1/traders/{}", ids[5])).await.0,
        StatusCode::NO_CONTENT
    );
    // Age two traders: one 20 days old, one 40 days old.
    for (id, days) in [(&ids[0], 20), (&ids[1], 40)] {
        let at = days_ago(days);
        sqlx::query("UPDATE traders SET created_at = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(at)
            .bind(&owner.tenant_id)
            .bind(id)
            .execute(app.db.pool())
            .await
            .unwrap();
    }
    for (trader, number) in [(&ids[0], "1"), (&ids[0], "2"), (&ids[2], "3")] {
        let (s, b) = owner
            .post(
                "/v1/accounts",
                json!({"traderId": trader, "platform": "mt5", "accountNumber": number, "currency": "USD"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, st) = owner.get("/v1/admin/traders/stats").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["total"], 5);
    assert_eq!(st["active"], 4);
    assert_eq!(st["suspended"], 1);
    assert_eq!(
        st["byKycStatus"],
        json!({"not_started": 1, "pending": 2, "approved": 1, "rejected": 1})
    );
    assert_eq!(st["newLast7Days"], 3);
    assert_eq!(st["newLast30Days"], 4);
    assert_eq!(st["withTradingAccounts"], 2);

    let (_, theirs) = other.get("/v1/admin/traders/stats").await;
    assert_eq!(theirs["total"], 1);
    assert_eq!(theirs["withTradingAccounts"], 0);
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn full_view_gathers_what_exists() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let id = new_trader(&owner, "full@example.com").await;
    let someone_else = new_trader(&owner, "else@example.com").await;
    let mut accounts = Vec::new();
    for n in ["1", "2", "3"] {
        let (_, a) = owner
            .post(
                "/v1/accounts",
                json!({"traderId": id, "platform": "mt5", "accountNumber": n, "currency": "USD"}),
            )
            .await;
        accounts.push(a["id"].as_str().unwrap().to_string());
    }
    owner
        .post(
            "/v1/accounts",
            json!({"traderId": someone_else, "platform": "mt5", "accountNumber": "9", "currency": "USD"}),
        )
        .await;
    assert_eq!(
        owner
            .delete(&format!("/v1/accounts/{}", accounts[2]))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for amount in ["1", "2"] {
        let (s, b) = owner
            .post(
                "/v1/transactions",
                json!({"traderId": id, "accountId": accounts[0], "kind": "deposit", "amount": amount}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, full) = owner.get(&format!("/v1/admin/traders/{id}/full")).await;
    assert_eq!(s, StatusCode::OK, "{full}");
    assert_eq!(full["trader"]["email"], "full@example.com");
    assert_eq!(full["accounts"].as_array().unwrap().len(), 2, "live only");
    assert_eq!(full["accounts"][0]["id"], accounts[1].as_str());
    assert_eq!(full["recentTransactions"].as_array().unwrap().len(), 2);
    assert_eq!(full["recentTransactions"][0]["amount"], "2");
    let actions: Vec<&str> = full["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // trader.create + 2 live account creations (the deleted account's history stays in /v1/audit).
    assert_eq!(actions.iter().filter(|a| **a == "trader.create").count(), 1);
    assert_eq!(
        actions.iter().filter(|a| **a == "account.create").count(),
        2
    );
    assert!(!full.to_string().contains("else@example.com"));

    // Roles outside the audit readers get the view without the audit trail.
    let (s, d) = dealer.get(&format!("/v1/admin/traders/{id}/full")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(d.get("audit").is_none(), "{d}");
    assert_eq!(d["accounts"].as_array().unwrap().len(), 2);

    let (s, body) = other.get(&format!("/v1/admin/traders/{id}/full")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("full@example.com"));
    assert_eq!(
        owner.get("/v1/admin/traders/not-a-ulid/full").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .anonymous()
            .get(&format!("/v1/admin/traders/{id}/full"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let ib = app.member(&owner, &["ib"]).await;
    assert_eq!(
        ib.get(&format!("/v1/admin/traders/{id}/full")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ib.get("/v1/admin/traders/stats").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn bulk_approve_kyc_all_or_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let a = new_trader(&owner, "a@example.com").await;
    let b = new_trader(&owner, "b@example.com").await;
    let c = new_trader(&owner, "c@example.com").await;
    let foreign = new_trader(&other, "x@example.com").await;
    for id in [&a, &b] {
        submit_kyc(&owner, id).await;
    }
    submit_kyc(&owner, &c).await;
    decide(&owner, &c, false).await;

    // One id outside the tenant: 404, nothing changes.
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a, b, foreign]}),
        )
        .await;
    assert_problem(s, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(kyc_of(&owner, &a).await, "pending");
    assert_eq!(kyc_of(&other, &foreign).await, "not_started");

    // One trader not pending (rejected): 409 naming it, nothing changes.
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a, b, c]}),
        )
        .await;
    assert_problem(s, &body, StatusCode::CONFLICT, "illegal_kyc_transition");
    assert!(body["detail"].as_str().unwrap().contains(&c), "{body}");
    assert_eq!(kyc_of(&owner, &a).await, "pending");
    assert_eq!(kyc_of(&owner, &b).await, "pending");

    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a, b, a], "reason": "Docs verified"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], 2);
    assert_eq!(body["unchanged"], 0);
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        2,
        "duplicates dropped"
    );
    assert_eq!(
        body["data"][0],
        json!({"traderId": a, "previousKycStatus": "pending", "kycStatus": "approved", "changed": true})
    );
    assert_eq!(kyc_of(&owner, &b).await, "approved");

    // Retrying is harmless: already approved traders are reported unchanged.
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a, b]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["changed"], &body["unchanged"]),
        (&json!(0), &json!(2))
    );

    // One audit entry and one event per changed trader, with the reason.
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'trader.kyc_approve'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.kyc_approved'"
        )
        .await,
        2
    );
    let (_, audit) = owner
        .get(&format!(
            "/v1/audit?resourceId={a}&action=trader.kyc_approve"
        ))
        .await;
    assert_eq!(audit["data"][0]["before"]["kycStatus"], "pending");
    assert_eq!(audit["data"][0]["after"]["kycStatus"], "approved");
    assert_eq!(
        audit["data"][0]["after"]["kycDecisionReason"],
        "Docs verified"
    );
}

#[tokio::test]
async fn bulk_reject_kyc_and_resubmission() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let a = new_trader(&owner, "a@example.com").await;
    let fresh = new_trader(&owner, "fresh@example.com").await;
    submit_kyc(&owner, &a).await;

    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-reject-kyc",
            json!({"traderIds": [a]}),
        )
        .await;
    assert_field_error(s, &body, "reason");
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-reject-kyc",
            json!({"traderIds": [a], "reason": "   "}),
        )
        .await;
    assert_field_error(s, &body, "reason");
    // not_started has nothing to decide on.
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-reject-kyc",
            json!({"traderIds": [fresh], "reason": "x"}),
        )
        .await;
    assert_problem(s, &body, StatusCode::CONFLICT, "illegal_kyc_transition");
    assert_eq!(kyc_of(&owner, &a).await, "pending");

    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-reject-kyc",
            json!({"traderIds": [a], "reason": "Blurry passport"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["kycStatus"], "rejected");
    // Approving a rejected trader is illegal until the trader resubmits (rejected -> pending).
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a]}),
        )
        .await;
    assert_problem(s, &body, StatusCode::CONFLICT, "illegal_kyc_transition");
    assert_eq!(kyc_of(&owner, &a).await, "rejected");
    submit_kyc(&owner, &a).await;
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a]}),
        )
        .await;
    assert_eq!(
        (s, &body["data"][0]["kycStatus"]),
        (StatusCode::OK, &json!("approved"))
    );
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.kyc_rejected'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn bulk_bodies_are_validated() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let a = new_trader(&owner, "a@example.com").await;
    submit_kyc(&owner, &a).await;
    let too_many: Vec<String> = (0..501).map(|i| format!("01ID{i:022}")).collect();
    for (path, rest) in [
        ("/v1/admin/traders/bulk-approve-kyc", json!({"reason": "r"})),
        ("/v1/admin/traders/bulk-reject-kyc", json!({"reason": "r"})),
        ("/v1/admin/traders/bulk-segments", json!({"add": ["x"]})),
    ] {
        for ids in [
            None,
            Some(json!([])),
            Some(json!(too_many)),
            Some(json!([""])),
            Some(json!("abc")),
        ] {
            let mut body = rest.clone();
            if let Some(ids) = ids {
                body["traderIds"] = ids;
            }
            let (s, b) = owner.post(path, body).await;
            assert_field_error(s, &b, "traderIds");
        }
    }
    let (s, b) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a], "add": ["x"]}),
        )
        .await;
    assert_field_error(s, &b, "add");
    let (s, b) = owner
        .post(
            "/v1/admin/traders/bulk-segments",
            json!({"traderIds": [a], "reason": "x", "add": ["x"]}),
        )
        .await;
    assert_field_error(s, &b, "reason");
    let (s, b) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": [a], "reason": "r".repeat(501)}),
        )
        .await;
    assert_field_error(s, &b, "reason");
    // Exactly 500 is allowed (and 404s here because they are not traders).
    let five_hundred: Vec<String> = (0..500).map(|i| format!("01ID{i:022}")).collect();
    let (s, b) = owner
        .post(
            "/v1/admin/traders/bulk-approve-kyc",
            json!({"traderIds": five_hundred}),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(kyc_of(&owner, &a).await, "pending");
}

#[tokio::test]
async fn bulk_roles_and_auth() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let a = new_trader(&owner, "a@example.com").await;
    submit_kyc(&owner, &a).await;
    let sales = app.member(&owner, &["sales"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let compliance = app.member(&owner, &["compliance"]).await;
    let anon = owner.anonymous();
    let approve = json!({"traderIds": [a]});
    let segs = json!({"traderIds": [a], "add": ["vip"]});
    assert_eq!(
        anon.post("/v1/admin/traders/bulk-approve-kyc", approve.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.post("/v1/admin/traders/bulk-segments", segs.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.get("/v1/admin/traders/stats").await.0,
        StatusCode::UNAUTHORIZED
    );
    for m in [&sales, &dealer] {
        let (s, b) = m
            .post("/v1/admin/traders/bulk-approve-kyc", approve.clone())
            .await;
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
        let (s, b) = m
            .post(
                "/v1/admin/traders/bulk-reject-kyc",
                json!({"traderIds": [a], "reason": "x"}),
            )
            .await;
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    }
    let (s, b) = dealer
        .post("/v1/admin/traders/bulk-segments", segs.clone())
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(kyc_of(&owner, &a).await, "pending");
    assert_eq!(
        dealer.get("/v1/admin/traders/stats").await.0,
        StatusCode::OK
    );
    assert_eq!(
        compliance
            .post("/v1/admin/traders/bulk-approve-kyc", approve)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        sales.post("/v1/admin/traders/bulk-segments", segs).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bulk_segments_all_or_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let a = new_trader(&owner, "a@example.com").await;
    let (_, t) = owner
        .post(
            "/v1/traders",
            json!({"email": "b@example.com", "segments": ["new", "gold"]}),
        )
        .await;
    let b = t["id"].as_str().unwrap().to_string();
    let foreign = new_trader(&other, "x@example.com").await;

    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-segments",
            json!({"traderIds": [a, b], "add": ["vip"], "remove": ["new"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["segments"], json!(["vip"]));
    assert_eq!(body["data"][1]["segments"], json!(["gold", "vip"]));
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'trader.segments'"
        )
        .await,
        2
    );

    // A foreign id anywhere in the list: 404 and no trader changes.
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-segments",
            json!({"traderIds": [a, foreign], "add": ["whale"]}),
        )
        .await;
    assert_problem(s, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, ta) = owner.get(&format!("/v1/traders/{a}")).await;
    assert_eq!(ta["segments"], json!(["vip"]));
    let (_, tf) = other.get(&format!("/v1/traders/{foreign}")).await;
    assert_eq!(tf["segments"], json!([]));

    // A trader that would exceed 50 segments fails the whole call, including earlier traders.
    let fill_up: Vec<String> = (0..48).map(|i| format!("s{i}")).collect();
    let (s, _) = owner
        .patch(
            &format!("/v1/traders/{b}/segments"),
            json!({"add": fill_up}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = owner
        .post(
            "/v1/admin/traders/bulk-segments",
            json!({"traderIds": [a, b], "add": ["one", "two"]}),
        )
        .await;
    assert_field_error(s, &body, "add");
    let (_, ta) = owner.get(&format!("/v1/traders/{a}")).await;
    assert_eq!(ta["segments"], json!(["vip"]));
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'trader.segments'"
        )
        .await,
        3
    );

    let (s, body) = owner
        .post("/v1/admin/traders/bulk-segments", json!({"traderIds": [a]}))
        .await;
    assert_field_error(s, &body, "add");
}
