//! Text input is clean and responses carry an API's security headers: control characters in a
//! body, query or path are a 400 naming the field with nothing written, on both databases;
//! text after a JSON body is a 400; every response says `nosniff`, API responses `no-store`.

use lumire_tests::{TestApp, assert_field_error};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn control_characters_are_refused_wherever_they_come_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let tenant = owner.tenant_id.clone();
    let before = app
        .count("SELECT COUNT(*) FROM traders WHERE tenant_id = $1", &tenant)
        .await;

    // In a body: the field is named.
    let (s, b) = owner
        .post(
            "/v1/traders",
            json!({"email": "nul\u{0}@client.example", "firstName": "Ada"}),
        )
        .await;
    assert_field_error(s, &b, "email");
    let (s, b) = owner
        .post(
            "/v1/traders",
            json!({"email": "ok@client.example", "firstName": "A\u{1b}[31m"}),
        )
        .await;
    assert_field_error(s, &b, "firstName");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM traders WHERE tenant_id = $1", &tenant)
            .await,
        before,
        "nothing written"
    );

    // In a query, and in a path.
    let (s, b) = owner.get("/v1/traders?q=a%00b").await;
    assert_field_error(s, &b, "query.q");
    let (s, b) = owner.get("/v1/traders/01J%00X").await;
    assert_field_error(s, &b, "path");
}

#[tokio::test]
async fn text_after_the_json_body_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let resp = owner
        .raw_request(reqwest::Method::POST, "/v1/traders")
        .header("content-type", "application/json")
        .body(r#"{"email": "trailing@client.example"} xx"#)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_field_error(status, &body, "body");
    let (_, list) = owner.get("/v1/traders?q=trailing").await;
    assert_eq!(list["data"], json!([]), "{list}");
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let resp = owner
        .raw(reqwest::Method::GET, "/v1/traders", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // Errors too, and routes outside the API get nosniff.
    let resp = app
        .anonymous()
        .raw(reqwest::Method::GET, "/v1/traders", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let resp = app
        .anonymous()
        .raw(reqwest::Method::GET, "/health", None, &[])
        .await;
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn public_operations_have_abuse_limits_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.rate_register_per_hour = 4;
        s.rate_forgot_per_hour = 6;
        s.rate_public_per_minute = 60;
    })
    .await;
    let c = app.anonymous();
    let register = |k: usize| {
        json!({"email": format!("o{k}@broker.example"), "password": lumire_tests::PASSWORD,
               "displayName": "O", "tenantSlug": format!("limited-{k}"), "tenantName": "L"})
    };
    // A burst of a quarter of the hourly allowance, then 429 with Retry-After.
    let (s, b) = c.post("/v1/auth/register", register(0)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let resp = c
        .raw(
            reqwest::Method::POST,
            "/v1/auth/register",
            Some(register(1)),
            &[],
        )
        .await;
    let retry = lumire_tests::retry_after(&resp);
    assert!(retry >= 1, "{retry}");

    // Forgot-password: limited per account even though it answers alike for every e-mail.
    let forgot = json!({"email": "o0@broker.example", "tenantSlug": "limited-0"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.post("/v1/auth/password/forgot", forgot.clone()).await.0);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // Every public operation from one address: past the burst, 429.
    let mut limited = false;
    for _ in 0..40 {
        let (s, _) = c
            .post(
                "/v1/auth/login",
                json!({"email": "x@y.example", "password": "whatever it is", "tenantSlug": "nope"}),
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the public limit applies");
}

#[tokio::test]
async fn dates_have_sane_ranges() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    for (k, dob) in [
        "0000-01-01",
        "9999-12-31",
        "1899-12-31",
        "1990-1-1",
        "2999-01-01",
    ]
    .iter()
    .enumerate()
    {
        let (s, b) = owner
            .post(
                "/v1/traders",
                json!({"email": format!("dob{k}@client.example"), "dateOfBirth": dob}),
            )
            .await;
        assert_field_error(s, &b, "dateOfBirth");
    }
    let (s, t) = owner
        .post(
            "/v1/traders",
            json!({"email": "dob-ok@client.example", "dateOfBirth": "1900-01-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap();
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{id}"),
            json!({"dateOfBirth": "9999-12-31"}),
        )
        .await;
    assert_field_error(s, &b, "dateOfBirth");

    // Statements exist from the tenant's first month to the current one.
    for month in ["0000-01", "1999-12", "2999-01"] {
        let (s, b) = owner
            .get(&format!(
                "/v1/payments/traders/{id}/statement.pdf?month={month}"
            ))
            .await;
        assert_field_error(s, &b, "month");
    }
    let current = chrono::Utc::now().format("%Y-%m").to_string();
    let resp = owner
        .raw(
            reqwest::Method::GET,
            &format!("/v1/payments/traders/{id}/statement.pdf?month={current}"),
            None,
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}
