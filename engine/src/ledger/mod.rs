//! The double-entry ledger: the only way money moves in the engine.
//!
//! An entry is a set of postings whose amounts sum to zero per currency (positive = the account
//! gains, negative = it gives). Entries are append-only; a correction is a reversing entry, and
//! an entry can be reversed once (a unique index
//! enforces it even under concurrency). Each account keeps a maintained balance, updated in the same
//! transaction as its postings and always equal to their sum (`verify` proves it). An account
//! with a floor (customer wallets: 0) can never be posted below it: the check runs on the locked
//! row (`FOR UPDATE` on PostgreSQL; SQLite write transactions are exclusive via `BEGIN
//! IMMEDIATE`), and the update is guarded by a version number, so two withdrawals racing for the
//! same funds can never both pass.
//!
//! Callers (payments, and plugins through the host API) pass the tenant from their own
//! authenticated context; every statement is scoped by it.

pub mod currency;
mod verify;

pub use verify::{VerifyReport, verify};

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::db::Tx;
use crate::util::{new_id, now};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry needs at least two postings")]
    TooFewLines,
    #[error("posting amounts must not be zero")]
    ZeroAmount,
    #[error("postings in {0} do not balance")]
    Unbalanced(String),
    #[error("account {0} is in another currency than its posting")]
    CurrencyMismatch(String),
    #[error("{currency} amounts have at most {scale} decimal places")]
    Precision { currency: String, scale: u32 },
    #[error("ledger account {0} not found")]
    UnknownAccount(String),
    #[error("insufficient funds in ledger account {0}")]
    InsufficientFunds(String),
    #[error("journal entry not found")]
    EntryNotFound,
    #[error("journal entry already reversed")]
    AlreadyReversed,
    #[error("concurrent update of ledger account {0}")]
    Concurrent(String),
    #[error("stored amount is not a decimal: {0}")]
    Corrupt(String),
    /// A posting of 10^15 units or more, or a balance or sum beyond what the ledger keeps.
    #[error("amount out of range in ledger account {0}")]
    OutOfRange(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type LedgerResult<T> = Result<T, LedgerError>;

/// Integer digits a maintained balance may reach: far beyond any business, far inside
/// `Decimal`'s range, so no sum the ledger makes can overflow.
pub const MAX_BALANCE_DIGITS: u32 = 20;

fn in_range(d: Decimal, digits: u32) -> bool {
    d.abs() < Decimal::from_i128_with_scale(10i128.pow(digits), 0)
}

/// The house accounts every tenant has, one per currency, created on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum House {
    /// Money held at payment providers and banks (the other side of deposits and withdrawals).
    Cash,
    Fees,
    Bonuses,
    Commissions,
    Payouts,
    Suspense,
    Fx,
    Credit,
}

/// Sub-accounts ("stripes") of the busiest house accounts. Every settlement touches cash and
/// fees; with one row each, concurrent settlements would queue on its row lock whatever the
/// spread of traders. A posting picks one stripe at random, so contention drops by this factor.
/// A house account's balance is the sum over its stripes ([`house_balance`]); stripes have no
/// floor, so splitting them changes no invariant.
pub const HOUSE_STRIPES: u32 = 8;

impl House {
    /// Whether postings to this house account are spread over [`HOUSE_STRIPES`] rows.
    pub fn striped(self) -> bool {
        matches!(self, House::Cash | House::Fees)
    }

