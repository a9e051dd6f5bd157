use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use lumire_engine::webhooks;
use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Log = Arc<Mutex<Vec<Hit>>>;

/// A local webhook receiver on 127.0.0.1:0 that records requests and answers `status`.
struct Receiver {
    url: String,
    port: u16,
    log: Log,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Log = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state((log.clone(), status.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            log,
            status,
        }
    }
    fn hits(&self) -> Vec<Hit> {
        self.log.lock().unwrap().clone()
    }
    fn answer(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

async fn record(
    State((log, status)): State<(Log, Arc<AtomicU16>)>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, &'static str) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    log.lock().unwrap().push(Hit { headers, body });
    let code = axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
    (code, "receiver says hi")
}

/// Recomputes the signature the way a receiver would.
fn verify(secret: &str, hit: &Hit) {
    let sig = hit.header("x-lumire-signature");
    let (t, v1) = sig
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header shape: {sig}"));
    let t: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 600, "fresh t");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", hit.body).as_bytes());
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "signature");
}

async fn private_app() -> TestApp {
    TestApp::spawn_with(|s| s.webhook_allow_private = true).await
}

async fn subscribe(m: &Member, url: &str, events: Value) -> (String, String) {
    let (s, b) = m
        .post(
            "/v1/webhooks/subscriptions",
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (
        b["id"].as_str().unwrap().to_string(),
        b["secret"].as_str().unwrap().to_string(),
    )
}

async fn new_trader(m: &Member) -> String {
    let email = format!(
        "{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let (s, t) = m.post("/v1/traders", json!({"email": email})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn run(app: &TestApp) -> usize {
    webhooks::run_once(&app.state).await.unwrap()
}

/// Makes every queued delivery of the tenant due now (instead of waiting for its backoff).
async fn make_due(app: &TestApp, tenant_id: &str) {
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = '2000-01-01T00:00:00.000Z'
         WHERE tenant_id = $1 AND next_attempt_at IS NOT NULL",
    )
    .bind(tenant_id)
    .execute(app.db.pool())
    .await
    .unwrap();
}

async fn deliveries(m: &Member, query: &str) -> Vec<Value> {
    let (s, b) = m.get(&format!("/v1/webhooks/deliveries{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"].as_array().unwrap().clone()
}

fn secs_between(a: &Value, b: &Value) -> i64 {
    let p = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (p(b) - p(a)).num_seconds()
}

#[tokio::test]
async fn trader_created_is_delivered_signed_once() {
    let app = private_app().await;
    let rx = Receiver::start().await;
    let owner = app.register_owner().await;
    let (sub_id, secret) = subscribe(&owner, &rx.url, json!(["trader.*"])).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_other_sub, _) = subscribe(&owner, &rx.url, json!(["deposit.settled"])).await;

    let (s, list) = owner.get("/v1/webhooks/subscriptions").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret), "secret never listed");
    let clear = app
        .count(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant_id = $1 AND secret LIKE 'whsec_%'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(clear, 0, "secrets are stored encrypted");
    assert_eq!(list["data"][1]["events"], json!(["trader.*"]));
    assert_eq!(list["data"][1]["isActive"], true);

    let trader_id = new_trader(&owner).await;
    // A subscription created after the event does not receive it.
    let (late_sub, _) = subscribe(&owner, &rx.url, json!(["trader.*"])).await;

    assert_eq!(run(&app).await, 1);
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    verify(&secret, hit);
    assert_eq!(hit.header("x-lumire-event"), "trader.created");
    assert_eq!(hit.header("content-type"), "application/json");
    let body = hit.json();
    assert_eq!(body["type"], "trader.created");
    assert_eq!(body["tenantId"], owner.tenant_id.as_str());
    assert_eq!(body["data"]["id"], trader_id.as_str());
    assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));
    let event_id = body["id"].as_str().unwrap();
    assert_eq!(
        app.count(
            &format!("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND id = '{event_id}' AND name = 'trader.created'"),
            &owner.tenant_id
        )
        .await,
        1,
        "the body's id is the outbox event id"
    );

    let list = deliveries(&owner, "").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let d = &list[0];
    assert_eq!(hit.header("x-lumire-delivery"), d["id"].as_str().unwrap());
    assert_eq!(d["subscriptionId"], sub_id.as_str());
    assert_eq!(d["eventId"], event_id);
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["responseStatus"], 200);
    assert_eq!(d["responseBody"], "receiver says hi");
    assert!(d["nextAttemptAt"].is_null() && d["succeededAt"].is_string());
    assert_eq!(d["payload"], body);
    assert!(
        deliveries(&owner, &format!("?subscriptionId={late_sub}"))
            .await
            .is_empty()
    );

    // Nothing left to do: no second send.
    assert_eq!(run(&app).await, 0);
    assert_eq!(rx.hits().len(), 1);

    let id = d["id"].as_str().unwrap();
    let (s, b) = owner
        .post(&format!("/v1/webhooks/deliveries/{id}/retry"), json!({}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "delivery_succeeded");

    // Filters.
    assert_eq!(deliveries(&owner, "?status=succeeded").await.len(), 1);
    assert!(deliveries(&owner, "?status=dead").await.is_empty());
    assert_eq!(
        deliveries(&owner, "?eventType=trader.created").await.len(),
        1
    );
    let (s, b) = owner.get("/v1/webhooks/deliveries?status=lost").await;
    assert_field_error(s, &b, "status");

    // Another tenant sees none of it and cannot touch it.
    let stranger = app.register_owner().await;
    assert!(deliveries(&stranger, "").await.is_empty());
    let (_, theirs) = stranger.get("/v1/webhooks/subscriptions").await;
    assert_eq!(theirs["data"], json!([]));
    for (s, b) in [
        stranger
            .post(&format!("/v1/webhooks/deliveries/{id}/retry"), json!({}))
            .await,
        stranger
            .post(
                &format!("/v1/webhooks/subscriptions/{sub_id}/test"),
                json!({}),
            )
            .await,
        stranger
            .delete(&format!("/v1/webhooks/subscriptions/{sub_id}"))
            .await,
        owner
            .post("/v1/webhooks/deliveries/not-an-id/retry", json!({}))
            .await,
    ] {
        assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(rx.hits().len(), 1);
}

#[tokio::test]
async fn failures_back_off_then_die_and_can_be_retried_by_hand() {
    let app = private_app().await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let owner = app.register_owner().await;
    let (_sub, secret) = subscribe(&owner, &rx.url, json!(["trader.created"])).await;
    new_trader(&owner).await;

    assert_eq!(run(&app).await, 1);
    let d = deliveries(&owner, "").await.remove(0);
    assert_eq!(d["status"], "retrying");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["maxAttempts"], webhooks::MAX_ATTEMPTS);
    assert_eq!(d["responseStatus"], 500);
    assert_eq!(d["error"], "receiver answered 500");
    assert_eq!(secs_between(&d["lastAttemptAt"], &d["nextAttemptAt"]), 30);
    // Not due yet: nothing is sent.
    assert_eq!(run(&app).await, 0);

    for attempt in 2..=webhooks::MAX_ATTEMPTS {
        make_due(&app, &owner.tenant_id).await;
        assert_eq!(run(&app).await, 1, "attempt {attempt}");
        let d = deliveries(&owner, "").await.remove(0);
        assert_eq!(d["attempts"], attempt);
        if attempt < webhooks::MAX_ATTEMPTS {
            assert_eq!(d["status"], "retrying");
            assert_eq!(
                secs_between(&d["lastAttemptAt"], &d["nextAttemptAt"]),
                webhooks::backoff_secs(attempt),
            );
            assert_eq!(webhooks::backoff_secs(attempt), 30 << (attempt - 1));
        } else {
            assert_eq!(d["status"], "dead");
            assert!(d["nextAttemptAt"].is_null());
        }
    }
    let hits = rx.hits();
    assert_eq!(hits.len() as i64, webhooks::MAX_ATTEMPTS);
    // Every attempt carries the same delivery id and body, freshly signed.
    for h in &hits {
        verify(&secret, h);
        assert_eq!(h.body, hits[0].body);
        assert_eq!(
            h.header("x-lumire-delivery"),
            hits[0].header("x-lumire-delivery")
        );
    }
    make_due(&app, &owner.tenant_id).await;
    assert_eq!(run(&app).await, 0, "dead deliveries are not retried");

    let id = deliveries(&owner, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let retry = format!("/v1/webhooks/deliveries/{id}/retry");

    // Only owners and admins retry.
    let compliance = app.member(&owner, &["compliance"]).await;
    let (s, _) = compliance.post(&retry, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        owner.anonymous().post(&retry, json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A delivery a worker holds right now cannot be re-queued.
    sqlx::query(
        "UPDATE webhook_deliveries SET lease_until = '2999-01-01T00:00:00.000Z' WHERE id = $1",
    )
    .bind(&id)
    .execute(app.db.pool())
    .await
    .unwrap();
    let (s, b) = owner.post(&retry, json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "delivery_in_flight");
    sqlx::query("UPDATE webhook_deliveries SET lease_until = NULL WHERE id = $1")
        .bind(&id)
        .execute(app.db.pool())
        .await
        .unwrap();

    let (s, d) = owner.post(&retry, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "pending");
    assert!(d["nextAttemptAt"].is_string());
    let (s, b) = owner.post(&retry, json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "delivery_queued");

    rx.answer(204);
    assert_eq!(run(&app).await, 1);
    let d = deliveries(&owner, "").await.remove(0);
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], webhooks::MAX_ATTEMPTS + 1);
    assert_eq!(d["responseStatus"], 204);
    assert!(d["error"].is_null());
    let (s, b) = owner.post(&retry, json!({})).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "delivery_succeeded");
    assert_eq!(rx.hits().len() as i64, webhooks::MAX_ATTEMPTS + 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'webhook_delivery.retry'",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn test_event_is_sent_now_and_delete_abandons_queued_deliveries() {
    let app = private_app().await;
    let rx = Receiver::start().await;
    let owner = app.register_owner().await;
    let (sub, secret) = subscribe(&owner, &rx.url, json!(["deposit.*"])).await;
    let test = format!("/v1/webhooks/subscriptions/{sub}/test");

    let (s, d) = owner.post(&test, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["eventType"], "webhook.test");
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["inFlight"], false);
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    verify(&secret, &hits[0]);
    assert_eq!(hits[0].header("x-lumire-event"), "webhook.test");
    assert_eq!(hits[0].json()["data"]["subscriptionId"], sub.as_str());
    assert_eq!(
        hits[0].header("x-lumire-delivery"),
        d["id"].as_str().unwrap()
    );

    // A failing test is attempted once, then dead; it can be retried by hand.
    rx.answer(503);
    let (s, d) = owner.post(&test, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(
        (&d["status"], &d["responseStatus"], &d["maxAttempts"]),
        (&json!("dead"), &json!(503), &json!(1))
    );
    let failed = d["id"].as_str().unwrap().to_string();
    let (s, r) = owner
        .post(
            &format!("/v1/webhooks/deliveries/{failed}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, &r["status"]),
        (StatusCode::OK, &json!("pending")),
        "{r}"
    );

    let finance = app.member(&owner, &["finance"]).await;
    assert_eq!(
        finance.post(&test, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        finance
            .delete(&format!("/v1/webhooks/subscriptions/{sub}"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let (s, _) = owner
        .delete(&format!("/v1/webhooks/subscriptions/{sub}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = owner
        .delete(&format!("/v1/webhooks/subscriptions/{sub}"))
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = owner.post(&test, json!({})).await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = owner.get("/v1/webhooks/subscriptions").await;
    assert_eq!(list["data"], json!([]));

    // The re-queued delivery was abandoned with the subscription.
    let d = deliveries(&owner, "?status=dead").await;
    let abandoned = d.iter().find(|d| d["id"] == failed.as_str()).unwrap();
    assert_eq!(abandoned["error"], "subscription deleted");
    assert!(abandoned["nextAttemptAt"].is_null());
    let (s, b) = owner
        .post(
            &format!("/v1/webhooks/deliveries/{failed}/retry"),
            json!({}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "subscription_deleted");
    assert_eq!(run(&app).await, 0);
    assert_eq!(rx.hits().len(), 2);
    for action in ["webhook_subscription.delete", "webhook_subscription.test"] {
        assert!(
            app.count(
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = '{action}'"
                ),
                &owner.tenant_id
            )
            .await
                >= 1,
            "{action}"
        );
    }
}

#[tokio::test]
async fn private_and_loopback_urls_are_refused_without_the_setting() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let owner = app.register_owner().await;
    for url in [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",
        "http://localhost:8080/hook",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "ftp://example.com/",
        "javascript:alert(1)",
        "https://user:pw@example.com/",
    ] {
        let (s, b) = owner
            .post(
                "/v1/webhooks/subscriptions",
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_field_error(s, &b, "url");
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );

    // A subscription whose target becomes private later (re-pointed DNS; simulated by editing
    // the row) is refused at delivery time and nothing reaches the receiver.
    let (sub, _) = subscribe(&owner, "https://93.184.215.14/hook", json!(["*"])).await;
    for target in [rx.url.clone(), format!("http://localhost:{}/hook", rx.port)] {
        sqlx::query("UPDATE webhook_subscriptions SET url = $2 WHERE tenant_id = $1")
            .bind(&owner.tenant_id)
            .bind(&target)
            .execute(app.db.pool())
            .await
            .unwrap();
        let (s, d) = owner
            .post(&format!("/v1/webhooks/subscriptions/{sub}/test"), json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{d}");
        assert_eq!(d["status"], "dead", "{d}");
        assert!(d["error"].as_str().unwrap().contains("refused"), "{d}");
        assert!(d["responseStatus"].is_null());
    }
    assert!(rx.hits().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_deliver_each_event_exactly_once() {
    let app = private_app().await;
    let rx = Receiver::start().await;
    let owner = app.register_owner().await;
    let (sub1, secret1) = subscribe(&owner, &rx.url, json!(["trader.*"])).await;
    let (sub2, secret2) = subscribe(&owner, &rx.url, json!(["trader.created"])).await;
    for _ in 0..6 {
        new_trader(&owner).await;
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let state = app.state.clone();
            tokio::spawn(async move { webhooks::run_once(&state).await.unwrap() })
        })
        .collect();
    let mut attempts = 0;
    for w in workers {
        attempts += w.await.unwrap();
    }
    // Anything a worker skipped because the fan-out had not committed yet is picked up now.
    attempts += run(&app).await;
    assert_eq!(attempts, 12);
    let hits = rx.hits();
    assert_eq!(hits.len(), 12, "each event once per subscription");
    let mut seen: Vec<&str> = hits.iter().map(|h| h.header("x-lumire-delivery")).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12, "no delivery sent twice");
    let mut events: Vec<String> = hits
        .iter()
        .map(|h| h.json()["id"].as_str().unwrap().to_string())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 6);
    let (_, page) = owner.get("/v1/webhooks/deliveries?limit=100").await;
    for d in page["data"].as_array().unwrap() {
        let hit = hits
            .iter()
            .find(|h| h.header("x-lumire-delivery") == d["id"].as_str().unwrap())
            .unwrap();
        let secret = if d["subscriptionId"] == sub1.as_str() {
            &secret1
        } else {
            assert_eq!(d["subscriptionId"], sub2.as_str());
            &secret2
        };
        verify(secret, hit);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE tenant_id = $1 AND status = 'succeeded' AND attempts = 1",
            &owner.tenant_id
        )
        .await,
        12
    );
    assert_eq!(run(&app).await, 0);
}

#[tokio::test]
async fn access_scopes_and_validation() {
    let app = private_app().await;
    let owner = app.register_owner().await;
    let anon = owner.anonymous();
    assert_eq!(
        anon.get("/v1/webhooks/subscriptions").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.get("/v1/webhooks/deliveries").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.post(
            "/v1/webhooks/subscriptions",
            json!({"url": "https://example.com", "events": ["*"]})
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    let sales = app.member(&owner, &["sales"]).await;
    assert_eq!(
        sales.get("/v1/webhooks/subscriptions").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sales.get("/v1/webhooks/deliveries").await.0,
        StatusCode::FORBIDDEN
    );
    let compliance = app.member(&owner, &["compliance"]).await;
    assert_eq!(
        compliance.get("/v1/webhooks/subscriptions").await.0,
        StatusCode::OK
    );
    assert_eq!(
        compliance.get("/v1/webhooks/deliveries").await.0,
        StatusCode::OK
    );
    let (s, _) = compliance
        .post(
            "/v1/webhooks/subscriptions",
            json!({"url": "https://example.com", "events": ["*"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let admin = app.member(&owner, &["admin"]).await;
    subscribe(&admin, "https://93.184.215.14/a", json!(["trader.created"])).await;

    // API keys: scopes follow the tag.
    let (s, k) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "reader", "scopes": ["webhooks:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let reader = owner.with_bearer(k["key"].as_str().unwrap());
    assert_eq!(
        reader.get("/v1/webhooks/subscriptions").await.0,
        StatusCode::OK
    );
    let (s, _) = reader
        .post(
            "/v1/webhooks/subscriptions",
            json!({"url": "https://example.com", "events": ["*"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, k) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "writer", "scopes": ["webhooks:write"]}),
        )
        .await;
    let writer = owner.with_bearer(k["key"].as_str().unwrap());
    let (s, b) = writer
        .post(
            "/v1/webhooks/subscriptions",
            json!({"url": "https://93.184.215.14/b", "events": ["deposit.*", "deposit.*"], "description": "dedupes"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["events"], json!(["deposit.*"]));
    assert_eq!(
        writer.get("/v1/webhooks/subscriptions").await.0,
        StatusCode::FORBIDDEN
    );

    for (body, field) in [
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "", "events": ["*"]}), "url"),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(2100)), "events": ["*"]}),
            "url",
        ),
        (json!({"url": "https://example.com"}), "events"),
        (
            json!({"url": "https://example.com", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["Trader.Created"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["trader*"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": "trader.*"}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["*"], "description": "d".repeat(501)}),
            "description",
        ),
        (
            json!({"url": "https://example.com", "events": ["*"], "secret": "mine"}),
            "secret",
        ),
        (
            json!({"url": "https://example.com", "events": ["*"], "isActive": "yes"}),
            "isActive",
        ),
    ] {
        let (s, b) = owner.post("/v1/webhooks/subscriptions", body).await;
        assert_field_error(s, &b, field);
    }
    for q in ["limit=0", "cursor=%%%", "isActive=maybe"] {
        let (s, _) = owner.get(&format!("/v1/webhooks/subscriptions?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
    }

    // Inactive subscriptions receive nothing.
    let (s, b) = owner
        .post(
            "/v1/webhooks/subscriptions",
            json!({"url": "https://93.184.215.14/c", "events": ["*"], "isActive": false}),
        )
        .await;
    assert_eq!(
        (s, &b["isActive"]),
        (StatusCode::CREATED, &json!(false)),
        "{b}"
    );
    let (_, list) = owner.get("/v1/webhooks/subscriptions?isActive=false").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'webhook_subscription.create'",
            &owner.tenant_id
        )
        .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'webhook_subscription.created'",
            &owner.tenant_id
        )
        .await,
        3
    );
}

#[tokio::test]
async fn the_job_loop_delivers_on_its_own() {
    let app = TestApp::spawn_with(|s| {
        s.webhook_allow_private = true;
        s.run_jobs = true;
    })
    .await;
    let rx = Receiver::start().await;
    let owner = app.register_owner().await;
    let (_sub, secret) = subscribe(&owner, &rx.url, json!(["trader.created"])).await;
    new_trader(&owner).await;
    // Bounded poll: the loop runs every 2 seconds.
    for _ in 0..200 {
        if !rx.hits().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "delivered by the job loop");
    verify(&secret, &hits[0]);
}
