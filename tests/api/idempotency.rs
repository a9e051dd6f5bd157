use lumire_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn same_key_same_body_replays_and_another_body_is_422() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let body = json!({"email": "idem@example.com"});
    let first = owner
        .raw(
            Method::POST,
            "/v1/traders",
            Some(body.clone()),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = owner
        .raw(
            Method::POST,
            "/v1/traders",
            Some(body.clone()),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );

    let other = owner
        .raw(
            Method::POST,
            "/v1/traders",
            Some(json!({"email": "else@example.com"})),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );

    // A refused request is replayed as refused, not re-executed.
    let bad = json!({"email": "nope"});
    let r1 = owner
        .raw(
            Method::POST,
            "/v1/traders",
            Some(bad.clone()),
            &[("Idempotency-Key", "k-2")],
        )
        .await;
    assert_eq!(r1.status(), StatusCode::BAD_REQUEST);
    let r2 = owner
        .raw(
            Method::POST,
            "/v1/traders",
            Some(bad),
            &[("Idempotency-Key", "k-2")],
        )
        .await;
    assert_eq!(r2.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r2.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn keys_are_scoped_to_tenant_and_credential() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let body = json!({"email": "same@example.com"});
    for who in [&a, &b] {
        let r = who
            .raw(
                Method::POST,
                "/v1/traders",
                Some(body.clone()),
                &[("Idempotency-Key", "shared")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(!r.headers().contains_key("idempotent-replayed"));
    }
    let r = a
        .raw(
            Method::POST,
            "/v1/traders",
            Some(body),
            &[("Idempotency-Key", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_duplicates_make_one_effect() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let body = json!({"email": "race@example.com"});
    let mut handles = Vec::new();
    for _ in 0..6 {
        let c = owner.client.clone();
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let r = c
                .raw(
                    Method::POST,
                    "/v1/traders",
                    Some(body),
                    &[("Idempotency-Key", "race")],
                )
                .await;
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        let (status, v) = h.await.unwrap();
        match status {
            StatusCode::CREATED => ids.push(v["id"].as_str().unwrap().to_string()),
            // Only the idempotency layer may refuse a duplicate, never the handler.
            StatusCode::CONFLICT => assert_eq!(v["code"], "idempotency_in_progress", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
}
