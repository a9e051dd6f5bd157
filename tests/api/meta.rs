use lumire_tests::TestApp;
use reqwest::StatusCode;

#[tokio::test]
async fn health_version_changelog_openapi_docs_and_metrics() {
    let app = TestApp::spawn_with(|s| s.metrics_token = Some("scrape-me".into())).await;
    let c = app.client();
    let (s, b) = c.get("/health").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = c.get("/v1/_meta/version").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["version"], "1.1.0");
    let (s, b) = c.get("/v1/_meta/changelog").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!b["data"].as_array().unwrap().is_empty());
    let (s, doc) = c.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/traders"]["post"]["requestBody"].is_object());
    let html = c
        .raw(reqwest::Method::GET, "/docs", None, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("/openapi.json") && !html.contains("https://"),
        "explorer must work offline"
    );
    let (s, b) = c.get("/v1/docs/examples/postTraders").await;
    assert_eq!(s, StatusCode::OK);
    for form in ["curl", "fetch", "httpx", "php", "go"] {
        assert!(
            b[form].as_str().unwrap().contains("/v1/traders"),
            "{form}: {b}"
        );
    }
    let (s, b) = c.get("/v1/docs/examples").await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["data"].as_array().unwrap().len() > 20);
    let (s, _) = c.get("/v1/docs/examples/noSuchOperation").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Metrics only to the configured token; made-up methods count as `other`.
    let resp = c.raw(reqwest::Method::GET, "/metrics", None, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = c
        .raw(
            reqwest::Method::GET,
            "/metrics",
            None,
            &[("authorization", "Bearer scrape-mf")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    for k in 0..20 {
        let m = reqwest::Method::from_bytes(format!("FOO{k}").as_bytes()).unwrap();
        c.raw(m, "/v1/traders", None, &[]).await;
    }
    let text = c
        .raw(
            reqwest::Method::GET,
            "/metrics",
            None,
            &[("authorization", "Bearer scrape-me")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("lumire_http_requests_total"), "{text}");
    assert!(!text.contains("FOO"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
}

#[tokio::test]
async fn metrics_are_not_served_without_a_token_setting() {
    let app = TestApp::spawn().await;
    let resp = app
        .client()
        .raw(reqwest::Method::GET, "/metrics", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_routes_and_bad_bodies_are_problems() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let resp = c
        .raw(reqwest::Method::GET, "/v1/nothing-here", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = TestApp::spawn_with(|s| s.max_body_bytes = 1024).await;
    let c = app.client();
    let big = "x".repeat(4096);
    let (s, b) = c
        .post(
            "/v1/auth/login",
            serde_json::json!({"email": big, "password": "p", "tenantSlug": "s"}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["code"], "payload_too_large");
}

/// PostgreSQL: connections that died while they waited in the pool (the server restarted, a
/// proxy or a firewall closed them) are pinged when they have waited over a second, found dead
/// and replaced, so the next requests are served. A connection handed out again within the
/// second is not pinged (sqlx pinged it when it came back; docs/benchmarks.md, "Fewer round
/// trips"). SQLite has no server to lose: there the test has nothing to do.
#[tokio::test]
async fn connections_that_died_waiting_in_the_pool_are_replaced_before_use() {
    use lumire_engine::db::DbKind;
    let app = TestApp::spawn().await;
    if app.db.kind() != DbKind::Postgres {
        return;
    }
    let owner = app.register_owner().await;
    let (s, _) = owner.get("/v1/traders").await;
    assert_eq!(s, StatusCode::OK);

    // Every connection the pool may open (5 in tests), each asked for its server process.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(app.db.pool().acquire().await.expect("connection"));
    }
    let mut pids = Vec::new();
    for conn in &mut held {
        let pid: i64 = sqlx::query_scalar("SELECT CAST(pg_backend_pid() AS BIGINT)")
            .fetch_one(&mut **conn)
            .await
            .expect("pid");
        pids.push(pid);
    }
    // Back to the pool (sqlx pings each on the way in), then killed there by the server.
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let admin = sqlx::AnyPool::connect(&lumire_tests::pg_admin_url())
        .await
        .expect("admin connection");
    for pid in &pids {
        sqlx::query("SELECT pg_terminate_backend(CAST($1 AS INTEGER))")
            .bind(pid)
            .execute(&admin)
            .await
            .expect("terminate");
    }
    admin.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    for _ in 0..10 {
        let (s, b) = owner.get("/v1/traders").await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}
