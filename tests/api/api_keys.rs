use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn create_key(m: &Member, scopes: Value) -> (String, String) {
    let (s, b) = m
        .post("/v1/api-keys", json!({"name": "sync", "scopes": scopes}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (
        b["id"].as_str().unwrap().to_string(),
        b["key"].as_str().unwrap().to_string(),
    )
}

async fn set_expiry(app: &TestApp, tenant_id: &str, id: &str, at: &str) {
    sqlx::query("UPDATE api_keys SET expires_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .bind(at)
        .execute(app.db.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn create_shows_the_secret_once_and_bearer_works_within_scopes() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "Back office", "scopes": ["traders:read"], "expiresAt": "2099-01-01T00:00:00.000Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap();
    let key = b["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("lk_{}.{id}.", owner.tenant_id)),
        "{key}"
    );
    assert_eq!(b["status"], "active");
    assert_eq!(b["roles"], json!(["owner"]));
    assert_eq!(b["scopes"], json!(["traders:read"]));
    assert_eq!(b["createdBy"], json!(owner.user_id));
    assert_eq!(b["expiresAt"], "2099-01-01T00:00:00.000Z");
    assert!(key.starts_with(b["prefix"].as_str().unwrap()));

    // Only a hash is stored.
    let secret = key.rsplit('.').next().unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT secret_hash FROM api_keys WHERE tenant_id = $1 AND id = $2")
            .bind(&owner.tenant_id)
            .bind(id)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_ne!(stored, secret);
    assert_eq!(stored.len(), 64);

    let bot = owner.with_bearer(key);
    assert_eq!(bot.get("/v1/traders").await.0, StatusCode::OK);
    let (s, b) = bot
        .post("/v1/traders", json!({"email": "a@example.com"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert!(b["detail"].as_str().unwrap().contains("traders:write"));
    // Out of scope as well: the key cannot manage keys.
    assert_eq!(bot.get("/v1/api-keys").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );

    // Listed without the secret, with its last use recorded.
    let (s, list) = owner.get("/v1/api-keys").await;
    assert_eq!(s, StatusCode::OK);
    let row = &list["data"][0];
    assert_eq!(row["id"], json!(id));
    assert!(row.get("key").is_none(), "{row}");
    assert!(row["lastUsedAt"].is_string(), "{row}");
    assert!(!list.to_string().contains(secret));

    // A garbage or forged key is 401.
    assert_eq!(
        owner.with_bearer("lk_nope").get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("lk_{}.{id}.{}", owner.tenant_id, "x".repeat(43));
    assert_eq!(
        owner.with_bearer(&forged).get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    for name in ["api_key.created"] {
        let n = app
            .count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id,
            )
            .await;
        assert_eq!(n, 1, "{name}");
    }
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    assert_eq!(audit["data"][0]["action"], "api_key.create", "{audit}");
}

#[tokio::test]
async fn wildcard_and_tag_scopes() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, all) = create_key(&owner, json!(["*"])).await;
    let (_, traders) = create_key(&owner, json!(["traders:*"])).await;
    let all = owner.with_bearer(&all);
    let traders = owner.with_bearer(&traders);
    assert_eq!(
        traders
            .post("/v1/traders", json!({"email": "a@example.com"}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(traders.get("/v1/traders").await.0, StatusCode::OK);
    assert_eq!(all.get("/v1/api-keys").await.0, StatusCode::OK);
    assert_eq!(all.get("/v1/tenants/current").await.0, StatusCode::OK);
}

#[tokio::test]
async fn validation_names_fields_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for (body, field) in [
        (json!({"scopes": ["traders:read"]}), "name"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": ["nonsense:read"]}), "scopes"),
        (json!({"name": "x", "scopes": ["traders:delete"]}), "scopes"),
        (json!({"name": "x", "scopes": ["traders"]}), "scopes"),
        (
            json!({"name": "x", "scopes": ["traders:read"], "expiresAt": "tomorrow"}),
            "expiresAt",
        ),
        (
            json!({"name": "x", "scopes": ["traders:read"], "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
        (
            json!({"name": "x", "scopes": ["traders:read"], "role": "owner"}),
            "role",
        ),
    ] {
        let (s, b) = owner.post("/v1/api-keys", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn only_admins_manage_keys_and_keys_never_exceed_their_creator() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let admin = app.member(&owner, &["admin"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let body = json!({"name": "x", "scopes": ["*"]});
    assert_eq!(
        owner.anonymous().post("/v1/api-keys", body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner.anonymous().get("/v1/api-keys").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = dealer.post("/v1/api-keys", body.clone()).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(dealer.get("/v1/api-keys").await.0, StatusCode::FORBIDDEN);

    // An admin's key acts as an admin, not more.
    let (s, b) = admin.post("/v1/api-keys", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["roles"], json!(["admin"]));
    let admin_key = owner.with_bearer(b["key"].as_str().unwrap());
    let (s, _) = admin_key
        .post(
            "/v1/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/impersonate",
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // An admin cannot take hold of the owner's key by rotating it; revoking is fine.
    let (owner_key_id, _) = create_key(&owner, json!(["traders:read"])).await;
    let (s, b) = admin
        .post(&format!("/v1/api-keys/{owner_key_id}/rotate"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // A key that may manage keys cannot mint a broader key.
    let (_, keys_key) = create_key(&owner, json!(["api-keys:*"])).await;
    let keys_key = owner.with_bearer(&keys_key);
    let (s, b) = keys_key.post("/v1/api-keys", body.clone()).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = keys_key
        .post(
            "/v1/api-keys",
            json!({"name": "y", "scopes": ["api-keys:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["createdBy"], json!(owner.user_id));

    assert_eq!(
        admin
            .post(&format!("/v1/api-keys/{owner_key_id}/revoke"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (id, key) = create_key(&owner, json!(["traders:read"])).await;
    let bot = owner.with_bearer(&key);
    assert_eq!(bot.get("/v1/traders").await.0, StatusCode::OK);
    set_expiry(&app, &owner.tenant_id, &id, "2020-01-01T00:00:00.000Z").await;
    let (s, b) = bot.get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "api_key_expired");
    let (_, list) = owner.get("/v1/api-keys").await;
    assert_eq!(list["data"][0]["status"], "expired");
    let (s, b) = owner
        .post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "api_key_expired");
}

#[tokio::test]
async fn revoke_stops_the_key_and_is_not_repeated() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (id, key) = create_key(&owner, json!(["traders:read"])).await;
    let bot = owner.with_bearer(&key);
    let (s, b) = owner
        .post(&format!("/v1/api-keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "revoked");
    assert!(b["revokedAt"].is_string());
    let (s, b) = bot.get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_api_key");
    let (s, b) = owner
        .post(&format!("/v1/api-keys/{id}/revoke"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "api_key_revoked");
    let (s, b) = owner
        .post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "api_key_revoked");
    assert_eq!(bot.get("/v1/traders").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'api_key.revoked'",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn rotate_replaces_the_secret() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (id, old) = create_key(&owner, json!(["traders:read"])).await;
    let (s, b) = owner
        .post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let new = b["key"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(b["id"], json!(id));
    assert_eq!(b["status"], "active");
    let (s, b) = owner.with_bearer(&old).get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(
        owner.with_bearer(new).get("/v1/traders").await.0,
        StatusCode::OK
    );
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "api_key.rotate"),
        "{audit}"
    );
}

#[tokio::test]
async fn delete_removes_the_key() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (id, key) = create_key(&owner, json!(["traders:read"])).await;
    assert_eq!(
        owner.delete(&format!("/v1/api-keys/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        owner.with_bearer(&key).get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, list) = owner.get("/v1/api-keys").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        owner.delete(&format!("/v1/api-keys/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tenants_never_touch_each_others_keys() {
    let app = TestApp::spawn().await;
    let a = app.register_owner().await;
    let b = app.register_owner().await;
    let (id, key) = create_key(&a, json!(["traders:read"])).await;
    for (status, _) in [
        b.post(&format!("/v1/api-keys/{id}/revoke"), json!({}))
            .await,
        b.post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
            .await,
        b.delete(&format!("/v1/api-keys/{id}")).await,
        b.post("/v1/api-keys/not-a-ulid/revoke", json!({})).await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, list) = b.get("/v1/api-keys").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    // A's key named under B's tenant id does not resolve.
    let moved = key.replacen(&a.tenant_id, &b.tenant_id, 1);
    assert_eq!(
        a.with_bearer(&moved).get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        a.with_bearer(&key).get("/v1/traders").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn list_pages_newest_first() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_key(&owner, json!(["traders:read"])).await.0);
    }
    let (_, p1) = owner.get("/v1/api-keys?limit=2").await;
    assert_eq!(p1["data"][0]["id"], json!(ids[2]));
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/api-keys?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"][0]["id"], json!(ids[0]));
    assert!(p2["next_cursor"].is_null());
}

#[tokio::test]
async fn an_api_key_cannot_touch_what_guards_the_account() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, key) = create_key(&owner, json!(["*"])).await;
    let bot = owner.with_bearer(&key);
    let (_, sessions) = owner.get("/v1/auth/sessions").await;
    let session_id = sessions["data"][0]["id"].as_str().unwrap().to_string();
    for (method, path) in [
        ("POST", "/v1/auth/totp/enroll".to_string()),
        ("POST", "/v1/auth/totp/verify".to_string()),
        ("POST", "/v1/auth/sessions/revoke-all".to_string()),
        ("DELETE", format!("/v1/auth/sessions/{session_id}")),
        ("POST", "/v1/auth/passkeys/register/start".to_string()),
    ] {
        let (s, b) = match method {
            "POST" => bot.post(&path, json!({"code": "123456"})).await,
            _ => bot.delete(&path).await,
        };
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {b}");
        assert!(
            b["code"] == "session_required"
                || b["detail"].as_str().unwrap_or("").contains("API key"),
            "{method} {path}: {b}"
        );
    }
    // The owner's session and login are untouched: no TOTP was enrolled, the session lives.
    let (s, me) = owner.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let (s, b) = app
        .anonymous()
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": lumire_tests::PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A session still may.
    let (s, b) = owner.post("/v1/auth/totp/enroll", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
