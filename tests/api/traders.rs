use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

fn trader(email: &str) -> serde_json::Value {
    json!({"email": email, "firstName": "Ada", "lastName": "Lovelace", "country": "GB", "dateOfBirth": "1990-12-10", "segments": ["vip"], "source": "web", "metadata": {"utm": "x"}})
}

#[tokio::test]
async fn create_get_update_delete() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, t) = owner.post("/v1/traders", trader("ada@example.com")).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap();
    assert_eq!(t["kycStatus"], "not_started");
    assert_eq!(t["segments"], json!(["vip"]));
    let (s, got) = owner.get(&format!("/v1/traders/{id}")).await;
    assert_eq!(
        (s, &got["email"]),
        (StatusCode::OK, &json!("ada@example.com"))
    );
    let (s, up) = owner
        .patch(
            &format!("/v1/traders/{id}"),
            json!({"phone": "+44123", "kycStatus": "pending", "source": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(up["phone"], "+44123");
    assert_eq!(up["source"], serde_json::Value::Null);
    assert_eq!(up["firstName"], "Ada");
    let (s, _) = owner.delete(&format!("/v1/traders/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        owner.get(&format!("/v1/traders/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    // Events and audit entries for each change.
    for name in ["trader.created", "trader.updated", "trader.deleted"] {
        let n = app
            .count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id,
            )
            .await;
        assert_eq!(n, 1, "{name}");
    }
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 3, "{audit}");
    // The email is free again after the soft delete.
    assert_eq!(
        owner.post("/v1/traders", trader("ada@example.com")).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn validation_names_fields_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post("/v1/traders", json!({"email": "not-an-email"}))
        .await;
    assert_field_error(s, &b, "email");
    let (s, b) = owner
        .post(
            "/v1/traders",
            json!({"email": "a@b.co", "country": "Germany"}),
        )
        .await;
    assert_field_error(s, &b, "country");
    let (s, b) = owner
        .post(
            "/v1/traders",
            json!({"email": "a@b.co", "dateOfBirth": "10/12/1990"}),
        )
        .await;
    assert_field_error(s, &b, "dateOfBirth");
    let (s, b) = owner
        .post("/v1/traders", json!({"email": "a@b.co", "emial": "typo"}))
        .await;
    assert_field_error(s, &b, "emial");
    let (s, b) = owner
        .post(
            "/v1/traders",
            json!({"email": "a@b.co", "assignedToId": "01NOTAMEMBER"}),
        )
        .await;
    assert_field_error(s, &b, "assignedToId");
    let (s, b) = owner
        .post("/v1/traders", json!({"email": "a@b.co", "metadata": [1]}))
        .await;
    assert_field_error(s, &b, "metadata");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND resource_type = 'trader'",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (_, t) = owner.post("/v1/traders", trader("x@example.com")).await;
    let id = t["id"].as_str().unwrap();
    let (s, b) = owner
        .patch(&format!("/v1/traders/{id}"), json!({"kycStatus": "maybe"}))
        .await;
    assert_field_error(s, &b, "kycStatus");
    // KYC approval is a decision for the KYC operations, not a field edit.
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{id}"),
            json!({"kycStatus": "approved"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_kyc_transition");
    let (s, b) = owner.post("/v1/traders", trader("X@example.com")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "trader_email_taken");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let (_, t) = a.post("/v1/traders", trader("secret@example.com")).await;
    let id = t["id"].as_str().unwrap();
    let (s, body) = b.get(&format!("/v1/traders/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("secret@example.com"));
    assert_eq!(
        b.patch(&format!("/v1/traders/{id}"), json!({"phone": "1"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.delete(&format!("/v1/traders/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("/v1/traders/{id}/suspend"), json!({"reason": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = b.get("/v1/traders").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        b.get("/v1/traders/not-a-ulid").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn roles_and_auth() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let ib = app.member(&owner, &["ib"]).await;
    let sales = app.member(&owner, &["sales"]).await;
    assert_eq!(
        owner.anonymous().get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner
            .anonymous()
            .post("/v1/traders", trader("a@b.co"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(dealer.get("/v1/traders").await.0, StatusCode::OK);
    let (s, b) = dealer.post("/v1/traders", trader("a@b.co")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(ib.get("/v1/traders").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        sales.post("/v1/traders", trader("a@b.co")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn list_filters_and_cursor_pagination() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for i in 0..7 {
        let country = if i % 2 == 0 { "DE" } else { "FR" };
        let (s, _) = owner
            .post("/v1/traders", json!({"email": format!("t{i}@example.com"), "country": country, "firstName": format!("Name{i}"), "segments": if i < 3 { vec!["vip"] } else { vec![] }}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, p1) = owner.get("/v1/traders?limit=3").await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 3);
    assert_eq!(p1["data"][0]["email"], "t6@example.com", "newest first");
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/traders?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"][0]["email"], "t3@example.com");
    let (_, p3) = owner
        .get(&format!(
            "/v1/traders?limit=3&cursor={}",
            p2["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert!(p3["next_cursor"].is_null());
    let (_, de) = owner.get("/v1/traders?country=DE").await;
    assert_eq!(de["data"].as_array().unwrap().len(), 4);
    let (_, vip) = owner.get("/v1/traders?segment=vip").await;
    assert_eq!(vip["data"].as_array().unwrap().len(), 3);
    let (_, q) = owner.get("/v1/traders?q=name5").await;
    assert_eq!(q["data"].as_array().unwrap().len(), 1);
    let (s, b) = owner.get("/v1/traders?limit=abc").await;
    assert_field_error(s, &b, "limit");
    let (s, b) = owner.get("/v1/traders?cursor=%21%21").await;
    assert_field_error(s, &b, "cursor");
    let (s, b) = owner.get("/v1/traders?limit=100000").await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn segments_and_suspension_state_machine() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, t) = owner.post("/v1/traders", trader("s@example.com")).await;
    let id = t["id"].as_str().unwrap();
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{id}/segments"),
            json!({"add": ["gold", "vip"], "remove": ["vip"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["segments"], json!(["gold", "vip"]));
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{id}/segments"),
            json!({"add": [], "remove": []}),
        )
        .await;
    assert_field_error(s, &b, "add");
    let (s, b) = owner
        .post(&format!("/v1/traders/{id}/suspend"), json!({}))
        .await;
    assert_field_error(s, &b, "reason");
    let (s, b) = owner
        .post(&format!("/v1/traders/{id}/unsuspend"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "not_suspended");
    let (s, b) = owner
        .post(
            &format!("/v1/traders/{id}/suspend"),
            json!({"reason": "AML review"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "suspended");
    assert_eq!(b["suspensionReason"], "AML review");
    let (s, b) = owner
        .post(
            &format!("/v1/traders/{id}/suspend"),
            json!({"reason": "again"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "already_suspended");
    let (s, b) = owner
        .post(&format!("/v1/traders/{id}/unsuspend"), json!({}))
        .await;
    assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("active")));
}
