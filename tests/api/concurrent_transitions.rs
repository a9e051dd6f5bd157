//! State changes are compare-and-set: of N identical requests racing for one transition exactly
//! one succeeds and writes its audit entry and event; the others get 409 and write nothing.
//! Approve and reject racing each other leave the record, the wallet and its hold as the
//! winners left them. SQLite runs one writer at a time, so these tests bite on PostgreSQL
//! (`LUMIRE_TEST_DB=postgres`), where the transactions really interleave.

use std::sync::Arc;

use lumire_tests::{Client, Member, TestApp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::payments::{funded, ledger_ok, trader};

/// Requests per race.
const N: usize = 10;
/// Rounds of approve against reject.
const ROUNDS: u64 = 20;

/// One request of a race: who sends it, the method, the path and the JSON body.
type Request = (Client, Method, String, Value);

/// Sends every request at once (released together by a barrier) and returns the answers in the
/// order given.
async fn race(requests: Vec<Request>) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let handles: Vec<_> = requests
        .into_iter()
        .map(|(client, method, path, body)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                client.send(method, &path, Some(body)).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// `n` copies of one POST.
fn same(client: &Client, path: &str, body: Value, n: usize) -> Vec<Request> {
    (0..n)
        .map(|_| (client.clone(), Method::POST, path.to_string(), body.clone()))
        .collect()
}

/// Exactly one answer is a success; every other one is a 409 problem saying the record was not
/// in the state the request needs (read after the winner) or moved under it (read before).
#[track_caller]
fn one_winner(what: &str, answers: &[(StatusCode, Value)]) -> Value {
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| s.is_success())
        .map(|(_, b)| b)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(
        ok.len(),
        1,
        "{what}: one success expected, got {statuses:?}"
    );
    for (s, b) in answers.iter().filter(|(s, _)| !s.is_success()) {
        assert_eq!(*s, StatusCode::CONFLICT, "{what}: {b}");
        assert_eq!(
            b["type"].as_str().map(|t| t.starts_with("https://")),
            Some(true),
            "{what}: a problem+json body: {b}"
        );
        let code = b["code"].as_str().unwrap_or_default();
        assert!(
            [
                "invalid_state",
                "concurrent_update",
                "already_suspended",
                "not_suspended",
                "second_approver_required"
            ]
            .contains(&code),
            "{what}: {b}"
        );
    }
    ok[0].clone()
}

async fn events(app: &TestApp, tenant: &str, name: &str, id: &str) -> i64 {
    app.count(
        &format!(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND name = '{name}' AND resource_id = '{id}'"
        ),
        tenant,
    )
    .await
}

async fn audits(app: &TestApp, tenant: &str, action: &str, id: &str) -> i64 {
    app.count(
        &format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = '{action}' AND resource_id = '{id}'"
        ),
        tenant,
    )
    .await
}

/// A trader's USD wallet: (available, held), as numbers.
async fn wallet(m: &Member, trader_id: &str) -> (Decimal, Decimal) {
    let (available, held) = crate::payments::balance(m, trader_id).await;
    (
        available.parse().expect("available is a decimal"),
        held.parse().expect("held is a decimal"),
    )
}

