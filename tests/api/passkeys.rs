//! Passkeys: full WebAuthn ceremonies driven by a software authenticator (the browser's part
//! is played by `webauthn-authenticator-rs`).

use lumire_tests::{Client, Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

/// The site the engine is configured for, and a look-alike under the same registrable domain
/// (the authenticator accepts it for rp id `lumire.test`; the engine must not).
const ORIGIN: &str = "https://crm.lumire.test";
const PHISHING_ORIGIN: &str = "https://crm-login.lumire.test";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| {
        s.webauthn_rp_id = "lumire.test".into();
        s.webauthn_origin = ORIGIN.into();
    })
    .await
}

fn authenticator() -> SoftPasskey {
    // `true`: report user verification, which passkeys require.
    SoftPasskey::new(true)
}

fn url(origin: &str) -> Url {
    Url::parse(origin).unwrap()
}

async fn start_registration(c: &Client, label: &str) -> Value {
    let (s, opts) = c
        .post("/v1/auth/passkeys/register/start", json!({"label": label}))
        .await;
    assert_eq!(s, StatusCode::OK, "{opts}");
    opts
}

fn create_credential(key: &mut SoftPasskey, origin: &str, opts: &Value) -> Value {
    let ccr: CreationChallengeResponse = serde_json::from_value(opts.clone()).unwrap();
    serde_json::to_value(key.do_registration(url(origin), ccr).unwrap()).unwrap()
}

