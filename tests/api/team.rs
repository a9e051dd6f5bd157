use lumire_tests::{Member, PASSWORD, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn token_from(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Token: "))
        .expect("token line in mail")
        .trim()
        .to_string()
}

/// Invites an address and returns (invitation id, mailed token).
async fn invite(app: &TestApp, by: &Member, email: &str, roles: Value) -> (String, String) {
    let (s, b) = by
        .post(
            "/v1/team/invite",
            json!({"email": email, "displayName": "New Person", "roles": roles}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, body) = app.last_mail(email).await.expect("invitation mail");
    (b["id"].as_str().unwrap().to_string(), token_from(&body))
}

async fn roles_of(app: &TestApp, tenant_id: &str, user_id: &str) -> String {
    sqlx::query_scalar("SELECT roles FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn invite_show_accept_starts_a_session_and_is_single_use() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, inv) = owner
        .post(
            "/v1/team/invite",
            json!({"email": "Dana@Example.com", "displayName": "Dana", "roles": ["dealer", "sales"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["roles"], json!(["dealer", "sales"]));
    assert_eq!(inv["invitedBy"], json!(owner.user_id));
    let id = inv["id"].as_str().unwrap();
    let (subject, body) = app.last_mail("Dana@Example.com").await.expect("mail");
    assert!(subject.contains("Test Broker"), "{subject}");
    assert!(
        body.contains("Owner invited you to join Test Broker"),
        "{body}"
    );
    let token = token_from(&body);
    assert!(token.starts_with(&format!("{}.", owner.tenant_id)));
    assert!(body.contains(&format!("/accept-invite?token={token}")));
    // Only the hash is stored; the invitation lives 7 days.
    let (hash, created, expires): (String, String, String) = sqlx::query_as(
        "SELECT token_hash, created_at, expires_at FROM invitations WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&owner.tenant_id)
    .bind(id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(!token.contains(&hash));
    let days = chrono_days(&created, &expires);
    assert_eq!(days, 7);

    let (_, team) = owner.get("/v1/team").await;
    assert_eq!(team["invitations"][0]["id"], json!(id));
    assert_eq!(team["members"].as_array().unwrap().len(), 1);

    let visitor = app.client();
    let (s, shown) = visitor.get(&format!("/v1/team/invitations/{token}")).await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    assert_eq!(shown["tenant"]["name"], "Test Broker");
    assert_eq!(shown["email"], "Dana@Example.com");
    assert_eq!(shown["roles"], json!(["dealer", "sales"]));

    let (s, joined) = visitor
        .post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": PASSWORD, "displayName": "Dana D."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{joined}");
    assert_eq!(joined["user"]["displayName"], "Dana D.");
    assert_eq!(joined["user"]["roles"], json!(["dealer", "sales"]));
    assert_eq!(joined["user"]["emailVerified"], true);
    let (s, me) = visitor.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["email"], "Dana@Example.com");
    assert_eq!(me["impersonation"]["active"], false);
    // The new member can sign in with the chosen password.
    let (s, _) = app
        .client()
        .post(
            "/v1/auth/login",
            json!({"email": "dana@example.com", "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Used: neither shown nor accepted again.
    assert_eq!(
        visitor
            .get(&format!("/v1/team/invitations/{token}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.client()
            .post(
                &format!("/v1/team/invitations/{token}/accept"),
                json!({"password": PASSWORD}),
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, team) = owner.get("/v1/team").await;
    assert_eq!(team["members"].as_array().unwrap().len(), 2);
    assert_eq!(team["invitations"].as_array().unwrap().len(), 0);
    for name in ["invitation.created", "invitation.accepted", "user.created"] {
        let n = app
            .count(
                &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
                &owner.tenant_id,
            )
            .await;
        assert!(n >= 1, "{name}");
    }
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["invitation.accept", "invitation.create"],
        "{audit}"
    );
}

fn chrono_days(from: &str, to: &str) -> i64 {
    // Both are RFC 3339 UTC with milliseconds; compare the calendar dates plus the clock.
    let parse = |s: &str| {
        let (date, _) = s.split_once('T').unwrap();
        let parts: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
        days_from_civil(parts[0], parts[1], parts[2])
    };
    assert_eq!(
        from.split_once('T').unwrap().1,
        to.split_once('T').unwrap().1
    );
    parse(to) - parse(from)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe
}

#[tokio::test]
async fn invite_rules_and_validation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let admin = app.member(&owner, &["admin"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let body = json!({"email": "x@example.com", "roles": ["sales"]});
    assert_eq!(
        owner
            .anonymous()
            .post("/v1/team/invite", body.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = dealer.post("/v1/team/invite", body.clone()).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    for (body, field) in [
        (json!({"email": "nope", "roles": ["sales"]}), "email"),
        (json!({"roles": ["sales"]}), "email"),
        (json!({"email": "x@example.com"}), "roles"),
        (json!({"email": "x@example.com", "roles": []}), "roles"),
        (
            json!({"email": "x@example.com", "roles": ["wizard"]}),
            "roles",
        ),
        (
            json!({"email": "x@example.com", "roles": ["platform_operator"]}),
            "roles",
        ),
        (
            json!({"email": "x@example.com", "roles": ["sales"], "password": "x"}),
            "password",
        ),
    ] {
        let (s, b) = owner.post("/v1/team/invite", body).await;
        assert_field_error(s, &b, field);
    }
    // Only an owner hands out `owner`.
    let (s, b) = admin
        .post(
            "/v1/team/invite",
            json!({"email": "boss@example.com", "roles": ["owner"]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM invitations WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    assert!(app.last_mail("boss@example.com").await.is_none());
    // Members and pending invitations are not invited twice.
    let (s, b) = admin
        .post(
            "/v1/team/invite",
            json!({"email": dealer.email.to_uppercase(), "roles": ["sales"]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "member_exists");
    invite(&app, &admin, "x@example.com", json!(["sales"])).await;
    let (s, b) = owner.post("/v1/team/invite", body).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invitation_pending");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM invitations WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
    // Any staff member sees the team.
    assert_eq!(dealer.get("/v1/team").await.0, StatusCode::OK);
    assert_eq!(
        owner.anonymous().get("/v1/team").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn accept_validates_and_refuses_bad_tokens() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, token) = invite(&app, &owner, "new@example.com", json!(["support"])).await;
    let c = app.client();
    let (s, b) = c
        .post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": "short"}),
        )
        .await;
    assert_field_error(s, &b, "password");
    let (s, b) = c
        .post(&format!("/v1/team/invitations/{token}/accept"), json!({}))
        .await;
    assert_field_error(s, &b, "password");
    let (s, b) = c
        .post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": PASSWORD, "roles": ["owner"]}),
        )
        .await;
    assert_field_error(s, &b, "roles");
    let wrong = format!("{}.{}", owner.tenant_id, "A".repeat(43));
    for t in [wrong.as_str(), "garbage", "x.y"] {
        assert_eq!(
            c.get(&format!("/v1/team/invitations/{t}")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            c.post(
                &format!("/v1/team/invitations/{t}/accept"),
                json!({"password": PASSWORD}),
            )
            .await
            .0,
            StatusCode::NOT_FOUND
        );
    }
    // Nothing was created by the refusals; the invitation still works.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM users WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
    assert_eq!(
        c.get(&format!("/v1/team/invitations/{token}")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_and_revoked_invitations_are_gone() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let (id, token) = invite(&app, &owner, "late@example.com", json!(["sales"])).await;
    sqlx::query("UPDATE invitations SET expires_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(&owner.tenant_id)
        .bind(&id)
        .bind("2020-01-01T00:00:00.000Z")
        .execute(app.db.pool())
        .await
        .unwrap();
    let c = app.client();
    assert_eq!(
        c.get(&format!("/v1/team/invitations/{token}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, team) = owner.get("/v1/team").await;
    assert_eq!(team["invitations"].as_array().unwrap().len(), 0);

    let (id, token) = invite(&app, &owner, "gone@example.com", json!(["sales"])).await;
    // Another tenant, a plain member or a made-up id cannot revoke it.
    assert_eq!(
        other.delete(&format!("/v1/team/invitations/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dealer.delete(&format!("/v1/team/invitations/{id}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner.delete("/v1/team/invitations/not-an-id").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(&format!("/v1/team/invitations/{token}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        owner.delete(&format!("/v1/team/invitations/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get(&format!("/v1/team/invitations/{token}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (s, b) = owner.delete(&format!("/v1/team/invitations/{id}")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invitation_revoked");
    // Once revoked, the address can be invited again.
    invite(&app, &owner, "gone@example.com", json!(["sales"])).await;

    // An accepted invitation is not revoked: the member is removed instead.
    let (id, token) = invite(&app, &owner, "kept@example.com", json!(["sales"])).await;
    let (s, _) = c
        .post(
            &format!("/v1/team/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = owner.delete(&format!("/v1/team/invitations/{id}")).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invitation_accepted");
}

#[tokio::test]
async fn role_changes_follow_the_owner_rules() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let admin = app.member(&owner, &["admin"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let path = |id: &str| format!("/v1/team/members/{id}/roles");

    let (s, b) = owner
        .patch(
            &path(&dealer.user_id),
            json!({"roles": ["sales", "support"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["roles"], json!(["sales", "support"]));
    // The change applies to the member's live session at once.
    assert_eq!(dealer.get("/v1/team").await.0, StatusCode::OK);
    assert_eq!(
        dealer
            .post("/v1/traders", json!({"email": "t@example.com"}))
            .await
            .0,
        StatusCode::CREATED
    );

    for (body, field) in [
        (json!({"roles": ["platform_operator"]}), "roles"),
        (json!({"roles": ["wizard"]}), "roles"),
        (json!({"roles": []}), "roles"),
        (json!({}), "roles"),
        (json!({"roles": ["sales"], "extra": 1}), "extra"),
    ] {
        let (s, b) = owner.patch(&path(&dealer.user_id), body).await;
        assert_field_error(s, &b, field);
    }
    // Admins neither grant `owner` nor touch an owner.
    let (s, b) = admin
        .patch(&path(&dealer.user_id), json!({"roles": ["owner"]}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = admin
        .patch(&path(&owner.user_id), json!({"roles": ["admin"]}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    // The last owner cannot step down.
    let (s, b) = owner
        .patch(&path(&owner.user_id), json!({"roles": ["admin"]}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "last_owner");
    assert!(
        roles_of(&app, &owner.tenant_id, &owner.user_id)
            .await
            .contains("owner")
    );
    // Members cannot change roles; another tenant's member is 404.
    assert_eq!(
        dealer
            .patch(&path(&admin.user_id), json!({"roles": ["sales"]}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        other
            .patch(&path(&dealer.user_id), json!({"roles": ["ib"]}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .patch(&path("not-a-user"), json!({"roles": ["ib"]}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        roles_of(&app, &owner.tenant_id, &dealer.user_id).await,
        r#"["sales","support"]"#
    );
    // With a second owner, the first may step down.
    let (s, _) = owner
        .patch(&path(&admin.user_id), json!({"roles": ["owner", "admin"]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = owner
        .patch(&path(&owner.user_id), json!({"roles": ["admin"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = admin
        .patch(&path(&admin.user_id), json!({"roles": ["admin"]}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "last_owner");
    let n = app
        .count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'user.roles_changed'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(n, 3);
}

#[tokio::test]
async fn demotion_caps_the_members_api_keys() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let admin = app.member(&owner, &["admin", "sales"]).await;
    let (s, b) = admin
        .post("/v1/api-keys", json!({"name": "mine", "scopes": ["*"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = admin.with_bearer(b["key"].as_str().unwrap());
    assert_eq!(key.get("/v1/api-keys").await.0, StatusCode::OK);
    let (s, _) = owner
        .patch(
            &format!("/v1/team/members/{}/roles", admin.user_id),
            json!({"roles": ["sales"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(key.get("/v1/api-keys").await.0, StatusCode::FORBIDDEN);
    assert_eq!(key.get("/v1/traders").await.0, StatusCode::OK);
    let (_, list) = owner.get("/v1/api-keys").await;
    assert_eq!(list["data"][0]["roles"], json!(["sales"]));
}

#[tokio::test]
async fn removing_a_member_signs_them_out_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let admin = app.member(&owner, &["admin"]).await;
    let dealer = app.member(&owner, &["dealer"]).await;
    // The member's own key and a pending invitation they sent.
    let (_, b) = admin
        .post("/v1/api-keys", json!({"name": "admin's", "scopes": ["*"]}))
        .await;
    let admin_key = admin.with_bearer(b["key"].as_str().unwrap());
    let (_, token) = invite(&app, &admin, "friend@example.com", json!(["sales"])).await;

    let member = |id: &str| format!("/v1/team/members/{id}");
    let (s, b) = admin.delete(&member(&admin.user_id)).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "cannot_remove_self");
    let (s, b) = admin.delete(&member(&owner.user_id)).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        dealer.delete(&member(&admin.user_id)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        other.delete(&member(&admin.user_id)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner.anonymous().delete(&member(&admin.user_id)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin.get("/v1/team").await.0, StatusCode::OK);

    assert_eq!(
        owner.delete(&member(&admin.user_id)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(admin.get("/v1/team").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin_key.get("/v1/traders").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client()
            .get(&format!("/v1/team/invitations/{token}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, _) = app
        .client()
        .post(
            "/v1/auth/login",
            json!({"email": admin.email, "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, team) = owner.get("/v1/team").await;
    let ids: Vec<&str> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(!ids.contains(&admin.user_id.as_str()));
    assert_eq!(
        owner.delete(&member(&admin.user_id)).await.0,
        StatusCode::NOT_FOUND
    );
    // The address is free to be invited again.
    invite(&app, &owner, &admin.email, json!(["support"])).await;
    let (_, audit) = owner
        .get(&format!("/v1/audit?resourceId={}", admin.user_id))
        .await;
    let entry = &audit["data"][0];
    assert_eq!(entry["action"], "user.remove", "{audit}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'user.deactivated'",
            &owner.tenant_id
        )
        .await,
        1
    );
}
