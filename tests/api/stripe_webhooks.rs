//! `POST /v1/payments/webhooks/stripe`: signature first, then one effect per Stripe event id.

use hmac::{Hmac, Mac};
use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_test_0123456789abcdef";

fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sends `event` to the tenant's endpoint with the given signature header.
async fn deliver(
    app: &TestApp,
    slug: &str,
    body: &str,
    header: Option<String>,
) -> (StatusCode, Value) {
    let mut req = app
        .anonymous()
        .raw_request(
            reqwest::Method::POST,
            &format!("/v1/payments/webhooks/stripe?tenant={slug}"),
        )
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn send_event(app: &TestApp, slug: &str, event: &Value) -> (StatusCode, Value) {
    let body = event.to_string();
    let t = now();
    deliver(
        app,
        slug,
        &body,
        Some(format!("t={t},v1={}", sign(SECRET, t, &body))),
    )
    .await
}

async fn configured(app: &TestApp) -> Member {
    let owner = app.register_owner().await;
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": SECRET}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["stripeWebhook"]["configured"], true);
    assert!(!b.to_string().contains(SECRET), "the secret is never shown");
    owner
}

async fn card_deposit(m: &Member, amount: &str, currency: &str, intent: &str) -> String {
    let (s, t) = m
        .post("/v1/traders", json!({"email": format!("{}@client.example", ulid::Ulid::new().to_string().to_lowercase())}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, d) = m
        .post("/v1/payments/deposits", json!({"traderId": t["id"], "kind": "card", "amount": amount, "currency": currency, "externalId": intent}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    d["id"].as_str().unwrap().to_string()
}

fn intent_event(id: &str, kind: &str, intent: &str, minor: i64, currency: &str) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "livemode": false,
        "data": {"object": {"id": intent, "object": "payment_intent", "amount": minor,
                             "amount_received": minor, "currency": currency, "metadata": {}}}
    })
}

async fn deposit(m: &Member, id: &str) -> Value {
    let (s, list) = m.get("/v1/payments/deposits?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn a_signed_payment_settles_its_deposit_once() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let id = card_deposit(&owner, "125.50", "USD", "pi_100").await;
    let ev = intent_event("evt_1", "payment_intent.succeeded", "pi_100", 12550, "usd");
    let (s, b) = send_event(&app, &owner.slug, &ev).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["outcome"].as_str(), b["duplicate"].as_bool()),
        (Some("settled"), Some(false)),
        "{b}"
    );
    let d = deposit(&owner, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["netAmount"].as_str()),
        (Some("settled"), Some("125.50"))
    );
    // Stripe redelivers the same event: no second effect.
    let (s, b) = send_event(&app, &owner.slug, &ev).await;
    assert_eq!(
        (s, b["duplicate"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
    let entries = app
        .count(
            "SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND kind = 'deposit'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(entries, 1);
    let report = lumire_engine::ledger::verify(app.db.pool(), &owner.tenant_id)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    // The audit log names Stripe as the actor.
    let (_, audit) = owner.get("/v1/audit?action=deposit.settle").await;
    assert_eq!(audit["data"][0]["actorType"], "system", "{audit}");
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_have_one_effect() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let id = card_deposit(&owner, "10.00", "USD", "pi_race").await;
    let ev = intent_event(
        "evt_race",
        "payment_intent.succeeded",
        "pi_race",
        1000,
        "usd",
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app_base, slug, ev) = (app.base.clone(), owner.slug.clone(), ev.clone());
        tasks.push(tokio::spawn(async move {
            let body = ev.to_string();
            let t = now();
            let r = reqwest::Client::new()
                .post(format!(
                    "{app_base}/v1/payments/webhooks/stripe?tenant={slug}"
                ))
                .header(
                    "stripe-signature",
                    format!("t={t},v1={}", sign(SECRET, t, &body)),
                )
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut effects = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        // A loser of the race may see a 500 (Stripe retries it) but never a second effect.
        if s == StatusCode::OK && b["duplicate"] == false {
            effects += 1;
        }
    }
    assert_eq!(effects, 1);
    assert_eq!(deposit(&owner, &id).await["status"], "settled");
    let entries = app
        .count(
            "SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND kind = 'deposit'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn bad_signatures_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let id = card_deposit(&owner, "20.00", "USD", "pi_sig").await;
    let body =
        intent_event("evt_sig", "payment_intent.succeeded", "pi_sig", 2000, "usd").to_string();
    let t = now();
    let cases = [
        None,
        Some(format!(
            "t={t},v1={}",
            sign("whsec_wrong_secret_0000", t, &body)
        )),
        Some(format!(
            "t={},v1={}",
            t - 3600,
            sign(SECRET, t - 3600, &body)
        )),
        Some(format!("t={t},v1={}", sign(SECRET, t, "{}"))),
        Some("garbage".into()),
    ];
    for h in cases {
        let (s, b) = deliver(&app, &owner.slug, &body, h.clone()).await;
        assert_problem(s, &b, StatusCode::BAD_REQUEST, "invalid_signature");
    }
    assert_eq!(deposit(&owner, &id).await["status"], "pending");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM stripe_events WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    // Several v1 values (Stripe rolling its secret): one matching is enough.
    let h = format!(
        "t={t},v1={},v1={}",
        sign("whsec_old_secret_00000", t, &body),
        sign(SECRET, t, &body)
    );
    let (s, b) = deliver(&app, &owner.slug, &body, Some(h)).await;
    assert_eq!(
        (s, b["outcome"].as_str()),
        (StatusCode::OK, Some("settled")),
        "{b}"
    );
}

#[tokio::test]
async fn rotating_the_secret_keeps_the_previous_one_for_a_while() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": "whsec_second_secret_000"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b["stripeWebhook"]["previousSecretValidUntil"].is_string(),
        "{b}"
    );
    // Still signed with the first secret: accepted during the window.
    let (s, b) = send_event(
        &app,
        &owner.slug,
        &json!({"id": "evt_x", "type": "customer.created", "data": {"object": {}}}),
    )
    .await;
    assert_eq!(
        (s, b["outcome"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{b}"
    );
    // Stored encrypted: the database never holds the secret in clear.
    let clear = app
        .count("SELECT COUNT(*) FROM payment_settings WHERE tenant_id = $1 AND (stripe_webhook_secret LIKE '%whsec%' OR stripe_previous_secret LIKE '%whsec%')", &owner.tenant_id)
        .await;
    assert_eq!(clear, 0);
    // Clearing the secret disables the endpoint.
    let (s, _) = owner
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = send_event(
        &app,
        &owner.slug,
        &json!({"id": "evt_y", "type": "customer.created", "data": {"object": {}}}),
    )
    .await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST, "stripe_not_configured");
}

#[tokio::test]
async fn failures_refunds_and_disputes_follow_the_deposit_state_machine() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    // A failed payment rejects the pending deposit.
    let failed = card_deposit(&owner, "30.00", "USD", "pi_fail").await;
    let mut ev = intent_event(
        "evt_f",
        "payment_intent.payment_failed",
        "pi_fail",
        3000,
        "usd",
    );
    ev["data"]["object"]["last_payment_error"] = json!({"message": "card declined"});
    let (_, b) = send_event(&app, &owner.slug, &ev).await;
    assert_eq!(b["outcome"], "rejected", "{b}");
    assert_eq!(deposit(&owner, &failed).await["status"], "rejected");
    // A success for a rejected deposit changes nothing and says why.
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event("evt_f2", "payment_intent.succeeded", "pi_fail", 3000, "usd"),
    )
    .await;
    assert_eq!(b["outcome"], "ignored", "{b}");
    // Less than asked settles partially; more is refused.
    let short = card_deposit(&owner, "50.00", "USD", "pi_short").await;
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event("evt_s", "payment_intent.succeeded", "pi_short", 4000, "usd"),
    )
    .await;
    assert_eq!(b["outcome"], "settled", "{b}");
    assert_eq!(deposit(&owner, &short).await["settledAmount"], "40.00");
    let over = card_deposit(&owner, "5.00", "USD", "pi_over").await;
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event("evt_o", "payment_intent.succeeded", "pi_over", 900, "usd"),
    )
    .await;
    assert_eq!(b["outcome"], "amount_mismatch", "{b}");
    assert_eq!(deposit(&owner, &over).await["status"], "pending");
    // Currency must match; zero-decimal currencies use whole units.
    let yen = card_deposit(&owner, "1500", "JPY", "pi_yen").await;
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event("evt_y", "payment_intent.succeeded", "pi_yen", 1500, "jpy"),
    )
    .await;
    assert_eq!(b["outcome"], "settled", "{b}");
    assert_eq!(deposit(&owner, &yen).await["netAmount"], "1500");
    // A dispute reverses the settled deposit, once.
    let dispute = json!({"id": "evt_d", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "payment_intent": "pi_short", "amount": 4000, "currency": "usd"}}});
    let (_, b) = send_event(&app, &owner.slug, &dispute).await;
    assert_eq!(b["outcome"], "reversed", "{b}");
    assert_eq!(deposit(&owner, &short).await["status"], "reversed");
    let mut again = dispute.clone();
    again["id"] = json!("evt_d2");
    let (_, b) = send_event(&app, &owner.slug, &again).await;
    assert_eq!(b["outcome"], "already_reversed", "{b}");
    // An event for no known deposit is recorded as unmatched.
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event(
            "evt_u",
            "payment_intent.succeeded",
            "pi_unknown",
            100,
            "usd",
        ),
    )
    .await;
    assert_eq!(b["outcome"], "unmatched", "{b}");
    let report = lumire_engine::ledger::verify(app.db.pool(), &owner.tenant_id)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_refused_reversal_is_recorded_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let id = card_deposit(&owner, "100.00", "USD", "pi_spent").await;
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event(
            "evt_p",
            "payment_intent.succeeded",
            "pi_spent",
            10000,
            "usd",
        ),
    )
    .await;
    assert_eq!(b["outcome"], "settled");
    // The trader withdraws most of it; a later refund cannot be taken back from the wallet.
    let trader_id = deposit(&owner, &id).await["traderId"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, w) = owner
        .post("/v1/payments/withdrawals", json!({"traderId": trader_id, "kind": "bank_wire", "amount": "90.00", "currency": "USD"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let refund = json!({"id": "evt_r", "type": "charge.refunded",
        "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": "pi_spent", "refunded": true, "amount": 10000, "currency": "usd"}}});
    let (s, b) = send_event(&app, &owner.slug, &refund).await;
    assert_eq!(
        (s, b["outcome"].as_str()),
        (StatusCode::OK, Some("refused")),
        "{b}"
    );
    assert_eq!(deposit(&owner, &id).await["status"], "settled");
    let (s, b) = send_event(&app, &owner.slug, &refund).await;
    assert_eq!(
        (s, b["duplicate"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
}

#[tokio::test]
async fn tenants_and_bodies_are_checked() {
    let app = TestApp::spawn().await;
    let owner = configured(&app).await;
    let other = app.register_owner().await;
    // A tenant without a secret, an unknown tenant, no tenant at all.
    let (s, b) = send_event(&app, &other.slug, &json!({"id": "e", "type": "x"})).await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST, "stripe_not_configured");
    let (s, _) = send_event(&app, "no-such-tenant", &json!({"id": "e", "type": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = app
        .anonymous()
        .raw_request(reqwest::Method::POST, "/v1/payments/webhooks/stripe")
        .body("{}")
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert_field_error(s, &r.json().await.unwrap(), "tenant");
    // Another tenant's deposit is never reached through this tenant's endpoint.
    let theirs = card_deposit(&other, "10.00", "USD", "pi_theirs").await;
    let (_, b) = send_event(
        &app,
        &owner.slug,
        &intent_event(
            "evt_t",
            "payment_intent.succeeded",
            "pi_theirs",
            1000,
            "usd",
        ),
    )
    .await;
    assert_eq!(b["outcome"], "unmatched", "{b}");
    let mut by_meta = intent_event("evt_t2", "payment_intent.succeeded", "pi_zz", 1000, "usd");
    by_meta["data"]["object"]["metadata"] = json!({"depositId": theirs});
    let (_, b) = send_event(&app, &owner.slug, &by_meta).await;
    assert_eq!(b["outcome"], "unmatched", "{b}");
    assert_eq!(deposit(&other, &theirs).await["status"], "pending");
    // A signed body that is not an event.
    let body = "not json";
    let t = now();
    let (s, b) = deliver(
        &app,
        &owner.slug,
        body,
        Some(format!("t={t},v1={}", sign(SECRET, t, body))),
    )
    .await;
    assert_field_error(s, &b, "body");
    // Settings: the secret is validated, and only admins may set it.
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": "sk_live_oops"}),
        )
        .await;
    assert_field_error(s, &b, "stripeWebhookSecret");
    let finance = app.member(&owner, &["finance"]).await;
    let (s, _) = finance
        .patch(
            "/v1/payments/settings",
            json!({"stripeWebhookSecret": SECRET}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.anonymous().get("/v1/payments/settings").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
