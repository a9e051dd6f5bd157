//! Issuing bonuses when a deposit settles (and on replay) and clawing them back when the deposit
//! is reversed. Runs inside the payment's own transaction.
//!
//! Bonus money is credit, not cash: an issuance is a grant on the trader's bonus credit line in
//! the deposit's currency (opened on first use), from `house:bonuses`. It never touches the
//! wallet, so it cannot be withdrawn.
//!
//! The amount: `fixed` pays `value`; `percent` pays `base × value / 100` rounded DOWN to the
//! currency's precision (the house keeps the residual), where `base` is the amount that actually
//! settled (gross, before fees). `maxBonus` caps it; below `minDeposit` the rule does not apply.
//! A (tenant, rule, deposit) unique key makes each rule pay a deposit at most once.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use serde_json::json;

use super::rules::{RuleRow, active_deposit_rules, stored};
use crate::audit;
use crate::auth::Actor;
use crate::credit_lines::domain::{self as credit, Movement, NewLine, to_json};
use crate::credit_lines::model::{CreditLineRow, KIND_BONUS, load_line};
use crate::db::Tx;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::ledger::currency::precision;
use crate::util::{new_id, now};

#[derive(sqlx::FromRow)]
pub struct DepositFacts {
    pub id: String,
    pub trader_id: String,
    pub currency: String,
    pub status: String,
    pub amount: String,
    pub settled_amount: Option<String>,
    pub settled_at: Option<String>,
}

pub async fn load_deposit(tx: &mut Tx, tenant_id: &str, id: &str) -> ApiResult<DepositFacts> {
    let row: Option<DepositFacts> = sqlx::query_as(
        "SELECT id, trader_id, currency, status, amount, settled_amount, settled_at FROM deposits WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.ok_or(ApiError::NotFound("deposit"))
}

#[derive(sqlx::FromRow, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct IssuanceView {
    pub id: String,
    pub rule_id: String,
    pub deposit_id: String,
    pub trader_id: String,
    pub credit_line_id: Option<String>,
    pub currency: String,
    pub deposit_amount: String,
    pub amount: String,
    pub status: String,
    pub source: String,
    pub ledger_entry_id: Option<String>,
    pub credit_entry_id: Option<String>,
    pub clawback_entry_id: Option<String>,
    pub clawed_back_amount: Option<String>,
    pub shortfall: Option<String>,
    pub clawed_back_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
}

pub const ISSUANCE_COLUMNS: &str = "id, rule_id, deposit_id, trader_id, credit_line_id, currency, deposit_amount, amount, status, source, ledger_entry_id, credit_entry_id, clawback_entry_id, clawed_back_amount, shortfall, clawed_back_at, created_by, created_at";

async fn load_issuance(tx: &mut Tx, tenant_id: &str, id: &str) -> ApiResult<IssuanceView> {
    let row: Option<IssuanceView> = sqlx::query_as(&format!(
        "SELECT {ISSUANCE_COLUMNS} FROM bonus_issuances WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.ok_or(ApiError::NotFound("bonus issuance"))
}

/// A rule that did not pay, and why.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub rule_id: String,
    pub rule_name: String,
    /// already_issued, currency_mismatch, below_min_deposit, not_first_deposit, zero_amount.
    pub reason: &'static str,
}

#[derive(Serialize, Default)]
pub struct Outcome {
    pub issued: Vec<IssuanceView>,
    pub skipped: Vec<Skipped>,
}

/// The bonus a rule pays on `base`, before eligibility checks: percent rounds down to the
/// currency's precision, then the cap applies.
pub fn bonus_amount(rule: &RuleRow, base: Decimal, currency: &str) -> ApiResult<Decimal> {
    let value = stored(&rule.value)?;
    let raw = if rule.kind == "percent" {
        base.checked_mul(value)
            .map(|v| v / Decimal::ONE_HUNDRED)
            .ok_or_else(|| ApiError::Unprocessable {
                code: "amount_out_of_range",
                detail: "The bonus on this amount is beyond what the ledger keeps.".into(),
            })?
            .round_dp_with_strategy(precision(currency), RoundingStrategy::ToZero)
    } else {
        value
    };
    Ok(match rule.max_bonus.as_deref().map(stored).transpose()? {
        Some(cap) if raw > cap => cap,
        _ => raw,
    })
}

/// Whether the deposit is the trader's first settled one (reversed deposits count: they were
/// settled), ordered by settlement time then id.
async fn is_first_deposit(tx: &mut Tx, tenant_id: &str, d: &DepositFacts) -> ApiResult<bool> {
    let at = d.settled_at.clone().unwrap_or_default();
    let earlier: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM deposits WHERE tenant_id = $1 AND trader_id = $2 AND id <> $3 AND status IN ('settled', 'reversed')
           AND (settled_at < $4 OR (settled_at = $4 AND id < $3)) LIMIT 1",
    )
    .bind(tenant_id)
    .bind(&d.trader_id)
    .bind(&d.id)
    .bind(&at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(earlier.is_none())
}

/// Why the rule does not pay this deposit, if it does not.
async fn ineligible(
    tx: &mut Tx,
    tenant_id: &str,
    rule: &RuleRow,
    d: &DepositFacts,
    base: Decimal,
    first: &mut Option<bool>,
) -> ApiResult<Option<&'static str>> {
    if rule.currency != d.currency {
        return Ok(Some("currency_mismatch"));
    }
    if let Some(min) = rule.min_deposit.as_deref().map(stored).transpose()?
        && base < min
    {
        return Ok(Some("below_min_deposit"));
    }
    if rule.first_deposit_only != 0 {
        if first.is_none() {
            *first = Some(is_first_deposit(tx, tenant_id, d).await?);
        }
        // A first-deposit rule pays a trader once, even if settlement times were back-dated.
        let paid_other: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM bonus_issuances WHERE tenant_id = $1 AND rule_id = $2 AND trader_id = $3 AND deposit_id <> $4 LIMIT 1",
        )
        .bind(tenant_id)
        .bind(&rule.id)
        .bind(&d.trader_id)
        .bind(&d.id)
        .fetch_optional(&mut **tx)
        .await?;
        if *first == Some(false) || paid_other.is_some() {
            return Ok(Some("not_first_deposit"));
        }
    }
    Ok(None)
}

