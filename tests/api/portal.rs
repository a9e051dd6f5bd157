use lumire_tests::{Client, Member, PASSWORD, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Signs a customer up in the owner's tenant; returns the portal client (holding the portal
/// cookie) and the signup response.
pub async fn signup(app: &TestApp, owner: &Member, email: &str) -> (Client, Value) {
    let c = app.client();
    let (s, b) = c
        .post(
            "/v1/public/signup",
            json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace", "phone": "+441234567890", "country": "GB", "tenantSlug": owner.slug}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "signup: {b}");
    (c, b)
}

/// Signs up and approves a customer; returns (portal client, customer id, trader id).
pub async fn approved_customer(
    app: &TestApp,
    owner: &Member,
    email: &str,
) -> (Client, String, String) {
    let (c, b) = signup(app, owner, email).await;
    let id = b["customer"]["id"].as_str().unwrap().to_string();
    let trader = b["customer"]["traderId"].as_str().unwrap().to_string();
    let (s, body) = owner
        .post(&format!("/v1/customers/{id}/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    (c, id, trader)
}

async fn insert_account(
    app: &TestApp,
    tenant: &str,
    trader: &str,
    number: &str,
    status: &str,
) -> String {
    let id = ulid::Ulid::new().to_string();
    sqlx::query(
        "INSERT INTO trading_accounts (tenant_id, id, trader_id, platform, account_number, currency, status, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, 'mt5', $4, 'USD', $5, '{}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    )
    .bind(tenant)
    .bind(&id)
    .bind(trader)
    .bind(number)
    .bind(status)
    .execute(app.db.pool())
    .await
    .unwrap();
    id
}

fn portal_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("lumirecrm_portal_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn signup_links_existing_trader_or_creates_one() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, t) = owner
        .post(
            "/v1/traders",
            json!({"email": "ada@example.com", "source": "website"}),
        )
        .await;
    let trader_id = t["id"].as_str().unwrap();
    let (portal, b) = signup(&app, &owner, "Ada@Example.com").await;
    assert_eq!(b["customer"]["status"], "pending");
    assert_eq!(b["customer"]["traderId"], trader_id);
    assert!(b["customer"].get("passwordHash").is_none());
    let (s, me) = portal.get("/v1/public/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert!(me["trader"].is_null(), "the trader opens on approval: {me}");
    let customer = b["customer"]["id"].as_str().unwrap();
    owner
        .post(&format!("/v1/customers/{customer}/approve"), json!({}))
        .await;
    let (_, me) = portal.get("/v1/public/me").await;
    assert_eq!(me["trader"]["id"], trader_id);
    assert_eq!(me["tenant"]["slug"], owner.slug.as_str());
    assert!(
        me["trader"].get("segments").is_none(),
        "internal fields stay internal"
    );
    let (_, t) = owner.get(&format!("/v1/traders/{trader_id}")).await;
    assert_eq!(
        t["source"], "website",
        "an existing trader is linked, not changed"
    );

    let (_, b) = signup(&app, &owner, "new@example.com").await;
    let new_trader = b["customer"]["traderId"].as_str().unwrap();
    let (s, t) = owner.get(&format!("/v1/traders/{new_trader}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&t["source"], &t["email"], &t["firstName"]),
        (&json!("portal"), &json!("new@example.com"), &json!("Ada"))
    );

    let (s, b) = app
        .client()
        .post(
            "/v1/public/signup",
            json!({"email": "NEW@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B", "tenantSlug": owner.slug}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_email_taken");
    let n = app
        .count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'customer.created'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(n, 2);
    let n = app
        .count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'customer.signup'",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(n, 2);
    assert!(app.last_mail("new@example.com").await.is_some());
}

#[tokio::test]
async fn signup_validation_names_fields_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let c = app.client();
    let good = json!({"email": "v@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B", "tenantSlug": owner.slug});
    for (field, patch) in [
        ("email", json!({"email": "nope"})),
        ("password", json!({"password": "short"})),
        ("firstName", json!({"firstName": "  "})),
        ("country", json!({"country": "Germany"})),
        ("tenantSlug", json!({"tenantSlug": "no-such-broker"})),
        ("emial", json!({"emial": "typo"})),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, b) = c.post("/v1/public/signup", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM customers WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traders WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn login_logout_history_and_rejected_customers() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, b) = signup(&app, &owner, "log@example.com").await;
    let id = b["customer"]["id"].as_str().unwrap();
    let c = app.client();
    let creds =
        |pw: &str| json!({"email": "log@example.com", "password": pw, "tenantSlug": owner.slug});
    let (s, b) = c.post("/v1/public/login", creds("wrong password!")).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (s, b) = c.post("/v1/public/login", creds(PASSWORD)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["customer"]["id"], id);
    assert_eq!(c.get("/v1/public/me").await.0, StatusCode::OK);
    let (s, _) = c.post("/v1/public/logout", json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(c.get("/v1/public/me").await.0, StatusCode::UNAUTHORIZED);
    let (s, b) = c
        .post("/v1/public/login", json!({"email": "log@example.com"}))
        .await;
    assert_field_error(s, &b, "password");

    // Login history: signup + login succeeded, one failure.
    let (s, logins) = owner.get(&format!("/v1/customers/{id}/logins")).await;
    assert_eq!(s, StatusCode::OK, "{logins}");
    let data = logins["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{logins}");
    assert_eq!(data[0]["success"], true);
    assert_eq!(data[1]["success"], false);

    // A rejected customer loses its sessions and cannot log in again.
    let (s, _) = c.post("/v1/public/login", creds(PASSWORD)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = owner
        .post(
            &format!("/v1/customers/{id}/reject"),
            json!({"reason": "fake documents"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c.get("/v1/public/me").await.0, StatusCode::UNAUTHORIZED);
    let (s, b) = c.post("/v1/public/login", creds(PASSWORD)).await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let n = app
        .count(
            "SELECT COUNT(*) FROM customer_logins WHERE tenant_id = $1 AND success = 0",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(n, 2);
}

#[tokio::test]
async fn login_is_rate_limited() {
    let app = TestApp::spawn_with(|s| s.login_max_failures = 3).await;
    let owner = app.register_owner().await;
    signup(&app, &owner, "rl@example.com").await;
    let c = app.client();
    let bad = json!({"email": "rl@example.com", "password": "not the password", "tenantSlug": owner.slug});
    for _ in 0..3 {
        assert_eq!(
            c.post("/v1/public/login", bad.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = c
        .raw(
            reqwest::Method::POST,
            "/v1/public/login",
            Some(
                json!({"email": "rl@example.com", "password": PASSWORD, "tenantSlug": owner.slug}),
            ),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    // Unknown e-mails are limited the same way, and leave no login history.
    let ghost = json!({"email": "ghost@example.com", "password": "whatever it is", "tenantSlug": owner.slug});
    for _ in 0..3 {
        assert_eq!(
            c.post("/v1/public/login", ghost.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        c.post("/v1/public/login", ghost).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn operator_and_portal_sessions_never_cross() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, _) = signup(&app, &owner, "cross@example.com").await;
    // Operator session on portal operations.
    for path in [
        "/v1/public/me",
        "/v1/public/messages",
        "/v1/traders/me",
        "/v1/traders/me/accounts",
        "/v1/traders/me/export",
    ] {
        let (s, b) = owner.get(path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {b}");
    }
    let (s, _) = owner
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "BSC", "amount": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = owner
        .patch("/v1/traders/me/profile", json!({"phone": "+1"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Portal session on operator operations.
    for path in [
        "/v1/traders",
        "/v1/customers",
        "/v1/tags",
        "/v1/segments",
        "/v1/auth/me",
    ] {
        let (s, b) = portal.get(path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {b}");
    }
    let (s, _) = portal.post("/v1/tags", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A portal session value presented as the operator cookie is still refused.
    let resp = portal
        .anonymous()
        .raw(
            reqwest::Method::POST,
            "/v1/public/login",
            Some(json!({"email": "cross@example.com", "password": PASSWORD, "tenantSlug": owner.slug})),
            &[],
        )
        .await;
    let value = portal_cookie(&resp);
    let cookie = format!("lumirecrm_session={value}");
    let resp = portal
        .anonymous()
        .raw(
            reqwest::Method::GET,
            "/v1/customers",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = portal
        .anonymous()
        .raw(
            reqwest::Method::GET,
            "/v1/public/me",
            None,
            &[("cookie", &format!("lumirecrm_portal_session={value}"))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        portal.anonymous().get("/v1/traders/me").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn messages_between_customer_and_broker() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, id, _) = approved_customer(&app, &owner, "msg@example.com").await;
    let (s, m) = portal
        .post(
            "/v1/public/messages",
            json!({"body": "Where is my deposit?"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["direction"], "inbound");
    let (s, b) = portal
        .post("/v1/public/messages", json!({"body": ""}))
        .await;
    assert_field_error(s, &b, "body");
    let (s, b) = portal
        .post("/v1/public/messages", json!({"body": "x".repeat(5001)}))
        .await;
    assert_field_error(s, &b, "body");
    let (s, r) = owner
        .post(
            &format!("/v1/customers/{id}/reply"),
            json!({"body": "On its way."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["direction"], "outbound");
    assert_eq!(r["authorUserId"], owner.user_id.as_str());
    let (_, list) = portal.get("/v1/public/messages").await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["body"], "On its way.", "newest first");
    assert_eq!(data[1]["body"], "Where is my deposit?");
    let (_, notes) = portal.get("/v1/traders/me/notifications").await;
    assert_eq!(notes["data"][0]["kind"], "customer_message.sent", "{notes}");
    let (_, mail) = app.last_mail("msg@example.com").await.unwrap();
    assert!(
        !mail.contains("On its way."),
        "the message text stays in the portal"
    );
    // Another customer sees none of it.
    let (other, _) = signup(&app, &owner, "other@example.com").await;
    let (_, list) = other.get("/v1/public/messages").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn crypto_deposits_are_recorded_pending_and_move_no_money() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (pending, _) = signup(&app, &owner, "pend@example.com").await;
    let (s, b) = pending
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "BSC", "amount": "10"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_not_approved");
    let (portal, _, trader) = approved_customer(&app, &owner, "dep@example.com").await;
    for (field, body) in [
        ("chain", json!({"chain": "DOGE", "amount": "10"})),
        ("chain", json!({"amount": "10"})),
        ("amount", json!({"chain": "BSC", "amount": 0})),
        ("amount", json!({"chain": "BSC", "amount": "-5"})),
        ("amount", json!({"chain": "BSC", "amount": "ten"})),
        ("amount", json!({"chain": "BSC", "amount": "1.1234567"})),
        ("amount", json!({"chain": "BSC"})),
        ("ammount", json!({"chain": "BSC", "ammount": "1"})),
    ] {
        let (s, b) = portal.post("/v1/public/crypto-deposits", body).await;
        assert_field_error(s, &b, field);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM transactions WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    let (s, d) = portal
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "bsc", "amount": "250.50"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(
        (
            &d["kind"],
            &d["status"],
            &d["currency"],
            &d["chain"],
            &d["amount"]
        ),
        (
            &json!("deposit"),
            &json!("pending"),
            &json!("USDT"),
            &json!("BSC"),
            &json!("250.50")
        )
    );
    assert!(d["notice"].as_str().unwrap().contains("No money moves"));
    let (s, d2) = portal
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "BASE", "amount": 100}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d2}");
    assert_eq!(
        (&d2["currency"], &d2["amount"]),
        (&json!("USDC"), &json!("100"))
    );
    let n = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM transactions WHERE tenant_id = $1 AND trader_id = $2 AND kind = 'deposit' AND status = 'pending'",
    )
    .bind(&owner.tenant_id)
    .bind(&trader)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(n, 2);
    let (_, txs) = portal.get("/v1/traders/me/transactions").await;
    assert_eq!(txs["data"].as_array().unwrap().len(), 2);
    assert_eq!(txs["data"][0]["id"], d2["id"]);
    let (_, txs) = portal
        .get("/v1/traders/me/transactions?status=settled")
        .await;
    assert_eq!(txs["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'deposit.requested'",
            &owner.tenant_id
        )
        .await,
        2
    );
    // A suspended trader cannot request deposits.
    owner
        .post(
            &format!("/v1/traders/{trader}/suspend"),
            json!({"reason": "AML"}),
        )
        .await;
    let (s, b) = portal
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "ETH", "amount": "1"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "trader_suspended");
}

#[tokio::test]
async fn traders_me_profile_terms_and_kyc_retrigger() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, _, trader) = approved_customer(&app, &owner, "me@example.com").await;
    let (s, me) = portal.get("/v1/traders/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["id"], trader.as_str());
    assert!(me.get("metadata").is_none());

    let (s, b) = portal.post("/v1/traders/me/accept-terms", json!({})).await;
    assert_field_error(s, &b, "version");
    let (s, b) = portal
        .post("/v1/traders/me/accept-terms", json!({"version": "2026-01"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["termsVersion"], "2026-01");
    assert!(b["termsAcceptedAt"].is_string());

    // Non-sensitive change: KYC untouched.
    owner.approve_kyc(&trader).await;
    let (s, b) = portal
        .patch(
            "/v1/traders/me/profile",
            json!({"phone": "+449999", "addressLine1": "1 Main St", "city": "London", "postalCode": "N1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (&b["phone"], &b["city"]),
        (&json!("+449999"), &json!("London"))
    );
    assert_eq!(b["kycStatus"], "approved");
    // Sensitive change: KYC back to pending.
    let (s, b) = portal
        .patch("/v1/traders/me/profile", json!({"lastName": "King"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (&b["lastName"], &b["kycStatus"]),
        (&json!("King"), &json!("pending"))
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.kyc_retriggered'",
            &owner.tenant_id
        )
        .await,
        1
    );
    let (_, t) = owner.get(&format!("/v1/traders/{trader}")).await;
    assert_eq!(
        (&t["lastName"], &t["addressLine1"]),
        (&json!("King"), &json!("1 Main St"))
    );
    let (_, me) = portal.get("/v1/public/me").await;
    assert_eq!(me["customer"]["lastName"], "King");

    for (field, body) in [
        ("firstName", json!({"firstName": null})),
        ("dateOfBirth", json!({"dateOfBirth": "12/10/1990"})),
        ("country", json!({"country": "England"})),
        ("email", json!({"email": "x@y.z"})),
        ("kycStatus", json!({"kycStatus": "approved"})),
        ("body", json!({})),
    ] {
        let (s, b) = portal.patch("/v1/traders/me/profile", body).await;
        assert_field_error(s, &b, field);
    }
    let (_, t) = owner.get(&format!("/v1/traders/{trader}")).await;
    assert_eq!(t["kycStatus"], "pending");
    assert_eq!(t["email"], "me@example.com");
}

#[tokio::test]
async fn accounts_positions_and_auto_login() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, _, trader) = approved_customer(&app, &owner, "acc@example.com").await;
    let (_, _, other_trader) = approved_customer(&app, &owner, "acc2@example.com").await;
    let mine = insert_account(&app, &owner.tenant_id, &trader, "1001", "active").await;
    let closed = insert_account(&app, &owner.tenant_id, &trader, "1002", "closed").await;
    let theirs = insert_account(&app, &owner.tenant_id, &other_trader, "2001", "active").await;
    let (_, list) = portal.get("/v1/traders/me/accounts").await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    assert_eq!(data[0]["isDemo"], false);

    for (i, (t, acc, closed_at)) in [
        (&trader, &mine, None),
        (&trader, &mine, Some("2026-01-02T00:00:00.000Z")),
        (&other_trader, &theirs, None),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO positions (tenant_id, id, account_id, trader_id, symbol, side, volume, open_price, opened_at, closed_at)
             VALUES ($1, $2, $3, $4, 'EURUSD', 'buy', '1.00', '1.0850', '2026-01-01T00:00:00.000Z', $5)",
        )
        .bind(&owner.tenant_id)
        .bind(format!("{}{i}", ulid::Ulid::new()))
        .bind(acc)
        .bind(t)
        .bind(closed_at)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let (_, p) = portal.get("/v1/traders/me/positions").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 2, "{p}");
    let (_, p) = portal.get("/v1/traders/me/positions?status=open").await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    let (s, b) = portal.get("/v1/traders/me/positions?status=maybe").await;
    assert_field_error(s, &b, "status");

    let (s, a) = portal
        .post(
            &format!("/v1/traders/me/accounts/{mine}/auto-login"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let token = a["token"].as_str().unwrap();
    assert!(a["url"].as_str().unwrap().contains("token="), "{a}");
    assert!(a["url"].as_str().unwrap().contains("/terminal/mt5"), "{a}");
    let r = lumire_engine::portal::auto_login::redeem(&app.db, token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.account_id.as_str(), r.trader_id.as_str()),
        (mine.as_str(), trader.as_str())
    );
    assert!(
        lumire_engine::portal::auto_login::redeem(&app.db, token)
            .await
            .unwrap()
            .is_none(),
        "single use"
    );
    let (s, b) = portal
        .post(
            &format!("/v1/traders/me/accounts/{theirs}/auto-login"),
            json!({}),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = portal
        .post(
            &format!("/v1/traders/me/accounts/{closed}/auto-login"),
            json!({}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_not_active");
    let (s, _) = portal
        .post("/v1/traders/me/accounts/not-an-id/auto-login", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Another tenant's customer cannot reach this account either.
    let owner_b = app.register_owner().await;
    let (portal_b, _, _) = approved_customer(&app, &owner_b, "acc@example.com").await;
    let (s, _) = portal_b
        .post(
            &format!("/v1/traders/me/accounts/{mine}/auto-login"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = portal_b.get("/v1/traders/me/accounts").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM platform_login_tokens WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn withdrawal_allowlist_activates_after_24h() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, _, _) = approved_customer(&app, &owner, "wd@example.com").await;
    let (s, e) = portal
        .post(
            "/v1/traders/me/withdrawal-allowlist",
            json!({"chain": "ETH", "address": "0xAbCdEf0123456789abcdef0123456789ABCDEF01", "label": "Ledger"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(e["address"], "0xabcdef0123456789abcdef0123456789abcdef01");
    assert_eq!(e["active"], false);
    let active_from = chrono_like(e["activeFrom"].as_str().unwrap());
    let created = chrono_like(e["createdAt"].as_str().unwrap());
    assert_eq!(active_from - created, 24 * 3600);
    let (s, b) = portal
        .post(
            "/v1/traders/me/withdrawal-allowlist",
            json!({"chain": "eth", "address": "0xABCDEF0123456789ABCDEF0123456789ABCDEF01"}),
        )
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "allowlist_address_exists");
    for (field, body) in [
        (
            "address",
            json!({"chain": "TRON", "address": "0xabcdef0123456789abcdef0123456789abcdef01"}),
        ),
        ("chain", json!({"chain": "XRP", "address": "r123"})),
        ("address", json!({"chain": "BSC"})),
        (
            "label",
            json!({"chain": "BSC", "address": "0x0000000000000000000000000000000000000001", "label": "x".repeat(65)}),
        ),
    ] {
        let (s, b) = portal
            .post("/v1/traders/me/withdrawal-allowlist", body)
            .await;
        assert_field_error(s, &b, field);
    }
    let (s, e2) = portal
        .post(
            "/v1/traders/me/withdrawal-allowlist",
            json!({"chain": "TRON", "address": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e2}");
    let (_, list) = portal.get("/v1/traders/me/withdrawal-allowlist").await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["chain"], "TRON");
    let (subject, _) = app.last_mail("wd@example.com").await.unwrap();
    assert!(subject.contains("withdrawal address"), "{subject}");
    let (other, _, _) = approved_customer(&app, &owner, "wd2@example.com").await;
    let (_, list) = other.get("/v1/traders/me/withdrawal-allowlist").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

/// Seconds since the epoch of an RFC 3339 UTC time with milliseconds (test helper).
fn chrono_like(t: &str) -> i64 {
    let date: Vec<i64> = t[..10].split('-').map(|p| p.parse().unwrap()).collect();
    let time: Vec<i64> = t[11..19].split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant).
    let (y, m, d) = (date[0] - i64::from(date[1] <= 2), date[1], date[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + time[0] * 3600 + time[1] * 60 + time[2]
}

#[tokio::test]
async fn referrals_timeline_notifications_and_export() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (portal, customer, trader) = approved_customer(&app, &owner, "ref@example.com").await;
    let (_, friend) = owner
        .post(
            "/v1/traders",
            json!({"email": "friend@example.com", "firstName": "Grace", "lastName": "hopper", "referredByTraderId": trader}),
        )
        .await;
    let (_, stranger) = owner
        .post(
            "/v1/traders",
            json!({"email": "stranger@example.com", "firstName": "Alan"}),
        )
        .await;
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{}", stranger["id"].as_str().unwrap()),
            json!({"referredByTraderId": "01NOSUCHTRADER"}),
        )
        .await;
    assert_field_error(s, &b, "referredByTraderId");
    let (s, b) = owner
        .patch(
            &format!("/v1/traders/{trader}"),
            json!({"referredByTraderId": trader}),
        )
        .await;
    assert_field_error(s, &b, "referredByTraderId");
    let (s, refs) = portal.get("/v1/traders/me/referrals").await;
    assert_eq!(s, StatusCode::OK, "{refs}");
    let data = refs["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], friend["id"]);
    assert_eq!(
        (&data[0]["firstName"], &data[0]["lastInitial"]),
        (&json!("Grace"), &json!("H"))
    );
    assert!(!refs.to_string().contains("friend@example.com"));

    portal
        .post("/v1/public/messages", json!({"body": "hi"}))
        .await;
    portal
        .post(
            "/v1/public/crypto-deposits",
            json!({"chain": "TRON", "amount": "5"}),
        )
        .await;
    let (s, tl) = portal.get("/v1/traders/me/timeline").await;
    assert_eq!(s, StatusCode::OK, "{tl}");
    let types: Vec<&str> = tl["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["transaction", "message", "login"], "{tl}");
    assert_eq!(tl["data"][0]["amount"], "5");
    assert_eq!(tl["data"][2]["kind"], "succeeded");
    let (_, tl) = portal
        .get("/v1/traders/me/timeline?type=message&limit=1")
        .await;
    assert_eq!(tl["data"].as_array().unwrap().len(), 1);
    assert!(tl["next_cursor"].is_null());
    let (_, tl) = portal.get("/v1/traders/me/timeline?limit=2").await;
    let cursor = tl["next_cursor"].as_str().unwrap();
    let (_, tl2) = portal
        .get(&format!("/v1/traders/me/timeline?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(tl2["data"][0]["type"], "login");
    let (s, b) = portal.get("/v1/traders/me/timeline?type=kyc").await;
    assert_field_error(s, &b, "type");

    let (_, notes) = portal.get("/v1/traders/me/notifications").await;
    let kinds: Vec<&str> = notes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deposit.requested", "customer.approved"], "{notes}");
    let (_, unread) = portal.get("/v1/traders/me/notifications?unread=true").await;
    assert_eq!(unread["data"].as_array().unwrap().len(), 2);

    let resp = portal
        .raw(reqwest::Method::GET, "/v1/traders/me/export", None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let bundle: Value = resp.json().await.unwrap();
    assert_eq!(bundle["trader"]["id"], trader.as_str());
    assert_eq!(bundle["customer"]["id"], customer.as_str());
    assert_eq!(bundle["messages"].as_array().unwrap().len(), 1);
    assert_eq!(bundle["transactions"].as_array().unwrap().len(), 1);
    assert!(!bundle["logins"].as_array().unwrap().is_empty());
    assert!(!bundle.to_string().contains("friend@example.com"));
    assert!(!bundle.to_string().contains("argon2"), "no password hash");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'trader.data_exported'",
            &owner.tenant_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn pending_customers_reach_only_their_own_records() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    // A CRM record whose owner never signed up: signing up with that e-mail must not open it.
    let (_, t) = owner
        .post(
            "/v1/traders",
            json!({"email": "victim@example.com", "phone": "+4900000", "dateOfBirth": "1980-01-01"}),
        )
        .await;
    let trader = t["id"].as_str().unwrap();
    let account = insert_account(&app, &owner.tenant_id, trader, "7001", "active").await;
    let (portal, _) = signup(&app, &owner, "victim@example.com").await;
    let (s, me) = portal.get("/v1/public/me").await;
    assert_eq!(s, StatusCode::OK);
    assert!(me["trader"].is_null());
    assert!(!me.to_string().contains("1980-01-01"));
    for path in [
        "/v1/traders/me",
        "/v1/traders/me/accounts",
        "/v1/traders/me/export",
        "/v1/traders/me/notifications",
        "/v1/traders/me/positions",
        "/v1/traders/me/referrals",
        "/v1/traders/me/timeline",
        "/v1/traders/me/transactions",
        "/v1/traders/me/withdrawal-allowlist",
    ] {
        let (s, b) = portal.get(path).await;
        assert_problem(s, &b, StatusCode::CONFLICT, "customer_not_approved");
        assert!(!b.to_string().contains("+4900000"), "{path}");
    }
    for (path, body) in [
        ("/v1/traders/me/accept-terms", json!({"version": "1"})),
        (
            "/v1/traders/me/withdrawal-allowlist",
            json!({"chain": "TRON", "address": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"}),
        ),
        (
            &format!("/v1/traders/me/accounts/{account}/auto-login"),
            json!({}),
        ),
    ] {
        let (s, b) = portal.post(path, body).await;
        assert_problem(s, &b, StatusCode::CONFLICT, "customer_not_approved");
    }
    let (s, b) = portal
        .patch("/v1/traders/me/profile", json!({"lastName": "Mallory"}))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "customer_not_approved");
    let (_, t) = owner.get(&format!("/v1/traders/{trader}")).await;
    assert!(t["lastName"].is_null());
    assert!(t["termsVersion"].is_null());
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM withdrawal_allowlist WHERE tenant_id = $1",
            &owner.tenant_id
        )
        .await,
        0
    );
    // Messages to the broker work while pending.
    let (s, _) = portal
        .post("/v1/public/messages", json!({"body": "Please approve me"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
}
