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
