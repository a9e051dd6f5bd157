//! `/v1/platform/*`: the installation's operators acting on tenants. The role comes only from
//! `lumire operator grant` (`platform::operators::grant`), never from a tenant.

use lumire_engine::platform::operators;
use lumire_tests::{Member, PASSWORD, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

use crate::plugins::spawn;

/// The owner of a fresh tenant, made a platform operator and logged in again.
async fn operator(app: &TestApp) -> Member {
    let owner = app.register_owner().await;
    operators::grant(&app.db, &owner.slug, &owner.email)
        .await
        .expect("grant");
    // Granting again changes nothing.
    operators::grant(&app.db, &owner.slug, &owner.email.to_uppercase())
        .await
        .expect("grant again");
    let (s, b) = owner
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    owner
}

fn flags_path(tenant_id: &str) -> String {
    format!("/v1/platform/tenants/{tenant_id}/feature-flags")
}

#[tokio::test]
async fn an_operator_enables_a_plugin_for_a_broker() {
    let app = spawn().await;
    let op = operator(&app).await;
    let broker = app.register_owner().await;
    let (s, _) = broker.get("/v1/sales/leads").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not enabled yet");

    let (s, t) = op
        .post(
            &flags_path(&broker.tenant_id),
            json!({"plugin.leads-intake": true, "copyTrading": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["id"], broker.tenant_id.as_str(), "{t}");
    assert_eq!(
        t["featureFlags"],
        json!({"plugin.leads-intake": true, "copyTrading": false}),
        "{t}"
    );
    // The broker's routes appear at once (this process dropped its cached flags).
    let (s, b) = broker
        .post("/v1/sales/leads", json!({"email": "ada@client.example"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, cur) = broker.get("/v1/tenants/current").await;
    assert_eq!(cur["featureFlags"]["plugin.leads-intake"], true, "{cur}");

    // Merged: null removes one flag, the others stay.
    let (s, t) = op
        .post(&flags_path(&broker.tenant_id), json!({"copyTrading": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        t["featureFlags"],
        json!({"plugin.leads-intake": true}),
        "{t}"
    );

    // The broker's audit log names the operator; the operator's log has it too.
    let (_, audit) = broker
        .get(&format!(
            "/v1/audit?resourceId={}&action=tenant.feature_flags",
            broker.tenant_id
        ))
        .await;
    let rows = audit["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{audit}");
    assert!(
        rows.iter().all(|r| r["actorLabel"]
            .as_str()
            .is_some_and(|l| l.starts_with("platform operator"))),
        "{audit}"
    );
    let (_, own) = op
        .get(&format!(
            "/v1/audit?resourceId={}&action=tenant.feature_flags",
            broker.tenant_id
        ))
        .await;
    assert_eq!(own["data"].as_array().unwrap().len(), 2, "{own}");
}

#[tokio::test]
async fn only_operators_may_change_another_tenants_flags() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let broker = app.register_owner().await;
    let path = flags_path(&broker.tenant_id);

    let (s, b) = app.anonymous().post(&path, json!({"x": true})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // A tenant's owner is not an operator, not even for its own tenant.
    let (s, b) = broker.post(&path, json!({"x": true})).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let other = app.register_owner().await;
    let admin = app.member(&other, &["admin"]).await;
    let (s, b) = admin.post(&path, json!({"x": true})).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // Unknown tenant.
    let (s, b) = op
        .post(
            &flags_path("01JX0000000000000000000000"),
            json!({"x": true}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // Bad input names the flag and changes nothing.
    let (s, b) = op
        .post(&path, json!({"good": true, "bad name!": true}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["errors"][0]["field"], "bad name!", "{b}");
    let (s, b) = op.post(&path, json!({"plugin.leads-intake": "yes"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["errors"][0]["field"], "plugin.leads-intake", "{b}");
    let (s, b) = op.post(&path, json!(["plugin.leads-intake"])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["errors"][0]["field"], "body", "{b}");
    let (_, cur) = broker.get("/v1/tenants/current").await;
    assert_eq!(cur["featureFlags"], json!({}), "{cur}");

    // Granting needs a real tenant and user.
    assert!(
        operators::grant(&app.db, "no-such-tenant", "x@example.com")
            .await
            .is_err()
    );
    assert!(
        operators::grant(&app.db, &broker.slug, "nobody@example.com")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn operators_list_tenants_with_counts_and_owners() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let broker = app.register_owner().await;
    let (s, t) = broker
        .post("/v1/traders", json!({"email": "counted@client.example"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    app.member(&broker, &["sales"]).await;

    let (s, l) = op
        .get(&format!("/v1/platform/tenants?slug={}", broker.slug))
        .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    let row = &l["data"][0];
    assert_eq!(l["data"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(row["id"], broker.tenant_id.as_str(), "{l}");
    assert_eq!(
        row["counts"],
        json!({"traders": 1, "tradingAccounts": 0, "users": 2, "customers": 0}),
        "{l}"
    );
    assert!(row["lastActivityAt"].is_string(), "{l}");

    // Every tenant, newest first, in pages.
    let (_, p1) = op.get("/v1/platform/tenants?limit=1").await;
    assert_eq!(p1["data"][0]["id"], broker.tenant_id.as_str(), "{p1}");
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = op
        .get(&format!("/v1/platform/tenants?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"][0]["id"], op.tenant_id.as_str(), "{p2}");

    let (s, d) = op
        .get(&format!("/v1/platform/tenants/{}", broker.tenant_id))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["counts"]["traders"], 1, "{d}");
    let owners = d["owners"].as_array().unwrap();
    assert_eq!(owners.len(), 1, "only the owner, not the sales member: {d}");
    assert_eq!(owners[0]["email"], broker.email.as_str(), "{d}");

    let (s, _) = op
        .get("/v1/platform/tenants/01JX0000000000000000000000")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = op.get("/v1/platform/tenants?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["errors"][0]["field"], "limit", "{b}");

    // Nobody else: not a tenant's owner, not anonymous.
    for path in [
        "/v1/platform/tenants".to_string(),
        format!("/v1/platform/tenants/{}", broker.tenant_id),
    ] {
        let (s, b) = broker.get(&path).await;
        assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
        let (s, _) = app.anonymous().get(&path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}