    pub fn code(self) -> &'static str {
        match self {
            House::Cash => "house:cash",
            House::Fees => "house:fees",
            House::Bonuses => "house:bonuses",
            House::Commissions => "house:commissions",
            House::Payouts => "house:payouts",
            House::Suspense => "house:suspense",
            House::Fx => "house:fx",
            House::Credit => "house:credit",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerAccount {
    pub id: String,
    pub code: String,
    pub kind: String,
    pub owner_type: Option<String>,
    pub owner_id: Option<String>,
    pub currency: String,
    pub floor: Option<Decimal>,
    pub balance: Decimal,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    code: String,
    kind: String,
    owner_type: Option<String>,
    owner_id: Option<String>,
    currency: String,
    floor_amount: Option<String>,
    balance: String,
    version: i64,
}

const ACCOUNT_COLUMNS: &str =
    "id, code, kind, owner_type, owner_id, currency, floor_amount, balance, version";

pub fn dec(s: &str) -> LedgerResult<Decimal> {
    Decimal::from_str(s).map_err(|_| LedgerError::Corrupt(s.to_string()))
}

impl AccountRow {
    fn into_account(self) -> LedgerResult<LedgerAccount> {
        Ok(LedgerAccount {
            floor: self.floor_amount.as_deref().map(dec).transpose()?,
            balance: dec(&self.balance)?,
            id: self.id,
            code: self.code,
            kind: self.kind,
            owner_type: self.owner_type,
            owner_id: self.owner_id,
            currency: self.currency,
        })
    }
}

/// What an account is for; the code is unique per tenant and currency.
pub struct AccountSpec<'a> {
    pub code: &'a str,
    pub kind: &'a str,
    pub owner_type: Option<&'a str>,
    pub owner_id: Option<&'a str>,
    pub currency: &'a str,
    pub floor: Option<Decimal>,
}

/// Returns the account with this code and currency, creating it on first use.
pub async fn open_account(
    tx: &mut Tx,
    tenant_id: &str,
    spec: AccountSpec<'_>,
) -> LedgerResult<LedgerAccount> {
    sqlx::query(
        "INSERT INTO ledger_accounts (tenant_id, id, code, kind, owner_type, owner_id, currency, floor_amount, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(spec.code)
    .bind(spec.kind)
    .bind(spec.owner_type)
    .bind(spec.owner_id)
    .bind(spec.currency)
    .bind(spec.floor.map(|f| f.to_string()))
    .bind(now())
    .execute(&mut **tx)
    .await?;
    let row: AccountRow = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 AND code = $2 AND currency = $3"
    ))
    .bind(tenant_id)
    .bind(spec.code)
    .bind(spec.currency)
    .fetch_one(&mut **tx)
    .await?;
    row.into_account()
}

pub async fn house_account(
    tx: &mut Tx,
    tenant_id: &str,
    house: House,
    currency: &str,
) -> LedgerResult<LedgerAccount> {
    // Stripe 0 keeps the plain code, so an unstriped history reads the same.
    let stripe = if house.striped() {
        rand::random::<u32>() % HOUSE_STRIPES
    } else {
        0
    };
    let code = match stripe {
        0 => house.code().to_string(),
        n => format!("{}#{n}", house.code()),
    };
    open_account(
        tx,
        tenant_id,
        AccountSpec {
            code: &code,
            kind: "house",
            owner_type: None,
            owner_id: None,
            currency,
            floor: None,
        },
    )
    .await
}

/// A house account's balance in one currency: the sum over its stripes.
pub async fn house_balance<'e, E>(
    exec: E,
    tenant_id: &str,
    house: House,
    currency: &str,
) -> LedgerResult<Decimal>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT balance FROM ledger_accounts WHERE tenant_id = $1 AND currency = $2 AND kind = 'house'
           AND (code = $3 OR code LIKE $4)",
    )
    .bind(tenant_id)
    .bind(currency)
    .bind(house.code())
    .bind(format!("{}#%", house.code()))
    .fetch_all(exec)
    .await?;
    rows.iter().try_fold(Decimal::ZERO, |acc, (b,)| {
        acc.checked_add(dec(b)?)
            .ok_or_else(|| LedgerError::OutOfRange(house.code().to_string()))
    })
}

