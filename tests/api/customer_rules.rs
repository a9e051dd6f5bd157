use lumire_engine::scripting::run_workflows_once;
use lumire_tests::{Member, PASSWORD, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn signup(app: &TestApp, owner: &Member, email: &str, country: &str) -> (String, String) {
    let (s, b) = app
        .client()
        .post(
            "/v1/public/signup",
            json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "L", "country": country, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (
        b["customer"]["id"].as_str().unwrap().to_string(),
        b["customer"]["traderId"].as_str().unwrap().to_string(),
    )
}

async fn rule(m: &Member, body: Value) -> String {
    let (s, r) = m.post("/v1/customers/rules", body).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    r["id"].as_str().unwrap().to_string()
}

async fn drain(app: &TestApp) {
    for _ in 0..20 {
        if run_workflows_once(&app.state).await.expect("worker round") == 0 {
            return;
        }
    }
}

async fn customer(m: &Member, id: &str) -> Value {
    let (s, c) = m.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    c
}

#[tokio::test]
async fn signup_and_change_are_decided_by_the_first_matching_rule() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;
    let (_, tag) = owner.post("/v1/tags", json!({"name": "Review"})).await;
    let tag_id = tag["id"].as_str().unwrap();
    let reject_us = rule(
        &owner,
        json!({"name": "No US", "trigger": "signup", "condition": {"customer.country": "US"}, "action": "reject", "reason": "We cannot serve US residents", "priority": 1}),
    )
    .await;
    let approve_gb = rule(
        &owner,
        json!({"name": "GB ok", "trigger": "signup", "condition": "customer.country == \"GB\" && customer.email.ends_with(\"@ok.example\")", "action": "approve", "priority": 2}),
    )
    .await;
    let tag_rest = rule(
        &owner,
        json!({"name": "Everyone else", "trigger": "signup", "action": "tag", "tagId": tag_id, "priority": 3}),
    )
    .await;
    let assign = rule(
        &owner,
        json!({"name": "Assign on change", "trigger": "update", "action": "assign", "userId": sales.user_id}),
    )
    .await;

    let (us, _) = signup(&app, &owner, "joe@x.example", "US").await;
    let (gb, _) = signup(&app, &owner, "ada@ok.example", "GB").await;
    let (other, other_trader) = signup(&app, &owner, "bob@x.example", "GB").await;
    let (a, b) = tokio::join!(
        run_workflows_once(&app.state),
        run_workflows_once(&app.state)
    );
    a.unwrap();
    b.unwrap();
    drain(&app).await;

    let c = customer(&owner, &us).await;
    assert_eq!(c["status"], "rejected", "{c}");
    assert_eq!(c["rejectionReason"], "We cannot serve US residents");
    assert_eq!(c["ruleDecision"]["decision"], "reject");
    assert_eq!(c["ruleDecision"]["ruleId"], reject_us.as_str());
    let c = customer(&owner, &gb).await;
    assert_eq!(c["status"], "approved", "{c}");
    assert_eq!(c["ruleDecision"]["ruleId"], approve_gb.as_str());
    let c = customer(&owner, &other).await;
    assert_eq!(c["status"], "pending", "{c}");
    assert_eq!(c["ruleDecision"]["ruleId"], tag_rest.as_str());
    let (_, tags) = owner.get(&format!("/v1/customers/{other}/tags")).await;
    assert_eq!(tags["data"][0]["name"], "Review", "{tags}");
    // One decision per customer and event, even with two workers.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM customer_rule_decisions WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        3
    );
    // The audit entry names the rule and its version.
    let (label,): (String,) = sqlx::query_as(
        "SELECT actor_label FROM audit_log WHERE tenant_id = $1 AND actor_type = 'customer_rule' AND action = 'customer.rule_approve'",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(
        label.contains(&approve_gb) && label.contains("v1"),
        "{label}"
    );

    // A change to the customer's trader runs the `update` rules.
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{other_trader}"),
            json!({"phone": "+441111111111"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    drain(&app).await;
    let c = customer(&owner, &other).await;
    assert_eq!(c["assignedToId"], sales.user_id.as_str(), "{c}");
    assert_eq!(c["ruleDecision"]["ruleId"], assign.as_str());
}

#[tokio::test]
async fn crud_validation_auth_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let sales = app.member(&owner, &["sales"]).await;
    let (_, theirs) = other.post("/v1/tags", json!({"name": "T"})).await;
    for (field, body) in [
        ("name", json!({"action": "approve"})),
        ("action", json!({"name": "x"})),
        ("action", json!({"name": "x", "action": "delete"})),
        (
            "trigger",
            json!({"name": "x", "action": "approve", "trigger": "login"}),
        ),
        ("userId", json!({"name": "x", "action": "assign"})),
        (
            "tagId",
            json!({"name": "x", "action": "tag", "tagId": theirs["id"]}),
        ),
        (
            "condition.nope",
            json!({"name": "x", "action": "approve", "condition": {"customer.country": "DE", "nope": 2}}),
        ),
        (
            "priority",
            json!({"name": "x", "action": "approve", "priority": -5}),
        ),
        ("acton", json!({"name": "x", "acton": "approve"})),
    ] {
        let (s, b) = owner.post("/v1/customers/rules", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = owner
        .post(
            "/v1/customers/rules",
            json!({"name": "x", "action": "approve", "condition": "customer.country ==\n\n  == \"DE\""}),
        )
        .await;
    assert_field_error(s, &b, "condition");
    assert_eq!(b["errors"][0]["line"], 3, "{b}");
    assert!(b["errors"][0]["column"].is_u64());
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM customer_rules WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );

    let a = rule(
        &owner,
        json!({"name": "A", "action": "approve", "priority": 5}),
    )
    .await;
    rule(
        &owner,
        json!({"name": "B", "action": "approve", "priority": 1}),
    )
    .await;
    let (s, b) = owner
        .post(
            "/v1/customers/rules",
            json!({"name": "a", "action": "approve"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_rule_name_taken");
    let (s, list) = owner.get("/v1/customers/rules/list").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["B", "A"]);
    let (s, u) = owner
        .patch(
            &format!("/v1/customers/rules/{a}"),
            json!({"action": "reject", "reason": "Manual review", "condition": {"customer.country": "DE"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        (u["version"].as_i64(), u["reason"].as_str()),
        (Some(2), Some("Manual review"))
    );
    let (s, b) = owner
        .patch(
            &format!("/v1/customers/rules/{a}"),
            json!({"action": "assign"}),
        )
        .await;
    assert_field_error(s, &b, "userId");
    let (s, b) = owner
        .patch(&format!("/v1/customers/rules/{a}"), json!({"name": "b"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_rule_name_taken");

    let anon = app.anonymous();
    assert_eq!(
        anon.get("/v1/customers/rules/list").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.post(
            "/v1/customers/rules",
            json!({"name": "x", "action": "approve"})
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    for (s, _) in [
        sales.get("/v1/customers/rules/list").await,
        sales
            .post(
                "/v1/customers/rules",
                json!({"name": "x", "action": "approve"}),
            )
            .await,
        sales
            .patch(&format!("/v1/customers/rules/{a}"), json!({"priority": 1}))
            .await,
        sales.delete(&format!("/v1/customers/rules/{a}")).await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    for (s, _) in [
        other
            .patch(&format!("/v1/customers/rules/{a}"), json!({"priority": 1}))
            .await,
        other.delete(&format!("/v1/customers/rules/{a}")).await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (_, list) = other.get("/v1/customers/rules/list").await;
    assert_eq!(list["data"], json!([]));
    let (s, _) = owner.delete(&format!("/v1/customers/rules/{a}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.delete(&format!("/v1/customers/rules/{a}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn mails(app: &TestApp, to: &str, template: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT subject, body FROM mail_outbox WHERE to_addr = $1 AND template = $2")
        .bind(to)
        .bind(template)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn rule_decisions_tell_the_customer_by_mail() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    rule(
        &owner,
        json!({"name": "No US", "trigger": "signup", "condition": {"customer.country": "US"}, "action": "reject", "reason": "We cannot serve US residents", "priority": 1}),
    )
    .await;
    rule(
        &owner,
        json!({"name": "No FR", "trigger": "signup", "condition": {"customer.country": "FR"}, "action": "reject", "priority": 2}),
    )
    .await;
    rule(
        &owner,
        json!({"name": "GB ok", "trigger": "signup", "condition": {"customer.country": "GB"}, "action": "approve", "priority": 3}),
    )
    .await;
    rule(
        &owner,
        json!({"name": "Approve on change", "trigger": "update", "action": "approve"}),
    )
    .await;
    // The US customer keeps its portal session to see the rejection end it.
    let portal = app.client();
    let (s, b) = portal
        .post(
            "/v1/public/signup",
            json!({"email": "joe@x.example", "password": PASSWORD, "firstName": "Joe", "lastName": "D", "country": "US", "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(portal.get("/v1/public/me").await.0, StatusCode::OK);
    signup(&app, &owner, "marie@x.example", "FR").await;
    let (_, gb_trader) = signup(&app, &owner, "ada@x.example", "GB").await;
    drain(&app).await;

    assert_eq!(
        mails(&app, "ada@x.example", "customer.approved").await,
        [(
            "Test Broker: Your account has been approved".to_string(),
            "Your client portal account has been approved. You can now fund your account and trade.\n"
                .to_string()
        )]
    );
    assert_eq!(
        mails(&app, "joe@x.example", "customer.rejected").await,
        [(
            "Test Broker: Your application was not approved".to_string(),
            "Your client portal application was not approved. Reason: We cannot serve US residents\n"
                .to_string()
        )]
    );
    // Without a reason on the rule, none is made up for the customer.
    assert_eq!(
        mails(&app, "marie@x.example", "customer.rejected").await,
        [(
            "Test Broker: Your application was not approved".to_string(),
            "Your client portal application was not approved.\n".to_string()
        )]
    );
    assert!(
        mails(&app, "marie@x.example", "customer.approved")
            .await
            .is_empty()
    );
    // As with a manual rejection: a portal notice, and the customer's sessions end.
    assert_eq!(
        portal.get("/v1/public/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM trader_notifications WHERE tenant_id = $1 AND kind IN ('customer.approved', 'customer.rejected')",
            &owner.tenant_id
        )
        .await,
        3
    );

    // A rule approving a customer who is already approved changes nothing and mails nothing.
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{gb_trader}"),
            json!({"phone": "+441111111111"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    drain(&app).await;
    assert_eq!(
        mails(&app, "ada@x.example", "customer.approved")
            .await
            .len(),
        1
    );
    let (outcome,): (String,) = sqlx::query_as(
        "SELECT outcome FROM customer_rule_decisions WHERE tenant_id = $1 AND decision = 'approve' ORDER BY id DESC LIMIT 1",
    )
    .bind(&owner.tenant_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(outcome, "unchanged");
}
