use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

use crate::portal::signup;

#[tokio::test]
async fn create_update_archive() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, t) = owner
        .post(
            "/v1/tags",
            json!({"name": "High value", "color": "#F59E0B", "description": "Over 10k"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap();
    assert_eq!(t["color"], "#f59e0b");
    for (field, body) in [
        ("name", json!({"color": "#000000"})),
        ("color", json!({"name": "x", "color": "red"})),
        ("color", json!({"name": "x", "color": "#12345"})),
        (
            "description",
            json!({"name": "x", "description": "d".repeat(501)}),
        ),
        ("colour", json!({"name": "x", "colour": "#000000"})),
    ] {
        let (s, b) = owner.post("/v1/tags", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = owner.post("/v1/tags", json!({"name": "HIGH VALUE"})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "tag_name_taken");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM tags WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
    let (_, other) = owner.post("/v1/tags", json!({"name": "Churn risk"})).await;
    let (s, b) = owner
        .patch(&format!("/v1/tags/{id}"), json!({"name": "churn RISK"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "tag_name_taken");
    let (s, b) = owner
        .patch(&format!("/v1/tags/{id}"), json!({"name": null}))
        .await;
    assert_field_error(s, &b, "name");
    let (s, u) = owner
        .patch(
            &format!("/v1/tags/{id}"),
            json!({"name": "VIP", "description": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        (&u["name"], &u["color"]),
        (&json!("VIP"), &json!("#f59e0b"))
    );
    assert!(u["description"].is_null());
    let (s, g) = owner.get(&format!("/v1/tags/{id}")).await;
    assert_eq!((s, &g["name"]), (StatusCode::OK, &json!("VIP")));

    let (s, a) = owner
        .post(&format!("/v1/tags/{id}/archive"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert!(a["archivedAt"].is_string());
    let (s, b) = owner
        .post(&format!("/v1/tags/{id}/archive"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "tag_already_archived");
    let (_, list) = owner.get("/v1/tags").await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Churn risk"]);
    let (_, list) = owner.get("/v1/tags?includeArchived=true").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0]["id"], other["id"]);
    for name in ["tag.created", "tag.updated", "tag.archived"] {
        assert!(
            app.count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id
            )
            .await
                >= 1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn apply_and_remove_on_customers_and_traders() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, vip) = owner.post("/v1/tags", json!({"name": "VIP"})).await;
    let (_, old) = owner.post("/v1/tags", json!({"name": "Old"})).await;
    let vip = vip["id"].as_str().unwrap();
    let old = old["id"].as_str().unwrap();
    let (_, b) = signup(&app, &owner, "tagme@example.com").await;
    let customer = b["customer"]["id"].as_str().unwrap();
    let trader = b["customer"]["traderId"].as_str().unwrap();

    let (s, applied) = owner
        .post(&format!("/v1/customers/{customer}/tags/{vip}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{applied}");
    assert_eq!(applied["traderId"], trader);
    assert_eq!(applied["data"][0]["name"], "VIP");
    assert_eq!(applied["data"][0]["appliedBy"], owner.user_id.as_str());
    // Idempotent, also through the trader id.
    let (s, again) = owner
        .post(&format!("/v1/customers/{trader}/tags/{vip}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.tag_applied'",
            &owner.tenant_id
        )
        .await,
        1
    );
    owner
        .post(&format!("/v1/customers/{trader}/tags/{old}"), json!({}))
        .await;
    owner
        .post(&format!("/v1/tags/{old}/archive"), json!({}))
        .await;
    let (_, list) = owner.get(&format!("/v1/customers/{customer}/tags")).await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "archived tags stay as history: {list}");
    assert!(
        data.iter()
            .any(|t| t["id"] == old && t["archivedAt"].is_string())
    );

    // An archived tag cannot be newly applied.
    let (_, b2) = signup(&app, &owner, "tagme2@example.com").await;
    let customer2 = b2["customer"]["id"].as_str().unwrap();
    let (s, b) = owner
        .post(&format!("/v1/customers/{customer2}/tags/{old}"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "tag_archived");
    let (_, list) = owner.get(&format!("/v1/customers/{customer2}/tags")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    let (s, _) = owner
        .delete(&format!("/v1/customers/{customer}/tags/{vip}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner
        .delete(&format!("/v1/customers/{customer}/tags/{vip}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = owner.get(&format!("/v1/customers/{trader}/tags")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.tag_removed'",
            &owner.tenant_id
        )
        .await,
        1
    );
    // A trader without a portal account can be tagged too.
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "crm-only@example.com"}))
        .await;
    let (s, _) = owner
        .post(
            &format!("/v1/customers/{}/tags/{vip}", t["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = owner
        .post(
            &format!("/v1/customers/{customer}/tags/01NOSUCHTAG"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = owner
        .post(
            &format!("/v1/customers/01NOSUCHCUSTOMER/tags/{vip}"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenant_isolation_and_roles() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let dealer = app.member(&a, &["dealer"]).await;
    let (_, tag) = a.post("/v1/tags", json!({"name": "Secret tag"})).await;
    let tag = tag["id"].as_str().unwrap();
    let (_, body) = signup(&app, &a, "iso@example.com").await;
    let customer = body["customer"]["id"].as_str().unwrap();
    let (_, b_tag) = b.post("/v1/tags", json!({"name": "B tag"})).await;
    let b_tag = b_tag["id"].as_str().unwrap();

    let (s, body) = b.get(&format!("/v1/tags/{tag}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("Secret tag"));
    assert_eq!(
        b.patch(&format!("/v1/tags/{tag}"), json!({"name": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("/v1/tags/{tag}/archive"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get(&format!("/v1/customers/{customer}/tags")).await.0,
        StatusCode::NOT_FOUND
    );
    // B's tag on A's customer, and A's tag through B: both 404, nothing written.
    assert_eq!(
        b.post(&format!("/v1/customers/{customer}/tags/{b_tag}"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.post(&format!("/v1/customers/{customer}/tags/{b_tag}"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM trader_tags WHERE tenant_id = $1",
            &a.tenant_id
        )
        .await,
        0
    );
    let (_, list) = b.get("/v1/tags?includeArchived=true").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    assert_eq!(
        a.anonymous().get("/v1/tags").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(dealer.get("/v1/tags").await.0, StatusCode::OK);
    assert_eq!(
        dealer
            .get(&format!("/v1/customers/{customer}/tags"))
            .await
            .0,
        StatusCode::OK
    );
    let (s, body) = dealer.post("/v1/tags", json!({"name": "Nope"})).await;
    assert_problem(s, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        dealer
            .post(&format!("/v1/customers/{customer}/tags/{tag}"), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dealer
            .delete(&format!("/v1/customers/{customer}/tags/{tag}"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dealer
            .post(&format!("/v1/tags/{tag}/archive"), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, t) = a.get(&format!("/v1/tags/{tag}")).await;
    assert!(t["archivedAt"].is_null());
}
