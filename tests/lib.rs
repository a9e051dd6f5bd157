//! Test support: start the engine in-process on a free port with a fresh database (SQLite by
//! default; a schema of its own in the run's PostgreSQL database when `LUMIRE_TEST_DB=postgres`),
//! and typed HTTP helpers.

pub mod mt5_sim;

use std::path::PathBuf;

use lumire_engine::db::Db;
use lumire_engine::{App, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use reqwest;
pub use serde_json;

pub struct TestApp {
    pub base: String,
    pub db: Db,
    /// The engine's state, for driving background jobs directly (`webhooks::run_once`).
    pub state: lumire_engine::AppState,
    cleanup: Cleanup,
    _stop: tokio::sync::oneshot::Sender<()>,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// The PostgreSQL server the tests run against (`LUMIRE_TEST_PG_URL`), as its administrator.
pub fn pg_admin_url() -> String {
    std::env::var("LUMIRE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let mut settings = Settings::default();
        let use_pg = std::env::var("LUMIRE_TEST_DB").as_deref() == Ok("postgres");
        let dir = std::env::temp_dir().join(format!("lumire-test-{id}"));
        let cleanup = if use_pg {
            // Each test gets its own schema in the run's database: creating and dropping a
            // schema is cheap, while CREATE/DROP DATABASE forces checkpoints and serialises.
            let admin_url = pg_admin_url();
            let name = format!("t_{id}");
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url)
                .await
                .expect("PostgreSQL for tests (LUMIRE_TEST_PG_URL)");
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&admin)
                .await
                .expect("create test schema");
            admin.close().await;
            let sep = if admin_url.contains('?') { '&' } else { '?' };
            settings.database_url = format!("{admin_url}{sep}options=-c%20search_path%3D{name}");
            Cleanup::Postgres { admin_url, name }
        } else {
            settings.database_url = format!("sqlite://{}/lumire.db", dir.display());
            Cleanup::Dir(dir.clone())
        };
        settings.data_dir = dir;
        settings.listen = "127.0.0.1:0".into();
        settings.run_jobs = false;
        settings.db_max_connections = 5;
        // Every test request comes from 127.0.0.1: the abuse limits are off unless a test
        // turns them on (tests/api/input_hardening.rs does).
        settings.rate_public_per_minute = 0;
        settings.rate_register_per_hour = 0;
        settings.rate_forgot_per_hour = 0;
        settings.rate_partner_failures_per_minute = 0;
        configure(&mut settings);
        let app = App::build(settings).await.expect("engine starts");
        let port = app.port();
        let db = app.state().db.clone();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            db,
            state,
            cleanup,
            _stop: tx,
        }
    }

    /// A client with its own cookie jar (one browser).
    /// A client without cookies or keys (public endpoints, 401 checks).
    pub fn anonymous(&self) -> Client {
        self.client()
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("http client"),
            bearer: None,
        }
    }

    /// Registers a new tenant with its owner and returns the owner's logged-in client.
    pub async fn register_owner(&self) -> Member {
        let slug = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        let email = format!("owner@{slug}.example");
        let c = self.client();
        let (status, body) = c
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": PASSWORD, "displayName": "Owner", "tenantSlug": slug, "tenantName": "Test Broker"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register: {body}");
        Member {
            client: c,
            tenant_id: body["tenant"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_string(),
            email,
            slug,
        }
    }

    /// Adds a user with the given roles straight into the tenant and logs them in.
    pub async fn member(&self, owner: &Member, roles: &[&str]) -> Member {
        let id = ulid::Ulid::new().to_string();
        let email = format!("{}@{}.example", id.to_lowercase(), owner.slug);
        let hash = lumire_engine::auth::password::hash(PASSWORD.into())
            .await
            .expect("hash");
        let now = "2026-01-01T00:00:00.000Z";
        sqlx::query(
            "INSERT INTO users (tenant_id, id, email, email_lower, password_hash, display_name, roles, created_at, updated_at)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&owner.tenant_id)
        .bind(&id)
        .bind(&email)
        .bind(&hash)
        .bind("Member")
        .bind(serde_json::to_string(roles).unwrap_or_default())
        .bind(now)
        .execute(self.db.pool())
        .await
        .expect("insert member");
        let c = self.client();
        let (status, body) = c
            .post(
                "/v1/auth/login",
                json!({"email": email, "password": PASSWORD, "tenantSlug": owner.slug}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Member {
            client: c,
            tenant_id: owner.tenant_id.clone(),
            user_id: id,
            email,
            slug: owner.slug.clone(),
        }
    }

    /// The newest mail queued for an address (tests read the outbox instead of an SMTP server).
    pub async fn last_mail(&self, to: &str) -> Option<(String, String)> {
        sqlx::query_as::<_, (String, String)>(
            "SELECT subject, body FROM mail_outbox WHERE to_addr = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(to)
        .fetch_optional(self.db.pool())
        .await
        .expect("read outbox")
    }

    pub async fn count(&self, sql: &str, tenant_id: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(tenant_id)
            .fetch_one(self.db.pool())
            .await
            .expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; use a fresh one on another thread.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async move {
                            if let Ok(pool) = sqlx::AnyPool::connect(&url).await {
                                let _ = sqlx::query(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .execute(&pool)
                                .await;
                                pool.close().await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A logged-in member of a tenant.
pub struct Member {
    pub client: Client,
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
    pub slug: String,
}

impl std::ops::Deref for Member {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub bearer: Option<String>,
}

impl Client {
    pub fn with_bearer(&self, key: &str) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::new(),
            bearer: Some(key.to_string()),
        }
    }

    /// A client without cookies or keys (for 401 checks).
    pub fn anonymous(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::new(),
            bearer: None,
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.raw(method, path, body, &[]).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A request builder for bodies that are not JSON values (raw bytes, signed payloads).
    pub fn raw_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.bearer {
            Some(b) => req.bearer_auth(b),
            None => req,
        }
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Takes a trader through KYC to `approved` the way a compliance officer does: submit, then
    /// approve through the KYC operation.
    pub async fn approve_kyc(&self, trader_id: &str) {
        let (s, b) = self
            .patch(
                &format!("/v1/traders/{trader_id}"),
                json!({"kycStatus": "pending"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "submit for KYC: {b}");
        let (s, b) = self
            .post(
                "/v1/admin/traders/bulk-approve-kyc",
                json!({"traderIds": [trader_id]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "approve KYC: {b}");
    }
}

/// Asserts a 400 problem whose `errors` name `field`.
#[track_caller]
pub fn assert_field_error(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "expected 400, got {status}: {body}"
    );
    let named = body["errors"]
        .as_array()
        .map(|errs| errs.iter().any(|e| e["field"] == field))
        .unwrap_or(false);
    assert!(named, "expected an error naming `{field}`: {body}");
}

/// The `Retry-After` of a 429, in seconds.
#[track_caller]
pub fn retry_after(resp: &reqwest::Response) -> u64 {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    resp.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

/// Asserts a problem+json status and code.
#[track_caller]
pub fn assert_problem(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
}

/// An instant, as the engine stamps records (milliseconds), that separates what was written before
/// this call (stamped at or before it) from what is written after it (stamped later): it waits
/// until the clock has moved past the current millisecond. "The balance as of T" counts what was
/// stamped at T, so a write right after taking T could otherwise land in T's millisecond.
pub async fn instant_between_writes() -> String {
    let at = lumire_engine::util::now();
    while lumire_engine::util::now() <= at {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    at
}