/// Enrols a passkey on the member's account and returns its view.
async fn enrol(c: &Client, key: &mut SoftPasskey, label: &str) -> Value {
    let opts = start_registration(c, label).await;
    let response = create_credential(key, ORIGIN, &opts);
    let (s, view) = c
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"label": label, "response": response, "challengeId": opts["challengeId"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{view}");
    view
}

async fn start_login(c: &Client, m: &Member) -> Value {
    let (s, opts) = c
        .post(
            "/v1/auth/passkeys/authenticate/start",
            json!({"email": m.email, "tenantSlug": m.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{opts}");
    opts
}

fn assert_with(key: &mut SoftPasskey, origin: &str, opts: &Value) -> Value {
    let rcr: RequestChallengeResponse = serde_json::from_value(opts.clone()).unwrap();
    serde_json::to_value(key.do_authentication(url(origin), rcr).unwrap()).unwrap()
}

async fn finish_login(c: &Client, opts: &Value, assertion: &Value) -> (StatusCode, Value) {
    c.post(
        "/v1/auth/passkeys/authenticate/finish",
        json!({"response": assertion, "challengeId": opts["challengeId"]}),
    )
    .await
}

async fn passkey_count(app: &TestApp, tenant_id: &str) -> i64 {
    app.count(
        "SELECT COUNT(*) FROM passkeys WHERE tenant_id = $1",
        tenant_id,
    )
    .await
}

#[tokio::test]
async fn register_then_log_in_with_the_passkey_and_use_the_session() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();

    let opts = start_registration(&owner, "Laptop").await;
    assert_eq!(opts["publicKey"]["rp"]["id"], "lumire.test");
    assert_eq!(opts["publicKey"]["rp"]["name"], "Test Broker");
    assert_eq!(opts["publicKey"]["user"]["name"], owner.email.as_str());
    assert_eq!(
        opts["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(opts["challengeId"].as_str().unwrap().contains('.'));
    let response = create_credential(&mut key, ORIGIN, &opts);
    let (s, view) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"label": "Laptop", "response": response, "challengeId": opts["challengeId"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{view}");
    assert_eq!(view["label"], "Laptop");
    assert_eq!(view["lastUsedAt"], Value::Null);
    let passkey_id = view["id"].as_str().unwrap().to_string();
    // The view never carries the credential.
    assert_eq!(
        view.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["createdAt", "id", "label", "lastUsedAt"]
    );

    let (s, list) = owner.get("/v1/auth/passkeys").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], passkey_id.as_str());
    assert_eq!(list["next_cursor"], Value::Null);

    // A fresh browser logs in with the passkey alone.
    let browser = app.client();
    let opts = start_login(&browser, &owner).await;
    assert_eq!(opts["publicKey"]["userVerification"], "required");
    assert_eq!(
        opts["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    let resp = browser
        .raw(
            reqwest::Method::POST,
            "/v1/auth/passkeys/authenticate/finish",
            Some(json!({"response": assertion, "challengeId": opts["challengeId"]})),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("lumirecrm_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], owner.user_id.as_str());
    assert_eq!(body["tenant"]["slug"], owner.slug.as_str());
    assert!(body["session"]["id"].is_string() && body["session"]["expiresAt"].is_string());

    let (s, me) = browser.get("/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], owner.user_id.as_str());
    assert_eq!(me["session"]["id"], body["session"]["id"]);

    // The same answer cannot be played again.
    let (s, b) = finish_login(&app.client(), &opts, &assertion).await;
    assert_field_error(s, &b, "challengeId");

    // A second login works too (the counter moves on).
    let opts = start_login(&browser, &owner).await;
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    assert_eq!(
        finish_login(&browser, &opts, &assertion).await.0,
        StatusCode::OK
    );

    let (_, list) = owner.get("/v1/auth/passkeys").await;
    assert!(list["data"][0]["lastUsedAt"].is_string(), "{list}");

    // Audited as a login by passkey; the enrolment is an event and an audit entry.
    let (_, audit) = owner.get("/v1/audit?action=auth.login").await;
    let by_passkey = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["after"]["method"] == "passkey" && e["after"]["passkeyId"] == passkey_id.as_str()
        })
        .count();
    assert_eq!(by_passkey, 2, "{audit}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'passkey.created'",
            &owner.tenant_id
        )
        .await,
        1
    );
    let (_, audit) = owner
        .get(&format!(
            "/v1/audit?resourceId={passkey_id}&action=passkey.create"
        ))
        .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    // Challenges are single use: none is left behind by finished ceremonies.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webauthn_challenges WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn finish_without_challenge_id_uses_the_pending_registration() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();
    let opts = start_registration(&owner, "From start").await;
    let response = create_credential(&mut key, ORIGIN, &opts);
    // The reference's body: only label and response. The label given here wins.
    let (s, view) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"label": "Phone", "response": response}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{view}");
    assert_eq!(view["label"], "Phone");

    // Without a label the one given at start is kept.
    let opts = start_registration(&owner, "Security key").await;
    let response = create_credential(&mut key, ORIGIN, &opts);
    let (s, view) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": response}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{view}");
    assert_eq!(view["label"], "Security key");

    // Nothing pending any more.
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": response}),
        )
        .await;
    assert_field_error(s, &b, "challengeId");
    let (_, list) = owner.get("/v1/auth/passkeys").await;
    assert_eq!(
        list["data"][0]["label"], "Security key",
        "newest first: {list}"
    );
}

#[tokio::test]
async fn managing_passkeys_needs_a_signed_in_user() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let anon = owner.anonymous();
    for (method, path) in [
        (reqwest::Method::POST, "/v1/auth/passkeys/register/start"),
        (reqwest::Method::POST, "/v1/auth/passkeys/register/finish"),
        (reqwest::Method::GET, "/v1/auth/passkeys"),
        (
            reqwest::Method::DELETE,
            "/v1/auth/passkeys/01HZZZZZZZZZZZZZZZZZZZZZZZ",
        ),
    ] {
        let body = (method == reqwest::Method::POST).then(|| json!({"label": "x"}));
        let (s, b) = anon.send(method, path, body).await;
        assert_problem(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    }

    // An API key, even an owner's with every scope, cannot manage passkeys.
    let (key_id, secret) = (ulid::Ulid::new().to_string(), "s3cret-key-material");
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, scopes, roles, created_by, created_at)
         VALUES ($1, $2, 'ci', 'lk_', $3, '[\"*\"]', '[\"owner\"]', $4, '2026-01-01T00:00:00.000Z')",
    )
    .bind(&owner.tenant_id)
    .bind(&key_id)
    .bind(lumire_engine::util::sha256_hex(secret))
    .bind(&owner.user_id)
    .execute(app.db.pool())
    .await
    .unwrap();
    let bot = owner.with_bearer(&format!("lk_{}.{key_id}.{secret}", owner.tenant_id));
    let (s, b) = bot.get("/v1/auth/passkeys").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = bot
        .post("/v1/auth/passkeys/register/start", json!({"label": "x"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // An owner impersonating a member must not plant a passkey on the member's account.
    let member = app.member(&owner, &["dealer"]).await;
    let mut key = authenticator();
    let mine = enrol(&member, &mut key, "Member laptop").await;
    let secret = "impersonation-session-secret";
    sqlx::query(
        "INSERT INTO sessions (tenant_id, id, subject_type, subject_id, token_hash, impersonator_id, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, 'user', $3, $4, $5, '2026-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z')",
    )
    .bind(&owner.tenant_id)
    .bind(ulid::Ulid::new().to_string())
    .bind(&member.user_id)
    .bind(lumire_engine::util::sha256_hex(secret))
    .bind(&owner.user_id)
    .execute(app.db.pool())
    .await
    .unwrap();
    let cookie = format!("lumirecrm_session={}.{secret}", owner.tenant_id);
    let as_member = |method, path: &str, body| {
        let c = owner.anonymous();
        let path = path.to_string();
        let cookie = cookie.clone();
        async move {
            let r = c
                .raw(method, &path, body, &[("cookie", cookie.as_str())])
                .await;
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, b) = as_member(reqwest::Method::GET, "/v1/auth/passkeys", None).await;
    assert_eq!(s, StatusCode::OK, "listing is harmless: {b}");
    let (s, b) = as_member(
        reqwest::Method::POST,
        "/v1/auth/passkeys/register/start",
        Some(json!({"label": "planted"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = as_member(
        reqwest::Method::DELETE,
        &format!("/v1/auth/passkeys/{}", mine["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 1);
}

#[tokio::test]
async fn replayed_and_expired_challenges_are_refused() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();

    // Expired registration: refused, naming the field, and nothing stored.
    let opts = start_registration(&owner, "Late").await;
    let response = create_credential(&mut key, ORIGIN, &opts);
    sqlx::query("UPDATE webauthn_challenges SET expires_at = '2020-01-01T00:00:00.000Z' WHERE tenant_id = $1")
        .bind(&owner.tenant_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let body = json!({"label": "Late", "response": response, "challengeId": opts["challengeId"]});
    let (s, b) = owner
        .post("/v1/auth/passkeys/register/finish", body.clone())
        .await;
    assert_field_error(s, &b, "challengeId");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{b}"
    );
    // The expired challenge is gone for good.
    let (s, b) = owner.post("/v1/auth/passkeys/register/finish", body).await;
    assert_field_error(s, &b, "challengeId");
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 0);

    // A registration answer cannot be replayed against a newer challenge either.
    let opts = start_registration(&owner, "Replay").await;
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": response, "challengeId": opts["challengeId"]}),
        )
        .await;
    assert_field_error(s, &b, "response");
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 0);

    // Registration answered twice: the second is refused.
    let opts = start_registration(&owner, "Twice").await;
    let response = create_credential(&mut key, ORIGIN, &opts);
    let body = json!({"response": response, "challengeId": opts["challengeId"]});
    assert_eq!(
        owner
            .post("/v1/auth/passkeys/register/finish", body.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    let (s, b) = owner.post("/v1/auth/passkeys/register/finish", body).await;
    assert_field_error(s, &b, "challengeId");
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 1);

    // Expired login challenge: refused, no session.
    let browser = app.client();
    let opts = start_login(&browser, &owner).await;
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    sqlx::query("UPDATE webauthn_challenges SET expires_at = '2020-01-01T00:00:00.000Z' WHERE tenant_id = $1")
        .bind(&owner.tenant_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let (s, b) = finish_login(&browser, &opts, &assertion).await;
    assert_field_error(s, &b, "challengeId");
    assert_eq!(browser.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);

    // A login assertion replayed against a fresh challenge is refused.
    let fresh = start_login(&browser, &owner).await;
    let (s, b) = finish_login(&browser, &fresh, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(browser.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_users_and_tenants_passkeys_are_not_found() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();
    let mine = enrol(&owner, &mut key, "Owner key").await;
    let id = mine["id"].as_str().unwrap();

    let stranger = app.register_owner().await;
    let colleague = app.member(&owner, &["admin"]).await;
    for other in [&stranger, &colleague] {
        let (s, b) = other.delete(&format!("/v1/auth/passkeys/{id}")).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
        let (_, list) = other.get("/v1/auth/passkeys").await;
        assert_eq!(list["data"], json!([]), "{list}");
    }
    let (s, _) = owner.delete("/v1/auth/passkeys/not-an-id").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 1);

    // Another user cannot finish this user's registration.
    let opts = start_registration(&owner, "Owner second").await;
    let response = create_credential(&mut key, ORIGIN, &opts);
    for other in [&stranger, &colleague] {
        let (s, b) = other
            .post(
                "/v1/auth/passkeys/register/finish",
                json!({"response": response, "challengeId": opts["challengeId"]}),
            )
            .await;
        assert_field_error(s, &b, "challengeId");
    }
    // ...and the owner still can: the others' attempts did not spend it.
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": response, "challengeId": opts["challengeId"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // The owner deletes their own; a login with it is then refused.
    let browser = app.client();
    let opts = start_login(&browser, &owner).await;
    let (s, _) = owner.delete(&format!("/v1/auth/passkeys/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = owner.delete(&format!("/v1/auth/passkeys/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'passkey.deleted'",
            &owner.tenant_id
        )
        .await,
        1
    );
    // The options were issued before the deletion and still list it first (oldest first);
    // the soft authenticator signs with the first listed credential it holds.
    let allowed = opts["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(allowed.len(), 2);
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    assert_eq!(assertion["rawId"], allowed[0]["id"]);
    let (s, b) = finish_login(&browser, &opts, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(browser.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_origin_is_refused() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();

    // A credential created on a look-alike site is not enrolled.
    let opts = start_registration(&owner, "Phished").await;
    let response = create_credential(&mut key, PHISHING_ORIGIN, &opts);
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": response, "challengeId": opts["challengeId"]}),
        )
        .await;
    assert_field_error(s, &b, "response");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("origin"),
        "{b}"
    );
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 0);

    // An assertion made for a look-alike site does not log in.
    enrol(&owner, &mut key, "Real").await;
    let browser = app.client();
    let opts = start_login(&browser, &owner).await;
    let assertion = assert_with(&mut key, PHISHING_ORIGIN, &opts);
    let (s, b) = finish_login(&browser, &opts, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(browser.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    let (_, list) = owner.get("/v1/auth/passkeys").await;
    assert_eq!(list["data"][0]["lastUsedAt"], Value::Null);
}

/// The shape of a JSON value: object keys and array element shapes, not the values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!(0),
        other => other.clone(),
    }
}

#[tokio::test]
async fn unknown_accounts_look_like_accounts_without_passkeys() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();
    enrol(&owner, &mut key, "Owner key").await;
    let without = app.member(&owner, &["sales"]).await;
    let c = app.client();

    let start = |email: String, slug: String| {
        let c = c.clone();
        async move {
            c.post(
                "/v1/auth/passkeys/authenticate/start",
                json!({"email": email, "tenantSlug": slug}),
            )
            .await
        }
    };
    let (s1, real) = start(owner.email.clone(), owner.slug.clone()).await;
    let (s2, no_keys) = start(without.email.clone(), owner.slug.clone()).await;
    let (s3, unknown) = start("nobody@nowhere.example".into(), owner.slug.clone()).await;
    let (s4, unknown_again) = start("NOBODY@nowhere.example".into(), owner.slug.clone()).await;
    let (s5, no_tenant) = start("nobody@nowhere.example".into(), "no-such-tenant".into()).await;
    for s in [s1, s2, s3, s4, s5] {
        assert_eq!(s, StatusCode::OK);
    }
    for decoy in [&no_keys, &unknown, &no_tenant] {
        assert_eq!(shape(decoy), shape(&real), "{decoy} vs {real}");
        assert_eq!(decoy["publicKey"]["rpId"], real["publicKey"]["rpId"]);
        assert_eq!(decoy["publicKey"]["timeout"], real["publicKey"]["timeout"]);
    }
    // Asking twice gives the same credential ids (as for a real account), with a new challenge.
    assert_eq!(
        unknown["publicKey"]["allowCredentials"],
        unknown_again["publicKey"]["allowCredentials"]
    );
    assert_ne!(
        unknown["publicKey"]["challenge"],
        unknown_again["publicKey"]["challenge"]
    );
    assert_ne!(
        unknown["publicKey"]["allowCredentials"],
        no_keys["publicKey"]["allowCredentials"]
    );

    // Finishing a decoy fails exactly like a real challenge answered wrongly.
    let assertion = assert_with(&mut key, ORIGIN, &real);
    let (s, b) = finish_login(&c, &unknown, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (s, b) = finish_login(&c, &no_keys, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let other_real = start(owner.email.clone(), owner.slug.clone()).await.1;
    let (s, b) = finish_login(&c, &other_real, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    // The real one still works with its own challenge.
    assert_eq!(finish_login(&c, &real, &assertion).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_counter_that_goes_back_is_refused_as_a_clone() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let mut key = authenticator();
    let view = enrol(&owner, &mut key, "Key").await;
    let browser = app.client();
    let opts = start_login(&browser, &owner).await;
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    assert_eq!(
        finish_login(&browser, &opts, &assertion).await.0,
        StatusCode::OK
    );

    // Another device with a copy of the key has signed more often than this one.
    sqlx::query("UPDATE passkeys SET sign_count = 1000 WHERE tenant_id = $1")
        .bind(&owner.tenant_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let other = app.client();
    let opts = start_login(&other, &owner).await;
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    let (s, b) = finish_login(&other, &opts, &assertion).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "passkey_clone_suspected");
    assert_eq!(other.get("/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    let (_, audit) = owner
        .get(&format!(
            "/v1/audit?action=passkey.clone_suspected&resourceId={}",
            view["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["data"][0]["after"]["storedCounter"], 1000);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'passkey.clone_suspected'",
            &owner.tenant_id
        )
        .await,
        1
    );
    // The stored counter was not lowered.
    assert_eq!(
        app.count(
            "SELECT MAX(sign_count) FROM passkeys WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1000
    );
}

#[tokio::test]
async fn bodies_are_validated_and_name_the_field() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post("/v1/auth/passkeys/register/start", json!({}))
        .await;
    assert_field_error(s, &b, "label");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/start",
            json!({"label": "x".repeat(101)}),
        )
        .await;
    assert_field_error(s, &b, "label");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/start",
            json!({"label": "x", "lable": "y"}),
        )
        .await;
    assert_field_error(s, &b, "lable");
    let (s, b) = owner
        .post("/v1/auth/passkeys/register/finish", json!({"label": "x"}))
        .await;
    assert_field_error(s, &b, "response");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": {"id": "abc"}}),
        )
        .await;
    assert_field_error(s, &b, "response");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/authenticate/start",
            json!({"email": "not-an-email"}),
        )
        .await;
    assert_field_error(s, &b, "email");
    assert_field_error(s, &b, "tenantSlug");
    let (s, b) = owner
        .post("/v1/auth/passkeys/authenticate/finish", json!({}))
        .await;
    assert_field_error(s, &b, "response");
    assert_field_error(s, &b, "challengeId");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/authenticate/finish",
            json!({"response": {}, "challengeId": "junk"}),
        )
        .await;
    assert_field_error(s, &b, "response");
    let mut key = authenticator();
    enrol(&owner, &mut key, "Key").await;
    let opts = start_login(&app.client(), &owner).await;
    let assertion = assert_with(&mut key, ORIGIN, &opts);
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/authenticate/finish",
            json!({"response": assertion, "challengeId": "junk"}),
        )
        .await;
    assert_field_error(s, &b, "challengeId");

    // Enough passkeys already: a new registration is refused before anything is stored, and
    // one started before the limit was reached cannot finish past it.
    let early = start_registration(&owner, "early").await;
    let early_response = create_credential(&mut key, ORIGIN, &early);
    for n in 0..20 {
        sqlx::query(
            "INSERT INTO passkeys (tenant_id, id, user_id, label, credential_id, credential, created_at)
             VALUES ($1, $2, $3, 'filler', $4, '{}', '2026-01-01T00:00:00.000Z')",
        )
        .bind(&owner.tenant_id)
        .bind(ulid::Ulid::new().to_string())
        .bind(&owner.user_id)
        .bind(format!("filler-{n}"))
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/start",
            json!({"label": "one more"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "passkey_limit_reached");
    let (s, b) = owner
        .post(
            "/v1/auth/passkeys/register/finish",
            json!({"response": early_response, "challengeId": early["challengeId"]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "passkey_limit_reached");
    assert_eq!(passkey_count(&app, &owner.tenant_id).await, 21);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webauthn_challenges WHERE tenant_id = $1 AND kind = 'register'",
            &owner.tenant_id
        )
        .await,
        0
    );
}
