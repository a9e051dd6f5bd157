use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn trader(owner: &Member, body: Value) -> String {
    let (s, t) = owner.post("/v1/traders", body).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

fn emails(preview: &Value) -> Vec<String> {
    preview["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["email"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn crud_and_preview() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, tag) = owner.post("/v1/tags", json!({"name": "Whale"})).await;
    let tag = tag["id"].as_str().unwrap();
    trader(
        &owner,
        json!({"email": "de1@example.com", "country": "DE", "segments": ["vip"]}),
    )
    .await;
    let de2 = trader(&owner, json!({"email": "de2@example.com", "country": "DE"})).await;
    trader(
        &owner,
        json!({"email": "fr@example.com", "country": "FR", "segments": ["v_p"]}),
    )
    .await;
    trader(
        &owner,
        json!({"email": "gb@example.com", "country": "GB", "segments": ["vip"]}),
    )
    .await;
    let gone = trader(
        &owner,
        json!({"email": "gone@example.com", "country": "DE"}),
    )
    .await;
    owner.delete(&format!("/v1/traders/{gone}")).await;
    owner.approve_kyc(&de2).await;
    owner
        .post(&format!("/v1/customers/{de2}/tags/{tag}"), json!({}))
        .await;

    let (s, seg) = owner
        .post(
            "/v1/segments",
            json!({"name": "Continental", "description": "DE and FR", "filter": {"country": ["DE", "FR"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let id = seg["id"].as_str().unwrap();
    assert_eq!(seg["filter"], json!({"country": ["DE", "FR"]}));
    let (s, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["total"], 3, "soft-deleted traders never match: {p}");
    assert_eq!(
        emails(&p),
        ["fr@example.com", "de2@example.com", "de1@example.com"]
    );
    let (_, p) = owner
        .get(&format!("/v1/segments/{id}/preview?limit=1"))
        .await;
    assert_eq!((p["total"].as_i64(), emails(&p).len()), (Some(3), 1));
    for bad in ["0", "101", "x"] {
        let (s, b) = owner
            .get(&format!("/v1/segments/{id}/preview?limit={bad}"))
            .await;
        assert_field_error(s, &b, "limit");
    }

    // Keys AND together; values of one key OR together.
    let (s, u) = owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"country": ["DE", "FR"], "kycStatus": ["approved"], "tags": [tag]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["name"], "Continental");
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(emails(&p), ["de2@example.com"]);
    // LIKE wildcards in segment names are literals.
    owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"segments": ["v_p"]}}),
        )
        .await;
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(emails(&p), ["fr@example.com"]);
    owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"segments": ["vip"], "createdAfter": "2000-01-01T00:00:00Z", "createdBefore": "2999-01-01T00:00:00+02:00"}}),
        )
        .await;
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(emails(&p), ["gb@example.com", "de1@example.com"]);
    owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"createdAfter": "2999-01-01T00:00:00Z"}}),
        )
        .await;
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(p["total"], 0);
    // A quote in a value is data, not SQL.
    owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"source": ["x' OR '1'='1"]}}),
        )
        .await;
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(p["total"], 0);
    let (_, p) = owner
        .patch(&format!("/v1/segments/{id}"), json!({"filter": {}}))
        .await;
    assert_eq!(p["filter"], json!({}));
    let (_, p) = owner.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(p["total"], 4);

    let (_, list) = owner.get("/v1/segments").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, g) = owner.get(&format!("/v1/segments/{id}")).await;
    assert_eq!(
        (s, &g["description"]),
        (StatusCode::OK, &json!("DE and FR"))
    );
    let (s, _) = owner.delete(&format!("/v1/segments/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        owner.get(&format!("/v1/segments/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner.delete(&format!("/v1/segments/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    for name in ["segment.created", "segment.updated", "segment.deleted"] {
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
async fn filter_validation_names_the_key() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let (_, foreign_tag) = other.post("/v1/tags", json!({"name": "Theirs"})).await;
    let foreign_tag = foreign_tag["id"].as_str().unwrap();
    for (field, filter) in [
        ("filter.colour", json!({"colour": ["red"]})),
        ("filter.kycStatus", json!({"kycStatus": ["maybe"]})),
        ("filter.status", json!({"status": ["deleted"]})),
        ("filter.country", json!({"country": ["Germany"]})),
        ("filter.country", json!({"country": "DE"})),
        ("filter.country", json!({"country": []})),
        ("filter.segments", json!({"segments": [1]})),
        ("filter.createdAfter", json!({"createdAfter": "yesterday"})),
        (
            "filter.createdBefore",
            json!({"createdAfter": "2026-02-01T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"}),
        ),
        ("filter.tags", json!({"tags": [foreign_tag]})),
        ("filter", json!(["country"])),
    ] {
        let (s, b) = owner
            .post("/v1/segments", json!({"name": "S", "filter": filter}))
            .await;
        assert_field_error(s, &b, field);
    }
    for (field, body) in [
        ("name", json!({"filter": {}})),
        ("filter", json!({"name": "S"})),
        ("filtre", json!({"name": "S", "filter": {}, "filtre": {}})),
        (
            "description",
            json!({"name": "S", "filter": {}, "description": "d".repeat(501)}),
        ),
    ] {
        let (s, b) = owner.post("/v1/segments", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM segments WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (_, seg) = owner
        .post(
            "/v1/segments",
            json!({"name": "VIPs", "filter": {"segments": ["vip"]}}),
        )
        .await;
    let id = seg["id"].as_str().unwrap();
    let (s, b) = owner
        .post("/v1/segments", json!({"name": "vips", "filter": {}}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "segment_name_taken");
    let (s, b) = owner
        .patch(
            &format!("/v1/segments/{id}"),
            json!({"filter": {"bogus": 1}}),
        )
        .await;
    assert_field_error(s, &b, "filter.bogus");
    let (s, b) = owner
        .patch(&format!("/v1/segments/{id}"), json!({"filter": null}))
        .await;
    assert_field_error(s, &b, "filter");
    let (_, g) = owner.get(&format!("/v1/segments/{id}")).await;
    assert_eq!(
        g["filter"],
        json!({"segments": ["vip"]}),
        "refusals change nothing"
    );
}

#[tokio::test]
async fn tenant_isolation_and_roles() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let dealer = app.member(&a, &["dealer"]).await;
    let ib = app.member(&a, &["ib"]).await;
    trader(&a, json!({"email": "a-only@example.com"})).await;
    trader(&b, json!({"email": "b-only@example.com"})).await;
    let (_, seg) = a
        .post("/v1/segments", json!({"name": "Everyone", "filter": {}}))
        .await;
    let id = seg["id"].as_str().unwrap();
    let (_, p) = a.get(&format!("/v1/segments/{id}/preview")).await;
    assert_eq!(
        emails(&p),
        ["a-only@example.com"],
        "only the tenant's traders"
    );
    for path in [
        format!("/v1/segments/{id}"),
        format!("/v1/segments/{id}/preview"),
    ] {
        assert_eq!(b.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        b.patch(&format!("/v1/segments/{id}"), json!({"name": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.delete(&format!("/v1/segments/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = b.get("/v1/segments").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        a.get("/v1/segments/not-a-ulid").await.0,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        a.anonymous().get("/v1/segments").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(dealer.get("/v1/segments").await.0, StatusCode::OK);
    assert_eq!(
        dealer.get(&format!("/v1/segments/{id}/preview")).await.0,
        StatusCode::OK
    );
    assert_eq!(ib.get("/v1/segments").await.0, StatusCode::FORBIDDEN);
    let (s, body) = dealer
        .post("/v1/segments", json!({"name": "Nope", "filter": {}}))
        .await;
    assert_problem(s, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        dealer.delete(&format!("/v1/segments/{id}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(a.get(&format!("/v1/segments/{id}")).await.0, StatusCode::OK);
}
