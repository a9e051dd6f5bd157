use lumire_tests::{PASSWORD, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn register_login_me_logout() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, me) = owner.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["roles"], json!(["owner"]));
    assert_eq!(me["tenant"]["slug"], owner.slug);
    assert_eq!(me["impersonation"]["active"], false);

    // A second browser logs in; the cookie is HttpOnly and SameSite=Lax.
    let c = app.client();
    let resp = c
        .raw(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug})),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("lumirecrm_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
    );
    let (s, _) = c.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.post("/v1/auth/logout", json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = c.get("/v1/auth/me").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");

    // The event and audit trail were written with the registration.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'tenant.created'",
            &owner.tenant_id
        )
        .await,
        1
    );
    assert!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'auth.login'",
            &owner.tenant_id
        )
        .await
            >= 1
    );
}

#[tokio::test]
async fn register_validates_and_refuses_duplicate_slugs() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let (s, b) = c
        .post("/v1/auth/register", json!({"email": "nope", "password": PASSWORD, "tenantSlug": "ok-slug", "tenantName": "X"}))
        .await;
    assert_field_error(s, &b, "email");
    let (s, b) = c
        .post("/v1/auth/register", json!({"email": "a@b.co", "password": "short", "tenantSlug": "ok-slug", "tenantName": "X"}))
        .await;
    assert_field_error(s, &b, "password");
    let (s, b) = c
        .post("/v1/auth/register", json!({"email": "a@b.co", "password": PASSWORD, "tenantSlug": "Bad Slug", "tenantName": "X"}))
        .await;
    assert_field_error(s, &b, "tenantSlug");
    let (s, b) = c
        .post("/v1/auth/register", json!({"email": "a@b.co", "password": PASSWORD, "tenantSlug": "ok-slug", "tenantName": "X", "tenantNmae": "typo"}))
        .await;
    assert_field_error(s, &b, "tenantNmae");
    let owner = app.register_owner().await;
    let (s, b) = c
        .post("/v1/auth/register", json!({"email": "b@b.co", "password": PASSWORD, "tenantSlug": owner.slug, "tenantName": "X"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "tenant_slug_taken");
}

#[tokio::test]
async fn wrong_password_is_401_and_repeated_failures_are_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let c = app.client();
    let bad =
        json!({"email": owner.email, "password": "wrong password!", "tenantSlug": owner.slug});
    for _ in 0..5 {
        let (s, b) = c.post("/v1/auth/login", bad.clone()).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let resp = c
        .raw(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug})),
            &[],
        )
        .await;
    let retry = lumire_tests::retry_after(&resp);
    assert!(retry > 0);
    // Unknown tenants answer like wrong passwords.
    let (s, b) = c
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": PASSWORD, "tenantSlug": "no-such-tenant"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn sessions_list_revoke_one_and_revoke_all_others() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.client();
    let (s, _) = other
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, list) = owner.get("/v1/auth/sessions").await;
    assert_eq!(s, StatusCode::OK);
    let sessions = list["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    let other_id = sessions.iter().find(|x| x["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = owner.delete(&format!("/v1/auth/sessions/{other_id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = other.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = owner.delete(&format!("/v1/auth/sessions/{other_id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Another tenant cannot revoke these sessions.
    let stranger = app.register_owner().await;
    let (_, mine) = owner.get("/v1/auth/sessions").await;
    let my_id = mine["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = stranger.delete(&format!("/v1/auth/sessions/{my_id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let third = app.client();
    third
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug}),
        )
        .await;
    let (s, b) = owner.post("/v1/auth/sessions/revoke-all", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["revoked"], 1);
    assert_eq!(third.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(owner.get("/v1/auth/me").await.0, StatusCode::OK);
    assert_eq!(
        owner.anonymous().get("/v1/auth/sessions").await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn token_from(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Token: "))
        .expect("token line in mail")
        .trim()
        .to_string()
}

#[tokio::test]
async fn password_reset_is_single_use_and_forgot_never_reveals_accounts() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let c = app.client();
    let (s, b) = c
        .post(
            "/v1/auth/password/forgot",
            json!({"email": "nobody@nowhere.example", "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("ok")));
    let (s, _) = c
        .post(
            "/v1/auth/password/forgot",
            json!({"email": owner.email, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (subject, body) = app.last_mail(&owner.email).await.expect("reset mail");
    assert!(subject.contains("Reset"));
    let token = token_from(&body);
    let new_pw = "a brand new passphrase";
    let (s, b) = c
        .post(
            "/v1/auth/password/reset",
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_field_error(s, &b, "password");
    let (s, b) = c
        .post(
            "/v1/auth/password/reset",
            json!({"token": token, "password": new_pw}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = c
        .post(
            "/v1/auth/password/reset",
            json!({"token": token, "password": new_pw}),
        )
        .await;
    assert_field_error(s, &b, "token");
    // The old session is gone; the new password works.
    assert_eq!(owner.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    let (s, _) = c
        .post(
            "/v1/auth/login",
            json!({"email": owner.email, "password": new_pw, "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn email_verification_and_resend() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, body) = app
        .last_mail(&owner.email)
        .await
        .expect("verification mail");
    let (s, _) = owner.post("/v1/auth/email/resend", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, body2) = app.last_mail(&owner.email).await.unwrap();
    assert_ne!(token_from(&body), token_from(&body2));
    let c = app.client();
    let (s, b) = c
        .post(
            "/v1/auth/email/verify",
            json!({"token": token_from(&body2)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, me) = owner.get("/v1/auth/me").await;
    assert_eq!(me["user"]["emailVerified"], true);
    let (s, b) = owner.post("/v1/auth/email/resend", json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "email_already_verified");
    let (s, b) = c
        .post("/v1/auth/email/verify", json!({"token": "garbage"}))
        .await;
    assert_field_error(s, &b, "token");
}

fn code_for(secret: &str, offset_steps: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .unwrap();
    let totp =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate(((now / 30 + offset_steps) * 30) as u64)
}

#[tokio::test]
async fn totp_enrolment_login_and_replay_refusal() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner.post("/v1/auth/totp/enroll", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let secret = b["secret"].as_str().unwrap().to_string();
    assert!(
        b["otpauthUrl"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let (s, b) = owner
        .post("/v1/auth/totp/verify", json!({"code": "12"}))
        .await;
    assert_field_error(s, &b, "code");
    let (s, b) = owner
        .post(
            "/v1/auth/totp/verify",
            json!({"code": code_for(&secret, -1)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = owner.post("/v1/auth/totp/enroll", json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "totp_already_enabled");

    let c = app.client();
    let creds = json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug});
    let (s, b) = c.post("/v1/auth/login", creds.clone()).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "totp_required");
    let mut with_code = creds.clone();
    with_code["totpCode"] = json!(code_for(&secret, 0));
    let (s, b) = c.post("/v1/auth/login", with_code.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The same code cannot be used twice.
    let (s, b) = app.client().post("/v1/auth/login", with_code).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "totp_code_used");
}

#[tokio::test]
async fn identity_endpoints_need_a_session() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for path in ["/v1/auth/me", "/v1/auth/sessions"] {
        assert_eq!(c.get(path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in [
        "/v1/auth/email/resend",
        "/v1/auth/totp/enroll",
        "/v1/auth/sessions/revoke-all",
    ] {
        assert_eq!(
            c.post(path, json!({})).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    // A forged cookie is refused too.
    let resp = c
        .raw(
            reqwest::Method::GET,
            "/v1/auth/me",
            None,
            &[("cookie", "lumirecrm_session=01ABC.forged")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_lockout_holds_back_guesses_but_not_the_owner() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let right = json!({"email": owner.email, "password": PASSWORD, "tenantSlug": owner.slug});
    // The owner's browser has logged in before: it carries the device cookie.
    let browser = app.client();
    let (s, b) = browser.post("/v1/auth/login", right.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // A stranger who knows the e-mail guesses until held back.
    let stranger = app.client();
    let bad =
        json!({"email": owner.email, "password": "wrong password!", "tenantSlug": owner.slug});
    for _ in 0..5 {
        let (s, b) = stranger.post("/v1/auth/login", bad.clone()).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let resp = stranger
        .raw(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(bad.clone()),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // A new device with the right password waits the back-off (a second or two here), then
    // gets in: the lockout delays, it does not lock out.
    let laptop = app.client();
    let resp = laptop
        .raw(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(right.clone()),
            &[],
        )
        .await;
    let retry = lumire_tests::retry_after(&resp);
    assert!((1..=60).contains(&retry), "{retry}");
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    let (s, b) = laptop.post("/v1/auth/login", right.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // The stranger starts again; the owner's known browser is not held back at all.
    for _ in 0..5 {
        stranger.post("/v1/auth/login", bad.clone()).await;
    }
    let resp = app
        .client()
        .raw(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(right.clone()),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let (s, b) = browser.post("/v1/auth/login", right).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
