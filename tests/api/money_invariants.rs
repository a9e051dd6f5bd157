//! A seeded, reproducible random walk through the money operations over HTTP (deposits,
//! approvals, settlements with fees, rejections, reversals, withdrawals, credit-line grants and
//! revokes, and the bonuses a rule issues on settlement and claws back on reversal). Every response
//! must be the one a simple model of the balances predicts (201/200 when the funds cover it,
//! 409 when they do not), and at the end every currency's postings sum to zero, no balance is
//! below its floor, every maintained balance equals the sum of its postings, and the balances
//! endpoint reports exactly what the model expects.
//!
//! `LUMIRE_TEST_SEED` picks the seed (default 7) and `LUMIRE_TEST_OPS` the number of
//! operations (default 2400).

use std::collections::HashMap;

use lumire_tests::{Member, TestApp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// An amount in cents between `lo` and `hi`.
    fn cents(&mut self, lo: i64, hi: i64) -> Decimal {
        Decimal::new(lo + (self.next() % (hi - lo + 1) as u64) as i64, 2)
    }
}

#[derive(Default)]
struct Wallet {
    available: Decimal,
    held: Decimal,
    credit: Decimal,
    bonus: Decimal,
    credit_line: String,
}

const CREDIT_LIMIT: i64 = 1000;

struct Deposit {
    id: String,
    trader: usize,
    status: &'static str,
    net: Decimal,
    bonus: Decimal,
}

/// The walk's bonus rule: 10 % of the settled gross, rounded down to the cent, at most 20.00,
/// for deposits of at least 50.00.
fn expected_bonus(gross: Decimal) -> Decimal {
    if gross < Decimal::new(50, 0) {
        return Decimal::ZERO;
    }
    (gross * Decimal::new(10, 2))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)
        .min(Decimal::new(20, 0))
}

struct Withdrawal {
    id: String,
    trader: usize,
    status: &'static str,
    amount: Decimal,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pick<T>(rng: &mut Rng, items: &[T], want: impl Fn(&T) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..items.len()).filter(|&i| want(&items[i])).collect();
    (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())])
}

async fn expect(
    m: &Member,
    path: &str,
    body: serde_json::Value,
    want: StatusCode,
) -> serde_json::Value {
    let (s, b) = m.post(path, body.clone()).await;
    assert_eq!(s, want, "{path} {body} -> {b}");
    b
}

