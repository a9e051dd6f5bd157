use lumire_tests::{TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

use crate::portal::signup;

#[tokio::test]
async fn groups_crud_and_validation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, g) = dealer
        .post("/v1/trading-groups", json!({"name": "VIP Raw Spread", "description": "raw", "markup_pips_override": "0.00", "max_leverage_override": 200, "commission_per_lot_override": "7", "swap_free": true}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(
        (
            g["slug"].as_str(),
            g["markup_pips_override"].as_str(),
            g["swap_free"].as_bool(),
            g["member_count"].as_i64()
        ),
        (Some("vip-raw-spread"), Some("0"), Some(true), Some(0))
    );
    let id = g["id"].as_str().unwrap();
    let (s, b) = dealer
        .post(
            "/v1/trading-groups",
            json!({"name": "Other", "slug": "vip-raw-spread"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "slug_taken");
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "x", "slug": "Not A Slug"}), "slug"),
        (
            json!({"name": "x", "max_leverage_override": 0}),
            "max_leverage_override",
        ),
        (
            json!({"name": "x", "markup_pips_override": "-1"}),
            "markup_pips_override",
        ),
        (json!({"name": "x", "swap_free": null}), "swap_free"),
    ] {
        let (s, b) = dealer.post("/v1/trading-groups", body).await;
        assert_field_error(s, &b, field);
    }
    // Partial update; null clears an override.
    let (s, b) = dealer
        .patch(
            &format!("/v1/trading-groups/{id}"),
            json!({"max_leverage_override": null, "name": "VIP"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["max_leverage_override"].is_null(),
            b["name"].as_str(),
            b["slug"].as_str()
        ),
        (true, Some("VIP"), Some("vip-raw-spread"))
    );
    // Archived groups leave the default list.
    let (_, b) = dealer
        .patch(
            &format!("/v1/trading-groups/{id}"),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(b["is_archived"], true);
    let (_, l) = owner.get("/v1/trading-groups").await;
    assert_eq!(l["data"].as_array().unwrap().len(), 0);
    let (_, l) = owner.get("/v1/trading-groups?includeArchived=true").await;
    assert_eq!(l["data"][0]["id"], id);
    let (s, _) = dealer.delete(&format!("/v1/trading-groups/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.get(&format!("/v1/trading-groups/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn membership_moves_customers_between_groups() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let mut customers = Vec::new();
    for e in ["a@example.com", "b@example.com", "c@example.com"] {
        let (_, b) = signup(&app, &owner, e).await;
        customers.push(b["customer"]["id"].as_str().unwrap().to_string());
    }
    let (_, g1) = owner
        .post("/v1/trading-groups", json!({"name": "Standard"}))
        .await;
    let (_, g2) = owner
        .post("/v1/trading-groups", json!({"name": "Pro"}))
        .await;
    let (g1, g2) = (g1["id"].as_str().unwrap(), g2["id"].as_str().unwrap());
    let (s, b) = owner
        .post(
            &format!("/v1/trading-groups/{g1}/members"),
            json!({"customer_ids": [customers[0], customers[1], customers[1]]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["added"].as_array().unwrap().len(),
            b["member_count"].as_i64()
        ),
        (2, Some(2))
    );
    // Again: nothing changes.
    let (_, b) = owner
        .post(
            &format!("/v1/trading-groups/{g1}/members"),
            json!({"customer_ids": [customers[0]]}),
        )
        .await;
    assert_eq!(b["unchanged"], 1);
    // Into the other group: moved, not duplicated.
    let (_, b) = owner
        .post(
            &format!("/v1/trading-groups/{g2}/members"),
            json!({"customer_ids": [customers[0], customers[2]]}),
        )
        .await;
    assert_eq!(b["moved"][0]["from_group_id"], g1, "{b}");
    let (_, m1) = owner.get(&format!("/v1/trading-groups/{g1}/members")).await;
    let (_, m2) = owner.get(&format!("/v1/trading-groups/{g2}/members")).await;
    assert_eq!(m1["data"].as_array().unwrap().len(), 1);
    assert_eq!(m2["data"].as_array().unwrap().len(), 2);
    assert_eq!(m1["data"][0]["email"], "b@example.com");
    let (_, g) = owner.get(&format!("/v1/trading-groups/{g2}")).await;
    assert_eq!(g["member_count"], 2);
    // Remove; removing again is 404.
    let (s, _) = owner
        .delete(&format!("/v1/trading-groups/{g2}/members/{}", customers[2]))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner
        .delete(&format!("/v1/trading-groups/{g2}/members/{}", customers[2]))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Bad ids name the position; an archived group takes no one (409); nothing is half-added.
    let (s, b) = owner
        .post(
            &format!("/v1/trading-groups/{g1}/members"),
            json!({"customer_ids": [customers[2], "nope"]}),
        )
        .await;
    assert_field_error(s, &b, "customer_ids[1]");
    let (_, m1) = owner.get(&format!("/v1/trading-groups/{g1}/members")).await;
    assert_eq!(m1["data"].as_array().unwrap().len(), 1, "all or nothing");
    let (s, b) = owner
        .post(
            &format!("/v1/trading-groups/{g1}/members"),
            json!({"customer_ids": []}),
        )
        .await;
    assert_field_error(s, &b, "customer_ids");
    owner
        .patch(
            &format!("/v1/trading-groups/{g1}"),
            json!({"is_archived": true}),
        )
        .await;
    let (s, b) = owner
        .post(
            &format!("/v1/trading-groups/{g1}/members"),
            json!({"customer_ids": [customers[2]]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "group_archived");
    // Deleting a group removes its memberships.
    let (s, _) = owner.delete(&format!("/v1/trading-groups/{g2}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM trading_group_members WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn group_access_and_tenancy() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, g) = owner
        .post("/v1/trading-groups", json!({"name": "Standard"}))
        .await;
    let id = g["id"].as_str().unwrap();
    let (_, c) = signup(&app, &owner, "mine@example.com").await;
    let mine = c["customer"]["id"].as_str().unwrap().to_string();
    let (s, _) = owner.anonymous().get("/v1/trading-groups").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support
        .get(&format!("/v1/trading-groups/{id}/members"))
        .await;
    assert_eq!(s, StatusCode::OK);
    for (s, _) in [
        support
            .post("/v1/trading-groups", json!({"name": "x"}))
            .await,
        support
            .patch(&format!("/v1/trading-groups/{id}"), json!({"name": "y"}))
            .await,
        support
            .post(
                &format!("/v1/trading-groups/{id}/members"),
                json!({"customer_ids": [mine]}),
            )
            .await,
        support.delete(&format!("/v1/trading-groups/{id}")).await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let other = app.register_owner().await;
    for (s, b) in [
        other.get(&format!("/v1/trading-groups/{id}")).await,
        other.get(&format!("/v1/trading-groups/{id}/members")).await,
        other
            .patch(&format!("/v1/trading-groups/{id}"), json!({"name": "y"}))
            .await,
        other.delete(&format!("/v1/trading-groups/{id}")).await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    // Another tenant's customer cannot be added to my group, nor mine to theirs.
    let (_, og) = other
        .post("/v1/trading-groups", json!({"name": "Theirs"}))
        .await;
    let (s, b) = other
        .post(
            &format!("/v1/trading-groups/{}/members", og["id"].as_str().unwrap()),
            json!({"customer_ids": [mine]}),
        )
        .await;
    assert_field_error(s, &b, "customer_ids[0]");
}
