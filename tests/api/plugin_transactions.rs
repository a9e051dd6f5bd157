//! `transaction` (WIT `lumire:plugin@0.3.0`): a plugin's storage writes with expectations,
//! trader creations and ledger posts commit together or not at all, over HTTP through the
//! `test-capabilities` plugin and through leads-intake's `convert`.

use lumire_tests::{Member, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::plugins::{enable, spawn, two_tenants_with};

async fn commit(m: &Member, steps: Value) -> (StatusCode, Value) {
    m.post("/v1/captest/commit", json!({ "steps": steps }))
        .await
}

/// The failing step a refused commit names.
fn failed_step(b: &Value) -> &str {
    b["errors"][0]["message"].as_str().unwrap_or("?")
}

async fn traders_with_email(app: &TestApp, tenant: &str, email: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM traders WHERE tenant_id = $1 AND email_lower = $2",
    )
    .bind(tenant)
    .bind(email)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

const ENTRIES: &str = "SELECT COUNT(*) FROM journal_entries WHERE tenant_id = $1 AND kind = 'plugin:test-capabilities:transfer'";
const CREATED_EVENTS: &str =
    "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = 'trader.created'";

#[tokio::test]
async fn a_commit_applies_every_step_or_none() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let (_, trader) = owner
        .post("/v1/traders", json!({"email": "wallet@example.com"}))
        .await;
    let tid = trader["id"].as_str().unwrap();

    // A document, a new trader and a posting, together.
    let (s, b) = commit(
        &owner,
        json!([
            {"put": {"collection": "docs", "id": "a", "body": {"n": 1}, "expect": "absent"}},
            {"trader": {"email": "new.one@example.com"}},
            {"transfer": {"traderId": tid, "amount": "-20.00", "key": "k1"}},
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcomes"][0], json!({"written": 1}));
    let created = b["outcomes"][1]["trader"].as_str().expect("trader id");
    assert!(b["outcomes"][2]["posted"].is_string(), "{b}");
    let (s, t) = owner.get(&format!("/v1/traders/{created}")).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["email"], "new.one@example.com");
    let (_, wallet) = owner
        .get(&format!("/v1/captest/balance?trader={tid}"))
        .await;
    assert_eq!(wallet["balance"], "20.00");
    assert_eq!(app.count(ENTRIES, &owner.tenant_id).await, 1);
    let events_before = app.count(CREATED_EVENTS, &owner.tenant_id).await;

    // The last step is stale: the trader and the posting before it are not applied either.
    let (s, b) = commit(
        &owner,
        json!([
            {"trader": {"email": "new.two@example.com"}},
            {"transfer": {"traderId": tid, "amount": "-5.00", "key": "k2"}},
            {"put": {"collection": "docs", "id": "a", "body": {"n": 9}, "expect": 7}},
        ]),
    )
    .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "stale");
    assert_eq!(failed_step(&b), "2");
    assert_eq!(
        traders_with_email(&app, &owner.tenant_id, "new.two@example.com").await,
        0
    );
    assert_eq!(app.count(ENTRIES, &owner.tenant_id).await, 1);
    assert_eq!(
        app.count(CREATED_EVENTS, &owner.tenant_id).await,
        events_before
    );
    let (_, wallet) = owner
        .get(&format!("/v1/captest/balance?trader={tid}"))
        .await;
    assert_eq!(wallet["balance"], "20.00");
    let (_, doc) = owner.get("/v1/captest/doc?collection=docs&id=a").await;
    assert_eq!(doc, json!({"body": {"n": 1}, "revision": 1}));

    // More than the wallet holds: the write before the posting is undone.
    let (s, b) = commit(
        &owner,
        json!([
            {"put": {"collection": "docs", "id": "a", "body": {"n": 2}, "expect": 1}},
            {"transfer": {"traderId": tid, "amount": "99.00", "key": "k3"}},
        ]),
    )
    .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "insufficient_funds");
    assert_eq!(failed_step(&b), "1");
    let (_, doc) = owner.get("/v1/captest/doc?collection=docs&id=a").await;
    assert_eq!(doc["revision"], 1);

    // A taken e-mail address is the engine's rule: a conflict naming the step.
    let (s, b) = commit(
        &owner,
        json!([
            {"put": {"collection": "docs", "id": "z", "body": {}, "expect": "any"}},
            {"trader": {"email": "WALLET@example.com"}},
        ]),
    )
    .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "conflict");
    assert_eq!(failed_step(&b), "1");
    let (s, _) = owner.get("/v1/captest/doc?collection=docs&id=z").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A trader id the host did not issue in this call, an undeclared collection, a bad e-mail.
    let (s, b) = commit(
        &owner,
        json!([{"trader": {"email": "forged@example.com", "id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}]),
    )
    .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid");
    assert_eq!(failed_step(&b), "0");
    let (s, b) = commit(
        &owner,
        json!([{"put": {"collection": "nope", "id": "x", "body": {}, "expect": "any"}}]),
    )
    .await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid");
    let (s, b) = commit(&owner, json!([{"trader": {"email": "not-an-email"}}])).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "invalid");
    assert!(b["detail"].as_str().unwrap().starts_with("email: "), "{b}");
}

const AUDITS: &str = "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'plugin.post' AND resource_type = 'test-capabilities'";

/// One database transaction per plugin call: what a call wrote (documents, traders, ledger
/// postings) commits only if the call answers a success. A call that fails after its writes
/// (an error answer, a trap) leaves nothing behind but its audit entry, and no money moves.
#[tokio::test]
async fn a_call_that_fails_after_writing_leaves_nothing_behind() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let (_, trader) = owner
        .post("/v1/traders", json!({"email": "undo@example.com"}))
        .await;
    let tid = trader["id"].as_str().unwrap();
    let steps = |n: u32| {
        json!({"steps": [
            {"put": {"collection": "docs", "id": format!("d{n}"), "body": {"n": n}, "expect": "absent"}},
            {"trader": {"email": format!("undone{n}@example.com")}},
            {"transfer": {"traderId": tid, "amount": "-7.00", "key": format!("u{n}")}},
        ]})
    };
    let audits = app.count(AUDITS, &owner.tenant_id).await;

    let (s, b) = owner.post("/v1/captest/commit?then=fail", steps(1)).await;
    assert_problem(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "failed_after_commit",
    );
    let (s, b) = owner.post("/v1/captest/commit?then=trap", steps(2)).await;
    assert_problem(s, &b, StatusCode::BAD_GATEWAY, "plugin_trapped");

    for n in [1, 2] {
        let (s, _) = owner
            .get(&format!("/v1/captest/doc?collection=docs&id=d{n}"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "document d{n} was rolled back");
        let email = format!("undone{n}@example.com");
        assert_eq!(traders_with_email(&app, &owner.tenant_id, &email).await, 0);
    }
    assert_eq!(app.count(ENTRIES, &owner.tenant_id).await, 0);
    let (_, wallet) = owner
        .get(&format!("/v1/captest/balance?trader={tid}"))
        .await;
    assert_eq!(wallet["balance"], "0", "{wallet}");
    // The failed answer is audited (the trap is not: it never answered).
    assert_eq!(app.count(AUDITS, &owner.tenant_id).await, audits + 1);

    // The same steps in a call that succeeds are all there, and audited.
    let (s, b) = owner.post("/v1/captest/commit", steps(3)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, doc) = owner.get("/v1/captest/doc?collection=docs&id=d3").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["revision"], 1);
    assert_eq!(
        traders_with_email(&app, &owner.tenant_id, "undone3@example.com").await,
        1
    );
    assert_eq!(app.count(ENTRIES, &owner.tenant_id).await, 1);
    let (_, wallet) = owner
        .get(&format!("/v1/captest/balance?trader={tid}"))
        .await;
    assert_eq!(wallet["balance"], "7.00", "{wallet}");
    assert_eq!(app.count(AUDITS, &owner.tenant_id).await, audits + 2);
}

/// A refused commit undoes only itself, even as a call's first write: the call goes on, its next
/// commit applies, and the call commits without the refused one's steps.
#[tokio::test]
async fn a_refused_first_write_does_not_stop_the_calls_next_one() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "test-capabilities").await;
    let (s, b) = owner
        .post(
            "/v1/captest/commit?fallback=after",
            json!({"steps": [
                {"put": {"collection": "docs", "id": "first", "body": {"n": 1}, "expect": "absent"}},
                {"trader": {"email": "refused@example.com"}},
                {"put": {"collection": "docs", "id": "missing", "body": {"n": 2}, "expect": 3}},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["fallback"][0], json!({"written": 1}));
    let (s, doc) = owner.get("/v1/captest/doc?collection=docs&id=after").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["body"], json!({"fallback": true}));
    let (s, _) = owner.get("/v1/captest/doc?collection=docs&id=first").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the refused commit's first step stays undone"
    );
    assert_eq!(
        traders_with_email(&app, &owner.tenant_id, "refused@example.com").await,
        0
    );

    // The same after an earlier write of the call: the refused commit is rolled back to its
    // savepoint, the earlier write and the next commit stay.
    let (s, b) = owner
        .post(
            "/v1/captest/commit?before=earlier&fallback=later",
            json!({"steps": [
                {"put": {"collection": "docs", "id": "second", "body": {"n": 1}, "expect": "absent"}},
                {"put": {"collection": "docs", "id": "missing", "body": {"n": 2}, "expect": 3}},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (id, want) in [
        ("earlier", StatusCode::OK),
        ("later", StatusCode::OK),
        ("second", StatusCode::NOT_FOUND),
    ] {
        let (s, doc) = owner
            .get(&format!("/v1/captest/doc?collection=docs&id={id}"))
            .await;
        assert_eq!(s, want, "docs/{id}: {doc}");
    }
}

#[tokio::test]
async fn writes_apply_only_while_their_expectation_holds() {
    let app = spawn().await;
    let (owner, other) = two_tenants_with(&app, "test-capabilities").await;
    let put = |id: &str, n: i64, expect: Value| json!([{"put": {"collection": "docs", "id": id, "body": {"n": n}, "expect": expect}}]);

    let (s, b) = commit(&owner, put("d", 1, json!("absent"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Create-only twice: the second finds it.
    let (s, b) = commit(&owner, put("d", 2, json!("absent"))).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "stale");
    // Over the revision read: applies and moves the revision on.
    let (s, b) = commit(&owner, put("d", 2, json!(1))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcomes"][0], json!({"written": 2}));
    // Over the same (now old) revision again: refused, the newer body stays.
    let (s, b) = commit(&owner, put("d", 3, json!(1))).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "stale");
    // Unconditional: applies whatever the revision.
    let (s, b) = commit(&owner, put("d", 4, json!("any"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcomes"][0], json!({"written": 3}));
    let (_, doc) = owner.get("/v1/captest/doc?collection=docs&id=d").await;
    assert_eq!(doc, json!({"body": {"n": 4}, "revision": 3}));

    // Another tenant's plugin does not see the document, and its own "d" is independent.
    let (s, _) = other.get("/v1/captest/doc?collection=docs&id=d").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = commit(&other, put("d", 1, json!("absent"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Deletes: at a wrong revision refused, at the right one done, then absent holds.
    let del =
        |expect: Value| json!([{"delete": {"collection": "docs", "id": "d", "expect": expect}}]);
    let (s, b) = commit(&owner, del(json!(2))).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "stale");
    let (s, b) = commit(&owner, del(json!("absent"))).await;
    assert_problem(s, &b, StatusCode::CONFLICT, "stale");
    let (s, b) = commit(&owner, del(json!(3))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcomes"][0], json!({"deleted": true}));
    let (s, b) = commit(&owner, del(json!("absent"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcomes"][0], json!({"deleted": false}));
    let (s, _) = other.get("/v1/captest/doc?collection=docs&id=d").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the other tenant's document is untouched"
    );
}

#[tokio::test]
async fn two_conversions_of_one_lead_at_once_make_one_trader() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;
    for round in 0..3 {
        let email = format!("race{round}@example.com");
        let (_, lead) = owner.post("/v1/sales/leads", json!({"email": email})).await;
        let id = lead["id"].as_str().unwrap().to_string();
        let path = format!("/v1/sales/leads/{id}/convert");
        let (a, b) = tokio::join!(owner.post(&path, json!({})), owner.post(&path, json!({})));
        let statuses = [a.0, b.0];
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{a:?} {b:?}"
        );
        assert!(statuses.contains(&StatusCode::CONFLICT), "{a:?} {b:?}");
        assert_eq!(traders_with_email(&app, &owner.tenant_id, &email).await, 1);
        let winner = if a.0 == StatusCode::OK { &a.1 } else { &b.1 };
        let (_, got) = owner.get(&format!("/v1/sales/leads/{id}")).await;
        assert_eq!(got["traderId"], winner["trader"]["id"], "{got}");
    }
}

#[tokio::test]
async fn an_edit_racing_a_conversion_never_undoes_it() {
    let app = spawn().await;
    let owner = app.register_owner().await;
    enable(&owner, "leads-intake").await;
    for round in 0..3 {
        let (_, lead) = owner
            .post(
                "/v1/sales/leads",
                json!({"email": format!("edit{round}@example.com")}),
            )
            .await;
        let id = lead["id"].as_str().unwrap().to_string();
        let convert = format!("/v1/sales/leads/{id}/convert");
        let lead_path = format!("/v1/sales/leads/{id}");
        let (conv, edit) = tokio::join!(
            owner.post(&convert, json!({})),
            owner.patch(&lead_path, json!({"status": "contacted"})),
        );
        let (_, got) = owner.get(&format!("/v1/sales/leads/{id}")).await;
        if conv.0 == StatusCode::OK {
            // Whatever the order, the conversion is what the lead shows.
            assert_eq!(got["status"], "converted", "{got} {edit:?}");
            assert_eq!(got["traderId"], conv.1["trader"]["id"]);
        } else {
            assert_eq!(conv.0, StatusCode::CONFLICT, "{conv:?}");
            assert!(got["traderId"].is_null(), "{got}");
        }
        assert!(
            [StatusCode::OK, StatusCode::CONFLICT].contains(&edit.0),
            "{edit:?}"
        );
    }
}