/// The trader's live bonus line in this currency, opened (with its event and audit entry) on
/// first use.
async fn bonus_line(
    tx: &mut Tx,
    actor: &Actor,
    trader_id: &str,
    currency: &str,
) -> ApiResult<CreditLineRow> {
    if let Some(line) =
        credit::live_line(tx, &actor.tenant_id, trader_id, currency, KIND_BONUS).await?
    {
        return Ok(line);
    }
    let opened = credit::open_line(
        tx,
        actor,
        NewLine {
            trader_id,
            customer_id: None,
            kind: KIND_BONUS,
            currency,
            limit: None,
            terms: Some("Auto-issued deposit bonuses: trading credit, not withdrawable."),
            metadata: "{}".into(),
        },
    )
    .await?;
    let Some(line) = opened else {
        // A concurrent settlement opened it first.
        return credit::live_line(tx, &actor.tenant_id, trader_id, currency, KIND_BONUS)
            .await?
            .ok_or_else(|| ApiError::internal("live bonus line vanished"));
    };
    let after = to_json(&line.clone().view()?);
    events::emit(
        tx,
        &actor.tenant_id,
        "credit_line.created",
        "credit_line",
        &line.id,
        &after,
    )
    .await?;
    audit::record(
        tx,
        actor,
        "credit_line.create",
        "credit_line",
        Some(&line.id),
        None,
        Some(&after),
    )
    .await?;
    Ok(line)
}

/// Evaluates every active deposit rule against a settled deposit and issues what is due.
/// `source` is `settlement` or `replay`.
pub async fn evaluate(
    tx: &mut Tx,
    actor: &Actor,
    d: &DepositFacts,
    source: &str,
) -> ApiResult<Outcome> {
    let tenant = &actor.tenant_id;
    let base = stored(d.settled_amount.as_deref().unwrap_or(&d.amount))?;
    let mut out = Outcome::default();
    let mut first = None;
    for rule in active_deposit_rules(tx, tenant).await? {
        let skip = |reason| Skipped {
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            reason,
        };
        let existing: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM bonus_issuances WHERE tenant_id = $1 AND rule_id = $2 AND deposit_id = $3",
        )
        .bind(tenant)
        .bind(&rule.id)
        .bind(&d.id)
        .fetch_optional(&mut **tx)
        .await?;
        if existing.is_some() {
            out.skipped.push(skip("already_issued"));
            continue;
        }
        if let Some(reason) = ineligible(tx, tenant, &rule, d, base, &mut first).await? {
            out.skipped.push(skip(reason));
            continue;
        }
        let amount = bonus_amount(&rule, base, &d.currency)?;
        if amount <= Decimal::ZERO {
            out.skipped.push(skip("zero_amount"));
            continue;
        }
        match issue(tx, actor, &rule, d, base, amount, source).await? {
            Some(view) => out.issued.push(view),
            None => out.skipped.push(skip("already_issued")),
        }
    }
    Ok(out)
}

