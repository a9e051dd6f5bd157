use lumire_tests::{Member, TestApp, assert_field_error, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn new_trader(m: &Member, email: &str) -> String {
    let (s, t) = m.post("/v1/traders", json!({"email": email})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn new_account(m: &Member, trader_id: &str, number: &str, currency: &str) -> String {
    let (s, a) = m
        .post(
            "/v1/accounts",
            json!({"traderId": trader_id, "platform": "mt5", "accountNumber": number, "currency": currency}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_string()
}

fn deposit(trader: &str, account: &str) -> Value {
    json!({"traderId": trader, "accountId": account, "kind": "deposit", "status": "completed", "amount": "500.00", "currency": "USD", "reference": "PSP-1", "description": "Card deposit", "externalId": "psp:1", "occurredAt": "2026-01-02T03:04:05.678+01:00", "metadata": {"psp": "acme"}})
}

async fn count(app: &TestApp, m: &Member, sql: &str) -> i64 {
    app.count(sql, &m.tenant_id).await
}

fn len(v: &Value) -> usize {
    v["data"].as_array().map(Vec::len).unwrap_or(usize::MAX)
}

#[tokio::test]
async fn record_and_read_back() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "tx@example.com").await;
    let account = new_account(&owner, &trader, "1", "USD").await;
    let (s, t) = owner
        .post("/v1/transactions", deposit(&trader, &account))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["traderId"], trader.as_str());
    assert_eq!(t["accountId"], account.as_str());
    assert_eq!(t["kind"], "deposit");
    assert_eq!(t["direction"], "credit");
    assert_eq!(t["status"], "completed");
    assert_eq!(t["amount"], "500.00");
    assert_eq!(t["currency"], "USD");
    assert_eq!(t["externalId"], "psp:1");
    assert_eq!(
        t["occurredAt"], "2026-01-02T02:04:05.678Z",
        "stored as UTC with milliseconds"
    );
    assert_eq!(t["metadata"]["psp"], "acme");

    // Defaults: status pending, currency from the account, occurredAt now.
    let (s, w) = owner
        .post(
            "/v1/transactions",
            json!({"traderId": trader, "accountId": account, "kind": "withdrawal", "amount": "20"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["status"], "pending");
    assert_eq!(w["currency"], "USD");
    assert_eq!(w["direction"], "debit");
    assert!(w["occurredAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(w["externalId"], Value::Null);

    // Without an account the currency must be given.
    let (s, f) = owner
        .post(
            "/v1/transactions",
            json!({"traderId": trader, "kind": "fee", "amount": "0.00000001", "currency": "BTC"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["accountId"], Value::Null);
    assert_eq!(f["amount"], "0.00000001");

    let (s, list) = owner.get("/v1/transactions").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(len(&list), 3);
    assert_eq!(list["data"][0]["kind"], "fee", "newest recorded first");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'transaction.created'"
        )
        .await,
        3
    );
    let id = t["id"].as_str().unwrap();
    let (_, audit) = owner.get(&format!("/v1/audit?resourceId={id}")).await;
    assert_eq!(audit["data"][0]["action"], "transaction.create", "{audit}");
}

#[tokio::test]
async fn validation_names_fields_and_records_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let trader = new_trader(&owner, "v@example.com").await;
    let trader2 = new_trader(&owner, "v2@example.com").await;
    let account = new_account(&owner, &trader, "1", "USD").await;
    let account2 = new_account(&owner, &trader2, "2", "USD").await;
    let foreign_trader = new_trader(&other, "f@example.com").await;
    let foreign_account = new_account(&other, &foreign_trader, "3", "USD").await;
    let with = |patch: Value| {
        let mut body = deposit(&trader, &account);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"traderId": null}), "traderId"),
        (json!({"traderId": foreign_trader}), "traderId"),
        (json!({"accountId": foreign_account}), "accountId"),
        (json!({"accountId": account2}), "accountId"),
        (json!({"accountId": "nope"}), "accountId"),
        (json!({"kind": "gift"}), "kind"),
        (json!({"kind": null}), "kind"),
        (json!({"status": "done"}), "status"),
        (json!({"amount": null}), "amount"),
        (json!({"amount": 500.0}), "amount"),
        (json!({"amount": "-5"}), "amount"),
        (json!({"amount": "0"}), "amount"),
        (json!({"amount": "1,000"}), "amount"),
        (json!({"amount": "5e2"}), "amount"),
        (json!({"amount": "1.000000001"}), "amount"),
        (json!({"currency": "EUR"}), "currency"),
        (json!({"currency": "usd"}), "currency"),
        (json!({"occurredAt": "yesterday"}), "occurredAt"),
        (json!({"occurredAt": "2999-01-01T00:00:00Z"}), "occurredAt"),
        (json!({"metadata": "x"}), "metadata"),
        (json!({"ammount": "5"}), "ammount"),
    ];
    for (patch, field) in cases {
        let (s, b) = owner.post("/v1/transactions", with(patch.clone())).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) = owner
        .post(
            "/v1/transactions",
            json!({"traderId": trader, "kind": "deposit", "amount": "1"}),
        )
        .await;
    assert_field_error(s, &b, "currency");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM transactions WHERE tenant_id = $1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'transaction.created'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn external_ids_are_unique_per_tenant_and_archived_accounts_refuse_money() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let trader = new_trader(&owner, "e@example.com").await;
    let account = new_account(&owner, &trader, "1", "USD").await;
    let (s, _) = owner
        .post("/v1/transactions", deposit(&trader, &account))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = owner
        .post("/v1/transactions", deposit(&trader, &account))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "external_id_taken");
    // The same external id in another tenant is another tenant's business.
    let ot = new_trader(&other, "o@example.com").await;
    let oa = new_account(&other, &ot, "1", "USD").await;
    assert_eq!(
        other.post("/v1/transactions", deposit(&ot, &oa)).await.0,
        StatusCode::CREATED
    );

    let (s, _) = owner
        .patch(
            &format!("/v1/accounts/{account}"),
            json!({"status": "archived"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut body = deposit(&trader, &account);
    body["externalId"] = json!("psp:2");
    let (s, b) = owner.post("/v1/transactions", body).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "account_archived");
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM transactions WHERE tenant_id = $1"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn roles_and_auth() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "r@example.com").await;
    let account = new_account(&owner, &trader, "1", "USD").await;
    let dealer = app.member(&owner, &["dealer"]).await;
    let finance = app.member(&owner, &["finance"]).await;
    let ib = app.member(&owner, &["ib"]).await;
    let anon = owner.anonymous();
    assert_eq!(
        anon.get("/v1/transactions").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.get("/v1/transactions/export.csv").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.post("/v1/transactions", deposit(&trader, &account))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = dealer
        .post("/v1/transactions", deposit(&trader, &account))
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(dealer.get("/v1/transactions").await.0, StatusCode::OK);
    assert_eq!(
        dealer.get("/v1/transactions/export.csv").await.0,
        StatusCode::OK
    );
    assert_eq!(ib.get("/v1/transactions").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        ib.get("/v1/transactions/export.csv").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        count(
            &app,
            &owner,
            "SELECT COUNT(*) FROM transactions WHERE tenant_id = $1"
        )
        .await,
        0
    );
    assert_eq!(
        finance
            .post("/v1/transactions", deposit(&trader, &account))
            .await
            .0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn list_filters_cursor_and_tenant_isolation() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let t1 = new_trader(&owner, "l1@example.com").await;
    let t2 = new_trader(&owner, "l2@example.com").await;
    let a1 = new_account(&owner, &t1, "1", "USD").await;
    let a2 = new_account(&owner, &t2, "2", "EUR").await;
    let rows = [
        (
            &t1,
            Some(&a1),
            "deposit",
            "completed",
            "2026-01-01T10:00:00Z",
        ),
        (
            &t1,
            Some(&a1),
            "withdrawal",
            "pending",
            "2026-01-02T10:00:00Z",
        ),
        (&t1, None, "bonus", "completed", "2026-01-03T10:00:00Z"),
        (&t2, Some(&a2), "deposit", "failed", "2026-01-04T10:00:00Z"),
        (
            &t2,
            Some(&a2),
            "fee",
            "completed",
            "2026-01-05T10:00:00+02:00",
        ),
    ];
    for (trader, account, kind, status, at) in rows {
        let mut body = json!({"traderId": trader, "kind": kind, "status": status, "amount": "10.00", "occurredAt": at});
        match account {
            Some(a) => body["accountId"] = json!(a),
            None => body["currency"] = json!("USD"),
        }
        let (s, b) = owner.post("/v1/transactions", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let ot = new_trader(&other, "o@example.com").await;
    let (s, _) = other
        .post(
            "/v1/transactions",
            json!({"traderId": ot, "kind": "deposit", "amount": "1", "currency": "USD", "occurredAt": "2026-01-03T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let get = |q: &str| {
        let path = format!("/v1/transactions{q}");
        let owner = &owner;
        async move {
            let (s, b) = owner.get(&path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
            b
        }
    };
    assert_eq!(len(&get("").await), 5);
    assert_eq!(len(&get(&format!("?traderId={t1}")).await), 3);
    assert_eq!(len(&get(&format!("?accountId={a2}")).await), 2);
    assert_eq!(len(&get("?kind=deposit").await), 2);
    assert_eq!(len(&get("?status=completed").await), 3);
    assert_eq!(len(&get("?currency=EUR").await), 2);
    assert_eq!(
        len(&get("?from=2026-01-02T00:00:00Z&to=2026-01-04T00:00:00Z").await),
        2
    );
    // Bounds in another offset are compared as instants: 2026-01-05T08:00Z is the fee.
    assert_eq!(len(&get("?from=2026-01-05T09:30:00%2B01:00").await), 0);
    assert_eq!(len(&get("?from=2026-01-05T08:00:00Z").await), 1);
    assert_eq!(
        len(&get(&format!("?traderId={t1}&kind=deposit&status=completed")).await),
        1
    );
    // Another tenant's trader id filters to nothing.
    assert_eq!(len(&get(&format!("?traderId={ot}")).await), 0);
    let (_, theirs) = other.get("/v1/transactions").await;
    assert_eq!(len(&theirs), 1);

    let p1 = get("?limit=2").await;
    assert_eq!(len(&p1), 2);
    assert_eq!(p1["data"][0]["kind"], "fee");
    let p2 = get(&format!(
        "?limit=2&cursor={}",
        p1["next_cursor"].as_str().unwrap()
    ))
    .await;
    let p3 = get(&format!(
        "?limit=2&cursor={}",
        p2["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!((len(&p2), len(&p3)), (2, 1));
    assert!(p3["next_cursor"].is_null());

    for (q, field) in [
        ("?from=last-week", "from"),
        ("?to=2026-13-01", "to"),
        ("?kind=gift", "kind"),
        ("?status=done", "status"),
        ("?limit=0", "limit"),
    ] {
        let (s, b) = owner.get(&format!("/v1/transactions{q}")).await;
        assert_field_error(s, &b, field);
        let (s, b) = owner.get(&format!("/v1/transactions/export.csv{q}")).await;
        if field != "limit" {
            assert_field_error(s, &b, field);
        }
    }
}

#[tokio::test]
async fn csv_export_filters_and_isolates() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let other = app.register_owner().await;
    let t1 = new_trader(&owner, "c1@example.com").await;
    let a1 = new_account(&owner, &t1, "1", "USD").await;
    for (kind, desc) in [("deposit", "first"), ("withdrawal", "=HYPERLINK(\"x\")")] {
        let (s, b) = owner
            .post(
                "/v1/transactions",
                json!({"traderId": t1, "accountId": a1, "kind": kind, "amount": "12.50", "description": desc}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let ot = new_trader(&other, "c2@example.com").await;
    other
        .post(
            "/v1/transactions",
            json!({"traderId": ot, "kind": "deposit", "amount": "99", "currency": "USD", "description": "theirs"}),
        )
        .await;

    let resp = owner
        .raw(
            reqwest::Method::GET,
            "/v1/transactions/export.csv",
            None,
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with(
        "id,occurred_at,created_at,trader_id,account_id,kind,direction,status,amount,currency"
    ));
    assert!(
        lines[1].contains(",withdrawal,debit,pending,12.50,USD,"),
        "{text}"
    );
    assert!(
        lines[1].contains("'=HYPERLINK"),
        "formula cells are neutralised: {text}"
    );
    assert!(lines[2].contains(",deposit,credit,"));
    assert!(!text.contains("theirs"));

    let resp = owner
        .raw(
            reqwest::Method::GET,
            "/v1/transactions/export.csv?kind=deposit",
            None,
            &[],
        )
        .await;
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[tokio::test]
async fn csv_export_stops_at_ten_thousand_rows() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let trader = new_trader(&owner, "big@example.com").await;
    // Bulk-load rows straight into the table: going through the API 10,005 times would only
    // make the test slow.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10005)
         INSERT INTO transactions (tenant_id, id, trader_id, kind, status, amount, currency, occurred_at, metadata, created_at)
         SELECT $1, 'X' || CAST(i + 100000 AS TEXT), $2, 'deposit', 'completed', '1.00', 'USD',
                '2026-01-01T00:00:00.000Z', '{}', '2026-01-01T00:00:00.000Z'
         FROM n",
    )
    .bind(&owner.tenant_id)
    .bind(&trader)
    .execute(app.db.pool())
    .await
    .expect("bulk insert");
    let resp = owner
        .raw(
            reqwest::Method::GET,
            "/v1/transactions/export.csv",
            None,
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_001, "header + 10,000 rows");
    assert!(lines[1].starts_with("X110005,"), "newest first");
    assert!(lines[10_000].starts_with("X100006,"));
}
