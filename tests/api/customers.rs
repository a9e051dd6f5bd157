use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

use crate::portal::signup;

#[tokio::test]
async fn list_get_and_filters() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;
    let mut ids = Vec::new();
    for email in ["c1@example.com", "c2@example.com", "zed@example.com"] {
        let (_, b) = signup(&app, &owner, email).await;
        ids.push(b["customer"]["id"].as_str().unwrap().to_string());
    }
    owner
        .post(&format!("/v1/customers/{}/approve", ids[0]), json!({}))
        .await;
    owner
        .post(
            &format!("/v1/customers/{}/assign", ids[1]),
            json!({"userId": sales.user_id}),
        )
        .await;
    let (s, all) = owner.get("/v1/customers").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["email"], "zed@example.com", "newest first");
    assert!(data[0].get("passwordHash").is_none());
    let (_, p) = owner.get("/v1/customers?status=pending").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2);
    let (_, p) = owner
        .get(&format!("/v1/customers?assignedToId={}", sales.user_id))
        .await;
    assert_eq!(p["data"][0]["id"], ids[1].as_str());
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    let (_, p) = owner.get("/v1/customers?q=ZED").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    let (_, p) = owner.get("/v1/customers?limit=2").await;
    let cursor = p["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/customers?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"][0]["id"], ids[0].as_str());
    let (s, b) = owner.get("/v1/customers?status=banned").await;
    assert_field_error(s, &b, "status");
    let (s, c) = owner.get(&format!("/v1/customers/{}", ids[0])).await;
    assert_eq!((s, &c["status"]), (StatusCode::OK, &json!("approved")));
    assert_eq!(
        owner.get("/v1/customers/not-a-ulid").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn approve_reject_state_machine() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, b) = signup(&app, &owner, "sm@example.com").await;
    let id = b["customer"]["id"].as_str().unwrap();
    let url = |a: &str| format!("/v1/customers/{id}/{a}");
    let (s, b) = owner.post(&url("reject"), json!({})).await;
    assert_field_error(s, &b, "reason");
    let (s, b) = owner
        .post(&url("reject"), json!({"reason": "x".repeat(501)}))
        .await;
    assert_field_error(s, &b, "reason");
    let (s, b) = owner
        .post(&url("reject"), json!({"reason": "no docs", "extra": 1}))
        .await;
    assert_field_error(s, &b, "extra");
    let (_, c) = owner.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(c["status"], "pending", "refusals change nothing");

    let (s, c) = owner
        .post(&url("reject"), json!({"reason": "no documents"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(
        (&c["status"], &c["rejectionReason"]),
        (&json!("rejected"), &json!("no documents"))
    );
    assert_eq!(
        portal.get("/v1/public/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = owner.post(&url("reject"), json!({"reason": "again"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_already_rejected");
    // A rejection can be reversed.
    let (s, c) = owner.post(&url("approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "approved");
    assert!(c["rejectionReason"].is_null());
    let (s, b) = owner.post(&url("approve"), json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_already_approved");
    let (s, b) = owner
        .post(&url("reject"), json!({"reason": "changed my mind"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_already_approved");
    for name in ["customer.rejected", "customer.approved"] {
        let n = app
            .count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id,
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
        ["customer.approved", "customer.rejected", "customer.signup"]
    );
    let (subject, _) = app.last_mail("sm@example.com").await.unwrap();
    assert!(subject.contains("approved"), "{subject}");
}

#[tokio::test]
async fn assign_needs_a_tenant_member() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let support = app.member(&owner, &["support"]).await;
    let (_, b) = signup(&app, &owner, "as@example.com").await;
    let id = b["customer"]["id"].as_str().unwrap();
    let url = format!("/v1/customers/{id}/assign");
    let (s, b) = owner.post(&url, json!({})).await;
    assert_field_error(s, &b, "userId");
    let (s, b) = owner.post(&url, json!({"userId": other.user_id})).await;
    assert_field_error(s, &b, "userId");
    let (s, c) = owner.post(&url, json!({"userId": support.user_id})).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["assignedToId"], support.user_id.as_str());
    let (s, c) = owner.post(&url, json!({"userId": null})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(c["assignedToId"].is_null());
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'customer.assigned'",
            &owner.tenant_id
        )
        .await,
        2
    );
}

#[tokio::test]
async fn roles_and_auth() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let ib = app.member(&owner, &["ib"]).await;
    let support = app.member(&owner, &["support"]).await;
    let (_, b) = signup(&app, &owner, "roles@example.com").await;
    let id = b["customer"]["id"].as_str().unwrap();
    assert_eq!(
        owner.anonymous().get("/v1/customers").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner
            .anonymous()
            .post(&format!("/v1/customers/{id}/approve"), json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(dealer.get("/v1/customers").await.0, StatusCode::OK);
    assert_eq!(
        dealer.get("/v1/customers/messages/all").await.0,
        StatusCode::OK
    );
    assert_eq!(ib.get("/v1/customers").await.0, StatusCode::FORBIDDEN);
    for (path, body) in [
        ("approve", json!({})),
        ("reject", json!({"reason": "x"})),
        ("assign", json!({"userId": null})),
        ("reply", json!({"body": "hi"})),
    ] {
        let (s, b) = dealer
            .post(&format!("/v1/customers/{id}/{path}"), body)
            .await;
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    }
    let (_, c) = owner.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(c["status"], "pending");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM customer_messages WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (s, _) = support
        .post(&format!("/v1/customers/{id}/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn tenants_never_see_each_others_customers() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let (portal, body) = signup(&app, &a, "secret@example.com").await;
    let id = body["customer"]["id"].as_str().unwrap();
    portal
        .post("/v1/public/messages", json!({"body": "private"}))
        .await;
    for path in ["", "/logins"] {
        let (s, body) = b.get(&format!("/v1/customers/{id}{path}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(!body.to_string().contains("secret@example.com"));
    }
    for (path, body) in [
        ("approve", json!({})),
        ("reject", json!({"reason": "x"})),
        ("assign", json!({"userId": null})),
        ("reply", json!({"body": "hi"})),
    ] {
        assert_eq!(
            b.post(&format!("/v1/customers/{id}/{path}"), body).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let (_, list) = b.get("/v1/customers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, inbox) = b.get("/v1/customers/messages/all").await;
    assert_eq!(inbox["data"].as_array().unwrap().len(), 0);
    let (_, inbox) = a.get("/v1/customers/messages/all").await;
    assert_eq!(inbox["data"].as_array().unwrap().len(), 1);
    let (_, c) = a.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(c["status"], "pending");
}

#[tokio::test]
async fn reply_and_inbox() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (p1, b1) = signup(&app, &owner, "in1@example.com").await;
    let (p2, _) = signup(&app, &owner, "in2@example.com").await;
    let id1 = b1["customer"]["id"].as_str().unwrap();
    p1.post("/v1/public/messages", json!({"body": "one"})).await;
    p2.post("/v1/public/messages", json!({"body": "two"})).await;
    let (s, b) = owner
        .post(&format!("/v1/customers/{id1}/reply"), json!({}))
        .await;
    assert_field_error(s, &b, "body");
    let (s, r) = owner
        .post(
            &format!("/v1/customers/{id1}/reply"),
            json!({"body": "answer"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, inbox) = owner.get("/v1/customers/messages/all").await;
    assert_eq!(s, StatusCode::OK, "{inbox}");
    let data = inbox["data"].as_array().unwrap();
    let bodies: Vec<&str> = data.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["answer", "two", "one"]);
    assert_eq!(data[0]["customer"]["email"], "in1@example.com");
    let (_, inbound) = owner
        .get("/v1/customers/messages/all?direction=inbound")
        .await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 2);
    let (_, mine) = owner
        .get(&format!("/v1/customers/messages/all?customerId={id1}"))
        .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 2);
    let (s, b) = owner
        .get("/v1/customers/messages/all?direction=sideways")
        .await;
    assert_field_error(s, &b, "direction");
    let (_, list) = p1.get("/v1/public/messages").await;
    assert_eq!(list["data"][0]["body"], "answer");
}