/// Claims the (rule, deposit) key and grants the bonus; `None` when another request holds the
/// key already.
async fn issue(
    tx: &mut Tx,
    actor: &Actor,
    rule: &RuleRow,
    d: &DepositFacts,
    base: Decimal,
    amount: Decimal,
    source: &str,
) -> ApiResult<Option<IssuanceView>> {
    let tenant = &actor.tenant_id;
    let id = new_id();
    let claimed = sqlx::query(
        "INSERT INTO bonus_issuances (tenant_id, id, rule_id, deposit_id, trader_id, currency, deposit_amount, amount, status, source, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'issued', $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&rule.id)
    .bind(&d.id)
    .bind(&d.trader_id)
    .bind(&d.currency)
    .bind(base.to_string())
    .bind(amount.to_string())
    .bind(source)
    .bind(actor.user_id.as_deref())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    if claimed.rows_affected() == 0 {
        return Ok(None);
    }
    let line = bonus_line(tx, actor, &d.trader_id, &d.currency).await?;
    let reason = format!("bonus {} on deposit {}", rule.name, d.id);
    let entry = credit::grant(
        tx,
        actor,
        &line,
        Movement {
            amount,
            source: "bonus",
            ledger_kind: "bonus_issue",
            reason: Some(&reason),
            bonus_issuance_id: Some(&id),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE bonus_issuances SET credit_line_id = $3, ledger_entry_id = $4, credit_entry_id = $5 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&line.id)
    .bind(&entry.ledger_entry_id)
    .bind(&entry.id)
    .execute(&mut **tx)
    .await?;
    let view = load_issuance(tx, tenant, &id).await?;
    let after = to_json(&view);
    events::emit(tx, tenant, "bonus.issued", "bonus_issuance", &id, &after).await?;
    audit::record(
        tx,
        actor,
        "bonus.issue",
        "bonus_issuance",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    Ok(Some(view))
}

/// The bonuses' hooks on the deposit flow (`payments::hooks`), registered by the application.
pub fn register_hooks() {
    use crate::payments::hooks::{HookFuture, Moment, register};
    fn settled<'a>(tx: &'a mut Tx, actor: &'a Actor, id: &'a str) -> HookFuture<'a> {
        Box::pin(async move { on_deposit_settled(tx, actor, id).await.map(|_| ()) })
    }
    fn reversed<'a>(tx: &'a mut Tx, actor: &'a Actor, id: &'a str) -> HookFuture<'a> {
        Box::pin(async move { on_deposit_reversed(tx, actor, id).await.map(|_| ()) })
    }
    register(Moment::Settled, "bonuses", settled);
    register(Moment::Reversed, "bonuses", reversed);
}

/// Called by deposit settlement, in its transaction: issues every bonus the deposit earns.
pub async fn on_deposit_settled(
    tx: &mut Tx,
    actor: &Actor,
    deposit_id: &str,
) -> ApiResult<Vec<IssuanceView>> {
    let d = load_deposit(tx, &actor.tenant_id, deposit_id).await?;
    Ok(evaluate(tx, actor, &d, "settlement").await?.issued)
}

/// Called by deposit reversal, in its transaction: claws back every bonus the deposit paid.
/// What is still outstanding on the bonus line is taken back (the exact ledger reversal of the
/// grant when all of it is there); the rest is recorded as `shortfall` and stays with the
/// trader: bonus credit is never recovered from the trader's cash wallet.
pub async fn on_deposit_reversed(
    tx: &mut Tx,
    actor: &Actor,
    deposit_id: &str,
) -> ApiResult<Vec<IssuanceView>> {
    let tenant = &actor.tenant_id;
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM bonus_issuances WHERE tenant_id = $1 AND deposit_id = $2 AND status = 'issued' ORDER BY id",
    )
    .bind(tenant)
    .bind(deposit_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id,) in ids {
        let iss = load_issuance(tx, tenant, &id).await?;
        let before = to_json(&iss);
        let amount = stored(&iss.amount)?;
        let line = match &iss.credit_line_id {
            Some(l) => Some(load_line(&mut **tx, tenant, l).await?),
            None => None,
        };
        let outstanding = match &line {
            Some(l) if l.deleted_at.is_none() => l.outstanding()?,
            _ => Decimal::ZERO,
        };
        let claw = amount.min(outstanding);
        let mut clawback_entry = None;
        if let (Some(line), true) = (&line, claw > Decimal::ZERO) {
            let reason = format!("deposit {deposit_id} reversed");
            let full = if claw == amount {
                iss.ledger_entry_id.as_deref()
            } else {
                None
            };
            let entry = credit::revoke(
                tx,
                actor,
                line,
                Movement {
                    amount: claw,
                    source: "clawback",
                    ledger_kind: "bonus_clawback",
                    reason: Some(&reason),
                    bonus_issuance_id: Some(&id),
                },
                full,
            )
            .await?;
            clawback_entry = Some(entry.ledger_entry_id);
        }
        let done = sqlx::query(
            "UPDATE bonus_issuances SET status = 'clawed_back', clawed_back_amount = $3, shortfall = $4, clawback_entry_id = $5, clawed_back_at = $6
             WHERE tenant_id = $1 AND id = $2 AND status = 'issued'",
        )
        .bind(tenant)
        .bind(&id)
        .bind(claw.to_string())
        .bind((amount - claw).to_string())
        .bind(&clawback_entry)
        .bind(now())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(ApiError::lost_race("bonus issuance"));
        }
        let view = load_issuance(tx, tenant, &id).await?;
        let after = to_json(&view);
        events::emit(
            tx,
            tenant,
            "bonus.clawed_back",
            "bonus_issuance",
            &id,
            &json!({"issuance": after, "depositId": deposit_id}),
        )
        .await?;
        audit::record(
            tx,
            actor,
            "bonus.claw_back",
            "bonus_issuance",
            Some(&id),
            Some(&before),
            Some(&after),
        )
        .await?;
        out.push(view);
    }
    Ok(out)
}
