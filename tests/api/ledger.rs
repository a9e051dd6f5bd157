//! The ledger's guarantees, exercised against the real database (SQLite or PostgreSQL).

use lumire_engine::db::Db;
use lumire_engine::ledger::{self, House, LedgerError, Line, NewEntry};
use lumire_tests::TestApp;
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn entry(kind: &str, lines: Vec<(&str, &str, Decimal)>) -> NewEntry {
    NewEntry {
        kind: kind.into(),
        lines: lines
            .into_iter()
            .map(|(a, c, amount)| Line {
                account_id: a.into(),
                currency: c.into(),
                amount,
            })
            .collect(),
        ..NewEntry::default()
    }
}

async fn setup(db: &Db, tenant: &str, trader: &str) -> (String, String) {
    let mut tx = db.begin().await.unwrap();
    let cash = ledger::house_account(&mut tx, tenant, House::Cash, "USD")
        .await
        .unwrap();
    let wallet = ledger::trader_wallet(&mut tx, tenant, trader, "USD")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (cash.id, wallet.id)
}

async fn transfer(
    db: &Db,
    tenant: &str,
    from: &str,
    to: &str,
    amount: Decimal,
) -> Result<String, LedgerError> {
    let mut tx = db.begin().await?;
    let posted = ledger::post(
        &mut tx,
        tenant,
        entry(
            "transfer",
            vec![(from, "USD", -amount), (to, "USD", amount)],
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(posted.id)
}

#[tokio::test]
async fn balanced_entries_floors_reversal_and_history() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = owner.tenant_id.as_str();
    let (cash, wallet) = setup(&app.db, t, "trader-1").await;
    let dep = transfer(&app.db, t, &cash, &wallet, d("100.50"))
        .await
        .unwrap();
    let after_deposit = lumire_tests::instant_between_writes().await;
    assert_eq!(
        ledger::account(app.db.pool(), t, &wallet)
            .await
            .unwrap()
            .balance,
        d("100.50")
    );
    // A withdrawal beyond the balance is refused and changes nothing.
    let err = transfer(&app.db, t, &wallet, &cash, d("100.51"))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InsufficientFunds(_)), "{err}");
    assert_eq!(
        ledger::account(app.db.pool(), t, &wallet)
            .await
            .unwrap()
            .balance,
        d("100.50")
    );
    // Unbalanced, zero, over-precise and cross-currency entries are refused.
    let mut tx = app.db.begin().await.unwrap();
    for (bad, want) in [
        (
            entry("x", vec![(&cash, "USD", d("-1")), (&wallet, "USD", d("2"))]),
            "balance",
        ),
        (
            entry("x", vec![(&cash, "USD", d("0")), (&wallet, "USD", d("0"))]),
            "zero",
        ),
        (
            entry(
                "x",
                vec![(&cash, "USD", d("-0.001")), (&wallet, "USD", d("0.001"))],
            ),
            "decimal places",
        ),
        (
            entry("x", vec![(&cash, "EUR", d("-1")), (&wallet, "EUR", d("1"))]),
            "currency",
        ),
        (entry("x", vec![(&wallet, "USD", d("1"))]), "two postings"),
    ] {
        let e = ledger::post(&mut tx, t, bad).await.unwrap_err();
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }
    drop(tx);
    // Reversal undoes an entry exactly once.
    transfer(&app.db, t, &wallet, &cash, d("40")).await.unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let err = ledger::reverse(&mut tx, t, &dep, "reversal", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::InsufficientFunds(_)),
        "the wallet no longer holds the deposit: {err}"
    );
    drop(tx);
    transfer(&app.db, t, &cash, &wallet, d("40")).await.unwrap();
    let mut tx = app.db.begin().await.unwrap();
    ledger::reverse(&mut tx, t, &dep, "reversal", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let err = ledger::reverse(&mut tx, t, &dep, "reversal", None)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::AlreadyReversed), "{err}");
    drop(tx);
    assert_eq!(
        ledger::account(app.db.pool(), t, &wallet)
            .await
            .unwrap()
            .balance,
        d("0")
    );
    // History: the balance as it stood just after the deposit.
    assert_eq!(
        ledger::balance_as_of(app.db.pool(), t, &wallet, &after_deposit)
            .await
            .unwrap(),
        d("100.50")
    );
    assert_eq!(
        ledger::balance_as_of(app.db.pool(), t, &wallet, "2000-01-01T00:00:00.000Z")
            .await
            .unwrap(),
        d("0")
    );
    let report = ledger::verify(app.db.pool(), t).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    // Another tenant cannot post against these accounts.
    let other = app.register_owner().await;
    let err = transfer(&app.db, &other.tenant_id, &cash, &wallet, d("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::UnknownAccount(_)), "{err}");
}

#[tokio::test]
async fn racing_withdrawals_never_overdraw() {
    let app = TestApp::spawn_with(|s| s.db_max_connections = 8).await;
    let owner = app.register_owner().await;
    let t = owner.tenant_id.clone();
    let (cash, wallet) = setup(&app.db, &t, "trader-race").await;
    transfer(&app.db, &t, &cash, &wallet, d("100"))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..25 {
        let (db, t, cash, wallet) = (app.db.clone(), t.clone(), cash.clone(), wallet.clone());
        handles.push(tokio::spawn(async move {
            transfer(&db, &t, &wallet, &cash, d("10")).await
        }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(LedgerError::InsufficientFunds(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 10, "exactly the covered withdrawals succeed");
    assert_eq!(
        ledger::account(app.db.pool(), &t, &wallet)
            .await
            .unwrap()
            .balance,
        d("0")
    );
    assert!(ledger::verify(app.db.pool(), &t).await.unwrap().ok());
}

/// A seeded, reproducible random walk of transfers: afterwards every invariant holds.
#[tokio::test]
async fn randomized_transfers_keep_every_invariant() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = owner.tenant_id.as_str();
    let mut accounts = Vec::new();
    let mut tx = app.db.begin().await.unwrap();
    accounts.push(
        ledger::house_account(&mut tx, t, House::Cash, "USD")
            .await
            .unwrap()
            .id,
    );
    accounts.push(
        ledger::house_account(&mut tx, t, House::Fees, "USD")
            .await
            .unwrap()
            .id,
    );
    for i in 0..6 {
        accounts.push(
            ledger::trader_wallet(&mut tx, t, &format!("tr-{i}"), "USD")
                .await
                .unwrap()
                .id,
        );
    }
    tx.commit().await.unwrap();
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let (mut posted, mut refused) = (0, 0);
    for _ in 0..2000 {
        let from = accounts[(next() % accounts.len() as u64) as usize].clone();
        let to = accounts[(next() % accounts.len() as u64) as usize].clone();
        if from == to {
            continue;
        }
        let amount = Decimal::new((next() % 50_000 + 1) as i64, 2);
        match transfer(&app.db, t, &from, &to, amount).await {
            Ok(_) => posted += 1,
            Err(LedgerError::InsufficientFunds(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        posted > 500 && refused > 0,
        "posted {posted}, refused {refused}"
    );
    let report = ledger::verify(app.db.pool(), t).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let mut total = Decimal::ZERO;
    for a in &accounts {
        total += ledger::account(app.db.pool(), t, a).await.unwrap().balance;
    }
    assert_eq!(total, Decimal::ZERO, "money is neither created nor lost");
}

/// Cash and fees are spread over stripes; their balance is the sum of the stripes, and every
/// invariant still holds.
#[tokio::test]
async fn busy_house_accounts_are_striped_and_still_add_up() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let t = owner.tenant_id.as_str();
    let mut total = Decimal::ZERO;
    let mut cash_ids = std::collections::HashSet::new();
    for i in 1..=40 {
        let (cash, wallet) = setup(&app.db, t, "tr-stripes").await;
        cash_ids.insert(cash.clone());
        let amount = Decimal::new(i * 100, 2);
        transfer(&app.db, t, &cash, &wallet, amount).await.unwrap();
        total += amount;
    }
    assert!(cash_ids.len() > 1, "postings spread over several stripes");
    assert!(cash_ids.len() <= ledger::HOUSE_STRIPES as usize);
    let cash = ledger::house_balance(app.db.pool(), t, House::Cash, "USD")
        .await
        .unwrap();
    assert_eq!(cash, -total);
    // Unstriped house accounts keep one row.
    let mut tx = app.db.begin().await.unwrap();
    let a = ledger::house_account(&mut tx, t, House::Credit, "USD")
        .await
        .unwrap();
    let b = ledger::house_account(&mut tx, t, House::Credit, "USD")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((a.id, a.code.as_str()), (b.id, "house:credit"));
    let report = ledger::verify(app.db.pool(), t).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
