use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[tokio::test]
async fn read_and_update_settings() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, t) = dealer.get("/v1/tenants/current").await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["id"], json!(owner.tenant_id));
    assert_eq!(t["name"], "Test Broker");
    assert_eq!(t["featureFlags"], json!({}));
    assert!(t["logoUrl"].is_null());

    let (s, t) = owner
        .patch(
            "/v1/tenants/current",
            json!({"name": "Acme FX", "branding": {"primaryColor": "#0B5FFF", "footer": {"text": "hi"}}, "featureFlags": {"portalDeposits": true, "copyTrading": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["name"], "Acme FX");
    assert_eq!(t["branding"]["primaryColor"], "#0B5FFF");
    assert_eq!(
        t["featureFlags"],
        json!({"portalDeposits": true, "copyTrading": false})
    );
    // Merged one level deep; null removes a key; other fields stay.
    let (s, t) = owner
        .patch(
            "/v1/tenants/current",
            json!({"branding": {"footer": null, "accent": "red"}, "featureFlags": {"copyTrading": null, "ibPortal": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["name"], "Acme FX");
    assert_eq!(
        t["branding"],
        json!({"primaryColor": "#0B5FFF", "accent": "red"})
    );
    assert_eq!(
        t["featureFlags"],
        json!({"portalDeposits": true, "ibPortal": true})
    );
    let (_, seen) = dealer.get("/v1/tenants/current").await;
    assert_eq!(seen, t);
    // Another tenant is unaffected.
    let (_, theirs) = other.get("/v1/tenants/current").await;
    assert_eq!(theirs["name"], "Test Broker");
    assert_eq!(theirs["id"], json!(other.tenant_id));

    let (_, audit) = owner
        .get(&format!(
            "/v1/audit?resourceId={}&action=tenant.update",
            owner.tenant_id
        ))
        .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 2);
    assert_eq!(audit["data"][1]["before"]["name"], "Test Broker");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'tenant.updated'",
            &owner.tenant_id
        )
        .await,
        2
    );
}

#[tokio::test]
async fn settings_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    assert_eq!(
        owner.anonymous().get("/v1/tenants/current").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner
            .anonymous()
            .patch("/v1/tenants/current", json!({"name": "x"}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = dealer
        .patch("/v1/tenants/current", json!({"name": "Hijacked"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    for (body, field) in [
        (json!({"name": null}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"branding": [1, 2]}), "branding"),
        (json!({"branding": null}), "branding"),
        (
            json!({"featureFlags": {"beta": "yes"}}),
            "featureFlags.beta",
        ),
        (
            json!({"featureFlags": {"bad name": true}}),
            "featureFlags.bad name",
        ),
        (json!({"featureFlags": true}), "featureFlags"),
        (
            json!({"branding": {"blob": "x".repeat(17 * 1024)}}),
            "branding",
        ),
        (json!({"slug": "new"}), "slug"),
    ] {
        let (s, b) = owner.patch("/v1/tenants/current", body).await;
        assert_field_error(s, &b, field);
    }
    let (_, t) = owner.get("/v1/tenants/current").await;
    assert_eq!(t["name"], "Test Broker");
    assert_eq!(t["branding"], json!({}));
    assert_eq!(t["featureFlags"], json!({}));
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action LIKE 'tenant.%'",
            &owner.tenant_id
        )
        .await,
        0
    );
}

/// Starts a logo upload and returns (upload id, path+query of the upload URL).
async fn start_upload(m: &Member, content_type: &str, size: usize) -> (String, String) {
    let (s, b) = m
        .post(
            "/v1/tenants/current/logo-upload",
            json!({"contentType": content_type, "fileSize": size}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["method"], "PUT");
    assert!(b["expiresAt"].is_string());
    let url = b["uploadUrl"].as_str().unwrap();
    let at = url.find("/v1/uploads/").expect("upload path");
    (
        b["uploadId"].as_str().unwrap().to_string(),
        url[at..].to_string(),
    )
}

async fn put(app: &TestApp, path: &str, content_type: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn logo_upload_put_confirm_and_serve() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (id, path) = start_upload(&owner, "image/png", PNG.len()).await;

    let (s, b) = owner
        .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "upload_incomplete");

    // Wrong token, wrong type, wrong content, too large: all refused, nothing stored.
    let forged = format!("{}{}", &path[..path.len() - 4], "AAAA");
    let (s, b) = put(&app, &forged, "image/png", PNG.to_vec()).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_upload_token");
    let (s, b) = put(
        &app,
        path.split('?').next().unwrap(),
        "image/png",
        PNG.to_vec(),
    )
    .await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_upload_token");
    let (s, b) = put(&app, &path, "image/jpeg", PNG.to_vec()).await;
    assert_field_error(s, &b, "Content-Type");
    let mut fake = b"GIF89a".to_vec();
    fake.resize(PNG.len(), 0);
    let (s, b) = put(&app, &path, "image/png", fake).await;
    assert_field_error(s, &b, "body");
    let mut big = PNG.to_vec();
    big.push(0);
    let (s, _) = put(&app, &path, "image/png", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, b) = put(&app, &path, "image/png", Vec::new()).await;
    assert_field_error(s, &b, "body");
    let (s, b) = owner
        .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "upload_incomplete");

    let (s, b) = put(&app, &path, "image/png", PNG.to_vec()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["size"], PNG.len());
    let (s, b) = put(&app, &path, "image/png", PNG.to_vec()).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "upload_already_completed");

    // Another tenant cannot confirm it, and a member cannot either.
    assert_eq!(
        other
            .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dealer
            .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dealer.get("/v1/tenants/current/logo").await.0,
        StatusCode::NOT_FOUND
    );

    let (s, t) = owner
        .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["logoUrl"], "/v1/tenants/current/logo");
    let resp = dealer
        .raw(reqwest::Method::GET, "/v1/tenants/current/logo", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(
        other.get("/v1/tenants/current/logo").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner.anonymous().get("/v1/tenants/current/logo").await.0,
        StatusCode::UNAUTHORIZED
    );
    for name in ["upload.created", "upload.completed", "tenant.updated"] {
        assert_eq!(
            app.count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id,
            )
            .await,
            1,
            "{name}"
        );
    }
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["upload.complete", "upload.create"], "{audit}");

    // An SVG logo replaces it and is served so that it cannot run script.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>"#.to_vec();
    let (id2, path2) = start_upload(&owner, "image/svg+xml", svg.len()).await;
    assert_eq!(
        put(&app, &path2, "image/svg+xml", svg.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        owner
            .post("/v1/tenants/current/logo-confirm", json!({"uploadId": id2}))
            .await
            .0,
        StatusCode::OK
    );
    let resp = owner
        .raw(reqwest::Method::GET, "/v1/tenants/current/logo", None, &[])
        .await;
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), svg.as_slice());
}