/// A trader's wallet in one currency; it cannot go below zero.
pub async fn trader_wallet(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: &str,
    currency: &str,
) -> LedgerResult<LedgerAccount> {
    let code = format!("trader:{trader_id}:wallet");
    open_account(
        tx,
        tenant_id,
        AccountSpec {
            code: &code,
            kind: "trader_wallet",
            owner_type: Some("trader"),
            owner_id: Some(trader_id),
            currency,
            floor: Some(Decimal::ZERO),
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct Line {
    pub account_id: String,
    pub currency: String,
    pub amount: Decimal,
}

#[derive(Clone, Debug, Default)]
pub struct NewEntry {
    pub kind: String,
    pub description: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<String>,
    pub created_by: Option<String>,
    /// Set only by `reverse`: the entry this one undoes (unique, so an entry is undone once).
    pub reverses_entry_id: Option<String>,
    pub lines: Vec<Line>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedEntry {
    pub id: String,
    pub kind: String,
    pub created_at: String,
    pub postings: Vec<PostedLine>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedLine {
    pub account_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub balance_after: Decimal,
}

fn check_shape(entry: &NewEntry) -> LedgerResult<()> {
    if entry.lines.len() < 2 {
        return Err(LedgerError::TooFewLines);
    }
    let mut sums: BTreeMap<&str, Decimal> = BTreeMap::new();
    for l in &entry.lines {
        if l.amount.is_zero() {
            return Err(LedgerError::ZeroAmount);
        }
        if !in_range(l.amount, crate::money::MAX_INTEGER_DIGITS as u32) {
            return Err(LedgerError::OutOfRange(l.account_id.clone()));
        }
        let scale = currency::precision(&l.currency);
        if l.amount.normalize().scale() > scale {
            return Err(LedgerError::Precision {
                currency: l.currency.clone(),
                scale,
            });
        }
        let sum = sums.entry(&l.currency).or_default();
        *sum = sum
            .checked_add(l.amount)
            .ok_or_else(|| LedgerError::OutOfRange(l.account_id.clone()))?;
    }
    if let Some((cur, _)) = sums.iter().find(|(_, s)| !s.is_zero()) {
        return Err(LedgerError::Unbalanced((*cur).to_string()));
    }
    Ok(())
}

/// Posts a balanced entry inside the caller's transaction (begun with `Db::begin`).
pub async fn post(tx: &mut Tx, tenant_id: &str, entry: NewEntry) -> LedgerResult<PostedEntry> {
    check_shape(&entry)?;
    let lock = if tx.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    // Lock every touched account in id order, so concurrent entries cannot deadlock.
    let mut ids: Vec<&str> = entry.lines.iter().map(|l| l.account_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut accounts: BTreeMap<String, (LedgerAccount, i64)> = BTreeMap::new();
    for id in ids {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 AND id = $2{lock}"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let row = row.ok_or_else(|| LedgerError::UnknownAccount(id.to_string()))?;
        let version = row.version;
        accounts.insert(id.to_string(), (row.into_account()?, version));
    }
    for l in &entry.lines {
        let (acc, _) = &accounts[&l.account_id];
        if acc.currency != l.currency {
            return Err(LedgerError::CurrencyMismatch(acc.id.clone()));
        }
    }
    let entry_id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO journal_entries (tenant_id, id, kind, description, reference_type, reference_id, reverses_entry_id, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant_id)
    .bind(&entry_id)
    .bind(&entry.kind)
    .bind(&entry.description)
    .bind(&entry.reference_type)
    .bind(&entry.reference_id)
    .bind(&entry.reverses_entry_id)
    .bind(&entry.created_by)
    .bind(&ts)
    .execute(&mut **tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => LedgerError::AlreadyReversed,
        other => other.into(),
    })?;
    insert_postings(tx, tenant_id, &entry_id, &ts, &entry.lines, &mut accounts)
        .await
        .map(|postings| PostedEntry {
            id: entry_id,
            kind: entry.kind,
            created_at: ts,
            postings,
        })
}

async fn insert_postings(
    tx: &mut Tx,
    tenant_id: &str,
    entry_id: &str,
    ts: &str,
    lines: &[Line],
    accounts: &mut BTreeMap<String, (LedgerAccount, i64)>,
) -> LedgerResult<Vec<PostedLine>> {
    let mut out = Vec::with_capacity(lines.len());
    // Each account's next history position starts after its locked version.
    let mut seqs: BTreeMap<String, i64> = accounts
        .iter()
        .map(|(id, (_, version))| (id.clone(), *version))
        .collect();
    for l in lines {
        let Some((acc, _)) = accounts.get_mut(&l.account_id) else {
            return Err(LedgerError::UnknownAccount(l.account_id.clone()));
        };
        let after = acc
            .balance
            .checked_add(l.amount)
            .filter(|b| in_range(*b, MAX_BALANCE_DIGITS))
            .ok_or_else(|| LedgerError::OutOfRange(acc.id.clone()))?;
        if acc.floor.is_some_and(|floor| after < floor) {
            return Err(LedgerError::InsufficientFunds(acc.id.clone()));
        }
        acc.balance = after;
        let seq = seqs.entry(l.account_id.clone()).or_default();
        *seq += 1;
        sqlx::query(
            "INSERT INTO postings (tenant_id, id, entry_id, account_id, currency, amount, balance_after, seq, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant_id)
        .bind(new_id())
        .bind(entry_id)
        .bind(&l.account_id)
        .bind(&l.currency)
        .bind(l.amount.to_string())
        .bind(after.to_string())
        .bind(*seq)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
        out.push(PostedLine {
            account_id: l.account_id.clone(),
            currency: l.currency.clone(),
            amount: l.amount,
            balance_after: after,
        });
    }
    for (id, (acc, version)) in accounts.iter() {
        let new_version = seqs.get(id).copied().unwrap_or(*version);
        let r = sqlx::query(
            "UPDATE ledger_accounts SET balance = $3, version = $5 WHERE tenant_id = $1 AND id = $2 AND version = $4",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(acc.balance.to_string())
        .bind(version)
        .bind(new_version)
        .execute(&mut **tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(LedgerError::Concurrent(id.clone()));
        }
    }
    Ok(out)
}

/// Posts the mirror image of an entry. An entry can be reversed once; floors still apply.
pub async fn reverse(
    tx: &mut Tx,
    tenant_id: &str,
    entry_id: &str,
    kind: &str,
    created_by: Option<&str>,
) -> LedgerResult<PostedEntry> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM journal_entries WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(entry_id)
            .fetch_optional(&mut **tx)
            .await?;
    if found.is_none() {
        return Err(LedgerError::EntryNotFound);
    }
    let already: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM journal_entries WHERE tenant_id = $1 AND reverses_entry_id = $2",
    )
    .bind(tenant_id)
    .bind(entry_id)
    .fetch_optional(&mut **tx)
    .await?;
    if already.is_some() {
        return Err(LedgerError::AlreadyReversed);
    }
    let lines: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT account_id, currency, amount FROM postings WHERE tenant_id = $1 AND entry_id = $2 ORDER BY account_id, seq",
    )
    .bind(tenant_id)
    .bind(entry_id)
    .fetch_all(&mut **tx)
    .await?;
    let lines = lines
        .into_iter()
        .map(|(account_id, currency, amount)| {
            Ok(Line {
                account_id,
                currency,
                amount: -dec(&amount)?,
            })
        })
        .collect::<LedgerResult<Vec<_>>>()?;
    post(
        tx,
        tenant_id,
        NewEntry {
            kind: kind.to_string(),
            description: Some(format!("reversal of {entry_id}")),
            reference_type: Some("journal_entry".into()),
            reference_id: Some(entry_id.to_string()),
            created_by: created_by.map(str::to_string),
            reverses_entry_id: Some(entry_id.to_string()),
            lines,
        },
    )
    .await
}

pub async fn account<'e, E>(
    exec: E,
    tenant_id: &str,
    account_id: &str,
) -> LedgerResult<LedgerAccount>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(account_id)
    .fetch_optional(exec)
    .await?;
    row.ok_or_else(|| LedgerError::UnknownAccount(account_id.to_string()))?
        .into_account()
}

/// The balance of an account as it stood at `at` (RFC 3339): the running balance of its last
/// posting at or before that time.
pub async fn balance_as_of<'e, E>(
    exec: E,
    tenant_id: &str,
    account_id: &str,
    at: &str,
) -> LedgerResult<Decimal>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT balance_after FROM postings WHERE tenant_id = $1 AND account_id = $2 AND created_at <= $3
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(account_id)
    .bind(at)
    .fetch_optional(exec)
    .await?;
    row.map(|(b,)| dec(&b)).unwrap_or(Ok(Decimal::ZERO))
}
