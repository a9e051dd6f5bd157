//! Credit line rows, entries and their API views; loading them.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::ledger::{self, House};
use crate::util::parse_json;

/// Operator-opened lines lend from `house:credit` and need a limit.
pub const KIND_CREDIT: &str = "credit";
/// Engine-opened lines that carry auto-issued bonuses, lent from `house:bonuses`, no limit.
pub const KIND_BONUS: &str = "bonus";

/// The house account a line of this kind lends from (and revokes back to).
pub fn house_for(kind: &str) -> House {
    if kind == KIND_BONUS {
        House::Bonuses
    } else {
        House::Credit
    }
}

/// The ledger account kind of a line's own account (what the balances endpoint groups by).
pub fn account_kind(kind: &str) -> &'static str {
    if kind == KIND_BONUS {
        "trader_bonus"
    } else {
        "trader_credit"
    }
}

#[derive(sqlx::FromRow, Clone)]
pub struct CreditLineRow {
    pub id: String,
    pub trader_id: String,
    pub customer_id: Option<String>,
    pub kind: String,
    pub currency: String,
    pub credit_limit: Option<String>,
    pub terms: Option<String>,
    pub metadata: String,
    pub ledger_account_id: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// The line's ledger account balance: what is outstanding.
    pub balance: String,
}

/// Columns of `credit_lines cl JOIN ledger_accounts la`.
pub const LINE_SELECT: &str = "SELECT cl.id, cl.trader_id, cl.customer_id, cl.kind, cl.currency, cl.credit_limit, cl.terms, cl.metadata,
   cl.ledger_account_id, cl.created_by, cl.created_at, cl.updated_at, cl.deleted_at, la.balance
 FROM credit_lines cl JOIN ledger_accounts la ON la.tenant_id = cl.tenant_id AND la.id = cl.ledger_account_id
 WHERE cl.tenant_id = ";

impl CreditLineRow {
    pub fn outstanding(&self) -> ApiResult<Decimal> {
        Ok(ledger::dec(&self.balance)?)
    }

    pub fn limit(&self) -> ApiResult<Option<Decimal>> {
        Ok(self.credit_limit.as_deref().map(ledger::dec).transpose()?)
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CreditLineView {
    pub id: String,
    pub trader_id: String,
    pub customer_id: Option<String>,
    pub kind: String,
    pub currency: String,
    pub limit: Option<String>,
    pub outstanding: String,
    /// limit − outstanding; null for lines without a limit (bonus lines).
    pub available: Option<String>,
    pub terms: Option<String>,
    pub metadata: Value,
    pub ledger_account_id: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

impl CreditLineRow {
    pub fn view(self) -> ApiResult<CreditLineView> {
        let outstanding = self.outstanding()?;
        let available = self.limit()?.map(|l| (l - outstanding).to_string());
        Ok(CreditLineView {
            metadata: parse_json(&self.metadata),
            outstanding: outstanding.to_string(),
            available,
            id: self.id,
            trader_id: self.trader_id,
            customer_id: self.customer_id,
            kind: self.kind,
            currency: self.currency,
            limit: self.credit_limit,
            terms: self.terms,
            ledger_account_id: self.ledger_account_id,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        })
    }
}

pub async fn load_line<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<CreditLineRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<CreditLineRow> = sqlx::query_as(&format!("{LINE_SELECT}$1 AND cl.id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(exec)
        .await?;
    row.ok_or(ApiError::NotFound("credit line"))
}

#[derive(sqlx::FromRow, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub id: String,
    pub credit_line_id: String,
    pub kind: String,
    pub source: String,
    pub amount: String,
    pub currency: String,
    pub outstanding_after: String,
    pub ledger_entry_id: String,
    pub bonus_issuance_id: Option<String>,
    pub reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
}

pub const ENTRY_COLUMNS: &str = "id, credit_line_id, kind, source, amount, currency, outstanding_after, ledger_entry_id, bonus_issuance_id, reason, created_by, created_at";

pub async fn load_entry<'e, E>(exec: E, tenant_id: &str, id: &str) -> ApiResult<EntryView>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<EntryView> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM credit_line_entries WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("credit line entry"))
}
