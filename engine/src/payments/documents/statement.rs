//! `GET /v1/payments/traders/{traderId}/statement.pdf?month=YYYY-MM`: a trader's monthly
//! statement (the current month, to date, when `month` is omitted). One section per ledger
//! account the trader owns (wallet, amounts held for withdrawals, ...) and currency: the opening
//! balance, every posting of the month with its running balance, and the closing balance. The
//! figures are read from the postings themselves, so opening + movements = closing always, and
//! the closing balance is what the balances endpoint reports for the end of the month.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use super::{brand, client_name, date_of, pdf_response};
use crate::app::AppState;
use crate::auth::Actor;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger;
use crate::pdf::{Column, Document};
use crate::util::{fmt_time, now};

#[derive(sqlx::FromRow)]
struct Movement {
    created_at: String,
    amount: String,
    balance_after: String,
    kind: String,
    reference_type: Option<String>,
    reference_id: Option<String>,
}

/// `[start, end)` of the month `YYYY-MM`, in UTC.
fn month_bounds(month: &str) -> Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    Some((at(first), at(next)))
}

fn account_label(kind: &str) -> String {
    match kind {
        "trader_wallet" => "Wallet".into(),
        "withdrawal_hold" => "Held for pending withdrawals".into(),
        "trader_credit" => "Credit line".into(),
        "bonus" | "trader_bonus" => "Bonus credit".into(),
        other => {
            let s = other.replace('_', " ");
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// What a journal entry was, in a client's words.
fn entry_label(kind: &str) -> String {
    match kind {
        "deposit" => "Deposit".into(),
        "deposit_reversal" => "Deposit reversed".into(),
        "withdrawal_hold" => "Withdrawal requested".into(),
        "withdrawal_release" => "Withdrawal cancelled".into(),
        "withdrawal" => "Withdrawal paid".into(),
        "credit_grant" => "Credit granted".into(),
        "credit_revoke" => "Credit revoked".into(),
        "bonus_grant" | "bonus_issue" => "Bonus granted".into(),
        "bonus_revoke" => "Bonus revoked".into(),
        "bonus_clawback" => "Bonus clawed back".into(),
        other => account_label(other),
    }
}

fn describe(m: &Movement) -> String {
    let what = entry_label(&m.kind);
    match (&m.reference_type, &m.reference_id) {
        (Some(t), Some(id)) if t != "journal_entry" => format!("{what} {id}"),
        _ => what,
    }
}

pub async fn get(
    State(st): State<AppState>,
    actor: Actor,
    Path(trader_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let trader = crate::traders::load(st.db.pool(), &actor.tenant_id, &trader_id).await?;
    let month = q
        .get("month")
        .cloned()
        .unwrap_or_else(|| Utc::now().format("%Y-%m").to_string());
    let (start, end) = month_bounds(&month)
        .ok_or_else(|| ApiError::field("month", "must be a month as YYYY-MM"))?;
    // From the tenant's first month to the current one: there is nothing before or after.
    let (created,): (String,) = sqlx::query_as("SELECT created_at FROM tenants WHERE id = $1")
        .bind(&actor.tenant_id)
        .fetch_one(st.db.pool())
        .await?;
    let first = created.get(..7).unwrap_or_default();
    let current = Utc::now().format("%Y-%m").to_string();
    if month.as_str() < first || month > current {
        return Err(ApiError::field(
            "month",
            format!("must be a month from {first} (the tenant's first) to {current}"),
        ));
    }
    let (start_s, end_s) = (fmt_time(start), fmt_time(end));
    let accounts: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, kind, currency FROM ledger_accounts
         WHERE tenant_id = $1 AND owner_type = 'trader' AND owner_id = $2 ORDER BY currency, kind",
    )
    .bind(&actor.tenant_id)
    .bind(&trader_id)
    .fetch_all(st.db.pool())
    .await?;
    let b = brand(st.db.pool(), &actor.tenant_id).await?;
    let name = client_name(
        trader.first_name.as_deref(),
        trader.last_name.as_deref(),
        &trader.email,
    );
    let mut doc = Document::new("Account statement", &b.name, b.color.as_deref(), &month);
    doc.heading(&format!("Statement for {month}"));
    doc.fields(&[
        ("Client", name),
        ("E-mail", trader.email.clone()),
        ("Client id", trader_id.clone()),
        (
            "Period",
            format!(
                "{} to {} (UTC)",
                date_of(&start_s),
                date_of(&fmt_time(end - chrono::Duration::days(1)))
            ),
        ),
    ]);
    let last_day = date_of(&fmt_time(end - chrono::Duration::days(1)));
    let mut summary: Vec<(Vec<String>, bool)> = Vec::new();
    for (account_id, kind, currency) in &accounts {
        let opening: Option<(String,)> = sqlx::query_as(
            "SELECT balance_after FROM postings WHERE tenant_id = $1 AND account_id = $2 AND created_at < $3
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(&actor.tenant_id)
        .bind(account_id)
        .bind(&start_s)
        .fetch_optional(st.db.pool())
        .await?;
        let opening = match opening {
            Some((b,)) => ledger::dec(&b)?,
            None => Decimal::ZERO,
        };
        let moves: Vec<Movement> = sqlx::query_as(
            "SELECT p.created_at, p.amount, p.balance_after, j.kind, j.reference_type, j.reference_id
             FROM postings p JOIN journal_entries j ON j.tenant_id = p.tenant_id AND j.id = p.entry_id
             WHERE p.tenant_id = $1 AND p.account_id = $2 AND p.created_at >= $3 AND p.created_at < $4
             ORDER BY p.seq",
        )
        .bind(&actor.tenant_id)
        .bind(account_id)
        .bind(&start_s)
        .bind(&end_s)
        .fetch_all(st.db.pool())
        .await?;
        if moves.is_empty() && opening.is_zero() {
            continue;
        }
        let places = ledger::currency::precision(currency);
        let money = |d: Decimal| {
            let mut d = d;
            d.rescale(places);
            format!("{d} {currency}")
        };
        let (mut balance, mut credits, mut debits) = (opening, Decimal::ZERO, Decimal::ZERO);
        let mut rows = vec![(
            vec![
                date_of(&start_s),
                "Opening balance".into(),
                String::new(),
                money(opening),
            ],
            true,
        )];
        for m in &moves {
            let amount = ledger::dec(&m.amount)?;
            balance += amount;
            if amount.is_sign_negative() {
                debits += amount;
            } else {
                credits += amount;
            }
            if ledger::dec(&m.balance_after)? != balance {
                tracing::error!(
                    account_id,
                    "statement: running balance disagrees with postings"
                );
            }
            rows.push((
                vec![
                    date_of(&m.created_at),
                    describe(m),
                    money(amount),
                    money(balance),
                ],
                false,
            ));
        }
        rows.push((
            vec![
                last_day.clone(),
                "Closing balance".into(),
                String::new(),
                money(balance),
            ],
            true,
        ));
        doc.heading(&format!("{} - {currency}", account_label(kind)));
        doc.table(
            &[
                Column::left("Date", 1.1),
                Column::left("Description", 4.0),
                Column::right("Amount", 1.5),
                Column::right("Balance", 1.5),
            ],
            &rows,
        );
        summary.push((
            vec![
                format!("{} ({currency})", account_label(kind)),
                money(opening),
                money(credits),
                money(debits),
                money(balance),
            ],
            false,
        ));
    }
    doc.heading("Summary");
    if summary.is_empty() {
        doc.paragraph("No balances and no movements in this period.");
    } else {
        doc.table(
            &[
                Column::left("Account", 3.0),
                Column::right("Opening", 1.3),
                Column::right("Money in", 1.3),
                Column::right("Money out", 1.3),
                Column::right("Closing", 1.3),
            ],
            &summary,
        );
    }
    doc.paragraph("Balances are computed from the ledger postings of each account; times are UTC.");
    Ok(pdf_response(
        doc.finish(&now()),
        &format!("statement-{trader_id}-{month}.pdf"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_exact_bounds() {
        let (s, e) = month_bounds("2026-12").unwrap();
        assert_eq!(fmt_time(s)[..10], *"2026-12-01");
        assert_eq!(fmt_time(e)[..10], *"2027-01-01");
        for bad in ["2026-13", "2026-1", "26-01", "x", "2026-00"] {
            assert!(month_bounds(bad).is_none(), "{bad}");
        }
    }
}
