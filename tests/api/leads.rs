//! The leads-intake plugin, black-box: partner credentials and partner scoping on the partner
//! Leads API, lead documents (multipart uploads into the object storage), and the `sales` tag
//! (leads, pipelines, activities, convert).

use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::plugins::{enable, lead_body, spawn_plugins_with};

async fn spawn() -> TestApp {
    spawn_plugins_with(|_| {}).await
}

/// A new tenant that enabled leads-intake, and its owner.
async fn tenant(app: &TestApp) -> Member {
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;
    owner
}

/// A partner calling with HTTP Basic credentials.
struct Partner {
    id: String,
    base: String,
    username: String,
    password: String,
    http: reqwest::Client,
}

impl Partner {
    fn with_password(&self, password: &str) -> Partner {
        Partner {
            id: self.id.clone(),
            base: self.base.clone(),
            username: self.username.clone(),
            password: password.into(),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    async fn upload(&self, path: &str, (ct, body): (String, Vec<u8>)) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path)
                .header("content-type", ct)
                .body(body),
        )
        .await
    }
}

async fn issue(owner: &Member, name: &str) -> Partner {
    let (s, b) = owner
        .post("/v1/partner-credentials", json!({"name": name}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    Partner {
        id: b["id"].as_str().expect("id").into(),
        base: owner.client.base.clone(),
        username: b["username"].as_str().expect("username").into(),
        password: b["password"].as_str().expect("password").into(),
        http: reqwest::Client::new(),
    }
}

const BOUNDARY: &str = "----WebKitFormBoundary8M3sSU13ul5lXSJm";

/// A multipart/form-data body of `(name, filename, extra headers, content)` parts.
fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, filename, headers, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        body.extend_from_slice(headers.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

fn document(filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    multipart(&[(
        "document",
        Some(filename),
        "Content-Type: image/jpeg\r\n",
        content,
    )])
}

async fn upload(member: &Member, path: &str, (ct, body): (String, Vec<u8>)) -> (StatusCode, Value) {
    let resp = member
        .raw_request(Method::POST, path)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create_lead(member: &Member, first: &str) -> String {
    let (s, b) = member.post("/v1/leads", lead_body(first)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b[0]["id"].as_str().expect("id").to_string()
}

async fn events(app: &TestApp, tenant: &str, name: &str) -> i64 {
    app.count(
        &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}'"),
        tenant,
    )
    .await
}

/// The stored file behind a lead's document, read through the engine's object storage.
async fn stored_file(app: &TestApp, tenant: &str, lead_id: &str, file_id: &str) -> Vec<u8> {
    let body: String = sqlx::query_scalar(
        "SELECT body FROM plugin_documents WHERE tenant_id = $1 AND plugin = 'leads-intake' AND collection = 'leads' AND id = $2",
    )
    .bind(tenant)
    .bind(lead_id)
    .fetch_one(app.db.pool())
    .await
    .expect("lead document");
    let lead: Value = serde_json::from_str(&body).expect("json");
    let doc = lead["documents"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == file_id))
        .unwrap_or_else(|| panic!("{file_id} on the lead: {lead}"));
    let key = doc["key"].as_str().expect("key");
    app.state
        .store
        .get(&format!("{tenant}/plugins/leads-intake/{key}"))
        .await
        .expect("stored object")
}

#[tokio::test]
async fn partner_credentials_are_issued_listed_and_revoked() {
    let app = spawn().await;
    let owner = tenant(&app).await;

    let (s, b) = owner.post("/v1/partner-credentials", json!({})).await;
    assert_field_error(s, &b, "name");
    let support = app.member(&owner, &["support"]).await;
    let (s, b) = support
        .post("/v1/partner-credentials", json!({"name": "Nope"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = app
        .anonymous()
        .post("/v1/partner-credentials", json!({"name": "Nope"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let acme = issue(&owner, "Acme Leads").await;
    let (s, list) = owner.get("/v1/partner-credentials").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed = &list["data"][0];
    assert_eq!(listed["id"], acme.id.as_str());
    assert_eq!(listed["name"], "Acme Leads");
    assert_eq!(listed["username"], acme.username.as_str());
    assert!(listed.get("password").is_none(), "{list}");
    assert!(!list.to_string().contains(&acme.password));

    // The partner uses the partner API.
    let (s, b) = acme.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["count"], 0);
    let (s, b) = acme.post("/v1/leads", lead_body("Pat")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, b) = acme.get("/v1/leads").await;
    assert_eq!(b["result"]["count"], 1);
    assert_eq!(b["result"]["leads"][0]["partner_id"], acme.id.as_str());

    // Only the partner routes: the sales tag and the engine's own routes are refused.
    let (s, b) = acme.get("/v1/sales/leads").await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = acme
        .post("/v1/sales/leads", json!({"email": "p@example.com"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    // The engine's own routes know the partner but refuse it (see
    // `a_partner_calling_a_core_route_is_forbidden`).
    let (s, b) = acme.get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");

    // A wrong password, an unknown user, no credentials at all: 401.
    let (s, _) = acme.with_password("wrong").get("/v1/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut stranger = acme.with_password(&acme.password);
    stranger.username = format!("{}.prt01unknown", owner.tenant_id);
    let (s, _) = stranger.get("/v1/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.anonymous().get("/v1/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Another tenant cannot revoke it.
    let other = tenant(&app).await;
    let (s, _) = other
        .post(
            &format!("/v1/partner-credentials/{}/revoke", acme.id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = acme.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK);

    let (s, b) = owner
        .post(
            &format!("/v1/partner-credentials/{}/revoke", acme.id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["revokedAt"].is_string(), "{b}");
    let (s, _) = acme.get("/v1/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = acme.post("/v1/leads", lead_body("Late")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = owner
        .post(
            &format!("/v1/partner-credentials/{}/revoke", acme.id),
            json!({}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "already_revoked");
}

#[tokio::test]
async fn a_partner_calling_a_core_route_is_forbidden() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let acme = issue(&owner, "Acme Leads").await;
    owner
        .post("/v1/traders", json!({"email": "t@example.com"}))
        .await;

    // Authenticated (the credential is valid), but partners only call the partner API: 403
    // problem+json, and nothing of the tenant is shown or changed.
    for path in [
        "/v1/traders",
        "/v1/partner-credentials",
        "/v1/tenants/current",
        "/v1/public/me",
    ] {
        let resp = acme
            .request(Method::GET, path)
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("application/problem+json"), "{path}: {ct}");
        let b: Value = resp.json().await.expect("problem body");
        assert_problem(
            StatusCode::FORBIDDEN,
            &b,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_eq!(b["status"], 403);
        assert!(b["request_id"].is_string(), "{b}");
        assert!(!b.to_string().contains("t@example.com"), "{b}");
    }
    let (s, b) = acme
        .post("/v1/traders", json!({"email": "sneaky@example.com"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (_, list) = owner.get("/v1/traders").await;
    assert!(!list.to_string().contains("sneaky@example.com"), "{list}");

    // Wrong or revoked credentials stay 401 there, as does no credential at all.
    let (s, b) = acme.with_password("wrong").get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (s, b) = app.anonymous().get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, _) = owner
        .post(
            &format!("/v1/partner-credentials/{}/revoke", acme.id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = acme.get("/v1/traders").await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_partner_sees_only_its_own_leads_and_the_team_sees_all() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let one = issue(&owner, "One").await;
    let two = issue(&owner, "Two").await;

    let (_, b) = one.post("/v1/leads", lead_body("Uno")).await;
    let one_lead = b[0]["id"].as_str().unwrap().to_string();
    let (_, b) = two.post("/v1/leads", lead_body("Dos")).await;
    let two_lead = b[0]["id"].as_str().unwrap().to_string();
    let team_lead = create_lead(&owner, "Team").await;

    let (_, b) = one.get("/v1/leads").await;
    assert_eq!(b["result"]["count"], 1);
    assert_eq!(b["result"]["leads"][0]["id"], one_lead.as_str());
    assert!(!b.to_string().contains("Dos"));
    let (_, b) = one.get("/v1/leads?status=WAITING_FOR_CALL").await;
    assert_eq!(b["result"]["count"], 1);

    // Another partner's lead (or the team's) is not there by id either.
    for id in [&two_lead, &team_lead] {
        let (s, b) = one.get(&format!("/v1/leads?id={id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["result"]["count"], 0, "{b}");
    }
    let (_, b) = one.get(&format!("/v1/leads?id={one_lead}")).await;
    assert_eq!(b["result"]["count"], 1);

    // ... nor can it attach documents to it.
    let (s, b) = one
        .upload(
            &format!("/v1/leads/{two_lead}/documents"),
            document("a.jpg", b"x"),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = one
        .upload(
            &format!("/lead/{team_lead}/documents"),
            document("a.jpg", b"x"),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");

    // The team sees every lead of the tenant.
    let (_, b) = owner.get("/v1/leads").await;
    assert_eq!(b["result"]["count"], 3);
    let sales = app.member(&owner, &["sales"]).await;
    let (_, b) = sales.get(&format!("/v1/leads?id={two_lead}")).await;
    assert_eq!(b["result"]["leads"][0]["partner_id"], two.id.as_str());

    // A partner of another tenant sees nothing of this one.
    let other = tenant(&app).await;
    let outsider = issue(&other, "Outsider").await;
    let (_, b) = outsider.get("/v1/leads").await;
    assert_eq!(b["result"]["count"], 0);
    let (_, b) = outsider.get(&format!("/v1/leads?id={one_lead}")).await;
    assert_eq!(b["result"]["count"], 0);
    let (s, _) = outsider
        .upload(
            &format!("/v1/leads/{one_lead}/documents"),
            document("a.jpg", b"x"),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A tenant that has not enabled the plugin: its partners get 404.
    let off = app.register_owner().await;
    let off_partner = issue(&off, "Off").await;
    let (s, b) = off_partner.get("/v1/leads").await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn documents_are_stored_in_the_object_storage() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let partner = issue(&owner, "Docs").await;
    let (_, b) = partner.post("/v1/leads", lead_body("Doc")).await;
    let lead = b[0]["id"].as_str().unwrap().to_string();

    // The partner's path, as the Leads API documents it.
    let jpeg: Vec<u8> = (0..=255u8).cycle().take(250).collect();
    let (s, b) = partner
        .upload(
            &format!("/lead/{lead}/documents"),
            document("image.jpg", &jpeg),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let file_id = b["file"]["id"].as_str().expect("file id").to_string();
    assert_eq!(
        b,
        json!({"success": true, "file": {"id": file_id, "filename": "image.jpg", "size": 250}})
    );
    assert_eq!(
        stored_file(&app, &owner.tenant_id, &lead, &file_id).await,
        jpeg
    );

    // The /v1 path, by a team member, with a base64 part and a path in the file name.
    let (s, b) = upload(
        &owner,
        &format!("/v1/leads/{lead}/documents"),
        multipart(&[(
            "document",
            Some("C:\\fakepath\\licence.pdf"),
            "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n",
            b"JVBERi0xLjQK\r\naGVsbG8=",
        )]),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["file"]["filename"], "licence.pdf");
    assert_eq!(b["file"]["size"], 14);
    let pdf_id = b["file"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        stored_file(&app, &owner.tenant_id, &lead, &pdf_id).await,
        b"%PDF-1.4\nhello"
    );

    // The metadata is kept on the lead (without the storage key).
    let (_, b) = partner.get(&format!("/v1/leads?id={lead}")).await;
    let docs = b["result"]["leads"][0]["documents"]
        .as_array()
        .expect("documents")
        .clone();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["id"], file_id.as_str());
    assert_eq!(docs[0]["filename"], "image.jpg");
    assert_eq!(docs[0]["size"], 250);
    assert_eq!(docs[0]["content_type"], "image/jpeg");
    assert_eq!(docs[1]["content_type"], "application/pdf");
    assert!(docs[0].get("key").is_none(), "{b}");
    assert_eq!(
        events(&app, &owner.tenant_id, "lead.document_uploaded").await,
        2
    );

    // Bad uploads: 400 naming the field.
    let path = format!("/v1/leads/{lead}/documents");
    let (ct, body) = document("a.jpg", b"x");
    let (s, b) = partner
        .upload(&path, ("multipart/form-data".into(), body.clone()))
        .await;
    assert_field_error(s, &b, "content-type");
    let (s, b) = partner
        .send(
            partner
                .request(Method::POST, &path)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    assert_field_error(s, &b, "content-type");
    let (s, b) = partner
        .upload(&path, (ct.clone(), b"this is not multipart".to_vec()))
        .await;
    assert_field_error(s, &b, "body");
    let (s, b) = partner
        .upload(&path, multipart(&[("notes", None, "", b"hello")]))
        .await;
    assert_field_error(s, &b, "notes");
    let (s, b) = partner.upload(&path, multipart(&[])).await;
    assert_field_error(s, &b, "document");
    let (s, b) = partner.upload(&path, document("empty.jpg", b"")).await;
    assert_field_error(s, &b, "document");
    let big = vec![7u8; (10 << 20) + 1];
    let (s, b) = partner.upload(&path, document("big.bin", &big)).await;
    assert_field_error(s, &b, "document");
    let (s, b) = upload(
        &owner,
        &path,
        multipart(&[(
            "document",
            Some("x.txt"),
            "Content-Transfer-Encoding: base64\r\n",
            b"!!not base64!!",
        )]),
    )
    .await;
    assert_field_error(s, &b, "document");
    // Exactly 10 MiB is accepted.
    let max = vec![1u8; 10 << 20];
    let (s, b) = partner.upload(&path, document("max.bin", &max)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["file"]["size"], 10 << 20);

    // Unknown lead, another tenant's lead, a role that may not write.
    let (s, b) = partner
        .upload("/v1/leads/lead_01NOPE/documents", document("a.jpg", b"x"))
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let other = tenant(&app).await;
    let (s, _) = upload(&other, &path, document("a.jpg", b"x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let support = app.member(&owner, &["support"]).await;
    let (s, b) = upload(&support, &path, document("a.jpg", b"x")).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = upload(&app.register_owner().await, &path, document("a.jpg", b"x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a tenant without the plugin");
    let resp = app
        .anonymous()
        .raw_request(Method::POST, &path)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sales_leads_are_created_listed_read_and_updated() {
    let app = spawn().await;
    let owner = tenant(&app).await;

    let (s, lead) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "anna@example.com", "phone": "+49 30 1234", "firstName": "Anna",
                   "lastName": "Berg", "country": "de", "source": "webinar",
                   "assignedToId": owner.user_id, "score": 70, "metadata": {"campaign": "spring"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    let id = lead["id"].as_str().unwrap().to_string();
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["country"], "DE");
    assert_eq!(lead["score"], 70);
    assert_eq!(lead["metadata"], json!({"campaign": "spring"}));
    assert_eq!(lead["assignedToId"], owner.user_id.as_str());
    assert!(lead["pipelineStageId"].is_null());
    assert!(lead["traderId"].is_null());
    assert!(lead["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events(&app, &owner.tenant_id, "lead.created").await, 1);

    let (s, got) = owner.get(&format!("/v1/sales/leads/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, lead);

    // Validation names each field.
    let (s, b) = owner.post("/v1/sales/leads", json!({"phone": "1"})).await;
    assert_field_error(s, &b, "email");
    let (s, b) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "x", "country": "Germany", "score": 101, "metadata": [], "ammount": 1}),
        )
        .await;
    for f in ["email", "country", "score", "metadata", "ammount"] {
        assert_field_error(s, &b, f);
    }
    let (s, b) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "ok@example.com", "status": "qualified"}),
        )
        .await;
    assert_field_error(s, &b, "status");

    // Lists: newest first, filters, cursor pagination.
    for (email, source) in [("b@example.com", "ads"), ("c@example.com", "ads")] {
        let (s, _) = owner
            .post("/v1/sales/leads", json!({"email": email, "source": source}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, page1) = owner.get("/v1/sales/leads?limit=2").await;
    assert_eq!(s, StatusCode::OK, "{page1}");
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    assert_eq!(page1["data"][0]["email"], "c@example.com");
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let (_, page2) = owner
        .get(&format!("/v1/sales/leads?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_eq!(page2["data"][0]["id"], id.as_str());
    assert!(page2["next_cursor"].is_null());
    let (_, ads) = owner.get("/v1/sales/leads?source=ads").await;
    assert_eq!(ads["data"].as_array().unwrap().len(), 2);
    let (_, mine) = owner
        .get(&format!("/v1/sales/leads?assignedToId={}", owner.user_id))
        .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let (s, b) = owner.get("/v1/sales/leads?limit=0").await;
    assert_field_error(s, &b, "limit");
    let (s, b) = owner.get("/v1/sales/leads?status=won").await;
    assert_field_error(s, &b, "status");
    let (s, b) = owner.get("/v1/sales/leads?cursor=garbage").await;
    assert_field_error(s, &b, "cursor");

    // PATCH: fields and legal status moves.
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"status": "contacted", "score": 80, "phone": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "contacted");
    assert_eq!(b["score"], 80);
    assert!(b["phone"].is_null());
    assert_eq!(b["firstName"], "Anna");
    assert_eq!(events(&app, &owner.tenant_id, "lead.updated").await, 1);
    let (s, b) = owner
        .patch(&format!("/v1/sales/leads/{id}"), json!({"status": "new"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_change");
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"status": "converted"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_change");
    let (s, b) = owner
        .patch(&format!("/v1/sales/leads/{id}"), json!({"status": "lost"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"status": "qualified"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_change");
    let (s, b) = owner
        .patch(&format!("/v1/sales/leads/{id}"), json!({"status": "new"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"status": "maybe", "email": null, "pipelineStageId": "stage_nope", "scor": 1}),
        )
        .await;
    for f in ["status", "email", "pipelineStageId", "scor"] {
        assert_field_error(s, &b, f);
    }
    let (s, b) = owner
        .patch("/v1/sales/leads/lead_01NOPE", json!({"score": 1}))
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = owner.get("/v1/sales/leads/lead_01NOPE").await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Roles: support reads, finance nothing, anonymous 401.
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get(&format!("/v1/sales/leads/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = support
        .patch(&format!("/v1/sales/leads/{id}"), json!({"score": 1}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = support
        .post("/v1/sales/leads", json!({"email": "s@example.com"}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let finance = app.member(&owner, &["finance"]).await;
    let (s, b) = finance.get("/v1/sales/leads").await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let sales = app.member(&owner, &["sales"]).await;
    let (s, _) = sales
        .patch(&format!("/v1/sales/leads/{id}"), json!({"score": 5}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.anonymous().get("/v1/sales/leads").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .anonymous()
        .post("/v1/sales/leads", json!({"email": "a@example.com"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Another tenant: 404 by id, an empty list.
    let other = tenant(&app).await;
    let (s, b) = other.get(&format!("/v1/sales/leads/{id}")).await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    assert!(!b.to_string().contains("anna@example.com"));
    let (s, _) = other
        .patch(&format!("/v1/sales/leads/{id}"), json!({"score": 1}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = other.get("/v1/sales/leads").await;
    assert_eq!(b, json!({"data": [], "next_cursor": null}));

    // A tenant that has not enabled the plugin.
    let off = app.register_owner().await;
    for path in [
        "/v1/sales/leads",
        "/v1/sales/pipelines",
        "/v1/sales/activities",
    ] {
        let (s, b) = off.get(path).await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, _) = off
        .post("/v1/sales/leads", json!({"email": "a@example.com"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The deepest metadata a lead can carry: serde_json refuses a 128th level of nesting, and the
/// body and the stored lead are one level around the metadata.
const DEEPEST_METADATA: usize = 126;

/// `levels` objects nested in one another around a string.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("deep"), |inner, _| json!({ "a": inner }))
}

/// The first page of sales leads as text: a page of deeply nested leads is deeper than
/// serde_json reads by default.
async fn leads_page_text(member: &Member) -> (StatusCode, String) {
    let resp = member
        .raw_request(Method::GET, "/v1/sales/leads?limit=20")
        .send()
        .await
        .expect("sent");
    (resp.status(), resp.text().await.expect("a body"))
}

#[tokio::test]
async fn a_body_nested_as_deep_as_json_allows_is_served_and_a_deeper_one_is_refused() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    // serde_json parses at most 128 levels of nesting, in the guest and in the engine alike. A
    // lead whose metadata nests up to that is parsed, stored, served and listed within the
    // guest's stack (docs/plugins.md, "Guest memory layout"); one level more is a 400, not a
    // trapped plugin.
    let deepest = DEEPEST_METADATA;
    let (s, lead) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "deep@example.com", "metadata": nested(deepest)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    assert_eq!(lead["metadata"], nested(deepest));
    let id = lead["id"].as_str().unwrap();
    let (s, got) = owner.get(&format!("/v1/sales/leads/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, lead);
    let (s, page) = leads_page_text(&owner).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.starts_with(r#"{"data":[{"#), "{page}");
    assert!(page.contains(&nested(deepest).to_string()), "{page}");

    let (s, b) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "deeper@example.com", "metadata": nested(deepest + 1)}),
        )
        .await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        b["detail"].as_str().unwrap().contains("recursion limit"),
        "{b}"
    );
    let (_, page) = leads_page_text(&owner).await;
    assert!(
        !page.contains("deeper@example.com"),
        "nothing written: {page}"
    );
}

#[tokio::test]
async fn pipelines_hold_stages_and_one_default() {
    let app = spawn().await;
    let owner = tenant(&app).await;

    let (s, first) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "retail", "name": "Retail", "isDefault": true, "stages": [
                {"name": "Won", "position": 3, "probability": 100},
                {"name": "Fresh", "position": 0, "probability": 10},
                {"name": "Demo", "position": 1, "probability": 40}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["isDefault"], true);
    let names: Vec<&str> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Fresh", "Demo", "Won"], "ordered by position");
    let fresh = first["stages"][0]["id"].as_str().unwrap().to_string();
    let demo = first["stages"][1]["id"].as_str().unwrap().to_string();
    assert!(fresh.starts_with("stage_"));
    let pipeline_id = first["id"].as_str().unwrap().to_string();

    // New leads start in the default pipeline's first stage; a stage can be chosen.
    let (_, lead) = owner
        .post("/v1/sales/leads", json!({"email": "p@example.com"}))
        .await;
    assert_eq!(lead["pipelineId"], pipeline_id.as_str());
    assert_eq!(lead["pipelineStageId"], fresh.as_str());
    let id = lead["id"].as_str().unwrap();
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"pipelineStageId": demo}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["pipelineStageId"], demo.as_str());
    let (_, b) = owner
        .get(&format!("/v1/sales/leads?pipelineStageId={demo}"))
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (s, b) = owner
        .patch(
            &format!("/v1/sales/leads/{id}"),
            json!({"pipelineStageId": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["pipelineId"].is_null());

    // Slugs are unique; a second default replaces the first.
    let (s, b) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "retail", "name": "Again", "stages": [{"name": "A"}]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "slug_taken");
    assert_eq!(b["errors"][0]["field"], "slug");
    let (s, second) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "b2b", "name": "B2B", "isDefault": true, "stages": [{"name": "Intro"}, {"name": "Offer"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    assert_eq!(second["stages"][1]["position"], 1);
    assert_eq!(second["stages"][1]["probability"], 0);
    let (s, list) = owner.get("/v1/sales/pipelines").await;
    assert_eq!(s, StatusCode::OK);
    let all = list["data"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["slug"], "b2b", "newest first");
    assert_eq!(all[0]["isDefault"], true);
    assert_eq!(all[1]["isDefault"], false);
    let (_, defaults) = owner.get("/v1/sales/pipelines?isDefault=true").await;
    assert_eq!(defaults["data"].as_array().unwrap().len(), 1);
    let (_, by_slug) = owner.get("/v1/sales/pipelines?slug=retail").await;
    assert_eq!(by_slug["data"][0]["id"], pipeline_id.as_str());
    assert_eq!(events(&app, &owner.tenant_id, "pipeline.created").await, 2);

    // Validation.
    let (s, b) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "Bad Slug", "stages": [
                {"name": "A", "probability": 101}, {"position": 1}, {"name": "C", "position": 0}, {"name": "D", "colour": "red"}
            ]}),
        )
        .await;
    for f in [
        "slug",
        "name",
        "stages[0].probability",
        "stages[1].name",
        "stages[2].position",
        "stages[3].colour",
    ] {
        assert_field_error(s, &b, f);
    }
    let (s, b) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "x", "name": "X", "stages": []}),
        )
        .await;
    assert_field_error(s, &b, "stages");

    // Roles and tenants.
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get("/v1/sales/pipelines").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = support
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "s", "name": "S", "stages": [{"name": "A"}]}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = app.anonymous().get("/v1/sales/pipelines").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let other = tenant(&app).await;
    let (_, b) = other.get("/v1/sales/pipelines").await;
    assert_eq!(b["data"], json!([]));
    // The same slug is free in another tenant, and a stage of this tenant is unknown there.
    let (s, _) = other
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "retail", "name": "Theirs", "stages": [{"name": "A"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, theirs) = other
        .post("/v1/sales/leads", json!({"email": "o@example.com"}))
        .await;
    let (s, b) = other
        .patch(
            &format!("/v1/sales/leads/{}", theirs["id"].as_str().unwrap()),
            json!({"pipelineStageId": fresh}),
        )
        .await;
    assert_field_error(s, &b, "pipelineStageId");
}

#[tokio::test]
async fn activities_are_recorded_about_leads_and_traders() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let (_, lead) = owner
        .post("/v1/sales/leads", json!({"email": "act@example.com"}))
        .await;
    let lead_id = lead["id"].as_str().unwrap().to_string();
    let (s, trader) = owner
        .post("/v1/traders", json!({"email": "trader@example.com"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{trader}");
    let trader_id = trader["id"].as_str().unwrap().to_string();

    let (s, call) = owner
        .post(
            "/v1/sales/activities",
            json!({"leadId": lead_id, "kind": "call", "subject": "First call", "body": "Interested in EURUSD",
                   "occurredAt": "2026-05-23T14:18:22.181+02:00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    assert_eq!(call["occurredAt"], "2026-05-23T12:18:22.181Z");
    assert_eq!(call["leadId"], lead_id.as_str());
    assert!(call["traderId"].is_null());
    assert_eq!(call["createdById"], owner.user_id.as_str());
    let (s, note) = owner
        .post(
            "/v1/sales/activities",
            json!({"traderId": trader_id, "kind": "note", "body": "VIP"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{note}");
    assert!(note["occurredAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(events(&app, &owner.tenant_id, "activity.created").await, 2);

    let (_, all) = owner.get("/v1/sales/activities").await;
    let all = all["data"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], note["id"], "newest occurredAt first");
    let (_, b) = owner
        .get(&format!("/v1/sales/activities?leadId={lead_id}"))
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (_, b) = owner
        .get(&format!(
            "/v1/sales/activities?traderId={trader_id}&kind=note"
        ))
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (s, b) = owner.get("/v1/sales/activities?kind=fax").await;
    assert_field_error(s, &b, "kind");

    // Validation: what, about whom, when.
    let (s, b) = owner
        .post("/v1/sales/activities", json!({"kind": "note"}))
        .await;
    assert_field_error(s, &b, "leadId");
    let (s, b) = owner
        .post(
            "/v1/sales/activities",
            json!({"leadId": "lead_01NOPE", "traderId": "01NOPE", "kind": "fax", "occurredAt": "yesterday", "extra": 1}),
        )
        .await;
    for f in ["leadId", "traderId", "kind", "occurredAt", "extra"] {
        assert_field_error(s, &b, f);
    }
    let (s, b) = owner
        .post("/v1/sales/activities", json!({"leadId": lead_id}))
        .await;
    assert_field_error(s, &b, "kind");

    // Another tenant's lead and trader are unknown here.
    let other = tenant(&app).await;
    let (s, b) = other
        .post(
            "/v1/sales/activities",
            json!({"leadId": lead_id, "kind": "note"}),
        )
        .await;
    assert_field_error(s, &b, "leadId");
    let (s, b) = other
        .post(
            "/v1/sales/activities",
            json!({"traderId": trader_id, "kind": "note"}),
        )
        .await;
    assert_field_error(s, &b, "traderId");
    let (_, b) = other.get("/v1/sales/activities").await;
    assert_eq!(b["data"], json!([]));

    // Roles.
    let support = app.member(&owner, &["support"]).await;
    let (s, _) = support.get("/v1/sales/activities").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = support
        .post(
            "/v1/sales/activities",
            json!({"leadId": lead_id, "kind": "note"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _) = app.anonymous().get("/v1/sales/activities").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn converting_a_lead_creates_a_trader() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let (_, lead) = owner
        .post(
            "/v1/sales/leads",
            json!({"email": "conv@example.com", "firstName": "Cora", "lastName": "Vert", "phone": "+44 20 7946 0000", "country": "GB"}),
        )
        .await;
    let id = lead["id"].as_str().unwrap().to_string();

    let support = app.member(&owner, &["support"]).await;
    let (s, b) = support
        .post(&format!("/v1/sales/leads/{id}/convert"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let other = tenant(&app).await;
    let (s, b) = other
        .post(&format!("/v1/sales/leads/{id}/convert"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = owner
        .post("/v1/sales/leads/lead_01NOPE/convert", json!({}))
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, b) = owner
        .post(&format!("/v1/sales/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["lead"]["status"], "converted");
    assert!(b["lead"]["convertedAt"].is_string());
    let trader_id = b["trader"]["id"].as_str().expect("trader id").to_string();
    assert_eq!(b["lead"]["traderId"], trader_id.as_str());
    assert_eq!(b["trader"]["email"], "conv@example.com");

    // The trader is a real one, announced like any other.
    let (s, t) = owner.get(&format!("/v1/traders/{trader_id}")).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["email"], "conv@example.com");
    assert_eq!(t["firstName"], "Cora");
    assert_eq!(t["lastName"], "Vert");
    assert_eq!(t["country"], "GB");
    let created: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.created' AND resource_id = $2",
    )
    .bind(&owner.tenant_id)
    .bind(&trader_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(created, 1);
    assert_eq!(events(&app, &owner.tenant_id, "lead.converted").await, 1);
    let (_, got) = owner.get(&format!("/v1/sales/leads/{id}")).await;
    assert_eq!(got["traderId"], trader_id.as_str());
    let (_, converted) = owner.get("/v1/sales/leads?status=converted").await;
    assert_eq!(converted["data"].as_array().unwrap().len(), 1);

    // Activities on a converted lead belong to its trader too.
    let (_, a) = owner
        .post(
            "/v1/sales/activities",
            json!({"leadId": id, "kind": "email"}),
        )
        .await;
    assert_eq!(a["traderId"], trader_id.as_str());

    // Once only; a converted lead's status is final.
    let (s, b) = owner
        .post(&format!("/v1/sales/leads/{id}/convert"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "already_converted");
    let (s, b) = owner
        .patch(&format!("/v1/sales/leads/{id}"), json!({"status": "new"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_change");

    // An e-mail address a trader has already: 409 naming it, and the lead stays as it was.
    let (_, dup) = owner
        .post("/v1/sales/leads", json!({"email": "CONV@example.com"}))
        .await;
    let dup_id = dup["id"].as_str().unwrap();
    let (s, b) = owner
        .post(&format!("/v1/sales/leads/{dup_id}/convert"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "email_taken");
    assert_eq!(b["errors"][0]["field"], "email");
    let (_, still) = owner.get(&format!("/v1/sales/leads/{dup_id}")).await;
    assert_eq!(still["status"], "new");

    // A lost lead is reopened before it can be converted.
    let (_, lost) = owner
        .post("/v1/sales/leads", json!({"email": "lost@example.com"}))
        .await;
    let lost_id = lost["id"].as_str().unwrap();
    owner
        .patch(
            &format!("/v1/sales/leads/{lost_id}"),
            json!({"status": "lost"}),
        )
        .await;
    let (s, b) = owner
        .post(&format!("/v1/sales/leads/{lost_id}/convert"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "illegal_status_change");

    // The other tenant got no trader.
    let (_, traders) = other.get("/v1/traders").await;
    assert_eq!(traders["data"], json!([]));
}

#[tokio::test]
async fn partner_leads_appear_in_the_sales_pipeline() {
    let app = spawn().await;
    let owner = tenant(&app).await;
    let (_, pipeline) = owner
        .post(
            "/v1/sales/pipelines",
            json!({"slug": "partners", "name": "Partners", "isDefault": true, "stages": [{"name": "Inbox"}, {"name": "Called"}]}),
        )
        .await;
    let inbox = pipeline["stages"][0]["id"].as_str().unwrap().to_string();
    let partner = issue(&owner, "Broker Co").await;

    let mut body = lead_body("Pia");
    body["customer"]["email"] = json!("pia@example.com");
    body["customer"]["address"]["country"] = json!("AU");
    let (s, b) = partner.post("/v1/leads", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b[0]["id"].as_str().unwrap().to_string();

    let (s, list) = owner.get("/v1/sales/leads?source=partner_api").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let lead = &list["data"][0];
    assert_eq!(lead["id"], id.as_str());
    assert_eq!(lead["email"], "pia@example.com");
    assert_eq!(lead["firstName"], "Pia");
    assert_eq!(lead["phone"], "0412312312");
    assert_eq!(lead["country"], "AU");
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["partnerId"], partner.id.as_str());
    assert_eq!(lead["pipelineId"], pipeline["id"]);
    assert_eq!(lead["pipelineStageId"], inbox.as_str());
    assert_eq!(lead["metadata"]["companyName"], "Bens Burgers");
    // Leads are served as stored: the partner API's write stored the whole lead, the same in the
    // list as read alone.
    let (s, one) = owner.get(&format!("/v1/sales/leads/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(&one, lead);

    // A team member's partner-API lead is there too (no partner), and converts like any other.
    let team = create_lead(&owner, "Tim").await;
    let (s, b) = owner.get(&format!("/v1/sales/leads/{team}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["partnerId"].is_null());
    assert_eq!(b["email"], "ben@lumi.com.au");
    let (s, b) = owner
        .post(&format!("/v1/sales/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, t) = owner
        .get(&format!(
            "/v1/traders/{}",
            b["trader"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["email"], "pia@example.com");

    // The partner still sees its lead in the partner API's shape.
    let (_, b) = partner.get(&format!("/v1/leads?id={id}")).await;
    assert_eq!(b["result"]["leads"][0]["status"], "WAITING_FOR_CALL");
}

/// A page filtered on an indexed field is read through that field's index, on both databases.
/// Plugin storage compares indexed fields as `COALESCE(idxN, '')`; an index on the bare column
/// served no such filter, so a filter that matched few leads walked every lead of the tenant
/// (migration 0035 indexes the expression; docs/plugins.md, "Storage").
#[tokio::test]
async fn a_filtered_page_of_leads_is_read_through_the_fields_index() {
    use lumire_engine::db::DbKind;
    use sqlx::Row;
    let app = spawn().await;
    let owner = tenant(&app).await;
    for (email, source) in [("a@example.com", "ads"), ("b@example.com", "web")] {
        let (s, b) = owner
            .post("/v1/sales/leads", json!({"email": email, "source": source}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, ads) = owner.get("/v1/sales/leads?source=ads&limit=20").await;
    assert_eq!(s, StatusCode::OK, "{ads}");
    assert_eq!(ads["data"].as_array().map(Vec::len), Some(1), "{ads}");
    assert_eq!(ads["data"][0]["email"], "a@example.com");

    // The statement plugin storage runs for that page (`source` is the fourth indexed field of
    // leads-intake's `sales_leads`), as the database plans it.
    let sql = format!(
        "SELECT id, body, created_at, updated_at, id FROM plugin_documents WHERE tenant_id = '{}' \
         AND plugin = 'leads-intake' AND collection = 'sales_leads' AND COALESCE(idx4, '') = 'ads' \
         ORDER BY id DESC LIMIT 21 OFFSET 0",
        owner.tenant_id
    );
    let mut conn = app.db.pool().acquire().await.expect("connection");
    let plan: Vec<String> = match app.db.kind() {
        DbKind::Sqlite => sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&mut *conn)
            .await
            .expect("plan")
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect(),
        DbKind::Postgres => {
            // A test's table is a few rows, which a sequential scan would read as fast.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .expect("set");
            let plan = sqlx::query(&format!("EXPLAIN {sql}"))
                .fetch_all(&mut *conn)
                .await
                .expect("plan")
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *conn)
                .await
                .expect("reset");
            plan
        }
    };
    let plan = plan.join("\n");
    assert!(plan.contains("plugin_documents_idx4"), "{plan}");
}

#[tokio::test]
async fn failed_partner_authentications_are_rate_limited_per_address() {
    let app = spawn_plugins_with(|s| s.rate_partner_failures_per_minute = 3).await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;
    let acme = issue(&owner, "Acme Leads").await;
    let (s, b) = acme.get("/v1/leads").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let guesser = acme.with_password("guess");
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(guesser.get("/v1/leads").await.0);
    }
    assert_eq!(seen[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{seen:?}"
    );
    // From that address even the right password waits now (Retry-After), so guessing from it
    // costs the guesser time.
    let resp = acme.request(Method::GET, "/v1/leads").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
}