#[tokio::test]
async fn random_money_operations_keep_every_invariant() {
    let seed = env_or("LUMIRE_TEST_SEED", 7);
    let ops = env_or("LUMIRE_TEST_OPS", 2400);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let mut traders = Vec::new();
    for i in 0..6 {
        let (s, t) = owner
            .post(
                "/v1/traders",
                json!({"email": format!("walk{i}@client.example")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        traders.push(t["id"].as_str().unwrap().to_string());
    }
    let mut wallets: Vec<Wallet> = (0..traders.len()).map(|_| Wallet::default()).collect();
    for (i, t) in traders.iter().enumerate() {
        let l = expect(
            &owner,
            "/v1/credit-lines",
            json!({"traderId": t, "currency": "USD", "limit": format!("{CREDIT_LIMIT}.00")}),
            StatusCode::CREATED,
        )
        .await;
        wallets[i].credit_line = l["id"].as_str().unwrap().to_string();
    }
    expect(&owner, "/v1/bonuses", json!({"name": "Walk bonus", "trigger": "deposit", "kind": "percent", "value": "10", "maxBonus": "20.00", "minDeposit": "50.00", "currency": "USD"}), StatusCode::CREATED).await;
    let mut deposits: Vec<Deposit> = Vec::new();
    let mut withdrawals: Vec<Withdrawal> = Vec::new();
    let mut counts: HashMap<&str, u64> = HashMap::new();

    for _ in 0..ops {
        let op = rng.below(12);
        match op {
            0 | 1 => {
                let t = rng.below(traders.len());
                let amount = rng.cents(100, 50_000);
                let d = expect(&owner, "/v1/payments/deposits", json!({"traderId": traders[t], "kind": "bank_wire", "amount": amount.to_string(), "currency": "USD"}), StatusCode::CREATED).await;
                deposits.push(Deposit {
                    id: d["id"].as_str().unwrap().into(),
                    trader: t,
                    status: "pending",
                    net: amount,
                    bonus: Decimal::ZERO,
                });
                *counts.entry("deposit.create").or_default() += 1;
            }
            2 => {
                if let Some(i) = pick(&mut rng, &deposits, |d| d.status == "pending") {
                    expect(
                        &owner,
                        "/v1/payments/deposits/approve",
                        json!({"id": deposits[i].id}),
                        StatusCode::OK,
                    )
                    .await;
                    deposits[i].status = "approved";
                    *counts.entry("deposit.approve").or_default() += 1;
                }
            }
            3 => {
                if let Some(i) = pick(&mut rng, &deposits, |d| d.status == "approved") {
                    // A fee of up to 5 % of the gross.
                    let fee = (deposits[i].net * Decimal::new(rng.below(6) as i64, 2)).round_dp(2);
                    expect(
                        &owner,
                        "/v1/payments/deposits/settle",
                        json!({"id": deposits[i].id, "feeAmount": fee.to_string()}),
                        StatusCode::OK,
                    )
                    .await;
                    deposits[i].bonus = expected_bonus(deposits[i].net);
                    wallets[deposits[i].trader].bonus += deposits[i].bonus;
                    deposits[i].net -= fee;
                    deposits[i].status = "settled";
                    wallets[deposits[i].trader].available += deposits[i].net;
                    *counts.entry("deposit.settle").or_default() += 1;
                }
            }
            4 => {
                // Rejecting, or reversing a settled deposit (409 when the wallet no longer
                // holds its net); an illegal transition sometimes, which must be 409.
                if let Some(i) = pick(&mut rng, &deposits, |_| true) {
                    let d = &mut deposits[i];
                    match d.status {
                        "pending" | "approved" => {
                            expect(
                                &owner,
                                "/v1/payments/deposits/reject",
                                json!({"id": d.id, "reason": "walk"}),
                                StatusCode::OK,
                            )
                            .await;
                            d.status = "rejected";
                        }
                        "settled" => {
                            let w = &mut wallets[d.trader];
                            if w.available >= d.net {
                                expect(
                                    &owner,
                                    "/v1/payments/deposits/reverse",
                                    json!({"id": d.id, "reason": "chargeback"}),
                                    StatusCode::OK,
                                )
                                .await;
                                w.available -= d.net;
                                // The bonus line holds at least this deposit's bonus, so the
                                // clawback is whole.
                                w.bonus -= d.bonus;
                                d.status = "reversed";
                            } else {
                                expect(
                                    &owner,
                                    "/v1/payments/deposits/reverse",
                                    json!({"id": d.id, "reason": "chargeback"}),
                                    StatusCode::CONFLICT,
                                )
                                .await;
                            }
                        }
                        _ => {
                            expect(
                                &owner,
                                "/v1/payments/deposits/approve",
                                json!({"id": d.id}),
                                StatusCode::CONFLICT,
                            )
                            .await;
                        }
                    }
                    *counts.entry("deposit.reject_reverse").or_default() += 1;
                }
            }
            5 | 6 => {
                let t = rng.below(traders.len());
                let amount = rng.cents(100, 40_000);
                let w = &mut wallets[t];
                let body = json!({"traderId": traders[t], "kind": "bank_wire", "amount": amount.to_string(), "currency": "USD"});
                if w.available >= amount {
                    let r = expect(
                        &owner,
                        "/v1/payments/withdrawals",
                        body,
                        StatusCode::CREATED,
                    )
                    .await;
                    w.available -= amount;
                    w.held += amount;
                    withdrawals.push(Withdrawal {
                        id: r["id"].as_str().unwrap().into(),
                        trader: t,
                        status: "pending",
                        amount,
                    });
                } else {
                    expect(
                        &owner,
                        "/v1/payments/withdrawals",
                        body,
                        StatusCode::CONFLICT,
                    )
                    .await;
                }
                *counts.entry("withdrawal.create").or_default() += 1;
            }
            7 => {
                if let Some(i) = pick(&mut rng, &withdrawals, |w| w.status == "pending") {
                    expect(
                        &owner,
                        "/v1/payments/withdrawals/approve",
                        json!({"id": withdrawals[i].id}),
                        StatusCode::OK,
                    )
                    .await;
                    withdrawals[i].status = "approved";
                    *counts.entry("withdrawal.approve").or_default() += 1;
                }
            }
            8 => {
                if let Some(i) = pick(&mut rng, &withdrawals, |w| w.status == "approved") {
                    expect(
                        &owner,
                        "/v1/payments/withdrawals/settle",
                        json!({"id": withdrawals[i].id}),
                        StatusCode::OK,
                    )
                    .await;
                    withdrawals[i].status = "settled";
                    wallets[withdrawals[i].trader].held -= withdrawals[i].amount;
                    *counts.entry("withdrawal.settle").or_default() += 1;
                }
            }
            10 => {
                // A credit grant: refused (409) when it would pass the line's limit.
                let t = rng.below(traders.len());
                let amount = rng.cents(100, 40_000);
                let w = &mut wallets[t];
                let path = format!("/v1/credit-lines/{}/grant", w.credit_line);
                let body = json!({"amount": amount.to_string()});
                if w.credit + amount <= Decimal::new(CREDIT_LIMIT, 0) {
                    expect(&owner, &path, body, StatusCode::CREATED).await;
                    w.credit += amount;
                } else {
                    expect(&owner, &path, body, StatusCode::CONFLICT).await;
                }
                *counts.entry("credit.grant").or_default() += 1;
            }
            11 => {
                // A revoke: refused (409) above what is outstanding.
                let t = rng.below(traders.len());
                let amount = rng.cents(100, 40_000);
                let w = &mut wallets[t];
                let path = format!("/v1/credit-lines/{}/revoke", w.credit_line);
                let body = json!({"amount": amount.to_string()});
                if amount <= w.credit {
                    expect(&owner, &path, body, StatusCode::CREATED).await;
                    w.credit -= amount;
                } else {
                    expect(&owner, &path, body, StatusCode::CONFLICT).await;
                }
                *counts.entry("credit.revoke").or_default() += 1;
            }
            _ => {
                if let Some(i) = pick(&mut rng, &withdrawals, |w| {
                    w.status == "pending" || w.status == "approved"
                }) {
                    let w = &mut withdrawals[i];
                    expect(
                        &owner,
                        "/v1/payments/withdrawals/reject",
                        json!({"id": w.id, "reason": "walk"}),
                        StatusCode::OK,
                    )
                    .await;
                    w.status = "rejected";
                    let wallet = &mut wallets[w.trader];
                    wallet.held -= w.amount;
                    wallet.available += w.amount;
                    *counts.entry("withdrawal.reject").or_default() += 1;
                }
            }
        }
    }

    // The ledger's own check: entries balance per currency, maintained balances equal their
    // postings, no account below its floor.
    let report = lumire_engine::ledger::verify(app.db.pool(), &owner.tenant_id)
        .await
        .unwrap();
    assert!(report.ok(), "seed {seed}: {:?}", report.problems);
    let negative = app
        .count(
            "SELECT COUNT(*) FROM ledger_accounts WHERE tenant_id = $1 AND floor_amount IS NOT NULL AND CAST(balance AS NUMERIC) < CAST(floor_amount AS NUMERIC)",
            &owner.tenant_id,
        )
        .await;
    assert_eq!(negative, 0, "seed {seed}");
    // Every currency's postings sum to zero.
    let sums: Vec<(String, String)> =
        sqlx::query_as("SELECT currency, amount FROM postings WHERE tenant_id = $1")
            .bind(&owner.tenant_id)
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    let mut per: HashMap<String, Decimal> = HashMap::new();
    for (c, a) in sums {
        *per.entry(c).or_default() += a.parse::<Decimal>().unwrap();
    }
    assert!(per.values().all(Decimal::is_zero), "seed {seed}: {per:?}");
    // What the API reports is what the model expects, trader by trader.
    for (i, t) in traders.iter().enumerate() {
        let (s, b) = owner
            .get(&format!("/v1/payments/traders/{t}/balances"))
            .await;
        assert_eq!(s, StatusCode::OK);
        let usd = b["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["currency"] == "USD");
        let field = |k: &str| {
            usd.and_then(|u| u[k].as_str())
                .map(|v| v.parse::<Decimal>().unwrap())
                .unwrap_or_default()
        };
        let w = &wallets[i];
        assert_eq!(
            (
                field("available"),
                field("held"),
                field("credit"),
                field("bonus")
            ),
            (w.available, w.held, w.credit, w.bonus),
            "seed {seed}, trader {i}: {b}"
        );
    }
    assert!(
        wallets.iter().any(|w| !w.bonus.is_zero()),
        "bonuses were issued"
    );
    let total: u64 = counts.values().sum();
    assert!(total >= ops / 2, "the walk did real work: {counts:?}");
    for k in [
        "deposit.settle",
        "withdrawal.settle",
        "withdrawal.reject",
        "deposit.reject_reverse",
        "credit.grant",
        "credit.revoke",
    ] {
        assert!(
            counts.get(k).copied().unwrap_or(0) > 0,
            "{k} never ran: {counts:?}"
        );
    }
}

/// The amounts that once overflowed `Decimal` (and panicked in the ledger, in bonus
/// evaluation and in reconciliation) are refused at the edge, naming the field; the largest
/// amounts accepted settle, earn their bonus and reconcile.
#[tokio::test]
async fn amounts_have_bounds_and_the_largest_ones_still_add_up() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (_, t) = owner
        .post("/v1/traders", json!({"email": "whale@client.example"}))
        .await;
    let trader = t["id"].as_str().unwrap().to_string();
    let deposit = |amount: &str| json!({"traderId": trader, "kind": "bank_wire", "amount": amount, "currency": "USD"});
    for bad in [
        "39600000000000000000000000000",
        "79228162514264337593543950335",
        "1000000000000000",
        " 10",
        "00010",
        "1e3",
    ] {
        let (s, b) = owner.post("/v1/payments/deposits", deposit(bad)).await;
        lumire_tests::assert_field_error(s, &b, "amount");
    }
    let (_, list) = owner.get("/v1/payments/deposits").await;
    assert_eq!(list["data"], json!([]), "nothing written: {list}");

    // A 1000 % bonus rule (the most a rule may pay) on the largest deposit would post a bonus
    // beyond the ledger's bound: the settlement is refused whole (422), nothing written.
    let (s, rule) = owner
        .post(
            "/v1/bonuses",
            json!({"name": "Whale", "trigger": "deposit", "kind": "percent", "value": "1000", "currency": "USD", "active": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rule}");
    let (s, b) = owner
        .post(
            "/v1/bonuses",
            json!({"name": "Too much", "trigger": "deposit", "kind": "percent", "value": "1000.01", "currency": "USD", "active": true}),
        )
        .await;
    lumire_tests::assert_field_error(s, &b, "value");
    let first = expect(
        &owner,
        "/v1/payments/deposits",
        deposit("999999999999999.99"),
        StatusCode::CREATED,
    )
    .await;
    expect(
        &owner,
        "/v1/payments/deposits/approve",
        json!({"id": first["id"]}),
        StatusCode::OK,
    )
    .await;
    let b = expect(
        &owner,
        "/v1/payments/deposits/settle",
        json!({"id": first["id"]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(b["code"], "amount_out_of_range", "{b}");
    let (_, list) = owner.get("/v1/payments/deposits").await;
    let d = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == first["id"])
        .cloned()
        .unwrap();
    assert_eq!(d["status"], "approved", "{d}");
    // A 100 % rule instead: three of the largest deposits settle and earn their bonus.
    let (s, r) = owner
        .patch(
            &format!("/v1/bonuses/{}", rule["id"].as_str().unwrap()),
            json!({"value": "100"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    expect(
        &owner,
        "/v1/payments/deposits/settle",
        json!({"id": first["id"]}),
        StatusCode::OK,
    )
    .await;
    for _ in 0..2 {
        let b = expect(
            &owner,
            "/v1/payments/deposits",
            deposit("999999999999999.99"),
            StatusCode::CREATED,
        )
        .await;
        expect(
            &owner,
            "/v1/payments/deposits/approve",
            json!({"id": b["id"]}),
            StatusCode::OK,
        )
        .await;
        expect(
            &owner,
            "/v1/payments/deposits/settle",
            json!({"id": b["id"]}),
            StatusCode::OK,
        )
        .await;
    }
    let (s, r) = owner.get("/v1/payments/reconciliation").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, w) = owner
        .get(&format!("/v1/payments/traders/{trader}/balances"))
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert!(w.to_string().contains("2999999999999999.97"), "{w}");
}