#[tokio::test]
async fn logo_upload_validation_roles_and_expiry() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    for (body, field) in [
        (
            json!({"contentType": "image/gif", "fileSize": 10}),
            "contentType",
        ),
        (json!({"fileSize": 10}), "contentType"),
        (json!({"contentType": "image/png"}), "fileSize"),
        (
            json!({"contentType": "image/png", "fileSize": 0}),
            "fileSize",
        ),
        (
            json!({"contentType": "image/png", "fileSize": 2 * 1024 * 1024 + 1}),
            "fileSize",
        ),
        (
            json!({"contentType": "image/png", "fileSize": 1.5}),
            "fileSize",
        ),
        (
            json!({"contentType": "image/png", "fileSize": 10, "name": "x"}),
            "name",
        ),
    ] {
        let (s, b) = owner.post("/v1/tenants/current/logo-upload", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = dealer
        .post(
            "/v1/tenants/current/logo-upload",
            json!({"contentType": "image/png", "fileSize": 10}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        owner
            .anonymous()
            .post(
                "/v1/tenants/current/logo-upload",
                json!({"contentType": "image/png", "fileSize": 10}),
            )
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM objects WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (s, b) = owner
        .post("/v1/tenants/current/logo-confirm", json!({}))
        .await;
    assert_field_error(s, &b, "uploadId");
    assert_eq!(
        owner
            .post(
                "/v1/tenants/current/logo-confirm",
                json!({"uploadId": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The full 2 MiB is accepted.
    let mut max = PNG.to_vec();
    max.resize(2 * 1024 * 1024, 0);
    let (_, path) = start_upload(&owner, "image/png", max.len()).await;
    assert_eq!(put(&app, &path, "image/png", max).await.0, StatusCode::OK);

    let (id, path) = start_upload(&owner, "image/png", PNG.len()).await;
    sqlx::query("UPDATE objects SET expires_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&owner.tenant_id)
        .bind(&id)
        .bind("2020-01-01T00:00:00.000Z")
        .execute(app.db.pool())
        .await
        .unwrap();
    let (s, b) = put(&app, &path, "image/png", PNG.to_vec()).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "upload_url_expired");
}