async fn deposit(m: &Member, trader_id: &str, amount: &str) -> String {
    let (s, d) = m
        .post(
            "/v1/payments/deposits",
            json!({"traderId": trader_id, "kind": "bank_wire", "amount": amount, "currency": "USD"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    d["id"].as_str().expect("deposit id").to_string()
}

async fn withdrawal(m: &Member, trader_id: &str, amount: &str) -> Value {
    let (s, w) = m
        .post(
            "/v1/payments/withdrawals",
            json!({"traderId": trader_id, "kind": "bank_wire", "amount": amount, "currency": "USD"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    w
}

async fn status(m: &Member, list: &str, id: &str) -> String {
    let (s, page) = m.get(&format!("/v1/payments/{list}?limit=500")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id))
        .and_then(|r| r["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Seed for the shuffles: `LUMIRE_RACE_SEED` replays a run, otherwise the clock picks one.
fn seed() -> u64 {
    std::env::var("LUMIRE_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawal_approvals_succeed_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    funded(&owner, &t, "100.00", "0").await;
    let w = withdrawal(&owner, &t, "40").await;
    let id = w["id"].as_str().expect("id");
    let answers = race(same(
        &owner.client,
        "/v1/payments/withdrawals/approve",
        json!({"id": id}),
        N,
    ))
    .await;
    let won = one_winner("withdrawal approve", &answers);
    assert_eq!(won["status"], "approved", "{won}");
    let tenant = &owner.tenant_id;
    assert_eq!(events(&app, tenant, "withdrawal.approved", id).await, 1);
    assert_eq!(audits(&app, tenant, "withdrawal.approve", id).await, 1);
    // Still held once, and settles once.
    assert_eq!(
        wallet(&owner, &t).await,
        (Decimal::from(60), Decimal::from(40))
    );
    let answers = race(same(
        &owner.client,
        "/v1/payments/withdrawals/settle",
        json!({"id": id}),
        N,
    ))
    .await;
    one_winner("withdrawal settle", &answers);
    assert_eq!(events(&app, tenant, "withdrawal.settled", id).await, 1);
    assert_eq!(wallet(&owner, &t).await, (Decimal::from(60), Decimal::ZERO));
    ledger_ok(&app, tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deposit_approvals_succeed_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let id = deposit(&owner, &t, "100.00").await;
    let answers = race(same(
        &owner.client,
        "/v1/payments/deposits/approve",
        json!({"id": id}),
        N,
    ))
    .await;
    let won = one_winner("deposit approve", &answers);
    assert_eq!(won["status"], "approved", "{won}");
    let tenant = &owner.tenant_id;
    assert_eq!(events(&app, tenant, "deposit.approved", &id).await, 1);
    assert_eq!(audits(&app, tenant, "deposit.approve", &id).await, 1);
    let answers = race(same(
        &owner.client,
        "/v1/payments/deposits/settle",
        json!({"id": id}),
        N,
    ))
    .await;
    one_winner("deposit settle", &answers);
    assert_eq!(events(&app, tenant, "deposit.settled", &id).await, 1);
    assert_eq!(
        wallet(&owner, &t).await,
        (Decimal::from(100), Decimal::ZERO)
    );
    let answers = race(same(
        &owner.client,
        "/v1/payments/deposits/reverse",
        json!({"id": id, "reason": "chargeback"}),
        N,
    ))
    .await;
    one_winner("deposit reverse", &answers);
    assert_eq!(events(&app, tenant, "deposit.reversed", &id).await, 1);
    assert_eq!(wallet(&owner, &t).await, (Decimal::ZERO, Decimal::ZERO));
    ledger_ok(&app, tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deposit_rejections_succeed_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let id = deposit(&owner, &t, "100.00").await;
    let answers = race(same(
        &owner.client,
        "/v1/payments/deposits/reject",
        json!({"id": id, "reason": "fraud"}),
        N,
    ))
    .await;
    let won = one_winner("deposit reject", &answers);
    assert_eq!(won["status"], "rejected", "{won}");
    let tenant = &owner.tenant_id;
    assert_eq!(events(&app, tenant, "deposit.rejected", &id).await, 1);
    assert_eq!(audits(&app, tenant, "deposit.reject", &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_trader_suspensions_succeed_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let answers = race(same(
        &owner.client,
        &format!("/v1/traders/{t}/suspend"),
        json!({"reason": "chargeback under review"}),
        N,
    ))
    .await;
    let won = one_winner("trader suspend", &answers);
    assert_eq!(won["status"], "suspended", "{won}");
    let tenant = &owner.tenant_id;
    assert_eq!(events(&app, tenant, "trader.suspended", &t).await, 1);
    assert_eq!(audits(&app, tenant, "trader.suspended", &t).await, 1);
    let answers = race(same(
        &owner.client,
        &format!("/v1/traders/{t}/unsuspend"),
        json!({}),
        N,
    ))
    .await;
    let won = one_winner("trader unsuspend", &answers);
    assert_eq!(won["status"], "active", "{won}");
    assert_eq!(events(&app, tenant, "trader.unsuspended", &t).await, 1);
}

/// A ticket's status move happens once: requests that read the ticket before it moved get 409
/// `ticket_changed`, those that read it after find nothing to change (200, nothing recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ticket_status_moves_happen_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = trader(&owner).await;
    let (s, ticket) = owner
        .post(
            "/v1/support/tickets",
            json!({"traderId": t, "subject": "Card declined", "body": "Twice today."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().expect("ticket id");
    let requests = (0..N)
        .map(|_| {
            (
                owner.client.clone(),
                Method::PATCH,
                format!("/v1/support/tickets/{id}"),
                json!({"status": "resolved"}),
            )
        })
        .collect();
    for (s, b) in race(requests).await {
        match s {
            StatusCode::OK => assert_eq!(b["status"], "resolved", "{b}"),
            _ => assert_eq!(
                (s, b["code"].as_str()),
                (StatusCode::CONFLICT, Some("ticket_changed")),
                "{b}"
            ),
        }
    }
    let tenant = &owner.tenant_id;
    assert_eq!(events(&app, tenant, "ticket.updated", id).await, 1);
    assert_eq!(audits(&app, tenant, "ticket.update", id).await, 1);
}

/// Dual control: the first approval and the second each happen once, whoever sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_under_dual_control_succeed_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let first = app.member(&owner, &["finance"]).await;
    let second = app.member(&owner, &["finance"]).await;
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"dualControlThreshold": "10"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = trader(&owner).await;
    funded(&owner, &t, "100.00", "0").await;
    let w = withdrawal(&owner, &t, "50").await;
    assert_eq!(w["needsDualControl"], true, "{w}");
    let id = w["id"].as_str().expect("id");
    let answers = race(same(
        &first.client,
        "/v1/payments/withdrawals/approve",
        json!({"id": id}),
        N,
    ))
    .await;
    let won = one_winner("first approval", &answers);
    assert_eq!(won["status"], "awaiting_second_approval", "{won}");
    let tenant = &owner.tenant_id;
    assert_eq!(
        events(&app, tenant, "withdrawal.first_approved", id).await,
        1
    );
    assert_eq!(events(&app, tenant, "withdrawal.approved", id).await, 0);
    assert_eq!(audits(&app, tenant, "withdrawal.approve", id).await, 1);
    // The second approval, raced by a distinct approver, half of it mixed with the first
    // approver's (refused: the same person cannot approve twice).
    let mut requests = same(
        &second.client,
        "/v1/payments/withdrawals/approve",
        json!({"id": id}),
        N / 2,
    );
    requests.extend(same(
        &first.client,
        "/v1/payments/withdrawals/approve",
        json!({"id": id}),
        N / 2,
    ));
    let answers = race(requests).await;
    let won = one_winner("second approval", &answers);
    assert_eq!(
        (won["status"].as_str(), won["approvedBy"].as_str()),
        (Some("approved"), Some(second.user_id.as_str())),
        "{won}"
    );
    assert_eq!(events(&app, tenant, "withdrawal.approved", id).await, 1);
    assert_eq!(audits(&app, tenant, "withdrawal.approve", id).await, 2);
    assert_eq!(
        wallet(&owner, &t).await,
        (Decimal::from(50), Decimal::from(50))
    );
    ledger_ok(&app, tenant).await;
}

/// Tallies of one round: how many approvals and rejections were answered 2xx.
/// Sends `order` (approves and rejects, reason "fraud") on one deposit or withdrawal at once;
/// how many of each won. At most one of each, at least one in all, and each winner's event
/// written exactly once.
async fn approve_against_reject(
    app: &TestApp,
    tenant: &str,
    sender: &Member,
    flow: &str,
    id: &str,
    order: &[&str],
) -> (usize, usize) {
    let requests = order
        .iter()
        .map(|kind| {
            let body = if *kind == "approve" {
                json!({"id": id})
            } else {
                json!({"id": id, "reason": "fraud"})
            };
            (
                sender.client.clone(),
                Method::POST,
                format!("/v1/payments/{flow}/{kind}"),
                body,
            )
        })
        .collect();
    let answers = race(requests).await;
    let (approved, rejected) = tally(order, &answers);
    let context = format!("{flow} {id} {order:?}: {approved} approved, {rejected} rejected");
    assert!(
        approved <= 1 && rejected <= 1 && approved + rejected >= 1,
        "{context}"
    );
    let single = flow.trim_end_matches('s');
    for (what, n) in [("approved", approved), ("rejected", rejected)] {
        assert_eq!(
            events(app, tenant, &format!("{single}.{what}"), id).await,
            n as i64,
            "{context}"
        );
    }
    (approved, rejected)
}

fn tally(order: &[&str], answers: &[(StatusCode, Value)]) -> (usize, usize) {
    let mut won = (0, 0);
    for (kind, (s, b)) in order.iter().zip(answers) {
        if s.is_success() {
            if *kind == "approve" {
                won.0 += 1;
            } else {
                won.1 += 1;
            }
        } else {
            assert_eq!(*s, StatusCode::CONFLICT, "{kind}: {b}");
        }
    }
    won
}

/// Three approvals and three rejections of one deposit at once, in a shuffled order, over many
/// rounds. Approving then rejecting is a legal path (an approved deposit can still be
/// rejected), so both may win, once each; the state, the events and the wallet follow them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_approved_and_rejected_at_once_agree_with_the_winner() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let tenant = owner.tenant_id.clone();
    let t = trader(&owner).await;
    let seed = seed();
    let mut expected = Decimal::ZERO;
    for round in 0..ROUNDS {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(round));
        let mut order = [
            "approve", "approve", "approve", "reject", "reject", "reject",
        ];
        order.shuffle(&mut rng);
        println!("deposit round {round}: seed {seed}+{round}, order {order:?}");
        let id = deposit(&owner, &t, "10.00").await;
        let (approved, rejected) =
            approve_against_reject(&app, &tenant, &owner, "deposits", &id, &order).await;
        let context = format!(
            "round {round} (seed {seed}+{round}, {order:?}): {approved} approved, {rejected} rejected"
        );
        let state = status(&owner, "deposits", &id).await;
        let (s, b) = owner
            .post("/v1/payments/deposits/settle", json!({"id": id}))
            .await;
        if rejected == 1 {
            assert_eq!(state, "rejected", "{context}");
            assert_eq!(
                s,
                StatusCode::CONFLICT,
                "{context}: a rejected deposit settled: {b}"
            );
        } else {
            assert_eq!(state, "approved", "{context}");
            assert_eq!(s, StatusCode::OK, "{context}: {b}");
            expected += Decimal::from(10);
        }
        assert_eq!(
            wallet(&owner, &t).await,
            (expected, Decimal::ZERO),
            "{context}"
        );
    }
    ledger_ok(&app, &tenant).await;
}

/// Under dual control, after the first approval: three second approvals and three rejections
/// at once, shuffled, over many rounds. A rejection releases the hold exactly once and the
/// withdrawal can never settle after it; an approval that stands keeps its own hold, which
/// settles once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawals_approved_and_rejected_at_once_agree_with_the_winner() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let first = app.member(&owner, &["finance"]).await;
    let second = app.member(&owner, &["finance"]).await;
    let tenant = owner.tenant_id.clone();
    let (s, b) = owner
        .patch(
            "/v1/payments/settings",
            json!({"dualControlThreshold": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = trader(&owner).await;
    funded(&owner, &t, "1000.00", "0").await;
    // A bystander withdrawal keeps a hold of its own through every round: a hold released
    // twice, or a settlement against the wrong hold, shows in its share.
    let bystander = withdrawal(&owner, &t, "5").await;
    let mut available = Decimal::from(995);
    let held = Decimal::from(5);
    let seed = seed();
    for round in 0..ROUNDS {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(round));
        let mut order = [
            "approve", "approve", "approve", "reject", "reject", "reject",
        ];
        order.shuffle(&mut rng);
        println!("withdrawal round {round}: seed {seed}+{round}, order {order:?}");
        let w = withdrawal(&owner, &t, "10").await;
        let id = w["id"].as_str().expect("id").to_string();
        let (s, b) = first
            .post("/v1/payments/withdrawals/approve", json!({"id": id}))
            .await;
        assert_eq!(
            (s, b["status"].as_str()),
            (StatusCode::OK, Some("awaiting_second_approval")),
            "{b}"
        );
        let (approved, rejected) =
            approve_against_reject(&app, &tenant, &second, "withdrawals", &id, &order).await;
        let context = format!(
            "round {round} (seed {seed}+{round}, {order:?}): {approved} approved, {rejected} rejected"
        );
        let state = status(&owner, "withdrawals", &id).await;
        if rejected == 1 {
            assert_eq!(state, "rejected", "{context}");
            assert_eq!(
                wallet(&owner, &t).await,
                (available, held),
                "{context}: hold released once"
            );
        } else {
            assert_eq!(state, "approved", "{context}");
            assert_eq!(
                wallet(&owner, &t).await,
                (available - Decimal::from(10), held + Decimal::from(10)),
                "{context}: the approved withdrawal still holds its amount"
            );
        }
        let answers = race(same(
            &owner.client,
            "/v1/payments/withdrawals/settle",
            json!({"id": id}),
            3,
        ))
        .await;
        let settled = answers.iter().filter(|(s, _)| s.is_success()).count();
        for (s, b) in answers.iter().filter(|(s, _)| !s.is_success()) {
            assert_eq!(*s, StatusCode::CONFLICT, "{context}: {b}");
        }
        if rejected == 1 {
            assert_eq!(settled, 0, "{context}: a rejected withdrawal settled");
        } else {
            assert_eq!(settled, 1, "{context}");
            available -= Decimal::from(10);
        }
        assert_eq!(wallet(&owner, &t).await, (available, held), "{context}");
    }
    // The bystander's hold is intact: it can still be rejected, and releases exactly its amount.
    let (s, b) = owner
        .post(
            "/v1/payments/withdrawals/reject",
            json!({"id": bystander["id"], "reason": "done"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(wallet(&owner, &t).await, (available + held, Decimal::ZERO));
    ledger_ok(&app, &tenant).await;
}

/// Concurrent creations of one unique value: one wins; every other answer is a 409 that names
/// the field, whether the handler's own check or the database's unique index caught it.
#[tokio::test]
async fn concurrent_creations_of_one_email_make_one_trader_and_name_the_field() {
    let app = TestApp::spawn().await;
    let owner = Arc::new(app.register_owner().await);
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (owner, barrier) = (owner.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            owner
                .post("/v1/traders", json!({"email": "same@client.example"}))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                let named = b["code"] == "trader_email_taken"
                    || (b["code"] == "duplicate"
                        && b["errors"]
                            .as_array()
                            .is_some_and(|e| e.iter().any(|f| f["field"] == "email")));
                assert!(named, "{b}");
            }
            other => panic!("{other}: {b}"),
        }
    }
    assert_eq!(created, 1);
    let (_, list) = owner.get("/v1/traders?q=same@client.example").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}
