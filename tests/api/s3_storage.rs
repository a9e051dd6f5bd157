//! Object storage on an S3-compatible service: a moto server (`pip install "moto[server]"`, which
//! `scripts/test` does) stands in for S3, MinIO or R2.

use std::process::{Child, Command, Stdio};

use lumire_tests::TestApp;
use reqwest::StatusCode;
use serde_json::json;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut moto = Moto {
        child: Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (pip install \"moto[server]\"; scripts/test installs it)"),
        url: format!("http://127.0.0.1:{port}"),
    };
    let url = moto.url.clone();
    let http = reqwest::Client::new();
    // Bounded wait for the server to accept connections.
    for _ in 0..200 {
        if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
            return moto;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = moto.child.kill();
    panic!("moto_server did not start");
}

#[tokio::test]
async fn logos_are_stored_in_the_configured_bucket() {
    let s3 = moto().await;
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/lumire-test", s3.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let endpoint = s3.url.clone();
    let app = TestApp::spawn_with(move |s| {
        s.s3_bucket = Some("lumire-test".into());
        s.s3_endpoint = Some(endpoint);
        s.s3_access_key_id = Some("test".into());
        s.s3_secret_access_key = Some("test".into());
    })
    .await;
    let owner = app.register_owner().await;
    let (s, b) = owner
        .post(
            "/v1/tenants/current/logo-upload",
            json!({"contentType": "image/png", "fileSize": PNG.len()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let url = b["uploadUrl"].as_str().unwrap();
    let path = &url[url.find("/v1/uploads/").unwrap()..];
    let r = http
        .put(format!("{}{path}", app.base))
        .header("content-type", "image/png")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "upload: {}", r.status());
    let (s, b) = owner
        .post(
            "/v1/tenants/current/logo-confirm",
            json!({"uploadId": b["uploadId"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let served = owner
        .raw(reqwest::Method::GET, "/v1/tenants/current/logo", None, &[])
        .await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    // The bytes live in the bucket, under the tenant's prefix.
    let listing = http
        .get(format!("{}/lumire-test?list-type=2", s3.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("<Key>{}/", owner.tenant_id)),
        "{listing}"
    );
}
