//! What deposits and withdrawals share: checking the parties, amounts and settlement figures,
//! list filters, and recording the movement in `transactions`.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::{SqlBuilder, Tx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::validate::{Validator, is_currency};
use crate::ledger::currency::parse_amount;
use crate::util::{new_id, now, parse_time};

/// Checks an amount field, recording a field error; returns the parsed value.
pub fn amount(
    v: &mut Validator,
    field: &str,
    value: Option<&str>,
    currency: &str,
) -> Option<Decimal> {
    v.required(field, value)?;
    // Untrimmed: " 10" is not an amount a client meant to send.
    match parse_amount(value.unwrap_or_default(), currency) {
        Ok(d) => Some(d),
        Err(msg) => {
            v.fail(field, msg);
            None
        }
    }
}

pub fn currency(v: &mut Validator, value: Option<&str>) -> Option<String> {
    let c = v.required("currency", value)?;
    if is_currency(c) {
        Some(c.to_string())
    } else {
        v.fail("currency", "must be an ISO 4217 code such as USD");
        None
    }
}

/// The trader must be a live trader of the tenant; the account and payment method, when given,
/// must be the trader's own. Each failure names its field.
pub async fn check_parties(
    tx: &mut Tx,
    tenant_id: &str,
    trader_id: &str,
    account_id: Option<&str>,
    method_id: Option<&str>,
) -> ApiResult<()> {
    let t: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM traders WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(trader_id)
    .fetch_optional(&mut **tx)
    .await?;
    if t.is_none() {
        return Err(ApiError::field(
            "traderId",
            "is not a trader of this tenant",
        ));
    }
    if let Some(a) = account_id {
        let found: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM trading_accounts WHERE tenant_id = $1 AND id = $2 AND trader_id = $3 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(a)
        .bind(trader_id)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
            return Err(ApiError::field(
                "accountId",
                "is not a trading account of this trader",
            ));
        }
    }
    if let Some(m) = method_id {
        let found: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM payment_methods WHERE tenant_id = $1 AND id = $2 AND trader_id = $3 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(m)
        .bind(trader_id)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
            return Err(ApiError::field(
                "paymentMethodId",
                "is not a payment method of this trader",
            ));
        }
    }
    Ok(())
}

/// The settlement figures of `POST .../settle`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettleBody {
    pub id: Option<String>,
    pub fee_amount: Option<String>,
    pub net_amount: Option<String>,
    pub settled_at: Option<String>,
    pub external_id: Option<String>,
    pub proof_url: Option<String>,
    pub notes: Option<String>,
}

pub struct Settlement {
    pub fee: Decimal,
    pub net: Decimal,
    pub settled_at: String,
}

/// Splits `gross` into fee and net. Either may be given; both must add up to the gross exactly
/// (no rounding happens here, so there is no residual to assign).
pub fn settlement(
    v: &mut Validator,
    b: &SettleBody,
    gross: Decimal,
    currency: &str,
) -> Option<Settlement> {
    let parse_opt = |v: &mut Validator,
                     field: &str,
                     s: Option<&str>,
                     allow_zero: bool|
     -> Option<Option<Decimal>> {
        match s {
            None => Some(None),
            Some("0") | Some("0.00") if allow_zero => Some(Some(Decimal::ZERO)),
            Some(s) => match parse_amount(s, currency) {
                Ok(d) => Some(Some(d)),
                Err(m) => {
                    v.fail(field, m);
                    None
                }
            },
        }
    };
    let fee = parse_opt(v, "feeAmount", b.fee_amount.as_deref(), true)?;
    let net = parse_opt(v, "netAmount", b.net_amount.as_deref(), false)?;
    let (fee, net) = match (fee, net) {
        (None, None) => (Decimal::ZERO, gross),
        (Some(f), None) => (f, gross - f),
        (None, Some(n)) => (gross - n, n),
        (Some(f), Some(n)) => (f, n),
    };
    if fee < Decimal::ZERO || net <= Decimal::ZERO || fee + net != gross {
        v.fail(
            "feeAmount",
            format!(
                "feeAmount + netAmount must equal the settled amount {gross} with a positive net"
            ),
        );
        return None;
    }
    let settled_at = match b.settled_at.as_deref() {
        Some(s) => match parse_time(s) {
            Some(t) => crate::util::fmt_time(t),
            None => {
                v.fail("settledAt", "must be an RFC 3339 time");
                return None;
            }
        },
        None => now(),
    };
    if let Some(u) = b.proof_url.as_deref() {
        v.check(
            url::Url::parse(u).is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http"),
            "proofUrl",
            "must be an http(s) URL",
        );
    }
    Some(Settlement {
        fee,
        net,
        settled_at,
    })
}

/// Records a completed movement in `transactions`, pointing at the ledger entry that made it.
pub struct Movement<'a> {
    pub tenant_id: &'a str,
    pub trader_id: &'a str,
    pub account_id: Option<&'a str>,
    pub kind: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    pub reference: &'a str,
    pub occurred_at: &'a str,
    pub metadata: Value,
}

pub async fn record_transaction(tx: &mut Tx, m: Movement<'_>) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO transactions (tenant_id, id, trader_id, account_id, kind, status, amount, currency, reference, description, occurred_at, metadata, created_at)
         VALUES ($1, $2, $3, $4, $5, 'completed', $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(m.tenant_id)
    .bind(&id)
    .bind(m.trader_id)
    .bind(m.account_id)
    .bind(m.kind)
    .bind(m.amount.to_string())
    .bind(m.currency)
    .bind(m.reference)
    .bind(format!("{} {}", m.kind, m.reference))
    .bind(m.occurred_at)
    .bind(m.metadata.to_string())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

pub async fn mark_transaction_reversed(tx: &mut Tx, tenant_id: &str, id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE transactions SET status = 'reversed' WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Filters shared by the deposit and withdrawal lists and exports.
pub fn list_filters(b: &mut SqlBuilder, q: &HashMap<String, String>) -> ApiResult<()> {
    for (param, column) in [
        ("traderId", "trader_id"),
        ("accountId", "account_id"),
        ("status", "status"),
        ("kind", "kind"),
        ("currency", "currency"),
    ] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            b.push(&format!(" AND {column} = ")).text(v.clone());
        }
    }
    if let Some(v) = q.get("reconciled").filter(|v| !v.is_empty()) {
        let flag = match v.as_str() {
            "true" => 1,
            "false" => 0,
            _ => return Err(ApiError::field("reconciled", "must be true or false")),
        };
        b.push(" AND reconciled = ").int(flag);
    }
    for (param, op) in [("from", ">="), ("to", "<")] {
        if let Some(v) = q.get(param).filter(|v| !v.is_empty()) {
            if parse_time(v).is_none() {
                return Err(ApiError::field(param, "must be an RFC 3339 time"));
            }
            b.push(&format!(" AND created_at {op} ")).text(v.clone());
        }
    }
    Ok(())
}

pub fn metadata_json(v: &mut Validator, m: Option<&Value>) -> String {
    match m {
        Some(m) if m.is_object() => m.to_string(),
        Some(_) => {
            v.fail("metadata", "must be an object");
            "{}".into()
        }
        None => json!({}).to_string(),
    }
}

/// Ids of a bulk request: 1-50 distinct ids.
pub fn bulk_ids(v: &mut Validator, ids: Option<&Vec<String>>) -> Vec<String> {
    let Some(ids) = ids else {
        v.fail("ids", "is required");
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    v.check(!out.is_empty() && out.len() <= 50, "ids", "1 to 50 ids");
    out
}
