//! Transaction rows, their API view, the kinds and statuses, and the list/export filters.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::db::SqlBuilder;
use crate::http::error::ApiResult;
use crate::http::validate::Validator;
use crate::util::{fmt_time, parse_json, parse_time};

/// Every kind moves money one fixed way, so `amount` is always positive and never needs a sign
/// to be read correctly. Kinds that can go either way come as a pair.
pub const KINDS: &[(&str, Direction)] = &[
    ("deposit", Direction::Credit),
    ("withdrawal", Direction::Debit),
    ("transfer_in", Direction::Credit),
    ("transfer_out", Direction::Debit),
    ("bonus", Direction::Credit),
    ("bonus_removal", Direction::Debit),
    ("commission", Direction::Debit),
    ("rebate", Direction::Credit),
    ("fee", Direction::Debit),
    ("profit", Direction::Credit),
    ("loss", Direction::Debit),
    ("adjustment_credit", Direction::Credit),
    ("adjustment_debit", Direction::Debit),
];

/// A transaction is a record of money that moved (or tried to) elsewhere, possibly imported
/// after the fact, so any of these may be recorded directly.
pub const STATUSES: &[&str] = &["pending", "completed", "failed", "cancelled", "reversed"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Credit,
    Debit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Credit => "credit",
            Direction::Debit => "debit",
        }
    }
}

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub fn direction_of(kind: &str) -> Option<Direction> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, d)| *d)
}

#[derive(sqlx::FromRow, Clone)]
pub struct TransactionRow {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub kind: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub occurred_at: String,
    pub metadata: String,
    pub created_at: String,
}

pub const TRANSACTION_COLUMNS: &str = "id, trader_id, account_id, kind, status, amount, currency, reference, description, external_id, occurred_at, metadata, created_at";

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TransactionView {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub kind: String,
    /// `credit` (money to the trader) or `debit`, derived from the kind.
    pub direction: &'static str,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub occurred_at: String,
    pub metadata: Value,
    pub created_at: String,
}

impl From<TransactionRow> for TransactionView {
    fn from(r: TransactionRow) -> Self {
        TransactionView {
            direction: direction_of(&r.kind).map(Direction::as_str).unwrap_or(""),
            metadata: parse_json(&r.metadata),
            id: r.id,
            trader_id: r.trader_id,
            account_id: r.account_id,
            kind: r.kind,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            reference: r.reference,
            description: r.description,
            external_id: r.external_id,
            occurred_at: r.occurred_at,
            created_at: r.created_at,
        }
    }
}

pub fn view_json(v: &TransactionView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The filters shared by the list and the CSV export, validated once.
#[derive(Clone, Default)]
pub struct Filters {
    equals: Vec<(&'static str, String)>,
    from: Option<String>,
    to: Option<String>,
}

impl Filters {
    pub fn parse(q: &HashMap<String, String>) -> ApiResult<Filters> {
        let param = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let mut v = Validator::new();
        v.one_of("kind", param("kind"), &kind_names());
        v.one_of("status", param("status"), STATUSES);
        let mut f = Filters::default();
        for (name, column) in [
            ("traderId", "trader_id"),
            ("accountId", "account_id"),
            ("kind", "kind"),
            ("status", "status"),
            ("currency", "currency"),
            ("externalId", "external_id"),
        ] {
            if let Some(value) = param(name) {
                f.equals.push((column, value.to_string()));
            }
        }
        // Stored times are normalised UTC text, so bounds are normalised the same way before
        // they are compared as text.
        let mut time = |name: &str| match param(name) {
            Some(s) => match parse_time(s) {
                Some(t) => Some(fmt_time(t)),
                None => {
                    v.fail(
                        name,
                        "must be an RFC 3339 time such as 2026-05-23T12:00:00Z",
                    );
                    None
                }
            },
            None => None,
        };
        f.from = time("from");
        f.to = time("to");
        v.finish()?;
        Ok(f)
    }

    /// A statement selecting the tenant's transactions that pass the filters; the caller adds
    /// the keyset condition, order and limit.
    pub fn select(&self, tenant_id: &str) -> SqlBuilder {
        let mut b = SqlBuilder::new(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE tenant_id = "
        ));
        b.text(tenant_id);
        for (column, value) in &self.equals {
            b.push(&format!(" AND {column} = ")).text(value.clone());
        }
        if let Some(from) = &self.from {
            b.push(" AND occurred_at >= ").text(from.clone());
        }
        if let Some(to) = &self.to {
            b.push(" AND occurred_at < ").text(to.clone());
        }
        b
    }
}

/// The newest transactions of one trader.
pub async fn recent_for_trader<'e, E>(
    exec: E,
    tenant_id: &str,
    trader_id: &str,
    limit: i64,
) -> ApiResult<Vec<TransactionView>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // The limit is written into the statement so that PostgreSQL keeps one plan for it
    // (`SqlBuilder::limit`).
    let rows: Vec<TransactionRow> = sqlx::query_as(&format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE tenant_id = $1 AND trader_id = $2
         ORDER BY id DESC LIMIT {limit}"
    ))
    .bind(tenant_id)
    .bind(trader_id)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(TransactionView::from).collect())
}
