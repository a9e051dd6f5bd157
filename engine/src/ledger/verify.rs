//! Proves the ledger's invariants for a tenant: every account's maintained balance equals the sum
//! of its postings, every running balance is consistent, every entry balances per currency, and
//! no account sits below its floor.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{LedgerResult, dec};

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub accounts: usize,
    pub postings: usize,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub async fn verify(pool: &sqlx::AnyPool, tenant_id: &str) -> LedgerResult<VerifyReport> {
    let mut report = VerifyReport::default();
    let accounts: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, balance, floor_amount FROM ledger_accounts WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    report.accounts = accounts.len();
    let postings: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT entry_id, account_id, currency, amount, balance_after FROM postings WHERE tenant_id = $1 ORDER BY account_id, seq",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    report.postings = postings.len();
    let mut running: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut per_entry: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (entry, account, currency, amount, after) in postings {
        let amount = dec(&amount)?;
        let bal = running.entry(account.clone()).or_default();
        let Some(next) = bal.checked_add(amount) else {
            report
                .problems
                .push(format!("account {account}: running balance overflows"));
            continue;
        };
        *bal = next;
        if *bal != dec(&after)? {
            report.problems.push(format!(
                "account {account}: running balance {bal} but posting says {after}"
            ));
        }
        let sum = per_entry.entry((entry, currency)).or_default();
        *sum = sum.checked_add(amount).unwrap_or(Decimal::MAX);
    }
    for ((entry, currency), sum) in per_entry {
        if !sum.is_zero() {
            report
                .problems
                .push(format!("entry {entry}: {currency} postings sum to {sum}"));
        }
    }
    for (id, balance, floor) in accounts {
        let balance = dec(&balance)?;
        let summed = running.get(&id).copied().unwrap_or_default();
        if balance != summed {
            report.problems.push(format!(
                "account {id}: balance {balance} but postings sum to {summed}"
            ));
        }
        if let Some(floor) = floor.as_deref().map(dec).transpose()?
            && balance < floor
        {
            report.problems.push(format!(
                "account {id}: balance {balance} below floor {floor}"
            ));
        }
    }
    // A corrupted ledger could produce one line per posting; the first ones tell the story.
    report.problems.truncate(100);
    Ok(report)
}
