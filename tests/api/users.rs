use lumire_tests::{PASSWORD, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn list_users_pages_and_filters() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let sales = app.member(&owner, &["sales", "support"]).await;
    let (s, p1) = owner.get("/v1/users?limit=2").await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    assert_eq!(p1["data"][0]["id"], json!(sales.user_id));
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = owner
        .get(&format!("/v1/users?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());

    let (_, by_role) = owner.get("/v1/users?role=support").await;
    assert_eq!(by_role["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_role["data"][0]["id"], json!(sales.user_id));
    let (_, by_q) = owner.get("/v1/users?q=OWNER@").await;
    assert_eq!(by_q["data"][0]["id"], json!(owner.user_id));

    let (s, b) = owner.get("/v1/users?status=gone").await;
    assert_field_error(s, &b, "status");
    let (s, b) = owner.get("/v1/users?role=wizard").await;
    assert_field_error(s, &b, "role");

    assert_eq!(
        owner
            .delete(&format!("/v1/users/{}", dealer.user_id))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, active) = owner.get("/v1/users").await;
    assert_eq!(active["data"].as_array().unwrap().len(), 2);
    let (_, gone) = owner.get("/v1/users?status=deactivated").await;
    assert_eq!(gone["data"][0]["id"], json!(dealer.user_id));
    assert_eq!(gone["data"][0]["status"], "deactivated");

    assert_eq!(sales.get("/v1/users").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        owner.anonymous().get("/v1/users").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, theirs) = other.get("/v1/users").await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invite_with_password_creates_the_user_and_without_one_sends_a_link() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post(
            "/v1/users/invite",
            json!({"email": "sam@example.com", "displayName": "Sam", "roles": ["sales"], "password": PASSWORD, "sendInviteLink": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["invitation"].is_null());
    assert_eq!(b["user"]["email"], "sam@example.com");
    assert_eq!(b["user"]["roles"], json!(["sales"]));
    let (_, notice) = app.last_mail("sam@example.com").await.expect("notice");
    assert!(notice.contains(&owner.slug), "{notice}");
    assert!(!notice.contains(PASSWORD));
    let sam = app.client();
    let (s, _) = sam
        .post(
            "/v1/auth/login",
            json!({"email": "sam@example.com", "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // No mail unless asked for.
    let (s, _) = owner
        .post(
            "/v1/users/invite",
            json!({"email": "quiet@example.com", "roles": ["support"], "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(app.last_mail("quiet@example.com").await.is_none());

    let (s, b) = owner
        .post(
            "/v1/users/invite",
            json!({"email": "ivy@example.com", "displayName": "Ivy", "roles": ["finance"], "sendInviteLink": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["user"].is_null());
    assert_eq!(b["invitation"]["status"], "pending");
    let (_, body) = app.last_mail("ivy@example.com").await.expect("invitation");
    assert!(body.contains("Token: "));

    for (body, field) in [
        (
            json!({"email": "a@example.com", "roles": ["sales"], "sendInviteLink": false}),
            "sendInviteLink",
        ),
        (
            json!({"email": "a@example.com", "roles": ["sales"], "password": "short"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "roles": ["platform_operator"], "password": PASSWORD}),
            "roles",
        ),
        (json!({"email": "a@", "roles": ["sales"]}), "email"),
    ] {
        let (s, b) = owner.post("/v1/users/invite", body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = owner
        .post(
            "/v1/users/invite",
            json!({"email": "SAM@example.com", "roles": ["sales"], "password": PASSWORD}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "member_exists");
    let (s, b) = owner
        .post(
            "/v1/users/invite",
            json!({"email": "ivy@example.com", "roles": ["sales"], "password": PASSWORD}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invitation_pending");
    let admin = app.member(&owner, &["admin"]).await;
    let (s, b) = admin
        .post(
            "/v1/users/invite",
            json!({"email": "boss@example.com", "roles": ["owner"], "password": PASSWORD}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let dealer = app.member(&owner, &["dealer"]).await;
    assert_eq!(
        dealer
            .post(
                "/v1/users/invite",
                json!({"email": "b@example.com", "roles": ["sales"], "password": PASSWORD}),
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // owner, sam, quiet, admin, dealer
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM users WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        5
    );
}

#[tokio::test]
async fn users_paths_share_the_team_rules() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (s, b) = owner
        .patch(
            &format!("/v1/users/{}/roles", dealer.user_id),
            json!({"roles": ["finance"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["roles"], json!(["finance"]));
    let (s, b) = owner
        .patch(
            &format!("/v1/users/{}/roles", owner.user_id),
            json!({"roles": ["admin"]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "last_owner");
    let (s, b) = owner
        .patch(
            &format!("/v1/users/{}/roles", dealer.user_id),
            json!({"roles": ["platform_operator"]}),
        )
        .await;
    assert_field_error(s, &b, "roles");
    let (s, b) = owner.delete(&format!("/v1/users/{}", owner.user_id)).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "cannot_remove_self");
    assert_eq!(
        other
            .delete(&format!("/v1/users/{}", dealer.user_id))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dealer
            .delete(&format!("/v1/users/{}", owner.user_id))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner
            .delete(&format!("/v1/users/{}", dealer.user_id))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(dealer.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn owner_impersonates_a_member_for_thirty_minutes() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer", "sales"]).await;
    // A second browser of the owner, to see that the owner's own session stays.
    let owner_tab = app.client();
    let (s, _) = owner_tab
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let resp = owner
        .raw(
            reqwest::Method::POST,
            &format!("/v1/users/{}/impersonate", dealer.user_id),
            Some(json!({"reason": "reproduce a support ticket"})),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("lumirecrm_session="), "{cookie}");
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["user"]["id"], json!(dealer.user_id));
    assert_eq!(b["session"]["impersonatorId"], json!(owner.user_id));
    let session_id = b["session"]["id"].as_str().unwrap().to_string();
    let expires: String = sqlx::query_scalar(
        "SELECT expires_at FROM sessions WHERE tenant_id = $1 AND id = $2 AND impersonator_id = $3 AND subject_id = $4",
    )
    .bind(&owner.tenant_id)
    .bind(&session_id)
    .bind(&owner.user_id)
    .bind(&dealer.user_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(expires, b["session"]["expiresAt"].as_str().unwrap());
    let created: String =
        sqlx::query_scalar("SELECT created_at FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(&owner.tenant_id)
            .bind(&session_id)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(minutes_between(&created, &expires), 30);

    // The owner's browser now acts as the dealer, flagged as an impersonation.
    let (_, me) = owner.get("/v1/auth/me").await;
    assert_eq!(me["user"]["id"], json!(dealer.user_id));
    assert_eq!(me["impersonation"]["active"], true);
    assert_eq!(
        me["impersonation"]["impersonator"]["id"],
        json!(owner.user_id)
    );
    assert_eq!(
        owner.get("/v1/api-keys").await.0,
        StatusCode::FORBIDDEN,
        "acts with the dealer's roles"
    );
    let (s, t) = owner
        .post("/v1/traders", json!({"email": "seen@example.com"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (_, audit) = owner_tab
        .get(&format!(
            "/v1/audit?resourceId={}",
            t["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(audit["data"][0]["actorId"], json!(dealer.user_id));
    assert_eq!(audit["data"][0]["impersonatorId"], json!(owner.user_id));
    let (_, audit) = owner_tab
        .get(&format!(
            "/v1/audit?action=user.impersonate&resourceId={}",
            dealer.user_id
        ))
        .await;
    let entry = &audit["data"][0];
    assert_eq!(entry["actorId"], json!(owner.user_id));
    assert_eq!(entry["after"]["targetUserId"], json!(dealer.user_id));
    assert_eq!(entry["after"]["impersonatorId"], json!(owner.user_id));
    assert_eq!(entry["after"]["reason"], "reproduce a support ticket");
    // The owner's own session is untouched.
    let (_, me) = owner_tab.get("/v1/auth/me").await;
    assert_eq!(me["user"]["id"], json!(owner.user_id));
    assert_eq!(me["impersonation"]["active"], false);
}

fn minutes_between(from: &str, to: &str) -> i64 {
    // Same day in these tests unless run across midnight; compare clock times in minutes.
    let mins = |s: &str| {
        let t = s.split_once('T').unwrap().1;
        let p: Vec<f64> = t
            .trim_end_matches('Z')
            .split(':')
            .map(|x| x.parse().unwrap())
            .collect();
        p[0] * 60.0 + p[1] + p[2] / 60.0
    };
    ((mins(to) - mins(from)).rem_euclid(24.0 * 60.0)).round() as i64
}

#[tokio::test]
async fn impersonation_refusals() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let co_owner = app.member(&owner, &["owner"]).await;
    let admin = app.member(&owner, &["admin"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let path = |id: &str| format!("/v1/users/{id}/impersonate");
    let (s, b) = owner.post(&path(&owner.user_id), json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "cannot_impersonate_self");
    let (s, b) = owner.post(&path(&co_owner.user_id), json!({})).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = admin.post(&path(&dealer.user_id), json!({})).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        other.post(&path(&dealer.user_id), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner.post(&path("nobody"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .anonymous()
            .post(&path(&dealer.user_id), json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = owner
        .post(&path(&dealer.user_id), json!({"reason": "x".repeat(501)}))
        .await;
    assert_field_error(s, &b, "reason");
    // An owner's API key cannot mint a session.
    let (_, k) = owner
        .post("/v1/api-keys", json!({"name": "k", "scopes": ["*"]}))
        .await;
    let key = owner.with_bearer(k["key"].as_str().unwrap());
    let (s, b) = key.post(&path(&dealer.user_id), json!({})).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM sessions WHERE tenant_id = $1 AND impersonator_id IS NOT NULL",
            &owner.tenant_id
        )
        .await,
        0
    );
    // The owner still acts as themself after all the refusals.
    let (_, me) = owner.get("/v1/auth/me").await;
    assert_eq!(me["user"]["id"], json!(owner.user_id));
}
