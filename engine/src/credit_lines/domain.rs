//! The money side of credit lines: opening a line (and its ledger account), granting and
//! revoking. Shared by the HTTP handlers and by bonuses (which grant and claw back through
//! bonus lines). Everything runs inside the caller's transaction.
//!
//! Each line owns a ledger account `credit_line:<id>` (kind `trader_credit` or `trader_bonus`,
//! owner the trader, floor 0): its balance is what is outstanding. A grant moves money from the
//! house account of the line's kind (`house:credit` or `house:bonuses`) to the line; a revoke
//! moves it back. The floor means nothing can revoke more than is outstanding, even racing.

use rust_decimal::Decimal;
use serde_json::Value;

use super::model::{
    CreditLineRow, EntryView, LINE_SELECT, account_kind, house_for, load_entry, load_line,
};
use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger::{self, AccountSpec, LedgerError, Line, NewEntry};
use crate::util::{new_id, now};

pub struct NewLine<'a> {
    pub trader_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub kind: &'a str,
    pub currency: &'a str,
    pub limit: Option<Decimal>,
    pub terms: Option<&'a str>,
    pub metadata: String,
}

/// The trader's live line of this kind and currency, if any.
pub async fn live_line(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: &str,
    currency: &str,
    kind: &str,
) -> ApiResult<Option<CreditLineRow>> {
    Ok(sqlx::query_as(&format!(
        "{LINE_SELECT}$1 AND cl.trader_id = $2 AND cl.currency = $3 AND cl.kind = $4 AND cl.deleted_at IS NULL"
    ))
    .bind(tenant_id)
    .bind(trader_id)
    .bind(currency)
    .bind(kind)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Inserts a line and opens its ledger account. `None` when the trader already has a live line
/// of this kind and currency: the row is claimed first (`ON CONFLICT DO NOTHING` on the
/// live-line unique index), so a racing request waits for the other and then sees its line
/// instead of failing the whole transaction, and no account is opened for a line that lost.
pub async fn open_line(
    tx: &mut Tx,
    actor: &Actor,
    l: NewLine<'_>,
) -> ApiResult<Option<CreditLineRow>> {
    let tenant = &actor.tenant_id;
    let id = new_id();
    let ts = now();
    let claimed = sqlx::query(
        "INSERT INTO credit_lines (tenant_id, id, trader_id, customer_id, kind, currency, credit_limit, terms, metadata, ledger_account_id, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $11, $11) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&id)
    .bind(l.trader_id)
    .bind(l.customer_id)
    .bind(l.kind)
    .bind(l.currency)
    .bind(l.limit.map(|d| d.to_string()))
    .bind(l.terms)
    .bind(&l.metadata)
    .bind(actor.user_id.as_deref())
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    if claimed.rows_affected() == 0 {
        return Ok(None);
    }
    let code = format!("credit_line:{id}");
    let account = ledger::open_account(
        tx,
        tenant,
        AccountSpec {
            code: &code,
            kind: account_kind(l.kind),
            owner_type: Some("trader"),
            owner_id: Some(l.trader_id),
            currency: l.currency,
            floor: Some(Decimal::ZERO),
        },
    )
    .await?;
    sqlx::query("UPDATE credit_lines SET ledger_account_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(&id)
        .bind(&account.id)
        .execute(&mut **tx)
        .await?;
    load_line(&mut **tx, tenant, &id).await.map(Some)
}

/// One grant or revoke.
pub struct Movement<'a> {
    pub amount: Decimal,
    /// manual, bonus or clawback.
    pub source: &'a str,
    /// The journal entry kind (`credit_grant`, `bonus_issue`, ...).
    pub ledger_kind: &'a str,
    pub reason: Option<&'a str>,
    pub bonus_issuance_id: Option<&'a str>,
}

fn live(line: &CreditLineRow) -> ApiResult<()> {
    if line.deleted_at.is_some() {
        return Err(ApiError::conflict(
            "credit_line_deleted",
            "This credit line has been deleted.",
        ));
    }
    Ok(())
}

/// Lends `m.amount` to the trader on this line. The limit is checked against the balance the
/// ledger computed on the locked account row, so racing grants cannot pass it together.
pub async fn grant(
    tx: &mut Tx,
    actor: &Actor,
    line: &CreditLineRow,
    m: Movement<'_>,
) -> ApiResult<EntryView> {
    live(line)?;
    let tenant = &actor.tenant_id;
    let house = ledger::house_account(tx, tenant, house_for(&line.kind), &line.currency).await?;
    let posted = ledger::post(
        tx,
        tenant,
        NewEntry {
            kind: m.ledger_kind.to_string(),
            description: Some(format!("credit line {} grant", line.id)),
            reference_type: Some("credit_line".into()),
            reference_id: Some(line.id.clone()),
            created_by: actor.user_id.clone(),
            reverses_entry_id: None,
            lines: vec![
                Line {
                    account_id: line.ledger_account_id.clone(),
                    currency: line.currency.clone(),
                    amount: m.amount,
                },
                Line {
                    account_id: house.id,
                    currency: line.currency.clone(),
                    amount: -m.amount,
                },
            ],
        },
    )
    .await?;
    still_live(tx, tenant, line).await?;
    let after = balance_after(&posted, &line.ledger_account_id)?;
    if let Some(limit) = line.limit()?
        && after > limit
    {
        let before = after - m.amount;
        return Err(ApiError::conflict(
            "credit_limit_exceeded",
            format!(
                "amount {} {} would exceed the line's limit {limit}: {before} is outstanding, {} available.",
                m.amount,
                line.currency,
                limit - before
            ),
        ));
    }
    record_entry(tx, tenant, actor, line, "grant", &m, after, &posted.id).await
}

/// Takes `m.amount` back from the trader. More than is outstanding is 409
/// `revoke_exceeds_outstanding`. With `reverse_of`, the movement is posted as the ledger reversal
/// of that entry (a full bonus clawback) instead of a new entry.
pub async fn revoke(
    tx: &mut Tx,
    actor: &Actor,
    line: &CreditLineRow,
    m: Movement<'_>,
    reverse_of: Option<&str>,
) -> ApiResult<EntryView> {
    live(line)?;
    let tenant = &actor.tenant_id;
    let exceeds = |outstanding: Decimal| {
        ApiError::conflict(
            "revoke_exceeds_outstanding",
            format!(
                "amount {} {} exceeds the outstanding {outstanding}.",
                m.amount, line.currency
            ),
        )
    };
    let current = ledger::account(&mut **tx, tenant, &line.ledger_account_id).await?;
    if m.amount > current.balance {
        return Err(exceeds(current.balance));
    }
    let posted = match reverse_of {
        Some(entry_id) => {
            ledger::reverse(
                tx,
                tenant,
                entry_id,
                m.ledger_kind,
                actor.user_id.as_deref(),
            )
            .await
        }
        None => {
            let house =
                ledger::house_account(tx, tenant, house_for(&line.kind), &line.currency).await?;
            ledger::post(
                tx,
                tenant,
                NewEntry {
                    kind: m.ledger_kind.to_string(),
                    description: Some(format!("credit line {} revoke", line.id)),
                    reference_type: Some("credit_line".into()),
                    reference_id: Some(line.id.clone()),
                    created_by: actor.user_id.clone(),
                    reverses_entry_id: None,
                    lines: vec![
                        Line {
                            account_id: line.ledger_account_id.clone(),
                            currency: line.currency.clone(),
                            amount: -m.amount,
                        },
                        Line {
                            account_id: house.id,
                            currency: line.currency.clone(),
                            amount: m.amount,
                        },
                    ],
                },
            )
            .await
        }
    }
    .map_err(|e| match e {
        // A racing revoke took the money between the check and the locked post.
        LedgerError::InsufficientFunds(_) => exceeds(current.balance),
        other => other.into(),
    })?;
    still_live(tx, tenant, line).await?;
    let after = balance_after(&posted, &line.ledger_account_id)?;
    record_entry(tx, tenant, actor, line, "revoke", &m, after, &posted.id).await
}

/// Re-reads the line after its account row is locked by the posting: a delete that committed
/// while this movement waited for the lock is seen here, so nothing moves on a deleted line.
async fn still_live(tx: &mut Tx, tenant: &str, line: &CreditLineRow) -> ApiResult<()> {
    live(&load_line(&mut **tx, tenant, &line.id).await?)
}

/// Locks a line's account row (PostgreSQL; SQLite write transactions are exclusive already) and
/// returns what is outstanding, for a delete that must not race a grant.
pub async fn lock_outstanding(
    tx: &mut Tx,
    tenant: &str,
    line: &CreditLineRow,
) -> ApiResult<Decimal> {
    let lock = if tx.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    let (balance,): (String,) = sqlx::query_as(&format!(
        "SELECT balance FROM ledger_accounts WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(&line.ledger_account_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(ledger::dec(&balance)?)
}

fn balance_after(posted: &ledger::PostedEntry, account_id: &str) -> ApiResult<Decimal> {
    posted
        .postings
        .iter()
        .find(|p| p.account_id == account_id)
        .map(|p| p.balance_after)
        .ok_or_else(|| ApiError::internal("credit line account missing from its entry"))
}

#[allow(clippy::too_many_arguments)]
async fn record_entry(
    tx: &mut Tx,
    tenant: &str,
    actor: &Actor,
    line: &CreditLineRow,
    kind: &str,
    m: &Movement<'_>,
    after: Decimal,
    ledger_entry_id: &str,
) -> ApiResult<EntryView> {
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO credit_line_entries (tenant_id, id, credit_line_id, kind, source, amount, currency, outstanding_after, ledger_entry_id, bonus_issuance_id, reason, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&line.id)
    .bind(kind)
    .bind(m.source)
    .bind(m.amount.to_string())
    .bind(&line.currency)
    .bind(after.to_string())
    .bind(ledger_entry_id)
    .bind(m.bonus_issuance_id)
    .bind(m.reason)
    .bind(actor.user_id.as_deref())
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE credit_lines SET updated_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(&line.id)
        .bind(&ts)
        .execute(&mut **tx)
        .await?;
    load_entry(&mut **tx, tenant, &id).await
}

pub fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
