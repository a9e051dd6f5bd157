//! Deposit and withdrawal rows and their API views.

use serde::Serialize;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::util::parse_json;

pub const KINDS: &[&str] = &["card", "bank_wire", "crypto", "ewallet", "cash", "internal"];

#[derive(sqlx::FromRow, Clone)]
pub struct DepositRow {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub kind: String,
    pub amount: String,
    pub currency: String,
    pub status: String,
    pub external_id: Option<String>,
    pub metadata: String,
    pub fee_amount: Option<String>,
    pub net_amount: Option<String>,
    pub settled_amount: Option<String>,
    pub settled_at: Option<String>,
    pub proof_url: Option<String>,
    pub notes: Option<String>,
    pub reject_reason: Option<String>,
    pub reversal_reason: Option<String>,
    pub provider_payload: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub ledger_entry_id: Option<String>,
    pub reversal_entry_id: Option<String>,
    pub transaction_id: Option<String>,
    pub reconciled: i64,
    pub reconciled_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const DEPOSIT_COLUMNS: &str = "id, trader_id, account_id, payment_method_id, kind, amount, currency, status, external_id, metadata, fee_amount, net_amount, settled_amount, settled_at, proof_url, notes, reject_reason, reversal_reason, provider_payload, approved_by, approved_at, ledger_entry_id, reversal_entry_id, transaction_id, reconciled, reconciled_at, created_by, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositView {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub kind: String,
    pub amount: String,
    pub currency: String,
    pub status: String,
    pub external_id: Option<String>,
    pub metadata: Value,
    pub fee_amount: Option<String>,
    pub net_amount: Option<String>,
    pub settled_amount: Option<String>,
    pub settled_at: Option<String>,
    pub proof_url: Option<String>,
    pub notes: Option<String>,
    pub reject_reason: Option<String>,
    pub reversal_reason: Option<String>,
    pub provider_payload: Value,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub ledger_entry_id: Option<String>,
    pub reversal_entry_id: Option<String>,
    pub transaction_id: Option<String>,
    pub reconciled: bool,
    pub reconciled_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<DepositRow> for DepositView {
    fn from(r: DepositRow) -> Self {
        DepositView {
            metadata: parse_json(&r.metadata),
            provider_payload: parse_json(&r.provider_payload),
            reconciled: r.reconciled != 0,
            id: r.id,
            trader_id: r.trader_id,
            account_id: r.account_id,
            payment_method_id: r.payment_method_id,
            kind: r.kind,
            amount: r.amount,
            currency: r.currency,
            status: r.status,
            external_id: r.external_id,
            fee_amount: r.fee_amount,
            net_amount: r.net_amount,
            settled_amount: r.settled_amount,
            settled_at: r.settled_at,
            proof_url: r.proof_url,
            notes: r.notes,
            reject_reason: r.reject_reason,
            reversal_reason: r.reversal_reason,
            approved_by: r.approved_by,
            approved_at: r.approved_at,
            ledger_entry_id: r.ledger_entry_id,
            reversal_entry_id: r.reversal_entry_id,
            transaction_id: r.transaction_id,
            reconciled_at: r.reconciled_at,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow, Clone)]
pub struct WithdrawalRow {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub kind: String,
    pub amount: String,
    pub currency: String,
    pub destination_ref: Option<String>,
    pub status: String,
    pub metadata: String,
    pub external_id: Option<String>,
    pub fee_amount: Option<String>,
    pub net_amount: Option<String>,
    pub settled_at: Option<String>,
    pub proof_url: Option<String>,
    pub notes: Option<String>,
    pub reject_reason: Option<String>,
    pub needs_dual_control: i64,
    pub first_approved_by: Option<String>,
    pub first_approved_at: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub hold_entry_id: Option<String>,
    pub settle_entry_id: Option<String>,
    pub release_entry_id: Option<String>,
    pub transaction_id: Option<String>,
    pub reconciled: i64,
    pub reconciled_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const WITHDRAWAL_COLUMNS: &str = "id, trader_id, account_id, payment_method_id, kind, amount, currency, destination_ref, status, metadata, external_id, fee_amount, net_amount, settled_at, proof_url, notes, reject_reason, needs_dual_control, first_approved_by, first_approved_at, approved_by, approved_at, hold_entry_id, settle_entry_id, release_entry_id, transaction_id, reconciled, reconciled_at, created_by, created_at, updated_at";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithdrawalView {
    pub id: String,
    pub trader_id: String,
    pub account_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub kind: String,
    pub amount: String,
    pub currency: String,
    pub destination_ref: Option<String>,
    pub status: String,
    pub metadata: Value,
    pub external_id: Option<String>,
    pub fee_amount: Option<String>,
    pub net_amount: Option<String>,
    pub settled_at: Option<String>,
    pub proof_url: Option<String>,
    pub notes: Option<String>,
    pub reject_reason: Option<String>,
    pub needs_dual_control: bool,
    pub first_approved_by: Option<String>,
    pub first_approved_at: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub hold_entry_id: Option<String>,
    pub settle_entry_id: Option<String>,
    pub release_entry_id: Option<String>,
    pub transaction_id: Option<String>,
    pub reconciled: bool,
    pub reconciled_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<WithdrawalRow> for WithdrawalView {
    fn from(r: WithdrawalRow) -> Self {
        WithdrawalView {
            metadata: parse_json(&r.metadata),
            needs_dual_control: r.needs_dual_control != 0,
            reconciled: r.reconciled != 0,
            id: r.id,
            trader_id: r.trader_id,
            account_id: r.account_id,
            payment_method_id: r.payment_method_id,
            kind: r.kind,
            amount: r.amount,
            currency: r.currency,
            destination_ref: r.destination_ref,
            status: r.status,
            external_id: r.external_id,
            fee_amount: r.fee_amount,
            net_amount: r.net_amount,
            settled_at: r.settled_at,
            proof_url: r.proof_url,
            notes: r.notes,
            reject_reason: r.reject_reason,
            first_approved_by: r.first_approved_by,
            first_approved_at: r.first_approved_at,
            approved_by: r.approved_by,
            approved_at: r.approved_at,
            hold_entry_id: r.hold_entry_id,
            settle_entry_id: r.settle_entry_id,
            release_entry_id: r.release_entry_id,
            transaction_id: r.transaction_id,
            reconciled_at: r.reconciled_at,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn load_deposit<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<DepositRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<DepositRow> = sqlx::query_as(&format!(
        "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("deposit"))
}

pub async fn load_withdrawal<'e, E>(
    exec: E,
    tenant_id: &str,
    id: &str,
) -> Result<WithdrawalRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<WithdrawalRow> = sqlx::query_as(&format!(
        "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("withdrawal"))
}
